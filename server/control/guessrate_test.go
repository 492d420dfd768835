package control

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/wire"
)

// TestMeasureGuessRate measures how many wrong secrets an attacker on loopback gets
// checked per second, with 1 and with 16 concurrent connections, each a loop of dial,
// AUTH with a wrong secret, read to EOF. It runs only with TETHER_MEASURE_GUESSES=1
// (2 s per case, bounded):
//
//	TETHER_MEASURE_GUESSES=1 go test -count=1 -run TestMeasureGuessRate -v ./server/control/
func TestMeasureGuessRate(t *testing.T) {
	if os.Getenv("TETHER_MEASURE_GUESSES") == "" {
		t.Skip("set TETHER_MEASURE_GUESSES=1 to measure")
	}
	auth, _ := wire.AppendFrame(nil, OpAuth, 1, &wire.Auth{Secret: "not-the-secret-0123456789"}, nil)
	for _, workers := range []int{1, 16} {
		g := startGateway(t, nil)
		addr := g.port.Addr().String()
		const d = 2 * time.Second
		deadline := time.Now().Add(d)
		var attempts atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						continue
					}
					c.SetDeadline(deadline.Add(time.Second))
					c.Write(auth)
					io.Copy(io.Discard, c)
					c.Close()
					attempts.Add(1)
				}
			}()
		}
		wg.Wait()
		checked := g.metric(`tether_control_auth_failures_total{reason="bad_secret"}`)
		t.Logf("%2d connections: %6.0f attempts/s, %6.0f wrong secrets checked/s (%d attempts, %.0f checked in %s)",
			workers, float64(attempts.Load())/d.Seconds(), checked/d.Seconds(), attempts.Load(), checked, d)
		g.port.Close()
		g.srv.Close()
	}
}
