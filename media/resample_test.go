package media

import (
	"math"
	"testing"
)

func sineAt(freq, rate float64, n int, amplitude float64) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(math.Round(amplitude * math.Sin(2*math.Pi*freq*float64(i)/rate)))
	}
	return pcm
}

func decibels(ratio float64) float64 { return 10 * math.Log10(ratio) }

// Taking 16 kHz audio to 8 kHz keeps what is under 4 kHz at its level and
// filters out what is over it, rather than folding it down (aliasing).
func TestDownsampleFilters(t *testing.T) {
	for _, tt := range []struct {
		freq    float64
		minGain float64 // dB
		maxGain float64
	}{
		{1000, -0.5, 0.5},
		{3000, -1, 0.5},
		{5000, math.Inf(-1), -50}, // would alias to 3 kHz
		{7000, math.Inf(-1), -50}, // would alias to 1 kHz
	} {
		in := sineAt(tt.freq, 16000, 16000, 10000)
		out := make([]int16, len(in)/2)
		var d downsampler
		// In two calls: the filter carries its state over.
		d.process(out[:1000], in[:2000])
		d.process(out[1000:], in[2000:])
		gain := decibels(meanSquare(out[100:]) / meanSquare(in))
		t.Logf("%v Hz: %.1f dB", tt.freq, gain)
		if gain < tt.minGain || gain > tt.maxGain {
			t.Errorf("%v Hz through 16->8 kHz: gain %.1f dB, want %v to %v", tt.freq, gain, tt.minGain, tt.maxGain)
		}
	}
}

// Taking 8 kHz audio to 16 kHz keeps the tone at its level, at its
// frequency, without the image above 4 kHz that repeating samples leaves.
func TestUpsampleInterpolates(t *testing.T) {
	in := sineAt(1000, 8000, 8000, 10000)
	out := make([]int16, 2*len(in))
	var u upsampler
	u.process(out[:2000], in[:1000])
	u.process(out[2000:], in[1000:])
	steady := out[200:]
	total := meanSquare(steady)
	at1k := Goertzel(steady, 1000, 16000)
	image := Goertzel(steady, 7000, 16000)
	t.Logf("gain %.2f dB, 1 kHz %.4f of the energy, image %.1f dB", decibels(total/meanSquare(in)), at1k/total, decibels(image/total))
	if g := decibels(total / meanSquare(in)); g < -0.5 || g > 0.5 {
		t.Errorf("gain %.2f dB", g)
	}
	if at1k/total < 0.99 {
		t.Errorf("only %.4f of the energy at 1 kHz", at1k/total)
	}
	if decibels(image/total) > -50 {
		t.Errorf("7 kHz image at %.1f dB", decibels(image/total))
	}
}

func TestResampleAllocatesNothing(t *testing.T) {
	var d downsampler
	var u upsampler
	wide := make([]int16, 320)
	narrow := make([]int16, 160)
	if n := testing.AllocsPerRun(100, func() { d.process(narrow, wide); u.process(wide, narrow) }); n != 0 {
		t.Errorf("%v allocations a frame", n)
	}
}
