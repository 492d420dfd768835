package faults

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/internal/wire"
)

// SecretFloodConfig configures the wrong control-secret flood.
type SecretFloodConfig struct {
	Duration time.Duration
	// Flooders are goroutines on 127.0.0.2 that dial the control port, send AUTH
	// with a wrong secret, read the answer and close, in a loop.
	Flooders int
	floodTarget
}

func bindSecretFlood(fs *flag.FlagSet, c *SecretFloodConfig) {
	c.floodTarget.bind(fs)
	fs.DurationVar(&c.Duration, "duration", 15*time.Second, "How long the flood runs.")
	fs.IntVar(&c.Flooders, "flooders", 16, "Concurrent wrong-secret dialers on 127.0.0.2.")
}

const controlSecret = "bench-control-secret-0123456789abcdef"

// RunSecretFlood starts tetherd with a control secret and its log in a file, floods
// the control port with wrong secrets from 127.0.0.2, and reports the log's growth,
// the guesses the server actually checked (tether_control_auth_failures_total
// reason bad_secret) per second, and a real service's AUTH from 127.0.0.3 after.
func RunSecretFlood(ctx context.Context, cfg SecretFloodConfig, stdout, stderr io.Writer) error {
	ws, cleanup, err := newWorkspace(cfg.Tetherd, cfg.Dir)
	if err != nil {
		return err
	}
	defer cleanup()
	dir, jwt, cs := ws.dir, ws.jwt, ws.control
	logPath := filepath.Join(dir, "tetherd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	d, err := startDaemon(ctx, daemonConfig{Bin: cfg.Tetherd, Control: true, Args: append([]string{"-jwt-secret-file", jwt, "-control-secret-file", cs}, extraArgs(cfg.Args)...), Out: logf})
	if err != nil {
		return err
	}
	defer d.stop()
	exclude := "remote=127.0.0.3:" // the real service's own lines
	b0, l0, err := logSize(logPath, exclude)
	if err != nil {
		return err
	}
	checked0, _ := d.metric("tether_control_auth_failures_total", `reason="bad_secret"`)
	fctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var t tally
	start := time.Now()
	wg := flood(fctx, cfg.Flooders, func() {
		c, err := dial(srcAddr(2), d.Control, 2*time.Second)
		if err != nil {
			t.add("dial_" + outcome(reply{}, err))
			return
		}
		r, err := controlAuth(c, "wrong-secret-guess-000000000000000", 5*time.Second)
		t.add(outcome(r, err))
		kit.CloseReset(c)
	})
	// Meanwhile a real service from another source.
	var svc []time.Duration
	var svcT tally
	for fctx.Err() == nil {
		pause(fctx, time.Second)
		t0 := time.Now()
		c, err := dial(srcAddr(3), d.Control, 2*time.Second)
		if err != nil {
			svcT.add("dial_" + outcome(reply{}, err))
			continue
		}
		r, err := controlAuth(c, controlSecret, 5*time.Second)
		svcT.add(outcome(r, err))
		if err == nil && r.Op == wire.OpResult {
			svc = append(svc, time.Since(t0))
		}
		kit.CloseReset(c)
	}
	wg.Wait()
	el := time.Since(start)
	b1, l1, err := logSize(logPath, exclude)
	if err != nil {
		return err
	}
	checked1, _ := d.metric("tether_control_auth_failures_total", `reason="bad_secret"`)
	locked, _ := d.metric("tether_control_rejected_total", `reason="auth_locked_out"`)
	checked := checked1 - checked0
	fmt.Fprintf(stdout, "secretflood: %s, %d wrong-secret dialers on 127.0.0.2\n", cfg.Duration, cfg.Flooders)
	fmt.Fprintf(stdout, "  wrong-secret attempts %s\n", t.String())
	fmt.Fprintf(stdout, "  guesses checked by the server (bad_secret): %.0f = %.2f/s; refused before AUTH while locked out: %.0f\n", checked, checked/el.Seconds(), locked)
	fmt.Fprintf(stdout, "  log during the flood, without the real service's lines: %d bytes, %d lines (%.2f bytes per attempt, %.1f per checked guess)\n", b1-b0, l1-l0, float64(b1-b0)/float64(max(1, floodTotal(&t))), float64(b1-b0)/max(1, checked))
	fmt.Fprintf(stdout, "  a real service's AUTH from 127.0.0.3 each second meanwhile: %s; time to RESULT %s\n", svcT.String(), summarize(svc))
	fmt.Fprintf(stdout, "  last log lines:\n%s", indent(logTail(logPath, 6)))
	return nil
}
