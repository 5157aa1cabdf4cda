package tests

// Video calls: hold and resume of a video call between two uad instances
// (hold-and-video.md: video removed first, then the audio held; on resume
// the audio first, then video offered back and the other side asked), mutual
// hold of a video call, and baresip as a video peer (fakevideo + VP8).
//
// Video is relayed, never decoded, so the tests send fake H.264 RTP (PT 96,
// 90 kHz timestamps, two packets a frame, marker on the last) and check what
// comes back: the same payloads, uad's own SSRC, consecutive sequence
// numbers, the sent timestamp steps and frame markers.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// ---------------------------------------------------------------------------
// Fake video RTP.

// videoTicks is one 20 ms frame on the 90 kHz video clock.
const videoTicks = 1800

// videoSent is what the test sent in one video packet.
type videoSent struct {
	seq    uint16
	ts     uint32
	marker bool
}

// videoSource sends fake H.264 RTP from an RTPPeer's socket: frames of two
// single-NAL-unit packets, the marker on the second; every payload differs.
type videoSource struct {
	p    *RTPPeer
	PT   uint8
	SSRC uint32

	mu   sync.Mutex
	seq  uint16
	ts   uint32
	n    int
	sent map[string]videoSent
}

func newVideoSource(p *RTPPeer, pt uint8) *videoSource {
	return &videoSource{p: p, PT: pt, SSRC: p.SSRC ^ 0x5a5a5a5a | 1, seq: 1000, ts: 90000, sent: map[string]videoSent{}}
}

// sendFrame sends one frame (two packets) to to.
func (v *videoSource) sendFrame(to *net.UDPAddr) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := 0; i < 2; i++ {
		payload := make([]byte, 120)
		payload[0] = 0x41 // NAL: non-IDR slice
		if v.n%20 < 2 {
			payload[0] = 0x65 // an IDR slice now and then
		}
		copy(payload[1:], "uadvideo")
		binary.BigEndian.PutUint32(payload[9:], uint32(v.n))
		for k := 13; k < len(payload); k++ {
			payload[k] = byte(v.n + k)
		}
		pkt := rtp.Packet{
			Header: rtp.Header{Version: 2, Marker: i == 1, PayloadType: v.PT,
				SequenceNumber: v.seq, Timestamp: v.ts, SSRC: v.SSRC},
			Payload: payload,
		}
		data, err := pkt.Marshal()
		if err != nil {
			return err
		}
		v.sent[string(payload)] = videoSent{seq: v.seq, ts: v.ts, marker: i == 1}
		v.seq++
		v.n++
		if _, err := v.p.conn.WriteToUDP(data, to); err != nil {
			return err
		}
	}
	v.ts += videoTicks
	return nil
}

// send sends frames to to, one every 20 ms.
func (v *videoSource) send(t testing.TB, to *net.UDPAddr, frames int) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < frames; i++ {
		if err := v.sendFrame(to); err != nil {
			t.Errorf("video RTP to %s: %v", to, err)
			return
		}
		if i < frames-1 {
			<-tick.C
		}
	}
}

func (v *videoSource) lookup(payload []byte) (videoSent, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.sent[string(payload)]
	return s, ok
}

// videoEchoes returns the packets received by p from index from on that
// carry a payload v sent.
func videoEchoes(p *RTPPeer, from int, v *videoSource) []RTPPacket {
	all := p.Received()
	if from > len(all) {
		from = len(all)
	}
	var out []RTPPacket
	for _, pk := range all[from:] {
		if _, ok := v.lookup(pk.Payload); ok {
			out = append(out, pk)
		}
	}
	return out
}

// waitVideoEchoes waits until n packets carrying v's payloads arrived at p
// (from index from on), or timeout.
func waitVideoEchoes(p *RTPPeer, from, n int, v *videoSource, timeout time.Duration) []RTPPacket {
	var got []RTPPacket
	poll(timeout, 20*time.Millisecond, func() bool {
		got = videoEchoes(p, from, v)
		return len(got) >= n
	})
	return got
}

// checkVideoRelayed asserts what uad must do to video it passes on: the
// payloads the test sent, as one stream of uad's own SSRC (not the test's),
// payload type wantPT, consecutive sequence numbers, the sent timestamp steps
// (90 kHz), the frame markers (but on the first packet, which uad marks as
// the start of its stream), sent from wantFrom. It returns the SSRC.
func checkVideoRelayed(t testing.TB, what string, pkts []RTPPacket, v *videoSource, wantPT uint8, wantFrom string) uint32 {
	t.Helper()
	if len(pkts) == 0 {
		t.Errorf("%s: no video RTP came back", what)
		return 0
	}
	ssrc := pkts[0].SSRC
	if ssrc == v.SSRC {
		t.Errorf("%s: uad sent video with the sender's own SSRC %#x, want its own", what, ssrc)
	}
	var prev RTPPacket
	var prevSent videoSent
	for i, pk := range pkts {
		s, _ := v.lookup(pk.Payload)
		switch {
		case pk.SSRC != ssrc:
			t.Errorf("%s: packet %d has SSRC %#x, the stream started with %#x: want one SSRC", what, i, pk.SSRC, ssrc)
			return ssrc
		case pk.PT != wantPT:
			t.Errorf("%s: packet %d has payload type %d, want %d", what, i, pk.PT, wantPT)
			return ssrc
		case wantFrom != "" && pk.From.String() != wantFrom:
			t.Errorf("%s: packet %d came from %s, want %s", what, i, pk.From, wantFrom)
			return ssrc
		}
		if i > 0 {
			if pk.Seq-prev.Seq != s.seq-prevSent.seq {
				t.Errorf("%s: packet %d: seq step %d where the sent step was %d (lost or reordered video, or a sequence break)",
					what, i, pk.Seq-prev.Seq, s.seq-prevSent.seq)
				return ssrc
			}
			if pk.TS-prev.TS != s.ts-prevSent.ts {
				t.Errorf("%s: packet %d: timestamp step %d where the sent step was %d: the 90 kHz timing must be kept",
					what, i, pk.TS-prev.TS, s.ts-prevSent.ts)
				return ssrc
			}
			if pk.Marker != s.marker {
				t.Errorf("%s: packet %d: marker %t, sent %t: frame boundaries must be kept", what, i, pk.Marker, s.marker)
				return ssrc
			}
		}
		prev, prevSent = pk, s
	}
	return ssrc
}

