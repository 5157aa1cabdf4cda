package media

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pion/rtp"

	"uad/media/codecspec"
)

func mustCodecLaw(t testing.TB, entry string) Law {
	t.Helper()
	spec, err := codecspec.Parse(entry)
	if err != nil {
		t.Fatal(err)
	}
	l, err := CodecLaw(spec)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func pts(fs []Format) []int {
	out := make([]int, len(fs))
	for i, f := range fs {
		out[i] = int(f.PT)
	}
	return out
}

func samePTs(got []Format, want ...int) bool { return slices.Equal(pts(got), want) }

func TestPassthroughCodecLaw(t *testing.T) {
	opus := mustCodecLaw(t, "opus/48000/2")
	if again := mustCodecLaw(t, "OPUS/48000/2"); again != opus {
		t.Errorf("opus named twice: Law %d then %d", opus, again)
	}
	if opus.Known() || opus.String() != "opus/48000/2" {
		t.Errorf("opus: known %v, %q", opus.Known(), opus.String())
	}
	if g := mustCodecLaw(t, "g722/8000"); g != G722 || !g.Known() {
		t.Errorf("g722/8000 is Law %d", g)
	}
	if l, ok := (Format{PT: 111, Name: "opus", Rate: 48000, Channels: 2}).Law(); !ok || l != opus {
		t.Errorf("an offered opus format is not the configured codec")
	}
	if _, ok := (Format{PT: 111, Name: "opus", Rate: 48000, Channels: 1}).Law(); ok {
		t.Errorf("mono opus taken for opus/48000/2")
	}
}

// uad's own offer puts its codecs in its order: the ones it encodes under
// their static payload types, pass-through ones under dynamic types from
// 96, skipping telephone-event's 101.
func TestOfferPayloadTypes(t *testing.T) {
	laws := []Law{G722, mustCodecLaw(t, "opus/48000/2"), PCMU}
	for i := range 5 {
		laws = append(laws, mustCodecLaw(t, "X-TEST"+itoa(i)+"/8000"))
	}
	fs := AudioFormats(laws, true)
	if !samePTs(fs, 9, 96, 0, 97, 98, 99, 100, 102, 101) {
		t.Fatalf("offered PTs %v", pts(fs))
	}
	ls := &LocalSession{SessionID: 1, Addr: netip.MustParseAddr("127.0.0.1"), Streams: []LocalStream{{Kind: "audio", Proto: "RTP/AVP", Port: 4000, Formats: fs, Direction: SendRecv}}}
	body := string(ls.Marshal())
	for _, line := range []string{"m=audio 4000 RTP/AVP 9 96 0 97 98 99 100 102 101", "a=rtpmap:9 G722/8000", "a=rtpmap:96 opus/48000/2", "a=rtpmap:102 X-TEST4/8000"} {
		if !strings.Contains(body, line+"\r\n") {
			t.Errorf("offer lacks %q:\n%s", line, body)
		}
	}
}

// Answers keep the offerer's order among the codecs both support and its
// payload types (RFC 3264 §6.1), here for the opus offer FreeSWITCH made.
func TestAnswerCapturedOpusOffer(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata/sdp", "freeswitch-initial-audio-video-offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	offer, err := ParseRemote(body)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := offer.Stream("audio")
	opus := mustCodecLaw(t, "opus/48000/2")
	tests := []struct {
		name string
		laws []Law
		want []int // answered PTs
		send Law
	}{
		{"uad prefers opus", []Law{opus, G722, PCMU}, []int{0, 102, 101}, PCMU},
		{"opus only", []Law{opus}, []int{102, 101}, opus},
		{"G.722 only", []Law{G722}, nil, 0},
		{"both laws", []Law{PCMA, PCMU}, []int{0, 8, 101}, PCMU},
	}
	for _, tt := range tests {
		answer := AnswerAudio(rs.Formats, tt.laws)
		if !samePTs(answer, tt.want...) {
			t.Errorf("%s: answered PTs %v, want %v", tt.name, pts(answer), tt.want)
			continue
		}
		if answer == nil {
			if a, _ := offer.Usable("audio", tt.laws, SRTPAccept); a != nil {
				t.Errorf("%s: no codec in common, yet the audio stream is usable", tt.name)
			}
			continue
		}
		ls := &LocalStream{Kind: "audio", Formats: answer}
		p, err := NegotiateAudio(ls, rs, answer, tt.laws)
		if err != nil || p.Send != tt.send || p.SendPT != answer[0].PT {
			t.Errorf("%s: sends %v PT %d (%v), want %v PT %d", tt.name, p.Send, p.SendPT, err, tt.send, answer[0].PT)
		}
		for _, f := range answer {
			if f.PT == 102 && (f.Name != "opus" || !strings.HasPrefix(f.Fmtp, "useinbandfec=1")) {
				t.Errorf("%s: opus answered as %+v, want it as offered", tt.name, f)
			}
		}
	}
}

// A static G.722 offer without rtpmap is understood; the answer keeps the
// offerer's order even where uad prefers another codec.
func TestAnswerG722Offer(t *testing.T) {
	offer, err := ParseRemote([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := &offer.Streams[0]
	laws := []Law{PCMU, G722}
	answer := AnswerAudio(rs.Formats, laws)
	if !samePTs(answer, 9, 0, 101) || answer[0].Name != "G722" || answer[0].Rate != 8000 {
		t.Fatalf("answer %+v, want G722/8000 (9), PCMU (0), 101", answer)
	}
	p, err := NegotiateAudio(&LocalStream{Kind: "audio", Formats: answer}, rs, answer, laws)
	if err != nil || p.Send != G722 || p.SendPT != 9 {
		t.Errorf("sends %v PT %d (%v), want G722 9", p.Send, p.SendPT, err)
	}
	if l, ok := p.RecvLaw(0); !ok || l != PCMU {
		t.Errorf("PT 0 is not received as PCMU")
	}
}

// A pass-through codec is echoed untouched under uad's own SSRC; another
// pass-through codec the peer listed is not sent on as the negotiated one;
// tone mode sends nothing, since uad cannot encode the codec.
func TestStreamPassthroughEcho(t *testing.T) {
	e := newTestEngine(t, 31850, 31859)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	opus, g729 := mustCodecLaw(t, "opus/48000/2"), mustCodecLaw(t, "G729/8000")
	offered := []Format{{PT: 111, Name: "opus", Rate: 48000, Channels: 2}, {PT: 18, Name: "G729", Rate: 8000, Channels: 1}}
	answer := AnswerAudio(offered[:1], []Law{opus, g729})
	rs := &RemoteStream{Kind: "audio", Formats: offered}
	params, err := NegotiateAudio(&LocalStream{Kind: "audio", Formats: answer}, rs, answer, []Law{opus, g729})
	if err != nil || params.Send != opus || params.SendPT != 111 {
		t.Fatalf("negotiated %v PT %d (%v)", params.Send, params.SendPT, err)
	}
	params.Remote = peer.LocalAddr().(*net.UDPAddr).AddrPort()

	s.Configure(StreamConfig{Mode: ModeTone, Params: params, Send: true, Accept: true})
	if s.scheduled || s.src != srcNone {
		t.Errorf("tone mode on opus: source %v, scheduled %v; want nothing sent", s.src, s.scheduled)
	}

	s.Configure(StreamConfig{Mode: ModeEcho, Params: params, Send: true, Accept: true})
	send := func(pt uint8, seq uint16, payload []byte) {
		in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 42}, Payload: payload}
		raw, _ := in.Marshal()
		if _, err := peer.WriteToUDP(raw, net.UDPAddrFromAddrPort(s.LocalAddr())); err != nil {
			t.Fatal(err)
		}
	}
	send(18, 1, []byte("not the negotiated codec"))
	payload := []byte{0xfc, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x80, 0x00}
	send(111, 2, payload)
	got := readRTP(t, peer)
	if got.PayloadType != 111 || string(got.Payload) != string(payload) || got.SSRC == 42 {
		t.Errorf("echo PT %d payload %x SSRC %x, want PT 111, %x untouched, uad's SSRC", got.PayloadType, got.Payload, got.SSRC, payload)
	}
}

// Over every SDP captured from Asterisk, FreeSWITCH and baresip, with uad
// preferring other codecs than the peers: the answer lists the offered
// codecs uad supports in the offerer's order, under the offerer's payload
// types, and uad sends the first of them.
func TestAnswerKeepsOffererOrderCaptured(t *testing.T) {
	laws := []Law{mustCodecLaw(t, "opus/48000/2"), G722, PCMA, PCMU}
	files, _ := filepath.Glob("testdata/sdp/*.sdp")
	if len(files) == 0 {
		t.Fatal("no captured SDP")
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ParseRemote(body)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		audio, _ := rs.Stream("audio")
		answer := AnswerAudio(audio.Formats, laws)
		var want []int
		for _, f := range audio.Formats {
			if l, ok := f.Law(); ok && hasLaw(laws, l) {
				want = append(want, int(f.PT))
			}
		}
		var got []int
		for _, f := range answer {
			if !f.IsDTMF() {
				got = append(got, int(f.PT))
			}
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: answered codecs %v, want %v (the offerer's order and numbers)", filepath.Base(file), got, want)
			continue
		}
		p, err := NegotiateAudio(&LocalStream{Kind: "audio", Formats: answer}, audio, answer, laws)
		if err != nil || int(p.SendPT) != want[0] {
			t.Errorf("%s: sends PT %d (%v), want %d", filepath.Base(file), p.SendPT, err, want[0])
		}
	}
}
