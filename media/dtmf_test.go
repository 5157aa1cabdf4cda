package media

import (
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestSendDTMFEvents(t *testing.T) {
	e := newTestEngine(t, 31600, 31609)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	p := pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort())
	p.SendDTMF = 96 // the peer's number, not a fixed 101
	s.Configure(StreamConfig{Mode: ModeEcho, Params: p, Send: true, Accept: true})
	if err := s.SendDTMF("1#", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	type event struct {
		ts          uint32
		marker, end bool
		code        byte
	}
	var got []event
	for len(got) < 2*(5+3) {
		pkt := readRTP(t, peer)
		if pkt.PayloadType != 96 {
			t.Fatalf("PT %d, want 96", pkt.PayloadType)
		}
		got = append(got, event{pkt.Timestamp, pkt.Marker, pkt.Payload[1]&0x80 != 0, pkt.Payload[0]})
	}
	for i, ev := range got {
		first := i%8 == 0
		if ev.marker != first || ev.end != (i%8 >= 5) || ev.ts != got[i/8*8].ts {
			t.Errorf("packet %d = %+v", i, ev)
		}
	}
	if got[0].code != 1 || got[8].code != 11 {
		t.Errorf("codes %d %d, want 1 and 11", got[0].code, got[8].code)
	}
	if got[8].ts-got[0].ts < 800 {
		t.Errorf("second event starts %d samples after the first, want after its 100 ms", got[8].ts-got[0].ts)
	}
	s.Configure(StreamConfig{Mode: ModeEcho, Params: p, Send: true, Accept: false, LocalHold: true})
	if err := s.SendDTMF("5", 100*time.Millisecond); err != ErrDTMFNotSending {
		t.Errorf("DTMF while holding: %v, want ErrDTMFNotSending", err)
	}
	p.SendDTMF = -1
	s.Configure(StreamConfig{Mode: ModeEcho, Params: p, Send: true, Accept: true})
	if err := s.SendDTMF("5", 100*time.Millisecond); err != ErrDTMFNotNegotiated {
		t.Errorf("DTMF without telephone-event: %v", err)
	}
}

func TestReceiveDTMFOncePerEvent(t *testing.T) {
	e := newTestEngine(t, 31700, 31709)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	p := pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort())
	s.Configure(StreamConfig{Mode: ModeSilence, Params: p, Send: true, Accept: true})
	digits := make(chan string, 10)
	s.OnDTMF(func(d string) { digits <- d })
	to := net.UDPAddrFromAddrPort(s.LocalAddr())
	send := func(seq uint16, ts uint32, code byte, end bool) {
		flags := byte(10)
		if end {
			flags |= 0x80
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: DTMFPayloadType, SequenceNumber: seq, Timestamp: ts, SSRC: 5}, Payload: []byte{code, flags, 0, 160}}
		b, _ := pkt.Marshal()
		peer.WriteToUDP(b, to)
	}
	for i := 0; i < 6; i++ { // one event: 3 updates, 3 end packets
		send(uint16(i), 1000, 5, i >= 3)
	}
	send(6, 2000, 11, false)
	want := []string{"5", "#"}
	for _, w := range want {
		select {
		case d := <-digits:
			if d != w {
				t.Errorf("digit %q, want %q", d, w)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("digit %q not reported", w)
		}
	}
	select {
	case d := <-digits:
		t.Errorf("extra digit %q: events must be reported once", d)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestParseDTMFRelay(t *testing.T) {
	for body, want := range map[string]string{
		"Signal=5\r\nDuration=160\r\n": "5",
		"Signal= #\r\n":                "#",
		"signal=11\nDuration=100":      "#",
		"Duration=100":                 "",
	} {
		if got, _ := ParseDTMFRelay(body); got != want {
			t.Errorf("ParseDTMFRelay(%q) = %q, want %q", body, got, want)
		}
	}
}
