package sip

import (
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
)

func newTestInvite() *gosip.Request {
	req := gosip.NewRequest(gosip.INVITE, gosip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: 5060})
	return req
}

// A challenge from our Challenger, answered by Authorize, checks out; a
// wrong password or a forged nonce does not.
func TestDigestRoundTrip(t *testing.T) {
	ch := NewChallenger("uad", "alice", "s3cret")
	res := gosip.NewResponse(401, "Unauthorized")
	res.AppendHeader(ch.Challenge())

	req := newTestInvite()
	if ch.Check(req) {
		t.Fatal("a request without credentials passed")
	}
	if err := Authorize(req, res, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if !ch.Check(req) {
		t.Fatalf("valid credentials refused: %s", req.GetHeader("Authorization").Value())
	}

	bad := newTestInvite()
	Authorize(bad, res, "alice", "wrong")
	if ch.Check(bad) {
		t.Error("a wrong password passed")
	}
	other := NewChallenger("uad", "alice", "s3cret") // another key: our nonce is not its own
	if other.Check(req) {
		t.Error("a nonce signed with another key passed")
	}
}

func TestAuthorizeProxy(t *testing.T) {
	res := gosip.NewResponse(407, "Proxy Authentication Required")
	res.AppendHeader(gosip.NewHeader("Proxy-Authenticate", `Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth"`))
	req := newTestInvite()
	if err := Authorize(req, res, "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	h := req.GetHeader("Proxy-Authorization")
	if h == nil || req.GetHeader("Authorization") != nil {
		t.Fatalf("407 must be answered with Proxy-Authorization")
	}
	if v := h.Value(); !contains(v, "algorithm=SHA-256") || !contains(v, `username="bob"`) {
		t.Errorf("credentials %s", v)
	}
	if err := Authorize(newTestInvite(), gosip.NewResponse(401, "Unauthorized"), "bob", "pw"); err == nil {
		t.Error("a 401 without a challenge must be an error")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
