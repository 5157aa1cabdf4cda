package tests

// Edge cases of call setup and teardown: manual answer and decline, CANCEL
// both ways, unsupported extensions and codecs, requests outside any dialog,
// a lost ACK, SIGTERM during a call, RTP port exhaustion, the generated media
// modes, and SIP over TCP. Every helper here is prefixed "edge" so that it
// cannot clash with the other files of the package.

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"uad/tests/internal/g711"
)

// ---------------------------------------------------------------------------
// Helpers.

// edgeSameToTag asserts RFC 3261 §8.2.6.2: every response to one request
// but 100 carries the same To tag (the UAS's tag of the early dialog).
func edgeSameToTag(t testing.TB, first, final sipMsg) {
	t.Helper()
	a, b := toTag(first), toTag(final)
	if a == "" || a != b {
		t.Errorf("RFC 3261 §8.2.6.2: %q has To tag %q but %q has To tag %q; every response to the INVITE must carry the same tag",
			first.Start, a, final.Start, b)
	}
}

// edgeUnansweredCall starts uad answering only through the API
// (calls.auto_answer false) and sipp's scenario calling it; it returns once
// the call came in, with its id.
func edgeUnansweredCall(t *testing.T, scenario string) (*UAD, *EventStream, *Sipp, string) {
	t.Helper()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{AutoAnswer: boolPtr(false)})
	ev := u.Events()
	s := startSipp(t, scenario, "-s", "uad", u.SIPAddr())
	return u, ev, s, ev.WaitType(t, "call.incoming", "", sigTimeout).CallID()
}

// edgeCheckUnanswered asserts what is left of an incoming call that rang
// and got the final response status (e.g. "603") instead of an answer:
// sipp received the 180 and that response, with one To tag; uad never
// connected the call and lists it as ended. what is "declined" or
// "cancelled".
func edgeCheckUnanswered(t testing.TB, u *UAD, ev *EventStream, id string, msgs []sipMsg, status, what string) {
	t.Helper()
	rings, finals := filter(msgs, receivedWith("SIP/2.0 180", "INVITE")), filter(msgs, receivedWith("SIP/2.0 "+status, "INVITE"))
	if len(rings) == 0 || len(finals) == 0 {
		t.Errorf("sipp received %d 180 and %d %s for the INVITE, want both", len(rings), len(finals), status)
	} else {
		edgeSameToTag(t, rings[0], finals[0])
	}
	if ev.HasType("call.connected", id) {
		t.Errorf("call.connected for a %s call", what)
	}
	if got := u.Call(id); got.State != "ended" {
		t.Errorf("GET call of the %s call: state %q, want ended", what, got.State)
	}
}

// edgeCallEvents returns the call.* events seen so far.
func edgeCallEvents(es *EventStream) []Event {
	return filter(es.All(), func(e Event) bool { return strings.HasPrefix(e.Type, "call.") })
}

// edgeEvenPortPair returns an even port P with P and P+1 free: uad's RTP
// port pool hands out even ports (RTCP on P+1), so "P-(P+1)" is one pair.
func edgeEvenPortPair(t testing.TB) int {
	t.Helper()
	p := rtpBlocks.take(t, 3, false)
	if p%2 != 0 {
		p++
	}
	return p
}

// edgeAPIError decodes {"error": "..."} or fails the test.
func edgeAPIError(t testing.TB, what string, body []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("%s: body %s is not the contract's {\"error\": \"...\"}", what, body)
	}
	return e.Error
}

// ---------------------------------------------------------------------------
// 1. Manual answer and decline (calls.auto_answer: false).

