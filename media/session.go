package media

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// DTMFPayloadType is the payload type uad offers for telephone-event. Peers'
// own numbers are honoured when they offer one.
const DTMFPayloadType = 101

// LocalStream is one m-line slot of uad's SDP. Slots never move or
// disappear: a stream that is off keeps its slot with port 0 (RFC 3264 §8).
type LocalStream struct {
	Kind      string
	Proto     string
	Port      int // 0 = off
	Formats   []Format
	RawFmts   []string // formats to write for a declined stream uad has no model of
	Direction Direction
	Crypto    []Crypto // a=crypto lines of an SDES-SRTP stream (offer: one a suite; answer: one)
}

// LocalSession is uad's session description for one call, edited in place
// across offers and answers. Marshal bumps the o= version only when the
// content changed since the previous SDP sent (RFC 3264 §8).
type LocalSession struct {
	SessionID uint64
	Version   uint64
	Addr      netip.Addr
	Streams   []LocalStream
	// LegacyHold writes an RFC 2543 hold: c=0.0.0.0 and no direction
	// attributes, for old peers that know nothing else.
	LegacyHold bool

	sent []byte // content of the previous SDP sent, o= version zeroed
}

// NewLocalSession starts a description with the given session id.
func NewLocalSession(id uint64, addr netip.Addr) *LocalSession {
	return &LocalSession{SessionID: id, Version: id, Addr: addr}
}

// firstDynamicPT is where dynamic payload types start (RFC 3551 §3).
const firstDynamicPT = 96

// AudioFormats are the formats uad offers for audio, in the given codec
// order: codecs it encodes under their static payload types, pass-through
// codecs under dynamic ones from 96 up, around telephone-event's.
func AudioFormats(laws []Law, dtmf bool) []Format {
	fs := make([]Format, 0, len(laws)+1)
	dynamic := uint8(firstDynamicPT)
	for _, l := range laws {
		if l.Known() {
			fs = append(fs, l.format(uint8(l)))
			continue
		}
		if dynamic == DTMFPayloadType {
			dynamic++
		}
		fs = append(fs, l.format(dynamic))
		dynamic++
	}
	if dtmf {
		fs = append(fs, Format{PT: DTMFPayloadType, Name: "telephone-event", Rate: 8000, Channels: 1, Fmtp: "0-16"})
	}
	return fs
}

// Stream returns the first slot of a kind and its index, or -1.
func (l *LocalSession) Stream(kind string) (*LocalStream, int) {
	for i := range l.Streams {
		if l.Streams[i].Kind == kind {
			return &l.Streams[i], i
		}
	}
	return nil, -1
}

// Active returns the first slot of a kind that is on (port != 0) and its
// index, or -1.
func (l *LocalSession) Active(kind string) (*LocalStream, int) {
	for i := range l.Streams {
		if l.Streams[i].Kind == kind && l.Streams[i].Port != 0 {
			return &l.Streams[i], i
		}
	}
	return nil, -1
}

// Marshal renders the SDP to send, bumping the version when it differs from
// the previous one sent. It renders once, with version 0, and writes the
// version into the o= line of a copy.
func (l *LocalSession) Marshal() []byte {
	content := l.render(0)
	if l.sent != nil && !bytes.Equal(content, l.sent) {
		l.Version++
	}
	l.sent = content
	zero := strconv.AppendUint([]byte("o=- "), l.SessionID, 10)
	zero = append(zero, " 0 "...)
	i := bytes.Index(content, zero)
	if i < 0 { // cannot happen: render writes this o= line
		return l.render(l.Version)
	}
	head := len(zero) - 2 // up to the version
	out := make([]byte, 0, len(content)+20)
	out = append(out, content[:i+head]...)
	out = strconv.AppendUint(out, l.Version, 10)
	return append(out, content[i+head+1:]...)
}

