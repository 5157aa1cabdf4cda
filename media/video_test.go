package media

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

func remoteVideo(t *testing.T, file string) *RemoteStream {
	t.Helper()
	b, err := os.ReadFile("testdata/sdp/" + file)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRemote(b)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := rs.Stream("video")
	if v == nil {
		t.Fatalf("%s has no video", file)
	}
	return v
}

// Asterisk answers our H.264 offer with the profile upper-cased and the
// parameters reordered: still the same codec (RFC 6184 compares the value).
func TestNegotiateVideoAsteriskUppercaseProfile(t *testing.T) {
	local := &LocalStream{Kind: "video", Formats: VideoFormats()}
	p, err := NegotiateVideo(local, remoteVideo(t, "asterisk-initial-audio-video-answer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, ok := p.SendPT(H264PayloadType); !ok || pt != 96 {
		t.Errorf("H264 maps to %d %v, want 96", pt, ok)
	}
	if pt, ok := p.SendPT(VP8PayloadType); !ok || pt != 97 {
		t.Errorf("VP8 maps to %d %v, want 97", pt, ok)
	}
	if p.Remote.Port() != 40012 {
		t.Errorf("remote = %v", p.Remote)
	}
}

func TestAnswerVideoOffers(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"freeswitch-initial-audio-video-offer.sdp", []string{"VP8", "H264"}},
		{"baresip-initial-audio-video-offer.sdp", []string{"VP8"}},
	}
	for _, tt := range tests {
		got := AnswerVideo(remoteVideo(t, tt.file).Formats)
		if len(got) != len(tt.want) {
			t.Fatalf("%s: answer %+v, want %v", tt.file, got, tt.want)
		}
		for i := range got {
			if got[i].Name != tt.want[i] {
				t.Errorf("%s: format %d = %s, want %s", tt.file, i, got[i].Name, tt.want[i])
			}
		}
	}
}

func TestSameCodecH264(t *testing.T) {
	a := Format{Name: "H264", Rate: 90000, Fmtp: "profile-level-id=42e01f;packetization-mode=1"}
	for fmtp, want := range map[string]bool{
		"packetization-mode=1;profile-level-id=42E01F": true,
		"profile-level-id=42e01f":                      false, // mode 0
		"packetization-mode=1;profile-level-id=640028": false,
	} {
		if got := sameCodec(a, Format{Name: "h264", Rate: 90000, Fmtp: fmtp}); got != want {
			t.Errorf("sameCodec(%q) = %v, want %v", fmtp, got, want)
		}
	}
}

func TestRequestKeyFrameSendsPLI(t *testing.T) {
	e := newTestEngine(t, 31400, 31409)
	s, err := e.NewStream(true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rtcpPeer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 31501})
	if err != nil {
		t.Fatal(err)
	}
	defer rtcpPeer.Close()
	remote := rtcpPeer.LocalAddr().(*net.UDPAddr).AddrPort()
	s.Configure(StreamConfig{Mode: ModeEcho, Video: VideoParams{Remote: netipPortMinus1(remote)}, Send: true, Accept: true})
	if err := s.RequestKeyFrame(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	rtcpPeer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := rtcpPeer.Read(buf)
	if err != nil {
		t.Fatalf("no RTCP: %v", err)
	}
	pkts, err := rtcp.Unmarshal(buf[:n])
	if err != nil || len(pkts) != 3 {
		t.Fatalf("rtcp %v %v, want RR, SDES, PLI", pkts, err)
	}
	checkCompoundHead(t, pkts, e.cname)
	if _, ok := pkts[2].(*rtcp.PictureLossIndication); !ok {
		t.Errorf("got %T, want a PLI", pkts[2])
	}
}

