package tests

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/tests/internal/g711"
)

// IPv6: uad over [::1] with uad, baresip and a raw-SIP peer. ::1 is a
// required peer condition: without it these tests fail under CI=true.

// requireIPv6Loopback fails (CI=true) or skips the test when ::1 cannot
// be bound.
func requireIPv6Loopback(t testing.TB) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err == nil {
		c.Close()
		return
	}
	msg := fmt.Sprintf("IPv6 loopback ::1 is not usable (check `ip -6 addr show lo`, sysctl net.ipv6.conf.lo.disable_ipv6): %v", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// newRTPPeer6 binds [::1]:port (0 = any free port).
func newRTPPeer6(t testing.TB, port int) *RTPPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: port})
	if err != nil {
		t.Fatalf("RTP socket on [::1]:%d: %v", port, err)
	}
	return rtpPeerOn(t, conn)
}

// startUAD6 starts uad with SIP on [::1] (UDP and TCP) and, with ipv4,
// on 127.0.0.1 too (listed first), all on one port, which it returns as
// u.SIPPort.
func startUAD6(t *testing.T, opts UADOptions, ipv4 bool) *UAD {
	t.Helper()
	requireIPv6Loopback(t)
	port := freePort(t)
	listen := []string{fmt.Sprintf("udp://[::1]:%d", port), fmt.Sprintf("tcp://[::1]:%d", port)}
	if ipv4 {
		// IPv4 first: what IPv6 calls use must be chosen by family, not
		// taken as the first listener.
		listen = append([]string{fmt.Sprintf("udp://127.0.0.1:%d", port), fmt.Sprintf("tcp://127.0.0.1:%d", port)}, listen...)
	}
	cfg := map[string]any{"sip.listen": listen}
	for k, v := range opts.Config {
		cfg[k] = v
	}
	opts.Config = cfg
	u := startUAD(t, opts)
	u.SIPPort = port
	return u
}

// uri6 is a SIP URI of u's [::1] listener.
func uri6(u *UAD, user, params string) string {
	return fmt.Sprintf("sip:%s@[::1]:%d%s", user, u.SIPPort, params)
}

// checkV6 asserts that every address given is an IPv6 one on ::1.
func checkV6(t testing.TB, what string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if !strings.HasPrefix(a, "[::1]:") {
			t.Errorf("%s: address %q, want [::1]:PORT", what, a)
		}
	}
}

// callStats is the part of the call object with RTP counters.
type callStats struct {
	Audio *struct {
		Stats struct {
			PacketsSent     int `json:"packets_sent"`
			PacketsReceived int `json:"packets_received"`
		} `json:"stats"`
	} `json:"audio"`
}

// waitAudioBothWays waits until uad's call has sent and received n RTP packets.
func waitAudioBothWays(t testing.TB, u *UAD, id string, n int) {
	t.Helper()
	var s callStats
	if !poll(5*time.Second, 20*time.Millisecond, func() bool {
		s = getJSON[callStats](t, u, "/v1/calls/"+id, "call")
		return s.Audio != nil && s.Audio.Stats.PacketsSent >= n && s.Audio.Stats.PacketsReceived >= n
	}) {
		t.Errorf("uad %s call %s: RTP stats %+v, want >= %d packets each way", u.Name, id, s.Audio, n)
	}
}

// waitVideo waits until p received n packets since since.
func waitVideo(t testing.TB, what string, p *RTPPeer, since time.Time, n int) {
	t.Helper()
	if got := waitPackets(p, since, n, anyPacket, 5*time.Second); len(got) < n {
		t.Errorf("%s: %d video packets arrived, want >= %d", what, len(got), n)
	}
}

