// Package tests holds uad's end-to-end tests. They drive the uad binary only
// through its outside surface (commands, config file, HTTP API, SSE events,
// SIP and RTP), with sipp and baresip as the peers; nothing here imports a
// package of the daemon (tests/internal is the tests' own).
//
// This file is the harness: building the daemon, starting it, talking to its
// API, following its events, RTP endpoints, and running sipp and baresip.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"uad/tests/internal/g711"
)

// ---------------------------------------------------------------------------
// TestMain: build the daemon once.

var (
	repoRoot string // the module root (parent of tests/)
	sippDir  string // tests/sipp
	uadBin   string // the uad binary under test
	// buildErr is set when the daemon did not build: every test that needs uad
	// fails with it, while the harness self-tests (peers only) still run.
	buildErr error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, err := os.Getwd() // `go test` runs a package's tests in its directory
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	sippDir = filepath.Join(wd, "sipp")
	if _, err := os.Stat(filepath.Join(repoRoot, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "tests: %s is not the module root: %v\n", repoRoot, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "uad-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if bin := os.Getenv("UAD_BIN"); bin != "" {
		uadBin = bin // a prebuilt binary, e.g. one built with -race
	} else {
		uadBin = filepath.Join(tmp, "uad")
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("no go tool on PATH to build ./cmd/uad: %w", err)
		} else {
			cmd := exec.Command(goTool, "build", "-o", uadBin, "./cmd/uad")
			cmd.Dir = repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build -o %s ./cmd/uad: %v\n%s", uadBin, err, out)
				fmt.Fprintln(os.Stderr, "tests:", buildErr)
			}
		}
	}
	return m.Run()
}

// requireUAD fails the test when the daemon did not build.
func requireUAD(t testing.TB) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("uad did not build: %v", buildErr)
	}
}

// requirePeer skips the test when one of the named programs is not on PATH,
// or fails it when CI=true (CI must have every peer installed).
func requirePeer(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (CI=true: every peer must be; tests/run.sh installs them)", name)
			}
			t.Skipf("%s is not installed; tests/run.sh installs it", name)
		}
	}
}

// ---------------------------------------------------------------------------
// Ports. Everything binds 127.0.0.1. Ports come from ranges below the Linux
// ephemeral range (32768+), so a socket bound to port 0 elsewhere never takes
// one of them between the check and the bind by the program under test; the
// start is derived from the pid so that concurrent test processes differ.

type portRange struct {
	mu     sync.Mutex
	lo, hi int // [lo, hi)
	next   int
}

func newPortRange(lo, hi, salt int) *portRange {
	return &portRange{lo: lo, hi: hi, next: lo + (os.Getpid()*salt)%(hi-lo)}
}

var (
	miscPorts = newPortRange(12000, 16000, 7919)   // SIP, API, sipp, baresip
	rtpBlocks = newPortRange(16000, 32600, 104729) // uad's media.rtp_ports blocks
)

// take returns the first port of n consecutive ports that are free now (UDP,
// and TCP too when tcp is set).
func (r *portRange) take(t testing.TB, n int, tcp bool) int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for tries := 0; tries <= (r.hi-r.lo)/n+1; tries++ {
		p := r.next
		if p+n > r.hi {
			p = r.lo
		}
		r.next = p + n
		if portsFree(p, n, tcp) {
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports in %d-%d", n, r.lo, r.hi-1)
	return 0
}

func portsFree(first, n int, tcp bool) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for p := first; p < first+n; p++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return false
		}
		closers = append(closers, pc)
		if tcp {
			l, err := net.Listen("tcp4", addr)
			if err != nil {
				return false
			}
			closers = append(closers, l)
		}
	}
	return true
}

// freePort returns one port free on both UDP and TCP.
func freePort(t testing.TB) int { t.Helper(); return miscPorts.take(t, 1, true) }

// listenLoopback binds a UDP socket on 127.0.0.1:port (0: any free port);
// what names its use in the failure.
func listenLoopback(t testing.TB, port int, what string) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("%s socket on port %d: %v", what, port, err)
	}
	return conn
}

// portBound reports whether something else holds network/127.0.0.1:port.
func portBound(network string, port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if network == "tcp" {
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return true
		}
		l.Close()
		return false
	}
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return true
	}
	pc.Close()
	return false
}

// poll calls cond every interval until it returns true or timeout passes.
func poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// process is a child program whose output goes to a log file.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited
	exit error         // how it exited, set before done is closed
}

// startProcess starts cmd with its stdout and stderr in a new file at
// logPath; what names it when it cannot start.
func startProcess(t testing.TB, cmd *exec.Cmd, logPath, what string) *process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", what, err)
	}
	logf.Close()
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exit = cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pollRunning is poll that also ends when the process exits; the caller
// tells the two apart with running.
func (p *process) pollRunning(timeout, interval time.Duration, cond func() bool) bool {
	return poll(timeout, interval, func() bool { return !p.running() || cond() })
}

// filter returns the elements of xs that keep accepts, in order.
func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// tail returns at most the last max bytes of s.
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "[... " + strconv.Itoa(len(s)-max) + " bytes cut ...]\n" + s[len(s)-max:]
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// The contract's JSON, mirrored.

// CallInfo is the API's call object.
type CallInfo struct {
	ID         string      `json:"id"`
	SIPCallID  string      `json:"sip_call_id"`
	Direction  string      `json:"direction"` // outbound | inbound
	RemoteURI  string      `json:"remote_uri"`
	State      string      `json:"state"` // calling | ringing | live | hold | ended
	LocalHold  bool        `json:"local_hold"`
	RemoteHold bool        `json:"remote_hold"`
	Pending    *string     `json:"pending"`
	Audio      *StreamInfo `json:"audio"`
	Video      *StreamInfo `json:"video"`
}

// StreamInfo is a call's audio or video object.
type StreamInfo struct {
	Direction   string `json:"direction"`
	Codec       string `json:"codec"`
	PayloadType uint8  `json:"payload_type"`
	LocalRTP    string `json:"local_rtp"`
	RemoteRTP   string `json:"remote_rtp"`
	RelayLocal  string `json:"relay_local"`
	RelayRemote string `json:"relay_remote"`
	HoldTone    *bool  `json:"hold_tone"`
}

// Event is one Server-Sent Event of GET /v1/events.
type Event struct {
	Seq       int64           `json:"seq"`
	Boot      json.RawMessage `json:"boot"`
	Time      string          `json:"time"`
	Type      string          `json:"type"`
	Call      *CallInfo       `json:"call"`
	Reason    string          `json:"reason"`
	SIPStatus int             `json:"sip_status"`
	By        string          `json:"by"`
	Digit     string          `json:"digit"`
	Account   string          `json:"account"`

	SSEID    string `json:"-"` // the SSE id: field
	SSEEvent string `json:"-"` // the SSE event: field, if any
	Raw      string `json:"-"` // the data as received
}

// CallID is the event's call id, "" when it has no call.
func (e Event) CallID() string {
	if e.Call == nil {
		return ""
	}
	return e.Call.ID
}

// eventTime parses an event's RFC 3339 time.
func eventTime(t testing.TB, e Event) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		t.Fatalf("event %s: time %q: %v", e, e.Time, err)
	}
	return tm
}

func (e Event) String() string {
	s := fmt.Sprintf("#%d %s", e.Seq, e.Type)
	if e.Call != nil {
		s += fmt.Sprintf(" call=%s state=%s", e.Call.ID, e.Call.State)
	}
	if e.Reason != "" {
		s += " reason=" + e.Reason
	}
	if e.SIPStatus != 0 {
		s += fmt.Sprintf(" sip_status=%d", e.SIPStatus)
	}
	return s
}

