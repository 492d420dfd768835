package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
)

// The cluster measurement compares a cluster of tetherd nodes on one nats-server
// with one tetherd holding the same load, in one run. On one node (no NATS, the
// default deployment) and then on the cluster it opens N connections (on the
// cluster loader i connects to node i % nodes, so user k of the interleaved user
// list is on node k % nodes) and runs the push scenario (a service on the first
// node's control port pushing to batches of users that span every node) and the
// room scenario (every connection joins one room) on them. Server CPU is the sum
// over the nodes. The nodes' tether_cluster_sent_messages_total and
// tether_cluster_sent_bytes_total, read at the same moments as the CPU, give what
// each operation costs in NATS traffic; the node heartbeats (tether.hb) and any
// other background traffic are measured on the idle cluster before any client
// connects and subtracted from every phase. A last phase reconnects the clients
// PINGing at a short interval and counts the NATS traffic per client heartbeat
// (the goal: none).

// ClusterConfig configures the cluster measurement. The zero value keeps the
// defaults in each field's doc.
type ClusterConfig struct {
	// N is the number of connections, on one node and over the cluster. Default
	// 19,000.
	N int
	// Nodes is the number of tetherd nodes in the cluster. Default 3.
	Nodes int
	// Loaders is the minimum number of load processes; on the cluster it is
	// rounded up to a multiple of Nodes. Default 2.
	Loaders int
	// Src is the first loader's source address. Default 127.0.8.2.
	Src string
	// Warmup and Duration are the push scenario's warmup and measured window.
	// Defaults 2s and 8s.
	Warmup, Duration time.Duration
	// Batch is the users per push request. Default 100.
	Batch int
	// MsgRate paces the pushes at this many messages per second across users; 0
	// means closed loop (pushConcurrency requests in flight), as the push
	// scenario. Default 0.
	MsgRate float64
	// QoS1 makes the pushes QoS1 (stored in the cluster's JetStream streams; kept
	// in the node's memory on one node). Default false.
	QoS1 bool
	// Broadcasts is how many room broadcasts are timed one by one, then sent back
	// to back. Default 10.
	Broadcasts int
	// Size is the payload in bytes (at least 16). Default 32.
	Size int
	// Background is the window on the idle cluster, before any client connects,
	// that measures the nodes' own NATS traffic (heartbeats). Default 6s, two
	// node heartbeats.
	Background time.Duration
	// PingInterval and HeartbeatWindow are the client heartbeat phase's PING
	// interval per connection and measured window. Defaults 1s and 8s.
	PingInterval, HeartbeatWindow time.Duration
	// NATSServer is the nats-server binary. Default kit.DefaultNATSServer.
	NATSServer string
	// Tetherd is the tetherd binary; empty means build ./cmd/tetherd.
	Tetherd string
	// Exe and Env are the children's binary and environment. Default: this one's.
	Exe string
	Env []string
	// Timeout bounds each of the two measurements (one node, the cluster).
	// Default 3m.
	Timeout time.Duration
	// Log receives progress; TTY shows a live progress line on it.
	Log io.Writer
	TTY bool
}

func (c ClusterConfig) withDefaults() (ClusterConfig, error) {
	if c.N <= 0 {
		c.N = 19_000
	}
	if c.Nodes <= 0 {
		c.Nodes = 3
	}
	if c.Nodes < 2 {
		return c, errors.New("cluster: a cluster needs at least 2 nodes")
	}
	if c.Loaders <= 0 {
		c.Loaders = 2
	}
	if c.Src == "" {
		c.Src = "127.0.8.2"
	}
	if _, err := netip.ParseAddr(c.Src); err != nil {
		return c, fmt.Errorf("bad source address: %w", err)
	}
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 8 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Broadcasts <= 0 {
		c.Broadcasts = 10
	}
	c.Size = max(c.Size, 32)
	if c.Background <= 0 {
		c.Background = 6 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = time.Second
	}
	if c.HeartbeatWindow <= 0 {
		c.HeartbeatWindow = 8 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Minute
	}
	return c, nil
}

