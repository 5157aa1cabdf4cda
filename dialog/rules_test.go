package dialog

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
)

// RFC 3261 §14.1, §12.2.1.2, RFC 6337 §3.4: a refused re-INVITE leaves the
// session as it was; 408, 481 and no answer end the call; a failed unhold
// hangs up unless calls.unhold_failure is keep. A request that never left
// uad is no refusal of the peer's (RFC 3261 §8.1.3.1).
func TestReinviteFailureRules(t *testing.T) {
	tests := []struct {
		name      string
		unhold    bool
		keep      bool   // calls.unhold_failure: keep
		status    int    // the peer's final response; 0: none (timeout)
		notSent   bool   // the request could not be sent at all
		event     string // hold.failed / unhold.failed
		sipStatus int
		ended     string // end reason, "" = still up
		bye       bool
		state     string // state after, when up
	}{
		{name: "hold 488", status: 488, event: "hold.failed", sipStatus: 488, state: StateLive},
		{name: "hold 403", status: 403, event: "hold.failed", sipStatus: 403, state: StateLive},
		{name: "hold 500", status: 500, event: "hold.failed", sipStatus: 500, state: StateLive},
		{name: "hold 603", status: 603, event: "hold.failed", sipStatus: 603, state: StateLive},
		{name: "hold 408 ends", status: 408, event: "hold.failed", sipStatus: 408, ended: EndTimeout, bye: true},
		{name: "hold 481 ends without BYE", status: 481, event: "hold.failed", sipStatus: 481, ended: EndError},
		{name: "hold unanswered ends", status: 0, event: "hold.failed", sipStatus: 408, ended: EndTimeout, bye: true},
		{name: "hold not sent stays live", notSent: true, event: "hold.failed", sipStatus: 503, state: StateLive},
		{name: "unhold 488 hangs up", unhold: true, status: 488, event: "unhold.failed", sipStatus: 488, ended: EndError, bye: true},
		{name: "unhold 488 kept held", unhold: true, keep: true, status: 488, event: "unhold.failed", sipStatus: 488, state: StateHold},
		{name: "unhold 481 ends without BYE", unhold: true, status: 481, event: "unhold.failed", sipStatus: 481, ended: EndError},
		{name: "unhold not sent stays held", unhold: true, notSent: true, event: "unhold.failed", sipStatus: 503, state: StateHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				if tt.keep {
					c.UnholdFailure = UnholdKeep
				}
			})
			p := h.liveIncoming(peerAudio)
			f := h.m.Hold
			if tt.unhold {
				if _, err := h.holdBy(p, true, "recvonly", 2); err != nil {
					t.Fatal(err)
				}
				f = h.m.Unhold
			}
			h.sync(p.call)
			h.ev.rest()
			before := sdpContent(p.call)
			if tt.notSent {
				h.sig.mu.Lock()
				h.sig.fail = errTest
				h.sig.mu.Unlock()
			}
			done := h.op(f, p.call)
			if !tt.notSent {
				inv := h.sig.expect(t, gosip.INVITE)
				if tt.status == 0 {
					inv.fail(gosip.ErrTransactionTimeout)
				} else {
					inv.answer(tt.status, "No", "")
				}
			}
			err := outcome(t, done)
			if err == nil {
				t.Fatal("the operation succeeded")
			}
			ev, _ := h.ev.expect(t, tt.event)
			if got, _ := ev.Fields["sip_status"].(int); got != tt.sipStatus {
				t.Errorf("%s sip_status %v, want %d", tt.event, ev.Fields["sip_status"], tt.sipStatus)
			}
			if tt.notSent {
				if se := (*SendError)(nil); !errors.As(err, &se) {
					t.Errorf("error %v, want a SendError (HTTP 503, not the peer's refusal)", err)
				}
			}
			h.sync(p.call)
			if tt.ended != "" {
				e, _ := h.ev.expect(t, "call.ended")
				if e.Fields["reason"] != tt.ended {
					t.Errorf("ended with %v, want %s", e.Fields["reason"], tt.ended)
				}
				if tt.bye {
					h.sig.expect(t, gosip.BYE)
				}
			} else {
				_, _, info := h.state(p.call)
				if info.State != tt.state {
					t.Errorf("state %s, want %s", info.State, tt.state)
				}
				if got := sdpContent(p.call); got != before {
					t.Errorf("SDP after the refusal differs from before (RFC 6337 §3.4):\n%s\nwas\n%s", got, before)
				}
			}
			h.quiet(p.call)
		})
	}
}