// ---------------------------------------------------------------------------
// The daemon.

// UADOptions configure one uad instance. The zero value is the contract's
// default behaviour: incoming calls auto-answered with echo.
type UADOptions struct {
	Name       string         // a label in logs ("A", "B"); default "uad"
	AutoAnswer *bool          // calls.auto_answer; default true
	Media      string         // calls.media; default "echo"
	Relay      string         // calls.relay, when set
	Token      string         // when set: api.token_file holding it, and the harness sends it
	Config     map[string]any // more keys, dotted ("calls.unhold_failure": "keep"); set last
	ExtraYAML  string         // appended verbatim to the file (top-level keys not set otherwise)
	Env        []string       // added to the daemon's environment, "NAME=value"
}

// UAD is a running `uad run`.
type UAD struct {
	t          *testing.T
	Name       string
	SIPPort    int    // UDP and TCP
	APIAddr    string // host:port
	RTPMin     int    // media.rtp_ports
	RTPMax     int
	Dir        string
	ConfigPath string
	LogPath    string

	*process
	token  string
	client *http.Client
	// stopped is set by Stop: the process's exit was expected and checked.
	stopped bool
}

func boolPtr(b bool) *bool { return &b }

// startUAD writes a config, starts `uad run --config FILE`, and returns once
// GET /v1/health answers 200. At the end of the test it sends SIGTERM and
// requires exit status 0 within 5 s; the log is dumped when the test failed.
func startUAD(t *testing.T, opts UADOptions) *UAD {
	t.Helper()
	requireUAD(t)
	name := opts.Name
	if name == "" {
		name = "uad"
	}
	dir := t.TempDir()
	u := &UAD{
		t:          t,
		Name:       name,
		SIPPort:    freePort(t),
		APIAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "uad.yaml"),
		LogPath:    filepath.Join(dir, "uad.log"),
		token:      opts.Token,
		client:     &http.Client{Timeout: 30 * time.Second},
	}
	u.RTPMin = rtpBlocks.take(t, 200, false)
	u.RTPMax = u.RTPMin + 199

	autoAnswer := true
	if opts.AutoAnswer != nil {
		autoAnswer = *opts.AutoAnswer
	}
	media := opts.Media
	if media == "" {
		media = "echo"
	}
	cfg := map[string]any{}
	setKey(cfg, "sip.listen", []string{
		fmt.Sprintf("udp://127.0.0.1:%d", u.SIPPort),
		fmt.Sprintf("tcp://127.0.0.1:%d", u.SIPPort),
	})
	setKey(cfg, "api.listen", u.APIAddr)
	setKey(cfg, "media.rtp_ports", fmt.Sprintf("%d-%d", u.RTPMin, u.RTPMax))
	setKey(cfg, "calls.auto_answer", autoAnswer)
	setKey(cfg, "calls.media", media)
	if opts.Relay != "" {
		setKey(cfg, "calls.relay", opts.Relay)
	}
	setKey(cfg, "log.level", "debug")
	if opts.Token != "" {
		tokenPath := filepath.Join(dir, "token")
		if err := os.WriteFile(tokenPath, []byte(opts.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		setKey(cfg, "api.token_file", tokenPath)
	}
	for k, v := range opts.Config {
		setKey(cfg, k, v)
	}
	text := renderYAML(cfg, 0) + opts.ExtraYAML
	if err := os.WriteFile(u.ConfigPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(uadBin, "run", "--config", u.ConfigPath)
	cmd.Dir = dir
	if len(opts.Env) > 0 {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	u.process = startProcess(t, cmd, u.LogPath, uadBin)
	t.Cleanup(u.stop)

	// Poll until every listener is up (503 before), or the daemon died.
	var last string
	ok := u.pollRunning(15*time.Second, 50*time.Millisecond, func() bool {
		st, body, err := u.do(http.MethodGet, "/v1/health", nil)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%d %s", st, body)
		return st == http.StatusOK
	})
	if !u.running() {
		t.Fatalf("uad %s exited during startup: %v\nconfig:\n%s", name, u.exit, text)
	}
	if !ok {
		t.Fatalf("uad %s: GET /v1/health not 200 within 15 s (last: %s)\nconfig:\n%s", name, last, text)
	}
	var health struct {
		Ready bool `json:"ready"`
	}
	if _, body, _ := u.do(http.MethodGet, "/v1/health", nil); json.Unmarshal(body, &health) != nil || !health.Ready {
		t.Fatalf("uad %s: GET /v1/health = 200 %s, want {\"ready\": true}", name, body)
	}
	return u
}

func (u *UAD) stop() {
	t := u.t
	select {
	case <-u.done:
		if !u.stopped {
			t.Errorf("uad %s exited before the end of the test: %v", u.Name, u.exit)
		}
	default:
		_ = u.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-u.done:
			if u.exit != nil {
				t.Errorf("uad %s: after SIGTERM: %v, want exit status 0", u.Name, u.exit)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("uad %s did not exit within 5 s of SIGTERM", u.Name)
			_ = u.cmd.Process.Kill()
			<-u.done
		}
	}
	if t.Failed() {
		t.Logf("---- uad %s log (%s) ----\n%s\n---- end of uad %s log ----",
			u.Name, u.LogPath, tail(readFile(u.LogPath), 256<<10), u.Name)
	}
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; it
// returns the exit error (nil: status 0), or fails the test when the process
// is still running (then it is killed). The end-of-test check then expects
// the process gone.
func (u *UAD) Stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	u.stopped = true
	if err := u.cmd.Process.Signal(syscall.SIGTERM); err != nil && u.Running() {
		t.Fatalf("uad %s: SIGTERM: %v", u.Name, err)
	}
	select {
	case <-u.done:
		return u.exit
	case <-time.After(timeout):
		_ = u.cmd.Process.Kill()
		<-u.done
		t.Fatalf("uad %s did not exit within %v of SIGTERM; killed", u.Name, timeout)
		return nil
	}
}

// Kill sends SIGKILL (no BYE, no goodbye of any kind: the peer just
// vanishes) and waits for the process to be gone. The end-of-test check then
// expects the process gone.
func (u *UAD) Kill(t testing.TB) {
	t.Helper()
	u.stopped = true
	if err := u.cmd.Process.Kill(); err != nil && u.Running() {
		t.Fatalf("uad %s: SIGKILL: %v", u.Name, err)
	}
	select {
	case <-u.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("uad %s still running 5 s after SIGKILL", u.Name)
	}
}

// PID is the daemon's process id (for /proc/PID/...).
func (u *UAD) PID() int { return u.cmd.Process.Pid }

// Running reports whether the process is still alive.
func (u *UAD) Running() bool { return u.running() }

// Log returns what the daemon wrote so far.
func (u *UAD) Log() string { return readFile(u.LogPath) }

// SIPAddr is "127.0.0.1:PORT", sipp's remote host argument.
func (u *UAD) SIPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(u.SIPPort)) }

// SIPURI is a SIP URI of this instance with the given user.
func (u *UAD) SIPURI(user string) string { return "sip:" + user + "@" + u.SIPAddr() }

// URL is the API's base URL.
func (u *UAD) URL() string { return "http://" + u.APIAddr }

func (u *UAD) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		case string:
			rd = strings.NewReader(b)
		default:
			data, err := json.Marshal(body)
			if err != nil {
				return 0, nil, err
			}
			rd = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(method, u.URL()+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// API sends a request to the control API. body: nil (none), []byte or string
// (sent as is, e.g. malformed JSON), or anything else (sent as JSON). A
// transport error fails the test.
func (u *UAD) API(method, path string, body any) (status int, respBody []byte) {
	u.t.Helper()
	st, data, err := u.do(method, path, body)
	if err != nil {
		u.t.Fatalf("uad %s: %s %s: %v", u.Name, method, path, err)
	}
	return st, data
}

// decodeCall decodes a call object or fails the test.
func decodeCall(t testing.TB, what string, data []byte) CallInfo {
	t.Helper()
	var c CallInfo
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: not a call object: %v: %s", what, err, data)
	}
	if c.ID == "" {
		t.Fatalf("%s: call object without id: %s", what, data)
	}
	return c
}

// PlaceCall does POST /v1/calls {"to": to, ...extra} and requires 201.
func (u *UAD) PlaceCall(to string, extra map[string]any) CallInfo {
	u.t.Helper()
	body := map[string]any{"to": to}
	for k, v := range extra {
		body[k] = v
	}
	st, data := u.API(http.MethodPost, "/v1/calls", body)
	if st != http.StatusCreated {
		u.t.Fatalf("uad %s: POST /v1/calls %v = %d %s, want 201", u.Name, body, st, data)
	}
	c := decodeCall(u.t, "POST /v1/calls", data)
	if c.Direction != "outbound" {
		u.t.Errorf("uad %s: placed call has direction %q, want outbound", u.Name, c.Direction)
	}
	return c
}

// Calls does GET /v1/calls and requires 200.
func (u *UAD) Calls() []CallInfo {
	u.t.Helper()
	return getJSON[[]CallInfo](u.t, u, "/v1/calls", "a list of calls")
}

// getJSON does GET path, requires 200 and decodes the body, which what
// describes.
func getJSON[T any](t testing.TB, u *UAD, path, what string) T {
	t.Helper()
	st, data := u.API(http.MethodGet, path, nil)
	if st != http.StatusOK {
		t.Fatalf("uad %s: GET %s = %d %s, want 200", u.Name, path, st, data)
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("uad %s: GET %s: not %s: %v: %s", u.Name, path, what, err, data)
	}
	return v
}

// Call does GET /v1/calls/{id} and requires 200.
func (u *UAD) Call(id string) CallInfo {
	u.t.Helper()
	st, data := u.API(http.MethodGet, "/v1/calls/"+id, nil)
	if st != http.StatusOK {
		u.t.Fatalf("uad %s: GET /v1/calls/%s = %d %s, want 200", u.Name, id, st, data)
	}
	return decodeCall(u.t, "GET /v1/calls/"+id, data)
}

// Hangup does DELETE /v1/calls/{id} and requires 200 with state ended.
func (u *UAD) Hangup(id string) CallInfo {
	u.t.Helper()
	st, data := u.API(http.MethodDelete, "/v1/calls/"+id, nil)
	if st != http.StatusOK {
		u.t.Fatalf("uad %s: DELETE /v1/calls/%s = %d %s, want 200", u.Name, id, st, data)
	}
	c := decodeCall(u.t, "DELETE /v1/calls/"+id, data)
	if c.State != "ended" {
		u.t.Errorf("uad %s: DELETE /v1/calls/%s returned state %q, want ended", u.Name, id, c.State)
	}
	return c
}

// AudioLocal returns the call's audio.local_rtp as a UDP address, failing the
// test when it is missing.
func (u *UAD) AudioLocal(c CallInfo) *net.UDPAddr {
	u.t.Helper()
	if c.Audio == nil || c.Audio.LocalRTP == "" {
		u.t.Fatalf("uad %s: call %s has no audio.local_rtp: %+v", u.Name, c.ID, c.Audio)
	}
	return mustUDPAddr(u.t, c.Audio.LocalRTP)
}

func mustUDPAddr(t testing.TB, s string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		t.Fatalf("bad address %q: %v", s, err)
	}
	return a
}