// uad calls uad over [::1], UDP and TCP, with video, both relaying to
// endpoints on [::1]: the call objects show bracketed IPv6 addresses;
// audio and video flow; A holds (the video goes, B's endpoint hears A's
// 440 Hz hold tone, A's hears nothing) and resumes (audio both ways, the
// video comes back); A removes the video and adds it back. The UDP call
// is placed with the CLI, the TCP one with POST /v1/calls.
func TestIPv6UADtoUAD(t *testing.T) {
	t.Parallel()
	requireIPv6Loopback(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			x, y := miscPorts.take(t, 4, false), miscPorts.take(t, 4, false)
			endA, vidA, endB, vidB := newRTPPeer6(t, x), newRTPPeer6(t, x+2), newRTPPeer6(t, y), newRTPPeer6(t, y+2)
			b := startUAD6(t, UADOptions{Name: "B", Media: "relay", Relay: endB.Addr(),
				Config: map[string]any{"calls.video_request_policy": "accept"}}, false)
			a := startUAD6(t, UADOptions{Name: "A", Config: map[string]any{"media.hold_tone": "440"}}, true)
			evA, evB := a.Events(), b.Events()

			var idA string
			if transport == "udp" {
				out, err := exec.Command(uadBin, "call", "--api", a.URL(), "--video", "--media", "relay:"+endA.Addr(), uri6(b, "uad", "")).CombinedOutput()
				if err != nil {
					t.Fatalf("uad call %s: %v\n%s", uri6(b, "uad", ""), err, out)
				}
				idA = strings.TrimSpace(string(out))
			} else {
				idA = a.PlaceCall(uri6(b, "uad", ";transport=tcp"), map[string]any{"video": true, "media": map[string]any{"relay": endA.Addr()}}).ID
			}
			idB := waitBothConnected(t, evA, idA, evB)
			ca, cb := a.Call(idA), b.Call(idB)
			if !strings.HasPrefix(ca.RemoteURI, "sip:uad@[::1]:") {
				t.Errorf("A: remote_uri %q, want sip:uad@[::1]:PORT", ca.RemoteURI)
			}
			if ca.Audio == nil || cb.Audio == nil || ca.Video == nil || cb.Video == nil {
				t.Fatalf("want audio and video on both sides: A %+v / %+v, B %+v / %+v", ca.Audio, ca.Video, cb.Audio, cb.Video)
			}
			checkV6(t, "A audio", ca.Audio.LocalRTP, ca.Audio.RemoteRTP, ca.Audio.RelayLocal, ca.Audio.RelayRemote)
			checkV6(t, "B audio", cb.Audio.LocalRTP, cb.Audio.RemoteRTP, cb.Audio.RelayLocal)
			checkV6(t, "A video", ca.Video.LocalRTP, ca.Video.RemoteRTP, ca.Video.RelayLocal)
			if ca.Audio.RemoteRTP != cb.Audio.LocalRTP || cb.Audio.RemoteRTP != ca.Audio.LocalRTP {
				t.Errorf("audio addresses do not pair up: A %s -> %s, B %s -> %s", ca.Audio.LocalRTP, ca.Audio.RemoteRTP, cb.Audio.LocalRTP, cb.Audio.RemoteRTP)
			}

			endA.SendAsync(mustUDPAddr(t, ca.Audio.RelayLocal), 3000)
			endB.SendAsync(mustUDPAddr(t, cb.Audio.RelayLocal), 3000)
			checkHearEachOther(t, t.Fatalf, "live over IPv6", endA, endB)
			src := newVideoSource(vidA, 96)
			since := time.Now()
			src.send(t, mustUDPAddr(t, ca.Video.RelayLocal), 10)
			waitVideo(t, "live", vidB, since, 16)

			// A holds: the video goes first, then B hears the hold tone.
			sa, sb := callSide{"A", a, evA, idA}, callSide{"B", b, evB, idB}
			holdStep(t, sa, sb, true, callWant{State: "hold", LocalHold: true, Dir: "sendonly"}, callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
			evA.WaitType(t, "video.closed", idA, sigTimeout)
			checkOnlyHoldSource(t, "A holds", sa, sb, endA, endB)
			tones := waitPackets(endB, time.Now(), 10, func(pk RTPPacket) bool { return isTone(g711.PCMU, pk.Payload, 440) }, 3*time.Second)
			if len(tones) < 10 {
				t.Errorf("B's endpoint heard %d frames of A's 440 Hz hold tone over IPv6, want >= 10", len(tones))
			}

			// A resumes: audio both ways, then the video is offered back.
			// (Unhold returns with the video offer pending.)
			if c := mustUnhold(t, a, idA); c.State != "live" || c.LocalHold || c.Audio == nil || c.Audio.Direction != "sendrecv" {
				t.Errorf("A: unhold returned %s, want live and sendrecv", describeCall(c))
			}
			evA.WaitType(t, "unhold.success", idA, sigTimeout)
			checkEventCall(t, evB.WaitType(t, "resumed", idB, sigTimeout), callWant{State: "live", Dir: "sendrecv"})
			checkHearEachOther(t, t.Errorf, "resumed", endA, endB)
			evA.WaitType(t, "video.opened", idA, sigTimeout)

			// Video removed and added back by request.
			if c := videoOp(t, a, http.MethodDelete, "/v1/calls/"+idA+"/video", nil); c.Video != nil {
				t.Errorf("A: DELETE video returned video %+v, want null", c.Video)
			}
			if e := evB.WaitType(t, "video.closed", idB, sigTimeout); e.By != "remote" {
				t.Errorf("B: video.closed by %q, want remote", e.By)
			}
			c := videoOp(t, a, http.MethodPost, "/v1/calls/"+idA+"/video", nil)
			if c.Video == nil {
				t.Fatalf("A: POST video returned no video")
			}
			checkV6(t, "A video re-added", c.Video.LocalRTP, c.Video.RemoteRTP, c.Video.RelayLocal)
			evB.WaitType(t, "video.opened", idB, sigTimeout)
			since = time.Now()
			src.send(t, mustUDPAddr(t, c.Video.RelayLocal), 10)
			waitVideo(t, "re-added", vidB, since, 16)

			a.Hangup(idA)
			evB.WaitType(t, "call.ended", idB, sigTimeout)
			evA.CheckWellFormed(t)
			evB.CheckWellFormed(t)
		})
	}
}

