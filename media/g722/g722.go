// Package g722 is the ITU-T G.722 wideband speech codec in its 64 kbit/s
// mode: 16 kHz 16-bit samples split by a quadrature mirror filter into two
// 8 kHz sub-bands, the lower coded with 6-bit and the higher with 2-bit
// adaptive differential PCM (SB-ADPCM). Every pair of input samples becomes
// one byte: the higher band's 2 bits above the lower band's 6.
//
// Encoder and Decoder are plain values whose zero state is not the reset
// state: make them with NewEncoder and NewDecoder, or call Reset. Neither
// allocates.
package g722

// qmf are the 24 coefficients of the transmit and receive quadrature mirror
// filters (G.722 §3.1/§4.4), scaled by 2^13. The filter is symmetric.
var qmf = [24]int32{
	3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
	3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3,
}

// Lower sub-band quantiser (G.722 table 6): decision levels for the
// magnitude interval index, and the 6-bit code of each interval by sign.
var (
	lowDecision = [31]int32{0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587,
		650, 714, 786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0}
	lowCodeNegative = [31]uint8{0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
		17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4}
	lowCodePositive = [31]uint8{0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46,
		45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32}
)

// Inverse quantisers: the 6-bit one the lower band's decoder outputs, the
// 4-bit one (the code's top four bits) both sides adapt with, and the
// higher band's 2-bit one.
var (
	lowInverse6 = [64]int32{
		-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192,
		-10232, -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
		-3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
		24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856,
		7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
		1688, 1360, 1040, 728, 432, 136, -432, -136,
	}
	lowInverse4 = [16]int32{0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
		20456, 12896, 8968, 6288, 4240, 2584, 1200, 0}
	highInverse = [4]int32{-7408, -1616, 7408, 1616}
)

