package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The control port starts only with a secret, except on loopback in -dev mode, and
// never without one on a non-loopback address.
func TestControlPortSettings(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(" from-file \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(name string, st settings, env map[string]string, wantPort bool, wantErr, wantLog string) {
		t.Helper()
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		p, err := controlPort(&st, logger, func(k string) string { return env[k] })
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%s: err = %v, want %q", name, err, wantErr)
		case wantErr == "" && err != nil:
			t.Fatalf("%s: %v", name, err)
		case (p != nil) != wantPort:
			t.Fatalf("%s: port = %v, want port %v", name, p, wantPort)
		case !strings.Contains(logs.String(), wantLog):
			t.Fatalf("%s: logs %q, want %q", name, logs.String(), wantLog)
		}
		if p != nil {
			p.Close()
		}
	}
	secret := map[string]string{"TETHER_CONTROL_SECRET": "from-env"}
	f("disabled", settings{control: "-"}, secret, false, "", "")
	f("env secret", settings{control: "127.0.0.1:7001"}, secret, true, "", "")
	f("secret file", settings{control: "0.0.0.0:7001", controlSecretFile: secretFile}, nil, true, "", "")
	f("missing file", settings{control: "127.0.0.1:7001", controlSecretFile: secretFile + ".nope"}, nil, false, "cannot read -control-secret-file", "")
	f("no secret, public address", settings{control: "0.0.0.0:7001"}, nil, false, "refusing to open the control port", "")
	f("no secret, public address, dev", settings{control: ":7001", dev: true}, nil, false, "refusing to open the control port", "")
	f("no secret, loopback, production", settings{control: "127.0.0.1:7001"}, nil, false, "", "control port disabled")
	f("no secret, loopback, dev", settings{control: "127.0.0.1:7001", dev: true}, nil, true, "", "")
}

// tetherd refuses to start with a public control address and no secret.
func TestRunRefusesPublicControlWithoutSecret(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-dev", "-addr", "127.0.0.1:0", "-admin", "-", "-control", "0.0.0.0:0"}, io.Discard, &stderr, func(string) string { return "" })
	if code != 2 || !strings.Contains(stderr.String(), "without a secret") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
