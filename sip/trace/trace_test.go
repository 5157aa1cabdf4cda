package trace

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

const (
	callID = "a84b4c76e66710@pc33"
	alice  = "127.0.0.1:5062"
	uad    = "127.0.0.1:5060"
)

// sipMsg builds a message of callID with an optional SDP body.
func sipMsg(start, toTag string, body string, extra ...string) []byte {
	var b strings.Builder
	b.WriteString(start + "\r\n")
	b.WriteString("Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK776asdhds\r\n")
	b.WriteString("From: <sip:alice@127.0.0.1>;tag=1928301774\r\n")
	b.WriteString("To: <sip:uad@127.0.0.1>" + toTag + "\r\n")
	b.WriteString("Call-ID: " + callID + "\r\n")
	b.WriteString("CSeq: 1 INVITE\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

func sdpBody(audioDir string, videoPort int, extra string) string {
	return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 20000 RTP/AVP 0\r\na=" + audioDir + "\r\n" + extra +
		fmt.Sprintf("m=video %d RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n", videoPort)
}

func TestRingKeepsTheNewestAndCountsDropped(t *testing.T) {
	r := NewRing(3)
	at := time.Unix(1700000000, 0)
	for i := range 5 {
		r.add(at.Add(time.Duration(i)*time.Millisecond), i%2 == 0, "UDP", alice, uad, []byte(fmt.Sprintf("msg %d", i)))
	}
	msgs, dropped := r.Messages()
	if dropped != 2 {
		t.Errorf("dropped = %d, want 2", dropped)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Raw))
	}
	if strings.Join(got, ",") != "msg 2,msg 3,msg 4" {
		t.Errorf("messages = %v, want msg 2..4 oldest first", got)
	}
	// The copy is the caller's: later messages do not change it.
	r.add(at, false, "UDP", alice, uad, []byte("msg 5"))
	if string(msgs[0].Raw) != "msg 2" {
		t.Errorf("returned message changed under the caller: %q", msgs[0].Raw)
	}
}

func TestRecorderAttributesByCallIDAndAdoptsTheIncomingInvite(t *testing.T) {
	rec := NewRecorder(10, nil)
	invite := sipMsg("INVITE sip:uad@127.0.0.1 SIP/2.0", "", sdpBody("sendrecv", 30000, ""))
	rec.SIPTraceRead("UDP", uad, alice, invite)
	trying := sipMsg("SIP/2.0 100 Trying", "", "")
	rec.SIPTraceWrite("UDP", uad, alice, trying)
	// Another call's message and a stray one are not kept.
	rec.SIPTraceRead("UDP", uad, alice, bytes.ReplaceAll(sipMsg("BYE sip:uad@127.0.0.1 SIP/2.0", ";tag=x", ""), []byte(callID), []byte("other")))

	ring := rec.Open(callID)
	rec.SIPTraceWrite("UDP", uad, alice, sipMsg("SIP/2.0 200 OK", ";tag=uad1", sdpBody("sendrecv", 20002, "")))
	msgs, _ := ring.Messages()
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want INVITE, 100, 200", len(msgs))
	}
	want := []struct {
		out      bool
		src, dst string
		start    string
	}{{false, alice, uad, "INVITE"}, {true, uad, alice, "100 Trying"}, {true, uad, alice, "200 OK"}}
	for i, w := range want {
		m := msgs[i]
		if m.Out != w.out || m.Src != w.src || m.Dst != w.dst || StartLine(m.Raw) != w.start || m.Transport != "UDP" {
			t.Errorf("message %d = %s %s->%s %q, want out=%v %s->%s %q", i, m.Dir(), m.Src, m.Dst, StartLine(m.Raw), w.out, w.src, w.dst, w.start)
		}
	}
	rec.Close(callID)
	rec.SIPTraceRead("UDP", uad, alice, sipMsg("BYE sip:uad@127.0.0.1 SIP/2.0", ";tag=uad1", ""))
	if r := rec.Open("never-seen"); r == nil {
		t.Fatal("Open returned nil with capture on")
	}
}

