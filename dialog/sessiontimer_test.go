package dialog

import (
	"strconv"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
)

// refresherCall is an outgoing call whose peer took Session-Expires se
// with uad as refresher.
func refresherCall(t *testing.T, h *harness, se int) *peer {
	t.Helper()
	info, err := h.m.Place(t.Context(), PlaceRequest{To: "sip:bob@" + peerHost})
	if err != nil {
		t.Fatal(err)
	}
	inv := h.sig.expect(t, gosip.INVITE)
	if inv.req.GetHeader("Session-Expires") == nil {
		t.Fatal("INVITE without Session-Expires")
	}
	inv.answer(200, "OK", peerAudio, "Contact: <sip:bob@"+peerHost+">",
		"Session-Expires: "+strconv.Itoa(se)+";refresher=uac", "Require: timer")
	h.sig.expect(t, gosip.ACK)
	c, _, _ := h.m.call(info.ID)
	tag, _ := inv.req.From().Params.Get("tag")
	h.ev.expect(t, "call.connected")
	return &peer{h: h, callID: inv.req.CallID().Value(), uadTag: tag, call: c}
}

// RFC 4028 §10: uad refreshes at half the interval; only 408, 481 or no
// answer end the session; 422 is retried at once with the peer's Min-SE;
// other refusals are retried until the session would expire.
func TestSessionRefresh(t *testing.T) {
	const se = 600 * time.Second
	const retry = 30 * time.Second // se/16, at most 30 s
	tests := []struct {
		name    string
		status  int      // the peer's answer to the refresh; 0: none
		hdrs    []string // with it
		retryIn time.Duration
		minSE   int    // the retry's Session-Expires at least
		ended   string // "" = the call stays up
		bye     bool
	}{
		{name: "200 keeps the session", status: 200, retryIn: se / 2},
		{name: "488 is retried", status: 488, retryIn: retry},
		{name: "500 with Retry-After is retried then", status: 500, hdrs: []string{"Retry-After: 3"}, retryIn: 3 * time.Second},
		{name: "491 after the glare retries is retried later", status: 491, retryIn: retry},
		{name: "422 is retried at once with Min-SE", status: 422, hdrs: []string{"Min-SE: 900"}, minSE: 900},
		{name: "481 ends without BYE", status: 481, ended: EndError},
		{name: "408 ends with BYE", status: 408, ended: EndTimeout, bye: true},
		{name: "no answer ends with BYE", status: 0, ended: EndTimeout, bye: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.SessionExpires = 90 * time.Second })
			p := refresherCall(t, h, int(se/time.Second))
			h.advance(p.call, se/2-time.Millisecond)
			h.quiet(p.call)
			h.advance(p.call, time.Millisecond)
			refresh := h.sig.expect(t, gosip.INVITE)
			if got := audioDir(t, refresh.sdp(t)); got != "sendrecv" {
				t.Errorf("refresh offers %s, want the session unchanged (sendrecv)", got)
			}
			if tt.status == 491 {
				for range maxGlareRetries {
					refresh.answer(491, "Request Pending", "")
					h.advance(p.call, 4*time.Second)
					refresh = h.sig.expect(t, gosip.INVITE)
				}
			}
			switch tt.status {
			case 0:
				refresh.fail(gosip.ErrTransactionTimeout)
			case 200:
				refresh.answer(200, "OK", peerSDP(2, "sendrecv", -1), "Session-Expires: 600;refresher=uac")
				h.sig.expect(t, gosip.ACK)
			default:
				refresh.answer(tt.status, "No", "", tt.hdrs...)
			}
			if tt.ended != "" {
				e, _ := h.ev.expect(t, "call.ended")
				if e.Fields["reason"] != tt.ended {
					t.Errorf("ended %v, want %s", e.Fields["reason"], tt.ended)
				}
				if tt.bye {
					h.sig.expect(t, gosip.BYE)
				}
				return
			}
			if tt.retryIn > 0 {
				h.advance(p.call, tt.retryIn-time.Millisecond)
				h.quiet(p.call)
				h.advance(p.call, time.Millisecond)
			}
			again := h.sig.expect(t, gosip.INVITE)
			if tt.minSE > 0 {
				if got := atoiHeader(t, again.req, "Session-Expires"); got < tt.minSE {
					t.Errorf("retry asks Session-Expires %d, want at least %d", got, tt.minSE)
				}
			}
			if _, _, info := h.state(p.call); info.State != StateLive {
				t.Errorf("state %s while refreshing", info.State)
			}
		})
	}
}

