package sip

import (
	"net"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/sip/trace"
)

// BenchmarkCapturedDatagram is what capture adds to a SIP datagram written
// and read through sipgo's UDP connection: off, sipgo calls no tracer; on,
// it formats both addresses and uad copies the message into its call's ring.
func BenchmarkCapturedDatagram(b *testing.B) {
	msg := []byte("INVITE sip:uad@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n" +
		"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:uad@127.0.0.1>;tag=2\r\nCall-ID: bench-call\r\n" +
		"CSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n" + strings.Repeat("x", 300))
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer peer.Close()
			conn := &gosip.UDPConnection{PacketConn: a, PacketAddr: a.LocalAddr().String()}
			rec := trace.NewRecorder(200, nil)
			rec.Open("bench-call")
			saved, savedCapture := gosip.SIPDebug, capture.Load()
			defer func() { gosip.SIPDebug = saved; capture.Store(savedCapture) }()
			gosip.SIPDebug = on
			gosip.SIPDebugTracer(tracer{log: zerolog.Nop()})
			var tr gosip.SIPTracer = rec
			capture.Store(&tr)
			buf := make([]byte, 2048)
			to := peer.LocalAddr()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.WriteTo(msg, to); err != nil {
					b.Fatal(err)
				}
				n, from, err := peer.ReadFrom(buf)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := peer.WriteTo(buf[:n], a.LocalAddr()); err != nil {
					b.Fatal(err)
				}
				_ = from
				if _, _, err := conn.ReadFrom(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
