// Package sip adapts github.com/emiago/sipgo to uad: it owns the listeners,
// routes incoming requests to the call that owns their dialog (sipgo leaves
// in-dialog routing to its users), and gives the call layer a Dialog with
// the RFC 3261 §12 state (CSeq, route set, remote target) and the requests
// and responses built from it. What a request means is decided above, in
// package dialog.
package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/sip/trace"
)

// Allowed lists the methods uad handles, for Allow headers and 405s.
const Allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"

// Listener is one SIP listening socket.
type Listener struct {
	Network string // "udp" or "tcp"
	Addr    netip.AddrPort
}

// Config sets up an Endpoint.
type Config struct {
	Listeners []Listener
	Advertise string // host[:port] for Via/Contact; empty = the listener's address
	UserAgent string
	T1        time.Duration
	Guard     *Guard // allow-list and rate limit; nil = anyone, no limit
	// TLS: the certificate of tls listeners, and how outgoing TLS checks
	// its peers (ClientTLS; nil = verify against the system roots).
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	// Recovered is told of each panic recovered while handling a request;
	// nil = nobody counts them.
	Recovered func(where string)
	// The receive path: UDP socket buffer size in bytes (0 = the kernel's
	// default), read loops per UDP socket (0 = one per CPU, at least 2),
	// and the limits of TCP and TLS connections.
	UDPBuffer  int
	UDPReaders int
	TCP        ConnLimits
	// Capture takes every SIP message sent and received (see
	// package trace); nil = none.
	Capture gosip.SIPTracer
}

// largeRequest is the size above which a request goes over a
// congestion-controlled transport when one is at hand (RFC 3261 §18.1.1).
const largeRequest = 1300

// maxDatagram is the largest UDP payload; sipgo refuses UDP writes over its
// UDPMTUSize less 200 bytes, so it is raised to let every SIP message of a
// UDP dialog go out (responses always take the request's transport,
// RFC 3261 §18.2.2).
const maxDatagram = 65507

// Handler takes out-of-dialog INVITEs (new calls).
type Handler interface {
	// HandleInvite runs on the request's own goroutine and must not return
	// before the transaction has its final response (or was cancelled).
	HandleInvite(req *gosip.Request, tx gosip.ServerTransaction)
}

// DialogOwner takes the requests of one dialog.
type DialogOwner interface {
	// HandleRequest runs on the request's own goroutine. It must respond to
	// every request but ACK before it returns.
	HandleRequest(req *gosip.Request, tx gosip.ServerTransaction)
}

// Endpoint is uad's SIP user agent: listeners, client, and the dialog table.
type Endpoint struct {
	log     zerolog.Logger
	cfg     Config
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	handler Handler

	mu      sync.RWMutex
	dialogs map[string]DialogOwner

	ready    atomic.Int32 // listeners serving
	draining atomic.Bool
	closers  []func() error // the listening sockets, in Serve's order
	stopped  chan Listener  // a listener that stopped serving (tests watch it)

	udp              udpSockets   // for the read filter's stateless responses
	conns            *connTracker // TCP and TLS connections open
	statelessOptions atomic.Uint64
}

// T1 is the RTT estimate all SIP timers derive from.
func (e *Endpoint) T1() time.Duration { return e.cfg.T1 }

var sipgoGlobals sync.Once

