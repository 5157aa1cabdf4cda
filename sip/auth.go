package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Authorize adds to req the credentials a 401 (WWW-Authenticate) or 407
// (Proxy-Authenticate) challenge asks for (RFC 3261 §22, RFC 8760 SHA-256).
func Authorize(req *gosip.Request, res *gosip.Response, username, password string) error {
	chalHeader, credHeader := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chalHeader, credHeader = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(chalHeader)
	if h == nil {
		return fmt.Errorf("%d without %s", res.StatusCode, chalHeader)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return fmt.Errorf("%s: %w", chalHeader, err)
	}
	chal.Algorithm = strings.ToUpper(chal.Algorithm)
	cred, err := digest.Digest(chal, digest.Options{
		Method: string(req.Method), URI: req.Recipient.Addr(), Username: username, Password: password,
	})
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	req.RemoveHeader(credHeader)
	req.AppendHeader(gosip.NewHeader(credHeader, cred.String()))
	return nil
}

// nonceLifetime bounds how long a nonce of ours is accepted.
const nonceLifetime = 5 * time.Minute

// Challenger asks incoming requests for digest credentials (RFC 3261
// §22.4) with stateless nonces: a timestamp signed with a key of this run.
type Challenger struct {
	realm, username, password string
	key                       [32]byte
}

// NewChallenger makes a Challenger for one set of credentials.
func NewChallenger(realm, username, password string) *Challenger {
	c := &Challenger{realm: realm, username: username, password: password}
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *Challenger) nonce(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	mac := hmac.New(sha256.New, c.key[:])
	mac.Write(b[:8])
	copy(b[8:], mac.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (c *Challenger) nonceValid(nonce string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false
	}
	mac := hmac.New(sha256.New, c.key[:])
	mac.Write(b[:8])
	if !hmac.Equal(b[8:], mac.Sum(nil)[:16]) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return now.Sub(issued) < nonceLifetime && !issued.After(now.Add(time.Second))
}

// Challenge is the WWW-Authenticate header of a 401.
func (c *Challenger) Challenge() gosip.Header {
	chal := digest.Challenge{Realm: c.realm, Nonce: c.nonce(time.Now()), Algorithm: "MD5", QOP: []string{"auth"}}
	return gosip.NewHeader("WWW-Authenticate", chal.String())
}

// Check reports whether req carries valid credentials for a nonce of ours.
func (c *Challenger) Check(req *gosip.Request) bool {
	h := req.GetHeader("Authorization")
	if h == nil {
		return false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username != c.username || cred.Realm != c.realm || !c.nonceValid(cred.Nonce, time.Now()) {
		return false
	}
	chal := &digest.Challenge{Realm: c.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{
		Method: string(req.Method), URI: cred.URI, Username: c.username, Password: c.password,
		Cnonce: cred.Cnonce, Count: cred.Nc,
	})
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) == 1
}
