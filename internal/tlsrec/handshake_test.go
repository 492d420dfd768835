package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// goClient runs a real crypto/tls client handshake over raw.
func goClient(t testing.TB, raw net.Conn, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return c
}

// roundTrip sends n bytes each way between a Go client and the server and checks them.
func roundTrip(t testing.TB, c *tls.Conn, s *server, n int) {
	t.Helper()
	msg := pattern(n)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	if got := s.read(n); !bytes.Equal(got, msg) {
		t.Fatalf("server got %d bytes not matching what the client sent", len(got))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Reply in two slices: the concatenation must arrive.
	go s.write(msg[:n/2], msg[n/2:])
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("client read: %v", err)
	}
}

// handshakeCases pins the client to each version, TLS 1.2 suite and a curve.
var handshakeCases = []struct {
	name    string
	max     uint16
	suites  []uint16
	curves  []tls.CurveID
	version uint16
}{
	{"1.3 default", tls.VersionTLS13, nil, nil, tls.VersionTLS13},
	{"1.3 P-256", tls.VersionTLS13, nil, []tls.CurveID{tls.CurveP256}, tls.VersionTLS13},
	{"1.2 AES128-GCM", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, []tls.CurveID{tls.X25519}, tls.VersionTLS12},
	{"1.2 AES256-GCM-SHA384", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, []tls.CurveID{tls.CurveP256}, tls.VersionTLS12},
	{"1.2 ChaCha20", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, nil, tls.VersionTLS12},
}

// TestHandshakeRoundTrip: a real crypto/tls client handshakes with Handshake and data
// flows both ways, for every version and TLS 1.2 suite, small and multi-record, with the
// reactor feeding whole reads and (separately) one byte per Feed and per Open.
func TestHandshakeRoundTrip(t *testing.T) {
	for _, hc := range handshakeCases {
		for _, chunk := range []int{1 << 20, 1} {
			t.Run(fmt.Sprintf("%s/chunk%d", hc.name, chunk), func(t *testing.T) {
				ccfg := clientConfig(t)
				ccfg.MaxVersion, ccfg.CipherSuites, ccfg.CurvePreferences = hc.max, hc.suites, hc.curves
				raw, s := dialPair(t, serverConfig(t), chunk)
				c := goClient(t, raw, ccfg)
				sess := s.handshake()
				st := c.ConnectionState()
				if info := sess.Info(); info.Version != hc.version || info.CipherSuite != st.CipherSuite || info.ServerName != "tether.test" {
					t.Fatalf("Info %+v, client state %s %s", info, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				if hc.suites != nil && st.CipherSuite != hc.suites[0] {
					t.Fatalf("negotiated %s", tls.CipherSuiteName(st.CipherSuite))
				}
				sizes := []int{1, 1000, 70000}
				if chunk == 1 {
					sizes = []int{1, 20000}
				}
				for _, n := range sizes {
					roundTrip(t, c, s, n)
				}
			})
		}
	}
}

// holdConn passes the first pass writes through and holds later ones until flush, so a
// client's last handshake flight and its first data arrive in one segment.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	pass int
	held []byte
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pass > 0 {
		h.pass--
		return h.Conn.Write(p)
	}
	h.held = append(h.held, p...)
	return len(p), nil
}

func (h *holdConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.Conn.Write(h.held)
	h.held, h.pass = nil, 1<<30
	return err
}

// TestPipelinedData: application data the client sends right behind its Finished, fed
// in the same Feed, comes back from Handshake as leftover and opens first. Covers TLS 1.3
// (full handshake: the client's Finished is last) and resumed TLS 1.2 (likewise).
func TestPipelinedData(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			scfg := serverConfig(t)
			ccfg := clientConfig(t)
			ccfg.MaxVersion = version
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			if version == tls.VersionTLS12 {
				// Resume first so that the client's Finished ends the handshake.
				raw, s := dialPair(t, scfg, 1<<20)
				roundTrip(t, goClient(t, raw, ccfg), s, 10)
			}
			raw, s := dialPair(t, scfg, 1<<20)
			h := &holdConn{Conn: raw, pass: 1}
			c := goClient(t, h, ccfg)
			if version == tls.VersionTLS12 && !c.ConnectionState().DidResume {
				t.Fatal("TLS 1.2 setup did not resume")
			}
			msg := pattern(3000)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if err := h.flush(); err != nil {
				t.Fatal(err)
			}
			s.handshake()
			if len(s.rest) == 0 {
				t.Fatal("Handshake returned no leftover: the data did not follow Finished in one Feed")
			}
			if got := s.read(len(msg)); !bytes.Equal(got, msg) {
				t.Fatal("pipelined data corrupted")
			}
			roundTrip(t, c, s, 100)
		})
	}
}

