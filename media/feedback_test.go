package media

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// endpoint is a test RTP endpoint: an RTP socket and the RTCP socket on
// the port above it.
type endpoint struct {
	rtp, rtcp *net.UDPConn
	pt        uint8 // of the RTP it sends
}

func newEndpoint(t testing.TB) endpoint {
	t.Helper()
	for tries := 0; tries < 50; tries++ {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 1 || port == 65534 {
			a.Close()
			continue
		}
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		if err != nil {
			a.Close()
			continue
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return endpoint{rtp: a, rtcp: b, pt: 96}
	}
	t.Fatal("no adjacent UDP ports")
	return endpoint{}
}

func (e endpoint) addr() netip.AddrPort { return e.rtp.LocalAddr().(*net.UDPAddr).AddrPort() }

func (e endpoint) sendRTP(t testing.TB, to netip.AddrPort, ssrc uint32, seq uint16, ts uint32, marker bool) {
	t.Helper()
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: e.pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: marker},
		Payload: []byte{byte(seq), 1, 2, 3}}).Marshal()
	if _, err := e.rtp.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// sendRTCP sends a compound packet: RR and SDES of ssrc, then pkts.
func (e endpoint) sendRTCP(t testing.TB, to netip.AddrPort, ssrc uint32, pkts ...rtcp.Packet) {
	t.Helper()
	all := append([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: ssrc},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: ssrc, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "peer"}}}}},
	}, pkts...)
	b, err := rtcp.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	e.sendRaw(t, to, b)
}

func (e endpoint) sendRaw(t testing.TB, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := e.rtcp.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// readRTCP returns the feedback packets of the next compound packet, after
// checking its head and where it came from.
func (e endpoint) readRTCP(t *testing.T, from netip.AddrPort, cname string) []rtcp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	e.rtcp.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, src, err := e.rtcp.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no RTCP from uad: %v", err)
	}
	if src != from {
		t.Errorf("RTCP came from %v, want %v", src, from)
	}
	pkts, err := rtcp.Unmarshal(buf[:n])
	if err != nil || len(pkts) < 3 {
		t.Fatalf("RTCP %v %v: want RR, SDES and feedback", pkts, err)
	}
	checkCompoundHead(t, pkts, cname)
	if rr := pkts[0].(*rtcp.ReceiverReport); rr.SSRC == 0 {
		t.Errorf("RR without the sender's SSRC")
	}
	return pkts[2:]
}

func (e endpoint) readEcho(t *testing.T) rtp.Packet {
	t.Helper()
	return readRTP(t, e.rtp)
}

func rtcpOf(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), a.Port()+1) }

func nackSeqs(n *rtcp.TransportLayerNack) []uint16 {
	var out []uint16
	for _, p := range n.Nacks {
		out = append(out, p.PacketList()...)
	}
	return out
}

func vp8Params(remote netip.AddrPort) VideoParams {
	p, _ := NegotiateVideo(&LocalStream{Kind: "video", Formats: VideoFormats()}, &RemoteStream{Kind: "video", Formats: VideoFormats()})
	p.Remote = remote
	return p
}

