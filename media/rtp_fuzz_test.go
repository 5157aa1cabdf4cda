package media

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fuzzRig is a set of streams in the shapes the receive path takes: echo
// (with a law conversion and a telephone-event mapping), relay, and video.
type fuzzRig struct {
	echo    *Stream      // reached through its socket, by rtpPeer
	rtpPeer *net.UDPConn // what echo sends to
	direct  []*Stream    // driven by calling forward; they send to a sink
	seq     uint16
}

func newFuzzRig(f *testing.F) *fuzzRig {
	// A range of its own, wide enough for one rig per parallel fuzz worker:
	// openPair skips the ports other workers hold.
	e := newTestEngine(f, 31800, 31899)
	open := func(video, relay bool) *Stream {
		s, err := e.NewStream(video, relay)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(s.Close)
		return s
	}
	sink := peerSocket(f).LocalAddr().(*net.UDPAddr).AddrPort()
	r := &fuzzRig{echo: open(false, false), rtpPeer: peerSocket(f)}
	r.echo.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(r.rtpPeer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, Accept: true})

	// PCMA out, telephone-event at 96 from the peer and 101 toward it.
	local := &LocalStream{Kind: "audio", Formats: AudioFormats([]Law{PCMA, PCMU}, true)}
	remote := &RemoteStream{Kind: "audio", Formats: []Format{
		{PT: 8, Name: "PCMA", Rate: 8000, Channels: 1}, {PT: 0, Name: "PCMU", Rate: 8000, Channels: 1},
		{PT: 96, Name: "telephone-event", Rate: 8000, Channels: 1},
	}}
	pcma, err := NegotiateAudio(local, remote, AnswerAudio(remote.Formats, []Law{PCMA}), []Law{PCMA, PCMU})
	if err != nil {
		f.Fatal(err)
	}
	pcma.Remote = sink
	conv := open(false, false)
	conv.Configure(StreamConfig{Mode: ModeEcho, Params: pcma, Send: true, Accept: true})

	relay := open(false, true)
	relay.Configure(StreamConfig{Mode: ModeRelay, Params: pcmuParams(sink), Send: true, Accept: true, Relay: sink})

	video, err := NegotiateVideo(&LocalStream{Kind: "video", Formats: VideoFormats()}, &RemoteStream{Kind: "video", Formats: []Format{
		{PT: 100, Name: "VP8", Rate: 90000}, {PT: 96, Name: "H264", Rate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	video.Remote = sink
	vs := open(true, false)
	vs.Configure(StreamConfig{Mode: ModeEcho, Video: video, Send: true, Accept: true})

	r.direct = []*Stream{conv, relay, vs}
	return r
}

// forwardAll gives a parsed packet to every direct stream's forward path,
// toward the peer and, when relaying, toward the local endpoint.
func (r *fuzzRig) forwardAll(hdr *rtp.Header, payload []byte) {
	var conv [maxPacket]byte
	now := time.Now()
	for _, s := range r.direct {
		s.mu.Lock() // as readPeer holds it
		in := *hdr  // forward may not keep or change the caller's header
		s.forward(s.toPeer, s.cfg.remote(s.video), &in, payload, 0, conv[:], now)
		if s.toRelay != nil {
			s.forward(s.toRelay, s.cfg.Relay, &in, payload, 0, conv[:], now)
		}
		s.mu.Unlock()
	}
}

// viaSocket sends pkt to the echo stream's socket, then a well-formed packet
// after it, and waits for that one's echo: once it is back, the stream's
// receive loop has taken pkt and still works. A panic in that loop crashes
// the test binary while pkt is the input being run, so the fuzzer keeps it.
func (r *fuzzRig) viaSocket(t *testing.T, pkt []byte) {
	to := net.UDPAddrFromAddrPort(r.echo.LocalAddr())
	if _, err := r.rtpPeer.WriteToUDP(pkt, to); err != nil && len(pkt) <= maxPacket {
		t.Fatalf("send: %v", err)
	}
	r.seq++
	probe := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: r.seq, Timestamp: uint32(r.seq) * 160, SSRC: 0x5eed}, Payload: bytes.Repeat([]byte{byte(r.seq), byte(r.seq >> 8)}, 80)}
	b, _ := probe.Marshal()
	if _, err := r.rtpPeer.WriteToUDP(b, to); err != nil {
		t.Fatalf("send probe: %v", err)
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(2 * time.Second)
	for {
		_ = r.rtpPeer.SetReadDeadline(deadline)
		n, err := r.rtpPeer.Read(buf)
		if err != nil {
			t.Fatalf("the echo stream stopped echoing after %x: %v", pkt, err)
		}
		var got rtp.Packet
		if got.Unmarshal(buf[:n]) == nil && bytes.Equal(got.Payload, probe.Payload) {
			return
		}
	}
}

// FuzzRTPHeader feeds arbitrary datagrams to what uad does with received
// RTP: pion's parsing, the forward path of every stream shape, and a real
// stream's receive loop through its socket. Seeds are in
// testdata/fuzz/FuzzRTPHeader.
func FuzzRTPHeader(f *testing.F) {
	r := newFuzzRig(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var hdr rtp.Header
		if n, err := hdr.Unmarshal(pkt); err == nil {
			if n > len(pkt) {
				t.Fatalf("header of %d bytes in a %d-byte packet", n, len(pkt))
			}
			if out, err := hdr.Marshal(); err == nil && len(out) != hdr.MarshalSize() {
				t.Fatalf("Marshal wrote %d bytes, MarshalSize says %d", len(out), hdr.MarshalSize())
			}
			r.forwardAll(&hdr, pkt[n:])
		}
		var p rtp.Packet
		if p.Unmarshal(pkt) == nil {
			r.forwardAll(&p.Header, p.Payload) // the payload without its padding
		}
		// A datagram past maxPacket+1 bytes reads as one of maxPacket+1:
		// its socket round trip teaches nothing new and costs the most.
		if len(pkt) <= maxPacket+1 {
			r.viaSocket(t, pkt)
		}
	})
}

// FuzzOfferAnswer negotiates arbitrary SDP offers the way calls do: answer
// formats from the offer, then the send/receive parameters of each stream.
// Seeds (the offers of testdata/sdp and a few odd ones) are in
// testdata/fuzz/FuzzOfferAnswer.
func FuzzOfferAnswer(f *testing.F) {
	laws := []Law{PCMU, PCMA, G722, mustCodecLaw(f, "opus/48000/2")}
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := ParseRemote(body)
		if err != nil {
			return
		}
		// Every answer parses and keeps the offer's m-lines, in order.
		local := NewLocalSession(1, netip.MustParseAddr("127.0.0.1"))
		local.Streams = Answer(rs, AnswerPlan{Laws: laws, AudioPort: 20000, AudioSend: true, AudioRecv: true, VideoPort: 20002})
		back, err := ParseRemote(local.Marshal())
		if err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, local.Marshal())
		}
		if len(back.Streams) != len(rs.Streams) {
			t.Fatalf("answer has %d m-lines, the offer %d", len(back.Streams), len(rs.Streams))
		}
		for i := range back.Streams {
			if back.Streams[i].Kind != rs.Streams[i].Kind {
				t.Fatalf("m-line %d is %s in the answer, %s in the offer", i, back.Streams[i].Kind, rs.Streams[i].Kind)
			}
			// An SRTP stream accepted is keyed: one line of ours, paired
			// with an offered one, whose keys make contexts.
			if ls := &local.Streams[i]; ls.Port != 0 && IsSDESProfile(ls.Proto) {
				keys, err := NegotiateSRTP(ls, &rs.Streams[i])
				if len(back.Streams[i].Crypto) != 1 || err != nil || keys == nil {
					t.Fatalf("SRTP m-line %d answered with %d a=crypto lines (%v)", i, len(back.Streams[i].Crypto), err)
				}
				if _, err := newContext(keys.Local, keys.Suite); err != nil {
					t.Fatalf("m-line %d: our key makes no context: %v", i, err)
				}
				if _, err := newContext(keys.Remote, keys.Suite); err != nil {
					t.Fatalf("m-line %d: the offered key makes no context: %v", i, err)
				}
			}
		}
		for i := range rs.Streams {
			remote := &rs.Streams[i]
			switch remote.Kind {
			case "audio":
				answer := AnswerAudio(remote.Formats, laws)
				local := &LocalStream{Kind: "audio", Formats: answer}
				p, err := NegotiateAudio(local, remote, answer, laws)
				if answer != nil && err != nil {
					t.Fatalf("answered %v but cannot negotiate: %v", answer, err)
				}
				if err == nil {
					if law, ok := p.RecvLaw(p.SendPT); !ok || law != p.Send {
						t.Fatalf("sends PT %d as %v but receives it as %v (%v)", p.SendPT, p.Send, law, ok)
					}
				}
			case "video":
				answer := AnswerVideo(remote.Formats)
				p, err := NegotiateVideo(&LocalStream{Kind: "video", Formats: answer}, remote)
				if len(answer) > 0 && err != nil {
					t.Fatalf("answered %v but cannot negotiate: %v", answer, err)
				}
				for _, f := range answer {
					if _, ok := p.SendPT(f.PT); !ok {
						t.Fatalf("answered PT %d but does not map it", f.PT)
					}
				}
			}
		}
	})
}
