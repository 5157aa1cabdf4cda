package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// Registration states, as GET /v1/accounts reports them.
const (
	RegRegistering  = "registering"  // the first REGISTER has not been answered yet
	RegRegistered   = "registered"   // the registrar holds our binding
	RegUnregistered = "unregistered" // stopped; the binding was removed (or never made)
	RegFailed       = "failed"       // the last attempt failed; retrying with back-off
)

// Registration timing (RFC 3261 §10.2.4 leaves the policy to the UA).
const (
	// refreshMargin: a refresh starts at least this long before the binding
	// expires, so that a UDP transaction (64*T1 = 32 s) ends in time.
	refreshMargin = 32 * time.Second
	// minRefresh is the shortest wait between two registrations.
	minRefresh = time.Second
	// retryFirst and retryMax bound the back-off after a failure.
	retryFirst = 5 * time.Second
	retryMax   = 5 * time.Minute
	// authRounds is how many challenges one REGISTER may answer: a second
	// one is only answered when it says the nonce was stale.
	authRounds = 2
	// intervalRounds is how many 423s one attempt follows.
	intervalRounds = 3
)

// Account is what a Registration needs to know of a configured account.
type Account struct {
	Name          string
	AOR           string // sip: URI, To and From of the REGISTER
	Registrar     string // sip: URI, the REGISTER's Request-URI
	Username      string // digest user
	Password      func() (string, error)
	OutboundProxy string // optional sip: URI the REGISTER is routed through
	Transport     string // udp | tcp
	Expires       int    // seconds asked for
}

// AccountStatus is a registration as the control API lists it.
type AccountStatus struct {
	Name    string
	AOR     string
	State   string // RegRegistering, RegRegistered, RegUnregistered or RegFailed
	Error   string // why the last attempt failed, when State is RegFailed
	Expires int    // seconds the registrar granted on the last success
}

// RegistrationNotify learns each change of a registration's state; err is
// the reason when state is RegFailed. It must not block.
type RegistrationNotify func(name, state string, err error)

// RegisterError is a registrar's final non-2xx answer to a REGISTER.
type RegisterError struct {
	Status int
	Reason string
	Hint   string // what it likely means, e.g. "wrong password?"
}

func (e *RegisterError) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Reason)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Registration keeps one account registered: REGISTER with digest
// authentication, refreshes before the binding expires, retries with
// back-off, and removes the binding on Stop. One Call-ID serves every
// REGISTER of it, with increasing CSeq (RFC 3261 §10.2.4).
type Registration struct {
	ep     *Endpoint
	log    zerolog.Logger
	acct   Account
	notify RegistrationNotify

	aor       gosip.Uri
	registrar gosip.Uri
	proxy     *gosip.Uri
	transport string // "UDP" or "TCP"
	contact   gosip.Uri
	callID    string
	fromTag   string
	cseq      uint32 // of the last REGISTER sent; owned by run, then Stop

	mu      sync.Mutex
	state   string
	err     error
	expires int  // asked for; raised by 423s
	granted int  // by the last 2xx
	bound   bool // a 2xx gave us a binding not yet removed

	cancel context.CancelFunc
	done   chan struct{}
	broken error // set when the account cannot register at all
}

// NewRegistration prepares the registration of an account; Start begins it.
// An account that cannot work (bad URI, transport uad does not listen on)
// gives a registration that stays failed.
func (e *Endpoint) NewRegistration(log zerolog.Logger, acct Account, notify RegistrationNotify) *Registration {
	r := &Registration{
		ep:      e,
		log:     log.With().Str("account", acct.Name).Logger(),
		acct:    acct,
		notify:  notify,
		callID:  randomID(24),
		fromTag: gosip.GenerateTagN(16),
		cseq:    rand.Uint32N(1 << 15),
		state:   RegRegistering,
		expires: acct.Expires,
		done:    make(chan struct{}),
	}
	if r.notify == nil {
		r.notify = func(string, string, error) {}
	}
	r.broken = r.setup()
	return r
}

