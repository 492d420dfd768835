package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
)

// fdExhausted counts accept failures for lack of file descriptors (EMFILE/ENFILE) in
// this process; netpoll reports them through its logger and retries with back-off.
var fdExhausted atomic.Uint64

// netpollLogger is the logger netpoll's lines go to: the first server's (netpoll's
// logger is process-wide).
var netpollLogger atomic.Pointer[slog.Logger]

// netpollLog turns netpoll's log lines into slog records. It counts the accept failures
// that mean the process ran out of file descriptors, and demotes the per-connection
// noise of peers resetting their connections to debug.
type netpollLog struct{}

// Write implements io.Writer for netpoll.SetLoggerOutput.
func (netpollLog) Write(p []byte) (int, error) {
	l := netpollLogger.Load()
	if l == nil {
		l = slog.Default()
	}
	line := string(bytes.TrimSpace(p))
	switch {
	case bytes.Contains(p, []byte("too many open files")):
		fdExhausted.Add(1)
		l.Warn("out of file descriptors: accepting is paused and retried with back-off; raise the open-files limit or spread load over more processes", "netpoll", line)
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