func TestRecorderCutsTCPReadsIntoMessages(t *testing.T) {
	rec := NewRecorder(10, nil)
	ring := rec.Open(callID)
	a := sipMsg("INVITE sip:uad@127.0.0.1 SIP/2.0", ";tag=2", sdpBody("sendonly", 30000, ""))
	b := sipMsg("ACK sip:uad@127.0.0.1 SIP/2.0", ";tag=2", "")
	stream := append(append([]byte("\r\n\r\n"), a...), b...)
	// Delivered in pieces that split both messages.
	for _, piece := range [][]byte{stream[:10], stream[10 : len(a)+20], stream[len(a)+20:]} {
		rec.SIPTraceRead("TCP", uad, alice, piece)
	}
	msgs, _ := ring.Messages()
	if len(msgs) != 2 || !bytes.Equal(msgs[0].Raw, a) || !bytes.Equal(msgs[1].Raw, b) {
		t.Fatalf("got %d messages, want the INVITE and the ACK whole", len(msgs))
	}
	if len(rec.streams) != 0 {
		t.Errorf("%d stream buffers left after whole messages", len(rec.streams))
	}
}

func TestSummariesTellHoldAndPortChanges(t *testing.T) {
	at := time.Unix(1700000000, 123456000)
	msg := func(out bool, raw []byte) Message {
		return Message{Time: at, Out: out, Transport: "UDP", Src: uad, Dst: alice, Raw: raw}
	}
	msgs := []Message{
		msg(true, sipMsg("INVITE sip:alice@127.0.0.1 SIP/2.0", "", sdpBody("sendrecv", 20002, ""))),
		msg(false, sipMsg("SIP/2.0 180 Ringing", ";tag=a", "")),
		msg(false, sipMsg("SIP/2.0 200 OK", ";tag=a", sdpBody("sendrecv", 30002, ""))),
		msg(true, sipMsg("ACK sip:alice@127.0.0.1 SIP/2.0", ";tag=a", "")),
		msg(true, sipMsg("INVITE sip:alice@127.0.0.1 SIP/2.0", ";tag=a", sdpBody("sendonly", 0, ""))),
		msg(false, sipMsg("SIP/2.0 200 OK", ";tag=a", sdpBody("recvonly", 0, ""))),
		msg(true, sipMsg("INVITE sip:alice@127.0.0.1 SIP/2.0", ";tag=a", sdpBody("sendonly", 0, ""))),
		msg(true, sipMsg("INVITE sip:alice@127.0.0.1 SIP/2.0", ";tag=a", sdpBody("sendrecv", 20004, ""))),
		msg(true, []byte("INVITE sip:x SIP/2.0\r\nCall-ID: x\r\nContent-Type: application/sdp\r\nContent-Length: 7\r\n\r\nnot sdp")),
	}
	want := []string{
		"INVITE (SDP: audio sendrecv, video sendrecv)",
		"180 Ringing",
		"200 OK (SDP: audio sendrecv, video sendrecv)",
		"ACK",
		"INVITE (hold: audio sendonly, video port 0)",
		"200 OK (hold: audio recvonly, video port 0)",
		"INVITE (SDP unchanged)",
		"INVITE (resume: audio sendrecv, video port 20004 sendrecv)",
		"INVITE (SDP unreadable)",
	}
	entries := Entries(msgs)
	for i, e := range entries {
		if e.Summary != want[i] {
			t.Errorf("summary %d = %q, want %q", i, e.Summary, want[i])
		}
	}
	if e := entries[0]; e.Time != "2023-11-14T22:13:20.123456Z" || e.Dir != "out" || e.CSeq != "1 INVITE" || !e.SDP {
		t.Errorf("entry 0 = %+v: time with µs, dir out, cseq and sdp wanted", e)
	}
	if entries[1].SDP {
		t.Error("a message without body marked as SDP")
	}
}

