package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
	"github.com/tether-gw/tether/server"
)

// The cluster's fault tests (issue 11): real tetherd processes on the Debian
// nats-server, behind a real haproxy (PROXY v2, /readyz checks every 200 ms, one failed
// check marks a node down), faults made by the test itself.

// clusterNodeTimeout is how long the other nodes wait for a silent node's heartbeat
// (server/cluster: Options.NodeTimeout) and clusterHeartbeat how often a node sends one.
const (
	clusterNodeTimeout = 7 * time.Second
	clusterHeartbeat   = 3 * time.Second
)

// startCluster starts three tetherd nodes on a nats-server binary and haproxy in front
// of them; it returns the nodes, the frontend's address and the NATS server.
func startCluster(t *testing.T) ([]*tetherdProc, string, *testkit.NATSProc) {
	t.Helper()
	ns := testkit.NATSProcess(t)
	bin := buildTetherd(t)
	ports := testkit.FreePorts(t, 10)
	var nodes []*tetherdProc
	var backends string
	for i := range 3 {
		name := "node" + strconv.Itoa(i+1)
		p := startTetherd(t, bin, name, [3]int{ports[1+3*i], ports[2+3*i], ports[3+3*i]},
			"-nats", ns.URL(), "-nats-name", name, "-heartbeat", "5s")
		nodes = append(nodes, p)
		backends += fmt.Sprintf("    server %s %s port %d\n", name, p.addr, ports[2+3*i])
	}
	testkit.HAProxy(t, fmt.Sprintf(`frontend tether
    bind 127.0.0.1:%d
    default_backend tetherd

backend tetherd
    balance roundrobin
    retries 3
    option redispatch 1
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 200ms fall 1 rise 1 send-proxy-v2
%s`, ports[0], backends), ports[0])
	return nodes, testkit.HAProxyAddr(ports[0]), ns
}

// roomSize is the room's member count as node's control port answers it (the whole
// cluster's), or -1 when it does not answer.
func roomSize(n *tetherdProc, room string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := n.svc.Presence(ctx, nil, []string{room})
	if err != nil {
		return -1
	}
	return r.Rooms[room]
}

// reconnectLog records, per client, when it reached StateConnected.
type reconnectLog struct {
	mu        sync.Mutex
	connected [][]time.Time
}

func (l *reconnectLog) hook(i int) func(client.State, error) {
	return func(s client.State, _ error) {
		if s == client.StateConnected {
			l.mu.Lock()
			l.connected[i] = append(l.connected[i], time.Now())
			l.mu.Unlock()
		}
	}
}

// after returns client i's first connect after t0, if any.
func (l *reconnectLog) after(i int, t0 time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, at := range l.connected[i] {
		if at.After(t0) {
			return at, true
		}
	}
	return time.Time{}, false
}

