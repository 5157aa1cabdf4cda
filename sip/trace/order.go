package trace

import (
	"bytes"
	"strings"
)

// causalOrder puts each message uad sent before the received message that
// answers it; msgs are in the order of their times. sipgo hands a sent message to the tracer once the write
// returned, and the reading goroutine can record the peer's answer to it
// first; a received message is always recorded before uad acts on it. So
// for each received response, the request it answers (same top Via branch
// and CSeq), and for each received ACK, the final response it acknowledges, must come
// earlier: when it comes later it is moved up, and given the received
// message's time, the latest it can have been sent.
func causalOrder(msgs []Message) {
	for i := 0; i < len(msgs); i++ {
		in := &msgs[i]
		if in.Out {
			continue
		}
		cause := causeOf(in.Raw)
		if cause == nil {
			continue
		}
		for j := i + 1; j < len(msgs); j++ {
			if !msgs[j].Out || !cause(msgs[j].Raw) {
				continue
			}
			moved := msgs[j]
			copy(msgs[i+1:j+1], msgs[i:j])
			if moved.Time.After(msgs[i+1].Time) {
				moved.Time = msgs[i+1].Time
			}
			msgs[i] = moved
			i++ // the received message, now one further
			break
		}
	}
}

// causeOf returns a test for the sent message that a received one answers,
// or nil when it answers none.
func causeOf(raw []byte) func([]byte) bool {
	cseq := normalized(header(raw, "cseq", "cseq"))
	if cseq == "" {
		return nil
	}
	if bytes.HasPrefix(raw, []byte("SIP/2.0 ")) {
		branch := viaBranch(raw)
		return func(sent []byte) bool {
			return !bytes.HasPrefix(sent, []byte("SIP/2.0 ")) && viaBranch(sent) == branch &&
				normalized(header(sent, "cseq", "cseq")) == cseq
		}
	}
	if num, ok := strings.CutSuffix(cseq, " ACK"); ok {
		// The ACK of a 2xx or of a failure (RFC 3261 §17.1.1.3), never of a
		// provisional response.
		return func(sent []byte) bool {
			return bytes.HasPrefix(sent, []byte("SIP/2.0 ")) && !bytes.HasPrefix(sent, []byte("SIP/2.0 1")) &&
				normalized(header(sent, "cseq", "cseq")) == num+" INVITE"
		}
	}
	return nil
}

// normalized is a header value with its spaces collapsed and in upper case.
func normalized(v []byte) string {
	return strings.ToUpper(strings.Join(strings.Fields(string(v)), " "))
}

// viaBranch is the branch parameter of the topmost Via.
func viaBranch(raw []byte) string {
	via := header(raw, "via", "v")
	if i := bytes.IndexByte(via, ','); i >= 0 {
		via = via[:i]
	}
	for _, p := range bytes.Split(via, []byte(";")) {
		if k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte("=")); ok && bytes.EqualFold(k, []byte("branch")) {
			return string(v)
		}
	}
	return ""
}
