package tests

// Call hold end to end: uad against uad (mutual hold), the hold tone the
// held party hears, and baresip holding and being held. The sipp scenarios
// of the RFC 3264/6337 table and the failure rules are in hold_sipp_test.go;
// the helpers both files use are here.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"uad/tests/internal/g711"
)

const (
	// holdTimeout bounds one hold/unhold request, a 491 back-off included.
	holdTimeout = 15 * time.Second
	// quietWindow is how long a "no RTP now" assertion watches: a
	// measurement window while the endpoints keep sending, not a wait for
	// something to happen.
	quietWindow = 600 * time.Millisecond
	// notHolderMsg is uad's 409 message for an unhold by the side that did not hold.
	notHolderMsg = "only the side that held the call can resume it"
)

// ---------------------------------------------------------------------------
// The API: hold, unhold, the call object.

// apiError is the body of a refused request: {"error", "sip_status"}.
type apiError struct {
	Error     string `json:"error"`
	SIPStatus int    `json:"sip_status"`
}

// holdRequest does POST (hold) or DELETE (unhold) /v1/calls/{id}/hold.
// It returns the status, the call object when 200, and the error body
// otherwise (a body that is not the contract's error object fails the test).
func holdRequest(t testing.TB, u *UAD, id string, hold bool) (int, CallInfo, apiError) {
	t.Helper()
	method, what := http.MethodPost, "hold"
	if !hold {
		method, what = http.MethodDelete, "unhold"
	}
	st, body := u.API(method, "/v1/calls/"+id+"/hold", nil)
	if st == http.StatusOK {
		return st, decodeCall(t, what+" "+id, body), apiError{}
	}
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("uad %s: %s %s = %d %s: not an {\"error\": ...} object", u.Name, what, id, st, body)
	}
	return st, CallInfo{}, e
}

// mustHold holds the call and requires 200; mustUnhold resumes it.
func mustHold(t testing.TB, u *UAD, id string) CallInfo {
	t.Helper()
	return mustHoldRequest(t, u, id, true)
}

func mustUnhold(t testing.TB, u *UAD, id string) CallInfo {
	t.Helper()
	return mustHoldRequest(t, u, id, false)
}

func mustHoldRequest(t testing.TB, u *UAD, id string, hold bool) CallInfo {
	t.Helper()
	st, c, e := holdRequest(t, u, id, hold)
	if st != http.StatusOK {
		method := http.MethodPost
		if !hold {
			method = http.MethodDelete
		}
		t.Fatalf("uad %s: %s /v1/calls/%s/hold = %d %+v, want 200", u.Name, method, id, st, e)
	}
	return c
}

// callWant is what a call object should say about hold.
type callWant struct {
	State      string // live | hold
	LocalHold  bool
	RemoteHold bool
	Dir        string // audio.direction; "" = not checked
}

func (w callWant) String() string {
	return fmt.Sprintf("state %s, local_hold %v, remote_hold %v, audio.direction %q, pending null",
		w.State, w.LocalHold, w.RemoteHold, w.Dir)
}

func describeCall(c CallInfo) string {
	dir := "(no audio)"
	if c.Audio != nil {
		dir = strconv.Quote(c.Audio.Direction)
	}
	pending := "null"
	if c.Pending != nil {
		pending = strconv.Quote(*c.Pending)
	}
	return fmt.Sprintf("state %s, local_hold %v, remote_hold %v, audio.direction %s, pending %s",
		c.State, c.LocalHold, c.RemoteHold, dir, pending)
}

// matches reports whether c is what w says, with no operation pending.
func (w callWant) matches(c CallInfo) bool {
	if c.State != w.State || c.LocalHold != w.LocalHold || c.RemoteHold != w.RemoteHold || c.Pending != nil {
		return false
	}
	return w.Dir == "" || (c.Audio != nil && c.Audio.Direction == w.Dir)
}

// checkCallIs asserts that the call object c is what w says.
func checkCallIs(t testing.TB, what string, c CallInfo, w callWant) {
	t.Helper()
	if !w.matches(c) {
		t.Errorf("%s: call is %s; want %s", what, describeCall(c), w)
	}
}

