// Package trace keeps the SIP messages of each call: every message sent or
// received in a call's dialog goes into a bounded ring of that call, for the
// control API's /sip and /pcap views and the web console, and optionally out
// to a Homer server as HEP3. Capture sits on the transport's hot path, so a
// message costs a Call-ID lookup and a copy into a buffer the ring reuses.
package trace

import (
	"slices"
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
	mu       sync.Mutex
	size     int
	slots    []Message // grows to size, then is overwritten in place
	bufs     []*[]byte // the pooled buffer behind each slot's Raw
	next     int       // the slot the next message takes once full
	dropped  uint64
	bytes    int64   // of the messages kept, counted in budget
	budget   *budget // shared by every ring of a Recorder; nil = none
	released bool    // its messages are gone: it keeps none from now on
}

// NewRing makes a ring of at most size messages.
func NewRing(size int) *Ring { return &Ring{size: max(size, 1)} }

// rawBuffers are the message buffers of rings that were released: at high
// call rates a new call's messages reuse the bytes of calls gone before.
var rawBuffers = sync.Pool{New: func() any { return new([]byte) }}

// add copies one message in; when the Recorder's budget has no room for
// it, even after letting ended calls' messages go, it is counted as dropped.
// The budget is asked without the ring's lock held, since making room takes
// other rings' locks: for a full ring it is asked for what the message adds
// over the one it overwrites, and corrected under the lock.
func (r *Ring) add(at time.Time, out bool, transport, src, dst string, raw []byte) {
	n := int64(len(raw))
	r.mu.Lock()
	var overwritten int64
	if len(r.slots) == r.size {
		overwritten = int64(len(r.slots[r.next].Raw))
	}
	r.mu.Unlock()
	if !r.budget.reserve(r, n-overwritten) {
		r.mu.Lock()
		r.dropped++
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		r.budget.free(n - overwritten)
		return
	}
	var i int
	var old int64
	if len(r.slots) < r.size {
		r.slots = append(r.slots, Message{})
		r.bufs = append(r.bufs, rawBuffers.Get().(*[]byte))
		i = len(r.slots) - 1
	} else {
		i = r.next
		r.next = (r.next + 1) % r.size
		r.dropped++
		old = int64(len(r.slots[i].Raw))
	}
	r.budget.free(old - overwritten)
	buf := r.bufs[i]
	*buf = append((*buf)[:0], raw...)
	r.slots[i] = Message{Time: at, Out: out, Transport: transport, Src: src, Dst: dst, Raw: *buf}
	r.bytes += n - old
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
	// Several read loops record at once, each with the time it read at: a
	// message may be added after one read later.
	slices.SortStableFunc(out, func(a, b Message) int { return a.Time.Compare(b.Time) })
	causalOrder(out)
	return out, r.dropped
}

// release gives the ring's buffers back for other calls to use; the
// messages it held count as dropped, for a reader that still has it.
func (r *Ring) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, buf := range r.bufs {
		rawBuffers.Put(buf)
	}
	r.dropped += uint64(len(r.slots))
	r.slots, r.bufs, r.next = nil, nil, 0
	r.budget.free(r.bytes)
	r.bytes, r.released = 0, true
}
