package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// jwtTestNow is the injected clock of every JWT test: no test reads the real time
// except the MintHS256 round trip.
var jwtTestNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var jwtTestSecret = []byte("test-secret-0123456789-abcdefghij") // 33 bytes

// jwtTestRSAKey is generated once per test binary: a 2048-bit key takes tens of ms.
var jwtTestRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// jwtClaims returns the claims of a valid token for user "u1", issued now and expiring in
// an hour, with overrides applied; a nil override deletes the claim.
func jwtClaims(overrides map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "u1",
		"iat": jwtTestNow.Unix(),
		"exp": jwtTestNow.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func signJWT(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// rawJWT builds a token from a literal header, claims and signature, for tokens the
// library refuses to produce.
func rawJWT(t *testing.T, header string, c jwt.MapClaims, sig string) string {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(body) + "." + sig
}

func newTestJWT(t *testing.T, cfg Config) *Authenticator {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return jwtTestNow }
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func rsaPublicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestJWTAuthenticate(t *testing.T) {
	rsaKey := jwtTestRSAKey()
	otherRSAKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hs := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret})
	rs := newTestJWT(t, Config{Algorithm: "RS256", RSAPublicKey: &rsaKey.PublicKey})
	strict := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret,
		Issuer: "auth.example", Audience: "tether", RequireExp: true})
	leeway5 := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, Leeway: 5 * time.Second})
	noDevice := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, DeviceClaim: "-", PlatformClaim: "-"})
	renamed := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, DeviceClaim: "device", PlatformClaim: "os"})

	hsTok := func(over map[string]any) string {
		return signJWT(t, jwt.SigningMethodHS256, jwtTestSecret, jwtClaims(over))
	}
	strictTok := func(over map[string]any) string {
		c := map[string]any{"iss": "auth.example", "aud": "tether"}
		for k, v := range over {
			c[k] = v
		}
		return hsTok(c)
	}
	at := func(d time.Duration) int64 { return jwtTestNow.Add(d).Unix() }
	hourLater := jwtTestNow.Add(time.Hour)

	tests := []struct {
		name     string
		a        *Authenticator
		token    string
		device   string             // HELLO device id
		want     server.Identity    // checked when wantCode is 0
		wantCode protocol.CloseCode // 0: success
	}{
		// The plain HS256 case: sub becomes the user id, exp the expiry.
		{name: "HS256 valid", a: hs, token: hsTok(nil),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// The plain RS256 case.
		{name: "RS256 valid", a: rs, token: signJWT(t, jwt.SigningMethodRS256, rsaKey, jwtClaims(nil)),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// A token without exp is accepted unless RequireExp; ExpiresAt stays zero.
		{name: "no exp allowed by default", a: hs, token: hsTok(map[string]any{"exp": nil}),
			want: server.Identity{UserID: "u1"}},

		// Signature and algorithm.
		// Signed with another secret.
		{name: "wrong secret", a: hs,
			token:    signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefg"), jwtClaims(nil)),
			wantCode: protocol.CloseInvalidToken},
		// Signed with another RSA key.
		{name: "RS256 wrong key", a: rs, token: signJWT(t, jwt.SigningMethodRS256, otherRSAKey, jwtClaims(nil)),
			wantCode: protocol.CloseInvalidToken},
		// alg "none" with an empty signature: the classic bypass.
		{name: "alg none", a: hs, token: rawJWT(t, `{"alg":"none","typ":"JWT"}`, jwtClaims(nil), ""),
			wantCode: protocol.CloseInvalidToken},
		// alg "none" against RS256 too.
		{name: "alg none RS256", a: rs, token: rawJWT(t, `{"alg":"none","typ":"JWT"}`, jwtClaims(nil), ""),
			wantCode: protocol.CloseInvalidToken},
		// Algorithm confusion: HS256 keyed with the RS256 public key's PEM, which an
		// attacker knows; a verifier that let the token pick the algorithm would accept it.
		{name: "alg confusion HS256 to RS256", a: rs,
			token:    signJWT(t, jwt.SigningMethodHS256, rsaPublicPEM(t, &rsaKey.PublicKey), jwtClaims(nil)),
			wantCode: protocol.CloseInvalidToken},
		// An RS256 token offered to an HS256 authenticator.
		{name: "RS256 token to HS256", a: hs, token: signJWT(t, jwt.SigningMethodRS256, rsaKey, jwtClaims(nil)),
			wantCode: protocol.CloseInvalidToken},
		// Pinning is by exact algorithm, not family: a correct HS384 signature is refused.
		{name: "HS384 to HS256", a: hs, token: signJWT(t, jwt.SigningMethodHS384, jwtTestSecret, jwtClaims(nil)),
			wantCode: protocol.CloseInvalidToken},
		// Nor PS256 with the right RSA key.
		{name: "PS256 to RS256", a: rs, token: signJWT(t, jwt.SigningMethodPS256, rsaKey, jwtClaims(nil)),
			wantCode: protocol.CloseInvalidToken},
		// A valid token with its last signature character changed.
		{name: "tampered signature", a: hs, token: func() string {
			s := hsTok(nil)
			last := byte('A')
			if s[len(s)-2] == 'A' {
				last = 'B'
			}
			return s[:len(s)-2] + string(last) + s[len(s)-1:]
		}(), wantCode: protocol.CloseInvalidToken},
		// A valid signature over different claims: sub swapped after signing.
		{name: "tampered claims", a: hs, token: func() string {
			parts := strings.Split(hsTok(nil), ".")
			forged := strings.Split(rawJWT(t, `{"alg":"HS256","typ":"JWT"}`, jwtClaims(map[string]any{"sub": "admin"}), ""), ".")
			return parts[0] + "." + forged[1] + "." + parts[2]
		}(), wantCode: protocol.CloseInvalidToken},

		// Time claims, default leeway 30s.
		// exp 31s ago: beyond the leeway.
		{name: "expired", a: hs, token: hsTok(map[string]any{"exp": at(-31 * time.Second)}),
			wantCode: protocol.CloseTokenExpired},
		// exp exactly leeway ago: valid only while now < exp+leeway.
		{name: "expired at leeway boundary", a: hs, token: hsTok(map[string]any{"exp": at(-30 * time.Second)}),
			wantCode: protocol.CloseTokenExpired},
		// exp 29s ago: within the leeway, accepted.
		{name: "exp within leeway", a: hs, token: hsTok(map[string]any{"exp": at(-29 * time.Second)}),
			want: server.Identity{UserID: "u1", ExpiresAt: jwtTestNow.Add(-29 * time.Second)}},
		// A configured leeway of 5s replaces the default: 6s ago is expired.
		{name: "custom leeway expired", a: leeway5, token: hsTok(map[string]any{"exp": at(-6 * time.Second)}),
			wantCode: protocol.CloseTokenExpired},
		// nbf 31s ahead: not valid yet.
		{name: "nbf in future", a: hs, token: hsTok(map[string]any{"nbf": at(31 * time.Second)}),
			wantCode: protocol.CloseInvalidToken},
		// nbf 29s ahead: within the leeway.
		{name: "nbf within leeway", a: hs, token: hsTok(map[string]any{"nbf": at(29 * time.Second)}),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// iat 31s ahead: issued in the future.
		{name: "iat in future", a: hs, token: hsTok(map[string]any{"iat": at(31 * time.Second)}),
			wantCode: protocol.CloseInvalidToken},
		// exp of the wrong type.
		{name: "exp not a number", a: hs, token: hsTok(map[string]any{"exp": "tomorrow"}),
			wantCode: protocol.CloseInvalidToken},

		// Subject.
		// No sub at all.
		{name: "missing sub", a: hs, token: hsTok(map[string]any{"sub": nil}),
			wantCode: protocol.CloseInvalidToken},
		// sub present but empty.
		{name: "empty sub", a: hs, token: hsTok(map[string]any{"sub": ""}),
			wantCode: protocol.CloseInvalidToken},
		// sub of the wrong type.
		{name: "numeric sub", a: hs, token: hsTok(map[string]any{"sub": 42}),
			wantCode: protocol.CloseInvalidToken},
		// sub at the 256-byte limit.
		{name: "sub 256 bytes", a: hs, token: hsTok(map[string]any{"sub": strings.Repeat("u", 256)}),
			want: server.Identity{UserID: strings.Repeat("u", 256), ExpiresAt: hourLater}},
		// sub one byte over.
		{name: "sub 257 bytes", a: hs, token: hsTok(map[string]any{"sub": strings.Repeat("u", 257)}),
			wantCode: protocol.CloseInvalidToken},

		// Issuer, audience and RequireExp.
		// All present and right.
		{name: "strict valid", a: strict, token: strictTok(nil),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// aud as an array containing the expected audience.
		{name: "aud array", a: strict, token: strictTok(map[string]any{"aud": []string{"other", "tether"}}),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// Another issuer.
		{name: "wrong iss", a: strict, token: strictTok(map[string]any{"iss": "evil.example"}),
			wantCode: protocol.CloseInvalidToken},
		// No iss when one is configured.
		{name: "missing iss", a: strict, token: strictTok(map[string]any{"iss": nil}),
			wantCode: protocol.CloseInvalidToken},
		// Another audience.
		{name: "wrong aud", a: strict, token: strictTok(map[string]any{"aud": []string{"other"}}),
			wantCode: protocol.CloseInvalidToken},
		// No aud when one is configured.
		{name: "missing aud", a: strict, token: strictTok(map[string]any{"aud": nil}),
			wantCode: protocol.CloseInvalidToken},
		// No exp with RequireExp.
		{name: "RequireExp without exp", a: strict, token: strictTok(map[string]any{"exp": nil}),
			wantCode: protocol.CloseInvalidToken},
		// Expired and for another audience: a fresh token would not help, so not TokenExpired.
		{name: "expired and wrong aud", a: strict,
			token:    strictTok(map[string]any{"aud": "other", "exp": at(-time.Hour)}),
			wantCode: protocol.CloseInvalidToken},
		// Expired with everything else right is TokenExpired even with the extra checks on.
		{name: "strict expired", a: strict, token: strictTok(map[string]any{"exp": at(-time.Hour)}),
			wantCode: protocol.CloseTokenExpired},

		// Device and platform claims.
		// Device claim equal to the HELLO's.
		{name: "device match", a: hs, device: "d1", token: hsTok(map[string]any{"did": "d1", "plat": "ios"}),
			want: server.Identity{UserID: "u1", DeviceID: "d1", Platform: "ios", ExpiresAt: hourLater}},
		// Device claim and no HELLO device id: the claim is used.
		{name: "device from token", a: hs, token: hsTok(map[string]any{"did": "d1"}),
			want: server.Identity{UserID: "u1", DeviceID: "d1", ExpiresAt: hourLater}},
		// No device claim: any HELLO device id is fine, Identity leaves it to the HELLO.
		{name: "no device claim", a: hs, device: "d9", token: hsTok(nil),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// Token bound to another device.
		{name: "device mismatch", a: hs, device: "d2", token: hsTok(map[string]any{"did": "d1"}),
			wantCode: protocol.CloseForbidden},
		// Device claim of the wrong type.
		{name: "device claim not a string", a: hs, device: "d1", token: hsTok(map[string]any{"did": 1}),
			wantCode: protocol.CloseInvalidToken},
		// Oversize device claim.
		{name: "device claim too long", a: hs, token: hsTok(map[string]any{"did": strings.Repeat("d", 257)}),
			wantCode: protocol.CloseInvalidToken},
		// DeviceClaim "-": the claim is ignored, so no mismatch.
		{name: "device claim disabled", a: noDevice, device: "d2", token: hsTok(map[string]any{"did": "d1", "plat": "ios"}),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// Renamed claims are read; the default names are then ignored.
		{name: "renamed claims", a: renamed, device: "d1",
			token: hsTok(map[string]any{"device": "d1", "os": "web", "did": "zz", "plat": "zz"}),
			want:  server.Identity{UserID: "u1", DeviceID: "d1", Platform: "web", ExpiresAt: hourLater}},
		// Renamed device claim mismatching.
		{name: "renamed device mismatch", a: renamed, device: "d2", token: hsTok(map[string]any{"device": "d1"}),
			wantCode: protocol.CloseForbidden},
		// Platform claim of the wrong type.
		{name: "platform claim not a string", a: hs, token: hsTok(map[string]any{"plat": []string{"ios"}}),
			wantCode: protocol.CloseInvalidToken},

		// Size and shape.
		// A correctly signed token over MaxTokenLen: refused before parsing.
		{name: "oversize token", a: hs, token: hsTok(map[string]any{"pad": strings.Repeat("x", MaxTokenLen)}),
			wantCode: protocol.CloseInvalidToken},
		// A large token under the cap is still accepted.
		{name: "large token under cap", a: hs, token: hsTok(map[string]any{"pad": strings.Repeat("x", MaxTokenLen/2)}),
			want: server.Identity{UserID: "u1", ExpiresAt: hourLater}},
		// No token.
		{name: "empty", a: hs, token: "", wantCode: protocol.CloseInvalidToken},
		// Not a JWT.
		{name: "garbage", a: hs, token: "not a jwt", wantCode: protocol.CloseInvalidToken},
		// Three segments of nonsense.
		{name: "garbage segments", a: hs, token: "a.b.c", wantCode: protocol.CloseInvalidToken},
		// Only dots.
		{name: "dots", a: hs, token: "..", wantCode: protocol.CloseInvalidToken},
		// Four segments.
		{name: "four segments", a: hs, token: hsTok(nil) + ".x", wantCode: protocol.CloseInvalidToken},
		// A JWE-like five segments.
		{name: "five segments", a: hs, token: "a.b.c.d.e", wantCode: protocol.CloseInvalidToken},
		// Valid base64 whose claims are not JSON.
		{name: "claims not JSON", a: hs,
			token:    base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte("{nope")) + ".sig",
			wantCode: protocol.CloseInvalidToken},
		// A header without alg.
		{name: "no alg", a: hs, token: rawJWT(t, `{"typ":"JWT"}`, jwtClaims(nil), "c2ln"),
			wantCode: protocol.CloseInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.Authenticate(context.Background(), server.AuthRequest{Token: tt.token, DeviceID: tt.device})
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if !got.ExpiresAt.Equal(tt.want.ExpiresAt) {
					t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, tt.want.ExpiresAt)
				}
				got.ExpiresAt, tt.want.ExpiresAt = time.Time{}, time.Time{}
				if got != tt.want {
					t.Errorf("Identity = %+v, want %+v", got, tt.want)
				}
				return
			}
			var ae *server.AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *server.AuthError %v", err, err, tt.wantCode)
			}
			if ae.Code != tt.wantCode {
				t.Errorf("Code = %v, want %v (err: %v)", ae.Code, tt.wantCode, err)
			}
			if ae.Reason == "" || ae.Err == nil {
				t.Errorf("Reason %q, Err %v: want both set", ae.Reason, ae.Err)
			}
			if got != (server.Identity{}) {
				t.Errorf("Identity = %+v on failure, want zero", got)
			}
			// Nothing secret reaches the client, nor the logs.
			if strings.Contains(ae.Reason, string(jwtTestSecret)) || strings.Contains(err.Error(), string(jwtTestSecret)) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestJWTAuthenticateReasons(t *testing.T) {
	// The Reason sent in AUTH_FAIL is a fixed phrase per failure; pin a few so a mapping
	// mistake (e.g. everything "invalid token") shows.
	a := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, Issuer: "auth.example"})
	tok := func(over map[string]any) string {
		c := map[string]any{"iss": "auth.example"}
		for k, v := range over {
			c[k] = v
		}
		return signJWT(t, jwt.SigningMethodHS256, jwtTestSecret, jwtClaims(c))
	}
	f := func(token, device, wantReason string) {
		t.Helper()
		_, err := a.Authenticate(context.Background(), server.AuthRequest{Token: token, DeviceID: device})
		var ae *server.AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v, want *server.AuthError", err)
		}
		if ae.Reason != wantReason {
			t.Errorf("Reason = %q, want %q (err: %v)", ae.Reason, wantReason, err)
		}
	}
	f(tok(map[string]any{"exp": jwtTestNow.Add(-time.Hour).Unix()}), "", "token expired")
	f(signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefg"), jwtClaims(nil)), "", "invalid signature")
	f(rawJWT(t, `{"alg":"none"}`, jwtClaims(nil), ""), "", "invalid signature")
	f("x.y", "", "malformed token")
	f(tok(map[string]any{"nbf": jwtTestNow.Add(time.Hour).Unix()}), "", "token not valid yet")
	f(tok(map[string]any{"iss": "evil"}), "", "invalid issuer")
	f(tok(map[string]any{"iss": nil}), "", "missing required claim")
	f(tok(map[string]any{"sub": nil}), "", "missing subject")
	f(tok(map[string]any{"did": "d1"}), "d2", "token not valid for this device")
	f(strings.Repeat("a", MaxTokenLen+1), "", "token too long")
}

func TestJWTAuthenticateCancelled(t *testing.T) {
	// A done context wins over a valid token: the caller maps it to CloseAuthTimeout.
	a := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Authenticate(ctx, server.AuthRequest{Token: signJWT(t, jwt.SigningMethodHS256, jwtTestSecret, jwtClaims(nil))})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestJWTSecretCopied(t *testing.T) {
	// The caller reusing its secret buffer must not change what the authenticator verifies.
	secret := append([]byte(nil), jwtTestSecret...)
	a := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: secret})
	for i := range secret {
		secret[i] = 0
	}
	tok := signJWT(t, jwt.SigningMethodHS256, jwtTestSecret, jwtClaims(nil))
	if _, err := a.Authenticate(context.Background(), server.AuthRequest{Token: tok}); err != nil {
		t.Fatalf("Authenticate after caller zeroed its secret: %v", err)
	}
}

func TestJWTConcurrent(t *testing.T) {
	// Run under -race: one authenticator shared by many goroutines, valid and invalid tokens.
	a := newTestJWT(t, Config{Algorithm: "HS256", HMACSecret: jwtTestSecret})
	good := signJWT(t, jwt.SigningMethodHS256, jwtTestSecret, jwtClaims(nil))
	bad := signJWT(t, jwt.SigningMethodHS256, jwtTestSecret, jwtClaims(map[string]any{"exp": jwtTestNow.Add(-time.Hour).Unix()}))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				_, err := a.Authenticate(context.Background(), server.AuthRequest{Token: good})
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, call %d, good token: %w", g, i, err)
					return
				}
				if _, err := a.Authenticate(context.Background(), server.AuthRequest{Token: bad}); err == nil {
					errs <- fmt.Errorf("goroutine %d, call %d: expired token accepted", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestJWTConfigErrors(t *testing.T) {
	smallKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := &jwtTestRSAKey().PublicKey
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		// The minimal valid configurations.
		{"HS256 ok", Config{Algorithm: "HS256", HMACSecret: jwtTestSecret}, ""},
		{"RS256 ok", Config{Algorithm: "RS256", RSAPublicKey: rsaPub}, ""},
		// A secret of exactly 32 bytes is enough.
		{"HS256 32-byte secret", Config{Algorithm: "HS256", HMACSecret: make([]byte, 32)}, ""},
		// No algorithm.
		{"no algorithm", Config{HMACSecret: jwtTestSecret}, "Algorithm is required"},
		// An algorithm this authenticator does not offer.
		{"unknown algorithm", Config{Algorithm: "HS512", HMACSecret: jwtTestSecret}, `unsupported Algorithm "HS512"`},
		// "none" can never be configured.
		{"algorithm none", Config{Algorithm: "none"}, `unsupported Algorithm "none"`},
		// Names are case-sensitive, as in the JWT header.
		{"lower-case algorithm", Config{Algorithm: "hs256", HMACSecret: jwtTestSecret}, "unsupported Algorithm"},
		// HS256 without a secret.
		{"HS256 no secret", Config{Algorithm: "HS256"}, "HS256 needs HMACSecret"},
		// A 31-byte secret.
		{"HS256 short secret", Config{Algorithm: "HS256", HMACSecret: make([]byte, 31)},
			"jwtauth: HS256 secret must be at least 32 bytes, got 31"},
		// Both keys: ambiguous, so refused.
		{"HS256 with RSA key", Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, RSAPublicKey: rsaPub}, "RSAPublicKey is set"},
		// RS256 without a key.
		{"RS256 no key", Config{Algorithm: "RS256"}, "RS256 needs RSAPublicKey"},
		// RS256 with an empty key struct.
		{"RS256 empty key", Config{Algorithm: "RS256", RSAPublicKey: &rsa.PublicKey{}}, "RS256 needs RSAPublicKey"},
		// RS256 with a 1024-bit key.
		{"RS256 small key", Config{Algorithm: "RS256", RSAPublicKey: &smallKey.PublicKey}, "at least 2048 bits, got 1024"},
		// RS256 with a secret as well.
		{"RS256 with secret", Config{Algorithm: "RS256", RSAPublicKey: rsaPub, HMACSecret: jwtTestSecret}, "HMACSecret is set"},
		// Negative leeway.
		{"negative leeway", Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, Leeway: -time.Second}, "Leeway must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || a == nil {
					t.Fatalf("New = %v, %v; want an authenticator", a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if a != nil {
				t.Errorf("authenticator returned with error")
			}
			if !strings.HasPrefix(err.Error(), "jwtauth: ") {
				t.Errorf("err = %q, want prefix %q", err, "jwtauth: ")
			}
		})
	}
}

func TestJWTConfigDefaults(t *testing.T) {
	// The zero fields get the documented defaults; set fields are kept.
	cfg := Config{Algorithm: "HS256", HMACSecret: jwtTestSecret}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.Leeway != 30*time.Second || cfg.DeviceClaim != "did" || cfg.PlatformClaim != "plat" || cfg.Now == nil {
		t.Errorf("defaults = leeway %v, device %q, platform %q, now set %v", cfg.Leeway, cfg.DeviceClaim, cfg.PlatformClaim, cfg.Now != nil)
	}
	cfg = Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, Leeway: time.Second, DeviceClaim: "d", PlatformClaim: "p"}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.Leeway != time.Second || cfg.DeviceClaim != "d" || cfg.PlatformClaim != "p" {
		t.Errorf("set fields changed: leeway %v, device %q, platform %q", cfg.Leeway, cfg.DeviceClaim, cfg.PlatformClaim)
	}
}

