package tests

// Kamailio, run in the foreground with a config of the tests: as the
// registrar (register_test.go) and as the dispatcher front end of
// deploy/kamailio (scaleout_test.go).

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sbinTool finds a program on PATH or in /usr/sbin (which a non-root PATH
// may lack), or skips the test (fails it under CI=true) like requirePeer.
func sbinTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
		return p
	}
	requirePeer(t, name)
	return name
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// kamailioProc is one kamailio run: its directory, its SIP port (UDP) and,
// once run, the process, in a process group of its own so that its
// children go with it.
type kamailioProc struct {
	*process
	t       *testing.T
	bin     string
	Port    int
	Dir     string
	LogPath string
	ctlPath string   // the ctl socket: kamailio is up once it exists
	marks   []string // what the lines of the log shown on failure contain
}

// newKamailioProc makes the run's directory (a short path from prefix: the
// ctl socket, named ctl, lives there and unix socket paths are short) and
// picks the SIP port. marks select the log lines shown when the test fails.
func newKamailioProc(t *testing.T, prefix, ctl string, marks ...string) *kamailioProc {
	t.Helper()
	bin := sbinTool(t, "kamailio")
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &kamailioProc{t: t, bin: bin, Port: freePort(t), Dir: dir, LogPath: filepath.Join(dir, "kamailio.log"),
		ctlPath: filepath.Join(dir, ctl), marks: marks}
}

// run starts kamailio with args and returns once its ctl socket exists and
// it listens on its SIP port.
func (k *kamailioProc) run(args ...string) {
	t := k.t
	t.Helper()
	cmd := exec.Command(k.bin, args...)
	cmd.Dir = k.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	k.process = startProcess(t, cmd, k.LogPath, "kamailio")
	t.Cleanup(k.stop)
	ok := k.pollRunning(10*time.Second, 20*time.Millisecond, func() bool {
		_, err := os.Stat(k.ctlPath)
		return err == nil && portBound("udp", k.Port)
	})
	if !k.running() {
		t.Fatalf("kamailio exited at start: %v\n%s", k.exit, tail(readFile(k.LogPath), 8<<10))
	}
	if !ok {
		t.Fatalf("kamailio does not listen on udp/%d after 10 s\n%s", k.Port, tail(readFile(k.LogPath), 8<<10))
	}
}

func (k *kamailioProc) stop() {
	if k.running() {
		_ = k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
			<-k.done
		}
	}
	if k.t.Failed() {
		k.t.Logf("---- kamailio log (%s) ----\n%s\n---- end of kamailio log ----", k.LogPath, tail(k.logLines(0, k.marks...), 64<<10))
	}
}

// Addr is kamailio's "127.0.0.1:PORT".
func (k *kamailioProc) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(k.Port)) }

// logLines are the lines of the log, after offset bytes, that contain one
// of marks.
func (k *kamailioProc) logLines(offset int, marks ...string) string {
	log := readFile(k.LogPath)
	if offset > len(log) {
		offset = len(log)
	}
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(log[offset:]))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range marks {
			if strings.Contains(line, m) {
				b.WriteString(line + "\n")
				break
			}
		}
	}
	return b.String()
}
