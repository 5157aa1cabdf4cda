package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Direction is an SDP stream direction attribute (RFC 3264 §5.1), seen from
// the side that wrote it.
type Direction string

const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// Mirror is the direction an answerer agrees to for an offer of d, seen from
// the answerer when it wants to both send and receive (RFC 3264 §6.1).
func (d Direction) Mirror() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	}
	return d
}

// Sends reports whether the side that wrote d may send.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether the side that wrote d wants to receive.
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// FromFlags derives a direction from what one side wants: to send and to receive.
func FromFlags(send, recv bool) Direction {
	switch {
	case send && recv:
		return SendRecv
	case send:
		return SendOnly
	case recv:
		return RecvOnly
	}
	return Inactive
}

// Intersect narrows an offered direction (mirrored into our view) by what we
// allow ourselves: the answer can only send if the offerer receives, and so on.
func Intersect(offered Direction, weSend, weRecv bool) Direction {
	m := offered.Mirror()
	return FromFlags(m.Sends() && weSend, m.Receives() && weRecv)
}

// Format is one payload format of an m-line.
type Format struct {
	PT       uint8
	Name     string // encoding name as written in rtpmap, e.g. "PCMU", "telephone-event"
	Rate     int
	Channels int
	Fmtp     string
}

// IsDTMF reports whether f is RFC 4733 telephone-event at 8 kHz.
func (f Format) IsDTMF() bool { return strings.EqualFold(f.Name, "telephone-event") && f.Rate == 8000 }

// Law returns the codec f is, if uad knows it: one it encodes (a G.711
// law or G.722) or a pass-through codec media.codecs names.
func (f Format) Law() (Law, bool) {
	if f.Rate == 8000 && f.Channels <= 1 {
		if l, ok := encodedLaw(f.Name); ok {
			return l, true
		}
	}
	return passthroughLaw(f.Name, f.Rate, f.Channels)
}

// staticFormats are the RFC 3551 payload types a peer may use without rtpmap.
var staticFormats = map[uint8]Format{
	0:  {PT: 0, Name: "PCMU", Rate: 8000, Channels: 1},
	8:  {PT: 8, Name: "PCMA", Rate: 8000, Channels: 1},
	9:  {PT: 9, Name: "G722", Rate: 8000, Channels: 1},
	13: {PT: 13, Name: "CN", Rate: 8000, Channels: 1},
}

// RemoteStream is what a peer's SDP says about one m-line.
type RemoteStream struct {
	Kind      string // "audio", "video", or another media name
	Proto     string
	Port      int
	Addr      netip.Addr // media-level c= or else session-level c=
	Direction Direction  // explicit attribute, or sendrecv when absent
	Formats   []Format
	RawFmts   []string // formats as written, for answering streams we decline
	Ptime     int
	Held      bool // legacy hold: c= 0.0.0.0 (RFC 2543)
	// Crypto are the stream's a=crypto lines (SDES-SRTP); CryptoErr is the
	// first malformed one, which makes an offer unacceptable (488).
	Crypto    []Crypto
	CryptoErr error
}

// Disabled reports whether the stream is off (port 0).
func (r *RemoteStream) Disabled() bool { return r.Port == 0 }

// RTPAddr is where the peer wants RTP for this stream; invalid when it wants none.
func (r *RemoteStream) RTPAddr() netip.AddrPort {
	if r.Port == 0 || r.Held || !r.Addr.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(r.Addr, uint16(r.Port))
}

// EffectiveDirection is the direction the peer asks for, with legacy
// c=0.0.0.0 hold read as "do not send to me".
func (r *RemoteStream) EffectiveDirection() Direction {
	if r.Held {
		return FromFlags(r.Direction.Sends(), false)
	}
	return r.Direction
}

// RemoteSession is a parsed peer SDP.
type RemoteSession struct {
	SessionID uint64
	Version   uint64
	Streams   []RemoteStream
}

// Errors of SDP parsing; a SIP layer answers them with 488.
var (
	ErrSDPSyntax   = errors.New("sdp: does not parse")
	ErrSDPNoMedia  = errors.New("sdp: no m-line")
	ErrSDPNoOrigin = errors.New("sdp: missing v= or o= line")
)

