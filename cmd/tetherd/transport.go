package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/server"
)

// transportSettings are the flags of the listeners other than raw TCP, TLS and PROXY.
type transportSettings struct {
	tlsAddr, wsAddr, wssAddr     string
	tlsCert, tlsKey, tlsClientCA string
	tlsClientAuth, tlsALPN       string
	wsPath, wsOrigins            string
	wsCompression                bool
	proxyOn, proxyTrusted        string
	handshakeTimeout             time.Duration
	maxHandshakes, hsQueue       int
	hsCPUs                       int
}

// devWSAddr is the WebSocket listener in -dev mode when -ws-addr is not given, for
// browsers and the TypeScript SDK; loopback only like devAddr.
const devWSAddr = "127.0.0.1:7003"

func addTransportFlags(fs *flag.FlagSet, s *transportSettings) {
	fs.StringVar(&s.tlsAddr, "tls-addr", "", "Address of the TLS client listener (tether frames over TLS); needs -tls-cert and -tls-key. Default off.")
	fs.StringVar(&s.wsAddr, "ws-addr", "", "Address of the WebSocket client listener (ws://HOST"+server.DefaultWebSocketPath+", subprotocol "+server.WebSocketSubprotocol+"). Default off; with -dev "+devWSAddr+".")
	fs.StringVar(&s.wssAddr, "wss-addr", "", "Address of the WebSocket-over-TLS client listener (wss://); needs -tls-cert and -tls-key. Default off.")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM file of the certificate chain for -tls-addr and -wss-addr. Reloaded with -tls-key on SIGHUP; open connections keep theirs.")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM file of the private key of -tls-cert.")
	fs.StringVar(&s.tlsClientCA, "tls-client-ca", "", "PEM file of the CAs that sign device certificates (mTLS). Given, clients must present a certificate they signed (see -tls-client-auth); the Authenticator sees the verified chain.")
	fs.StringVar(&s.tlsClientAuth, "tls-client-auth", "", "With -tls-client-ca: \"require\" a verified client certificate (the default), or \"verify-if-given\".")
	fs.StringVar(&s.tlsALPN, "tls-alpn", server.WebSocketSubprotocol+",http/1.1", "ALPN protocols offered, in order of preference (browsers offer http/1.1 for wss://).")
	fs.StringVar(&s.wsPath, "ws-path", "", "Request path that upgrades to WebSocket; other paths get 404."+def("server.DefaultWebSocketPath", server.DefaultWebSocketPath))
	fs.StringVar(&s.wsOrigins, "ws-origins", "", "Comma-separated Origin allow-list for WebSocket upgrades (exact origins such as https://app.example.com, or * for any). Default: same-origin only for browsers (Origin host equals Host); clients without Origin are accepted. -dev allows any.")
	fs.BoolVar(&s.wsCompression, "ws-compression", false, "Accept permessage-deflate from WebSocket clients (their messages are inflated; the server's go uncompressed).")
	fs.StringVar(&s.proxyOn, "proxy-protocol", "", "Comma-separated listeners (tcp, tls, ws, wss) that take a PROXY protocol v1/v2 header from -proxy-trusted networks, e.g. behind haproxy send-proxy-v2. Default none.")
	fs.StringVar(&s.proxyTrusted, "proxy-trusted", "", "Comma-separated networks (CIDRs or addresses) of the load balancers allowed to send PROXY headers; from them the header is required within 3s, from anyone else it is refused.")
	fs.DurationVar(&s.handshakeTimeout, "handshake-timeout", 0, "Time a connection has for its transport handshake (PROXY header, TLS, WebSocket upgrade) before authentication starts."+def("server.DefaultHandshakeTimeout", server.DefaultHandshakeTimeout))
	fs.IntVar(&s.maxHandshakes, "tls-max-handshakes", 0, "TLS handshakes running at once."+def("server.DefaultMaxTLSHandshakes", server.DefaultMaxTLSHandshakes))
	fs.IntVar(&s.hsCPUs, "tls-handshake-cpus", 0, "TLS handshakes in their CPU-heavy part (key exchange, signature) at once: the CPUs handshakes may take from established connections. Default half of GOMAXPROCS, at least 1.")
	fs.IntVar(&s.hsQueue, "tls-handshake-queue", 0, "Connections that may wait for a TLS handshake slot; more are closed at once."+def("server.DefaultTLSHandshakeQueue", server.DefaultTLSHandshakeQueue))
}

