package kit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gobwas/ws"
)

// Transport names how a bench client reaches a server: the values of every tool's
// -transport flag.
type Transport string

// Transports.
const (
	// TransportTCP is tether's framing on plain TCP.
	TransportTCP Transport = "tcp"
	// TransportTLS is tether's framing inside TLS.
	TransportTLS Transport = "tls"
	// TransportWS is tether frames in binary WebSocket messages over plain TCP.
	TransportWS Transport = "ws"
	// TransportWSS is tether frames in binary WebSocket messages inside TLS.
	TransportWSS Transport = "wss"
)

// Transports lists every transport, raw TCP first (the one the others are compared
// with).
var Transports = []Transport{TransportTCP, TransportTLS, TransportWS, TransportWSS}

// ErrTransport is returned for a transport name that is none of Transports.
var ErrTransport = errors.New("kit: unknown transport (want tcp, tls, ws or wss)")

// ParseTransport returns the transport named s; "" means TransportTCP.
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(s); t {
	case "":
		return TransportTCP, nil
	case TransportTCP, TransportTLS, TransportWS, TransportWSS:
		return t, nil
	}
	return "", fmt.Errorf("%w: %q", ErrTransport, s)
}

// Or returns t, or TransportTCP when t is empty.
func (t Transport) Or() Transport {
	if t == "" {
		return TransportTCP
	}
	return t
}

// Secure reports whether t runs inside TLS.
func (t Transport) Secure() bool { return t == TransportTLS || t == TransportWSS }

// WebSocket reports whether t carries tether in WebSocket messages.
func (t Transport) WebSocket() bool { return t == TransportWS || t == TransportWSS }

// ClientTransport says how a bench client dials a server. The zero value is raw TCP.
type ClientTransport struct {
	// Transport is the transport. Default TransportTCP.
	Transport Transport
	// CAFile is a PEM file with the certificate authority (or the self-signed
	// certificate) that the server's certificate must chain to, for tls and wss.
	// Default: none, which requires Insecure.
	CAFile string
	// Insecure skips verifying the server's certificate, for tls and wss.
	Insecure bool
	// WSPath is the WebSocket endpoint's path, for ws and wss. Default WSPath.
	WSPath string
}

// TransportDialer dials a server over one transport. Its methods are safe for
// concurrent use.
type TransportDialer struct {
	nd        *net.Dialer
	transport Transport
	tls       *tls.Config
	path      string
}

// NewDialer returns the dialer for ct, whose TCP connections nd makes. It reads
// CAFile now, once, so that thousands of dials do not.
func (ct ClientTransport) NewDialer(nd *net.Dialer) (*TransportDialer, error) {
	d := &TransportDialer{nd: nd, transport: ct.Transport.Or(), path: ct.WSPath}
	if d.path == "" {
		d.path = WSPath
	}
	if _, err := ParseTransport(string(d.transport)); err != nil {
		return nil, err
	}
	if !d.transport.Secure() {
		return d, nil
	}
	// No session cache: every connection pays a full handshake, which is what a
	// handshake rate is meant to show.
	d.tls = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: ct.Insecure}
	switch {
	case ct.CAFile != "":
		pem, err := os.ReadFile(ct.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in CA file %s", ct.CAFile)
		}
		d.tls.RootCAs = pool
	case !ct.Insecure:
		return nil, errors.New("kit: tls and wss need a CA file or insecure mode")
	}
	return d, nil
}

// Transport returns the dialer's transport.
func (d *TransportDialer) Transport() Transport { return d.transport }

// Dial connects to addr (host:port) and completes the transport's handshake: the
// TLS handshake for tls, the WebSocket upgrade offering WSSubprotocol (after the
// TLS handshake for wss). The connection it returns carries tether's byte stream
// whatever the transport.
func (d *TransportDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	switch d.transport {
	case TransportTCP:
		return d.nd.DialContext(ctx, "tcp", addr)
	case TransportTLS:
		nc, err := d.nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(nc, d.tlsConfig(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = CloseReset(nc)
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		return tc, nil
	}
	scheme := "ws"
	if d.transport == TransportWSS {
		scheme = "wss"
	}
	var raw net.Conn
	wd := ws.Dialer{
		Protocols: []string{WSSubprotocol},
		NetDial: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := d.nd.DialContext(ctx, network, a)
			raw = c
			return c, err
		},
		TLSConfig: d.tls,
	}
	c, br, hs, err := wd.Dial(ctx, scheme+"://"+addr+d.path)
	if err != nil {
		if raw != nil {
			_ = CloseReset(raw)
		}
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	if hs.Protocol != WSSubprotocol && hs.Protocol != "" { // none selected is what a browser accepts too
		_ = CloseReset(raw)
		return nil, fmt.Errorf("websocket upgrade: server selected subprotocol %q, want %q", hs.Protocol, WSSubprotocol)
	}
	// A buffered reader: the client's memory is not measured, its read calls are.
	if br == nil {
		br = bufio.NewReaderSize(c, 4096)
	}
	return &wsClientConn{NewWSConn(c, br, true), raw}, nil
}

// tlsConfig returns the client configuration for addr, with the host as the name
// the certificate must carry.
func (d *TransportDialer) tlsConfig(addr string) *tls.Config {
	c := d.tls.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	}
	return c
}

// wsClientConn remembers the TCP connection under a WebSocket one, so that
// CloseReset can reset it.
type wsClientConn struct {
	*WSConn
	raw net.Conn
}

// TCP returns the TCP connection under c (c itself when it is one), for
// CloseReset.
func TCP(c net.Conn) net.Conn {
	switch x := c.(type) {
	case *tls.Conn:
		return x.NetConn()
	case *wsClientConn:
		return x.raw
	}
	return c
}

// Cert is a certificate and key in PEM files.
type Cert struct {
	CertFile, KeyFile string
}

// SelfSignedCert writes a fresh self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1 and localhost, valid for a day, and its key into dir (cert.pem, key.pem).
// The certificate is its own CA: a client trusts it with CAFile = CertFile.
func SelfSignedCert(dir string) (Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Cert{}, fmt.Errorf("cannot generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return Cert{}, fmt.Errorf("cannot generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tether-bench"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Cert{}, fmt.Errorf("cannot create certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Cert{}, fmt.Errorf("cannot encode key: %w", err)
	}
	c := Cert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return Cert{}, fmt.Errorf("cannot write certificate: %w", err)
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return Cert{}, fmt.Errorf("cannot write key: %w", err)
	}
	return c, nil
}

// ServerTLS returns the server configuration of the bench's TLS baselines for c:
// TLS 1.2 minimum, as tetherd's.
func (c Cert) ServerTLS() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// Listen listens on addr for transport t: TCP, wrapped in TLS (tls, wss) with
// cert's configuration and in WSListener (ws, wss). Handshakes and upgrades happen
// on each connection's first use, in whatever goroutine serves it.
func Listen(t Transport, addr string, cert Cert) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	if t.Secure() {
		cfg, err := cert.ServerTLS()
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, cfg)
	}
	if t.WebSocket() {
		ln = WSListener(ln)
	}
	return ln, nil
}
