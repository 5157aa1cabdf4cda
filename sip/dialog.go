package sip

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"

	gosip "github.com/emiago/sipgo/sip"
)

// Dialog is the RFC 3261 §12 state of one SIP dialog, for either role, and
// the requests and responses built from it. It sends nothing itself and
// has no locks: it is owned by one goroutine (the call's loop), which hands
// what it builds to the transport.
type Dialog struct {
	CallID    string
	LocalTag  string
	RemoteTag string
	Local     gosip.Uri // our From (UAC) or To (UAS) address
	Remote    gosip.Uri
	// RemoteTarget is the peer's Contact, refreshed by target-refresh
	// requests and their 2xx responses (RFC 3261 §12.2).
	RemoteTarget gosip.Uri
	// RouteSet is frozen when the dialog is established.
	RouteSet  []gosip.Uri
	LocalSeq  uint32
	RemoteSeq uint32
	Transport string    // "UDP", "TCP" or "TLS"
	Contact   gosip.Uri // ours, in requests and in responses that establish or refresh
	UserAgent string    // User-Agent of requests, Server of responses; "" = none
}

// NewUACDialog starts the dialog of an outgoing call to target.
func NewUACDialog(target, from gosip.Uri, transport string, contact gosip.Uri, userAgent string) *Dialog {
	to := target
	to.UriParams, to.Headers = nil, nil
	return &Dialog{
		CallID:       randomID(24),
		LocalTag:     gosip.GenerateTagN(16),
		Local:        from,
		Remote:       to,
		RemoteTarget: target,
		LocalSeq:     rand.Uint32N(1 << 15),
		Transport:    strings.ToUpper(transport),
		Contact:      contact,
		UserAgent:    userAgent,
	}
}

// ErrNoContact refuses an INVITE without Contact (RFC 3261 §8.1.1.8).
var ErrNoContact = fmt.Errorf("INVITE has no Contact")

// NewUASDialog builds the dialog an incoming INVITE asks for, with a new
// local tag; contact is ours for the INVITE's transport.
func NewUASDialog(inv *gosip.Request, contact gosip.Uri, userAgent string) (*Dialog, error) {
	from, to, peer := inv.From(), inv.To(), inv.Contact()
	if peer == nil {
		return nil, ErrNoContact
	}
	remoteTag, _ := from.Params.Get("tag")
	d := &Dialog{
		CallID:       inv.CallID().Value(),
		LocalTag:     gosip.GenerateTagN(16),
		RemoteTag:    remoteTag,
		Local:        to.Address,
		Remote:       from.Address,
		RemoteTarget: peer.Address,
		RemoteSeq:    inv.CSeq().SeqNo,
		LocalSeq:     rand.Uint32N(1 << 15),
		Transport:    strings.ToUpper(inv.Transport()),
		Contact:      contact,
		UserAgent:    userAgent,
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
	d.RefreshTarget(res)
	var routes []gosip.Uri
	for _, rr := range res.GetHeaders("Record-Route") {
		routes = append(routes, parseRoutes(rr.Value())...)
	}
	for i, j := 0, len(routes)-1; i < j; i, j = i+1, j-1 {
		routes[i], routes[j] = routes[j], routes[i]
	}
	d.RouteSet = routes
}

// RefreshTarget follows the peer's new Contact from a target-refresh
// request or its 2xx (RFC 3261 §12.2.1.2, §12.2.2).
func (d *Dialog) RefreshTarget(m interface{ Contact() *gosip.ContactHeader }) {
	if c := m.Contact(); c != nil {
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

// NewAck builds the ACK for a 2xx to the INVITE with CSeq seq; it goes to
// the remote target as it is now, after the 2xx refreshed it.
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
		req.AppendHeader(&gosip.ContactHeader{Address: d.Contact})
	}
	if d.UserAgent != "" {
		req.AppendHeader(gosip.NewHeader("User-Agent", d.UserAgent))
	}
	if body != nil {
		req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetBody(body)
	req.SetTransport(d.Transport)
	if len(d.RouteSet) > 0 {
		req.SetDestination(hostPort(d.RouteSet[0]))
	}
	return req
}

func hostPort(u gosip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	// A URI keeps an IPv6 host in brackets; JoinHostPort adds its own.
	return net.JoinHostPort(strings.Trim(u.Host, "[]"), fmt.Sprint(port))
}

// NewCancel builds the CANCEL of a pending INVITE we sent (RFC 3261 §9.1):
// same Request-URI, Call-ID, From, To, CSeq number, Route and top Via.
func NewCancel(inv *gosip.Request) *gosip.Request {
	req := gosip.NewRequest(gosip.CANCEL, inv.Recipient)
	if via := inv.Via(); via != nil {
		req.AppendHeader(gosip.HeaderClone(via))
	}
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
	return req
}

// Response builds a response to a request of this dialog. Responses that
// can establish or refresh the dialog carry our tag and Contact.
func (d *Dialog) Response(req *gosip.Request, code int, reason string, body []byte, hdrs ...gosip.Header) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, code, reason, body)
	// sipgo gives every response without a To tag a random one: ours must
	// be the dialog's, the same on every response (RFC 3261 §8.2.6.2).
	if _, hadTag := req.To().Params.Get("tag"); !hadTag && code > 100 {
		res.To().Params.Add("tag", d.LocalTag)
	}
	if req.IsInvite() && code > 100 && code < 300 || req.Method == gosip.UPDATE && code < 300 {
		res.AppendHeader(&gosip.ContactHeader{Address: d.Contact})
	}
	if body != nil {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	if d.UserAgent != "" {
		res.AppendHeader(gosip.NewHeader("Server", d.UserAgent))
	}
	if req.IsInvite() && code >= 200 && code < 300 {
		res.AppendHeader(gosip.NewHeader("Allow", Allowed))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

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
