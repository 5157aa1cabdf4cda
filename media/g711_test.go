package media

import (
	"testing"

	"github.com/zaf/g711"
)

func TestLawNames(t *testing.T) {
	tests := []struct {
		law     Law
		name    string
		silence byte
	}{
		{PCMU, "PCMU", 0xFF},
		{PCMA, "PCMA", 0xD5},
		{G722, "G722", 0xFA},
	}
	for _, tt := range tests {
		if got := tt.law.String(); got != tt.name {
			t.Errorf("Law(%d).String() = %q, want %q", uint8(tt.law), got, tt.name)
		}
		if got := tt.law.Silence(); got != tt.silence {
			t.Errorf("%v.Silence() = %#x, want %#x", tt.law, got, tt.silence)
		}
	}
	if got := Law(10).String(); got != "Law(10)" {
		t.Errorf("Law(10).String() = %q", got)
	}
}

func TestSampleRoundTrip(t *testing.T) {
	// G.711 keeps about 4 bits of mantissa: the error grows with the level.
	// μ-law also clips above 32124.
	tests := []struct {
		law      Law
		absolute int     // allowed error near zero
		relative float64 // allowed error as a fraction of the level
	}{
		{PCMU, 8, 1.0 / 20},
		{PCMA, 8, 1.0 / 32},
	}
	for _, tt := range tests {
		t.Run(tt.law.String(), func(t *testing.T) {
			for s := -32768; s <= 32767; s++ {
				got := int(DecodeSample(tt.law, EncodeSample(tt.law, int16(s))))
				bound := tt.absolute + int(tt.relative*float64(intAbs(s)))
				if intAbs(got-s) > bound {
					t.Fatalf("decode(encode(%d)) = %d, error %d > %d", s, got, intAbs(got-s), bound)
				}
			}
		})
	}
}

func TestByteRoundTrip(t *testing.T) {
	for _, law := range []Law{PCMU, PCMA} {
		for b := range 256 {
			got := EncodeSample(law, DecodeSample(law, byte(b)))
			// μ-law has two zeros; 0x7F (-0) encodes back as 0xFF (+0).
			want := byte(b)
			if law == PCMU && b == 0x7F {
				want = 0xFF
			}
			if got != want {
				t.Errorf("%v: encode(decode(%#x)) = %#x", law, b, got)
			}
		}
	}
}

func TestTranscode(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		from, to Law
		itu      func(uint8) uint8 // G.711's own conversion table, in the library
	}{
		{PCMU, PCMA, g711.Ulaw2AlawFrame},
		{PCMA, PCMU, g711.Alaw2UlawFrame},
		{PCMU, PCMU, nil},
		{PCMA, PCMA, nil},
	}
	for _, tt := range tests {
		t.Run(tt.from.String()+"-"+tt.to.String(), func(t *testing.T) {
			dst := make([]byte, len(all)+3)
			Transcode(dst, all, tt.from, tt.to)
			for b, got := range dst[:len(all)] {
				want := EncodeSample(tt.to, DecodeSample(tt.from, byte(b)))
				if tt.from == tt.to {
					want = byte(b)
				}
				if got != want {
					t.Errorf("byte %#x: got %#x, decode→encode gives %#x", b, got, want)
				}
				if tt.itu != nil && got != tt.itu(byte(b)) {
					t.Errorf("byte %#x: got %#x, G.711 table gives %#x", b, got, tt.itu(byte(b)))
				}
			}
			if dst[len(all)] != 0 {
				t.Error("Transcode wrote past len(src)")
			}

			inPlace := append([]byte(nil), all...)
			Transcode(inPlace, inPlace, tt.from, tt.to)
			if string(inPlace) != string(dst[:len(all)]) {
				t.Error("in-place Transcode differs")
			}

			frame := make([]byte, G711FrameSize)
			if allocs := testing.AllocsPerRun(100, func() { Transcode(frame, all[:G711FrameSize], tt.from, tt.to) }); allocs != 0 {
				t.Errorf("Transcode allocates %v times", allocs)
			}
		})
	}
}

func TestUnknownLawPanics(t *testing.T) {
	tests := map[string]func(){
		"EncodeSample": func() { EncodeSample(Law(3), 0) },
		"DecodeSample": func() { DecodeSample(Law(3), 0) },
		"Transcode":    func() { Transcode(make([]byte, 1), []byte{0}, PCMU, Law(3)) },
		"short dst":    func() { Transcode(make([]byte, 1), []byte{0, 0}, PCMU, PCMA) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func BenchmarkTranscode(b *testing.B) {
	src := make([]byte, G711FrameSize)
	dst := make([]byte, G711FrameSize)
	b.ReportAllocs()
	for b.Loop() {
		Transcode(dst, src, PCMU, PCMA)
	}
}

func intAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
