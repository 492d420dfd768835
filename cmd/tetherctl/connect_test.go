package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// session is a tetherctl connect running against the test gateway: its stdin is a
// pipe, its output a buffer that may be polled.
type session struct {
	t     *testing.T
	stdin *io.PipeWriter
	out   *testkit.LockedBuffer
	errs  *testkit.LockedBuffer
	code  chan int
}

func (e *env) connect(ctx context.Context, args ...string) *session {
	e.t.Helper()
	r, w := io.Pipe()
	s := &session{t: e.t, stdin: w, out: &testkit.LockedBuffer{}, errs: &testkit.LockedBuffer{}, code: make(chan int, 1)}
	all := append([]string{"connect", "-addr", e.srv.Addr().String()}, args...)
	go func() { s.code <- run(ctx, all, r, s.out, s.errs, func(string) string { return "" }) }()
	e.t.Cleanup(func() { w.Close() }) // ends the stdin reader in any case
	return s
}

// waitOutput polls until the output contains want.
func (s *session) waitOutput(want string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.out.String(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("output lacks %q:\n%s\nstderr: %s", want, s.out.String(), s.errs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *session) exit() int {
	s.t.Helper()
	return testkit.Recv(s.t, s.code, 15*time.Second)
}

// Typed lines reach a service's route and its replies print; pushes to the user and
// to a joined room print; a kick prints the close code's name and exits 1.
func TestConnect(t *testing.T) {
	e := start(t)
	ctx := testkit.Context(t, 30*time.Second)
	svc, err := service.Dial(ctx, e.addr, service.Options{Secret: secret,
		OnUplink: func(u *service.Uplink) { _ = u.Reply(append([]byte("echo: "), u.Payload...)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Subscribe(ctx, service.Subscription{Routes: []string{"echo"}}); err != nil {
		t.Fatal(err)
	}
	s := e.connect(ctx, "-token", "alice", "-device", "d1", "-room", "lobby,news", "-route", "echo")
	s.waitOutput("connected: conn=")
	s.waitOutput("user=alice")
	s.waitOutput("joined news")

	io.WriteString(s.stdin, "hello there\n")
	s.waitOutput("reply echo: echo: hello there")

	if n, err := e.srv.PushUser("alice", []byte("to you")); err != nil || n != 1 {
		t.Fatalf("PushUser: %d %v", n, err)
	}
	s.waitOutput("push user id=0: to you")
	if _, err := e.srv.PushRoom("lobby", []byte("to the lobby")); err != nil {
		t.Fatal(err)
	}
	s.waitOutput("push room lobby id=0: to the lobby")
	if _, err := e.srv.PushUser("alice", []byte{0xff, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	s.waitOutput("push user id=0: base64:/wAB")

	// A reconnect code: the client says so and comes back by itself.
	if n := e.srv.KickUser("alice", protocol.CloseServerBusy, "try later"); n != 1 {
		t.Fatalf("kicked %d", n)
	}
	s.waitOutput("disconnected: close code 3003 SERVER_BUSY (try later); reconnecting with backoff")
	testkit.WaitFor(t, "second connect", func() bool { return strings.Count(s.out.String(), "connected: conn=") == 2 })
	io.WriteString(s.stdin, "again\n")
	s.waitOutput("reply echo: echo: again")

	// A terminal code ends it.
	testkit.WaitFor(t, "alice back", func() bool { return len(e.srv.UserConns("alice")) == 1 })
	if n := e.srv.KickUser("alice", protocol.CloseKicked, "bye"); n != 1 {
		t.Fatalf("kicked %d", n)
	}
	if code := s.exit(); code != exitFail {
		t.Fatalf("exit %d after a kick, want %d\n%s", code, exitFail, s.out.String())
	}
	if out := s.out.String(); !strings.Contains(out, "closed: close code 3502 KICKED (bye)") {
		t.Fatalf("output lacks the kick:\n%s", out)
	}
}

// The end of stdin and Ctrl-C exit 0; errors are printed with their names; usage and
// connection errors have their exit codes.
func TestConnectExits(t *testing.T) {
	e := start(t)
	ctx := testkit.Context(t, 30*time.Second)
	s := e.connect(ctx, "-token", "bob", "-route", "nowhere")
	s.waitOutput("connected: conn=")
	io.WriteString(s.stdin, "anyone?\n")
	s.waitOutput("send nowhere: error 4001 NO_ROUTE")
	s.stdin.Close()
	if code := s.exit(); code != exitOK {
		t.Fatalf("exit %d at EOF", code)
	}

	cctx, cancel := context.WithCancel(ctx)
	s = e.connect(cctx, "-token", "carol")
	s.waitOutput("connected: conn=")
	io.WriteString(s.stdin, "no route given\n")
	s.waitOutput("not sent: give -route")
	cancel() // as Ctrl-C does
	if code := s.exit(); code != exitOK {
		t.Fatalf("exit %d at Ctrl-C", code)
	}

	if code := e.connect(ctx).exit(); code != exitUsage {
		t.Fatalf("no -token: exit %d", code)
	}
	s = e.connect(ctx, "-token", "dave", "-addr", "127.0.0.1:1")
	if code := s.exit(); code != exitConn {
		t.Fatalf("no gateway: exit %d", code)
	}
}
