package conformance

import (
	"testing"

	"uad/dialog"
)

// RFC 6184 §8.2.2: in offer/answer the H.264 level may differ between offer
// and answer; the profile and packetization mode must match. An answer of
// Constrained Baseline level 4.0 (42e028) to uad's 42e01f opens video.
func TestRFC6184_8_2_2_H264OtherLevelOpensVideo(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rtp := newRTPPeers(t, 2)
	_, call, inv := liveOutbound(t, u, p, rtp[0], dialog.PlaceRequest{Video: true},
		answerPlan{audioPort: rtp[0].port, videoPort: rtp[1].port, profileLevel: "42e028"})
	if ml := requireSDP(t, inv, 2); ml[1].kind != "video" || ml[1].port == 0 {
		t.Fatalf("uad's offer has no video m-line: %+v", ml)
	}
	info := u.get(t, call.ID)
	if info.Video == nil {
		t.Fatalf("video is not open after an H.264 answer at level 4.0 (42e028) to uad's 42e01f")
	}
	if info.Video.Codec != "H264" {
		t.Errorf("video codec %q, want H264", info.Video.Codec)
	}
	u.noEvent(t, 0, "video.rejected", call.ID)
}
