package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// uac is the generator's SIP side: sipgo as UAC on one UDP socket, which
// also answers what uad sends inside the dialogs (re-INVITEs of a hold, BYE).
type uac struct {
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	dua     *sipgo.DialogUA
	conn    net.PacketConn
	target  sip.Uri
	contact sip.ContactHeader

	mu    sync.Mutex
	byCID map[string]*call // SIP Call-ID -> call
}

func newUAC(ctx context.Context, ip netip.Addr, port int, uadAddr string) (*uac, error) {
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	host, p, err := net.SplitHostPort(uadAddr)
	if err != nil {
		return nil, fmt.Errorf("-uad: %w", err)
	}
	uadPort, _ := strconv.Atoi(p)
	conn, err := net.ListenPacket("udp4", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("SIP socket: %w", err)
	}
	local := conn.LocalAddr().(*net.UDPAddr)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("rtpload"))
	if err != nil {
		conn.Close()
		return nil, err
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		return nil, err
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientAddr(local.String()))
	if err != nil {
		return nil, err
	}
	u := &uac{ua: ua, srv: srv, cli: cli, conn: conn, byCID: map[string]*call{},
		target:  sip.Uri{Scheme: "sip", User: "load", Host: host, Port: uadPort},
		contact: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "rtpload", Host: local.IP.String(), Port: local.Port}},
	}
	u.dua = &sipgo.DialogUA{Client: cli, ContactHDR: u.contact}
	srv.OnInvite(u.onReinvite)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(u.onBye)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go func() { _ = srv.ServeUDP(conn) }()
	// Requests go out from the listening socket once sipgo has taken it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, _ := srv.TransportLayer().GetConnection("udp", local.String()); c != nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("sipgo did not take the SIP socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return u, nil
}

func (u *uac) close() {
	_ = u.ua.Close()
	_ = u.conn.Close()
}

// sdpOffer is the generator's SDP: PCMU only, on the call's RTP port.
func sdpOffer(ip netip.Addr, port int, dir string) []byte {
	id := strconv.Itoa(port)
	return []byte("v=0\r\n" +
		"o=rtpload " + id + " " + id + " IN IP4 " + ip.String() + "\r\n" +
		"s=rtpload\r\n" +
		"c=IN IP4 " + ip.String() + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + id + " RTP/AVP 0\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=ptime:20\r\n" +
		"a=" + dir + "\r\n")
}

// parseSDPAudio returns the audio address and direction of an SDP body.
func parseSDPAudio(body string) (netip.AddrPort, string, error) {
	var addr netip.Addr
	port := -1
	dir := "sendrecv"
	inAudio := false
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "c=IN IP4 ") && (port < 0 || inAudio):
			a, err := netip.ParseAddr(strings.Fields(line[len("c=IN IP4 "):])[0])
			if err == nil {
				addr = a
			}
		case strings.HasPrefix(line, "m="):
			inAudio = strings.HasPrefix(line, "m=audio ")
			if inAudio {
				f := strings.Fields(line)
				if len(f) >= 2 {
					port, _ = strconv.Atoi(f[1])
				}
			}
		case inAudio && (line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive" || line == "a=sendrecv"):
			dir = line[2:]
		}
	}
	if !addr.IsValid() || port <= 0 {
		return netip.AddrPort{}, "", fmt.Errorf("no audio address in the SDP")
	}
	return netip.AddrPortFrom(addr, uint16(port)), dir, nil
}

// setupResult sums up the setup phase.
type setupResult struct {
	failed    int
	errs      map[string]int
	latencies []time.Duration // INVITE to 200, per call set up
}

// setupAll starts one INVITE every 1/rate seconds, with at most inflight
// unanswered, each with its call's SDP; the call is up once ACKed.
func (u *uac) setupAll(ctx context.Context, m *media, o options) setupResult {
	res := setupResult{errs: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.inflight)
	interval := time.Duration(float64(time.Second) / o.rate)
	start := time.Now()
	for i := range m.calls {
		// Paced on monotonic deadlines from the start: no drift.
		if !sleepUntil(ctx, start.Add(time.Duration(i)*interval)) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(c *call) {
			defer wg.Done()
			defer func() { <-sem }()
			lat, err := u.setup(ctx, c, m, o.setupWait)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.failed++
				res.errs[shortErr(err)]++
				return
			}
			res.latencies = append(res.latencies, lat)
		}(m.calls[i])
	}
	wg.Wait()
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// setup places one call: INVITE with the offer, the 200's answer gives
// uad's RTP address, ACK.
func (u *uac) setup(ctx context.Context, c *call, m *media, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	body := sdpOffer(c.ip, c.port, "sendrecv")
	dlg, err := u.dua.Invite(ctx, u.target, body, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		return 0, fmt.Errorf("INVITE: %w", err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		dlg.Close()
		var re *sipgo.ErrDialogResponse
		if errors.As(err, &re) {
			return 0, fmt.Errorf("INVITE answered %d", re.Res.StatusCode)
		}
		return 0, fmt.Errorf("INVITE: %w", err)
	}
	lat := time.Since(t0)
	remote, _, err := parseSDPAudio(string(dlg.InviteResponse.Body()))
	if err != nil {
		_ = dlg.Ack(ctx)
		_ = dlg.Bye(ctx)
		return 0, err
	}
	if err := dlg.Ack(ctx); err != nil {
		return 0, fmt.Errorf("ACK: %w", err)
	}
	c.dlg = dlg
	c.sipCallID = dlg.InviteRequest.CallID().Value()
	u.mu.Lock()
	u.byCID[c.sipCallID] = c
	u.mu.Unlock()
	if err := c.setRemote(remote); err != nil {
		return 0, fmt.Errorf("uad's RTP address %v: %w", remote, err)
	}
	return lat, nil
}

// onReinvite answers uad's in-dialog offers (hold, resume): 200 with the
// same port and the direction that answers the offer's.
func (u *uac) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	u.mu.Lock()
	c := u.byCID[req.CallID().Value()]
	u.mu.Unlock()
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	_, dir, err := parseSDPAudio(string(req.Body()))
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	answer := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[dir]
	if answer == "" {
		answer = "sendrecv"
	}
	c.reinvites.Add(1)
	res := sip.NewResponseFromRequest(req, 200, "OK", sdpOffer(c.ip, c.port, answer))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(u.contact.Clone())
	_ = tx.Respond(res)
}

// onBye: uad hung up a call (it should not, in a load run).
func (u *uac) onBye(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	u.mu.Lock()
	c := u.byCID[req.CallID().Value()]
	u.mu.Unlock()
	if c != nil {
		c.byeFromUAD.Store(true)
	}
}

// hangupAll sends BYE on every call, paced like the setup.
func (u *uac) hangupAll(m *media, o options) int {
	var failed counter
	var up []*call
	for _, c := range m.calls {
		if c.dlg != nil && !c.byeFromUAD.Load() {
			up = append(up, c)
		}
	}
	interval := time.Duration(float64(time.Second) / (o.rate * 2))
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.inflight)
	for i, c := range up {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		sem <- struct{}{}
		wg.Add(1)
		go func(c *call) {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.dlg.Bye(ctx); err != nil {
				failed.add(1)
				if failed.get() <= 3 {
					log.Printf("BYE: %v", err)
				}
			}
			c.dlg.Close()
		}(c)
	}
	wg.Wait()
	return int(failed.get())
}
