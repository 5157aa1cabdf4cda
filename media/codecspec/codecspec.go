// Package codecspec parses the entries of media.codecs: an RTP audio
// format named the way SDP's rtpmap names it, NAME/RATE[/CHANNELS] (e.g.
// opus/48000/2, G729/8000), or the bare name of a codec whose rate is
// fixed (PCMU, PCMA, G722). It has no other dependency, so config can
// validate with it.
package codecspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Spec is one codec: its encoding name, RTP clock rate and channel count.
type Spec struct {
	Name     string
	Rate     int
	Channels int
}

// Encoded are the codecs uad encodes and decodes itself, by upper-case
// name: their RTP clock rate (RFC 3551; G.722's is 8000 though it samples
// at 16 kHz) and static payload type.
var Encoded = map[string]struct {
	Rate int
	PT   uint8
}{
	"PCMU": {8000, 0},
	"PCMA": {8000, 8},
	"G722": {8000, 9},
}

// maxChannels bounds CHANNELS: more is surely a mistake for a call.
const maxChannels = 8

// Parse reads one media.codecs entry.
func Parse(s string) (Spec, error) {
	if strings.TrimSpace(s) == "" {
		return Spec{}, errors.New("empty codec: want NAME/RATE[/CHANNELS], e.g. opus/48000/2")
	}
	parts := strings.Split(s, "/")
	name := parts[0]
	if !validName(name) || len(parts) > 3 {
		return Spec{}, fmt.Errorf("%q: want NAME/RATE[/CHANNELS], e.g. opus/48000/2", s)
	}
	known, isKnown := Encoded[strings.ToUpper(name)]
	if strings.EqualFold(name, "telephone-event") {
		return Spec{}, fmt.Errorf("%q: telephone-event (DTMF) is always offered; list only audio codecs", s)
	}
	spec := Spec{Name: name, Channels: 1}
	if isKnown {
		spec.Name = strings.ToUpper(name)
	}
	if len(parts) == 1 {
		if !isKnown {
			return Spec{}, fmt.Errorf("%q: give its RTP clock rate, NAME/RATE[/CHANNELS], e.g. %s/8000", s, name)
		}
		spec.Rate = known.Rate
		return spec, nil
	}
	rate, err := strconv.Atoi(parts[1])
	if err != nil || rate <= 0 {
		return Spec{}, fmt.Errorf("%q: rate %q is not a whole number of Hz", s, parts[1])
	}
	spec.Rate = rate
	if len(parts) == 3 {
		ch, err := strconv.Atoi(parts[2])
		if err != nil || ch < 1 || ch > maxChannels {
			return Spec{}, fmt.Errorf("%q: channels %q: want 1 to %d", s, parts[2], maxChannels)
		}
		spec.Channels = ch
	}
	if isKnown && (rate != known.Rate || spec.Channels != 1) {
		return Spec{}, fmt.Errorf("%q: %s is %s/%d, mono (RFC 3551)", s, spec.Name, spec.Name, known.Rate)
	}
	return spec, nil
}

// validName reports whether name is an RTP encoding name: a token of
// letters, digits and "-", "_" or ".".
func validName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// IsEncoded reports whether uad encodes and decodes the codec itself;
// others are passed through untouched.
func (s Spec) IsEncoded() bool {
	_, ok := Encoded[strings.ToUpper(s.Name)]
	return ok
}

// String writes the spec the way Parse reads it: a codec uad encodes by
// its name alone, others as NAME/RATE, with /CHANNELS when more than one.
func (s Spec) String() string {
	if s.IsEncoded() {
		return s.Name
	}
	out := s.Name + "/" + strconv.Itoa(s.Rate)
	if s.Channels > 1 {
		out += "/" + strconv.Itoa(s.Channels)
	}
	return out
}

// Same reports whether two specs name one codec (names are
// case-insensitive, RFC 4855 §3).
func (s Spec) Same(o Spec) bool {
	return strings.EqualFold(s.Name, o.Name) && s.Rate == o.Rate && s.Channels == o.Channels
}
