package tlsrec

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
)

// recordSuites lists every (version, suite) the record layer runs.
var recordSuites = []struct {
	version uint16
	id      uint16
}{
	{tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256},
	{tls.VersionTLS13, tls.TLS_AES_256_GCM_SHA384},
	{tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
	{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
}

func suiteName(version, id uint16) string {
	return tls.VersionName(version) + "/" + tls.CipherSuiteName(id)
}

// sealRaw13 seals inner (a TLS 1.3 inner plaintext, content type and padding included)
// as one record under s's write key, bypassing Seal's checks.
func sealRaw13(s *Session, inner []byte) []byte {
	hdr := []byte{typeApplicationData, 3, 3, 0, 0}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+tagLen))
	out := s.wr.aead.Seal(hdr, s.wr.nonce13(), inner, hdr)
	s.wr.seq++
	return out
}

// cloneSession copies s's state (to replay one stream into several receivers).
func cloneSession(s *Session) *Session {
	c := &Session{rd: s.rd, wr: s.wr, version: s.version, kind: s.kind, suite: s.suite}
	c.flags.Store(s.flags.Load())
	return c
}

// requestKeyUpdate makes s (the client side in tests) send a KeyUpdate with
// update_requested and switch its write key.
func requestKeyUpdate(s *Session, dst []byte) []byte {
	dst = s.sealSmall(dst, typeHandshake, msgKeyUpdate, 0, 0, 1, 1)
	if err := s.wr.next13(s.suiteInfo()); err != nil {
		panic(err)
	}
	return dst
}

// TestSealOpen round-trips both ways for every suite and size, with the plaintext in
// several slices, and checks SealedLen is exact.
func TestSealOpen(t *testing.T) {
	for _, rs := range recordSuites {
		for _, n := range []int{0, 1, 100, maxPlaintext, maxPlaintext + 1, 70000} {
			t.Run(fmt.Sprintf("%s/%d", suiteName(rs.version, rs.id), n), func(t *testing.T) {
				srv, cli := sessionPair(t, rs.version, rs.id)
				msg := pattern(n)
				for _, dir := range []struct{ from, to *Session }{{cli, srv}, {srv, cli}} {
					a, b := msg[:n/3], msg[n/3:]
					wire := dir.from.Seal([]byte("prefix"), a, nil, b)
					if !bytes.HasPrefix(wire, []byte("prefix")) {
						t.Fatal("Seal did not append to dst")
					}
					wire = wire[len("prefix"):]
					if len(wire) != dir.from.SealedLen(n) {
						t.Fatalf("Seal wrote %d bytes, SealedLen says %d", len(wire), dir.from.SealedLen(n))
					}
					got, err := openAll(dir.to, wire)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("Open: err %v, got %d bytes, want %d", err, len(got), n)
					}
				}
			})
		}
	}
}

// TestOpenEverySplit feeds a stream of records to Open split at every point, and byte at
// a time: the same plaintext comes out (the partial-record path).
func TestOpenEverySplit(t *testing.T) {
	for _, rs := range recordSuites {
		t.Run(suiteName(rs.version, rs.id), func(t *testing.T) {
			msgs := [][]byte{pattern(1), pattern(40), {}, pattern(3)}
			want := bytes.Join(msgs, nil)
			srv, cli := sessionPair(t, rs.version, rs.id)
			var wire []byte
			for _, m := range msgs {
				wire = cli.Seal(wire, m)
			}
			for i := 0; i <= len(wire); i++ {
				// Each split needs a fresh receiver at seq start: rebuild from the same keys.
				rcv := cloneSession(srv)
				p := bytes.Clone(wire)
				got1, err1 := openAll(rcv, p[:i])
				got2, err2 := openAll(rcv, p[i:])
				if err1 != nil || err2 != nil || !bytes.Equal(append(got1, got2...), want) {
					t.Fatalf("split at %d: %v %v", i, err1, err2)
				}
				if rcv.partial != nil {
					t.Fatalf("split at %d: partial copy kept after the record completed", i)
				}
			}
			rcv := cloneSession(srv)
			var got []byte
			for _, b := range bytes.Clone(wire) {
				g, err := openAll(rcv, []byte{b})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, g...)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("byte-at-a-time Open lost data")
			}
		})
	}
}

