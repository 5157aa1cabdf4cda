package dialog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/dialog/clock"
	"uad/media"
	"uad/sip"
)

// The call layer driven without sockets: a recording Signalling, a
// recording Media, a fake clock, and a scripted peer that writes SIP as
// text. Every wait here is for something the call does (a request sent, a
// response, an event); none sleeps.

const waitLimit = 5 * time.Second

// fakeSig records what the call layer sends.
type fakeSig struct {
	mu     sync.Mutex
	sent   chan *sent
	all    []*sent // every request sent, for the clean-up
	owners map[string]sip.DialogOwner
	// block, when set, holds every Request until it is closed.
	block chan struct{}
	// fail, when set, makes Request fail as a local send error would.
	fail error
}

// sent is one request the call layer sent, with the hooks of its
// transaction (none for an ACK).
type sent struct {
	req      *gosip.Request
	hooks    sip.TxHooks
	kind     string // "request", "write" or "cancel"
	mu       sync.Mutex
	answered bool // a final response or a failure was delivered
}

func newFakeSig() *fakeSig {
	return &fakeSig{sent: make(chan *sent, 64), owners: map[string]sip.DialogOwner{}}
}

func (f *fakeSig) Contact(user, network string, peer netip.Addr) gosip.Uri {
	if peer.Is6() {
		return gosip.Uri{Scheme: "sip", User: user, Host: "[2001:db8::1]", Port: 5060}
	}
	return gosip.Uri{Scheme: "sip", User: user, Host: "192.0.2.1", Port: 5060}
}
func (f *fakeSig) UserAgent() string                   { return "uad-test" }
func (f *fakeSig) SupportsTransport(n string) bool     { return n == "udp" || n == "tcp" }
func (f *fakeSig) T1() time.Duration                   { return 500 * time.Millisecond }
func (f *fakeSig) WriteResponse(*gosip.Response) error { return nil }

func (f *fakeSig) Register(callID, tag string, o sip.DialogOwner) {
	f.mu.Lock()
	f.owners[callID+"|"+tag] = o
	f.mu.Unlock()
}

func (f *fakeSig) Unregister(callID, tag string) {
	f.mu.Lock()
	delete(f.owners, callID+"|"+tag)
	f.mu.Unlock()
}

func (f *fakeSig) owner(callID, tag string) sip.DialogOwner {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owners[callID+"|"+tag]
}

func (f *fakeSig) Request(ctx context.Context, req *gosip.Request, hooks sip.TxHooks) error {
	f.mu.Lock()
	block, fail := f.block, f.fail
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	f.record(&sent{req: req, hooks: hooks, kind: "request"})
	return nil
}

func (f *fakeSig) Cancel(_ context.Context, req *gosip.Request, hooks sip.TxHooks) error {
	f.record(&sent{req: req, hooks: hooks, kind: "cancel"})
	return nil
}

func (f *fakeSig) Write(_ context.Context, req *gosip.Request) error {
	f.record(&sent{req: req, kind: "write"})
	return nil
}

func (f *fakeSig) record(s *sent) {
	f.mu.Lock()
	f.all = append(f.all, s)
	f.mu.Unlock()
	f.sent <- s
}

// finishAll answers every request still waiting for its final response,
// so that nothing (a BYE shutdown waits for, say) is left hanging.
func (f *fakeSig) finishAll() {
	f.mu.Lock()
	all := append([]*sent(nil), f.all...)
	f.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		open := s.hooks.Response != nil && !s.answered
		s.mu.Unlock()
		if open {
			s.answer(200, "OK", "")
		}
	}
}

func (f *fakeSig) Respond(tx gosip.ServerTransaction, res *gosip.Response) error {
	return tx.Respond(res)
}

// next is the next request the call layer sent.
func (f *fakeSig) next(t *testing.T) *sent {
	t.Helper()
	select {
	case s := <-f.sent:
		return s
	case <-time.After(waitLimit):
		t.Fatal("no request was sent")
		return nil
	}
}

// expect is the next request sent, which must be of method m.
func (f *fakeSig) expect(t *testing.T, m gosip.RequestMethod) *sent {
	t.Helper()
	s := f.next(t)
	if s.req.Method != m {
		t.Fatalf("sent %s, want %s:\n%s", s.req.Method, m, s.req)
	}
	return s
}

// quiet asserts that the call has sent nothing more: its loop has run
// what was posted to it, and its outbox what the loop queued.
func (h *harness) quiet(c *Call) {
	h.t.Helper()
	h.sync(c)
	sent := make(chan struct{})
	c.outq.push(func() { close(sent) })
	select {
	case <-sent:
	case <-time.After(waitLimit):
		h.t.Fatal("the call's outbox is stuck")
	}
	select {
	case s := <-h.sig.sent:
		h.t.Fatalf("unexpected %s sent:\n%s", s.req.Method, s.req)
	default:
	}
}

