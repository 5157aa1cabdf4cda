package tests

// Security: SIP over TLS, the source allow-list, the per-source rate limit,
// the call cap, digest challenges of incoming INVITEs and of uad's own
// re-INVITEs, secrets kept out of logs and the API, the API's exposure, and
// header injection through the API.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// selfSignedCert writes a self-signed certificate for IP 127.0.0.1 and its
// key (PEM) into dir and returns their paths.
func selfSignedCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// tlsUAD starts a uad listening on udp://127.0.0.1:P and tls://127.0.0.1:P+1
// with the given certificate; it returns the uad and its TLS port.
func tlsUAD(t *testing.T, name, cert, key string, verify bool) (*UAD, int) {
	t.Helper()
	p := miscPorts.take(t, 2, true)
	u := startUAD(t, UADOptions{Name: name, Config: map[string]any{
		"sip.listen": []string{
			fmt.Sprintf("udp://127.0.0.1:%d", p),
			fmt.Sprintf("tls://127.0.0.1:%d", p+1),
		},
		"sip.tls_cert":   cert,
		"sip.tls_key":    key,
		"sip.tls_verify": verify,
	}})
	return u, p + 1
}

// A call between two uads over TLS (sips:), held and resumed and hung up;
// with tls_verify on, the caller refuses the callee's self-signed
// certificate and the call fails.
func TestSecurityTLSCall(t *testing.T) {
	t.Parallel()
	cert, key := selfSignedCert(t, t.TempDir())
	b, bTLS := tlsUAD(t, "B", cert, key, false)
	evB := b.Events()
	target := fmt.Sprintf("sips:b@127.0.0.1:%d", bTLS)

	t.Run("verify_off", func(t *testing.T) {
		a, _ := tlsUAD(t, "A", cert, key, false)
		evA := a.Events()
		ca := a.PlaceCall(target, nil)
		idB := waitBothConnected(t, evA, ca.ID, evB)

		// The call is over TLS: B's (debug) SIP trace shows A's TLS Via.
		if !strings.Contains(b.Log(), "SIP/2.0/TLS") {
			t.Errorf("B's log shows no SIP/2.0/TLS Via: was the call not over TLS?")
		}
		mustHold(t, a, ca.ID)
		evA.WaitType(t, "hold.success", ca.ID, sigTimeout)
		evB.WaitType(t, "held", idB, sigTimeout)
		if c := b.Call(idB); !c.RemoteHold {
			t.Errorf("B after A's hold over TLS: remote_hold false: %+v", c)
		}
		mustUnhold(t, a, ca.ID)
		evA.WaitType(t, "unhold.success", ca.ID, sigTimeout)
		evB.WaitType(t, "resumed", idB, sigTimeout)
		if c := a.Call(ca.ID); c.State != "live" || c.LocalHold {
			t.Errorf("A after unhold over TLS: %+v, want live and not held", c)
		}

		a.Hangup(ca.ID)
		evA.WaitType(t, "call.ended", ca.ID, sigTimeout)
		endB := evB.WaitType(t, "call.ended", idB, sigTimeout)
		if endB.Reason != "remote" {
			t.Errorf("B call.ended reason %q, want remote (A's BYE over TLS)", endB.Reason)
		}
	})

	t.Run("verify_on", func(t *testing.T) {
		a, _ := tlsUAD(t, "A-verify", cert, key, true)
		evA := a.Events()
		ca := a.PlaceCall(target, nil)
		end := evA.WaitType(t, "call.ended", ca.ID, endTimeout)
		noEvent(t, evA, "tls_verify on against a self-signed certificate", ca.ID, "call.connected")
		if end.SIPStatus != 0 {
			t.Errorf("call.ended sip_status %d, want 0 (no INVITE gets through the handshake)", end.SIPStatus)
		}
		if !strings.Contains(a.Log(), "failed to verify certificate") {
			t.Errorf("A's log does not say the certificate failed verification")
		}
		if n := len(filter(evB.All(), ofType("call.incoming", ""))); n != 1 {
			t.Errorf("B saw %d call.incoming, want 1 (only the call with tls_verify off)", n)
		}
	})
}