func (l *LocalSession) render(version uint64) []byte {
	addrType := "IP4"
	if l.Addr.Is6() {
		addrType = "IP6"
	}
	sd := sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "-", SessionID: l.SessionID, SessionVersion: version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: l.Addr.String(),
		},
		SessionName: "uad",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: l.connAddr()},
		},
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
	}
	for _, s := range l.Streams {
		md := &sdp.MediaDescription{MediaName: sdp.MediaName{
			Media:  s.Kind,
			Port:   sdp.RangedPort{Value: s.Port},
			Protos: strings.Split(s.Proto, "/"),
		}}
		if len(s.Formats) == 0 {
			md.MediaName.Formats = s.RawFmts
			if len(md.MediaName.Formats) == 0 {
				md.MediaName.Formats = []string{"0"} // a port-0 m-line still needs a format
			}
			sd.MediaDescriptions = append(sd.MediaDescriptions, md)
			continue
		}
		for _, f := range s.Formats {
			md.MediaName.Formats = append(md.MediaName.Formats, strconv.Itoa(int(f.PT)))
		}
		if s.Port != 0 {
			for _, f := range s.Formats {
				rtpmap := fmt.Sprintf("%d %s/%d", f.PT, f.Name, f.Rate)
				if f.Channels > 1 {
					rtpmap += "/" + strconv.Itoa(f.Channels)
				}
				md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", rtpmap))
				if f.Fmtp != "" {
					md.Attributes = append(md.Attributes, sdp.NewAttribute("fmtp", fmt.Sprintf("%d %s", f.PT, f.Fmtp)))
				}
			}
			if s.Kind == "audio" {
				md.Attributes = append(md.Attributes, sdp.NewAttribute("ptime", "20"))
			}
			if !l.LegacyHold {
				md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute(string(s.Direction)))
			}
			for _, c := range s.Crypto {
				md.Attributes = append(md.Attributes, sdp.NewAttribute("crypto", c.Value()))
			}
		}
		sd.MediaDescriptions = append(sd.MediaDescriptions, md)
	}
	out, err := sd.Marshal()
	if err != nil {
		// Only a programming error can get here: every field is set above.
		panic("media: marshal local sdp: " + err.Error())
	}
	return out
}

func (l *LocalSession) connAddr() string {
	if l.LegacyHold {
		if l.Addr.Is6() {
			return "::"
		}
		return "0.0.0.0"
	}
	return l.Addr.String()
}

// AnswerAudio chooses the formats of an audio answer: the offered codecs uad
// supports, in the offerer's order and under the offerer's payload types
// (RFC 3264 §6.1), plus telephone-event when offered. A pass-through codec
// is answered as offered, its parameters (fmtp) included: uad forwards its
// payloads untouched. It returns nil when no codec is in common.
func AnswerAudio(offered []Format, laws []Law) []Format {
	var out []Format
	var dtmf *Format
	for _, f := range offered {
		if law, ok := f.Law(); ok && hasLaw(laws, law) {
			if !law.Known() {
				out = append(out, f)
				continue
			}
			out = append(out, law.format(f.PT))
		} else if f.IsDTMF() && dtmf == nil {
			d := f
			if d.Fmtp == "" {
				d.Fmtp = "0-16"
			}
			dtmf = &d
		}
	}
	if len(out) == 0 {
		return nil
	}
	if dtmf != nil {
		out = append(out, *dtmf)
	}
	return out
}

func hasLaw(laws []Law, l Law) bool {
	for _, x := range laws {
		if x == l {
			return true
		}
	}
	return false
}

// AudioParams is what the engine needs to send and receive one audio stream.
type AudioParams struct {
	Remote   netip.AddrPort // where to send; invalid = nowhere
	Send     Law            // codec uad sends (a pass-through one: forwarded only)
	SendPT   uint8          // payload type uad writes
	SendDTMF int            // telephone-event PT to write, -1 = none
	RecvDTMF int            // telephone-event PT the peer writes, -1 = none
	recvLaw  [128]uint16    // PT -> codec (+1), 0 = not an audio codec PT of this stream
}

// RecvLaw returns the codec of a received payload type.
func (p *AudioParams) RecvLaw(pt uint8) (Law, bool) {
	if pt > 127 || p.recvLaw[pt] == 0 {
		return 0, false
	}
	return Law(p.recvLaw[pt] - 1), true
}

