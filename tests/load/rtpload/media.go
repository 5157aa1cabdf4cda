package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"math"
	"math/bits"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"golang.org/x/sys/unix"

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

// call is one call of the run: its address, its sender state (owned by
// its shard's sender) and its receiver state (owned by its shard's reader).
type call struct {
	idx       int
	m         *media
	ip        netip.Addr // the call's own loopback address
	port      int        // its shard's port: the call's RTP port
	sh        *shard
	dlg       *sipgo.DialogClientSession
	sipCallID string
	uadID     string
	src       int // index of the call whose packets this one should receive (itself: echo)

	remote     atomic.Pointer[netip.AddrPort]
	name       unix.RawSockaddrInet4 // remote, for sendmmsg; set before active
	pktinfo    []byte                // sends from ip
	active     atomic.Bool           // sending
	byeFromUAD atomic.Bool
	reinvites  atomic.Int32

	// Sender-owned.
	seq        uint16
	ts         uint32
	sent       atomic.Uint32 // packets sent; the next packet's counter
	sendFailed atomic.Int64  // of those, refused by the kernel: not expected back

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
	// The hold tone's timing: its RTP clock against the arrival times.
	pace pacing
}

func (c *call) setRemote(ap netip.AddrPort) error {
	sa, err := sockaddr(ap)
	if err != nil {
		return err
	}
	c.name = sa
	c.remote.Store(&ap)
	return nil
}

// shard is one sender goroutine's share of the calls and its socket.
type shard struct {
	sc    *shardConn
	slots [slots][]*call
}

// media owns the shards and the calls.
type media struct {
	o      options
	calls  []*call
	shards []*shard
	base   netip.Addr       // the first call's address
	frame  [frameBytes]byte // a 1000 Hz µ-law frame (8-sample period: every frame alike)

	stopSend chan struct{}
	quit     chan struct{}
	sending  sync.WaitGroup // shards still sending
	running  sync.WaitGroup // shards still reading
	lateMu   sync.Mutex
	ticks    int64
	late     histogram // how late each send tick ran
	lateMax  time.Duration
	stopped  atomic.Bool
	closed   atomic.Bool
}

func newMedia(o options, base netip.Addr) *media {
	m := &media{o: o, base: base, stopSend: make(chan struct{}), quit: make(chan struct{})}
	for k := range m.frame {
		m.frame[k] = g711.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*1000*float64(k)/8000)))
	}
	return m
}

// callsPerOctet keeps every call address's last octet in 1..250.
const callsPerOctet = 250

// callAddr is call i's address: base (x.y.z.1), then on through x.y.z.250,
// x.y.z+1.1 and so on.
func callAddr(base netip.Addr, i int) (netip.Addr, bool) {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i/callsPerOctet)<<8 + uint32(i%callsPerOctet)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return a, a.IsLoopback()
}

// callAt is the call whose address is a (nil: none).
func (m *media) callAt(a netip.Addr) *call {
	x, b := a.As4(), m.base.As4()
	hi := (int(x[0])<<16 | int(x[1])<<8 | int(x[2])) - (int(b[0])<<16 | int(b[1])<<8 | int(b[2]))
	lo := int(x[3]) - int(b[3])
	if hi < 0 || lo < 0 || lo >= callsPerOctet {
		return nil
	}
	if i := hi*callsPerOctet + lo; i < len(m.calls) {
		return m.calls[i]
	}
	return nil
}

// open binds one socket per shard on even ports of [lo, hi] and gives
// every call its address, its shard and its slot.
func (m *media) open(lo, hi int) error {
	if m.base.As4()[3] != 1 {
		return fmt.Errorf("-rtp-base %s: the last octet must be 1", m.base)
	}
	if _, ok := callAddr(m.base, m.o.calls-1); !ok || !m.base.IsLoopback() {
		return fmt.Errorf("-rtp-base %s: %d call addresses do not fit in 127.0.0.0/8", m.base, m.o.calls)
	}
	port := lo + lo%2
	for range m.o.senders {
		var sc *shardConn
		for ; port+1 <= hi && sc == nil; port += 2 {
			sc, _ = listenShard(port)
		}
		if sc == nil {
			return fmt.Errorf("no free port left in %s for sender %d", m.o.rtpPorts, len(m.shards))
		}
		m.shards = append(m.shards, &shard{sc: sc})
	}
	for i := range m.o.calls {
		g := m.shards[i%len(m.shards)]
		ip, _ := callAddr(m.base, i)
		c := &call{idx: i, m: m, ip: ip, port: g.sc.port, sh: g, src: i, pktinfo: pktinfo(ip)}
		c.toneFrom.Store(-1)
		c.toneDone.Store(-1)
		m.calls = append(m.calls, c)
		s := (i / len(m.shards)) % slots
		g.slots[s] = append(g.slots[s], c)
	}
	return nil
}

// closeSockets stops the shards and closes their sockets; what they
// measured can be read after.
func (m *media) closeSockets() {
	if m.closed.Swap(true) {
		return
	}
	m.stopSending()
	close(m.quit)
	m.running.Wait()
	for _, g := range m.shards {
		g.sc.close()
	}
}

func (m *media) close() {
	m.closeSockets()
}

