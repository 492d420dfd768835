package load

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/kit/kittest"
)

// childEnv makes the test binary act as tether-bench, so the scenarios can start it
// as their serve and load children.
const childEnv = "TETHER_BENCH_CHILD"

func TestMain(m *testing.M) { kittest.ChildMain(m, childEnv, Main) }

// smoke runs cfg at a tiny size with this test binary as the children and returns
// one result per server. The embedded gateway (tether) stands in for tetherd, which
// would have to be built first.
func smoke(t *testing.T, cfg RunConfig) []*Result {
	t.Helper()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	cfg.Exe = os.Args[0]
	cfg.Env = kittest.ChildEnv(childEnv)
	cfg.Timeout = time.Minute
	cfg.Log = kittest.Log{T: t}
	if cfg.Warmup == 0 {
		cfg.Warmup = 200 * time.Millisecond
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(cfg.Impls) {
		t.Fatalf("got %d results, want %d", len(res), len(cfg.Impls))
	}
	rep := NewReport(cfg, res)
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report does not encode: %v", err)
	}
	for _, r := range res {
		if r.Connected != int64(cfg.N) || r.Failed != 0 || r.Lost != 0 {
			t.Errorf("%s: %d connected, %d failed, %d lost of %d (%v)", r.Impl, r.Connected, r.Failed, r.Lost, cfg.N, r.Failures)
		}
		if r.ConnectRate <= 0 || r.ConnectLat.P50 <= 0 {
			t.Errorf("%s: connect rate %v, connect p50 %v µs", r.Impl, r.ConnectRate, r.ConnectLat.P50)
		}
	}
	return res
}

func TestConnectSmoke(t *testing.T) {
	// With a profile directory, the server with an admin port (tether) connects a
	// second time under the profiler.
	res := smoke(t, RunConfig{Scenario: ScenarioConnect, Impls: []string{ImplTether, ImplBare}, N: 20, Src: "127.0.10.2", ProfileDir: t.TempDir()})
	for _, r := range res {
		if r.RSSAfter <= 0 || r.RSSBefore <= 0 || r.ConnectSeconds <= 0 {
			t.Errorf("%s: RSS %d -> %d, connect time %vs", r.Impl, r.RSSBefore, r.RSSAfter, r.ConnectSeconds)
		}
	}
	if r := res[0]; r.Profile == "" || r.ProfiledRate <= 0 {
		t.Errorf("tether: profile %q, profiled pass %v conn/s; want both", r.Profile, r.ProfiledRate)
	}
	if r := res[1]; r.Profile != "" {
		t.Errorf("bare has no admin port but was profiled: %q", r.Profile)
	}
	dir := t.TempDir()
	files, err := NewReport(RunConfig{Scenario: ScenarioConnect, N: 20}, res).Plots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Errorf("plots %v, want the memory plot", files)
	}
}

func TestIdleSmoke(t *testing.T) {
	// A 500ms heartbeat makes every connection PING twice a second; shorter, a server's
	// 1.5-heartbeat timeout can pass on a loaded 2-core machine under -race, and the
	// run fails for lost connections.
	res := smoke(t, RunConfig{Scenario: ScenarioIdle, Impls: []string{ImplTether, ImplBaseline}, N: 20, Heartbeat: 500 * time.Millisecond,
		Src: "127.0.11.2"})
	for _, r := range res {
		if r.Heartbeats < 10 || r.Seconds <= 0 || r.CPUPerBeat < 0 {
			t.Errorf("%s: %d heartbeats in %vs, %v µs each", r.Impl, r.Heartbeats, r.Seconds, r.CPUPerBeat)
		}
	}
}

func TestEchoSmoke(t *testing.T) {
	res := smoke(t, RunConfig{Scenario: ScenarioEcho, Impls: []string{ImplTether, ImplBare}, N: 20, MsgRate: 20, Src: "127.0.12.2"})
	for _, r := range res {
		if r.Replies < 100 || r.Errors != 0 || r.Throughput <= 0 {
			t.Errorf("%s: %d replies, %d errors, %v/s", r.Impl, r.Replies, r.Errors, r.Throughput)
		}
		// The report snapshots counters and histograms one after the other, so on a
		// busy machine (-race) replies land between them: the counts differ a little.
		if l := r.Lat; l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max || l.Count < r.Replies/2 || l.Count > 2*r.Replies {
			t.Errorf("%s: latency summary %+v for %d replies", r.Impl, l, r.Replies)
		}
	}
	dir := t.TempDir()
	if files, err := NewReport(RunConfig{Scenario: ScenarioEcho, N: 20}, res).Plots(dir); err != nil || len(files) != 1 {
		t.Errorf("plots %v, %v; want the latency CDF", files, err)
	}
}

