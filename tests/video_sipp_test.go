package tests

// Video against sipp, with audio+video SDP: the peer removes video and adds
// it back (under each calls.video_request_policy), and uad offers video that
// the peer declines, then accepts; the m-line count never changes. sipp
// checks each SDP with regular expressions as it goes; the tests then check
// every SDP uad sent in sipp's message trace, uad's call objects and events,
// the video RTP uad echoes and the RTCP PLI it sends when video opens.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// videoPeer is the test's video endpoint announced to uad through sipp: RTP
// at Port, RTCP at Port+1.
type videoPeer struct {
	rtp  *RTPPeer
	rtcp *rtcpSink
	src  *videoSource
}

func newVideoPeer(t *testing.T) *videoPeer {
	t.Helper()
	port := miscPorts.take(t, 2, false)
	p := &videoPeer{rtp: newRTPPeer(t, port), rtcp: newRTCPSink(t, port+1)}
	p.src = newVideoSource(p.rtp, 96)
	return p
}

// echo sends video to uad's video local_rtp (of call object c) and requires
// uad's echo of it, from that address, as uad's own stream.
func (p *videoPeer) echo(t *testing.T, what string, c CallInfo) {
	t.Helper()
	if c.Video == nil {
		t.Errorf("%s: the call has no video to echo", what)
		return
	}
	if c.Video.RemoteRTP != p.rtp.Addr() {
		t.Errorf("%s: video.remote_rtp %q, want the announced %s", what, c.Video.RemoteRTP, p.rtp.Addr())
	}
	from := p.rtp.Count()
	const frames = 15
	p.src.send(t, mustUDPAddr(t, c.Video.LocalRTP), frames)
	got := waitVideoEchoes(p.rtp, from, frames*2*8/10, p.src, 3*time.Second)
	if len(got) < frames*2*8/10 {
		t.Errorf("%s: %d of %d video packets echoed, want >= 80%%: %s", what, len(got), frames*2, analyzeRTP(p.rtp.Received()[from:]))
		return
	}
	checkVideoRelayed(t, what, got, p.src, 96, c.Video.LocalRTP)
}

// waitPLI waits until more than base PLIs arrived at the RTCP port.
func (p *videoPeer) waitPLI(t *testing.T, what string, base int) {
	t.Helper()
	if !poll(3*time.Second, 20*time.Millisecond, func() bool { return p.rtcp.PLIs() > base }) {
		t.Errorf("%s: no RTCP PLI at the peer's video RTCP port %s+1 within 3 s: uad asks for a key frame when video starts flowing again",
			what, p.rtp.Addr())
	}
}

