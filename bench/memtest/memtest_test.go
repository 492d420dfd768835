package memtest

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/kit/kittest"
)

// childEnv makes the test binary act as the tether-memtest binary, so Run can start
// it as its serve and load children.
const childEnv = "TETHER_MEMTEST_CHILD"

func TestMain(m *testing.M) { kittest.ChildMain(m, childEnv, Main) }

// TestMemtestSmoke runs the whole tool at a tiny N: both servers in child processes,
// one loader, heap profiles. It checks the plumbing, not the figures: at 50
// connections one-time costs dominate the per-connection numbers.
func TestMemtestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const n = 50
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, RunConfig{
		Exe:     os.Args[0],
		Env:     kittest.ChildEnv(childEnv),
		Impls:   []string{ImplTether, ImplBaseline},
		N:       n,
		Loaders: 1,
		// The gateway's worker pool grows to as many workers as handshakes arrive
		// at once and keeps them for a second or two; a burst of 50 (the default
		// allows 256) once left 50 goroutines at the sample under -race, which the
		// goroutine check below read as one per connection. 4 at a time bound the
		// pool's share.
		Concurrency: 4,
		// A PING every 100ms completes the exchanges quickly, while the 2s heartbeat
		// leaves the server's 3s silence timeout far away even on a loaded machine.
		Heartbeat:    2 * time.Second,
		PingInterval: 100 * time.Millisecond,
		Timeout:      time.Minute,
		HeapDir:      dir,
		Log:          kittest.Log{T: t},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("got %d results, want 2", len(rep.Results))
	}
	for _, res := range rep.Results {
		if res.After.Authed != n || res.After.Conns != n {
			t.Errorf("%s served %d connections (%d authenticated), want %d", res.Impl, res.After.Conns, res.After.Authed, n)
		}
		if res.RSSPerConn <= 0 || res.HeapPerConn <= 0 {
			t.Errorf("%s: RSS per connection %v, heap per connection %v; want both > 0", res.Impl, res.RSSPerConn, res.HeapPerConn)
		}
		if res.ConnectTime <= 0 || res.ReadyTime < res.ConnectTime {
			t.Errorf("%s: connect time %v, ready time %v", res.Impl, res.ConnectTime, res.ReadyTime)
		}
		top, err := os.ReadFile(res.HeapTopFile)
		if err != nil {
			t.Errorf("%s: %v", res.Impl, err)
		} else if !bytes.Contains(top, []byte("inuse_space")) {
			t.Errorf("%s: %s is not a pprof -top of inuse_space:\n%s", res.Impl, res.HeapTopFile, top)
		}
	}
	// The goroutine-per-connection server has a goroutine per connection; tether has
	// none.
	if g := rep.Results[1].After.Goroutines; g < n {
		t.Errorf("baseline has %d goroutines at %d connections", g, n)
	}
	if g := rep.Results[0].After.Goroutines; g >= n {
		t.Errorf("tether has %d goroutines at %d connections", g, n)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"machine:", "GOMAXPROCS", "baseline/tether RSS per connection:", "RSS/conn"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// TestMemtestTetherd runs the tool against the tetherd binary, which it builds,
// at a tiny N.
func TestMemtestTetherd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tetherd and starts child processes")
	}
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, RunConfig{
		Exe:     os.Args[0],
		Env:     kittest.ChildEnv(childEnv),
		Impls:   []string{ImplTetherd},
		N:       n,
		Loaders: 1,
		// A PING every 100ms completes the exchanges quickly, while the 2s heartbeat
		// leaves the server's 3s silence timeout far away even on a loaded machine.
		Heartbeat:    2 * time.Second,
		PingInterval: 100 * time.Millisecond,
		Timeout:      time.Minute,
		Log:          kittest.Log{T: t},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results[0]
	if res.After.Authed != n || res.After.HeapAlloc <= 0 || res.After.RSS <= 0 {
		t.Fatalf("tetherd: %d authenticated, heap %d, RSS %d; want %d and both > 0", res.After.Authed, res.After.HeapAlloc, res.After.RSS, n)
	}
}

func TestRunConfigRejects(t *testing.T) {
	for _, cfg := range []RunConfig{
		{Exe: "x", Impls: []string{"nginx"}}, // unknown implementation
		{Exe: "x", Src: "localhost"},         // not an IP address
		{Exe: "x", N: 1 << 30},               // over any descriptor limit
	} {
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("withDefaults(%+v) accepted it", cfg)
		}
	}
}

// TestMemtestTLS measures the baseline over tls, its certificate generated for the
// run: every connection authenticates and heartbeats through crypto/tls.
func TestMemtestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, RunConfig{Exe: os.Args[0], Env: kittest.ChildEnv(childEnv), Impls: []string{ImplBaseline}, N: n, Loaders: 1,
		Concurrency: 4, Heartbeat: 2 * time.Second, PingInterval: 100 * time.Millisecond, Timeout: time.Minute, Src: "127.0.19.2",
		Transport: kit.TransportTLS, Log: kittest.Log{T: t}})
	if err != nil {
		t.Fatal(err)
	}
	if res := rep.Results[0]; res.After.Authed != n || rep.Config.Transport != kit.TransportTLS {
		t.Errorf("%d authenticated over %q, want %d over tls", res.After.Authed, rep.Config.Transport, n)
	}
	if _, err := Run(ctx, RunConfig{Impls: []string{ImplNetpoll}, N: 1, Transport: kit.TransportWS, Exe: os.Args[0], Env: kittest.ChildEnv(childEnv),
		Src: "127.0.19.10", Timeout: 20 * time.Second}); err == nil {
		t.Error("netpoll over ws was measured")
	}
}
