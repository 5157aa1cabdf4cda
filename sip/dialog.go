package sip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"

	gosip "github.com/emiago/sipgo/sip"
)

// Dialog is the RFC 3261 §12 state of one SIP dialog, for either role. It is
// owned by one goroutine (the call's loop): it has no locks.
type Dialog struct {
	ep *Endpoint

	CallID    string
	LocalTag  string
	RemoteTag string
	Local     gosip.Uri // our From (UAC) or To (UAS) address
	Remote    gosip.Uri
	// RemoteTarget is the peer's Contact, refreshed by target-refresh requests.
	RemoteTarget gosip.Uri
	// RouteSet is frozen when the dialog is established.
	RouteSet  []gosip.Uri
	LocalSeq  uint32
	RemoteSeq uint32
	Transport string // "UDP" or "TCP"
	User      string // user part of our Contact
}

// NewUACDialog starts the dialog of an outgoing call to target.
func (e *Endpoint) NewUACDialog(target, from gosip.Uri, transport string) *Dialog {
	to := target
	to.UriParams, to.Headers = nil, nil
	return &Dialog{
		ep:           e,
		CallID:       randomID(24),
		LocalTag:     gosip.GenerateTagN(16),
		Local:        from,
		Remote:       to,
		RemoteTarget: target,
		LocalSeq:     rand.Uint32N(1 << 15),
		Transport:    strings.ToUpper(transport),
		User:         from.User,
	}
}

// NewUASDialog builds the dialog an incoming INVITE asks for, with a new local tag.
func (e *Endpoint) NewUASDialog(inv *gosip.Request) (*Dialog, error) {
	from, to, contact := inv.From(), inv.To(), inv.Contact()
	if contact == nil {
		return nil, fmt.Errorf("INVITE has no Contact")
	}
	remoteTag, _ := from.Params.Get("tag")
	d := &Dialog{
		ep:           e,
		CallID:       inv.CallID().Value(),
		LocalTag:     gosip.GenerateTagN(16),
		RemoteTag:    remoteTag,
		Local:        to.Address,
		Remote:       from.Address,
		RemoteTarget: contact.Address,
		RemoteSeq:    inv.CSeq().SeqNo,
		LocalSeq:     rand.Uint32N(1 << 15),
		Transport:    strings.ToUpper(inv.Transport()),
		User:         "uad",
	}
	for _, rr := range inv.GetHeaders("Record-Route") {
		d.RouteSet = append(d.RouteSet, parseRoutes(rr.Value())...)
	}
	return d, nil
}

// Established records what a 2xx to our INVITE fixes: the remote tag, the
// remote target and the route set (Record-Route in reverse, RFC 3261 §12.1.2).
func (d *Dialog) Established(res *gosip.Response) {
	if tag, ok := res.To().Params.Get("tag"); ok {
		d.RemoteTag = tag
	}
	if c := res.Contact(); c != nil {
		d.RemoteTarget = c.Address
	}
	var routes []gosip.Uri
	for _, rr := range res.GetHeaders("Record-Route") {
		routes = append(routes, parseRoutes(rr.Value())...)
	}
	for i, j := 0, len(routes)-1; i < j; i, j = i+1, j-1 {
		routes[i], routes[j] = routes[j], routes[i]
	}
	d.RouteSet = routes
}

// RefreshTarget follows a peer's new Contact from a target-refresh request.
func (d *Dialog) RefreshTarget(req *gosip.Request) {
	if c := req.Contact(); c != nil {
		d.RemoteTarget = c.Address
	}
}

