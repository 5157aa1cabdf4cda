// Package dialog is uad's call layer: one Call per SIP dialog, each run by
// its own event loop that owns the dialog state, the SDP offer/answer state
// and the call's media streams. SIP requests, transaction results, timers and
// control API commands reach a call as messages on its loop, so none of that
// state needs a lock and requests of one dialog are handled one at a time.
//
// Package sip delivers the SIP messages and package media makes the RTP; the
// control API drives calls through Manager.
package dialog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/dialog/clock"
	"uad/media"
	"uad/sip"
	"uad/sip/trace"
)

// Config is what the call layer needs from the daemon's configuration.
type Config struct {
	AutoAnswer     bool
	Media          MediaSpec   // default media of a call
	Laws           []media.Law // codecs in order of preference
	Identity       gosip.Uri   // From of outgoing calls
	MediaAddr      netip.Addr  // address written in c= when MediaAddrs is empty
	MediaAddrs     []MediaAddr // one per family uad has RTP in; see mediaFor
	RTPTimeout     time.Duration
	RTPHoldTimeout time.Duration
	RTPLatching    bool // follow a NAT'd peer's RTP source (media.rtp_latching)
	MaxCalls       int
	UnholdFailure  string         // "hangup" (default) or "keep"
	SessionExpires time.Duration  // RFC 4028 interval offered; 0 = no session timer
	HoldDialect    string         // sendonly (default), inactive or legacy
	SRTP           media.SRTPMode // SDES-SRTP: off, accept (default) or require
	Video          bool           // accept video in incoming calls and offers
	// An offer adding video: ask the user (default), accept or reject; when
	// asked, the reply waits VideoRequestTimeout, then VideoRequestDefault applies.
	VideoRequestPolicy  string
	VideoRequestTimeout time.Duration
	VideoRequestDefault string
	BridgeHold          string     // what a bridged party hears while the other leg is held: tone | silence
	BridgeLegEnd        string     // a bridge leg that ends: keep the other (default) | hangup
	Peers               []PeerRule // per remote-host overrides, first match wins
	Accounts            []Account
	IncomingAuth        *sip.Challenger // challenges incoming INVITEs; nil = none
	EndedRetention      time.Duration   // how long ended calls stay listed
	// Clock times every timer of the call layer; nil is the wall clock.
	Clock clock.Clock
}

// Account is a registration account as calls use it: its AOR as From,
// its credentials for challenges, its outbound proxy.
type Account struct {
	Name          string
	AOR           gosip.Uri
	Domains       []string // target hosts that select the account: the AOR's and the registrar's
	Username      string
	Password      string
	OutboundProxy *gosip.Uri
	Transport     string
	HoldDialect   string
}

// account picks the account of an outgoing call: the one named, or the one
// whose AOR or registrar host is the target's.
func (cfg *Config) account(name, host string) (*Account, error) {
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if name != "" && a.Name == name {
			return a, nil
		}
		if name == "" {
			for _, d := range a.Domains {
				if strings.EqualFold(d, host) {
					return a, nil
				}
			}
		}
	}
	if name != "" {
		return nil, &RequestError{Msg: fmt.Sprintf("account %q is not configured", name)}
	}
	return nil, nil
}

// PeerRule overrides settings for remote hosts matching a glob.
type PeerRule struct {
	Match       string
	HoldDialect string
	SRTP        media.SRTPMode
}

// holdDialect is the hold offer form for a remote host.
func (cfg *Config) holdDialect(host string) string {
	for _, p := range cfg.Peers {
		if ok, _ := path.Match(p.Match, host); ok && p.HoldDialect != "" {
			return p.HoldDialect
		}
	}
	if cfg.HoldDialect == "" {
		return DialectSendOnly
	}
	return cfg.HoldDialect
}

// srtpMode is the SRTP mode for a remote host: the first peer rule that
// sets one, else media.srtp.
func (cfg *Config) srtpMode(host string) media.SRTPMode {
	for _, p := range cfg.Peers {
		if ok, _ := path.Match(p.Match, host); ok && p.SRTP != "" {
			return p.SRTP
		}
	}
	if cfg.SRTP == "" {
		return media.SRTPAccept
	}
	return cfg.SRTP
}

