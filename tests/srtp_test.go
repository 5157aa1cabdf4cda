package tests

// SDES-SRTP (RFC 4568, RFC 3711) end to end: two uads over TLS requiring
// SRTP, through hold (the tone heard after decryption), resume and video
// removed and added; baresip with its srtp module both ways; and no key in
// any uad log. Raw-SIP cases (mismatches, malformed keys, re-keying) are in
// tests/conformance/rfc4568_test.go.

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"uad/tests/internal/g711"
)

// srtpStreams is what the call object says of SRTP, and the counters that
// show decryption working (packets count only once they authenticate).
type srtpStreams struct {
	Audio *srtpStream `json:"audio"`
	Video *srtpStream `json:"video"`
}

type srtpStream struct {
	SRTP  *string `json:"srtp"`
	Stats *struct {
		PacketsReceived uint64 `json:"packets_received"`
	} `json:"stats"`
}

func srtpOf(t testing.TB, u *UAD, id string) srtpStreams {
	t.Helper()
	return getJSON[srtpStreams](t, u, "/v1/calls/"+id, "call")
}

// checkSuite asserts the suite of a call's audio (and video, when video
// is not "") in its call object.
func checkSuite(t testing.TB, what string, u *UAD, id, audio, video string) {
	t.Helper()
	s := srtpOf(t, u, id)
	if s.Audio == nil || s.Audio.SRTP == nil || *s.Audio.SRTP != audio {
		t.Errorf("%s: audio.srtp %v, want %s", what, deref(s.Audio), audio)
	}
	if video != "" && (s.Video == nil || s.Video.SRTP == nil || *s.Video.SRTP != video) {
		t.Errorf("%s: video.srtp %v, want %s", what, deref(s.Video), video)
	}
}

func deref(s *srtpStream) string {
	if s == nil {
		return "(no stream)"
	}
	if s.SRTP == nil {
		return "null"
	}
	return *s.SRTP
}

// packetsIn is how many packets of the peer a call's audio took.
func packetsIn(t testing.TB, u *UAD, id string) uint64 {
	t.Helper()
	if s := srtpOf(t, u, id); s.Audio != nil && s.Audio.Stats != nil {
		return s.Audio.Stats.PacketsReceived
	}
	return 0
}

// keyRE finds SDES inline keys as they are on the wire.
var keyRE = regexp.MustCompile(`inline:([A-Za-z0-9+/]{20,}={0,2})`)

// checkNoKeys asserts that a uad log holds no inline key: neither any key
// given (seen on the wire) nor any other, while its SIP trace shows the
// SDP with the key redacted.
func checkNoKeys(t testing.TB, u *UAD, keys []string) {
	t.Helper()
	log := u.Log()
	for _, k := range keys {
		if strings.Contains(log, k) {
			t.Errorf("uad %s's log contains an SRTP key seen on the wire (%s...)", u.Name, k[:6])
		}
	}
	if m := keyRE.FindString(log); m != "" {
		t.Errorf("uad %s's log contains an inline key (%s...)", u.Name, m[:13])
	}
	if !strings.Contains(log, "inline:****") {
		t.Errorf("uad %s's debug SIP trace shows no redacted a=crypto: was SRTP not offered?", u.Name)
	}
}

// srtpTLSUAD starts a uad with SRTP required on UDP and TLS listeners
// (calls go over TLS; the UDP one draws the start-up warning).
func srtpTLSUAD(t *testing.T, name, cert, key string, config map[string]any) (*UAD, int) {
	t.Helper()
	p := miscPorts.take(t, 2, true)
	cfg := map[string]any{
		"sip.listen":     []string{fmt.Sprintf("udp://127.0.0.1:%d", p), fmt.Sprintf("tls://127.0.0.1:%d", p+1)},
		"sip.tls_cert":   cert,
		"sip.tls_key":    key,
		"sip.tls_verify": false,
		"media.srtp":     "require",
	}
	for k, v := range config {
		cfg[k] = v
	}
	return startUAD(t, UADOptions{Name: name, Config: cfg}), p + 1
}

