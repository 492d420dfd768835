package control

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/protocol"
)

// Option defaults.
const (
	DefaultAddr             = "127.0.0.1:7001"
	DefaultMaxFrame         = 1 << 20
	DefaultAuthTimeout      = 5 * time.Second
	DefaultUplinkTimeout    = 10 * time.Second
	DefaultMaxQueueBytes    = 4 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxServices      = 1024
	DefaultMaxSubscriptions = 1024

	DefaultMaxUnauthenticated = 64
	DefaultMaxAuthFailures    = 5
	DefaultAuthLockout        = time.Second
	DefaultAuthLockoutMax     = 5 * time.Minute
)

// MinSecretLen is the shortest Options.Secret accepted for a control port that is not
// on loopback: 16 bytes, which is 128 bits for a random secret and out of reach of a
// throttled online guesser even at 6 bits per byte.
const MinSecretLen = 16

// Options configures a Port. The zero value of every field keeps the default given in
// its doc; defaults and validation live in withDefaults.
type Options struct {
	// Addr is the control port's listen address. Default "127.0.0.1:7001". Services are
	// trusted: keep it on loopback or a private network.
	Addr string
	// Secret is the shared secret every control connection must present in AUTH.
	// Required unless Insecure is set; at least MinSecretLen bytes unless Addr is
	// loopback.
	Secret string
	// Insecure accepts AUTH with any secret. It is for development only: New refuses
	// it together with a Secret, and Start refuses it on a non-loopback address.
	Insecure bool
	// Logger receives the control port's logs. Default slog.Default().
	Logger *slog.Logger

	// MaxFrame is the largest frame (length field) accepted from an authenticated
	// service; a longer one closes the connection with FRAME_TOO_LARGE. Frames before
	// AUTH are capped at protocol.PreAuthMaxFrame. Default 1 MiB; at most
	// protocol.MaxFrameLimit.
	MaxFrame int
	// AuthTimeout is how long a new control connection has to send AUTH before it is
	// closed with AUTH_TIMEOUT. Default 5s.
	AuthTimeout time.Duration
	// UplinkTimeout is how long a client's SEND waits for the service's REPLY before
	// the client gets ERROR TIMEOUT. Default 10s.
	UplinkTimeout time.Duration
	// MaxQueueBytes bounds the bytes queued for one service connection. Uplinks to a
	// service whose queue is full go to another subscriber (or get ERROR BUSY), events
	// are dropped, and the service's own requests wait until its queue drains.
	// Default 4 MiB.
	MaxQueueBytes int
	// WriteTimeout is how long one write to a service may block, and how long its
	// queue may stay full, before the connection is closed as a slow consumer.
	// Default 10s.
	WriteTimeout time.Duration
	// MaxServices caps authenticated control connections; an AUTH beyond it is
	// answered CLOSE SERVER_FULL. Connections still authenticating are capped by
	// MaxUnauthenticated instead, so they cannot take a service's place. Default 1024.
	MaxServices int
	// MaxUnauthenticated caps control connections that have not yet authenticated.
	// A connection beyond it makes room by closing, with SERVER_FULL, the oldest
	// unauthenticated connection of the source address that holds the most of them,
	// so idle connections (and one flooding host) cannot lock a service out: a service
	// only needs its AUTH to arrive before MaxUnauthenticated newer connections from
	// its own address do. Default 64.
	MaxUnauthenticated int
	// MaxAuthFailures is how many failed AUTHs (wrong or missing secret) one source
	// address (IPv4 address or IPv6 /64) may make before it is locked out: its
	// connections are closed with RATE_LIMITED before AUTH for AuthLockout, doubling
	// with every further failure up to AuthLockoutMax. A successful AUTH, or 15
	// minutes without a failure, forgets the source. Negative disables the throttle.
	// Default 5.
	MaxAuthFailures int
	// AuthLockout is the first lock-out of a source that reached MaxAuthFailures.
	// Default 1s.
	AuthLockout time.Duration
	// AuthLockoutMax bounds the lock-out. Default 5m.
	AuthLockoutMax time.Duration

	// logInterval is the period of the rate-limited logs (failed AUTHs, accept
	// errors); tests shorten it. Default 10s.
	logInterval time.Duration
	// MaxSubscriptions caps the routes plus prefixes one control connection may
	// subscribe to. Default 1024.
	MaxSubscriptions int
	// Observer, when set, is told of this node's connection events and uplinks too
	// (e.g. a *webhook.Sender). Default none.
	Observer Observer
}

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	switch {
	case o.Secret == "" && !o.Insecure:
		return o, errors.New("control: Options.Secret is required (or Insecure, for development only)")
	case o.Secret != "" && o.Insecure:
		return o, errors.New("control: Options.Secret and Options.Insecure exclude each other")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.MaxFrame < protocol.PreAuthMaxFrame || o.MaxFrame > protocol.MaxFrameLimit {
		return o, fmt.Errorf("control: Options.MaxFrame %d outside [%d, %d]", o.MaxFrame, protocol.PreAuthMaxFrame, protocol.MaxFrameLimit)
	}
	if o.AuthTimeout == 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.UplinkTimeout == 0 {
		o.UplinkTimeout = DefaultUplinkTimeout
	}
	if o.MaxQueueBytes == 0 {
		o.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxServices == 0 {
		o.MaxServices = DefaultMaxServices
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.logInterval == 0 {
		o.logInterval = defaultLogInterval
	}
	if o.MaxUnauthenticated == 0 {
		o.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	if o.MaxAuthFailures == 0 {
		o.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if o.AuthLockout == 0 {
		o.AuthLockout = DefaultAuthLockout
	}
	if o.AuthLockoutMax == 0 {
		o.AuthLockoutMax = max(DefaultAuthLockoutMax, o.AuthLockout)
	}
	if o.AuthTimeout < 0 || o.UplinkTimeout < 0 || o.WriteTimeout < 0 || o.MaxQueueBytes < 0 ||
		o.MaxServices < 0 || o.MaxSubscriptions < 0 || o.MaxUnauthenticated < 0 || o.AuthLockout < 0 ||
		o.AuthLockoutMax < o.AuthLockout {
		return o, errors.New("control: Options durations and limits must not be negative (nor AuthLockoutMax below AuthLockout)")
	}
	if !o.Insecure && len(o.Secret) < MinSecretLen && !netutil.IsLoopback(o.Addr) {
		return o, fmt.Errorf("%w: %d bytes for %s", ErrWeakSecret, len(o.Secret), o.Addr)
	}
	return o, nil
}
