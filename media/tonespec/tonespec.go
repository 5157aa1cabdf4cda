// Package tonespec is the grammar of uad's tone specs, a subset of
// Asterisk's indications.conf syntax: comma-separated segments
// FREQ[+FREQ2][/MS], played in order and then again from the first unless
// the spec starts with "!". Frequency 0 is silence, and a segment without
// /MS plays forever, so only the last may leave it out.
//
// It imports nothing of uad, so that config can check a spec with the very
// rules media renders it by.
package tonespec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	// MaxFreq is the highest frequency G.711's 8 kHz sampling carries.
	MaxFreq = 3999
	// MaxTimed bounds the timed segments of a spec together, since media
	// holds a tone's audio whole (8 KB a second).
	MaxTimed = time.Minute
)

// maxDigits keeps numbers far beyond any valid value from overflowing.
const maxDigits = 9

// Spec is a parsed tone spec.
type Spec struct {
	Segments []Segment
	Once     bool // the spec started with "!": the list plays once
}

// Segment is one FREQ[+FREQ2][/MS] element of a tone spec.
type Segment struct {
	Freq1, Freq2 int           // Hz; 0 is no tone, so both 0 is silence
	Duration     time.Duration // whole milliseconds; 0 plays forever
}

// Parse parses a tone spec such as "350+440" or "!440/300,0/3700". Spaces
// around segments and numbers are ignored. Errors start with "invalid tone
// spec" and do not repeat spec: the caller says where it came from.
func Parse(spec string) (Spec, error) {
	body, once := strings.CutPrefix(strings.TrimSpace(spec), "!")
	if strings.TrimSpace(body) == "" {
		return Spec{}, invalid(errors.New("no segments"))
	}
	elems := strings.Split(body, ",")
	s := Spec{Once: once, Segments: make([]Segment, 0, len(elems))}
	for i, elem := range elems {
		seg, err := parseSegment(strings.TrimSpace(elem))
		if err != nil {
			return Spec{}, invalid(fmt.Errorf("segment %d: %w", i+1, err))
		}
		s.Segments = append(s.Segments, seg)
	}
	if err := s.Validate(); err != nil {
		return Spec{}, invalid(err)
	}
	return s, nil
}

func invalid(err error) error {
	return fmt.Errorf("invalid tone spec: %w", err)
}

// parseSegment checks the syntax of one element; Validate checks ranges.
func parseSegment(elem string) (Segment, error) {
	var seg Segment
	switch {
	case elem == "":
		return seg, errors.New("empty")
	case strings.Contains(elem, "!"):
		return seg, errors.New(`"!" is only allowed at the start of the spec, where it makes the whole list play once`)
	case strings.Contains(elem, "*"):
		return seg, errors.New("modulated tones (FREQ*FREQ) are not supported")
	}
	freqs, ms, timed := strings.Cut(elem, "/")
	if timed {
		n, err := parseNumber(ms, "duration", "milliseconds")
		if err != nil {
			return seg, err
		}
		switch {
		case n < 0: // Validate reports it as too long
			seg.Duration = MaxTimed + time.Millisecond
		case n == 0:
			return seg, errors.New("duration must be greater than 0 (leave out /MS to play forever)")
		default:
			seg.Duration = time.Duration(n) * time.Millisecond
		}
	}
	if strings.Count(freqs, "+") > 1 {
		return seg, errors.New("more than two frequencies")
	}
	f1, f2, two := strings.Cut(freqs, "+")
	var err error
	if seg.Freq1, err = parseFreq(f1); err != nil {
		return seg, err
	}
	if two {
		if seg.Freq2, err = parseFreq(f2); err != nil {
			return seg, err
		}
	}
	return seg, nil
}

func parseFreq(s string) (int, error) {
	n, err := parseNumber(s, "frequency", "Hz")
	if err == nil && n < 0 {
		err = freqRangeError(strings.TrimSpace(s))
	}
	return n, err
}

func freqRangeError(f string) error {
	return fmt.Errorf("frequency %s Hz is out of range (0 to %d Hz at 8 kHz sampling)", f, MaxFreq)
}

// parseNumber parses a decimal integer of digits only, without the sign
// strconv.Atoi would let through. It returns -1 for a number too long to be
// in range.
func parseNumber(s, what, unit string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing %s", what)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s %q is not a whole number of %s", what, s, unit)
		}
	}
	if len(strings.TrimLeft(s, "0")) > maxDigits {
		return -1, nil
	}
	return strconv.Atoi(s)
}

// Validate returns an error unless s is a spec Parse could return: at least
// one segment, frequencies from 0 to MaxFreq, durations in whole
// milliseconds, only the last segment playing forever, and at most MaxTimed
// of timed segments.
func (s Spec) Validate() error {
	if len(s.Segments) == 0 {
		return errors.New("no segments")
	}
	var timed time.Duration
	for i, seg := range s.Segments {
		n := i + 1
		for _, f := range [...]int{seg.Freq1, seg.Freq2} {
			if f < 0 || f > MaxFreq {
				return fmt.Errorf("segment %d: %w", n, freqRangeError(strconv.Itoa(f)))
			}
		}
		if seg.Freq1 != 0 && seg.Freq1 == seg.Freq2 {
			return fmt.Errorf("segment %d: both frequencies are %d Hz", n, seg.Freq1)
		}
		if seg.Duration < 0 || seg.Duration%time.Millisecond != 0 {
			return fmt.Errorf("segment %d: duration %v is not a positive whole number of milliseconds", n, seg.Duration)
		}
		if seg.Duration == 0 && n < len(s.Segments) {
			return fmt.Errorf("segment %d plays forever (it has no /MS), so the segments after it would never play", n)
		}
		timed += seg.Duration
		if seg.Duration > MaxTimed || timed > MaxTimed { // the first catches an overflowed sum
			return fmt.Errorf("the timed segments last more than %v in total", MaxTimed)
		}
	}
	return nil
}

// String formats s in tone spec syntax; Parse reads it back.
func (s Spec) String() string {
	var b strings.Builder
	if s.Once {
		b.WriteByte('!')
	}
	for i, seg := range s.Segments {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(seg.String())
	}
	return b.String()
}

// String formats seg as FREQ[+FREQ2][/MS], leaving out a second frequency
// of 0.
func (seg Segment) String() string {
	out := strconv.Itoa(seg.Freq1)
	if seg.Freq2 != 0 {
		out += "+" + strconv.Itoa(seg.Freq2)
	}
	if seg.Duration != 0 {
		out += "/" + strconv.FormatInt(int64(seg.Duration/time.Millisecond), 10)
	}
	return out
}
