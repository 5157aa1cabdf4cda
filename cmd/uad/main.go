// Command uad is the SIP user agent daemon (`uad run`), its config checker
// (`uad config check`) and the CLI client of its control API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/api"
	"uad/api/console"
	"uad/config"
	"uad/dialog"
	"uad/media"
	"uad/media/codecspec"
	"uad/sip"
)

const usage = `usage:
  uad run [--config FILE]        run the daemon (embedded default config without --config)
  uad config check FILE          validate a config file
  uad call URI [--video]         place a call; prints its id
  uad calls [--json]             list calls
  uad answer ID | hangup ID | hold ID | unhold ID
  uad video remove ID | video add ID | video reply ID --accept|--reject
  uad dtmf ID DIGITS
  uad events                     stream events, one JSON object a line
  uad version
client flags: --api URL (or UAD_API), --token-file FILE (or UAD_TOKEN)
`

// httpGrace is the part of sip.shutdown_grace kept for closing the API.
const httpGrace = 300 * time.Millisecond

// gcPercent is the garbage collector's target when GOGC is not set: every
// SIP transaction outlives its call by 64·T1, so the live heap under load is
// large and mostly long-lived; collecting at twice the default growth costs
// about 15% less CPU for a tenth more memory at 1,200 calls/s.
const gcPercent = 200

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:], stderr)
	case "config":
		if len(args) == 3 && args[1] == "check" {
			return checkCommand(args[2], stdout, stderr)
		}
		fmt.Fprintln(stderr, "uad: usage: uad config check FILE")
		return 2
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if code, handled := runClient(args, stdout, stderr); handled {
		return code
	}
	fmt.Fprintf(stderr, "uad: unknown command %q\n%s", args[0], usage)
	return 2
}

func checkCommand(path string, stdout, stderr io.Writer) int {
	if _, err := config.Load(path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func runCommand(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default: the embedded default config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := config.Default()
	if *path != "" {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, cfg); err != nil {
		log.Error().Err(err).Msg("uad stopped")
		return 1
	}
	return 0
}

func newLogger(cfg *config.Config, w io.Writer) zerolog.Logger {
	if cfg.Log.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(cfg.Log.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.SetGlobalLevel(level) // what a reload changes (reload.go)
	return zerolog.New(w).Level(min(level, logFloor)).With().Timestamp().Logger()
}

// run wires the daemon and serves until ctx ends, then hangs up every call.
func run(ctx context.Context, log zerolog.Logger, cfg *config.Config) error {
	engine, err := media.NewEngine(log.With().Str("component", "media").Logger(), media.EngineConfig{
		Bind:     mediaBind(cfg),
		PortMin:  cfg.Media.PortMin,
		PortMax:  cfg.Media.PortMax,
		HoldTone: cfg.Media.HoldTone,
		Tone:     cfg.Media.Tone,
	})
	if err != nil {
		return fmt.Errorf("media.NewEngine: %w", err)
	}
	defer engine.Close()

	bus := api.NewBus(4096)
	callsCfg, err := dialogConfig(cfg)
	if err != nil {
		return err
	}
	calls := dialog.NewManager(log.With().Str("component", "dialog").Logger(), callsCfg, dialog.EngineMedia(engine), bus.Publish)
	reloads := newReloader(log, cfg, calls, engine)
	defer reloads.stop()

	var listeners []sip.Listener
	for _, l := range cfg.SIP.Listeners {
		listeners = append(listeners, sip.Listener{Network: l.Network, Addr: l.Addr})
	}
	guard := sipGuard(cfg)
	serverTLS, clientTLS, err := tlsConfigs(cfg)
	if err != nil {
		return err
	}
	capture, err := newCapture(cfg)
	if err != nil {
		return err
	}
	calls.SetCapture(capture)
	var counted atomic.Pointer[api.Metrics] // set once the metrics exist
	endpoint, err := sip.NewEndpoint(startLevel(log).With().Str("component", "sip").Logger(), sip.Config{
		Listeners:  listeners,
		Advertise:  cfg.SIP.Advertise,
		UserAgent:  cfg.SIP.UserAgent,
		T1:         time.Duration(cfg.SIP.T1),
		Guard:      guard,
		UDPBuffer:  cfg.SIP.UDPBuffer,
		UDPReaders: cfg.SIP.UDPReaders,
		TCP:        connLimits(cfg),
		ServerTLS:  serverTLS,
		ClientTLS:  clientTLS,
		Capture:    captureTracer(capture),
		Recovered: func(where string) {
			if m := counted.Load(); m != nil {
				m.Panic(where)
			}
		},
	}, calls)
	if err != nil {
		return fmt.Errorf("sip.NewEndpoint: %w", err)
	}
	defer endpoint.Close()
	calls.SetSignalling(endpoint)

	sipCtx, stopSIP := context.WithCancel(context.Background())
	defer stopSIP()
	if err := endpoint.Serve(sipCtx); err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	accounts := startAccounts(log, cfg, endpoint, bus.Publish) // accounts.go

	if err := checkExposure(cfg, log); err != nil {
		return err
	}
	apiListeners, err := listenAPI(cfg)
	if err != nil {
		return err
	}
	accountsAPI := accountList(accounts)
	metrics := api.NewMetrics(bus, api.MetricsConfig{Version: version, Active: calls.Active, Calls: calls.List,
		SIPRefused: guard.Counts, SIPTransport: endpoint.TransportCounts, CaptureBytes: capture.Held, Accounts: accountsAPI.AccountList, RTPStray: engine.StrayPackets})
	defer metrics.Close()
	calls.SetObserver(metrics)
	counted.Store(metrics)
	var handler http.Handler = metrics.Serve(api.New(log.With().Str("component", "api").Logger(), calls, bus, endpoint.Ready))
	handler = api.WithAccounts(handler, accountsAPI)
	if cfg.API.TokenFile != "" {
		token, err := os.ReadFile(cfg.API.TokenFile)
		if err != nil {
			return fmt.Errorf("api.token_file: %w", err)
		}
		handler = api.RequireToken(strings.TrimSpace(string(token)), handler)
	}
	handler = console.With(handler) // static files only: the token guards the API they call
	handler = metrics.Count(handler)
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
	}
	var apiAddrs []string
	for _, ln := range apiListeners {
		apiAddrs = append(apiAddrs, ln.Addr().String())
		go func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("api server stopped")
			}
		}()
	}
	log.Info().Strs("sip", cfg.SIP.Listen).Strs("api", apiAddrs).
		Str("rtp_ports", cfg.Media.RTPPorts).Msg("uad is up")

	sd := newNotifier(log)
	sd.ready(ctx, endpoint.Ready)
	reloads.serve(ctx, sd) // until SIGINT/SIGTERM
	sd.stopping()
	log.Info().Int("calls", calls.Active()).Msg("shutting down: hanging up every call")
	endpoint.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.SIP.ShutdownGrace)-httpGrace)
	defer cancel()
	unregistered := accounts.StopAsync(graceCtx) // REGISTER Expires: 0, beside the hang-ups
	calls.Shutdown(graceCtx)
	<-unregistered
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), httpGrace)
	defer cancelHTTP()
	_ = httpSrv.Shutdown(httpCtx)
	log.Info().Msg("uad stopped")
	return nil
}

