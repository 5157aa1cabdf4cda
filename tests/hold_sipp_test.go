package tests

// Call hold against sipp: every row of the SIP mapping table in
// /work/shared/docs/hold-and-video.md in both roles (sipp holds uad, uad
// holds sipp), and the failure rules (refusals, 481, glare, a lost ACK,
// session refresh while held). sipp checks the directions with regular
// expressions as it goes; the tests then check the exact SDP of every
// exchange in sipp's message trace, uad's call object, events and RTP.

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// sdpBodies returns the SDP bodies of the messages sent (sent=true) or
// received by the tracer, in order.
func sdpBodies(msgs []sipMsg, sent bool) []string {
	var out []string
	for _, m := range msgs {
		if m.Sent == sent && strings.Contains(m.Body, "v=0") {
			out = append(out, m.Body)
		}
	}
	return out
}

// holdCallToSipp is uad calling a sipp UAS that announces the test's RTP socket.
type holdCallToSipp struct {
	u    *UAD
	ev   *EventStream
	peer *RTPPeer
	sipp *Sipp
	id   string
	call CallInfo
}

// uadCallsSipp starts uad and the sipp UAS scenario (args are more sipp
// arguments) and places an echo call to it; it returns once connected.
func uadCallsSipp(t *testing.T, opts UADOptions, scenario string, args ...string) *holdCallToSipp {
	t.Helper()
	requirePeer(t, "sipp")
	h := &holdCallToSipp{u: startUAD(t, opts), peer: newRTPPeer(t, 0)}
	h.ev = h.u.Events()
	h.sipp = startSipp(t, scenario, append([]string{"-key", "rtp_port", itoa(h.peer.Port())}, args...)...)
	h.id = h.u.PlaceCall(h.sipp.URI("sipp"), map[string]any{"media": "echo"}).ID
	h.ev.WaitType(t, "call.connected", h.id, sigTimeout)
	h.call = h.u.Call(h.id)
	checkCallIs(t, "connected", h.call, callWant{State: "live", Dir: "sendrecv"})
	return h
}

// talk makes the test's socket send RTP to uad for the rest of the test and
// waits until uad echoes it.
func (h *holdCallToSipp) talk(t *testing.T) {
	t.Helper()
	h.peer.SendAsync(h.u.AudioLocal(h.call), 3000)
	if got := waitPackets(h.peer, time.Time{}, 10, echoOf(h.peer), 3*time.Second); len(got) < 10 {
		t.Fatalf("echo before the hold: %d packets, want >= 10: %s", len(got), h.peer.Stats())
	}
}

// checkRefused asserts a 502 {"error", "sip_status": status}.
func checkRefused(t *testing.T, what string, st int, e apiError, status int) {
	t.Helper()
	if st != http.StatusBadGateway || e.SIPStatus != status {
		t.Errorf("%s = %d %+v, want 502 with sip_status %d", what, st, e, status)
	}
}

// refusedHoldRequest asks to hold (or resume) the call, which the peer
// refuses with status: the API answers 502 with that sip_status, and so
// does the hold.failed (unhold.failed) event, which it returns.
func refusedHoldRequest(t *testing.T, h *holdCallToSipp, hold bool, what string, status int) Event {
	t.Helper()
	st, _, e := holdRequest(t, h.u, h.id, hold)
	checkRefused(t, what, st, e, status)
	typ := "hold.failed"
	if !hold {
		typ = "unhold.failed"
	}
	failed := h.ev.WaitType(t, typ, h.id, sigTimeout)
	if failed.SIPStatus != status {
		t.Errorf("%s sip_status %d, want %d", typ, failed.SIPStatus, status)
	}
	return failed
}

// ---------------------------------------------------------------------------
// sipp holds uad.

