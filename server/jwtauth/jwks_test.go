package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The tests in this file run JWKS mode against testIdP, a local JWK Set endpoint whose
// keys, availability and request count the test controls.

var (
	jwtTestECKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	jwtTestEdKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// idpKey is one key the test IdP publishes: its kid, its "alg" ("" to omit it) and the
// public key.
type idpKey struct {
	kid, alg string
	pub      any
}

// testIdP serves a JWK Set at /jwks.json and counts the requests for it.
type testIdP struct {
	srv      *httptest.Server
	requests atomic.Int64
	down     atomic.Bool                   // answer 503
	hold     atomic.Pointer[chan struct{}] // when set, answer once it is closed
	mu       sync.Mutex
	body     []byte
}

// The standard keys: kid "rsa" (RS256), "ec" (ES256) and "ed" (EdDSA).
func stdKeys() []idpKey {
	return []idpKey{
		{"rsa", "RS256", &jwtTestRSAKey().PublicKey},
		{"ec", "ES256", &jwtTestECKey().PublicKey},
		{"ed", "EdDSA", jwtTestEdKey().Public()},
	}
}

func newTestIdP(t *testing.T, keys []idpKey) *testIdP {
	t.Helper()
	idp := &testIdP{}
	idp.publish(t, keys)
	idp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		idp.requests.Add(1)
		if ch := idp.hold.Load(); ch != nil {
			<-*ch
		}
		if idp.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		idp.mu.Lock()
		body := idp.body
		idp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *testIdP) url() string { return idp.srv.URL + "/jwks.json" }

// publish replaces the set the IdP serves.
func (idp *testIdP) publish(t *testing.T, keys []idpKey) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.UseSig,
		}})
		if err != nil {
			t.Fatalf("JWK %s: %v", k.kid, err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	idp.mu.Lock()
	idp.body = body
	idp.mu.Unlock()
}

// newJWKSAuth builds a JWKS-mode authenticator on idp, on jwtTestNow unless cfg.Now is
// set, with issuer "https://idp.example/" and audience "tether" unless cfg sets them, and
// closes it with the test.
func newJWKSAuth(t *testing.T, idp *testIdP, cfg Config) *Authenticator {
	t.Helper()
	cfg.JWKSURL = idp.url()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return jwtTestNow }
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "https://idp.example/"
	}
	if cfg.Audience == "" {
		cfg.Audience = "tether"
	}
	cfg.Logger = testkit.Logger()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// idpClaims are the claims of a valid access token from the test IdP, with overrides (a
// nil override deletes the claim).
func idpClaims(over map[string]any) jwt.MapClaims {
	c := map[string]any{"iss": "https://idp.example/", "aud": []string{"tether", "other-api"}}
	for k, v := range over {
		c[k] = v
	}
	return jwtClaims(c)
}

