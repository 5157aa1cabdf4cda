package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"uad/media/tonespec"
)

func TestDefault(t *testing.T) {
	want := &Config{
		SIP: SIP{
			Listen:         []string{DefaultSIPListenUDP, DefaultSIPListenTCP},
			UserAgent:      DefaultUserAgent,
			T1:             Duration(DefaultT1),
			SessionExpires: Duration(DefaultSessionExpires),
			Listeners: []Listener{
				{Network: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Raw: DefaultSIPListenUDP},
				{Network: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Raw: DefaultSIPListenTCP},
			},
			RateBurst:     20,
			RateSources:   DefaultRateSources,
			Reject:        "respond",
			IncomingAuth:  IncomingAuth{Realm: "uad"},
			TLSVerify:     true,
			ShutdownGrace: Duration(5 * time.Second),

			UDPBuffer:         DefaultUDPBuffer,
			UDPReaders:        DefaultUDPReaders,
			TCPMaxConnections: DefaultTCPMaxConnections,
			TCPMaxPerSource:   DefaultTCPMaxPerSource,
			TCPIdleTimeout:    Duration(DefaultTCPIdleTimeout),
			TCPMessageTimeout: Duration(DefaultTCPMessageTimeout),
		},
		API: API{Listen: DefaultAPIListen, SocketMode: "0660"},
		Media: Media{
			RTPPorts:       DefaultRTPPorts,
			PortMin:        10000,
			PortMax:        29999,
			Codecs:         DefaultCodecs,
			HoldTone:       DefaultHoldTone,
			Tone:           DefaultTone,
			RTPTimeout:     Duration(DefaultRTPTimeout),
			RTPHoldTimeout: Duration(DefaultRTPHoldTimeout),
			SRTP:           DefaultSRTP,
		},
		Calls: Calls{
			AutoAnswer:          DefaultAutoAnswer,
			Media:               DefaultCallMedia,
			Relay:               DefaultRelay,
			UnholdFailure:       DefaultUnholdFailure,
			HoldDialect:         DefaultHoldDialect,
			VideoRequestTimeout: Duration(DefaultVideoRequestTimeout),
			VideoRequestDefault: DefaultVideoRequestDefault,
			VideoRequestPolicy:  DefaultVideoRequestPolicy,
			BridgeHold:          DefaultBridgeHold,
			BridgeLegEnd:        DefaultBridgeLegEnd,
			Video:               DefaultVideo,
			MaxCalls:            DefaultMaxCalls,
		},
		Trace: Trace{MessagesPerCall: DefaultMessagesPerCall, MaxBytes: DefaultTraceMaxBytes},
		Log:   Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, want)
	}

	// An empty file is the defaults.
	for _, data := range []string{"", "# nothing\n", "---\n", "sip:\napi: ~\n"} {
		got, err := Parse("empty.yaml", []byte(data))
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		want.File = "empty.yaml"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) =\n%+v\nwant the defaults", data, got)
		}
	}
}

// The example in the control contract (docs/control-contract.md) is valid.
func TestContractExample(t *testing.T) {
	cfg, err := Parse("contract.yaml", []byte(`
sip:
  listen: ["udp://127.0.0.1:5070", "tcp://127.0.0.1:5070"]
api:
  listen: "127.0.0.1:8089"
  token_file: ""              # when set, every request needs "Authorization: Bearer <token>"
media:
  rtp_ports: "10000-29999"    # inclusive; the default
  hold_tone: "440/300,0/3700" # what the held party hears: a tone spec or a .wav path; the default
  tone: "440"                 # what media mode "tone" plays
  rtp_timeout: 30s            # no RTP while the peer is allowed to send => hang up
  rtp_hold_timeout: 0s        # the same while the call is held either way; 0 = off
calls:
  auto_answer: true           # incoming calls are answered at once
  media: echo                 # default media for a call: echo | tone | silence | relay
  relay: "127.0.0.1:40000"    # default local RTP endpoint for relay mode
  unhold_failure: hangup      # hangup | keep
  video_request_timeout: 10s  # how long a peer's add-video offer waits for a reply
  video_request_default: reject   # accept | reject, after the timeout
accounts:                     # optional; registration to a registrar
  - name: bob
    aor: "sip:bob@127.0.0.1:5060"
    registrar: "sip:127.0.0.1:5060"
    username: bob
    password: secret          # or password_file: /path
    expires: 300
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Account{Name: "bob", AOR: "sip:bob@127.0.0.1:5060", Registrar: "sip:127.0.0.1:5060",
		Username: "bob", Password: "secret", Transport: "udp", Expires: 300}
	if len(cfg.Accounts) != 1 || cfg.Accounts[0] != want {
		t.Errorf("accounts = %+v; want [%+v]", cfg.Accounts, want)
	}
	if got := cfg.SIP.Listeners[1]; got.Network != "tcp" || got.Addr.Port() != 5070 {
		t.Errorf("listeners = %+v", cfg.SIP.Listeners)
	}
}

// Every key of the schema appears in default.yaml, which documents them.
func TestDefaultYAMLHasEveryKey(t *testing.T) {
	d := newDecoder("default.yaml")
	d.decodeFile(defaultYAML, &Config{})
	if len(d.errs) > 0 {
		t.Fatal(d.result())
	}
	for _, path := range keyPaths(reflect.TypeFor[Config](), "") {
		if path == "accounts" || path == "calls.peers" { // examples in comments
			continue
		}
		if _, ok := d.lines[path]; !ok {
			t.Errorf("default.yaml does not set %s", path)
		}
	}
	// Accounts are only an example there, in a comment.
	for _, key := range keyPaths(reflect.TypeFor[Account](), "") {
		if !regexp.MustCompile(`(?m)^#[\s#]+(- )?` + key + `:`).Match(defaultYAML) {
			t.Errorf("default.yaml's example account lacks %s", key)
		}
	}
}

