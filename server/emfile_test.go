package server

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// emfileChildEnv makes the test binary act as a gateway process with a tiny file limit.
const emfileChildEnv = "TETHER_EMFILE_CHILD"

// TestEMFILEChild is the child half of TestEMFILE; it does nothing in a normal run.
func TestEMFILEChild(t *testing.T) {
	if !testkit.InChild(emfileChildEnv) {
		return
	}
	// Count what is open now and allow only a few more descriptors.
	if err := testkit.LowerFileLimit(12); err != nil {
		testkit.ExitChild("setrlimit", err)
	}
	s, err := New(Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth,
		MaxConnsPerIP: -1, ConnectRate: -1, Heartbeat: 30 * time.Second})
	if err != nil {
		testkit.ExitChild("new", err)
	}
	if err := s.Start(); err != nil {
		testkit.ExitChild("start", err)
	}
	testkit.ServeAsChild(s.Addr().String())
	s.Close()
	os.Exit(0)
}

// TestEMFILE: a gateway that runs out of file descriptors keeps serving the connections
// it has, answers new clients CLOSE SERVER_FULL instead of leaving them hanging, logs
// the condition, and serves new clients normally once descriptors are freed.
func TestEMFILE(t *testing.T) {
	if testkit.InChild(emfileChildEnv) {
		return
	}
	addr, stderr := testkit.StartChild(t, "TestEMFILEChild", emfileChildEnv)

	// login dials, sends HELLO and returns the connection with the first frame's opcode
	// and code (AUTH_OK, or CLOSE with its code).
	login := func(i int) (net.Conn, protocol.Opcode, protocol.CloseCode) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		op, code := firstAnswer(t, c, fmt.Sprintf("u%d", i))
		if op == 0 {
			t.Fatalf("login %d: no answer to HELLO", i)
		}
		return c, op, code
	}

	// Log in one client after another until the child runs out of descriptors: each
	// gets AUTH_OK, until one is refused SERVER_FULL (not left hanging).
	var served []net.Conn
	defer func() {
		for _, c := range served {
			c.Close()
		}
	}()
	refused := 0
	for i := 0; i < 60 && refused == 0; i++ {
		c, op, code := login(i)
		switch {
		case op == protocol.OpAuthOK:
			served = append(served, c)
		case op == protocol.OpClose && code == protocol.CloseServerFull:
			refused++
			c.Close()
		default:
			t.Fatalf("login %d: got %v code %v, want AUTH_OK or CLOSE SERVER_FULL", i, op, code)
		}
	}
	if refused == 0 || len(served) == 0 {
		t.Fatalf("%d served, %d refused: the descriptor limit did not bite as expected", len(served), refused)
	}
	// While exhausted, every new client is refused at once.
	for i := 0; i < 3; i++ {
		c, op, code := login(100 + i)
		c.Close()
		if op != protocol.OpClose || code != protocol.CloseServerFull {
			t.Fatalf("new client while out of descriptors: got %v %v, want CLOSE SERVER_FULL", op, code)
		}
	}
	waitFor(t, "the condition logged", func() bool { return strings.Contains(stderr.String(), "out of file descriptors") })

	// Free descriptors: close the served connections; new clients are served again, as
	// many as before.
	want := len(served)
	for _, c := range served {
		c.Close()
	}
	served = served[:0]
	next := 200
	waitFor(t, "new clients served after descriptors were freed", func() bool {
		c, op, _ := login(next)
		next++
		if op != protocol.OpAuthOK {
			c.Close()
			return false // close callbacks still freeing descriptors
		}
		served = append(served, c)
		return len(served) == want
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
