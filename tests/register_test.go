package tests

// Registration (accounts): uad registers with a real registrar (Kamailio,
// tests/kamailio/registrar.cfg) and with a scripted one (sipp,
// tests/sipp/register_*.xml).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// The Kamailio registrar (kamailio_test.go runs it).

// kamailioOptions fill the placeholders of tests/kamailio/registrar.cfg.
type kamailioOptions struct {
	Password   string // every user's password; default "secret"
	Algorithm  string // MD5 (default) or SHA-256
	MinExpires int    // registrar min_expires; default 10
	Alice      string // host:port requests for user alice go to; default a dead port
}

// Kamailio is a running kamailio registrar.
type Kamailio struct {
	*kamailioProc
}

func startKamailio(t *testing.T, opts kamailioOptions) *Kamailio {
	t.Helper()
	k := &Kamailio{newKamailioProc(t, "kam", "kamailio_ctl", "UADTEST", "ERROR")}
	if opts.Password == "" {
		opts.Password = "secret"
	}
	if opts.Algorithm == "" {
		opts.Algorithm = "MD5"
	}
	if opts.MinExpires == 0 {
		opts.MinExpires = 10
	}
	if opts.Alice == "" {
		opts.Alice = "127.0.0.1:9"
	}
	tmpl, err := os.ReadFile(filepath.Join(repoRoot, "tests", "kamailio", "registrar.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"{{PORT}}", strconv.Itoa(k.Port),
		"{{DIR}}", k.Dir,
		"{{PASSWORD}}", opts.Password,
		"{{ALGORITHM}}", opts.Algorithm,
		"{{MIN_EXPIRES}}", strconv.Itoa(opts.MinExpires),
		"{{ALICE}}", opts.Alice,
	).Replace(string(tmpl))
	if i := strings.Index(cfg, "{{"); i >= 0 {
		t.Fatalf("registrar.cfg: placeholder left: %.40s", cfg[i:])
	}
	cfgPath := filepath.Join(k.Dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k.run("-DD", "-E", "-m", "64", "-M", "8", "-Y", k.Dir, "-f", cfgPath)
	return k
}

// testLines are the config's UADTEST xlog lines, and errors.
func (k *Kamailio) testLines() string { return k.logLines(0, k.marks...) }

// kamRegistration is one REGISTER kamailio accepted (its UADTEST registered line).
type kamRegistration struct {
	User    string
	CallID  string
	CSeq    int
	Expires string
}

var kamRegisteredRE = regexp.MustCompile(`UADTEST registered user=(\S+) ci=(\S+) cseq=(\d+) expires=(\S+)`)

// Registered lists the REGISTERs kamailio accepted for user, in order.
func (k *Kamailio) Registered(user string) []kamRegistration {
	var out []kamRegistration
	for _, m := range kamRegisteredRE.FindAllStringSubmatch(readFile(k.LogPath), -1) {
		if m[1] != user {
			continue
		}
		seq, _ := strconv.Atoi(m[3])
		out = append(out, kamRegistration{User: m[1], CallID: m[2], CSeq: seq, Expires: m[4]})
	}
	return out
}

// ULDump is `kamcmd ul.dump`: the location table.
func (k *Kamailio) ULDump() string {
	k.t.Helper()
	out, err := exec.Command(sbinTool(k.t, "kamcmd"), "-s", "unix:"+k.ctlPath, "ul.dump").CombinedOutput()
	if err != nil {
		k.t.Fatalf("kamcmd ul.dump: %v\n%s", err, out)
	}
	return string(out)
}

// ---------------------------------------------------------------------------
// uad's accounts.

// AccountInfo is an entry of GET /v1/accounts.
type AccountInfo struct {
	Name  string `json:"name"`
	AOR   string `json:"aor"`
	State string `json:"state"` // registering | registered | unregistered | failed
}

// Accounts does GET /v1/accounts and requires 200.
func (u *UAD) Accounts() map[string]AccountInfo {
	u.t.Helper()
	out := map[string]AccountInfo{}
	for _, a := range getJSON[[]AccountInfo](u.t, u, "/v1/accounts", "a list of accounts") {
		out[a.Name] = a
	}
	return out
}

func accountEvent(typ, account string) func(Event) bool {
	return func(e Event) bool { return e.Type == typ && e.Account == account }
}

// checkAccountEvent checks the contract's shape: "account" set, no "call".
func checkAccountEvent(t *testing.T, e Event) {
	t.Helper()
	if e.Call != nil || strings.Contains(e.Raw, `"call"`) {
		t.Errorf("%s event has a call: %s", e.Type, e.Raw)
	}
	if e.Account == "" {
		t.Errorf("%s event without account: %s", e.Type, e.Raw)
	}
}

// placeAndHangup places a call to a sipp UAS at to, waits until it is live,
// and hangs up.
func placeAndHangup(t *testing.T, u *UAD, ev *EventStream, uas *Sipp, to string, extra map[string]any) {
	t.Helper()
	c := u.PlaceCall(to, extra)
	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	u.Hangup(c.ID)
	uas.WaitOK()
}

// ---------------------------------------------------------------------------
// The tests.

// uad registers two accounts with Kamailio (SHA-256 digest, one directly and
// one through an outbound proxy), refreshes them, takes a call Kamailio routes
// to its registered contact, places one through Kamailio, and unregisters on
// shutdown.
func TestRegisterKamailio(t *testing.T) {
	requireUAD(t)
	requirePeer(t, "sipp")
	alicePort := freePort(t)
	k := startKamailio(t, kamailioOptions{Algorithm: "SHA-256", MinExpires: 10, Alice: fmt.Sprintf("127.0.0.1:%d", alicePort)})

	pwFile := filepath.Join(t.TempDir(), "carol.pass")
	if err := os.WriteFile(pwFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := startUAD(t, UADOptions{ExtraYAML: fmt.Sprintf(`accounts:
  - name: bob
    aor: "sip:bob@%[1]s"
    registrar: "sip:%[1]s"
    username: bob
    password: secret
    expires: 40
  - name: carol
    aor: "sip:carol@example.test"
    registrar: "sip:example.test"
    outbound_proxy: "sip:%[1]s"
    password_file: %[2]q
    expires: 40
`, k.Addr(), pwFile)})
	ev := u.eventsFromStart()

	for _, name := range []string{"bob", "carol"} {
		e := ev.WaitFor(t, accountEvent("account.registered", name), sigTimeout)
		checkAccountEvent(t, e)
	}
	accts := u.Accounts()
	for name, aor := range map[string]string{"bob": "sip:bob@" + k.Addr(), "carol": "sip:carol@example.test"} {
		if a := accts[name]; a.State != "registered" || a.AOR != aor {
			t.Errorf("GET /v1/accounts %s = %+v, want registered with aor %s", name, a, aor)
		}
	}
	dump := k.ULDump()
	for _, user := range []string{"bob", "carol"} {
		if !strings.Contains(dump, "AoR: "+user) || !strings.Contains(dump, fmt.Sprintf("sip:%s@%s", user, u.SIPAddr())) {
			t.Errorf("kamailio's location has no %s at uad's contact:\n%s", user, dump)
		}
	}
	if strings.Contains(u.Log(), "secret") {
		t.Errorf("uad's log shows the password")
	}

	// A call to bob, routed by Kamailio (lookup("location")) to uad.
	peer := newRTPPeer(t, 0)
	s := startSipp(t, "uac_echo.xml", "-s", "bob", "-d", "1000", "-key", "rtp_port", itoa(peer.Port()), k.Addr())
	inc := ev.WaitType(t, "call.incoming", "", sigTimeout)
	ev.WaitType(t, "call.ended", inc.CallID(), endTimeout)
	s.WaitOK()

	// A call from uad through Kamailio to alice (a sipp UAS), with account
	// bob: Kamailio asks for proxy authentication (407).
	uas := startSipp(t, "register_uas_answer.xml", "-p", itoa(alicePort), "-key", "rtp_port", itoa(peer.Port()))
	placeAndHangup(t, u, ev, uas, "sip:alice@"+k.Addr(), map[string]any{"account": "bob"})
	if !strings.Contains(k.testLines(), "UADTEST invite-authenticated user=bob from=sip:bob@"+k.Addr()) {
		t.Errorf("kamailio did not authenticate uad's INVITE as bob")
	}

	// The refresh: granted 40 s, so 8 s after the first registration; one
	// Call-ID, CSeq going up.
	if !poll(25*time.Second, 200*time.Millisecond, func() bool { return len(k.Registered("bob")) >= 2 && len(k.Registered("carol")) >= 2 }) {
		t.Fatalf("no refresh within 25 s: bob %v, carol %v", k.Registered("bob"), k.Registered("carol"))
	}
	for _, user := range []string{"bob", "carol"} {
		regs := k.Registered(user)
		if regs[1].CallID != regs[0].CallID || regs[1].CSeq <= regs[0].CSeq || regs[1].Expires != "40" {
			t.Errorf("%s: refresh %+v after %+v, want the same Call-ID, a higher CSeq, expires 40", user, regs[1], regs[0])
		}
	}
	if a := u.Accounts()["bob"]; a.State != "registered" {
		t.Errorf("after the refresh, bob is %q, want registered", a.State)
	}

	// Shutdown removes the bindings.
	if err := u.Stop(t, 5*time.Second); err != nil {
		t.Errorf("uad exit: %v, want status 0", err)
	}
	for _, user := range []string{"bob", "carol"} {
		regs := k.Registered(user)
		last := regs[len(regs)-1]
		if last.Expires != "0" || last.CallID != regs[0].CallID {
			t.Errorf("%s: last REGISTER %+v, want expires 0 with the same Call-ID", user, last)
		}
	}
	if dump := k.ULDump(); strings.Contains(dump, "AoR: bob") || strings.Contains(dump, "AoR: carol") {
		t.Errorf("kamailio's location still has uad's bindings after its shutdown:\n%s", dump)
	}
}

// A wrong password: account.failed with a reason, a clear log line, state
// failed; another account (MD5) registers, and calls work meanwhile.
func TestRegisterKamailioWrongPassword(t *testing.T) {
	requireUAD(t)
	requirePeer(t, "sipp")
	k := startKamailio(t, kamailioOptions{Algorithm: "MD5"})
	u := startUAD(t, UADOptions{ExtraYAML: fmt.Sprintf(`accounts:
  - name: bob
    aor: "sip:bob@%[1]s"
    registrar: "sip:%[1]s"
    password: not-the-password
    expires: 300
  - name: dave
    aor: "sip:dave@%[1]s"
    registrar: "sip:%[1]s"
    password: secret
    expires: 300
`, k.Addr())})
	ev := u.eventsFromStart()

	// The call, while bob's registration fails.
	peer := newRTPPeer(t, 0)
	uas := startSipp(t, "uas_answer.xml", "-key", "rtp_port", itoa(peer.Port()))
	c := u.PlaceCall(uas.URI("carol"), nil)

	failed := ev.WaitFor(t, accountEvent("account.failed", "bob"), sigTimeout)
	checkAccountEvent(t, failed)
	if !strings.Contains(failed.Reason, "401") || !strings.Contains(failed.Reason, "wrong password") {
		t.Errorf("account.failed reason %q, want the 401 and a hint at the password", failed.Reason)
	}
	if strings.Contains(failed.Raw, "not-the-password") {
		t.Errorf("account.failed carries the password: %s", failed.Raw)
	}
	checkAccountEvent(t, ev.WaitFor(t, accountEvent("account.registered", "dave"), sigTimeout))
	if ev.Has(accountEvent("account.registered", "bob")) {
		t.Errorf("account.registered for bob, whose password is wrong")
	}
	accts := u.Accounts()
	if accts["bob"].State != "failed" || accts["dave"].State != "registered" {
		t.Errorf("GET /v1/accounts = %+v, want bob failed and dave registered", accts)
	}
	if !strings.Contains(u.Log(), "registration of account bob failed: 401 Unauthorized (wrong password?)") {
		t.Errorf("uad's log lacks the line \"registration of account bob failed: 401 Unauthorized (wrong password?)\"")
	}
	if strings.Contains(u.Log(), "not-the-password") {
		t.Errorf("uad's log shows the password")
	}

	ev.WaitType(t, "call.connected", c.ID, sigTimeout)
	u.Hangup(c.ID)
	uas.WaitOK()

	if err := u.Stop(t, 5*time.Second); err != nil {
		t.Errorf("uad exit: %v, want status 0", err)
	}
	for _, r := range k.Registered("bob") {
		t.Errorf("kamailio accepted a REGISTER of bob with the wrong password: %+v", r)
	}
	if regs := k.Registered("dave"); len(regs) < 2 || regs[len(regs)-1].Expires != "0" {
		t.Errorf("dave's REGISTERs %+v, want a registration and the un-REGISTER", regs)
	}
}

// A registrar that answers 423 Interval Too Brief (Min-Expires: 120): uad
// asks again for 120 s, registers, and unregisters on shutdown.
func TestRegisterIntervalTooBrief(t *testing.T) {
	requireUAD(t)
	reg := startSipp(t, "register_uas_423.xml", "-timeout", "40s")
	u := startUAD(t, UADOptions{ExtraYAML: fmt.Sprintf(`accounts:
  - name: bob
    aor: "sip:bob@%[1]s"
    registrar: "sip:%[1]s"
    password: secret
    expires: 60
`, reg.Addr())})
	ev := u.eventsFromStart()
	checkAccountEvent(t, ev.WaitFor(t, accountEvent("account.registered", "bob"), sigTimeout))
	if a := u.Accounts()["bob"]; a.State != "registered" {
		t.Errorf("GET /v1/accounts bob = %+v, want registered", a)
	}
	if ev.Has(accountEvent("account.failed", "bob")) {
		t.Errorf("account.failed on a 423 that a retry fixes")
	}
	if err := u.Stop(t, 5*time.Second); err != nil {
		t.Errorf("uad exit: %v, want status 0", err)
	}
	r := reg.WaitOK()
	if n := strings.Count(r.Messages, "REGISTER sip:"); n != 3 {
		t.Errorf("sipp saw %d REGISTERs, want 3 (60 s, 120 s, 0)", n)
	}
}
