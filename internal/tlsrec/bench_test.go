package tlsrec

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"
)

// retainedPerSession builds n sessions with newSession and returns the heap bytes they
// keep per session (runtime.MemStats after GC, the slice holding them excluded).
func retainedPerSession(n int, newSession func() *Session) float64 {
	keep := make([]*Session, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = newSession()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestSessionRetainedBytes measures what an idle Session keeps (both AEAD states and the
// Session itself) per suite and fails if AES-128-GCM's passes 2 KiB (the target is
// ~1.8 KB: two 768-byte GCM states and a 256-byte Session). Run with -v for the figures.
func TestSessionRetainedBytes(t *testing.T) {
	const n = 4000
	limits := map[uint16]float64{tls.TLS_AES_128_GCM_SHA256: 2048}
	for _, rs := range recordSuites {
		per := retainedPerSession(n, func() *Session {
			s, _ := sessionPair(t, rs.version, rs.id)
			return s
		})
		t.Logf("%-52s %6.0f bytes/session", suiteName(rs.version, rs.id), per)
		if lim, ok := limits[rs.id]; ok && per > lim {
			t.Errorf("%s: %.0f bytes/session, want ≤ %.0f", suiteName(rs.version, rs.id), per, lim)
		}
	}
}

// TestSessionSize: the Session struct stays in the 352-byte size class (rarely used state
// sits behind pointers; each direction keeps its key so Idle can drop its cipher).
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 352 {
		t.Fatalf("Session is %d bytes, want ≤ 352", n)
	}
}

// TestSessionIdle: Idle drops the ciphers of directions unused since the last call, so an
// idle session keeps only its keys (the target: under 512 bytes with AES-128-GCM, against
// ~1.9 KB with both ciphers); a direction used in between keeps its cipher; and the
// session still opens and seals after its ciphers were dropped, in sequence.
func TestSessionIdle(t *testing.T) {
	for _, rs := range recordSuites {
		srv, cli := sessionPair(t, rs.version, rs.id)
		srv.Idle() // marks both unused
		if n := srv.Idle(); n != 2 {
			t.Fatalf("%s: Idle dropped %d ciphers, want 2", suiteName(rs.version, rs.id), n)
		}
		sealOpen(t, cli, srv, []byte("after idle"))
		sealOpen(t, srv, cli, []byte("and back"))
		if n := srv.Idle(); n != 0 {
			t.Fatalf("%s: Idle right after use dropped %d ciphers, want 0", suiteName(rs.version, rs.id), n)
		}
		srv.Open(nil, nil) // nothing: the read direction is not used
		sealOpen(t, srv, cli, []byte("write only"))
		if n := srv.Idle(); n != 1 {
			t.Fatalf("%s: with only writes since, Idle dropped %d, want 1 (the read cipher)", suiteName(rs.version, rs.id), n)
		}
		sealOpen(t, cli, srv, []byte("read again"))
	}
	per := retainedPerSession(4000, func() *Session {
		s, _ := sessionPair(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
		s.Idle()
		s.Idle()
		return s
	})
	t.Logf("idle TLS 1.3 AES-128-GCM session: %.0f bytes", per)
	if per > 512 {
		t.Errorf("idle session retains %.0f bytes, want ≤ 512", per)
	}
}

// sealOpen seals msg on from and checks to opens exactly msg.
func sealOpen(t *testing.T, from, to *Session, msg []byte) {
	t.Helper()
	rec := from.Seal(nil, msg)
	var got []byte
	if err := to.Open(rec, func(p []byte) error { got = append(got, p...); return nil }); err != nil {
		t.Fatalf("open: %v", err)
	}
	if string(got) != string(msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
}

var benchSizes = []int{64, 4 << 10}

// BenchmarkSeal seals one record of each size into a reused buffer (TLS 1.3 AES-128-GCM).
func BenchmarkSeal(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			_, cli := sessionPair(b, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
			msg := pattern(n)
			dst := make([]byte, 0, cli.SealedLen(n))
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				dst = cli.Seal(dst[:0], msg)
			}
		})
	}
}

// BenchmarkOpen opens one record of each size; the record is copied back in and the
// read seq rewound every iteration (Open decrypts in place), which the copy adds to.
func BenchmarkOpen(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			srv, cli := sessionPair(b, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
			rec := cli.Seal(nil, pattern(n))
			buf := make([]byte, len(rec))
			deliver := func([]byte) error { return nil }
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(buf, rec)
				srv.rd.seq = 0
				if err := srv.Open(buf, deliver); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealOpen seals and opens each size (ours), beside BenchmarkTLSConnWriteRead.
func BenchmarkSealOpen(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			srv, cli := sessionPair(b, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
			msg := pattern(n)
			dst := make([]byte, 0, cli.SealedLen(n))
			deliver := func([]byte) error { return nil }
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				dst = cli.Seal(dst[:0], msg)
				if err := srv.Open(dst, deliver); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// memConn is a net.Conn that runs the handshake over a net.Pipe end and then, once mem
// is set, writes into the peer's buffer and reads from its own: crypto/tls.Conn's record
// work without the pipe's goroutine handoff (the baseline for Seal/Open).
type memConn struct {
	net.Conn
	mem     *atomic.Bool
	in, out *bytes.Buffer
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.mem.Load() {
		return c.out.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.mem.Load() {
		return c.in.Read(p)
	}
	return c.Conn.Read(p)
}

// tlsConnPair returns a crypto/tls client and server over memConns (TLS 1.3, AES-128-GCM
// with hardware AES; no tickets, so nothing is in flight when they switch to memory).
func tlsConnPair(b *testing.B) (cli, srv *tls.Conn) {
	p1, p2 := net.Pipe()
	mem := new(atomic.Bool)
	ab, ba := new(bytes.Buffer), new(bytes.Buffer)
	scfg := serverConfig(b)
	scfg.SessionTicketsDisabled = true
	cli = tls.Client(&memConn{p1, mem, ba, ab}, clientConfig(b))
	srv = tls.Server(&memConn{p2, mem, ab, ba}, scfg)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	mem.Store(true)
	return cli, srv
}

// BenchmarkTLSConnWrite is crypto/tls.Conn.Write of each size into memory: the baseline
// for BenchmarkSeal.
func BenchmarkTLSConnWrite(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cli, srv := tlsConnPair(b)
			out := srv.NetConn().(*memConn).in
			msg := pattern(n)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				cli.Write(msg)
				out.Reset()
			}
		})
	}
}

// BenchmarkTLSConnWriteRead is crypto/tls.Conn.Write then Read of each size through
// memory: the baseline for BenchmarkSealOpen.
func BenchmarkTLSConnWriteRead(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cli, srv := tlsConnPair(b)
			msg := pattern(n)
			buf := make([]byte, n)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				cli.Write(msg)
				if _, err := io.ReadFull(srv, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake is one full TLS 1.3 handshake (ECDSA P-256 certificate, default
// key exchange) over net.Pipe: through Feeder and Handshake (a reactor goroutine feeding),
// beside crypto/tls.Conn.Handshake on the pipe directly. Both include the client's work.
func BenchmarkHandshake(b *testing.B) {
	scfg, ccfg := serverConfig(b), clientConfig(b)
	client := func(c net.Conn, done chan<- error) { done <- tls.Client(c, ccfg).Handshake() }
	b.Run("tlsrec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c1, c2 := net.Pipe()
			f := NewFeeder(func(p []byte) error { _, err := c2.Write(p); return err }, nil, nil)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c2.Read(buf)
					if err != nil || f.Feed(buf[:n]) != nil {
						return
					}
				}
			}()
			done := make(chan error, 1)
			go client(c1, done)
			if _, _, err := Handshake(f, scfg); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			c1.Close()
			c2.Close()
		}
	})
	b.Run("crypto-tls", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c1, c2 := net.Pipe()
			done := make(chan error, 1)
			go client(c1, done)
			if err := tls.Server(c2, scfg).Handshake(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			c1.Close()
			c2.Close()
		}
	})
}
