package tests

// Basic calls: sipp and baresip against uad, and uad against uad.

import (
	"net/http"
	"testing"
	"time"
)

const (
	sigTimeout = 10 * time.Second // one SIP exchange on loopback, with slack
	endTimeout = 20 * time.Second // a scripted call running to its end
)

// matchedPayloads counts the packets whose payload is one that from sent.
func matchedPayloads(pkts []RTPPacket, from *RTPPeer) int {
	n := 0
	for _, p := range pkts {
		if from.SentPayload(p.Payload) {
			n++
		}
	}
	return n
}

// checkEcho asserts that at least 80% of the sent packets came back as uad's
// own stream of the negotiated payload type, carrying what was sent.
func checkEcho(t testing.TB, what string, peer *RTPPeer, sent int, wantPT int) {
	t.Helper()
	got := peer.WaitCount(sent, 3*time.Second)
	if got < sent*8/10 {
		t.Errorf("%s: %d of %d RTP packets came back, want >= 80%%: %s", what, got, sent, peer.Stats())
	}
	pkts := peer.Received()
	checkUADStream(t, what, pkts, wantPT, peer.SSRC)
	if m := matchedPayloads(pkts, peer); len(pkts) > 0 && m < len(pkts)*8/10 {
		t.Errorf("%s: only %d of %d returned packets carry a payload that was sent", what, m, len(pkts))
	}
}

// checkRelayed sends 50 packets from from into a uad's relay_local and
// asserts that at least 40 reach to (named at) as uad's stream, and that
// they carry what from sent.
func checkRelayed(t testing.TB, what string, from *RTPPeer, relayLocal string, to *RTPPeer, at string) {
	t.Helper()
	from.Send(mustUDPAddr(t, relayLocal), 50)
	if n := to.WaitCount(50, 3*time.Second); n < 40 {
		t.Errorf("%s: %d of 50 packets reached %s, want >= 40: %s", what, n, at, to.Stats())
	}
	checkUADStream(t, what+" at "+at, to.Received(), -1, from.SSRC)
	if pk := to.Received(); matchedPayloads(pk, from) < len(pk)*8/10 {
		t.Errorf("%s: %d of %d packets carry what was sent", what, matchedPayloads(pk, from), len(pk))
	}
}

// checkBaresipHears asserts that baresip's call receives at least 25 RTP
// packets (what: of what) within 5 s.
func checkBaresipHears(t testing.TB, b *Baresip, what string) {
	t.Helper()
	var got int
	if !poll(5*time.Second, 100*time.Millisecond, func() bool { got = b.RTPReceived(); return got >= 25 }) {
		t.Errorf("baresip received %d RTP packets of %s, want >= 25\n%s", got, what, b.AudioDebug())
	}
}

// checkOrder asserts that the events have increasing seq, in the given order.
func checkOrder(t *testing.T, evs ...Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Errorf("event %s came before %s, want the reverse", evs[i], evs[i-1])
		}
	}
}

// sipp calls uad (auto-answer, echo); the test's RTP comes back echoed; sipp
// hangs up.
func TestSippCallsUAD_EchoAndBYEFromSipp(t *testing.T) {
	u, ev, peer, s := sippCallsUAD(t, UADOptions{}, "uac_echo.xml", "-s", "echo", "-d", "5000")

	inc := ev.WaitIncoming(t)
	id := inc.CallID()
	if inc.Call.Direction != "inbound" {
		t.Errorf("call.incoming: direction %q, want inbound", inc.Call.Direction)
	}
	if inc.Call.SIPCallID == "" {
		t.Errorf("call.incoming: no sip_call_id: %s", inc.Raw)
	}
	conn := ev.WaitType(t, "call.connected", id, sigTimeout)
	if conn.Call.State != "live" {
		t.Errorf("call.connected: state %q, want live", conn.Call.State)
	}

	c := u.Call(id)
	if c.State != "live" {
		t.Errorf("GET call: state %q, want live", c.State)
	}
	if c.Audio == nil {
		t.Fatalf("GET call: no audio: %+v", c)
	}
	if c.Audio.Codec != "PCMU" {
		t.Errorf("audio.codec %q, want PCMU (first in the offer and in uad's default codecs)", c.Audio.Codec)
	}
	if c.Audio.Direction != "sendrecv" {
		t.Errorf("audio.direction %q, want sendrecv", c.Audio.Direction)
	}
	if c.Audio.RemoteRTP != peer.Addr() {
		t.Errorf("audio.remote_rtp %q, want the offer's %s", c.Audio.RemoteRTP, peer.Addr())
	}

	peer.Send(u.AudioLocal(c), 50)
	checkEcho(t, "echo", peer, 50, 0)

	end := ev.WaitType(t, "call.ended", id, endTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote (sipp sent the BYE)", end.Reason)
	}
	if end.Call.State != "ended" {
		t.Errorf("call.ended: state %q, want ended", end.Call.State)
	}
	s.WaitOK()
	checkOrder(t, inc, conn, end)
	if got := u.Call(id); got.State != "ended" {
		t.Errorf("GET call after the BYE: state %q, want ended", got.State)
	}
	ev.CheckWellFormed(t)
}