// ParseRemote parses a peer's SDP leniently: a missing final CRLF and bare
// LF line ends are accepted, an absent direction means sendrecv, and
// static payload types need no rtpmap.
func ParseRemote(body []byte) (*RemoteSession, error) {
	body, foreign := maskForeignMedia(normalizeLineEnds(body))
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSDPSyntax, err)
	}
	if !bytes.HasPrefix(body, []byte("v=0")) || sd.Origin.NetworkType == "" {
		return nil, ErrSDPNoOrigin
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, ErrSDPNoMedia
	}
	rs := &RemoteSession{SessionID: sd.Origin.SessionID, Version: sd.Origin.SessionVersion}
	var sessionAddr netip.Addr
	sessionHeld := false
	if ci := sd.ConnectionInformation; ci != nil && ci.Address != nil {
		sessionAddr, sessionHeld = parseConnAddr(ci.Address.Address)
	}
	sessionDir := directionOf(sd.Attributes, "")
	for i, md := range sd.MediaDescriptions {
		if f, ok := foreign[i]; ok {
			md.MediaName.Media, md.MediaName.Protos = f.media, []string{f.proto}
		}
		st := RemoteStream{
			Kind:    md.MediaName.Media,
			Proto:   strings.Join(md.MediaName.Protos, "/"),
			Port:    md.MediaName.Port.Value,
			Addr:    sessionAddr,
			Held:    sessionHeld,
			RawFmts: md.MediaName.Formats,
		}
		if ci := md.ConnectionInformation; ci != nil && ci.Address != nil {
			st.Addr, st.Held = parseConnAddr(ci.Address.Address)
		}
		st.Direction = directionOf(md.Attributes, sessionDir)
		st.Formats, st.Ptime = formatsOf(md)
		st.Crypto, st.CryptoErr = cryptosOf(md.Attributes)
		rs.Streams = append(rs.Streams, st)
	}
	return rs, nil
}

// Stream returns the first stream of a kind and its index, or -1.
func (rs *RemoteSession) Stream(kind string) (*RemoteStream, int) {
	for i := range rs.Streams {
		if rs.Streams[i].Kind == kind {
			return &rs.Streams[i], i
		}
	}
	return nil, -1
}

// HonouredProfile reports whether uad can take part in an m-line of a
// transport profile under an SRTP mode: plain RTP over UDP, with or without
// RTCP feedback, unless SRTP is required; SDES-SRTP (RTP/SAVP, RTP/SAVPF)
// unless SRTP is off. Others, DTLS-SRTP among them, are declined rather
// than answered in another profile (RFC 3264 §6).
func HonouredProfile(proto string, mode SRTPMode) bool {
	if mode == "" {
		mode = SRTPAccept
	}
	return mode.allows(proto)
}

// Usable returns the first stream of a kind uad can accept under an SRTP
// mode, and its index, or -1: enabled, with a transport profile uad honours,
// an a=crypto line it can use when SRTP, and a codec in common (for audio a
// law of laws, for video one uad relays).
func (rs *RemoteSession) Usable(kind string, laws []Law, mode SRTPMode) (*RemoteStream, int) {
	for i := range rs.Streams {
		if st := &rs.Streams[i]; st.Kind == kind && st.usable(laws, mode) {
			return st, i
		}
	}
	return nil, -1
}

func (r *RemoteStream) usable(laws []Law, mode SRTPMode) bool {
	if r.Disabled() || !HonouredProfile(r.Proto, mode) {
		return false
	}
	if _, ok := chooseCrypto(r.Crypto); IsSDESProfile(r.Proto) && (!ok || r.CryptoErr != nil) {
		return false
	}
	switch r.Kind {
	case "audio":
		return AnswerAudio(r.Formats, laws) != nil
	case "video":
		return AnswerVideo(r.Formats) != nil
	}
	return true
}

func normalizeLineEnds(body []byte) []byte {
	if !bytes.Contains(body, []byte("\r\n")) && bytes.Contains(body, []byte("\n")) {
		body = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	}
	body = bytes.TrimLeft(body, "\r\n \t")
	if len(body) > 0 && !bytes.HasSuffix(body, []byte("\r\n")) {
		body = append(append([]byte(nil), body...), '\r', '\n')
	}
	return body
}

// Media names and transport protocols pion/sdp parses; others (m=image
// udptl for T.38, say) are legal SDP that uad must answer with port 0.
var (
	knownMedia  = map[string]bool{"audio": true, "video": true, "text": true, "application": true, "message": true}
	knownProtos = map[string]bool{"UDP": true, "RTP": true, "AVP": true, "SAVP": true, "SAVPF": true, "TLS": true,
		"DTLS": true, "SCTP": true, "AVPF": true, "TCP": true, "MSRP": true, "BFCP": true, "UDT": true, "IX": true,
		"MRCPv2": true, "FEC": true}
)

