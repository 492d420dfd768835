package proxyhdr

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a v2 header by hand (not with go-proxyproto, so the tests do not check the
// library against itself): command byte, family byte, address block and TLVs.
func v2(cmd, fam byte, addrs []byte, tlvs ...[]byte) []byte {
	b := append([]byte{}, sigV2...)
	b = append(b, cmd, fam, 0, 0)
	b = append(b, addrs...)
	for _, t := range tlvs {
		b = append(b, t...)
	}
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-v2Fixed))
	return b
}

// addrs4 is an IPv4 address block: source, destination, ports.
func addrs4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// addrs6 is an IPv6 address block.
func addrs6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// tlv encodes one TLV.
func tlv(typ byte, value []byte) []byte {
	return append(binary.BigEndian.AppendUint16([]byte{typ}, uint16(len(value))), value...)
}

// sslTLV encodes PP2_TYPE_SSL with client flags, verify result and sub-TLVs.
func sslTLV(client byte, verify uint32, sub ...[]byte) []byte {
	v := binary.BigEndian.AppendUint32([]byte{client}, verify)
	for _, s := range sub {
		v = append(v, s...)
	}
	return tlv(0x20, v)
}

func TestParse(t *testing.T) {
	ap := netip.MustParseAddrPort
	cases := []struct {
		name string
		in   []byte
		want Header
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
			Header{Version: 1, Source: ap("192.0.2.1:56324"), Dest: ap("198.51.100.2:443")}},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 4000 7000\r\n"),
			Header{Version: 1, Source: ap("[2001:db8::1]:4000"), Dest: ap("[2001:db8::2]:7000")}},
		// UNKNOWN: the balancer could not tell; the receiver ignores the rest of the line.
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Local: true}},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n"), Header{Version: 1, Local: true}},
		{"v2 PROXY IPv4", v2(0x21, 0x11, addrs4("203.0.113.7", "10.0.0.1", 40000, 7000)),
			Header{Version: 2, Source: ap("203.0.113.7:40000"), Dest: ap("10.0.0.1:7000")}},
		{"v2 PROXY IPv6", v2(0x21, 0x21, addrs6("2001:db8::7", "2001:db8::1", 1, 65535)),
			Header{Version: 2, Source: ap("[2001:db8::7]:1"), Dest: ap("[2001:db8::1]:65535")}},
		// A mapped IPv4 client in an IPv6 block is reported as IPv4, for per-IP limits.
		{"v2 PROXY IPv6 mapped", v2(0x21, 0x21, addrs6("::ffff:192.0.2.9", "::1", 5, 6)),
			Header{Version: 2, Source: ap("192.0.2.9:5"), Dest: ap("[::1]:6")}},
		// LOCAL: a health check; addresses, if any, are not used.
		{"v2 LOCAL", v2(0x20, 0x00, nil), Header{Version: 2, Local: true}},
		{"v2 LOCAL with IPv4 block", v2(0x20, 0x11, addrs4("1.2.3.4", "5.6.7.8", 1, 2)), Header{Version: 2, Local: true}},
		{"v2 PROXY AF_UNIX", v2(0x21, 0x31, make([]byte, 216)), Header{Version: 2, Local: true}},
		{"v2 TLVs", v2(0x21, 0x11, addrs4("203.0.113.7", "10.0.0.1", 40000, 7000),
			tlv(0x01, []byte("tether.v1")),
			tlv(0x02, []byte("gw.example.com")),
			tlv(0x04, make([]byte, 5)), // NOOP padding, ignored
			sslTLV(0x01|0x02, 0,
				tlv(0x21, []byte("TLSv1.3")),
				tlv(0x22, []byte("device-42")),
				tlv(0x23, []byte("TLS_AES_128_GCM_SHA256"))),
			tlv(0xE0, []byte("custom, ignored"))),
			Header{Version: 2, Source: ap("203.0.113.7:40000"), Dest: ap("10.0.0.1:7000"),
				ALPN: "tether.v1", Authority: "gw.example.com",
				SSL: SSL{Present: true, ClientTLS: true, ClientCert: true, Verified: true,
					Version: "TLSv1.3", CN: "device-42", Cipher: "TLS_AES_128_GCM_SHA256"}}},
		// TLS without a client certificate: Verified stays false though verify is 0.
		{"v2 SSL no client cert", v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2),
			sslTLV(0x01, 0, tlv(0x21, []byte("TLSv1.2")))),
			Header{Version: 2, Source: ap("1.1.1.1:1"), Dest: ap("2.2.2.2:2"),
				SSL: SSL{Present: true, ClientTLS: true, Version: "TLSv1.2"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The application's first bytes follow the header and must not be consumed.
			in := append(append([]byte{}, c.in...), 0, 0, 0, 8, 1, 4)
			h, n, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n != len(c.in) {
				t.Fatalf("n = %d, want %d", n, len(c.in))
			}
			if h != c.want {
				t.Fatalf("got  %+v\nwant %+v", h, c.want)
			}
			// Split at every byte: each proper prefix is "incomplete", never an error.
			for i := 0; i < len(c.in); i++ {
				if h, n, err := Parse(c.in[:i]); n != 0 || err != nil || h != (Header{}) {
					t.Fatalf("prefix of %d bytes: n=%d err=%v h=%+v, want incomplete", i, n, err, h)
				}
				if !Looks(c.in[:i]) {
					t.Fatalf("Looks false on a prefix of %d bytes", i)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	long := "PROXY TCP4 " + strings.Repeat("1", MaxV1Len)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"tether frame", []byte{0, 0, 0, 8, 1, 1, 0, 0, 0, 0, 0, 1}, ErrNotProxy},
		{"HTTP request", []byte("GET / HTTP/1.1\r\n"), ErrNotProxy},
		{"TLS ClientHello", []byte{0x16, 3, 1, 0, 0x80}, ErrNotProxy},
		{"PROXY without space", []byte("PROXYTCP4 1.2.3.4\r\n"), ErrNotProxy},
		{"v2 signature typo", []byte("\r\n\r\n\x00\r\nQUIX\n"), ErrNotProxy},
		{"lowercase proxy", []byte("proxy TCP4"), ErrNotProxy},
		// v1 must end in CRLF within 107 bytes.
		{"v1 no CRLF within 107", []byte(long), ErrTooLong},
		{"v1 LF without CR", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), ErrMalformed},
		{"v1 bad family", []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 bad address", []byte("PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv6 in TCP4", []byte("PROXY TCP4 ::1 ::2 1 2\r\n"), ErrMalformed},
		{"v1 bad port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), ErrMalformed},
		{"v1 missing port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), ErrMalformed},
		{"v1 extra token", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), ErrMalformed},
		{"v1 empty", []byte("PROXY \r\n"), ErrMalformed},
		// v2: decided at byte 13 without waiting for the rest.
		{"v2 version 1", append(append([]byte{}, sigV2...), 0x11), ErrMalformed},
		{"v2 command 2", append(append([]byte{}, sigV2...), 0x22), ErrMalformed},
		{"v2 oversize length", append(append([]byte{}, sigV2...), 0x21, 0x11, 0x10, 0x01), ErrTooLong},
		{"v2 max length", append(append([]byte{}, sigV2...), 0x21, 0x11, 0xff, 0xff), ErrTooLong},
		{"v2 IPv4 block too short", v2(0x21, 0x11, make([]byte, 11)), ErrMalformed},
		{"v2 IPv6 block too short", v2(0x21, 0x21, make([]byte, 20)), ErrMalformed},
		{"v2 undefined family", v2(0x21, 0x13, make([]byte, 12)), ErrMalformed},
		{"v2 PROXY unspec", v2(0x21, 0x00, nil), ErrMalformed},
		{"v2 UDP on a stream", v2(0x21, 0x12, addrs4("1.1.1.1", "2.2.2.2", 1, 2)), ErrMalformed},
		{"v2 truncated TLV", v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2), []byte{0x01, 0x00, 0x09, 'a'}), ErrMalformed},
		{"v2 SSL TLV too short", v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2), tlv(0x20, []byte{1, 0})), ErrMalformed},
		{"v2 SSL without version", v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2), sslTLV(0x01, 0)), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, n, err := Parse(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if n != 0 || h != (Header{}) {
				t.Fatalf("n = %d, h = %+v on error", n, h)
			}
		})
	}
}

