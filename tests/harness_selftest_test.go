package tests

// Self-tests of the harness: the peers against each other, without uad. They
// prove the sipp scenarios, the sipp and baresip helpers and the RTP helper
// work on this machine, so a failing uad test points at uad.

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"uad/tests/internal/g711"
)

// sipp UAC scenarios against sipp UAS scenarios.
func TestHarnessSippPair(t *testing.T) {
	requirePeer(t, "sipp")

	t.Run("uac_echo-uas_answer", func(t *testing.T) {
		uas := startSipp(t, "uas_answer.xml")
		uac := runSipp(t, "uac_echo.xml", "-s", "sipp", "-d", "200", uas.Addr())
		if uac.Code != 0 {
			t.Errorf("uac_echo exited %d, want 0", uac.Code)
		}
		uas.WaitOK()
		// The UAS saw our offer with the announced port, and answered with its own.
		if !strings.Contains(uas.Wait().Messages, "m=audio ") {
			t.Errorf("no SDP in the UAS message log")
		}
	})

	t.Run("uac_echo-uas_answer-tcp", func(t *testing.T) {
		uas := startSipp(t, "uas_answer.xml", "-t", "t1")
		uac := runSipp(t, "uac_echo.xml", "-t", "t1", "-s", "sipp", "-d", "200", uas.Addr())
		if uac.Code != 0 {
			t.Errorf("uac_echo over TCP exited %d, want 0", uac.Code)
		}
		uas.WaitOK()
	})

	t.Run("uac_echo-uas_reject", func(t *testing.T) {
		// uac_echo expects a 200: against a 486 it must fail (non-zero exit),
		// which proves the harness reports a scenario failure.
		uas := startSipp(t, "uas_reject.xml")
		uac := runSipp(t, "uac_echo.xml", "-s", "sipp", "-d", "200", uas.Addr())
		if uac.Code == 0 {
			t.Errorf("uac_echo against a 486 exited 0, want a failure")
		}
		uas.WaitOK()
		if !strings.Contains(uac.Messages, "SIP/2.0 486") {
			t.Errorf("uac_echo's message log has no 486")
		}
	})
}

// baresip starts, takes commands over ctrl_tcp, and reports a failed dial.
func TestHarnessBaresipDialError(t *testing.T) {
	requirePeer(t, "baresip", "sox")
	b := startBaresip(t, BaresipOptions{})
	// Nothing listens on TCP port 9 (discard) of 127.0.0.1 here: connection refused.
	if r := b.Command("dial", "sip:nobody@127.0.0.1:9;transport=tcp"); !r.OK {
		t.Fatalf("dial: %+v", r)
	}
	ev := b.WaitEventType(t, "CALL_CLOSED", 10*time.Second)
	if ev.Param == "" {
		t.Errorf("CALL_CLOSED without a reason: %s", ev.Raw)
	}
	if r := b.Command("no-such-command", ""); r.OK {
		t.Errorf("an unknown command answered ok: %+v", r)
	}
}

