package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/tether-gw/tether/internal/proxyhdr"
	"github.com/tether-gw/tether/internal/wsproto"
)

// WebSocketOptions configures the WS and WSS listeners (wslink.go).
type WebSocketOptions struct {
	// Path is the request path that upgrades; any other path gets 404. Default "/ws".
	Path string
	// Origins is the Origin allow-list: exact origins ("https://app.example.com") or
	// "*" for any. Empty (the default): a request with an Origin header must be
	// same-origin (its host equals the Host header); one without (not a browser) is
	// accepted. A refused origin gets 403.
	Origins []string
	// Compression accepts permessage-deflate (without context takeover) when a client
	// offers it: the client's compressed messages are inflated (up to 1 MiB each); the
	// server's own messages go uncompressed. Default false: tether frames are small and
	// binary.
	Compression bool
}

// ProxyOptions enables the PROXY protocol, v1 and v2 (proxylink.go).
type ProxyOptions struct {
	// On lists the listeners that expect a PROXY header. Empty (the default): none.
	On []Transport
	// Trusted is the comma-separated list of networks ("10.0.0.0/8,127.0.0.1") whose
	// connections to those listeners must start with a PROXY header, within 3s of the
	// accept; the client address it carries is what limits, logs, presence and the
	// Authenticator see. A connection from anywhere else is served with its socket
	// address, and refused if it sends a PROXY header. Required when On is not empty.
	Trusted string
}

// on reports whether the listener for t expects PROXY headers.
func (p ProxyOptions) on(t Transport) bool { return slices.Contains(p.On, t) }

// Defaults of the transport options.
const (
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultMaxTLSHandshakes  = 64
	DefaultTLSHandshakeQueue = 1024
	DefaultTLSIdleAfter      = 5 * time.Second
	DefaultWebSocketPath     = wsproto.DefaultPath
	// WebSocketSubprotocol is the subprotocol the WebSocket listeners select when a
	// client offers it.
	WebSocketSubprotocol = wsproto.DefaultSubprotocol
)

// proxyHeaderTimeout bounds the wait for a PROXY header (EMQX uses the same 3 s).
const proxyHeaderTimeout = proxyhdr.HeaderTimeout

// ErrNoTLSConfig is returned by New when a TLS or WSS listener is configured without
// Options.TLS.
var ErrNoTLSConfig = errors.New("server: a TLS or WSS listener needs Options.TLS (a certificate)")

// transportDefaults fills in and checks the transport options.
func (o *Options) transportDefaults() error {
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxTLSHandshakes == 0 {
		o.MaxTLSHandshakes = DefaultMaxTLSHandshakes
	}
	if o.TLSHandshakeCPUs == 0 {
		o.TLSHandshakeCPUs = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.TLSIdleAfter == 0 {
		o.TLSIdleAfter = DefaultTLSIdleAfter
	}
	if o.TLSHandshakeQueue == 0 {
		o.TLSHandshakeQueue = DefaultTLSHandshakeQueue
	}
	if o.WebSocket.Path == "" {
		o.WebSocket.Path = DefaultWebSocketPath
	}
	switch {
	case o.HandshakeTimeout < 0 || o.MaxTLSHandshakes < 0 || o.TLSHandshakeQueue < 0 || o.TLSHandshakeCPUs < 0:
		return errors.New("server: handshake timeout, TLS handshakes, TLS handshake queue and TLS handshake CPUs must not be negative")
	case (o.TLSAddr != "" || o.WSSAddr != "") && o.TLS == nil:
		return ErrNoTLSConfig
	case o.TLS != nil && o.TLS.Certificates == nil && o.TLS.GetCertificate == nil && o.TLS.GetConfigForClient == nil:
		return fmt.Errorf("%w: it has no certificate", ErrNoTLSConfig)
	case o.WebSocket.Path[0] != '/':
		return fmt.Errorf("server: WebSocket path %q must start with /", o.WebSocket.Path)
	}
	if o.TLS != nil && o.TLS.MinVersion != 0 && o.TLS.MinVersion < tls.VersionTLS12 {
		return errors.New("server: TLS below 1.2 is not supported (Options.TLS.MinVersion)")
	}
	if len(o.Proxy.On) > 0 {
		t, err := proxyhdr.ParseTrusted(o.Proxy.Trusted)
		if err != nil {
			return fmt.Errorf("server: proxy trusted networks: %w", err)
		}
		if t.Empty() {
			return errors.New("server: PROXY protocol is on but no trusted network is given (Options.Proxy.Trusted)")
		}
		o.proxyTrusted = t
	}
	o.wsUpgrade = wsproto.UpgradeConfig{
		Path:           o.WebSocket.Path,
		Subprotocol:    WebSocketSubprotocol,
		AllowedOrigins: o.WebSocket.Origins,
		Compression:    o.WebSocket.Compression,
	}
	return nil
}
