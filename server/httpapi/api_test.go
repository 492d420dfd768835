package httpapi

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/control"
)

const waitTimeout = 10 * time.Second

// Each route's success, and the failures of the operations, over HTTP/1.1.
func TestRoutes(t *testing.T) {
	g := startGateway(t, nil)
	alice := g.client("alice", "d1")
	bob := g.client("bob", "d1")

	// push: text payload to a user.
	var pr wire.PushResult
	g.do(nil, "POST", "/v1/push", `{"users":["alice","carol"],"payload":"hi"}`).ok(t, &pr)
	if pr.Delivered != 1 || pr.Offline != 1 {
		t.Fatalf("push result %+v", pr)
	}
	if p := testkit.Recv(t, alice.Pushes(), waitTimeout); string(p.Payload) != "hi" {
		t.Fatalf("alice got %q", p.Payload)
	}
	// push: binary payload to a connection.
	bin := []byte{0, 1, 2, 0xff}
	g.do(nil, "POST", "/v1/push", map[string]any{"conns": []uint64{bob.ConnID()}, "payload_b64": base64.StdEncoding.EncodeToString(bin)}).ok(t, &pr)
	if p := testkit.Recv(t, bob.Pushes(), waitTimeout); string(p.Payload) != string(bin) {
		t.Fatalf("bob got %x", p.Payload)
	}
	// push: nobody online is NOT_FOUND with offline.
	if e := g.do(nil, "POST", "/v1/push", `{"users":["carol"],"payload":"x"}`).fails(t, 404, "NOT_FOUND"); e.Offline != 1 {
		t.Fatalf("offline %d, want 1", e.Offline)
	}
	// push: exclude leaves the sender out; all with exclude of everyone is NOT_FOUND.
	g.do(nil, "POST", "/v1/push", map[string]any{"all": true, "exclude": []uint64{alice.ConnID(), bob.ConnID()}, "payload": "x"}).fails(t, 404, "NOT_FOUND")

	// rooms: join, push to the room, leave.
	var rr wire.RoomResult
	g.do(nil, "POST", "/v1/rooms/join", `{"room":"r1","users":["alice","bob","carol"]}`).ok(t, &rr)
	if rr.Conns != 2 || rr.Missing != 1 {
		t.Fatalf("join %+v", rr)
	}
	g.do(nil, "POST", "/v1/push", map[string]any{"room": "r1", "exclude": []uint64{alice.ConnID()}, "payload": "room"}).ok(t, &pr)
	if pr.Delivered != 1 {
		t.Fatalf("room push %+v", pr)
	}
	if p := testkit.Recv(t, bob.Pushes(), waitTimeout); p.Channel != "r1" || string(p.Payload) != "room" {
		t.Fatalf("bob got %+v", p)
	}
	g.do(nil, "POST", "/v1/push", `{"room":"nobody-here","payload":"x"}`).fails(t, 404, "NOT_FOUND")
	// JOIN past the connection's room limit (2) is TOO_MANY_ROOMS.
	g.do(nil, "POST", "/v1/rooms/join", `{"room":"r2","users":["alice"]}`).ok(t, &rr)
	g.do(nil, "POST", "/v1/rooms/join", `{"room":"r3","users":["alice"]}`).fails(t, 409, "TOO_MANY_ROOMS")
	g.do(nil, "POST", "/v1/rooms/leave", `{"room":"r1","users":["bob"]}`).ok(t, &rr)
	if rr.Conns != 1 {
		t.Fatalf("leave %+v", rr)
	}
	g.do(nil, "POST", "/v1/rooms/leave", `{"room":"r1","users":["carol"]}`).fails(t, 404, "NOT_FOUND")
	g.do(nil, "POST", "/v1/rooms/join", `{"room":"","users":["alice"]}`).fails(t, 400, "BAD_REQUEST")

	// presence.
	var pres wire.PresenceResult
	g.do(nil, "POST", "/v1/presence", `{"users":["alice","carol"],"rooms":["r1"]}`).ok(t, &pres)
	if len(pres.Users["alice"]) != 1 || len(pres.Users["carol"]) != 0 || pres.Rooms["r1"] != 1 || pres.Totals.Authenticated != 2 {
		t.Fatalf("presence %+v", pres)
	}
	// stats.
	var st wire.StatsResult
	g.do(nil, "GET", "/v1/stats", nil).ok(t, &st)
	if st.Authenticated != 2 || st.Draining {
		t.Fatalf("stats %+v", st)
	}
	// healthz needs no key.
	var h Health
	g.doKey(nil, "GET", "/v1/healthz", nil, "").ok(t, &h)
	if h.Status != "ok" {
		t.Fatalf("healthz %+v", h)
	}

	// kick: a bad code, then bob.
	g.do(nil, "POST", "/v1/kick", `{"users":["bob"],"code":2000}`).fails(t, 400, "BAD_REQUEST")
	var kr wire.KickResult
	g.do(nil, "POST", "/v1/kick", `{"users":["bob","carol"],"reason":"bye"}`).ok(t, &kr)
	if kr.Kicked != 1 || kr.Missing != 1 {
		t.Fatalf("kick %+v", kr)
	}
	testkit.WaitFor(t, "bob gone", func() bool { return len(g.srv.UserConns("bob")) == 0 })
	g.do(nil, "POST", "/v1/kick", `{"users":["bob"]}`).fails(t, 404, "NOT_FOUND")

	// A batch, and a failure of each route that has none above.
	var br BatchResponse
	g.do(nil, "POST", "/v1/push/batch", `{"pushes":[{"users":["alice"],"payload":"b"}]}`).ok(t, &br)
	if br.OK != 1 {
		t.Fatalf("batch %+v", br)
	}
	g.doKey(nil, "POST", "/v1/push/batch", `{"pushes":[{"users":["alice"],"payload":"b"}]}`, "").fails(t, 401, "DENIED")
	g.do(nil, "POST", "/v1/presence", `{"users":"alice"}`).fails(t, 400, "BAD_REQUEST")
	g.doKey(nil, "GET", "/v1/stats", nil, "Bearer wrong").fails(t, 401, "DENIED")
	g.do(nil, "POST", "/v1/healthz", `{}`).fails(t, 405, "BAD_REQUEST")
	g.v.covered(t)

	if v := g.metric(`tether_http_requests_total{route="push",code="200"}`); v < 3 {
		t.Fatalf("push 200 counted %v times", v)
	}
	if v := g.metric(`tether_http_push_delivered_total`); v != 4 {
		t.Fatalf("delivered counted %v", v)
	}
}

