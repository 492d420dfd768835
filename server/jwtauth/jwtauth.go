// Package jwtauth is a server.Authenticator for JSON Web Tokens (RFC 7519), in one of two
// modes:
//
//   - pinned key: one algorithm, HS256 or RS256, and one key given in Config;
//   - JWKS: the access tokens of an OAuth 2.0 / OpenID Connect provider, verified with the
//     keys of its JWK Set (RFC 7517) fetched from Config.JWKSURL, cached, refreshed
//     periodically and, rate-limited, when a token names an unknown kid; RS256, ES256 and
//     EdDSA by default (github.com/MicahParks/keyfunc over github.com/MicahParks/jwkset).
//
// It lives outside package server so an embedder that authenticates some other way does
// not link a JWT library.
//
// Concurrency: an Authenticator is immutable after New except for the JWKS cache, which
// jwkset guards, and the one refetch in flight, which keySource.mu guards (held only to
// read or swap keySource.inflight; never across I/O). Goroutines: in JWKS mode, jwkset's
// refresh goroutine, from New until Close; a refetch for an unknown kid runs on the
// Authenticate caller that triggered it, and other callers wanting a refetch meanwhile
// wait for it (or their ctx).
package jwtauth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// MaxTokenLen is the longest token, in bytes, that Authenticator parses; longer tokens
// are rejected with CloseInvalidToken before any decoding. The HELLO frame allows longer
// text fields, but a real JWT is a few hundred bytes, and the cap bounds the base64 and
// JSON work an unauthenticated peer can make the worker pool do.
const MaxTokenLen = 8 << 10

// maxJWTClaimLen bounds the sub, device and platform claims: they become map keys and log
// fields for the connection's lifetime.
const maxJWTClaimLen = 256

// minHMACSecretLen is the shortest HS256 secret accepted: RFC 7518 section 3.2 requires a
// key at least as long as the hash output (256 bits).
const minHMACSecretLen = 32

// minRSABits is the smallest RS256 modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

// The JWKS mode's defaults (Config.JWKSRefresh, Config.JWKSUnknownKIDInterval,
// Config.JWKSTimeout).
const (
	DefaultJWKSRefresh            = time.Hour
	DefaultJWKSUnknownKIDInterval = 10 * time.Second
	DefaultJWKSTimeout            = 10 * time.Second
)