// In echo mode the source of what uad sends the peer is the peer itself:
// its PLI, FIR and NACK about uad's stream come back to it about its own
// SSRC and sequence numbers, and the packet it then retransmits goes out
// under the sequence number the peer asked for.
func TestEchoFeedbackToPeer(t *testing.T) {
	e := newTestEngine(t, 32300, 32309)
	s, err := e.NewStream(true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer, stranger := newEndpoint(t), newEndpoint(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Video: vp8Params(peer.addr()), Send: true, Accept: true})
	const ssrc = 0xaaaa0001
	out := map[uint16]uint16{} // the peer's sequence number -> uad's
	var uadSSRC uint32
	for seq := uint16(100); seq < 110; seq++ {
		if seq == 104 {
			continue // lost on the way to uad
		}
		peer.sendRTP(t, s.LocalAddr(), ssrc, seq, uint32(seq)*3000, false)
		p := peer.readEcho(t)
		out[seq], uadSSRC = p.SequenceNumber, p.SSRC
	}
	uadRTCP := rtcpOf(s.LocalAddr())

	peer.sendRTCP(t, uadRTCP, ssrc, &rtcp.PictureLossIndication{SenderSSRC: ssrc, MediaSSRC: uadSSRC})
	fb := peer.readRTCP(t, uadRTCP, e.cname)
	if pli, ok := fb[0].(*rtcp.PictureLossIndication); !ok || pli.MediaSSRC != ssrc || pli.SenderSSRC != uadSSRC {
		t.Fatalf("PLI forwarded as %v, want one about the peer's SSRC %x from uad's %x", fb[0], ssrc, uadSSRC)
	}

	// Malformed RTCP, feedback about another SSRC and RTCP from a stranger
	// are dropped; the NACK after them is the next thing the peer hears of.
	peer.sendRaw(t, uadRTCP, []byte{0x81, 205, 0, 9, 1, 2, 3, 4})             // length past the end
	peer.sendRaw(t, uadRTCP, []byte{0x40, 201, 0, 1, 0, 0, 0, 1})             // version 1
	peer.sendRaw(t, uadRTCP, []byte{0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1}) // a NACK without items
	peer.sendRaw(t, uadRTCP, []byte{0x81, 206, 0, 1, 0, 0, 0, 1})             // a PLI cut short
	peer.sendRaw(t, uadRTCP, []byte{0xa1, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9}) // padding of 9 in 12 bytes
	peer.sendRTCP(t, uadRTCP, ssrc, &rtcp.PictureLossIndication{SenderSSRC: ssrc, MediaSSRC: 12345})
	stranger.sendRTCP(t, uadRTCP, ssrc, &rtcp.PictureLossIndication{SenderSSRC: ssrc, MediaSSRC: uadSSRC})
	peer.sendRTCP(t, uadRTCP, ssrc, &rtcp.TransportLayerNack{SenderSSRC: ssrc, MediaSSRC: uadSSRC,
		Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{out[103], out[105], out[108]})})
	fb = peer.readRTCP(t, uadRTCP, e.cname)
	nack, ok := fb[0].(*rtcp.TransportLayerNack)
	if !ok || nack.MediaSSRC != ssrc || nack.SenderSSRC != uadSSRC || !slices.Equal(nackSeqs(nack), []uint16{103, 105, 108}) {
		t.Fatalf("NACK forwarded as %v, want 103 105 108 of %x", fb[0], ssrc)
	}

	// Retransmitted, 105 goes out as the packet the peer missed.
	peer.sendRTP(t, s.LocalAddr(), ssrc, 105, 105*3000, false)
	if p := peer.readEcho(t); p.SequenceNumber != out[105] || p.Payload[0] != 105 {
		t.Errorf("retransmission sent as seq %d, want %d", p.SequenceNumber, out[105])
	}
	peer.sendRTP(t, s.LocalAddr(), ssrc, 110, 110*3000, false)
	if p := peer.readEcho(t); p.SequenceNumber != out[109]+1 || p.Marker {
		t.Errorf("after the retransmission: seq %d marker %v, want %d without marker", p.SequenceNumber, p.Marker, out[109]+1)
	}

	// FIR: a repeated request keeps its number, a new one takes the next.
	for i, tt := range []struct{ in, want uint8 }{{7, 1}, {7, 1}, {8, 2}} {
		peer.sendRTCP(t, uadRTCP, ssrc, &rtcp.FullIntraRequest{SenderSSRC: ssrc,
			FIR: []rtcp.FIREntry{{SSRC: 999, SequenceNumber: 50}, {SSRC: uadSSRC, SequenceNumber: tt.in}}})
		fb = peer.readRTCP(t, uadRTCP, e.cname)
		fir, ok := fb[0].(*rtcp.FullIntraRequest)
		if !ok || len(fir.FIR) != 1 || fir.FIR[0].SSRC != ssrc || fir.FIR[0].SequenceNumber != tt.want || fir.SenderSSRC != uadSSRC {
			t.Errorf("FIR %d forwarded as %v, want one for %x numbered %d", i, fb[0], ssrc, tt.want)
		}
	}
}

