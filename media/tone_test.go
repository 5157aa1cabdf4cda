package media

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"uad/media/tonespec"
)

// The grammar's frequency limit is what G.711 carries.
func TestToneSpecLimits(t *testing.T) {
	if tonespec.MaxFreq != G711Rate/2-1 {
		t.Errorf("tonespec.MaxFreq = %d; want %d", tonespec.MaxFreq, G711Rate/2-1)
	}
}

func TestNewToneClipPanicsOnInvalidSpec(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	NewToneClip(tonespec.Spec{Segments: []tonespec.Segment{{Freq1: 5000}}}, PCMU)
}

// readClip returns the samples of the clip's first frames, decoded.
func readClip(t testing.TB, clip *Clip, frames int) []int16 {
	t.Helper()
	cur := clip.Cursor()
	frame := make([]byte, G711FrameSize)
	samples := make([]int16, 0, frames*G711FrameSize)
	for i := range frames {
		if !cur.Next(frame) {
			t.Fatalf("clip ended after %d frames", i)
		}
		for _, b := range frame {
			samples = append(samples, DecodeSample(clip.Law(), b))
		}
	}
	return samples
}

func mustToneClip(t testing.TB, spec string, law Law) *Clip {
	t.Helper()
	ts, err := tonespec.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return NewToneClip(ts, law)
}

// toneSinePower is Goertzel's value for one tone of the clip: A²/2.
var toneSinePower = toneAmplitude * toneAmplitude / 2

func TestHoldToneCadence(t *testing.T) {
	const (
		cycle = 4 * G711Rate          // 4 s
		beep  = G711Rate * 300 / 1000 // 300 ms
	)
	for _, law := range []Law{PCMU, PCMA} {
		t.Run(law.String(), func(t *testing.T) {
			clip := mustToneClip(t, "440/300,0/3700", law)
			if len(clip.data) != cycle {
				t.Errorf("clip holds %d bytes, want %d", len(clip.data), cycle)
			}
			samples := readClip(t, clip, 2*cycle/G711FrameSize)
			silence := DecodeSample(law, law.Silence())
			for start := 0; start < len(samples); start += cycle {
				tone := samples[start : start+beep]
				if p := Goertzel(tone, 440, G711Rate); math.Abs(10*math.Log10(p/toneSinePower)) > 0.5 {
					t.Errorf("cycle at %d: 440 Hz power %.0f, want %.0f (-13 dBFS) within 0.5 dB", start, p, toneSinePower)
				}
				if p := Goertzel(tone, 1000, G711Rate); p > toneSinePower/1000 {
					t.Errorf("cycle at %d: 1000 Hz power %.0f in a 440 Hz beep", start, p)
				}
				// Every 20 ms frame of the beep carries the tone.
				for f := 0; f < beep; f += G711FrameSize {
					frame := tone[f : f+G711FrameSize]
					if p, total := Goertzel(frame, 440, G711Rate), meanSquare(frame); p < 0.5*toneSinePower || p < 0.9*total {
						t.Errorf("frame at %d ms: 440 Hz power %.0f of %.0f", (start+f)/8, p, total)
					}
				}
				for i, s := range samples[start+beep : start+cycle] {
					if s != silence {
						t.Fatalf("sample %d after the beep is %d, want silence", i, s)
					}
				}
			}
			if !slicesEqual(samples[:cycle], samples[cycle:]) {
				t.Error("the second 4 s differ from the first")
			}
		})
	}
}

func TestContinuousToneLoopsSeamlessly(t *testing.T) {
	for _, law := range []Law{PCMU, PCMA} {
		t.Run(law.String(), func(t *testing.T) {
			clip := mustToneClip(t, "350+440", law)
			const period = 800 // 350 Hz: 160 samples, 440 Hz: 200
			if len(clip.data) != period {
				t.Fatalf("table of %d samples, want %d", len(clip.data), period)
			}
			samples := readClip(t, clip, 100) // 2 s: 20 wraps
			maxDelta, maxDeltaAtWrap := 0, 0
			for n := 1; n < len(samples); n++ {
				d := intAbs(int(samples[n]) - int(samples[n-1]))
				if n%period == 0 {
					maxDeltaAtWrap = max(maxDeltaAtWrap, d)
				} else {
					maxDelta = max(maxDelta, d)
				}
			}
			if maxDeltaAtWrap > maxDelta {
				t.Errorf("step at the wrap %d, elsewhere at most %d", maxDeltaAtWrap, maxDelta)
			}
			// The stream is the continuous sine, sample for sample.
			for n, s := range samples {
				want := toneAmplitude * (math.Sin(2*math.Pi*350*float64(n)/G711Rate) + math.Sin(2*math.Pi*440*float64(n)/G711Rate))
				if err := math.Abs(float64(s) - want); err > 9+math.Abs(want)/20 { // A-law has no zero: ±8
					t.Fatalf("sample %d = %d, want %.0f", n, s, want)
				}
			}
			for _, f := range []float64{350, 440} {
				if p := Goertzel(samples, f, G711Rate); math.Abs(10*math.Log10(p/toneSinePower)) > 0.5 {
					t.Errorf("%v Hz power %.0f, want %.0f", f, p, toneSinePower)
				}
			}
			peak := 0
			for _, s := range samples {
				peak = max(peak, intAbs(int(s)))
			}
			if limit := int(2.1 * toneAmplitude); peak > limit {
				t.Errorf("peak %d, above two tones at -13 dBFS (%d)", peak, limit)
			}
		})
	}
}

