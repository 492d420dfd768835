package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/loadgen"
	"github.com/tether-gw/tether/bench/msg"
)

// Scenarios.
const (
	ScenarioConnect = "connect"
	ScenarioIdle    = "idle"
	ScenarioEcho    = "echo"
	ScenarioPush    = "push"
	ScenarioRoom    = "room"
	ScenarioChurn   = "churn"
)

// RunConfig configures one scenario run over one or more servers. The zero value
// keeps the defaults in each field's doc; Defaults fills them per scenario.
type RunConfig struct {
	// Scenario is one of the Scenario constants. Required.
	Scenario string
	// Impls are the servers measured one after the other; the first is the subject,
	// the others its baselines. Default per scenario.
	Impls []string
	// N is the number of client connections. Default per scenario.
	N int
	// Loaders is the minimum number of load processes; more are used when N does
	// not fit PerLoader. Default 1.
	Loaders int
	// PerLoader caps the connections of one load process, below the open-files
	// limit. Default min(10,000, hard limit - 256).
	PerLoader int
	// Src is the first loader's source address; each loader of each server gets the
	// next one. Default 127.0.0.2.
	Src string
	// Rate caps new connections per second, across loaders; 0 means unthrottled.
	Rate float64
	// Concurrency caps handshakes in progress per loader. Default 256.
	Concurrency int
	// Heartbeat is the interval the servers announce and the loaders PING at.
	// Default 5s for connect and idle, 60s otherwise (so PINGs stay out of the way).
	Heartbeat time.Duration
	// Warmup runs the load before the measured window. Default 2s.
	Warmup time.Duration
	// Duration is the measured window. Default 10s.
	Duration time.Duration
	// MsgRate is SENDs per second per connection for echo, or pushes per second
	// (messages, across users) for push and churn; 0 for echo or push means as fast
	// as the window or concurrency allows. Default per scenario.
	MsgRate float64
	// Window is the SENDs each echo connection keeps in flight; 0 means rate-driven
	// (MsgRate). Default 0.
	Window int
	// Size is the payload size in bytes. Default 32 (at least 16 for pushes).
	Size int
	// Batch is the users per push request. Default 100 (1 for churn).
	Batch int
	// QoS1 makes push scenario pushes acknowledged.
	QoS1 bool
	// Broadcasts is how many room broadcasts are timed one by one, and then sent
	// back to back for the CPU figure. Default 10.
	Broadcasts int
	// ChurnRate is connections dropped and reconnected per second. Default N/20.
	ChurnRate float64
	// Transport is how the loaders reach the servers: tls and wss with a
	// self-signed certificate the run generates in its work directory, ws and wss
	// on tetherd's WebSocket path. Only tetherd and the baseline serve every
	// transport; the embedded gateway and the bare echo serve raw TCP. Default
	// kit.TransportTCP.
	Transport kit.Transport
	// Tetherd is the tetherd binary; empty means build ./cmd/tetherd with go build.
	Tetherd string
	// Exe is the binary started as serve and load children. Default: this one.
	Exe string
	// Env is the children's environment. Default os.Environ().
	Env []string
	// Timeout bounds each server's measurement. Default 3m.
	Timeout time.Duration
	// ProfileDir, when set, receives a 5-second CPU profile of the subject server
	// (tetherd or tether) taken in the measured window.
	ProfileDir string
	// Log receives progress and children's output. Default: discard.
	Log io.Writer
	// TTY shows a live progress line on Log.
	TTY bool
}