// Setting config keys and rendering YAML. Scalars and lists are written as
// JSON, which YAML reads as flow scalars/sequences; maps as block mappings.

func setKey(cfg map[string]any, dotted string, v any) {
	parts := strings.Split(dotted, ".")
	m := cfg
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
}

func renderYAML(m map[string]any, indent int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	pad := strings.Repeat("  ", indent)
	for _, k := range keys {
		if sub, ok := m[k].(map[string]any); ok {
			fmt.Fprintf(&b, "%s%s:\n%s", pad, k, renderYAML(sub, indent+1))
			continue
		}
		data, err := json.Marshal(m[k])
		if err != nil {
			panic(fmt.Sprintf("config key %s: %v", k, err))
		}
		fmt.Fprintf(&b, "%s%s: %s\n", pad, k, data)
	}
	return b.String()
}

// eventLog holds what a peer reported, in arrival order, for the tests to
// wait on. Each entry is taken at most once, so waiting twice for the same
// kind gets two different entries.
type eventLog[E any] struct {
	mu     sync.Mutex
	events []E
	used   []bool
	notify chan struct{} // closed and replaced on each change
	err    error         // why no more entries come
}

func newEventLog[E any]() *eventLog[E] { return &eventLog[E]{notify: make(chan struct{})} }

func (l *eventLog[E]) add(e E) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	l.used = append(l.used, false)
	l.changed()
}

// end notes that no more entries come, and why.
func (l *eventLog[E]) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
	l.changed()
}

func (l *eventLog[E]) changed() {
	close(l.notify)
	l.notify = make(chan struct{})
}

func (l *eventLog[E]) all() []E {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]E(nil), l.events...)
}

// waitFor returns the first entry not taken before that pred accepts,
// waiting up to timeout; it fails the test otherwise, naming the peer (who)
// and the channel it reports on (via).
func (l *eventLog[E]) waitFor(t testing.TB, pred func(E) bool, timeout time.Duration, who, via string, seen func() string) E {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i, e := range l.events {
			if !l.used[i] && pred(e) {
				l.used[i] = true
				l.mu.Unlock()
				return e
			}
		}
		ch, err := l.notify, l.err
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: %s ended (%v) without the awaited event; seen:\n%s", who, via, err, seen())
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: awaited event did not come within %v; seen:\n%s", who, timeout, seen())
		}
	}
}

// ---------------------------------------------------------------------------
// Events: GET /v1/events as Server-Sent Events.

// EventStream follows GET /v1/events from the moment Events returned.
type EventStream struct {
	u      *UAD
	cancel context.CancelFunc
	ended  chan struct{}
	log    *eventLog[Event]

	mu  sync.Mutex
	bad []string // data that was not an event object
}

// Events subscribes to the event stream; it returns once uad has answered
// with the response headers, so every event after that is seen.
func (u *UAD) Events() *EventStream {
	u.t.Helper()
	es, contentType := u.subscribe("")
	if !strings.HasPrefix(contentType, "text/event-stream") {
		u.t.Errorf("uad %s: GET /v1/events Content-Type %q, want text/event-stream", u.Name, contentType)
	}
	return es
}

// eventsFromStart is Events from the daemon's first event on (Last-Event-ID
// 0): registration can complete before a test subscribes.
func (u *UAD) eventsFromStart() *EventStream {
	u.t.Helper()
	es, _ := u.subscribe("0")
	return es
}