// Config configures Authenticator. Zero value fields keep the defaults stated in
// each field's doc; New applies the defaults and validates the result.
type Config struct {
	// Algorithm is the only signing algorithm accepted in pinned-key mode: "HS256" or
	// "RS256". Tokens whose header names any other algorithm, including "none" or another
	// of the same family (HS384, RS512, PS256, ...), are rejected. Required unless JWKSURL
	// is set, and then it must be empty (see Algorithms).
	Algorithm string

	// HMACSecret is the HS256 key, at least 32 bytes. Required for HS256 and must be nil
	// for RS256. New copies it.
	HMACSecret []byte

	// RSAPublicKey is the RS256 verification key, at least 2048 bits; see
	// LoadRSAPublicKeyPEM. Required for RS256 and must be nil for HS256.
	RSAPublicKey *rsa.PublicKey

	// JWKSURL selects JWKS mode: the verification keys are the JWK Set at this URL (an
	// OIDC provider's jwks_uri, e.g. https://idp.example/.well-known/jwks.json). It must
	// be https, or http to a loopback host. New fetches it once, within JWKSTimeout, and
	// fails (wrapping ErrJWKSFetch) if that fails or yields no usable key, unless
	// JWKSAllowUnreachable. Algorithm, HMACSecret and RSAPublicKey must then be unset.
	// Default: pinned-key mode.
	JWKSURL string

	// Algorithms are the algorithms accepted in JWKS mode: any of RS256, RS384, RS512,
	// PS256, PS384, PS512, ES256, ES384, ES512 and EdDSA (Ed25519). HS* and "none" are
	// refused by New: a JWK Set is public. A token's header alg must be one of these and,
	// when its key in the set has an "alg", equal to it; the key's type and size must fit
	// the alg (RSA of 2048 bits or more; ECDSA on the alg's curve; Ed25519). Default
	// RS256, ES256, EdDSA. Must be empty in pinned-key mode.
	Algorithms []string

	// JWKSRefresh is how often the set is refetched in the background. A failed fetch
	// keeps the cached keys. Default 1h; negative: never (only on an unknown kid).
	JWKSRefresh time.Duration

	// JWKSUnknownKIDInterval is the shortest time between two refetches caused by tokens
	// naming a kid the cache lacks (a key rotation: the provider publishes the new key
	// before signing with it). One such token triggers a fetch; tokens arriving while it
	// runs wait for it; after it, tokens with unknown kids are refused at once
	// (CloseInvalidToken, "unknown signing key") until the interval has passed, so made-up
	// kids cost the provider at most one request per interval per gateway. Measured with
	// Now. Default 10s; negative: never refetch on an unknown kid.
	JWKSUnknownKIDInterval time.Duration

	// JWKSTimeout bounds each fetch of the set, the first one in New included.
	// Default 10s.
	JWKSTimeout time.Duration

	// JWKSAllowUnreachable lets New succeed when the first fetch fails: the
	// Authenticator then refuses every token (CloseInvalidToken) until a fetch succeeds,
	// periodic or caused by a token (rate-limited as above). Default false: a provider
	// unreachable at startup is New's error, which is what an operator wants to see.
	JWKSAllowUnreachable bool

	// HTTPClient fetches the set. Its Transport is wrapped to cap responses at 1 MiB.
	// Default: a client with http.DefaultTransport (proxy from the environment).
	HTTPClient *http.Client

	// Logger receives failed background refetches of the set (warn level). Default
	// slog.Default().
	Logger *slog.Logger

	// UserClaim names the string claim that is the user id (server.Identity.UserID):
	// e.g. "email", "preferred_username" (Keycloak) or a namespaced claim such as
	// "https://example.com/uid" (Auth0). A name not found as is, containing dots, is
	// followed as a path into nested objects ("user.id"). The claim must be a non-empty
	// string of at most 256 bytes. Default "sub".
	UserClaim string

	// Issuer, when not empty, must equal the token's iss claim (which must be present).
	// Default: iss is not checked.
	Issuer string

	// Audience, when not empty, must be one of the token's aud values (which must be
	// present). Default: aud is not checked.
	Audience string

	// Leeway is the clock skew allowed when checking exp, nbf and iat (an iat in the
	// future is rejected). Default 30s; must not be negative.
	Leeway time.Duration

	// DeviceClaim names the claim carrying the device id. Default "did"; "-" disables it.
	// When the token has it and the HELLO gave a device id, the two must be equal, else
	// the connection is refused with CloseForbidden: this binds a token to one device.
	// When the HELLO gave none, the claim becomes server.Identity.DeviceID.
	DeviceClaim string

	// PlatformClaim names the claim carrying the platform. Default "plat"; "-" disables
	// it. When the token has it, it becomes server.Identity.Platform and so overrides the
	// HELLO's platform (a mismatch is not an error: the signed value wins).
	PlatformClaim string

	// RequireExp rejects tokens without an exp claim. Default false, so that long-lived
	// tokens issued by existing systems keep working; production deployments should set
	// it, since a token without exp is valid until the signing key is rotated.
	RequireExp bool

	// Now is the clock used to check exp, nbf and iat. Default time.Now; tests inject a
	// fixed clock.
	Now func() time.Time
}

// Authenticator is a server.Authenticator that verifies a JSON Web Token (RFC 7519) signed
// with one pinned algorithm (HS256 with a shared secret or RS256 with a public key) or,
// in JWKS mode, with a key from an OAuth 2.0 / OIDC provider's JWK Set.
//
// The token's UserClaim (default sub) is the user id and its exp is
// server.Identity.ExpiresAt. Failures are *server.AuthError values with
// CloseTokenExpired (exp passed, beyond the leeway), CloseForbidden (the token is bound to
// another device) or CloseInvalidToken (everything else: bad signature, other algorithm,
// unknown kid, malformed, wrong iss or aud, nbf or iat in the future, missing or oversize
// user id). The Reason is a fixed phrase; the library's error, which never contains the
// key, is in Err.
//
// An Authenticator is safe for concurrent use; see the package doc for what it shares.
// Authenticate allocates on every call (base64 and JSON decoding of the token into a
// map); an RS256 verification costs tens of microseconds of CPU.
type Authenticator struct {
	parser        *jwt.Parser
	key           any        // pinned mode: []byte for HS256, *rsa.PublicKey for RS256
	keys          *keySource // JWKS mode
	userClaim     string
	deviceClaim   string
	platformClaim string
}