// sipp calls uad; the API hangs up; sipp answers the BYE.
func TestSippCallsUAD_ByeFromAPI(t *testing.T) {
	u, ev, _, s := sippCallsUAD(t, UADOptions{}, "uac_wait_bye.xml", "-s", "uad")

	id := ev.WaitAnswered(t).CallID()
	u.Hangup(id)
	end := ev.WaitType(t, "call.ended", id, sigTimeout)
	if end.Reason != "local" {
		t.Errorf("call.ended reason %q, want local", end.Reason)
	}
	s.WaitOK() // it got a BYE and answered it

	found := false
	for _, c := range u.Calls() {
		if c.ID == id {
			found = true
			if c.State != "ended" {
				t.Errorf("GET /v1/calls: call %s state %q, want ended", id, c.State)
			}
		}
	}
	if !found {
		t.Errorf("GET /v1/calls lacks call %s, which ended less than 60 s ago", id)
	}
}

// uad calls a sipp UAS (180, 200); media silence reaches sipp's announced
// port; the API hangs up.
func TestUADCallsSippUAS(t *testing.T) {
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	uas := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer.Port()))

	c := u.PlaceCall(uas.URI("sipp"), map[string]any{"media": "silence"})
	if c.State != "calling" && c.State != "ringing" {
		t.Errorf("201 call state %q, want calling (or ringing)", c.State)
	}
	conn := ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	// sipp sends its 180 and 200 back to back; UDP (and sipgo, which takes
	// each message on its own goroutine) may deliver the 200 first, and a
	// 180 after the 2xx is stale. So ringing is checked only when it came.
	for _, e := range ev.All() {
		if e.Type == "call.ringing" && e.Call != nil && e.Call.ID == c.ID {
			checkOrder(t, e, conn)
		}
	}

	live := u.Call(c.ID)
	if live.State != "live" {
		t.Errorf("GET call: state %q, want live", live.State)
	}
	if live.Audio == nil || live.Audio.RemoteRTP != peer.Addr() || live.Audio.Codec != "PCMU" {
		t.Errorf("GET call: audio %+v, want PCMU to %s", live.Audio, peer.Addr())
	}

	// silence: G.711 silence frames every 20 ms, PCMU 0xff.
	if n := peer.WaitCount(25, 3*time.Second); n < 25 {
		t.Errorf("uad sent %d RTP packets in silence mode, want >= 25: %s", n, peer.Stats())
	}
	pkts := peer.Received()
	checkUADStream(t, "silence", pkts, 0, 0)
	for _, p := range pkts {
		if !pcmuSilence(p.Payload) {
			t.Errorf("silence packet seq %d: %d bytes, not 160 bytes of 0xff: % x", p.Seq, len(p.Payload), p.Payload)
			break
		}
	}

	u.Hangup(c.ID)
	end := ev.WaitType(t, "call.ended", c.ID, sigTimeout)
	if end.Reason != "local" {
		t.Errorf("call.ended reason %q, want local", end.Reason)
	}
	uas.WaitOK()
}

// uad calls a sipp UAS that answers 486.
func TestUADCallsSippRejected(t *testing.T) {
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	uas := startSipp(t, "uas_reject.xml")

	c := u.PlaceCall(uas.URI("busy"), nil)
	end := ev.WaitType(t, "call.ended", c.ID, sigTimeout)
	if end.Reason != "rejected" {
		t.Errorf("call.ended reason %q, want rejected", end.Reason)
	}
	if end.SIPStatus != 486 {
		t.Errorf("call.ended sip_status %d, want 486", end.SIPStatus)
	}
	uas.WaitOK() // it got the ACK for its 486
	if ev.HasType("call.connected", c.ID) {
		t.Errorf("call.connected for a rejected call")
	}
	if got := u.Call(c.ID); got.State != "ended" {
		t.Errorf("GET call: state %q, want ended", got.State)
	}
}