// applyTransport sets the transport options of o from st. It returns the certificate
// store when TLS is configured, for SIGHUP reloads.
func applyTransport(st *settings, o *server.Options, log *slog.Logger) (*certStore, error) {
	t := &st.transportSettings
	o.TLSAddr, o.WSAddr, o.WSSAddr = t.tlsAddr, t.wsAddr, t.wssAddr
	o.HandshakeTimeout, o.MaxTLSHandshakes, o.TLSHandshakeQueue = t.handshakeTimeout, t.maxHandshakes, t.hsQueue
	o.TLSHandshakeCPUs = t.hsCPUs
	o.WebSocket.Path, o.WebSocket.Compression = t.wsPath, t.wsCompression
	if t.wsOrigins != "" {
		o.WebSocket.Origins = splitList(t.wsOrigins)
	}
	if st.dev {
		if o.WSAddr == "" {
			o.WSAddr = devWSAddr
		}
		if o.WebSocket.Origins == nil {
			o.WebSocket.Origins = []string{"*"}
		}
	}
	if o.WSAddr == "-" {
		o.WSAddr = ""
	}
	on, err := server.ParseTransports(t.proxyOn)
	if err != nil {
		return nil, fmt.Errorf("-proxy-protocol: %w", err)
	}
	o.Proxy = server.ProxyOptions{On: on, Trusted: t.proxyTrusted}
	if len(on) > 0 && t.proxyTrusted == "" {
		return nil, errors.New("-proxy-protocol needs -proxy-trusted: the networks of the load balancers that send the headers")
	}
	if t.tlsCert == "" && t.tlsKey == "" {
		if o.TLSAddr != "" || o.WSSAddr != "" {
			return nil, errors.New("-tls-addr and -wss-addr need -tls-cert and -tls-key")
		}
		return nil, nil
	}
	if t.tlsCert == "" || t.tlsKey == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	store := &certStore{certFile: t.tlsCert, keyFile: t.tlsKey, log: log}
	if err := store.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: store.get,
		NextProtos:     splitList(t.tlsALPN),
	}
	if t.tlsClientCA != "" {
		pem, err := os.ReadFile(t.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("cannot read -tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificate in it", t.tlsClientCA)
		}
		cfg.ClientCAs = pool
		switch t.tlsClientAuth {
		case "", "require":
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		case "verify-if-given":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		default:
			return nil, fmt.Errorf("-tls-client-auth %q: want require or verify-if-given", t.tlsClientAuth)
		}
	} else if t.tlsClientAuth != "" {
		return nil, errors.New("-tls-client-auth needs -tls-client-ca")
	}
	o.TLS = cfg
	return store, nil
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// certStore holds the certificate the TLS listeners present, replaced on reload: new
// handshakes get the new one, open connections keep theirs.
type certStore struct {
	certFile, keyFile string
	// certFlag and keyFlag name the files' flags in errors; default -tls-cert, -tls-key.
	certFlag, keyFlag string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
}

// load reads the certificate and key files.
func (c *certStore) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		cf, kf := c.certFlag, c.keyFlag
		if cf == "" {
			cf, kf = "-tls-cert", "-tls-key"
		}
		return fmt.Errorf("cannot load %s %s / %s %s: %w", cf, c.certFile, kf, c.keyFile, err)
	}
	c.cur.Store(&cert)
	return nil
}

// reload is load for SIGHUP: a failure keeps the certificate in use and is logged.
func (c *certStore) reload() {
	if c == nil {
		return
	}
	if err := c.load(); err != nil {
		c.log.Error("certificate reload failed; keeping the one in use", "err", err)
		return
	}
	c.log.Info("certificate reloaded", "cert", c.certFile)
}

func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }
