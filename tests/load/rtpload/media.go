package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo"

	"uad/tests/internal/g711"
)

const (
	period     = 20 * time.Millisecond // one G.711 frame
	slots      = 10                    // sends of a period are spread over 10 slots of 2 ms
	frameBytes = 160
	headerLen  = 12
	magic0     = 'R'
	magic1     = 'L'
	// guard packets before a hold request are not expected back: they may
	// reach uad as the hold takes effect.
	holdGuard = 3
	// minToneFrames is how many hold-tone frames a held party must get.
	minToneFrames = 10
)

// call is one call of the run: its socket, its sender state (owned by one
// sender goroutine) and its receiver state (owned by its read goroutine).
type call struct {
	idx       int
	m         *media
	port      int
	conn      *net.UDPConn
	dlg       *sipgo.DialogClientSession
	sipCallID string
	uadID     string
	src       int // index of the call whose packets this one should receive (itself: echo)

	remote     atomic.Pointer[netip.AddrPort]
	active     atomic.Bool // sending
	byeFromUAD atomic.Bool
	reinvites  atomic.Int32

	// Sender-owned.
	seq  uint16
	ts   uint32
	sent atomic.Uint32 // packets sent; the next packet's counter

	// Hold: set by the holding goroutine, read by the receiver.
	toneFrom   atomic.Int64 // src's counter when the hold was asked for; -1 = none
	toneDone   atomic.Int64 // src's counter when the hold request returned; -1 = none
	holdFailed atomic.Bool

	rx rxState
}

// rxState is what the receiver measured (read after the receiver stopped).
type rxState struct {
	packets  int64    // RTP packets from uad
	seen     []uint64 // bitmap of src's counters received
	dups     int64    // src's packets received twice
	leaked   int64    // src's packets received although sent after the hold was done
	misroute int64    // marked packets of another call
	other    int64    // not our payload (tone, silence)
	tone     int64    // hold-tone frames after the hold was asked for
	// uad's RTP sequence (RFC 3550 A.3).
	seqStarted bool
	baseSeq    uint32
	maxSeq     uint16
	cycles     uint32
	// Added jitter (RFC 3550 A.8 with the send time as timestamp), in µs.
	havePrev    bool
	prevTransit int64
	jitter      float64
	rtt         histogram
	rttMax      time.Duration
}

func (c *call) setRemote(ap netip.AddrPort) {
	// Connect the socket: sends skip the route lookup, and only uad's
	// packets are read.
	if rc, err := c.conn.SyscallConn(); err == nil {
		a := ap.Addr().As4()
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.Connect(int(fd), &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: a})
		})
	}
	c.remote.Store(&ap)
}

// media owns the calls' sockets and the sender goroutines.
type media struct {
	o      options
	ip     netip.Addr
	calls  []*call
	epoch  time.Time
	frame  [frameBytes]byte // a 1000 Hz µ-law frame (8-sample period: every frame alike)
	shards [][slots][]*call

	quit    chan struct{}
	senders sync.WaitGroup
	readers sync.WaitGroup
	lateMu  sync.Mutex
	ticks   int64
	late    histogram // how late each send tick ran
	lateMax time.Duration
	stopped atomic.Bool
}

func newMedia(o options, ip netip.Addr) *media {
	m := &media{o: o, ip: ip, epoch: time.Now(), quit: make(chan struct{})}
	for k := range m.frame {
		m.frame[k] = g711.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*1000*float64(k)/8000)))
	}
	return m
}

// open binds one RTP socket per call on even ports of [lo, hi].
func (m *media) open(lo, hi int) error {
	port := lo + lo%2
	for i := 0; i < m.o.calls; i++ {
		var conn *net.UDPConn
		for ; port+1 <= hi; port += 2 {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(m.ip.AsSlice()), Port: port})
			if err == nil {
				conn = c
				break
			}
		}
		if conn == nil {
			return fmt.Errorf("no free port left in %s for call %d", m.o.rtpPorts, i)
		}
		_ = conn.SetReadBuffer(256 << 10)
		c := &call{idx: i, m: m, port: port, conn: conn, src: i}
		c.toneFrom.Store(-1)
		c.toneDone.Store(-1)
		m.calls = append(m.calls, c)
		port += 2
		m.readers.Add(1)
		go c.read()
	}
	m.shards = make([][slots][]*call, m.o.senders)
	for i, c := range m.calls {
		g := i % m.o.senders
		s := (i / m.o.senders) % slots
		m.shards[g][s] = append(m.shards[g][s], c)
	}
	return nil
}

