package media

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/pion/rtcp"
)

// RTCP is terminated at uad, never forwarded: uad is the RTP sender of
// every stream it writes, so it reports on those streams itself (RFC 3550
// §6.4): a sender report while it sends, a receiver report otherwise, each
// with a reception report on what the peer sends.

// rtcpInterval is the mean time between reports (RFC 3550's minimum of 5 s).
const rtcpInterval = 5 * time.Second

// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// report builds the stream's RTCP compound packet, or nil when there is
// nothing to report or nowhere to send it.
func (s *Stream) report(now time.Time) ([]byte, netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	remote := s.cfg.remote(s.video)
	if !remote.IsValid() || s.closed.Load() {
		return nil, netip.AddrPort{}
	}
	snd := s.toPeer
	var blocks []rtcp.ReceptionReport
	if r := &s.recv; r.started {
		expected := r.expected()
		interval := expected - r.lastExpected
		lostInterval := interval - int64(r.received-r.lastReceived)
		r.lastExpected, r.lastReceived = expected, r.received
		var fraction uint8
		if interval > 0 && lostInterval > 0 {
			fraction = uint8(lostInterval << 8 / interval)
		}
		total := max(r.lostPrev+r.lost(), 0)
		blocks = append(blocks, rtcp.ReceptionReport{
			SSRC:               r.ssrc,
			FractionLost:       fraction,
			TotalLost:          uint32(min(total, 0x7fffff)),
			LastSequenceNumber: r.cycles + uint32(r.maxSeq),
			Jitter:             uint32(r.jitter),
		})
	}
	var pkt rtcp.Packet
	switch {
	case snd.started:
		pkt = &rtcp.SenderReport{
			SSRC:        snd.hdr.SSRC,
			NTPTime:     ntpTime(now),
			RTPTime:     snd.clockTS(now),
			PacketCount: uint32(snd.packets),
			OctetCount:  uint32(snd.bytes),
			Reports:     blocks,
		}
	case len(blocks) > 0:
		pkt = &rtcp.ReceiverReport{SSRC: snd.hdr.SSRC, Reports: blocks}
	default:
		return nil, netip.AddrPort{}
	}
	b, err := rtcp.Marshal([]rtcp.Packet{pkt})
	if err != nil {
		return nil, netip.AddrPort{}
	}
	return b, netip.AddrPortFrom(remote.Addr(), remote.Port()+1)
}

// sendReports sends every stream's report; called every rtcpInterval.
func (e *Engine) sendReports(now time.Time) {
	e.streamsMu.Lock()
	e.reportList = e.reportList[:0]
	for st := range e.streams {
		e.reportList = append(e.reportList, st)
	}
	e.streamsMu.Unlock()
	for _, st := range e.reportList {
		if b, to := st.report(now); b != nil {
			_, _ = st.rtcp.WriteToUDPAddrPort(b, to)
		}
	}
}

// reporter runs sendReports with a randomised interval (0.5–1.5 × mean),
// so reports of many calls do not go out in step (RFC 3550 §6.3.1).
func (e *Engine) reporter(quit <-chan struct{}) {
	for {
		wait := rtcpInterval/2 + rand.N(rtcpInterval)
		select {
		case <-quit:
			return
		case <-time.After(wait):
			e.sendReports(time.Now())
		}
	}
}
