package memtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/tether-gw/tether/bench/baseline"
	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/server"
)

// Implementations a serve child can run.
const (
	ImplTether   = "tether"   // the gateway, server.Server, as tetherd embeds it
	ImplBaseline = "baseline" // bench/baseline: one goroutine per connection
	ImplNetpoll  = "netpoll"  // a bare netpoll protocol server: the event loop's floor
	ImplTetherd  = "tetherd"  // the cmd/tetherd binary, run as a separate process
)

// ServeConfig configures a serve child. The zero value keeps the defaults in each
// field's doc.
type ServeConfig struct {
	// Impl is ImplTether, ImplBaseline or ImplNetpoll. Required.
	Impl string
	// Addr is the listen address. Default "127.0.0.1:0".
	Addr string
	// Heartbeat is the interval announced in AUTH_OK. Default 5s.
	Heartbeat time.Duration
	// MemProfileRate sets runtime.MemProfileRate for the heap profile. Default 16 KiB:
	// fine enough to attribute a few KiB per connection across thousands of them, and
	// the same for every implementation so it cannot bias the comparison.
	MemProfileRate int
	// MaxLifetime ends the child even if nobody closes its stdin. Default 10m.
	MaxLifetime time.Duration
	// Tetherd is the tetherd binary ImplTetherd runs. Required for ImplTetherd.
	Tetherd string
}

func (c ServeConfig) withDefaults() ServeConfig {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.MemProfileRate <= 0 {
		c.MemProfileRate = 16 << 10
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 10 * time.Minute
	}
	return c
}

// target is a server under test.
type target interface {
	addr() string
	// pid is the process whose memory is measured.
	pid() int
	// stats reads the server process's Go memory and connection counts.
	stats() (goStats, error)
	// gc collects garbage in the server process, and returns free memory to the
	// OS when it can (only in-process targets can).
	gc() error
	// writeHeap writes a heap profile of the server process to path.
	writeHeap(path string) error
	close()
}

// goStats is what a "stats" line reports.
type goStats struct {
	heapAlloc, heapInuse, heapSys, heapReleased, stackInuse, sys int64
	numGC, goroutines, conns, authed                             int64
}

// local implements the memory half of target for servers running in this process.
type local struct {
	// counts returns the open and the authenticated connections.
	counts func() (conns, authed int64)
}

func (local) pid() int { return os.Getpid() }

func (l local) stats() (goStats, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	conns, authed := l.counts()
	return goStats{
		heapAlloc: int64(ms.HeapAlloc), heapInuse: int64(ms.HeapInuse), heapSys: int64(ms.HeapSys),
		heapReleased: int64(ms.HeapReleased), stackInuse: int64(ms.StackInuse), sys: int64(ms.Sys),
		numGC: int64(ms.NumGC), goroutines: int64(runtime.NumGoroutine()), conns: conns, authed: authed,
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
	return writeHeapProfile(path)
}

// startTarget starts the implementation cfg names.
func startTarget(cfg ServeConfig) (target, error) {
	switch cfg.Impl {
	case ImplTether:
		return startTether(cfg)
	case ImplBaseline:
		return startBaseline(cfg)
	case ImplNetpoll:
		return startNetpoll(cfg)
	case ImplTetherd:
		return startTetherd(cfg)
	}
	return nil, fmt.Errorf("unknown implementation %q (want %s, %s, %s or %s)", cfg.Impl, ImplTether, ImplTetherd, ImplBaseline, ImplNetpoll)
}

type tetherTarget struct {
	local
	s *server.Server
}

// startTether runs the gateway in this process with the options tetherd -dev would
// use, minus the limits that would refuse a load test from a handful of addresses.
func startTether(cfg ServeConfig) (target, error) {
	s, err := server.New(kit.ServerOptions(cfg.Addr, "-", cfg.Heartbeat))
	if err != nil {
		return nil, fmt.Errorf("cannot create tether server: %w", err)
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("cannot start tether server: %w", err)
	}
	counts := func() (int64, int64) {
		st := s.Stats()
		return st.Connections, st.Authenticated
	}
	return tetherTarget{local{counts}, s}, nil
}

func (t tetherTarget) addr() string { return t.s.Addr().String() }
func (t tetherTarget) close()       { _ = t.s.Close() }

type baselineTarget struct {
	local
	s  *baseline.Server
	ln net.Listener
}

func startBaseline(cfg ServeConfig) (target, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", cfg.Addr, err)
	}
	s := baseline.New(baseline.Options{Heartbeat: cfg.Heartbeat})
	go func() { _ = s.Serve(ln) }()
	counts := func() (int64, int64) {
		st := s.Stats()
		return st.Connections, st.Authenticated
	}
	return baselineTarget{local{counts}, s, ln}, nil
}

func (t baselineTarget) addr() string { return t.ln.Addr().String() }
func (t baselineTarget) close()       { _ = t.s.Close() }

// Serve runs a server child: it starts cfg.Impl, prints a "listening" line, then
// answers commands read from in, one per line, until in closes, "quit" arrives or
// cfg.MaxLifetime passes:
//
//	stats       prints a "stats" line (Go memory and connection counts)
//	gc          runs a GC, returns freed memory to the OS, then prints "stats"
//	heap PATH   runs a GC and writes a heap profile to PATH, then prints "heap"
//
// Failures of a command print an "error" line; the child keeps serving.
func Serve(cfg ServeConfig, in io.Reader, out io.Writer) error {
	cfg = cfg.withDefaults()
	runtime.MemProfileRate = cfg.MemProfileRate
	t, err := startTarget(cfg)
	if err != nil {
		return err
	}
	defer t.close()
	lw := &lineWriter{w: out}
	lw.emit("listening", "impl", cfg.Impl, "addr", t.addr(), "pid", t.pid(), "gomaxprocs", runtime.GOMAXPROCS(0))

	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxLifetime)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("serve: max lifetime %v passed", cfg.MaxLifetime)
		case cmd, ok := <-cmds:
			if !ok || cmd == "quit" {
				return nil
			}
			if err := serveCommand(t, lw, cmd); err != nil {
				lw.emit("error", "cmd", cmd, "err", err.Error())
			}
		}
	}
}

// serveCommand runs one command of the serve child.
func serveCommand(t target, lw *lineWriter, cmd string) error {
	name, arg, _ := strings.Cut(cmd, " ")
	switch name {
	case "stats":
		return emitStats(t, lw)
	case "gc":
		if err := t.gc(); err != nil {
			return err
		}
		return emitStats(t, lw)
	case "heap":
		if arg == "" {
			return errors.New("heap needs a file name")
		}
		if err := t.writeHeap(arg); err != nil {
			return err
		}
		lw.emit("heap", "path", arg)
		return nil
	}
	return fmt.Errorf("unknown command %q", name)
}

// emitStats prints the server's Go memory and connection counts.
func emitStats(t target, lw *lineWriter) error {
	st, err := t.stats()
	if err != nil {
		return err
	}
	lw.emit("stats",
		"heap_alloc", st.heapAlloc,
		"heap_inuse", st.heapInuse,
		"heap_sys", st.heapSys,
		"heap_released", st.heapReleased,
		"stack_inuse", st.stackInuse,
		"sys", st.sys,
		"num_gc", st.numGC,
		"goroutines", st.goroutines,
		"conns", st.conns,
		"authed", st.authed,
	)
	return nil
}

func writeHeapProfile(path string) error {
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
