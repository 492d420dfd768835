// Package testkit holds what the gateway's test suites share: a frame-level loopback
// client, a dialer that can cut its connection under a client, condition polling with a
// deadline, a quiet logger, a locked buffer for child-process output, the harness that
// re-runs a test binary as a child under a lowered file limit (child.go), a fake clock
// and a recorder of the SDKs' reconnect waits (clock.go), a real haproxy started from a
// configuration body, with free-port helpers (haproxy.go), a NATS server with JetStream
// in process or as the real binary, stoppable and restartable (nats.go), the promtool
// check of a /metrics exposition, and the goroutine-leak check every suite's TestMain
// runs. It is
// test support only; nothing in the gateway imports it. It must not import server or
// the SDKs, so that their own tests can use it: helpers that start the real gateway live
// in internal/e2e. PROTOCOL.md's worked frames and sections are read by its
// stdlib-only subpackage protodoc, which the in-package tests of protocol and
// internal/wire (both imported here) can use.
package testkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"go.uber.org/goleak"
)

// Logger returns a logger that discards everything unless TETHER_TEST_LOG is set, in
// which case it logs at debug level to stderr.
func Logger() *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// WaitFor polls cond every 2 ms until it holds, failing the test after 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Recv receives one value from ch, failing the test if ch is closed or nothing arrives
// within timeout.
func Recv[T any](t testing.TB, ch <-chan T, timeout time.Duration) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("channel closed while waiting to receive")
		}
		return v
	case <-time.After(timeout):
		t.Fatalf("nothing received within %v", timeout)
	}
	var zero T
	return zero
}

// Context returns a context that ends after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// FrameConn is a loopback TCP connection read frame by frame, for tests that speak the
// protocol by hand. Its methods are for the test's goroutine only.
type FrameConn struct {
	// Conn is the underlying connection; tests close it to simulate a client leaving.
	Conn net.Conn
	t    testing.TB
	dec  protocol.Decoder
	buf  []protocol.Frame
	err  error
}

// DialFrames connects to addr; the connection is closed when the test ends.
func DialFrames(t testing.TB, addr string) *FrameConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return NewFrameConn(t, c)
}

// NewFrameConn wraps an accepted (or otherwise established) connection, for test servers
// that speak the protocol by hand. The caller closes c.
func NewFrameConn(t testing.TB, c net.Conn) *FrameConn {
	return &FrameConn{Conn: c, t: t, dec: protocol.Decoder{MaxFrame: protocol.MaxFrameLimit}}
}

// Write sends raw bytes, failing the test on error.
func (f *FrameConn) Write(b []byte) {
	f.t.Helper()
	f.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := f.Conn.Write(b); err != nil {
		f.t.Fatalf("write: %v", err)
	}
}

// Next returns the next frame (a copy), or the read error (io.EOF when the peer closed,
// a timeout when nothing arrives within timeout).
func (f *FrameConn) Next(timeout time.Duration) (protocol.Frame, error) {
	deadline := time.Now().Add(timeout)
	p := make([]byte, 64<<10)
	for len(f.buf) == 0 {
		if f.err != nil {
			return protocol.Frame{}, f.err
		}
		f.Conn.SetReadDeadline(deadline)
		n, err := f.Conn.Read(p)
		if n > 0 {
			if derr := f.dec.Decode(p[:n], func(fr protocol.Frame) error {
				f.buf = append(f.buf, fr.Clone())
				return nil
			}); derr != nil {
				f.err = derr
			}
		}
		if err != nil && len(f.buf) == 0 {
			f.err = err
			return protocol.Frame{}, err
		}
	}
	fr := f.buf[0]
	f.buf = f.buf[1:]
	return fr, nil
}

