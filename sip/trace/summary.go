package trace

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Entry is a message as GET /v1/calls/{id}/sip shows it: redacted, with a
// one-line summary.
type Entry struct {
	Time      string `json:"time"` // RFC 3339, microseconds
	Dir       string `json:"dir"`  // "in" | "out"
	Transport string `json:"transport"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Summary   string `json:"summary"`
	CSeq      string `json:"cseq"` // e.g. "2 INVITE": which request a response answers
	SDP       bool   `json:"sdp"`  // the body is SDP
	Raw       string `json:"raw"`
}

// TimeFormat is RFC 3339 with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Entries summarizes and redacts messages, oldest first. Each SDP body is
// described by how its m-lines differ from the previous SDP of the same
// sender in the dialog.
func Entries(msgs []Message) []Entry {
	out := make([]Entry, 0, len(msgs))
	var last [2][]mline // the previous SDP sent by uad [1] and by the peer [0]
	for i := range msgs {
		m := &msgs[i]
		side := 0
		if m.Out {
			side = 1
		}
		summary := StartLine(m.Raw)
		body := Body(m.Raw)
		isSDP := isSDPBody(m.Raw, body)
		if isSDP {
			lines, ok := mlines(body)
			switch {
			case !ok:
				summary += " (SDP unreadable)"
			default:
				summary += " (" + describe(last[side], lines) + ")"
				last[side] = lines
			}
		}
		out = append(out, Entry{
			Time:      m.Time.UTC().Format(TimeFormat),
			Dir:       m.Dir(),
			Transport: m.Transport,
			Src:       m.Src,
			Dst:       m.Dst,
			Summary:   summary,
			CSeq:      string(header(m.Raw, "cseq", "cseq")),
			SDP:       isSDP,
			Raw:       string(Redact(m.Raw)),
		})
	}
	return out
}

// StartLine names a message: its method, or its status code and reason.
func StartLine(raw []byte) string {
	line := raw
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		line = raw[:i]
	}
	line = bytes.TrimSpace(line)
	if rest, ok := bytes.CutPrefix(line, []byte("SIP/2.0 ")); ok {
		return string(rest)
	}
	if i := bytes.IndexByte(line, ' '); i > 0 {
		return string(line[:i])
	}
	return string(line)
}

// Body is what follows the headers.
func Body(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[i+4:]
	}
	return nil
}

func isSDPBody(raw, body []byte) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		return false
	}
	ct := header(raw, "content-type", "c")
	return ct == nil || bytes.HasPrefix(bytes.ToLower(ct), []byte("application/sdp"))
}

// mline is what a summary tells of one m-line.
type mline struct {
	kind string // audio, video...
	port int
	dir  string // sendrecv, sendonly, recvonly, inactive
}

func mlines(body []byte) ([]mline, bool) {
	var s sdp.SessionDescription
	if !bytes.HasSuffix(body, []byte("\n")) {
		body = append(append([]byte(nil), body...), "\r\n"...)
	}
	if err := s.UnmarshalString(string(body)); err != nil {
		return nil, false
	}
	session := direction(s.Attributes, "sendrecv")
	if s.ConnectionInformation != nil && nullAddress(s.ConnectionInformation) {
		session = "inactive" // RFC 2543 hold
	}
	var out []mline
	for _, md := range s.MediaDescriptions {
		dir := direction(md.Attributes, session)
		if md.ConnectionInformation != nil && nullAddress(md.ConnectionInformation) {
			dir = "inactive"
		}
		out = append(out, mline{kind: md.MediaName.Media, port: md.MediaName.Port.Value, dir: dir})
	}
	return out, true
}

func nullAddress(c *sdp.ConnectionInformation) bool {
	return c.Address != nil && (c.Address.Address == "0.0.0.0" || c.Address.Address == "::")
}

func direction(attrs []sdp.Attribute, fallback string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return fallback
}

// describe tells what changed from prev to cur: "hold: audio sendonly,
// video port 0". With no previous SDP it lists every m-line.
func describe(prev, cur []mline) string {
	var parts []string
	hold, resume := false, false
	for i, m := range cur {
		if i >= len(prev) {
			parts = append(parts, m.full())
			continue
		}
		p := prev[i]
		switch {
		case m.port != p.port && m.port == 0:
			parts = append(parts, m.kind+" port 0")
			continue
		case m.port != p.port && p.port == 0:
			parts = append(parts, m.kind+" port "+strconv.Itoa(m.port)+" "+m.dir)
			continue
		case m.port != p.port:
			parts = append(parts, m.kind+" port "+strconv.Itoa(m.port))
		}
		if m.dir != p.dir && m.port != 0 {
			parts = append(parts, m.kind+" "+m.dir)
			if m.dir == "sendrecv" {
				resume = true
			} else {
				hold = true
			}
		}
	}
	if len(parts) == 0 {
		return "SDP unchanged"
	}
	text := strings.Join(parts, ", ")
	switch {
	case len(prev) == 0:
		return "SDP: " + text
	case hold:
		return "hold: " + text
	case resume:
		return "resume: " + text
	}
	return text
}

func (m mline) full() string {
	if m.port == 0 {
		return m.kind + " port 0"
	}
	return m.kind + " " + m.dir
}