// NewEndpoint builds the user agent; Serve starts listening.
func NewEndpoint(log zerolog.Logger, cfg Config, h Handler) (*Endpoint, error) {
	if cfg.T1 <= 0 {
		cfg.T1 = 500 * time.Millisecond
	}
	slogger := slog.New(zerolog.NewSlogHandler(log.With().Str("component", "sipgo").Logger()))
	// sipgo keeps its timers, UDP size limit, default logger and trace
	// switch in package variables, which its goroutines read without a
	// lock: they are set once per process, by the first endpoint (the
	// daemon has one).
	sipgoGlobals.Do(func() {
		gosip.SetTimers(cfg.T1, 4*time.Second, 5*time.Second)
		gosip.UDPMTUSize = maxDatagram + 200
		gosip.SetDefaultLogger(slogger)
		// sipgo's transports hand every message to the tracer (with an
		// allocation or two) only when SIPDebug is on: for debug logs, and
		// for capture whatever the log level.
		debug := log.GetLevel() <= zerolog.DebugLevel
		gosip.SIPDebug = debug || cfg.Capture != nil
		gosip.SIPDebugTracer(tracer{log: log, debug: debug})
	})
	if cfg.Capture != nil {
		capture.Store(&cfg.Capture)
	}
	e := &Endpoint{log: log, cfg: cfg, handler: h, dialogs: map[string]DialogOwner{},
		stopped: make(chan Listener, 8), conns: newConnTracker(cfg.TCP, log)}
	if cfg.Guard != nil {
		cfg.Guard.log = log
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgenTLSConfig(cfg.ClientTLS),
		sipgo.WithUserAgentTransactionLayerOptions(gosip.WithTransactionLayerLogger(slogger)),
		sipgo.WithUserAgentTransportLayerOptions(gosip.WithTransportLayerLogger(slogger),
			gosip.WithTransportLayerReadFilter(e.readFilter)),
	)
	if err != nil {
		return nil, fmt.Errorf("sipgo.NewUA: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slogger))
	if err != nil {
		return nil, fmt.Errorf("sipgo.NewServer: %w", err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(slogger))
	if err != nil {
		return nil, fmt.Errorf("sipgo.NewClient: %w", err)
	}
	e.ua, e.srv, e.cli = ua, srv, cli
	for _, m := range routedMethods {
		srv.OnRequest(m, e.safe(e.handlerFor(m)))
	}
	srv.OnNoRoute(e.safe(e.onNoRoute))
	return e, nil
}

// routedMethods are the methods uad handles; others get 405.
var routedMethods = []gosip.RequestMethod{gosip.INVITE, gosip.ACK, gosip.CANCEL, gosip.OPTIONS,
	gosip.BYE, gosip.UPDATE, gosip.INFO, gosip.PRACK, gosip.REFER, gosip.NOTIFY, gosip.MESSAGE}

func (e *Endpoint) handlerFor(m gosip.RequestMethod) sipgo.RequestHandler {
	switch m {
	case gosip.INVITE:
		return e.onInvite
	case gosip.ACK:
		return e.onAck
	case gosip.CANCEL:
		return e.onCancel
	case gosip.OPTIONS:
		return e.onOptions
	case gosip.BYE, gosip.UPDATE, gosip.INFO, gosip.PRACK, gosip.REFER, gosip.NOTIFY, gosip.MESSAGE:
		return e.onInDialog
	}
	return e.onNoRoute
}

// Dispatch handles one request as the listeners do once sipgo's
// transaction layer has it; fuzzing drives the whole request path with it.
func (e *Endpoint) Dispatch(req *gosip.Request, tx gosip.ServerTransaction) {
	e.safe(e.handlerFor(req.Method))(req, tx)
}

// safe keeps a panic while handling one request from ending the process:
// it is logged with its stack and counted, and the request gets a 500.
func (e *Endpoint) safe(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *gosip.Request, tx gosip.ServerTransaction) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			e.log.Error().Str("panic", fmt.Sprint(v)).Str("method", string(req.Method)).
				Str("stack", string(debug.Stack())).Msg("recovered from a panic handling a SIP request")
			if e.cfg.Recovered != nil {
				e.cfg.Recovered("sip")
			}
			if !req.IsAck() {
				_ = tx.Respond(gosip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
			}
		}()
		h(req, tx)
	}
}

// capture is the Config.Capture of the latest endpoint: sipgo's tracer is
// one per process, and the daemon has one endpoint.
var capture atomic.Pointer[gosip.SIPTracer]

// tracer logs every SIP message at debug level, credentials and SRTP keys
// masked as in the capture, and hands it to capture.
type tracer struct {
	log   zerolog.Logger
	debug bool
}

func (t tracer) SIPTraceRead(transport, laddr, raddr string, msg []byte) {
	if t.debug {
		t.log.Debug().Str("transport", transport).Str("from", raddr).Str("to", laddr).Msg("sip recv\n" + string(trace.Redact(msg)))
	}
	if c := capture.Load(); c != nil {
		(*c).SIPTraceRead(transport, laddr, raddr, msg)
	}
}

func (t tracer) SIPTraceWrite(transport, laddr, raddr string, msg []byte) {
	if t.debug {
		t.log.Debug().Str("transport", transport).Str("from", laddr).Str("to", raddr).Msg("sip send\n" + string(trace.Redact(msg)))
	}
	if c := capture.Load(); c != nil {
		(*c).SIPTraceWrite(transport, laddr, raddr, msg)
	}
}

// Serve opens every listener and serves until ctx ends. It returns once all
// listeners are up (or one failed) and keeps serving in the background.
func (e *Endpoint) Serve(ctx context.Context) error {
	for _, l := range e.cfg.Listeners {
		var serve func() error
		var closer func() error
		switch l.Network {
		case "udp":
			conn, err := e.listenUDP(l)
			if err != nil {
				return fmt.Errorf("listen udp %s: %w", l.Addr, err)
			}
			serve, closer = func() error { return e.serveUDP(conn) }, conn.Close
		case "tcp":
			ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(l.Addr))
			if err != nil {
				return fmt.Errorf("listen tcp %s: %w", l.Addr, err)
			}
			gl := e.guardListener(ln, "tcp", nil)
			serve, closer = func() error { return e.srv.ServeTCP(gl) }, ln.Close
		case "tls":
			if e.cfg.ServerTLS == nil {
				return fmt.Errorf("listen tls %s: no certificate", l.Addr)
			}
			ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(l.Addr))
			if err != nil {
				return fmt.Errorf("listen tls %s: %w", l.Addr, err)
			}
			// The limits count TCP connections; TLS runs inside them.
			gl := e.guardListener(ln, "tls", e.cfg.ServerTLS)
			serve, closer = func() error { return e.srv.ServeTLS(gl) }, ln.Close
		default:
			return fmt.Errorf("listen %s: transport %q not supported", l.Addr, l.Network)
		}
		e.closers = append(e.closers, closer)
		e.ready.Add(1)
		go func() {
			err := serve()
			// A listener that stopped serving makes the daemon unhealthy:
			// /v1/health and the systemd watchdog see it.
			e.ready.Add(-1)
			if ctx.Err() == nil {
				e.log.Error().Err(err).Str("listener", l.Network+":"+l.Addr.String()).Msg("SIP listener stopped serving")
			}
			select {
			case e.stopped <- l:
			default:
			}
		}()
		go func() { <-ctx.Done(); closer() }()
	}
	if g := e.cfg.Guard; g != nil && g.RateLimit > 0 {
		go g.sweepEvery(ctx, 10*time.Second)
	}
	return nil
}

