package dialog

import (
	"strings"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
)

// onRequest handles a request of this call's dialog. Requests arrive one at
// a time: the loop serialises them. It returns true when the response is
// deferred: handled is then closed once the request is answered.
func (c *Call) onRequest(req *gosip.Request, tx gosip.ServerTransaction, handled chan struct{}) bool {
	if req.IsAck() {
		c.onAck(req)
		return false
	}
	if c.ended {
		c.dlg.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return false
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
	seq := req.CSeq().SeqNo
	if c.dlg.RemoteSeq != 0 && seq <= c.dlg.RemoteSeq {
		c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, warning("CSeq out of order"))
		return false
	}
	c.dlg.RemoteSeq = seq
	switch req.Method {
	case gosip.BYE:
		c.dlg.Respond(tx, req, 200, "OK", nil)
		if c.info.Direction == "inbound" && !c.answered {
			c.dlg.Respond(c.inviteTx, c.inviteReq, 487, "Request Terminated", nil)
			c.releaseInvite()
		}
		c.end(EndRemote, 0)
	case gosip.INVITE:
		return c.onReinvite(req, tx, handled)
	case gosip.UPDATE:
		return c.onOffer(req, tx, handled)
	case gosip.INFO:
		c.dlg.Respond(tx, req, 200, "OK", nil)
		if ct := req.ContentType(); ct != nil && strings.EqualFold(strings.TrimSpace(ct.Value()), "application/dtmf-relay") {
			if digit, ok := media.ParseDTMFRelay(string(req.Body())); ok {
				c.emit("dtmf", map[string]any{"digit": digit})
			}
		}
	default:
		c.dlg.Respond(tx, req, 405, "Method Not Allowed", nil)
	}
	return false
}

// onReinvite handles an INVITE inside the dialog (RFC 3261 §14.2): 500
// with Retry-After while an INVITE of the peer is not finished, 491 while
// an offer of ours is pending.
func (c *Call) onReinvite(req *gosip.Request, tx gosip.ServerTransaction, handled chan struct{}) bool {
	if c.info.Direction == "inbound" && !c.answered || c.videoReq != nil {
		c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, gosip.NewHeader("Retry-After", "2"))
		return false
	}
	if c.unacked != nil {
		if c.unacked.offered {
			// Our offer awaits its answer in the ACK.
			c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, gosip.NewHeader("Retry-After", "1"))
			return false
		}
		// A newer INVITE shows the peer has our 2xx: its ACK is only late
		// (each message runs on its own goroutine, so they can cross).
		c.implicitAck()
	}
	return c.onOffer(req, tx, handled)
}