// keyPaths lists the key paths of struct type t, recursing into sections.
func keyPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("yaml")
		if key == "" || key == "-" {
			continue
		}
		path := joinPath(prefix, key)
		if ft := t.Field(i).Type; ft.Kind() == reflect.Struct && ft != durationType {
			paths = append(paths, keyPaths(ft, path)...)
		} else {
			paths = append(paths, path)
		}
	}
	return paths
}

func TestFullFile(t *testing.T) {
	got, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		SIP: SIP{
			Listen:         []string{"udp://192.0.2.10:5070", "tcp://192.0.2.10:5070", "tls://[2001:db8::1]:5071"},
			Advertise:      "sip.example.com:5070",
			UserAgent:      "uad-test/1.0",
			Identity:       "sip:alice@example.com",
			T1:             Duration(250 * time.Millisecond),
			SessionExpires: Duration(600 * time.Second),
			Listeners: []Listener{
				{Network: "udp", Addr: netip.MustParseAddrPort("192.0.2.10:5070"), Raw: "udp://192.0.2.10:5070"},
				{Network: "tcp", Addr: netip.MustParseAddrPort("192.0.2.10:5070"), Raw: "tcp://192.0.2.10:5070"},
				{Network: "tls", Addr: netip.MustParseAddrPort("[2001:db8::1]:5071"), Raw: "tls://[2001:db8::1]:5071"},
			},
			Allow:         []string{"192.0.2.0/24", "198.51.100.7"},
			AllowNets:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32")},
			RateLimit:     5,
			RateBurst:     10,
			RateSources:   1000,
			Reject:        "drop",
			IncomingAuth:  IncomingAuth{Realm: "example.com", Username: "carrier", Password: "hunter2"},
			TLSCert:       "testdata/tls.pem",
			TLSKey:        "testdata/tls.pem",
			TLSVerify:     false,
			ShutdownGrace: Duration(3 * time.Second),

			UDPBuffer:         8 << 20,
			UDPReaders:        4,
			TCPMaxConnections: 200,
			TCPMaxPerSource:   0,
			TCPIdleTimeout:    Duration(5 * time.Minute),
			TCPMessageTimeout: 0,
		},
		API: API{Listen: ":9090", TokenFile: "testdata/alice.secret", Socket: "/run/uad/api.sock", SocketMode: "0600"},
		Media: Media{
			RTPPorts:       "20000-20099",
			PortMin:        20000,
			PortMax:        20099,
			Advertise:      "198.51.100.7",
			Bind:           "0.0.0.0",
			Codecs:         []string{"PCMA", "PCMU"},
			HoldTone:       "testdata/hold.wav",
			Tone:           "!350+440/1000,0/500",
			RTPTimeout:     Duration(time.Minute),
			RTPHoldTimeout: Duration(2 * time.Minute),
			RTPLatching:    true,
			SRTP:           SRTPRequire,
		},
		Calls: Calls{
			AutoAnswer:          false,
			Media:               MediaRelay,
			Relay:               "127.0.0.1:41000",
			UnholdFailure:       UnholdKeep,
			HoldDialect:         HoldInactive,
			Peers:               []Peer{{Match: "*.carrier.example", HoldDialect: HoldLegacy, SRTP: SRTPOff}},
			VideoRequestTimeout: Duration(5 * time.Second),
			VideoRequestDefault: VideoAccept,
			VideoRequestPolicy:  VideoReject,
			BridgeHold:          "silence",
			BridgeLegEnd:        "hangup",
			Video:               false,
			MaxCalls:            20,
		},
		Accounts: []Account{
			{
				Name:          "alice",
				AOR:           "sip:alice@example.com",
				Registrar:     "sip:registrar.example.com:5060;transport=tcp",
				Username:      "alice",
				PasswordFile:  "testdata/alice.secret",
				OutboundProxy: "sip:proxy.example.com",
				Transport:     "tcp",
				Expires:       600,
				HoldDialect:   HoldSendOnly,
			},
			{
				Name:      "bob",
				AOR:       "sips:bob@example.com",
				Registrar: "sips:example.com",
				Username:  "bob-auth",
				Password:  "secret",
				Transport: "tls",
				Expires:   120,
			},
		},
		Trace: Trace{MessagesPerCall: 50, MaxBytes: 1 << 20, HEP: "127.0.0.1:9060"},
		Log:   Log{Level: "debug", Format: "console"},
		File:  "testdata/full.yaml",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", got, want)
	}

	// What Parse accepts marshals to YAML that reads back the same.
	data, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	// Its paths are relative to the working directory now.
	again, err := Parse("roundtrip.yaml", data)
	if err != nil {
		t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, data)
	}
	again.File = got.File
	if !reflect.DeepEqual(again, got) {
		t.Errorf("round trip =\n%+v\nwant\n%+v\nvia\n%s", again, got, data)
	}

	secret, err := got.Accounts[0].Secret()
	if err != nil || secret != "alice-secret" {
		t.Errorf("alice's Secret() = %q, %v; want alice-secret", secret, err)
	}
	if secret, _ := got.Account("bob").Secret(); secret != "secret" {
		t.Errorf("bob's Secret() = %q; want secret", secret)
	}
	if got.Account("carol") != nil {
		t.Error(`Account("carol") is not nil`)
	}
}

