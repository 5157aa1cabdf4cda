package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"uad/api"
	"uad/dialog"
)

// request is what the fake API received.
type request struct {
	method, path, body, auth string
}

// fakeAPI answers every request with status and reply, and records it.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

func newFakeAPI(t *testing.T, status int, reply string) *fakeAPI {
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{r.Method, r.URL.Path, string(body), r.Header.Get("Authorization")})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

const callJSON = `{"id":"c1","direction":"outbound","remote_uri":"sip:bob@127.0.0.1:5062","state":"hold",` +
	`"local_hold":true,"remote_hold":false,"audio":{"direction":"sendonly","codec":"PCMU"},"video":null}`

func TestClientCommands(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		status int
		reply  string
		want   *request // nil: no request expected
		code   int
		stdout string // a substring, or the whole output when it ends in "\n"
		stderr string
	}{
		{"call", []string{"call", "sip:bob@h"}, 201, callJSON,
			&request{"POST", "/v1/calls", `{"to":"sip:bob@h","video":false}`, ""}, 0, "c1\n", ""},
		{"call with flags after", []string{"call", "sip:bob@h", "--video", "--media", "relay:127.0.0.1:40000", "--account", "bob"}, 201, callJSON,
			&request{"POST", "/v1/calls", `{"to":"sip:bob@h","video":true,"media":{"relay":"127.0.0.1:40000"},"account":"bob"}`, ""}, 0, "c1\n", ""},
		{"call with flags before", []string{"call", "--media=tone", "-video", "sip:bob@h"}, 201, callJSON,
			&request{"POST", "/v1/calls", `{"to":"sip:bob@h","video":true,"media":"tone"}`, ""}, 0, "c1\n", ""},
		{"call without URI", []string{"call"}, 201, callJSON, nil, 2, "", "uad: usage: uad call URI"},
		{"call refused", []string{"call", "tel:1"}, 400, `{"error":"\"to\" must be a sip: or sips: URI"}`,
			&request{"POST", "/v1/calls", `{"to":"tel:1","video":false}`, ""}, 1, "", "uad: call: 400: \"to\" must be a sip: or sips: URI\n"},

		{"calls", []string{"calls"}, 200, "[" + callJSON + "]", &request{"GET", "/v1/calls", "", ""}, 0,
			"ID  STATE  DIRECTION  REMOTE                  AUDIO          LOCAL_HOLD  REMOTE_HOLD\n" +
				"c1  hold   outbound   sip:bob@127.0.0.1:5062  sendonly/PCMU  yes         no\n", ""},
		{"calls json", []string{"calls", "--json"}, 200, "[" + callJSON + "]", &request{"GET", "/v1/calls", "", ""}, 0, "[" + callJSON + "]\n", ""},
		{"calls none", []string{"calls"}, 200, "[]", &request{"GET", "/v1/calls", "", ""}, 0,
			"ID  STATE  DIRECTION  REMOTE  AUDIO  LOCAL_HOLD  REMOTE_HOLD\n", ""},

		{"answer", []string{"answer", "c1"}, 200, callJSON, &request{"POST", "/v1/calls/c1/answer", "", ""}, 0, "c1 hold audio=sendonly/PCMU video=-\n", ""},
		{"answer with media", []string{"answer", "c1", "--media", "silence"}, 200, callJSON,
			&request{"POST", "/v1/calls/c1/answer", `{"media":"silence"}`, ""}, 0, "c1 hold", ""},
		{"hangup", []string{"hangup", "c1"}, 200, callJSON, &request{"DELETE", "/v1/calls/c1", "", ""}, 0, "c1 hold", ""},
		{"hangup unknown", []string{"hangup", "zz"}, 404, `{"error":"call not found"}`,
			&request{"DELETE", "/v1/calls/zz", "", ""}, 1, "", "uad: hangup: 404: call not found\n"},
		{"hold", []string{"hold", "c1"}, 200, callJSON, &request{"POST", "/v1/calls/c1/hold", "", ""}, 0, "c1 hold", ""},
		{"hold refused", []string{"hold", "c1"}, 502, `{"error":"peer answered 488 Not Acceptable Here","sip_status":488}`,
			&request{"POST", "/v1/calls/c1/hold", "", ""}, 1, "", "uad: hold: 502: peer answered 488 Not Acceptable Here\n"},
		{"unhold", []string{"unhold", "c1"}, 200, callJSON, &request{"DELETE", "/v1/calls/c1/hold", "", ""}, 0, "c1 hold", ""},
		{"unhold not holder", []string{"unhold", "c1"}, 409, `{"error":"only the side that held the call can resume it"}`,
			&request{"DELETE", "/v1/calls/c1/hold", "", ""}, 1, "", "uad: unhold: 409: only the side that held the call can resume it\n"},
		{"no JSON error", []string{"hold", "c1"}, 404, "404 page\nnot found\n",
			&request{"POST", "/v1/calls/c1/hold", "", ""}, 1, "", "uad: hold: 404: 404 page not found\n"},

		{"video remove", []string{"video", "remove", "c1"}, 200, callJSON, &request{"DELETE", "/v1/calls/c1/video", "", ""}, 0, "c1 hold", ""},
		{"video add", []string{"video", "add", "c1"}, 200, callJSON, &request{"POST", "/v1/calls/c1/video", "", ""}, 0, "c1 hold", ""},
		{"video add timeout", []string{"video", "add", "c1"}, 504, `{"error":"peer did not answer"}`,
			&request{"POST", "/v1/calls/c1/video", "", ""}, 1, "", "uad: video add: 504: peer did not answer\n"},
		{"video accept", []string{"video", "reply", "c1", "--accept"}, 200, callJSON,
			&request{"POST", "/v1/calls/c1/video/reply", `{"accept":true}`, ""}, 0, "c1 hold", ""},
		{"video reject", []string{"video", "reply", "--reject", "c1"}, 200, callJSON,
			&request{"POST", "/v1/calls/c1/video/reply", `{"accept":false}`, ""}, 0, "c1 hold", ""},
		{"video reply undecided", []string{"video", "reply", "c1"}, 200, callJSON, nil, 2, "", "uad: usage: uad video reply ID --accept|--reject\n"},
		{"video reply both", []string{"video", "reply", "c1", "--accept", "--reject"}, 200, callJSON, nil, 2, "", "usage"},
		{"video alone", []string{"video"}, 200, callJSON, nil, 2, "", "uad video add ID | uad video remove ID | uad video reply ID"},
		{"video unknown", []string{"video", "rotate", "c1"}, 200, callJSON, nil, 2, "", "uad: usage: uad video add ID"},

		{"dtmf", []string{"dtmf", "c1", "123#"}, 202, `{}`, &request{"POST", "/v1/calls/c1/dtmf", `{"digits":"123#"}`, ""}, 0, "", ""},
		{"dtmf duration", []string{"dtmf", "c1", "5", "--duration", "250ms"}, 202, `{}`,
			&request{"POST", "/v1/calls/c1/dtmf", `{"digits":"5","duration_ms":250}`, ""}, 0, "", ""},
		{"dtmf no digits", []string{"dtmf", "c1"}, 202, `{}`, nil, 2, "", "uad: usage: uad dtmf ID DIGITS"},

		{"version", []string{"version"}, 200, "", nil, 0, "uad dev\n", ""},
		{"unknown flag", []string{"hold", "c1", "--force"}, 200, callJSON, nil, 2, "",
			"uad: hold: flag provided but not defined: -force; usage: uad hold ID\n"},
		{"too many args", []string{"hold", "c1", "c2"}, 200, callJSON, nil, 2, "", "uad: usage: uad hold ID\n"},
		{"help", []string{"hold", "-h"}, 200, callJSON, nil, 0, "usage: uad hold ID\n  -api", ""},
		{"id after --", []string{"hold", "--", "-c1"}, 200, callJSON, &request{"POST", "/v1/calls/-c1/hold", "", ""}, 0, "c1 hold", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, tt.status, tt.reply)
			t.Setenv("UAD_API", f.URL)
			t.Setenv("UAD_TOKEN", "")
			var stdout, stderr bytes.Buffer
			code, handled := runClient(tt.args, &stdout, &stderr)
			if !handled || code != tt.code {
				t.Errorf("exit %d handled %t, want %d; stderr %q", code, handled, tt.code, stderr.String())
			}
			checkOutput(t, "stdout", stdout.String(), tt.stdout)
			checkOutput(t, "stderr", stderr.String(), tt.stderr)
			if tt.code != 0 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
			reqs := f.requests()
			switch {
			case tt.want == nil && len(reqs) > 0:
				t.Errorf("unexpected requests %+v", reqs)
			case tt.want != nil && (len(reqs) != 1 || reqs[0] != *tt.want):
				t.Errorf("requests %+v, want %+v", reqs, *tt.want)
			}
		})
	}
}

