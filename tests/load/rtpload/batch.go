package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The generator's RTP goes through a few sockets, one per shard, each
// bound to the wildcard address on its own port. Every call has a loopback
// address of its own (127.0.0.0/8 is all local on Linux): its packets
// leave with that source address (IP_PKTINFO) and uad's come back to it,
// so to uad each call is a peer of its own, while the generator sends a
// whole slot of calls with one sendmmsg and reads whatever has arrived with
// one recvmmsg.
//
// The sockets are raw non-blocking descriptors that the Go runtime's poller
// does not know: a shard sends and reads on its own 2 ms cadence and never
// waits for one. A socket in an epoll set makes the kernel wake that epoll
// for every datagram sent (the send buffer frees at once on loopback) and
// every one received, which costs the generator, and uad, more than the
// datagrams themselves.

// mmsghdr is struct mmsghdr: a message and the bytes the kernel moved.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// pktinfoSpace is the room of one IP_PKTINFO control message.
var pktinfoSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// rxOOB is the control room of a received datagram: its destination
// (IP_PKTINFO) and kernel arrival time (SO_TIMESTAMPNS).
var rxOOB = unix.CmsgSpace(unix.SizeofInet4Pktinfo) + unix.CmsgSpace(16)

// maxBatch bounds one sendmmsg or recvmmsg (the kernel's UIO_MAXIOV).
const maxBatch = 1024

// shardConn is one shard's socket.
type shardConn struct {
	fd     int
	port   int
	closed atomic.Bool
}

// listenShard binds the wildcard address on port and asks for each
// datagram's destination and arrival time.
func listenShard(port int) (*shardConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	for _, o := range []struct{ level, name, v int }{
		{unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
		{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.v); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("socket options: %w", err)
		}
	}
	// A whole period of replies fits, even when the shard is late; FORCE
	// passes net.core.rmem_max where allowed (root).
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &shardConn{fd: fd, port: port}, nil
}

// close closes the socket; the shard's goroutine has stopped using it.
func (c *shardConn) close() {
	if !c.closed.Swap(true) {
		unix.Close(c.fd)
	}
}

// sendBatch holds the messages of one sendmmsg; every pointer in the
// headers points into memory the batch or its calls keep.
type sendBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	bufs  []byte // plen bytes a message
	calls []*call
	plen  int
	n     int
}

func newSendBatch(size, plen int) *sendBatch {
	b := &sendBatch{hdrs: make([]mmsghdr, size), iovs: make([]unix.Iovec, size),
		bufs: make([]byte, size*plen), calls: make([]*call, size), plen: plen}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*plen]
		b.iovs[i].SetLen(plen)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b
}

// next returns the packet buffer of c's next message, nil when the batch
// is full.
func (b *sendBatch) next(c *call) []byte {
	if b.n == len(b.hdrs) {
		return nil
	}
	h := &b.hdrs[b.n].hdr
	h.Name = (*byte)(unsafe.Pointer(&c.name))
	h.Namelen = unix.SizeofSockaddrInet4
	h.Control = &c.pktinfo[0]
	h.SetControllen(len(c.pktinfo))
	b.calls[b.n] = c
	b.n++
	return b.bufs[(b.n-1)*b.plen : b.n*b.plen]
}

// flush sends the batch. A message the kernel refuses, or that finds the
// send buffer full, is skipped and counted on its call; the error of the
// last one is returned.
func (b *sendBatch) flush(c *shardConn) error {
	var last error
	for sent := 0; sent < b.n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&b.hdrs[sent])),
			uintptr(min(b.n-sent, maxBatch)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			b.calls[sent].sendFailed.Add(1)
			sent++
			last = e
			continue
		}
		sent += int(r)
	}
	clear(b.calls[:b.n])
	b.n = 0
	return last
}

// recvBatch holds the messages of one recvmmsg.
type recvBatch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	bufs []byte
	oob  []byte
	size int // bytes of room a datagram
}

func newRecvBatch(count, size int) *recvBatch {
	b := &recvBatch{hdrs: make([]mmsghdr, count), iovs: make([]unix.Iovec, count),
		bufs: make([]byte, count*size), oob: make([]byte, count*rxOOB), size: size}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*size]
		b.iovs[i].SetLen(size)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
		b.hdrs[i].hdr.Control = &b.oob[i*rxOOB]
	}
	return b
}

// readNow reads what is queued, without waiting: 0 when nothing is.
func (b *recvBatch) readNow(c *shardConn) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].hdr.SetControllen(rxOOB)
		b.hdrs[i].hdr.Flags = 0
		b.hdrs[i].n = 0
	}
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, e
	}
}

// message returns datagram i of the last read, the address it was sent to
// and its kernel arrival time (Unix ns; 0 if unknown).
func (b *recvBatch) message(i int) (data []byte, dst netip.Addr, arrival int64) {
	h := &b.hdrs[i]
	data = b.bufs[i*b.size : i*b.size+int(min(h.n, uint32(b.size)))]
	oob := b.oob[i*rxOOB : i*rxOOB+int(h.hdr.Controllen)]
	hdrLen := unix.CmsgLen(0)
	for len(oob) >= hdrLen {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(c.Len)
		if l < hdrLen || l > len(oob) {
			break
		}
		d := oob[hdrLen:l]
		switch {
		case c.Level == unix.IPPROTO_IP && c.Type == unix.IP_PKTINFO && len(d) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&d[0]))
			dst = netip.AddrFrom4(info.Addr)
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS && len(d) >= 16:
			ts := (*unix.Timespec)(unsafe.Pointer(&d[0]))
			arrival = ts.Nano()
		}
		oob = oob[min(unix.CmsgSpace(l-hdrLen), len(oob)):]
	}
	return data, dst, arrival
}

// pktinfo is the IP_PKTINFO control message that sends from src.
func pktinfo(src netip.Addr) []byte {
	b := make([]byte, pktinfoSpace)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	info.Spec_dst = src.As4()
	return b
}

// sockaddr is the kernel's form of an IPv4 address and port.
func sockaddr(ap netip.AddrPort) (unix.RawSockaddrInet4, error) {
	if !ap.Addr().Is4() {
		return unix.RawSockaddrInet4{}, errors.New("not IPv4")
	}
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As4()
	return sa, nil
}
