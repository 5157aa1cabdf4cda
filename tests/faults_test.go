package tests

// Faults: SIP over a lossy network (every operation must converge through
// retransmissions, and nothing may happen twice), and a peer that vanishes
// without a BYE while the call is held (uad must end the call by itself).

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// A lossy UDP wire between two SIP endpoints.

// lossyWire stands between uad A and uad B. A sends to FaceA (B's stand-in),
// B to FaceB (A's stand-in); each datagram is forwarded to the real endpoint
// from the other face, or dropped with probability loss. Each direction has
// its own random source, seeded, so a run can be replayed
// (UAD_FAULTS_SEED); UAD_WIRE_DUMP=1 logs every datagram's fate even when
// the test passes. With A's sip.advertise at FaceB and B's at FaceA, every
// SIP message of the call (requests, responses, ACKs, either way) crosses
// the wire; RTP does not.
type lossyWire struct {
	t            testing.TB
	faceA, faceB *net.UDPConn
	loss         float64
	seed         uint64

	mu   sync.Mutex
	a, b *net.UDPAddr
	dirs [2]*wireDir // 0: A->B, 1: B->A
	wg   sync.WaitGroup
}

type wireDir struct {
	name            string
	rng             *rand.Rand
	passed, dropped int
	log             []string // one line per datagram: verdict and first line
}

// faultsSeed is the loss pattern's seed: UAD_FAULTS_SEED, or a fixed one.
func faultsSeed(t testing.TB) uint64 {
	if s := os.Getenv("UAD_FAULTS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("UAD_FAULTS_SEED=%q: %v", s, err)
		}
		return v
	}
	return 20261125
}

// newLossyWire binds the two faces; connect starts forwarding.
func newLossyWire(t testing.TB, loss float64, seed uint64) *lossyWire {
	t.Helper()
	w := &lossyWire{t: t, faceA: listenLoopback(t, freePort(t), "wire"), faceB: listenLoopback(t, freePort(t), "wire"), loss: loss, seed: seed}
	w.dirs[0] = &wireDir{name: "A->B", rng: rand.New(rand.NewPCG(seed, 1))}
	w.dirs[1] = &wireDir{name: "B->A", rng: rand.New(rand.NewPCG(seed, 2))}
	t.Cleanup(func() {
		w.faceA.Close()
		w.faceB.Close()
		w.wg.Wait()
		if t.Failed() || os.Getenv("UAD_WIRE_DUMP") != "" {
			t.Logf("---- lossy wire (seed %d, loss %.0f%%) ----\n%s---- end of lossy wire ----", w.seed, w.loss*100, w.Log())
		}
	})
	return w
}

// FaceA is where A sends (it stands for B); FaceB where B sends.
func (w *lossyWire) FaceA() string { return w.faceA.LocalAddr().String() }
func (w *lossyWire) FaceB() string { return w.faceB.LocalAddr().String() }

// connect starts forwarding between the real endpoints a and b.
func (w *lossyWire) connect(a, b string) {
	w.mu.Lock()
	w.a, w.b = mustUDPAddr(w.t, a), mustUDPAddr(w.t, b)
	w.mu.Unlock()
	w.wg.Add(2)
	go w.forward(w.faceA, w.faceB, w.b, w.dirs[0])
	go w.forward(w.faceB, w.faceA, w.a, w.dirs[1])
}

func (w *lossyWire) forward(in, out *net.UDPConn, to *net.UDPAddr, d *wireDir) {
	defer w.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, _, err := in.ReadFromUDP(buf)
		if err != nil {
			if strings.Contains(err.Error(), "use of closed") {
				return
			}
			continue
		}
		m := parseSIPMessage(string(buf[:n]))
		w.mu.Lock()
		drop := d.rng.Float64() < w.loss
		verdict := "pass"
		if drop {
			d.dropped++
			verdict = "DROP"
		} else {
			d.passed++
		}
		d.log = append(d.log, fmt.Sprintf("%s %s %s %-40.40s CSeq %s", time.Now().Format("15:04:05.000"), d.name, verdict, m.Start, m.Header("CSeq")))
		w.mu.Unlock()
		if !drop {
			_, _ = out.WriteToUDP(buf[:n], to)
		}
	}
}

