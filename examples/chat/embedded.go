package main

import (
	"fmt"
	"log/slog"

	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

// embedded is a development gateway run inside the chat process (-embedded): what
// tetherd -dev runs, with its WebSocket listener and control port, so the example is
// one command. The chat service still reaches it through the control port over
// loopback TCP, exactly as it reaches a separate tetherd.
type embedded struct {
	srv  *server.Server
	port *control.Port
}

// startEmbedded starts a gateway with the insecure authenticator (any token is its
// user id) on gwAddr (TCP) and wsAddr (WebSocket, any Origin), and its control port on
// controlAddr (without a secret when secret is empty: loopback only).
func startEmbedded(gwAddr, wsAddr, controlAddr, secret string, logger *slog.Logger) (*embedded, error) {
	gwLog := logger.With("component", "gateway")
	p, err := control.New(control.Options{Addr: controlAddr, Secret: secret, Insecure: secret == "", Logger: gwLog})
	if err != nil {
		return nil, fmt.Errorf("embedded control port: %w", err)
	}
	srv, err := server.New(server.Options{
		Addr: gwAddr, WSAddr: wsAddr, AdminAddr: "-",
		WebSocket:     server.WebSocketOptions{Origins: []string{"*"}},
		Authenticator: server.InsecureAuthenticator{}, Handler: p, Logger: gwLog,
		// Development limits, as tetherd -dev sets them: many tabs from one address.
		MaxConnsPerIP: -1, SourceConnectRate: -1, FlapThreshold: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded gateway: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("embedded gateway: %w", err)
	}
	if err := p.Start(srv); err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded control port: %w", err)
	}
	return &embedded{srv: srv, port: p}, nil
}

// ControlAddr is the control port's address.
func (e *embedded) ControlAddr() string { return e.port.Addr().String() }

// WSAddr is the WebSocket listener's address.
func (e *embedded) WSAddr() string { return e.srv.ListenerAddr(server.TransportWS).String() }

// Close stops the control port, then the gateway (clients get GOAWAY-less closes: it
// is a development gateway).
func (e *embedded) Close() {
	e.port.Close()
	e.srv.Close()
}
