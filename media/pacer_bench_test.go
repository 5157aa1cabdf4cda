//go:build linux

package media

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

var (
	heldStreams = flag.Int("held.streams", 2000, "BenchmarkHeldStreams: held streams paced")
	heldPorts   = flag.Int("held.ports", 40000, "BenchmarkHeldStreams: first RTP port of the engine")
)

// heldReceiverEnv makes the test binary the receiver of BenchmarkHeldStreams
// (TestHeldReceiver): its value is the number of streams.
const heldReceiverEnv = "UAD_HELD_RECEIVER"

// BenchmarkHeldStreams paces the hold tone of -held.streams streams over
// real sockets to a receiver in another process (this test binary, run as
// TestHeldReceiver), as a held party is: the receiver takes each packet's
// kernel arrival time and shares no CPU time slice with the pacers. It runs
// at nice 19, as a party on a machine of its own would take no CPU time
// from uad: at nice 0, on two shared cores, its wake-ups every 2 ms preempt
// pacers mid-slot. One op
// is one frame period: a packet from every stream. Run it for a minute with
// -benchtime 3000x. It reports
//
//   - drift-ms: how far the RTP clock of a stream moved from the wall clock
//     between the start and the end of the run (the median offset of its
//     last 50 packets less that of its first 50; the largest of all streams),
//   - p50/p90/p99/p99.9/max-late-ms: how late frames arrived, each against
//     the earliest arrival of its stream relative to its RTP timestamp,
//   - skipped/op: frames the pacers skipped for running a period late,
//   - seq-gaps: packets missing by the sequence numbers,
//   - cpu-µs/frame: the engine's process's CPU per frame.
func BenchmarkHeldStreams(b *testing.B) {
	n := *heldStreams
	e, err := NewEngine(zerolog.Nop(), EngineConfig{
		Bind: netip.MustParseAddr("127.0.0.1"), PortMin: *heldPorts, PortMax: *heldPorts + 4*n,
		HoldTone: "440", Tone: "440",
	})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()

	rx := exec.Command(os.Args[0], "-test.run=^TestHeldReceiver$")
	rx.Env = append(os.Environ(), heldReceiverEnv+"="+strconv.Itoa(n))
	rx.Stderr = os.Stderr
	stop, err := rx.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := rx.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := rx.Start(); err != nil {
		b.Fatal(err)
	}
	defer rx.Wait()
	defer stop.Close()
	from := bufio.NewReader(out)
	line, err := from.ReadString('\n')
	if err != nil {
		b.Fatalf("the receiver did not start: %v", err)
	}
	to, err := netip.ParseAddrPort(strings.TrimSpace(line))
	if err != nil {
		b.Fatalf("the receiver said %q", line)
	}
	for i := range n {
		s, err := e.NewStream(false, false)
		if err != nil {
			b.Fatalf("stream %d: %v", i, err)
		}
		defer s.Close()
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(to), Send: true, LocalHold: true})
	}
	// The receiver writes a byte for every n packets: one frame period.
	var tick [1]byte
	for range 2 { // every stream has started
		if _, err := io.ReadFull(from, tick[:]); err != nil {
			b.Fatal(err)
		}
	}
	skipped0 := e.SkippedFrames()
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		if _, err := io.ReadFull(from, tick[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	skipped := e.SkippedFrames() - skipped0
	stop.Close()
	var res [8]float64 // drift, p50, p90, p99, p99.9, max, gaps, ticks since the start
	for {
		line, err := from.ReadString('\n')
		if err != nil {
			b.Fatalf("no result from the receiver: %v", err)
		}
		if f := strings.Fields(line); len(f) == len(res)+1 && f[0] == "result" {
			for i := range res {
				res[i], _ = strconv.ParseFloat(f[i+1], 64)
			}
			break
		}
	}
	for i, unit := range []string{"drift-ms", "p50-late-ms", "p90-late-ms", "p99-late-ms", "p99.9-late-ms", "max-late-ms", "seq-gaps"} {
		b.ReportMetric(res[i], unit)
	}
	b.ReportMetric(float64(skipped)/float64(b.N), "skipped/op")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N*n), "cpu-µs/frame")
}