// subscribe does GET /v1/events (with Last-Event-ID lastID unless "") and
// follows the stream until the end of the test; it returns the stream and
// the response's Content-Type.
func (u *UAD) subscribe(lastID string) (*EventStream, string) {
	u.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL()+"/v1/events", nil)
	if err != nil {
		cancel()
		u.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		u.t.Fatalf("uad %s: GET /v1/events: %v", u.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		u.t.Fatalf("uad %s: GET /v1/events = %d %s, want 200", u.Name, resp.StatusCode, body)
	}
	es := &EventStream{u: u, cancel: cancel, ended: make(chan struct{}), log: newEventLog[Event]()}
	go es.read(resp.Body)
	u.t.Cleanup(func() {
		cancel()
		<-es.ended
		if u.t.Failed() {
			u.t.Logf("uad %s events seen:\n%s", u.Name, es.summary())
		}
	})
	return es, resp.Header.Get("Content-Type")
}

func (es *EventStream) read(body io.ReadCloser) {
	defer close(es.ended)
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id, typ string
	var data []string
	dispatch := func() {
		if len(data) == 0 {
			id, typ = "", ""
			return
		}
		raw := strings.Join(data, "\n")
		var e Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			es.mu.Lock()
			es.bad = append(es.bad, raw)
			es.mu.Unlock()
		} else {
			e.SSEID, e.SSEEvent, e.Raw = id, typ, raw
			es.log.add(e)
		}
		id, typ, data = "", "", nil
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			dispatch()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment / keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			data = append(data, value)
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	es.log.end(err)
}

// WaitFor returns the first event not returned before that satisfies pred,
// waiting up to timeout for it; it fails the test otherwise. Events are
// matched in arrival order and each is returned at most once, so waiting
// twice for the same kind gets two different events.
func (es *EventStream) WaitFor(t testing.TB, pred func(Event) bool, timeout time.Duration) Event {
	t.Helper()
	return es.log.waitFor(t, pred, timeout, "uad "+es.u.Name, "event stream", es.summary)
}

// ofType matches the events of type typ (for call callID, unless "").
func ofType(typ, callID string) func(Event) bool {
	return func(e Event) bool { return e.Type == typ && (callID == "" || e.CallID() == callID) }
}

// WaitType waits for an event of type typ (for call callID, unless "").
func (es *EventStream) WaitType(t testing.TB, typ, callID string, timeout time.Duration) Event {
	t.Helper()
	return es.WaitFor(t, ofType(typ, callID), timeout)
}

// WaitIncoming waits for call.incoming and requires it to carry a call.
func (es *EventStream) WaitIncoming(t testing.TB) Event {
	t.Helper()
	inc := es.WaitType(t, "call.incoming", "", sigTimeout)
	if inc.CallID() == "" {
		t.Fatalf("call.incoming without a call: %s", inc.Raw)
	}
	return inc
}

// WaitAnswered waits for an incoming call and its call.connected, which it
// returns.
func (es *EventStream) WaitAnswered(t testing.TB) Event {
	t.Helper()
	id := es.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	return es.WaitType(t, "call.connected", id, sigTimeout)
}

// All returns every event received so far.
func (es *EventStream) All() []Event { return es.log.all() }

// Has reports whether some event received so far satisfies pred (returned
// before or not).
func (es *EventStream) Has(pred func(Event) bool) bool {
	for _, e := range es.All() {
		if pred(e) {
			return true
		}
	}
	return false
}

// HasType reports whether an event of type typ (for call callID, unless
// "") came so far.
func (es *EventStream) HasType(typ, callID string) bool { return es.Has(ofType(typ, callID)) }

// noEvent asserts that no event of one of the types (for call callID,
// unless "") came so far; what says whose events they are.
func noEvent(t testing.TB, es *EventStream, what, callID string, types ...string) {
	t.Helper()
	for _, e := range es.All() {
		for _, typ := range types {
			if ofType(typ, callID)(e) {
				t.Errorf("%s: unexpected event %s (%s)", what, e, e.Raw)
			}
		}
	}
}

func (es *EventStream) summary() string {
	evs := es.All()
	es.mu.Lock()
	defer es.mu.Unlock()
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	for _, raw := range es.bad {
		fmt.Fprintf(&b, "  (not an event object) %s\n", raw)
	}
	if b.Len() == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}

// CheckWellFormed asserts the contract's envelope on every event so far:
// seq consecutive (the stream started without Last-Event-ID), the SSE id is
// the seq, one boot, time in RFC 3339 with milliseconds, every data a JSON
// event object.
func (es *EventStream) CheckWellFormed(t testing.TB) {
	t.Helper()
	es.mu.Lock()
	bad := append([]string(nil), es.bad...)
	es.mu.Unlock()
	for _, raw := range bad {
		t.Errorf("uad %s: event data is not an event object: %s", es.u.Name, raw)
	}
	evs := es.All()
	msTime := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)
	for i, e := range evs {
		if e.Type == "" {
			t.Errorf("event %s without type: %s", e.SSEID, e.Raw)
		}
		if e.SSEID != strconv.FormatInt(e.Seq, 10) {
			t.Errorf("event seq %d has SSE id %q, want the seq", e.Seq, e.SSEID)
		}
		if !msTime.MatchString(e.Time) {
			t.Errorf("event #%d time %q is not RFC 3339 with milliseconds", e.Seq, e.Time)
		}
		if len(e.Boot) == 0 || string(e.Boot) == "null" {
			t.Errorf("event #%d has no boot", e.Seq)
		}
		if i > 0 {
			if e.Seq != evs[i-1].Seq+1 {
				t.Errorf("event seq %d follows %d, want consecutive", e.Seq, evs[i-1].Seq)
			}
			if string(e.Boot) != string(evs[i-1].Boot) {
				t.Errorf("event #%d boot %s differs from the previous %s", e.Seq, e.Boot, evs[i-1].Boot)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// RTP endpoints.

// RTPPacket is one received RTP packet.
type RTPPacket struct {
	From    *net.UDPAddr
	At      time.Time
	PT      uint8
	Seq     uint16
	TS      uint32
	SSRC    uint32
	Marker  bool
	Payload []byte
}

// RTPPeer is a UDP socket on 127.0.0.1 (or ::1) that sends G.711 RTP and records
// every RTP packet it receives (RTCP and non-RTP datagrams are counted apart).
type RTPPeer struct {
	t    testing.TB
	conn *net.UDPConn
	SSRC uint32
	PT   uint8 // payload type sent; 0 (PCMU) unless changed

	sendMu sync.Mutex
	seq    uint16
	ts     uint32
	sent   int

	mu       sync.Mutex
	recv     []RTPPacket
	sentPay  map[string]bool
	rtcp     int
	nonRTP   int
	notify   chan struct{}
	readDone chan struct{}
}

// newRTPPeer binds 127.0.0.1:port (0 = any free port).
func newRTPPeer(t testing.TB, port int) *RTPPeer {
	t.Helper()
	return rtpPeerOn(t, listenLoopback(t, port, "RTP"))
}

// rtpPeerOn makes an RTPPeer of a bound socket.
func rtpPeerOn(t testing.TB, conn *net.UDPConn) *RTPPeer {
	t.Helper()
	p := &RTPPeer{
		t:        t,
		conn:     conn,
		SSRC:     rand.Uint32() | 1,
		seq:      uint16(rand.Uint32()),
		ts:       rand.Uint32(),
		sentPay:  map[string]bool{},
		notify:   make(chan struct{}),
		readDone: make(chan struct{}),
	}
	go p.readLoop()
	t.Cleanup(func() {
		conn.Close()
		<-p.readDone
	})
	return p
}

func (p *RTPPeer) readLoop() {
	defer close(p.readDone)
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable reported on the socket
		}
		var pkt rtp.Packet
		p.mu.Lock()
		switch {
		case n >= 2 && buf[0]>>6 == 2 && buf[1] >= 192 && buf[1] <= 223:
			p.rtcp++ // RTCP (SR 200, RR 201, ...: payload-type byte 192-223)
		case pkt.Unmarshal(buf[:n]) != nil || pkt.Version != 2:
			p.nonRTP++
		default:
			p.recv = append(p.recv, RTPPacket{
				From: from, At: time.Now(), PT: pkt.PayloadType, Seq: pkt.SequenceNumber,
				TS: pkt.Timestamp, SSRC: pkt.SSRC, Marker: pkt.Marker,
				Payload: append([]byte(nil), pkt.Payload...),
			})
			close(p.notify)
			p.notify = make(chan struct{})
		}
		p.mu.Unlock()
	}
}

// Port is the local port; Addr is "127.0.0.1:PORT" (or "[::1]:PORT").
func (p *RTPPeer) Port() int    { return p.conn.LocalAddr().(*net.UDPAddr).Port }
func (p *RTPPeer) Addr() string { return p.conn.LocalAddr().String() }

// SendOne sends one 20 ms PCMU packet (a 440 Hz tone whose first two bytes
// number the packet, so every payload differs) to to.
func (p *RTPPeer) SendOne(to *net.UDPAddr) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	payload := toneFrame(p.sent)
	pkt := rtp.Packet{
		Header: rtp.Header{
			Version: 2, Marker: p.sent == 0, PayloadType: p.PT,
			SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.SSRC,
		},
		Payload: payload,
	}
	data, err := pkt.Marshal()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.sentPay[string(payload)] = true
	p.mu.Unlock()
	p.seq++
	p.ts += 160
	p.sent++
	_, err = p.conn.WriteToUDP(data, to)
	return err
}

