package dialog

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/dialog/clock"
	"uad/media"
	"uad/sip"
)

// Operations a call can have in flight (the call object's "pending").
const (
	opHold        = "hold"
	opUnhold      = "unhold"
	opVideoRemove = "video-remove"
	opVideoAdd    = "video-add"
	opVideoReq    = "video-request"
	opRefresh     = "refresh" // session timer; not shown as pending
	opRekey       = "rekey"   // new SRTP keys (srtp.go)
)

// Steps: one re-INVITE each. A procedure (hold on a video call, say) is a
// chain of steps.
const (
	stepAudio    = "audio"     // offer the audio direction of a hold state
	stepVideoOff = "video-off" // the video m-line to port 0
	stepVideoOn  = "video-on"  // video back in its slot (or a new m-line)
	stepRekey    = "rekey"     // every SRTP m-line with new keys
)

// maxGlareRetries bounds re-INVITE retries after 491 (RFC 3261 §14.1).
const maxGlareRetries = 3

// UnholdKeep keeps a call held when its unhold fails (calls.unhold_failure).
const UnholdKeep = "keep"

// Hold dialects (calls.hold_dialect): how our hold offers look.
const (
	DialectSendOnly = "sendonly"
	DialectInactive = "inactive"
	DialectLegacy   = "legacy"
)

// ErrNotHolder refuses a resume by the side that did not hold.
var ErrNotHolder = &StateError{Msg: "only the side that held the call can resume it"}

// errReplaced answers a request overtaken by a newer one during a 491 back-off.
var errReplaced = &StateError{Msg: "replaced by a newer hold/unhold request"}

// reinvite is one offer of ours in flight, with what to restore if the peer
// refuses it and what the procedure does next.
type reinvite struct {
	op        string // the operation it belongs to
	step      string
	wantHold  bool // stepAudio: the hold state offered
	tries     int
	backoff   clock.Timer     // set while waiting to retry after 491
	authFrom  *gosip.Response // a 401/407 the next send answers
	authTries int
	sentAt    time.Time // when the current try was sent, for the latency metric
	req       *gosip.Request
	then      func(status int, err error) // outcome: status 200 and nil on success

	prev       []media.LocalStream // our m-lines before the offer
	prevLegacy bool
	newVideo   Stream // opened for a stepVideoOn offer
}

// procedure is a user operation made of steps, and its API caller.
type procedure struct {
	op   string
	done chan error // buffered; nil for background work
}

func (p *procedure) finish(err error) {
	if p.done != nil {
		p.done <- err
		p.done = nil
	}
}

func closedErr(err error) <-chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// busy refuses a new operation while another is in flight (409).
func (c *Call) busy(op string) error {
	if c.ended {
		return errEnded
	}
	if !c.connected {
		return &StateError{Msg: op + ": the call is not live yet"}
	}
	if c.proc != nil {
		return &StateError{Msg: op + ": another change of this call is in flight (" + c.proc.op + ")"}
	}
	if c.videoReq != nil {
		return &StateError{Msg: op + ": the peer's video offer awaits a reply"}
	}
	return nil
}

// begin starts a user operation. It waits while the dialog has an INVITE
// transaction or an offer in progress (our session refresh, our 2xx whose
// ACK is still to come): RFC 3261 §14.1 allows one at a time.
func (c *Call) begin(op string, start func(p *procedure)) (<-chan error, error) {
	if err := c.busy(op); err != nil {
		return nil, err
	}
	p := &procedure{op: op, done: make(chan error, 1)}
	done := p.done
	c.proc = p
	c.info.Pending = &p.op
	c.whenIdle(func() {
		if c.proc == p {
			start(p)
		}
	})
	return done, nil
}

// idle reports whether the dialog has no INVITE transaction and no offer
// in progress, either way.
func (c *Call) idle() bool {
	return c.out == nil && c.unacked == nil && c.videoReq == nil && !c.ended &&
		(c.info.Direction != "inbound" || c.answered)
}

// whenIdle queues f (if any) and runs what waits, in order, while the
// dialog is idle; a session refresh that fell due meanwhile goes last.
func (c *Call) whenIdle(f ...func()) {
	c.onIdle = append(c.onIdle, f...)
	for c.idle() && len(c.onIdle) > 0 {
		next := c.onIdle[0]
		c.onIdle = c.onIdle[1:]
		next()
	}
	if c.idle() && c.st.due {
		c.refreshSession()
	}
}

