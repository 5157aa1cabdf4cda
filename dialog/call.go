package dialog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/dialog/clock"
	"uad/media"
	"uad/sip"
	"uad/sip/trace"
)

// Call is one call. Everything below the channels is owned by its loop:
// SIP requests and responses, timer expiries and API commands reach it as
// functions posted to the inbox, run one at a time.
type Call struct {
	m     *Manager
	cfg   *Config // as it was when the call began
	id    string
	log   zerolog.Logger
	clock clock.Clock
	inbox chan func()
	done  chan struct{} // closed when the loop exits
	snap  atomic.Pointer[CallInfo]
	live  atomic.Pointer[liveStreams]
	self  *atomic.Pointer[Call] // cleared at the end, for hooks that outlive the call
	outq  outbox                // requests on their way out, in order

	capture   atomic.Pointer[trace.Ring] // the dialog's SIP messages; nil = none kept
	sipCallID string

	info    CallInfo // what the API sees, kept current by the loop
	dlg     *sip.Dialog
	spec    MediaSpec
	dialect string // hold offer form for this peer (calls.hold_dialect)
	srtp    media.SRTPMode
	local   *media.LocalSession
	remote  *media.RemoteSession
	// remoteIsAnswer: remote answered our offer (else it is the peer's offer).
	remoteIsAnswer bool
	maddr          MediaAddr // the address family and addresses of the call's RTP
	audio          Stream
	params         media.AudioParams
	agreed         media.Direction // last agreed audio direction, our view
	connected      bool            // ACK exchanged
	// Hold is two flags; every direction is derived from them.
	localHold, remoteHold bool
	ended                 bool
	waiting               int // transactions and timers the loop must outlive

	// Outgoing call.
	offeredVideo Stream // video stream of our initial offer, until answered
	invite       *gosip.Request
	inviteCTx    gosip.ClientTransaction
	inviteAck    *gosip.Request // the ACK of the 2xx, sent again on every retransmission
	provisional  bool           // a provisional response arrived: CANCEL is allowed
	retried422   bool           // INVITE re-sent once after 422 Session Interval Too Small
	account      *Account       // the account the call uses, for its credentials
	authTries    int            // INVITEs re-sent with credentials
	cancelling   bool

	// Incoming call.
	inviteReq  *gosip.Request
	inviteTx   gosip.ServerTransaction
	inviteDone chan struct{} // closed once the INVITE has its final response
	offer      *media.RemoteSession
	answered   bool

	// The offer of ours in flight (nil when none), the user operation it
	// belongs to, and work that waits for the dialog to be free of any
	// INVITE transaction and pending offer (RFC 3261 §14.1).
	out    *reinvite
	proc   *procedure
	onIdle []func()
	st     sessionTimer

	// Requests of the peer that arrived ahead of a lower CSeq still to
	// come, released in CSeq order (see receive).
	parked    []incoming
	parkTimer clock.Timer

	// Video: the open stream (nil when the call has none), its relay
	// parameters, whether our hold removed it, and a peer's pending offer
	// to add it.
	video              Stream
	videoParams        media.VideoParams
	videoAgreed        media.Direction
	videoRemovedByHold bool
	videoReq           *videoRequest

	// Bridge: the leg this call is, and whether the partner's call is held.
	bridge      *bridgeLeg
	partnerHeld bool

	// A 2xx we sent and retransmit until its ACK arrives.
	unacked *pending2xx

	rtpTimer clock.Timer
	rtpSince time.Time // when the agreed direction last changed
}

type pending2xx struct {
	seq      uint32
	res      *gosip.Response
	interval time.Duration
	timer    clock.Timer
	deadline clock.Timer
	offered  bool // the 2xx carried our offer: the ACK brings the answer
}

func (p *pending2xx) stop() {
	stopTimer(p.timer)
	stopTimer(p.deadline)
}

func stopTimer(t clock.Timer) {
	if t != nil {
		t.Stop()
	}
}

