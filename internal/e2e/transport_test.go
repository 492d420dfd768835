package e2e

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// The transports end to end: every transport into one hub, with the session's behaviour
// (pushes, rooms, QoS1, kicks) whatever the transport, and each transport's bad input.

// allTransports starts a gateway with the four listeners (a self-signed certificate for
// TLS and WSS) and returns it with a dialer per transport.
func allTransports(t *testing.T, mutate func(o *server.Options)) (*gateway, map[server.Transport]func(ctx context.Context, addr string) (net.Conn, error)) {
	t.Helper()
	cert, err := kit.SelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cert.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, func(o *server.Options) {
		o.TLSAddr, o.WSAddr, o.WSSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		o.TLS = cfg
		if mutate != nil {
			mutate(o)
		}
	}, nil)
	dialers := map[server.Transport]func(ctx context.Context, addr string) (net.Conn, error){}
	for tr, kt := range map[server.Transport]kit.Transport{server.TransportTCP: kit.TransportTCP, server.TransportTLS: kit.TransportTLS,
		server.TransportWS: kit.TransportWS, server.TransportWSS: kit.TransportWSS} {
		d, err := kit.ClientTransport{Transport: kt, Insecure: true}.NewDialer(&net.Dialer{})
		if err != nil {
			t.Fatal(err)
		}
		addr := g.srv.ListenerAddr(tr).String()
		dialers[tr] = func(ctx context.Context, _ string) (net.Conn, error) { return d.Dial(ctx, addr) }
	}
	return g, dialers
}

var transports = []server.Transport{server.TransportTCP, server.TransportTLS, server.TransportWS, server.TransportWSS}

