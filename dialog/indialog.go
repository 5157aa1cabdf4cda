package dialog

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
	"uad/sip"
)

// reorderWindow is how long a request of the peer waits for one with a
// lower CSeq that must come first. sipgo runs each message on a goroutine
// of its own, so two requests sent back to back can reach the call in
// either order; RFC 3261 §12.2.1.1 makes in-dialog CSeqs contiguous, so a
// gap means the missing one is on its way (or was lost, and the window
// ends the wait).
const reorderWindow = 100 * time.Millisecond

// incoming is a request of the peer on its way through the call's loop.
type incoming struct {
	req     *gosip.Request
	tx      gosip.ServerTransaction
	handled chan struct{} // closed once answered: sipgo's handler returns
}

func (in incoming) done() {
	select {
	case <-in.handled:
	default:
		close(in.handled)
	}
}

// HandleRequest takes an in-dialog request (sip.DialogOwner).
func (c *Call) HandleRequest(req *gosip.Request, tx gosip.ServerTransaction) {
	in := incoming{req: req, tx: tx, handled: make(chan struct{})}
	if !c.post(func() { c.receive(in) }) {
		if !req.IsAck() && tx != nil {
			_ = c.m.sig.Respond(tx, sip.NewResponse(req, 481, "Call/Transaction Does Not Exist", nil, c.m.sig.UserAgent()))
		}
		return
	}
	if tx == nil {
		return
	}
	// sipgo ends the transaction when this returns: wait for the answer,
	// which an offer adding video defers, or for a CANCEL.
	select {
	case <-in.handled:
	case <-tx.Done():
	}
}

// receive takes a request on the loop: ACKs at once, others in CSeq order.
func (c *Call) receive(in incoming) {
	if in.req.IsAck() {
		c.onAck(in.req)
		in.done()
		return
	}
	if !c.ended && c.mustWait(in.req) {
		c.park(in)
		return
	}
	c.dispatch(in)
	c.releaseReady()
}

// mustWait reports whether a request has to wait: for a lower CSeq still
// to come, or, for an offer, for the ACK that brings the answer to ours.
func (c *Call) mustWait(req *gosip.Request) bool {
	if seq := req.CSeq().SeqNo; c.dlg.RemoteSeq != 0 && seq > c.dlg.RemoteSeq+1 {
		return true
	}
	offers := req.IsInvite() || req.Method == gosip.UPDATE && len(req.Body()) > 0
	return offers && c.unacked != nil && c.unacked.offered
}

// park holds a request until it may go, at most reorderWindow.
func (c *Call) park(in incoming) {
	c.parked = append(c.parked, in)
	slices.SortStableFunc(c.parked, func(a, b incoming) int {
		return int(int64(a.req.CSeq().SeqNo) - int64(b.req.CSeq().SeqNo))
	})
	if c.parkTimer == nil {
		c.parkTimer = c.after(reorderWindow, c.flushParked)
	}
}

// releaseReady lets parked requests go, lowest CSeq first, while they need
// not wait any more.
func (c *Call) releaseReady() {
	for len(c.parked) > 0 && !c.ended && !c.mustWait(c.parked[0].req) {
		in := c.parked[0]
		c.parked = c.parked[1:]
		c.dispatch(in)
	}
	c.stopParking()
}

// flushParked: the wait is over; parked requests go in CSeq order.
func (c *Call) flushParked() {
	c.parkTimer = nil
	for len(c.parked) > 0 {
		in := c.parked[0]
		c.parked = c.parked[1:]
		c.dispatch(in)
	}
}

func (c *Call) stopParking() {
	if len(c.parked) == 0 && c.parkTimer != nil {
		c.parkTimer.Stop()
		c.parkTimer = nil
	}
}

// releaseParked answers what waits when the call ends.
func (c *Call) releaseParked() {
	for _, in := range c.parked {
		c.respond(in.tx, in.req, 481, "Call/Transaction Does Not Exist", nil)
		in.done()
	}
	c.parked = nil
	c.stopParking()
}

// dispatch handles a request of this call's dialog and answers it, at once
// or, for an offer adding video, once the user replied.
func (c *Call) dispatch(in incoming) {
	if !c.process(in) {
		in.done()
	}
}