// Scale factor adaptation: the magnitude class of a 4-bit lower-band code
// and its log multiplier; the same for the 2-bit higher-band code.
var (
	lowMagnitude  = [16]uint8{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	lowLogFactor  = [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	highMagnitude = [4]uint8{2, 1, 2, 1}
	highLogFactor = [3]int32{0, -214, 798}
)

// antiLog is 2^(i/32) scaled by 2^11: the mantissa of the inverse
// logarithm of a scale factor.
var antiLog = [32]int32{2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543,
	2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520,
	3597, 3676, 3756, 3838, 3922, 4008}

// Limits of the log scale factors and reset step sizes of the two bands.
const (
	lowLogMax      = 18432
	highLogMax     = 22528
	lowStepReset   = 32
	highStepReset  = 8
	highThreshold  = 564 // the higher band's single decision level
	leak127over128 = 32512
)

// band is the adaptive state of one sub-band: its step size (the scale
// factor), and the pole-zero predictor that estimates its next sample.
type band struct {
	logStep int32 // logarithmic scale factor
	step    int32 // linear scale factor

	estimate     int32    // predicted signal: pole part + zero part
	polePart     int32    // output of the 2-pole section
	zeroPart     int32    // output of the 6-zero section
	recon        [3]int32 // reconstructed signal, [0] newest
	partial      [3]int32 // partially reconstructed signal (difference + zero part)
	pole         [3]int32 // pole coefficients a1, a2 (index 0 unused)
	diff         [7]int32 // quantised difference signal, [0] newest
	zero         [7]int32 // zero coefficients b1..b6 (index 0 unused)
	polePrevious [3]int32 // scratch for the adapted pole coefficients
}

func saturate16(v int32) int32 {
	return max(min(v, 32767), -32768)
}

// adaptStep moves the log scale factor by the factor of a code and derives
// the linear step: the log decays by 127/128 each sample, is kept within
// [0, limit], and is turned back into a linear value with antiLog, shifted
// by the band's exponent offset.
func (b *band) adaptStep(factor, limit, offset int32) {
	b.logStep = max(min((b.logStep*leak127over128>>15)+factor, limit), 0)
	mantissa := antiLog[(b.logStep>>6)&31]
	shift := offset - (b.logStep >> 11)
	if shift < 0 {
		b.step = mantissa << -shift << 2
	} else {
		b.step = mantissa >> shift << 2
	}
}

// update adapts the predictor to the quantised difference d and computes
// the estimate of the next sample (G.722 blocks RECONS, PARREC, UPPOL2,
// UPPOL1, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC).
func (b *band) update(d int32) {
	b.diff[0] = d
	b.recon[0] = saturate16(b.estimate + d)
	b.partial[0] = saturate16(b.zeroPart + d)

	// Second pole coefficient: moves toward the sign correlation of the
	// partial signal two samples apart, steered by the first coefficient.
	sign0, sign1, sign2 := b.partial[0]>>15, b.partial[1]>>15, b.partial[2]>>15
	steer := saturate16(b.pole[1] << 2)
	if sign0 == sign1 {
		steer = -steer
	}
	steer = min(steer, 32767)
	a2 := int32(-128)
	if sign0 == sign2 {
		a2 = 128
	}
	a2 += steer >> 7
	a2 += b.pole[2] * leak127over128 >> 15
	a2 = max(min(a2, 12288), -12288)
	b.polePrevious[2] = a2

	// First pole coefficient, bounded so the predictor stays stable.
	a1 := int32(-192)
	if sign0 == sign1 {
		a1 = 192
	}
	a1 = saturate16(a1 + (b.pole[1] * 32640 >> 15))
	bound := saturate16(15360 - a2)
	b.polePrevious[1] = max(min(a1, bound), -bound)

	// Zero coefficients: each moves toward the sign correlation of the new
	// difference with the one it weighs.
	var gain int32
	if d != 0 {
		gain = 128
	}
	signD := d >> 15
	for i := 1; i < 7; i++ {
		g := -gain
		if b.diff[i]>>15 == signD {
			g = gain
		}
		b.zero[i] = saturate16(g + (b.zero[i] * 32640 >> 15))
	}

	// Shift the delay lines.
	for i := 6; i > 0; i-- {
		b.diff[i] = b.diff[i-1]
	}
	for i := 2; i > 0; i-- {
		b.recon[i] = b.recon[i-1]
		b.partial[i] = b.partial[i-1]
		b.pole[i] = b.polePrevious[i]
	}

	// Predict the next sample.
	p1 := b.pole[1] * saturate16(b.recon[1]+b.recon[1]) >> 15
	p2 := b.pole[2] * saturate16(b.recon[2]+b.recon[2]) >> 15
	b.polePart = saturate16(p1 + p2)
	var z int32
	for i := 6; i > 0; i-- {
		z += b.zero[i] * saturate16(b.diff[i]+b.diff[i]) >> 15
	}
	b.zeroPart = saturate16(z)
	b.estimate = saturate16(b.polePart + b.zeroPart)
}

// lowAdapt updates the lower band after a 6-bit code: step size and
// predictor, from the code's 4-bit truncation as both sides see it.
func (b *band) lowAdapt(code uint8) {
	code4 := code >> 2
	d := b.step * lowInverse4[code4] >> 15
	b.adaptStep(lowLogFactor[lowMagnitude[code4]], lowLogMax, 8)
	b.update(d)
}

// highAdapt updates the higher band after a 2-bit code, whose quantised
// difference is d.
func (b *band) highAdapt(code uint8, d int32) {
	b.adaptStep(highLogFactor[highMagnitude[code]], highLogMax, 10)
	b.update(d)
}

// subbands are the two bands' states, as encoder and decoder keep them.
type subbands struct{ low, high band }

// reset puts both bands in the state the standard starts from.
func (s *subbands) reset() {
	s.low = band{step: lowStepReset}
	s.high = band{step: highStepReset}
}

// FrameBytes is the size of a 20 ms frame: 320 samples at 16 kHz.
const FrameBytes = 160

// Encoder turns 16 kHz samples into G.722 codes.
type Encoder struct {
	subbands
	history [24]int32 // input samples, [23] newest
}

// NewEncoder returns an encoder in the reset state.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.Reset()
	return e
}

// Reset puts the encoder in the state the standard starts from.
func (e *Encoder) Reset() {
	*e = Encoder{}
	e.subbands.reset()
}

// Encode codes pcm, which must have an even number of samples, into dst,
// one byte for each pair of samples, and returns the number of bytes
// written. dst must have room for len(pcm)/2 bytes.
func (e *Encoder) Encode(dst []byte, pcm []int16) int {
	n := len(pcm) / 2
	dst = dst[:n]
	for i := range dst {
		dst[i] = e.encodePair(int32(pcm[2*i]), int32(pcm[2*i+1]))
	}
	return n
}

func (e *Encoder) encodePair(first, second int32) byte {
	// Transmit QMF: the sum of the filter's even and odd taps gives the
	// lower band, their difference the higher band, both at 8 kHz.
	copy(e.history[:22], e.history[2:])
	e.history[22], e.history[23] = first, second
	var even, odd int32
	for i := 0; i < 24; i += 2 {
		even += e.history[23-i] * qmf[i]
		odd += e.history[22-i] * qmf[i+1]
	}
	// 16-bit input: the sub-bands get the 15-bit range the ADPCM works in.
	xLow := (even + odd) >> 14
	xHigh := (even - odd) >> 14

	low := e.encodeLow(xLow)
	high := e.encodeHigh(xHigh)
	return high<<6 | low
}

func (e *Encoder) encodeLow(x int32) uint8 {
	b := &e.low
	diff := saturate16(x - b.estimate)
	magnitude := diff
	if diff < 0 {
		magnitude = -(diff + 1)
	}
	interval := 1
	for ; interval < 30; interval++ {
		if magnitude < lowDecision[interval]*b.step>>12 {
			break
		}
	}
	code := lowCodePositive[interval]
	if diff < 0 {
		code = lowCodeNegative[interval]
	}
	b.lowAdapt(code)
	return code
}

func (e *Encoder) encodeHigh(x int32) uint8 {
	b := &e.high
	diff := saturate16(x - b.estimate)
	magnitude := diff
	if diff < 0 {
		magnitude = -(diff + 1)
	}
	large := magnitude >= highThreshold*b.step>>12
	var code uint8
	switch {
	case diff < 0 && large:
		code = 0
	case diff < 0:
		code = 1
	case large:
		code = 2
	default:
		code = 3
	}
	b.highAdapt(code, b.step*highInverse[code]>>15)
	return code
}

// Decoder turns G.722 codes back into 16 kHz samples.
type Decoder struct {
	subbands
	// Sum and difference of the sub-bands, [11] newest.
	sum, difference [12]int32
}

// NewDecoder returns a decoder in the reset state.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.Reset()
	return d
}