// ---------------------------------------------------------------------------
// RTCP feedback.

// rtcpSink is a UDP socket that records RTCP packets (a peer's video RTCP
// port: uad sends its PLI there).
type rtcpSink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	plis []rtcp.PictureLossIndication
	done chan struct{}
}

func newRTCPSink(t testing.TB, port int) *rtcpSink {
	t.Helper()
	conn := listenLoopback(t, port, "RTCP")
	s := &rtcpSink{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				if strings.Contains(err.Error(), "closed") {
					return
				}
				continue
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			s.mu.Lock()
			for _, p := range pkts {
				if pli, ok := p.(*rtcp.PictureLossIndication); ok {
					s.plis = append(s.plis, *pli)
				}
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-s.done })
	return s
}

// PLIs is how many PLIs arrived so far.
func (s *rtcpSink) PLIs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.plis)
}

// ---------------------------------------------------------------------------
// SDP, for the video tests.

// mSection is one m= section of an SDP body.
type mSection struct {
	Kind string
	Port int
	Fmts []string
	Dirs []string // direction attributes
	Conn string   // the connection address that applies (media, else session)
}

// Dir is the section's one direction attribute ("" if none or several).
func (s mSection) Dir() string {
	if len(s.Dirs) == 1 {
		return s.Dirs[0]
	}
	return ""
}

// sdpSections splits an SDP body into its m= sections.
func sdpSections(body string) []mSection {
	var out []mSection
	sessionConn := ""
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(line[2:])
			s := mSection{Conn: sessionConn}
			if len(f) >= 3 {
				s.Kind = f[0]
				s.Port, _ = strconv.Atoi(f[1])
				s.Fmts = f[3:]
			}
			out = append(out, s)
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) == 3 {
				if len(out) == 0 {
					sessionConn = f[2]
				} else {
					out[len(out)-1].Conn = f[2]
				}
			}
		case line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive":
			if len(out) > 0 {
				out[len(out)-1].Dirs = append(out[len(out)-1].Dirs, line[2:])
			}
		}
	}
	return out
}

// sdpWant is what a test expects of one SDP body of uad's.
type sdpWant struct {
	AudioDir string // the audio section's direction attribute
	VideoOn  bool   // video m-line with a real port; else port 0
	VideoDir string // when VideoOn: its direction attribute ("" = not checked)
}

// checkVideoSDP asserts an SDP body of uad's: exactly two m-lines, audio
// then video, each with a connection address (a declined m-line too); the
// audio active with direction w.AudioDir; the video active or port 0 as w
// says, a port-0 m-line keeping at least one format.
func checkVideoSDP(t testing.TB, what string, body string, w sdpWant) {
	t.Helper()
	secs := sdpSections(body)
	if len(secs) != 2 || secs[0].Kind != "audio" || secs[1].Kind != "video" {
		var kinds []string
		for _, s := range secs {
			kinds = append(kinds, fmt.Sprintf("%s %d", s.Kind, s.Port))
		}
		t.Errorf("%s: m-lines %q, want exactly [audio, video] (the m-line count and order never change):\n%s", what, kinds, body)
		return
	}
	a, v := secs[0], secs[1]
	if a.Port == 0 || a.Conn == "" || a.Conn == "0.0.0.0" {
		t.Errorf("%s: audio port %d on %q, want an active audio stream:\n%s", what, a.Port, a.Conn, body)
	}
	if w.AudioDir != "" && a.Dir() != w.AudioDir {
		t.Errorf("%s: audio direction attributes %q, want exactly a=%s:\n%s", what, a.Dirs, w.AudioDir, body)
	}
	if v.Conn == "" {
		t.Errorf("%s: the video m-line has no connection address (neither c= of its own nor a session c=):\n%s", what, body)
	}
	if len(v.Fmts) == 0 {
		t.Errorf("%s: the video m-line has no format:\n%s", what, body)
	}
	switch {
	case w.VideoOn && v.Port == 0:
		t.Errorf("%s: video port 0, want video active:\n%s", what, body)
	case !w.VideoOn && v.Port != 0:
		t.Errorf("%s: video port %d, want 0 (video off):\n%s", what, v.Port, body)
	case w.VideoOn && w.VideoDir != "" && v.Dir() != w.VideoDir:
		t.Errorf("%s: video direction attributes %q, want exactly a=%s:\n%s", what, v.Dirs, w.VideoDir, body)
	}
}

