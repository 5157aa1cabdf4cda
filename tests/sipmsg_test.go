package tests

// SIP messages as a peer traced them: sipp's -trace_msg file and baresip's
// -s log, parsed into messages, and the ways tests pick among them.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sipMsg is one SIP message in a peer's trace.
type sipMsg struct {
	At    time.Time // when the peer logged it (zero if unknown)
	Sent  bool      // sent by the peer that logged it
	Start string    // the start line
	Head  string    // the header lines
	Body  string
}

func (m sipMsg) String() string {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	return fmt.Sprintf("%s %q (CSeq %s) at %s", dir, m.Start, m.Header("CSeq"), m.At.Format("15:04:05.000"))
}

// Header returns the first value of a header (full name, case-insensitive).
func (m sipMsg) Header(name string) string {
	for _, line := range strings.Split(m.Head, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Method is the request method, or "" for a response.
func (m sipMsg) Method() string {
	if strings.HasPrefix(m.Start, "SIP/2.0") {
		return ""
	}
	method, _, _ := strings.Cut(m.Start, " ")
	return method
}

// Status is the response status code, or 0 for a request.
func (m sipMsg) Status() int {
	if !strings.HasPrefix(m.Start, "SIP/2.0 ") {
		return 0
	}
	code, _ := strconv.Atoi(strings.Fields(m.Start)[1])
	return code
}

// CSeq returns the CSeq number and method.
func (m sipMsg) CSeq() (int, string) {
	f := strings.Fields(m.Header("CSeq"))
	if len(f) != 2 {
		return -1, ""
	}
	n, _ := strconv.Atoi(f[0])
	return n, f[1]
}

func parseSIPMessage(text string) sipMsg {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.TrimLeft(text, "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	start, rest, _ := strings.Cut(head, "\n")
	return sipMsg{Start: strings.TrimSpace(start), Head: rest, Body: strings.TrimRight(body, "\n")}
}

// requestsOf keeps the requests of a method, sent or received by the
// tracer; a retransmission (same CSeq) counts once, since UDP peers
// retransmit when the machine is busy.
func requestsOf(method string, sent bool) func(sipMsg) bool {
	seen := map[uint32]bool{}
	return func(m sipMsg) bool {
		if m.Method() != method || m.Sent != sent {
			return false
		}
		n, _ := m.CSeq()
		if seen[uint32(n)] {
			return false
		}
		seen[uint32(n)] = true
		return true
	}
}

// responseTo returns the first final response with status to the request
// with CSeq n and method, in the direction opposite to the request.
func responseTo(msgs []sipMsg, req sipMsg, status int) (sipMsg, bool) {
	n, method := req.CSeq()
	for _, m := range msgs {
		if mn, mm := m.CSeq(); mn == n && mm == method && m.Status() == status && m.Sent != req.Sent {
			return m, true
		}
	}
	return sipMsg{}, false
}

// baresipSIPRE splits baresip's -s SIP trace: an ESC[36;1m#, a line
// "UDP src -> dst", the message, ESC[;m.
var baresipSIPRE = regexp.MustCompile(`(?s)\x1b\[36;1m#\r?\n(?:UDP|TCP) (\S+) -> (\S+)\r?\n(.*?)\x1b\[;m`)

// parseBaresipTrace returns the SIP messages of baresip's log; Sent is set
// on those baresip sent (from its SIP port).
func parseBaresipTrace(log string, sipPort int) []sipMsg {
	var out []sipMsg
	for _, m := range baresipSIPRE.FindAllStringSubmatch(log, -1) {
		msg := parseSIPMessage(m[3])
		msg.Sent = strings.HasSuffix(m[1], ":"+strconv.Itoa(sipPort))
		out = append(out, msg)
	}
	return out
}

// sippTraceRE matches the line before each message of sipp's -trace_msg
// file and the line that says which way it went.
var sippTraceRE = regexp.MustCompile(`(?m)^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\r?\n(?:UDP|TCP) message (sent|received)[^\n]*\n`)

// parseSippTrace returns the messages of sipp's -trace_msg file, in order;
// Sent is set on those sipp sent.
func parseSippTrace(text string) []sipMsg {
	var out []sipMsg
	idx := sippTraceRE.FindAllStringSubmatchIndex(text, -1)
	for i, m := range idx {
		end := len(text)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		msg := parseSIPMessage(text[m[1]:end])
		msg.At, _ = time.ParseInLocation("2006-01-02 15:04:05", text[m[2]:m[3]], time.Local)
		msg.Sent = text[m[4]:m[5]] == "sent"
		out = append(out, msg)
	}
	return out
}

// headerValues returns every value of a header of m (full name or compact
// form, case-insensitive), one per header line.
func headerValues(m sipMsg, names ...string) []string {
	var out []string
	for _, line := range strings.Split(m.Head, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(strings.TrimSpace(k), n) {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out
}

// receivedWith keeps the messages the tracer received whose start line
// begins with prefix and whose CSeq method is method ("" = any); sentWith
// keeps those it sent.
func receivedWith(prefix, method string) func(sipMsg) bool { return startsWith(false, prefix, method) }
func sentWith(prefix, method string) func(sipMsg) bool     { return startsWith(true, prefix, method) }

func startsWith(sent bool, prefix, method string) func(sipMsg) bool {
	return func(m sipMsg) bool {
		if m.Sent != sent || !strings.HasPrefix(m.Start, prefix) {
			return false
		}
		_, mm := m.CSeq()
		return method == "" || strings.EqualFold(mm, method)
	}
}

// toTag is the tag parameter of a message's To header ("" when none).
func toTag(m sipMsg) string {
	_, params, _ := strings.Cut(m.Header("To"), ">")
	for _, p := range strings.Split(params, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "tag") {
			return v
		}
	}
	return ""
}
