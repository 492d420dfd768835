package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

// TestMain fails the package if any test leaves a goroutine behind once every gateway,
// port and client it started is closed (testkit.VerifyNoLeaks).
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }

const secret = "ctl-test-secret"

// env is a gateway with a control port, and a way to run tetherctl against it.
type env struct {
	t    *testing.T
	srv  *server.Server
	addr string
}

func start(t *testing.T) *env {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := control.New(control.Options{Addr: "127.0.0.1:0", Secret: secret, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: server.InsecureAuthenticator{},
		Handler: p, Logger: quiet, Tick: 5 * time.Millisecond, MaxConnsPerIP: -1, ConnectRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); srv.Close() })
	return &env{t: t, srv: srv, addr: p.Addr().String()}
}

// ctl runs tetherctl with args (after -addr) and returns exit code, stdout, stderr.
func (e *env) ctl(ctx context.Context, stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "TETHER_CONTROL_SECRET" {
			return secret
		}
		return ""
	}
	code := run(ctx, append([]string{"-addr", e.addr}, args...), strings.NewReader(stdin), &out, &errOut, getenv)
	return code, out.String(), errOut.String()
}

func (e *env) client(token string) *client.Client {
	e.t.Helper()
	c, err := client.Dial(context.Background(), e.srv.Addr().String(), client.Options{Token: token, DeviceID: "d-" + token, NoReconnect: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for len(e.srv.UserConns(token)) == 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("client not registered")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return c
}

func TestCommands(t *testing.T) {
	e := start(t)
	alice := e.client("alice")
	ctx := context.Background()
	f := func(wantCode int, wantOut, wantErr, stdin string, args ...string) {
		t.Helper()
		code, out, errOut := e.ctl(ctx, stdin, args...)
		if code != wantCode || !strings.Contains(out, wantOut) || !strings.Contains(errOut, wantErr) {
			t.Fatalf("tetherctl %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
				args, code, out, errOut, wantCode, wantOut, wantErr)
		}
	}
	f(0, "delivered to 1 connection, 1 offline", "", "", "push", "-user", "alice,ghost", "hello")
	f(0, "delivered to 1 connection, 0 offline", "", "from stdin", "push", "-user", "alice", "-")
	f(1, "", "NOT_FOUND (4008)", "", "push", "-user", "ghost", "hello")
	f(1, "", "NOT_FOUND", "", "push", "-room", "nowhere", "x")
	f(0, "delivered to 1 connection", "", "", "push", "-all", "to all")
	f(0, "1 connection joined lobby", "", "", "rooms", "join", "-room", "lobby", "-user", "alice")
	f(0, "room lobby: 1 member", "", "", "presence", "-user", "alice,ghost", "-room", "lobby")
	f(0, "ghost: offline", "", "", "presence", "-user", "ghost")
	f(0, "delivered to 1 connection", "", "", "push", "-room", "lobby", "in the lobby")
	f(0, "users             1", "", "", "stats") // services may still count the previous invocation
	f(0, "pong in", "", "", "ping")
	f(0, `"delivered":1`, "", "", "-json", "push", "-user", "alice", "json")
	f(2, "", "give exactly one of", "", "push", "-user", "a", "-room", "r", "x")
	f(2, "", "give the message", "", "push", "-user", "a")
	f(2, "", "unknown command", "", "frobnicate")
	f(2, "", "usage: tetherctl rooms", "", "rooms", "dance")
	f(2, "", "bad connection id", "", "kick", "-conn", "x1")

	want := []string{"hello", "from stdin", "to all", "in the lobby", "json"}
	for _, w := range want {
		select {
		case p := <-alice.Pushes():
			if string(p.Payload) != w {
				t.Fatalf("alice got %q, want %q", p.Payload, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("alice did not get %q", w)
		}
	}
	f(0, "kicked 1 connection, 0 not found", "", "", "kick", "-user", "alice", "-reason", "bye")
	f(1, "", "NOT_FOUND", "", "kick", "-user", "alice")
}

func TestConnectionErrors(t *testing.T) {
	e := start(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-addr", e.addr, "stats"}, nil, &out, &errOut, func(string) string { return "wrong" })
	if code != exitConn || !strings.Contains(errOut.String(), "INVALID_TOKEN") {
		t.Fatalf("wrong secret: exit %d, stderr %q", code, errOut.String())
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte(secret+"\n"), 0o600)
	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"-addr", e.addr, "-secret-file", file, "stats"}, nil, &out, &errOut, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("-secret-file: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	code = run(context.Background(), []string{"-addr", "127.0.0.1:1", "-timeout", "1s", "stats"}, nil, &out, &errOut, func(string) string { return "" })
	if code != exitConn || !strings.Contains(errOut.String(), "cannot connect") {
		t.Fatalf("no gateway: exit %d, stderr %q", code, errOut.String())
	}
}

// tail prints uplinks (answering them) and connection events, as text or JSON.
func TestTail(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := e.ctl(ctx, "", "-json", "tail", "-routes", "echo", "-events", "-count", "3")
		done <- result{code, out, errOut}
	}()
	// Wait until the tail has subscribed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, out, _ := e.ctl(ctx, "", "-json", "stats")
		if strings.Contains(out, `"routes":1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tail never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := e.client("bob")
	if reply, err := c.Send(ctx, "echo", []byte("hi there")); err != nil || len(reply) != 0 {
		t.Fatalf("Send through tail = %q, %v; want an empty reply", reply, err)
	}
	c.Close()
	r := <-done
	if r.code != 0 {
		t.Fatalf("tail exit %d: %s", r.code, r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 3 {
		t.Fatalf("tail printed %d lines, want 3:\n%s", len(lines), r.out)
	}
	var kinds []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("tail line %q: %v", l, err)
		}
		kinds = append(kinds, m["kind"].(string)+":"+fmtAny(m["type"])+fmtAny(m["payload"]))
	}
	if got := strings.Join(kinds, " "); got != "event:online uplink:hi there event:offline" {
		t.Fatalf("tail lines %s", got)
	}
}

func fmtAny(v any) string {
	if v == nil {
		return ""
	}
	return v.(string)
}
