package dialog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
)

const peerHost6 = "2001:db8::7"

// peerSDP6 is the peer's audio offer or answer with c=IN IP6.
func peerSDP6(version int) string {
	return fmt.Sprintf("v=0\r\no=peer 4242 %d IN IP6 %s\r\ns=-\r\nc=IN IP6 %s\r\nt=0 0\r\n"+
		"m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", version, peerHost6, peerHost6)
}

// dualStack gives uad media in both families, as sip.listen on 192.0.2.1
// and [2001:db8::1] without media.bind does.
func dualStack(c *Config) {
	c.MediaAddrs = []MediaAddr{
		{Advertise: netip.MustParseAddr("192.0.2.1")},
		{Advertise: netip.MustParseAddr("2001:db8::1")},
	}
}

// incomingFrom is h.incoming with the INVITE arriving from source.
func (h *harness) incomingFrom(source, offer string) (*peer, *gosip.Response) {
	h.t.Helper()
	p := &peer{h: h, callID: fmt.Sprintf("call-%d@v6", time.Now().UnixNano()), contact: "sip:alice@[" + peerHost6 + "]:5060"}
	return p, h.invite(p, source, offer, "")
}

// harnessFor is a harness whose uad has media in IPv4 only, or with dual
// in both families.
func harnessFor(t *testing.T, dual bool) *harness {
	t.Helper()
	if dual {
		return newHarness(t, dualStack)
	}
	return newHarness(t, nil)
}

// The family decision of incoming calls: the offer's c= sets the call's
// media family; an offer of a family uad has no media address for is
// declined with 488 before any call or socket exists (RFC 3264 §6, RFC
// 3261 §21.4.26); without an offer the signalling's family decides.
func TestIncomingFamily(t *testing.T) {
	tests := []struct {
		name     string
		dual     bool
		source   string
		offer    string
		status   int
		conn     string // c= of uad's SDP in the 200
		contact  string // host of uad's Contact
		localRTP string
	}{
		{name: "IP4 offer, IP4-only uad", source: peerHost + ":5060", offer: peerAudio, status: 200,
			conn: "IN IP4 192.0.2.1", contact: "192.0.2.1", localRTP: "192.0.2.1:"},
		{name: "IP6 offer, IP4-only uad", source: "[" + peerHost6 + "]:5060", offer: peerSDP6(1), status: 488},
		{name: "IP6 offer over IPv4 SIP, IP4-only uad", source: peerHost + ":5060", offer: peerSDP6(1), status: 488},
		{name: "IP6 offer, both families", dual: true, source: "[" + peerHost6 + "]:5060", offer: peerSDP6(1), status: 200,
			conn: "IN IP6 2001:db8::1", contact: "[2001:db8::1]", localRTP: "[2001:db8::1]:"},
		{name: "IP6 offer over IPv4 SIP, both families", dual: true, source: peerHost + ":5060", offer: peerSDP6(1), status: 200,
			conn: "IN IP6 2001:db8::1", contact: "192.0.2.1", localRTP: "[2001:db8::1]:"},
		{name: "IP4 offer over IPv6 SIP, both families", dual: true, source: "[" + peerHost6 + "]:5060", offer: peerAudio, status: 200,
			conn: "IN IP4 192.0.2.1", contact: "[2001:db8::1]", localRTP: "192.0.2.1:"},
		{name: "no offer over IPv6 SIP, both families", dual: true, source: "[" + peerHost6 + "]:5060", status: 200,
			conn: "IN IP6 2001:db8::1", contact: "[2001:db8::1]", localRTP: "[2001:db8::1]:"},
		{name: "no offer over IPv6 SIP, IP4-only uad", source: "[" + peerHost6 + "]:5060", status: 200,
			conn: "IN IP4 192.0.2.1", contact: "[2001:db8::1]", localRTP: "192.0.2.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := harnessFor(t, tt.dual)
			p, res := h.incomingFrom(tt.source, tt.offer)
			if res.StatusCode != tt.status {
				t.Fatalf("INVITE got %d %s, want %d", res.StatusCode, res.Reason, tt.status)
			}
			if tt.status == 488 {
				w := res.GetHeader("Warning")
				if w == nil || !strings.HasPrefix(w.Value(), "301 uad ") || !strings.Contains(w.Value(), "IPv6 media") {
					t.Errorf("488 Warning = %v, want 301 (incompatible address formats) naming the IPv6 media uad lacks", w)
				}
				if n := h.m.Active(); n != 0 || len(h.med.streams) != 0 {
					t.Errorf("after the 488: %d calls, %d streams opened; want none", n, len(h.med.streams))
				}
				return
			}
			if body := string(res.Body()); !strings.Contains(body, "c="+tt.conn+"\r\n") || !strings.Contains(body, "o=- ") ||
				!strings.Contains(body, " "+tt.conn+"\r\n") {
				t.Errorf("uad's SDP lacks o= and c= %q:\n%s", tt.conn, body)
			}
			if ct := res.Contact(); ct == nil || ct.Address.Host != tt.contact {
				t.Errorf("Contact = %v, want host %s", ct, tt.contact)
			}
			if got := p.call.Snapshot().Audio.LocalRTP; !strings.HasPrefix(got, tt.localRTP) {
				t.Errorf("local_rtp = %s, want %s...", got, tt.localRTP)
			}
		})
	}
}

