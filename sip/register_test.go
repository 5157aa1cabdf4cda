package sip

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

func TestRefreshDelay(t *testing.T) {
	for _, granted := range []time.Duration{64 * time.Second, 120 * time.Second, 300 * time.Second, 3600 * time.Second} {
		for _, rnd := range []float64{0, 0.25, 0.5, 0.999} {
			d := refreshDelay(granted, rnd)
			if d < granted/2 || d > granted*9/10 {
				t.Errorf("refreshDelay(%v, %v) = %v, want 50%%..90%% of it", granted, rnd, d)
			}
			if d > granted-refreshMargin {
				t.Errorf("refreshDelay(%v, %v) = %v, want at least 32 s before expiry", granted, rnd, d)
			}
		}
	}
	// The spread covers the range.
	if lo, hi := refreshDelay(3600*time.Second, 0), refreshDelay(3600*time.Second, 0.999); lo != 1800*time.Second || hi < 3230*time.Second {
		t.Errorf("refreshDelay(1h) spans %v..%v, want 30m..~54m", lo, hi)
	}
	// 90% of 300 s leaves 30 s: the 32 s margin caps it.
	if d := refreshDelay(300*time.Second, 0.999); d != 268*time.Second {
		t.Errorf("refreshDelay(300s, max) = %v, want 268s", d)
	}
	// Short lifetimes: the margin wins over 50%, down to a floor.
	for _, c := range []struct{ granted, want time.Duration }{
		{60 * time.Second, 28 * time.Second},
		{40 * time.Second, 8 * time.Second},
		{33 * time.Second, 5 * time.Second},
		{10 * time.Second, 5 * time.Second},
		{4 * time.Second, 2 * time.Second},
		{1 * time.Second, time.Second},
	} {
		for _, rnd := range []float64{0, 0.999} {
			if d := refreshDelay(c.granted, rnd); d != c.want {
				t.Errorf("refreshDelay(%v, %v) = %v, want %v", c.granted, rnd, d, c.want)
			}
		}
	}
}

func TestRetryDelay(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second,
		80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		if d := retryDelay(i); d != w {
			t.Errorf("retryDelay(%d) = %v, want %v", i, d, w)
		}
	}
	if d := retryDelay(1000); d != retryMax {
		t.Errorf("retryDelay(1000) = %v, want %v", d, retryMax)
	}
}

