package tonespec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestParse(t *testing.T) {
	tests := []struct {
		spec string
		want Spec
	}{
		{"440", Spec{Segments: []Segment{{Freq1: 440}}}},
		{"350+440", Spec{Segments: []Segment{{Freq1: 350, Freq2: 440}}}},
		{"440/300,0/3700", Spec{Segments: []Segment{{Freq1: 440, Duration: 300 * ms}, {Duration: 3700 * ms}}}},
		{"!440/100", Spec{Once: true, Segments: []Segment{{Freq1: 440, Duration: 100 * ms}}}},
		{"0", Spec{Segments: []Segment{{}}}},
		{"0+0", Spec{Segments: []Segment{{}}}},
		{" 480+620/500 , 0/500 ", Spec{Segments: []Segment{{Freq1: 480, Freq2: 620, Duration: 500 * ms}, {Duration: 500 * ms}}}},
		{" ! 440 + 350 / 20 ", Spec{Once: true, Segments: []Segment{{Freq1: 440, Freq2: 350, Duration: 20 * ms}}}},
		{"0+440/20,3999", Spec{Segments: []Segment{{Freq2: 440, Duration: 20 * ms}, {Freq1: 3999}}}},
		{"440+0/1", Spec{Segments: []Segment{{Freq1: 440, Duration: ms}}}},
		{"0000000000440/00000000000000000000000000300", Spec{Segments: []Segment{{Freq1: 440, Duration: 300 * ms}}}},
		{"!425/200,0/200,425", Spec{Once: true, Segments: []Segment{{Freq1: 425, Duration: 200 * ms}, {Duration: 200 * ms}, {Freq1: 425}}}},
		{"!950/330,1400/330,1800/330,0/1000", Spec{Once: true, Segments: []Segment{
			{Freq1: 950, Duration: 330 * ms}, {Freq1: 1400, Duration: 330 * ms}, {Freq1: 1800, Duration: 330 * ms}, {Duration: time.Second}}}},
		{"440/60000", Spec{Segments: []Segment{{Freq1: 440, Duration: time.Minute}}}},
		{"440/30000,0/30000", Spec{Segments: []Segment{{Freq1: 440, Duration: 30 * time.Second}, {Duration: 30 * time.Second}}}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("String() = %q parses to %+v, %v", got.String(), again, err)
			}
		})
	}
}

// The texts config and media both report, after the key or spec they name.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec, want string
	}{
		{"", "no segments"},
		{"   ", "no segments"},
		{"!", "no segments"},
		{",", "segment 1: empty"},
		{"440,,0/100", "segment 2: empty"},
		{"440/100,", "segment 2: empty"},
		{"abc", `segment 1: frequency "abc" is not a whole number of Hz`},
		{"music.mp3", `segment 1: frequency "music.mp3" is not a whole number of Hz`},
		{"-440", `segment 1: frequency "-440" is not a whole number of Hz`},
		{"440.5", `segment 1: frequency "440.5" is not a whole number of Hz`},
		{"1e3/100", `segment 1: frequency "1e3" is not a whole number of Hz`},
		{"/300", "segment 1: missing frequency"},
		{"440+", "segment 1: missing frequency"},
		{"+440", "segment 1: missing frequency"},
		{"350+440+480", "segment 1: more than two frequencies"},
		{"440/", "segment 1: missing duration"},
		{"440/abc", `segment 1: duration "abc" is not a whole number of milliseconds`},
		{"440/-1", `segment 1: duration "-1" is not a whole number of milliseconds`},
		{"440/1.5", `segment 1: duration "1.5" is not a whole number of milliseconds`},
		{"440/100/200", `segment 1: duration "100/200" is not a whole number of milliseconds`},
		{"440/0", "segment 1: duration must be greater than 0 (leave out /MS to play forever)"},
		{"4000", "segment 1: frequency 4000 Hz is out of range (0 to 3999 Hz at 8 kHz sampling)"},
		{"440+9999/10", "segment 1: frequency 9999 Hz is out of range (0 to 3999 Hz at 8 kHz sampling)"},
		{"440/10,12345678901", "segment 2: frequency 12345678901 Hz is out of range (0 to 3999 Hz at 8 kHz sampling)"},
		{"440+440", "segment 1: both frequencies are 440 Hz"},
		{"440,0/100", "segment 1 plays forever (it has no /MS), so the segments after it would never play"},
		{"440,", "segment 2: empty"},
		{"440/100,!0/100", `segment 2: "!" is only allowed at the start of the spec, where it makes the whole list play once`},
		{"!!440", `segment 1: "!" is only allowed at the start of the spec, where it makes the whole list play once`},
		{"440*3/100", "segment 1: modulated tones (FREQ*FREQ) are not supported"},
		{"440/60001", "the timed segments last more than 1m0s in total"},
		{"440/40000,0/40000", "the timed segments last more than 1m0s in total"},
		{"440/9999999999", "the timed segments last more than 1m0s in total"},
		{"440/99999999999999999999999", "the timed segments last more than 1m0s in total"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := Parse(tt.spec)
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if want := "invalid tone spec: " + tt.want; err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if !reflect.DeepEqual(got, Spec{}) {
				t.Errorf("got %+v with the error", got)
			}
		})
	}
}

// Validate holds specs built in code to the limits Parse applies.
func TestValidate(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Segments: []Segment{{Freq1: 440}}}, ""},
		{Spec{}, "no segments"},
		{Spec{Segments: []Segment{{Freq1: -1}}}, "segment 1: frequency -1 Hz is out of range (0 to 3999 Hz at 8 kHz sampling)"},
		{Spec{Segments: []Segment{{Duration: ms}, {Freq2: MaxFreq + 1}}}, "segment 2: frequency 4000 Hz is out of range (0 to 3999 Hz at 8 kHz sampling)"},
		{Spec{Segments: []Segment{{Duration: 1500 * time.Microsecond}}}, "segment 1: duration 1.5ms is not a positive whole number of milliseconds"},
		{Spec{Segments: []Segment{{Duration: -ms}}}, "segment 1: duration -1ms is not a positive whole number of milliseconds"},
		{Spec{Segments: []Segment{{Duration: MaxTimed}, {Duration: time.Duration(1<<63-1) / ms * ms}}}, "the timed segments last more than 1m0s in total"},
	}
	for _, tt := range tests {
		if got := errString(tt.spec.Validate()); got != tt.want {
			t.Errorf("%+v.Validate() = %q; want %q", tt.spec, got, tt.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func FuzzParseToneSpec(f *testing.F) {
	// Seeds are in testdata/fuzz/FuzzParseToneSpec.
	f.Fuzz(func(t *testing.T, spec string) {
		ts, err := Parse(spec)
		if err != nil {
			if ts.Segments != nil || !strings.HasPrefix(err.Error(), "invalid tone spec: ") {
				t.Fatalf("error %q with %+v", err, ts)
			}
			return
		}
		if err := ts.Validate(); err != nil {
			t.Fatalf("%q parses to %+v, which fails Validate: %v", spec, ts, err)
		}
		again, err := Parse(ts.String())
		if err != nil || !reflect.DeepEqual(again, ts) {
			t.Fatalf("%q parses to %+v, its String %q to %+v, %v", spec, ts, ts.String(), again, err)
		}
	})
}