// response builds the peer's response to a request uad sent.
func (s *sent) response(code int, reason string, body string, hdrs ...string) *gosip.Response {
	res := gosip.NewResponseFromRequest(s.req, code, reason, nil)
	res.To().Params.Add("tag", peerTag)
	for _, h := range hdrs {
		name, value, _ := strings.Cut(h, ":")
		res.AppendHeader(gosip.NewHeader(name, strings.TrimSpace(value)))
	}
	if body != "" {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody([]byte(body))
	}
	return res
}

// answer delivers the peer's response to the request's transaction.
func (s *sent) answer(code int, reason string, body string, hdrs ...string) {
	if code >= 200 {
		s.mu.Lock()
		s.answered = true
		s.mu.Unlock()
	}
	s.hooks.Response(s.response(code, reason, body, hdrs...))
}

// fail ends the request's transaction without a final response.
func (s *sent) fail(err error) {
	s.mu.Lock()
	s.answered = true
	s.mu.Unlock()
	s.hooks.Failed(err)
}

// sdp is the body of a request uad sent, parsed.
func (s *sent) sdp(t *testing.T) *media.RemoteSession {
	t.Helper()
	return parseSDP(t, s.req.Body())
}

func parseSDP(t *testing.T, body []byte) *media.RemoteSession {
	t.Helper()
	rs, err := media.ParseRemote(body)
	if err != nil {
		t.Fatalf("uad's SDP does not parse: %v\n%s", err, body)
	}
	return rs
}

// fakeTx is a server transaction of the peer's request: it records the
// responses uad gives.
type fakeTx struct {
	res      chan *gosip.Response
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	onCancel []gosip.FnTxCancel
}

func newFakeTx() *fakeTx {
	return &fakeTx{res: make(chan *gosip.Response, 16), done: make(chan struct{})}
}

func (tx *fakeTx) Respond(res *gosip.Response) error {
	select {
	case <-tx.done:
		return gosip.ErrTransactionTerminated
	default:
	}
	tx.res <- res
	return nil
}
func (tx *fakeTx) Acks() <-chan *gosip.Request          { return nil }
func (tx *fakeTx) Terminate()                           { tx.once.Do(func() { close(tx.done) }) }
func (tx *fakeTx) OnTerminate(gosip.FnTxTerminate) bool { return true }
func (tx *fakeTx) Done() <-chan struct{}                { return tx.done }
func (tx *fakeTx) Err() error                           { return nil }
func (tx *fakeTx) OnCancel(f gosip.FnTxCancel) bool {
	tx.mu.Lock()
	tx.onCancel = append(tx.onCancel, f)
	tx.mu.Unlock()
	return true
}

// cancel is the peer's CANCEL as sipgo delivers it: a 487, then the hooks.
func (tx *fakeTx) cancel(req *gosip.Request) {
	tx.res <- gosip.NewResponseFromRequest(req, 487, "Request Terminated", nil)
	tx.mu.Lock()
	hooks := tx.onCancel
	tx.mu.Unlock()
	for _, f := range hooks {
		f(req)
	}
	tx.Terminate()
}

// next is the next response uad gave on this transaction.
func (tx *fakeTx) next(t *testing.T) *gosip.Response {
	t.Helper()
	select {
	case r := <-tx.res:
		return r
	case <-time.After(waitLimit):
		t.Fatal("no response was given")
		return nil
	}
}

// final skips provisional responses.
func (tx *fakeTx) final(t *testing.T) *gosip.Response {
	t.Helper()
	for {
		if r := tx.next(t); !r.IsProvisional() {
			return r
		}
	}
}

// fakeMedia records the streams the call layer makes and how it
// configures them.
type fakeMedia struct {
	mu      sync.Mutex
	port    int
	streams []*fakeStream
	full    bool // no ports left
	bridged [][2]Stream
}

func (m *fakeMedia) NewStream(bind netip.Addr, video bool, relayTo netip.Addr) (Stream, error) {
	relay := relayTo.IsValid()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.full {
		return nil, media.ErrNoPorts
	}
	m.port += 2
	s := &fakeStream{port: 20000 + m.port, video: video, relay: relay}
	m.streams = append(m.streams, s)
	return s, nil
}

func (m *fakeMedia) Bridge(a, b Stream) {
	m.mu.Lock()
	m.bridged = append(m.bridged, [2]Stream{a, b})
	m.mu.Unlock()
}

