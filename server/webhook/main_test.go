package webhook

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/tether-gw/tether/internal/testkit"
)

// TestMain fails the package if a test leaves a goroutine behind (testkit.VerifyNoLeaks).
// The metrics library runs one process-wide goroutine for all summaries, started by the
// first; starting it here, before the check's snapshot, keeps it out of the findings.
func TestMain(m *testing.M) {
	metrics.NewSet().NewSummary("tether_webhook_test_warmup")
	testkit.VerifyNoLeaks(m)
}
