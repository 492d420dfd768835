package main

import (
	"flag"
	"fmt"
	"log/slog"

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
	secret, err := readSecret(getenv, "TETHER_CONTROL_SECRET", "-control-secret-file", st.controlSecretFile)
	if err != nil {
		return nil, err
	}
	if st.controlMaxServices < 0 {
		return nil, fmt.Errorf("-control-max-services %d is negative", st.controlMaxServices)
	}
	opts := control.Options{Addr: st.control, Secret: secret, Logger: logger, MaxServices: st.controlMaxServices, Observer: st.observer}
	if secret == "" {
		insecure, err := withoutSecret(st.control, st.dev, logger, "control port", "secret", "-control-secret-file or TETHER_CONTROL_SECRET", "-control")
		if !insecure {
			return nil, err // an error, or off
		}
		opts.Insecure = true // development on loopback; the port logs a warning
	}
	return control.New(opts)
}