// sipp calls uad with an INVITE without SDP: uad offers in the 200, sipp
// answers in the ACK; the answer's address takes the echo.
func TestDelayedOffer(t *testing.T) {
	u, ev, peer, s := sippCallsUAD(t, UADOptions{}, "uac_delayed_offer.xml", "-s", "uad", "-d", "4000")

	id := ev.WaitAnswered(t).CallID()
	c := u.Call(id)
	if c.Audio == nil || c.Audio.RemoteRTP != peer.Addr() {
		t.Fatalf("audio %+v: remote_rtp should be %s, from the answer in the ACK", c.Audio, peer.Addr())
	}
	if c.Audio.Codec != "PCMU" {
		t.Errorf("audio.codec %q, want PCMU (the answer's only codec)", c.Audio.Codec)
	}
	peer.Send(u.AudioLocal(c), 25)
	checkEcho(t, "delayed-offer echo", peer, 25, 0)

	end := ev.WaitType(t, "call.ended", id, endTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", end.Reason)
	}
	s.WaitOK()
}

// Two uad instances: A calls B, each relaying to an RTP endpoint of the test.
func TestUADCallsUAD_Relay(t *testing.T) {
	endA := newRTPPeer(t, 0) // A's local endpoint, given per call
	endB := newRTPPeer(t, 0) // B's local endpoint, calls.relay
	b := startUAD(t, UADOptions{Name: "B", Media: "relay", Relay: endB.Addr()})
	a := startUAD(t, UADOptions{Name: "A"})
	evA, evB := a.Events(), b.Events()

	ca := a.PlaceCall(b.SIPURI("uad"), map[string]any{"media": map[string]any{"relay": endA.Addr()}})
	if ca.Audio == nil || ca.Audio.RelayLocal == "" {
		t.Fatalf("A: the 201 lacks audio.relay_local: %+v", ca.Audio)
	}
	idB := waitBothConnected(t, evA, ca.ID, evB)

	ca = a.Call(ca.ID)
	cb := b.Call(idB)
	if ca.Audio == nil || ca.Audio.RelayRemote != endA.Addr() || ca.Audio.RelayLocal == "" {
		t.Fatalf("A: audio %+v, want relay_remote %s and a relay_local", ca.Audio, endA.Addr())
	}
	if cb.Audio == nil || cb.Audio.RelayRemote != endB.Addr() || cb.Audio.RelayLocal == "" {
		t.Fatalf("B: audio %+v, want relay_remote %s (calls.relay) and a relay_local", cb.Audio, endB.Addr())
	}

	// A's endpoint -> A -> B -> B's endpoint, and back.
	checkRelayed(t, "A->B", endA, ca.Audio.RelayLocal, endB, "B's endpoint")
	checkRelayed(t, "B->A", endB, cb.Audio.RelayLocal, endA, "A's endpoint")

	b.Hangup(idB)
	if e := evB.WaitType(t, "call.ended", idB, sigTimeout); e.Reason != "local" {
		t.Errorf("B: call.ended reason %q, want local", e.Reason)
	}
	if e := evA.WaitType(t, "call.ended", ca.ID, sigTimeout); e.Reason != "remote" {
		t.Errorf("A: call.ended reason %q, want remote", e.Reason)
	}
}

// baresip calls uad (auto-answer, echo): baresip's tone comes back to it;
// baresip hangs up.
func TestBaresipCallsUAD(t *testing.T) {
	u, ev, b := uadAndBaresip(t, BaresipOptions{})

	id := b.dialUAD(t, u, ev)

	c := u.Call(id)
	if c.Audio == nil || c.Audio.RemoteRTP == "" || payloadPT(c.Audio.Codec) < 0 || c.Audio.Direction != "sendrecv" {
		t.Errorf("GET call: audio %+v, want sendrecv G.711 with a remote_rtp", c.Audio)
	}
	// The echo: what baresip sends comes back to it.
	checkBaresipHears(t, b, "uad's echo")

	b.hangUp(t)
	end := ev.WaitType(t, "call.ended", id, sigTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", end.Reason)
	}
}

// uad calls baresip (answermode auto) with media tone; uad hangs up.
func TestUADCallsBaresip(t *testing.T) {
	u, ev, b := uadAndBaresip(t, BaresipOptions{})

	c := u.PlaceCall(b.URI(), map[string]any{"media": "tone"})
	b.WaitEventType(t, "CALL_ESTABLISHED", sigTimeout)
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	if got := u.Call(c.ID); got.State != "live" {
		t.Errorf("GET call: state %q, want live", got.State)
	}
	checkBaresipHears(t, b, "uad's tone")

	u.Hangup(c.ID)
	end := ev.WaitType(t, "call.ended", c.ID, sigTimeout)
	if end.Reason != "local" {
		t.Errorf("call.ended reason %q, want local", end.Reason)
	}
	closed := b.WaitEventType(t, "CALL_CLOSED", sigTimeout)
	if closed.Direction != "incoming" {
		t.Errorf("baresip closed a %s call, want the incoming one", closed.Direction)
	}
	if st, body := u.API(http.MethodGet, "/v1/calls/"+c.ID, nil); st != http.StatusOK {
		t.Errorf("GET call after hangup = %d %s, want 200 (ended calls stay 60 s)", st, body)
	}
}
