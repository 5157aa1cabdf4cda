package dialog

import (
	"errors"
	"fmt"
	"net/netip"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
	"uad/sip"
)

// MediaAddr is where a call's RTP sockets bind and the address its SDP
// writes in c= (and o=), for one address family.
type MediaAddr struct {
	Bind      netip.Addr // invalid = the media engine's own bind address
	Advertise netip.Addr
}

// mediaAddrs are the media addresses calls choose from: MediaAddrs, or
// MediaAddr alone on the engine's bind address.
func (cfg *Config) mediaAddrs() []MediaAddr {
	if len(cfg.MediaAddrs) > 0 {
		return cfg.MediaAddrs
	}
	return []MediaAddr{{Advertise: cfg.MediaAddr}}
}

// mediaFor is the media address of a call whose signalling uses peer's
// address family: the one of that family, else the first (peer invalid:
// a name, the family is not known before the lookup).
func (cfg *Config) mediaFor(peer netip.Addr) MediaAddr {
	addrs := cfg.mediaAddrs()
	if m, ok := cfg.mediaOf(peer); ok {
		return m
	}
	return addrs[0]
}

// mediaOf is the media address of the family of a, if uad has one.
func (cfg *Config) mediaOf(a netip.Addr) (MediaAddr, bool) {
	if !a.IsValid() {
		return MediaAddr{}, false
	}
	for _, m := range cfg.mediaAddrs() {
		if m.Advertise.Unmap().Is4() == a.Unmap().Is4() {
			return m, true
		}
	}
	return MediaAddr{}, false
}

// familyName is "IPv4" or "IPv6", as log lines and warnings say it.
func familyName(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// offerFamily is the address of an offer's audio stream, which sets the
// family of the call's media; invalid when the offer names none.
func offerFamily(offer *media.RemoteSession, laws []media.Law, mode media.SRTPMode) netip.Addr {
	if a, _ := offer.Usable("audio", laws, mode); a != nil {
		return a.Addr
	}
	return netip.Addr{}
}

// FamilyError is an SDP asking for media in an address family the call's
// sockets are not of; a SIP layer answers it with 488.
type FamilyError struct {
	Want, Have netip.Addr
}

func (e *FamilyError) Error() string {
	return fmt.Sprintf("sdp: c= asks for %s media; uad has %s media only for this call (%s)",
		familyName(e.Want), familyName(e.Have), e.Have)
}

// checkFamily refuses a peer SDP with an enabled stream whose address is
// of another family than the call's RTP sockets: a socket cannot send there.
func checkFamily(rs *media.RemoteSession, have netip.Addr) error {
	for _, st := range rs.Streams {
		if st.Port == 0 || !st.Addr.IsValid() || st.Held {
			continue
		}
		if st.Addr.Unmap().Is4() != have.Unmap().Is4() {
			return &FamilyError{Want: st.Addr, Have: have}
		}
	}
	return nil
}

// sdpWarning is the Warning of a 488 refusing an SDP for err: 301
// "Incompatible network address formats" (RFC 3261 §20.43) for a family
// uad has no media in, else 399.
func sdpWarning(err error) gosip.Header {
	var family *FamilyError
	if errors.As(err, &family) {
		return warningCode(301, err.Error())
	}
	return warning(err.Error())
}

// parseRemote parses a peer SDP of this call and checks its family.
func (c *Call) parseRemote(body []byte) (*media.RemoteSession, error) {
	rs, err := media.ParseRemote(body)
	if err != nil {
		return nil, err
	}
	if err := checkFamily(rs, c.maddr.Advertise); err != nil {
		c.log.Warn().Err(err).Msg("peer SDP refused: its media family does not match the call's")
		return nil, err
	}
	return rs, nil
}

// newStream opens a stream of the call on its media address; relay mode
// adds the pair facing the local relay endpoint.
func (c *Call) newStream(video bool) (Stream, error) {
	return c.m.med.NewStream(c.maddr.Bind, video, relayTarget(c.spec))
}

// relayTarget is the relay endpoint's address in relay mode, else invalid.
func relayTarget(spec MediaSpec) netip.Addr {
	if spec.Mode == MediaRelay {
		return spec.Relay.Addr()
	}
	return netip.Addr{}
}

// relaySocketsChange reports whether going from media spec old to new
// needs another socket pair toward the relay endpoint: relay turned on or
// off, or an endpoint of the other address family.
func relaySocketsChange(old, new MediaSpec) bool {
	a, b := relayTarget(old), relayTarget(new)
	return a.IsValid() != b.IsValid() || a.IsValid() && a.Unmap().Is4() != b.Unmap().Is4()
}

// badContactHost refuses a Contact whose bracketed host is no IPv6
// address (sipgo's parser takes anything in brackets): no request of the
// dialog could reach it.
func badContactHost(c *gosip.ContactHeader) error {
	u := c.Address
	return sip.CheckIPv6Reference(u.String(), &u)
}

// signallingPeer is the address of the next hop of an outgoing call (the
// first route, else the target) when it is an IP literal.
func signallingPeer(target string, routes []string) netip.Addr {
	if len(routes) > 0 {
		return sip.HostAddr(routes[0])
	}
	return sip.HostAddr(target)
}
