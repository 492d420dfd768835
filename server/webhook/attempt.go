package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tether-gw/tether/internal/backoff"
)

// outcome is what one POST's answer means for its delivery.
type outcome int

const (
	delivered outcome = iota // 2xx
	retry                    // network error, timeout, 5xx, 429
	rejected                 // any other status: retrying would not help
)

// deliver posts d until it is delivered, rejected, out of attempts, or Close gives up.
func (s *Sender) deliver(d *delivery) {
	policy := backoff.Policy{Min: s.opts.BackoffMin, Max: s.opts.BackoffMax}
	for attempt := 1; ; attempt++ {
		res, wait, why := s.post(d)
		switch {
		case res == delivered:
			s.m.ok.Inc()
			return
		case res == rejected || attempt >= s.opts.MaxAttempts:
			s.failed(d, attempt, why)
			return
		}
		if wait < 0 { // no Retry-After
			wait = policy.Delay(attempt - 1)
		}
		if s.opts.wait(s.ctx, min(wait, s.opts.BackoffMax)) != nil {
			s.failed(d, attempt, "closed while waiting to retry")
			return
		}
		s.m.retried.Inc()
	}
}

// failed counts and logs (rate-limited) a delivery that will not be tried again.
func (s *Sender) failed(d *delivery, attempts int, why string) {
	s.m.failed.Inc()
	s.logs.Log(slog.LevelWarn, "failed", "webhook: delivery failed", "id", d.id, "attempts", attempts, "last", why, "url", s.opts.URL)
}

// post makes one attempt. For a retry it returns the Retry-After wait the receiver
// asked for, or -1; why describes a failure for the log.
func (s *Sender) post(d *delivery) (res outcome, wait time.Duration, why string) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(d.body))
	if err != nil {
		return rejected, -1, err.Error()
	}
	ts := s.opts.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tether-webhook/1")
	req.Header.Set(HeaderID, d.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(s.opts.Secret, ts, d.body))
	start := time.Now()
	resp, err := s.opts.Client.Do(req)
	s.m.latency.UpdateDuration(start)
	if err != nil {
		return retry, -1, err.Error()
	}
	// Read a little of the body so the connection can be reused; bounded, since the
	// receiver is not trusted to be small.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	why = fmt.Sprintf("HTTP %d", resp.StatusCode)
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return delivered, 0, ""
	case c == http.StatusTooManyRequests || c >= 500:
		return retry, retryAfter(resp.Header.Get("Retry-After"), s.opts.Now()), why
	}
	return rejected, -1, why
}

// retryAfter parses a Retry-After header (delay-seconds or an HTTP date, RFC 9110
// §10.2.3) into a wait from now; -1 when absent or malformed.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return -1
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return -1
}
