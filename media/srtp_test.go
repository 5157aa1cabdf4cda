package media

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// srtpPeer is the far end of an SRTP stream: it encrypts with its key and
// decrypts uad's packets with uad's, as any SRTP receiver would.
type srtpPeer struct {
	conn   *net.UDPConn
	tx, rx *srtp.Context
	seq    uint16
	ts     uint32
}

func newSRTPPeer(t *testing.T, keys *SRTPKeys) *srtpPeer {
	t.Helper()
	p := &srtpPeer{conn: peerSocket(t), seq: 100}
	var err error
	if p.tx, err = newContext(keys.Remote, keys.Suite); err != nil {
		t.Fatal(err)
	}
	if p.rx, err = newContext(keys.Local, keys.Suite, srtp.SRTPReplayProtection(64)); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *srtpPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// send writes one encrypted PCMU packet of the given payload byte to s.
func (p *srtpPeer) send(t *testing.T, s *Stream, fill byte) {
	t.Helper()
	p.seq++
	p.ts += 160
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: 0x5eed}, Payload: bytes.Repeat([]byte{fill}, 160)}
	plain, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := p.tx.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(enc, s.LocalAddr()); err != nil {
		t.Fatal(err)
	}
}

// read decrypts the next packet uad sent; it fails the test when it does
// not authenticate.
func (p *srtpPeer) read(t *testing.T) rtp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	_ = p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := p.conn.Read(buf)
	if err != nil {
		t.Fatalf("no packet from uad: %v", err)
	}
	plain, err := p.rx.DecryptRTP(nil, buf[:n], nil)
	if err != nil {
		t.Fatalf("uad's packet does not decrypt: %v", err)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(plain); err != nil {
		t.Fatal(err)
	}
	return pkt
}

// readEcho reads until the echo of a packet of payload byte fill (hold
// tone packets still in flight come first).
func (p *srtpPeer) readEcho(t *testing.T, fill byte) rtp.Packet {
	t.Helper()
	for range 100 {
		if pkt := p.read(t); len(pkt.Payload) == 160 && pkt.Payload[0] == fill && pkt.Payload[159] == fill {
			return pkt
		}
	}
	t.Fatalf("no echo of %#x", fill)
	return rtp.Packet{}
}

func testKeys(suite Suite) *SRTPKeys {
	return &SRTPKeys{Suite: suite.Name, Local: NewCrypto(1, suite).Key, Remote: NewCrypto(1, suite).Key}
}

// An SRTP stream echoes, holds (hold tone, encrypted) while its sequence
// numbers wrap, and resumes: the peer's receiver, which saw every packet,
// still authenticates what follows the wrap, so the rollover counter ran on
// with one context. Plain RTP sent to it is dropped before it counts.
func TestSRTPHoldAcrossSequenceWrap(t *testing.T) {
	for _, suite := range Suites {
		t.Run(suite.Name, func(t *testing.T) {
			e := newTestEngine(t, 32800, 32809)
			s, err := e.NewStream(false, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			keys := testKeys(suite)
			p := newSRTPPeer(t, keys)
			live := StreamConfig{Mode: ModeEcho, Params: pcmuParams(p.addr()), Send: true, Accept: true, SRTP: keys}
			s.Configure(live)
			s.mu.Lock()
			s.toPeer.hdr.SequenceNumber = 65530 // the wrap comes while held
			s.mu.Unlock()

			for range 3 {
				p.send(t, s, 0x11)
				p.readEcho(t, 0x11)
			}
			// Plain RTP is not SRTP: dropped, not counted, not echoed.
			plain, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, SSRC: 0x5eed}, Payload: make([]byte, 160)}).Marshal()
			if _, err := p.conn.WriteToUDPAddrPort(plain, s.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			p.send(t, s, 0x22)
			p.readEcho(t, 0x22)
			if st := s.Stats(); st.PacketsReceived != 4 || st.SRTPFailed != 1 {
				t.Fatalf("received %d, failed %d; want 4 and 1", st.PacketsReceived, st.SRTPFailed)
			}

			held := live
			held.LocalHold, held.Accept = true, false
			s.Configure(held)
			var ssrc uint32
			tone, wrapped := false, false
			for i := 0; i < 40 && !(wrapped && tone); i++ {
				pkt := p.read(t)
				ssrc = pkt.SSRC
				wrapped = wrapped || pkt.SequenceNumber < 100
				tone = tone || pkt.Payload[0] != PCMU.Silence() && pkt.Payload[0] != 0x11 && pkt.Payload[0] != 0x22
			}
			if !wrapped || !tone {
				t.Fatalf("while held: wrapped %v, tone heard %v", wrapped, tone)
			}

			s.Configure(live)
			p.send(t, s, 0x33)
			echo := p.readEcho(t, 0x33)
			if roc, _ := p.rx.ROC(ssrc); roc != 1 || echo.SSRC != ssrc {
				t.Fatalf("after resume: ROC %d ssrc %x, want 1 and %x", roc, echo.SSRC, ssrc)
			}
			if got := s.SRTPSuite(); got != suite.Name {
				t.Fatalf("SRTPSuite() = %q", got)
			}
		})
	}
}

