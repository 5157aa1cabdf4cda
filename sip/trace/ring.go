// Package trace keeps the SIP messages of each call: every message sent or
// received in a call's dialog goes into a bounded ring of that call, for the
// control API's /sip and /pcap views and the web console, and optionally out
// to a Homer server as HEP3. Capture sits on the transport's hot path, so a
// message costs a Call-ID lookup and a copy into a buffer the ring reuses.
package trace

import (
	"sync"
	"time"
)

// Message is one SIP message as it went over the wire.
type Message struct {
	Time      time.Time
	Out       bool   // sent by uad (else received)
	Transport string // "UDP", "TCP", "TLS"
	Src, Dst  string // IP:PORT
	Raw       []byte
}

// Dir is "out" or "in".
func (m *Message) Dir() string {
	if m.Out {
		return "out"
	}
	return "in"
}

// Ring keeps the last messages of one call; the oldest go first.
type Ring struct {
	mu      sync.Mutex
	size    int
	slots   []Message // grows to size, then is overwritten in place
	bufs    []*[]byte // the pooled buffer behind each slot's Raw
	next    int       // the slot the next message takes once full
	dropped uint64
}

// NewRing makes a ring of at most size messages.
func NewRing(size int) *Ring { return &Ring{size: max(size, 1)} }

// rawBuffers are the message buffers of rings that were released: at high
// call rates a new call's messages reuse the bytes of calls gone before.
var rawBuffers = sync.Pool{New: func() any { return new([]byte) }}

// add copies one message in.
func (r *Ring) add(at time.Time, out bool, transport, src, dst string, raw []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var i int
	if len(r.slots) < r.size {
		r.slots = append(r.slots, Message{})
		r.bufs = append(r.bufs, rawBuffers.Get().(*[]byte))
		i = len(r.slots) - 1
	} else {
		i = r.next
		r.next = (r.next + 1) % r.size
		r.dropped++
	}
	buf := r.bufs[i]
	*buf = append((*buf)[:0], raw...)
	r.slots[i] = Message{Time: at, Out: out, Transport: transport, Src: src, Dst: dst, Raw: *buf}
}

// Messages returns a copy of the messages, oldest first (each sent message
// before the answer to it, see causalOrder), and how many older ones were
// dropped to keep within the bound.
func (r *Ring) Messages() ([]Message, uint64) {
	if r == nil {
		return nil, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Message, 0, len(r.slots))
	for i := range r.slots {
		m := r.slots[(r.next+i)%len(r.slots)]
		m.Raw = append([]byte(nil), m.Raw...)
		out = append(out, m)
	}
	causalOrder(out)
	return out, r.dropped
}

// release gives the ring's buffers back for other calls to use.
func (r *Ring) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, buf := range r.bufs {
		rawBuffers.Put(buf)
	}
	r.slots, r.bufs, r.next = nil, nil, 0
}
