package proxyhdr

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse checks, for any bytes: Parse never panics; its result is one of incomplete,
// a header of n <= len(in) bytes, or one of the package's errors; and the same bytes
// split at any point give the same answer once all have arrived (a prefix of a header is
// incomplete, never an error or a different header).
func FuzzParse(f *testing.F) {
	// Seeds: each header shape the unit tests use, and the near misses.
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nrest"), uint8(10))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 4000 7000\r\n"), uint8(20))
	f.Add([]byte("PROXY UNKNOWN\r\n"), uint8(3))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), uint8(0))
	f.Add(v2(0x21, 0x11, addrs4("203.0.113.7", "10.0.0.1", 40000, 7000)), uint8(13))
	f.Add(v2(0x21, 0x21, addrs6("2001:db8::7", "2001:db8::1", 1, 65535)), uint8(16))
	f.Add(v2(0x20, 0x00, nil), uint8(1))
	f.Add(v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2),
		tlv(0x01, []byte("h2")), tlv(0x02, []byte("host")),
		sslTLV(0x03, 0, tlv(0x21, []byte("TLSv1.3")), tlv(0x22, []byte("cn")))), uint8(40))
	f.Add(v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2), []byte{0x20, 0, 9, 1}), uint8(30))
	f.Add(append(append([]byte{}, sigV2...), 0x21, 0x11, 0xff, 0xff), uint8(15))
	f.Add([]byte{0, 0, 0, 8, 1, 1, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		h, n, err := Parse(in)
		switch {
		case err != nil:
			if !errors.Is(err, ErrNotProxy) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLong) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if n != 0 {
				t.Fatalf("n = %d with error", n)
			}
			if errors.Is(err, ErrNotProxy) && Looks(in) {
				t.Fatalf("ErrNotProxy but Looks(%q)", in)
			}
		case n == 0:
			if !Looks(in) {
				t.Fatalf("incomplete but not Looks(%q)", in)
			}
		default:
			if n > len(in) {
				t.Fatalf("n = %d > %d", n, len(in))
			}
			if h.Version != 1 && h.Version != 2 {
				t.Fatalf("version %d", h.Version)
			}
			if h.Local == h.Source.IsValid() {
				t.Fatalf("Local %v with Source %v", h.Local, h.Source)
			}
			// The header alone parses the same; what follows it is not looked at.
			h2, n2, err2 := Parse(in[:n])
			if err2 != nil || n2 != n || h2 != h {
				t.Fatalf("header alone: %+v %d %v, want %+v %d", h2, n2, err2, h, n)
			}
			h3, n3, err3 := Parse(append(bytes.Clone(in[:n]), "trailing"...))
			if err3 != nil || n3 != n || h3 != h {
				t.Fatalf("with trailing bytes: %+v %d %v", h3, n3, err3)
			}
		}
		// A prefix is either incomplete or already decided the same way (an error
		// decided early is the same error class; a header is never seen early).
		if k := int(cut); k < len(in) {
			ph, pn, perr := Parse(in[:k])
			if pn != 0 || ph != (Header{}) {
				if err != nil || pn != n || ph != h {
					t.Fatalf("prefix %d gave a header %+v (n %d); whole gave %+v %d %v", k, ph, pn, h, n, err)
				}
			}
			if perr != nil && (err == nil || !sameClass(perr, err)) {
				t.Fatalf("prefix %d: %v; whole: %v", k, perr, err)
			}
		}
	})
}

// sameClass reports whether a and b are the same one of the package's errors.
func sameClass(a, b error) bool {
	for _, e := range []error{ErrNotProxy, ErrMalformed, ErrTooLong} {
		if errors.Is(a, e) {
			return errors.Is(b, e)
		}
	}
	return false
}
