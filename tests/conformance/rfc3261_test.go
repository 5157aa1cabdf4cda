package conformance

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"uad/dialog"
)

func offerAudio(rp *rtpPeer) string { return peerSDP(1, "127.0.0.1", audioM(rp.port, "")) }

// RFC 3261 §8.1.1.8: an INVITE must carry a Contact; without one uad answers
// 400 and keeps no trace of a call, however many come.
func TestRFC3261_8_1_1_8_InviteWithoutContact400LeavesNoCall(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, true)
	rp := newRTPPeer(t)
	for i := 0; i < 200; i++ {
		transport := "UDP"
		if i%10 == 9 {
			transport = "TCP"
		}
		c := p.newCall(u, transport)
		inv := c.send(t, "INVITE", req{body: offerAudio(rp), noContact: true})
		res := c.final(t, inv)
		if res.res.StatusCode != 400 {
			t.Fatalf("INVITE %d without Contact over %s answered %d %s, want 400", i, transport, res.res.StatusCode, res.res.Reason)
		}
		c.ackFailure(t, res)
	}
	if n := len(u.mgr.List()); n != 0 {
		t.Errorf("Manager.List shows %d calls after 200 INVITEs refused with 400, want none", n)
	}
	if n := u.mgr.Active(); n != 0 {
		t.Errorf("Manager.Active = %d after 200 INVITEs refused with 400, want 0", n)
	}
}

// unsupportedTokens lists the option tags of the Unsupported headers.
func unsupportedTokens(m *sipIn) []string {
	var out []string
	for _, h := range m.res.GetHeaders("Unsupported") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				out = append(out, tag)
			}
		}
	}
	return out
}

// RFC 3261 §8.2.2.3: a Require naming an extension uad lacks gets 420 with
// Unsupported listing it.
func TestRFC3261_8_2_2_3_UnknownRequire420(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t)
			p := newSIPPeer(t, true)
			rp := newRTPPeer(t)
			c := p.newCall(u, transport)
			inv := c.send(t, "INVITE", req{body: offerAudio(rp), headers: []string{"Require: foo"}})
			res := c.final(t, inv)
			c.ackFailure(t, res)
			if res.res.StatusCode != 420 {
				t.Fatalf("INVITE with Require: foo answered %d %s, want 420", res.res.StatusCode, res.res.Reason)
			}
			if got := unsupportedTokens(res); len(got) != 1 || got[0] != "foo" {
				t.Errorf("420 has Unsupported %q, want [foo]", got)
			}
			if n := len(u.mgr.List()); n != 0 {
				t.Errorf("Manager.List shows %d calls after a 420, want none", n)
			}
		})
	}
}

// RFC 3261 §8.2.2.3: Unsupported lists only the extensions uad lacks; timer
// (RFC 4028) is one it supports.
func TestRFC3261_8_2_2_3_RequireTimerAndUnknown420NamesUnknownOnly(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c := p.newCall(u, "UDP")
	inv := c.send(t, "INVITE", req{body: offerAudio(rp), headers: []string{
		"Supported: timer", "Require: timer, foo", "Session-Expires: 1800;refresher=uac"}})
	res := c.final(t, inv)
	c.ackFailure(t, res)
	if res.res.StatusCode != 420 {
		t.Fatalf("INVITE with Require: timer, foo answered %d %s, want 420", res.res.StatusCode, res.res.Reason)
	}
	if got := unsupportedTokens(res); len(got) != 1 || got[0] != "foo" {
		t.Errorf("420 has Unsupported %q, want [foo] (uad supports timer)", got)
	}
}