// ---------------------------------------------------------------------------
// Call objects and events.

// checkVideoOn asserts a call object's video: present, with the direction,
// and the codec when given.
func checkVideoOn(t testing.TB, what string, c CallInfo, dir, codec string) {
	t.Helper()
	switch {
	case c.Video == nil:
		t.Errorf("%s: video null, want active video (%s)", what, dir)
	case c.Video.Direction != dir:
		t.Errorf("%s: video.direction %q, want %q", what, c.Video.Direction, dir)
	case codec != "" && !strings.EqualFold(c.Video.Codec, codec):
		t.Errorf("%s: video.codec %q, want %s", what, c.Video.Codec, codec)
	case c.Video.LocalRTP == "" || c.Video.RemoteRTP == "":
		t.Errorf("%s: video %+v lacks local_rtp/remote_rtp", what, *c.Video)
	}
}

// checkVideoOff asserts that a call object has no video.
func checkVideoOff(t testing.TB, what string, c CallInfo) {
	t.Helper()
	if c.Video != nil {
		t.Errorf("%s: video %+v, want null (no active video)", what, *c.Video)
	}
}

func pendingOf(c CallInfo) string {
	if c.Pending == nil {
		return ""
	}
	return *c.Pending
}

// videoOp sends a request changing a call and decodes the call object of a
// 200; any other status fails the test.
func videoOp(t testing.TB, u *UAD, method, path string, body any) CallInfo {
	t.Helper()
	st, data := u.API(method, path, body)
	if st != http.StatusOK {
		t.Fatalf("uad %s: %s %s = %d %s, want 200", u.Name, method, path, st, data)
	}
	return decodeCall(t, method+" "+path, data)
}

// ---------------------------------------------------------------------------
// uad calls uad with video.

// videoCall is A calling B with video: A relays to the test's endpoint
// (audio at X, video at X+2); B echoes.
type videoCall struct {
	a, b       *UAD
	evA, evB   *EventStream
	audioEnd   *RTPPeer // X: A's relay endpoint for audio
	videoEnd   *RTPPeer // X+2: where A relays video
	src        *videoSource
	idA, idB   string
	stopAudio  func()
	relayVideo string // 127.0.0.1:X+2
}

// startVideoCall starts B (echo; bConfig more config keys) and A, and places
// A's video call to B in relay mode; it returns once both are connected and
// the call objects show video.
func startVideoCall(t *testing.T, bConfig map[string]any) *videoCall {
	t.Helper()
	x := miscPorts.take(t, 4, false)
	vc := &videoCall{audioEnd: newRTPPeer(t, x), videoEnd: newRTPPeer(t, x+2)}
	vc.relayVideo = fmt.Sprintf("127.0.0.1:%d", x+2)
	vc.src = newVideoSource(vc.videoEnd, 96)
	vc.b = startUAD(t, UADOptions{Name: "B", Config: bConfig})
	vc.a = startUAD(t, UADOptions{Name: "A"})
	vc.evA, vc.evB = vc.a.Events(), vc.b.Events()

	ca := vc.a.PlaceCall(vc.b.SIPURI("uad"), map[string]any{"video": true, "media": map[string]any{"relay": vc.audioEnd.Addr()}})
	vc.idA = ca.ID
	vc.idB = waitBothConnected(t, vc.evA, vc.idA, vc.evB)

	ca = vc.a.Call(vc.idA)
	cb := vc.b.Call(vc.idB)
	checkVideoOn(t, "A after connect", ca, "sendrecv", "H264")
	checkVideoOn(t, "B after connect", cb, "sendrecv", "H264")
	if ca.Video == nil || cb.Video == nil {
		t.FailNow()
	}
	if ca.Video.RelayRemote != vc.relayVideo || ca.Video.RelayLocal == "" {
		t.Fatalf("A: video relay_remote %q, relay_local %q: want relay_remote %s (the endpoint's port + 2) and a relay_local",
			ca.Video.RelayRemote, ca.Video.RelayLocal, vc.relayVideo)
	}
	if ca.Video.RemoteRTP != cb.Video.LocalRTP || cb.Video.RemoteRTP != ca.Video.LocalRTP {
		t.Errorf("video addresses do not pair up: A local %s remote %s, B local %s remote %s",
			ca.Video.LocalRTP, ca.Video.RemoteRTP, cb.Video.LocalRTP, cb.Video.RemoteRTP)
	}
	// Audio all along, so that neither side's RTP watch fires.
	vc.audioEnd.SendAsync(mustUDPAddr(t, ca.Audio.RelayLocal), 3000)
	return vc
}

// flowVideo sends video into A's relay_local (of call object ca) and
// requires it back at X+2, echoed by B, as A's own stream.
func (vc *videoCall) flowVideo(t *testing.T, what string, ca CallInfo) uint32 {
	t.Helper()
	if ca.Video == nil || ca.Video.RelayLocal == "" {
		t.Fatalf("%s: A's call has no video relay_local: %+v", what, ca.Video)
	}
	from := vc.videoEnd.Count()
	const frames = 25
	vc.src.send(t, mustUDPAddr(t, ca.Video.RelayLocal), frames)
	got := waitVideoEchoes(vc.videoEnd, from, frames*2*8/10, vc.src, 5*time.Second)
	if len(got) < frames*2*8/10 {
		t.Fatalf("%s: %d of %d video packets came back to %s, want >= 80%%: %s",
			what, len(got), frames*2, vc.relayVideo, analyzeRTP(vc.videoEnd.Received()[from:]))
	}
	return checkVideoRelayed(t, what, got, vc.src, 96, ca.Video.RelayLocal)
}

