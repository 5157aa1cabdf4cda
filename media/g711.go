package media

import (
	"fmt"

	"github.com/zaf/g711"
)

// Law names an audio codec: one uad encodes and decodes (a G.711
// companding law or G.722), whose value is its static RTP payload type, or
// from 128 up one it passes through (codec.go).
type Law uint8

const (
	PCMU Law = 0 // μ-law
	PCMA Law = 8 // A-law
	// G722 is G.722 at 64 kbit/s: 16 kHz audio, one byte for each 1/8000 s,
	// on the 8 kHz RTP clock RFC 3551 gives it (its SDP name: G722/8000).
	G722 Law = 9
)

// g722Silence is the code a G.722 encoder writes for silence from its
// reset state.
const g722Silence = 0xFA

const (
	// G711Rate is the sample rate of G.711 audio and of its RTP clock.
	G711Rate = 8000
	// G711FrameSize is the size in bytes (one byte a sample) of a 20 ms G.711
	// frame, the payload of every RTP packet uad generates.
	G711FrameSize = G711Rate * 20 / 1000
)

func (l Law) String() string {
	switch l {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	case G722:
		return "G722"
	}
	if l >= firstPassthrough {
		if s := l.Spec(); s.Name != "" {
			return s.String()
		}
	}
	return fmt.Sprintf("Law(%d)", uint8(l))
}

// Silence returns the byte that encodes a zero sample (for G.722, the
// first code of silence from the reset state).
func (l Law) Silence() byte {
	if l == G722 {
		return g722Silence
	}
	return EncodeSample(l, 0)
}

// Known reports whether uad encodes and decodes l (false for a codec it
// passes through).
func (l Law) Known() bool { return l == PCMU || l == PCMA || l == G722 }

// EncodeSample encodes one 16-bit linear sample. It panics for a Law other
// than PCMU and PCMA: that is a programming error, not bad input.
func EncodeSample(l Law, s int16) byte {
	switch l {
	case PCMU:
		return g711.EncodeUlawFrame(s)
	case PCMA:
		return g711.EncodeAlawFrame(s)
	}
	panic("media: EncodeSample: unknown G.711 law " + l.String())
}

// DecodeSample decodes one G.711 byte to a 16-bit linear sample. It panics
// for a Law other than PCMU and PCMA.
func DecodeSample(l Law, b byte) int16 {
	switch l {
	case PCMU:
		return g711.DecodeUlawFrame(b)
	case PCMA:
		return g711.DecodeAlawFrame(b)
	}
	panic("media: DecodeSample: unknown G.711 law " + l.String())
}

// The transcoding tables are defined as decode-then-encode, so transcoding
// gives exactly what a full decode and re-encode would, for one lookup a byte.
var (
	ulawToAlaw = transcodeTable(PCMU, PCMA)
	alawToUlaw = transcodeTable(PCMA, PCMU)
)

func transcodeTable(from, to Law) *[256]byte {
	var table [256]byte
	for b := range table {
		table[b] = EncodeSample(to, DecodeSample(from, byte(b)))
	}
	return &table
}

// Transcode converts the G.711 bytes of src from one law to the other into
// dst, which must be at least as long as src; dst and src may be the same
// slice. Equal laws copy. It allocates nothing, and panics for a Law other
// than PCMU and PCMA.
func Transcode(dst, src []byte, from, to Law) {
	dst = dst[:len(src)]
	var table *[256]byte
	switch {
	case from == PCMU && to == PCMA:
		table = ulawToAlaw
	case from == PCMA && to == PCMU:
		table = alawToUlaw
	case from == to && (from == PCMU || from == PCMA):
		copy(dst, src)
		return
	default:
		panic("media: Transcode: unknown G.711 law " + from.String() + " or " + to.String())
	}
	for i, b := range src {
		dst[i] = table[b]
	}
}
