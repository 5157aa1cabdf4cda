package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"uad/media/codecspec"
	"uad/media/tonespec"
)

// validate checks the decoded cfg, key by key and across keys, and fills
// in the fields derived from others. Values that decoding already reported
// are skipped, so each problem is told once.
func (d *decoder) validate(cfg *Config) {
	d.validateSIP(&cfg.SIP)
	d.validateAPI(&cfg.API)
	d.validateMedia(&cfg.Media)
	d.validateCalls(&cfg.Calls)
	d.validateAccounts(cfg.Accounts)
	d.validateTrace(&cfg.Trace)
	d.checkEnum("log.level", cfg.Log.Level, "debug", "info", "warn", "error")
	d.checkEnum("log.format", cfg.Log.Format, "json", "console")
}

// ok reports whether the value at path is still worth checking.
func (d *decoder) ok(path string) bool { return !d.failed[path] }

// check reports err, if any, against the value at path.
func (d *decoder) check(path string, err error) {
	if err != nil && d.ok(path) {
		d.fail(path, "%v", err)
	}
}

// checkEnum reports value unless it is one of allowed.
func (d *decoder) checkEnum(path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	d.check(path, fmt.Errorf("%q: want %s", value, orList(allowed)))
}

// orList formats ["a","b","c"] as "a, b or c".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func (d *decoder) validateSIP(s *SIP) {
	s.Listeners = nil
	if len(s.Listen) == 0 {
		d.check("sip.listen", errors.New("at least one listener is required"))
	}
	type socket struct {
		stream bool // tcp and tls share the TCP port space
		addr   netip.AddrPort
	}
	type firstUse struct {
		index   int
		network string
	}
	seen := map[socket]firstUse{}
	for i, raw := range s.Listen {
		path := fmt.Sprintf("sip.listen[%d]", i)
		if !d.ok(path) {
			continue
		}
		l, err := parseListener(raw)
		if err != nil {
			d.fail(path, "%v", err)
			continue
		}
		key := socket{stream: l.Network != "udp", addr: l.Addr}
		first, taken := seen[key]
		switch {
		case taken && l.Addr.Port() == 0: // each gets a port of its own
		case taken && first.network == l.Network:
			d.fail(path, "%q duplicates sip.listen[%d]", raw, first.index)
			continue
		case taken:
			d.fail(path, "%q: sip.listen[%d] already uses this TCP address", raw, first.index)
			continue
		default:
			seen[key] = firstUse{i, l.Network}
		}
		s.Listeners = append(s.Listeners, l)
	}
	if s.Advertise != "" {
		d.check("sip.advertise", quoted(s.Advertise, checkHostPort(s.Advertise)))
	}
	if s.Identity != "" {
		d.check("sip.identity", checkSIPURI(s.Identity))
	}
	if s.T1 <= 0 {
		d.check("sip.t1", errors.New("must be greater than 0"))
	}
	s.AllowNets = nil
	for i, cidr := range s.Allow {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			if a, aerr := netip.ParseAddr(cidr); aerr == nil {
				p, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			d.check(fmt.Sprintf("sip.allow[%d]", i), fmt.Errorf("%q is not a network such as 192.0.2.0/24", cidr))
			continue
		}
		s.AllowNets = append(s.AllowNets, p.Masked())
	}
	if s.RateLimit < 0 {
		d.check("sip.rate_limit", errors.New("must not be negative (0 = off)"))
	}
	if s.RateBurst < 0 {
		d.check("sip.rate_burst", errors.New("must not be negative"))
	}
	if s.RateSources < 1 || s.RateSources > maxRateSources {
		d.check("sip.rate_sources", fmt.Errorf("%d: want 1 to %d", s.RateSources, maxRateSources))
	}
	d.checkEnum("sip.reject", s.Reject, "respond", "drop")
	if s.UDPBuffer < 0 || s.UDPBuffer > maxUDPBuffer {
		d.check("sip.udp_buffer", fmt.Errorf("%d: want 0 to %d bytes (0 = the kernel's default)", s.UDPBuffer, maxUDPBuffer))
	}
	if s.UDPReaders < 0 || s.UDPReaders > maxUDPReaders {
		d.check("sip.udp_readers", fmt.Errorf("%d: want 0 to %d (0 = one per CPU)", s.UDPReaders, maxUDPReaders))
	}
	if s.TCPMaxConnections < 0 {
		d.check("sip.tcp_max_connections", errors.New("must not be negative (0 = no limit)"))
	}
	if s.TCPMaxPerSource < 0 {
		d.check("sip.tcp_max_per_source", errors.New("must not be negative (0 = no limit)"))
	}
	if s.TCPIdleTimeout < 0 {
		d.check("sip.tcp_idle_timeout", errors.New("must not be negative (0s = never)"))
	}
	if s.TCPMessageTimeout < 0 {
		d.check("sip.tcp_message_timeout", errors.New("must not be negative (0s = no limit)"))
	}
	if s.ShutdownGrace <= 0 {
		d.check("sip.shutdown_grace", errors.New("must be greater than 0"))
	}
	if a := &s.IncomingAuth; a.Password != "" && a.PasswordFile != "" {
		d.check("sip.incoming_auth.password_file", errors.New("set password or password_file, not both"))
	} else if a.PasswordFile != "" {
		d.checkFile("sip.incoming_auth.password_file", &a.PasswordFile)
	}
	hasTLS := false
	for _, l := range s.Listeners {
		hasTLS = hasTLS || l.Network == "tls"
	}
	if hasTLS && (s.TLSCert == "" || s.TLSKey == "") {
		d.check("sip.listen", errors.New("a tls:// listener needs sip.tls_cert and sip.tls_key"))
	}
	if s.TLSCert != "" {
		d.checkFile("sip.tls_cert", &s.TLSCert)
	}
	if s.TLSKey != "" {
		d.checkFile("sip.tls_key", &s.TLSKey)
	}
	if s.SessionExpires < Duration(MinSessionExpires) {
		d.check("sip.session_expires", fmt.Errorf("%v is below the minimum of %v (RFC 4028)", s.SessionExpires, MinSessionExpires))
	}
}

