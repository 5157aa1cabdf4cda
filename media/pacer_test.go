package media

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

// newPacedEngine makes an engine with one pacer that the test drives by
// hand: due(now) stands for the clock reaching now.
func newPacedEngine(t *testing.T, min, max int) (*Engine, *pacer, time.Time) {
	t.Helper()
	epoch := time.Now()
	e, err := newEngine(zerolog.Nop(), EngineConfig{
		Bind: netip.MustParseAddr("127.0.0.1"), PortMin: min, PortMax: max,
		HoldTone: "440/300,0/3700", Tone: "440",
	}, newScheduler(1, epoch, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, e.sched.pacers[0], epoch
}

// Held streams spread over the slots of a frame period; a pacer that falls
// behind sends each stream one frame, not the backlog, and that frame's
// timestamp and tone position follow the frames that elapsed, while the
// sequence numbers stay consecutive.
func TestPacerSkipsLateFramesAndKeepsTheClock(t *testing.T) {
	e, p, epoch := newPacedEngine(t, 33000, 33019)
	const n = 3
	var streams [n]*Stream
	var peers [n]*net.UDPConn
	for i := range streams {
		s, err := e.NewStream(false, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		peers[i] = peerSocket(t)
		s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peers[i].LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, LocalHold: true})
		streams[i] = s
	}
	slots := map[int]bool{}
	for _, s := range streams {
		slots[s.pslot] = true
	}
	if len(slots) != n {
		t.Fatalf("%d streams share %d slots, want one each", n, len(slots))
	}
	at := func(tick int64) time.Time { return epoch.Add(time.Duration(tick) * slotPeriod) }
	clip := e.clip(e.holdSpec(), PCMU)
	refs := make([]ClipCursor, n)
	for i := range refs {
		refs[i] = clip.Cursor()
	}
	want := make([]byte, G711FrameSize)
	var last [n]rtp.Packet
	// check reads each stream's next packet: frames periods after the last.
	check := func(what string, frames int) {
		t.Helper()
		for i, peer := range peers {
			got := readRTP(t, peer)
			refs[i].Skip(frames - 1)
			refs[i].Next(want)
			if !bytes.Equal(got.Payload, want) {
				t.Errorf("%s: stream %d sent another part of the hold tone", what, i)
			}
			if last[i].SSRC != 0 {
				if got.SSRC != last[i].SSRC || got.SequenceNumber != last[i].SequenceNumber+1 || got.Marker {
					t.Errorf("%s: stream %d: ssrc %#x seq %d marker %v after ssrc %#x seq %d", what, i,
						got.SSRC, got.SequenceNumber, got.Marker, last[i].SSRC, last[i].SequenceNumber)
				}
				if d := got.Timestamp - last[i].Timestamp; d != uint32(frames)*frameSamples {
					t.Errorf("%s: stream %d: timestamp moved %d, want %d (%d frames)", what, i, d, frames*frameSamples, frames)
				}
			} else if !got.Marker {
				t.Errorf("%s: stream %d: the first packet has no marker", what, i)
			}
			last[i] = got
		}
	}
	if _, ok := p.due(at(pacerSlots - 1)); !ok {
		t.Fatal("the pacer reports no streams")
	}
	check("first period", 1)
	p.due(at(2*pacerSlots - 1))
	check("on time", 1)
	if got := e.SkippedFrames(); got != 0 {
		t.Errorf("%d frames skipped on time", got)
	}
	// Four periods late: each stream's latest deadline is four frames after
	// its last one.
	next, _ := p.due(at(6*pacerSlots - 1))
	check("four frames late", 4)
	if got := e.SkippedFrames(); got != 3*n {
		t.Errorf("SkippedFrames = %d, want %d", got, 3*n)
	}
	// Nothing more is due at the same time: the next packet of each is the
	// next frame.
	if again, _ := p.due(at(6*pacerSlots - 1)); !again.Equal(next) {
		t.Errorf("next deadline moved from %v to %v", next.Sub(epoch), again.Sub(epoch))
	}
	p.due(at(7*pacerSlots - 1))
	check("back on time", 1)

	// The deadlines of streams on one pacer are a slot apart, and the
	// pacer wakes only for slots that have streams.
	if next.Sub(epoch)%slotPeriod != 0 {
		t.Errorf("deadline %v is off the slot grid", next.Sub(epoch))
	}
	for _, s := range streams {
		s.Configure(StreamConfig{Mode: ModeEcho, Params: s.cfg.Params, Send: false})
	}
	if _, ok := p.due(at(8*pacerSlots - 1)); ok {
		t.Error("a pacer without streams still has a deadline")
	}
}

// A tick from a pacer's snapshot after the stream left it sends nothing,
// and neither does a second tick for a frame already sent.
func TestPacerStaleTicks(t *testing.T) {
	e, p, epoch := newPacedEngine(t, 33020, 33029)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeSilence, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true})
	first := epoch.Add(time.Duration(s.pslot) * slotPeriod)
	s.tick(p, first)
	a := readRTP(t, peer)
	s.tick(p, first)                         // the same frame again
	s.tick(p, first.Add(slotPeriod))         // less than half a frame later
	s.tick(&pacer{}, first.Add(framePeriod)) // another pacer's
	s.tick(p, first.Add(framePeriod))
	b := readRTP(t, peer)
	if b.SequenceNumber != a.SequenceNumber+1 || b.Timestamp-a.Timestamp != frameSamples {
		t.Errorf("seq %d -> %d, ts %d -> %d: want the next frame only", a.SequenceNumber, b.SequenceNumber, a.Timestamp, b.Timestamp)
	}
}

