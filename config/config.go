// Package config reads uad's YAML configuration: the schema, the defaults
// (default.yaml, embedded, which doubles as the documentation of every key)
// and validation that reports every problem at once as "FILE:LINE: reason"
// lines, which is what `uad config check` prints.
package config

import (
	_ "embed"
	"errors"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

//go:embed default.yaml
var defaultYAML []byte

// The defaults, as default.yaml sets them (a test holds the two together).
const (
	DefaultSIPListenUDP        = "udp://127.0.0.1:5060"
	DefaultSIPListenTCP        = "tcp://127.0.0.1:5060"
	DefaultUserAgent           = "uad"
	DefaultT1                  = 500 * time.Millisecond
	DefaultSessionExpires      = 1800 * time.Second
	DefaultAPIListen           = "127.0.0.1:8089"
	DefaultRTPPorts            = "10000-29999"
	DefaultHoldTone            = "440/300,0/3700"
	DefaultTone                = "440"
	DefaultRTPTimeout          = 30 * time.Second
	DefaultRTPHoldTimeout      = 0 * time.Second
	DefaultAutoAnswer          = true
	DefaultCallMedia           = MediaEcho
	DefaultRelay               = "127.0.0.1:40000"
	DefaultUnholdFailure       = UnholdHangup
	DefaultHoldDialect         = HoldSendOnly
	DefaultSRTP                = SRTPAccept
	DefaultVideoRequestTimeout = 10 * time.Second
	DefaultVideoRequestDefault = VideoReject
	DefaultVideoRequestPolicy  = VideoAsk
	DefaultBridgeHold          = "tone"
	DefaultBridgeLegEnd        = "keep"
	DefaultVideo               = true
	DefaultMaxCalls            = 0
	DefaultRateSources         = 65536
	DefaultUDPBuffer           = 4 << 20
	DefaultUDPReaders          = 0
	DefaultTCPMaxConnections   = 1024
	DefaultTCPMaxPerSource     = 128
	DefaultTCPIdleTimeout      = 120 * time.Second
	DefaultTCPMessageTimeout   = 10 * time.Second
	DefaultAccountExpires      = 300
	DefaultAccountTransport    = "udp"
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "json"

	// MinSessionExpires is RFC 4028's smallest Session-Expires (Min-SE).
	MinSessionExpires = 90 * time.Second
)

// DefaultCodecs is media.codecs when the file does not set it.
var DefaultCodecs = []string{"PCMU", "PCMA"}

// Values of calls.media.
const (
	MediaEcho    = "echo"
	MediaTone    = "tone"
	MediaSilence = "silence"
	MediaRelay   = "relay"
)

// Values of calls.unhold_failure.
const (
	UnholdHangup = "hangup"
	UnholdKeep   = "keep"
)

// Values of media.srtp and calls.peers[].srtp: SDES-SRTP (RFC 4568).
const (
	SRTPOff     = "off"     // plain RTP only; SRTP m-lines are declined
	SRTPAccept  = "accept"  // offer plain RTP, accept an SRTP offer
	SRTPRequire = "require" // offer SRTP, refuse plain RTP
)

// Values of calls.hold_dialect: how uad's hold offers look, for peers that
// accept only one form.
const (
	HoldSendOnly = "sendonly" // a=sendonly (RFC 3264 §8.4)
	HoldInactive = "inactive" // a=inactive, for peers that want it (some carriers)
	HoldLegacy   = "legacy"   // c=IN IP4 0.0.0.0 (RFC 2543), for very old peers
)

// Values of calls.video_request_default and calls.video_request_policy.
const (
	VideoAsk    = "ask"
	VideoAccept = "accept"
	VideoReject = "reject"
)

// RedactedPassword is what Redacted writes in place of a password.
const RedactedPassword = "********"

// Config is uad's whole configuration.
type Config struct {
	SIP      SIP       `yaml:"sip"`
	API      API       `yaml:"api"`
	Media    Media     `yaml:"media"`
	Calls    Calls     `yaml:"calls"`
	Accounts []Account `yaml:"accounts"`
	Trace    Trace     `yaml:"trace"`
	Log      Log       `yaml:"log"`
	File     string    `yaml:"-"` // where it was loaded from ("" = the embedded default)
}

// SIP is the signalling side: listeners and the headers uad writes.
type SIP struct {
	Listen         []string   `yaml:"listen"`          // "udp|tcp|tls://IP:PORT"; port 0 = any free port
	Advertise      string     `yaml:"advertise"`       // host[:port] for Contact/Via when listening on a wildcard address; "" = the listen address
	UserAgent      string     `yaml:"user_agent"`      // User-Agent and Server header value
	Identity       string     `yaml:"identity"`        // From URI of outgoing calls; "" = sip:uad@<advertised host>, derived by the caller
	T1             Duration   `yaml:"t1"`              // SIP timer T1 (RFC 3261), the retransmit base
	SessionExpires Duration   `yaml:"session_expires"` // Session-Expires offered (RFC 4028); at least MinSessionExpires
	Listeners      []Listener `yaml:"-"`               // Listen, parsed
	// Who may reach uad: source networks (CIDR; empty = anyone), a
	// per-source limit on INVITE, REGISTER and OPTIONS, and what refused
	// requests get (respond: 403/503, or drop: nothing).
	Allow        []string       `yaml:"allow"`
	AllowNets    []netip.Prefix `yaml:"-"`
	RateLimit    int            `yaml:"rate_limit"`   // requests per second per source IP; 0 = off
	RateBurst    int            `yaml:"rate_burst"`   // requests a source may send at once
	RateSources  int            `yaml:"rate_sources"` // sources whose rate is tracked at most; the one idle longest gives way
	Reject       string         `yaml:"reject"`       // respond | drop
	IncomingAuth IncomingAuth   `yaml:"incoming_auth"`
	TLSCert      string         `yaml:"tls_cert"`   // PEM certificate of tls:// listeners
	TLSKey       string         `yaml:"tls_key"`    // its PEM key
	TLSVerify    bool           `yaml:"tls_verify"` // verify peers of outgoing TLS
	// The receive path: UDP socket buffers and read loops per UDP socket;
	// TCP and TLS connections at once (in all, per source IP), and how long
	// one may stay silent or take to deliver a message it began.
	UDPBuffer         int      `yaml:"udp_buffer"`          // SO_RCVBUF and SO_SNDBUF in bytes, up to the kernel's maximum; 0 = the kernel's default
	UDPReaders        int      `yaml:"udp_readers"`         // read loops per UDP socket; 0 = one per CPU (at least 2)
	TCPMaxConnections int      `yaml:"tcp_max_connections"` // accepted connections at once; 0 = no limit
	TCPMaxPerSource   int      `yaml:"tcp_max_per_source"`  // of them from one source IP; 0 = no limit
	TCPIdleTimeout    Duration `yaml:"tcp_idle_timeout"`    // no byte either way this long closes a connection; 0 = never
	TCPMessageTimeout Duration `yaml:"tcp_message_timeout"` // a message begun must be complete within this; 0 = no limit
	// ShutdownGrace bounds SIGTERM: new INVITEs and OPTIONS get 503, calls
	// are hung up and accounts unregistered within it.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// IncomingAuth challenges incoming INVITEs with digest auth when Username is set.
type IncomingAuth struct {
	Realm        string `yaml:"realm"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Listener is one parsed sip.listen entry.
type Listener struct {
	Network string         // "udp", "tcp" or "tls"
	Addr    netip.AddrPort // where to bind
	Raw     string         // the entry as written, for messages
}

// API is the control API (HTTP + Server-Sent Events).
type API struct {
	Listen     string `yaml:"listen"`      // host:port; port 0 = any free port; "" = no TCP listener
	TokenFile  string `yaml:"token_file"`  // when set, every request needs "Authorization: Bearer <its content>"
	Socket     string `yaml:"socket"`      // also listen on this unix socket path; "" = none
	SocketMode string `yaml:"socket_mode"` // its file permissions, octal
}

// Media is RTP: ports, addresses, codecs and what uad plays.
type Media struct {
	RTPPorts       string   `yaml:"rtp_ports"`        // inclusive range "FIRST-LAST" RTP (and RTCP) sockets use
	PortMin        int      `yaml:"-"`                // RTPPorts' first port
	PortMax        int      `yaml:"-"`                // RTPPorts' last port
	Advertise      string   `yaml:"advertise"`        // IP written in SDP c= when RTP binds a wildcard address; "" = the bind address
	Bind           string   `yaml:"bind"`             // IP RTP sockets bind to (IPv4 or IPv6); "" = per call, the first SIP listener of the call's address family
	Codecs         []string `yaml:"codecs"`           // audio codecs in order of preference: PCMU, PCMA, G722, NAME/RATE[/CHANNELS]
	HoldTone       string   `yaml:"hold_tone"`        // what a held party hears: a tone spec or a .wav path
	Tone           string   `yaml:"tone"`             // what media mode "tone" plays: a tone spec or a .wav path
	RTPTimeout     Duration `yaml:"rtp_timeout"`      // no RTP this long while the peer may send ends the call; 0 = off
	RTPHoldTimeout Duration `yaml:"rtp_hold_timeout"` // the same while the call is held either way; 0 = off
	RTPLatching    bool     `yaml:"rtp_latching"`     // follow a NAT'd peer: latch onto the first source heard
	SRTP           string   `yaml:"srtp"`             // SDES-SRTP: off | accept | require
}

// Calls is how calls are handled when a request does not say otherwise.
type Calls struct {
	AutoAnswer          bool     `yaml:"auto_answer"`           // answer incoming calls at once
	Media               string   `yaml:"media"`                 // echo | tone | silence | relay
	Relay               string   `yaml:"relay"`                 // IP:PORT of the local RTP endpoint in relay mode
	UnholdFailure       string   `yaml:"unhold_failure"`        // after a failed unhold: hangup | keep
	HoldDialect         string   `yaml:"hold_dialect"`          // hold offer form: sendonly | inactive | legacy
	Peers               []Peer   `yaml:"peers"`                 // per remote-host settings, first match wins
	VideoRequestTimeout Duration `yaml:"video_request_timeout"` // how long a peer's add-video offer waits for a reply
	VideoRequestDefault string   `yaml:"video_request_default"` // accept | reject, once that wait is over
	VideoRequestPolicy  string   `yaml:"video_request_policy"`  // a peer's offer to add video: ask | accept | reject
	BridgeHold          string   `yaml:"bridge_hold"`           // a bridged party while the other leg is held hears: tone | silence
	BridgeLegEnd        string   `yaml:"bridge_leg_end"`        // when a bridge leg ends, the other: keep | hangup
	Video               bool     `yaml:"video"`                 // accept video in incoming calls
	MaxCalls            int      `yaml:"max_calls"`             // calls up at once; 0 = unlimited
}

// Peer overrides call settings for remote hosts matching a pattern.
type Peer struct {
	Match       string `yaml:"match"`        // host glob of the remote URI, e.g. "*.example.net" or "10.0.0.*"
	HoldDialect string `yaml:"hold_dialect"` // sendonly | inactive | legacy
	SRTP        string `yaml:"srtp"`         // off | accept | require; "" = media.srtp
}

// Account is a registration with a registrar.
type Account struct {
	Name          string `yaml:"name"`           // unique; what API requests name
	AOR           string `yaml:"aor"`            // address of record, a sip: URI
	Registrar     string `yaml:"registrar"`      // sip: URI REGISTER goes to
	Username      string `yaml:"username"`       // digest user; "" in the file = the user part of AOR
	Password      string `yaml:"password"`       // digest password; or PasswordFile, not both
	PasswordFile  string `yaml:"password_file"`  // file holding the password, read by Secret
	OutboundProxy string `yaml:"outbound_proxy"` // optional sip: URI every request of the account goes through
	Transport     string `yaml:"transport"`      // udp | tcp | tls
	Expires       int    `yaml:"expires"`        // registration lifetime asked for, in seconds
	HoldDialect   string `yaml:"hold_dialect"`   // hold offer form on this account's calls; "" = calls.hold_dialect
}

// Log is the daemon's logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
}

// Duration is a time.Duration written in YAML as a Go duration ("30s",
// "500ms") or as an integer number of seconds.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a Go duration, which Parse reads back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration, for encoders other than Parse.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Default returns the embedded default config: SIP on udp and tcp
// 127.0.0.1:5060, the API on 127.0.0.1:8089, incoming calls answered with
// echo.
func Default() *Config {
	cfg, err := build("", nil)
	if err != nil {
		panic("config: the embedded default.yaml is invalid: " + err.Error())
	}
	return cfg
}

// Load reads and validates the config file at path; see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err // the path is already in front of the message
		}
		return nil, &Errors{{File: path, Msg: err.Error()}}
	}
	return Parse(path, data)
}

// Parse reads a config from data over the defaults: a key the file leaves
// out keeps its default. name is the file's path; it prefixes every error,
// and relative paths in the file are taken from its directory. Any problem
// fails the whole config, and the error is a *Errors listing them all.
func Parse(name string, data []byte) (*Config, error) {
	if data == nil {
		data = []byte{} // nil would mean "defaults only" to build
	}
	return build(name, data)
}

// build copies the decoded default.yaml, decodes data (unless nil) over
// it, and then validates the result and fills in the fields derived from
// others.
func build(name string, data []byte) (*Config, error) {
	base, err := decodedDefaults()
	if err != nil {
		return nil, err
	}
	cfg := base.cfg.clone()
	var d *decoder
	if data == nil {
		// Validated as default.yaml, so a problem would point at its lines.
		d = newDecoder("default.yaml")
		d.lines = maps.Clone(base.lines)
	} else {
		cfg.File = name
		d = newDecoder(name)
		d.decodeFile(data, cfg)
		d.baseDir = baseDir(name)
	}
	d.validate(cfg)
	if len(d.errs) > 0 {
		return nil, d.result()
	}
	return cfg, nil
}

// defaults is default.yaml decoded but not validated: what a file's
// values are decoded over.
type defaults struct {
	cfg   *Config
	lines map[string]int // as in decoder
}

// decodedDefaults decodes default.yaml once per process. Callers must not
// change what it returns: build works on a clone.
var decodedDefaults = sync.OnceValues(func() (*defaults, error) {
	cfg := &Config{}
	d := newDecoder("default.yaml")
	d.decodeFile(defaultYAML, cfg)
	if len(d.errs) > 0 {
		return nil, d.result()
	}
	return &defaults{cfg: cfg, lines: d.lines}, nil
})

// clone returns a deep copy of c, sharing no slice with it.
func (c *Config) clone() *Config {
	out := *c
	out.SIP.Listen = clone(c.SIP.Listen)
	out.SIP.Listeners = clone(c.SIP.Listeners)
	out.SIP.Allow = clone(c.SIP.Allow)
	out.SIP.AllowNets = clone(c.SIP.AllowNets)
	out.Media.Codecs = clone(c.Media.Codecs)
	out.Calls.Peers = clone(c.Calls.Peers)
	out.Accounts = clone(c.Accounts)
	return &out
}

// baseDir is where relative paths in the file named name are taken from.
func baseDir(name string) string {
	if name == "" {
		return ""
	}
	return filepath.Dir(name)
}

// Redacted returns a copy of c with every password replaced by
// RedactedPassword, for printing.
func (c *Config) Redacted() *Config {
	out := c.clone()
	for i := range out.Accounts {
		if out.Accounts[i].Password != "" {
			out.Accounts[i].Password = RedactedPassword
		}
	}
	return out
}

// clone copies s, keeping nil as nil.
func clone[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}

// Account returns the account called name, or nil.
func (c *Config) Account(name string) *Account {
	for i := range c.Accounts {
		if c.Accounts[i].Name == name {
			return &c.Accounts[i]
		}
	}
	return nil
}

// Secret returns the account's password: Password, or the content of
// PasswordFile without its trailing newline.
func (a *Account) Secret() (string, error) {
	if a.PasswordFile == "" {
		return a.Password, nil
	}
	data, err := os.ReadFile(a.PasswordFile)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}