func TestTonePhaseCarriesAcrossBoundaries(t *testing.T) {
	// Where the phase allows, splitting a tone into segments changes nothing.
	tests := []struct{ split, whole string }{
		{"350+440/100,350+440/100", "350+440"},                           // across segments and the loop
		{"440/1000", "440"},                                              // 440 whole periods a loop
		{"!440/100,440/33,440", "440"},                                   // into the forever segment
		{"!350+440/20,440+350/20,350+440", "350+440"},                    // order of frequencies
		{"440+350/100,350+440/100", "350+440/100,440+350/100"},           // same cycle, either way
		{"!0/60,350+440/40,350+440", "!0/60,350+440"},                    // timed then forever
		{"1000/1,1000/1,1000/1,1000/1", "1000"},                          // 1 ms is 1 period of 1 kHz
		{"!3999/1000,3999", "3999"},                                      // 1 s is a whole period of anything
		{"!0/20,3000+1000/20,1000+3000", "!0/20,1000+3000/20,1000+3000"}, // swapped pair
	}
	for _, tt := range tests {
		t.Run(tt.split, func(t *testing.T) {
			a := readClip(t, mustToneClip(t, tt.split, PCMU), 150)
			b := readClip(t, mustToneClip(t, tt.whole, PCMU), 150)
			if i := firstDifference(a, b); i >= 0 {
				t.Errorf("sample %d: %q gives %d, %q gives %d", i, tt.split, a[i], tt.whole, b[i])
			}
		})
	}
}

func TestToneEndsWithoutClick(t *testing.T) {
	tests := []struct {
		spec string
		end  int // sample where the tone stops
	}{
		{"440/310,0/3690", 2480},      // 12.4 periods: stops mid-period
		{"440/33,0/100", 264},         // 14.52 periods
		{"440/1003", 8024},            // the loop would break the phase
		{"350+440/301,440/100", 2408}, // 350 Hz stops, 440 Hz goes on
		{"!440/25", 200},              // the clip ends
		{"440/3,0/10", 24},            // shorter than a fade
		{"440+350/201,620/200,0/100", 1608},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			samples := readClip(t, mustToneClip(t, tt.spec, PCMU), 2)
			if tt.end >= len(samples) {
				samples = readClip(t, mustToneClip(t, tt.spec, PCMU), tt.end/G711FrameSize+2)
			}
			maxDelta := 0
			for n := 1; n < tt.end; n++ {
				maxDelta = max(maxDelta, intAbs(int(samples[n])-int(samples[n-1])))
			}
			if d := intAbs(int(samples[tt.end]) - int(samples[tt.end-1])); d > maxDelta {
				t.Errorf("step of %d where the tone stops, at most %d before", d, maxDelta)
			}
		})
	}
	// A whole 440 Hz beep fades to near zero: no step to the silence after it.
	samples := readClip(t, mustToneClip(t, "440/310,0/3690", PCMU), 16)
	if last := intAbs(int(samples[2479])); last > int(toneAmplitude/10) {
		t.Errorf("last sample of the beep is %d, want near 0", last)
	}
}

func TestToneOnce(t *testing.T) {
	tests := []struct {
		spec   string
		frames int // frames before Next reports false
		tone   int // samples of tone, then silence
	}{
		{"!440/100", 5, 800},
		{"!440/25", 2, 200},
		{"!440/20,0/20,440/20", 3, 480},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			for _, law := range []Law{PCMU, PCMA} {
				clip := mustToneClip(t, tt.spec, law)
				samples := readClip(t, clip, tt.frames)
				if p := Goertzel(samples[:160], 440, G711Rate); p < 0.5*toneSinePower {
					t.Errorf("%v: no tone in the first frame (power %.0f)", law, p)
				}
				for i, s := range samples[tt.tone:] {
					if s != DecodeSample(law, law.Silence()) {
						t.Fatalf("%v: sample %d after the tone is %d, want silence", law, tt.tone+i, s)
					}
				}
				cur := clip.Cursor()
				frame := make([]byte, G711FrameSize)
				for range tt.frames {
					cur.Next(frame)
				}
				for range 3 {
					for i := range frame {
						frame[i] = 0xAA
					}
					if cur.Next(frame) {
						t.Fatalf("%v: Next is still true after %d frames", law, tt.frames)
					}
					if !bytes.Equal(frame, bytes.Repeat([]byte{0xAA}, G711FrameSize)) {
						t.Fatalf("%v: Next wrote into dst after the end", law)
					}
				}
			}
		})
	}
}

