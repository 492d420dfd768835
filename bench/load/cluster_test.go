package load

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/kit/kittest"
)

// TestClusterSmoke runs the cluster measurement end to end at a tiny size: tetherd
// built here, one node and then 3 nodes on the Debian nats-server (the test fails
// if it is missing). Every connection must land on its node, every push and
// broadcast reach its members, the pushes and broadcasts must cross NATS (and no
// more than once per other node), and the client heartbeats must not: the heartbeat
// window may hold only the nodes' own heartbeats.
func TestClusterSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tetherd and starts child processes")
	}
	if _, err := os.Stat(kit.DefaultNATSServer); err != nil {
		t.Fatalf("the cluster measurement needs the Debian nats-server (apt-get install nats-server): %v", err)
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n, nodes, broadcasts = 60, 3, 3
	hbWindow := 2 * time.Second
	rep, err := RunCluster(ctx, ClusterConfig{N: n, Nodes: nodes, Src: "127.0.19.2", Warmup: 300 * time.Millisecond, Duration: time.Second,
		Broadcasts: broadcasts, Background: 3 * time.Second, HeartbeatWindow: hbWindow, Exe: os.Args[0], Env: kittest.ChildEnv(childEnv),
		Timeout: time.Minute, Log: kittest.Log{T: t}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	for _, side := range []*ClusterSide{rep.Single, rep.Cluster} {
		p, r := side.Push, side.Room
		if p.Connected != n || p.Failed != 0 || p.Lost != 0 || p.Delivered <= 0 || p.Errors != 0 || p.Lat.P50 <= 0 || p.CPUPerMsg <= 0 {
			t.Errorf("%d node(s): push %+v", side.Nodes, p)
		}
		if r.Members != n || len(r.LastMember) != broadcasts || r.Delivered != n*broadcasts {
			t.Errorf("%d node(s): room of %d, %d timed, %d delivered back to back", side.Nodes, r.Members, len(r.LastMember), r.Delivered)
		}
	}
	c := rep.Cluster
	if len(c.NodeConns) != nodes {
		t.Fatalf("connections per node %v", c.NodeConns)
	}
	for i, k := range c.NodeConns {
		if k != n/nodes {
			t.Errorf("node %d holds %d connections, want %d", i+1, k, n/nodes)
		}
	}
	if c.Background.Msgs <= 0 {
		t.Errorf("the idle cluster sent no node heartbeats in %vs", c.Background.Seconds)
	}
	requests := float64(c.Push.Delivered) / 100
	if got := c.PushNATS.NetMsgs / requests; got <= 0 || got > nodes {
		t.Errorf("%.2f NATS messages per push request of 100 users over %d nodes (%d in all)", got, nodes, c.PushNATS.Msgs)
	}
	if c.RoomNATS.Msgs < 2*broadcasts || c.RoomNATS.NetMsgs/(2*broadcasts) > nodes {
		t.Errorf("%d NATS messages for %d room broadcasts", c.RoomNATS.Msgs, 2*broadcasts)
	}
	// Node heartbeats every 3s (cluster.Options.Heartbeat's default): at most two
	// per node in the window, plus one of slack each.
	if c.Heartbeats < n || c.HeartbeatNATS.Msgs > nodes*(int64(hbWindow/(3*time.Second))+2) {
		t.Errorf("%d NATS messages in a window of %d client heartbeats", c.HeartbeatNATS.Msgs, c.Heartbeats)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report does not encode: %v", err)
	}
	if md := rep.MarkdownTable(); !strings.Contains(md, "| per client heartbeat") {
		t.Errorf("markdown table:\n%s", md)
	}
}
