package media

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtp"

	"uad/media/g722"
)

// decodeAny decodes a payload of any codec uad knows to 8 kHz samples (a
// G.722 one through a fresh decoder and the 16->8 kHz filter).
func decodeAny(t testing.TB, codes []byte, law Law) []int16 {
	t.Helper()
	out := make([]int16, len(codes))
	if law != G722 {
		for i, b := range codes {
			out[i] = DecodeSample(law, b)
		}
		return out
	}
	wide := make([]int16, 2*len(codes))
	g722.NewDecoder().Decode(wide, codes)
	var d downsampler
	d.process(out, wide)
	return out
}

// encodeAny encodes 8 kHz samples in any codec uad knows.
func encodeAny(pcm []int16, law Law) []byte {
	return encodeClip(pcm, -1, law).data
}

// toneShare is how much of the energy of 8 kHz samples is at freq.
func toneShare(samples []int16, freq float64) float64 {
	return Goertzel(samples, freq, G711Rate) / meanSquare(samples)
}

// A 1 kHz tone survives every conversion between G.711 and G.722, packet
// by packet (the converter keeps its state between them).
func TestTranscoderKeepsTone(t *testing.T) {
	in := sineAt(1000, G711Rate, G711Rate, 8000)
	for _, pair := range [][2]Law{{PCMU, G722}, {G722, PCMU}, {PCMA, G722}, {G722, PCMA}, {PCMU, PCMA}} {
		from, to := pair[0], pair[1]
		src := encodeAny(in, from)
		dst := make([]byte, len(src))
		tc := newTranscoder()
		for i := 0; i < len(src); i += 160 {
			tc.convert(dst[i:i+160], src[i:i+160], from, to)
		}
		out := decodeAny(t, dst, to)[800:] // past the codec's adaptation
		share := toneShare(out, 1000)
		level := decibels(meanSquare(out) / meanSquare(in))
		t.Logf("%v -> %v: %.4f of the energy at 1 kHz, level %.1f dB", from, to, share, level)
		if share < 0.98 {
			t.Errorf("%v -> %v: only %.4f of the energy at 1 kHz", from, to, share)
		}
		if level < -1.5 || level > 1.5 {
			t.Errorf("%v -> %v: level changed by %.1f dB", from, to, level)
		}
	}
}

func TestTranscoderAllocatesNothing(t *testing.T) {
	tc := newTranscoder()
	src, dst := make([]byte, 160), make([]byte, 160)
	for _, pair := range [][2]Law{{PCMU, G722}, {G722, PCMA}} {
		if n := testing.AllocsPerRun(100, func() { tc.convert(dst, src, pair[0], pair[1]) }); n != 0 {
			t.Errorf("%v -> %v: %v allocations a frame", pair[0], pair[1], n)
		}
	}
}

func BenchmarkTranscodeFrame(b *testing.B) {
	src := encodeAny(sineAt(1000, G711Rate, 160, 8000), PCMU)
	dst := make([]byte, 160)
	for _, pair := range [][2]Law{{PCMU, G722}, {G722, PCMU}} {
		b.Run(pair[0].String()+"-"+pair[1].String(), func(b *testing.B) {
			tc := newTranscoder()
			b.ReportAllocs()
			for b.Loop() {
				tc.convert(dst, src, pair[0], pair[1])
			}
		})
	}
}

// Tone clips in G.722 decode to the tone; a looping one wraps without a
// click: the tone's share of the energy stays where the loop joins.
func TestG722ToneClip(t *testing.T) {
	clip := mustToneClip(t, "1000", G722)
	if clip.Law() != G722 {
		t.Fatalf("clip law %v", clip.Law())
	}
	cur := clip.Cursor()
	var played []byte
	frame := make([]byte, G711FrameSize)
	for range 50 { // one second, many times round the loop
		cur.Next(frame)
		played = append(played, frame...)
	}
	out := decodeAny(t, played, G722)
	for start := 800; start+400 <= len(out); start += 400 {
		if share := toneShare(out[start:start+400], 1000); share < 0.98 {
			t.Errorf("samples %d..%d: only %.4f of the energy at 1 kHz", start, start+400, share)
		}
	}
	hold := mustToneClip(t, "440/300,0/3700", G722)
	if len(hold.data) != 4*G711Rate {
		t.Errorf("hold tone clip of %d bytes, want 4 s", len(hold.data))
	}
	// Music on hold from an 8 kHz WAV: taken to 16 kHz and encoded.
	wav := NewWAVClip(sineAt(700, G711Rate, G711Rate/2, 8000), G722)
	if wav.Law() != G722 || len(wav.data) != G711Rate/2 {
		t.Fatalf("WAV clip: %v, %d bytes", wav.Law(), len(wav.data))
	}
	if share := toneShare(decodeAny(t, wav.data, G722)[800:], 700); share < 0.98 {
		t.Errorf("WAV clip: only %.4f of the energy at 700 Hz", share)
	}
}

