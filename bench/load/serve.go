package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/bench/baseline"
	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

// Servers under test.
const (
	// ImplTetherd is the cmd/tetherd binary, the product, started directly by the
	// orchestrator; it answers SEND with an empty SEND_REPLY (its default handler)
	// and offers the control port for the push, room and churn scenarios.
	ImplTetherd = "tetherd"
	// ImplTether is the gateway package embedded in a serve child with a handler
	// that echoes SEND payloads, like an application would embed it, and a control
	// port without a secret.
	ImplTether = "tether"
	// ImplBaseline is bench/baseline, one goroutine per connection, which echoes
	// SEND payloads.
	ImplBaseline = "baseline"
	// ImplBare is a bare netpoll server that echoes bytes: no protocol, no worker
	// pool, no timers. It is the ceiling for echo throughput and, for connect, the
	// bare accept loop (a HELLO comes back as itself).
	ImplBare = "bare"
)

// echoHandler answers a SEND with its own payload and hands everything else to the
// control port, so the embedded gateway serves every scenario.
type echoHandler struct{ *control.Port }

func (echoHandler) OnMessage(m *server.Message) ([]byte, error) { return m.Payload, nil }

// ServeConfig configures a serve child.
type ServeConfig struct {
	// Impl is ImplTether, ImplBaseline or ImplBare.
	Impl string
	// Heartbeat is the interval announced in AUTH_OK. Default 25s.
	Heartbeat time.Duration
	// MaxLifetime ends the child even if its stdin stays open. Default 15m.
	MaxLifetime time.Duration
}

// Serve runs a server child on free loopback ports, prints a "listening" event and
// serves until in closes or cfg.MaxLifetime passes.
func Serve(cfg ServeConfig, in io.Reader, out io.Writer) error {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 25 * time.Second
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 15 * time.Minute
	}
	kit.FileLimit()
	ev := Event{Kind: "listening", PID: os.Getpid()}
	var stop func()
	switch cfg.Impl {
	case ImplTether:
		port, err := control.New(control.Options{Addr: "127.0.0.1:0", Insecure: true, Logger: kit.ErrorLogger()})
		if err != nil {
			return fmt.Errorf("cannot create control port: %w", err)
		}
		opts := kit.ServerOptions("127.0.0.1:0", "127.0.0.1:0", cfg.Heartbeat)
		opts.Handler = echoHandler{port}
		s, err := server.New(opts)
		if err != nil {
			return fmt.Errorf("cannot create tether server: %w", err)
		}
		if err := s.Start(); err != nil {
			return fmt.Errorf("cannot start tether server: %w", err)
		}
		if err := port.Start(s); err != nil {
			_ = s.Close()
			return fmt.Errorf("cannot start control port: %w", err)
		}
		ev.Addr, ev.Admin, ev.Control = s.Addr().String(), s.AdminAddr(), port.Addr().String()
		stop = func() {
			_ = port.Close()
			_ = s.Close()
		}
	case ImplBaseline:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("cannot listen: %w", err)
		}
		s := baseline.New(baseline.Options{Heartbeat: cfg.Heartbeat})
		go func() { _ = s.Serve(ln) }()
		ev.Addr = ln.Addr().String()
		stop = func() { _ = s.Close() }
	case ImplBare:
		addr, closeFn, err := startBare("127.0.0.1:0")
		if err != nil {
			return err
		}
		ev.Addr, stop = addr, closeFn
	default:
		return fmt.Errorf("serve: unknown implementation %q (want %s, %s or %s)", cfg.Impl, ImplTether, ImplBaseline, ImplBare)
	}
	defer stop()
	(&eventWriter{w: out}).send(ev)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(cfg.MaxLifetime):
	}
	return nil
}

// startBare starts the bare netpoll echo server: whatever arrives is written back
// from the read callback. netpoll's defaults are kept (8 KiB link buffers): it is
// the throughput ceiling, not a memory figure.
func startBare(addr string) (string, func(), error) {
	ln, err := netpoll.CreateListener("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	el, err := netpoll.NewEventLoop(func(_ context.Context, c netpoll.Connection) error {
		r, w := c.Reader(), c.Writer()
		n := r.Len()
		b, err := r.Next(n)
		if err != nil {
			return err
		}
		// One copy into the writer: netpoll's zero-copy WriteBinary would keep
		// pointing into the read buffer after Release if the socket were full.
		p, err := w.Malloc(n)
		if err != nil {
			return err
		}
		copy(p, b)
		_ = r.Release()
		return w.Flush()
	})
	if err != nil {
		ln.Close()
		return "", nil, fmt.Errorf("cannot create event loop: %w", err)
	}
	go func() { _ = el.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = el.Shutdown(ctx)
	}, nil
}

// server is a running server under test, as the orchestrator sees it.
type serverProc struct {
	impl    string
	pid     int
	addr    string
	admin   string // admin HTTP host:port, "" if none
	control string // control port host:port, "" if none
	stop    func()
	exited  <-chan struct{}
}

// startServer starts impl in a process of its own and waits until it serves.
func startServer(ctx context.Context, r *runner, impl string, heartbeat time.Duration, control bool) (*serverProc, error) {
	if impl == ImplTetherd {
		return startTetherd(ctx, r, heartbeat, control)
	}
	if control && impl != ImplTether {
		return nil, fmt.Errorf("%s has no control port; this scenario needs %s or %s", impl, ImplTetherd, ImplTether)
	}
	c, err := startChild(ctx, "serve "+impl, r.cfg.Exe, []string{"serve", "-impl", impl, "-heartbeat", heartbeat.String(),
		"-max-lifetime", r.cfg.Timeout.String()}, r.cfg.Env, r.log)
	if err != nil {
		return nil, err
	}
	ev, err := c.await(30*time.Second, nil, "listening")
	if err != nil {
		_ = c.Stop(5 * time.Second)
		return nil, err
	}
	return &serverProc{impl: impl, pid: c.PID(), addr: ev.Addr, admin: ev.Admin, control: ev.Control, stop: func() { _ = c.Stop(10 * time.Second) },
		exited: c.Exited()}, nil
}

// startTetherd runs the tetherd binary (see kit.StartTetherd) and waits until it is
// healthy.
func startTetherd(ctx context.Context, r *runner, heartbeat time.Duration, control bool) (*serverProc, error) {
	bin, err := r.tetherd(ctx)
	if err != nil {
		return nil, err
	}
	t, err := kit.StartTetherd(ctx, kit.TetherdConfig{Bin: bin, Heartbeat: heartbeat, Control: control, Out: r.log.prefixed("tetherd")})
	if err != nil {
		return nil, err
	}
	return &serverProc{impl: ImplTetherd, pid: t.PID(), addr: t.Addr, admin: t.Admin, control: t.Control, exited: t.Exited(), stop: t.Stop}, nil
}

// prefixed returns a writer that logs each line it gets with a prefix.
func (l *logger) prefixed(name string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.printf("[%s] %s", name, sc.Text())
		}
	}()
	return pw
}