// Defaults returns c with the scenario's defaults filled in, or an error.
func (c RunConfig) Defaults() (RunConfig, error) {
	switch c.Scenario {
	case ScenarioConnect, ScenarioIdle, ScenarioEcho, ScenarioPush, ScenarioRoom, ScenarioChurn:
	default:
		return c, fmt.Errorf("unknown scenario %q (want connect, idle, echo, push, room or churn)", c.Scenario)
	}
	c.Transport = c.Transport.Or()
	if _, err := kit.ParseTransport(string(c.Transport)); err != nil {
		return c, err
	}
	if len(c.Impls) == 0 {
		switch c.Scenario {
		case ScenarioConnect, ScenarioIdle:
			c.Impls = []string{ImplTetherd, ImplBaseline, ImplBare}
		case ScenarioEcho:
			c.Impls = []string{ImplTether, ImplBaseline, ImplBare}
		default:
			c.Impls = []string{ImplTetherd}
		}
		if c.Transport != kit.TransportTCP && c.Scenario != ScenarioPush && c.Scenario != ScenarioRoom && c.Scenario != ScenarioChurn {
			c.Impls = []string{ImplTetherd, ImplBaseline}
		}
	}
	for _, impl := range c.Impls {
		switch impl {
		case ImplTetherd, ImplTether, ImplBaseline, ImplBare:
		default:
			return c, fmt.Errorf("unknown server %q (want tetherd, tether, baseline or bare)", impl)
		}
		if c.Transport != kit.TransportTCP && impl != ImplTetherd && impl != ImplBaseline {
			return c, fmt.Errorf("%s serves raw TCP only; over %s measure %s or %s", impl, c.Transport, ImplTetherd, ImplBaseline)
		}
		if impl != ImplTetherd && impl != ImplTether && (c.Scenario == ScenarioPush || c.Scenario == ScenarioRoom || c.Scenario == ScenarioChurn) {
			return c, fmt.Errorf("the %s scenario needs the control port, which only %s and %s have", c.Scenario, ImplTetherd, ImplTether)
		}
	}
	if c.N <= 0 {
		switch c.Scenario {
		case ScenarioEcho:
			c.N = 10_000
			if c.Window > 0 {
				c.N = 64
			}
		case ScenarioChurn:
			c.N = 2000
		default:
			c.N = 19_000
		}
	}
	if c.Loaders <= 0 {
		c.Loaders = 1
	}
	_, hard := kit.FileLimit()
	if c.PerLoader <= 0 {
		c.PerLoader = min(10_000, int(hard)-256)
	}
	if c.PerLoader > int(hard)-64 {
		return c, fmt.Errorf("%d connections per loader need more descriptors than the open-files limit of %d", c.PerLoader, hard)
	}
	// The server holds every connection in one process: that cannot be spread.
	if c.N+64 > int(hard) {
		return c, fmt.Errorf("%d connections need %d descriptors in the server process, over its hard open-files limit of %d; "+
			"run at most %d per server", c.N, c.N+64, hard, int(hard)-64)
	}
	c.Loaders = max(c.Loaders, (c.N+c.PerLoader-1)/c.PerLoader)
	if c.Src == "" {
		c.Src = "127.0.0.2"
	}
	if _, err := netip.ParseAddr(c.Src); err != nil {
		return c, fmt.Errorf("bad source address: %w", err)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 60 * time.Second
		if c.Scenario == ScenarioIdle || c.Scenario == ScenarioConnect {
			c.Heartbeat = 5 * time.Second
		}
	}
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.MsgRate <= 0 {
		switch c.Scenario {
		case ScenarioEcho:
			if c.Window == 0 {
				c.MsgRate = 1
			}
		case ScenarioChurn:
			c.MsgRate = float64(c.N)
		}
	}
	if c.Size <= 0 {
		c.Size = 32
	}
	if c.Scenario != ScenarioEcho {
		c.Size = max(c.Size, 16)
	}
	if c.Batch <= 0 {
		c.Batch = 100
		if c.Scenario == ScenarioChurn {
			c.Batch = 1
		}
	}
	if c.Broadcasts <= 0 {
		c.Broadcasts = 10
	}
	if c.ChurnRate <= 0 {
		c.ChurnRate = float64(c.N) / 20
	}
	var err error
	if c.Exe, c.Env, err = kit.SelfExe(c.Exe, c.Env); err != nil {
		return c, err
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Minute
	}
	return c, nil
}

// Plan says how a run spreads its connections, for people: the file limit and what
// the tool does about it.
func (c RunConfig) Plan() string {
	soft, hard := kit.FileLimit()
	return fmt.Sprintf("open files: limit %d (soft, raised from the hard limit %d) per process; %d connections -> %d loader process(es) "+
		"of at most %d, each from its own loopback source address starting at %s (IP_BIND_ADDRESS_NO_PORT); the server holds all %d in one process",
		soft, hard, c.N, c.Loaders, c.PerLoader, c.Src, c.N)
}

