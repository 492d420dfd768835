// Package serve is the bench's one server child: a process that runs one
// implementation under test on a free loopback port, says where it listens and
// answers the orchestrator's commands (stats, gc, heap) over bench/msg's JSON lines.
// tether-bench (bench/load) runs it for the embedded gateway, the baseline and the
// bare echo; tether-memtest (bench/memtest) for every implementation whose memory it
// measures, tetherd included (the child then relays for a tetherd grandchild).
//
// Keeping the server in a process of its own is what makes its RSS and CPU time
// readable from /proc without the loaders' being mixed in.
package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/protocol"
)

// Implementations a serve child can run.
const (
	// ImplTether is the gateway package, server.Server, embedded like an application
	// would embed it, with a handler that echoes SEND payloads.
	ImplTether = "tether"
	// ImplTetherd is the cmd/tetherd binary, run as a separate process the child
	// relays for (Config.Tetherd).
	ImplTetherd = "tetherd"
	// ImplBaseline is bench/baseline, one goroutine per connection, which echoes SEND
	// payloads.
	ImplBaseline = "baseline"
	// ImplBare is a bare netpoll server that echoes bytes: no protocol, no worker
	// pool, no timers. It is the ceiling for echo throughput and, for connect, the
	// bare accept loop (a HELLO comes back as itself).
	ImplBare = "bare"
	// ImplNetpoll is a bare netpoll server that speaks the protocol with tether's
	// buffer settings, answering from the read callback: the event loop's floor for
	// memory per connection.
	ImplNetpoll = "netpoll"
)

// CommandName is the subcommand under which tether-bench and tether-memtest run a
// serve child: the orchestrators start their own binary with Args.
const CommandName = "serve"

// Config configures a serve child. The zero value keeps the defaults in each field's
// doc.
type Config struct {
	// Impl is one of the Impl constants. Required.
	Impl string
	// Addr is the client port's listen address. Default "127.0.0.1:0".
	Addr string
	// Heartbeat is the interval announced in AUTH_OK. Default
	// protocol.DefaultHeartbeatMs.
	Heartbeat time.Duration
	// Admin makes ImplTether serve its admin endpoint (metrics, pprof) on a free
	// loopback port. Default off.
	Admin bool
	// Control makes ImplTether serve a control port without a secret on a free
	// loopback port, for the push, room and churn scenarios. Default off.
	Control bool
	// MemProfileRate, when set, is runtime.MemProfileRate for heap profiles; the
	// memory measurement sets it the same for every implementation so it cannot bias
	// the comparison. Default: the runtime's.
	MemProfileRate int
	// MaxLifetime ends the child even if its stdin stays open. Default 15m.
	MaxLifetime time.Duration
	// Tetherd is the tetherd binary ImplTetherd runs. Required for ImplTetherd.
	Tetherd string
	// Transport is what the client port speaks: ImplBaseline serves it itself
	// (crypto/tls and a gobwas/ws upgrade in each connection's goroutine),
	// ImplTetherd through its own listener for it; the others serve raw TCP only.
	// Default kit.TransportTCP.
	Transport kit.Transport
	// CertFile and KeyFile are the PEM certificate and key for the tls and wss
	// transports. Required for those.
	CertFile, KeyFile string
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = protocol.DefaultHeartbeatMs * time.Millisecond
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 15 * time.Minute
	}
	c.Transport = c.Transport.Or()
	return c
}

// cert returns the configured certificate.
func (c Config) cert() kit.Cert { return kit.Cert{CertFile: c.CertFile, KeyFile: c.KeyFile} }

// Serve runs a server child: it starts cfg.Impl, sends a "listening" event, then
// answers the commands read from in (see msg.Command) until in closes, "quit"
// arrives or cfg.MaxLifetime passes. A command that fails is answered with an
// "error" event; the child keeps serving.
func Serve(cfg Config, in io.Reader, out io.Writer) error {
	cfg = cfg.withDefaults()
	if cfg.MemProfileRate > 0 {
		runtime.MemProfileRate = cfg.MemProfileRate
	}
	kit.FileLimit()
	t, err := start(cfg)
	if err != nil {
		return err
	}
	defer t.close()
	ew := msg.NewWriter(out)
	ev := t.listening()
	ev.Kind, ev.Impl, ev.PID, ev.GOMAXPROCS = "listening", cfg.Impl, t.pid(), runtime.GOMAXPROCS(0)
	ew.Send(ev)

	cmds := msg.ReadCommands(in, ew)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxLifetime)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("serve: max lifetime %v passed", cfg.MaxLifetime)
		case cmd, ok := <-cmds:
			if !ok || cmd.Op == "quit" {
				return nil
			}
			if err := command(t, ew, cmd); err != nil {
				ew.Errorf("%s: %v", cmd.Op, err)
			}
		}
	}
}

