package media

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

const (
	key30  = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" // 30 bytes: AES_CM key and salt
	key28  = "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3Bxcg==" // 28 bytes: AEAD_AES_128_GCM
	key30b = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk" // another 30
)

func TestParseCrypto(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		tag         int
		suite       string
		unusable    bool // read, but uad cannot use it
		malformed   bool // ErrCryptoKey: the offer gets 488
	}{
		{"80", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, 1, "AES_CM_128_HMAC_SHA1_80", false, false},
		{"32", "2 AES_CM_128_HMAC_SHA1_32 inline:" + key30, 2, "AES_CM_128_HMAC_SHA1_32", false, false},
		{"GCM", "3 AEAD_AES_128_GCM inline:" + key28, 3, "AEAD_AES_128_GCM", false, false},
		{"unpadded base64", "1 AEAD_AES_128_GCM inline:" + strings.TrimRight(key28, "="), 1, "AEAD_AES_128_GCM", false, false},
		{"long lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31", 1, "AES_CM_128_HMAC_SHA1_80", false, false},
		{"decimal lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|4294967296", 1, "AES_CM_128_HMAC_SHA1_80", false, false},
		{"unknown suite", "1 AES_256_CM_HMAC_SHA1_80 inline:" + key30, 1, "AES_256_CM_HMAC_SHA1_80", true, false},
		{"UNENCRYPTED_SRTP", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTP", 1, "AES_CM_128_HMAC_SHA1_80", true, false},
		{"KDR", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " KDR=10", 1, "AES_CM_128_HMAC_SHA1_80", true, false},
		{"WSH", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " WSH=128", 1, "AES_CM_128_HMAC_SHA1_80", true, false},
		{"FEC_ORDER", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " FEC_ORDER=FEC_SRTP", 1, "AES_CM_128_HMAC_SHA1_80", true, false},
		{"unknown parameter", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " X-FOO=1", 1, "AES_CM_128_HMAC_SHA1_80", true, false},
		{"bad base64", "1 AES_CM_128_HMAC_SHA1_80 inline:***", 1, "", false, true},
		{"short key", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key28, 1, "", false, true},
		{"long key for GCM", "1 AEAD_AES_128_GCM inline:" + key30, 1, "", false, true},
		{"short lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20", 1, "", false, true},
		{"bad lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|forever", 1, "", false, true},
		{"MKI", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|1:4", 1, "", false, true},
		{"two keys", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30b, 1, "", false, true},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example/1", 1, "", false, true},
		{"no key", "1 AES_CM_128_HMAC_SHA1_80", 0, "", false, true},
		{"bad tag", "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, 0, "", false, true},
		{"empty", "", 0, "", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCrypto(tt.value)
			if tt.malformed {
				if !errors.Is(err, ErrCryptoKey) {
					t.Fatalf("err = %v, want ErrCryptoKey", err)
				}
				if strings.Contains(err.Error(), key30) || strings.Contains(err.Error(), key28) {
					t.Errorf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Tag != tt.tag || c.Suite != tt.suite || (c.Unusable != "") != tt.unusable {
				t.Fatalf("got tag %d suite %s unusable %q", c.Tag, c.Suite, c.Unusable)
			}
			if !tt.unusable && len(c.Key) == 0 {
				t.Fatal("no key")
			}
			if !tt.unusable {
				back, err := ParseCrypto(c.Value())
				if err != nil || !back.Same(c) {
					t.Fatalf("Value() %q does not read back: %v", c.Value(), err)
				}
				if printed := fmt.Sprint(c, []Crypto{c}, &SRTPKeys{Suite: c.Suite, Local: c.Key}); strings.Contains(printed, base64.StdEncoding.EncodeToString(c.Key)) {
					t.Fatalf("printing a line shows its key: %s", printed)
				}
			}
		})
	}
}

func FuzzParseCrypto(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30,
		"2 AEAD_AES_128_GCM inline:" + key28 + "|2^31",
		"3 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20|1:4 KDR=1",
		"1 X inline:a;inline:b", "", "999999999 A B C D E",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		c, err := ParseCrypto(value)
		if err != nil {
			if !errors.Is(err, ErrCryptoKey) {
				t.Fatalf("error %v is not ErrCryptoKey", err)
			}
			return
		}
		if c.usable() {
			suite, ok := suiteByName(c.Suite)
			if !ok || len(c.Key) != suite.KeyLen+suite.SaltLen {
				t.Fatalf("usable line with suite %q and a %d-byte key", c.Suite, len(c.Key))
			}
			if _, err := newContext(c.Key, c.Suite); err != nil {
				t.Fatalf("a usable line's key makes no context: %v", err)
			}
		}
	})
}

func cryptoLine(tag int, suite, b64 string) Crypto {
	key, _ := base64.StdEncoding.DecodeString(b64)
	return Crypto{Tag: tag, Suite: suite, Key: key}
}

// The one line of an answer: the first usable line offered, our key kept
// while the peer keeps its line, a new one when the peer's key changes.
func TestAnswerCrypto(t *testing.T) {
	peerA := cryptoLine(1, "AES_CM_128_HMAC_SHA1_80", key30)
	peerB := cryptoLine(1, "AES_CM_128_HMAC_SHA1_80", key30b)
	gcm := cryptoLine(5, "AEAD_AES_128_GCM", key28)
	unknown := Crypto{Tag: 2, Suite: "F8_128_HMAC_SHA1_80", Unusable: "suite"}
	ours := NewCrypto(1, Suites[0])

	if _, ok := answerCrypto([]Crypto{unknown}, nil, nil); ok {
		t.Fatal("answered an offer of no usable line")
	}
	got, ok := answerCrypto([]Crypto{unknown, gcm, peerA}, nil, nil)
	if !ok || got.Tag != 5 || got.Suite != "AEAD_AES_128_GCM" || len(got.Key) != 28 || bytes.Equal(got.Key, gcm.Key) {
		t.Fatalf("first answer %+v", got)
	}
	got, _ = answerCrypto([]Crypto{peerA}, []Crypto{ours}, []Crypto{peerA})
	if !got.Same(ours) {
		t.Fatal("the peer kept its key but ours changed")
	}
	got, _ = answerCrypto([]Crypto{peerB}, []Crypto{ours}, []Crypto{peerA})
	if got.Tag != 1 || bytes.Equal(got.Key, ours.Key) {
		t.Fatal("the peer re-keyed but our key stayed")
	}
	// After our own offer of several lines, the peer's re-offer of the
	// line it answered with keeps the key of ours under that tag.
	offered := OfferCryptos()
	answered := Crypto{Tag: offered[1].Tag, Suite: offered[1].Suite, Key: peerA.Key}
	got, _ = answerCrypto([]Crypto{answered}, offered, []Crypto{answered})
	if !got.Same(offered[1]) {
		t.Fatalf("re-offer of the answered line: %+v, want our line %+v", got, offered[1])
	}
}

func TestOfferCryptos(t *testing.T) {
	a, b := OfferCryptos(), OfferCryptos()
	if len(a) != len(Suites) {
		t.Fatalf("%d lines", len(a))
	}
	seen := map[string]bool{}
	for i, c := range a {
		if c.Tag != i+1 || c.Suite != Suites[i].Name || len(c.Key) != Suites[i].KeyLen+Suites[i].SaltLen {
			t.Errorf("line %d: %+v", i, c)
		}
		if seen[string(c.Key)] || bytes.Equal(c.Key, b[i].Key) {
			t.Errorf("line %d: a key is repeated", i)
		}
		seen[string(c.Key)] = true
	}
}

func TestNegotiateSRTP(t *testing.T) {
	offered := OfferCryptos()
	peer := cryptoLine(2, "AES_CM_128_HMAC_SHA1_32", key30)
	local := &LocalStream{Proto: "RTP/SAVP", Crypto: offered}
	for _, tt := range []struct {
		name   string
		local  *LocalStream
		remote []Crypto
		suite  string
		err    bool
	}{
		{"plain", &LocalStream{Proto: "RTP/AVP"}, nil, "", false},
		{"tag 2", local, []Crypto{peer}, "AES_CM_128_HMAC_SHA1_32", false},
		{"tag of another suite", local, []Crypto{{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_32", Key: peer.Key}}, "", true},
		{"unknown tag", local, []Crypto{{Tag: 9, Suite: "AES_CM_128_HMAC_SHA1_80", Key: peer.Key}}, "", true},
		{"no line", local, nil, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := NegotiateSRTP(tt.local, &RemoteStream{Crypto: tt.remote})
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if tt.suite == "" {
				if keys != nil {
					t.Fatalf("keys %+v", keys)
				}
				return
			}
			if keys.Suite != tt.suite || !bytes.Equal(keys.Local, offered[1].Key) || !bytes.Equal(keys.Remote, peer.Key) {
				t.Fatalf("keys %+v", keys)
			}
		})
	}
}

// Our SDP writes the lines with their keys; what a peer reads back is what
// uad holds.
func TestLocalSessionWritesCrypto(t *testing.T) {
	l := NewLocalSession(1, netip.MustParseAddr("127.0.0.1"))
	lines := OfferCryptos()
	l.Streams = []LocalStream{{Kind: "audio", Proto: "RTP/SAVP", Port: 4000, Formats: AudioFormats([]Law{PCMU}, false), Direction: SendRecv, Crypto: lines}}
	rs, err := ParseRemote(l.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	got := rs.Streams[0]
	if got.Proto != "RTP/SAVP" || len(got.Crypto) != len(lines) || got.CryptoErr != nil {
		t.Fatalf("read back %s with %d lines (%v)", got.Proto, len(got.Crypto), got.CryptoErr)
	}
	for i := range lines {
		if !got.Crypto[i].Same(lines[i]) {
			t.Errorf("line %d: %+v, want %+v", i, got.Crypto[i], lines[i])
		}
	}
}
