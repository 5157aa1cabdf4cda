package tests

// Floods: OPTIONS from tens of thousands of source addresses over UDP, and
// idle and trickling connections over TCP, at a uad holding a call. uad's
// memory must stay within a bound, the held call must stay held and resume,
// a new call must connect during the flood, and the connection limits must
// refuse and close what they should. TestFloodShort runs in the suite;
// `bash tests/load/flood.sh` runs TestFloodLong (100,000 sources,
// thousands of connections) and prints its figures.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// floodParams size one flood run.
type floodParams struct {
	sources     int           // OPTIONS, each from an address and port of its own
	within      time.Duration // about how long sending them takes
	maxGrowth   int64         // bytes uad's peak resident memory may grow by during the UDP flood
	rateSources int           // sip.rate_sources: the sources whose rate uad tracks at most

	// TCP: idleSources source addresses open idlePerSource connections each
	// and send nothing; slow connections trickle a request that never ends.
	idleSources, idlePerSource int
	slow                       int
	config                     map[string]any // uad's limits
}

func TestFloodShort(t *testing.T) {
	t.Parallel()
	runFlood(t, floodParams{
		sources:     20000,
		within:      time.Second,
		maxGrowth:   32 << 20,
		rateSources: 5000,
		// Two sources open 7 connections each, 5 of which stay open; then
		// more sources fill the 12 in all.
		idleSources: 2, idlePerSource: 7,
		slow: 1,
		config: map[string]any{
			"sip.tcp_max_connections": 12,
			"sip.tcp_max_per_source":  5,
			"sip.tcp_message_timeout": "1s",
		},
	})
}

// TestFloodLong is what tests/load/flood.sh runs: 100,000 sources in about
// 3 s; then 6 sources opening 500 connections each (128 per source stay
// open), then more sources filling uad's 1024, and 100 trickling clients,
// against uad's default limits (but a 3 s message timeout, to keep it
// short).
func TestFloodLong(t *testing.T) {
	if os.Getenv("FLOOD_LONG") == "" {
		t.Skip("FLOOD_LONG is not set: bash tests/load/flood.sh runs it")
	}
	sources, _ := strconv.Atoi(os.Getenv("FLOOD_SOURCES"))
	if sources <= 0 {
		sources = 100000
	}
	runFlood(t, floodParams{
		sources:     sources,
		within:      3 * time.Second,
		maxGrowth:   64 << 20,
		rateSources: 65536,
		idleSources: 6, idlePerSource: 500,
		slow:   100,
		config: map[string]any{"sip.tcp_message_timeout": "3s"},
	})
}

func runFlood(t *testing.T, p floodParams) {
	requirePeer(t, "sipp")
	cfg := map[string]any{
		"log.level":        "info", // a debug trace of every datagram would be the test's cost
		"sip.rate_limit":   20,     // so that every source has a bucket: their number must stay bounded
		"sip.rate_burst":   40,
		"sip.rate_sources": p.rateSources,
	}
	for k, v := range p.config {
		cfg[k] = v
	}
	a := startUAD(t, UADOptions{Name: "A", Config: cfg})
	b := startUAD(t, UADOptions{Name: "B", Config: map[string]any{"log.level": "info"}})
	evA, evB := a.Events(), b.Events()

	// A call held by A for the whole flood.
	held := a.PlaceCall(b.SIPURI("b"), nil)
	waitBothConnected(t, evA, held.ID, evB)
	mustHold(t, a, held.ID)
	waitCallIs(t, a, held.ID, callWant{State: "hold", LocalHold: true}, holdTimeout)

	before := sampleProc(t, a)
	hwm0 := procPeak(t, a)
	start := time.Now()
	var flood floodResult
	done := make(chan struct{})
	go func() { defer close(done); flood = optionsFlood(t, a, p.sources, p.within) }()

	// A new call while the flood runs.
	s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-i", "127.0.0.1", a.SIPAddr())
	id := evA.WaitType(t, "call.connected", "", sigTimeout).CallID()
	connectedAfter := time.Since(start)
	<-done
	sent := time.Since(start)
	drained := waitSocketDrained(t, a)
	after := sampleProc(t, a)
	growth := procPeak(t, a) - before.RSS
	t.Logf("UDP flood: %d OPTIONS from %d sources sent in %v (%d send errors), uad's socket drained %v later; "+
		"%d of %d sampled sources answered", flood.sent, p.sources, sent.Round(time.Millisecond), flood.errors,
		drained.Round(time.Millisecond), flood.answered, flood.sampled)
	t.Logf("uad A: before %v; after %v; peak RSS growth %.1f MiB (peak before %.1f MiB)", before, after,
		float64(growth)/(1<<20), float64(hwm0)/(1<<20))
	t.Logf("a new call connected %v after the flood began", connectedAfter.Round(time.Millisecond))

	if flood.sent < p.sources*9/10 {
		t.Errorf("only %d of %d OPTIONS went out", flood.sent, p.sources)
	}
	if flood.answered == 0 {
		t.Errorf("none of %d sampled sources got an answer", flood.sampled)
	}
	if growth > p.maxGrowth {
		t.Errorf("%d sources grew uad's resident memory by %.1f MiB at its peak, limit %d MiB",
			p.sources, float64(growth)/(1<<20), p.maxGrowth>>20)
	}
	if after.Goroutines >= 0 && after.Goroutines > before.Goroutines+20 {
		t.Errorf("goroutines went from %d to %d: a flood of OPTIONS left some behind", before.Goroutines, after.Goroutines)
	}
	checkSourcesBounded(t, a, p)
	if c := a.Call(held.ID); c.State != "hold" || !c.LocalHold {
		t.Errorf("the held call after the flood: %s, want still held", describeCall(c))
	}
	mustUnhold(t, a, held.ID)
	waitCallIs(t, a, held.ID, callWant{State: "live"}, holdTimeout)
	hangUp(t, a, evA, id, s)

	floodTCP(t, a, evA, p)
}

