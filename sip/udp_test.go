package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// servingWith is an endpoint built from cfg, listening on UDP and TCP (TLS
// when cfg.ServerTLS is set) on a free port of 127.0.0.1 (cfg.Listeners is
// replaced), closed with the test.
func servingWith(t *testing.T, cfg Config) (*Endpoint, netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for try := 0; ; try++ {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr := udp.LocalAddr().(*net.UDPAddr).AddrPort()
		udp.Close()
		cfg.Listeners = []Listener{{"udp", addr}, {"tcp", addr}}
		if cfg.ServerTLS != nil {
			cfg.Listeners[1].Network = "tls"
		}
		ep, err := NewEndpoint(zerolog.Nop(), cfg, noCalls{})
		if err != nil {
			t.Fatal(err)
		}
		if err = ep.Serve(ctx); err == nil {
			t.Cleanup(func() { ep.Close() })
			return ep, addr
		}
		ep.Close()
		if try == 5 {
			t.Fatal(err)
		}
	}
}

// peer is a UDP socket of a test peer on 127.0.0.1.
type peer struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newPeer(t *testing.T, ip string, to netip.AddrPort) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, to: net.UDPAddrFromAddrPort(to)}
}

// request is a request from this peer; toTag set puts it in a dialog.
func (p *peer) request(method string, i int, toTag string) string {
	la := p.conn.LocalAddr().String()
	to := "<sip:uad@" + p.to.String() + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	return fmt.Sprintf("%[3]s sip:uad@%[2]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[1]s;branch=z9hG4bK-udp-%[4]d-%[5]d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:peer@%[1]s>;tag=p%[4]d\r\n"+
		"To: %[6]s\r\n"+
		"Call-ID: udp-%[4]d-%[5]d@127.0.0.1\r\n"+
		"CSeq: 1 %[3]s\r\n"+
		"Content-Length: 0\r\n\r\n", la, p.to.String(), method, i, os.Getpid(), to)
}

func (p *peer) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDP([]byte(msg), p.to); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next response, or "" when none came within wait.
func (p *peer) recv(wait time.Duration) string {
	p.t.Helper()
	buf := make([]byte, 65536)
	_ = p.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func status(res string) int {
	var code int
	fmt.Sscanf(res, "SIP/2.0 %d", &code)
	return code
}

func header(res, name string) string {
	m := regexp.MustCompile(`(?mi)^` + name + `:[ \t]*(.*?)\r$`).FindStringSubmatch(res)
	if m == nil {
		return ""
	}
	return m[1]
}

func poolSize(ep *Endpoint) int { return ep.ua.TransportLayer().Pool("udp").Size() }

// servingPool waits until sipgo's read loops hold the listening socket (the
// pool's first entry) and returns the pool's size.
func servingPool(t *testing.T, ep *Endpoint) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for poolSize(ep) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sipgo never took the UDP socket")
		}
		time.Sleep(time.Millisecond)
	}
	return poolSize(ep)
}

