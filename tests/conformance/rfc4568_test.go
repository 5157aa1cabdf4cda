package conformance

// RFC 4568 (SDES) with RFC 3711 SRTP: uad against a raw SIP peer whose RTP
// is encrypted and authenticated by pion/srtp, as any SRTP peer's would be.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"uad/dialog"
	"uad/media"
)

const suite80 = "AES_CM_128_HMAC_SHA1_80"

// newKey is a random AES_CM_128 master key and salt, base64 as a=crypto
// writes it.
func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func context80(t *testing.T, b64 string) *srtp.Context {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// savpM is an RTP/SAVP audio m-section with the given a=crypto values.
func savpM(port int, dir string, cryptos ...string) string {
	s := fmt.Sprintf("m=audio %d RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n", port)
	if dir != "" {
		s += "a=" + dir + "\r\n"
	}
	for _, c := range cryptos {
		s += "a=crypto:" + c + "\r\n"
	}
	return s
}

// answerCrypto is the one a=crypto line of uad's answer.
func answerCrypto(t *testing.T, res *sipIn) media.Crypto {
	t.Helper()
	rs, err := media.ParseRemote(res.body())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := rs.Stream("audio")
	if a == nil || a.Proto != "RTP/SAVP" || len(a.Crypto) != 1 {
		t.Fatalf("answer's audio is not RTP/SAVP with one a=crypto:\n%s", res.body())
	}
	return a.Crypto[0]
}

// sendSRTP encrypts the peer's next tagged frame with tx.
func (p *rtpPeer) sendSRTP(t *testing.T, to netip.AddrPort, tag byte, tx *srtp.Context) {
	t.Helper()
	payload := bytes.Repeat([]byte{0xFF}, 160)
	payload[0] = tag
	plain, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: p.seq,
		Timestamp: p.ts, SSRC: p.ssrc}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p.seq++
	p.ts += 160
	enc, err := tx.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.rtp.WriteToUDPAddrPort(enc, to); err != nil {
		t.Fatal(err)
	}
}

// echoedSRTP sends tagged SRTP until its echo comes back; every packet uad
// sends meanwhile must authenticate with rx.
func (p *rtpPeer) echoedSRTP(t *testing.T, to netip.AddrPort, tag byte, tx, rx *srtp.Context) {
	t.Helper()
	buf := make([]byte, 1500)
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		p.sendSRTP(t, to, tag, tx)
		_ = p.rtp.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, err := p.rtp.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			plain, err := rx.DecryptRTP(nil, buf[:n], nil)
			if err != nil {
				t.Fatalf("a packet of uad does not authenticate with its key: %v", err)
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(plain) == nil && len(pkt.Payload) > 0 && pkt.Payload[0] == tag {
				return
			}
		}
	}
	t.Fatalf("no echo of SRTP tagged %d", tag)
}

// A peer offers SDES-SRTP to uad (media.srtp accept): uad takes the first
// line it supports, answers with its own key under that tag, and echoes
// the peer's SRTP as SRTP. A hold and resume with the same key keep the
// contexts; a malformed key in a re-INVITE is refused with 488 and the call
// goes on as it was; a new key (§7.1.4) re-keys without a gap: what the
// peer sent with its old key just before the change still comes back.
func TestRFC4568_SDESCallHoldRekey(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	keyA := newKey(t)
	c, id, ok := liveInbound(t, u, p, "UDP", peerSDP(1, "127.0.0.1",
		savpM(rp.port, "", "1 AES_256_CM_HMAC_SHA1_80 inline:"+keyA+keyA[:20], "2 "+suite80+" inline:"+keyA)), req{})
	ours := answerCrypto(t, ok)
	if ours.Tag != 2 || ours.Suite != suite80 || strings.Contains(string(ok.body()), keyA) {
		t.Fatalf("answer a=crypto tag %d suite %s; want tag 2, %s, a key of uad's own", ours.Tag, ours.Suite, suite80)
	}
	if info := u.get(t, id); info.Audio.SRTP == nil || *info.Audio.SRTP != suite80 {
		t.Fatalf("audio.srtp = %v, want %s", info.Audio.SRTP, suite80)
	}
	uadAddr := netip.MustParseAddrPort(u.get(t, id).Audio.LocalRTP)
	tx, rx := context80(t, keyA), context80(t, base64.StdEncoding.EncodeToString(ours.Key))
	rp.echoedSRTP(t, uadAddr, 1, tx, rx)

	// Plain RTP to an SRTP stream is dropped, and counted as such: only the
	// SRTP packet after it comes back (echoedSRTP fails on anything that
	// does not authenticate).
	rp.sendAudio(t, uadAddr, 2)
	rp.echoedSRTP(t, uadAddr, 3, tx, rx)
	if st := u.get(t, id).Audio.Stats; st == nil || st.SRTPFailed != 1 {
		t.Errorf("audio.stats %+v: want srtp_failed 1 (the plain packet)", st)
	}

	reinvite := func(version int, body string) *sipIn {
		t.Helper()
		inv := c.send(t, "INVITE", req{body: peerSDP(version, "127.0.0.1", body)})
		res := c.final(t, inv)
		if res.res.StatusCode == 200 {
			c.ack(t, inv, "")
		}
		return res
	}
	for i, dir := range []string{"sendonly", "sendrecv"} {
		res := reinvite(2+i, savpM(rp.port, dir, "2 "+suite80+" inline:"+keyA))
		if res.res.StatusCode != 200 {
			t.Fatalf("%s re-INVITE answered %d", dir, res.res.StatusCode)
		}
		if again := answerCrypto(t, res); !again.Same(ours) {
			t.Fatalf("%s re-INVITE with the same key: uad's key changed", dir)
		}
	}
	rp.echoedSRTP(t, uadAddr, 4, tx, rx) // the same contexts, after hold and resume

	res := reinvite(4, savpM(rp.port, "sendrecv", "2 "+suite80+" inline:"+keyA[:20]))
	if res.res.StatusCode != 488 {
		t.Fatalf("re-INVITE with a malformed key answered %d, want 488", res.res.StatusCode)
	}
	c.ackFailure(t, res)
	rp.echoedSRTP(t, uadAddr, 5, tx, rx)
	if info := u.get(t, id); info.State != dialog.StateLive {
		t.Fatalf("after the refused re-INVITE: state %s", info.State)
	}

	keyB := newKey(t)
	res = reinvite(5, savpM(rp.port, "sendrecv", "2 "+suite80+" inline:"+keyB))
	if res.res.StatusCode != 200 {
		t.Fatalf("re-key re-INVITE answered %d", res.res.StatusCode)
	}
	next := answerCrypto(t, res)
	if next.Tag != 2 || bytes.Equal(next.Key, ours.Key) {
		t.Fatalf("after the peer's new key uad kept its own (tag %d)", next.Tag)
	}
	rx = context80(t, base64.StdEncoding.EncodeToString(next.Key))
	rp.echoedSRTP(t, uadAddr, 6, tx, rx) // sent with the old key, answered with the new
	rp.echoedSRTP(t, uadAddr, 7, context80(t, keyB), rx)
}

