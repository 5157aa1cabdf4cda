package sip

import (
	"strings"
	"testing"
)

func TestRedactKeys(t *testing.T) {
	msg := "INVITE sip:b@h SIP/2.0\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 4000 RTP/SAVP 0\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31|1:4\r\n" +
		"a=crypto:2 AEAD_AES_128_GCM inline:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3Bxcg== KDR=1\r\n" +
		"a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk;inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
	got := string(RedactKeys([]byte(msg)))
	for _, key := range []string{"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3Bxcg", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"} {
		if strings.Contains(got, key) {
			t.Errorf("key %s... left in:\n%s", key[:8], got)
		}
	}
	for _, kept := range []string{"inline:<redacted>|2^31|1:4\r\n", "inline:<redacted> KDR=1\r\n", "inline:<redacted>;inline:<redacted>\r\n", "m=audio 4000 RTP/SAVP 0\r\n"} {
		if !strings.Contains(got, kept) {
			t.Errorf("redacted message lacks %q:\n%s", kept, got)
		}
	}
	plain := []byte("BYE sip:b@h SIP/2.0\r\n\r\n")
	if out := RedactKeys(plain); &out[0] != &plain[0] {
		t.Error("a message without keys was copied")
	}
}