// NATSTraffic is what the nodes sent to NATS over one phase, summed over the nodes.
type NATSTraffic struct {
	Msgs, Bytes int64
	Seconds     float64
	// NetMsgs and NetBytes are Msgs and Bytes less the background traffic
	// (ClusterSide.Background's rate) over the phase's seconds: what the phase's
	// operations caused.
	NetMsgs, NetBytes float64
	// NATSCPU is the nats-server's CPU seconds over the phase.
	NATSCPU float64
}

// ClusterSide is one topology's figures: one node, or the cluster.
type ClusterSide struct {
	Nodes int
	// NodeConns are the authenticated connections on each node once connected.
	NodeConns []int64
	// Push and Room are the push and room scenarios' results (server CPU summed
	// over the nodes).
	Push, Room *Result
	// PushNATS covers the push window, RoomNATS the timed and back-to-back room
	// broadcasts (2 x Broadcasts), HeartbeatNATS the client heartbeat window, and
	// Background the idle cluster before any client connected (cluster only).
	PushNATS, RoomNATS, HeartbeatNATS, Background *NATSTraffic `json:",omitempty"`
	// Heartbeats are the PONGs the clients had in the heartbeat window.
	Heartbeats int64 `json:",omitempty"`
}

// ClusterReport is the outcome of the cluster measurement.
type ClusterReport struct {
	Env             Env
	Config          ClusterConfig
	Single, Cluster *ClusterSide
	Seconds         float64
}

// RunCluster measures one node, then the cluster, and returns what it measured
// (also when it fails part way).
func RunCluster(ctx context.Context, cfg ClusterConfig) (*ClusterReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &ClusterReport{Env: kit.CurrentEnv(), Config: cfg}
	rep.Config.Log, rep.Config.Exe, rep.Config.Env = nil, "", nil
	start := time.Now()
	defer func() { rep.Seconds = time.Since(start).Seconds() }()
	work, err := os.MkdirTemp("", "tether-bench-cluster-")
	if err != nil {
		return rep, fmt.Errorf("cannot create work directory: %w", err)
	}
	defer os.RemoveAll(work)
	if cfg.Tetherd == "" {
		if cfg.Tetherd, err = kit.BuildTetherd(ctx, work); err != nil {
			return rep, err
		}
	}
	rc, err := RunConfig{Scenario: ScenarioPush, Impls: []string{ImplTetherd}, N: cfg.N, Loaders: cfg.Loaders, Src: cfg.Src,
		Heartbeat: time.Minute, Warmup: cfg.Warmup, Duration: cfg.Duration, Batch: cfg.Batch, Size: cfg.Size, MsgRate: cfg.MsgRate, QoS1: cfg.QoS1,
		Broadcasts: cfg.Broadcasts, Tetherd: cfg.Tetherd, Exe: cfg.Exe, Env: cfg.Env, Timeout: cfg.Timeout, Log: cfg.Log, TTY: cfg.TTY}.Defaults()
	if err != nil {
		return rep, err
	}
	if rep.Single, err = runSingle(ctx, rc); err != nil {
		return rep, fmt.Errorf("cluster: one node: %w", err)
	}
	// The cluster's loaders: a multiple of the nodes, from fresh source addresses.
	cc := rc
	cc.Loaders = (rc.Loaders + cfg.Nodes - 1) / cfg.Nodes * cfg.Nodes
	a := netip.MustParseAddr(cfg.Src)
	for range 4 * rc.Loaders {
		a = a.Next()
	}
	cc.Src = a.String()
	if rep.Cluster, err = runClusterSide(ctx, cc, cfg, work); err != nil {
		return rep, fmt.Errorf("cluster: %d nodes: %w", cfg.Nodes, err)
	}
	return rep, nil
}

// runSingle measures push and room on one tetherd.
func runSingle(ctx context.Context, rc RunConfig) (*ClusterSide, error) {
	ctx, cancel := context.WithTimeout(ctx, rc.Timeout)
	defer cancel()
	r := newRunner(rc)
	defer r.close()
	s, err := r.open(ctx, ImplTetherd, rc.N, true)
	if err != nil {
		return nil, err
	}
	s.name = "cluster: 1 node"
	defer s.close()
	side := &ClusterSide{Nodes: 1}
	if err := measurePushRoom(ctx, s, side, nil); err != nil {
		return side, err
	}
	return side, nil
}

