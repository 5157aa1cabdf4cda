package media

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Video payload types uad offers. Video is relayed, never decoded.
const (
	H264PayloadType = 96
	VP8PayloadType  = 97
)

// VideoFormats are the formats uad offers for video.
func VideoFormats() []Format {
	return []Format{
		{PT: H264PayloadType, Name: "H264", Rate: videoRate, Fmtp: "packetization-mode=1;profile-level-id=42e01f"},
		{PT: VP8PayloadType, Name: "VP8", Rate: videoRate},
	}
}

// isVideoCodec reports whether uad relays a video format.
func isVideoCodec(f Format) bool {
	return f.Rate == videoRate && (strings.EqualFold(f.Name, "H264") || strings.EqualFold(f.Name, "VP8"))
}

// AnswerVideo keeps the offered video formats uad relays, in the offerer's
// order; nil when there is none.
func AnswerVideo(offered []Format) []Format {
	var out []Format
	for _, f := range offered {
		if isVideoCodec(f) && sameCodec(f, f) {
			// sameCodec(f, f) is false for an H.264 format whose
			// profile-level-id uad cannot read: it could never match.
			out = append(out, f)
		}
	}
	return out
}

// fmtpParam returns one parameter of an fmtp line, matched case-insensitively.
func fmtpParam(fmtp, name string) string {
	for _, p := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// sameCodec compares two formats as RFC 6184 §8.2.2 says for H.264:
// profile_idc and profile-iop must agree, the level may differ (each side
// sends within the level the other declared), and so must the
// packetization mode; other codecs match by name and rate.
func sameCodec(a, b Format) bool {
	if !strings.EqualFold(a.Name, b.Name) || a.Rate != b.Rate {
		return false
	}
	if strings.EqualFold(a.Name, "H264") {
		pa, okA := h264Profile(a.Fmtp)
		pb, okB := h264Profile(b.Fmtp)
		return okA && okB && pa == pb && h264Mode(a.Fmtp) == h264Mode(b.Fmtp)
	}
	return true
}

// h264Profile returns profile_idc and profile-iop, the first two bytes of
// profile-level-id; without one it is Baseline level 1, 42000a (RFC 6184
// §8.1). A value that is not three bytes of hex is not understood.
func h264Profile(fmtp string) (uint16, bool) {
	v := fmtpParam(fmtp, "profile-level-id")
	if v == "" {
		v = "42000a"
	}
	n, err := strconv.ParseUint(v, 16, 32)
	if len(v) != 6 || err != nil {
		return 0, false
	}
	return uint16(n >> 8), true
}

// h264Mode is the packetization mode; absent means 0 (RFC 6184 §8.1).
func h264Mode(fmtp string) string {
	if m := fmtpParam(fmtp, "packetization-mode"); m != "" {
		return m
	}
	return "0"
}

// VideoParams is what the engine needs to relay one video stream.
type VideoParams struct {
	Remote netip.AddrPort
	sendPT [128]int16 // received PT -> PT to send (+1); 0 = drop
}

// SendPT maps a received payload type to the one the peer expects.
func (p *VideoParams) SendPT(pt uint8) (uint8, bool) {
	if pt > 127 || p.sendPT[pt] == 0 {
		return 0, false
	}
	return uint8(p.sendPT[pt] - 1), true
}

// Codec names the first video codec both sides have, and the payload
// type uad sends it with.
func (p *VideoParams) Codec(local *LocalStream) (string, uint8) {
	for _, f := range local.Formats {
		if pt, ok := p.SendPT(f.PT); ok {
			return f.Name, pt
		}
	}
	return "", 0
}

// ErrNoVideoCodec is returned when the two sides share no video codec.
var ErrNoVideoCodec = errors.New("sdp: no video codec in common")

// NegotiateVideo maps each payload type uad receives (its own SDP's) to the
// peer's payload type for the same codec.
func NegotiateVideo(local *LocalStream, remote *RemoteStream) (VideoParams, error) {
	p := VideoParams{Remote: remote.RTPAddr()}
	found := false
	for _, lf := range local.Formats {
		for _, rf := range remote.Formats {
			if isVideoCodec(lf) && sameCodec(lf, rf) {
				p.sendPT[lf.PT] = int16(rf.PT) + 1
				found = true
				break
			}
		}
	}
	if !found {
		return p, ErrNoVideoCodec
	}
	return p, nil
}

// RequestKeyFrame asks the peer for a key frame (RTCP PLI, RFC 4585), e.g.
// when its video starts flowing again after being removed or held.
func (s *Stream) RequestKeyFrame() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	remote := s.cfg.remote(s.video)
	if !remote.IsValid() {
		return nil
	}
	sender := s.toPeer.hdr.SSRC
	var buf [64]byte
	n := putHead(buf[:], sender, s.eng.cname)
	n = putFBHead(buf[:], n, rtcpPSFB, fmtPLI, 12, sender, s.peerSSRC.Load())
	pkt := buf[:n]
	if o := s.toPeer.srtp; o != nil {
		var err error
		if pkt, err = o.protectRTCP(s.rtcpEnc[:], pkt); err != nil {
			return err
		}
	}
	_, err := s.rtcp.WriteToUDPAddrPort(pkt, rtcpAddr(remote))
	return err
}
