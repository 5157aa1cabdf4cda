package dialog

import (
	"context"
	"math/rand/v2"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
)

// Operations a call can have in flight (the call object's "pending").
const (
	opHold   = "hold"
	opUnhold = "unhold"
)

// maxGlareRetries bounds re-INVITE retries after 491 (RFC 3261 §14.1).
const maxGlareRetries = 3

// ErrNotHolder refuses a resume by the side that did not hold.
var ErrNotHolder = &StateError{Msg: "only the side that held the call can resume it"}

// reinvite is one session change we offer: hold or unhold, with what to
// restore if the peer refuses it.
type reinvite struct {
	op         string
	wantHold   bool
	done       chan error // the API caller's answer; buffered
	tries      int
	backoff    *time.Timer // set while waiting to retry after 491
	req        *gosip.Request
	prev       []media.LocalStream // our m-lines before the offer, restored on failure
	prevLegacy bool
}

// rollback restores our SDP as it was before r's offer.
func (c *Call) rollback(r *reinvite) {
	c.rollback(r)
	c.local.LegacyHold = r.prevLegacy
}

func (r *reinvite) finish(err error) {
	if r.done != nil {
		r.done <- err
		r.done = nil
	}
}

// errReplaced answers a request overtaken by a newer one during a 491 back-off.
var errReplaced = &StateError{Msg: "replaced by a newer hold/unhold request"}

// requestHold starts a hold (want=true) or unhold; the returned channel
// gets the outcome. It runs on the loop.
func (c *Call) requestHold(want bool) (<-chan error, error) {
	op := opUnhold
	if want {
		op = opHold
	}
	if c.ended {
		return nil, &StateError{Msg: "the call has ended"}
	}
	if !c.connected {
		return nil, &StateError{Msg: op + ": the call is not live yet"}
	}
	if r := c.out; r != nil && r.op == opRefresh {
		// Never race our own session refresh: go right after it.
		if c.next != nil {
			return nil, &StateError{Msg: op + ": another change of this call is in flight (" + c.next.op + ")"}
		}
		c.next = &reinvite{op: op, wantHold: want, done: make(chan error, 1)}
		return c.next.done, nil
	}
	if r := c.out; r != nil {
		if r.backoff == nil {
			return nil, &StateError{Msg: op + ": another change of this call is in flight (" + r.op + ")"}
		}
		// A newer user request replaces the one waiting out a 491.
		r.backoff.Stop()
		r.finish(errReplaced)
		c.out = nil
		c.info.Pending = nil
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
	if c.unacked != nil {
		return nil, &StateError{Msg: op + ": the previous offer/answer is not complete yet"}
	}
	r := &reinvite{op: op, wantHold: want, done: make(chan error, 1)}
	c.startReinvite(r)
	return r.done, nil
}

func (c *Call) startReinvite(r *reinvite) {
	c.out = r
	if r.op != opRefresh {
		c.info.Pending = &r.op
	}
	c.sendReinvite(r)
}

// startNext starts the user request that waited for a session refresh.
func (c *Call) startNext() {
	r := c.next
	if r == nil {
		return
	}
	c.next = nil
	if r.wantHold == c.localHold {
		r.finish(nil)
		return
	}
	c.startReinvite(r)
}

func closedErr(err error) <-chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// Hold dialects (calls.hold_dialect): how our hold offers look.
const (
	DialectSendOnly = "sendonly"
	DialectInactive = "inactive"
	DialectLegacy   = "legacy"
)

// offerDirection is the audio direction we offer for a hold state (RFC
// 6337 §5.3: a side that does not hold offers sendrecv even while held).
func (c *Call) offerDirection(localHold bool) media.Direction {
	return media.FromFlags(!(localHold && c.remoteHold) && c.holdSends(localHold), !localHold)
}

// holdSends reports whether we send (the hold tone) while holding: not in
// the inactive dialect.
func (c *Call) holdSends(localHold bool) bool {
	return !localHold || c.dialect != DialectInactive
}

func (c *Call) sendReinvite(r *reinvite) {
	r.tries++
	r.backoff = nil
	r.prev = append([]media.LocalStream(nil), c.local.Streams...)
	streams := append([]media.LocalStream(nil), c.local.Streams...)
	for i := range streams {
		if streams[i].Port != 0 {
			streams[i].Direction = c.offerDirection(r.wantHold)
		}
	}
	c.local.Streams = streams
	prevLegacy := c.local.LegacyHold
	c.local.LegacyHold = r.wantHold && c.dialect == DialectLegacy
	r.req = c.dlg.NewRequest(gosip.INVITE, c.local.Marshal())
	r.prevLegacy = prevLegacy
	r.req.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	for _, h := range c.timerHeadersForRequest() {
		r.req.AppendHeader(h)
	}
	tx, err := c.dlg.Send(context.Background(), r.req)
	if err != nil {
		c.rollback(r)
		c.reinviteFailed(r, 0, err)
		return
	}
	c.waiting++
	go func() {
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					continue
				}
				c.post(func() { c.onReinviteResponse(r, tx, res) })
			case <-tx.Done():
				err := tx.Err()
				c.post(func() { c.waiting--; c.onReinviteDone(r, err) })
				return
			}
		}
	}()
}