// checkSourcesBounded reads uad's warning that the rate limit dropped the
// sources idle longest, which says how many it tracked then: no more than
// sip.rate_sources.
func checkSourcesBounded(t *testing.T, u *UAD, p floodParams) {
	t.Helper()
	if p.sources <= p.rateSources {
		return
	}
	var warning struct {
		Sources int    `json:"sources"`
		Evicted int    `json:"evicted"`
		Message string `json:"message"`
	}
	for _, line := range strings.Split(u.Log(), "\n") {
		if strings.Contains(line, "more sources than sip.rate_sources") {
			if err := json.Unmarshal([]byte(line), &warning); err != nil {
				t.Fatalf("uad %s's log line %q: %v", u.Name, line, err)
			}
			break
		}
	}
	t.Logf("rate limit: %q with %d sources tracked, %d evicted", warning.Message, warning.Sources, warning.Evicted)
	if warning.Message == "" {
		t.Errorf("%d sources, sip.rate_sources %d: uad never said it dropped sources", p.sources, p.rateSources)
	} else if warning.Sources > p.rateSources || warning.Sources == 0 {
		t.Errorf("uad tracked %d sources, sip.rate_sources %d", warning.Sources, p.rateSources)
	}
}

type floodResult struct {
	sent, errors      int
	sampled, answered int
}

// optionsFlood sends n OPTIONS to u over UDP, the i-th from a new socket
// on 127.B.C.D (the i-th address from 127.100.0.0) with a port of its own,
// paced to take about within. One socket in 200 waits for its answer.
func optionsFlood(t *testing.T, u *UAD, n int, within time.Duration) floodResult {
	to := mustUDPAddr(t, u.SIPAddr())
	const workers, sampleEvery = 16, 200
	var sent, errs atomic.Int64
	var mu sync.Mutex
	var samples []*net.UDPConn
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if ahead := time.Duration(int64(within)*int64(i)/int64(n)) - time.Since(start); ahead > time.Millisecond {
					time.Sleep(ahead)
				}
				ip := net.IPv4(127, byte(100+i>>16), byte(i>>8), byte(i))
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
				if err != nil {
					errs.Add(1)
					continue
				}
				if _, err := c.WriteToUDP(floodOptions(c.LocalAddr().String(), u.SIPAddr(), i), to); err != nil {
					errs.Add(1)
				} else {
					sent.Add(1)
				}
				if i%sampleEvery == 0 {
					mu.Lock()
					samples = append(samples, c)
					mu.Unlock()
					continue
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	r := floodResult{sent: int(sent.Load()), errors: int(errs.Load()), sampled: len(samples)}
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 4096)
	for _, c := range samples {
		_ = c.SetReadDeadline(deadline)
		if k, _, err := c.ReadFromUDP(buf); err == nil && strings.HasPrefix(string(buf[:k]), "SIP/2.0 200 ") {
			r.answered++
		}
		c.Close()
	}
	return r
}

func floodOptions(laddr, raddr string, i int) []byte {
	return []byte(fmt.Sprintf("OPTIONS sip:uad@%[2]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[1]s;branch=z9hG4bK-flood-%[3]d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:scan@%[1]s>;tag=f%[3]d\r\n"+
		"To: <sip:uad@%[2]s>\r\n"+
		"Call-ID: flood-%[3]d-%[4]d@scanner\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n", laddr, raddr, i, os.Getpid()))
}

