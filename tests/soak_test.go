package tests

// Soak: calls between two uad instances are held and resumed without pause
// for a while; uad's goroutines, file descriptors and resident memory must
// not grow, and once the calls are hung up they must return to what the
// idle daemon had. TestSoakShort runs it for 20 s in the suite;
// `bash tests/load/soak.sh` runs TestSoakLong (SOAK_DURATION, default 10m).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procSample is what one uad process uses at one moment.
type procSample struct {
	Goroutines int   // uad_go_goroutines from /metrics; -1 when not exported
	Threads    int   // /proc/PID/status Threads
	FDs        int   // entries of /proc/PID/fd
	RSS        int64 // /proc/PID/status VmRSS, bytes
	HeapInuse  int64 // uad_go_memstats_heap_inuse_bytes; -1 when not exported
}

func (s procSample) String() string {
	return fmt.Sprintf("goroutines %d, threads %d, fds %d, rss %.1f MiB, heap %.1f MiB",
		s.Goroutines, s.Threads, s.FDs, float64(s.RSS)/(1<<20), float64(s.HeapInuse)/(1<<20))
}

// scrapeMetrics reads GET /metrics into series -> value ("name" or
// "name{labels}").
func scrapeMetrics(u *UAD) (map[string]float64, error) {
	st, body, err := u.do(http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics = %d", st)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// sampleProc measures u's process.
func sampleProc(t testing.TB, u *UAD) procSample {
	t.Helper()
	s := procSample{Goroutines: -1, HeapInuse: -1}
	pid := strconv.Itoa(u.PID())
	fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
	if err != nil {
		t.Fatalf("uad %s: %v", u.Name, err)
	}
	s.FDs = len(fds)
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("uad %s: %v", u.Name, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch {
		case k == "VmRSS" && len(f) == 2 && f[1] == "kB":
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			s.RSS = kb << 10
		case k == "Threads" && len(f) == 1:
			s.Threads, _ = strconv.Atoi(f[0])
		}
	}
	if m, err := scrapeMetrics(u); err == nil {
		for _, name := range []string{"uad_go_goroutines", "go_goroutines"} {
			if v, ok := m[name]; ok {
				s.Goroutines = int(v)
				break
			}
		}
		if v, ok := m["uad_go_memstats_heap_inuse_bytes"]; ok {
			s.HeapInuse = int64(v)
		}
	}
	return s
}

// soakLimits are how much a process may grow between two samples.
type soakLimits struct {
	Goroutines int     // absolute
	FDs        int     // absolute
	RSSRatio   float64 // relative: end <= start * (1 + RSSRatio)
}

var defaultSoakLimits = soakLimits{Goroutines: 10, FDs: 10, RSSRatio: 0.20}

// checkGrowth fails the test when end grew beyond the limits over start.
func checkGrowth(t testing.TB, what string, start, end procSample, lim soakLimits, checkRSS bool) {
	t.Helper()
	if start.Goroutines >= 0 && end.Goroutines > start.Goroutines+lim.Goroutines {
		t.Errorf("%s: goroutines grew from %d to %d (limit +%d)", what, start.Goroutines, end.Goroutines, lim.Goroutines)
	}
	if start.Goroutines < 0 && end.Threads > start.Threads+lim.Goroutines {
		t.Errorf("%s: threads grew from %d to %d (limit +%d; no goroutine metric)", what, start.Threads, end.Threads, lim.Goroutines)
	}
	if end.FDs > start.FDs+lim.FDs {
		t.Errorf("%s: file descriptors grew from %d to %d (limit +%d)", what, start.FDs, end.FDs, lim.FDs)
	}
	if checkRSS && float64(end.RSS) > float64(start.RSS)*(1+lim.RSSRatio) {
		t.Errorf("%s: RSS grew from %.1f to %.1f MiB (limit +%.0f%%)", what,
			float64(start.RSS)/(1<<20), float64(end.RSS)/(1<<20), lim.RSSRatio*100)
	}
}

// soakCycle holds and resumes one call; it returns a description of what
// went wrong, or "".
func soakCycle(u *UAD, id string) string {
	for _, step := range []struct {
		method, want string
	}{{http.MethodPost, "hold"}, {http.MethodDelete, "live"}} {
		st, body, err := u.do(step.method, "/v1/calls/"+id+"/hold", nil)
		if err != nil {
			return fmt.Sprintf("%s %s/hold: %v", step.method, id, err)
		}
		var c CallInfo
		if st != http.StatusOK || json.Unmarshal(body, &c) != nil || c.State != step.want {
			return fmt.Sprintf("%s %s/hold = %d %s, want 200 with state %s", step.method, id, st, body, step.want)
		}
	}
	return ""
}

// soakParams shape one soak run.
type soakParams struct {
	Duration time.Duration // the measured load
	Calls    int
	Pace     time.Duration // at most one hold+resume cycle per call per Pace
	// T1 is sip.t1 of both daemons. A transaction lives on for 64*T1 after
	// its final response (RFC 6026: the client's Accepted state absorbs 2xx
	// retransmissions), so that long after the load stops every transaction
	// is gone: the samples are taken then.
	T1 time.Duration
}

// soakRun drives the load and samples the daemons.
type soakRun struct {
	t    *testing.T
	p    soakParams
	a, b *UAD
	ids  []string

	mu       sync.Mutex
	cycles   int
	failures []string
	lastOp   time.Time
	peak     map[string]procSample
}

// sample measures both daemons and remembers the peaks.
func (r *soakRun) sample() map[string]procSample {
	s := map[string]procSample{"A": sampleProc(r.t, r.a), "B": sampleProc(r.t, r.b)}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, x := range s {
		p := r.peak[name]
		p.Goroutines, p.Threads, p.FDs = max(p.Goroutines, x.Goroutines), max(p.Threads, x.Threads), max(p.FDs, x.FDs)
		p.RSS, p.HeapInuse = max(p.RSS, x.RSS), max(p.HeapInuse, x.HeapInuse)
		r.peak[name] = p
	}
	return s
}

// load holds and resumes every call continuously for d.
func (r *soakRun) load(d time.Duration, progress bool) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for _, id := range r.ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(r.p.Pace)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				msg := soakCycle(r.a, id)
				r.mu.Lock()
				r.lastOp = time.Now()
				if msg != "" {
					r.failures = append(r.failures, time.Now().Format("15:04:05.000 ")+msg)
				} else {
					r.cycles++
				}
				stop := len(r.failures) > 20
				r.mu.Unlock()
				if stop {
					return
				}
				<-tick.C
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// Samples every second for the peaks; a progress line every minute.
	every := time.NewTicker(time.Second)
	defer every.Stop()
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case <-every.C:
			s := r.sample()
			if progress && time.Since(last) >= time.Minute {
				last = time.Now()
				r.mu.Lock()
				c, f := r.cycles, len(r.failures)
				r.mu.Unlock()
				r.t.Logf("%s: %d cycles, %d failures; A %s | B %s", time.Now().Format("15:04:05"), c, f, s["A"], s["B"])
			}
		}
	}
}