// Send sends n packets to to, one every 20 ms; it returns when all are sent.
func (p *RTPPeer) Send(to *net.UDPAddr, n int) {
	p.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		if err := p.SendOne(to); err != nil {
			p.t.Errorf("RTP send to %s: %v", to, err)
			return
		}
		if i < n-1 {
			<-tick.C
		}
	}
}

// SendAsync sends n packets in the background; the returned func waits for
// the end.
func (p *RTPPeer) SendAsync(to *net.UDPAddr, n int) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			if p.SendOne(to) != nil {
				return
			}
			<-tick.C
		}
	}()
	return func() { <-done }
}

// Received returns a copy of the RTP packets received so far.
func (p *RTPPeer) Received() []RTPPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]RTPPacket(nil), p.recv...)
}

// Count is how many RTP packets arrived so far.
func (p *RTPPeer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.recv)
}

// WaitCount waits until at least n RTP packets arrived or timeout passed,
// and returns the count (the caller asserts).
func (p *RTPPeer) WaitCount(n int, timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		c, ch := len(p.recv), p.notify
		p.mu.Unlock()
		if c >= n {
			return c
		}
		select {
		case <-ch:
		case <-deadline.C:
			return p.Count()
		}
	}
}

// SentPayload reports whether payload is one this peer sent.
func (p *RTPPeer) SentPayload(payload []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sentPay[string(payload)]
}

// Stats summarises the received packets.
func (p *RTPPeer) Stats() RTPStats { return analyzeRTP(p.Received()) }

// RTPStats describes a sequence of received RTP packets.
type RTPStats struct {
	Count      int
	SSRCs      map[uint32]int
	PTs        map[uint8]int
	Sources    map[string]int
	SeqBreaks  int // packets whose seq is not the previous one's + 1 (same SSRC)
	TSBreaks   int // packets whose timestamp step is not a positive multiple of 160
	FirstSeq   uint16
	LastSeq    uint16
	Timestamps []uint32
}

func analyzeRTP(pkts []RTPPacket) RTPStats {
	s := RTPStats{Count: len(pkts), SSRCs: map[uint32]int{}, PTs: map[uint8]int{}, Sources: map[string]int{}}
	lastBySSRC := map[uint32]RTPPacket{}
	for i, pk := range pkts {
		s.SSRCs[pk.SSRC]++
		s.PTs[pk.PT]++
		s.Sources[pk.From.String()]++
		s.Timestamps = append(s.Timestamps, pk.TS)
		if i == 0 {
			s.FirstSeq = pk.Seq
		}
		s.LastSeq = pk.Seq
		if prev, ok := lastBySSRC[pk.SSRC]; ok {
			if pk.Seq != prev.Seq+1 {
				s.SeqBreaks++
			}
			if d := pk.TS - prev.TS; d == 0 || d%160 != 0 || d > 1<<31 {
				s.TSBreaks++
			}
		}
		lastBySSRC[pk.SSRC] = pk
	}
	return s
}

func (s RTPStats) String() string {
	return fmt.Sprintf("%d packets, SSRCs %v, PTs %v, from %v, seq %d..%d, %d seq breaks, %d timestamp breaks",
		s.Count, s.SSRCs, s.PTs, s.Sources, s.FirstSeq, s.LastSeq, s.SeqBreaks, s.TSBreaks)
}

// checkUADStream asserts what the contract says about RTP that uad sends:
// one SSRC of its own (not notSSRC, the SSRC of what we sent it, unless 0),
// consecutive sequence numbers, timestamps advancing by multiples of 160,
// and the payload type wantPT (-1: any).
func checkUADStream(t testing.TB, what string, pkts []RTPPacket, wantPT int, notSSRC uint32) {
	t.Helper()
	s := analyzeRTP(pkts)
	if s.Count == 0 {
		t.Errorf("%s: no RTP", what)
		return
	}
	if len(s.SSRCs) != 1 {
		t.Errorf("%s: %d SSRCs, want 1 constant SSRC: %s", what, len(s.SSRCs), s)
	}
	if notSSRC != 0 && s.SSRCs[notSSRC] > 0 {
		t.Errorf("%s: uad sent with the peer's own SSRC %#x, want its own: %s", what, notSSRC, s)
	}
	if s.SeqBreaks > 0 {
		t.Errorf("%s: sequence numbers not consecutive: %s", what, s)
	}
	if s.TSBreaks > 0 {
		t.Errorf("%s: timestamps not advancing by multiples of 160: %s", what, s)
	}
	if wantPT >= 0 && (len(s.PTs) != 1 || s.PTs[uint8(wantPT)] == 0) {
		t.Errorf("%s: payload types %v, want only %d", what, s.PTs, wantPT)
	}
}

// toneFrame is 160 PCMU samples of a 440 Hz tone, continuing the phase from
// frame i-1; its first two bytes number the frame (values 0x20-0x5f), so
// frames differ. No byte is 0x7f (the µ-law "negative zero", which a decode
// and re-encode turns into 0xff).
func toneFrame(i int) []byte {
	out := make([]byte, 160)
	for k := range out {
		n := i*160 + k
		v := 8000 * math.Sin(2*math.Pi*440*float64(n)/8000)
		out[k] = g711.EncodeULaw(int16(v))
		if out[k] == 0x7f {
			out[k] = 0xff
		}
	}
	out[0] = byte(0x20 + i%64)
	out[1] = byte(0x20 + (i/64)%64)
	return out
}

// payloadPT maps a codec name of the API to its static payload type.
func payloadPT(codec string) int {
	switch strings.ToUpper(codec) {
	case "PCMU":
		return 0
	case "PCMA":
		return 8
	}
	return -1
}

// ---------------------------------------------------------------------------
// sipp.