func TestToneOnceThenForever(t *testing.T) {
	// "!" stops the list looping, but a segment without /MS still plays forever.
	clip := mustToneClip(t, "!0/100,350+440", PCMU)
	samples := readClip(t, clip, 500)
	for i, s := range samples[:800] {
		if s != 0 {
			t.Fatalf("sample %d of the leading silence is %d", i, s)
		}
	}
	tail := samples[800:]
	for n := 800; n < len(tail); n++ {
		if tail[n] != tail[n-800] {
			t.Fatalf("sample %d does not repeat the one 800 before", 800+n)
		}
	}
}

func TestSilentToneClip(t *testing.T) {
	for _, law := range []Law{PCMU, PCMA} {
		clip := mustToneClip(t, "0", law)
		cur := clip.Cursor()
		frame := make([]byte, G711FrameSize)
		for range 10 {
			if !cur.Next(frame) || !bytes.Equal(frame, bytes.Repeat([]byte{law.Silence()}, G711FrameSize)) {
				t.Fatalf("%v: %x, want silence", law, frame)
			}
		}
	}
}

func TestNonFrameAlignedLoop(t *testing.T) {
	// 30 ms: a cycle is 240 samples, one and a half frames.
	samples := readClip(t, mustToneClip(t, "440/25,0/5", PCMA), 12)
	for n := 240; n < len(samples); n++ {
		if samples[n] != samples[n-240] {
			t.Fatalf("sample %d does not repeat the one 240 before", n)
		}
	}
}

func TestWAVClipLoops(t *testing.T) {
	file := make([]int16, 1000) // not a whole number of frames
	for i := range file {
		file[i] = int16(i*37 - 16000)
	}
	for _, law := range []Law{PCMU, PCMA} {
		samples := readClip(t, NewWAVClip(file, law), 30)
		for n, s := range samples {
			if want := DecodeSample(law, EncodeSample(law, file[n%len(file)])); s != want {
				t.Fatalf("%v: sample %d = %d, want %d", law, n, s, want)
			}
		}
		for i, s := range readClip(t, NewWAVClip(nil, law), 3) {
			if s != DecodeSample(law, law.Silence()) {
				t.Fatalf("%v: empty file: sample %d = %d, want silence", law, i, s)
			}
		}
	}
}

func TestZeroCursor(t *testing.T) {
	var cur ClipCursor
	if cur.Next(make([]byte, G711FrameSize)) {
		t.Error("a zero ClipCursor produced a frame")
	}
}

func TestLoadClip(t *testing.T) {
	dir := t.TempDir()
	file := make([]int16, 800)
	for i := range file {
		file[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/G711Rate))
	}
	writeFile := func(name string, content []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var buf bytes.Buffer
	if err := WriteWAV(&buf, file); err != nil {
		t.Fatal(err)
	}
	good := writeFile("moh.wav", buf.Bytes())
	upper := writeFile("MOH.WAV", buf.Bytes())
	buf.Reset()
	if err := WriteWAV(&buf, nil); err != nil {
		t.Fatal(err)
	}
	empty := writeFile("empty.wav", buf.Bytes())
	stereo := writeFile("stereo.wav", wavFile(fmtChunk(1, 2, 44100, 16), chunk("data", make([]byte, 8))))

	for _, path := range []string{good, upper} {
		clip, err := LoadClip(path, PCMA)
		if err != nil {
			t.Fatal(err)
		}
		if clip.Law() != PCMA {
			t.Errorf("clip law %v", clip.Law())
		}
		samples := readClip(t, clip, 10)
		if p := Goertzel(samples, 1000, G711Rate); p < 0.9*8000*8000/2 {
			t.Errorf("%s: 1000 Hz power %.0f", path, p)
		}
	}
	clip, err := LoadClip("440/300,0/3700", PCMU)
	if err != nil || len(clip.data) != 4*G711Rate {
		t.Errorf("tone spec: %v", err)
	}

	errorTests := []struct {
		spec string
		law  Law
		want string
	}{
		{filepath.Join(dir, "missing.wav"), PCMU, "no such file"},
		{stereo, PCMU, stereo + ": wav: want 8 kHz 16-bit mono PCM, got 44100 Hz 16-bit 2 channels"},
		{empty, PCMU, empty + ": the file has no audio"},
		{"440/abc", PCMU, `invalid tone spec: segment 1: duration "abc" is not a whole number of milliseconds`},
		{"moh", PCMU, `invalid tone spec: segment 1: frequency "moh" is not a whole number of Hz`},
		{"440", Law(1), "unknown codec Law(1)"},
	}
	for _, tt := range errorTests {
		if _, err := LoadClip(tt.spec, tt.law); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadClip(%q): error %v, want %q", tt.spec, err, tt.want)
		}
	}
}

