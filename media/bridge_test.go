package media

import (
	"net"
	"testing"

	"github.com/pion/rtp"
)

// A bridge relays each peer's audio to the other, converting μ-law to
// A-law where the legs negotiated different laws.
func TestBridgeConvertsLaw(t *testing.T) {
	e := newTestEngine(t, 31800, 31819)
	a, _ := e.NewStream(false, false)
	b, _ := e.NewStream(false, false)
	defer a.Close()
	defer b.Close()
	pa, pb := peerSocket(t), peerSocket(t)
	pu := pcmuParams(pa.LocalAddr().(*net.UDPAddr).AddrPort())
	pA := pcmuParams(pb.LocalAddr().(*net.UDPAddr).AddrPort())
	pA.Send, pA.SendPT = PCMA, 8
	Bridge(a, b)
	a.Configure(StreamConfig{Params: pu, Send: true, Accept: true, Bridged: true})
	b.Configure(StreamConfig{Params: pA, Send: true, Accept: true, Bridged: true})

	sample := []byte{0x00, 0x7f, 0x80, 0xff}
	in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, Timestamp: 160, SSRC: 42}, Payload: sample}
	raw, _ := in.Marshal()
	if _, err := pa.WriteToUDP(raw, net.UDPAddrFromAddrPort(a.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	got := readRTP(t, pb)
	if got.PayloadType != 8 || got.SSRC == 42 {
		t.Fatalf("bridged packet PT %d SSRC %x, want PCMA from uad's own SSRC", got.PayloadType, got.SSRC)
	}
	want := make([]byte, len(sample))
	Transcode(want, sample, PCMU, PCMA)
	if string(got.Payload) != string(want) {
		t.Errorf("payload %x, want %x", got.Payload, want)
	}
	// The partner's call held: this leg's peer hears the hold tone instead.
	b.Configure(StreamConfig{Params: pA, Send: true, Accept: true, Bridged: true, PartnerHold: SourceHoldTone})
	tone := readRTP(t, pb)
	if tone.SSRC != got.SSRC || tone.SequenceNumber != got.SequenceNumber+1 || !tone.Marker {
		t.Errorf("hold tone packet ssrc %x seq %d marker %v after ssrc %x seq %d", tone.SSRC, tone.SequenceNumber, tone.Marker, got.SSRC, got.SequenceNumber)
	}
}
