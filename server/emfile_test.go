package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// emfileChildEnv makes the test binary act as a gateway process with a tiny file limit.
const emfileChildEnv = "TETHER_EMFILE_CHILD"

// TestEMFILEChild is the child half of TestEMFILE; it does nothing in a normal run.
func TestEMFILEChild(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "" {
		return
	}
	// Count what is open now and allow only a few more descriptors.
	entries, _ := os.ReadDir("/proc/self/fd")
	lim := syscall.Rlimit{Cur: uint64(len(entries) + 12), Max: uint64(len(entries) + 12)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	s, err := New(Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth,
		MaxConnsPerIP: -1, ConnectRate: -1, Heartbeat: 30 * time.Second})
	if err != nil {
		fmt.Println("new:", err)
		os.Exit(1)
	}
	if err := s.Start(); err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", s.Addr().String())
	io.Copy(io.Discard, os.Stdin) // serve until the parent closes stdin
	s.Close()
	os.Exit(0)
}

// TestEMFILE: a gateway that runs out of file descriptors keeps serving the connections
// it has, answers new clients CLOSE SERVER_FULL instead of leaving them hanging, logs
// the condition, and serves new clients normally once descriptors are freed.
func TestEMFILE(t *testing.T) {
	if os.Getenv(emfileChildEnv) != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEMFILEChild$")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr testkit.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
		t.Logf("child: %s", sc.Text())
	}
	if addr == "" {
		t.Fatalf("child did not start: %s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)

	// login dials, sends HELLO and returns the connection with the first frame's opcode
	// and code (AUTH_OK, or CLOSE with its code).
	login := func(i int) (net.Conn, protocol.Opcode, protocol.CloseCode) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		hello, _ := (&protocol.Hello{Token: fmt.Sprintf("u%d", i)}).AppendFrame(nil, 1, 0)
		c.Write(hello)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var dec protocol.Decoder
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			var op protocol.Opcode
			var code protocol.CloseCode
			dec.Decode(buf[:n], func(f protocol.Frame) error {
				if op == 0 {
					op = f.Op
					if f.Op == protocol.OpClose {
						var cl protocol.Close
						if err := cl.Decode(f.Body); err != nil {
							t.Fatalf("bad CLOSE: %v", err)
						}
						code = cl.Code
					}
				}
				return nil
			})
			if op != 0 {
				return c, op, code
			}
			if err != nil {
				t.Fatalf("login %d: no answer to HELLO: %v", i, err)
			}
		}
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
