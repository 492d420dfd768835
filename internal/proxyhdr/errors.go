package proxyhdr

import "errors"

var (
	// ErrNotProxy means the bytes do not start with a PROXY protocol signature. A
	// listener that requires a header refuses the connection; one that does not serves
	// it unchanged.
	ErrNotProxy = errors.New("proxyhdr: not a PROXY protocol header")

	// ErrMalformed means the bytes start with a PROXY signature but the header is
	// invalid; the parser's error is wrapped with it.
	ErrMalformed = errors.New("proxyhdr: malformed PROXY header")

	// ErrTooLong means the header is longer than this package accepts: a v1 line without
	// CRLF within MaxV1Len bytes, or a v2 header declaring more than MaxV2Payload bytes.
	ErrTooLong = errors.New("proxyhdr: PROXY header too long")

	// ErrBadNetwork means an entry of a trusted-network list is neither a CIDR nor an IP
	// address; ParseTrusted wraps it with the entry.
	ErrBadNetwork = errors.New("proxyhdr: bad trusted network")
)
