package loglimit_test

import (
	"log/slog"
	"os"
	"time"

	"github.com/tether-gw/tether/internal/loglimit"
)

// A flood of failed logins writes the first two lines, then one summary per interval.
func ExampleLimiter() {
	now := time.Unix(0, 0)
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // reproducible output
			}
			return a
		},
	}))
	l := loglimit.New(log, loglimit.Options{Burst: 2, Interval: 10 * time.Second, NoTimer: true,
		Now: func() time.Time { return now }})
	for i := 0; i < 1000; i++ {
		l.Log(slog.LevelInfo, "INVALID_TOKEN", "authentication failed", "n", i)
	}
	now = now.Add(10 * time.Second)
	l.Flush()
	// Output:
	// level=INFO msg="authentication failed" n=0
	// level=INFO msg="authentication failed" n=1
	// level=WARN msg="log lines suppressed" suppressed=998 over=10s by_reason.INVALID_TOKEN=998
}