// TestTransportsShareOneHub: one user with a device on each transport gets a user push,
// a room broadcast and a QoS1 push on all four, and the server reports each
// connection's transport.
func TestTransportsShareOneHub(t *testing.T) {
	g, dialers := allTransports(t, nil)
	user := userName(t)
	clients := map[server.Transport]*client.Client{}
	for _, tr := range transports {
		c := dial(t, "unused", client.Options{Token: user + "#" + tr.String(), DeviceID: "dev-" + tr.String(), Dialer: dialers[tr], NoReconnect: true})
		if err := c.Subscribe(testkit.Context(t, waitTimeout), "mixed"); err != nil {
			t.Fatalf("%s: subscribe: %v", tr, err)
		}
		clients[tr] = c
	}
	testkit.WaitFor(t, "four connections", func() bool { return len(g.srv.UserConns(user)) == 4 })
	seen := map[server.Transport]bool{}
	for _, sc := range g.srv.UserConns(user) {
		seen[sc.Transport()] = true
	}
	if len(seen) != 4 {
		t.Fatalf("server-side transports = %v, want all four", seen)
	}

	if n, err := g.srv.PushUser(user, []byte("to-user")); err != nil || n != 4 {
		t.Fatalf("PushUser = %d, %v; want 4", n, err)
	}
	if n, err := g.srv.PushRoom("mixed", []byte("to-room")); err != nil || n != 4 {
		t.Fatalf("PushRoom = %d, %v; want 4", n, err)
	}
	if _, err := g.srv.PushUsers([]string{user}, []byte("qos1"), server.PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	for _, tr := range transports {
		c := clients[tr]
		for _, want := range []string{"to-user", "to-room", "qos1"} {
			p := nextPush(t, c)
			if string(p.Payload) != want {
				t.Fatalf("%s: push %q, want %q", tr, p.Payload, want)
			}
			if want == "qos1" && !p.AckRequested {
				t.Fatalf("%s: QoS1 push without ACK_REQUESTED", tr)
			}
		}
	}
	for _, tr := range transports {
		for _, name := range []string{fmt.Sprintf(`tether_transport_connections{transport=%q}`, tr.String()),
			fmt.Sprintf(`tether_transport_connections_total{transport=%q}`, tr.String())} {
			if v := g.serverMetric(name); v != 1 {
				t.Errorf("%s = %v, want 1", name, v)
			}
		}
	}
	// The transport series are documented and well-formed (promtool).
	var m strings.Builder
	g.srv.WriteMetrics(&m)
	testkit.Promtool(t, m.String())
}

// TestTransportsKickAndResume: a kick reaches every transport's client as its close code,
// and a QoS1 push sent while a WSS device was away is replayed when it comes back.
func TestTransportsKickAndResume(t *testing.T) {
	g, dialers := allTransports(t, nil)
	for _, tr := range transports {
		user := userName(t) + "-" + tr.String()
		var states testkit.Transitions[client.State]
		c := dial(t, "unused", client.Options{Token: user, DeviceID: "d", Dialer: dialers[tr], OnStateChange: states.Record})
		testkit.WaitFor(t, "connected", func() bool { return len(g.srv.UserConns(user)) == 1 })
		g.srv.KickUser(user, protocol.CloseKicked, "bye")
		testkit.WaitFor(t, tr.String()+" client closed", func() bool { return c.State() == client.StateClosed })
		if _, ok := states.Find(client.StateClosed, closeCode(protocol.CloseKicked)); !ok {
			t.Fatalf("%s: no close with KICKED (a terminal code): %s", tr, states.Dump())
		}
	}

	user := userName(t) + "-resume"
	o := client.Options{Token: user, DeviceID: "phone", Dialer: dialers[server.TransportWSS], NoReconnect: true}
	c := dial(t, "unused", o)
	if _, err := g.srv.PushUsers([]string{user}, []byte("first"), server.PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, c); string(p.Payload) != "first" {
		t.Fatalf("push %q", p.Payload)
	}
	epoch, last := c.Cursor()
	c.Close()
	testkit.WaitFor(t, "gone", func() bool { return len(g.srv.UserConns(user)) == 0 })
	if _, err := g.srv.PushUsers([]string{user}, []byte("while-away"), server.PushOptions{QoS1: true}); err != nil {
		t.Fatal(err)
	}
	o.ResumeEpoch, o.ResumeLastID = epoch, last
	c2 := dial(t, "unused", o)
	// "first" may come again (at least once: the client may have closed before its
	// ACK left), but "while-away" must come.
	for {
		p := nextPush(t, c2)
		if string(p.Payload) == "while-away" {
			break
		}
		if string(p.Payload) != "first" {
			t.Fatalf("after resume: push %q, want while-away", p.Payload)
		}
	}
}

// TestTLSClientCertificateReachesAuthenticator: with client certificates required, the
// Authenticator sees the verified chain (and ALPN), and a client without one is refused
// in the handshake while other connections are unaffected.
func TestTLSClientCertificateReachesAuthenticator(t *testing.T) {
	ca := testkit.NewCA(t)
	serverCert := ca.Issue(t, "localhost", true)
	var mu sync.Mutex
	var got server.AuthRequest
	g := startGateway(t, func(o *server.Options) {
		o.TLSAddr = "127.0.0.1:0"
		o.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: ca.Pool(), NextProtos: []string{"tether.v1"}}
		o.Authenticator = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
			mu.Lock()
			got = req
			mu.Unlock()
			if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
				return server.Identity{}, &server.AuthError{Code: protocol.CloseForbidden, Reason: "no certificate"}
			}
			return server.Identity{UserID: req.TLS.PeerCertificates[0].Subject.CommonName}, nil
		})
	}, nil)
	addr := g.srv.ListenerAddr(server.TransportTLS).String()
	device := ca.Issue(t, "device-7", false)
	tlsDial := func(certs []tls.Certificate) func(ctx context.Context, _ string) (net.Conn, error) {
		return func(ctx context.Context, _ string) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: certs, NextProtos: []string{"tether.v1"}}}
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	c := dial(t, addr, client.Options{Token: "ignored", NoReconnect: true,
		TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{device}, NextProtos: []string{"tether.v1"}}})
	if c.UserID() != "device-7" {
		t.Fatalf("user %q, want device-7 from the certificate", c.UserID())
	}
	mu.Lock()
	req := got
	mu.Unlock()
	if req.Transport != server.TransportTLS || req.TLS.NegotiatedProtocol != "tether.v1" || req.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("auth request transport %v, TLS %+v", req.Transport, req.TLS)
	}

	_, err := client.Dial(testkit.Context(t, waitTimeout), "unused", client.Options{Token: "x", Dialer: tlsDial(nil), NoReconnect: true})
	if err == nil {
		t.Fatal("a client without a certificate authenticated")
	}
	if _, err := c.Ping(testkit.Context(t, waitTimeout)); err != nil {
		t.Fatalf("the certified client after the refusal: %v", err)
	}
}