func TestRedacted(t *testing.T) {
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	red := cfg.Redacted()
	if red.Accounts[1].Password != RedactedPassword || red.Accounts[0].Password != "" {
		t.Errorf("Redacted passwords = %q, %q", red.Accounts[0].Password, red.Accounts[1].Password)
	}
	if cfg.Accounts[1].Password != "secret" {
		t.Error("Redacted changed the original")
	}
	red.SIP.Listen[0] = "changed"
	if cfg.SIP.Listen[0] == "changed" {
		t.Error("Redacted shares the listen list with the original")
	}
	data, err := yaml.Marshal(red)
	if err != nil || strings.Contains(string(data), "password: secret") {
		t.Errorf("marshalled redacted config shows the password (err %v):\n%s", err, data)
	}
}

// Each config has its own copy of the defaults: changing one, or parsing
// many at once (validation writes to slices), leaves the others alone.
func TestDefaultsNotShared(t *testing.T) {
	fresh := func() *Config {
		cfg := &Config{}
		d := newDecoder("default.yaml")
		d.decodeFile(defaultYAML, cfg)
		return cfg
	}
	want := Default()
	first := Default()
	scribble(reflect.ValueOf(first).Elem())
	parsed, err := Parse("a.yaml", []byte("media:\n  codecs: [pcma]\n"))
	if err != nil {
		t.Fatal(err)
	}
	scribble(reflect.ValueOf(parsed).Elem())
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("after changing earlier configs, Default() =\n%+v\nwant\n%+v", got, want)
	}
	t.Run("parallel", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				for range 20 {
					cfg, err := Parse("b.yaml", []byte("media:\n  tone: \"350+440\"\n"))
					if err != nil {
						t.Error(err)
						return
					}
					scribble(reflect.ValueOf(cfg).Elem())
				}
			})
		}
	})
	base, err := decodedDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(base.cfg, fresh()) {
		t.Errorf("the decoded defaults changed:\n%+v\nwant\n%+v", base.cfg, fresh())
	}
}

// Config.clone copies every slice, however deep; the test fills them all,
// so a slice added to Config later is covered.
func TestCloneSharesNothing(t *testing.T) {
	orig := &Config{}
	fill(reflect.ValueOf(orig).Elem())
	cp := orig.clone()
	if !reflect.DeepEqual(cp, orig) {
		t.Fatalf("clone =\n%+v\nwant\n%+v", cp, orig)
	}
	scribble(reflect.ValueOf(cp).Elem())
	again := &Config{}
	fill(reflect.ValueOf(again).Elem())
	if !reflect.DeepEqual(orig, again) {
		t.Errorf("changing the clone changed the original:\n%+v", orig)
	}
}

// fill gives every slice in v one zero element.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	}
}

// scribble overwrites every string, number and bool reachable in v through
// exported fields and slice elements.
func scribble(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			scribble(v.Index(i))
		}
	case reflect.String:
		v.SetString("scribbled")
	case reflect.Int, reflect.Int64:
		v.SetInt(-7)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	}
}