// waitCallIs polls GET /v1/calls/{id} until it is what w says; the call
// must get there within timeout.
func waitCallIs(t testing.TB, u *UAD, id string, w callWant, timeout time.Duration) CallInfo {
	t.Helper()
	var c CallInfo
	if !poll(timeout, 10*time.Millisecond, func() bool { c = u.Call(id); return w.matches(c) }) {
		t.Fatalf("uad %s: call %s is %s after %v; want %s", u.Name, id, describeCall(c), timeout, w)
	}
	return c
}

// checkEventCall asserts the call object an event carries.
func checkEventCall(t testing.TB, e Event, w callWant) {
	t.Helper()
	if e.Call == nil {
		t.Errorf("event %s carries no call", e)
		return
	}
	if !w.matches(*e.Call) {
		t.Errorf("event %s carries a call that is %s; want %s", e, describeCall(*e.Call), w)
	}
}

// holdEvents returns the hold-related events of a call seen so far, in order.
func holdEvents(es *EventStream, id string) []Event {
	var out []Event
	for _, e := range es.All() {
		if e.CallID() != id {
			continue
		}
		switch e.Type {
		case "hold.success", "hold.failed", "unhold.success", "unhold.failed", "held", "resumed":
			out = append(out, e)
		}
	}
	return out
}

