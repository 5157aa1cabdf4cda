package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestWatchdogInterval(t *testing.T) {
	for _, tt := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"30000000", "", 30 * time.Second},
		{"200000", "42", 200 * time.Millisecond},
		{"200000", "43", 0}, // meant for another process
		{"", "", 0},
		{"0", "", 0},
		{"-5", "", 0},
		{"soon", "", 0},
	} {
		if got := watchdogInterval(tt.usec, tt.pid, 42); got != tt.want {
			t.Errorf("watchdogInterval(%q, %q) = %v, want %v", tt.usec, tt.pid, got, tt.want)
		}
	}
}

// listenNotify is systemd's end of NOTIFY_SOCKET.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 1024)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifier(t *testing.T) {
	for name, addr := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": fmt.Sprintf("@uad-notify-test-%d", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			c := listenNotify(t, addr)
			t.Setenv("NOTIFY_SOCKET", addr)
			t.Setenv("WATCHDOG_USEC", "40000")
			n := newNotifier(zerolog.Nop())
			var healthy atomic.Bool
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n.ready(ctx, healthy.Load)
			if got := readNotify(t, c); got != "READY=1" {
				t.Fatalf("first notification %q, want READY=1", got)
			}
			// Unhealthy: five ticks go by without a ping.
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if k, err := c.Read(make([]byte, 64)); err == nil {
				t.Fatalf("sent %d bytes while unhealthy", k)
			}
			healthy.Store(true)
			if got := readNotify(t, c); got != "WATCHDOG=1" {
				t.Fatalf("notification %q, want WATCHDOG=1", got)
			}
			cancel()
			n.reloading()
			if got := readNotify(t, c); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
				t.Errorf("reloading sent %q", got)
			}
		})
	}
}

// Without NOTIFY_SOCKET nothing is sent and nothing fails.
func TestNotifierOff(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := newNotifier(zerolog.Nop())
	n.ready(context.Background(), func() bool { return true })
	n.stopping()
}
