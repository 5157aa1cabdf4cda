package tests

// Robustness: RFC 4475's torture messages and random garbage, over UDP and
// TCP, sent to a uad with a call up. The daemon must stay up and healthy,
// keep the call, answer the well-formed requests it can parse, and take new
// calls afterwards.

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tortureMsg is one message of testdata/torture.
type tortureMsg struct {
	Name  string // e.g. "valid/wsinv"
	Valid bool
	Data  []byte
}

// request reports whether the message is a request that asks for a
// response: not a response, not an ACK.
func (m tortureMsg) request() bool {
	return !bytes.HasPrefix(m.Data, []byte("SIP/")) && !bytes.HasPrefix(m.Data, []byte("ACK "))
}

func loadTorture(t *testing.T) []tortureMsg {
	t.Helper()
	var msgs []tortureMsg
	for _, kind := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", "torture", kind, "*.dat"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no torture messages in testdata/torture/%s: %v", kind, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, tortureMsg{Name: kind + "/" + strings.TrimSuffix(filepath.Base(f), ".dat"), Valid: kind == "valid", Data: data})
		}
	}
	return msgs
}

// garbage returns n datagrams: random bytes, and torture messages with
// random bytes overwritten, cut or repeated, which get further into a parser.
func garbage(rng *rand.Rand, msgs []tortureMsg, n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			b := make([]byte, 1+rng.IntN(1400))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
			out = append(out, b)
			continue
		}
		b := bytes.Clone(msgs[rng.IntN(len(msgs))].Data)
		switch rng.IntN(3) {
		case 0:
			for k := 0; k < 1+rng.IntN(8); k++ {
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			}
		case 1:
			b = b[:rng.IntN(len(b))]
		case 2:
			at := rng.IntN(len(b))
			b = append(b[:at:at], bytes.Repeat(b[at:], 2)...)
		}
		out = append(out, b)
	}
	return out
}

// unanswered are the well-formed requests uad is known not to answer, and why.
var unanswered = map[string]string{
	"valid/longreq UDP": "every response to it is larger than the MTU, which sipgo does not send over UDP (RFC 3261 §18.2.2 lets it: IP fragments)",
	"valid/dblreq TCP":  "its extra bytes after the body are a datagram's (RFC 4475 §3.1.1.4); on a stream they start a broken second message",
}

// viaAt replaces the first Via of a message with one naming addr over
// transport, so that the response comes to the test rather than to the
// message's own 192.0.2.x host.
func viaAt(msg []byte, transport, addr, branch string) []byte {
	var out strings.Builder
	lines := strings.SplitAfter(string(msg), "\n")
	replaced, skipFolded := false, false
	for i, line := range lines {
		if skipFolded && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			continue // a folded continuation of the Via replaced
		}
		skipFolded = false
		if strings.TrimSpace(line) == "" { // the end of the headers
			out.WriteString(strings.Join(lines[i:], ""))
			break
		}
		name, _, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if ok && !replaced && (strings.EqualFold(name, "Via") || strings.EqualFold(name, "v")) {
			fmt.Fprintf(&out, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", transport, addr, branch)
			replaced, skipFolded = true, true
			continue
		}
		out.WriteString(line)
	}
	return []byte(out.String())
}

// sendUDP sends data on conn and returns the status line of the first
// response that carries branch, or "" when none came within 3 s.
func sendUDP(t *testing.T, conn net.Conn, data []byte, branch string) string {
	if _, err := conn.Write(data); err != nil {
		t.Errorf("UDP send: %v", err)
		return ""
	}
	buf := make([]byte, 65536)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return ""
		}
		if resp := string(buf[:n]); strings.HasPrefix(resp, "SIP/2.0 ") && strings.Contains(resp, branch) {
			return resp[:strings.IndexByte(resp, '\r')]
		}
	}
}

// sendTCP writes data on a connection of its own and returns the status
// line of the first response uad wrote back within wait, or "".
func sendTCP(t *testing.T, addr string, data []byte, wait time.Duration) string {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Errorf("TCP connect to uad: %v", err)
		return ""
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(data); err != nil {
		return "" // uad may close a connection that sent nonsense
	}
	rd := bufio.NewReader(conn)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return ""
		}
		if strings.HasPrefix(line, "SIP/2.0 ") {
			return strings.TrimSpace(line)
		}
	}
}

