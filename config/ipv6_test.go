package config

import (
	"net/netip"
	"testing"
)

// Listeners of both families parse, at once, with the address and the
// family sip and media take from them.
func TestIPv6Listeners(t *testing.T) {
	tests := []struct {
		raw     string
		network string
		addr    string
	}{
		{"udp://[::1]:5060", "udp", "[::1]:5060"},
		{"tcp://[::1]:5060", "tcp", "[::1]:5060"},
		{"tls://[::1]:5061", "tls", "[::1]:5061"},
		{"UDP://[2001:db8::10]:5070", "udp", "[2001:db8::10]:5070"},
		{"udp://[::]:5060", "udp", "[::]:5060"},
		{"tcp://[fe80::1%lo]:5060", "tcp", "[fe80::1%lo]:5060"},
		{"udp://[::1]:0", "udp", "[::1]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			l, err := parseListener(tt.raw)
			if err != nil {
				t.Fatalf("parseListener(%q): %v", tt.raw, err)
			}
			if l.Network != tt.network || l.Addr != netip.MustParseAddrPort(tt.addr) || !l.Addr.Addr().Is6() {
				t.Errorf("parseListener(%q) = %s %s, want %s %s (IPv6)", tt.raw, l.Network, l.Addr, tt.network, tt.addr)
			}
		})
	}

	for _, media := range []string{"bind: \"::\"\n  advertise: 198.51.100.7", "bind: \"::1\"\n  advertise: \"2001:db8::1\""} {
		if _, err := Parse("ok.yaml", []byte("media:\n  "+media+"\n")); err != nil {
			t.Errorf("%s: %v", media, err)
		}
	}

	yaml := "sip:\n  listen: [\"udp://127.0.0.1:5070\", \"udp://[::1]:5070\", \"tcp://[::1]:5070\", \"tcp://127.0.0.1:5070\"]\n" +
		"media:\n  advertise: \"2001:db8::7\"\n"
	cfg, err := Parse("v6.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("listeners of both families: %v", err)
	}
	if len(cfg.SIP.Listeners) != 4 || !cfg.SIP.Listeners[1].Addr.Addr().Is6() || !cfg.SIP.Listeners[3].Addr.Addr().Is4() {
		t.Errorf("listeners = %+v", cfg.SIP.Listeners)
	}
	if cfg.Media.Bind != "" {
		t.Errorf("media.bind = %q; an unset bind must stay empty so each call binds in its own family", cfg.Media.Bind)
	}
}

// Bad IPv6 addresses are reported as file:line: reason.
func TestIPv6Errors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"listener without brackets", "sip:\n  listen: [\"udp://::1:5060\"]\n",
			`bad.yaml:2: sip.listen[0]: "udp://::1:5060": an IPv6 address needs brackets: want [IPv6]:PORT, e.g. [::1]:5060`},
		{"long listener without brackets", "sip:\n  listen: [\"tls://2001:db8::1:5061\"]\n",
			`bad.yaml:2: sip.listen[0]: "tls://2001:db8::1:5061": an IPv6 address needs brackets: want [IPv6]:PORT, e.g. [::1]:5060`},
		{"listener without port", "sip:\n  listen: [\"udp://[::1]\"]\n",
			`bad.yaml:2: sip.listen[0]: "udp://[::1]": want IP:PORT`},
		{"listener unclosed bracket", "sip:\n  listen: [\"udp://[::1:5060\"]\n",
			`bad.yaml:2: sip.listen[0]: "udp://[::1:5060": want IP:PORT`},
		{"listener not an address", "sip:\n  listen: [\"udp://[::g]:5060\"]\n",
			`bad.yaml:2: sip.listen[0]: "udp://[::g]:5060": "::g" is not an IP address`},
		{"duplicate v6 listener", "sip:\n  listen:\n    - udp://[::1]:5070\n    - udp://[0:0::1]:5070\n",
			`bad.yaml:4: sip.listen[1]: "udp://[0:0::1]:5070" duplicates sip.listen[0]`},
		{"media bind in brackets", "media:\n  bind: \"[::1]\"\n",
			`bad.yaml:2: media.bind: "[::1]": want an IP address without brackets, e.g. ::1`},
		{"media advertise v6 with port", "media:\n  advertise: \"[::1]:4000\"\n",
			`bad.yaml:2: media.advertise: "[::1]:4000": want an IP address without brackets, e.g. ::1`},
		{"advertise of the other family", "media:\n  bind: 127.0.0.1\n  advertise: \"2001:db8::1\"\n",
			`bad.yaml:3: media.advertise: "2001:db8::1" is IPv6 but media.bind "127.0.0.1" is IPv4: the RTP sockets cannot be reached there`},
		{"IPv6 advertise on the IPv4 wildcard", "media:\n  bind: 0.0.0.0\n  advertise: \"2001:db8::1\"\n",
			`bad.yaml:3: media.advertise: "2001:db8::1" is IPv6 but media.bind "0.0.0.0" is IPv4: the RTP sockets cannot be reached there`},
		{"media bind not an address", "media:\n  bind: \"::1::2\"\n",
			`bad.yaml:2: media.bind: "::1::2": want an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("bad.yaml", []byte(tt.yaml))
			if cfg != nil || err == nil {
				t.Fatalf("Parse accepted %q", tt.yaml)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse error =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
