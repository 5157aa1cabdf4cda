package tests

// The media engine's features end to end: bridges (RTP relayed between two
// calls, G.711 law conversion, hold tone to the other party, what happens
// when a leg ends), RFC 4733 DTMF both ways plus SIP INFO dtmf-relay, and the
// RTP statistics of the call object.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"uad/tests/internal/g711"
)

// ---------------------------------------------------------------------------
// G.711 both laws.

// transcodeG711 converts a payload from the law of pt `from` to that of
// `to`: a decode and a re-encode, what a transcoder must produce.
func transcodeG711(payload []byte, from, to uint8) []byte {
	out := make([]byte, len(payload))
	for i, b := range payload {
		if from == to {
			out[i] = b
		} else {
			out[i] = g711.Encode(to, int16(g711.Decode(from, b)))
		}
	}
	return out
}

// isLawTone keeps packets of payload type pt that are clearly a tone at freq.
func isLawTone(pt uint8, freq float64) func(RTPPacket) bool {
	return func(pk RTPPacket) bool { return pk.PT == pt && isTone(pt, pk.Payload, freq) }
}

// isLawSilence keeps packets of payload type pt that are (near) silence.
func isLawSilence(pt uint8) func(RTPPacket) bool {
	return func(pk RTPPacket) bool { return pk.PT == pt && len(pk.Payload) > 0 && isSilence(pt, pk.Payload) }
}

// lawFrame is frame i of a continuous tone at freq in the law of pt; its
// first two bytes number the frame, so frames differ.
func lawFrame(pt uint8, freq float64, i int) []byte {
	out := make([]byte, 160)
	for k := range out {
		n := i*160 + k
		out[k] = g711.Encode(pt, int16(8000*math.Sin(2*math.Pi*freq*float64(n)/8000)))
	}
	out[0] = byte(0x20 + i%64)
	out[1] = byte(0x20 + (i/64)%64)
	return out
}

// ---------------------------------------------------------------------------
// A paced G.711 tone sender on an RTPPeer's socket.

// toneSender sends a G.711 tone from an RTPPeer's socket every 20 ms (on
// monotonic deadlines) until stopped, and remembers every payload sent so
// that what arrives elsewhere can be matched, as is or law-converted.
type toneSender struct {
	p    *RTPPeer
	to   *net.UDPAddr
	pt   uint8
	freq float64

	mu        sync.Mutex
	sent      map[string]bool // payloads as sent
	converted map[string]bool // the same, converted to the other law
	n         int
	stop      chan struct{}
	done      chan struct{}
}

// startToneSender starts sending; the end of the test stops it.
func startToneSender(t testing.TB, p *RTPPeer, to *net.UDPAddr, pt uint8, freq float64) *toneSender {
	s := &toneSender{p: p, to: to, pt: pt, freq: freq, sent: map[string]bool{}, converted: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	t.Cleanup(s.Stop)
	return s
}

func (s *toneSender) run() {
	defer close(s.done)
	seq := uint16(0xfff0) // wraps during the run
	ts := uint32(0xffff0000)
	start := time.Now()
	hdr := rtp.Header{Version: 2, PayloadType: s.pt, SSRC: s.p.SSRC}
	other := uint8(g711.PCMA)
	if s.pt == g711.PCMA {
		other = g711.PCMU
	}
	for i := 0; ; i++ {
		payload := lawFrame(s.pt, s.freq, i)
		hdr.SequenceNumber, hdr.Timestamp, hdr.Marker = seq, ts, i == 0
		data, err := (&rtp.Packet{Header: hdr, Payload: payload}).Marshal()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sent[string(payload)] = true
		s.converted[string(transcodeG711(payload, s.pt, other))] = true
		s.n++
		s.mu.Unlock()
		_, _ = s.p.conn.WriteToUDP(data, s.to)
		seq++
		ts += 160
		select {
		case <-s.stop:
			return
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond))):
		}
	}
}

// Stop ends the sending (idempotent).
func (s *toneSender) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Sent keeps the packets whose payload is one this sender sent, unchanged.
func (s *toneSender) Sent(pk RTPPacket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[string(pk.Payload)]
}

// Converted keeps the packets whose payload is the other law's conversion
// of one this sender sent.
func (s *toneSender) Converted(pk RTPPacket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.converted[string(pk.Payload)]
}

// withPT narrows keep to packets of payload type pt.
func withPT(pt uint8, keep func(RTPPacket) bool) func(RTPPacket) bool {
	return func(pk RTPPacket) bool { return pk.PT == pt && keep(pk) }
}

// expectFlow waits until p got n packets that keep accepts since since.
func expectFlow(t testing.TB, what string, p *RTPPeer, since time.Time, n int, keep func(RTPPacket) bool) time.Time {
	t.Helper()
	got := waitPackets(p, since, n, keep, 5*time.Second)
	if len(got) < n {
		all := packetsSince(p, since)
		t.Fatalf("%s: %d matching packets within 5 s, want >= %d (%d packets arrived: %s)",
			what, len(got), n, len(all), analyzeRTP(all))
	}
	return got[0].At
}

