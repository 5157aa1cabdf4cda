package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"uad/dialog"
)

// EventsLost is the type of the event that opens a stream which could not resume
// where its client asked: the events it missed have left the backlog, or the
// daemon restarted since.
const EventsLost = "events.lost"

// Reasons given in an events.lost event's "reason" member.
const (
	LostBacklog = "backlog" // the asked-for events have left the backlog
	LostRestart = "restart" // the asked-for events belong to an earlier daemon start
)

// timeLayout is RFC 3339 with milliseconds, as the contract asks.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// envelope names the members every event has; Fields cannot override them.
var envelope = []string{"seq", "boot", "time", "type", "call"}

// Record is one event as it is stored in the backlog and sent to clients.
// Its JSON is rendered the first time a reader asks for it and then shared:
// a daemon nobody watches renders no event at all.
type Record struct {
	Seq   uint64
	Type  string
	Event dialog.Event // as published; its Call snapshot is never modified
	text  *rendering
}

type rendering struct {
	once sync.Once
	bus  *Bus
	at   time.Time
	json []byte
}

// JSON is the whole event, one line; shared by every reader, never modified.
func (r Record) JSON() []byte {
	t := r.text
	t.once.Do(func() { t.json = t.bus.encode(r.Seq, t.at, encodeBody(r.Event)) })
	return t.json
}

// Bus numbers the daemon's events and keeps the newest of them in a bounded
// ring, so that readers can resume after a reconnect and a slow reader never
// holds up a publisher: readers copy from the ring at their own pace and learn
// from an events.lost event when they fell out of it.
type Bus struct {
	boot string

	mu     sync.Mutex
	ring   []Record
	next   uint64        // seq of the next event; the first is 1
	notify chan struct{} // closed and replaced by every Publish
}

// NewBus returns a bus that keeps the newest backlog events (at least 1).
func NewBus(backlog int) *Bus {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Bus{
		boot:   hex.EncodeToString(b[:]),
		ring:   make([]Record, max(backlog, 1)),
		next:   1,
		notify: make(chan struct{}),
	}
}

// Boot identifies this daemon start; every event carries it.
func (b *Bus) Boot() string { return b.boot }

// Publish numbers ev and stores it in the backlog. It never blocks on readers
// and is safe for concurrent use, so it can serve as a dialog.EventSink.
func (b *Bus) Publish(ev dialog.Event) {
	text := &rendering{bus: b, at: time.Now()}
	b.mu.Lock()
	defer b.mu.Unlock()
	seq := b.next
	b.next++
	b.ring[seq%uint64(len(b.ring))] = Record{Seq: seq, Type: ev.Type, Event: ev, text: text}
	close(b.notify)
	b.notify = make(chan struct{})
}

// encode prefixes an event body from encodeBody with seq, boot and time.
func (b *Bus) encode(seq uint64, at time.Time, body []byte) []byte {
	out := make([]byte, 0, len(body)+80)
	out = append(out, `{"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	out = append(out, `,"boot":"`...)
	out = append(out, b.boot...)
	out = append(out, `","time":"`...)
	out = at.UTC().AppendFormat(out, timeLayout)
	out = append(out, '"')
	return append(out, body...)
}

// encodeBody renders the rest of an event: `,"type":…,"call":…,FIELDS}`, with
// the fields in key order so that the same event always reads the same.
func encodeBody(ev dialog.Event) []byte {
	out := append([]byte(`,"type":`), marshal(ev.Type)...)
	if ev.Call != nil {
		out = append(out, `,"call":`...)
		out = append(out, marshal(ev.Call)...)
	}
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		if !slices.Contains(envelope, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, ',')
		out = append(out, marshal(k)...)
		out = append(out, ':')
		out = append(out, marshal(ev.Fields[k])...)
	}
	return append(out, '}')
}

// marshal never fails: a value JSON cannot represent becomes its printed form,
// because dropping the whole event would hide that it happened.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return b
}

// oldest is the seq of the oldest event still in the backlog (next when empty).
// The caller holds b.mu.
func (b *Bus) oldest() uint64 {
	return b.next - min(b.next-1, uint64(len(b.ring)))
}

// Subscription reads the bus from a position of its own. It is used by one
// goroutine at a time.
type Subscription struct {
	bus  *Bus
	last uint64 // seq of the last event read (or skipped)
	lost string // reason for an events.lost the next Read must start with
}

// Subscribe returns a reader of the events published after lastSeq, the id of
// the last event its client saw; lastBoot is the boot that event came from, or
// "" when unknown. A lastSeq beyond the newest event is taken to be from an
// earlier start. When the events asked for cannot all be given, the reader
// starts with an events.lost event followed by the whole backlog.
func (b *Bus) Subscribe(lastSeq uint64, lastBoot string) *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &Subscription{bus: b, last: lastSeq}
	if (lastBoot != "" && lastBoot != b.boot) || lastSeq >= b.next {
		s.lost = LostRestart
	}
	return s
}

// Tail returns a reader of the events published from now on.
func (b *Bus) Tail() *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &Subscription{bus: b, last: b.next - 1}
}

// Last is the seq of the last event read; for a reader from Tail that has not
// read yet, the newest event when it was created.
func (s *Subscription) Last() uint64 { return s.last }

// Read appends to buf the events not read yet, oldest first, and returns a
// channel that is closed when more are published. When the reader fell out of
// the backlog (or asked for another boot's events), the first record appended
// is an events.lost event numbered like the newest event it missed, so that
// resuming after it loses nothing more; it uses no seq of its own.
func (s *Subscription) Read(buf []Record) ([]Record, <-chan struct{}) {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	oldest := b.oldest()
	if s.lost == "" && s.last+1 < oldest {
		s.lost = LostBacklog
	}
	if s.lost != "" {
		seq := oldest - 1
		ev := dialog.Event{Type: EventsLost, Fields: map[string]any{"reason": s.lost}}
		buf = append(buf, Record{Seq: seq, Type: EventsLost, Event: ev, text: &rendering{bus: b, at: time.Now()}})
		s.last, s.lost = seq, ""
	}
	for ; s.last+1 < b.next; s.last++ {
		buf = append(buf, b.ring[(s.last+1)%uint64(len(b.ring))])
	}
	return buf, b.notify
}
