package load

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/faults"
	"github.com/tether-gw/tether/bench/floor"
	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/loadgen"
	"github.com/tether-gw/tether/bench/serve"
)

const usage = `usage: tether-bench <scenario|command> [flags]

Load scenarios, each bounded in connections and time, on loopback, against a
server it starts itself (tetherd, built with go build, by default) and the
baselines measured in the same run:

  connect  open N connections at a target rate, authenticate, hold; connect rate,
           failures by reason, server RSS per connection
  idle     hold N connections heartbeating; server CPU per heartbeat
  echo     SEND -> handler -> SEND_REPLY at a rate over N connections (or -window
           in flight each); latency percentiles, throughput, errors
  push     a service on the control port pushes to users; end-to-end latency,
           messages/s, server CPU per delivered message
  room     a service broadcasts to a room of N members; time until the last member
           has it, messages/s, server CPU per delivered message
  churn    connections drop and reconnect while QoS1 pushes flow; checks nothing is
           lost or duplicated, reports reconnect time

Other commands:

  transports  memory per idle connection, handshake+auth rate and room fan-out CPU
           per message of tetherd and the goroutine-per-connection baseline over
           tcp, tls, ws and wss, each against tetherd over raw tcp
  cluster  tetherd nodes on a nats-server (started by the bench) against one
           tetherd: cross-node push and room fan-out (latency, messages/s, CPU
           per message summed over the nodes) and NATS messages and bytes per
           push, per room broadcast and per client heartbeat

  suite    the standard suite behind make bench: every scenario, the floor probe,
           raw results under bench/results and the tables in BENCHMARKS.md
  floor    the kernel floor probe (bench/floor) in a process of its own
  floor-peer  the probe's peer process (started by floor)
  serve    a server child (bench/serve, started by the scenarios)
  load     a load child (bench/loadgen, started by the scenarios)

` + faults.Usage + `
Run "tether-bench <scenario> -h" for the flags. Example:

  tether-bench echo -n 10000 -msg-rate 1 -duration 15s -json out.json -plot plots/
`

// Main runs the command line args (without the program name) and returns the exit
// status. cmd/tether-bench is a thin wrapper around it; the children the scenarios
// start are the same binary called with "serve" and "load".
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cmds []kit.Command
	for _, sc := range []string{ScenarioConnect, ScenarioIdle, ScenarioEcho, ScenarioPush, ScenarioRoom, ScenarioChurn} {
		cmds = append(cmds, kit.Command{Name: sc, Run: func(a []string) error { return mainScenario(sc, a, stdout, stderr) }})
	}
	cmds = append(cmds,
		kit.Command{Name: "transports", Run: func(a []string) error { return mainTransports(a, stdout, stderr) }},
		kit.Command{Name: "cluster", Run: func(a []string) error { return mainCluster(a, stdout, stderr) }},
		kit.Command{Name: "suite", Run: func(a []string) error { return mainSuite(a, stdout, stderr) }},
		kit.Command{Name: "floor", Run: func(a []string) error { return mainFloor(a, stdout, stderr) }},
		kit.Command{Name: floorPeerCmd, Run: func(a []string) error { return floor.PeerMain(a, stdin, stdout, stderr) }},
		serve.Command("tether-bench", stdin, stdout, stderr),
		loadgen.Command("tether-bench", stdin, stdout, stderr),
	)
	cmds = append(cmds, faults.Commands("tether-bench", stdout, stderr)...)
	return kit.Main("tether-bench", usage, cmds, args, stdout, stderr)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return kit.FlagSet("tether-bench", name, stderr)
}

