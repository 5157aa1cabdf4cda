package media

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/pion/rtcp"
)

// RTCP is terminated at uad: uad is the RTP sender of every stream it
// writes, so it reports on those streams itself (RFC 3550 §6.4): a sender
// report while it sends, a receiver report otherwise, each with a reception
// report on what the peer sends, and SDES CNAME. Reports received are not
// used. Feedback (RFC 4585 NACK and PLI, RFC 5104 FIR) about a stream uad
// forwards is translated for the source of that stream, which alone can
// retransmit or send a key frame.

// RTCP packet types and feedback formats.
const (
	rtcpRR    = 201
	rtcpSDES  = 202
	rtcpRTPFB = 205 // transport-layer feedback
	rtcpPSFB  = 206 // payload-specific feedback
	fmtNACK   = 1   // RTPFB generic NACK
	fmtPLI    = 1   // PSFB
	fmtFIR    = 4   // PSFB, RFC 5104
	sdesCNAME = 1
)

// newCNAME makes the RTCP CNAME of a process: random (RFC 7022), so it
// names no host or user. One per engine, shared by every stream: uad is one
// participant, and a call's audio and video must share a CNAME for a
// receiver to associate them (RFC 3550 §6.5.1).
func newCNAME() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return "uad-" + hex.EncodeToString(b[:])
}

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
	runTestHook(s, "rtcp report")
	remote := s.cfg.remote(s.video)
	if !remote.IsValid() || s.closed.Load() || s.faulted {
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
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: snd.hdr.SSRC,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: s.eng.cname}},
	}}}
	b, err := rtcp.Marshal([]rtcp.Packet{pkt, sdes})
	if err != nil {
		return nil, netip.AddrPort{}
	}
	if o := snd.srtp; o != nil {
		if b, err = o.protectRTCP(nil, b); err != nil {
			return nil, netip.AddrPort{}
		}
	}
	return b, rtcpAddr(remote)
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
		st.sendReport(now)
	}
}