// SippResult is what a finished sipp run left.
type SippResult struct {
	Code     int    // exit status: 0 = every call succeeded
	Messages string // -trace_msg: every SIP message sent and received
	Errors   string // -trace_err: unexpected messages
	Output   string // stdout+stderr (the final statistics screen)
}

// Sipp is a sipp process.
type Sipp struct {
	t         testing.TB
	Scenario  string
	Port      int // -p
	MediaPort int // -mp (sipp binds it and +2)
	RTPPort   int // -key rtp_port: the audio port the scenario announces in SDP
	Dir       string
	Args      []string

	*process
	msgPath string
	errPath string
	outPath string
	waited  bool
	result  SippResult
}

// flagValue returns the value following flag in args.
func flagValue(args []string, flag string) (string, bool) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1], true
		}
	}
	return "", false
}

func hasArg(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

// sippBoolFlags are the sipp options that take no value.
var sippBoolFlags = map[string]bool{
	"-aa": true, "-bg": true, "-nd": true, "-nr": true, "-nostdin": true, "-rtp_echo": true,
	"-timeout_error": true, "-trace_err": true, "-trace_msg": true, "-trace_screen": true,
	"-trace_stat": true, "-trace_rtt": true, "-trace_logs": true, "-trace_counts": true,
	"-trace_calldebug": true, "-trace_error_codes": true, "-pause_msg_ign": true, "-v": true,
	"-bind_local": true, "-skip_rlimit": true,
}

// sippRemote returns the index of sipp's positional remote-host argument in
// args, or -1.
func sippRemote(args []string) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if !sippBoolFlags[a] {
				i++ // skip the value
			}
			if a == "-key" || a == "-set" {
				i++ // two values
			}
			continue
		}
		return i
	}
	return -1
}

// startSipp starts sipp with scenario (a file in tests/sipp unless a path)
// and args. The harness adds, unless args set them: -i 127.0.0.1, -p, -mp
// and -cp on free ports, -m 1, -timeout 30s -timeout_error, -key rtp_port
// (default: sipp's own media port), -nostdin and the message/error traces.
// A sipp without a remote host is a UAS: startSipp returns once it listens.
func startSipp(t testing.TB, scenario string, args ...string) *Sipp {
	t.Helper()
	requirePeer(t, "sipp")
	path := scenario
	if !strings.Contains(scenario, "/") {
		path = filepath.Join(sippDir, scenario)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("sipp scenario: %v", err)
	}
	dir := t.TempDir()
	s := &Sipp{
		t: t, Scenario: filepath.Base(path), Dir: dir,
		msgPath: filepath.Join(dir, "messages.log"),
		errPath: filepath.Join(dir, "errors.log"),
		outPath: filepath.Join(dir, "sipp.out"),
	}
	full := []string{"-sf", path}
	if !hasArg(args, "-i") {
		full = append(full, "-i", "127.0.0.1")
	}
	if v, ok := flagValue(args, "-p"); ok {
		s.Port, _ = strconv.Atoi(v)
	} else {
		s.Port = freePort(t)
		full = append(full, "-p", strconv.Itoa(s.Port))
	}
	if v, ok := flagValue(args, "-mp"); ok {
		s.MediaPort, _ = strconv.Atoi(v)
	} else {
		s.MediaPort = miscPorts.take(t, 4, false)
		full = append(full, "-mp", strconv.Itoa(s.MediaPort))
	}
	if !hasArg(args, "-cp") {
		full = append(full, "-cp", strconv.Itoa(freePort(t))) // sipp binds it on 0.0.0.0
	}
	if !hasArg(args, "-m") {
		full = append(full, "-m", "1")
	}
	if !hasArg(args, "-timeout") {
		full = append(full, "-timeout", "30s")
	}
	if !hasArg(args, "-timeout_error") {
		full = append(full, "-timeout_error")
	}
	s.RTPPort = s.MediaPort
	for i := 0; i+2 < len(args); i++ {
		if args[i] == "-key" && args[i+1] == "rtp_port" {
			s.RTPPort, _ = strconv.Atoi(args[i+2])
		}
	}
	hasRTPKey := false
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-key" && args[i+1] == "rtp_port" {
			hasRTPKey = true
		}
	}
	if !hasRTPKey {
		full = append(full, "-key", "rtp_port", strconv.Itoa(s.RTPPort))
	}
	full = append(full, "-nostdin",
		"-trace_msg", "-message_file", s.msgPath,
		"-trace_err", "-error_file", s.errPath)
	// Remote host last: sipp takes it as the positional argument.
	remote := sippRemote(args)
	for i, a := range args {
		if i != remote {
			full = append(full, a)
		}
	}
	if remote >= 0 {
		full = append(full, args[remote])
	}
	s.Args = full

	cmd := exec.Command("sipp", full...)
	cmd.Dir = dir
	s.process = startProcess(t, cmd, s.outPath, "sipp")
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			s.dump()
		}
	})

	if remote < 0 { // a UAS: wait until it listens
		network := "udp"
		if tr, _ := flagValue(full, "-t"); strings.HasPrefix(tr, "t") {
			network = "tcp"
		}
		ok := s.pollRunning(10*time.Second, 20*time.Millisecond, func() bool { return portBound(network, s.Port) })
		if !s.running() {
			t.Fatalf("sipp %s exited at start: %v\n%s", s.Scenario, s.exit, tail(readFile(s.outPath), 8<<10))
		}
		if !ok {
			t.Fatalf("sipp %s does not listen on %s/%d after 10 s", s.Scenario, network, s.Port)
		}
	}
	return s
}

// Addr is sipp's SIP address "127.0.0.1:PORT".
func (s *Sipp) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URI is a SIP URI of sipp with the given user (sipp answers any user).
func (s *Sipp) URI(user string) string { return "sip:" + user + "@" + s.Addr() }

// Wait waits for sipp to end (at most 60 s: its own -timeout ends it sooner).
func (s *Sipp) Wait() SippResult {
	s.t.Helper()
	if s.waited {
		return s.result
	}
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("sipp %s still running after 60 s; killed", s.Scenario)
	}
	s.waited = true
	code := 0
	if s.exit != nil {
		var ee *exec.ExitError
		if errors.As(s.exit, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
		}
	}
	s.result = SippResult{
		Code:     code,
		Messages: readFile(s.msgPath),
		Errors:   readFile(s.errPath),
		Output:   readFile(s.outPath),
	}
	return s.result
}

// WaitOK waits for sipp and requires exit status 0 (every call succeeded).
func (s *Sipp) WaitOK() SippResult {
	s.t.Helper()
	r := s.Wait()
	if r.Code != 0 {
		s.t.Errorf("sipp %s exited %d, want 0 (every call as scripted)", s.Scenario, r.Code)
	}
	return r
}

func (s *Sipp) dump() {
	s.t.Logf("---- sipp %s %s ----\nexit: %v\n-- messages --\n%s\n-- errors --\n%s\n-- output --\n%s\n---- end of sipp %s ----",
		s.Scenario, strings.Join(s.Args, " "), s.exit,
		tail(readFile(s.msgPath), 64<<10), tail(readFile(s.errPath), 16<<10),
		tail(readFile(s.outPath), 8<<10), s.Scenario)
}

// runSipp runs sipp to its end; see startSipp for the arguments.
func runSipp(t testing.TB, scenario string, args ...string) SippResult {
	t.Helper()
	return startSipp(t, scenario, args...).Wait()
}