// mediaBind is the address RTP sockets bind to unless a call's media
// address says otherwise: that of the first family (family.go).
func mediaBind(cfg *config.Config) netip.Addr { return mediaAddrs(cfg)[0].Bind }

func dialogConfig(cfg *config.Config) (dialog.Config, error) {
	addrs := mediaAddrs(cfg)
	var laws []media.Law
	for _, c := range cfg.Media.Codecs {
		spec, err := codecspec.Parse(c)
		if err != nil {
			return dialog.Config{}, fmt.Errorf("media.codecs: %w", err)
		}
		law, err := media.CodecLaw(spec)
		if err != nil {
			return dialog.Config{}, fmt.Errorf("media.codecs: %q: %w", c, err)
		}
		laws = append(laws, law)
	}
	identity := cfg.SIP.Identity
	if identity == "" {
		host := cfg.SIP.Listeners[0].Addr.Addr().String()
		if cfg.SIP.Advertise != "" {
			host = cfg.SIP.Advertise
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
		}
		identity = "sip:uad@" + sip.URIHost(strings.Trim(host, "[]"))
	}
	var from gosip.Uri
	if err := gosip.ParseUri(identity, &from); err != nil {
		return dialog.Config{}, fmt.Errorf("sip.identity %q: %w", identity, err)
	}
	spec := dialog.MediaSpec{Mode: cfg.Calls.Media}
	if spec.Mode == dialog.MediaRelay {
		ap, err := netip.ParseAddrPort(cfg.Calls.Relay)
		if err != nil {
			return dialog.Config{}, fmt.Errorf("calls.relay: %w", err)
		}
		spec.Relay = ap
	}
	accounts, err := accountsConfig(cfg)
	if err != nil {
		return dialog.Config{}, err
	}
	challenger, err := incomingAuth(cfg)
	if err != nil {
		return dialog.Config{}, err
	}
	var peers []dialog.PeerRule
	for _, p := range cfg.Calls.Peers {
		peers = append(peers, dialog.PeerRule{Match: p.Match, HoldDialect: p.HoldDialect, SRTP: media.SRTPMode(p.SRTP)})
	}
	return dialog.Config{
		AutoAnswer:          cfg.Calls.AutoAnswer,
		Media:               spec,
		Laws:                laws,
		Identity:            from,
		MediaAddr:           addrs[0].Advertise,
		MediaAddrs:          addrs,
		RTPTimeout:          time.Duration(cfg.Media.RTPTimeout),
		RTPHoldTimeout:      time.Duration(cfg.Media.RTPHoldTimeout),
		MaxCalls:            cfg.Calls.MaxCalls,
		UnholdFailure:       cfg.Calls.UnholdFailure,
		SessionExpires:      time.Duration(cfg.SIP.SessionExpires),
		HoldDialect:         cfg.Calls.HoldDialect,
		SRTP:                media.SRTPMode(cfg.Media.SRTP),
		Video:               cfg.Calls.Video,
		VideoRequestPolicy:  cfg.Calls.VideoRequestPolicy,
		VideoRequestTimeout: time.Duration(cfg.Calls.VideoRequestTimeout),
		VideoRequestDefault: cfg.Calls.VideoRequestDefault,
		BridgeHold:          cfg.Calls.BridgeHold,
		BridgeLegEnd:        cfg.Calls.BridgeLegEnd,
		Peers:               peers,
		Accounts:            accounts,
		IncomingAuth:        challenger,
		RTPLatching:         cfg.Media.RTPLatching,
	}, nil
}