// runClusterSide starts a nats-server and cfg.Nodes tetherd nodes on it, measures
// the background traffic, push and room, then the client heartbeat phase.
func runClusterSide(ctx context.Context, rc RunConfig, cfg ClusterConfig, work string) (*ClusterSide, error) {
	ctx, cancel := context.WithTimeout(ctx, rc.Timeout)
	defer cancel()
	r := newRunner(rc)
	defer r.close()
	nats, err := kit.StartNATS(ctx, kit.NATSConfig{Bin: cfg.NATSServer, Dir: work + "/jetstream", Out: r.log.Prefixed("nats-server")})
	if err != nil {
		return nil, err
	}
	defer nats.Stop()
	s := &session{r: r, name: fmt.Sprintf("cluster: %d nodes", cfg.Nodes), stopTick: make(chan struct{})}
	defer s.close()
	for i := range cfg.Nodes {
		t, err := kit.StartTetherd(ctx, kit.TetherdConfig{Bin: rc.Tetherd, Heartbeat: rc.Heartbeat, Control: i == 0,
			Out: r.log.Prefixed(fmt.Sprintf("node%d", i+1)), Args: []string{"-nats", nats.URL, "-nats-name", fmt.Sprintf("node%d", i+1)}})
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		s.nodes = append(s.nodes, &serverProc{impl: ImplTetherd, pid: t.PID(), addr: t.Addr, admin: t.Admin, control: t.Control,
			exited: t.Exited(), stop: t.Stop, gc: func() error { return kit.Settle(ctx, t.Admin) }})
	}
	s.srv = s.nodes[0]
	side := &ClusterSide{Nodes: cfg.Nodes}
	r.log.Printf("== %s on %s: waiting for every node to see %d", s.name, nats.URL, cfg.Nodes)
	if err := waitNodes(ctx, s.nodes, cfg.Nodes); err != nil {
		return side, err
	}
	// Background: the idle cluster's own traffic.
	if err := sleep(ctx, time.Second); err != nil {
		return side, err
	}
	r.log.Printf("   %s: idle cluster, no clients, %v", s.name, cfg.Background)
	m := &natsMeter{nodes: s.nodes, nats: nats.PID()}
	if err := m.begin(); err != nil {
		return side, err
	}
	if err := sleep(ctx, cfg.Background); err != nil {
		return side, err
	}
	if side.Background, err = m.end(); err != nil {
		return side, err
	}
	m.bg = side.Background

	if err := s.begin(ctx, ImplTetherd, rc.N); err != nil {
		return side, err
	}
	if err := measurePushRoom(ctx, s, side, m); err != nil {
		return side, err
	}

	// Client heartbeats: the same number of connections again, PINGing often.
	s.setPhase("reconnecting for the heartbeat phase")
	s.mark = nil
	s.stopLoaders()
	s.pingInterval = cfg.PingInterval
	if err := s.startLoaders(ctx, ImplTetherd, rc.N); err != nil {
		return side, err
	}
	if _, err := s.await(ctx, 2*time.Minute, "connected"); err != nil {
		return side, err
	}
	// Let the count changes (and the resumes' JetStream requests) of the reconnection
	// reach NATS first.
	if err := sleep(ctx, time.Second); err != nil {
		return side, err
	}
	if err := m.quiesce(ctx); err != nil {
		return side, err
	}
	if _, err := s.all(ctx, msg.Command{Op: "reset"}, "reset", 30*time.Second); err != nil {
		return side, err
	}
	s.setPhase(fmt.Sprintf("client heartbeats every %v, %v", cfg.PingInterval, cfg.HeartbeatWindow))
	if err := m.begin(); err != nil {
		return side, err
	}
	if err := sleep(ctx, cfg.HeartbeatWindow); err != nil {
		return side, err
	}
	st, err := s.all(ctx, msg.Command{Op: "report"}, "report", 30*time.Second)
	if err != nil {
		return side, err
	}
	if side.HeartbeatNATS, err = m.end(); err != nil {
		return side, err
	}
	side.Heartbeats = msg.Merge(st).Pongs
	return side, nil
}

