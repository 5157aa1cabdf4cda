package sip

import (
	"net/netip"
	"testing"
	"time"
)

func TestGuardAllowList(t *testing.T) {
	g := &Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("127.0.0.1/32")}}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "127.0.0.1": true, "10.2.0.1": false, "::ffff:10.1.0.9": true, "192.0.2.1": false,
	} {
		if got := g.allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if !(&Guard{}).allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("an empty allow-list must admit anyone")
	}
}

func TestGuardRateLimit(t *testing.T) {
	g := &Guard{RateLimit: 10, RateBurst: 5}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	now := time.Now()
	for i := 0; i < 5; i++ {
		if !g.take(a, now) {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	if g.take(a, now) {
		t.Errorf("request beyond the burst admitted")
	}
	if !g.take(b, now) {
		t.Errorf("another source is limited by the first one's traffic")
	}
	if !g.take(a, now.Add(100*time.Millisecond)) {
		t.Errorf("a token did not come back after 1/rate seconds")
	}
}

// The sources tracked are capped: a flood from more sources than the cap
// evicts those idle longest, and a busy source stays limited.
func TestGuardSourcesBounded(t *testing.T) {
	g := &Guard{RateLimit: 1, RateBurst: 2, MaxSources: 100}
	busy := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	g.take(busy, now)
	g.take(busy, now)
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if !g.take(src, now) {
			t.Fatalf("source %s refused on its first request", src)
		}
		if i%10 == 0 && g.take(busy, now) {
			t.Fatalf("the busy source got a token back after %d other sources", i)
		}
	}
	c := g.Counts()
	if c.Sources != 100 || len(g.buckets) != 100 {
		t.Errorf("Sources = %d (map %d), want the cap of 100", c.Sources, len(g.buckets))
	}
	if c.Evicted != 901 {
		t.Errorf("Evicted = %d, want 901", c.Evicted)
	}
	if _, ok := g.buckets[busy]; !ok {
		t.Errorf("the busy source was evicted")
	}
	checkList(t, g)
}

// A source idle long enough for its bucket to be full again is forgotten:
// by take as traffic goes on, by Sweep once it stopped; a map emptied by
// far is made anew.
func TestGuardIdleExpiry(t *testing.T) {
	g := &Guard{RateLimit: 10, RateBurst: 20} // full again after 2 s
	now := time.Now()
	for i := range 5000 {
		g.take(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), now)
	}
	g.take(netip.MustParseAddr("192.0.2.9"), now.Add(1500*time.Millisecond))
	if c := g.Counts(); c.Sources != 5001 {
		t.Errorf("after 1.5 s: Sources = %d, want 5001 (not yet full again)", c.Sources)
	}
	g.take(netip.MustParseAddr("192.0.2.1"), now.Add(2100*time.Millisecond))
	if c := g.Counts(); c.Sources != 2 || c.Evicted != 0 {
		t.Errorf("after 2.1 s: Sources = %d, Evicted %d; want 2 and 0", c.Sources, c.Evicted)
	}
	checkList(t, g)
	g.Sweep(now.Add(5 * time.Second))
	if c := g.Counts(); c.Sources != 0 || len(g.buckets) != 0 || g.peak != 0 {
		t.Errorf("after a sweep: Sources = %d, map %d, peak %d; want none", c.Sources, len(g.buckets), g.peak)
	}
	if !g.take(netip.MustParseAddr("192.0.2.1"), now.Add(6*time.Second)) || g.Counts().Sources != 1 {
		t.Errorf("the guard does not work after a sweep")
	}
	checkList(t, g)
}

// checkList checks that the list by last use holds exactly the map's
// buckets, oldest to most recent.
func checkList(t *testing.T, g *Guard) {
	t.Helper()
	n := 0
	var prev *bucket
	for b := g.oldest; b != nil; b = b.newer {
		if b.older != prev || g.buckets[b.src] != b {
			t.Fatalf("list broken at %s", b.src)
		}
		if prev != nil && b.last.Before(prev.last) {
			t.Fatalf("list out of order at %s", b.src)
		}
		prev, n = b, n+1
	}
	if prev != g.recent || n != len(g.buckets) {
		t.Fatalf("list holds %d buckets, map %d", n, len(g.buckets))
	}
}

func BenchmarkGuardTakeNewSources(b *testing.B) {
	g := &Guard{RateLimit: 10, RateBurst: 20}
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		g.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
}
