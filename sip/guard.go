package sip

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// Guard keeps strangers out: an allow-list of source networks and a
// per-source rate limit on the requests a scanner sends (INVITE, REGISTER,
// OPTIONS). Refused requests get 403 / 503, or nothing when Drop is set,
// and are counted. Over UDP it decides in the transport's read filter,
// before sipgo parses the datagram; over TCP and TLS once the request is
// parsed.
type Guard struct {
	Allow     []netip.Prefix // empty = anyone
	RateLimit int            // requests per second per source IP; 0 = off
	RateBurst int
	Drop      bool
	// MaxSources bounds the sources whose rate is tracked; the one idle
	// longest makes room for a new one. 0 = DefaultMaxSources.
	MaxSources int

	log zerolog.Logger // set by NewEndpoint

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	// recent and oldest are the ends of a list of the buckets by last use,
	// so that idle ones are found without scanning the map.
	recent, oldest *bucket
	peak           int // the most buckets the map held since it was made

	deniedNet, deniedRate atomic.Uint64
	// replies spends tokens on refusal responses over UDP, so a flood of
	// refused requests cannot make uad a reflector.
	replies      replyBudget
	unanswered   atomic.Uint64
	evicted      atomic.Uint64
	sourcesGauge atomic.Int64
	warnEvict    throttle
}

// DefaultMaxSources is how many sources a Guard tracks at most when
// MaxSources is 0: about 10 MiB of state.
const DefaultMaxSources = 65536

// GuardCounts are the requests a Guard refused, by reason, and the state it
// holds.
type GuardCounts struct {
	NotAllowed  uint64
	RateLimited uint64
	// Unanswered counts refused requests that got no 403/503 although
	// reject is respond, because refusal responses were over their rate.
	Unanswered uint64
	// Sources is how many sources' rates are tracked now; Evicted counts
	// those dropped to make room before they were idle long enough.
	Sources int
	Evicted uint64
}

// Counts returns how many requests were refused, and the sources tracked.
func (g *Guard) Counts() GuardCounts {
	return GuardCounts{
		NotAllowed:  g.deniedNet.Load(),
		RateLimited: g.deniedRate.Load(),
		Unanswered:  g.unanswered.Load(),
		Sources:     int(g.sourcesGauge.Load()),
		Evicted:     g.evicted.Load(),
	}
}

// bucket is one source's token bucket, linked into the Guard's list by
// last use.
type bucket struct {
	src          netip.Addr
	tokens       float64
	last         time.Time
	newer, older *bucket
}

