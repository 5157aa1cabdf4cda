package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"uad/dialog"
)

// Response headers of GET /v1/events: the daemon start the stream's ids belong
// to and, for a stream without Last-Event-ID, the id it starts after. A client
// that reconnects with "Last-Event-ID: BOOT:SEQ" built from them loses nothing
// even when the connection dropped before its first event.
const (
	HeaderBoot = "Uad-Boot"
	HeaderSeq  = "Uad-Seq"
)

const (
	keepaliveInterval = 15 * time.Second
	// sseWriteTimeout cuts off a client that stopped reading, so that its
	// handler does not hang in Write; it resumes with Last-Event-ID.
	sseWriteTimeout = 30 * time.Second
)

// parseLastEventID reads where a client wants to resume: Last-Event-ID (or
// ?last_event_id=) as SEQ or BOOT:SEQ, and ?boot=. ok is false when none is given.
func parseLastEventID(r *http.Request) (seq uint64, boot string, ok bool, err error) {
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = r.URL.Query().Get("last_event_id")
	}
	if id == "" {
		return 0, "", false, nil
	}
	boot = r.URL.Query().Get("boot")
	if i := strings.LastIndexByte(id, ':'); i >= 0 {
		boot, id = id[:i], id[i+1:]
	}
	seq, err = strconv.ParseUint(strings.TrimSpace(id), 10, 64)
	if err != nil {
		return 0, "", false, &dialog.RequestError{Msg: "Last-Event-ID must be SEQ or BOOT:SEQ"}
	}
	return seq, boot, true, nil
}

// events serves GET /v1/events as Server-Sent Events.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	seq, boot, resume, err := parseLastEventID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sub := s.bus.Tail()
	if resume {
		sub = s.bus.Subscribe(seq, boot)
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx and the like: do not buffer the stream
	h.Set(HeaderBoot, s.bus.Boot())
	if !resume {
		h.Set(HeaderSeq, strconv.FormatUint(sub.Last(), 10))
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}

	keepalive := time.NewTicker(s.keepalive)
	defer keepalive.Stop()
	var buf []Record
	var line []byte
	for {
		var more <-chan struct{}
		buf, more = sub.Read(buf[:0])
		if len(buf) > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
			for _, rec := range buf {
				line = appendSSE(line[:0], rec)
				if _, err := w.Write(line); err != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-more:
		case <-keepalive.C:
			_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
			if _, err := w.Write([]byte(": keepalive\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// appendSSE renders one event in the text/event-stream format.
func appendSSE(out []byte, rec Record) []byte {
	out = append(out, "id: "...)
	out = strconv.AppendUint(out, rec.Seq, 10)
	out = append(out, "\nevent: "...)
	out = append(out, rec.Type...)
	out = append(out, "\ndata: "...)
	out = append(out, rec.JSON()...)
	return append(out, "\n\n"...)
}
