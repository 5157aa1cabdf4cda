package main

import (
	"net/netip"

	"uad/config"
	"uad/dialog"
)

// mediaAddrs are the media addresses calls choose from, one per address
// family. media.bind (or else media.advertise) fixes a single family (both
// for a bind to "::", which takes IPv4 too), so every call has media of
// it; without either, each family of sip.listen gets the address of its
// first listener, and a call's media follows the family of its signalling.
func mediaAddrs(cfg *config.Config) []dialog.MediaAddr {
	bind, bindErr := netip.ParseAddr(cfg.Media.Bind)
	advertise, advErr := netip.ParseAddr(cfg.Media.Advertise)
	switch {
	case bindErr == nil && advErr == nil:
		return []dialog.MediaAddr{{Bind: bind, Advertise: advertise}}
	case bindErr == nil:
		return onAddress(bind)
	case advErr == nil:
		bind = unspecified(advertise)
		for _, l := range cfg.SIP.Listeners {
			if a := l.Addr.Addr(); a.Is4() == advertise.Is4() {
				bind = a
				break
			}
		}
		return []dialog.MediaAddr{{Bind: bind, Advertise: advertise}}
	}
	var out []dialog.MediaAddr
	seen := map[bool]bool{} // by Is4
	for _, l := range cfg.SIP.Listeners {
		for _, m := range onAddress(l.Addr.Addr().Unmap()) {
			if !seen[m.Advertise.Is4()] {
				seen[m.Advertise.Is4()] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// onAddress is the media of sockets bound to a: one family, or both for
// the IPv6 wildcard, whose sockets take IPv4 too (IPv4 first, as before
// uad spoke IPv6).
func onAddress(a netip.Addr) []dialog.MediaAddr {
	if a == netip.IPv6Unspecified() {
		return []dialog.MediaAddr{
			{Bind: a, Advertise: netip.AddrFrom4([4]byte{127, 0, 0, 1})},
			{Bind: a, Advertise: netip.IPv6Loopback()},
		}
	}
	return []dialog.MediaAddr{{Bind: a, Advertise: reachable(a)}}
}

// reachable is the address to write in c= for sockets bound to a: a
// itself, or the loopback address of its family for a wildcard bind
// (media.advertise names the public one).
func reachable(a netip.Addr) netip.Addr {
	switch {
	case !a.IsUnspecified():
		return a
	case a.Is4():
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.IPv6Loopback()
}

// unspecified is the wildcard address of a's family.
func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
