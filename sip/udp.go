package sip

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// The UDP receive path. sipgo reads a UDP socket with one goroutine that
// parses every datagram, hands each message to a goroutine and a
// transaction of its own, and remembers every source address for the
// listener's life. So uad reads each socket with several of sipgo's loops,
// gives the socket large buffers for bursts, and decides in the transport's
// read filter, before any of that, on what needs no transaction: datagrams
// from sources not allowed, requests over the rate limit, and OPTIONS
// outside a dialog, which are answered statelessly (RFC 3261 §8.2.7).

// udpSockets are the listening UDP sockets by local address, for the
// responses the read filter writes.
type udpSockets struct {
	mu sync.RWMutex
	m  map[netip.AddrPort]*net.UDPConn
}

func (s *udpSockets) add(c *net.UDPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[netip.AddrPort]*net.UDPConn{}
	}
	s.m[c.LocalAddr().(*net.UDPAddr).AddrPort()] = c
}

func (s *udpSockets) get(a net.Addr) *net.UDPConn {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[ua.AddrPort()]
}

// listenUDP opens a UDP listener with the configured socket buffers.
func (e *Endpoint) listenUDP(l Listener) (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(l.Addr))
	if err != nil {
		return nil, err
	}
	e.sizeBuffers(conn, l)
	e.udp.add(conn)
	return conn, nil
}

// sizeBuffers asks for the configured SO_RCVBUF and SO_SNDBUF and logs what
// the kernel granted: Linux caps them at net.core.rmem_max / wmem_max (and
// reports twice the size set, its bookkeeping included).
func (e *Endpoint) sizeBuffers(conn *net.UDPConn, l Listener) {
	size := e.cfg.UDPBuffer
	if size > 0 {
		if err := conn.SetReadBuffer(size); err != nil {
			e.log.Warn().Err(err).Str("listener", "udp:"+l.Addr.String()).Msg("SO_RCVBUF not set")
		}
		if err := conn.SetWriteBuffer(size); err != nil {
			e.log.Warn().Err(err).Str("listener", "udp:"+l.Addr.String()).Msg("SO_SNDBUF not set")
		}
	}
	rcv, snd := socketBuffers(conn)
	rmax, rok := readSysctl("/proc/sys/net/core/rmem_max")
	wmax, wok := readSysctl("/proc/sys/net/core/wmem_max")
	ev := e.log.Info().Str("listener", "udp:"+l.Addr.String()).Int("asked", size).
		Int("rcvbuf", rcv).Int("sndbuf", snd).Int("readers", e.udpReaders())
	if rok && wok {
		ev = ev.Int("rmem_max", rmax).Int("wmem_max", wmax)
	}
	ev.Msg("SIP UDP socket buffers (getsockopt: Linux reports twice the size set)")
	var capped []string
	if rok && size > rmax {
		capped = append(capped, "net.core.rmem_max")
	}
	if wok && size > wmax {
		capped = append(capped, "net.core.wmem_max")
	}
	if len(capped) > 0 {
		e.log.Warn().Str("listener", "udp:"+l.Addr.String()).Int("asked", size).Int("rmem_max", rmax).Int("wmem_max", wmax).
			Msg("the kernel caps UDP socket buffers below sip.udp_buffer: raise " + strings.Join(capped, " and ") +
				" (sysctl) so that bursts are not dropped")
	}
}

// readSysctl reads an integer from /proc/sys.
func readSysctl(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}

// udpReaders is how many of sipgo's read loops serve each UDP socket.
func (e *Endpoint) udpReaders() int {
	if e.cfg.UDPReaders > 0 {
		return e.cfg.UDPReaders
	}
	return max(2, runtime.GOMAXPROCS(0))
}

// serveUDP runs the read loops on conn and returns when the first one
// stops. Each ServeUDP call wraps the same socket in a connection of its
// own: sipgo's pool maps the listen address (and each source a loop read
// from) to one of them, and any of them writes through the one socket;
// the listen port is registered once. Go lets one loop at a time into
// recvfrom, so the loops take turns reading and parse in parallel. A
// PacketConn that fanned one reader out to several loops would cost a copy
// and a goroutine hand-off per datagram.
func (e *Endpoint) serveUDP(conn *net.UDPConn) error {
	n := e.udpReaders()
	errs := make(chan error, n)
	for range n {
		go func() { errs <- e.srv.ServeUDP(conn) }()
	}
	return <-errs
}

