package conformance

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"uad/dialog"
)

// RFC 4585 §6.3.1: on a video call relayed to a local endpoint, a PLI the
// peer sends about uad's video SSRC reaches the endpoint as a PLI about the
// endpoint's own SSRC: it is the endpoint that must send a key frame.
func TestRFC4585_6_3_1_PLIReachesRelayEndpoint(t *testing.T) {
	t.Parallel()
	u := startUAD(t)
	p := newSIPPeer(t, false)
	peer := newRTPPeers(t, 2)  // the SIP peer's audio and video
	relay := newRTPPeers(t, 2) // the relay endpoint: audio at R, video at R+2
	spec := dialog.MediaSpec{Mode: dialog.MediaRelay, Relay: relay[0].addr()}
	_, call, _ := liveOutbound(t, u, p, peer[0], dialog.PlaceRequest{Video: true, Media: &spec},
		answerPlan{audioPort: peer[0].port, videoPort: peer[1].port})
	info := u.get(t, call.ID)
	if info.Video == nil {
		t.Fatal("video is not open")
	}
	relayLocal, err1 := netip.ParseAddrPort(info.Video.RelayLocal)
	videoLocal, err2 := netip.ParseAddrPort(info.Video.LocalRTP)
	if err1 != nil || err2 != nil {
		t.Fatalf("video relay_local %q, local_rtp %q", info.Video.RelayLocal, info.Video.LocalRTP)
	}

	// The endpoint's video reaches the peer under uad's SSRC.
	frame := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 90000,
		SSRC: relay[1].ssrc, Marker: true}, Payload: []byte{0x65, 0x88, 0x84, 0x00}}
	relay[1].send(t, relayLocal, frame)
	got, _, err := peer[1].read(3 * time.Second)
	if err != nil {
		t.Fatalf("the endpoint's video did not reach the peer: %v", err)
	}
	uadSSRC := got.SSRC
	peer[1].send(t, videoLocal, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7,
		Timestamp: 1000, SSRC: peer[1].ssrc}, Payload: []byte{0x41, 0x9a}})

	compound, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: peer[1].ssrc},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: peer[1].ssrc,
			Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "peer@127.0.0.1"}}}}},
		&rtcp.PictureLossIndication{SenderSSRC: peer[1].ssrc, MediaSSRC: uadSSRC},
	})
	if err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(videoLocal.Addr(), videoLocal.Port()+1)
	if _, err := peer[1].rtcp.WriteToUDPAddrPort(compound, to); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(3 * time.Second)
	for {
		pkts, err := relay[1].readRTCP(time.Until(deadline))
		if err != nil {
			t.Fatalf("no PLI reached the relay endpoint's video RTCP port: %v", err)
		}
		for _, pkt := range pkts {
			if pli, ok := pkt.(*rtcp.PictureLossIndication); ok {
				if pli.MediaSSRC != relay[1].ssrc {
					t.Errorf("PLI to the endpoint names media SSRC %08x, want the endpoint's %08x", pli.MediaSSRC, relay[1].ssrc)
				}
				return
			}
		}
	}
}