func eventTypes(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// ---------------------------------------------------------------------------
// RTP: windows and tones.

// packetsSince returns what p received at or after since.
func packetsSince(p *RTPPeer, since time.Time) []RTPPacket {
	var out []RTPPacket
	for _, pk := range p.Received() {
		if !pk.At.Before(since) {
			out = append(out, pk)
		}
	}
	return out
}

// waitPackets waits until p received at least n packets that keep accepts
// since since, and returns them (fewer when timeout passed).
func waitPackets(p *RTPPeer, since time.Time, n int, keep func(RTPPacket) bool, timeout time.Duration) []RTPPacket {
	var got []RTPPacket
	poll(timeout, 10*time.Millisecond, func() bool {
		got = filter(packetsSince(p, since), keep)
		return len(got) >= n
	})
	return got
}

// watch returns, for each peer, what it received during a quietWindow
// starting now.
func watch(peers ...*RTPPeer) [][]RTPPacket {
	start := time.Now()
	time.Sleep(quietWindow) // a measurement window: see quietWindow
	end := time.Now()
	out := make([][]RTPPacket, len(peers))
	for i, p := range peers {
		out[i] = filter(packetsSince(p, start), func(pk RTPPacket) bool { return pk.At.Before(end) })
	}
	return out
}

// echoOf keeps the packets carrying a payload that from sent.
func echoOf(from *RTPPeer) func(RTPPacket) bool {
	return func(pk RTPPacket) bool { return from.SentPayload(pk.Payload) }
}

// notEchoOf keeps the packets that do not carry a payload from sent.
func notEchoOf(from *RTPPeer) func(RTPPacket) bool {
	return func(pk RTPPacket) bool { return !from.SentPayload(pk.Payload) }
}

func anyPacket(RTPPacket) bool { return true }

// isTone reports a G.711 frame of payload type pt that is clearly a tone
// at freq; isSilence one that is (near) digital silence.
func isTone(pt uint8, payload []byte, freq float64) bool {
	rms, share := g711.ToneLevel(pt, payload, freq)
	return rms > 1000 && share > 0.6
}

func isSilence(pt uint8, payload []byte) bool {
	rms, _ := g711.ToneLevel(pt, payload, 440)
	return rms < 50
}

// pcmuSilence reports 20 ms of PCMU digital silence (every byte 0xff).
func pcmuSilence(payload []byte) bool {
	ok := len(payload) == 160
	for _, b := range payload {
		ok = ok && b == 0xff
	}
	return ok
}

// checkOneStream asserts what RTP 3550 asks of one sent stream across
// source changes: a single SSRC and consecutive sequence numbers, in
// arrival order (loopback does not reorder or lose).
func checkOneStream(t testing.TB, what string, pkts []RTPPacket) {
	t.Helper()
	if len(pkts) == 0 {
		t.Errorf("%s: no RTP", what)
		return
	}
	ssrc := pkts[0].SSRC
	for i, pk := range pkts {
		if pk.SSRC != ssrc {
			t.Errorf("%s: packet %d (seq %d) has SSRC %#x, the stream started with %#x: one SSRC across hold and resume",
				what, i, pk.Seq, pk.SSRC, ssrc)
			return
		}
		if i > 0 && pk.Seq != pkts[i-1].Seq+1 {
			t.Errorf("%s: packet %d has seq %d after %d: sequence numbers must stay consecutive across hold and resume",
				what, i, pk.Seq, pkts[i-1].Seq)
			return
		}
	}
}

// checkHearEachOther asserts that from now on each endpoint hears what the
// other sends (10 packets within 3 s); fail is t.Fatalf or t.Errorf.
func checkHearEachOther(t testing.TB, fail func(string, ...any), what string, endA, endB *RTPPeer) {
	t.Helper()
	since := time.Now()
	for _, w := range []struct {
		name, other string
		p, from     *RTPPeer
	}{{"B", "A", endB, endA}, {"A", "B", endA, endB}} {
		if got := waitPackets(w.p, since, 10, echoOf(w.from), 3*time.Second); len(got) < 10 {
			fail("%s: endpoint %s got %d packets of endpoint %s, want >= 10: %s", what, w.name, len(got), w.other, w.p.Stats())
		}
	}
}

// checkHears asserts that p receives 10 packets that keep accepts within
// 3 s from now.
func checkHears(t testing.TB, what string, p *RTPPeer, keep func(RTPPacket) bool) {
	t.Helper()
	if got := waitPackets(p, time.Now(), 10, keep, 3*time.Second); len(got) < 10 {
		t.Errorf("%s: %d packets, want >= 10", what, len(got))
	}
}

// holdStep makes by hold (or resume) the call, and checks by's response
// and event against byWant, the other side's event and call object against
// otherWant.
func holdStep(t *testing.T, by, other callSide, hold bool, byWant, otherWant callWant) {
	t.Helper()
	op, byEvent, otherEvent, request := "hold", "hold.success", "held", mustHold
	if !hold {
		op, byEvent, otherEvent, request = "unhold", "unhold.success", "resumed", mustUnhold
	}
	checkCallIs(t, by.name+": "+op+" response", request(t, by.u, by.id), byWant)
	checkEventCall(t, by.ev.WaitType(t, byEvent, by.id, sigTimeout), byWant)
	checkEventCall(t, other.ev.WaitType(t, otherEvent, other.id, sigTimeout), otherWant)
	checkCallIs(t, other.name+" after "+by.name+"'s "+op, other.u.Call(other.id), otherWant)
}

// checkOnlyHoldSource asserts that from now on, while holder holds alone,
// the held side's endpoint hears the holder's hold source (20 packets
// within 3 s, none carrying what the holder's endpoint sends), and the
// holder's endpoint hears nothing (the held side is recvonly).
func checkOnlyHoldSource(t testing.TB, what string, holder, held callSide, holderEnd, heldEnd *RTPPeer) {
	t.Helper()
	since := time.Now()
	if got := waitPackets(heldEnd, since, 20, anyPacket, 3*time.Second); len(got) < 20 {
		t.Errorf("%s: endpoint %s got %d packets of %s's hold source, want >= 20 (%s sends while sendonly)", what, held.name, len(got), holder.name, holder.name)
	} else if n := len(filter(got, echoOf(holderEnd))); n > 0 {
		t.Errorf("%s: %d of %s's endpoint's packets reach %s: %s must send its hold source, not the call's media", what, n, holder.name, held.name, holder.name)
	}
	if got := packetsSince(holderEnd, since); len(got) > 0 {
		t.Errorf("%s: endpoint %s got %d packets: %s must not send while recvonly", what, holder.name, len(got), held.name)
	}
}

// checkHoldEvents asserts the hold-related events of call id so far, in
// order; why, unless "", is said in the failure.
func checkHoldEvents(t testing.TB, es *EventStream, id, why string, want ...string) {
	t.Helper()
	if got := eventTypes(holdEvents(es, id)); strings.Join(got, " ") != strings.Join(want, " ") {
		if why != "" {
			why = " (" + why + ")"
		}
		t.Errorf("hold events %v, want %v%s", got, want, why)
	}
}

// checkHoldResumeOffers asserts uad's INVITEs in a trace: the call, a hold
// offer stating holdDir and a resume offer stating sendrecv.
func checkHoldResumeOffers(t testing.TB, msgs []sipMsg, holdDir string) {
	t.Helper()
	hold, resume := holdResumeOffers(t, msgs)
	checkSDPDir(t, "hold offer", hold, holdDir)
	checkSDPDir(t, "resume offer", resume, "sendrecv")
}

// holdResumeOffers returns uad's hold and resume INVITEs of a trace, which
// must have three: the call, the hold, the resume.
func holdResumeOffers(t testing.TB, msgs []sipMsg) (hold, resume sipMsg) {
	t.Helper()
	invs := filter(msgs, requestsOf("INVITE", false))
	if len(invs) != 3 {
		t.Fatalf("sipp got %d INVITEs, want 3 (call, hold, resume)", len(invs))
	}
	return invs[1], invs[2]
}

// ---------------------------------------------------------------------------
// SDP of the SIP messages of a trace.

// sdpAudio is what a test checks of an SDP body's audio stream.
type sdpAudio struct {
	Port    int
	Dirs    []string // the direction attributes of the audio section
	Conn    string   // the connection address that applies (media, else session)
	SessID  string   // o= sess-id
	Version uint64   // o= sess-version
}

// Dir is the direction the section states: its one attribute, or "" when
// it has none or several.
func (a sdpAudio) Dir() string {
	if len(a.Dirs) == 1 {
		return a.Dirs[0]
	}
	return ""
}

func parseSDPAudio(body string) (sdpAudio, bool) {
	var a sdpAudio
	sessionConn, mediaConn := "", ""
	section := "" // "" = session level, else the media kind of the section
	found := false
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "o="):
			f := strings.Fields(line[2:])
			if len(f) >= 3 {
				a.SessID = f[1]
				a.Version, _ = strconv.ParseUint(f[2], 10, 64)
			}
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(line[2:])
			section = "other"
			if len(f) >= 2 && f[0] == "audio" && !found {
				section, found = "audio", true
				a.Port, _ = strconv.Atoi(f[1])
			}
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) == 3 {
				if section == "" {
					sessionConn = f[2]
				} else if section == "audio" {
					mediaConn = f[2]
				}
			}
		case line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive":
			if section == "audio" {
				a.Dirs = append(a.Dirs, line[2:])
			}
		}
	}
	a.Conn = sessionConn
	if mediaConn != "" {
		a.Conn = mediaConn
	}
	return a, found
}