// What uad refuses, and that refusing one call ends no other: SRTP offered
// to media.srtp off, plain RTP to require, only unsupported suites or
// session parameters, a malformed key. An unsupported SRTP stream beside a
// plain one is declined in place.
func TestRFC4568_Mismatches(t *testing.T) {
	t.Parallel()
	modes := map[media.SRTPMode]*uadUnderTest{}
	for _, m := range []media.SRTPMode{media.SRTPOff, media.SRTPAccept, media.SRTPRequire} {
		modes[m] = startUAD(t, func(c *dialog.Config) { c.SRTP = m })
	}
	p := newSIPPeer(t, false)
	rtps := newRTPPeers(t, 2)
	key := newKey(t)
	// A call up on the accept uad, through every refusal below.
	accept := modes[media.SRTPAccept]
	_, liveID, _ := liveInbound(t, accept, p, "UDP", offerAudio(rtps[0]), req{})
	mark := accept.ev.mark()

	for _, tt := range []struct {
		name   string
		mode   media.SRTPMode
		body   string
		status int
		protos string // of the answer's m-lines, "proto:port-or-0"
	}{
		{"off, SRTP only", media.SRTPOff, savpM(rtps[1].port, "", "1 "+suite80+" inline:"+key), 488, ""},
		{"require, plain only", media.SRTPRequire, audioM(rtps[1].port, ""), 488, ""},
		{"require, SRTP", media.SRTPRequire, savpM(rtps[1].port, "", "1 "+suite80+" inline:"+key), 200, "RTP/SAVP:on"},
		{"unsupported suite only", media.SRTPAccept, savpM(rtps[1].port, "", "1 AES_192_CM_HMAC_SHA1_80 inline:"+key), 488, ""},
		{"session parameters only", media.SRTPAccept, savpM(rtps[1].port, "", "1 "+suite80+" inline:"+key+" KDR=5", "2 "+suite80+" inline:"+key+" FEC_ORDER=SRTP_FEC"), 488, ""},
		{"unsupported suite beside plain", media.SRTPAccept,
			savpM(rtps[1].port, "", "1 AES_192_CM_HMAC_SHA1_80 inline:"+key) + audioM(rtps[1].port+10, ""), 200, "RTP/SAVP:0 RTP/AVP:on"},
		{"malformed key", media.SRTPAccept, savpM(rtps[1].port, "", "1 "+suite80+" inline:"+key+"|2^48|7:4"), 488, ""},
		{"bad base64 key", media.SRTPAccept, savpM(rtps[1].port, "", "1 "+suite80+" inline:%%%"), 488, ""},
	} {
		u := modes[tt.mode]
		_, res := inviteFinal(t, u, p, peerSDP(1, "127.0.0.1", tt.body))
		if res.res.StatusCode != tt.status {
			t.Errorf("%s: answered %d %s, want %d", tt.name, res.res.StatusCode, res.res.Reason, tt.status)
			continue
		}
		if tt.status != 200 {
			continue
		}
		var got []string
		for _, m := range requireSDP(t, res, strings.Count(tt.body, "m=")) {
			port := "on"
			if m.port == 0 {
				port = "0"
			}
			got = append(got, m.proto+":"+port)
		}
		if strings.Join(got, " ") != tt.protos {
			t.Errorf("%s: answer m-lines %s, want %s", tt.name, strings.Join(got, " "), tt.protos)
		}
	}
	if info := accept.get(t, liveID); info.State != dialog.StateLive {
		t.Errorf("the call up beside the refusals is %s, want live", info.State)
	}
	if _, _, ended := accept.ev.find(mark, 0, onCall("call.ended", liveID)); ended {
		t.Error("the call up beside the refusals ended")
	}
}