// A re-INVITE or UPDATE offering media of the other family is answered
// 488 (a socket cannot reach it); the call stays up as it was.
func TestReofferOfOtherFamily(t *testing.T) {
	for _, method := range []string{"INVITE", "UPDATE"} {
		t.Run(method, func(t *testing.T) {
			h := newHarness(t, nil)
			p := h.liveIncoming(peerAudio)
			audio := h.med.streams[0]
			configured := len(audio.cfg)
			res := p.send(p.request(method, "", peerSDP6(2))).final(t)
			if res.StatusCode != 488 {
				t.Fatalf("%s with an IP6 offer got %d, want 488", method, res.StatusCode)
			}
			if w := res.GetHeader("Warning"); w == nil || !strings.HasPrefix(w.Value(), "301 uad ") || !strings.Contains(w.Value(), "IPv6") {
				t.Errorf("Warning = %v, want 301 naming IPv6", w)
			}
			if method == "INVITE" {
				p.ack(p.cseq, "")
			}
			h.quiet(p.call)
			_, _, info := h.state(p.call)
			if info.State != StateLive || audio.isClosed() || len(audio.cfg) != configured {
				t.Errorf("after the 488: state %s, audio closed %v, reconfigured %d times; want live and untouched",
					info.State, audio.isClosed(), len(audio.cfg)-configured)
			}
			if got := info.Audio.RemoteRTP; got != peerHost+":30000" {
				t.Errorf("remote_rtp = %s, want the IPv4 peer's still", got)
			}
		})
	}
}

// Outgoing calls: the target's (or outbound proxy's) family picks the
// media, Contact and c=; an answer of the other family is unusable: BYE,
// and the call ends with 488.
func TestOutgoingFamily(t *testing.T) {
	tests := []struct {
		name, to string
		dual     bool
		conn     string
		contact  string
		answer   string
		ended    bool
	}{
		{name: "IPv6 target, both families", to: "sip:bob@[" + peerHost6 + "]", dual: true,
			conn: "IN IP6 2001:db8::1", contact: "[2001:db8::1]", answer: peerSDP6(1)},
		{name: "IPv4 target, both families", to: "sip:bob@" + peerHost, dual: true,
			conn: "IN IP4 192.0.2.1", contact: "192.0.2.1", answer: peerAudio},
		{name: "host name, both families: the first", to: "sip:bob@pbx.example.com", dual: true,
			conn: "IN IP4 192.0.2.1", contact: "192.0.2.1", answer: peerAudio},
		{name: "IPv6 answer to an IPv4 offer", to: "sip:bob@" + peerHost, dual: true,
			conn: "IN IP4 192.0.2.1", contact: "192.0.2.1", answer: peerSDP6(1), ended: true},
		{name: "IPv6 target, IP4-only uad", to: "sip:bob@[" + peerHost6 + "]:5062",
			conn: "IN IP4 192.0.2.1", contact: "[2001:db8::1]", answer: peerAudio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := harnessFor(t, tt.dual)
			info, err := h.m.Place(context.Background(), PlaceRequest{To: tt.to})
			if err != nil {
				t.Fatal(err)
			}
			inv := h.sig.expect(t, gosip.INVITE)
			if body := string(inv.req.Body()); !strings.Contains(body, "c="+tt.conn+"\r\n") {
				t.Errorf("offer lacks c=%s:\n%s", tt.conn, body)
			}
			if ct := inv.req.Contact(); ct == nil || ct.Address.Host != tt.contact {
				t.Errorf("Contact = %v, want host %s", ct, tt.contact)
			}
			if got := inv.req.Recipient.String(); got != tt.to {
				t.Errorf("Request-URI = %s, want %s", got, tt.to)
			}
			inv.answer(200, "OK", tt.answer, "Contact: <"+tt.to+">")
			h.sig.expect(t, gosip.ACK)
			if !tt.ended {
				h.ev.expect(t, "call.connected")
				return
			}
			h.sig.expect(t, gosip.BYE).answer(200, "OK", "")
			e, _ := h.ev.expect(t, "call.ended")
			c, _ := h.m.Get(info.ID)
			if c.State != StateEnded || e.Fields["sip_status"] != 488 {
				t.Errorf("after an answer of the other family: state %s, event %+v; want ended with 488", c.State, e.Fields)
			}
		})
	}
}