// An OPTIONS outside a dialog is answered from the read filter: 200 with
// Allow, Accept and Server, a To tag that a retransmission gets again, and
// the source never enters sipgo's connection pool. One inside a dialog
// takes sipgo's path.
func TestOptionsStateless(t *testing.T) {
	ep, addr := servingWith(t, Config{UserAgent: "uad-test"})
	p := newPeer(t, "127.0.0.1", addr)
	pool := servingPool(t, ep)

	req := p.request("OPTIONS", 1, "")
	p.send(req)
	res := p.recv(2 * time.Second)
	if status(res) != 200 {
		t.Fatalf("OPTIONS answered %q, want 200", res)
	}
	for name, want := range map[string]string{"Allow": Allowed, "Accept": "application/sdp", "Server": "uad-test"} {
		if got := header(res, name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	via := header(res, "Via")
	if !strings.Contains(via, "rport="+fmt.Sprint(p.conn.LocalAddr().(*net.UDPAddr).Port)) || !strings.Contains(via, "received=127.0.0.1") {
		t.Errorf("Via %q lacks rport and received (RFC 3581)", via)
	}
	tag := regexp.MustCompile(`;tag=([^;>\s]+)`).FindStringSubmatch(header(res, "To"))
	if tag == nil {
		t.Fatalf("To %q has no tag", header(res, "To"))
	}
	p.send(req) // a retransmission
	if again := header(p.recv(2*time.Second), "To"); !strings.Contains(again, ";tag="+tag[1]) {
		t.Errorf("retransmission answered with To %q, want tag %s again (RFC 3261 §8.2.7)", again, tag[1])
	}
	p.send(p.request("OPTIONS", 2, ""))
	if other := header(p.recv(2*time.Second), "To"); strings.Contains(other, ";tag="+tag[1]) {
		t.Errorf("another request got the same To tag %s", tag[1])
	}
	if got := poolSize(ep); got != pool {
		t.Errorf("sipgo's UDP pool went from %d to %d entries: the source entered it", pool, got)
	}
	if got := ep.TransportCounts().OptionsAnswered; got != 3 {
		t.Errorf("OptionsAnswered = %d, want 3", got)
	}

	p.send(p.request("OPTIONS", 3, "in-dialog"))
	if res := p.recv(2 * time.Second); status(res) != 200 {
		t.Errorf("in-dialog OPTIONS answered %q, want 200 from the transaction layer", res)
	}
	if got := poolSize(ep); got != pool+1 {
		t.Errorf("in-dialog OPTIONS: pool %d entries, want %d (it takes sipgo's path)", got, pool+1)
	}
	if got := ep.TransportCounts().OptionsAnswered; got != 3 {
		t.Errorf("OptionsAnswered = %d after an in-dialog OPTIONS, want 3", got)
	}

	ep.Drain()
	p.send(p.request("OPTIONS", 4, ""))
	if res := p.recv(2 * time.Second); status(res) != 503 {
		t.Errorf("OPTIONS while draining answered %q, want 503", res)
	}

	bad := strings.Replace(p.request("OPTIONS", 5, ""), "CSeq: 1 OPTIONS\r\n", "", 1)
	p.send(bad)
	if res := p.recv(2 * time.Second); status(res) != 400 || !strings.Contains(res, "missing CSeq") {
		t.Errorf("OPTIONS without CSeq answered %q, want 400 naming CSeq", res)
	}
}

// The allow-list refuses requests before sipgo sees them: 403, or nothing
// with Drop; responses from anywhere still pass.
func TestAllowListInReadFilter(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			g := &Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Drop: drop}
			ep, addr := servingWith(t, Config{Guard: g})
			pool := servingPool(t, ep)
			stranger := newPeer(t, "127.0.0.1", addr)
			for i, m := range []string{"OPTIONS", "INVITE", "BYE", "ACK"} {
				stranger.send(stranger.request(m, i, ""))
				res := stranger.recv(300 * time.Millisecond)
				switch {
				case drop || m == "ACK":
					if res != "" {
						t.Errorf("%s from a stranger answered %q, want nothing", m, res)
					}
				case status(res) != 403:
					t.Errorf("%s from a stranger answered %q, want 403", m, res)
				}
			}
			if got := g.Counts().NotAllowed; got != 4 {
				t.Errorf("NotAllowed = %d, want 4", got)
			}
			if got := poolSize(ep); got != pool {
				t.Errorf("refused datagrams grew sipgo's pool from %d to %d", pool, got)
			}
			friend := newPeer(t, "127.0.0.2", addr)
			friend.send(friend.request("OPTIONS", 9, ""))
			if res := friend.recv(2 * time.Second); status(res) != 200 {
				t.Errorf("OPTIONS from an allowed source answered %q, want 200", res)
			}
		})
	}
}

// The rate limit counts INVITE, REGISTER and OPTIONS outside a dialog per
// source, in the read filter; a re-INVITE is not counted.
func TestRateLimitInReadFilter(t *testing.T) {
	g := &Guard{RateLimit: 1, RateBurst: 2}
	ep, addr := servingWith(t, Config{Guard: g})
	p := newPeer(t, "127.0.0.1", addr)
	codes := map[int]int{}
	for i := range 6 {
		p.send(p.request("OPTIONS", i, ""))
		codes[status(p.recv(2*time.Second))]++
	}
	if codes[200] < 2 || codes[200] > 3 || codes[503] != 6-codes[200] {
		t.Errorf("6 OPTIONS at once with burst 2: %v, want 2 (or 3 with a refill) 200 and the rest 503", codes)
	}
	if got := g.Counts().RateLimited; got != uint64(codes[503]) {
		t.Errorf("RateLimited = %d, want %d", got, codes[503])
	}
	// A re-INVITE (To tag) is not limited: it reaches the dialog table, which
	// does not know it.
	p.send(p.request("INVITE", 10, "abc"))
	if res := p.recv(2 * time.Second); status(res) != 481 {
		t.Errorf("re-INVITE over the limit answered %q, want 481 (not limited)", res)
	}
	// An initial INVITE is limited.
	p.send(p.request("INVITE", 11, ""))
	if res := p.recv(2 * time.Second); status(res) != 503 || header(res, "Retry-After") != "5" {
		t.Errorf("INVITE over the limit answered %q, want 503 with Retry-After 5", res)
	}
	other := newPeer(t, "127.0.0.3", addr)
	other.send(other.request("OPTIONS", 12, ""))
	if res := other.recv(2 * time.Second); status(res) != 200 {
		t.Errorf("another source limited by the first: %q", res)
	}
	_ = ep
}

