// Package netutil holds small network helpers shared by the gateway's listeners and
// tetherd.
package netutil

import "net"

// IsLoopback reports whether hostport (host:port, or a bare host) names only loopback
// addresses: a loopback IP, or "localhost". An empty host (":7001", which listens on
// every interface) is not loopback.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
