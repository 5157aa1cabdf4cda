package media

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

var loopback6 = netip.IPv6Loopback()

// peerSocket6 is the far end of a test stream on ::1; it fails the test
// when the machine has no IPv6 loopback.
func peerSocket6(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatalf("IPv6 loopback ::1 is needed (ip -6 addr show lo): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RFC 4566 §5.2, §5.7: an IPv6 session says IN IP6 in o= and c=, and a
// media-level c= overrides the session's, family included.
func TestSDPIPv6(t *testing.T) {
	offer := "v=0\r\no=peer 1 1 IN IP6 2001:db8::7\r\ns=-\r\nc=IN IP6 2001:db8::7\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0\r\n" +
		"m=video 4002 RTP/AVP 96\r\nc=IN IP4 192.0.2.9\r\na=rtpmap:96 VP8/90000\r\n" +
		"m=audio 4004 RTP/AVP 8\r\nc=IN IP6 ::\r\n"
	rs, err := ParseRemote([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		rtp  string
		held bool
	}{{"[2001:db8::7]:4000", false}, {"192.0.2.9:4002", false}, {"invalid AddrPort", true}}
	for i, w := range want {
		st := rs.Streams[i]
		if got := st.RTPAddr().String(); got != w.rtp || st.Held != w.held {
			t.Errorf("m-line %d: RTP to %s held=%v, want %s held=%v", i, got, st.Held, w.rtp, w.held)
		}
	}

	local := NewLocalSession(7, netip.MustParseAddr("2001:db8::1"))
	local.Streams = []LocalStream{{Kind: "audio", Proto: "RTP/AVP", Port: 5000, Formats: AudioFormats([]Law{PCMU}, true), Direction: SendRecv}}
	out := string(local.Marshal())
	for _, line := range []string{"o=- 7 7 IN IP6 2001:db8::1\r\n", "c=IN IP6 2001:db8::1\r\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("uad's SDP lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, "IP4") || strings.Contains(out, "[") {
		t.Errorf("an IPv6 SDP names IP4 or writes brackets:\n%s", out)
	}
	back, err := ParseRemote([]byte(out))
	if err != nil || back.Streams[0].RTPAddr() != netip.MustParseAddrPort("[2001:db8::1]:5000") {
		t.Errorf("uad's IPv6 SDP reads back as %+v, %v", back, err)
	}
	local.LegacyHold = true
	if out := string(local.Marshal()); !strings.Contains(out, "c=IN IP6 ::\r\n") {
		t.Errorf("a legacy hold in IPv6 must write c=IN IP6 ::\n%s", out)
	}
}

func rtpPacket(seq uint16) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x6006}, Payload: bytes.Repeat([]byte{0xff}, 160)}).Marshal()
	return b
}

// A stream opened on ::1 sends and receives over IPv6, drops RTP from
// another IPv6 source, latches onto an IPv6 peer, and takes its ports from
// the same range as IPv4 streams.
func TestStreamIPv6(t *testing.T) {
	e := newTestEngine(t, 33200, 33205) // three pairs, shared by both families
	v4, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	for _, latching := range []bool{false, true} {
		s, err := e.NewStreamOn(loopback6, netip.Addr{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if !s.LocalAddr().Addr().Is6() || s.LocalAddr().Port() < 33200 || s.LocalAddr().Port() > 33205 {
			t.Fatalf("IPv6 stream on %s, want ::1 in the engine's port range", s.LocalAddr())
		}
		peer, stranger := peerSocket6(t), peerSocket6(t)
		sdpAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		if latching {
			sdpAddr = netip.AddrPortFrom(sdpAddr.Addr(), 9) // the SDP names another port
		}
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(sdpAddr), Send: true, Accept: true, Latching: latching})
		to := net.UDPAddrFromAddrPort(s.LocalAddr())
		strayBefore := e.StrayPackets()
		if latching {
			peer.WriteToUDP(rtpPacket(1), to)
			readRTP(t, peer)
		}
		stranger.WriteToUDP(rtpPacket(2), to)
		peer.WriteToUDP(rtpPacket(3), to)
		if got := readRTP(t, peer); got.SSRC == 0x6006 {
			t.Errorf("latching=%v: echo over IPv6 kept the peer's SSRC", latching)
		}
		stranger.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := stranger.Read(make([]byte, 1500)); err == nil {
			t.Errorf("latching=%v: RTP from another IPv6 source was answered", latching)
		}
		if got := e.StrayPackets() - strayBefore; got != 1 {
			t.Errorf("latching=%v: %d stray packets counted, want the stranger's 1", latching, got)
		}
		if latching {
			s.Close()
		} else {
			defer s.Close()
		}
	}
	// v4 and the first IPv6 stream hold two pairs; one is left, then none.
	last, err := e.NewStreamOn(loopback6, netip.Addr{}, false)
	if err != nil {
		t.Fatalf("third pair: %v", err)
	}
	defer last.Close()
	if _, err := e.NewStreamOn(loopback6, netip.Addr{}, false); !errors.Is(err, ErrNoPorts) {
		t.Errorf("a fourth stream in a range of three pairs: %v, want ErrNoPorts", err)
	}
}