// start runs one goroutine per shard. Every 2 ms, on deadlines counted
// from one start (monotonic clock), so nothing drifts, it sends one slot
// of its calls in one sendmmsg, then reads whatever has arrived: the kernel
// stamps each datagram's arrival, so reading at that cadence costs no
// accuracy, and saves a wake-up for every packet. A late shard catches up
// at once.
func (m *media) start() {
	start := time.Now()
	for _, g := range m.shards {
		m.running.Add(1)
		m.sending.Add(1)
		go m.run(g, start)
	}
}

func (m *media) run(g *shard, start time.Time) {
	defer m.running.Done()
	step := period / slots
	most := 0
	for _, s := range g.slots {
		most = max(most, len(s))
	}
	batch := newSendBatch(max(most, 1), headerLen+frameBytes)
	rb := newRecvBatch(64, 2048)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ticks int64
	var late histogram
	var lateMax time.Duration
	sending := true
	stopSending := func() {
		sending = false
		m.lateMu.Lock()
		m.ticks += ticks
		m.late.merge(&late)
		m.lateMax = max(m.lateMax, lateMax)
		m.lateMu.Unlock()
		m.sending.Done()
	}
	defer func() {
		if sending {
			stopSending()
		}
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
		}
		select {
		case <-m.quit:
			return
		case <-m.stopSend:
			if sending {
				stopSending()
			}
		default:
		}
		if sending {
			now := time.Now()
			d := now.Sub(deadline)
			ticks++
			late.add(d)
			lateMax = max(lateMax, d)
			stamp := uint32(now.UnixMicro())
			for _, c := range g.slots[k%slots] {
				if c.active.Load() {
					c.fill(batch.next(c), stamp)
				}
			}
			_ = batch.flush(g.sc)
		}
		m.drain(g, rb)
	}
}

// stopSending stops the sends and waits until the last went out; the
// shards go on reading.
func (m *media) stopSending() {
	if m.stopped.Swap(true) {
		return
	}
	close(m.stopSend)
	m.sending.Wait()
}

// fill writes the call's next packet into buf: uad's negotiated PCMU, a
// 1000 Hz tone whose first bytes carry the marker, the call index, the
// counter and the send time (Unix µs, modulo 2³²).
func (c *call) fill(buf []byte, stamp uint32) {
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
	binary.BigEndian.PutUint32(p[10:], stamp)
	c.seq++
	c.ts += frameBytes
	c.sent.Store(n + 1)
}

// drain reads every datagram queued at the shard's socket and hands each
// to the call it was sent to.
func (m *media) drain(g *shard, b *recvBatch) {
	for {
		n, err := b.readNow(g.sc)
		if err != nil || n == 0 {
			return
		}
		for i := range n {
			data, dst, arrival := b.message(i)
			if arrival == 0 {
				arrival = time.Now().UnixNano()
			}
			if c := m.callAt(dst); c != nil {
				c.onPacket(data, arrival)
			}
		}
		if n < len(b.hdrs) {
			return // the queue is empty
		}
	}
}

func (c *call) onPacket(b []byte, arrival int64) {
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
		sent := binary.BigEndian.Uint32(payload[10:])
		if from != c.src {
			r.misroute++
			return
		}
		r.mark(cnt)
		if td := c.toneDone.Load(); td >= 0 && cnt >= td {
			r.leaked++
		}
		// Send and arrival times are both the realtime clock's.
		transit := int64(int32(uint32(arrival/1000) - sent))
		rtt := time.Duration(transit) * time.Microsecond
		r.rtt.add(rtt)
		r.rttMax = max(r.rttMax, rtt)
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
	if c.toneFrom.Load() < 0 || pt != 0 {
		return
	}
	r.pace.add(binary.BigEndian.Uint32(b[4:]), arrival)
	// The tone check costs a Goertzel: enough frames prove it.
	if r.tone < 4*minToneFrames && isTone(payload, c.m.o.holdFreq) {
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
// pair; with all, every call and one leg of every pair) through the API.
// Each party that then should hear the hold tone (the held call's; in a
// bridge also its partner's) notes its source's counter when the request
// went out and when it returned. With all, a held party then stops
// sending, as a phone that answered recvonly does, so that uad only paces
// hold tones.
func (m *media) holdHalf(ctx context.Context, api *apiClient, all bool) (requested, failed int, took time.Duration) {
	every := 2
	if all {
		every = 1
	}
	var targets []*call
	for _, c := range m.calls {
		if !c.active.Load() || c.uadID == "" {
			continue
		}
		if c.src == c.idx && c.idx%every == 0 || c.src != c.idx && c.idx%(2*every) == 0 {
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
		if all {
			for _, p := range parties {
				p.active.Store(false)
			}
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
	m.closeSockets()
	var jit []float64
	for _, c := range m.calls {
		if c.remote.Load() == nil || m.o.bridge && c.src == c.idx {
			continue
		}
		r.active++
		src := m.calls[c.src]
		sent := int64(src.sent.Load())
		r.sent += int64(c.sent.Load())
		r.sendFailed += c.sendFailed.Load()
		want := sent
		if tf := c.toneFrom.Load(); tf >= 0 {
			want = max(tf-holdGuard, 0)
		}
		rx := &c.rx
		got := rx.receivedBelow(want)
		// What the kernel refused to send never reached uad.
		want -= min(src.sendFailed.Load(), want-got)
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
			r.pace.merge(&rx.pace)
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
