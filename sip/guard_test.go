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
