package main

import (
	"fmt"
	"strings"
	"testing"

	"uad/config"
)

// The media addresses calls choose from, one per family: media.bind or
// media.advertise fix one; otherwise each family of sip.listen has its
// first listener's address, in listener order.
func TestMediaAddrs(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		media  string
		want   string // "bind>advertise ..."
	}{
		{"IPv4 only", `"udp://127.0.0.1:5060"`, "", "127.0.0.1>127.0.0.1"},
		{"both families", `"udp://127.0.0.1:5060", "tcp://127.0.0.1:5060", "udp://[::1]:5060"`, "", "127.0.0.1>127.0.0.1 ::1>::1"},
		{"IPv6 first", `"tcp://[::1]:5060", "udp://192.0.2.1:5060", "udp://[2001:db8::1]:5060"`, "", "::1>::1 192.0.2.1>192.0.2.1"},
		{"wildcards", `"udp://0.0.0.0:5060", "udp://[::]:5060"`, "", "0.0.0.0>127.0.0.1 ::>::1"},
		{"bind fixes IPv4", `"udp://[::1]:5060", "udp://127.0.0.1:5060"`, "bind: 127.0.0.1", "127.0.0.1>127.0.0.1"},
		{"bind fixes IPv6", `"udp://127.0.0.1:5060", "udp://[::1]:5060"`, "bind: \"::1\"", "::1>::1"},
		{"IPv6 wildcard bind takes both", `"udp://127.0.0.1:5060"`, "bind: \"::\"", "::>127.0.0.1 ::>::1"},
		{"IPv4 wildcard bind", `"udp://[::1]:5060"`, "bind: 0.0.0.0", "0.0.0.0>127.0.0.1"},
		{"IPv6 wildcard listener takes both", `"udp://[::]:5060", "udp://192.0.2.1:5060"`, "", "::>127.0.0.1 ::>::1"},
		{"bind and advertise", `"udp://127.0.0.1:5060"`, "bind: 0.0.0.0\n  advertise: 198.51.100.7", "0.0.0.0>198.51.100.7"},
		{"advertise alone", `"udp://127.0.0.1:5060", "udp://[::1]:5060"`, "advertise: \"2001:db8::7\"", "::1>2001:db8::7"},
		{"advertise of a family not listened on", `"udp://127.0.0.1:5060"`, "advertise: \"2001:db8::7\"", "::>2001:db8::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := fmt.Sprintf("sip:\n  listen: [%s]\n", tt.listen)
			if tt.media != "" {
				text += "media:\n  " + tt.media + "\n"
			}
			cfg, err := config.Parse("test.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mediaAddrs(cfg) {
				got = append(got, m.Bind.String()+">"+m.Advertise.String())
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("media addresses %v, want %s", got, tt.want)
			}
			if dc, err := dialogConfig(cfg); err != nil || dc.MediaAddr != mediaAddrs(cfg)[0].Advertise {
				t.Errorf("dialogConfig: MediaAddr %v, %v", dc.MediaAddr, err)
			}
		})
	}
}

// The default identity (sip:uad@ the first listener's or the advertised
// host) brackets an IPv6 host.
func TestIdentityIPv6(t *testing.T) {
	tests := []struct{ sip, want string }{
		{`listen: ["udp://[::1]:5060"]`, "sip:uad@[::1]"},
		{`listen: ["udp://127.0.0.1:5060"]`, "sip:uad@127.0.0.1"},
		{"listen: [\"udp://[::]:5060\"]\n  advertise: \"[2001:db8::1]:5070\"", "sip:uad@[2001:db8::1]"},
		{"listen: [\"udp://[::]:5060\"]\n  advertise: \"[2001:db8::1]\"", "sip:uad@[2001:db8::1]"},
	}
	for _, tt := range tests {
		cfg, err := config.Parse("test.yaml", []byte("sip:\n  "+tt.sip+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", tt.sip, err)
		}
		dc, err := dialogConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := dc.Identity.String(); got != tt.want {
			t.Errorf("%s: identity %s, want %s", tt.sip, got, tt.want)
		}
	}
}
