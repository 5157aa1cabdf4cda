package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"uad/dialog"
	"uad/sip/trace"
)

// capturingCalls keeps the messages of call "c1" alone.
type capturingCalls struct {
	fakeCalls
	msgs []trace.Message
}

func (c *capturingCalls) Messages(id string) ([]trace.Message, uint64, error) {
	if id != "c1" {
		return nil, 0, dialog.ErrCallNotFound
	}
	return c.msgs, 3, nil
}

func TestCallSIPAndPcap(t *testing.T) {
	raw := "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n" +
		"Proxy-Authorization: Digest username=\"a\", response=\"0123456789abcdef\"\r\nContent-Length: 0\r\n\r\n"
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	calls := &capturingCalls{msgs: []trace.Message{
		{Time: at, Out: true, Transport: "UDP", Src: "127.0.0.1:5060", Dst: "127.0.0.1:5062", Raw: []byte(raw)},
		{Time: at.Add(time.Millisecond), Transport: "UDP", Src: "127.0.0.1:5062", Dst: "127.0.0.1:5060",
			Raw: []byte("SIP/2.0 100 Trying\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n")},
	}}
	h := newTestServer(calls)

	rec := serve(h, "GET", "/v1/calls/c1/sip", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET sip = %d %s", rec.Code, rec.Body)
	}
	var got []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 2 {
		t.Fatalf("GET sip body %s: %v, want 2 entries", rec.Body, err)
	}
	for _, key := range []string{"time", "dir", "transport", "src", "dst", "summary", "raw"} {
		if _, ok := got[0][key]; !ok {
			t.Errorf("entry lacks %q: %v", key, got[0])
		}
	}
	if got[0]["time"] != "2026-01-02T03:04:05.678901Z" || got[0]["dir"] != "out" || got[1]["dir"] != "in" ||
		got[0]["summary"] != "INVITE" || got[1]["summary"] != "100 Trying" || got[0]["src"] != "127.0.0.1:5060" {
		t.Errorf("entries = %v", got)
	}
	if strings.Contains(rec.Body.String(), "0123456789abcdef") {
		t.Error("GET sip shows the digest response")
	}
	if rec.Header().Get(HeaderDropped) != "3" {
		t.Errorf("%s = %q, want 3", HeaderDropped, rec.Header().Get(HeaderDropped))
	}

	rec = serve(h, "GET", "/v1/calls/c1/pcap", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/vnd.tcpdump.pcap" {
		t.Fatalf("GET pcap = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if strings.Contains(rec.Body.String(), "0123456789abcdef") {
		t.Error("GET pcap holds the digest response")
	}
	r, err := pcapgo.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, ci, err := r.ReadPacketData(); err != nil || !ci.Timestamp.Equal(calls.msgs[i].Time) {
			t.Errorf("pcap packet %d: %v at %v", i, err, ci.Timestamp)
		}
	}

	for _, path := range []string{"/v1/calls/nope/sip", "/v1/calls/nope/pcap"} {
		rec := serve(h, "GET", path, "")
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("GET %s = %d %s, want 404 with an error", path, rec.Code, rec.Body)
		}
	}
}