// signKid signs c with m and key, naming kid in the header ("" for none).
func signKid(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// authCode authenticates token and returns the close code (0 on success) and the error.
func authCode(a *Authenticator, token string) (protocol.CloseCode, server.Identity, error) {
	id, err := a.Authenticate(context.Background(), server.AuthRequest{Token: token})
	if err == nil {
		return 0, id, nil
	}
	var ae *server.AuthError
	if errors.As(err, &ae) {
		return ae.Code, id, err
	}
	return 0xFFFF, id, err
}

func TestJWKSAlgorithms(t *testing.T) {
	// A token of each default algorithm, signed by the key its kid names, verifies and
	// gives the user id and the expiry.
	idp := newTestIdP(t, stdKeys())
	a := newJWKSAuth(t, idp, Config{})
	for _, tc := range []struct {
		m   jwt.SigningMethod
		key any
		kid string
	}{
		{jwt.SigningMethodRS256, jwtTestRSAKey(), "rsa"},
		{jwt.SigningMethodES256, jwtTestECKey(), "ec"},
		{jwt.SigningMethodEdDSA, jwtTestEdKey(), "ed"},
		// No kid: the keys that fit the alg are tried.
		{jwt.SigningMethodES256, jwtTestECKey(), ""},
	} {
		tok := signKid(t, tc.m, tc.key, tc.kid, idpClaims(map[string]any{"sub": "alice-" + tc.m.Alg()}))
		code, id, err := authCode(a, tok)
		if err != nil {
			t.Errorf("%s kid %q: code %v, err %v", tc.m.Alg(), tc.kid, code, err)
			continue
		}
		if id.UserID != "alice-"+tc.m.Alg() || !id.ExpiresAt.Equal(jwtTestNow.Add(time.Hour)) {
			t.Errorf("%s: identity %+v", tc.m.Alg(), id)
		}
	}
	if n := idp.requests.Load(); n != 1 {
		t.Errorf("IdP saw %d requests, want 1 (the fetch in New)", n)
	}
}

func TestJWKSRejections(t *testing.T) {
	idp := newTestIdP(t, stdKeys())
	a := newJWKSAuth(t, idp, Config{Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA"}})
	ec, rsaKey := jwtTestECKey(), jwtTestRSAKey()
	f := func(name, token string, wantCode protocol.CloseCode, wantReason string) {
		t.Helper()
		_, err := a.Authenticate(context.Background(), server.AuthRequest{Token: token})
		var ae *server.AuthError
		if !errors.As(err, &ae) || ae.Code != wantCode || ae.Reason != wantReason {
			t.Errorf("%s: err = %v, want %v %q", name, err, wantCode, wantReason)
		}
	}
	es := func(over map[string]any) string { return signKid(t, jwt.SigningMethodES256, ec, "ec", idpClaims(over)) }

	f("wrong issuer", es(map[string]any{"iss": "https://evil.example/"}), protocol.CloseInvalidToken, "invalid issuer")
	f("wrong audience", es(map[string]any{"aud": "someone-else"}), protocol.CloseInvalidToken, "invalid audience")
	f("no audience", es(map[string]any{"aud": nil}), protocol.CloseInvalidToken, "missing required claim")
	f("expired", es(map[string]any{"exp": jwtTestNow.Add(-time.Hour).Unix()}), protocol.CloseTokenExpired, "token expired")
	// Expired and for another audience: a fresh token would not help.
	f("expired, wrong audience", es(map[string]any{"exp": jwtTestNow.Add(-time.Hour).Unix(), "aud": "x"}), protocol.CloseInvalidToken, "invalid audience")

	// The key "rsa" is published with alg RS256: a PS256 token under that kid is refused
	// even though PS256 is accepted and the key is the right type.
	f("alg differs from the key's", signKid(t, jwt.SigningMethodPS256, rsaKey, "rsa", idpClaims(nil)), protocol.CloseInvalidToken, "invalid signature")
	// The ES256 header names the RSA key: the alg check above catches it, and so would the
	// key type check (see TestJWKSKeyType).
	f("ES256 header, RSA kid", signKid(t, jwt.SigningMethodES256, ec, "rsa", idpClaims(nil)), protocol.CloseInvalidToken, "invalid signature")
	// The classic confusion: HS256 "signed" with the RSA public key as the secret.
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	f("HS256 with the RSA public key", signKid(t, jwt.SigningMethodHS256, pemKey, "rsa", idpClaims(nil)), protocol.CloseInvalidToken, "invalid signature")
	f("HS256 with the RSA DER", signKid(t, jwt.SigningMethodHS256, der, "rsa", idpClaims(nil)), protocol.CloseInvalidToken, "invalid signature")
	// alg none, with and without a kid.
	f("none", rawJWT(t, `{"alg":"none","kid":"rsa"}`, idpClaims(nil), ""), protocol.CloseInvalidToken, "invalid signature")
	f("none, no kid", rawJWT(t, `{"alg":"none"}`, idpClaims(nil), ""), protocol.CloseInvalidToken, "invalid signature")
	// Signed by a key the IdP does not hold, under a kid it does.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f("forged ES256", signKid(t, jwt.SigningMethodES256, other, "ec", idpClaims(nil)), protocol.CloseInvalidToken, "invalid signature")
	// A kid that is not a string.
	f("numeric kid", rawJWT(t, `{"alg":"ES256","kid":7}`, idpClaims(nil), "c2ln"), protocol.CloseInvalidToken, "invalid signature")
}

func TestJWKSKeyType(t *testing.T) {
	// Keys published without "alg" (many sets omit it): the key's type must fit the
	// token's alg, else a P-256 key could be offered for EdDSA or an RSA key for ES256.
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	idp := newTestIdP(t, []idpKey{
		{"rsa-1024", "RS256", &small.PublicKey},
		{"rsa", "", &jwtTestRSAKey().PublicKey},
		{"ec", "", &jwtTestECKey().PublicKey},
		{"p384", "", &p384.PublicKey},
	})
	a := newJWKSAuth(t, idp, Config{})
	if code, _, err := authCode(a, signKid(t, jwt.SigningMethodRS256, jwtTestRSAKey(), "rsa", idpClaims(nil))); err != nil {
		t.Fatalf("RS256 with an alg-less key: %v %v", code, err)
	}
	for name, tok := range map[string]string{
		"ES256 naming an RSA key":   signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "rsa", idpClaims(nil)),
		"RS256 naming an EC key":    signKid(t, jwt.SigningMethodRS256, jwtTestRSAKey(), "ec", idpClaims(nil)),
		"EdDSA naming an EC key":    signKid(t, jwt.SigningMethodEdDSA, jwtTestEdKey(), "ec", idpClaims(nil)),
		"ES256 naming a P-384 key":  signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "p384", idpClaims(nil)),
		"EdDSA without kid, no fit": signKid(t, jwt.SigningMethodEdDSA, jwtTestEdKey(), "", idpClaims(nil)),
		// The JWT library would verify with a 1024-bit key; New's 2048-bit floor holds here too.
		"RS256 with a 1024-bit key": signKid(t, jwt.SigningMethodRS256, small, "rsa-1024", idpClaims(nil)),
	} {
		if code, _, err := authCode(a, tok); code != protocol.CloseInvalidToken {
			t.Errorf("%s: code %v, err %v; want INVALID_TOKEN", name, code, err)
		}
	}
}

func TestJWKSRotation(t *testing.T) {
	// The IdP publishes a new key and signs with it: the first token naming it causes
	// exactly one refetch, and then verifies, as do later ones, with no more requests.
	idp := newTestIdP(t, stdKeys())
	clock := testkit.NewFakeClockAt(jwtTestNow)
	a := newJWKSAuth(t, idp, Config{Now: clock.Now})
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	idp.publish(t, append(stdKeys(), idpKey{"ec-2", "ES256", &newKey.PublicKey}))
	tok := signKid(t, jwt.SigningMethodES256, newKey, "ec-2", idpClaims(nil))
	for i := range 3 {
		if code, _, err := authCode(a, tok); err != nil {
			t.Fatalf("token %d with the rotated key: %v %v", i, code, err)
		}
	}
	if n := idp.requests.Load(); n != 2 {
		t.Fatalf("IdP saw %d requests, want 2 (New, one refetch)", n)
	}

	// The old key is withdrawn: after the next refetch (allowed once the interval has
	// passed) its tokens are refused, the new key's are not.
	idp.publish(t, []idpKey{{"ec-2", "ES256", &newKey.PublicKey}})
	clock.Advance(10 * time.Second)
	third, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if code, _, _ := authCode(a, signKid(t, jwt.SigningMethodES256, third, "ec-3", idpClaims(nil))); code != protocol.CloseInvalidToken {
		t.Fatalf("unpublished kid: code %v", code)
	}
	if n := idp.requests.Load(); n != 3 {
		t.Fatalf("IdP saw %d requests, want 3", n)
	}
	if code, _, _ := authCode(a, signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "ec", idpClaims(nil))); code != protocol.CloseInvalidToken {
		t.Errorf("withdrawn key: code %v, want INVALID_TOKEN", code)
	}
	if code, _, err := authCode(a, tok); err != nil {
		t.Errorf("current key: %v %v", code, err)
	}
}

