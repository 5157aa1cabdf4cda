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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
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
}

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

	ready    atomic.Int32 // listeners up
	draining atomic.Bool
}

// T1 is the RTT estimate all SIP timers derive from.
func (e *Endpoint) T1() time.Duration { return e.cfg.T1 }

// NewEndpoint builds the user agent; Serve starts listening.
func NewEndpoint(log zerolog.Logger, cfg Config, h Handler) (*Endpoint, error) {
	if cfg.T1 <= 0 {
		cfg.T1 = 500 * time.Millisecond
	}
	gosip.SetTimers(cfg.T1, 4*time.Second, 5*time.Second)
	slogger := slog.New(zerolog.NewSlogHandler(log.With().Str("component", "sipgo").Logger()))
	gosip.SetDefaultLogger(slogger)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgenTLSConfig(cfg.ClientTLS),
		sipgo.WithUserAgentTransactionLayerOptions(gosip.WithTransactionLayerLogger(slogger)),
		sipgo.WithUserAgentTransportLayerOptions(gosip.WithTransportLayerLogger(slogger)),
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
	e := &Endpoint{log: log, cfg: cfg, ua: ua, srv: srv, cli: cli, handler: h, dialogs: map[string]DialogOwner{}}
	if log.GetLevel() <= zerolog.DebugLevel {
		gosip.SIPDebug = true
		gosip.SIPDebugTracer(tracer{log})
	}
	srv.OnInvite(e.onInvite)
	srv.OnAck(e.onAck)
	srv.OnCancel(e.onCancel)
	srv.OnOptions(e.onOptions)
	for _, m := range []gosip.RequestMethod{gosip.BYE, gosip.UPDATE, gosip.INFO, gosip.PRACK, gosip.REFER, gosip.NOTIFY, gosip.MESSAGE} {
		srv.OnRequest(m, e.onInDialog)
	}
	srv.OnNoRoute(e.onNoRoute)
	return e, nil
}

// tracer logs every SIP message at debug level.
type tracer struct{ log zerolog.Logger }

func (t tracer) SIPTraceRead(transport, laddr, raddr string, msg []byte) {
	t.log.Debug().Str("transport", transport).Str("from", raddr).Str("to", laddr).Msg("sip recv\n" + string(msg))
}

func (t tracer) SIPTraceWrite(transport, laddr, raddr string, msg []byte) {
	t.log.Debug().Str("transport", transport).Str("from", laddr).Str("to", raddr).Msg("sip send\n" + string(msg))
}

// Serve opens every listener and serves until ctx ends. It returns once all
// listeners are up (or one failed) and keeps serving in the background.
func (e *Endpoint) Serve(ctx context.Context) error {
	for _, l := range e.cfg.Listeners {
		switch l.Network {
		case "udp":
			conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(l.Addr))
			if err != nil {
				return fmt.Errorf("listen udp %s: %w", l.Addr, err)
			}
			go func() { _ = e.srv.ServeUDP(conn) }()
			go func() { <-ctx.Done(); conn.Close() }()
		case "tcp":
			ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(l.Addr))
			if err != nil {
				return fmt.Errorf("listen tcp %s: %w", l.Addr, err)
			}
			go func() { _ = e.srv.ServeTCP(ln) }()
			go func() { <-ctx.Done(); ln.Close() }()
		case "tls":
			if e.cfg.ServerTLS == nil {
				return fmt.Errorf("listen tls %s: no certificate", l.Addr)
			}
			ln, err := tls.Listen("tcp", l.Addr.String(), e.cfg.ServerTLS)
			if err != nil {
				return fmt.Errorf("listen tls %s: %w", l.Addr, err)
			}
			go func() { _ = e.srv.ServeTLS(ln) }()
			go func() { <-ctx.Done(); ln.Close() }()
		default:
			return fmt.Errorf("listen %s: transport %q not supported", l.Addr, l.Network)
		}
		e.ready.Add(1)
	}
	return nil
}

// Ready reports whether every listener is up.
func (e *Endpoint) Ready() bool { return int(e.ready.Load()) == len(e.cfg.Listeners) }

// Drain makes new INVITEs and OPTIONS get 503, so a front proxy stops sending.
func (e *Endpoint) Drain() { e.draining.Store(true) }

// Close shuts the user agent down.
func (e *Endpoint) Close() error { return e.ua.Close() }

// listener returns the listener for a transport, preferring the first.
func (e *Endpoint) listener(network string) (Listener, bool) {
	network = strings.ToLower(network)
	for _, l := range e.cfg.Listeners {
		if l.Network == network {
			return l, true
		}
	}
	return Listener{}, false
}

