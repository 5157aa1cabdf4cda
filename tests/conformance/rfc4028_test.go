package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"uad/dialog"
)

// sessionExpires reads Session-Expires (or its compact form x): seconds and refresher.
func sessionExpires(m *sipIn) (int, string, bool) {
	v := m.header("Session-Expires")
	if v == "" {
		v = m.header("x")
	}
	parts := strings.Split(v, ";")
	secs, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil {
		return 0, "", false
	}
	refresher := ""
	for _, p := range parts[1:] {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(val)
		}
	}
	return secs, refresher, true
}

// hasOption reports whether a header (Require, Supported) lists an option tag.
func hasOption(m *sipIn, name, option string) bool {
	for _, h := range m.res.GetHeaders(name) {
		for _, tag := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tag), option) {
				return true
			}
		}
	}
	return false
}

// RFC 4028 §9 with RFC 3261 §8.2.2.3: uad supports session timers, so an
// INVITE with Require: timer is answered 200 with Require: timer and a
// Session-Expires naming the refresher.
func TestRFC4028_9_RequireTimerAccepted(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c := p.newCall(u, "UDP")
	inv := c.send(t, "INVITE", req{body: offerAudio(rp), headers: []string{
		"Supported: timer", "Require: timer", "Session-Expires: 1800;refresher=uac", "Min-SE: 90"}})
	res := c.final(t, inv)
	if res.res.StatusCode != 200 {
		c.ackFailure(t, res)
		t.Fatalf("INVITE with Require: timer answered %d %s (Unsupported: %q), want 200", res.res.StatusCode, res.res.Reason, res.header("Unsupported"))
	}
	c.established(res)
	c.ack(t, inv, "")
	if !hasOption(res, "Require", "timer") {
		t.Errorf("200 lacks Require: timer")
	}
	secs, refresher, ok := sessionExpires(res)
	if !ok || secs < 90 || secs > 1800 {
		t.Errorf("200 Session-Expires %q, want 90 to 1800 seconds", res.header("Session-Expires"))
	}
	if refresher != "uac" && refresher != "uas" {
		t.Errorf("200 Session-Expires %q names no refresher", res.header("Session-Expires"))
	}
}

// isRefresh matches a session refresh of a dialog: re-INVITE or UPDATE.
func isRefresh(callID string) func(*sipIn) bool {
	return inCall(callID, func(m *sipIn) bool { return m.req.Method == "INVITE" || m.req.Method == "UPDATE" })
}

// advanceUntil moves the fake clock in steps, up to limit, until the peer
// gets a message that matches; it returns the message and the fake time it
// took (an upper bound: a message is looked for after each step).
func advanceUntil(t *testing.T, u *uadUnderTest, p *sipPeer, limit, step time.Duration, what string, match func(*sipIn) bool) (*sipIn, time.Duration) {
	t.Helper()
	if m, ok := p.maybe(100*time.Millisecond, match); ok {
		return m, 0
	}
	var elapsed time.Duration
	for elapsed < limit {
		d := min(step, limit-elapsed)
		u.clock.Advance(d)
		elapsed += d
		if m, ok := p.maybe(20*time.Millisecond, match); ok {
			return m, elapsed
		}
	}
	if m, ok := p.maybe(time.Second, match); ok {
		return m, elapsed
	}
	t.Fatalf("no %s within %v of fake time", what, limit)
	return nil, 0
}

// answerRefresh answers a refresh 200, keeping uad the refresher.
func answerRefresh(t *testing.T, c *peerCall, rp *rtpPeer, in *sipIn, version int, interval time.Duration) {
	t.Helper()
	r := req{headers: []string{"Require: timer", fmt.Sprintf("Session-Expires: %d;refresher=uac", int(interval/time.Second))}}
	if len(in.body()) > 0 {
		r.body = answerTo(t, in.body(), version, answerPlan{audioPort: rp.port})
	}
	c.respond(t, in, 200, "OK", r)
	if in.req.Method == "INVITE" {
		c.p.expect(t, "ACK of the refresh", inCall(c.callID, isRequest("ACK")))
	}
}

// timerCall: uad calls the peer and refreshes the session (refresher=uac).
func timerCall(t *testing.T, interval time.Duration) (*uadUnderTest, *sipPeer, *rtpPeer, *peerCall, string) {
	t.Helper()
	u := startUAD(t, func(c *dialog.Config) { c.SessionExpires = interval; c.RTPTimeout = 0 })
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, info, _ := liveOutbound(t, u, p, rp, dialog.PlaceRequest{}, answerPlan{},
		"Require: timer", fmt.Sprintf("Session-Expires: %d;refresher=uac", int(interval/time.Second)))
	u.settle(t, info.ID)
	return u, p, rp, c, info.ID
}

