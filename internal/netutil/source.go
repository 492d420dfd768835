package netutil

import (
	"net"
	"net/netip"
)

// AddrIP returns the IP of a remote address (IPv4-mapped IPv6 unmapped), or the zero
// Addr when it has none (a pipe, a unix socket).
func AddrIP(a net.Addr) netip.Addr {
	type addrPort interface{ AddrPort() netip.AddrPort }
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case addrPort:
		return v.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// SourceKey is the address per-source limits count ip under: ip itself for IPv4, its
// /64 for IPv6, since one IPv6 host usually holds a whole /64. The gateway's flapping
// table and the control port's AUTH throttle both key by it.
func SourceKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
