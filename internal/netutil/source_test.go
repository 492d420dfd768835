package netutil

import (
	"net"
	"testing"
)

func TestSourceKey(t *testing.T) {
	f := func(remote net.Addr, want string) {
		t.Helper()
		ip := AddrIP(remote)
		got := ""
		if ip.IsValid() {
			got = SourceKey(ip).String()
		}
		if got != want {
			t.Fatalf("SourceKey(AddrIP(%v)) = %q, want %q", remote, got, want)
		}
	}
	// IPv4 is its own key.
	f(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}, "192.0.2.7")
	// IPv4-mapped IPv6 is unmapped first.
	f(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7")
	// IPv6 is grouped by /64.
	f(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::")
	// Anything with an AddrPort method.
	f(&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}, "10.0.0.1")
	// No IP: a unix socket, nil.
	f(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, "")
	f(nil, "")
}
