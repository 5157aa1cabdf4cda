package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Mode is what feeds a stream's sender while the call is not held.
type Mode string

const (
	ModeEcho    Mode = "echo"
	ModeTone    Mode = "tone"
	ModeSilence Mode = "silence"
	ModeRelay   Mode = "relay"
)

// StreamConfig is the desired behaviour of an audio stream, set by the
// dialog layer after every completed offer/answer. The stream derives its
// source from it.
type StreamConfig struct {
	// (The fields every packet reads come first.)
	Mode      Mode
	Send      bool // the agreed direction lets uad send
	Accept    bool // uad takes what the peer sends
	LocalHold bool // uad holds the call: send the hold tone, drop input
	// RTP is taken only from the address the peer's SDP gave ("RTP bleed"
	// is dropped); Latching instead follows the first source heard (a peer
	// behind NAT) and then holds to it.
	Latching bool
	Params   AudioParams    // audio streams
	Relay    netip.AddrPort // local endpoint in relay mode
	// Bridged sends what the partner stream's peer says (Bridge); while the
	// partner's call is held, PartnerHold plays SourceHoldTone or
	// SourceSilence instead.
	Bridged     bool
	PartnerHold Source
	Video       VideoParams // video streams
	// SRTP are the stream's keys when it is SDES-SRTP (nil: plain RTP).
	SRTP *SRTPKeys
}

// Source is what currently feeds the sender.
type Source uint8

const (
	srcNone Source = iota
	srcEcho
	srcRelay
	srcTone
	srcSilence
	srcHoldTone
	srcBridge
)

// Sources a bridged stream can play while its partner's call is held.
const (
	SourceNone     = srcNone
	SourceHoldTone = srcHoldTone
	SourceSilence  = srcSilence
)

func (c *StreamConfig) source(video bool) Source {
	src := c.wantedSource(video)
	if (src == srcTone || src == srcHoldTone || src == srcSilence) && !c.Params.Send.Known() {
		// uad cannot encode a pass-through codec: it sends nothing
		// rather than a tone or silence.
		return srcNone
	}
	return src
}

func (c *StreamConfig) wantedSource(video bool) Source {
	switch {
	case !c.Send || !c.remote(video).IsValid():
		return srcNone
	case c.LocalHold && !video:
		return srcHoldTone
	case c.Bridged && c.PartnerHold != srcNone:
		return c.PartnerHold
	case c.Bridged:
		return srcBridge
	}
	switch {
	case c.Mode == ModeEcho:
		return srcEcho
	case c.Mode == ModeRelay:
		return srcRelay
	case c.Mode == ModeTone && !video:
		return srcTone
	case c.Mode == ModeSilence && !video:
		return srcSilence
	}
	return srcNone
}

// remote is where the stream's RTP goes.
func (c *StreamConfig) remote(video bool) netip.AddrPort {
	if video {
		return c.Video.Remote
	}
	return c.Params.Remote
}

// Stats are the counters of one stream, each way.
type Stats struct {
	PacketsSent, BytesSent         uint64
	PacketsReceived, BytesReceived uint64
	PacketsLost                    int64         // expected but not received (RFC 3550 A.3)
	Jitter                         time.Duration // interarrival jitter (RFC 3550 A.8)
	LastReceived                   time.Time     // zero if nothing arrived
	SRTPFailed                     uint64        // SRTP/SRTCP packets dropped: they did not authenticate
}

