package main

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
)

// TestTLSCertificateReload: SIGHUP makes new TLS handshakes present the certificate now
// in the -tls-cert/-tls-key files, while a connection made before keeps working; a bad
// file keeps the certificate in use.
func TestTLSCertificateReload(t *testing.T) {
	ca := testkit.NewCA(t)
	pemFile := filepath.Join(t.TempDir(), "gw.pem")
	install := func(cn string) *tls.Certificate {
		t.Helper()
		cert := ca.Issue(t, cn, true)
		b, err := os.ReadFile(testkit.PEM(t, cert))
		if err != nil {
			t.Fatal(err)
		}
		tmp := pemFile + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, pemFile); err != nil {
			t.Fatal(err)
		}
		return &cert
	}
	install("first.example")
	addr, apiAddr := freeAddr(t), freeAddr(t)
	var out testkit.LockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-dev", "-addr", freeAddr(t), "-ws-addr", "-", "-tls-addr", addr, "-tls-cert", pemFile, "-tls-key", pemFile,
			"-admin", "-", "-control", "-", "-http-addr", apiAddr, "-http-tls-cert", pemFile, "-http-tls-key", pemFile,
			"-drain-timeout", "2s", "-drain-spread", "10ms"}, &out, &out, func(string) string { return "" })
	}()
	servedAt := func(addr string) (*tls.Conn, string) {
		t.Helper()
		var c *tls.Conn
		testkit.WaitFor(t, "the TLS listener", func() bool {
			var err error
			c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
			return err == nil
		})
		return c, c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	served := func() (*tls.Conn, string) { return servedAt(addr) }
	// The HTTP API's certificate (-http-tls-cert) is reloaded by the same SIGHUP.
	apiCN := func() string {
		c, cn := servedAt(apiAddr)
		c.Close()
		return cn
	}
	old, cn := served()
	defer old.Close()
	if cn != "first.example" {
		t.Fatalf("served %q, want first.example", cn)
	}
	install("second.example")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testkit.WaitFor(t, "the reloaded certificate", func() bool {
		c, cn := served()
		c.Close()
		return cn == "second.example" && apiCN() == "second.example"
	})
	// A file that does not parse: the reload fails and the certificate stays.
	if err := os.WriteFile(pemFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testkit.WaitFor(t, "the failed reload logged", func() bool { return strings.Contains(out.String(), "certificate reload failed") })
	if c, cn := served(); cn != "second.example" || apiCN() != "second.example" {
		t.Fatalf("after a bad reload served %q, want second.example", cn)
	} else {
		c.Close()
	}
	// The connection made before the reloads still carries frames.
	fc := testkit.NewFrameConn(t, old)
	fc.Write(protocol.AppendEmpty(nil, protocol.OpPing, 9))
	if f, err := fc.Next(10 * time.Second); err != nil || f.Op != protocol.OpPong {
		t.Fatalf("old connection after the reloads: %v %v", f.Op, err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tetherd did not exit")
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
