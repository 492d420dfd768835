package load

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/tether-gw/tether/bench/kit"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// result returns the result of impl in step name, or nil.
func (sr *SuiteResult) result(name, impl string) *Result {
	if rep := sr.Reports[name]; rep != nil {
		return rep.Find(impl)
	}
	return nil
}

// targets checks the targets against the figures.
func (sr *SuiteResult) targets() []Target {
	var ts []Target
	add := func(t Target) { ts = append(ts, t) }
	// Memory.
	heapLimit := "heap profile (bench/results/memory-heap.txt): netpoll's per-connection writev barrier and bookkeeping, about 3 KB of the 4 (see §1)"
	if sr.Memtest != nil {
		if v, ok := sr.Memtest.RSSPerConn[ImplTetherd]; ok {
			t := Target{Name: fmt.Sprintf("memory: RSS per authenticated, heartbeating connection at %d (tetherd, settled, tether-memtest)", sr.Memtest.N),
				Want: "≤ 2 KiB", Got: kit.FormatBytes(v), Met: v <= 2048,
				Note: fmt.Sprintf("baseline %s, bare netpoll %s", kit.FormatBytes(sr.Memtest.RSSPerConn[ImplBaseline]), kit.FormatBytes(sr.Memtest.RSSPerConn["netpoll"]))}
			if !t.Met {
				t.Limit = heapLimit
			}
			add(t)
		}
	}
	if r := sr.result("connect", ImplTetherd); r != nil {
		note := ""
		if b := sr.result("connect", ImplBaseline); b != nil && b.RSSPerConn > 0 {
			note = fmt.Sprintf("baseline %s (%.2fx)", kit.FormatBytes(b.RSSPerConn), r.RSSPerConn/b.RSSPerConn)
		}
		t := Target{Name: fmt.Sprintf("memory: RSS per connection at %d, as found after connect+hold (tetherd)", r.Connected),
			Want: "≤ 2 KiB", Got: kit.FormatBytes(r.RSSPerConn), Met: r.RSSPerConn <= 2048, Note: note}
		if !t.Met {
			t.Limit = heapLimit + "; as found, also heap not yet returned to the OS"
		}
		add(t)
	}
	f := sr.Floor
	// Fan-out.
	for _, name := range []string{"room", "push"} {
		r := sr.result(name, ImplTetherd)
		if r == nil || f == nil || r.CPUPerMsg <= 0 {
			continue
		}
		what := "room broadcast"
		if name == "push" {
			what = "push to users (100 per request)"
		}
		floorUS, kind := f.Write/1e3, "in-process write floor"
		if f.FairWrite > 0 {
			floorUS, kind = f.FairWrite/1e3, "fair write floor"
		}
		ratio := r.CPUPerMsg / floorUS
		got := fmt.Sprintf("%.2fx (%.2f µs vs %.2f µs)", ratio, r.CPUPerMsg, floorUS)
		if f.FairWrite > 0 {
			got += fmt.Sprintf("; %.2fx the in-process floor (%.2f µs)", r.CPUPerMsg/(f.Write/1e3), f.Write/1e3)
		}
		t := Target{Name: fmt.Sprintf("%s: server CPU per delivered message / %s (%d conns)", what, kind, r.Connected),
			Want: "≤ 1.25x", Got: got, Met: ratio <= 1.25, Note: fmt.Sprintf("%.0f msgs/s delivered", r.DeliveredPS)}
		if !t.Met {
			t.Limit = cpuLimit(r, r.CPUPerMsg, "message", "write(2)/writev(2)", floorUS)
		}
		add(t)
	}
	if r := sr.result("room", ImplTetherd); r != nil && len(r.LastMember) > 0 {
		lm := slices.Clone(r.LastMember)
		slices.Sort(lm)
		add(Target{Name: fmt.Sprintf("room: time until the last of %d members has a broadcast", r.Members), Want: "report",
			Got: fmt.Sprintf("p50 %.1f ms, max %.1f ms (%d broadcasts)", lm[len(lm)/2], lm[len(lm)-1], len(lm)), Met: true})
	}
	// Heartbeats.
	if r := sr.result("idle", ImplTetherd); r != nil && f != nil && r.CPUPerBeat > 0 {
		floorUS, kind := f.ReadWrite/1e3, "in-process read+write floor"
		if f.FairHeartbeat > 0 {
			floorUS, kind = f.FairHeartbeat/1e3, "fair heartbeat floor (epoll_wait+read+write)"
		}
		ratio := r.CPUPerBeat / floorUS
		got := fmt.Sprintf("%.2fx (%.2f µs vs %.2f µs)", ratio, r.CPUPerBeat, floorUS)
		if f.FairHeartbeat > 0 {
			got += fmt.Sprintf("; %.2fx the in-process read+write floor (%.2f µs)", r.CPUPerBeat/(f.ReadWrite/1e3), f.ReadWrite/1e3)
		}
		note := ""
		if b := sr.result("idle", ImplBaseline); b != nil && b.CPUPerBeat > 0 {
			note = fmt.Sprintf("baseline %.2f µs (tetherd %.2fx of it)", b.CPUPerBeat, r.CPUPerBeat/b.CPUPerBeat)
			if bare := sr.result("idle", ImplBare); bare != nil {
				note += fmt.Sprintf("; bare netpoll echo %.2f µs", bare.CPUPerBeat)
			}
		}
		t := Target{Name: fmt.Sprintf("heartbeats: server CPU per heartbeat / %s (%d conns)", kind, r.Connected), Want: "≤ 1.3x",
			Got: got, Met: ratio <= 1.3, Note: note}
		if !t.Met {
			t.Limit = cpuLimit(r, r.CPUPerBeat, "heartbeat", "", 0)
		}
		add(t)
	}
	// Echo.
	for _, impl := range []string{ImplTether, ImplTetherd} {
		r := sr.result("echo", impl)
		if r == nil {
			continue
		}
		add(Target{Name: fmt.Sprintf("echo (%s): latency at %d conns x %.3g msg/s", impl, r.Connected, sr.Reports["echo"].Config.MsgRate),
			Want: "p99 ≤ 1 ms, p99.9 ≤ 5 ms", Got: fmt.Sprintf("p99 %s ms, p99.9 %s ms (p50 %s, max %s)", ms(r.Lat.P99), ms(r.Lat.P999), ms(r.Lat.P50), ms(r.Lat.Max)),
			Met: r.Lat.P99 <= 1000 && r.Lat.P999 <= 5000 && r.Lat.Count > 0})
	}
	if bare := sr.result("pipelined", ImplBare); bare != nil && bare.Throughput > 0 {
		for _, impl := range []string{ImplTether, ImplTetherd} {
			r := sr.result("pipelined", impl)
			if r == nil {
				continue
			}
			ratio := r.Throughput / bare.Throughput
			t := Target{Name: fmt.Sprintf("echo (%s): pipelined throughput / bare netpoll echo", impl), Want: "≥ 0.80x",
				Got: fmt.Sprintf("%.2fx (%.0f/s vs %.0f/s)", ratio, r.Throughput, bare.Throughput), Met: ratio >= 0.8,
				Note: fmt.Sprintf("server CPU %.2f µs per request vs bare %.2f µs", r.CPUPerReq, bare.CPUPerReq)}
			if !t.Met {
				t.Limit = cpuLimit(r, r.CPUPerReq, "request", "write(2)/writev(2)", 0)
			}
			add(t)
		}
	}
	// Connect.
	if r := sr.result("connect", ImplTetherd); r != nil {
		if bare := sr.result("connect", ImplBare); bare != nil && bare.ConnectRate > 0 {
			ratio := r.ConnectRate / bare.ConnectRate
			note := fmt.Sprintf("CPU of 2 cores: tetherd %s%% + loaders %s%%; bare %s%% + loaders %s%%",
				pct(r.ConnectServerCPU, r.ConnectSeconds), pct(r.ConnectLoaderCPU, r.ConnectSeconds),
				pct(bare.ConnectServerCPU, bare.ConnectSeconds), pct(bare.ConnectLoaderCPU, bare.ConnectSeconds))
			if r.ProfiledRate > 0 {
				note += fmt.Sprintf("; tetherd's second (profiled) pass %.0f/s", r.ProfiledRate)
			}
			if f != nil {
				note += fmt.Sprintf("; floor probe's in-process accept loop %.0f/s", f.AcceptRate)
			}
			t := Target{Name: "connect: authenticated connections/s / bare accept loop (bare netpoll server, same loaders)", Want: "≥ 0.80x",
				Got: fmt.Sprintf("%.2fx (%.0f/s vs %.0f/s)", ratio, r.ConnectRate, bare.ConnectRate), Met: ratio >= 0.8, Note: note}
			if !t.Met {
				t.Limit = cpuLimit(r, r.CPUPerConnect, "connection", "", 0) + "; " + connectLimit(r, bare)
			}
			add(t)
		}
	}
	// Transports.
	if t := sr.Transports; t != nil {
		if tcp := t.Find(kit.TransportTCP, ImplTetherd); tcp != nil && tcp.RSSPerConn > 0 {
			for _, g := range []struct {
				tr   kit.Transport
				want float64
			}{{kit.TransportTLS, 2}, {kit.TransportWS, 1.5}} {
				x := t.Find(g.tr, ImplTetherd)
				if x == nil || x.RSSPerConn <= 0 {
					continue
				}
				q := x.RSSPerConn / tcp.RSSPerConn
				note := ""
				if b := t.Find(g.tr, ImplBaseline); b != nil && b.RSSPerConn > 0 {
					note = fmt.Sprintf("%s %s; handshake+auth %.0f/s vs the baseline's %.0f/s", serverLabel(ImplBaseline, g.tr), kit.FormatBytes(b.RSSPerConn),
						x.HandshakeRate, b.HandshakeRate)
				}
				add(Target{Name: fmt.Sprintf("memory: RSS per idle authenticated %s connection at %d / raw tcp (tetherd, settled, transports step)", g.tr, x.Connected),
					Want: fmt.Sprintf("≤ %.1fx", g.want), Got: fmt.Sprintf("%.2fx (%s vs %s)", q, kit.FormatBytes(x.RSSPerConn), kit.FormatBytes(tcp.RSSPerConn)),
					Met: q <= g.want, Note: note})
			}
		}
	}
	// Cluster.
	if c := sr.Cluster; c != nil && c.Cluster != nil && c.Cluster.HeartbeatNATS != nil && c.Cluster.Heartbeats > 0 {
		x := c.Cluster
		add(Target{Name: fmt.Sprintf("cluster: NATS messages per client heartbeat (%d nodes, %d PONGs in %v)", x.Nodes, x.Heartbeats, c.Config.HeartbeatWindow),
			Want: "0", Got: fmt.Sprintf("%.4f (%d messages in the window, node heartbeats included)", x.HeartbeatNATS.NetMsgs/float64(x.Heartbeats), x.HeartbeatNATS.Msgs),
			Met: x.HeartbeatNATS.NetMsgs/float64(x.Heartbeats) < 0.001})
	}
	// Churn.
	if r := sr.result("churn", ImplTetherd); r != nil {
		add(Target{Name: fmt.Sprintf("churn: QoS1 messages lost or duplicated (%d conns, %d reconnects)", r.Connected, r.Reconnects), Want: "0 and 0",
			Got: fmt.Sprintf("%d missing, %d duplicated of %d; reconnect p50 %s ms, p99 %s ms", r.Missing, r.Duplicates, r.Expected, ms(r.ReconnectLat.P50), ms(r.ReconnectLat.P99)),
			Met: r.Missing == 0 && r.Duplicates == 0 && r.Unexpected == 0 && r.Expected > 0})
	}
	return ts
}