var _ server.Authenticator = (*Authenticator)(nil)

// New validates cfg, applies its defaults and returns an authenticator.
// The errors name the offending field, e.g. "jwtauth: HS256 secret must be at least
// 32 bytes, got 16".
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	a := &Authenticator{
		userClaim:     cfg.UserClaim,
		deviceClaim:   cfg.DeviceClaim,
		platformClaim: cfg.PlatformClaim,
	}
	algs := []string{cfg.Algorithm}
	switch {
	case cfg.JWKSURL != "":
		algs = cfg.Algorithms
		ks, err := newKeySource(&cfg)
		if err != nil {
			return nil, err
		}
		a.keys = ks
	case cfg.Algorithm == "HS256":
		a.key = append([]byte(nil), cfg.HMACSecret...)
	default:
		a.key = cfg.RSAPublicKey
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	// A jwt.Parser is read-only once built, so one is shared by all goroutines.
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// Close stops the background refresh of the JWK Set and cancels a fetch in flight; the
// cached keys still verify. It is a no-op in pinned-key mode, and safe to call more than
// once.
func (a *Authenticator) Close() error {
	if a.keys != nil {
		a.keys.close()
	}
	return nil
}

// setDefaults fills in zero fields and validates cfg: all defaulting lives here.
func (cfg *Config) setDefaults() error {
	var err error
	if cfg.JWKSURL != "" {
		err = cfg.setJWKSDefaults()
	} else {
		err = cfg.checkPinned()
	}
	if err != nil {
		return err
	}
	if cfg.Leeway < 0 {
		return fmt.Errorf("jwtauth: Leeway must not be negative, got %v", cfg.Leeway)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	if cfg.DeviceClaim == "" {
		cfg.DeviceClaim = "did"
	}
	if cfg.PlatformClaim == "" {
		cfg.PlatformClaim = "plat"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// setJWKSDefaults validates the JWKS-mode fields and fills in their defaults.
func (cfg *Config) setJWKSDefaults() error {
	if err := checkJWKSURL(cfg.JWKSURL); err != nil {
		return err
	}
	if cfg.Algorithm != "" || len(cfg.HMACSecret) != 0 || cfg.RSAPublicKey != nil {
		return errors.New("jwtauth: JWKSURL cannot be combined with Algorithm, HMACSecret or RSAPublicKey (use Algorithms)")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = slices.Clone(defaultJWKSAlgs)
	}
	for _, alg := range cfg.Algorithms {
		if jwksAlgs[alg] == nil {
			return fmt.Errorf("jwtauth: algorithm %q is not accepted with a JWK Set (want some of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", alg)
		}
	}
	if cfg.JWKSRefresh == 0 {
		cfg.JWKSRefresh = DefaultJWKSRefresh
	}
	if cfg.JWKSUnknownKIDInterval == 0 {
		cfg.JWKSUnknownKIDInterval = DefaultJWKSUnknownKIDInterval
	}
	if cfg.JWKSTimeout < 0 {
		return fmt.Errorf("jwtauth: JWKSTimeout must not be negative, got %v", cfg.JWKSTimeout)
	}
	if cfg.JWKSTimeout == 0 {
		cfg.JWKSTimeout = DefaultJWKSTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// checkPinned validates the pinned-key fields.
func (cfg *Config) checkPinned() error {
	if len(cfg.Algorithms) != 0 {
		return errors.New("jwtauth: Algorithms is for JWKS mode (JWKSURL); pinned-key mode takes one Algorithm")
	}
	switch cfg.Algorithm {
	case "HS256":
		if len(cfg.HMACSecret) == 0 {
			return errors.New("jwtauth: HS256 needs HMACSecret")
		}
		if len(cfg.HMACSecret) < minHMACSecretLen {
			return fmt.Errorf("jwtauth: HS256 secret must be at least %d bytes, got %d", minHMACSecretLen, len(cfg.HMACSecret))
		}
		if cfg.RSAPublicKey != nil {
			return errors.New("jwtauth: RSAPublicKey is set but Algorithm is HS256")
		}
	case "RS256":
		if cfg.RSAPublicKey == nil || cfg.RSAPublicKey.N == nil {
			return errors.New("jwtauth: RS256 needs RSAPublicKey")
		}
		if n := cfg.RSAPublicKey.N.BitLen(); n < minRSABits {
			return fmt.Errorf("jwtauth: RS256 key must be at least %d bits, got %d", minRSABits, n)
		}
		if len(cfg.HMACSecret) != 0 {
			return errors.New("jwtauth: HMACSecret is set but Algorithm is RS256")
		}
	case "":
		return errors.New(`jwtauth: Algorithm is required ("HS256" or "RS256")`)
	default:
		return fmt.Errorf(`jwtauth: unsupported Algorithm %q (want "HS256" or "RS256")`, cfg.Algorithm)
	}
	return nil
}

// Authenticate verifies req.Token, a compact JWT (no "Bearer " prefix), and returns the
// identity it names. It is safe for concurrent use. It returns ctx's error if ctx is
// already done. It does no I/O, except in JWKS mode for a token whose kid is not cached
// (see Config.JWKSUnknownKIDInterval): then it may fetch the set, or wait for the fetch
// in flight, until the fetch ends or ctx is done.
func (a *Authenticator) Authenticate(ctx context.Context, req server.AuthRequest) (server.Identity, error) {
	if err := ctx.Err(); err != nil {
		return server.Identity{}, err
	}
	if len(req.Token) > MaxTokenLen {
		return server.Identity{}, invalidToken("token too long",
			fmt.Errorf("jwtauth: token is %d bytes, max %d", len(req.Token), MaxTokenLen))
	}
	claims := jwt.MapClaims{}
	keyFunc := a.keyFunc
	if a.keys != nil {
		keyFunc = a.keys.keyFunc(ctx)
	}
	if _, err := a.parser.ParseWithClaims(req.Token, claims, keyFunc); err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return server.Identity{}, cerr // gave up waiting for a JWK Set fetch
		}
		return server.Identity{}, parseFailure(err)
	}

	var id server.Identity
	var err error
	if id.UserID, err = a.userID(claims); err != nil {
		return server.Identity{}, err
	}

	// The library has already checked exp's type and value; this only copies it.
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		id.ExpiresAt = exp.Time
	}

	if id.DeviceID, err = a.stringClaim(claims, a.deviceClaim); err != nil {
		return server.Identity{}, invalidToken("invalid device claim", err)
	}
	if id.DeviceID != "" && req.DeviceID != "" && id.DeviceID != req.DeviceID {
		// Neither id goes into the error: Err is logged, a device id may be personal data,
		// and the caller has the HELLO's id if it needs it.
		return server.Identity{}, &server.AuthError{
			Code:   protocol.CloseForbidden,
			Reason: "token not valid for this device",
			Err:    errors.New("jwtauth: device claim does not match the HELLO device id"),
		}
	}
	if id.Platform, err = a.stringClaim(claims, a.platformClaim); err != nil {
		return server.Identity{}, invalidToken("invalid platform claim", err)
	}
	return id, nil
}

// keyFunc returns the verification key. The parser has already pinned the algorithm with
// WithValidMethods; the type check is a second line against algorithm confusion.
func (a *Authenticator) keyFunc(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if k, ok := a.key.([]byte); ok {
			return k, nil
		}
	case *jwt.SigningMethodRSA:
		if k, ok := a.key.(*rsa.PublicKey); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("jwtauth: unexpected signing method %s", t.Method.Alg())
}

// userID returns the user id claim, or the *server.AuthError saying what is wrong with it.
// The sub claim keeps the reasons it always had ("missing subject", ...).
func (a *Authenticator) userID(claims jwt.MapClaims) (string, error) {
	what := "user id"
	if a.userClaim == "sub" {
		what = "subject"
	}
	v, ok := claims[a.userClaim]
	if !ok && strings.Contains(a.userClaim, ".") {
		v, ok = nestedClaim(claims, a.userClaim)
	}
	if !ok || v == "" {
		return "", invalidToken("missing "+what, fmt.Errorf("jwtauth: %s claim missing or empty", a.userClaim))
	}
	s, ok := v.(string)
	if !ok {
		return "", invalidToken("invalid "+what, fmt.Errorf("jwtauth: claim %q is %T, not a string", a.userClaim, v))
	}
	if len(s) > maxJWTClaimLen {
		return "", invalidToken(what+" too long",
			fmt.Errorf("jwtauth: %s is %d bytes, max %d", a.userClaim, len(s), maxJWTClaimLen))
	}
	return s, nil
}

// nestedClaim follows a dotted path ("user.id") through nested JSON objects.
func nestedClaim(claims jwt.MapClaims, path string) (any, bool) {
	var cur any = map[string]any(claims)
	for name := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringClaim returns the string claim name, "" when name is "-" or the claim is absent,
// and an error when it is not a string or is too long.
func (a *Authenticator) stringClaim(claims jwt.MapClaims, name string) (string, error) {
	if name == "-" {
		return "", nil
	}
	v, ok := claims[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("jwtauth: claim %q is %T, not a string", name, v)
	}
	if len(s) > maxJWTClaimLen {
		return "", fmt.Errorf("jwtauth: claim %q is %d bytes, max %d", name, len(s), maxJWTClaimLen)
	}
	return s, nil
}

// parseFailure maps an error from jwt.Parser to a *server.AuthError.
func parseFailure(err error) *server.AuthError {
	switch {
	case onlyExpired(err):
		return &server.AuthError{Code: protocol.CloseTokenExpired, Reason: "token expired", Err: err}
	case errors.Is(err, ErrUnknownKey):
		return invalidToken("unknown signing key", err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalidToken("malformed token", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		// Also a disallowed or unknown alg: the client learns nothing about which.
		return invalidToken("invalid signature", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalidToken("token not valid yet", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalidToken("invalid issuer", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalidToken("invalid audience", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalidToken("missing required claim", err)
	default:
		return invalidToken("invalid token", err)
	}
}

// onlyExpired reports whether exp is the token's only problem. The parser reports every
// failed claim check at once; a token that is expired and also, say, for another
// audience gets CloseInvalidToken, since fetching a fresh token would not help it.
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	only := true
	var walk func(error)
	walk = func(e error) {
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			// A leaf: ErrTokenInvalidClaims is the parser's wrapper for all claim failures.
			if e != jwt.ErrTokenExpired && e != jwt.ErrTokenInvalidClaims {
				only = false
			}
		}
	}
	walk(err)
	return only
}

func invalidToken(reason string, err error) *server.AuthError {
	return &server.AuthError{Code: protocol.CloseInvalidToken, Reason: reason, Err: err}
}

// LoadRSAPublicKeyPEM parses the first PEM block of pemBytes as an RSA public key, in
// PKIX ("PUBLIC KEY", as written by openssl rsa -pubout) or PKCS #1 ("RSA PUBLIC KEY")
// form. Private keys and certificates are refused: give the gateway only the public key.
// The key size is checked by New.
func LoadRSAPublicKeyPEM(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("jwtauth: no PEM block found in RSA public key data")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: cannot parse PKIX public key: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("jwtauth: PEM public key is %T, not RSA", k)
		}
		return rk, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: cannot parse PKCS #1 public key: %w", err)
		}
		return k, nil
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		return nil, fmt.Errorf("jwtauth: PEM block is a %s; the gateway needs only the public key", block.Type)
	default:
		return nil, fmt.Errorf(`jwtauth: PEM block type %q is not "PUBLIC KEY" or "RSA PUBLIC KEY"`, block.Type)
	}
}

// MintHS256 returns an HS256 token for user sub, issued now and expiring after ttl (no exp
// when ttl <= 0), with the claims in extra added; extra may override iat and exp (e.g. to
// mint an expired token) but not sub. secret must be at least 32 bytes, as
// New requires.
//
// MintHS256 is for tests, tools and tetherd -mint-token; production tokens come from the
// application's own auth service, and a gateway needs only to verify them.
func MintHS256(secret []byte, sub string, ttl time.Duration, extra map[string]any) (string, error) {
	if len(secret) < minHMACSecretLen {
		return "", fmt.Errorf("jwtauth: HS256 secret must be at least %d bytes, got %d", minHMACSecretLen, len(secret))
	}
	if sub == "" {
		return "", errors.New("jwtauth: cannot mint a token without sub")
	}
	now := time.Now()
	claims := jwt.MapClaims{"iat": now.Unix()}
	if ttl > 0 {
		claims["exp"] = now.Add(ttl).Unix()
	}
	maps.Copy(claims, extra)
	claims["sub"] = sub
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("jwtauth: cannot sign token: %w", err)
	}
	return s, nil
}