// Ready reports whether every listener is serving.
func (e *Endpoint) Ready() bool { return int(e.ready.Load()) == len(e.cfg.Listeners) }

// Drain makes new INVITEs and OPTIONS get 503, so a front proxy stops sending.
func (e *Endpoint) Drain() { e.draining.Store(true) }

// Close shuts the user agent down.
func (e *Endpoint) Close() error { return e.ua.Close() }

// listener returns the listener for a transport: the first of the family
// of peer (any address of that family; invalid = no preference), else the
// first of the transport.
func (e *Endpoint) listener(network string, peer netip.Addr) (Listener, bool) {
	network = strings.ToLower(network)
	var first Listener
	found := false
	for _, l := range e.cfg.Listeners {
		if l.Network != network {
			continue
		}
		if !peer.IsValid() || sameFamily(l.Addr.Addr(), peer) {
			return l, true
		}
		if !found {
			first, found = l, true
		}
	}
	return first, found
}

// SupportsTransport reports whether uad listens on a transport.
func (e *Endpoint) SupportsTransport(network string) bool {
	_, ok := e.listener(network, netip.Addr{})
	return ok
}

// advertised returns host (an IPv6 literal without brackets) and port to
// write in Via and Contact for messages to peer.
func (e *Endpoint) advertised(network string, peer netip.Addr) (string, int) {
	l, _ := e.listener(network, peer)
	host, port := l.Addr.Addr().String(), int(l.Addr.Port())
	if e.cfg.Advertise != "" {
		if h, p, err := net.SplitHostPort(e.cfg.Advertise); err == nil {
			host = h
			fmt.Sscan(p, &port)
		} else {
			host = strings.TrimSuffix(strings.TrimPrefix(e.cfg.Advertise, "["), "]")
		}
	}
	return host, port
}