// holdWithVideo: A holds; both sides report the video closed first.
func (vc *videoCall) holdWithVideo(t *testing.T) {
	t.Helper()
	held := videoOp(t, vc.a, http.MethodPost, "/v1/calls/"+vc.idA+"/hold", nil)
	if held.State != "hold" || !held.LocalHold {
		t.Errorf("A: hold returned state %q local_hold %t, want hold/true", held.State, held.LocalHold)
	}
	checkVideoOff(t, "A: hold's 200", held)
	if held.Audio == nil || held.Audio.Direction != "sendonly" {
		t.Errorf("A: hold's 200: audio %+v, want direction sendonly", held.Audio)
	}
	aClosed := vc.evA.WaitType(t, "video.closed", vc.idA, sigTimeout)
	aHS := vc.evA.WaitType(t, "hold.success", vc.idA, sigTimeout)
	checkOrder(t, aClosed, aHS)
	if aClosed.By != "local" {
		t.Errorf("A: video.closed by %q, want local: %s", aClosed.By, aClosed.Raw)
	}
	checkVideoOff(t, "A: video.closed's call", *aClosed.Call)

	bClosed := vc.evB.WaitType(t, "video.closed", vc.idB, sigTimeout)
	bHeld := vc.evB.WaitType(t, "held", vc.idB, sigTimeout)
	checkOrder(t, bClosed, bHeld)
	if bClosed.By != "remote" {
		t.Errorf("B: video.closed by %q, want remote: %s", bClosed.By, bClosed.Raw)
	}
	cb := vc.b.Call(vc.idB)
	checkVideoOff(t, "B while held", cb)
	if !cb.RemoteHold || cb.Audio == nil || cb.Audio.Direction != "recvonly" {
		t.Errorf("B while held: remote_hold %t audio %+v, want true and recvonly", cb.RemoteHold, cb.Audio)
	}
	checkVideoOff(t, "A while holding", vc.a.Call(vc.idA))
}

// ---------------------------------------------------------------------------
// Tests.

