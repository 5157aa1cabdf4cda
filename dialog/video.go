package dialog

import (
	"net/netip"

	gosip "github.com/emiago/sipgo/sip"

	"uad/dialog/clock"
	"uad/media"
)

// Video request policies (calls.video_request_policy).
const (
	VideoAsk    = "ask"
	VideoAccept = "accept"
	VideoReject = "reject"
)

// videoRelay is the local endpoint of a relayed video stream: the relay
// endpoint's port + 2 (control-contract.md).
func (c *Call) videoRelay() netip.AddrPort {
	if !c.spec.Relay.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(c.spec.Relay.Addr(), c.spec.Relay.Port()+2)
}

// openVideo takes the peer's answer (or offer) for the video slot into a
// stream; false when the peer declined video or shares no codec with us.
func (c *Call) openVideo(stream Stream) bool {
	ls, vi := c.local.Active("video")
	if ls == nil || c.remote == nil || vi >= len(c.remote.Streams) {
		return false
	}
	rs := &c.remote.Streams[vi]
	if rs.Disabled() {
		return false
	}
	p, err := media.NegotiateVideo(ls, rs)
	if err != nil {
		return false
	}
	if c.video != nil && c.video != stream {
		c.video.Close() // never two streams for one slot
	}
	c.video, c.videoParams = stream, p
	return true
}

// closeVideo tears the video stream down and reports it.
func (c *Call) closeVideo(by string) {
	if c.video == nil {
		return
	}
	c.video.Close()
	c.video = nil
	c.info.Video = nil
	c.emit("video.closed", map[string]any{"by": by})
}

// applyVideo configures the video stream from the negotiated state.
func (c *Call) applyVideo() {
	if c.video == nil {
		c.info.Video = nil
		return
	}
	ls, vi := c.local.Active("video")
	if ls == nil || vi >= len(c.remote.Streams) {
		return
	}
	rs := &c.remote.Streams[vi]
	if p, err := media.NegotiateVideo(ls, rs); err == nil {
		c.videoParams = p // a re-offer may move the peer's port or SSRC
	}
	keys, suite, keyErr := streamKeys(ls, rs)
	if keyErr != nil {
		c.log.Error().Err(keyErr).Msg("video SRTP keys not negotiated: no media")
	}
	peer := rs.EffectiveDirection()
	c.videoAgreed = media.FromFlags(ls.Direction.Sends() && peer.Receives(), ls.Direction.Receives() && peer.Sends())
	c.video.Configure(media.StreamConfig{
		Mode:     media.Mode(c.spec.Mode),
		Video:    c.videoParams,
		Send:     c.videoAgreed.Sends() && keyErr == nil,
		Accept:   c.videoAgreed.Receives() && keyErr == nil,
		Relay:    c.videoRelay(),
		Latching: c.cfg.RTPLatching,
		SRTP:     keys,
	})
	codec, pt := c.videoParams.Codec(ls)
	info := &StreamInfo{
		Direction:   string(c.videoAgreed),
		Codec:       codec,
		PayloadType: pt,
		LocalRTP:    netip.AddrPortFrom(c.maddr.Advertise, c.video.LocalAddr().Port()).String(),
		SRTP:        suite,
	}
	if c.videoParams.Remote.IsValid() {
		info.RemoteRTP = c.videoParams.Remote.String()
	}
	if c.spec.Mode == MediaRelay {
		info.RelayLocal = c.video.RelayLocal().String()
		info.RelayRemote = c.videoRelay().String()
	}
	c.info.Video = info
}

// requestKeyFrame asks the peer for a key frame when its video starts
// flowing again (accept, resume).
func (c *Call) requestKeyFrame() {
	if c.video != nil && c.videoAgreed.Receives() {
		if err := c.video.RequestKeyFrame(); err != nil {
			c.log.Debug().Err(err).Msg("key frame request not sent")
		}
	}
}

// videoRequest is a peer's offer that adds video, held unanswered until
// the user replies (POST /v1/calls/{id}/video/reply) or the wait runs out.
type videoRequest struct {
	in    incoming
	offer *media.RemoteSession
	timer clock.Timer
}

func (v *videoRequest) stop() {
	stopTimer(v.timer)
	v.in.done()
}

// addsVideo reports whether an offer turns video on in a slot where the
// previous offer/answer had none. A peer that keeps re-offering video we
// declined (FreeSWITCH does) is not asking again.
func (c *Call) addsVideo(offer *media.RemoteSession) bool {
	if c.video != nil {
		return false
	}
	v, vi := offer.Stream("video")
	if v == nil || v.Disabled() {
		return false
	}
	if c.remote == nil || vi >= len(c.remote.Streams) {
		return true
	}
	return c.remote.Streams[vi].Disabled()
}

// askVideo holds an add-video offer for the user's reply.
func (c *Call) askVideo(in incoming, offer *media.RemoteSession) {
	v := &videoRequest{in: in, offer: offer}
	c.videoReq = v
	op := opVideoReq
	c.info.Pending = &op
	cfg := c.cfg
	ref := c.self
	in.tx.OnCancel(func(*gosip.Request) {
		if c := ref.Load(); c != nil {
			c.post(func() { c.withdrawVideo(v) })
		}
	})
	v.timer = c.after(cfg.VideoRequestTimeout, func() {
		if c.videoReq == v {
			c.log.Info().Str("default", cfg.VideoRequestDefault).Msg("no reply to the video offer: applying the default")
			c.answerVideo(v, cfg.VideoRequestDefault == VideoAccept)
		}
	})
	c.emit("video.request", nil)
}

// withdrawVideo: the peer cancelled its add-video offer (sipgo sent the 487).
func (c *Call) withdrawVideo(v *videoRequest) {
	if c.videoReq != v {
		return
	}
	c.videoReq = nil
	c.info.Pending = nil
	v.stop()
	c.emit("video.withdrawn", nil)
	c.whenIdle()
}

// replyVideo answers the pending add-video offer (the API's reply).
func (c *Call) replyVideo(accept bool) error {
	if c.ended {
		return errEnded
	}
	if c.videoReq == nil {
		return &StateError{Msg: "video reply: no video offer from the peer awaits a reply"}
	}
	c.answerVideo(c.videoReq, accept)
	return nil
}

// answerVideo answers a held add-video offer: our video m-line, or port 0.
func (c *Call) answerVideo(v *videoRequest, accept bool) {
	c.videoReq = nil
	c.info.Pending = nil
	defer c.whenIdle()
	defer v.stop()
	var stream Stream
	if accept {
		s, err := c.newStream(true)
		if err != nil {
			c.log.Warn().Err(err).Msg("no ports for video: declining it")
		} else {
			c.watchStream(s)
			stream = s
		}
	}
	c.answerOffer(v.in.req, v.in.tx, v.offer, stream)
}
