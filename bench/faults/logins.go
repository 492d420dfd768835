package faults

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// LoginFloodConfig configures the failed-login flood.
type LoginFloodConfig struct {
	Duration time.Duration
	// Flooders are the goroutines on 127.0.0.2 that dial, send HELLO with a token
	// signed by the wrong key, read the answer and close, in a loop.
	Flooders int
	// Sources are the other loopback sources (127.0.0.3, ...) that each log in with
	// a valid token every Interval.
	Sources  int
	Interval time.Duration
	floodTarget
}

func bindLoginFlood(fs *flag.FlagSet, c *LoginFloodConfig) {
	c.floodTarget.bind(fs)
	fs.DurationVar(&c.Duration, "duration", 15*time.Second, "How long the flood runs.")
	fs.IntVar(&c.Flooders, "flooders", 64, "Concurrent bad-token dialers on 127.0.0.2.")
	fs.IntVar(&c.Sources, "sources", 20, "Valid-login sources, 127.0.0.3 onwards.")
	fs.DurationVar(&c.Interval, "interval", time.Second, "Time between one source's valid logins.")
}

// RunLoginFlood starts tetherd with an HS256 secret and its log in a file, floods it
// with bad tokens from 127.0.0.2 for Duration while Sources other addresses log in
// with valid tokens, and reports the log's growth and the valid logins' outcomes.
func RunLoginFlood(ctx context.Context, cfg LoginFloodConfig, stdout, stderr io.Writer) error {
	ws, cleanup, err := newWorkspace(cfg.Tetherd, cfg.Dir)
	if err != nil {
		return err
	}
	defer cleanup()
	dir, good := ws.dir, ws.jwt
	bad, err := writeSecret(dir, "wrong.secret", "some-other-secret-0123456789abcdef012345678")
	if err != nil {
		return err
	}
	badToken, err := mint(cfg.Tetherd, bad, "attacker")
	if err != nil {
		return err
	}
	tokens := make([]string, cfg.Sources)
	for i := range tokens {
		if tokens[i], err = mint(cfg.Tetherd, good, fmt.Sprintf("user-%d", i)); err != nil {
			return err
		}
	}
	logPath := filepath.Join(dir, "tetherd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	d, err := startDaemon(ctx, daemonConfig{Bin: cfg.Tetherd, Args: append([]string{"-jwt-secret-file", good}, extraArgs(cfg.Args)...), Out: logf})
	if err != nil {
		return err
	}
	defer d.stop()
	exclude := ""
	b0, l0, err := logSize(logPath, exclude)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var floodT, validT tally
	wg := flood(fctx, cfg.Flooders, func() {
		c, err := dial(srcAddr(2), d.Addr, 2*time.Second)
		if err != nil {
			floodT.add("dial_" + outcome(reply{}, err))
			return
		}
		r, err := hello(c, badToken, "x", 5*time.Second)
		floodT.add(outcome(r, err))
		kit.CloseReset(c)
	})
	var vwg sync.WaitGroup
	for i := range cfg.Sources {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			pause(fctx, time.Duration(i)*cfg.Interval/time.Duration(cfg.Sources)) // spread
			for fctx.Err() == nil {
				t := time.Now()
				c, err := dial(srcAddr(3+i), d.Addr, 2*time.Second)
				if err != nil {
					validT.add("dial_" + outcome(reply{}, err))
				} else {
					r, err := hello(c, tokens[i], "dev", 5*time.Second)
					validT.add(outcome(r, err))
					kit.CloseReset(c)
				}
				pause(fctx, cfg.Interval-time.Since(t))
			}
		}()
	}
	wg.Wait()
	vwg.Wait()
	b1, l1, err := logSize(logPath, exclude)
	if err != nil {
		return err
	}
	fails, _ := d.metric("tether_auth_failures_total", "")
	bans, _ := d.metric("tether_source_bans_total", "")
	fmt.Fprintf(stdout, "loginflood: %s, %d bad-token dialers on 127.0.0.2, %d valid sources every %s\n", cfg.Duration, cfg.Flooders, cfg.Sources, cfg.Interval)
	fmt.Fprintf(stdout, "  bad-token attempts %s\n", floodT.String())
	fmt.Fprintf(stdout, "  valid logins %s\n", validT.String())
	fmt.Fprintf(stdout, "  server: tether_auth_failures_total %.0f, tether_source_bans_total %.0f\n", fails, bans)
	fmt.Fprintf(stdout, "  log during the flood: %d bytes, %d lines (%.1f bytes per bad-token attempt)\n", b1-b0, l1-l0, float64(b1-b0)/float64(max(1, floodTotal(&floodT))))
	fmt.Fprintf(stdout, "  last log lines:\n%s\n", indent(logTail(logPath, 6)))
	return nil
}

func floodTotal(t *tally) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.m {
		n += v
	}
	return n
}

// indent indents every line of s by four spaces.
func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// workDir returns dir, or a new temporary directory that cleanup removes.
func workDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	d, err := os.MkdirTemp("", "tether-faults-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}
