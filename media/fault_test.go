package media

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/rs/zerolog"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// injectPanic makes the goroutines of victim panic at where, for this test.
func injectPanic(t *testing.T, victim *Stream, where string) {
	f := func(s *Stream, at string) {
		if s == victim && at == where {
			panic("injected at " + at)
		}
	}
	testHook.Store(&f)
	t.Cleanup(func() { testHook.Store(nil) })
}

// A panic in one stream's goroutine stops that goroutine only: it is
// logged with its stack, the stream's fault hook is told once, and other
// streams of the engine carry on.
func TestStreamPanicIsContained(t *testing.T) {
	for _, where := range []string{"rtp", "relay rtp", "rtcp", "relay rtcp", "tick"} {
		t.Run(where, func(t *testing.T) {
			var logs lockedBuffer
			e, err := NewEngine(zerolog.New(&logs), EngineConfig{
				Bind: netip.MustParseAddr("127.0.0.1"), PortMin: 32600, PortMax: 32619, HoldTone: "440", Tone: "440",
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			mode := ModeEcho
			switch where {
			case "tick":
				mode = ModeTone
			case "relay rtp", "relay rtcp":
				mode = ModeRelay
			}
			open := func() (*Stream, endpoint, endpoint) {
				s, err := e.NewStream(false, true)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				peer, relay := newEndpoint(t), newEndpoint(t)
				peer.pt, relay.pt = 0, 0 // PCMU
				s.Configure(StreamConfig{Mode: mode, Params: pcmuParams(peer.addr()), Relay: relay.addr(), Send: true, Accept: true})
				return s, peer, relay
			}
			victim, vPeer, vRelay := open()
			other, oPeer, oRelay := open()
			defer other.Close()
			faults := make(chan string, 2)
			victim.OnFault(func(reason string) { faults <- reason })
			otherFaults := make(chan string, 1)
			other.OnFault(func(reason string) { otherFaults <- reason })

			// prime has a stream forward one packet, so that feedback about
			// it is answered; it returns the SSRC uad sent it under.
			prime := func(s *Stream, peer, relay endpoint) uint32 {
				switch where {
				case "rtcp":
					peer.sendRTP(t, s.LocalAddr(), 1, 1, 160, false)
					return readRTP(t, peer.rtp).SSRC
				case "relay rtcp":
					peer.sendRTP(t, s.LocalAddr(), 1, 1, 160, false)
					return readRTP(t, relay.rtp).SSRC
				}
				return 0
			}
			// poke has the goroutine at where handle something that gets
			// an answer to the peer; answered waits for that answer.
			poke := func(s *Stream, peer, relay endpoint, ssrc uint32, seq uint16) {
				pli := &rtcpPLI{ssrc}
				switch where {
				case "rtp":
					peer.sendRTP(t, s.LocalAddr(), 1, seq, uint32(seq)*160, false)
				case "relay rtp":
					relay.sendRTP(t, s.RelayLocal(), 2, seq, uint32(seq)*160, false)
				case "rtcp":
					peer.sendRTCP(t, rtcpOf(s.LocalAddr()), 1, pli.packet())
				case "relay rtcp":
					relay.sendRTCP(t, rtcpOf(s.RelayLocal()), 2, pli.packet())
				}
			}
			answered := func(s *Stream, peer endpoint) {
				if strings.HasSuffix(where, "rtcp") {
					peer.readRTCP(t, rtcpOf(s.LocalAddr()), e.cname)
				} else {
					readRTP(t, peer.rtp)
				}
			}
			silent := func(peer endpoint) {
				c := peer.rtp
				if strings.HasSuffix(where, "rtcp") {
					c = peer.rtcp
				}
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if n, err := c.Read(make([]byte, 1500)); err == nil {
					t.Errorf("the stopped goroutine still answered (%d bytes)", n)
				}
			}
			vSSRC, oSSRC := prime(victim, vPeer, vRelay), prime(other, oPeer, oRelay)

			injectPanic(t, victim, where)
			poke(victim, vPeer, vRelay, vSSRC, 2)
			var reason string
			select {
			case reason = <-faults:
			case <-time.After(5 * time.Second):
				t.Fatal("the fault hook was not called")
			}
			if !strings.Contains(reason, "injected at "+where) {
				t.Errorf("reason %q does not say what happened", reason)
			}
			var entry struct {
				Level, Stack, Message string
			}
			if err := json.Unmarshal([]byte(strings.SplitN(logs.String(), "\n", 2)[0]), &entry); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if entry.Level != "error" || !strings.Contains(entry.Stack, "injectPanic") || !strings.Contains(entry.Message, "injected at") {
				t.Errorf("log entry %+v, want an error with the panic's stack", entry)
			}

			// The victim's mutex was released: it can be read and reconfigured.
			victim.Stats()
			victim.Configure(StreamConfig{Mode: mode, Params: pcmuParams(vPeer.addr()), Relay: vRelay.addr(), Send: true, Accept: true})

			// The other stream still works.
			if where == "tick" {
				for i := 0; i < 3; i++ {
					readRTP(t, oPeer.rtp)
				}
			} else {
				poke(other, oPeer, oRelay, oSSRC, 2)
				answered(other, oPeer)
			}

			// The victim's goroutine is stopped (or off the scheduler):
			// without the panic, nothing is answered any more.
			testHook.Store(nil)
			poke(victim, vPeer, vRelay, vSSRC, 3)
			silent(vPeer)
			victim.Close() // returns: its goroutines ended
			select {
			case r := <-faults:
				t.Errorf("fault told twice: %q", r)
			case r := <-otherFaults:
				t.Errorf("the other stream faulted: %q", r)
			default:
			}
			if where == "tick" {
				readRTP(t, oPeer.rtp) // still on the scheduler
			}
		})
	}
}

// rtcpPLI is a PLI about media.
type rtcpPLI struct{ media uint32 }

func (p *rtcpPLI) packet() rtcp.Packet {
	return &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: p.media}
}

// A panic while reporting on one stream faults that stream only: the
// reports of the others go out, and the faulted one reports no more.
func TestReportPanicIsContained(t *testing.T) {
	e := newTestEngine(t, 32630, 32639)
	var streams [2]*Stream
	var peers [2]*net.UDPConn
	for i := range streams {
		s, err := e.NewStream(false, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		peers[i] = peerSocket(t)
		s.Configure(StreamConfig{Mode: ModeTone, Params: pcmuParams(peers[i].LocalAddr().(*net.UDPAddr).AddrPort()), Send: true})
		readRTP(t, peers[i]) // it has sent: it has something to report
		streams[i] = s
	}
	victim, other := streams[0], streams[1]
	faults := make(chan string, 2)
	victim.OnFault(func(r string) { faults <- r })
	injectPanic(t, victim, "rtcp report")
	e.sendReports(time.Now()) // returns: the panic did not escape
	select {
	case r := <-faults:
		if !strings.Contains(r, "rtcp report") {
			t.Errorf("reason %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fault hook was not called")
	}
	if b, _ := other.report(time.Now()); b == nil {
		t.Error("the other stream has no report")
	}
	testHook.Store(nil)
	if b, _ := victim.report(time.Now()); b != nil {
		t.Error("the faulted stream still reports")
	}
}

// A fault that happened before OnFault is set is told when it is.
func TestOnFaultAfterTheFault(t *testing.T) {
	e := newTestEngine(t, 32620, 32629)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true})
	s.fault("rtp receive", "test")
	told := make(chan string, 2)
	s.OnFault(func(r string) { told <- r })
	select {
	case r := <-told:
		if !strings.Contains(r, "rtp receive") {
			t.Errorf("reason %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not told")
	}
	s.OnFault(func(r string) { told <- r })
	select {
	case r := <-told:
		t.Errorf("told twice: %q", r)
	case <-time.After(50 * time.Millisecond):
	}
}