func TestJWKSUnknownKIDFlood(t *testing.T) {
	// Many clients at once with made-up kids: the IdP sees one refetch per
	// JWKSUnknownKIDInterval of the (fake) clock, however many tokens arrive, and every
	// token gets INVALID_TOKEN "unknown signing key" rather than waiting.
	idp := newTestIdP(t, stdKeys())
	clock := testkit.NewFakeClockAt(jwtTestNow)
	a := newJWKSAuth(t, idp, Config{Now: clock.Now, JWKSUnknownKIDInterval: 30 * time.Second})
	flood := func(round int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				for i := range 40 {
					tok := signKid(t, jwt.SigningMethodEdDSA, jwtTestEdKey(), fmt.Sprintf("bogus-%d-%d-%d", round, g, i), idpClaims(nil))
					_, err := a.Authenticate(context.Background(), server.AuthRequest{Token: tok})
					var ae *server.AuthError
					if !errors.As(err, &ae) || ae.Code != protocol.CloseInvalidToken || ae.Reason != "unknown signing key" {
						errs <- fmt.Errorf("round %d, goroutine %d, token %d: %v", round, g, i, err)
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
	flood(0)
	if n := idp.requests.Load(); n != 2 {
		t.Fatalf("after 320 unknown kids: IdP saw %d requests, want 2 (New, one refetch)", n)
	}
	clock.Advance(29 * time.Second)
	flood(1)
	if n := idp.requests.Load(); n != 2 {
		t.Fatalf("29s later: IdP saw %d requests, want still 2", n)
	}
	clock.Advance(time.Second)
	flood(2)
	if n := idp.requests.Load(); n != 3 {
		t.Fatalf("30s later: IdP saw %d requests, want 3", n)
	}
	// Known kids are unaffected by the flood.
	if code, _, err := authCode(a, signKid(t, jwt.SigningMethodRS256, jwtTestRSAKey(), "rsa", idpClaims(nil))); err != nil {
		t.Errorf("known kid during the flood: %v %v", code, err)
	}
}

func TestJWKSRefetchInFlightShared(t *testing.T) {
	// Tokens with the rotated kid arriving while its refetch runs wait for that fetch and
	// verify, instead of being refused by the rate limit: the IdP answers only after
	// every caller has arrived.
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	release := make(chan struct{})
	idp := newTestIdP(t, stdKeys())
	a := newJWKSAuth(t, idp, Config{})
	idp.publish(t, append(stdKeys(), idpKey{"ec-2", "ES256", &newKey.PublicKey}))
	idp.hold.Store(&release)
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open) // before the IdP's Close, which waits for its handlers
	tok := signKid(t, jwt.SigningMethodES256, newKey, "ec-2", idpClaims(nil))
	const callers = 6
	var started sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		started.Add(1)
		go func() {
			started.Done()
			_, err := a.Authenticate(context.Background(), server.AuthRequest{Token: tok})
			errs <- err
		}()
	}
	started.Wait()
	testkit.WaitFor(t, "the refetch to reach the IdP and the other callers to queue", func() bool {
		return idp.requests.Load() == 2 && a.keys.waiting.Load() == callers-1
	})
	open()
	for range callers {
		if err := testkit.Recv(t, errs, 10*time.Second); err != nil {
			t.Errorf("caller: %v", err)
		}
	}
	if n := idp.requests.Load(); n != 2 {
		t.Errorf("IdP saw %d requests, want 2", n)
	}
}

func TestJWKSServerDown(t *testing.T) {
	// The IdP goes down after start: cached keys keep verifying, and a failed refetch
	// (caused by an unknown kid) does not empty the cache. Then it goes away entirely.
	idp := newTestIdP(t, stdKeys())
	a := newJWKSAuth(t, idp, Config{})
	good := signKid(t, jwt.SigningMethodRS256, jwtTestRSAKey(), "rsa", idpClaims(nil))
	idp.down.Store(true)
	if code, _, _ := authCode(a, signKid(t, jwt.SigningMethodRS256, jwtTestRSAKey(), "new", idpClaims(nil))); code != protocol.CloseInvalidToken {
		t.Fatalf("unknown kid with the IdP down: code %v", code)
	}
	if n := idp.requests.Load(); n != 2 {
		t.Fatalf("IdP saw %d requests, want 2 (New, the failed refetch)", n)
	}
	if code, _, err := authCode(a, good); err != nil {
		t.Fatalf("cached key with the IdP down: %v %v", code, err)
	}
	idp.srv.Close()
	if code, _, err := authCode(a, good); err != nil {
		t.Fatalf("cached key with the IdP gone: %v %v", code, err)
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	// JWKSRefresh refetches in the background: a key published later verifies without a
	// token having asked for it (unknown-kid refetch disabled), and Close stops it.
	idp := newTestIdP(t, stdKeys())
	a := newJWKSAuth(t, idp, Config{JWKSRefresh: 20 * time.Millisecond, JWKSUnknownKIDInterval: -1})
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := signKid(t, jwt.SigningMethodES256, newKey, "ec-2", idpClaims(nil))
	if code, _, _ := authCode(a, tok); code != protocol.CloseInvalidToken {
		t.Fatalf("unpublished key: code %v", code)
	}
	idp.publish(t, append(stdKeys(), idpKey{"ec-2", "ES256", &newKey.PublicKey}))
	testkit.WaitFor(t, "the background refresh to pick up the new key", func() bool {
		code, _, _ := authCode(a, tok)
		return code == 0
	})
	a.Close()
	a.Close() // twice is fine
	// After Close no refresh starts: the count settles. A refresh in flight at Close may
	// still land, so settle first, then check that nothing more arrives in 10 periods.
	testkit.WaitFor(t, "the refresh goroutine to stop", func() bool {
		before := idp.requests.Load()
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if idp.requests.Load() != before {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
		return true
	})
}

func TestJWKSStartup(t *testing.T) {
	// An unreachable IdP at start is New's error, naming ErrJWKSFetch; so is an empty
	// set. With JWKSAllowUnreachable New succeeds, tokens are refused, and the first
	// token after the IdP comes back (and the rate limit allows) verifies.
	idp := newTestIdP(t, stdKeys())
	idp.down.Store(true)
	_, err := New(Config{JWKSURL: idp.url(), Logger: testkit.Logger(), JWKSTimeout: 5 * time.Second})
	if !errors.Is(err, ErrJWKSFetch) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("IdP down at start: err = %v, want ErrJWKSFetch with the status", err)
	}
	empty := newTestIdP(t, nil)
	if _, err := New(Config{JWKSURL: empty.url(), Logger: testkit.Logger()}); !errors.Is(err, ErrJWKSFetch) || !strings.Contains(err.Error(), "no usable key") {
		t.Fatalf("empty set: err = %v", err)
	}

	clock := testkit.NewFakeClockAt(jwtTestNow)
	a := newJWKSAuth(t, idp, Config{Now: clock.Now, JWKSAllowUnreachable: true})
	tok := signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "ec", idpClaims(nil))
	noKid := signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "", idpClaims(nil))
	if code, _, _ := authCode(a, tok); code != protocol.CloseInvalidToken {
		t.Fatalf("no keys yet: code %v", code)
	}
	idp.down.Store(false)
	if code, _, _ := authCode(a, noKid); code != protocol.CloseInvalidToken {
		t.Fatalf("within the interval: code %v, want refused without a fetch", code)
	}
	clock.Advance(10 * time.Second)
	if code, _, err := authCode(a, noKid); err != nil {
		t.Fatalf("IdP back, token without kid: %v %v", code, err)
	}
	if code, _, err := authCode(a, tok); err != nil {
		t.Fatalf("IdP back: %v %v", code, err)
	}
}