// sippPair is a sipp UAS scenario and a UAC scenario that calls it, one a
// stand-in for uad, and which of them must fail a check.
type sippPair struct {
	name     string
	uas      string
	uasArgs  []string
	uac      string
	uacArgs  []string
	uasFails bool // the UAS must fail a check
	uacFails bool // the UAC must fail a check; the UAS's result then does not matter
}

// runSippPairs runs each pair in a parallel subtest and checks how both
// sides exited.
func runSippPairs(t *testing.T, pairs []sippPair) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			uas := startSipp(t, p.uas, p.uasArgs...)
			uac := runSipp(t, p.uac, append(append([]string{}, p.uacArgs...), "-s", "x", uas.Addr())...)
			switch {
			case p.uacFails && uac.Code == 0:
				t.Errorf("%s exited 0 against a wrong answer, want a failed check", p.uac)
			case !p.uacFails && uac.Code != 0:
				t.Errorf("%s exited %d, want 0\n%s", p.uac, uac.Code, tail(uac.Errors, 4<<10))
			}
			if p.uacFails {
				// The UAC gave up mid-call; the stand-in's own result does not matter.
				return
			}
			res := uas.Wait()
			switch {
			case p.uasFails && res.Code == 0:
				t.Errorf("%s exited 0 against a wrong offer, want a failed check", p.uas)
			case !p.uasFails && res.Code != 0:
				t.Errorf("%s exited %d, want 0\n%s", p.uas, res.Code, tail(res.Errors, 4<<10))
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Calls that many tests set up the same way.

// sippCallsUAD starts uad (opts), follows its events, and starts sipp's
// scenario calling it with an RTP socket of the test as sipp's audio; args
// are more sipp arguments.
func sippCallsUAD(t *testing.T, opts UADOptions, scenario string, args ...string) (*UAD, *EventStream, *RTPPeer, *Sipp) {
	t.Helper()
	requirePeer(t, "sipp")
	u := startUAD(t, opts)
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	args = append(append([]string(nil), args...), "-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())
	return u, ev, peer, startSipp(t, scenario, args...)
}

// hangUp hangs up call id through the API and waits for its call.ended
// and for sipp s to end as scripted, whose result it returns.
func hangUp(t testing.TB, u *UAD, ev *EventStream, id string, s *Sipp) SippResult {
	t.Helper()
	u.Hangup(id)
	ev.WaitType(t, "call.ended", id, sigTimeout)
	return s.WaitOK()
}

// callSide is one side of a call between two uads: the uad, its events
// and its call id.
type callSide struct {
	name string
	u    *UAD
	ev   *EventStream
	id   string
}

// waitBothConnected waits until A's call idA reached B and is connected on
// both sides (evA, evB: their events); it returns B's call id.
func waitBothConnected(t testing.TB, evA *EventStream, idA string, evB *EventStream) string {
	t.Helper()
	idB := evB.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	evA.WaitType(t, "call.connected", idA, sigTimeout)
	evB.WaitType(t, "call.connected", idB, sigTimeout)
	return idB
}

// ---------------------------------------------------------------------------
// baresip, driven over ctrl_tcp (netstring-framed JSON).

// BaresipOptions configure one baresip instance.
type BaresipOptions struct {
	User          string // account user; baresip only takes calls to it (default "baresip")
	AnswerMode    string // auto (default) | manual | early
	WAVSeconds    int    // length of the tone it sends; at the end it hangs up (default 120)
	WAVRate       int    // its sample rate: the codec's (16000 for G.722); default 8000
	ExtraConfig   string // appended to the config file
	AccountParams string // appended to the account line, e.g. ";audio_codecs=pcma"
	IPv6          bool   // SIP and RTP on [::1] (baresip -6) instead of 127.0.0.1
}

// BaresipEvent is an event notification of ctrl_tcp.
type BaresipEvent struct {
	Type       string `json:"type"` // CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, ...
	Class      string `json:"class"`
	AccountAOR string `json:"accountaor"`
	Direction  string `json:"direction"`
	PeerURI    string `json:"peeruri"`
	ID         string `json:"id"`
	Param      string `json:"param"`
	Raw        string `json:"-"`
}

// BaresipResponse is the answer to a command.
type BaresipResponse struct {
	OK    bool   `json:"ok"`
	Data  string `json:"data"`
	Token string `json:"token"`
}

// Baresip is a running baresip.
type Baresip struct {
	t        testing.TB
	User     string
	SIPPort  int    // UDP and TCP (baresip also takes SIPPort+1 for TLS)
	Host     string // the address it listens on: 127.0.0.1, or ::1 with IPv6
	CtrlPort int
	Dir      string
	LogPath  string
	WAVPath  string

	*process
	conn net.Conn
	wmu  sync.Mutex

	log       *eventLog[BaresipEvent]
	mu        sync.Mutex
	responses map[string]chan BaresipResponse
	tokenN    int
	readDone  chan struct{}
}

// startBaresip starts baresip with its own config dir and returns once it is
// ready and its ctrl_tcp connection is up.
func startBaresip(t testing.TB, opts BaresipOptions) *Baresip {
	t.Helper()
	requirePeer(t, "baresip", "sox")
	if opts.User == "" {
		opts.User = "baresip"
	}
	if opts.AnswerMode == "" {
		opts.AnswerMode = "auto"
	}
	if opts.WAVSeconds == 0 {
		opts.WAVSeconds = 120
	}
	if opts.WAVRate == 0 {
		opts.WAVRate = 8000
	}
	modDir := "/usr/lib/baresip/modules"
	if _, err := os.Stat(filepath.Join(modDir, "ctrl_tcp.so")); err != nil {
		t.Fatalf("baresip modules not found: %v", err)
	}
	dir := t.TempDir()
	b := &Baresip{
		t: t, User: opts.User, Dir: dir,
		SIPPort:   miscPorts.take(t, 2, true), // +1: baresip's TLS listener
		CtrlPort:  freePort(t),
		LogPath:   filepath.Join(dir, "baresip.log"),
		WAVPath:   filepath.Join(dir, "tone.wav"),
		log:       newEventLog[BaresipEvent](),
		responses: map[string]chan BaresipResponse{},
		readDone:  make(chan struct{}),
	}
	rtpLo := miscPorts.take(t, 20, false)

	// A mono 16-bit WAV longer than any call: at its end baresip hangs up.
	sox := exec.Command("sox", "-n", "-r", strconv.Itoa(opts.WAVRate), "-c", "1", "-b", "16", b.WAVPath,
		"synth", strconv.Itoa(opts.WAVSeconds), "sine", "440", "vol", "0.3")
	if out, err := sox.CombinedOutput(); err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	family := "-4"
	b.Host = "127.0.0.1"
	if opts.IPv6 {
		b.Host, family = "::1", "-6"
	}
	config := fmt.Sprintf(`poll_method		epoll
sip_listen		%s
net_interface		%s
call_local_timeout	120
call_max_calls		4
audio_player		aubridge,sink
audio_alert		aubridge,sink
audio_source		aufile,%s
audio_level		no
rtp_ports		%d-%d
rtcp_mux		no
jitter_buffer_delay	1-10
module_path		%s
module			g711.so
module			aufile.so
module			aubridge.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:%d
%s
`, net.JoinHostPort(b.Host, itoa(b.SIPPort)), b.Host, b.WAVPath, rtpLo, rtpLo+19, modDir, b.CtrlPort, opts.ExtraConfig)
	account := fmt.Sprintf("<%s>;regint=0;answermode=%s%s\n", b.URI(), opts.AnswerMode, opts.AccountParams)
	for name, content := range map[string]string{"config": config, "accounts": account, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// -4/-6: one address family; -s: SIP trace into the log; no stdio.so
	// (no terminal).
	cmd := exec.Command("baresip", family, "-s", "-f", dir)
	cmd.Dir = dir
	b.process = startProcess(t, cmd, b.LogPath, "baresip")
	t.Cleanup(b.stop)

	ready := b.pollRunning(10*time.Second, 20*time.Millisecond, func() bool {
		log := readFile(b.LogPath)
		return strings.Contains(log, "baresip is ready.") || strings.Contains(log, "init failed")
	})
	log := readFile(b.LogPath)
	if !b.running() || !ready || strings.Contains(log, "init failed") {
		t.Fatalf("baresip did not start (exit: %v)\n%s", b.exit, tail(log, 8<<10))
	}
	if !poll(5*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.CtrlPort)), time.Second)
		if err != nil {
			return false
		}
		b.conn = c
		return true
	}) {
		t.Fatalf("baresip ctrl_tcp on port %d does not accept connections\n%s", b.CtrlPort, tail(readFile(b.LogPath), 8<<10))
	}
	go b.readLoop()
	return b
}