// A telephone-event whose frames the pacer skipped still lasts as long as
// asked: its duration counts the frames that elapsed.
func TestPacerDTMFCountsSkippedFrames(t *testing.T) {
	e, p, epoch := newPacedEngine(t, 33030, 33039)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	params := pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort())
	params.SendDTMF = 101
	s.Configure(StreamConfig{Mode: ModeEcho, Params: params, Send: true, Accept: true})
	if err := s.SendDTMF("7", 200*time.Millisecond); err != nil { // 10 frames
		t.Fatal(err)
	}
	at := func(frame int) time.Time {
		return epoch.Add(time.Duration(s.pslot)*slotPeriod + time.Duration(frame)*framePeriod)
	}
	duration := func(pkt rtp.Packet) int { return int(binary.BigEndian.Uint16(pkt.Payload[2:])) }
	s.tick(p, at(0))
	first := readRTP(t, peer)
	if !first.Marker || duration(first) != frameSamples {
		t.Fatalf("first event packet: marker %v duration %d", first.Marker, duration(first))
	}
	s.tick(p, at(6)) // five frames skipped: the packet covers seven
	late := readRTP(t, peer)
	if duration(late) != 7*frameSamples || late.Timestamp != first.Timestamp || late.SequenceNumber != first.SequenceNumber+1 {
		t.Errorf("after a gap of six frames: duration %d ts %d seq %d; want %d, %d, %d",
			duration(late), late.Timestamp, late.SequenceNumber, 7*frameSamples, first.Timestamp, first.SequenceNumber+1)
	}
	s.tick(p, at(20)) // long past the end: the duration is capped
	if last := readRTP(t, peer); duration(last) != 10*frameSamples {
		t.Errorf("last update: duration %d, want %d", duration(last), 10*frameSamples)
	}
	s.tick(p, at(21))
	end := readRTP(t, peer)
	if duration(end) != 10*frameSamples || end.Payload[1]&0x80 == 0 {
		t.Errorf("end packet: duration %d end %v; want %d, true", duration(end), end.Payload[1]&0x80 != 0, 10*frameSamples)
	}
}

// Skip lands where as many calls of Next would: in a clip's intro, across
// its loop, and at the end of a clip that plays once.
func TestClipCursorSkip(t *testing.T) {
	clips := map[string]*Clip{
		"intro and loop": mustToneClip(t, "440/30,350+440", PCMU),
		"hold tone":      mustToneClip(t, "440/300,0/3700", PCMA),
		"once":           mustToneClip(t, "!440/70", PCMU),
		"wav":            NewWAVClip([]int16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, PCMU),
	}
	a, b := make([]byte, G711FrameSize), make([]byte, G711FrameSize)
	for name, clip := range clips {
		for start := range 5 {
			for skip := range 30 {
				stepped, skipped := clip.Cursor(), clip.Cursor()
				for range start {
					stepped.Next(a)
					skipped.Next(a)
				}
				for range skip {
					stepped.Next(a)
				}
				skipped.Skip(skip)
				okA, okB := stepped.Next(a), skipped.Next(b)
				if okA != okB || okA && !bytes.Equal(a, b) {
					t.Errorf("%s: from frame %d, Skip(%d) then Next = %v, %d Nexts then Next = %v, or the frames differ",
						name, start, skip, okB, skip, okA)
				}
			}
		}
	}
}

// A paced frame (clip, header, write) allocates nothing.
func TestTickAllocatesNothing(t *testing.T) {
	e, p, epoch := newPacedEngine(t, 33040, 33049)
	s, err := e.NewStream(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(t)
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, LocalHold: true})
	at := epoch
	if allocs := testing.AllocsPerRun(1000, func() {
		at = at.Add(framePeriod)
		s.tick(p, at)
	}); allocs != 0 {
		t.Errorf("a paced frame allocates %.1f times", allocs)
	}
}

func BenchmarkTickHoldTone(b *testing.B) {
	epoch := time.Now()
	e, err := newEngine(zerolog.Nop(), EngineConfig{
		Bind: netip.MustParseAddr("127.0.0.1"), PortMin: 33050, PortMax: 33059,
		HoldTone: "440/300,0/3700", Tone: "440",
	}, newScheduler(1, epoch, false))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	s, err := e.NewStream(false, false)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	peer := peerSocket(b)
	s.Configure(StreamConfig{Mode: ModeEcho, Params: pcmuParams(peer.LocalAddr().(*net.UDPAddr).AddrPort()), Send: true, LocalHold: true})
	p := e.sched.pacers[0]
	at := epoch
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(framePeriod)
		s.tick(p, at)
	}
}