// filtered reports whether a request went through the UDP read filter,
// where the Guard decided on it.
func (e *Endpoint) filtered(req *gosip.Request) bool {
	return strings.EqualFold(req.Transport(), "UDP")
}

// Parsers of the read filter: a full one for the requests it answers, and
// one that reads the To header alone (every other header stays unparsed
// text), to tell an initial INVITE from a re-INVITE.
var (
	fullParser = gosip.NewParser()
	toParser   = gosip.NewParser(gosip.WithHeadersParsers(map[string]gosip.HeaderParser{
		"to": gosip.DefaultHeadersParser()["to"],
		"t":  gosip.DefaultHeadersParser()["t"],
	}))
)

// readFilter is sipgo's transport read filter: it sees every datagram a UDP
// socket reads before sipgo parses it or remembers its source. Returning
// nil drops the datagram. It runs on sipgo's read loops, so it never
// returns an error (that would end the loop) and never panics through.
func (e *Endpoint) readFilter(props gosip.TransportReadProps, data []byte) (out []byte, err error) {
	if props.Transport != "UDP" {
		return data, nil
	}
	defer func() {
		if v := recover(); v != nil {
			e.log.Error().Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).
				Msg("recovered from a panic filtering a SIP datagram")
			if e.cfg.Recovered != nil {
				e.cfg.Recovered("sip")
			}
			out = nil
		}
	}()
	if len(data) >= 4 && bytes.EqualFold(data[:4], []byte("SIP/")) {
		return data, nil // a response: its transaction decides
	}
	from, ok := props.RemoteAddr.(*net.UDPAddr)
	if !ok {
		return data, nil
	}
	src := from.AddrPort().Addr().Unmap()
	method := requestMethod(data)
	g := e.cfg.Guard
	if g != nil && !g.allowed(src) {
		g.deniedNet.Add(1)
		e.log.Debug().Str("source", src.String()).Str("method", string(method)).Msg("SIP request from a network not allowed")
		if !g.Drop && method != gosip.ACK {
			e.refuse(g, props.LocalAddr, from, data, 403, "Forbidden")
		}
		return nil, nil
	}
	options := method == gosip.OPTIONS
	rated := g != nil && g.RateLimit > 0 && limited(method)
	if !options && !rated {
		return data, nil
	}
	var req *gosip.Request
	inDialog := false
	switch method {
	case gosip.OPTIONS:
		if req = parseRequest(fullParser, data); req == nil {
			e.log.Debug().Str("source", from.String()).Msg("unparsable OPTIONS dropped")
			return nil, nil
		}
		inDialog = hasTag(req.To())
	case gosip.INVITE:
		if r := parseRequest(toParser, data); r != nil {
			inDialog = hasTag(r.To())
		}
	}
	if rated && !inDialog && !g.take(src, time.Now()) {
		g.deniedRate.Add(1)
		e.log.Debug().Str("source", src.String()).Str("method", string(method)).Msg("SIP request over the rate limit")
		if !g.Drop {
			e.refuse(g, props.LocalAddr, from, data, 503, "Service Unavailable", gosip.NewHeader("Retry-After", "5"))
		}
		return nil, nil
	}
	if options && !inDialog {
		e.answerOptions(props.LocalAddr, from, req)
		return nil, nil
	}
	return data, nil
}

// requestMethod returns the method of a request when it is one of those
// the read filter tells apart, from the first token of its request line,
// read as sipgo does (case-insensitively); "" otherwise.
func requestMethod(data []byte) gosip.RequestMethod {
	i := bytes.IndexByte(data[:min(len(data), 16)], ' ')
	if i <= 0 {
		return ""
	}
	for _, m := range filterMethods {
		if bytes.EqualFold(data[:i], []byte(m)) {
			return m
		}
	}
	return ""
}

// filterMethods are the methods the read filter tells apart.
var filterMethods = []gosip.RequestMethod{gosip.INVITE, gosip.ACK, gosip.OPTIONS, gosip.REGISTER}

