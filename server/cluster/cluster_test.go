package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/cluster"
	"github.com/tether-gw/tether/server/control"
)

const wait = 10 * time.Second

// node is one gateway of a test cluster.
type node struct {
	srv    *server.Server
	broker *cluster.Broker
	port   *control.Port // nil unless started withControl
}

// testSecret is the control ports' secret.
const testSecret = "cluster-test-secret"

// startCluster starts n gateways in this process on one real (embedded) NATS server.
func startCluster(t *testing.T, n int, mutate func(o *server.Options)) (*testkit.NATSServer, []*node) {
	t.Helper()
	ns := testkit.NATS(t)
	var nodes []*node
	for i := range n {
		nodes = append(nodes, startNode(t, ns, fmt.Sprintf("node%d", i), mutate))
	}
	// The cluster is formed once every node has heard every other.
	for _, nd := range nodes {
		testkit.WaitFor(t, "the cluster formed", func() bool { return nd.broker.Stats().Nodes == n })
	}
	return ns, nodes
}

// startNode starts one gateway with a control port on ns.
func startNode(t *testing.T, ns *testkit.NATSServer, name string, mutate func(o *server.Options)) *node {
	t.Helper()
	b, err := cluster.New(cluster.Options{URL: ns.URL(), Name: name, Logger: testkit.Logger(),
		Heartbeat: 100 * time.Millisecond, NodeTimeout: 400 * time.Millisecond, CountFlush: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o := server.Options{Addr: "127.0.0.1:0", AdminAddr: "-", Authenticator: testAuth, Logger: testkit.Logger(),
		Heartbeat: 2 * time.Second, Tick: 5 * time.Millisecond, MaxConnsPerIP: -1, ConnectRate: -1, SourceConnectRate: -1,
		FlapThreshold: -1, Broker: b}
	if mutate != nil {
		mutate(&o)
	}
	port, err := control.New(control.Options{Addr: "127.0.0.1:0", Secret: testSecret, Logger: testkit.Logger(), UplinkTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o.Handler = port
	srv, err := server.New(o)
	if err == nil {
		err = srv.Start()
	}
	if err == nil {
		err = port.Start(srv)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { port.Close(); srv.Close() })
	return &node{srv: srv, broker: b, port: port}
}

// testAuth accepts "user" or "user#device" as a token for user.
var testAuth = server.AuthenticatorFunc(func(_ context.Context, req server.AuthRequest) (server.Identity, error) {
	uid := req.Token
	for i := range uid {
		if uid[i] == '#' {
			uid = uid[:i]
			break
		}
	}
	return server.Identity{UserID: uid}, nil
})

// dial connects a client to n for user on device.
func dial(t *testing.T, n *node, user, device string, o client.Options) *client.Client {
	t.Helper()
	o.Token, o.DeviceID, o.NoReconnect = user+"#"+device, device, true
	c, err := client.Dial(testkit.Context(t, wait), n.srv.Addr().String(), o)
	if err != nil {
		t.Fatalf("dial %s on %v: %v", user, n.srv.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seen waits until every node other than owner counts want connections of user.
func seen(t *testing.T, nodes []*node, owner *node, kind server.CountKind, key string, want int) {
	t.Helper()
	for _, n := range nodes {
		if n == owner {
			continue
		}
		testkit.WaitFor(t, fmt.Sprintf("%q announced to node %d", key, n.broker.NodeID()), func() bool {
			return n.broker.RemoteCount(kind, key) == want
		})
	}
}

func push(t *testing.T, c *client.Client) string {
	t.Helper()
	p := testkit.Recv(t, c.Pushes(), wait)
	return string(p.Payload)
}

// TestClusterPushes: a push to a user, to a connection id, to a room and to everyone,
// made on any node, reaches the connections on every node; counts cover the cluster;
// connection ids are unique and carry their node.
func TestClusterPushes(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	if a.broker.NodeID() == b.broker.NodeID() || b.broker.NodeID() == c.broker.NodeID() || a.broker.NodeID() == c.broker.NodeID() {
		t.Fatal("two nodes share an id")
	}
	phone := dial(t, a, "alice", "phone", client.Options{})
	laptop := dial(t, b, "alice", "laptop", client.Options{})
	if server.NodeOf(phone.ConnID()) != a.broker.NodeID() || server.NodeOf(laptop.ConnID()) != b.broker.NodeID() {
		t.Fatalf("connection ids %x, %x do not carry their nodes %d, %d", phone.ConnID(), laptop.ConnID(), a.broker.NodeID(), b.broker.NodeID())
	}
	seen(t, []*node{a, b}, nil, server.CountUser, "alice", 1) // each sees the other's
	seen(t, []*node{c}, nil, server.CountUser, "alice", 2)
	n, err := c.srv.PushUser("alice", []byte("to alice"))
	if err != nil || n != 2 {
		t.Fatalf("PushUser from the third node = %d, %v; want 2", n, err)
	}
	for _, cl := range []*client.Client{phone, laptop} {
		if got := push(t, cl); got != "to alice" {
			t.Fatalf("got %q", got)
		}
	}
	res, err := c.srv.PushUsers([]string{"alice", "nobody"}, []byte("x"), server.PushOptions{})
	if err != nil || res.Offline != 1 || res.Delivered != 2 {
		t.Fatalf("PushUsers = %+v, %v; want 2 delivered, 1 offline", res, err)
	}
	push(t, phone)
	push(t, laptop)

	if err := c.srv.PushConn(laptop.ConnID(), []byte("by id")); err != nil {
		t.Fatal(err)
	}
	if got := push(t, laptop); got != "by id" {
		t.Fatalf("push by id: %q", got)
	}

	bob := dial(t, c, "bob", "tab", client.Options{})
	for _, cl := range []*client.Client{phone, laptop, bob} {
		if err := cl.Subscribe(testkit.Context(t, wait), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	seen(t, []*node{a}, nil, server.CountRoom, "lobby", 2)
	if got := a.srv.RoomSize("lobby"); got != 3 {
		t.Fatalf("RoomSize on a = %d, want 3", got)
	}
	if n, err := a.srv.PushRoom("lobby", []byte("room")); err != nil || n != 3 {
		t.Fatalf("PushRoom = %d, %v; want 3", n, err)
	}
	for _, cl := range []*client.Client{phone, laptop, bob} {
		if got := push(t, cl); got != "room" {
			t.Fatalf("room push: %q", got)
		}
	}
	if _, err := b.srv.Broadcast([]byte("all"), bob.ConnID()); err != nil {
		t.Fatal(err)
	}
	push(t, phone)
	push(t, laptop)
	select {
	case p := <-bob.Pushes():
		t.Fatalf("the excluded connection got %q", p.Payload)
	case <-time.After(200 * time.Millisecond):
	}

	// JoinUser on one node joins the user's connections on every node.
	if _, err := c.srv.JoinUser("alice", "vip"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "alice's two connections in vip", func() bool { return c.srv.RoomSize("vip") == 2 })
	if n, _ := c.srv.PushRoom("vip", []byte("vip")); n != 2 {
		t.Fatalf("PushRoom vip = %d", n)
	}
	push(t, phone)
	push(t, laptop)
}

// TestClusterKicksAndDevicePolicy: a kick on one node closes the user's connections on
// the others with the kick's code; with one device per user, a login on node B replaces
// the older device on node A with REPLACED, as on one node.
func TestClusterKicksAndDevicePolicy(t *testing.T) {
	_, nodes := startCluster(t, 2, func(o *server.Options) { o.DevicePolicy = server.DevicesOnePerUser })
	a, b := nodes[0], nodes[1]
	var states testkit.Transitions[client.State]
	old := dial(t, a, "carol", "phone", client.Options{OnStateChange: states.Record})
	seen(t, nodes, a, server.CountUser, "carol", 1)
	dial(t, b, "carol", "laptop", client.Options{})
	testkit.WaitFor(t, "the older device closed", func() bool { return old.State() == client.StateClosed })
	if _, ok := states.Find(client.StateClosed, closeCode(protocol.CloseReplaced)); !ok {
		t.Fatalf("older device not closed with REPLACED: %s", states.Dump())
	}

	var st2 testkit.Transitions[client.State]
	d := dial(t, a, "dave", "phone", client.Options{OnStateChange: st2.Record})
	seen(t, nodes, a, server.CountUser, "dave", 1)
	if n := b.srv.KickUser("dave", protocol.CloseKicked, "bye"); n != 1 {
		t.Fatalf("KickUser from the other node = %d, want 1", n)
	}
	testkit.WaitFor(t, "dave kicked", func() bool { return d.State() == client.StateClosed })
	if _, ok := st2.Find(client.StateClosed, closeCode(protocol.CloseKicked)); !ok {
		t.Fatalf("not closed with KICKED: %s", st2.Dump())
	}
	// Gone everywhere: the other node forgets him.
	seen(t, nodes, a, server.CountUser, "dave", 0)
}

// TestClusterNodeLossAndNATSLoss: a node that dies is forgotten by the others within the
// node timeout; while NATS is down each node serves its own clients and cross-node
// operations fail at once with ErrClusterUnavailable; when NATS returns the nodes
// converge and cross-node pushes work again.
func TestClusterNodeLossAndNATSLoss(t *testing.T) {
	ns, nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ea := dial(t, a, "erin", "phone", client.Options{})
	dial(t, c, "frank", "phone", client.Options{})
	seen(t, nodes, c, server.CountUser, "frank", 1)

	c.srv.Close() // the node dies (its broker with it, saying nothing)
	testkit.WaitFor(t, "frank forgotten", func() bool { return b.broker.RemoteCount(server.CountUser, "frank") == 0 })
	if res, _ := b.srv.PushUsers([]string{"frank"}, []byte("x"), server.PushOptions{}); res.Offline != 1 {
		t.Fatalf("a user of the dead node is not offline: %+v", res)
	}

	ns.Shutdown()
	testkit.WaitFor(t, "the broker sees NATS gone", func() bool { return !b.broker.Stats().Connected })
	start := time.Now()
	_, err := b.srv.Broadcast([]byte("x"))
	if !errors.Is(err, server.ErrClusterUnavailable) {
		t.Fatalf("Broadcast with NATS down: %v, want ErrClusterUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the failure took %v: it must be immediate", d)
	}
	// Local service goes on: a push on a's own node still reaches erin.
	if n, err := a.srv.PushUser("erin", []byte("local")); n != 1 {
		t.Fatalf("local push with NATS down = %d, %v", n, err)
	}
	if got := push(t, ea); got != "local" {
		t.Fatalf("got %q", got)
	}

	ns.Restart()
	// Both ends back (a push is core NATS, at most once: one sent while erin's node is
	// still reconnecting is lost, which is why QoS1 exists).
	testkit.WaitFor(t, "converged after NATS returned", func() bool {
		sb := b.broker.Stats()
		return a.broker.Stats().Connected && sb.Connected && sb.Synced == sb.Nodes-1 && b.broker.RemoteCount(server.CountUser, "erin") == 1
	})
	if n, err := b.srv.PushUser("erin", []byte("again")); err != nil || n != 1 {
		t.Fatalf("cross-node push after NATS returned = %d, %v", n, err)
	}
	if got := push(t, ea); got != "again" {
		t.Fatalf("got %q", got)
	}
}

// closeCode matches a *client.CloseError with code.
func closeCode(code protocol.CloseCode) func(error) bool {
	return func(err error) bool {
		var ce *client.CloseError
		return errors.As(err, &ce) && ce.Code == code
	}
}

// service dials a service to n's control port.
func dialService(t *testing.T, n *node, o service.Options) *service.Service {
	t.Helper()
	o.Secret, o.Logger = testSecret, testkit.Logger()
	svc, err := service.Dial(testkit.Context(t, wait), n.port.Addr().String(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// TestClusterPresenceAndEvents: a service on one node sees the users of every node in
// PRESENCE (with the node holding each connection) and the cluster's totals, and gets
// the online and offline events of clients on other nodes; with NATS down PRESENCE fails
// with UNAVAILABLE at once instead of answering for one node as if it were the cluster.
func TestClusterPresenceAndEvents(t *testing.T) {
	ns, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	events := make(chan service.Event, 16)
	svc := dialService(t, a, service.Options{OnEvent: func(ev service.Event) { events <- ev }})
	if _, err := svc.Subscribe(testkit.Context(t, wait), service.Subscription{Events: true}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b, "gina", "tablet", client.Options{})
	ev := testkit.Recv(t, events, wait)
	if ev.Type != "online" || ev.User != "gina" || ev.Conn != c.ConnID() {
		t.Fatalf("event %+v, want gina online on the other node", ev)
	}
	hank := dial(t, a, "hank", "phone", client.Options{})
	if err := hank.Subscribe(testkit.Context(t, wait), "r1"); err != nil {
		t.Fatal(err)
	}
	if ev := testkit.Recv(t, events, wait); ev.User != "hank" {
		t.Fatalf("event %+v, want hank's (a local one)", ev)
	}
	r, err := svc.Presence(testkit.Context(t, wait), []string{"gina", "hank", "nobody"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users["gina"]) != 1 || r.Users["gina"][0].Node != b.broker.NodeID() || r.Users["gina"][0].Device != "tablet" {
		t.Fatalf("gina's presence %+v, want one connection on node %d", r.Users["gina"], b.broker.NodeID())
	}
	if len(r.Users["hank"]) != 1 || len(r.Users["nobody"]) != 0 {
		t.Fatalf("presence %+v", r.Users)
	}
	if r.Totals.Authenticated != 2 || r.Nodes != 2 || r.Missing != 0 {
		t.Fatalf("totals %+v, nodes %d, missing %d; want 2 connections from 2 nodes", r.Totals, r.Nodes, r.Missing)
	}
	c.Close()
	if ev := testkit.Recv(t, events, wait); ev.Type != "offline" || ev.User != "gina" {
		t.Fatalf("event %+v, want gina offline", ev)
	}

	ns.Shutdown()
	testkit.WaitFor(t, "NATS gone", func() bool { return !a.broker.Stats().Connected })
	_, err = svc.Presence(testkit.Context(t, wait), []string{"hank"}, nil)
	var se *service.Error
	if !errors.As(err, &se) || se.Code != protocol.ErrorUnavailable {
		t.Fatalf("presence with NATS down: %v, want UNAVAILABLE", err)
	}
	// With NATS down local service goes on: a room push reaches the local member; a
	// push to a local user and one not found here fails UNAVAILABLE, saying how many
	// got it here.
	if res, err := svc.PushRoom(testkit.Context(t, wait), "r1", []byte("local room")); err != nil || res.Delivered != 1 {
		t.Fatalf("room push with NATS down: %+v, %v; want delivered 1", res, err)
	}
	if got := push(t, hank); got != "local room" {
		t.Fatalf("the local member got %q", got)
	}
	res, err := svc.PushUsers(testkit.Context(t, wait), []string{"hank", "gina"}, []byte("both"), service.PushOptions{})
	if !errors.As(err, &se) || se.Code != protocol.ErrorUnavailable || res.Delivered != 1 {
		t.Fatalf("push to a local and an unreachable user: %+v, %v; want UNAVAILABLE with delivered 1", res, err)
	}
	if got := push(t, hank); got != "both" {
		t.Fatalf("the local user got %q", got)
	}
}

// TestClusterUplinks: a client's SEND on one node reaches a service subscribed on
// another and the reply comes back; an exact route beats a prefix wherever each is;
// subscribers of one route on two nodes take turns; when the only subscriber's
// connection ends, the route is gone cluster-wide (NO_ROUTE), and comes back when a
// service subscribes again.
func TestClusterUplinks(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	echo := func(tag string) func(*service.Uplink) {
		return func(u *service.Uplink) { _ = u.Reply([]byte(tag + ":" + string(u.Payload))) }
	}
	pre := dialService(t, a, service.Options{OnUplink: echo("prefix@a")})
	if _, err := pre.Subscribe(testkit.Context(t, wait), service.Subscription{Prefixes: []string{"chat."}}); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, b, "ivan", "phone", client.Options{})
	send := func(route, body string) (string, error) {
		r, err := cl.Send(testkit.Context(t, wait), route, []byte(body))
		return string(r), err
	}
	testkit.WaitFor(t, "node b knows a's prefix", func() bool { return b.srv.ClusterHolders(server.CountPrefix, "chat.")[a.broker.NodeID()] == 1 })
	if r, err := send("chat.hello", "hi"); err != nil || r != "prefix@a:hi" {
		t.Fatalf("SEND on b to a's prefix service: %q, %v", r, err)
	}
	// An exact route subscribed on b beats the prefix subscribed on a, for a's clients.
	exact := dialService(t, b, service.Options{OnUplink: echo("exact@b")})
	if _, err := exact.Subscribe(testkit.Context(t, wait), service.Subscription{Routes: []string{"chat.vip"}}); err != nil {
		t.Fatal(err)
	}
	cla := dial(t, a, "judy", "phone", client.Options{})
	testkit.WaitFor(t, "node a knows b's route", func() bool { return a.srv.ClusterHolders(server.CountRoute, "chat.vip")[b.broker.NodeID()] == 1 })
	if r, err := cla.Send(testkit.Context(t, wait), "chat.vip", []byte("x")); err != nil || string(r) != "exact@b:x" {
		t.Fatalf("SEND on a: an exact route on b must beat a's own prefix: %q, %v", r, err)
	}
	// Round robin over one prefix subscribed on both nodes.
	pre2 := dialService(t, b, service.Options{OnUplink: echo("prefix@b")})
	if _, err := pre2.Subscribe(testkit.Context(t, wait), service.Subscription{Prefixes: []string{"chat."}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "node a knows b's prefix", func() bool { return a.srv.ClusterHolders(server.CountPrefix, "chat.")[b.broker.NodeID()] == 1 })
	seenBy := map[string]int{}
	for i := 0; i < 20; i++ {
		r, err := cla.Send(testkit.Context(t, wait), "chat.room", []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		seenBy[string(r)]++
	}
	if seenBy["prefix@a:m"] == 0 || seenBy["prefix@b:m"] == 0 {
		t.Fatalf("uplinks did not take turns over both nodes: %v", seenBy)
	}
	// The exact route's only service leaves: the route falls to the prefixes.
	exact.Close()
	testkit.WaitFor(t, "b's route gone from a", func() bool { return len(a.srv.ClusterHolders(server.CountRoute, "chat.vip")) == 0 })
	if r, err := cla.Send(testkit.Context(t, wait), "chat.vip", []byte("y")); err != nil || !strings.HasPrefix(string(r), "prefix@") {
		t.Fatalf("after the exact service left: %q, %v", r, err)
	}
	// No service anywhere: NO_ROUTE.
	if _, err := cla.Send(testkit.Context(t, wait), "other.route", []byte("z")); !isErrCode(err, protocol.ErrorNoRoute) {
		t.Fatalf("SEND with no service in the cluster: %v, want NO_ROUTE", err)
	}
}

// isErrCode matches a *client.Error with code.
func isErrCode(err error, code protocol.ErrorCode) bool {
	var e *client.ServerError
	return errors.As(err, &e) && e.Code == code
}

// TestClusterLateNodeAndSlowService: a node that joins after clients and rooms exist
// learns them (and its service's pushes reach them); a service on another node that
// never answers costs its uplinks a TIMEOUT and nothing else: other routes keep being
// answered meanwhile.
func TestClusterLateNodeAndSlowService(t *testing.T) {
	ns, nodes := startCluster(t, 1, nil)
	a := nodes[0]
	early := dial(t, a, "kim", "phone", client.Options{})
	if err := early.Subscribe(testkit.Context(t, wait), "news"); err != nil {
		t.Fatal(err)
	}
	late := startNode(t, ns, "late", func(o *server.Options) {})
	testkit.WaitFor(t, "the late node learned kim and the room", func() bool {
		return late.broker.RemoteCount(server.CountUser, "kim") == 1 && late.srv.RoomSize("news") == 1
	})
	if n, err := late.srv.PushRoom("news", []byte("from the late node")); err != nil || n != 1 {
		t.Fatalf("PushRoom from the late node = %d, %v", n, err)
	}
	if got := push(t, early); got != "from the late node" {
		t.Fatalf("got %q", got)
	}

	stuck := dialService(t, late, service.Options{OnUplink: func(*service.Uplink) {}}) // never answers
	if _, err := stuck.Subscribe(testkit.Context(t, wait), service.Subscription{Routes: []string{"slow"}}); err != nil {
		t.Fatal(err)
	}
	fast := dialService(t, late, service.Options{OnUplink: func(u *service.Uplink) { _ = u.Reply([]byte("ok")) }})
	if _, err := fast.Subscribe(testkit.Context(t, wait), service.Subscription{Routes: []string{"fast"}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "a knows both routes", func() bool {
		return len(a.srv.ClusterHolders(server.CountRoute, "slow")) == 1 && len(a.srv.ClusterHolders(server.CountRoute, "fast")) == 1
	})
	slowErr := make(chan error, 1)
	go func() {
		_, err := early.Send(testkit.Context(t, wait), "slow", []byte("?"))
		slowErr <- err
	}()
	for i := 0; i < 5; i++ {
		if r, err := early.Send(testkit.Context(t, wait), "fast", []byte("?")); err != nil || string(r) != "ok" {
			t.Fatalf("fast route while the slow one waits: %q, %v", r, err)
		}
	}
	if err := testkit.Recv(t, slowErr, wait); !isErrCode(err, protocol.ErrorTimeout) {
		t.Fatalf("uplink to the stuck service: %v, want TIMEOUT", err)
	}
}

// TestClusterRoomJoinThenBroadcast: a member whose SUBSCRIBE has its OK on node B
// gets a broadcast node A sends right after, as on one node.
func TestClusterRoomJoinThenBroadcast(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	cl := dial(t, b, "ivy", "d1", client.Options{})
	if err := cl.Subscribe(testkit.Context(t, wait), "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.srv.PushRoom("fresh", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if got := push(t, cl); got != "first" {
		t.Fatalf("room push: %q", got)
	}
}

// TestClusterConnectThenPush: a user whose connection has its AUTH_OK on node B gets
// a push node A sends right after, as on one node.
func TestClusterConnectThenPush(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	cl := dial(t, b, "jack", "d1", client.Options{})
	if _, err := a.srv.PushUsers([]string{"jack"}, []byte("hello"), server.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := push(t, cl); got != "hello" {
		t.Fatalf("push: %q", got)
	}
}
