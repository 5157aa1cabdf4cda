package conformance

import (
	"fmt"
	"testing"
	"time"

	"uad/dialog"
	"uad/media"
)

// inviteFinal sends a new INVITE with offer and returns its final response,
// ACKed.
func inviteFinal(t *testing.T, u *uadUnderTest, p *sipPeer, offer string) (*peerCall, *sipIn) {
	t.Helper()
	c := p.newCall(u, "UDP")
	inv := c.send(t, "INVITE", req{body: offer})
	res := c.final(t, inv)
	if res.res.StatusCode == 200 {
		c.established(res)
		c.ack(t, inv, "")
	} else {
		c.ackFailure(t, res)
	}
	return c, res
}

const cryptoAttr = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"

// srtpOff runs uad with media.srtp: off, where SRTP is a profile it does
// not honour (rfc4568_test.go covers accept and require).
func srtpOff(c *dialog.Config) { c.SRTP = media.SRTPOff }

func savpAudio(port int) string {
	return fmt.Sprintf("m=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port) + cryptoAttr
}

// RFC 3264 §6: an offer whose only stream uses a profile uad does not do
// (SRTP with SDES keys, with media.srtp off) gets 488: accepting it would
// claim SRTP.
func TestRFC3264_6_SAVPOfferAlone488(t *testing.T) {
	t.Parallel()
	u := startUAD(t, srtpOff)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	_, res := inviteFinal(t, u, p, peerSDP(1, "127.0.0.1", savpAudio(rp.port)))
	if res.res.StatusCode != 488 {
		t.Errorf("RTP/SAVP-only offer with a=crypto answered %d %s, want 488", res.res.StatusCode, res.res.Reason)
	}
}

// RFC 3264 §6: a DTLS-SRTP only offer (UDP/TLS/RTP/SAVPF with a=fingerprint)
// gets 488.
func TestRFC3264_6_DTLSOfferAlone488(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	m := fmt.Sprintf("m=audio %d UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=setup:actpass\r\n"+
		"a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4C:A2:2E:7F:72:50:9A:2A:E3:9D:7B:A2\r\n", rp.port)
	_, res := inviteFinal(t, u, p, peerSDP(1, "127.0.0.1", m))
	if res.res.StatusCode != 488 {
		t.Errorf("UDP/TLS/RTP/SAVPF-only offer answered %d %s, want 488", res.res.StatusCode, res.res.Reason)
	}
}

// RFC 3264 §6: offered RTP/SAVP audio then RTP/AVP audio, uad with SRTP off
// declines the first in place (port 0, same proto and formats) and takes
// the second.
func TestRFC3264_6_SAVPThenAVPDeclinesFirst(t *testing.T) {
	t.Parallel()
	u := startUAD(t, srtpOff)
	p := newSIPPeer(t, false)
	rtp := newRTPPeers(t, 2)
	_, res := inviteFinal(t, u, p, peerSDP(1, "127.0.0.1", savpAudio(rtp[0].port), audioM(rtp[1].port, "")))
	if res.res.StatusCode != 200 {
		t.Fatalf("SAVP + AVP offer answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
	}
	ml := requireSDP(t, res, 2)
	if m := ml[0]; m.kind != "audio" || m.port != 0 || m.proto != "RTP/SAVP" || m.formats != "0" {
		t.Errorf("first m-line answered %+v, want audio port 0 RTP/SAVP formats 0", m)
	}
	if m := ml[1]; m.kind != "audio" || m.port == 0 || m.proto != "RTP/AVP" || m.dir != "sendrecv" {
		t.Errorf("second m-line answered %+v, want audio with a port, RTP/AVP, sendrecv", m)
	}
}

// RFC 3264 §6: RTP/AVPF (RFC 4585) audio is accepted under its own profile.
func TestRFC3264_6_AVPFAccepted(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	m := fmt.Sprintf("m=audio %d RTP/AVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-fb:* nack\r\n", rp.port)
	_, res := inviteFinal(t, u, p, peerSDP(1, "127.0.0.1", m))
	if res.res.StatusCode != 200 {
		t.Fatalf("RTP/AVPF offer answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
	}
	if m := requireSDP(t, res, 1)[0]; m.port == 0 || m.proto != "RTP/AVPF" {
		t.Errorf("answer %+v, want audio with a port under RTP/AVPF", m)
	}
}

// RFC 3264 §6.1: a sendonly stream is answered recvonly; uad reports being held.
func TestRFC3264_6_1_SendonlyAnsweredRecvonly(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
	mark := u.ev.mark()
	inv := c.send(t, "INVITE", req{body: peerSDP(2, "127.0.0.1", audioM(rp.port, "sendonly"))})
	res := c.final(t, inv)
	if res.res.StatusCode != 200 {
		t.Fatalf("sendonly re-INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
	}
	c.ack(t, inv, "")
	if m := requireSDP(t, res, 1)[0]; m.dir != "recvonly" {
		t.Errorf("sendonly answered %s, want recvonly", m.dir)
	}
	u.waitEvent(t, mark, "held", id)
}

// RFC 3264 §8.2 (and §6): a stream offered with port 0 keeps its m-line in
// the answer, at port 0, in its place.
func TestRFC3264_8_2_PortZeroMlineKeptInAnswer(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	_, res := inviteFinal(t, u, p, peerSDP(1, "127.0.0.1", audioM(rp.port, ""), "m=video 0 RTP/AVP 96\r\n"))
	if res.res.StatusCode != 200 {
		t.Fatalf("INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
	}
	ml := requireSDP(t, res, 2)
	if ml[0].kind != "audio" || ml[0].port == 0 {
		t.Errorf("first m-line %+v, want audio with a port", ml[0])
	}
	if ml[1].kind != "video" || ml[1].port != 0 {
		t.Errorf("second m-line %+v, want video at port 0", ml[1])
	}
}

// RFC 3264 §8.4: uad holds with a sendonly offer (o= version + 1, RFC 3264
// §8); answered recvonly, that is hold.success and state hold.
func TestRFC3264_8_4_HoldSendonlyAnsweredRecvonly(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, id, ok := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
	mark := u.ev.mark()
	hold := u.hold(id)
	in := p.expect(t, "hold re-INVITE", inCall(c.callID, isRequest("INVITE")))
	if m := requireSDP(t, in, 1)[0]; m.dir != "sendonly" {
		t.Errorf("hold offers %s, want sendonly", m.dir)
	}
	checkVersion(t, ok.body(), in.body())
	c.respond(t, in, 200, "OK", req{body: answerTo(t, in.body(), 2, answerPlan{audioPort: rp.port})})
	p.expect(t, "ACK", inCall(c.callID, isRequest("ACK")))
	if err := result(t, hold, "Hold"); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	u.waitEvent(t, mark, "hold.success", id)
	if info := u.get(t, id); info.State != dialog.StateHold || !info.LocalHold || info.Audio.Direction != "sendonly" {
		t.Errorf("held call: state %s, local_hold %v, audio %s; want hold, true, sendonly", info.State, info.LocalHold, info.Audio.Direction)
	}
}

// RFC 3264 §8.4: the old hold form, c=0.0.0.0, is taken as hold: uad reports
// being held and sends no RTP (none to 0.0.0.0).
func TestRFC3264_8_4_LegacyHoldConnectionZero(t *testing.T) {
	t.Parallel()
	u := startUAD(t, func(c *dialog.Config) { c.Media = dialog.MediaSpec{Mode: dialog.MediaTone} })
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
	if _, _, err := rp.read(2 * time.Second); err != nil {
		t.Fatalf("no tone RTP from uad before the hold: %v", err)
	}
	mark := u.ev.mark()
	inv := c.send(t, "INVITE", req{body: peerSDP(2, "0.0.0.0", audioM(rp.port, ""))})
	res := c.final(t, inv)
	if res.res.StatusCode != 200 {
		t.Fatalf("c=0.0.0.0 re-INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
	}
	c.ack(t, inv, "")
	u.waitEvent(t, mark, "held", id)
	// On Linux a datagram to 0.0.0.0 reaches 127.0.0.1: it would show here.
	if !rp.quiet(300*time.Millisecond, 2*time.Second) {
		t.Errorf("uad keeps sending RTP after the peer held with c=0.0.0.0")
	}
}
