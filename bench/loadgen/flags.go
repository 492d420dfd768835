package loadgen

import (
	"flag"
	"io"
	"strconv"
	"time"

	"github.com/tether-gw/tether/bench/kit"
)

// CommandName is the subcommand under which tether-bench and tether-memtest run a
// load child: the orchestrators start their own binary with Args.
const CommandName = "load"

// Flags binds the load child's flags to cfg.
func Flags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Addr, "addr", "", "The server's client port (loopback only in this tool's intended use).")
	fs.Func("transport", "How the connections reach -addr: tcp, tls, ws (binary WebSocket messages) or wss (WebSocket in TLS). Default tcp.", func(v string) error {
		t, err := kit.ParseTransport(v)
		cfg.Transport = t
		return err
	})
	fs.StringVar(&cfg.CAFile, "ca", "", "tls, wss: a PEM file with the certificate the server's must chain to (the bench's self-signed one).")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "tls, wss: do not verify the server's certificate.")
	fs.StringVar(&cfg.WSPath, "ws-path", "", "ws, wss: the WebSocket endpoint's path; empty means "+kit.WSPath+".")
	fs.IntVar(&cfg.N, "n", 0, "The number of connections to open and hold.")
	fs.StringVar(&cfg.Src, "src", "127.0.0.1", "The local address to connect from; give each loader its own so ephemeral ports last.")
	fs.IntVar(&cfg.ID, "id", 0, "The loader number, used in the user ids (tokens u<id>-<i>).")
	fs.StringVar(&cfg.DeviceID, "device", "bench", "The device id every HELLO carries.")
	fs.StringVar(&cfg.ClientVersion, "client-version", "", "The client version every HELLO carries; empty means none.")
	fs.Float64Var(&cfg.Rate, "rate", 0, "New connections per second; 0 means as fast as -concurrency allows.")
	fs.IntVar(&cfg.Concurrency, "concurrency", 256, "The number of handshakes (dial to AUTH_OK) allowed in progress at once.")
	fs.BoolVar(&cfg.Bare, "bare", false, "The server echoes bytes instead of speaking the protocol.")
	fs.IntVar(&cfg.Pings, "pings", 0, "The PONGs that make a connection ready; 0 means no ready event.")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 0, "The time between a connection's PINGs; 0 means the heartbeat the server announces.")
	fs.DurationVar(&cfg.MaxLifetime, "max-lifetime", 15*time.Minute, "The time after which the loader closes its connections and exits even if its stdin stays open.")
}

// Args returns the command line (after the program name) that runs a load child
// with cfg: the inverse of Flags.
func Args(cfg Config) []string {
	args := []string{CommandName, "-addr", cfg.Addr, "-n", strconv.Itoa(cfg.N), "-id", strconv.Itoa(cfg.ID),
		"-rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64)}
	if cfg.Src != "" {
		args = append(args, "-src", cfg.Src)
	}
	if cfg.Transport != "" {
		args = append(args, "-transport", string(cfg.Transport))
	}
	if cfg.CAFile != "" {
		args = append(args, "-ca", cfg.CAFile)
	}
	if cfg.Insecure {
		args = append(args, "-insecure")
	}
	if cfg.WSPath != "" {
		args = append(args, "-ws-path", cfg.WSPath)
	}
	if cfg.DeviceID != "" {
		args = append(args, "-device", cfg.DeviceID)
	}
	if cfg.ClientVersion != "" {
		args = append(args, "-client-version", cfg.ClientVersion)
	}
	if cfg.Concurrency > 0 {
		args = append(args, "-concurrency", strconv.Itoa(cfg.Concurrency))
	}
	if cfg.Bare {
		args = append(args, "-bare")
	}
	if cfg.Pings > 0 {
		args = append(args, "-pings", strconv.Itoa(cfg.Pings))
	}
	if cfg.PingInterval > 0 {
		args = append(args, "-ping-interval", cfg.PingInterval.String())
	}
	if cfg.MaxLifetime > 0 {
		args = append(args, "-max-lifetime", cfg.MaxLifetime.String())
	}
	return args
}

// Command returns the load subcommand of the tool prog, which runs Load with the
// flags (see Flags) on stdin and stdout.
func Command(prog string, stdin io.Reader, stdout, stderr io.Writer) kit.Command {
	return kit.SubCommand(prog, CommandName, stderr, Flags, func(cfg Config) error { return Load(cfg, stdin, stdout) })
}