func TestEchoPipelinedSmoke(t *testing.T) {
	res := smoke(t, RunConfig{Scenario: ScenarioEcho, Impls: []string{ImplTether, ImplBaseline}, N: 4, Window: 4, Src: "127.0.13.2"})
	for _, r := range res {
		if r.Replies < 100 || r.Errors != 0 || r.Lat.P50 <= 0 {
			t.Errorf("%s: %d replies, %d errors, p50 %d µs", r.Impl, r.Replies, r.Errors, r.Lat.P50)
		}
	}
}

func TestPushSmoke(t *testing.T) {
	res := smoke(t, RunConfig{Scenario: ScenarioPush, Impls: []string{ImplTether}, N: 20, Batch: 5, MsgRate: 200, Src: "127.0.14.2"})
	r := res[0]
	if r.Delivered < 50 || r.DeliveredPS <= 0 || r.Lat.P50 <= 0 || r.Errors != 0 {
		t.Errorf("delivered %d (%v/s), p50 %d µs, %d failed requests", r.Delivered, r.DeliveredPS, r.Lat.P50, r.Errors)
	}
}

func TestRoomSmoke(t *testing.T) {
	res := smoke(t, RunConfig{Scenario: ScenarioRoom, Impls: []string{ImplTether}, N: 20, Broadcasts: 3, Src: "127.0.15.2"})
	r := res[0]
	if r.Members != 20 || len(r.LastMember) != 3 || r.Delivered != 60 || r.DeliveredPS <= 0 {
		t.Errorf("%d members, last-member times %v, %d delivered (%v/s); want 20, 3 times, 60", r.Members, r.LastMember, r.Delivered, r.DeliveredPS)
	}
	for _, lm := range r.LastMember {
		if lm <= 0 {
			t.Errorf("last-member time %v ms", lm)
		}
	}
}

func TestChurnSmoke(t *testing.T) {
	res := smoke(t, RunConfig{Scenario: ScenarioChurn, Impls: []string{ImplTether}, N: 20, ChurnRate: 10, MsgRate: 100,
		Duration: 2 * time.Second, Src: "127.0.16.2"})
	r := res[0]
	if r.Expected < 50 || r.Reconnects < 5 || r.ReconnectLat.P50 <= 0 {
		t.Errorf("%d messages accepted, %d reconnects (p50 %d µs); want a real churn", r.Expected, r.Reconnects, r.ReconnectLat.P50)
	}
	if r.Missing != 0 || r.Duplicates != 0 || r.Unexpected != 0 || r.Received != r.Expected {
		t.Errorf("received %d of %d: %d missing, %d duplicated, %d unexpected", r.Received, r.Expected, r.Missing, r.Duplicates, r.Unexpected)
	}
}

func TestUpdateMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	f := func(before, section, want string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := updateMarkdown(path, section); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	// No markers: appended at the end.
	f("# Bench\nprose\n", "x\n", "# Bench\nprose\n\n"+MarkBegin+"\nx\n"+MarkEnd+"\n")
	// Markers: only the section between them changes.
	f("a\n"+MarkBegin+"\nold\n"+MarkEnd+"\nb\n", "new\n", "a\n"+MarkBegin+"\nnew\n"+MarkEnd+"\nb\n")
	// An empty file gets just the section.
	f("", "x\n", MarkBegin+"\nx\n"+MarkEnd+"\n")
}