func TestRedactMasksCredentialsAndSRTPKeys(t *testing.T) {
	key := "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	body := sdpBody("sendrecv", 0, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20|1:32\r\n")
	raw := sipMsg("INVITE sip:uad@127.0.0.1 SIP/2.0", "", body,
		`Authorization: Digest username="bob", realm="uad", nonce="abc", uri="sip:uad@127.0.0.1", response="6629fae49393a05397450978507c4ef1"`,
		`Proxy-Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.secret`)
	out := string(Redact(raw))
	for _, secret := range []string{key, "6629fae49393a05397450978507c4ef1", "eyJhbGciOiJIUzI1NiJ9.secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted message still holds %q", secret)
		}
	}
	for _, kept := range []string{`username="bob"`, `nonce="abc"`, "Proxy-Authorization: Bearer ***", "inline:****", "|2^20|1:32", "AES_CM_128_HMAC_SHA1_80"} {
		if !strings.Contains(out, kept) {
			t.Errorf("redacted message lost %q:\n%s", kept, out)
		}
	}
	if len(out) != len(raw) {
		t.Errorf("redaction changed the length from %d to %d (Content-Length would lie)", len(raw), len(out))
	}
	if !strings.Contains(string(raw), key) {
		t.Error("Redact changed its input")
	}
}