func (m *fakeMedia) Unbridge(a, b Stream) {}

type fakeStream struct {
	mu      sync.Mutex
	port    int
	video   bool
	relay   bool
	cfg     []media.StreamConfig
	closed  bool
	stats   media.Stats
	onFault func(string)
	pli     int
	// panicOn makes Configure panic, standing in for any bug on the loop.
	panicOn bool
}

func (s *fakeStream) LocalAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(s.port))
}
func (s *fakeStream) RelayLocal() netip.AddrPort {
	if !s.relay {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.port+1000))
}
func (s *fakeStream) Configure(c media.StreamConfig) {
	s.mu.Lock()
	boom := s.panicOn
	s.cfg = append(s.cfg, c)
	s.mu.Unlock()
	if boom {
		panic("fake stream: configured")
	}
}
func (s *fakeStream) Stats() media.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
func (s *fakeStream) OnDTMF(func(string))                  {}
func (s *fakeStream) SendDTMF(string, time.Duration) error { return nil }
func (s *fakeStream) RequestKeyFrame() error {
	s.mu.Lock()
	s.pli++
	s.mu.Unlock()
	return nil
}
func (s *fakeStream) OnFault(f func(string)) {
	s.mu.Lock()
	s.onFault = f
	s.mu.Unlock()
}
func (s *fakeStream) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// last is the stream's configuration now.
func (s *fakeStream) last(t *testing.T) media.StreamConfig {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cfg) == 0 {
		t.Fatal("the stream was never configured")
	}
	return s.cfg[len(s.cfg)-1]
}

func (s *fakeStream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// recorder keeps the events the call layer emits.
type recorder struct {
	mu     sync.Mutex
	events []Event
	seen   int // events handed out by next
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) sink(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// next waits for the next event of a call not yet handed out.
func (r *recorder) next(t *testing.T) Event {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		if r.seen < len(r.events) {
			e := r.events[r.seen]
			r.seen++
			r.mu.Unlock()
			return e
		}
		r.mu.Unlock()
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatal("no event came")
		}
	}
}

// expect waits for events until one of type typ, and returns it with
// the types passed on the way.
func (r *recorder) expect(t *testing.T, typ string) (Event, []string) {
	t.Helper()
	var skipped []string
	for {
		e := r.next(t)
		if e.Type == typ {
			return e, skipped
		}
		skipped = append(skipped, e.Type)
	}
}

// rest is the types of the events not yet handed out.
func (r *recorder) rest() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events[r.seen:] {
		out = append(out, e.Type)
	}
	r.seen = len(r.events)
	return out
}

// harness is one manager with fakes all round.
type harness struct {
	t     *testing.T
	m     *Manager
	sig   *fakeSig
	med   *fakeMedia
	clock *clock.Fake
	ev    *recorder
	obs   *countObserver
}

type countObserver struct {
	mu     sync.Mutex
	panics int
	glare  int
}

func (o *countObserver) ReinviteDone(string, int, time.Duration) {}
func (o *countObserver) GlareRetry() {
	o.mu.Lock()
	o.glare++
	o.mu.Unlock()
}
func (o *countObserver) Panic(string) {
	o.mu.Lock()
	o.panics++
	o.mu.Unlock()
}

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testConfig() Config {
	var id gosip.Uri
	_ = gosip.ParseUri("sip:uad@192.0.2.1", &id)
	return Config{
		AutoAnswer:          true,
		Media:               MediaSpec{Mode: MediaEcho},
		Laws:                []media.Law{media.PCMU, media.PCMA},
		Identity:            id,
		MediaAddr:           netip.MustParseAddr("192.0.2.1"),
		Video:               true,
		VideoRequestPolicy:  VideoAsk,
		VideoRequestTimeout: 10 * time.Second,
		VideoRequestDefault: VideoReject,
	}
}

func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	h := &harness{t: t, sig: newFakeSig(), med: &fakeMedia{}, clock: clock.NewFake(start), ev: newRecorder(), obs: &countObserver{}}
	cfg.Clock = h.clock
	h.m = NewManager(zerolog.Nop(), cfg, h.med, h.ev.sink)
	h.m.SetSignalling(h.sig)
	h.m.SetObserver(h.obs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		h.sig.finishAll()
		go func() { // answer whatever the shutdown sends
			for {
				select {
				case s := <-h.sig.sent:
					if s.hooks.Response != nil {
						s.answer(200, "OK", "")
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		h.m.Shutdown(ctx)
	})
	return h
}

// sync waits until the call's loop has run everything posted so far.
func (h *harness) sync(c *Call) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c.run(ctx, func() {})
}

// advance lets the call take what was posted to it, moves the clock, and
// lets the call handle what fell due.
func (h *harness) advance(c *Call, d time.Duration) {
	h.t.Helper()
	h.sync(c)
	h.clock.Advance(d)
	h.sync(c)
}

// state reads the call's loop-owned state on its loop.
func (h *harness) state(c *Call) (localHold, remoteHold bool, info CallInfo) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c.run(ctx, func() { localHold, remoteHold = c.localHold, c.remoteHold })
	return localHold, remoteHold, *c.Snapshot()
}

