package media

import (
	"bytes"
	"net"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

func newTestEngine(t testing.TB, min, max int) *Engine {
	t.Helper()
	e, err := NewEngine(zerolog.Nop(), EngineConfig{
		Bind: netip.MustParseAddr("127.0.0.1"), PortMin: min, PortMax: max,
		HoldTone: "440/300,0/3700", Tone: "440",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// peerSocket is the far end of a test stream.
func peerSocket(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pcmuParams(remote netip.AddrPort) AudioParams {
	ls := &LocalStream{Kind: "audio", Formats: AudioFormats([]Law{PCMU, PCMA}, true)}
	rs := &RemoteStream{Kind: "audio", Formats: ls.Formats}
	p, _ := NegotiateAudio(ls, rs, ls.Formats, []Law{PCMU, PCMA})
	p.Remote = remote
	return p
}

func readRTP(t *testing.T, c *net.UDPConn) rtp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no RTP from uad: %v", err)
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return p
}

// Echoed packets carry uad's own SSRC and continuous numbering, and a
// switch to a generated source keeps both (with the marker bit set).
func TestStreamEchoThenToneContinuity(t *testing.T) {
	e := newTestEngine(t, 31000, 31009)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	remote := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(remote), Send: true, Accept: true})

	to := net.UDPAddrFromAddrPort(s.LocalAddr())
	var last rtp.Packet
	for i := 0; i < 10; i++ {
		in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: uint16(500 + i), Timestamp: uint32(9000 + 160*i), SSRC: 0xdecafbad}, Payload: make([]byte, 160)}
		b, _ := in.Marshal()
		if _, err := peer.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
		got := readRTP(t, peer)
		if got.SSRC == 0xdecafbad {
			t.Fatalf("echo reused the peer's SSRC")
		}
		if got.PayloadType != 0 {
			t.Fatalf("echo PT = %d, want 0 (PCMA converted to the negotiated PCMU)", got.PayloadType)
		}
		if i > 0 {
			if got.SSRC != last.SSRC || got.SequenceNumber != last.SequenceNumber+1 || got.Timestamp-last.Timestamp != 160 {
				t.Fatalf("packet %d: ssrc %x seq %d ts %d after ssrc %x seq %d ts %d", i, got.SSRC, got.SequenceNumber, got.Timestamp, last.SSRC, last.SequenceNumber, last.Timestamp)
			}
		}
		last = got
	}
	s.Configure(StreamConfig{Mode: ModeTone, Params: pcmuParams(remote), Send: true, Accept: true})
	got := readRTP(t, peer)
	if got.SSRC != last.SSRC || got.SequenceNumber != last.SequenceNumber+1 || !got.Marker || got.Timestamp == last.Timestamp {
		t.Fatalf("after source change: ssrc %x seq %d marker %v ts %d; before ssrc %x seq %d ts %d",
			got.SSRC, got.SequenceNumber, got.Marker, got.Timestamp, last.SSRC, last.SequenceNumber, last.Timestamp)
	}
	next := readRTP(t, peer)
	if next.SequenceNumber != got.SequenceNumber+1 || next.Timestamp-got.Timestamp != 160 || next.Marker {
		t.Fatalf("tone packets not paced: seq %d->%d ts %d->%d", got.SequenceNumber, next.SequenceNumber, got.Timestamp, next.Timestamp)
	}
	if st := s.Stats(); st.PacketsReceived != 10 || st.PacketsSent < 12 {
		t.Errorf("stats = %+v", st)
	}
}

func TestPortPoolExhaustion(t *testing.T) {
	e := newTestEngine(t, 31100, 31103) // two pairs
	a, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewStream(false, false); err != ErrNoPorts {
		t.Fatalf("third stream: err = %v, want ErrNoPorts", err)
	}
	a.Close()
	c, err := e.NewStream(false, false)
	if err != nil {
		t.Fatalf("port not returned on close: %v", err)
	}
	b.Close()
	c.Close()
	if e.FreePairs() != 2 {
		t.Errorf("free pairs = %d, want 2", e.FreePairs())
	}
}

