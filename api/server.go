// Package api is uad's control API: JSON over HTTP to place, list and steer
// calls, and the daemon's events as Server-Sent Events. Events go through a Bus
// that numbers them and keeps a bounded backlog, so a client that reconnects
// with Last-Event-ID misses nothing and a slow client never holds up a call.
// Errors are {"error": "..."} with the status the dialog layer's error calls
// for (see errorResponse).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"uad/dialog"
)

// Calls is what the API asks of the dialog layer. Methods that change a call
// return once uad's part of the change is done, with the call as it is then.
type Calls interface {
	Place(ctx context.Context, req dialog.PlaceRequest) (dialog.CallInfo, error)
	List() []dialog.CallInfo
	Get(id string) (dialog.CallInfo, error)
	Answer(ctx context.Context, id string, media *dialog.MediaSpec) (dialog.CallInfo, error)
	Hangup(ctx context.Context, id string) (dialog.CallInfo, error)
	Hold(ctx context.Context, id string) (dialog.CallInfo, error)
	Unhold(ctx context.Context, id string) (dialog.CallInfo, error)
	RemoveVideo(ctx context.Context, id string) (dialog.CallInfo, error)
	AddVideo(ctx context.Context, id string) (dialog.CallInfo, error)
	ReplyVideo(ctx context.Context, id string, accept bool) (dialog.CallInfo, error)
	SendDTMF(ctx context.Context, id string, digits string, duration time.Duration) error
}

// Bridges is what the bridge endpoints ask of the dialog layer.
type Bridges interface {
	CreateBridge(ctx context.Context, calls []string) (dialog.BridgeInfo, error)
	Bridges() []dialog.BridgeInfo
	DeleteBridge(ctx context.Context, id string) (dialog.BridgeInfo, error)
}

const (
	maxBody = 64 << 10 // bytes of a request body

	dtmfDefault = 100 * time.Millisecond
	dtmfMinMS   = 40
	dtmfMaxMS   = 5000
)

type server struct {
	log       zerolog.Logger
	calls     Calls
	bus       *Bus
	ready     func() bool
	mux       *http.ServeMux
	keepalive time.Duration // between SSE comments on an idle stream
}

// New returns the API's handler. ready reports whether every listener is up
// (GET /v1/health); nil means always.
func New(log zerolog.Logger, calls Calls, bus *Bus, ready func() bool) http.Handler {
	return newServer(log, calls, bus, ready)
}

func newServer(log zerolog.Logger, calls Calls, bus *Bus, ready func() bool) *server {
	s := &server{log: log, calls: calls, bus: bus, ready: ready, mux: http.NewServeMux(), keepalive: keepaliveInterval}
	m := s.mux
	m.HandleFunc("GET /v1/health", s.health)
	m.HandleFunc("POST /v1/calls", s.place)
	m.HandleFunc("GET /v1/calls", s.list)
	m.HandleFunc("GET /v1/calls/{id}", s.get)
	m.HandleFunc("DELETE /v1/calls/{id}", s.callOp(Calls.Hangup))
	m.HandleFunc("POST /v1/calls/{id}/answer", s.answer)
	m.HandleFunc("POST /v1/calls/{id}/hold", s.callOp(Calls.Hold))
	m.HandleFunc("DELETE /v1/calls/{id}/hold", s.callOp(Calls.Unhold))
	m.HandleFunc("POST /v1/calls/{id}/video", s.callOp(Calls.AddVideo))
	m.HandleFunc("DELETE /v1/calls/{id}/video", s.callOp(Calls.RemoveVideo))
	m.HandleFunc("POST /v1/calls/{id}/video/reply", s.videoReply)
	m.HandleFunc("POST /v1/calls/{id}/dtmf", s.dtmf)
	m.HandleFunc("GET /v1/events", s.events)
	if c, ok := calls.(Captures); ok {
		s.routeCaptures(m, c)
	}
	s.routeRekey(calls)
	if b, ok := calls.(Bridges); ok {
		m.HandleFunc("POST /v1/bridges", s.createBridge(b))
		m.HandleFunc("GET /v1/bridges", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, b.Bridges()) })
		m.HandleFunc("DELETE /v1/bridges/{id}", func(w http.ResponseWriter, r *http.Request) {
			info, err := b.DeleteBridge(r.Context(), r.PathValue("id"))
			s.reply(w, r, http.StatusOK, info, err)
		})
	}
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	if h, pattern := s.mux.Handler(r); pattern == "" {
		unrouted(sw, r, h)
	} else {
		s.mux.ServeHTTP(sw, r) // not h: only ServeHTTP sets the path values
	}
	s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", sw.code).
		Dur("duration", time.Since(start)).Msg("request")
}

// unrouted answers in JSON what the mux answers in plain text: 404 for an
// unknown path, 405 (with its Allow header) for a known path's wrong method.
func unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &discardWriter{header: http.Header{}}
	h.ServeHTTP(rec, r)
	msg := "no such endpoint: " + r.URL.Path
	if allow := rec.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
		msg = "method " + r.Method + " not allowed on " + r.URL.Path + "; allowed: " + allow
	}
	if rec.code == 0 {
		rec.code = http.StatusNotFound
	}
	writeJSON(w, rec.code, errorBody{Error: msg})
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	ready := s.ready == nil || s.ready()
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]bool{"ready": ready})
}

func (s *server) place(w http.ResponseWriter, r *http.Request) {
	var req dialog.PlaceRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkTarget(req.To); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.calls.Place(r.Context(), req)
	if err == nil {
		w.Header().Set("Location", "/v1/calls/"+info.ID)
	}
	s.reply(w, r, http.StatusCreated, info, err)
}

