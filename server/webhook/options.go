package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Option defaults.
const (
	DefaultQueueSize   = 10000
	DefaultWorkers     = 4
	DefaultMaxAttempts = 6
	DefaultBackoffMin  = 500 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
	DefaultTimeout     = 5 * time.Second
)

// MinSecretLen is the shortest Options.Secret accepted: 16 bytes, 128 bits for a
// random secret.
const MinSecretLen = 16

// Options configures a Sender. The zero value of every field but URL and Secret keeps
// the default given in its doc; defaults and validation live in withDefaults.
type Options struct {
	// URL is where deliveries are POSTed (http or https). Required.
	URL string
	// Secret is the HMAC-SHA256 key of the Tether-Signature header, shared with the
	// receiver. Required, at least MinSecretLen bytes.
	Secret string
	// Events posts every online and offline event of this node's connections (acks
	// are never posted). Default false: a caller that wants only uplinks leaves it.
	Events bool
	// Routes lists the routes (exact names) whose uplinks (client SENDs) are posted
	// too. Default none.
	Routes []string
	// QueueSize bounds the deliveries waiting for a worker; beyond it the oldest is
	// dropped (see the package doc). Default 10000.
	QueueSize int
	// Workers is how many deliveries are posted (or wait out a backoff) at once.
	// Default 4.
	Workers int
	// MaxAttempts is how many times one delivery is tried in all before it is
	// counted failed. Default 6.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the wait before a retry: full jitter in
	// [0, min(BackoffMax, BackoffMin·2ⁿ)] after n+1 failed attempts. A Retry-After
	// header replaces the wait, capped at BackoffMax. Defaults 500ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// Timeout bounds one POST, from dialling to reading the answer's status.
	// Default 5s.
	Timeout time.Duration
	// Client sends the POSTs. Default an http.Client that does not follow redirects
	// (a 3xx fails the delivery: the signature is for the configured URL).
	Client *http.Client
	// Logger receives failed deliveries and (rate-limited) drops. Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock of the events' time and of the signatures' timestamps.
	// Default time.Now; tests set it.
	Now func() time.Time

	// wait sleeps d or until ctx is done (returning its error). Default a timer;
	// tests record the waits instead.
	wait func(ctx context.Context, d time.Duration) error
}

func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	if o.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("%w: %q", ErrNoURL, o.URL)
	}
	if len(o.Secret) < MinSecretLen {
		return o, fmt.Errorf("%w: %d bytes", ErrWeakSecret, len(o.Secret))
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffMin)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.QueueSize < 0 || o.Workers < 0 || o.MaxAttempts < 0 || o.BackoffMin < 0 || o.Timeout < 0 ||
		o.BackoffMax < o.BackoffMin {
		return o, fmt.Errorf("webhook: Options sizes and durations must not be negative (nor BackoffMax below BackoffMin)")
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.wait == nil {
		o.wait = sleep
	}
	return o, nil
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