type foreignMedia struct{ media, proto string }

// maskForeignMedia rewrites m-lines pion/sdp would refuse into a neutral
// form it accepts, and returns what they said by m-line index.
func maskForeignMedia(body []byte) ([]byte, map[int]foreignMedia) {
	lines := bytes.Split(body, []byte("\r\n"))
	var foreign map[int]foreignMedia
	index := -1
	for i, line := range lines {
		if !bytes.HasPrefix(line, []byte("m=")) {
			continue
		}
		index++
		fields := strings.Fields(string(line[2:]))
		if len(fields) < 3 {
			continue
		}
		known := knownMedia[fields[0]]
		for _, p := range strings.Split(fields[2], "/") {
			known = known && knownProtos[p]
		}
		if known {
			continue
		}
		if foreign == nil {
			foreign = map[int]foreignMedia{}
		}
		foreign[index] = foreignMedia{fields[0], fields[2]}
		fields[0], fields[2] = "application", "UDP"
		lines[i] = []byte("m=" + strings.Join(fields, " "))
	}
	if foreign == nil {
		return body, nil
	}
	return bytes.Join(lines, []byte("\r\n")), foreign
}

// parseConnAddr reads a c= address; 0.0.0.0 means legacy hold.
func parseConnAddr(s string) (netip.Addr, bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 { // multicast TTL
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a, a.IsUnspecified()
}

func directionOf(attrs []sdp.Attribute, fallback Direction) Direction {
	for _, a := range attrs {
		switch Direction(a.Key) {
		case SendRecv, SendOnly, RecvOnly, Inactive:
			return Direction(a.Key)
		}
	}
	if fallback == "" {
		return SendRecv
	}
	return fallback
}

func formatsOf(md *sdp.MediaDescription) ([]Format, int) {
	byPT := map[uint8]*Format{}
	var order []uint8
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil || pt > 127 {
			continue
		}
		p := uint8(pt)
		if _, dup := byPT[p]; dup {
			continue
		}
		ff := Format{PT: p}
		if s, ok := staticFormats[p]; ok && md.MediaName.Media == "audio" {
			ff = s
		}
		byPT[p] = &ff
		order = append(order, p)
	}
	ptime := 0
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap":
			pt, name, rate, ch, ok := parseRtpmap(a.Value)
			if f := byPT[pt]; ok && f != nil {
				f.Name, f.Rate, f.Channels = name, rate, ch
			}
		case "fmtp":
			if sp := strings.IndexByte(a.Value, ' '); sp > 0 {
				if pt, err := strconv.ParseUint(a.Value[:sp], 10, 8); err == nil {
					if f := byPT[uint8(pt)]; f != nil {
						f.Fmtp = strings.TrimSpace(a.Value[sp+1:])
					}
				}
			}
		case "ptime":
			ptime, _ = strconv.Atoi(strings.TrimSpace(a.Value))
		}
	}
	out := make([]Format, 0, len(order))
	for _, pt := range order {
		out = append(out, *byPT[pt])
	}
	return out, ptime
}

// cryptosOf reads the a=crypto lines of an m-line. Lines uad cannot use are
// kept (with Unusable set) so that the tags of an answer stay meaningful.
func cryptosOf(attrs []sdp.Attribute) ([]Crypto, error) {
	var out []Crypto
	var first error
	for _, a := range attrs {
		if a.Key != "crypto" {
			continue
		}
		c, err := ParseCrypto(a.Value)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		out = append(out, c)
	}
	return out, first
}

func parseRtpmap(v string) (pt uint8, name string, rate, channels int, ok bool) {
	sp := strings.IndexByte(v, ' ')
	if sp < 0 {
		return 0, "", 0, 0, false
	}
	n, err := strconv.ParseUint(v[:sp], 10, 8)
	if err != nil {
		return 0, "", 0, 0, false
	}
	parts := strings.Split(strings.TrimSpace(v[sp+1:]), "/")
	if len(parts) < 2 {
		return 0, "", 0, 0, false
	}
	rate, err = strconv.Atoi(parts[1])
	if err != nil {
		return 0, "", 0, 0, false
	}
	channels = 1
	if len(parts) > 2 {
		channels, _ = strconv.Atoi(parts[2])
	}
	return uint8(n), parts[0], rate, channels, true
}
