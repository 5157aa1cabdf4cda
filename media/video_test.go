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
	if err != nil || len(pkts) != 1 {
		t.Fatalf("rtcp %v %v", pkts, err)
	}
	if _, ok := pkts[0].(*rtcp.PictureLossIndication); !ok {
		t.Errorf("got %T, want a PLI", pkts[0])
	}
}

// netipPortMinus1 is the RTP address whose RTCP port (RTP+1) is a.
func netipPortMinus1(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr(), a.Port()-1)
}