// measurePushRoom runs the push and then the room scenario on s's connections;
// m, when set, meters the NATS traffic of each.
func measurePushRoom(ctx context.Context, s *session, side *ClusterSide, m *natsMeter) error {
	var merr error
	if m != nil {
		s.mark = func(ev string) {
			switch ev {
			case "window-start", "broadcasts-start":
				merr = errors.Join(merr, m.begin())
			case "window-end":
				t, err := m.end()
				merr = errors.Join(merr, err)
				side.PushNATS = t
			case "broadcasts-end":
				t, err := m.end()
				merr = errors.Join(merr, err)
				side.RoomNATS = t
			}
		}
	}
	nodes := s.nodes
	if len(nodes) == 0 {
		nodes = []*serverProc{s.srv}
	}
	for _, n := range nodes {
		c, err := scrapeMetrics(ctx, n.admin)
		if err != nil {
			return err
		}
		side.NodeConns = append(side.NodeConns, c["tether_connections_authenticated"])
	}
	side.Push = &Result{Scenario: ScenarioPush, Impl: ImplTetherd, N: s.r.cfg.N, Loaders: len(s.loaders)}
	if err := s.connectFigures(ctx, side.Push); err != nil {
		return err
	}
	if err := s.push(ctx, side.Push); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if m != nil {
		// QoS1 acknowledgements still being written through to JetStream belong to
		// the push, not to the room.
		if err := m.quiesce(ctx); err != nil {
			return err
		}
	}
	side.Room = &Result{Scenario: ScenarioRoom, Impl: ImplTetherd, N: s.r.cfg.N, Loaders: len(s.loaders)}
	if err := s.room(ctx, side.Room); err != nil {
		return fmt.Errorf("room: %w", err)
	}
	side.Push.Lost = s.sum().Lost
	return merr
}

// natsMeter reads the nodes' NATS counters and the nats-server's CPU at the start
// and end of a phase.
type natsMeter struct {
	nodes []*serverProc
	nats  int
	// bg is the background traffic subtracted from every phase, once measured.
	bg *NATSTraffic

	msgs0, bytes0 int64
	cpu0          float64
	t0            time.Time
}

func (m *natsMeter) read() (msgs, bytes int64, err error) {
	for _, n := range m.nodes {
		c, err := scrapeMetrics(context.Background(), n.admin)
		if err != nil {
			return 0, 0, err
		}
		msgs += c["tether_cluster_sent_messages_total"] + c["tether_cluster_stored_messages_total"] + c["tether_cluster_jetstream_requests_total"]
		bytes += c["tether_cluster_sent_bytes_total"] + c["tether_cluster_stored_bytes_total"]
	}
	return msgs, bytes, nil
}

// quiesce waits (at most a minute) until the nodes' NATS counters stand still for
// half a second: what an earlier phase left queued (QoS1 acknowledgements written
// through, say) is then not counted in the next.
func (m *natsMeter) quiesce(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	last, _, err := m.read()
	for still := 0; still < 2 && time.Now().Before(deadline); {
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
		n, _, err := m.read()
		if err != nil {
			return err
		}
		if n == last {
			still++
		} else {
			still, last = 0, n
		}
	}
	return err
}

func (m *natsMeter) begin() error {
	var err error
	m.msgs0, m.bytes0, err = m.read()
	m.cpu0, _ = kit.ProcCPU(m.nats)
	m.t0 = time.Now()
	return err
}

