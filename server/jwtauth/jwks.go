package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// ErrUnknownKey is wrapped by the error of a token whose kid is not in the JWK Set, even
// after the refetch it was allowed (or not allowed, by the rate limit) to cause. It maps
// to CloseInvalidToken with the reason "unknown signing key".
var ErrUnknownKey = errors.New("jwtauth: unknown signing key")

// ErrJWKSFetch is wrapped by New's error when the first fetch of the JWK Set fails or
// yields no usable key (and Config.JWKSAllowUnreachable is not set).
var ErrJWKSFetch = errors.New("jwtauth: cannot fetch the JWK Set")

// maxJWKSBytes bounds a JWK Set response. A real set is a few kilobytes (Google's and
// Auth0's hold two or three keys); the cap keeps a broken or hostile endpoint from
// making the gateway decode an unbounded body.
const maxJWKSBytes = 1 << 20

// jwksAlgs are the algorithms a JWKS-mode Authenticator can be configured to accept, each
// with the check its key must pass. HS* are absent on purpose: a JWK Set is public, and an
// HMAC "key" taken from it would let anyone sign. "none" is never accepted.
var jwksAlgs = map[string]func(key any) error{
	"RS256": rsaKey, "RS384": rsaKey, "RS512": rsaKey,
	"PS256": rsaKey, "PS384": rsaKey, "PS512": rsaKey,
	"ES256": ecKey(elliptic.P256()), "ES384": ecKey(elliptic.P384()), "ES512": ecKey(elliptic.P521()),
	"EdDSA": edKey,
}

// defaultJWKSAlgs is Config.Algorithms' default in JWKS mode.
var defaultJWKSAlgs = []string{"RS256", "ES256", "EdDSA"}

func rsaKey(key any) error {
	k, ok := key.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("jwtauth: key is %T, not RSA", key)
	}
	if n := k.N.BitLen(); n < minRSABits {
		return fmt.Errorf("jwtauth: RSA key is %d bits, need %d", n, minRSABits)
	}
	return nil
}

func ecKey(c elliptic.Curve) func(any) error {
	return func(key any) error {
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("jwtauth: key is %T, not ECDSA", key)
		}
		if k.Curve != c {
			return fmt.Errorf("jwtauth: ECDSA key is on %s, want %s", k.Curve.Params().Name, c.Params().Name)
		}
		return nil
	}
}

func edKey(key any) error {
	if _, ok := key.(ed25519.PublicKey); !ok {
		return fmt.Errorf("jwtauth: key is %T, not Ed25519", key)
	}
	return nil
}

// keySource is the JWKS mode's source of verification keys: a cached copy of the
// provider's JWK Set, refetched every Config.JWKSRefresh by jwkset's goroutine and, when
// a token names a kid the cache lacks, at most once per Config.JWKSUnknownKIDInterval.
//
// The refetch on an unknown kid is gated here rather than by jwkset's own limiter, which
// makes every reader wait for a token: under a flood of made-up kids that would park the
// server's auth workers. Here a reader either starts the refetch (the limiter allows one,
// checked against Config.Now), waits for the one in flight and then reads the cache, or
// is refused at once with ErrUnknownKey. A failed fetch keeps the cached keys.
//
// A keySource is safe for concurrent use; mu guards only inflight.
type keySource struct {
	cache     jwkset.Storage // the cached set; reads never fetch
	refetcher jwkset.Storage // over cache: a KeyRead miss fetches the set once
	kf        keyfunc.Keyfunc
	check     map[string]func(any) error // per accepted alg
	limiter   *rate.Limiter              // nil: never refetch on an unknown kid
	now       func() time.Time
	timeout   time.Duration
	logger    *slog.Logger
	ctx       context.Context // ends with Close: the refresh goroutine and any fetch
	cancel    context.CancelFunc
	started   atomic.Bool // New has returned: fetch errors are logged, not returned

	mu       sync.Mutex
	inflight chan struct{} // closed when the refetch in flight ends; nil when none
	waiting  atomic.Int32  // callers waiting for inflight (read by tests)
}

