package main

import (
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// TestMain fails the package if a test leaves goroutines behind (the service's
// worker, the gateway, the clients, the SQLite connections).
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
