package sip

import (
	"bytes"
	"regexp"
)

var inlineKey = regexp.MustCompile(`inline:[^|\s;]+`)

// RedactKeys hides every SDES-SRTP inline key (RFC 4568 a=crypto) in a SIP
// message or SDP, for logs and traces: keys leave uad only in signalling.
func RedactKeys(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("inline:")) {
		return msg
	}
	return inlineKey.ReplaceAll(msg, []byte("inline:<redacted>"))
}