// Stream is one RTP stream of a call: its socket pair, the sender toward the
// peer, and in relay mode a second socket pair facing the local endpoint.
type Stream struct {
	// What every received packet reads or writes comes first, together:
	// with thousands of streams none stays cached, and each cache line a
	// packet touches costs a miss.
	mu              sync.Mutex
	eng             *Engine
	rtp             *net.UDPConn
	toPeer          *sender
	toRelay         *sender // nil unless relaying
	partner         *Stream // the other stream of a bridge
	video           bool
	src             Source
	closed          atomic.Bool
	peerSSRC        atomic.Uint32 // the peer's SSRC, for RTCP feedback
	lastRecv        atomic.Int64  // unix nanos of the last RTP from the peer
	pktsIn, bytesIn atomic.Uint64
	recv            recvStats
	dtmf            dtmfSender
	cfg             StreamConfig   // its head is what packets read
	latched         netip.AddrPort // with Latching: the source RTP is taken from

	port  int
	rtcp  *net.UDPConn
	local netip.AddrPort

	relayPort int
	relayAddr netip.AddrPort // relayPort on the address the relay sockets bind to
	relayRTP  *net.UDPConn
	relayRTCP *net.UDPConn

	clip      *Clip // tone or hold tone, in the law sent
	cursor    ClipCursor
	frame     [rtpHeaderLen + frameBytes]byte // the header goes in front of the frame
	scheduled bool
	pacer     *pacer // the pacer sending the stream's frames, while scheduled
	pslot     int    // the stream's place in its pacer (the pacer's mutex)
	pidx      int
	lastTick  time.Time // deadline of the last frame paced; zero: none since scheduled or the source changed
	dtmfSeen  bool      // a telephone-event was received
	dtmfTS    uint32    // timestamp of the last one, to report each event once
	onDTMF    func(digit string)

	bleed atomic.Uint64 // RTP dropped for coming from elsewhere
	done  sync.WaitGroup

	// A panic in one of the stream's goroutines stops that goroutine and is
	// reported once to onFault (the mutex guards these).
	faulted     bool
	faultReason string
	faultTold   bool
	onFault     func(reason string)

	// The peer's SRTP, decrypted by the readers; srtpFailed counts what
	// failed authentication (dropped). rtcpEnc is scratch for SRTCP sent
	// under the mutex.
	srtpIn     *srtpIn
	srtpPeer   netip.AddrPort // the peer's last RTP address, to tell a move at a re-key
	srtpFailed atomic.Uint64
	rtcpEnc    [maxPacket + srtpOverhead]byte
}

// LocalAddr is where the peer sends RTP.
func (s *Stream) LocalAddr() netip.AddrPort { return s.local }

// RelayLocal is where the relay endpoint sends RTP (invalid unless relaying).
func (s *Stream) RelayLocal() netip.AddrPort {
	if s.relayRTP == nil {
		return netip.AddrPort{}
	}
	return s.relayAddr
}

// Configure applies a new desired behaviour. The sender is kept, so SSRC,
// sequence and timestamps continue; a change of source marks the next packet.
func (s *Stream) Configure(cfg StreamConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.src
	lawChanged := cfg.Params.Send != s.cfg.Params.Send && !s.video
	if cfg.remote(s.video) != s.cfg.remote(s.video) {
		s.latched = netip.AddrPort{} // a new address from the SDP: latch again
	}
	if err := s.setSRTP(cfg.SRTP, cfg.remote(s.video)); err != nil {
		// NegotiateSRTP only hands out keys of a supported suite. Should
		// one not take, the stream carries nothing rather than RTP in clear.
		s.eng.log.Error().Err(err).Str("local", s.local.String()).Msg("media: SRTP keys not applied: no media")
		cfg.Send, cfg.Accept = false, false
	}
	s.cfg = cfg
	if s.latched.IsValid() {
		s.setRemote(s.latched)
	}
	s.src = cfg.source(s.video)
	if s.src != prev {
		s.toPeer.sourceChanged()
		s.lastTick = time.Time{}
	}
	switch s.src {
	case srcTone, srcHoldTone, srcSilence:
		var clip *Clip
		switch s.src {
		case srcTone:
			clip = s.eng.clip(s.eng.toneSpec(), cfg.Params.Send)
		case srcHoldTone:
			clip = s.eng.clip(s.eng.holdSpec(), cfg.Params.Send)
		default:
			clip = silenceClips[cfg.Params.Send]
		}
		if s.src != prev || lawChanged || clip != s.clip {
			s.clip = clip
			s.cursor = clip.Cursor()
		}
	}
	s.updateSchedule()
}

// updateSchedule puts the stream on a pacer while it generates packets
// (tones, silence, DTMF), and takes it off after. A stream whose tick
// panicked stays off.
func (s *Stream) updateSchedule() {
	want := (s.src == srcTone || s.src == srcHoldTone || s.src == srcSilence || s.dtmf.busy()) && !s.faulted
	if want != s.scheduled {
		s.scheduled = want
		if want {
			s.eng.sched.add(s)
		} else {
			s.eng.sched.remove(s)
		}
	}
}

// OnDTMF sets the function told of each telephone-event received. It runs
// on the stream's receive goroutine and must not block.
func (s *Stream) OnDTMF(f func(digit string)) {
	s.mu.Lock()
	s.onDTMF = f
	s.mu.Unlock()
}

// Stats returns the stream's counters.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	st := Stats{PacketsSent: s.toPeer.packets, BytesSent: s.toPeer.bytes,
		PacketsLost: s.recv.lostPrev + s.recv.lost(), Jitter: s.recv.jitterDuration()}
	s.mu.Unlock()
	st.PacketsReceived, st.BytesReceived = s.pktsIn.Load(), s.bytesIn.Load()
	st.SRTPFailed = s.srtpFailed.Load()
	if n := s.lastRecv.Load(); n != 0 {
		st.LastReceived = time.Unix(0, n)
	}
	return st
}

