package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// options maps args and the environment env (nil: empty) onto server.Options the way
// tetherd does; args that do not parse fail the test.
func options(t *testing.T, args []string, env map[string]string) (server.Options, error) {
	t.Helper()
	var st settings
	fs := newFlagSet(&st, &bytes.Buffer{})
	getenv := func(k string) string { return env[k] }
	if err := applyLayers(fs, args, &st.config, getenv); err != nil {
		t.Fatal(err)
	}
	return serverOptions(&st, nil, getenv)
}

// TestSettingsPrecedence: defaults < config file < TETHER_* environment < flags.
func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tether.json")
	os.WriteFile(cfg, []byte(`{"heartbeat": "40s", "max-conns": 500, "addr": ":7100", "dev": true, "device-policy": "user"}`), 0o600)
	env := map[string]string{"TETHER_MAX_CONNS": "600", "TETHER_ADDR": ":7200"}
	var st settings
	fs := newFlagSet(&st, &bytes.Buffer{})
	err := applyLayers(fs, []string{"-config", cfg, "-addr", ":7300"}, &st.config, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("heartbeat (file)", st.heartbeat, 40*time.Second)
	check("max-conns (env over file)", st.maxConns, 600)
	check("addr (flag over env and file)", st.addr, ":7300")
	check("dev (file)", st.dev, true)
	check("device-policy (file)", st.devicePolicy, "user")
	check("auth-timeout (library default)", st.authTimeout, time.Duration(0))
}

