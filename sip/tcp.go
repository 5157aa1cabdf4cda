package sip

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// The TCP and TLS receive path. sipgo gives every accepted connection a
// goroutine and a 32 KiB read buffer for as long as the peer keeps it open,
// and waits as long as it takes for a message to complete. So uad's
// listeners cap the connections (in all and per source IP), close those
// silent for too long, and close those that began a message and do not
// finish it in time (a client trickling header bytes).

// ConnLimits bound the TCP and TLS connections uad accepts; zero values
// are no limit.
type ConnLimits struct {
	MaxConns       int           // connections open at once
	MaxPerSource   int           // of them from one source IP
	IdleTimeout    time.Duration // no byte either way this long closes a connection
	MessageTimeout time.Duration // a message (or TLS handshake) begun must be complete within this
}

// TransportCounts is what the receive path answered itself, refused or
// closed, for metrics.
type TransportCounts struct {
	// OptionsAnswered counts out-of-dialog OPTIONS over UDP answered from
	// the read filter, without a transaction.
	OptionsAnswered uint64
	// TCPOpen is the TCP and TLS connections accepted and open now.
	TCPOpen     int
	TCPAccepted uint64
	// Connections closed at once because sip.tcp_max_connections or
	// sip.tcp_max_per_source was reached.
	TCPRefusedLimit  uint64
	TCPRefusedSource uint64
	// Connections closed for silence (sip.tcp_idle_timeout) or for a
	// message or TLS handshake not complete in time (sip.tcp_message_timeout).
	TCPClosedIdle uint64
	TCPClosedSlow uint64
}

// TransportCounts returns the counts of the receive path.
func (e *Endpoint) TransportCounts() TransportCounts {
	t := e.conns
	t.mu.Lock()
	open := t.open
	t.mu.Unlock()
	return TransportCounts{
		OptionsAnswered:  e.statelessOptions.Load(),
		TCPOpen:          open,
		TCPAccepted:      t.accepted.Load(),
		TCPRefusedLimit:  t.refusedLimit.Load(),
		TCPRefusedSource: t.refusedSource.Load(),
		TCPClosedIdle:    t.closedIdle.Load(),
		TCPClosedSlow:    t.closedSlow.Load(),
	}
}

// connTracker counts the open connections of every TCP and TLS listener.
type connTracker struct {
	limits ConnLimits
	log    zerolog.Logger

	mu       sync.Mutex
	open     int
	bySource map[netip.Addr]int

	accepted, refusedLimit, refusedSource, closedIdle, closedSlow atomic.Uint64
	// Warnings, one of each kind every 10 s at most.
	warnRefused, warnAccept, warnSlow throttle
}

func newConnTracker(limits ConnLimits, log zerolog.Logger) *connTracker {
	return &connTracker{limits: limits, log: log, bySource: map[netip.Addr]int{}}
}

// acquire takes a connection slot for src; false (counted and logged)
// when a limit is reached.
func (t *connTracker) acquire(src netip.Addr, listener string) bool {
	t.mu.Lock()
	reason := ""
	switch {
	case t.limits.MaxConns > 0 && t.open >= t.limits.MaxConns:
		reason = "sip.tcp_max_connections"
		t.refusedLimit.Add(1)
	case t.limits.MaxPerSource > 0 && t.bySource[src] >= t.limits.MaxPerSource:
		reason = "sip.tcp_max_per_source"
		t.refusedSource.Add(1)
	default:
		t.open++
		t.bySource[src]++
		t.accepted.Add(1)
	}
	t.mu.Unlock()
	if reason != "" {
		t.log.Debug().Str("listener", listener).Str("source", src.String()).Str("limit", reason).Msg("SIP connection refused")
		if t.warnRefused.ok(time.Now()) {
			c := t.counts()
			t.log.Warn().Str("listener", listener).Str("source", src.String()).Str("limit", reason).
				Uint64("refused_total", c.refusedLimit+c.refusedSource).Msg("SIP connections refused: a limit is reached")
		}
	}
	return reason == ""
}

func (t *connTracker) release(src netip.Addr) {
	t.mu.Lock()
	t.open--
	if n := t.bySource[src] - 1; n > 0 {
		t.bySource[src] = n
	} else {
		delete(t.bySource, src)
	}
	t.mu.Unlock()
}

type trackerCounts struct{ refusedLimit, refusedSource uint64 }

func (t *connTracker) counts() trackerCounts {
	return trackerCounts{t.refusedLimit.Load(), t.refusedSource.Load()}
}

// writeTimeout bounds a write to a peer that does not read.
func (t *connTracker) writeTimeout() time.Duration {
	if t.limits.MessageTimeout > 0 {
		return t.limits.MessageTimeout
	}
	return t.limits.IdleTimeout
}

// throttle lets one log line through every 10 s.
type throttle struct{ next atomic.Int64 }

func (t *throttle) ok(now time.Time) bool {
	n := t.next.Load()
	return now.UnixNano() >= n && t.next.CompareAndSwap(n, now.Add(10*time.Second).UnixNano())
}

