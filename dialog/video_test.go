package dialog

import (
	"context"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
)

// peerVideo is the peer's SDP with audio in a direction and video on.
func peerVideo(version int, dir string) string { return peerSDP(version, dir, 9000) }

// videoCall is an outgoing audio+video call the peer accepted.
func videoCall(t *testing.T, h *harness) *peer {
	t.Helper()
	p := h.outgoing(true, peerVideo(1, "sendrecv"))
	if _, _, info := h.state(p.call); info.Video == nil {
		t.Fatal("the call has no video")
	}
	return p
}

// reinviteStep expects uad's next re-INVITE with m-lines and an audio
// direction, and answers it 200 with answer.
func reinviteStep(t *testing.T, h *harness, what, lines, dir, answer string) {
	t.Helper()
	inv := h.sig.expect(t, gosip.INVITE)
	sdp := inv.sdp(t)
	if got := mlines(sdp); got != lines {
		t.Fatalf("%s re-INVITE m-lines %s, want %s", what, got, lines)
	}
	if got := audioDir(t, sdp); got != dir {
		t.Errorf("%s re-INVITE audio %s, want %s", what, got, dir)
	}
	inv.answer(200, "OK", answer)
	h.sig.expect(t, gosip.ACK)
}

// hold-and-video.md: a video call is held as [video off, audio hold], and
// resumed as [audio on, video offered back in its slot].
func TestVideoHoldProcedure(t *testing.T) {
	h := newHarness(t, nil)
	p := videoCall(t, h)
	done := h.op(h.m.Hold, p.call)
	reinviteStep(t, h, "video off", "audio:on video:0", "sendrecv", peerSDP(2, "sendrecv", 0))
	if e, _ := h.ev.expect(t, "video.closed"); e.Fields["by"] != "local" {
		t.Errorf("video.closed by %v", e.Fields["by"])
	}
	reinviteStep(t, h, "audio hold", "audio:on video:0", "sendonly", peerSDP(3, "recvonly", 0))
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	h.ev.expect(t, "hold.success")

	done = h.op(h.m.Unhold, p.call)
	reinviteStep(t, h, "resume", "audio:on video:0", "sendrecv", peerSDP(4, "sendrecv", 0))
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	h.ev.expect(t, "unhold.success")
	reinviteStep(t, h, "video back", "audio:on video:on", "sendrecv", peerVideo(5, "sendrecv"))
	h.ev.expect(t, "video.opened")
	if _, _, info := h.state(p.call); info.Video == nil || info.State != StateLive {
		t.Errorf("after resume: state %s video %v", info.State, info.Video)
	}
}

// A refused audio hold offers the video it removed back: the call is as
// it was, and only hold.failed is reported.
func TestVideoHoldRefusedOffersVideoBack(t *testing.T) {
	h := newHarness(t, nil)
	p := videoCall(t, h)
	done := h.op(h.m.Hold, p.call)
	off := h.sig.expect(t, gosip.INVITE)
	off.answer(200, "OK", peerSDP(2, "sendrecv", 0))
	h.sig.expect(t, gosip.ACK)
	hold := h.sig.expect(t, gosip.INVITE)
	hold.answer(403, "Forbidden", "")
	if err := outcome(t, done); err == nil {
		t.Fatal("hold succeeded")
	}
	if e, _ := h.ev.expect(t, "hold.failed"); e.Fields["sip_status"] != 403 {
		t.Errorf("hold.failed %v", e.Fields)
	}
	back := h.sig.expect(t, gosip.INVITE)
	if got := mlines(back.sdp(t)); got != "audio:on video:on" {
		t.Fatalf("video re-offer %s", got)
	}
	back.answer(200, "OK", peerVideo(3, "sendrecv"))
	h.sig.expect(t, gosip.ACK)
	h.ev.expect(t, "video.opened")
	if _, _, info := h.state(p.call); info.State != StateLive {
		t.Errorf("state %s", info.State)
	}
}

// Mutual hold: the first to resume does not get video back.
func TestVideoMutualHoldNoVideoBack(t *testing.T) {
	h := newHarness(t, nil)
	p := videoCall(t, h)
	done := h.op(h.m.Hold, p.call)
	off := h.sig.expect(t, gosip.INVITE)
	off.answer(200, "OK", peerSDP(2, "sendrecv", 0))
	h.sig.expect(t, gosip.ACK)
	hold := h.sig.expect(t, gosip.INVITE)
	hold.answer(200, "OK", peerSDP(3, "recvonly", 0))
	h.sig.expect(t, gosip.ACK)
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	if res := p.reoffer(t, peerSDP(4, "inactive", 0)); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	done = h.op(h.m.Unhold, p.call)
	resume := h.sig.expect(t, gosip.INVITE)
	resume.answer(200, "OK", peerSDP(5, "sendonly", 0))
	h.sig.expect(t, gosip.ACK)
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	h.quiet(p.call)
}