// expectOnly asserts that every packet p got from from on (a time by which
// the change was seen to take effect) until now is accepted by keep.
func expectOnly(t testing.TB, what string, p *RTPPeer, from time.Time, keep func(RTPPacket) bool) {
	t.Helper()
	pkts := packetsSince(p, from)
	bad := len(pkts) - len(filter(pkts, keep))
	if bad > 0 {
		t.Errorf("%s: %d of the %d packets since the change are not what they should be: %s", what, bad, len(pkts), analyzeRTP(pkts))
	}
}

// ---------------------------------------------------------------------------
// The API parts this file needs beyond the harness's CallInfo.

// mediaStats is a stream's stats object.
type mediaStats struct {
	PacketsSent     uint64  `json:"packets_sent"`
	BytesSent       uint64  `json:"bytes_sent"`
	PacketsReceived uint64  `json:"packets_received"`
	BytesReceived   uint64  `json:"bytes_received"`
	PacketsLost     int64   `json:"packets_lost"`
	JitterMS        float64 `json:"jitter_ms"`
	LastReceived    string  `json:"last_received"`
}

// statsOf extracts audio.stats from a call object's JSON; nil if missing.
func statsOf(t testing.TB, what string, data []byte) *mediaStats {
	t.Helper()
	var c struct {
		Audio *struct {
			Stats *mediaStats `json:"stats"`
		} `json:"audio"`
		Call *json.RawMessage `json:"call"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v: %s", what, err, data)
	}
	if c.Call != nil { // an event: the call object is its "call"
		return statsOf(t, what, *c.Call)
	}
	if c.Audio == nil {
		return nil
	}
	return c.Audio.Stats
}

// bridgeInfo is a bridge object.
type bridgeInfo struct {
	ID    string   `json:"id"`
	Calls []string `json:"calls"`
}

func createBridge(t testing.TB, u *UAD, a, b string) bridgeInfo {
	t.Helper()
	st, data := u.API(http.MethodPost, "/v1/bridges", map[string]any{"calls": []string{a, b}})
	if st != http.StatusCreated {
		t.Fatalf("uad %s: POST /v1/bridges [%s %s] = %d %s, want 201", u.Name, a, b, st, data)
	}
	var br bridgeInfo
	if err := json.Unmarshal(data, &br); err != nil || br.ID == "" {
		t.Fatalf("uad %s: POST /v1/bridges: not a bridge object {\"id\", \"calls\"}: %v: %s", u.Name, err, data)
	}
	if len(br.Calls) != 2 || br.Calls[0] != a || br.Calls[1] != b {
		t.Errorf("uad %s: POST /v1/bridges returned calls %v, want [%s %s]", u.Name, br.Calls, a, b)
	}
	return br
}

func listBridges(t testing.TB, u *UAD) []bridgeInfo {
	t.Helper()
	return getJSON[[]bridgeInfo](t, u, "/v1/bridges", "a list of bridges")
}

// sendDTMF does POST /v1/calls/{id}/dtmf and returns the status and body.
func sendDTMF(u *UAD, id, digits string, durationMS int) (int, []byte) {
	return u.API(http.MethodPost, "/v1/calls/"+id+"/dtmf", map[string]any{"digits": digits, "duration_ms": durationMS})
}

func mustSendDTMF(t testing.TB, u *UAD, id, digits string) {
	t.Helper()
	if st, body := sendDTMF(u, id, digits, 100); st != http.StatusAccepted {
		t.Fatalf("uad %s: POST /v1/calls/%s/dtmf %q = %d %s, want 202", u.Name, id, digits, st, body)
	}
}

// dtmfDigits returns the digits of the dtmf events of call id seen so far.
func dtmfDigits(es *EventStream, id string) []string {
	var out []string
	for _, e := range es.All() {
		if e.Type == "dtmf" && e.CallID() == id {
			out = append(out, e.Digit)
		}
	}
	return out
}

// waitDigits waits for dtmf events of call id carrying want, in order.
func waitDigits(t testing.TB, es *EventStream, id string, want ...string) {
	t.Helper()
	for _, d := range want {
		e := es.WaitType(t, "dtmf", id, sigTimeout)
		if e.Digit != d {
			t.Fatalf("dtmf event digit %q, want %q (digits so far: %q, want %q next)", e.Digit, d, dtmfDigits(es, id), want)
		}
	}
}

// dtmfAcross sends digits on from's call and waits for to's dtmf events,
// one a digit, in order.
func dtmfAcross(t testing.TB, from, to callSide, digits string) {
	t.Helper()
	mustSendDTMF(t, from.u, from.id, digits)
	waitDigits(t, to.ev, to.id, strings.Split(digits, "")...)
}

// checkDigits asserts the digits side reported so far, in order; why,
// unless "", is said in the failure.
func checkDigits(t testing.TB, side callSide, want, why string) {
	t.Helper()
	if got := strings.Join(dtmfDigits(side.ev, side.id), ""); got != want {
		if why != "" {
			why = " (" + why + ")"
		}
		t.Errorf("%s reported digits %q, want %q%s", side.name, got, want, why)
	}
}

// ---------------------------------------------------------------------------
// Bridges: uad A (relay to endA) calls M, M calls uad B (relay to endB,
// A-law only), and M bridges the two calls.

type bridgeTopo struct {
	a, m, b        *UAD
	evA, evM, evB  *EventStream
	endA, endB     *RTPPeer
	sendA, sendB   *toneSender // 1000 Hz µ-law into A; 700 Hz A-law into B
	callA          string      // A's call to M
	mA, mB         string      // M's calls: from A, to B
	callB          string      // B's call from M
	relayA, relayB *net.UDPAddr
}

const holdFreq = 440

func startBridgeTopo(t *testing.T, cfgM map[string]any) *bridgeTopo {
	t.Helper()
	x := &bridgeTopo{endA: newRTPPeer(t, 0), endB: newRTPPeer(t, 0)}
	mcfg := map[string]any{"media.hold_tone": fmt.Sprint(holdFreq)} // continuous
	for k, v := range cfgM {
		mcfg[k] = v
	}
	x.m = startUAD(t, UADOptions{Name: "M", Config: mcfg})
	x.b = startUAD(t, UADOptions{Name: "B", Media: "relay", Relay: x.endB.Addr(),
		// B's own hold tone differs from M's, so that what B plays while it
		// holds is not taken for M's.
		Config: map[string]any{"media.codecs": []string{"PCMA"}, "media.hold_tone": "600"}})
	x.a = startUAD(t, UADOptions{Name: "A"})
	x.evA, x.evM, x.evB = x.a.Events(), x.m.Events(), x.b.Events()

	ca := x.a.PlaceCall(x.m.SIPURI("m"), map[string]any{"media": map[string]any{"relay": x.endA.Addr()}})
	x.callA = ca.ID
	x.mA = waitBothConnected(t, x.evA, x.callA, x.evM)

	x.mB = x.m.PlaceCall(x.b.SIPURI("b"), nil).ID
	x.callB = waitBothConnected(t, x.evM, x.mB, x.evB)

	if c := x.m.Call(x.mA); c.Audio == nil || c.Audio.Codec != "PCMU" {
		t.Fatalf("M's call from A: audio %+v, want PCMU (A offers PCMU first)", c.Audio)
	}
	if c := x.m.Call(x.mB); c.Audio == nil || c.Audio.Codec != "PCMA" {
		t.Fatalf("M's call to B: audio %+v, want PCMA (B takes only PCMA)", c.Audio)
	}
	ca = x.a.Call(x.callA)
	cb := x.b.Call(x.callB)
	if ca.Audio == nil || ca.Audio.RelayLocal == "" || cb.Audio == nil || cb.Audio.RelayLocal == "" {
		t.Fatalf("relay_local missing: A %+v, B %+v", ca.Audio, cb.Audio)
	}
	x.relayA, x.relayB = mustUDPAddr(t, ca.Audio.RelayLocal), mustUDPAddr(t, cb.Audio.RelayLocal)
	x.sendA = startToneSender(t, x.endA, x.relayA, g711.PCMU, 1000)
	x.sendB = startToneSender(t, x.endB, x.relayB, g711.PCMA, 700)

	// Before the bridge, M echoes each call: each party hears itself.
	now := time.Now()
	expectFlow(t, "before the bridge, endA hears its own echo through M", x.endA, now, 10, withPT(g711.PCMU, x.sendA.Sent))
	expectFlow(t, "before the bridge, endB hears its own echo through M", x.endB, now, 10, withPT(g711.PCMA, x.sendB.Sent))
	return x
}

// bridge bridges M's two calls and checks that each party then hears the
// other, law-converted: A's µ-law arrives at endB as its exact A-law
// conversion and B's A-law at endA as its exact µ-law conversion.
func (x *bridgeTopo) bridge(t *testing.T) bridgeInfo {
	t.Helper()
	br := createBridge(t, x.m, x.mA, x.mB)
	x.checkRelayed(t, "bridged", time.Now())
	return br
}

// checkRelayed asserts that since since, after a short transition, endB
// receives only A's audio converted to A-law and endA only B's converted
// to µ-law.
func (x *bridgeTopo) checkRelayed(t *testing.T, what string, since time.Time) {
	t.Helper()
	fromA := withPT(g711.PCMA, x.sendA.Converted)
	fromB := withPT(g711.PCMU, x.sendB.Converted)
	firstB := expectFlow(t, what+": A's µ-law audio at endB as A-law (converted by M)", x.endB, since, 25, fromA)
	firstA := expectFlow(t, what+": B's A-law audio at endA as µ-law (converted by M)", x.endA, since, 25, fromB)
	expectOnly(t, what+": endB", x.endB, firstB, fromA)
	expectOnly(t, what+": endA", x.endA, firstA, fromB)
}

// TestMediaBridgeUADs bridges two calls on a middle uad M whose legs use
// different laws, holds one leg, resumes it, and ends one leg in each of the
// calls.bridge_leg_end ways; it also unbridges with DELETE.
func TestMediaBridgeUADs(t *testing.T) {
	t.Parallel()

	t.Run("keep", func(t *testing.T) {
		t.Parallel()
		x := startBridgeTopo(t, nil)
		br := x.bridge(t)

		if got := listBridges(t, x.m); len(got) != 1 || got[0].ID != br.ID || len(got[0].Calls) != 2 {
			t.Errorf("GET /v1/bridges = %+v, want the one bridge %s", got, br.ID)
		}
		// Refused bridges: a call already bridged, the same call twice, an unknown call.
		if st, body := x.m.API(http.MethodPost, "/v1/bridges", map[string]any{"calls": []string{x.mA, x.mB}}); st != http.StatusConflict {
			t.Errorf("POST /v1/bridges of two calls already bridged = %d %s, want 409", st, body)
		}
		if st, body := x.m.API(http.MethodPost, "/v1/bridges", map[string]any{"calls": []string{x.mA, x.mA}}); st != http.StatusBadRequest {
			t.Errorf("POST /v1/bridges of one call twice = %d %s, want 400", st, body)
		}
		if st, body := x.m.API(http.MethodPost, "/v1/bridges", map[string]any{"calls": []string{x.mA, "no-such-call"}}); st != http.StatusNotFound {
			t.Errorf("POST /v1/bridges with an unknown call = %d %s, want 404", st, body)
		}

		// M holds its call to B: B's party gets M's hold tone in A-law (B
		// relays it), A's party hears the hold tone too, in µ-law; neither
		// hears the other any more.
		mustHold(t, x.m, x.mB)
		held := time.Now()
		toneB := expectFlow(t, "hold: M's hold tone at endB (A-law)", x.endB, held, 15, isLawTone(g711.PCMA, holdFreq))
		toneA := expectFlow(t, "hold: the hold tone at endA, the other party (µ-law)", x.endA, held, 15, isLawTone(g711.PCMU, holdFreq))
		expectOnly(t, "hold: endB gets only the hold tone", x.endB, toneB, isLawTone(g711.PCMA, holdFreq))
		expectOnly(t, "hold: endA gets only the hold tone", x.endA, toneA, isLawTone(g711.PCMU, holdFreq))

		mustUnhold(t, x.m, x.mB)
		x.checkRelayed(t, "after the resume", time.Now())

		// B hangs up: M's call from A stays up, told by bridge.ended, and
		// gets its own media (echo) back.
		x.b.Hangup(x.callB)
		x.evM.WaitType(t, "call.ended", x.mB, sigTimeout)
		e := x.evM.WaitType(t, "bridge.ended", x.mA, sigTimeout)
		var fields struct {
			Bridge string `json:"bridge"`
		}
		if json.Unmarshal([]byte(e.Raw), &fields); fields.Bridge != br.ID {
			t.Errorf("bridge.ended names bridge %q, want %s: %s", fields.Bridge, br.ID, e.Raw)
		}
		if e.Call == nil || e.Call.State != "live" {
			t.Errorf("bridge.ended carries the call in state %v, want live", e.Call)
		}
		ended := time.Now()
		first := expectFlow(t, "after the leg ended, endA hears its own echo through M again", x.endA, ended, 25, withPT(g711.PCMU, x.sendA.Sent))
		expectOnly(t, "after the leg ended, endA", x.endA, first, withPT(g711.PCMU, x.sendA.Sent))
		if c := x.m.Call(x.mA); c.State != "live" {
			t.Errorf("M's call from A after B left: state %q, want live", c.State)
		}
		if x.evA.HasType("call.ended", "") {
			t.Errorf("A's call ended with calls.bridge_leg_end: keep")
		}
		if got := listBridges(t, x.m); len(got) != 0 {
			t.Errorf("GET /v1/bridges after a leg ended = %+v, want []", got)
		}
		x.a.Hangup(x.callA)
		x.evM.WaitType(t, "call.ended", x.mA, sigTimeout)
	})

	t.Run("hangup", func(t *testing.T) {
		t.Parallel()
		x := startBridgeTopo(t, map[string]any{"calls.bridge_leg_end": "hangup", "calls.bridge_hold": "silence"})
		x.bridge(t)

		// With calls.bridge_hold: silence the other party hears silence.
		mustHold(t, x.m, x.mB)
		held := time.Now()
		toneB := expectFlow(t, "hold: M's hold tone at endB (A-law)", x.endB, held, 15, isLawTone(g711.PCMA, holdFreq))
		silA := expectFlow(t, "hold with bridge_hold silence: silence at endA (µ-law)", x.endA, held, 15, isLawSilence(g711.PCMU))
		expectOnly(t, "hold: endB gets only the hold tone", x.endB, toneB, isLawTone(g711.PCMA, holdFreq))
		expectOnly(t, "hold with bridge_hold silence: endA gets only silence", x.endA, silA, isLawSilence(g711.PCMU))
		mustUnhold(t, x.m, x.mB)
		x.checkRelayed(t, "after the resume", time.Now())

		x.b.Hangup(x.callB)
		x.evM.WaitType(t, "call.ended", x.mB, sigTimeout)
		if e := x.evM.WaitType(t, "call.ended", x.mA, sigTimeout); e.Reason != "local" {
			t.Errorf("M's call from A: call.ended reason %q, want local (calls.bridge_leg_end: hangup)", e.Reason)
		}
		if e := x.evA.WaitType(t, "call.ended", x.callA, sigTimeout); e.Reason != "remote" {
			t.Errorf("A: call.ended reason %q, want remote", e.Reason)
		}
	})

	t.Run("peer-holds-and-delete", func(t *testing.T) {
		t.Parallel()
		x := startBridgeTopo(t, nil)
		br := x.bridge(t)

		// B (M's peer) holds: A's party hears M's hold tone meanwhile.
		mustHold(t, x.b, x.callB)
		held := time.Now()
		toneA := expectFlow(t, "B holds: M's hold tone at endA", x.endA, held, 15, isLawTone(g711.PCMU, holdFreq))
		expectOnly(t, "B holds: endA gets only the hold tone", x.endA, toneA, isLawTone(g711.PCMU, holdFreq))
		mustUnhold(t, x.b, x.callB)
		x.checkRelayed(t, "after B resumed", time.Now())

		// DELETE: both calls get their own media (echo) back.
		st, data := x.m.API(http.MethodDelete, "/v1/bridges/"+br.ID, nil)
		if st != http.StatusOK {
			t.Fatalf("DELETE /v1/bridges/%s = %d %s, want 200", br.ID, st, data)
		}
		if got := listBridges(t, x.m); len(got) != 0 {
			t.Errorf("GET /v1/bridges after DELETE = %+v, want []", got)
		}
		since := time.Now()
		fa := expectFlow(t, "unbridged: endA hears its own echo", x.endA, since, 25, withPT(g711.PCMU, x.sendA.Sent))
		fb := expectFlow(t, "unbridged: endB hears its own echo", x.endB, since, 25, withPT(g711.PCMA, x.sendB.Sent))
		expectOnly(t, "unbridged: endA", x.endA, fa, withPT(g711.PCMU, x.sendA.Sent))
		expectOnly(t, "unbridged: endB", x.endB, fb, withPT(g711.PCMA, x.sendB.Sent))
		if st, data := x.m.API(http.MethodDelete, "/v1/bridges/"+br.ID, nil); st != http.StatusNotFound {
			t.Errorf("DELETE of a deleted bridge = %d %s, want 404", st, data)
		}
		for _, id := range []string{x.mA, x.mB} {
			if c := x.m.Call(id); c.State != "live" {
				t.Errorf("M's call %s after DELETE of the bridge: state %q, want live", id, c.State)
			}
		}
		x.a.Hangup(x.callA)
		x.m.Hangup(x.mB)
		x.evM.WaitType(t, "call.ended", x.mA, sigTimeout)
		x.evB.WaitType(t, "call.ended", x.callB, sigTimeout)
	})
}

// TestMediaBridgeSippBaresip bridges, on one uad, a call from sipp (whose
// RTP is the test's socket) and a call to baresip (A-law, sending a 440 Hz
// tone): baresip's tone reaches the test's socket, µ-law, and what the test
// sends reaches baresip.
func TestMediaBridgeSippBaresip(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp", "baresip", "sox")
	u, ev, sock, s := sippCallsUAD(t, UADOptions{}, "uac_wait_bye.xml", "-s", "uad")
	sippCall := ev.WaitAnswered(t).CallID()

	bs := startBaresip(t, BaresipOptions{AccountParams: ";audio_codecs=pcma"})
	bc := u.PlaceCall(bs.URI(), nil)
	ev.WaitType(t, "call.connected", bc.ID, sigTimeout)
	bs.WaitEventType(t, "CALL_ESTABLISHED", sigTimeout)
	if c := u.Call(bc.ID); c.Audio == nil || c.Audio.Codec != "PCMA" {
		t.Fatalf("call to baresip: audio %+v, want PCMA", c.Audio)
	}
	c := u.Call(sippCall)
	if c.Audio == nil || c.Audio.Codec != "PCMU" {
		t.Fatalf("call from sipp: audio %+v, want PCMU", c.Audio)
	}

	createBridge(t, u, sippCall, bc.ID)
	bridged := time.Now()
	// baresip's 440 Hz tone (A-law) reaches the socket as µ-law.
	first := expectFlow(t, "baresip's tone at sipp's RTP socket", sock, bridged, 25, isLawTone(g711.PCMU, 440))
	// (baresip's own audio may have a gap under load: most frames, not all.)
	if pk := packetsSince(sock, first); len(filter(pk, isLawTone(g711.PCMU, 440))) < len(pk)*9/10 {
		t.Errorf("sipp's side: %d of %d packets since the first are baresip's tone, want >= 90%%", len(filter(pk, isLawTone(g711.PCMU, 440))), len(pk))
	}

	// Nothing of uad's own goes to baresip while the sipp side is silent;
	// what the test sends reaches it.
	quiet := bs.RTPReceived()
	watch() // a measurement window while the sipp side sends nothing
	before := bs.RTPReceived()
	if got := before - quiet; got > 3 {
		t.Errorf("baresip received %d RTP packets in %v while the bridged party sent nothing, want ~0 (no echo in a bridge)", got, quietWindow)
	}
	send := startToneSender(t, sock, u.AudioLocal(c), g711.PCMU, 1000)
	var got int
	if !poll(5*time.Second, 50*time.Millisecond, func() bool { got = bs.RTPReceived() - before; return got >= 40 }) {
		t.Errorf("baresip received %d RTP packets relayed from the sipp side, want >= 40\n%s", got, bs.AudioDebug())
	}
	send.Stop()

	u.Hangup(sippCall)
	s.WaitOK()
	e := ev.WaitType(t, "bridge.ended", bc.ID, sigTimeout)
	if e.Call == nil || e.Call.State != "live" {
		t.Errorf("bridge.ended: the call to baresip is %v, want live", e.Call)
	}
	u.Hangup(bc.ID)
	bs.WaitEventType(t, "CALL_CLOSED", sigTimeout)
}

// ---------------------------------------------------------------------------
// DTMF.

// TestMediaDTMFBetweenUADs: A sends digits to B and B to A as RFC 4733
// telephone-events; each side reports each digit once, in order; no DTMF
// while the call is held either way.
func TestMediaDTMFBetweenUADs(t *testing.T) {
	t.Parallel()
	b := startUAD(t, UADOptions{Name: "B", Media: "silence"})
	a := startUAD(t, UADOptions{Name: "A", Media: "silence"})
	evA, evB := a.Events(), b.Events()
	ca := a.PlaceCall(b.SIPURI("b"), nil)
	idB := waitBothConnected(t, evA, ca.ID, evB)

	sa, sb := callSide{"A", a, evA, ca.ID}, callSide{"B", b, evB, idB}

	dtmfAcross(t, sa, sb, "123#")
	dtmfAcross(t, sb, sa, "4*0D")
	// A last digit each way: every event before it has arrived by then.
	dtmfAcross(t, sa, sb, "9")
	dtmfAcross(t, sb, sa, "5")
	checkDigits(t, sb, "123#9", "each once, in order")
	checkDigits(t, sa, "4*0D5", "each once, in order")

	// Held (A holds): neither side may send DTMF.
	mustHold(t, a, ca.ID)
	waitCallIs(t, b, idB, callWant{State: "live", RemoteHold: true, Dir: "recvonly"}, holdTimeout)
	if st, body := sendDTMF(a, ca.ID, "1", 100); st != http.StatusConflict {
		t.Errorf("DTMF from A while A holds = %d %s, want 409", st, body)
	}
	if st, body := sendDTMF(b, idB, "1", 100); st != http.StatusConflict {
		t.Errorf("DTMF from B while A holds it = %d %s, want 409", st, body)
	}
	mustUnhold(t, a, ca.ID)
	waitCallIs(t, b, idB, callWant{State: "live", Dir: "sendrecv"}, holdTimeout)
	dtmfAcross(t, sa, sb, "7")
	dtmfAcross(t, sb, sa, "8")
	checkDigits(t, sb, "123#97", "")
	a.Hangup(ca.ID)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
}

// telephoneEvent is a parsed RFC 4733 payload.
type telephoneEvent struct {
	Code     byte
	End      bool
	Volume   byte
	Duration uint16
}

func parseTelephoneEvent(p []byte) (telephoneEvent, bool) {
	if len(p) < 4 {
		return telephoneEvent{}, false
	}
	return telephoneEvent{Code: p[0], End: p[1]&0x80 != 0, Volume: p[1] & 0x3f, Duration: binary.BigEndian.Uint16(p[2:])}, true
}

// sendTelephoneEvents sends digits as RFC 4733 events from p to to with
// payload type pt: per digit 5 packets 20 ms apart (100 ms), the end packet
// three times, all with the event's timestamp, marker on the first.
func sendTelephoneEvents(t testing.TB, p *RTPPeer, to *net.UDPAddr, pt uint8, codes []byte, seq *uint16, ts *uint32) {
	t.Helper()
	start := time.Now()
	n := 0
	for _, code := range codes {
		for i := 0; i < 8; i++ {
			dur := uint16(min(i+1, 5) * 160)
			flags := byte(10)
			if i >= 5 {
				flags |= 0x80
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: *seq, Timestamp: *ts,
				SSRC: p.SSRC, Marker: i == 0}, Payload: []byte{code, flags, byte(dur >> 8), byte(dur)}}
			data, _ := pkt.Marshal()
			if _, err := p.conn.WriteToUDP(data, to); err != nil {
				t.Fatalf("send telephone-event: %v", err)
			}
			*seq++
			n++
			time.Sleep(time.Until(start.Add(time.Duration(n) * 20 * time.Millisecond))) // the media clock
		}
		*ts += 5*160 + 3*160
	}
}

// TestMediaDTMFFromSipp: sipp calls uad offering telephone-event with
// payload type 96 or 101 and its RTP on the test's socket. The test's
// RFC 4733 events with that payload type become dtmf events (those with the
// other number do not); uad's DTMF to the socket uses the offered number,
// inside uad's one RTP stream; a SIP INFO application/dtmf-relay becomes a
// dtmf event too. A peer that offered no telephone-event gets no DTMF (409).
func TestMediaDTMFFromSipp(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	for _, tc := range []struct{ pt, other uint8 }{{96, 101}, {101, 96}} {
		t.Run(fmt.Sprint("pt", tc.pt), func(t *testing.T) {
			t.Parallel()
			u, ev, sock, s := sippCallsUAD(t, UADOptions{Media: "silence"}, "media_uac_dtmf.xml", "-s", "uad", "-key", "dtmf_pt", fmt.Sprint(tc.pt))
			id := ev.WaitAnswered(t).CallID()

			// The INFO sipp sends after its ACK.
			waitDigits(t, ev, id, "5")

			// RFC 4733 from the socket: the offered PT counts, the other does not.
			local := u.AudioLocal(u.Call(id))
			seq, ts := uint16(0xfffa), uint32(1000)
			sendTelephoneEvents(t, sock, local, tc.pt, []byte{9, 0, 10, 11}, &seq, &ts)
			waitDigits(t, ev, id, "9", "0", "*", "#")
			sendTelephoneEvents(t, sock, local, tc.other, []byte{8}, &seq, &ts)
			sendTelephoneEvents(t, sock, local, tc.pt, []byte{12}, &seq, &ts)
			waitDigits(t, ev, id, "A")
			if got := strings.Join(dtmfDigits(ev, id), ""); got != "590*#A" {
				t.Errorf("dtmf events %q, want \"590*#A\" (each once; none for payload type %d, which was not offered for telephone-event)", got, tc.other)
			}

			// uad's DTMF to the peer: the offered payload type.
			since := time.Now()
			mustSendDTMF(t, u, id, "123#")
			isTE := func(pk RTPPacket) bool { return pk.PT == tc.pt }
			if got := waitPackets(sock, since, 4*8, isTE, 5*time.Second); len(got) < 4*8 {
				t.Fatalf("%d telephone-event packets (payload type %d) at the socket, want 32 (4 digits x (5 + 3 end)): %s",
					len(got), tc.pt, analyzeRTP(packetsSince(sock, since)))
			}
			// Audio (silence) resumes after the last event.
			waitPackets(sock, since, 4*8+10, anyPacket, 3*time.Second)
			pkts := packetsSince(sock, since)
			checkOneStream(t, "uad's RTP with DTMF", pkts)
			checkTelephoneEvents(t, pkts, tc.pt, []byte{1, 2, 3, 11}, 800)
			if last := pkts[len(pkts)-1]; last.PT != g711.PCMU {
				t.Errorf("after the digits uad sends payload type %d, want 0 (silence resumed)", last.PT)
			}

			// SIP signalling: the answer kept the offered number.
			u.Hangup(id)
			r := s.WaitOK()
			if !strings.Contains(r.Messages, fmt.Sprintf("a=rtpmap:%d telephone-event/8000", tc.pt)) {
				t.Errorf("uad's answer does not map payload type %d to telephone-event", tc.pt)
			}
		})
	}
	t.Run("no-telephone-event", func(t *testing.T) {
		t.Parallel()
		u, ev, _, s := sippCallsUAD(t, UADOptions{Media: "silence"}, "media_uac_no_te.xml", "-s", "uad")
		id := ev.WaitAnswered(t).CallID()
		if st, body := sendDTMF(u, id, "1", 100); st != http.StatusConflict {
			t.Errorf("DTMF to a peer that offered no telephone-event = %d %s, want 409", st, body)
		}
		u.Hangup(id)
		s.WaitOK()
	})
}

// checkTelephoneEvents asserts the RFC 4733 packets of payload type pt in
// pkts: the events codes in order, each with one timestamp, the marker on
// its first packet only, the end bit on its last three packets only,
// durations growing to wantDur.
func checkTelephoneEvents(t testing.TB, pkts []RTPPacket, pt uint8, codes []byte, wantDur uint16) {
	t.Helper()
	type event struct {
		ts   uint32
		pkts []RTPPacket
	}
	var evs []*event
	for _, pk := range pkts {
		if pk.PT != pt {
			continue
		}
		if len(evs) == 0 || evs[len(evs)-1].ts != pk.TS {
			evs = append(evs, &event{ts: pk.TS})
		}
		evs[len(evs)-1].pkts = append(evs[len(evs)-1].pkts, pk)
	}
	if len(evs) != len(codes) {
		t.Fatalf("%d telephone events (by timestamp), want %d", len(evs), len(codes))
	}
	for i, e := range evs {
		var prev uint16
		for j, pk := range e.pkts {
			te, ok := parseTelephoneEvent(pk.Payload)
			if !ok {
				t.Errorf("event %d packet %d: payload % x is not a telephone-event", i, j, pk.Payload)
				continue
			}
			if te.Code != codes[i] {
				t.Errorf("event %d packet %d: code %d, want %d", i, j, te.Code, codes[i])
			}
			if pk.Marker != (j == 0) {
				t.Errorf("event %d packet %d: marker %v, want it on the first packet only", i, j, pk.Marker)
			}
			if wantEnd := j >= len(e.pkts)-3; te.End != wantEnd {
				t.Errorf("event %d packet %d of %d: end bit %v, want it on the last three only", i, j, len(e.pkts), te.End)
			}
			if te.Duration < prev {
				t.Errorf("event %d packet %d: duration %d after %d", i, j, te.Duration, prev)
			}
			prev = te.Duration
		}
		if len(e.pkts) < 4 {
			t.Errorf("event %d: %d packets, want at least one before the three end packets", i, len(e.pkts))
		}
		if prev != wantDur {
			t.Errorf("event %d: final duration %d, want %d (100 ms)", i, prev, wantDur)
		}
		if i > 0 && int32(e.ts-evs[i-1].ts) < int32(wantDur) {
			t.Errorf("event %d starts %d samples after event %d, which lasted %d", i, e.ts-evs[i-1].ts, i-1, wantDur)
		}
	}
}

// ---------------------------------------------------------------------------
// RTP statistics.

// TestMediaStatsLoss: 500 packets at 20 ms, every 10th left out (the
// sequence numbers skip, and wrap on the way): the call object counts 450
// received, 50 lost, small jitter; so does call.ended's.
func TestMediaStatsLoss(t *testing.T) {
	t.Parallel()
	u, ev, sock, s := sippCallsUAD(t, UADOptions{}, "uac_wait_bye.xml", "-s", "uad")
	id := ev.WaitAnswered(t).CallID()
	to := u.AudioLocal(u.Call(id))

	const total, sent = 500, 450
	seq0, ts0 := uint16(65535-200), uint32(4000000000)
	start := time.Now()
	for i := 0; i < total; i++ {
		if i%10 != 5 { // drop 5, 15, ... 495: the first and last are sent
			payload := toneFrame(i)
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq0 + uint16(i),
				Timestamp: ts0 + uint32(i)*160, SSRC: sock.SSRC, Marker: i == 0}, Payload: payload}
			data, _ := pkt.Marshal()
			if _, err := sock.conn.WriteToUDP(data, to); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond))) // the media clock
	}

	// The echo of every packet, and the call object's counters.
	if n := sock.WaitCount(sent, 3*time.Second); n != sent {
		t.Errorf("echo: %d packets came back, want %d", n, sent)
	}
	// The call object counts what arrived: within a second of the last
	// packet (polled on, to tell a stale object from a wrong count).
	lastSent := time.Now()
	var st *mediaStats
	var first *mediaStats
	ok := poll(10*time.Second, 50*time.Millisecond, func() bool {
		_, body := u.API(http.MethodGet, "/v1/calls/"+id, nil)
		st = statsOf(t, "GET call", body)
		if first == nil {
			first = st
		}
		return st != nil && st.PacketsReceived == sent
	})
	switch took := time.Since(lastSent); {
	case !ok:
		t.Errorf("GET /v1/calls/%s: audio.stats %+v 10 s after the last packet, want packets_received %d", id, st, sent)
	case took > time.Second:
		t.Errorf("GET /v1/calls/%s: audio.stats is stale: right after the last packet it said %+v; it counted all %d packets only %v later",
			id, first, sent, took.Round(100*time.Millisecond))
	}
	checkStats(t, "GET call", st, sent, total-sent)

	u.Hangup(id)
	e := ev.WaitType(t, "call.ended", id, sigTimeout)
	checkStats(t, "call.ended", statsOf(t, "call.ended", []byte(e.Raw)), sent, total-sent)
	s.WaitOK()
}

func checkStats(t testing.TB, what string, st *mediaStats, received, lost int) {
	t.Helper()
	if st == nil {
		t.Errorf("%s: no audio.stats", what)
		return
	}
	if st.PacketsReceived != uint64(received) || st.BytesReceived != uint64(received*160) {
		t.Errorf("%s: packets_received %d bytes_received %d, want %d and %d", what, st.PacketsReceived, st.BytesReceived, received, received*160)
	}
	if st.PacketsLost != int64(lost) {
		t.Errorf("%s: packets_lost %d, want %d", what, st.PacketsLost, lost)
	}
	if st.PacketsSent != uint64(received) || st.BytesSent != uint64(received*160) {
		t.Errorf("%s: packets_sent %d bytes_sent %d, want %d and %d (the echo of each)", what, st.PacketsSent, st.BytesSent, received, received*160)
	}
	if st.JitterMS < 0 || st.JitterMS >= 5 {
		t.Errorf("%s: jitter_ms %.3f, want >= 0 and < 5 for packets paced at 20 ms on loopback", what, st.JitterMS)
	}
	if ts, err := time.Parse(time.RFC3339Nano, st.LastReceived); err != nil || time.Since(ts) > time.Minute || time.Since(ts) < 0 {
		t.Errorf("%s: last_received %q, want the recent time of the last packet (RFC 3339)", what, st.LastReceived)
	}
}