// runner carries what the servers of one run share.
type runner struct {
	cfg     RunConfig
	log     *kit.Logger
	srcMu   sync.Mutex
	src     netip.Addr
	binOnce sync.Once
	bin     string
	binErr  error
	binDir  string
	// settle forces a GC in each server (srv.gc) before its first RSS reading,
	// for the settled memory figures of the transports measurement.
	settle bool

	// workMu guards work, a temporary directory for the run's certificate, and
	// cert, generated on first use.
	workMu sync.Mutex
	work   string
	cert   kit.Cert
}

func newRunner(cfg RunConfig) *runner {
	return &runner{cfg: cfg, log: &kit.Logger{W: cfg.Log, TTY: cfg.TTY}, src: netip.MustParseAddr(cfg.Src)}
}

func (r *runner) close() {
	if r.binDir != "" {
		os.RemoveAll(r.binDir)
	}
	if r.work != "" {
		os.RemoveAll(r.work)
	}
}

// certificate returns the run's self-signed certificate, generating it into the
// work directory on first use.
func (r *runner) certificate() (kit.Cert, error) {
	r.workMu.Lock()
	defer r.workMu.Unlock()
	if r.cert.CertFile != "" {
		return r.cert, nil
	}
	if r.work == "" {
		dir, err := os.MkdirTemp("", "tether-bench-work-")
		if err != nil {
			return kit.Cert{}, fmt.Errorf("cannot create work directory: %w", err)
		}
		r.work = dir
	}
	c, err := kit.SelfSignedCert(r.work)
	if err != nil {
		return kit.Cert{}, err
	}
	r.cert = c
	return c, nil
}

// transportCert returns the certificate the run's transport needs: none for
// plaintext ones.
func (r *runner) transportCert() (kit.Cert, error) {
	if !r.cfg.Transport.Secure() {
		return kit.Cert{}, nil
	}
	return r.certificate()
}

// nextSrc returns a fresh loopback source address.
func (r *runner) nextSrc() string {
	r.srcMu.Lock()
	defer r.srcMu.Unlock()
	a := r.src
	r.src = r.src.Next()
	return a.String()
}

// tetherd returns the tetherd binary, building it on first use.
func (r *runner) tetherd(ctx context.Context) (string, error) {
	r.binOnce.Do(func() {
		if r.cfg.Tetherd != "" {
			r.bin = r.cfg.Tetherd
			return
		}
		dir, err := os.MkdirTemp("", "tether-bench-")
		if err != nil {
			r.binErr = fmt.Errorf("cannot build tetherd: %w", err)
			return
		}
		r.binDir = dir
		r.log.Printf("building tetherd: go build -o %s github.com/tether-gw/tether/cmd/tetherd", filepath.Join(dir, "tetherd"))
		r.bin, r.binErr = kit.BuildTetherd(ctx, dir)
	})
	return r.bin, r.binErr
}

// session is one server with its loaders and connections.
type session struct {
	r    *runner
	name string
	// srv is the server, or the first node of a cluster (whose control port the
	// service uses); nodes are every node of a cluster, srv first, and nil for a
	// single server. Loader i connects to node i % len(nodes), and the server CPU
	// figures are the nodes' sum.
	srv   *serverProc
	nodes []*serverProc
	// pingInterval, when set, makes the loaders PING at it instead of the
	// announced heartbeat.
	pingInterval time.Duration
	// mark, when set, is called at the start and end of the measured phases
	// ("window-start", "window-end", "broadcasts-start", "broadcasts-end"), for
	// readings taken at the same moments as the CPU.
	mark      func(event string)
	loaders   []msg.Child
	counts    []int // connections per loader
	users     [][]string
	mu        sync.Mutex
	progress  []*msg.Stats
	phase     string
	stopTick  chan struct{}
	rssSeries []MemPoint
	rssBefore int64
	// cpuStart and cpuConnected are the server's CPU seconds before the first
	// connection and after the last authenticated; loaderCPUConnected is the
	// loaders' CPU seconds then (they start with the first connection).
	cpuStart, cpuConnected, loaderCPUConnected float64
}

