package client

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// Options configures a Client. The zero value of every field keeps the default
// given in its doc; defaults and validation live in Options.withDefaults.
type Options struct {
	// Token is the credential sent in HELLO. Ignored when TokenFunc is set.
	Token string
	// TokenFunc, when set, is called before every connection attempt (the first
	// one and each reconnect) with the attempt's context, so an application can
	// refresh an expiring token. An error fails that attempt: Dial returns it,
	// and a reconnect counts it as a failed attempt and backs off.
	//
	// When the server announces the token's expiry (AUTH_OK token_expires_ms),
	// the client also calls TokenFunc on the live connection once 80% of the
	// token's lifetime has passed and sends the result in a REFRESH, so the
	// connection outlives the token (PROTOCOL.md §6.12); after a failure (an
	// error from TokenFunc, or the server refusing the token) it tries again
	// every quarter of the time left, at least 200ms apart, until the expiry.
	// Each attempt runs on a goroutine of its own, bounded by RequestTimeout.
	// If no refresh succeeds, the server closes the connection with
	// SESSION_EXPIRED and the client reconnects, calling TokenFunc again.
	TokenFunc func(ctx context.Context) (string, error)
	// NoRefresh turns off the refresh on a live connection described at
	// TokenFunc: a connection then ends at its token's expiry and the client
	// reconnects with a fresh token. Default false.
	NoRefresh bool
	// DeviceID identifies the device or installation; the server's multi-device
	// policy keys on it, and so does QoS1: the server redelivers to the next
	// connection of a device what the device did not acknowledge, even when
	// that connection carries no resume cursor (PROTOCOL.md §11). Keep it
	// stable across restarts. Default "": each connection stands alone.
	DeviceID string
	// Platform names the client platform, e.g. "ios", "android", "web".
	// Default "go".
	Platform string
	// ClientVersion is the application's version, for the server's logs and
	// policy. Default "".
	ClientVersion string

	// ResumeEpoch and ResumeLastID seed the resume cursor that the first
	// HELLO carries, for an application that saved Client.Cursor before it
	// last exited. Default 0, 0: no resume requested.
	ResumeEpoch  uint64
	ResumeLastID uint64

	// DialTimeout bounds the TCP connect of each attempt. Default 5s.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the wait for AUTH_OK or AUTH_FAIL after the TCP
	// connect. Default 10s.
	HandshakeTimeout time.Duration
	// RequestTimeout bounds Send, Subscribe, Unsubscribe and Ping, including
	// the time spent waiting for a connection while reconnecting; a shorter
	// deadline on the caller's context wins. Default 10s.
	RequestTimeout time.Duration
	// WriteTimeout bounds each write to the socket; a write that does not
	// finish in time closes the connection. Default 10s.
	WriteTimeout time.Duration

	// NoReconnect disables reconnecting: once the first connection ends, the
	// client moves to StateClosed. Default false: after the first successful
	// connect (Dial), a lost connection is re-established with backoff unless
	// it ended with a terminal code (3500–3999).
	NoReconnect bool
	// BackoffMin is the base of the exponential backoff between reconnect
	// attempts: after n consecutive failed attempts the client sleeps a random
	// duration in [0, min(BackoffMax, BackoffMin·2ⁿ)] ("full jitter"). An
	// attempt fails when it does not reach AUTH_OK, or when its connection
	// ends within StableAfter of AUTH_OK. After a GOAWAY the client waits its
	// retry-after instead, or the backoff if that is longer and the connection
	// it ended counts as failed. Default 250ms.
	BackoffMin time.Duration
	// BackoffMax caps the backoff. Default 30s.
	BackoffMax time.Duration
	// StableAfter is how long a connection must stay authenticated for the
	// backoff to start over. A connection that ends sooner after its AUTH_OK,
	// whatever the code (and also after a GOAWAY), counts as a failed attempt:
	// n grows, so a server or a second login that keeps closing a fresh
	// connection is redialled ever more slowly instead of at full speed.
	// Default 10s.
	StableAfter time.Duration

	// OnPush, when set, receives every push synchronously on the read
	// goroutine; nothing more is read until it returns, so it must not block
	// for long, and must not wait for a request's answer, which this same
	// goroutine reads (see the package doc). Push.Payload is the callee's to
	// keep.
	// When OnPush is set, Pushes returns nil. Default nil: pushes go to the
	// Pushes channel.
	OnPush func(Push)
	// PushBuffer is the capacity of the Pushes channel. When it is full the
	// read goroutine blocks, which back-pressures the TCP stream. Ignored when
	// OnPush is set. Default 1024.
	PushBuffer int
	// OnStateChange, when set, is told of every state transition with the
	// error that caused it (nil for Connecting and Connected, and for Closed
	// after Close). It runs on the goroutine making the transition (see the
	// package doc), must not block, and must not call Close or wait for a
	// request's answer.
	OnStateChange func(State, error)

	// Logger receives the client's logs (connects, disconnects, protocol
	// oddities). Default: discard.
	Logger *slog.Logger
	// TLS, when set, makes the connection TLS (the gateway's TLS listener,
	// tetherd -tls-addr): the default Dialer completes a TLS handshake with this
	// configuration after the TCP connect. Set ServerName (or it is taken from
	// the address), RootCAs for a private CA, Certificates for a device
	// certificate (mTLS). Default nil: plain TCP.
	TLS *tls.Config
	// Dialer opens the connection, ready to carry frames (any handshake done);
	// tests use it to count or fail dials. Default: a net.Dialer dialing "tcp",
	// then TLS when TLS is set.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)

	// Test hooks, set before Dial starts the client's goroutine. randN, when
	// set, replaces the backoff's jitter source (uniform in [0, n)); now
	// replaces time.Now for measuring how long a connection stayed up; onWait
	// is told, on the read goroutine, of every reconnect wait and the count of
	// failed attempts it was drawn for.
	randN  func(n int64) int64
	now    func() time.Time
	onWait func(wait time.Duration, failures int)
}