// An incoming call rings until the API answers it; the ACK connects it.
func TestEdgeManualAnswer(t *testing.T) {
	t.Parallel()
	u, ev, peer, s := sippCallsUAD(t, UADOptions{AutoAnswer: boolPtr(false)}, "uac_wait_bye.xml", "-s", "uad")

	inc := ev.WaitIncoming(t)
	id := inc.CallID()
	if inc.Call.State != "ringing" {
		t.Errorf("call.incoming: state %q, want ringing", inc.Call.State)
	}
	ev.WaitType(t, "call.ringing", id, sigTimeout)
	if c := u.Call(id); c.State != "ringing" {
		t.Errorf("GET call before the answer: state %q, want ringing (calls.auto_answer is false)", c.State)
	}
	if ev.HasType("call.connected", "") {
		t.Errorf("call.connected before the API answered (calls.auto_answer is false)")
	}

	answerAt := time.Now()
	st, body := u.API(http.MethodPost, "/v1/calls/"+id+"/answer", nil)
	if st != http.StatusOK {
		t.Fatalf("POST /v1/calls/%s/answer = %d %s, want 200", id, st, body)
	}
	if c := decodeCall(t, "answer", body); c.ID != id || c.State == "ended" {
		t.Errorf("answer returned call %s state %q, want call %s not ended", c.ID, c.State, id)
	}
	conn := ev.WaitType(t, "call.connected", id, sigTimeout)
	if conn.Call.State != "live" {
		t.Errorf("call.connected: state %q, want live", conn.Call.State)
	}
	if c := u.Call(id); c.State != "live" || c.Audio == nil || c.Audio.RemoteRTP != peer.Addr() {
		t.Errorf("GET call after the ACK: state %q audio %+v, want live toward %s", c.State, c.Audio, peer.Addr())
	}

	u.Hangup(id)
	if e := ev.WaitType(t, "call.ended", id, sigTimeout); e.Reason != "local" {
		t.Errorf("call.ended reason %q, want local", e.Reason)
	}
	r := s.WaitOK() // sipp got 180, 200, sent the ACK, and answered the BYE
	msgs := parseSippTrace(r.Messages)
	if n := len(filter(msgs, receivedWith("SIP/2.0 180", "INVITE"))); n == 0 {
		t.Errorf("sipp received no 180 Ringing for the unanswered call")
	}
	// The 200 went out because of the API's answer, not before it.
	if oks := filter(msgs, receivedWith("SIP/2.0 200", "INVITE")); len(oks) == 0 {
		t.Errorf("sipp received no 200 for the INVITE")
	} else if oks[0].At.IsZero() || oks[0].At.Before(answerAt) {
		t.Errorf("sipp received the 200 at %s, before POST .../answer was sent at %s (calls.auto_answer is false)",
			oks[0].At.Format("15:04:05.000000"), answerAt.Format("15:04:05.000000"))
	}
	ev.CheckWellFormed(t)
}

// An unanswered incoming call hung up by the API is declined with 603.
func TestEdgeManualDecline(t *testing.T) {
	t.Parallel()
	u, ev, s, id := edgeUnansweredCall(t, "edge_uac_declined.xml")
	ev.WaitType(t, "call.ringing", id, sigTimeout)
	c := u.Hangup(id) // DELETE: 200 with state ended
	if c.ID != id {
		t.Errorf("DELETE returned call %s, want %s", c.ID, id)
	}
	end := ev.WaitType(t, "call.ended", id, sigTimeout)
	if end.Reason != "local" {
		t.Errorf("call.ended reason %q, want local (declined through the API)", end.Reason)
	}
	r := s.WaitOK() // the scenario requires the 603 and ACKs it
	edgeCheckUnanswered(t, u, ev, id, parseSippTrace(r.Messages), "603", "declined")
}

// ---------------------------------------------------------------------------
// 2. and 3. CANCEL.

// The caller cancels a ringing incoming call: 200 for the CANCEL, 487 for
// the INVITE, and the call ends with reason remote.
func TestEdgeCancelFromCaller(t *testing.T) {
	t.Parallel()
	u, ev, s, id := edgeUnansweredCall(t, "edge_uac_cancel.xml")
	end := ev.WaitType(t, "call.ended", id, sigTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote (the caller cancelled)", end.Reason)
	}
	r := s.WaitOK() // 180, CANCEL, 200 (CANCEL), 487, ACK as scripted
	msgs := parseSippTrace(r.Messages)
	if n := len(filter(msgs, receivedWith("SIP/2.0 200", "INVITE"))); n > 0 {
		t.Errorf("sipp received %d 200 OK for the cancelled INVITE", n)
	}
	edgeCheckUnanswered(t, u, ev, id, msgs, "487", "cancelled")
}

