package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/floor"
	"github.com/tether-gw/tether/bench/kit"
)

// Markers delimit the section of BENCHMARKS.md that the suite writes.
const (
	MarkBegin = "<!-- tether-bench:begin -->"
	MarkEnd   = "<!-- tether-bench:end -->"
)

// SuiteConfig configures the standard suite.
type SuiteConfig struct {
	// Results is the directory for raw results. Default bench/results.
	Results string
	// Markdown is the file whose marked section receives the tables. Default
	// BENCHMARKS.md; "-" means none.
	Markdown string
	// Micro is a file holding the micro-benchmarks' output, quoted in the section.
	Micro string
	// Memtest is the tether-memtest binary; empty skips the memory run.
	Memtest string
	// Tetherd is the tetherd binary; empty means build it.
	Tetherd string
	// Scale divides every connection count and duration, for a quick check of the
	// suite itself. Default 1.
	Scale int
	// Only, when set, runs only the named steps (comma-separated: floor, connect,
	// idle, echo, pipelined, push, room, churn, transports, cluster, memtest).
	// The cluster step needs the nats-server binary (Debian package nats-server).
	Only string
	// Log receives progress.
	Log io.Writer
	// TTY shows a live progress line.
	TTY bool
}

// step is one measurement of the suite.
type step struct {
	name string
	cfg  RunConfig
	cmd  string // the equivalent command line, for BENCHMARKS.md
}

// suiteSteps returns the standard load suite, sized for a 2-core machine.
func suiteSteps(scale int) []step {
	n := func(v int) int { return max(v/scale, 20) }
	d := func(v time.Duration) time.Duration { return max(v/time.Duration(scale), time.Second) }
	return []step{
		{"connect", RunConfig{Scenario: ScenarioConnect, N: n(19000), Duration: d(3 * time.Second)},
			fmt.Sprintf("tether-bench connect -n %d -duration %v", n(19000), d(3*time.Second))},
		{"idle", RunConfig{Scenario: ScenarioIdle, N: n(19000), Heartbeat: 5 * time.Second, Warmup: d(6 * time.Second), Duration: d(15 * time.Second)},
			fmt.Sprintf("tether-bench idle -n %d -heartbeat 5s -warmup %v -duration %v", n(19000), d(6*time.Second), d(15*time.Second))},
		{"echo", RunConfig{Scenario: ScenarioEcho, Impls: []string{ImplTether, ImplTetherd, ImplBaseline, ImplBare}, N: n(10000), MsgRate: 1,
			Warmup: d(3 * time.Second), Duration: d(15 * time.Second)},
			fmt.Sprintf("tether-bench echo -impl tether,tetherd,baseline,bare -n %d -msg-rate 1 -warmup %v -duration %v", n(10000), d(3*time.Second), d(15*time.Second))},
		{"pipelined", RunConfig{Scenario: ScenarioEcho, Impls: []string{ImplTether, ImplTetherd, ImplBaseline, ImplBare}, N: 64, Window: 16,
			Warmup: d(2 * time.Second), Duration: d(8 * time.Second)},
			fmt.Sprintf("tether-bench echo -impl tether,tetherd,baseline,bare -n 64 -window 16 -warmup %v -duration %v", d(2*time.Second), d(8*time.Second))},
		{"push", RunConfig{Scenario: ScenarioPush, N: n(19000), Warmup: d(2 * time.Second), Duration: d(10 * time.Second)},
			fmt.Sprintf("tether-bench push -n %d -warmup %v -duration %v", n(19000), d(2*time.Second), d(10*time.Second))},
		{"room", RunConfig{Scenario: ScenarioRoom, N: n(19000), Broadcasts: 10},
			fmt.Sprintf("tether-bench room -n %d -broadcasts 10", n(19000))},
		{"churn", RunConfig{Scenario: ScenarioChurn, N: n(2000), ChurnRate: float64(n(2000)) / 20, MsgRate: float64(n(2000)), Duration: d(20 * time.Second)},
			fmt.Sprintf("tether-bench churn -n %d -churn-rate %d -msg-rate %d -duration %v", n(2000), n(2000)/20, n(2000), d(20*time.Second))},
	}
}

// suiteTransports returns the suite's transports measurement: 19,000 connections
// (scaled) per server per transport, like the memory figures. On the 2-core
// reference machine it adds about 90 seconds (8 servers of 19,000 connections).
func suiteTransports(scale int) TransportsConfig {
	return TransportsConfig{Transports: kit.Transports, Impls: []string{ImplTetherd, ImplBaseline}, N: max(19000/scale, 50), Loaders: 2,
		Concurrency: 64, Src: "127.0.6.2", Broadcasts: 10}
}

