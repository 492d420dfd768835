package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// startHTTPAPI's refusals, before it needs a server: the key rules are the control
// port's (none off loopback is an error, none without -dev keeps the API off).
func TestHTTPAPISettings(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("  short \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(name string, s httpAPISettings, dev bool, env map[string]string, wantErr string) {
		t.Helper()
		st := &settings{dev: dev, httpAPISettings: s}
		closeFn, err := startHTTPAPI(st, logger, func(k string) string { return env[k] }, nil, nil, new(atomic.Pointer[certStore]))
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case wantErr == "" && closeFn == nil:
			t.Errorf("%s: no closer", name)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: err %v, want %q", name, err, wantErr)
		}
	}
	f("disabled", httpAPISettings{httpAddr: "-"}, false, nil, "")
	f("no key, not dev: off", httpAPISettings{httpAddr: "127.0.0.1:0"}, false, nil, "")
	f("no key off loopback", httpAPISettings{httpAddr: ":7003"}, true, nil, "non-loopback")
	f("short key off loopback", httpAPISettings{httpAddr: ":7003", httpKeyFile: keyFile}, false, nil, "shorter than 16 bytes")
	f("whitespace key", httpAPISettings{httpAddr: "127.0.0.1:0"}, false, map[string]string{"TETHER_HTTP_API_KEY": " "}, "only whitespace")
	f("missing key file", httpAPISettings{httpAddr: "127.0.0.1:0", httpKeyFile: keyFile + ".nope"}, false, nil, "cannot read -http-api-key-file")
	f("cert without key", httpAPISettings{httpAddr: "127.0.0.1:0", httpKeyFile: keyFile, httpTLSCert: keyFile}, false, nil, "go together")
	f("bad cert", httpAPISettings{httpAddr: "127.0.0.1:0", httpKeyFile: keyFile, httpTLSCert: keyFile, httpTLSKey: keyFile}, false, nil, "cannot load -http-tls-cert")
}
