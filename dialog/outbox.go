package dialog

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	gosip "github.com/emiago/sipgo/sip"

	"uad/sip"
)

// outbox sends a call's requests off its loop, one after the other: the
// loop never waits on a name lookup or a TCP/TLS connection, and the peer
// gets the requests in the order the loop made them (an ACK before the
// next re-INVITE).
type outbox struct {
	call    *Call
	mu      sync.Mutex
	queue   []func()
	running bool
}

// SendError is a request that never left uad (no route, no connection).
// RFC 3261 §8.1.3.1 treats it as a 503 from the next hop, not as the
// peer's refusal.
type SendError struct{ Err error }

func (e *SendError) Error() string { return "request not sent: " + e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// sendContext bounds the lookup and connection of one request.
func (c *Call) sendContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 64*c.m.sig.T1())
}

// request sends req in a client transaction; hooks run off the loop.
func (o *outbox) request(req *gosip.Request, hooks sip.TxHooks) {
	c := o.call
	o.push(func() {
		ctx, cancel := c.sendContext()
		defer cancel()
		if err := c.m.sig.Request(ctx, req, hooks); err != nil {
			hooks.Failed(&SendError{Err: err})
		}
	})
}

// write sends an ACK.
func (o *outbox) write(req *gosip.Request) {
	c := o.call
	o.push(func() {
		ctx, cancel := c.sendContext()
		defer cancel()
		if err := c.m.sig.Write(ctx, req); err != nil {
			c.log.Warn().Err(err).Str("method", string(req.Method)).Msg("request not sent")
		}
	})
}

// cancel sends the CANCEL of inv, built once inv went out with its Via.
func (o *outbox) cancel(inv *gosip.Request) {
	c := o.call
	o.push(func() {
		hooks := sip.TxHooks{Response: func(*gosip.Response) {}, Failed: func(err error) {
			c.log.Info().Err(err).Msg("CANCEL got no answer")
		}}
		ctx, cancel := c.sendContext()
		defer cancel()
		if err := c.m.sig.Cancel(ctx, sip.NewCancel(inv), hooks); err != nil {
			c.log.Warn().Err(err).Msg("CANCEL not sent")
		}
	})
}

func (o *outbox) push(job func()) {
	o.mu.Lock()
	o.queue = append(o.queue, job)
	start := !o.running
	o.running = true
	o.mu.Unlock()
	if start {
		go o.drain()
	}
}

func (o *outbox) drain() {
	for {
		o.mu.Lock()
		if len(o.queue) == 0 {
			o.running = false
			o.mu.Unlock()
			return
		}
		job := o.queue[0]
		o.queue[0] = nil
		o.queue = o.queue[1:]
		o.mu.Unlock()
		o.run(job)
	}
}

// run runs one job; a panic in it ends the call, not the process.
func (o *outbox) run(job func()) {
	defer func() {
		if v := recover(); v != nil {
			c := o.call
			c.log.Error().Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).Msg("recovered from a panic sending a request: ending the call")
			if ob := c.m.observe(); ob != nil {
				ob.Panic("call")
			}
			c.post(c.abort)
		}
	}()
	job()
}

// onLoop wraps a transaction's hooks so they run on the call's loop.
// While the transaction lasts the loop outlives the call's end (waiting):
// a 2xx that crosses our CANCEL or BYE must still be ACKed.
func (c *Call) onLoop(response func(*gosip.Response), failed func(error)) sip.TxHooks {
	c.waiting++
	var once sync.Once
	finish := func() { once.Do(func() { c.post(func() { c.waiting-- }) }) }
	return sip.TxHooks{
		Response: func(res *gosip.Response) {
			c.post(func() { response(res) })
			if !res.IsProvisional() {
				finish()
			}
		},
		Failed: func(err error) {
			c.post(func() { failed(err) })
			finish()
		},
	}
}