// sipp calls uad and goes through the table as the holder: sendonly,
// inactive, sendrecv, c=0.0.0.0, sendrecv, an offerless re-INVITE, UPDATE
// sendonly, UPDATE sendrecv. uad's answers are checked exactly; its call
// object follows each step; uad echoes RTP exactly while it may send.
func TestHoldSippHoldsUAD_Table(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	const stepMS = 800 // sipp's pause after each exchange
	u, ev, peer, s := sippCallsUAD(t, UADOptions{}, "hold_uac_table.xml", "-s", "uad", "-d", itoa(stepMS))

	id := ev.WaitAnswered(t).CallID()
	c := u.Call(id)
	peer.SendAsync(u.AudioLocal(c), 3000)

	// The agreed direction, step by step (the offerless re-INVITE changes
	// nothing, so it is inside the fifth step).
	steps := []struct {
		what string
		want callWant
	}{
		{"call up", callWant{State: "live", Dir: "sendrecv"}},
		{"re-INVITE sendonly", callWant{State: "live", RemoteHold: true, Dir: "recvonly"}},
		{"re-INVITE inactive", callWant{State: "live", RemoteHold: true, Dir: "inactive"}},
		{"re-INVITE sendrecv", callWant{State: "live", Dir: "sendrecv"}},
		{"re-INVITE c=0.0.0.0", callWant{State: "live", RemoteHold: true, Dir: "recvonly"}},
		{"re-INVITE sendrecv, offerless re-INVITE", callWant{State: "live", Dir: "sendrecv"}},
		{"UPDATE sendonly", callWant{State: "live", RemoteHold: true, Dir: "recvonly"}},
		{"UPDATE sendrecv", callWant{State: "live", Dir: "sendrecv"}},
	}
	seen := make([]time.Time, len(steps)+1) // when the test first saw each step
	checkCallIs(t, steps[0].what, c, steps[0].want)
	seen[0] = time.Now()
	for i := 1; i < len(steps); i++ {
		waitCallIs(t, u, id, steps[i].want, 3*stepMS*time.Millisecond)
		seen[i] = time.Now()
	}
	end := ev.WaitType(t, "call.ended", id, endTimeout)
	seen[len(steps)] = time.Now()
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", end.Reason)
	}
	r := s.WaitOK()

	// RTP: echoed exactly in the sendrecv steps. Each step's window leaves
	// out 100 ms at either end (when the test saw it is not when it began).
	pkts := peer.Received()
	for i, st := range steps {
		from, to := seen[i].Add(100*time.Millisecond), seen[i+1].Add(-100*time.Millisecond)
		if !to.After(from) {
			continue
		}
		in := filter(pkts, func(pk RTPPacket) bool { return !pk.At.Before(from) && pk.At.Before(to) })
		if st.want.Dir == "sendrecv" {
			if want := int(to.Sub(from)/(20*time.Millisecond)) / 2; len(filter(in, echoOf(peer))) < want {
				t.Errorf("%s (sendrecv): %d packets echoed in %v, want >= %d", st.what, len(in), to.Sub(from), want)
			}
		} else if len(in) > 0 {
			t.Errorf("%s (%s): uad sent %d RTP packets in %v, want none (the peer holds; c=0.0.0.0 means send nothing)",
				st.what, st.want.Dir, len(in), to.Sub(from))
		}
	}
	checkOneStream(t, "uad's RTP", pkts)

	// Events: held/resumed on changes only, with the call as agreed.
	evs := holdEvents(ev, id)
	want := []string{"held", "resumed", "held", "resumed", "held", "resumed"}
	if got := eventTypes(evs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hold events %v, want %v (the inactive re-offer and the offerless re-INVITE change nothing)", got, want)
	} else {
		for _, e := range evs {
			if e.Type == "held" {
				checkEventCall(t, e, callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
			} else {
				checkEventCall(t, e, callWant{State: "live", Dir: "sendrecv"})
			}
		}
	}

	// The exact answers, from sipp's trace.
	msgs := parseSippTrace(r.Messages)
	answerOf := func(method string, cseq int) sipMsg {
		t.Helper()
		for _, m := range msgs {
			if n, mm := m.CSeq(); n == cseq && mm == method && m.Status() == 200 && !m.Sent {
				return m
			}
		}
		t.Fatalf("no 200 to %s CSeq %d in sipp's trace", method, cseq)
		return sipMsg{}
	}
	checkSDPDir(t, "answer to sendonly", answerOf("INVITE", 2), "recvonly")
	checkSDPDir(t, "answer to inactive", answerOf("INVITE", 3), "inactive")
	checkSDPDir(t, "answer to sendrecv", answerOf("INVITE", 4), "sendrecv")
	checkSDPDir(t, "answer to c=0.0.0.0", answerOf("INVITE", 5), "recvonly")
	checkSDPDir(t, "answer to sendrecv after c=0.0.0.0", answerOf("INVITE", 6), "sendrecv")
	checkSDPDir(t, "offer in the 200 to an offerless re-INVITE", answerOf("INVITE", 7), "sendrecv")
	checkSDPDir(t, "answer to UPDATE sendonly", answerOf("UPDATE", 8), "recvonly")
	checkSDPDir(t, "answer to UPDATE sendrecv", answerOf("UPDATE", 9), "sendrecv")
	checkSDPVersions(t, "uad's SDP", sdpBodies(msgs, false))
}

