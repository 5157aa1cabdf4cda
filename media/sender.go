package media

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

const (
	sampleRate   = 8000  // G.711
	videoRate    = 90000 // every video codec uad relays
	frameSamples = 160   // 20 ms at 8 kHz
	frameBytes   = 160   // one G.711 frame
	maxPacket    = 1500
)

// sender writes one outgoing RTP stream. It alone owns the SSRC, sequence
// number and timestamp, so they stay continuous whatever feeds it: a source
// change only sets the marker bit and re-bases the timestamp on the clock.
// Callers serialise access (the owning stream's mutex).
type sender struct {
	conn *net.UDPConn
	rate uint32 // RTP clock rate of the stream
	hdr  rtp.Header
	buf  [maxPacket]byte

	started  bool
	lastSend time.Time // monotonic
	resync   bool      // next packet starts a new source: marker, new ts base

	// Forwarded packets keep their own timing: ts = their ts + offset.
	inSSRC   uint32
	tsOffset uint32
	lastTSIn uint32

	packets, bytes uint64
}

func newSender(conn *net.UDPConn, rate uint32) *sender {
	s := &sender{conn: conn, rate: rate, resync: true}
	s.hdr.Version = 2
	s.hdr.SSRC = rand.Uint32()
	s.hdr.SequenceNumber = uint16(rand.Uint32())
	s.hdr.Timestamp = rand.Uint32()
	return s
}

// sourceChanged makes the next packet carry the marker bit and re-base timing.
func (s *sender) sourceChanged() { s.resync = true }

// advanceTo moves the timestamp for a packet sent now: a whole frame after a
// generated frame, or by the real time elapsed after a gap.
func (s *sender) clockTS(now time.Time) uint32 {
	if !s.started {
		return s.hdr.Timestamp
	}
	elapsed := now.Sub(s.lastSend)
	samples := uint32(elapsed * time.Duration(s.rate) / time.Second)
	if samples == 0 {
		samples = 1
	}
	return s.hdr.Timestamp + samples
}

// sendGenerated sends one generated frame, paced by the scheduler: each
// packet is exactly one frame after the previous one of the same source.
func (s *sender) sendGenerated(to netip.AddrPort, pt uint8, payload []byte, now time.Time) {
	if s.resync || !s.started {
		s.hdr.Timestamp = s.clockTS(now)
		s.hdr.Marker = true
		s.resync = false
		s.inSSRC = 0
	} else {
		s.hdr.Timestamp += frameSamples
		s.hdr.Marker = false
	}
	s.write(to, pt, payload, now)
}

// sendForwarded sends a packet from another RTP stream under our own SSRC,
// keeping its relative timing.
func (s *sender) sendForwarded(to netip.AddrPort, in *rtp.Header, pt uint8, payload []byte, now time.Time) {
	if s.resync || !s.started || in.SSRC != s.inSSRC || in.Timestamp-s.lastTSIn > 10*s.rate {
		base := s.clockTS(now)
		s.tsOffset = base - in.Timestamp
		s.inSSRC = in.SSRC
		s.hdr.Marker = true
		s.resync = false
	} else {
		s.hdr.Marker = in.Marker
	}
	s.lastTSIn = in.Timestamp
	s.hdr.Timestamp = in.Timestamp + s.tsOffset
	s.write(to, pt, payload, now)
}

// sendEvent sends a telephone-event packet with its event's own timestamp.
func (s *sender) sendEvent(to netip.AddrPort, pt uint8, payload []byte, ts uint32, marker bool, now time.Time) {
	s.hdr.Timestamp = ts
	s.hdr.Marker = marker
	s.write(to, pt, payload, now)
}

func (s *sender) write(to netip.AddrPort, pt uint8, payload []byte, now time.Time) {
	if s.started {
		s.hdr.SequenceNumber++
	}
	s.started = true
	s.lastSend = now
	s.hdr.PayloadType = pt
	n, err := s.hdr.MarshalTo(s.buf[:])
	if err != nil || n+len(payload) > len(s.buf) {
		return
	}
	n += copy(s.buf[n:], payload)
	if _, err := s.conn.WriteToUDPAddrPort(s.buf[:n], to); err == nil {
		s.packets++
		s.bytes += uint64(len(payload))
	}
}