func (r *Registration) setup() error {
	if err := gosip.ParseUri(r.acct.AOR, &r.aor); err != nil {
		return fmt.Errorf("aor %q: %w", r.acct.AOR, err)
	}
	r.aor.UriParams, r.aor.Headers = nil, nil
	if err := gosip.ParseUri(r.acct.Registrar, &r.registrar); err != nil {
		return fmt.Errorf("registrar %q: %w", r.acct.Registrar, err)
	}
	r.registrar.User, r.registrar.Password, r.registrar.Headers = "", "", nil // §10.2: no userinfo
	if r.acct.OutboundProxy != "" {
		var p gosip.Uri
		if err := gosip.ParseUri(r.acct.OutboundProxy, &p); err != nil {
			return fmt.Errorf("outbound proxy %q: %w", r.acct.OutboundProxy, err)
		}
		p.User, p.Password, p.Headers = "", "", nil
		if p.UriParams == nil {
			p.UriParams = gosip.NewParams()
		}
		if !p.UriParams.Has("lr") {
			p.UriParams.Add("lr", "")
		}
		r.proxy = &p
	}
	network := strings.ToLower(r.acct.Transport)
	if network == "" {
		network = "udp"
	}
	if !r.ep.SupportsTransport(network) {
		return fmt.Errorf("transport %s: uad has no %s listener (sip.listen)", network, network)
	}
	r.transport = strings.ToUpper(network)
	r.contact = r.ep.Contact(r.aor.User, network, HostAddr(r.registrar.Host))
	if r.expires <= 0 {
		r.expires = 300
	}
	return nil
}

// Name is the account's name.
func (r *Registration) Name() string { return r.acct.Name }

// Status reports the registration's state.
func (r *Registration) Status() AccountStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := AccountStatus{Name: r.acct.Name, AOR: r.acct.AOR, State: r.state, Expires: r.granted}
	if r.state == RegFailed && r.err != nil {
		st.Error = r.err.Error()
	}
	return st
}