// A calls B with video; video flows through B's echo; A holds (video off
// first) and resumes (audio first, then video offered back); B accepts,
// rejects, or lets its reply time out.
func TestVideoSeedFlowUADtoUAD(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		bConfig map[string]any
		reply   string // "accept", "reject", or "" (no reply)
	}{
		{name: "accept", reply: "accept"},
		{name: "reject", reply: "reject"},
		{name: "no_reply", bConfig: map[string]any{"calls.video_request_timeout": "1s", "calls.video_request_default": "reject"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vc := startVideoCall(t, tc.bConfig)
			firstSSRC := vc.flowVideo(t, "video before the hold", vc.a.Call(vc.idA))
			oldRelayLocal := vc.a.Call(vc.idA).Video.RelayLocal

			vc.holdWithVideo(t)
			// The video relay is torn down: nothing sent to its old socket
			// comes back while the call is held.
			before := vc.videoEnd.Count()
			vc.src.send(t, mustUDPAddr(t, oldRelayLocal), 5)
			if n := vc.videoEnd.WaitCount(before+1, 500*time.Millisecond); n > before {
				t.Errorf("video came back while held (%d packets): the video stream should be closed", n-before)
			}

			// Resume: audio first, then video offered back; B is asked.
			res := videoOp(t, vc.a, http.MethodDelete, "/v1/calls/"+vc.idA+"/hold", nil)
			if res.State != "live" || res.LocalHold {
				t.Errorf("A: unhold returned state %q local_hold %t, want live/false", res.State, res.LocalHold)
			}
			aUn := vc.evA.WaitType(t, "unhold.success", vc.idA, sigTimeout)
			bRes := vc.evB.WaitType(t, "resumed", vc.idB, sigTimeout)
			bReq := vc.evB.WaitType(t, "video.request", vc.idB, sigTimeout)
			checkOrder(t, bRes, bReq)
			if p := pendingOf(*bReq.Call); p != "video-request" {
				t.Errorf("B: video.request's call has pending %q, want video-request", p)
			}
			if tc.reply != "" {
				if p := pendingOf(vc.a.Call(vc.idA)); p != "video-add" {
					t.Errorf("A while B decides: pending %q, want video-add", p)
				}
				if p := pendingOf(vc.b.Call(vc.idB)); p != "video-request" {
					t.Errorf("B while it decides: pending %q, want video-request", p)
				}
			}

			switch tc.reply {
			case "accept":
				cb := videoOp(t, vc.b, http.MethodPost, "/v1/calls/"+vc.idB+"/video/reply", map[string]any{"accept": true})
				checkVideoOn(t, "B: reply accept's 200", cb, "sendrecv", "H264")
				bOpen := vc.evB.WaitType(t, "video.opened", vc.idB, sigTimeout)
				aOpen := vc.evA.WaitType(t, "video.opened", vc.idA, sigTimeout)
				checkOrder(t, aUn, aOpen)
				checkOrder(t, bReq, bOpen)
				ca := vc.a.Call(vc.idA)
				checkVideoOn(t, "A after video.opened", ca, "sendrecv", "H264")
				if ca.Video != nil && ca.Video.RelayRemote != vc.relayVideo {
					t.Errorf("A after video.opened: video relay_remote %q, want %s", ca.Video.RelayRemote, vc.relayVideo)
				}
				if p := pendingOf(ca); p != "" {
					t.Errorf("A after video.opened: pending %q, want null", p)
				}
				ssrc := vc.flowVideo(t, "video after the resume", ca)
				t.Logf("A's video SSRC toward the endpoint: %#x before the hold, %#x after", firstSSRC, ssrc)

			case "reject":
				cb := videoOp(t, vc.b, http.MethodPost, "/v1/calls/"+vc.idB+"/video/reply", map[string]any{"accept": false})
				checkVideoOff(t, "B: reply reject's 200", cb)
				aRej := vc.evA.WaitType(t, "video.rejected", vc.idA, sigTimeout)
				checkOrder(t, aUn, aRej)

			case "":
				aRej := vc.evA.WaitType(t, "video.rejected", vc.idA, 10*time.Second)
				checkOrder(t, aUn, aRej)
				if d := eventTime(t, aRej).Sub(eventTime(t, bReq)); d < 900*time.Millisecond {
					t.Errorf("A got video.rejected %v after B's video.request: B should wait calls.video_request_timeout (1s) before its default", d)
				}
				// The offer is answered: a late reply has nothing to answer.
				st, data := vc.b.API(http.MethodPost, "/v1/calls/"+vc.idB+"/video/reply", map[string]any{"accept": true})
				if st != http.StatusConflict {
					t.Errorf("B: late video reply = %d %s, want 409 (no video offer awaits a reply)", st, data)
				}
			}

			if tc.reply != "accept" {
				ca, cb := vc.a.Call(vc.idA), vc.b.Call(vc.idB)
				checkVideoOff(t, "A after the rejection", ca)
				checkVideoOff(t, "B after the rejection", cb)
				for _, c := range []CallInfo{ca, cb} {
					if c.State != "live" || c.Audio == nil || c.Audio.Direction != "sendrecv" || pendingOf(c) != "" {
						t.Errorf("call %s after the rejection: state %q audio %+v pending %q, want a live sendrecv audio call, nothing pending",
							c.ID, c.State, c.Audio, pendingOf(c))
					}
				}
				noEvent(t, vc.evA, "A", vc.idA, "video.opened")
				noEvent(t, vc.evB, "B", vc.idB, "video.opened")
			}

			vc.a.Hangup(vc.idA)
			if e := vc.evB.WaitType(t, "call.ended", vc.idB, sigTimeout); e.Reason != "remote" {
				t.Errorf("B: call.ended reason %q, want remote", e.Reason)
			}
			vc.evA.CheckWellFormed(t)
			vc.evB.CheckWellFormed(t)
		})
	}
}