// procPeak is u's peak resident memory so far (VmHWM), in bytes.
func procPeak(t *testing.T, u *UAD) int64 {
	t.Helper()
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(u.PID()), "status"))
	if err != nil {
		t.Fatalf("uad %s: %v", u.Name, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("uad %s: no VmHWM in /proc/PID/status", u.Name)
	return 0
}

// waitSocketDrained waits until u's UDP socket has nothing left to read
// (its receive queue in /proc/net/udp) and returns how long that took.
func waitSocketDrained(t *testing.T, u *UAD) time.Duration {
	t.Helper()
	start := time.Now()
	local := fmt.Sprintf("0100007F:%04X", u.SIPPort)
	if !poll(30*time.Second, 5*time.Millisecond, func() bool {
		data, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return true // no procfs: nothing to wait on
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 4 && f[1] == local {
				_, rx, _ := strings.Cut(f[4], ":")
				return strings.Trim(rx, "0") == ""
			}
		}
		return true
	}) {
		t.Errorf("uad %s's UDP socket still had datagrams queued 30 s after the flood", u.Name)
	}
	return time.Since(start)
}

// floodTCP holds idle connections from a few sources, beyond the
// per-source limit, while a call over TCP connects; then fills the total
// limit from more sources; then lets clients trickle requests that never
// end, which uad must cut off; and a call over TCP connects at the end.
func floodTCP(t *testing.T, u *UAD, ev *EventStream, p floodParams) {
	perSource := intKey(p.config, "sip.tcp_max_per_source", 128)
	total := intKey(p.config, "sip.tcp_max_connections", 1024)
	msgTimeout, _ := time.ParseDuration(fmt.Sprint(p.config["sip.tcp_message_timeout"]))
	before := sampleProc(t, u)
	var conns []net.Conn
	defer func() { closeAll(conns) }()

	// Idle connections from a few sources, more than each may open.
	idle := openIdle(t, u, 1, p.idleSources, p.idlePerSource)
	conns = append(conns, idle...)
	attempts := p.idleSources * p.idlePerSource
	waitAccepted(t, u)
	open := countOpen(idle, 200*time.Millisecond)
	want := min(total, p.idleSources*min(perSource, p.idlePerSource))
	held := sampleProc(t, u)
	t.Logf("TCP: %d idle connections from %d sources: %d open, %d refused (%d per source); uad A: %v (RSS %+.1f MiB)",
		attempts, p.idleSources, open, attempts-open, perSource, held, float64(held.RSS-before.RSS)/(1<<20))
	if open != want {
		t.Errorf("%d idle connections from %d sources: %d stayed open, want %d (tcp_max_per_source %d)",
			attempts, p.idleSources, open, want, perSource)
	}

	// Meanwhile a call over TCP from another address connects.
	tcpCall(t, u, ev)
	// Its connection and media are gone once uad's descriptors are back.
	if !poll(10*time.Second, 5*time.Millisecond, func() bool { return sampleProc(t, u).FDs <= held.FDs }) {
		t.Fatalf("uad still holds the call's descriptors: %v, before the call %v", sampleProc(t, u), held)
	}

	// More sources, until the total is reached: the rest are refused.
	free := total - open
	extra := (free+perSource-1)/perSource + 1
	more := openIdle(t, u, 1+p.idleSources, extra, perSource)
	conns = append(conns, more...)
	waitAccepted(t, u)
	nowOpen := countOpen(more, 200*time.Millisecond)
	full := sampleProc(t, u)
	t.Logf("TCP: %d more from %d sources: %d open, %d refused (%d in all); uad A: %v (RSS %+.1f MiB)",
		extra*perSource, extra, nowOpen, extra*perSource-nowOpen, total, full, float64(full.RSS-before.RSS)/(1<<20))
	if nowOpen != free {
		t.Errorf("with %d of %d connections open, %d more from fresh sources: %d stayed open, want %d",
			open, total, extra*perSource, nowOpen, free)
	}

	closeAll(conns)
	conns = nil
	// uad frees their slots as it sees them closed: its descriptors show it.
	if !poll(10*time.Second, 5*time.Millisecond, func() bool { return sampleProc(t, u).FDs <= before.FDs }) {
		t.Fatalf("uad kept the connections' descriptors: %v, before %v", sampleProc(t, u), before)
	}

	// Trickling clients: each sends a byte of a request every 100 ms and
	// never ends its headers; uad must cut each off after the message
	// timeout, however long it keeps trickling.
	slowStart := time.Now()
	lasted := slowLoris(t, u, p.slow, 100*time.Millisecond, msgTimeout+5*time.Second)
	closed := 0
	var longest time.Duration
	for _, d := range lasted {
		if d > 0 {
			closed++
			longest = max(longest, d)
		}
	}
	t.Logf("TCP: %d trickling clients, %d cut off, the last after %v (tcp_message_timeout %v)",
		p.slow, closed, longest.Round(time.Millisecond), msgTimeout)
	if closed != p.slow {
		t.Errorf("%d of %d trickling clients were still connected %v after they began", p.slow-closed, p.slow, time.Since(slowStart))
	}
	for _, d := range lasted {
		if d > 0 && d < msgTimeout*8/10 {
			t.Errorf("a trickling client was cut off after %v, before the message timeout %v", d, msgTimeout)
			break
		}
	}
	tcpCall(t, u, ev)

	// The metrics count what the limits did.
	m := u.metrics(t)
	refused := attempts - open + extra*perSource - nowOpen
	if got := m[`uad_sip_tcp_refused_total{limit="max_connections"}`] + m[`uad_sip_tcp_refused_total{limit="max_per_source"}`]; int(got) != refused {
		t.Errorf("uad_sip_tcp_refused_total = %v in all, want %d (the connections refused)", got, refused)
	}
	if got := m[`uad_sip_tcp_closed_total{reason="slow"}`]; int(got) != p.slow {
		t.Errorf(`uad_sip_tcp_closed_total{reason="slow"} = %v, want %d (the trickling clients)`, got, p.slow)
	}
	if got := m[`uad_sip_rate_sources`]; got > float64(p.rateSources) {
		t.Errorf("uad_sip_rate_sources = %v, over sip.rate_sources %d", got, p.rateSources)
	}
	if got := m[`uad_sip_options_stateless_total`]; got < float64(p.sources)/2 {
		t.Errorf("uad_sip_options_stateless_total = %v after %d OPTIONS", got, p.sources)
	}
}

