package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// report is everything the run measured.
type report struct {
	opts  options
	cores int

	setup       setupResult
	setupDur    time.Duration
	achieved    int
	uadCPUSetup float64
	genCPUSetup float64

	bridged, bridgeFailed int
	holdReq, holdFailed   int
	holdDur               time.Duration

	mediaDur               time.Duration
	uadCPUMedia            float64 // whole media phase
	genCPUMedia            float64
	uadCPUEcho, genCPUEcho float64 // first half, before the holds (-hold-half)
	peakUAD, peakGen       float64
	rssBefore, rssDuring   int64

	active      int
	sent        int64 // packets the generator sent
	sendFailed  int64 // of those, refused by the kernel
	want, got   int64 // end to end: expected back, came back
	uadPackets  int64 // RTP packets from uad
	seqExpected int64 // by uad's sequence numbers
	misroute    int64
	dups        int64
	leaked      int64
	rtt         histogram
	rttMax      time.Duration
	jitterMean  float64
	jitterP99   float64
	jitterMax   float64
	byeFromUAD  int
	reinvites   int64

	ticks   int64
	late    histogram
	lateMax time.Duration

	heldParties, heldOK int
	heldBad             []string
	pace                pacingSummary // the hold tone's timing

	byeFailed   int
	teardownDur time.Duration

	dropsKnown bool
	drops      udpDrops

	sys sysCPUShare // the whole machine in the media phase

	metricsKnown bool
	mallocs, gcs float64 // uad's heap allocations and GC cycles in the media phase
}

