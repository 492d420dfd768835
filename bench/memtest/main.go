package memtest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

const usage = `usage: tether-memtest <command> [flags]

Measures server RSS growth per authenticated, heartbeating connection for tether and
for a goroutine-per-connection server, in one run. Commands:

  run    orchestrate a measurement: start a server and loaders per implementation,
         print the table (and JSON with -json)
  serve  a server child (started by run; usable by hand: commands on stdin)
  load   a load-generator child (started by run)

Run "tether-memtest <command> -h" for the command's flags. Example:

  tether-memtest run -n 19000 -loaders 2 -heap-dir bench/results
`

// Main runs the command line args (without the program name) and returns the exit
// status. cmd/tether-memtest is a thin wrapper around it; the children Run starts are
// the same binary called with "serve" and "load".
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return kit.Main("tether-memtest", usage, []kit.Command{
		{Name: "run", Run: func(a []string) error { return mainRun(a, stdout, stderr) }},
		{Name: "serve", Run: func(a []string) error { return mainServe(a, stdin, stdout, stderr) }},
		{Name: "load", Run: func(a []string) error { return mainLoad(a, stdin, stdout, stderr) }},
	}, args, stdout, stderr)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return kit.FlagSet("tether-memtest", name, stderr)
}

func mainRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var cfg RunConfig
	impls := fs.String("impl", "tether,baseline", "The implementations to measure, comma-separated, in order: tether (the gateway package in a child process), tetherd (the cmd/tetherd binary), baseline (goroutine per connection), netpoll (bare event loop).")
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary for -impl tetherd; empty means build ./cmd/tetherd with go build.")
	fs.IntVar(&cfg.N, "n", 19000, "The number of connections the server holds when it is measured.")
	fs.IntVar(&cfg.Loaders, "loaders", 2, "The number of load processes sharing the connections; each holds n/loaders sockets, which must stay under the open-files limit.")
	fs.StringVar(&cfg.Src, "src", "127.0.0.2", "The first loader's source address; every further loader, of this implementation or the next, uses the next address.")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 5*time.Second, "The heartbeat the servers announce, which paces the loaders' PINGs.")
	fs.IntVar(&cfg.Pings, "pings", 2, "The PING/PONG exchanges every connection completes before the measurement.")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 0, "The time between a connection's PINGs; 0 means the heartbeat, as a real client does.")
	fs.Float64Var(&cfg.Rate, "rate", 4000, "The total rate of new connections per second, across loaders.")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "The time limit for measuring one implementation; children exit by themselves after it.")
	fs.StringVar(&cfg.HeapDir, "heap-dir", "", "The directory that receives each server's heap profile at n connections and its pprof -top text; empty means no profiles.")
	jsonOut := fs.String("json", "", "Also write the report as JSON to this file; - means stdout, after the table.")
	quiet := fs.Bool("q", false, "Do not print progress and the children's output on stderr.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Impls = strings.Split(*impls, ",")
	if !*quiet {
		cfg.Log = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		if rep != nil && len(rep.Results) > 0 {
			_ = rep.WriteText(stdout)
		}
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if *jsonOut != "" {
		return kit.WriteJSON(*jsonOut, rep, stdout)
	}
	return nil
}

func mainServe(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg ServeConfig
	fs.StringVar(&cfg.Impl, "impl", ImplTether, "The server to run: tether (the gateway, in this process), tetherd (the binary, as a child this process relays for), baseline (goroutine per connection) or netpoll (bare event loop).")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "The address to listen on; port 0 picks a free port, printed on the listening line.")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 5*time.Second, "The heartbeat announced in AUTH_OK; silent connections are closed after 1.5 times it.")
	fs.IntVar(&cfg.MemProfileRate, "memprofilerate", 16<<10, "The runtime.MemProfileRate for heap profiles, in bytes.")
	fs.DurationVar(&cfg.MaxLifetime, "max-lifetime", 10*time.Minute, "The time after which the server exits even if its stdin stays open.")
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary that -impl tetherd runs and relays for.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Serve(cfg, stdin, stdout)
}

func mainLoad(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", stderr)
	var cfg LoadConfig
	fs.StringVar(&cfg.Addr, "addr", "", "The server address to connect to (loopback only in this tool's intended use).")
	fs.IntVar(&cfg.N, "n", 0, "The number of connections to open and hold.")
	fs.StringVar(&cfg.Src, "src", "127.0.0.1", "The local address to connect from; give each loader its own so ephemeral ports last.")
	fs.IntVar(&cfg.ID, "id", 0, "The loader number, used in the user ids (tokens u<id>-<i>).")
	fs.Float64Var(&cfg.Rate, "rate", 2000, "The rate of new connections per second.")
	fs.IntVar(&cfg.Concurrency, "concurrency", 256, "The number of handshakes (dial to AUTH_OK) allowed in progress at once.")
	fs.IntVar(&cfg.Pings, "pings", 2, "The PING/PONG exchanges that make a connection ready.")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 0, "The time between PINGs; 0 means the heartbeat the server announces.")
	fs.DurationVar(&cfg.MaxLifetime, "max-lifetime", 10*time.Minute, "The time after which the loader closes its connections and exits even if its stdin stays open.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Load(cfg, stdin, stdout)
}
