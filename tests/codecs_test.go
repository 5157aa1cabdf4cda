package tests

// Codecs beyond G.711 end to end: G.722 between two uad instances (the
// hold tone heard through it), a pass-through codec echoed untouched, and
// baresip's own G.722 codec hearing uad's tone.

import (
	"bytes"
	"encoding/binary"
	"math"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"uad/media/g722"
	"uad/tests/internal/g711"
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

// uad A calls uad B, both preferring G.722. A's DTMF reaches B; A holds
// B: B's peer (the test's relay endpoint) hears A's hold tone, 1 kHz,
// through G.722.
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

	// DTMF (RFC 4733 events on the 8 kHz clock G.722 shares) goes across.
	mustSendDTMF(t, a, ca.ID, "72")
	waitDigits(t, evB, idB, "7", "2")

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

// baresip, with its own G.722 codec only, calls uad in tone mode (1 kHz):
// the call is G.722, and what baresip decodes (its sndfile dump) is the
// tone, at 16 kHz.
func TestG722Baresip(t *testing.T) {
	t.Parallel()
	requirePeer(t, "baresip", "sox")
	u := startUAD(t, UADOptions{Media: "tone", Config: map[string]any{"media.codecs": []string{"G722", "PCMU"}, "media.tone": "1000"}})
	ev := u.Events()
	dumps := t.TempDir()
	b := startBaresip(t, BaresipOptions{
		AccountParams: ";audio_codecs=G722/16000/1",
		WAVRate:       16000, // baresip's aufile plays only at the codec's rate
		ExtraConfig:   "module\t\t\tg722.so\nmodule\t\t\tsndfile.so\nsnd_path\t\t" + dumps + "\n",
	})
	id := b.dialUAD(t, u, ev)
	if c := u.Call(id); c.Audio == nil || c.Audio.Codec != "G722" || c.Audio.PayloadType != 9 {
		t.Fatalf("audio %+v, want G722 (baresip offers only it)", c.Audio)
	}
	// 1.2 s of the tone: what baresip's jitter buffer still holds aside,
	// the dump gets most of a second.
	if !poll(5*time.Second, 50*time.Millisecond, func() bool { return b.RTPReceived() >= 60 }) {
		t.Fatalf("baresip received %d RTP packets, want >= 60\n%s", b.RTPReceived(), b.AudioDebug())
	}
	b.hangUp(t)
	ev.WaitType(t, "call.ended", id, sigTimeout)
	dec, _ := filepath.Glob(filepath.Join(dumps, "dump-*-dec.wav"))
	if len(dec) != 1 {
		t.Fatalf("baresip's decoded audio: files %v, want one dump-*-dec.wav", dec)
	}
	pcm := readWAV16k(t, dec[0])
	if len(pcm) < 12000 {
		t.Fatalf("baresip decoded %d samples, want >= 0.75 s at 16 kHz", len(pcm))
	}
	share, rms := toneShare16k(pcm[len(pcm)/2:], 1000)
	t.Logf("baresip hears: %.3f of the energy at 1 kHz, rms %.0f", share, rms)
	if share < 0.9 || rms < 1000 {
		t.Errorf("baresip hears %.3f of the energy at 1 kHz, rms %.0f; want >= 0.9 of a tone at -13 dBFS", share, rms)
	}
}

// readWAV16k reads a WAV file as 16 kHz 16-bit mono samples (sox converts).
func readWAV16k(t testing.TB, path string) []int16 {
	t.Helper()
	out, err := exec.Command("sox", path, "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-c", "1", "-r", "16000", "-").Output()
	if err != nil {
		t.Fatalf("sox %s: %v", path, err)
	}
	pcm := make([]int16, len(out)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
	}
	return pcm
}

// uad bridges baresip (G.722, sending its 440 Hz tone at 16 kHz) with a
// call to a second uad in PCMU only, which relays to the test's socket:
// baresip's tone, decoded from its own G.722 encoder and taken to 8 kHz,
// arrives as µ-law.
func TestG722BridgeBaresipToPCMU(t *testing.T) {
	t.Parallel()
	requirePeer(t, "baresip", "sox")
	endB := newRTPPeer(t, 0)
	u := startUAD(t, UADOptions{Config: map[string]any{"media.codecs": []string{"G722", "PCMU"}}})
	b := startUAD(t, UADOptions{Name: "B", Media: "relay", Relay: endB.Addr(), Config: map[string]any{"media.codecs": []string{"PCMU"}}})
	ev, evB := u.Events(), b.Events()
	bs := startBaresip(t, BaresipOptions{AccountParams: ";audio_codecs=G722/16000/1", WAVRate: 16000, ExtraConfig: "module\t\t\tg722.so\n"})
	wide := bs.dialUAD(t, u, ev)
	narrow := u.PlaceCall(b.SIPURI("uad"), nil)
	waitBothConnected(t, ev, narrow.ID, evB)
	if c := u.Call(wide); c.Audio == nil || c.Audio.Codec != "G722" {
		t.Fatalf("baresip's call: audio %+v, want G722", c.Audio)
	}
	if c := u.Call(narrow.ID); c.Audio == nil || c.Audio.Codec != "PCMU" {
		t.Fatalf("the call to B: audio %+v, want PCMU", c.Audio)
	}

	createBridge(t, u, wide, narrow.ID)
	bridged := time.Now()
	first := expectFlow(t, "baresip's tone at B's endpoint", endB, bridged, 25, isLawTone(g711.PCMU, 440))
	if pk := packetsSince(endB, first); len(filter(pk, isLawTone(g711.PCMU, 440))) < len(pk)*9/10 {
		t.Errorf("B's endpoint: %d of %d packets since the first are baresip's tone, want >= 90%%", len(filter(pk, isLawTone(g711.PCMU, 440))), len(pk))
	}
	bs.hangUp(t)
	ev.WaitType(t, "call.ended", wide, sigTimeout)
}

// uad's G.722 encoder is bit-exact with baresip's: baresip sends its WAV
// (16 kHz) in G.722 to uad, which relays the packets untouched to the
// test's socket; each payload equals what uad's encoder makes of the same
// samples from its reset state, at the packet's place in the file.
func TestG722EncoderMatchesBaresip(t *testing.T) {
	t.Parallel()
	requirePeer(t, "baresip", "sox")
	end := newRTPPeer(t, 0)
	u := startUAD(t, UADOptions{Media: "relay", Relay: end.Addr(), Config: map[string]any{"media.codecs": []string{"G722"}}})
	ev := u.Events()
	b := startBaresip(t, BaresipOptions{AccountParams: ";audio_codecs=G722/16000/1", WAVRate: 16000, ExtraConfig: "module\t\t\tg722.so\n"})
	id := b.dialUAD(t, u, ev)
	if n := end.WaitCount(50, 5*time.Second); n < 50 {
		t.Fatalf("the relay endpoint got %d packets from baresip, want >= 50: %s", n, end.Stats())
	}
	b.hangUp(t)
	ev.WaitType(t, "call.ended", id, sigTimeout)

	pcm := readWAV16k(t, b.WAVPath)[:16000*10] // more than the call sent
	codes := make([]byte, len(pcm)/2)
	g722.NewEncoder().Encode(codes, pcm)
	pkts := end.Received()
	sort.Slice(pkts, func(i, j int) bool { return int16(pkts[i].Seq-pkts[j].Seq) < 0 })
	first := bytes.Index(codes, pkts[0].Payload)
	if first < 0 || first%160 != 0 {
		t.Fatalf("baresip's first G.722 frame (% x ...) is not a frame of uad's encoding of the same samples (at %d)", pkts[0].Payload[:8], first)
	}
	for i, pk := range pkts {
		at := first + int(uint16(pk.Seq-pkts[0].Seq))*160
		if pk.PT != 9 || at+len(pk.Payload) > len(codes) || !bytes.Equal(pk.Payload, codes[at:at+len(pk.Payload)]) {
			t.Fatalf("packet %d (seq %d, PT %d) differs from uad's encoding at byte %d", i, pk.Seq, pk.PT, at)
		}
	}
	t.Logf("%d G.722 frames of baresip's equal uad's, bit for bit", len(pkts))
}
