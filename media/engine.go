package media

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// EngineConfig sets up the media engine.
type EngineConfig struct {
	Bind     netip.Addr // address RTP sockets bind to
	PortMin  int        // inclusive RTP port range
	PortMax  int
	HoldTone string // tone spec or .wav path played to a held party
	Tone     string // tone spec or .wav path of media mode "tone"
}

// Engine owns the RTP port pool, the pacers of generated streams and the
// precomputed tone clips.
type Engine struct {
	log        zerolog.Logger
	bind       netip.Addr
	ports      *portPool
	sched      *scheduler
	streamsMu  sync.Mutex
	streams    map[*Stream]struct{} // open streams, for RTCP reports
	reportList []*Stream            // reused snapshot of streams
	quit       chan struct{}
	cname      string        // RTCP CNAME of every stream (rtcp.go)
	start      time.Time     // for now
	stray      atomic.Uint64 // RTP dropped for coming from elsewhere, every stream ever

	clipMu sync.Mutex
	hold   string // spec of the hold tone
	tone   string // spec of media mode "tone"
	clips  map[clipKey]*Clip
}

// clipCodecs are the codecs tones are precomputed in.
var clipCodecs = []Law{PCMU, PCMA, G722}

type clipKey struct {
	spec string
	law  Law
}

// NewEngine validates the tone specs and starts the pacers.
func NewEngine(log zerolog.Logger, cfg EngineConfig) (*Engine, error) {
	return newEngine(log, cfg, newScheduler(0, time.Now(), true))
}

// newEngine makes an engine whose generated streams sched paces (tests
// pass pacers they drive by hand).
func newEngine(log zerolog.Logger, cfg EngineConfig, sched *scheduler) (*Engine, error) {
	e := &Engine{
		log:   log,
		bind:  cfg.Bind,
		ports: newPortPool(cfg.PortMin, cfg.PortMax),
		hold:  cfg.HoldTone,
		tone:  cfg.Tone,
		clips: map[clipKey]*Clip{},
		cname: newCNAME(),
		start: time.Now(),
	}
	for _, spec := range []string{cfg.HoldTone, cfg.Tone} {
		for _, law := range clipCodecs {
			c, err := LoadClip(spec, law)
			if err != nil {
				sched.stop()
				return nil, fmt.Errorf("media: %q: %w", spec, err)
			}
			e.clips[clipKey{spec, law}] = c
		}
	}
	e.sched = sched
	e.streams = map[*Stream]struct{}{}
	e.quit = make(chan struct{})
	go e.reporter(e.quit)
	return e, nil
}

// now reads the clock for a packet: the monotonic clock alone, on the
// engine's start (time.Now reads the wall clock too, which a packet does
// not need).
func (e *Engine) now() time.Time { return e.start.Add(time.Since(e.start)) }

// clip returns the precomputed clip of a spec in one law.
func (e *Engine) clip(spec string, law Law) *Clip {
	e.clipMu.Lock()
	defer e.clipMu.Unlock()
	return e.clips[clipKey{spec, law}]
}

func (e *Engine) holdSpec() string {
	e.clipMu.Lock()
	defer e.clipMu.Unlock()
	return e.hold
}

func (e *Engine) toneSpec() string {
	e.clipMu.Lock()
	defer e.clipMu.Unlock()
	return e.tone
}

// SetTones swaps the hold tone and tone for streams configured from now on.
func (e *Engine) SetTones(hold, tone string) error {
	loaded := map[clipKey]*Clip{}
	for _, spec := range []string{hold, tone} {
		for _, law := range clipCodecs {
			c, err := LoadClip(spec, law)
			if err != nil {
				return fmt.Errorf("media: %q: %w", spec, err)
			}
			loaded[clipKey{spec, law}] = c
		}
	}
	e.clipMu.Lock()
	e.clips, e.hold, e.tone = loaded, hold, tone
	e.clipMu.Unlock()
	return nil
}

// StrayPackets is how many RTP packets every stream, open or closed, dropped
// because they came from an address other than the peer's.
func (e *Engine) StrayPackets() uint64 { return e.stray.Load() }