// Reset puts the decoder in the state the standard starts from.
func (d *Decoder) Reset() {
	*d = Decoder{}
	d.subbands.reset()
}

// Decode decodes codes into pcm, two samples a byte, and returns the number
// of samples written. pcm must have room for 2*len(codes) samples.
func (d *Decoder) Decode(pcm []int16, codes []byte) int {
	pcm = pcm[:2*len(codes)]
	for i, c := range codes {
		pcm[2*i], pcm[2*i+1] = d.decodeByte(c)
	}
	return 2 * len(codes)
}

func (d *Decoder) decodeByte(c byte) (int16, int16) {
	lowCode, highCode := c&0x3F, c>>6

	lb := &d.low
	rLow := max(min(lb.estimate+(lb.step*lowInverse6[lowCode]>>15), 16383), -16384)
	lb.lowAdapt(lowCode)

	hb := &d.high
	dHigh := hb.step * highInverse[highCode] >> 15
	rHigh := max(min(hb.estimate+dHigh, 16383), -16384)
	hb.highAdapt(highCode, dHigh)

	// Receive QMF: the difference and sum of the bands through the even
	// and odd taps give the two output samples.
	copy(d.sum[:11], d.sum[1:])
	copy(d.difference[:11], d.difference[1:])
	d.difference[11] = rLow - rHigh
	d.sum[11] = rLow + rHigh
	var first, second int32
	for i := range 12 {
		first += d.difference[11-i] * qmf[2*i]
		second += d.sum[11-i] * qmf[2*i+1]
	}
	return int16(saturate16(first >> 11)), int16(saturate16(second >> 11))
}