// Both hold a video call; the first to resume gets no video back; after
// both resumed the call stays audio-only until video is added explicitly.
func TestVideoMutualHold(t *testing.T) {
	t.Parallel()
	vc := startVideoCall(t, nil)
	vc.holdWithVideo(t)

	// B holds too: audio inactive on both sides, no second video.closed.
	cb := videoOp(t, vc.b, http.MethodPost, "/v1/calls/"+vc.idB+"/hold", nil)
	if cb.State != "hold" || !cb.LocalHold || !cb.RemoteHold || cb.Audio == nil || cb.Audio.Direction != "inactive" {
		t.Errorf("B: hold while held returned state %q local_hold %t remote_hold %t audio %+v, want hold, both holds, inactive",
			cb.State, cb.LocalHold, cb.RemoteHold, cb.Audio)
	}
	vc.evB.WaitType(t, "hold.success", vc.idB, sigTimeout)
	vc.evA.WaitType(t, "held", vc.idA, sigTimeout)
	ca := vc.a.Call(vc.idA)
	if ca.Audio == nil || ca.Audio.Direction != "inactive" || !ca.RemoteHold {
		t.Errorf("A while both hold: audio %+v remote_hold %t, want inactive and true", ca.Audio, ca.RemoteHold)
	}

	// A resumes while B still holds: the audio only, no video offer.
	videoOp(t, vc.a, http.MethodDelete, "/v1/calls/"+vc.idA+"/hold", nil)
	vc.evA.WaitType(t, "unhold.success", vc.idA, sigTimeout)
	ca = vc.a.Call(vc.idA)
	if ca.State != "live" || ca.LocalHold || !ca.RemoteHold || ca.Audio == nil || ca.Audio.Direction != "recvonly" {
		t.Errorf("A resumed while B holds: state %q local_hold %t remote_hold %t audio %+v, want live, false, true, recvonly",
			ca.State, ca.LocalHold, ca.RemoteHold, ca.Audio)
	}
	// A video offer would start right after unhold.success, on A's loop:
	// A's next call object would show it pending.
	if p := pendingOf(ca); p != "" {
		t.Errorf("A after resuming while held: pending %q, want null (no video offer while the peer holds)", p)
	}
	noVideoOffer := func(what string) {
		t.Helper()
		poll(time.Second, 50*time.Millisecond, func() bool {
			for _, c := range []CallInfo{vc.a.Call(vc.idA), vc.b.Call(vc.idB)} {
				if p := pendingOf(c); p == "video-add" || p == "video-request" {
					t.Errorf("%s: call %s has pending %q: video must not come back by itself", what, c.ID, p)
					return true
				}
				checkVideoOff(t, what+": call "+c.ID, c)
			}
			return false
		})
		noEvent(t, vc.evB, "B", vc.idB, "video.request", "video.opened")
		noEvent(t, vc.evA, "A", vc.idA, "video.request", "video.opened")
	}
	noVideoOffer("A resumed, B holds")

	// B resumes: both live, still audio-only.
	videoOp(t, vc.b, http.MethodDelete, "/v1/calls/"+vc.idB+"/hold", nil)
	vc.evB.WaitType(t, "unhold.success", vc.idB, sigTimeout)
	vc.evA.WaitType(t, "resumed", vc.idA, sigTimeout)
	noVideoOffer("both resumed")
	for _, c := range []CallInfo{vc.a.Call(vc.idA), vc.b.Call(vc.idB)} {
		if c.State != "live" || c.LocalHold || c.RemoteHold || c.Audio == nil || c.Audio.Direction != "sendrecv" {
			t.Errorf("call %s after both resumed: state %q holds %t/%t audio %+v, want live sendrecv", c.ID, c.State, c.LocalHold, c.RemoteHold, c.Audio)
		}
	}
	for name, es := range map[string]*EventStream{"A": vc.evA, "B": vc.evB} {
		closed := 0
		for _, e := range es.All() {
			if e.Type == "video.closed" {
				closed++
			}
		}
		if closed != 1 {
			t.Errorf("%s: %d video.closed events, want 1 (video was closed once, by A's hold)", name, closed)
		}
	}

	// A adds video: B is asked, accepts; A's POST returns with video.
	type result struct {
		st   int
		data []byte
	}
	done := make(chan result, 1)
	go func() {
		st, data, err := vc.a.do(http.MethodPost, "/v1/calls/"+vc.idA+"/video", nil)
		if err != nil {
			data = []byte(err.Error())
		}
		done <- result{st, data}
	}()
	req := vc.evB.WaitType(t, "video.request", vc.idB, sigTimeout)
	if p := pendingOf(*req.Call); p != "video-request" {
		t.Errorf("B: video.request's call has pending %q, want video-request", p)
	}
	// While the offer waits, B cannot start another change.
	if st, data := vc.b.API(http.MethodPost, "/v1/calls/"+vc.idB+"/hold", nil); st != http.StatusConflict {
		t.Errorf("B: hold while a video offer awaits the reply = %d %s, want 409", st, data)
	}
	videoOp(t, vc.b, http.MethodPost, "/v1/calls/"+vc.idB+"/video/reply", map[string]any{"accept": true})
	var r result
	select {
	case r = <-done:
	case <-time.After(sigTimeout):
		t.Fatalf("A: POST /video did not return within %v of B's accept", sigTimeout)
	}
	if r.st != http.StatusOK {
		t.Fatalf("A: POST /v1/calls/%s/video = %d %s, want 200", vc.idA, r.st, r.data)
	}
	checkVideoOn(t, "A: POST video's 200", decodeCall(t, "POST video", r.data), "sendrecv", "H264")
	vc.evA.WaitType(t, "video.opened", vc.idA, sigTimeout)
	vc.evB.WaitType(t, "video.opened", vc.idB, sigTimeout)
	checkVideoOn(t, "B after video.opened", vc.b.Call(vc.idB), "sendrecv", "H264")
	vc.flowVideo(t, "video added after the mutual hold", vc.a.Call(vc.idA))

	vc.b.Hangup(vc.idB)
	vc.evA.WaitType(t, "call.ended", vc.idA, sigTimeout)
}

// videoPorts returns the video local_rtp ports of a call seen in its events
// and in the call object c.
func videoPorts(t testing.TB, es *EventStream, c CallInfo) map[int]bool {
	t.Helper()
	ports := map[int]bool{}
	add := func(ci *CallInfo) {
		if ci != nil && ci.ID == c.ID && ci.Video != nil && ci.Video.LocalRTP != "" {
			ports[mustUDPAddr(t, ci.Video.LocalRTP).Port] = true
		}
	}
	for _, e := range es.All() {
		add(e.Call)
	}
	add(&c)
	return ports
}

