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
	if err := os.WriteFile(secretFile, []byte(" from-file-0123456789 \n"), 0o600); err != nil {
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
	st := func(addr string) settings { return settings{controlSettings: controlSettings{control: addr}} }
	f("disabled", settings{controlSettings: controlSettings{control: "-"}}, secret, false, "", "")
	f("env secret", settings{controlSettings: controlSettings{control: "127.0.0.1:7001"}}, secret, true, "", "")
	f("secret file", settings{controlSettings: controlSettings{control: "0.0.0.0:7001", controlSecretFile: secretFile}}, nil, true, "", "")
	f("missing file", settings{controlSettings: controlSettings{control: "127.0.0.1:7001", controlSecretFile: secretFile + ".nope"}}, nil, false, "cannot read -control-secret-file", "")
	f("no secret, public address", settings{controlSettings: controlSettings{control: "0.0.0.0:7001"}}, nil, false, "refusing to open the control port", "")
	f("no secret, public address, dev", settings{controlSettings: controlSettings{control: ":7001"}, dev: true}, nil, false, "refusing to open the control port", "")
	f("no secret, loopback, production", settings{controlSettings: controlSettings{control: "127.0.0.1:7001"}}, nil, false, "", "control port disabled")
	f("no secret, loopback, dev", settings{controlSettings: controlSettings{control: "127.0.0.1:7001"}, dev: true}, nil, true, "", "")
	// Secrets are trimmed wherever they come from; whitespace alone is refused.
	f("env secret trimmed", st("127.0.0.1:7001"), map[string]string{"TETHER_CONTROL_SECRET": " from-env\n"}, true, "", "")
	f("env secret only whitespace", st("127.0.0.1:7001"), map[string]string{"TETHER_CONTROL_SECRET": " \t\n"}, false, "only whitespace", "")
	// Off loopback a secret needs control.MinSecretLen bytes, counted after trimming.
	f("short secret, public address", st("0.0.0.0:7001"), map[string]string{"TETHER_CONTROL_SECRET": "short-secret    "}, false, "shorter than 16 bytes", "")
	f("long secret, public address", st("0.0.0.0:7001"), map[string]string{"TETHER_CONTROL_SECRET": "0123456789abcdef"}, true, "", "")
	f("short secret, loopback", st("localhost:7001"), map[string]string{"TETHER_CONTROL_SECRET": "short"}, true, "", "")
	f("negative max services", settings{controlSettings: controlSettings{control: "127.0.0.1:7001", controlMaxServices: -1}}, secret, false, "negative", "")
}

// tetherd refuses to start with a public control address and no secret.
func TestRunRefusesPublicControlWithoutSecret(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-dev", "-addr", "127.0.0.1:0", "-admin", "-", "-control", "0.0.0.0:0", "-http-addr", "-"}, io.Discard, &stderr, func(string) string { return "" })
	if code != 2 || !strings.Contains(stderr.String(), "without a secret") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// -control-max-services reaches the settings, from the flag or the environment, and
// defaults to 0 (the library default).
func TestControlMaxServicesFlag(t *testing.T) {
	var st settings
	fs := newFlagSet(&st, io.Discard)
	if err := fs.Parse(nil); err != nil || st.controlMaxServices != 0 {
		t.Fatalf("default: %d, %v", st.controlMaxServices, err)
	}
	if err := fs.Parse([]string{"-control-max-services", "3"}); err != nil || st.controlMaxServices != 3 {
		t.Fatalf("flag: %d, %v", st.controlMaxServices, err)
	}
	if envName("control-max-services") != "TETHER_CONTROL_MAX_SERVICES" {
		t.Fatal(envName("control-max-services"))
	}
}
