package sip

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialTCP connects from ip to addr.
func dialTCP(t *testing.T, ip string, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ip)}, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedConn reports whether a connection from ip is closed by the server
// at once: the reset may even reach the dialer before its connect returns.
func refusedConn(t *testing.T, ip string, addr netip.AddrPort) bool {
	t.Helper()
	c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ip)}, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		return errors.Is(err, syscall.ECONNRESET)
	}
	defer c.Close()
	return closedByPeer(c, 2*time.Second)
}

// closedByPeer waits up to wait for the server to close c; it reports
// whether it did (EOF or a reset), not a timeout.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// waitCounts polls the endpoint's counts until ok holds.
func waitCounts(t *testing.T, ep *Endpoint, what string, ok func(TransportCounts) bool) TransportCounts {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := ep.TransportCounts()
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: counts %+v", what, c)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tcpOptions is a complete OPTIONS over TCP, with a body of n bytes.
func tcpOptions(c net.Conn, i, n int) string {
	la := c.LocalAddr().String()
	return fmt.Sprintf("OPTIONS sip:uad@%[2]s;transport=tcp SIP/2.0\r\n"+
		"Via: SIP/2.0/TCP %[1]s;branch=z9hG4bK-tcp-%[3]d\r\n"+
		"From: <sip:peer@%[1]s>;tag=t%[3]d\r\n"+
		"To: <sip:uad@%[2]s>\r\n"+
		"Call-ID: tcp-%[3]d@127.0.0.1\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Content-Type: text/plain\r\n"+
		"l: %[4]d\r\n\r\n%[5]s", la, c.RemoteAddr().String(), i, n, strings.Repeat("x", n))
}

// readResponse reads one response's status line and headers from r.
func readResponse(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a response: %v (so far %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String()
		}
	}
}

// Connections beyond the per-source or the total cap are closed at once
// and counted; a slot freed is taken again.
func TestTCPConnectionCaps(t *testing.T) {
	ep, addr := servingWith(t, Config{TCP: ConnLimits{MaxConns: 3, MaxPerSource: 2}})
	a1 := dialTCP(t, "127.0.0.1", addr)
	dialTCP(t, "127.0.0.1", addr)
	waitCounts(t, ep, "two connections open", func(c TransportCounts) bool { return c.TCPOpen == 2 })
	if !refusedConn(t, "127.0.0.1", addr) {
		t.Errorf("a third connection from one source stayed open with tcp_max_per_source 2")
	}
	dialTCP(t, "127.0.0.2", addr)
	waitCounts(t, ep, "three open", func(c TransportCounts) bool { return c.TCPOpen == 3 })
	if !refusedConn(t, "127.0.0.3", addr) {
		t.Errorf("a fourth connection stayed open with tcp_max_connections 3")
	}
	c := ep.TransportCounts()
	if c.TCPRefusedSource != 1 || c.TCPRefusedLimit != 1 || c.TCPAccepted != 3 {
		t.Errorf("counts %+v, want 1 refused per source, 1 over the total, 3 accepted", c)
	}
	a1.Close()
	waitCounts(t, ep, "a slot freed", func(c TransportCounts) bool { return c.TCPOpen == 2 })
	c5 := dialTCP(t, "127.0.0.3", addr)
	r := bufio.NewReader(c5)
	if _, err := c5.Write([]byte(tcpOptions(c5, 5, 0))); err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, c5, r); status(res) != 200 {
		t.Errorf("OPTIONS on the connection taking the freed slot: %q", res)
	}
}

// A connection silent for IdleTimeout is closed and counted.
func TestTCPIdleTimeout(t *testing.T) {
	ep, addr := servingWith(t, Config{TCP: ConnLimits{IdleTimeout: 300 * time.Millisecond, MessageTimeout: 5 * time.Second}})
	c := dialTCP(t, "127.0.0.1", addr)
	start := time.Now()
	if !closedByPeer(c, 3*time.Second) {
		t.Fatal("an idle connection was not closed")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	waitCounts(t, ep, "closed idle", func(c TransportCounts) bool { return c.TCPClosedIdle == 1 && c.TCPOpen == 0 })
}

// A client trickling the bytes of a message that never completes is cut
// off after MessageTimeout although it is never idle; a complete message
// with a body, then silence, is not.
func TestTCPSlowMessage(t *testing.T) {
	ep, addr := servingWith(t, Config{TCP: ConnLimits{IdleTimeout: 10 * time.Second, MessageTimeout: 400 * time.Millisecond}})

	good := dialTCP(t, "127.0.0.1", addr)
	r := bufio.NewReader(good)
	if _, err := good.Write([]byte("\r\n\r\n" + tcpOptions(good, 1, 7))); err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, good, r); status(res) != 200 {
		t.Fatalf("complete OPTIONS answered %q", res)
	}

	slow := dialTCP(t, "127.0.0.2", addr)
	msg := tcpOptions(slow, 2, 0)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 1)
		_, _ = slow.Read(buf)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