func (m *natsMeter) end() (*NATSTraffic, error) {
	msgs, bytes, err := m.read()
	if err != nil {
		return nil, err
	}
	cpu, _ := kit.ProcCPU(m.nats)
	t := &NATSTraffic{Msgs: msgs - m.msgs0, Bytes: bytes - m.bytes0, Seconds: time.Since(m.t0).Seconds(), NATSCPU: cpu - m.cpu0}
	t.NetMsgs, t.NetBytes = float64(t.Msgs), float64(t.Bytes)
	if m.bg != nil && m.bg.Seconds > 0 {
		t.NetMsgs = max(0, t.NetMsgs-float64(m.bg.Msgs)/m.bg.Seconds*t.Seconds)
		t.NetBytes = max(0, t.NetBytes-float64(m.bg.Bytes)/m.bg.Seconds*t.Seconds)
	}
	return t, nil
}

// waitNodes polls every node's tether_cluster_nodes until it is want.
func waitNodes(ctx context.Context, nodes []*serverProc, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		var last map[string]int64
		for _, n := range nodes {
			c, err := scrapeMetrics(ctx, n.admin)
			if err != nil {
				return err
			}
			if c["tether_cluster_nodes"] != int64(want) {
				ok, last = false, c
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("a node sees %d nodes of %d after 30s", last["tether_cluster_nodes"], want)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// scrapeMetrics returns the unlabelled integer samples of a tetherd's /metrics.
func scrapeMetrics(ctx context.Context, admin string) (map[string]int64, error) {
	hc := http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot read metrics of %s: %w", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", admin, resp.Status)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = int64(v)
		}
	}
	return out, sc.Err()
}