// In relay mode the source of what uad sends the peer is the relay
// endpoint, and the other way round: feedback crosses over, translated.
func TestRelayFeedbackCrossesOver(t *testing.T) {
	e := newTestEngine(t, 32400, 32409)
	s, err := e.NewStream(true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer, relay := newEndpoint(t), newEndpoint(t)
	s.Configure(StreamConfig{Mode: ModeRelay, Video: vp8Params(peer.addr()), Relay: relay.addr(), Send: true, Accept: true})
	const peerSSRC, relaySSRC = 0xaaaa0002, 0xbbbb0002
	toPeer, toRelay := map[uint16]uint16{}, map[uint16]uint16{}
	var toPeerSSRC, toRelaySSRC uint32
	for i := uint16(0); i < 8; i++ {
		relay.sendRTP(t, s.RelayLocal(), relaySSRC, 5000+2*i, uint32(i)*3000, false) // every other one lost
		p := readRTP(t, peer.rtp)
		toPeer[5000+2*i], toPeerSSRC = p.SequenceNumber, p.SSRC
		peer.sendRTP(t, s.LocalAddr(), peerSSRC, 60000+i*10000, uint32(i)*3000, false) // wraps
		p = readRTP(t, relay.rtp)
		toRelay[60000+i*10000], toRelaySSRC = p.SequenceNumber, p.SSRC
	}
	uadRTCP, uadRelayRTCP := rtcpOf(s.LocalAddr()), rtcpOf(s.RelayLocal())

	// The peer's feedback goes to the relay endpoint's RTCP port.
	peer.sendRTCP(t, uadRTCP, peerSSRC, &rtcp.PictureLossIndication{SenderSSRC: peerSSRC, MediaSSRC: toPeerSSRC},
		&rtcp.TransportLayerNack{SenderSSRC: peerSSRC, MediaSSRC: toPeerSSRC,
			Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{toPeer[5002], toPeer[5004], toPeer[5014]})})
	fb := relay.readRTCP(t, uadRelayRTCP, e.cname)
	if len(fb) != 2 {
		t.Fatalf("relay endpoint got %v, want a PLI and a NACK", fb)
	}
	if pli, ok := fb[0].(*rtcp.PictureLossIndication); !ok || pli.MediaSSRC != relaySSRC || pli.SenderSSRC != toRelaySSRC {
		t.Errorf("PLI to the relay endpoint: %v, want about %x from %x", fb[0], uint32(relaySSRC), toRelaySSRC)
	}
	if nack, ok := fb[1].(*rtcp.TransportLayerNack); !ok || nack.MediaSSRC != relaySSRC || nack.SenderSSRC != toRelaySSRC ||
		!slices.Equal(nackSeqs(nack), []uint16{5002, 5004, 5014}) {
		t.Errorf("NACK to the relay endpoint: %v, want 5002 5004 5014 of %x", fb[1], uint32(relaySSRC))
	}

	// The relay endpoint's feedback goes to the peer's RTCP port.
	relay.sendRTCP(t, uadRelayRTCP, relaySSRC, &rtcp.TransportLayerNack{SenderSSRC: relaySSRC, MediaSSRC: toRelaySSRC,
		Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{toRelay[4464], toRelay[24464]})},
		&rtcp.PictureLossIndication{SenderSSRC: relaySSRC, MediaSSRC: toRelaySSRC})
	fb = peer.readRTCP(t, uadRTCP, e.cname)
	if len(fb) != 2 {
		t.Fatalf("peer got %v, want a NACK and a PLI", fb)
	}
	if nack, ok := fb[0].(*rtcp.TransportLayerNack); !ok || nack.MediaSSRC != peerSSRC || nack.SenderSSRC != toPeerSSRC ||
		!slices.Equal(nackSeqs(nack), []uint16{4464, 24464}) {
		t.Errorf("NACK to the peer: %v, want 4464 24464 of %x", fb[0], uint32(peerSSRC))
	}
	if pli, ok := fb[1].(*rtcp.PictureLossIndication); !ok || pli.MediaSSRC != peerSSRC || pli.SenderSSRC != toPeerSSRC {
		t.Errorf("PLI to the peer: %v, want about %x from %x", fb[1], uint32(peerSSRC), toPeerSSRC)
	}
}

