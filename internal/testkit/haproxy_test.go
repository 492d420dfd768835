package testkit

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/proxyhdr"
)

func TestMain(m *testing.M) { VerifyNoLeaks(m) }

// accepted is what the PROXY-reading echo backend saw on one connection.
type accepted struct {
	h      proxyhdr.Header
	socket net.Addr // the connection's own peer address (haproxy's side)
	err    error
}

// proxyEcho is a Go backend standing in for tetherd's plaintext listener: it reads each
// connection's PROXY header with proxyhdr.Parse, fed as bytes arrive, reports it, then
// echoes everything after the header. It is closed, its goroutines waited for, when the
// test ends.
func proxyEcho(t *testing.T) (addr string, got <-chan accepted) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan accepted, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serveProxyEcho(c, ch)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), ch
}

// serveProxyEcho reads the header the way the reactor will (whatever bytes arrived,
// Parse again until it decides), then echoes.
func serveProxyEcho(c net.Conn, ch chan<- accepted) {
	c.SetReadDeadline(time.Now().Add(proxyhdr.HeaderTimeout))
	var buf []byte
	p := make([]byte, 512)
	for {
		k, rerr := c.Read(p)
		buf = append(buf, p[:k]...)
		h, n, err := proxyhdr.Parse(buf)
		if err == nil && n == 0 && rerr != nil {
			err = fmt.Errorf("header incomplete: %w", rerr)
		}
		if err != nil || n > 0 {
			ch <- accepted{h, c.RemoteAddr(), err}
			if err != nil {
				return
			}
			buf = buf[n:]
			break
		}
	}
	c.SetReadDeadline(time.Time{})
	if len(buf) > 0 {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
	io.Copy(c, c)
}

// roundTrip writes msg on c and reads it back, failing the test otherwise.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write through haproxy: %v", err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(c, back); err != nil {
		t.Fatalf("read back through haproxy: %v", err)
	}
	if string(back) != msg {
		t.Fatalf("echo %q, want %q", back, msg)
	}
}

// checkHeader requires that the backend saw a PROXY header of version carrying the
// client's real address and port, and the frontend's as destination.
func checkHeader(t *testing.T, a accepted, version int, client, frontend net.Addr) {
	t.Helper()
	if a.err != nil {
		t.Fatalf("backend could not read the PROXY header: %v", a.err)
	}
	if a.h.Version != version || a.h.Local {
		t.Fatalf("header %+v, want version %d, not LOCAL", a.h, version)
	}
	if want := netip.MustParseAddrPort(client.String()); a.h.Source != want {
		t.Fatalf("Source = %v, want the client's %v (socket peer was %v)", a.h.Source, want, a.socket)
	}
	if want := netip.MustParseAddrPort(frontend.String()); a.h.Dest != want {
		t.Fatalf("Dest = %v, want the frontend's %v", a.h.Dest, want)
	}
	// The address haproxy connected from is not the client's: the header is what matters.
	if a.socket.String() == client.String() {
		t.Fatalf("socket peer %v equals the client address: the test would prove nothing", a.socket)
	}
}

// tcpConfig is a passthrough frontend on port to backend with the server option opt.
func tcpConfig(port int, backend, opt string) string {
	return fmt.Sprintf(`frontend fe
    bind 127.0.0.1:%d
    default_backend be

backend be
    server echo %s %s
`, port, backend, opt)
}