// TestFlagsDefaultToLibrary: every flag that maps to a server.Options field defaults to
// zero ("the library's default", so tetherd does not restate it) and its help quotes the
// exported constant with its value; with no flags the options stay zero.
func TestFlagsDefaultToLibrary(t *testing.T) {
	fs := newFlagSet(new(settings), &bytes.Buffer{})
	library := map[string]string{
		"addr": "server.DefaultAddr (\":7000\")", "admin": "server.DefaultAdminAddr (\"127.0.0.1:7002\")",
		"heartbeat": "server.DefaultHeartbeat (25s)", "auth-timeout": "server.DefaultAuthTimeout (10s)",
		"tick": "server.DefaultTick (50ms)", "write-timeout": "server.DefaultWriteTimeout (10s)",
		"drain-spread": "server.DefaultDrainSpread (5s)", "resume-window": "server.DefaultResumeWindow (5m0s)",
		"resume-buffer": "server.DefaultResumeBuffer (256)", "max-frame": "protocol.DefaultMaxFrame (65536)",
		"qos1-window": "server.DefaultQoS1Window (32)", "ack-timeout": "server.DefaultAckTimeout (20s)",
		"pre-auth-budget": "server.DefaultPreAuthBudget (8192)", "max-conns": "server.DefaultMaxConns (1000000)",
		"max-conns-per-ip": "server.DefaultMaxConnsPerIP (1000)", "connect-rate": "server.DefaultConnectRate (10000)",
		"source-connect-rate": "server.DefaultSourceConnectRate (1000)", "flap-threshold": "server.DefaultFlapThreshold (100)",
		"flap-window": "server.DefaultFlapWindow (1m0s)", "flap-ban": "server.DefaultFlapBan (5m0s)",
		"source-table-size": "server.DefaultSourceTableSize (16384)", "max-rooms": "server.DefaultMaxRoomsPerConn (64)",
		"max-outbound": "server.DefaultMaxOutboundBytes (262144)", "max-total-outbound": "server.DefaultMaxTotalOutbound (268435456)",
		"workers": "server.DefaultWorkers (4096)", "max-inflight": "server.DefaultMaxInflight (32)",
		"read-buffer": "server.DefaultReadBufferSize (256)",
	}
	for name, want := range library {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("no flag -%s", name)
			continue
		}
		if z := f.DefValue; z != "" && z != "0" && z != "0s" {
			t.Errorf("-%s defaults to %q, want zero (the library default)", name, z)
		}
		if !strings.Contains(f.Usage, "Default "+want+".") {
			t.Errorf("-%s help %q does not quote %q", name, f.Usage, want)
		}
	}
	o, err := options(t, []string{"-auth", "insecure"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "" || o.AdminAddr != "" || o.Heartbeat != 0 || o.MaxConnsPerIP != 0 || o.ConnectRate != 0 ||
		o.SourceConnectRate != 0 || o.FlapThreshold != 0 || o.ResumeWindow != 0 || o.ResumeBuffer != 0 || o.MaxConns != 0 {
		t.Errorf("options without flags are not zero: %+v", o)
	}
}

// TestResumeAndAbuseFlags: the resume and per-source settings reach server.Options from
// flags, TETHER_* variables and the config file alike.
func TestResumeAndAbuseFlags(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tether.json")
	os.WriteFile(cfg, []byte(`{"resume-buffer": 64, "flap-ban": "90s", "flap-threshold": 7}`), 0o600)
	env := map[string]string{"TETHER_RESUME_WINDOW": "2m", "TETHER_SOURCE_CONNECT_RATE": "5.5"}
	args := []string{"-config", cfg, "-auth", "insecure", "-flap-window", "30s", "-source-table-size", "1024", "-admin-pprof-public"}
	o, err := options(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.ResumeBuffer != 64 || o.ResumeWindow != 2*time.Minute || o.FlapBan != 90*time.Second || o.FlapThreshold != 7 ||
		o.SourceConnectRate != 5.5 || o.FlapWindow != 30*time.Second || o.SourceTableSize != 1024 || !o.AdminPprofPublic {
		t.Errorf("options %+v", o)
	}
}

// TestDevMode: -dev listens on loopback unless -addr is given, and lifts the per-IP and
// per-source limits unless they are given.
func TestDevMode(t *testing.T) {
	opts := func(args ...string) server.Options {
		t.Helper()
		o, err := options(t, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := opts("-dev")
	if o.Addr != "127.0.0.1:7000" || o.MaxConnsPerIP != -1 || o.SourceConnectRate != -1 || o.FlapThreshold != -1 {
		t.Errorf("-dev: addr %q per-ip %d source rate %v flap %d", o.Addr, o.MaxConnsPerIP, o.SourceConnectRate, o.FlapThreshold)
	}
	if _, ok := o.Authenticator.(server.InsecureAuthenticator); !ok {
		t.Errorf("-dev authenticator %T", o.Authenticator)
	}
	o = opts("-dev", "-addr", ":7100", "-max-conns-per-ip", "1000", "-flap-threshold", "5")
	if o.Addr != ":7100" || o.MaxConnsPerIP != 1000 || o.FlapThreshold != 5 {
		t.Errorf("-dev with explicit settings: addr %q per-ip %d flap %d", o.Addr, o.MaxConnsPerIP, o.FlapThreshold)
	}
	var b bytes.Buffer
	devBanner(&b, "127.0.0.1:7000", "127.0.0.1:7002")
	if !strings.Contains(b.String(), "loopback only") || strings.Contains(b.String(), "WARNING") {
		t.Errorf("loopback banner:\n%s", b.String())
	}
	b.Reset()
	devBanner(&b, "[::]:7100", "127.0.0.1:7002")
	if !strings.Contains(b.String(), "WARNING: not loopback") {
		t.Errorf("non-loopback banner:\n%s", b.String())
	}
}

// TestAdminTokenSettings: the admin token comes from -admin-token-file or
// TETHER_ADMIN_TOKEN, trimmed, and must be at least 16 bytes.
func TestAdminTokenSettings(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		p := filepath.Join(dir, fmt.Sprintf("tok%d", len(body)))
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     string
		want    string // token, or the error's text when err
		wantErr bool
	}{
		{"none", nil, "", "", false},
		{"file, trimmed", []string{"-admin-token-file", file("  0123456789abcdef-file\n")}, "", "0123456789abcdef-file", false},
		{"env, trimmed", nil, " 0123456789abcdef-env ", "0123456789abcdef-env", false},
		{"file wins over env", []string{"-admin-token-file", file("0123456789abcdef-f2")}, "0123456789abcdef-env", "0123456789abcdef-f2", false},
		{"short file", []string{"-admin-token-file", file("short\n")}, "", "-admin-token-file", true},
		{"blank env", nil, "   ", "TETHER_ADMIN_TOKEN", true},
		{"missing file", []string{"-admin-token-file", filepath.Join(dir, "none")}, "", "cannot read -admin-token-file", true},
	} {
		o, err := options(t, append([]string{"-auth", "insecure"}, tc.args...), map[string]string{"TETHER_ADMIN_TOKEN": tc.env})
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		case !tc.wantErr && (err != nil || o.AdminToken != tc.want):
			t.Errorf("%s: token %q, %v; want %q", tc.name, o.AdminToken, err, tc.want)
		}
	}
}

// TestSettingsErrors: bad settings fail with messages naming the culprit.
func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown key", []string{"-config", write("a.json", `{"hartbeat": "1s"}`)}, nil, `unknown setting "hartbeat"`},
		{"not json", []string{"-config", write("b.json", `heartbeat=1s`)}, nil, "cannot parse config file"},
		{"bad value in file", []string{"-config", write("c.json", `{"heartbeat": "soon"}`)}, nil, `setting "heartbeat"`},
		{"bad env", nil, map[string]string{"TETHER_MAX_CONNS": "lots"}, "TETHER_MAX_CONNS"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.json")}, nil, "cannot read config file"},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments"},
	} {
		var st settings
		fs := newFlagSet(&st, &bytes.Buffer{})
		err := applyLayers(fs, tc.args, &st.config, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"-auth", "jwt"}, &bytes.Buffer{}, &stderr, func(string) string { return "" }); code != 2 {
		t.Errorf("jwt without a secret: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "needs a secret") {
		t.Errorf("jwt without a secret: %q", stderr.String())
	}
}

// TestMintToken prints a token that the JWT authenticator accepts.
func TestMintToken(t *testing.T) {
	env := map[string]string{"TETHER_JWT_SECRET": strings.Repeat("k", 32)}
	var out bytes.Buffer
	if code := run([]string{"-mint-token", "alice"}, &out, &bytes.Buffer{}, func(k string) string { return env[k] }); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if parts := strings.Split(strings.TrimSpace(out.String()), "."); len(parts) != 3 {
		t.Fatalf("not a JWT: %q", out.String())
	}
}

// TestRunDevAndDrain starts tetherd in dev mode, authenticates a client, and drains on
// SIGTERM: the client gets GOAWAY and run returns 0.
func TestRunDevAndDrain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := aln.Addr().String()
	aln.Close()
	const adminTok = "dev-admin-token-0123456789"
	var out testkit.LockedBuffer
	done := make(chan int, 1)
	go func() {
		env := func(k string) string {
			if k == "TETHER_ADMIN_TOKEN" {
				return adminTok
			}
			return ""
		}
		done <- run([]string{"-dev", "-addr", addr, "-ws-addr", "-", "-admin", admin, "-control", "127.0.0.1:0", "-http-addr", "-", "-drain-timeout", "5s", "-drain-spread", "100ms"}, &out, &out, env)
	}()
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err = net.Dial("tcp", addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tetherd did not listen: %v\n%s", err, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer c.Close()
	fc := testkit.NewFrameConn(t, c)
	readFrame := func() protocol.Frame {
		t.Helper()
		f, err := fc.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return f
	}
	hello, _ := (&protocol.Hello{Token: "alice"}).AppendFrame(nil, 1, 0)
	c.Write(hello)
	if f := readFrame(); f.Op != protocol.OpAuthOK {
		t.Fatalf("got %v, want AUTH_OK", f.Op)
	}
	if !strings.Contains(out.String(), "DEVELOPMENT mode") {
		t.Errorf("no dev banner in output:\n%s", out.String())
	}
	// /metrics needs the admin token (TETHER_ADMIN_TOKEN), carries the gateway's and
	// the control port's series and passes promtool.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without the admin token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"tether_connections_authenticated 1", "tether_control_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	testkit.Promtool(t, string(body))
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if f := readFrame(); f.Op != protocol.OpGoAway {
		t.Fatalf("got %v, want GOAWAY", f.Op)
	}
	c.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tetherd did not exit after drain")
	}
}
