package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The limits of a tone spec, the same media holds the tone it builds to.
const (
	maxToneFreq  = 3999        // Hz: the highest an 8 kHz stream carries
	maxToneTimed = time.Minute // all timed segments together
)

// checkToneSpec checks the syntax of a tone spec: an optional leading "!"
// (play once instead of looping), then comma-separated segments
// FREQ[+FREQ2][/MS], where frequency 0 is silence and a segment without
// /MS plays forever, so only the last may leave it out.
func checkToneSpec(spec string) error {
	body := strings.TrimPrefix(strings.TrimSpace(spec), "!")
	segments := strings.Split(body, ",")
	var timed time.Duration
	for i, seg := range segments {
		n := i + 1
		ms, err := checkToneSegment(strings.TrimSpace(seg))
		if err != nil {
			return fmt.Errorf("segment %d: %w", n, err)
		}
		if ms == 0 && n < len(segments) {
			return fmt.Errorf("segment %d plays forever (it has no /MS), so the ones after it never play", n)
		}
		timed += time.Duration(ms) * time.Millisecond
	}
	if timed > maxToneTimed {
		return fmt.Errorf("the timed segments last more than %v in total", maxToneTimed)
	}
	return nil
}

// checkToneSegment checks one FREQ[+FREQ2][/MS] and returns MS, 0 if absent.
func checkToneSegment(seg string) (ms int, err error) {
	if seg == "" {
		return 0, errors.New("empty")
	}
	freqs, duration, timed := strings.Cut(seg, "/")
	if timed {
		if ms, err = toneNumber(duration, "duration"); err != nil {
			return 0, err
		}
		if ms == 0 {
			return 0, errors.New("duration must be greater than 0 (leave out /MS to play forever)")
		}
	}
	if strings.Count(freqs, "+") > 1 {
		return 0, errors.New("more than two frequencies")
	}
	first, second, dual := strings.Cut(freqs, "+")
	f1, err := toneFrequency(first)
	if err != nil {
		return 0, err
	}
	if dual {
		f2, err := toneFrequency(second)
		if err != nil {
			return 0, err
		}
		if f1 != 0 && f1 == f2 {
			return 0, fmt.Errorf("both frequencies are %d Hz", f1)
		}
	}
	return ms, nil
}

// toneFrequency parses a frequency in Hz, 0 (silence) to maxToneFreq.
func toneFrequency(s string) (int, error) {
	f, err := toneNumber(s, "frequency")
	if err == nil && f > maxToneFreq {
		err = fmt.Errorf("frequency %d Hz is out of range (0 to %d)", f, maxToneFreq)
	}
	return f, err
}

// toneNumber parses a whole decimal number, without the sign that
// strconv.Atoi would let through.
func toneNumber(s, what string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing %s", what)
	}
	if len(s) > 9 { // far out of range, and no overflow below
		return 0, fmt.Errorf("%s %s is too large", what, s)
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s %q is not a whole number", what, s)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}
