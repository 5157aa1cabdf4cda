package trace

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var at0 = time.Unix(1700000000, 0)

// msgOf is a message of a Call-ID, n bytes long.
func msgOf(cid string, n int) []byte {
	head := "BYE sip:uad@127.0.0.1 SIP/2.0\r\nCall-ID: " + cid + "\r\nContent-Length: 0\r\n\r\n"
	return []byte(head + strings.Repeat("x", n-len(head)))
}

// Within trace.max_bytes, the messages of ended calls go first, oldest
// call first; with none left, a new message is dropped rather than kept
// over the limit, and a full ring still overwrites its own oldest.
func TestRecorderLimitLetsEndedCallsGoFirst(t *testing.T) {
	rec := NewRecorder(4, nil)
	rec.SetLimit(900)
	a, b, c := rec.Open("a"), rec.Open("b"), rec.Open("c")
	for range 3 {
		rec.Record(at0, false, "UDP", alice, uad, msgOf("a", 100))
		rec.Record(at0, false, "UDP", alice, uad, msgOf("b", 100))
	}
	rec.End("a")
	rec.End("b")
	if got := rec.Held(); got != 600 {
		t.Fatalf("Held = %d, want 600", got)
	}
	// c's fourth message needs room: a (ended first) goes, b stays.
	for range 4 {
		rec.Record(at0, false, "UDP", alice, uad, msgOf("c", 100))
	}
	rec.Record(at0, false, "UDP", alice, uad, msgOf("c", 100)) // overwrites c's oldest: no room needed
	if msgs, dropped := a.Messages(); len(msgs) != 0 || dropped != 3 {
		t.Errorf("ended call a: %d messages, %d dropped; want 0 and 3", len(msgs), dropped)
	}
	if msgs, _ := b.Messages(); len(msgs) != 3 {
		t.Errorf("ended call b: %d messages, want its 3 (a went first)", len(msgs))
	}
	if got := rec.Held(); got != 700 {
		t.Errorf("Held = %d, want 700", got)
	}
	// Bigger messages: b goes too, then nothing ended is left and c's new
	// message does not fit.
	rec.Record(at0, false, "UDP", alice, uad, msgOf("c", 400))
	if msgs, _ := b.Messages(); len(msgs) != 0 {
		t.Errorf("ended call b kept %d messages over the limit", len(msgs))
	}
	rec.Record(at0, false, "UDP", alice, uad, msgOf("c", 900))
	msgs, dropped := c.Messages()
	if len(msgs) != 4 || dropped != 3 {
		t.Errorf("live call c: %d messages, %d dropped; want 4 and 3", len(msgs), dropped)
	}
	if got := rec.Held(); got != 700 {
		t.Errorf("Held = %d, want 700 (limit 900)", got)
	}
	var held int64
	for _, m := range msgs {
		held += int64(len(m.Raw))
	}
	if got := rec.Held(); got != held {
		t.Errorf("Held = %d, the rings hold %d", got, held)
	}
	rec.Close("c")
	rec.Close("a")
	rec.Close("b")
	if got := rec.Held(); got != 0 {
		t.Errorf("Held = %d once every call is closed, want 0", got)
	}
}

// Calls ending, closing and recording at once keep the count exact and
// never hold more than the limit (go test -race checks the locking).
func TestRecorderLimitConcurrent(t *testing.T) {
	rec := NewRecorder(8, nil)
	rec.SetLimit(64 << 10)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				cid := string(rune('a'+w)) + strings.Repeat("x", i%7) + string(rune('0'+i%10))
				rec.Open(cid)
				for range 10 {
					rec.Record(at0, true, "UDP", uad, alice, msgOf(cid, 300))
				}
				rec.End(cid)
				if i%3 == 0 {
					rec.Close(cid)
				}
				if h := rec.Held(); h > 64<<10+8*300 { // 8 writers may each be one message over for a moment
					t.Errorf("Held = %d, over the limit", h)
					return
				}
			}
		}()
	}
	wg.Wait()
	rec.mu.Lock()
	var held int64
	for _, ring := range rec.calls {
		msgs, _ := ring.Messages()
		for _, m := range msgs {
			held += int64(len(m.Raw))
			if !bytes.HasPrefix(m.Raw, []byte("BYE ")) {
				t.Fatalf("a kept message is corrupt: %q", m.Raw[:10])
			}
		}
	}
	rec.mu.Unlock()
	if got := rec.Held(); got != held {
		t.Errorf("Held = %d, the rings hold %d", got, held)
	}
}

// At the limit, with thousands of ended calls listed, each message still
// costs the same: ended calls leave from the front of their list.
func BenchmarkRecordAtLimit(b *testing.B) {
	rec := NewRecorder(12, nil)
	rec.SetLimit(2 << 20)
	const calls, retained = 8192, 4096
	cids := make([]string, calls)
	msgs := make([][]byte, calls)
	for i := range cids {
		cids[i] = fmt.Sprintf("call-%08d", i)
		msgs[i] = msgOf(cids[i], 700)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := i / 12 % calls
		if i%12 == 0 {
			rec.Open(cids[c])
		}
		rec.Record(at0, true, "UDP", uad, alice, msgs[c])
		if i%12 == 11 {
			rec.End(cids[c])
			rec.Close(cids[(c+calls-retained)%calls]) // the API's retention ends for an older one
		}
		i++
	}
}
