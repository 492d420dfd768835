package load

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
)

// Env describes the machine and toolchain of a run.
type Env = kit.Env

// Report is the outcome of one scenario: the machine, the parameters, and each
// server's result.
type Report struct {
	Env     Env
	Config  ReportConfig
	Results []*Result
}

// ReportConfig records the parameters a Report was measured with.
type ReportConfig struct {
	Scenario                        string
	Transport                       kit.Transport `json:",omitempty"`
	N, Loaders, PerLoader           int
	Src                             string
	Rate                            float64
	Heartbeat, Warmup, Duration     time.Duration
	MsgRate                         float64
	Window, Size, Batch, Broadcasts int
	QoS1                            bool
	ChurnRate                       float64
	Plan                            string
}

// NewReport wraps results with the machine and cfg.
func NewReport(cfg RunConfig, results []*Result) *Report {
	return &Report{Env: kit.CurrentEnv(), Results: results, Config: ReportConfig{
		Scenario: cfg.Scenario, Transport: cfg.Transport, N: cfg.N, Loaders: cfg.Loaders, PerLoader: cfg.PerLoader, Src: cfg.Src, Rate: cfg.Rate,
		Heartbeat: cfg.Heartbeat, Warmup: cfg.Warmup, Duration: cfg.Duration, MsgRate: cfg.MsgRate, Window: cfg.Window,
		Size: cfg.Size, Batch: cfg.Batch, Broadcasts: cfg.Broadcasts, QoS1: cfg.QoS1, ChurnRate: cfg.ChurnRate, Plan: cfg.Plan(),
	}}
}

// pct renders cpu seconds over wall seconds as a percentage of one core.
func pct(cpu, wall float64) string {
	if wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", 100*cpu/wall)
}

// ms renders microseconds as milliseconds.
func ms(us int64) string { return fmt.Sprintf("%.3f", float64(us)/1000) }

