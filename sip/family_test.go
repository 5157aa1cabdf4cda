package sip

import (
	"net/netip"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// With listeners of both families, Contact and Via name the listener of
// the peer's family, IPv6 in brackets (RFC 3261 §19.1.1, §25: IPv6reference),
// and a UDP request leaves from that listener's socket.
func TestContactAndViaFollowFamily(t *testing.T) {
	ap := netip.MustParseAddrPort
	ep, err := NewEndpoint(zerolog.Nop(), Config{Listeners: []Listener{
		{"udp", ap("127.0.0.1:5070")}, {"udp", ap("[::1]:5072")}, {"tcp", ap("[::1]:5074")},
	}}, noCalls{})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	v4, v6 := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")
	tests := []struct {
		network string
		peer    netip.Addr
		want    string
	}{
		{"udp", v4, "sip:uad@127.0.0.1:5070"},
		{"udp", v6, "sip:uad@[::1]:5072"},
		{"udp", netip.Addr{}, "sip:uad@127.0.0.1:5070"},
		{"tcp", v6, "sip:uad@[::1]:5074;transport=tcp"},
		{"tcp", v4, "sip:uad@[::1]:5074;transport=tcp"}, // the only TCP listener
	}
	for _, tt := range tests {
		c := ep.Contact("uad", tt.network, tt.peer)
		if got := c.String(); got != tt.want {
			t.Errorf("Contact(%s, %v) = %s, want %s", tt.network, tt.peer, got, tt.want)
		}
		var back gosip.Uri
		if err := gosip.ParseUri(c.String(), &back); err != nil || back.Host != c.Host {
			t.Errorf("Contact %s reads back with host %q (%v), want %q", c.String(), back.Host, err, c.Host)
		}
	}

	for _, tt := range []struct{ target, via, laddr string }{
		{"sip:bob@[2001:db8::7]:5062", "SIP/2.0/UDP [::1]:5072;", "[::1]:5072"},
		{"sip:bob@192.0.2.7:5062", "SIP/2.0/UDP 127.0.0.1:5070;", "127.0.0.1:5070"},
	} {
		var to gosip.Uri
		if err := gosip.ParseUri(tt.target, &to); err != nil {
			t.Fatal(err)
		}
		req := gosip.NewRequest(gosip.OPTIONS, to)
		req.SetTransport("UDP")
		ep.addVia(req, "udp")
		if got := req.Via().Value(); !strings.HasPrefix(got, tt.via) {
			t.Errorf("Via to %s = %s, want %s...", tt.target, got, tt.via)
		}
		if got := req.Laddr.String(); got != tt.laddr {
			t.Errorf("request to %s leaves from %s, want %s", tt.target, got, tt.laddr)
		}
		if got := req.Destination(); addrOf(got) != HostAddr(to.Host) {
			t.Errorf("destination %s does not parse back to %s", got, to.Host)
		}
	}
}

// sip.advertise may name an IPv6 host with or without a port.
func TestAdvertisedIPv6(t *testing.T) {
	for adv, want := range map[string]string{
		"[2001:db8::1]:5080": "sip:uad@[2001:db8::1]:5080",
		"[2001:db8::1]":      "sip:uad@[2001:db8::1]:5060",
		"sip.example.com":    "sip:uad@sip.example.com:5060",
	} {
		ep, err := NewEndpoint(zerolog.Nop(), Config{Advertise: adv, Listeners: []Listener{{"udp", netip.MustParseAddrPort("[::]:5060")}}}, noCalls{})
		if err != nil {
			t.Fatal(err)
		}
		c := ep.Contact("uad", "udp", netip.Addr{})
		if got := c.String(); got != want {
			t.Errorf("advertise %s: Contact %s, want %s", adv, got, want)
		}
		ep.Close()
	}
}

// A route through an IPv6 proxy is a destination net.Dial takes.
func TestRouteDestinationIPv6(t *testing.T) {
	var route gosip.Uri
	if err := gosip.ParseUri("sip:[2001:db8::9]:5070;lr", &route); err != nil {
		t.Fatal(err)
	}
	if got := hostPort(route); got != "[2001:db8::9]:5070" {
		t.Errorf("hostPort = %s, want [2001:db8::9]:5070", got)
	}
	if got := URIHost("::1") + "," + URIHost("127.0.0.1") + "," + URIHost("example.com"); got != "[::1],127.0.0.1,example.com" {
		t.Errorf("URIHost = %s", got)
	}
}

// Record-Route and Contact with IPv6 literals: the in-dialog request goes
// to the first route (a destination net.Dial takes), keeps every Route in
// brackets, and targets the peer's bracketed Contact (RFC 3261 §12.2.1.1).
func TestDialogRoutesIPv6(t *testing.T) {
	raw := "INVITE sip:uad@[::1]:5060 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK-p1\r\n" +
		"Via: SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bK-a1\r\n" +
		"Record-Route: <sip:[2001:db8::9]:5070;lr>, <sip:192.0.2.5;lr>\r\n" +
		"From: <sip:alice@[2001:db8::7]>;tag=a\r\nTo: <sip:uad@[::1]>\r\nCall-ID: rr6\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:alice@[2001:db8::7]:5062>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	msg, err := gosip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	inv := msg.(*gosip.Request)
	inv.SetTransport("UDP")
	d, err := NewUASDialog(inv, gosip.Uri{Scheme: "sip", User: "uad", Host: URIHost("::1"), Port: 5060}, "")
	if err != nil {
		t.Fatal(err)
	}
	bye := d.NewRequest(gosip.BYE, nil)
	if got := bye.Recipient.String(); got != "sip:alice@[2001:db8::7]:5062" {
		t.Errorf("Request-URI %s, want the bracketed Contact", got)
	}
	if got := bye.Destination(); got != "[2001:db8::9]:5070" {
		t.Errorf("destination %s, want the first route [2001:db8::9]:5070", got)
	}
	var routes []string
	for _, h := range bye.GetHeaders("Route") {
		routes = append(routes, h.Value())
	}
	if got := strings.Join(routes, ", "); got != "<sip:[2001:db8::9]:5070;lr>, <sip:192.0.2.5;lr>" {
		t.Errorf("Route %s, want the Record-Route set in order, IPv6 in brackets", got)
	}
	res := d.Response(inv, 200, "OK", nil)
	if ct := res.Contact(); ct == nil || ct.Address.String() != "sip:uad@[::1]:5060" {
		t.Errorf("200 Contact %v, want <sip:uad@[::1]:5060>", ct)
	}
}

// What sipgo's URI parser lets through in brackets is refused here.
func TestCheckIPv6Reference(t *testing.T) {
	for raw, ok := range map[string]bool{
		"sip:bob@[::1]:5062":                  true,
		"sip:bob@[2001:db8::7];transport=tcp": true,
		"sips:[::1]":                          true,
		"sip:bob@192.0.2.1:5060":              true,
		"sip:bob@[::g]:5060":                  false,
		"sip:bob@[192.0.2.1]":                 false,
		"sip:bob@[::1]]:5060":                 false,
		"sip:bob@[::1]x":                      false,
	} {
		var u gosip.Uri
		if err := gosip.ParseUri(raw, &u); err != nil {
			t.Fatalf("%s: sipgo refused it: %v", raw, err)
		}
		if err := CheckIPv6Reference(raw, &u); (err == nil) != ok {
			t.Errorf("CheckIPv6Reference(%s) = %v, want ok=%v", raw, err, ok)
		}
	}
}