// TestTLSBacklogStaysInOrder: pushes to a TLS client that stops reading go to the
// backlog, and when it reads again every one decrypts, in order: the flusher seals
// queued frames in sequence.
func TestTLSBacklogStaysInOrder(t *testing.T) {
	g, dialers := allTransports(t, func(o *server.Options) { o.MaxOutboundBytes = 64 << 20 })
	for _, tr := range []server.Transport{server.TransportTLS, server.TransportWSS} {
		user := userName(t) + "-" + tr.String()
		nc, err := dialers[tr](testkit.Context(t, waitTimeout), "")
		if err != nil {
			t.Fatal(err)
		}
		fc := testkit.NewFrameConn(t, nc)
		hello, _ := (&protocol.Hello{Token: user}).AppendFrame(nil, 1, 0)
		fc.Write(hello)
		if f, err := fc.Next(waitTimeout); err != nil || f.Op != protocol.OpAuthOK {
			t.Fatalf("%s: auth: %v %v", tr, f.Op, err)
		}
		before := g.serverMetric("tether_write_backlogs_total")
		payload := make([]byte, 8<<10)
		const n = 1500 // 12 MB: more than loopback's socket buffers hold
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(payload, uint32(i))
			if _, err := g.srv.PushUser(user, payload); err != nil {
				t.Fatalf("%s: push %d: %v", tr, i, err)
			}
		}
		if g.serverMetric("tether_write_backlogs_total") <= before {
			t.Fatalf("%s: no backlog: the test did not exercise the flusher", tr)
		}
		for i := 0; i < n; i++ {
			f, err := fc.Next(waitTimeout)
			if err != nil {
				t.Fatalf("%s: push %d: %v", tr, i, err)
			}
			var p protocol.Push
			if err := p.Decode(f.Body); err != nil || binary.BigEndian.Uint32(p.Payload) != uint32(i) {
				t.Fatalf("%s: push %d out of order or corrupt (%v)", tr, i, err)
			}
		}
	}
}

// TestTLSHandshakeBounds: a client that connects and sends nothing holds no handshake
// goroutine and is closed at the handshake deadline; with every handshake slot and the
// queue taken by clients that stall after their ClientHello, the next is refused at once,
// and an established connection keeps working throughout.
func TestTLSHandshakeBounds(t *testing.T) {
	g, dialers := allTransports(t, func(o *server.Options) {
		o.HandshakeTimeout = 3 * time.Second
		o.MaxTLSHandshakes, o.TLSHandshakeQueue = 1, 1
	})
	established := dial(t, "unused", client.Options{Token: userName(t), Dialer: dialers[server.TransportTLS], NoReconnect: true})
	addr := g.srv.ListenerAddr(server.TransportTLS).String()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Two stalled handshakes: one runs, one waits in the queue.
	for i := 0; i < 2; i++ {
		stallHandshake(t, addr)
	}
	testkit.WaitFor(t, "one handshake queued", func() bool { return g.serverMetric("tether_tls_handshakes_queued") == 1 })
	refused := stallHandshake(t, addr)
	testkit.WaitFor(t, "the third refused", func() bool {
		return g.serverMetric(`tether_transport_handshakes_total{transport="tls",result="refused"}`) == 1
	})
	refused.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := refused.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection is still open")
	}
	if _, err := established.Ping(testkit.Context(t, waitTimeout)); err != nil {
		t.Fatalf("established connection during the flood: %v", err)
	}
	silent.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the silent connection was not closed at the handshake deadline: %v", err)
	}
	// The stalled ones time out too, and then a new client gets a slot.
	testkit.WaitFor(t, "the stalled handshakes closed", func() bool {
		return g.serverMetric(`tether_transport_connections{transport="tls"}`) == 1
	})
	dial(t, "unused", client.Options{Token: userName(t) + "-late", Dialer: dialers[server.TransportTLS], NoReconnect: true})
}