// The family check reads every enabled stream; streams off or on legacy
// hold name no address to send to.
func TestCheckFamily(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	parse := func(body string) *media.RemoteSession {
		rs, err := media.ParseRemote([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	video6 := peerSDP(1, "sendrecv", -1) + "m=video 4002 RTP/AVP 96\r\nc=IN IP6 2001:db8::7\r\na=rtpmap:96 VP8/90000\r\n"
	off6 := peerSDP(1, "sendrecv", -1) + "m=video 0 RTP/AVP 96\r\nc=IN IP6 2001:db8::7\r\n"
	tests := []struct {
		name string
		sdp  string
		have netip.Addr
		ok   bool
	}{
		{"IP4 on IPv4", peerAudio, v4, true},
		{"IP6 on IPv6", peerSDP6(1), v6, true},
		{"IP6 on IPv4", peerSDP6(1), v4, false},
		{"IP4 on IPv6", peerAudio, v6, false},
		{"IP6 video beside IP4 audio", video6, v4, false},
		{"IP6 video off", off6, v4, true},
		{"legacy hold IP4 on IPv6", peerSDP(1, "legacy", -1), v6, true},
	}
	for _, tt := range tests {
		if err := checkFamily(parse(tt.sdp), tt.have); (err == nil) != tt.ok {
			t.Errorf("%s: checkFamily = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// Malformed IPv6 targets and relay endpoints are request errors (the API's
// 400), never calls.
func TestBadIPv6Requests(t *testing.T) {
	h := newHarness(t, dualStack)
	for _, to := range []string{"sip:bob@[2001:db8::7", "sip:bob@[2001:db8::7]]:5060", "sip:bob@[::g]:5060", "sip:bob@[192.0.2.1]", "sip:bob@[::1]x"} {
		_, err := h.m.Place(context.Background(), PlaceRequest{To: to})
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("Place(%q) = %v, want a RequestError", to, err)
		}
	}
	var spec MediaSpec
	if err := spec.UnmarshalJSON([]byte(`{"relay": "::1:40000"}`)); err == nil {
		t.Errorf("relay ::1:40000 without brackets was accepted as %v", spec.Relay)
	}
	if err := spec.UnmarshalJSON([]byte(`{"relay": "[::1]:40000"}`)); err != nil || spec.Relay.String() != "[::1]:40000" {
		t.Errorf("relay [::1]:40000: %v, %v", spec.Relay, err)
	}
	if n := h.m.Active(); n != 0 || len(h.med.streams) != 0 {
		t.Errorf("%d calls, %d streams after bad requests; want none", n, len(h.med.streams))
	}
}

// An INVITE whose Contact has a bracketed host that is no IPv6 address
// gets 400: no request of the dialog could reach the caller.
func TestContactNotIPv6(t *testing.T) {
	h := newHarness(t, dualStack)
	p := &peer{h: h, callID: "bad-contact@v6", contact: "sip:alice@[::g]:5060"}
	res := h.invite(p, "["+peerHost6+"]:5060", peerSDP6(1), "")
	if res.StatusCode != 400 {
		t.Fatalf("INVITE with Contact [::g] got %d, want 400", res.StatusCode)
	}
	if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "[::g] is not an IPv6 address") {
		t.Errorf("Warning %v", w)
	}
	if n := h.m.Active(); n != 0 {
		t.Errorf("%d calls after the 400", n)
	}
}