// newKeySource fetches the set once, within cfg.JWKSTimeout, and starts the periodic
// refresh. cfg has been through setDefaults.
func newKeySource(cfg *Config) (*keySource, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ks := &keySource{
		check:   make(map[string]func(any) error, len(cfg.Algorithms)),
		now:     cfg.Now,
		timeout: cfg.JWKSTimeout,
		logger:  cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
	}
	for _, alg := range cfg.Algorithms {
		ks.check[alg] = jwksAlgs[alg]
	}
	if cfg.JWKSUnknownKIDInterval > 0 {
		ks.limiter = rate.NewLimiter(rate.Every(cfg.JWKSUnknownKIDInterval), 1)
	}
	client := *cfg.HTTPClient
	client.Transport = limitedTransport{base: client.Transport}
	refresh := cfg.JWKSRefresh
	if refresh < 0 {
		refresh = 0 // jwkset: no refresh goroutine
	}
	firstErr := make(chan error, 1)
	cache, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    &client,
		Ctx:                       ctx,
		HTTPTimeout:               cfg.JWKSTimeout,
		NoErrorReturnFirstHTTPReq: true, // the first error is judged below, with the key count
		RefreshInterval:           refresh,
		RefreshErrorHandler: func(_ context.Context, err error) {
			if !ks.started.Load() {
				select {
				case firstErr <- err:
				default:
				}
				return
			}
			ks.logger.Warn("jwtauth: JWK Set refresh failed; the cached keys stay in use", "url", cfg.JWKSURL, "err", err)
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w from %s: %w", ErrJWKSFetch, cfg.JWKSURL, err)
	}
	ks.cache = cache
	ks.refetcher, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{cfg.JWKSURL: cache},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1), // the gate is refetch's
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwtauth: cannot build the JWK Set client: %w", err)
	}
	ks.kf, err = keyfunc.New(keyfunc.Options{
		Ctx:     ctx,
		Storage: gatedStorage{Storage: cache, ks: ks},
		// A key marked for encryption never verifies a signature; most sets omit "use".
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwtauth: cannot build the key function: %w", err)
	}
	if keys, _ := cache.KeyReadAll(ctx); len(keys) == 0 {
		err := fmt.Errorf("%w from %s: the set has no usable key", ErrJWKSFetch, cfg.JWKSURL)
		select {
		case ferr := <-firstErr:
			err = fmt.Errorf("%w from %s: %w", ErrJWKSFetch, cfg.JWKSURL, ferr)
		default:
		}
		if !cfg.JWKSAllowUnreachable {
			cancel()
			return nil, err
		}
		ks.logger.Warn("jwtauth: starting without keys; tokens are refused until a fetch succeeds", "err", err)
	}
	ks.started.Store(true)
	return ks, nil
}

// close stops the refresh goroutine and cancels a fetch in flight.
func (ks *keySource) close() { ks.cancel() }

// keyFunc returns the jwt.Keyfunc for one Authenticate call. The parser has already
// checked the header's alg against Config.Algorithms; keyfunc checks it against the
// key's own alg, when the set gives one; this checks the key's type and size against
// the alg, so that an RSA key cannot be used for ES256 or an ECDSA P-384 key for ES256.
func (ks *keySource) keyFunc(ctx context.Context) jwt.Keyfunc {
	inner := ks.kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		key, err := inner(t)
		if err != nil {
			return nil, err
		}
		check := ks.check[t.Method.Alg()]
		if check == nil { // BUG: the parser's WithValidMethods let it through
			return nil, fmt.Errorf("jwtauth: unexpected signing method %s", t.Method.Alg())
		}
		set, ok := key.(jwt.VerificationKeySet)
		if !ok {
			if err := check(key); err != nil {
				return nil, fmt.Errorf("jwtauth: key does not fit %s: %w", t.Method.Alg(), err)
			}
			return key, nil
		}
		// No kid in the header: every key of the right type is tried.
		var fit jwt.VerificationKeySet
		for _, k := range set.Keys {
			if check(k) == nil {
				fit.Keys = append(fit.Keys, k)
			}
		}
		if len(fit.Keys) == 0 {
			return nil, fmt.Errorf("%w: no key in the set fits %s", ErrUnknownKey, t.Method.Alg())
		}
		return fit, nil
	}
}

