package tests

// Operations: systemd's notify protocol and watchdog, config reload on
// SIGHUP, and the Prometheus metrics.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is the socket systemd would listen on for sd_notify messages.
type notifySocket struct {
	conn *net.UnixConn
	Addr string // what NOTIFY_SOCKET says
}

func newNotifySocket(t *testing.T, addr string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{conn: conn, Addr: addr}
}

// next returns the next message's variables, or fails the test after timeout.
func (n *notifySocket) next(t *testing.T, timeout time.Duration) map[string]string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = n.conn.SetReadDeadline(time.Now().Add(timeout))
	k, err := n.conn.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message within %v: %v", timeout, err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(buf[:k]), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		}
	}
	return vars
}

// await reads messages until one sets name=value; it fails the test after
// timeout. The messages before it are returned too, oldest first.
func (n *notifySocket) await(t *testing.T, name, value string, timeout time.Duration) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []map[string]string
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s=%s within %v; got %v", name, value, timeout, seen)
		}
		m := n.next(t, left)
		seen = append(seen, m)
		if m[name] == value {
			return seen
		}
	}
}

// uad reports READY=1 once it serves, feeds the watchdog every
// WATCHDOG_USEC/2, brackets a reload with RELOADING=1 and READY=1, and says
// STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	sock := newNotifySocket(t, filepath.Join(t.TempDir(), "notify.sock"))
	u := startUAD(t, UADOptions{Env: []string{"NOTIFY_SOCKET=" + sock.Addr, "WATCHDOG_USEC=200000"}})

	if first := sock.next(t, 5*time.Second); first["READY"] != "1" {
		t.Fatalf("first sd_notify message %v, want READY=1", first)
	}
	// WATCHDOG_USEC/2 is 100 ms: about ten pings a second (five would be
	// pinging at the full timeout, too late).
	pings := 0
	for end := time.Now().Add(time.Second); time.Until(end) > 0; {
		_ = sock.conn.SetReadDeadline(end)
		buf := make([]byte, 256)
		k, err := sock.conn.Read(buf)
		if err != nil {
			break
		}
		if string(buf[:k]) != "WATCHDOG=1" {
			t.Fatalf("sd_notify message %q after READY=1, want WATCHDOG=1", buf[:k])
		}
		pings++
	}
	if pings < 7 || pings > 11 {
		t.Errorf("%d watchdog pings in 1 s, want about 10 (every WATCHDOG_USEC/2)", pings)
	}

	if err := u.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	seen := sock.await(t, "RELOADING", "1", 5*time.Second)
	if us, err := strconv.ParseUint(seen[len(seen)-1]["MONOTONIC_USEC"], 10, 64); err != nil || us == 0 {
		t.Errorf("RELOADING=1 without a MONOTONIC_USEC: %v", seen[len(seen)-1])
	}
	sock.await(t, "READY", "1", 5*time.Second)

	if err := u.Stop(t, 10*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
	sock.await(t, "STOPPING", "1", time.Second)
}

