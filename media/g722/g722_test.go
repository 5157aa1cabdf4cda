package g722

import (
	"math"
	"testing"
)

const rate = 16000

func sine(freq float64, n int, amplitude float64) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(math.Round(amplitude * math.Sin(2*math.Pi*freq*float64(i)/rate)))
	}
	return pcm
}

// goertzel returns the power of freq in samples, normalised so a sine of
// amplitude A gives about A²/2.
func goertzel(samples []int16, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2 float64
	for _, x := range samples {
		s1, s2 = float64(x)+coeff*s1-s2, s1
	}
	n := float64(len(samples))
	return 2 * (s1*s1 + s2*s2 - coeff*s1*s2) / (n * n)
}

func meanSquare(samples []int16) float64 {
	var sum float64
	for _, x := range samples {
		sum += float64(x) * float64(x)
	}
	return sum / float64(len(samples))
}

func roundTrip(pcm []int16) []int16 {
	enc, dec := NewEncoder(), NewDecoder()
	codes := make([]byte, len(pcm)/2)
	enc.Encode(codes, pcm)
	out := make([]int16, len(pcm))
	dec.Decode(out, codes)
	return out
}

// The QMF pair delays the signal by 22 samples (two 24-tap filters, less
// the pairing); the SNR compares the output with the input that delay ago.
const codecDelay = 22

func snr(in, out []int16, skip int) float64 {
	var signal, noise float64
	for i := skip; i < len(out); i++ {
		ref := float64(in[i-codecDelay])
		e := float64(out[i]) - ref
		signal += ref * ref
		noise += e * e
	}
	return 10 * math.Log10(signal/noise)
}

func TestRoundTripKeepsFrequency(t *testing.T) {
	for _, freq := range []float64{1000, 5000} {
		in := sine(freq, rate, 10000) // one second
		out := roundTrip(in)
		steady := out[rate/10:] // past the adaptation of the first 100 ms
		ratio := goertzel(steady, freq) / meanSquare(steady)
		s := snr(in, out, rate/10)
		t.Logf("%v Hz: %.3f of the energy at the frequency, SNR %.1f dB", freq, ratio, s)
		if ratio < 0.95 {
			t.Errorf("%v Hz: only %.3f of the decoded energy is at the frequency", freq, ratio)
		}
		if s < 20 { // the higher band has 2 bits: 5 kHz keeps about 22 dB
			t.Errorf("%v Hz: SNR %.1f dB, want at least 20", freq, s)
		}
		if level := math.Sqrt(meanSquare(steady) * 2); level < 9000 || level > 11000 {
			t.Errorf("%v Hz: decoded amplitude %.0f, sent 10000", freq, level)
		}
	}
}

func TestSilenceEncodesStably(t *testing.T) {
	// ADPCM has idle noise: the codes of silence are not all one byte, but
	// what they decode to stays silent, here over five seconds.
	enc := NewEncoder()
	codes := make([]byte, 5*rate/2)
	enc.Encode(codes, make([]int16, 2*len(codes)))
	again := make([]byte, len(codes))
	NewEncoder().Encode(again, make([]int16, 2*len(codes)))
	if string(again) != string(codes) {
		t.Fatal("two encoders from reset code silence differently")
	}
	out := make([]int16, 2*len(codes))
	NewDecoder().Decode(out, codes)
	for i, s := range out {
		if s > 8 || s < -8 {
			t.Fatalf("decoded silence sample %d is %d", i, s)
		}
	}
}

func TestResetState(t *testing.T) {
	// In the reset state the lower band's step is 32, so the smallest
	// decision levels round to zero and a zero difference falls in the
	// first interval whose level is not: the fourth (code 58 when
	// positive); the higher band's zero difference is "small positive" (3).
	enc := NewEncoder()
	var code [1]byte
	enc.Encode(code[:], []int16{0, 0})
	if code[0] != 3<<6|58 {
		t.Errorf("first code of silence from reset is %#x, want %#x", code[0], 3<<6|58)
	}
	// A decoder fed what an encoder wrote tracks its state exactly.
	in := sine(1000, 3200, 8000)
	codes := make([]byte, len(in)/2)
	enc.Reset()
	enc.Encode(codes, in)
	dec := NewDecoder()
	dec.Decode(make([]int16, len(in)), codes)
	if dec.low.estimate != enc.low.estimate || dec.high.estimate != enc.high.estimate ||
		dec.low.step != enc.low.step || dec.high.step != enc.high.step {
		t.Errorf("decoder state (%d %d %d %d) differs from encoder's (%d %d %d %d)",
			dec.low.estimate, dec.high.estimate, dec.low.step, dec.high.step,
			enc.low.estimate, enc.high.estimate, enc.low.step, enc.high.step)
	}
}

func TestFullScaleDoesNotWrap(t *testing.T) {
	in := sine(1000, rate/2, 32767)
	out := roundTrip(in)
	steady := out[rate/10:]
	if ratio := goertzel(steady, 1000) / meanSquare(steady); ratio < 0.9 {
		t.Errorf("full-scale 1 kHz: only %.3f of the energy at the frequency", ratio)
	}
}

func BenchmarkEncodeFrame(b *testing.B) {
	enc := NewEncoder()
	pcm := sine(1000, 2*FrameBytes, 8000)
	var codes [FrameBytes]byte
	b.ReportAllocs()
	for b.Loop() {
		enc.Encode(codes[:], pcm)
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	pcm := sine(1000, 2*FrameBytes, 8000)
	var codes [FrameBytes]byte
	NewEncoder().Encode(codes[:], pcm)
	dec := NewDecoder()
	b.ReportAllocs()
	for b.Loop() {
		dec.Decode(pcm, codes[:])
	}
}