// The peer: its side of the dialog, writing requests as SIP text.
const (
	peerTag  = "peer-tag-1"
	peerHost = "198.51.100.7"
)

type peer struct {
	h       *harness
	callID  string
	cseq    uint32
	uadTag  string // uad's tag, once known
	contact string
	call    *Call
	// tx of the INVITE that created the call (incoming calls).
	inviteTx  *fakeTx
	inviteReq *gosip.Request
}

// request builds a request of the peer as a SIP message parsed by sipgo's
// parser, the way it arrives off the wire.
func (p *peer) request(method, extra, body string) *gosip.Request {
	p.h.t.Helper()
	if method != "ACK" && method != "CANCEL" {
		p.cseq++
	}
	to := "<sip:uad@192.0.2.1>"
	if p.uadTag != "" {
		to += ";tag=" + p.uadTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:uad@192.0.2.1:5060 SIP/2.0\r\n", method)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-%s-%d-%s\r\n", peerHost, p.callID, p.cseq, method)
	fmt.Fprintf(&b, "From: <sip:alice@%s>;tag=%s\r\n", peerHost, peerTag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", p.callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", p.cseq, method)
	if p.contact != "" && method != "ACK" && method != "BYE" && method != "CANCEL" {
		fmt.Fprintf(&b, "Contact: <%s>\r\n", p.contact)
	}
	b.WriteString("Max-Forwards: 70\r\n")
	for _, line := range strings.Split(extra, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString(line + "\r\n")
		}
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	msg, err := gosip.ParseMessage([]byte(b.String()))
	if err != nil {
		p.h.t.Fatalf("test request does not parse: %v\n%s", err, b.String())
	}
	req := msg.(*gosip.Request)
	req.SetSource(peerHost + ":5060")
	req.SetTransport("UDP")
	return req
}

// send delivers an in-dialog request to the call that registered its
// dialog, as Call.HandleRequest does, and returns its transaction. The
// request is on the call's loop when send returns, so what the test does
// next comes after it.
func (p *peer) send(req *gosip.Request) *fakeTx {
	p.h.t.Helper()
	owner := p.h.sig.owner(p.callID, p.uadTag)
	c, ok := owner.(*Call)
	if !ok {
		p.h.t.Fatalf("no call registered for dialog %s|%s", p.callID, p.uadTag)
	}
	tx := newFakeTx()
	in := incoming{req: req, tx: tx, handled: make(chan struct{})}
	if req.IsAck() {
		in.tx = nil
	}
	if !c.post(func() { c.receive(in) }) {
		p.h.t.Fatal("the call's loop has ended")
	}
	return tx
}

// ack confirms a 2xx of uad's, with an answer when body is set, and waits
// until the call took it.
func (p *peer) ack(seq uint32, body string) {
	p.h.t.Helper()
	saved := p.cseq
	p.cseq = seq
	req := p.request("ACK", "", body)
	p.cseq = saved
	p.send(req)
	p.h.sync(p.call)
}

// incoming makes the peer call uad with an INVITE carrying offer (none
// when ""), and waits for uad's final response, which it returns.
func (h *harness) incoming(offer string, extra string) (*peer, *gosip.Response) {
	h.t.Helper()
	p := &peer{h: h, callID: fmt.Sprintf("call-%d@%s", time.Now().UnixNano(), peerHost), contact: "sip:alice@" + peerHost + ":5060"}
	return p, h.invite(p, "", offer, extra)
}

// invite sends p's INVITE (arriving from source, when set) and waits for
// uad's final response, which it returns.
func (h *harness) invite(p *peer, source, offer, extra string) *gosip.Response {
	h.t.Helper()
	req := p.request("INVITE", extra, offer)
	if source != "" {
		req.SetSource(source)
	}
	p.inviteReq = req
	p.inviteTx = newFakeTx()
	go h.m.HandleInvite(req, p.inviteTx)
	res := p.inviteTx.final(h.t)
	if tag, ok := res.To().Params.Get("tag"); ok {
		p.uadTag = tag
	}
	if res.IsSuccess() {
		p.call = h.callByCallID(p.callID)
	}
	return res
}

