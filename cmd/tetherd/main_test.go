package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/protocol"
)

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
	check("auth-timeout (default)", st.authTimeout, 10*time.Second)
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
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-dev", "-addr", addr, "-admin", admin, "-control", "127.0.0.1:0", "-drain-timeout", "5s", "-drain-spread", "100ms"}, &out, &out, func(string) string { return "" })
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
	hello, _ := (&protocol.Hello{Token: "alice"}).AppendFrame(nil, 1, 0)
	c.Write(hello)
	if f := readFrame(t, c); f.Op != protocol.OpAuthOK {
		t.Fatalf("got %v, want AUTH_OK", f.Op)
	}
	if !strings.Contains(out.String(), "DEVELOPMENT mode") {
		t.Errorf("no dev banner in output:\n%s", out.String())
	}
	// /metrics carries the gateway's and the control port's series and passes promtool.
	resp, err := http.Get("http://" + admin + "/metrics")
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
	promtool(t, string(body))
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if f := readFrame(t, c); f.Op != protocol.OpGoAway {
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

func readFrame(t *testing.T, c net.Conn) protocol.Frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var d protocol.Decoder
	buf := make([]byte, 4096)
	var got *protocol.Frame
	for got == nil {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		d.Decode(buf[:n], func(f protocol.Frame) error {
			if got == nil {
				cl := f.Clone()
				got = &cl
			}
			return nil
		})
	}
	return *got
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// promtool runs `promtool check metrics` on the exposition; CI installs it (a missing
// promtool fails under CI and skips loudly elsewhere).
func promtool(t *testing.T, exposition string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed: .ci/run must install the prometheus package")
		}
		t.Log("SKIPPING promtool check: promtool not installed (apt-get install prometheus)")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics failed: %v\n%s", err, out)
	}
}