// Bounds of the receive path's settings: a buffer beyond 1 GiB, hundreds of
// read loops on one socket or state for millions of sources is a typo, not
// a setting.
const (
	maxUDPBuffer   = 1 << 30
	maxUDPReaders  = 256
	maxRateSources = 1 << 24
)

// parseListener parses a sip.listen entry, "udp|tcp|tls://IP:PORT" or
// "udp|tcp|tls://[IPv6]:PORT".
func parseListener(raw string) (Listener, error) {
	scheme, hostport, ok := strings.Cut(raw, "://")
	if !ok {
		return Listener{}, fmt.Errorf("%q: want SCHEME://IP:PORT, e.g. udp://127.0.0.1:5060", raw)
	}
	network := strings.ToLower(scheme)
	if network != "udp" && network != "tcp" && network != "tls" {
		return Listener{}, fmt.Errorf("%q: scheme must be udp, tcp or tls", raw)
	}
	addr, err := parseIPPort(hostport, true)
	if err != nil {
		return Listener{}, fmt.Errorf("%q: %w", raw, err)
	}
	return Listener{Network: network, Addr: addr, Raw: raw}, nil
}

// parseIPPort parses "IP:PORT" ("[IPv6]:PORT"); port 0 only if anyPort.
func parseIPPort(s string, anyPort bool) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return netip.AddrPort{}, errors.New("an IPv6 address needs brackets: want [IPv6]:PORT, e.g. [::1]:5060")
		}
		return netip.AddrPort{}, errors.New("want IP:PORT")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address", host)
	}
	p, err := parsePort(port, anyPort)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ip, p), nil
}