// TestClusterNodeLoss: fifteen reconnecting clients, each in one room, spread by
// haproxy over three nodes; one node is killed with SIGKILL (no drain, no goodbye on
// NATS). Every client it held is connected again, to a survivor, within 5 s of the kill
// (p50/p99/max logged); the room's cluster-wide size seen from a survivor, which counts
// the dead node's members as ghosts until the survivors stop hearing its heartbeat,
// comes back to exactly N within the node timeout plus one heartbeat tick and a margin;
// and a push by user through a survivor's control port reaches every client.
func TestClusterNodeLoss(t *testing.T) {
	const (
		users = 15
		room  = "fault-room"
	)
	nodes, fe, _ := startCluster(t)
	log := &reconnectLog{connected: make([][]time.Time, users)}
	led := newQoSLedger()
	names := make([]string, users)
	clients := make([]*client.Client, users)
	pushes := make([]chan string, users)
	for i := range users {
		names[i] = "loss" + strconv.Itoa(i)
		pushes[i] = make(chan string, 16)
		ch := pushes[i]
		c, err := client.Dial(testkit.Context(t, 10*time.Second), fe, client.Options{
			Token: names[i], DeviceID: "dev", BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
			Dialer: fromSource("127.0.0." + strconv.Itoa(60+i)), OnStateChange: log.hook(i),
			OnPush: led.onPush(names[i], func(p client.Push) {
				select {
				case ch <- string(p.Payload):
				default:
				}
			}),
		})
		if err != nil {
			t.Fatalf("%s through haproxy: %v", names[i], err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Subscribe(testkit.Context(t, 5*time.Second), room); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	for _, n := range nodes {
		testkit.WaitFor(t, n.name+" sees the whole room", func() bool { return roomSize(n, room) == users })
	}
	// The victim is the node holding most of the clients (round robin: five each).
	ctx := testkit.Context(t, 60*time.Second)
	var victim *tetherdProc
	var moved []int
	var survivors []*tetherdProc
	for _, n := range nodes {
		on, _, err := n.online(ctx, names)
		if err != nil {
			t.Fatal(err)
		}
		var held []int
		for u := range on {
			held = append(held, slices.Index(names, u))
		}
		if len(held) > len(moved) {
			if victim != nil {
				survivors = append(survivors, victim)
			}
			victim, moved = n, held
			continue
		}
		survivors = append(survivors, n)
	}
	if victim == nil || len(survivors) != 2 {
		t.Fatalf("no node holds a client")
	}
	victimID := server.NodeOf(clients[moved[0]].ConnID())
	t.Logf("killing %s (node id %d) holding %d of %d clients", victim.name, victimID, len(moved), users)

	// A service on a survivor pushes QoS1 messages to every user throughout.
	var pushing sync.WaitGroup
	stop := make(chan struct{})
	pushing.Add(1)
	go led.pushUntil(survivors[0].svc, names, stop, &pushing)
	led.moreRounds(t, names[users-1], 5)

	killAt := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.exited

	// Every moved client connected again within 5 s, to a survivor.
	var took []time.Duration
	deadline := killAt.Add(15 * time.Second)
	for _, i := range moved {
		for {
			at, ok := log.after(i, killAt)
			if ok && clients[i].State() == client.StateConnected {
				took = append(took, at.Sub(killAt))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not connected again 15 s after the kill (state %v)", names[i], clients[i].State())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if id := server.NodeOf(clients[i].ConnID()); id == victimID {
			t.Fatalf("%s is back on the dead node's id %d", names[i], id)
		}
	}
	slices.Sort(took)
	p50, p99, worst := took[len(took)/2], took[(len(took)*99+99)/100-1], took[len(took)-1]
	t.Logf("reconnect after kill -9 of %s: %d clients, p50 %v, p99 %v, max %v", victim.name, len(took),
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	if worst > 5*time.Second {
		t.Errorf("slowest reconnect %v after the kill, want within 5 s", worst)
	}
	// QoS1 pushed before, during and after the outage: none lost, none duplicated.
	led.moreRounds(t, names[users-1], 5)
	close(stop)
	pushing.Wait()
	sent, lost, dup := led.settle(t, names, 20*time.Second)
	t.Logf("QoS1 across the kill -9: %d messages accepted, %d lost, %d duplicated", sent, lost, dup)

	// The clients that were elsewhere never noticed.
	for i := range users {
		if !slices.Contains(moved, i) {
			if _, ok := log.after(i, killAt); ok {
				t.Errorf("%s on a survivor reconnected too", names[i])
			}
		}
	}

	// The room's size from a survivor: back to exactly N once the dead node's members
	// are forgotten (no later than NodeTimeout after its last heartbeat, checked at each
	// heartbeat tick).
	// Each survivor forgets on its own heartbeat tick.
	bound := clusterNodeTimeout + clusterHeartbeat + 2*time.Second
	for _, sv := range survivors {
		for {
			n := roomSize(sv, room)
			if n == users {
				break
			}
			if time.Since(killAt) > bound {
				t.Fatalf("room size seen from %s is %d %v after the kill, want %d (ghost members of the dead node)",
					sv.name, n, time.Since(killAt).Round(time.Millisecond), users)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("room size back to %d on %s %v after the kill", users, sv.name, time.Since(killAt).Round(time.Millisecond))
	}
	// Nothing counts the dead node any more: the size stays N over another heartbeat tick.
	stable := time.Now().Add(clusterHeartbeat + time.Second)
	for time.Now().Before(stable) {
		for _, sv := range survivors {
			if n := roomSize(sv, room); n != users {
				t.Fatalf("room size seen from %s went to %d after converging, want %d", sv.name, n, users)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A push by user through a survivor reaches every client, wherever it now is.
	svc := survivors[0].svc
	for i, u := range names {
		payload := "after the loss " + u
		res, err := svc.PushUsers(ctx, []string{u}, []byte(payload), service.PushOptions{})
		if err != nil || res.Delivered != 1 {
			t.Fatalf("push to %s through %s: %+v, %v", u, survivors[0].name, res, err)
		}
		select {
		case p := <-pushes[i]:
			if p != payload {
				t.Fatalf("%s got %q, want %q", u, p, payload)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never got the push through %s", u, survivors[0].name)
		}
	}
	// And a room push reaches the N members exactly.
	res, err := svc.PushRoom(ctx, room, []byte("room after the loss"))
	if err != nil || res.Delivered != users {
		t.Fatalf("room push through %s: %+v, %v; want %d delivered", survivors[0].name, res, err, users)
	}
}

// clusterGauge reads one unlabelled series from node's /metrics, or -1.
func clusterGauge(t *testing.T, n *tetherdProc, series string) float64 {
	t.Helper()
	hc := http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get("http://" + n.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if val, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("%s /metrics: %q: %v", n.name, sc.Text(), err)
			}
			return f
		}
	}
	return -1
}

// clusterSent reads tether_cluster_sent_messages_total and _bytes_total from node's
// /metrics.
func clusterSent(t *testing.T, n *tetherdProc) (msgs, bytes uint64) {
	t.Helper()
	hc := http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get("http://" + n.admin + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.name, err)
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "tether_cluster_sent_messages_total":
			msgs, err = strconv.ParseUint(val, 10, 64)
			found++
		case "tether_cluster_sent_bytes_total":
			bytes, err = strconv.ParseUint(val, 10, 64)
			found++
		}
		if err != nil {
			t.Fatalf("%s /metrics: %q: %v", n.name, sc.Text(), err)
		}
	}
	if found != 2 {
		t.Fatalf("%s /metrics lacks the tether_cluster_sent_* series", n.name)
	}
	return msgs, bytes
}

// TestClusterHeartbeatsStayOffNATS: client heartbeats never touch NATS. A fixed set of
// idle connections (each in a room, so every node has room subscriptions and counts)
// sends PINGs as fast as the gateway answers them for a few seconds; over that window
// each node's count of messages sent to NATS grows by no more than its own node
// heartbeats explain (one per 3 s: at most window/3s + 1), however many PINGs it
// answered.
func TestClusterHeartbeatsStayOffNATS(t *testing.T) {
	const (
		users  = 15
		room   = "idle-room"
		window = 4 * time.Second
	)
	nodes, fe, _ := startCluster(t)
	clients := make([]*client.Client, users)
	for i := range users {
		c, err := client.Dial(testkit.Context(t, 10*time.Second), fe, client.Options{
			Token: "idle" + strconv.Itoa(i), DeviceID: "dev", NoReconnect: true,
			Dialer: fromSource("127.0.0." + strconv.Itoa(90+i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Subscribe(testkit.Context(t, 5*time.Second), room); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	for _, n := range nodes {
		testkit.WaitFor(t, n.name+" sees the whole room", func() bool { return roomSize(n, room) == users })
	}
	// Every node now counts every member: each node's last count flush has been sent
	// (and received), so what follows is idle.

	type sample struct{ msgs, bytes uint64 }
	before := make([]sample, len(nodes))
	for i, n := range nodes {
		before[i].msgs, before[i].bytes = clusterSent(t, n)
	}
	start := time.Now()
	pings := make([]int, users)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < window {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Ping(ctx)
				cancel()
				if err != nil {
					t.Errorf("ping %d: %v", i, err)
					return
				}
				pings[i]++
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for _, p := range pings {
		total += p
	}
	allowed := uint64(elapsed/clusterHeartbeat) + 1
	for i, n := range nodes {
		msgs, bytes := clusterSent(t, n)
		dm, db := msgs-before[i].msgs, bytes-before[i].bytes
		t.Logf("%s: %d messages (%d bytes) to NATS in %v while the clients sent %d PINGs in all; node heartbeats allow %d",
			n.name, dm, db, elapsed.Round(time.Millisecond), total, allowed)
		if dm > allowed {
			t.Errorf("%s sent %d messages to NATS during %d PINGs in %v, want at most %d (its own heartbeats)",
				n.name, dm, total, elapsed.Round(time.Millisecond), allowed)
		}
	}
	if total < 100*int(allowed) {
		t.Fatalf("only %d PINGs in %v: too few to tell", total, elapsed)
	}
}
