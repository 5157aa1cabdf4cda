package dialog

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
)

// Keys of the peer's a=crypto lines (30 bytes: key and salt of the
// AES_CM suites; 28 for AEAD_AES_128_GCM).
const (
	peerKeyA   = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
	peerKeyB   = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"
	peerKeyGCM = "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3Bxcg=="
)

// peerSRTP writes the peer's SDP with an RTP/SAVP audio stream keyed by
// the given a=crypto values.
func peerSRTP(version int, dir string, cryptos ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=peer 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", version, peerHost, peerHost)
	b.WriteString("m=audio 30000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
	b.WriteString("a=" + dir + "\r\n")
	for _, c := range cryptos {
		b.WriteString("a=crypto:" + c + "\r\n")
	}
	return b.String()
}

// An offer's transport profiles under each media.srtp mode: what is
// accepted, what is declined with port 0, and what leaves nothing (488).
// DTLS-SRTP is declined in every mode.
func TestSRTPModesAnswer(t *testing.T) {
	savp := "m=audio 30000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + peerKeyA + "\r\n"
	dtls := "m=audio 30000 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n"
	avp := "m=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	avpf := "m=audio 30002 RTP/AVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
	withCrypto := func(lines ...string) string {
		out := "m=audio 30000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
		for _, l := range lines {
			out += "a=crypto:" + l + "\r\n"
		}
		return out
	}
	head := "v=0\r\no=peer 1 1 IN IP4 " + peerHost + "\r\ns=-\r\nc=IN IP4 " + peerHost + "\r\nt=0 0\r\n"
	for _, tt := range []struct {
		name   string
		mode   media.SRTPMode
		offer  string
		status int
		lines  string
		protos string
		suite  string // of the one a=crypto line answered, with tag
	}{
		{"off: SDES-SRTP alone", media.SRTPOff, head + savp, 488, "", "", ""},
		{"off: DTLS-SRTP alone", media.SRTPOff, head + dtls, 488, "", "", ""},
		{"off: SRTP then RTP", media.SRTPOff, head + savp + avp, 200, "audio:0 audio:on", "RTP/SAVP RTP/AVP", ""},
		{"off: AVPF", media.SRTPOff, head + avpf, 200, "audio:on", "RTP/AVPF", ""},
		{"accept: SDES-SRTP alone", media.SRTPAccept, head + savp, 200, "audio:on", "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80"},
		{"accept: plain", media.SRTPAccept, head + avp, 200, "audio:on", "RTP/AVP", ""},
		{"accept: SRTP then RTP takes SRTP", media.SRTPAccept, head + savp + avp, 200, "audio:on audio:0", "RTP/SAVP RTP/AVP", "1 AES_CM_128_HMAC_SHA1_80"},
		{"accept: DTLS-SRTP then RTP", media.SRTPAccept, head + dtls + avp, 200, "audio:0 audio:on", "UDP/TLS/RTP/SAVPF RTP/AVP", ""},
		{"accept: DTLS-SRTP alone", media.SRTPAccept, head + dtls, 488, "", "", ""},
		{"require: plain", media.SRTPRequire, head + avp, 488, "", "", ""},
		{"require: AVPF", media.SRTPRequire, head + avpf, 488, "", "", ""},
		{"require: RTP then SRTP", media.SRTPRequire, head + avp + savp, 200, "audio:0 audio:on", "RTP/AVP RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80"},
		{"accept: unknown suite only", media.SRTPAccept, head + withCrypto("1 AES_256_CM_HMAC_SHA1_80 inline:"+peerKeyA), 488, "", "", ""},
		{"accept: session parameter only", media.SRTPAccept, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA+" UNENCRYPTED_SRTP"), 488, "", "", ""},
		{"accept: unknown suite, then a known one", media.SRTPAccept,
			head + withCrypto("1 F8_128_HMAC_SHA1_80 inline:"+peerKeyA, "2 KDR=1 inline:"+peerKeyA, "3 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA+" WSH=64", "7 AES_CM_128_HMAC_SHA1_32 inline:"+peerKeyB),
			200, "audio:on", "RTP/SAVP", "7 AES_CM_128_HMAC_SHA1_32"},
		{"accept: GCM", media.SRTPAccept, head + withCrypto("4 AEAD_AES_128_GCM inline:"+peerKeyGCM), 200, "audio:on", "RTP/SAVP", "4 AEAD_AES_128_GCM"},
		{"accept: bad base64", media.SRTPAccept, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:@@@@"), 488, "", "", ""},
		{"accept: short key", media.SRTPAccept, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyGCM), 488, "", "", ""},
		{"accept: MKI", media.SRTPAccept, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA+"|2^20|1:4"), 488, "", "", ""},
		{"accept: short lifetime", media.SRTPAccept, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA+"|2^10"), 488, "", "", ""},
		{"accept: long lifetime", media.SRTPAccept, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA+"|2^31"), 200, "audio:on", "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80"},
		{"off: a malformed key on a declined stream", media.SRTPOff, head + withCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:@@") + avp, 200, "audio:0 audio:on", "RTP/SAVP RTP/AVP", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.SRTP = tt.mode })
			_, res := h.incoming(tt.offer, "")
			if res.StatusCode != tt.status {
				t.Fatalf("got %d, want %d (%v)", res.StatusCode, tt.status, res.GetHeader("Warning"))
			}
			if tt.status != 200 {
				return
			}
			ans := parseSDP(t, res.Body())
			if got := mlines(ans); got != tt.lines {
				t.Errorf("answer m-lines %s, want %s", got, tt.lines)
			}
			var protos []string
			for _, s := range ans.Streams {
				protos = append(protos, s.Proto)
			}
			if got := strings.Join(protos, " "); got != tt.protos {
				t.Errorf("answer protos %s, want %s", got, tt.protos)
			}
			var lines []string
			for _, s := range ans.Streams {
				for _, c := range s.Crypto {
					lines = append(lines, fmt.Sprintf("%d %s", c.Tag, c.Suite))
					if bytes.Contains(res.Body(), []byte(peerKeyA)) || bytes.Contains(res.Body(), []byte(peerKeyB)) {
						t.Error("the answer repeats the peer's key")
					}
				}
			}
			if got := strings.Join(lines, ","); got != tt.suite {
				t.Errorf("answer a=crypto %q, want %q", got, tt.suite)
			}
		})
	}
}

