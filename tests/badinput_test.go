package tests

// Bad input: broken config files, bad API requests, garbage on the SIP port.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runUADCommand runs the uad binary with args in dir and returns its exit
// code and combined output; it fails the test when it runs past timeout.
func runUADCommand(t *testing.T, dir string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	requireUAD(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, uadBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "UAD_API=http://127.0.0.1:1") // never a real daemon
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("uad %s still running after %v; killed. Output:\n%s", strings.Join(args, " "), timeout, out)
		return -1, string(out)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		t.Fatalf("uad %s: %v", strings.Join(args, " "), err)
	}
	return -1, ""
}

// reportedLines returns the N of every output line starting "file:N: ".
func reportedLines(out, file string) []int {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:(\d+): \S`)
	var lines []int
	for _, l := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil {
			n, _ := strconv.Atoi(m[1])
			lines = append(lines, n)
		}
	}
	sort.Ints(lines)
	return lines
}

func TestBadConfigs(t *testing.T) {
	requireUAD(t)
	const file = "bad.yaml"
	// {SIP}, {API}: free ports, so a `uad run` that wrongly accepts a file
	// binds nothing in use. want: the lines that must be reported.
	cases := []struct {
		name string
		text string
		want []int
	}{
		{"valid", `sip:
  listen: ["udp://127.0.0.1:{SIP}", "tcp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
media:
  rtp_ports: "20000-20099"
calls:
  auto_answer: false
  media: silence
`, nil},
		{"unknown key", `sip:
  listen: ["udp://127.0.0.1:{SIP}", "tcp://127.0.0.1:{SIP}"]
  bogus_key: 1
api:
  listen: "127.0.0.1:{API}"
`, []int{3}},
		{"unknown top-level key", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
frobnicate: true
`, []int{5}},
		{"wrong type: string for bool", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
calls:
  auto_answer: "sometimes"
`, []int{6}},
		{"wrong type: list for string", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: ["127.0.0.1:{API}"]
`, []int{4}},
		{"bad media mode", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
calls:
  media: karaoke
`, []int{6}},
		{"bad duration", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
media:
  rtp_timeout: "soon"
`, []int{6}},
		{"bad listen scheme", `sip:
  listen:
    - "udp://127.0.0.1:{SIP}"
    - "carrier-pigeon://127.0.0.1:{SIP}"
api:
  listen: "127.0.0.1:{API}"
`, []int{4}},
		{"bad listen port", `sip:
  listen:
    - "udp://127.0.0.1:99999"
api:
  listen: "127.0.0.1:{API}"
`, []int{3}},
		{"bad listen address", `sip:
  listen:
    - "udp://not..an..ip:{SIP}"
api:
  listen: "127.0.0.1:{API}"
`, []int{3}},
		{"bad api listen", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "localhost-ish"
`, []int{4}},
		{"reversed port range", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
media:
  rtp_ports: "30000-20000"
`, []int{6}},
		{"port range beyond 65535", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
media:
  rtp_ports: "60000-70000"
`, []int{6}},
		{"port range not a range", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
api:
  listen: "127.0.0.1:{API}"
media:
  rtp_ports: "lots"
`, []int{6}},
		{"CR/LF in user_agent", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
  user_agent: "uad\r\nX-Injected: yes"
api:
  listen: "127.0.0.1:{API}"
`, []int{3}},
		{"two errors", `sip:
  listen: ["udp://127.0.0.1:{SIP}"]
  bogus_key: 1
api:
  listen: "127.0.0.1:{API}"
media:
  rtp_ports: "10000-20000"
  hold_tone: "440/300,0/3700"
  rtp_timeout: "never"
`, []int{3, 9}},
		{"YAML syntax error", `sip:
  listen: ["udp://127.0.0.1:{SIP}"
api:
  listen: "127.0.0.1:{API}"
`, nil}, // a line is required, but which one the parser names varies
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			text := strings.NewReplacer("{SIP}", itoa(freePort(t)), "{API}", itoa(freePort(t))).Replace(tc.text)
			if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out := runUADCommand(t, dir, 10*time.Second, "config", "check", file)
			if tc.name == "valid" {
				if code != 0 {
					t.Errorf("uad config check of a valid file exited %d:\n%s", code, out)
				}
				return
			}
			if code == 0 {
				t.Errorf("uad config check exited 0, want non-zero. Output:\n%s\nFile:\n%s", out, text)
			}
			got := reportedLines(out, file)
			if len(got) == 0 {
				t.Errorf("uad config check printed no %q line:\n%s", file+":LINE: reason", out)
			}
			for _, w := range tc.want {
				if !containsInt(got, w) {
					t.Errorf("uad config check did not report line %d (reported %v):\n%s", w, got, out)
				}
			}
			if tc.want != nil {
				for _, g := range got {
					if !containsInt(tc.want, g) {
						t.Errorf("uad config check reported line %d, want only %v:\n%s", g, tc.want, out)
					}
				}
			}

			// uad run refuses the same file, naming the same line(s).
			code, out = runUADCommand(t, dir, 10*time.Second, "run", "--config", file)
			if code == 0 {
				t.Errorf("uad run --config %s exited 0, want non-zero:\n%s", file, out)
			}
			for _, w := range tc.want {
				if prefix := fmt.Sprintf("%s:%d:", file, w); !strings.Contains(out, prefix) {
					t.Errorf("uad run --config output lacks %q:\n%s", prefix, out)
				}
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		code, out := runUADCommand(t, t.TempDir(), 10*time.Second, "config", "check", "nonexistent.yaml")
		if code == 0 {
			t.Errorf("uad config check of a missing file exited 0:\n%s", out)
		}
		if !strings.Contains(out, "nonexistent.yaml") {
			t.Errorf("the message does not name the file:\n%s", out)
		}
	})
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkAPIError asserts status want and a {"error": "..."} body.
func checkAPIError(t *testing.T, what string, st int, body []byte, want int) {
	t.Helper()
	if st != want {
		t.Errorf("%s = %d %s, want %d", what, st, body, want)
		return
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || strings.TrimSpace(e.Error) == "" {
		t.Errorf("%s: body %q, want {\"error\": \"...\"} with a message", what, body)
	}
}

func TestBadAPIRequests(t *testing.T) {
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	target := "sip:nobody@127.0.0.1:" + itoa(freePort(t))

	bad := []struct {
		name         string
		method, path string
		body         any
		want         int
	}{
		{"malformed JSON", http.MethodPost, "/v1/calls", `{"to": "` + target + `",`, 400},
		{"not JSON", http.MethodPost, "/v1/calls", "to=" + target, 400},
		{"no to", http.MethodPost, "/v1/calls", map[string]any{}, 400},
		{"empty to", http.MethodPost, "/v1/calls", map[string]any{"to": ""}, 400},
		{"to of the wrong type", http.MethodPost, "/v1/calls", map[string]any{"to": 42}, 400},
		{"CR/LF in to", http.MethodPost, "/v1/calls", map[string]any{"to": target + "\r\nX-Injected: yes"}, 400},
		{"unknown media", http.MethodPost, "/v1/calls", map[string]any{"to": target, "media": "karaoke"}, 400},
		{"bad relay address", http.MethodPost, "/v1/calls", map[string]any{"to": target, "media": map[string]any{"relay": "nowhere"}}, 400},
		{"get unknown call", http.MethodGet, "/v1/calls/no-such-call", nil, 404},
		{"hang up unknown call", http.MethodDelete, "/v1/calls/no-such-call", nil, 404},
		{"answer unknown call", http.MethodPost, "/v1/calls/no-such-call/answer", nil, 404},
		{"hold unknown call", http.MethodPost, "/v1/calls/no-such-call/hold", nil, 404},
		{"dtmf unknown call", http.MethodPost, "/v1/calls/no-such-call/dtmf", map[string]any{"digits": "1"}, 404},
	}
	for _, tc := range bad {
		st, body := u.API(tc.method, tc.path, tc.body)
		checkAPIError(t, tc.name+": "+tc.method+" "+tc.path, st, body, tc.want)
	}
	if calls := u.Calls(); len(calls) != 0 {
		t.Errorf("refused requests left calls behind: %+v", calls)
	}

	// Answering an outbound call is not allowed by its state: 409.
	peer := newRTPPeer(t, 0)
	uas := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer.Port()))
	c := u.PlaceCall(uas.URI("sipp"), nil)
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	st, body := u.API(http.MethodPost, "/v1/calls/"+c.ID+"/answer", nil)
	checkAPIError(t, "answer an outbound call", st, body, 409)
	if got := u.Call(c.ID); got.State != "live" {
		t.Errorf("after the refused answer: state %q, want live", got.State)
	}
	hangUp(t, u, ev, c.ID, uas)
	// And an ended call can be answered even less.
	st, body = u.API(http.MethodPost, "/v1/calls/"+c.ID+"/answer", nil)
	checkAPIError(t, "answer an ended call", st, body, 409)
}

// garbageSIP returns hostile datagrams / stream contents for the SIP port.
func garbageSIP(kind string, u *UAD, transport string) []byte {
	target := u.SIPURI("uad")
	via := fmt.Sprintf("Via: SIP/2.0/%s 127.0.0.1:9;branch=z9hG4bK-garbage-%s\r\n", strings.ToUpper(transport), kind)
	sdp := "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
	switch kind {
	case "random":
		r := rand.New(rand.NewPCG(1, uint64(len(transport))))
		b := make([]byte, 1200)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	case "truncated":
		msg := "INVITE " + target + " SIP/2.0\r\n" + via +
			"From: <sip:x@127.0.0.1>;tag=g1\r\nTo: <" + target + ">\r\nCall-ID: garbage-truncated\r\n" +
			"CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:9>\r\nContent-Type: application/sdp\r\nContent-Length: 400\r\n\r\n" + sdp
		return []byte(msg[:len(msg)-20]) // cut in the SDP, and shorter than Content-Length anyway
	case "no-via":
		return []byte("INVITE " + target + " SIP/2.0\r\n" +
			"From: <sip:x@127.0.0.1>;tag=g2\r\nTo: <" + target + ">\r\nCall-ID: garbage-no-via\r\n" +
			"CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:9>\r\nMax-Forwards: 70\r\n" +
			"Content-Type: application/sdp\r\nContent-Length: " + itoa(len(sdp)) + "\r\n\r\n" + sdp)
	case "binary-headers":
		return []byte("INVITE " + target + " SIP/2.0\r\n" + via +
			"From: <sip:x@127.0.0.1>;tag=\x00\xff\xfe\r\nTo: <" + target + ">\r\nCall-ID: garbage-\x00binary\r\n" +
			"CSeq: 99999999999999999999 INVITE\r\nContent-Length: -5\r\n\r\n")
	}
	panic(kind)
}

// sendGarbage sends data to uad's SIP port over transport; over TCP it
// half-closes and drains what uad says until it closes or 2 s pass.
func sendGarbage(t *testing.T, u *UAD, transport string, data []byte) {
	t.Helper()
	conn, err := net.Dial(transport, u.SIPAddr())
	if err != nil {
		t.Fatalf("dial %s %s: %v", transport, u.SIPAddr(), err)
	}
	defer conn.Close()
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("write %s: %v", transport, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := tc.Read(buf); err != nil {
				break
			}
		}
	}
}

// checkStillWorks asserts uad is alive, healthy and takes a normal call.
func checkStillWorks(t *testing.T, u *UAD, transport string) {
	t.Helper()
	if !u.Running() {
		t.Fatalf("uad exited")
	}
	if st, body, err := u.do(http.MethodGet, "/v1/health", nil); err != nil || st != http.StatusOK {
		t.Fatalf("GET /v1/health = %d %s %v, want 200", st, body, err)
	}
	args := []string{"-s", "uad", "-d", "100"}
	if transport == "tcp" {
		args = append(args, "-t", "t1")
	}
	if r := runSipp(t, "uac_echo.xml", append(args, u.SIPAddr())...); r.Code != 0 {
		t.Errorf("a normal call over %s after the garbage: sipp exited %d, want 0", transport, r.Code)
	}
}

func TestGarbageSIP(t *testing.T) {
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})

	for _, transport := range []string{"udp", "tcp"} {
		for _, kind := range []string{"random", "truncated", "no-via", "binary-headers"} {
			t.Run(transport+"/"+kind, func(t *testing.T) {
				sendGarbage(t, u, transport, garbageSIP(kind, u, transport))
				checkStillWorks(t, u, transport)
			})
		}
	}
	// No call came from the INVITEs uad cannot answer (they were processed
	// before the normal calls that followed them).
	for _, c := range u.Calls() {
		if strings.HasPrefix(c.SIPCallID, "garbage-") {
			t.Errorf("a garbage INVITE created call %+v", c)
		}
	}

	// An INVITE whose SDP does not parse: 488, and uad carries on.
	ev := u.Events()
	if r := runSipp(t, "uac_bad_sdp.xml", "-s", "uad", u.SIPAddr()); r.Code != 0 {
		t.Errorf("uac_bad_sdp exited %d, want 0 (488 answered and ACKed)", r.Code)
	}
	if ev.HasType("call.connected", "") {
		t.Errorf("an INVITE with unparseable SDP got connected")
	}
	checkStillWorks(t, u, "udp")
	ev.WaitType(t, "call.connected", "", sigTimeout) // the normal call's
}

// With api.token_file set, a request without the bearer token, or with a
// wrong one, is refused; with it, it is served.
func TestAPIToken(t *testing.T) {
	u := startUAD(t, UADOptions{Token: "s3cret-token"}) // the harness itself sends the token
	for _, auth := range []string{"", "Bearer wrong-token", "s3cret-token", "Basic czNjcmV0LXRva2Vu"} {
		req, err := http.NewRequest(http.MethodGet, u.URL()+"/v1/calls", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET /v1/calls with Authorization %q = %d, want 401 or 403", auth, resp.StatusCode)
		}
	}
	if st, body := u.API(http.MethodGet, "/v1/calls", nil); st != http.StatusOK {
		t.Errorf("GET /v1/calls with the token = %d %s, want 200", st, body)
	}
}
