package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/tether-gw/tether/internal/loglimit"
)

// fdExhausted counts accept failures for lack of file descriptors (EMFILE/ENFILE) in
// this process; netpoll reports them through its logger and retries with back-off.
var fdExhausted atomic.Uint64

// netpollLogger is the logger netpoll's lines go to: the first server's (netpoll's
// logger is process-wide).
var netpollLogger atomic.Pointer[slog.Logger]

// logFor returns the logger of process-wide conditions: the first server's.
func logFor() *slog.Logger {
	if l := netpollLogger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// fdLimiter rate-limits the out-of-descriptors lines, which come once per refused
// client or accept retry for as long as the condition lasts.
var fdLimiter = sync.OnceValue(func() *loglimit.Limiter {
	return loglimit.New(logFor(), loglimit.Options{
		Summary: "out-of-file-descriptor lines not logged (rate-limited; tether_accept_fd_exhausted_total counts every one)",
	})
})

// netpollLog turns netpoll's log lines into slog records. It counts the accept failures
// that mean the process ran out of file descriptors (when the spare descriptor
// of internal/fdreserve could not answer them), and demotes the per-connection noise of
// peers resetting their connections to debug.
type netpollLog struct{}

// Write implements io.Writer for netpoll.SetLoggerOutput.
func (netpollLog) Write(p []byte) (int, error) {
	l := logFor()
	line := string(bytes.TrimSpace(p))
	switch {
	case bytes.Contains(p, []byte("too many open files")):
		fdExhausted.Add(1)
		if fdLimiter().Allow("accept_paused") {
			l.Warn("out of file descriptors: accepting is paused and retried with back-off; raise the open-files limit or spread load over more processes", "netpoll", line)
		}
	case bytes.Contains(p, []byte("reset by peer")), bytes.Contains(p, []byte("broken pipe")):
		l.Debug("netpoll", "msg", line)
	default:
		l.Warn("netpoll", "msg", line)
	}
	return len(p), nil
}

// antsLogger routes the worker pool's logs to slog.
type antsLogger struct{ l *slog.Logger }

// Printf implements ants.Logger.
func (a antsLogger) Printf(format string, args ...any) { a.l.Warn(fmt.Sprintf(format, args...)) }

// fastrandn returns a random number in [0, n).
func fastrandn(n uint64) uint64 { return rand.Uint64N(n) }
