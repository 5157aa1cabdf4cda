package api

import (
	"bytes"
	"net/http"
	"strconv"

	"uad/sip/trace"
)

// Captures is what the SIP message endpoints ask of the dialog layer.
type Captures interface {
	// Messages returns a call's SIP messages, oldest first, and how many
	// older ones were dropped.
	Messages(id string) ([]trace.Message, uint64, error)
}

// HeaderDropped tells how many older messages a call's capture dropped.
const HeaderDropped = "X-Uad-Dropped-Messages"

func (s *server) routeCaptures(m *http.ServeMux, c Captures) {
	m.HandleFunc("GET /v1/calls/{id}/sip", func(w http.ResponseWriter, r *http.Request) {
		msgs, dropped, err := c.Messages(r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set(HeaderDropped, strconv.FormatUint(dropped, 10))
		writeJSON(w, http.StatusOK, trace.Entries(msgs))
	})
	m.HandleFunc("GET /v1/calls/{id}/pcap", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		msgs, dropped, err := c.Messages(id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var buf bytes.Buffer
		if err := trace.WritePcap(&buf, msgs); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", trace.PcapContentType)
		w.Header().Set("Content-Disposition", `attachment; filename="uad-call-`+id+`.pcap"`)
		w.Header().Set(HeaderDropped, strconv.FormatUint(dropped, 10))
		_, _ = w.Write(buf.Bytes())
	})
}