func TestJWKSUserClaim(t *testing.T) {
	idp := newTestIdP(t, stdKeys())
	f := func(claim string, over map[string]any, wantUser string, wantReason string) {
		t.Helper()
		a := newJWKSAuth(t, idp, Config{UserClaim: claim})
		_, id, err := authCode(a, signKid(t, jwt.SigningMethodEdDSA, jwtTestEdKey(), "ed", idpClaims(over)))
		if wantReason != "" {
			var ae *server.AuthError
			if !errors.As(err, &ae) || ae.Reason != wantReason {
				t.Errorf("claim %q: err %v, want reason %q", claim, err, wantReason)
			}
			return
		}
		if err != nil || id.UserID != wantUser {
			t.Errorf("claim %q: user %q, err %v; want %q", claim, id.UserID, err, wantUser)
		}
	}
	// Default sub.
	f("", nil, "u1", "")
	// A top-level claim (Keycloak's preferred_username, an email).
	f("email", map[string]any{"email": "bob@example.com"}, "bob@example.com", "")
	// An Auth0-style namespaced claim, whose name has dots: taken as is.
	f("https://example.com/uid", map[string]any{"https://example.com/uid": "u-42"}, "u-42", "")
	// A nested claim.
	f("user.id", map[string]any{"user": map[string]any{"id": "nested-7"}}, "nested-7", "")
	// Missing, not a string, empty, too long.
	f("email", nil, "", "missing user id")
	f("user.id", map[string]any{"user": "flat"}, "", "missing user id")
	f("email", map[string]any{"email": 42}, "", "invalid user id")
	f("email", map[string]any{"email": ""}, "", "missing user id")
	f("email", map[string]any{"email": strings.Repeat("x", maxJWTClaimLen+1)}, "", "user id too long")
	f("", map[string]any{"sub": nil}, "", "missing subject")
}

