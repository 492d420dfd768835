package memtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/loadgen"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/bench/serve"
)

// Implementations measured: bench/serve's, of which memtest uses these four.
const (
	ImplTether   = serve.ImplTether   // the gateway, server.Server, as tetherd embeds it
	ImplBaseline = serve.ImplBaseline // bench/baseline: one goroutine per connection
	ImplNetpoll  = serve.ImplNetpoll  // a bare netpoll protocol server: the event loop's floor
	ImplTetherd  = serve.ImplTetherd  // the cmd/tetherd binary, run as a separate process
)

// memProfileRate is the servers' runtime.MemProfileRate: fine enough to attribute a
// few KiB per connection across thousands of them, and the same for every
// implementation so it cannot bias the comparison.
const memProfileRate = 16 << 10

// RunConfig configures a measurement run. The zero value keeps the defaults in each
// field's doc.
type RunConfig struct {
	// Exe is the binary started as the serve and load children; it must answer the
	// subcommands of Main. Default: this process's executable.
	Exe string
	// Env is the children's environment. Default os.Environ().
	Env []string
	// Impls are the implementations measured, one after the other. Default
	// tether, then baseline.
	Impls []string
	// Tetherd is the tetherd binary measured as ImplTetherd. Default: built with
	// `go build` into a temporary directory when Impls names ImplTetherd, which needs
	// the working directory inside the tether module.
	Tetherd string
	// N is the number of connections held at the measurement. Default 19,000.
	N int
	// Loaders is the number of load processes sharing N. Default 2.
	Loaders int
	// Src is the first loader's source address; loader i of the k-th implementation
	// uses the (k*Loaders + i)-th address after it. Default 127.0.0.2.
	Src string
	// Heartbeat is the interval the servers announce, which paces the loaders' PINGs.
	// Default 5s.
	Heartbeat time.Duration
	// Pings is how many PING/PONG exchanges each connection completes before the
	// measurement. Default 2.
	Pings int
	// PingInterval is the time between a connection's PINGs. Default: the heartbeat,
	// as a real client does. A shorter one makes a run faster and leaves a slow
	// machine more margin before the server's 1.5-heartbeat timeout.
	PingInterval time.Duration
	// Rate is the total connection rate across loaders, per second. Default 4000.
	Rate float64
	// Concurrency caps the handshakes (dial to AUTH_OK) one loader has in progress
	// at once. Default 256.
	Concurrency int
	// Timeout bounds the measurement of one implementation, start to teardown.
	// Default 5m.
	Timeout time.Duration
	// HeapDir, when set, receives a heap profile of every server at N connections
	// (tmp/heap-IMPL.pb.gz) and its `go tool pprof -top` text (memory-heap.txt for
	// tether, memory-heap-IMPL.txt for the others). Default: no profiles.
	HeapDir string
	// Log receives progress and the children's own output. Default io.Discard.
	Log io.Writer
	// Transport is how the loaders reach the server (tetherd and baseline serve
	// every transport, the others raw TCP only); tls and wss use a self-signed
	// certificate generated for the run. Default kit.TransportTCP.
	Transport kit.Transport
}

