package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"uad/dialog"
)

// fakeCalls records each request as one line and answers with err, if set.
type fakeCalls struct {
	mu  sync.Mutex
	ops []string
	err error
}

func (f *fakeCalls) do(id, format string, args ...any) (dialog.CallInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, fmt.Sprintf(format, args...))
	if f.err != nil {
		return dialog.CallInfo{}, f.err
	}
	return dialog.CallInfo{ID: id, State: dialog.StateLive, Direction: "outbound"}, nil
}

func (f *fakeCalls) lastOp() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ops) == 0 {
		return ""
	}
	return f.ops[len(f.ops)-1]
}

func media(m *dialog.MediaSpec) string {
	if m == nil {
		return "-"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func (f *fakeCalls) Place(_ context.Context, req dialog.PlaceRequest) (dialog.CallInfo, error) {
	return f.do("c9", "Place %s video=%t media=%s account=%s", req.To, req.Video, media(req.Media), req.Account)
}

func (f *fakeCalls) List() []dialog.CallInfo {
	if _, err := f.do("", "List"); err != nil {
		return nil
	}
	return []dialog.CallInfo{{ID: "c1"}, {ID: "c2"}}
}

func (f *fakeCalls) Get(id string) (dialog.CallInfo, error) { return f.do(id, "Get %s", id) }

func (f *fakeCalls) Answer(_ context.Context, id string, m *dialog.MediaSpec) (dialog.CallInfo, error) {
	return f.do(id, "Answer %s %s", id, media(m))
}

func (f *fakeCalls) Hangup(_ context.Context, id string) (dialog.CallInfo, error) {
	return f.do(id, "Hangup %s", id)
}

func (f *fakeCalls) Hold(_ context.Context, id string) (dialog.CallInfo, error) {
	return f.do(id, "Hold %s", id)
}

func (f *fakeCalls) Unhold(_ context.Context, id string) (dialog.CallInfo, error) {
	return f.do(id, "Unhold %s", id)
}

func (f *fakeCalls) RemoveVideo(_ context.Context, id string) (dialog.CallInfo, error) {
	return f.do(id, "RemoveVideo %s", id)
}

func (f *fakeCalls) AddVideo(_ context.Context, id string) (dialog.CallInfo, error) {
	return f.do(id, "AddVideo %s", id)
}

func (f *fakeCalls) ReplyVideo(_ context.Context, id string, accept bool) (dialog.CallInfo, error) {
	return f.do(id, "ReplyVideo %s %t", id, accept)
}

func (f *fakeCalls) SendDTMF(_ context.Context, id, digits string, d time.Duration) error {
	_, err := f.do(id, "SendDTMF %s %s %s", id, digits, d)
	return err
}

func newTestServer(calls Calls) *server {
	return newServer(zerolog.Nop(), calls, NewBus(16), nil)
}

func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRoutes(t *testing.T) {
	tooBig := `{"to": "sip:a@b", "account": "` + strings.Repeat("x", maxBody) + `"}`
	tests := []struct {
		name, method, path, body string
		err                      error // returned by the fake
		want                     int
		wantOp                   string // "" means the fake must not be called
		wantBody                 string // a substring of the response
	}{
		{"place", "POST", "/v1/calls", `{"to": "sip:bob@127.0.0.1:5062"}`, nil, 201, "Place sip:bob@127.0.0.1:5062 video=false media=- account=", `"id":"c9"`},
		{"place all fields", "POST", "/v1/calls", `{"to": "SIPS:bob@h", "video": true, "media": {"relay": "127.0.0.1:40000"}, "account": "bob"}`, nil, 201, `Place SIPS:bob@h video=true media={"relay":"127.0.0.1:40000"} account=bob`, ""},
		{"place tone", "POST", "/v1/calls", `{"to": "sip:bob@h", "media": "tone"}`, nil, 201, `Place sip:bob@h video=false media="tone" account=`, ""},
		{"place no to", "POST", "/v1/calls", `{"video": true}`, nil, 400, "", `\"to\" is required`},
		{"place not sip", "POST", "/v1/calls", `{"to": "tel:+123"}`, nil, 400, "", "sip: or sips:"},
		{"place bare scheme", "POST", "/v1/calls", `{"to": "sip:"}`, nil, 400, "", "sip: or sips:"},
		{"place unknown field", "POST", "/v1/calls", `{"to": "sip:a@b", "colour": 1}`, nil, 400, "", "unknown field"},
		{"place malformed", "POST", "/v1/calls", `{"to": `, nil, 400, "", "invalid JSON body"},
		{"place wrong type", "POST", "/v1/calls", `{"to": 5}`, nil, 400, "", "invalid JSON body"},
		{"place empty body", "POST", "/v1/calls", ``, nil, 400, "", "empty"},
		{"place trailing data", "POST", "/v1/calls", `{"to": "sip:a@b"} {}`, nil, 400, "", "after the object"},
		{"place bad media", "POST", "/v1/calls", `{"to": "sip:a@b", "media": "loud"}`, nil, 400, "", "unknown media"},
		{"place relay needs endpoint", "POST", "/v1/calls", `{"to": "sip:a@b", "media": "relay"}`, nil, 400, "", "needs an endpoint"},
		{"place too big", "POST", "/v1/calls", tooBig, nil, 413, "", "64 KiB"},
		{"place refused", "POST", "/v1/calls", `{"to": "sip:a@b"}`, &dialog.SIPError{Status: 486, Reason: "Busy Here"}, 502, "Place sip:a@b video=false media=- account=", `"sip_status":486`},
		{"place no ports", "POST", "/v1/calls", `{"to": "sip:a@b"}`, dialog.ErrNoMediaPorts, 503, "Place sip:a@b video=false media=- account=", "no free RTP ports"},

		{"list", "GET", "/v1/calls", "", nil, 200, "List", `[{"id":"c1"`},
		{"get", "GET", "/v1/calls/c1", "", nil, 200, "Get c1", `"id":"c1"`},
		{"get unknown", "GET", "/v1/calls/nope", "", dialog.ErrCallNotFound, 404, "Get nope", "call not found"},

		{"hangup", "DELETE", "/v1/calls/c1", "", nil, 200, "Hangup c1", `"id":"c1"`},
		{"hangup unknown", "DELETE", "/v1/calls/c1", "", dialog.ErrCallNotFound, 404, "Hangup c1", ""},

		{"answer no body", "POST", "/v1/calls/c1/answer", "", nil, 200, "Answer c1 -", ""},
		{"answer empty object", "POST", "/v1/calls/c1/answer", "{}", nil, 200, "Answer c1 -", ""},
		{"answer media", "POST", "/v1/calls/c1/answer", `{"media": "silence"}`, nil, 200, `Answer c1 "silence"`, ""},
		{"answer bad relay", "POST", "/v1/calls/c1/answer", `{"media": {"relay": "nowhere"}}`, nil, 400, "", "not an IP:PORT"},
		{"answer unknown field", "POST", "/v1/calls/c1/answer", `{"mode": "echo"}`, nil, 400, "", "unknown field"},
		{"answer not incoming", "POST", "/v1/calls/c1/answer", "", &dialog.StateError{Msg: "call is not ringing"}, 409, "Answer c1 -", "call is not ringing"},

		{"hold", "POST", "/v1/calls/c1/hold", "", nil, 200, "Hold c1", ""},
		{"hold busy", "POST", "/v1/calls/c1/hold", "", &dialog.StateError{Msg: "another change is in flight"}, 409, "Hold c1", "in flight"},
		{"hold refused", "POST", "/v1/calls/c1/hold", "", fmt.Errorf("hold: %w", &dialog.SIPError{Status: 488, Reason: "Not Acceptable Here"}), 502, "Hold c1", `"sip_status":488`},
		{"unhold", "DELETE", "/v1/calls/c1/hold", "", nil, 200, "Unhold c1", ""},
		{"unhold not holder", "DELETE", "/v1/calls/c1/hold", "", &dialog.StateError{Msg: "only the side that held the call can resume it"}, 409, "Unhold c1", "only the side"},
		{"unhold no answer", "DELETE", "/v1/calls/c1/hold", "", dialog.ErrNoAnswer, 504, "Unhold c1", ""},

		{"video add", "POST", "/v1/calls/c1/video", "", nil, 200, "AddVideo c1", ""},
		{"video add timeout", "POST", "/v1/calls/c1/video", "", context.DeadlineExceeded, 504, "AddVideo c1", ""},
		{"video remove", "DELETE", "/v1/calls/c1/video", "", nil, 200, "RemoveVideo c1", ""},
		{"video remove unimplemented", "DELETE", "/v1/calls/c1/video", "", dialog.ErrNotImplemented, 501, "RemoveVideo c1", ""},
		{"video accept", "POST", "/v1/calls/c1/video/reply", `{"accept": true}`, nil, 200, "ReplyVideo c1 true", ""},
		{"video reject", "POST", "/v1/calls/c1/video/reply", `{"accept": false}`, nil, 200, "ReplyVideo c1 false", ""},
		{"video reply no accept", "POST", "/v1/calls/c1/video/reply", `{}`, nil, 400, "", `\"accept\" is required`},
		{"video reply no body", "POST", "/v1/calls/c1/video/reply", ``, nil, 400, "", "empty"},
		{"video reply not bool", "POST", "/v1/calls/c1/video/reply", `{"accept": "yes"}`, nil, 400, "", "invalid JSON body"},
		{"video reply no offer", "POST", "/v1/calls/c1/video/reply", `{"accept": true}`, &dialog.StateError{Msg: "no video offer"}, 409, "ReplyVideo c1 true", ""},

		{"dtmf", "POST", "/v1/calls/c1/dtmf", `{"digits": "0123456789*#ABCD"}`, nil, 202, "SendDTMF c1 0123456789*#ABCD 100ms", `"duration_ms":100`},
		{"dtmf duration", "POST", "/v1/calls/c1/dtmf", `{"digits": "5", "duration_ms": 250}`, nil, 202, "SendDTMF c1 5 250ms", ""},
		{"dtmf shortest", "POST", "/v1/calls/c1/dtmf", `{"digits": "5", "duration_ms": 40}`, nil, 202, "SendDTMF c1 5 40ms", ""},
		{"dtmf longest", "POST", "/v1/calls/c1/dtmf", `{"digits": "5", "duration_ms": 5000}`, nil, 202, "SendDTMF c1 5 5s", ""},
		{"dtmf too short", "POST", "/v1/calls/c1/dtmf", `{"digits": "5", "duration_ms": 39}`, nil, 400, "", "40..5000"},
		{"dtmf too long", "POST", "/v1/calls/c1/dtmf", `{"digits": "5", "duration_ms": 5001}`, nil, 400, "", "40..5000"},
		{"dtmf bad digit", "POST", "/v1/calls/c1/dtmf", `{"digits": "12x"}`, nil, 400, "", "digits"},
		{"dtmf lower case", "POST", "/v1/calls/c1/dtmf", `{"digits": "a"}`, nil, 400, "", "digits"},
		{"dtmf no digits", "POST", "/v1/calls/c1/dtmf", `{}`, nil, 400, "", "digits"},
		{"dtmf unknown call", "POST", "/v1/calls/c1/dtmf", `{"digits": "1"}`, dialog.ErrCallNotFound, 404, "SendDTMF c1 1 100ms", ""},

		{"unknown path", "GET", "/v1/nothing", "", nil, 404, "", "no such endpoint"},
		{"unknown call path", "POST", "/v1/calls/c1/transfer", "", nil, 404, "", "no such endpoint"},
		{"wrong method", "PUT", "/v1/calls", "", nil, 405, "", "not allowed"},
		{"wrong method on a call", "PATCH", "/v1/calls/c1/hold", "", nil, 405, "", "DELETE, POST"},
		{"failure", "GET", "/v1/calls/c1", "", errors.New("disk on fire"), 500, "Get c1", "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := &fakeCalls{err: tt.err}
			rec := serve(newTestServer(calls), tt.method, tt.path, tt.body)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.want, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var v any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Errorf("body is not JSON: %v: %s", err, rec.Body)
			}
			if tt.want >= 400 {
				var e errorBody
				if json.Unmarshal(rec.Body.Bytes(), &e); e.Error == "" {
					t.Errorf("no error message: %s", rec.Body)
				}
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body %s does not contain %s", rec.Body, tt.wantBody)
			}
			if got := calls.lastOp(); got != tt.wantOp {
				t.Errorf("calls got %q, want %q", got, tt.wantOp)
			}
		})
	}
}

