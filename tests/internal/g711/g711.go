// Package g711 is the G.711 reference the end-to-end tests and the load
// tool share, kept apart from the daemon's own codec so that it checks it:
// µ-law and A-law (ITU-T G.711 as in the classic Sun implementation), and a
// Goertzel detector that tells a tone from other audio.
package g711

import "math"

// The static RTP payload types of the two laws.
const (
	PCMU = 0
	PCMA = 8
)

// EncodeULaw is µ-law encoding.
func EncodeULaw(sample int16) byte {
	const bias, clip = 0x84, 32635
	v := int(sample)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > clip {
		v = clip
	}
	v += bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// DecodeULaw is µ-law decoding.
func DecodeULaw(b byte) float64 { return ulaw[b] }

// EncodeALaw is A-law encoding.
func EncodeALaw(pcm int16) byte {
	v := int(pcm) >> 3
	mask := byte(0xd5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := 0
	for end := 0x1f; seg < 8 && v > end; end = end<<1 | 1 {
		seg++
	}
	if seg >= 8 {
		return 0x7f ^ mask
	}
	a := byte(seg << 4)
	if seg < 2 {
		a |= byte(v>>1) & 0x0f
	} else {
		a |= byte(v>>seg) & 0x0f
	}
	return a ^ mask
}

// DecodeALaw is A-law decoding (to 16-bit linear).
func DecodeALaw(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0f) << 4
	seg := int(a&0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// Decode decodes one byte of the law of payload type pt (PCMA, else µ-law).
func Decode(pt uint8, b byte) float64 { return table(pt)[b] }

// Encode encodes one sample in the law of payload type pt (PCMA, else µ-law).
func Encode(pt uint8, v int16) byte {
	if pt == PCMA {
		return EncodeALaw(v)
	}
	return EncodeULaw(v)
}

// Decoding tables: the tone detector runs on every held packet of a load
// run, so it does not decode byte by byte.
var ulaw, alaw = func() (u, a [256]float64) {
	for i := range u {
		b := ^byte(i)
		exp := int(b>>4) & 7
		v := ((int(b&0x0f) << 3) + 0x84) << exp
		v -= 0x84
		if b&0x80 != 0 {
			v = -v
		}
		u[i] = float64(v)
		a[i] = float64(DecodeALaw(byte(i)))
	}
	return
}()

func table(pt uint8) *[256]float64 {
	if pt == PCMA {
		return &alaw
	}
	return &ulaw
}

// goertzel returns the power at freq (8 kHz sampling) of a payload of the
// law of pt, and its energy.
func goertzel(pt uint8, payload []byte, freq float64) (power, energy float64) {
	dec := table(pt)
	coeff := 2 * math.Cos(2*math.Pi*freq/8000)
	var s1, s2 float64
	for _, b := range payload {
		x := dec[b]
		energy += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2, energy
}

// ToneLevel decodes a payload of the law of pt and returns its RMS level
// and the share of its energy at freq: about 1 for a pure tone at freq,
// about 0 for another frequency or silence.
func ToneLevel(pt uint8, payload []byte, freq float64) (rms, share float64) {
	n := len(payload)
	if n == 0 {
		return 0, 0
	}
	power, energy := goertzel(pt, payload, freq)
	if energy == 0 {
		return 0, 0
	}
	return math.Sqrt(energy / float64(n)), power / (energy * float64(n) / 2)
}

// ToneShare is the share of the energy at freq over several frames, each
// analysed on its own (a lost packet breaks no phase), the powers summed.
func ToneShare(pt uint8, frames [][]byte, freq float64) float64 {
	var tonePower, total float64
	for _, f := range frames {
		power, energy := goertzel(pt, f, freq)
		// A sine of amplitude A over N samples gives |X|^2 = (A·N/2)^2 and
		// energy N·A^2/2: share = 2|X|^2 / (N·energy).
		tonePower += 2 * power
		total += float64(len(f)) * energy
	}
	if total == 0 {
		return 0
	}
	return tonePower / total
}
