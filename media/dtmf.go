package media

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// RFC 4733 telephone-events: digits uad sends are paced by the scheduler,
// one packet per 20 ms; received events are reported once each.

const (
	dtmfVolume   = 10 // -10 dBm0
	dtmfEndCount = 3  // the final packet is sent three times (RFC 4733 §2.5.1.4)
	dtmfGap      = 3  // frames of pause between two digits
)

// Errors of SendDTMF.
var (
	ErrDTMFNotNegotiated = errors.New("the peer did not offer telephone-event (RFC 4733)")
	ErrDTMFNotSending    = errors.New("the stream does not send now (held or inactive)")
	ErrDTMFDigits        = errors.New("DTMF digits must be 0-9, *, #, A-D")
)

// dtmfCode maps a digit to its RFC 4733 event code.
func dtmfCode(d byte) (byte, bool) {
	switch {
	case d >= '0' && d <= '9':
		return d - '0', true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return 12 + d - 'A', true
	case d >= 'a' && d <= 'd':
		return 12 + d - 'a', true
	}
	return 0, false
}

// DTMFDigit names an RFC 4733 event code.
func DTMFDigit(code byte) (string, bool) {
	const digits = "0123456789*#ABCD"
	if int(code) < len(digits) {
		return digits[code : code+1], true
	}
	return "", false
}

// dtmfSender plays queued digits, one event at a time.
type dtmfSender struct {
	// busy reads these for every packet received.
	active bool
	gap    int    // pause frames left after an event
	queue  []byte // event codes still to play

	frames   int // frames per event
	code     byte
	sent     int // frames of the current event sent
	ends     int // end packets sent
	ts       uint32
	duration uint16
	payload  [4]byte
}

func (d *dtmfSender) busy() bool { return d.active || d.gap > 0 || len(d.queue) > 0 }

// SendDTMF queues digits as RFC 4733 events of the given duration, with the
// telephone-event payload type the peer offered.
func (s *Stream) SendDTMF(digits string, duration time.Duration) error {
	codes := make([]byte, 0, len(digits))
	for i := 0; i < len(digits); i++ {
		c, ok := dtmfCode(digits[i])
		if !ok {
			return ErrDTMFDigits
		}
		codes = append(codes, c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.video {
		return ErrDTMFNotNegotiated
	}
	if s.cfg.Params.SendDTMF < 0 {
		return ErrDTMFNotNegotiated
	}
	if !s.cfg.Send || s.cfg.LocalHold || !s.cfg.Params.Remote.IsValid() {
		return ErrDTMFNotSending
	}
	s.dtmf.frames = max(int(duration/(20*time.Millisecond)), 2)
	s.dtmf.queue = append(s.dtmf.queue, codes...)
	s.updateSchedule()
	return nil
}

// tickDTMF sends the next telephone-event packet, due at the deadline at,
// frames frame periods after the stream's previous tick; false when no
// digit is playing (the normal source then sends). Frames the pacer
// skipped count toward the event's duration and the pause after it.
func (s *Stream) tickDTMF(at time.Time, frames int) bool {
	d := &s.dtmf
	if !d.busy() {
		return false
	}
	if !s.cfg.Send || s.cfg.LocalHold {
		d.queue, d.active, d.gap = nil, false, 0 // held since: drop the rest
		return false
	}
	if d.gap > 0 && !d.active {
		d.gap = max(d.gap-frames, 0)
		if d.gap == 0 {
			s.toPeer.sourceChanged()
		}
		return true
	}
	marker := !d.active
	if !d.active {
		d.code, d.queue = d.queue[0], d.queue[1:]
		d.active, d.sent, d.ends = true, 0, 0
		d.ts = s.toPeer.clockTS(at)
		frames = 1 // the event starts now
	}
	end := d.sent >= d.frames
	if !end {
		d.sent = min(d.sent+frames, d.frames)
	} else {
		d.ends++
	}
	d.duration = uint16(min(d.sent*frameSamples, 0xffff))
	d.payload[0] = d.code
	d.payload[1] = dtmfVolume
	if end {
		d.payload[1] |= 0x80
	}
	binary.BigEndian.PutUint16(d.payload[2:], d.duration)
	s.toPeer.sendEvent(s.cfg.Params.Remote, uint8(s.cfg.Params.SendDTMF), d.payload[:], d.ts, marker, at)
	if end && d.ends >= dtmfEndCount {
		d.active = false
		d.gap = dtmfGap
		// Audio resumes after the event, not inside it.
		s.toPeer.hdr.Timestamp = d.ts + uint32(d.duration)
	}
	return true
}

// receivedDTMF reports an event once: packets of one event share its
// timestamp (RFC 4733 §2.5.2).
func (s *Stream) receivedDTMF(ts uint32, payload []byte) (string, bool) {
	if len(payload) < 4 {
		return "", false
	}
	if s.dtmfSeen && ts == s.dtmfTS {
		return "", false
	}
	digit, ok := DTMFDigit(payload[0])
	if !ok {
		return "", false
	}
	s.dtmfSeen, s.dtmfTS = true, ts
	return digit, true
}

// ParseDTMFRelay reads the digit of a SIP INFO application/dtmf-relay body
// ("Signal=5\r\nDuration=160").
func ParseDTMFRelay(body string) (string, bool) {
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "signal") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) == 1 {
			if code, ok := dtmfCode(v[0]); ok {
				return DTMFDigit(code)
			}
		}
		if v == "10" {
			return "*", true
		}
		if v == "11" {
			return "#", true
		}
	}
	return "", false
}