// The per-packet path (translate, convert, write) allocates nothing.
// forwardFamilies are the address families forwarding is measured in: the
// stream's bind address and its peer's socket.
var forwardFamilies = []struct {
	name string
	bind netip.Addr
	peer func(testing.TB) *net.UDPConn
}{
	{"IPv4", netip.MustParseAddr("127.0.0.1"), peerSocket},
	{"IPv6", netip.IPv6Loopback(), peerSocket6},
}

// echoStream is an echo stream of e on bind toward a new peer socket.
func echoStream(tb testing.TB, e *Engine, bind netip.Addr, newPeer func(testing.TB) *net.UDPConn) *Stream {
	tb.Helper()
	s, err := e.NewStreamOn(bind, netip.Addr{}, false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	peer := newPeer(tb)
	s.cfg = StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true}
	return s
}

func TestForwardAllocatesNothing(t *testing.T) {
	e := newTestEngine(t, 31200, 31209)
	for _, fam := range forwardFamilies {
		s := echoStream(t, e, fam.bind, fam.peer)
		pkt := make([]byte, rtpHeaderLen+160) // as received: the payload after a header
		conv := make([]byte, 1500)
		now := time.Now()
		for _, pt := range []uint8{0, 8} { // as negotiated (sent in place), and converted
			hdr := rtp.Header{Version: 2, PayloadType: pt, SSRC: 1}
			allocs := testing.AllocsPerRun(1000, func() {
				hdr.SequenceNumber++
				hdr.Timestamp += 160
				s.forward(s.toPeer, s.cfg.Params.Remote, &hdr, pkt, rtpHeaderLen, conv, now)
			})
			if allocs != 0 {
				t.Errorf("%s, PT %d: forward allocates %.1f times per packet", fam.name, pt, allocs)
			}
		}
		// A G.722 call sent G.711 converts through linear audio, still
		// with nothing allocated once the converter exists.
		s.cfg.Params = g722Params(s.cfg.Params.Remote)
		hdr := rtp.Header{Version: 2, PayloadType: 0, SSRC: 2}
		allocs := testing.AllocsPerRun(1000, func() {
			hdr.SequenceNumber++
			hdr.Timestamp += 160
			s.forward(s.toPeer, s.cfg.Params.Remote, &hdr, pkt, rtpHeaderLen, conv, now)
		})
		if allocs != 0 {
			t.Errorf("%s, PCMU to G.722: forward allocates %.1f times per packet", fam.name, allocs)
		}
	}
}

func BenchmarkForwardPacket(b *testing.B) {
	e := newTestEngine(b, 31300, 31309)
	for _, fam := range forwardFamilies {
		b.Run(fam.name, func(b *testing.B) {
			s := echoStream(b, e, fam.bind, fam.peer)
			hdr := rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}
			pkt := make([]byte, rtpHeaderLen+160)
			conv := make([]byte, 1500)
			b.ReportAllocs()
			for b.Loop() {
				hdr.SequenceNumber++
				hdr.Timestamp += 160
				s.forward(s.toPeer, s.cfg.Params.Remote, &hdr, pkt, rtpHeaderLen, conv, time.Now())
			}
		})
	}
}

// uad reports on the streams it sends: a sender report with a reception
// report block on what the peer sent.
func TestStreamSenderReport(t *testing.T) {
	e := newTestEngine(t, 31900, 31909)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	remote := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(remote), Send: true, Accept: true})
	to := net.UDPAddrFromAddrPort(s.LocalAddr())
	for i := 0; i < 10; i++ {
		if i == 4 {
			continue // one lost
		}
		in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(160 * i), SSRC: 77}, Payload: make([]byte, 160)}
		b, _ := in.Marshal()
		peer.WriteToUDP(b, to)
		readRTP(t, peer)
	}
	b, dst := s.report(time.Now())
	if b == nil || dst.Port() != remote.Port()+1 {
		t.Fatalf("no report, or to %v", dst)
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 2 {
		t.Fatalf("report has %d packets, want SR and SDES", len(pkts))
	}
	checkCompoundHead(t, pkts, e.cname)
	if !regexp.MustCompile(`^uad-[0-9a-f]{16}$`).MatchString(e.cname) {
		t.Errorf("CNAME %q, want uad-<16 hex>", e.cname)
	}
	sr, ok := pkts[0].(*rtcp.SenderReport)
	if !ok || sr.PacketCount != 9 || len(sr.Reports) != 1 || sr.Reports[0].SSRC != 77 || sr.Reports[0].TotalLost != 1 || sr.Reports[0].LastSequenceNumber != 9 {
		t.Fatalf("report = %+v", pkts[0])
	}
}