// baresip over [::1] (-6) calls uad and is called by it; audio flows both
// ways over IPv6 and the call objects show bracketed addresses.
func TestIPv6Baresip(t *testing.T) {
	t.Parallel()
	requirePeer(t, "baresip", "sox")
	requireIPv6Loopback(t)
	t.Run("baresip calls uad", func(t *testing.T) {
		t.Parallel()
		u := startUAD6(t, UADOptions{}, false)
		ev := u.Events()
		b := startBaresip(t, BaresipOptions{IPv6: true})
		if r := b.Command("dial", uri6(u, "uad", "")); !r.OK {
			t.Fatalf("baresip dial: %+v", r)
		}
		id := ev.WaitAnswered(t).CallID()
		b.WaitEventType(t, "CALL_ESTABLISHED", sigTimeout)
		c := u.Call(id)
		if !strings.Contains(c.RemoteURI, "@[::1]:") || c.Audio == nil {
			t.Fatalf("call %+v: want remote_uri on [::1] and audio", c)
		}
		checkV6(t, "uad's audio", c.Audio.LocalRTP, c.Audio.RemoteRTP)
		waitAudioBothWays(t, u, id, 25)
		if !poll(3*time.Second, 50*time.Millisecond, func() bool { return b.RTPReceived() > 10 }) {
			t.Errorf("baresip received no echo over IPv6: %s", b.AudioDebug())
		}
		b.hangUp(t)
		if e := ev.WaitType(t, "call.ended", id, sigTimeout); e.Reason != "remote" {
			t.Errorf("call.ended reason %q, want remote", e.Reason)
		}
	})
	t.Run("uad calls baresip", func(t *testing.T) {
		t.Parallel()
		u := startUAD6(t, UADOptions{}, true)
		ev := u.Events()
		b := startBaresip(t, BaresipOptions{IPv6: true})
		c := u.PlaceCall(b.URI(), nil)
		ev.WaitType(t, "call.connected", c.ID, sigTimeout)
		b.WaitEventType(t, "CALL_ESTABLISHED", sigTimeout)
		c = u.Call(c.ID)
		checkV6(t, "uad's audio", c.Audio.LocalRTP, c.Audio.RemoteRTP)
		waitAudioBothWays(t, u, c.ID, 25)
		u.Hangup(c.ID)
		b.WaitEventType(t, "CALL_CLOSED", sigTimeout)
	})
}