// cpuLimit says where a server's CPU per operation goes, from its CPU profile: the
// largest shares, and, when syscall names a system call, the microseconds per
// operation spent in it next to the floor's (floorUS, when > 0).
func cpuLimit(r *Result, perOp float64, op, syscall string, floorUS float64) string {
	if len(r.ProfileShares) == 0 {
		return "no CPU profile"
	}
	s := "CPU profile: " + sharesText(r.ProfileShares)
	if syscall != "" {
		if sh := share(r.ProfileShares, syscall); sh > 0 {
			s += fmt.Sprintf("; %.2f µs per %s in %s", sh*perOp, op, syscall)
			if floorUS > 0 {
				s += fmt.Sprintf(" (floor %.2f µs)", floorUS)
			}
		}
	}
	return s
}

// connectLimit says whether the connection phase ran out of CPU: the server and its
// loaders share the machine's cores.
func connectLimit(r, bare *Result) string {
	if r.ConnectSeconds <= 0 {
		return ""
	}
	busy := (r.ConnectServerCPU + r.ConnectLoaderCPU) / r.ConnectSeconds
	cores := float64(runtime.NumCPU())
	if busy >= 0.85*cores {
		return fmt.Sprintf("server and loaders kept %.0f%% of the %d cores busy: the rate is what the server gets of a saturated machine, "+
			"and it moves with how the scheduler splits the cores between them (%.0f µs of server CPU per connection vs %.0f µs for bare)",
			100*busy/cores, int(cores), r.CPUPerConnect, bare.CPUPerConnect)
	}
	return fmt.Sprintf("server and loaders used %.0f%% of the %d cores (%.0f µs of server CPU per connection vs %.0f µs for bare)",
		100*busy/cores, int(cores), r.CPUPerConnect, bare.CPUPerConnect)
}

