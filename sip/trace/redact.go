package trace

import "bytes"

// Redact returns a copy of a message with its secrets masked: the
// credentials of Authorization and Proxy-Authorization (the digest response,
// or all but the scheme) and the keys of SDP a=crypto inline parameters.
// Each secret byte becomes '*', so lengths and Content-Length stay right.
func Redact(raw []byte) []byte {
	out := append([]byte(nil), raw...)
	headers := true
	for start := 0; start < len(out); {
		end := bytes.IndexByte(out[start:], '\n')
		if end < 0 {
			end = len(out)
		} else {
			end += start
		}
		line := out[start:end]
		trimmed := bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case headers && len(trimmed) == 0:
			headers = false
		case headers:
			maskCredentials(trimmed)
			// A TCP read can begin inside a body: no header starts with a=.
			maskCryptoKeys(trimmed)
		default:
			maskCryptoKeys(trimmed)
		}
		start = end + 1
	}
	return out
}

// maskCredentials masks the secret of an Authorization or
// Proxy-Authorization header line in place.
func maskCredentials(line []byte) {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return
	}
	name := bytes.TrimSpace(line[:colon])
	if !bytes.EqualFold(name, []byte("authorization")) && !bytes.EqualFold(name, []byte("proxy-authorization")) {
		return
	}
	value := line[colon+1:]
	lower := bytes.ToLower(value)
	if i := bytes.Index(lower, []byte("response=")); i >= 0 && bytes.Contains(lower, []byte("digest")) {
		v := value[i+len("response="):]
		v = bytes.TrimPrefix(v, []byte(`"`))
		n := bytes.IndexAny(v, "\",")
		if n < 0 {
			n = len(v)
		}
		mask(v[:n])
		return
	}
	// Another scheme: keep its name, mask the credentials.
	v := bytes.TrimLeft(value, " \t")
	if sp := bytes.IndexAny(v, " \t"); sp >= 0 {
		mask(v[sp+1:])
	}
}

// maskCryptoKeys masks the key of each inline: of an a=crypto line in place
// (RFC 4568 §9.1: inline:KEY_SALT[|LIFETIME][|MKI:LENGTH]).
func maskCryptoKeys(line []byte) {
	if !bytes.HasPrefix(line, []byte("a=crypto:")) {
		return
	}
	for rest := line; ; {
		i := bytes.Index(rest, []byte("inline:"))
		if i < 0 {
			return
		}
		rest = rest[i+len("inline:"):]
		n := bytes.IndexAny(rest, "| ;")
		if n < 0 {
			n = len(rest)
		}
		mask(rest[:n])
		rest = rest[n:]
	}
}

func mask(b []byte) {
	for i := range b {
		b[i] = '*'
	}
}
