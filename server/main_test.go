package server

import (
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// TestMain fails the package if any test leaves a goroutine behind once every server is
// closed (testkit.VerifyNoLeaks).
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