// sipResponseRE matches the status line of a response in a sipp trace.
var sipResponseRE = regexp.MustCompile(`(?m)^SIP/2\.0 \d{3}`)

// sip.allow: a source outside the list gets 403 (or nothing with reject
// drop), counted as not_allowed; a source inside it is served.
func TestSecurityAllowList(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")

	t.Run("respond", func(t *testing.T) {
		t.Parallel()
		u := startUAD(t, UADOptions{Config: map[string]any{"sip.allow": []string{"10.99.0.0/16"}}})
		ev := u.Events()
		if r := runSipp(t, "security_uac_403.xml", "-s", "uad", u.SIPAddr()); r.Code != 0 {
			t.Errorf("sipp from 127.0.0.1 (not allowed): exit %d, want 0 (403 as scripted)", r.Code)
		}
		if got := u.metrics(t)[`uad_sip_refused_total{reason="not_allowed"}`]; got < 1 {
			t.Errorf(`uad_sip_refused_total{reason="not_allowed"} = %v, want >= 1`, got)
		}
		noEvent(t, ev, "INVITE from a source not allowed", "", "call.incoming")
	})

	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		u := startUAD(t, UADOptions{Config: map[string]any{
			"sip.allow":  []string{"10.99.0.0/16"},
			"sip.reject": "drop",
		}})
		ev := u.Events()
		r := runSipp(t, "uac_wait_bye.xml", "-s", "uad", "-timeout", "3s", u.SIPAddr())
		if r.Code == 0 {
			t.Errorf("sipp from a source not allowed, reject drop: exit 0, want a failure (no answer)")
		}
		if m := sipResponseRE.FindAllString(r.Messages, -1); len(m) > 0 {
			t.Errorf("reject drop: sipp received responses %v, want none", m)
		}
		if got := u.metrics(t)[`uad_sip_refused_total{reason="not_allowed"}`]; got < 1 {
			t.Errorf(`uad_sip_refused_total{reason="not_allowed"} = %v, want >= 1`, got)
		}
		noEvent(t, ev, "INVITE from a source not allowed", "", "call.incoming")
	})

	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		u := startUAD(t, UADOptions{Config: map[string]any{"sip.allow": []string{"127.0.0.1/32"}}})
		ev := u.Events()
		s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", u.SIPAddr())
		id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()
		hangUp(t, u, ev, id, s)
		if got := u.metrics(t)[`uad_sip_refused_total{reason="not_allowed"}`]; got != 0 {
			t.Errorf(`uad_sip_refused_total{reason="not_allowed"} = %v for an allowed source, want 0`, got)
		}
	})
}

// options builds an OPTIONS request from laddr to raddr.
func optionsRequest(laddr, raddr string, i int) string {
	return fmt.Sprintf("OPTIONS sip:uad@%[2]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[1]s;branch=z9hG4bK-sec-%[3]d-%[4]d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:probe@%[1]s>;tag=sec%[3]d\r\n"+
		"To: <sip:uad@%[2]s>\r\n"+
		"Call-ID: sec-options-%[3]d-%[4]d@127.0.0.1\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Contact: <sip:probe@%[1]s>\r\n"+
		"Accept: application/sdp\r\n"+
		"Content-Length: 0\r\n\r\n", laddr, raddr, i, os.Getpid())
}