// RTP from anywhere but the negotiated address is dropped; with latching
// the first source is followed, then held to.
func TestStreamRTPBleedAndLatching(t *testing.T) {
	e := newTestEngine(t, 32000, 32009)
	for _, latching := range []bool{false, true} {
		s, err := e.NewStream(false, false)
		if err != nil {
			t.Fatal(err)
		}
		peer, stranger := peerSocket(t), peerSocket(t)
		sdpAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		if latching {
			sdpAddr = netip.AddrPortFrom(sdpAddr.Addr(), 9) // NAT: the SDP names another port
		}
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(sdpAddr), Send: true, Accept: true, Latching: latching})
		to := net.UDPAddrFromAddrPort(s.LocalAddr())
		pkt := func(seq uint16) []byte {
			b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, SSRC: 1}, Payload: make([]byte, 160)}).Marshal()
			return b
		}
		if latching {
			peer.WriteToUDP(pkt(1), to) // latches onto the peer's real address
			if got := readRTP(t, peer); got.PayloadType != 0 {
				t.Fatalf("echo after latching: PT %d", got.PayloadType)
			}
		}
		stranger.WriteToUDP(pkt(2), to)
		peer.WriteToUDP(pkt(3), to)
		readRTP(t, peer) // the peer's own packet is echoed
		stranger.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := stranger.Read(make([]byte, 1500)); err == nil {
			t.Errorf("latching=%v: a stranger's RTP was answered", latching)
		}
		if st := s.Stats(); st.PacketsReceived < 1 || s.bleed.Load() != 1 {
			t.Errorf("latching=%v: received %d, dropped %d; want the stranger's one packet dropped", latching, st.PacketsReceived, s.bleed.Load())
		}
		s.Close()
	}
}

// Only the peer's RTP counts: packets from another address are dropped
// before they touch the stream's counters, its last-received time (which
// media.rtp_timeout reads) or the SSRC feedback is about, and the engine
// keeps counting them after the stream is closed.
func TestStreamStrayRTPNotCounted(t *testing.T) {
	e := newTestEngine(t, 32100, 32109)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	peer, stranger := peerSocket(t), peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true})
	to := net.UDPAddrFromAddrPort(s.LocalAddr())
	pkt := func(ssrc uint32, seq uint16, size int) []byte {
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: make([]byte, size)}).Marshal()
		return b
	}
	// Only a stranger sends, then the peer: the peer's echo proves the
	// stranger's packets, queued before it, were read.
	for i := 0; i < 3; i++ {
		stranger.WriteToUDP(pkt(0xbad, uint16(i), 80), to)
	}
	peer.WriteToUDP(pkt(0x600d, 1, 160), to)
	readRTP(t, peer)
	st := s.Stats()
	if st.PacketsReceived != 1 || st.BytesReceived != 160 {
		t.Errorf("received %d packets, %d bytes; want only the peer's 1 packet of 160 bytes", st.PacketsReceived, st.BytesReceived)
	}
	if got := s.peerSSRC.Load(); got != 0x600d {
		t.Errorf("peer SSRC = %#x, want the peer's 0x600d", got)
	}
	if got := e.StrayPackets(); got != 3 {
		t.Errorf("StrayPackets = %d, want 3", got)
	}

	// A stranger's packet after the peer's changes nothing of the peer's.
	handled := make(chan *Stream, 4)
	hook := func(s *Stream, at string) {
		if at == "rtp" {
			select {
			case handled <- s:
			default:
			}
		}
	}
	testHook.Store(&hook)
	defer testHook.Store(nil)
	waitHandled := func(want *Stream) {
		t.Helper()
		select {
		case got := <-handled:
			if got != want {
				t.Fatalf("a packet was handled by another stream")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the packet was not read")
		}
	}
	last := s.Stats().LastReceived
	stranger.WriteToUDP(pkt(0xbad, 3, 80), to)
	waitHandled(s)
	// Stats waits for the mutex the hook ran under: the packet is done.
	if st := s.Stats(); st.PacketsReceived != 1 || !st.LastReceived.Equal(last) || s.peerSSRC.Load() != 0x600d {
		t.Errorf("after a stranger's packet: received %d, last %v (was %v), peer SSRC %#x", st.PacketsReceived, st.LastReceived, last, s.peerSSRC.Load())
	}

	// A stream with no peer address yet: a stranger must not make it look
	// alive (media.rtp_timeout reads LastReceived).
	quiet, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	quiet.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(netip.MustParseAddrPort("127.0.0.1:9")), Send: true, Accept: true})
	stranger.WriteToUDP(pkt(0xbad, 9, 80), net.UDPAddrFromAddrPort(quiet.LocalAddr()))
	waitHandled(quiet)
	if st := quiet.Stats(); st.PacketsReceived != 0 || st.BytesReceived != 0 || !st.LastReceived.IsZero() || quiet.peerSSRC.Load() != 0 {
		t.Errorf("a stranger's packet counted as the peer's: %+v", st)
	}
	s.Close()
	quiet.Close()
	if got := e.StrayPackets(); got != 5 {
		t.Errorf("StrayPackets = %d after the streams closed, want 5", got)
	}
}