// succeed ends a procedure well.
func (c *Call) succeed(p *procedure, event string) {
	if c.proc == p {
		c.proc = nil
		c.info.Pending = nil
	}
	if event != "" {
		c.emit(event, nil)
	}
	p.finish(nil)
}

// fail ends a procedure badly and applies the failure rules: 408, 481 and
// timeouts end the call (RFC 3261 §12.2.1.2); other refusals leave the
// session as it was, except that a failed unhold hangs up unless
// calls.unhold_failure is keep.
func (c *Call) fail(p *procedure, event string, status int, err error) {
	if c.proc == p {
		c.proc = nil
		c.info.Pending = nil
	}
	if event != "" {
		fields := map[string]any{}
		if status != 0 {
			fields["sip_status"] = status
		}
		c.emit(event, fields)
	}
	p.finish(err)
	c.log.Info().Str("op", p.op).Int("status", status).Err(err).Msg("re-INVITE failed")
	if c.ended {
		return
	}
	if _, local := errors.AsType[*SendError](err); local {
		return // never sent: the session is as it was (RFC 3261 §8.1.3.1)
	}
	switch {
	case status == 481:
		c.end(EndError, status)
	case status == 408 || status == 0:
		c.sendBye()
		reason := EndTimeout
		if status == 0 {
			reason = EndError
		}
		c.end(reason, status)
	case p.op == opUnhold && c.cfg.UnholdFailure != UnholdKeep:
		c.sendBye()
		c.end(EndError, status)
	}
}

// replaceWaiting drops a hold/unhold that waits out a 491 back-off: a
// newer user request replaces it.
func (c *Call) replaceWaiting() {
	if c.proc == nil || c.out == nil || c.out.backoff == nil || (c.proc.op != opHold && c.proc.op != opUnhold) {
		return
	}
	stopTimer(c.out.backoff)
	c.rollback(c.out)
	c.out = nil
	c.proc.finish(errReplaced)
	c.proc = nil
	c.info.Pending = nil
}

// requestHold starts a hold (want=true) or unhold; the returned channel
// gets the outcome. It runs on the loop.
func (c *Call) requestHold(want bool) (<-chan error, error) {
	op := opUnhold
	if want {
		op = opHold
	}
	c.replaceWaiting()
	if err := c.busy(op); err != nil {
		return nil, err
	}
	if !want && !c.localHold {
		if c.remoteHold {
			return nil, ErrNotHolder
		}
		return closedErr(nil), nil // already live: a no-op
	}
	if want && c.localHold {
		return closedErr(nil), nil
	}
	if want {
		return c.begin(op, c.holdProcedure)
	}
	return c.begin(op, c.unholdProcedure)
}

// holdProcedure: a video call is never held as video. Video goes first
// (port 0), then the audio is held; if the audio hold is refused, video is
// offered back (hold-and-video.md).
func (c *Call) holdProcedure(p *procedure) {
	holdAudio := func() {
		videoWasOn := c.videoRemovedByHold
		c.step(&reinvite{op: p.op, step: stepAudio, wantHold: true}, func(status int, err error) {
			if err != nil {
				c.fail(p, "hold.failed", status, err)
				if videoWasOn && !c.ended {
					c.videoRemovedByHold = false
					c.background(opVideoAdd, stepVideoOn)
				}
				return
			}
			c.info.State = StateHold
			c.succeed(p, "hold.success")
		})
	}
	if c.video == nil {
		holdAudio()
		return
	}
	c.step(&reinvite{op: p.op, step: stepVideoOff}, func(status int, err error) {
		if err != nil {
			c.fail(p, "hold.failed", status, err)
			return
		}
		c.videoRemovedByHold = true
		holdAudio()
	})
}

// unholdProcedure resumes the audio; video removed by our hold is offered
// back afterwards, unless the peer still holds us (mutual hold).
func (c *Call) unholdProcedure(p *procedure) {
	c.step(&reinvite{op: p.op, step: stepAudio, wantHold: false}, func(status int, err error) {
		if err != nil {
			c.fail(p, "unhold.failed", status, err)
			return
		}
		c.info.State = StateLive
		c.succeed(p, "unhold.success")
		if c.videoRemovedByHold {
			c.videoRemovedByHold = false
			if !c.remoteHold && c.video == nil {
				c.background(opVideoAdd, stepVideoOn)
			}
		}
	})
}