// A reordered packet keeps its relative timestamp and its own marker bit;
// only a jump of more than 10 s, either way, or a new SSRC re-bases.
func TestForwardReorderedKeepsTiming(t *testing.T) {
	for _, video := range []bool{false, true} {
		e := newTestEngine(t, 32500, 32509)
		s, err := e.NewStream(video, false)
		if err != nil {
			t.Fatal(err)
		}
		peer := peerSocket(t)
		remote := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		cfg := StreamConfig{Mode: ModeEcho, Params: pcmuParams(remote), Video: vp8Params(remote), Send: true, Accept: true}
		s.Configure(cfg)
		rate := uint32(8000)
		pt := uint8(0)
		if video {
			rate, pt = 90000, 96
		}
		step := rate / 50
		send := func(ssrc uint32, seq uint16, ts uint32, marker bool) rtp.Packet {
			b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: marker}, Payload: make([]byte, 160)}).Marshal()
			peer.WriteToUDP(b, net.UDPAddrFromAddrPort(s.LocalAddr()))
			return readRTP(t, peer)
		}
		const base = 1<<32 - 100 // the timestamps wrap as well
		first := send(1, 10, base, false)
		steps := []struct {
			ssrc         uint32
			seq          uint16
			ts           uint32 // relative to base
			marker       bool
			rebase, mark bool
		}{
			{1, 11, step, false, false, false},
			{1, 13, 3 * step, true, false, true},
			{1, 12, 2 * step, false, false, false}, // late
			{1, 14, 4 * step, false, false, false},
			{1, 15, 4*step + 5*rate, false, false, false}, // 5 s jump: loss, not a new source
			{1, 16, 4*step + 16*rate, false, true, true},  // 11 s after
			{1, 17, 4*step + 4*rate, false, true, true},   // 12 s before
			{1, 18, 4*step + 4*rate + step, false, false, false},
			{2, 19, 4*step + 4*rate + 2*step, false, true, true}, // new SSRC
		}
		offset := first.Timestamp - base
		for i, st := range steps {
			got := send(st.ssrc, st.seq, base+st.ts, st.marker)
			if got.Marker != st.mark {
				t.Errorf("video=%v step %d: marker %v, want %v", video, i, got.Marker, st.mark)
			}
			if st.rebase {
				offset = got.Timestamp - (base + st.ts)
			} else if got.Timestamp != base+st.ts+offset {
				t.Errorf("video=%v step %d: ts %d, want %d (the same offset)", video, i, got.Timestamp, base+st.ts+offset)
			}
		}
		s.Close()
	}
}

// feedbackRig is a video echo stream that has forwarded 200 packets, and
// a NACK about some of them as the peer would send it.
func feedbackRig(t testing.TB) (s *Stream, nack []byte, from netip.AddrPort) {
	e := newTestEngine(t, 32700, 32709)
	s, err := e.NewStream(true, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	peer := newEndpoint(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Video: vp8Params(peer.addr()), Send: true, Accept: true})
	var conv [maxPacket]byte
	payload := make([]byte, 1000)
	s.mu.Lock()
	for i := 0; i < 200; i++ {
		hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(40000 + i), Timestamp: uint32(i/4) * 3000, SSRC: 7}
		s.forward(s.toPeer, s.cfg.Video.Remote, &hdr, payload, 0, conv[:], time.Now())
	}
	last := s.toPeer.hdr.SequenceNumber
	s.mu.Unlock()
	nack, err = rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 9},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 9, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "peer"}}}}},
		&rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: s.toPeer.hdr.SSRC,
			Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{last - 50, last - 48, last - 47, last - 20, last - 3})},
		&rtcp.PictureLossIndication{SenderSSRC: 9, MediaSSRC: s.toPeer.hdr.SSRC},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, nack, peer.rtcp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Feedback is translated and sent without allocating.