func TestJWKSConfigErrors(t *testing.T) {
	idp := newTestIdP(t, stdKeys())
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		// HMAC with a public key set would let anyone sign.
		{"HS256 in Algorithms", Config{JWKSURL: idp.url(), Algorithms: []string{"RS256", "HS256"}}, `algorithm "HS256" is not accepted`},
		{"none in Algorithms", Config{JWKSURL: idp.url(), Algorithms: []string{"none"}}, `algorithm "none" is not accepted`},
		{"pinned Algorithm too", Config{JWKSURL: idp.url(), Algorithm: "RS256"}, "cannot be combined"},
		{"secret too", Config{JWKSURL: idp.url(), HMACSecret: jwtTestSecret}, "cannot be combined"},
		{"Algorithms without JWKS", Config{Algorithm: "HS256", HMACSecret: jwtTestSecret, Algorithms: []string{"RS256"}}, "Algorithms is for JWKS mode"},
		// Plain http only to loopback.
		{"http to a remote host", Config{JWKSURL: "http://idp.example/jwks.json"}, "http is allowed only to a loopback host"},
		{"no scheme", Config{JWKSURL: "idp.example/jwks.json"}, "scheme must be https"},
		{"negative timeout", Config{JWKSURL: idp.url(), JWKSTimeout: -1}, "JWKSTimeout must not be negative"},
	} {
		a, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "jwtauth: ") {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
		if a != nil {
			a.Close()
		}
	}
	if n := idp.requests.Load(); n != 0 {
		t.Errorf("invalid configurations made %d requests", n)
	}
	// The defaults.
	cfg := Config{JWKSURL: "https://idp.example/jwks.json"}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.JWKSRefresh != time.Hour || cfg.JWKSUnknownKIDInterval != 10*time.Second || cfg.JWKSTimeout != 10*time.Second ||
		cfg.UserClaim != "sub" || cfg.HTTPClient == nil || fmt.Sprint(cfg.Algorithms) != "[RS256 ES256 EdDSA]" {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestJWKSResponseLimit(t *testing.T) {
	// A set larger than 1 MiB is refused rather than decoded.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[],"pad":"`))
		w.Write([]byte(strings.Repeat("x", maxJWKSBytes)))
		w.Write([]byte(`"}`))
	}))
	defer big.Close()
	_, err := New(Config{JWKSURL: big.URL, Logger: testkit.Logger()})
	if !errors.Is(err, ErrJWKSFetch) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversize set: err = %v", err)
	}
}