// guardedListener is a TCP listener that admits connections within the
// limits, and (for TLS) wraps them in TLS under those limits.
type guardedListener struct {
	net.Listener
	e    *Endpoint
	name string      // "tcp:ADDR", for logs
	tls  *tls.Config // nil for TCP
}

func (e *Endpoint) guardListener(ln net.Listener, network string, tlsConf *tls.Config) net.Listener {
	return &guardedListener{Listener: ln, e: e, name: network + ":" + ln.Addr().String(), tls: tlsConf}
}

// Accept returns the next connection within the limits; those beyond are
// closed at once. Running out of file descriptors or memory only slows it
// down: sipgo ends a listener on any Accept error.
func (l *guardedListener) Accept() (net.Conn, error) {
	t := l.e.conns
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !transientAccept(err) {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if t.warnAccept.ok(time.Now()) {
				t.log.Warn().Err(err).Str("listener", l.name).Msg("SIP accept failed; retrying")
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		src := remoteIP(c)
		if g := l.e.cfg.Guard; g != nil && g.Drop && !g.allowed(src) {
			// Nothing to answer: the connection costs nothing more.
			g.deniedNet.Add(1)
			l.e.log.Debug().Str("source", src.String()).Str("listener", l.name).Msg("SIP connection from a network not allowed")
			reset(c)
			continue
		}
		if !t.acquire(src, l.name) {
			reset(c)
			continue
		}
		tracked := &trackedConn{Conn: c, t: t, src: src}
		w := &watchedConn{Conn: tracked, t: t, accepted: time.Now()}
		if l.tls != nil {
			w.tls = tls.Server(tracked, l.tls)
			w.Conn = w.tls
		}
		return w, nil
	}
}

// transientAccept reports whether an Accept error passes with time.
func transientAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// reset closes a refused connection with a RST: no TIME_WAIT left behind
// for each of a flood of them.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// trackedConn gives its slot back when closed.
type trackedConn struct {
	net.Conn
	t    *connTracker
	src  netip.Addr
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.release(c.src) })
	return c.Conn.Close()
}

// watchedConn closes a connection silent for IdleTimeout, or whose
// message (or TLS handshake) is not complete MessageTimeout after it
// began. sipgo reads each connection from one goroutine, so the reading
// side's state needs no lock.
type watchedConn struct {
	net.Conn
	t          *connTracker
	tls        *tls.Conn // TLS: the handshake, done before the first read
	handshaken bool
	accepted   time.Time    // with the monotonic clock the times below count on
	active     atomic.Int64 // the last byte either way, in nanoseconds since accepted
	frame      framer
}

// touch notes a byte either way at now.
func (c *watchedConn) touch(now time.Time) { c.active.Store(int64(now.Sub(c.accepted))) }

// lastActive is when the last byte went either way.
func (c *watchedConn) lastActive() time.Time {
	return c.accepted.Add(time.Duration(c.active.Load()))
}

func (c *watchedConn) Read(b []byte) (int, error) {
	if c.tls != nil && !c.handshaken {
		if err := c.handshake(); err != nil {
			return 0, err
		}
	}
	lim := c.t.limits
	for {
		if lim.IdleTimeout > 0 || lim.MessageTimeout > 0 {
			_ = c.Conn.SetReadDeadline(c.readDeadline())
		}
		n, err := c.Conn.Read(b)
		if n > 0 {
			now := time.Now()
			c.touch(now)
			c.frame.feed(b[:n], now)
			return n, nil // an error comes back on the next read
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return 0, err
		}
		if reason := c.expired(time.Now()); reason != "" {
			c.closeFor(reason)
			return 0, io.EOF
		}
		// A write kept the connection active: read on.
	}
}

// readDeadline is when the next byte is due: the idle limit, or sooner
// the end of the time the pending message has.
func (c *watchedConn) readDeadline() time.Time {
	lim := c.t.limits
	var d time.Time
	if lim.IdleTimeout > 0 {
		d = c.lastActive().Add(lim.IdleTimeout)
	}
	if since := c.frame.since; lim.MessageTimeout > 0 && !since.IsZero() {
		if m := since.Add(lim.MessageTimeout); d.IsZero() || m.Before(d) {
			d = m
		}
	}
	return d
}

// expired names the limit a connection went past at now, or "".
func (c *watchedConn) expired(now time.Time) string {
	lim := c.t.limits
	if since := c.frame.since; lim.MessageTimeout > 0 && !since.IsZero() && now.Sub(since) >= lim.MessageTimeout {
		return "message"
	}
	if lim.IdleTimeout > 0 && now.Sub(c.lastActive()) >= lim.IdleTimeout {
		return "idle"
	}
	return ""
}