func TestPcapReadsBackWithPcapgo(t *testing.T) {
	at := time.Unix(1700000000, 500000000)
	key := "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	msgs := []Message{
		{Time: at, Out: true, Transport: "UDP", Src: uad, Dst: alice, Raw: sipMsg("INVITE sip:alice@127.0.0.1 SIP/2.0", "", sdpBody("sendrecv", 0, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"\r\n"))},
		{Time: at.Add(time.Millisecond), Transport: "TCP", Src: "[::1]:5062", Dst: "[::1]:5060", Raw: sipMsg("SIP/2.0 200 OK", ";tag=a", "")},
		{Time: at.Add(2 * time.Millisecond), Transport: "TCP", Src: "[::1]:5062", Dst: "[::1]:5060", Raw: sipMsg("BYE sip:uad SIP/2.0", ";tag=a", "")},
	}
	var buf bytes.Buffer
	if err := WritePcap(&buf, msgs); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v", r.LinkType())
	}
	var nextSeq uint32
	for i := 0; ; i++ {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			if i != len(msgs) {
				t.Fatalf("read %d packets, want %d", i, len(msgs))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		m := msgs[i]
		if !ci.Timestamp.Equal(m.Time) {
			t.Errorf("packet %d at %v, want %v", i, ci.Timestamp, m.Time)
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if p.ErrorLayer() != nil {
			t.Fatalf("packet %d: %v", i, p.ErrorLayer().Error())
		}
		src, dst := p.NetworkLayer().NetworkFlow().Endpoints()
		tsrc, tdst := p.TransportLayer().TransportFlow().Endpoints()
		if got := net.JoinHostPort(src.String(), tsrc.String()); netip.MustParseAddrPort(got) != netip.MustParseAddrPort(m.Src) {
			t.Errorf("packet %d from %s, want %s", i, got, m.Src)
		}
		if got := net.JoinHostPort(dst.String(), tdst.String()); netip.MustParseAddrPort(got) != netip.MustParseAddrPort(m.Dst) {
			t.Errorf("packet %d to %s, want %s", i, got, m.Dst)
		}
		payload := p.TransportLayer().LayerPayload()
		if !bytes.Equal(payload, Redact(m.Raw)) {
			t.Errorf("packet %d payload differs from the redacted message", i)
		}
		if bytes.Contains(payload, []byte(key)) {
			t.Errorf("packet %d carries the SRTP key", i)
		}
		if tcp, ok := p.TransportLayer().(*layers.TCP); ok {
			if nextSeq != 0 && tcp.Seq != nextSeq {
				t.Errorf("packet %d: TCP seq %d, want %d (continuing the stream)", i, tcp.Seq, nextSeq)
			}
			nextSeq = tcp.Seq + uint32(len(payload))
		} else if m.Transport == "TCP" {
			t.Errorf("packet %d is not TCP", i)
		}
	}
}

func TestHEP3Chunks(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hep, err := DialHEP(ln.LocalAddr().String(), 2001)
	if err != nil {
		t.Fatal(err)
	}
	defer hep.Close()
	rec := NewRecorder(0, hep) // export only: nothing kept
	raw := sipMsg("INVITE sip:uad@127.0.0.1 SIP/2.0", "", "")
	rec.SIPTraceRead("UDP", uad, alice, raw)

	_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := ln.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	pkt := buf[:n]
	if string(pkt[:4]) != "HEP3" || int(binary.BigEndian.Uint16(pkt[4:])) != n {
		t.Fatalf("header %q length %d, want HEP3 and %d", pkt[:4], binary.BigEndian.Uint16(pkt[4:]), n)
	}
	chunks := map[uint16][]byte{}
	for rest := pkt[6:]; len(rest) > 0; {
		if len(rest) < 6 {
			t.Fatalf("truncated chunk header: %x", rest)
		}
		vendor, typ, l := binary.BigEndian.Uint16(rest), binary.BigEndian.Uint16(rest[2:]), int(binary.BigEndian.Uint16(rest[4:]))
		if vendor != 0 || l < 6 || l > len(rest) {
			t.Fatalf("chunk %d: vendor %d length %d of %d left", typ, vendor, l, len(rest))
		}
		chunks[typ] = rest[6:l]
		rest = rest[l:]
	}
	expect := map[uint16][]byte{
		hepIPFamily:    {2},
		hepIPProto:     {17},
		hepIPv4Src:     {127, 0, 0, 1},
		hepIPv4Dst:     {127, 0, 0, 1},
		hepSrcPort:     {0x13, 0xc6}, // 5062
		hepDstPort:     {0x13, 0xc4}, // 5060
		hepProtoType:   {1},
		hepCaptureID:   {0, 0, 0x07, 0xd1},
		hepCorrelation: []byte(callID),
		hepPayload:     raw,
	}
	for typ, want := range expect {
		if !bytes.Equal(chunks[typ], want) {
			t.Errorf("chunk %d = %x, want %x", typ, chunks[typ], want)
		}
	}
	sec, usec := binary.BigEndian.Uint32(chunks[hepTimeSec]), binary.BigEndian.Uint32(chunks[hepTimeUsec])
	sent := time.Unix(int64(sec), int64(usec)*1000)
	if d := time.Since(sent); d < 0 || d > 5*time.Second || usec >= 1e6 {
		t.Errorf("timestamp %v (usec %d) is not the time of sending", sent, usec)
	}
}

// BenchmarkRecord is capture's cost per message at a high call rate: calls
// come and go, so rings reuse the buffers of released ones.
func BenchmarkRecord(b *testing.B) {
	rec := NewRecorder(200, nil)
	invite := sipMsg("INVITE sip:uad@127.0.0.1 SIP/2.0", ";tag=x", sdpBody("sendonly", 0, ""))
	ok := sipMsg("SIP/2.0 200 OK", ";tag=x", sdpBody("recvonly", 0, ""))
	ack := sipMsg("ACK sip:uad@127.0.0.1 SIP/2.0", ";tag=x", "")
	const perCall = 60 // 10 hold cycles of re-INVITE, 200, ACK each way
	b.ReportAllocs()
	b.SetBytes(int64(len(invite)))
	for i := 0; i < b.N; i += perCall {
		rec.Open(callID)
		for j := 0; j < perCall && i+j < b.N; j += 3 {
			rec.SIPTraceWrite("UDP", uad, alice, invite)
			rec.SIPTraceRead("UDP", uad, alice, ok)
			rec.SIPTraceWrite("UDP", uad, alice, ack)
		}
		rec.Close(callID)
	}
}

func TestCausalOrderPutsWhatWasSentBeforeItsAnswer(t *testing.T) {
	at := time.Unix(1700000000, 0)
	req := func(method, branch, cseq string) []byte {
		return []byte(method + " sip:bob SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=" + branch + ";rport\r\nCSeq: " + cseq + "\r\n\r\n")
	}
	res := func(status, branch, cseq string) []byte {
		return []byte("SIP/2.0 " + status + "\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=" + branch + "\r\nCSeq: " + cseq + "\r\n\r\n")
	}
	msgs := []Message{
		{Time: at, Out: false, Raw: res("200 OK", "b2", "2 INVITE")},                          // traced before...
		{Time: at.Add(time.Millisecond), Out: true, Raw: req("INVITE", "b2", "2 INVITE")},     // ...the re-INVITE it answers
		{Time: at.Add(2 * time.Millisecond), Out: false, Raw: req("ACK", "b9", "7 ACK")},      // an ACK traced before...
		{Time: at.Add(3 * time.Millisecond), Out: true, Raw: res("200 OK", "b8", "7 INVITE")}, // ...the 200 it acknowledges
		{Time: at.Add(4 * time.Millisecond), Out: true, Raw: req("BYE", "b3", "3 BYE")},
		{Time: at.Add(5 * time.Millisecond), Out: false, Raw: res("200 OK", "b3", "3 BYE")},
		{Time: at.Add(6 * time.Millisecond), Out: true, Raw: res("180 Ringing", "b5", "5 INVITE")},
		{Time: at.Add(7 * time.Millisecond), Out: false, Raw: req("ACK", "b5", "5 ACK")},                      // an ACK traced before...
		{Time: at.Add(8 * time.Millisecond), Out: true, Raw: res("487 Request Terminated", "b5", "5 INVITE")}, // ...the failure it acknowledges
	}
	causalOrder(msgs)
	var got []string
	for _, m := range msgs {
		got = append(got, StartLine(m.Raw)+"/"+string(header(m.Raw, "cseq", "cseq")))
	}
	want := "INVITE/2 INVITE,200 OK/2 INVITE,200 OK/7 INVITE,ACK/7 ACK,BYE/3 BYE,200 OK/3 BYE," +
		"180 Ringing/5 INVITE,487 Request Terminated/5 INVITE,ACK/5 ACK"
	if strings.Join(got, ",") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Time.Before(msgs[i-1].Time) {
			t.Errorf("message %d at %v is before message %d at %v", i, msgs[i].Time, i-1, msgs[i-1].Time)
		}
	}
}

