package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"uad/dialog"
)

func event(typ string, n int) dialog.Event {
	return dialog.Event{
		Type:   typ,
		Call:   &dialog.CallInfo{ID: "c" + strconv.Itoa(n), State: dialog.StateLive},
		Fields: map[string]any{"n": n},
	}
}

func publishN(b *Bus, from, to int) {
	for i := from; i <= to; i++ {
		b.Publish(event("call.ringing", i))
	}
}

// decoded is an event's JSON as a client sees it.
type decoded struct {
	Seq       uint64           `json:"seq"`
	Boot      string           `json:"boot"`
	Time      string           `json:"time"`
	Type      string           `json:"type"`
	Call      *dialog.CallInfo `json:"call"`
	Reason    string           `json:"reason"`
	SIPStatus int              `json:"sip_status"`
	N         int              `json:"n"`
}

func decode(t *testing.T, data []byte) decoded {
	t.Helper()
	var d decoded
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("event %s: %v", data, err)
	}
	return d
}

func TestEventJSON(t *testing.T) {
	b := NewBus(4)
	b.Publish(dialog.Event{
		Type: "call.ended",
		Call: &dialog.CallInfo{ID: "c1", State: dialog.StateEnded},
		Fields: map[string]any{
			"sip_status": 200, "reason": "remote",
			"seq": 99, "type": "forged", // the envelope wins
			"weird": make(chan int), // not JSON: printed instead of dropped
		},
	})
	b.Publish(dialog.Event{Type: "account.registered", Fields: map[string]any{"account": "bob"}})
	recs, _ := b.Tail().Read(nil)
	if len(recs) != 0 {
		t.Fatalf("Tail read %d old events", len(recs))
	}
	recs, _ = b.Subscribe(0, "").Read(nil)
	if len(recs) != 2 {
		t.Fatalf("read %d events, want 2", len(recs))
	}

	first := string(recs[0].JSON())
	wantPrefix := `{"seq":1,"boot":"` + b.Boot() + `","time":"`
	if !strings.HasPrefix(first, wantPrefix) {
		t.Errorf("event %s does not start with %s", first, wantPrefix)
	}
	var m map[string]any
	if err := json.Unmarshal(recs[0].JSON(), &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "call.ended" || m["seq"] != 1.0 || m["reason"] != "remote" || m["sip_status"] != 200.0 {
		t.Errorf("event %s", first)
	}
	if _, ok := m["weird"].(string); !ok {
		t.Errorf("weird field %v", m["weird"])
	}
	if call, _ := m["call"].(map[string]any); call["id"] != "c1" {
		t.Errorf("call %v", m["call"])
	}
	if tm, err := time.Parse(time.RFC3339, m["time"].(string)); err != nil || time.Since(tm) > time.Minute ||
		!strings.HasSuffix(m["time"].(string), "Z") || len(m["time"].(string)) != len("2006-01-02T15:04:05.000Z") {
		t.Errorf("time %v: %v", m["time"], err)
	}
	if len(b.Boot()) != 16 {
		t.Errorf("boot %q", b.Boot())
	}

	second := decode(t, recs[1].JSON())
	if second.Seq != 2 || second.Call != nil || strings.Contains(string(recs[1].JSON()), `"call"`) {
		t.Errorf("event without a call: %s", recs[1].JSON())
	}
	if recs[1].Seq != 2 || recs[1].Type != "account.registered" {
		t.Errorf("record %+v", recs[1])
	}
}

func TestBusResume(t *testing.T) {
	b := NewBus(4)
	publishN(b, 1, 10) // the backlog holds 7..10
	tests := []struct {
		name     string
		lastSeq  uint64
		lastBoot string
		want     []uint64 // seqs read; the events.lost one first when lostWhy is set
		lostWhy  string
	}{
		{"up to date", 10, "", nil, ""},
		{"in the backlog", 7, "", []uint64{8, 9, 10}, ""},
		{"just in the backlog", 6, b.Boot(), []uint64{7, 8, 9, 10}, ""},
		{"left the backlog", 5, "", []uint64{6, 7, 8, 9, 10}, LostBacklog},
		{"from the start", 0, "", []uint64{6, 7, 8, 9, 10}, LostBacklog},
		{"beyond the newest", 11, "", []uint64{6, 7, 8, 9, 10}, LostRestart},
		{"another boot", 8, "0123456789abcdef", []uint64{6, 7, 8, 9, 10}, LostRestart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, _ := b.Subscribe(tt.lastSeq, tt.lastBoot).Read(nil)
			var got []uint64
			for i, r := range recs {
				got = append(got, r.Seq)
				d := decode(t, r.JSON())
				if d.Seq != r.Seq || d.Boot != b.Boot() {
					t.Errorf("record %d: seq %d in %s", r.Seq, d.Seq, r.JSON())
				}
				if lost := i == 0 && tt.lostWhy != ""; lost != (r.Type == EventsLost) || lost && d.Reason != tt.lostWhy {
					t.Errorf("record %d: %s", i, r.JSON())
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("read %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBusRestartBeforeAnyEvent(t *testing.T) {
	recs, _ := NewBus(4).Subscribe(3, "").Read(nil)
	if len(recs) != 1 || recs[0].Type != EventsLost || recs[0].Seq != 0 {
		t.Fatalf("read %+v", recs)
	}
}

// A reader that does not read never holds up Publish; when it reads again it
// learns what it lost and gets the whole backlog.
func TestSlowSubscriberDoesNotBlockPublish(t *testing.T) {
	const backlog = 8
	b := NewBus(backlog)
	sub := b.Tail()
	_, more := sub.Read(nil)
	done := make(chan struct{})
	go func() {
		publishN(b, 1, 10*backlog)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a reader that does not read")
	}
	select {
	case <-more:
	default:
		t.Fatal("Publish did not notify")
	}
	recs, _ := sub.Read(nil)
	if len(recs) != backlog+1 || recs[0].Type != EventsLost || recs[0].Seq != 9*backlog {
		t.Fatalf("read %d records, first %+v", len(recs), recs[0])
	}
	for i, r := range recs[1:] {
		if r.Seq != uint64(9*backlog+1+i) {
			t.Errorf("record %d: seq %d", i, r.Seq)
		}
	}
}

func TestConcurrentPublish(t *testing.T) {
	const writers, each = 8, 200
	b := NewBus(writers * each)
	sub := b.Tail()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() { publishN(b, 1, each) })
	}
	var got []Record
	for len(got) < writers*each {
		var more <-chan struct{}
		got, more = sub.Read(got)
		if len(got) < writers*each {
			<-more
		}
	}
	wg.Wait()
	for i, r := range got {
		if r.Seq != uint64(i+1) || decode(t, r.JSON()).Seq != r.Seq {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	id, event, data string
}

type sseStream struct {
	resp *http.Response
	r    *bufio.Reader
}

// openSSE connects to GET /v1/events; query is appended to the URL. The client
// timeout turns a stream that stays silent into a failure instead of a hang.
func openSSE(t *testing.T, base, query string, header map[string]string) *sseStream {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/events"+query, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event; comments are skipped, and counted into comments.
func (s *sseStream) next(t *testing.T) (ev sseEvent, comments int) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && ev != (sseEvent{}):
			return ev, comments
		case strings.HasPrefix(line, ":"):
			comments++
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

// expect reads events, checks their ids (and types: "lost:N" for events.lost)
// and returns them decoded.
func (s *sseStream) expect(t *testing.T, ids ...string) []decoded {
	t.Helper()
	var out []decoded
	for _, want := range ids {
		lost := strings.HasPrefix(want, "lost:")
		want = strings.TrimPrefix(want, "lost:")
		ev, _ := s.next(t)
		d := decode(t, []byte(ev.data))
		if ev.id != want || strconv.FormatUint(d.Seq, 10) != ev.id || d.Type != ev.event || (ev.event == EventsLost) != lost {
			t.Fatalf("got id %s event %s data %s; want id %s lost %t", ev.id, ev.event, ev.data, want, lost)
		}
		out = append(out, d)
	}
	return out
}

func newSSEServer(t *testing.T, b *Bus) *httptest.Server {
	srv := httptest.NewServer(New(zerolog.Nop(), &fakeCalls{}, b, nil))
	t.Cleanup(srv.Close)
	return srv
}

func TestEventsStream(t *testing.T) {
	b := NewBus(16)
	srv := newSSEServer(t, b)
	publishN(b, 1, 2)

	s := openSSE(t, srv.URL, "", nil)
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if boot, seq := s.resp.Header.Get(HeaderBoot), s.resp.Header.Get(HeaderSeq); boot != b.Boot() || seq != "2" {
		t.Errorf("headers boot %q seq %q", boot, seq)
	}
	// Without Last-Event-ID only new events come; the headers arrived, so the
	// stream is subscribed.
	publishN(b, 3, 5)
	s.expect(t, "3", "4", "5")
	b.Publish(dialog.Event{Type: "call.ended", Call: &dialog.CallInfo{ID: "c1"}, Fields: map[string]any{"reason": "remote", "sip_status": 200}})
	ev, _ := s.next(t)
	if d := decode(t, []byte(ev.data)); ev.event != "call.ended" || d.Reason != "remote" || d.SIPStatus != 200 || d.Call.ID != "c1" {
		t.Errorf("event %+v", ev)
	}
}

// Events published while a client is away reach it when it resumes, whichever
// way it names the last event it saw.
func TestEventsResumeAcrossReconnect(t *testing.T) {
	b := NewBus(16)
	srv := newSSEServer(t, b)
	publishN(b, 1, 2)

	first := openSSE(t, srv.URL, "", map[string]string{"Last-Event-ID": "0"})
	first.expect(t, "1", "2")
	first.resp.Body.Close()
	publishN(b, 3, 4)

	tests := []struct {
		name, query string
		header      map[string]string
	}{
		{"header", "", map[string]string{"Last-Event-ID": "2"}},
		{"header with boot", "", map[string]string{"Last-Event-ID": b.Boot() + ":2"}},
		{"query", "?last_event_id=2", nil},
		{"query with boot", "?last_event_id=2&boot=" + b.Boot(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSSE(t, srv.URL, tt.query, tt.header)
			if s.resp.Header.Get(HeaderSeq) != "" {
				t.Errorf("resumed stream has %s", HeaderSeq)
			}
			s.expect(t, "3", "4")
		})
	}
}

func TestEventsLost(t *testing.T) {
	b := NewBus(4)
	srv := newSSEServer(t, b)
	publishN(b, 1, 10) // 7..10 remain

	tests := []struct {
		name   string
		lastID string
		want   []string
		reason string
	}{
		{"left the backlog", "3", []string{"lost:6", "7", "8", "9", "10"}, LostBacklog},
		{"earlier start", "99", []string{"lost:6", "7", "8", "9", "10"}, LostRestart},
		{"another boot", "feedfacecafebeef:9", []string{"lost:6", "7", "8", "9", "10"}, LostRestart},
		{"this boot", b.Boot() + ":9", []string{"10"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSSE(t, srv.URL, "", map[string]string{"Last-Event-ID": tt.lastID})
			got := s.expect(t, tt.want...)
			if tt.reason != "" && got[0].Reason != tt.reason {
				t.Errorf("events.lost reason %q, want %q", got[0].Reason, tt.reason)
			}
		})
	}
}

func TestEventsBadLastEventID(t *testing.T) {
	srv := newSSEServer(t, NewBus(4))
	for _, id := range []string{"x", "boot:", "-1"} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/events", nil)
		req.Header.Set("Last-Event-ID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%q: status %d", id, resp.StatusCode)
		}
	}
}

// A client that does not read does not hold up Publish, and when it reads at
// last its stream is still in order, possibly with events.lost.
func TestEventsSlowClient(t *testing.T) {
	const backlog = 8
	b := NewBus(backlog)
	srv := newSSEServer(t, b)
	s := openSSE(t, srv.URL, "", nil)

	done := make(chan struct{})
	go func() {
		for i := range 10 * backlog {
			b.Publish(dialog.Event{Type: "dtmf", Fields: map[string]any{"digit": strings.Repeat("1", 4096), "n": i + 1}})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a client that does not read")
	}
	var last uint64
	for last < 10*backlog {
		ev, _ := s.next(t)
		seq, _ := strconv.ParseUint(ev.id, 10, 64)
		if seq <= last && ev.event != EventsLost || seq < last {
			t.Fatalf("id %d after %d", seq, last)
		}
		last = seq
	}
}

func TestEventsKeepalive(t *testing.T) {
	s := newServer(zerolog.Nop(), &fakeCalls{}, NewBus(4), nil)
	s.keepalive = time.Millisecond
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	stream := openSSE(t, srv.URL, "", nil)
	for {
		line, err := stream.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": keepalive\n" {
			return
		}
	}
}

func TestEventsEndWithRequest(t *testing.T) {
	s := newServer(zerolog.Nop(), &fakeCalls{}, NewBus(4), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "GET", "/v1/events", nil)
	done := make(chan struct{})
	go func() {
		s.ServeHTTP(httptest.NewRecorder(), req)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its request")
	}
}
