package media

import (
	"testing"
	"time"
)

func TestRecvStatsLossAndJitter(t *testing.T) {
	r := recvStats{rate: 8000}
	start := time.Now()
	// 100 packets, every 10th lost, perfectly paced: loss 10, jitter 0.
	for i := 0; i < 100; i++ {
		if i%10 == 4 {
			continue
		}
		r.update(7, uint16(65500+i), uint32(i*160), start.Add(time.Duration(i)*20*time.Millisecond))
	}
	if r.lost() != 10 {
		t.Errorf("lost = %d, want 10 (across a sequence wrap)", r.lost())
	}
	if r.jitterDuration() > time.Millisecond {
		t.Errorf("jitter = %v for paced packets", r.jitterDuration())
	}
	// Alternating 0/10 ms late arrivals give jitter near 10 ms.
	j := recvStats{rate: 8000}
	for i := 0; i < 500; i++ {
		late := time.Duration(i%2) * 10 * time.Millisecond
		j.update(9, uint16(i), uint32(i*160), start.Add(time.Duration(i)*20*time.Millisecond+late))
	}
	if d := j.jitterDuration(); d < 8*time.Millisecond || d > 11*time.Millisecond {
		t.Errorf("jitter = %v, want about 10ms", d)
	}
	// A new SSRC keeps the loss counted so far.
	r.update(8, 1, 0, start.Add(3*time.Second))
	if r.lostPrev+r.lost() != 10 {
		t.Errorf("loss after a new source = %d, want 10", r.lostPrev+r.lost())
	}
}

func TestRecvStatsAllocatesNothing(t *testing.T) {
	r := recvStats{rate: 8000}
	now := time.Now()
	seq := uint16(0)
	if a := testing.AllocsPerRun(1000, func() { seq++; r.update(1, seq, uint32(seq)*160, now) }); a != 0 {
		t.Errorf("update allocates %.1f", a)
	}
}

// A steady 20 ms stream whose timestamps cross 2^32 has no jitter: RFC 3550
// A.8 computes transit and its differences modulo 2^32.
func TestRecvStatsJitterAcrossTimestampWrap(t *testing.T) {
	for _, rate := range []uint32{8000, 90000} {
		r := recvStats{rate: rate}
		step := rate / 50 // 20 ms
		start := time.Now()
		ts := uint32(1<<32 - 10*uint64(step))
		for i := 0; i < 40; i++ {
			r.update(5, uint16(i), ts, start.Add(time.Duration(i)*20*time.Millisecond))
			ts += step
		}
		if d := r.jitterDuration(); d >= time.Millisecond {
			t.Errorf("rate %d: jitter = %v across the timestamp wrap, want below 1ms", rate, d)
		}
	}
}
