package media

import (
	"bytes"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// capturedOffer is a captured SDP with each replacement applied once, in
// order (old, new, old, new, ...), so tests can derive SRTP and DTLS forms
// from what real peers sent.
func capturedOffer(t *testing.T, file string, replace ...string) *RemoteSession {
	t.Helper()
	b, err := os.ReadFile("testdata/sdp/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s has no %q", file, replace[i])
		}
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	rs, err := ParseRemote([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v\n%s", file, err, s)
	}
	return rs
}

const testCrypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"

// testPlan answers as uad with media.srtp: off, where every SRTP profile is
// one it does not honour (crypto_test.go covers accept and require).
var testPlan = AnswerPlan{Laws: []Law{PCMU, PCMA}, AudioPort: 30000, AudioSend: true, AudioRecv: true, VideoPort: 30002, SRTP: SRTPOff}

// wantDeclined checks an m-line declined for its transport profile: port 0,
// the offered proto, the formats as offered, and no attribute written.
func wantDeclined(t *testing.T, l *LocalSession, i int, offer *RemoteStream) {
	t.Helper()
	ls := l.Streams[i]
	if ls.Port != 0 || ls.Proto != offer.Proto || len(ls.Formats) != 0 || !slices.Equal(ls.RawFmts, offer.RawFmts) {
		t.Errorf("m-line %d: port %d proto %q formats %v raw %v; want port 0, proto %q, raw %v",
			i, ls.Port, ls.Proto, ls.Formats, ls.RawFmts, offer.Proto, offer.RawFmts)
	}
	body := l.Marshal()
	sections := bytes.Split(body, []byte("m="))
	if i+1 >= len(sections) {
		t.Fatalf("answer has no m-line %d:\n%s", i, body)
	}
	sec := string(sections[i+1])
	want := offer.Kind + " 0 " + offer.Proto + " " + strings.Join(offer.RawFmts, " ") + "\r\n"
	if sec != want {
		t.Errorf("m-line %d written as %q, want %q (no attributes)", i, "m="+sec, "m="+want)
	}
}

// With SRTP off, an m-line whose profile uad cannot honour is declined
// (RFC 3264 §6), never answered as if it were plain RTP.
func TestAnswerDeclinesUnhonouredProfiles(t *testing.T) {
	tests := []struct {
		name     string
		offer    *RemoteSession
		declined []int
		accepted map[int]string // index -> proto answered
	}{
		{
			name:     "SDES-SRTP audio",
			offer:    capturedOffer(t, "asterisk-initial-audio-offer.sdp", "RTP/AVP", "RTP/SAVP", "a=sendrecv\r\n", "a=sendrecv\r\n"+testCrypto),
			declined: []int{0},
		},
		{
			name: "DTLS-SRTP without a fingerprint",
			offer: capturedOffer(t, "baresip-initial-audio-video-offer.sdp",
				"m=audio 20066 RTP/AVP", "m=audio 20066 UDP/TLS/RTP/SAVPF", "m=video 20070 RTP/AVP", "m=video 20070 UDP/TLS/RTP/SAVPF"),
			declined: []int{0, 1},
		},
		{
			name: "best-effort SRTP: SAVP then AVP",
			offer: capturedOffer(t, "freeswitch-initial-audio-offer.sdp", "c=IN IP4 127.0.0.1\r\nt=0 0\r\n",
				"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 24078 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+testCrypto),
			declined: []int{0},
			accepted: map[int]string{1: "RTP/AVP"},
		},
		{
			name: "AVPF is honoured and answered as AVPF",
			offer: capturedOffer(t, "freeswitch-initial-audio-video-offer.sdp",
				"m=audio 24258 RTP/AVP", "m=audio 24258 RTP/AVPF", "m=video 24236 RTP/AVP", "m=video 24236 RTP/AVPF"),
			accepted: map[int]string{0: "RTP/AVPF", 1: "RTP/AVPF"},
		},
		{
			name: "SAVPF video beside plain audio",
			offer: capturedOffer(t, "freeswitch-initial-audio-video-offer.sdp",
				"m=video 24236 RTP/AVP", "m=video 24236 RTP/SAVPF"),
			declined: []int{1},
			accepted: map[int]string{0: "RTP/AVP"},
		},
		{
			name:     "RTP over TCP",
			offer:    capturedOffer(t, "baresip-initial-audio-offer.sdp", "RTP/AVP", "TCP/RTP/AVP"),
			declined: []int{0},
		},
		{
			name:     "DTLS-SRTP audio, SAVP",
			offer:    capturedOffer(t, "baresip-hold-offer.sdp", "RTP/AVP", "UDP/TLS/RTP/SAVP"),
			declined: []int{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLocalSession(1, netip.MustParseAddr("127.0.0.1"))
			l.Streams = Answer(tt.offer, testPlan)
			if len(l.Streams) != len(tt.offer.Streams) {
				t.Fatalf("%d m-lines answered, %d offered", len(l.Streams), len(tt.offer.Streams))
			}
			for _, i := range tt.declined {
				wantDeclined(t, l, i, &tt.offer.Streams[i])
			}
			for i, proto := range tt.accepted {
				if ls := l.Streams[i]; ls.Port == 0 || ls.Proto != proto || len(ls.Formats) == 0 {
					t.Errorf("m-line %d: port %d proto %q formats %v; want it accepted as %s", i, ls.Port, ls.Proto, ls.Formats, proto)
				}
			}
		})
	}
}

func TestHonouredProfile(t *testing.T) {
	// Whatever the mode, DTLS-SRTP, TCP and non-RTP profiles are declined.
	never := []string{"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF", "TCP/RTP/AVP", "TCP/TLS/RTP/SAVP", "udptl", "UDP/BFCP", ""}
	for _, tt := range []struct {
		mode        SRTPMode
		plain, sdes bool
	}{
		{SRTPOff, true, false},
		{SRTPAccept, true, true},
		{"", true, true}, // the default is accept
		{SRTPRequire, false, true},
	} {
		for _, proto := range []string{"RTP/AVP", "RTP/AVPF", "rtp/avp"} {
			if got := HonouredProfile(proto, tt.mode); got != tt.plain {
				t.Errorf("HonouredProfile(%q, %q) = %v, want %v", proto, tt.mode, got, tt.plain)
			}
		}
		for _, proto := range []string{"RTP/SAVP", "RTP/SAVPF", "rtp/savp"} {
			if got := HonouredProfile(proto, tt.mode); got != tt.sdes {
				t.Errorf("HonouredProfile(%q, %q) = %v, want %v", proto, tt.mode, got, tt.sdes)
			}
		}
		for _, proto := range never {
			if HonouredProfile(proto, tt.mode) {
				t.Errorf("HonouredProfile(%q, %q) = true, want false", proto, tt.mode)
			}
		}
	}
}

// Usable finds the stream the dialog layer negotiates: the one Answer
// accepts. Active finds the slot that carries it in the answer.
func TestUsableAndActive(t *testing.T) {
	laws := []Law{PCMU, PCMA}
	bestEffort := capturedOffer(t, "freeswitch-initial-audio-video-offer.sdp",
		"c=IN IP4 127.0.0.1\r\nt=0 0\r\n", "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 24300 RTP/SAVP 0\r\n"+testCrypto+"m=video 24302 RTP/SAVPF 103\r\na=rtpmap:103 VP8/90000\r\n")
	tests := []struct {
		name                   string
		offer                  *RemoteSession
		laws                   []Law
		wantAudio, wantVideo   int
		audioPort, videoPort   int // of the usable stream
		activeAudio, activeVid int // slots on in the answer
	}{
		{"best-effort SRTP", bestEffort, laws, 2, 3, 24258, 24236, 2, 3},
		{"plain", capturedOffer(t, "baresip-initial-audio-video-offer.sdp"), laws, 0, 1, 20066, 20070, 0, 1},
		{"video removed", capturedOffer(t, "baresip-initial-audio-video-offer.sdp", "m=video 20070", "m=video 0"), laws, 0, -1, 20066, 0, 0, -1},
		{"no law in common", capturedOffer(t, "baresip-hold-offer.sdp"), []Law{PCMA}, -1, -1, 0, 0, -1, -1},
		{"all SRTP", capturedOffer(t, "asterisk-initial-audio-offer.sdp", "RTP/AVP", "RTP/SAVP"), laws, -1, -1, 0, 0, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ai := tt.offer.Usable("audio", tt.laws, SRTPOff)
			v, vi := tt.offer.Usable("video", tt.laws, SRTPOff)
			if ai != tt.wantAudio || vi != tt.wantVideo {
				t.Fatalf("usable audio %d video %d, want %d %d", ai, vi, tt.wantAudio, tt.wantVideo)
			}
			if a != nil && a.Port != tt.audioPort || v != nil && v.Port != tt.videoPort || (a == nil) != (ai < 0) || (v == nil) != (vi < 0) {
				t.Errorf("usable streams %+v %+v", a, v)
			}
			plan := testPlan
			plan.Laws = tt.laws
			l := NewLocalSession(1, netip.MustParseAddr("127.0.0.1"))
			l.Streams = Answer(tt.offer, plan)
			la, lai := l.Active("audio")
			lv, lvi := l.Active("video")
			if lai != tt.activeAudio || lvi != tt.activeVid {
				t.Errorf("active audio %d video %d, want %d %d", lai, lvi, tt.activeAudio, tt.activeVid)
			}
			if la != nil && la.Port != plan.AudioPort || lv != nil && lv.Port != plan.VideoPort {
				t.Errorf("active slots %+v %+v", la, lv)
			}
			if lai >= 0 {
				if _, err := NegotiateAudio(la, a, la.Formats, tt.laws); err != nil {
					t.Errorf("the accepted audio does not negotiate: %v", err)
				}
			}
			if lvi >= 0 {
				if _, err := NegotiateVideo(lv, v); err != nil {
					t.Errorf("the accepted video does not negotiate: %v", err)
				}
			}
		})
	}
}
