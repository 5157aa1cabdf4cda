package media

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"

	"uad/media/g722"
	"uad/media/tonespec"
)

// toneRampSamples is how long (5 ms) a tone fades out where it stops at a
// phase other than zero, so that it ends without a click.
const toneRampSamples = G711Rate * 5 / 1000

// toneAmplitude is -13 dBFS, the level of each frequency: a two-frequency
// tone peaks at about -7 dBFS and never clips.
var toneAmplitude = math.MaxInt16 * math.Pow(10, -13.0/20)

// A Clip is audio precomputed in one codec (a G.711 law or G.722), ready to
// be sent in 20 ms frames. It is immutable, so one Clip serves every call;
// each stream reads it through its own ClipCursor.
type Clip struct {
	law  Law
	data []byte // the encoded samples
	// loopFrom is where in data playback goes on after its end; -1 when the
	// clip plays once.
	loopFrom int
}

// Law returns the codec the clip is encoded in.
func (c *Clip) Law() Law { return c.law }

// NewToneClip renders spec in law. Frequencies keep their phase from one
// segment to the next, a tone fades out briefly where it stops or where the
// loop would break its phase, and a segment that plays forever is rendered
// as a whole number of periods, so the tone never clicks. It panics if
// spec.Validate fails; tonespec.Parse returns only valid specs.
func NewToneClip(spec tonespec.Spec, law Law) *Clip {
	if err := spec.Validate(); err != nil {
		panic("media: NewToneClip: invalid tone spec: " + err.Error())
	}
	segs := spec.Segments
	size := 0
	for _, seg := range segs {
		size += toneSegmentSamples(seg)
	}
	pcm := make([]int16, 0, size)
	loopFrom := -1
	if !spec.Once {
		loopFrom = 0
	}
	var sounding []toneOscillator
	for i, seg := range segs {
		oscs := segmentOscillators(seg, sounding)
		n := toneSegmentSamples(seg)
		if seg.Duration == 0 {
			// A whole number of periods loops seamlessly, with no fade.
			loopFrom = len(pcm)
			pcm = appendTone(pcm, oscs, n, nil)
			break
		}
		fadeOut := make([]bool, len(oscs))
		for k, o := range oscs {
			switch {
			case i+1 < len(segs):
				// The next segment goes on with the same phase.
				fadeOut[k] = !segmentHas(segs[i+1], o.freq)
			case !spec.Once:
				// The first segment started the frequency at phase 0.
				fadeOut[k] = !segmentHas(segs[0], o.freq) || (o.count+n)*o.freq%G711Rate != 0
			default:
				fadeOut[k] = true
			}
		}
		pcm = appendTone(pcm, oscs, n, fadeOut)
		sounding = oscs
	}
	return encodeClip(pcm, loopFrom, law)
}

// encodeClip encodes 8 kHz samples in law as a clip that goes on at
// loopFrom after its end (-1: plays once).
func encodeClip(pcm []int16, loopFrom int, law Law) *Clip {
	clip := &Clip{law: law, loopFrom: loopFrom}
	if law == G722 {
		clip.data = encodeG722Clip(pcm, loopFrom)
		return clip
	}
	clip.data = make([]byte, len(pcm))
	for i, s := range pcm {
		clip.data[i] = EncodeSample(law, s)
	}
	return clip
}

// encodeG722Clip encodes 8 kHz samples as G.722, taken to 16 kHz first.
// G.722 codes depend on all that came before, so the loop of a looping
// clip is encoded after a warm-up of what precedes its start when playback
// wraps (its own end, a second of it at least, time for the encoder to
// adapt): where playback wraps, the codes go on as if the encoder had never
// stopped.
func encodeG722Clip(pcm []int16, loopFrom int) []byte {
	if loopFrom < 0 || loopFrom >= len(pcm) {
		return encodeG722(pcm)
	}
	loop := pcm[loopFrom:]
	var warm []int16
	if len(loop) >= G711Rate {
		warm = loop[len(loop)-G711Rate:]
	} else {
		for len(warm) < G711Rate {
			warm = append(warm, loop...)
		}
	}
	codes := encodeG722(append(warm[:len(warm):len(warm)], loop...))
	return append(encodeG722(pcm[:loopFrom]), codes[len(warm):]...)
}

// encodeG722 encodes 8 kHz samples as G.722 from the reset state, a frame
// at a time.
func encodeG722(pcm []int16) []byte {
	codes := make([]byte, len(pcm))
	enc := g722.NewEncoder()
	var up upsampler
	var wide [2 * G711FrameSize]int16
	for i := 0; i < len(pcm); i += G711FrameSize {
		n := min(G711FrameSize, len(pcm)-i)
		up.process(wide[:2*n], pcm[i:i+n])
		enc.Encode(codes[i:i+n], wide[:2*n])
	}
	return codes
}

func segmentHas(seg tonespec.Segment, freq int) bool {
	return seg.Freq1 == freq || seg.Freq2 == freq
}

// toneSegmentSamples is the length of a segment in a Clip: its duration, or
// for a segment that plays forever the shortest whole number of periods of
// all its frequencies that fills at least one frame.
func toneSegmentSamples(seg tonespec.Segment) int {
	if seg.Duration != 0 {
		return int(seg.Duration * G711Rate / time.Second)
	}
	period := 1
	for _, f := range [...]int{seg.Freq1, seg.Freq2} {
		if f != 0 {
			p := G711Rate / gcdInt(f, G711Rate)
			period = period / gcdInt(period, p) * p
		}
	}
	return (G711FrameSize + period - 1) / period * period
}

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// toneOscillator is one frequency of a tone. Its phase is kept as samples
// since the tone began, modulo the sample rate, so it stays exact however
// long the tone plays.
type toneOscillator struct {
	freq  int
	count int
}

