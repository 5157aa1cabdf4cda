package conformance

// The raw RTP peer: an RTP socket and its RTCP socket (port + 1) on
// 127.0.0.1, with pion/rtp and pion/rtcp doing the marshalling.

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

type rtpPeer struct {
	rtp, rtcp *net.UDPConn
	port      int // RTP; RTCP is port + 1
	ssrc      uint32
	seq       uint16
	ts        uint32
}

// newRTPPeers binds n RTP/RTCP pairs on consecutive ports (an endpoint in
// relay mode is audio at P, video at P + 2).
func newRTPPeers(t *testing.T, n int) []*rtpPeer {
	t.Helper()
	for try := 0; try < 100; try++ {
		probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		base := probe.LocalAddr().(*net.UDPAddr).Port &^ 1
		probe.Close()
		if base+2*n > 65535 {
			continue
		}
		var conns []*net.UDPConn
		for i := 0; i < 2*n; i++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: base + i})
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		if len(conns) < 2*n {
			for _, c := range conns {
				c.Close()
			}
			continue
		}
		var peers []*rtpPeer
		for i := 0; i < n; i++ {
			p := &rtpPeer{rtp: conns[2*i], rtcp: conns[2*i+1], port: base + 2*i,
				ssrc: 0x5000_0000 + uint32(base+2*i), seq: 1000, ts: 8000}
			peers = append(peers, p)
			t.Cleanup(func() { p.rtp.Close(); p.rtcp.Close() })
		}
		return peers
	}
	t.Fatal("no consecutive free UDP ports for RTP")
	return nil
}

func newRTPPeer(t *testing.T) *rtpPeer { return newRTPPeers(t, 1)[0] }

// send writes one RTP packet.
func (p *rtpPeer) send(t *testing.T, to netip.AddrPort, pkt *rtp.Packet) {
	t.Helper()
	b, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.rtp.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatalf("rtp write: %v", err)
	}
}

// sendAudio writes the next 20 ms PCMU frame of the peer's stream; the
// first payload byte is tag, to recognise it when it comes back.
func (p *rtpPeer) sendAudio(t *testing.T, to netip.AddrPort, tag byte) {
	t.Helper()
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = 0xFF
	}
	payload[0] = tag
	p.send(t, to, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: p.seq,
		Timestamp: p.ts, SSRC: p.ssrc}, Payload: payload})
	p.seq++
	p.ts += 160
}

// read waits up to timeout for an RTP packet.
func (p *rtpPeer) read(timeout time.Duration) (*rtp.Packet, netip.AddrPort, error) {
	buf := make([]byte, 1500)
	_ = p.rtp.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, from, err := p.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, from, err
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) == nil && pkt.Version == 2 {
			return &pkt, from, nil
		}
	}
}

// readTagged waits for the packet whose first payload byte is tag (an echo
// of one the peer sent), skipping others.
func (p *rtpPeer) readTagged(t *testing.T, tag byte) *rtp.Packet {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		pkt, _, err := p.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("rtp: no packet tagged %d came back: %v", tag, err)
		}
		if len(pkt.Payload) > 0 && pkt.Payload[0] == tag {
			return pkt
		}
	}
}

// echoed sends tagged packets to an echoing uad until one comes back, for
// when uad may not yet have taken the SDP that names this peer.
func (p *rtpPeer) echoed(t *testing.T, to netip.AddrPort, tag byte) bool {
	t.Helper()
	end := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) {
		p.sendAudio(t, to, tag)
		wait := time.Now().Add(50 * time.Millisecond)
		for {
			pkt, _, err := p.read(time.Until(wait))
			if err != nil {
				break
			}
			if len(pkt.Payload) > 0 && pkt.Payload[0] == tag {
				return true
			}
		}
	}
	return false
}

// readRTCP waits up to timeout for an RTCP compound packet.
func (p *rtpPeer) readRTCP(timeout time.Duration) ([]rtcp.Packet, error) {
	buf := make([]byte, 1500)
	_ = p.rtcp.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, _, err := p.rtcp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, err
		}
		if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
			return pkts, nil
		}
	}
}

// quiet reports whether RTP stops arriving: a gap of at least gap before
// limit has passed. Packets already on their way are read and dropped.
func (p *rtpPeer) quiet(gap, limit time.Duration) bool {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		_, _, err := p.read(gap)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return true
		}
	}
	return false
}

// addr is where the peer takes RTP.
func (p *rtpPeer) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.port))
}
