package faults

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/internal/wire"
)

// LockoutConfig configures the control-port lockout measurement.
type LockoutConfig struct {
	Tetherd string
	// Idle is the number of idle unauthenticated control connections from 127.0.0.2.
	Idle int
	// Refill redials every idle connection the server closes, for as long as the
	// measurement runs.
	Refill bool
	// Services is the number of real service AUTHs timed, one a second, from 127.0.0.3.
	Services int
}

func bindLockout(fs *flag.FlagSet, c *LockoutConfig) {
	fs.StringVar(&c.Tetherd, "tetherd", "", "The tetherd binary. Required.")
	fs.IntVar(&c.Idle, "idle", 1024, "Idle unauthenticated control connections from 127.0.0.2.")
	fs.BoolVar(&c.Refill, "refill", false, "Redial each idle connection the server closes.")
	fs.IntVar(&c.Services, "services", 10, "Service AUTHs timed, one a second, from 127.0.0.3.")
}

// RunLockout starts tetherd with a control secret, opens Idle control connections
// that send nothing, and times a real service's AUTH to its result Services times.
func RunLockout(ctx context.Context, cfg LockoutConfig, stdout, stderr io.Writer) error {
	ws, cleanup, err := newWorkspace(cfg.Tetherd, "")
	if err != nil {
		return err
	}
	defer cleanup()
	dir, jwt, cs := ws.dir, ws.jwt, ws.control
	logf, err := os.Create(filepath.Join(dir, "tetherd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	d, err := startDaemon(ctx, daemonConfig{Bin: cfg.Tetherd, Control: true, Args: []string{"-jwt-secret-file", jwt, "-control-secret-file", cs}, Out: logf})
	if err != nil {
		return err
	}
	defer d.stop()
	ictx, cancel := context.WithCancel(ctx)
	var open, dials atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := make(map[net.Conn]struct{})
	ready := make(chan struct{}, cfg.Idle)
	for range cfg.Idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ictx.Err() == nil && (first || cfg.Refill) {
				c, err := dial(srcAddr(2), d.Control, 5*time.Second)
				dials.Add(1)
				if first {
					ready <- struct{}{}
					first = false
				}
				if err != nil {
					pause(ictx, 100*time.Millisecond)
					continue
				}
				mu.Lock()
				conns[c] = struct{}{}
				mu.Unlock()
				open.Add(1)
				_, _ = io.Copy(io.Discard, c) // until the server closes it (or we do)
				open.Add(-1)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				kit.CloseReset(c)
			}
		}()
	}
	for range cfg.Idle {
		<-ready
	}
	fmt.Fprintf(stdout, "lockout: %d idle unauthenticated control connections from 127.0.0.2 (refill %v); %d open when the first service dials\n", cfg.Idle, cfg.Refill, open.Load())
	var times []time.Duration
	var t tally
	for i := range cfg.Services {
		if i > 0 {
			pause(ctx, time.Second)
		}
		t0 := time.Now()
		c, err := dial(srcAddr(3), d.Control, 5*time.Second)
		if err != nil {
			t.add("dial_" + outcome(reply{}, err))
			continue
		}
		r, err := controlAuth(c, controlSecret, 10*time.Second)
		dt := time.Since(t0)
		t.add(outcome(r, err))
		if err == nil && r.Op == wire.OpResult {
			times = append(times, dt)
		}
		kit.CloseReset(c)
	}
	stillOpen := open.Load()
	cancel()
	mu.Lock()
	for c := range conns {
		_ = c.SetReadDeadline(time.Unix(1, 0)) // ends its io.Copy, which closes it
	}
	mu.Unlock()
	wg.Wait()
	ev, _ := d.metric("tether_control_rejected_total", `reason="too_many_unauthenticated"`)
	to, _ := d.metric("tether_control_auth_failures_total", `reason="timeout"`)
	fmt.Fprintf(stdout, "  service AUTHs: %s; dial to RESULT %s\n", t.String(), summarize(times))
	fmt.Fprintf(stdout, "  idle connections dialled %d, open at the end %d; server evicted %.0f (too_many_unauthenticated), timed out %.0f\n", dials.Load(), stillOpen, ev, to)
	return nil
}