// checkCompoundHead checks what RFC 3550 §6.1 asks of every compound
// packet: SR or RR first, then SDES with the CNAME of the report's sender.
func checkCompoundHead(t *testing.T, pkts []rtcp.Packet, cname string) {
	t.Helper()
	var ssrc uint32
	switch p := pkts[0].(type) {
	case *rtcp.SenderReport:
		ssrc = p.SSRC
	case *rtcp.ReceiverReport:
		ssrc = p.SSRC
	default:
		t.Fatalf("compound starts with %T, want SR or RR", pkts[0])
	}
	sdes, ok := pkts[1].(*rtcp.SourceDescription)
	if !ok || len(sdes.Chunks) != 1 || sdes.Chunks[0].Source != ssrc || len(sdes.Chunks[0].Items) == 0 ||
		sdes.Chunks[0].Items[0].Type != rtcp.SDESCNAME || sdes.Chunks[0].Items[0].Text != cname {
		t.Fatalf("second packet %v, want SDES CNAME %q of SSRC %x", pkts[1], cname, ssrc)
	}
}

// netipPortMinus1 is the RTP address whose RTCP port (RTP+1) is a.
func netipPortMinus1(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr(), a.Port()-1)
}

// RFC 6184 §8.2.2: profile_idc and profile-iop must match, the level may
// differ; no profile-level-id means Baseline level 1 (§8.1); the
// packetization mode must agree (absent = 0).
func TestSameCodecH264Levels(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"profile-level-id=42e01f;packetization-mode=1", "packetization-mode=1;profile-level-id=42E01F", true},
		{"profile-level-id=42e01f;packetization-mode=1", "profile-level-id=42e028;packetization-mode=1", true},  // level 4.0 answer
		{"profile-level-id=42e01f;packetization-mode=1", "profile-level-id=42E00B;packetization-mode=1", true},  // level 1.1
		{"profile-level-id=42e01f;packetization-mode=1", "profile-level-id=42c01f;packetization-mode=1", false}, // another profile-iop
		{"profile-level-id=42e01f;packetization-mode=1", "profile-level-id=4de01f;packetization-mode=1", false}, // Main
		{"profile-level-id=42e01f;packetization-mode=1", "profile-level-id=640028;packetization-mode=1", false}, // High
		{"profile-level-id=42e01f;packetization-mode=1", "profile-level-id=42e01f", false},                      // mode 0
		{"profile-level-id=42e01f;packetization-mode=0", "profile-level-id=42e01f", true},
		{"packetization-mode=1", "profile-level-id=42000a;packetization-mode=1", true}, // absent: 42 00, level 1
		{"packetization-mode=1", "profile-level-id=42001f;packetization-mode=1", true},
		{"packetization-mode=1", "profile-level-id=42e01f;packetization-mode=1", false},
		{"", "", true},
		{"", "profile-level-id=640c1f", false},
		{"profile-level-id=zz", "profile-level-id=42e01f", false},
		{"profile-level-id=42e0", "profile-level-id=42e01f", false},
	}
	for _, tt := range tests {
		a := Format{Name: "H264", Rate: 90000, Fmtp: tt.a}
		b := Format{Name: "H264", Rate: 90000, Fmtp: tt.b}
		if got := sameCodec(a, b); got != tt.want {
			t.Errorf("sameCodec(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := sameCodec(b, a); got != tt.want {
			t.Errorf("sameCodec(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// An H.264 format whose profile-level-id cannot be read could never match
// anything, so it is left out of the answer rather than answered and then
// refused (RFC 6184 §8.2.2).
func TestAnswerVideoSkipsUnreadableH264(t *testing.T) {
	offered := []Format{
		{PT: 97, Name: "h264", Rate: 90000, Fmtp: "profile-level-id=0"},
		{PT: 98, Name: "H264", Rate: 90000, Fmtp: "profile-level-id=42e01f;packetization-mode=1"},
		{PT: 100, Name: "VP8", Rate: 90000},
	}
	got := AnswerVideo(offered)
	if len(got) != 2 || got[0].PT != 98 || got[1].PT != 100 {
		t.Fatalf("AnswerVideo = %v, want PT 98 and 100", got)
	}
	if _, err := NegotiateVideo(&LocalStream{Kind: "video", Formats: got}, &RemoteStream{Kind: "video", Formats: offered}); err != nil {
		t.Errorf("the answer does not negotiate: %v", err)
	}
}
