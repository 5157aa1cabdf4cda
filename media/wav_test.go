package media

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"strings"
	"testing"
)

// chunk builds a RIFF chunk, padded to an even size.
func chunk(id string, body []byte) []byte {
	out := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	out = append(out, body...)
	if len(body)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

func fmtChunk(format, channels uint16, rate uint32, bits uint16) []byte {
	le := binary.LittleEndian
	body := le.AppendUint16(nil, format)
	body = le.AppendUint16(body, channels)
	body = le.AppendUint32(body, rate)
	body = le.AppendUint32(body, rate*uint32(channels)*uint32(bits)/8)
	body = le.AppendUint16(body, channels*bits/8)
	body = le.AppendUint16(body, bits)
	return chunk("fmt ", body)
}

// extensibleFmtChunk is a WAVE_FORMAT_EXTENSIBLE fmt chunk, as some tools
// write even for plain PCM.
func extensibleFmtChunk(subformat uint16) []byte {
	le := binary.LittleEndian
	body := fmtChunk(0xFFFE, 1, 8000, 16)[8:]
	body = le.AppendUint16(body, 22) // extension size
	body = le.AppendUint16(body, 16) // valid bits
	body = le.AppendUint32(body, 4)  // channel mask: front centre
	body = le.AppendUint16(body, subformat)
	body = append(body, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71)
	return chunk("fmt ", body)
}

func wavFile(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	return chunk("RIFF", body)
}

func pcmData(samples ...int16) []byte {
	var out []byte
	for _, s := range samples {
		out = binary.LittleEndian.AppendUint16(out, uint16(s))
	}
	return out
}

var pcm8k = fmtChunk(1, 1, 8000, 16)

func TestWAVRoundTrip(t *testing.T) {
	ramp := make([]int16, 12345)
	for i := range ramp {
		ramp[i] = int16(i*53 - 30000)
	}
	tests := []struct {
		name    string
		samples []int16
	}{
		{"empty", []int16{}},
		{"one sample", []int16{-7}},
		{"extremes", []int16{-32768, 32767, 0, 1, -1}},
		{"ramp", ramp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteWAV(&buf, tt.samples); err != nil {
				t.Fatal(err)
			}
			if want := wavFile(pcm8k, chunk("data", pcmData(tt.samples...))); !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("WriteWAV wrote\n%x\nwant\n%x", buf.Bytes(), want)
			}
			got, err := ReadWAV(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if firstDifference(got, tt.samples) >= 0 {
				t.Errorf("read back %d samples that differ", len(got))
			}
		})
	}
}

func TestReadWAVAccepts(t *testing.T) {
	samples := []int16{1, -2, 300, -32768}
	data := pcmData(samples...)
	streamed := slices.Concat([]byte("data\xff\xff\xff\xff"), data) // size unknown when written
	tests := []struct {
		name string
		file []byte
	}{
		{"plain", wavFile(pcm8k, chunk("data", data))},
		{"LIST before fmt, odd size", wavFile(chunk("LIST", []byte("INFOx")), pcm8k, chunk("data", data))},
		{"fact between fmt and data", wavFile(pcm8k, chunk("fact", []byte{4, 0, 0, 0}), chunk("data", data))},
		{"chunk after data", wavFile(pcm8k, chunk("data", data), chunk("LIST", []byte("INFO")))},
		{"fmt with extension size", wavFile(chunk("fmt ", slices.Concat(pcm8k[8:], []byte{0, 0})), chunk("data", data))},
		{"extensible PCM", wavFile(extensibleFmtChunk(1), chunk("data", data))},
		{"streamed data size", append(wavFile(pcm8k), streamed...)},
		{"odd last byte", wavFile(pcm8k, chunk("data", slices.Concat(data, []byte{0x55})))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadWAV(bytes.NewReader(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if firstDifference(got, samples) >= 0 {
				t.Errorf("got %v, want %v", got, samples)
			}
		})
	}
}

func TestReadWAVErrors(t *testing.T) {
	data := chunk("data", pcmData(1, 2))
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "wav: not a RIFF/WAVE file: too short"},
		{"text", []byte("hello, this is not audio"), "wav: not a RIFF/WAVE file"},
		{"AVI", chunk("RIFF", []byte("AVI LIST")), "wav: not a RIFF/WAVE file"},
		{"CD quality", wavFile(fmtChunk(1, 2, 44100, 16), data), "wav: want 8 kHz 16-bit mono PCM, got 44100 Hz 16-bit 2 channels"},
		{"16 kHz", wavFile(fmtChunk(1, 1, 16000, 16), data), "got 16000 Hz 16-bit 1 channel"},
		{"8-bit", wavFile(fmtChunk(1, 1, 8000, 8), data), "got 8000 Hz 8-bit 1 channel"},
		{"float", wavFile(fmtChunk(3, 1, 8000, 32), data), "got IEEE float (format 3) 8000 Hz 32-bit 1 channel"},
		{"A-law", wavFile(fmtChunk(6, 1, 8000, 8), data), "got A-law (format 6) 8000 Hz 8-bit 1 channel"},
		{"μ-law", wavFile(fmtChunk(7, 1, 8000, 8), data), "got μ-law (format 7)"},
		{"ADPCM", wavFile(fmtChunk(2, 1, 8000, 4), data), "got format 2 8000 Hz 4-bit 1 channel"},
		{"extensible float", wavFile(extensibleFmtChunk(3), data), "got IEEE float (format 3)"},
		{"no fmt", wavFile(chunk("LIST", []byte("INFO"))), "wav: no fmt chunk"},
		{"no data", wavFile(pcm8k, chunk("LIST", []byte("INFO"))), "wav: no data chunk"},
		{"data first", wavFile(data, pcm8k), "wav: data chunk before the fmt chunk"},
		{"short fmt", wavFile(chunk("fmt ", make([]byte, 14)), data), "wav: fmt chunk of 14 bytes"},
		{"truncated fmt", wavFile(pcm8k)[:30], "wav: truncated fmt chunk"},
		{"truncated LIST", wavFile(chunk("LIST", make([]byte, 100)))[:40], `wav: truncated "LIST" chunk`},
		{"truncated chunk header", append(wavFile(pcm8k), "da"...), "wav: truncated chunk header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadWAV(bytes.NewReader(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReadWAVTooLong(t *testing.T) {
	header := append(wavFile(pcm8k), "data\xff\xff\xff\xff"...)
	body := io.LimitReader(zeroReader{}, 2*maxWAVSamples+2)
	_, err := ReadWAV(io.MultiReader(bytes.NewReader(header), body))
	if err == nil || !strings.Contains(err.Error(), "wav: longer than 10 minutes") {
		t.Fatalf("error %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