// baresip against the sipp scenarios: baresip as callee (auto-answer) and caller.
func TestHarnessBaresipSipp(t *testing.T) {
	requirePeer(t, "baresip", "sox", "sipp")

	t.Run("sipp-calls-baresip-bye-from-baresip", func(t *testing.T) {
		b := startBaresip(t, BaresipOptions{})
		rtpPeer := newRTPPeer(t, 0)
		s := startSipp(t, "uac_wait_bye.xml", "-s", b.User, "-key", "rtp_port", itoa(rtpPeer.Port()),
			"127.0.0.1:"+itoa(b.SIPPort))
		b.WaitEventType(t, "CALL_ESTABLISHED", 10*time.Second)
		// baresip sends its tone file to the announced port.
		if n := rtpPeer.WaitCount(10, 5*time.Second); n < 10 {
			t.Errorf("baresip sent %d RTP packets to the sipp-announced port, want >= 10", n)
		}
		b.hangUp(t)
		s.WaitOK()
	})

	t.Run("sipp-calls-baresip-delayed-offer", func(t *testing.T) {
		b := startBaresip(t, BaresipOptions{})
		r := runSipp(t, "uac_delayed_offer.xml", "-s", b.User, "-d", "300", "127.0.0.1:"+itoa(b.SIPPort))
		if r.Code != 0 {
			t.Errorf("uac_delayed_offer exited %d, want 0", r.Code)
		}
		b.WaitEventType(t, "CALL_CLOSED", 10*time.Second)
	})

	t.Run("baresip-calls-sipp", func(t *testing.T) {
		b := startBaresip(t, BaresipOptions{})
		uas := startSipp(t, "uas_answer.xml")
		if r := b.Command("dial", uas.URI("sipp")); !r.OK {
			t.Fatalf("dial: %+v", r)
		}
		b.WaitEventType(t, "CALL_ESTABLISHED", 10*time.Second)
		b.hangUp(t)
		uas.WaitOK()
	})

	t.Run("baresip-calls-sipp-rejected", func(t *testing.T) {
		b := startBaresip(t, BaresipOptions{})
		uas := startSipp(t, "uas_reject.xml")
		if r := b.Command("dial", uas.URI("sipp")); !r.OK {
			t.Fatalf("dial: %+v", r)
		}
		ev := b.WaitEventType(t, "CALL_CLOSED", 10*time.Second)
		if !strings.Contains(ev.Param, "486") {
			t.Errorf("CALL_CLOSED param %q, want the 486", ev.Param)
		}
		uas.WaitOK()
	})
}

// recTB records Errorf calls instead of failing, to prove assertions fail.
type recTB struct {
	testing.TB
	errs []string
}

func (r *recTB) Helper() {}
func (r *recTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// rtpReflector answers every RTP packet to its sender: restamp=true as uad
// must (own SSRC, consecutive seq, timestamps +160), false verbatim.
func rtpReflector(t *testing.T, restamp bool) *net.UDPAddr {
	conn := listenLoopback(t, 0, "reflector")
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		var seq uint16 = 1000
		var ts uint32 = 5000
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			if restamp {
				p.SSRC, p.SequenceNumber, p.Timestamp = 0xabcdef01, seq, ts
				seq++
				ts += 160
			}
			out, _ := p.Marshal()
			conn.WriteToUDP(out, from)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr)
}

func TestHarnessRTP(t *testing.T) {
	if got := []byte{g711.EncodeULaw(0), g711.EncodeULaw(32767), g711.EncodeULaw(-32768)}; got[0] != 0xff || got[1] != 0x80 || got[2] != 0x00 {
		t.Errorf("µ-law of 0, max, min = % x, want ff 80 00", got)
	}

	// As uad must echo: the checks pass.
	peer := newRTPPeer(t, 0)
	peer.Send(rtpReflector(t, true), 20)
	checkEcho(t, "restamping reflector", peer, 20, 0)

	// A verbatim reflector sends our SSRC back: the checks must fail.
	peer2 := newRTPPeer(t, 0)
	peer2.Send(rtpReflector(t, false), 20)
	rec := &recTB{TB: t}
	checkEcho(rec, "verbatim reflector", peer2, 20, 0)
	if len(rec.errs) == 0 {
		t.Errorf("checkEcho accepted packets carrying the sender's own SSRC")
	}

	// Nothing came back: the checks must fail.
	peer3 := newRTPPeer(t, 0)
	sink := listenLoopback(t, 0, "sink")
	defer sink.Close()
	peer3.Send(sink.LocalAddr().(*net.UDPAddr), 5)
	rec = &recTB{TB: t}
	checkEcho(rec, "sink", peer3, 5, 0)
	if len(rec.errs) == 0 {
		t.Errorf("checkEcho accepted silence")
	}
}