// checkOutput compares whole outputs when want ends in a newline, else looks
// for want in got; an empty want means no output.
func checkOutput(t *testing.T, name, got, want string) {
	t.Helper()
	switch {
	case want == "" && got != "",
		strings.HasSuffix(want, "\n") && got != want,
		!strings.Contains(got, want):
		t.Errorf("%s %q, want %q", name, got, want)
	}
}

func TestClientNotHandled(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"config", "check", "x"}, {"frobnicate"}, {"--api", "http://x"}} {
		if _, handled := runClient(args, io.Discard, io.Discard); handled {
			t.Errorf("%q handled", args)
		}
	}
}

func TestClientGlobalFlags(t *testing.T) {
	f := newFakeAPI(t, 200, callJSON)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env, tok string // UAD_API, UAD_TOKEN
		args     []string
		wantAuth string
	}{
		{"env", f.URL, "", []string{"hold", "c1"}, ""},
		{"api before", "http://127.0.0.1:1", "", []string{"--api", f.URL, "hold", "c1"}, ""},
		{"api= before", "", "", []string{"--api=" + f.URL, "hold", "c1"}, ""},
		{"api after", "http://127.0.0.1:1", "", []string{"hold", "c1", "--api", f.URL}, ""},
		{"api without scheme", "", "", []string{"hold", "c1", "--api", strings.TrimPrefix(f.URL, "http://") + "/"}, ""},
		{"video with api before", "", "", []string{"-api", f.URL, "video", "add", "c1"}, ""},
		{"token env", f.URL, "from-env", []string{"hold", "c1"}, "Bearer from-env"},
		{"token file wins", f.URL, "from-env", []string{"--token-file", tokenFile, "hold", "c1"}, "Bearer from-file"},
		{"token file after", f.URL, "", []string{"hold", "c1", "--token-file=" + tokenFile}, "Bearer from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("UAD_API", tt.env)
			t.Setenv("UAD_TOKEN", tt.tok)
			before := len(f.requests())
			var stderr bytes.Buffer
			if code, _ := runClient(tt.args, io.Discard, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			reqs := f.requests()
			if len(reqs) != before+1 || reqs[before].auth != tt.wantAuth {
				t.Errorf("requests %+v, want one with auth %q", reqs[before:], tt.wantAuth)
			}
		})
	}
}