// A (echo, the holder) calls B (relay to the test's endpoints: audio at X,
// video at X+2) over TLS, both requiring SRTP with video. Audio and video
// go through SRTP both ways; A's hold tone reaches B's endpoint decrypted;
// resume brings audio and video back; video removed and added again is
// SRTP too, and so is what follows A's re-key. No key is in either log,
// and each warns of its UDP listener.
func TestSRTPUADtoUAD(t *testing.T) {
	t.Parallel()
	cert, key := selfSignedCert(t, t.TempDir())
	x := miscPorts.take(t, 4, false)
	vc := &videoCall{audioEnd: newRTPPeer(t, x), videoEnd: newRTPPeer(t, x+2), relayVideo: fmt.Sprintf("127.0.0.1:%d", x+2)}
	vc.src = newVideoSource(vc.videoEnd, 96)
	var bTLS int
	vc.b, bTLS = srtpTLSUAD(t, "B", cert, key, map[string]any{
		"calls.media": "relay", "calls.relay": vc.audioEnd.Addr(), "calls.video_request_policy": "accept",
	})
	vc.a, _ = srtpTLSUAD(t, "A", cert, key, map[string]any{"media.hold_tone": "440", "calls.video_request_policy": "accept"})
	vc.evA, vc.evB = vc.a.Events(), vc.b.Events()

	target := fmt.Sprintf("sips:b@127.0.0.1:%d", bTLS)
	if st, body := vc.a.API(http.MethodPost, "/v1/calls", map[string]any{"to": target, "srtp": "maybe"}); st != http.StatusBadRequest || !strings.Contains(string(body), "srtp") {
		t.Errorf(`POST /v1/calls with "srtp": "maybe" = %d %s, want 400 naming srtp`, st, body)
	}
	ca := vc.a.PlaceCall(target, map[string]any{"video": true})
	vc.idA = ca.ID
	vc.idB = waitBothConnected(t, vc.evA, vc.idA, vc.evB)
	const suite = "AES_CM_128_HMAC_SHA1_80" // the first line of A's offer
	checkSuite(t, "A connected", vc.a, vc.idA, suite, suite)
	checkSuite(t, "B connected", vc.b, vc.idB, suite, suite)
	cb := vc.b.Call(vc.idB)
	// The endpoint talks all along (60 s at most; its socket closes at the end).
	vc.audioEnd.SendAsync(mustUDPAddr(t, cb.Audio.RelayLocal), 3000)

	// Endpoint -> B -> SRTP -> A (echo) -> SRTP -> B -> endpoint.
	checkHears(t, "live: the endpoint's audio back through SRTP", vc.audioEnd, echoOf(vc.audioEnd))
	vc.flowVideo(t, "live: video through SRTP", cb)

	// A holds: video first, then audio sendonly with A's hold tone, which B
	// decrypts and relays to its endpoint.
	vc.holdWithVideo(t)
	tone := func(pk RTPPacket) bool { return isTone(0, pk.Payload, 440) }
	if got := waitPackets(vc.audioEnd, time.Now(), 20, tone, 3*time.Second); len(got) < 20 {
		rms, share := g711.ToneLevel(0, lastPayload(vc.audioEnd), 440)
		t.Errorf("held: %d packets of A's 440 Hz hold tone at B's endpoint, want >= 20 (last rms %.0f, share %.2f)", len(got), rms, share)
	}
	checkSuite(t, "A holding", vc.a, vc.idA, suite, "")

	// Resume: audio, then video offered back and accepted.
	videoOp(t, vc.a, http.MethodDelete, "/v1/calls/"+vc.idA+"/hold", nil)
	vc.evA.WaitType(t, "unhold.success", vc.idA, sigTimeout)
	vc.evA.WaitType(t, "video.opened", vc.idA, sigTimeout)
	vc.evB.WaitType(t, "video.opened", vc.idB, sigTimeout)
	checkHears(t, "resumed: audio through the same SRTP contexts", vc.audioEnd, echoOf(vc.audioEnd))
	checkSuite(t, "B resumed", vc.b, vc.idB, suite, suite)
	vc.flowVideo(t, "resumed: video back through SRTP", vc.b.Call(vc.idB))

	// Video removed and added by B: a new SRTP video stream each time.
	videoOp(t, vc.b, http.MethodDelete, "/v1/calls/"+vc.idB+"/video", nil)
	vc.evA.WaitType(t, "video.closed", vc.idA, sigTimeout)
	if s := srtpOf(t, vc.a, vc.idA); s.Video != nil {
		t.Errorf("A after the video removal: video %+v, want null", s.Video)
	}
	added := videoOp(t, vc.b, http.MethodPost, "/v1/calls/"+vc.idB+"/video", nil)
	checkVideoOn(t, "B re-added video", added, "sendrecv", "H264")
	checkSuite(t, "B re-added video", vc.b, vc.idB, suite, suite)
	checkSuite(t, "A re-added video", vc.a, vc.idA, suite, suite)
	vc.flowVideo(t, "re-added video through SRTP", added)
	checkHears(t, "audio after the video changes", vc.audioEnd, echoOf(vc.audioEnd))

	// A re-keys (RFC 4568 §7.1.4): a re-INVITE with new keys, answered with
	// new keys of B's; audio and video go on under the new contexts.
	rekeyed := videoOp(t, vc.a, http.MethodPost, "/v1/calls/"+vc.idA+"/srtp/rekey", nil)
	if rekeyed.State != "live" {
		t.Errorf("A after the re-key: state %q, want live", rekeyed.State)
	}
	checkHears(t, "audio after the re-key", vc.audioEnd, echoOf(vc.audioEnd))
	vc.flowVideo(t, "video after the re-key", vc.b.Call(vc.idB))
	checkSuite(t, "B after the re-key", vc.b, vc.idB, suite, suite)

	vc.a.Hangup(vc.idA)
	vc.evB.WaitType(t, "call.ended", vc.idB, sigTimeout)
	for _, u := range []*UAD{vc.a, vc.b} {
		checkNoKeys(t, u, nil)
		if !strings.Contains(u.Log(), "keys travel in clear over udp://") {
			t.Errorf("uad %s did not warn that SRTP keys travel in clear on its UDP listener", u.Name)
		}
		if strings.Contains(u.Log(), "keys travel in clear over tls://") {
			t.Errorf("uad %s warned about its TLS listener", u.Name)
		}
	}
}