func parseRoutes(v string) []gosip.Uri {
	var out []gosip.Uri
	for _, part := range splitAddrList(v) {
		var u gosip.Uri
		s := strings.TrimSpace(part)
		if i := strings.IndexByte(s, '<'); i >= 0 {
			if j := strings.IndexByte(s[i:], '>'); j > 0 {
				s = s[i+1 : i+j]
			}
		}
		if err := gosip.ParseUri(s, &u); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// splitAddrList splits a comma-separated header value, ignoring commas inside <>.
func splitAddrList(v string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range v {
		switch c {
		case '<':
			depth++
		case '>':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, v[start:])
}

// NewRequest builds an in-dialog request. CSeq advances for every method
// but ACK and CANCEL.
func (d *Dialog) NewRequest(method gosip.RequestMethod, body []byte) *gosip.Request {
	seq := d.LocalSeq
	if method != gosip.ACK && method != gosip.CANCEL {
		d.LocalSeq++
		seq = d.LocalSeq
	}
	return d.newRequestSeq(method, seq, body)
}

// NewAck builds the ACK for a 2xx to the INVITE with CSeq seq.
func (d *Dialog) NewAck(seq uint32, body []byte) *gosip.Request {
	return d.newRequestSeq(gosip.ACK, seq, body)
}

func (d *Dialog) newRequestSeq(method gosip.RequestMethod, seq uint32, body []byte) *gosip.Request {
	req := gosip.NewRequest(method, d.RemoteTarget)
	from := &gosip.FromHeader{Address: d.Local, Params: gosip.NewParams()}
	from.Params.Add("tag", d.LocalTag)
	to := &gosip.ToHeader{Address: d.Remote, Params: gosip.NewParams()}
	if d.RemoteTag != "" {
		to.Params.Add("tag", d.RemoteTag)
	}
	callID := gosip.CallIDHeader(d.CallID)
	maxFwd := gosip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&maxFwd)
	for _, r := range d.RouteSet {
		req.AppendHeader(&gosip.RouteHeader{Address: r})
	}
	if method != gosip.ACK && method != gosip.CANCEL && method != gosip.BYE {
		req.AppendHeader(&gosip.ContactHeader{Address: d.ep.Contact(d.User, d.Transport)})
	}
	if d.ep.cfg.UserAgent != "" {
		req.AppendHeader(gosip.NewHeader("User-Agent", d.ep.cfg.UserAgent))
	}
	if body != nil {
		req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetBody(body)
	req.SetTransport(d.Transport)
	if len(d.RouteSet) > 0 {
		r := d.RouteSet[0]
		req.SetDestination(hostPort(r))
	}
	return req
}

func hostPort(u gosip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(u.Host, fmt.Sprint(port))
}

// Send starts a client transaction for an in-dialog (or initial) request.
func (d *Dialog) Send(ctx context.Context, req *gosip.Request) (gosip.ClientTransaction, error) {
	return d.ep.cli.TransactionRequest(ctx, req, d.ep.prepare)
}

// Write sends a request without a transaction (ACK to a 2xx).
func (d *Dialog) Write(req *gosip.Request) error {
	return d.ep.cli.WriteRequest(req, d.ep.prepare)
}

// Cancel sends a CANCEL for a pending INVITE (RFC 3261 §9.1): same
// Request-URI, Call-ID, From, To, CSeq number, Route and top Via.
func (d *Dialog) Cancel(ctx context.Context, inv *gosip.Request) (gosip.ClientTransaction, error) {
	req := gosip.NewRequest(gosip.CANCEL, inv.Recipient)
	req.AppendHeader(gosip.HeaderClone(inv.Via()))
	gosip.CopyHeaders("Route", inv, req)
	req.AppendHeader(gosip.HeaderClone(inv.From()))
	req.AppendHeader(gosip.HeaderClone(inv.To()))
	req.AppendHeader(gosip.HeaderClone(inv.CallID()))
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: gosip.CANCEL})
	maxFwd := gosip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.SetBody(nil)
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	req.Laddr = inv.Laddr
	return d.ep.cli.TransactionRequest(ctx, req, keepVia)
}

// Respond answers a request of this dialog. Responses that can establish
// or confirm the dialog carry our tag and Contact.
func (d *Dialog) Respond(tx gosip.ServerTransaction, req *gosip.Request, code int, reason string, body []byte, hdrs ...gosip.Header) *gosip.Response {
	res := buildResponse(d, req, code, reason, body)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		d.ep.log.Debug().Err(err).Int("status", code).Str("call_id", d.CallID).Msg("sip respond failed")
	}
	return res
}

func buildResponse(d *Dialog, req *gosip.Request, code int, reason string, body []byte) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, code, reason, body)
	// sipgo gives every response without a To tag a random one: ours must
	// be the dialog's, the same on every response (RFC 3261 §8.2.6.2).
	if _, hadTag := req.To().Params.Get("tag"); !hadTag && code > 100 {
		res.To().Params.Add("tag", d.LocalTag)
	}
	if req.IsInvite() && code > 100 && code < 300 || req.Method == gosip.UPDATE && code < 300 {
		res.AppendHeader(&gosip.ContactHeader{Address: d.ep.Contact(d.User, d.Transport)})
	}
	if body != nil {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	if d.ep.cfg.UserAgent != "" {
		res.AppendHeader(gosip.NewHeader("Server", d.ep.cfg.UserAgent))
	}
	if req.IsInvite() && code >= 200 && code < 300 {
		res.AppendHeader(gosip.NewHeader("Allow", Allowed))
	}
	return res
}

// Retransmit sends a 2xx again (see Endpoint.Retransmit).
func (d *Dialog) Retransmit(res *gosip.Response) error { return d.ep.Retransmit(res) }

// Reliable reports whether the dialog runs over a reliable transport.
func (d *Dialog) Reliable() bool { return gosip.IsReliable(d.Transport) }

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}
