package conformance

// The scripted SIP peer: it writes requests and responses as text from
// templates, sends them over its own UDP socket or TCP connections, and
// parses what uad sends with sipgo's parser.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/pion/sdp/v3"
)

// sipIn is one message uad sent to the peer.
type sipIn struct {
	req       *gosip.Request // nil for a response
	res       *gosip.Response
	raw       string
	transport string // "UDP" or "TCP"
	from      netip.AddrPort
	conn      net.Conn // TCP: the connection it came on
}

func (m *sipIn) String() string {
	if m.req != nil {
		return fmt.Sprintf("%s %s (%s) over %s", m.req.Method, m.req.Recipient.String(), m.req.CSeq().Value(), m.transport)
	}
	return fmt.Sprintf("%d %s (%s) over %s", m.res.StatusCode, m.res.Reason, m.res.CSeq().Value(), m.transport)
}

// header returns a header's value, "" when absent.
func (m *sipIn) header(name string) string {
	var h gosip.Header
	if m.req != nil {
		h = m.req.GetHeader(name)
	} else {
		h = m.res.GetHeader(name)
	}
	if h == nil {
		return ""
	}
	return h.Value()
}

func (m *sipIn) body() []byte {
	if m.req != nil {
		return m.req.Body()
	}
	return m.res.Body()
}

// sipPeer is a SIP user agent scripted by a test. It listens on UDP at
// addr, and on TCP at the same address when asked to.
type sipPeer struct {
	addr netip.AddrPort
	udp  *net.UDPConn
	tcp  *net.TCPListener // nil: nothing listens on TCP at addr

	mu      sync.Mutex
	inbox   []*sipIn
	changed chan struct{}
	seen    map[string]bool // retransmissions are dropped
	conns   []net.Conn
	toUAD   net.Conn // the peer's TCP connection to uad, once dialled
}

func newSIPPeer(t *testing.T, listenTCP bool) *sipPeer {
	t.Helper()
	p := &sipPeer{changed: make(chan struct{}), seen: map[string]bool{}}
	for try := 0; ; try++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p.udp = u
		p.addr = u.LocalAddr().(*net.UDPAddr).AddrPort()
		if !listenTCP {
			break
		}
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(p.addr))
		if err == nil {
			p.tcp = l
			break
		}
		u.Close()
		if try == 20 {
			t.Fatalf("peer: no port free for UDP and TCP: %v", err)
		}
	}
	go p.readUDP()
	if p.tcp != nil {
		go p.accept()
	}
	t.Cleanup(p.close)
	return p
}

func (p *sipPeer) close() {
	p.udp.Close()
	if p.tcp != nil {
		p.tcp.Close()
	}
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *sipPeer) readUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := p.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		raw := string(buf[:n])
		msg, err := gosip.ParseMessage([]byte(raw))
		if err != nil {
			continue // keep-alives and the like
		}
		p.push(msg, raw, "UDP", from, nil)
	}
}

func (p *sipPeer) accept() {
	for {
		c, err := p.tcp.Accept()
		if err != nil {
			return
		}
		p.track(c)
		go p.readStream(c)
	}
}

func (p *sipPeer) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// readStream parses the SIP messages of a TCP connection.
func (p *sipPeer) readStream(c net.Conn) {
	stream := gosip.NewParser().NewSIPStream()
	from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		_, _ = stream.Write(buf[:n])
		for {
			msg, _, err := stream.ParseNext()
			if errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				stream.Reset()
				break
			}
			p.push(msg, msg.String(), "TCP", from, c)
		}
	}
}

