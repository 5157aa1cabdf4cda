package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"reflect"
	"syscall"

	"github.com/rs/zerolog"

	"uad/config"
	"uad/dialog"
	"uad/media"
)

// reloader re-reads the config file on SIGHUP and applies what can change
// while calls are up: the log level, the call settings of calls created from
// then on, and the tones. Calls in progress are not touched.
type reloader struct {
	log    zerolog.Logger
	cur    *config.Config // what is in effect
	calls  *dialog.Manager
	engine *media.Engine
	hup    chan os.Signal
}

// newReloader catches SIGHUP from now on, so that a reload asked for while
// the daemon is starting waits for serve instead of killing the process.
func newReloader(log zerolog.Logger, cfg *config.Config, calls *dialog.Manager, engine *media.Engine) *reloader {
	r := &reloader{log: log, cur: cfg, calls: calls, engine: engine, hup: make(chan os.Signal, 1)}
	signal.Notify(r.hup, syscall.SIGHUP)
	return r
}

// stop lets SIGHUP have its default effect again.
func (r *reloader) stop() { signal.Stop(r.hup) }

// serve reloads on every SIGHUP until ctx ends, telling systemd about it.
func (r *reloader) serve(ctx context.Context, sd *notifier) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.hup:
			sd.reloading()
			r.reload()
			sd.reloaded()
		}
	}
}

// fixedKeys are the settings bound at start (sockets, the RTP port pool, the
// SIP stack, the API's token, the log writer). A reload names those that
// changed and keeps their running values; keep copies cur's value into next
// and reports whether they differed.
var fixedKeys = []struct {
	key  string
	keep func(next, cur *config.Config) bool
}{
	{"sip.listen", func(n, c *config.Config) bool {
		keep(&n.SIP.Listeners, c.SIP.Listeners)
		return keep(&n.SIP.Listen, c.SIP.Listen)
	}},
	{"sip.advertise", func(n, c *config.Config) bool { return keep(&n.SIP.Advertise, c.SIP.Advertise) }},
	{"sip.user_agent", func(n, c *config.Config) bool { return keep(&n.SIP.UserAgent, c.SIP.UserAgent) }},
	{"sip.t1", func(n, c *config.Config) bool { return keep(&n.SIP.T1, c.SIP.T1) }},
	{"sip.allow", func(n, c *config.Config) bool {
		keep(&n.SIP.AllowNets, c.SIP.AllowNets)
		return keep(&n.SIP.Allow, c.SIP.Allow)
	}},
	{"sip.rate_limit", func(n, c *config.Config) bool { return keep(&n.SIP.RateLimit, c.SIP.RateLimit) }},
	{"sip.rate_burst", func(n, c *config.Config) bool { return keep(&n.SIP.RateBurst, c.SIP.RateBurst) }},
	{"sip.rate_sources", func(n, c *config.Config) bool { return keep(&n.SIP.RateSources, c.SIP.RateSources) }},
	{"sip.reject", func(n, c *config.Config) bool { return keep(&n.SIP.Reject, c.SIP.Reject) }},
	{"sip.udp_buffer", func(n, c *config.Config) bool { return keep(&n.SIP.UDPBuffer, c.SIP.UDPBuffer) }},
	{"sip.udp_readers", func(n, c *config.Config) bool { return keep(&n.SIP.UDPReaders, c.SIP.UDPReaders) }},
	{"sip.tcp_max_connections", func(n, c *config.Config) bool {
		return keep(&n.SIP.TCPMaxConnections, c.SIP.TCPMaxConnections)
	}},
	{"sip.tcp_max_per_source", func(n, c *config.Config) bool { return keep(&n.SIP.TCPMaxPerSource, c.SIP.TCPMaxPerSource) }},
	{"sip.tcp_idle_timeout", func(n, c *config.Config) bool { return keep(&n.SIP.TCPIdleTimeout, c.SIP.TCPIdleTimeout) }},
	{"sip.tcp_message_timeout", func(n, c *config.Config) bool {
		return keep(&n.SIP.TCPMessageTimeout, c.SIP.TCPMessageTimeout)
	}},
	{"sip.tls_cert", func(n, c *config.Config) bool { return keep(&n.SIP.TLSCert, c.SIP.TLSCert) }},
	{"sip.tls_key", func(n, c *config.Config) bool { return keep(&n.SIP.TLSKey, c.SIP.TLSKey) }},
	{"sip.tls_verify", func(n, c *config.Config) bool { return keep(&n.SIP.TLSVerify, c.SIP.TLSVerify) }},
	{"api.listen", func(n, c *config.Config) bool { return keep(&n.API.Listen, c.API.Listen) }},
	{"api.token_file", func(n, c *config.Config) bool { return keep(&n.API.TokenFile, c.API.TokenFile) }},
	{"api.socket", func(n, c *config.Config) bool { return keep(&n.API.Socket, c.API.Socket) }},
	{"api.socket_mode", func(n, c *config.Config) bool { return keep(&n.API.SocketMode, c.API.SocketMode) }},
	{"media.rtp_ports", func(n, c *config.Config) bool {
		keep(&n.Media.PortMin, c.Media.PortMin)
		keep(&n.Media.PortMax, c.Media.PortMax)
		return keep(&n.Media.RTPPorts, c.Media.RTPPorts)
	}},
	{"media.bind", func(n, c *config.Config) bool { return keep(&n.Media.Bind, c.Media.Bind) }},
	{"accounts", func(n, c *config.Config) bool { return keep(&n.Accounts, c.Accounts) }},
	{"trace.messages_per_call", func(n, c *config.Config) bool {
		return keep(&n.Trace.MessagesPerCall, c.Trace.MessagesPerCall)
	}},
	{"trace.hep", func(n, c *config.Config) bool { return keep(&n.Trace.HEP, c.Trace.HEP) }},
	{"trace.max_bytes", func(n, c *config.Config) bool { return keep(&n.Trace.MaxBytes, c.Trace.MaxBytes) }},
	{"log.format", func(n, c *config.Config) bool { return keep(&n.Log.Format, c.Log.Format) }},
}

