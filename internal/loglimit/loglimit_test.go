package loglimit

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
)

// logLines returns the lines written to buf so far.
func logLines(buf *testkit.LockedBuffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func newTestLimiter(burst int, interval time.Duration, now *time.Time) (*Limiter, *testkit.LockedBuffer) {
	var buf testkit.LockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	return New(log, Options{Burst: burst, Interval: interval, NoTimer: true,
		Now: func() time.Time { return *now }}), &buf
}

// TestFloodIsBounded: a flood of n lines per interval writes burst lines plus one
// summary per interval, and the summaries' counts add up to what was suppressed, per
// reason.
func TestFloodIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l, buf := newTestLimiter(3, 10*time.Second, &now)
	const intervals, perInterval = 5, 10_000
	for i := 0; i < intervals; i++ {
		for j := 0; j < perInterval; j++ {
			reason := "INVALID_TOKEN"
			if j%4 == 0 {
				reason = "TOKEN_EXPIRED"
			}
			l.Log(slog.LevelInfo, reason, "authentication failed", "n", j)
			now = now.Add(time.Millisecond) // 10 s of lines: one interval
		}
	}
	l.Flush()
	lines := logLines(buf)
	if want := intervals * (3 + 1); len(lines) != want {
		t.Fatalf("%d lines for %d floods of %d, want %d:\n%s", len(lines), intervals, perInterval, want, strings.Join(lines, "\n"))
	}
	var summaries int
	for _, ln := range lines {
		if !strings.Contains(ln, DefaultSummary) {
			continue
		}
		summaries++
		// Of 10,000 lines, 3 passed (j = 0, 1, 2: one TOKEN_EXPIRED); the rest are
		// 2,499 TOKEN_EXPIRED and 7,498 INVALID_TOKEN.
		want := fmt.Sprintf("suppressed=%d", perInterval-3)
		if !strings.Contains(ln, want) || !strings.Contains(ln, "by_reason.INVALID_TOKEN=7498") ||
			!strings.Contains(ln, "by_reason.TOKEN_EXPIRED=2499") {
			t.Errorf("summary %q, want %s INVALID_TOKEN=7498 TOKEN_EXPIRED=2499", ln, want)
		}
	}
	if summaries != intervals {
		t.Errorf("%d summaries, want %d", summaries, intervals)
	}
}

// TestQuietIntervalNoSummary: lines within the burst pass and write no summary; a new
// interval passes a new burst.
func TestQuietIntervalNoSummary(t *testing.T) {
	now := time.Unix(1000, 0)
	l, buf := newTestLimiter(2, time.Second, &now)
	l.Log(slog.LevelInfo, "a", "one")
	l.Log(slog.LevelInfo, "a", "two")
	now = now.Add(999 * time.Millisecond)
	l.Log(slog.LevelInfo, "a", "three") // suppressed
	now = now.Add(time.Millisecond)
	l.Log(slog.LevelInfo, "a", "four") // new interval: summary of one, then passes
	l.Log(slog.LevelInfo, "a", "five")
	l.Flush() // nothing suppressed since: no line
	lines := logLines(buf)
	want := []string{"one", "two", "suppressed=1", "four", "five"}
	if len(lines) != len(want) {
		t.Fatalf("lines %q, want %d", lines, len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
}

// TestTimerWritesSummary: when a flood stops, the timer writes its summary without
// another line arriving.
func TestTimerWritesSummary(t *testing.T) {
	var buf testkit.LockedBuffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), Options{Burst: 1, Interval: 50 * time.Millisecond})
	defer l.Close()
	for i := 0; i < 100; i++ {
		l.Log(slog.LevelInfo, "r", "line")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if lines := logLines(&buf); len(lines) == 2 {
			if !strings.Contains(lines[1], "suppressed=99") {
				t.Fatalf("summary %q, want suppressed=99", lines[1])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary from the timer: %q", logLines(&buf))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
