package dialog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

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

// The peer's first answer or offer, audio only.
var peerAudio = peerSDP(1, "sendrecv", -1)

// reoffer plays a re-INVITE of the peer with an SDP offer and its ACK,
// returning uad's 200.
func (p *peer) reoffer(t *testing.T, body string) *gosip.Response {
	t.Helper()
	req := p.request("INVITE", "", body)
	res := p.send(req).final(t)
	if res.StatusCode == 200 {
		p.ack(req.CSeq().SeqNo, "")
	}
	return res
}

func TestBeingHeld(t *testing.T) {
	tests := []struct {
		name       string
		before     []string // the peer's earlier offers, each answered
		weHold     bool     // uad holds before the offer
		offer      string   // the peer's audio direction now
		answer     string   // uad's answer direction
		events     []string // events of the offer
		remoteHold bool
		sends      bool // uad's stream sends after the answer
		accepts    bool // and takes the peer's RTP
	}{
		{name: "sendonly is hold", offer: "sendonly", answer: "recvonly", events: []string{"held"}, remoteHold: true, accepts: true},
		{name: "inactive is hold", offer: "inactive", answer: "inactive", events: []string{"held"}, remoteHold: true},
		{name: "legacy c=0.0.0.0 is hold", offer: "legacy", answer: "recvonly", events: []string{"held"}, remoteHold: true, accepts: true},
		{name: "sendrecv stays live", offer: "sendrecv", answer: "sendrecv", remoteHold: false, sends: true, accepts: true},
		{name: "no direction is sendrecv", offer: "", answer: "sendrecv", remoteHold: false, sends: true, accepts: true},
		{name: "recvonly: the peer listens only", offer: "recvonly", answer: "sendonly", remoteHold: false, sends: true},
		{name: "resume after sendonly", before: []string{"sendonly"}, offer: "sendrecv", answer: "sendrecv", events: []string{"resumed"}, sends: true, accepts: true},
		{name: "resume after inactive", before: []string{"inactive"}, offer: "sendrecv", answer: "sendrecv", events: []string{"resumed"}, sends: true, accepts: true},
		{name: "sendonly again: no second event", before: []string{"sendonly"}, offer: "sendonly", answer: "recvonly", remoteHold: true, accepts: true},
		{name: "hold while we hold: inactive", weHold: true, offer: "sendonly", answer: "inactive", events: []string{"held"}, remoteHold: true},
		{name: "sendrecv while we hold keeps our hold", weHold: true, offer: "sendrecv", answer: "sendonly", sends: true},
		{name: "the peer resumes while we hold", weHold: true, before: []string{"sendonly"}, offer: "sendrecv", answer: "sendonly", events: []string{"resumed"}, sends: true},
		{name: "inactive while we hold", weHold: true, offer: "inactive", answer: "inactive", events: []string{"held"}, remoteHold: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			p := h.liveIncoming(peerAudio)
			if tt.weHold {
				done := h.op(h.m.Hold, p.call)
				inv := h.sig.expect(t, gosip.INVITE)
				inv.answer(200, "OK", peerSDP(2, "recvonly", -1))
				h.sig.expect(t, gosip.ACK)
				if err := outcome(t, done); err != nil {
					t.Fatal(err)
				}
			}
			for i, dir := range tt.before {
				if res := p.reoffer(t, peerSDP(10+i, dir, -1)); res.StatusCode != 200 {
					t.Fatalf("earlier offer got %d", res.StatusCode)
				}
			}
			h.sync(p.call)
			h.ev.rest()
			res := p.reoffer(t, peerSDP(20, tt.offer, -1))
			if res.StatusCode != 200 {
				t.Fatalf("offer got %d %s", res.StatusCode, res.Reason)
			}
			ans := parseSDP(t, res.Body())
			if got := audioDir(t, ans); got != tt.answer {
				t.Errorf("answer direction %s, want %s (RFC 3264 §6.1, hold-and-video.md)", got, tt.answer)
			}
			if len(ans.Streams) != 1 || ans.Streams[0].Port == 0 {
				t.Errorf("answer m-lines %s, want one live audio m-line", mlines(ans))
			}
			h.sync(p.call)
			if got := h.ev.rest(); strings.Join(got, ",") != strings.Join(tt.events, ",") {
				t.Errorf("events %v, want %v", got, tt.events)
			}
			local, remote, info := h.state(p.call)
			if remote != tt.remoteHold || info.RemoteHold != tt.remoteHold {
				t.Errorf("remote_hold %v (info %v), want %v", remote, info.RemoteHold, tt.remoteHold)
			}
			if local != tt.weHold {
				t.Errorf("local_hold %v, want %v", local, tt.weHold)
			}
			cfg := h.med.streams[0].last(t)
			if cfg.Send != tt.sends || cfg.Accept != tt.accepts || cfg.LocalHold != tt.weHold {
				t.Errorf("media send=%v accept=%v local_hold=%v, want %v %v %v", cfg.Send, cfg.Accept, cfg.LocalHold, tt.sends, tt.accepts, tt.weHold)
			}
		})
	}
}