func TestValueForms(t *testing.T) {
	cfg, err := Parse("forms.yaml", []byte(`
sip:
  t1: 1          # whole seconds
  user_agent: 42 # a number, taken as written
media:
  tone: 440      # the contract quotes it; plain works too
  rtp_timeout: "1m30s"
  advertise: ~   # empty
calls:
  relay:         # empty
accounts:        # anchors and merge keys work
  - &base
    name: a
    aor: "sip:a@example.com"
    registrar: "sip:example.com"
    expires: 900
  - <<: *base
    name: b
    aor: "sip:b@example.com"
  - <<: [{transport: tcp}, *base]
    name: c
    aor: "sip:c@example.com"
`[1:]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.T1 != Duration(time.Second) || cfg.SIP.UserAgent != "42" || cfg.Media.Tone != "440" ||
		cfg.Media.RTPTimeout != Duration(90*time.Second) || cfg.Media.Advertise != "" || cfg.Calls.Relay != "" {
		t.Errorf("got %+v", cfg)
	}
	for i, want := range []Account{
		{Name: "a", AOR: "sip:a@example.com", Registrar: "sip:example.com", Username: "a", Transport: "udp", Expires: 900},
		{Name: "b", AOR: "sip:b@example.com", Registrar: "sip:example.com", Username: "b", Transport: "udp", Expires: 900},
		{Name: "c", AOR: "sip:c@example.com", Registrar: "sip:example.com", Username: "c", Transport: "tcp", Expires: 900},
	} {
		if got := cfg.Accounts[i]; got != want {
			t.Errorf("accounts[%d] = %+v; want %+v", i, got, want)
		}
	}
}

// Each broken config is reported as exactly the one line wanted.
func TestErrors(t *testing.T) {
	const account = "accounts:\n  - name: bob\n    aor: \"sip:bob@example.com\"\n    registrar: \"sip:example.com\"\n"
	tests := []struct {
		name, yaml, want string
	}{
		// Structure and types.
		{"unknown key", "sip:\n  lisen: []\n", `bad.yaml:2: unknown key "lisen" in sip`},
		{"unknown section", "sipp: {}\n", `bad.yaml:1: unknown key "sipp" at the top level`},
		{"unknown account key", account + "    pasword: x\n", `bad.yaml:5: unknown key "pasword" in accounts[0]`},
		{"duplicate key", "sip:\n  t1: 1s\n  t1: 2s\n", `bad.yaml:3: duplicate key "t1" in sip (first on line 2)`},
		{"top level a list", "- sip\n", "bad.yaml:1: the top level must be a mapping of sections (sip, api, media, calls, accounts, trace, log)"},
		{"section not a mapping", "log: debug\n", "bad.yaml:1: log: want a mapping"},
		{"list is a string", "sip:\n  listen: \"udp://127.0.0.1:5060\"\n", "bad.yaml:2: sip.listen: want a list of strings"},
		{"list item not a string", "sip:\n  listen:\n    - udp://127.0.0.1:5060\n    - {udp: 5060}\n", "bad.yaml:4: sip.listen[1]: want a string"},
		{"string is a list", "log:\n  level: [info]\n", "bad.yaml:2: log.level: want a string"},
		{"bool", "calls:\n  auto_answer: yes\n", "bad.yaml:2: calls.auto_answer: want true or false"},
		{"int", "calls:\n  max_calls: 1.5\n", "bad.yaml:2: calls.max_calls: want a whole number"},
		{"accounts not a list", "accounts:\n  name: bob\n", "bad.yaml:2: accounts: want a list of mappings"},
		{"unknown alias", "calls:\n  media: *m\n", "bad.yaml:2: calls.media: unknown alias *m"},
		{"two documents", "log: {}\n---\nsip: {}\n", "bad.yaml:3: only one YAML document is allowed"},

		// SIP.
		{"port out of range", "sip:\n  listen: [\"udp://127.0.0.1:99999\"]\n", `bad.yaml:2: sip.listen[0]: "udp://127.0.0.1:99999": port out of range`},
		{"port not a number", "sip:\n  listen: [\"udp://127.0.0.1:sip\"]\n", `bad.yaml:2: sip.listen[0]: "udp://127.0.0.1:sip": port "sip" is not a number`},
		{"bad scheme", "sip:\n  listen: [\"ws://127.0.0.1:5060\"]\n", `bad.yaml:2: sip.listen[0]: "ws://127.0.0.1:5060": scheme must be udp, tcp or tls`},
		{"no scheme", "sip:\n  listen: [\"127.0.0.1:5060\"]\n", `bad.yaml:2: sip.listen[0]: "127.0.0.1:5060": want SCHEME://IP:PORT, e.g. udp://127.0.0.1:5060`},
		{"host name", "sip:\n  listen: [\"udp://localhost:5060\"]\n", `bad.yaml:2: sip.listen[0]: "udp://localhost:5060": "localhost" is not an IP address`},
		{"no port", "sip:\n  listen: [\"udp://127.0.0.1\"]\n", `bad.yaml:2: sip.listen[0]: "udp://127.0.0.1": want IP:PORT`},
		{"no listener", "sip:\n  listen: []\n", "bad.yaml:2: sip.listen: at least one listener is required"},
		{"empty listen", "sip:\n  listen:\n", "bad.yaml:2: sip.listen: at least one listener is required"},
		{"duplicate listener", "sip:\n  listen:\n    - udp://127.0.0.1:5070\n    - udp://127.0.0.1:5070\n", `bad.yaml:4: sip.listen[1]: "udp://127.0.0.1:5070" duplicates sip.listen[0]`},
		{"tcp and tls on one port", "sip:\n  listen:\n    - tcp://127.0.0.1:5070\n    - tls://127.0.0.1:5070\n", `bad.yaml:4: sip.listen[1]: "tls://127.0.0.1:5070": sip.listen[0] already uses this TCP address`},
		{"advertise", "sip:\n  advertise: \"bad host\"\n", `bad.yaml:2: sip.advertise: "bad host": "bad host" is not a host name or IP address`},
		{"advertise port", "sip:\n  advertise: \"example.com:0\"\n", `bad.yaml:2: sip.advertise: "example.com:0": port out of range`},
		{"identity", "sip:\n  identity: \"alice@example.com\"\n", `bad.yaml:2: sip.identity: "alice@example.com": want a sip: URI, e.g. sip:bob@127.0.0.1:5060`},
		{"identity name-addr", "sip:\n  identity: \"<sip:alice@example.com>\"\n", `bad.yaml:2: sip.identity: "<sip:alice@example.com>": want a sip: URI, e.g. sip:bob@127.0.0.1:5060`},
		{"t1 zero", "sip:\n  t1: 0s\n", "bad.yaml:2: sip.t1: must be greater than 0"},
		{"session expires", "sip:\n  session_expires: 60s\n", "bad.yaml:2: sip.session_expires: 1m0s is below the minimum of 1m30s (RFC 4028)"},
		{"rate sources", "sip:\n  rate_sources: 0\n", "bad.yaml:2: sip.rate_sources: 0: want 1 to 16777216"},
		{"udp buffer", "sip:\n  udp_buffer: -1\n", "bad.yaml:2: sip.udp_buffer: -1: want 0 to 1073741824 bytes (0 = the kernel's default)"},
		{"udp readers", "sip:\n  udp_readers: 1000\n", "bad.yaml:2: sip.udp_readers: 1000: want 0 to 256 (0 = one per CPU)"},
		{"tcp max connections", "sip:\n  tcp_max_connections: -5\n", "bad.yaml:2: sip.tcp_max_connections: must not be negative (0 = no limit)"},
		{"tcp max per source", "sip:\n  tcp_max_per_source: -1\n", "bad.yaml:2: sip.tcp_max_per_source: must not be negative (0 = no limit)"},
		{"tcp idle timeout", "sip:\n  tcp_idle_timeout: -1s\n", "bad.yaml:2: sip.tcp_idle_timeout: must not be negative (0s = never)"},
		{"tcp message timeout", "sip:\n  tcp_message_timeout: -2s\n", "bad.yaml:2: sip.tcp_message_timeout: must not be negative (0s = no limit)"},
		{"user agent CRLF", "sip:\n  user_agent: \"uad\\r\\nX-Evil: 1\"\n", "bad.yaml:2: sip.user_agent: contains a CR, LF or NUL character"},

		// API.
		{"api listen no port", "api:\n  listen: \"8089\"\n", `bad.yaml:2: api.listen: "8089": want HOST:PORT, e.g. 127.0.0.1:8089`},
		{"api listen port", "api:\n  listen: \"127.0.0.1:80890\"\n", `bad.yaml:2: api.listen: "127.0.0.1:80890": port out of range`},
		{"api listen host", "api:\n  listen: \"a_b:8089\"\n", `bad.yaml:2: api.listen: "a_b:8089": "a_b" is not a host name or IP address`},
		{"token file", "api:\n  token_file: testdata/nope\n", `bad.yaml:2: api.token_file: "testdata/nope": no such file or directory`},
		{"token file dir", "api:\n  token_file: testdata\n", `bad.yaml:2: api.token_file: "testdata": not a regular file`},

		// Media.
		{"port range reversed", "media:\n  rtp_ports: \"30000-20000\"\n", `bad.yaml:2: media.rtp_ports: "30000-20000": first port greater than last`},
		{"port range words", "media:\n  rtp_ports: \"low-high\"\n", `bad.yaml:2: media.rtp_ports: "low-high": port "low" is not a number`},
		{"port range zero", "media:\n  rtp_ports: 0-100\n", `bad.yaml:2: media.rtp_ports: "0-100": port out of range`},
		{"port range high", "media:\n  rtp_ports: 60000-70000\n", `bad.yaml:2: media.rtp_ports: "60000-70000": port out of range`},
		{"port range one port", "media:\n  rtp_ports: 5000-5000\n", `bad.yaml:2: media.rtp_ports: "5000-5000": the range must hold at least 2 ports`},
		{"port range no dash", "media:\n  rtp_ports: 10000\n", `bad.yaml:2: media.rtp_ports: "10000": want FIRST-LAST, e.g. 10000-29999`},
		{"media advertise", "media:\n  advertise: example.com\n", `bad.yaml:2: media.advertise: "example.com": want an IP address`},
		{"media bind", "media:\n  bind: \"127.0.0.1:5000\"\n", `bad.yaml:2: media.bind: "127.0.0.1:5000": want an IP address`},
		{"codec without rate", "media:\n  codecs: [PCMU, G729]\n", `bad.yaml:2: media.codecs[1]: "G729": give its RTP clock rate, NAME/RATE[/CHANNELS], e.g. G729/8000`},
		{"codec form", "media:\n  codecs:\n    - PCMU\n    - \"opus 48000\"\n", `bad.yaml:4: media.codecs[1]: "opus 48000": want NAME/RATE[/CHANNELS], e.g. opus/48000/2`},
		{"codec rate", "media:\n  codecs: [opus/48k/2]\n", `bad.yaml:2: media.codecs[0]: "opus/48k/2": rate "48k" is not a whole number of Hz`},
		{"codec channels", "media:\n  codecs: [opus/48000/two]\n", `bad.yaml:2: media.codecs[0]: "opus/48000/two": channels "two": want 1 to 8`},
		{"codec wrong rate", "media:\n  codecs: [G722/16000]\n", `bad.yaml:2: media.codecs[0]: "G722/16000": G722 is G722/8000, mono (RFC 3551)`},
		{"codec dtmf", "media:\n  codecs: [PCMU, telephone-event/8000]\n", `bad.yaml:2: media.codecs[1]: "telephone-event/8000": telephone-event (DTMF) is always offered; list only audio codecs`},
		{"codec twice in two forms", "media:\n  codecs: [G722, g722/8000]\n", `bad.yaml:2: media.codecs[1]: "g722/8000" is already listed as media.codecs[0]`},
		{"pass-through codec twice", "media:\n  codecs: [opus/48000/2, OPUS/48000/2]\n", `bad.yaml:2: media.codecs[1]: "OPUS/48000/2" is already listed as media.codecs[0]`},
		{"codec twice", "media:\n  codecs:\n    - PCMU\n    - pcmu\n", `bad.yaml:4: media.codecs[1]: "pcmu" is already listed as media.codecs[0]`},
		{"no codec", "media:\n  codecs: []\n", "bad.yaml:2: media.codecs: at least one codec is required"},
		{"duration", "media:\n  rtp_timeout: 30 seconds\n", `bad.yaml:2: media.rtp_timeout: "30 seconds": not a duration (write e.g. 30s, 500ms or 0s)`},
		{"duration type", "media:\n  rtp_timeout: [30s]\n", "bad.yaml:2: media.rtp_timeout: want a duration such as 30s, 500ms or 0s"},
		{"negative duration", "media:\n  rtp_hold_timeout: -1s\n", "bad.yaml:2: media.rtp_hold_timeout: must not be negative"},
		{"trace ring too large", "trace:\n  messages_per_call: 10001\n", "bad.yaml:2: trace.messages_per_call: must be between 0 and 10000"},
		{"hep without port", "trace:\n  hep: \"127.0.0.1\"\n", `bad.yaml:2: trace.hep: "127.0.0.1": must be HOST:PORT`},
		{"trace max bytes", "trace:\n  max_bytes: -1\n", "bad.yaml:2: trace.max_bytes: must not be negative (0 = no limit)"},
		{"tone duration 0", "media:\n  hold_tone: \"440/0\"\n", `bad.yaml:2: media.hold_tone: "440/0": invalid tone spec: segment 1: duration must be greater than 0 (leave out /MS to play forever)`},
		{"tone frequency", "media:\n  tone: \"5000\"\n", `bad.yaml:2: media.tone: "5000": invalid tone spec: segment 1: frequency 5000 Hz is out of range (0 to 3999 Hz at 8 kHz sampling)`},
		{"tone not a tone", "media:\n  tone: music.mp3\n", `bad.yaml:2: media.tone: "music.mp3": invalid tone spec: segment 1: frequency "music.mp3" is not a whole number of Hz`},
		{"tone forever", "media:\n  tone: \"440,0/100\"\n", `bad.yaml:2: media.tone: "440,0/100": invalid tone spec: segment 1 plays forever (it has no /MS), so the segments after it would never play`},
		{"tone blank", "media:\n  tone: \" \"\n", `bad.yaml:2: media.tone: " ": invalid tone spec: no segments`},
		{"tone empty", "media:\n  tone: \"\"\n", "bad.yaml:2: media.tone: empty; want a tone spec such as 440/300,0/3700 or a .wav file"},
		{"wav missing", "media:\n  hold_tone: testdata/missing.wav\n", `bad.yaml:2: media.hold_tone: "testdata/missing.wav": no such file or directory`},

		// Calls.
		{"call media", "calls:\n  media: music\n", `bad.yaml:2: calls.media: "music": want echo, tone, silence or relay`},
		{"relay host", "calls:\n  relay: \"localhost:40000\"\n", `bad.yaml:2: calls.relay: "localhost:40000": "localhost" is not an IP address`},
		{"relay port", "calls:\n  relay: \"127.0.0.1:0\"\n", `bad.yaml:2: calls.relay: "127.0.0.1:0": port out of range`},
		{"relay needed", "calls:\n  media: relay\n  relay: \"\"\n", "bad.yaml:3: calls.relay: must be set when calls.media is relay"},
		{"unhold failure", "calls:\n  unhold_failure: retry\n", `bad.yaml:2: calls.unhold_failure: "retry": want hangup or keep`},
		{"hold dialect", "calls:\n  hold_dialect: mute\n", `bad.yaml:2: calls.hold_dialect: "mute": want sendonly, inactive or legacy`},
		{"srtp mode", "media:\n  srtp: yes\n", `bad.yaml:2: media.srtp: "yes": want off, accept or require`},
		{"srtp mode empty", "media:\n  srtp: \"\"\n", `bad.yaml:2: media.srtp: "": want off, accept or require`},
		{"peer srtp", "calls:\n  peers:\n    - match: \"*.example.net\"\n      hold_dialect: inactive\n      srtp: mandatory\n", `bad.yaml:5: calls.peers[0].srtp: "mandatory": want off, accept or require`},
		{"peer pattern", "calls:\n  peers:\n    - match: \"[\"\n      hold_dialect: inactive\n", `bad.yaml:3: calls.peers[0].match: must be a host pattern such as "*.example.net"`},
		{"video request default", "calls:\n  video_request_default: maybe\n", `bad.yaml:2: calls.video_request_default: "maybe": want accept or reject`},
		{"video request timeout", "calls:\n  video_request_timeout: 0\n", "bad.yaml:2: calls.video_request_timeout: must be greater than 0"},
		{"max calls", "calls:\n  max_calls: -1\n", "bad.yaml:2: calls.max_calls: must not be negative (0 = unlimited)"},

		// Accounts.
		{"account name missing", "accounts:\n  - aor: \"sip:bob@example.com\"\n    registrar: \"sip:example.com\"\n", "bad.yaml:2: accounts[0].name: required"},
		{"account name twice", account + strings.Replace(account, "accounts:\n", "", 1), `bad.yaml:5: accounts[1].name: "bob" is already used by accounts[0]`},
		{"account aor", "accounts:\n  - name: bob\n    aor: \"tel:+123\"\n    registrar: \"sip:example.com\"\n", `bad.yaml:3: accounts[0].aor: "tel:+123": want a sip: URI, e.g. sip:bob@127.0.0.1:5060`},
		{"account registrar missing", "accounts:\n  - name: bob\n    aor: \"sip:bob@example.com\"\n", "bad.yaml:2: accounts[0].registrar: required"},
		{"account registrar host", "accounts:\n  - name: bob\n    aor: \"sip:bob@example.com\"\n    registrar: \"sip:\"\n", `bad.yaml:4: accounts[0].registrar: "sip:": no host`},
		{"outbound proxy", account + "    outbound_proxy: \"proxy.example.com\"\n", `bad.yaml:5: accounts[0].outbound_proxy: "proxy.example.com": want a sip: URI, e.g. sip:bob@127.0.0.1:5060`},
		{"password twice", account + "    password: x\n    password_file: testdata/alice.secret\n", "bad.yaml:6: accounts[0].password_file: set password or password_file, not both"},
		{"password file", account + "    password_file: testdata/none\n", `bad.yaml:5: accounts[0].password_file: "testdata/none": no such file or directory`},
		{"expires", account + "    expires: 0\n", "bad.yaml:5: accounts[0].expires: must be greater than 0 seconds"},
		{"transport", account + "    transport: sctp\n", `bad.yaml:5: accounts[0].transport: "sctp": want udp, tcp or tls`},
		{"account CRLF", account + "    username: \"bob\\nX: y\"\n", "bad.yaml:5: accounts[0].username: contains a CR, LF or NUL character"},

		// Log.
		{"log level", "log:\n  level: verbose\n", `bad.yaml:2: log.level: "verbose": want debug, info, warn or error`},
		{"log format", "log:\n  format: text\n", `bad.yaml:2: log.format: "text": want json or console`},

		// YAML syntax.
		{"unclosed list", "sip:\n  t1: 1s\n  listen: [\"udp://127.0.0.1:5060\"\n", "bad.yaml:3: YAML syntax error: sequence end token ']' not found"},
		{"unclosed quote", "sip:\n  t1: 1s\n  user_agent: 'uad\n", "bad.yaml:3: YAML syntax error: could not find end character of single-quoted text"},
		{"tab", "sip:\n\tlisten: []\n", "bad.yaml:2: YAML syntax error: found character '\t' that cannot start any token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("bad.yaml", []byte(tt.yaml))
			if cfg != nil {
				t.Errorf("Parse returned a config with the error")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse error = %v (%T); want *Errors", err, err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse error =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// Every problem is reported, in line order, not just the first.
func TestErrorsTogether(t *testing.T) {
	data := `
log:
  level: loud
sip:
  lisen: []
  listen: ["udp://127.0.0.1:99999", "tcp://127.0.0.1:5060"]
  user_agent: "a\rb"
media:
  rtp_ports: "30000-20000"
calls:
  media: relay
  relay: nowhere
accounts:
  - name: bob
    aor: "sip:bob@example.com"
  - name: bob
    aor: "sip:bob2@example.com"
    registrar: "sip:example.com"
    expires: soon
`[1:]
	want := strings.Join([]string{
		`bad.yaml:2: log.level: "loud": want debug, info, warn or error`,
		`bad.yaml:4: unknown key "lisen" in sip`,
		`bad.yaml:5: sip.listen[0]: "udp://127.0.0.1:99999": port out of range`,
		`bad.yaml:6: sip.user_agent: contains a CR, LF or NUL character`,
		`bad.yaml:8: media.rtp_ports: "30000-20000": first port greater than last`,
		`bad.yaml:11: calls.relay: "nowhere": want IP:PORT`,
		`bad.yaml:13: accounts[0].registrar: required`,
		`bad.yaml:15: accounts[1].name: "bob" is already used by accounts[0]`,
		`bad.yaml:18: accounts[1].expires: want a whole number`,
	}, "\n")
	_, err := Parse("bad.yaml", []byte(data))
	if err == nil || err.Error() != want {
		t.Errorf("Parse error =\n%v\nwant\n%s", err, want)
	}
}

// A header value cannot smuggle in a line break, whichever YAML escape or
// block style writes it.
func TestHeaderInjection(t *testing.T) {
	fields := []string{"sip.user_agent", "sip.identity", "sip.advertise"}
	for _, field := range fields {
		section, key, _ := strings.Cut(field, ".")
		for _, value := range []string{`"uad\r\nVia: evil"`, `"uad\nX"`, `"uad\rX"`, `"uad\0X"`, `"uad\x00"`, "|\n    uad\n    X-Evil: 1"} {
			data := section + ":\n  " + key + ": " + value + "\n"
			_, err := Parse("bad.yaml", []byte(data))
			want := "bad.yaml:2: " + field + ": contains a CR, LF or NUL character"
			if err == nil || err.Error() != want {
				t.Errorf("%q: error %v; want %s", data, err, want)
			}
		}
	}
	accountKeys := []struct{ key, value string }{
		{"name", "bob"},
		{"aor", `"sip:bob@example.com"`},
		{"registrar", `"sip:example.com"`},
		{"username", "bob"},
		{"password", "secret"},
		{"outbound_proxy", `"sip:proxy.example.com"`},
	}
	for bad := range accountKeys {
		data := "accounts:\n  -"
		for i, kv := range accountKeys {
			value := kv.value
			if i == bad {
				value = `"sip:x@y\r\nX: 1"`
			}
			data += "    " + kv.key + ": " + value + "\n"
		}
		data = strings.Replace(data, "-    ", "- ", 1)
		_, err := Parse("bad.yaml", []byte(data))
		want := fmt.Sprintf("bad.yaml:%d: accounts[0].%s: contains a CR, LF or NUL character", bad+2, accountKeys[bad].key)
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v; want %s", data, err, want)
		}
	}
}

// Anchors and merge keys cannot make a small file expensive to decode.
func TestMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("accounts:\n  - &a0 {name: bob}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "  - &a%d {<<: [%s]}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 8), ", "))
	}
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "merge keys (<<) bring in more than 1000 mappings") {
		t.Errorf("Parse error = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Parse took %v", d)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.yaml")
	_, err := Load(path)
	var errs *Errors
	if !errors.As(err, &errs) || err.Error() != path+": no such file or directory" {
		t.Errorf("Load error = %v", err)
	}
}

// Relative paths are taken from the config file's directory.
func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("t0k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "uad.yaml")
	if err := os.WriteFile(path, []byte("api:\n  token_file: token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "token"); cfg.API.TokenFile != want {
		t.Errorf("token_file = %q; want %q", cfg.API.TokenFile, want)
	}
}

// A tone spec is checked by package tonespec, which media plays it by, and
// reported as "KEY: "SPEC": " and its error: the same text either way.
func TestToneSpec(t *testing.T) {
	for _, spec := range []string{
		"440", "!440/300,0/3700", "440/300, 0/3700", "0+0", "3999",
		"!", "440,", "4000", "-440", "440/-1", "440/", "+440", "1+2+3", "440+440",
		"425*50", "440/300,!0/100", "440/60001", "440/9999999999",
	} {
		_, want := tonespec.Parse(spec)
		data := fmt.Sprintf("media:\n  tone: %q\n", spec)
		_, err := Parse("tone.yaml", []byte(data))
		switch {
		case want == nil && err != nil:
			t.Errorf("%q: %v", spec, err)
		case want != nil && errString(err) != fmt.Sprintf("tone.yaml:2: media.tone: %q: %v", spec, want):
			t.Errorf("%q: error %v; want the tonespec error %v", spec, err, want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestErrorString(t *testing.T) {
	errs := Errors{
		{File: "a.yaml", Line: 3, Msg: "x"},
		{File: "a.yaml", Msg: "y"},
		{Msg: "z"},
	}
	if got, want := errs.Error(), "a.yaml:3: x\na.yaml: y\nz"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	// Short fragments, a section or a feature each, keep executions fast;
	// more are in testdata/fuzz/FuzzParse.
	for _, seed := range []string{
		"sip:\n  listen: [\"udp://127.0.0.1:5070\", \"tcp://[::1]:5071\"]\n  advertise: sip.example.com:5070\n  t1: 250ms\n",
		"sip:\n  listen: [\"tls://127.0.0.1:5071\"]\n  tls_cert: testdata/tls.pem\n  tls_key: testdata/tls.pem\n",
		"sip:\n  allow: [192.0.2.0/24, 198.51.100.7]\n  rate_limit: 5\n  reject: drop\n  incoming_auth: {username: u, password: p}\n",
		"sip:\n  listen: [\"udp://127.0.0.1:99999\"]\n  user_agent: \"a\\r\\nb\"\n",
		"api:\n  listen: \":9090\"\n  socket: /run/uad.sock\n  socket_mode: \"0600\"\n",
		"media:\n  rtp_ports: 20000-20099\n  codecs: [PCMA, pcmu]\n  tone: \"!350+440/1000,0/500\"\n  rtp_timeout: 90\n",
		"media:\n  hold_tone: testdata/hold.wav\n  tone: 440/0\n  bind: 0.0.0.0\n",
		"calls:\n  media: relay\n  relay: 127.0.0.1:41000\n  peers:\n    - {match: \"*.example.net\", hold_dialect: legacy}\n",
		"calls: {auto_answer: false, max_calls: 2, video_request_timeout: 5s}\n",
		"accounts:\n  - {name: a, aor: \"sip:a@example.com\", registrar: \"sip:example.com\", transport: tcp}\n",
		"log: {level: debug, format: console}\n",
		"a: &a {<<: *a}\nsip: *a\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *Errors", err, err)
			}
			for _, e := range *errs {
				if e.File != "fuzz.yaml" || e.Line < 0 || e.Msg == "" {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		// What Parse accepts marshals to YAML that reads back the same.
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("round trip differs:\n%+v\n%+v\nvia\n%s", cfg, again, out)
		}
	})
}

// media.codecs takes bare names of the codecs uad encodes and NAME/RATE
// forms of any other, and writes each the one way uad uses it.
func TestCodecForms(t *testing.T) {
	cfg, err := Parse("a.yaml", []byte("media:\n  codecs: [g722/8000, opus/48000/2, pcmu, G729/8000/1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"G722", "opus/48000/2", "PCMU", "G729/8000"}
	if !reflect.DeepEqual(cfg.Media.Codecs, want) {
		t.Errorf("media.codecs = %q, want %q", cfg.Media.Codecs, want)
	}
}
