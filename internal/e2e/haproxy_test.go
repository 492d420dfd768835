package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The tests in this file put a real haproxy (testkit.HAProxy) in front of the gateway,
// as docs/DEPLOY.md tells operators to: TCP passthrough with PROXY v2 to the raw TCP
// listener, TLS terminated at haproxy with PROXY v2 to the plaintext listener, and two
// tetherd processes balanced with health checks on /readyz, one of them drained. haproxy
// connects from 127.0.0.1, the only trusted network; clients dial from other loopback
// addresses (127.0.0.5, 127.0.0.6), so the address the gateway reports can only be the
// client's if it came from the PROXY header.

// proxyTrusted is the trusted network of every test here: haproxy's own source.
const proxyTrusted = "127.0.0.1/32"

// authRecorder is an Authenticator that accepts like testAuth and records the
// RemoteAddr of every AuthRequest by token.
type authRecorder struct {
	mu    sync.Mutex
	addrs map[string]net.Addr
}

func (a *authRecorder) Authenticate(ctx context.Context, req server.AuthRequest) (server.Identity, error) {
	a.mu.Lock()
	if a.addrs == nil {
		a.addrs = make(map[string]net.Addr)
	}
	a.addrs[req.Token] = req.RemoteAddr
	a.mu.Unlock()
	return testAuth(ctx, req)
}

// addr returns the RemoteAddr the Authenticator saw for token, or nil.
func (a *authRecorder) addr(token string) net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addrs[token]
}

// fromSource returns a client Dialer that connects from the loopback address src (any
// port), so that the client's address differs from haproxy's 127.0.0.1.
func fromSource(src string) func(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}

// hostOf returns the IP of a *net.TCPAddr (or any addr "host:port"), or "" for nil.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	return ap.Addr().Unmap().String()
}

// wantCarried requires that both the Authenticator and the server-side connection of
// user saw src as the client's address.
func wantCarried(t *testing.T, g *gateway, auth *authRecorder, token, user, src string) {
	t.Helper()
	if got := hostOf(auth.addr(token)); got != src {
		t.Fatalf("Authenticator saw RemoteAddr %v for %s, want %s (the PROXY header's source)", auth.addr(token), token, src)
	}
	conns := g.srv.UserConns(user)
	if len(conns) != 1 {
		t.Fatalf("%s has %d connections, want 1", user, len(conns))
	}
	if got := hostOf(conns[0].RemoteAddr()); got != src {
		t.Fatalf("Conn.RemoteAddr() = %v for %s, want %s", conns[0].RemoteAddr(), user, src)
	}
}

// proxyGateway starts a gateway whose raw TCP listener takes PROXY headers from
// haproxy, with auth as its Authenticator and mutate (may be nil) applied after.
func proxyGateway(t *testing.T, auth server.Authenticator, mutate func(o *server.Options)) *gateway {
	t.Helper()
	return startGateway(t, func(o *server.Options) {
		o.Authenticator = auth
		o.Proxy = server.ProxyOptions{On: []server.Transport{server.TransportTCP}, Trusted: proxyTrusted}
		if mutate != nil {
			mutate(o)
		}
	}, nil)
}

// haproxyClient connects a client for user (token user#device) through the haproxy
// frontend at addr with dialer, and waits until the gateway has its connection.
func haproxyClient(t *testing.T, g *gateway, addr, user, device string, dialer func(context.Context, string) (net.Conn, error)) *client.Client {
	t.Helper()
	c := dial(t, addr, client.Options{Token: user + "#" + device, DeviceID: device, NoReconnect: true, Dialer: dialer})
	id := c.ConnID()
	testkit.WaitFor(t, user+"'s connection on the gateway", func() bool {
		for _, cc := range g.srv.UserConns(user) {
			if cc.ID() == id {
				return true
			}
		}
		return false
	})
	return c
}

