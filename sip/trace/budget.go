package trace

import (
	"sync"
	"sync/atomic"
)

// budget bounds the bytes all the rings of a Recorder hold. Each ring keeps
// at most messages_per_call messages, but ended calls keep theirs while the
// API lists them, so at thousands of calls a second the rings alone would
// hold hundreds of MiB. When a message does not fit, the rings of ended
// calls go first, oldest first; when none is left, the message is dropped.
type budget struct {
	limit int64 // 0 = no limit: bytes are only counted
	held  atomic.Int64

	mu    sync.Mutex
	ended []*Ring // rings of ended calls from head on, oldest first; released ones are skipped
	head  int
}

// reserve counts n more bytes for ring r; false when they do not fit even
// after releasing the rings of ended calls (never r itself).
func (b *budget) reserve(r *Ring, n int64) bool {
	if b == nil {
		return true
	}
	if b.held.Add(n) <= b.limit || b.limit == 0 || n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.held.Load() > b.limit {
		victim := b.oldestEnded(r)
		if victim == nil {
			b.held.Add(-n)
			return false
		}
		victim.release()
	}
	return true
}

// oldestEnded takes the oldest ring of an ended call other than keep off the
// list; nil when there is none. b.mu is held.
func (b *budget) oldestEnded(keep *Ring) *Ring {
	for i := b.head; i < len(b.ended); i++ {
		r := b.ended[i]
		if r == keep {
			continue // a message for an ended call's ring: rare, take the next
		}
		if i == b.head {
			b.ended[i] = nil
			b.head++
		} else {
			b.ended = append(b.ended[:i], b.ended[i+1:]...)
		}
		return r
	}
	return nil
}

func (b *budget) free(n int64) {
	if b != nil {
		b.held.Add(-n)
	}
}

// end puts a ring of an ended call on the list of those that may go first.
func (b *budget) end(r *Ring) {
	if b == nil || r == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Rings released since (their retention over) leave from the front.
	for b.head < len(b.ended) && b.ended[b.head].isReleased() {
		b.ended[b.head] = nil
		b.head++
	}
	if b.head > 1024 && b.head > len(b.ended)/2 {
		b.ended = append(b.ended[:0], b.ended[b.head:]...)
		clear(b.ended[len(b.ended):cap(b.ended)])
		b.head = 0
	}
	b.ended = append(b.ended, r)
}

func (r *Ring) isReleased() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.released
}
