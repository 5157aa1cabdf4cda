package main

import (
	"slices"
	"time"
)

// pacing follows the timing of a stream uad generates (the hold tone):
// each frame's kernel arrival time against its RTP timestamp. Their
// difference, the offset, is constant for a stream paced on time; it grows
// when the RTP clock falls behind real time, and a late frame has a larger
// offset than the stream's earliest.
type pacing struct {
	started bool
	ts0     uint32
	t0      int64   // arrival of the first frame, Unix ns
	offsets []int32 // arrival less RTP time, in µs, from the first frame's
}

func (p *pacing) add(ts uint32, arrival int64) {
	if !p.started {
		p.started, p.ts0, p.t0 = true, ts, arrival
	}
	rtpUS := int64(ts-p.ts0) * 1000 / 8 // 8 kHz
	p.offsets = append(p.offsets, int32((arrival-p.t0)/1000-rtpUS))
}

// pacingSummary adds up the pacing of every held stream.
type pacingSummary struct {
	streams  int
	frames   int64
	late     histogram     // each frame against its stream's earliest
	lateMax  time.Duration //
	driftMax time.Duration // the largest drift of one stream
	driftSum time.Duration
}

// driftWindow is how many frames at each end of a stream its drift
// compares (the median of each, so single late frames do not count).
const driftWindow = 50

func (s *pacingSummary) merge(p *pacing) {
	o := p.offsets
	if len(o) < 8 {
		return
	}
	s.streams++
	s.frames += int64(len(o))
	lo := slices.Min(o)
	for _, v := range o {
		d := time.Duration(v-lo) * time.Microsecond
		s.late.add(d)
		s.lateMax = max(s.lateMax, d)
	}
	w := min(driftWindow, len(o)/4)
	d := time.Duration(median(o[len(o)-w:])-median(o[:w])) * time.Microsecond
	if d < 0 {
		d = -d
	}
	s.driftMax = max(s.driftMax, d)
	s.driftSum += d
}

func median(v []int32) int32 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