// NegotiateAudio derives the send and receive parameters of an audio stream
// from a completed offer/answer. answer is the SDP that answered the offer;
// the codec sent is the first format of the answer that uad supports.
func NegotiateAudio(local *LocalStream, remote *RemoteStream, answer []Format, laws []Law) (AudioParams, error) {
	p := AudioParams{Remote: remote.RTPAddr(), SendDTMF: -1, RecvDTMF: -1}
	found := false
	for _, f := range answer {
		if law, ok := f.Law(); ok && hasLaw(laws, law) {
			p.Send, p.SendPT, found = law, f.PT, true
			break
		}
	}
	if !found {
		return p, fmt.Errorf("sdp: no audio codec in common")
	}
	for _, f := range remote.Formats {
		if f.IsDTMF() {
			p.SendDTMF = int(f.PT)
			break
		}
	}
	for _, f := range local.Formats {
		if law, ok := f.Law(); ok {
			p.recvLaw[f.PT] = uint16(law) + 1
		} else if f.IsDTMF() {
			p.RecvDTMF = int(f.PT)
		}
	}
	// Peers sometimes send a law they listed but we did not (lenient receive).
	for _, f := range remote.Formats {
		if law, ok := f.Law(); ok && p.recvLaw[f.PT] == 0 {
			p.recvLaw[f.PT] = uint16(law) + 1
		}
	}
	return p, nil
}

// AnswerPlan is what uad can put in an answer: the ports of its audio and
// video sockets (0: none) and what it allows itself on audio.
type AnswerPlan struct {
	Laws      []Law
	AudioPort int
	AudioSend bool // false while uad holds in the inactive dialect
	AudioRecv bool // false while uad holds
	VideoPort int
	// SRTP is the call's mode; Prev and PrevRemote are the previous
	// exchange's m-lines (ours and the peer's), whose keys an answer keeps
	// while the peer keeps its own.
	SRTP       SRTPMode
	Prev       []LocalStream
	PrevRemote *RemoteSession
}

// Answer builds the m-lines of an answer to offer, slot for slot (RFC 3264
// §6): the first usable audio stream (RemoteSession.Usable) and the first
// usable video stream are accepted, every other stream is declined with
// port 0, keeping a format so the m-line stays valid. A stream in a
// transport profile uad does not honour under the SRTP mode (DTLS, TCP,
// SRTP when off, RTP when required) is declined with its proto and formats
// as offered and no attributes. An accepted SRTP stream gets one a=crypto
// line (answerCrypto).
func Answer(offer *RemoteSession, plan AnswerPlan) []LocalStream {
	streams := make([]LocalStream, len(offer.Streams))
	_, audio := offer.Usable("audio", plan.Laws, plan.SRTP)
	_, video := offer.Usable("video", plan.Laws, plan.SRTP)
	for i, rs := range offer.Streams {
		ls := LocalStream{Kind: rs.Kind, Proto: rs.Proto, RawFmts: rs.RawFmts}
		switch {
		case !HonouredProfile(rs.Proto, plan.SRTP):
		case i == audio && plan.AudioPort != 0:
			ls.Port, ls.Formats = plan.AudioPort, AnswerAudio(rs.Formats, plan.Laws)
			ls.Direction = Intersect(rs.EffectiveDirection(), plan.AudioSend, plan.AudioRecv)
		case i == video && plan.VideoPort != 0:
			ls.Port, ls.Formats = plan.VideoPort, AnswerVideo(rs.Formats)
			ls.Direction = Intersect(rs.EffectiveDirection(), true, true)
		case rs.Kind == "video" && len(rs.Formats) > 0:
			ls.Formats, ls.RawFmts = rs.Formats[:1], nil
		}
		if ls.Port != 0 && IsSDESProfile(rs.Proto) {
			var prevLocal, prevRemote []Crypto
			if i < len(plan.Prev) {
				prevLocal = plan.Prev[i].Crypto
			}
			if plan.PrevRemote != nil && i < len(plan.PrevRemote.Streams) {
				prevRemote = plan.PrevRemote.Streams[i].Crypto
			}
			c, _ := answerCrypto(rs.Crypto, prevLocal, prevRemote) // Usable made sure of one
			ls.Crypto = []Crypto{c}
		}
		streams[i] = ls
	}
	return streams
}