// sip.rate_limit: a burst of OPTIONS from one source is partly refused with
// 503 (counted as rate_limited) while a call from another source goes
// through.
func TestSecurityRateLimit(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Config: map[string]any{"sip.rate_limit": 2, "sip.rate_burst": 2}})
	ev := u.Events()

	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr := mustUDPAddr(t, u.SIPAddr())
	const n = 10
	for i := 0; i < n; i++ {
		if _, err := conn.WriteTo([]byte(optionsRequest(conn.LocalAddr().String(), u.SIPAddr(), i)), raddr); err != nil {
			t.Fatal(err)
		}
	}
	// At the same time, a call from 127.0.0.2.
	s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-i", "127.0.0.2", u.SIPAddr())

	codes := map[int]int{}
	byCallID := map[string]bool{}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for len(byCallID) < n && time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(deadline)
		k, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		msg := string(buf[:k])
		var code int
		if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil {
			t.Errorf("not a SIP response: %.80q", msg)
			continue
		}
		cid := regexp.MustCompile(`(?mi)^(?:Call-ID|i):\s*(\S+)`).FindStringSubmatch(msg)
		if cid == nil || byCallID[cid[1]] {
			continue // a retransmission
		}
		byCallID[cid[1]] = true
		codes[code]++
	}
	t.Logf("responses to %d OPTIONS: %v", n, codes)
	if codes[503] == 0 {
		t.Errorf("%d OPTIONS at once with rate_limit 2, burst 2: no 503 (codes %v)", n, codes)
	}
	if codes[200] < 1 || codes[200] > 4 {
		t.Errorf("%d OPTIONS at once with burst 2: %d answered 200, want 1-4 (the burst, plus refill)", n, codes[200])
	}
	if got := u.metrics(t)[`uad_sip_refused_total{reason="rate_limited"}`]; got < float64(codes[503]) || got == 0 {
		t.Errorf(`uad_sip_refused_total{reason="rate_limited"} = %v, want >= %d (the 503s seen)`, got, codes[503])
	}

	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()
	hangUp(t, u, ev, id, s)
}

// calls.max_calls 1: a second INVITE gets 503, the first call is untouched,
// and once it ended a new call is taken.
func TestSecurityCallCap(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Config: map[string]any{"calls.max_calls": 1}})
	ev := u.Events()

	s1 := startSipp(t, "uac_wait_bye.xml", "-s", "first", u.SIPAddr())
	id1 := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()

	if r := runSipp(t, "edge_uac_503.xml", "-s", "second", u.SIPAddr()); r.Code != 0 {
		t.Errorf("second INVITE with max_calls 1: sipp exit %d, want 0 (503 as scripted)", r.Code)
	}
	if c := u.Call(id1); c.State != "live" {
		t.Errorf("first call after the refused second: state %q, want live", c.State)
	}
	if calls := u.Calls(); len(calls) != 1 {
		t.Errorf("GET /v1/calls after the refused INVITE: %d calls, want 1: %+v", len(calls), calls)
	}

	hangUp(t, u, ev, id1, s1)

	s3 := startSipp(t, "uac_wait_bye.xml", "-s", "third", u.SIPAddr())
	id3 := ev.WaitFor(t, func(e Event) bool { return e.Type == "call.connected" && e.CallID() != id1 }, sigTimeout).CallID()
	hangUp(t, u, ev, id3, s3)
}

// sip.incoming_auth: an INVITE without credentials is challenged (401,
// WWW-Authenticate); the right credentials get through; a wrong password is
// challenged again.
func TestSecurityIncomingAuth(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Config: map[string]any{
		"sip.incoming_auth": map[string]any{"realm": "uad", "username": "alice", "password": "s3cret"},
	}})
	ev := u.Events()

	if r := runSipp(t, "security_uac_401.xml", "-s", "uad", u.SIPAddr()); r.Code != 0 {
		t.Errorf("INVITE without credentials: sipp exit %d, want 0 (401 with a Digest challenge)", r.Code)
	}
	noEvent(t, ev, "INVITE without credentials", "", "call.incoming")

	if r := runSipp(t, "security_uac_auth_wrong.xml", "-s", "uad", "-au", "alice", "-ap", "wrong", u.SIPAddr()); r.Code != 0 {
		t.Errorf("INVITE with a wrong password: sipp exit %d, want 0 (401 again)", r.Code)
	}
	noEvent(t, ev, "INVITE with a wrong password", "", "call.incoming")

	s := startSipp(t, "security_uac_auth.xml", "-s", "uad", "-au", "alice", "-ap", "s3cret", u.SIPAddr())
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()
	ev.WaitType(t, "call.ended", id, endTimeout)
	s.WaitOK()
}

// digestField returns the value of name= in a Digest header value.
func digestField(h, name string) string {
	m := regexp.MustCompile(`(?i)[\s,]` + name + `=("([^"]*)"|[^\s,]+)`).FindStringSubmatch(" " + h)
	if m == nil {
		return ""
	}
	if m[2] != "" || strings.HasPrefix(m[1], `"`) {
		return m[2]
	}
	return m[1]
}

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

