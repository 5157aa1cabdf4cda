// Package conformance drives an in-process uad from the outside: scripted SIP
// peers speak raw SIP text over UDP and TCP on 127.0.0.1, raw RTP peers send
// and read packets, and each test checks what the RFCs require of uad's answers.
//
// This file is the harness: it wires uad as cmd/uad's run() does, with a fake
// clock for the call layer's timers and a recorder of its events.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/dialog"
	"uad/dialog/clock"
	"uad/media"
	"uad/sip"
)

// uadUnderTest is one uad: its call layer, the fake clock of its timers, its
// events, and the addresses it listens on.
type uadUnderTest struct {
	mgr   *dialog.Manager
	clock *clock.Fake
	ev    *recorder
	udp   netip.AddrPort
	tcp   netip.AddrPort
}

// mediaBlock hands each uad its own RTP port range.
var mediaBlock atomic.Int32

// startUAD starts a uad on free ports of 127.0.0.1 (UDP and TCP) and stops it
// when the test ends. tune edits the call layer's config before start.
// Every piece of wiring lives here, mirroring cmd/uad's run().
func startUAD(t *testing.T, tune ...func(*dialog.Config)) *uadUnderTest {
	t.Helper()
	log := zerolog.Nop()
	if os.Getenv("UAD_TEST_LOG") != "" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel).
			With().Timestamp().Str("test", t.Name()).Logger()
	}
	block := int(mediaBlock.Add(1)-1) % 200
	eng, err := media.NewEngine(log, media.EngineConfig{
		Bind:     netip.MustParseAddr("127.0.0.1"),
		PortMin:  34000 + block*100,
		PortMax:  34000 + block*100 + 99,
		HoldTone: "440/300,0/3700",
		Tone:     "440",
	})
	if err != nil {
		t.Fatalf("media.NewEngine: %v", err)
	}

	fake := clock.NewFake(time.Now())
	rec := newRecorder()
	var identity gosip.Uri
	if err := gosip.ParseUri("sip:uad@127.0.0.1", &identity); err != nil {
		t.Fatal(err)
	}
	cfg := dialog.Config{
		AutoAnswer:          true,
		Media:               dialog.MediaSpec{Mode: dialog.MediaEcho},
		Laws:                []media.Law{media.PCMU, media.PCMA},
		Identity:            identity,
		MediaAddr:           netip.MustParseAddr("127.0.0.1"),
		RTPTimeout:          30 * time.Second,
		UnholdFailure:       "hangup",
		SessionExpires:      1800 * time.Second,
		HoldDialect:         dialog.DialectSendOnly,
		Video:               true,
		VideoRequestPolicy:  dialog.VideoAsk,
		VideoRequestTimeout: 10 * time.Second,
		VideoRequestDefault: dialog.VideoReject,
		BridgeHold:          "tone",
		BridgeLegEnd:        "keep",
		EndedRetention:      60 * time.Second,
		Clock:               fake,
	}
	for _, f := range tune {
		f(&cfg)
	}
	mgr := dialog.NewManager(log, cfg, dialog.EngineMedia(eng), rec.sink)
	mgr.SetObserver(rec)

	var ep *sip.Endpoint
	var udp netip.AddrPort
	serveCtx, stopServe := context.WithCancel(context.Background())
	for try := 0; ; try++ {
		port := freePort(t)
		udp = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		ep, err = sip.NewEndpoint(log, sip.Config{
			Listeners: []sip.Listener{{Network: "udp", Addr: udp}, {Network: "tcp", Addr: udp}},
			UserAgent: "uad-conformance",
			T1:        500 * time.Millisecond,
			Recovered: rec.Panic,
		}, mgr)
		if err != nil {
			t.Fatalf("sip.NewEndpoint: %v", err)
		}
		mgr.SetSignalling(ep)
		if err = ep.Serve(serveCtx); err == nil {
			break
		}
		// Another program took the port between the probe and the listen.
		ep.Close()
		stopServe()
		if try == 5 {
			t.Fatalf("sip listen: %v", err)
		}
		serveCtx, stopServe = context.WithCancel(context.Background())
	}

	t.Cleanup(func() {
		if e, _, ok := rec.find(0, 0, func(e dialog.Event) bool { return e.Type == evPanic }); ok {
			t.Errorf("uad recovered from a panic in %v", e.Fields["where"])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		mgr.Shutdown(ctx)
		ep.Close()
		stopServe()
		eng.Close()
	})
	u := &uadUnderTest{mgr: mgr, clock: fake, ev: rec, udp: udp, tcp: udp}
	// Serve may return before sipgo has taken the sockets into its transport
	// layer (a request sent then fails to bind): an answered OPTIONS on each
	// transport shows it has.
	probe := newSIPPeer(t, false)
	for _, transport := range []string{"UDP", "TCP"} {
		c := probe.newCall(u, transport)
		c.final(t, c.send(t, "OPTIONS", req{}))
	}
	return u
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// uri is uad's address for a transport, the Request-URI of new requests.
func (u *uadUnderTest) uri(transport string) string {
	if strings.EqualFold(transport, "TCP") {
		return fmt.Sprintf("sip:uad@%s;transport=tcp", u.tcp)
	}
	return fmt.Sprintf("sip:uad@%s", u.udp)
}

// get returns a call as the control API shows it.
func (u *uadUnderTest) get(t *testing.T, id string) dialog.CallInfo {
	t.Helper()
	info, err := u.mgr.Get(id)
	if err != nil {
		t.Fatalf("Manager.Get(%s): %v", id, err)
	}
	return info
}

// settle returns once the call's loop has handled everything posted to it
// before: ReplyVideo with no video offer pending changes nothing. Never use
// it while the peer's video offer waits for a reply.
func (u *uadUnderTest) settle(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := u.mgr.ReplyVideo(ctx, id, false)
	var se *dialog.StateError
	if err != nil && !errors.As(err, &se) {
		t.Fatalf("settle: %v", err)
	}
}

// requireFakeTimers fails the test when uad has armed no timer on the fake
// clock: then advancing it cannot drive the RFC timers the test is about.
func (u *uadUnderTest) requireFakeTimers(t *testing.T) {
	t.Helper()
	if u.clock.Pending() == 0 {
		t.Fatal("uad armed no timer on the fake clock: dialog.Config.Clock is not honoured, so the timer under test cannot be driven")
	}
}

// async runs an API call beside the test and hands back its error.
func async(f func(ctx context.Context) error) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ch <- f(ctx)
	}()
	return ch
}

