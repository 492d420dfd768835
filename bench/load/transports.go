package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/server"
)

// The transports measurement compares what each transport costs a server, raw TCP
// first: for every transport and server it opens N connections at a fixed dial
// concurrency (the handshake or upgrade rate, authentication included), has every
// connection make one SEND round trip, reads the server's settled RSS per
// connection (tether-memtest's method: RSS after a forced GC with the connections
// held, minus RSS after one before they came), and, for tetherd, broadcasts to a
// room of all of them back to back (the room scenario's server CPU per delivered
// message). The baselines are bench/baseline, a goroutine per connection, over each
// transport: crypto/tls's handshake and a gobwas/ws upgrade in that goroutine. It
// has no rooms, so no fan-out figure.
//
// TLS is what a current client offers: Go's defaults (TLS 1.3, the X25519MLKEM768
// hybrid key exchange that current browsers also send), a self-signed ECDSA P-256
// certificate, no session resumption, so every connection pays a full handshake
// on both sides of the same 2 cores.

// TransportsConfig configures the transports measurement. The zero value keeps the
// defaults in each field's doc.
type TransportsConfig struct {
	// Transports are measured in order. Default kit.Transports (tcp first).
	Transports []kit.Transport
	// Impls are the servers measured on each transport: tetherd and baseline.
	// Default both.
	Impls []string
	// N is the number of connections each server holds. Default 19,000.
	N int
	// Loaders is the minimum number of load processes. Default 2.
	Loaders int
	// Concurrency is the handshakes (dial to AUTH_OK) each loader keeps in
	// progress: the fixed dial concurrency of the handshake rate. Default 64.
	Concurrency int
	// Src is the first loader's source address. Default 127.0.6.2.
	Src string
	// Broadcasts is how many room broadcasts are sent back to back for the
	// fan-out figure (after as many timed one by one). Default 10.
	Broadcasts int
	// Size is the broadcast payload in bytes. Default 32.
	Size int
	// Tetherd is the tetherd binary; empty means build ./cmd/tetherd.
	Tetherd string
	// Exe and Env are the children's binary and environment. Default: this one's.
	Exe string
	Env []string
	// Timeout bounds each server's measurement. Default 3m.
	Timeout time.Duration
	// Log receives progress; TTY shows a live progress line on it.
	Log io.Writer
	TTY bool
}