func newCall(m *Manager, direction string, spec MediaSpec, maddr MediaAddr) (*Call, error) {
	cfg := m.config()
	stream, err := m.med.NewStream(maddr.Bind, false, relayTarget(spec))
	if err != nil {
		if errors.Is(err, media.ErrNoPorts) {
			return nil, ErrNoMediaPorts
		}
		return nil, err
	}
	id := newCallID()
	c := &Call{
		m:     m,
		cfg:   cfg,
		id:    id,
		log:   m.log.With().Str("call", id).Logger(),
		clock: m.clock,
		inbox: make(chan func(), 16),
		done:  make(chan struct{}),
		spec:  spec,
		maddr: maddr,
		audio: stream,
	}
	c.outq.call = c
	c.local = media.NewLocalSession(uint64(rand.Uint32N(1<<30)), maddr.Advertise)
	c.info = CallInfo{
		ID:        id,
		Direction: direction,
		State:     StateCalling,
		Media:     spec.Mode,
		CreatedAt: c.clock.Now().UTC(),
		Audio:     &StreamInfo{Direction: string(media.SendRecv), LocalRTP: netip.AddrPortFrom(maddr.Advertise, stream.LocalAddr().Port()).String()},
	}
	if direction == "inbound" {
		c.info.State = StateRinging
	}
	if spec.Mode == MediaRelay {
		c.info.Audio.RelayLocal = stream.RelayLocal().String()
		c.info.Audio.RelayRemote = spec.Relay.String()
	}
	c.watchStream(stream)
	stream.OnDTMF(func(digit string) {
		c.post(func() { c.emit("dtmf", map[string]any{"digit": digit}) })
	})
	c.refresh()
	m.add(c)
	return c, nil
}

// watchStream ends the call when one of its streams fails.
func (c *Call) watchStream(s Stream) {
	s.OnFault(func(reason string) {
		c.post(func() {
			if !c.ended {
				c.log.Error().Str("reason", reason).Msg("media stream failed: ending the call")
				if o := c.m.observe(); o != nil {
					o.Panic("media")
				}
				c.abort()
			}
		})
	})
}

func (c *Call) start() { go c.loop() }

func (c *Call) loop() {
	defer close(c.done)
	for f := range c.inbox {
		c.safely(f)
		c.refresh()
		if c.ended && c.waiting == 0 {
			c.drain()
			return
		}
	}
}

// safely runs f; a panic in it ends this call, and only this call: it is
// logged with its stack, counted, and the peer gets a BYE.
func (c *Call) safely(f func()) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		c.log.Error().Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).Msg("recovered from a panic: ending the call")
		if o := c.m.observe(); o != nil {
			o.Panic("call")
		}
		c.abort()
	}()
	f()
}

// abort ends the call after a fault, as cleanly as the state allows; a
// second fault on the way is swallowed, the call is ended regardless.
func (c *Call) abort() {
	if c.ended {
		return
	}
	func() {
		defer func() { _ = recover() }()
		c.hangupWith(EndError)
	}()
	if !c.ended {
		func() {
			defer func() { _ = recover() }()
			c.end(EndError, 0)
		}()
	}
	c.ended = true
	c.waiting = 0 // what the failed state was waiting for may never come
}

