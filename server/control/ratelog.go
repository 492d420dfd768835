package control

import (
	"sync"
	"time"
)

// logLimit rate-limits a kind of log line that an attacker can cause at will (failed
// AUTHs, accept errors): the first burst lines of every interval are logged, the rest
// are counted, and the count is logged once at the end of the interval in which lines
// were suppressed. Metrics count every occurrence; this only bounds the log. The core
// (admit, takeSuppressed) takes now explicitly for tests. Safe for concurrent use.
type logLimit struct {
	interval time.Duration
	burst    int
	// summary logs the number of lines suppressed in the last interval; it runs on
	// a timer goroutine.
	summary func(suppressed int)

	mu         sync.Mutex
	start      time.Time // of the current interval
	n          int       // lines seen in the current interval
	suppressed int       // lines suppressed since the last summary
	armed      bool      // a summary timer is pending
}

// admit reports whether a line at now may be logged. When it may not, the line is
// counted, and arm is true for the first suppressed line since the last summary: the
// caller then schedules takeSuppressed (allow does).
func (l *logLimit) admit(now time.Time) (ok, arm bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.interval {
		l.start, l.n = now, 0
	}
	l.n++
	if l.n <= l.burst {
		return true, false
	}
	l.suppressed++
	if l.armed {
		return false, false
	}
	l.armed = true
	return false, true
}

// takeSuppressed returns and resets the count of suppressed lines.
func (l *logLimit) takeSuppressed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed, l.armed = 0, false
	return n
}

// allow reports whether a line may be logged now, and schedules the summary of the
// interval when it starts suppressing.
func (l *logLimit) allow() bool {
	ok, arm := l.admit(time.Now())
	if arm {
		time.AfterFunc(l.interval, func() {
			if n := l.takeSuppressed(); n > 0 {
				l.summary(n)
			}
		})
	}
	return ok
}
