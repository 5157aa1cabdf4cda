package dialog

import (
	"context"

	"uad/media"
)

// This file is the call's side of SDES-SRTP (RFC 4568): the m-lines of
// our offers, the keys each stream gets, and what the API shows of them.

// offerSlot is an m-line of an offer of ours: SDES-SRTP with one a=crypto
// line per supported suite when the call requires SRTP or already is SRTP
// (a video stream added to an SRTP call), plain RTP otherwise.
func (c *Call) offerSlot(kind string, port int, formats []media.Format) media.LocalStream {
	ls := media.LocalStream{Kind: kind, Proto: "RTP/AVP", Port: port, Formats: formats, Direction: media.SendRecv}
	if c.srtp == media.SRTPRequire || c.audioIsSRTP() {
		ls.Proto, ls.Crypto = "RTP/SAVP", media.OfferCryptos()
	}
	return ls
}

// audioIsSRTP reports whether the call's audio stream is SDES-SRTP.
func (c *Call) audioIsSRTP() bool {
	a, _ := c.local.Active("audio")
	return a != nil && media.IsSDESProfile(a.Proto)
}

// Rekey offers new SRTP keys for every SRTP stream of the call (RFC 4568
// §7.1.4) and returns once the peer answered: both directions then switch
// to new contexts. A call without SRTP is a 409; a refusal keeps the keys.
func (m *Manager) Rekey(ctx context.Context, id string) (CallInfo, error) {
	return m.operate(ctx, id, func(c *Call) (<-chan error, error) { return c.requestRekey() })
}

func (c *Call) requestRekey() (<-chan error, error) {
	if err := c.busy(opRekey); err != nil {
		return nil, err
	}
	if !c.audioIsSRTP() {
		return nil, &StateError{Msg: "rekey: the call's media is not SRTP"}
	}
	return c.beginStep(opRekey, stepRekey)
}

// rekeyStreams gives every SRTP m-line in use new keys, in place.
func rekeyStreams(streams []media.LocalStream) {
	for i := range streams {
		if s := &streams[i]; s.Port != 0 && media.IsSDESProfile(s.Proto) {
			s.Crypto = media.Rekey(s.Crypto)
		}
	}
}

// streamKeys are the SRTP keys of a stream from its slots, and the suite
// the API shows (nil for plain RTP).
func streamKeys(ls *media.LocalStream, rs *media.RemoteStream) (*media.SRTPKeys, *string, error) {
	keys, err := media.NegotiateSRTP(ls, rs)
	if keys == nil || err != nil {
		return nil, nil, err
	}
	suite := keys.Suite
	return keys, &suite, nil
}

// takeSRTPAnswer refuses an answer to our offer whose SRTP the call cannot
// use: an SRTP stream of ours answered without a line in common. Taken,
// each SRTP stream keeps only the line the answer chose, which our later
// offers repeat.
func (c *Call) takeSRTPAnswer() error {
	var keyed []int
	for i := range c.local.Streams {
		ls := &c.local.Streams[i]
		if ls.Port == 0 || c.remote == nil || i >= len(c.remote.Streams) || c.remote.Streams[i].Disabled() {
			continue
		}
		if _, err := media.NegotiateSRTP(ls, &c.remote.Streams[i]); err != nil {
			return err
		}
		keyed = append(keyed, i)
	}
	for _, i := range keyed {
		ls := &c.local.Streams[i]
		if line, ok := media.ActiveCrypto(ls, &c.remote.Streams[i]); ok {
			ls.Crypto = []media.Crypto{line}
		}
	}
	return nil
}