// per returns a/b, or 0 when b is 0.
func per(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// clusterRows returns the table: every figure on one node and on the cluster, and
// their ratio.
func (r *ClusterReport) clusterRows() ([]string, [][]string) {
	c := r.Config
	head := []string{"figure", "1 node", fmt.Sprintf("%d nodes", c.Nodes), fmt.Sprintf("%d nodes / 1 node", c.Nodes)}
	one, cl := r.Single, r.Cluster
	if one == nil {
		one = &ClusterSide{}
	}
	if cl == nil {
		cl = &ClusterSide{}
	}
	none := &Result{}
	push1, push3 := orResult(one.Push, none), orResult(cl.Push, none)
	room1, room3 := orResult(one.Room, none), orResult(cl.Room, none)
	var rows [][]string
	add := func(name string, a, b float64, format string) {
		fa, fb := "-", "-"
		if a > 0 {
			fa = fmt.Sprintf(format, a)
		}
		if b > 0 {
			fb = fmt.Sprintf(format, b)
		}
		rows = append(rows, []string{name, fa, fb, ratio(b, a)})
	}
	add("push: delivered msg/s", push1.DeliveredPS, push3.DeliveredPS, "%.0f")
	add("push: end-to-end p50 ms", float64(push1.Lat.P50)/1000, float64(push3.Lat.P50)/1000, "%.2f")
	add("push: end-to-end p99 ms", float64(push1.Lat.P99)/1000, float64(push3.Lat.P99)/1000, "%.2f")
	add("push: server CPU µs/msg (sum of nodes)", push1.CPUPerMsg, push3.CPUPerMsg, "%.2f")
	add(fmt.Sprintf("room of %d: last member p50 ms", room3.Members), median(room1.LastMember), median(room3.LastMember), "%.1f")
	add("room: last member max ms", maxOf(room1.LastMember), maxOf(room3.LastMember), "%.1f")
	add("room: delivered msg/s (back to back)", room1.DeliveredPS, room3.DeliveredPS, "%.0f")
	add("room: server CPU µs/msg (sum of nodes)", room1.CPUPerMsg, room3.CPUPerMsg, "%.2f")
	rows = append(rows, []string{"room: probe broadcasts until one reached every member", strconv.Itoa(room1.RoomProbes), strconv.Itoa(room3.RoomProbes), "-"})
	add("room: last join OK to the probe reaching all ms", room1.RoomSettleMS, room3.RoomSettleMS, "%.1f")
	// One node has no NATS: its column is "-".
	natsRow := func(name string, t *NATSTraffic, n float64) {
		if t == nil {
			return
		}
		rows = append(rows, []string{name + ": NATS msgs", "-", fmt.Sprintf("%.3f", per(t.NetMsgs, n)), "-"},
			[]string{name + ": NATS bytes", "-", fmt.Sprintf("%.1f", per(t.NetBytes, n)), "-"})
	}
	natsRow(fmt.Sprintf("per push request (%d users)", c.Batch), cl.PushNATS, float64(push3.Delivered)/float64(c.Batch))
	natsRow("per delivered push", cl.PushNATS, float64(push3.Delivered))
	natsRow("per room broadcast", cl.RoomNATS, float64(2*c.Broadcasts))
	natsRow(fmt.Sprintf("per client heartbeat (%d PONGs)", cl.Heartbeats), cl.HeartbeatNATS, float64(cl.Heartbeats))
	if bg := cl.Background; bg != nil && bg.Seconds > 0 {
		rows = append(rows, []string{"node heartbeats (idle cluster): NATS msgs/s per node", "-", fmt.Sprintf("%.2f", float64(bg.Msgs)/bg.Seconds/float64(c.Nodes)), "-"},
			[]string{"node heartbeats (idle cluster): NATS bytes/s per node", "-", fmt.Sprintf("%.1f", float64(bg.Bytes)/bg.Seconds/float64(c.Nodes)), "-"})
	}
	// nats-server's CPU comes in 10 ms ticks: below one tick over a phase it
	// reads "< one tick per unit".
	natsCPU := func(name string, cpu, n float64) {
		if n <= 0 {
			return
		}
		v := fmt.Sprintf("%.2f", cpu/n*1e6)
		if cpu == 0 {
			v = fmt.Sprintf("< %.2f", 0.01/n*1e6)
		}
		rows = append(rows, []string{name, "-", v, "-"})
	}
	if t := cl.PushNATS; t != nil {
		natsCPU("push: nats-server CPU µs/msg", t.NATSCPU, float64(push3.Delivered))
	}
	if t := cl.RoomNATS; t != nil {
		// RoomNATS spans the timed and the back-to-back broadcasts.
		natsCPU("room: nats-server CPU µs/broadcast", t.NATSCPU, float64(2*c.Broadcasts))
	}
	return head, rows
}

func orResult(r, none *Result) *Result {
	if r == nil {
		return none
	}
	return r
}

// median returns the middle value of v (the upper middle for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// params describes the measurement for the table's heading.
func (r *ClusterReport) params() string {
	c := r.Config
	spread := ""
	if r.Cluster != nil {
		var parts []string
		for _, n := range r.Cluster.NodeConns {
			parts = append(parts, strconv.FormatInt(n, 10))
		}
		spread = " (" + strings.Join(parts, "/") + ")"
	}
	pacing := fmt.Sprintf("%d requests in flight, closed loop", pushConcurrency)
	if c.MsgRate > 0 {
		pacing = fmt.Sprintf("paced at %.0f msgs/s", c.MsgRate)
	}
	if c.QoS1 {
		pacing += ", QoS1 (acknowledged; on the cluster stored in JetStream)"
	}
	return fmt.Sprintf("%d connections on 1 tetherd (no NATS), then spread over %d tetherd nodes%s on one nats-server (JetStream on), "+
		"loader i connecting to node i %% %d; push: a service on node 1's control port, %d users per request (each spanning every node), "+
		"%s, %v warmup, %v window; room: every connection a member, %d broadcasts of %d bytes timed one by one, "+
		"then %d back to back (CPU); server CPU summed over the nodes; NATS: the nodes' tether_cluster_sent_* counters over each phase, "+
		"less the idle cluster's own traffic (node heartbeats, measured for %v before any client); client heartbeats: the connections again, "+
		"each PINGing every %v for %v",
		c.N, c.Nodes, spread, c.Nodes, c.Batch, pacing, c.Warmup, c.Duration, c.Broadcasts, c.Size, c.Broadcasts, c.Background,
		c.PingInterval, c.HeartbeatWindow)
}

// WriteText writes the report as a table.
func (r *ClusterReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tether-bench cluster: %s\nmachine: %s\nstarted: %s, took %.0fs\n\n", r.params(), r.Env.Machine(),
		r.Env.Started.Format(time.RFC3339), r.Seconds)
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	head, rows := r.clusterRows()
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	b.WriteString(r.notes())
	_, err := io.WriteString(w, b.String())
	return err
}