// suiteCluster returns the suite's cluster measurement: 19,000 connections
// (scaled) on one tetherd, then over 3 nodes on a nats-server. On the 2-core
// reference machine it takes about 2 minutes.
func suiteCluster(scale int) ClusterConfig {
	d := func(v time.Duration) time.Duration { return max(v/time.Duration(scale), time.Second) }
	return ClusterConfig{N: max(19000/scale, 60), Nodes: 3, Loaders: 2, Src: "127.0.8.2", Warmup: d(2 * time.Second), Duration: d(8 * time.Second),
		Broadcasts: 10, Background: max(d(6*time.Second), 3*time.Second), HeartbeatWindow: d(8 * time.Second)}
}

// SuiteResult is everything the suite measured.
type SuiteResult struct {
	Env     Env
	Floor   *floor.Result
	Reports map[string]*Report
	Memtest *MemtestFigures `json:",omitempty"`
	// Transports is the transports measurement (tcp, tls, ws, wss).
	Transports *TransportsReport `json:",omitempty"`
	// Cluster is the cluster measurement (3 nodes on NATS against one node).
	Cluster *ClusterReport `json:",omitempty"`
	Targets []Target
	Seconds float64
	// Scale is the suite's -scale.
	Scale int
}

// MemtestFigures are the settled RSS per connection from tether-memtest.
type MemtestFigures struct {
	N          int
	RSSPerConn map[string]float64
	Text       string `json:"-"`
}

// Target is one of the targets with the figure reached.
type Target struct {
	Name, Want, Got string
	Met             bool
	Note            string
	// Limit says, for a missed target, what the server's CPU profile (or the
	// heap profile) shows it spending the time (or memory) on.
	Limit string `json:",omitempty"`
}

