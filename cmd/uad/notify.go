package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// notifier tells systemd how the daemon is doing, with the datagram protocol
// of sd_notify(3) on $NOTIFY_SOCKET, so that Type=notify units and their
// watchdog work without libsystemd. Without $NOTIFY_SOCKET it does nothing.
type notifier struct {
	log      zerolog.Logger
	addr     *net.UnixAddr // nil: not started by systemd (or not Type=notify)
	watchdog time.Duration // WATCHDOG_USEC; 0: no watchdog
}

func newNotifier(log zerolog.Logger) *notifier {
	n := &notifier{log: log}
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return n
	}
	// A leading '@' names a socket in the abstract namespace; Go's net
	// package maps it to the leading NUL byte the kernel wants.
	n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	n.watchdog = watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
	return n
}

// watchdogInterval is the watchdog timeout systemd set for this process, as
// sd_watchdog_enabled(3) reads it: WATCHDOG_PID, when set, must be ours.
func watchdogInterval(usec, pid string, self int) time.Duration {
	if pid != "" && pid != strconv.Itoa(self) {
		return 0
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0
	}
	return time.Duration(n) * time.Microsecond
}

// send writes one notification; failures are logged, never fatal: the
// daemon works the same when nobody listens.
func (n *notifier) send(state string) {
	if n.addr == nil {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err == nil {
		_, err = conn.Write([]byte(state))
		conn.Close()
	}
	if err != nil {
		n.log.Warn().Err(err).Str("socket", n.addr.Name).Str("state", state).Msg("sd_notify failed")
	}
}

// ready reports the daemon up and, when systemd asked for a watchdog, keeps
// it fed every half timeout until ctx ends, but only while healthy reports
// true: a daemon whose listeners are down should be restarted.
func (n *notifier) ready(ctx context.Context, healthy func() bool) {
	n.send("READY=1")
	if n.addr == nil || n.watchdog == 0 {
		return
	}
	go func() {
		tick := time.NewTicker(n.watchdog / 2)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if healthy() {
					n.send("WATCHDOG=1")
				} else {
					n.log.Warn().Msg("unhealthy: not feeding the systemd watchdog")
				}
			}
		}
	}()
}

// reloading reports a reload under way; systemd waits for the READY=1 that
// ends it. MONOTONIC_USEC is required by Type=notify-reload and harmless
// otherwise.
func (n *notifier) reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10))
}

// reloaded ends a reload: the daemon is ready again, whatever its outcome.
func (n *notifier) reloaded() { n.send("READY=1") }

// stopping reports the shutdown under way.
func (n *notifier) stopping() { n.send("STOPPING=1") }