// RFC 3261 §14.1: after 491 the side that owns the Call-ID retries after
// 2.1–4 s, the other after 0–2 s; at most three retries.
func TestGlareBackoff(t *testing.T) {
	for _, tt := range []struct {
		name     string
		outbound bool
		min, max time.Duration
	}{
		{name: "we called: 2.1-4 s", outbound: true, min: 2100 * time.Millisecond, max: 4 * time.Second},
		{name: "they called: 0-2 s", outbound: false, min: 0, max: 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			var p *peer
			if tt.outbound {
				p = h.outgoing(false, peerAudio)
			} else {
				p = h.liveIncoming(peerAudio)
			}
			done := h.op(h.m.Hold, p.call)
			for try := 1; try <= maxGlareRetries+1; try++ {
				inv := h.sig.expect(t, gosip.INVITE)
				inv.answer(491, "Request Pending", "")
				if try == maxGlareRetries+1 {
					break
				}
				h.sync(p.call)
				if tt.min > 0 {
					h.advance(p.call, tt.min-time.Millisecond)
					h.quiet(p.call)
				}
				h.advance(p.call, tt.max-tt.min+time.Millisecond)
			}
			err := outcome(t, done)
			if se := (*SIPError)(nil); !errors.As(err, &se) || se.Status != 491 {
				t.Fatalf("outcome %v, want 491 after the retries", err)
			}
			if h.obs.glare != maxGlareRetries {
				t.Errorf("%d glare retries counted, want %d", h.obs.glare, maxGlareRetries)
			}
			_, _, info := h.state(p.call)
			if info.State != StateLive {
				t.Errorf("state %s after giving up, want live", info.State)
			}
		})
	}
}