func (c *Call) onReinviteResponse(r *reinvite, tx gosip.ClientTransaction, res *gosip.Response) {
	if c.out != r || c.ended {
		if res.IsSuccess() && !c.ended {
			c.writeAck(c.dlg.NewAck(r.req.CSeq().SeqNo, nil))
		}
		return
	}
	switch {
	case res.IsSuccess():
		ack := c.dlg.NewAck(r.req.CSeq().SeqNo, nil)
		c.writeAck(ack)
		tx.OnRetransmission(func(*gosip.Response) { c.writeAck(ack) })
		if ct := res.Contact(); ct != nil {
			c.dlg.RemoteTarget = ct.Address
		}
		remote, err := media.ParseRemote(res.Body())
		if err == nil {
			prevRemote := c.remote
			c.remote = remote
			if err = c.negotiateAnswer(); err != nil {
				c.remote = prevRemote
			}
		}
		if err != nil {
			// The peer agreed to something we cannot use: the sessions now
			// disagree, so end the call rather than lie about its state.
			c.log.Warn().Err(err).Msg("unusable answer to our re-INVITE: hanging up")
			c.out = nil
			r.finish(&SIPError{Status: 488, Reason: "unusable answer"})
			c.sendBye()
			c.end(EndError, 488)
			return
		}
		c.out = nil
		c.info.Pending = nil
		c.takeResponseTimer(res)
		c.localHold = r.wantHold
		c.info.LocalHold = r.wantHold
		c.applyMedia()
		if r.op == opRefresh {
			c.startNext()
			return
		}
		if r.wantHold {
			c.info.State = StateHold
			c.emit("hold.success", nil)
		} else {
			c.info.State = StateLive
			c.emit("unhold.success", nil)
		}
		r.finish(nil)
	case res.StatusCode == 491 && r.tries <= maxGlareRetries:
		c.rollback(r)
		c.glareRetry(r)
	default:
		c.rollback(r)
		c.reinviteFailed(r, res.StatusCode, &SIPError{Status: res.StatusCode, Reason: res.Reason})
	}
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
	r.backoff = c.after(wait, func() {
		if c.out == r && !c.ended {
			c.sendReinvite(r)
		}
	})
}

func (c *Call) onReinviteDone(r *reinvite, err error) {
	if c.out != r || c.ended || r.backoff != nil {
		return
	}
	c.rollback(r)
	c.reinviteFailed(r, 408, ErrNoAnswer)
}

// reinviteFailed applies the failure rules: 408, 481 and timeouts end the
// call (RFC 3261 §12.2.1.2); other refusals leave the session as it was,
// except that a failed unhold hangs up unless calls.unhold_failure is keep.
func (c *Call) reinviteFailed(r *reinvite, status int, err error) {
	c.out = nil
	c.info.Pending = nil
	if r.op == opRefresh {
		// A session that cannot be refreshed is over (RFC 4028 §10).
		c.log.Warn().Int("status", status).Err(err).Msg("session refresh failed: hanging up")
		if status != 481 {
			c.sendBye()
		}
		c.end(EndError, status)
		return
	}
	fields := map[string]any{}
	if status != 0 {
		fields["sip_status"] = status
	}
	c.emit(r.op+".failed", fields)
	r.finish(err)
	c.log.Info().Str("op", r.op).Int("status", status).Err(err).Msg("re-INVITE failed")
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
	case r.op == opUnhold && c.m.config().UnholdFailure != UnholdKeep:
		c.sendBye()
		c.end(EndError, status)
	}
}

// UnholdKeep keeps a call held when its unhold fails (calls.unhold_failure).
const UnholdKeep = "keep"