func TestTortureMessagesAndGarbage(t *testing.T) {
	u, ev, _, first := sippCallsUAD(t, UADOptions{Config: map[string]any{"media.rtp_timeout": "0s"}}, "uac_wait_bye.xml", "-s", "uad", "-timeout", "120s")
	id := ev.WaitType(t, "call.connected", "", sigTimeout).CallID()

	msgs := loadTorture(t)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("UAD_TORTURE_SEED"), 10, 64); err == nil {
		seed = s // replays a failed run's garbage
	}
	t.Logf("garbage seed %d (UAD_TORTURE_SEED replays it)", seed)
	junk := garbage(rand.New(rand.NewPCG(seed, seed>>1)), msgs, 200)

	// UDP: every message and the garbage, verbatim. Responses go where the
	// messages' Via headers say (192.0.2.x), so none is awaited here.
	udp, err := net.Dial("udp", u.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, m := range msgs {
		if _, err := udp.Write(m.Data); err != nil {
			t.Fatalf("UDP %s: %v", m.Name, err)
		}
	}
	for _, b := range junk {
		_, _ = udp.Write(b) // too large for a datagram is fine too
		time.Sleep(time.Millisecond)
	}

	// TCP: each message and ten garbage chunks a connection, in parallel.
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() { sendTCP(t, u.SIPAddr(), m.Data, 300*time.Millisecond) })
	}
	for i := 0; i < len(junk); i += 10 {
		chunk := bytes.Join(junk[i:min(i+10, len(junk))], nil)
		wg.Go(func() { sendTCP(t, u.SIPAddr(), chunk, 300*time.Millisecond) })
	}
	wg.Wait()

	// The requests again, their Via pointing at the test so that the
	// response comes back: each well-formed one must be answered, over UDP
	// and TCP; what the others get is logged. The messages go in parallel,
	// each on a socket of its own (an unanswered one costs its whole wait);
	// first every one over UDP, then over TCP.
	type answer struct{ udp, tcp string }
	answers := make([]answer, len(msgs))
	for _, transport := range []string{"UDP", "TCP"} {
		for i, m := range msgs {
			if !m.request() {
				continue
			}
			branch := fmt.Sprintf("z9hG4bK-torture-%s-%d", transport, i)
			wg.Go(func() {
				if transport == "TCP" {
					answers[i].tcp = sendTCP(t, u.SIPAddr(), viaAt(m.Data, "TCP", "127.0.0.1:9", branch), 3*time.Second)
					return
				}
				conn, err := net.Dial("udp", u.SIPAddr())
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				answers[i].udp = sendUDP(t, conn, viaAt(m.Data, "UDP", conn.LocalAddr().String(), branch), branch)
			})
		}
		wg.Wait()
	}
	for i, m := range msgs {
		if !m.request() {
			continue
		}
		t.Logf("%-18s UDP %q, TCP %q", m.Name, answers[i].udp, answers[i].tcp)
		if !m.Valid {
			continue
		}
		for transport, status := range map[string]string{"UDP": answers[i].udp, "TCP": answers[i].tcp} {
			if why, known := unanswered[m.Name+" "+transport]; known && status == "" {
				t.Logf("%s over %s: no response: %s", m.Name, transport, why)
			} else if status == "" {
				t.Errorf("%s: a well-formed request got no response over %s", m.Name, transport)
			}
		}
	}

	// Still alive, still healthy, the call still up.
	u.requireHealthy(t)
	if c := u.Call(id); c.State != "live" {
		t.Errorf("the call placed before: state %q, want live", c.State)
	}

	// And a new call works.
	second := startSipp(t, "uac_wait_bye.xml", "-s", "uad", "-key", "rtp_port", itoa(newRTPPeer(t, 0).Port()), u.SIPAddr())
	id2 := ev.WaitFor(t, func(e Event) bool { return e.Type == "call.connected" && e.CallID() != id }, sigTimeout).CallID()
	u.Hangup(id2)
	second.WaitOK()
	u.Hangup(id)
	first.WaitOK()
	u.requireHealthy(t)
}
