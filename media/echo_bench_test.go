package media

import (
	"errors"
	"flag"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

var echoStreams = flag.Int("echo.streams", 100, "BenchmarkEchoPath: echoing streams of each kind")

// BenchmarkEchoPath sends, per op, one RTP packet to each of -echo.streams
// streams of the engine in echo mode and to each of as many bare echoes
// (a goroutine per socket that writes back what it reads: the least a Go
// program does), interleaved, and reads every echo. Both share every
// disturbance of the machine; a CPU profile splits their costs:
//
//	go test ./media -run '^$' -bench EchoPath -echo.streams 1000 -cpuprofile cpu.out
//	go tool pprof -top -focus 'readPeer' media.test cpu.out   # the engine
//	go tool pprof -top -focus 'bareEcho' media.test cpu.out   # bare Go
//
// Many streams show the cost of each packet touching another stream's
// state, which a few do not.
func BenchmarkEchoPath(b *testing.B) {
	n := *echoStreams
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 7}, Payload: make([]byte, 160)}).Marshal()
	e := newTestEngine(b, 34000, 34000+4*n)
	targets := make([]netip.AddrPort, 0, 2*n)
	peers := make([]*net.UDPConn, 0, 2*n)
	for range n {
		s, err := e.NewStream(false, false)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		peer := peerSocket(b)
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true})
		targets = append(targets, s.LocalAddr())
		peers = append(peers, peer)

		c := peerSocket(b)
		go bareEcho(c)
		targets = append(targets, c.LocalAddr().(*net.UDPAddr).AddrPort())
		peers = append(peers, peerSocket(b))
	}
	buf := make([]byte, 1500)
	for _, p := range peers {
		_ = p.SetReadDeadline(time.Now().Add(time.Hour))
	}
	var seq uint16
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		seq++
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		// Every other op in reverse: neither kind is always first to send
		// or to be waited for.
		for k := range peers {
			i := k
			if seq%2 == 1 {
				i = len(peers) - 1 - k
			}
			if _, err := peers[i].WriteToUDPAddrPort(pkt, targets[i]); err != nil {
				b.Fatal(err)
			}
		}
		for k := range peers {
			i := k
			if seq%2 == 1 {
				i = len(peers) - 1 - k
			}
			if _, err := peers[i].Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// bareEcho writes back every datagram until the socket closes.
func bareEcho(c *net.UDPConn) {
	var buf [1500]byte
	for {
		m, from, err := c.ReadFromUDPAddrPort(buf[:])
		if errors.Is(err, net.ErrClosed) {
			return
		}
		_, _ = c.WriteToUDPAddrPort(buf[:m], from)
	}
}
