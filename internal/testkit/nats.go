package testkit

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The NATS harness: cluster tests run a real NATS server with JetStream, either in
// process (NATS, the nats-server/v2 module, the way nats.go's own tests do: fast, and
// its options are Go values) or as the Debian nats-server binary (NATSProcess: the
// server operators run, which can be killed with SIGKILL). Both listen on a loopback TCP
// port, so tetherd child processes reach them too, keep their JetStream store in
// t.TempDir(), and can be stopped and started again on the same port and store to
// simulate NATS going away and coming back. Both are stopped when the test ends, and
// their logs are written to the test log when it has failed.

// natsReadyTimeout bounds how long a server may take to accept connections (and, for
// the binary, to have JetStream ready) on a loaded machine.
const natsReadyTimeout = 10 * time.Second

// NATSServer is an in-process nats-server started by NATS. Its methods are for the
// test's goroutine.
type NATSServer struct {
	t    testing.TB
	opts server.Options // as given to the first start, with Port fixed after it
	srv  *server.Server
	log  *natsLog
}

// NATSOption changes the options of the server NATS starts, after the harness has set
// its defaults (loopback, a random port, JetStream with its store in t.TempDir()). Any
// func(*server.Options) is one, for settings the harness has no helper for; it must
// leave Host alone (URL is on 127.0.0.1).
type NATSOption func(*server.Options)

// NATSAuth makes the server require user and password from every client (nats.go:
// nats.UserInfo(user, password), or nats://user:password@host:port).
func NATSAuth(user, password string) NATSOption {
	return func(o *server.Options) {
		o.Username = user
		o.Password = password
	}
}

// NATS starts an in-process nats-server with JetStream enabled, its store in
// t.TempDir(), on a random loopback port, without authentication unless an option says
// otherwise, and waits until it accepts connections. The server is shut down when the
// test ends. JetStream is capped at 64 MiB of memory and 1 GiB of file store, far above
// what a test stores, so that its limits do not depend on the machine.
func NATS(t testing.TB, opts ...NATSOption) *NATSServer {
	t.Helper()
	n := &NATSServer{t: t, log: new(natsLog)}
	n.opts = server.Options{
		ServerName:         "testkit",
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		JetStream:          true,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		StoreDir:           t.TempDir(),
		NoLog:              true, // the harness sets its own logger: see natsLog
		NoSigs:             true, // signals are the test binary's, not the server's
	}
	for _, o := range opts {
		o(&n.opts)
	}
	t.Cleanup(func() {
		n.Shutdown()
		if t.Failed() {
			t.Logf("nats-server (in process) log:\n%s", n.log.String())
		}
	})
	n.start()
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port // Restart comes back on the same port
	return n
}

// start runs a server with n.opts and waits until it is ready.
func (n *NATSServer) start() {
	n.t.Helper()
	opts := n.opts // NewServer keeps and fills in the struct it is given
	s, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("cannot configure nats-server: %v", err)
	}
	s.SetLoggerV2(n.log, false, false, false)
	s.Start()
	if !s.ReadyForConnections(natsReadyTimeout) {
		s.Shutdown()
		n.t.Fatalf("nats-server not ready within %v:\n%s", natsReadyTimeout, n.log.String())
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		n.t.Fatalf("nats-server started without JetStream:\n%s", n.log.String())
	}
	n.srv = s
}