// holdBy plays uad's hold (or unhold) with the peer answering answerDir,
// and returns the offer uad sent and the operation's outcome.
func (h *harness) holdBy(p *peer, hold bool, answerDir string, version int) (*media.RemoteSession, error) {
	h.t.Helper()
	f := h.m.Unhold
	if hold {
		f = h.m.Hold
	}
	done := h.op(f, p.call)
	inv := h.sig.expect(h.t, gosip.INVITE)
	inv.answer(200, "OK", peerSDP(version, answerDir, -1))
	h.sig.expect(h.t, gosip.ACK)
	return inv.sdp(h.t), outcome(h.t, done)
}

func TestHoldAndUnhold(t *testing.T) {
	tests := []struct {
		name       string
		dialect    string
		peerHolds  bool   // the peer holds uad before
		hold       bool   // true: hold; false: unhold after our hold
		offer      string // uad's offer direction
		answer     string // the peer's answer
		event      string
		state      string
		localHold  bool
		remoteHold bool
		sends      bool // media after: uad sends (the hold tone while holding)
		accepts    bool
	}{
		{name: "hold: sendonly", hold: true, offer: "sendonly", answer: "recvonly", event: "hold.success", state: StateHold, localHold: true, sends: true},
		{name: "hold: inactive answer (the peer will not take the tone)", hold: true, offer: "sendonly", answer: "inactive", event: "hold.success", state: StateHold, localHold: true, remoteHold: true},
		{name: "hold while held: inactive", peerHolds: true, hold: true, offer: "inactive", answer: "inactive", event: "hold.success", state: StateHold, localHold: true, remoteHold: true},
		{name: "hold, inactive dialect", dialect: DialectInactive, hold: true, offer: "inactive", answer: "inactive", event: "hold.success", state: StateHold, localHold: true},
		{name: "hold, legacy dialect", dialect: DialectLegacy, hold: true, offer: "legacy", answer: "recvonly", event: "hold.success", state: StateHold, localHold: true, sends: true},
		{name: "unhold", hold: false, offer: "sendrecv", answer: "sendrecv", event: "unhold.success", state: StateLive, sends: true, accepts: true},
		{name: "unhold while the peer still holds (RFC 6337 §5.3)", peerHolds: true, hold: false, offer: "sendrecv", answer: "sendonly", event: "unhold.success", state: StateLive, remoteHold: true, accepts: true},
		{name: "unhold, inactive dialect", dialect: DialectInactive, hold: false, offer: "sendrecv", answer: "sendrecv", event: "unhold.success", state: StateLive, sends: true, accepts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.HoldDialect = tt.dialect })
			p := h.liveIncoming(peerAudio)
			version := 2
			if tt.peerHolds {
				p.reoffer(t, peerSDP(version, "sendonly", -1))
				version++
			}
			if !tt.hold {
				answer := "recvonly"
				if tt.peerHolds {
					answer = "inactive"
				}
				if _, err := h.holdBy(p, true, answer, version); err != nil {
					t.Fatal(err)
				}
				version++
			}
			h.sync(p.call)
			h.ev.rest()
			before := p.call.local.Version
			offer, err := h.holdBy(p, tt.hold, tt.answer, version)
			if err != nil {
				t.Fatalf("operation failed: %v", err)
			}
			if got := audioDir(t, offer); got != tt.offer {
				t.Errorf("offer direction %s, want %s", got, tt.offer)
			}
			if offer.Version != before+1 {
				t.Errorf("offer o= version %d, want %d (RFC 3264 §8)", offer.Version, before+1)
			}
			if len(offer.Streams) != 1 || offer.Streams[0].Port != 20002 {
				t.Errorf("offer m-lines %s port %d, want the one audio m-line on its port", mlines(offer), offer.Streams[0].Port)
			}
			h.sync(p.call)
			if got := h.ev.rest(); len(got) == 0 || got[len(got)-1] != tt.event {
				t.Errorf("events %v, want %s last", got, tt.event)
			}
			local, remote, info := h.state(p.call)
			if info.State != tt.state || local != tt.localHold || remote != tt.remoteHold {
				t.Errorf("state %s local=%v remote=%v, want %s %v %v", info.State, local, remote, tt.state, tt.localHold, tt.remoteHold)
			}
			cfg := h.med.streams[0].last(t)
			if cfg.Send != tt.sends || cfg.Accept != tt.accepts || cfg.LocalHold != tt.localHold {
				t.Errorf("media send=%v accept=%v local_hold=%v, want %v %v %v", cfg.Send, cfg.Accept, cfg.LocalHold, tt.sends, tt.accepts, tt.localHold)
			}
		})
	}
}

// Only the side that held may resume; a hold of a held call is a no-op.
func TestHoldRequestsTheStateRefuses(t *testing.T) {
	h := newHarness(t, nil)
	p := h.liveIncoming(peerAudio)
	p.reoffer(t, peerSDP(2, "sendonly", -1))
	if _, err := h.m.Unhold(context.Background(), p.call.id); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("unhold by the held side: %v, want ErrNotHolder", err)
	}
	if _, err := h.holdBy(p, true, "inactive", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Hold(context.Background(), p.call.id); err != nil {
		t.Fatalf("second hold: %v, want a no-op", err)
	}
	h.quiet(p.call)
}
