package media

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Generated packets (tones, the hold tone, silence, DTMF) are paced by
// pacersPerCPU pacers per CPU. A pacer cuts the 20 ms frame period into
// slots and sends each of its streams in one slot, so the sends of
// thousands of held calls spread over the period and over the CPUs instead
// of leaving in one burst from one goroutine. Deadlines are counted from a fixed epoch on the
// monotonic clock, so nothing drifts; a pacer that falls a whole frame
// behind skips frames rather than bursting, and the streams' RTP timestamps
// advance by the frames that elapsed, so the RTP clock keeps to real time.

const (
	framePeriod = 20 * time.Millisecond // one G.711 frame
	pacerSlots  = 10
	slotPeriod  = framePeriod / pacerSlots

	// More pacers than CPUs, so that a pacer's thread losing its core
	// for milliseconds holds up a quarter of that CPU's streams, not all
	// of them: the runtime runs the other pacers on the CPUs left, and
	// each catches up on a smaller slot. The sends also spread more
	// evenly over a slot.
	pacersPerCPU = 4
)

// scheduler is the set of pacers; a stream goes to the least loaded one
// when it starts generating and stays there until it stops.
type scheduler struct {
	pacers  []*pacer
	skipped atomic.Uint64 // frames skipped because a pacer ran late
}

// newScheduler makes n pacers (0: pacersPerCPU per CPU); run starts their
// goroutines, which tests leave off to drive the pacers by hand.
func newScheduler(n int, epoch time.Time, run bool) *scheduler {
	if n <= 0 {
		n = pacersPerCPU * runtime.GOMAXPROCS(0)
	}
	s := &scheduler{}
	for i := range n {
		// Pacers are offset within a slot so their wake-ups do not coincide.
		p := newPacer(epoch.Add(time.Duration(i) * slotPeriod / time.Duration(n)))
		s.pacers = append(s.pacers, p)
		if run {
			p.running = true
			go p.run()
		}
	}
	return s
}

// add puts st on the least loaded pacer. The stream's mutex is held.
func (s *scheduler) add(st *Stream) {
	best := s.pacers[0]
	for _, p := range s.pacers[1:] {
		if p.count.Load() < best.count.Load() {
			best = p
		}
	}
	st.pacer = best
	st.lastTick = time.Time{}
	best.add(st)
}

// remove takes st off its pacer. The stream's mutex is held.
func (s *scheduler) remove(st *Stream) {
	if st.pacer != nil {
		st.pacer.remove(st)
		st.pacer = nil
	}
}

func (s *scheduler) stop() {
	for _, p := range s.pacers {
		p.stop()
	}
}

// pacer sends the frames of its streams. Grid tick n is due at
// epoch + n×slotPeriod and serves slot n mod pacerSlots, so each stream's
// deadlines are exactly one frame period apart.
type pacer struct {
	epoch time.Time

	mu    sync.Mutex
	slots [pacerSlots][]*Stream // a stream's place is st.pslot, st.pidx
	count atomic.Int32

	next int64     // the next grid tick to run; owned by the running goroutine
	list []*Stream // reused snapshot of one slot

	running bool          // run was started (tests drive pacers by hand)
	wake    chan struct{} // a stream was added: the next tick may be sooner
	quit    chan struct{}
	done    chan struct{}
	stopped sync.Once
}

func newPacer(epoch time.Time) *pacer {
	return &pacer{epoch: epoch, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
}

func (p *pacer) add(st *Stream) {
	p.mu.Lock()
	k := 0
	for i := range p.slots {
		if len(p.slots[i]) < len(p.slots[k]) {
			k = i
		}
	}
	st.pslot, st.pidx = k, len(p.slots[k])
	p.slots[k] = append(p.slots[k], st)
	p.count.Add(1)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// remove is idempotent: a stream whose tick panicked is taken off by the
// pacer, then again by its owner.
func (p *pacer) remove(st *Stream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := p.slots[st.pslot]
	i := st.pidx
	if i >= len(slot) || slot[i] != st {
		return
	}
	last := len(slot) - 1
	slot[i] = slot[last]
	slot[i].pidx = i
	slot[last] = nil
	p.slots[st.pslot] = slot[:last]
	p.count.Add(-1)
}

func (p *pacer) stop() {
	p.stopped.Do(func() { close(p.quit) })
	if p.running {
		<-p.done
	}
}

func (p *pacer) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	p.next = p.tickAt(time.Now()) + 1
	for {
		next, ok := p.due(time.Now())
		var wait <-chan time.Time
		if ok {
			d := time.Until(next)
			if d <= 0 {
				continue
			}
			timer.Reset(d)
			wait = timer.C
		}
		select {
		case <-p.quit:
			return
		case <-wait:
		case <-p.wake:
			timer.Stop()
			if !ok {
				// Idle until now: start at the next tick, not at old ones.
				p.next = p.tickAt(time.Now()) + 1
			}
		}
	}
}

// tickAt is the latest grid tick due at now.
func (p *pacer) tickAt(now time.Time) int64 {
	d := now.Sub(p.epoch)
	if d < 0 {
		return -1
	}
	return int64(d / slotPeriod)
}

func (p *pacer) deadline(n int64) time.Time {
	return p.epoch.Add(time.Duration(n) * slotPeriod)
}

// due runs every grid tick due at now and returns when the next tick with
// streams is due (false: the pacer has no streams). A pacer a whole period
// or more behind runs each slot once, at its latest deadline: the frames
// in between are skipped.
func (p *pacer) due(now time.Time) (time.Time, bool) {
	last := p.tickAt(now)
	if behind := last - p.next + 1; behind > pacerSlots {
		p.next = last - pacerSlots + 1
	}
	for ; p.next <= last; p.next++ {
		p.runSlot(int(p.next%pacerSlots), p.deadline(p.next))
	}
	// Sleep through empty slots. p.next stays: a stream added meanwhile
	// to an earlier slot wakes the pacer, which then runs that slot.
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := p.next; n < p.next+pacerSlots; n++ {
		if len(p.slots[n%pacerSlots]) > 0 {
			return p.deadline(n), true
		}
	}
	return time.Time{}, false
}

func (p *pacer) runSlot(k int, at time.Time) {
	p.mu.Lock()
	p.list = append(p.list[:0], p.slots[k]...)
	p.mu.Unlock()
	for _, st := range p.list {
		p.tick(st, at)
	}
	clear(p.list) // closed streams are not kept alive
}

// tick runs one stream's tick; a panic there takes that stream off the
// pacer, and the others go on.
func (p *pacer) tick(st *Stream, at time.Time) {
	defer func() {
		if r := recover(); r != nil {
			p.remove(st)
			st.fault("tick", r)
		}
	}()
	st.tick(p, at)
}