// process handles a request that is not an ACK. It returns true when the
// response is deferred: in.handled is then closed once it is answered.
func (c *Call) process(in incoming) bool {
	req, tx := in.req, in.tx
	if c.ended {
		c.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return false
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
	seq := req.CSeq().SeqNo
	if c.dlg.RemoteSeq != 0 && seq <= c.dlg.RemoteSeq {
		c.respond(tx, req, 500, "Server Internal Error", nil, warning("CSeq out of order"))
		return false
	}
	c.dlg.RemoteSeq = seq
	switch req.Method {
	case gosip.BYE:
		c.respond(tx, req, 200, "OK", nil)
		if c.info.Direction == "inbound" && !c.answered {
			c.respond(c.inviteTx, c.inviteReq, 487, "Request Terminated", nil)
			c.releaseInvite()
		}
		c.end(EndRemote, 0)
	case gosip.INVITE:
		return c.onReinvite(in)
	case gosip.UPDATE:
		return c.onOffer(in)
	case gosip.INFO:
		c.respond(tx, req, 200, "OK", nil)
		if ct := req.ContentType(); ct != nil && strings.EqualFold(strings.TrimSpace(ct.Value()), "application/dtmf-relay") {
			if digit, ok := media.ParseDTMFRelay(string(req.Body())); ok {
				c.emit("dtmf", map[string]any{"digit": digit})
			}
		}
	default:
		c.respond(tx, req, 405, "Method Not Allowed", nil, gosip.NewHeader("Allow", sip.Allowed))
	}
	return false
}

// retryLater answers 500 with a Retry-After of 0 to 10 s, chosen at
// random as RFC 3261 §14.2 and RFC 3311 §5.2 ask.
func (c *Call) retryLater(in incoming, why string) {
	c.respond(in.tx, in.req, 500, "Server Internal Error", nil,
		gosip.NewHeader("Retry-After", strconv.Itoa(rand.IntN(11))), warning(why))
}

// peerOfferPending reports whether an offer of the peer awaits our answer:
// its INVITE not yet answered, or a re-INVITE adding video the user has
// not replied to.
func (c *Call) peerOfferPending() bool {
	return c.info.Direction == "inbound" && !c.answered || c.videoReq != nil
}

// onReinvite handles an INVITE inside the dialog (RFC 3261 §14.2): 500
// with Retry-After while an INVITE of the peer is not finished, 491 while
// an offer of ours is pending.
func (c *Call) onReinvite(in incoming) bool {
	if c.peerOfferPending() {
		c.retryLater(in, "an earlier INVITE is still in progress")
		return false
	}
	if c.unacked != nil {
		if c.unacked.offered {
			// Our offer's answer comes in the ACK, which never came in time.
			c.retryLater(in, "the ACK with the answer to our offer has not arrived")
			return false
		}
		// A newer INVITE shows the peer has our 2xx: its ACK is only late.
		c.implicitAck()
	}
	return c.onOffer(in)
}

// onOffer answers a re-INVITE or UPDATE. An offer is answered slot for
// slot; a re-INVITE without one gets our offer in the 2xx and brings the
// answer in the ACK. An offer that adds video may wait for the user.
func (c *Call) onOffer(in incoming) bool {
	req, tx := in.req, in.tx
	offer := len(req.Body()) > 0
	if offer || req.IsInvite() {
		switch {
		case c.out != nil && c.out.backoff == nil, c.unacked != nil && c.unacked.offered:
			// Glare: our offer is pending (RFC 3261 §14.2, RFC 3311 §5.2).
			c.respond(tx, req, 491, "Request Pending", nil)
			return false
		case c.peerOfferPending():
			c.retryLater(in, "an offer of yours awaits its answer")
			return false
		}
	}
	if c.tooBrief(req, tx) {
		return false
	}
	c.dlg.RefreshTarget(req)
	if !offer {
		if req.Method == gosip.UPDATE {
			c.respond(tx, req, 200, "OK", nil, c.takeRequestTimer(req)...)
			return false
		}
		c.setOfferDirections()
		res := c.respond(tx, req, 200, "OK", c.local.Marshal(), c.takeRequestTimer(req)...)
		c.await2xxAck(req.CSeq().SeqNo, res, true)
		return false
	}
	sdp, err := c.parseRemote(req.Body())
	if err == nil {
		err = sdp.CryptoError(c.srtp)
	}
	if err != nil {
		// The session stays as it was (RFC 3264 §8, RFC 6141).
		c.respond(tx, req, 488, "Not Acceptable Here", nil, sdpWarning(err))
		return false
	}
	if sdp.DTLSOffered() {
		c.log.Info().Msg("DTLS-SRTP m-lines declined: uad keys SRTP with SDES (a=crypto) only")
	}
	if c.addsVideo(sdp) {
		switch {
		case !c.cfg.Video || c.cfg.VideoRequestPolicy == VideoReject || c.localHold:
			// A call this side holds is never held as video: declined.
		case c.cfg.VideoRequestPolicy == VideoAccept:
			stream, err := c.newStream(true)
			if err == nil {
				c.watchStream(stream)
				c.answerOffer(req, tx, sdp, stream)
				return false
			}
		default:
			c.askVideo(in, sdp)
			return true
		}
	}
	c.answerOffer(req, tx, sdp, nil)
	return false
}

// answerOffer answers a peer's offer. newVideo is a stream opened to accept
// video the offer adds (nil: an added video stream is declined). A refused
// offer leaves the session as it was.
func (c *Call) answerOffer(req *gosip.Request, tx gosip.ServerTransaction, offer *media.RemoteSession, newVideo Stream) {
	prevStreams, prevParams, prevLegacy := c.local.Streams, c.params, c.local.LegacyHold
	c.local.LegacyHold = false // an answer states our directions itself
	c.answerReoffer(offer, newVideo)
	ls, ai := c.local.Active("audio")
	var p media.AudioParams
	err := errNoAudio
	if ls != nil && ai < len(offer.Streams) {
		p, err = media.NegotiateAudio(ls, &offer.Streams[ai], ls.Formats, c.cfg.Laws)
	}
	if err != nil {
		c.local.Streams, c.params, c.local.LegacyHold = prevStreams, prevParams, prevLegacy
		if newVideo != nil {
			newVideo.Close()
		}
		c.respond(tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	timerHdrs := c.takeRequestTimer(req)
	res := c.respond(tx, req, 200, "OK", c.local.Marshal(), timerHdrs...)
	wasHeld := c.remoteHold
	c.remote, c.params = offer, p
	if lv, _ := c.local.Active("video"); c.video != nil && lv == nil {
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
func (c *Call) answerReoffer(offer *media.RemoteSession, newVideo Stream) {
	plan := media.AnswerPlan{
		Laws:       c.cfg.Laws,
		AudioPort:  int(c.audio.LocalAddr().Port()),
		AudioSend:  c.holdSends(c.localHold),
		AudioRecv:  !c.localHold,
		SRTP:       c.srtp,
		Prev:       c.local.Streams,
		PrevRemote: c.remote,
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
	if a, _ := c.local.Active("audio"); a != nil {
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