// liveSRTP is an incoming SRTP call keyed by the peer's line (of key
// peerKeyA), live: its audio stream and the keys it was configured with.
func liveSRTP(h *harness, line string) (*peer, *fakeStream, *media.SRTPKeys) {
	h.t.Helper()
	p := h.liveIncoming(peerSRTP(1, "sendrecv", line))
	s := h.med.streams[len(h.med.streams)-1]
	keys := srtpOf(h.t, s)
	if keys == nil || keys.Suite != "AES_CM_128_HMAC_SHA1_80" || !bytes.Equal(keys.Remote, mustKey(h.t, peerKeyA)) || len(keys.Local) != 30 {
		h.t.Fatalf("keys after the call started: %+v", keys)
	}
	return p, s, keys
}

// srtpOf is the SRTP keys the stream was last configured with.
func srtpOf(t *testing.T, s *fakeStream) *media.SRTPKeys {
	t.Helper()
	return s.last(t).SRTP
}

// A peer's re-INVITE that keeps its key (hold, resume) keeps the SRTP
// contexts: the stream is configured with the same keys and our answer
// repeats our key. A new key of the peer's (RFC 4568 §7.1.4) re-keys both
// directions; a malformed one is refused with 488 and changes nothing.
func TestSRTPReinviteKeys(t *testing.T) {
	h := newHarness(t, nil)
	keyA := "1 AES_CM_128_HMAC_SHA1_80 inline:" + peerKeyA
	p, s, first := liveSRTP(h, keyA)
	if _, _, info := h.state(p.call); info.Audio.SRTP == nil || *info.Audio.SRTP != "AES_CM_128_HMAC_SHA1_80" {
		t.Fatalf("audio.srtp = %v", info.Audio.SRTP)
	}

	// Held and resumed with the same key: same keys, our key repeated.
	for i, dir := range []string{"sendonly", "sendrecv"} {
		res := p.reoffer(t, peerSRTP(2+i, dir, keyA))
		if res.StatusCode != 200 {
			t.Fatalf("%s re-INVITE: %d", dir, res.StatusCode)
		}
		if got := srtpOf(t, s); !got.Equal(first) {
			t.Fatalf("%s re-INVITE changed the keys: %+v, was %+v", dir, got, first)
		}
		if ans := parseSDP(t, res.Body()); !bytes.Equal(ans.Streams[0].Crypto[0].Key, first.Local) {
			t.Fatalf("%s re-INVITE: our answer's key changed", dir)
		}
	}

	// A malformed key: 488, the call and its keys stay.
	res := p.reoffer(t, peerSRTP(4, "sendrecv", "1 AES_CM_128_HMAC_SHA1_80 inline:short"))
	if res.StatusCode != 488 {
		t.Fatalf("malformed key: %d, want 488", res.StatusCode)
	}
	if got := srtpOf(t, s); !got.Equal(first) {
		t.Fatalf("a refused offer changed the keys")
	}
	if _, _, info := h.state(p.call); info.State != StateLive {
		t.Fatalf("state %s after the refused re-INVITE", info.State)
	}

	// The peer re-keys: a new context both ways.
	res = p.reoffer(t, peerSRTP(5, "sendrecv", "1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyB))
	if res.StatusCode != 200 {
		t.Fatalf("re-key: %d", res.StatusCode)
	}
	rekeyed := srtpOf(t, s)
	if !bytes.Equal(rekeyed.Remote, mustKey(t, peerKeyB)) || bytes.Equal(rekeyed.Local, first.Local) {
		t.Fatalf("after the peer's new key: %+v (was %+v)", rekeyed, first)
	}
	if ans := parseSDP(t, res.Body()); !bytes.Equal(ans.Streams[0].Crypto[0].Key, rekeyed.Local) {
		t.Fatal("our answer's key is not the one the stream encrypts with")
	}
}

// media.srtp: require on an outgoing call: uad offers RTP/SAVP with a line
// per suite; the answer's tag picks the suite and keys. Its hold re-offers
// that line alone and keeps the keys.
func TestSRTPRequireOffer(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SRTP = media.SRTPRequire })
	info, err := h.m.Place(context.Background(), PlaceRequest{To: "sip:bob@" + peerHost})
	if err != nil {
		t.Fatal(err)
	}
	inv := h.sig.expect(t, gosip.INVITE)
	offer := parseSDP(t, inv.req.Body())
	a := offer.Streams[0]
	if a.Proto != "RTP/SAVP" || len(a.Crypto) != len(media.Suites) {
		t.Fatalf("offer: %s with %d a=crypto lines", a.Proto, len(a.Crypto))
	}
	var ours media.Crypto
	for _, c := range a.Crypto {
		if c.Suite == "AEAD_AES_128_GCM" {
			ours = c
		}
	}
	answer := strings.Replace(peerSRTP(1, "sendrecv", fmt.Sprintf("%d AEAD_AES_128_GCM inline:%s", ours.Tag, peerKeyGCM)), "o=peer", "o=bob", 1)
	inv.answer(200, "OK", answer, "Contact: <sip:bob@"+peerHost+":5060>")
	h.sig.expect(t, gosip.ACK)
	h.ev.expect(t, "call.connected")
	c, _, _ := h.m.call(info.ID)
	keys := srtpOf(t, h.med.streams[0])
	if keys == nil || keys.Suite != "AEAD_AES_128_GCM" || !bytes.Equal(keys.Local, ours.Key) || !bytes.Equal(keys.Remote, mustKey(t, peerKeyGCM)) {
		t.Fatalf("keys %+v", keys)
	}

	// Our hold re-offers the line the answer chose, alone: the keys stay.
	done := h.begin(c, true)
	re := h.sig.expect(t, gosip.INVITE)
	reoffer := parseSDP(t, re.req.Body())
	if got := reoffer.Streams[0].Crypto; len(got) != 1 || !got[0].Same(ours) {
		t.Fatalf("hold re-offer a=crypto %v, want only the chosen line %v with its key", got, ours)
	}
	re.answer(200, "OK", strings.Replace(answer, "a=sendrecv", "a=recvonly", 1), "Contact: <sip:bob@"+peerHost+":5060>")
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	if got := srtpOf(t, h.med.streams[0]); !got.Equal(keys) {
		t.Fatalf("hold changed the keys: %+v", got)
	}
}