// rawPeer speaks SIP as text from a UDP socket on a loopback address (::1
// or 127.0.0.1) to uad's listener of that address, and reads what comes
// back with sipgo's parser.
type rawPeer struct {
	t    testing.TB
	conn *net.UDPConn
	uad  *net.UDPAddr
	tag  string
	cseq int
	// branch, when set, is the Via branch of the next request: the ACK of
	// a non-2xx response is part of its INVITE's transaction (RFC 3261 §17.1.1.3).
	branch string
}

func newRawPeer(t testing.TB, u *UAD, ip net.IP) *rawPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, uad: &net.UDPAddr{IP: ip, Port: u.SIPPort}, tag: fmt.Sprintf("raw%d", time.Now().UnixNano())}
}

// newRawPeer6 is a raw peer on [::1].
func newRawPeer6(t testing.TB, u *UAD) *rawPeer { return newRawPeer(t, u, net.IPv6loopback) }

func (p *rawPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// hostPort is the peer's own address as SIP writes it ("[::1]:PORT").
func (p *rawPeer) hostPort() string { return p.conn.LocalAddr().String() }

// offer6 is an SDP offer with c=IN IP6 (or IN IP4, with ipv4) for an RTP port.
func offer6(rtpPort int, ipv4 bool) string {
	net, addr := "IP6", "::1"
	if ipv4 {
		net, addr = "IP4", "127.0.0.1"
	}
	return fmt.Sprintf("v=0\r\no=raw 1 1 IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
		net, addr, net, addr, rtpPort)
}

// request sends a request of the dialog callID; toTag is uad's tag ("" before it has one).
func (p *rawPeer) request(method, callID, toTag, body string) string {
	p.t.Helper()
	if method != "ACK" {
		p.cseq++
	}
	to := fmt.Sprintf("<sip:uad@%s>", p.uad)
	if toTag != "" {
		to += ";tag=" + toTag
	}
	branch := fmt.Sprintf("z9hG4bK%d%s", p.cseq, method)
	if p.branch != "" {
		branch, p.branch = p.branch, ""
	}
	msg := fmt.Sprintf("%s sip:uad@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s;rport\r\n"+
		"From: <sip:raw@%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"+
		"Contact: <sip:raw@%s>\r\nMax-Forwards: 70\r\n",
		method, p.uad, p.hostPort(), branch, p.hostPort(), p.tag, to, callID, p.cseq, method, p.hostPort())
	if body != "" {
		msg += "Content-Type: application/sdp\r\n"
	}
	msg += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := p.conn.WriteToUDP([]byte(msg), p.uad); err != nil {
		p.t.Fatal(err)
	}
	return branch
}

// read returns the next SIP message uad sends, raw and parsed.
func (p *rawPeer) read() (string, gosip.Message) {
	p.t.Helper()
	buf := make([]byte, 65535)
	p.conn.SetReadDeadline(time.Now().Add(sigTimeout))
	n, from, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		p.t.Fatalf("no SIP from uad at %s: %v", p.uad, err)
	}
	if !from.IP.Equal(p.uad.IP) || from.Port != p.uad.Port {
		p.t.Errorf("SIP came from %s, want uad's listener %s", from, p.uad)
	}
	msg, err := gosip.ParseMessage(buf[:n])
	if err != nil {
		p.t.Fatalf("uad sent SIP that does not parse: %v\n%s", err, buf[:n])
	}
	return string(buf[:n]), msg
}