func TestClipNextAllocatesNothing(t *testing.T) {
	finished := mustToneClip(t, "!440/20", PCMU).Cursor()
	frame := make([]byte, G711FrameSize)
	finished.Next(frame)
	cursors := map[string]ClipCursor{
		"hold tone":    mustToneClip(t, "440/300,0/3700", PCMU).Cursor(),
		"dial tone":    mustToneClip(t, "350+440", PCMA).Cursor(),
		"short loop":   mustToneClip(t, "440/3,0/2", PCMA).Cursor(),
		"wav":          NewWAVClip(make([]int16, 1234), PCMU).Cursor(),
		"once, ending": mustToneClip(t, "!440/10000", PCMU).Cursor(),
		"finished":     finished,
	}
	for name, cur := range cursors {
		if allocs := testing.AllocsPerRun(1000, func() { cur.Next(frame) }); allocs != 0 {
			t.Errorf("%s: Next allocates %v times a frame", name, allocs)
		}
	}
}

func BenchmarkClipNext(b *testing.B) {
	cur := mustToneClip(b, "440/300,0/3700", PCMU).Cursor()
	frame := make([]byte, G711FrameSize)
	b.ReportAllocs()
	b.SetBytes(G711FrameSize)
	for b.Loop() {
		cur.Next(frame)
	}
}

func TestGoertzel(t *testing.T) {
	sine := func(freq, amplitude float64, n int) []int16 {
		s := make([]int16, n)
		for i := range s {
			s[i] = int16(math.Round(amplitude * math.Sin(2*math.Pi*freq*float64(i)/G711Rate)))
		}
		return s
	}
	tests := []struct {
		name    string
		samples []int16
		freq    float64
		want    float64
	}{
		{"on frequency", sine(440, 1000, 8000), 440, 1000 * 1000 / 2},
		{"one 20 ms frame", sine(500, 1000, 160), 500, 1000 * 1000 / 2},
		{"other frequency", sine(440, 1000, 8000), 1000, 0},
		{"neighbour tone", sine(350, 1000, 8000), 440, 0},
		{"silence", make([]int16, 160), 440, 0},
		{"empty", nil, 440, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Goertzel(tt.samples, tt.freq, G711Rate)
			if math.Abs(got-tt.want) > 0.01*1000*1000/2 {
				t.Errorf("Goertzel = %.1f, want %.1f", got, tt.want)
			}
		})
	}
}

// FuzzToneClip renders what tonespec.Parse accepts; the grammar has its
// own target there.
func FuzzToneClip(f *testing.F) {
	for _, spec := range []string{"440", "350+440", "440/300,0/3700", "!440/100", "!425/7,0/13,425+3999", "1/1,0+1/1,2"} {
		f.Add(spec)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ts, err := tonespec.Parse(spec)
		if err != nil {
			return
		}
		var total time.Duration
		for _, seg := range ts.Segments {
			total += seg.Duration
		}
		if total > 2*time.Second { // rendering long clips would slow the fuzzer down
			return
		}
		for _, law := range []Law{PCMU, G722} {
			clip := NewToneClip(ts, law)
			if len(clip.data) != len(NewToneClip(ts, PCMA).data) {
				t.Fatalf("%v clip of %d bytes, a G.711 one of %d", law, len(clip.data), len(NewToneClip(ts, PCMA).data))
			}
			cur := clip.Cursor()
			frame := make([]byte, G711FrameSize)
			for range 20 {
				cur.Next(frame)
			}
		}
	})
}

func meanSquare(samples []int16) float64 {
	var sum float64
	for _, s := range samples {
		sum += float64(s) * float64(s)
	}
	return sum / float64(len(samples))
}

func slicesEqual(a, b []int16) bool { return firstDifference(a, b) < 0 }

// firstDifference returns the first index where a and b differ, or -1.
func firstDifference(a, b []int16) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