// checkTarget accepts a SIP or SIPS URI; the scheme is case-insensitive (RFC 3261 §19.1.1).
func checkTarget(to string) error {
	if to == "" {
		return &dialog.RequestError{Msg: `"to" is required`}
	}
	lower := strings.ToLower(to)
	if !(strings.HasPrefix(lower, "sip:") && len(to) > 4) && !(strings.HasPrefix(lower, "sips:") && len(to) > 5) {
		return &dialog.RequestError{Msg: `"to" must be a sip: or sips: URI`}
	}
	return nil
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	calls := s.calls.List()
	if calls == nil {
		calls = []dialog.CallInfo{} // [] rather than null
	}
	writeJSON(w, http.StatusOK, calls)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	info, err := s.calls.Get(r.PathValue("id"))
	s.reply(w, r, http.StatusOK, info, err)
}

// callOp serves a request on one call that takes no body. op is a method
// expression, so that routes can be set up before calls is usable.
func (s *server) callOp(op func(Calls, context.Context, string) (dialog.CallInfo, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info, err := op(s.calls, r.Context(), r.PathValue("id"))
		s.reply(w, r, http.StatusOK, info, err)
	}
}

func (s *server) answer(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Media *dialog.MediaSpec `json:"media"`
	}
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.calls.Answer(r.Context(), r.PathValue("id"), body.Media)
	s.reply(w, r, http.StatusOK, info, err)
}

func (s *server) videoReply(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Accept *bool `json:"accept"`
	}
	err := decodeBody(w, r, &body, false)
	if err == nil && body.Accept == nil {
		err = &dialog.RequestError{Msg: `"accept" is required: true or false`}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.calls.ReplyVideo(r.Context(), r.PathValue("id"), *body.Accept)
	s.reply(w, r, http.StatusOK, info, err)
}

func (s *server) createBridge(b Bridges) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Calls []string `json:"calls"`
		}
		if err := decodeBody(w, r, &body, false); err != nil {
			s.writeError(w, r, err)
			return
		}
		info, err := b.CreateBridge(r.Context(), body.Calls)
		s.reply(w, r, http.StatusCreated, info, err)
	}
}

// dtmfRequest is the body of POST /v1/calls/{id}/dtmf, and its 202 reply with
// the duration filled in.
type dtmfRequest struct {
	Digits     string `json:"digits"`
	DurationMS *int   `json:"duration_ms"`
}

func (s *server) dtmf(w http.ResponseWriter, r *http.Request) {
	var req dtmfRequest
	err := decodeBody(w, r, &req, false)
	if err == nil {
		err = req.check()
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d := time.Duration(*req.DurationMS) * time.Millisecond
	err = s.calls.SendDTMF(r.Context(), r.PathValue("id"), req.Digits, d)
	s.reply(w, r, http.StatusAccepted, req, err)
}

// check validates the request and fills in the default duration.
func (req *dtmfRequest) check() error {
	if req.Digits == "" || strings.Trim(req.Digits, "0123456789*#ABCD") != "" {
		return &dialog.RequestError{Msg: `"digits" must be one or more of 0-9 * # A B C D`}
	}
	if req.DurationMS == nil {
		ms := int(dtmfDefault / time.Millisecond)
		req.DurationMS = &ms
	}
	if *req.DurationMS < dtmfMinMS || *req.DurationMS > dtmfMaxMS {
		return &dialog.RequestError{Msg: `"duration_ms" must be 40..5000`}
	}
	return nil
}

// decodeBody reads a JSON object into v, strictly: unknown members, trailing
// data and bodies over maxBody are errors. An empty body is an error unless
// optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		return &dialog.RequestError{Msg: "request body is empty: want a JSON object"}
	case isError[*http.MaxBytesError](err):
		return err
	case err != nil:
		return &dialog.RequestError{Msg: "invalid JSON body: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &dialog.RequestError{Msg: "invalid JSON body: data after the object"}
	}
	return nil
}

// reply writes v with status, or the error.
func (s *server) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

type errorBody struct {
	Error     string `json:"error"`
	SIPStatus int    `json:"sip_status,omitempty"`
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := errorResponse(err)
	if status == http.StatusInternalServerError {
		s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
	}
	writeJSON(w, status, body)
}

// errorResponse maps an error of the dialog layer (or of decoding) to a status.
func errorResponse(err error) (int, errorBody) {
	body := errorBody{Error: err.Error()}
	if e, ok := errors.AsType[*dialog.SIPError](err); ok {
		body.SIPStatus = e.Status
		return http.StatusBadGateway, body
	}
	switch {
	case errors.Is(err, dialog.ErrCallNotFound):
		return http.StatusNotFound, body
	case isError[*dialog.RequestError](err):
		return http.StatusBadRequest, body
	case isError[*http.MaxBytesError](err):
		body.Error = "request body is larger than 64 KiB"
		return http.StatusRequestEntityTooLarge, body
	case isError[*dialog.StateError](err):
		return http.StatusConflict, body
	case errors.Is(err, dialog.ErrNoAnswer), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, body
	case errors.Is(err, dialog.ErrNoMediaPorts), errors.Is(err, dialog.ErrShuttingDown), isError[*dialog.SendError](err):
		return http.StatusServiceUnavailable, body
	case errors.Is(err, dialog.ErrNotImplemented):
		return http.StatusNotImplemented, body
	}
	return http.StatusInternalServerError, body
}

func isError[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

// writeJSON writes v as the response; a failed write means the client left.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusWriter remembers the status for the request log. Unwrap lets
// http.ResponseController reach the connection's Flush and deadlines.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter keeps the status and headers of a reply and drops its body.
type discardWriter struct {
	header http.Header
	code   int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
