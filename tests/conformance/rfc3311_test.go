package conformance

import (
	"context"
	"testing"
	"time"
)

// RFC 3311 §5.2: an UPDATE with an offer while an offer the peer sent
// (here: a re-INVITE adding video, waiting for the user's reply) has no
// answer yet gets 500 with a Retry-After of 0–10 s.
func TestRFC3311_5_2_UpdateOfferWhilePeerOfferPending500(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rtp := newRTPPeers(t, 2)
	c, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rtp[0]), req{})

	reinvite := c.send(t, "INVITE", req{body: addVideo(rtp[0], rtp[1], 2)})
	u.waitEvent(t, 0, "video.request", id)
	update := c.send(t, "UPDATE", req{body: peerSDP(3, "127.0.0.1", audioM(rtp[0].port, "sendonly"))})
	checkRetryAfter500(t, c.final(t, update), "UPDATE with an offer")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := u.mgr.ReplyVideo(ctx, id, false); err != nil {
		t.Errorf("ReplyVideo: %v", err)
	}
	if res := c.final(t, reinvite); res.res.StatusCode == 200 {
		c.ack(t, reinvite, "")
	}
}