// checkSDPDir asserts that a message carries SDP whose audio stream is
// active on a real address and states exactly the direction want.
func checkSDPDir(t testing.TB, what string, m sipMsg, want string) sdpAudio {
	t.Helper()
	a, ok := parseSDPAudio(m.Body)
	switch {
	case !ok:
		t.Errorf("%s: %s has no SDP audio stream:\n%s", what, m, m.Body)
	case a.Dir() != want:
		t.Errorf("%s: %s: audio direction attributes %q, want exactly a=%s:\n%s", what, m, a.Dirs, want, m.Body)
	case a.Port == 0 || a.Conn == "0.0.0.0" || a.Conn == "":
		t.Errorf("%s: %s: audio port %d, address %q: want an active stream on a real address:\n%s", what, m, a.Port, a.Conn, m.Body)
	}
	return a
}

// checkSDPVersions asserts RFC 3264 §8 on the SDP bodies one side sent, in
// order: one o= session id; the version goes up by one exactly when the
// body differs from the previous one.
func checkSDPVersions(t testing.TB, what string, bodies []string) {
	t.Helper()
	norm := func(body string) string {
		var keep []string
		for _, l := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
			if !strings.HasPrefix(l, "o=") {
				keep = append(keep, strings.TrimSpace(l))
			}
		}
		return strings.TrimSpace(strings.Join(keep, "\n"))
	}
	for i := 1; i < len(bodies); i++ {
		prev, _ := parseSDPAudio(bodies[i-1])
		cur, _ := parseSDPAudio(bodies[i])
		if cur.SessID != prev.SessID {
			t.Errorf("%s: SDP %d has o= session id %s, the previous one %s: it must not change", what, i+1, cur.SessID, prev.SessID)
		}
		want := prev.Version
		if norm(bodies[i]) != norm(bodies[i-1]) {
			want++
		}
		if cur.Version != want {
			t.Errorf("%s: SDP %d has o= version %d after %d, want %d (+1 exactly when the SDP changed):\n%s\n-- previous --\n%s",
				what, i+1, cur.Version, prev.Version, want, bodies[i], bodies[i-1])
		}
	}
}