// TestTransportConnectSmoke: a scenario over wss reaches the baseline through TLS
// and the WebSocket upgrade with the run's own certificate, and records the
// handshake times; servers that serve raw TCP only are refused over it.
func TestTransportConnectSmoke(t *testing.T) {
	res := smoke(t, RunConfig{Scenario: ScenarioConnect, Impls: []string{ImplBaseline}, Transport: kit.TransportWSS, N: 20, Src: "127.0.17.2"})
	if r := res[0]; r.Transport != kit.TransportWSS || r.HandshakeLat.Count != 20 || r.HandshakeLat.P50 <= 0 {
		t.Errorf("transport %q, handshake times %+v; want 20 over wss", r.Transport, r.HandshakeLat)
	}
	for _, impl := range []string{ImplTether, ImplBare} {
		if _, err := (RunConfig{Scenario: ScenarioConnect, Impls: []string{impl}, Transport: kit.TransportTLS}).Defaults(); err == nil {
			t.Errorf("%s over tls was accepted", impl)
		}
	}
	if c, err := (RunConfig{Scenario: ScenarioIdle, Transport: kit.TransportWS}).Defaults(); err != nil || !slices.Equal(c.Impls, []string{ImplTetherd, ImplBaseline}) {
		t.Errorf("idle over ws defaults to %v, %v", c.Impls, err)
	}
}

// TestTransportsSmoke runs the transports measurement on tetherd (built here) and
// the baseline over all four transports at a tiny size and checks every row has its
// figures, and tetherd's room broadcasts reached every member over each transport.
func TestTransportsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tetherd and starts child processes")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := RunTransports(ctx, TransportsConfig{N: 20, Broadcasts: 3, Src: "127.0.18.2", Exe: os.Args[0],
		Env: kittest.ChildEnv(childEnv), Timeout: time.Minute, Log: kittest.Log{T: t}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	if len(rep.Results) != 8 {
		t.Fatalf("%d results, want 8", len(rep.Results))
	}
	for i, x := range rep.Results {
		if x.Impl == ImplTetherd && (x.Members != 20 || x.Delivered != 60) {
			t.Errorf("tetherd over %s: %d members, %d broadcasts delivered; want 20 and 60", x.Transport, x.Members, x.Delivered)
		}
		if x.Transport != kit.Transports[i/2] || x.Connected != 20 || x.Failed != 0 || x.Lost != 0 || x.HandshakeRate <= 0 ||
			x.HandshakeLat.P50 <= 0 || x.RSSBefore <= 0 || x.RSSSettled <= 0 {
			t.Errorf("row %d: %+v", i, x)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report does not encode: %v", err)
	}
}

// TestTransportRows: every ratio is to the same server over raw tcp, and tetherd's
// also to the baseline on the same transport; missing figures show as "-".
func TestTransportRows(t *testing.T) {
	rep := &TransportsReport{Results: []*TransportResult{
		{Transport: kit.TransportTCP, Impl: ImplTetherd, Connected: 10, RSSPerConn: 4096, HandshakeRate: 8000, CPUPerMsg: 1},
		{Transport: kit.TransportTCP, Impl: ImplBaseline, Connected: 10, RSSPerConn: 8192, HandshakeRate: 10000},
		{Transport: kit.TransportTLS, Impl: ImplTetherd, Connected: 10, RSSPerConn: 6144, HandshakeRate: 2000, CPUPerMsg: 1.5},
		{Transport: kit.TransportTLS, Impl: ImplBaseline, Connected: 10, RSSPerConn: 24576, HandshakeRate: 1000},
	}}
	_, rows := rep.transportRows()
	want := [][]string{
		// RSS/conn, vs tcp, vs baseline, conn/s, vs tcp, vs baseline, fan-out, vs tcp
		{"4.00 KiB", "1.00x", "0.50x", "8000", "1.00x", "0.80x", "1.00", "1.00x"},
		{"8.00 KiB", "1.00x", "-", "10000", "1.00x", "-", "-", "-"},
		{"6.00 KiB", "1.50x", "0.25x", "2000", "0.25x", "2.00x", "1.50", "1.50x"},
		{"24.00 KiB", "3.00x", "-", "1000", "0.10x", "-", "-", "-"},
	}
	for i, row := range rows {
		got := []string{row[3], row[4], row[5], row[6], row[7], row[8], row[11], row[12]}
		if !slices.Equal(got, want[i]) {
			t.Errorf("row %d: %q, want %q", i, got, want[i])
		}
	}
	if md := rep.MarkdownTable(); strings.Count(md, "\n") != 6 || !strings.Contains(md, "| tls | baseline: crypto/tls, goroutine per conn |") {
		t.Errorf("markdown table:\n%s", md)
	}
}