// Every malformed request is a typed JSON error with its status.
func TestBadRequests(t *testing.T) {
	g := startGateway(t, func(o *Options) { o.MaxBodyBytes = 1024 })
	g.client("alice", "d1")
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"not JSON", "POST", "/v1/push", `{"users":`, 400, "BAD_REQUEST"},
		{"not an object", "POST", "/v1/push", `["alice"]`, 400, "BAD_REQUEST"},
		{"null", "POST", "/v1/kick", `null`, 400, "BAD_REQUEST"},
		{"empty body", "POST", "/v1/presence", ``, 400, "BAD_REQUEST"},
		{"trailing data", "POST", "/v1/presence", `{} {}`, 400, "BAD_REQUEST"},
		{"unknown field", "POST", "/v1/push", `{"users":["alice"],"payload":"x","prio":1}`, 400, "BAD_REQUEST"},
		{"wrong type", "POST", "/v1/push", `{"users":"alice","payload":"x"}`, 400, "BAD_REQUEST"},
		{"no payload", "POST", "/v1/push", `{"users":["alice"]}`, 400, "BAD_REQUEST"},
		{"both payloads", "POST", "/v1/push", `{"users":["alice"],"payload":"x","payload_b64":"eA=="}`, 400, "BAD_REQUEST"},
		{"bad base64", "POST", "/v1/push", `{"users":["alice"],"payload_b64":"!!"}`, 400, "BAD_REQUEST"},
		{"two targets", "POST", "/v1/push", `{"users":["alice"],"all":true,"payload":"x"}`, 400, "BAD_REQUEST"},
		{"qos1 room", "POST", "/v1/push", `{"room":"r","qos":1,"payload":"x"}`, 400, "BAD_REQUEST"},
		{"qos 2", "POST", "/v1/push", `{"users":["alice"],"qos":2,"payload":"x"}`, 400, "BAD_REQUEST"},
		{"oversize body", "POST", "/v1/push", `{"users":["alice"],"payload":"` + strings.Repeat("x", 2000) + `"}`, 413, "BAD_REQUEST"},
		{"unknown route", "GET", "/v1/nope", ``, 404, "NOT_FOUND"},
		{"root", "GET", "/", ``, 404, "NOT_FOUND"},
		{"empty batch", "POST", "/v1/push/batch", `{"pushes":[]}`, 400, "BAD_REQUEST"},
		{"batch not a list", "POST", "/v1/push/batch", `{"pushes":{}}`, 400, "BAD_REQUEST"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			g.do(nil, c.method, c.path, body).fails(t, c.status, c.code)
		})
	}
	// A wrong method is 405 with Allow.
	r := g.do(nil, "GET", "/v1/push", nil)
	r.fails(t, 405, "BAD_REQUEST")
	if a := r.header.Get("Allow"); a != "POST" {
		t.Fatalf("Allow %q", a)
	}
	r = g.do(nil, "DELETE", "/v1/stats", nil)
	r.fails(t, 405, "BAD_REQUEST")
	if a := r.header.Get("Allow"); a != "GET" {
		t.Fatalf("Allow %q", a)
	}
	if v := g.metric(`tether_http_requests_total{route="unknown",code="404"}`); v != 2 {
		t.Fatalf("unknown routes counted %v, want 2", v)
	}
}

