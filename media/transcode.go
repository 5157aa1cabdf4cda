package media

import "uad/media/g722"

// transcodeChunk is how many payload bytes a transcoder converts at a time:
// one 20 ms frame of either codec (G.711 and G.722 both use a byte for
// each 8 kHz sample period).
const transcodeChunk = 160

// transcoder converts the audio payloads one sender forwards into the codec
// it sends. G.711 laws convert byte for byte; G.722 goes through linear
// audio, with the state a stream needs carried from packet to packet: the
// G.722 decoder of what comes in, the encoder of what goes out, and the
// filters between 16 and 8 kHz. Payload sizes never change: both codecs
// take one byte for each 1/8000 s.
type transcoder struct {
	dec    g722.Decoder
	enc    g722.Encoder
	down   downsampler
	up     upsampler
	wide   [2 * transcodeChunk]int16
	narrow [transcodeChunk]int16
}

func newTranscoder() *transcoder {
	t := &transcoder{}
	t.dec.Reset()
	t.enc.Reset()
	return t
}

// convert converts src from one codec to another into dst, which must be
// at least as long. It allocates nothing.
func (t *transcoder) convert(dst, src []byte, from, to Law) {
	if from != G722 && to != G722 {
		Transcode(dst, src, from, to)
		return
	}
	for len(src) > 0 {
		n := min(len(src), transcodeChunk)
		t.convertChunk(dst[:n], src[:n], from, to)
		dst, src = dst[n:], src[n:]
	}
}

func (t *transcoder) convertChunk(dst, src []byte, from, to Law) {
	narrow, wide := t.narrow[:len(src)], t.wide[:2*len(src)]
	switch from {
	case G722:
		t.dec.Decode(wide, src)
		if to == G722 {
			t.enc.Encode(dst, wide)
			return
		}
		t.down.process(narrow, wide)
	default:
		for i, b := range src {
			narrow[i] = DecodeSample(from, b)
		}
	}
	if to == G722 {
		t.up.process(wide, narrow)
		t.enc.Encode(dst, wide)
		return
	}
	for i, s := range narrow {
		dst[i] = EncodeSample(to, s)
	}
}