// uad hangs up its own ringing call: CANCEL, the callee's 200 and 487, the
// ACK for the 487; the call ends with reason local.
func TestEdgeCancelOutgoing(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	uas := startSipp(t, "edge_uas_cancelled.xml", "-timeout", "10s")

	c := u.PlaceCall(uas.URI("ring"), nil)
	ev.WaitType(t, "call.ringing", c.ID, sigTimeout) // a provisional came: CANCEL is allowed
	if got := u.Call(c.ID); got.State != "ringing" {
		t.Errorf("GET call after the 180: state %q, want ringing", got.State)
	}
	u.Hangup(c.ID)
	end := ev.WaitType(t, "call.ended", c.ID, sigTimeout)
	if end.Reason != "local" {
		t.Errorf("call.ended reason %q, want local", end.Reason)
	}
	r := uas.WaitOK() // CANCEL received, 200 and 487 sent, ACK received
	msgs := parseSippTrace(r.Messages)
	inv := filter(msgs, receivedWith("INVITE ", ""))
	cancels := filter(msgs, receivedWith("CANCEL ", ""))
	if len(inv) == 0 || len(cancels) == 0 {
		t.Fatalf("sipp saw %d INVITEs and %d CANCELs, want both", len(inv), len(cancels))
	}
	// RFC 3261 §9.1: the CANCEL repeats the INVITE's Request-URI, Call-ID,
	// From, To, CSeq number and top Via.
	ci, cc := inv[0], cancels[0]
	if strings.Fields(ci.Start)[1] != strings.Fields(cc.Start)[1] {
		t.Errorf("CANCEL Request-URI %q differs from the INVITE's %q", cc.Start, ci.Start)
	}
	for _, h := range []string{"Call-ID", "From", "To", "Via"} {
		if ci.Header(h) != cc.Header(h) {
			t.Errorf("CANCEL %s %q differs from the INVITE's %q", h, cc.Header(h), ci.Header(h))
		}
	}
	if fi, fc := strings.Fields(ci.Header("CSeq")), strings.Fields(cc.Header("CSeq")); len(fi) != 2 || len(fc) != 2 || fi[0] != fc[0] || fc[1] != "CANCEL" {
		t.Errorf("CANCEL CSeq %q, want the INVITE's number (%q) with method CANCEL", cc.Header("CSeq"), ci.Header("CSeq"))
	}
	if ev.HasType("call.connected", c.ID) {
		t.Errorf("call.connected for a cancelled call")
	}
}

// ---------------------------------------------------------------------------
// 4. Require: 100rel.

// An INVITE requiring an extension uad lacks gets 420 naming it.
func TestEdgeRequire100rel(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	r := startSipp(t, "edge_uac_100rel.xml", "-s", "uad", u.SIPAddr()).WaitOK()
	got := filter(parseSippTrace(r.Messages), receivedWith("SIP/2.0 420", "INVITE"))
	if len(got) == 0 {
		t.Fatalf("sipp received no 420 Bad Extension")
	}
	if uns := got[0].Header("Unsupported"); !regexp.MustCompile(`(^|[ ,])100rel([ ,]|$)`).MatchString(uns) {
		t.Errorf("420 Unsupported: %q, want 100rel", uns)
	}
	if evs := edgeCallEvents(ev); len(evs) > 0 {
		t.Errorf("a refused INVITE produced call events: %v", evs)
	}
}

// ---------------------------------------------------------------------------
// 5. Requests outside any dialog.

func TestEdgeOutOfDialog(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()

	t.Run("OPTIONS", func(t *testing.T) {
		r := startSipp(t, "edge_uac_options.xml", "-s", "uad", u.SIPAddr()).WaitOK()
		got := filter(parseSippTrace(r.Messages), receivedWith("SIP/2.0 200", "OPTIONS"))
		if len(got) == 0 {
			t.Fatalf("sipp received no 200 for OPTIONS")
		}
		allow := got[0].Header("Allow")
		if allow == "" {
			t.Fatalf("200 to OPTIONS has no Allow header:\n%s\n%s", got[0].Start, got[0].Head)
		}
		methods := map[string]bool{}
		for _, m := range strings.Split(allow, ",") {
			methods[strings.ToUpper(strings.TrimSpace(m))] = true
		}
		for _, m := range []string{"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} {
			if !methods[m] {
				t.Errorf("Allow: %q lacks %s", allow, m)
			}
		}
	})
	t.Run("BYE unknown dialog", func(t *testing.T) {
		r := startSipp(t, "edge_uac_bye_unknown.xml", "-s", "uad", u.SIPAddr()).WaitOK()
		if len(filter(parseSippTrace(r.Messages), receivedWith("SIP/2.0 481", "BYE"))) == 0 {
			t.Errorf("sipp received no 481 for the BYE")
		}
	})
	t.Run("re-INVITE unknown To tag", func(t *testing.T) {
		r := startSipp(t, "edge_uac_reinvite_unknown.xml", "-s", "uad", u.SIPAddr()).WaitOK()
		if len(filter(parseSippTrace(r.Messages), receivedWith("SIP/2.0 481", "INVITE"))) == 0 {
			t.Errorf("sipp received no 481 for the re-INVITE")
		}
	})
	if evs := edgeCallEvents(ev); len(evs) > 0 {
		t.Errorf("requests outside any dialog produced call events: %v", evs)
	}
	if calls := u.Calls(); len(calls) > 0 {
		t.Errorf("GET /v1/calls lists %d calls, want none: %+v", len(calls), calls)
	}
}

