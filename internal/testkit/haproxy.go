package testkit

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real-haproxy harness: tests of the PROXY protocol and of load balancing start a
// real haproxy (Debian package "haproxy"; .ci/run installs it) from a configuration
// body, and it is stopped when the test ends. A missing binary fails the test: these
// tests are never skipped.

// haproxyGlobal is the part of every configuration the harness supplies: foreground
// (the harness runs it with -W -db, master-worker for Reload), no stats, logs to stderr,
// one thread (the machine has two cores), and short timeouts; a frontend or backend may
// override any timeout. client/server are long enough for a test's heartbeats.
const haproxyGlobal = `global
    log stderr format raw local0 info
    nbthread 1
    maxconn 4096
    hard-stop-after 5s

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    timeout client-fin 2s
    timeout server-fin 2s

`

// HAProxyProc is a running haproxy started by HAProxy. Its methods are for the test's
// goroutine.
type HAProxyProc struct {
	// Dir is the test's temporary directory holding haproxy.cfg; tests may put
	// certificates and other files there.
	Dir string

	t      testing.TB
	cfg    string // path of haproxy.cfg
	ports  []int
	cmd    *exec.Cmd
	stderr *LockedBuffer
	exited chan struct{} // closed once cmd.Wait returns
	stop   sync.Once
}

// HAProxy runs a real haproxy with the given configuration body (frontends, backends,
// listens; the global and defaults sections are supplied: see haproxyGlobal) in
// t.TempDir(), waits until every one of ports listens on loopback, and stops it
// (SIGTERM, then SIGKILL after 5 s, waited for) when the test ends. If the haproxy binary
// is missing the test fails; it is never skipped. A configuration haproxy refuses, or a
// port not listening within 10 s, fails the test with haproxy's stderr. haproxy's stderr
// is logged when the test has failed.
func HAProxy(t testing.TB, config string, ports ...int) *HAProxyProc {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy not installed: apt-get install haproxy")
	}
	h := &HAProxyProc{Dir: t.TempDir(), t: t, ports: ports, stderr: new(LockedBuffer), exited: make(chan struct{})}
	h.cfg = filepath.Join(h.Dir, "haproxy.cfg")
	h.writeConfig(config)
	if out, err := exec.Command(bin, "-c", "-q", "-f", h.cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy refuses the configuration: %v\n%s\n--- haproxy.cfg ---\n%s", err, out, haproxyGlobal+config)
	}
	h.cmd = exec.Command(bin, "-W", "-db", "-f", h.cfg)
	h.cmd.Dir = h.Dir
	h.cmd.Stdout = h.stderr
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("cannot start haproxy: %v", err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			t.Logf("haproxy stderr:\n%s", h.stderr.String())
		}
	})
	h.waitReady(1)
	return h
}

// writeConfig writes the supplied sections followed by the test's body.
func (h *HAProxyProc) writeConfig(config string) {
	h.t.Helper()
	if err := os.WriteFile(h.cfg, []byte(haproxyGlobal+config+"\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// waitReady waits until the master has reported its loads-th successful load and every
// port listens, failing the test if haproxy exits or reports a failed load first.
func (h *HAProxyProc) waitReady(loads int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-h.exited:
			h.t.Fatalf("haproxy exited (%v):\n%s", h.cmd.ProcessState, h.stderr.String())
		default:
		}
		out := h.stderr.String()
		if strings.Count(out, "Loading failure!") > 0 {
			h.t.Fatalf("haproxy failed to load its configuration:\n%s", out)
		}
		if strings.Count(out, "Loading success.") >= loads && listening(h.ports) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("haproxy not ready within 10 s (ports %v):\n%s", h.ports, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reload replaces the configuration body and has haproxy load it the way an operator's
// reload does (SIGUSR2 to the master): new connections get the new configuration, the
// old worker finishes its established connections (at most hard-stop-after, 5 s).
// ports, when given, replace the ports waited for. A configuration haproxy refuses
// fails the test.
func (h *HAProxyProc) Reload(config string, ports ...int) {
	h.t.Helper()
	if len(ports) > 0 {
		h.ports = ports
	}
	loads := strings.Count(h.stderr.String(), "Loading success.")
	h.writeConfig(config)
	if out, err := exec.Command(h.cmd.Path, "-c", "-q", "-f", h.cfg).CombinedOutput(); err != nil {
		h.t.Fatalf("haproxy refuses the new configuration: %v\n%s", err, out)
	}
	if err := h.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		h.t.Fatalf("cannot signal haproxy: %v", err)
	}
	h.waitReady(loads + 1)
}

// Stop stops haproxy: SIGTERM, then SIGKILL if it has not exited within 5 s, and waits
// for it. It is idempotent; the harness calls it when the test ends.
func (h *HAProxyProc) Stop() {
	h.stop.Do(func() {
		h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(5 * time.Second):
			h.cmd.Process.Kill()
			<-h.exited
		}
	})
}

// Stderr returns what haproxy has written so far (its notices and its log lines).
func (h *HAProxyProc) Stderr() string { return h.stderr.String() }

// listening reports whether every port has a TCP socket in LISTEN state, read from
// /proc/net/tcp{,6} so that no probe connection reaches haproxy (it would open a
// connection to the test's backend).
func listening(ports []int) bool {
	want := make(map[int]bool, len(ports))
	for _, p := range ports {
		want[p] = false
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header line
		for sc.Scan() {
			// sl local_address rem_address st ...; local_address is HEXIP:HEXPORT.
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				if _, ok := want[int(p)]; ok {
					want[int(p)] = true
				}
			}
		}
		file.Close()
	}
	for _, ok := range want {
		if !ok {
			return false
		}
	}
	return true
}

// FreePorts returns n distinct loopback TCP ports that were free a moment ago, for
// configurations of processes that must be told their ports in advance (haproxy). The
// kernel chose them and they are released before return, so another process may take
// one in between; keep the window short.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cannot find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreePort returns one loopback TCP port that was free a moment ago; see FreePorts.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// HAProxyAddr is "127.0.0.1:port", for dialing a frontend.
func HAProxyAddr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