trickle:
	for i := 0; i < len(msg)-4; i++ { // never the blank line
		select {
		case d := <-closed:
			if d < 350*time.Millisecond {
				t.Errorf("closed after %v, before the message timeout", d)
			}
			break trickle
		case <-tick.C:
			if _, err := slow.Write([]byte{msg[i]}); err != nil {
				break trickle // closed under the write
			}
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a trickling client was not cut off")
		}
	}
	c := waitCounts(t, ep, "closed slow", func(c TransportCounts) bool { return c.TCPClosedSlow == 1 })
	if c.TCPClosedIdle != 0 {
		t.Errorf("counts %+v: the slow client counted idle", c)
	}

	// The complete message, its body included, left nothing pending: the
	// connection outlives the message timeout and still works.
	time.Sleep(600 * time.Millisecond) // a window longer than the message timeout
	if _, err := good.Write([]byte(tcpOptions(good, 3, 0))); err != nil {
		t.Fatalf("the connection of a complete message was closed: %v", err)
	}
	if res := readResponse(t, good, r); status(res) != 200 {
		t.Errorf("second OPTIONS answered %q", res)
	}
}

// A TLS connection must finish its handshake within MessageTimeout; a
// handshaken one carries SIP.
func TestTLSHandshakeTimeout(t *testing.T) {
	cert := selfSigned(t)
	ctxEp, addr := servingTLS(t, cert, ConnLimits{IdleTimeout: 10 * time.Second, MessageTimeout: 300 * time.Millisecond})
	raw := dialTCP(t, "127.0.0.1", addr)
	if !closedByPeer(raw, 3*time.Second) {
		t.Fatal("a connection without a TLS handshake was not closed")
	}
	waitCounts(t, ctxEp, "handshake timeout", func(c TransportCounts) bool { return c.TCPClosedSlow == 1 && c.TCPOpen == 0 })

	tc, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test certificate
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Write([]byte(tcpOptions(tc, 1, 0))); err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, tc, bufio.NewReader(tc)); status(res) != 200 {
		t.Errorf("OPTIONS over TLS answered %q", res)
	}
}

func servingTLS(t *testing.T, cert tls.Certificate, lim ConnLimits) (*Endpoint, netip.AddrPort) {
	t.Helper()
	ep, addr := servingWith(t, Config{TCP: lim, ServerTLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	return ep, addr
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The framer finds message ends however the stream is cut.
func TestFramer(t *testing.T) {
	msg := func(body string, lengthHeader string) string {
		return "INVITE sip:a SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n" + lengthHeader + "\r\nSubject: l: 99\r\n\r\n" + body
	}
	stream := "\r\n" + msg("v=0\r\n\r\nm=x\r\n", "Content-Length: 14") + "\r\n\r\n" +
		msg("", "l:0") + msg("abc", "CONTENT-LENGTH \t:   3")
	ends := []int{} // where each message ends in stream
	for i, n := 0, 0; n < 3; n++ {
		i += strings.Index(stream[i:], "\r\n\r\n") + 4
		switch n {
		case 0:
			i += 14
		case 2:
			i += 3
		}
		ends = append(ends, i)
	}
	now := time.Now()
	for cut := 1; cut <= len(stream); cut++ {
		var f framer
		complete := 0
		for i := 0; i < len(stream); i += cut {
			chunk := stream[i:min(i+cut, len(stream))]
			f.feed([]byte(chunk), now)
			end := i + len(chunk)
			want := 0
			for _, e := range ends {
				if e <= end {
					want++
				}
			}
			pending := !f.since.IsZero()
			// Between messages (and their keep-alives) nothing is pending.
			if wantPending := want < 3 && stream[end:] != "" && !onlyCRLF(stream[ends0(ends, want):end]); pending != wantPending {
				t.Fatalf("chunks of %d, at %d: pending %v, want %v", cut, end, pending, wantPending)
			}
			complete = want
		}
		if complete != 3 || !f.since.IsZero() {
			t.Fatalf("chunks of %d: %d messages, pending %v", cut, complete, !f.since.IsZero())
		}
	}
}

// ends0 is where the message after the first n ends begins its stretch.
func ends0(ends []int, n int) int {
	if n == 0 {
		return 0
	}
	return ends[n-1]
}

func onlyCRLF(s string) bool { return strings.Trim(s, "\r\n") == "" }
