package trace

import (
	"io"
	"testing"
	"time"
)

// FuzzMessages feeds arbitrary bytes through everything the API does with
// a captured message: TCP framing, attribution, summaries, redaction,
// ordering and the pcap writer. A peer chooses these bytes; nothing may
// panic, and redaction never changes a message's length.
func FuzzMessages(f *testing.F) {
	f.Add(sipMsg("INVITE sip:uad@127.0.0.1 SIP/2.0", "", sdpBody("sendonly", 0, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20\r\n")), true)
	f.Add(sipMsg("SIP/2.0 200 OK", ";tag=a", sdpBody("recvonly", 30000, "")), false)
	f.Add([]byte("ACK sip:x SIP/2.0\r\ni: a84b4c76e66710@pc33\r\nl: 4\r\n\r\nv=0\r\n"), true)
	f.Add([]byte("SIP/2.0 100\r\nCSeq:\r\nVia: ;branch\r\nAuthorization: Digest response=\"\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		rec := NewRecorder(4, nil)
		ring := rec.Open(callID)
		transport := "UDP"
		if tcp {
			transport = "TCP"
		}
		rec.SIPTraceRead(transport, uad, alice, raw)
		rec.SIPTraceWrite(transport, uad, alice, raw)
		rec.Record(time.Unix(1700000000, 0), false, transport, alice, uad, raw)
		msgs, _ := ring.Messages()
		msgs = append(msgs, Message{Time: time.Unix(1700000000, 0), Out: true, Transport: transport, Src: "[::1]:5060", Dst: "[::1]:5062", Raw: raw})
		for _, e := range Entries(msgs) {
			_ = e.Summary
		}
		if got := Redact(raw); len(got) != len(raw) {
			t.Fatalf("Redact changed the length from %d to %d", len(raw), len(got))
		}
		if err := WritePcap(io.Discard, msgs); err != nil {
			t.Fatalf("WritePcap: %v", err)
		}
	})
}
