package faults

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// HalfOpenConfig configures the half-open heartbeat measurement.
type HalfOpenConfig struct {
	Tetherd   string
	Trials    int
	Heartbeat time.Duration
	Tick      time.Duration
	// Poll is the interval at which the server's tether_connections gauge is read.
	Poll time.Duration
}

func bindHalfOpen(fs *flag.FlagSet, c *HalfOpenConfig) {
	fs.StringVar(&c.Tetherd, "tetherd", "", "The tetherd binary. Required.")
	fs.IntVar(&c.Trials, "trials", 20, "Half-open clients, one after the other.")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 5*time.Second, "tetherd -heartbeat.")
	fs.DurationVar(&c.Tick, "tick", 50*time.Millisecond, "tetherd -tick.")
	fs.DurationVar(&c.Poll, "poll", 2*time.Millisecond, "How often the server's connection gauge is read.")
}

// The namespace and addresses halfopen creates (and deletes at the end).
const (
	hoNS      = "tb-halfopen"
	hoHost    = "tbho-h"
	hoClient  = "tbho-c"
	hoHostIP  = "10.231.0.1"
	hoClientI = "10.231.0.2"
)

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNS creates the namespace hoNS with one end of a veth pair whose other end
// stays in this namespace.
func setupNS() error {
	teardownNS()
	steps := [][]string{
		{"netns", "add", hoNS},
		{"link", "add", hoHost, "type", "veth", "peer", "name", hoClient},
		{"link", "set", hoClient, "netns", hoNS},
		{"addr", "add", hoHostIP + "/30", "dev", hoHost},
		{"link", "set", hoHost, "up"},
		{"-n", hoNS, "addr", "add", hoClientI + "/30", "dev", hoClient},
		{"-n", hoNS, "link", "set", hoClient, "up"},
		{"-n", hoNS, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			teardownNS()
			return err
		}
	}
	return nil
}

// teardownNS deletes what setupNS created; errors (nothing to delete) are ignored.
func teardownNS() {
	_ = ipCmd("netns", "del", hoNS)
	_ = ipCmd("link", "del", hoHost)
}

// dialInNS dials addr from a socket created in the namespace ns (a socket keeps the
// namespace it was made in). The goroutine's thread enters ns and then returns to
// this process's namespace before it is unlocked. The thread must not be left to
// die: the kernel sends tetherd its Pdeathsig when the thread that forked it exits,
// and that may be this one.
func dialInNS(ns, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer orig.Close()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		if err := setns(f.Fd()); err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if rerr := setns(orig.Fd()); rerr == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and exits with the goroutine
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// RunHalfOpen starts tetherd on the host end of a veth pair and, Trials times, has a
// client in the namespace authenticate, send a PING (its last frame), and then
// drops all its packets (the namespace's end of the veth is set down, so neither
// the client's packets nor the server's reach the other side). The time from the
// PING's write to the server's close is read from the tether_connections gauge.
func RunHalfOpen(ctx context.Context, cfg HalfOpenConfig, stdout, stderr io.Writer) error {
	if cfg.Tetherd == "" {
		return errors.New("-tetherd is required")
	}
	if os.Geteuid() != 0 {
		return errors.New("halfopen needs root (it creates a network namespace)")
	}
	if err := setupNS(); err != nil {
		return err
	}
	defer teardownNS()
	d, err := startDaemon(ctx, daemonConfig{Bin: cfg.Tetherd, Addr: hoHostIP + ":17400",
		Args: []string{"-dev", "-log-level", "warn", "-heartbeat", cfg.Heartbeat.String(), "-tick", cfg.Tick.String()}, Out: stderr})
	if err != nil {
		return err
	}
	defer d.stop()
	bound := cfg.Heartbeat*3/2 + cfg.Tick
	var times []time.Duration
	over := 0
	for i := range cfg.Trials {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dt, err := halfOpenTrial(d, i)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		times = append(times, dt)
		if dt > bound {
			over++
		}
		fmt.Fprintf(stdout, "trial %2d: closed %s after the last frame\n", i+1, ms(dt))
	}
	s := summarize(times)
	fmt.Fprintf(stdout, "halfopen: heartbeat %s tick %s, %d trials: min %s p50 %s max %s; %d of %d past 1.5 x heartbeat + 1 tick (%s); gauge polled every %s\n",
		cfg.Heartbeat, cfg.Tick, s.N, ms(s.Min), ms(s.P50), ms(s.Max), over, s.N, ms(bound), cfg.Poll)
	return nil
}

// halfOpenTrial runs one trial and returns the time from the last frame's write to
// the server's close.
func halfOpenTrial(d *daemon, i int) (time.Duration, error) {
	if err := ipCmd("-n", hoNS, "link", "set", hoClient, "up"); err != nil {
		return 0, err
	}
	var c net.Conn
	var err error
	for try := 0; ; try++ { // the link takes a moment to carry again
		c, err = dialInNS(hoNS, d.Addr)
		if err == nil || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r, err := hello(c, fmt.Sprintf("halfopen-%d", i), "d", 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("HELLO from %s: %w; server: %s", c.LocalAddr(), err, d.describe())
	}
	if err != nil {
		return 0, err
	}
	if r.Op != protocol.OpAuthOK {
		return 0, fmt.Errorf("HELLO answered %v", r)
	}
	if err := waitGauge(d, 1, 5*time.Second, time.Millisecond); err != nil {
		return 0, err
	}
	if _, err := c.Write(protocol.AppendEmpty(nil, protocol.OpPing, 2)); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := ipCmd("-n", hoNS, "link", "set", hoClient, "down"); err != nil {
		return 0, err
	}
	if err := waitGauge(d, 0, 30*time.Second, 2*time.Millisecond); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// waitGauge polls tether_connections until it equals want.
func waitGauge(d *daemon, want float64, limit, every time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		v, err := d.metric("tether_connections", "")
		if err != nil {
			return err
		}
		if v == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tether_connections stayed %v, want %v, for %s", v, want, limit)
		}
		time.Sleep(every)
	}
}