// TestOpenErrors checks each kind of bad input gets its typed error, and that Open
// refuses further input afterwards.
func TestOpenErrors(t *testing.T) {
	type tc struct {
		name    string
		version uint16
		wire    func(cli *Session) []byte
		want    error
	}
	data := func(cli *Session) []byte { return cli.Seal(nil, []byte("hello")) }
	tamper := func(i int) func(*Session) []byte {
		return func(cli *Session) []byte { w := data(cli); w[len(w)+i] ^= 1; return w }
	}
	cases := []tc{
		// A flipped bit in the tag or the ciphertext fails authentication.
		{"tampered tag 1.3", tls.VersionTLS13, tamper(-1), ErrBadRecord},
		{"tampered body 1.2", tls.VersionTLS12, tamper(-17), ErrBadRecord},
		// The header is authenticated (AD) too.
		{"tampered type 1.2", tls.VersionTLS12, func(c *Session) []byte { w := data(c); w[0] = typeAlert; return w }, ErrBadRecord},
		// Version field other than 0x0303.
		{"bad version", tls.VersionTLS13, func(c *Session) []byte { w := data(c); w[2] = 1; return w }, ErrBadRecord},
		// Length past 2^14+256 (1.3) and 2^14+2048 (1.2), refused from the header alone.
		{"oversize 1.3", tls.VersionTLS13, func(*Session) []byte { return []byte{23, 3, 3, 0x41, 0x01} }, ErrBadRecord},
		{"oversize 1.2", tls.VersionTLS12, func(*Session) []byte { return []byte{23, 3, 3, 0x48, 0x01} }, ErrBadRecord},
		// An inner plaintext over 2^14 inside a legal ciphertext length.
		{"oversize inner 1.3", tls.VersionTLS13, func(c *Session) []byte {
			return sealRaw13(c, append(pattern(maxPlaintext+1), typeApplicationData))
		}, ErrBadRecord},
		// RFC 8446 §5.4: an inner plaintext of zeros only has no content type.
		{"all-zero inner", tls.VersionTLS13, func(c *Session) []byte { return sealRaw13(c, make([]byte, 10)) }, ErrBadRecord},
		{"unknown inner type", tls.VersionTLS13, func(c *Session) []byte { return sealRaw13(c, []byte{1, 2, 99}) }, ErrUnexpectedMessage},
		// Post-handshake messages other than KeyUpdate (here a NewSessionTicket header).
		{"handshake not KeyUpdate", tls.VersionTLS13, func(c *Session) []byte {
			return sealRaw13(c, []byte{4, 0, 0, 0, typeHandshake})
		}, ErrUnexpectedMessage},
		{"KeyUpdate bad request byte", tls.VersionTLS13, func(c *Session) []byte {
			return sealRaw13(c, []byte{msgKeyUpdate, 0, 0, 1, 2, typeHandshake})
		}, ErrBadRecord},
		{"CCS after handshake", tls.VersionTLS13, func(*Session) []byte { return []byte{20, 3, 3, 0, 1, 1} }, ErrUnexpectedMessage},
		{"CCS 1.2", tls.VersionTLS12, func(*Session) []byte { return []byte{20, 3, 3, 0, 1, 1} }, ErrUnexpectedMessage},
		// A TLS 1.2 renegotiation attempt (ClientHello, encrypted) is refused.
		{"renegotiation 1.2", tls.VersionTLS12, func(c *Session) []byte { return c.sealSmall(nil, typeHandshake, 1, 0, 0, 0) }, ErrUnexpectedMessage},
		// Garbage that is not a record at all.
		{"garbage", tls.VersionTLS13, func(*Session) []byte { return []byte("GET / HTTP/1.1\r\n\r\n") }, ErrBadRecord},
		{"short record", tls.VersionTLS12, func(*Session) []byte { return []byte{23, 3, 3, 0, 3, 1, 2, 3} }, ErrBadRecord},
		{"close_notify", tls.VersionTLS13, func(c *Session) []byte { return c.Alert(nil, AlertCloseNotify) }, ErrCloseNotify},
		{"close_notify 1.2", tls.VersionTLS12, func(c *Session) []byte { return c.Alert(nil, AlertCloseNotify) }, ErrCloseNotify},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := uint16(tls.TLS_AES_128_GCM_SHA256)
			if c.version == tls.VersionTLS12 {
				id = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
			}
			srv, cli := sessionPair(t, c.version, id)
			if _, err := openAll(srv, cli.Seal(nil, []byte("ok"))); err != nil {
				t.Fatal(err)
			}
			if _, err := openAll(srv, c.wire(cli)); !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
			if _, err := openAll(srv, cli.Seal(nil, []byte("more"))); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Open after failure: %v, want net.ErrClosed", err)
			}
		})
	}
	t.Run("fatal alert", func(t *testing.T) {
		srv, cli := sessionPair(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
		var ae *AlertError
		if _, err := openAll(srv, cli.Alert(nil, AlertBadRecordMAC)); !errors.As(err, &ae) || ae.Code != AlertBadRecordMAC {
			t.Fatalf("Open: %v, want AlertError %d", err, AlertBadRecordMAC)
		}
	})
	t.Run("deliver error", func(t *testing.T) {
		srv, cli := sessionPair(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
		stop := errors.New("stop")
		if err := srv.Open(cli.Seal(nil, []byte("a")), func([]byte) error { return stop }); err != stop {
			t.Fatalf("Open: %v, want deliver's error", err)
		}
		if got, err := openAll(srv, cli.Seal(nil, []byte("b"))); err != nil || string(got) != "b" {
			t.Fatalf("Open after deliver error: %q %v (session must stay usable)", got, err)
		}
	})
}

// TestKeyUpdate: a KeyUpdate with update_requested switches the receiver's read key (data
// after it opens), and the receiver's next Seal starts with its own KeyUpdate
// (update_not_requested) followed by data under its new write key.
func TestKeyUpdate(t *testing.T) {
	for _, rs := range recordSuites[:3] {
		t.Run(suiteName(rs.version, rs.id), func(t *testing.T) {
			srv, cli := sessionPair(t, rs.version, rs.id)
			oldRead := srv.rd.secret
			wire := requestKeyUpdate(cli, nil)
			wire = cli.Seal(wire, []byte("after update"))
			got, err := openAll(srv, wire)
			if err != nil || string(got) != "after update" {
				t.Fatalf("Open: %q %v", got, err)
			}
			if srv.rd.secret == oldRead || srv.rd.seq != 1 {
				t.Fatal("read key not switched")
			}
			out := srv.Seal(nil, []byte("reply"))
			if len(out) != srv.SealedLen(5)+srv.SealedLen(len("reply")) {
				t.Fatalf("Seal wrote %d bytes, want a KeyUpdate and one record", len(out))
			}
			typ, content, err := cli.decrypt(bytes.Clone(out[:srv.SealedLen(5)]))
			if err != nil || typ != typeHandshake || !bytes.Equal(content, []byte{msgKeyUpdate, 0, 0, 1, 0}) {
				t.Fatalf("first record: type %d %x %v, want KeyUpdate(update_not_requested)", typ, content, err)
			}
			cli.rd.seq-- // decrypt consumed it; let Open replay the whole output
			got, err = openAll(cli, out)
			if err != nil || string(got) != "reply" {
				t.Fatalf("client Open: %q %v", got, err)
			}
			// Answered once: the next Seal carries no KeyUpdate.
			if n := len(srv.Seal(nil, []byte("x"))); n != srv.SealedLen(1) {
				t.Fatalf("second Seal wrote %d bytes, want %d", n, srv.SealedLen(1))
			}
		})
	}
}

// TestRekeyAfterLimit: after 2^24 records under one key Seal sends a KeyUpdate first.
func TestRekeyAfterLimit(t *testing.T) {
	srv, cli := sessionPair(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	srv.wr.seq, cli.rd.seq = rekeyAfter, rekeyAfter
	out := srv.Seal(nil, []byte("x"))
	if len(out) != srv.SealedLen(5)+srv.SealedLen(1) || srv.wr.seq != 1 {
		t.Fatalf("Seal wrote %d bytes, seq %d: want a KeyUpdate first", len(out), srv.wr.seq)
	}
	if got, err := openAll(cli, out); err != nil || string(got) != "x" {
		t.Fatalf("Open: %q %v", got, err)
	}
}

// TestConcurrentOpenSeal runs Open (with KeyUpdate requests arriving) and Seal on two
// goroutines at once, as the reactor and a writer do: under -race this checks they share
// only the atomic flags word, and the peer can read every Seal output in order.
func TestConcurrentOpenSeal(t *testing.T) {
	srv, cli := sessionPair(t, tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	var in []byte
	for i := range 200 {
		if i%10 == 0 {
			in = requestKeyUpdate(cli, in)
		}
		in = cli.Seal(in, []byte("up"))
	}
	done := make(chan error, 1)
	go func() {
		var got []byte
		err := srv.Open(in, func(b []byte) error { got = append(got, b...); return nil })
		if err == nil && len(got) != 400 {
			err = fmt.Errorf("opened %d bytes, want 400", len(got))
		}
		done <- err
	}()
	var out []byte
	for range 200 {
		out = srv.Seal(out, []byte("down"))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out = srv.Seal(out, []byte("down")) // answers a request Open may have seen last
	got, err := openAll(cli, out)
	if err != nil || len(got) != 201*4 {
		t.Fatalf("client Open: %d bytes, %v", len(got), err)
	}
}