// Option defaults.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRequestTimeout   = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultBackoffMin       = 250 * time.Millisecond
	DefaultBackoffMax       = 30 * time.Second
	DefaultStableAfter      = 10 * time.Second
	DefaultPushBuffer       = 1024
	DefaultPlatform         = "go"
)

// withDefaults returns a copy of o with every zero field set to its default,
// or an error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&o.DialTimeout, DefaultDialTimeout)
	setDur(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&o.RequestTimeout, DefaultRequestTimeout)
	setDur(&o.WriteTimeout, DefaultWriteTimeout)
	setDur(&o.BackoffMin, DefaultBackoffMin)
	setDur(&o.BackoffMax, DefaultBackoffMax)
	setDur(&o.StableAfter, DefaultStableAfter)
	if o.PushBuffer == 0 {
		o.PushBuffer = DefaultPushBuffer
	}
	if o.Platform == "" {
		o.Platform = DefaultPlatform
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.Dialer == nil {
		var d net.Dialer
		o.Dialer = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
		if o.TLS != nil {
			td := tls.Dialer{Config: o.TLS}
			o.Dialer = func(ctx context.Context, addr string) (net.Conn, error) {
				return td.DialContext(ctx, "tcp", addr)
			}
		}
	}
	switch {
	case o.DialTimeout < 0, o.HandshakeTimeout < 0, o.RequestTimeout < 0, o.WriteTimeout < 0, o.StableAfter < 0:
		return o, errors.New("client: timeouts and StableAfter must not be negative")
	case o.BackoffMin < 0 || o.BackoffMax < o.BackoffMin:
		return o, errors.New("client: need 0 <= BackoffMin <= BackoffMax")
	case o.PushBuffer < 0:
		return o, errors.New("client: PushBuffer must not be negative")
	}
	for _, f := range []struct{ name, v string }{
		{"Token", o.Token}, {"DeviceID", o.DeviceID}, {"Platform", o.Platform}, {"ClientVersion", o.ClientVersion},
	} {
		if len(f.v) > protocol.MaxStringLen {
			return o, errors.New("client: " + f.name + " longer than 65535 bytes")
		}
	}
	return o, nil
}