// B holds a video call (video removed, audio held); A, the held party,
// offers video. hold-and-video.md: a video call is never held as video, and
// uad refuses its own video offer while it holds (409 "resume it first"), so
// B must decline the peer's offer too (port 0, A gets video.rejected); and
// whatever B did, its resume must leave exactly one video stream: no second
// offer of video that is already on, no leaked video socket.
func TestVideoPeerAddsVideoWhileHolding(t *testing.T) {
	t.Parallel()
	vc := startVideoCall(t, map[string]any{"calls.video_request_policy": "accept"})
	// B holds: its hold removes video first.
	videoOp(t, vc.b, http.MethodPost, "/v1/calls/"+vc.idB+"/hold", nil)
	vc.evB.WaitType(t, "hold.success", vc.idB, sigTimeout)
	vc.evA.WaitType(t, "held", vc.idA, sigTimeout)
	if st, data := vc.b.API(http.MethodPost, "/v1/calls/"+vc.idB+"/video", nil); st != http.StatusConflict {
		t.Errorf("B: POST video while holding = %d %s, want 409 (resume first)", st, data)
	}

	// A offers video while B holds.
	ca := videoOp(t, vc.a, http.MethodPost, "/v1/calls/"+vc.idA+"/video", nil)
	cb := vc.b.Call(vc.idB)
	if cb.Video != nil {
		t.Errorf("B holds the call (state %q, audio %s) yet accepted the peer's video: video %+v; a held call must not carry video (B declines with port 0)",
			cb.State, cb.Audio.Direction, *cb.Video)
	}
	if ca.Video != nil {
		t.Errorf("A: POST video while B holds returned video %+v, want null (declined)", *ca.Video)
	} else {
		vc.evA.WaitType(t, "video.rejected", vc.idA, sigTimeout)
	}

	// B resumes. If B has no video, it offers it back (its hold removed
	// it) and A, asked, accepts; if video is already on, nothing is offered.
	videoOn, before := cb.Video != nil, ""
	if videoOn {
		before = cb.Video.LocalRTP
	}
	videoOp(t, vc.b, http.MethodDelete, "/v1/calls/"+vc.idB+"/hold", nil)
	un := vc.evB.WaitType(t, "unhold.success", vc.idB, sigTimeout)
	if !videoOn {
		vc.evA.WaitType(t, "video.request", vc.idA, sigTimeout)
		videoOp(t, vc.a, http.MethodPost, "/v1/calls/"+vc.idA+"/video/reply", map[string]any{"accept": true})
		vc.evB.WaitType(t, "video.opened", vc.idB, sigTimeout)
	} else {
		// The only marker of a needless offer is the offer: give it a second.
		poll(time.Second, 50*time.Millisecond, func() bool { return pendingOf(vc.b.Call(vc.idB)) != "" })
		poll(2*time.Second, 50*time.Millisecond, func() bool { return pendingOf(vc.b.Call(vc.idB)) == "" })
	}
	cb = vc.b.Call(vc.idB)
	checkVideoOn(t, "B after its resume", cb, "sendrecv", "H264")
	opened := 0
	for _, e := range vc.evB.All() {
		if e.Type == "video.opened" && e.Seq > un.Seq {
			opened++
		}
	}
	if videoOn && opened > 0 {
		t.Errorf("B's resume offered video that was already on: %d video.opened after unhold.success (video %s before, %s after)",
			opened, before, cb.Video.LocalRTP)
	}
	// Every video socket B opened for this call but no longer uses is closed.
	if cb.Video != nil {
		cur := mustUDPAddr(t, cb.Video.LocalRTP).Port
		for port := range videoPorts(t, vc.evB, cb) {
			if port == cur {
				continue
			}
			if !poll(2*time.Second, 50*time.Millisecond, func() bool { return !portBound("udp", port) }) {
				t.Errorf("B: video port %d, no longer the call's (now %d), is still bound: the old video stream was not closed", port, cur)
			}
		}
	}
	vc.flowVideo(t, "video after B's resume", vc.a.Call(vc.idA))
	vc.a.Hangup(vc.idA)
	vc.evB.WaitType(t, "call.ended", vc.idB, sigTimeout)
}

// ---------------------------------------------------------------------------
// baresip as a video peer.

// baresipVideoConfig makes baresip send and take video headless: fakevideo
// as both the source and the display, VP8 as the codec.
const baresipVideoConfig = `module			fakevideo.so
module			vp8.so
video_source		fakevideo,nil
video_display		fakevideo,nil
video_size		176x144
video_bitrate		100000
video_fps		10
`

// waitBaresipVideo waits until baresip received more than base video packets
// plus n.
func waitBaresipVideo(t *testing.T, b *Baresip, what string, base, n int) int {
	t.Helper()
	var got int
	var dbg string
	if !poll(8*time.Second, 200*time.Millisecond, func() bool {
		got, dbg = b.debugRcvd("video_debug")
		return got >= base+n
	}) {
		t.Errorf("%s: baresip received %d video RTP packets (from %d), want >= %d more\n%s", what, got, base, n, dbg)
	}
	return got
}

