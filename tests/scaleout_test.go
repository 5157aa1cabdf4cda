package tests

// Scale-out: several uad instances behind the Kamailio dispatcher front end
// of deploy/kamailio/ (kamailio.cfg run as shipped, its defines set on the
// command line). Calls spread over the instances; an instance that gets
// SIGTERM is taken out by OPTIONS probing and new calls go to the others; a
// call refused with 5xx, or not answered, fails over to the next instance;
// in-dialog requests (uad's hold and resume re-INVITEs, BYE) go back through
// Kamailio along its Record-Route.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Kamailio with deploy/kamailio/kamailio.cfg.

// dsDest is one line of the dispatcher list: a SIP address and its name.
type dsDest struct {
	Name string // the list's "name" attribute, for the logs
	Addr string // host:port
}

// dsProxy is a running kamailio with the dispatcher config.
type dsProxy struct {
	*kamailioProc
	Ctl string // the ctl socket, "unix:PATH"
}

// kamailioModules is where Debian keeps the modules; "" lets kamailio use
// its compiled-in path.
func kamailioModules() string {
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules"} {
		if _, err := os.Stat(filepath.Join(dir, "dispatcher.so")); err == nil {
			return dir
		}
	}
	return ""
}

// startDispatcher runs kamailio in the foreground with the deploy config,
// a dispatcher list of dests (set 1) and fast probing (1 s, one failed
// probe takes a destination out, one answered probe brings it back), and
// returns once it listens and its ctl socket is up.
func startDispatcher(t *testing.T, dests []dsDest, defines ...string) *dsProxy {
	t.Helper()
	k := &dsProxy{kamailioProc: newKamailioProc(t, "kds", "ctl", " ds: ", "ERROR", "WARNING")}
	sbinTool(t, "kamcmd")
	k.Ctl = "unix:" + k.ctlPath

	var list strings.Builder
	list.WriteString("# written by TestScaleOut*: setid destination flags priority attributes\n")
	for _, d := range dests {
		fmt.Fprintf(&list, "1 sip:%s 0 0 name=%s\n", d.Addr, d.Name)
	}
	listPath := filepath.Join(k.Dir, "dispatcher.list")
	if err := os.WriteFile(listPath, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// One worker: several may reorder a 180 behind its 200, which sipp takes as an unexpected message.
	args := []string{"-DD", "-E", "-n", "1", "-m", "64", "-M", "8", "-Y", k.Dir,
		"-f", filepath.Join(repoRoot, "deploy", "kamailio", "kamailio.cfg"),
		"-A", fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", k.Port),
		"-A", fmt.Sprintf("DS_LIST=%q", listPath),
		"-A", fmt.Sprintf("CTL_SOCKET=%q", k.Ctl),
		"-A", "DS_PING_INTERVAL=1",
		"-A", "DS_PROBING_THRESHOLD=1",
		"-A", "DS_INACTIVE_THRESHOLD=1",
		"-A", "FR_TIMER=2000",
	}
	if mods := kamailioModules(); mods != "" {
		args = append(args, "-L", mods)
	}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	k.run(args...)
	return k
}

// LogSize is the log's current length, an offset for dsLines.
func (k *dsProxy) LogSize() int { return len(readFile(k.LogPath)) }

// dsLines are the config's "ds:" xlog lines, warnings and errors written
// after offset bytes of the log.
func (k *dsProxy) dsLines(offset int) string { return k.logLines(offset, k.marks...) }

var dsListRE = regexp.MustCompile(`URI: (\S+)\s+FLAGS: (\S+)`)

// States is `kamcmd dispatcher.list`: each destination's flags (A active,
// I inactive, D disabled, P probing), by URI.
func (k *dsProxy) States() (map[string]string, error) {
	out, err := exec.Command(sbinTool(k.t, "kamcmd"), "-s", k.Ctl, "dispatcher.list").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("kamcmd dispatcher.list: %v: %s", err, out)
	}
	states := map[string]string{}
	for _, m := range dsListRE.FindAllStringSubmatch(string(out), -1) {
		states[m[1]] = m[2]
	}
	return states, nil
}

// waitState polls dispatcher.list until uri's flags start with want ("A"
// or "I"); it fails the test after timeout.
func (k *dsProxy) waitState(t *testing.T, uri, want string, timeout time.Duration) {
	t.Helper()
	var last map[string]string
	var lastErr error
	if !poll(timeout, 100*time.Millisecond, func() bool {
		last, lastErr = k.States()
		return lastErr == nil && strings.HasPrefix(last[uri], want)
	}) {
		t.Fatalf("kamailio: %s not %q within %v; dispatcher.list: %v (%v)", uri, want, timeout, last, lastErr)
	}
}

// ---------------------------------------------------------------------------
// Helpers.