// command carries out one command of the serve child.
func command(t target, ew *msg.Writer, cmd msg.Command) error {
	switch cmd.Op {
	case "stats":
		return sendStats(t, ew)
	case "gc":
		if err := t.gc(); err != nil {
			return err
		}
		return sendStats(t, ew)
	case "heap":
		if cmd.Path == "" {
			return errors.New("heap needs a file name")
		}
		if err := t.writeHeap(cmd.Path); err != nil {
			return err
		}
		ew.Send(msg.Event{Kind: "heap", Path: cmd.Path})
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd.Op)
}

// sendStats sends the server's Go memory and connection counts.
func sendStats(t target, ew *msg.Writer) error {
	st, err := t.stats()
	if err != nil {
		return err
	}
	ew.Send(msg.Event{Kind: "stats", Mem: &st})
	return nil
}

// Flags binds the serve child's flags to cfg.
func Flags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Impl, "impl", ImplTether, "The server to run: tether (the gateway, in this process, echoing SENDs), tetherd (the binary, as a child this process relays for), baseline (goroutine per connection), bare (netpoll byte echo) or netpoll (bare event loop speaking the protocol).")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "The address to listen on; port 0 picks a free port, sent in the listening event.")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", protocol.DefaultHeartbeatMs*time.Millisecond, "The heartbeat announced in AUTH_OK; silent connections are closed after 1.5 times it.")
	fs.BoolVar(&cfg.Admin, "admin", false, "tether: also serve the admin endpoint (metrics, pprof) on a free loopback port.")
	fs.BoolVar(&cfg.Control, "control", false, "tether: also serve a control port without a secret on a free loopback port.")
	fs.IntVar(&cfg.MemProfileRate, "memprofilerate", 0, "The runtime.MemProfileRate for heap profiles, in bytes; 0 keeps the runtime's.")
	fs.DurationVar(&cfg.MaxLifetime, "max-lifetime", 15*time.Minute, "The time after which the server exits even if its stdin stays open.")
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary that -impl tetherd runs and relays for.")
	fs.Func("transport", "What the client port speaks: tcp, tls, ws or wss (baseline and tetherd only). Default tcp.", func(v string) error {
		t, err := kit.ParseTransport(v)
		cfg.Transport = t
		return err
	})
	fs.StringVar(&cfg.CertFile, "tls-cert", "", "tls, wss: the PEM certificate file.")
	fs.StringVar(&cfg.KeyFile, "tls-key", "", "tls, wss: the PEM key file.")
}

// Args returns the command line (after the program name) that runs a serve child
// with cfg: the inverse of Flags.
func Args(cfg Config) []string {
	args := []string{CommandName, "-impl", cfg.Impl}
	if cfg.Addr != "" {
		args = append(args, "-addr", cfg.Addr)
	}
	if cfg.Heartbeat > 0 {
		args = append(args, "-heartbeat", cfg.Heartbeat.String())
	}
	if cfg.Admin {
		args = append(args, "-admin")
	}
	if cfg.Control {
		args = append(args, "-control")
	}
	if cfg.MemProfileRate > 0 {
		args = append(args, "-memprofilerate", strconv.Itoa(cfg.MemProfileRate))
	}
	if cfg.MaxLifetime > 0 {
		args = append(args, "-max-lifetime", cfg.MaxLifetime.String())
	}
	if cfg.Tetherd != "" {
		args = append(args, "-tetherd", cfg.Tetherd)
	}
	if cfg.Transport != "" {
		args = append(args, "-transport", string(cfg.Transport))
	}
	if cfg.CertFile != "" {
		args = append(args, "-tls-cert", cfg.CertFile)
	}
	if cfg.KeyFile != "" {
		args = append(args, "-tls-key", cfg.KeyFile)
	}
	return args
}

// Command returns the serve subcommand of the tool prog, which runs Serve with the
// flags (see Flags) on stdin and stdout.
func Command(prog string, stdin io.Reader, stdout, stderr io.Writer) kit.Command {
	return kit.SubCommand(prog, CommandName, stderr, Flags, func(cfg Config) error { return Serve(cfg, stdin, stdout) })
}
