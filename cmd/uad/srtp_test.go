package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"uad/config"
)

// With SRTP enabled, each SIP listener that is not TLS draws a warning at
// start: the keys travel in its SDP.
func TestWarnSRTPInClear(t *testing.T) {
	listeners := []config.Listener{
		{Network: "udp", Raw: "udp://127.0.0.1:5060"},
		{Network: "tls", Raw: "tls://127.0.0.1:5061"},
	}
	for _, tt := range []struct {
		name  string
		mode  string
		peers []config.Peer
		warns []string
	}{
		{"accept", config.SRTPAccept, nil, []string{"udp://127.0.0.1:5060"}},
		{"require", config.SRTPRequire, nil, []string{"udp://127.0.0.1:5060"}},
		{"off", config.SRTPOff, nil, nil},
		{"off, a peer requires", config.SRTPOff, []config.Peer{{Match: "*.example.net", SRTP: config.SRTPRequire}}, []string{"udp://127.0.0.1:5060"}},
		{"off, a peer off", config.SRTPOff, []config.Peer{{Match: "*.example.net", SRTP: config.SRTPOff}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg := &config.Config{}
			cfg.SIP.Listeners = listeners
			cfg.Media.SRTP = tt.mode
			cfg.Calls.Peers = tt.peers
			warnSRTPInClear(cfg, zerolog.New(&out))
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.warns) {
				t.Fatalf("%d warnings, want %d:\n%s", len(lines), len(tt.warns), out.String())
			}
			for i, w := range tt.warns {
				if !strings.Contains(lines[i], "keys travel in clear over "+w) || !strings.Contains(lines[i], `"level":"warn"`) {
					t.Errorf("warning %q, want one naming %s", lines[i], w)
				}
			}
		})
	}
}