// ---------------------------------------------------------------------------
// Tests.

// A calls B, both uad, each relaying its call to an RTP endpoint of the
// test, so that what each side sends is visible at the other's endpoint.
// A holds, B holds too, A resumes, B resumes; at each step the call
// objects, the events and which way RTP flows are checked.
func TestHoldUADtoUAD_Mutual(t *testing.T) {
	t.Parallel()
	endA := newRTPPeer(t, 0)
	endB := newRTPPeer(t, 0)
	b := startUAD(t, UADOptions{Name: "B", Media: "relay", Relay: endB.Addr()})
	a := startUAD(t, UADOptions{Name: "A"})
	evA, evB := a.Events(), b.Events()

	ca := a.PlaceCall(b.SIPURI("uad"), map[string]any{"media": map[string]any{"relay": endA.Addr()}})
	idA := ca.ID
	idB := waitBothConnected(t, evA, idA, evB)
	ca, cb := a.Call(idA), b.Call(idB)
	if ca.Audio == nil || ca.Audio.RelayLocal == "" || cb.Audio == nil || cb.Audio.RelayLocal == "" {
		t.Fatalf("no relay_local: A %+v, B %+v", ca.Audio, cb.Audio)
	}
	live := callWant{State: "live", Dir: "sendrecv"}
	checkCallIs(t, "A connected", ca, live)
	checkCallIs(t, "B connected", cb, live)

	// Both endpoints talk for the whole test (60 s at most; the sockets
	// close at the end).
	endA.SendAsync(mustUDPAddr(t, ca.Audio.RelayLocal), 3000)
	endB.SendAsync(mustUDPAddr(t, cb.Audio.RelayLocal), 3000)

	// Live: each endpoint hears the other.
	checkHearEachOther(t, t.Fatalf, "live", endA, endB)

	// 1. A holds: A sendonly (it sends its hold tone), B recvonly.
	sa, sb := callSide{"A", a, evA, idA}, callSide{"B", b, evB, idB}
	holdStep(t, sa, sb, true, callWant{State: "hold", LocalHold: true, Dir: "sendonly"}, callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	checkOnlyHoldSource(t, "A holds", sa, sb, endA, endB)

	// Only the holder may resume.
	st, _, e := holdRequest(t, b, idB, false)
	if st != http.StatusConflict {
		t.Errorf("B: DELETE hold of a call A holds = %d %+v, want 409", st, e)
	} else if e.Error != notHolderMsg {
		t.Errorf("B: 409 message %q, want %q", e.Error, notHolderMsg)
	}
	checkCallIs(t, "B after the refused unhold", b.Call(idB), callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	checkCallIs(t, "A after B's refused unhold", a.Call(idA), callWant{State: "hold", LocalHold: true, Dir: "sendonly"})

	// 2. B holds too: inactive on both sides, no RTP either way.
	both := callWant{State: "hold", LocalHold: true, RemoteHold: true, Dir: "inactive"}
	holdStep(t, sb, sa, true, both, both)
	w := watch(endA, endB)
	if len(w[0]) > 0 || len(w[1]) > 0 {
		t.Errorf("both hold (inactive): endpoints got %d (A) and %d (B) packets in %v, want none", len(w[0]), len(w[1]), quietWindow)
	}

	// 3. A resumes while B still holds: A recvonly, B sendonly (B's hold
	// source reaches A's endpoint).
	holdStep(t, sa, sb, false, callWant{State: "live", RemoteHold: true, Dir: "recvonly"}, callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
	checkOnlyHoldSource(t, "B holds alone", sb, sa, endB, endA)

	// 4. B resumes: sendrecv both ways, each endpoint hears the other again.
	holdStep(t, sb, sa, false, live, live)
	checkHearEachOther(t, t.Errorf, "resumed", endA, endB)

	// What each side sent toward its endpoint is one stream throughout.
	checkOneStream(t, "A -> endpoint A", endA.Received())
	checkOneStream(t, "B -> endpoint B", endB.Received())

	// The events, exactly: nothing more, nothing twice.
	checkHoldEvents(t, evA, idA, "A's call", "hold.success", "held", "unhold.success", "resumed")
	checkHoldEvents(t, evB, idB, "B's call", "held", "hold.success", "resumed", "unhold.success")

	a.Hangup(idA)
	evA.WaitType(t, "call.ended", idA, sigTimeout)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
	evA.CheckWellFormed(t)
	evB.CheckWellFormed(t)
}

// uad (echo) calls a sipp UAS whose RTP is the test's socket. While uad
// holds, the held party hears media.hold_tone (here 200 ms of 440 Hz every
// 500 ms) in PCMU, in the same RTP stream as the echo before and after.
func TestHoldToneHeardByHeldParty(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	const onMS, periodMS = 200, 500
	u := startUAD(t, UADOptions{Config: map[string]any{"media.hold_tone": fmt.Sprintf("440/%d,0/%d", onMS, periodMS-onMS)}})
	ev := u.Events()
	peer := newRTPPeer(t, 0)
	uas := startSipp(t, "hold_uas_basic.xml", "-key", "rtp_port", itoa(peer.Port()))

	c := u.PlaceCall(uas.URI("held"), map[string]any{"media": "echo"})
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	c = u.Call(c.ID)
	if c.Audio == nil || c.Audio.Codec != "PCMU" {
		t.Fatalf("audio %+v, want PCMU (the UAS answers PCMU only)", c.Audio)
	}
	peer.SendAsync(u.AudioLocal(c), 3000)
	if got := waitPackets(peer, time.Time{}, 25, echoOf(peer), 3*time.Second); len(got) < 25 {
		t.Fatalf("echo before the hold: %d packets, want >= 25: %s", len(got), peer.Stats())
	}

	mustHold(t, u, c.ID)
	held := time.Now()
	// Four periods of the hold tone.
	if got := waitPackets(peer, held, 4*periodMS/20+5, notEchoOf(peer), 5*time.Second); len(got) < 4*periodMS/20+5 {
		t.Fatalf("hold: %d packets of the hold tone, want >= %d: %s", len(got), 4*periodMS/20+5, peer.Stats())
	}
	mustUnhold(t, u, c.ID)
	resumed := time.Now()
	countAtUnhold := peer.Count() // what arrived before the unhold completed
	if got := waitPackets(peer, resumed, 25, echoOf(peer), 3*time.Second); len(got) < 25 {
		t.Errorf("echo after the resume: %d packets, want >= 25", len(got))
	}
	r := hangUp(t, u, ev, c.ID, uas)

	pkts := peer.Received()
	checkOneStream(t, "uad's RTP across hold and resume", pkts)
	for i, pk := range pkts {
		if pk.PT != 0 {
			t.Errorf("packet %d has payload type %d, want 0 (PCMU) throughout", i, pk.PT)
			break
		}
	}

	// The stream is: echo, then one block of the hold source, then echo.
	first, last := -1, -1
	for i, pk := range pkts {
		if !peer.SentPayload(pk.Payload) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first <= 0 || last >= len(pkts)-1 {
		t.Fatalf("no hold block between echo: hold packets %d..%d of %d", first, last, len(pkts))
	}
	for i := first; i <= last; i++ {
		if peer.SentPayload(pkts[i].Payload) {
			t.Errorf("packet %d (seq %d) echoes our media while uad holds (input must be dropped)", i, pkts[i].Seq)
			break
		}
	}
	if !pkts[first].Marker {
		t.Errorf("the first hold-tone packet (seq %d) has no marker bit; want it set on a change of source", pkts[first].Seq)
	}
	if !pkts[last+1].Marker {
		t.Errorf("the first echo packet after the resume (seq %d) has no marker bit", pkts[last+1].Seq)
	}

	// The tone's shape, by RTP timestamp from the first hold packet: tone
	// in the first 200 ms of each 500 ms, silence in the rest (margins for
	// the fade and for the 20 ms frames).
	block := pkts[first : last+1]
	ts0 := block[0].TS
	var toneFrames, silentFrames int
	var onsets []uint32
	prevTone := false
	for i, pk := range block {
		pos := int(pk.TS-ts0) / 8 % periodMS // ms into the period
		tone, silent := isTone(g711.PCMU, pk.Payload, 440), isSilence(g711.PCMU, pk.Payload)
		switch {
		case pos >= 20 && pos+20 <= onMS-20:
			if !tone {
				rms, share := g711.ToneLevel(g711.PCMU, pk.Payload, 440)
				t.Errorf("hold packet %d at %d ms of the period: rms %.0f, 440 Hz share %.2f; want the 440 Hz tone", i, pos, rms, share)
			}
			toneFrames++
		case pos >= onMS+20 && pos+20 <= periodMS-20:
			if !silent {
				rms, _ := g711.ToneLevel(g711.PCMU, pk.Payload, 440)
				t.Errorf("hold packet %d at %d ms of the period: rms %.0f, want silence", i, pos, rms)
			}
			silentFrames++
		}
		if tone && !prevTone {
			onsets = append(onsets, pk.TS)
		}
		prevTone = tone
	}
	if toneFrames < 10 || silentFrames < 20 {
		t.Errorf("hold block of %d packets: %d checked tone frames, %d silent frames; want >= 10 and >= 20", len(block), toneFrames, silentFrames)
	}
	if len(onsets) < 3 {
		t.Errorf("the hold tone started %d times in %d packets, want >= 3 (every %d ms)", len(onsets), len(block), periodMS)
	}
	if onsets != nil && onsets[0] != ts0 {
		t.Errorf("the first hold packet is not the start of the tone (tone starts at +%d ms)", (onsets[0]-ts0)/8)
	}
	for i := 1; i < len(onsets); i++ {
		if d := int(onsets[i]-onsets[i-1]) / 8; d < periodMS-20 || d > periodMS+20 {
			t.Errorf("tone onsets %d ms apart (RTP time), want %d ms", d, periodMS)
		}
	}

	// After the resume the tone is gone within 100 ms of media time: no
	// hold packet more than 800 samples after the last packet that arrived
	// before the unhold request returned.
	if countAtUnhold > 0 && countAtUnhold <= len(pkts) {
		ref := pkts[countAtUnhold-1].TS
		for i := countAtUnhold; i <= last; i++ {
			if d := int32(pkts[i].TS - ref); d > 800 {
				t.Errorf("hold source still sent %d ms (RTP time) after the unhold returned", d/8)
				break
			}
		}
	}
	if last < len(pkts)-1 {
		if d := int32(pkts[last+1].TS - pkts[last].TS); d <= 0 {
			t.Errorf("timestamps go back at the resume: %d after %d", pkts[last+1].TS, pkts[last].TS)
		}
	}

	// The signalling: sendonly to hold, sendrecv to resume.
	checkHoldResumeOffers(t, parseSippTrace(r.Messages), "sendonly")
}

// baresip calls uad and holds it, then resumes; uad holds baresip and
// resumes. uad's events and call object follow, and the offers and
// answers in baresip's SIP trace have the directions of the table.
func TestHoldBaresip(t *testing.T) {
	t.Parallel()
	u, ev, b := uadAndBaresip(t, BaresipOptions{})

	id := b.dialUAD(t, u, ev)
	checkCallIs(t, "connected", u.Call(id), callWant{State: "live", Dir: "sendrecv"})

	// baresip holds uad.
	if r := b.Command("hold", ""); !r.OK {
		t.Fatalf("baresip hold: %+v", r)
	}
	checkEventCall(t, ev.WaitType(t, "held", id, sigTimeout), callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	checkCallIs(t, "held by baresip", u.Call(id), callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	st, _, e := holdRequest(t, u, id, false)
	if st != http.StatusConflict || e.Error != notHolderMsg {
		t.Errorf("unhold of baresip's hold = %d %+v, want 409 %q", st, e, notHolderMsg)
	}

	// baresip resumes.
	if r := b.Command("resume", ""); !r.OK {
		t.Fatalf("baresip resume: %+v", r)
	}
	checkEventCall(t, ev.WaitType(t, "resumed", id, sigTimeout), callWant{State: "live", Dir: "sendrecv"})
	checkCallIs(t, "resumed by baresip", u.Call(id), callWant{State: "live", Dir: "sendrecv"})

	// uad holds baresip: baresip gets an offer and hears the hold tone.
	before := b.RTPReceived()
	checkCallIs(t, "hold response", mustHold(t, u, id), callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
	checkEventCall(t, ev.WaitType(t, "hold.success", id, sigTimeout), callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
	b.WaitEvent(t, func(e BaresipEvent) bool { return e.Type == "CALL_REMOTE_SDP" && e.Param == "offer" }, sigTimeout)
	var got int
	if !poll(3*time.Second, 50*time.Millisecond, func() bool { got = b.RTPReceived(); return got >= before+25 }) {
		t.Errorf("baresip received %d RTP packets while held (from %d), want >= 25 more: the hold tone", got-before, before)
	}

	// uad resumes.
	checkCallIs(t, "unhold response", mustUnhold(t, u, id), callWant{State: "live", Dir: "sendrecv"})
	checkEventCall(t, ev.WaitType(t, "unhold.success", id, sigTimeout), callWant{State: "live", Dir: "sendrecv"})
	b.WaitEvent(t, func(e BaresipEvent) bool { return e.Type == "CALL_REMOTE_SDP" && e.Param == "offer" }, sigTimeout)

	b.hangUp(t)
	if end := ev.WaitType(t, "call.ended", id, sigTimeout); end.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", end.Reason)
	}
	checkHoldEvents(t, ev, id, "", "held", "resumed", "hold.success", "unhold.success")

	// The SDP of every exchange, from baresip's SIP trace.
	msgs := parseBaresipTrace(readFile(b.LogPath), b.SIPPort)
	sent := filter(msgs, requestsOf("INVITE", true))   // baresip's: call, hold, resume
	recvd := filter(msgs, requestsOf("INVITE", false)) // uad's: hold, resume
	if len(sent) != 3 || len(recvd) != 2 {
		t.Fatalf("baresip's trace has %d INVITEs from baresip (want 3) and %d from uad (want 2)", len(sent), len(recvd))
	}
	for _, x := range []struct {
		what         string
		req          sipMsg
		offer, answr string
	}{
		{"baresip holds", sent[1], "sendonly", "recvonly"},
		{"baresip resumes", sent[2], "sendrecv", "sendrecv"},
		{"uad holds", recvd[0], "sendonly", "recvonly"},
		{"uad resumes", recvd[1], "sendrecv", "sendrecv"},
	} {
		checkSDPDir(t, x.what+": offer", x.req, x.offer)
		if res, ok := responseTo(msgs, x.req, 200); !ok {
			t.Errorf("%s: no 200 in baresip's trace", x.what)
		} else {
			checkSDPDir(t, x.what+": answer", res, x.answr)
		}
	}
}
