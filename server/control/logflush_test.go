package control

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// Close writes the summary of the failed-AUTH lines suppressed in the last interval, so
// their count is not lost with the port.
func TestCloseFlushesAuthLogSummary(t *testing.T) {
	var logs testkit.LockedBuffer
	p, err := New(Options{Insecure: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range authLogBurst + 4 {
		p.authLog.Allow("bad_secret")
	}
	if strings.Contains(logs.String(), "more control AUTH failures") {
		t.Fatal("summary written before the interval ended")
	}
	p.Close()
	if !strings.Contains(logs.String(), "more control AUTH failures") || !strings.Contains(logs.String(), "suppressed=4") {
		t.Fatalf("no summary of the 4 suppressed lines after Close:\n%s", logs.String())
	}
}
