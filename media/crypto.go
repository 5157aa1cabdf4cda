package media

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// This file holds SDES-SRTP (RFC 4568) at the SDP level: the modes, the
// suites, the a=crypto attribute, and the choice of keys in offers and
// answers. The packet side is in srtp.go.

// SRTPMode is how a call treats SRTP (media.srtp, calls.peers[].srtp, and
// "srtp" in POST /v1/calls).
type SRTPMode string

const (
	SRTPOff     SRTPMode = "off"     // RTP only: SRTP m-lines are declined
	SRTPAccept  SRTPMode = "accept"  // offer RTP, accept an SRTP offer
	SRTPRequire SRTPMode = "require" // offer SRTP, refuse plain RTP
)

// ParseSRTPMode checks a mode value; "" means the default, accept.
func ParseSRTPMode(s string) (SRTPMode, error) {
	switch m := SRTPMode(s); m {
	case SRTPOff, SRTPAccept, SRTPRequire:
		return m, nil
	case "":
		return SRTPAccept, nil
	}
	return "", fmt.Errorf("srtp %q is not one of off, accept, require", s)
}

// allows reports whether a stream of transport profile proto may be used
// under the mode: plain RTP unless SRTP is required, SDES-SRTP unless off.
func (m SRTPMode) allows(proto string) bool {
	switch {
	case isPlainRTP(proto):
		return m != SRTPRequire
	case IsSDESProfile(proto):
		return m != SRTPOff
	}
	return false
}

func isPlainRTP(proto string) bool {
	return strings.EqualFold(proto, "RTP/AVP") || strings.EqualFold(proto, "RTP/AVPF")
}

// IsSDESProfile reports whether proto is SRTP keyed in the SDP (RTP/SAVP,
// RTP/SAVPF), as opposed to DTLS-SRTP (UDP/TLS/RTP/SAVPF), which uad declines.
func IsSDESProfile(proto string) bool {
	return strings.EqualFold(proto, "RTP/SAVP") || strings.EqualFold(proto, "RTP/SAVPF")
}

// IsDTLSProfile reports whether proto is DTLS-SRTP.
func IsDTLSProfile(proto string) bool {
	return strings.Contains(strings.ToUpper(proto), "TLS/RTP/SAVP")
}

// Suite is an SRTP crypto suite uad supports.
type Suite struct {
	Name    string
	Profile srtp.ProtectionProfile
	KeyLen  int // master key
	SaltLen int // master salt
}

// Suites are the suites uad supports, in the order it offers them.
var Suites = []Suite{
	{Name: "AES_CM_128_HMAC_SHA1_80", Profile: srtp.ProtectionProfileAes128CmHmacSha1_80, KeyLen: 16, SaltLen: 14},
	{Name: "AES_CM_128_HMAC_SHA1_32", Profile: srtp.ProtectionProfileAes128CmHmacSha1_32, KeyLen: 16, SaltLen: 14},
	{Name: "AEAD_AES_128_GCM", Profile: srtp.ProtectionProfileAeadAes128Gcm, KeyLen: 16, SaltLen: 12},
}

func suiteByName(name string) (Suite, bool) {
	for _, s := range Suites {
		if s.Name == name {
			return s, true
		}
	}
	return Suite{}, false
}

// Crypto is one a=crypto line: a tag, a suite and the inline master key
// with its salt (key || salt, as RFC 4568 writes it).
type Crypto struct {
	Tag   int
	Suite string
	Key   []byte
	// Unusable says why uad cannot use a line it read (an unknown suite,
	// a session parameter): the line is passed over, not an error.
	Unusable string
}

// Same reports whether two lines name the same tag, suite and key.
func (c Crypto) Same(o Crypto) bool {
	return c.Tag == o.Tag && c.Suite == o.Suite && bytes.Equal(c.Key, o.Key)
}

// usable reports whether uad can key a stream with the line.
func (c Crypto) usable() bool { return c.Unusable == "" && len(c.Key) > 0 }

// ErrCryptoKey is a malformed key in an a=crypto line: the offer is
// refused with 488.
var ErrCryptoKey = errors.New("sdp: a=crypto key")