// onOffer answers a re-INVITE or UPDATE. An offer is answered slot for
// slot; a re-INVITE without one gets our offer in the 2xx and brings the
// answer in the ACK. An offer that adds video may wait for the user.
func (c *Call) onOffer(req *gosip.Request, tx gosip.ServerTransaction, handled chan struct{}) bool {
	if c.out != nil && c.out.backoff == nil || c.unacked != nil && c.unacked.offered {
		c.dlg.Respond(tx, req, 491, "Request Pending", nil) // glare (RFC 3261 §14.2, RFC 3311 §5.2)
		return false
	}
	if c.tooBrief(req, tx) {
		return false
	}
	c.dlg.RefreshTarget(req)
	if len(req.Body()) == 0 {
		if req.Method == gosip.UPDATE {
			c.dlg.Respond(tx, req, 200, "OK", nil, c.takeRequestTimer(req)...)
			return false
		}
		c.setOfferDirections()
		res := c.dlg.Respond(tx, req, 200, "OK", c.local.Marshal(), c.takeRequestTimer(req)...)
		c.await2xxAck(req.CSeq().SeqNo, res, true)
		return false
	}
	offer, err := media.ParseRemote(req.Body())
	if err != nil {
		c.dlg.Respond(tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return false
	}
	if c.addsVideo(offer) {
		cfg := c.m.config()
		switch {
		case !cfg.Video || cfg.VideoRequestPolicy == VideoReject || c.localHold:
			// A call this side holds is never held as video: declined.
		case cfg.VideoRequestPolicy == VideoAccept:
			stream, err := c.m.eng.NewStream(true, c.spec.Mode == MediaRelay)
			if err == nil {
				c.answerOffer(req, tx, offer, stream)
				return false
			}
		default:
			c.askVideo(req, tx, offer, handled)
			return true
		}
	}
	c.answerOffer(req, tx, offer, nil)
	return false
}

// answerOffer answers a peer's offer. newVideo is a stream opened to accept
// video the offer adds (nil: an added video stream is declined). A refused
// offer leaves the session as it was.
func (c *Call) answerOffer(req *gosip.Request, tx gosip.ServerTransaction, offer *media.RemoteSession, newVideo *media.Stream) {
	prevStreams, prevParams, prevLegacy := c.local.Streams, c.params, c.local.LegacyHold
	c.local.LegacyHold = false // an answer states our directions itself
	c.answerReoffer(offer, newVideo)
	ls, _ := c.local.Stream("audio")
	rs, _ := offer.Stream("audio")
	var p media.AudioParams
	var err error
	if ls != nil && rs != nil && ls.Port != 0 {
		p, err = media.NegotiateAudio(ls, rs, ls.Formats, c.m.config().Laws)
	} else {
		err = errNoAudio
	}
	if err != nil {
		c.local.Streams, c.params, c.local.LegacyHold = prevStreams, prevParams, prevLegacy
		if newVideo != nil {
			newVideo.Close()
		}
		c.dlg.Respond(tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	timerHdrs := c.takeRequestTimer(req)
	res := c.dlg.Respond(tx, req, 200, "OK", c.local.Marshal(), timerHdrs...)
	wasHeld := c.remoteHold
	c.remote, c.params = offer, p
	if lv, _ := c.local.Stream("video"); c.video != nil && (lv == nil || lv.Port == 0) {
		c.closeVideo("remote")
	}
	opened := false
	if newVideo != nil {
		if opened = c.openVideo(newVideo); !opened {
			newVideo.Close()
		}
	}
	c.remoteIsAnswer = false
	c.applyMedia()
	if opened {
		c.emit("video.opened", nil)
		c.requestKeyFrame()
	} else if wasHeld && !c.remoteHold {
		c.requestKeyFrame() // the peer's video flows again after its hold
	}
	if req.IsInvite() {
		c.await2xxAck(req.CSeq().SeqNo, res, false)
	}
}

// answerReoffer rebuilds our m-lines against an offer, slot for slot. Our
// audio and video slots keep their sockets; newVideo accepts video the
// offer adds; every other stream is declined with port 0.
func (c *Call) answerReoffer(offer *media.RemoteSession, newVideo *media.Stream) {
	plan := media.AnswerPlan{
		Laws:      c.m.config().Laws,
		AudioPort: int(c.audio.LocalAddr().Port()),
		AudioSend: c.holdSends(c.localHold),
		AudioRecv: !c.localHold,
	}
	if stream := c.video; stream != nil {
		plan.VideoPort = int(stream.LocalAddr().Port())
	} else if newVideo != nil {
		plan.VideoPort = int(newVideo.LocalAddr().Port())
	}
	c.local.Streams = media.Answer(offer, plan)
}

// setOfferDirections writes the directions of an offer of ours from the
// hold flags: every later offer repeats our hold (RFC 6337 §5.3).
func (c *Call) setOfferDirections() {
	if a, _ := c.local.Stream("audio"); a != nil && a.Port != 0 {
		a.Direction = c.offerDirection(c.localHold)
	}
	c.local.LegacyHold = c.localHold && c.dialect == DialectLegacy
}

// takeRemoteHold updates remote_hold from the peer's audio direction and
// reports changes. An answer to an offer of ours that sends nothing says
// nothing about the peer's hold: it cannot receive what we do not send.
func (c *Call) takeRemoteHold(ls *media.LocalStream, rs *media.RemoteStream) {
	held := !rs.EffectiveDirection().Receives()
	if c.remoteIsAnswer && !ls.Direction.Sends() {
		held = c.remoteHold
	}
	if held == c.remoteHold {
		return
	}
	c.remoteHold = held
	c.info.RemoteHold = held
	if held {
		c.emit("held", nil)
	} else {
		c.emit("resumed", nil)
	}
}