// Start registers in the background until Stop.
func (r *Registration) Start() {
	if r.broken != nil {
		r.setState(RegFailed, r.broken)
		r.log.Error().Msgf("registration of account %s failed: %v", r.acct.Name, r.broken)
		close(r.done)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
}

// Stop ends the refreshes and, when the registrar holds our binding, removes
// it (Expires 0, same Call-ID, authenticated as needed) within ctx.
func (r *Registration) Stop(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	<-r.done
	r.mu.Lock()
	bound := r.bound
	r.mu.Unlock()
	if !bound {
		r.setState(RegUnregistered, nil)
		return nil
	}
	if _, err := r.attempt(ctx, 0); err != nil {
		r.log.Warn().Msgf("unregistration of account %s failed: %v", r.acct.Name, err)
		r.setState(RegUnregistered, nil)
		return err
	}
	r.mu.Lock()
	r.bound = false
	r.mu.Unlock()
	r.log.Info().Msgf("account %s unregistered from %s", r.acct.Name, r.registrar.String())
	r.setState(RegUnregistered, nil)
	return nil
}

// setState records a state and tells notify when it changed (a failure is
// told again when its reason changed).
func (r *Registration) setState(state string, err error) {
	r.mu.Lock()
	changed := r.state != state || state == RegFailed && errString(r.err) != errString(err)
	r.state, r.err = state, err
	r.mu.Unlock()
	if changed {
		r.notify(r.acct.Name, state, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	r.ep.awaitListener(ctx, strings.ToLower(r.transport))
	failures := 0
	for {
		r.mu.Lock()
		expires := r.expires
		r.mu.Unlock()
		granted, err := r.attempt(ctx, expires)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			wait = retryDelay(failures)
			if ra := retryAfter(err); ra > 0 {
				wait = ra
			}
			failures++
			r.log.Warn().Stringer("retry_in", wait).Msgf("registration of account %s failed: %v", r.acct.Name, err)
			r.setState(RegFailed, err)
		} else {
			wait = refreshDelay(time.Duration(granted)*time.Second, rand.Float64())
			r.mu.Lock()
			r.granted, r.bound = granted, true
			first := r.state != RegRegistered
			r.mu.Unlock()
			ev := r.log.Debug()
			if first {
				ev = r.log.Info()
			}
			ev.Int("expires", granted).Stringer("refresh_in", wait).
				Msgf("account %s registered with %s", r.acct.Name, r.registrar.String())
			failures = 0
			r.setState(RegRegistered, nil)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// awaitListener waits (up to 1 s) until sipgo serves uad's listener of a
// datagram network: Serve starts it in the background, and a request sent
// from its address before then makes sipgo bind a socket of its own, which fails.
func (e *Endpoint) awaitListener(ctx context.Context, network string) {
	l, ok := e.listener(network, netip.Addr{})
	if !ok || network != "udp" {
		return
	}
	tl := e.ua.TransportLayer()
	for range 100 {
		if _, err := tl.GetConnection(network, l.Addr.String()); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// attempt sends one REGISTER asking for expires seconds (0 removes our
// binding), answering digest challenges and 423s, and returns what the
// registrar granted.
func (r *Registration) attempt(ctx context.Context, expires int) (int, error) {
	password, err := r.acct.Password()
	if err != nil {
		return 0, fmt.Errorf("password_file: %w", err)
	}
	asked := expires
	req := r.newRequest(asked)
	res, err := r.send(ctx, req)
	auths, intervals := 0, 0
	for {
		if err != nil {
			return 0, r.transportError(err)
		}
		code := int(res.StatusCode)
		switch {
		case code >= 200 && code < 300:
			if asked == 0 {
				return 0, nil
			}
			granted := grantedExpires(res, r.contact, asked)
			if granted <= 0 {
				return 0, &RegisterError{Status: code, Reason: res.Reason, Hint: "the registrar kept no binding for our Contact"}
			}
			return granted, nil
		case code == 401 || code == 407:
			if auths >= authRounds || auths > 0 && !staleChallenge(res) {
				return 0, &RegisterError{Status: code, Reason: res.Reason, Hint: "wrong password?"}
			}
			auths++
			// Authorize (auth.go) is sipgo's DoDigestAuth but for the resend,
			// which goes through prepare like every request of ours (our Via
			// with rport, from the listening socket).
			if err := Authorize(req, res, r.acct.Username, password); err != nil {
				return 0, fmt.Errorf("cannot answer the registrar's %d challenge: %w", code, err)
			}
			req.RemoveHeader("Via")
			r.cseq++
			req.CSeq().SeqNo = r.cseq
			res, err = r.send(ctx, req)
		case code == 423 && asked > 0:
			next, ok := minExpires(res, asked)
			if !ok || intervals >= intervalRounds {
				return 0, &RegisterError{Status: code, Reason: res.Reason, Hint: "no usable Min-Expires"}
			}
			intervals++
			r.log.Info().Int("min_expires", next).Msgf("account %s: registrar wants expires of at least %d s", r.acct.Name, next)
			asked = next
			r.mu.Lock()
			r.expires = next // and for the refreshes
			r.mu.Unlock()
			auths = 0
			req = r.newRequest(asked)
			res, err = r.send(ctx, req)
		default:
			e := &RegisterError{Status: code, Reason: res.Reason}
			if code == 403 {
				e.Hint = "wrong password?"
			}
			if h := res.GetHeader("Retry-After"); h != nil {
				if s, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0])); err == nil && s > 0 {
					return 0, &retryAfterError{err: e, after: time.Duration(s) * time.Second}
				}
			}
			return 0, e
		}
	}
}

// retryAfterError is a failure whose response said when to try again.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

func retryAfter(err error) time.Duration {
	if e, ok := errors.AsType[*retryAfterError](err); ok {
		return min(e.after, retryMax)
	}
	return 0
}

func (r *Registration) transportError(err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, gosip.ErrTransactionTimeout):
		return fmt.Errorf("no response from registrar %s (timeout)", r.registrar.String())
	}
	return fmt.Errorf("cannot reach registrar %s: %w", r.registrar.String(), err)
}

// send sends req as a new client transaction and waits for its final response.
func (r *Registration) send(ctx context.Context, req *gosip.Request) (*gosip.Response, error) {
	return r.ep.cli.Do(ctx, req, r.ep.prepare)
}

// newRequest builds the next REGISTER (the Via is added when it is sent).
func (r *Registration) newRequest(expires int) *gosip.Request {
	r.cseq++
	req := gosip.NewRequest(gosip.REGISTER, r.registrar)
	from := &gosip.FromHeader{Address: r.aor, Params: gosip.NewParams()}
	from.Params.Add("tag", r.fromTag)
	to := &gosip.ToHeader{Address: r.aor, Params: gosip.NewParams()}
	callID := gosip.CallIDHeader(r.callID)
	maxFwd := gosip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: r.cseq, MethodName: gosip.REGISTER})
	req.AppendHeader(&maxFwd)
	if r.proxy != nil {
		req.AppendHeader(&gosip.RouteHeader{Address: *r.proxy})
	}
	contact := &gosip.ContactHeader{Address: r.contact, Params: gosip.NewParams()}
	contact.Params.Add("expires", strconv.Itoa(expires))
	req.AppendHeader(contact)
	exp := gosip.ExpiresHeader(expires)
	req.AppendHeader(&exp)
	req.AppendHeader(gosip.NewHeader("Allow", Allowed))
	if r.ep.cfg.UserAgent != "" {
		req.AppendHeader(gosip.NewHeader("User-Agent", r.ep.cfg.UserAgent))
	}
	req.SetBody(nil)
	req.SetTransport(r.transport)
	if r.proxy != nil {
		req.SetDestination(hostPort(*r.proxy))
	}
	return req
}