// The same operation gives the same result, or the same failure, through the control
// port and through the API.
func TestSameAsControlPort(t *testing.T) {
	g := startGateway(t, nil)
	alice := g.client("alice", "d1")
	g.client("alice", "d2")
	g.client("bob", "d1")
	ctl := testkit.DialControl(t, g.port.Addr().String())
	ctl.Auth(testSecret)
	seq := uint32(1)
	type op struct {
		name   string
		ctlOp  protocol.Opcode
		path   string
		hdr    any    // the control header, and the HTTP body without payload
		result any    // a fresh result value of the right type
		body   string // the HTTP body when it is not hdr (pushes: hdr plus payload)
	}
	for _, c := range []op{
		{"push users", wire.OpPush, "/v1/push", &wire.Push{Users: []string{"alice", "carol"}}, &wire.PushResult{}, `{"users":["alice","carol"],"payload":"p"}`},
		{"push conns excluded", wire.OpPush, "/v1/push", &wire.Push{Conns: []uint64{alice.ConnID()}, Exclude: []uint64{alice.ConnID()}}, &wire.PushResult{}, ""},
		{"push nobody", wire.OpPush, "/v1/push", &wire.Push{Users: []string{"carol", "dave"}}, &wire.PushResult{}, `{"users":["carol","dave"],"payload":"p"}`},
		{"push two targets", wire.OpPush, "/v1/push", &wire.Push{Users: []string{"alice"}, All: true}, &wire.PushResult{}, `{"users":["alice"],"all":true,"payload":"p"}`},
		{"join", wire.OpJoin, "/v1/rooms/join", &wire.Room{Room: "r", Users: []string{"alice", "carol"}}, &wire.RoomResult{}, ""},
		{"join nobody", wire.OpJoin, "/v1/rooms/join", &wire.Room{Room: "r", Users: []string{"carol"}}, &wire.RoomResult{}, ""},
		{"presence", wire.OpPresence, "/v1/presence", &wire.Presence{Users: []string{"alice", "carol"}, Rooms: []string{"r", "s"}}, &wire.PresenceResult{}, ""},
		{"leave", wire.OpLeave, "/v1/rooms/leave", &wire.Room{Room: "r", Users: []string{"alice"}}, &wire.RoomResult{}, ""},
		{"kick bad code", wire.OpKick, "/v1/kick", &wire.Kick{Users: []string{"bob"}, Code: 1001}, &wire.KickResult{}, ""},
		{"kick nobody", wire.OpKick, "/v1/kick", &wire.Kick{Users: []string{"carol"}}, &wire.KickResult{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Join and leave change state: run them once each way on mirrored rooms
			// would differ, so the control port runs first and the HTTP API then
			// repeats what is idempotent. JOIN/LEAVE of the same connections twice
			// give the same counts (membership is a set).
			seq++
			var payload []byte
			if c.ctlOp == wire.OpPush {
				payload = []byte("p")
			}
			ctl.Send(c.ctlOp, seq, c.hdr, payload)
			f, err := ctl.Next(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			body := any(c.hdr)
			if c.body != "" {
				body = c.body
			} else if c.ctlOp == wire.OpPush {
				js, _ := json.Marshal(c.hdr)
				body = strings.TrimSuffix(string(js), "}") + `,"payload":"p"}`
			}
			r := g.do(nil, "POST", c.path, body)
			switch f.Op {
			case wire.OpResult:
				if _, err := wire.DecodeBody(f.Body, c.result); err != nil {
					t.Fatal(err)
				}
				got := reflect.New(reflect.TypeOf(c.result).Elem()).Interface()
				r.ok(t, got)
				if !reflect.DeepEqual(got, c.result) {
					t.Fatalf("HTTP result %+v, control RESULT %+v", got, c.result)
				}
			case wire.OpFail:
				var fl wire.Fail
				if _, err := wire.DecodeBody(f.Body, &fl); err != nil {
					t.Fatal(err)
				}
				e := r.fails(t, statusOf(fl.Code), fl.Code.String())
				if e.Code != fl.Code || e.Message != fl.Message || e.Offline != fl.Offline || e.Delivered != fl.Delivered {
					t.Fatalf("HTTP error %+v, control FAIL %+v", e, fl)
				}
			default:
				t.Fatalf("control answered %s", wire.OpName(f.Op))
			}
		})
	}
	// STATS: the same counts, the control port's own included (one service).
	seq++
	ctl.Send(wire.OpStats, seq, nil, nil)
	var want, got wire.StatsResult
	if _, err := wire.DecodeBody(ctl.Expect(wire.OpResult, seq).Body, &want); err != nil {
		t.Fatal(err)
	}
	g.do(nil, "GET", "/v1/stats", nil).ok(t, &got)
	if got != want || got.Services != 1 {
		t.Fatalf("HTTP stats %+v, control %+v", got, want)
	}
}

// QoS1 pushes return each user's msg_id, and the client is asked to acknowledge.
func TestQoS1(t *testing.T) {
	g := startGateway(t, nil)
	alice := g.client("alice", "d1")
	var pr wire.PushResult
	g.do(nil, "POST", "/v1/push", `{"users":["alice"],"qos":1,"payload":"q1"}`).ok(t, &pr)
	if pr.Delivered != 1 || pr.MsgIDs["alice"] == 0 {
		t.Fatalf("QoS1 result %+v", pr)
	}
	p := testkit.Recv(t, alice.Pushes(), waitTimeout)
	if p.MsgID != pr.MsgIDs["alice"] || !p.AckRequested {
		t.Fatalf("push %+v, want msg_id %d with ACK_REQUESTED", p, pr.MsgIDs["alice"])
	}
}

// A batch runs its pushes in order; each succeeds or fails on its own.
func TestBatch(t *testing.T) {
	g := startGateway(t, func(o *Options) { o.MaxBatch = 4 })
	alice := g.client("alice", "d1")
	var br BatchResponse
	g.doInvalid("POST", "/v1/push/batch", `{"pushes":[
		{"users":["alice"],"payload":"one"},
		{"users":["carol"],"payload":"nobody"},
		{"users":["alice"],"payload":"x","junk":1},
		{"users":["alice"],"qos":1,"payload_b64":"dHdv"}]}`).ok(t, &br)
	if len(br.Results) != 4 || br.OK != 2 || br.Failed != 2 {
		t.Fatalf("batch %+v", br)
	}
	if r := br.Results[0]; r.Result == nil || r.Result.Delivered != 1 || r.Error != nil {
		t.Fatalf("item 0 %+v", r)
	}
	if r := br.Results[1]; r.Error == nil || r.Error.Name != "NOT_FOUND" || r.Error.Offline != 1 {
		t.Fatalf("item 1 %+v", r)
	}
	if r := br.Results[2]; r.Error == nil || r.Error.Code != protocol.ErrorBadRequest {
		t.Fatalf("item 2 %+v", r)
	}
	if r := br.Results[3]; r.Result == nil || r.Result.MsgIDs["alice"] == 0 {
		t.Fatalf("item 3 %+v", r)
	}
	for _, want := range []string{"one", "two"} {
		if p := testkit.Recv(t, alice.Pushes(), waitTimeout); string(p.Payload) != want {
			t.Fatalf("got %q, want %q", p.Payload, want)
		}
	}
	// More than MaxBatch fails as a whole, and runs none.
	g.do(nil, "POST", "/v1/push/batch", `{"pushes":[{"all":true,"payload":"a"},{"all":true,"payload":"a"},{"all":true,"payload":"a"},{"all":true,"payload":"a"},{"all":true,"payload":"a"}]}`).fails(t, 400, "BAD_REQUEST")
	select {
	case p := <-alice.Pushes():
		t.Fatalf("an over-long batch pushed %q", p.Payload)
	default:
	}
	if v := g.metric(`tether_http_batch_pushes_total{result="failed"}`); v != 2 {
		t.Fatalf("failed batch pushes %v", v)
	}
}

// HTTP/1.1, h2c with prior knowledge and HTTP/2 over TLS all serve the API.
func TestProtocols(t *testing.T) {
	g := startGateway(t, nil)
	if r := g.do(nil, "GET", "/v1/stats", nil); r.status != 200 || r.proto != 1 {
		t.Fatalf("HTTP/1.1: status %d proto %d", r.status, r.proto)
	}
	h2c := g.h2c()
	if r := g.do(h2c, "GET", "/v1/stats", nil); r.status != 200 || r.proto != 2 {
		t.Fatalf("h2c: status %d proto %d", r.status, r.proto)
	}
	alice := g.client("alice", "d1")
	if r := g.do(h2c, "POST", "/v1/push", `{"users":["alice"],"payload":"h2c"}`); r.status != 200 || r.proto != 2 {
		t.Fatalf("h2c push: status %d proto %d, body %s", r.status, r.proto, r.body)
	}
	if p := testkit.Recv(t, alice.Pushes(), waitTimeout); string(p.Payload) != "h2c" {
		t.Fatalf("alice got %q", p.Payload)
	}
	g.do(h2c, "POST", "/v1/push", `{"users":["alice"]}`).fails(t, 400, "BAD_REQUEST")
	ca := testkit.NewCA(t)
	cert := ca.Issue(t, "localhost", true)
	tg := startGateway(t, func(o *Options) {
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool()}
	})
	tg.client("alice", "d1")
	var pr wire.PushResult
	r := tg.do(nil, "POST", "/v1/push", `{"users":["alice"],"payload":"tls"}`)
	r.ok(t, &pr)
	if r.proto != 2 || pr.Delivered != 1 {
		t.Fatalf("HTTP/2 over TLS: proto %d, result %+v", r.proto, pr)
	}
}

