package sip

import (
	"context"
	"net"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// serving is an endpoint listening on UDP and TCP on a free port.
func serving(t *testing.T, ctx context.Context) *Endpoint {
	t.Helper()
	for try := 0; ; try++ {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr := udp.LocalAddr().(*net.UDPAddr).AddrPort()
		udp.Close()
		ep, err := NewEndpoint(zerolog.Nop(), Config{Listeners: []Listener{{"udp", addr}, {"tcp", addr}}}, noCalls{})
		if err != nil {
			t.Fatal(err)
		}
		if err = ep.Serve(ctx); err == nil {
			t.Cleanup(func() { ep.Close() })
			return ep
		}
		ep.Close()
		if try == 5 { // the port keeps being taken between probe and listen
			t.Fatal(err)
		}
	}
}

type noCalls struct{}

func (noCalls) HandleInvite(*gosip.Request, gosip.ServerTransaction) {}

// A listener that stops serving makes the endpoint not ready, so that
// /v1/health and the systemd watchdog see a daemon that no longer serves.
func TestReadyOnlyWhileListenersServe(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ep := serving(t, ctx)
			if !ep.Ready() {
				t.Fatal("not ready with both listeners up")
			}
			i := 0
			if network == "tcp" {
				i = 1
			}
			ep.closers[i]() // the socket dies under the listener
			select {
			case l := <-ep.stopped:
				if l.Network != network {
					t.Fatalf("stopped %s, want %s", l.Network, network)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the listener did not stop")
			}
			if ep.Ready() {
				t.Fatal("ready with a listener that stopped serving")
			}
		})
	}
}

// RFC 3261 §8.2.2.3: Require naming an extension uad implements passes;
// 420 names only those it does not.
func TestRequireTimerSupported(t *testing.T) {
	ep, err := NewEndpoint(zerolog.Nop(), Config{Listeners: []Listener{{Network: "udp"}}}, noCalls{})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	for _, tt := range []struct{ require, unsupported string }{
		{"timer", ""},
		{"Timer", ""},
		{"timer, foo", "foo"},
		{"100rel", "100rel"},
	} {
		req := gosip.NewRequest(gosip.INVITE, gosip.Uri{Scheme: "sip", Host: "127.0.0.1"})
		req.AppendHeader(gosip.NewHeader("Require", tt.require))
		tx := &recordTx{}
		refused := ep.unsupported(req, tx)
		if refused != (tt.unsupported != "") {
			t.Errorf("Require: %s refused=%v", tt.require, refused)
			continue
		}
		if refused {
			if tx.res == nil || tx.res.StatusCode != 420 {
				t.Errorf("Require: %s answered %v, want 420", tt.require, tx.res)
			} else if h := tx.res.GetHeader("Unsupported"); h == nil || h.Value() != tt.unsupported {
				t.Errorf("Require: %s: Unsupported %v, want %s", tt.require, h, tt.unsupported)
			}
		}
	}
}

type recordTx struct {
	gosip.ServerTransaction
	res *gosip.Response
}

func (r *recordTx) Respond(res *gosip.Response) error { r.res = res; return nil }