// RFC 3261 §9.2: CANCEL of a ringing INVITE gets 200, and the INVITE 487
// with the same To tag as its 180.
func TestRFC3261_9_2_CancelGets200And487WithRingingTag(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t, func(c *dialog.Config) { c.AutoAnswer = false })
			p := newSIPPeer(t, true)
			rp := newRTPPeer(t)
			c := p.newCall(u, transport)
			inv := c.send(t, "INVITE", req{body: offerAudio(rp)})
			ringing := p.expect(t, "180 Ringing", func(m *sipIn) bool {
				return isResponse(inv, false)(m) && m.res.StatusCode == 180
			})
			tag, _ := ringing.res.To().Params.Get("tag")
			if tag == "" {
				t.Fatal("180 has no To tag")
			}
			id := u.inbound(t, c.callID)
			cancel := c.cancel(t)
			if res := c.final(t, cancel); res.res.StatusCode != 200 {
				t.Errorf("CANCEL answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
			}
			res := c.final(t, inv)
			c.ackFailure(t, res)
			if res.res.StatusCode != 487 {
				t.Fatalf("cancelled INVITE answered %d %s, want 487", res.res.StatusCode, res.res.Reason)
			}
			if got, _ := res.res.To().Params.Get("tag"); got != tag {
				t.Errorf("487 To tag %q, want the 180's %q", got, tag)
			}
			u.waitEvent(t, 0, "call.ended", id)
		})
	}
}

// RFC 3261 §12.2.1.2: a 2xx to uad's re-INVITE with a new Contact changes the
// remote target: the ACK and every later request go there.
func TestRFC3261_12_2_1_2_RemoteTargetRefreshedBy2xx(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})

	hold := u.hold(id)
	in := p.expect(t, "hold re-INVITE", inCall(c.callID, isRequest("INVITE")))
	c.contact = p.uri("moved", "UDP")
	c.respond(t, in, 200, "OK", req{body: answerTo(t, in.body(), 2, answerPlan{audioPort: rp.port})})
	ack := p.expect(t, "ACK of the 200", inCall(c.callID, isRequest("ACK")))
	if got := ack.req.Recipient.User; got != "moved" {
		t.Errorf("ACK Request-URI %s, want the new Contact %s", ack.req.Recipient.String(), c.contact)
	}
	if err := result(t, hold, "Hold"); err != nil {
		t.Fatalf("Hold: %v", err)
	}

	ended := async(func(ctx context.Context) error { _, err := u.mgr.Hangup(ctx, id); return err })
	bye := p.expect(t, "BYE", inCall(c.callID, isRequest("BYE")))
	c.respond(t, bye, 200, "OK", req{})
	if got := bye.req.Recipient.User; got != "moved" {
		t.Errorf("BYE Request-URI %s, want the new Contact %s", bye.req.Recipient.String(), c.contact)
	}
	if err := result(t, ended, "Hangup"); err != nil {
		t.Errorf("Hangup: %v", err)
	}
}

// RFC 3261 §12.2.2: a request in a dialog uad does not know gets 481.
func TestRFC3261_12_2_2_UnknownDialog481(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t)
			p := newSIPPeer(t, true)
			rp := newRTPPeer(t)
			c := p.newCall(u, transport)
			c.remoteTag = "no-such-dialog"
			bye := c.send(t, "BYE", req{})
			if res := c.final(t, bye); res.res.StatusCode != 481 {
				t.Errorf("BYE in an unknown dialog answered %d %s, want 481", res.res.StatusCode, res.res.Reason)
			}
			inv := c.send(t, "INVITE", req{body: offerAudio(rp)})
			res := c.final(t, inv)
			c.ackFailure(t, res)
			if res.res.StatusCode != 481 {
				t.Errorf("re-INVITE in an unknown dialog answered %d %s, want 481", res.res.StatusCode, res.res.Reason)
			}
		})
	}
}