// SupportsTransport reports whether uad listens on a transport.
func (e *Endpoint) SupportsTransport(network string) bool {
	_, ok := e.listener(network)
	return ok
}

// advertised returns host and port to write in Via and Contact.
func (e *Endpoint) advertised(network string) (string, int) {
	l, _ := e.listener(network)
	host, port := l.Addr.Addr().String(), int(l.Addr.Port())
	if e.cfg.Advertise != "" {
		if h, p, err := net.SplitHostPort(e.cfg.Advertise); err == nil {
			host = h
			fmt.Sscan(p, &port)
		} else {
			host = e.cfg.Advertise
		}
	}
	return host, port
}

// Contact is uad's Contact URI for a transport.
func (e *Endpoint) Contact(user, network string) gosip.Uri {
	host, port := e.advertised(network)
	u := gosip.Uri{Scheme: "sip", User: user, Host: host, Port: port, UriParams: gosip.NewParams()}
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
	if len(missing) == 0 {
		return true
	}
	if !req.IsAck() {
		e.Respond(tx, req, 400, "Bad Request - missing "+strings.Join(missing, ", "), nil)
	}
	return false
}

// unsupported answers 420 when the request requires an extension uad lacks.
func (e *Endpoint) unsupported(req *gosip.Request, tx gosip.ServerTransaction) bool {
	var exts []string
	for _, h := range req.GetHeaders("Require") {
		for _, ext := range strings.Split(h.Value(), ",") {
			if ext = strings.TrimSpace(ext); ext != "" {
				exts = append(exts, ext)
			}
		}
	}
	if len(exts) == 0 {
		return false
	}
	e.Respond(tx, req, 420, "Bad Extension", nil, gosip.NewHeader("Unsupported", strings.Join(exts, ", ")))
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
		e.Respond(tx, req, 503, "Service Unavailable", nil)
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
		e.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
	}
}

func (e *Endpoint) onOptions(req *gosip.Request, tx gosip.ServerTransaction) {
	if !e.valid(req, tx) {
		return
	}
	if e.draining.Load() {
		e.Respond(tx, req, 503, "Service Unavailable", nil)
		return
	}
	e.Respond(tx, req, 200, "OK", nil,
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
			e.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		default: // outside a dialog uad takes no MESSAGE, REFER, NOTIFY
			e.Respond(tx, req, 405, "Method Not Allowed", nil, gosip.NewHeader("Allow", Allowed))
		}
		return
	}
	owner := e.lookup(req)
	if owner == nil {
		e.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	owner.HandleRequest(req, tx)
}

func (e *Endpoint) onNoRoute(req *gosip.Request, tx gosip.ServerTransaction) {
	if e.valid(req, tx) {
		e.Respond(tx, req, 405, "Method Not Allowed", nil, gosip.NewHeader("Allow", Allowed))
	}
}

// Respond sends a response built from req, adding Server and, for bodies,
// Content-Type application/sdp. Errors are logged: the peer retransmits.
func (e *Endpoint) Respond(tx gosip.ServerTransaction, req *gosip.Request, code int, reason string, body []byte, hdrs ...gosip.Header) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, code, reason, body)
	if body != nil {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	if e.cfg.UserAgent != "" {
		res.AppendHeader(gosip.NewHeader("Server", e.cfg.UserAgent))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil && !errors.Is(err, gosip.ErrTransactionTerminated) {
		e.log.Debug().Err(err).Int("status", code).Msg("sip respond failed")
	}
	return res
}

// Retransmit writes a response again outside its transaction: RFC 3261
// §13.3.1.4 makes 2xx retransmission the UAS core's job, which sipgo leaves to us.
func (e *Endpoint) Retransmit(res *gosip.Response) error {
	return e.srv.WriteResponse(res)
}

// prepare is the sipgo client option for requests uad builds itself: it adds
// the Via for the request's transport and, over UDP, sends from the
// listening socket so the peer's responses and requests reach it.
func (e *Endpoint) prepare(_ *sipgo.Client, req *gosip.Request) error {
	network := strings.ToLower(req.Transport())
	host, port := e.advertised(network)
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
	if l, ok := e.listener(network); ok && network == "udp" {
		req.Laddr = gosip.Addr{IP: net.IP(l.Addr.Addr().AsSlice()), Port: int(l.Addr.Port())}
	}
	return nil
}

// keepVia is the client option for a CANCEL, which reuses its INVITE's Via.
func keepVia(*sipgo.Client, *gosip.Request) error { return nil }