// TestHAProxySendProxy: haproxy in mode tcp, with send-proxy-v2 and send-proxy, tells
// the Go backend the client's real address and port, which proxyhdr.Parse decodes.
func TestHAProxySendProxy(t *testing.T) {
	for _, c := range []struct {
		opt     string
		version int
	}{{"send-proxy-v2", 2}, {"send-proxy", 1}} {
		t.Run(c.opt, func(t *testing.T) {
			backend, got := proxyEcho(t)
			port := FreePort(t)
			HAProxy(t, tcpConfig(port, backend, c.opt), port)
			conn, err := net.DialTimeout("tcp", HAProxyAddr(port), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			roundTrip(t, conn, "hello through haproxy")
			checkHeader(t, Recv(t, got, 10*time.Second), c.version, conn.LocalAddr(), conn.RemoteAddr())
			roundTrip(t, conn, "and again")
		})
	}
}

// TestHAProxyReload: a reload switches new connections to the new configuration (v2 to
// v1 here) while an established connection keeps working.
func TestHAProxyReload(t *testing.T) {
	backend, got := proxyEcho(t)
	port := FreePort(t)
	h := HAProxy(t, tcpConfig(port, backend, "send-proxy-v2"), port)
	old, err := net.DialTimeout("tcp", HAProxyAddr(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	roundTrip(t, old, "before")
	checkHeader(t, Recv(t, got, 10*time.Second), 2, old.LocalAddr(), old.RemoteAddr())

	h.Reload(tcpConfig(port, backend, "send-proxy"))
	conn, err := net.DialTimeout("tcp", HAProxyAddr(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip(t, conn, "after")
	checkHeader(t, Recv(t, got, 10*time.Second), 1, conn.LocalAddr(), conn.RemoteAddr())
	roundTrip(t, old, "old connection still served")
}

// TestHAProxyTLS: haproxy terminates TLS (a self-signed certificate made here) and sends
// PROXY v2 with the ssl, authority and ALPN TLVs to the plaintext Go backend; a
// crypto/tls client's address, SNI, ALPN and TLS version arrive in the header.
func TestHAProxyTLS(t *testing.T) {
	pemPath, pool := ServerPEM(t)
	backend, got := proxyEcho(t)
	port := FreePort(t)
	HAProxy(t, fmt.Sprintf(`frontend fe_tls
    bind 127.0.0.1:%d ssl crt %s alpn tether.v1
    default_backend be

backend be
    server echo %s send-proxy-v2 proxy-v2-options ssl,authority,ssl-cipher
`, port, pemPath, backend), port)

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", HAProxyAddr(port), &tls.Config{
		ServerName: "localhost",
		RootCAs:    pool,
		NextProtos: []string{"tether.v1"},
		MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatalf("TLS handshake with haproxy: %v", err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "tether.v1" {
		t.Fatalf("negotiated ALPN %q", p)
	}
	roundTrip(t, conn, "hello over TLS")
	a := Recv(t, got, 10*time.Second)
	checkHeader(t, a, 2, conn.LocalAddr(), conn.RemoteAddr())
	if a.h.ALPN != "tether.v1" || a.h.Authority != "localhost" {
		t.Fatalf("ALPN %q authority %q, want tether.v1 and localhost", a.h.ALPN, a.h.Authority)
	}
	s := a.h.SSL
	if !s.Present || !s.ClientTLS || s.ClientCert || s.Verified || s.Version != "TLSv1.3" || s.Cipher == "" {
		t.Fatalf("SSL TLV %+v, want TLSv1.3 over TLS without a client certificate", s)
	}
}

// fatalRecorder records a Fatal instead of failing the test, to test the harness's own
// failures.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestHAProxyMissingFails: without a haproxy binary the harness fails the test with the
// install hint; it does not skip.
func TestHAProxyMissingFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); HAProxy(f, "") }()
	<-done
	if !strings.Contains(f.msg, "haproxy not installed: apt-get install haproxy") {
		t.Fatalf("harness said %q", f.msg)
	}
}

// TestHAProxyBadConfigFails: a configuration haproxy refuses fails the test with
// haproxy's own message.
func TestHAProxyBadConfigFails(t *testing.T) {
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); HAProxy(f, "frontend fe\n    bind 127.0.0.1:1 nonsense-keyword\n", 1) }()
	<-done
	if !strings.Contains(f.msg, "refuses the configuration") || !strings.Contains(f.msg, "nonsense-keyword") {
		t.Fatalf("harness said %q", f.msg)
	}
}