// inboundCalls returns uad's inbound calls (live or ended in the last 60 s),
// by SIP Call-ID.
func inboundCalls(u *UAD) map[string]CallInfo {
	out := map[string]CallInfo{}
	for _, c := range u.Calls() {
		if c.Direction == "inbound" {
			out[c.SIPCallID] = c
		}
	}
	return out
}

// waitAllEnded polls until every inbound call of u is ended.
func waitAllEnded(t *testing.T, u *UAD, timeout time.Duration) {
	t.Helper()
	var open []string
	if !poll(timeout, 50*time.Millisecond, func() bool {
		open = nil
		for _, c := range inboundCalls(u) {
			if c.State != "ended" {
				open = append(open, c.ID+" "+c.State)
			}
		}
		return len(open) == 0
	}) {
		t.Errorf("uad %s: calls not ended after %v: %v", u.Name, timeout, open)
	}
}

// heldUACScenario is sipp as a caller that uad holds and resumes: INVITE,
// 200, ACK; then a hold re-INVITE (must be sendonly; answered recvonly), its
// ACK, a resume re-INVITE (must be sendrecv; answered sendrecv), its ACK,
// and the callee's BYE, 200. ACK and BYE follow the Record-Route ([routes]).
var heldUACScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="scaleout_uac_held">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]
` + heldUACSDP(1, "sendrecv") + `
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
` + heldUACReinvite("sendonly", "hold_offer", 2, "recvonly") +
	heldUACReinvite("sendrecv", "resume_offer", 3, "sendrecv") + `  <recv request="BYE"/>
  <send>
    <![CDATA[
` + heldUAC200 + `      Content-Length: 0

    ]]>
  </send>
</scenario>
`

// heldUACReinvite is the scenario's part for one re-INVITE from uad: its
// offer must state direction want (checked into variable), the answer is
// SDP version version stating answer, then the ACK.
func heldUACReinvite(want, variable string, version int, answer string) string {
	return fmt.Sprintf(`  <recv request="INVITE">
    <action>
      <ereg regexp="a=%s" search_in="body" check_it="true" assign_to="%s"/>
    </action>
  </recv>
  <Reference variables="%s"/>
  <send retrans="500">
    <![CDATA[
%s      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]
%s
    ]]>
  </send>
  <recv request="ACK"/>