// final reads responses until a final one.
func (p *rawPeer) final() (string, *gosip.Response) {
	p.t.Helper()
	for {
		raw, msg := p.read()
		if res, ok := msg.(*gosip.Response); ok && !res.IsProvisional() {
			return raw, res
		}
	}
}

// hasLine reports whether text has a line exactly equal to line.
func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\r\n") {
		if l == line {
			return true
		}
	}
	return false
}

// A raw-SIP peer on [::1] calls uad over UDP. uad's 200 writes its
// Contact with the IPv6 reference in brackets (RFC 3261 §19.1.1, §25),
// keeps our Via with received= the bare address and rport (RFC 3261
// §18.2.1, RFC 3581), and answers c=IN IP6 and o=... IN IP6 (RFC 4566
// §5.2, §5.7); RTP is echoed over IPv6; uad's BYE goes to our bracketed
// Contact, with its own Via sent-by in brackets.
func TestIPv6RawPeer(t *testing.T) {
	t.Parallel()
	u := startUAD6(t, UADOptions{}, true)
	ev := u.Events()
	p := newRawPeer6(t, u)
	rtpPeer := newRTPPeer6(t, 0)
	callID := fmt.Sprintf("raw-%d@ipv6", time.Now().UnixNano())
	p.request("INVITE", callID, "", offer6(rtpPeer.Port(), false))
	raw, res := p.final()
	if res.StatusCode != 200 {
		t.Fatalf("INVITE got %d %s\n%s", res.StatusCode, res.Reason, raw)
	}
	wantContact := fmt.Sprintf("sip:uad@[::1]:%d", u.SIPPort)
	if ct := res.Contact(); ct == nil || ct.Address.String() != wantContact {
		t.Errorf("Contact %v, want <%s>:\n%s", ct, wantContact, raw)
	}
	if !strings.Contains(raw, "Contact: <"+wantContact+">") {
		t.Errorf("the Contact on the wire is not <%s>:\n%s", wantContact, raw)
	}
	wantVia := fmt.Sprintf("SIP/2.0/UDP [::1]:%d;", p.port())
	if via := res.Via(); via == nil || !strings.HasPrefix(via.Value(), wantVia) ||
		!strings.Contains(via.Value(), fmt.Sprintf(";rport=%d", p.port())) || !strings.Contains(via.Value(), ";received=::1") {
		t.Errorf("Via %v, want %s... with rport=%d and received=::1", via, wantVia, p.port())
	}
	body := string(res.Body())
	if !hasLine(body, "c=IN IP6 ::1") || !strings.HasSuffix(strings.SplitN(body[strings.Index(body, "o="):], "\r\n", 2)[0], " IN IP6 ::1") {
		t.Errorf("answer lacks c=IN IP6 ::1 or an o= line in IP6:\n%s", body)
	}
	toTag, _ := res.To().Params.Get("tag")
	p.request("ACK", callID, toTag, "")
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()

	// RTP over IPv6 to the port of the answer's m=audio, echoed back.
	var port int
	for _, l := range strings.Split(body, "\r\n") {
		if strings.HasPrefix(l, "m=audio ") {
			fmt.Sscanf(l, "m=audio %d", &port)
		}
	}
	rtpPeer.SendAsync(&net.UDPAddr{IP: net.IPv6loopback, Port: port}, 50)
	if got := waitPackets(rtpPeer, time.Time{}, 10, echoOf(rtpPeer), 3*time.Second); len(got) < 10 {
		t.Errorf("echo over IPv6: %d packets back, want >= 10: %s", len(got), rtpPeer.Stats())
	}

	// uad hangs up: its BYE comes to our Contact.
	u.Hangup(id)
	raw, msg := p.read()
	bye, ok := msg.(*gosip.Request)
	if !ok || bye.Method != gosip.BYE {
		t.Fatalf("want uad's BYE, got:\n%s", raw)
	}
	if got, want := bye.Recipient.String(), fmt.Sprintf("sip:raw@[::1]:%d", p.port()); got != want {
		t.Errorf("BYE Request-URI %s, want %s", got, want)
	}
	if !strings.Contains(raw, fmt.Sprintf("BYE sip:raw@[::1]:%d SIP/2.0\r\n", p.port())) ||
		!strings.Contains(raw, fmt.Sprintf("Via: SIP/2.0/UDP [::1]:%d;", u.SIPPort)) {
		t.Errorf("BYE's Request-URI or Via sent-by is not a bracketed [::1]:\n%s", raw)
	}
	ok200 := gosip.NewResponseFromRequest(bye, 200, "OK", nil)
	var buf bytes.Buffer
	ok200.StringWrite(&buf)
	p.conn.WriteToUDP(buf.Bytes(), p.uad)
	ev.WaitType(t, "call.ended", id, sigTimeout)
}