// A NOTIFY_SOCKET starting with '@' is in the abstract namespace.
func TestSystemdNotifyAbstract(t *testing.T) {
	sock := newNotifySocket(t, fmt.Sprintf("@uad-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	startUAD(t, UADOptions{Env: []string{"NOTIFY_SOCKET=" + sock.Addr}})
	if m := sock.next(t, 5*time.Second); m["READY"] != "1" {
		t.Fatalf("sd_notify message %v, want READY=1", m)
	}
}

// logLine is one line of uad's JSON log.
type logLine struct {
	Level      string   `json:"level"`
	Message    string   `json:"message"`
	Error      string   `json:"error"`
	NotApplied []string `json:"not_applied"`
}

// logLines returns the daemon's log lines whose message contains substr.
func (u *UAD) logLines(substr string) []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(u.Log()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && strings.Contains(l.Message, substr) {
			out = append(out, l)
		}
	}
	return out
}

// requestLines counts the API's debug lines, one a request.
func (u *UAD) requestLines() int {
	n := 0
	for _, l := range u.logLines("request") {
		if l.Message == "request" && l.Level == "debug" {
			n++
		}
	}
	return n
}

// reload sends SIGHUP and waits for the log line that reports its outcome:
// want more lines containing substr than there were.
func (u *UAD) reload(t *testing.T, substr string) []logLine {
	t.Helper()
	before := len(u.logLines(substr))
	if err := u.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var lines []logLine
	if !poll(5*time.Second, 20*time.Millisecond, func() bool {
		lines = u.logLines(substr)
		return len(lines) > before
	}) {
		t.Fatalf("no log line %q within 5 s of SIGHUP", substr)
	}
	return lines[before:]
}

// edit replaces each old string of the config file with its new one.
func (u *UAD) edit(t *testing.T, pairs ...string) {
	t.Helper()
	text := readFile(u.ConfigPath)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("config has no %q:\n%s", pairs[i], text)
		}
		text = strings.ReplaceAll(text, pairs[i], pairs[i+1])
	}
	if err := os.WriteFile(u.ConfigPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (u *UAD) requireHealthy(t *testing.T) {
	t.Helper()
	if !u.Running() {
		t.Fatalf("uad exited: %v", u.exit)
	}
	if st, body := u.API(http.MethodGet, "/v1/health", nil); st != http.StatusOK {
		t.Fatalf("GET /v1/health = %d %s, want 200", st, body)
	}
}

// SIGHUP applies the log level and the hold tone, names sip.listen as left
// unchanged, and a broken file is rejected with FILE:LINE errors while uad
// runs on.
func TestReloadOnSIGHUP(t *testing.T) {
	u := startUAD(t, UADOptions{Config: map[string]any{"log.level": "info", "media.hold_tone": "440/300,0/3700"}})
	original := readFile(u.ConfigPath)
	u.Calls()
	if n := u.requestLines(); n != 0 {
		t.Fatalf("%d debug request lines at log.level info", n)
	}

	newPort := freePort(t)
	oldListen := fmt.Sprintf("127.0.0.1:%d", u.SIPPort)
	u.edit(t, `"info"`, `"debug"`, `"440/300,0/3700"`, `"350+440"`, oldListen, fmt.Sprintf("127.0.0.1:%d", newPort))
	u.reload(t, "config reloaded: applies to calls from now on")
	kept := u.logLines("only change on a restart")
	if len(kept) != 1 || strings.Join(kept[0].NotApplied, ",") != "sip.listen" {
		t.Errorf("log lines on keys kept: %+v, want one naming sip.listen alone", kept)
	}
	u.requireHealthy(t)
	if !portBound("udp", u.SIPPort) || portBound("udp", newPort) {
		t.Errorf("after the reload uad should still listen on %d and not on %d", u.SIPPort, newPort)
	}
	// log.level debug is in effect: requests are logged.
	u.Calls()
	if !poll(2*time.Second, 20*time.Millisecond, func() bool { return u.requestLines() > 0 }) {
		t.Errorf("no debug request line after reloading with log.level debug")
	}

	// A broken file: every error with its FILE:LINE, and the config stays.
	broken := "sip:\n  listen: [\"udp://" + oldListen + "\"]\nmedia:\n  rtp_timeout: banana\ncalls:\n  media: bogus\n"
	if err := os.WriteFile(u.ConfigPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	u.reload(t, "the running config stays in effect")
	var errs []string
	for _, l := range u.logLines("config reload rejected") {
		errs = append(errs, l.Error)
	}
	for _, want := range []string{u.ConfigPath + ":4: media.rtp_timeout", u.ConfigPath + ":6: calls.media"} {
		found := false
		for _, e := range errs {
			found = found || strings.HasPrefix(e, want)
		}
		if !found {
			t.Errorf("no rejected-reload line with %q; got %q", want, errs)
		}
	}
	u.requireHealthy(t)

	// A good file applies again.
	if err := os.WriteFile(u.ConfigPath, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	u.reload(t, "config reloaded: applies to calls from now on")
	u.requireHealthy(t)
}

// parseMetrics reads the Prometheus text exposition: `name{labels}` -> value.
func parseMetrics(t *testing.T, body []byte) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func (u *UAD) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	st, body := u.API(http.MethodGet, "/metrics", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", st, body)
	}
	return parseMetrics(t, body)
}

// After a call, GET /metrics (behind the token like the rest) counts it.
func TestMetricsAfterCall(t *testing.T) {
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Token: "m3trics"})
	if resp, err := http.Get(u.URL() + "/metrics"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token = %d, want 401", resp.StatusCode)
	}

	ev := u.Events()
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()
	peer.Send(u.AudioLocal(u.Call(id)), 10)
	peer.WaitCount(10, 3*time.Second)

	m := u.metrics(t)
	if m["uad_active_calls"] != 1 {
		t.Errorf("uad_active_calls = %v during the call, want 1", m["uad_active_calls"])
	}
	hangUp(t, u, ev, id, s)

	m = u.metrics(t)
	for k, want := range map[string]float64{
		`uad_calls_total{direction="inbound",result="local"}`: 1,
		`uad_active_calls`:                        0,
		`uad_events_total{type="call.connected"}`: 1,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present: %v), want %v", k, got, ok, want)
		}
	}
	// The final counters of a call are counted once it ended.
	if got := m[`uad_rtp_packets_total{direction="received"}`]; got < 10 {
		t.Errorf(`uad_rtp_packets_total{direction="received"} = %v, want >= 10`, got)
	}
	if m[`uad_api_requests_total{code="401"}`] != 1 || m[`uad_api_requests_total{code="200"}`] < 3 {
		t.Errorf("uad_api_requests_total: 401 %v, 200 %v", m[`uad_api_requests_total{code="401"}`], m[`uad_api_requests_total{code="200"}`])
	}
	for name := range m {
		if !strings.HasPrefix(name, "uad_") {
			t.Errorf("metric %s is not named uad_…", name)
		}
	}
}
