package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"uad/config"
	"uad/dialog"
	"uad/sip"
)

// accountsConfig turns the configured accounts into what calls need,
// reading password files.
func accountsConfig(cfg *config.Config) ([]dialog.Account, error) {
	var out []dialog.Account
	for _, a := range cfg.Accounts {
		var aor, registrar gosip.Uri
		if err := gosip.ParseUri(a.AOR, &aor); err != nil {
			return nil, fmt.Errorf("account %s: aor: %w", a.Name, err)
		}
		if err := gosip.ParseUri(a.Registrar, &registrar); err != nil {
			return nil, fmt.Errorf("account %s: registrar: %w", a.Name, err)
		}
		password, err := a.Secret()
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Name, err)
		}
		acc := dialog.Account{
			Name: a.Name, AOR: aor, Domains: []string{aor.Host, registrar.Host},
			Username: a.Username, Password: password, Transport: a.Transport, HoldDialect: a.HoldDialect,
		}
		if a.OutboundProxy != "" {
			var proxy gosip.Uri
			if err := gosip.ParseUri(a.OutboundProxy, &proxy); err != nil {
				return nil, fmt.Errorf("account %s: outbound_proxy: %w", a.Name, err)
			}
			acc.OutboundProxy = &proxy
		}
		out = append(out, acc)
	}
	return out, nil
}

// incomingAuth is the challenger of incoming INVITEs, when configured.
func incomingAuth(cfg *config.Config) (*sip.Challenger, error) {
	a := cfg.SIP.IncomingAuth
	if a.Username == "" {
		return nil, nil
	}
	password := a.Password
	if a.PasswordFile != "" {
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sip.incoming_auth.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	return sip.NewChallenger(a.Realm, a.Username, password), nil
}

// sipGuard is the allow-list and rate limit of the SIP listeners.
func sipGuard(cfg *config.Config) *sip.Guard {
	return &sip.Guard{
		Allow:      cfg.SIP.AllowNets,
		RateLimit:  cfg.SIP.RateLimit,
		RateBurst:  cfg.SIP.RateBurst,
		MaxSources: cfg.SIP.RateSources,
		Drop:       cfg.SIP.Reject == "drop",
	}
}

// connLimits bound the TCP and TLS connections the SIP listeners accept.
func connLimits(cfg *config.Config) sip.ConnLimits {
	return sip.ConnLimits{
		MaxConns:       cfg.SIP.TCPMaxConnections,
		MaxPerSource:   cfg.SIP.TCPMaxPerSource,
		IdleTimeout:    time.Duration(cfg.SIP.TCPIdleTimeout),
		MessageTimeout: time.Duration(cfg.SIP.TCPMessageTimeout),
	}
}

// checkExposure refuses a control API reachable from other hosts without a
// token, and warns about SIP open to anyone beyond loopback.
func checkExposure(cfg *config.Config, log zerolog.Logger) error {
	if cfg.API.Listen != "" && cfg.API.TokenFile == "" {
		host, _, _ := net.SplitHostPort(cfg.API.Listen)
		if a, err := netip.ParseAddr(host); host == "" || err == nil && !a.IsLoopback() || err != nil && host != "localhost" {
			return fmt.Errorf("api.listen %s is reachable from other hosts: set api.token_file (or listen on loopback or api.socket)", cfg.API.Listen)
		}
	}
	if len(cfg.SIP.AllowNets) == 0 {
		for _, l := range cfg.SIP.Listeners {
			if !l.Addr.Addr().IsLoopback() {
				log.Warn().Str("listen", l.Raw).Msg("SIP is open to anyone beyond loopback: set sip.allow to the networks of your peers")
				break
			}
		}
	}
	warnSRTPInClear(cfg, log)
	return nil
}

// warnSRTPInClear warns when SDES-SRTP may be used on a SIP listener that
// is not TLS: its keys are in the SDP, readable by anyone on the path.
func warnSRTPInClear(cfg *config.Config, log zerolog.Logger) {
	enabled := cfg.Media.SRTP != config.SRTPOff
	for _, p := range cfg.Calls.Peers {
		enabled = enabled || p.SRTP != "" && p.SRTP != config.SRTPOff
	}
	if !enabled {
		return
	}
	for _, l := range cfg.SIP.Listeners {
		if l.Network != "tls" {
			log.Warn().Str("listen", l.Raw).Str("srtp", cfg.Media.SRTP).
				Msg("SRTP is enabled but SIP is not TLS here: keys travel in clear over " + l.Raw)
		}
	}
}

// listenAPI opens the control API's listeners: TCP, and a unix socket with
// the configured file permissions.
func listenAPI(cfg *config.Config) ([]net.Listener, error) {
	var lns []net.Listener
	if cfg.API.Listen != "" {
		ln, err := net.Listen("tcp", cfg.API.Listen)
		if err != nil {
			return nil, fmt.Errorf("api: listen %s: %w", cfg.API.Listen, err)
		}
		lns = append(lns, ln)
	}
	if path := cfg.API.Socket; path != "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("api.socket: %w", err)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("api.socket: %w", err)
		}
		mode, _ := strconv.ParseUint(cfg.API.SocketMode, 8, 32)
		if err := os.Chmod(path, os.FileMode(mode)); err != nil {
			ln.Close()
			return nil, fmt.Errorf("api.socket: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// tlsConfigs loads the certificate of tls:// listeners and says how
// outgoing TLS checks peers (sip.tls_verify).
func tlsConfigs(cfg *config.Config) (server, client *tls.Config, err error) {
	client = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !cfg.SIP.TLSVerify} //nolint:gosec // the operator's choice, off by default
	if cfg.SIP.TLSCert == "" {
		return nil, client, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.SIP.TLSCert, cfg.SIP.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sip.tls_cert/tls_key: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, client, nil
}