// stallHandshake starts a TLS handshake that sends its ClientHello and then never
// answers the server's flight; the returned connection is the raw socket.
func stallHandshake(t *testing.T, addr string) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); raw.Close() })
	// The handshake writes the ClientHello through a conn whose reads never return
	// what the server sends, so it stalls waiting for the ServerHello.
	go func() {
		tc := tls.Client(writeOnly{raw, done}, &tls.Config{InsecureSkipVerify: true})
		_ = tc.Handshake()
	}()
	return raw
}

// writeOnly passes writes through and blocks reads until done is closed.
type writeOnly struct {
	net.Conn
	done chan struct{}
}

func (w writeOnly) Read([]byte) (int, error) {
	<-w.done
	return 0, io.EOF
}

// wsUpgrade writes an upgrade request for path with extra header lines to a raw
// connection to the WS listener and returns the response's status and the reader.
func wsUpgrade(t *testing.T, addr, path, extra string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n%s\r\n", path, addr, extra)
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		io.Copy(io.Discard, resp.Body)
	}
	return nc, br, resp.StatusCode
}

// wsClientFrame encodes a client frame: masked unless unmasked is set.
func wsClientFrame(fin bool, op byte, payload []byte, unmasked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mask := byte(0x80)
	if unmasked {
		mask = 0
	}
	switch {
	case len(payload) < 126:
		out = append(out, mask|byte(len(payload)))
	default:
		out = append(out, mask|126, byte(len(payload)>>8), byte(len(payload)))
	}
	if unmasked {
		return append(out, payload...)
	}
	key := [4]byte{1, 2, 3, 4}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// wsReadFrame reads one server frame (unmasked) and returns its opcode and payload.
func wsReadFrame(br *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	p := make([]byte, n)
	_, err := io.ReadFull(br, p)
	return h[0] & 0x0f, p, err
}

// wsExpectClose reads frames until a close frame and checks its code, then EOF.
func wsExpectClose(t *testing.T, br *bufio.Reader, code uint16) {
	t.Helper()
	for {
		op, p, err := wsReadFrame(br)
		if err != nil {
			t.Fatalf("waiting for close %d: %v", code, err)
		}
		if op != 0x8 {
			continue
		}
		if len(p) < 2 || binary.BigEndian.Uint16(p) != code {
			t.Fatalf("close frame %x, want code %d", p, code)
		}
		if _, _, err := wsReadFrame(br); err == nil {
			t.Fatal("a frame after the close frame")
		}
		return
	}
}

// TestWebSocketBadInput: bad upgrades get their HTTP status, RFC 6455 violations their
// close code, a ping its pong; a slowloris upgrade is closed at the handshake deadline;
// an authenticated WebSocket client is unaffected by all of it.
func TestWebSocketBadInput(t *testing.T) {
	g, dialers := allTransports(t, func(o *server.Options) {
		o.HandshakeTimeout = time.Second
		o.WebSocket.Origins = []string{"https://app.example.com"}
	})
	good := dial(t, "unused", client.Options{Token: userName(t), Dialer: dialers[server.TransportWS], NoReconnect: true})
	addr := g.srv.ListenerAddr(server.TransportWS).String()

	for _, tc := range []struct {
		name, path, extra string
		status            int
	}{
		{"wrong path", "/nope", "", 404},
		{"origin refused", "/ws", "Origin: https://evil.example.com\r\n", 403},
		{"origin allowed", "/ws", "Origin: https://app.example.com\r\n", 101},
		{"subprotocol mismatch", "/ws", "Sec-WebSocket-Protocol: other\r\n", 400},
	} {
		if tc.name == "subprotocol mismatch" {
			// Replace the offered subprotocol: a second header line adds to the list, so
			// send a request of its own.
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: other\r\n\r\n", addr)
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil || resp.StatusCode != tc.status {
				t.Fatalf("%s: %v %v", tc.name, resp, err)
			}
			nc.Close()
			continue
		}
		if _, _, st := wsUpgrade(t, addr, tc.path, tc.extra); st != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, st, tc.status)
		}
	}

	violations := []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"unmasked frame", wsClientFrame(true, 0x2, []byte{0, 0, 0, 0}, true), 1002},
		{"text frame", wsClientFrame(true, 0x1, []byte("hi"), false), 1003},
		{"fragmented ping", wsClientFrame(false, 0x9, []byte("p"), false), 1002},
		{"oversized control", wsClientFrame(true, 0x9, make([]byte, 126), false), 1002},
		{"bad close code", wsClientFrame(true, 0x8, []byte{0x03, 0xe7}, false), 1002},
		{"continuation first", wsClientFrame(true, 0x0, []byte("x"), false), 1002},
	}
	for _, v := range violations {
		nc, br, st := wsUpgrade(t, addr, "/ws", "")
		if st != 101 {
			t.Fatalf("%s: upgrade %d", v.name, st)
		}
		nc.Write(v.frame)
		wsExpectClose(t, br, v.code)
	}

	// A ping is answered with a pong carrying its payload.
	nc, br, _ := wsUpgrade(t, addr, "/ws", "")
	nc.Write(wsClientFrame(true, 0x9, []byte("are you there"), false))
	if op, p, err := wsReadFrame(br); err != nil || op != 0xA || string(p) != "are you there" {
		t.Fatalf("pong: op %x %q %v", op, p, err)
	}
	// A tether frame cut across two WebSocket messages, and two frames in one.
	ping := protocol.AppendEmpty(nil, protocol.OpPing, 7)
	hello, _ := (&protocol.Hello{Token: userName(t) + "-split"}).AppendFrame(nil, 1, 0)
	nc.Write(wsClientFrame(true, 0x2, hello[:5], false))
	nc.Write(wsClientFrame(true, 0x2, append(hello[5:], ping...), false))
	var ops []protocol.Opcode
	for len(ops) < 2 {
		op, p, err := wsReadFrame(br)
		if err != nil || op != 0x2 {
			t.Fatalf("reply: op %x %v", op, err)
		}
		for len(p) > 0 {
			f, n, err := protocol.Parse(p, protocol.DefaultMaxFrame)
			if err != nil || n == 0 {
				t.Fatalf("reply frame: %v", err)
			}
			ops = append(ops, f.Op)
			p = p[n:]
		}
	}
	// The PING is answered on the read path, AUTH_OK after the Authenticator: either
	// may come first (PROTOCOL.md §10).
	if !(ops[0] == protocol.OpAuthOK && ops[1] == protocol.OpPong) && !(ops[0] == protocol.OpPong && ops[1] == protocol.OpAuthOK) {
		t.Fatalf("replies %v, want AUTH_OK and PONG", ops)
	}

	// Slowloris: half an upgrade head, then nothing: closed at the handshake deadline.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgr", addr)
	slow.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := slow.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slowloris upgrade not closed by the handshake deadline: %v", err)
	}

	if _, err := good.Ping(testkit.Context(t, waitTimeout)); err != nil {
		t.Fatalf("the good WebSocket client after the bad input: %v", err)
	}
}

