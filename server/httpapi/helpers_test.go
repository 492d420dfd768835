package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

const (
	testKey    = "http-api-key-for-tests"
	testSecret = "control-secret-for-tests"
)

// gateway is a running gateway with its control port and HTTP API.
type gateway struct {
	t    *testing.T
	srv  *server.Server
	port *control.Port
	api  *API
	base string       // http:// or https:// and the API's address
	http *http.Client // HTTP/1.1, or HTTP/2 over TLS when the API serves TLS
	v    *validator   // g.http's
}

// startGateway starts a gateway, its control port and its API on loopback with
// test-friendly timings; mutate adjusts the API's options first. Everything is closed
// when the test ends.
func startGateway(t *testing.T, mutate func(o *Options)) *gateway {
	t.Helper()
	p, err := control.New(control.Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{
		Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth, Handler: p, Logger: testkit.Logger(),
		Tick: 5 * time.Millisecond, Heartbeat: 2 * time.Second, MaxConnsPerIP: -1, ConnectRate: -1,
		SourceConnectRate: -1, FlapThreshold: -1, MaxRoomsPerConn: 2,
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		t.Fatalf("start the gateway: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := p.Start(srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	o := Options{Addr: "127.0.0.1:0", Key: testKey, Logger: testkit.Logger()}
	if mutate != nil {
		mutate(&o)
	}
	api, err := New(o)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	if err := api.Start(srv, p); err != nil {
		t.Fatalf("httpapi Start: %v", err)
	}
	t.Cleanup(func() { api.Close() })
	g := &gateway{t: t, srv: srv, port: p, api: api, base: "http://" + api.Addr().String()}
	tr := &http.Transport{}
	if o.TLSConfig != nil {
		g.base = "https://" + api.Addr().String()
		// The TLS tests put the CA that signed the server's certificate in RootCAs,
		// which a server does not use, for the client to trust.
		tr.TLSClientConfig = &tls.Config{RootCAs: o.TLSConfig.RootCAs}
		tr.ForceAttemptHTTP2 = true
	}
	t.Cleanup(tr.CloseIdleConnections)
	g.v = validating(t, tr)
	g.http = &http.Client{Transport: g.v, Timeout: 10 * time.Second}
	return g
}

// h2c returns a client speaking HTTP/2 with prior knowledge over cleartext.
func (g *gateway) h2c() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	g.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: validating(g.t, tr), Timeout: 10 * time.Second}
}

// testAuth accepts "user" or "user#anything" as a token for user.
var testAuth = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
	uid, _, _ := strings.Cut(req.Token, "#")
	return server.Identity{UserID: uid}, nil
})

// client connects a client for user on device and waits until the gateway has it.
func (g *gateway) client(user, device string) *client.Client {
	g.t.Helper()
	c, err := client.Dial(testkit.Context(g.t, 10*time.Second), g.srv.Addr().String(), client.Options{
		Token: user + "#" + device, DeviceID: device, NoReconnect: true,
	})
	if err != nil {
		g.t.Fatalf("client.Dial(%s): %v", user, err)
	}
	g.t.Cleanup(func() { c.Close() })
	id := c.ConnID()
	testkit.WaitFor(g.t, "connection "+strconv.FormatUint(id, 10)+" ready", func() bool {
		for _, cc := range g.srv.UserConns(user) {
			if cc.ID() == id {
				return true
			}
		}
		return false
	})
	return c
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
	proto  int // ProtoMajor
}

// do sends method path with body (a string, []byte, or a value encoded as JSON; nil
// for none) and the test key, through c (g.http if nil).
func (g *gateway) do(c *http.Client, method, path string, body any) reply {
	g.t.Helper()
	return g.doKey(c, method, path, body, "Bearer "+testKey)
}

// doInvalid is do for a request the document does not allow but the server answers
// 200 on purpose (a batch with a malformed push): its request is not validated.
func (g *gateway) doInvalid(method, path string, body any) reply {
	g.t.Helper()
	return g.send(context.WithValue(context.Background(), invalidRequest{}, true), nil, method, path, body, "Bearer "+testKey)
}

// invalidRequest marks a request's context for validating to skip the request.
type invalidRequest struct{}

// doKey is do with the Authorization header auth ("" for none).
func (g *gateway) doKey(c *http.Client, method, path string, body any, auth string) reply {
	g.t.Helper()
	return g.send(context.Background(), c, method, path, body, auth)
}

// send is doKey with a context.
func (g *gateway) send(ctx context.Context, c *http.Client, method, path string, body any, auth string) reply {
	g.t.Helper()
	if c == nil {
		c = g.http
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			g.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b, proto: resp.ProtoMajor}
}

// ok decodes a 200 answer into v.
func (r reply) ok(t *testing.T, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// fails checks an error answer's status and code and returns its error object.
func (r reply) fails(t *testing.T, status int, name string) *Error {
	t.Helper()
	var eb ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("status %d, body %s: not an error body (%v)", r.status, r.body, err)
	}
	if r.status != status || eb.Error.Name != name || eb.Error.Code.String() != name {
		t.Fatalf("status %d, error %+v; want %d %s", r.status, eb.Error, status, name)
	}
	return eb.Error
}

// metric returns the value of the API's series named exactly name, or -1.
func (g *gateway) metric(name string) float64 {
	g.t.Helper()
	return testkit.Metric(g.t, g.api.WriteMetrics, name)
}