// liveIncoming is an incoming call answered and ACKed: live, with the
// events so far taken.
func (h *harness) liveIncoming(offer string) *peer {
	h.t.Helper()
	p, res := h.incoming(offer, "")
	if res.StatusCode != 200 {
		h.t.Fatalf("INVITE got %d %s", res.StatusCode, res.Reason)
	}
	p.ack(p.inviteReq.CSeq().SeqNo, "")
	h.ev.expect(h.t, "call.connected")
	h.ev.rest()
	return p
}

// outgoing places a call and plays the peer answering it with answer;
// the call is live when it returns, with its events taken.
func (h *harness) outgoing(video bool, answer string) *peer {
	h.t.Helper()
	info, err := h.m.Place(context.Background(), PlaceRequest{To: "sip:bob@" + peerHost, Video: video})
	if err != nil {
		h.t.Fatal(err)
	}
	inv := h.sig.expect(h.t, gosip.INVITE)
	inv.answer(200, "OK", answer, "Contact: <sip:bob@"+peerHost+":5060>")
	ack := h.sig.expect(h.t, gosip.ACK)
	if ack.kind != "write" {
		h.t.Fatalf("ACK sent as %s", ack.kind)
	}
	c, _, _ := h.m.call(info.ID)
	from := inv.req.From()
	tag, _ := from.Params.Get("tag")
	p := &peer{h: h, callID: inv.req.CallID().Value(), uadTag: tag, call: c, contact: "sip:bob@" + peerHost + ":5060"}
	h.ev.expect(h.t, "call.connected")
	h.ev.rest()
	return p
}

func (h *harness) callByCallID(callID string) *Call {
	h.t.Helper()
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	for _, c := range h.m.calls {
		if s := c.Snapshot(); s != nil && s.SIPCallID == callID {
			return c
		}
	}
	h.t.Fatalf("no call with Call-ID %s", callID)
	return nil
}

// begin starts a hold (or unhold) on the call's loop, as Manager.Hold
// does, and returns the channel of its outcome: it is in flight when begin
// returns.
func (h *harness) begin(c *Call, hold bool) <-chan error {
	h.t.Helper()
	var done <-chan error
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c.run(ctx, func() { done, err = c.requestHold(hold) })
	if err != nil {
		h.t.Fatalf("hold refused: %v", err)
	}
	return done
}

// op runs a blocking API operation (Hold, Unhold, ...) on a goroutine and
// returns a channel of its outcome.
func (h *harness) op(f func(ctx context.Context, id string) (CallInfo, error), c *Call) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := f(context.Background(), c.id)
		out <- err
	}()
	return out
}

func outcome(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLimit):
		t.Fatal("the operation did not finish")
		return nil
	}
}

// SDP bodies of the peer.

// peerSDP writes the peer's SDP: audio with a direction (""= none; "legacy"
// = c=0.0.0.0), and optionally video (port 0 = declined/removed).
func peerSDP(version int, audioDir string, video int) string {
	conn := peerHost
	dir := audioDir
	if audioDir == "legacy" {
		conn, dir = "0.0.0.0", ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=peer 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", version, peerHost, conn)
	b.WriteString("m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
	if dir != "" {
		b.WriteString("a=" + dir + "\r\n")
	}
	if video >= 0 {
		fmt.Fprintf(&b, "m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n", video)
		if video > 0 {
			b.WriteString("a=sendrecv\r\n")
		}
	}
	return b.String()
}

// audioDir is the audio direction of an SDP uad wrote, "legacy" for
// c=0.0.0.0 without attribute.
func audioDir(t *testing.T, rs *media.RemoteSession) string {
	t.Helper()
	a, _ := rs.Stream("audio")
	if a == nil {
		t.Fatal("no audio m-line")
	}
	if a.Held {
		return "legacy"
	}
	return string(a.Direction)
}

// mlines lists the m-lines of an SDP as "kind:port-or-0".
func mlines(rs *media.RemoteSession) string {
	var parts []string
	for _, s := range rs.Streams {
		port := "on"
		if s.Port == 0 {
			port = "0"
		}
		parts = append(parts, s.Kind+":"+port)
	}
	return strings.Join(parts, " ")
}

func atoiHeader(t *testing.T, m interface{ GetHeader(string) gosip.Header }, name string) int {
	t.Helper()
	h := m.GetHeader(name)
	if h == nil {
		t.Fatalf("no %s header", name)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
	if err != nil {
		t.Fatalf("%s: %q is not a number", name, h.Value())
	}
	return n
}

var errTest = errors.New("test")