// requestVideo removes (add=false) or offers (add=true) video.
func (c *Call) requestVideo(add bool) (<-chan error, error) {
	op := opVideoRemove
	if add {
		op = opVideoAdd
	}
	if err := c.busy(op); err != nil {
		return nil, err
	}
	switch {
	case add && c.video != nil, !add && c.video == nil:
		return closedErr(nil), nil
	case add && c.localHold:
		return nil, &StateError{Msg: "video-add: the call is held; resume it first"}
	}
	step := stepVideoOff
	if add {
		step = stepVideoOn
	}
	return c.beginStep(op, step)
}

// beginStep starts a user operation of one re-INVITE.
func (c *Call) beginStep(op, step string) (<-chan error, error) {
	return c.begin(op, func(p *procedure) {
		c.step(&reinvite{op: p.op, step: step}, func(status int, err error) {
			if err != nil {
				c.fail(p, "", status, err)
				return
			}
			c.succeed(p, "")
		})
	})
}

// background runs a one-step operation nobody waits for.
func (c *Call) background(op, step string) {
	if c.busy(op) != nil {
		return
	}
	p := &procedure{op: op}
	c.proc = p
	c.info.Pending = &p.op
	c.whenIdle(func() {
		if c.proc != p {
			return
		}
		c.step(&reinvite{op: op, step: step}, func(status int, err error) {
			if err != nil {
				c.fail(p, "", status, err)
				return
			}
			c.succeed(p, "")
		})
	})
}

// refreshSession re-offers the session unchanged, keeping the hold state
// exactly (RFC 6337 §5.3). It waits while anything else is in progress: a
// user's re-INVITE refreshes the session itself. RFC 4028 §10: only a 408,
// a 481 or no answer end the session; 422 is retried with the peer's
// Min-SE; other refusals are retried until the session would expire.
func (c *Call) refreshSession() {
	if c.ended {
		return
	}
	c.st.due = true
	if !c.idle() {
		return
	}
	c.st.due = false
	c.step(&reinvite{op: opRefresh, step: stepAudio, wantHold: c.localHold}, func(status int, err error) {
		if err == nil || c.ended {
			return
		}
		_, local := errors.AsType[*SendError](err)
		switch {
		case !local && (status == 481 || status == 408 || errors.Is(err, ErrNoAnswer)):
			c.log.Warn().Int("status", status).Err(err).Msg("session refresh failed: hanging up")
			if status != 481 {
				c.sendBye()
			}
			reason := EndTimeout
			if status == 481 {
				reason = EndError
			}
			c.end(reason, status)
		case status == 422 && c.st.tries422 < 2:
			// Asked for at least Min-SE: ask again at once with it (RFC 4028 §7.4).
			if minSE, _, ok := parseSessionExpires(c.st.lastMinSE); ok && minSE > c.st.interval {
				c.st.tries422++
				c.st.interval = minSE
				c.refreshSession()
				return
			}
			c.retryRefresh(0)
		default:
			c.retryRefresh(c.st.retryAfter)
		}
	})
}

// retryRefresh tries the refresh again after wait (a default when 0),
// unless the session would be over by then: its expiry timer ends it.
func (c *Call) retryRefresh(wait time.Duration) {
	c.st.retryAfter = 0
	if wait <= 0 {
		wait = min(max(c.st.interval/16, 2*time.Second), 30*time.Second)
	}
	if c.clock.Now().Add(wait).After(c.st.deadline) {
		c.log.Warn().Msg("session refresh failed; the session ends when it expires")
		return
	}
	c.log.Info().Dur("retry_in", wait).Msg("session refresh refused: trying again")
	stopTimer(c.st.timer)
	c.st.timer = c.after(wait, c.refreshSession)
}

// noteRefusal keeps what a refused session refresh says for its retry:
// Min-SE of a 422, Retry-After of others.
func (c *Call) noteRefusal(r *reinvite, res *gosip.Response) {
	if r.op != opRefresh {
		return
	}
	c.st.lastMinSE = headerValue(res, "Min-SE")
	if secs, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(headerValue(res, "Retry-After"), ";", 2)[0])); err == nil && secs >= 0 {
		c.st.retryAfter = time.Duration(secs) * time.Second
	}
}