func mainSuite(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("suite", stderr)
	var cfg SuiteConfig
	fs.StringVar(&cfg.Results, "results", "bench/results", "The directory for raw results (text, JSON, plots, profiles).")
	fs.StringVar(&cfg.Markdown, "md", "BENCHMARKS.md", "The file whose section between the tether-bench markers receives the tables; - for none.")
	fs.StringVar(&cfg.Micro, "micro", "", "A file with the micro-benchmarks' output to quote.")
	fs.StringVar(&cfg.Memtest, "memtest", "", "The tether-memtest binary for the memory run at 19,000 connections; empty skips it.")
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary; empty means build ./cmd/tetherd.")
	fs.IntVar(&cfg.Scale, "scale", 1, "Divide connection counts and durations by this, to check the suite quickly.")
	fs.StringVar(&cfg.Only, "only", "", "Run only these steps, comma-separated: floor, connect, idle, echo, pipelined, push, room, churn, transports, cluster, memtest.")
	quiet := fs.Bool("q", false, "Print no progress.")
	render := fs.Bool("render", false, "Measure nothing: rewrite the section of -md from the suite.json in -results.")
	if err := kit.Parse(fs, args); err != nil {
		return err
	}
	if *render {
		return renderSuite(cfg, stdout)
	}
	if !*quiet {
		cfg.Log, cfg.TTY = stderr, isTerminal(stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := RunSuite(ctx, cfg)
	if res != nil {
		fmt.Fprint(stdout, res.TargetsText())
	}
	return err
}

// RunSuite runs the floor probe and every step, writes raw results under
// cfg.Results and the generated section of cfg.Markdown.
func RunSuite(ctx context.Context, cfg SuiteConfig) (*SuiteResult, error) {
	if cfg.Results == "" {
		cfg.Results = "bench/results"
	}
	if cfg.Markdown == "" {
		cfg.Markdown = "BENCHMARKS.md"
	}
	cfg.Scale = max(cfg.Scale, 1)
	start := time.Now()
	log := &kit.Logger{W: cfg.Log, TTY: cfg.TTY}
	only := func(name string) bool { return cfg.Only == "" || slices.Contains(strings.Split(cfg.Only, ","), name) }
	plots := filepath.Join(cfg.Results, "plots")
	profiles := filepath.Join(cfg.Results, "profiles")
	for _, d := range []string{cfg.Results, plots, profiles} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", d, err)
		}
	}
	sr := &SuiteResult{Env: kit.CurrentEnv(), Reports: map[string]*Report{}, Scale: cfg.Scale}
	if only("floor") {
		log.Printf("== floor probe")
		peer, err := floorPeer()
		if err != nil {
			return sr, err
		}
		f, err := floor.Probe(floor.Config{N: max(5000/cfg.Scale, 100), Peer: peer, Conns: max(19000/cfg.Scale, 100), Src: "127.0.5.2",
			Window: floorWindow(cfg.Scale), Log: func(s string) { log.Printf("%s", s) }})
		if err != nil {
			return sr, err
		}
		sr.Floor = f
		if err := writeBoth(filepath.Join(cfg.Results, "floor"), f.Text(), f); err != nil {
			return sr, err
		}
	}
	tetherd := cfg.Tetherd
	src := "127.0.0.2"
	for _, st := range suiteSteps(cfg.Scale) {
		if !only(st.name) {
			continue
		}
		rc := st.cfg
		rc.Tetherd, rc.Log, rc.TTY, rc.ProfileDir, rc.Src = tetherd, cfg.Log, cfg.TTY, profiles, src
		rc, err := rc.Defaults()
		if err != nil {
			return sr, err
		}
		results, err := Run(ctx, rc)
		if err != nil {
			return sr, fmt.Errorf("step %s: %w", st.name, err)
		}
		// Fresh source addresses for the next step, so no run meets another's ports.
		a := mustAddr(src)
		for range len(rc.Impls) * rc.Loaders * 2 {
			a = a.Next()
		}
		src = a.String()
		rep := NewReport(rc, results)
		sr.Reports[st.name] = rep
		var text bytes.Buffer
		fmt.Fprintf(&text, "# %s\n# %s\n\n", st.cmd, rc.Plan())
		_ = rep.WriteText(&text)
		if _, err := rep.Plots(plots); err != nil {
			return sr, err
		}
		for _, x := range results {
			if x.Profile != "" {
				topFile := filepath.Join(cfg.Results, fmt.Sprintf("profile-%s-%s.txt", st.name, x.Impl))
				what := "the measured window of: " + st.cmd
				if st.name == "connect" {
					what = "a second connect pass of: " + st.cmd + " (the first pass's connections closed, as many again connecting)"
				}
				if err := pprofTop(x.Profile, topFile, what); err != nil {
					log.Printf("   %v", err)
				}
				if x.ProfileShares, err = profileShares(x.Profile); err != nil {
					log.Printf("   %v", err)
				}
			}
		}
		if err := writeBoth(filepath.Join(cfg.Results, "load-"+st.name), text.String(), rep); err != nil {
			return sr, err
		}
		log.Printf("%s", text.String())
	}
	if only("transports") {
		tc := suiteTransports(cfg.Scale)
		tc.Tetherd, tc.Log, tc.TTY = tetherd, cfg.Log, cfg.TTY
		log.Printf("== transports: %s", transportsCmd(tc))
		rep, err := RunTransports(ctx, tc)
		if err != nil {
			return sr, fmt.Errorf("step transports: %w", err)
		}
		sr.Transports = rep
		var text bytes.Buffer
		fmt.Fprintf(&text, "# %s\n\n", transportsCmd(tc))
		_ = rep.WriteText(&text)
		if err := writeBoth(filepath.Join(cfg.Results, "load-transports"), text.String(), rep); err != nil {
			return sr, err
		}
		log.Printf("%s", text.String())
	}
	if only("cluster") {
		cc := suiteCluster(cfg.Scale)
		cc.Tetherd, cc.Log, cc.TTY = tetherd, cfg.Log, cfg.TTY
		log.Printf("== cluster: %s", clusterCmd(cc))
		rep, err := RunCluster(ctx, cc)
		if err != nil {
			return sr, fmt.Errorf("step cluster: %w", err)
		}
		sr.Cluster = rep
		var text bytes.Buffer
		fmt.Fprintf(&text, "# %s\n\n", clusterCmd(cc))
		_ = rep.WriteText(&text)
		if err := writeBoth(filepath.Join(cfg.Results, "load-cluster"), text.String(), rep); err != nil {
			return sr, err
		}
		log.Printf("%s", text.String())
	}
	if only("memtest") && cfg.Memtest != "" {
		m, err := runMemtest(ctx, cfg, log)
		if err != nil {
			return sr, err
		}
		sr.Memtest = m
	}
	sr.Seconds = time.Since(start).Seconds()
	sr.Targets = sr.targets()
	if err := writeJSONFile(filepath.Join(cfg.Results, "suite.json"), sr); err != nil {
		return sr, err
	}
	if cfg.Markdown != "-" {
		if err := updateMarkdown(cfg.Markdown, sr.Markdown(cfg)); err != nil {
			return sr, err
		}
	}
	return sr, nil
}

