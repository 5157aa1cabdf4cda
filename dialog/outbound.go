package dialog

import (
	"errors"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
	"uad/sip"
)

// sendInvite sends the initial INVITE with our offer and follows its
// transaction beside the loop.
func (c *Call) sendInvite() { c.sendInviteWith(nil) }

// sendInviteWith sends the INVITE again (after 422 or with credentials
// for the challenge in authFrom): same Call-ID and tag, CSeq advanced.
func (c *Call) sendInviteWith(authFrom *gosip.Response) {
	cfg := c.cfg
	c.local.Streams = []media.LocalStream{c.offerSlot("audio", int(c.audio.LocalAddr().Port()), media.AudioFormats(cfg.Laws, true))}
	if c.offeredVideo != nil {
		c.local.Streams = append(c.local.Streams, c.offerSlot("video", int(c.offeredVideo.LocalAddr().Port()), media.VideoFormats()))
	}
	inv := c.dlg.NewRequest(gosip.INVITE, c.local.Marshal())
	inv.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	inv.AppendHeader(gosip.NewHeader("Supported", sip.Supported))
	for _, h := range c.timerHeadersForRequest() {
		inv.AppendHeader(h)
	}
	if authFrom != nil {
		if err := sip.Authorize(inv, authFrom, c.account.Username, c.account.Password); err != nil {
			c.log.Warn().Err(err).Msg("cannot answer the challenge")
			c.end(EndRejected, authFrom.StatusCode)
			return
		}
	}
	c.invite = inv
	c.provisional = false
	c.log.Info().Str("to", c.dlg.RemoteTarget.String()).Msg("calling")
	c.outq.request(inv, c.onLoop(
		func(res *gosip.Response) {
			if c.invite == inv {
				c.onInviteResponse(res)
			}
		},
		func(err error) {
			if c.invite == inv {
				c.onInviteDone(err)
			}
		}))
}

const allowHeader = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"

func (c *Call) onInviteResponse(res *gosip.Response) {
	switch {
	case res.IsProvisional():
		if res.StatusCode == 100 {
			return
		}
		first := !c.provisional
		c.provisional = true
		if c.cancelling {
			if first {
				c.sendCancel()
			}
			return
		}
		if c.info.State == StateCalling && !c.ended {
			c.info.State = StateRinging
			c.emit("call.ringing", map[string]any{"sip_status": res.StatusCode})
		}
	case res.IsSuccess():
		if c.established() || c.inviteAck != nil {
			c.writeAck(c.inviteAck) // a retransmission: our ACK was lost
			return
		}
		c.onInviteAccepted(res)
	case (res.StatusCode == 401 || res.StatusCode == 407) && c.account != nil && c.authTries < 2 && !c.ended:
		c.authTries++ // a second challenge after our credentials means they are wrong
		c.sendInviteWith(res)
		return
	case res.StatusCode == 422 && !c.retried422 && !c.ended:
		// Session interval too small: ask again with the peer's minimum (RFC 4028 §7.4).
		if minSE, _, ok := parseSessionExpires(headerValue(res, "Min-SE")); ok {
			c.retried422 = true
			c.st.interval = max(minSE, MinSessionExpires)
			c.st.refresher = true
			c.sendInviteWith(nil)
			return
		}
		c.end(EndRejected, 422)
	default:
		if c.ended {
			return
		}
		reason := EndRejected
		if res.StatusCode == 408 {
			reason = EndTimeout
		}
		c.log.Info().Int("status", res.StatusCode).Str("reason", res.Reason).Msg("call refused")
		c.end(reason, res.StatusCode)
	}
}

// onInviteAccepted handles the first 2xx: ACK it (again on every
// retransmission), then take the answer, or hang up if it is unusable.
func (c *Call) onInviteAccepted(res *gosip.Response) {
	c.dlg.Established(res)
	c.inviteAck = c.dlg.NewAck(c.invite.CSeq().SeqNo, nil)
	c.writeAck(c.inviteAck)
	if c.ended {
		// The 2xx crossed our CANCEL: the dialog exists, so end it with BYE.
		c.sendBye()
		return
	}
	c.m.sig.Register(c.dlg.CallID, c.dlg.LocalTag, c)
	remote, err := c.parseRemote(res.Body())
	if err == nil {
		c.remote = remote
		err = c.negotiateAnswer()
	}
	if err != nil {
		c.log.Warn().Err(err).Msg("unusable answer: hanging up")
		c.remote = nil
		c.sendBye()
		c.end(EndError, 488)
		return
	}
	c.takeResponseTimer(res)
	if v := c.offeredVideo; v != nil {
		c.offeredVideo = nil
		if !c.openVideo(v) {
			v.Close()
			if ls, _ := c.local.Stream("video"); ls != nil {
				ls.Port = 0
			}
			c.emit("video.rejected", nil)
		}
	}
	c.applyMedia()
	c.markConnected()
	if c.video != nil {
		c.requestKeyFrame()
	}
}

// negotiateAnswer takes the peer's answer to our offer.
func (c *Call) negotiateAnswer() error {
	ls, rs := c.audioSlots()
	if ls == nil || rs == nil || rs.Disabled() {
		return errNoAudio
	}
	p, err := media.NegotiateAudio(ls, rs, rs.Formats, c.cfg.Laws)
	if err != nil {
		return err
	}
	if err := c.takeSRTPAnswer(); err != nil {
		return err
	}
	c.params = p
	c.remoteIsAnswer = true
	return nil
}

// writeAck sends an ACK; each send gets a copy, as sending adds its Via.
func (c *Call) writeAck(ack *gosip.Request) {
	c.outq.write(ack.Clone())
}

func (c *Call) onInviteDone(err error) {
	if c.ended || c.established() {
		return
	}
	if _, local := errors.AsType[*SendError](err); local {
		c.log.Warn().Err(err).Msg("INVITE not sent")
		c.end(EndError, 0)
		return
	}
	// No final response at all: a transaction timeout.
	c.log.Info().Err(err).Msg("INVITE timed out")
	c.end(EndTimeout, 408)
}

// sendCancel cancels our pending INVITE (allowed once a provisional arrived).
func (c *Call) sendCancel() { c.outq.cancel(c.invite) }