func (m *media) close() {
	m.stopSending()
	for _, c := range m.calls {
		c.conn.Close()
	}
	m.readers.Wait()
}

// start runs the sender goroutines: each owns a shard of the calls and
// sends one slot of it every 2 ms, on deadlines counted from one start
// (monotonic clock), so nothing drifts; a late sender catches up at once.
func (m *media) start() {
	start := time.Now()
	step := period / slots
	for g := range m.shards {
		m.senders.Add(1)
		go func(shard *[slots][]*call) {
			defer m.senders.Done()
			var buf [headerLen + frameBytes]byte
			timer := time.NewTimer(time.Hour)
			var ticks int64
			var late histogram
			var lateMax time.Duration
			defer func() {
				m.lateMu.Lock()
				m.ticks += ticks
				m.late.merge(&late)
				m.lateMax = max(m.lateMax, lateMax)
				m.lateMu.Unlock()
			}()
			for k := int64(0); ; k++ {
				deadline := start.Add(time.Duration(k) * step)
				if d := time.Until(deadline); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-m.quit:
						return
					}
				} else {
					select {
					case <-m.quit:
						return
					default:
					}
				}
				now := time.Now()
				d := now.Sub(deadline)
				ticks++
				late.add(d)
				lateMax = max(lateMax, d)
				for _, c := range shard[k%slots] {
					if c.active.Load() {
						c.send(buf[:], now)
					}
				}
			}
		}(&m.shards[g])
	}
}

func (m *media) stopSending() {
	if m.stopped.Swap(true) {
		return
	}
	close(m.quit)
	m.senders.Wait()
}

// send writes the call's next packet: uad's negotiated PCMU, a 1000 Hz tone
// whose first bytes carry the marker, the call index, the counter and the
// send time.
func (c *call) send(buf []byte, now time.Time) {
	n := c.sent.Load()
	buf[0] = 0x80
	buf[1] = 0 // PCMU
	if n == 0 {
		buf[1] |= 0x80 // marker
	}
	binary.BigEndian.PutUint16(buf[2:], c.seq)
	binary.BigEndian.PutUint32(buf[4:], c.ts)
	binary.BigEndian.PutUint32(buf[8:], 0x524c0000|uint32(c.idx&0xffff)) // SSRC
	p := buf[headerLen:]
	copy(p, c.m.frame[:])
	p[0], p[1] = magic0, magic1
	binary.BigEndian.PutUint32(p[2:], uint32(c.idx))
	binary.BigEndian.PutUint32(p[6:], n)
	binary.BigEndian.PutUint32(p[10:], uint32(now.Sub(c.m.epoch)/time.Microsecond))
	if _, err := c.conn.Write(buf); err == nil {
		c.seq++
		c.ts += frameBytes
		c.sent.Store(n + 1)
	}
}

// read receives uad's RTP until the socket closes.
func (c *call) read() {
	defer c.m.readers.Done()
	buf := make([]byte, 1500)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable on the connected socket
		}
		c.onPacket(buf[:n], time.Now())
	}
}

func (c *call) onPacket(b []byte, now time.Time) {
	if len(b) < headerLen || b[0]>>6 != 2 {
		return
	}
	pt := b[1] & 0x7f
	if pt >= 72 && pt <= 76 { // RTCP (SR/RR...), not counted
		return
	}
	hl := headerLen + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 && len(b) >= hl+4 {
		hl += 4 + 4*int(binary.BigEndian.Uint16(b[hl+2:]))
	}
	if len(b) < hl {
		return
	}
	payload := b[hl:]
	r := &c.rx
	r.packets++
	r.updateSeq(binary.BigEndian.Uint16(b[2:]))
	if len(payload) >= 14 && payload[0] == magic0 && payload[1] == magic1 {
		from := int(binary.BigEndian.Uint32(payload[2:]))
		cnt := int64(binary.BigEndian.Uint32(payload[6:]))
		sentUs := int64(binary.BigEndian.Uint32(payload[10:]))
		if from != c.src {
			r.misroute++
			return
		}
		r.mark(cnt)
		if td := c.toneDone.Load(); td >= 0 && cnt >= td {
			r.leaked++
		}
		nowUs := int64(now.Sub(c.m.epoch) / time.Microsecond)
		rtt := time.Duration(nowUs-sentUs) * time.Microsecond
		r.rtt.add(rtt)
		r.rttMax = max(r.rttMax, rtt)
		transit := nowUs - sentUs
		if r.havePrev {
			d := transit - r.prevTransit
			if d < 0 {
				d = -d
			}
			r.jitter += (float64(d) - r.jitter) / 16
		}
		r.prevTransit, r.havePrev = transit, true
		return
	}
	r.other++
	if c.toneFrom.Load() >= 0 && pt == 0 && isTone(payload, c.m.o.holdFreq) {
		r.tone++
	}
}