func (p *sipPeer) push(msg gosip.Message, raw, transport string, from netip.AddrPort, c net.Conn) {
	in := &sipIn{raw: raw, transport: transport, from: from, conn: c}
	var key string
	switch m := msg.(type) {
	case *gosip.Request:
		if m.CSeq() == nil || m.Via() == nil {
			return
		}
		in.req = m
		branch, _ := m.Via().Params.Get("branch")
		key = fmt.Sprintf("req %s %s %s", m.Method, branch, m.CSeq().Value())
	case *gosip.Response:
		if m.CSeq() == nil || m.Via() == nil {
			return
		}
		in.res = m
		branch, _ := m.Via().Params.Get("branch")
		key = fmt.Sprintf("res %d %s %s", m.StatusCode, branch, m.CSeq().Value())
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[key] {
		return
	}
	p.seen[key] = true
	p.inbox = append(p.inbox, in)
	close(p.changed)
	p.changed = make(chan struct{})
}

// maybe takes the first message that matches, waiting up to timeout.
func (p *sipPeer) maybe(timeout time.Duration, match func(*sipIn) bool) (*sipIn, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i, m := range p.inbox {
			if match(m) {
				p.inbox = append(p.inbox[:i], p.inbox[i+1:]...)
				p.mu.Unlock()
				return m, true
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, false
		}
	}
}

// expect takes the first message that matches or fails the test.
func (p *sipPeer) expect(t *testing.T, what string, match func(*sipIn) bool) *sipIn {
	t.Helper()
	m, ok := p.maybe(5*time.Second, match)
	if !ok {
		t.Fatalf("peer: no %s from uad; unclaimed: [%s]", what, p.unclaimed())
	}
	return m
}

// none checks that no such message comes within d.
func (p *sipPeer) none(t *testing.T, d time.Duration, what string, match func(*sipIn) bool) {
	t.Helper()
	if m, ok := p.maybe(d, match); ok {
		t.Errorf("peer: unexpected %s: %s", what, m)
	}
}

func (p *sipPeer) unclaimed() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []string
	for _, m := range p.inbox {
		s = append(s, m.String())
	}
	return strings.Join(s, "; ")
}

// Matchers.

func isRequest(method string) func(*sipIn) bool {
	return func(m *sipIn) bool { return m.req != nil && string(m.req.Method) == method }
}

// isResponse matches the responses to a request the peer sent; final skips provisionals.
func isResponse(s sent, final bool) func(*sipIn) bool {
	return func(m *sipIn) bool {
		if m.res == nil || m.res.CallID() == nil || m.res.CallID().Value() != s.callID {
			return false
		}
		cs := m.res.CSeq()
		return cs.SeqNo == s.cseq && string(cs.MethodName) == s.method && (!final || m.res.StatusCode >= 200)
	}
}

func inCall(callID string, match func(*sipIn) bool) func(*sipIn) bool {
	return func(m *sipIn) bool {
		if m.req == nil || m.req.CallID() == nil {
			return false
		}
		return m.req.CallID().Value() == callID && match(m)
	}
}

// ---------------------------------------------------------------------------
// Sending

// send writes a message to uad over a transport.
func (p *sipPeer) send(t *testing.T, u *uadUnderTest, transport, raw string) {
	t.Helper()
	if transport == "TCP" {
		if _, err := p.dialUAD(t, u).Write([]byte(raw)); err != nil {
			t.Fatalf("peer: tcp write: %v", err)
		}
		return
	}
	if _, err := p.udp.WriteToUDPAddrPort([]byte(raw), u.udp); err != nil {
		t.Fatalf("peer: udp write: %v", err)
	}
}

// dialUAD returns the peer's TCP connection to uad, dialling it once.
func (p *sipPeer) dialUAD(t *testing.T, u *uadUnderTest) net.Conn {
	t.Helper()
	p.mu.Lock()
	c := p.toUAD
	p.mu.Unlock()
	if c != nil {
		return c
	}
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(u.tcp))
	if err != nil {
		t.Fatalf("peer: dial uad over tcp: %v", err)
	}
	p.track(c)
	go p.readStream(c)
	p.mu.Lock()
	p.toUAD = c
	p.mu.Unlock()
	return c
}

// reply answers a message uad sent, on the transport it came by.
func (p *sipPeer) reply(t *testing.T, to *sipIn, raw string) {
	t.Helper()
	var err error
	if to.conn != nil {
		_, err = to.conn.Write([]byte(raw))
	} else {
		_, err = p.udp.WriteToUDPAddrPort([]byte(raw), to.from)
	}
	if err != nil {
		t.Fatalf("peer: reply: %v", err)
	}
}