// RFC 3261 §12.2.2: requests a peer sends in order, back to back, are taken
// in CSeq order: each gets its own answer (200), never 500 or 481.
func TestRFC3261_12_2_2_BackToBackRequestsInOrder(t *testing.T) {
	t.Parallel()
	const rounds = 30
	pair := func(t *testing.T, u *uadUnderTest, p *sipPeer, c *peerCall, first, second sent) []string {
		p.send(t, u, c.transport, first.raw)
		p.send(t, u, c.transport, second.raw)
		var bad []string
		for _, s := range []sent{first, second} {
			if res := c.final(t, s); res.res.StatusCode != 200 {
				bad = append(bad, fmt.Sprintf("%s %d got %d %s", s.method, s.cseq, res.res.StatusCode, res.res.Reason))
			}
		}
		return bad
	}
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run("INFO then BYE over "+transport, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t)
			p := newSIPPeer(t, true)
			rp := newRTPPeer(t)
			var bad []string
			for i := 0; i < rounds; i++ {
				c := p.newCall(u, transport)
				c.dial(t, offerAudio(rp), req{})
				bad = append(bad, pair(t, u, p, c, c.render("INFO", req{}), c.render("BYE", req{}))...)
			}
			if len(bad) > 0 {
				t.Errorf("%d of %d requests not answered 200: %s", len(bad), 2*rounds, strings.Join(bad, "; "))
			}
		})
	}
	t.Run("UPDATE then INFO over UDP", func(t *testing.T) {
		t.Parallel()
		u := startUAD(t)
		p := newSIPPeer(t, false)
		rp := newRTPPeer(t)
		c, _, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
		var bad []string
		for i := 0; i < rounds; i++ {
			update := c.render("UPDATE", req{body: peerSDP(2+i, "127.0.0.1", audioM(rp.port, ""))})
			bad = append(bad, pair(t, u, p, c, update, c.render("INFO", req{}))...)
		}
		if len(bad) > 0 {
			t.Errorf("%d of %d requests not answered 200: %s", len(bad), 2*rounds, strings.Join(bad, "; "))
		}
	})
}

// RFC 3261 §14.1: after a 491 to its re-INVITE, uad retries after 2.1–4 s
// when it created the Call-ID (it placed the call), else after 0–2 s.
func TestRFC3261_14_1_GlareRetryTimers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		outbound bool
		min, max time.Duration
	}{
		{"uad owns the Call-ID", true, 2100 * time.Millisecond, 4 * time.Second},
		{"the peer owns the Call-ID", false, 0, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t)
			p := newSIPPeer(t, false)
			rp := newRTPPeer(t)
			var c *peerCall
			var id string
			if tc.outbound {
				var info dialog.CallInfo
				c, info, _ = liveOutbound(t, u, p, rp, dialog.PlaceRequest{}, answerPlan{})
				id = info.ID
			} else {
				c, id, _ = liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
			}
			hold := u.hold(id)
			first := p.expect(t, "hold re-INVITE", inCall(c.callID, isRequest("INVITE")))
			mark := u.ev.mark()
			c.respond(t, first, 491, "Request Pending", req{})
			if _, _, ok := u.ev.find(mark, 5*time.Second, func(e dialog.Event) bool { return e.Type == evGlareRetry }); !ok {
				t.Fatalf("uad did not schedule a retry after 491; events: [%s]", u.ev.types())
			}
			u.settle(t, id)
			u.requireFakeTimers(t)
			isRetry := inCall(c.callID, isRequest("INVITE"))
			if tc.min > 0 {
				u.clock.Advance(tc.min - time.Millisecond)
				if m, ok := p.maybe(300*time.Millisecond, isRetry); ok {
					t.Fatalf("retry %s came before %v of back-off", m, tc.min)
				}
				u.clock.Advance(tc.max - tc.min + time.Millisecond)
			} else {
				u.clock.Advance(tc.max)
			}
			retry, ok := p.maybe(2*time.Second, isRetry)
			if !ok {
				t.Fatalf("no retry of the re-INVITE within %v of back-off", tc.max)
			}
			if retry.req.CSeq().SeqNo <= first.req.CSeq().SeqNo {
				t.Errorf("retry CSeq %d, want above the refused %d (a new transaction)", retry.req.CSeq().SeqNo, first.req.CSeq().SeqNo)
			}
			if ml := requireSDP(t, retry, 1); ml[0].dir != "sendonly" {
				t.Errorf("retried hold offers %s, want sendonly", ml[0].dir)
			}
			c.respond(t, retry, 200, "OK", req{body: answerTo(t, retry.body(), 2, answerPlan{audioPort: rp.port})})
			p.expect(t, "ACK", inCall(c.callID, isRequest("ACK")))
			if err := result(t, hold, "Hold"); err != nil {
				t.Errorf("Hold: %v", err)
			}
		})
	}
}

