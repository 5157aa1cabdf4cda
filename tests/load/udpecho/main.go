// Command udpecho is the least a Go program does to echo RTP: one UDP
// socket per stream, as uad has, each read by a goroutine of its own that
// sends every datagram back to where it came from. tests/load/rtp_load.sh
// (MODE=compare) drives it and uad with the same load from
// tests/load/rtpload, so that uad's CPU per packet can be set against Go's
// own UDP path.
//
//	udpecho -bind 127.0.0.1 -port 11000 -streams 2000
//
// Stream i listens on port+2i (the odd ports stay free, as RTCP's would).
// It prints one line once every socket is bound, and runs until SIGINT or
// SIGTERM.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	bind := flag.String("bind", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 11000, "first port: stream i listens on port+2i")
	streams := flag.Int("streams", 1000, "streams, one socket each")
	flag.Parse()
	ip, err := netip.ParseAddr(*bind)
	if err != nil {
		log.Fatalf("-bind: %v", err)
	}
	if *streams <= 0 || *port <= 0 || *port+2*(*streams-1) > 65535 {
		log.Fatal("-port and -streams must give ports within 1-65535")
	}
	conns := make([]*net.UDPConn, *streams)
	for i := range conns {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(*port+2*i))))
		if err != nil {
			log.Fatalf("stream %d: %v", i, err)
		}
		conns[i] = c
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			echo(c)
		}()
	}
	fmt.Printf("udpecho: %d streams on %s ports %d-%d, pid %d\n", *streams, ip, *port, *port+2*(*streams-1), os.Getpid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
}

// echo sends every datagram back until the socket closes.
func echo(c *net.UDPConn) {
	var buf [1500]byte
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}