// uri is the peer's SIP URI for a transport.
func (p *sipPeer) uri(user, transport string) string {
	if transport == "TCP" {
		return fmt.Sprintf("sip:%s@%s;transport=tcp", user, p.addr)
	}
	return fmt.Sprintf("sip:%s@%s", user, p.addr)
}

func token() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func branch() string { return "z9hG4bK" + token() }

// ---------------------------------------------------------------------------
// Templates

var requestTmpl = template.Must(template.New("request").Parse(
	`{{.Method}} {{.RURI}} SIP/2.0
{{range .Via}}Via: {{.}}
{{end}}Max-Forwards: 70
From: {{.From}}
To: {{.To}}
Call-ID: {{.CallID}}
CSeq: {{.CSeq}} {{.Method}}
{{with .Contact}}Contact: <{{.}}>
{{end}}{{range .RecordRoute}}Record-Route: {{.}}
{{end}}{{range .Headers}}{{.}}
{{end}}{{if .Body}}Content-Type: application/sdp
{{end}}Content-Length: {{len .Body}}
`))

var responseTmpl = template.Must(template.New("response").Parse(
	`SIP/2.0 {{.Code}} {{.Reason}}
{{range .Via}}Via: {{.}}
{{end}}From: {{.From}}
To: {{.To}}
Call-ID: {{.CallID}}
CSeq: {{.CSeq}}
{{with .Contact}}Contact: <{{.}}>
{{end}}{{range .RecordRoute}}Record-Route: {{.}}
{{end}}{{range .Headers}}{{.}}
{{end}}{{if .Body}}Content-Type: application/sdp
{{end}}Content-Length: {{len .Body}}
`))

type requestFields struct {
	Method, RURI, From, To, CallID, Contact, Body string
	CSeq                                          uint32
	Via, RecordRoute, Headers                     []string
}

type responseFields struct {
	Code                                          int
	Reason, From, To, CallID, CSeq, Contact, Body string
	Via, RecordRoute, Headers                     []string
}

// render fills a template: header lines end in CRLF, then the body.
func render(tmpl *template.Template, fields any, body string) string {
	var b strings.Builder
	if err := tmpl.Execute(&b, fields); err != nil {
		panic(err)
	}
	return strings.ReplaceAll(b.String(), "\n", "\r\n") + "\r\n" + body
}

// ---------------------------------------------------------------------------
// The peer's side of one dialog with uad

// peerCall is the peer's state of a dialog: RFC 3261 §12 as the peer keeps it.
type peerCall struct {
	p         *sipPeer
	u         *uadUnderTest
	transport string
	callID    string
	localTag  string
	remoteTag string
	local     string // the peer's URI (From of its requests)
	remote    string // uad's URI (To of the peer's requests)
	target    string // uad's Contact: Request-URI of in-dialog requests
	contact   string // the peer's Contact
	cseq      uint32
	invite    sent // the last INVITE: CANCEL and the ACK of a failure reuse it
}

// sent is a request the peer sent, for matching its responses.
type sent struct {
	method, callID, branch, ruri string
	cseq                         uint32
	raw                          string
}

// newCall starts a dialog the peer will open with an INVITE.
func (p *sipPeer) newCall(u *uadUnderTest, transport string) *peerCall {
	return &peerCall{
		p: p, u: u, transport: transport,
		callID:   token() + "@peer",
		localTag: token(),
		local:    p.uri("peer", transport),
		remote:   u.uri(transport),
		target:   u.uri(transport),
		contact:  p.uri("peer", transport),
		cseq:     uint32(100 + time.Now().UnixNano()%1000),
	}
}

// req holds what varies in one request.
type req struct {
	headers     []string
	body        string
	recordRoute []string
	extraVia    []string // below the peer's own Via
	noContact   bool
	cseq        uint32 // 0: the next CSeq
}

func (c *peerCall) to() string {
	if c.remoteTag == "" {
		return "<" + c.remote + ">"
	}
	return "<" + c.remote + ">;tag=" + c.remoteTag
}