func TestClientMissingTokenFile(t *testing.T) {
	var stderr bytes.Buffer
	code, _ := runClient([]string{"hold", "c1", "--token-file", filepath.Join(t.TempDir(), "none")}, io.Discard, &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), "uad: token file: ") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

func TestClientUnreachable(t *testing.T) {
	url := closedURL(t)
	for _, args := range [][]string{{"calls"}, {"hold", "c1"}, {"events"}} {
		var stderr bytes.Buffer
		code, _ := runClient(append(args, "--api", url), io.Discard, &stderr)
		want := "uad: cannot reach the API at " + url + ": "
		if code != 1 || !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "refused") ||
			strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

// connWatch tells, for each /v1/events request, the Last-Event-ID it sent,
// once the API has subscribed it (it writes the header after subscribing).
type connWatch struct {
	http.ResponseWriter
	lastID string
	conns  chan<- string
}

func (w *connWatch) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	w.conns <- w.lastID
}

func (w *connWatch) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The events command prints one JSON object a line and, when the connection
// drops, resumes where it was: nothing published meanwhile is lost, even
// before the first event.
func TestClientEventsResume(t *testing.T) {
	bus := api.NewBus(16)
	h := api.New(zerolog.Nop(), nil, bus, nil)
	conns := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&connWatch{ResponseWriter: w, lastID: r.Header.Get("Last-Event-ID"), conns: conns}, r)
	}))
	t.Cleanup(srv.Close)

	c, err := newAPIClient(srv.URL, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, outW := io.Pipe()
	var stderr bytes.Buffer
	c.stdout, c.stderr = outW, &stderr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.events(ctx) }()
	lines := bufio.NewScanner(out)

	connected := func(wantID string) {
		t.Helper()
		select {
		case id := <-conns:
			if id != wantID {
				t.Fatalf("connected with Last-Event-ID %q, want %q", id, wantID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no connection")
		}
	}
	expect := func(wantSeq uint64, wantType string) {
		t.Helper()
		if !lines.Scan() {
			t.Fatal("output ended")
		}
		var ev struct {
			Seq  uint64 `json:"seq"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil || ev.Seq != wantSeq || ev.Type != wantType {
			t.Fatalf("line %s (%v), want seq %d type %s", lines.Bytes(), err, wantSeq, wantType)
		}
	}
	publish := func(typ string) { bus.Publish(dialog.Event{Type: typ, Call: &dialog.CallInfo{ID: "c1"}}) }

	connected("")
	srv.CloseClientConnections() // before any event
	publish("call.incoming")
	connected(bus.Boot() + ":0")
	expect(1, "call.incoming")
	publish("call.connected")
	publish("hold.success")
	expect(2, "call.connected")
	expect(3, "hold.success")
	srv.CloseClientConnections()
	publish("call.ended")
	connected(bus.Boot() + ":3")
	expect(4, "call.ended")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("events: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("events did not stop with its context")
	}
	if n := strings.Count(stderr.String(), "reconnecting"); n != 2 {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestClientEventsRefused(t *testing.T) {
	f := newFakeAPI(t, 401, `{"error":"missing or wrong bearer token"}`)
	var stderr bytes.Buffer
	code, _ := runClient([]string{"events", "--api", f.URL}, io.Discard, &stderr)
	if code != 1 || stderr.String() != "uad: events: 401: missing or wrong bearer token\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