// Contact is uad's Contact URI for a transport, on the listener of peer's
// address family (invalid peer: the transport's first listener).
func (e *Endpoint) Contact(user, network string, peer netip.Addr) gosip.Uri {
	host, port := e.advertised(network, peer)
	u := gosip.Uri{Scheme: "sip", User: user, Host: URIHost(host), Port: port, UriParams: gosip.NewParams()}
	if strings.EqualFold(network, "tls") {
		u.Scheme = "sips"
	} else if strings.ToLower(network) != "udp" {
		u.UriParams.Add("transport", strings.ToLower(network))
	}
	return u
}

// Register routes the requests of a dialog (Call-ID + local tag) to owner.
func (e *Endpoint) Register(callID, localTag string, owner DialogOwner) {
	e.mu.Lock()
	e.dialogs[callID+"|"+localTag] = owner
	e.mu.Unlock()
}

// Unregister forgets a dialog; later requests get 481.
func (e *Endpoint) Unregister(callID, localTag string) {
	e.mu.Lock()
	delete(e.dialogs, callID+"|"+localTag)
	e.mu.Unlock()
}

func (e *Endpoint) lookup(req *gosip.Request) DialogOwner {
	to, cid := req.To(), req.CallID()
	if to == nil || cid == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dialogs[cid.Value()+"|"+tag]
}

// valid admits a request past the Guard and checks the headers every
// request needs (sipgo's parser accepts messages without them: they get 400).
func (e *Endpoint) valid(req *gosip.Request, tx gosip.ServerTransaction) bool {
	if !e.admit(req, tx) {
		return false
	}
	missing := missingHeaders(req)
	if len(missing) == 0 {
		return true
	}
	if !req.IsAck() {
		e.reply(tx, req, 400, "Bad Request - missing "+strings.Join(missing, ", "), nil)
	}
	return false
}

// missingHeaders names the headers every request needs that req lacks.
func missingHeaders(req *gosip.Request) []string {
	var missing []string
	if req.From() == nil {
		missing = append(missing, "From")
	}
	if req.To() == nil {
		missing = append(missing, "To")
	}
	if req.CallID() == nil {
		missing = append(missing, "Call-ID")
	}
	if req.CSeq() == nil {
		missing = append(missing, "CSeq")
	}
	if len(missing) == 0 && !strings.EqualFold(string(req.CSeq().MethodName), string(req.Method)) {
		missing = append(missing, "CSeq method matching the request")
	}
	return missing
}

// Supported lists the option tags uad implements (RFC 3261 §19.2):
// session timers (RFC 4028).
const Supported = "timer"

// supportedTag reports whether uad implements an option tag.
func supportedTag(tag string) bool { return strings.EqualFold(tag, "timer") }

// unsupported answers 420, naming them in Unsupported, when the request
// requires extensions uad lacks (RFC 3261 §8.2.2.3).
func (e *Endpoint) unsupported(req *gosip.Request, tx gosip.ServerTransaction) bool {
	var exts []string
	for _, h := range req.GetHeaders("Require") {
		for _, ext := range strings.Split(h.Value(), ",") {
			if ext = strings.TrimSpace(ext); ext != "" && !supportedTag(ext) {
				exts = append(exts, ext)
			}
		}
	}
	if len(exts) == 0 {
		return false
	}
	e.reply(tx, req, 420, "Bad Extension", nil, gosip.NewHeader("Unsupported", strings.Join(exts, ", ")))
	return true
}

func hasToTag(req *gosip.Request) bool {
	_, ok := req.To().Params.Get("tag")
	return ok
}

func (e *Endpoint) onInvite(req *gosip.Request, tx gosip.ServerTransaction) {
	if !e.valid(req, tx) || e.unsupported(req, tx) {
		return
	}
	if hasToTag(req) {
		e.onInDialog(req, tx)
		return
	}
	if e.draining.Load() {
		e.reply(tx, req, 503, "Service Unavailable", nil)
		return
	}
	e.handler.HandleInvite(req, tx)
}

func (e *Endpoint) onAck(req *gosip.Request, tx gosip.ServerTransaction) {
	if !e.valid(req, tx) {
		return
	}
	if owner := e.lookup(req); owner != nil {
		owner.HandleRequest(req, tx)
	}
}

