package tests

// Per-call SIP capture end to end: two uad instances call each other over
// UDP and TCP, hold and resume, hang up; GET /v1/calls/{id}/sip lists the
// dialog's messages in order with their summaries, GET .../pcap holds the
// same messages, every one dissected as SIP by tshark, and trace.hep
// exports them to a HEP3 listener.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SIPEntry is one element of GET /v1/calls/{id}/sip.
type SIPEntry struct {
	Time      string `json:"time"`
	Dir       string `json:"dir"`
	Transport string `json:"transport"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Summary   string `json:"summary"`
	CSeq      string `json:"cseq"`
	SDP       bool   `json:"sdp"`
	Raw       string `json:"raw"`
}

// sipOf does GET /v1/calls/{id}/sip and requires 200.
func sipOf(t testing.TB, u *UAD, id string) []SIPEntry {
	t.Helper()
	return getJSON[[]SIPEntry](t, u, "/v1/calls/"+id+"/sip", "a list of SIP messages")
}

// step is a message expected in a call's capture.
type step struct {
	dir     string
	summary string // the summary, or its beginning when it ends with "*"
	cseq    string // the method of the CSeq; "" = any
}

func (s step) matches(e SIPEntry) bool {
	if e.Dir != s.dir || (s.cseq != "" && !strings.HasSuffix(e.CSeq, " "+s.cseq)) {
		return false
	}
	if prefix, ok := strings.CutSuffix(s.summary, "*"); ok {
		return strings.HasPrefix(e.Summary, prefix)
	}
	return e.Summary == s.summary
}

// checkSteps requires want to appear in entries in order (retransmissions
// and provisional responses may come between).
func checkSteps(t testing.TB, who string, entries []SIPEntry, want []step) {
	t.Helper()
	i := 0
	for _, e := range entries {
		if i < len(want) && want[i].matches(e) {
			i++
		}
	}
	if i < len(want) {
		var got []string
		for _, e := range entries {
			got = append(got, e.Dir+" "+e.Summary+" ["+e.CSeq+"]")
		}
		t.Fatalf("%s: capture lacks %+v (and what follows) in order; it has:\n%s", who, want[i], strings.Join(got, "\n"))
	}
}

// callerSteps and calleeSteps are a call held and resumed by the caller,
// then hung up by it, as each side sees it.
var (
	callerSteps = []step{
		{"out", "INVITE (SDP: audio sendrecv)", ""},
		{"in", "200 OK (SDP: audio sendrecv)", "INVITE"},
		{"out", "ACK", ""},
		{"out", "INVITE (hold: audio sendonly)", ""},
		{"in", "200 OK (hold: audio recvonly)", "INVITE"},
		{"out", "ACK", ""},
		{"out", "INVITE (resume: audio sendrecv)", ""},
		{"in", "200 OK (resume: audio sendrecv)", "INVITE"},
		{"out", "ACK", ""},
		{"out", "BYE", ""},
		{"in", "200 OK", "BYE"},
	}
	calleeSteps = []step{
		{"in", "INVITE (SDP: audio sendrecv)", ""},
		{"out", "200 OK (SDP: audio sendrecv)", "INVITE"},
		{"in", "ACK", ""},
		{"in", "INVITE (hold: audio sendonly)", ""},
		{"out", "200 OK (hold: audio recvonly)", "INVITE"},
		{"in", "ACK", ""},
		{"in", "INVITE (resume: audio sendrecv)", ""},
		{"out", "200 OK (resume: audio sendrecv)", "INVITE"},
		{"in", "ACK", ""},
		{"in", "BYE", ""},
		{"out", "200 OK", "BYE"},
	}
)

// holdCycleCall places a call from a to b (to), holds, resumes and hangs it
// up, and returns both sides' ids once each side's capture has the 200 to
// the BYE.
func holdCycleCall(t *testing.T, a, b *UAD, evA, evB *EventStream, to string) (string, string) {
	t.Helper()
	idA := a.PlaceCall(to, nil).ID
	idB := waitBothConnected(t, evA, idA, evB)
	mustHold(t, a, idA)
	evA.WaitType(t, "hold.success", idA, sigTimeout)
	mustUnhold(t, a, idA)
	evA.WaitType(t, "unhold.success", idA, sigTimeout)
	a.Hangup(idA)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
	// The 200 to the BYE may go out (and come in) just after call.ended.
	for _, side := range []struct {
		u  *UAD
		id string
	}{{a, idA}, {b, idB}} {
		if !poll(sigTimeout, 20*time.Millisecond, func() bool {
			e := sipOf(t, side.u, side.id)
			return len(e) > 0 && strings.HasSuffix(e[len(e)-1].CSeq, " BYE") && strings.HasPrefix(e[len(e)-1].Summary, "200")
		}) {
			t.Fatalf("uad %s: capture of %s never ended with the 200 to the BYE: %+v", side.u.Name, side.id, sipOf(t, side.u, side.id))
		}
	}
	return idA, idB
}

// checkEntries requires every entry to go between the two SIP sockets of
// the call, with times that never go back. Over TCP the caller's end of the
// connection has a port of its own: only the callee's (listening) address
// is known, and calleeLocal tells which side that is.
func checkEntries(t testing.TB, who string, entries []SIPEntry, transport, local, remote string, calleeLocal bool) {
	t.Helper()
	var last time.Time
	for i, e := range entries {
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			t.Errorf("%s: entry %d time %q: %v", who, i, e.Time, err)
		}
		if at.Before(last) {
			t.Errorf("%s: entry %d at %v is before the one before it (%v)", who, i, at, last)
		}
		last = at
		if e.Transport != transport {
			t.Errorf("%s: entry %d transport %q, want %s", who, i, e.Transport, transport)
		}
		src, dst := local, remote
		if e.Dir == "in" {
			src, dst = remote, local
		}
		checkSrc, checkDst := true, true
		if transport == "TCP" {
			// The callee is the source of what it sends, the destination
			// of what it receives.
			checkSrc = calleeLocal == (e.Dir == "out")
			checkDst = !checkSrc
		}
		if checkSrc && e.Src != src || checkDst && e.Dst != dst {
			t.Errorf("%s: entry %d (%s %s) goes %s -> %s, want %s -> %s", who, i, e.Dir, e.Summary, e.Src, e.Dst, src, dst)
		}
		if first := strings.SplitN(e.Raw, "\r\n", 2)[0]; !strings.Contains(first, strings.Fields(e.Summary)[0]) {
			t.Errorf("%s: entry %d raw starts %q, summary %q", who, i, first, e.Summary)
		}
	}
}

// tsharkSIP reads a pcap with tshark and returns, per packet dissected as
// SIP, its request or status line.
func tsharkSIP(t testing.TB, path, filter string) []string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("tshark", "-r", path, "-Y", filter, "-T", "fields", "-E", "separator=|",
		"-e", "sip.Request-Line", "-e", "sip.Status-Line")
	cmd.Stderr = &stderr // its warnings (running as root) are no packets
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %s: %v\n%s", path, filter, err, stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.Trim(l, "|"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// checkPcap fetches a call's pcap and requires tshark to dissect every
// message of its /sip as SIP, in the same order, and each SDP body as SDP.
func checkPcap(t testing.TB, u *UAD, id string, entries []SIPEntry) {
	t.Helper()
	resp, err := http.Get(u.URL() + "/v1/calls/" + id + "/pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.tcpdump.pcap" {
		t.Fatalf("uad %s: GET pcap = %d %q, want 200 application/vnd.tcpdump.pcap", u.Name, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	path := filepath.Join(t.TempDir(), "call.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := tsharkSIP(t, path, "sip")
	if len(lines) != len(entries) {
		t.Fatalf("uad %s: tshark dissected %d SIP packets, /sip lists %d messages:\n%s", u.Name, len(lines), len(entries), strings.Join(lines, "\n"))
	}
	sdps := 0
	for i, e := range entries {
		first := strings.SplitN(e.Raw, "\r\n", 2)[0]
		if lines[i] != first {
			t.Errorf("uad %s: pcap packet %d is %q, /sip message %d is %q", u.Name, i+1, lines[i], i, first)
		}
		if e.SDP {
			sdps++
		}
	}
	if n := len(tsharkSIP(t, path, "sdp")); n != sdps {
		t.Errorf("uad %s: tshark dissected SDP in %d packets, /sip has %d SDP bodies", u.Name, n, sdps)
	}
}

func TestSIPCapturePcapAndHEP(t *testing.T) {
	t.Parallel()
	requirePeer(t, "tshark")
	hep := listenLoopback(t, 0, "HEP")
	defer hep.Close()
	b := startUAD(t, UADOptions{Name: "B"})
	a := startUAD(t, UADOptions{Name: "A", Config: map[string]any{"trace.hep": hep.LocalAddr().String()}})
	evA, evB := a.Events(), b.Events()

	for _, transport := range []string{"UDP", "TCP"} {
		to := b.SIPURI("uad")
		if transport == "TCP" {
			to += ";transport=tcp"
		}
		idA, idB := holdCycleCall(t, a, b, evA, evB, to)
		sipA, sipB := sipOf(t, a, idA), sipOf(t, b, idB)
		size := 0
		for _, e := range sipA {
			size += len(e.Raw)
		}
		t.Logf("%s call: caller kept %d messages, %d bytes", transport, len(sipA), size)
		checkSteps(t, transport+" caller A", sipA, callerSteps)
		checkSteps(t, transport+" callee B", sipB, calleeSteps)
		checkEntries(t, transport+" caller A", sipA, transport, a.SIPAddr(), b.SIPAddr(), false)
		checkEntries(t, transport+" callee B", sipB, transport, b.SIPAddr(), a.SIPAddr(), true)
		checkPcap(t, a, idA, sipA)
		checkPcap(t, b, idB, sipB)
	}

	// Unknown calls: 404 with the API's error object.
	for _, path := range []string{"/v1/calls/nosuchcall/sip", "/v1/calls/nosuchcall/pcap"} {
		st, body := a.API(http.MethodGet, path, nil)
		var e apiError
		if st != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("GET %s = %d %s, want 404 with an error", path, st, body)
		}
	}

	// A's messages went to the HEP listener too: find the INVITE of its
	// last call, as HEP3 with SIP in it.
	sipCallID := ""
	for _, c := range a.Calls() {
		sipCallID = c.SIPCallID
	}
	_ = hep.SetReadDeadline(time.Now().Add(sigTimeout))
	buf := make([]byte, 65536)
	for found := false; !found; {
		n, _, err := hep.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no HEP3 packet with Call-ID %s and its INVITE: %v", sipCallID, err)
		}
		pkt := buf[:n]
		if !bytes.HasPrefix(pkt, []byte("HEP3")) || int(pkt[4])<<8|int(pkt[5]) != n {
			t.Fatalf("not a HEP3 packet of its length: %q", pkt[:min(n, 16)])
		}
		found = bytes.Contains(pkt, []byte("Call-ID: "+sipCallID)) && bytes.Contains(pkt, []byte("INVITE sip:"))
	}
}

// A call cancelled while it rings keeps its INVITE transaction whole on
// both sides: INVITE, 180, CANCEL and its 200, 487, ACK.
func TestSIPCaptureOfACancelledCall(t *testing.T) {
	t.Parallel()
	b := startUAD(t, UADOptions{Name: "B", AutoAnswer: boolPtr(false)})
	a := startUAD(t, UADOptions{Name: "A"})
	evA, evB := a.Events(), b.Events()
	idA := a.PlaceCall(b.SIPURI("uad"), nil).ID
	idB := evB.WaitType(t, "call.incoming", "", sigTimeout).CallID()
	evA.WaitType(t, "call.ringing", idA, sigTimeout)
	a.Hangup(idA)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
	// The 200 to the CANCEL and the 487 answer two transactions, and uad
	// reads UDP with several loops at once: either may be captured first.
	// Each must follow the CANCEL, and the ACK the 487.
	start := map[*UAD][]step{
		a: {{"out", "INVITE (SDP: audio sendrecv)", ""}, {"in", "180 Ringing", "INVITE"}, {"out", "CANCEL", ""}},
		b: {{"in", "INVITE (SDP: audio sendrecv)", ""}, {"out", "180 Ringing", "INVITE"}, {"in", "CANCEL", ""}},
	}
	cancelled := map[*UAD]step{a: {"in", "200 OK", "CANCEL"}, b: {"out", "200 OK", "CANCEL"}}
	terminated := map[*UAD][]step{
		a: {{"in", "487 *", "INVITE"}, {"out", "ACK", ""}},
		b: {{"out", "487 *", "INVITE"}, {"in", "ACK", ""}},
	}
	for u, id := range map[*UAD]string{a: idA, b: idB} {
		var last []SIPEntry
		// The ACK of the 487 may come just after call.ended, and a message
		// sent is captured once its write returned, maybe after the answer.
		all := append(append(slices.Clone(start[u]), cancelled[u]), terminated[u]...)
		if !poll(sigTimeout, 20*time.Millisecond, func() bool {
			last = sipOf(t, u, id)
			for _, st := range all {
				if !slices.ContainsFunc(last, st.matches) {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("uad %s: capture never had all of %+v: %+v", u.Name, all, last)
		}
		checkSteps(t, "uad "+u.Name, last, append(slices.Clone(start[u]), cancelled[u]))
		checkSteps(t, "uad "+u.Name, last, append(slices.Clone(start[u]), terminated[u]...))
	}
}

// trace.messages_per_call bounds each call's capture: the newest are kept,
// and the header counts those dropped.
func TestSIPCaptureKeepsTheNewest(t *testing.T) {
	t.Parallel()
	b := startUAD(t, UADOptions{Name: "B"})
	a := startUAD(t, UADOptions{Name: "A", Config: map[string]any{"trace.messages_per_call": 3}})
	evA, evB := a.Events(), b.Events()
	idA := a.PlaceCall(b.SIPURI("uad"), nil).ID
	idB := waitBothConnected(t, evA, idA, evB)
	a.Hangup(idA)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
	var entries []SIPEntry
	var dropped string
	if !poll(sigTimeout, 20*time.Millisecond, func() bool {
		resp, err := http.Get(a.URL() + "/v1/calls/" + idA + "/sip")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		entries = nil
		dropped = resp.Header.Get("X-Uad-Dropped-Messages")
		return json.NewDecoder(resp.Body).Decode(&entries) == nil && len(entries) > 0 &&
			strings.HasSuffix(entries[len(entries)-1].CSeq, " BYE") && strings.HasPrefix(entries[len(entries)-1].Summary, "200")
	}) {
		t.Fatalf("A's capture never ended with the 200 to the BYE: %+v", entries)
	}
	// INVITE, 180, 200, ACK, BYE, 200: the last three captured stay, the
	// first three are counted. The BYE and its 200 come last; before them
	// the ACK, or the 180 when the read loop that took it captured it after
	// the 200 another loop read just after it had been answered.
	checkSteps(t, "A", entries, []step{{"out", "BYE", ""}, {"in", "200 OK", "BYE"}})
	if n, err := strconv.Atoi(dropped); len(entries) != 3 || err != nil || n < 3 {
		t.Errorf("A kept %d messages with %q dropped, want 3 and at least 3 (more with retransmissions)", len(entries), dropped)
	}
}