// sendReport sends one stream's report; a panic there faults that stream
// only, which then reports no more.
func (s *Stream) sendReport(now time.Time) {
	defer s.recoverFault("rtcp report")
	if b, to := s.report(now); b != nil {
		_, _ = s.rtcp.WriteToUDPAddrPort(b, to)
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

// rtcpAddr is the RTCP address of an RTP address (RFC 3550 §11).
func rtcpAddr(rtpAddr netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(rtpAddr.Addr(), rtpAddr.Port()+1)
}

// peerRTCP handles an RTCP packet from the peer: feedback about the stream
// uad sends it goes to that stream's source, the peer itself in echo mode,
// the relay endpoint in relay mode. out is the caller's buffer.
func (s *Stream) peerRTCP(pkt []byte, from netip.AddrPort, out []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runTestHook(s, "rtcp")
	remote := s.cfg.remote(s.video)
	if !rtcpFrom(from, remote, s.cfg.Latching) {
		return
	}
	if in := s.srtpIn; in != nil {
		plain, err := in.unprotectRTCP(pkt)
		if err != nil {
			s.srtpFailed.Add(1)
			return
		}
		pkt = plain
	}
	switch {
	case s.src == srcEcho:
		if n := s.feedback(pkt, s.toPeer, s.toPeer.hdr.SSRC, out); n > 0 {
			s.writeRTCP(out[:n], s.rtcpEnc[:])
		}
	case s.src == srcRelay && s.toRelay != nil && s.cfg.Relay.IsValid():
		if n := s.feedback(pkt, s.toPeer, s.toRelay.hdr.SSRC, out); n > 0 {
			_, _ = s.relayRTCP.WriteToUDPAddrPort(out[:n], rtcpAddr(s.cfg.Relay))
		}
	}
}

// relayRTCPPacket handles an RTCP packet from the relay endpoint: feedback
// about the peer's stream, which uad relays to it, goes to the peer.
func (s *Stream) relayRTCPPacket(pkt []byte, from netip.AddrPort, out []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runTestHook(s, "relay rtcp")
	relay, remote := s.cfg.Relay, s.cfg.remote(s.video)
	if !rtcpFrom(from, relay, false) || !remote.IsValid() || s.cfg.Mode != ModeRelay || !s.cfg.Accept {
		return
	}
	if n := s.feedback(pkt, s.toRelay, s.toPeer.hdr.SSRC, out); n > 0 {
		s.writeRTCP(out[:n], s.rtcpEnc[:])
	}
}

// rtcpFrom reports whether RTCP from src comes from the endpoint whose RTP
// address is rtpAddr: its RTCP port (RTP + 1), or its RTP port for a peer
// that multiplexes. Behind NAT (latching) the port is unknown: the address
// must match.
func rtcpFrom(src, rtpAddr netip.AddrPort, anyPort bool) bool {
	if !rtpAddr.IsValid() || src.Addr().Unmap() != rtpAddr.Addr().Unmap() {
		return false
	}
	return anyPort || src.Port() == rtpAddr.Port()+1 || src.Port() == rtpAddr.Port()
}

// feedback translates the feedback of a compound RTCP packet about snd's
// stream into a compound packet to that stream's source, in which uad is
// the sender as own (its SSRC toward the source): media SSRC and sequence
// numbers become the source's. It returns the length written to out, 0
// when there is nothing to send. A malformed packet is ignored whole.
func (s *Stream) feedback(pkt []byte, snd *sender, own uint32, out []byte) int {
	if !snd.forwarding || !validCompound(pkt) {
		return 0
	}
	n := putHead(out, own, s.eng.cname)
	head := n
	pli, fir := false, false
	for off := 0; off < len(pkt); {
		size := (int(binary.BigEndian.Uint16(pkt[off+2:])) + 1) * 4
		p := pkt[off : off+size]
		off += size
		if p[0]&0x20 != 0 {
			p = p[:len(p)-int(p[len(p)-1])]
		}
		if len(p) < 12 {
			continue
		}
		format, media := p[0]&0x1f, binary.BigEndian.Uint32(p[8:])
		switch {
		case p[1] == rtcpPSFB && format == fmtPLI && media == snd.hdr.SSRC && !pli && n+12 <= len(out):
			n = putFBHead(out, n, rtcpPSFB, fmtPLI, 12, own, snd.inSSRC)
			pli = true
		case p[1] == rtcpPSFB && format == fmtFIR:
			for fci := p[12:]; len(fci) >= 8 && !fir && n+20 <= len(out); fci = fci[8:] {
				if binary.BigEndian.Uint32(fci) != snd.hdr.SSRC {
					continue
				}
				n = putFBHead(out, n, rtcpPSFB, fmtFIR, 20, own, 0) // media SSRC unused (RFC 5104 §4.3.1.2)
				binary.BigEndian.PutUint32(out[n-8:], snd.inSSRC)
				out[n-4], out[n-3], out[n-2], out[n-1] = snd.fir.next(fci[4]), 0, 0, 0
				fir = true
			}
		case p[1] == rtcpRTPFB && format == fmtNACK && media == snd.hdr.SSRC:
			n = translateNACK(p[12:], snd, own, out, n)
		}
	}
	if n == head {
		return 0
	}
	return n
}

// translateNACK appends a generic NACK (RFC 4585 §6.2.1) for the source of
// snd's stream: each sequence number lost is mapped back to the one it was
// forwarded from; numbers uad generated, or forgot, are left out.
func translateNACK(fci []byte, snd *sender, own uint32, out []byte, n int) int {
	start := n
	if n+16 > len(out) {
		return n
	}
	n += 12
	var pid, blp uint16
	open := false
	for ; len(fci) >= 4; fci = fci[4:] {
		lost, mask := binary.BigEndian.Uint16(fci), binary.BigEndian.Uint16(fci[2:])
		for i := uint16(0); i <= 16; i++ {
			if i > 0 && mask&(1<<(i-1)) == 0 {
				continue
			}
			in, ssrc, ok := snd.sent.forwarded(lost + i)
			if !ok || ssrc != snd.inSSRC {
				continue
			}
			if d := in - pid; open && d >= 1 && d <= 16 {
				blp |= 1 << (d - 1)
				continue
			} else if open && d == 0 {
				continue
			}
			if open {
				if n+4 > len(out) {
					return finishNACK(out, start, n, own, snd.inSSRC)
				}
				n = putNACKItem(out, n, pid, blp)
			}
			pid, blp, open = in, 0, true
		}
	}
	if open && n+4 <= len(out) {
		n = putNACKItem(out, n, pid, blp)
	}
	return finishNACK(out, start, n, own, snd.inSSRC)
}

func putNACKItem(out []byte, n int, pid, blp uint16) int {
	binary.BigEndian.PutUint16(out[n:], pid)
	binary.BigEndian.PutUint16(out[n+2:], blp)
	return n + 4
}

// finishNACK writes the header of a NACK whose items end at n, or drops
// it when it has none.
func finishNACK(out []byte, start, n int, own, media uint32) int {
	if n == start+12 {
		return start
	}
	putFBHead(out, start, rtcpRTPFB, fmtNACK, n-start, own, media)
	return n
}

// putFBHead writes the 12 bytes that start a feedback packet of size bytes
// and returns the offset after the packet.
func putFBHead(out []byte, n int, pt, format uint8, size int, own, media uint32) int {
	out[n] = 0x80 | format
	out[n+1] = pt
	binary.BigEndian.PutUint16(out[n+2:], uint16(size/4-1))
	binary.BigEndian.PutUint32(out[n+4:], own)
	binary.BigEndian.PutUint32(out[n+8:], media)
	return n + size
}

// putHead writes what every compound RTCP packet starts with (RFC 3550
// §6.1): a receiver report, here with no report block, and SDES CNAME.
func putHead(out []byte, ssrc uint32, cname string) int {
	out[0], out[1] = 0x80, rtcpRR
	binary.BigEndian.PutUint16(out[2:], 1)
	binary.BigEndian.PutUint32(out[4:], ssrc)
	// SDES, one chunk: SSRC, CNAME item, a null octet ending the item list,
	// padded to 32 bits.
	item := min(len(cname), 255)
	size := 4 + (4+2+item+1+3)&^3
	out[8], out[9] = 0x81, rtcpSDES
	binary.BigEndian.PutUint16(out[10:], uint16(size/4-1))
	binary.BigEndian.PutUint32(out[12:], ssrc)
	out[16], out[17] = sdesCNAME, byte(item)
	copy(out[18:], cname[:item])
	clear(out[18+item : 8+size])
	return 8 + size
}

// validCompound checks the framing of a compound RTCP packet (RFC 3550
// A.2, leniently: reduced-size packets, RFC 5506, are accepted): version 2
// throughout, lengths that add up to the datagram, padding only at the end.
func validCompound(b []byte) bool {
	if len(b) < 4 || len(b)%4 != 0 {
		return false
	}
	for off := 0; off < len(b); {
		if len(b)-off < 4 || b[off]>>6 != 2 {
			return false
		}
		size := (int(binary.BigEndian.Uint16(b[off+2:])) + 1) * 4
		if off+size > len(b) {
			return false
		}
		if b[off]&0x20 != 0 {
			pad := int(b[off+size-1])
			if off+size != len(b) || pad == 0 || pad > size-4 {
				return false
			}
		}
		off += size
	}
	return true
}

// firState numbers the FIRs uad sends to a source (RFC 5104 §4.3.1.1): a
// request repeated by the receiver keeps its number, a new one takes the next.
type firState struct {
	seen bool
	in   uint8 // number of the last request received
	out  uint8 // number of the last request sent
}

func (f *firState) next(in uint8) uint8 {
	if !f.seen || in != f.in {
		f.seen, f.in = true, in
		f.out++
	}
	return f.out
}
