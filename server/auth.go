package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tether-gw/tether/protocol"
)

// AuthRequest is what a client presented in its HELLO frame, plus where it connects from.
// An Authenticator must not retain it after Authenticate returns.
type AuthRequest struct {
	// Token is the credential, e.g. a JWT.
	Token string
	// DeviceID identifies the device (stable across reconnects of one app install).
	DeviceID string
	// Platform is the client's platform, e.g. "ios", "android", "web".
	Platform string
	// ClientVersion is the app's version string, for logs and handlers.
	ClientVersion string
	// RemoteAddr is the client's address: the one its PROXY header carried when it came
	// through a trusted load balancer (Options.Proxy), else the socket's peer.
	RemoteAddr net.Addr
	// Transport is how the connection's bytes travel.
	Transport Transport
	// TLS describes the connection's TLS session, nil unless Transport is TransportTLS
	// or TransportWSS. With client certificates (Options.TLS.ClientAuth) it carries the
	// device's verified certificate chain, so an Authenticator can check that the
	// certificate's identity matches the token, or authenticate by certificate alone.
	TLS *TLSInfo
}

// TLSInfo is what the gateway keeps of a connection's TLS handshake.
type TLSInfo struct {
	// Version and CipherSuite are the negotiated protocol version and cipher suite
	// (crypto/tls constants).
	Version, CipherSuite uint16
	// ServerName is the SNI name the client asked for; NegotiatedProtocol the ALPN
	// protocol agreed, "" if none.
	ServerName, NegotiatedProtocol string
	// PeerCertificates is the client's certificate chain, leaf first, verified against
	// Options.TLS.ClientCAs when ClientAuth asks for verification; nil without one.
	PeerCertificates []*x509.Certificate
}

// Identity is who an authenticated connection belongs to.
type Identity struct {
	// UserID owns the connection; it keys user pushes and the multi-device policy.
	UserID string
	// DeviceID identifies the device; when empty the HELLO's device id is used.
	DeviceID string
	// Platform is the device's platform; when empty the HELLO's platform is used.
	Platform string
	// ExpiresAt, when not zero, is when the credential expires. The gateway announces it
	// in AUTH_OK (and REFRESH_OK), keeps it on the connection (Conn.TokenExpiry), and
	// closes the connection with CloseSessionExpired once it has passed by
	// Options.TokenGrace unless the client sent a REFRESH whose token the Authenticator
	// accepted meanwhile (PROTOCOL.md §6.12). Zero means the connection never expires.
	ExpiresAt time.Time
}

// Authenticator checks a client's credential.
//
// Authenticate checks HELLO tokens and REFRESH tokens alike: for a REFRESH, req carries
// the connection's device, platform, client version and address, and the identity must
// name the connection's user (else the REFRESH is refused with ErrorDenied); only its
// ExpiresAt is used.
//
// Authenticate runs on the worker pool, never on the I/O path, so it may block briefly
// (e.g. call an auth service), but it should honour ctx, which is cancelled when the
// connection's auth deadline passes or the server shuts down. It is called concurrently
// from many goroutines.
//
// A failure should be an *AuthError (or wrap one) so that the client gets the right code;
// any other error is reported as CloseInvalidToken.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (Identity, error)
}

// AuthenticatorFunc adapts a function to the Authenticator interface.
type AuthenticatorFunc func(ctx context.Context, req AuthRequest) (Identity, error)

// Authenticate calls f(ctx, req).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, req AuthRequest) (Identity, error) {
	return f(ctx, req)
}

// AuthError is an authentication failure with the code sent to the client in AUTH_FAIL.
// Codes should be terminal (CloseInvalidToken, CloseTokenExpired, CloseForbidden) so a
// client with a bad token does not reconnect in a loop.
type AuthError struct {
	// Code is sent in AUTH_FAIL.
	Code protocol.CloseCode
	// Reason is a short human-readable explanation sent in AUTH_FAIL; it must not leak
	// secrets.
	Reason string
	// Err is the underlying cause, for logs only; it is not sent to the client.
	Err error
}

// Error implements error.
func (e *AuthError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("server: auth failed (%s): %s: %v", e.Code, e.Reason, e.Err)
	}
	return fmt.Sprintf("server: auth failed (%s): %s", e.Code, e.Reason)
}

// Unwrap returns the underlying cause.
func (e *AuthError) Unwrap() error { return e.Err }

// authFailure maps any Authenticate error to the code and reason sent in AUTH_FAIL.
func authFailure(err error) (protocol.CloseCode, string) {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Code, ae.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return protocol.CloseAuthTimeout, "authentication timed out"
	}
	return protocol.CloseInvalidToken, "invalid token"
}

// InsecureAuthenticator accepts any token and takes it as the user id (or "anonymous"
// when empty). It exists for development and load tests only: it must be enabled
// explicitly (tetherd -dev or -auth=insecure) and the server logs a warning when it is used.
type InsecureAuthenticator struct{}

// Authenticate accepts every request: the token is the user id.
func (InsecureAuthenticator) Authenticate(_ context.Context, req AuthRequest) (Identity, error) {
	uid := req.Token
	if uid == "" {
		uid = "anonymous"
	}
	return Identity{UserID: uid}, nil
}

var _ Authenticator = InsecureAuthenticator{}
var _ Authenticator = AuthenticatorFunc(nil)