// tick sends the generated frame due at the deadline at; called by the
// stream's pacer every 20 ms. Frames the pacer could not send in time are
// skipped, not sent late in a burst: the clip and the RTP timestamp move on
// by the frames that elapsed, so the peer hears the tone in real time.
func (s *Stream) tick(p *pacer, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pacer != p {
		return // a pacer's snapshot taken before the stream left it
	}
	runTestHook(s, "tick")
	frames := 1
	if !s.lastTick.IsZero() {
		frames = int((at.Sub(s.lastTick) + framePeriod/2) / framePeriod)
		if frames <= 0 {
			return // this frame was sent (the stream changed pacers)
		}
		if frames > 1 {
			s.eng.sched.skipped.Add(uint64(frames - 1))
		}
	}
	s.lastTick = at
	if s.tickDTMF(at, frames) {
		return
	}
	if !s.dtmf.busy() && s.src != srcTone && s.src != srcHoldTone && s.src != srcSilence {
		s.updateSchedule() // the digits are done
		return
	}
	to := s.cfg.Params.Remote
	switch s.src {
	case srcTone, srcHoldTone, srcSilence:
		if s.clip == nil {
			return
		}
		s.cursor.Skip(frames - 1)
		if !s.cursor.Next(s.frame[rtpHeaderLen:]) {
			return
		}
	default:
		return
	}
	s.toPeer.sendGenerated(to, s.cfg.Params.SendPT, s.frame[:], rtpHeaderLen, at, frames)
}

// readPeer receives the peer's RTP: echoed back, relayed to the local
// endpoint, or dropped, as the configuration says.
func (s *Stream) readPeer() {
	defer s.done.Done()
	defer s.recoverFault("rtp receive")
	var buf [maxPacket]byte
	var hdr rtp.Header
	// Only a law conversion writes here: on the heap, it keeps the stack
	// a packet touches small.
	conv := make([]byte, maxPacket)
	for {
		n, from, err := s.rtp.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		hl, err := hdr.Unmarshal(buf[:n])
		if err != nil || hdr.Version != 2 {
			continue
		}
		now := s.eng.now()
		partner, law, isLaw, pkt, digit, onDTMF := s.peerPacket(from, &hdr, buf[:n], hl, conv, now)
		if partner != nil {
			partner.fromPartner(&hdr, pkt, hl, law, isLaw, conv, now)
		}
		if digit != "" {
			onDTMF(digit)
		}
	}
}

