package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	gosip "github.com/emiago/sipgo/sip"
)

// IPv6 literals: sipgo keeps a parsed URI host in brackets ("[::1]") and a
// parsed Via host without them ("::1"), and writes either form correctly.
// What uad builds itself follows the same conventions, so hosts compare
// and Request.Destination (host + ":" + port) stays a valid address.

// URIHost is host as a SIP URI writes it (RFC 3261 §25: IPv6reference):
// an IPv6 literal in brackets, anything else unchanged.
func URIHost(host string) string {
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		return "[" + host + "]"
	}
	return host
}

// HostAddr is the IP address a URI or Via host names, brackets or not;
// invalid for a domain name.
func HostAddr(host string) netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// CheckIPv6Reference checks the IPv6 reference ("[...]") of a URI sipgo
// parsed from raw: sipgo takes whatever stands in the brackets and drops
// what follows the closing one up to the port, so "[::g]" and
// "[::1]]:5060" pass its parser.
func CheckIPv6Reference(raw string, u *gosip.Uri) error {
	if !strings.HasPrefix(u.Host, "[") {
		return nil
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err != nil || !a.Is6() {
		return fmt.Errorf("%s is not an IPv6 address", u.Host)
	}
	hostpart := raw[strings.IndexByte(raw, '@')+1:] // after the userinfo, if any
	i := strings.Index(hostpart, u.Host)
	if i < 0 {
		return fmt.Errorf("%s is not the URI's host", u.Host)
	}
	if rest := hostpart[i+len(u.Host):]; rest != "" && !strings.ContainsRune(":;?>", rune(rest[0])) {
		return fmt.Errorf("unexpected text after %s", u.Host)
	}
	return nil
}

// addrOf is the IP address of a "host:port" (or "[v6]:port") destination;
// invalid when the host is a name.
func addrOf(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return HostAddr(host)
}

// sameFamily reports whether a and b are both IPv4 or both IPv6.
func sameFamily(a, b netip.Addr) bool { return a.Unmap().Is4() == b.Unmap().Is4() }
