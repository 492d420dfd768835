package tlsrec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests (generous: a loaded 2-core machine).
const testTimeout = 30 * time.Second

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	pool   *x509.CertPool
	caDER  []byte
	server tls.Certificate
	client tls.Certificate
}

var (
	pkiOnce sync.Once
	thePKI  pki
)

func testPKI(t testing.TB) pki {
	pkiOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsrec test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		thePKI.caDER = caDER
		thePKI.pool = x509.NewCertPool()
		thePKI.pool.AddCert(ca)
		leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
				DNSNames:  []string{cn},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
			if err != nil {
				panic(err)
			}
			return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		}
		thePKI.server = leaf(2, "tether.test", x509.ExtKeyUsageServerAuth)
		thePKI.client = leaf(3, "device-42", x509.ExtKeyUsageClientAuth)
	})
	return thePKI
}

// serverConfig is a fresh server config with the test certificate.
func serverConfig(t testing.TB) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{testPKI(t).server}}
}

// clientConfig is a client config trusting the test CA, for tether.test.
func clientConfig(t testing.TB) *tls.Config {
	return &tls.Config{RootCAs: testPKI(t).pool, ServerName: "tether.test"}
}

// server is the "reactor" side of one test connection: a goroutine reads the socket and
// feeds the Feeder until Feed says the handshake is done, then queues what it reads for
// the test goroutine to Open.
type server struct {
	t    testing.TB
	conn net.Conn
	f    *Feeder
	hs   chan hsResult
	post chan []byte // chunks read after the handshake, in order; closed on read error

	sess  *Session
	rest  []byte
	plain []byte // delivered and not yet taken by read
}

type hsResult struct {
	s    *Session
	rest []byte
	err  error
}

// dialPair connects a raw client socket to a server running Handshake with cfg; the
// reactor feeds at most chunk bytes per Feed/Open call.
func dialPair(t testing.TB, cfg *tls.Config, chunk int) (net.Conn, *server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	raw.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { raw.Close() })
	return raw, newServer(t, sc, cfg, chunk)
}

// newServer runs Handshake with cfg and the reactor goroutine on the accepted socket sc.
func newServer(t testing.TB, sc net.Conn, cfg *tls.Config, chunk int) *server {
	sc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { sc.Close() })
	s := &server{t: t, conn: sc, hs: make(chan hsResult, 1), post: make(chan []byte, 1024)}
	s.f = NewFeeder(func(p []byte) error { _, err := sc.Write(p); return err }, sc.LocalAddr(), sc.RemoteAddr())
	go func() {
		ss, rest, err := Handshake(s.f, cfg)
		s.hs <- hsResult{ss, rest, err}
	}()
	go s.reactor(chunk)
	return s
}

func (s *server) reactor(chunk int) {
	defer close(s.post)
	buf := make([]byte, 32<<10)
	done := false
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			s.f.Close()
			return
		}
		for data := buf[:n]; len(data) > 0; {
			piece := data[:min(chunk, len(data))]
			if !done {
				err := s.f.Feed(piece)
				if err == nil {
					data = data[len(piece):]
					continue
				}
				if !errors.Is(err, ErrHandshakeDone) {
					s.f.Close()
					return
				}
				done = true
			}
			s.post <- bytes.Clone(piece)
			data = data[len(piece):]
		}
	}
}

// handshake waits for the server's Handshake and fails the test on error.
func (s *server) handshake() *Session {
	s.t.Helper()
	if err := s.handshakeErr(); err != nil {
		s.t.Fatalf("server handshake: %v", err)
	}
	return s.sess
}

func (s *server) handshakeErr() error {
	s.t.Helper()
	if s.sess != nil {
		return nil
	}
	select {
	case r := <-s.hs:
		s.sess, s.rest = r.s, r.rest
		return r.err
	case <-time.After(testTimeout):
		s.t.Fatal("server handshake did not end")
	}
	return nil
}

// next returns the next bytes to Open: the handshake's leftover first, then chunks read.
func (s *server) next() ([]byte, bool) {
	s.t.Helper()
	if s.rest != nil {
		p := s.rest
		s.rest = nil
		return p, true
	}
	select {
	case p, ok := <-s.post:
		return p, ok
	case <-time.After(testTimeout):
		s.t.Fatal("nothing read from the client")
	}
	return nil, false
}

// read Opens what the client sent until n plaintext bytes arrived and returns them.
func (s *server) read(n int) []byte {
	s.t.Helper()
	sess := s.handshake()
	for len(s.plain) < n {
		p, ok := s.next()
		if !ok {
			s.t.Fatalf("connection ended after %d of %d bytes", len(s.plain), n)
		}
		if err := sess.Open(p, func(b []byte) error { s.plain = append(s.plain, b...); return nil }); err != nil {
			s.t.Fatalf("Open: %v", err)
		}
	}
	out := s.plain[:n]
	s.plain = s.plain[n:]
	return out
}

// readErr Opens what the client sends until Open fails and returns the error.
func (s *server) readErr() error {
	s.t.Helper()
	sess := s.handshake()
	for {
		p, ok := s.next()
		if !ok {
			s.t.Fatal("connection ended without an Open error")
		}
		if err := sess.Open(p, func([]byte) error { return nil }); err != nil {
			return err
		}
	}
}

// write seals plain and sends it to the client.
func (s *server) write(plain ...[]byte) {
	s.t.Helper()
	if _, err := s.conn.Write(s.handshake().Seal(nil, plain...)); err != nil {
		s.t.Fatal(err)
	}
}

// pattern returns n deterministic bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// randomSecret returns n random bytes.
func randomSecret(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sessionPair returns the server and client sides of a session for suite id under
// random keys, without a handshake (record-layer tests).
func sessionPair(t testing.TB, version uint16, id uint16) (srv, cli *Session) {
	t.Helper()
	su := suites[id]
	var err1, err2 error
	if version == tls.VersionTLS13 {
		c, s := randomSecret(su.hashLen()), randomSecret(su.hashLen())
		srv, err1 = newSession13(id, c, s)
		cli, err2 = newSession13(id, s, c)
	} else {
		ck, sk, civ, siv := keyBlock12(su, randomSecret(48), randomSecret(32), randomSecret(32))
		srv, err1 = newSession12(id, ck, civ, sk, siv)
		cli, err2 = newSession12(id, sk, siv, ck, civ)
	}
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return srv, cli
}

// openAll Opens p on s in one call and returns the plaintext delivered.
func openAll(s *Session, p []byte) ([]byte, error) {
	var got []byte
	err := s.Open(p, func(b []byte) error { got = append(got, b...); return nil })
	return got, err
}