`, want, variable, variable, heldUAC200, heldUACSDP(version, answer))
}

// heldUAC200 starts sipp's 200 to a request of uad's.
const heldUAC200 = `      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
`

// heldUACSDP is sipp's audio SDP (with the blank line before it), o=
// version version, stating direction dir.
func heldUACSDP(version int, dir string) string {
	return fmt.Sprintf(`
      v=0
      o=sipp [pid] %d IN IP4 [media_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [rtp_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=%s
`, version, dir)
}

// checkViaKamailio asserts that a request sipp received came through
// kamailio: kamailio's Via on top, the sender's below.
func checkViaKamailio(t *testing.T, what string, m sipMsg, k *dsProxy, from *UAD) {
	t.Helper()
	vias := headerValues(m, "Via", "v")
	var all []string
	for _, v := range vias {
		all = append(all, strings.Split(v, ",")...)
	}
	if len(all) < 2 {
		t.Errorf("%s reached sipp with Via %q: want kamailio's Via on top of uad's (it bypassed the proxy)", what, all)
		return
	}
	if !strings.Contains(all[0], k.Addr()) {
		t.Errorf("%s: top Via %q is not kamailio's (%s)", what, all[0], k.Addr())
	}
	if !strings.Contains(all[1], from.SIPAddr()) {
		t.Errorf("%s: second Via %q is not uad %s's (%s)", what, all[1], from.Name, from.SIPAddr())
	}
}

// ---------------------------------------------------------------------------
// The tests.

// Two uad instances behind the dispatcher: ten calls spread over both; one
// instance gets SIGTERM, probing takes it out, and every new call goes to
// the other without a failover; the survivor holds and resumes a caller
// through kamailio (its re-INVITEs follow the Record-Route).
func TestScaleOutKamailio(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	u1 := startUAD(t, UADOptions{Name: "U1"})
	u2 := startUAD(t, UADOptions{Name: "U2"})
	k := startDispatcher(t, []dsDest{{"U1", u1.SIPAddr()}, {"U2", u2.SIPAddr()}}, "DS_ALG=4")
	uri1, uri2 := "sip:"+u1.SIPAddr(), "sip:"+u2.SIPAddr()
	k.waitState(t, uri1, "A", 10*time.Second)
	k.waitState(t, uri2, "A", 10*time.Second)

	// 1. Ten calls through kamailio spread over both instances.
	const firstCalls = 10
	r := runSipp(t, "uac_echo.xml", "-s", "uad", "-m", itoa(firstCalls), "-l", "5", "-d", "300", k.Addr())
	if r.Code != 0 {
		t.Fatalf("sipp: %d calls through kamailio: exit %d, want 0 (every call answered)\n%s\n%s",
			firstCalls, r.Code, tail(r.Errors, 8<<10), tail(r.Output, 4<<10))
	}
	waitAllEnded(t, u1, sigTimeout)
	waitAllEnded(t, u2, sigTimeout)
	n1, n2 := len(inboundCalls(u1)), len(inboundCalls(u2))
	t.Logf("calls: U1 %d, U2 %d", n1, n2)
	if n1 < 1 || n2 < 1 || n1+n2 != firstCalls {
		t.Errorf("calls through kamailio: U1 got %d, U2 got %d; want %d in all, each >= 1", n1, n2, firstCalls)
	}
	// uad copies kamailio's Record-Route into its 2xx (RFC 3261 §12.1.1),
	// so sipp's ACK and BYE came back through kamailio.
	msgs := parseSippTrace(r.Messages)
	oks := filter(msgs, func(m sipMsg) bool {
		n, meth := m.CSeq()
		return !m.Sent && m.Status() == 200 && meth == "INVITE" && n == 1
	})
	if len(oks) == 0 {
		t.Errorf("no 200 to an INVITE in sipp's trace")
	}
	for _, m := range oks {
		if rr := headerValues(m, "Record-Route"); len(rr) == 0 || !strings.Contains(rr[0], k.Addr()) {
			t.Errorf("200 to INVITE (Call-ID %s) has Record-Route %q: want kamailio's (%s) copied by uad", m.Header("Call-ID"), rr, k.Addr())
			break
		}
	}
	if failovers := strings.Count(k.dsLines(0), "ds: failover"); failovers != 0 {
		t.Errorf("kamailio failed over %d times while both instances were up:\n%s", failovers, k.dsLines(0))
	}

	// 2. U1 gets SIGTERM: it answers 503 while it drains, then exits 0;
	// probing takes it out.
	if err := u1.Stop(t, 10*time.Second); err != nil {
		t.Errorf("uad U1 after SIGTERM: %v, want exit status 0", err)
	}
	k.waitState(t, uri1, "I", 10*time.Second)
	if st, err := k.States(); err != nil || !strings.HasPrefix(st[uri2], "A") {
		t.Fatalf("U2 is not active while U1 is out: %v (%v)", st, err)
	}
	offset := k.LogSize()

	// 3. New calls all go to U2, and none of them tried U1 first.
	const laterCalls = 6
	before := inboundCalls(u2)
	r = runSipp(t, "uac_echo.xml", "-s", "uad", "-m", itoa(laterCalls), "-l", "3", "-d", "200", k.Addr())
	if r.Code != 0 {
		t.Fatalf("sipp: %d calls with U1 out: exit %d, want 0\n%s\n%s", laterCalls, r.Code, tail(r.Errors, 8<<10), tail(r.Output, 4<<10))
	}
	if got := len(inboundCalls(u2)) - len(before); got != laterCalls {
		t.Errorf("with U1 out, U2 got %d of %d new calls", got, laterCalls)
	}
	if lines := k.dsLines(offset); strings.Contains(lines, "ds: failover") || strings.Contains(lines, "to sip:"+u1.SIPAddr()) {
		t.Errorf("with U1 marked inactive, kamailio still sent calls to it:\n%s", lines)
	}

	// 4. Hold and resume through kamailio: sipp calls, U2 answers, holds
	// and resumes by the API; its re-INVITEs and BYE reach sipp via
	// kamailio.
	ev2 := u2.Events()
	scen := filepath.Join(t.TempDir(), "scaleout_uac_held.xml")
	if err := os.WriteFile(scen, []byte(heldUACScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSipp(t, scen, "-s", "uad", k.Addr())
	id := ev2.WaitType(t, "call.connected", "", sigTimeout).CallID()
	c := mustHold(t, u2, id)
	checkCallIs(t, "U2 holds through kamailio", c, callWant{State: "hold", LocalHold: true, Dir: "sendonly"})
	ev2.WaitType(t, "hold.success", id, sigTimeout)
	c = mustUnhold(t, u2, id)
	checkCallIs(t, "U2 resumes through kamailio", c, callWant{State: "live", Dir: "sendrecv"})
	ev2.WaitType(t, "unhold.success", id, sigTimeout)
	u2.Hangup(id)
	ev2.WaitType(t, "call.ended", id, sigTimeout)
	r = s.WaitOK()
	msgs = parseSippTrace(r.Messages)
	reinvites := filter(msgs, requestsOf("INVITE", false))
	if len(reinvites) != 2 {
		t.Fatalf("sipp received %d re-INVITEs, want 2 (hold, resume)", len(reinvites))
	}
	checkViaKamailio(t, "hold re-INVITE", reinvites[0], k, u2)
	checkViaKamailio(t, "resume re-INVITE", reinvites[1], k, u2)
	if byes := filter(msgs, requestsOf("BYE", false)); len(byes) != 1 {
		t.Errorf("sipp received %d BYEs, want 1", len(byes))
	} else {
		checkViaKamailio(t, "BYE", byes[0], k, u2)
	}
	if lines := k.dsLines(offset); strings.Count(lines, "ds: in-dialog INVITE") < 2 {
		t.Errorf("kamailio logged %d in-dialog INVITEs, want the hold and resume re-INVITEs:\n%s",
			strings.Count(lines, "ds: in-dialog INVITE"), lines)
	}
}

// brokenInstance is a SIP endpoint that answers OPTIONS 200 (so probing
// keeps it in the set) but refuses every INVITE with 503, or ignores it.
type brokenInstance struct {
	conn *net.UDPConn
	mode string // "503" | "silent"

	mu      sync.Mutex
	invites map[string]bool // Call-IDs of the INVITEs that reached it
	options int
}

func startBrokenInstance(t *testing.T, mode string) *brokenInstance {
	t.Helper()
	conn := listenLoopback(t, freePort(t), "SIP")
	b := &brokenInstance{conn: conn, mode: mode, invites: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			b.handle(string(buf[:n]), from)
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return b
}

func (b *brokenInstance) Addr() string { return b.conn.LocalAddr().String() }

func (b *brokenInstance) handle(msg string, from *net.UDPAddr) {
	m := parseSIPMessage(msg)
	var status string
	switch m.Method() {
	case "OPTIONS":
		b.mu.Lock()
		b.options++
		b.mu.Unlock()
		status = "200 OK"
	case "INVITE":
		b.mu.Lock()
		b.invites[m.Header("Call-ID")] = true
		b.mu.Unlock()
		if b.mode != "503" {
			return
		}
		status = "503 Service Unavailable"
	default:
		return // ACK of our 503, anything else
	}
	var resp strings.Builder
	fmt.Fprintf(&resp, "SIP/2.0 %s\r\n", status)
	for _, v := range headerValues(m, "Via", "v") {
		fmt.Fprintf(&resp, "Via: %s\r\n", v)
	}
	to := m.Header("To")
	if !strings.Contains(to, ";tag=") {
		to += ";tag=broken"
	}
	fmt.Fprintf(&resp, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
		m.Header("From"), to, m.Header("Call-ID"), m.Header("CSeq"))
	_, _ = b.conn.WriteToUDP([]byte(resp.String()), from)
}

func (b *brokenInstance) Invites() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.invites)
}

func (b *brokenInstance) Options() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.options
}

// An instance that answers OPTIONS but refuses calls with 503, or does not
// answer them at all: kamailio fails each call it sent there over to uad,
// so every call succeeds.
func TestScaleOutKamailioFailover(t *testing.T) {
	t.Parallel()
	requirePeer(t, "sipp")
	for _, mode := range []string{"503", "silent"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			broken := startBrokenInstance(t, mode)
			u := startUAD(t, UADOptions{Name: "U"})
			// The broken instance first: round-robin sends it the first call.
			k := startDispatcher(t, []dsDest{{"broken", broken.Addr()}, {"U", u.SIPAddr()}}, "DS_ALG=4")
			k.waitState(t, "sip:"+u.SIPAddr(), "A", 10*time.Second)
			if !poll(10*time.Second, 50*time.Millisecond, func() bool { return broken.Options() > 0 }) {
				t.Fatalf("kamailio did not probe the broken instance with OPTIONS within 10 s")
			}
			k.waitState(t, "sip:"+broken.Addr(), "A", 10*time.Second)

			const calls = 4
			r := runSipp(t, "uac_echo.xml", "-s", "uad", "-m", itoa(calls), "-l", "1", "-d", "100", k.Addr())
			if r.Code != 0 {
				t.Fatalf("sipp: exit %d, want 0 (every call failed over to uad)\n%s\n%s", r.Code, tail(r.Errors, 8<<10), tail(r.Output, 4<<10))
			}
			if got := len(inboundCalls(u)); got != calls {
				t.Errorf("uad got %d calls, want all %d", got, calls)
			}
			if broken.Invites() == 0 {
				t.Errorf("no INVITE reached the broken instance: the failover was not exercised")
			}
			lines := k.dsLines(0)
			if !strings.Contains(lines, "ds: failover to sip:"+u.SIPAddr()) {
				t.Errorf("kamailio did not log a failover to uad:\n%s", lines)
			}
			t.Logf("broken instance (%s) got %d INVITEs, %d OPTIONS", mode, broken.Invites(), broken.Options())
		})
	}
}
