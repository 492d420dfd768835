package loadgen

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// TestArgsRoundTrip parses what Args renders with Flags: an orchestrator's Config
// reaches the child unchanged.
func TestArgsRoundTrip(t *testing.T) {
	f := func(cfg Config) {
		t.Helper()
		args := Args(cfg)
		if args[0] != CommandName {
			t.Fatalf("Args = %q, want the %q subcommand first", args, CommandName)
		}
		fs := flag.NewFlagSet("load", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var got Config
		Flags(fs, &got)
		if err := fs.Parse(args[1:]); err != nil {
			t.Fatal(err)
		}
		if got != cfg {
			t.Errorf("Args(%+v) parsed back as %+v", cfg, got)
		}
	}
	// tether-memtest's loaders.
	f(Config{Addr: "127.0.0.1:4000", N: 9500, Src: "127.0.0.2", ID: 1, DeviceID: "memtest", Rate: 2000, Concurrency: 256,
		Pings: 2, PingInterval: 100 * time.Millisecond, MaxLifetime: 5 * time.Minute})
	// tether-bench's, against the bare echo server.
	f(Config{Addr: "127.0.0.1:4001", N: 20, Src: "127.0.10.2", DeviceID: "bench", ClientVersion: "tether-bench", Rate: 0.5,
		Concurrency: 256, Bare: true, PingInterval: 5 * time.Second, MaxLifetime: time.Minute})
	// Every transport, with a CA file or insecure, and a WebSocket path.
	f(Config{Addr: "127.0.0.1:4002", N: 100, Src: "127.0.11.2", DeviceID: "bench", Transport: kit.TransportTLS, CAFile: "/tmp/w/cert.pem",
		WSPath: "/ws", Concurrency: 64, MaxLifetime: time.Minute})
	f(Config{Addr: "127.0.0.1:4003", N: 100, Src: "127.0.11.3", DeviceID: "bench", Transport: kit.TransportWSS, Insecure: true,
		WSPath: "/tether/ws", Concurrency: 64, MaxLifetime: time.Minute})
	f(Config{Addr: "127.0.0.1:4004", N: 100, Src: "127.0.11.4", DeviceID: "bench", Transport: kit.TransportWS, WSPath: "/ws",
		Concurrency: 64, MaxLifetime: time.Minute})
}

// TestTransportFlag: -transport takes only the four names, and none means tcp.
func TestTransportFlag(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		fs := flag.NewFlagSet("load", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var cfg Config
		Flags(fs, &cfg)
		return cfg, fs.Parse(args)
	}
	if cfg, err := parse("-transport", "wss"); err != nil || cfg.Transport != kit.TransportWSS {
		t.Errorf("-transport wss: %+v, %v", cfg, err)
	}
	if _, err := parse("-transport", "quic"); err == nil {
		t.Error("-transport quic was accepted")
	}
	if cfg := (Config{}).withDefaults(); cfg.Transport != kit.TransportTCP || cfg.WSPath != kit.WSPath {
		t.Errorf("defaults: transport %q, ws path %q", cfg.Transport, cfg.WSPath)
	}
}
