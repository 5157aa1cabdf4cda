package trace

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// HEP3 chunk types (HEP3 specification, "Generic chunk types").
const (
	hepIPFamily     = 1
	hepIPProto      = 2
	hepIPv4Src      = 3
	hepIPv4Dst      = 4
	hepIPv6Src      = 5
	hepIPv6Dst      = 6
	hepSrcPort      = 7
	hepDstPort      = 8
	hepTimeSec      = 9
	hepTimeUsec     = 10
	hepProtoType    = 11
	hepCaptureID    = 12
	hepPayload      = 15
	hepCorrelation  = 17
	hepProtoTypeSIP = 1
)

// HEP sends messages to a Homer server as HEP3 over UDP. A message that
// cannot go out is dropped: tracing never holds up SIP.
type HEP struct {
	mu        sync.Mutex
	conn      net.Conn
	buf       []byte
	captureID uint32
}

// DialHEP opens the UDP socket towards addr (HOST:PORT).
func DialHEP(addr string, captureID uint32) (*HEP, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	return &HEP{conn: conn, captureID: captureID}, nil
}

// Close closes the socket.
func (h *HEP) Close() error { return h.conn.Close() }

// Send sends one message.
func (h *HEP) Send(at time.Time, transport, src, dst string, raw []byte) {
	s, err := netip.ParseAddrPort(src)
	if err != nil {
		return
	}
	d, err := netip.ParseAddrPort(dst)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = AppendHEP(h.buf[:0], at, transport, s, d, h.captureID, raw)
	_, _ = h.conn.Write(h.buf)
}

// AppendHEP appends the HEP3 packet of one SIP message to b.
func AppendHEP(b []byte, at time.Time, transport string, src, dst netip.AddrPort, captureID uint32, raw []byte) []byte {
	start := len(b)
	b = append(b, "HEP3\x00\x00"...)
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	proto := byte(6) // TCP, and TLS
	if strings.EqualFold(transport, "UDP") {
		proto = 17
	}
	if sa.Is4() && da.Is4() {
		b = hepChunk(b, hepIPFamily, 2)
		b = hepChunk(b, hepIPProto, proto)
		s4, d4 := sa.As4(), da.As4()
		b = hepChunk(b, hepIPv4Src, s4[:]...)
		b = hepChunk(b, hepIPv4Dst, d4[:]...)
	} else {
		b = hepChunk(b, hepIPFamily, 10)
		b = hepChunk(b, hepIPProto, proto)
		s16, d16 := sa.As16(), da.As16()
		b = hepChunk(b, hepIPv6Src, s16[:]...)
		b = hepChunk(b, hepIPv6Dst, d16[:]...)
	}
	b = hepChunk(b, hepSrcPort, byte(src.Port()>>8), byte(src.Port()))
	b = hepChunk(b, hepDstPort, byte(dst.Port()>>8), byte(dst.Port()))
	b = hepChunk32(b, hepTimeSec, uint32(at.Unix()))
	b = hepChunk32(b, hepTimeUsec, uint32(at.Nanosecond()/1000))
	b = hepChunk(b, hepProtoType, hepProtoTypeSIP)
	b = hepChunk32(b, hepCaptureID, captureID)
	if cid := header(raw, "call-id", "i"); cid != nil {
		b = hepChunk(b, hepCorrelation, cid...)
	}
	b = hepChunk(b, hepPayload, raw...)
	binary.BigEndian.PutUint16(b[start+4:], uint16(len(b)-start))
	return b
}

func hepChunk32(b []byte, typ uint16, v uint32) []byte {
	b = hepChunk(b, typ)
	binary.BigEndian.PutUint16(b[len(b)-2:], 10)
	return binary.BigEndian.AppendUint32(b, v)
}

// hepChunk appends a chunk: vendor 0, its type, its length header included.
func hepChunk(b []byte, typ uint16, payload ...byte) []byte {
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(6+len(payload)))
	return append(b, payload...)
}