// An answer to our SRTP offer that names no line of ours cannot be used:
// uad hangs up rather than send what the peer cannot decrypt.
func TestSRTPAnswerWithoutCommonCrypto(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SRTP = media.SRTPRequire })
	if _, err := h.m.Place(context.Background(), PlaceRequest{To: "sip:bob@" + peerHost}); err != nil {
		t.Fatal(err)
	}
	inv := h.sig.expect(t, gosip.INVITE)
	inv.answer(200, "OK", peerSRTP(1, "sendrecv", "9 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA), "Contact: <sip:bob@"+peerHost+":5060>")
	h.sig.expect(t, gosip.ACK)
	h.sig.expect(t, gosip.BYE)
	h.ev.expect(t, "call.ended")
}

// "srtp" in POST /v1/calls overrides the mode; a bad value is a 400.
func TestSRTPPerCall(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.SRTP = media.SRTPOff
		c.Peers = []PeerRule{{Match: "*.secure.example", SRTP: media.SRTPRequire}}
	})
	if _, err := h.m.Place(context.Background(), PlaceRequest{To: "sip:bob@" + peerHost, SRTP: "always"}); err == nil {
		t.Fatal("srtp \"always\" accepted")
	} else if _, ok := err.(*RequestError); !ok {
		t.Fatalf("srtp \"always\": %T %v, want a RequestError", err, err)
	}
	for _, tt := range []struct {
		to, srtp, proto string
	}{
		{"sip:bob@" + peerHost, "require", "RTP/SAVP"},
		{"sip:bob@" + peerHost, "", "RTP/AVP"},
		{"sip:bob@pbx.secure.example", "", "RTP/SAVP"},
		{"sip:bob@pbx.secure.example", "off", "RTP/AVP"},
	} {
		if _, err := h.m.Place(context.Background(), PlaceRequest{To: tt.to, SRTP: tt.srtp}); err != nil {
			t.Fatal(err)
		}
		inv := h.sig.expect(t, gosip.INVITE)
		if got := parseSDP(t, inv.req.Body()).Streams[0].Proto; got != tt.proto {
			t.Errorf("to %s srtp %q: offered %s, want %s", tt.to, tt.srtp, got, tt.proto)
		}
	}
}