func (o *toneOscillator) next() float64 {
	v := math.Sin(2 * math.Pi * float64(o.count*o.freq%G711Rate) / G711Rate)
	o.count = (o.count + 1) % G711Rate
	return v
}

// segmentOscillators returns the oscillators for seg: a frequency already
// sounding goes on with its phase, a new one starts at phase 0 (a zero
// sample, so no click).
func segmentOscillators(seg tonespec.Segment, sounding []toneOscillator) []toneOscillator {
	var oscs []toneOscillator
	for _, f := range [...]int{seg.Freq1, seg.Freq2} {
		if f == 0 {
			continue
		}
		o := toneOscillator{freq: f}
		for _, s := range sounding {
			if s.freq == f {
				o = s
			}
		}
		oscs = append(oscs, o)
	}
	return oscs
}

// appendTone appends n samples of the oscillators' sum to pcm, fading out
// over the last samples the oscillators marked in fadeOut (may be nil).
func appendTone(pcm []int16, oscs []toneOscillator, n int, fadeOut []bool) []int16 {
	ramp := min(toneRampSamples, n/2)
	for j := range n {
		remaining := n - 1 - j
		var v float64
		for k := range oscs {
			gain := toneAmplitude
			if fadeOut != nil && fadeOut[k] && remaining < ramp {
				// Raised cosine, near zero at the last sample.
				gain *= 0.5 - 0.5*math.Cos(math.Pi*float64(remaining+1)/float64(ramp+1))
			}
			v += gain * oscs[k].next()
		}
		pcm = append(pcm, int16(math.Round(v)))
	}
	return pcm
}

// NewWAVClip encodes samples (8 kHz) in law, as a clip that loops them.
// With no samples it loops silence.
func NewWAVClip(samples []int16, law Law) *Clip {
	if len(samples) == 0 {
		return silenceClips[law]
	}
	return encodeClip(samples, 0, law)
}

// silenceClips are the silence each codec loops: for G.711 a frame of the
// byte of a zero sample; for G.722, whose codes of silence vary, a second
// of encoded silence.
var silenceClips = map[Law]*Clip{
	PCMU: {law: PCMU, data: bytes.Repeat([]byte{PCMU.Silence()}, G711FrameSize)},
	PCMA: {law: PCMA, data: bytes.Repeat([]byte{PCMA.Silence()}, G711FrameSize)},
	G722: encodeClip(make([]int16, G711Rate), 0, G722),
}

// LoadClip makes the clip for a config value: a path ending in ".wav" is an
// 8 kHz 16-bit mono PCM file, played in a loop; anything else is a tone spec
// (package tonespec).
func LoadClip(spec string, law Law) (*Clip, error) {
	if !law.Known() {
		return nil, fmt.Errorf("unknown codec %v", law)
	}
	if strings.HasSuffix(strings.ToLower(spec), ".wav") {
		samples, err := readWAVFile(spec)
		if err != nil {
			return nil, err
		}
		if len(samples) == 0 {
			return nil, fmt.Errorf("%s: the file has no audio", spec)
		}
		return NewWAVClip(samples, law), nil
	}
	ts, err := tonespec.Parse(spec)
	if err != nil {
		return nil, err
	}
	return NewToneClip(ts, law), nil
}

// Cursor returns a cursor at the start of the clip.
func (c *Clip) Cursor() ClipCursor {
	return ClipCursor{clip: c}
}

// ClipCursor is one stream's position in a shared Clip. The zero value
// produces nothing.
type ClipCursor struct {
	clip *Clip
	pos  int
}

// Next copies the next 20 ms frame of the clip into dst[:G711FrameSize]
// (dst must have the room) and reports true, or reports false, leaving dst
// alone, once a clip that plays once has ended. The last frame of such a
// clip is padded with silence. Next allocates nothing.
func (cur *ClipCursor) Next(dst []byte) (ok bool) {
	c := cur.clip
	if c == nil || (c.loopFrom < 0 && cur.pos >= len(c.data)) {
		return false
	}
	frame := dst[:G711FrameSize]
	for len(frame) > 0 {
		if cur.pos == len(c.data) {
			if c.loopFrom < 0 {
				silence := c.law.Silence()
				for i := range frame {
					frame[i] = silence
				}
				break
			}
			cur.pos = c.loopFrom
		}
		n := copy(frame, c.data[cur.pos:])
		cur.pos += n
		frame = frame[n:]
	}
	return true
}

// Skip moves the cursor on by frames 20 ms frames without copying them, as
// if Next had been called that many times: a paced stream that missed
// frames stays in time with the clip's cadence.
func (cur *ClipCursor) Skip(frames int) {
	c := cur.clip
	if c == nil || frames <= 0 {
		return
	}
	pos := cur.pos + frames*G711FrameSize
	switch loop := len(c.data) - c.loopFrom; {
	case pos <= len(c.data):
		cur.pos = pos
	case c.loopFrom < 0 || loop <= 0:
		cur.pos = len(c.data) // a clip that plays once ends there
	default:
		cur.pos = c.loopFrom + (pos-len(c.data))%loop
	}
}

// Goertzel returns the power of freq in samples taken at rate. It is
// normalised to the mean square of the samples: a sine of amplitude A at
// freq gives about A²/2 whatever the number of samples, and a signal's
// Goertzel power can be compared with its total mean square.
func Goertzel(samples []int16, freq float64, rate float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2 float64
	for _, x := range samples {
		s1, s2 = float64(x)+coeff*s1-s2, s1
	}
	n := float64(len(samples))
	return 2 * (s1*s1 + s2*s2 - coeff*s1*s2) / (n * n)
}
