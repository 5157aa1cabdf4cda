package dialog

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/media"
	"uad/sip"
)

// Call is one call. Everything below the channels is owned by its loop.
type Call struct {
	m     *Manager
	id    string
	log   zerolog.Logger
	inbox chan func()
	done  chan struct{} // closed when the loop exits
	snap  atomic.Pointer[CallInfo]
	live  atomic.Pointer[liveStreams]
	self  *atomic.Pointer[Call] // cleared at the end, for hooks that outlive the call

	info    CallInfo // what the API sees, kept current by the loop
	dlg     *sip.Dialog
	spec    MediaSpec
	dialect string // hold offer form for this peer (calls.hold_dialect)
	local   *media.LocalSession
	remote  *media.RemoteSession
	// remoteIsAnswer: remote answered our offer (else it is the peer's offer).
	remoteIsAnswer bool
	audio          *media.Stream
	params         media.AudioParams
	agreed         media.Direction // last agreed audio direction, our view
	connected      bool            // ACK exchanged
	// Hold is two flags; every direction is derived from them.
	localHold, remoteHold bool
	ended                 bool
	waiting               int // transactions and timers the loop must outlive

	// Outgoing call.
	offeredVideo *media.Stream // video stream of our initial offer, until answered
	invite       *gosip.Request
	inviteCTx    gosip.ClientTransaction
	provisional  bool     // a provisional response arrived: CANCEL is allowed
	retried422   bool     // INVITE re-sent once after 422 Session Interval Too Small
	account      *Account // the account the call uses, for its credentials
	authTries    int      // INVITEs re-sent with credentials
	cancelling   bool

	// Incoming call.
	inviteReq  *gosip.Request
	inviteTx   gosip.ServerTransaction
	inviteDone chan struct{} // closed once the INVITE has its final response
	offer      *media.RemoteSession
	answered   bool

	// The offer of ours in flight (nil when none), the user operation it
	// belongs to, and an operation queued behind a session refresh.
	out    *reinvite
	proc   *procedure
	queued func()
	st     sessionTimer

	// Video: the open stream (nil when the call has none), its relay
	// parameters, whether our hold removed it, and a peer's pending offer
	// to add it.
	video              *media.Stream
	videoParams        media.VideoParams
	videoAgreed        media.Direction
	videoRemovedByHold bool
	videoReq           *videoRequest

	// Bridge: the leg this call is, and whether the partner's call is held.
	bridge      *bridgeLeg
	partnerHeld bool

	// A 2xx we sent and retransmit until its ACK arrives.
	unacked *pending2xx

	rtpTimer *time.Timer
	rtpSince time.Time // when the agreed direction last changed
}

type pending2xx struct {
	seq      uint32
	res      *gosip.Response
	interval time.Duration
	timer    *time.Timer
	deadline *time.Timer
	offered  bool // the 2xx carried our offer: the ACK brings the answer
}

func newCall(m *Manager, direction string, spec MediaSpec) (*Call, error) {
	cfg := m.config()
	stream, err := m.eng.NewStream(false, spec.Mode == MediaRelay)
	if err != nil {
		if errors.Is(err, media.ErrNoPorts) {
			return nil, ErrNoMediaPorts
		}
		return nil, err
	}
	id := newCallID()
	c := &Call{
		m:     m,
		id:    id,
		log:   m.log.With().Str("call", id).Logger(),
		inbox: make(chan func(), 16),
		done:  make(chan struct{}),
		spec:  spec,
		audio: stream,
	}
	c.local = media.NewLocalSession(uint64(rand.Uint32N(1<<30)), cfg.MediaAddr)
	c.info = CallInfo{
		ID:        id,
		Direction: direction,
		State:     StateCalling,
		Media:     spec.Mode,
		CreatedAt: time.Now().UTC(),
		Audio:     &StreamInfo{Direction: string(media.SendRecv), LocalRTP: netip.AddrPortFrom(cfg.MediaAddr, stream.LocalAddr().Port()).String()},
	}
	if direction == "inbound" {
		c.info.State = StateRinging
	}
	if spec.Mode == MediaRelay {
		c.info.Audio.RelayLocal = stream.RelayLocal().String()
		c.info.Audio.RelayRemote = spec.Relay.String()
	}
	stream.OnDTMF(func(digit string) {
		c.post(func() { c.emit("dtmf", map[string]any{"digit": digit}) })
	})
	c.refresh()
	m.add(c)
	return c, nil
}

func (c *Call) start() { go c.loop() }

// HandleRequest takes an in-dialog request (sip.DialogOwner).
func (c *Call) HandleRequest(req *gosip.Request, tx gosip.ServerTransaction) {
	handled := make(chan struct{})
	if !c.post(func() {
		if !c.onRequest(req, tx, handled) {
			close(handled)
		}
	}) {
		if !req.IsAck() {
			c.m.ep.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		}
		return
	}
	// sipgo ends the transaction when this returns: wait for the answer,
	// which an offer adding video defers, or for a CANCEL.
	select {
	case <-handled:
	case <-tx.Done():
	}
}

