package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
	"github.com/tether-gw/tether/server/httpapi"
)

// The HTTP API: the control port's operations as JSON over HTTP/1.1 and HTTP/2 for
// backend services (package server/httpapi, docs/HTTPAPI.md).

// httpAPISettings are the HTTP API's flags.
type httpAPISettings struct {
	httpAddr, httpKeyFile   string
	httpTLSCert, httpTLSKey string
}

// addHTTPAPIFlags registers the HTTP API's flags.
func addHTTPAPIFlags(fs *flag.FlagSet, s *httpAPISettings) {
	fs.StringVar(&s.httpAddr, "http-addr", httpapi.DefaultAddr, "Address of the HTTP API for backend services (every control-port operation as JSON over HTTP/1.1 and HTTP/2; docs/HTTPAPI.md); \"-\" disables it. It needs an API key (-http-api-key-file or TETHER_HTTP_API_KEY), except on loopback in -dev mode; without one it stays off, and a non-loopback address without one is an error.")
	fs.StringVar(&s.httpKeyFile, "http-api-key-file", "", fmt.Sprintf("File holding the HTTP API key that requests present as \"Authorization: Bearer <key>\" (surrounding whitespace is trimmed). TETHER_HTTP_API_KEY may hold the key itself instead. Off loopback the key must be at least %d bytes (httpapi.MinKeyLen).", httpapi.MinKeyLen))
	fs.StringVar(&s.httpTLSCert, "http-tls-cert", "", "PEM certificate (chain) file for the HTTP API: with -http-tls-key it serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN); without, cleartext HTTP/1.1 and h2c (HTTP/2 with prior knowledge). Reloaded on SIGHUP, like -tls-cert.")
	fs.StringVar(&s.httpTLSKey, "http-tls-key", "", "PEM private key file for -http-tls-cert.")
}

// startHTTPAPI builds and starts the HTTP API on srv (ctl, the control port, may be
// nil) and adds its metrics to /metrics. It returns the function that closes it; the
// API is off (a no-op closer) when disabled, or for want of a key (logged).
func startHTTPAPI(st *settings, logger *slog.Logger, getenv func(string) string, srv *server.Server, ctl *control.Port, certs *atomic.Pointer[certStore]) (func() error, error) {
	none := func() error { return nil }
	s := &st.httpAPISettings
	if s.httpAddr == "-" || s.httpAddr == "" {
		return none, nil
	}
	key, err := readSecret(getenv, "TETHER_HTTP_API_KEY", "-http-api-key-file", s.httpKeyFile)
	if err != nil {
		return nil, err
	}
	opts := httpapi.Options{Addr: s.httpAddr, Key: key, Logger: logger}
	if key == "" {
		insecure, err := withoutSecret(s.httpAddr, st.dev, logger, "HTTP API", "key", "-http-api-key-file or TETHER_HTTP_API_KEY", "-http-addr")
		if !insecure {
			if err != nil {
				return nil, err
			}
			return none, nil
		}
		opts.Insecure = true // development on loopback; the API logs a warning
	}
	switch {
	case (s.httpTLSCert == "") != (s.httpTLSKey == ""):
		return nil, fmt.Errorf("-http-tls-cert and -http-tls-key go together")
	case s.httpTLSCert != "":
		// Reloaded on SIGHUP with the client listeners' certificate (certs).
		store := &certStore{certFile: s.httpTLSCert, keyFile: s.httpTLSKey, certFlag: "-http-tls-cert", keyFlag: "-http-tls-key", log: logger}
		if err := store.load(); err != nil {
			return nil, err
		}
		opts.TLSConfig = &tls.Config{GetCertificate: store.get, MinVersion: tls.VersionTLS12}
		certs.Store(store)
	}
	api, err := httpapi.New(opts)
	if err != nil {
		return nil, err
	}
	if err := api.Start(srv, ctl); err != nil {
		return nil, err
	}
	srv.RegisterMetricsWriter(api.WriteMetrics)
	return api.Close, nil
}

// readSecret reads a shared secret from the file named by the flag fileFlag (path) or
// else the environment variable env, trimming surrounding whitespace in both; "" when
// neither is set. Whitespace alone is an error, not a secret.
func readSecret(getenv func(string) string, env, fileFlag, path string) (string, error) {
	secret := strings.TrimSpace(getenv(env))
	if secret == "" && getenv(env) != "" {
		return "", fmt.Errorf("%s holds only whitespace", env)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %w", fileFlag, err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return "", fmt.Errorf("%s %s is empty", fileFlag, path)
		}
	}
	return secret, nil
}

// withoutSecret decides what a trusted listener (the control port, the HTTP API) does
// when no secret is configured: on a non-loopback address it is an error; on loopback
// it stays off with a warning unless -dev, where it runs insecure (any or no secret).
// name names the listener, noun its secret ("key"), set how to configure one and flag
// the address flag that disables it. insecure is false for an error or for off.
func withoutSecret(addr string, dev bool, logger *slog.Logger, name, noun, set, flag string) (insecure bool, err error) {
	switch {
	case !netutil.IsLoopback(addr):
		return false, fmt.Errorf("refusing to open the %s on the non-loopback address %s without a %s (set %s, or %s - to disable it)", name, addr, noun, set, flag)
	case !dev:
		logger.Warn(fmt.Sprintf("%s disabled: no %s configured (set %s; %s - silences this warning)", name, noun, set, flag))
		return false, nil
	}
	return true, nil
}
