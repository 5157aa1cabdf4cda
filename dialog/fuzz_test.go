package dialog

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/sip"
)

// FuzzRequest feeds arbitrary SIP requests through the whole request path
// — the endpoint's checks and routing, the manager, the loop of a live
// call — with a fake transport: nothing panics, and every request but an
// ACK is answered. An input holds one or more messages separated by a
// blank line and "--\r\n"; $CALLID, $UADTAG and $PEERTAG stand for the
// live call's dialog, so in-dialog requests reach it.
func FuzzRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(seedMessages(s))
	}
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("..", "tests", "testdata", "torture", dir, "*.dat"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil && len(b) < 4096 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env := fuzzEndpoint(t)
		h := newHarness(t, func(c *Config) { c.VideoRequestPolicy = VideoReject })
		h.m.SetSignalling(routedSig{fakeSig: h.sig, ep: env.ep})
		env.current.Store(h.m)
		p := h.liveIncoming(peerAudio)
		env.recovered.Store(0)
		fill := strings.NewReplacer("$CALLID", p.callID, "$UADTAG", p.uadTag, "$PEERTAG", peerTag)
		for _, part := range bytes.Split(data, []byte("\r\n--\r\n")) {
			msg, err := gosip.ParseMessage([]byte(fill.Replace(string(part))))
			if err != nil {
				continue
			}
			req, ok := msg.(*gosip.Request)
			if !ok {
				continue
			}
			req.SetSource(peerHost + ":5060")
			req.SetTransport("UDP")
			h.dispatch(t, env.ep, req)
		}
		if n := env.recovered.Load(); n != 0 {
			t.Fatalf("%d panics recovered handling %q", n, data)
		}
		if h.obs.panics != 0 {
			t.Fatalf("%d panics on a call's loop handling %q", h.obs.panics, data)
		}
	})
}

// dispatch hands one request to the endpoint as sipgo would and waits
// until it is answered; parked requests are let go by moving the clock.
func (h *harness) dispatch(t *testing.T, ep *sip.Endpoint, req *gosip.Request) {
	tx := newFakeTx()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		ep.Dispatch(req, tx)
	}()
	for tries := 0; ; tries++ {
		select {
		case res := <-tx.res:
			if res.StatusCode < 200 {
				continue
			}
			select {
			case <-returned:
			case <-time.After(waitLimit):
				t.Fatalf("%s answered %d, but its handler never returned:\n%s", req.Method, res.StatusCode, req)
			}
			return
		case <-returned:
			for len(tx.res) > 0 { // the final response may wait behind a provisional one
				if res := <-tx.res; res.StatusCode >= 200 {
					return
				}
			}
			if req.IsAck() {
				return
			}
			t.Fatalf("%s was not answered:\n%s", req.Method, req)
		case <-time.After(2 * time.Millisecond):
			if tries > 1000 {
				t.Fatalf("%s still unanswered:\n%s", req.Method, req)
			}
			h.clock.Advance(reorderWindow)
		}
	}
}

// routedSig is the fake transport with the endpoint's dialog table, so
// that the endpoint routes in-dialog requests to the calls.
type routedSig struct {
	*fakeSig
	ep *sip.Endpoint
}

func (s routedSig) Register(callID, tag string, o sip.DialogOwner) {
	s.fakeSig.Register(callID, tag, o)
	s.ep.Register(callID, tag, o)
}

func (s routedSig) Unregister(callID, tag string) {
	s.fakeSig.Unregister(callID, tag)
	s.ep.Unregister(callID, tag)
}

// fuzzEnv is one endpoint for the whole fuzzing process (it has no
// listeners), handing new calls to the manager of the current input.
type fuzzEnv struct {
	ep        *sip.Endpoint
	current   atomic.Pointer[Manager]
	recovered atomic.Int64
}

func (e *fuzzEnv) HandleInvite(req *gosip.Request, tx gosip.ServerTransaction) {
	e.current.Load().HandleInvite(req, tx)
}

var (
	fuzzOnce sync.Once
	fuzzEnvv *fuzzEnv
)