// grantedExpires reads the lifetime a 2xx to REGISTER granted our contact:
// the expires parameter of our Contact among those listed, else the
// Expires header, else what was asked (RFC 3261 §10.2.4). -1 when the
// registrar listed bindings but gave ours expires=0.
func grantedExpires(res *gosip.Response, ours gosip.Uri, asked int) int {
	for _, h := range res.GetHeaders("Contact") {
		for _, part := range splitAddrList(h.Value()) {
			var u gosip.Uri
			params := gosip.NewParams()
			if _, err := gosip.ParseAddressValue(strings.TrimSpace(part), &u, &params); err != nil {
				continue
			}
			if !sameContact(u, ours) {
				continue
			}
			if v, ok := params.Get("expires"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					if n == 0 {
						return -1
					}
					return n
				}
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return n
		}
	}
	return asked
}

// sameContact compares the parts of two contact URIs a registrar keeps.
func sameContact(a, b gosip.Uri) bool {
	port := func(u gosip.Uri) int {
		if u.Port == 0 {
			return 5060
		}
		return u.Port
	}
	return a.User == b.User && strings.EqualFold(a.Host, b.Host) && port(a) == port(b)
}

// minExpires reads the Min-Expires of a 423 (RFC 3261 §10.3 step 7): the
// lifetime to ask for next, when it is larger than what was asked.
func minExpires(res *gosip.Response, asked int) (int, bool) {
	h := res.GetHeader("Min-Expires")
	if h == nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || n <= asked {
		return 0, false
	}
	return n, true
}

// staleChallenge reports whether a 401/407 says only the nonce was stale.
func staleChallenge(res *gosip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range res.GetHeaders(name) {
			v := strings.ToLower(h.Value())
			if strings.Contains(strings.ReplaceAll(v, " ", ""), `stale=true`) || strings.Contains(v, `stale="true"`) {
				return true
			}
		}
	}
	return false
}

// refreshDelay is how long after a registration granted for granted to
// refresh it: a random point (rnd in [0,1)) between 50% and 90% of the
// lifetime, never later than refreshMargin before it expires, and for
// lifetimes too short for both, the margin wins down to a floor of half the
// lifetime or 5 s, whichever is less (at least minRefresh).
func refreshDelay(granted time.Duration, rnd float64) time.Duration {
	d := granted/2 + time.Duration(float64(granted)*0.4*rnd)
	if limit := granted - refreshMargin; d > limit {
		d = max(limit, min(granted/2, 5*time.Second))
	}
	return max(d, minRefresh)
}

// retryDelay is the back-off after failures earlier failures in a row:
// retryFirst, doubling, at most retryMax.
func retryDelay(failures int) time.Duration {
	d := retryFirst
	for i := 0; i < failures && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// Registrations are the registrations of every configured account.
type Registrations struct {
	list []*Registration
}

// StartRegistrations starts registering every account.
func (e *Endpoint) StartRegistrations(log zerolog.Logger, accounts []Account, notify RegistrationNotify) *Registrations {
	rs := &Registrations{}
	for _, a := range accounts {
		r := e.NewRegistration(log, a, notify)
		rs.list = append(rs.list, r)
		r.Start()
	}
	return rs
}

// Status lists every registration, in the configured order.
func (rs *Registrations) Status() []AccountStatus {
	out := make([]AccountStatus, 0, len(rs.list))
	for _, r := range rs.list {
		out = append(out, r.Status())
	}
	return out
}

// Stop unregisters every account at once, within ctx.
func (rs *Registrations) Stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range rs.list {
		wg.Go(func() { _ = r.Stop(ctx) })
	}
	wg.Wait()
}

// StopAsync is Stop in the background; the channel closes when it is done.
func (rs *Registrations) StopAsync(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs.Stop(ctx)
	}()
	return done
}
