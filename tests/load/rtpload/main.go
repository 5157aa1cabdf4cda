// Command rtpload is a media load generator for uad: it sets up N concurrent
// calls against a running uad (auto-answer, echo) with sipgo as the UAC, and
// sends real G.711 RTP on every call at 20 ms, each call from a loopback
// address of its own. From what comes back it measures loss and the jitter
// the path adds, for the whole run; it reads uad's CPU and memory from /proc
// and its own CPU, and reports which side ran out first.
//
//	go run ./tests/load/rtpload -uad 127.0.0.1:5060 -api 127.0.0.1:8089 \
//	    -pid $(pidof uad) -calls 2000 -duration 60s -hold-half
//
// With -hold-half, halfway through the media phase half of the calls are
// held through uad's API (POST /v1/calls/{id}/hold) and every held party
// must then receive the hold tone (440 Hz, found by Goertzel on the decoded
// payload) instead of its echo; the tone's timing is reported (its RTP clock
// against the arrival times, and how late frames came). -hold-all holds
// every call, and a held party stops sending. With -bridge the calls are
// bridged in pairs (POST /v1/bridges): each call then receives what its
// partner sends.
//
// With -echo HOST:PORT there is no SIP: call i sends to HOST:PORT+2i, a bare
// UDP echo server (tests/load/udpecho), so the same load can be measured
// against uad and against the least a Go program can do.
//
// Every payload the generator sends is a 1000 Hz µ-law tone whose first 14
// bytes carry a marker, the sending call's index, a per-call packet counter
// and the send time, so every packet that comes back is attributed (echo or
// bridge partner), its round trip measured, and loss counted end to end
// (packets sent that never came back) as well as on uad's own RTP sequence
// numbers (RFC 3550 A.3). The added jitter is RFC 3550 A.8 with the send
// time as the timestamp: it is the jitter uad and the kernel add.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	uad       string
	api       string
	token     string
	pid       int
	calls     int
	duration  time.Duration
	rate      float64
	inflight  int
	holdHalf  bool
	holdAll   bool
	bridge    bool
	echo      string
	rtpBase   string
	local     string
	sipPort   int
	rtpPorts  string
	senders   int
	holdFreq  float64
	drain     time.Duration
	setupWait time.Duration
	cpuprof   string
}