func parseResponse(t *testing.T, text string) *gosip.Response {
	t.Helper()
	msg, err := gosip.ParseMessage([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return msg.(*gosip.Response)
}

const respHead = `SIP/2.0 %s
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1
From: <sip:bob@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: c1
CSeq: 2 REGISTER
%sContent-Length: 0

`

func TestMinExpires(t *testing.T) {
	for _, c := range []struct {
		hdr   string
		asked int
		want  int
		ok    bool
	}{
		{"Min-Expires: 120\n", 60, 120, true},
		{"Min-Expires:  3600 \n", 300, 3600, true},
		{"Min-Expires: 60\n", 60, 0, false}, // not more than asked: nothing to retry with
		{"Min-Expires: soon\n", 60, 0, false},
		{"", 60, 0, false},
	} {
		res := parseResponse(t, fmt.Sprintf(respHead, "423 Interval Too Brief", c.hdr))
		got, ok := minExpires(res, c.asked)
		if got != c.want || ok != c.ok {
			t.Errorf("minExpires(%q, %d) = %d, %v; want %d, %v", c.hdr, c.asked, got, ok, c.want, c.ok)
		}
	}
}

func TestGrantedExpires(t *testing.T) {
	ours := gosip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: 5070}
	for _, c := range []struct {
		name, hdrs string
		want       int
	}{
		{"our contact's expires", "Contact: <sip:alice@10.0.0.1>;expires=999, <sip:bob@127.0.0.1:5070>;expires=120\nExpires: 3600\n", 120},
		{"separate Contact lines", "Contact: <sip:bob@10.0.0.1>;expires=999\nContact: <sip:bob@127.0.0.1:5070;transport=udp>;q=1;expires=90\n", 90},
		{"Expires header", "Contact: <sip:other@10.0.0.1>;expires=999\nExpires: 1800\n", 1800},
		{"nothing said", "", 300},
		{"binding removed", "Contact: <sip:bob@127.0.0.1:5070>;expires=0\n", -1},
	} {
		res := parseResponse(t, fmt.Sprintf(respHead, "200 OK", c.hdrs))
		if got := grantedExpires(res, ours, 300); got != c.want {
			t.Errorf("%s: grantedExpires = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestStaleChallenge(t *testing.T) {
	stale := parseResponse(t, fmt.Sprintf(respHead, "401 Unauthorized", `WWW-Authenticate: Digest realm="x", nonce="n", stale=TRUE`+"\n"))
	fresh := parseResponse(t, fmt.Sprintf(respHead, "401 Unauthorized", `WWW-Authenticate: Digest realm="x", nonce="n"`+"\n"))
	if !staleChallenge(stale) || staleChallenge(fresh) {
		t.Errorf("staleChallenge: stale=%v fresh=%v; want true, false", staleChallenge(stale), staleChallenge(fresh))
	}
}

// fakeRegistrar is a UDP registrar answering each REGISTER with the next
// scripted step.
type fakeRegistrar struct {
	t    *testing.T
	conn *net.UDPConn

	mu    sync.Mutex
	reqs  []*gosip.Request
	steps []func(req *gosip.Request) string // returns the extra headers and status line
	got   chan *gosip.Request
}

func newFakeRegistrar(t *testing.T) *fakeRegistrar {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRegistrar{t: t, conn: conn, got: make(chan *gosip.Request, 100)}
	t.Cleanup(func() { conn.Close() })
	go f.serve()
	return f
}

func (f *fakeRegistrar) port() int { return f.conn.LocalAddr().(*net.UDPAddr).Port }

func (f *fakeRegistrar) script(steps ...func(req *gosip.Request) string) {
	f.mu.Lock()
	f.steps = append(f.steps, steps...)
	f.mu.Unlock()
}

func (f *fakeRegistrar) serve() {
	buf := make([]byte, 65536)
	for {
		n, from, err := f.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := gosip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		req, ok := msg.(*gosip.Request)
		if !ok {
			continue
		}
		f.mu.Lock()
		retrans := false
		for _, old := range f.reqs { // a retransmission: same branch
			if b1, _ := old.Via().Params.Get("branch"); b1 != "" {
				if b2, _ := req.Via().Params.Get("branch"); b1 == b2 {
					retrans = true
				}
			}
		}
		if retrans {
			f.mu.Unlock()
			continue
		}
		f.reqs = append(f.reqs, req)
		var step func(*gosip.Request) string
		if len(f.steps) > 0 {
			step, f.steps = f.steps[0], f.steps[1:]
		}
		f.mu.Unlock()
		f.got <- req
		if step == nil {
			continue // no answer
		}
		head := step(req)
		status, extra, _ := strings.Cut(head, "\n")
		var b strings.Builder
		fmt.Fprintf(&b, "SIP/2.0 %s\r\n", status)
		for _, h := range req.GetHeaders("Via") {
			fmt.Fprintf(&b, "Via: %s\r\n", h.Value())
		}
		fmt.Fprintf(&b, "From: %s\r\n", req.From().Value())
		fmt.Fprintf(&b, "To: %s;tag=reg1\r\n", req.To().Value())
		fmt.Fprintf(&b, "Call-ID: %s\r\n", req.CallID().Value())
		fmt.Fprintf(&b, "CSeq: %s\r\n", req.CSeq().Value())
		for _, line := range strings.Split(extra, "\n") {
			if line != "" {
				b.WriteString(line + "\r\n")
			}
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		_, _ = f.conn.WriteToUDP([]byte(b.String()), from)
	}
}

func (f *fakeRegistrar) next(t *testing.T) *gosip.Request {
	t.Helper()
	select {
	case req := <-f.got:
		return req
	case <-time.After(10 * time.Second):
		t.Fatal("no REGISTER within 10 s")
		return nil
	}
}

func (f *fakeRegistrar) requests() []*gosip.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*gosip.Request(nil), f.reqs...)
}

// digestParams splits a Digest credentials header value.
func digestParams(v string) map[string]string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "Digest ")
	out := map[string]string{}
	for _, part := range splitAddrList(v) {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		out[strings.ToLower(k)] = strings.Trim(val, `"`)
	}
	return out
}

func hexHash(h func() hash.Hash, parts ...string) string {
	x := h()
	x.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(x.Sum(nil))
}

// checkDigest verifies an Authorization header as a registrar would.
func checkDigest(t *testing.T, req *gosip.Request, algo, user, pass, realm, nonce string) {
	t.Helper()
	h := req.GetHeader("Authorization")
	if h == nil {
		t.Fatalf("REGISTER after 401 has no Authorization:\n%s", req)
	}
	p := digestParams(h.Value())
	hf := md5.New
	if algo == "SHA-256" {
		hf = sha256.New
	}
	if p["username"] != user || p["realm"] != realm || p["nonce"] != nonce || p["qop"] != "auth" {
		t.Errorf("Authorization %q: want username %s, realm %s, nonce %s, qop auth", h.Value(), user, realm, nonce)
	}
	if algo != "MD5" && !strings.EqualFold(p["algorithm"], algo) {
		t.Errorf("Authorization %q: want algorithm %s", h.Value(), algo)
	}
	ha1 := hexHash(hf, user, realm, pass)
	ha2 := hexHash(hf, "REGISTER", p["uri"])
	want := hexHash(hf, ha1, nonce, p["nc"], p["cnonce"], "auth", ha2)
	if p["response"] != want {
		t.Errorf("Authorization %q: response %s, want %s (password %q)", h.Value(), p["response"], want, pass)
	}
	if p["uri"] != req.Recipient.String() {
		t.Errorf("digest uri %q, want the Request-URI %q", p["uri"], req.Recipient.String())
	}
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func testEndpoint(t *testing.T) *Endpoint {
	t.Helper()
	port := freeUDPPort(t)
	ep, err := NewEndpoint(zerolog.Nop(), Config{
		Listeners: []Listener{{Network: "udp", Addr: netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port))}},
		UserAgent: "uad-test",
		T1:        50 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := ep.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); ep.Close() })
	return ep
}