// RFC 3261 §14.2: an INVITE that arrives while uad's own re-INVITE is
// pending gets 491.
func TestRFC3261_14_2_ReinviteWhileOwnPending491(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})

	hold := u.hold(id)
	ours := p.expect(t, "hold re-INVITE", inCall(c.callID, isRequest("INVITE")))
	theirs := c.send(t, "INVITE", req{body: peerSDP(2, "127.0.0.1", audioM(rp.port, "sendonly"))})
	res := c.final(t, theirs)
	c.ackFailure(t, res)
	if res.res.StatusCode != 491 {
		t.Errorf("re-INVITE during uad's own answered %d %s, want 491", res.res.StatusCode, res.res.Reason)
	}
	c.respond(t, ours, 200, "OK", req{body: answerTo(t, ours.body(), 3, answerPlan{audioPort: rp.port})})
	p.expect(t, "ACK", inCall(c.callID, isRequest("ACK")))
	if err := result(t, hold, "Hold"); err != nil {
		t.Errorf("Hold: %v", err)
	}
}

// addVideo is an offer that adds video to an audio call.
func addVideo(rp, vp *rtpPeer, version int) string {
	return peerSDP(version, "127.0.0.1", audioM(rp.port, ""), videoM(vp.port, "42e01f", ""))
}

// RFC 3261 §14.2: a second re-INVITE before the first is answered gets 500
// with a Retry-After of 0–10 s. The first waits for the user (video offer).
func TestRFC3261_14_2_SecondReinviteBeforeFirstAnswered500(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rtp := newRTPPeers(t, 2)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rtp[0]), req{})

	first := c.send(t, "INVITE", req{body: addVideo(rtp[0], rtp[1], 2)})
	u.waitEvent(t, 0, "video.request", id)
	second := c.send(t, "INVITE", req{body: peerSDP(3, "127.0.0.1", audioM(rtp[0].port, ""))})
	res := c.final(t, second)
	c.ackFailure(t, res)
	checkRetryAfter500(t, res, "second re-INVITE")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := u.mgr.ReplyVideo(ctx, id, false); err != nil {
		t.Errorf("ReplyVideo: %v", err)
	}
	if res := c.final(t, first); res.res.StatusCode == 200 {
		c.ack(t, first, "")
	}
}

// checkRetryAfter500 wants 500 with a Retry-After of 0 to 10 seconds.
func checkRetryAfter500(t *testing.T, res *sipIn, what string) {
	t.Helper()
	if res.res.StatusCode != 500 {
		t.Fatalf("%s answered %d %s, want 500", what, res.res.StatusCode, res.res.Reason)
	}
	v := res.header("Retry-After")
	if secs, ok := retryAfter(v); !ok || secs < 0 || secs > 10 {
		t.Errorf("%s: 500 with Retry-After %q, want 0 to 10 seconds", what, v)
	}
}

// RFC 3261 §14.1/§14.2 with RFC 3264 §5: while uad's offer (in its 2xx to an
// offerless re-INVITE) waits for the answer in the ACK, a hold requested
// through the API is not sent; it goes once the ACK came.
func TestRFC3261_14_2_HoldWaitsForAckOfOfferIn2xx(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})

	reinvite := c.send(t, "INVITE", req{})
	res := c.final(t, reinvite)
	if res.res.StatusCode != 200 || len(res.body()) == 0 {
		t.Fatalf("offerless re-INVITE answered %d %s with %d bytes of SDP, want 200 with an offer", res.res.StatusCode, res.res.Reason, len(res.body()))
	}
	hold := u.hold(id)
	isHold := inCall(c.callID, isRequest("INVITE"))
	if m, ok := p.maybe(500*time.Millisecond, isHold); ok {
		c.respond(t, m, 491, "Request Pending", req{})
		t.Fatalf("uad sent its hold re-INVITE (%s) while its offer still waited for the ACK", m)
	}
	c.ack(t, reinvite, answerTo(t, res.body(), 2, answerPlan{audioPort: rp.port}))
	in := p.expect(t, "hold re-INVITE after the ACK", isHold)
	c.respond(t, in, 200, "OK", req{body: answerTo(t, in.body(), 3, answerPlan{audioPort: rp.port})})
	p.expect(t, "ACK", inCall(c.callID, isRequest("ACK")))
	if err := result(t, hold, "Hold"); err != nil {
		t.Errorf("Hold: %v", err)
	}
}