// A missing or wrong key is 401 with WWW-Authenticate; wrong keys lock the source out.
func TestAuth(t *testing.T) {
	g := startGateway(t, func(o *Options) { o.MaxAuthFailures = 3; o.AuthLockout = time.Hour })
	r := g.doKey(nil, "GET", "/v1/stats", nil, "")
	r.fails(t, 401, "DENIED")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	g.doKey(nil, "GET", "/v1/stats", nil, "Basic "+base64.StdEncoding.EncodeToString([]byte("u:"+testKey))).fails(t, 401, "DENIED")
	g.doKey(nil, "GET", "/v1/stats", nil, "bearer "+testKey).ok(t, &wire.StatsResult{}) // the scheme is case-insensitive
	for i := 0; i < 3; i++ {
		g.doKey(nil, "GET", "/v1/stats", nil, "Bearer "+testKey+"x").fails(t, 401, "DENIED")
	}
	// Locked out: even the right key is refused, before it is checked.
	r = g.do(nil, "GET", "/v1/stats", nil)
	r.fails(t, 429, "BUSY")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	for reason, want := range map[string]float64{"missing_key": 2, "bad_key": 3, "locked_out": 1} {
		if v := g.metric(`tether_http_auth_failures_total{reason="` + reason + `"}`); v != want {
			t.Errorf("auth failures %s: %v, want %v", reason, v, want)
		}
	}
	// The check is constant-time: both sides are hashed, then compared with subtle.
	if !g.api.checkKey(testKey) || g.api.checkKey(testKey[:len(testKey)-1]) || g.api.checkKey("") {
		t.Fatal("checkKey")
	}
}