type stateLog struct {
	mu     sync.Mutex
	states []string
	ch     chan string
}

func newStateLog() *stateLog { return &stateLog{ch: make(chan string, 100)} }

func (s *stateLog) notify(name, state string, err error) {
	s.mu.Lock()
	s.states = append(s.states, state)
	s.mu.Unlock()
	if err != nil {
		state += ": " + err.Error()
	}
	s.ch <- state
}

func (s *stateLog) wait(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case st := <-s.ch:
			if strings.HasPrefix(st, prefix) {
				return st
			}
		case <-deadline:
			t.Fatalf("no state %q within 10 s (seen %v)", prefix, s.states)
		}
	}
}

func password(p string) func() (string, error) { return func() (string, error) { return p, nil } }

// The whole cycle against a scripted registrar: SHA-256 challenge, 423,
// 200, a refresh, and the unregistration on Stop.
func TestRegistrationCycle(t *testing.T) {
	ep := testEndpoint(t)
	reg := newFakeRegistrar(t)
	const realm, nonce = "example.com", "abc123"
	challenge := func(*gosip.Request) string {
		return "401 Unauthorized\n" + fmt.Sprintf(`WWW-Authenticate: Digest realm="%s", nonce="%s", qop="auth", algorithm=SHA-256`, realm, nonce)
	}
	ok := func(req *gosip.Request) string {
		c := req.Contact()
		exp, _ := c.Params.Get("expires")
		if exp == "" {
			exp = req.GetHeader("Expires").Value()
		}
		granted := exp
		if exp == "150" {
			granted = "40" // a registrar may grant less than asked
		}
		return fmt.Sprintf("200 OK\nContact: <%s>;expires=%s", c.Address.String(), granted)
	}
	reg.script(
		func(*gosip.Request) string { return "423 Interval Too Brief\nMin-Expires: 150" },
		challenge, ok, // registered for 40 s: refresh after 8 s
		challenge, ok, // the refresh
		challenge, ok, // the unregistration
	)
	states := newStateLog()
	r := ep.NewRegistration(zerolog.Nop(), Account{
		Name: "bob", AOR: "sip:bob@example.com", Registrar: fmt.Sprintf("sip:127.0.0.1:%d", reg.port()),
		Username: "bob", Password: password("s3cret"), Transport: "udp", Expires: 60,
	}, states.notify)
	if st := r.Status(); st.State != RegRegistering {
		t.Errorf("state before Start = %q, want registering", st.State)
	}
	r.Start()
	states.wait(t, RegRegistered)
	st := r.Status()
	if st.State != RegRegistered || st.Expires != 40 || st.Name != "bob" || st.AOR != "sip:bob@example.com" {
		t.Errorf("status = %+v, want registered for 40 s", st)
	}
	// The refresh comes 8 s later (40 s - 32 s).
	start := time.Now()
	for len(reg.requests()) < 5 {
		if time.Since(start) > 12*time.Second {
			t.Fatalf("no refresh within 12 s: %d REGISTERs", len(reg.requests()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(start); d < 6*time.Second {
		t.Errorf("refresh after %v, want ~8 s", d)
	}
	reg.next(t)
	time.Sleep(200 * time.Millisecond) // the refresh's 200
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := r.Status(); st.State != RegUnregistered {
		t.Errorf("state after Stop = %q, want unregistered", st.State)
	}

	reqs := reg.requests()
	if len(reqs) != 7 {
		t.Fatalf("%d REGISTERs, want 7 (423, 401, 200, 401, 200, 401, 200)", len(reqs))
	}
	wantExpires := []string{"60", "150", "150", "150", "150", "0", "0"}
	var lastSeq uint32
	for i, req := range reqs {
		if req.Method != gosip.REGISTER {
			t.Errorf("request %d is %s", i, req.Method)
		}
		if req.CallID().Value() != reqs[0].CallID().Value() {
			t.Errorf("request %d Call-ID %q, want %q throughout", i, req.CallID().Value(), reqs[0].CallID().Value())
		}
		if seq := req.CSeq().SeqNo; seq <= lastSeq {
			t.Errorf("request %d CSeq %d, not above %d", i, seq, lastSeq)
		} else {
			lastSeq = seq
		}
		if tag, _ := req.From().Params.Get("tag"); tag == "" {
			t.Errorf("request %d From has no tag", i)
		}
		if _, ok := req.To().Params.Get("tag"); ok {
			t.Errorf("request %d To has a tag", i)
		}
		if req.From().Address.String() != "sip:bob@example.com" || req.To().Address.String() != "sip:bob@example.com" {
			t.Errorf("request %d From %s To %s, want the AOR", i, req.From().Address.String(), req.To().Address.String())
		}
		if req.Recipient.String() != fmt.Sprintf("sip:127.0.0.1:%d", reg.port()) {
			t.Errorf("request %d Request-URI %s, want the registrar", i, req.Recipient.String())
		}
		c := req.Contact()
		if c == nil || c.Address.User != "bob" || c.Address.Host != "127.0.0.1" || c.Address.Port != int(ep.cfg.Listeners[0].Addr.Port()) {
			t.Errorf("request %d Contact %v, want sip:bob@ uad's address", i, c)
		}
		exp, _ := c.Params.Get("expires")
		if exp != wantExpires[i] || req.GetHeader("Expires").Value() != wantExpires[i] {
			t.Errorf("request %d expires %q / Expires %q, want %s", i, exp, req.GetHeader("Expires").Value(), wantExpires[i])
		}
		if i == 2 || i == 4 || i == 6 {
			checkDigest(t, req, "SHA-256", "bob", "s3cret", realm, nonce)
		}
		if strings.Contains(req.String(), "s3cret") {
			t.Errorf("request %d carries the password in clear", i)
		}
	}
	states.mu.Lock()
	defer states.mu.Unlock()
	if strings.Join(states.states, ",") != "registered,unregistered" {
		t.Errorf("states told: %v, want registered, unregistered", states.states)
	}
}

// A wrong password: the registrar challenges again; the registration fails
// with a hint, and retries later.
func TestRegistrationWrongPassword(t *testing.T) {
	ep := testEndpoint(t)
	reg := newFakeRegistrar(t)
	challenge := func(*gosip.Request) string {
		return "401 Unauthorized\n" + `WWW-Authenticate: Digest realm="r", nonce="n1", qop="auth,auth-int", algorithm=MD5`
	}
	reg.script(challenge, challenge)
	states := newStateLog()
	r := ep.NewRegistration(zerolog.Nop(), Account{
		Name: "bob", AOR: "sip:bob@example.com", Registrar: fmt.Sprintf("sip:127.0.0.1:%d", reg.port()),
		Username: "bob", Password: password("wrong"), Transport: "udp", Expires: 300,
	}, states.notify)
	r.Start()
	got := states.wait(t, RegFailed)
	if !strings.Contains(got, "401 Unauthorized (wrong password?)") {
		t.Errorf("failure %q, want 401 Unauthorized (wrong password?)", got)
	}
	if st := r.Status(); st.State != RegFailed || !strings.Contains(st.Error, "wrong password") {
		t.Errorf("status %+v, want failed with the reason", st)
	}
	reqs := reg.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d REGISTERs, want 2", len(reqs))
	}
	checkDigest(t, reqs[1], "MD5", "bob", "wrong", "r", "n1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if n := len(reg.requests()); n != 2 {
		t.Errorf("%d REGISTERs after Stop, want none sent (no binding to remove)", n)
	}
}

// An account on a transport uad does not listen on fails at once.
func TestRegistrationBadTransport(t *testing.T) {
	ep := testEndpoint(t)
	states := newStateLog()
	r := ep.NewRegistration(zerolog.Nop(), Account{
		Name: "bob", AOR: "sip:bob@example.com", Registrar: "sip:127.0.0.1:5060",
		Password: password(""), Transport: "tcp", Expires: 300,
	}, states.notify)
	r.Start()
	if got := states.wait(t, RegFailed); !strings.Contains(got, "no tcp listener") {
		t.Errorf("failure %q, want no tcp listener", got)
	}
	_ = r.Stop(context.Background())
}