// RFC 4028 §10: how uad, the refresher, takes a refresh that fails. Only a
// 2xx extends the session: after 488, 422 (retried with the peer's Min-SE,
// §7.4) or 500 with Retry-After the session is still up and uad refreshes
// again before it expires; 481 ends the dialog without BYE and 408 with BYE
// (RFC 3261 §12.2.1.2).
func TestRFC4028_10_RefreshFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code     int
		reason   string
		headers  []string
		interval time.Duration
		outcome  string // retry, end (no BYE), bye
	}{
		{488, "Not Acceptable Here", nil, 600 * time.Second, "retry"},
		{422, "Session Interval Too Small", []string{"Min-SE: 120"}, 90 * time.Second, "retry"},
		{500, "Server Internal Error", []string{"Retry-After: 5"}, 600 * time.Second, "retry"},
		{481, "Call/Transaction Does Not Exist", nil, 600 * time.Second, "end"},
		{408, "Request Timeout", nil, 600 * time.Second, "bye"},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			u, p, rp, c, id := timerCall(t, tc.interval)
			u.requireFakeTimers(t)
			refresh, at := advanceUntil(t, u, p, tc.interval-time.Second, tc.interval/40, "session refresh", isRefresh(c.callID))
			mark := u.ev.mark()
			c.respond(t, refresh, tc.code, tc.reason, req{headers: tc.headers})
			isBye := inCall(c.callID, isRequest("BYE"))
			switch tc.outcome {
			case "end":
				u.waitEvent(t, mark, "call.ended", id)
				p.none(t, 300*time.Millisecond, "BYE after 481", isBye)
				return
			case "bye":
				bye := p.expect(t, "BYE after 408", isBye)
				c.respond(t, bye, 200, "OK", req{})
				u.waitEvent(t, mark, "call.ended", id)
				return
			}
			if e, _, ended := u.ev.find(mark, 300*time.Millisecond, onCall("call.ended", id)); ended {
				t.Fatalf("the call ended (%v) after a refresh refused with %d", e.Fields, tc.code)
			}
			p.none(t, 10*time.Millisecond, fmt.Sprintf("BYE after a refresh refused with %d", tc.code), isBye)
			retry, _ := advanceUntil(t, u, p, tc.interval-at-time.Second, tc.interval/40,
				"new refresh before the session expires", isRefresh(c.callID))
			if tc.code == 422 {
				if secs, _, ok := sessionExpires(retry); !ok || secs < 120 {
					t.Errorf("refresh after 422 (Min-SE: 120) has Session-Expires %q, want at least 120", retry.header("Session-Expires"))
				}
			}
			answerRefresh(t, c, rp, retry, 3, max(tc.interval, 120*time.Second))
			u.settle(t, id)
			if info := u.get(t, id); info.State != dialog.StateLive {
				t.Errorf("call is %s after the refresh succeeded, want live", info.State)
			}
		})
	}
}

// RFC 4028 §10 with RFC 6337 §5.3: a refresh while uad holds repeats the
// hold (sendonly).
func TestRFC4028_10_RefreshRepeatsHold(t *testing.T) {
	t.Parallel()
	const interval = 600 * time.Second
	u, p, rp, c, id := timerCall(t, interval)
	hold := u.hold(id)
	in := p.expect(t, "hold re-INVITE", inCall(c.callID, isRequest("INVITE")))
	answerRefresh(t, c, rp, in, 2, interval)
	if err := result(t, hold, "Hold"); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	u.settle(t, id)
	u.requireFakeTimers(t)
	refresh, _ := advanceUntil(t, u, p, interval-time.Second, interval/40, "session refresh", isRefresh(c.callID))
	if len(refresh.body()) > 0 {
		if m := requireSDP(t, refresh, 1)[0]; m.dir != "sendonly" {
			t.Errorf("refresh while uad holds offers %s, want sendonly", m.dir)
		}
	}
	answerRefresh(t, c, rp, refresh, 3, interval)
	u.settle(t, id)
	if info := u.get(t, id); info.State != dialog.StateHold {
		t.Errorf("call is %s after the refresh, want hold", info.State)
	}
}
