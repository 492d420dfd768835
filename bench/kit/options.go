package kit

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tether-gw/tether/server"
)

// ServerOptions returns the options of the gateway embedded under test: what tetherd
// -dev uses (any token is its user id), minus the per-IP and connect-rate limits that
// would refuse a load test from a handful of loopback addresses, logging errors only.
func ServerOptions(addr, admin string, heartbeat time.Duration) server.Options {
	return server.Options{
		Addr:          addr,
		AdminAddr:     admin,
		Authenticator: server.InsecureAuthenticator{},
		Heartbeat:     heartbeat,
		MaxConnsPerIP: -1,
		ConnectRate:   -1,
		MaxConns:      100_000,
		Logger:        ErrorLogger(),

		// per-source limits off, as tetherd -dev does
		SourceConnectRate: -1, FlapThreshold: -1,
	}
}

// ErrorLogger returns a text logger on stderr that logs errors only.
func ErrorLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// SelfExe fills in the defaults of an orchestrator's children: exe defaults to this
// process's executable, env to its environment.
func SelfExe(exe string, env []string) (string, []string, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return "", nil, fmt.Errorf("cannot find own executable: %w", err)
		}
	}
	if env == nil {
		env = os.Environ()
	}
	return exe, env, nil
}