// scenarioFlags binds the flags of a scenario to cfg.
func scenarioFlags(fs *flag.FlagSet, cfg *RunConfig) *string {
	impls := fs.String("impl", "", "The servers to measure, comma-separated, the subject first: tetherd (the daemon), tether (the package embedded with an echo handler), baseline (goroutine per connection), bare (netpoll byte echo, the ceiling). Default: tetherd,baseline,bare for connect and idle; tether,baseline,bare for echo; tetherd for push, room and churn; over tls, ws or wss tetherd,baseline (tetherd for push, room and churn).")
	fs.IntVar(&cfg.N, "n", 0, "The number of client connections. Default 19000 (echo: 10000, or 64 with -window; churn: 2000).")
	fs.IntVar(&cfg.Loaders, "loaders", 1, "The minimum number of load processes; more are started when n does not fit -per-loader.")
	fs.IntVar(&cfg.PerLoader, "per-loader", 0, "The most connections one load process holds; 0 means min(10000, the open-files hard limit - 256).")
	fs.StringVar(&cfg.Src, "src", "127.0.0.2", "The first loader's loopback source address; every further loader uses the next address.")
	fs.Float64Var(&cfg.Rate, "rate", 0, "The target rate of new connections per second across loaders; 0 means as fast as -concurrency allows.")
	fs.IntVar(&cfg.Concurrency, "concurrency", 256, "The handshakes (dial to AUTH_OK) one loader keeps in progress at most.")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "The heartbeat the servers announce; every connection PINGs once per heartbeat. Default 5s for connect and idle, 60s otherwise.")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "The time the load runs before the measured window.")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "The measured window (connect: how long the connections are held).")
	fs.Float64Var(&cfg.MsgRate, "msg-rate", 0, "echo: SENDs per second per connection (default 1); push: messages per second across users (default 0, closed loop); churn: QoS1 pushes per second (default n).")
	fs.IntVar(&cfg.Window, "window", 0, "echo: SENDs each connection keeps in flight (pipelining) instead of -msg-rate.")
	fs.IntVar(&cfg.Size, "size", 32, "The payload size in bytes (pushes: at least 16, for the timestamp and sequence number).")
	fs.IntVar(&cfg.Batch, "batch", 0, "push: users per push request (default 100).")
	fs.BoolVar(&cfg.QoS1, "qos1", false, "push: push QoS1 (acknowledged, sequenced) instead of QoS0.")
	fs.IntVar(&cfg.Broadcasts, "broadcasts", 10, "room: broadcasts timed one by one, then sent back to back.")
	fs.Float64Var(&cfg.ChurnRate, "churn-rate", 0, "churn: connections dropped and reconnected per second; default n/20.")
	fs.Func("transport", "How the loaders reach the servers: tcp, tls, ws or wss (tls and wss with a self-signed ECDSA P-256 certificate generated for the run; only tetherd and baseline serve all four). Default tcp.", func(v string) error {
		t, err := kit.ParseTransport(v)
		cfg.Transport = t
		return err
	})
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary; empty means build ./cmd/tetherd with go build (run from the module).")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "The time limit for one server's measurement; children exit by themselves after it.")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "A directory for a 5-second CPU profile of the server (from its admin /debug/pprof/profile) taken in the window.")
	return impls
}

func mainScenario(name string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(name, stderr)
	cfg := RunConfig{Scenario: name}
	impls := scenarioFlags(fs, &cfg)
	jsonOut := fs.String("json", "", "Also write the report as JSON to this file; - means stdout, after the table.")
	plotDir := fs.String("plot", "", "Write plots (latency CDF; memory per connection for connect) as PNG into this directory.")
	quiet := fs.Bool("q", false, "Print no progress and no child output on stderr.")
	if err := kit.Parse(fs, args); err != nil {
		return err
	}
	if *impls != "" {
		cfg.Impls = strings.Split(*impls, ",")
	}
	if !*quiet {
		cfg.Log = stderr
		cfg.TTY = isTerminal(stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := cfg.Defaults()
	if err != nil {
		return err
	}
	results, err := Run(ctx, cfg)
	rep := NewReport(cfg, results)
	if len(results) > 0 {
		if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if *plotDir != "" {
		files, err := rep.Plots(*plotDir)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintf(stdout, "plot: %s\n", f)
		}
	}
	if *jsonOut != "" {
		return kit.WriteJSON(*jsonOut, rep, stdout)
	}
	return nil
}

// Plots writes the report's plots into dir and returns their paths.
func (r *Report) Plots(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create plot directory: %w", err)
	}
	var files []string
	c := r.Config
	lat := filepath.Join(dir, fmt.Sprintf("%s-latency.png", c.Scenario))
	if c.Scenario == ScenarioEcho && c.Window > 0 {
		lat = filepath.Join(dir, "echo-pipelined-latency.png")
	}
	ok, err := PlotLatency(lat, fmt.Sprintf("%s: latency CDF, %d connections", c.Scenario, c.N), r.Results)
	if err != nil {
		return nil, err
	}
	if ok {
		files = append(files, lat)
	}
	if c.Scenario == ScenarioConnect {
		mem := filepath.Join(dir, "connect-memory.png")
		ok, err := PlotMemory(mem, "server RSS growth per connection while connecting", r.Results)
		if err != nil {
			return nil, err
		}
		if ok {
			files = append(files, mem)
		}
	}
	return files, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