func (c *Call) loop() {
	defer close(c.done)
	for f := range c.inbox {
		f()
		c.refresh()
		if c.ended && c.waiting == 0 {
			c.drain()
			return
		}
	}
}

// drain answers what was posted after the end so no sender waits forever.
func (c *Call) drain() {
	for {
		select {
		case f := <-c.inbox:
			f()
		default:
			return
		}
	}
}

// post queues f on the loop; false when the loop has exited.
func (c *Call) post(f func()) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.inbox <- f:
		return true
	case <-c.done:
		return false
	}
}

// run posts f and waits until it ran.
func (c *Call) run(ctx context.Context, f func()) bool {
	ran := make(chan struct{})
	if !c.post(func() { defer close(ran); f() }) {
		return false
	}
	select {
	case <-ran:
		return true
	case <-ctx.Done():
		return false
	case <-c.done:
		select {
		case <-ran:
			return true
		default:
			return false
		}
	}
}

// after runs f on the loop after d, keeping the loop alive until then.
func (c *Call) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() { c.post(f) })
}

// Snapshot is the call as last published by its loop.
func (c *Call) Snapshot() *CallInfo { return c.snap.Load() }

// refresh publishes the loop's view for readers outside it.
func (c *Call) refresh() {
	info := c.info
	if c.info.Video != nil {
		v := *c.info.Video
		v.Stats = streamStats(c.video)
		info.Video = &v
	}
	if c.info.Audio != nil {
		a := *c.info.Audio
		a.Stats = streamStats(c.audio)
		info.Audio = &a
	}
	if c.dlg != nil {
		info.SIPCallID = c.dlg.CallID
		info.LocalURI = c.dlg.Local.String()
		info.RemoteURI = c.dlg.Remote.String()
	}
	c.snap.Store(&info)
	c.live.Store(&liveStreams{audio: c.audio, video: c.video})
}

// liveStreams are the streams behind the last snapshot, whose counters
// readers outside the loop may read at any time (Stream.Stats is safe).
type liveStreams struct{ audio, video *media.Stream }

// Info is the last snapshot with the RTP counters as they are now.
func (c *Call) Info() CallInfo {
	info := *c.Snapshot()
	l := c.live.Load()
	if l == nil || info.State == StateEnded {
		return info
	}
	if info.Audio != nil && l.audio != nil {
		a := *info.Audio
		a.Stats = streamStats(l.audio)
		info.Audio = &a
	}
	if info.Video != nil && l.video != nil {
		v := *info.Video
		v.Stats = streamStats(l.video)
		info.Video = &v
	}
	return info
}

func streamStats(s *media.Stream) *StreamStats {
	if s == nil {
		return nil
	}
	st := s.Stats()
	out := &StreamStats{PacketsSent: st.PacketsSent, BytesSent: st.BytesSent, PacketsReceived: st.PacketsReceived,
		BytesReceived: st.BytesReceived, PacketsLost: st.PacketsLost, JitterMS: float64(st.Jitter.Microseconds()) / 1000}
	if !st.LastReceived.IsZero() {
		t := st.LastReceived.UTC()
		out.LastReceived = &t
	}
	return out
}

func (c *Call) emit(typ string, fields map[string]any) {
	c.refresh()
	c.m.emit(Event{Type: typ, Call: c.Snapshot(), Fields: fields})
}

// end moves the call to ended once, reports it and releases its media.
func (c *Call) end(reason string, status int) {
	if c.ended {
		return
	}
	c.ended = true
	now := time.Now().UTC()
	c.info.State = StateEnded
	c.info.EndedAt = &now
	c.info.EndReason = reason
	c.info.SIPStatus = status
	c.info.Pending = nil
	c.info.Video = nil // no active video on an ended call
	if c.unacked != nil {
		c.unacked.stop()
		c.unacked = nil
	}
	if c.out != nil {
		if c.out.backoff != nil {
			c.out.backoff.Stop()
		}
		if c.out.newVideo != nil {
			c.out.newVideo.Close()
		}
		c.out = nil
	}
	if c.proc != nil {
		c.proc.finish(errEnded)
		c.proc = nil
	}
	c.queued = nil
	if c.videoReq != nil {
		c.videoReq.stop()
		c.videoReq = nil
	}
	if c.st.timer != nil {
		c.st.timer.Stop()
	}
	if c.rtpTimer != nil {
		c.rtpTimer.Stop()
	}
	fields := map[string]any{"reason": reason}
	if status != 0 {
		fields["sip_status"] = status
	}
	c.refresh() // stats before the sockets close
	c.bridgeLegEnded()
	c.closeMedia()
	c.emit("call.ended", fields)
	if c.dlg != nil {
		c.m.ep.Unregister(c.dlg.CallID, c.dlg.LocalTag)
	}
	if c.inviteDone != nil && !c.answered {
		c.releaseInvite()
	}
	if c.self != nil {
		c.self.Store(nil)
	}
	c.m.ended(c)
	c.log.Info().Str("reason", reason).Int("sip_status", status).Msg("call ended")
}