func (b *Baresip) stop() {
	if b.conn != nil && b.running() {
		b.send(map[string]any{"command": "quit"}) // best effort
	}
	select {
	case <-b.done:
	case <-time.After(3 * time.Second):
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(3 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
	if b.conn != nil {
		b.conn.Close()
		<-b.readDone
	}
	if b.t.Failed() {
		b.t.Logf("---- baresip log (%s) ----\n%s\n---- baresip events ----\n%s---- end of baresip ----",
			b.LogPath, tail(readFile(b.LogPath), 128<<10), b.summary())
	}
}

// uadAndBaresip starts uad (defaults), follows its events, and starts
// baresip with opts.
func uadAndBaresip(t *testing.T, opts BaresipOptions) (*UAD, *EventStream, *Baresip) {
	t.Helper()
	requirePeer(t, "baresip", "sox")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	return u, ev, startBaresip(t, opts)
}

// dialUAD makes baresip call u and waits until the call is up on both
// sides; it returns uad's call id.
func (b *Baresip) dialUAD(t testing.TB, u *UAD, ev *EventStream) string {
	t.Helper()
	if r := b.Command("dial", u.SIPURI("uad")); !r.OK {
		t.Fatalf("baresip dial: %+v", r)
	}
	id := ev.WaitAnswered(t).CallID()
	b.WaitEventType(t, "CALL_ESTABLISHED", sigTimeout)
	return id
}

// hangUp makes baresip hang up its call and waits for CALL_CLOSED, which
// it returns.
func (b *Baresip) hangUp(t testing.TB) BaresipEvent {
	t.Helper()
	if r := b.Command("hangup", ""); !r.OK {
		t.Errorf("baresip hangup: %+v", r)
	}
	return b.WaitEventType(t, "CALL_CLOSED", sigTimeout)
}

// URI is the SIP URI of baresip's account.
func (b *Baresip) URI() string {
	return fmt.Sprintf("sip:%s@%s", b.User, net.JoinHostPort(b.Host, itoa(b.SIPPort)))
}

func (b *Baresip) send(msg map[string]any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	_ = b.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = fmt.Fprintf(b.conn, "%d:%s,", len(data), data)
	return err
}

func (b *Baresip) readLoop() {
	defer close(b.readDone)
	rd := bufio.NewReader(b.conn)
	for {
		msg, err := readNetstring(rd)
		if err != nil {
			b.log.end(err)
			return
		}
		var head struct {
			Event    bool `json:"event"`
			Response bool `json:"response"`
		}
		_ = json.Unmarshal(msg, &head)
		switch {
		case head.Event:
			var e BaresipEvent
			if json.Unmarshal(msg, &e) == nil {
				e.Raw = string(msg)
				b.log.add(e)
			}
		case head.Response:
			var r BaresipResponse
			if json.Unmarshal(msg, &r) == nil {
				b.mu.Lock()
				ch := b.responses[r.Token]
				delete(b.responses, r.Token)
				b.mu.Unlock()
				if ch != nil {
					ch <- r
				}
			}
		}
	}
}

func readNetstring(rd *bufio.Reader) ([]byte, error) {
	lenStr, err := rd.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenStr, ":")))
	if err != nil || n < 0 || n > 16<<20 {
		return nil, fmt.Errorf("bad netstring length %q", lenStr)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(rd, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("netstring not terminated by ','")
	}
	return buf[:n], nil
}

// Command sends a ctrl_tcp command (e.g. "dial", "sip:..."; "hangup", "";
// "hold", "") and returns baresip's response; the caller checks OK. No
// response within 10 s fails the test.
func (b *Baresip) Command(cmd string, params string) BaresipResponse {
	b.t.Helper()
	b.mu.Lock()
	b.tokenN++
	token := fmt.Sprintf("t%d", b.tokenN)
	ch := make(chan BaresipResponse, 1)
	b.responses[token] = ch
	b.mu.Unlock()
	msg := map[string]any{"command": cmd, "token": token}
	if params != "" {
		msg["params"] = params
	}
	if err := b.send(msg); err != nil {
		b.t.Fatalf("baresip command %s %s: %v", cmd, params, err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		b.t.Fatalf("baresip command %s %s: no response within 10 s", cmd, params)
	}
	return BaresipResponse{}
}

// WaitEvent returns the first event not returned before that satisfies
// pred, waiting up to timeout; it fails the test otherwise.
func (b *Baresip) WaitEvent(t testing.TB, pred func(BaresipEvent) bool, timeout time.Duration) BaresipEvent {
	t.Helper()
	return b.log.waitFor(t, pred, timeout, "baresip", "ctrl_tcp connection", b.summary)
}

// WaitEventType waits for an event of type typ (e.g. CALL_ESTABLISHED).
func (b *Baresip) WaitEventType(t testing.TB, typ string, timeout time.Duration) BaresipEvent {
	t.Helper()
	return b.WaitEvent(t, func(e BaresipEvent) bool { return e.Type == typ }, timeout)
}

func (b *Baresip) summary() string {
	var s strings.Builder
	for _, e := range b.log.all() {
		fmt.Fprintf(&s, "  %s %s peer=%s id=%s param=%q\n", e.Type, e.Direction, e.PeerURI, e.ID, e.Param)
	}
	if s.Len() == 0 {
		s.WriteString("  (none)\n")
	}
	return s.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

// AudioDebug returns baresip's audio_debug report of the current call.
func (b *Baresip) AudioDebug() string {
	b.t.Helper()
	_, report := b.debugRcvd("audio_debug")
	return report
}

var rcvdRE = regexp.MustCompile(`rcvd=(\d+)`)

// RTPReceived is how many RTP packets baresip's current call received
// (the sum of its RTCP members' rcvd counters in audio_debug).
func (b *Baresip) RTPReceived() int {
	b.t.Helper()
	n, _ := b.debugRcvd("audio_debug")
	return n
}

// debugRcvd runs a debug command of the current call (audio_debug,
// video_debug) and returns the sum of the rcvd counters of its RTCP
// members, and the report.
func (b *Baresip) debugRcvd(cmd string) (int, string) {
	b.t.Helper()
	r := b.Command(cmd, "")
	if !r.OK {
		b.t.Fatalf("baresip %s: %+v", cmd, r)
	}
	n := 0
	for _, m := range rcvdRE.FindAllStringSubmatch(r.Data, -1) {
		c, _ := strconv.Atoi(m[1])
		n += c
	}
	return n, r.Data
}
