package api

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"uad/dialog"
	"uad/sip"
)

// scrape GETs /metrics from h and returns each sample as
// `name{labels}` -> value, as the text exposition writes them.
func scrape(t *testing.T, h http.Handler, header http.Header) map[string]float64 {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, MetricsPath, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// fakeCallList is the call layer as the metrics see it.
type fakeCallList struct {
	mu    sync.Mutex
	calls []dialog.CallInfo
}

func (f *fakeCallList) set(calls ...dialog.CallInfo) {
	f.mu.Lock()
	f.calls = calls
	f.mu.Unlock()
}

func (f *fakeCallList) List() []dialog.CallInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dialog.CallInfo(nil), f.calls...)
}

func (f *fakeCallList) Active() int {
	n := 0
	for _, c := range f.List() {
		if c.State != dialog.StateEnded {
			n++
		}
	}
	return n
}

func callWithStats(id, state string, sent, recv uint64) dialog.CallInfo {
	return dialog.CallInfo{ID: id, State: state, Audio: &dialog.StreamInfo{Stats: &dialog.StreamStats{
		PacketsSent: sent, BytesSent: sent * 160, PacketsReceived: recv, BytesReceived: recv * 160,
	}}}
}

func newTestMetrics(t *testing.T) (*Metrics, *Bus, *fakeCallList, http.Handler) {
	t.Helper()
	bus := NewBus(16)
	list := &fakeCallList{}
	refused := func() sip.GuardCounts { return sip.GuardCounts{NotAllowed: 3, RateLimited: 4} }
	m := NewMetrics(bus, MetricsConfig{Version: "1.2.3", Active: list.Active, Calls: list.List, SIPRefused: refused})
	t.Cleanup(m.Close)
	h := m.Count(m.Serve(New(zerolog.Nop(), &fakeCalls{}, bus, nil)))
	return m, bus, list, h
}

func ended(direction, reason string, status int) dialog.Event {
	fields := map[string]any{"reason": reason}
	if status != 0 {
		fields["sip_status"] = status
	}
	return dialog.Event{Type: "call.ended", Call: &dialog.CallInfo{ID: "c", Direction: direction, State: dialog.StateEnded}, Fields: fields}
}

func withStatus(typ string, status int) dialog.Event {
	ev := dialog.Event{Type: typ, Call: &dialog.CallInfo{ID: "c"}}
	if status != 0 {
		ev.Fields = map[string]any{"sip_status": status}
	}
	return ev
}