func (c *Call) closeMedia() {
	c.audio.Close()
	for _, v := range []*media.Stream{c.video, c.offeredVideo} {
		if v != nil {
			v.Close()
		}
	}
	c.video, c.offeredVideo = nil, nil
}

func (c *Call) releaseInvite() {
	select {
	case <-c.inviteDone:
	default:
		close(c.inviteDone)
	}
}

// sendBye ends a confirmed dialog from our side. The BYE's transaction runs
// beside the loop; shutdown waits for it.
func (c *Call) sendBye() {
	bye := c.dlg.NewRequest(gosip.BYE, nil)
	c.m.byes.Add(1)
	go func() {
		defer c.m.byes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 64*c.m.ep.T1())
		defer cancel()
		tx, err := c.dlg.Send(ctx, bye)
		if err != nil {
			c.log.Warn().Err(err).Msg("BYE not sent")
			return
		}
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					continue
				}
				c.log.Debug().Int("status", res.StatusCode).Msg("BYE answered")
				return
			case <-tx.Done():
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// hangup ends the call from our side in whatever state it is.
func (c *Call) hangup(reason string) {
	if c.ended {
		return
	}
	switch {
	case c.info.Direction == "inbound" && !c.answered:
		c.dlg.Respond(c.inviteTx, c.inviteReq, 603, "Decline", nil)
		c.releaseInvite()
		c.end(reason, 603)
	case c.info.Direction == "outbound" && !c.established():
		c.cancelling = true
		if c.provisional {
			c.sendCancel()
		}
		c.end(reason, 0)
	default:
		c.sendBye()
		c.end(reason, 0)
	}
}

// established reports whether a 2xx to our INVITE arrived.
func (c *Call) established() bool { return c.remote != nil }

// applyMedia configures the audio stream from the call's negotiated state.
func (c *Call) applyMedia() {
	if c.remote == nil {
		return
	}
	ls, _ := c.local.Stream("audio")
	rs, _ := c.remote.Stream("audio")
	if ls == nil || rs == nil {
		return
	}
	peer := rs.EffectiveDirection()
	agreed := media.FromFlags(ls.Direction.Sends() && peer.Receives(), ls.Direction.Receives() && peer.Sends())
	if agreed != c.agreed {
		// The peer may only now start sending: its silence counts from here.
		c.rtpSince = time.Now()
	}
	c.agreed = agreed
	partnerHold := media.SourceNone
	if c.partnerHeld {
		partnerHold = media.SourceHoldTone
		if c.m.config().BridgeHold == BridgeHoldSilence {
			partnerHold = media.SourceSilence
		}
	}
	c.audio.Configure(media.StreamConfig{
		Mode:        media.Mode(c.spec.Mode),
		Params:      c.params,
		Send:        c.agreed.Sends(),
		Accept:      c.agreed.Receives() && !c.localHold,
		LocalHold:   c.localHold,
		Relay:       c.spec.Relay,
		Bridged:     c.bridge != nil,
		PartnerHold: partnerHold,
		Latching:    c.m.config().RTPLatching,
	})
	c.info.Audio.Direction = string(c.agreed)
	c.info.Audio.Codec = c.params.Send.String()
	c.info.Audio.PayloadType = c.params.SendPT
	if c.params.Remote.IsValid() {
		c.info.Audio.RemoteRTP = c.params.Remote.String()
	}
	c.applyVideo()
	c.takeRemoteHold(ls, rs) // last: its events carry the new directions
	c.syncPartnerHold()
}

// startRTPWatch ends the call when the peer stops sending RTP while it is
// allowed to send (media.rtp_timeout), or while held (media.rtp_hold_timeout).
func (c *Call) startRTPWatch() {
	cfg := c.m.config()
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
		if timeout > 0 && time.Since(last) > timeout {
			c.log.Warn().Dur("silent_for", time.Since(last)).Msg("no RTP from the peer: hanging up")
			c.sendBye()
			c.end(EndTimeout, 0)
			return
		}
		c.rtpTimer = c.after(interval, check)
	}
	c.rtpTimer = c.after(interval, check)
}

// markConnected reports the dialog confirmed and starts watching for RTP.
func (c *Call) markConnected() {
	c.connected = true
	now := time.Now().UTC()
	c.info.ConnectedAt = &now
	c.info.State = StateLive
	c.emit("call.connected", nil)
	if c.rtpSince.IsZero() {
		c.rtpSince = time.Now()
	}
	c.startRTPWatch()
}

func (p *pending2xx) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.deadline != nil {
		p.deadline.Stop()
	}
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
