package media

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"uad/media/codecspec"
)

// Codecs uad does not encode (media.codecs entries such as opus/48000/2)
// are passed through: offered, accepted, and their payloads forwarded
// untouched. Each gets a Law of its own from firstPassthrough up, so that
// code that carries a Law carries them too; Known reports false for them.
const (
	firstPassthrough = 128
	maxPassthrough   = 255 - firstPassthrough + 1
)

var (
	passthroughMu sync.Mutex
	// passthrough holds the specs by Law-firstPassthrough; it only grows,
	// and readers take the current slice without a lock.
	passthrough atomic.Pointer[[]codecspec.Spec]
)

// ErrTooManyCodecs is returned when more distinct pass-through codecs are
// named than a Law can number.
var ErrTooManyCodecs = errors.New("media: too many distinct pass-through codecs")

// CodecLaw returns the Law that stands for a media.codecs entry: the codec
// uad encodes, or a pass-through codec (the same Law each time it is named).
func CodecLaw(spec codecspec.Spec) (Law, error) {
	if l, ok := encodedLaw(spec.Name); ok {
		return l, nil
	}
	if l, ok := passthroughLaw(spec.Name, spec.Rate, spec.Channels); ok {
		return l, nil
	}
	passthroughMu.Lock()
	defer passthroughMu.Unlock()
	var specs []codecspec.Spec
	if p := passthrough.Load(); p != nil {
		specs = *p
	}
	for i, s := range specs { // named meanwhile
		if s.Same(spec) {
			return Law(firstPassthrough + i), nil
		}
	}
	if len(specs) == maxPassthrough {
		return 0, ErrTooManyCodecs
	}
	grown := append(specs[:len(specs):len(specs)], spec)
	passthrough.Store(&grown)
	return Law(firstPassthrough + len(specs)), nil
}

// encodedLaw returns the codec uad encodes of an encoding name, if it is one.
func encodedLaw(name string) (Law, bool) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return PCMU, true
	case "PCMA":
		return PCMA, true
	case "G722":
		return G722, true
	}
	return 0, false
}

// passthroughLaw finds a pass-through codec by its rtpmap name, rate and
// channels.
func passthroughLaw(name string, rate, channels int) (Law, bool) {
	p := passthrough.Load()
	if p == nil {
		return 0, false
	}
	want := codecspec.Spec{Name: name, Rate: rate, Channels: max(channels, 1)}
	for i, s := range *p {
		if s.Same(want) {
			return Law(firstPassthrough + i), true
		}
	}
	return 0, false
}

// Spec returns the codec a Law stands for.
func (l Law) Spec() codecspec.Spec {
	if l >= firstPassthrough {
		if p := passthrough.Load(); p != nil && int(l-firstPassthrough) < len(*p) {
			return (*p)[l-firstPassthrough]
		}
		return codecspec.Spec{}
	}
	return codecspec.Spec{Name: l.String(), Rate: G711Rate, Channels: 1}
}

// format is how uad writes the codec in its SDP under payload type pt.
func (l Law) format(pt uint8) Format {
	s := l.Spec()
	return Format{PT: pt, Name: s.Name, Rate: s.Rate, Channels: s.Channels}
}