// IsClosed reports whether err means the peer closed the connection (EOF or a reset),
// as opposed to a timeout.
func IsClosed(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// ControlConn is a control-port connection speaking internal/wire frames by hand, for
// tests of what the port does with what the service SDK never sends. Its methods are for
// the test's goroutine only.
type ControlConn struct {
	*FrameConn
}

// DialControl connects to the control port at addr; the connection is closed when the
// test ends.
func DialControl(t testing.TB, addr string) *ControlConn {
	t.Helper()
	return &ControlConn{FrameConn: DialFrames(t, addr)}
}

// Send encodes and sends a control frame, failing the test on error.
func (c *ControlConn) Send(op protocol.Opcode, seq uint32, hdr any, payload []byte) {
	c.t.Helper()
	b, err := wire.AppendFrame(nil, op, seq, hdr, payload)
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	c.Write(b)
}

// Auth authenticates as service "raw" with secret (seq 1) and waits for the RESULT.
func (c *ControlConn) Auth(secret string) {
	c.t.Helper()
	c.Send(wire.OpAuth, 1, &wire.Auth{Secret: secret, Name: "raw"}, nil)
	c.Expect(wire.OpResult, 1)
}

// Expect returns the next frame, failing the test unless it is op with seq within 5 s.
func (c *ControlConn) Expect(op protocol.Opcode, seq uint32) protocol.Frame {
	c.t.Helper()
	f, err := c.Next(5 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", wire.OpName(op), err)
	}
	if f.Op != op || f.Seq != seq {
		c.t.Fatalf("got %s seq %d (body %q), want %s seq %d", wire.OpName(f.Op), f.Seq, f.Body, wire.OpName(op), seq)
	}
	return f
}

// ExpectFail reads a FAIL for seq and checks its code.
func (c *ControlConn) ExpectFail(seq uint32, code protocol.ErrorCode) wire.Fail {
	c.t.Helper()
	f := c.Expect(wire.OpFail, seq)
	var fl wire.Fail
	if _, err := wire.DecodeBody(f.Body, &fl); err != nil {
		c.t.Fatalf("FAIL body: %v", err)
	}
	if fl.Code != code {
		c.t.Fatalf("FAIL %v (%s), want %v", fl.Code, fl.Message, code)
	}
	return fl
}

// ExpectClosed reads until the gateway closes the connection, requiring a last CLOSE
// with code; it fails the test if the connection is still open after 5 s of silence.
func (c *ControlConn) ExpectClosed(code protocol.CloseCode) {
	c.t.Helper()
	var last *protocol.Frame
	for {
		f, err := c.Next(5 * time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection not closed in time (want CLOSE %v)", code)
			}
			break
		}
		last = &f
	}
	if last == nil || last.Op != protocol.OpClose {
		c.t.Fatalf("closed without CLOSE %v (last frame %+v)", code, last)
	}
	var m protocol.Close
	if err := m.Decode(last.Body); err != nil {
		c.t.Fatal(err)
	}
	if m.Code != code {
		c.t.Fatalf("closed with %v (%s), want %v", m.Code, m.Reason, code)
	}
}

// CutDialer dials TCP and can close the latest connection under the client that dialed
// it, to simulate the network dropping. It is safe for concurrent use.
type CutDialer struct {
	mu   sync.Mutex
	last net.Conn
}

// Dial connects to addr and remembers the connection.
func (d *CutDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.last = c
	d.mu.Unlock()
	return c, nil
}

// Cut closes the latest connection.
func (d *CutDialer) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		d.last.Close()
	}
}

// Transitions records the state changes an SDK reports (client.Options.OnStateChange),
// for tests that look for one afterwards. It is safe for concurrent use.
type Transitions[S comparable] struct {
	mu  sync.Mutex
	all []Transition[S]
}

// Transition is one recorded state change: the state entered and the error, if any,
// that caused it.
type Transition[S comparable] struct {
	State S
	Err   error
}

// Record appends a state change; it has the shape of OnStateChange.
func (tr *Transitions[S]) Record(s S, err error) {
	tr.mu.Lock()
	tr.all = append(tr.all, Transition[S]{s, err})
	tr.mu.Unlock()
}

// Find returns the first recorded transition to s whose error satisfies match (nil
// matches any).
func (tr *Transitions[S]) Find(s S, match func(error) bool) (Transition[S], bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, x := range tr.all {
		if x.State == s && (match == nil || match(x.Err)) {
			return x, true
		}
	}
	return Transition[S]{}, false
}

// Dump returns the recorded transitions, "state(err) ..." in order, for failure messages.
func (tr *Transitions[S]) Dump() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	for _, x := range tr.all {
		fmt.Fprintf(&b, "%v(%v) ", x.State, x.Err)
	}
	return b.String()
}

// LockedBuffer collects output written by one goroutine while another reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Promtool runs `promtool check metrics` on a Prometheus exposition and fails the test
// on any finding. CI installs promtool (.ci/run), so there a missing promtool fails the
// test; elsewhere the check is skipped with a loud log line.
func Promtool(t testing.TB, exposition string) {
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

// VerifyNoLeaks runs the tests of m and fails the package if a test leaves a goroutine
// behind once every gateway, port, service and client it started is closed. netpoll's
// pollers and its runner pool are process-wide and outlive servers by design, so they
// are ignored, as is everything running before the tests start (ants' package-level
// default pool). Call it from TestMain.
func VerifyNoLeaks(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
		goleak.IgnoreAnyFunction("github.com/bytedance/gopkg/util/gopool.(*worker).run.func1"),
		goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*manager).Run"),
	)
}

// Metric returns the value of the series named exactly name (with its labels, as in
// `tether_resumes_total{result="recovered"}`) in the Prometheus text exposition that
// write writes (a WriteMetrics method), or -1 when it is absent. A value that does not
// parse fails the test.
func Metric(t testing.TB, write func(io.Writer), name string) float64 {
	t.Helper()
	var buf strings.Builder
	write(&buf)
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}