// Jitter over a real socket stays small for a steady stream whose RTP
// timestamps cross 2^32, and so does the value reported in RTCP.
func TestStreamJitterAcrossTimestampWrap(t *testing.T) {
	e := newTestEngine(t, 32200, 32209)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true})
	to := net.UDPAddrFromAddrPort(s.LocalAddr())
	base := uint32(1<<32 - 5*160)
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 12; i++ {
		if i > 0 {
			<-tick.C // pacing, not synchronisation
		}
		// The timestamp follows the send time, so scheduling delays of the
		// test do not read as jitter; only the wrap could.
		ts := base + uint32(time.Since(start)*8000/time.Second)
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: ts, SSRC: 3}, Payload: make([]byte, 160)}).Marshal()
		peer.WriteToUDP(b, to)
		readRTP(t, peer)
	}
	if ts := base + uint32(time.Since(start)*8000/time.Second); ts > base {
		t.Fatalf("the stream did not cross the wrap: %d", ts)
	}
	if j := s.Stats().Jitter; j >= time.Millisecond {
		t.Errorf("jitter = %v, want below 1ms", j)
	}
	b, _ := s.report(time.Now())
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	sr := pkts[0].(*rtcp.SenderReport)
	if len(sr.Reports) != 1 || sr.Reports[0].Jitter >= 8 {
		t.Errorf("RTCP jitter = %+v, want below 8 (1 ms at 8 kHz)", sr.Reports)
	}
}

// A forwarded packet goes out from the buffer it came in, its header
// written over the received one: whatever that header held (CSRCs, an
// extension) and its padding do not leak into the packet sent, and the
// payload is the one received, converted where the laws differ.
func TestEchoRewritesTheHeaderInPlace(t *testing.T) {
	e := newTestEngine(t, 32300, 32309)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true})
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = byte(i)
	}
	for _, pt := range []uint8{0, 8} {
		in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: 9, Timestamp: 1600, SSRC: 0xfeed,
			CSRC: []uint32{1, 2}, Padding: true, PaddingSize: 4}, Payload: payload}
		if err := in.Header.SetExtension(1, []byte{0xaa, 0xbb}); err != nil {
			t.Fatal(err)
		}
		b, err := in.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := peer.WriteToUDPAddrPort(b, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		got := readRTP(t, peer)
		want := payload
		if pt == 8 {
			want = make([]byte, len(payload))
			Transcode(want, payload, PCMA, PCMU)
		}
		if got.SSRC == 0xfeed || len(got.CSRC) != 0 || got.Extension || got.Padding || got.PayloadType != 0 || !bytes.Equal(got.Payload, want) {
			t.Errorf("PT %d echoed as %+v, payload % x", pt, got.Header, got.Payload[:8])
		}
	}
}
