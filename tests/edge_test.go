package tests

// Edge cases of call setup and teardown: manual answer and decline, CANCEL
// both ways, unsupported extensions and codecs, requests outside any dialog,
// a lost ACK, SIGTERM during a call, RTP port exhaustion, the generated media
// modes, and SIP over TCP. Every helper here is prefixed "edge" so that it
// cannot clash with the other files of the package.

import (
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Helpers.

// edgeSIPMsg is one SIP message of a sipp -trace_msg log.
type edgeSIPMsg struct {
	Received bool      // received by sipp (else sent)
	At       time.Time // when sipp logged it (local clock)
	Text     string    // the message, CRLF normalised to LF
}

// StartLine is the request or status line.
func (m edgeSIPMsg) StartLine() string {
	line, _, _ := strings.Cut(m.Text, "\n")
	return strings.TrimSpace(line)
}

// Header returns the first value of a header (case-insensitive name).
func (m edgeSIPMsg) Header(name string) string {
	head, _, _ := strings.Cut(m.Text, "\n\n")
	for _, l := range strings.Split(head, "\n")[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Body is what follows the blank line.
func (m edgeSIPMsg) Body() string {
	_, body, _ := strings.Cut(m.Text, "\n\n")
	return body
}

// edgeTraceHead matches what sipp writes before each traced message: a
// dashed line with the local time, then e.g. "UDP message received [512]
// bytes :" or "TCP message sent (512 bytes):".
var edgeTraceHead = regexp.MustCompile(`(?m)^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(?:UDP|TCP|TLS|SCTP) message (received|sent)[^\n]*:\n`)

// edgeSippMessages parses sipp's -trace_msg log into messages, in order.
func edgeSippMessages(log string) []edgeSIPMsg {
	log = strings.ReplaceAll(log, "\r\n", "\n")
	var out []edgeSIPMsg
	locs := edgeTraceHead.FindAllStringSubmatchIndex(log, -1)
	for i, loc := range locs {
		end := len(log)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		text := log[loc[1]:end]
		// sipp separates entries with a dashed line carrying a timestamp.
		if j := strings.LastIndex(text, "\n----------------"); j >= 0 {
			text = text[:j+1]
		}
		text = strings.TrimLeft(text, "\n")
		at, _ := time.ParseInLocation("2006-01-02 15:04:05.999999", log[loc[2]:loc[3]], time.Local)
		out = append(out, edgeSIPMsg{Received: log[loc[4]:loc[5]] == "received", At: at, Text: text})
	}
	return out
}

// edgePick returns the messages received (or sent) by sipp whose start line
// begins with prefix and whose CSeq method is method ("" = any).
func edgePick(msgs []edgeSIPMsg, received bool, prefix, method string) []edgeSIPMsg {
	var out []edgeSIPMsg
	for _, m := range msgs {
		if m.Received != received || !strings.HasPrefix(m.StartLine(), prefix) {
			continue
		}
		if method != "" {
			f := strings.Fields(m.Header("CSeq"))
			if len(f) != 2 || !strings.EqualFold(f[1], method) {
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// edgeToTag is the tag parameter of a message's To header ("" when none).
func edgeToTag(m edgeSIPMsg) string {
	_, params, _ := strings.Cut(m.Header("To"), ">")
	for _, p := range strings.Split(params, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "tag") {
			return v
		}
	}
	return ""
}

// edgeSameToTag asserts RFC 3261 §8.2.6.2: every response to one request
// but 100 carries the same To tag (the UAS's tag of the early dialog).
func edgeSameToTag(t testing.TB, first, final edgeSIPMsg) {
	t.Helper()
	a, b := edgeToTag(first), edgeToTag(final)
	if a == "" || a != b {
		t.Errorf("RFC 3261 §8.2.6.2: %q has To tag %q but %q has To tag %q; every response to the INVITE must carry the same tag",
			first.StartLine(), a, final.StartLine(), b)
	}
}

// edgeCallEvents returns the call.* events seen so far.
func edgeCallEvents(es *EventStream) []Event {
	var out []Event
	for _, e := range es.All() {
		if strings.HasPrefix(e.Type, "call.") {
			out = append(out, e)
		}
	}
	return out
}

// edgeEventTime parses an event's RFC 3339 time.
func edgeEventTime(t testing.TB, e Event) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		t.Fatalf("event %s: time %q: %v", e, e.Time, err)
	}
	return tm
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

// edgeULaw decodes one G.711 µ-law byte to a linear sample.
func edgeULaw(b byte) float64 {
	u := ^b
	sign, exp, mant := u&0x80, int(u>>4)&7, int(u&0x0f)
	v := ((mant << 3) + 0x84) << exp
	v -= 0x84
	if sign != 0 {
		v = -v
	}
	return float64(v)
}

// edgeToneShare is the share of the signal's energy at freq (Hz, 8 kHz
// sampling), by the Goertzel algorithm: about 1 for a pure tone at freq,
// about 0 when there is none. Each frame is analysed on its own (a lost
// packet breaks no phase) and the powers are summed.
func edgeToneShare(frames [][]float64, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/8000)
	var tonePower, total float64
	for _, x := range frames {
		var s1, s2, energy float64
		for _, v := range x {
			s0 := v + k*s1 - s2
			s2, s1 = s1, s0
			energy += v * v
		}
		// |X(f)|^2; a sine of amplitude A over N samples gives (A·N/2)^2,
		// while its energy is N·A^2/2: share = 2|X|^2 / (N·energy).
		tonePower += 2 * (s1*s1 + s2*s2 - k*s1*s2)
		total += float64(len(x)) * energy
	}
	if total == 0 {
		return 0
	}
	return tonePower / total
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
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{AutoAnswer: boolPtr(false)})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())

	inc := ev.WaitType(t, "call.incoming", "", sigTimeout)
	id := inc.CallID()
	if id == "" {
		t.Fatalf("call.incoming without a call: %s", inc.Raw)
	}
	if inc.Call.State != "ringing" {
		t.Errorf("call.incoming: state %q, want ringing", inc.Call.State)
	}
	ev.WaitType(t, "call.ringing", id, sigTimeout)
	if c := u.Call(id); c.State != "ringing" {
		t.Errorf("GET call before the answer: state %q, want ringing (calls.auto_answer is false)", c.State)
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.connected" }) {
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
	msgs := edgeSippMessages(r.Messages)
	if n := len(edgePick(msgs, true, "SIP/2.0 180", "INVITE")); n == 0 {
		t.Errorf("sipp received no 180 Ringing for the unanswered call")
	}
	// The 200 went out because of the API's answer, not before it.
	if oks := edgePick(msgs, true, "SIP/2.0 200", "INVITE"); len(oks) == 0 {
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
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{AutoAnswer: boolPtr(false)})
	ev := u.Events()
	s := startSipp(t, "edge_uac_declined.xml", "-s", "uad", u.SIPAddr())

	id := ev.WaitType(t, "call.incoming", "", sigTimeout).CallID()
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
	msgs := edgeSippMessages(r.Messages)
	rings, declines := edgePick(msgs, true, "SIP/2.0 180", "INVITE"), edgePick(msgs, true, "SIP/2.0 603", "INVITE")
	if len(rings) == 0 || len(declines) == 0 {
		t.Errorf("sipp received %d 180 and %d 603 for the INVITE, want both", len(rings), len(declines))
	} else {
		edgeSameToTag(t, rings[0], declines[0])
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.connected" && e.CallID() == id }) {
		t.Errorf("call.connected for a declined call")
	}
	if got := u.Call(id); got.State != "ended" {
		t.Errorf("GET call after the decline: state %q, want ended", got.State)
	}
}

// ---------------------------------------------------------------------------
// 2. and 3. CANCEL.

// The caller cancels a ringing incoming call: 200 for the CANCEL, 487 for
// the INVITE, and the call ends with reason remote.
func TestEdgeCancelFromCaller(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{AutoAnswer: boolPtr(false)})
	ev := u.Events()
	s := startSipp(t, "edge_uac_cancel.xml", "-s", "uad", u.SIPAddr())

	id := ev.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	end := ev.WaitType(t, "call.ended", id, sigTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote (the caller cancelled)", end.Reason)
	}
	r := s.WaitOK() // 180, CANCEL, 200 (CANCEL), 487, ACK as scripted
	msgs := edgeSippMessages(r.Messages)
	rings, terminated := edgePick(msgs, true, "SIP/2.0 180", "INVITE"), edgePick(msgs, true, "SIP/2.0 487", "INVITE")
	if len(rings) == 0 || len(terminated) == 0 {
		t.Errorf("sipp received %d 180 and %d 487 for the INVITE, want both", len(rings), len(terminated))
	} else {
		edgeSameToTag(t, rings[0], terminated[0])
	}
	if n := len(edgePick(msgs, true, "SIP/2.0 200", "INVITE")); n > 0 {
		t.Errorf("sipp received %d 200 OK for the cancelled INVITE", n)
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.connected" && e.CallID() == id }) {
		t.Errorf("call.connected for a cancelled call")
	}
	if got := u.Call(id); got.State != "ended" {
		t.Errorf("GET call after the CANCEL: state %q, want ended", got.State)
	}
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
	msgs := edgeSippMessages(r.Messages)
	inv := edgePick(msgs, true, "INVITE ", "")
	cancels := edgePick(msgs, true, "CANCEL ", "")
	if len(inv) == 0 || len(cancels) == 0 {
		t.Fatalf("sipp saw %d INVITEs and %d CANCELs, want both", len(inv), len(cancels))
	}
	// RFC 3261 §9.1: the CANCEL repeats the INVITE's Request-URI, Call-ID,
	// From, To, CSeq number and top Via.
	ci, cc := inv[0], cancels[0]
	if strings.Fields(ci.StartLine())[1] != strings.Fields(cc.StartLine())[1] {
		t.Errorf("CANCEL Request-URI %q differs from the INVITE's %q", cc.StartLine(), ci.StartLine())
	}
	for _, h := range []string{"Call-ID", "From", "To", "Via"} {
		if ci.Header(h) != cc.Header(h) {
			t.Errorf("CANCEL %s %q differs from the INVITE's %q", h, cc.Header(h), ci.Header(h))
		}
	}
	if fi, fc := strings.Fields(ci.Header("CSeq")), strings.Fields(cc.Header("CSeq")); len(fi) != 2 || len(fc) != 2 || fi[0] != fc[0] || fc[1] != "CANCEL" {
		t.Errorf("CANCEL CSeq %q, want the INVITE's number (%q) with method CANCEL", cc.Header("CSeq"), ci.Header("CSeq"))
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.connected" && e.CallID() == c.ID }) {
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
	got := edgePick(edgeSippMessages(r.Messages), true, "SIP/2.0 420", "INVITE")
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
		got := edgePick(edgeSippMessages(r.Messages), true, "SIP/2.0 200", "OPTIONS")
		if len(got) == 0 {
			t.Fatalf("sipp received no 200 for OPTIONS")
		}
		allow := got[0].Header("Allow")
		if allow == "" {
			t.Fatalf("200 to OPTIONS has no Allow header:\n%s", got[0].Text)
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
		if len(edgePick(edgeSippMessages(r.Messages), true, "SIP/2.0 481", "BYE")) == 0 {
			t.Errorf("sipp received no 481 for the BYE")
		}
	})
	t.Run("re-INVITE unknown To tag", func(t *testing.T) {
		r := startSipp(t, "edge_uac_reinvite_unknown.xml", "-s", "uad", u.SIPAddr()).WaitOK()
		if len(edgePick(edgeSippMessages(r.Messages), true, "SIP/2.0 481", "INVITE")) == 0 {
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
	if len(edgePick(edgeSippMessages(r.Messages), true, "SIP/2.0 488", "INVITE")) == 0 {
		t.Errorf("sipp received no 488 for a G.722-only offer")
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.connected" }) {
		t.Errorf("call.connected for a G.722-only offer")
	}
}

// An offer of audio and T.38 image is answered with the audio accepted and
// the image declined (port 0), the m-lines kept in the offer's order.
func TestEdgeOfferAudioAndT38(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "edge_uac_t38.xml", "-s", "uad", "-d", "500",
		"-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())

	id := ev.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	ev.WaitType(t, "call.connected", id, sigTimeout)
	if c := u.Call(id); c.Audio == nil || c.Audio.Codec != "PCMU" || c.Audio.RemoteRTP != peer.Addr() {
		t.Errorf("GET call: audio %+v, want PCMU toward %s", c.Audio, peer.Addr())
	}
	if e := ev.WaitType(t, "call.ended", id, endTimeout); e.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", e.Reason)
	}
	r := s.WaitOK()
	oks := edgePick(edgeSippMessages(r.Messages), true, "SIP/2.0 200", "INVITE")
	if len(oks) == 0 {
		t.Fatalf("sipp received no 200 for the INVITE")
	}
	var mlines []string
	for _, l := range strings.Split(oks[0].Body(), "\n") {
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
	u := startUAD(t, UADOptions{Config: map[string]any{"sip.t1": "100ms"}})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "edge_uac_no_ack.xml", "-s", "uad", "-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())

	inc := ev.WaitType(t, "call.incoming", "", sigTimeout)
	id := inc.CallID()
	end := ev.WaitType(t, "call.ended", id, 64*t1+sigTimeout)
	if end.Reason != "timeout" {
		t.Errorf("call.ended reason %q, want timeout (no ACK for the 2xx)", end.Reason)
	}
	// The BYE comes 64·T1 = 6.4 s after the 200, not before.
	if d := edgeEventTime(t, end).Sub(edgeEventTime(t, inc)); d < 64*t1-500*time.Millisecond || d > 64*t1+3*time.Second {
		t.Errorf("call.ended %v after call.incoming, want about 64*T1 = %v", d, 64*t1)
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.connected" && e.CallID() == id }) {
		t.Errorf("call.connected without an ACK")
	}
	r := s.WaitOK() // sipp got the 200(s) and the BYE, and answered the BYE
	msgs := edgeSippMessages(r.Messages)
	oks := edgePick(msgs, true, "SIP/2.0 200", "INVITE")
	// With T1 = 100 ms the 200 goes at 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s.
	if len(oks) < 4 {
		t.Errorf("sipp received the 200 %d times, want it retransmitted (about 7 times with T1 = 100 ms)", len(oks))
	}
	if len(edgePick(msgs, true, "BYE ", "")) == 0 {
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
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-timeout", "10s",
		"-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())

	id := ev.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	ev.WaitType(t, "call.connected", id, sigTimeout)

	start := time.Now()
	if err := u.Stop(t, 5*time.Second); err != nil {
		t.Errorf("uad after SIGTERM: %v, want exit status 0", err)
	}
	t.Logf("uad exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	r := s.WaitOK() // the BYE came and sipp answered it
	if len(edgePick(edgeSippMessages(r.Messages), true, "BYE ", "")) == 0 {
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
	if len(edgePick(edgeSippMessages(in.Messages), true, "SIP/2.0 503", "INVITE")) == 0 {
		t.Errorf("sipp received no 503 for an INVITE while no RTP port is free")
	}
	if ev.Has(func(e Event) bool { return e.Type == "call.incoming" }) {
		t.Errorf("call.incoming for an INVITE refused for lack of RTP ports")
	}

	// The first call ends: its ports come back and a new call works.
	u.Hangup(c1.ID)
	ev.WaitType(t, "call.ended", c1.ID, sigTimeout)
	uas1.WaitOK()
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
	u.Hangup(c3.ID)
	ev.WaitType(t, "call.ended", c3.ID, sigTimeout)
	uas3.WaitOK()
}

// ---------------------------------------------------------------------------
// 10. Generated media: tone and silence.

// edgeCallSippUAS places a call with media to a sipp UAS announcing peer,
// waits for call.connected and for n packets at peer.
func edgeCallSippUAS(t *testing.T, u *UAD, ev *EventStream, peer *RTPPeer, media string, n int) (CallInfo, *Sipp) {
	t.Helper()
	uas := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer.Port()))
	c := u.PlaceCall(uas.URI("media"), map[string]any{"media": media})
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	if got := peer.WaitCount(n, 5*time.Second); got < n {
		t.Fatalf("media %s: %d RTP packets arrived, want >= %d: %s", media, got, n, peer.Stats())
	}
	return c, uas
}

func TestEdgeMediaTone(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Config: map[string]any{"media.tone": "1000"}})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	c, uas := edgeCallSippUAS(t, u, ev, peer, "tone", 50)

	pkts := peer.Received()
	checkUADStream(t, "tone", pkts, 0, 0)
	sort.Slice(pkts, func(i, j int) bool { return int16(pkts[i].Seq-pkts[j].Seq) < 0 })
	var frames [][]float64
	for _, p := range pkts {
		if len(p.Payload) != 160 {
			t.Errorf("tone packet seq %d: %d bytes, want 160 (20 ms of PCMU)", p.Seq, len(p.Payload))
			continue
		}
		f := make([]float64, len(p.Payload))
		for i, b := range p.Payload {
			f[i] = edgeULaw(b)
		}
		frames = append(frames, f)
	}
	at1000, at440 := edgeToneShare(frames, 1000), edgeToneShare(frames, 440)
	t.Logf("energy share at 1000 Hz %.3f, at 440 Hz %.3f", at1000, at440)
	if at1000 < 0.8 {
		t.Errorf("energy share at 1000 Hz is %.3f, want >= 0.8 (media.tone \"1000\")", at1000)
	}
	if at440 > 0.05 {
		t.Errorf("energy share at 440 Hz is %.3f, want ~0 (the default tone must not play)", at440)
	}
	u.Hangup(c.ID)
	ev.WaitType(t, "call.ended", c.ID, sigTimeout)
	uas.WaitOK()
}

func TestEdgeMediaSilence(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{Config: map[string]any{"media.tone": "1000"}})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	c, uas := edgeCallSippUAS(t, u, ev, peer, "silence", 25)

	pkts := peer.Received()
	checkUADStream(t, "silence", pkts, 0, 0)
	bad := 0
	for _, p := range pkts {
		ok := len(p.Payload) == 160
		for _, b := range p.Payload {
			ok = ok && b == 0xff
		}
		if !ok {
			if bad == 0 {
				t.Errorf("silence packet seq %d: %d bytes, not 160 bytes of 0xff: % x", p.Seq, len(p.Payload), p.Payload)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d silence packets are not PCMU silence", bad, len(pkts))
	}
	u.Hangup(c.ID)
	ev.WaitType(t, "call.ended", c.ID, sigTimeout)
	uas.WaitOK()
}

// ---------------------------------------------------------------------------
// 11. SIP over TCP.

// sipp calls uad over TCP, exchanges RTP, hangs up.
func TestEdgeCallOverTCP(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "uac_echo.xml", "-t", "t1", "-s", "uad", "-d", "2000",
		"-key", "rtp_port", itoa(peer.Port()), u.SIPAddr())

	id := ev.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	ev.WaitType(t, "call.connected", id, sigTimeout)
	c := u.Call(id)
	peer.Send(u.AudioLocal(c), 25)
	checkEcho(t, "echo over a TCP-signalled call", peer, 25, 0)
	end := ev.WaitType(t, "call.ended", id, endTimeout)
	if end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", end.Reason)
	}
	r := s.WaitOK()
	msgs := edgeSippMessages(r.Messages)
	if len(msgs) == 0 || strings.Contains(r.Messages, "UDP message") {
		t.Errorf("sipp's trace has %d messages, want all over TCP", len(msgs))
	}
}