// MemPoint is one sample of the server's RSS while connections were being opened.
type MemPoint struct {
	Conns int64
	RSS   int64
}

// open starts impl and n connections to it, and returns once every connection has
// authenticated or failed.
func (r *runner) open(ctx context.Context, impl string, n int, control bool) (*session, error) {
	cfg := r.cfg
	s := &session{r: r, name: cfg.Scenario + " " + impl, stopTick: make(chan struct{})}
	if cfg.Transport != kit.TransportTCP {
		s.name += " over " + string(cfg.Transport)
	}
	srv, err := startServer(ctx, r, impl, cfg.Heartbeat, control)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, s.begin(ctx, impl, n)
}

// begin takes the started servers' first readings and opens n connections to them,
// and returns once every connection has authenticated or failed; on failure it
// closes the session.
func (s *session) begin(ctx context.Context, impl string, n int) error {
	r, srv := s.r, s.srv
	time.Sleep(200 * time.Millisecond) // let the fresh process settle before the first RSS reading
	if r.settle && srv.gc != nil {
		if err := srv.gc(); err != nil {
			s.close()
			return err
		}
	}
	s.rssBefore, _ = kit.ProcRSS(srv.pid)
	s.cpuStart = s.cpu()
	if err := s.startLoaders(ctx, impl, n); err != nil {
		s.close()
		return err
	}
	if len(s.nodes) > 1 {
		r.log.Printf("== %s: %d connections from %d loader(s) over %d nodes, first node pid %d on %s", s.name, n, len(s.loaders), len(s.nodes), srv.pid, srv.addr)
	} else {
		r.log.Printf("== %s: %d connections from %d loader(s), server pid %d on %s", s.name, n, len(s.loaders), srv.pid, srv.addr)
	}
	go s.ticker()
	s.setPhase("connecting")
	if _, err := s.await(ctx, 2*time.Minute, "connected"); err != nil {
		s.close()
		return err
	}
	s.cpuConnected, s.loaderCPUConnected = s.cpu(), s.loaderCPU()
	return nil
}

// markEvent calls s.mark, if set.
func (s *session) markEvent(event string) {
	if s.mark != nil {
		s.mark(event)
	}
}

// startLoaders starts the load processes for n connections to impl, each from a
// fresh source address; they start connecting at once.
func (s *session) startLoaders(ctx context.Context, impl string, n int) error {
	cfg := s.r.cfg
	cert, err := s.r.transportCert()
	if err != nil {
		return err
	}
	loaders := max(cfg.Loaders, (n+cfg.PerLoader-1)/cfg.PerLoader)
	s.mu.Lock()
	s.progress = make([]*msg.Stats, loaders)
	s.mu.Unlock()
	s.loaders = nil
	var counts []int
	var users [][]string
	defer func() {
		s.mu.Lock()
		s.counts, s.users = counts, users
		s.mu.Unlock()
	}()
	for i := range loaders {
		cnt := n / loaders
		if i < n%loaders {
			cnt++
		}
		addr := s.srv.addr
		if len(s.nodes) > 0 {
			addr = s.nodes[i%len(s.nodes)].addr
		}
		lc := loadgen.Config{Addr: addr, N: cnt, PingInterval: s.pingInterval, Src: s.r.nextSrc(), ID: i, ClientVersion: "tether-bench",
			Rate: cfg.Rate / float64(loaders), Concurrency: cfg.Concurrency, MaxLifetime: cfg.Timeout,
			Transport: cfg.Transport, CAFile: cert.CertFile}
		if impl == ImplBare {
			lc.Bare, lc.PingInterval = true, cfg.Heartbeat
		}
		c, err := msg.StartChild(ctx, fmt.Sprintf("load %d", i), cfg.Exe, loadgen.Args(lc), cfg.Env, s.r.log.Line)
		if err != nil {
			return err
		}
		s.loaders = append(s.loaders, c)
		counts = append(counts, cnt)
		us := make([]string, cnt)
		for j := range us {
			us[j] = loadgen.User("u", i, j)
		}
		users = append(users, us)
	}
	return nil
}

// stopLoaders stops the load processes, which closes their connections.
func (s *session) stopLoaders() {
	var wg sync.WaitGroup
	for _, c := range s.loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Stop(30 * time.Second)
		}()
	}
	wg.Wait()
	s.loaders = nil
}