func main() {
	var o options
	flag.StringVar(&o.uad, "uad", "127.0.0.1:5060", "uad's SIP address (UDP)")
	flag.StringVar(&o.api, "api", "127.0.0.1:8089", "uad's API address (for -hold-half, -bridge)")
	flag.StringVar(&o.token, "token", os.Getenv("UAD_TOKEN"), "API bearer token, if uad wants one")
	flag.IntVar(&o.pid, "pid", 0, "uad's process id, for its CPU and memory (0: not measured)")
	flag.IntVar(&o.calls, "calls", 2000, "concurrent calls to set up")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "media phase, after the last call is up")
	flag.Float64Var(&o.rate, "rate", 200, "call setups started per second")
	flag.IntVar(&o.inflight, "inflight", 200, "most call setups in flight at once")
	flag.BoolVar(&o.holdHalf, "hold-half", false, "halfway through, hold every other call through the API and check the hold tone")
	flag.BoolVar(&o.holdAll, "hold-all", false, "like -hold-half, but hold every call; held parties stop sending")
	flag.BoolVar(&o.bridge, "bridge", false, "bridge the calls in pairs through the API")
	flag.StringVar(&o.echo, "echo", "", "HOST:PORT of a bare UDP echo server instead of uad: no SIP, call i sends to PORT+2i")
	flag.StringVar(&o.rtpBase, "rtp-base", "127.1.0.1", "the first call's RTP address (x.y.z.1 in 127.0.0.0/8); the others count up from it, last octets 1-250")
	flag.StringVar(&o.local, "local", "127.0.0.1", "the generator's IP address")
	flag.IntVar(&o.sipPort, "sip-port", 0, "the generator's SIP port (0: a free one)")
	flag.StringVar(&o.rtpPorts, "rtp-ports", "10000-19999", "ports of the generator's RTP sockets (one per sender, even ports, on every address), outside uad's range")
	flag.IntVar(&o.senders, "senders", 0, "sender shards, each with a socket, a sending and a reading goroutine (0: one per CPU)")
	flag.Float64Var(&o.holdFreq, "hold-freq", 440, "frequency of uad's media.hold_tone")
	flag.DurationVar(&o.drain, "drain", time.Second, "wait for the last packets after sending stops")
	flag.DurationVar(&o.setupWait, "setup-timeout", 15*time.Second, "how long one call setup may take")
	flag.StringVar(&o.cpuprof, "cpuprofile", "", "write the generator's CPU profile of the media phase to this file")
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if o.calls <= 0 || o.rate <= 0 || o.duration <= 0 {
		log.Fatal("-calls, -rate and -duration must be positive")
	}
	if o.holdAll {
		o.holdHalf = true
	}
	if o.echo != "" && (o.bridge || o.holdHalf) {
		log.Fatal("-echo measures echo only: no -bridge, -hold-half or -hold-all")
	}
	if o.bridge && o.calls%2 != 0 {
		o.calls++
		log.Printf("-bridge: calls rounded up to %d (pairs)", o.calls)
	}
	if o.senders <= 0 {
		o.senders = runtime.NumCPU()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

// run is the whole benchmark: setup, media, optional hold, teardown, report.
func run(ctx context.Context, o options) error {
	r := &report{opts: o, cores: onlineCPUs()}
	lo, hi, err := parseRange(o.rtpPorts)
	if err != nil {
		return fmt.Errorf("-rtp-ports: %w", err)
	}
	if (hi-lo+1)/2 < o.senders {
		return fmt.Errorf("-rtp-ports %s has %d even ports for %d senders", o.rtpPorts, (hi-lo+1)/2, o.senders)
	}
	localIP, err := netip.ParseAddr(o.local)
	if err != nil {
		return fmt.Errorf("-local: %w", err)
	}
	base, err := netip.ParseAddr(o.rtpBase)
	if err != nil || !base.Is4() {
		return fmt.Errorf("-rtp-base %q: not an IPv4 address", o.rtpBase)
	}
	var echo netip.AddrPort
	if o.echo != "" {
		if echo, err = netip.ParseAddrPort(o.echo); err != nil || int(echo.Port())+2*(o.calls-1) > 65535 {
			return fmt.Errorf("-echo %q: not HOST:PORT with room for %d ports", o.echo, o.calls)
		}
	}

	var uadProc, self *procWatch
	if o.pid > 0 {
		if uadProc, err = newProcWatch(strconv.Itoa(o.pid)); err != nil {
			return fmt.Errorf("-pid %d: %w", o.pid, err)
		}
		r.rssBefore = uadProc.rss()
	}
	self, _ = newProcWatch("self")
	api := newAPIClient(o.api, o.token)

	m := newMedia(o, base)
	defer m.close()
	if err := m.open(lo, hi); err != nil {
		return err
	}
	// Senders run from the start; calls send once all are up (and bridged).
	m.start()

	var ua *uac
	if echo.IsValid() {
		for i, c := range m.calls {
			if err := c.setRemote(netip.AddrPortFrom(echo.Addr(), echo.Port()+uint16(2*i))); err != nil {
				return fmt.Errorf("-echo: %w", err)
			}
		}
	} else if ua, err = newUAC(ctx, localIP, o.sipPort, o.uad); err != nil {
		return err
	} else {
		defer ua.close()
	}

	// ---- setup ----
	cpuU0, cpuS0 := sampleCPU(uadProc), sampleCPU(self)
	setupStart := time.Now()
	if ua != nil {
		log.Printf("setting up %d calls at %.0f/s (at most %d in flight) to %s", o.calls, o.rate, o.inflight, o.uad)
		r.setup = ua.setupAll(ctx, m, o)
	}
	r.setupDur = time.Since(setupStart)
	cpuU1, cpuS1 := sampleCPU(uadProc), sampleCPU(self)
	r.uadCPUSetup = cpuPercent(cpuU0, cpuU1)
	r.genCPUSetup = cpuPercent(cpuS0, cpuS1)
	r.achieved = m.upCount()
	if ua != nil {
		log.Printf("%d of %d calls up in %v (%.1f/s); %d failed", r.achieved, o.calls, r.setupDur.Round(time.Millisecond),
			float64(r.achieved)/r.setupDur.Seconds(), r.setup.failed)
	}
	if r.achieved == 0 {
		r.print()
		return fmt.Errorf("no call could be set up")
	}

	if o.bridge || o.holdHalf {
		if err := m.mapIDs(ctx, api); err != nil {
			log.Printf("GET /v1/calls: %v (bridging and holding skipped)", err)
			o.bridge, o.holdHalf = false, false
			r.opts = o
		}
	}
	if o.bridge {
		r.bridged, r.bridgeFailed = m.bridgePairs(ctx, api)
		log.Printf("%d bridges created, %d failed", r.bridged, r.bridgeFailed)
	}
	m.activateAll(o.bridge)

	// ---- media ----
	log.Printf("media for %v on %d calls (%d sender goroutines)", o.duration, r.achieved, o.senders)
	mediaStart := time.Now()
	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpuU0, cpuS0 = sampleCPU(uadProc), sampleCPU(self)
	sys0, sysOK0 := readSysCPU()
	var peak peakCPU
	sampler := startSampler(uadProc, self, &peak, r)
	genPorts := map[int]bool{}
	for _, g := range m.shards {
		genPorts[g.sc.port] = true
	}
	drops0, dropsErr := readUDPDrops(genPorts, o.pid)
	metricNames := []string{"uad_go_memstats_mallocs_total", "uad_go_gc_duration_seconds_count"}
	var met0 map[string]float64
	metErr := errors.New("no API: the target is a bare echo server")
	if ua != nil {
		met0, metErr = api.metrics(ctx, metricNames...)
	}
	half := mediaStart.Add(o.duration / 2)
	end := mediaStart.Add(o.duration)
	if o.holdHalf {
		if !sleepUntil(ctx, half) {
			return ctx.Err()
		}
		cpuU1, cpuS1 = sampleCPU(uadProc), sampleCPU(self)
		r.uadCPUEcho, r.genCPUEcho = cpuPercent(cpuU0, cpuU1), cpuPercent(cpuS0, cpuS1)
		log.Printf("holding %s through the API", map[bool]string{false: "every other call", true: "every call"}[o.holdAll])
		r.holdReq, r.holdFailed, r.holdDur = m.holdHalf(ctx, api, o.holdAll)
		log.Printf("%d holds done in %v, %d failed", r.holdReq-r.holdFailed, r.holdDur.Round(time.Millisecond), r.holdFailed)
	}
	if !sleepUntil(ctx, end) {
		log.Printf("interrupted: reporting what was measured")
	}
	cpuU1, cpuS1 = sampleCPU(uadProc), sampleCPU(self)
	sys1, sysOK1 := readSysCPU()
	r.sys = sysCPUBetween(sys0, sys1, sysOK0, sysOK1)
	r.mediaDur = time.Since(mediaStart)
	r.uadCPUMedia, r.genCPUMedia = cpuPercent(cpuU0, cpuU1), cpuPercent(cpuS0, cpuS1)
	sampler.stop()
	r.peakUAD, r.peakGen = peak.uad, peak.gen
	m.stopSending()
	time.Sleep(o.drain) // the last packets in flight
	if drops1, err := readUDPDrops(genPorts, o.pid); err == nil && dropsErr == nil {
		r.dropsKnown = true
		r.drops = udpDrops{gen: drops1.gen - drops0.gen, uad: drops1.uad - drops0.uad, other: drops1.other - drops0.other}
	}
	if met1, err := api.metrics(ctx, metricNames...); err == nil && metErr == nil {
		r.mallocs = met1[metricNames[0]] - met0[metricNames[0]]
		r.gcs = met1[metricNames[1]] - met0[metricNames[1]]
		r.metricsKnown = len(met1) == len(metricNames)
	}
	m.collect(r)

	// ---- teardown ----
	if ua != nil {
		log.Printf("hanging up")
		t0 := time.Now()
		r.byeFailed = ua.hangupAll(m, o)
		r.teardownDur = time.Since(t0)
	}
	r.print()
	return nil
}

// sleepUntil sleeps until t or until ctx ends (false).
func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-ctx.Done():
		return false
	}
}

func parseRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo <= 0 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%q is not FIRST-LAST", s)
	}
	return lo, hi, nil
}

// ---------------------------------------------------------------------------
// CPU and memory from /proc.

// procWatch reads a process's CPU time and resident memory.
type procWatch struct{ dir string }

func newProcWatch(pid string) (*procWatch, error) {
	p := &procWatch{dir: "/proc/" + pid}
	if _, err := p.cpu(); err != nil {
		return nil, err
	}
	return p, nil
}

// clkTck is USER_HZ, which Linux fixes at 100 for /proc on every
// architecture Go runs on.
const clkTck = 100

// cpu is utime+stime.
func (p *procWatch) cpu() (time.Duration, error) {
	data, err := os.ReadFile(p.dir + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(data)
	// The command name (field 2) may hold spaces: fields count from after ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s/stat: unexpected format", p.dir)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s/stat: too few fields", p.dir)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// rss is VmRSS in bytes (0 if unknown).
func (p *procWatch) rss() int64 {
	data, err := os.ReadFile(p.dir + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

type cpuSample struct {
	ok   bool
	cpu  time.Duration
	wall time.Time
}

func sampleCPU(p *procWatch) cpuSample {
	if p == nil {
		return cpuSample{}
	}
	c, err := p.cpu()
	return cpuSample{ok: err == nil, cpu: c, wall: time.Now()}
}

// cpuPercent is CPU time over wall time, in % of one core (-1: unknown).
func cpuPercent(a, b cpuSample) float64 {
	if !a.ok || !b.ok || !b.wall.After(a.wall) {
		return -1
	}
	return 100 * float64(b.cpu-a.cpu) / float64(b.wall.Sub(a.wall))
}

type peakCPU struct{ uad, gen float64 }

type sampler struct {
	quit chan struct{}
	done chan struct{}
}

// startSampler takes CPU every second for the peaks and uad's resident
// memory for its maximum during the media phase.
func startSampler(uadProc, self *procWatch, peak *peakCPU, r *report) *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		pu, ps := sampleCPU(uadProc), sampleCPU(self)
		for {
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
			cu, cs := sampleCPU(uadProc), sampleCPU(self)
			peak.uad = max(peak.uad, cpuPercent(pu, cu))
			peak.gen = max(peak.gen, cpuPercent(ps, cs))
			pu, ps = cu, cs
			if uadProc != nil {
				r.rssDuring = max(r.rssDuring, uadProc.rss())
			}
		}
	}()
	return s
}

func (s *sampler) stop() {
	close(s.quit)
	<-s.done
}

// ---------------------------------------------------------------------------
// Small shared helpers.

// counter is a goroutine-safe count.
type counter struct{ n atomic.Int64 }

func (c *counter) add(d int64) { c.n.Add(d) }
func (c *counter) get() int64  { return c.n.Load() }

// parallel runs f(i) for i in [0, n) on at most k goroutines.
func parallel(n, k int, f func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < min(k, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

// onlineCPUs counts the machine's CPUs (runtime.NumCPU is this process's
// affinity, which taskset narrows).
func onlineCPUs() int {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// udpDrops sums the kernel's per-socket drop counters of /proc/net/udp
// (datagrams discarded because the socket's receive buffer was full): for
// the generator's sockets (by port) and for uad's (by socket inode).
type udpDrops struct{ gen, uad, other int64 }

func readUDPDrops(genPorts map[int]bool, pid int) (udpDrops, error) {
	var d udpDrops
	uadInodes := map[string]bool{}
	if pid > 0 {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
				uadInodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
	}
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return d, err
	}
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 13 {
			continue
		}
		drops, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
		if drops == 0 {
			continue
		}
		_, portHex, _ := strings.Cut(f[1], ":")
		port, _ := strconv.ParseInt(portHex, 16, 32)
		switch {
		case genPorts[int(port)]:
			d.gen += drops
		case uadInodes[f[9]]:
			d.uad += drops
		default:
			d.other += drops
		}
	}
	return d, nil
}

// sysCPU is the first line of /proc/stat: the machine's CPU time by kind,
// in ticks.
type sysCPU struct{ user, system, idle, softirq, steal, total int64 }

func readSysCPU() (sysCPU, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysCPU{}, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return sysCPU{}, false
	}
	v := make([]int64, len(f))
	for i := 1; i < len(f); i++ {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]
	s := sysCPU{user: v[1] + v[2], system: v[3] + v[6], idle: v[4] + v[5], softirq: v[7], steal: v[8]}
	for i := 1; i <= 8; i++ {
		s.total += v[i]
	}
	return s, true
}

// sysCPUShare is the machine's CPU use between two readings, in % of all
// its CPUs.
type sysCPUShare struct {
	ok                                 bool
	user, system, softirq, steal, idle float64
}

func sysCPUBetween(a, b sysCPU, okA, okB bool) sysCPUShare {
	t := float64(b.total - a.total)
	if !okA || !okB || t <= 0 {
		return sysCPUShare{}
	}
	p := func(x, y int64) float64 { return 100 * float64(y-x) / t }
	return sysCPUShare{ok: true, user: p(a.user, b.user), system: p(a.system, b.system),
		softirq: p(a.softirq, b.softirq), steal: p(a.steal, b.steal), idle: p(a.idle, b.idle)}
}