func mustKey(t *testing.T, b64 string) []byte {
	t.Helper()
	c, err := media.ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:" + b64)
	if err == nil {
		return c.Key
	}
	c, err = media.ParseCrypto("1 AEAD_AES_128_GCM inline:" + b64)
	if err != nil {
		t.Fatal(err)
	}
	return c.Key
}

// Rekey: our re-INVITE offers a new key under each line's tag and suite;
// once answered, both directions use new keys. Refused, the keys stay. A
// call without SRTP has nothing to re-key (409).
func TestSRTPRekeyOperation(t *testing.T) {
	h := newHarness(t, nil)
	p, s, first := liveSRTP(h, "1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyA)

	rekey := func(status int, answer string) error {
		t.Helper()
		done := h.op(h.m.Rekey, p.call)
		re := h.sig.expect(t, gosip.INVITE)
		offer := parseSDP(t, re.req.Body())
		c := offer.Streams[0].Crypto
		if len(c) != 1 || c[0].Tag != 1 || c[0].Suite != "AES_CM_128_HMAC_SHA1_80" || bytes.Equal(c[0].Key, first.Local) {
			t.Fatalf("re-key offer a=crypto %+v: want tag 1, the same suite, a new key", c)
		}
		re.answer(status, "X", answer, "Contact: <sip:alice@"+peerHost+":5060>")
		return outcome(t, done)
	}
	if err := rekey(488, ""); err == nil {
		t.Fatal("a refused re-key succeeded")
	}
	if got := srtpOf(t, s); !got.Equal(first) {
		t.Fatal("a refused re-key changed the keys")
	}
	if err := rekey(200, peerSRTP(2, "sendrecv", "1 AES_CM_128_HMAC_SHA1_80 inline:"+peerKeyB)); err != nil {
		t.Fatal(err)
	}
	got := srtpOf(t, s)
	if bytes.Equal(got.Local, first.Local) || !bytes.Equal(got.Remote, mustKey(t, peerKeyB)) {
		t.Fatalf("after the re-key: %+v (was %+v)", got, first)
	}

	plain := h.liveIncoming(peerAudio)
	if _, err := h.m.Rekey(context.Background(), plain.call.id); err == nil {
		t.Fatal("re-keyed a plain RTP call")
	} else if _, ok := err.(*StateError); !ok {
		t.Fatalf("re-key of a plain call: %T %v, want a StateError (409)", err, err)
	}
}