// render builds a request of the dialog; it does not send it.
func (c *peerCall) render(method string, r req) sent {
	seq := r.cseq
	if seq == 0 {
		c.cseq++
		seq = c.cseq
	}
	s := sent{method: method, callID: c.callID, branch: branch(), ruri: c.target, cseq: seq}
	f := requestFields{
		Method: method, RURI: s.ruri, From: "<" + c.local + ">;tag=" + c.localTag, To: c.to(),
		CallID: c.callID, CSeq: seq, Contact: c.contact, Body: r.body,
		Via:         append([]string{fmt.Sprintf("SIP/2.0/%s %s;branch=%s;rport", c.transport, c.p.addr, s.branch)}, r.extraVia...),
		RecordRoute: r.recordRoute, Headers: r.headers,
	}
	if r.noContact || method == "BYE" || method == "INFO" || method == "CANCEL" || method == "ACK" {
		f.Contact = ""
	}
	s.raw = render(requestTmpl, f, r.body)
	return s
}

// send sends a request of the dialog.
func (c *peerCall) send(t *testing.T, method string, r req) sent {
	t.Helper()
	s := c.render(method, r)
	if method == "INVITE" {
		c.invite = s
	}
	c.p.send(t, c.u, c.transport, s.raw)
	return s
}

// final waits for the final response to a request.
func (c *peerCall) final(t *testing.T, s sent) *sipIn {
	t.Helper()
	return c.p.expect(t, fmt.Sprintf("final response to %s %d", s.method, s.cseq), isResponse(s, true))
}

// established takes uad's tag and Contact from a response that set up the dialog.
func (c *peerCall) established(res *sipIn) {
	if tag, ok := res.res.To().Params.Get("tag"); ok {
		c.remoteTag = tag
	}
	if ct := res.res.Contact(); ct != nil {
		c.target = ct.Address.String()
	}
}

// ack acknowledges a 2xx to an INVITE: a new transaction to uad's Contact.
func (c *peerCall) ack(t *testing.T, inv sent, body string) {
	t.Helper()
	c.send(t, "ACK", req{cseq: inv.cseq, body: body})
}

// ackFailure acknowledges a non-2xx final response to the last INVITE: same
// branch and Request-URI as the INVITE, To from the response (RFC 3261 §17.1.1.3).
func (c *peerCall) ackFailure(t *testing.T, res *sipIn) {
	t.Helper()
	inv := c.invite
	f := requestFields{
		Method: "ACK", RURI: inv.ruri, From: "<" + c.local + ">;tag=" + c.localTag, To: res.res.To().Value(),
		CallID: c.callID, CSeq: inv.cseq,
		Via: []string{fmt.Sprintf("SIP/2.0/%s %s;branch=%s;rport", c.transport, c.p.addr, inv.branch)},
	}
	c.p.send(t, c.u, c.transport, render(requestTmpl, f, ""))
}

// cancel cancels the last INVITE: same branch, Request-URI, Call-ID, From,
// To and CSeq number as the INVITE (RFC 3261 §9.1).
func (c *peerCall) cancel(t *testing.T) sent {
	t.Helper()
	inv := c.invite
	f := requestFields{
		Method: "CANCEL", RURI: inv.ruri, From: "<" + c.local + ">;tag=" + c.localTag, To: "<" + c.remote + ">",
		CallID: c.callID, CSeq: inv.cseq,
		Via: []string{fmt.Sprintf("SIP/2.0/%s %s;branch=%s;rport", c.transport, c.p.addr, inv.branch)},
	}
	c.p.send(t, c.u, c.transport, render(requestTmpl, f, ""))
	return sent{method: "CANCEL", callID: c.callID, branch: inv.branch, ruri: inv.ruri, cseq: inv.cseq}
}