func (c *watchedConn) closeFor(reason string) {
	var ev *zerolog.Event
	if reason == "idle" {
		c.t.closedIdle.Add(1)
		ev = c.t.log.Debug()
	} else {
		c.t.closedSlow.Add(1)
		// A message that never completes is worth a look, once in a while.
		if c.t.warnSlow.ok(time.Now()) {
			ev = c.t.log.Warn()
		} else {
			ev = c.t.log.Debug()
		}
	}
	ev.Str("remote", c.RemoteAddr().String()).Str("reason", reason).
		Uint64("closed_idle", c.t.closedIdle.Load()).Uint64("closed_slow", c.t.closedSlow.Load()).
		Msg("SIP connection closed: " + map[string]string{
			"idle":      "nothing received or sent for sip.tcp_idle_timeout",
			"message":   "a message still incomplete after sip.tcp_message_timeout",
			"handshake": "no TLS handshake within sip.tcp_message_timeout",
		}[reason])
	_ = c.Conn.Close()
}

// handshake completes the TLS handshake within the time a message has.
func (c *watchedConn) handshake() error {
	c.handshaken = true
	lim := c.t.limits
	limit := lim.MessageTimeout
	if limit <= 0 {
		limit = lim.IdleTimeout
	}
	if limit > 0 {
		_ = c.tls.SetDeadline(c.accepted.Add(limit))
	}
	err := c.tls.Handshake()
	if err == nil {
		_ = c.tls.SetDeadline(time.Time{})
		c.touch(time.Now())
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.closeFor("handshake")
		return io.EOF
	}
	c.t.log.Debug().Err(err).Str("remote", c.RemoteAddr().String()).Msg("TLS handshake failed")
	_ = c.Conn.Close()
	return io.EOF
}

func (c *watchedConn) Write(b []byte) (int, error) {
	if wt := c.t.writeTimeout(); wt > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(wt))
	}
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.touch(time.Now())
	}
	return n, err
}

// framer follows where SIP messages begin and end in a stream without
// parsing them (RFC 3261 §18.3): a message is its header lines up to the
// blank line, then Content-Length bytes of body. Of the headers, only the
// name and digits of Content-Length are read.
type framer struct {
	state    uint8     // framing*
	since    time.Time // first byte of the message in progress; zero between messages
	length   int       // Content-Length of the message in progress
	bodyLeft int

	// The current header line.
	lineLen int      // its bytes so far, CR included
	part    uint8    // line*: where in the line the next byte is
	name    [16]byte // the header name, up to the colon
	nameLen int
	value   int  // the digits of Content-Length so far
	digits  bool // whether there were any
}

const (
	framingBetween uint8 = iota // before a message: CRLF keep-alives only
	framingHeaders
	framingBody
)

const (
	lineName  uint8 = iota // up to the colon
	lineSpace              // after the colon of Content-Length: spaces, then digits
	lineValue              // the digits
	lineRest               // nothing more to read in this line
)

func (f *framer) feed(p []byte, now time.Time) {
	for len(p) > 0 {
		switch f.state {
		case framingBetween:
			i := 0
			for i < len(p) && (p[i] == '\r' || p[i] == '\n') {
				i++
			}
			p = p[i:]
			if len(p) > 0 {
				f.state, f.since, f.length = framingHeaders, now, 0
				f.newLine()
			}
		case framingHeaders:
			i := 0
			for i < len(p) && p[i] != '\n' {
				f.lineByte(p[i])
				i++
			}
			if i == len(p) {
				return
			}
			p = p[i+1:]
			if f.endLine() {
				f.bodyLeft = f.length
				f.state = framingBody
			}
		case framingBody:
			n := min(f.bodyLeft, len(p))
			f.bodyLeft -= n
			p = p[n:]
		}
		if f.state == framingBody && f.bodyLeft == 0 {
			f.state, f.since = framingBetween, time.Time{}
		}
	}
}

func (f *framer) newLine() {
	f.lineLen, f.part, f.nameLen, f.value, f.digits = 0, lineName, 0, 0, false
}

func (f *framer) lineByte(c byte) {
	f.lineLen++
	switch f.part {
	case lineName:
		switch {
		case c == ':':
			f.part = lineRest
			if name := bytes.TrimRight(f.name[:f.nameLen], " \t"); bytes.EqualFold(name, []byte("content-length")) ||
				bytes.EqualFold(name, []byte("l")) {
				f.part = lineSpace
			}
		case f.nameLen < len(f.name):
			f.name[f.nameLen] = c
			f.nameLen++
		default: // longer than any name of interest
			f.part = lineRest
		}
	case lineSpace:
		if c == ' ' || c == '\t' {
			return
		}
		f.part = lineValue
		fallthrough
	case lineValue:
		if c < '0' || c > '9' {
			f.part = lineRest
			return
		}
		f.digits = true
		if f.value < 1<<24 {
			f.value = f.value*10 + int(c-'0')
		}
	}
}

// endLine ends a header line; true when it was the blank line ending the
// headers.
func (f *framer) endLine() bool {
	blank := f.lineLen == 0 || f.lineLen == 1 && f.part == lineName && f.nameLen == 1 && f.name[0] == '\r'
	if f.digits {
		f.length = f.value
	}
	f.newLine()
	return blank
}