// The key requirements, as the control port's secret: none or a short one only on
// loopback, Insecure only on loopback and without a key.
func TestOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want error // nil: accepted; errAny: any error
	}{
		{"no key", Options{}, errAny},
		{"insecure loopback", Options{Insecure: true}, nil},
		{"insecure all interfaces", Options{Addr: ":7003", Insecure: true}, ErrInsecureAddr},
		{"insecure LAN", Options{Addr: "10.0.0.1:7003", Insecure: true}, ErrInsecureAddr},
		{"key and insecure", Options{Key: testKey, Insecure: true}, errAny},
		{"short key loopback", Options{Key: "short"}, nil},
		{"short key all interfaces", Options{Addr: ":7003", Key: "short"}, ErrWeakKey},
		{"long key all interfaces", Options{Addr: ":7003", Key: testKey}, nil},
		{"tls without certificate", Options{Key: testKey, TLSConfig: &tls.Config{}}, errAny},
	} {
		_, err := New(c.o)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == errAny && err == nil, c.want != nil && c.want != errAny && !errors.Is(err, c.want):
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

var errAny = errors.New("any error")

// The metrics carry HELP and TYPE lines and pass promtool.
func TestMetrics(t *testing.T) {
	g := startGateway(t, nil)
	g.do(nil, "GET", "/v1/stats", nil)
	var b strings.Builder
	g.api.WriteMetrics(&b)
	out := b.String()
	for _, want := range []string{
		"# HELP tether_http_requests_total ",
		`tether_http_requests_total{route="stats",code="200"} 1`,
		"# TYPE tether_http_request_duration_seconds histogram",
		`tether_http_request_duration_seconds_bucket{route="stats",le="+Inf"} 1`,
		"# HELP tether_http_auth_failures_total ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	testkit.Promtool(t, out)
}

// Start and Close: a second Start, a Start after Close, and a second Close.
func TestLifecycle(t *testing.T) {
	g := startGateway(t, nil)
	if err := g.api.Start(g.srv, g.port); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	if err := g.api.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.api.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.api.Start(g.srv, g.port); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	// An API without a control port reports zeros for the port's counts.
	a, err := New(Options{Addr: "127.0.0.1:0", Key: testKey, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(g.srv, nil); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	g.base = "http://" + a.Addr().String()
	var st wire.StatsResult
	g.do(nil, "GET", "/v1/stats", nil).ok(t, &st)
	if st.Services != 0 {
		t.Fatalf("stats without a control port %+v", st)
	}
}

// Every FAIL code maps to its status, and a push's counts travel with it.
func TestFailureStatus(t *testing.T) {
	for code, status := range map[protocol.ErrorCode]int{
		protocol.ErrorBadRequest: 400, protocol.ErrorNotFound: 404, protocol.ErrorTooManyRooms: 409,
		protocol.ErrorDenied: 403, protocol.ErrorBusy: 503, protocol.ErrorUnavailable: 503,
		protocol.ErrorTimeout: 504, protocol.ErrorInternal: 500, protocol.ErrorUnknownOpcode: 500,
	} {
		e := asError(&control.Failure{Code: code, Message: "m", Delivered: 3, Offline: 2})
		if e.Status != status || e.Code != code || e.Name != code.String() || e.Delivered != 3 || e.Offline != 2 {
			t.Errorf("%v: %+v, want status %d", code, e, status)
		}
	}
	if e := asError(errors.New("boom")); e.Status != 500 || e.Code != protocol.ErrorInternal {
		t.Errorf("plain error: %+v", e)
	}
}
