package proxyhdr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestTrusted(t *testing.T) {
	tr, err := ParseTrusted(" 10.0.0.0/8, 127.0.0.1 ,2001:db8::/32,::ffff:192.168.0.0/112, 172.16.5.9/12")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Empty() {
		t.Fatal("Empty on five networks")
	}
	if got, want := tr.String(), "10.0.0.0/8,127.0.0.1/32,2001:db8::/32,192.168.0.0/16,172.16.0.0/12"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3":          true,
		"::ffff:10.1.2.3":   true, // IPv4 peer on a dual-stack socket
		"11.0.0.1":          false,
		"127.0.0.1":         true,
		"::ffff:127.0.0.1":  true,
		"127.0.0.2":         false,
		"2001:db8::5":       true,
		"2001:db9::5":       false,
		"192.168.4.4":       true, // from the mapped entry
		"172.31.255.255":    true, // host bits of the entry masked
		"172.32.0.0":        false,
		"::1":               false,
		"fe80::1%eth0":      false,
		"::ffff:11.0.0.1":   false,
		"::ffff:172.16.0.1": true,
	} {
		if got := tr.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if tr.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true")
	}
}

func TestParseTrustedEmpty(t *testing.T) {
	for _, s := range []string{"", "  "} {
		tr, err := ParseTrusted(s)
		if err != nil || !tr.Empty() || tr.Contains(netip.MustParseAddr("127.0.0.1")) {
			t.Errorf("ParseTrusted(%q) = %v, %v; want empty", s, tr, err)
		}
	}
	if !(Trusted{}).Empty() {
		t.Error("zero Trusted not Empty")
	}
}

func TestParseTrustedErrors(t *testing.T) {
	for _, c := range []struct{ list, names string }{
		{"10.0.0.0/8,10.0.0.300", `"10.0.0.300"`},
		{"10.0.0.0/33", `"10.0.0.0/33"`},
		{"localhost", `"localhost"`},
		{"10.0.0.0/8,,127.0.0.1", `entry 2 ""`},
		{"10.0.0.0/8,", `entry 2 ""`},
		{"fe80::1%eth0", `"fe80::1%eth0"`},
		{"::ffff:0.0.0.0/90", `"::ffff:0.0.0.0/90"`},
		{"10.0.0.0/8 127.0.0.1", `"10.0.0.0/8 127.0.0.1"`},
	} {
		_, err := ParseTrusted(c.list)
		if !errors.Is(err, ErrBadNetwork) {
			t.Errorf("ParseTrusted(%q) err = %v, want ErrBadNetwork", c.list, err)
			continue
		}
		if !strings.Contains(err.Error(), c.names) {
			t.Errorf("ParseTrusted(%q) err = %q, does not name %s", c.list, err, c.names)
		}
	}
}
