package conformance

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"uad/dialog"
)

// RFC 3550 A.8: interarrival jitter uses timestamp differences modulo 2^32:
// a clean 20 ms stream whose RTP timestamps wrap shows almost no jitter.
func TestRFC3550_A_8_JitterAcrossTimestampWrap(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	_, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
	to := u.audioAddr(t, id)

	const packets = 50
	rp.ts = math.MaxUint32 - 20*160 + 1 // wraps after 20 packets
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < packets; i++ {
		<-tick.C
		rp.sendAudio(t, to, byte(i))
	}
	rp.readTagged(t, packets-1) // echoed: uad has taken every packet
	st := u.get(t, id).Audio.Stats
	if st == nil || st.PacketsReceived != packets {
		t.Fatalf("audio stats %+v, want %d packets received", st, packets)
	}
	t.Logf("jitter_ms %.2f", st.JitterMS)
	if st.JitterMS >= 5 {
		t.Errorf("jitter_ms = %.1f for a clean 20 ms stream across a timestamp wrap, want below 5", st.JitterMS)
	}
}

// RFC 3550 §6.1: every RTCP compound packet starts with SR or RR and carries
// an SDES CNAME.
func TestRFC3550_6_1_RTCPCompoundHasSDESCNAME(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	_, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
	to := u.audioAddr(t, id)
	for i := 0; i < 5; i++ {
		rp.sendAudio(t, to, byte(i))
	}
	rp.readTagged(t, 4)
	// uad reports every 2.5–7.5 s (RFC 3550 §6.3.1, 5 s mean).
	pkts, err := rp.readRTCP(10 * time.Second)
	if err != nil {
		t.Fatalf("no RTCP from uad: %v", err)
	}
	switch pkts[0].(type) {
	case *rtcp.SenderReport, *rtcp.ReceiverReport:
	default:
		t.Errorf("RTCP compound starts with %T, want SR or RR", pkts[0])
	}
	cname, kinds := "", ""
	for _, pkt := range pkts {
		kinds += fmt.Sprintf(" %T", pkt)
		if sdes, ok := pkt.(*rtcp.SourceDescription); ok {
			for _, chunk := range sdes.Chunks {
				for _, item := range chunk.Items {
					if item.Type == rtcp.SDESCNAME {
						cname = item.Text
					}
				}
			}
		}
	}
	if cname == "" {
		t.Errorf("RTCP compound from uad has no SDES CNAME; it holds:%s", kinds)
	}
}

// RFC 3550 §8.2 leaves source checks to the receiver; uad's contract takes
// RTP only from the negotiated address: packets from elsewhere count in no
// statistic and do not keep media.rtp_timeout from ending the call.
func TestRFC3550_8_2_StrayRTPIgnored(t *testing.T) {
	t.Parallel()
	u := startUAD(t, func(c *dialog.Config) { c.RTPTimeout = 10 * time.Second })
	p := newSIPPeer(t, false)
	rp := newRTPPeer(t)
	stray := newRTPPeer(t)
	_, id, _ := liveInbound(t, u, p, "UDP", offerAudio(rp), req{})
	to := u.audioAddr(t, id)

	for i := 0; i < 20; i++ {
		stray.sendAudio(t, to, 200)
	}
	for i := 0; i < 5; i++ {
		rp.sendAudio(t, to, byte(i))
	}
	rp.readTagged(t, 4) // uad read the strays first: same socket, sent before
	lastLegit := time.Now()
	if st := u.get(t, id).Audio.Stats; st == nil || st.PacketsReceived != 5 {
		t.Errorf("audio stats %+v after 5 packets from the peer and 20 from another address, want packets_received 5", st)
	}

	u.requireFakeTimers(t)
	mark := u.ev.mark()
	for i := 0; i < 25; i++ {
		stray.sendAudio(t, to, 200)
		u.clock.Advance(time.Second)
	}
	e := u.waitEvent(t, mark, "call.ended", id)
	if reason := e.Fields["reason"]; reason != dialog.EndTimeout {
		t.Errorf("call ended with reason %v, want %s", reason, dialog.EndTimeout)
	}
	if e.Call.Audio != nil && e.Call.Audio.Stats != nil {
		st := e.Call.Audio.Stats
		if st.PacketsReceived != 5 {
			t.Errorf("final packets_received %d, want 5 (the peer's)", st.PacketsReceived)
		}
		if st.LastReceived != nil && st.LastReceived.After(lastLegit) {
			t.Errorf("final last_received %v is after the peer's last packet (%v): stray RTP counted", st.LastReceived, lastLegit)
		}
	}
}