// SkippedFrames is how many generated frames the pacers skipped, every
// stream ever, because they ran a frame period or more late.
func (e *Engine) SkippedFrames() uint64 { return e.sched.skipped.Load() }

// FreePairs reports how many RTP port pairs are free.
func (e *Engine) FreePairs() int { return e.ports.available() }

// Close stops the pacers. Streams must be closed by their owners first.
func (e *Engine) Close() {
	close(e.quit)
	e.sched.stop()
}

// NewStream opens an RTP/RTCP socket pair for an audio or video stream on
// the engine's bind address; with relay set it also opens the pair that
// faces the local relay endpoint.
func (e *Engine) NewStream(video, relay bool) (*Stream, error) {
	var relayTo netip.Addr
	if relay {
		relayTo = e.bind
	}
	return e.NewStreamOn(e.bind, relayTo, video)
}

// NewStreamOn opens a stream whose peer-facing sockets bind to bind (the
// address family of the call's media) and, when relayTo is valid, the pair
// facing the local relay endpoint at relayTo, bound in that endpoint's
// family (see RelayBind).
func (e *Engine) NewStreamOn(bind, relayTo netip.Addr, video bool) (*Stream, error) {
	if !bind.IsValid() {
		bind = e.bind
	}
	relay := relayTo.IsValid()
	s := &Stream{eng: e, video: video}
	rate := uint32(sampleRate)
	if video {
		rate = videoRate
	}
	var err error
	if s.port, s.rtp, s.rtcp, err = e.openPair(bind); err != nil {
		return nil, err
	}
	s.local = netip.AddrPortFrom(bind, uint16(s.port))
	s.toPeer = newSender(s.rtp, rate)
	if video {
		s.toPeer.sent = new(seqRing) // video feedback names packets (NACK)
	}
	s.recv.rate = rate
	if relay {
		relayBind := RelayBind(bind, relayTo)
		if s.relayPort, s.relayRTP, s.relayRTCP, err = e.openPair(relayBind); err != nil {
			s.rtp.Close()
			s.rtcp.Close()
			e.ports.put(s.port)
			return nil, err
		}
		s.relayAddr = netip.AddrPortFrom(relayBind, uint16(s.relayPort))
		s.toRelay = newSender(s.relayRTP, rate)
		if video {
			s.toRelay.sent = new(seqRing)
		}
		s.done.Add(2)
		go s.readRelay()
		go s.readRelayRTCP()
	}
	s.done.Add(2)
	go s.readPeer()
	go s.readPeerRTCP()
	e.streamsMu.Lock()
	e.streams[s] = struct{}{}
	e.streamsMu.Unlock()
	return s, nil
}

// RelayBind is the address the sockets facing a relay endpoint at relayTo
// bind to: the call's own bind address when the families match, else the
// loopback (for a loopback endpoint) or wildcard address of the endpoint's
// family, since a socket reaches only addresses of its own family.
func RelayBind(bind, relayTo netip.Addr) netip.Addr {
	relayTo = relayTo.Unmap()
	switch {
	case bind.Unmap().Is4() == relayTo.Is4():
		return bind
	case relayTo.IsLoopback() && relayTo.Is4():
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case relayTo.IsLoopback():
		return netip.IPv6Loopback()
	case relayTo.Is4():
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// openPair binds the next free even port and the odd one above it on bind;
// ports another program holds are skipped (and returned to the back of the
// pool). One pool serves both address families.
func (e *Engine) openPair(bind netip.Addr) (int, *net.UDPConn, *net.UDPConn, error) {
	for tries := 0; tries < 64; tries++ {
		port, ok := e.ports.get()
		if !ok {
			return 0, nil, nil, ErrNoPorts
		}
		a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, uint16(port))))
		if err != nil {
			e.ports.put(port)
			continue
		}
		b, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, uint16(port+1))))
		if err != nil {
			a.Close()
			e.ports.put(port)
			continue
		}
		return port, a, b, nil
	}
	return 0, nil, nil, ErrNoPorts
}
