package media

import (
	"bytes"
	"net/netip"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// This file is the packet side of SRTP: a stream's outgoing context, which
// its sender encrypts with, and its incoming one, which its reader decrypts
// with before anything counts a packet. Both live as long as the keys the
// offer/answer agreed: hold, resume and source changes keep them, so the
// rollover counter runs on with the sequence numbers. The stream's mutex
// guards them, as it guards the sender.

// srtpOverhead is the most a suite adds to an RTP packet (an 80-bit tag;
// GCM's is 16 bytes) or to RTCP (the tag and the SRTCP index).
const srtpOverhead = 16 + 4

// replayWindow is how far back a received packet may come and still be
// taken (RFC 3711 §3.3.2).
const replayWindow = 128

// oldKeyPackets is how many packets the previous key may still decrypt
// after a re-key: those in flight when the peer switched, seconds of them
// at most. The first packet the new key takes retires the old one at once.
const oldKeyPackets = 512

// srtpOut encrypts one outgoing stream with our key.
type srtpOut struct {
	keys *SRTPKeys
	ctx  *srtp.Context
	hdr  rtp.Header // scratch for the header EncryptRTP reads
	buf  [maxPacket + srtpOverhead]byte
}

// srtpIn decrypts the peer's packets with its key. After a re-key the
// previous context stays as a fallback, for packets the peer sent before it
// switched (RFC 4568 §7.1.4: no gap at the change).
type srtpIn struct {
	keys      *SRTPKeys
	cur, prev *srtp.Context
	prevLeft  int // packets prev may still decrypt
	hdr       rtp.Header
	rtcpHdr   rtcp.Header
	plain     [maxPacket]byte // the reader's decrypted packet
	rtcpPlain [maxPacket]byte
}

func newContext(key []byte, suiteName string, opts ...srtp.ContextOption) (*srtp.Context, error) {
	suite, ok := suiteByName(suiteName)
	if !ok || len(key) != suite.KeyLen+suite.SaltLen {
		return nil, ErrNoCrypto
	}
	return srtp.CreateContext(key[:suite.KeyLen], key[suite.KeyLen:], suite.Profile, opts...)
}

// setSRTP applies the keys of the last offer/answer (nil: plain RTP) for
// a peer at remote. A direction whose key is unchanged keeps its context; a
// new key gets a new context that carries on the rollover counter and SRTCP
// index of the SSRC (RFC 3711 §3.3.1: a re-key never resets it; the
// sequence numbers carry on too, so the packet index stays unique). Only a
// peer that moved to another address with its new key starts its stream at
// a rollover counter of 0 (RFC 4568 §7.1.4: the new sender may not know the
// old one's). The stream's mutex is held.
func (s *Stream) setSRTP(keys *SRTPKeys, remote netip.AddrPort) error {
	moved := s.srtpPeer.IsValid() && remote.IsValid() && remote != s.srtpPeer
	if remote.IsValid() {
		s.srtpPeer = remote
	}
	if keys == nil {
		s.toPeer.srtp, s.srtpIn = nil, nil
		return nil
	}
	out := s.toPeer.srtp
	if out == nil || out.keys.Suite != keys.Suite || !bytes.Equal(out.keys.Local, keys.Local) {
		ctx, err := newContext(keys.Local, keys.Suite)
		if err != nil {
			return err
		}
		ssrc := s.toPeer.hdr.SSRC
		if out != nil {
			if roc, ok := out.ctx.ROC(ssrc); ok {
				ctx.SetROC(ssrc, roc)
			}
			if idx, ok := out.ctx.Index(ssrc); ok {
				ctx.SetIndex(ssrc, idx)
			}
		}
		s.toPeer.srtp = &srtpOut{keys: keys, ctx: ctx}
	} else {
		s.toPeer.srtp.keys = keys
	}
	in := s.srtpIn
	if in == nil || in.keys.Suite != keys.Suite || !bytes.Equal(in.keys.Remote, keys.Remote) {
		ctx, err := newContext(keys.Remote, keys.Suite,
			srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
		if err != nil {
			return err
		}
		next := &srtpIn{keys: keys, cur: ctx, prevLeft: oldKeyPackets}
		if in != nil {
			if ssrc := s.peerSSRC.Load(); ssrc != 0 && !moved {
				if roc, ok := in.cur.ROC(ssrc); ok {
					ctx.SetROC(ssrc, roc)
				}
			}
			next.prev = in.cur
		}
		s.srtpIn = next
	} else {
		s.srtpIn.keys = keys
	}
	return nil
}

// protect encrypts an RTP packet into the context's buffer.
func (o *srtpOut) protect(pkt []byte) ([]byte, error) {
	return o.ctx.EncryptRTP(o.buf[:0], pkt, &o.hdr)
}

// protectRTCP encrypts an RTCP compound packet into dst.
func (o *srtpOut) protectRTCP(dst, pkt []byte) ([]byte, error) {
	return o.ctx.EncryptRTCP(dst[:0], pkt, nil)
}

// unprotect decrypts an SRTP packet into the reader's buffer: with the
// current key, else with the one before a re-key while it may.
func (in *srtpIn) unprotect(pkt []byte) ([]byte, error) {
	out, err := in.cur.DecryptRTP(in.plain[:0], pkt, &in.hdr)
	if err == nil || !in.oldKeyMay() {
		in.retire(err)
		return out, err
	}
	if old, err2 := in.prev.DecryptRTP(in.plain[:0], pkt, &in.hdr); err2 == nil {
		return old, nil
	}
	return out, err
}

// unprotectRTCP decrypts an SRTCP packet, likewise.
func (in *srtpIn) unprotectRTCP(pkt []byte) ([]byte, error) {
	out, err := in.cur.DecryptRTCP(in.rtcpPlain[:0], pkt, &in.rtcpHdr)
	if err == nil || !in.oldKeyMay() {
		in.retire(err)
		return out, err
	}
	if old, err2 := in.prev.DecryptRTCP(in.rtcpPlain[:0], pkt, &in.rtcpHdr); err2 == nil {
		return old, nil
	}
	return out, err
}

// oldKeyMay reports whether the previous key may decrypt one more packet.
func (in *srtpIn) oldKeyMay() bool {
	if in.prev == nil {
		return false
	}
	if in.prevLeft--; in.prevLeft < 0 {
		in.prev = nil
		return false
	}
	return true
}

// retire drops the previous key once the current one took a packet.
func (in *srtpIn) retire(err error) {
	if err == nil {
		in.prev = nil
	}
}

// SRTPSuite is the suite the stream encrypts with, or "" for plain RTP.
func (s *Stream) SRTPSuite() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.toPeer.srtp == nil {
		return ""
	}
	return s.toPeer.srtp.keys.Suite
}

// writeRTCP sends an RTCP packet to the peer, as SRTCP when the stream is
// keyed. The stream's mutex is held; dst is scratch for the encryption.
func (s *Stream) writeRTCP(pkt []byte, dst []byte) {
	remote := s.cfg.remote(s.video)
	if o := s.toPeer.srtp; o != nil {
		var err error
		if pkt, err = o.protectRTCP(dst, pkt); err != nil {
			return
		}
	}
	_, _ = s.rtcp.WriteToUDPAddrPort(pkt, rtcpAddr(remote))
}