// TestParseTruncated: a header cut short stays "incomplete" (the caller's HeaderTimeout
// ends it), whatever the cut.
func TestParseTruncated(t *testing.T) {
	for _, in := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r"),
		[]byte("PROXY TCP6 2001:db8::1"),
		v2(0x21, 0x11, addrs4("1.1.1.1", "2.2.2.2", 1, 2))[:27],
		v2(0x21, 0x21, addrs6("::1", "::2", 1, 2), tlv(0x02, []byte("host")))[:v2Fixed+36+3],
	} {
		if _, n, err := Parse(in); n != 0 || err != nil {
			t.Errorf("%q: n=%d err=%v, want incomplete", in, n, err)
		}
	}
}

// TestLooks: true on every prefix of either signature and beyond, false as soon as a byte
// differs.
func TestLooks(t *testing.T) {
	for _, sig := range [][]byte{sigV1, sigV2} {
		for i := 0; i <= len(sig); i++ {
			if !Looks(sig[:i]) {
				t.Errorf("Looks(%q) = false", sig[:i])
			}
		}
		if !Looks(append(append([]byte{}, sig...), "anything"...)) {
			t.Errorf("Looks(%q + more) = false", sig)
		}
	}
	for _, in := range []string{"\x00\x00\x00\x08", "GET / HTTP/1.1", "\x16\x03\x01", "PROXX", "PROXY\t", "\r\n\r\n\x01", "\n"} {
		if Looks([]byte(in)) {
			t.Errorf("Looks(%q) = true", in)
		}
	}
}