func TestPlaceLocation(t *testing.T) {
	rec := serve(newTestServer(&fakeCalls{}), "POST", "/v1/calls", `{"to": "sip:a@b"}`)
	if loc := rec.Header().Get("Location"); loc != "/v1/calls/c9" {
		t.Errorf("Location %q", loc)
	}
}

func TestMethodNotAllowedHasAllow(t *testing.T) {
	rec := serve(newTestServer(&fakeCalls{}), "PUT", "/v1/calls/c1", "")
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "DELETE") {
		t.Errorf("Allow %q", allow)
	}
}

func TestListEmptyIsArray(t *testing.T) {
	rec := serve(newTestServer(&fakeCalls{err: errors.New("none")}), "GET", "/v1/calls", "")
	if got := strings.TrimSpace(rec.Body.String()); got != "[]" {
		t.Errorf("body %s, want []", got)
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name  string
		ready func() bool
		want  int
		body  string
	}{
		{"ready", func() bool { return true }, 200, `{"ready":true}`},
		{"starting", func() bool { return false }, 503, `{"ready":false}`},
		{"no probe", nil, 200, `{"ready":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(zerolog.Nop(), &fakeCalls{}, NewBus(1), tt.ready)
			rec := serve(h, "GET", "/v1/health", "")
			if rec.Code != tt.want || strings.TrimSpace(rec.Body.String()) != tt.body {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tt.want, tt.body)
			}
		})
	}
}

func TestErrorResponse(t *testing.T) {
	tests := []struct {
		err       error
		want      int
		sipStatus int
	}{
		{dialog.ErrCallNotFound, 404, 0},
		{fmt.Errorf("answer: %w", dialog.ErrCallNotFound), 404, 0},
		{&dialog.RequestError{Msg: "bad"}, 400, 0},
		{&dialog.StateError{Msg: "busy"}, 409, 0},
		{fmt.Errorf("unhold: %w", &dialog.StateError{Msg: "busy"}), 409, 0},
		{&dialog.SIPError{Status: 603, Reason: "Decline"}, 502, 603},
		{dialog.ErrNoAnswer, 504, 0},
		{context.DeadlineExceeded, 504, 0},
		{fmt.Errorf("re-INVITE: %w", context.DeadlineExceeded), 504, 0},
		{dialog.ErrNoMediaPorts, 503, 0},
		{dialog.ErrShuttingDown, 503, 0},
		{dialog.ErrNotImplemented, 501, 0},
		{&http.MaxBytesError{Limit: maxBody}, 413, 0},
		{context.Canceled, 500, 0},
		{errors.New("other"), 500, 0},
	}
	for _, tt := range tests {
		status, body := errorResponse(tt.err)
		if status != tt.want || body.SIPStatus != tt.sipStatus || body.Error == "" {
			t.Errorf("%v: got %d %+v, want %d sip_status %d", tt.err, status, body, tt.want, tt.sipStatus)
		}
	}
}

func TestRequireToken(t *testing.T) {
	h := RequireToken("s3cret", New(zerolog.Nop(), &fakeCalls{}, NewBus(1), nil))
	tests := []struct {
		auth string
		want int
	}{
		{"Bearer s3cret", 200},
		{"", 401},
		{"Bearer wrong", 401},
		{"Bearer s3cre", 401},
		{"Basic s3cret", 401},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/v1/health", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%q: status %d, want %d", tt.auth, rec.Code, tt.want)
		}
		if tt.want == 401 && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%q: body %s", tt.auth, rec.Body)
		}
	}
	open := RequireToken("", New(zerolog.Nop(), &fakeCalls{}, NewBus(1), nil))
	if rec := serve(open, "GET", "/v1/health", ""); rec.Code != 200 {
		t.Errorf("empty token: status %d", rec.Code)
	}
}
