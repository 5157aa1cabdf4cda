package sip

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	gosip "github.com/emiago/sipgo/sip"
)

// Guard keeps strangers out: an allow-list of source networks and a
// per-source rate limit on the requests a scanner sends (INVITE, REGISTER,
// OPTIONS). Refused requests get 403 / 503, or nothing when Drop is set,
// and are counted.
type Guard struct {
	Allow     []netip.Prefix // empty = anyone
	RateLimit int            // requests per second per source IP; 0 = off
	RateBurst int
	Drop      bool

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket

	deniedNet, deniedRate atomic.Uint64
}

// GuardCounts are the requests a Guard refused, by reason.
type GuardCounts struct {
	NotAllowed  uint64
	RateLimited uint64
}

// Counts returns how many requests were refused.
func (g *Guard) Counts() GuardCounts {
	return GuardCounts{NotAllowed: g.deniedNet.Load(), RateLimited: g.deniedRate.Load()}
}

type bucket struct {
	tokens float64
	last   time.Time
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

// take spends one token of src's bucket; false when it is empty.
func (g *Guard) take(src netip.Addr, now time.Time) bool {
	if g.RateLimit <= 0 {
		return true
	}
	burst := float64(max(g.RateBurst, 1))
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.buckets == nil {
		g.buckets = map[netip.Addr]*bucket{}
	}
	b, ok := g.buckets[src]
	if !ok {
		if len(g.buckets) > 100000 {
			g.evictIdle(now) // a scan from many addresses must not grow memory forever
		}
		b = &bucket{tokens: burst, last: now}
		g.buckets[src] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*float64(g.RateLimit))
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (g *Guard) evictIdle(now time.Time) {
	for a, b := range g.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(g.buckets, a)
		}
	}
}

// limited reports whether a method counts against the rate limit.
func limited(m gosip.RequestMethod) bool {
	return m == gosip.INVITE || m == gosip.REGISTER || m == gosip.OPTIONS
}

// admit decides on a request; when it refuses, it has responded (or
// dropped) and counted.
func (e *Endpoint) admit(req *gosip.Request, tx gosip.ServerTransaction) bool {
	g := e.cfg.Guard
	if g == nil {
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