// mark notes counter cnt of src as received.
func (r *rxState) mark(cnt int64) {
	if cnt < 0 || cnt >= 1<<24 {
		return
	}
	w := int(cnt / 64)
	if w >= len(r.seen) {
		r.seen = append(r.seen, make([]uint64, w+1-len(r.seen)+64)...)
	}
	bit := uint64(1) << (cnt % 64)
	if r.seen[w]&bit != 0 {
		r.dups++
		return
	}
	r.seen[w] |= bit
}

// receivedBelow counts the distinct counters below limit received.
func (r *rxState) receivedBelow(limit int64) int64 {
	var n int64
	for w, word := range r.seen {
		base := int64(w) * 64
		if base >= limit {
			break
		}
		if base+64 > limit {
			word &= (uint64(1) << (limit - base)) - 1
		}
		n += int64(bits.OnesCount64(word))
	}
	return n
}

func (r *rxState) updateSeq(seq uint16) {
	if !r.seqStarted {
		r.seqStarted, r.baseSeq, r.maxSeq = true, uint32(seq), seq
		return
	}
	if d := seq - r.maxSeq; d != 0 && d < 3000 {
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	}
}

func (r *rxState) seqExpected() int64 {
	if !r.seqStarted {
		return 0
	}
	return int64(r.cycles+uint32(r.maxSeq)) - int64(r.baseSeq) + 1
}

// ---------------------------------------------------------------------------
// API steps.

// mapIDs learns uad's call id of every call from GET /v1/calls.
func (m *media) mapIDs(ctx context.Context, api *apiClient) error {
	calls, err := api.listCalls(ctx)
	if err != nil {
		return err
	}
	byCID := map[string]string{}
	for _, c := range calls {
		if c.State != "ended" {
			byCID[c.SIPCallID] = c.ID
		}
	}
	missing := 0
	for _, c := range m.calls {
		if c.dlg == nil {
			continue
		}
		c.uadID = byCID[c.sipCallID]
		if c.uadID == "" {
			missing++
		}
	}
	if missing > 0 {
		log.Printf("GET /v1/calls: %d calls set up are not listed by uad", missing)
	}
	return nil
}

// bridgePairs bridges calls 2k and 2k+1; each then receives its partner.
func (m *media) bridgePairs(ctx context.Context, api *apiClient) (ok, failed int) {
	var okN, failN counter
	parallel(len(m.calls)/2, 32, func(k int) {
		a, b := m.calls[2*k], m.calls[2*k+1]
		if a.uadID == "" || b.uadID == "" {
			failN.add(1)
			return
		}
		if err := api.bridge(ctx, a.uadID, b.uadID); err != nil {
			failN.add(1)
			if failN.get() <= 3 {
				log.Printf("POST /v1/bridges: %v", err)
			}
			return
		}
		a.src, b.src = b.idx, a.idx
		okN.add(1)
	})
	return int(okN.get()), int(failN.get())
}

func (m *media) activateAll(bridge bool) {
	for _, c := range m.calls {
		if c.remote.Load() != nil && (!bridge || c.src != c.idx) {
			c.active.Store(true)
		}
	}
}

func (m *media) upCount() int {
	n := 0
	for _, c := range m.calls {
		if c.remote.Load() != nil {
			n++
		}
	}
	return n
}

// holdHalf holds every other call (in bridge mode: one leg of every other
// pair) through the API. Each party that then should hear the hold tone
// (the held call's; in a bridge also its partner's) notes its source's
// counter when the request went out and when it returned.
func (m *media) holdHalf(ctx context.Context, api *apiClient) (requested, failed int, took time.Duration) {
	var targets []*call
	for _, c := range m.calls {
		if !c.active.Load() || c.uadID == "" {
			continue
		}
		if c.src == c.idx && c.idx%2 == 0 || c.src != c.idx && c.idx%4 == 0 {
			targets = append(targets, c)
		}
	}
	var failN counter
	start := time.Now()
	parallel(len(targets), 32, func(i int) {
		h := targets[i]
		parties := []*call{h}
		if h.src != h.idx {
			parties = append(parties, m.calls[h.src])
		}
		for _, p := range parties {
			p.toneFrom.Store(int64(m.calls[p.src].sent.Load()))
		}
		if err := api.hold(ctx, h.uadID); err != nil {
			failN.add(1)
			if failN.get() <= 3 {
				log.Printf("POST /v1/calls/%s/hold: %v", h.uadID, err)
			}
			for _, p := range parties {
				p.holdFailed.Store(true)
			}
			return
		}
		for _, p := range parties {
			p.toneDone.Store(int64(m.calls[p.src].sent.Load()))
		}
	})
	return len(targets), int(failN.get()), time.Since(start)
}