// ParseCrypto reads the value of an a=crypto attribute (after "crypto:").
// An error is a line that breaks RFC 4568 or a key uad cannot use (bad
// base64, wrong length, a lifetime or MKI it does not support); a line it
// merely does not support (an unknown suite, session parameters) comes
// back with Unusable set.
func ParseCrypto(value string) (Crypto, error) {
	fields := strings.Fields(value)
	if len(fields) < 3 {
		return Crypto{}, fmt.Errorf("%w: %q has no tag, suite and key", ErrCryptoKey, value)
	}
	tag, err := strconv.Atoi(fields[0])
	if err != nil || tag < 0 || len(fields[0]) > 9 {
		return Crypto{}, fmt.Errorf("%w: tag %q is not a number of up to 9 digits", ErrCryptoKey, fields[0])
	}
	c := Crypto{Tag: tag, Suite: fields[1]}
	suite, known := suiteByName(c.Suite)
	if !known {
		c.Unusable = "suite " + c.Suite + " is not supported"
		return c, nil
	}
	if len(fields) > 3 {
		// KDR, UNENCRYPTED_SRTP, WSH, FEC_ORDER...: uad keeps to the defaults.
		c.Unusable = "session parameter " + fields[3] + " is not supported"
		return c, nil
	}
	keyParams := fields[2]
	if strings.Contains(keyParams, ";") {
		return c, fmt.Errorf("%w: more than one key (%s) is not supported", ErrCryptoKey, c.Suite)
	}
	method, info, ok := strings.Cut(keyParams, ":")
	if !ok || method != "inline" {
		return c, fmt.Errorf("%w: key method of %s is not inline", ErrCryptoKey, c.Suite)
	}
	parts := strings.Split(info, "|")
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		// Some stacks leave out the padding.
		if key, err = base64.RawStdEncoding.DecodeString(parts[0]); err != nil {
			return c, fmt.Errorf("%w: the %s key is not base64", ErrCryptoKey, c.Suite)
		}
	}
	if len(key) != suite.KeyLen+suite.SaltLen {
		return c, fmt.Errorf("%w: the %s key has %d bytes, want %d", ErrCryptoKey, c.Suite, len(key), suite.KeyLen+suite.SaltLen)
	}
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			return c, fmt.Errorf("%w: MKI (%s) is not supported", ErrCryptoKey, p)
		}
		if !longLifetime(p) {
			return c, fmt.Errorf("%w: key lifetime %q is not supported (uad needs at least 2^31)", ErrCryptoKey, p)
		}
	}
	c.Key = key
	return c, nil
}

// longLifetime reports whether a key lifetime (decimal or 2^N) lasts at
// least 2^31 packets: longer than any call uad keeps up (it does not re-key
// by itself when a lifetime runs out).
func longLifetime(s string) bool {
	n := new(big.Int)
	if exp, ok := strings.CutPrefix(s, "2^"); ok {
		e, err := strconv.Atoi(exp)
		if err != nil || e < 0 || e > 64 {
			return false
		}
		n.Lsh(big.NewInt(1), uint(e))
	} else if _, ok := n.SetString(s, 10); !ok {
		return false
	}
	return n.Cmp(big.NewInt(1<<31)) >= 0
}

// Value writes the attribute value for our SDP: "TAG SUITE inline:KEY".
func (c Crypto) Value() string {
	return strconv.Itoa(c.Tag) + " " + c.Suite + " inline:" + base64.StdEncoding.EncodeToString(c.Key)
}

// String is the line with its key hidden: what printing a Crypto shows,
// so that no log or error carries a key by accident.
func (c Crypto) String() string {
	return strconv.Itoa(c.Tag) + " " + c.Suite + " inline:<redacted>"
}

// NewCrypto makes a line with a fresh random key for a suite.
func NewCrypto(tag int, suite Suite) Crypto {
	key := make([]byte, suite.KeyLen+suite.SaltLen)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return Crypto{Tag: tag, Suite: suite.Name, Key: key}
}

// OfferCryptos are the lines of an SRTP offer: one per supported suite,
// each with a key of its own, tags from 1.
func OfferCryptos() []Crypto {
	out := make([]Crypto, len(Suites))
	for i, s := range Suites {
		out[i] = NewCrypto(i+1, s)
	}
	return out
}

// Rekey returns the lines with a fresh key each, tags and suites kept: a
// re-offer that re-keys (RFC 4568 §7.1.4).
func Rekey(lines []Crypto) []Crypto {
	out := make([]Crypto, len(lines))
	for i, c := range lines {
		suite, _ := suiteByName(c.Suite)
		out[i] = NewCrypto(c.Tag, suite)
	}
	return out
}