// Observer is told of what the metrics count that no event says: each
// re-INVITE of ours with its outcome and latency, each glare retry, and
// each panic recovered (where: "call").
type Observer interface {
	ReinviteDone(op string, status int, latency time.Duration)
	GlareRetry()
	Panic(where string)
}

// SetObserver attaches an Observer.
func (m *Manager) SetObserver(o Observer) { m.observer.Store(&o) }

// observe returns the Observer, or nil.
func (m *Manager) observe() Observer {
	if o := m.observer.Load(); o != nil {
		return *o
	}
	return nil
}

// Manager holds every call and is the entry point of the control API.
type Manager struct {
	log   zerolog.Logger
	cfg   atomic.Pointer[Config]
	sig   Signalling
	med   Media
	clock clock.Clock
	emit  EventSink

	mu      sync.Mutex
	calls   map[string]*Call       // calls up
	past    map[string]*CallInfo   // calls ended in the last EndedRetention
	expiry  []retained             // when each past call goes, oldest first
	rings   map[string]*trace.Ring // the SIP messages of past calls
	capture *trace.Recorder        // nil = none kept
	sweeper clock.Timer            // armed while expiry is not empty

	observer atomic.Pointer[Observer]

	bridgeMu sync.Mutex
	bridges  map[string]BridgeInfo

	shutting atomic.Bool
	active   atomic.Int64
	byes     sync.WaitGroup // BYEs in flight, awaited on shutdown
}

// NewManager creates the call layer on media med (EngineMedia in the
// daemon). SetSignalling must be called before use: the SIP endpoint and
// the manager refer to each other.
func NewManager(log zerolog.Logger, cfg Config, med Media, emit EventSink) *Manager {
	if cfg.EndedRetention == 0 {
		cfg.EndedRetention = 60 * time.Second
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	m := &Manager{log: log, med: med, clock: clk, emit: emit, calls: map[string]*Call{}, past: map[string]*CallInfo{}, rings: map[string]*trace.Ring{}, bridges: map[string]BridgeInfo{}}
	m.cfg.Store(&cfg)
	return m
}

// SetSignalling attaches the SIP layer (*sip.Endpoint in the daemon).
func (m *Manager) SetSignalling(sig Signalling) { m.sig = sig }

// SetConfig replaces the configuration for calls created from now on (the
// clock stays the one the manager started with).
func (m *Manager) SetConfig(cfg Config) {
	if cfg.EndedRetention == 0 {
		cfg.EndedRetention = 60 * time.Second
	}
	cfg.Clock = m.clock
	m.cfg.Store(&cfg)
}

func (m *Manager) config() *Config { return m.cfg.Load() }

func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (m *Manager) add(c *Call) {
	m.mu.Lock()
	m.calls[c.id] = c
	m.mu.Unlock()
	m.active.Add(1)
}

// ended is called by a call's loop when it ends. Only the call's final
// snapshot stays listed, for EndedRetention: the call itself is released.
func (m *Manager) ended(c *Call) {
	m.active.Add(-1)
	id, final := c.id, c.Snapshot()
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.calls, id)
	m.past[id] = final
	m.rings[id] = c.capture.Load()
	if c.sipCallID != "" {
		m.capture.End(c.sipCallID)
	}
	m.expiry = append(m.expiry, retained{id: id, sipCallID: c.sipCallID, until: m.clock.Now().Add(m.config().EndedRetention)})
	if m.sweeper == nil {
		m.sweeper = m.clock.AfterFunc(m.config().EndedRetention, m.sweep)
	}
}

// retained is an ended call listed until a time.
type retained struct {
	id        string
	sipCallID string // its dialog's, whose messages are kept as long
	until     time.Time
}

