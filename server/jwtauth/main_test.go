package jwtauth

import (
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// TestMain fails the suite if a test leaves a goroutine behind: in particular the JWK
// Set refresh goroutine of an Authenticator that was closed.
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