func TestFeedbackAllocatesNothing(t *testing.T) {
	s, nack, from := feedbackRig(t)
	var out [maxPacket]byte
	s.mu.Lock()
	n := s.feedback(nack, s.toPeer, s.toPeer.hdr.SSRC, out[:])
	last := s.toPeer.hdr.SequenceNumber
	s.mu.Unlock()
	pkts, err := rtcp.Unmarshal(out[:n])
	if err != nil || len(pkts) != 4 {
		t.Fatalf("feedback %v %v, want RR, SDES, NACK, PLI", pkts, err)
	}
	// uad wrote 40000+i as last-199+i.
	want := []uint16{40000 + 149, 40000 + 151, 40000 + 152, 40000 + 179, 40000 + 196}
	if nack, ok := pkts[2].(*rtcp.TransportLayerNack); !ok || nack.MediaSSRC != 7 || !slices.Equal(nackSeqs(nack), want) {
		t.Fatalf("NACK %v, want %v of SSRC 7 (last sent %d)", pkts[2], want, last)
	}
	if a := testing.AllocsPerRun(1000, func() { s.peerRTCP(nack, from, out[:]) }); a != 0 {
		t.Errorf("feedback allocates %.1f times per packet", a)
	}
}

func BenchmarkFeedbackNACK(b *testing.B) {
	s, nack, from := feedbackRig(b)
	var out [maxPacket]byte
	b.ReportAllocs()
	for b.Loop() {
		s.peerRTCP(nack, from, out[:])
	}
}

// Forwarding video also records each packet for feedback.
func BenchmarkForwardVideo(b *testing.B) {
	e := newTestEngine(b, 32710, 32719)
	s, err := e.NewStream(true, false)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(b)
	s.cfg = StreamConfig{Mode: ModeEcho, Video: vp8Params(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true}
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}
	payload := make([]byte, 1000)
	conv := make([]byte, 1500)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		hdr.SequenceNumber++
		if i%4 == 0 {
			hdr.Timestamp += 3000
		}
		s.forward(s.toPeer, s.cfg.Video.Remote, &hdr, payload, 0, conv, time.Now())
	}
}

// FuzzRTCPFeedback feeds arbitrary datagrams to the feedback path: nothing
// panics, and whatever uad sends on is a well-formed compound packet.
func FuzzRTCPFeedback(f *testing.F) {
	s, nack, _ := feedbackRig(f)
	f.Add(nack)
	f.Add([]byte{0x81, 205, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{0x84, 206, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0})
	f.Add([]byte{0xa1, 206, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var out [maxPacket]byte
		s.mu.Lock()
		// Aim the input at uad's stream, so that it is translated.
		if len(pkt) >= 12 {
			copy(pkt[8:12], []byte{byte(s.toPeer.hdr.SSRC >> 24), byte(s.toPeer.hdr.SSRC >> 16), byte(s.toPeer.hdr.SSRC >> 8), byte(s.toPeer.hdr.SSRC)})
		}
		n := s.feedback(pkt, s.toPeer, s.toPeer.hdr.SSRC, out[:])
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if !validCompound(out[:n]) {
			t.Fatalf("sent malformed RTCP % x", out[:n])
		}
		pkts, err := rtcp.Unmarshal(out[:n])
		if err != nil || len(pkts) < 3 {
			t.Fatalf("sent %v %v for % x", pkts, err, pkt)
		}
		checkCompoundHead(t, pkts, s.eng.cname)
	})
}
