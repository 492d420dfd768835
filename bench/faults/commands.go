package faults

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tether-gw/tether/bench/kit"
)

// Usage lists the subcommands for tether-bench's usage text.
const Usage = `Issue 8 faults, measured against tetherd processes started here (package bench/faults):

  halfopen     heartbeat close time of clients whose packets are dropped (root: netns)
  loginflood   log volume of a bad-token flood from one source, valid logins meanwhile
  secretflood  log volume of a wrong control-secret flood, guesses checked per second
  emfile       tetherd under prlimit: SERVER_FULL while out of descriptors, control after
  lockout      a service's AUTH while 1,024 idle unauthenticated control connections wait
`

// Commands returns the tether-bench subcommands of this package.
func Commands(prog string, stdout, stderr io.Writer) []kit.Command {
	run := func(f func(context.Context) error) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return f(ctx)
	}
	return []kit.Command{
		kit.SubCommand(prog, "halfopen", stderr, bindHalfOpen, func(c HalfOpenConfig) error {
			return run(func(ctx context.Context) error { return RunHalfOpen(ctx, c, stdout, stderr) })
		}),
		kit.SubCommand(prog, "loginflood", stderr, bindLoginFlood, func(c LoginFloodConfig) error {
			return run(func(ctx context.Context) error { return RunLoginFlood(ctx, c, stdout, stderr) })
		}),
		kit.SubCommand(prog, "secretflood", stderr, bindSecretFlood, func(c SecretFloodConfig) error {
			return run(func(ctx context.Context) error { return RunSecretFlood(ctx, c, stdout, stderr) })
		}),
		kit.SubCommand(prog, "emfile", stderr, bindEMFILE, func(c EMFILEConfig) error {
			return run(func(ctx context.Context) error { return RunEMFILE(ctx, c, stdout, stderr) })
		}),
		kit.SubCommand(prog, "lockout", stderr, bindLockout, func(c LockoutConfig) error {
			return run(func(ctx context.Context) error { return RunLockout(ctx, c, stdout, stderr) })
		}),
	}
}