// sweep forgets the ended calls whose time is up. One timer serves them
// all, oldest first: at thousands of calls a second, a timer each costs.
func (m *Manager) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	n := 0
	for n < len(m.expiry) && !m.expiry[n].until.After(now) {
		delete(m.past, m.expiry[n].id)
		delete(m.rings, m.expiry[n].id)
		if cid := m.expiry[n].sipCallID; cid != "" {
			m.capture.Close(cid)
		}
		n++
	}
	m.expiry = append(m.expiry[:0], m.expiry[n:]...)
	m.sweeper = nil
	if len(m.expiry) > 0 {
		m.sweeper = m.clock.AfterFunc(max(m.expiry[0].until.Sub(now), time.Second), m.sweep)
	}
}

// discard forgets a call that never started (its loop never ran).
func (m *Manager) discard(c *Call) {
	c.closeMedia()
	m.mu.Lock()
	delete(m.calls, c.id)
	m.mu.Unlock()
	m.active.Add(-1)
}

// call finds a call that is up; for an ended one it returns its snapshot.
func (m *Manager) call(id string) (*Call, *CallInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.calls[id]; ok {
		return c, nil, nil
	}
	if info, ok := m.past[id]; ok {
		return nil, info, nil
	}
	return nil, nil, ErrCallNotFound
}

