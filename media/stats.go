package media

import "time"

// recvStats follows the peer's RTP as an RFC 3550 receiver does: extended
// sequence numbers for loss (A.3) and interarrival jitter (A.8). The
// owning stream's mutex guards it.
type recvStats struct {
	// What every packet updates first (one cache line).
	rate     uint32
	started  bool
	maxSeq   uint16
	ssrc     uint32
	cycles   uint32
	transit  uint32 // arrival - timestamp, modulo 2^32 (RFC 3550 A.8)
	received uint64
	jitter   float64 // in timestamp units
	epoch    time.Time

	baseSeq  uint32
	lostPrev int64 // loss counted for earlier sources of the stream
	// What the last RTCP report covered, for its fraction lost.
	lastExpected int64
	lastReceived uint64
}

// maxDropout is how far ahead a sequence number may jump and still count
// as the same sequence (RFC 3550 A.1).
const maxDropout = 3000

func (r *recvStats) update(ssrc uint32, seq uint16, ts uint32, now time.Time) {
	if !r.started || ssrc != r.ssrc {
		if r.started {
			r.lostPrev += r.lost()
		}
		*r = recvStats{rate: r.rate, started: true, ssrc: ssrc, baseSeq: uint32(seq), maxSeq: seq, lostPrev: r.lostPrev, epoch: now}
		r.received = 1
		r.transit = r.arrival(now) - ts
		return
	}
	delta := seq - r.maxSeq
	switch {
	case delta != 0 && delta < maxDropout:
		if seq < r.maxSeq {
			r.cycles += 1 << 16 // wrapped
		}
		r.maxSeq = seq
	case delta >= maxDropout && delta < 65536-100:
		// A jump too big to be loss: the sender restarted its sequence.
		r.lostPrev += r.lost()
		r.baseSeq, r.maxSeq, r.cycles, r.received = uint32(seq), seq, 0, 0
	}
	r.received++
	// Timestamps and arrival times wrap: differences are taken modulo 2^32
	// and read as signed, so a stream crossing 2^32 has no jump.
	transit := r.arrival(now) - ts
	d := int64(int32(transit - r.transit))
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += (float64(d) - r.jitter) / 16
}

// arrival is now in timestamp units since the source started.
func (r *recvStats) arrival(now time.Time) uint32 {
	return uint32(now.Sub(r.epoch) * time.Duration(r.rate) / time.Second)
}

func (r *recvStats) expected() int64 {
	return int64(r.cycles+uint32(r.maxSeq)) - int64(r.baseSeq) + 1
}

// lost is packets expected but not received (RFC 3550 A.3); duplicates can
// make it negative for a while.
func (r *recvStats) lost() int64 {
	if !r.started {
		return 0
	}
	return r.expected() - int64(r.received)
}

// jitterDuration is the interarrival jitter as a duration.
func (r *recvStats) jitterDuration() time.Duration {
	if r.rate == 0 {
		return 0
	}
	return time.Duration(r.jitter / float64(r.rate) * float64(time.Second))
}
