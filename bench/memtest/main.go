package memtest

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/loadgen"
	"github.com/tether-gw/tether/bench/serve"
)

const usage = `usage: tether-memtest <command> [flags]

Measures server RSS growth per authenticated, heartbeating connection for tether and
for a goroutine-per-connection server, in one run. Commands:

  run    orchestrate a measurement: start a server and loaders per implementation,
         print the table (and JSON with -json)
  serve  a server child (bench/serve, started by run; usable by hand: JSON
         commands on stdin, e.g. {"op":"stats"})
  load   a load-generator child (bench/loadgen, started by run)

Run "tether-memtest <command> -h" for the command's flags. Example:

  tether-memtest run -n 19000 -loaders 2 -heap-dir bench/results
`

// Main runs the command line args (without the program name) and returns the exit
// status. cmd/tether-memtest is a thin wrapper around it; the children Run starts are
// the same binary called with "serve" and "load".
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return kit.Main("tether-memtest", usage, []kit.Command{
		{Name: "run", Run: func(a []string) error { return mainRun(a, stdout, stderr) }},
		serve.Command("tether-memtest", stdin, stdout, stderr),
		loadgen.Command("tether-memtest", stdin, stdout, stderr),
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
	fs.IntVar(&cfg.Concurrency, "concurrency", 256, "The handshakes (dial to AUTH_OK) one loader keeps in progress at most.")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "The time limit for measuring one implementation; children exit by themselves after it.")
	fs.StringVar(&cfg.HeapDir, "heap-dir", "", "The directory that receives each server's heap profile at n connections and its pprof -top text; empty means no profiles.")
	fs.Func("transport", "How the loaders reach the server: tcp, tls, ws or wss (tetherd and baseline only; tls and wss with a self-signed certificate generated for the run). Default tcp.", func(v string) error {
		t, err := kit.ParseTransport(v)
		cfg.Transport = t
		return err
	})
	jsonOut := fs.String("json", "", "Also write the report as JSON to this file; - means stdout, after the table.")
	quiet := fs.Bool("q", false, "Do not print progress and the children's output on stderr.")
	if err := kit.Parse(fs, args); err != nil {
		return err
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
