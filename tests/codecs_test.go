package tests

// Codecs beyond G.711 end to end: G.722 between two uad instances (the
// hold tone heard through it), a pass-through codec echoed untouched, and
// baresip's own G.722 codec hearing uad's tone.

import (
	"math"
	"sort"
	"testing"
	"time"

	"uad/media/g722"
)

// g722Tone decodes the G.722 payloads of pkts (in sequence order) and
// returns the share of the energy at freq in the last half, past the
// decoder's adaptation, and the RMS level there.
func g722Tone(pkts []RTPPacket, freq float64) (share, rms float64) {
	sort.Slice(pkts, func(i, j int) bool { return int16(pkts[i].Seq-pkts[j].Seq) < 0 })
	dec := g722.NewDecoder()
	var pcm []int16
	for _, pk := range pkts {
		out := make([]int16, 2*len(pk.Payload))
		dec.Decode(out, pk.Payload)
		pcm = append(pcm, out...)
	}
	return toneShare16k(pcm[len(pcm)/2:], freq)
}

// toneShare16k is the share of the energy of 16 kHz samples at freq
// (Goertzel) and their RMS level.
func toneShare16k(pcm []int16, freq float64) (share, rms float64) {
	if len(pcm) == 0 {
		return 0, 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/16000)
	var s1, s2, sum float64
	for _, x := range pcm {
		s1, s2 = float64(x)+coeff*s1-s2, s1
		sum += float64(x) * float64(x)
	}
	n := float64(len(pcm))
	power := 2 * (s1*s1 + s2*s2 - coeff*s1*s2) / (n * n)
	return power / (sum / n), math.Sqrt(sum / n)
}

// uad A calls uad B, both preferring G.722. A holds B: B's peer (the
// test's relay endpoint) hears A's hold tone, 1 kHz, through G.722.
func TestG722HoldToneUADtoUAD(t *testing.T) {
	t.Parallel()
	endB := newRTPPeer(t, 0)
	codecs := []string{"G722", "PCMU"}
	b := startUAD(t, UADOptions{Name: "B", Media: "relay", Relay: endB.Addr(), Config: map[string]any{"media.codecs": codecs}})
	a := startUAD(t, UADOptions{Name: "A", Config: map[string]any{"media.codecs": codecs, "media.hold_tone": "1000"}})
	evA, evB := a.Events(), b.Events()

	ca := a.PlaceCall(b.SIPURI("uad"), map[string]any{"media": "echo"})
	idB := waitBothConnected(t, evA, ca.ID, evB)
	for _, c := range []CallInfo{a.Call(ca.ID), b.Call(idB)} {
		if c.Audio == nil || c.Audio.Codec != "G722" || c.Audio.PayloadType != 9 || c.Audio.HoldTone == nil || !*c.Audio.HoldTone {
			t.Fatalf("call %s audio %+v, want G722, PT 9, hold_tone true", c.ID, c.Audio)
		}
	}

	mustHold(t, a, ca.ID)
	held := time.Now()
	pkts := waitPackets(endB, held, 40, withPT(9, anyPacket), 5*time.Second)
	if len(pkts) < 40 {
		t.Fatalf("B's endpoint got %d G.722 packets after the hold, want >= 40: %s", len(pkts), endB.Stats())
	}
	share, rms := g722Tone(pkts, 1000)
	t.Logf("hold tone through G.722: %.3f of the energy at 1 kHz, rms %.0f", share, rms)
	if share < 0.9 || rms < 1000 {
		t.Errorf("hold tone through G.722: %.3f of the energy at 1 kHz, rms %.0f; want >= 0.9 of a tone at -13 dBFS", share, rms)
	}
	a.Hangup(ca.ID)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
}

// uad B (relay) calls uad A (echo) with opus only, which uad passes
// through: the payloads B's endpoint sends come back byte for byte under
// the payload type B offered; both calls say hold_tone false, and A's hold
// offers inactive.
func TestPassthroughEchoUADtoUAD(t *testing.T) {
	t.Parallel()
	endB := newRTPPeer(t, 0)
	codecs := []string{"opus/48000/2"}
	a := startUAD(t, UADOptions{Name: "A", Config: map[string]any{"media.codecs": codecs}})
	b := startUAD(t, UADOptions{Name: "B", Config: map[string]any{"media.codecs": codecs}})
	evA, evB := a.Events(), b.Events()

	cb := b.PlaceCall(a.SIPURI("uad"), map[string]any{"media": map[string]any{"relay": endB.Addr()}})
	idA := waitBothConnected(t, evB, cb.ID, evA)
	cb = b.Call(cb.ID)
	for _, c := range []CallInfo{cb, a.Call(idA)} {
		if c.Audio == nil || c.Audio.Codec != "opus/48000/2" || c.Audio.PayloadType != 96 || c.Audio.HoldTone == nil || *c.Audio.HoldTone {
			t.Fatalf("call %s audio %+v, want opus/48000/2 under PT 96 (B's offer), hold_tone false", c.ID, c.Audio)
		}
	}

	endB.PT = 96
	endB.Send(mustUDPAddr(t, cb.Audio.RelayLocal), 25)
	got := endB.WaitCount(20, 3*time.Second)
	pkts := endB.Received()
	if got < 20 || matchedPayloads(pkts, endB) < got {
		t.Fatalf("%d of 25 packets came back, %d of them untouched; want >= 20, all: %s", got, matchedPayloads(pkts, endB), endB.Stats())
	}
	for _, pk := range pkts {
		if pk.PT != 96 || pk.SSRC == endB.SSRC {
			t.Fatalf("echoed packet PT %d SSRC %x, want PT 96 under uad's own SSRC", pk.PT, pk.SSRC)
		}
	}

	c := mustHold(t, a, idA)
	if c.Audio == nil || c.Audio.Direction != "inactive" {
		t.Errorf("A holding an opus call: audio %+v, want direction inactive", c.Audio)
	}
	b.Hangup(cb.ID)
	evA.WaitType(t, "call.ended", idA, sigTimeout)
}