// RFC 3261 §14.2 and RFC 3311 §5.2: one offer at a time in each direction.
func TestOfferExclusivity(t *testing.T) {
	t.Run("re-INVITE while ours is pending gets 491", func(t *testing.T) {
		h := newHarness(t, nil)
		p := h.liveIncoming(peerAudio)
		done := h.op(h.m.Hold, p.call)
		inv := h.sig.expect(t, gosip.INVITE)
		if res := p.send(p.request("INVITE", "", peerSDP(3, "sendonly", -1))).final(t); res.StatusCode != 491 {
			t.Fatalf("got %d, want 491", res.StatusCode)
		}
		if res := p.send(p.request("UPDATE", "", peerSDP(3, "sendonly", -1))).final(t); res.StatusCode != 491 {
			t.Fatalf("UPDATE got %d, want 491", res.StatusCode)
		}
		inv.answer(200, "OK", peerSDP(2, "recvonly", -1))
		if err := outcome(t, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("hold waits for the ACK that answers our offer", func(t *testing.T) {
		h := newHarness(t, nil)
		p := h.liveIncoming(peerAudio)
		req := p.request("INVITE", "", "") // offerless: our 200 carries an offer
		res := p.send(req).final(t)
		if res.StatusCode != 200 || len(res.Body()) == 0 {
			t.Fatalf("offerless re-INVITE got %d with %d bytes of SDP", res.StatusCode, len(res.Body()))
		}
		done := h.op(h.m.Hold, p.call)
		h.quiet(p.call) // RFC 3261 §14.1: not while the INVITE transaction is open
		p.ack(req.CSeq().SeqNo, peerSDP(2, "sendrecv", -1))
		inv := h.sig.expect(t, gosip.INVITE)
		if got := audioDir(t, inv.sdp(t)); got != "sendonly" {
			t.Fatalf("hold offer %s", got)
		}
		inv.answer(200, "OK", peerSDP(3, "recvonly", -1))
		if err := outcome(t, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("UPDATE offer while our 2xx offer awaits its ACK", func(t *testing.T) {
		h := newHarness(t, nil)
		p := h.liveIncoming(peerAudio)
		req := p.request("INVITE", "", "")
		p.send(req).final(t)
		up := p.send(p.request("UPDATE", "", peerSDP(3, "sendonly", -1)))
		h.advance(p.call, reorderWindow) // the ACK never comes
		if res := up.final(t); res.StatusCode != 491 {
			t.Fatalf("got %d, want 491 (RFC 3311 §5.2)", res.StatusCode)
		}
	})
	t.Run("UPDATE offer overtaking the ACK waits for it", func(t *testing.T) {
		h := newHarness(t, nil)
		p := h.liveIncoming(peerAudio)
		req := p.request("INVITE", "", "")
		p.send(req).final(t)
		up := p.send(p.request("UPDATE", "", peerSDP(3, "sendonly", -1)))
		h.sync(p.call)
		p.ack(req.CSeq().SeqNo, peerSDP(2, "sendrecv", -1))
		if res := up.final(t); res.StatusCode != 200 {
			t.Fatalf("got %d, want 200 once the ACK came", res.StatusCode)
		}
	})
	for _, method := range []string{"UPDATE", "INVITE"} {
		t.Run(method+" offer while the peer's video offer awaits the user", func(t *testing.T) {
			h := newHarness(t, nil)
			p := h.liveIncoming(peerAudio)
			add := p.send(p.request("INVITE", "", peerSDP(2, "sendrecv", 9000)))
			h.ev.expect(t, "video.request")
			res := p.send(p.request(method, "", peerSDP(3, "sendonly", -1))).final(t)
			if res.StatusCode != 500 {
				t.Fatalf("got %d, want 500 (RFC 3311 §5.2, RFC 3261 §14.2)", res.StatusCode)
			}
			if ra := atoiHeader(t, res, "Retry-After"); ra < 0 || ra > 10 {
				t.Errorf("Retry-After %d, want 0-10", ra)
			}
			if _, err := h.m.ReplyVideo(context.Background(), p.call.id, false); err != nil {
				t.Fatal(err)
			}
			if res := add.final(t); res.StatusCode != 200 {
				t.Fatalf("the video offer got %d", res.StatusCode)
			}
		})
	}
	t.Run("UPDATE offer before the INVITE is answered", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AutoAnswer = false })
		p := &peer{h: h, callID: "early@" + peerHost, contact: "sip:alice@" + peerHost}
		req := p.request("INVITE", "", peerAudio)
		tx := newFakeTx()
		go h.m.HandleInvite(req, tx)
		ringing := tx.next(t)
		p.uadTag, _ = ringing.To().Params.Get("tag")
		res := p.send(p.request("UPDATE", "", peerSDP(2, "sendonly", -1))).final(t)
		if res.StatusCode != 500 || res.GetHeader("Retry-After") == nil {
			t.Fatalf("got %d, want 500 with Retry-After", res.StatusCode)
		}
	})
}

// RFC 3261 §12.2.1.2: a 2xx to our re-INVITE with a new Contact moves the
// remote target: its ACK and every later request go there.
func TestTargetRefreshBy2xx(t *testing.T) {
	h := newHarness(t, nil)
	p := h.outgoing(false, peerAudio)
	done := h.op(h.m.Hold, p.call)
	inv := h.sig.expect(t, gosip.INVITE)
	inv.answer(200, "OK", peerSDP(2, "recvonly", -1), "Contact: <sip:bob@203.0.113.9:5070>")
	ack := h.sig.expect(t, gosip.ACK)
	if got := ack.req.Recipient.Host + ":" + strconv.Itoa(ack.req.Recipient.Port); got != "203.0.113.9:5070" {
		t.Errorf("ACK to %s, want the new Contact 203.0.113.9:5070", got)
	}
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Hangup(context.Background(), p.call.id); err != nil {
		t.Fatal(err)
	}
	if bye := h.sig.expect(t, gosip.BYE); bye.req.Recipient.Host != "203.0.113.9" {
		t.Errorf("BYE to %s, want the new Contact", bye.req.Recipient.String())
	}
}

// RFC 3261 §12.2.1.1: in-dialog CSeqs are contiguous, so requests that
// overtook each other on their way in are handled in CSeq order; §12.2.2:
// one lower than the last handled is out of order (500).
func TestCSeqOrder(t *testing.T) {
	t.Run("INFO then BYE delivered the other way round", func(t *testing.T) {
		h := newHarness(t, nil)
		p := h.liveIncoming(peerAudio)
		info := p.request("INFO", "", "")
		bye := p.request("BYE", "", "")
		byeTx := p.send(bye)
		h.sync(p.call)
		infoTx := p.send(info)
		if res := infoTx.final(t); res.StatusCode != 200 {
			t.Errorf("INFO got %d, want 200", res.StatusCode)
		}
		if res := byeTx.final(t); res.StatusCode != 200 {
			t.Errorf("BYE got %d, want 200", res.StatusCode)
		}
		e, _ := h.ev.expect(t, "call.ended")
		if e.Fields["reason"] != EndRemote {
			t.Errorf("ended %v", e.Fields["reason"])
		}
	})
	t.Run("a gap never filled waits the window, then a late lower CSeq gets 500", func(t *testing.T) {
		h := newHarness(t, nil)
		p := h.liveIncoming(peerAudio)
		lost := p.request("INFO", "", "")
		later := p.send(p.request("INFO", "", ""))
		h.sync(p.call)
		select {
		case r := <-later.res:
			t.Fatalf("answered %d before the window ended", r.StatusCode)
		default:
		}
		h.advance(p.call, reorderWindow)
		if res := later.final(t); res.StatusCode != 200 {
			t.Fatalf("got %d", res.StatusCode)
		}
		if res := p.send(lost).final(t); res.StatusCode != 500 {
			t.Fatalf("late lower CSeq got %d, want 500", res.StatusCode)
		}
	})
}

// RFC 3261 §8.1.1.8: an INVITE without Contact is refused and leaves
// nothing behind.
func TestInviteWithoutContact(t *testing.T) {
	h := newHarness(t, nil)
	for range 50 {
		p := &peer{h: h, callID: "nocontact-" + strconv.Itoa(int(h.m.active.Load())) + "@x"}
		req := p.request("INVITE", "", peerAudio)
		tx := newFakeTx()
		h.m.HandleInvite(req, tx)
		if res := tx.final(t); res.StatusCode != 400 {
			t.Fatalf("got %d, want 400", res.StatusCode)
		}
	}
	if n := h.m.Active(); n != 0 {
		t.Errorf("%d calls active", n)
	}
	if l := h.m.List(); len(l) != 0 {
		t.Errorf("%d calls listed", len(l))
	}
}

// A panic on one call's loop ends that call, with BYE, call.ended reason
// error and a count, and nothing else.
func TestPanicEndsOnlyItsCall(t *testing.T) {
	h := newHarness(t, nil)
	p1 := h.liveIncoming(peerAudio)
	p2 := h.liveIncoming(peerAudio)
	first := h.med.streams[0]
	first.mu.Lock()
	first.panicOn = true
	first.mu.Unlock()
	p1.send(p1.request("INVITE", "", peerSDP(2, "sendonly", -1)))
	h.sync(p1.call)
	e, _ := h.ev.expect(t, "call.ended")
	if e.Call.ID != p1.call.id || e.Fields["reason"] != EndError {
		t.Fatalf("call.ended of %s reason %v, want %s error", e.Call.ID, e.Fields["reason"], p1.call.id)
	}
	h.sig.expect(t, gosip.BYE)
	if h.obs.panics != 1 {
		t.Errorf("%d panics counted, want 1", h.obs.panics)
	}
	if _, err := h.holdBy(p2, true, "recvonly", 2); err != nil {
		t.Fatalf("the other call: %v", err)
	}
}

// A stream that failed (its goroutine panicked) ends its call.
func TestStreamFaultEndsCall(t *testing.T) {
	h := newHarness(t, nil)
	p := h.liveIncoming(peerAudio)
	s := h.med.streams[0]
	s.mu.Lock()
	fault := s.onFault
	s.mu.Unlock()
	fault("boom")
	e, _ := h.ev.expect(t, "call.ended")
	if e.Call.ID != p.call.id || e.Fields["reason"] != EndError {
		t.Fatalf("call.ended %v", e.Fields)
	}
	h.sig.expect(t, gosip.BYE)
}

// A send that blocks (a name lookup, a TCP connect) holds up no call: the
// loop answers the API and takes a hang-up meanwhile, and the requests go
// out in order once the network moves.
func TestBlockingSendKeepsTheLoopFree(t *testing.T) {
	h := newHarness(t, nil)
	p := h.liveIncoming(peerAudio)
	block := make(chan struct{})
	h.sig.mu.Lock()
	h.sig.block = block
	h.sig.mu.Unlock()
	done := h.begin(p.call, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := h.m.Get(p.call.id); err != nil {
		t.Fatal(err)
	}
	if !p.call.run(ctx, func() {}) {
		t.Fatal("the call's loop is stuck behind the send")
	}
	if _, err := h.m.Hangup(ctx, p.call.id); err != nil {
		t.Fatalf("hangup while the send blocks: %v", err)
	}
	if err := outcome(t, done); err == nil {
		t.Fatal("hold succeeded on an ended call")
	}
	h.sig.mu.Lock()
	h.sig.block = nil
	h.sig.mu.Unlock()
	close(block)
	h.sig.expect(t, gosip.INVITE)
	h.sig.expect(t, gosip.BYE)
}

// media.rtp_timeout: a peer allowed to send that sends nothing is hung up.
func TestRTPTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RTPTimeout = 10 * time.Second })
	p := h.liveIncoming(peerAudio)
	s := h.med.streams[0]
	for range 3 { // RTP keeps coming: the call stays
		h.advance(p.call, 5*time.Second)
		s.mu.Lock()
		s.stats.LastReceived = h.clock.Now()
		s.mu.Unlock()
	}
	if _, _, info := h.state(p.call); info.State != StateLive {
		t.Fatalf("state %s while RTP flows", info.State)
	}
	h.advance(p.call, 11*time.Second)
	e, _ := h.ev.expect(t, "call.ended")
	if e.Fields["reason"] != EndTimeout {
		t.Fatalf("ended %v, want timeout", e.Fields["reason"])
	}
	h.sig.expect(t, gosip.BYE)
}

// RFC 3261 §13.3.1.4: a 2xx never ACKed ends the call after 64·T1.
func TestUnacked2xxEndsCall(t *testing.T) {
	h := newHarness(t, nil)
	p, res := h.incoming(peerAudio, "")
	if res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	h.advance(p.call, 64*h.sig.T1()-time.Millisecond)
	h.quiet(p.call)
	h.advance(p.call, time.Millisecond)
	e, _ := h.ev.expect(t, "call.ended")
	if e.Fields["reason"] != EndTimeout {
		t.Fatalf("ended %v", e.Fields["reason"])
	}
	h.sig.expect(t, gosip.BYE)
}

// sdpContent is what the call's SDP says, without its o= line (whose
// version rises with every SDP sent).
func sdpContent(c *Call) string {
	var lines []string
	done := make(chan struct{})
	c.post(func() {
		defer close(done)
		for _, l := range strings.Split(string(c.local.Marshal()), "\r\n") {
			if !strings.HasPrefix(l, "o=") {
				lines = append(lines, l)
			}
		}
	})
	<-done
	return strings.Join(lines, "\n")
}

// An ended call stays listed for EndedRetention, then goes.
func TestEndedCallRetention(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.EndedRetention = 60 * time.Second })
	p1 := h.liveIncoming(peerAudio)
	p1.send(p1.request("BYE", "", "")).final(t)
	h.advance(p1.call, 30*time.Second)
	p2 := h.liveIncoming(peerAudio)
	p2.send(p2.request("BYE", "", "")).final(t)
	h.sync(p2.call)
	if n := len(h.m.List()); n != 2 {
		t.Fatalf("%d calls listed, want both ended ones", n)
	}
	h.clock.Advance(30 * time.Second)
	if l := h.m.List(); len(l) != 1 || l[0].ID != p2.call.id {
		t.Fatalf("after 60 s: %d listed, want the second call only", len(l))
	}
	if _, err := h.m.Get(p1.call.id); !errors.Is(err, ErrCallNotFound) {
		t.Errorf("Get of the first call: %v, want not found", err)
	}
	h.clock.Advance(31 * time.Second)
	if n := len(h.m.List()); n != 0 {
		t.Fatalf("%d calls listed after their retention", n)
	}
}