// List returns the calls up and those ended in the last minute, oldest first.
func (m *Manager) List() []CallInfo {
	m.mu.Lock()
	out := make([]CallInfo, 0, len(m.calls)+len(m.past))
	for _, c := range m.calls {
		out = append(out, c.Info())
	}
	for _, info := range m.past {
		out = append(out, *info)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Get returns one call.
func (m *Manager) Get(id string) (CallInfo, error) {
	c, info, err := m.call(id)
	if err != nil {
		return CallInfo{}, err
	}
	if c == nil {
		return *info, nil
	}
	return c.Info(), nil
}

// Active is the number of calls not yet ended.
func (m *Manager) Active() int { return int(m.active.Load()) }

// Place starts an outgoing call and returns it in state calling.
func (m *Manager) Place(ctx context.Context, req PlaceRequest) (CallInfo, error) {
	if m.shutting.Load() {
		return CallInfo{}, ErrShuttingDown
	}
	cfg := m.config()
	if err := checkHeaderValue("to", req.To); err != nil {
		return CallInfo{}, err
	}
	var target gosip.Uri
	if err := gosip.ParseUri(strings.TrimSpace(req.To), &target); err != nil || target.Host == "" {
		return CallInfo{}, &RequestError{Msg: fmt.Sprintf("to: %q is not a SIP URI", req.To)}
	}
	if err := sip.CheckIPv6Reference(strings.TrimSpace(req.To), &target); err != nil {
		return CallInfo{}, &RequestError{Msg: fmt.Sprintf("to: %q: %v", req.To, err)}
	}
	if target.Scheme != "sip" && target.Scheme != "sips" {
		return CallInfo{}, &RequestError{Msg: fmt.Sprintf("to: scheme %q is not supported (use sip: or sips:)", target.Scheme)}
	}
	account, err := cfg.account(req.Account, target.Host)
	if err != nil {
		return CallInfo{}, err
	}
	transport := "udp"
	if account != nil && account.Transport != "" {
		transport = account.Transport
	}
	if t, ok := target.UriParams.Get("transport"); ok {
		transport = strings.ToLower(t)
	}
	if target.Scheme == "sips" {
		transport = "tls" // RFC 3261 §26.2: sips means TLS hop by hop
	}
	if !m.sig.SupportsTransport(transport) {
		return CallInfo{}, &RequestError{Msg: fmt.Sprintf("to: uad does not listen on transport %q", transport)}
	}
	spec := cfg.Media
	if req.Media != nil {
		spec = *req.Media
	}
	srtpMode := cfg.srtpMode(target.Host)
	if req.SRTP != "" {
		mode, err := media.ParseSRTPMode(req.SRTP)
		if err != nil {
			return CallInfo{}, &RequestError{Msg: err.Error()}
		}
		srtpMode = mode
	}
	if cfg.MaxCalls > 0 && m.Active() >= cfg.MaxCalls {
		return CallInfo{}, &StateError{Msg: fmt.Sprintf("the limit of %d concurrent calls is reached", cfg.MaxCalls)}
	}
	var routes []string
	if account != nil && account.OutboundProxy != nil {
		routes = append(routes, account.OutboundProxy.Host)
	}
	peer := signallingPeer(target.Host, routes)
	c, err := newCall(m, "outbound", spec, cfg.mediaFor(peer))
	if err != nil {
		return CallInfo{}, err
	}
	if req.Video {
		if c.offeredVideo, err = c.newStream(true); err != nil {
			m.discard(c)
			return CallInfo{}, ErrNoMediaPorts
		}
		c.watchStream(c.offeredVideo)
	}
	from := cfg.Identity
	if account != nil {
		from = account.AOR
		c.account = account
	}
	c.dlg = sip.NewUACDialog(target, from, transport, m.sig.Contact(from.User, transport, peer), m.sig.UserAgent())
	c.dialect = cfg.holdDialect(target.Host)
	c.srtp = srtpMode
	if account != nil {
		if account.HoldDialect != "" {
			c.dialect = account.HoldDialect
		}
		if p := account.OutboundProxy; p != nil {
			proxy := *p
			proxy.UriParams = gosip.NewParams()
			proxy.UriParams.Add("lr", "")
			c.dlg.RouteSet = []gosip.Uri{proxy} // preloaded route (RFC 3261 §8.1.2)
		}
	}
	c.log = c.log.With().Str("sip_call_id", c.dlg.CallID).Logger()
	c.openCapture(c.dlg.CallID)
	c.start()
	var info CallInfo
	if !c.run(ctx, func() { c.sendInvite(); c.refresh(); info = c.Info() }) {
		return CallInfo{}, ErrShuttingDown
	}
	return info, nil
}

// HandleInvite takes a new incoming call (sip.Handler).
func (m *Manager) HandleInvite(req *gosip.Request, tx gosip.ServerTransaction) {
	cfg := m.config()
	reply := func(code int, reason string, hdrs ...gosip.Header) {
		_ = m.sig.Respond(tx, sip.NewResponse(req, code, reason, nil, m.sig.UserAgent(), hdrs...))
	}
	switch {
	case m.shutting.Load():
		reply(503, "Service Unavailable")
		return
	case req.Contact() == nil:
		// RFC 3261 §8.1.1.8: without it no request could reach the caller.
		reply(400, "Bad Request", warning("INVITE has no Contact"))
		return
	case badContactHost(req.Contact()) != nil:
		reply(400, "Bad Request", warning("Contact: "+badContactHost(req.Contact()).Error()))
		return
	case cfg.MaxCalls > 0 && m.Active() >= cfg.MaxCalls:
		reply(503, "Service Unavailable", gosip.NewHeader("Retry-After", "5"))
		return
	}
	if ch := cfg.IncomingAuth; ch != nil && !ch.Check(req) {
		reply(401, "Unauthorized", ch.Challenge())
		return
	}
	if se, _, ok := parseSessionExpires(headerValue(req, "Session-Expires", "x")); ok && se < MinSessionExpires {
		reply(422, "Session Interval Too Small", minSEHeader())
		return
	}
	var offer *media.RemoteSession
	var mode media.SRTPMode // the offer's, when there is one
	if len(req.Body()) > 0 {
		if ct := req.ContentType(); ct != nil && !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
			reply(415, "Unsupported Media Type", gosip.NewHeader("Accept", "application/sdp"))
			return
		}
		var err error
		if offer, err = media.ParseRemote(req.Body()); err != nil {
			reply(488, "Not Acceptable Here", warning(err.Error()))
			return
		}
		var from string
		if f := req.From(); f != nil {
			from = f.Address.Host
		}
		mode = cfg.srtpMode(from)
		if err := offer.CryptoError(mode); err != nil {
			reply(488, "Not Acceptable Here", warning(err.Error()))
			return
		}
		if offer.DTLSOffered() {
			m.log.Info().Str("sip_call_id", req.CallID().Value()).Msg("DTLS-SRTP m-lines declined: uad keys SRTP with SDES (a=crypto) only")
		}
		if a, _ := offer.Usable("audio", cfg.Laws, mode); a == nil {
			reply(488, "Not Acceptable Here", warning(noAudioReason(mode)))
			return
		}
	}
	source, _ := netip.ParseAddrPort(req.Source())
	maddr := cfg.mediaFor(source.Addr())
	if offer != nil {
		if want := offerFamily(offer, cfg.Laws, mode); want.IsValid() {
			var ok bool
			if maddr, ok = cfg.mediaOf(want); !ok {
				err := &FamilyError{Want: want, Have: cfg.mediaAddrs()[0].Advertise}
				m.log.Warn().Str("sip_call_id", req.CallID().Value()).Str("offer", want.String()).
					Msgf("incoming call declined: the offer asks for %s media and uad has no %s media address (media.bind, media.advertise, sip.listen)", familyName(want), familyName(want))
				reply(488, "Not Acceptable Here", sdpWarning(err))
				return
			}
		}
	}
	c, err := newCall(m, "inbound", cfg.Media, maddr)
	if err != nil {
		m.log.Warn().Err(err).Str("sip_call_id", req.CallID().Value()).Msg("incoming call refused")
		reply(503, "Service Unavailable", warning(err.Error()))
		return
	}
	dlg, err := sip.NewUASDialog(req, m.sig.Contact("uad", req.Transport(), source.Addr()), m.sig.UserAgent())
	if err != nil {
		m.discard(c)
		reply(400, "Bad Request", warning(err.Error()))
		return
	}
	c.dlg = dlg
	// sipgo answers a CANCEL with a 487 built from this request: with our
	// tag in it, every response to the INVITE carries the same one.
	req.To().Params.Add("tag", dlg.LocalTag)
	c.dialect = cfg.holdDialect(dlg.Remote.Host)
	c.srtp = cfg.srtpMode(dlg.Remote.Host)
	c.log = c.log.With().Str("sip_call_id", dlg.CallID).Logger()
	c.openCapture(dlg.CallID)
	c.inviteReq, c.inviteTx, c.offer = req, tx, offer
	c.inviteDone = make(chan struct{})
	m.sig.Register(dlg.CallID, dlg.LocalTag, c)
	// sipgo keeps the transaction, and so this hook, for 64·T1 after the
	// call: reach the call through a reference that ending clears.
	ref := new(atomic.Pointer[Call])
	ref.Store(c)
	c.self = ref
	tx.OnCancel(func(*gosip.Request) {
		if c := ref.Load(); c != nil {
			c.post(c.onCancel)
		}
	})
	c.start()
	if !c.post(c.onIncoming) {
		reply(503, "Service Unavailable")
		return
	}
	// sipgo ends the transaction when this handler returns: hold it until
	// the final response went out or the caller cancelled.
	select {
	case <-c.inviteDone:
	case <-tx.Done():
	}
}

// Answer answers an incoming call.
func (m *Manager) Answer(ctx context.Context, id string, spec *MediaSpec) (CallInfo, error) {
	return m.command(ctx, id, func(c *Call) error { return c.answer(spec) })
}

// Hangup ends a call: BYE when up, CANCEL when calling, 603 when unanswered.
func (m *Manager) Hangup(ctx context.Context, id string) (CallInfo, error) {
	if _, info, err := m.call(id); err == nil && info != nil {
		return *info, nil // already ended: a no-op
	}
	return m.command(ctx, id, func(c *Call) error { c.hangup(EndLocal); return nil })
}

// Hold holds the call (re-INVITE with sendonly, or inactive while the peer
// holds us) and returns when the peer has answered.
func (m *Manager) Hold(ctx context.Context, id string) (CallInfo, error) {
	return m.operate(ctx, id, func(c *Call) (<-chan error, error) { return c.requestHold(true) })
}

// Unhold resumes a call this side holds.
func (m *Manager) Unhold(ctx context.Context, id string) (CallInfo, error) {
	return m.operate(ctx, id, func(c *Call) (<-chan error, error) { return c.requestHold(false) })
}

// operate starts an operation on the call's loop and waits for its outcome.
func (m *Manager) operate(ctx context.Context, id string, start func(*Call) (<-chan error, error)) (CallInfo, error) {
	c, info, err := m.call(id)
	if err != nil {
		return CallInfo{}, err
	}
	if c == nil {
		return *info, errEnded
	}
	var done <-chan error
	var serr error
	if !c.run(ctx, func() { done, serr = start(c) }) {
		if ctx.Err() != nil {
			return CallInfo{}, ctx.Err()
		}
		return c.Info(), errEnded
	}
	if serr != nil {
		return c.Info(), serr
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		return c.Info(), ctx.Err()
	}
	// The loop publishes after the message that finished the operation.
	c.run(ctx, func() {})
	return c.Info(), err
}

// RemoveVideo turns the call's video off (a re-INVITE with the video m-line
// at port 0) and returns when the peer answered.
func (m *Manager) RemoveVideo(ctx context.Context, id string) (CallInfo, error) {
	return m.operate(ctx, id, func(c *Call) (<-chan error, error) { return c.requestVideo(false) })
}

// AddVideo offers video (back) and returns when the peer answered: the call
// has video if it accepted, none (and a video.rejected event) if not.
func (m *Manager) AddVideo(ctx context.Context, id string) (CallInfo, error) {
	return m.operate(ctx, id, func(c *Call) (<-chan error, error) { return c.requestVideo(true) })
}

// ReplyVideo answers the peer's pending offer to add video.
func (m *Manager) ReplyVideo(ctx context.Context, id string, accept bool) (CallInfo, error) {
	return m.command(ctx, id, func(c *Call) error { return c.replyVideo(accept) })
}

// SendDTMF sends digits as RFC 4733 telephone-events with the payload type
// the peer offered.
func (m *Manager) SendDTMF(ctx context.Context, id string, digits string, d time.Duration) error {
	_, err := m.command(ctx, id, func(c *Call) error { return c.sendDTMF(digits, d) })
	return err
}

// command runs f on the call's loop and returns the call as f left it.
func (m *Manager) command(ctx context.Context, id string, f func(*Call) error) (CallInfo, error) {
	c, info, err := m.call(id)
	if err != nil {
		return CallInfo{}, err
	}
	if c == nil {
		return *info, errEnded
	}
	var ferr error
	if !c.run(ctx, func() { ferr = f(c) }) {
		if ctx.Err() != nil {
			return CallInfo{}, ctx.Err()
		}
		// The loop has ended: the call is over.
		return c.Info(), nil
	}
	return c.Info(), ferr
}

// Shutdown hangs up every call with BYE (reason shutdown) and waits, until
// ctx ends, for the BYEs to be answered.
func (m *Manager) Shutdown(ctx context.Context) {
	m.shutting.Store(true)
	m.mu.Lock()
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		calls = append(calls, c)
	}
	m.mu.Unlock()
	for _, c := range calls {
		c.post(func() { c.hangup(EndShutdown) })
	}
	for _, c := range calls {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	waited := make(chan struct{})
	go func() { m.byes.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
}

// noAudioReason explains a 488 for an offer without an audio stream uad
// can take under an SRTP mode.
func noAudioReason(mode media.SRTPMode) string {
	switch mode {
	case media.SRTPOff:
		return "no audio stream uad can take: an RTP/AVP or RTP/AVPF m-line with a codec in common (SRTP is off)"
	case media.SRTPRequire:
		return "no audio stream uad can take: SRTP is required: an RTP/SAVP or RTP/SAVPF m-line with a supported a=crypto and a codec in common"
	}
	return "no audio stream uad can take: an RTP/AVP or RTP/AVPF m-line, or RTP/SAVP(F) with a supported a=crypto, with a codec in common"
}

var errEnded = &StateError{Msg: "the call has ended"}

func warning(text string) gosip.Header { return warningCode(399, text) }

// warningCode is a Warning header (RFC 3261 §20.43) with a warn-code.
func warningCode(code int, text string) gosip.Header {
	text = strings.NewReplacer(`"`, `'`, "\r", " ", "\n", " ").Replace(text)
	return gosip.NewHeader("Warning", strconv.Itoa(code)+` uad "`+text+`"`)
}

// checkHeaderValue refuses values that would break out of a SIP header.
func checkHeaderValue(field, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return &RequestError{Msg: field + ": contains a CR, LF or NUL character"}
	}
	return nil
}