// quiesce waits until every transaction of the load has ended (64*T1, and
// T4 = 5 s for non-INVITE ones, after the last request) and the goroutine
// counts hold still, then returns a sample.
func (r *soakRun) quiesce(what string) map[string]procSample {
	r.t.Helper()
	r.mu.Lock()
	lastOp := r.lastOp
	r.mu.Unlock()
	settle := max(64*r.p.T1, 5*time.Second) + 500*time.Millisecond
	var prev, cur map[string]procSample
	if !poll(settle+30*time.Second, 250*time.Millisecond, func() bool {
		prev, cur = cur, r.sample()
		return time.Since(lastOp) >= settle && prev != nil &&
			prev["A"].Goroutines == cur["A"].Goroutines && prev["B"].Goroutines == cur["B"].Goroutines
	}) {
		r.t.Logf("%s: goroutine counts still moving %v after the load stopped: A %s | B %s", what, settle+30*time.Second, cur["A"], cur["B"])
	}
	return cur
}

// runSoak is the soak: A (tone) places calls to B (echo); A holds and
// resumes every call continuously. A warm-up under the same load (two
// transaction lifetimes and at least 15 s, so heaps reach their working
// size; its RSS peak is the RSS baseline) precedes the start sample; start
// and end are sampled with no transaction in flight, so a goroutine or
// descriptor left behind by a hold or resume shows. After the hangup both
// daemons must be back to what they had idle.
func runSoak(t *testing.T, p soakParams) {
	cfg := map[string]any{"log.level": "info", "sip.t1": p.T1.String()}
	b := startUAD(t, UADOptions{Name: "B", Config: cfg})
	a := startUAD(t, UADOptions{Name: "A", Media: "tone", Config: cfg})
	r := &soakRun{t: t, p: p, a: a, b: b, peak: map[string]procSample{}}
	idle := r.sample()

	for i := 0; i < p.Calls; i++ {
		r.ids = append(r.ids, a.PlaceCall(b.SIPURI(fmt.Sprintf("soak%d", i)), map[string]any{"media": "tone"}).ID)
	}
	liveOn := func(u *UAD) bool {
		n := 0
		for _, c := range u.Calls() {
			if c.State == "live" && c.Pending == nil {
				n++
			}
		}
		return n == p.Calls
	}
	if !poll(30*time.Second, 50*time.Millisecond, func() bool { return liveOn(a) && liveOn(b) }) {
		t.Fatalf("%d calls not live on both sides within 30 s", p.Calls)
	}
	t.Logf("soak: %d calls, %v, a hold and a resume per call every %v at most, sip.t1 %v", p.Calls, p.Duration, p.Pace, p.T1)

	// At least two transaction lifetimes, and long enough for the heap to
	// reach its working size under this load.
	warm := max(2*64*p.T1+2*time.Second, 15*time.Second)
	r.load(warm, false)
	start := r.quiesce("start")
	// The memory the warm-up needed is the baseline: RSS does not shrink
	// back at once when the load stops, so the quiet start sample alone
	// depends on when the runtime last returned memory.
	warmPeak := r.peak
	r.peak = map[string]procSample{}
	startCycles := r.cycles
	r.load(p.Duration, true)
	end := r.quiesce("end")
	cycles := r.cycles - startCycles

	t.Logf("idle:  A %s | B %s", idle["A"], idle["B"])
	t.Logf("warm-up peak: A %s | B %s (%v)", warmPeak["A"], warmPeak["B"], warm)
	t.Logf("start: A %s | B %s (no transaction in flight)", start["A"], start["B"])
	t.Logf("soak peak:    A %s | B %s", r.peak["A"], r.peak["B"])
	t.Logf("end:   A %s | B %s (%d cycles, %.0f per second)", end["A"], end["B"], cycles, float64(cycles)/p.Duration.Seconds())

	if len(r.failures) > 0 {
		t.Errorf("%d of %d hold/resume cycles failed; first ones:\n  %s", len(r.failures), r.cycles+len(r.failures),
			strings.Join(r.failures[:min(len(r.failures), 10)], "\n  "))
	}
	if cycles == 0 {
		t.Fatalf("no hold/resume cycle completed")
	}
	// Every call is still up, resumed, on both sides.
	for _, u := range []*UAD{a, b} {
		for _, c := range u.Calls() {
			if c.State != "live" || c.LocalHold || c.RemoteHold || c.Pending != nil {
				t.Errorf("uad %s: after the soak call %s is %s, want live and resumed", u.Name, c.ID, describeCall(c))
			}
		}
	}
	for _, name := range []string{"A", "B"} {
		base := start[name]
		base.RSS = max(base.RSS, warmPeak[name].RSS)
		checkGrowth(t, "uad "+name+" from start to end of the soak", base, end[name], defaultSoakLimits, true)
	}
	if m, err := scrapeMetrics(a); err == nil {
		if v, ok := m[`uad_holds_total{result="success"}`]; ok && int(v) != r.cycles {
			t.Errorf("uad A: uad_holds_total{result=\"success\"} = %v, want %d (one per cycle)", v, r.cycles)
		}
	}

	// Hang up: per-call resources (RTP sockets, goroutines) go away; the
	// daemons get back to what they had idle.
	for _, id := range r.ids {
		a.Hangup(id)
	}
	r.mu.Lock()
	r.lastOp = time.Now()
	r.mu.Unlock()
	after := r.quiesce("after hangup")
	t.Logf("after hangup: A %s | B %s", after["A"], after["B"])
	for _, name := range []string{"A", "B"} {
		checkGrowth(t, "uad "+name+" idle before the calls vs after their hangup", idle[name], after[name], defaultSoakLimits, false)
	}
	for _, u := range []*UAD{a, b} {
		for _, c := range u.Calls() {
			if c.State != "ended" {
				t.Errorf("uad %s: call %s is %s after the hangup", u.Name, c.ID, c.State)
			}
		}
	}
}

