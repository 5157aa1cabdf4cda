package dialog

import (
	"testing"
	"time"

	"uad/media"
)

// The offer direction follows the table of hold-and-video.md, per dialect.
func TestOfferDirection(t *testing.T) {
	tests := []struct {
		dialect               string
		localHold, remoteHold bool
		want                  media.Direction
	}{
		{DialectSendOnly, false, false, media.SendRecv},
		{DialectSendOnly, true, false, media.SendOnly},
		{DialectSendOnly, false, true, media.SendRecv}, // RFC 6337 §5.3: resume while still held
		{DialectSendOnly, true, true, media.Inactive},
		{DialectInactive, true, false, media.Inactive},
		{DialectInactive, false, false, media.SendRecv},
		{DialectInactive, true, true, media.Inactive},
		{DialectLegacy, true, false, media.SendOnly},
	}
	for _, tt := range tests {
		c := &Call{dialect: tt.dialect, remoteHold: tt.remoteHold}
		if got := c.offerDirection(tt.localHold); got != tt.want {
			t.Errorf("%s local=%v remote=%v: offer %s, want %s", tt.dialect, tt.localHold, tt.remoteHold, got, tt.want)
		}
	}
}

func TestParseSessionExpires(t *testing.T) {
	tests := []struct {
		in        string
		want      time.Duration
		refresher string
		ok        bool
	}{
		{"1800", 1800 * time.Second, "", true},
		{"90;refresher=uac", 90 * time.Second, "uac", true},
		{" 600 ; Refresher = UAS", 600 * time.Second, "uas", true},
		{"abc", 0, "", false},
		{"-5", 0, "", false},
		{"", 0, "", false},
	}
	for _, tt := range tests {
		d, r, ok := parseSessionExpires(tt.in)
		if d != tt.want || r != tt.refresher || ok != tt.ok {
			t.Errorf("parseSessionExpires(%q) = %v %q %v, want %v %q %v", tt.in, d, r, ok, tt.want, tt.refresher, tt.ok)
		}
	}
}

func TestHoldDialectByPeer(t *testing.T) {
	cfg := &Config{HoldDialect: DialectSendOnly, Peers: []PeerRule{
		{Match: "*.teams.example", HoldDialect: DialectInactive},
		{Match: "10.0.0.*", HoldDialect: DialectLegacy},
	}}
	for host, want := range map[string]string{
		"sip.teams.example": DialectInactive,
		"10.0.0.7":          DialectLegacy,
		"pbx.example":       DialectSendOnly,
	} {
		if got := cfg.holdDialect(host); got != want {
			t.Errorf("holdDialect(%q) = %s, want %s", host, got, want)
		}
	}
	if got := (&Config{}).holdDialect("x"); got != DialectSendOnly {
		t.Errorf("default dialect = %s", got)
	}
}