func (c RunConfig) withDefaults() (RunConfig, error) {
	var err error
	if c.Exe, c.Env, err = kit.SelfExe(c.Exe, c.Env); err != nil {
		return c, err
	}
	if len(c.Impls) == 0 {
		c.Impls = []string{ImplTether, ImplBaseline}
	}
	if c.N <= 0 {
		c.N = 19_000
	}
	if c.Loaders <= 0 {
		c.Loaders = 2
	}
	if c.Src == "" {
		c.Src = "127.0.0.2"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Pings <= 0 {
		c.Pings = 2
	}
	if c.Rate <= 0 {
		c.Rate = 4000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	c.Transport = c.Transport.Or()
	if _, err := kit.ParseTransport(string(c.Transport)); err != nil {
		return c, err
	}
	for _, impl := range c.Impls {
		switch impl {
		case ImplTether, ImplTetherd, ImplBaseline, ImplNetpoll:
		default:
			return c, fmt.Errorf("unknown implementation %q (want %s, %s, %s or %s)", impl, ImplTether, ImplTetherd, ImplBaseline, ImplNetpoll)
		}
	}
	if _, err := netip.ParseAddr(c.Src); err != nil {
		return c, fmt.Errorf("bad source address: %w", err)
	}
	// Every connection is a descriptor in the server process; the limit is
	// per process and here it cannot be raised, so say so before starting.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		const spare = 64 // listener, pipes, epoll, /proc reads
		if uint64(c.N)+spare > rl.Max {
			return c, fmt.Errorf("%d connections need %d descriptors in the server process, over the hard limit of %d", c.N, c.N+spare, rl.Max)
		}
	}
	return c, nil
}

// Sample is one reading of the server process.
type Sample struct {
	// RSS, RSSAnon and RSSFile are VmRSS, RssAnon and RssFile in bytes.
	RSS, RSSAnon, RSSFile int64
	// HeapAlloc, HeapInuse, HeapSys, StackInuse and Sys are the runtime.MemStats
	// fields of the same names, in bytes.
	HeapAlloc, HeapInuse, HeapSys, StackInuse, Sys int64
	// Goroutines is runtime.NumGoroutine.
	Goroutines int64
	// Conns and Authed are the server's open and authenticated connections.
	Conns, Authed int64
}

// Result is the measurement of one implementation.
type Result struct {
	Impl string
	// N is the number of connections at the After samples.
	N int
	// ServerGOMAXPROCS is the server process's GOMAXPROCS.
	ServerGOMAXPROCS int
	// Before is the listening server after a forced GC and scavenge; AfterRaw the
	// server at N ready connections as found; After the same after a forced GC and
	// scavenge.
	Before, AfterRaw, After Sample
	// ConnectTime is from starting the loaders until the last connection got
	// AUTH_OK; ReadyTime until the last one completed its PINGs.
	ConnectTime, ReadyTime time.Duration

	// RSSPerConn is (After.RSS - Before.RSS) / N: the headline figure.
	RSSPerConn float64
	// RSSPerConnRaw is (AfterRaw.RSS - Before.RSS) / N.
	RSSPerConnRaw float64
	// AnonPerConn is the RssAnon growth per connection, settled.
	AnonPerConn float64
	// HeapPerConn is the live Go heap (HeapAlloc after GC) growth per connection.
	HeapPerConn float64
	// StackPerConn is the goroutine stack (StackInuse) growth per connection.
	StackPerConn float64

	// HeapTopFile is the pprof -top text written for this server, if any.
	HeapTopFile string `json:",omitempty"`
}

// Env describes the machine and toolchain of a run.
type Env = kit.Env

// Report is the outcome of Run.
type Report struct {
	Env     Env
	Config  ReportConfig
	Results []Result
}

// ReportConfig records the parameters a Report was measured with.
type ReportConfig struct {
	N, Loaders, Pings       int
	Heartbeat, PingInterval time.Duration
	Rate                    float64
	Src                     string
	Transport               kit.Transport `json:",omitempty"`
}

// Ratio returns a's RSS per connection divided by b's, or 0 if either was not
// measured.
func (r *Report) Ratio(a, b string) float64 {
	var ra, rb float64
	for _, res := range r.Results {
		switch res.Impl {
		case a:
			ra = res.RSSPerConn
		case b:
			rb = res.RSSPerConn
		}
	}
	if ra <= 0 || rb <= 0 {
		return 0
	}
	return ra / rb
}

// Run measures each implementation in cfg.Impls in turn and returns the report. It
// starts and stops every process itself; nothing outlives it.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Env: kit.CurrentEnv(),
		Config: ReportConfig{N: cfg.N, Loaders: cfg.Loaders, Pings: cfg.Pings, Heartbeat: cfg.Heartbeat, PingInterval: cfg.PingInterval,
			Rate: cfg.Rate, Src: cfg.Src, Transport: cfg.Transport},
	}
	if slices.Contains(cfg.Impls, ImplTetherd) && cfg.Tetherd == "" {
		dir, err := os.MkdirTemp("", "tether-memtest-")
		if err != nil {
			return nil, fmt.Errorf("cannot build tetherd: %w", err)
		}
		defer os.RemoveAll(dir)
		if cfg.Tetherd, err = kit.BuildTetherd(ctx, dir); err != nil {
			return nil, err
		}
	}
	var cert kit.Cert
	if cfg.Transport.Secure() {
		dir, err := os.MkdirTemp("", "tether-memtest-cert-")
		if err != nil {
			return nil, fmt.Errorf("cannot create certificate directory: %w", err)
		}
		defer os.RemoveAll(dir)
		if cert, err = kit.SelfSignedCert(dir); err != nil {
			return nil, err
		}
	}
	for k, impl := range cfg.Impls {
		res, err := measure(ctx, cfg, cert, impl, k*cfg.Loaders)
		if err != nil {
			return rep, fmt.Errorf("cannot measure %s: %w", impl, err)
		}
		rep.Results = append(rep.Results, *res)
	}
	return rep, nil
}