// chooseCrypto picks the first line of an offer uad can use, in the
// offerer's order of preference.
func chooseCrypto(offered []Crypto) (Crypto, bool) {
	for _, c := range offered {
		if c.usable() {
			return c, true
		}
	}
	return Crypto{}, false
}

// answerCrypto is the single line of our answer to an offered SRTP stream:
// the chosen line's tag and suite with our key. The key stays the one of
// the previous exchange when the peer offers that exchange's line again
// (same tag, suite and key): the session keeps its SRTP contexts. A new key
// of the peer's gets a new key of ours too (RFC 4568 §7.1.4).
func answerCrypto(offered []Crypto, prevLocal []Crypto, prevRemote []Crypto) (Crypto, bool) {
	chosen, ok := chooseCrypto(offered)
	if !ok {
		return Crypto{}, false
	}
	peerKept := false
	for _, p := range prevRemote {
		if p.Same(chosen) {
			peerKept = true
		}
	}
	if peerKept {
		for _, l := range prevLocal {
			if l.Tag == chosen.Tag && l.Suite == chosen.Suite && len(l.Key) > 0 {
				return l, true
			}
		}
	}
	suite, _ := suiteByName(chosen.Suite)
	return NewCrypto(chosen.Tag, suite), true
}

// SRTPKeys are the keys of one SRTP stream: the suite, our key (what uad
// encrypts with) and the peer's (what it decrypts with), each key || salt.
type SRTPKeys struct {
	Suite  string
	Local  []byte
	Remote []byte
}

// String names the suite only: printing keys shows none.
func (k *SRTPKeys) String() string {
	if k == nil {
		return "plain RTP"
	}
	return k.Suite + " (keys redacted)"
}

// Equal reports whether two sets of keys are the same (nil: plain RTP).
func (k *SRTPKeys) Equal(o *SRTPKeys) bool {
	if k == nil || o == nil {
		return k == o
	}
	return k.Suite == o.Suite && bytes.Equal(k.Local, o.Local) && bytes.Equal(k.Remote, o.Remote)
}

// ErrNoCrypto is an SRTP stream whose two sides share no a=crypto line.
var ErrNoCrypto = errors.New("sdp: no a=crypto line in common")

// NegotiateSRTP derives the SRTP keys of a stream from a completed
// offer/answer: nil for plain RTP. The two sides' lines pair by tag and
// suite: the answer has one line, naming the offer line it took.
func NegotiateSRTP(local *LocalStream, remote *RemoteStream) (*SRTPKeys, error) {
	if !IsSDESProfile(local.Proto) {
		return nil, nil
	}
	l, r, ok := pairCrypto(local, remote)
	if !ok {
		return nil, ErrNoCrypto
	}
	return &SRTPKeys{Suite: l.Suite, Local: l.Key, Remote: r.Key}, nil
}

// ActiveCrypto is our line an SRTP stream's offer/answer settled on, for
// our later offers to repeat alone: offering every line again could read
// as a new negotiation to the peer, and restart its contexts.
func ActiveCrypto(local *LocalStream, remote *RemoteStream) (Crypto, bool) {
	l, _, ok := pairCrypto(local, remote)
	return l, ok && IsSDESProfile(local.Proto)
}

// pairCrypto finds the lines of the two sides that go together: the same
// tag and suite, the peer's usable.
func pairCrypto(local *LocalStream, remote *RemoteStream) (Crypto, Crypto, bool) {
	for _, r := range remote.Crypto {
		if !r.usable() {
			continue
		}
		for _, l := range local.Crypto {
			if l.Tag == r.Tag && l.Suite == r.Suite {
				return l, r, true
			}
		}
	}
	return Crypto{}, Crypto{}, false
}

// CryptoError returns the first malformed a=crypto key of an SDES-SRTP
// stream the mode would consider, or nil: such an offer is refused (488).
func (rs *RemoteSession) CryptoError(mode SRTPMode) error {
	if mode == SRTPOff {
		return nil
	}
	for i := range rs.Streams {
		if st := &rs.Streams[i]; st.CryptoErr != nil && !st.Disabled() && IsSDESProfile(st.Proto) {
			return st.CryptoErr
		}
	}
	return nil
}

// DTLSOffered reports whether any enabled stream of the offer is DTLS-SRTP.
func (rs *RemoteSession) DTLSOffered() bool {
	for i := range rs.Streams {
		if st := &rs.Streams[i]; !st.Disabled() && IsDTLSProfile(st.Proto) {
			return true
		}
	}
	return false
}