// result waits for an async API call.
func result(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

func (u *uadUnderTest) hold(id string) <-chan error {
	return async(func(ctx context.Context) error { _, err := u.mgr.Hold(ctx, id); return err })
}

// ---------------------------------------------------------------------------
// Events

// recorder keeps every event uad emits, and what its Observer is told, and
// wakes whoever waits for one.
type recorder struct {
	mu      sync.Mutex
	events  []dialog.Event
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// sink is the EventSink: it never blocks.
func (r *recorder) sink(e dialog.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Observer hooks, recorded as events of their own.
const (
	evReinviteDone = "observer.reinvite"
	evGlareRetry   = "observer.glare"
	evPanic        = "observer.panic"
)

func (r *recorder) ReinviteDone(op string, status int, latency time.Duration) {
	r.sink(dialog.Event{Type: evReinviteDone, Fields: map[string]any{"op": op, "sip_status": status}})
}

func (r *recorder) GlareRetry() { r.sink(dialog.Event{Type: evGlareRetry}) }

func (r *recorder) Panic(where string) {
	r.sink(dialog.Event{Type: evPanic, Fields: map[string]any{"where": where}})
}

// mark is the index the next event will have.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// find returns the first event from index from that matches, waiting up to
// timeout; ok is false when none came.
func (r *recorder) find(from int, timeout time.Duration, match func(dialog.Event) bool) (dialog.Event, int, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.events); i++ {
			if match(r.events[i]) {
				e := r.events[i]
				r.mu.Unlock()
				return e, i, true
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return dialog.Event{}, -1, false
		}
	}
}

// types lists the types of the events recorded, for failure messages.
func (r *recorder) types() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, e := range r.events {
		s = append(s, e.Type)
	}
	return strings.Join(s, ", ")
}

// onCall matches events of one call (by uad id or SIP Call-ID) and type.
func onCall(typ, call string) func(dialog.Event) bool {
	return func(e dialog.Event) bool {
		return e.Type == typ && e.Call != nil && (e.Call.ID == call || e.Call.SIPCallID == call)
	}
}

// waitEvent waits for an event of a call from index from.
func (u *uadUnderTest) waitEvent(t *testing.T, from int, typ, call string) dialog.Event {
	t.Helper()
	e, _, ok := u.ev.find(from, 5*time.Second, onCall(typ, call))
	if !ok {
		t.Fatalf("no %s event for call %s; events: [%s]", typ, call, u.ev.types())
	}
	return e
}

// noEvent checks that no such event is recorded from index from.
func (u *uadUnderTest) noEvent(t *testing.T, from int, typ, call string) {
	t.Helper()
	if e, _, ok := u.ev.find(from, 0, onCall(typ, call)); ok {
		t.Errorf("unexpected %s event (%v)", typ, e.Fields)
	}
}

// inbound returns uad's id of the incoming call with a SIP Call-ID.
func (u *uadUnderTest) inbound(t *testing.T, sipCallID string) string {
	t.Helper()
	return u.waitEvent(t, 0, "call.incoming", sipCallID).Call.ID
}

// ---------------------------------------------------------------------------
// Calls set up for a test

// liveInbound: the peer calls uad with offer, uad answers (auto-answer), the
// peer ACKs. It returns the peer's dialog, uad's call id and uad's 200.
func liveInbound(t *testing.T, u *uadUnderTest, p *sipPeer, transport, offer string, r req) (*peerCall, string, *sipIn) {
	t.Helper()
	c := p.newCall(u, transport)
	ok := c.dial(t, offer, r)
	id := u.inbound(t, c.callID)
	u.waitEvent(t, 0, "call.connected", id)
	return c, id, ok
}

// liveOutbound: uad calls the peer, which answers with plan (audio at rp
// unless the plan says otherwise) and headers. It returns the peer's dialog,
// the call as Place returned it, and uad's INVITE.
func liveOutbound(t *testing.T, u *uadUnderTest, p *sipPeer, rp *rtpPeer, place dialog.PlaceRequest, plan answerPlan, headers ...string) (*peerCall, dialog.CallInfo, *sipIn) {
	t.Helper()
	if place.To == "" {
		place.To = p.uri("peer", "UDP")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := u.mgr.Place(ctx, place)
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	inv := p.expect(t, "INVITE", isRequest("INVITE"))
	if plan.audioPort == 0 {
		plan.audioPort = rp.port
	}
	c := p.acceptCall(t, u, inv, answerTo(t, inv.body(), 1, plan), headers...)
	u.waitEvent(t, 0, "call.connected", info.ID)
	return c, info, inv
}

// audioAddr is where uad takes a call's RTP.
func (u *uadUnderTest) audioAddr(t *testing.T, id string) netip.AddrPort {
	t.Helper()
	info := u.get(t, id)
	a, err := netip.ParseAddrPort(info.Audio.LocalRTP)
	if err != nil {
		t.Fatalf("audio.local_rtp %q: %v", info.Audio.LocalRTP, err)
	}
	return a
}