// offerDirection is the audio direction we offer for a hold state (RFC
// 6337 §5.3: a side that does not hold offers sendrecv even while held).
func (c *Call) offerDirection(localHold bool) media.Direction {
	return media.FromFlags(!(localHold && c.remoteHold) && c.holdSends(localHold), !localHold)
}

// holdSends reports whether we send (the hold tone) while holding: not in
// the inactive dialect, nor when the call's codec is one uad passes through
// and cannot play a tone in.
func (c *Call) holdSends(localHold bool) bool {
	return !localHold || c.dialect != DialectInactive && c.params.Send.Known()
}

// rollback restores our SDP as it was before r's offer.
func (c *Call) rollback(r *reinvite) {
	c.local.Streams = r.prev
	c.local.LegacyHold = r.prevLegacy
	if r.newVideo != nil {
		r.newVideo.Close()
		r.newVideo = nil
	}
}

// step sends one offer; then gets its outcome once the peer answered.
// What waited for the dialog to be free goes on after it.
func (c *Call) step(r *reinvite, then func(status int, err error)) {
	r.then = func(status int, err error) {
		then(status, err)
		c.whenIdle()
	}
	c.out = r
	c.sendReinvite(r)
}

// prepareOffer edits our m-lines for r's offer.
func (c *Call) prepareOffer(r *reinvite) error {
	r.prev = append([]media.LocalStream(nil), c.local.Streams...)
	r.prevLegacy = c.local.LegacyHold
	streams := append([]media.LocalStream(nil), c.local.Streams...)
	hold := c.localHold
	if r.step == stepAudio {
		hold = r.wantHold
	}
	if a, ai := c.local.Active("audio"); a != nil {
		streams[ai].Direction = c.offerDirection(hold)
	}
	_, vi := c.local.Stream("video")
	switch r.step {
	case stepVideoOff:
		if _, open := c.local.Active("video"); open >= 0 {
			streams[open].Port = 0 // the m-line stays, with its formats (RFC 3264 §8.2)
		}
	case stepRekey:
		rekeyStreams(streams)
	case stepVideoOn:
		stream, err := c.newStream(true)
		if err != nil {
			return ErrNoMediaPorts
		}
		c.watchStream(stream)
		r.newVideo = stream
		slot := c.offerSlot("video", int(stream.LocalAddr().Port()), media.VideoFormats())
		if vi >= 0 {
			streams[vi] = slot // reuse the disabled slot (RFC 3264 §8.1)
		} else {
			streams = append(streams, slot)
		}
	}
	c.local.Streams = streams
	c.local.LegacyHold = hold && c.dialect == DialectLegacy
	return nil
}

func (c *Call) sendReinvite(r *reinvite) {
	r.tries++
	r.backoff = nil
	if err := c.prepareOffer(r); err != nil {
		c.out = nil
		c.local.Streams = r.prev
		r.then(503, err)
		return
	}
	r.req = c.dlg.NewRequest(gosip.INVITE, c.local.Marshal())
	r.req.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	r.req.AppendHeader(gosip.NewHeader("Supported", sip.Supported))
	for _, h := range c.timerHeadersForRequest() {
		r.req.AppendHeader(h)
	}
	if r.authFrom != nil && c.account != nil {
		if err := sip.Authorize(r.req, r.authFrom, c.account.Username, c.account.Password); err != nil {
			c.log.Warn().Err(err).Msg("cannot answer the challenge to our re-INVITE")
		}
		r.authFrom = nil
	}
	r.sentAt = c.clock.Now()
	req := r.req
	c.outq.request(req, c.onLoop(
		func(res *gosip.Response) { c.onReinviteResponse(r, req, res) },
		func(err error) { c.onReinviteDone(r, req, err) }))
}