func fuzzEndpoint(t *testing.T) *fuzzEnv {
	fuzzOnce.Do(func() {
		env := &fuzzEnv{}
		ep, err := sip.NewEndpoint(zerolog.Nop(), sip.Config{
			Listeners: []sip.Listener{{Network: "udp"}},
			UserAgent: "uad-fuzz",
			Recovered: func(string) { env.recovered.Add(1) },
		}, env)
		if err != nil {
			t.Fatal(err)
		}
		env.ep = ep
		fuzzEnvv = env
	})
	return fuzzEnvv
}

// seedMessages writes seed text with CRLF line ends and each message's
// Content-Length set to its body.
func seedMessages(s string) []byte {
	parts := strings.Split(strings.ReplaceAll(s, "\n", "\r\n"), "\r\n--\r\n")
	for i, part := range parts {
		head, body, _ := strings.Cut(part, "\r\n\r\n")
		var lines []string
		for _, l := range strings.Split(head, "\r\n") {
			if strings.HasPrefix(l, "Content-Length:") {
				l = "Content-Length: " + strconv.Itoa(len(body))
			}
			lines = append(lines, l)
		}
		parts[i] = strings.Join(lines, "\r\n") + "\r\n\r\n" + body
	}
	return []byte(strings.Join(parts, "\r\n--\r\n"))
}

// requestSeeds are requests a live call and a new one meet, in the
// forms the conformance tests write them.
var requestSeeds = []string{
	`INVITE sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-h1
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>;tag=$UADTAG
Call-ID: $CALLID
CSeq: 2 INVITE
Contact: <sip:alice@198.51.100.7>
Content-Type: application/sdp
Content-Length: 131

v=0
o=peer 4242 2 IN IP4 198.51.100.7
s=-
c=IN IP4 198.51.100.7
t=0 0
m=audio 30000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendonly
`,
	`INVITE sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-o1
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>;tag=$UADTAG
Call-ID: $CALLID
CSeq: 2 INVITE
Contact: <sip:alice@198.51.100.7>
Content-Length: 0

--
ACK sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-o2
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>;tag=$UADTAG
Call-ID: $CALLID
CSeq: 2 ACK
Content-Length: 0

`,
	`UPDATE sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-u1
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>;tag=$UADTAG
Call-ID: $CALLID
CSeq: 2 UPDATE
Contact: <sip:alice@198.51.100.7>
Session-Expires: 90;refresher=uac
Supported: timer
Content-Length: 0

`,
	`INFO sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-i1
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>;tag=$UADTAG
Call-ID: $CALLID
CSeq: 3 INFO
Content-Type: application/dtmf-relay
Content-Length: 24

Signal=5
Duration=160
--
BYE sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-b1
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>;tag=$UADTAG
Call-ID: $CALLID
CSeq: 2 BYE
Content-Length: 0

`,
	`INVITE sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-n1
From: <sip:carol@198.51.100.7>;tag=c1
To: <sip:uad@192.0.2.1>
Call-ID: new-call-1
CSeq: 1 INVITE
Require: timer, foo
Content-Length: 0

`,
	`INVITE sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-n2
From: <sip:carol@198.51.100.7>;tag=c2
To: <sip:uad@192.0.2.1>
Call-ID: new-call-2
CSeq: 1 INVITE
Contact: <sip:carol@198.51.100.7>
Content-Type: application/sdp
Content-Length: 175

v=0
o=peer 1 1 IN IP4 198.51.100.7
s=-
c=IN IP4 198.51.100.7
t=0 0
m=audio 30000 RTP/SAVP 0
a=rtpmap:0 PCMU/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x
m=audio 30002 RTP/AVP 0
`,
	`CANCEL sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-c1
From: <sip:alice@198.51.100.7>;tag=$PEERTAG
To: <sip:uad@192.0.2.1>
Call-ID: $CALLID
CSeq: 1 CANCEL
Content-Length: 0

`,
	`OPTIONS sip:uad@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-p1
From: <sip:alice@198.51.100.7>;tag=x
To: <sip:uad@192.0.2.1>
Call-ID: opt-1
CSeq: 1 OPTIONS
Content-Length: 0

`,
}