// uad with media.bind 127.0.0.1 listens on [::1] too: an IP6 offer gets
// 488 and a log line saying why; an IP4 offer over IPv6 signalling is
// answered in IP4 (media.bind fixes the family); a re-INVITE of that call
// offering IP6 gets 488 and the call stays up.
func TestIPv6OfferToIPv4OnlyUAD(t *testing.T) {
	t.Parallel()
	u := startUAD6(t, UADOptions{Config: map[string]any{"media.bind": "127.0.0.1"}}, true)
	ev := u.Events()
	p := newRawPeer6(t, u)

	refused := fmt.Sprintf("v6-refused-%d", time.Now().UnixNano())
	inviteBranch := p.request("INVITE", refused, "", offer6(40000, false))
	raw, res := p.final()
	if res.StatusCode != 488 {
		t.Fatalf("an IP6 offer to an IP4-only uad got %d, want 488:\n%s", res.StatusCode, raw)
	}
	if w := res.GetHeader("Warning"); w == nil || !strings.HasPrefix(w.Value(), "301 ") || !strings.Contains(w.Value(), "IPv6") {
		t.Errorf("488 Warning %v, want 301 (incompatible network address formats, RFC 3261 §20.43) naming IPv6", w)
	}
	toTag, _ := res.To().Params.Get("tag")
	p.branch = inviteBranch
	p.request("ACK", refused, toTag, "")
	if !poll(3*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(u.Log(), "incoming call declined: the offer asks for IPv6 media and uad has no IPv6 media address")
	}) {
		t.Errorf("no log line saying why the IP6 offer was declined")
	}

	callID := fmt.Sprintf("v4-over-v6-%d", time.Now().UnixNano())
	p.request("INVITE", callID, "", offer6(40000, true))
	raw, res = p.final()
	if res.StatusCode != 200 || !hasLine(string(res.Body()), "c=IN IP4 127.0.0.1") {
		t.Fatalf("an IP4 offer over [::1]: %d, want 200 with c=IN IP4 127.0.0.1:\n%s", res.StatusCode, raw)
	}
	if ct := res.Contact(); ct == nil || ct.Address.Host != "[::1]" {
		t.Errorf("Contact %v, want uad's [::1] listener (the signalling's family)", ct)
	}
	toTag, _ = res.To().Params.Get("tag")
	p.request("ACK", callID, toTag, "")
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()

	reinvite := p.request("INVITE", callID, toTag, offer6(40000, false))
	raw, res = p.final()
	if res.StatusCode != 488 {
		t.Errorf("a re-INVITE offering IP6 got %d, want 488:\n%s", res.StatusCode, raw)
	}
	p.branch = reinvite
	p.request("ACK", callID, toTag, "")
	c := u.Call(id)
	if c.State != "live" || c.Audio == nil || c.Audio.RemoteRTP != "127.0.0.1:40000" {
		t.Errorf("after the refused re-INVITE: state %s audio %+v, want live with the IP4 media", c.State, c.Audio)
	}
	noEvent(t, ev, "after the refused re-INVITE", id, "call.ended")
	u.Hangup(id)
	raw, msg := p.read()
	if bye, ok := msg.(*gosip.Request); ok && bye.Method == gosip.BYE {
		ok200 := gosip.NewResponseFromRequest(bye, 200, "OK", nil)
		var buf bytes.Buffer
		ok200.StringWrite(&buf)
		p.conn.WriteToUDP(buf.Bytes(), p.uad)
	} else {
		t.Errorf("want uad's BYE, got:\n%s", raw)
	}
}