func (e *Endpoint) onCancel(req *gosip.Request, tx gosip.ServerTransaction) {
	// A CANCEL that matched a pending INVITE was answered by sipgo's
	// transaction layer; one that reaches us matches nothing.
	if e.valid(req, tx) {
		e.reply(tx, req, 481, "Call/Transaction Does Not Exist", nil)
	}
}

func (e *Endpoint) onOptions(req *gosip.Request, tx gosip.ServerTransaction) {
	if !e.valid(req, tx) {
		return
	}
	if e.draining.Load() {
		e.reply(tx, req, 503, "Service Unavailable", nil)
		return
	}
	e.reply(tx, req, 200, "OK", nil,
		gosip.NewHeader("Allow", Allowed),
		gosip.NewHeader("Accept", "application/sdp"))
}

func (e *Endpoint) onInDialog(req *gosip.Request, tx gosip.ServerTransaction) {
	if !e.valid(req, tx) {
		return
	}
	if !req.IsInvite() && e.unsupported(req, tx) {
		return
	}
	if !hasToTag(req) {
		switch req.Method {
		case gosip.BYE, gosip.UPDATE, gosip.INFO, gosip.PRACK:
			e.reply(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		default: // outside a dialog uad takes no MESSAGE, REFER, NOTIFY
			e.reply(tx, req, 405, "Method Not Allowed", nil, gosip.NewHeader("Allow", Allowed))
		}
		return
	}
	owner := e.lookup(req)
	if owner == nil {
		e.reply(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	owner.HandleRequest(req, tx)
}

func (e *Endpoint) onNoRoute(req *gosip.Request, tx gosip.ServerTransaction) {
	if e.valid(req, tx) {
		e.reply(tx, req, 405, "Method Not Allowed", nil, gosip.NewHeader("Allow", Allowed))
	}
}

// reply answers a request outside any dialog, adding Server and, for
// bodies, Content-Type application/sdp.
func (e *Endpoint) reply(tx gosip.ServerTransaction, req *gosip.Request, code int, reason string, body []byte, hdrs ...gosip.Header) {
	_ = e.send(tx, NewResponse(req, code, reason, body, e.cfg.UserAgent, hdrs...))
}

// NewResponse builds a response outside any dialog: Server when userAgent
// is set, Content-Type application/sdp for a body, then hdrs.
func NewResponse(req *gosip.Request, code int, reason string, body []byte, userAgent string, hdrs ...gosip.Header) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, code, reason, body)
	if body != nil {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	if userAgent != "" {
		res.AppendHeader(gosip.NewHeader("Server", userAgent))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

// Respond sends a response on its server transaction.
func (e *Endpoint) Respond(tx gosip.ServerTransaction, res *gosip.Response) error {
	return e.send(tx, res)
}

// send writes a response; a failure is worth a warning: the peer will
// retransmit its request, or give up.
func (e *Endpoint) send(tx gosip.ServerTransaction, res *gosip.Response) error {
	err := tx.Respond(res)
	if err != nil && !errors.Is(err, gosip.ErrTransactionTerminated) {
		e.log.Warn().Err(err).Int("status", res.StatusCode).Str("call_id", callID(res)).Msg("SIP response not sent")
	}
	return err
}

func callID(m gosip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// WriteResponse writes a response again outside its transaction: RFC 3261
// §13.3.1.4 makes 2xx retransmission the UAS core's job, which sipgo
// leaves to us.
func (e *Endpoint) WriteResponse(res *gosip.Response) error {
	return e.srv.WriteResponse(res)
}

// UserAgent is the User-Agent and Server header value ("" = none).
func (e *Endpoint) UserAgent() string { return e.cfg.UserAgent }

// TxHooks follow a client transaction. They are called from goroutines of
// the transaction, one at a time, in order.
type TxHooks struct {
	// Response gets each response: provisional ones, the final one and,
	// after a 2xx to an INVITE, its retransmissions.
	Response func(*gosip.Response)
	// Failed is told when the transaction ended without a final response
	// (a timeout or a transport error).
	Failed func(error)
}

// Request starts a client transaction for a request uad built and follows
// it with hooks. It may block while sipgo resolves the target or connects
// (bounded by ctx): the call layer calls it off its loop. On an error no
// hook is called.
func (e *Endpoint) Request(ctx context.Context, req *gosip.Request, hooks TxHooks) error {
	var tx gosip.ClientTransaction
	err := e.route(ctx, req, func(ctx context.Context, req *gosip.Request) error {
		var err error
		tx, err = e.cli.TransactionRequest(ctx, req, keepVia)
		return err
	})
	if err != nil {
		return err
	}
	go follow(tx, req.IsInvite(), hooks)
	return nil
}

// Cancel sends the CANCEL of a pending INVITE; it keeps the INVITE's Via.
func (e *Endpoint) Cancel(ctx context.Context, cancel *gosip.Request, hooks TxHooks) error {
	tx, err := e.cli.TransactionRequest(ctx, cancel, keepVia)
	if err != nil {
		return err
	}
	go follow(tx, false, hooks)
	return nil
}

func follow(tx gosip.ClientTransaction, invite bool, hooks TxHooks) {
	if invite {
		tx.OnRetransmission(func(res *gosip.Response) { hooks.Response(res) })
	}
	for {
		select {
		case res := <-tx.Responses():
			hooks.Response(res)
			if res.IsProvisional() {
				continue
			}
			if !invite {
				tx.Terminate()
			}
			return
		case <-tx.Done():
			err := tx.Err()
			if err == nil {
				err = gosip.ErrTransactionTimeout
			}
			hooks.Failed(err)
			return
		}
	}
}

// Write sends a request outside any transaction (the ACK of a 2xx); ctx
// bounds the lookup and the connection, which sipgo's WriteRequest does not.
func (e *Endpoint) Write(ctx context.Context, req *gosip.Request) error {
	return e.route(ctx, req, func(ctx context.Context, req *gosip.Request) error {
		conn, err := e.ua.TransportLayer().ClientRequestConnection(ctx, req)
		if err != nil {
			return err
		}
		defer conn.TryClose()
		return conn.WriteMsg(req)
	})
}

// route gives req its Via and sends it with send. A request larger than
// 1300 bytes of a UDP dialog goes over TCP when uad listens on TCP and the
// next hop takes the connection, else over UDP anyway (RFC 3261 §18.1.1).
func (e *Endpoint) route(ctx context.Context, req *gosip.Request, send func(context.Context, *gosip.Request) error) error {
	e.addVia(req, strings.ToLower(req.Transport()))
	if !strings.EqualFold(req.Transport(), "udp") || !e.SupportsTransport("tcp") || len(req.String()) <= largeRequest {
		return send(ctx, req)
	}
	req.RemoveHeader("Via")
	req.SetTransport("TCP")
	req.Laddr = gosip.Addr{}
	e.addVia(req, "tcp")
	// A next hop without TCP refuses the connection at once; one that
	// drops it must not hold the request back for long.
	tcpCtx, cancel := context.WithTimeout(ctx, 4*e.cfg.T1)
	defer cancel()
	err := send(tcpCtx, req)
	if err == nil {
		return nil
	}
	e.log.Info().Err(err).Str("to", req.Destination()).Int("bytes", len(req.String())).
		Msg("no TCP path for a large request: sending it over UDP")
	req.RemoveHeader("Via")
	req.SetTransport("UDP")
	e.addVia(req, "udp")
	return send(ctx, req)
}

// addVia adds the Via for the request's transport and, over UDP, sends
// from the listening socket so the peer's responses and requests reach it.
func (e *Endpoint) addVia(req *gosip.Request, network string) {
	peer := addrOf(req.Destination())
	host, port := e.advertised(network, peer)
	via := &gosip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       strings.ToUpper(network),
		Host:            host,
		Port:            port,
		Params:          gosip.NewParams(),
	}
	via.Params.Add("branch", gosip.GenerateBranch())
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	if l, ok := e.listener(network, peer); ok && network == "udp" {
		req.Laddr = gosip.Addr{IP: net.IP(l.Addr.Addr().AsSlice()), Port: int(l.Addr.Port())}
	}
}

// prepare is the sipgo client option for requests the registrations send.
func (e *Endpoint) prepare(_ *sipgo.Client, req *gosip.Request) error {
	e.addVia(req, strings.ToLower(req.Transport()))
	return nil
}

// keepVia is the client option for a CANCEL, which reuses its INVITE's Via.
func keepVia(*sipgo.Client, *gosip.Request) error { return nil }
