package media

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every SDP captured from Asterisk, FreeSWITCH and baresip parses, with the
// audio direction, stream count and video state each peer meant.
func TestParseRemoteCapturedPeers(t *testing.T) {
	tests := []struct {
		file      string
		audioDir  Direction
		audioPort int
		streams   int
		videoPort int // -1: no video m-line
		dtmfPT    int // -1: none
	}{
		{"asterisk-hold-sendonly-answer", RecvOnly, 40052, 1, -1, 101},
		{"asterisk-hold-video-mline-omitted-answer", RecvOnly, 40162, 1, -1, 101},
		{"asterisk-hold-video-port0-answer", RecvOnly, 40162, 2, 0, 101},
		{"asterisk-inactive-answer", Inactive, 40052, 1, -1, 101},
		{"asterisk-initial-audio-answer", SendRecv, 40052, 1, -1, 101},
		{"asterisk-initial-audio-offer", SendRecv, 40072, 1, -1, 101},
		{"asterisk-initial-audio-video-answer", SendRecv, 40162, 2, 40012, 101},
		{"asterisk-unhold-answer", SendRecv, 40052, 1, -1, 101},
		{"asterisk-video-readd-answer", SendRecv, 40162, 2, 40066, 101},
		{"baresip-audio-video-hold-offer", SendOnly, 20066, 2, 20070, 101},
		{"baresip-hold-offer", SendOnly, 20092, 1, -1, -1},
		{"baresip-hold-sendonly-answer", RecvOnly, 20228, 1, -1, 101},
		{"baresip-hold-video-removed-answer", RecvOnly, 20228, 2, 0, 101},
		{"baresip-initial-audio-answer", SendRecv, 20228, 1, -1, 101},
		{"baresip-initial-audio-offer", SendRecv, 20024, 1, -1, 101},
		{"baresip-initial-audio-video-answer", SendRecv, 20228, 2, 20290, 101},
		{"baresip-initial-audio-video-offer", SendRecv, 20066, 2, 20070, 101},
		{"baresip-mutual-hold-answer", Inactive, 20000, 1, -1, 101},
		{"baresip-mutual-unhold-sendonly-answer", SendOnly, 20000, 1, -1, 101},
		{"baresip-unhold-answer", SendRecv, 20228, 1, -1, 101},
		{"baresip-video-readd-answer", SendRecv, 20228, 2, 20290, 101},
		{"baresip-video-removed-answer", SendRecv, 20228, 2, 0, 101},
		{"freeswitch-audio-hold-answer-extra-video-mline", RecvOnly, 24534, 2, 0, 101},
		{"freeswitch-audio-video-hold-answer", RecvOnly, 24016, 2, 24576, 101},
		{"freeswitch-hold-sendonly-answer", RecvOnly, 24024, 1, -1, 101},
		{"freeswitch-inactive-answer", Inactive, 24024, 1, -1, 101},
		{"freeswitch-initial-audio-answer", SendRecv, 24024, 1, -1, 101},
		{"freeswitch-initial-audio-offer", SendRecv, 24076, 1, -1, 101},
		{"freeswitch-initial-audio-video-answer", SendRecv, 24534, 2, 24970, 101},
		{"freeswitch-initial-audio-video-offer", SendRecv, 24258, 2, 24236, 101},
		{"freeswitch-unhold-no-direction-answer", SendRecv, 24024, 1, -1, 101},
		{"freeswitch-uuid-hold-audio-video-offer", SendOnly, 24258, 2, 24236, 101},
		{"freeswitch-uuid-hold-offer", SendOnly, 24076, 1, -1, 101},
		{"freeswitch-uuid-unhold-no-direction-offer", SendRecv, 24076, 1, -1, 101},
		{"freeswitch-video-readd-answer", SendRecv, 24534, 2, 24970, 101},
	}
	files, _ := filepath.Glob("testdata/sdp/*.sdp")
	if len(files) != len(tests) {
		t.Fatalf("%d captured SDP files, %d table rows: every file needs a row", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata/sdp", tt.file+".sdp"))
			if err != nil {
				t.Fatal(err)
			}
			rs, err := ParseRemote(body)
			if err != nil {
				t.Fatalf("ParseRemote: %v", err)
			}
			if len(rs.Streams) != tt.streams {
				t.Errorf("streams = %d, want %d", len(rs.Streams), tt.streams)
			}
			a, idx := rs.Stream("audio")
			if a == nil || idx != 0 {
				t.Fatalf("no audio stream first")
			}
			if a.Direction != tt.audioDir {
				t.Errorf("audio direction = %s, want %s", a.Direction, tt.audioDir)
			}
			if want := netip.MustParseAddrPort("127.0.0.1:" + itoa(tt.audioPort)); a.RTPAddr() != want {
				t.Errorf("audio RTP address = %v, want %v", a.RTPAddr(), want)
			}
			if fs := AnswerAudio(a.Formats, []Law{PCMU, PCMA}); len(fs) == 0 || fs[0].PT != 0 {
				t.Errorf("answer formats %v, want PCMU first", fs)
			}
			dtmf := -1
			for _, f := range a.Formats {
				if f.IsDTMF() {
					dtmf = int(f.PT)
				}
			}
			if dtmf != tt.dtmfPT {
				t.Errorf("telephone-event PT = %d, want %d", dtmf, tt.dtmfPT)
			}
			v, _ := rs.Stream("video")
			switch {
			case tt.videoPort < 0 && v != nil:
				t.Errorf("unexpected video m-line")
			case tt.videoPort >= 0 && v == nil:
				t.Errorf("video m-line missing")
			case v != nil && v.Port != tt.videoPort:
				t.Errorf("video port = %d, want %d", v.Port, tt.videoPort)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseRemoteLenient(t *testing.T) {
	base := "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	tests := []struct {
		name    string
		body    string
		wantDir Direction
		held    bool
	}{
		{"no final CRLF", strings.TrimSuffix(base, "\r\n"), SendRecv, false},
		{"bare LF", strings.ReplaceAll(base, "\r\n", "\n"), SendRecv, false},
		{"session-level direction", strings.Replace(base, "t=0 0\r\n", "t=0 0\r\na=sendonly\r\n", 1), SendOnly, false},
		{"media overrides session", strings.Replace(base, "t=0 0\r\n", "t=0 0\r\na=sendonly\r\n", 1) + "a=inactive\r\n", Inactive, false},
		{"legacy hold c=0.0.0.0", strings.ReplaceAll(base, "c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0"), SendRecv, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseRemote([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			a := rs.Streams[0]
			if a.Direction != tt.wantDir || a.Held != tt.held {
				t.Errorf("direction %s held %v, want %s %v", a.Direction, a.Held, tt.wantDir, tt.held)
			}
			if tt.held {
				if a.RTPAddr().IsValid() {
					t.Errorf("held stream has an RTP address %v", a.RTPAddr())
				}
				if a.EffectiveDirection() != SendOnly {
					t.Errorf("effective direction of c=0.0.0.0 = %s, want sendonly", a.EffectiveDirection())
				}
			}
		})
	}
}

func TestParseRemoteRejects(t *testing.T) {
	tests := map[string]string{
		"empty":      "",
		"garbage":    "hello world",
		"no m-line":  "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
		"no origin":  "v=0\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
		"bad line":   "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nzzz\r\n",
		"no version": "o=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
	}
	for name, body := range tests {
		if _, err := ParseRemote([]byte(body)); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
	if _, err := ParseRemote([]byte("hello")); !errors.Is(err, ErrSDPSyntax) && !errors.Is(err, ErrSDPNoOrigin) {
		t.Errorf("garbage error %v is not an SDP error", err)
	}
}

func TestLocalSessionVersion(t *testing.T) {
	l := NewLocalSession(777, netip.MustParseAddr("127.0.0.1"))
	l.Streams = []LocalStream{{Kind: "audio", Proto: "RTP/AVP", Port: 20000, Formats: AudioFormats([]Law{PCMU, PCMA}, true), Direction: SendRecv}}
	first := l.Marshal()
	if l.Version != 777 {
		t.Fatalf("first version = %d, want the session id 777", l.Version)
	}
	if again := l.Marshal(); !bytes.Equal(first, again) || l.Version != 777 {
		t.Errorf("unchanged SDP bumped the version to %d", l.Version)
	}
	l.Streams[0].Direction = SendOnly
	l.Marshal()
	if l.Version != 778 {
		t.Errorf("changed SDP version = %d, want 778", l.Version)
	}
	l.Streams = append(l.Streams, LocalStream{Kind: "image", Proto: "udptl", RawFmts: []string{"t38"}})
	body := l.Marshal()
	rs, err := ParseRemote(body)
	if err != nil {
		t.Fatalf("our own SDP does not parse: %v\n%s", err, body)
	}
	if rs.SessionID != 777 || rs.Version != 779 || len(rs.Streams) != 2 || rs.Streams[0].Direction != SendOnly || rs.Streams[1].Port != 0 {
		t.Errorf("round trip = %+v", rs)
	}
	if !bytes.Contains(body, []byte("m=image 0 udptl t38\r\n")) {
		t.Errorf("declined stream not kept in its slot:\n%s", body)
	}
}

func TestDirectionRules(t *testing.T) {
	tests := []struct {
		offered        Direction
		weSend, weRecv bool
		want           Direction
	}{
		{SendRecv, true, true, SendRecv},
		{SendOnly, true, true, RecvOnly},
		{RecvOnly, true, true, SendOnly},
		{Inactive, true, true, Inactive},
		{SendRecv, true, false, SendOnly}, // we hold
		{SendOnly, true, false, Inactive}, // mutual hold
		{SendRecv, false, true, RecvOnly}, // we may not send
		{SendOnly, false, true, RecvOnly},
	}
	for _, tt := range tests {
		if got := Intersect(tt.offered, tt.weSend, tt.weRecv); got != tt.want {
			t.Errorf("Intersect(%s, send=%v, recv=%v) = %s, want %s", tt.offered, tt.weSend, tt.weRecv, got, tt.want)
		}
	}
}

func TestNegotiateAudio(t *testing.T) {
	offer, err := ParseRemote([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 13 96\r\na=rtpmap:96 telephone-event/8000\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := &offer.Streams[0]
	answer := AnswerAudio(rs.Formats, []Law{PCMU, PCMA})
	if len(answer) != 3 || answer[0].PT != 8 || answer[1].PT != 0 || answer[2].PT != 96 {
		t.Fatalf("answer formats = %+v, want 8 0 96 (offerer's order, CN dropped)", answer)
	}
	ls := &LocalStream{Kind: "audio", Formats: answer}
	p, err := NegotiateAudio(ls, rs, answer, []Law{PCMU, PCMA})
	if err != nil {
		t.Fatal(err)
	}
	if p.Send != PCMA || p.SendPT != 8 || p.SendDTMF != 96 || p.RecvDTMF != 96 {
		t.Errorf("params = %+v", p)
	}
	if law, ok := p.RecvLaw(0); !ok || law != PCMU {
		t.Errorf("PT 0 not received as PCMU")
	}
	if _, ok := p.RecvLaw(13); ok {
		t.Errorf("comfort noise mapped to a law")
	}
	if AnswerAudio([]Format{{PT: 9, Name: "G722", Rate: 8000}}, []Law{PCMU}) != nil {
		t.Errorf("no common codec must give nil")
	}
}

func FuzzParseRemote(f *testing.F) {
	files, _ := filepath.Glob("testdata/sdp/*.sdp")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := ParseRemote(body)
		if err != nil {
			return
		}
		for i := range rs.Streams {
			AnswerAudio(rs.Streams[i].Formats, []Law{PCMU, PCMA})
			rs.Streams[i].RTPAddr()
		}
	})
}

// Marshal writes the version into the o= line of one rendering: the bytes
// equal a rendering at that version, and the version rises only on change.
func TestMarshalVersion(t *testing.T) {
	l := NewLocalSession(4711, netip.MustParseAddr("192.0.2.1"))
	l.Streams = []LocalStream{{Kind: "audio", Proto: "RTP/AVP", Port: 4000, Formats: AudioFormats([]Law{PCMU}, true), Direction: SendRecv}}
	for i, change := range []bool{false, false, true, false, true} {
		if change {
			l.Streams[0].Direction = map[Direction]Direction{SendRecv: SendOnly, SendOnly: SendRecv}[l.Streams[0].Direction]
		}
		before := l.Version
		got := l.Marshal()
		want := before
		if change {
			want++
		}
		if l.Version != want {
			t.Fatalf("step %d: version %d, want %d", i, l.Version, want)
		}
		if exp := l.render(l.Version); !bytes.Equal(got, exp) {
			t.Fatalf("step %d: Marshal wrote\n%s\nwant\n%s", i, got, exp)
		}
	}
}