// RFC 3261 §14.2 and RFC 3264 §5: an offerless re-INVITE gets uad's offer in
// the 200 and the answer comes in the ACK (here it moves the peer's RTP, so
// uad's RTP shows it was taken). While uad holds, that offer repeats the
// hold (RFC 6337 §5.3).
func TestRFC3261_14_2_OfferlessReinvite(t *testing.T) {
	t.Parallel()
	for _, held := range []bool{false, true} {
		name, want := "live", "sendrecv"
		if held {
			name, want = "held by uad", "sendonly"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t)
			p := newSIPPeer(t, false)
			rtp := newRTPPeers(t, 2)
			c, id, ok := liveInbound(t, u, p, "UDP", offerAudio(rtp[0]), req{})
			previous := ok.body()
			if held {
				hold := u.hold(id)
				in := p.expect(t, "hold re-INVITE", inCall(c.callID, isRequest("INVITE")))
				c.respond(t, in, 200, "OK", req{body: answerTo(t, in.body(), 2, answerPlan{audioPort: rtp[0].port})})
				p.expect(t, "ACK", inCall(c.callID, isRequest("ACK")))
				if err := result(t, hold, "Hold"); err != nil {
					t.Fatalf("Hold: %v", err)
				}
				previous = in.body()
			}

			reinvite := c.send(t, "INVITE", req{})
			res := c.final(t, reinvite)
			if res.res.StatusCode != 200 {
				t.Fatalf("offerless re-INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
			}
			ml := requireSDP(t, res, 1)
			if ml[0].kind != "audio" || ml[0].port == 0 || ml[0].dir != want {
				t.Errorf("offer in the 200: %+v, want audio with a port, %s", ml[0], want)
			}
			checkVersion(t, previous, res.body())
			c.ack(t, reinvite, answerTo(t, res.body(), 3, answerPlan{audioPort: rtp[1].port}))
			if !held {
				if !rtp[1].echoed(t, u.audioAddr(t, id), 7) {
					t.Errorf("uad does not echo RTP from the address of the answer in the ACK")
				}
			} else if _, _, err := rtp[1].read(2 * time.Second); err != nil {
				t.Errorf("no hold tone at the address of the answer in the ACK: %v", err)
			}
			p.none(t, 100*time.Millisecond, "BYE after the answer in the ACK", inCall(c.callID, isRequest("BYE")))
			if info := u.get(t, id); info.LocalHold != held {
				t.Errorf("after the exchange local_hold is %v, want %v", info.LocalHold, held)
			}
		})
	}
}

// longRouteSet is 12 long Record-Route entries; the first (the hop next to
// uad) is the peer itself, the others are never contacted.
func longRouteSet(first netip.AddrPort) []string {
	pad := strings.Repeat("x", 80)
	rr := []string{fmt.Sprintf("<sip:%s;lr;rr=rr-00;pad=%s>", first, pad)}
	for i := 1; i < 12; i++ {
		rr = append(rr, fmt.Sprintf("<sip:proxy%02d.example.invalid;lr;rr=rr-%02d;pad=%s>", i, i, pad))
	}
	return rr
}

// inOrder reports whether raw holds each token, in order.
func inOrder(raw string, tokens []string) bool {
	at := 0
	for _, tok := range tokens {
		i := strings.Index(raw[at:], tok)
		if i < 0 {
			return false
		}
		at += i + len(tok)
	}
	return true
}