// TestResumption: a second connection with the client's session cache resumes (TLS 1.2
// from the ticket's master secret, TLS 1.3 with PSK) and still round-trips; the
// caller's config is shared by both and not modified.
func TestResumption(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			scfg := serverConfig(t)
			ccfg := clientConfig(t)
			ccfg.MaxVersion = version
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i, wantResume := range []bool{false, true, true} {
				raw, s := dialPair(t, scfg, 1<<20)
				c := goClient(t, raw, ccfg)
				if got := c.ConnectionState().DidResume; got != wantResume {
					t.Fatalf("connection %d: DidResume %v, want %v", i, got, wantResume)
				}
				roundTrip(t, c, s, 5000)
			}
			if scfg.GetConfigForClient != nil || scfg.KeyLogWriter != nil || scfg.MinVersion != 0 || scfg.CipherSuites != nil {
				t.Fatal("Handshake modified the caller's config")
			}
		})
	}
}

// TestMutualTLS: a verified client certificate reaches Info().PeerCertificates and the
// ALPN protocol Info().NegotiatedProtocol; with client auth, TLS 1.3 tickets are sent
// after the client's Finished, and data still flows (the write seq counted them). A
// caller's own GetConfigForClient and KeyLogWriter keep working.
func TestMutualTLS(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := testPKI(t)
			inner := serverConfig(t)
			inner.ClientAuth = tls.RequireAndVerifyClientCert
			inner.ClientCAs = p.pool
			inner.NextProtos = []string{"tether.v1"}
			var keylog bytes.Buffer
			inner.KeyLogWriter = &keylog
			scfg := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil }}
			ccfg := clientConfig(t)
			ccfg.MaxVersion = version
			ccfg.Certificates = []tls.Certificate{p.client}
			ccfg.NextProtos = []string{"other", "tether.v1"}
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				raw, s := dialPair(t, scfg, 1<<20)
				c := goClient(t, raw, ccfg)
				info := s.handshake().Info()
				if len(info.PeerCertificates) != 1 || info.PeerCertificates[0].Subject.CommonName != "device-42" {
					t.Fatalf("connection %d: PeerCertificates %v", i, info.PeerCertificates)
				}
				if info.NegotiatedProtocol != "tether.v1" {
					t.Fatalf("NegotiatedProtocol %q", info.NegotiatedProtocol)
				}
				roundTrip(t, c, s, 100)
				if i == 1 && !c.ConnectionState().DidResume {
					t.Fatal("mTLS session did not resume")
				}
			}
			if keylog.Len() == 0 {
				t.Fatal("the caller's KeyLogWriter got nothing")
			}
		})
	}
}

// TestNoClientCert: RequireAndVerifyClientCert without a client certificate fails the
// handshake on both sides.
func TestNoClientCert(t *testing.T) {
	scfg := serverConfig(t)
	scfg.ClientAuth = tls.RequireAndVerifyClientCert
	scfg.ClientCAs = testPKI(t).pool
	raw, s := dialPair(t, scfg, 1<<20)
	c := tls.Client(raw, clientConfig(t))
	c.Handshake()
	c.Read(make([]byte, 1)) // TLS 1.3: the client learns of the failure on Read
	if err := s.handshakeErr(); err == nil {
		t.Fatal("Handshake succeeded without the required client certificate")
	}
}

// TestServerKeyUpdateToGoClient: when the write key reaches its record limit, Seal's
// KeyUpdate is understood by crypto/tls's client, which reads the data after it.
func TestServerKeyUpdateToGoClient(t *testing.T) {
	raw, s := dialPair(t, serverConfig(t), 1<<20)
	c := goClient(t, raw, clientConfig(t))
	roundTrip(t, c, s, 10)
	sess := s.handshake()
	// Make both ends believe 2^24 records went by: the Go client's counter cannot be
	// moved, so instead re-derive this side's key as Seal would and check the output.
	sess.flags.Or(flagKeyUpdateRequested)
	roundTrip(t, c, s, 10)
	if sess.flags.Load()&flagKeyUpdateRequested != 0 {
		t.Fatal("KeyUpdate request not answered")
	}
	roundTrip(t, c, s, 70000)
}