func TestRecorderBoundsUnfinishedTCPMessages(t *testing.T) {
	rec := NewRecorder(10, nil)
	partial := []byte("INVITE sip:uad@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\n")
	for i := range maxStreams + 10 {
		rec.SIPTraceRead("TCP", uad, fmt.Sprintf("127.0.0.1:%d", 10000+i), partial)
	}
	if n := len(rec.streams); n > maxStreams {
		t.Errorf("%d connections with an unfinished message kept, want at most %d", n, maxStreams)
	}
	huge := append(append([]byte(nil), partial...), bytes.Repeat([]byte("X-Pad: y\r\n"), maxStream/10+1)...)
	rec.SIPTraceRead("TCP", uad, "127.0.0.1:9", huge)
	if _, ok := rec.streams[fmt.Sprintf("TCP %s 127.0.0.1:9", uad)]; ok {
		t.Error("a message over 64 KiB without its end is still kept")
	}
}

// Every key of every a=crypto line is masked, with its lifetime, MKI and
// session parameters left as they were (RFC 4568 §9.1).
func TestRedactMasksEveryInlineKey(t *testing.T) {
	keys := []string{"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3Bxcg==", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"}
	msg := "INVITE sip:b@h SIP/2.0\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 4000 RTP/SAVP 0\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + keys[0] + "|2^31|1:4\r\n" +
		"a=crypto:2 AEAD_AES_128_GCM inline:" + keys[1] + " KDR=1\r\n" +
		"a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:" + keys[2] + ";inline:" + keys[0] + "\r\n"
	got := string(Redact([]byte(msg)))
	for _, key := range keys {
		if strings.Contains(got, key) {
			t.Errorf("key %s... left in:\n%s", key[:8], got)
		}
	}
	stars := func(k string) string { return strings.Repeat("*", len(k)) }
	for _, kept := range []string{
		"inline:" + stars(keys[0]) + "|2^31|1:4\r\n",
		"inline:" + stars(keys[1]) + " KDR=1\r\n",
		"inline:" + stars(keys[2]) + ";inline:" + stars(keys[0]) + "\r\n",
		"m=audio 4000 RTP/SAVP 0\r\n",
	} {
		if !strings.Contains(got, kept) {
			t.Errorf("redacted message lacks %q:\n%s", kept, got)
		}
	}
	if len(got) != len(msg) {
		t.Errorf("redacting changed the length from %d to %d", len(msg), len(got))
	}
	// A TCP read that begins inside the body.
	if frag := string(Redact([]byte(msg[strings.Index(msg, "a=crypto:2"):]))); strings.Contains(frag, keys[1]) {
		t.Errorf("a body fragment kept its key:\n%s", frag)
	}
}
