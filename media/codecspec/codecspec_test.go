package codecspec

import "testing"

func TestParse(t *testing.T) {
	good := []struct {
		in, canonical string
		encoded       bool
	}{
		{"PCMU", "PCMU", true},
		{"pcma", "PCMA", true},
		{"G722", "G722", true},
		{"g722/8000", "G722", true},
		{"opus/48000/2", "opus/48000/2", false},
		{"G729/8000", "G729/8000", false},
		{"G729/8000/1", "G729/8000", false},
		{"AMR-WB/16000", "AMR-WB/16000", false},
	}
	for _, tt := range good {
		s, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if s.String() != tt.canonical || s.IsEncoded() != tt.encoded {
			t.Errorf("Parse(%q) = %v (encoded %v), want %v (%v)", tt.in, s, s.IsEncoded(), tt.canonical, tt.encoded)
		}
	}
	bad := []struct{ in, want string }{
		{"", "empty codec: want NAME/RATE[/CHANNELS], e.g. opus/48000/2"},
		{"G729", `"G729": give its RTP clock rate, NAME/RATE[/CHANNELS], e.g. G729/8000`},
		{"op us/48000", `"op us/48000": want NAME/RATE[/CHANNELS], e.g. opus/48000/2`},
		{"opus/48000/2/1", `"opus/48000/2/1": want NAME/RATE[/CHANNELS], e.g. opus/48000/2`},
		{"/8000", `"/8000": want NAME/RATE[/CHANNELS], e.g. opus/48000/2`},
		{"opus/fast", `"opus/fast": rate "fast" is not a whole number of Hz`},
		{"opus/0", `"opus/0": rate "0" is not a whole number of Hz`},
		{"opus/48000/0", `"opus/48000/0": channels "0": want 1 to 8`},
		{"G722/16000", `"G722/16000": G722 is G722/8000, mono (RFC 3551)`},
		{"PCMU/8000/2", `"PCMU/8000/2": PCMU is PCMU/8000, mono (RFC 3551)`},
		{"telephone-event/8000", `"telephone-event/8000": telephone-event (DTMF) is always offered; list only audio codecs`},
	}
	for _, tt := range bad {
		if _, err := Parse(tt.in); err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q): error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestSame(t *testing.T) {
	a, _ := Parse("OPUS/48000/2")
	b, _ := Parse("opus/48000/2")
	c, _ := Parse("opus/48000")
	if !a.Same(b) || a.Same(c) {
		t.Errorf("Same: %v~%v %v, %v~%v %v", a, b, a.Same(b), a, c, a.Same(c))
	}
}

// Whatever parses is written back in a form that parses to the same codec.
func FuzzParseCodec(f *testing.F) {
	for _, s := range []string{"PCMU", "g722/8000", "opus/48000/2", "G729/8000/1", "x/1/9", "telephone-event/8000", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(spec.String())
		if err != nil || !again.Same(spec) || again.String() != spec.String() {
			t.Fatalf("Parse(%q) = %v, written %q, parsed again %v (%v)", s, spec, spec.String(), again, err)
		}
	})
}