// ---------------------------------------------------------------------------
// 6. Offers uad cannot or can partly take.

// An offer whose only audio codec is G.722 gets 488.
func TestEdgeOfferG722Only(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	r := startSipp(t, "edge_uac_g722.xml", "-s", "uad", u.SIPAddr()).WaitOK()
	if len(filter(parseSippTrace(r.Messages), receivedWith("SIP/2.0 488", "INVITE"))) == 0 {
		t.Errorf("sipp received no 488 for a G.722-only offer")
	}
	if ev.HasType("call.connected", "") {
		t.Errorf("call.connected for a G.722-only offer")
	}
}

// An offer of audio and T.38 image is answered with the audio accepted and
// the image declined (port 0), the m-lines kept in the offer's order.
func TestEdgeOfferAudioAndT38(t *testing.T) {
	t.Parallel()
	u, ev, peer, s := sippCallsUAD(t, UADOptions{}, "edge_uac_t38.xml", "-s", "uad", "-d", "500")

	id := ev.WaitAnswered(t).CallID()
	if c := u.Call(id); c.Audio == nil || c.Audio.Codec != "PCMU" || c.Audio.RemoteRTP != peer.Addr() {
		t.Errorf("GET call: audio %+v, want PCMU toward %s", c.Audio, peer.Addr())
	}
	if e := ev.WaitType(t, "call.ended", id, endTimeout); e.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", e.Reason)
	}
	r := s.WaitOK()
	oks := filter(parseSippTrace(r.Messages), receivedWith("SIP/2.0 200", "INVITE"))
	if len(oks) == 0 {
		t.Fatalf("sipp received no 200 for the INVITE")
	}
	var mlines []string
	for _, l := range strings.Split(oks[0].Body, "\n") {
		if strings.HasPrefix(l, "m=") {
			mlines = append(mlines, strings.TrimSpace(l))
		}
	}
	if len(mlines) != 2 || !strings.HasPrefix(mlines[0], "m=audio ") || strings.HasPrefix(mlines[0], "m=audio 0 ") ||
		!strings.HasPrefix(mlines[1], "m=image 0 ") {
		t.Errorf("answer m-lines %q, want 2: the audio accepted, then \"m=image 0 ...\"", mlines)
	}
}

// ---------------------------------------------------------------------------
// 7. The ACK of the initial 2xx is lost.

