// Package loglimit rate-limits log lines that an attacker can trigger at will (failed
// logins, wrong secrets, refused connections): the first few lines of each interval go
// to the logger, the rest are only counted, and one summary line per interval gives the
// counts by reason. What it trades away: the suppressed lines' details (remote address,
// error text) are lost; the counts are exact. Metrics, not logs, are where every event
// is counted.
//
// A Limiter holds no goroutine. A summary is written by the first line logged after its
// interval ended, or by a single time.AfterFunc timer armed when the interval first
// suppresses a line, so a flood that stops still gets its summary.
package loglimit

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Defaults for Options' zero values.
const (
	// DefaultBurst is how many lines pass per interval.
	DefaultBurst = 10
	// DefaultInterval is the length of an interval.
	DefaultInterval = 10 * time.Second
	// DefaultSummary is the summary line's message.
	DefaultSummary = "log lines suppressed"
)

// Options configures a Limiter. The zero value of every field keeps the default in its
// doc.
type Options struct {
	// Burst is how many lines pass per interval before the rest are counted. Default
	// DefaultBurst (10).
	Burst int
	// Interval is the length of an interval. Default DefaultInterval (10s).
	Interval time.Duration
	// Summary is the message of the summary line. Default DefaultSummary.
	Summary string
	// Level is the summary line's level. Default slog.LevelWarn.
	Level *slog.Level
	// Now is the clock; tests pass a made-up one. Default time.Now.
	Now func() time.Time
	// NoTimer disables the timer that writes a summary when a flood stops; summaries
	// then wait for the next line or Flush. For tests that drive Now.
	NoTimer bool
}

// Limiter passes the first Burst lines of each Interval to its logger and counts the
// others by reason. Its methods are safe for concurrent use; a suppressed line costs a
// mutex and a map increment, and allocates nothing once its reason was seen.
type Limiter struct {
	log      *slog.Logger
	burst    int
	interval time.Duration
	summary  string
	level    slog.Level
	now      func() time.Time
	noTimer  bool

	mu         sync.Mutex
	start      time.Time         // current interval's start; zero before the first line
	passed     int               // lines passed in the current interval
	suppressed map[string]uint64 // reason → lines suppressed in the current interval
	timer      *time.Timer       // armed while suppressed is non-empty
	closed     bool
}

// New returns a Limiter writing to log (slog.Default() if nil).
func New(log *slog.Logger, o Options) *Limiter {
	if log == nil {
		log = slog.Default()
	}
	l := &Limiter{log: log, burst: o.Burst, interval: o.Interval, summary: o.Summary,
		level: slog.LevelWarn, now: o.Now, noTimer: o.NoTimer, suppressed: map[string]uint64{}}
	if l.burst <= 0 {
		l.burst = DefaultBurst
	}
	if l.interval <= 0 {
		l.interval = DefaultInterval
	}
	if l.summary == "" {
		l.summary = DefaultSummary
	}
	if o.Level != nil {
		l.level = *o.Level
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Log writes msg with args at level unless this interval's burst is spent; then it only
// counts the line under reason (e.g. the close code's name), for the interval's summary.
func (l *Limiter) Log(level slog.Level, reason, msg string, args ...any) {
	if !l.Allow(reason) {
		return
	}
	l.log.Log(context.Background(), level, msg, args...)
}

// Allow reports whether a line for reason may be written now, and counts it under
// reason when not. Callers that build expensive arguments call Allow first and then log
// themselves.
func (l *Limiter) Allow(reason string) bool {
	now := l.now()
	l.mu.Lock()
	l.rollLocked(now)
	if l.passed < l.burst {
		l.passed++
		l.mu.Unlock()
		return true
	}
	l.suppressed[reason]++
	if l.timer == nil && !l.noTimer && !l.closed {
		l.timer = time.AfterFunc(l.start.Add(l.interval).Sub(now), l.onTimer)
	}
	l.mu.Unlock()
	return false
}

// Flush writes the summary of the lines suppressed so far, if any, and starts a new
// interval.
func (l *Limiter) Flush() {
	now := l.now()
	l.mu.Lock()
	l.flushLocked(now)
	l.start = now
	l.mu.Unlock()
}

// Close writes any pending summary and stops the timer; later lines are still limited
// but no timer is armed again.
func (l *Limiter) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.Flush()
}

// onTimer runs on the timer's goroutine when an interval that suppressed lines ends.
func (l *Limiter) onTimer() {
	now := l.now()
	l.mu.Lock()
	l.timer = nil
	l.rollLocked(now)
	l.mu.Unlock()
}

// rollLocked starts a new interval if the current one ended at now, writing the ended
// interval's summary.
func (l *Limiter) rollLocked(now time.Time) {
	if !l.start.IsZero() && now.Sub(l.start) < l.interval {
		return
	}
	l.flushLocked(now)
	l.start = now
}

// flushLocked writes the summary line and resets the interval's counts. Logging under
// the mutex keeps summaries in order; the logger must not call back into the Limiter.
func (l *Limiter) flushLocked(now time.Time) {
	l.passed = 0
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if len(l.suppressed) == 0 {
		return
	}
	reasons := make([]string, 0, len(l.suppressed))
	var total uint64
	for r, n := range l.suppressed {
		reasons = append(reasons, r)
		total += n
	}
	sort.Strings(reasons)
	by := make([]any, 0, len(reasons))
	for _, r := range reasons {
		by = append(by, slog.Uint64(r, l.suppressed[r]))
	}
	clear(l.suppressed)
	since := l.start
	l.log.Log(context.Background(), l.level, l.summary,
		slog.Uint64("suppressed", total), slog.Duration("over", now.Sub(since)), slog.Group("by_reason", by...))
}