// TestHeldReceiver is BenchmarkHeldStreams' receiver, in a process of its
// own; run otherwise, it does nothing. It prints its address, then a byte
// for every n packets, and when its standard input closes, one line with
// what it measured.
func TestHeldReceiver(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(heldReceiverEnv))
	if n <= 0 {
		t.Skip("BenchmarkHeldStreams runs it")
	}
	// Only the CPU time the engine leaves (see BenchmarkHeldStreams): the
	// kernel stamps arrivals, so reading late costs no accuracy.
	if err := niceAllThreads(19); err != nil {
		t.Fatal(err)
	}
	rb, err := newBenchReceiver(64)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(rb.addr)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	type track struct {
		ts0     uint32
		seq     uint16
		first   int64
		offsets []int32 // arrival less the RTP timestamp's time, in µs from the first
	}
	tracks := map[uint16]*track{}
	gaps, total := 0, 0
	// Read every 2 ms what has arrived: the kernel stamps each datagram's
	// arrival, so reading late costs no accuracy.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false // read what is left, then stop
		case <-tick.C:
		}
		for {
			got, err := rb.read()
			if err != nil {
				t.Fatal(err)
			}
			for k := range got {
				pkt, port, arrival := rb.message(k)
				if arrival == 0 || len(pkt) < 12 {
					continue
				}
				seq := binary.BigEndian.Uint16(pkt[2:])
				ts := binary.BigEndian.Uint32(pkt[4:])
				tr := tracks[port]
				if tr == nil {
					tr = &track{ts0: ts, seq: seq - 1, first: arrival, offsets: make([]int32, 0, 3200)}
					tracks[port] = tr
				}
				if seq != tr.seq+1 {
					gaps++
				}
				tr.seq = seq
				rtpUS := int64(ts-tr.ts0) * 125 // 8 samples a ms
				tr.offsets = append(tr.offsets, int32((arrival-tr.first)/1000-rtpUS))
				if total++; total%n == 0 {
					os.Stdout.Write([]byte{'.'})
				}
			}
			if got < len(rb.hdrs) {
				break // drained
			}
		}
	}
	var late []int32
	var drift time.Duration
	for _, tr := range tracks {
		if len(tr.offsets) < 4 {
			continue
		}
		lo := slices.Min(tr.offsets)
		for _, o := range tr.offsets {
			late = append(late, o-lo)
		}
		w := min(50, len(tr.offsets)/4)
		d := time.Duration(median(tr.offsets[len(tr.offsets)-w:])-median(tr.offsets[:w])) * time.Microsecond
		drift = max(drift, d.Abs())
	}
	slices.Sort(late)
	q := func(f float64) float64 {
		if len(late) == 0 {
			return 0
		}
		return float64(late[min(len(late)-1, int(f*float64(len(late))))]) / 1000
	}
	fmt.Printf("\nresult %.3f %.3f %.3f %.3f %.3f %.3f %d %d\n", float64(drift)/float64(time.Millisecond),
		q(0.5), q(0.9), q(0.99), q(0.999), q(1), gaps, total/n)
	os.Exit(0) // no test summary on the output the benchmark reads
}

func median(v []int32) int32 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchReceiver reads datagrams by the batch (recvmmsg), each with its
// source port and kernel arrival time, from a raw non-blocking socket that
// no epoll watches, so that the pacers' sends wake nobody.
type benchReceiver struct {
	fd   int
	addr netip.AddrPort
	hdrs []benchMmsghdr
	iovs []unix.Iovec
	bufs [][1500]byte
	oobs [][64]byte
	from []unix.RawSockaddrInet4
}

// benchMmsghdr is struct mmsghdr.
type benchMmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

func newBenchReceiver(size int) (*benchReceiver, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	r := &benchReceiver{fd: fd, hdrs: make([]benchMmsghdr, size), iovs: make([]unix.Iovec, size),
		bufs: make([][1500]byte, size), oobs: make([][64]byte, size), from: make([]unix.RawSockaddrInet4, size)}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		r.close()
		return nil, err
	}
	// Room for a second of hold tone, should the reader be held up.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		r.close()
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		r.close()
		return nil, err
	}
	r.addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for i := range r.hdrs {
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(len(r.bufs[i]))
		h := &r.hdrs[i].hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&r.from[i]))
		h.Control = &r.oobs[i][0]
	}
	return r, nil
}

func (r *benchReceiver) close() { unix.Close(r.fd) }

// read returns how many datagrams it read of those queued (0: none), at
// most a batch.
func (r *benchReceiver) read() (int, error) {
	for i := range r.hdrs {
		h := &r.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet4
		h.SetControllen(len(r.oobs[i]))
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, e
	}
}

// message returns datagram i of the last read, its source port and its
// arrival time (Unix ns, 0 if unknown).
func (r *benchReceiver) message(i int) ([]byte, uint16, int64) {
	h := &r.hdrs[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&r.from[i].Port))[:])
	return r.bufs[i][:h.len], port, kernelTime(r.oobs[i][:h.hdr.Controllen])
}

// kernelTime reads the SO_TIMESTAMPNS arrival time (Unix ns) from a
// datagram's control messages; 0 when it has none.
func kernelTime(oob []byte) int64 {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(c.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(16) {
			return (*unix.Timespec)(unsafe.Pointer(&oob[hdr])).Nano()
		}
		oob = oob[min(unix.CmsgSpace(l-hdr), len(oob)):]
	}
	return 0
}

// niceAllThreads sets the nice value of every thread of the process (on
// Linux a thread's own); threads started later inherit it.
func niceAllThreads(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
			return fmt.Errorf("nice thread %d: %w", tid, err)
		}
	}
	return nil
}

// processCPU is the user and system time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