// uad retransmits its 200 until 64·T1 and then sends BYE (RFC 3261
// §13.3.1.4); the call ends with reason timeout.
func TestEdgeLostAck(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	const t1 = 100 * time.Millisecond
	_, ev, _, s := sippCallsUAD(t, UADOptions{Config: map[string]any{"sip.t1": "100ms"}}, "edge_uac_no_ack.xml", "-s", "uad")

	inc := ev.WaitType(t, "call.incoming", "", sigTimeout)
	id := inc.CallID()
	end := ev.WaitType(t, "call.ended", id, 64*t1+sigTimeout)
	if end.Reason != "timeout" {
		t.Errorf("call.ended reason %q, want timeout (no ACK for the 2xx)", end.Reason)
	}
	// The BYE comes 64·T1 = 6.4 s after the 200, not before.
	if d := eventTime(t, end).Sub(eventTime(t, inc)); d < 64*t1-500*time.Millisecond || d > 64*t1+3*time.Second {
		t.Errorf("call.ended %v after call.incoming, want about 64*T1 = %v", d, 64*t1)
	}
	if ev.HasType("call.connected", id) {
		t.Errorf("call.connected without an ACK")
	}
	r := s.WaitOK() // sipp got the 200(s) and the BYE, and answered the BYE
	msgs := parseSippTrace(r.Messages)
	oks := filter(msgs, receivedWith("SIP/2.0 200", "INVITE"))
	// With T1 = 100 ms the 200 goes at 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s.
	if len(oks) < 4 {
		t.Errorf("sipp received the 200 %d times, want it retransmitted (about 7 times with T1 = 100 ms)", len(oks))
	}
	if len(filter(msgs, receivedWith("BYE ", ""))) == 0 {
		t.Errorf("sipp received no BYE")
	}
	var gaps []time.Duration
	for i := 1; i < len(oks); i++ {
		gaps = append(gaps, oks[i].At.Sub(oks[i-1].At).Round(time.Millisecond))
	}
	t.Logf("sipp received the 200 %d times, %v apart", len(oks), gaps)
	// The first retransmission comes T1 after the 200 (RFC 3261 §13.3.1.4),
	// so with T1 = 100 ms well before the 500 ms of the default T1.
	if len(gaps) > 0 && gaps[0] > 350*time.Millisecond {
		t.Errorf("the first retransmission of the 200 came %v after it, want T1 = %v (sip.t1)", gaps[0], t1)
	}
}

// ---------------------------------------------------------------------------
// 8. SIGTERM with a live call.

// On SIGTERM uad hangs up its calls with BYE and exits 0.
func TestEdgeSIGTERMWithLiveCall(t *testing.T) {
	t.Parallel()
	u, ev, _, s := sippCallsUAD(t, UADOptions{}, "uac_wait_bye.xml", "-s", "uad", "-timeout", "10s")

	id := ev.WaitAnswered(t).CallID()

	start := time.Now()
	if err := u.Stop(t, 5*time.Second); err != nil {
		t.Errorf("uad after SIGTERM: %v, want exit status 0", err)
	}
	t.Logf("uad exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	r := s.WaitOK() // the BYE came and sipp answered it
	if len(filter(parseSippTrace(r.Messages), receivedWith("BYE ", ""))) == 0 {
		t.Errorf("sipp received no BYE")
	}
	if e := ev.WaitType(t, "call.ended", id, 2*time.Second); e.Reason != "shutdown" {
		t.Errorf("call.ended reason %q, want shutdown", e.Reason)
	}
}

// ---------------------------------------------------------------------------
// 9. RTP port pool exhausted.

func TestEdgeRTPPortsExhausted(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	p := edgeEvenPortPair(t)
	u := startUAD(t, UADOptions{Config: map[string]any{"media.rtp_ports": itoa(p) + "-" + itoa(p+1)}})
	ev := u.Events()

	// The first call takes the only pair.
	peer1 := newRTPPeer(t, 0)
	uas1 := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer1.Port()))
	c1 := u.PlaceCall(uas1.URI("first"), nil)
	ev.WaitType(t, "call.connected", c1.ID, sigTimeout)
	if c1.Audio == nil || !strings.HasSuffix(c1.Audio.LocalRTP, ":"+itoa(p)) {
		t.Errorf("first call local_rtp %+v, want port %d (the only pair)", c1.Audio, p)
	}

	// A second outgoing call: 503 naming the RTP ports.
	uas2 := startSipp(t, "uas_answer.xml") // never called while the ports are out
	st, body := u.API(http.MethodPost, "/v1/calls", map[string]any{"to": uas2.URI("second")})
	if st != http.StatusServiceUnavailable {
		t.Errorf("POST /v1/calls with no RTP port free = %d %s, want 503", st, body)
	} else if msg := edgeAPIError(t, "POST /v1/calls", body); !strings.Contains(strings.ToLower(msg), "rtp port") {
		t.Errorf("503 error %q, want it to mention the RTP ports", msg)
	}

	// An incoming call meanwhile: 503.
	in := startSipp(t, "edge_uac_503.xml", "-s", "uad", u.SIPAddr()).WaitOK()
	if len(filter(parseSippTrace(in.Messages), receivedWith("SIP/2.0 503", "INVITE"))) == 0 {
		t.Errorf("sipp received no 503 for an INVITE while no RTP port is free")
	}
	if ev.HasType("call.incoming", "") {
		t.Errorf("call.incoming for an INVITE refused for lack of RTP ports")
	}

	// The first call ends: its ports come back and a new call works.
	hangUp(t, u, ev, c1.ID, uas1)
	peer3 := newRTPPeer(t, 0)
	uas3 := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer3.Port()))
	c3 := u.PlaceCall(uas3.URI("third"), map[string]any{"media": "silence"})
	ev.WaitType(t, "call.connected", c3.ID, sigTimeout)
	if c3.Audio == nil || !strings.HasSuffix(c3.Audio.LocalRTP, ":"+itoa(p)) {
		t.Errorf("call after the ports came back: local_rtp %+v, want port %d", c3.Audio, p)
	}
	if n := peer3.WaitCount(10, 3*time.Second); n < 10 {
		t.Errorf("call after the ports came back: %d RTP packets reached the peer, want >= 10", n)
	}
	hangUp(t, u, ev, c3.ID, uas3)
}