func pct(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

func cpuStr(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", v)
}

func (r *report) print() {
	w := os.Stdout
	o := r.opts
	mode := "echo"
	if o.bridge {
		mode = "bridge (pairs)"
	}
	fmt.Fprintf(w, "\n==== rtpload report ====\n")
	if o.echo != "" {
		fmt.Fprintf(w, "target            bare UDP echo from %s on (pid %d), %d cores\n", o.echo, o.pid, r.cores)
	} else {
		fmt.Fprintf(w, "target            uad %s (API %s, pid %d), mode %s, %d cores\n", o.uad, o.api, o.pid, mode, r.cores)
	}
	fmt.Fprintf(w, "calls             %d of %d up (%d failed)\n", r.achieved, o.calls, r.setup.failed)
	if len(r.setup.errs) > 0 {
		keys := make([]string, 0, len(r.setup.errs))
		for k := range r.setup.errs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "                    %dx %s\n", r.setup.errs[k], k)
		}
	}
	if r.setupDur > 0 && o.echo == "" {
		l := r.setup.latencies
		q := func(f float64) time.Duration {
			if len(l) == 0 {
				return 0
			}
			return l[min(len(l)-1, int(f*float64(len(l))))]
		}
		fmt.Fprintf(w, "call setup        %.1f calls/s achieved (paced at %.0f/s) over %v; INVITE->200 p50 %v p99 %v max %v\n",
			float64(r.achieved)/r.setupDur.Seconds(), o.rate, r.setupDur.Round(time.Millisecond),
			q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), q(1).Round(10*time.Microsecond))
		fmt.Fprintf(w, "                  CPU during setup: uad %s, generator %s (of one core)\n", cpuStr(r.uadCPUSetup), cpuStr(r.genCPUSetup))
	}
	if o.bridge {
		fmt.Fprintf(w, "bridges           %d created, %d failed\n", r.bridged, r.bridgeFailed)
	}
	if r.active == 0 {
		return
	}
	t := r.target()
	fmt.Fprintf(w, "media             %d calls x %v, %d packets sent (%.0f pps), %d RTP packets from %s\n",
		r.active, r.mediaDur.Round(time.Millisecond), r.sent, float64(r.sent)/r.mediaDur.Seconds(), r.uadPackets, t)
	nominal := float64(r.active) * float64(time.Second/period)
	rate := float64(r.sent) / r.mediaDur.Seconds()
	fmt.Fprintf(w, "media rate        %.0f of %.0f pps nominal: %.0f calls' worth at 50 pps (%.1f%%)\n",
		rate, nominal, rate/50, 100*rate/nominal)
	if r.uadCPUMedia >= 0 && r.uadPackets > 0 {
		// The target received about what came back to us, and sent that.
		fmt.Fprintf(w, "%-17s %.2f µs of CPU per packet relayed (one received + one sent)\n", r.target()+" per packet", r.targetPerPacket())
	}
	if r.genCPUMedia >= 0 && r.sent+r.uadPackets > 0 {
		fmt.Fprintf(w, "generator cost    %.2f µs of CPU per packet sent or received\n",
			r.genCPUMedia/100*r.mediaDur.Seconds()*1e6/float64(r.sent+r.uadPackets))
	}
	if r.sendFailed > 0 {
		fmt.Fprintf(w, "send errors       %d packets refused by the generator's kernel (not counted as loss)\n", r.sendFailed)
	}
	if r.metricsKnown && r.uadPackets > 0 {
		fmt.Fprintf(w, "uad allocations   %.0f in the media phase: %.3f per packet relayed; %.0f GC cycles\n",
			r.mallocs, r.mallocs/float64(r.uadPackets), r.gcs)
	}
	fmt.Fprintf(w, "loss              end to end %.4f%% (%d of %d expected back missing); %s's RTP sequence %.4f%% (%d of %d)\n",
		pct(r.want-r.got, r.want), r.want-r.got, r.want, t, pct(r.seqExpected-r.uadPackets, r.seqExpected), r.seqExpected-r.uadPackets, r.seqExpected)
	if r.dropsKnown {
		fmt.Fprintf(w, "kernel UDP drops  (receive buffer full) at %s's sockets %d, at the generator's %d, elsewhere %d\n",
			t, r.drops.uad, r.drops.gen, r.drops.other)
	}
	if r.dups > 0 {
		fmt.Fprintf(w, "duplicates        %d packets came back twice\n", r.dups)
	}
	if r.misroute > 0 {
		fmt.Fprintf(w, "misrouted         %d packets of another call\n", r.misroute)
	}
	fmt.Fprintf(w, "added jitter      RFC 3550 A.8 per call: mean %.3f ms, p99 %.3f ms, max %.3f ms\n", r.jitterMean, r.jitterP99, r.jitterMax)
	fmt.Fprintf(w, "round trip        p50 %v p99 %v p99.9 %v max %v\n",
		r.rtt.quantile(0.5), r.rtt.quantile(0.99), r.rtt.quantile(0.999), r.rttMax.Round(10*time.Microsecond))
	fmt.Fprintf(w, "generator timing  %d send ticks (2 ms apart), late by p50 %v p99 %v p99.9 %v max %v\n",
		r.ticks, r.late.quantile(0.5), r.late.quantile(0.99), r.late.quantile(0.999), r.lateMax.Round(10*time.Microsecond))
	fmt.Fprintf(w, "CPU (media)       %s %s (peak %s/s), generator %s (peak %s/s); %% of one core, the machine has %d00%%\n",
		t, cpuStr(r.uadCPUMedia), cpuStr(r.peakUAD), cpuStr(r.genCPUMedia), cpuStr(r.peakGen), r.cores)
	if r.sys.ok {
		fmt.Fprintf(w, "machine CPU       user %.0f%%, system %.0f%%, softirq %.0f%%, steal %.0f%%, idle %.0f%% (of all %d CPUs)\n",
			r.sys.user, r.sys.system, r.sys.softirq, r.sys.steal, r.sys.idle, r.cores)
	}
	if o.holdHalf {
		fmt.Fprintf(w, "                  before the holds: uad %s, generator %s\n", cpuStr(r.uadCPUEcho), cpuStr(r.genCPUEcho))
	}
	if r.rssBefore > 0 {
		per := float64(r.rssDuring-r.rssBefore) / float64(max(r.achieved, 1))
		fmt.Fprintf(w, "%-17s VmRSS %.1f MiB before, %.1f MiB max during: %.1f KiB per call\n", t+" memory",
			float64(r.rssBefore)/(1<<20), float64(r.rssDuring)/(1<<20), per/1024)
	}
	if o.holdHalf {
		fmt.Fprintf(w, "hold              %d hold requests in %v (%d failed); %d re-INVITEs answered\n",
			r.holdReq, r.holdDur.Round(time.Millisecond), r.holdFailed, r.reinvites)
		fmt.Fprintf(w, "                  %d of %d held parties got the hold tone (>= %d frames at %.0f Hz) and no echo after the hold\n",
			r.heldOK, r.heldParties, minToneFrames, o.holdFreq)
		for _, b := range r.heldBad {
			fmt.Fprintf(w, "                    FAIL %s\n", b)
		}
		if p := &r.pace; p.streams > 0 {
			fmt.Fprintf(w, "hold tone timing  %d held streams, %d frames: RTP clock drift against arrival max %.2f ms (mean %.2f ms)\n",
				p.streams, p.frames, ms(p.driftMax), ms(p.driftSum/time.Duration(p.streams)))
			fmt.Fprintf(w, "                  frame lateness p50 %v p99 %v p99.9 %v max %v (each frame against its stream's earliest)\n",
				p.late.quantile(0.5), p.late.quantile(0.99), p.late.quantile(0.999), p.lateMax.Round(10*time.Microsecond))
		}
	}
	if r.leaked > 0 {
		fmt.Fprintf(w, "leaks             %d packets echoed/relayed although sent after their call's hold completed\n", r.leaked)
	}
	if r.byeFromUAD > 0 {
		fmt.Fprintf(w, "uad hung up       %d calls during the run\n", r.byeFromUAD)
	}
	if o.echo == "" {
		fmt.Fprintf(w, "teardown          %d BYEs in %v, %d failed\n", r.achieved-r.byeFromUAD, r.teardownDur.Round(time.Millisecond), r.byeFailed)
	}
	fmt.Fprintf(w, "limit             %s\n", r.limit())
	// One line for scripts.
	fmt.Fprintf(w, "RESULT target=%s calls=%d seconds=%.1f relayed=%d target_cpu_pct=%.1f target_us_per_packet=%.3f generator_cpu_pct=%.1f loss_pct=%.4f\n",
		r.target(), r.active, r.mediaDur.Seconds(), r.uadPackets, r.uadCPUMedia, r.targetPerPacket(), r.genCPUMedia, pct(r.want-r.got, r.want))
}

