package httpapi

import (
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