// A peer that challenges uad's hold re-INVITE with 407: uad retries with
// Proxy-Authorization of the call's account, and the hold succeeds.
func TestSecurityReinviteChallenged(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	reg := startSipp(t, "security_uas_register.xml", "-timeout", "60s")
	uas := startSipp(t, "security_uas_reinvite_407.xml")
	u := startUAD(t, UADOptions{ExtraYAML: fmt.Sprintf(`accounts:
  - name: bob
    aor: "sip:bob@127.0.0.1"
    registrar: "sip:%s"
    username: bob
    password: pw
    expires: 300
`, reg.Addr())})
	ev := u.eventsFromStart()
	ev.WaitFor(t, accountEvent("account.registered", "bob"), sigTimeout)

	c := u.PlaceCall(uas.URI("x"), map[string]any{"account": "bob"})
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	st, hc, e := holdRequest(t, u, c.ID, true)
	if st != http.StatusOK {
		t.Fatalf("POST hold with a peer that challenges the re-INVITE = %d %+v, want 200", st, e)
	}
	if !hc.LocalHold {
		t.Errorf("hold response: %+v, want local_hold", hc)
	}
	ev.WaitType(t, "hold.success", c.ID, sigTimeout)
	r := hangUp(t, u, ev, c.ID, uas)

	// The digest response of the retried re-INVITE is right for bob/pw.
	var auth string
	for _, line := range strings.Split(r.Messages, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Proxy-Authorization:"); ok {
			auth = strings.TrimSpace(v)
		}
	}
	if auth == "" {
		t.Fatalf("no Proxy-Authorization in what sipp received")
	}
	uri, nonce, cnonce, nc, qop := digestField(auth, "uri"), digestField(auth, "nonce"), digestField(auth, "cnonce"), digestField(auth, "nc"), digestField(auth, "qop")
	if qop != "auth" || cnonce == "" || nc == "" {
		t.Errorf("Proxy-Authorization %q: want qop=auth with cnonce and nc", auth)
	}
	if realm := digestField(auth, "realm"); realm != "sipp" {
		t.Errorf("Proxy-Authorization realm %q, want sipp", realm)
	}
	ha1 := md5hex("bob:sipp:pw")
	ha2 := md5hex("INVITE:" + uri)
	want := md5hex(strings.Join([]string{ha1, nonce, nc, cnonce, qop, ha2}, ":"))
	if got := digestField(auth, "response"); got != want {
		t.Errorf("Proxy-Authorization response %q, want %q (MD5 of bob:sipp:pw over INVITE %s)", got, want, uri)
	}

	if err := u.Stop(t, 10*time.Second); err != nil {
		t.Errorf("uad exit: %v, want status 0", err)
	}
	reg.WaitOK()
}

// Passwords and the API token appear neither in the log (debug level), nor
// in `uad config check`'s output, nor in GET /v1/accounts.
func TestSecurityNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	const (
		accountPw  = "Sup3rSecretPw"
		incomingPw = "In6omingSecret"
		token      = "T0kenSecretValue"
	)
	reg := startSipp(t, "security_uas_register.xml", "-timeout", "60s")
	u := startUAD(t, UADOptions{
		Token: token,
		Config: map[string]any{
			"log.level":         "debug",
			"sip.incoming_auth": map[string]any{"realm": "uad", "username": "alice", "password": incomingPw},
		},
		ExtraYAML: fmt.Sprintf(`accounts:
  - name: bob
    aor: "sip:bob@127.0.0.1"
    registrar: "sip:%s"
    username: bob
    password: %s
    expires: 300
`, reg.Addr(), accountPw),
	})
	ev := u.eventsFromStart()
	ev.WaitFor(t, accountEvent("account.registered", "bob"), sigTimeout)

	s := startSipp(t, "security_uac_auth.xml", "-s", "uad", "-au", "alice", "-ap", incomingPw, u.SIPAddr())
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()
	ev.WaitType(t, "call.ended", id, endTimeout)
	s.WaitOK()

	st, accounts := u.API(http.MethodGet, "/v1/accounts", nil)
	if st != http.StatusOK {
		t.Errorf("GET /v1/accounts = %d %s", st, accounts)
	}
	out, err := exec.Command(uadBin, "config", "check", u.ConfigPath).CombinedOutput()
	if err != nil {
		t.Errorf("uad config check %s: %v\n%s", u.ConfigPath, err, out)
	}
	if err := u.Stop(t, 10*time.Second); err != nil {
		t.Errorf("uad exit: %v, want status 0", err)
	}
	reg.WaitOK()

	log := u.Log()
	if !strings.Contains(log, `"level":"debug"`) {
		t.Errorf("the log has no debug lines: is log.level debug in effect?")
	}
	for what, text := range map[string]string{"the log": log, "uad config check": string(out), "GET /v1/accounts": string(accounts)} {
		for _, secret := range []string{accountPw, incomingPw, token} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the secret %q", what, secret)
			}
		}
	}
}

