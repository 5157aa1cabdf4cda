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
	rtpHeaderLen = 12 // the header a sender writes: no CSRC, no extension
)

// sender writes one outgoing RTP stream. It alone owns the SSRC, sequence
// number and timestamp, so they stay continuous whatever feeds it: a source
// change only sets the marker bit and re-bases the timestamp on the clock.
// Callers serialise access (the owning stream's mutex).
type sender struct {
	conn *net.UDPConn
	rate uint32 // RTP clock rate of the stream
	hdr  rtp.Header

	started  bool
	lastSend time.Time // monotonic
	resync   bool      // next packet starts a new source: marker, new ts base

	// Forwarded packets keep their own timing: ts = their ts + offset.
	forwarding bool   // the last packet sent was forwarded from inSSRC
	inSSRC     uint32 // SSRC of the stream forwarded
	tsOffset   uint32
	lastTSIn   uint32 // highest timestamp forwarded since the last re-base
	lastSeqIn  uint16 // highest sequence number forwarded since then

	// sent maps the sequence numbers written to the ones forwarded, for
	// feedback about this stream (nil: no feedback is translated).
	sent *seqRing
	fir  firState

	packets, bytes uint64
	conv           *transcoder // codec conversion of forwarded audio; nil until needed

	srtp *srtpOut // set while the stream is SRTP: what leaves is encrypted

	// buf assembles a packet whose payload has no room for the header
	// before it; last, so that the state every packet uses stays together.
	buf [maxPacket]byte
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

// clockTS is the timestamp of a packet sent at now that starts anew (a new
// source, an event): the last one's moved on by the real time elapsed.
func (s *sender) clockTS(now time.Time) uint32 {
	if !s.started {
		return s.hdr.Timestamp
	}
	elapsed := max(now.Sub(s.lastSend), 0)
	samples := uint32(elapsed * time.Duration(s.rate) / time.Second)
	if samples == 0 {
		samples = 1
	}
	return s.hdr.Timestamp + samples
}

// sendGenerated sends the generated frame due at the deadline at, frames
// frame periods after the previous one of the same source (more than one
// when the pacer skipped frames): the timestamp follows the frames that
// elapsed, so it keeps to real time, while the sequence number goes on by
// one.
// The payload is pkt[off:], with room for the header before it.
func (s *sender) sendGenerated(to netip.AddrPort, pt uint8, pkt []byte, off int, at time.Time, frames int) {
	if s.resync || !s.started {
		s.hdr.Timestamp = s.clockTS(at)
		s.hdr.Marker = true
		s.resync = false
	} else {
		s.hdr.Timestamp += uint32(frames) * frameSamples
		s.hdr.Marker = false
	}
	s.forwarding = false
	s.write(to, pt, pkt, off, at)
	s.sent.forget(s.hdr.SequenceNumber)
}

// sendForwarded sends a packet from another RTP stream under our own SSRC,
// keeping its relative timing. Only a new source, a new SSRC or a timestamp
// jump of more than 10 s either way re-bases; a reordered packet keeps its
// relative timestamp and its own marker bit. A packet forwarded before (the
// source retransmitting it after a NACK, or a duplicate) goes out again
// under the sequence number it had, so the receiver can use it. The
// payload is pkt[off:]; pkt[:off] is free (the received header): the
// header goes there (see send).
func (s *sender) sendForwarded(to netip.AddrPort, in *rtp.Header, pt uint8, pkt []byte, off int, now time.Time) {
	cont := s.forwarding && !s.resync && s.started && in.SSRC == s.inSSRC
	if cont && int16(in.SequenceNumber-s.lastSeqIn) <= 0 {
		if seq, ok := s.sent.written(in.SSRC, in.SequenceNumber, s.hdr.SequenceNumber, s.lastSeqIn); ok {
			s.resend(to, seq, in, pt, pkt, off)
			return
		}
	}
	limit := int64(10 * s.rate)
	if d := int64(int32(in.Timestamp - s.lastTSIn)); !cont || d > limit || d < -limit {
		base := s.clockTS(now)
		s.tsOffset = base - in.Timestamp
		s.inSSRC = in.SSRC
		s.lastTSIn, s.lastSeqIn = in.Timestamp, in.SequenceNumber
		s.hdr.Marker = true
		s.resync = false
		s.forwarding = true
	} else {
		s.hdr.Marker = in.Marker
		if d > 0 {
			s.lastTSIn = in.Timestamp
		}
		if int16(in.SequenceNumber-s.lastSeqIn) > 0 {
			s.lastSeqIn = in.SequenceNumber
		}
	}
	s.hdr.Timestamp = in.Timestamp + s.tsOffset
	s.write(to, pt, pkt, off, now)
	s.sent.put(s.hdr.SequenceNumber, in.SequenceNumber, in.SSRC)
}

// resend writes a forwarded packet again under the sequence number it was
// first sent with, leaving the stream's own numbering alone.
func (s *sender) resend(to netip.AddrPort, seq uint16, in *rtp.Header, pt uint8, pkt []byte, off int) {
	h := s.hdr
	h.SequenceNumber, h.Timestamp, h.Marker, h.PayloadType = seq, in.Timestamp+s.tsOffset, in.Marker, pt
	s.send(&h, to, pkt, off)
}

// sendEvent sends a telephone-event packet, due at the deadline at, with
// its event's own timestamp.
func (s *sender) sendEvent(to netip.AddrPort, pt uint8, payload []byte, ts uint32, marker bool, at time.Time) {
	s.hdr.Timestamp = ts
	s.hdr.Marker = marker
	s.forwarding = false
	s.write(to, pt, payload, 0, at)
	s.sent.forget(s.hdr.SequenceNumber)
}

// write sends the next packet, of payload pkt[off:]; now is its send time
// (for a paced packet, its deadline), from which clockTS counts.
func (s *sender) write(to netip.AddrPort, pt uint8, pkt []byte, off int, now time.Time) {
	if s.started {
		s.hdr.SequenceNumber++
	}
	s.started = true
	s.lastSend = now
	s.hdr.PayloadType = pt
	s.send(&s.hdr, to, pkt, off)
}

// send writes one packet of header h and payload pkt[off:], counting what
// left. When pkt[:off] has room for the header, it goes there and the
// packet leaves from pkt: a forwarded payload is not copied, and the
// packet touches memory the receive just brought into the cache rather
// than the sender's own buffer.
func (s *sender) send(h *rtp.Header, to netip.AddrPort, pkt []byte, off int) {
	payload := pkt[off:]
	var out []byte
	if hl := h.MarshalSize(); hl <= off {
		if _, err := h.MarshalTo(pkt[off-hl : off]); err != nil {
			return
		}
		out = pkt[off-hl:]
	} else {
		n, err := h.MarshalTo(s.buf[:])
		if err != nil || n+len(payload) > len(s.buf) {
			return
		}
		n += copy(s.buf[n:], payload)
		out = s.buf[:n]
	}
	if s.srtp != nil {
		var err error
		if out, err = s.srtp.protect(out); err != nil {
			return
		}
	}
	if _, err := s.conn.WriteToUDPAddrPort(out, to); err == nil {
		s.packets++
		s.bytes += uint64(len(payload))
	}
}

// seqRingSize is how many forwarded packets feedback can name: over a
// second of video at a few Mbit/s, while NACKs come within a round trip.
const seqRingSize = 1024

// seqRing remembers, for the last seqRingSize sequence numbers a sender
// wrote, the packet each carried: its SSRC and sequence number as received.
// Fixed size, indexed by the sequence number written: nothing is allocated
// per packet.
type seqRing [seqRingSize]seqEntry

type seqEntry struct {
	out, in uint16
	ssrc    uint32
	valid   bool
}

func (r *seqRing) put(out, in uint16, ssrc uint32) {
	if r != nil {
		r[out%seqRingSize] = seqEntry{out: out, in: in, ssrc: ssrc, valid: true}
	}
}

// forget marks a sequence number as carrying no forwarded packet.
func (r *seqRing) forget(out uint16) {
	if r != nil {
		r[out%seqRingSize].valid = false
	}
}

// forwarded returns what the packet written as out was.
func (r *seqRing) forwarded(out uint16) (in uint16, ssrc uint32, ok bool) {
	if r == nil {
		return 0, 0, false
	}
	e := &r[out%seqRingSize]
	if !e.valid || e.out != out {
		return 0, 0, false
	}
	return e.in, e.ssrc, true
}

// written finds the sequence number a received packet was sent under.
// lastOut and lastIn are the newest pair: where numbering ran in step, the
// packet sits as far behind the one as behind the other.
func (r *seqRing) written(ssrc uint32, in, lastOut, lastIn uint16) (uint16, bool) {
	if r == nil {
		return 0, false
	}
	guess := lastOut - (lastIn - in)
	if e := &r[guess%seqRingSize]; e.valid && e.out == guess && e.in == in && e.ssrc == ssrc {
		return guess, true
	}
	for i := range r {
		if e := &r[i]; e.valid && e.in == in && e.ssrc == ssrc {
			return e.out, true
		}
	}
	return 0, false
}