// keepFixed gives next cur's values of the fixedKeys and names those that
// differed.
func keepFixed(next, cur *config.Config) []string {
	var changed []string
	for _, f := range fixedKeys {
		if f.keep(next, cur) {
			changed = append(changed, f.key)
		}
	}
	return changed
}

// keep sets *dst to v and reports whether it was different.
func keep[T any](dst *T, v T) bool {
	changed := !reflect.DeepEqual(*dst, v)
	*dst = v
	return changed
}

// reload applies the config file again, or nothing when it has an error.
func (r *reloader) reload() {
	path := r.cur.File
	if path == "" {
		r.log.Info().Msg("SIGHUP: uad runs on the embedded default config (no --config): nothing to reload")
		return
	}
	next, err := config.Load(path)
	if err != nil {
		r.rejected(err)
		return
	}
	fixed := keepFixed(next, r.cur)
	// Everything that can fail comes before anything is applied, so that a
	// failed reload leaves the running config whole.
	callsCfg, err := dialogConfig(next)
	if err != nil {
		r.rejected(err)
		return
	}
	level, err := zerolog.ParseLevel(next.Log.Level)
	if err != nil {
		r.rejected(err)
		return
	}
	if err := r.engine.SetTones(next.Media.HoldTone, next.Media.Tone); err != nil {
		r.rejected(err)
		return
	}
	r.calls.SetConfig(callsCfg)
	r.cur = next
	// The report goes out under the more verbose of the two levels, so that
	// turning logging down does not hide the reload that did it.
	if level < zerolog.GlobalLevel() {
		zerolog.SetGlobalLevel(level)
	}
	if len(fixed) > 0 {
		r.log.Warn().Strs("not_applied", fixed).Str("file", path).
			Msg("config reloaded, but these keys only change on a restart: kept as they were")
	}
	r.log.Info().Str("file", path).Str("log_level", level.String()).
		Msg("config reloaded: applies to calls from now on; calls in progress are unchanged")
	zerolog.SetGlobalLevel(level)
}

// rejected logs why a reload was refused, one line per config error.
func (r *reloader) rejected(err error) {
	if errs, ok := errors.AsType[*config.Errors](err); ok {
		for _, e := range *errs {
			r.log.Error().Str("error", e.String()).Msg("config reload rejected")
		}
	} else {
		r.log.Error().Err(err).Msg("config reload rejected")
	}
	r.log.Error().Str("file", r.cur.File).Msg("config reload rejected: the running config stays in effect")
}

// logFloor is the level below which no logger lets events through; the
// global level, which a reload sets, filters above it. Debug, so that a
// reload can turn debug logging on.
const logFloor = zerolog.DebugLevel

// startLevel pins log at the level in effect now. package sip decides once,
// at start, whether to trace every SIP message (an allocation per message),
// so it must see the configured level rather than logFloor.
func startLevel(log zerolog.Logger) zerolog.Logger { return log.Level(zerolog.GlobalLevel()) }
