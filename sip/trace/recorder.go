package trace

import (
	"bytes"
	"strconv"
	"sync"
	"time"
)

// maxPending bounds the incoming INVITEs kept before a call takes them: an
// INVITE is read (and its 100 Trying sent) before the call layer sees it.
const maxPending = 256

// maxStream bounds the bytes of an unfinished message kept per TCP
// connection; a peer sending more without a message boundary is not traced.
// maxStreams bounds the connections with one: those closed mid-message
// leave theirs behind, and when they pile up they are all let go.
const (
	maxStream  = 64 << 10
	maxStreams = 1024
)

// Recorder attributes each SIP message to its call by Call-ID and copies it
// into that call's Ring. It is safe for concurrent use.
type Recorder struct {
	size   int
	hep    *HEP    // nil = no export
	budget *budget // the bytes every ring together may hold

	mu      sync.RWMutex
	calls   map[string]*Ring // by Call-ID
	pending map[string]*Ring // incoming INVITEs no call has taken yet
	order   []string         // pending's Call-IDs, oldest first

	streamMu sync.Mutex
	streams  map[string][]byte // TCP bytes read and not yet a whole message, by connection
}

// NewRecorder keeps up to perCall messages of each call (0 = none) and,
// with hep set, sends every message there too.
func NewRecorder(perCall int, hep *HEP) *Recorder {
	return &Recorder{size: perCall, hep: hep, budget: &budget{}, calls: map[string]*Ring{}, pending: map[string]*Ring{},
		streams: map[string][]byte{}}
}

// SetLimit bounds the bytes of the messages all calls keep together (0 =
// no limit); beyond it those of ended calls go first, oldest first, then new
// messages are dropped. Set it before the first message.
func (r *Recorder) SetLimit(bytes int64) {
	if r != nil {
		r.budget.limit = bytes
	}
}

// Held is the bytes of the messages kept now.
func (r *Recorder) Held() int64 {
	if r == nil {
		return 0
	}
	return r.budget.held.Load()
}

// End says a Call-ID's call ended: its messages stay readable until Close,
// but are the first to go when the limit needs room.
func (r *Recorder) End(callID string) {
	if r == nil {
		return
	}
	r.mu.RLock()
	ring := r.calls[callID]
	r.mu.RUnlock()
	r.budget.end(ring)
}

// newRing makes a ring counted in the recorder's budget.
func (r *Recorder) newRing() *Ring {
	ring := NewRing(r.size)
	ring.budget = r.budget
	return ring
}

// Open starts keeping the messages of a dialog's Call-ID and returns its
// ring, with the messages already seen of an incoming INVITE in it. A
// Recorder that keeps no messages returns nil.
func (r *Recorder) Open(callID string) *Ring {
	if r == nil || r.size == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ring, ok := r.pending[callID]
	if ok {
		delete(r.pending, callID)
	} else {
		ring = r.newRing()
	}
	r.calls[callID] = ring
	return ring
}

// Close stops keeping a Call-ID's messages and lets its ring's buffers go to
// other calls: the ring must not be read afterwards.
func (r *Recorder) Close(callID string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	ring, ok := r.calls[callID]
	delete(r.calls, callID)
	r.mu.Unlock()
	if ok {
		ring.release()
	}
}

// SIPTraceRead and SIPTraceWrite take the messages sipgo's transports read
// and write (its SIPTracer interface). Over TCP a read is whatever the
// stream delivered: it is cut into messages first.
func (r *Recorder) SIPTraceRead(transport, laddr, raddr string, data []byte) {
	if transport == "UDP" {
		r.record(time.Now(), false, transport, raddr, laddr, data)
		return
	}
	r.readStream(transport, laddr, raddr, data)
}

func (r *Recorder) SIPTraceWrite(transport, laddr, raddr string, data []byte) {
	if len(bytes.Trim(data, "\r\n")) == 0 {
		return // a keep-alive
	}
	r.record(time.Now(), true, transport, laddr, raddr, data)
}

// Record takes one whole message.
func (r *Recorder) Record(at time.Time, out bool, transport, src, dst string, data []byte) {
	r.record(at, out, transport, src, dst, data)
}

func (r *Recorder) record(at time.Time, out bool, transport, src, dst string, data []byte) {
	if r.hep != nil {
		r.hep.Send(at, transport, src, dst, data)
	}
	if r.size == 0 {
		return
	}
	cid := header(data, "call-id", "i")
	if cid == nil {
		return
	}
	r.mu.RLock()
	ring := r.calls[string(cid)]
	if ring == nil {
		ring = r.pending[string(cid)]
	}
	r.mu.RUnlock()
	if ring == nil {
		if out || !initialInvite(data) {
			return
		}
		ring = r.hold(string(cid))
	}
	ring.add(at, out, transport, src, dst, data)
}

// hold keeps an incoming INVITE's ring until a call opens it, or until
// maxPending newer ones pushed it out.
func (r *Recorder) hold(callID string) *Ring {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ring, ok := r.calls[callID]; ok {
		return ring
	}
	if ring, ok := r.pending[callID]; ok {
		return ring
	}
	if len(r.order) >= maxPending {
		old := r.order[0]
		r.order = r.order[1:]
		if ring, ok := r.pending[old]; ok {
			delete(r.pending, old)
			ring.release()
		}
	}
	ring := r.newRing()
	r.pending[callID] = ring
	r.order = append(r.order, callID)
	return ring
}

// initialInvite reports whether data is an INVITE without a To tag.
func initialInvite(data []byte) bool {
	if len(data) < 7 || !bytes.EqualFold(data[:7], []byte("INVITE ")) {
		return false
	}
	to := header(data, "to", "t")
	return to != nil && !bytes.Contains(bytes.ToLower(to), []byte(";tag="))
}

// readStream cuts TCP reads into messages by their Content-Length (RFC
// 3261 §18.3), keeping the part of one still to come per connection.
func (r *Recorder) readStream(transport, laddr, raddr string, data []byte) {
	key := transport + " " + laddr + " " + raddr
	now := time.Now()
	r.streamMu.Lock()
	buf := append(r.streams[key], data...)
	var whole [][]byte
	for {
		buf = bytes.TrimLeft(buf, "\r\n")
		n := messageLength(buf)
		if n == 0 {
			break
		}
		whole = append(whole, buf[:n:n])
		buf = buf[n:]
	}
	switch {
	case len(buf) == 0 || len(buf) > maxStream:
		delete(r.streams, key)
	default:
		if _, ok := r.streams[key]; !ok && len(r.streams) >= maxStreams {
			clear(r.streams)
		}
		r.streams[key] = append([]byte(nil), buf...)
	}
	r.streamMu.Unlock()
	for _, m := range whole {
		r.record(now, false, transport, raddr, laddr, m)
	}
}

// messageLength is the length of the whole message at the start of b, or 0
// while it is not all there.
func messageLength(b []byte) int {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0
	}
	end += 4
	length := 0
	if v := header(b[:end], "content-length", "l"); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 {
			return end // unreadable: the headers alone
		}
		length = n
	}
	if len(b) < end+length {
		return 0
	}
	return end + length
}

// header returns the value of the first header named name (or its compact
// form short), trimmed; nil when the message has none.
func header(msg []byte, name, short string) []byte {
	rest := msg
	first := true
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return nil // end of the headers
		}
		if first {
			first = false // the start line
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		key := bytes.TrimSpace(line[:colon])
		if bytes.EqualFold(key, []byte(name)) || bytes.EqualFold(key, []byte(short)) {
			return bytes.TrimSpace(line[colon+1:])
		}
	}
	return nil
}
