package proxyhdr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

const (
	// MaxV1Len is the longest v1 header line, CRLF included, that the specification
	// allows ("PROXY UNKNOWN" with two full IPv6 addresses and ports).
	MaxV1Len = 107

	// MaxV2Payload is the largest v2 length field accepted: the bytes after the fixed
	// 16-byte prefix (addresses and TLVs). It matches go-proxyproto's default limit and
	// leaves room for a client certificate TLV (1-2 KB) beside the others.
	MaxV2Payload = 4096

	v2Fixed = 16 // signature (12), version/command, family/protocol, length (2)
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Header is what a PROXY header says about the connection.
type Header struct {
	// Version is 1 (text) or 2 (binary).
	Version int
	// Local is set when the header carries no client address to use: a v2 LOCAL command
	// (a balancer's own connection, such as a health check), a v1 UNKNOWN line, or a v2
	// unspecified or AF_UNIX family. The connection is then served with its socket's own
	// address, and Source and Dest are zero.
	Local bool
	// Source is the client's address and port as the balancer saw them. An IPv4-mapped
	// IPv6 address is reported as the IPv4 address it carries.
	Source netip.AddrPort
	// Dest is the address and port the client connected to (the balancer's frontend).
	Dest netip.AddrPort

	// ALPN is the protocol the client negotiated with a TLS-terminating balancer (v2
	// PP2_TYPE_ALPN), or "".
	ALPN string
	// Authority is the host name the client asked for, usually its TLS SNI (v2
	// PP2_TYPE_AUTHORITY), or "".
	Authority string
	// SSL is what a TLS-terminating balancer reports about the client's TLS (v2
	// PP2_TYPE_SSL); its Present is false when no such TLV was sent.
	SSL SSL
}

// SSL is the typed view of the v2 PP2_TYPE_SSL TLV.
type SSL struct {
	// Present is set when the header carried the TLV; every other field is zero if not.
	Present bool
	// ClientTLS is set when the client reached the balancer over TLS.
	ClientTLS bool
	// ClientCert is set when the client presented a certificate (on this connection or
	// in the TLS session it resumed).
	ClientCert bool
	// Verified is set when the client presented a certificate and the balancer verified
	// it.
	Verified bool
	// Version is the TLS version, such as "TLSv1.3", or "".
	Version string
	// Cipher is the cipher suite's name, such as "TLS_AES_256_GCM_SHA384", or "".
	Cipher string
	// CN is the common name of the client certificate's subject, or "".
	CN string
}

// Parse looks at buf, the connection's first bytes, for a PROXY header (v1 or v2).
//
// n == 0 && err == nil means the bytes so far are a header's beginning: call Parse again
// once more bytes have arrived, with all of them. Otherwise, with err == nil, the first n
// bytes of buf are the header, which the caller skips; the bytes after it belong to the
// application protocol. Errors: ErrNotProxy when buf does not start with a PROXY
// signature, ErrTooLong when the header would exceed MaxV1Len or MaxV2Payload, and
// ErrMalformed wrapping the parser's reason when the header is invalid. Parse never
// blocks, does not retain buf, and allocates only for a whole header.
func Parse(buf []byte) (h Header, n int, err error) {
	n, err = headerLen(buf)
	if n == 0 || err != nil {
		return Header{}, 0, err
	}
	// The reader is sized to hold the whole header, so go-proxyproto's v1 parser, which
	// refuses a line its first fill did not buffer, sees it all at once.
	br := bufio.NewReaderSize(bytes.NewReader(buf[:n]), n)
	ph, err := proxyproto.Read(br)
	if err != nil {
		return Header{}, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if br.Buffered() != 0 {
		return Header{}, 0, fmt.Errorf("%w: %d bytes of the header left unread", ErrMalformed, br.Buffered())
	}
	h, err = convert(ph)
	if err != nil {
		return Header{}, 0, err
	}
	return h, n, nil
}

// headerLen returns the length of the header at the start of buf, 0 if buf holds only
// its beginning so far, or the error that decides without waiting for more.
func headerLen(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case sigV1[0]:
		return v1Len(buf)
	case sigV2[0]:
		return v2Len(buf)
	}
	return 0, ErrNotProxy
}

// v1Len finds the CRLF-terminated line within MaxV1Len bytes.
func v1Len(buf []byte) (int, error) {
	if !prefixMatch(buf, sigV1) {
		return 0, ErrNotProxy
	}
	if len(buf) < len(sigV1) {
		return 0, nil
	}
	if i := bytes.IndexByte(buf[:min(len(buf), MaxV1Len)], '\n'); i >= 0 {
		return i + 1, nil // the parser checks the CR before it
	}
	if len(buf) >= MaxV1Len {
		return 0, fmt.Errorf("%w: no CRLF within %d bytes of a v1 header", ErrTooLong, MaxV1Len)
	}
	return 0, nil
}

// v2Len reads the fixed 16-byte prefix and its length field.
func v2Len(buf []byte) (int, error) {
	if !prefixMatch(buf, sigV2) {
		return 0, ErrNotProxy
	}
	if len(buf) <= len(sigV2) {
		return 0, nil
	}
	// Version 2 in the high nibble, command LOCAL (0) or PROXY (1) in the low one:
	// decided now, so a bad header need not be waited for.
	if vc := buf[len(sigV2)]; vc>>4 != 2 || vc&0x0f > 1 {
		return 0, fmt.Errorf("%w: v2 version/command byte %#02x", ErrMalformed, vc)
	}
	if len(buf) < v2Fixed {
		return 0, nil
	}
	payload := int(binary.BigEndian.Uint16(buf[14:16]))
	if payload > MaxV2Payload {
		return 0, fmt.Errorf("%w: v2 header declares %d bytes, at most %d accepted", ErrTooLong, payload, MaxV2Payload)
	}
	if len(buf) < v2Fixed+payload {
		return 0, nil
	}
	return v2Fixed + payload, nil
}

// prefixMatch reports whether buf and sig agree on their common length.
func prefixMatch(buf, sig []byte) bool {
	k := min(len(buf), len(sig))
	return bytes.Equal(buf[:k], sig[:k])
}

// Looks reports whether buf could be the start of a PROXY header: buf and the v1 or the
// v2 signature agree on their common length. A listener that does not expect a header
// from the connection's source refuses the connection when Looks is true. The first byte
// already decides against the gateway's own protocols (a tether frame's u32 length, a
// TLS record, an HTTP request line), so one byte is enough to call it with; an empty buf
// is the prefix of anything and gives true.
func Looks(buf []byte) bool {
	return prefixMatch(buf, sigV1) || prefixMatch(buf, sigV2)
}

// convert maps go-proxyproto's header onto ours, decoding the TLVs we use.
func convert(ph *proxyproto.Header) (Header, error) {
	h := Header{Version: int(ph.Version)}
	switch {
	case ph.Command.IsLocal(), ph.TransportProtocol == proxyproto.UNSPEC, ph.TransportProtocol.IsUnix():
		h.Local = true
	case ph.TransportProtocol.IsStream():
		src, sok := ph.SourceAddr.(*net.TCPAddr)
		dst, dok := ph.DestinationAddr.(*net.TCPAddr)
		if !sok || !dok {
			return Header{}, fmt.Errorf("%w: no TCP addresses", ErrMalformed)
		}
		h.Source = tcpAddrPort(src)
		h.Dest = tcpAddrPort(dst)
		if !h.Source.IsValid() || !h.Dest.IsValid() {
			return Header{}, fmt.Errorf("%w: invalid addresses", ErrMalformed)
		}
	default:
		return Header{}, fmt.Errorf("%w: datagram family %#02x on a stream connection", ErrMalformed, byte(ph.TransportProtocol))
	}
	if h.Version == 2 {
		if err := h.decodeTLVs(ph); err != nil {
			return Header{}, err
		}
	}
	return h, nil
}

// tcpAddrPort converts with IPv4-mapped addresses unmapped; an invalid IP gives the zero
// AddrPort.
func tcpAddrPort(a *net.TCPAddr) netip.AddrPort {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok || a.Port < 0 || a.Port > 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}

// decodeTLVs fills ALPN, Authority and SSL; other TLVs are ignored.
func (h *Header) decodeTLVs(ph *proxyproto.Header) error {
	tlvs, err := ph.TLVs()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, t := range tlvs {
		switch t.Type {
		case proxyproto.PP2_TYPE_ALPN:
			h.ALPN = string(t.Value)
		case proxyproto.PP2_TYPE_AUTHORITY:
			h.Authority = string(t.Value)
		case proxyproto.PP2_TYPE_SSL:
			s, err := tlvparse.SSL(t)
			if err != nil {
				return fmt.Errorf("%w: SSL TLV: %w", ErrMalformed, err)
			}
			h.SSL = SSL{
				Present:    true,
				ClientTLS:  s.ClientSSL(),
				ClientCert: s.ClientCertConn() || s.ClientCertSess(),
				Verified:   (s.ClientCertConn() || s.ClientCertSess()) && s.Verified(),
			}
			h.SSL.Version, _ = s.SSLVersion()
			h.SSL.Cipher, _ = s.SSLCipher()
			h.SSL.CN, _ = s.ClientCN()
		}
	}
	return nil
}