// sip.allow with an IPv6 network: an OPTIONS from ::1 is admitted and gets
// uad's stateless 200 over IPv6 (our Via kept, received=::1 and rport
// filled in); one from 127.0.0.1 is refused with 403 over IPv4.
func TestIPv6AllowList(t *testing.T) {
	t.Parallel()
	u := startUAD6(t, UADOptions{Config: map[string]any{"sip.allow": []string{"::1/128"}}}, true)
	v6 := newRawPeer6(t, u)
	v6.request("OPTIONS", fmt.Sprintf("opt6-%d", time.Now().UnixNano()), "", "")
	raw, res := v6.final()
	if res.StatusCode != 200 {
		t.Errorf("OPTIONS from ::1 got %d, want 200:\n%s", res.StatusCode, raw)
	}
	want := fmt.Sprintf("SIP/2.0/UDP [::1]:%d;branch=", v6.port())
	if via := res.Via(); via == nil || !strings.HasPrefix(via.Value(), want) ||
		!strings.Contains(via.Value(), fmt.Sprintf("rport=%d", v6.port())) || !strings.Contains(via.Value(), "received=::1") {
		t.Errorf("Via %v, want %s... with rport=%d and received=::1", via, want, v6.port())
	}
	v4 := newRawPeer(t, u, net.IPv4(127, 0, 0, 1))
	v4.request("OPTIONS", fmt.Sprintf("opt4-%d", time.Now().UnixNano()), "", "")
	if raw, res := v4.final(); res.StatusCode != 403 {
		t.Errorf("OPTIONS from 127.0.0.1, outside sip.allow ::1/128, got %d, want 403:\n%s", res.StatusCode, raw)
	}
}

// uad calls uad over TLS on [::1] (sips:): the call connects with IPv6
// media and hangs up.
func TestIPv6TLS(t *testing.T) {
	t.Parallel()
	requireIPv6Loopback(t)
	cert, key := selfSignedCert(t, t.TempDir())
	start := func(name string) (*UAD, int) {
		p := miscPorts.take(t, 2, true)
		return startUAD6(t, UADOptions{Name: name, Config: map[string]any{
			"sip.listen":     []string{fmt.Sprintf("udp://[::1]:%d", p), fmt.Sprintf("tls://[::1]:%d", p+1)},
			"sip.tls_cert":   cert,
			"sip.tls_key":    key,
			"sip.tls_verify": false,
		}}, false), p + 1
	}
	b, bTLS := start("B")
	a, _ := start("A")
	evA, evB := a.Events(), b.Events()
	ca := a.PlaceCall(fmt.Sprintf("sips:b@[::1]:%d", bTLS), nil)
	idB := waitBothConnected(t, evA, ca.ID, evB)
	if !strings.Contains(b.Log(), "SIP/2.0/TLS [::1]:") {
		t.Errorf("B's log shows no SIP/2.0/TLS [::1] Via: was the call not over TLS on IPv6?")
	}
	cb := b.Call(idB)
	checkV6(t, "B's audio", cb.Audio.LocalRTP, cb.Audio.RemoteRTP)
	a.Hangup(ca.ID)
	if e := evB.WaitType(t, "call.ended", idB, sigTimeout); e.Reason != "remote" {
		t.Errorf("B call.ended reason %q, want remote (A's BYE over TLS)", e.Reason)
	}
}

