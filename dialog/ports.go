package dialog

import (
	"context"
	"net/netip"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/media"
	"uad/sip"
)

// Signalling is the SIP layer as the call layer sees it: *sip.Endpoint in
// the daemon, a recording fake in tests. Request, Write and Cancel may
// block (name lookup, TCP or TLS connection): calls use them off their
// loop, in order, from their outbox.
type Signalling interface {
	// Contact is uad's Contact URI for a user and transport, on a listener
	// of peer's address family (invalid peer: the transport's first).
	Contact(user, network string, peer netip.Addr) gosip.Uri
	// UserAgent is the User-Agent and Server header value ("" = none).
	UserAgent() string
	SupportsTransport(network string) bool
	// T1 is the round-trip estimate SIP timers derive from.
	T1() time.Duration
	// Register routes the requests of a dialog to owner; Unregister stops it.
	Register(callID, localTag string, owner sip.DialogOwner)
	Unregister(callID, localTag string)

	// Request starts a client transaction and follows it with hooks (not
	// called when it returns an error); Cancel does so for a CANCEL, which
	// keeps the Via of its INVITE; Write sends a request outside any
	// transaction (the ACK of a 2xx).
	Request(ctx context.Context, req *gosip.Request, hooks sip.TxHooks) error
	Cancel(ctx context.Context, cancel *gosip.Request, hooks sip.TxHooks) error
	Write(ctx context.Context, req *gosip.Request) error
	// Respond answers on a server transaction; WriteResponse sends a
	// response again outside it (2xx retransmission).
	Respond(tx gosip.ServerTransaction, res *gosip.Response) error
	WriteResponse(res *gosip.Response) error
}

// Media makes the RTP streams of calls: *media.Engine in the daemon (see
// EngineMedia), a recording fake in tests.
type Media interface {
	// NewStream opens a stream whose sockets bind to bind (invalid = the
	// engine's default) and, when relayTo is valid, the socket pair facing
	// the local relay endpoint at that address.
	NewStream(bind netip.Addr, video bool, relayTo netip.Addr) (Stream, error)
	// Bridge relays RTP between the peers of two audio streams.
	Bridge(a, b Stream)
	Unbridge(a, b Stream)
}

// Stream is one RTP stream of a call (*media.Stream in the daemon).
type Stream interface {
	LocalAddr() netip.AddrPort
	RelayLocal() netip.AddrPort
	// Configure applies what the last offer/answer agreed.
	Configure(media.StreamConfig)
	Stats() media.Stats
	OnDTMF(func(digit string))
	SendDTMF(digits string, d time.Duration) error
	RequestKeyFrame() error
	// OnFault is told once when the stream's goroutines failed (a panic):
	// the call it belongs to ends.
	OnFault(func(reason string))
	Close()
}

// EngineMedia adapts the media engine to Media.
func EngineMedia(e *media.Engine) Media { return engineMedia{e} }

type engineMedia struct{ e *media.Engine }

func (m engineMedia) NewStream(bind netip.Addr, video bool, relayTo netip.Addr) (Stream, error) {
	s, err := m.e.NewStreamOn(bind, relayTo, video)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (engineMedia) Bridge(a, b Stream) {
	if sa, ok := a.(*media.Stream); ok {
		if sb, ok := b.(*media.Stream); ok {
			media.Bridge(sa, sb)
		}
	}
}

func (engineMedia) Unbridge(a, b Stream) {
	if sa, ok := a.(*media.Stream); ok {
		if sb, ok := b.(*media.Stream); ok {
			media.Unbridge(sa, sb)
		}
	}
}