// sipp calls uad with audio and video, removes video (m=video 0), then adds
// it back; uad answers slot for slot, reports video.closed (by remote), and
// takes the re-added video as calls.video_request_policy (and the reply to
// video.request) say.
func TestVideoSippPeerRemovesAndAddsVideo(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	cases := []struct {
		name   string
		policy string
		reply  *bool // the API's reply to video.request (policy ask)
		want   bool  // video back on
	}{
		{name: "policy_accept", policy: "accept", want: true},
		{name: "policy_ask_accept", policy: "ask", reply: boolPtr(true), want: true},
		{name: "policy_ask_reject", policy: "ask", reply: boolPtr(false), want: false},
		{name: "policy_reject", policy: "reject", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vp := newVideoPeer(t)
			u, ev, _, s := sippCallsUAD(t, UADOptions{Config: map[string]any{"calls.video_request_policy": tc.policy}},
				"video_uac_remove_readd.xml", "-s", "uad", "-d", "2500", "-key", "video_port", itoa(vp.rtp.Port()))

			conn := ev.WaitAnswered(t)
			id := conn.CallID()
			checkVideoOn(t, "call.connected", *conn.Call, "sendrecv", "H264")
			vp.echo(t, "video echo after the answer", u.Call(id))

			// sipp removes video.
			closed := ev.WaitType(t, "video.closed", id, endTimeout)
			if closed.By != "remote" {
				t.Errorf("video.closed by %q, want remote: %s", closed.By, closed.Raw)
			}
			checkVideoOff(t, "video.closed's call", *closed.Call)
			if closed.Call.Audio == nil || closed.Call.Audio.Direction != "sendrecv" || closed.Call.State != "live" {
				t.Errorf("video.closed's call: state %q audio %+v, want the audio call live, sendrecv", closed.Call.State, closed.Call.Audio)
			}
			plis := vp.rtcp.PLIs()

			// sipp adds video back.
			if tc.policy == "ask" {
				req := ev.WaitType(t, "video.request", id, endTimeout)
				if p := pendingOf(*req.Call); p != "video-request" {
					t.Errorf("video.request's call: pending %q, want video-request", p)
				}
				c := videoOp(t, u, http.MethodPost, "/v1/calls/"+id+"/video/reply", map[string]any{"accept": *tc.reply})
				if *tc.reply {
					checkVideoOn(t, "reply accept's 200", c, "sendrecv", "H264")
				} else {
					checkVideoOff(t, "reply reject's 200", c)
				}
			}
			if tc.want {
				opened := ev.WaitType(t, "video.opened", id, endTimeout)
				checkVideoOn(t, "video.opened's call", *opened.Call, "sendrecv", "H264")
				vp.echo(t, "video echo after the re-add", *opened.Call) // within sipp's pause
				vp.waitPLI(t, "video re-added by the peer", plis)
			}

			end := ev.WaitType(t, "call.ended", id, endTimeout)
			if end.Reason != "remote" {
				t.Errorf("call.ended reason %q, want remote", end.Reason)
			}
			res := s.WaitOK()
			if !tc.want {
				noEvent(t, ev, "uad", id, "video.opened")
			}
			if tc.policy != "ask" {
				noEvent(t, ev, "uad", id, "video.request")
			}
			noEvent(t, ev, "uad", id, "held", "resumed")

			answers := filter(parseSippTrace(res.Messages), receivedWith("SIP/2.0 200", "INVITE"))
			want := []sdpWant{
				{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"},
				{AudioDir: "sendrecv", VideoOn: false},
				{AudioDir: "sendrecv", VideoOn: tc.want, VideoDir: "sendrecv"},
			}
			if len(answers) != len(want) {
				t.Fatalf("sipp received %d 200s to INVITEs, want %d", len(answers), len(want))
			}
			for i, w := range want {
				checkVideoSDP(t, fmt.Sprintf("uad's answer %d", i+1), answers[i].Body, w)
			}
		})
	}
}