// RFC 3261 §18.1.1: a request over 1300 bytes goes over TCP when the next
// hop listens there (here: a hold re-INVITE made large by the route set), and
// over UDP when it does not; either way the hold succeeds and the call stays.
func TestRFC3261_18_1_1_LargeReinvite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		listenTCP bool
		want      string
	}{
		{"peer listens on TCP", true, "TCP"},
		{"peer does not listen on TCP", false, "UDP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t)
			p := newSIPPeer(t, tc.listenTCP)
			rp := newRTPPeer(t)
			c := p.newCall(u, "UDP")
			inv := c.send(t, "INVITE", req{body: offerAudio(rp), recordRoute: longRouteSet(p.addr)})
			res, answered := p.maybe(3*time.Second, isResponse(inv, true))
			if !answered {
				t.Fatalf("no final response to the INVITE: its 200, with 12 Record-Route entries, exceeds 1300 bytes (RFC 3261 §18.2.2)")
			}
			if res.res.StatusCode != 200 {
				t.Fatalf("INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
			}
			c.established(res)
			c.ack(t, inv, "")
			id := u.inbound(t, c.callID)
			u.waitEvent(t, 0, "call.connected", id)

			hold := u.hold(id)
			in, ok := p.maybe(5*time.Second, inCall(c.callID, isRequest("INVITE")))
			if !ok {
				err := result(t, hold, "Hold")
				t.Fatalf("no hold re-INVITE reached the peer (Hold returned %v)", err)
			}
			if len(in.raw) <= 1300 {
				t.Fatalf("test setup: the re-INVITE is only %d bytes", len(in.raw))
			}
			if in.transport != tc.want || in.req.Via().Transport != tc.want {
				t.Errorf("re-INVITE of %d bytes came over %s with top Via %s, want %s", len(in.raw), in.transport, in.req.Via().Transport, tc.want)
			}
			c.respond(t, in, 200, "OK", req{body: answerTo(t, in.body(), 2, answerPlan{audioPort: rp.port})})
			p.expect(t, "ACK", inCall(c.callID, isRequest("ACK")))
			if err := result(t, hold, "Hold"); err != nil {
				t.Fatalf("Hold: %v", err)
			}
			p.none(t, 300*time.Millisecond, "BYE", inCall(c.callID, isRequest("BYE")))
			if info := u.get(t, id); info.State != dialog.StateHold {
				t.Errorf("call is %s after the hold, want hold", info.State)
			}
		})
	}
}

// RFC 3261 §18.2.2: a response goes back over UDP whatever its size; the
// 1300-byte rule of §18.1.1 is for requests.
func TestRFC3261_18_2_2_LargeResponseOverUDP(t *testing.T) {
	t.Parallel()
	t.Run("200 to INVITE with 12 Record-Route entries", func(t *testing.T) {
		t.Parallel()
		u := startUAD(t)
		p := newSIPPeer(t, false)
		rp := newRTPPeer(t)
		c := p.newCall(u, "UDP")
		rr := longRouteSet(p.addr)
		inv := c.send(t, "INVITE", req{body: offerAudio(rp), recordRoute: rr})
		res, ok := p.maybe(3*time.Second, isResponse(inv, true))
		if !ok {
			t.Fatalf("no final response to an INVITE whose 200 exceeds 1300 bytes; got [%s]", p.unclaimed())
		}
		if res.res.StatusCode != 200 {
			t.Fatalf("INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
		}
		c.established(res)
		c.ack(t, inv, "")
		if len(res.raw) <= 1300 {
			t.Errorf("test setup: the 200 is only %d bytes", len(res.raw))
		}
		var tokens []string
		for i := range rr {
			tokens = append(tokens, fmt.Sprintf("rr=rr-%02d", i))
		}
		if !inOrder(res.raw, tokens) {
			t.Errorf("200 does not copy the 12 Record-Route entries in order (RFC 3261 §12.1.1)")
		}
	})
	t.Run("200 to OPTIONS with 14 Via entries", func(t *testing.T) {
		t.Parallel()
		u := startUAD(t)
		p := newSIPPeer(t, false)
		c := p.newCall(u, "UDP")
		var vias, tokens []string
		for i := 1; i <= 13; i++ {
			vias = append(vias, fmt.Sprintf("SIP/2.0/UDP proxy%02d.example.invalid:5060;branch=z9hG4bK-via-%02d-%s", i, i, strings.Repeat("y", 60)))
			tokens = append(tokens, fmt.Sprintf("z9hG4bK-via-%02d-", i))
		}
		opt := c.send(t, "OPTIONS", req{extraVia: vias})
		res, ok := p.maybe(3*time.Second, isResponse(opt, true))
		if !ok {
			t.Fatalf("no response to an OPTIONS whose 200 exceeds 1300 bytes")
		}
		if res.res.StatusCode != 200 {
			t.Errorf("OPTIONS answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
		}
		if len(res.raw) <= 1300 {
			t.Errorf("test setup: the 200 is only %d bytes", len(res.raw))
		}
		if b, _ := res.res.Via().Params.Get("branch"); b != opt.branch || !inOrder(res.raw, tokens) {
			t.Errorf("200 does not copy the 14 Via entries in order (RFC 3261 §8.2.6.2)")
		}
	})
}
