package faults

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// EMFILEConfig configures the descriptor-exhaustion measurement.
type EMFILEConfig struct {
	Tetherd string
	// NoFile is tetherd's open-files limit (prlimit --nofile).
	NoFile int
	// Probes is the number of new clients timed while descriptors are exhausted.
	Probes int
	// Free is how many idle clients are closed to free descriptors.
	Free int
}

func bindEMFILE(fs *flag.FlagSet, c *EMFILEConfig) {
	fs.StringVar(&c.Tetherd, "tetherd", "", "The tetherd binary. Required.")
	fs.IntVar(&c.NoFile, "nofile", 256, "tetherd's open-files limit, set with prlimit --nofile.")
	fs.IntVar(&c.Probes, "probes", 10, "New clients timed while descriptors are exhausted.")
	fs.IntVar(&c.Free, "free", 16, "Idle clients closed to free descriptors.")
}

// RunEMFILE starts tetherd (-dev, control port on) under prlimit --nofile=NoFile,
// opens idle authenticated clients from 127.0.0.2 until one is not answered
// AUTH_OK, then times Probes new clients' answers and a service's AUTH on the
// control port while the descriptors are exhausted, closes Free clients, and times
// the pending service's AUTH result and a new service's AUTH and STATS.
func RunEMFILE(ctx context.Context, cfg EMFILEConfig, stdout, stderr io.Writer) error {
	if cfg.Tetherd == "" {
		return errors.New("-tetherd is required")
	}
	d, err := startDaemon(ctx, daemonConfig{Bin: cfg.Tetherd, Control: true, NoFile: cfg.NoFile,
		Args: []string{"-dev", "-log-level", "warn"}, Out: stderr})
	if err != nil {
		return err
	}
	defer d.stop()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			kit.CloseReset(c)
		}
	}()
	authed := -1
	var first reply
	var firstErr error
	var firstT time.Duration
	for i := 0; i < cfg.NoFile+64; i++ {
		t0 := time.Now()
		c, err := dial(srcAddr(2), d.Addr, 5*time.Second)
		if err != nil {
			first, firstErr, firstT = reply{}, err, time.Since(t0)
			break
		}
		r, err := hello(c, fmt.Sprintf("idle-%d", i), "d", 10*time.Second)
		if err == nil && r.Op == protocol.OpAuthOK {
			held = append(held, c)
			continue
		}
		first, firstErr, firstT = r, err, time.Since(t0)
		authed = len(held)
		held = append(held, c) // kept: a hung one waits in the server's backlog
		break
	}
	if authed < 0 {
		authed = len(held)
	}
	fmt.Fprintf(stdout, "emfile: tetherd under prlimit --nofile=%d\n", cfg.NoFile)
	fmt.Fprintf(stdout, "  idle clients authenticated: %d; the next was answered %s in %s\n", authed, outcome(first, firstErr), ms(firstT))
	// A service connects while descriptors are exhausted; its AUTH waits.
	type res struct {
		r   reply
		err error
		at  time.Time
	}
	pending := make(chan res, 1)
	sc, err := dial(srcAddr(3), d.Control, 5*time.Second)
	if err != nil {
		return fmt.Errorf("control dial while exhausted: %w", err)
	}
	defer sc.Close()
	go func() {
		r, err := controlAuth(sc, "", 20*time.Second)
		pending <- res{r, err, time.Now()}
	}()
	var probeT tally
	var probes []time.Duration
	for range cfg.Probes {
		t0 := time.Now()
		c, err := dial(srcAddr(2), d.Addr, 5*time.Second)
		if err != nil {
			probeT.add("dial_" + outcome(reply{}, err))
			continue
		}
		r, err := hello(c, "probe", "p", 10*time.Second)
		probes = append(probes, time.Since(t0))
		probeT.add(outcome(r, err))
		kit.CloseReset(c)
	}
	fmt.Fprintf(stdout, "  (a) new clients while exhausted: %s; dial to answer %s\n", probeT.String(), summarize(probes))
	var early *res
	select {
	case p := <-pending:
		early = &p
	case <-time.After(time.Second):
	}
	if early != nil {
		fmt.Fprintf(stdout, "  control AUTH sent while exhausted: answered %s during the probes\n", outcome(early.r, early.err))
	} else {
		fmt.Fprintf(stdout, "  control AUTH sent while exhausted: no answer after the probes (it waits in the backlog)\n")
	}
	n := min(cfg.Free, len(held))
	for _, c := range held[len(held)-n:] {
		kit.CloseReset(c)
	}
	held = held[:len(held)-n]
	freed := time.Now()
	if early == nil {
		p := <-pending
		fmt.Fprintf(stdout, "  (b) after closing %d idle clients: the waiting service's AUTH answered %s %s later\n", n, outcome(p.r, p.err), ms(p.at.Sub(freed)))
	}
	// A new service: AUTH then STATS, retried until it is answered (bounded).
	var last string
	for try := 0; time.Since(freed) < 20*time.Second; try++ {
		t0 := time.Now()
		c, err := dial(srcAddr(3), d.Control, 5*time.Second)
		if err != nil {
			last = err.Error()
			pause(ctx, 100*time.Millisecond)
			continue
		}
		r, err := controlAuth(c, "", 5*time.Second)
		if err == nil && r.Op == wire.OpResult {
			r, err = controlStats(c, 5*time.Second)
		}
		kit.CloseReset(c)
		if err == nil && r.Op == wire.OpResult {
			fmt.Fprintf(stdout, "  (b) a new service: AUTH + STATS answered in %s (%s after the descriptors were freed, attempt %d)\n", ms(time.Since(t0)), ms(time.Since(freed)), try+1)
			last = ""
			break
		}
		last = outcome(r, err)
		pause(ctx, 100*time.Millisecond)
	}
	if last != "" {
		fmt.Fprintf(stdout, "  (b) a new service was not answered within 20s of the descriptors freeing: %s\n", last)
	}
	fd, _ := d.metric("tether_accept_fd_exhausted_total", "")
	cerr, _ := d.metric("tether_control_accept_errors_total", "")
	fmt.Fprintf(stdout, "  server: tether_accept_fd_exhausted_total %.0f, tether_control_accept_errors_total %.0f\n", fd, cerr)
	return nil
}