// peerPacket handles one RTP packet, pkt, whose payload starts at off,
// under the stream's mutex. It returns the bridge partner to pass the
// packet to (nil: none), the packet without its padding, and a digit to
// report, which the caller does once the mutex is released.
func (s *Stream) peerPacket(from netip.AddrPort, hdr *rtp.Header, pkt []byte, off int, conv []byte, now time.Time) (partner *Stream, law Law, isLaw bool, _ []byte, digit string, onDTMF func(string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runTestHook(s, "rtp")
	if !s.admit(from) {
		s.bleed.Add(1)
		s.eng.stray.Add(1)
		return
	}
	if in := s.srtpIn; in != nil {
		plain, err := in.unprotect(pkt)
		if err != nil {
			s.srtpFailed.Add(1)
			return
		}
		pkt = plain
	}
	if hdr.Padding && len(pkt) > off {
		pad := int(pkt[len(pkt)-1])
		if pad > len(pkt)-off {
			return
		}
		pkt = pkt[:len(pkt)-pad]
	}
	payload := pkt[off:]
	// Counted only once admitted: a stranger must neither keep the call
	// alive (media.rtp_timeout) nor be the SSRC feedback is about.
	s.lastRecv.Store(now.UnixNano())
	s.peerSSRC.Store(hdr.SSRC)
	s.pktsIn.Add(1)
	s.bytesIn.Add(uint64(len(payload)))
	s.recv.update(hdr.SSRC, hdr.SequenceNumber, hdr.Timestamp, now)
	if !s.video && s.isDTMF(hdr.PayloadType) {
		if d, ok := s.receivedDTMF(hdr.Timestamp, payload); ok && s.onDTMF != nil && s.cfg.Accept {
			digit, onDTMF = d, s.onDTMF
		}
	}
	if s.cfg.Accept && !s.dtmf.busy() && s.src == srcEcho {
		s.forward(s.toPeer, s.cfg.remote(s.video), hdr, pkt, off, conv, now)
	}
	if s.cfg.Accept && s.cfg.Mode == ModeRelay && s.toRelay != nil && s.cfg.Relay.IsValid() {
		s.forward(s.toRelay, s.cfg.Relay, hdr, pkt, off, conv, now)
	}
	law, isLaw = s.cfg.Params.RecvLaw(hdr.PayloadType)
	if s.cfg.Accept && s.partner != nil && (isLaw || s.isDTMF(hdr.PayloadType)) {
		partner = s.partner
	}
	return partner, law, isLaw, pkt, digit, onDTMF
}

// readRelay receives the local endpoint's RTP and relays it to the peer.
func (s *Stream) readRelay() {
	defer s.done.Done()
	defer s.recoverFault("relay rtp receive")
	var buf [maxPacket]byte
	var hdr rtp.Header
	conv := make([]byte, maxPacket)
	for {
		n, _, err := s.relayRTP.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		hl, err := hdr.Unmarshal(buf[:n])
		if err != nil || hdr.Version != 2 {
			continue
		}
		s.relayPacket(&hdr, buf[:n], hl, conv)
	}
}

func (s *Stream) relayPacket(hdr *rtp.Header, pkt []byte, off int, conv []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runTestHook(s, "relay rtp")
	if s.src == srcRelay && !s.dtmf.busy() {
		s.forward(s.toPeer, s.cfg.remote(s.video), hdr, pkt, off, conv, s.eng.now())
	}
}

// readPeerRTCP receives the peer's RTCP. Its reports are not used; its
// feedback about the stream uad sends goes to that stream's source.
func (s *Stream) readPeerRTCP() {
	defer s.done.Done()
	defer s.recoverFault("rtcp receive")
	var buf, out [maxPacket]byte
	for {
		n, from, err := s.rtcp.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.peerRTCP(buf[:n], from, out[:])
	}
}

// readRelayRTCP receives the relay endpoint's RTCP: its feedback about the
// stream uad relays to it goes to the peer.
func (s *Stream) readRelayRTCP() {
	defer s.done.Done()
	defer s.recoverFault("relay rtcp receive")
	var buf, out [maxPacket]byte
	for {
		n, from, err := s.relayRTCP.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.relayRTCPPacket(buf[:n], from, out[:])
	}
}

// forward sends a received packet, pkt with its payload at off, on through
// snd, mapping its payload type to what was negotiated and converting the
// codec (into conv) where the two differ and uad encodes both. Other
// formats (comfort noise, a pass-through codec other than the one sent)
// are dropped; telephone-event goes on. The header sent overwrites
// pkt[:off].
func (s *Stream) forward(snd *sender, to netip.AddrPort, in *rtp.Header, pkt []byte, off int, conv []byte, now time.Time) {
	if s.video {
		pt, ok := s.cfg.Video.SendPT(in.PayloadType)
		if !ok {
			pt = in.PayloadType // the relay endpoint is not negotiated: keep its numbers
		}
		snd.sendForwarded(to, in, pt, pkt, off, now)
		return
	}
	p := &s.cfg.Params
	if s.isDTMF(in.PayloadType) {
		if p.SendDTMF >= 0 {
			snd.sendForwarded(to, in, uint8(p.SendDTMF), pkt, off, now)
		}
		return
	}
	law, ok := p.RecvLaw(in.PayloadType)
	if !ok || !convertible(law, p.Send) {
		return
	}
	if law != p.Send {
		pkt, off = snd.transcodeInto(conv, pkt, off, law, p.Send)
	}
	snd.sendForwarded(to, in, p.SendPT, pkt, off, now)
}

// convertible reports whether audio in one codec can be sent in another:
// the same codec always (a pass-through one untouched), else only between
// codecs uad encodes.
func convertible(from, to Law) bool {
	return from == to || from.Known() && to.Known()
}

// transcodeInto converts the payload pkt[off:] from one codec to another
// into conv, after room for a header, and returns the packet and payload
// offset to send (pkt itself, unconverted, should conv be too short). The
// sender keeps the converter's state from one packet to the next.
func (snd *sender) transcodeInto(conv, pkt []byte, off int, from, to Law) ([]byte, int) {
	payload := pkt[off:]
	if rtpHeaderLen+len(payload) > len(conv) {
		return pkt, off
	}
	if snd.conv == nil {
		snd.conv = newTranscoder() // once a stream, on its first conversion
	}
	snd.conv.convert(conv[rtpHeaderLen:rtpHeaderLen+len(payload)], payload, from, to)
	return conv[:rtpHeaderLen+len(payload)], rtpHeaderLen
}

// fromPartner sends what the bridge partner's peer said, pkt with its
// payload at off, to this stream's peer, converting the codec (G.711 law,
// G.722) where the two legs differ.
func (s *Stream) fromPartner(in *rtp.Header, pkt []byte, off int, law Law, isLaw bool, conv []byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != srcBridge || s.dtmf.busy() {
		return
	}
	p := &s.cfg.Params
	if !isLaw {
		if p.SendDTMF >= 0 {
			s.toPeer.sendForwarded(p.Remote, in, uint8(p.SendDTMF), pkt, off, now)
		}
		return
	}
	if !convertible(law, p.Send) {
		return
	}
	if law != p.Send {
		pkt, off = s.toPeer.transcodeInto(conv, pkt, off, law, p.Send)
	}
	s.toPeer.sendForwarded(p.Remote, in, p.SendPT, pkt, off, now)
}

// Bridge relays RTP between the peers of two audio streams; each stream's
// configuration must say Bridged for it to send what the other receives.
func Bridge(a, b *Stream) {
	a.setPartner(b)
	b.setPartner(a)
}

// Unbridge ends a bridge.
func Unbridge(a, b *Stream) {
	a.setPartner(nil)
	b.setPartner(nil)
}

func (s *Stream) setPartner(p *Stream) {
	s.mu.Lock()
	s.partner = p
	s.mu.Unlock()
}

// admit decides whether RTP from src is the peer's (the stream's mutex is
// held). With latching, the first source after an SDP change becomes the
// address uad sends to as well.
func (s *Stream) admit(src netip.AddrPort) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	remote := s.cfg.remote(s.video)
	switch {
	case !s.cfg.Latching:
		return remote.IsValid() && src == remote
	case s.latched.IsValid():
		return src == s.latched
	case !remote.IsValid():
		return false // no SDP from the peer yet, or it holds with c=0.0.0.0
	}
	s.latched = src
	s.setRemote(src)
	return true
}