func lastPayload(p *RTPPeer) []byte {
	if pk := p.Received(); len(pk) > 0 {
		return pk[len(pk)-1].Payload
	}
	return nil
}

// baresip with its srtp module and mediaenc=srtp-mand, against uad
// requiring SRTP: uad calls baresip and baresip calls uad; each holds and
// resumes. Audio flows both ways through SRTP (uad counts baresip's packets
// only once they authenticate; baresip counts uad's after its srtp module
// let them through). The keys in baresip's SIP trace are in no uad log.
func TestSRTPBaresip(t *testing.T) {
	t.Parallel()
	requirePeer(t, "baresip", "sox")
	srtpBaresip := BaresipOptions{ExtraConfig: "module\t\t\tsrtp.so\n", AccountParams: ";mediaenc=srtp-mand"}
	for _, dir := range []string{"uad_calls_baresip", "baresip_calls_uad"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			u := startUAD(t, UADOptions{Config: map[string]any{"media.srtp": "require"}})
			ev := u.Events()
			b := startBaresip(t, srtpBaresip)
			var id string
			if dir == "uad_calls_baresip" {
				id = u.PlaceCall(b.URI(), map[string]any{"media": "tone"}).ID
				b.WaitEventType(t, "CALL_ESTABLISHED", sigTimeout)
				ev.WaitType(t, "call.connected", id, sigTimeout)
			} else {
				id = b.dialUAD(t, u, ev)
			}
			s := srtpOf(t, u, id)
			if s.Audio == nil || s.Audio.SRTP == nil || !strings.HasPrefix(*s.Audio.SRTP, "AE") {
				t.Fatalf("audio.srtp %s, want a suite", deref(s.Audio))
			}
			checkBaresipHears(t, b, "uad's SRTP")
			checkUADHears(t, u, id, "baresip's SRTP")

			// uad holds: baresip hears the hold tone through SRTP.
			before := b.RTPReceived()
			mustHold(t, u, id)
			ev.WaitType(t, "hold.success", id, sigTimeout)
			var got int
			if !poll(3*time.Second, 50*time.Millisecond, func() bool { got = b.RTPReceived(); return got >= before+25 }) {
				t.Errorf("baresip got %d SRTP packets while held, want >= 25 (the hold tone)", got-before)
			}
			mustUnhold(t, u, id)
			ev.WaitType(t, "unhold.success", id, sigTimeout)
			checkUADHears(t, u, id, "baresip's SRTP after uad's resume")

			// baresip holds and resumes.
			if r := b.Command("hold", ""); !r.OK {
				t.Fatalf("baresip hold: %+v", r)
			}
			ev.WaitType(t, "held", id, sigTimeout)
			if r := b.Command("resume", ""); !r.OK {
				t.Fatalf("baresip resume: %+v", r)
			}
			ev.WaitType(t, "resumed", id, sigTimeout)
			checkUADHears(t, u, id, "baresip's SRTP after its resume")
			before = b.RTPReceived()
			if !poll(3*time.Second, 50*time.Millisecond, func() bool { got = b.RTPReceived(); return got >= before+25 }) {
				t.Errorf("baresip got %d SRTP packets after its resume, want >= 25", got-before)
			}

			b.hangUp(t)
			ev.WaitType(t, "call.ended", id, sigTimeout)
			keys := keyRE.FindAllStringSubmatch(readFile(b.LogPath), -1)
			seen := map[string]bool{}
			for _, k := range keys {
				seen[k[1]] = true
			}
			if len(seen) < 2 {
				t.Fatalf("baresip's SIP trace shows %d distinct keys, want both sides' (>= 2)", len(seen))
			}
			var all []string
			for k := range seen {
				all = append(all, k)
			}
			checkNoKeys(t, u, all)
		})
	}
}

// checkUADHears asserts that a call's audio takes 25 more packets of the
// peer within 3 s.
func checkUADHears(t testing.TB, u *UAD, id, what string) {
	t.Helper()
	before := packetsIn(t, u, id)
	var got uint64
	if !poll(3*time.Second, 50*time.Millisecond, func() bool { got = packetsIn(t, u, id); return got >= before+25 }) {
		t.Errorf("%s: uad took %d packets, want >= 25", what, got-before)
	}
}