// WriteText writes the report as a table with the ratios to the baselines.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	over := ""
	if c.Transport.Or() != kit.TransportTCP {
		over = " over " + string(c.Transport)
	}
	fmt.Fprintf(&b, "tether-bench %s: %d connections%s, %s\n", c.Scenario, c.N, over, r.params())
	fmt.Fprintf(&b, "machine: %s\n", r.Env.Machine())
	fmt.Fprintf(&b, "started: %s\n\n", r.Env.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	switch c.Scenario {
	case ScenarioConnect:
		row("server", "conns", "failed", "conn/s", "connect p50 ms", "p99 ms", "CPU/conn µs", "server CPU %", "loader CPU %", "RSS/conn", "RSS before", "RSS after")
		for _, x := range r.Results {
			row(x.Impl, fmt.Sprint(x.Connected), fmt.Sprint(x.Failed), fmt.Sprintf("%.0f", x.ConnectRate), ms(x.ConnectLat.P50), ms(x.ConnectLat.P99),
				fmt.Sprintf("%.1f", x.CPUPerConnect), pct(x.ConnectServerCPU, x.ConnectSeconds), pct(x.ConnectLoaderCPU, x.ConnectSeconds),
				kit.FormatBytes(x.RSSPerConn), kit.FormatBytes(float64(x.RSSBefore)), kit.FormatBytes(float64(x.RSSAfter)))
		}
	case ScenarioIdle:
		row("server", "conns", "heartbeats", "window s", "server CPU s", "CPU %", "CPU/heartbeat µs", "loader CPU s", "RSS/conn")
		for _, x := range r.Results {
			row(x.Impl, fmt.Sprint(x.Connected), fmt.Sprint(x.Heartbeats), fmt.Sprintf("%.1f", x.Seconds), fmt.Sprintf("%.2f", x.ServerCPU),
				fmt.Sprintf("%.1f", 100*x.ServerCPU/x.Seconds), fmt.Sprintf("%.2f", x.CPUPerBeat), fmt.Sprintf("%.2f", x.LoaderCPU), kit.FormatBytes(x.RSSPerConn))
		}
	case ScenarioEcho:
		row("server", "conns", "replies", "errors", "skipped", "replies/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "CPU/req µs", "server CPU %", "loader CPU %")
		for _, x := range r.Results {
			row(x.Impl, fmt.Sprint(x.Connected), fmt.Sprint(x.Replies), fmt.Sprint(x.Errors), fmt.Sprint(x.Skipped), fmt.Sprintf("%.0f", x.Throughput),
				ms(x.Lat.P50), ms(x.Lat.P90), ms(x.Lat.P99), ms(x.Lat.P999), ms(x.Lat.Max), fmt.Sprintf("%.2f", x.CPUPerReq),
				fmt.Sprintf("%.0f", 100*x.ServerCPU/x.Seconds), fmt.Sprintf("%.0f", 100*x.LoaderCPU/x.Seconds))
		}
	case ScenarioPush:
		row("server", "conns", "delivered", "msgs/s", "CPU/msg µs", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "failed requests", "server CPU %", "loader CPU %")
		for _, x := range r.Results {
			row(x.Impl, fmt.Sprint(x.Connected), fmt.Sprint(x.Delivered), fmt.Sprintf("%.0f", x.DeliveredPS), fmt.Sprintf("%.2f", x.CPUPerMsg),
				ms(x.Lat.P50), ms(x.Lat.P90), ms(x.Lat.P99), ms(x.Lat.P999), ms(x.Lat.Max), fmt.Sprint(x.Errors),
				fmt.Sprintf("%.0f", 100*x.ServerCPU/x.Seconds), fmt.Sprintf("%.0f", 100*x.LoaderCPU/x.Seconds))
		}
	case ScenarioRoom:
		row("server", "members", "last member p50 ms", "last member max ms", "member p50 ms", "member p99 ms", "burst msgs", "burst msgs/s", "CPU/msg µs")
		for _, x := range r.Results {
			lm := slices.Clone(x.LastMember)
			slices.Sort(lm)
			var p50, mx float64
			if len(lm) > 0 {
				p50, mx = lm[len(lm)/2], lm[len(lm)-1]
			}
			row(x.Impl, fmt.Sprint(x.Members), fmt.Sprintf("%.1f", p50), fmt.Sprintf("%.1f", mx), ms(x.Lat.P50), ms(x.Lat.P99),
				fmt.Sprint(x.Delivered), fmt.Sprintf("%.0f", x.DeliveredPS), fmt.Sprintf("%.2f", x.CPUPerMsg))
		}
	case ScenarioChurn:
		row("server", "conns", "reconnects", "reconnect p50 ms", "p99 ms", "max ms", "accepted", "received", "missing", "duplicates", "replays dropped", "not recovered", "ambiguous", "lost conns")
		for _, x := range r.Results {
			row(x.Impl, fmt.Sprint(x.Connected), fmt.Sprint(x.Reconnects), ms(x.ReconnectLat.P50), ms(x.ReconnectLat.P99), ms(x.ReconnectLat.Max),
				fmt.Sprint(x.Expected), fmt.Sprint(x.Received), fmt.Sprint(x.Missing), fmt.Sprint(x.Duplicates), fmt.Sprint(x.Replayed),
				fmt.Sprint(x.NotRecovered), fmt.Sprint(x.Ambiguous), fmt.Sprint(x.Lost))
		}
	}
	tw.Flush()
	for _, x := range r.Results {
		if x.Failed > 0 || x.Lost > 0 {
			fmt.Fprintf(&b, "%s failures: %s\n", x.Impl, msg.Reasons(x.Failures))
		}
		if len(x.ErrorCodes) > 0 {
			fmt.Fprintf(&b, "%s ERROR answers: %s\n", x.Impl, msg.Reasons(x.ErrorCodes))
		}
		if x.Transport.Or() != kit.TransportTCP && x.HandshakeLat.Count > 0 {
			fmt.Fprintf(&b, "%s %s handshake (dial until the transport is usable): p50 %s ms, p99 %s ms\n", x.Impl, x.Transport,
				ms(x.HandshakeLat.P50), ms(x.HandshakeLat.P99))
		}
		if x.ProfiledRate > 0 {
			fmt.Fprintf(&b, "%s second pass, under the profiler: %.0f conn/s, server CPU %s%%, loader CPU %s%%\n", x.Impl, x.ProfiledRate,
				pct(x.ProfiledServerCPU, x.ProfiledSeconds), pct(x.ProfiledLoaderCPU, x.ProfiledSeconds))
		}
		if x.Profile != "" {
			fmt.Fprintf(&b, "%s CPU profile: %s\n", x.Impl, x.Profile)
		}
	}
	if ratios := r.Ratios(); len(ratios) > 0 {
		b.WriteString("\n")
		for _, q := range ratios {
			fmt.Fprintf(&b, "%s: %.2fx\n", q.Name, q.Value)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) params() string {
	c := r.Config
	switch c.Scenario {
	case ScenarioConnect:
		rate := "unthrottled"
		if c.Rate > 0 {
			rate = fmt.Sprintf("%.0f/s", c.Rate)
		}
		return fmt.Sprintf("connect rate %s, held %v with heartbeat %v", rate, c.Duration, c.Heartbeat)
	case ScenarioIdle:
		return fmt.Sprintf("heartbeat %v (one PING per connection per heartbeat), window %v after %v warmup", c.Heartbeat, c.Duration, c.Warmup)
	case ScenarioEcho:
		if c.Window > 0 {
			return fmt.Sprintf("pipelined: %d SENDs in flight per connection, %d-byte payload, window %v", c.Window, c.Size, c.Duration)
		}
		return fmt.Sprintf("%.3g SEND/s per connection, %d-byte payload, window %v after %v warmup", c.MsgRate, c.Size, c.Duration, c.Warmup)
	case ScenarioPush:
		rate := "closed loop"
		if c.MsgRate > 0 {
			rate = fmt.Sprintf("%.0f msgs/s", c.MsgRate)
		}
		return fmt.Sprintf("pushes to users, %d users per request, %d requests in flight, %s, QoS1 %v, %d-byte payload, window %v",
			c.Batch, pushConcurrency, rate, c.QoS1, c.Size, c.Duration)
	case ScenarioRoom:
		return fmt.Sprintf("one room, %d broadcasts timed one by one then %d back to back, %d-byte payload", c.Broadcasts, c.Broadcasts, c.Size)
	case ScenarioChurn:
		return fmt.Sprintf("%.0f drops+reconnects/s with %.0f QoS1 pushes/s for %v", c.ChurnRate, c.MsgRate, c.Duration)
	}
	return ""
}

// Ratio is a named ratio of the subject server's figure to a baseline's.
type Ratio struct {
	Name  string
	Value float64
}

// Ratios returns the subject (first) server's figures against each baseline's
// measured in the same run.
func (r *Report) Ratios() []Ratio {
	if len(r.Results) < 2 {
		return nil
	}
	s := r.Results[0]
	var out []Ratio
	add := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			out = append(out, Ratio{name, a / b})
		}
	}
	for _, o := range r.Results[1:] {
		pair := s.Impl + "/" + o.Impl
		switch r.Config.Scenario {
		case ScenarioConnect:
			add(pair+" connect rate", s.ConnectRate, o.ConnectRate)
			add(pair+" server CPU per connection", s.CPUPerConnect, o.CPUPerConnect)
			add(pair+" RSS per connection", s.RSSPerConn, o.RSSPerConn)
		case ScenarioIdle:
			add(pair+" CPU per heartbeat", s.CPUPerBeat, o.CPUPerBeat)
		case ScenarioEcho:
			add(pair+" throughput", s.Throughput, o.Throughput)
			add(pair+" p99", float64(s.Lat.P99), float64(o.Lat.P99))
			add(pair+" CPU per request", s.CPUPerReq, o.CPUPerReq)
		}
	}
	return out
}

// Find returns the result for impl, or nil.
func (r *Report) Find(impl string) *Result {
	for _, x := range r.Results {
		if x.Impl == impl {
			return x
		}
	}
	return nil
}