func TestJWKSGateway(t *testing.T) {
	// End to end: a real gateway with a JWKS-mode authenticator. A client with an ES256
	// token from the local IdP connects as the token's user; an expired token gets
	// AUTH_FAIL TOKEN_EXPIRED (3501), a terminal code: the application must get a new
	// token before the client reconnects.
	idp := newTestIdP(t, stdKeys())
	a := newJWKSAuth(t, idp, Config{Now: time.Now})
	srv, err := server.New(server.Options{
		Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: a, Logger: testkit.Logger(),
		MaxConnsPerIP: -1, ConnectRate: -1, SourceConnectRate: -1, FlapThreshold: -1,
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		t.Fatalf("start the gateway: %v", err)
	}
	defer srv.Close()
	now := time.Now()
	claims := func(exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": "https://idp.example/", "aud": "tether", "sub": "carol", "iat": now.Add(-2 * time.Hour).Unix(), "exp": exp.Unix()}
	}
	ctx := testkit.Context(t, 10*time.Second)

	good := signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "ec", claims(now.Add(time.Hour)))
	c, err := client.Dial(ctx, srv.Addr().String(), client.Options{Token: good, NoReconnect: true})
	if err != nil {
		t.Fatalf("Dial with a valid ES256 token: %v", err)
	}
	defer c.Close()
	if c.UserID() != "carol" {
		t.Fatalf("UserID = %q, want carol", c.UserID())
	}
	conns := srv.UserConns("carol")
	if len(conns) != 1 || conns[0].TokenExpiry().Unix() != now.Add(time.Hour).Unix() {
		t.Fatalf("server side: %d conns, expiry %v", len(conns), func() any {
			if len(conns) == 0 {
				return nil
			}
			return conns[0].TokenExpiry()
		}())
	}

	expired := signKid(t, jwt.SigningMethodES256, jwtTestECKey(), "ec", claims(now.Add(-time.Hour)))
	_, err = client.Dial(ctx, srv.Addr().String(), client.Options{Token: expired, NoReconnect: true})
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Op != protocol.OpAuthFail || ce.Code != protocol.CloseTokenExpired {
		t.Fatalf("Dial with an expired token: %v, want AUTH_FAIL TOKEN_EXPIRED", err)
	}
	if ce.Code != 3501 || !ce.Terminal() {
		t.Fatalf("TOKEN_EXPIRED is %d on the wire, want 3501", ce.Code)
	}
}