// TargetsText renders the targets for a terminal.
func (sr *SuiteResult) TargetsText() string {
	var b strings.Builder
	b.WriteString("targets:\n")
	for _, t := range sr.targets() {
		mark := "MET   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(&b, "  %s %s: want %s, got %s", mark, t.Name, t.Want, t.Got)
		if t.Note != "" {
			fmt.Fprintf(&b, " (%s)", t.Note)
		}
		if t.Limit != "" {
			fmt.Fprintf(&b, "\n         limited by: %s", t.Limit)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Markdown renders the generated section of BENCHMARKS.md.
func (sr *SuiteResult) Markdown(cfg SuiteConfig) string {
	var b strings.Builder
	e := sr.Env
	rel := func(p string) string { return filepath.ToSlash(p) }
	fmt.Fprintf(&b, "## Load suite results (generated by `make bench`; do not edit by hand)\n\n")
	fmt.Fprintf(&b, "Measured %s on %s (nproc %d, GOMAXPROCS %d), %s %s/%s, kernel %s, open files limit %d per process; "+
		"the suite took %.0f s.\n", e.Started.Format("2006-01-02 15:04 MST"), e.CPUModel, e.NumCPU, e.GOMAXPROCS, e.GoVersion, e.GOOS, e.GOARCH,
		e.Kernel, e.NoFile, sr.Seconds)
	b.WriteString(methodNotes)
	if cfg.Scale > 1 {
		fmt.Fprintf(&b, "\n**Scaled-down run (-scale %d): these figures only check the suite, they are not the targets' figures.**\n", cfg.Scale)
	}
	b.WriteString("\n### Targets\n\n| target | want | reached | met | notes | what limits it |\n|---|---|---|---|---|---|\n")
	for _, t := range sr.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, met, t.Note, t.Limit)
	}
	if f := sr.Floor; f != nil {
		fmt.Fprintf(&b, "\n### Kernel floor (`tether-bench floor -n %d -conns %d -src 127.0.5.2 -window %v`, same run; raw: `%s`)\n\n```text\n%s```\n",
			f.N, f.Conns, floorWindow(cfg.Scale), rel(filepath.Join(cfg.Results, "floor.txt")), f.Text())
	}
	for _, st := range suiteSteps(cfg.Scale) {
		rep := sr.Reports[st.name]
		if rep == nil {
			continue
		}
		var t bytes.Buffer
		_ = rep.WriteText(&t)
		fmt.Fprintf(&b, "\n### %s\n\n`%s` (raw: `%s`, `%s`)\n\n```text\n%s```\n", st.name, st.cmd,
			rel(filepath.Join(cfg.Results, "load-"+st.name+".txt")), rel(filepath.Join(cfg.Results, "load-"+st.name+".json")), t.String())
		if st.name == "connect" {
			if r, bare := rep.Find(ImplTetherd), rep.Find(ImplBare); r != nil && bare != nil {
				fmt.Fprintf(&b, "Connection phase: %s.", connectLimit(r, bare))
				if len(r.ProfileShares) > 0 {
					fmt.Fprintf(&b, " tetherd's CPU while connecting (profile of the second pass, %.0f conn/s): %s.", r.ProfiledRate, sharesText(r.ProfileShares))
				}
				b.WriteString("\n")
			}
		}
		for _, x := range rep.Results {
			top := filepath.Join(cfg.Results, fmt.Sprintf("profile-%s-%s.txt", st.name, x.Impl))
			if _, err := os.Stat(top); err == nil && (x.Impl == ImplTetherd || x.Impl == ImplTether) {
				when := "in the window"
				if st.name == "connect" {
					when = "during the second connect pass"
				}
				fmt.Fprintf(&b, "CPU profile of %s %s: `%s`.\n", x.Impl, when, rel(top))
			}
		}
		for _, p := range stepPlots[st.name] {
			path := filepath.Join(cfg.Results, "plots", p)
			if _, err := os.Stat(path); err == nil {
				fmt.Fprintf(&b, "\n![%s](%s)\n", p, rel(path))
			}
		}
	}
	if t := sr.Transports; t != nil {
		fmt.Fprintf(&b, "\n### Transports\n\n`%s` (raw: `%s`, `%s`)\n\n%s.\n\n%s\nRSS per connection as found, before the GC: %s.\n",
			transportsCmd(t.Config), rel(filepath.Join(cfg.Results, "load-transports.txt")), rel(filepath.Join(cfg.Results, "load-transports.json")),
			t.params(), t.MarkdownTable(), t.foundText())
	}
	if c := sr.Cluster; c != nil {
		fmt.Fprintf(&b, "\n### Cluster: %d nodes on NATS against one node\n\n`%s` (raw: `%s`, `%s`)\n\n%s.\n\n%s%s",
			c.Config.Nodes, clusterCmd(c.Config), rel(filepath.Join(cfg.Results, "load-cluster.txt")), rel(filepath.Join(cfg.Results, "load-cluster.json")),
			c.params(), c.MarkdownTable(), c.notes())
	}
	if m := sr.Memtest; m != nil {
		fmt.Fprintf(&b, "\n### Memory, settled (tether-memtest in the same suite; raw: `%s`)\n\n```text\n%s```\n",
			rel(filepath.Join(cfg.Results, "memory-suite.txt")), m.Text)
	}
	if cfg.Micro != "" {
		if micro, err := os.ReadFile(cfg.Micro); err == nil {
			fmt.Fprintf(&b, "\n### Micro-benchmarks (raw: `%s`)\n\n```text\n%s```\n", rel(cfg.Micro), strings.TrimRight(string(micro), "\n")+"\n")
		}
	}
	return b.String()
}

// stepPlots names the plots each suite step draws (see Report.Plots).
var stepPlots = map[string][]string{
	"connect":   {"connect-memory.png"},
	"echo":      {"echo-latency.png"},
	"pipelined": {"echo-pipelined-latency.png"},
	"push":      {"push-latency.png"},
	"room":      {"room-latency.png"},
	"churn":     {"churn-latency.png"},
}

// methodNotes is the short method statement that goes with every generated section.
const methodNotes = `
How these figures are made (tether-bench, package bench/load):

- Everything runs on this one machine over loopback: the server under test in a process of its
  own (tetherd is built with go build and started in -dev mode with the per-IP and connect-rate
  limits lifted; the other servers run in a tether-bench serve child), the load in separate
  tether-bench load processes, the service of the push/room/churn scenarios in the orchestrator.
  Loaders and server share the 2 cores: every table gives the loaders' CPU next to the server's.
- Open files are capped at 20,000 per process. The tool raises its soft limit to the hard one,
  puts at most 10,000 connections in one load process and gives each load process its own
  loopback source address (127.0.0.2, 127.0.0.3, ...; IP_BIND_ADDRESS_NO_PORT), and refuses runs
  whose server would need more descriptors than the limit.
- Server CPU is utime+stime of the server process from /proc/PID/stat (10 ms resolution) over the
  measured window; RSS is VmRSS from /proc/PID/status. The kernel's own memory per socket
  (about 3.3 KB per idle ESTABLISHED socket) is not in any process's RSS and not in these figures.
- Latencies are HdrHistogram (1 µs to 100 s, 3 significant digits) merged across loaders: echo
  from the write of the SEND to its SEND_REPLY; push and room from the timestamp the service put in
  the payload to the member's read.
- Ratios compare with baselines measured in the same run: bench/baseline (goroutine per
  connection), a bare netpoll byte echo (no protocol, no pool), and the kernel floor probe
  (bench/floor, raw system calls on one locked thread).
- Which floor each ratio uses, and why: the fan-out (room, push) and heartbeat targets divide by
  the probe's **fair** floor. Its client ends are in a peer process that reads them with
  goroutines blocked in epoll, as the loaders read the servers' connections, so each of its
  writes pays the receiver's wakeup as a server's writes do. Its heartbeat floor answers PINGs
  that the peer paces at the idle scenario's rate (N per heartbeat), from a raw epoll loop, so
  it pays epoll_wait as a server does. Its CPU is the probe process's utime+stime from /proc,
  read exactly as a server's is. The **in-process** floor (client ends in the same thread, which
  nobody is blocked reading; that thread's CPU from getrusage) leaves the wakeups out, so it is
  lower than any server can reach and its ratios are harsher; they are given next to the fair
  ones. The connect target divides by a bare netpoll server's rate under the same loaders.
- "What limits it" groups the samples of the server's CPU profile by system call, Go runtime
  activity (futex sleeps and wakeups, scheduler, GC, allocation) and code (go tool pprof
  -traces, classified by bench/load/profile.go).
- CPU profiles are taken from the server's /debug/pprof/profile after each measured window, with
  the load still running, so profiling does not disturb the figures; connect's is taken in a
  second connection pass (the first pass's connections closed, as many again opened from fresh
  source addresses), whose rate is reported next to the measured pass's.
`