// The soak for 20 s, in the suite; sip.t1 50 ms makes a transaction's
// lifetime (64*T1) 3.2 s, so the warm-up and the quiet periods are short.
func TestSoakShort(t *testing.T) {
	t.Parallel()
	runSoak(t, soakParams{Duration: 20 * time.Second, Calls: 20, Pace: 100 * time.Millisecond, T1: 50 * time.Millisecond})
}

// The long soak: `bash tests/load/soak.sh` (SOAK_DURATION, default 10m;
// SOAK_CALLS, default 20; SOAK_PACE, the least time between two cycles of
// one call, default 500ms; sip.t1 at its default, 500 ms). Skipped unless
// SOAK_DURATION is set.
func TestSoakLong(t *testing.T) {
	v := os.Getenv("SOAK_DURATION")
	if v == "" {
		t.Skip("SOAK_DURATION is not set; run bash tests/load/soak.sh")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SOAK_DURATION=%q: want a Go duration such as 10m", v)
	}
	calls := 20
	if s := os.Getenv("SOAK_CALLS"); s != "" {
		if calls, err = strconv.Atoi(s); err != nil || calls < 1 {
			t.Fatalf("SOAK_CALLS=%q: want a positive number", s)
		}
	}
	pace := 500 * time.Millisecond
	if s := os.Getenv("SOAK_PACE"); s != "" {
		if pace, err = time.ParseDuration(s); err != nil || pace <= 0 {
			t.Fatalf("SOAK_PACE=%q: want a Go duration such as 500ms", s)
		}
	}
	runSoak(t, soakParams{Duration: d, Calls: calls, Pace: pace, T1: 500 * time.Millisecond})
}
