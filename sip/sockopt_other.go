//go:build !unix

package sip

import "net"

// socketBuffers cannot read the sizes back here.
func socketBuffers(*net.UDPConn) (rcv, snd int) { return 0, 0 }
