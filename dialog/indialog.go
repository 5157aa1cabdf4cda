package dialog

import (
	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
)

// onRequest handles a request of this call's dialog. Requests arrive one at
// a time: the loop serialises them.
func (c *Call) onRequest(req *gosip.Request, tx gosip.ServerTransaction) {
	if req.IsAck() {
		c.onAck(req)
		return
	}
	if c.ended {
		c.dlg.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
	seq := req.CSeq().SeqNo
	if c.dlg.RemoteSeq != 0 && seq <= c.dlg.RemoteSeq && !(req.Method == gosip.INVITE && seq == c.dlg.RemoteSeq && c.inviteReq == req) {
		c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, warning("CSeq out of order"))
		return
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
		c.onReinvite(req, tx)
	case gosip.UPDATE:
		if len(req.Body()) == 0 {
			c.dlg.RefreshTarget(req)
			c.dlg.Respond(tx, req, 200, "OK", nil)
			return
		}
		c.onOffer(req, tx)
	case gosip.INFO:
		c.dlg.Respond(tx, req, 200, "OK", nil)
	default:
		c.dlg.Respond(tx, req, 405, "Method Not Allowed", nil)
	}
}

// onReinvite handles an INVITE inside the dialog. A 2xx of ours still
// waiting for its ACK makes a new one wait (500 with Retry-After, RFC 3261 §14.2).
func (c *Call) onReinvite(req *gosip.Request, tx gosip.ServerTransaction) {
	if c.info.Direction == "inbound" && !c.answered {
		// We have not answered the first INVITE yet (RFC 3261 §14.2).
		c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, gosip.NewHeader("Retry-After", "2"))
		return
	}
	if c.out != nil && c.out.backoff == nil {
		// Glare: our own re-INVITE is pending (RFC 3261 §14.2).
		c.dlg.Respond(tx, req, 491, "Request Pending", nil)
		return
	}
	if c.unacked != nil {
		if c.unacked.offered {
			// Our offer awaits its answer in the ACK (RFC 3261 §14.2).
			c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, gosip.NewHeader("Retry-After", "1"))
			return
		}
		// A newer INVITE shows the peer has our 2xx: its ACK is only late
		// (each message runs on its own goroutine, so they can cross).
		c.implicitAck()
	}
	c.onOffer(req, tx)
}

// onOffer answers a re-INVITE or UPDATE. With an offer it is answered slot
// for slot; a re-INVITE without one gets our offer in the 2xx and brings
// the answer in the ACK. A refused offer leaves the session as it was.
func (c *Call) onOffer(req *gosip.Request, tx gosip.ServerTransaction) {
	if c.tooBrief(req, tx) {
		return
	}
	c.dlg.RefreshTarget(req)
	if len(req.Body()) == 0 {
		if req.Method == gosip.UPDATE {
			c.dlg.Respond(tx, req, 200, "OK", nil, c.takeRequestTimer(req)...)
			return
		}
		c.setOfferDirections()
		res := c.dlg.Respond(tx, req, 200, "OK", c.local.Marshal(), c.takeRequestTimer(req)...)
		c.await2xxAck(req.CSeq().SeqNo, res, true)
		return
	}
	if req.Method == gosip.UPDATE && (c.out != nil && c.out.backoff == nil || c.unacked != nil && c.unacked.offered) {
		c.dlg.Respond(tx, req, 491, "Request Pending", nil) // RFC 3311 §5.2
		return
	}
	offer, err := media.ParseRemote(req.Body())
	if err != nil {
		c.dlg.Respond(tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	prevStreams, prevParams := c.local.Streams, c.params
	// An answer states our directions, so it needs no legacy address.
	c.local.LegacyHold = false
	c.answerReoffer(offer)
	ls, _ := c.local.Stream("audio")
	rs, _ := offer.Stream("audio")
	var p media.AudioParams
	if ls != nil && rs != nil && ls.Port != 0 {
		p, err = media.NegotiateAudio(ls, rs, ls.Formats, c.m.config().Laws)
	} else {
		err = errNoAudio
	}
	if err != nil {
		c.local.Streams, c.params = prevStreams, prevParams
		c.dlg.Respond(tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	body := c.local.Marshal()
	var res *gosip.Response
	timerHdrs := c.takeRequestTimer(req)
	if req.IsInvite() {
		res = c.dlg.Respond(tx, req, 200, "OK", body, timerHdrs...)
	} else {
		c.dlg.Respond(tx, req, 200, "OK", body, timerHdrs...)
	}
	c.remote, c.params = offer, p
	c.takeRemoteHold(rs)
	c.applyMedia()
	if res != nil {
		c.await2xxAck(req.CSeq().SeqNo, res, false)
	}
}

// answerReoffer rebuilds our m-lines against a new offer. Our audio slot
// keeps its socket; other slots are declined with port 0.
func (c *Call) answerReoffer(offer *media.RemoteSession) {
	laws := c.m.config().Laws
	streams := make([]media.LocalStream, len(offer.Streams))
	audioTaken := false
	for i, rs := range offer.Streams {
		ls := media.LocalStream{Kind: rs.Kind, Proto: rs.Proto, RawFmts: rs.RawFmts}
		if rs.Kind == "audio" && !audioTaken && !rs.Disabled() {
			if fs := media.AnswerAudio(rs.Formats, laws); fs != nil {
				audioTaken = true
				ls.Port = int(c.audio.LocalAddr().Port())
				ls.Formats = fs
				ls.Direction = media.Intersect(rs.EffectiveDirection(), c.holdSends(c.localHold), !c.localHold)
			}
		}
		streams[i] = ls
	}
	c.local.Streams = streams
}

// setOfferDirections writes the directions of an offer of ours from the
// hold flags: every later offer repeats our hold (RFC 6337 §5.3).
func (c *Call) setOfferDirections() {
	for i := range c.local.Streams {
		if c.local.Streams[i].Port != 0 {
			c.local.Streams[i].Direction = c.offerDirection(c.localHold)
		}
	}
}

// takeRemoteHold updates remote_hold from the peer's offer and reports changes.
func (c *Call) takeRemoteHold(rs *media.RemoteStream) {
	held := !rs.EffectiveDirection().Receives()
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