// ticker shows the live progress line and samples the server's RSS.
func (s *session) ticker() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopTick:
			s.r.log.EndStatus()
			return
		case <-t.C:
			sum := s.sum()
			s.mu.Lock()
			phase := s.phase
			s.mu.Unlock()
			if phase == "connecting" {
				if rss, err := kit.ProcRSS(s.srv.pid); err == nil {
					s.mu.Lock()
					s.rssSeries = append(s.rssSeries, MemPoint{Conns: sum.Open, RSS: rss - s.rssBefore})
					s.mu.Unlock()
				}
			}
			elapsed := time.Since(time.Unix(0, max(sum.FirstDial, 1))).Seconds()
			rate := 0.0
			if sum.FirstDial > 0 && elapsed > 0 {
				rate = float64(sum.Authed) / elapsed
			}
			s.mu.Lock()
			want := sumInts(s.counts)
			s.mu.Unlock()
			s.r.log.Status(fmt.Sprintf("[%s] %s: conns %d/%d open, %.0f/s, failed %d, lost %d | rx replies %d pongs %d pushes %d errors %d",
				s.name, phase, sum.Open, want, rate, sum.Failed, sum.Lost, sum.Replies, sum.Pongs, sum.Pushes, sum.Errors))
		}
	}
}

func (s *session) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
	s.r.log.Printf("   %s: %s", s.name, p)
}

// sum adds up the loaders' latest progress.
func (s *session) sum() msg.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t msg.Stats
	for _, p := range s.progress {
		t.Add(p)
	}
	return t
}

// await waits for an event of kind from every loader and returns their stats.
func (s *session) await(ctx context.Context, timeout time.Duration, kind string) ([]*msg.Stats, error) {
	out := make([]*msg.Stats, len(s.loaders))
	errs := make([]error, len(s.loaders))
	var wg sync.WaitGroup
	for i, c := range s.loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev, err := c.Await(timeout, func(ev msg.Event) {
				s.mu.Lock()
				s.progress[i] = ev.Stats
				s.mu.Unlock()
			}, kind)
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = ev.Stats
			if ev.Stats != nil && kind != "report" && kind != "stopped" {
				s.mu.Lock()
				s.progress[i] = ev.Stats
				s.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// all sends cmd to every loader and waits for the answer kind.
func (s *session) all(ctx context.Context, cmd msg.Command, kind string, timeout time.Duration) ([]*msg.Stats, error) {
	for _, c := range s.loaders {
		if err := c.Do(cmd); err != nil {
			return nil, err
		}
	}
	if kind == "" {
		return nil, nil
	}
	return s.await(ctx, timeout, kind)
}

// split divides a total rate among the loaders by their share of connections.
func (s *session) split(total float64, i int) float64 {
	return total * float64(s.counts[i]) / float64(sumInts(s.counts))
}

// each sends every loader its own command.
func (s *session) each(cmd func(i int) msg.Command) error {
	for i, c := range s.loaders {
		if err := c.Do(cmd(i)); err != nil {
			return err
		}
	}
	return nil
}

// cpu returns the server's CPU seconds so far (a cluster's: the sum over its
// nodes).
func (s *session) cpu() float64 {
	if len(s.nodes) > 0 {
		var t float64
		for _, n := range s.nodes {
			v, _ := kit.ProcCPU(n.pid)
			t += v
		}
		return t
	}
	v, _ := kit.ProcCPU(s.srv.pid)
	return v
}

// loaderCPU returns the loaders' CPU seconds so far.
func (s *session) loaderCPU() float64 {
	var t float64
	for _, c := range s.loaders {
		v, _ := kit.ProcCPU(c.PID())
		t += v
	}
	return t
}

// close stops the loaders, then the server.
func (s *session) close() {
	select {
	case <-s.stopTick:
	default:
		close(s.stopTick)
	}
	s.stopLoaders()
	if len(s.nodes) > 0 {
		var wg sync.WaitGroup
		for _, n := range s.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.stop()
			}()
		}
		wg.Wait()
	} else if s.srv != nil {
		s.srv.stop()
	}
}

func sumInts(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}