// refetch fetches the set for a kid the cache lacks ("" for a token without kid meeting
// an empty cache), unless the rate limit forbids it, and returns what the cache then
// holds for kid: found, ErrUnknownKey, or ctx's error. Only one fetch runs at a time;
// readers arriving meanwhile wait for it instead of being refused.
func (ks *keySource) refetch(ctx context.Context, kid string) error {
	ks.mu.Lock()
	ch := ks.inflight
	if ch == nil {
		if ks.limiter == nil || !ks.limiter.AllowN(ks.now(), 1) {
			ks.mu.Unlock()
			return fmt.Errorf("%w %q (refetch rate-limited)", ErrUnknownKey, kid)
		}
		ch = make(chan struct{})
		ks.inflight = ch
		ks.mu.Unlock()
		ks.fetch(kid)
		ks.mu.Lock()
		ks.inflight = nil
		ks.mu.Unlock()
		close(ch)
		return nil
	}
	ks.mu.Unlock()
	ks.waiting.Add(1)
	defer ks.waiting.Add(-1)
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch refetches the set, on the key source's context rather than a caller's, so that
// one client giving up does not fail the fetch the others wait for. Errors go to the
// RefreshErrorHandler (logged); the cache keeps its keys.
func (ks *keySource) fetch(kid string) {
	ctx, cancel := context.WithTimeout(ks.ctx, ks.timeout)
	defer cancel()
	_, _ = ks.refetcher.KeyRead(ctx, kid) // the result is read from the cache by the caller
}

// gatedStorage is the storage keyfunc reads: the cache, with a miss sent through
// keySource.refetch.
type gatedStorage struct {
	jwkset.Storage
	ks *keySource
}

// KeyRead reads kid from the cache, refetching the set once when it is missing.
func (g gatedStorage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	k, err := g.Storage.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return k, err
	}
	if err := g.ks.refetch(ctx, kid); err != nil {
		return jwkset.JWK{}, err
	}
	k, err = g.Storage.KeyRead(ctx, kid)
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwkset.JWK{}, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	return k, err
}

// KeyReadAll reads every cached key (for a token without kid), refetching once when the
// cache is empty: that happens only when the first fetch failed under
// Config.JWKSAllowUnreachable.
func (g gatedStorage) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	keys, err := g.Storage.KeyReadAll(ctx)
	if err != nil || len(keys) > 0 {
		return keys, err
	}
	if err := g.ks.refetch(ctx, ""); err != nil {
		return nil, err
	}
	return g.Storage.KeyReadAll(ctx)
}

// limitedTransport caps response bodies at maxJWKSBytes.
type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: maxJWKSBytes}
	return resp, nil
}

// limitedBody fails a read past its limit instead of truncating silently, so a cut-off
// set is a decode error rather than a set missing its last keys.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("jwtauth: JWK Set response larger than %d bytes", maxJWKSBytes)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		return n, err
	}
	if b.left <= 0 && err == nil {
		// Probe for EOF so that a body of exactly the limit is not an error.
		var one [1]byte
		if m, _ := b.rc.Read(one[:]); m == 0 {
			return n, io.EOF
		}
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// checkJWKSURL accepts https URLs, and http ones only to a loopback host: a set fetched
// in the clear lets anyone on the path sign tokens.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwtauth: JWKSURL: %w", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("jwtauth: JWKSURL %q: http is allowed only to a loopback host; use https", raw)
		}
	default:
		return fmt.Errorf("jwtauth: JWKSURL %q: scheme must be https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("jwtauth: JWKSURL %q has no host", raw)
	}
	return nil
}