// measure runs one implementation's server and loaders and takes its samples.
// Its loaders use source addresses from the srcOffset-th after cfg.Src, so that no
// implementation's connections meet the ports a previous one left in TIME_WAIT.
func measure(ctx context.Context, cfg RunConfig, cert kit.Cert, impl string, srcOffset int) (res *Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	log := &kit.Logger{W: cfg.Log}
	log.Printf("== %s: %d connections from %d loaders", impl, cfg.N, cfg.Loaders)

	srv, err := msg.StartChild(ctx, "serve "+impl, cfg.Exe, serve.Args(serve.Config{
		Impl: impl, Addr: "127.0.0.1:0", Heartbeat: cfg.Heartbeat, MemProfileRate: memProfileRate,
		MaxLifetime: cfg.Timeout, Tetherd: cfg.Tetherd, Transport: cfg.Transport, CertFile: cert.CertFile, KeyFile: cert.KeyFile,
	}), cfg.Env, log.Line)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := srv.Stop(30 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	ln, err := srv.Await(30*time.Second, nil, "listening")
	if err != nil {
		return nil, err
	}
	pid, addr := ln.PID, ln.Addr
	res = &Result{Impl: impl, N: cfg.N, ServerGOMAXPROCS: ln.GOMAXPROCS}
	if res.Before, err = sample(srv, pid, "gc"); err != nil {
		return nil, err
	}

	loaders, err := startLoaders(ctx, cfg, cert, addr, srcOffset, log)
	defer func() {
		for _, l := range loaders {
			if lerr := l.Stop(30 * time.Second); lerr != nil && err == nil {
				err = lerr
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	if res.ConnectTime, res.ReadyTime, err = awaitReady(ctx, loaders, srv, log); err != nil {
		return nil, err
	}
	log.Printf("   %s: %d connected in %v, ready in %v", impl, cfg.N, res.ConnectTime.Round(time.Millisecond), res.ReadyTime.Round(time.Millisecond))

	if res.AfterRaw, err = sample(srv, pid, "stats"); err != nil {
		return nil, err
	}
	if res.After, err = sample(srv, pid, "gc"); err != nil {
		return nil, err
	}
	if res.After.Authed != int64(cfg.N) {
		return nil, fmt.Errorf("server reports %d authenticated connections, want %d", res.After.Authed, cfg.N)
	}
	var profile string
	if cfg.HeapDir != "" {
		profile = filepath.Join(cfg.HeapDir, "tmp", "heap-"+impl+".pb.gz")
		if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create heap profile directory: %w", err)
		}
		if err := srv.Do(msg.Command{Op: "heap", Path: profile}); err != nil {
			return nil, err
		}
		if _, err := srv.Await(time.Minute, nil, "heap"); err != nil {
			return nil, err
		}
	}
	n := float64(cfg.N)
	res.RSSPerConn = float64(res.After.RSS-res.Before.RSS) / n
	res.RSSPerConnRaw = float64(res.AfterRaw.RSS-res.Before.RSS) / n
	res.AnonPerConn = float64(res.After.RSSAnon-res.Before.RSSAnon) / n
	res.HeapPerConn = float64(res.After.HeapAlloc-res.Before.HeapAlloc) / n
	res.StackPerConn = float64(res.After.StackInuse-res.Before.StackInuse) / n
	if profile != "" {
		name := "memory-heap.txt"
		if impl != ImplTether {
			name = "memory-heap-" + impl + ".txt"
		}
		res.HeapTopFile = filepath.Join(cfg.HeapDir, name)
		if err := writeHeapTop(profile, res.HeapTopFile, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// sample sends cmd ("stats" or "gc") to the server and reads its memory.
func sample(srv msg.Child, pid int, cmd string) (Sample, error) {
	if err := srv.Do(msg.Command{Op: cmd}); err != nil {
		return Sample{}, err
	}
	ev, err := srv.Await(time.Minute, nil, "stats")
	if err != nil {
		return Sample{}, err
	}
	if ev.Mem == nil {
		return Sample{}, fmt.Errorf("%s: stats event without memory", srv.Name())
	}
	pm, err := kit.ProcMem(pid)
	if err != nil {
		return Sample{}, err
	}
	m := ev.Mem
	return Sample{
		RSS: pm.RSS, RSSAnon: pm.Anon, RSSFile: pm.File,
		HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, HeapSys: m.HeapSys, StackInuse: m.StackInuse, Sys: m.Sys,
		Goroutines: m.Goroutines, Conns: m.Conns, Authed: m.Authed,
	}, nil
}

// startLoaders starts cfg.Loaders load children sharing cfg.N connections, each from
// its own source address, starting srcOffset addresses after cfg.Src. On error it
// returns the loaders already started, for the caller to stop.
func startLoaders(ctx context.Context, cfg RunConfig, cert kit.Cert, addr string, srcOffset int, log *kit.Logger) ([]msg.Child, error) {
	src := netip.MustParseAddr(cfg.Src)
	for range srcOffset {
		src = src.Next()
	}
	var loaders []msg.Child
	for i := range cfg.Loaders {
		n := cfg.N / cfg.Loaders
		if i < cfg.N%cfg.Loaders {
			n++
		}
		// The device id keeps the HELLO (and so what the server stores per
		// connection) as it was when the figures in BENCHMARKS.md were measured.
		args := loadgen.Args(loadgen.Config{Addr: addr, N: n, Src: src.String(), ID: i, DeviceID: "memtest",
			Rate: cfg.Rate / float64(cfg.Loaders), Concurrency: cfg.Concurrency, Pings: cfg.Pings, PingInterval: cfg.PingInterval, MaxLifetime: cfg.Timeout,
			Transport: cfg.Transport, CAFile: cert.CertFile})
		l, err := msg.StartChild(ctx, fmt.Sprintf("load %d", i), cfg.Exe, args, cfg.Env, log.Line)
		if err != nil {
			return loaders, err
		}
		loaders = append(loaders, l)
		src = src.Next()
	}
	return loaders, nil
}

// loaderEvent is an event from loader i; ok is false when its stdout ended.
type loaderEvent struct {
	i  int
	ev msg.Event
	ok bool
}

// awaitReady waits until every loader reports all its connections authenticated and
// ready, and returns the times since the call when the last did each. A failed or
// lost connection, a child's exit or ctx's end is an error.
func awaitReady(ctx context.Context, loaders []msg.Child, srv msg.Child, log *kit.Logger) (connect, ready time.Duration, err error) {
	start := time.Now()
	events := make(chan loaderEvent)
	fwdCtx, stopFwd := context.WithCancel(ctx)
	defer stopFwd()
	for i, l := range loaders {
		go func() {
			for {
				select {
				case <-fwdCtx.Done():
					return
				case ev, ok := <-l.Events():
					select {
					case events <- loaderEvent{i, ev, ok}:
					case <-fwdCtx.Done():
						return
					}
					if !ok {
						return
					}
				}
			}
		}()
	}
	authed, readied := 0, 0
	progress := make([]*msg.Stats, len(loaders))
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for readied < len(loaders) || authed < len(loaders) {
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("loaders not ready: %w (%s)", ctx.Err(), summarize(progress))
		case _, ok := <-srv.Events():
			if !ok {
				return 0, 0, errors.New("server exited during the load")
			}
		case le := <-events:
			if !le.ok {
				return 0, 0, fmt.Errorf("%s exited before its connections were ready (%s)", loaders[le.i].Name(), summarize(progress))
			}
			switch le.ev.Kind {
			case "authed":
				authed++
				if authed == len(loaders) {
					connect = time.Since(start)
				}
			case "ready":
				readied++
				if readied == len(loaders) {
					ready = time.Since(start)
				}
			case "progress":
				st := le.ev.Stats
				progress[le.i] = st
				if st != nil && st.Failed+st.Lost > 0 {
					return 0, 0, fmt.Errorf("%s: %d connections failed, %d lost: %s", loaders[le.i].Name(), st.Failed, st.Lost, msg.Reasons(st.Failures))
				}
			case "error":
				return 0, 0, fmt.Errorf("%s: %s", loaders[le.i].Name(), le.ev.Err)
			}
		case <-tick.C:
			log.Printf("   %s", summarize(progress))
		}
	}
	return connect, ready, nil
}

// summarize adds up the loaders' latest progress.
func summarize(progress []*msg.Stats) string {
	var t msg.Stats
	for _, p := range progress {
		t.Add(p)
	}
	return fmt.Sprintf("dialed=%d authed=%d ready=%d failed=%d lost=%d", t.Dialed, t.Authed, t.Ready, t.Failed, t.Lost)
}

// writeHeapTop writes `go tool pprof -top -sample_index=inuse_space` of profile to
// path, under a header saying what it is.
func writeHeapTop(profile, path string, res *Result) error {
	header := fmt.Sprintf("# Heap of the %s server holding %d authenticated connections (live objects after GC).\n"+
		"# Live heap grew %s per connection; RSS grew %s per connection (settled).\n"+
		"# Command: go tool pprof -top -sample_index=inuse_space %s\n\n",
		res.Impl, res.N, kit.FormatBytes(res.HeapPerConn), kit.FormatBytes(res.RSSPerConn), filepath.Base(profile))
	return kit.PprofTop(profile, path, header, "-sample_index=inuse_space")
}