// dial opens the dialog: INVITE with an offer, 200, ACK. It returns the 200.
func (c *peerCall) dial(t *testing.T, offer string, r req) *sipIn {
	t.Helper()
	r.body = offer
	inv := c.send(t, "INVITE", r)
	res := c.final(t, inv)
	if res.res.StatusCode != 200 {
		t.Fatalf("INVITE answered %d %s, want 200", res.res.StatusCode, res.res.Reason)
	}
	c.established(res)
	c.ack(t, inv, "")
	return res
}

// respond answers a request uad sent in this dialog. 2xx to INVITE and
// UPDATE carry the peer's Contact (or contact when set).
func (c *peerCall) respond(t *testing.T, in *sipIn, code int, reason string, r req) {
	t.Helper()
	c.p.respond(t, in, code, reason, c.localTag, c.contact, r)
}

// respond answers a request with the given To tag; contact goes into 2xx
// and 1xx responses to INVITE and UPDATE.
func (p *sipPeer) respond(t *testing.T, in *sipIn, code int, reason, tag, contact string, r req) {
	t.Helper()
	rq := in.req
	f := responseFields{
		Code: code, Reason: reason, From: rq.From().Value(), To: rq.To().Value(),
		CallID: rq.CallID().Value(), CSeq: rq.CSeq().Value(), Body: r.body,
		RecordRoute: r.recordRoute, Headers: r.headers,
	}
	for _, h := range rq.GetHeaders("Via") {
		f.Via = append(f.Via, h.Value())
	}
	if _, ok := rq.To().Params.Get("tag"); !ok && code > 100 {
		f.To += ";tag=" + tag
	}
	if (rq.Method == gosip.INVITE || rq.Method == gosip.UPDATE) && code > 100 && code < 300 && !r.noContact {
		f.Contact = contact
	}
	p.reply(t, in, render(responseTmpl, f, r.body))
}

// acceptCall answers uad's INVITE with 200 and the body, takes the ACK, and
// returns the peer's side of the new dialog.
func (p *sipPeer) acceptCall(t *testing.T, u *uadUnderTest, inv *sipIn, body string, headers ...string) *peerCall {
	t.Helper()
	rq := inv.req
	c := &peerCall{
		p: p, u: u, transport: inv.transport,
		callID:   rq.CallID().Value(),
		localTag: token(),
		local:    rq.To().Address.String(),
		remote:   rq.From().Address.String(),
		contact:  p.uri("peer", inv.transport),
		cseq:     1,
	}
	c.remoteTag, _ = rq.From().Params.Get("tag")
	if ct := rq.Contact(); ct != nil {
		c.target = ct.Address.String()
	}
	c.respond(t, inv, 200, "OK", req{body: body, headers: headers})
	p.expect(t, "ACK of the 200", inCall(c.callID, isRequest("ACK")))
	return c
}

// ---------------------------------------------------------------------------
// SDP

// peerSDP is the peer's session description: c= at conn, then the m-sections.
func peerSDP(version int, conn string, media ...string) string {
	return fmt.Sprintf("v=0\r\no=peer 4242 %d IN IP4 127.0.0.1\r\ns=peer\r\nc=IN IP4 %s\r\nt=0 0\r\n", version, conn) +
		strings.Join(media, "")
}

// audioM is a G.711 μ-law audio m-section; dir "" writes no direction.
func audioM(port int, dir string) string {
	s := fmt.Sprintf("m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n", port)
	if dir != "" {
		s += "a=" + dir + "\r\n"
	}
	return s
}

// videoM is an H.264 video m-section with a profile-level-id.
func videoM(port int, profileLevel, dir string) string {
	s := fmt.Sprintf("m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=%s\r\n", port, profileLevel)
	if dir != "" {
		s += "a=" + dir + "\r\n"
	}
	return s
}

// answerTo answers uad's offer m-line for m-line: audio at audioPort with the
// mirrored direction (or the direction given), video at videoPort (0:
// declined) with an H.264 profile-level-id, anything else declined.
type answerPlan struct {
	audioPort, videoPort int
	audioDir             string // "" mirrors the offer
	profileLevel         string // "" is 42e01f
}