// allowed reports whether src is in the allow-list.
func (g *Guard) allowed(src netip.Addr) bool {
	if len(g.Allow) == 0 {
		return true
	}
	src = src.Unmap()
	for _, p := range g.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// idleLimit is how long a bucket takes to fill up again: one idle that long
// is the same as a new one, so it can be forgotten.
func (g *Guard) idleLimit() time.Duration {
	burst := max(g.RateBurst, 1)
	return max(time.Duration(float64(burst)/float64(g.RateLimit)*float64(time.Second)), time.Second)
}

// take spends one token of src's bucket; false when it is empty.
func (g *Guard) take(src netip.Addr, now time.Time) bool {
	if g.RateLimit <= 0 {
		return true
	}
	src = src.Unmap()
	burst := float64(max(g.RateBurst, 1))
	evicted := false
	defer func() {
		if evicted && g.warnEvict.ok(now) {
			g.log.Warn().Int64("sources", g.sourcesGauge.Load()).Uint64("evicted", g.evicted.Load()).
				Msg("SIP rate limit: more sources than sip.rate_sources; those idle longest give way")
		}
	}()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.buckets == nil {
		g.buckets = map[netip.Addr]*bucket{}
	}
	g.expire(now)
	b, ok := g.buckets[src]
	if ok {
		g.unlink(b)
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*float64(g.RateLimit))
	} else {
		limit := g.MaxSources
		if limit <= 0 {
			limit = DefaultMaxSources
		}
		if len(g.buckets) >= limit {
			// A flood from more sources than the limit: the one idle
			// longest goes; a busy source stays at the other end.
			g.evicted.Add(1)
			evicted = true
			g.remove(g.oldest)
		}
		b = &bucket{src: src, tokens: burst}
		g.buckets[src] = b
		g.peak = max(g.peak, len(g.buckets))
	}
	b.last = now
	g.pushRecent(b)
	g.sourcesGauge.Store(int64(len(g.buckets)))
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// expire forgets the buckets idle long enough to be full again, from the
// oldest end of the list: each call costs what it removes.
func (g *Guard) expire(now time.Time) {
	idle := g.idleLimit()
	for g.oldest != nil && now.Sub(g.oldest.last) > idle {
		g.remove(g.oldest)
	}
	g.sourcesGauge.Store(int64(len(g.buckets)))
}

// Sweep forgets idle sources; take does it as it goes, so this matters
// once traffic stopped. A map emptied by far is copied into a smaller one,
// since Go's maps keep their size once grown.
func (g *Guard) Sweep(now time.Time) {
	if g.RateLimit <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	if g.peak > 1024 && len(g.buckets) < g.peak/8 {
		m := make(map[netip.Addr]*bucket, len(g.buckets))
		for a, b := range g.buckets {
			m[a] = b
		}
		g.buckets, g.peak = m, len(m)
	}
}

// sweepEvery sweeps until ctx ends.
func (g *Guard) sweepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.Sweep(now)
		}
	}
}

func (g *Guard) remove(b *bucket) {
	g.unlink(b)
	delete(g.buckets, b.src)
}

func (g *Guard) unlink(b *bucket) {
	if b.newer != nil {
		b.newer.older = b.older
	} else {
		g.recent = b.older
	}
	if b.older != nil {
		b.older.newer = b.newer
	} else {
		g.oldest = b.newer
	}
	b.newer, b.older = nil, nil
}

func (g *Guard) pushRecent(b *bucket) {
	b.older = g.recent
	if g.recent != nil {
		g.recent.newer = b
	}
	g.recent = b
	if g.oldest == nil {
		g.oldest = b
	}
}

// replyBudget is a token bucket shared by every source: at most
// refusalRate refusal responses a second, refusalRate at once.
type replyBudget struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

const refusalRate = 200

func (r *replyBudget) take(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.IsZero() {
		r.tokens = refusalRate
	} else {
		r.tokens = min(refusalRate, r.tokens+now.Sub(r.last).Seconds()*refusalRate)
	}
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// limited reports whether a method counts against the rate limit.
func limited(m gosip.RequestMethod) bool {
	return m == gosip.INVITE || m == gosip.REGISTER || m == gosip.OPTIONS
}

// admit decides on a request that came over a stream transport (UDP ones
// were decided by the read filter); when it refuses, it has responded (or
// dropped) and counted.
func (e *Endpoint) admit(req *gosip.Request, tx gosip.ServerTransaction) bool {
	g := e.cfg.Guard
	if g == nil || e.filtered(req) {
		return true
	}
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return true
	}
	src := ap.Addr()
	inDialog := false
	if to := req.To(); to != nil {
		_, inDialog = to.Params.Get("tag")
	}
	switch {
	case !g.allowed(src):
		g.deniedNet.Add(1)
		e.log.Debug().Str("source", src.String()).Str("method", string(req.Method)).Msg("SIP request from a network not allowed")
		if !g.Drop && !req.IsAck() {
			e.reply(tx, req, 403, "Forbidden", nil)
		}
		return false
	case limited(req.Method) && !inDialog && !g.take(src, time.Now()):
		g.deniedRate.Add(1)
		e.log.Debug().Str("source", src.String()).Str("method", string(req.Method)).Msg("SIP request over the rate limit")
		if !g.Drop {
			e.reply(tx, req, 503, "Service Unavailable", nil, gosip.NewHeader("Retry-After", "5"))
		}
		return false
	}
	return true
}