// TestWebSocketCloseCodes: a kick arrives as the tether CLOSE frame in a binary message,
// then a WebSocket close frame carrying the same code.
func TestWebSocketCloseCodes(t *testing.T) {
	g, _ := allTransports(t, nil)
	addr := g.srv.ListenerAddr(server.TransportWS).String()
	nc, br, _ := wsUpgrade(t, addr, "/ws", "")
	user := userName(t)
	hello, _ := (&protocol.Hello{Token: user}).AppendFrame(nil, 1, 0)
	nc.Write(wsClientFrame(true, 0x2, hello, false))
	if op, p, err := wsReadFrame(br); err != nil || op != 0x2 || protocol.Opcode(p[5]) != protocol.OpAuthOK {
		t.Fatalf("auth: %x %v", op, err)
	}
	testkit.WaitFor(t, "connected", func() bool { return len(g.srv.UserConns(user)) == 1 })
	g.srv.KickUser(user, protocol.CloseKicked, "bye")
	op, p, err := wsReadFrame(br)
	if err != nil || op != 0x2 || protocol.Opcode(p[5]) != protocol.OpClose {
		t.Fatalf("want the CLOSE frame first: op %x %v", op, err)
	}
	wsExpectClose(t, br, uint16(protocol.CloseKicked))
}