func (c *Call) onReinviteResponse(r *reinvite, req *gosip.Request, res *gosip.Response) {
	if res.IsProvisional() {
		return
	}
	current := c.out == r && r.req == req && !c.ended
	if res.IsSuccess() {
		// Every 2xx is ACKed, a retransmission or one that arrives after
		// the call moved on too (RFC 3261 §13.2.2.4), at the target it sets.
		c.dlg.RefreshTarget(res)
		c.writeAck(c.dlg.NewAck(req.CSeq().SeqNo, nil))
		if !current {
			if r.newVideo != nil && c.out != r {
				r.newVideo.Close()
				r.newVideo = nil
			}
			return
		}
	} else if !current {
		return
	}
	if o := c.m.observe(); o != nil {
		o.ReinviteDone(r.op, res.StatusCode, c.clock.Now().Sub(r.sentAt))
	}
	switch {
	case res.IsSuccess():
		c.out = nil
		report, err := c.takeAnswer(r, res)
		if err != nil {
			// The peer agreed to something we cannot use: the sessions now
			// disagree, so end the call rather than lie about its state.
			c.log.Warn().Err(err).Msg("unusable answer to our re-INVITE: hanging up")
			c.sendBye()
			c.end(EndError, 488)
			r.then(488, &SIPError{Status: 488, Reason: "unusable answer"})
			return
		}
		c.takeResponseTimer(res)
		r.then(200, nil)
		if report != nil && !c.ended {
			report()
		}
	case (res.StatusCode == 401 || res.StatusCode == 407) && c.account != nil && r.authTries < 2:
		// A registrar or proxy may challenge a re-INVITE too.
		c.rollback(r)
		r.authTries++
		r.authFrom = res
		c.sendReinvite(r)
	case res.StatusCode == 491 && r.tries <= maxGlareRetries:
		c.rollback(r)
		c.glareRetry(r)
	default:
		c.rollback(r)
		c.out = nil
		c.noteRefusal(r, res)
		r.then(res.StatusCode, &SIPError{Status: res.StatusCode, Reason: res.Reason})
	}
}

// takeAnswer applies the answer to one of our offers. It returns what
// reports the outcome of a video offer, for after the operation is done,
// so that the event and the call's state agree.
func (c *Call) takeAnswer(r *reinvite, res *gosip.Response) (report func(), err error) {
	remote, err := c.parseRemote(res.Body())
	if err != nil {
		return nil, err
	}
	prevRemote := c.remote
	c.remote = remote
	if err := c.negotiateAnswer(); err != nil {
		c.remote = prevRemote
		return nil, err
	}
	if r.step == stepAudio {
		c.localHold = r.wantHold
		c.info.LocalHold = r.wantHold
	}
	switch r.step {
	case stepVideoOff:
		c.closeVideo("local")
	case stepVideoOn:
		stream := r.newVideo
		r.newVideo = nil
		report = func() {
			c.emit("video.opened", nil)
			c.requestKeyFrame()
		}
		if !c.openVideo(stream) {
			stream.Close()
			if _, vi := c.local.Stream("video"); vi >= 0 {
				c.local.Streams[vi].Port = 0
			}
			report = func() { c.emit("video.rejected", nil) }
		}
	}
	c.applyMedia()
	return report, nil
}

// glareRetry waits 2.1–4 s when we created the Call-ID, else 0–2 s (RFC 3261 §14.1).
func (c *Call) glareRetry(r *reinvite) {
	var wait time.Duration
	if c.info.Direction == "outbound" {
		wait = 2100*time.Millisecond + rand.N(1900*time.Millisecond)
	} else {
		wait = rand.N(2 * time.Second)
	}
	c.log.Info().Str("op", r.op).Dur("retry_in", wait).Msg("glare (491): retrying")
	if o := c.m.observe(); o != nil {
		o.GlareRetry()
	}
	r.backoff = c.after(wait, func() {
		if c.out == r && !c.ended {
			c.sendReinvite(r)
		}
	})
}

func (c *Call) onReinviteDone(r *reinvite, req *gosip.Request, err error) {
	if c.out != r || r.req != req || c.ended || r.backoff != nil {
		return
	}
	c.rollback(r)
	c.out = nil
	if se, local := errors.AsType[*SendError](err); local {
		c.log.Warn().Err(err).Str("op", r.op).Msg("re-INVITE not sent")
		r.then(503, se)
		return
	}
	c.log.Info().Err(err).Str("op", r.op).Msg("re-INVITE got no final response")
	r.then(408, ErrNoAnswer)
}
