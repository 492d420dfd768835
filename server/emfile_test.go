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

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/internal/testkit"
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
// it has, logs the condition, and accepts the waiting connections once descriptors are
// freed.
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

	// Dial more connections than the child has descriptors; the kernel completes the
	// handshakes, the child accepts what it can.
	type conn struct {
		c    net.Conn
		dec  protocol.Decoder
		done bool
	}
	const total = 30
	conns := make([]*conn, 0, total)
	for i := 0; i < total; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		hello, _ := (&protocol.Hello{Token: fmt.Sprintf("u%d", i)}).AppendFrame(nil, 1, 0)
		c.Write(hello)
		conns = append(conns, &conn{c: c})
	}
	// authed polls every connection briefly and counts those that got AUTH_OK.
	buf := make([]byte, 256)
	authed := func() int {
		n := 0
		for _, c := range conns {
			if c.done {
				n++
				continue
			}
			c.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
			if k, err := c.c.Read(buf); k > 0 {
				c.dec.Decode(buf[:k], func(f protocol.Frame) error {
					if f.Op == protocol.OpAuthOK {
						c.done = true
					}
					return nil
				})
			} else if err != nil && !isTimeout(err) {
				t.Fatalf("connection failed: %v", err)
			}
			if c.done {
				n++
			}
		}
		return n
	}
	var first int
	waitFor(t, "some connections served and the child out of descriptors", func() bool {
		first = authed()
		return first > 0 && strings.Contains(stderr.String(), "out of file descriptors")
	})
	if first == total {
		t.Fatalf("all %d connections were served: the descriptor limit did not bite", total)
	}
	// Free descriptors: close the served connections; the waiting ones are accepted.
	for _, c := range conns {
		if c.done {
			c.c.Close()
		}
	}
	rest := conns[:0]
	for _, c := range conns {
		if !c.done {
			rest = append(rest, c)
		}
	}
	conns = rest
	waitFor(t, "waiting connections served after descriptors were freed", func() bool {
		return authed() >= min(len(conns), first)
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
