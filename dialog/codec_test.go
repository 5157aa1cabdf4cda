package dialog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
	"uad/media/codecspec"
)

func codecLaw(t *testing.T, entry string) media.Law {
	t.Helper()
	spec, err := codecspec.Parse(entry)
	if err != nil {
		t.Fatal(err)
	}
	l, err := media.CodecLaw(spec)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// peerCodecSDP is the peer's audio SDP offering one codec.
func peerCodecSDP(version int, dir string, pt int, rtpmap string) string {
	return fmt.Sprintf("v=0\r\no=peer 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio 30000 RTP/AVP %d 101\r\na=rtpmap:%d %s\r\na=rtpmap:101 telephone-event/8000\r\na=%s\r\n",
		version, peerHost, peerHost, pt, pt, rtpmap, dir)
}

// A call in a codec uad passes through cannot hear a hold tone: holding it
// offers inactive whatever the dialect, and the call says hold_tone false.
// A call in a codec uad encodes (G.722 here) holds with sendonly and its
// hold tone.
func TestHoldOffersInactiveWithoutTones(t *testing.T) {
	opus := codecLaw(t, "opus/48000/2")
	tests := []struct {
		name     string
		pt       int
		rtpmap   string
		codec    string
		holdTone bool
		offer    string // uad's hold offer direction
		answer   string
		sends    bool
	}{
		{"opus passed through", 111, "opus/48000/2", "opus/48000/2", false, "inactive", "inactive", false},
		{"G.722 encoded", 9, "G722/8000", "G722", true, "sendonly", "recvonly", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Laws = []media.Law{opus, media.G722, media.PCMU} })
			p := h.liveIncoming(peerCodecSDP(1, "sendrecv", tt.pt, tt.rtpmap))
			h.sync(p.call)
			info := p.call.Snapshot()
			if info.Audio.Codec != tt.codec || int(info.Audio.PayloadType) != tt.pt ||
				info.Audio.HoldTone == nil || *info.Audio.HoldTone != tt.holdTone {
				t.Fatalf("audio %s PT %d hold_tone %v, want %s %d %v", info.Audio.Codec, info.Audio.PayloadType, info.Audio.HoldTone, tt.codec, tt.pt, tt.holdTone)
			}
			done := h.op(h.m.Hold, p.call)
			inv := h.sig.expect(t, gosip.INVITE)
			if got := audioDir(t, inv.sdp(t)); got != tt.offer {
				t.Errorf("hold offer %s, want %s", got, tt.offer)
			}
			inv.answer(200, "OK", peerCodecSDP(2, tt.answer, tt.pt, tt.rtpmap))
			h.sig.expect(t, gosip.ACK)
			if err := outcome(t, done); err != nil {
				t.Fatal(err)
			}
			h.sync(p.call)
			cfg := h.med.streams[0].last(t)
			if cfg.Send != tt.sends || !cfg.LocalHold {
				t.Errorf("media while holding: send %v local_hold %v, want %v true", cfg.Send, cfg.LocalHold, tt.sends)
			}
		})
	}
}

func TestOfferDirectionPassthrough(t *testing.T) {
	opus := codecLaw(t, "opus/48000/2")
	for _, tt := range []struct {
		dialect   string
		localHold bool
		want      media.Direction
	}{
		{DialectSendOnly, true, media.Inactive},
		{DialectSendOnly, false, media.SendRecv},
		{DialectInactive, true, media.Inactive},
	} {
		c := &Call{dialect: tt.dialect}
		c.params.Send = opus
		if got := c.offerDirection(tt.localHold); got != tt.want {
			t.Errorf("%s hold=%v: offer %s, want %s", tt.dialect, tt.localHold, got, tt.want)
		}
	}
}

// A pass-through codec is bridged only to a leg that sends the same: uad
// cannot convert it.
func TestBridgePassthroughNeedsTheSameCodec(t *testing.T) {
	opus := codecLaw(t, "opus/48000/2")
	h := newHarness(t, func(c *Config) { c.Laws = []media.Law{opus, media.PCMU} })
	opusA := h.liveIncoming(peerCodecSDP(1, "sendrecv", 111, "opus/48000/2"))
	pcmu := h.liveIncoming(peerCodecSDP(1, "sendrecv", 0, "PCMU/8000"))
	opusB := h.liveIncoming(peerCodecSDP(1, "sendrecv", 96, "opus/48000/2"))
	for _, c := range []*Call{opusA.call, pcmu.call, opusB.call} {
		h.sync(c)
	}

	_, err := h.m.CreateBridge(context.Background(), []string{opusA.call.id, pcmu.call.id})
	var state *StateError
	if !errors.As(err, &state) || !strings.Contains(err.Error(), "opus/48000/2, which uad passes through") {
		t.Fatalf("bridge opus to PCMU: %v, want a StateError naming the codec", err)
	}
	if _, err := h.m.CreateBridge(context.Background(), []string{pcmu.call.id, opusA.call.id}); !errors.As(err, &state) {
		t.Fatalf("bridge PCMU to opus: %v, want a StateError", err)
	}
	if _, err := h.m.CreateBridge(context.Background(), []string{opusA.call.id, opusB.call.id}); err != nil {
		t.Fatalf("bridge opus to opus (payload types 111 and 96): %v", err)
	}
}
