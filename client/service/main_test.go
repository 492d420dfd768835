package service

import (
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// TestMain fails the package if a test leaves a goroutine behind: Close must stop
// everything a Service started (testkit.VerifyNoLeaks).
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