func answerTo(t *testing.T, offer []byte, version int, plan answerPlan) string {
	t.Helper()
	sd := parseSDP(t, offer)
	var media []string
	for _, md := range sd.MediaDescriptions {
		kind, port := md.MediaName.Media, md.MediaName.Port.Value
		switch {
		case kind == "audio" && port != 0 && plan.audioPort != 0:
			dir := plan.audioDir
			if dir == "" {
				dir = mirror(direction(sd, md))
			}
			media = append(media, audioM(plan.audioPort, dir))
		case kind == "video" && port != 0 && plan.videoPort != 0:
			pl := plan.profileLevel
			if pl == "" {
				pl = "42e01f"
			}
			media = append(media, videoM(plan.videoPort, pl, mirror(direction(sd, md))))
		default:
			media = append(media, fmt.Sprintf("m=%s 0 %s %s\r\n", kind, strings.Join(md.MediaName.Protos, "/"), strings.Join(md.MediaName.Formats, " ")))
		}
	}
	return peerSDP(version, "127.0.0.1", media...)
}

func mirror(dir string) string {
	switch dir {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	}
	return dir
}

// parseSDP parses uad's SDP or fails the test.
func parseSDP(t *testing.T, body []byte) *sdp.SessionDescription {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Fatalf("uad's SDP does not parse: %v\n%s", err, body)
	}
	return &sd
}

// direction is an m-section's direction attribute, else the session's,
// else sendrecv (RFC 3264 §5.1).
func direction(sd *sdp.SessionDescription, md *sdp.MediaDescription) string {
	for _, attrs := range [][]sdp.Attribute{md.Attributes, sd.Attributes} {
		for _, a := range attrs {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				return a.Key
			}
		}
	}
	return "sendrecv"
}

// mline summarises one m-section of uad's SDP for checks.
type mline struct {
	kind, proto, dir string
	port             int
	formats          string
}

func mlines(t *testing.T, body []byte) []mline {
	t.Helper()
	sd := parseSDP(t, body)
	var out []mline
	for _, md := range sd.MediaDescriptions {
		out = append(out, mline{
			kind: md.MediaName.Media, proto: strings.Join(md.MediaName.Protos, "/"),
			port: md.MediaName.Port.Value, formats: strings.Join(md.MediaName.Formats, " "),
			dir: direction(sd, md),
		})
	}
	return out
}

// origin returns the o= session id and version.
func origin(t *testing.T, body []byte) (uint64, uint64) {
	t.Helper()
	sd := parseSDP(t, body)
	return sd.Origin.SessionID, sd.Origin.SessionVersion
}

// requireSDP wants uad's SDP in a message, with count m-lines.
func requireSDP(t *testing.T, m *sipIn, count int) []mline {
	t.Helper()
	if len(m.body()) == 0 {
		t.Fatalf("%s carries no SDP", m)
	}
	ml := mlines(t, m.body())
	if len(ml) != count {
		t.Fatalf("%s: %d m-lines, want %d:\n%s", m, len(ml), count, m.body())
	}
	return ml
}

// checkVersion checks the o= line of uad's SDP against its previous one
// (RFC 3264 §8): same session; version + 1 when anything else changed,
// otherwise kept (or + 1).
func checkVersion(t *testing.T, previous, next []byte) {
	t.Helper()
	pid, pver := origin(t, previous)
	nid, nver := origin(t, next)
	if nid != pid {
		t.Errorf("o= session id %d, want %d as before", nid, pid)
	}
	if changed := withoutOrigin(previous) != withoutOrigin(next); changed && nver != pver+1 {
		t.Errorf("SDP changed but o= version went %d -> %d, want + 1", pver, nver)
	} else if !changed && nver != pver && nver != pver+1 {
		t.Errorf("unchanged SDP with o= version %d -> %d", pver, nver)
	}
}

func withoutOrigin(body []byte) string {
	var lines []string
	for _, l := range strings.Split(string(body), "\r\n") {
		if !strings.HasPrefix(l, "o=") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\r\n")
}

// retryAfter reads a Retry-After value in seconds (RFC 3261 §20.33).
func retryAfter(v string) (int, bool) {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && v != ""
}
