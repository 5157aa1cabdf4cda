package dialog

import (
	"errors"
	"time"

	"uad/media"
)

// This file applies what offer/answer agreed to the call's streams and
// watches that the peer's RTP keeps coming.

// audioSlots are our audio m-line and the peer's at the same index: the
// first audio stream in use (an offer may put a declined one first).
func (c *Call) audioSlots() (*media.LocalStream, *media.RemoteStream) {
	ls, i := c.local.Active("audio")
	if ls == nil || c.remote == nil || i >= len(c.remote.Streams) {
		return ls, nil
	}
	return ls, &c.remote.Streams[i]
}

// applyMedia configures the audio stream from the call's negotiated state.
func (c *Call) applyMedia() {
	if c.remote == nil {
		return
	}
	ls, rs := c.audioSlots()
	if ls == nil || rs == nil {
		return
	}
	peer := rs.EffectiveDirection()
	agreed := media.FromFlags(ls.Direction.Sends() && peer.Receives(), ls.Direction.Receives() && peer.Sends())
	if agreed != c.agreed {
		// The peer may only now start sending: its silence counts from here.
		c.rtpSince = c.clock.Now()
	}
	c.agreed = agreed
	keys, suite, keyErr := streamKeys(ls, rs)
	if keyErr != nil {
		// Offer/answer checked the lines before: only a bug gets here.
		// An SRTP stream without keys carries nothing rather than RTP in clear.
		c.log.Error().Err(keyErr).Msg("audio SRTP keys not negotiated: no media")
	}
	partnerHold := media.SourceNone
	if c.partnerHeld {
		partnerHold = media.SourceHoldTone
		if c.cfg.BridgeHold == BridgeHoldSilence {
			partnerHold = media.SourceSilence
		}
	}
	c.audio.Configure(media.StreamConfig{
		Mode:        media.Mode(c.spec.Mode),
		Params:      c.params,
		Send:        c.agreed.Sends() && keyErr == nil,
		Accept:      c.agreed.Receives() && !c.localHold && keyErr == nil,
		LocalHold:   c.localHold,
		Relay:       c.spec.Relay,
		Bridged:     c.bridge != nil,
		PartnerHold: partnerHold,
		Latching:    c.cfg.RTPLatching,
		SRTP:        keys,
	})
	c.info.Audio.SRTP = suite
	c.info.Audio.Direction = string(c.agreed)
	c.info.Audio.Codec = c.params.Send.String()
	c.info.Audio.HoldTone = &playsTones
	if !c.params.Send.Known() {
		c.info.Audio.HoldTone = &playsNoTones
	}
	c.info.Audio.PayloadType = c.params.SendPT
	if c.params.Remote.IsValid() {
		c.info.Audio.RemoteRTP = c.params.Remote.String()
	}
	c.applyVideo()
	c.takeRemoteHold(ls, rs) // last: its events carry the new directions
	c.syncPartnerHold()
}

// markConnected reports the dialog confirmed and starts watching for RTP.
func (c *Call) markConnected() {
	c.connected = true
	now := c.clock.Now()
	utc := now.UTC()
	c.info.ConnectedAt = &utc
	c.info.State = StateLive
	c.emit("call.connected", nil)
	if c.rtpSince.IsZero() {
		c.rtpSince = now
	}
	c.startRTPWatch()
	c.whenIdle() // work that waited for the ACK
}

// startRTPWatch ends the call when the peer stops sending RTP while it is
// allowed to send (media.rtp_timeout), or while held (media.rtp_hold_timeout).
func (c *Call) startRTPWatch() {
	cfg := c.cfg
	limit := cfg.RTPTimeout
	if cfg.RTPHoldTimeout > 0 && cfg.RTPHoldTimeout < limit || limit == 0 {
		limit = cfg.RTPHoldTimeout
	}
	if limit <= 0 {
		return
	}
	interval := max(limit/4, 250*time.Millisecond)
	var check func()
	check = func() {
		if c.ended {
			return
		}
		// Held either way, rtp_hold_timeout applies (a held peer may send
		// music or nothing); otherwise rtp_timeout, while the peer may send.
		timeout := cfg.RTPTimeout
		switch {
		case c.localHold || c.remoteHold || c.agreed == media.Inactive:
			timeout = cfg.RTPHoldTimeout
		case !c.agreed.Receives():
			timeout = 0
		}
		last := c.audio.Stats().LastReceived
		if last.Before(c.rtpSince) {
			last = c.rtpSince
		}
		if silent := c.clock.Now().Sub(last); timeout > 0 && silent > timeout {
			c.log.Warn().Dur("silent_for", silent).Msg("no RTP from the peer: hanging up")
			c.sendBye()
			c.end(EndTimeout, 0)
			return
		}
		c.rtpTimer = c.after(interval, check)
	}
	c.rtpTimer = c.after(interval, check)
}

func streamStats(s Stream) *StreamStats {
	if s == nil {
		return nil
	}
	st := s.Stats()
	out := &StreamStats{PacketsSent: st.PacketsSent, BytesSent: st.BytesSent, PacketsReceived: st.PacketsReceived,
		BytesReceived: st.BytesReceived, PacketsLost: st.PacketsLost, JitterMS: float64(st.Jitter.Microseconds()) / 1000,
		SRTPFailed: st.SRTPFailed}
	if !st.LastReceived.IsZero() {
		t := st.LastReceived.UTC()
		out.LastReceived = &t
	}
	return out
}

func (c *Call) closeMedia() {
	c.audio.Close()
	for _, v := range []Stream{c.video, c.offeredVideo} {
		if v != nil {
			v.Close()
		}
	}
	c.video, c.offeredVideo = nil, nil
}

// sendDTMF refuses DTMF on a stream we hold or that the peer holds.
func (c *Call) sendDTMF(digits string, d time.Duration) error {
	switch {
	case c.ended:
		return errEnded
	case !c.connected:
		return &StateError{Msg: "dtmf: the call is not live yet"}
	case c.localHold || !c.agreed.Sends():
		return &StateError{Msg: "dtmf: the call is held (" + string(c.agreed) + "): no DTMF is sent"}
	}
	switch err := c.audio.SendDTMF(digits, d); {
	case errors.Is(err, media.ErrDTMFDigits):
		return &RequestError{Msg: "dtmf: " + err.Error()}
	case err != nil:
		return &StateError{Msg: "dtmf: " + err.Error()}
	}
	return nil
}

// The values StreamInfo.HoldTone points to: shared, so that snapshots
// showing the same compare equal (sameStream).
var playsTones, playsNoTones = true, false