// URL is the server's client URL, nats://127.0.0.1:port, without credentials; it stays
// the same across Restart.
func (n *NATSServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Port is the server's client port; it stays the same across Restart.
func (n *NATSServer) Port() int { return n.opts.Port }

// Server is the running server, for tests that inspect it (connection counts,
// JetStream state); nil after Shutdown.
func (n *NATSServer) Server() *server.Server { return n.srv }

// Shutdown stops the server and waits until it has closed its port and every client
// connection, to simulate NATS going away. It is idempotent; the harness calls it when
// the test ends.
func (n *NATSServer) Shutdown() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart starts the server again on the same port with the same JetStream store (what
// was stored before Shutdown is there again), shutting it down first if it is running,
// and waits until it is ready, to simulate NATS coming back.
func (n *NATSServer) Restart() {
	n.t.Helper()
	n.Shutdown()
	n.start()
}

// Log returns what the server has logged so far (notices, warnings and errors).
func (n *NATSServer) Log() string { return n.log.String() }

// natsLog collects an in-process server's log lines, to be shown when the test fails
// (t.Logf cannot be used: the server logs from its own goroutines, also after the test
// has ended). It implements server.Logger and is safe for concurrent use.
type natsLog struct{ LockedBuffer }

func (l *natsLog) logf(level, format string, v ...any) {
	fmt.Fprintf(&l.LockedBuffer, "%s %s "+format+"\n", append([]any{time.Now().Format("15:04:05.000"), level}, v...)...)
}

func (l *natsLog) Noticef(format string, v ...any) { l.logf("[INF]", format, v...) }
func (l *natsLog) Warnf(format string, v ...any)   { l.logf("[WRN]", format, v...) }
func (l *natsLog) Fatalf(format string, v ...any)  { l.logf("[FTL]", format, v...) }
func (l *natsLog) Errorf(format string, v ...any)  { l.logf("[ERR]", format, v...) }
func (l *natsLog) Debugf(format string, v ...any)  { l.logf("[DBG]", format, v...) }
func (l *natsLog) Tracef(format string, v ...any)  { l.logf("[TRC]", format, v...) }

var _ server.Logger = (*natsLog)(nil)

// NATSProc is a running nats-server binary started by NATSProcess. Its methods are for
// the test's goroutine.
type NATSProc struct {
	// Dir is the JetStream store directory (-sd); it survives Kill and Restart.
	Dir string

	t       testing.TB
	bin     string
	args    []string // the whole command line after the binary
	port    int
	monPort int
	stderr  *LockedBuffer // every run's output, in order
	cmd     *exec.Cmd     // nil when not running
	exited  chan struct{} // closed once cmd.Wait returns
}

// NATSProcess runs the real nats-server binary (Debian package "nats-server"; .ci/run
// installs it; found on PATH or in /usr/sbin) as `nats-server -js -sd <t.TempDir()> -a 127.0.0.1 -p <port> -m
// <monitoring port>` followed by args, and waits until its /healthz (which includes
// JetStream) answers 200. It is stopped when the test ends (SIGTERM, then SIGKILL after
// 5 s, waited for), and its output is logged when the test has failed. If the binary is
// missing the test fails; it is never skipped. The ports are free ones chosen just
// before the start (see FreePorts), so in rare cases another process takes one first and
// the start fails.
func NATSProcess(t testing.TB, args ...string) *NATSProc {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		// Debian installs it in /usr/sbin, which a non-root PATH often lacks.
		if bin, err = exec.LookPath("/usr/sbin/nats-server"); err != nil {
			t.Fatal("nats-server not installed: apt-get install nats-server")
		}
	}
	ports := FreePorts(t, 2)
	p := &NATSProc{Dir: t.TempDir(), t: t, bin: bin, port: ports[0], monPort: ports[1], stderr: new(LockedBuffer)}
	p.args = append([]string{
		"-js", "-sd", p.Dir,
		"-a", "127.0.0.1", "-p", strconv.Itoa(p.port),
		"-m", strconv.Itoa(p.monPort),
	}, args...)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("nats-server %v output:\n%s", p.args, p.stderr.String())
		}
	})
	p.start()
	return p
}

// start runs the binary and waits until it is healthy.
func (p *NATSProc) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout = p.stderr
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("cannot start nats-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	health := fmt.Sprintf("http://127.0.0.1:%d/healthz", p.monPort)
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(natsReadyTimeout)
	for {
		select {
		case <-exited:
			p.cmd = nil
			p.t.Fatalf("nats-server exited (%v):\n%s", cmd.ProcessState, p.stderr.String())
		default:
		}
		if resp, err := hc.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				hc.CloseIdleConnections()
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("nats-server not healthy within %v (%s):\n%s", natsReadyTimeout, health, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// URL is the server's client URL, nats://127.0.0.1:port, without credentials; it stays
// the same across Kill and Restart.
func (p *NATSProc) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.port) }

// Port is the server's client port; it stays the same across Kill and Restart.
func (p *NATSProc) Port() int { return p.port }

// MonitorPort is the server's HTTP monitoring port (-m: /healthz, /varz, /jsz); it
// stays the same across Kill and Restart.
func (p *NATSProc) MonitorPort() int { return p.monPort }

// Stop stops the server the way an operator does, SIGTERM (nats-server shuts down
// cleanly), then SIGKILL if it has not exited within 5 s, and waits for it. It does
// nothing when the server is not running; the harness calls it when the test ends.
func (p *NATSProc) Stop() { p.halt(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it to exit.
func (p *NATSProc) Kill() { p.halt(syscall.SIGKILL) }

// halt sends sig, escalating to SIGKILL after 5 s, and waits for the process.
func (p *NATSProc) halt(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Restart starts the server again with the same command line, ports and store (what
// JetStream stored before is recovered), stopping it first (Stop) if it is running, and
// waits until it is healthy.
func (p *NATSProc) Restart() {
	p.t.Helper()
	p.Stop()
	p.start()
}

// Stderr returns everything the server has written so far, across restarts.
func (p *NATSProc) Stderr() string { return p.stderr.String() }