// The peer offers to add video: the user is asked; accept, reject, no
// reply (the default applies), the peer's CANCEL; and while uad holds,
// added video is declined without asking.
func TestVideoAddedByPeer(t *testing.T) {
	for _, tt := range []struct {
		name    string
		weHold  bool
		reply   string // accept, reject, none, cancel
		video   bool   // the answer's video m-line is live
		events  []string
		noAsk   bool
		timeout bool
	}{
		{name: "accepted", reply: "accept", video: true, events: []string{"video.request", "video.opened"}},
		{name: "rejected", reply: "reject", events: []string{"video.request"}},
		{name: "no reply: the default (reject)", reply: "none", events: []string{"video.request"}},
		{name: "withdrawn by CANCEL", reply: "cancel", events: []string{"video.request", "video.withdrawn"}},
		{name: "declined while we hold", weHold: true, noAsk: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			p := h.liveIncoming(peerAudio)
			version := 2
			if tt.weHold {
				if _, err := h.holdBy(p, true, "recvonly", version); err != nil {
					t.Fatal(err)
				}
				version++
			}
			h.sync(p.call)
			h.ev.rest()
			req := p.request("INVITE", "", peerVideo(version, "sendrecv"))
			tx := p.send(req)
			if !tt.noAsk {
				h.ev.expect(t, "video.request")
			}
			switch tt.reply {
			case "accept", "reject":
				if _, err := h.m.ReplyVideo(context.Background(), p.call.id, tt.reply == "accept"); err != nil {
					t.Fatal(err)
				}
			case "none":
				h.advance(p.call, 10*time.Second)
			case "cancel":
				tx.cancel(req)
				h.sync(p.call)
				if res := tx.final(t); res.StatusCode != 487 {
					t.Fatalf("got %d, want 487", res.StatusCode)
				}
				h.ev.expect(t, "video.withdrawn")
				return
			}
			res := tx.final(t)
			if res.StatusCode != 200 {
				t.Fatalf("got %d", res.StatusCode)
			}
			sdp := parseSDP(t, res.Body())
			want := "audio:on video:0"
			if tt.video {
				want = "audio:on video:on"
			}
			if got := mlines(sdp); got != want {
				t.Errorf("answer m-lines %s, want %s", got, want)
			}
			p.ack(req.CSeq().SeqNo, "")
			var got []string
			if !tt.noAsk {
				got = append(got, "video.request")
			}
			got = append(got, h.ev.rest()...)
			if strings.Join(got, ",") != strings.Join(tt.events, ",") {
				t.Errorf("events %v, want %v", got, tt.events)
			}
		})
	}
}

// The peer removes video (port 0): uad closes its stream and keeps the slot.
func TestVideoRemovedByPeer(t *testing.T) {
	h := newHarness(t, nil)
	p := videoCall(t, h)
	res := p.reoffer(t, peerSDP(2, "sendrecv", 0))
	if got := mlines(parseSDP(t, res.Body())); got != "audio:on video:0" {
		t.Errorf("answer %s", got)
	}
	if e, _ := h.ev.expect(t, "video.closed"); e.Fields["by"] != "remote" {
		t.Errorf("video.closed by %v", e.Fields["by"])
	}
	if _, _, info := h.state(p.call); info.Video != nil {
		t.Error("video still listed")
	}
}

// uad offers video back; the peer declines: video.rejected, audio only.
func TestVideoOfferRejected(t *testing.T) {
	h := newHarness(t, nil)
	p := h.liveIncoming(peerAudio)
	done := h.op(h.m.AddVideo, p.call)
	add := h.sig.expect(t, gosip.INVITE)
	if got := mlines(add.sdp(t)); got != "audio:on video:on" {
		t.Fatalf("offer %s", got)
	}
	add.answer(200, "OK", peerSDP(2, "sendrecv", 0))
	h.sig.expect(t, gosip.ACK)
	if err := outcome(t, done); err != nil {
		t.Fatal(err)
	}
	h.ev.expect(t, "video.rejected")
	if _, _, info := h.state(p.call); info.Video != nil {
		t.Error("video listed after the peer declined it")
	}
}