// A new key (RFC 4568 §7.1.4) gives a new context that carries the
// rollover counter on; packets the peer sent with its old key before it
// switched still authenticate, so the change leaves no gap, until the new
// key takes its first packet.
func TestSRTPRekey(t *testing.T) {
	e := newTestEngine(t, 32810, 32819)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	suite := Suites[0]
	keys := testKeys(suite)
	p := newSRTPPeer(t, keys)
	cfg := StreamConfig{Mode: ModeEcho, Params: pcmuParams(p.addr()), Send: true, Accept: true, SRTP: keys}
	s.Configure(cfg)
	s.mu.Lock()
	s.toPeer.hdr.SequenceNumber = 65534
	s.mu.Unlock()
	var ssrc uint32
	for _, fill := range []byte{1, 2, 3, 4} { // across the wrap: ROC 1
		p.send(t, s, fill)
		ssrc = p.readEcho(t, fill).SSRC
	}
	// The same keys again (a hold re-INVITE, say) keep the contexts.
	out, in := s.toPeer.srtp, s.srtpIn
	same := *keys
	cfg.SRTP = &same
	s.Configure(cfg)
	if s.toPeer.srtp.ctx != out.ctx || s.srtpIn.cur != in.cur {
		t.Fatal("unchanged keys made new contexts")
	}

	next := &SRTPKeys{Suite: suite.Name, Local: NewCrypto(1, suite).Key, Remote: NewCrypto(1, suite).Key}
	cfg.SRTP = next
	s.Configure(cfg)
	// In flight: a packet the peer encrypted with its old key.
	p.send(t, s, 5)
	if p.rx, err = newContext(next.Local, next.Suite); err != nil {
		t.Fatal(err)
	}
	p.rx.SetROC(ssrc, 1) // what the receiver knew of the stream
	p.readEcho(t, 5)
	oldTx := p.tx
	if p.tx, err = newContext(next.Remote, next.Suite); err != nil {
		t.Fatal(err)
	}
	p.send(t, s, 6)
	p.readEcho(t, 6)
	// The new key took a packet: the old one is retired.
	newTx := p.tx
	p.tx = oldTx
	p.send(t, s, 7)
	p.tx = newTx
	p.send(t, s, 8)
	p.readEcho(t, 8)
	if n := s.srtpFailed.Load(); n != 1 {
		t.Fatalf("%d packets failed authentication, want 1 (the old key's after the switch)", n)
	}
}