// parsePort parses a decimal port, 1..65535 (0 too if anyPort).
func parsePort(s string, anyPort bool) (uint16, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q is not a number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || (n == 0 && !anyPort) {
		return 0, errors.New("port out of range")
	}
	return uint16(n), nil
}

// checkHostPort checks "HOST" or "HOST:PORT", HOST a name or an IP.
func checkHostPort(s string) error {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if host == "" {
		return errors.New("no host")
	}
	if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
		return fmt.Errorf("%q is not a host name or IP address", host)
	}
	if port != "" {
		_, err := parsePort(port, false)
		return err
	}
	return nil
}

// isHostname reports whether s is a DNS name (RFC 1123 labels).
func isHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkSIPURI checks that s is a bare sip: or sips: URI with a valid host.
func checkSIPURI(s string) error {
	scheme, rest, _ := strings.Cut(s, ":")
	if scheme = strings.ToLower(scheme); scheme != "sip" && scheme != "sips" {
		return fmt.Errorf("%q: want a sip: URI, e.g. sip:bob@127.0.0.1:5060", s)
	}
	if strings.ContainsAny(s, " \t<>\"") {
		return fmt.Errorf("%q: want a bare URI, without spaces, <, > or quotes", s)
	}
	hostport := rest[strings.LastIndex(rest, "@")+1:]
	hostport, _, _ = strings.Cut(hostport, ";")
	hostport, _, _ = strings.Cut(hostport, "?")
	return quoted(s, checkHostPort(hostport))
}

// quoted prefixes err, if any, with the value it is about.
func quoted(value string, err error) error {
	if err != nil {
		return fmt.Errorf("%q: %w", value, err)
	}
	return nil
}

func (d *decoder) validateAPI(a *API) {
	host, port, err := net.SplitHostPort(a.Listen)
	switch {
	case a.Listen == "" && a.Socket == "":
		d.check("api.listen", errors.New("set api.listen or api.socket"))
	case a.Listen == "":
	case err != nil:
		d.check("api.listen", fmt.Errorf("%q: want HOST:PORT, e.g. 127.0.0.1:8089", a.Listen))
	default:
		if host != "" { // "" listens on every address
			if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
				d.check("api.listen", fmt.Errorf("%q: %q is not a host name or IP address", a.Listen, host))
			}
		}
		if _, err := parsePort(port, true); err != nil {
			d.check("api.listen", quoted(a.Listen, err))
		}
	}
	if a.TokenFile != "" {
		d.checkFile("api.token_file", &a.TokenFile)
	}
	if _, err := strconv.ParseUint(a.SocketMode, 8, 32); err != nil {
		d.check("api.socket_mode", fmt.Errorf("%q: want octal file permissions such as 0660", a.SocketMode))
	}
}

func (d *decoder) validateMedia(m *Media) {
	if first, last, err := parsePortRange(m.RTPPorts); err != nil {
		d.check("media.rtp_ports", quoted(m.RTPPorts, err))
	} else {
		m.PortMin, m.PortMax = first, last
	}
	if m.Advertise != "" {
		d.check("media.advertise", checkIP(m.Advertise))
	}
	// An empty bind stays empty: each call then binds in the address family
	// of its signalling (see the daemon's media addresses).
	if m.Bind != "" {
		d.check("media.bind", checkIP(m.Bind))
	}
	d.check("media.advertise", checkMediaFamilies(m.Bind, m.Advertise))
	if len(m.Codecs) == 0 {
		d.check("media.codecs", errors.New("at least one codec is required"))
	}
	seen := map[string]int{}
	for i, codec := range m.Codecs {
		path := fmt.Sprintf("media.codecs[%d]", i)
		spec, err := codecspec.Parse(codec)
		if err != nil {
			d.check(path, err)
			continue
		}
		m.Codecs[i] = spec.String()
		key := strings.ToLower(m.Codecs[i])
		if first, dup := seen[key]; dup {
			d.check(path, fmt.Errorf("%q is already listed as media.codecs[%d]", codec, first))
			continue
		}
		seen[key] = i
	}
	d.checkEnum("media.srtp", m.SRTP, SRTPOff, SRTPAccept, SRTPRequire)
	d.checkSound("media.hold_tone", &m.HoldTone)
	d.checkSound("media.tone", &m.Tone)
	if m.RTPTimeout < 0 {
		d.check("media.rtp_timeout", errors.New("must not be negative"))
	}
	if m.RTPHoldTimeout < 0 {
		d.check("media.rtp_hold_timeout", errors.New("must not be negative"))
	}
}

