package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// testHeartbeat is the real server's heartbeat in tests: short enough to see
// several intervals pass quickly, long enough that -race scheduling delays do
// not trip the server's 1.5 × idle timeout.
const testHeartbeat = 300 * time.Millisecond

// waitTimeout bounds every poll; tests normally finish far sooner.
const waitTimeout = 5 * time.Second

// startServer starts a real gateway on loopback; set adjusts its options.
func startServer(t *testing.T, set func(*server.Options)) *server.Server {
	t.Helper()
	o := server.Options{
		Addr:          "127.0.0.1:0",
		AdminAddr:     "-",
		Authenticator: server.InsecureAuthenticator{},
		Heartbeat:     testHeartbeat,
		Tick:          10 * time.Millisecond,
		DrainSpread:   50 * time.Millisecond,
		Logger:        testkit.Logger(),
	}
	if set != nil {
		set(&o)
	}
	s, err := server.New(o)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// userName returns a user id unique to the test: with InsecureAuthenticator
// the token is the user id, and the server quietly replaces a connection
// presenting the same token, so tests must not share one.
func userName(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// dial dials addr and closes the client at cleanup.
func dial(t *testing.T, addr string, o Options) *Client {
	t.Helper()
	if o.Token == "" && o.TokenFunc == nil {
		o.Token = userName(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, addr, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds (testkit.WaitFor).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

// recv receives one push or fails the test.
func recv(t *testing.T, ch <-chan Push) Push {
	t.Helper()
	return testkit.Recv(t, ch, waitTimeout)
}

// closeCode matches a *CloseError with code.
func closeCode(code protocol.CloseCode) func(error) bool {
	return func(err error) bool {
		var ce *CloseError
		return errors.As(err, &ce) && ce.Code == code
	}
}

// fakeServer is a loopback listener whose connections the test drives frame
// by frame, for behaviour the real gateway does not produce on demand.
type fakeServer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *fakeConn
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu  sync.Mutex
	all []*fakeConn
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, conns: make(chan *fakeConn, 16), done: make(chan struct{})}
	fs.wg.Add(1)
	go fs.accept()
	t.Cleanup(fs.close)
	return fs
}

func (fs *fakeServer) addr() string { return fs.ln.Addr().String() }

func (fs *fakeServer) accept() {
	defer fs.wg.Done()
	for {
		nc, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{t: fs.t, nc: nc, fr: testkit.NewFrameConn(fs.t, nc)}
		fs.mu.Lock()
		fs.all = append(fs.all, fc)
		fs.mu.Unlock()
		select {
		case fs.conns <- fc:
		case <-fs.done:
			return
		}
	}
}

// next returns the next accepted connection.
func (fs *fakeServer) next() *fakeConn {
	fs.t.Helper()
	select {
	case fc := <-fs.conns:
		return fc
	case <-time.After(waitTimeout):
		fs.t.Fatal("fake server: no connection")
	}
	return nil
}

// close stops accepting and closes every connection; nothing of the fake
// server runs afterwards.
func (fs *fakeServer) close() {
	fs.once.Do(func() {
		close(fs.done)
		_ = fs.ln.Close()
		fs.wg.Wait()
		fs.mu.Lock()
		for _, fc := range fs.all {
			_ = fc.nc.Close()
		}
		fs.mu.Unlock()
	})
}

// fakeConn is one connection of the fake server, used by the test goroutine
// only.
type fakeConn struct {
	t  *testing.T
	nc net.Conn
	fr *testkit.FrameConn
}

// readErr returns the next frame from the client, or the read error.
func (fc *fakeConn) readErr() (protocol.Frame, error) { return fc.fr.Next(waitTimeout) }

// expect returns the next frame with opcode op, skipping heartbeat PINGs.
func (fc *fakeConn) expect(op protocol.Opcode) protocol.Frame {
	fc.t.Helper()
	for {
		f, err := fc.readErr()
		if err != nil {
			fc.t.Fatalf("fake server: waiting for %s: %v", op, err)
		}
		if f.Op == op {
			return f
		}
		if f.Op != protocol.OpPing {
			fc.t.Fatalf("fake server: got %s, want %s", f.Op, op)
		}
	}
}

// waitClosed reads until the client closes the connection and returns the
// opcodes it sent meanwhile.
func (fc *fakeConn) waitClosed() []protocol.Opcode {
	fc.t.Helper()
	var ops []protocol.Opcode
	for {
		f, err := fc.readErr()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				fc.t.Fatal("fake server: client did not close the connection")
			}
			return ops
		}
		ops = append(ops, f.Op)
	}
}

func (fc *fakeConn) send(m protocol.Message, seq uint32, flags protocol.Flags) {
	fc.t.Helper()
	b, err := m.AppendFrame(nil, seq, flags)
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.write(b)
}

func (fc *fakeConn) write(b []byte) {
	fc.t.Helper()
	fc.fr.Write(b)
}

// accept reads HELLO and answers auth (defaults filled in) with its seq.
func (fc *fakeConn) accept(auth protocol.AuthOK) protocol.Hello {
	fc.t.Helper()
	f := fc.expect(protocol.OpHello)
	var h protocol.Hello
	if err := h.Decode(f.Body); err != nil {
		fc.t.Fatal(err)
	}
	if auth.HeartbeatMs == 0 {
		auth.HeartbeatMs = 10_000
	}
	if auth.UserID == "" {
		auth.UserID = h.Token
	}
	fc.send(&auth, f.Seq, 0)
	return h
}

// refuse reads HELLO and answers AUTH_FAIL with code, echoing its seq.
func (fc *fakeConn) refuse(code protocol.CloseCode) {
	fc.t.Helper()
	f := fc.expect(protocol.OpHello)
	fc.send(&protocol.AuthFail{Code: code, Reason: "refused"}, f.Seq, 0)
}

// push sends a PUSH.
func (fc *fakeConn) push(id uint64, channel, payload string, flags protocol.Flags) {
	fc.t.Helper()
	fc.send(&protocol.Push{MsgID: id, Channel: channel, Payload: []byte(payload)}, 0, flags)
}

// pushString formats a push as "id/channel/payload" for comparisons.
func pushString(p Push) string { return fmt.Sprintf("%d/%s/%s", p.MsgID, p.Channel, p.Payload) }