// RFC 4028 §10: a session whose refreshes keep failing ends before it
// expires, with BYE.
func TestSessionRefreshFailsUntilExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SessionExpires = 90 * time.Second })
	p := refresherCall(t, h, 90)
	h.advance(p.call, 45*time.Second)
	deadline := start.Add(90*time.Second - 30*time.Second) // 90 - min(32, 90/3)
	for {
		s := h.sig.next(t)
		if s.req.Method == gosip.BYE {
			break
		}
		if s.req.Method != gosip.INVITE {
			t.Fatalf("sent %s", s.req.Method)
		}
		s.answer(488, "Not Acceptable Here", "")
		h.sync(p.call)
		d, ok := h.clock.Next()
		if !ok {
			t.Fatal("nothing scheduled after a refused refresh")
		}
		h.advance(p.call, d)
	}
	if now := h.clock.Now(); now.Before(deadline.Add(-time.Second)) || now.After(deadline.Add(time.Second)) {
		t.Errorf("BYE at %v, want at %v (the interval less 30 s)", now.Sub(start), deadline.Sub(start))
	}
	e, _ := h.ev.expect(t, "call.ended")
	if e.Fields["reason"] != EndTimeout {
		t.Errorf("ended %v", e.Fields["reason"])
	}
}

// The side that does not refresh ends a session nobody refreshed.
func TestSessionNotRefreshedByPeer(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SessionExpires = 90 * time.Second })
	p, res := h.incoming(peerAudio, "Session-Expires: 120;refresher=uac\nSupported: timer")
	if got := res.GetHeader("Session-Expires"); got == nil || !strings.Contains(got.Value(), "refresher=uac") {
		t.Fatalf("200 Session-Expires %v, want the peer as refresher", got)
	}
	p.ack(p.inviteReq.CSeq().SeqNo, "")
	h.advance(p.call, 120*time.Second-32*time.Second-time.Millisecond)
	h.quiet(p.call)
	h.advance(p.call, time.Millisecond)
	h.sig.expect(t, gosip.BYE)
	// A refresh of the peer's in time would have re-armed it:
	h2 := newHarness(t, func(c *Config) { c.SessionExpires = 90 * time.Second })
	p2, _ := h2.incoming(peerAudio, "Session-Expires: 120;refresher=uac\nSupported: timer")
	p2.ack(p2.inviteReq.CSeq().SeqNo, "")
	h2.advance(p2.call, 60*time.Second)
	refresh := p2.request("INVITE", "Session-Expires: 120;refresher=uac\nSupported: timer", peerSDP(2, "sendrecv", -1))
	if res := p2.send(refresh).final(t); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	p2.ack(refresh.CSeq().SeqNo, "")
	h2.advance(p2.call, 80*time.Second)
	h2.quiet(p2.call)
}

// RFC 6337 §5.3: a refresh while uad holds repeats the hold.
func TestSessionRefreshKeepsHold(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SessionExpires = 90 * time.Second })
	p := refresherCall(t, h, 90)
	if _, err := h.holdBy(p, true, "recvonly", 2); err != nil {
		t.Fatal(err)
	}
	h.advance(p.call, 45*time.Second)
	refresh := h.sig.expect(t, gosip.INVITE)
	if got := audioDir(t, refresh.sdp(t)); got != "sendonly" {
		t.Errorf("refresh while held offers %s, want sendonly", got)
	}
}