// The API is refused on a non-loopback address without a token; api.socket
// gets the configured permissions and serves the API.
func TestSecurityAPIExposure(t *testing.T) {
	t.Parallel()
	requireUAD(t)

	t.Run("wildcard_without_token", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg := map[string]any{}
		sip := freePort(t)
		setKey(cfg, "sip.listen", []string{fmt.Sprintf("udp://127.0.0.1:%d", sip)})
		setKey(cfg, "api.listen", fmt.Sprintf("0.0.0.0:%d", freePort(t)))
		rtp := rtpBlocks.take(t, 20, false)
		setKey(cfg, "media.rtp_ports", fmt.Sprintf("%d-%d", rtp, rtp+19))
		path := filepath.Join(dir, "uad.yaml")
		if err := os.WriteFile(path, []byte(renderYAML(cfg, 0)), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, uadBin, "run", "--config", path)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("uad run with api.listen 0.0.0.0 and no token_file still running after 15 s; want a refusal\n%s", tail(string(out), 4<<10))
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("uad run with api.listen 0.0.0.0 and no token_file: %v, want a non-zero exit", err)
		}
		if !strings.Contains(string(out), "api.token_file") {
			t.Errorf("uad run output does not name api.token_file:\n%s", tail(string(out), 4<<10))
		}
	})

	t.Run("unix_socket", func(t *testing.T) {
		t.Parallel()
		dir, err := os.MkdirTemp("", "uadsock")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, "api.sock")
		startUAD(t, UADOptions{Config: map[string]any{"api.socket": sock, "api.socket_mode": "0600"}})
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatalf("api.socket %s: %v", sock, err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("api.socket mode %v, want a socket with permissions 0600", fi.Mode())
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
		}}
		resp, err := client.Get("http://uad/v1/health")
		if err != nil {
			t.Fatalf("GET /v1/health over %s: %v", sock, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ready"`) {
			t.Errorf("GET /v1/health over the unix socket = %d %s, want 200 with ready", resp.StatusCode, body)
		}
	})
}

// A target URI carrying CR/LF is refused with 400 and nothing goes out.
func TestSecurityHeaderInjection(t *testing.T) {
	t.Parallel()
	u := startUAD(t, UADOptions{})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	for _, to := range []string{
		"sip:a@" + addr + "\r\nX-Evil: 1",
		"sip:a@" + addr + "\nX-Evil: 1",
		"sip:a@" + addr + "\rX-Evil: 1",
		"sip:a\r\nX-Evil: 1@" + addr,
		"sip:a@" + addr + ";x=\r\nX-Evil: 1",
	} {
		st, body := u.API(http.MethodPost, "/v1/calls", map[string]any{"to": to})
		if st != http.StatusBadRequest {
			t.Errorf("POST /v1/calls to %q = %d %s, want 400", to, st, body)
		}
	}
	// Absence is what is asserted: a short read deadline is the wait.
	_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 65536)
	if n, from, err := pc.ReadFrom(buf); err == nil {
		t.Errorf("a SIP packet reached %s from %s after refused requests:\n%s", addr, from, buf[:n])
	}
	if calls := u.Calls(); len(calls) != 0 {
		t.Errorf("refused requests left calls: %+v", calls)
	}
}