func (s *Stream) setRemote(a netip.AddrPort) {
	if s.video {
		s.cfg.Video.Remote = a
	} else {
		s.cfg.Params.Remote = a
	}
}

// isDTMF reports whether a received payload type is telephone-event.
func (s *Stream) isDTMF(pt uint8) bool {
	p := &s.cfg.Params
	return int(pt) == p.RecvDTMF || (p.RecvDTMF < 0 && int(pt) == p.SendDTMF)
}

// Close releases the sockets and returns the ports to the pool.
func (s *Stream) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.mu.Lock()
	if s.scheduled {
		s.eng.sched.remove(s)
		s.scheduled = false
	}
	s.mu.Unlock()
	s.rtp.Close()
	s.rtcp.Close()
	if s.relayRTP != nil {
		s.relayRTP.Close()
		s.relayRTCP.Close()
	}
	s.done.Wait()
	s.eng.streamsMu.Lock()
	delete(s.eng.streams, s)
	s.eng.streamsMu.Unlock()
	s.eng.ports.put(s.port)
	if s.relayRTP != nil {
		s.eng.ports.put(s.relayPort)
	}
}

// OnFault sets the function told, once, that the stream failed: a panic
// stopped one of its goroutines, so it no longer carries media and the call
// should end. It runs on a goroutine of its own and may Close the stream.
func (s *Stream) OnFault(f func(reason string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onFault = f
	s.tellFault()
}

// tellFault reports a fault to onFault once (the mutex is held).
func (s *Stream) tellFault() {
	if s.faulted && !s.faultTold && s.onFault != nil {
		s.faultTold = true
		go s.onFault(s.faultReason)
	}
}

// recoverFault, deferred at the top of a stream goroutine, turns a panic
// into the end of that goroutine: logged with its stack and reported.
func (s *Stream) recoverFault(where string) {
	if r := recover(); r != nil {
		s.fault(where, r)
	}
}

func (s *Stream) fault(where string, r any) {
	s.eng.log.Error().Str("stack", string(debug.Stack())).Str("goroutine", where).
		Str("local", s.local.String()).Msgf("media: panic: %v; the stream stops", r)
	// The goroutines release the mutex with defer, so it is free here.
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.faulted {
		s.faulted = true
		s.faultReason = fmt.Sprintf("media %s: panic: %v", where, r)
	}
	s.tellFault()
}

// testHook, set only by tests, runs where a stream goroutine handles a
// packet or a tick, with the stream's mutex held: tests inject panics with
// it, and learn that a packet was handled.
var testHook atomic.Pointer[func(s *Stream, where string)]

func runTestHook(s *Stream, where string) {
	if f := testHook.Load(); f != nil {
		(*f)(s, where)
	}
}