// Counts returns what passed and was dropped, per direction (A->B, B->A).
func (w *lossyWire) Counts() (passed, dropped [2]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, d := range w.dirs {
		passed[i], dropped[i] = d.passed, d.dropped
	}
	return
}

// DroppedOf counts the dropped messages whose line contains substr, both ways.
func (w *lossyWire) DroppedOf(substr string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, d := range w.dirs {
		for _, l := range d.log {
			if strings.Contains(l, " DROP ") && strings.Contains(l, substr) {
				n++
			}
		}
	}
	return n
}

// Log is every datagram's line, both directions, in time order.
func (w *lossyWire) Log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := append(append([]string(nil), w.dirs[0].log...), w.dirs[1].log...)
	// Lines start with the time: a string sort is a time sort within a day.
	sort.Strings(all)
	return strings.Join(all, "\n") + "\n"
}

// countEvents counts the events of a call of the given type seen so far.
func countEvents(es *EventStream, id, typ string) int {
	return len(filter(es.All(), ofType(typ, id)))
}

// ---------------------------------------------------------------------------
// The tests.

// uad A calls uad B across a wire that loses 30% of the SIP datagrams each
// way; A holds and resumes five times. Every hold and resume succeeds
// (retransmissions of INVITE, 2xx and ACK get through), each is reported
// exactly once on both sides (retransmitted re-INVITEs are not new offers),
// and the call stays up until A hangs up.
func TestFaultsLossySIP(t *testing.T) {
	t.Parallel()
	const (
		loss   = 0.30
		cycles = 5
		// One operation over the lossy wire: with 30% loss an INVITE needs
		// a few of its retransmissions (0.5, 1, 2, 4 s ...); 64*T1 = 32 s
		// is uad's own limit.
		opTimeout = 35 * time.Second
	)
	seed := faultsSeed(t)
	w := newLossyWire(t, loss, seed)
	b := startUAD(t, UADOptions{Name: "B", Config: map[string]any{"sip.advertise": w.FaceA()}})
	a := startUAD(t, UADOptions{Name: "A", Media: "tone", Config: map[string]any{"sip.advertise": w.FaceB()}})
	w.connect(a.SIPAddr(), b.SIPAddr())
	t.Logf("lossy wire: seed %d (UAD_FAULTS_SEED replays it), %.0f%% loss each way; A %s <-> [%s | %s] <-> B %s",
		seed, loss*100, a.SIPAddr(), w.FaceA(), w.FaceB(), b.SIPAddr())
	evA, evB := a.Events(), b.Events()

	idA := a.PlaceCall("sip:b@"+w.FaceA(), map[string]any{"media": "tone"}).ID
	idB := evB.WaitType(t, "call.incoming", "", opTimeout).CallID()
	evA.WaitType(t, "call.connected", idA, opTimeout)
	evB.WaitType(t, "call.connected", idB, opTimeout)
	live := callWant{State: "live", Dir: "sendrecv"}

	for i := 1; i <= cycles; i++ {
		start := time.Now()
		st, c, e := holdRequest(t, a, idA, true)
		if st != http.StatusOK {
			t.Fatalf("cycle %d: hold over the lossy wire = %d %+v, want 200", i, st, e)
		}
		checkCallIs(t, fmt.Sprintf("cycle %d: A's hold response", i), c, callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
		evA.WaitType(t, "hold.success", idA, opTimeout)
		evB.WaitType(t, "held", idB, opTimeout)
		waitCallIs(t, b, idB, callWant{State: "live", RemoteHold: true, Dir: "recvonly"}, opTimeout)
		held := time.Since(start)

		start = time.Now()
		st, c, e = holdRequest(t, a, idA, false)
		if st != http.StatusOK {
			t.Fatalf("cycle %d: unhold over the lossy wire = %d %+v, want 200", i, st, e)
		}
		checkCallIs(t, fmt.Sprintf("cycle %d: A's unhold response", i), c, live)
		evA.WaitType(t, "unhold.success", idA, opTimeout)
		evB.WaitType(t, "resumed", idB, opTimeout)
		waitCallIs(t, b, idB, live, opTimeout)
		t.Logf("cycle %d: hold took %v, resume %v", i, held.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}

	// Still up on both sides; every operation reported exactly once.
	checkCallIs(t, "A after the cycles", a.Call(idA), live)
	checkCallIs(t, "B after the cycles", b.Call(idB), live)
	for _, es := range []*EventStream{evA, evB} {
		if es.HasType("call.ended", "") {
			t.Errorf("uad %s: the call ended during the hold cycles", es.u.Name)
		}
	}
	for _, want := range []struct {
		typ string
		n   int
	}{{"hold.success", cycles}, {"unhold.success", cycles}, {"hold.failed", 0}, {"unhold.failed", 0}} {
		if n := countEvents(evA, idA, want.typ); n != want.n {
			t.Errorf("A: %d %s events, want %d", n, want.typ, want.n)
		}
	}
	if n := countEvents(evB, idB, "held"); n != cycles {
		t.Errorf("B: %d held events, want %d (a retransmitted re-INVITE is not a new hold)", n, cycles)
	}
	if n := countEvents(evB, idB, "resumed"); n != cycles {
		t.Errorf("B: %d resumed events, want %d", n, cycles)
	}

	// The wire did lose messages both ways, among them re-INVITEs, their
	// 2xx or ACKs: the operations above really went through retransmission.
	passed, dropped := w.Counts()
	t.Logf("wire: A->B %d passed, %d dropped; B->A %d passed, %d dropped; dropped INVITEs %d, 200s %d, ACKs %d",
		passed[0], dropped[0], passed[1], dropped[1], w.DroppedOf("INVITE sip:"), w.DroppedOf("SIP/2.0 200"), w.DroppedOf("ACK sip:"))
	if dropped[0] == 0 || dropped[1] == 0 {
		t.Errorf("the wire dropped %v datagrams (A->B, B->A): the test did not exercise loss", dropped)
	}

	// The BYE crosses the wire too.
	a.Hangup(idA)
	evA.WaitType(t, "call.ended", idA, opTimeout)
	if e := evB.WaitType(t, "call.ended", idB, opTimeout); e.Reason != "remote" {
		t.Errorf("B: call.ended reason %q, want remote (A's BYE)", e.Reason)
	}
}

// heldCall starts B (bOpts) and A (aOpts), has A call B with calls.media
// media, and A (aHolds) or B hold the call; it returns once both sides
// reported the hold.
func heldCall(t *testing.T, aOpts, bOpts UADOptions, media string, aHolds bool) (a, b callSide) {
	t.Helper()
	b.name, b.u = "B", startUAD(t, bOpts)
	a.name, a.u = "A", startUAD(t, aOpts)
	a.ev, b.ev = a.u.Events(), b.u.Events()
	a.id = a.u.PlaceCall(b.u.SIPURI("b"), map[string]any{"media": media}).ID
	b.id = waitBothConnected(t, a.ev, a.id, b.ev)
	holder, held := a, b
	if !aHolds {
		holder, held = b, a
	}
	mustHold(t, holder.u, holder.id)
	holder.ev.WaitType(t, "hold.success", holder.id, sigTimeout)
	held.ev.WaitType(t, "held", held.id, sigTimeout)
	return a, b
}

// The peer vanishes (SIGKILL: no BYE, no RTP, no RTCP) while the call is
// held, and uad must end the call by itself through media.rtp_hold_timeout.
func TestFaultsPeerVanishesMidHold(t *testing.T) {
	t.Parallel()
	const (
		holdTimeout = 3 * time.Second
		rtpTimeout  = 20 * time.Second
		// The watchdog checks every max(timeout/4, 250 ms); the call ends
		// within holdTimeout of the last RTP plus one check.
		slack = 2 * time.Second
	)
	cfg := map[string]any{"media.rtp_hold_timeout": holdTimeout.String(), "media.rtp_timeout": rtpTimeout.String()}

	// A holds B (A sendonly, B recvonly) and B vanishes: A ends the call
	// with reason timeout. (Here uad cannot tell a vanished peer from a
	// silent one: a recvonly peer sends no RTP and RTCP does not count, so
	// rtp_hold_timeout caps how long a held call may stay silent; the
	// subtest checks that the call does not outlive it without a BYE.)
	t.Run("while holding", func(t *testing.T) {
		t.Parallel()
		a, b := heldCall(t, UADOptions{Name: "A", Media: "tone", Config: cfg}, UADOptions{Name: "B"}, "tone", true)
		evA, id := a.ev, a.id

		b.u.Kill(t)
		killed := time.Now()
		e := evA.WaitType(t, "call.ended", id, holdTimeout+slack)
		t.Logf("A ended the call %v after B vanished: reason %s", time.Since(killed).Round(time.Millisecond), e.Reason)
		if e.Reason != "timeout" {
			t.Errorf("A: call.ended reason %q, want timeout (no BYE came; rtp_hold_timeout ended it)", e.Reason)
		}
		if c := a.u.Call(id); c.State != "ended" {
			t.Errorf("A: call is %s after call.ended", c.State)
		}
	})

	// B holds A (B sendonly: A gets B's hold tone, recvonly). While B is
	// there, its hold tone keeps A's watchdog quiet; when B vanishes the
	// tone stops, and A must end the call within rtp_hold_timeout ("the
	// same while the call is held either way"), not wait for rtp_timeout.
	t.Run("while held", func(t *testing.T) {
		t.Parallel()
		a, b := heldCall(t, UADOptions{Name: "A", Config: cfg}, UADOptions{Name: "B", Media: "tone"}, "echo", false)
		evA, id := a.ev, a.id
		heldAt := time.Now()

		// B is alive and sends its hold tone: A keeps the call for longer
		// than rtp_hold_timeout (a measurement window, not a wait).
		window := holdTimeout + slack
		if poll(window, 100*time.Millisecond, func() bool {
			return evA.HasType("call.ended", "")
		}) {
			t.Fatalf("A ended the call %v after B held it, while B was alive and sending its hold tone",
				time.Since(heldAt).Round(time.Millisecond))
		}
		checkCallIs(t, "A held by a live B", a.u.Call(id), callWant{State: "live", RemoteHold: true, Dir: "recvonly"})

		b.u.Kill(t)
		killed := time.Now()
		ended := poll(holdTimeout+slack, 50*time.Millisecond, func() bool {
			return evA.HasType("call.ended", id)
		})
		if !ended {
			c := a.u.Call(id)
			t.Fatalf("A: call still %s %v after the peer holding it vanished; want it ended with reason timeout within rtp_hold_timeout (%v) + %v: the watchdog waits for rtp_timeout (%v) while held by the peer",
				c.State, time.Since(killed).Round(time.Millisecond), holdTimeout, slack, rtpTimeout)
		}
		e := evA.WaitType(t, "call.ended", id, time.Second)
		t.Logf("A ended the call %v after B vanished: reason %s", time.Since(killed).Round(time.Millisecond), e.Reason)
		if e.Reason != "timeout" {
			t.Errorf("A: call.ended reason %q, want timeout", e.Reason)
		}
	})
}