// TestClientKeyUpdate: a client-side record layer (this package's Session with the
// client's keys, taken from the Go client's key log after the handshake) sends a
// KeyUpdate with update_requested; the server switches read keys, and its next Seal
// starts with its own KeyUpdate and then data under the new key.
func TestClientKeyUpdate(t *testing.T) {
	scfg := serverConfig(t)
	scfg.SessionTicketsDisabled = true // nothing follows the server's Finished
	var cc capture
	ccfg := clientConfig(t)
	ccfg.KeyLogWriter = keyLogWriter{&cc}
	raw, s := dialPair(t, scfg, 1<<20)
	c := goClient(t, raw, ccfg)
	sess := s.handshake()
	cli, err := newSession13(c.ConnectionState().CipherSuite, cc.serverApp, cc.clientApp)
	if err != nil {
		t.Fatal(err)
	}
	wire := requestKeyUpdate(cli, nil)
	wire = cli.Seal(wire, []byte("under the new key"))
	if _, err := raw.Write(wire); err != nil {
		t.Fatal(err)
	}
	if got := s.read(len("under the new key")); string(got) != "under the new key" {
		t.Fatalf("server read %q", got)
	}
	s.write([]byte("reply"))
	buf := make([]byte, sess.SealedLen(5)+sess.SealedLen(5))
	if _, err := io.ReadFull(raw, buf); err != nil {
		t.Fatal(err)
	}
	typ, content, err := cli.decrypt(bytes.Clone(buf[:sess.SealedLen(5)]))
	if err != nil || typ != typeHandshake || !bytes.Equal(content, []byte{msgKeyUpdate, 0, 0, 1, 0}) {
		t.Fatalf("first record: type %d %x %v, want the server's KeyUpdate", typ, content, err)
	}
	cli.rd.seq--
	if got, err := openAll(cli, buf); err != nil || string(got) != "reply" {
		t.Fatalf("client Open: %q %v", got, err)
	}
}

// TestCloseNotify: the Go client's Close sends close_notify (ErrCloseNotify from Open);
// the server's Alert(close_notify) reads as io.EOF on the Go client.
func TestCloseNotify(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			ccfg := clientConfig(t)
			ccfg.MaxVersion = version
			raw, s := dialPair(t, serverConfig(t), 1<<20)
			c := goClient(t, raw, ccfg)
			sess := s.handshake()
			if _, err := s.conn.Write(sess.Alert(nil, AlertCloseNotify)); err != nil {
				t.Fatal(err)
			}
			if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("client Read after close_notify: %d %v, want io.EOF", n, err)
			}
			c.Close()
			if err := s.readErr(); !errors.Is(err, ErrCloseNotify) {
				t.Fatalf("server Open: %v, want ErrCloseNotify", err)
			}
		})
	}
}

// TestTamperedRecord: one flipped byte in what a real client sent fails with ErrBadRecord.
func TestTamperedRecord(t *testing.T) {
	raw, s := dialPair(t, serverConfig(t), 1<<20)
	c := goClient(t, raw, clientConfig(t))
	s.handshake()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	p, _ := s.next()
	p[len(p)-3] ^= 0x80
	if err := s.sess.Open(p, func([]byte) error { return nil }); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("Open: %v, want ErrBadRecord", err)
	}
}

