package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/server/control"
)

// The control port: where backend services push, kick, query presence and receive the
// clients' uplink messages (package server/control, PROTOCOL.md §15).

// controlSettings are the control port's flags.
type controlSettings struct {
	control, controlSecretFile string
	controlMaxServices         int
}

// addControlFlags registers the control port's flags.
func addControlFlags(fs *flag.FlagSet, s *settings) {
	fs.StringVar(&s.control, "control", "127.0.0.1:7001", "Address of the control port that backend services connect to; \"-\" disables it. It needs a secret (-control-secret-file or TETHER_CONTROL_SECRET), except on loopback in -dev mode; without one it stays off, and a non-loopback address without one is an error.")
	fs.StringVar(&s.controlSecretFile, "control-secret-file", "", fmt.Sprintf("File holding the control port's shared secret (surrounding whitespace is trimmed). TETHER_CONTROL_SECRET may hold the secret itself instead (trimmed the same way). Off loopback the secret must be at least %d bytes (control.MinSecretLen).", control.MinSecretLen))
	fs.IntVar(&s.controlMaxServices, "control-max-services", 0, fmt.Sprintf("Maximum number of authenticated control connections; an AUTH beyond it is refused SERVER_FULL. Connections still authenticating have their own cap (control.DefaultMaxUnauthenticated = %d), so they cannot take a service's place. 0 keeps the library default, control.DefaultMaxServices = %d.", control.DefaultMaxUnauthenticated, control.DefaultMaxServices))
}

// controlPort builds the control port from the settings. It returns nil when the port
// is disabled, or stays off for want of a secret (logged).
func controlPort(st *settings, logger *slog.Logger, getenv func(string) string) (*control.Port, error) {
	if st.control == "-" || st.control == "" {
		return nil, nil
	}
	// The secret is trimmed wherever it comes from: a stray space or newline in the
	// environment must not become (part of) the secret, nor a secret of its own.
	secret := strings.TrimSpace(getenv("TETHER_CONTROL_SECRET"))
	if secret == "" && getenv("TETHER_CONTROL_SECRET") != "" {
		return nil, fmt.Errorf("TETHER_CONTROL_SECRET holds only whitespace")
	}
	if st.controlSecretFile != "" {
		b, err := os.ReadFile(st.controlSecretFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read -control-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return nil, fmt.Errorf("-control-secret-file %s is empty", st.controlSecretFile)
		}
	}
	if st.controlMaxServices < 0 {
		return nil, fmt.Errorf("-control-max-services %d is negative", st.controlMaxServices)
	}
	opts := control.Options{Addr: st.control, Secret: secret, Logger: logger, MaxServices: st.controlMaxServices, Observer: st.observer}
	if secret == "" {
		switch {
		case !netutil.IsLoopback(st.control):
			return nil, fmt.Errorf("refusing to open the control port on the non-loopback address %s without a secret (set -control-secret-file or TETHER_CONTROL_SECRET, or -control - to disable it)", st.control)
		case !st.dev:
			logger.Warn("control port disabled: no secret configured (set -control-secret-file or TETHER_CONTROL_SECRET; -control - silences this warning)")
			return nil, nil
		}
		opts.Insecure = true // development on loopback; the port logs a warning
	}
	return control.New(opts)
}