// Relay mode across families: the peer on IPv4, the local endpoint on
// [::1]. The sockets facing the endpoint bind in its family, and RTP goes
// through both ways.
func TestRelayIPv6Endpoint(t *testing.T) {
	e := newTestEngine(t, 33210, 33219)
	endpoint := peerSocket6(t)
	endpointAddr := endpoint.LocalAddr().(*net.UDPAddr).AddrPort()
	s, err := e.NewStreamOn(netip.MustParseAddr("127.0.0.1"), endpointAddr.Addr(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.RelayLocal(); got.Addr() != loopback6 {
		t.Fatalf("relay_local = %s, want on ::1 to reach an IPv6 endpoint", got)
	}
	peer := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeRelay, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Relay: endpointAddr, Send: true, Accept: true})

	peer.WriteToUDP(rtpPacket(1), net.UDPAddrFromAddrPort(s.LocalAddr()))
	if got := readRTP(t, endpoint); len(got.Payload) != 160 {
		t.Fatalf("the IPv6 endpoint got %d payload bytes, want the peer's 160", len(got.Payload))
	}
	endpoint.WriteToUDP(rtpPacket(2), net.UDPAddrFromAddrPort(s.RelayLocal()))
	if got := readRTP(t, peer); len(got.Payload) != 160 {
		t.Fatalf("the IPv4 peer got %d payload bytes, want the endpoint's 160", len(got.Payload))
	}
}

func TestRelayBind(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct{ bind, relay, want string }{
		{"127.0.0.1", "127.0.0.1", "127.0.0.1"},
		{"192.0.2.1", "127.0.0.1", "192.0.2.1"},
		{"::1", "::1", "::1"},
		{"127.0.0.1", "::1", "::1"},
		{"::1", "127.0.0.1", "127.0.0.1"},
		{"127.0.0.1", "2001:db8::5", "::"},
		{"::1", "192.0.2.5", "0.0.0.0"},
		{"::1", "::ffff:127.0.0.1", "127.0.0.1"},
	}
	for _, tt := range tests {
		if got := RelayBind(a(tt.bind), a(tt.relay)); got != a(tt.want) {
			t.Errorf("RelayBind(%s, %s) = %s, want %s", tt.bind, tt.relay, got, tt.want)
		}
	}
}

// A stream bound to the IPv6 wildcard serves an IPv4 peer too: RTP from
// it (seen as ::ffff:127.0.0.1) is the peer's, and the echo reaches it.
func TestStreamDualStackWildcard(t *testing.T) {
	e := newTestEngine(t, 33240, 33249)
	s, err := e.NewStreamOn(netip.IPv6Unspecified(), netip.Addr{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, peer := range []*net.UDPConn{peerSocket(t), peerSocket6(t)} {
		remote := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(remote), Send: true, Accept: true})
		strayBefore := e.StrayPackets()
		ip := net.IPv6loopback // the wildcard socket, reached in the peer's family
		if remote.Addr().Is4() {
			ip = net.IPv4(127, 0, 0, 1)
		}
		peer.WriteToUDP(rtpPacket(1), &net.UDPAddr{IP: ip, Port: int(s.LocalAddr().Port())})
		readRTP(t, peer)
		if n := e.StrayPackets() - strayBefore; n != 0 {
			t.Errorf("peer %s: %d packets taken for strays", remote, n)
		}
	}
}
