package media

import "math"

// resampleTaps is the length of the low-pass filter that takes 16 kHz
// audio to 8 kHz and back: odd, so the filter has a centre tap, and long
// enough for about 60 dB of stop band above 4.4 kHz.
const resampleTaps = 63

// resampleFilter is a windowed-sinc low-pass at 16 kHz, cut off at 3.7 kHz
// (just under the 4 kHz Nyquist frequency of 8 kHz audio), with unity gain
// at DC.
var resampleFilter = func() (h [resampleTaps]float32) {
	const cutoff = 3700.0 / 16000
	centre := float64(resampleTaps-1) / 2
	var sum float64
	taps := make([]float64, resampleTaps)
	for i := range taps {
		x := float64(i) - centre
		sinc := 2 * cutoff
		if x != 0 {
			sinc = math.Sin(2*math.Pi*cutoff*x) / (math.Pi * x)
		}
		// Blackman window.
		w := 0.42 - 0.5*math.Cos(2*math.Pi*float64(i)/(resampleTaps-1)) +
			0.08*math.Cos(4*math.Pi*float64(i)/(resampleTaps-1))
		taps[i] = sinc * w
		sum += taps[i]
	}
	for i := range taps {
		h[i] = float32(taps[i] / sum)
	}
	return h
}()

// history is the last resampleTaps samples a filter saw, written twice (at
// pos and pos+resampleTaps) so the newest resampleTaps samples are always
// one contiguous slice: no wrap-around in the filter loop.
type history struct {
	buf [2 * resampleTaps]float32
	pos int
}

// push adds a sample and returns the window, oldest first.
func (h *history) push(x float32) []float32 {
	h.buf[h.pos], h.buf[h.pos+resampleTaps] = x, x
	h.pos++
	if h.pos == resampleTaps {
		h.pos = 0
	}
	return h.buf[h.pos : h.pos+resampleTaps]
}

func clamp16(v float32) int16 {
	return int16(max(min(math.Round(float64(v)), math.MaxInt16), math.MinInt16))
}

// downsampler halves a sample rate: low-pass, then every other sample.
// Its state carries the filter over from one call to the next.
type downsampler struct{ h history }

// process filters src (16 kHz) into dst (8 kHz), len(src)/2 samples.
func (d *downsampler) process(dst, src []int16) {
	dst = dst[:len(src)/2]
	for i := range dst {
		d.h.push(float32(src[2*i]))
		window := d.h.push(float32(src[2*i+1]))
		var acc float32
		for k, x := range window {
			acc += x * resampleFilter[k]
		}
		dst[i] = clamp16(acc)
	}
}

// upsampler doubles a sample rate: a zero between samples, then low-pass
// (which must then have a gain of 2). Only the taps that meet a sample are
// summed: the even ones for one output, the odd ones for the next.
type upsampler struct{ h history }

// process filters src (8 kHz) into dst (16 kHz), 2*len(src) samples.
func (u *upsampler) process(dst, src []int16) {
	dst = dst[:2*len(src)]
	for i, s := range src {
		u.h.push(0)
		window := u.h.push(float32(s))
		// window ends with the new sample; zeros sit at every other place
		// before it, so the filter for this output reads odd-indexed taps
		// from the end, and the one for the next output the even ones.
		var a, b float32
		for k := resampleTaps - 1; k >= 0; k -= 2 {
			a += window[k] * resampleFilter[k]
		}
		for k := resampleTaps - 2; k >= 0; k -= 2 {
			b += window[k+1] * resampleFilter[k]
		}
		dst[2*i], dst[2*i+1] = clamp16(2*a), clamp16(2*b)
	}
}