// A calls B through kamailio on [::1], which record-routes with its IPv6
// address: both uads keep the bracketed route set, so A's hold and resume
// re-INVITEs, B's hold and A's BYE all go through the proxy, with
// Route: <sip:[::1]:PORT;lr> (RFC 3261 §12.2.1.1, §16.12).
func TestIPv6RecordRoute(t *testing.T) {
	t.Parallel()
	requireIPv6Loopback(t)
	b := startUAD6(t, UADOptions{Name: "B"}, false)
	a := startUAD6(t, UADOptions{Name: "A"}, true)
	evA, evB := a.Events(), b.Events()

	k := newKamailioProc(t, "k6", "ctl", "UADTEST", "ERROR")
	tmpl, err := os.ReadFile(filepath.Join(repoRoot, "tests", "kamailio", "ipv6-proxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(k.Dir, "kamailio.cfg")
	cfg := strings.NewReplacer("{{PORT}}", strconv.Itoa(k.Port), "{{DIR}}", k.Dir,
		"{{TARGET}}", fmt.Sprintf("[::1]:%d", b.SIPPort)).Replace(string(tmpl))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k.run("-DD", "-E", "-m", "64", "-M", "8", "-Y", k.Dir, "-f", cfgPath)

	ca := a.PlaceCall(fmt.Sprintf("sip:uad@[::1]:%d", k.Port), nil)
	idB := waitBothConnected(t, evA, ca.ID, evB)
	sa, sb := callSide{"A", a, evA, ca.ID}, callSide{"B", b, evB, idB}
	holdStep(t, sa, sb, true, callWant{State: "hold", LocalHold: true, Dir: "sendonly"}, callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	holdStep(t, sa, sb, false, callWant{State: "live", Dir: "sendrecv"}, callWant{State: "live", Dir: "sendrecv"})
	holdStep(t, sb, sa, true, callWant{State: "hold", LocalHold: true, Dir: "sendonly"}, callWant{State: "live", RemoteHold: true, Dir: "recvonly"})
	a.Hangup(ca.ID)
	if e := evB.WaitType(t, "call.ended", idB, sigTimeout); e.Reason != "remote" {
		t.Errorf("B: call.ended reason %q, want remote (A's BYE through the proxy)", e.Reason)
	}

	route := fmt.Sprintf("route=<sip:[::1]:%d;lr", k.Port) // then ;ftag=...
	lines := k.logLines(0, "UADTEST req")
	var inDialog []string
	for _, l := range strings.Split(lines, "\n") {
		if strings.Contains(l, route) {
			inDialog = append(inDialog, l[strings.Index(l, "UADTEST"):])
		}
	}
	// A's hold and resume with their ACKs, B's hold with its ACK, A's BYE.
	want := []string{"INVITE sip:uad@[::1]:" + strconv.Itoa(b.SIPPort), "INVITE sip:uad@[::1]:" + strconv.Itoa(b.SIPPort),
		"INVITE sip:uad@[::1]:" + strconv.Itoa(a.SIPPort), "BYE sip:uad@[::1]:" + strconv.Itoa(b.SIPPort)}
	all := strings.Join(inDialog, "\n")
	for _, w := range want {
		method, uri, _ := strings.Cut(w, " ")
		if !strings.Contains(all, "req "+method+" ru="+uri) {
			t.Errorf("the proxy saw no in-dialog %s to %s with %s; in-dialog requests seen:\n%s", method, uri, route, all)
		}
	}
	if n := strings.Count(all, "req ACK"); n < 4 {
		t.Errorf("the proxy routed %d in-dialog ACKs, want >= 4 (the INVITE's and three re-INVITEs'):\n%s", n, all)
	}
}