// TestHAProxyPassthroughProxyV2: haproxy in mode tcp with send-proxy-v2 in front of the
// raw TCP listener. The client's source address (127.0.0.5, not haproxy's 127.0.0.1)
// reaches the Authenticator and Conn.RemoteAddr, a push reaches the client, and the
// per-IP limit counts carried addresses: with MaxConnsPerIP 1, a second source through
// the same haproxy gets in, a second client from the same source is refused
// RATE_LIMITED until the first has left.
func TestHAProxyPassthroughProxyV2(t *testing.T) {
	auth := &authRecorder{}
	g := proxyGateway(t, auth, func(o *server.Options) { o.MaxConnsPerIP = 1 })
	port := testkit.FreePort(t)
	testkit.HAProxy(t, fmt.Sprintf(`frontend tether
    bind 127.0.0.1:%d
    default_backend tether

backend tether
    server gw %s send-proxy-v2
`, port, g.srv.Addr()), port)
	fe := testkit.HAProxyAddr(port)

	a := haproxyClient(t, g, fe, "alice", "a", fromSource("127.0.0.5"))
	wantCarried(t, g, auth, "alice#a", "alice", "127.0.0.5")
	if _, err := g.srv.PushUsers([]string{"alice"}, []byte("through haproxy"), server.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, a); string(p.Payload) != "through haproxy" {
		t.Fatalf("push %q", p.Payload)
	}

	// Another source through the same haproxy (the same balancer address): admitted.
	haproxyClient(t, g, fe, "bob", "b", fromSource("127.0.0.6"))
	wantCarried(t, g, auth, "bob#b", "bob", "127.0.0.6")

	// A second connection from 127.0.0.5: over its limit of one.
	_, err := client.Dial(testkit.Context(t, waitTimeout), fe, client.Options{
		Token: "carol#c", DeviceID: "c", NoReconnect: true, Dialer: fromSource("127.0.0.5"),
	})
	if !closeCode(protocol.CloseRateLimited)(err) {
		t.Fatalf("second client from 127.0.0.5: %v, want CLOSE RATE_LIMITED", err)
	}
	if n := len(g.srv.UserConns("carol")); n != 0 {
		t.Fatalf("carol has %d connections", n)
	}
	if a.State() != client.StateConnected {
		t.Fatalf("alice is %v after carol's refusal", a.State())
	}

	// Once alice has left, her address's slot is free again: the limit released the
	// carried address, not haproxy's.
	a.Close()
	testkit.WaitFor(t, "alice gone", func() bool { return len(g.srv.UserConns("alice")) == 0 })
	haproxyClient(t, g, fe, "carol", "c", fromSource("127.0.0.5"))
	wantCarried(t, g, auth, "carol#c", "carol", "127.0.0.5")
}

// TestHAProxyTLSTermination: haproxy terminates TLS (a self-signed certificate made
// here) and sends PROXY v2 to the plaintext TCP listener. A Go client speaking TLS to
// haproxy authenticates, gets a push and answers a request end to end, and the gateway
// sees its source address.
func TestHAProxyTLSTermination(t *testing.T) {
	auth := &authRecorder{}
	g := proxyGateway(t, auth, nil)
	pemPath, pool := testkit.ServerPEM(t)
	port := testkit.FreePort(t)
	testkit.HAProxy(t, fmt.Sprintf(`frontend tether_tls
    bind 127.0.0.1:%d ssl crt %s alpn tether.v1
    default_backend tether

backend tether
    server gw %s send-proxy-v2 proxy-v2-options ssl,authority
`, port, pemPath, g.srv.Addr()), port)

	tlsDial := func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{
			NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}},
			Config:    &tls.Config{ServerName: "localhost", RootCAs: pool, NextProtos: []string{"tether.v1"}, MinVersion: tls.VersionTLS12},
		}
		return d.DialContext(ctx, "tcp", addr)
	}
	c := haproxyClient(t, g, testkit.HAProxyAddr(port), "tls-user", "d", tlsDial)
	wantCarried(t, g, auth, "tls-user#d", "tls-user", "127.0.0.5")
	if _, err := g.srv.PushUsers([]string{"tls-user"}, []byte("over TLS at haproxy"), server.PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, c); string(p.Payload) != "over TLS at haproxy" || !p.AckRequested {
		t.Fatalf("push %q (ack requested %v)", p.Payload, p.AckRequested)
	}
	if _, err := c.Ping(testkit.Context(t, waitTimeout)); err != nil {
		t.Fatalf("ping over TLS through haproxy: %v", err)
	}
	// The transport the gateway served is plaintext TCP: TLS ended at haproxy.
	if tr := g.srv.UserConns("tls-user")[0].Transport(); tr != server.TransportTCP {
		t.Fatalf("gateway transport %v, want tcp", tr)
	}
}

