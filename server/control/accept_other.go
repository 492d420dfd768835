//go:build !linux

package control

import "net"

// accept accepts the next control connection; outside Linux there is no descriptor
// reserve (internal/fdreserve), and an accept that fails for lack of descriptors is
// retried with back-off by the loop.
func (p *Port) accept(ln net.Listener) (net.Conn, error) {
	p.exhausted = false // never set here
	return ln.Accept()
}
