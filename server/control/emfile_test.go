package control

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// emfileChildEnv makes the test binary act as a gateway with a tiny file limit.
const emfileChildEnv = "TETHER_CONTROL_EMFILE_CHILD"

// TestControlEMFILEChild is the child half of TestControlEMFILE; it does nothing in a
// normal run.
func TestControlEMFILEChild(t *testing.T) {
	if !testkit.InChild(emfileChildEnv) {
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p, err := New(Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: logger, AuthTimeout: time.Minute})
	if err != nil {
		testkit.ExitChild("control.New", err)
	}
	srv, err := server.New(server.Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth, Handler: p, Logger: logger})
	if err != nil {
		testkit.ExitChild("server.New", err)
	}
	if err := srv.Start(); err != nil {
		testkit.ExitChild("server.Start", err)
	}
	if err := p.Start(srv); err != nil {
		testkit.ExitChild("control Start", err)
	}
	// Allow only a few descriptors more than are open now.
	if err := testkit.LowerFileLimit(6); err != nil {
		testkit.ExitChild("setrlimit", err)
	}
	testkit.ServeAsChild(p.Addr().String())
	p.Close()
	srv.Close()
	os.Exit(0)
}

// TestControlEMFILE: a control port that runs out of file descriptors logs it, counts
// it, and answers services again once descriptors are freed (its accept loop used to
// end at the first EMFILE).
func TestControlEMFILE(t *testing.T) {
	if testkit.InChild(emfileChildEnv) {
		return
	}
	addr, stderr := testkit.StartChild(t, "TestControlEMFILEChild", emfileChildEnv)

	// Idle connections, more than the child has descriptors: the kernel completes the
	// handshakes, the child accepts until it runs out.
	conns := make([]net.Conn, 0, 20)
	for range 20 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitFor(t, "the child out of descriptors", func() bool {
		return strings.Contains(stderr.String(), "control port cannot accept")
	})
	// The last of them waited while the child was out of descriptors: it is refused
	// SERVER_FULL on the process's spare descriptor instead of waiting unanswered.
	if code, ok := closedWith(conns[len(conns)-1], 10*time.Second); !ok || code != protocol.CloseServerFull {
		t.Fatalf("a service connecting while the child was out of descriptors got code %v (a CLOSE: %v), want SERVER_FULL\nchild log:\n%s", code, ok, stderr.String())
	}
	// Free them: the child's sessions end, and the port must accept a service again.
	for _, c := range conns {
		c.Close()
	}
	// Until the child has seen the closes, a service may still be refused SERVER_FULL (a
	// reconnect code): retry those, as a service does, within the deadline.
	deadline := time.Now().Add(20 * time.Second)
	var svc *service.Service
	for {
		var err error
		svc, err = service.Dial(ctxTimeout(t, 20*time.Second), addr, service.Options{Secret: testSecret, DialTimeout: 20 * time.Second})
		if err == nil {
			break
		}
		var ce *service.CloseError
		if !errors.As(err, &ce) || ce.Code != protocol.CloseServerFull || time.Now().After(deadline) {
			t.Fatalf("control port did not answer AUTH after descriptors were freed: %v\nchild log:\n%s", err, stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // a refused service's retry, not a wait for a condition
	}
	if _, err := svc.Stats(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	if !strings.Contains(stderr.String(), "too many open files") {
		t.Fatalf("child log does not name the error:\n%s", stderr.String())
	}
}