// baresip calls uad with video: uad answers with video and echoes it; uad
// holds (video removed, then audio held) and resumes (video offered back,
// which baresip accepts by itself); baresip holds the video call (both
// streams sendonly) and resumes.
func TestVideoBaresip(t *testing.T) {
	t.Parallel()
	requirePeer(t, "baresip", "sox")
	for _, m := range []string{"fakevideo.so", "vp8.so"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/baresip/modules", m)); err != nil {
			t.Skipf("baresip module %s missing (baresip-core provides it): %v", m, err)
		}
	}
	u, ev, b := uadAndBaresip(t, BaresipOptions{ExtraConfig: baresipVideoConfig})
	if log := readFile(b.LogPath); !strings.Contains(log, "vidcodec: VP8") || !strings.Contains(log, "vidsrc: fakevideo") {
		t.Fatalf("baresip did not load VP8 and fakevideo:\n%s", tail(log, 4<<10))
	}

	id := b.dialUAD(t, u, ev)
	c := u.Call(id)
	checkVideoOn(t, "uad after answering baresip", c, "sendrecv", "VP8")
	// uad echoes baresip's video back to it.
	rcvd := waitBaresipVideo(t, b, "video echo", 0, 20)

	// uad holds: video off first (baresip answers m=video 0 RTP/AVP 0), then the audio.
	held := videoOp(t, u, http.MethodPost, "/v1/calls/"+id+"/hold", nil)
	checkVideoOff(t, "uad: hold's 200", held)
	closed := ev.WaitType(t, "video.closed", id, sigTimeout)
	hs := ev.WaitType(t, "hold.success", id, sigTimeout)
	checkOrder(t, closed, hs)
	if closed.By != "local" {
		t.Errorf("video.closed by %q, want local", closed.By)
	}
	if c := u.Call(id); c.State != "hold" || c.Audio == nil || c.Audio.Direction != "sendonly" {
		t.Errorf("uad holding baresip: state %q audio %+v, want hold and sendonly", c.State, c.Audio)
	}

	// uad resumes: audio, then video offered back; baresip accepts it by itself.
	videoOp(t, u, http.MethodDelete, "/v1/calls/"+id+"/hold", nil)
	un := ev.WaitType(t, "unhold.success", id, sigTimeout)
	opened := ev.WaitType(t, "video.opened", id, sigTimeout)
	checkOrder(t, un, opened)
	c = u.Call(id)
	checkVideoOn(t, "uad after resuming with video", c, "sendrecv", "VP8")
	rcvd, _ = b.debugRcvd("video_debug")
	rcvd = waitBaresipVideo(t, b, "video echo after the resume", rcvd, 20)

	// baresip holds the video call: both streams sendonly; uad answers
	// recvonly on both and keeps the video.
	if r := b.Command("hold", ""); !r.OK {
		t.Fatalf("baresip hold: %+v", r)
	}
	heldEv := ev.WaitType(t, "held", id, sigTimeout)
	checkVideoOn(t, "held event's call", *heldEv.Call, "recvonly", "VP8")
	if c := u.Call(id); !c.RemoteHold || c.State != "live" || c.Audio == nil || c.Audio.Direction != "recvonly" {
		t.Errorf("uad held by baresip: state %q remote_hold %t audio %+v, want live, true, recvonly", c.State, c.RemoteHold, c.Audio)
	}
	if r := b.Command("resume", ""); !r.OK {
		t.Fatalf("baresip resume: %+v", r)
	}
	resumed := ev.WaitType(t, "resumed", id, sigTimeout)
	checkVideoOn(t, "resumed event's call", *resumed.Call, "sendrecv", "VP8")
	if c := u.Call(id); c.RemoteHold || c.Audio == nil || c.Audio.Direction != "sendrecv" {
		t.Errorf("uad after baresip resumed: remote_hold %t audio %+v, want false, sendrecv", c.RemoteHold, c.Audio)
	}
	waitBaresipVideo(t, b, "video echo after baresip resumed", rcvd, 10)

	b.hangUp(t)
	ev.WaitType(t, "call.ended", id, sigTimeout)

	// The SDP of each exchange, from baresip's SIP trace.
	msgs := parseBaresipTrace(readFile(b.LogPath), b.SIPPort)
	uadInvites := filter(msgs, receivedWith("INVITE ", ""))
	uadAnswers := filter(msgs, receivedWith("SIP/2.0 200", "INVITE"))
	baresipInvites := filter(msgs, sentWith("INVITE ", ""))
	// The premise: baresip's hold offer is sendonly on both streams.
	if len(baresipInvites) != 3 {
		t.Errorf("baresip sent %d INVITEs, want 3 (call, hold, resume)", len(baresipInvites))
	} else if secs := sdpSections(baresipInvites[1].Body); len(secs) != 2 || secs[0].Dir() != "sendonly" || secs[1].Dir() != "sendonly" {
		t.Errorf("baresip's hold INVITE is not sendonly on both streams (%+v); the test's premise is wrong:\n%s", secs, baresipInvites[1].Body)
	}
	// uad's offers: video off (audio sendrecv), hold (sendonly, video off),
	// resume (sendrecv, video off), video back.
	wantOffers := []sdpWant{
		{AudioDir: "sendrecv", VideoOn: false},
		{AudioDir: "sendonly", VideoOn: false},
		{AudioDir: "sendrecv", VideoOn: false},
		{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"},
	}
	if len(uadInvites) != len(wantOffers) {
		t.Errorf("baresip received %d re-INVITEs from uad, want %d (video off, hold, resume, video on)", len(uadInvites), len(wantOffers))
	}
	for i := 0; i < len(uadInvites) && i < len(wantOffers); i++ {
		checkVideoSDP(t, fmt.Sprintf("uad's re-INVITE %d to baresip", i+1), uadInvites[i].Body, wantOffers[i])
	}
	// uad's answers: the initial one, then to baresip's hold and resume.
	wantAnswers := []sdpWant{
		{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"},
		{AudioDir: "recvonly", VideoOn: true, VideoDir: "recvonly"},
		{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"},
	}
	if len(uadAnswers) != len(wantAnswers) {
		t.Errorf("uad sent baresip %d 200s to INVITEs, want %d (call, hold, resume)", len(uadAnswers), len(wantAnswers))
	}
	for i := 0; i < len(uadAnswers) && i < len(wantAnswers); i++ {
		checkVideoSDP(t, fmt.Sprintf("uad's 200 %d to baresip", i+1), uadAnswers[i].Body, wantAnswers[i])
	}
}