// drain answers what was posted after the end so no sender waits forever.
func (c *Call) drain() {
	for {
		select {
		case f := <-c.inbox:
			c.safely(f)
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

// after runs f on the loop once d has passed on the call's clock.
func (c *Call) after(d time.Duration, f func()) clock.Timer {
	return c.clock.AfterFunc(d, func() { c.post(f) })
}

// Snapshot is the call as last published by its loop.
func (c *Call) Snapshot() *CallInfo { return c.snap.Load() }

// refresh publishes the loop's view for readers outside it, after every
// step of the loop. Its RTP counters are left out: Info reads them live.
func (c *Call) refresh() { c.publish(false) }

// publish stores a snapshot of the call, with the RTP counters as they are
// now when stats is set (events, and the final snapshot, carry them).
// Without them, an unchanged call keeps its snapshot: most steps of the
// loop change nothing the API shows.
func (c *Call) publish(stats bool) {
	if c.dlg != nil && c.info.SIPCallID == "" {
		c.info.SIPCallID = c.dlg.CallID
		c.info.LocalURI = c.dlg.Local.String()
		c.info.RemoteURI = c.dlg.Remote.String()
	}
	if l := c.live.Load(); l == nil || l.audio != c.audio || l.video != c.video {
		c.live.Store(&liveStreams{audio: c.audio, video: c.video})
	}
	if prev := c.snap.Load(); !stats && prev != nil && sameInfo(&c.info, prev) {
		return
	}
	info := c.info
	if c.info.Video != nil {
		v := *c.info.Video
		if stats {
			v.Stats = streamStats(c.video)
		}
		info.Video = &v
	}
	if c.info.Audio != nil {
		a := *c.info.Audio
		if stats {
			a.Stats = streamStats(c.audio)
		}
		info.Audio = &a
	}
	c.snap.Store(&info)
}

// sameInfo reports whether snapshot b shows what a holds, RTP counters aside.
func sameInfo(a, b *CallInfo) bool {
	x, y := *a, *b
	x.Audio, x.Video, x.Pending, x.ConnectedAt, x.EndedAt = nil, nil, nil, nil, nil
	y.Audio, y.Video, y.Pending, y.ConnectedAt, y.EndedAt = nil, nil, nil, nil, nil
	return x == y && sameStream(a.Audio, b.Audio) && sameStream(a.Video, b.Video) &&
		samePtr(a.Pending, b.Pending) && samePtr(a.ConnectedAt, b.ConnectedAt) && samePtr(a.EndedAt, b.EndedAt)
}

func sameStream(a, b *StreamInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Stats, y.Stats, x.SRTP, y.SRTP = nil, nil, nil, nil
	return x == y && samePtr(a.SRTP, b.SRTP)
}

func samePtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// liveStreams are the streams behind the last snapshot, whose counters
// readers outside the loop may read at any time (Stream.Stats is safe).
type liveStreams struct{ audio, video Stream }

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

func (c *Call) emit(typ string, fields map[string]any) {
	c.publish(true)
	c.m.emit(Event{Type: typ, Call: c.Snapshot(), Fields: fields})
}

// end moves the call to ended once, reports it and releases its media.
func (c *Call) end(reason string, status int) {
	if c.ended {
		return
	}
	c.ended = true
	now := c.clock.Now().UTC()
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
		stopTimer(c.out.backoff)
		if c.out.newVideo != nil {
			c.out.newVideo.Close()
		}
		c.out = nil
	}
	if c.proc != nil {
		c.proc.finish(errEnded)
		c.proc = nil
	}
	c.onIdle = nil
	if c.videoReq != nil {
		c.videoReq.stop()
		c.videoReq = nil
	}
	c.st.stop()
	stopTimer(c.rtpTimer)
	c.releaseParked()
	fields := map[string]any{"reason": reason}
	if status != 0 {
		fields["sip_status"] = status
	}
	c.publish(true) // stats before the sockets close
	c.bridgeLegEnded()
	c.closeMedia()
	c.emit("call.ended", fields)
	if c.dlg != nil {
		c.m.sig.Unregister(c.dlg.CallID, c.dlg.LocalTag)
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

func (c *Call) releaseInvite() {
	select {
	case <-c.inviteDone:
	default:
		close(c.inviteDone)
	}
}

// respond answers a request of this call's dialog.
func (c *Call) respond(tx gosip.ServerTransaction, req *gosip.Request, code int, reason string, body []byte, hdrs ...gosip.Header) *gosip.Response {
	res := c.dlg.Response(req, code, reason, body, hdrs...)
	_ = c.m.sig.Respond(tx, res)
	return res
}

// sendBye ends a confirmed dialog from our side. Shutdown waits for the
// BYE's transaction.
func (c *Call) sendBye() {
	bye := c.dlg.NewRequest(gosip.BYE, nil)
	c.m.byes.Add(1)
	log := c.log
	var once sync.Once
	c.outq.request(bye, sip.TxHooks{
		Response: func(res *gosip.Response) {
			if !res.IsProvisional() {
				log.Debug().Int("status", res.StatusCode).Msg("BYE answered")
				once.Do(c.m.byes.Done)
			}
		},
		Failed: func(err error) {
			log.Warn().Err(err).Msg("BYE got no answer")
			once.Do(c.m.byes.Done)
		},
	})
}

// hangup ends the call from our side in whatever state it is.
func (c *Call) hangup(reason string) {
	if !c.ended {
		c.hangupWith(reason)
	}
}

func (c *Call) hangupWith(reason string) {
	switch {
	case c.info.Direction == "inbound" && !c.answered:
		if c.dlg != nil && c.inviteTx != nil {
			c.respond(c.inviteTx, c.inviteReq, 603, "Decline", nil)
		}
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