// parsePortRange parses an inclusive "FIRST-LAST" range of ports.
func parsePortRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, errors.New("want FIRST-LAST, e.g. 10000-29999")
	}
	p1, err := parsePort(strings.TrimSpace(a), false)
	if err != nil {
		return 0, 0, err
	}
	p2, err := parsePort(strings.TrimSpace(b), false)
	if err != nil {
		return 0, 0, err
	}
	switch first, last = int(p1), int(p2); {
	case first > last:
		return 0, 0, errors.New("first port greater than last")
	case last-first+1 < 2: // RTP and its RTCP need two
		return 0, 0, errors.New("the range must hold at least 2 ports")
	}
	return first, last, nil
}

// checkMediaFamilies refuses a media.advertise of another family than
// media.bind: peers would send to an address the RTP sockets are not on.
// The IPv6 wildcard takes IPv4 too.
func checkMediaFamilies(bind, advertise string) error {
	b, errB := netip.ParseAddr(bind)
	a, errA := netip.ParseAddr(advertise)
	if errB != nil || errA != nil || a.Unmap().Is4() == b.Unmap().Is4() || b == netip.IPv6Unspecified() {
		return nil
	}
	return fmt.Errorf("%q is %s but media.bind %q is %s: the RTP sockets cannot be reached there",
		advertise, ipFamily(a), bind, ipFamily(b))
}

func ipFamily(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkIP checks that s is an IP address.
func checkIP(s string) error {
	if strings.HasPrefix(s, "[") {
		return fmt.Errorf("%q: want an IP address without brackets, e.g. ::1", s)
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Errorf("%q: want an IP address", s)
	}
	return nil
}

// checkSound checks a tone spec or .wav path; a relative path is made
// relative to the config file's directory.
func (d *decoder) checkSound(path string, value *string) {
	if !d.ok(path) {
		return
	}
	switch {
	case *value == "":
		d.fail(path, "empty; want a tone spec such as 440/300,0/3700 or a .wav file")
	case strings.HasSuffix(strings.ToLower(*value), ".wav"):
		d.checkFile(path, value)
	default:
		// Media parses it with the same package, so the messages match.
		if _, err := tonespec.Parse(*value); err != nil {
			d.fail(path, "%q: %v", *value, err)
		}
	}
}

// checkFile resolves the path in *file against the config file's directory
// and checks that it names a readable regular file.
func (d *decoder) checkFile(path string, file *string) {
	if !d.ok(path) {
		return
	}
	if d.baseDir != "" && !filepath.IsAbs(*file) {
		*file = filepath.Join(d.baseDir, *file)
	}
	d.check(path, quoted(*file, checkReadable(*file)))
}

// checkReadable checks that a regular file at name can be opened.
func checkReadable(name string) error {
	st, err := os.Stat(name) // before Open, which would block on a FIFO
	if err == nil && !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if err == nil {
		var f *os.File
		if f, err = os.Open(name); err == nil {
			return f.Close()
		}
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err // the caller quotes the path
	}
	return err
}

func (d *decoder) validateCalls(c *Calls) {
	d.checkEnum("calls.media", c.Media, MediaEcho, MediaTone, MediaSilence, MediaRelay)
	switch {
	case c.Relay != "":
		_, err := parseIPPort(c.Relay, false)
		d.check("calls.relay", quoted(c.Relay, err))
	case c.Media == MediaRelay && d.ok("calls.relay"):
		line := d.line("calls.relay")
		if _, inFile := d.lines["calls.relay"]; !inFile {
			line = d.line("calls.media")
		}
		d.errorf(line, "calls.relay: must be set when calls.media is relay")
	}
	d.checkEnum("calls.unhold_failure", c.UnholdFailure, UnholdHangup, UnholdKeep)
	d.checkEnum("calls.hold_dialect", c.HoldDialect, HoldSendOnly, HoldInactive, HoldLegacy)
	for i, p := range c.Peers {
		path := fmt.Sprintf("calls.peers[%d]", i)
		if _, err := filepath.Match(p.Match, "x"); err != nil || p.Match == "" {
			d.check(path+".match", errors.New("must be a host pattern such as \"*.example.net\""))
		}
		d.checkEnum(path+".hold_dialect", p.HoldDialect, HoldSendOnly, HoldInactive, HoldLegacy)
		if p.SRTP != "" {
			d.checkEnum(path+".srtp", p.SRTP, SRTPOff, SRTPAccept, SRTPRequire)
		}
	}
	if c.VideoRequestTimeout <= 0 {
		d.check("calls.video_request_timeout", errors.New("must be greater than 0"))
	}
	d.checkEnum("calls.video_request_default", c.VideoRequestDefault, VideoAccept, VideoReject)
	d.checkEnum("calls.video_request_policy", c.VideoRequestPolicy, VideoAsk, VideoAccept, VideoReject)
	d.checkEnum("calls.bridge_hold", c.BridgeHold, "tone", "silence")
	d.checkEnum("calls.bridge_leg_end", c.BridgeLegEnd, "keep", "hangup")
	if c.MaxCalls < 0 {
		d.check("calls.max_calls", errors.New("must not be negative (0 = unlimited)"))
	}
}

func (d *decoder) validateAccounts(accounts []Account) {
	byName := map[string]int{}
	for i := range accounts {
		a := &accounts[i]
		path := fmt.Sprintf("accounts[%d]", i)
		switch first, dup := byName[a.Name]; {
		case a.Name == "":
			d.check(path+".name", errors.New("required"))
		case dup:
			d.check(path+".name", fmt.Errorf("%q is already used by accounts[%d]", a.Name, first))
		default:
			byName[a.Name] = i
		}
		d.checkURI(path+".aor", a.AOR, true)
		d.checkURI(path+".registrar", a.Registrar, true)
		d.checkURI(path+".outbound_proxy", a.OutboundProxy, false)
		if a.Username == "" && d.ok(path+".aor") {
			a.Username = userPart(a.AOR)
		}
		switch {
		case a.Password != "" && a.PasswordFile != "":
			d.check(path+".password_file", errors.New("set password or password_file, not both"))
		case a.PasswordFile != "":
			d.checkFile(path+".password_file", &a.PasswordFile)
		}
		d.checkEnum(path+".transport", a.Transport, "udp", "tcp", "tls")
		if a.HoldDialect != "" {
			d.checkEnum(path+".hold_dialect", a.HoldDialect, HoldSendOnly, HoldInactive, HoldLegacy)
		}
		if a.Expires <= 0 {
			d.check(path+".expires", errors.New("must be greater than 0 seconds"))
		}
	}
}

// checkURI checks an account's SIP URI, which may be left out unless required.
func (d *decoder) checkURI(path, uri string, required bool) {
	switch {
	case uri != "":
		d.check(path, checkSIPURI(uri))
	case required:
		d.check(path, errors.New("required"))
	}
}

// userPart returns the user of a sip: URI, or "".
func userPart(uri string) string {
	_, rest, _ := strings.Cut(uri, ":")
	user, _, found := strings.Cut(rest, "@")
	if !found {
		return ""
	}
	user, _, _ = strings.Cut(user, ":") // a password in the URI is not the user
	return user
}