func TestJWTLoadRSAPublicKeyPEM(t *testing.T) {
	key := jwtTestRSAKey()
	pkix := rsaPublicPEM(t, &key.PublicKey)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
	privPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := rsaPublicPEM(t, &ecKey.PublicKey)

	tests := []struct {
		name    string
		in      []byte
		wantErr string // substring; "" means the test key must come back
	}{
		// openssl rsa -pubout form.
		{"PKIX", pkix, ""},
		// PKCS #1 form.
		{"PKCS1", pkcs1, ""},
		// Text around the block is ignored, as pem.Decode does.
		{"PKIX with preamble", append([]byte("issuer key\n"), pkix...), ""},
		// Not PEM.
		{"garbage", []byte("not a key"), "no PEM block"},
		// Nothing.
		{"empty", nil, "no PEM block"},
		// A private key: refused, the gateway should not hold it.
		{"private key", privPKCS1, "needs only the public key"},
		// A PKIX key that is not RSA.
		{"EC key", ecPEM, "not RSA"},
		// Right type, corrupt body.
		{"corrupt PKIX", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "cannot parse PKIX"},
		// Right type, corrupt body.
		{"corrupt PKCS1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "cannot parse PKCS #1"},
		// A certificate.
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `"CERTIFICATE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadRSAPublicKeyPEM(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadRSAPublicKeyPEM: %v", err)
				}
				if !got.Equal(&key.PublicKey) {
					t.Fatal("LoadRSAPublicKeyPEM returned another key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}

	// The loaded key verifies tokens end to end.
	pub, err := LoadRSAPublicKeyPEM(pkix)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestJWT(t, Config{Algorithm: "RS256", RSAPublicKey: pub})
	id, err := a.Authenticate(context.Background(), server.AuthRequest{Token: signJWT(t, jwt.SigningMethodRS256, key, jwtClaims(nil))})
	if err != nil || id.UserID != "u1" {
		t.Fatalf("Authenticate with loaded key = %+v, %v", id, err)
	}
}

func TestJWTMintHS256(t *testing.T) {
	// MintHS256 stamps iat and exp from the real clock, so this test uses the real clock
	// for the authenticator too; nothing waits, an hour's ttl leaves ample margin.
	a, err := New(Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, RequireExp: true})
	if err != nil {
		t.Fatal(err)
	}
	auth := func(tok, device string) (server.Identity, error) {
		return a.Authenticate(context.Background(), server.AuthRequest{Token: tok, DeviceID: device})
	}

	// Round trip with extra claims; extra cannot override sub.
	before := time.Now()
	tok, err := MintHS256(jwtTestSecret, "alice", time.Hour, map[string]any{"did": "d1", "plat": "web", "sub": "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth(tok, "d1")
	if err != nil {
		t.Fatalf("Authenticate minted token: %v", err)
	}
	if id.UserID != "alice" || id.DeviceID != "d1" || id.Platform != "web" {
		t.Errorf("Identity = %+v", id)
	}
	if lo, hi := before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second); id.ExpiresAt.Before(lo) || id.ExpiresAt.After(hi) {
		t.Errorf("ExpiresAt = %v, want about an hour from now", id.ExpiresAt)
	}

	// extra may override exp: an expired token.
	tok, err = MintHS256(jwtTestSecret, "alice", time.Hour, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	var ae *server.AuthError
	if _, err := auth(tok, ""); !errors.As(err, &ae) || ae.Code != protocol.CloseTokenExpired {
		t.Errorf("expired minted token: err = %v, want CloseTokenExpired", err)
	}

	// ttl 0: no exp, which RequireExp refuses.
	tok, err = MintHS256(jwtTestSecret, "alice", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth(tok, ""); !errors.As(err, &ae) || ae.Code != protocol.CloseInvalidToken {
		t.Errorf("minted token without exp: err = %v, want CloseInvalidToken", err)
	}

	// Bad arguments.
	if _, err := MintHS256(make([]byte, 31), "alice", time.Hour, nil); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Errorf("short secret: err = %v", err)
	}
	if _, err := MintHS256(jwtTestSecret, "", time.Hour, nil); err == nil {
		t.Error("empty sub: no error")
	}
}

func ExampleAuthenticator() {
	secret := []byte("an example secret of 32+ bytes..")
	a, err := New(Config{Algorithm: "HS256", HMACSecret: secret, RequireExp: true})
	if err != nil {
		panic(err)
	}
	token, err := MintHS256(secret, "alice", time.Hour, map[string]any{"did": "phone-1"})
	if err != nil {
		panic(err)
	}

	id, err := a.Authenticate(context.Background(), server.AuthRequest{Token: token, DeviceID: "phone-1"})
	fmt.Println(id.UserID, id.DeviceID, err)

	_, err = a.Authenticate(context.Background(), server.AuthRequest{Token: token, DeviceID: "tablet-7"})
	var ae *server.AuthError
	if errors.As(err, &ae) {
		fmt.Println(ae.Code, ae.Reason)
	}
	// Output:
	// alice phone-1 <nil>
	// FORBIDDEN token not valid for this device
}