// runMemtest runs tether-memtest at 19,000 connections (scaled) for the settled
// RSS per connection of every server.
func runMemtest(ctx context.Context, cfg SuiteConfig, log *kit.Logger) (*MemtestFigures, error) {
	n := max(19000/cfg.Scale, 50)
	jsonPath := filepath.Join(cfg.Results, "memory-suite.json")
	args := []string{"run", "-n", fmt.Sprint(n), "-loaders", "2", "-impl", "tether,tetherd,baseline,netpoll", "-ping-interval", "1s",
		"-src", "127.0.4.2", "-json", jsonPath, "-q"}
	if cfg.Tetherd != "" {
		args = append(args, "-tetherd", cfg.Tetherd) // else tether-memtest builds its own
	}
	log.Printf("== memtest: %s %s", cfg.Memtest, strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, cfg.Memtest, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("tether-memtest: %w: %s", err, out)
	}
	text := fmt.Sprintf("# tether-memtest %s\n\n%s", strings.Join(args, " "), out)
	if err := os.WriteFile(filepath.Join(cfg.Results, "memory-suite.txt"), []byte(text), 0o644); err != nil {
		return nil, err
	}
	var rep struct {
		Results []struct {
			Impl       string
			RSSPerConn float64
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", jsonPath, err)
	}
	m := &MemtestFigures{N: n, RSSPerConn: map[string]float64{}, Text: string(out)}
	for _, r := range rep.Results {
		m.RSSPerConn[r.Impl] = r.RSSPerConn
	}
	log.Printf("%s", out)
	return m, nil
}

// pprofTop writes `go tool pprof -top` of a CPU profile, under a header saying what
// it was taken during.
func pprofTop(profile, path, what string) error {
	header := fmt.Sprintf("# CPU profile of the server during %s\n# go tool pprof -top -nodecount=30 %s\n\n", what, profile)
	return kit.PprofTop(profile, path, header, "-nodecount=30")
}

// writeBoth writes text to base.txt and v as JSON to base.json.
func writeBoth(base, text string, v any) error {
	if err := os.WriteFile(base+".txt", []byte(text), 0o644); err != nil {
		return fmt.Errorf("cannot write results: %w", err)
	}
	return writeJSONFile(base+".json", v)
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode %s: %w", path, err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// updateMarkdown replaces the marked section of path with section, appending the
// markers at the end of the file when it has none (or creating the file).
func updateMarkdown(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	s := string(old)
	block := MarkBegin + "\n" + section + MarkEnd
	i, j := strings.Index(s, MarkBegin), strings.Index(s, MarkEnd)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + block + s[j+len(MarkEnd):]
	case i >= 0 || j >= 0:
		return fmt.Errorf("%s has only one of the markers %s and %s", path, MarkBegin, MarkEnd)
	default:
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		if s != "" {
			s += "\n"
		}
		s += block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// floorWindow is the fair heartbeat floor's window in the suite.
func floorWindow(scale int) time.Duration {
	return max(10*time.Second/time.Duration(scale), time.Second)
}

// floorPeerCmd is the subcommand that runs the floor probe's peer process.
const floorPeerCmd = "floor-peer"

// floorPeer returns the command line of the floor probe's peer: this binary.
func floorPeer() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find own executable: %w", err)
	}
	return []string{exe, floorPeerCmd}, nil
}

func mainFloor(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("floor", stderr)
	var cfg floor.Config
	cfg.Flags(fs)
	jsonOut := fs.String("json", "", "Also write the result as JSON to this file; - means stdout.")
	inProcess := fs.Bool("in-process", false, "Measure only the in-process floor, without the peer process.")
	if err := kit.Parse(fs, args); err != nil {
		return err
	}
	if !*inProcess {
		peer, err := floorPeer()
		if err != nil {
			return err
		}
		cfg.Peer = peer
		cfg.Log = func(s string) { fmt.Fprintln(stderr, s) }
	}
	res, err := floor.Probe(cfg)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res.Text())
	if *jsonOut != "" {
		return kit.WriteJSON(*jsonOut, res, stdout)
	}
	return nil
}

// renderSuite rewrites the generated section from a previous run's suite.json.
func renderSuite(cfg SuiteConfig, stdout io.Writer) error {
	b, err := os.ReadFile(filepath.Join(cfg.Results, "suite.json"))
	if err != nil {
		return fmt.Errorf("cannot read the previous run: %w", err)
	}
	var sr SuiteResult
	if err := json.Unmarshal(b, &sr); err != nil {
		return fmt.Errorf("cannot read the previous run: %w", err)
	}
	if sr.Memtest != nil {
		if t, err := os.ReadFile(filepath.Join(cfg.Results, "memory-suite.txt")); err == nil {
			_, body, _ := strings.Cut(string(t), "\n\n")
			sr.Memtest.Text = body
		}
	}
	cfg.Scale = max(sr.Scale, 1)
	sr.Targets = sr.targets()
	fmt.Fprint(stdout, sr.TargetsText())
	if cfg.Markdown == "-" {
		return nil
	}
	return updateMarkdown(cfg.Markdown, sr.Markdown(cfg))
}