// SRTCP: uad's RTCP to an SRTP peer (here a key frame request) is
// encrypted with its key.
func TestSRTCPKeyFrameRequest(t *testing.T) {
	e := newTestEngine(t, 32820, 32829)
	s, err := e.NewStream(true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rtpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 32840})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	rtcpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 32841})
	if err != nil {
		t.Fatal(err)
	}
	defer rtcpConn.Close()
	keys := testKeys(Suites[2])
	s.Configure(StreamConfig{Mode: ModeEcho, Video: VideoParams{Remote: rtpConn.LocalAddr().(*net.UDPAddr).AddrPort()}, Send: true, Accept: true, SRTP: keys})
	if err := s.RequestKeyFrame(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = rtcpConn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := rtcpConn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := newContext(keys.Local, keys.Suite)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := rx.DecryptRTCP(nil, buf[:n], nil)
	if err != nil {
		t.Fatalf("uad's RTCP is not SRTCP with its key: %v", err)
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, pkt := range pkts {
		_, found = pkt.(*rtcp.PictureLossIndication)
		if found {
			break
		}
	}
	if !found {
		t.Fatalf("no PLI in %v", pkts)
	}
}

// BenchmarkSRTPWriteRead is the per-packet SRTP work of a stream: its
// sender encrypting a frame into its own buffer and writing it, and a
// reader decrypting it into its buffer. Neither allocates:
//
//	go test ./media -run '^$' -bench SRTPWriteRead -benchmem
func BenchmarkSRTPWriteRead(b *testing.B) {
	for _, suite := range Suites {
		b.Run(suite.Name, func(b *testing.B) {
			keys := &SRTPKeys{Suite: suite.Name, Local: NewCrypto(1, suite).Key}
			keys.Remote = keys.Local // the reader decrypts what the writer sent
			out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer out.Close()
			in := peerSocket(b)
			to := in.LocalAddr().(*net.UDPAddr).AddrPort()
			snd := newSender(out, sampleRate)
			ctx, err := newContext(keys.Local, keys.Suite)
			if err != nil {
				b.Fatal(err)
			}
			snd.srtp = &srtpOut{keys: keys, ctx: ctx}
			rctx, err := newContext(keys.Remote, keys.Suite, srtp.SRTPReplayProtection(replayWindow))
			if err != nil {
				b.Fatal(err)
			}
			reader := &srtpIn{keys: keys, cur: rctx}
			var frame [rtpHeaderLen + frameBytes]byte
			buf := make([]byte, maxPacket)
			at := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				at = at.Add(framePeriod)
				snd.sendGenerated(to, 0, frame[:], rtpHeaderLen, at, 1)
				n, _, err := in.ReadFromUDPAddrPort(buf)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := reader.unprotect(buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Keys that make no context (only a bug could hand them over) leave the
// stream silent: never RTP in clear on an SRTP stream.
func TestSRTPUnusableKeysSendNothing(t *testing.T) {
	e := newTestEngine(t, 32830, 32839)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeTone, Params: pcmuParams(p.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true,
		SRTP: &SRTPKeys{Suite: "AES_CM_128_HMAC_SHA1_80", Local: []byte("short"), Remote: []byte("short")}})
	s.mu.Lock()
	src, plain := s.src, s.toPeer.srtp == nil
	s.mu.Unlock()
	if src != srcNone || !plain {
		t.Fatalf("source %d, no outgoing context %v: want nothing sent", src, plain)
	}
}

// The peer's rollover counter carries over its re-key (RFC 3711 §3.3.1)
// unless the peer moved to another address with its new key: then its
// stream starts anew (RFC 4568 §7.1.4).
func TestSRTPRekeyRolloverCounter(t *testing.T) {
	e := newTestEngine(t, 32850, 32859)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	suite := Suites[0]
	here := netip.MustParseAddrPort("127.0.0.1:40000")
	configure := func(remote netip.AddrPort) {
		keys := &SRTPKeys{Suite: suite.Name, Local: NewCrypto(1, suite).Key, Remote: NewCrypto(1, suite).Key}
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(remote), Send: true, Accept: true, SRTP: keys})
	}
	const ssrc = 0x5eed
	rocOf := func() uint32 {
		s.mu.Lock()
		defer s.mu.Unlock()
		roc, _ := s.srtpIn.cur.ROC(ssrc)
		return roc
	}
	configure(here)
	s.peerSSRC.Store(ssrc)
	s.mu.Lock()
	s.srtpIn.cur.SetROC(ssrc, 3) // the peer's stream wrapped three times
	s.mu.Unlock()

	configure(here) // a re-key, same address
	if roc := rocOf(); roc != 3 {
		t.Fatalf("after a re-key in place the ROC is %d, want 3", roc)
	}
	configure(netip.MustParseAddrPort("127.0.0.1:40010")) // moved, new key
	if roc := rocOf(); roc != 0 {
		t.Fatalf("after a re-key from another address the ROC is %d, want 0", roc)
	}
}
