package tlsrec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// aeadKind names the record protection a suite uses.
type aeadKind uint8

const (
	aesGCM aeadKind = iota + 1
	chacha
)

// suite is what the record layer needs to know about a negotiated cipher suite.
type suite struct {
	kind   aeadKind
	keyLen int
	sha384 bool // the suite's hash: SHA-384 if set, else SHA-256
}

// suites lists every cipher suite this record layer can run: the three TLS 1.3 suites
// and the TLS 1.2 AEAD suites (AES-GCM and ChaCha20-Poly1305; RSA key exchange ones too,
// should a caller enable them).
var suites = map[uint16]suite{
	tls.TLS_AES_128_GCM_SHA256:       {aesGCM, 16, false},
	tls.TLS_AES_256_GCM_SHA384:       {aesGCM, 32, true},
	tls.TLS_CHACHA20_POLY1305_SHA256: {chacha, 32, false},

	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       {aesGCM, 16, false},
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         {aesGCM, 16, false},
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       {aesGCM, 32, true},
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         {aesGCM, 32, true},
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: {chacha, 32, false},
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   {chacha, 32, false},
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               {aesGCM, 16, false},
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               {aesGCM, 32, true},
}

// defaultSuites12 is the TLS 1.2 list Handshake uses when the caller's config has none:
// ECDHE AEAD suites only (forward secrecy, and nothing this layer cannot run).
var defaultSuites12 = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// hashFunc returns the suite's hash constructor.
func (s suite) hashFunc() func() hash.Hash {
	if s.sha384 {
		return sha512.New384
	}
	return sha256.New
}

// hashLen is the suite's hash output length (the TLS 1.3 traffic secret length).
func (s suite) hashLen() int {
	if s.sha384 {
		return 48
	}
	return 32
}

// ivLen12 is the TLS 1.2 implicit IV length: 4 for GCM (RFC 5288), 12 for ChaCha20 (RFC 7905).
func (s suite) ivLen12() int {
	if s.kind == chacha {
		return 12
	}
	return 4
}

// newAEAD builds the suite's AEAD for key.
func (s suite) newAEAD(key []byte) (cipher.AEAD, error) {
	if s.kind == chacha {
		return chacha20poly1305.New(key)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// expandLabel is HKDF-Expand-Label of RFC 8446 §7.1 with an empty context.
func (s suite) expandLabel(secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = append(info, byte(n>>8), byte(n), byte(len(full)))
	info = append(info, full...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(s.hashFunc(), secret, string(info), n)
	if err != nil {
		panic("tlsrec: BUG: HKDF-Expand-Label: " + err.Error())
	}
	return out
}

// prf12 is the TLS 1.2 PRF of RFC 5246 §5 (P_hash with the suite's hash) filling out.
func (s suite) prf12(out, secret []byte, label string, seed ...[]byte) {
	h := hmac.New(s.hashFunc(), secret)
	ls := append([]byte(label), concat(seed...)...)
	a := ls
	for len(out) > 0 {
		h.Reset()
		h.Write(a)
		a = h.Sum(nil)
		h.Reset()
		h.Write(a)
		h.Write(ls)
		out = out[copy(out, h.Sum(nil)):]
	}
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}