// ---------------------------------------------------------------------------
// 10. Generated media: tone and silence.

// edgeGeneratedMedia has uad (media.tone "1000") call a sipp UAS with
// calls.media media, waits until n RTP packets reached the socket sipp
// announced, checks them as uad's PCMU stream, hangs up and returns them.
func edgeGeneratedMedia(t *testing.T, media string, n int) []RTPPacket {
	t.Helper()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Config: map[string]any{"media.tone": "1000"}})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	uas := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer.Port()))
	c := u.PlaceCall(uas.URI("media"), map[string]any{"media": media})
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	if got := peer.WaitCount(n, 5*time.Second); got < n {
		t.Fatalf("media %s: %d RTP packets arrived, want >= %d: %s", media, got, n, peer.Stats())
	}
	pkts := peer.Received()
	checkUADStream(t, media, pkts, 0, 0)
	hangUp(t, u, ev, c.ID, uas)
	return pkts
}

func TestEdgeMediaTone(t *testing.T) {
	t.Parallel()
	pkts := edgeGeneratedMedia(t, "tone", 50)
	sort.Slice(pkts, func(i, j int) bool { return int16(pkts[i].Seq-pkts[j].Seq) < 0 })
	var frames [][]byte
	for _, p := range pkts {
		if len(p.Payload) != 160 {
			t.Errorf("tone packet seq %d: %d bytes, want 160 (20 ms of PCMU)", p.Seq, len(p.Payload))
			continue
		}
		frames = append(frames, p.Payload)
	}
	at1000, at440 := g711.ToneShare(g711.PCMU, frames, 1000), g711.ToneShare(g711.PCMU, frames, 440)
	t.Logf("energy share at 1000 Hz %.3f, at 440 Hz %.3f", at1000, at440)
	if at1000 < 0.8 {
		t.Errorf("energy share at 1000 Hz is %.3f, want >= 0.8 (media.tone \"1000\")", at1000)
	}
	if at440 > 0.05 {
		t.Errorf("energy share at 440 Hz is %.3f, want ~0 (the default tone must not play)", at440)
	}
}

func TestEdgeMediaSilence(t *testing.T) {
	t.Parallel()
	pkts := edgeGeneratedMedia(t, "silence", 25)
	bad := 0
	for _, p := range pkts {
		if !pcmuSilence(p.Payload) {
			if bad == 0 {
				t.Errorf("silence packet seq %d: %d bytes, not 160 bytes of 0xff: % x", p.Seq, len(p.Payload), p.Payload)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d silence packets are not PCMU silence", bad, len(pkts))
	}
}

// ---------------------------------------------------------------------------
// 11. SIP over TCP.

// sipp calls uad over TCP, exchanges RTP, hangs up.
func TestEdgeCallOverTCP(t *testing.T) {
	t.Parallel()
	u, ev, peer, s := sippCallsUAD(t, UADOptions{}, "uac_echo.xml", "-t", "t1", "-s", "uad", "-d", "2000")

	id := ev.WaitAnswered(t).CallID()
	c := u.Call(id)
	peer.Send(u.AudioLocal(c), 25)
	checkEcho(t, "echo over a TCP-signalled call", peer, 25, 0)
	end := ev.WaitType(t, "call.ended", id, endTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", end.Reason)
	}
	r := s.WaitOK()
	msgs := parseSippTrace(r.Messages)
	if len(msgs) == 0 || strings.Contains(r.Messages, "UDP message") {
		t.Errorf("sipp's trace has %d messages, want all over TCP", len(msgs))
	}
}