// parseRequest parses a datagram with p; nil unless it is a request.
func parseRequest(p *gosip.Parser, data []byte) *gosip.Request {
	msg, err := p.ParseSIP(data)
	if err != nil {
		return nil
	}
	req, _ := msg.(*gosip.Request)
	return req
}

func hasTag(to *gosip.ToHeader) bool {
	if to == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

// refuse answers a request the Guard refused, unless refusal responses are
// over their rate: then it is left unanswered, as with reject drop.
func (e *Endpoint) refuse(g *Guard, local net.Addr, to *net.UDPAddr, data []byte, code int, reason string, hdrs ...gosip.Header) {
	if !g.replies.take(time.Now()) {
		g.unanswered.Add(1)
		return
	}
	req := parseRequest(fullParser, data)
	if req == nil || req.IsAck() || req.Via() == nil {
		return
	}
	e.writeStateless(local, to, req, code, reason, hdrs...)
}

// answerOptions answers an OPTIONS outside a dialog without a transaction:
// 200 with what uad supports, 503 while draining, 400 when a header every
// request needs is missing.
func (e *Endpoint) answerOptions(local net.Addr, to *net.UDPAddr, req *gosip.Request) {
	if req.Via() == nil {
		return // nowhere to answer
	}
	e.statelessOptions.Add(1)
	switch missing := missingHeaders(req); {
	case len(missing) > 0:
		e.writeStateless(local, to, req, 400, "Bad Request - missing "+strings.Join(missing, ", "))
	case e.draining.Load():
		e.writeStateless(local, to, req, 503, "Service Unavailable")
	default:
		e.writeStateless(local, to, req, 200, "OK",
			gosip.NewHeader("Allow", Allowed),
			gosip.NewHeader("Accept", "application/sdp"))
	}
}

// tagSeed keys the To tags of stateless responses.
var tagSeed = maphash.MakeSeed()

// statelessTag is the To tag of a stateless response: the same for every
// retransmission of a request (RFC 3261 §8.2.7), different across requests.
func statelessTag(req *gosip.Request) string {
	var h maphash.Hash
	h.SetSeed(tagSeed)
	if cid := req.CallID(); cid != nil {
		h.WriteString(cid.Value())
	}
	if from := req.From(); from != nil {
		tag, _ := from.Params.Get("tag")
		h.WriteString("\x00" + tag)
	}
	if via := req.Via(); via != nil {
		branch, _ := via.Params.Get("branch")
		h.WriteString("\x00" + branch)
	}
	if cseq := req.CSeq(); cseq != nil {
		h.WriteString("\x00" + strconv.FormatUint(uint64(cseq.SeqNo), 10))
	}
	var b [8]byte
	sum := h.Sum64()
	for i := range b {
		b[i] = byte(sum >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

var writeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeStateless writes a response to req from the socket it came in on,
// to its source address, as sipgo answers over UDP.
func (e *Endpoint) writeStateless(local net.Addr, to *net.UDPAddr, req *gosip.Request, code int, reason string, hdrs ...gosip.Header) {
	conn := e.udp.get(local)
	if conn == nil {
		return
	}
	req.SetTransport("UDP")
	req.SetSource(to.String())
	if t := req.To(); t != nil && !hasTag(t) && code != 100 {
		t.Params.Add("tag", statelessTag(req))
	}
	res := NewResponse(req, code, reason, nil, e.cfg.UserAgent, hdrs...)
	buf := writeBuffers.Get().(*bytes.Buffer)
	defer writeBuffers.Put(buf)
	buf.Reset()
	res.StringWrite(buf)
	if _, err := conn.WriteToUDP(buf.Bytes(), to); err != nil {
		e.log.Debug().Err(err).Int("status", code).Str("to", to.String()).Msg("stateless SIP response not sent")
		return
	}
	if debug := e.log.GetLevel() <= zerolog.DebugLevel; debug || capture.Load() != nil {
		tracer{log: e.log, debug: debug}.SIPTraceWrite("UDP", conn.LocalAddr().String(), to.String(), buf.Bytes())
	}
}