// Refusal responses have a budget shared by every source: a flood of
// refused requests gets at most about that many answers, the rest counted
// unanswered.
func TestRefusalsBounded(t *testing.T) {
	g := &Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	_, addr := servingWith(t, Config{Guard: g, UDPBuffer: 4 << 20})
	p := newPeer(t, "127.0.0.1", addr)
	_ = p.conn.SetReadBuffer(4 << 20)
	const n = 3 * refusalRate
	start := time.Now()
	for i := range n {
		p.send(p.request("OPTIONS", i, ""))
	}
	got := 0
	for p.recv(500*time.Millisecond) != "" {
		got++
	}
	c := g.Counts()
	answered := c.NotAllowed - c.Unanswered
	refill := uint64(time.Since(start).Seconds()*refusalRate) + 1
	if c.NotAllowed <= refusalRate+refill {
		t.Fatalf("only %d of %d datagrams reached uad: not a flood", c.NotAllowed, n)
	}
	if answered > refusalRate+refill || c.Unanswered == 0 {
		t.Errorf("%d refused requests got %d answers (%+v), want at most %d", c.NotAllowed, answered, c, refusalRate+refill)
	}
	if got == 0 || uint64(got) > answered {
		t.Errorf("the peer got %d responses, uad sent %d", got, answered)
	}
}

// The socket buffers are what the config asks for, up to the kernel's cap.
func TestUDPBuffers(t *testing.T) {
	const asked = 1 << 20
	ep, addr := servingWith(t, Config{UDPBuffer: asked, UDPReaders: 3})
	conn := ep.udp.get(net.UDPAddrFromAddrPort(addr))
	if conn == nil {
		t.Fatal("the listening socket is not known to the read filter")
	}
	rcv, snd := socketBuffers(conn)
	want := asked
	if limit, ok := readSysctl("/proc/sys/net/core/rmem_max"); ok {
		want = min(want, limit)
	}
	if rcv < want {
		t.Errorf("SO_RCVBUF = %d, want at least %d", rcv, want)
	}
	if limit, ok := readSysctl("/proc/sys/net/core/wmem_max"); ok && snd < min(asked, limit) {
		t.Errorf("SO_SNDBUF = %d, want at least %d", snd, min(asked, limit))
	}
	if ep.udpReaders() != 3 {
		t.Errorf("udpReaders() = %d, want 3", ep.udpReaders())
	}
	// With several read loops, a burst is still answered whole.
	p := newPeer(t, "127.0.0.1", addr)
	for i := range 50 {
		p.send(p.request("OPTIONS", i, ""))
	}
	for i := range 50 {
		if status(p.recv(2*time.Second)) != 200 {
			t.Fatalf("response %d of 50 missing", i)
		}
	}
}

func TestRequestMethod(t *testing.T) {
	for in, want := range map[string]gosip.RequestMethod{
		"INVITE sip:a@b SIP/2.0\r\n": gosip.INVITE,
		"options sip:a SIP/2.0\r\n":  gosip.OPTIONS,
		"REGISTER sip:b SIP/2.0":     gosip.REGISTER,
		"ACK sip:a SIP/2.0":          gosip.ACK,
		"BYE sip:a SIP/2.0":          "",
		"SIP/2.0 200 OK\r\n":         "",
		"INVITEX sip:a SIP/2.0":      "",
		"":                           "",
		" INVITE":                    "",
		"\r\n\r\n":                   "",
	} {
		if got := requestMethod([]byte(in)); got != want {
			t.Errorf("requestMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
