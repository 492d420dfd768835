package serve

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"

	"github.com/tether-gw/tether/bench/baseline"
	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

// target is a server under test.
type target interface {
	// listening returns the addresses it serves on (Addr, Admin, Control).
	listening() msg.Event
	// pid is the process whose memory and CPU are measured.
	pid() int
	// stats reads the server process's Go memory and connection counts.
	stats() (msg.MemStats, error)
	// gc collects garbage in the server process, and returns free memory to the
	// OS when it can (only in-process targets can).
	gc() error
	// writeHeap writes a heap profile of the server process to path.
	writeHeap(path string) error
	close()
}

// start starts the implementation cfg names.
func start(cfg Config) (target, error) {
	if cfg.Transport != kit.TransportTCP && cfg.Impl != ImplBaseline && cfg.Impl != ImplTetherd {
		return nil, fmt.Errorf("serve: %s serves raw TCP only, not %s (baseline and tetherd serve every transport)", cfg.Impl, cfg.Transport)
	}
	switch cfg.Impl {
	case ImplTether:
		return startTether(cfg)
	case ImplTetherd:
		return startTetherd(cfg)
	case ImplBaseline:
		return startBaseline(cfg)
	case ImplBare:
		return startBare(cfg)
	case ImplNetpoll:
		return startNetpoll(cfg)
	}
	return nil, fmt.Errorf("serve: unknown implementation %q (want %s, %s, %s, %s or %s)", cfg.Impl,
		ImplTether, ImplTetherd, ImplBaseline, ImplBare, ImplNetpoll)
}

// local implements the memory half of target for servers running in this process.
type local struct {
	// counts returns the open and the authenticated connections.
	counts func() (conns, authed int64)
}

func (local) pid() int { return os.Getpid() }

func (l local) stats() (msg.MemStats, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	conns, authed := l.counts()
	return msg.MemStats{
		HeapAlloc: int64(ms.HeapAlloc), HeapInuse: int64(ms.HeapInuse), HeapSys: int64(ms.HeapSys),
		HeapReleased: int64(ms.HeapReleased), StackInuse: int64(ms.StackInuse), Sys: int64(ms.Sys),
		NumGC: int64(ms.NumGC), Goroutines: int64(runtime.NumGoroutine()), Conns: conns, Authed: authed,
	}, nil
}

// gc forces a GC and returns every free page to the OS, which the background
// scavenger would do anyway given time; doing it now makes the RSS reading
// repeatable.
func (local) gc() error {
	debug.FreeOSMemory()
	return nil
}

func (local) writeHeap(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("cannot write heap profile %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write heap profile %s: %w", path, err)
	}
	return nil
}

// echoHandler answers a SEND with its own payload and hands everything else to the
// handler it embeds: the control port when there is one.
type echoHandler struct{ server.Handler }

func (echoHandler) OnMessage(m *server.Message) ([]byte, error) { return m.Payload, nil }

type tetherTarget struct {
	local
	s    *server.Server
	port *control.Port // nil without Config.Control
}

// startTether runs the gateway in this process with the options tetherd -dev would
// use, minus the limits that would refuse a load test from a handful of addresses
// (kit.ServerOptions).
func startTether(cfg Config) (target, error) {
	admin := "-"
	if cfg.Admin {
		admin = "127.0.0.1:0"
	}
	opts := kit.ServerOptions(cfg.Addr, admin, cfg.Heartbeat)
	t := &tetherTarget{}
	opts.Handler = echoHandler{server.NopHandler{}}
	if cfg.Control {
		port, err := control.New(control.Options{Addr: "127.0.0.1:0", Insecure: true, Logger: kit.ErrorLogger()})
		if err != nil {
			return nil, fmt.Errorf("cannot create control port: %w", err)
		}
		t.port, opts.Handler = port, echoHandler{port}
	}
	s, err := server.New(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot create tether server: %w", err)
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("cannot start tether server: %w", err)
	}
	if t.port != nil {
		if err := t.port.Start(s); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("cannot start control port: %w", err)
		}
	}
	t.s = s
	t.counts = func() (int64, int64) {
		st := s.Stats()
		return st.Connections, st.Authenticated
	}
	return t, nil
}

func (t *tetherTarget) listening() msg.Event {
	ev := msg.Event{Addr: t.s.Addr().String(), Admin: t.s.AdminAddr()}
	if t.port != nil {
		ev.Control = t.port.Addr().String()
	}
	return ev
}

func (t *tetherTarget) close() {
	if t.port != nil {
		_ = t.port.Close()
	}
	_ = t.s.Close()
}

type baselineTarget struct {
	local
	s  *baseline.Server
	ln net.Listener
}

// startBaseline serves bench/baseline on cfg.Transport: for tls and wss each
// connection's goroutine runs the crypto/tls handshake on its first read, and for ws
// and wss the gobwas/ws upgrade, then blocks in reads like a raw TCP one (see
// kit.Listen).
func startBaseline(cfg Config) (target, error) {
	ln, err := kit.Listen(cfg.Transport, cfg.Addr, cfg.cert())
	if err != nil {
		return nil, err
	}
	s := baseline.New(baseline.Options{Heartbeat: cfg.Heartbeat})
	go func() { _ = s.Serve(ln) }()
	counts := func() (int64, int64) {
		st := s.Stats()
		return st.Connections, st.Authenticated
	}
	return baselineTarget{local{counts}, s, ln}, nil
}

func (t baselineTarget) listening() msg.Event { return msg.Event{Addr: t.ln.Addr().String()} }
func (t baselineTarget) close()               { _ = t.s.Close() }
