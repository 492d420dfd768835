package tlsrec

import (
	"bytes"
	"crypto/tls"
	"testing"
)

// fixedPair is sessionPair with fixed keys, so fuzz seeds sealed once stay valid.
func fixedPair(t testing.TB, version uint16, id uint16) (srv, cli *Session) {
	su := suites[id]
	var err1, err2 error
	if version == tls.VersionTLS13 {
		c, s := pattern(su.hashLen()), bytes.Repeat([]byte{7}, su.hashLen())
		srv, err1 = newSession13(id, c, s)
		cli, err2 = newSession13(id, s, c)
	} else {
		ck, sk, civ, siv := keyBlock12(su, pattern(48), pattern(32), pattern(32))
		srv, err1 = newSession12(id, ck, civ, sk, siv)
		cli, err2 = newSession12(id, sk, siv, ck, civ)
	}
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return srv, cli
}

// FuzzOpen feeds arbitrary bytes, split in two Open calls at an arbitrary point, into an
// established session of one of the suites: Open must not panic, and what it delivers
// must fit in the input. Run: go test -fuzz=FuzzOpen -fuzztime=10s ./internal/tlsrec/
func FuzzOpen(f *testing.F) {
	for i, rs := range recordSuites {
		_, cli := fixedPair(f, rs.version, rs.id)
		// A data record, then a multi-record message: valid input.
		f.Add(uint8(i), uint16(3), cli.Seal(nil, []byte("hello")))
		f.Add(uint8(i), uint16(100), cli.Seal(nil, pattern(maxPlaintext+10)))
		// A record followed by a close_notify and trailing garbage.
		f.Add(uint8(i), uint16(0), append(cli.Alert(cli.Seal(nil, []byte("x")), AlertCloseNotify), 1, 2, 3))
		if rs.version == tls.VersionTLS13 {
			// KeyUpdate with update_requested, then data under the new key.
			f.Add(uint8(i), uint16(7), cli.Seal(requestKeyUpdate(cli, nil), []byte("after")))
			// All-zero inner plaintext.
			f.Add(uint8(i), uint16(1), sealRaw13(cli, make([]byte, 4)))
		}
	}
	f.Add(uint8(0), uint16(2), []byte{23, 3, 3, 0xff, 0xff})     // oversize header
	f.Add(uint8(3), uint16(5), []byte{23, 3, 3, 0, 20, 1, 2})    // truncated
	f.Add(uint8(1), uint16(0), []byte("GET / HTTP/1.1\r\n\r\n")) // not TLS
	f.Add(uint8(4), uint16(1), []byte{22, 3, 3, 0, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, split uint16, data []byte) {
		rs := recordSuites[int(which)%len(recordSuites)]
		srv, _ := fixedPair(t, rs.version, rs.id)
		in := len(data)
		cut := int(split) % (len(data) + 1)
		delivered := 0
		deliver := func(b []byte) error { delivered += len(b); return nil }
		if err := srv.Open(data[:cut], deliver); err == nil {
			srv.Open(data[cut:], deliver)
		}
		if delivered > in {
			t.Fatalf("delivered %d bytes from %d of input", delivered, in)
		}
		// Whatever happened, sealing still works.
		srv.Seal(nil, []byte("still alive"))
	})
}