// TestFeeder covers the Feeder's limits: overflow, Close unblocking a handshake, Feed
// after Close, and garbage failing the handshake.
func TestFeeder(t *testing.T) {
	nowrite := func([]byte) error { return nil }
	t.Run("overflow", func(t *testing.T) {
		f := NewFeeder(nowrite, nil, nil)
		if err := f.Feed(make([]byte, MaxHandshakeBytes)); err != nil {
			t.Fatal(err)
		}
		if err := f.Feed([]byte{1}); !errors.Is(err, ErrHandshakeTooLarge) {
			t.Fatalf("Feed: %v, want ErrHandshakeTooLarge", err)
		}
	})
	t.Run("close unblocks handshake", func(t *testing.T) {
		f := NewFeeder(nowrite, nil, nil)
		done := make(chan error, 1)
		go func() { _, _, err := Handshake(f, serverConfig(t)); done <- err }()
		f.Feed([]byte{22, 3, 1, 0, 200, 1}) // a ClientHello record that never completes
		f.Close()
		f.Close() // idempotent
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Handshake: %v, want net.ErrClosed", err)
		}
		if err := f.Feed([]byte{1}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Feed after Close: %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		var out bytes.Buffer
		f := NewFeeder(func(p []byte) error { out.Write(p); return nil }, nil, nil)
		f.Feed([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if _, _, err := Handshake(f, serverConfig(t)); err == nil {
			t.Fatal("Handshake accepted HTTP")
		}
		if err := f.Feed([]byte{1}); !errors.Is(err, ErrHandshakeDone) {
			t.Fatalf("Feed after Handshake: %v, want ErrHandshakeDone", err)
		}
	})
	t.Run("read stops at record end", func(t *testing.T) {
		f := NewFeeder(nowrite, nil, nil)
		f.Feed([]byte{22, 3, 1, 0, 2, 'a', 'b', 23, 3, 3})
		buf := make([]byte, 100)
		n, err := f.Read(buf)
		if err != nil || n != 7 {
			t.Fatalf("Read: %d %v, want the 7-byte record only", n, err)
		}
		if rest := f.finish(); !bytes.Equal(rest, []byte{23, 3, 3}) {
			t.Fatalf("leftover %v", rest)
		}
	})
}

// TestUnsupportedSuite: a CBC suite enabled by the caller fails Handshake with
// ErrUnsupportedSuite rather than producing a Session that cannot decrypt.
func TestUnsupportedSuite(t *testing.T) {
	scfg := serverConfig(t)
	scfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	ccfg := clientConfig(t)
	ccfg.MaxVersion = tls.VersionTLS12
	ccfg.CipherSuites = scfg.CipherSuites
	raw, s := dialPair(t, scfg, 1<<20)
	go tls.Client(raw, ccfg).Handshake()
	if err := s.handshakeErr(); !errors.Is(err, ErrUnsupportedSuite) {
		t.Fatalf("Handshake: %v, want ErrUnsupportedSuite", err)
	}
}

// TestHelloRetryRequest: a server that insists on a group the client offered no key
// share for sends a HelloRetryRequest; the handshake (two ClientHellos through the
// Feeder) still yields a working session.
func TestHelloRetryRequest(t *testing.T) {
	scfg := serverConfig(t)
	scfg.CurvePreferences = []tls.CurveID{tls.CurveP384}
	ccfg := clientConfig(t)
	ccfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP384}
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for range 2 {
		raw, s := dialPair(t, scfg, 7)
		c := goClient(t, raw, ccfg)
		if st := c.ConnectionState(); st.CurveID != tls.CurveP384 && !st.DidResume {
			t.Fatalf("curve %v: no HelloRetryRequest happened", st.CurveID)
		}
		roundTrip(t, c, s, 100)
	}
}

// TestHandshakeSessionRetainedBytes measures what Sessions made by real handshakes keep
// once sockets and goroutines are gone: the record-layer state and Info only, nothing
// of the handshake (its buffers, the tls.Conn, the Feeder). Run with -v for the figure.
func TestHandshakeSessionRetainedBytes(t *testing.T) {
	const n = 200
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	scfg, ccfg := serverConfig(t), clientConfig(t)
	one := func() *Session {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		f := NewFeeder(func(p []byte) error { _, err := sc.Write(p); return err }, nil, nil)
		type result struct {
			s   *Session
			err error
		}
		res := make(chan result, 1)
		go func() { s, _, err := Handshake(f, scfg); res <- result{s, err} }()
		go func() {
			buf := make([]byte, 4096)
			for {
				k, err := sc.Read(buf)
				if err != nil || f.Feed(buf[:k]) != nil {
					f.Close()
					return
				}
			}
		}()
		c := tls.Client(raw, ccfg)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.s
	}
	one() // warm up: the derived config, the client's caches
	per := retainedPerSession(n, func() *Session { return one() })
	t.Logf("%d handshaken TLS 1.3 AES-128-GCM sessions: %.0f bytes/session", n, per)
	if per > 2300 {
		t.Errorf("%.0f bytes/session retained: something of the handshake is kept", per)
	}
}
