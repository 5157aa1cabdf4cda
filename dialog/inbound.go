package dialog

import (
	"errors"
	"net/netip"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
)

var errNoAudio = errors.New("sdp: no usable audio stream")

// onIncoming rings, reports the call and answers it when configured to.
func (c *Call) onIncoming() {
	c.info.RemoteURI = c.dlg.Remote.String()
	c.respond(c.inviteTx, c.inviteReq, 180, "Ringing", nil)
	c.log.Info().Str("from", c.dlg.Remote.String()).Msg("incoming call")
	c.emit("call.incoming", nil)
	c.emit("call.ringing", nil)
	if c.cfg.AutoAnswer {
		if err := c.answer(nil); err != nil {
			c.log.Warn().Err(err).Msg("auto-answer failed")
		}
	}
}

// answer sends the 200 to the initial INVITE: our answer to its offer, or
// our offer when it had none (the ACK then brings the answer).
func (c *Call) answer(spec *MediaSpec) error {
	if c.info.Direction != "inbound" {
		return &StateError{Msg: "only an incoming call can be answered"}
	}
	if c.ended {
		return &StateError{Msg: "the call has ended"}
	}
	if c.answered {
		return nil
	}
	if spec != nil && *spec != c.spec {
		if relaySocketsChange(c.spec, *spec) {
			// Relay needs its own socket pair toward the local endpoint,
			// of the endpoint's address family.
			stream, err := c.m.med.NewStream(c.maddr.Bind, false, relayTarget(*spec))
			if err != nil {
				return ErrNoMediaPorts
			}
			c.audio.Close()
			c.audio = stream
			c.watchStream(stream)
			stream.OnDTMF(func(digit string) {
				c.post(func() { c.emit("dtmf", map[string]any{"digit": digit}) })
			})
			c.info.Audio.LocalRTP = netip.AddrPortFrom(c.maddr.Advertise, stream.LocalAddr().Port()).String()
		}
		c.spec = *spec
		c.info.Media = spec.Mode
		c.info.Audio.RelayLocal, c.info.Audio.RelayRemote = "", ""
		if spec.Mode == MediaRelay {
			c.info.Audio.RelayLocal = c.audio.RelayLocal().String()
			c.info.Audio.RelayRemote = spec.Relay.String()
		}
	}
	cfg := c.cfg
	offered := c.offer != nil
	if offered {
		var newVideo Stream
		if v, _ := c.offer.Usable("video", nil, c.srtp); v != nil && cfg.Video && media.AnswerVideo(v.Formats) != nil {
			if s, err := c.newStream(true); err == nil {
				newVideo = s
				c.watchStream(s)
			} else {
				c.log.Warn().Err(err).Msg("no ports for video: declining it")
			}
		}
		c.answerReoffer(c.offer, newVideo)
		if newVideo != nil {
			c.remote, c.remoteIsAnswer = c.offer, false
			if !c.openVideo(newVideo) {
				newVideo.Close()
				if ls, _ := c.local.Stream("video"); ls != nil {
					ls.Port = 0
				}
			}
		}
		c.remote, c.remoteIsAnswer = c.offer, false
		ls, rs := c.audioSlots()
		err := errNoAudio
		var p media.AudioParams
		if ls != nil && rs != nil {
			p, err = media.NegotiateAudio(ls, rs, ls.Formats, cfg.Laws)
		}
		if err != nil {
			c.respond(c.inviteTx, c.inviteReq, 488, "Not Acceptable Here", nil, warning(err.Error()))
			c.releaseInvite()
			c.end(EndError, 488)
			return err
		}
		c.params = p
	} else {
		c.local.Streams = []media.LocalStream{c.offerSlot("audio", int(c.audio.LocalAddr().Port()), media.AudioFormats(cfg.Laws, true))}
	}
	body := c.local.Marshal()
	res := c.respond(c.inviteTx, c.inviteReq, 200, "OK", body, c.takeRequestTimer(c.inviteReq)...)
	c.answered = true
	c.info.State = StateLive
	c.releaseInvite()
	if offered {
		c.applyMedia()
	}
	c.await2xxAck(c.inviteReq.CSeq().SeqNo, res, !offered)
	if c.video != nil {
		c.requestKeyFrame() // the caller's video starts with a key frame
	}
	return nil
}

// await2xxAck retransmits a 2xx (T1 doubling to T2, over UDP) until its ACK
// arrives, and ends the call with BYE after 64·T1 without one (RFC 3261 §13.3.1.4).
func (c *Call) await2xxAck(seq uint32, res *gosip.Response, offered bool) {
	t1 := c.m.sig.T1()
	p := &pending2xx{seq: seq, res: res, interval: t1, offered: offered}
	c.unacked = p
	if !c.dlg.Reliable() {
		var resend func()
		resend = func() {
			if c.unacked != p {
				return
			}
			if err := c.m.sig.WriteResponse(p.res); err != nil {
				c.log.Warn().Err(err).Msg("2xx retransmission not sent")
			}
			p.interval = min(2*p.interval, 4*time.Second)
			p.timer = c.after(p.interval, resend)
		}
		p.timer = c.after(p.interval, resend)
	}
	p.deadline = c.after(64*t1, func() {
		if c.unacked != p {
			return
		}
		c.unacked = nil
		p.stop()
		c.log.Warn().Msg("no ACK for our 2xx: hanging up")
		c.sendBye()
		c.end(EndTimeout, 0)
	})
}

// onAck confirms a 2xx we sent; for a 2xx that carried our offer, the ACK
// carries the answer.
func (c *Call) onAck(req *gosip.Request) {
	p := c.unacked
	if p == nil || req.CSeq().SeqNo != p.seq {
		return
	}
	p.stop()
	c.unacked = nil
	if p.offered {
		remote, err := c.parseRemote(req.Body())
		if err == nil {
			c.remote = remote
			err = c.negotiateAnswer()
		}
		if err != nil {
			c.log.Warn().Err(err).Msg("ACK without a usable answer: hanging up")
			c.remote = nil
			c.sendBye()
			c.end(EndError, 488)
			return
		}
		c.applyMedia()
	}
	c.confirmed()
}

// implicitAck confirms our pending 2xx without its ACK.
func (c *Call) implicitAck() {
	c.unacked.stop()
	c.unacked = nil
	c.confirmed()
}

// confirmed: our 2xx got its ACK. The dialog is up, requests parked for
// that ACK go on, and so does work that waited for the INVITE to end.
func (c *Call) confirmed() {
	if !c.connected {
		c.markConnected()
	} else {
		c.whenIdle()
	}
	c.releaseReady()
}

// onCancel: the caller gave up before we answered; sipgo sent the 487.
func (c *Call) onCancel() {
	if c.answered || c.ended {
		return
	}
	c.releaseInvite()
	c.end(EndRemote, 487)
}