func TestMetricsCountEvents(t *testing.T) {
	_, bus, _, h := newTestMetrics(t)
	for _, ev := range []dialog.Event{
		{Type: "call.incoming", Call: &dialog.CallInfo{ID: "c"}},
		{Type: "call.connected", Call: &dialog.CallInfo{ID: "c"}},
		ended("inbound", dialog.EndRemote, 0),
		ended("inbound", dialog.EndRemote, 0),
		ended("outbound", dialog.EndRejected, 486),
		ended("outbound", dialog.EndTimeout, 408),
		withStatus("hold.success", 0),
		withStatus("hold.failed", 488),
		withStatus("hold.failed", 0),
		withStatus("unhold.success", 0),
		withStatus("unhold.failed", 500),
		withStatus("video.opened", 0),
		withStatus("video.closed", 0),
		withStatus("video.closed", 0),
	} {
		bus.Publish(ev)
	}
	// A scrape counts every event published before it.
	got := scrape(t, h, nil)
	want := map[string]float64{
		`uad_calls_total{direction="inbound",result="remote"}`:                  2,
		`uad_calls_total{direction="outbound",result="rejected"}`:               1,
		`uad_calls_total{direction="outbound",result="timeout"}`:                1,
		`uad_calls_total{direction="inbound",result="shutdown"}`:                0, // there from the start
		`uad_call_status_total{status="486"}`:                                   1,
		`uad_call_status_total{status="408"}`:                                   1,
		`uad_holds_total{result="success"}`:                                     1,
		`uad_holds_total{result="failed"}`:                                      2,
		`uad_hold_failures_total{status="488"}`:                                 1,
		`uad_hold_failures_total{status="none"}`:                                1,
		`uad_unholds_total{result="success"}`:                                   1,
		`uad_unholds_total{result="failed"}`:                                    1,
		`uad_video_events_total{type="video.opened"}`:                           1,
		`uad_video_events_total{type="video.closed"}`:                           2,
		`uad_events_total{type="call.ended"}`:                                   4,
		`uad_events_total{type="call.incoming"}`:                                1,
		`uad_events_total{type="hold.failed"}`:                                  2,
		`uad_build_info{goversion="` + runtime.Version() + `",version="1.2.3"}`: 1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got[`uad_call_status_total{status="0"}`]; ok {
		t.Error("a call.ended without sip_status was counted under status 0")
	}
	for name := range got {
		if !strings.HasPrefix(name, "uad_") {
			t.Errorf("metric %s is not named uad_…", name)
		}
	}
}

// A held call in a codec uad only passes through hears no hold tone, and
// is not counted as if it did.
func TestMetricsHoldToneNeedsACodecWithTones(t *testing.T) {
	_, _, list, h := newTestMetrics(t)
	tones, none := true, false
	withTones := callWithStats("g722", dialog.StateHold, 1, 1)
	withTones.Audio.HoldTone = &tones
	without := callWithStats("opus", dialog.StateHold, 1, 1)
	without.Audio.HoldTone = &none
	list.set(withTones, without)
	if g := scrape(t, h, nil)[`uad_hold_tone_streams`]; g != 1 {
		t.Errorf("uad_hold_tone_streams = %v, want 1 (the opus call has no hold tone)", g)
	}
}

func TestMetricsCallGauges(t *testing.T) {
	_, _, list, h := newTestMetrics(t)
	list.set(
		callWithStats("a", dialog.StateLive, 100, 90),
		callWithStats("b", dialog.StateHold, 50, 0),
		callWithStats("c", dialog.StateEnded, 10, 10),
	)
	got := scrape(t, h, nil)
	for k, v := range map[string]float64{
		`uad_active_calls`:                             2,
		`uad_hold_tone_streams`:                        1,
		`uad_rtp_packets_total{direction="sent"}`:      160,
		`uad_rtp_packets_total{direction="received"}`:  100,
		`uad_rtp_bytes_total{direction="sent"}`:        160 * 160,
		`uad_rtp_bytes_total{direction="received"}`:    100 * 160,
		`uad_sip_refused_total{reason="not_allowed"}`:  3,
		`uad_sip_refused_total{reason="rate_limited"}`: 4,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	// Call c leaves the list, a counts on: the totals keep c's packets.
	list.set(callWithStats("a", dialog.StateLive, 120, 95), callWithStats("b", dialog.StateLive, 60, 5))
	got = scrape(t, h, nil)
	if g := got[`uad_rtp_packets_total{direction="sent"}`]; g != 120+60+10 {
		t.Errorf("after call c left the list: packets sent = %v, want %v", g, 120+60+10)
	}
	if g := got[`uad_hold_tone_streams`]; g != 0 {
		t.Errorf("uad_hold_tone_streams = %v after the unhold, want 0", g)
	}
	list.set()
	got = scrape(t, h, nil)
	if g := got[`uad_rtp_packets_total{direction="received"}`]; g != 95+5+10 {
		t.Errorf("with no call listed: packets received = %v, want %v", g, 95+5+10)
	}
	if g := got[`uad_active_calls`]; g != 0 {
		t.Errorf("uad_active_calls = %v with no call, want 0", g)
	}
}

func TestMetricsAPIRequests(t *testing.T) {
	m, bus, _, _ := newTestMetrics(t)
	h := m.Count(RequireToken("s3cret", m.Serve(New(zerolog.Nop(), &fakeCalls{}, bus, nil))))
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	for _, tt := range []struct {
		method, path string
		header       http.Header
		want         int
	}{
		{"GET", "/v1/health", auth, 200},
		{"GET", "/v1/health", auth, 200},
		{"GET", "/v1/nope", auth, 404},
		{"GET", MetricsPath, nil, 401}, // /metrics is behind the token like the rest
		{"POST", MetricsPath, auth, 405},
	} {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		for k, v := range tt.header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.want)
		}
	}
	got := scrape(t, h, auth)
	for k, v := range map[string]float64{
		`uad_api_requests_total{code="200"}`: 2, // this scrape counts once it is done
		`uad_api_requests_total{code="404"}`: 1,
		`uad_api_requests_total{code="401"}`: 1,
		`uad_api_requests_total{code="405"}`: 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// The media engine's count of stray RTP is read at scrape time, and left
// out when there is no engine.
func TestMetricsRTPStray(t *testing.T) {
	var stray atomic.Uint64
	stray.Store(7)
	bus := NewBus(16)
	m := NewMetrics(bus, MetricsConfig{Version: "1", RTPStray: stray.Load})
	t.Cleanup(m.Close)
	h := m.Serve(http.NotFoundHandler())
	if got := scrape(t, h, nil)["uad_rtp_stray_packets_total"]; got != 7 {
		t.Errorf("uad_rtp_stray_packets_total = %v, want 7", got)
	}
	stray.Add(2)
	if got := scrape(t, h, nil)["uad_rtp_stray_packets_total"]; got != 9 {
		t.Errorf("uad_rtp_stray_packets_total = %v after 2 more, want 9", got)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, MetricsPath, nil))
	for _, line := range []string{
		"# HELP uad_rtp_stray_packets_total RTP packets dropped because they came from an address other than the peer's.",
		"# TYPE uad_rtp_stray_packets_total counter",
	} {
		if !strings.Contains(rec.Body.String(), line+"\n") {
			t.Errorf("exposition lacks %q", line)
		}
	}

	_, _, _, plain := newTestMetrics(t)
	if got, ok := scrape(t, plain, nil)["uad_rtp_stray_packets_total"]; ok {
		t.Errorf("uad_rtp_stray_packets_total = %v without an engine, want it absent", got)
	}
}

func TestMetricsPanics(t *testing.T) {
	m := NewMetrics(NewBus(16), MetricsConfig{Version: "1"})
	t.Cleanup(m.Close)
	h := m.Serve(http.NotFoundHandler())
	m.Panic("call")
	m.Panic("call")
	m.Panic("sip")
	s := scrape(t, h, nil)
	if got := s[`uad_panics_total{where="call"}`]; got != 2 {
		t.Errorf(`uad_panics_total{where="call"} = %v, want 2`, got)
	}
	if got := s[`uad_panics_total{where="sip"}`]; got != 1 {
		t.Errorf(`uad_panics_total{where="sip"} = %v, want 1`, got)
	}
}