// A call negotiated in G.722 hears its tone in G.722, and is echoed
// untouched.
func TestStreamG722ToneAndEcho(t *testing.T) {
	e := newTestEngine(t, 31820, 31829)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	params := g722Params(peer.LocalAddr().(*net.UDPAddr).AddrPort())
	s.Configure(StreamConfig{Mode: ModeTone, Params: params, Send: true, Accept: true})
	var tone []byte
	for range 10 {
		p := readRTP(t, peer)
		if p.PayloadType != 9 || len(p.Payload) != 160 {
			t.Fatalf("tone packet PT %d, %d bytes; want G.722 (9), 160", p.PayloadType, len(p.Payload))
		}
		tone = append(tone, p.Payload...)
	}
	// A decoder from its reset state takes some 75 ms to adapt.
	if share := toneShare(decodeAny(t, tone, G722)[800:], 440); share < 0.98 {
		t.Errorf("tone: only %.3f of the energy at 440 Hz", share)
	}

	s.Configure(StreamConfig{Mode: ModeEcho, Params: params, Send: true, Accept: true})
	payload := encodeAny(sineAt(1000, G711Rate, 160, 8000), G722)
	in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 9, SequenceNumber: 7, Timestamp: 1600, SSRC: 42}, Payload: payload}
	raw, _ := in.Marshal()
	if _, err := peer.WriteToUDP(raw, net.UDPAddrFromAddrPort(s.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	for {
		p := readRTP(t, peer)
		if string(p.Payload) == string(payload) {
			if p.PayloadType != 9 {
				t.Errorf("echo PT %d", p.PayloadType)
			}
			break
		}
	}
}

func g722Params(remote netip.AddrPort) AudioParams {
	laws := []Law{G722, PCMU, PCMA}
	ls := &LocalStream{Kind: "audio", Formats: AudioFormats(laws, true)}
	rs := &RemoteStream{Kind: "audio", Formats: ls.Formats}
	p, _ := NegotiateAudio(ls, rs, ls.Formats, laws)
	p.Remote = remote
	return p
}

// A bridge between a G.722 leg and a G.711 leg converts both ways; a
// 1 kHz tone crosses it.
func TestBridgeConvertsG722(t *testing.T) {
	e := newTestEngine(t, 31830, 31849)
	a, _ := e.NewStream(false, false)
	b, _ := e.NewStream(false, false)
	defer a.Close()
	defer b.Close()
	pa, pb := peerSocket(t), peerSocket(t)
	wideParams := g722Params(pa.LocalAddr().(*net.UDPAddr).AddrPort())
	narrowParams := pcmuParams(pb.LocalAddr().(*net.UDPAddr).AddrPort())
	Bridge(a, b)
	a.Configure(StreamConfig{Params: wideParams, Send: true, Accept: true, Bridged: true})
	b.Configure(StreamConfig{Params: narrowParams, Send: true, Accept: true, Bridged: true})

	tone := sineAt(1000, G711Rate, 25*160, 8000)
	for _, dir := range []struct {
		name     string
		from     *net.UDPConn
		to       *net.UDPConn
		stream   *Stream
		send     Law
		hear     Law
		pt, want uint8
	}{
		{"G.722 to PCMU", pa, pb, a, G722, PCMU, 9, 0},
		{"PCMU to G.722", pb, pa, b, PCMU, G722, 0, 9},
	} {
		coded := encodeAny(tone, dir.send)
		var heard []byte
		for i := 0; i < len(coded); i += 160 {
			in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: dir.pt, SequenceNumber: uint16(i / 160), Timestamp: uint32(i), SSRC: 42}, Payload: coded[i : i+160]}
			raw, _ := in.Marshal()
			if _, err := dir.from.WriteToUDP(raw, net.UDPAddrFromAddrPort(dir.stream.LocalAddr())); err != nil {
				t.Fatal(err)
			}
			p := readRTP(t, dir.to)
			if p.PayloadType != dir.want {
				t.Fatalf("%s: PT %d, want %d", dir.name, p.PayloadType, dir.want)
			}
			heard = append(heard, p.Payload...)
		}
		out := decodeAny(t, heard, dir.hear)[800:]
		share := toneShare(out, 1000)
		t.Logf("%s: %.4f of the energy at 1 kHz", dir.name, share)
		if share < 0.98 {
			t.Errorf("%s: only %.4f of the energy at 1 kHz", dir.name, share)
		}
	}
}