// collect adds up what the receivers measured (after sending stopped and
// the last packets had time to arrive).
func (m *media) collect(r *report) {
	m.lateMu.Lock()
	r.ticks, r.late, r.lateMax = m.ticks, m.late, m.lateMax
	m.lateMu.Unlock()
	// Stop the readers first: their state is then stable.
	for _, c := range m.calls {
		c.conn.Close()
	}
	m.readers.Wait()
	var jit []float64
	for _, c := range m.calls {
		if !c.active.Load() {
			continue
		}
		r.active++
		src := m.calls[c.src]
		sent := int64(src.sent.Load())
		r.sent += int64(c.sent.Load())
		want := sent
		if tf := c.toneFrom.Load(); tf >= 0 {
			want = max(tf-holdGuard, 0)
		}
		rx := &c.rx
		got := rx.receivedBelow(want)
		r.want += want
		r.got += got
		r.dups += rx.dups
		r.uadPackets += rx.packets
		r.seqExpected += rx.seqExpected()
		r.misroute += rx.misroute
		r.leaked += rx.leaked
		r.rtt.merge(&rx.rtt)
		r.rttMax = max(r.rttMax, rx.rttMax)
		if c.byeFromUAD.Load() {
			r.byeFromUAD++
		}
		r.reinvites += int64(c.reinvites.Load())
		if got > 1 {
			jit = append(jit, rx.jitter/1000) // ms
		}
		if c.toneFrom.Load() >= 0 && !c.holdFailed.Load() {
			r.heldParties++
			if rx.tone >= minToneFrames && rx.leaked == 0 {
				r.heldOK++
			} else if len(r.heldBad) < 5 {
				r.heldBad = append(r.heldBad, fmt.Sprintf("call %d (uad %s): %d hold-tone frames, %d echoes after the hold, %d other packets",
					c.idx, c.uadID, rx.tone, rx.leaked, rx.other))
			}
		}
	}
	sort.Float64s(jit)
	if len(jit) > 0 {
		sum := 0.0
		for _, j := range jit {
			sum += j
		}
		r.jitterMean = sum / float64(len(jit))
		r.jitterP99 = jit[min(len(jit)-1, len(jit)*99/100)]
		r.jitterMax = jit[len(jit)-1]
	}
}

// isTone reports a µ-law frame that is clearly a tone at freq: loud enough,
// and most of its energy at freq.
func isTone(payload []byte, freq float64) bool {
	rms, share := g711.ToneLevel(g711.PCMU, payload, freq)
	return rms > 500 && share > 0.6
}

// ---------------------------------------------------------------------------
// Round-trip histogram: 0.1 ms steps to 10 ms, 1 ms to 100 ms, 10 ms to 1 s.

type histogram struct {
	b [281]uint32
	n int64
}

func bucketOf(d time.Duration) int {
	us := int64(d / time.Microsecond)
	switch {
	case us < 0:
		return 0
	case us < 10_000:
		return int(us / 100)
	case us < 100_000:
		return 100 + int((us-10_000)/1000)
	case us < 1_000_000:
		return 190 + int((us-100_000)/10_000)
	}
	return 280
}

func bucketUpper(i int) time.Duration {
	switch {
	case i < 100:
		return time.Duration(i+1) * 100 * time.Microsecond
	case i < 190:
		return 10*time.Millisecond + time.Duration(i-99)*time.Millisecond
	case i < 280:
		return 100*time.Millisecond + time.Duration(i-189)*10*time.Millisecond
	}
	return time.Second
}

func (h *histogram) add(d time.Duration) { h.b[bucketOf(d)]++; h.n++ }

func (h *histogram) merge(o *histogram) {
	for i := range h.b {
		h.b[i] += o.b[i]
	}
	h.n += o.n
}

// quantile is the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var acc int64
	for i, c := range h.b {
		acc += int64(c)
		if acc >= rank {
			return bucketUpper(i)
		}
	}
	return time.Second
}