func (c TransportsConfig) withDefaults() (TransportsConfig, error) {
	if len(c.Transports) == 0 {
		c.Transports = kit.Transports
	}
	for _, t := range c.Transports {
		if _, err := kit.ParseTransport(string(t)); err != nil {
			return c, err
		}
	}
	if len(c.Impls) == 0 {
		c.Impls = []string{ImplTetherd, ImplBaseline}
	}
	for _, impl := range c.Impls {
		if impl != ImplTetherd && impl != ImplBaseline {
			return c, fmt.Errorf("transports measures %s and %s, not %q", ImplTetherd, ImplBaseline, impl)
		}
	}
	if c.N <= 0 {
		c.N = 19_000
	}
	if c.Loaders <= 0 {
		c.Loaders = 2
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Src == "" {
		c.Src = "127.0.6.2"
	}
	if _, err := netip.ParseAddr(c.Src); err != nil {
		return c, fmt.Errorf("bad source address: %w", err)
	}
	if c.Broadcasts <= 0 {
		c.Broadcasts = 10
	}
	if c.Size <= 0 {
		c.Size = 32
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Minute
	}
	return c, nil
}

// TransportResult is one server's figures on one transport.
type TransportResult struct {
	Transport kit.Transport
	Impl      string
	N         int
	Connected int64
	Failed    int64
	Failures  map[string]int64 `json:",omitempty"`
	// HandshakeRate is authenticated connections per second, first dial to last
	// AUTH_OK, at the configured dial concurrency: the TLS handshake or WebSocket
	// upgrade, then HELLO/AUTH_OK.
	HandshakeRate float64
	// HandshakeLat is dial until the transport is usable; ConnectLat HELLO to
	// AUTH_OK after it; microseconds.
	HandshakeLat, ConnectLat msg.Summary
	// CPUPerConnect is the server's CPU microseconds per connection opened.
	CPUPerConnect float64
	// RSSBefore is the listening server's RSS after a GC; RSSFound the RSS with
	// every connection held, as found; RSSSettled the same after a GC.
	RSSBefore, RSSFound, RSSSettled int64
	// RSSPerConn is (RSSSettled - RSSBefore) / Connected, the headline memory
	// figure; RSSPerConnFound the same with RSSFound.
	RSSPerConn, RSSPerConnFound float64
	// Members, Delivered, DeliveredPS and CPUPerMsg are the back-to-back room
	// broadcasts' (tetherd only): the server's CPU microseconds per delivered
	// message.
	Members, Delivered     int64 `json:",omitempty"`
	DeliveredPS, CPUPerMsg float64
	// Lost counts connections that died during the measurement.
	Lost int64
}

// TransportsReport is the outcome of the transports measurement.
type TransportsReport struct {
	Env     Env
	Config  TransportsConfig
	Results []*TransportResult
	Seconds float64
}

// RunTransports measures every server of cfg on every transport, one after the
// other, and returns what it measured (also when it fails part way).
func RunTransports(ctx context.Context, cfg TransportsConfig) (*TransportsReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &TransportsReport{Env: kit.CurrentEnv(), Config: cfg}
	rep.Config.Log, rep.Config.Exe, rep.Config.Env = nil, "", nil
	start := time.Now()
	defer func() { rep.Seconds = time.Since(start).Seconds() }()
	if cfg.Tetherd == "" && slices.Contains(cfg.Impls, ImplTetherd) {
		dir, err := os.MkdirTemp("", "tether-bench-")
		if err != nil {
			return rep, fmt.Errorf("cannot build tetherd: %w", err)
		}
		defer os.RemoveAll(dir)
		if cfg.Tetherd, err = kit.BuildTetherd(ctx, dir); err != nil {
			return rep, err
		}
	}
	src := netip.MustParseAddr(cfg.Src)
	for _, tr := range cfg.Transports {
		rc, err := RunConfig{Scenario: ScenarioConnect, Impls: cfg.Impls, Transport: tr, N: cfg.N, Loaders: cfg.Loaders,
			Src: src.String(), Concurrency: cfg.Concurrency, Heartbeat: time.Minute, Broadcasts: cfg.Broadcasts, Size: cfg.Size,
			Tetherd: cfg.Tetherd, Exe: cfg.Exe, Env: cfg.Env, Timeout: cfg.Timeout, Log: cfg.Log, TTY: cfg.TTY}.Defaults()
		if err != nil {
			return rep, err
		}
		r := newRunner(rc)
		r.settle = true
		for _, impl := range cfg.Impls {
			res, err := r.transportOne(ctx, impl)
			if err != nil {
				r.close()
				return rep, fmt.Errorf("transports: %s over %s: %w", impl, tr, err)
			}
			rep.Results = append(rep.Results, res)
		}
		r.close()
		for range len(cfg.Impls) * rc.Loaders * 2 {
			src = src.Next()
		}
	}
	return rep, nil
}

// transportOne measures impl on the runner's transport.
func (r *runner) transportOne(ctx context.Context, impl string) (*TransportResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	cfg := r.cfg
	s, err := r.open(ctx, impl, cfg.N, impl == ImplTetherd)
	if err != nil {
		return nil, err
	}
	defer s.close()
	conn := &Result{Scenario: ScenarioConnect, Impl: impl, Transport: cfg.Transport, N: cfg.N}
	if err := s.connectFigures(ctx, conn); err != nil {
		return nil, err
	}
	res := &TransportResult{Transport: cfg.Transport, Impl: impl, N: cfg.N, Connected: conn.Connected, Failed: conn.Failed,
		Failures: conn.Failures, HandshakeRate: conn.ConnectRate, HandshakeLat: conn.HandshakeLat, ConnectLat: conn.ConnectLat,
		CPUPerConnect: conn.CPUPerConnect, RSSBefore: conn.RSSBefore}

	// One SEND round trip per connection, so that every connection's read and
	// write paths have run once after authentication, as a heartbeat would.
	s.setPhase("one SEND round trip per connection")
	if err := s.each(func(i int) msg.Command {
		return msg.Command{Op: "echo", Rate: float64(s.counts[i]), Size: cfg.Size}
	}); err != nil {
		return nil, err
	}
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	if _, err := s.all(ctx, msg.Command{Op: "stop"}, "stopped", 30*time.Second); err != nil {
		return nil, err
	}
	if impl == ImplTetherd {
		// Idle, as the figure says: long enough for tetherd's TLS idle pass (every
		// server.DefaultTLSIdleAfter) to have seen every connection unused once and
		// dropped its ciphers the next time. The baselines have nothing that changes
		// with idle time.
		s.setPhase("idle")
		if err := sleep(ctx, 2*server.DefaultTLSIdleAfter+time.Second); err != nil {
			return nil, err
		}
	}
	if res.RSSFound, err = kit.ProcRSS(s.srv.pid); err != nil {
		return nil, err
	}
	if err := s.srv.gc(); err != nil {
		return nil, err
	}
	if res.RSSSettled, err = kit.ProcRSS(s.srv.pid); err != nil {
		return nil, err
	}
	if res.Connected > 0 {
		res.RSSPerConn = float64(res.RSSSettled-res.RSSBefore) / float64(res.Connected)
		res.RSSPerConnFound = float64(res.RSSFound-res.RSSBefore) / float64(res.Connected)
	}
	if impl == ImplTetherd {
		room := &Result{}
		if err := s.room(ctx, room); err != nil {
			return nil, err
		}
		res.Members, res.Delivered, res.DeliveredPS, res.CPUPerMsg = room.Members, room.Delivered, room.DeliveredPS, room.CPUPerMsg
	}
	res.Lost = s.sum().Lost
	return res, nil
}

// Find returns the result of impl over t, or nil.
func (r *TransportsReport) Find(t kit.Transport, impl string) *TransportResult {
	for _, x := range r.Results {
		if x.Transport == t && x.Impl == impl {
			return x
		}
	}
	return nil
}

// serverLabel names a server on a transport for the table.
func serverLabel(impl string, t kit.Transport) string {
	if impl == ImplTetherd {
		return "tetherd"
	}
	switch t {
	case kit.TransportTLS:
		return "baseline: crypto/tls, goroutine per conn"
	case kit.TransportWS:
		return "baseline: gobwas/ws, goroutine per conn"
	case kit.TransportWSS:
		return "baseline: crypto/tls + gobwas/ws, goroutine per conn"
	}
	return "baseline: goroutine per conn"
}

// ratio renders a/b as "1.23x", or "-" when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// transportRows returns the table's header and rows: every figure with its ratio
// to the same server's over raw TCP in the same run, and tetherd's memory and
// handshake rate with their ratio to the baseline's on the same transport.
func (r *TransportsReport) transportRows() ([]string, [][]string) {
	head := []string{"transport", "server", "conns", "RSS/conn", "vs tcp", "vs baseline", "handshake+auth conn/s", "vs tcp", "vs baseline",
		"handshake p50 ms", "p99 ms", "fan-out CPU/msg µs", "vs tcp"}
	none := &TransportResult{}
	var rows [][]string
	for _, x := range r.Results {
		tcp := cmp.Or(r.Find(kit.TransportTCP, x.Impl), none)
		base := none
		if x.Impl != ImplBaseline {
			base = cmp.Or(r.Find(x.Transport, ImplBaseline), none)
		}
		fan, fanRatio := "-", "-"
		if x.CPUPerMsg > 0 {
			fan, fanRatio = fmt.Sprintf("%.2f", x.CPUPerMsg), ratio(x.CPUPerMsg, tcp.CPUPerMsg)
		}
		rows = append(rows, []string{string(x.Transport), serverLabel(x.Impl, x.Transport), fmt.Sprint(x.Connected),
			kit.FormatBytes(x.RSSPerConn), ratio(x.RSSPerConn, tcp.RSSPerConn), ratio(x.RSSPerConn, base.RSSPerConn),
			fmt.Sprintf("%.0f", x.HandshakeRate), ratio(x.HandshakeRate, tcp.HandshakeRate), ratio(x.HandshakeRate, base.HandshakeRate),
			ms(x.HandshakeLat.P50), ms(x.HandshakeLat.P99), fan, fanRatio})
	}
	return head, rows
}

// params describes the measurement for the table's heading.
func (r *TransportsReport) params() string {
	c := r.Config
	return fmt.Sprintf("%d connections per server from %d loaders, %d handshakes in flight per loader; RSS settled after one SEND round trip per connection; "+
		"fan-out: %d room broadcasts of %d bytes back to back to all members (tetherd; the baselines have no rooms); \"vs tcp\": the same server over raw tcp in the same run; \"vs baseline\": the baseline on the same transport",
		c.N, c.Loaders, c.Concurrency, c.Broadcasts, c.Size)
}

// WriteText writes the report as a table.
func (r *TransportsReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tether-bench transports: %s\nmachine: %s\nstarted: %s\n\n", r.params(), r.Env.Machine(), r.Env.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	head, rows := r.transportRows()
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	for _, x := range r.Results {
		if x.Failed > 0 || x.Lost > 0 {
			fmt.Fprintf(&b, "%s over %s: %d failed, %d lost: %s\n", x.Impl, x.Transport, x.Failed, x.Lost, msg.Reasons(x.Failures))
		}
	}
	fmt.Fprintf(&b, "(RSS/conn as found, before the GC: %s)\n", r.foundText())
	_, err := io.WriteString(w, b.String())
	return err
}

// foundText lists the as-found RSS per connection of every row.
func (r *TransportsReport) foundText() string {
	var parts []string
	for _, x := range r.Results {
		parts = append(parts, fmt.Sprintf("%s %s %s", x.Transport, x.Impl, kit.FormatBytes(x.RSSPerConnFound)))
	}
	return strings.Join(parts, ", ")
}

// MarkdownTable renders the table in Markdown.
func (r *TransportsReport) MarkdownTable() string {
	var b strings.Builder
	head, rows := r.transportRows()
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat("---|", len(head)) + "\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// transportsCmd is the command line equivalent to cfg, for BENCHMARKS.md.
func transportsCmd(cfg TransportsConfig) string {
	var ts []string
	for _, t := range cfg.Transports {
		ts = append(ts, string(t))
	}
	return fmt.Sprintf("tether-bench transports -n %d -transports %s -impl %s -concurrency %d -broadcasts %d",
		cfg.N, strings.Join(ts, ","), strings.Join(cfg.Impls, ","), cfg.Concurrency, cfg.Broadcasts)
}

func mainTransports(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("transports", stderr)
	var cfg TransportsConfig
	transports := fs.String("transports", "tcp,tls,ws,wss", "The transports to measure, comma-separated, raw tcp first (the ratios' reference).")
	impls := fs.String("impl", "tetherd,baseline", "The servers measured on each transport: tetherd and baseline (goroutine per connection: crypto/tls for tls, gobwas/ws for ws).")
	fs.IntVar(&cfg.N, "n", 19000, "The connections each server holds.")
	fs.IntVar(&cfg.Loaders, "loaders", 2, "The minimum number of load processes.")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "The handshakes (dial to AUTH_OK) each loader keeps in flight: the fixed dial concurrency of the handshake rate.")
	fs.StringVar(&cfg.Src, "src", "127.0.6.2", "The first loader's loopback source address; every further loader uses the next one.")
	fs.IntVar(&cfg.Broadcasts, "broadcasts", 10, "tetherd: room broadcasts timed one by one, then sent back to back for the CPU per message.")
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary; empty means build ./cmd/tetherd with go build (run from the module).")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "The time limit for one server on one transport.")
	jsonOut := fs.String("json", "", "Also write the report as JSON to this file; - means stdout, after the table.")
	quiet := fs.Bool("q", false, "Print no progress and no child output on stderr.")
	if err := kit.Parse(fs, args); err != nil {
		return err
	}
	for _, t := range strings.Split(*transports, ",") {
		tr, err := kit.ParseTransport(t)
		if err != nil {
			return err
		}
		cfg.Transports = append(cfg.Transports, tr)
	}
	cfg.Impls = strings.Split(*impls, ",")
	if !*quiet {
		cfg.Log, cfg.TTY = stderr, isTerminal(stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := RunTransports(ctx, cfg)
	if rep != nil && len(rep.Results) > 0 {
		if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if rep == nil {
		return errors.New("transports: nothing measured")
	}
	if *jsonOut != "" {
		return kit.WriteJSON(*jsonOut, rep, stdout)
	}
	return nil
}
