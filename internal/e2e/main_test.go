package e2e

import (
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// TestMain fails the package if a test leaves a goroutine behind once every gateway,
// port, service and client it started is closed.
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