// notes lists failures, losses and push errors of either side.
func (r *ClusterReport) notes() string {
	var b strings.Builder
	for _, side := range []*ClusterSide{r.Single, r.Cluster} {
		if side == nil || side.Push == nil {
			continue
		}
		p := side.Push
		if p.Failed > 0 || p.Lost > 0 || p.Errors > 0 {
			fmt.Fprintf(&b, "%d node(s): %d connections failed (%s), %d lost, %d push requests failed\n", side.Nodes, p.Failed,
				msg.Reasons(p.Failures), p.Lost, p.Errors)
		}
	}
	return b.String()
}

// MarkdownTable renders the table in Markdown.
func (r *ClusterReport) MarkdownTable() string {
	var b strings.Builder
	head, rows := r.clusterRows()
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat("---|", len(head)) + "\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// clusterCmd is the command line equivalent to cfg, for BENCHMARKS.md.
func clusterCmd(cfg ClusterConfig) string {
	s := fmt.Sprintf("tether-bench cluster -n %d -nodes %d -broadcasts %d -warmup %v -duration %v -hb-window %v",
		cfg.N, cfg.Nodes, cfg.Broadcasts, cfg.Warmup, cfg.Duration, cfg.HeartbeatWindow)
	if cfg.MsgRate > 0 {
		s += fmt.Sprintf(" -msg-rate %.0f", cfg.MsgRate)
	}
	return s
}

func mainCluster(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cluster", stderr)
	var cfg ClusterConfig
	fs.IntVar(&cfg.N, "n", 19000, "The connections, on one node and spread over the cluster.")
	fs.IntVar(&cfg.Nodes, "nodes", 3, "The tetherd nodes of the cluster.")
	fs.IntVar(&cfg.Loaders, "loaders", 2, "The minimum number of load processes (on the cluster, rounded up to a multiple of -nodes).")
	fs.StringVar(&cfg.Src, "src", "127.0.8.2", "The first loader's loopback source address; every further loader uses the next one.")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "push: the time the load runs before the measured window.")
	fs.DurationVar(&cfg.Duration, "duration", 8*time.Second, "push: the measured window.")
	fs.IntVar(&cfg.Batch, "batch", 100, "push: users per push request.")
	fs.Float64Var(&cfg.MsgRate, "msg-rate", 0, "push: messages per second across users; 0 means closed loop (as the push scenario).")
	fs.BoolVar(&cfg.QoS1, "qos1", false, "push: push QoS1 (on the cluster: stored in JetStream) instead of QoS0.")
	fs.IntVar(&cfg.Broadcasts, "broadcasts", 10, "room: broadcasts timed one by one, then sent back to back.")
	fs.DurationVar(&cfg.Background, "background", 6*time.Second, "The window on the idle cluster that measures the nodes' own NATS traffic.")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", time.Second, "The client heartbeat phase's PING interval per connection.")
	fs.DurationVar(&cfg.HeartbeatWindow, "hb-window", 8*time.Second, "The client heartbeat phase's measured window.")
	fs.StringVar(&cfg.NATSServer, "nats-server", kit.DefaultNATSServer, "The nats-server binary (Debian package nats-server).")
	fs.StringVar(&cfg.Tetherd, "tetherd", "", "The tetherd binary; empty means build ./cmd/tetherd with go build (run from the module).")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "The time limit for each of the two measurements (one node, the cluster).")
	jsonOut := fs.String("json", "", "Also write the report as JSON to this file; - means stdout, after the table.")
	quiet := fs.Bool("q", false, "Print no progress and no child output on stderr.")
	if err := kit.Parse(fs, args); err != nil {
		return err
	}
	if !*quiet {
		cfg.Log, cfg.TTY = stderr, isTerminal(stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := RunCluster(ctx, cfg)
	if rep != nil && (rep.Single != nil || rep.Cluster != nil) {
		if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if *jsonOut != "" {
		return kit.WriteJSON(*jsonOut, rep, stdout)
	}
	return nil
}
