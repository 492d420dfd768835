package httpapi

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/server/control"
)

// Option defaults.
const (
	DefaultAddr         = "127.0.0.1:7004"
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxBatch     = 1000
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultIdleTimeout  = 2 * time.Minute
)

// MinKeyLen is the shortest Options.Key accepted off loopback, the control port's
// control.MinSecretLen for the same reason.
const MinKeyLen = control.MinSecretLen

// Options configures an API. The zero value of every field keeps the default given in
// its doc; defaults and validation live in withDefaults.
type Options struct {
	// Addr is the listen address. Default "127.0.0.1:7004". Services are trusted: keep
	// it on loopback or a private network.
	Addr string
	// Key is the API key every request but /v1/healthz must present as
	// "Authorization: Bearer <Key>". Required unless Insecure; at least MinKeyLen bytes
	// unless Addr is loopback.
	Key string
	// Insecure accepts requests without a key (or with any). It is for development
	// only: New refuses it together with a Key, and on a non-loopback address.
	Insecure bool
	// TLSConfig, with a certificate (Certificates or GetCertificate), serves HTTPS:
	// HTTP/2 and HTTP/1.1 negotiated by ALPN. Nil serves cleartext HTTP/1.1 and h2c
	// (HTTP/2 with prior knowledge).
	TLSConfig *tls.Config
	// Logger receives the API's logs. Default slog.Default().
	Logger *slog.Logger

	// MaxBodyBytes bounds a request body; a longer one is answered 413. Default 4 MiB.
	MaxBodyBytes int64
	// MaxBatch bounds the pushes of one /v1/push/batch request. Default 1000.
	MaxBatch int

	// MaxAuthFailures is how many wrong keys one source (IPv4 address or IPv6 /64) may
	// present before it is locked out for AuthLockout (429), doubling per further
	// failure up to AuthLockoutMax; a right key forgets the source. Negative disables
	// the lock-out. Default control.DefaultMaxAuthFailures (5).
	MaxAuthFailures int
	// AuthLockout is the first lock-out. Default control.DefaultAuthLockout (1s).
	AuthLockout time.Duration
	// AuthLockoutMax bounds the lock-out. Default control.DefaultAuthLockoutMax (5m).
	AuthLockoutMax time.Duration

	// ReadTimeout bounds reading a request, headers and body. Default 30s; headers
	// alone have a tenth of it.
	ReadTimeout time.Duration
	// WriteTimeout bounds handling a request and writing its response. Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. Default 2m.
	IdleTimeout time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	switch {
	case o.Key == "" && !o.Insecure:
		return o, errors.New("httpapi: Options.Key is required (or Insecure, for development only)")
	case o.Key != "" && o.Insecure:
		return o, errors.New("httpapi: Options.Key and Options.Insecure exclude each other")
	case o.Insecure && !netutil.IsLoopback(o.Addr):
		return o, fmt.Errorf("%w: %s", ErrInsecureAddr, o.Addr)
	case !o.Insecure && len(o.Key) < MinKeyLen && !netutil.IsLoopback(o.Addr):
		return o, fmt.Errorf("%w: %d bytes for %s", ErrWeakKey, len(o.Key), o.Addr)
	}
	if o.TLSConfig != nil && len(o.TLSConfig.Certificates) == 0 && o.TLSConfig.GetCertificate == nil {
		return o, errors.New("httpapi: Options.TLSConfig has no certificate")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxAuthFailures == 0 {
		o.MaxAuthFailures = control.DefaultMaxAuthFailures
	}
	if o.AuthLockout == 0 {
		o.AuthLockout = control.DefaultAuthLockout
	}
	if o.AuthLockoutMax == 0 {
		o.AuthLockoutMax = max(control.DefaultAuthLockoutMax, o.AuthLockout)
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxBodyBytes < 0 || o.MaxBatch < 0 || o.AuthLockout < 0 || o.AuthLockoutMax < o.AuthLockout ||
		o.ReadTimeout < 0 || o.WriteTimeout < 0 || o.IdleTimeout < 0 {
		return o, errors.New("httpapi: Options durations and limits must not be negative (nor AuthLockoutMax below AuthLockout)")
	}
	return o, nil
}