func (r *report) target() string {
	if r.opts.echo != "" {
		return "udpecho"
	}
	return "uad"
}

// targetPerPacket is the target's CPU time per packet it relayed, in µs
// (-1: unknown).
func (r *report) targetPerPacket() float64 {
	if r.uadCPUMedia < 0 || r.uadPackets == 0 {
		return -1
	}
	return r.uadCPUMedia / 100 * r.mediaDur.Seconds() * 1e6 / float64(r.uadPackets)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// limit says who ran out first. The generator kept up when its sends went
// out on time; then loss, added jitter or slow round trips are uad's. When
// the generator's sends ran late, it (or the machine both share) is the
// limit, whatever uad did.
func (r *report) limit() string {
	t := r.target()
	lossPct := pct(r.want-r.got, r.want)
	// Late by more than half a frame at p99: the generator's own timing
	// would show as jitter.
	genLate := r.late.quantile(0.99) > 10*time.Millisecond
	uadBad := lossPct >= 0.1 || r.jitterMean >= 2 || r.rtt.quantile(0.99) > 20*time.Millisecond ||
		r.achieved < r.opts.calls || r.byeFromUAD > 0 || (r.opts.holdHalf && r.heldOK < r.heldParties)
	total := r.uadCPUMedia + r.genCPUMedia
	machine := ""
	switch {
	case r.sys.ok && r.sys.idle < 5:
		machine = fmt.Sprintf("; the machine's CPU is saturated (idle %.0f%%: %s %s + generator %s of one core each, the kernel's softirq %.0f%% and steal %.0f%% of the machine, the rest other processes)",
			r.sys.idle, t, cpuStr(r.uadCPUMedia), cpuStr(r.genCPUMedia), r.sys.softirq, r.sys.steal)
	case r.uadCPUMedia >= 0 && total >= 0.9*float64(r.cores*100):
		machine = fmt.Sprintf("; the machine's CPU is saturated (%s %s + generator %s of %d00%%)", t, cpuStr(r.uadCPUMedia), cpuStr(r.genCPUMedia), r.cores)
	}
	if r.dropsKnown && r.drops.uad > 0 {
		machine += fmt.Sprintf("; %s's sockets overflowed (%d datagrams dropped by the kernel: it read too slowly)", t, r.drops.uad)
	}
	if r.dropsKnown && r.drops.gen > 0 {
		machine += fmt.Sprintf("; the generator's sockets overflowed (%d dropped)", r.drops.gen)
	}
	var why []string
	if lossPct >= 0.1 {
		why = append(why, fmt.Sprintf("loss %.2f%%", lossPct))
	}
	if r.jitterMean >= 2 {
		why = append(why, fmt.Sprintf("added jitter %.1f ms", r.jitterMean))
	}
	if p := r.rtt.quantile(0.99); p > 20*time.Millisecond {
		why = append(why, fmt.Sprintf("round trip p99 %v", p))
	}
	if r.achieved < r.opts.calls {
		why = append(why, fmt.Sprintf("%d calls not set up", r.opts.calls-r.achieved))
	}
	switch {
	case genLate && uadBad:
		return fmt.Sprintf("the generator first: its sends ran late (p99 %v, max %v), so %s's figures (%s) are not its alone%s",
			r.late.quantile(0.99), r.lateMax.Round(time.Millisecond), t, strings.Join(why, ", "), machine)
	case genLate:
		return fmt.Sprintf("the generator: its sends ran late (p99 %v, max %v) while %s kept up%s",
			r.late.quantile(0.99), r.lateMax.Round(time.Millisecond), t, machine)
	case uadBad:
		if len(why) == 0 {
			why = append(why, "hold check or hang-ups")
		}
		return fmt.Sprintf("%s: the generator sent on time but %s fell behind (%s)%s", t, t, strings.Join(why, ", "), machine)
	}
	return fmt.Sprintf("none reached: %s and the generator both kept up at %d calls%s", t, r.active, machine)
}