// tcpCall has sipp call u over TCP from 127.0.0.1; the call must connect.
func tcpCall(t *testing.T, u *UAD, ev *EventStream) {
	t.Helper()
	s := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-t", "t1", "-i", "127.0.0.1", u.SIPAddr())
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()
	hangUp(t, u, ev, id, s)
}

// openIdle opens perSource connections to u from each of sources addresses
// 127.50.0.N (N from first), concurrently; those refused before connect
// returned are left out.
func openIdle(t *testing.T, u *UAD, first, sources, perSource int) []net.Conn {
	to := mustTCPAddr(t, u.SIPAddr())
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	for s := range sources {
		src := &net.TCPAddr{IP: net.IPv4(127, 50, byte((first+s)>>8), byte(first+s))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perSource {
				c, err := net.DialTCP("tcp4", src, to)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

func intKey(m map[string]any, k string, def int) int {
	if v, ok := m[k].(int); ok {
		return v
	}
	return def
}

func mustTCPAddr(t testing.TB, s string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp4", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// waitAccepted waits until u has taken every connection waiting in its TCP
// listener's accept queue (/proc/net/tcp): those it refuses are reset as
// it takes them.
func waitAccepted(t *testing.T, u *UAD) {
	t.Helper()
	local := fmt.Sprintf("0100007F:%04X", u.SIPPort)
	if !poll(10*time.Second, 2*time.Millisecond, func() bool {
		data, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return true // no procfs: the window alone decides
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 4 && f[1] == local && f[3] == "0A" { // LISTEN
				_, rx, _ := strings.Cut(f[4], ":")
				return strings.Trim(rx, "0") == ""
			}
		}
		return true
	}) {
		t.Errorf("uad %s left connections in its accept queue for 10 s", u.Name)
	}
}

// countOpen returns how many of conns the server has not closed within
// window.
func countOpen(conns []net.Conn, window time.Duration) int {
	var open atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(window)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(deadline)
			var buf [1]byte
			_, err := c.Read(buf[:])
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(open.Load())
}

// slowLoris opens n connections from 127.51.0.1 and sends a request's
// bytes one every interval, never the blank line ending its headers. It
// returns how long each lasted until uad closed it (0: still open after
// limit).
func slowLoris(t *testing.T, u *UAD, n int, interval, limit time.Duration) []time.Duration {
	lasted := make([]time.Duration, n)
	var wg sync.WaitGroup
	to := mustTCPAddr(t, u.SIPAddr())
	for i := range n {
		c, err := net.DialTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 51, 0, 1)}, to)
		if err != nil {
			t.Errorf("trickling client %d: %v", i, err)
			continue
		}
		req := string(floodOptions(c.LocalAddr().String(), u.SIPAddr(), i))
		req = strings.Replace(req, "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
		req = req[:strings.Index(req, "\r\n\r\n")]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			start := time.Now()
			closed := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, bufio.NewReader(c))
				close(closed)
			}()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for j := 0; time.Since(start) < limit; j++ {
				select {
				case <-closed:
					lasted[i] = time.Since(start)
					return
				case <-tick.C:
					if _, err := c.Write([]byte{req[j%len(req)]}); err != nil { // closed under the write
						lasted[i] = time.Since(start)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return lasted
}