// TestWebSocketPingsAreLiveness: an authenticated WebSocket client that sends only
// WebSocket pings, no tether frame, outlives several heartbeat timeouts; one that sends
// nothing is closed by the heartbeat deadline.
func TestWebSocketPingsAreLiveness(t *testing.T) {
	g, _ := allTransports(t, func(o *server.Options) { o.Heartbeat = 400 * time.Millisecond })
	addr := g.srv.ListenerAddr(server.TransportWS).String()
	login := func(user string) (net.Conn, *bufio.Reader) {
		nc, br, _ := wsUpgrade(t, addr, "/ws", "")
		hello, _ := (&protocol.Hello{Token: user}).AppendFrame(nil, 1, 0)
		nc.Write(wsClientFrame(true, 0x2, hello, false))
		if op, p, err := wsReadFrame(br); err != nil || op != 0x2 || protocol.Opcode(p[5]) != protocol.OpAuthOK {
			t.Fatalf("auth: op %x %v", op, err)
		}
		return nc, br
	}
	pinger, pbr := login(userName(t) + "-pinger")
	silent, sbr := login(userName(t) + "-silent")
	// The silent one goes after 1.5 heartbeats (600 ms); the pinger pings every 100 ms
	// until then, and for three timeouts' worth (1.8 s) in all.
	silent.SetReadDeadline(time.Now().Add(waitTimeout))
	for i := 0; i < 18; i++ {
		pinger.Write(wsClientFrame(true, 0x9, []byte{byte(i)}, false))
		if op, p, err := wsReadFrame(pbr); err != nil || op != 0xA || len(p) != 1 || p[0] != byte(i) {
			t.Fatalf("ping %d: op %x %v (closed by the heartbeat deadline?)", i, op, err)
		}
		time.Sleep(100 * time.Millisecond) // the client's ping interval, not a wait for the server
	}
	op, p, err := wsReadFrame(sbr)
	if err != nil || op != 0x2 || protocol.Opcode(p[5]) != protocol.OpClose {
		t.Fatalf("silent client: op %x %v, want the CLOSE frame of the heartbeat timeout", op, err)
	}
	wsExpectClose(t, sbr, uint16(protocol.CloseHeartbeatTimeout))
}

// TestWebSocketDeflate: with Compression on, a client that negotiates permessage-deflate
// may send compressed messages (RSV1), which the server inflates into the tether stream.
func TestWebSocketDeflate(t *testing.T) {
	g, _ := allTransports(t, func(o *server.Options) { o.WebSocket.Compression = true })
	addr := g.srv.ListenerAddr(server.TransportWS).String()
	nc, br, st := wsUpgrade(t, addr, "/ws", "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n")
	if st != 101 {
		t.Fatalf("upgrade %d", st)
	}
	hello, _ := (&protocol.Hello{Token: userName(t)}).AppendFrame(nil, 1, 0)
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(hello)
	fw.Flush()
	compressed := bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff}) // RFC 7692 7.2.1
	frame := wsClientFrame(true, 0x2, compressed, false)
	frame[0] |= 0x40 // RSV1: this message is compressed
	nc.Write(frame)
	if op, p, err := wsReadFrame(br); err != nil || op != 0x2 || protocol.Opcode(p[5]) != protocol.OpAuthOK {
		t.Fatalf("compressed HELLO: op %x %v, want AUTH_OK", op, err)
	}
}
