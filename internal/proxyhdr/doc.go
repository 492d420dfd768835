// Package proxyhdr reads a PROXY protocol header (v1 text or v2 binary, as haproxy and
// cloud load balancers send it) from the first bytes of a connection, for a reactor
// whose read callback sees only the bytes that have arrived so far and must never block.
//
// Parse decides from the bytes in hand whether a whole header is there; only then does it
// hand exactly those bytes to github.com/pires/go-proxyproto, a maintained parser with
// bounded, checked TLV handling, over an in-memory reader, so the parser can never wait
// for the network. It trades a second look at the bytes (ours for the length, the
// library's for the content) for not maintaining a second parser of the format.
//
// # Policy the gateway applies
//
// PROXY protocol is opt-in per listener. On such a listener:
//
//   - From a source address in the listener's Trusted networks the header is required:
//     the connection is served only once Parse has returned a header, and is closed if no
//     whole header arrives within HeaderTimeout of the accept, or if Parse returns an
//     error (ErrNotProxy included). A header with Local set (a v2 LOCAL command, such as
//     a load balancer's health check, or a v1 UNKNOWN line) means the connection is
//     served with its socket's own address. Otherwise Header.Source is the client
//     address that limits, logs, presence and the Authenticator see.
//   - From any other source, a connection whose first bytes Looks reports as a PROXY
//     header is refused (closed); otherwise it is served with its socket address and its
//     bytes are not touched.
//
// A listener without PROXY enabled never calls this package.
//
// # Concurrency
//
// Every function is pure: Parse, Looks and the methods of Trusted may be called from any
// goroutine at once. Trusted is immutable after ParseTrusted.
package proxyhdr

import "time"

// HeaderTimeout is how long after the accept a connection from a trusted source has to
// deliver its whole PROXY header before the gateway closes it (EMQX uses the same 3 s).
const HeaderTimeout = 3 * time.Second