// TestHAProxyWSSTermination: the WebSocket shape of docs/DEPLOY.md. haproxy terminates
// TLS for wss:// (mode tcp) and sends PROXY v2 to the plaintext WebSocket listener, which
// does the upgrade; a Go client over wss authenticates and gets a push, and the gateway
// sees its source address on a ws connection.
func TestHAProxyWSSTermination(t *testing.T) {
	auth := &authRecorder{}
	g := startGateway(t, func(o *server.Options) {
		o.Authenticator = auth
		o.WSAddr = "127.0.0.1:0"
		o.Proxy = server.ProxyOptions{On: []server.Transport{server.TransportWS}, Trusted: proxyTrusted}
	}, nil)
	pemPath, _ := testkit.ServerPEM(t)
	port := testkit.FreePort(t)
	testkit.HAProxy(t, fmt.Sprintf(`frontend tether_wss
    bind 127.0.0.1:%d ssl crt %s alpn http/1.1
    default_backend tether_ws

backend tether_ws
    server gw %s send-proxy-v2
`, port, pemPath, g.srv.ListenerAddr(server.TransportWS)), port)
	d, err := kit.ClientTransport{Transport: kit.TransportWSS, CAFile: pemPath}.NewDialer(
		&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := haproxyClient(t, g, testkit.HAProxyAddr(port), "wss-user", "d", d.Dial)
	wantCarried(t, g, auth, "wss-user#d", "wss-user", "127.0.0.5")
	if tr := g.srv.UserConns("wss-user")[0].Transport(); tr != server.TransportWS {
		t.Fatalf("gateway transport %v, want ws", tr)
	}
	if _, err := g.srv.PushUsers([]string{"wss-user"}, []byte("over wss at haproxy"), server.PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, c); string(p.Payload) != "over wss at haproxy" {
		t.Fatalf("push %q", p.Payload)
	}
}

// TestHAProxyPassthroughToTLS: the in-process TLS variant of shape 1 in docs/DEPLOY.md.
// haproxy passes TLS through untouched (mode tcp) and prepends PROXY v2 in clear; the
// gateway's TLS listener reads the header, then does the handshake, and the client's
// source address and the TLS session both reach the Authenticator.
func TestHAProxyPassthroughToTLS(t *testing.T) {
	pemPath, pool := testkit.ServerPEM(t)
	cert, err := tls.LoadX509KeyPair(pemPath, pemPath)
	if err != nil {
		t.Fatal(err)
	}
	var sawTLS sync.Map // token → *server.TLSInfo
	auth := &authRecorder{}
	g := startGateway(t, func(o *server.Options) {
		o.Authenticator = server.AuthenticatorFunc(func(ctx context.Context, req server.AuthRequest) (server.Identity, error) {
			if req.TLS != nil {
				sawTLS.Store(req.Token, req.TLS)
			}
			return auth.Authenticate(ctx, req)
		})
		o.TLSAddr = "127.0.0.1:0"
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"tether.v1"}}
		o.Proxy = server.ProxyOptions{On: []server.Transport{server.TransportTLS}, Trusted: proxyTrusted}
	}, nil)
	port := testkit.FreePort(t)
	testkit.HAProxy(t, fmt.Sprintf(`frontend tether_tls_passthrough
    bind 127.0.0.1:%d
    default_backend tether_tls

backend tether_tls
    server gw %s send-proxy-v2
`, port, g.srv.ListenerAddr(server.TransportTLS)), port)
	tlsDial := func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{
			NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}},
			Config:    &tls.Config{ServerName: "localhost", RootCAs: pool, NextProtos: []string{"tether.v1"}, MinVersion: tls.VersionTLS12},
		}
		return d.DialContext(ctx, "tcp", addr)
	}
	c := haproxyClient(t, g, testkit.HAProxyAddr(port), "tlspass", "d", tlsDial)
	wantCarried(t, g, auth, "tlspass#d", "tlspass", "127.0.0.5")
	v, ok := sawTLS.Load("tlspass#d")
	if !ok {
		t.Fatal("the Authenticator saw no TLS session")
	}
	if info := v.(*server.TLSInfo); info.ServerName != "localhost" || info.NegotiatedProtocol != "tether.v1" {
		t.Fatalf("TLS info %+v, want SNI localhost and ALPN tether.v1", info)
	}
	if _, err := g.srv.PushUsers([]string{"tlspass"}, []byte("end to end TLS"), server.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, c); string(p.Payload) != "end to end TLS" {
		t.Fatalf("push %q", p.Payload)
	}
}