// sipp holds uad and never ACKs uad's 200: uad retransmits it (T1 = 100 ms,
// doubling) and hangs up with BYE after 64·T1 = 6.4 s.
func TestHoldSippLostACK(t *testing.T) {
	t.Parallel()
	_, ev, _, s := sippCallsUAD(t, UADOptions{Config: map[string]any{"sip.t1": "100ms"}}, "hold_uac_no_ack.xml", "-s", "uad")

	id := ev.WaitAnswered(t).CallID()
	checkEventCall(t, ev.WaitType(t, "held", id, sigTimeout), callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	end := ev.WaitType(t, "call.ended", id, 15*time.Second)
	if end.Reason != "timeout" {
		t.Errorf("call.ended reason %q, want timeout (no ACK)", end.Reason)
	}
	r := s.WaitOK() // it got the BYE and answered it

	msgs := parseSippTrace(r.Messages)
	var oks []sipMsg
	var bye *sipMsg
	for i, m := range msgs {
		if n, method := m.CSeq(); !m.Sent && n == 2 && method == "INVITE" && m.Status() == 200 {
			oks = append(oks, m)
		}
		if !m.Sent && m.Method() == "BYE" && bye == nil {
			bye = &msgs[i]
		}
	}
	if len(oks) < 3 {
		t.Fatalf("sipp got %d 200s to the unacknowledged hold, want the 200 and >= 2 retransmissions", len(oks))
	}
	checkSDPDir(t, "answer to the hold", oks[0], "recvonly")
	for i := 1; i < len(oks); i++ {
		if oks[i].Body != oks[0].Body {
			t.Errorf("retransmission %d of the 200 has another body:\n%s", i, oks[i].Body)
		}
	}
	gap := oks[1].At.Sub(oks[0].At)
	if gap < 50*time.Millisecond || gap > 400*time.Millisecond {
		t.Errorf("first retransmission %v after the 200, want T1 = 100 ms", gap)
	}
	for i := 2; i < len(oks); i++ {
		prev, cur := oks[i-1].At.Sub(oks[i-2].At), oks[i].At.Sub(oks[i-1].At)
		if prev < 2*time.Second && (cur < prev*3/2 || cur > prev*3) {
			t.Errorf("retransmission interval %v after %v, want it doubled (RFC 3261 §13.3.1.4)", cur, prev)
		}
	}
	if bye == nil {
		t.Fatalf("no BYE from uad in sipp's trace")
	}
	if d := bye.At.Sub(oks[0].At); d < 6100*time.Millisecond || d > 8*time.Second {
		t.Errorf("BYE %v after the 200, want 64·T1 = 6.4 s", d)
	}
}

// ---------------------------------------------------------------------------
// uad holds sipp.

// uad holds a sipp UAS and resumes: a=sendonly answered recvonly, then
// a=sendrecv; repeated requests are 200 no-ops.
func TestHoldUADHoldsSipp(t *testing.T) {
	t.Parallel()
	h := uadCallsSipp(t, UADOptions{}, "hold_uas_basic.xml")
	holding := callWant{State: "hold", LocalHold: true, Dir: "sendonly"}
	live := callWant{State: "live", Dir: "sendrecv"}

	checkCallIs(t, "hold response", mustHold(t, h.u, h.id), holding)
	checkEventCall(t, h.ev.WaitType(t, "hold.success", h.id, sigTimeout), holding)
	checkCallIs(t, "GET after hold", h.u.Call(h.id), holding)
	// Holding again is a no-op (sipp would fail on a second hold offer).
	checkCallIs(t, "second hold", mustHold(t, h.u, h.id), holding)

	checkCallIs(t, "unhold response", mustUnhold(t, h.u, h.id), live)
	checkEventCall(t, h.ev.WaitType(t, "unhold.success", h.id, sigTimeout), live)
	checkCallIs(t, "second unhold", mustUnhold(t, h.u, h.id), live)

	r := hangUp(t, h.u, h.ev, h.id, h.sipp)
	checkHoldEvents(t, h.ev, h.id, "", "hold.success", "unhold.success")

	msgs := parseSippTrace(r.Messages)
	checkHoldResumeOffers(t, msgs, "sendonly")
	checkSDPVersions(t, "uad's SDP", sdpBodies(msgs, false))
}

// calls.hold_dialect: inactive holds with a=inactive (and sends nothing);
// legacy holds with c=IN IP4 0.0.0.0 and no direction attribute.
func TestHoldDialects(t *testing.T) {
	t.Parallel()
	t.Run("inactive", func(t *testing.T) {
		t.Parallel()
		h := uadCallsSipp(t, UADOptions{Config: map[string]any{"calls.hold_dialect": "inactive"}}, "hold_uas_dialect_inactive.xml")
		h.talk(t)
		checkCallIs(t, "hold response", mustHold(t, h.u, h.id), callWant{State: "hold", LocalHold: true, Dir: "inactive"})
		if w := watch(h.peer); len(w[0]) > 0 {
			t.Errorf("inactive hold: uad sent %d RTP packets in %v, want none (no hold tone when inactive)", len(w[0]), quietWindow)
		}
		checkCallIs(t, "unhold response", mustUnhold(t, h.u, h.id), callWant{State: "live", Dir: "sendrecv"})
		checkHears(t, "echo after the resume", h.peer, echoOf(h.peer))
		h.u.Hangup(h.id)
		msgs := parseSippTrace(h.sipp.WaitOK().Messages)
		// The peer's inactive answer is forced by our inactive offer: it
		// does not mean the peer holds us.
		checkHoldEvents(t, h.ev, h.id, "an inactive answer to an inactive offer is no hold by the peer", "hold.success", "unhold.success")
		checkHoldResumeOffers(t, msgs, "inactive")
	})
	t.Run("legacy", func(t *testing.T) {
		t.Parallel()
		h := uadCallsSipp(t, UADOptions{Config: map[string]any{"calls.hold_dialect": "legacy"}}, "hold_uas_dialect_legacy.xml")
		h.talk(t)
		checkCallIs(t, "hold response", mustHold(t, h.u, h.id), callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
		checkHears(t, "legacy hold: the hold tone (the peer answered recvonly)", h.peer, notEchoOf(h.peer))
		checkCallIs(t, "unhold response", mustUnhold(t, h.u, h.id), callWant{State: "live", Dir: "sendrecv"})
		h.u.Hangup(h.id)
		msgs := parseSippTrace(h.sipp.WaitOK().Messages)
		checkHoldEvents(t, h.ev, h.id, "", "hold.success", "unhold.success")
		hold, resume := holdResumeOffers(t, msgs)
		if a, ok := parseSDPAudio(hold.Body); !ok || a.Conn != "0.0.0.0" || len(a.Dirs) != 0 || a.Port == 0 {
			t.Errorf("legacy hold offer: address %q, directions %q, port %d; want c=IN IP4 0.0.0.0, no direction attribute, the same port:\n%s",
				a.Conn, a.Dirs, a.Port, hold.Body)
		}
		checkSDPDir(t, "resume offer", resume, "sendrecv")
	})
}

// sipp holds uad, then uad holds too (a=inactive), uad resumes while sipp
// still holds (a=sendrecv answered sendonly), sipp resumes.
func TestHoldMutualWithSipp(t *testing.T) {
	t.Parallel()
	h := uadCallsSipp(t, UADOptions{}, "hold_uas_mutual.xml", "-d", "1500")
	h.talk(t)

	heldBy := callWant{State: "live", RemoteHold: true, Dir: "recvonly"}
	checkEventCall(t, h.ev.WaitType(t, "held", h.id, sigTimeout), heldBy)
	heldSeen := time.Now()
	checkCallIs(t, "held by sipp", h.u.Call(h.id), heldBy)

	st, _, e := holdRequest(t, h.u, h.id, false)
	if st != http.StatusConflict || e.Error != notHolderMsg {
		t.Errorf("unhold of sipp's hold = %d %+v, want 409 %q", st, e, notHolderMsg)
	}

	both := callWant{State: "hold", LocalHold: true, RemoteHold: true, Dir: "inactive"}
	checkCallIs(t, "hold response", mustHold(t, h.u, h.id), both)
	checkEventCall(t, h.ev.WaitType(t, "hold.success", h.id, sigTimeout), both)

	checkCallIs(t, "unhold response", mustUnhold(t, h.u, h.id), heldBy)
	checkEventCall(t, h.ev.WaitType(t, "unhold.success", h.id, sigTimeout), heldBy)

	live := callWant{State: "live", Dir: "sendrecv"}
	checkEventCall(t, h.ev.WaitType(t, "resumed", h.id, 10*time.Second), live)
	checkCallIs(t, "resumed by sipp", h.u.Call(h.id), live)
	checkHears(t, "echo after both resumed", h.peer, echoOf(h.peer))

	msgs := parseSippTrace(hangUp(t, h.u, h.ev, h.id, h.sipp).Messages)
	checkHoldEvents(t, h.ev, h.id, "", "held", "hold.success", "unhold.success", "resumed")

	sippInvs := filter(msgs, requestsOf("INVITE", true))
	uadInvs := filter(msgs, requestsOf("INVITE", false))
	if len(sippInvs) != 2 || len(uadInvs) != 3 {
		t.Fatalf("sipp's trace has %d INVITEs from sipp (want 2) and %d from uad (want 3)", len(sippInvs), len(uadInvs))
	}
	if res, ok := responseTo(msgs, sippInvs[0], 200); ok {
		checkSDPDir(t, "uad's answer to sipp's hold", res, "recvonly")
	} else {
		t.Errorf("no 200 to sipp's hold")
	}
	checkSDPDir(t, "uad's hold while held", uadInvs[1], "inactive")
	checkSDPDir(t, "uad's resume while held", uadInvs[2], "sendrecv")
	if res, ok := responseTo(msgs, sippInvs[1], 200); ok {
		checkSDPDir(t, "uad's answer to sipp's resume", res, "sendrecv")
	} else {
		t.Errorf("no 200 to sipp's resume")
	}
	checkSDPVersions(t, "uad's SDP", sdpBodies(msgs, false))

	// From the held event until sipp's resume uad may not send: first the
	// peer holds (recvonly), then both (inactive), then the peer (recvonly).
	resumeAt := sippInvs[1].At
	if n := len(filter(h.peer.Received(), func(pk RTPPacket) bool {
		return !pk.At.Before(heldSeen) && pk.At.Before(resumeAt)
	})); n > 0 {
		t.Errorf("uad sent %d RTP packets while the peer held it (%v until sipp's resume), want none", n, resumeAt.Sub(heldSeen))
	}
}

// A later offer while uad holds: sipp sends a re-INVITE without SDP; uad's
// offer in the 200 repeats sendonly; sipp's answer in the ACK moves its RTP
// to another port, where the hold tone goes on.
func TestHoldLaterOfferWhileHolding(t *testing.T) {
	t.Parallel()
	peer2 := newRTPPeer(t, 0)
	h := uadCallsSipp(t, UADOptions{}, "hold_uas_offerless.xml", "-key", "rtp_port2", itoa(peer2.Port()))
	holding := callWant{State: "hold", LocalHold: true, Dir: "sendonly"}
	checkCallIs(t, "hold response", mustHold(t, h.u, h.id), holding)

	// The answer in the ACK took effect once the hold tone reaches the new port.
	if got := waitPackets(peer2, time.Time{}, 10, anyPacket, 5*time.Second); len(got) < 10 {
		t.Fatalf("after the offerless re-INVITE: %d packets at the port of the answer, want the hold tone", len(got))
	}
	c := h.u.Call(h.id)
	checkCallIs(t, "after the offerless re-INVITE", c, holding)
	if c.Audio != nil && c.Audio.RemoteRTP != peer2.Addr() {
		t.Errorf("audio.remote_rtp %q, want %s (the answer in the ACK)", c.Audio.RemoteRTP, peer2.Addr())
	}

	peer2.SendAsync(h.u.AudioLocal(c), 3000)
	checkCallIs(t, "unhold response", mustUnhold(t, h.u, h.id), callWant{State: "live", Dir: "sendrecv"})
	checkHears(t, "echo after the resume, at the new port", peer2, echoOf(peer2))
	h.u.Hangup(h.id)
	msgs := parseSippTrace(h.sipp.WaitOK().Messages)
	checkHoldEvents(t, h.ev, h.id, "the re-INVITE changes nothing", "hold.success", "unhold.success")
	offerless := filter(msgs, requestsOf("INVITE", true))
	if len(offerless) != 1 || offerless[0].Body != "" {
		t.Fatalf("sipp sent %d INVITEs, want its one offerless re-INVITE", len(offerless))
	}
	if res, ok := responseTo(msgs, offerless[0], 200); ok {
		checkSDPDir(t, "uad's offer while it holds", res, "sendonly")
	} else {
		t.Errorf("no 200 to the offerless re-INVITE")
	}
	checkSDPVersions(t, "uad's SDP", sdpBodies(msgs, false))
}

// The peer refuses the hold (488): hold.failed, 502, the call stays live
// and the media as it was.
func TestHoldRefused(t *testing.T) {
	t.Parallel()
	h := uadCallsSipp(t, UADOptions{}, "hold_uas_hold_refused.xml")
	h.talk(t)
	live := callWant{State: "live", Dir: "sendrecv"}

	failed := refusedHoldRequest(t, h, true, "hold refused by the peer", 488)
	checkEventCall(t, failed, live)
	checkCallIs(t, "after the refused hold", h.u.Call(h.id), live)
	checkHears(t, "echo after the refused hold (media unchanged)", h.peer, echoOf(h.peer))
	pkts := h.peer.Received()
	if n := len(filter(pkts, notEchoOf(h.peer))); n > 0 {
		t.Errorf("%d packets that are not the echo: the hold source must not start before the peer accepts", n)
	}
	checkOneStream(t, "uad's RTP", pkts)

	h.u.Hangup(h.id)
	h.sipp.WaitOK()
	checkHoldEvents(t, h.ev, h.id, "", "hold.failed")
}

// The peer refuses the resume (488): unhold.failed; then the call is hung
// up (calls.unhold_failure: hangup, the default) or stays held (keep).
func TestUnholdRefused(t *testing.T) {
	t.Parallel()
	t.Run("hangup", func(t *testing.T) {
		t.Parallel()
		h := uadCallsSipp(t, UADOptions{}, "hold_uas_unhold_refused.xml")
		mustHold(t, h.u, h.id)
		failed := refusedHoldRequest(t, h, false, "unhold refused by the peer", 488)
		end := h.ev.WaitType(t, "call.ended", h.id, sigTimeout)
		checkOrder(t, failed, end)
		if end.Reason == "remote" {
			t.Errorf("call.ended reason remote: uad hangs up itself after a failed unhold")
		}
		h.sipp.WaitOK() // it got uad's BYE
		if c := h.u.Call(h.id); c.State != "ended" {
			t.Errorf("GET call: state %q, want ended", c.State)
		}
	})
	t.Run("keep", func(t *testing.T) {
		t.Parallel()
		h := uadCallsSipp(t, UADOptions{Config: map[string]any{"calls.unhold_failure": "keep"}}, "hold_uas_unhold_refused.xml")
		h.talk(t)
		holding := callWant{State: "hold", LocalHold: true, Dir: "sendonly"}
		mustHold(t, h.u, h.id)
		st, _, e := holdRequest(t, h.u, h.id, false)
		checkRefused(t, "unhold refused by the peer", st, e, 488)
		checkEventCall(t, h.ev.WaitType(t, "unhold.failed", h.id, sigTimeout), holding)
		checkCallIs(t, "after the refused unhold", h.u.Call(h.id), holding)
		checkHears(t, "after the refused unhold: the hold tone (still held)", h.peer, notEchoOf(h.peer))
		if h.ev.HasType("call.ended", h.id) {
			t.Fatalf("call.ended with calls.unhold_failure: keep")
		}
		h.u.Hangup(h.id)
		if end := h.ev.WaitType(t, "call.ended", h.id, sigTimeout); end.Reason != "local" {
			t.Errorf("call.ended reason %q, want local", end.Reason)
		}
		h.sipp.WaitOK()
	})
}

// The resume gets 481: the dialog is gone; the call ends without a BYE.
func TestUnholdGets481(t *testing.T) {
	t.Parallel()
	h := uadCallsSipp(t, UADOptions{Config: map[string]any{"calls.unhold_failure": "keep"}}, "hold_uas_unhold_481.xml")
	mustHold(t, h.u, h.id)
	failed := refusedHoldRequest(t, h, false, "unhold answered 481", 481)
	end := h.ev.WaitType(t, "call.ended", h.id, sigTimeout) // even with keep: 481 ends the dialog
	checkOrder(t, failed, end)
	if end.SIPStatus != 481 {
		t.Errorf("call.ended sip_status %d, want 481", end.SIPStatus)
	}
	h.sipp.WaitOK() // no BYE came within 1.5 s
}

// 491 to uad's hold: uad retries after 2.1-4 s when it placed the call (it
// created the Call-ID), after 0-2 s when it answered it; the request
// returns after the retry; the call shows the hold pending meanwhile.
func TestHoldGlare(t *testing.T) {
	t.Parallel()
	// pollPending records GET snapshots until stop is closed.
	type snap struct {
		at time.Time
		c  CallInfo
	}
	pollPending := func(u *UAD, id string, stop chan struct{}) func() []snap {
		var mu sync.Mutex
		var snaps []snap
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(25 * time.Millisecond):
				}
				st, body, err := u.do(http.MethodGet, "/v1/calls/"+id, nil)
				var c CallInfo
				if err == nil && st == http.StatusOK && json.Unmarshal(body, &c) == nil {
					mu.Lock()
					snaps = append(snaps, snap{time.Now(), c})
					mu.Unlock()
				}
			}
		}()
		return func() []snap { <-done; mu.Lock(); defer mu.Unlock(); return snaps }
	}
	check := func(t *testing.T, ev *EventStream, id string, r SippResult, snaps []snap, min, max time.Duration) {
		msgs := parseSippTrace(r.Messages)
		var holds []sipMsg
		for _, m := range filter(msgs, requestsOf("INVITE", false)) {
			if a, ok := parseSDPAudio(m.Body); ok && a.Dir() == "sendonly" {
				holds = append(holds, m)
			}
		}
		if len(holds) != 2 {
			t.Fatalf("sipp got %d hold re-INVITEs, want 2 (the one answered 491 and the retry)", len(holds))
		}
		checkSDPDir(t, "retried hold", holds[1], "sendonly")
		n0, _ := holds[0].CSeq()
		n1, _ := holds[1].CSeq()
		if n1 <= n0 {
			t.Errorf("the retry has CSeq %s after %s: a new request needs a higher CSeq", holds[1].Header("CSeq"), holds[0].Header("CSeq"))
		}
		if gap := holds[1].At.Sub(holds[0].At); gap < min-50*time.Millisecond || gap > max+300*time.Millisecond {
			t.Errorf("retry %v after the 491'd re-INVITE, want %v-%v", gap, min, max)
		}
		checkHoldEvents(t, ev, id, "a 491 is retried, not reported", "hold.success")
		pendingSeen := false
		for _, s := range snaps {
			if !s.at.Before(holds[1].At.Add(-20 * time.Millisecond)) {
				break
			}
			if s.c.LocalHold || s.c.State != "live" {
				t.Errorf("during the 491 back-off the call is %s; want live, local_hold false until the retry succeeds", describeCall(s.c))
				break
			}
			if s.c.Pending != nil && *s.c.Pending == "hold" {
				pendingSeen = true
			}
		}
		if !pendingSeen {
			t.Errorf("no GET during the 491 back-off showed pending \"hold\"")
		}
	}

	t.Run("caller", func(t *testing.T) {
		t.Parallel()
		h := uadCallsSipp(t, UADOptions{}, "hold_uas_glare.xml")
		stop := make(chan struct{})
		snaps := pollPending(h.u, h.id, stop)
		t0 := time.Now()
		c := mustHold(t, h.u, h.id)
		took := time.Since(t0)
		close(stop)
		checkCallIs(t, "hold response after the retry", c, callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
		if took < 2100*time.Millisecond || took > 5*time.Second {
			t.Errorf("the hold request took %v, want the 2.1-4 s back-off and the retry", took)
		}
		h.u.Hangup(h.id)
		check(t, h.ev, h.id, h.sipp.WaitOK(), snaps(), 2100*time.Millisecond, 4*time.Second)
	})
	t.Run("callee", func(t *testing.T) {
		t.Parallel()
		u, ev, _, s := sippCallsUAD(t, UADOptions{}, "hold_uac_glare.xml", "-s", "uad")
		id := ev.WaitAnswered(t).CallID()
		stop := make(chan struct{})
		snaps := pollPending(u, id, stop)
		t0 := time.Now()
		c := mustHold(t, u, id)
		took := time.Since(t0)
		close(stop)
		checkCallIs(t, "hold response after the retry", c, callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
		if took > 3*time.Second {
			t.Errorf("the hold request took %v, want the 0-2 s back-off and the retry", took)
		}
		u.Hangup(id)
		check(t, ev, id, s.WaitOK(), snaps(), 0, 2*time.Second)
	})
}

// RFC 4028 session timer while uad holds: the peer makes uad the refresher
// (Session-Expires: 90;refresher=uac in its 200s); after about 45 s uad
// refreshes with a re-INVITE that repeats sendonly, and the call stays held
// with no event. Long (about 50 s): it runs in parallel with the others.
func TestHoldSessionTimerRefresh(t *testing.T) {
	t.Parallel()
	h := uadCallsSipp(t, UADOptions{Config: map[string]any{"sip.session_expires": "90s"}},
		"hold_uas_session_timer.xml", "-timeout", "120s")
	holding := callWant{State: "hold", LocalHold: true, Dir: "sendonly"}
	checkCallIs(t, "hold response", mustHold(t, h.u, h.id), holding)

	// sipp hangs up once it has answered the refresh; until then the call
	// stays held.
	ended := func(e Event) bool { return e.Type == "call.ended" && e.CallID() == h.id }
	poll(80*time.Second, time.Second, func() bool {
		if h.ev.Has(ended) {
			return true
		}
		if c := h.u.Call(h.id); c.State != "ended" && !holding.matches(c) {
			t.Errorf("while held, before the refresh: call is %s, want %s", describeCall(c), holding)
			return true
		}
		return false
	})
	end := h.ev.WaitType(t, "call.ended", h.id, 5*time.Second)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote (sipp's BYE after the refresh)", end.Reason)
	}
	msgs := parseSippTrace(h.sipp.WaitOK().Messages)
	checkHoldEvents(t, h.ev, h.id, "a refresh is not a hold", "hold.success")

	invs := filter(msgs, requestsOf("INVITE", false))
	if len(invs) != 3 {
		t.Fatalf("sipp got %d INVITEs, want 3 (call, hold, refresh)", len(invs))
	}
	if !strings.Contains(invs[0].Header("Supported"), "timer") || !strings.HasPrefix(invs[0].Header("Session-Expires"), "90") {
		t.Errorf("INVITE: Supported %q, Session-Expires %q; want timer and 90 (sip.session_expires)",
			invs[0].Header("Supported"), invs[0].Header("Session-Expires"))
	}
	checkSDPDir(t, "hold", invs[1], "sendonly")
	checkSDPDir(t, "refresh while held", invs[2], "sendonly")
	if se := strings.ReplaceAll(invs[2].Header("Session-Expires"), " ", ""); se != "90;refresher=uac" {
		t.Errorf("refresh: Session-Expires %q, want 90;refresher=uac", se)
	}
	if ok, found := responseTo(msgs, invs[1], 200); found {
		if d := invs[2].At.Sub(ok.At); d < 40*time.Second || d > 50*time.Second {
			t.Errorf("refresh %v after the hold, want half the interval: 45 s", d)
		}
	}
	checkSDPVersions(t, "uad's SDP", sdpBodies(msgs, false))
}

// ---------------------------------------------------------------------------
// The scenarios themselves, against stand-ins for uad (no uad involved):
// every hold_*.xml runs to its end against its counterpart, and a wrong
// direction makes it fail.
func TestHoldSippScenarioPairs(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	runSippPairs(t, []sippPair{
		{name: "table", uas: "hold_mock_uas_table.xml", uac: "hold_uac_table.xml", uacArgs: []string{"-d", "100"}},
		{name: "no_ack", uas: "hold_mock_uas_no_ack.xml", uac: "hold_uac_no_ack.xml"},
		{name: "uac_glare", uas: "hold_mock_uas_glare.xml", uac: "hold_uac_glare.xml"},
		{name: "basic", uas: "hold_uas_basic.xml", uac: "hold_mock_uac_holder.xml", uacArgs: []string{"-key", "hold_dir", "sendonly", "-key", "hold_c", "127.0.0.1"}},
		{name: "basic_wrong_direction", uas: "hold_uas_basic.xml", uac: "hold_mock_uac_holder.xml", uacArgs: []string{"-key", "hold_dir", "sendrecv", "-key", "hold_c", "127.0.0.1"}, uasFails: true},
		{name: "dialect_inactive", uas: "hold_uas_dialect_inactive.xml", uac: "hold_mock_uac_holder.xml", uacArgs: []string{"-key", "hold_dir", "inactive", "-key", "hold_c", "127.0.0.1"}},
		{name: "dialect_legacy", uas: "hold_uas_dialect_legacy.xml", uac: "hold_mock_uac_holder.xml", uacArgs: []string{"-key", "hold_dir", "x-legacy", "-key", "hold_c", "0.0.0.0"}},
		{name: "mutual", uas: "hold_uas_mutual.xml", uasArgs: []string{"-d", "100"}, uac: "hold_mock_uac_mutual.xml"},
		{name: "offerless", uas: "hold_uas_offerless.xml", uasArgs: []string{"-key", "rtp_port2", "7"}, uac: "hold_mock_uac_offerless.xml"},
		{name: "hold_refused", uas: "hold_uas_hold_refused.xml", uac: "hold_mock_uac_hold_refused.xml"},
		{name: "unhold_refused", uas: "hold_uas_unhold_refused.xml", uac: "hold_mock_uac_unhold_refused.xml"},
		{name: "unhold_481", uas: "hold_uas_unhold_481.xml", uac: "hold_mock_uac_unhold_481.xml"},
		{name: "uas_glare", uas: "hold_uas_glare.xml", uac: "hold_mock_uac_glare.xml"},
		{name: "session_timer", uas: "hold_uas_session_timer.xml", uac: "hold_mock_uac_session_timer.xml"},
	})
}
