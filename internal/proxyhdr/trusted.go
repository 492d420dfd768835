package proxyhdr

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trusted is the set of source networks allowed to send a PROXY header. The zero value
// is empty: it trusts nobody. It is immutable and safe for concurrent use.
type Trusted struct {
	nets []netip.Prefix // masked; IPv4 networks in their 4-byte form
}

// ParseTrusted parses a comma-separated list of CIDRs or bare IP addresses, such as
// "10.0.0.0/8,127.0.0.1,::1". A bare address trusts that address alone. Spaces around
// entries are ignored; an empty list gives an empty Trusted. An entry that is empty or
// does not parse is an error wrapping ErrBadNetwork and naming the entry. IPv4-mapped
// IPv6 entries (::ffff:10.0.0.0/104) are stored as the IPv4 network they denote.
func ParseTrusted(list string) (Trusted, error) {
	var t Trusted
	if strings.TrimSpace(list) == "" {
		return t, nil
	}
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		p, err := parseNetwork(entry)
		if err != nil {
			return Trusted{}, fmt.Errorf("%w: entry %d %q: %v", ErrBadNetwork, i+1, entry, err)
		}
		t.nets = append(t.nets, p)
	}
	return t, nil
}

// parseNetwork parses one entry of a trusted list into a masked prefix.
func parseNetwork(entry string) (netip.Prefix, error) {
	if entry == "" {
		return netip.Prefix{}, fmt.Errorf("empty entry")
	}
	var p netip.Prefix
	if strings.Contains(entry, "/") {
		var err error
		if p, err = netip.ParsePrefix(entry); err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR: %v", err)
		}
	} else {
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR: %v", err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("an address with a zone cannot be trusted")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("an IPv4-mapped network needs a prefix of at least 96 bits")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Contains reports whether ip is inside one of the trusted networks. An IPv4-mapped IPv6
// address (::ffff:10.1.2.3, as a dual-stack socket reports an IPv4 peer) is matched as
// the IPv4 address it carries; a zone is ignored.
func (t Trusted) Contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range t.nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Empty reports whether t trusts no network at all.
func (t Trusted) Empty() bool { return len(t.nets) == 0 }

// String returns the networks as a comma-separated list that ParseTrusted accepts.
func (t Trusted) String() string {
	s := make([]string, len(t.nets))
	for i, p := range t.nets {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