// uad calls sipp audio-only and offers video: sipp declines it (port 0):
// video.rejected, 200 with video null; uad offers it again in the same
// slot: accepted; uad removes it, holds and resumes: the m-line count stays
// two from the first video offer on, video stays off, and is not offered
// back on resume (the hold did not remove it).
func TestVideoSippDeclinesOffer(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u := startUAD(t, UADOptions{})
	ev := u.Events()
	audio := newRTPPeer(t, 0)
	vp := newVideoPeer(t)
	uas := startSipp(t, "video_uas_offer_rejected.xml",
		"-key", "rtp_port", itoa(audio.Port()), "-key", "video_port", itoa(vp.rtp.Port()))

	c := u.PlaceCall(uas.URI("sipp"), map[string]any{"media": "echo"})
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	checkVideoOff(t, "audio call", u.Call(c.ID))
	path := "/v1/calls/" + c.ID + "/video"

	// Offer 1: declined.
	c1 := videoOp(t, u, http.MethodPost, path, nil)
	checkVideoOff(t, "POST video declined: its 200", c1)
	if pendingOf(c1) != "" || c1.State != "live" {
		t.Errorf("POST video declined: state %q pending %q, want live and nothing pending", c1.State, pendingOf(c1))
	}
	rej := ev.WaitType(t, "video.rejected", c.ID, sigTimeout)
	checkVideoOff(t, "video.rejected's call", *rej.Call)
	noEvent(t, ev, "uad", c.ID, "video.opened")

	// Offer 2: accepted, in the same slot.
	plis := vp.rtcp.PLIs()
	c2 := videoOp(t, u, http.MethodPost, path, nil)
	checkVideoOn(t, "POST video accepted: its 200", c2, "sendrecv", "H264")
	ev.WaitType(t, "video.opened", c.ID, sigTimeout)
	vp.echo(t, "video echo", c2)
	vp.waitPLI(t, "video accepted by the peer", plis)

	// uad removes video.
	c3 := videoOp(t, u, http.MethodDelete, path, nil)
	checkVideoOff(t, "DELETE video: its 200", c3)
	if e := ev.WaitType(t, "video.closed", c.ID, sigTimeout); e.By != "local" {
		t.Errorf("video.closed by %q, want local", e.By)
	}

	// Hold and resume: audio only; no video offer after the resume.
	videoOp(t, u, http.MethodPost, "/v1/calls/"+c.ID+"/hold", nil)
	ev.WaitType(t, "hold.success", c.ID, sigTimeout)
	videoOp(t, u, http.MethodDelete, "/v1/calls/"+c.ID+"/hold", nil)
	ev.WaitType(t, "unhold.success", c.ID, sigTimeout)
	if c := u.Call(c.ID); pendingOf(c) != "" || c.Video != nil {
		t.Errorf("after the resume: pending %q video %+v, want nothing pending and no video (video was off before the hold)", pendingOf(c), c.Video)
	}
	u.Hangup(c.ID) // sipp expects the BYE next: any other re-INVITE fails it
	res := uas.WaitOK()

	offers := filter(parseSippTrace(res.Messages), receivedWith("INVITE ", ""))
	if len(offers) != 6 {
		t.Fatalf("sipp received %d INVITEs, want 6 (call, video declined, video accepted, video off, hold, resume)", len(offers))
	}
	if n := len(sdpSections(offers[0].Body)); n != 1 {
		t.Errorf("uad's initial offer of an audio call has %d m-lines, want 1:\n%s", n, offers[0].Body)
	}
	want := []sdpWant{
		{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"},
		{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"},
		{AudioDir: "sendrecv", VideoOn: false},
		{AudioDir: "sendonly", VideoOn: false},
		{AudioDir: "sendrecv", VideoOn: false},
	}
	for i, w := range want {
		checkVideoSDP(t, fmt.Sprintf("uad's offer %d", i+2), offers[i+1].Body, w)
	}
}

// sipp offers to add video and CANCELs the offer while uad waits for its
// user's reply: uad answers 487, reports video.withdrawn, and the call stays
// audio-only with nothing pending; a second offer is asked and accepted.
func TestVideoSippCancelsVideoOffer(t *testing.T) {
	t.Parallel()
	vp := newVideoPeer(t)
	u, ev, _, s := sippCallsUAD(t, UADOptions{Config: map[string]any{"calls.video_request_policy": "ask"}},
		"video_uac_cancel_add.xml", "-s", "uad", "-d", "2500", "-key", "video_port", itoa(vp.rtp.Port()))

	conn := ev.WaitAnswered(t)
	id := conn.CallID()
	checkVideoOff(t, "audio call", *conn.Call)

	req := ev.WaitType(t, "video.request", id, sigTimeout)
	if p := pendingOf(*req.Call); p != "video-request" {
		t.Errorf("video.request's call: pending %q, want video-request", p)
	}
	wd := ev.WaitType(t, "video.withdrawn", id, sigTimeout)
	checkOrder(t, req, wd)
	c := u.Call(id)
	checkVideoOff(t, "after the CANCEL", c)
	if pendingOf(c) != "" || c.State != "live" || c.Audio == nil || c.Audio.Direction != "sendrecv" {
		t.Errorf("after the CANCEL: state %q pending %q audio %+v, want a live sendrecv audio call, nothing pending",
			c.State, pendingOf(c), c.Audio)
	}
	if st, data := u.API(http.MethodPost, "/v1/calls/"+id+"/video/reply", map[string]any{"accept": true}); st != http.StatusConflict {
		t.Errorf("video reply after the offer was withdrawn = %d %s, want 409", st, data)
	}

	// The second offer: asked again, accepted.
	plis := vp.rtcp.PLIs()
	req2 := ev.WaitType(t, "video.request", id, endTimeout)
	checkOrder(t, wd, req2)
	checkVideoOn(t, "reply accept's 200", videoOp(t, u, http.MethodPost, "/v1/calls/"+id+"/video/reply", map[string]any{"accept": true}), "sendrecv", "H264")
	opened := ev.WaitType(t, "video.opened", id, sigTimeout)
	vp.echo(t, "video echo", *opened.Call)
	vp.waitPLI(t, "video added by the peer", plis)

	if e := ev.WaitType(t, "call.ended", id, endTimeout); e.Reason != "remote" {
		t.Errorf("call.ended reason %q, want remote", e.Reason)
	}
	res := s.WaitOK()
	var got487, got200 bool
	for _, m := range parseSippTrace(res.Messages) {
		if m.Sent || !strings.HasPrefix(m.Start, "SIP/2.0 ") {
			continue
		}
		switch cseq := m.Header("CSeq"); {
		case cseq == "2 INVITE" && strings.HasPrefix(m.Start, "SIP/2.0 487"):
			got487 = true
		case cseq == "2 INVITE" && strings.HasPrefix(m.Start, "SIP/2.0 2"):
			t.Errorf("uad answered the cancelled re-INVITE with %q, want 487", m.Start)
		case cseq == "2 CANCEL" && strings.HasPrefix(m.Start, "SIP/2.0 200"):
			got200 = true
		}
	}
	if !got487 || !got200 {
		t.Errorf("uad's answers to the CANCEL: 200 to the CANCEL %t, 487 to the re-INVITE %t; want both", got200, got487)
	}
	answers := filter(parseSippTrace(res.Messages), receivedWith("SIP/2.0 200", "INVITE"))
	if len(answers) != 2 {
		t.Fatalf("sipp received %d 200s to INVITEs, want 2 (the call, the second video offer)", len(answers))
	}
	if n := len(sdpSections(answers[0].Body)); n != 1 {
		t.Errorf("uad's answer to an audio-only INVITE has %d m-lines, want 1", n)
	}
	checkVideoSDP(t, "uad's answer to the second video offer", answers[1].Body, sdpWant{AudioDir: "sendrecv", VideoOn: true, VideoDir: "sendrecv"})
}

// Each video sipp scenario against a stand-in for uad: right answers pass,
// a wrong one makes the scenario fail.
func TestVideoSippScenarioPairs(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	runSippPairs(t, []sippPair{
		{name: "remove_readd", uas: "video_mock_uas_remove_readd.xml", uasArgs: []string{"-key", "removed_port", "0", "-key", "extra_mline", ""},
			uac: "video_uac_remove_readd.xml", uacArgs: []string{"-d", "100", "-key", "video_port", "7002"}},
		{name: "remove_readd_port_kept", uas: "video_mock_uas_remove_readd.xml", uasArgs: []string{"-key", "removed_port", "5000", "-key", "extra_mline", ""},
			uac: "video_uac_remove_readd.xml", uacArgs: []string{"-d", "100", "-key", "video_port", "7002"}, uacFails: true},
		{name: "remove_readd_third_mline", uas: "video_mock_uas_remove_readd.xml", uasArgs: []string{"-key", "removed_port", "0", "-key", "extra_mline", "\r\nm=text 0 RTP/AVP 0"},
			uac: "video_uac_remove_readd.xml", uacArgs: []string{"-d", "100", "-key", "video_port", "7002"}, uacFails: true},
		{name: "cancel_add", uas: "video_mock_uas_cancel_add.xml",
			uac: "video_uac_cancel_add.xml", uacArgs: []string{"-d", "100", "-key", "video_port", "7002"}},
		{name: "offer_rejected", uas: "video_uas_offer_rejected.xml", uasArgs: []string{"-key", "video_port", "7002"},
			uac: "video_mock_uac_offer_rejected.xml", uacArgs: []string{"-key", "removed_port", "0"}},
		{name: "offer_rejected_port_kept", uas: "video_uas_offer_rejected.xml", uasArgs: []string{"-key", "video_port", "7002"},
			uac: "video_mock_uac_offer_rejected.xml", uacArgs: []string{"-key", "removed_port", "5000"}, uasFails: true},
	})
}
