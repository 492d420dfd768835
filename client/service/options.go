package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Option defaults.
const (
	DefaultDialTimeout          = 5 * time.Second
	DefaultRequestTimeout       = 10 * time.Second
	DefaultWriteTimeout         = 10 * time.Second
	DefaultMaxConcurrentUplinks = 64
	DefaultBackoffMin           = 100 * time.Millisecond
	DefaultBackoffMax           = 5 * time.Second
	DefaultStableAfter          = 10 * time.Second
)

// Options configures a Service. The zero value of every field keeps the default given
// in its doc; defaults live in withDefaults.
type Options struct {
	// Secret is the control port's shared secret.
	Secret string
	// Name names this service in the gateway's logs. Default "".
	Name string
	// Logger receives the SDK's logs. Default: discard.
	Logger *slog.Logger

	// DialTimeout bounds each TCP connect and AUTH exchange. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds every request, including the wait for a connection while
	// reconnecting; a shorter deadline on the caller's context wins. Default 10s.
	RequestTimeout time.Duration
	// WriteTimeout bounds each write to the socket; a write that does not finish in
	// time drops the connection. Default 10s.
	WriteTimeout time.Duration

	// OnUplink receives the clients' messages on the routes this service subscribed
	// to. It runs on a goroutine of its own and must answer each uplink with
	// Uplink.Reply or Uplink.Fail (unless Uplink.NoReply), from any goroutine; an
	// unanswered uplink times out at the gateway and the client gets ERROR TIMEOUT.
	// Required to subscribe to routes or prefixes.
	OnUplink func(*Uplink)
	// MaxConcurrentUplinks caps OnUplink calls running at once; beyond it the SDK
	// stops reading, the gateway's queue for this service fills, and new uplinks go
	// to other services or are answered BUSY. Default 64.
	MaxConcurrentUplinks int
	// OnEvent receives connection events (after Subscribe with Events) on the reading
	// goroutine, in order. It must not block for long. Default: events are dropped.
	OnEvent func(Event)

	// Reconnect re-establishes a lost connection with backoff and subscribes again to
	// what was subscribed. Default false: a lost connection ends the Service (Done).
	Reconnect bool
	// BackoffMin and BackoffMax bound the jittered exponential backoff between
	// reconnect attempts: after n consecutive failed attempts the Service waits
	// a random duration in [0, min(BackoffMax, BackoffMin·2ⁿ)] ("full jitter").
	// Defaults 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
	// StableAfter is how long a connection must stay authenticated for the
	// backoff to start over. A connection lost sooner after its AUTH result,
	// whatever the reason, counts as a failed attempt, like a failed dial, so a
	// gateway that keeps closing fresh connections is redialled ever more
	// slowly. Default 10s.
	StableAfter time.Duration

	// Test hooks of the reconnect loop, set before Dial: randN replaces the
	// backoff's jitter source (uniform in [0, n)), now replaces time.Now for
	// measuring how long a connection stayed up, and onWait is told of every
	// reconnect wait and the count of failed attempts it was drawn for.
	randN  func(n int64) int64
	now    func() time.Time
	onWait func(wait time.Duration, failures int)

	// MaxFrame is the largest frame accepted from the gateway. Default
	// protocol.MaxFrameLimit.
	MaxFrame int
	// Dialer opens the TCP connection. Default: a net.Dialer.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
}

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxConcurrentUplinks == 0 {
		o.MaxConcurrentUplinks = DefaultMaxConcurrentUplinks
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.StableAfter == 0 {
		o.StableAfter = DefaultStableAfter
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = protocol.MaxFrameLimit
	}
	if o.Dialer == nil {
		d := &net.Dialer{}
		o.Dialer = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if o.DialTimeout < 0 || o.RequestTimeout < 0 || o.WriteTimeout < 0 || o.MaxConcurrentUplinks < 0 ||
		o.BackoffMin < 0 || o.BackoffMax < o.BackoffMin || o.StableAfter < 0 {
		return o, errors.New("service: negative timeout or limit, or BackoffMax below BackoffMin")
	}
	return o, nil
}
