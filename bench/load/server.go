package load

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/bench/serve"
)

// Servers under test: bench/serve's implementations, of which the scenarios use
// these four.
const (
	// ImplTetherd is the cmd/tetherd binary, the product, started directly by the
	// orchestrator; it answers SEND with an empty SEND_REPLY (its default handler)
	// and offers the control port for the push, room and churn scenarios.
	ImplTetherd = serve.ImplTetherd
	// ImplTether is the gateway package embedded in a serve child with a handler
	// that echoes SEND payloads, like an application would embed it, its admin
	// endpoint and a control port without a secret.
	ImplTether = serve.ImplTether
	// ImplBaseline is bench/baseline, one goroutine per connection, which echoes
	// SEND payloads.
	ImplBaseline = serve.ImplBaseline
	// ImplBare is a bare netpoll server that echoes bytes (serve.ImplBare).
	ImplBare = serve.ImplBare
)

// serverProc is a running server under test, as the orchestrator sees it.
type serverProc struct {
	impl    string
	pid     int
	addr    string
	admin   string // admin HTTP host:port, "" if none
	control string // control port host:port, "" if none
	stop    func()
	exited  <-chan struct{}
	// gc forces a garbage collection in the server (and, in a serve child, returns
	// free memory to the OS), as tether-memtest does before its settled readings.
	gc func() error
}

// startServer starts impl in a process of its own and waits until it serves.
func startServer(ctx context.Context, r *runner, impl string, heartbeat time.Duration, control bool) (*serverProc, error) {
	if impl == ImplTetherd {
		return startTetherd(ctx, r, heartbeat, control)
	}
	if control && impl != ImplTether {
		return nil, fmt.Errorf("%s has no control port; this scenario needs %s or %s", impl, ImplTetherd, ImplTether)
	}
	cert, err := r.transportCert()
	if err != nil {
		return nil, err
	}
	args := serve.Args(serve.Config{Impl: impl, Heartbeat: heartbeat, Admin: true, Control: true, MaxLifetime: r.cfg.Timeout,
		Transport: r.cfg.Transport, CertFile: cert.CertFile, KeyFile: cert.KeyFile})
	c, err := msg.StartChild(ctx, "serve "+impl, r.cfg.Exe, args, r.cfg.Env, r.log.Line)
	if err != nil {
		return nil, err
	}
	ev, err := c.Await(30*time.Second, nil, "listening")
	if err != nil {
		_ = c.Stop(5 * time.Second)
		return nil, err
	}
	gc := func() error {
		if err := c.Do(msg.Command{Op: "gc"}); err != nil {
			return err
		}
		_, err := c.Await(time.Minute, nil, "stats")
		return err
	}
	return &serverProc{impl: impl, pid: ev.PID, addr: ev.Addr, admin: ev.Admin, control: ev.Control, stop: func() { _ = c.Stop(10 * time.Second) },
		exited: c.Exited(), gc: gc}, nil
}

// startTetherd runs the tetherd binary (see kit.StartTetherd) and waits until it is
// healthy.
func startTetherd(ctx context.Context, r *runner, heartbeat time.Duration, control bool) (*serverProc, error) {
	bin, err := r.tetherd(ctx)
	if err != nil {
		return nil, err
	}
	cert, err := r.transportCert()
	if err != nil {
		return nil, err
	}
	t, err := kit.StartTetherd(ctx, kit.TetherdConfig{Bin: bin, Heartbeat: heartbeat, Control: control, Out: r.log.Prefixed("tetherd"),
		Transport: r.cfg.Transport, Cert: cert})
	if err != nil {
		return nil, err
	}
	// A GC forced from outside, then the free pages returned (as bench/serve's
	// tetherd target does).
	gc := func() error { return kit.Settle(ctx, t.Admin) }
	return &serverProc{impl: ImplTetherd, pid: t.PID(), addr: t.Addr, admin: t.Admin, control: t.Control, exited: t.Exited(), stop: t.Stop, gc: gc}, nil
}
