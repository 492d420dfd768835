// Package cluster is tether's NATS broker: it makes several tetherd nodes one gateway by
// carrying each operation's cross-node part (server.Broker) over a NATS server, the way
// Centrifugo's NATS broker does.
//
// # Subjects (Prefix "tether" by default)
//
//	tether.node.<id>    one node: pushes and kicks by connection id, and the per-user
//	                    operations (pushes, kicks, joins, device-policy logins), sent
//	                    only to the nodes that announced connections of those users
//	tether.room.<name>  one room (name base64url-encoded): a node subscribes while it has
//	                    members, so a broadcast reaches only interested nodes and each
//	                    encodes its frame once
//	tether.all          broadcasts to everyone
//	tether.counts       each node's count changes: its connections per user and members
//	                    per room, batched every CountFlush (20 ms), numbered so a receiver
//	                    that missed a batch asks the sender for its full state
//	tether.hb           each node's heartbeat, every Heartbeat (3 s); a node silent for
//	                    NodeTimeout (7 s) is dead and its counts are forgotten (a dead
//	                    node says nothing, and no synthetic events are sent for it)
//	tether.sync.<id>    a request for node id's full counts (a node that joins late, or
//	                    saw a gap, or reconnected to NATS)
//
// # Failure semantics
//
// While NATS is unreachable a node serves its own clients as a single node would; every
// cross-node part of an operation fails at once with server.ErrClusterUnavailable (the
// client is configured not to buffer while reconnecting, so nothing hangs or is sent
// late). When NATS returns the client resubscribes, the node sends its full counts and
// asks the others for theirs, and the cluster converges.
//
// # Concurrency
//
// Count and Publish are called on the server's push and auth paths, some under hub
// locks: Count only updates a map under b.mu (a leaf lock) and Publish hands bytes to the
// NATS client, which buffers them. Room subscriptions change on the flusher goroutine.
// Messages from other nodes are applied on the NATS client's delivery goroutines.
package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-gw/tether/server"
)

// Options configures a Broker.
type Options struct {
	// URL is the NATS server (or comma-separated servers), e.g. nats://127.0.0.1:4222.
	// Required.
	URL string
	// Name names this node in NATS and in logs. Default "tether".
	Name string
	// User and Password, or Token, or CredsFile authenticate to NATS.
	User, Password, Token, CredsFile string
	// Prefix starts every subject. Default "tether".
	Prefix string
	// Heartbeat is how often a node says it is alive; NodeTimeout how long one may be
	// silent before the others forget its connections. Defaults 3s and 7s.
	Heartbeat, NodeTimeout time.Duration
	// CountFlush is how often count changes are sent. Default 20ms.
	CountFlush time.Duration
	// NATSOptions are extra nats.go options (TLS, for example).
	NATSOptions []nats.Option
	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.URL == "" {
		return o, errors.New("cluster: a NATS URL is required")
	}
	if o.Name == "" {
		o.Name = "tether"
	}
	if o.Prefix == "" {
		o.Prefix = "tether"
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 3 * time.Second
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 7 * time.Second
	}
	if o.CountFlush == 0 {
		o.CountFlush = 20 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Broker is the NATS implementation of server.Broker.
type Broker struct {
	opts     Options
	log      *slog.Logger
	node     uint16
	instance uint64 // random per process: tells a restarted node from its old self
	srv      *server.Server
	nc       *nats.Conn

	mu sync.Mutex // a leaf: nothing is taken under it
	// local holds this node's counts; dirty the keys changed since the last flush.
	local map[countKey]int
	dirty map[countKey]struct{}
	// rooms are the room subscriptions this node holds.
	rooms map[string]*nats.Subscription
	// peers are the other live nodes and what they announced.
	peers map[uint16]*peer
	// remote sums, per key, the peers' counts.
	remote map[countKey]int
	seq    uint64

	stop chan struct{}
	// kick wakes the flusher at once when a key appears (a first connection of a user,
	// a first member of a room), so other nodes learn of it within a round trip rather
	// than at the next CountFlush.
	kick    chan struct{}
	done    sync.WaitGroup
	stopped atomic.Bool
	// streams keep the users' QoS1 streams; live is their feed (qos.go).
	streams *UserStreams
	live    *nats.Subscription
	// Sent and received byte and message counts (metrics).
	sentMsgs, sentBytes atomic.Uint64
}

type countKey struct {
	kind server.CountKind
	key  string
}

// peer is another node as this one knows it.
type peer struct {
	instance uint64
	seq      uint64
	seen     time.Time
	counts   map[countKey]int
	// synced is set once its full state arrived; syncing while one is asked for.
	synced, syncing bool
	// early are the batches that arrived while a full state was asked for: the full
	// state, which may come after some of them (another subject), is applied first,
	// then those newer than it. At most maxEarly; lost says more came.
	early []countBatch
	lost  bool
}

// countBatch is one numbered batch of count changes.
type countBatch struct {
	seq     uint64
	entries []countEntry
}

// maxEarly bounds the batches kept while a full state is on its way.
const maxEarly = 256

// New returns a broker for opts; it connects when the server starts it.
func New(opts Options) (*Broker, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var r [10]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	return &Broker{
		opts: o, log: o.Logger,
		node:     uint16(binary.BigEndian.Uint16(r[:2])%server.MaxNodeID) + 1,
		instance: binary.BigEndian.Uint64(r[2:]),
		local:    map[countKey]int{}, dirty: map[countKey]struct{}{},
		rooms: map[string]*nats.Subscription{}, peers: map[uint16]*peer{}, remote: map[countKey]int{},
		stop: make(chan struct{}), kick: make(chan struct{}, 1),
	}, nil
}

// NodeID implements server.Broker.
func (b *Broker) NodeID() uint16 { return b.node }

func (b *Broker) subject(parts ...string) string {
	s := b.opts.Prefix
	for _, p := range parts {
		s += "." + p
	}
	return s
}

func (b *Broker) nodeSubject(id uint16) string { return b.subject("node", strconv.Itoa(int(id))) }

func (b *Broker) roomSubject(room string) string {
	return b.subject("room", base64.RawURLEncoding.EncodeToString([]byte(room)))
}

// Start implements server.Broker: it connects, makes sure no live node has its id,
// subscribes and asks the others for their counts.
func (b *Broker) Start(srv *server.Server) error {
	b.srv = srv
	opts := []nats.Option{
		nats.Name(b.opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1), // fail fast while disconnected: never send late
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("cluster: NATS connection lost; serving local clients only", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			b.log.Info("cluster: NATS connection back; resynchronising")
			b.resync()
			go b.srv.ResyncQoS()
		}),
		nats.ErrorHandler(b.onAsyncError),
	}
	switch {
	case b.opts.CredsFile != "":
		opts = append(opts, nats.UserCredentials(b.opts.CredsFile))
	case b.opts.Token != "":
		opts = append(opts, nats.Token(b.opts.Token))
	case b.opts.User != "":
		opts = append(opts, nats.UserInfo(b.opts.User, b.opts.Password))
	}
	opts = append(opts, b.opts.NATSOptions...)
	nc, err := nats.Connect(b.opts.URL, opts...)
	if err != nil {
		return fmt.Errorf("cluster: cannot connect to NATS at %s: %w", b.opts.URL, err)
	}
	b.nc = nc
	if err := b.claimNode(); err != nil {
		nc.Close()
		return err
	}
	subs := []struct {
		subj string
		fn   nats.MsgHandler
	}{
		{b.nodeSubject(b.node), b.onOp},
		{b.subject("all"), b.onOp},
		{b.subject("counts"), b.onCounts},
		{b.subject("hb"), b.onHeartbeat},
		{b.subject("sync", strconv.Itoa(int(b.node))), b.onSync},
		{b.subject("query"), b.onQuery},
		{b.nodeSubject(b.node) + ".req", b.onRequest},
	}
	for _, s := range subs {
		if _, err := nc.Subscribe(s.subj, s.fn); err != nil {
			nc.Close()
			return fmt.Errorf("cluster: subscribe %s: %w", s.subj, err)
		}
	}
	if err := b.startStreams(); err != nil {
		nc.Close()
		return err
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return fmt.Errorf("cluster: NATS: %w", err)
	}
	b.done.Add(2)
	go b.flushLoop()
	go b.heartbeatLoop()
	b.heartbeat() // the others learn of this node now, and ask for its state
	b.log.Info("cluster: joined", "nats", nc.ConnectedUrl(), "node", b.node, "name", b.opts.Name)
	return nil
}

// claimNode makes sure no live node answers for this node's id, picking another if one
// does.
func (b *Broker) claimNode() error {
	for range 16 {
		_, err := b.nc.Request(b.subject("sync", strconv.Itoa(int(b.node))), nil, 200*time.Millisecond)
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cluster: probing node id: %w", err)
		}
		b.node = b.node%server.MaxNodeID + 1
	}
	return errors.New("cluster: no free node id found")
}

// Close implements server.Broker.
func (b *Broker) Close() error {
	if !b.stopped.CompareAndSwap(false, true) {
		return nil
	}
	close(b.stop)
	b.done.Wait()
	if b.nc != nil {
		b.nc.Close()
	}
	return nil
}

// Publish implements server.Broker.
func (b *Broker) Publish(m *server.ClusterMessage) error {
	if !b.Available() {
		return server.ErrClusterUnavailable
	}
	if m.All {
		return b.send(b.subject("all"), encodeOp(b.node, m))
	}
	if len(m.Nodes) > 0 {
		for _, n := range m.Nodes {
			if err := b.send(b.nodeSubject(n), encodeOp(b.node, m)); err != nil {
				return err
			}
		}
		return nil
	}
	switch m.Kind {
	case server.ClusterPushRoom:
		return b.send(b.roomSubject(m.Room), encodeOp(b.node, m))
	case server.ClusterBroadcast, server.ClusterEvent:
		return b.send(b.subject("all"), encodeOp(b.node, m))
	case server.ClusterPushConns, server.ClusterKickConns:
		byNode := map[uint16][]uint64{}
		for _, id := range m.Conns {
			byNode[server.NodeOf(id)] = append(byNode[server.NodeOf(id)], id)
		}
		for n, ids := range byNode {
			mm := *m
			mm.Conns = ids
			if err := b.send(b.nodeSubject(n), encodeOp(b.node, &mm)); err != nil {
				return err
			}
		}
		return nil
	case server.ClusterLogin:
		mm := *m
		mm.Users = []string{m.Login.UserID}
		return b.toUsersNodes(&mm)
	}
	return b.toUsersNodes(m)
}

// toUsersNodes sends m, a per-user operation, to each node holding connections of its
// users, with only those users.
func (b *Broker) toUsersNodes(m *server.ClusterMessage) error {
	byNode := map[uint16][]string{}
	b.mu.Lock()
	for _, u := range m.Users {
		k := countKey{server.CountUser, u}
		for id, p := range b.peers {
			if p.counts[k] > 0 {
				byNode[id] = append(byNode[id], u)
			}
		}
	}
	b.mu.Unlock()
	for n, users := range byNode {
		mm := *m
		mm.Users = users
		if err := b.send(b.nodeSubject(n), encodeOp(b.node, &mm)); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) send(subj string, data []byte) error {
	if err := b.nc.Publish(subj, data); err != nil {
		return server.ErrClusterUnavailable
	}
	b.sentMsgs.Add(1)
	b.sentBytes.Add(uint64(len(data)))
	return nil
}

// onOp applies an operation another node sent.
func (b *Broker) onOp(msg *nats.Msg) {
	r := reader{b: msg.Data}
	from, kind := r.u16(), r.u8()
	if r.err != nil || from == b.node {
		return // ours (broadcasts and rooms reach the sender too)
	}
	m, err := decodeOp(kind, &r)
	if err != nil {
		b.log.Warn("cluster: malformed message", "subject", msg.Subject, "err", err)
		return
	}
	b.srv.ApplyCluster(m)
}

// Count implements server.Broker.
func (b *Broker) Count(kind server.CountKind, key string, n int) {
	k := countKey{kind, key}
	b.mu.Lock()
	_, had := b.local[k]
	if n == 0 {
		delete(b.local, k)
	} else {
		b.local[k] = n
	}
	b.dirty[k] = struct{}{}
	b.mu.Unlock()
	if n > 0 && !had {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// Available implements server.Broker.
func (b *Broker) Available() bool { return b.nc != nil && b.nc.IsConnected() }

// Holders implements server.Broker.
func (b *Broker) Holders(kind server.CountKind, key string) map[uint16]int {
	k := countKey{kind, key}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out map[uint16]int
	for id, p := range b.peers {
		if n := p.counts[k]; n > 0 {
			if out == nil {
				out = map[uint16]int{}
			}
			out[id] = n
		}
	}
	return out
}

// Keys implements server.Broker.
func (b *Broker) Keys(kind server.CountKind) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for k := range b.remote {
		if k.kind == kind {
			out = append(out, k.key)
		}
	}
	return out
}

// Request implements server.Broker: a NATS request to node's request subject.
func (b *Broker) Request(ctx context.Context, node uint16, payload []byte) ([]byte, error) {
	if !b.Available() {
		return nil, server.ErrClusterUnavailable
	}
	b.sentMsgs.Add(1)
	b.sentBytes.Add(uint64(len(payload)))
	msg, err := b.nc.RequestWithContext(ctx, b.nodeSubject(node)+".req", payload)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, server.ErrClusterUnavailable
		}
		return nil, err
	}
	return msg.Data, nil
}

// onRequest hands another node's request to the server's Handler; the answer goes back
// whenever the Handler responds.
func (b *Broker) onRequest(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	b.srv.AnswerRequest(msg.Data, func(resp []byte) { _ = msg.Respond(resp) })
}

// RemoteCount implements server.Broker.
func (b *Broker) RemoteCount(kind server.CountKind, key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.remote[countKey{kind, key}]
}

// flushLoop sends count changes every CountFlush and keeps room subscriptions in step
// with the rooms that have local members.
func (b *Broker) flushLoop() {
	defer b.done.Done()
	t := time.NewTicker(b.opts.CountFlush)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.flush()
		case <-b.kick:
			b.flush()
		}
	}
}

func (b *Broker) flush() {
	b.mu.Lock()
	if len(b.dirty) == 0 {
		b.mu.Unlock()
		return
	}
	entries := make([]countEntry, 0, len(b.dirty))
	var join, leave []string
	for k := range b.dirty {
		n := b.local[k]
		entries = append(entries, countEntry{k.kind, k.key, uint32(n)})
		if k.kind == server.CountRoom {
			_, sub := b.rooms[k.key]
			switch {
			case n > 0 && !sub:
				join = append(join, k.key)
			case n == 0 && sub:
				leave = append(leave, k.key)
			}
		}
	}
	clear(b.dirty)
	b.seq++
	data := encodeCounts(b.node, b.instance, b.seq, false, entries)
	b.mu.Unlock()
	for _, room := range join {
		if s, err := b.nc.Subscribe(b.roomSubject(room), b.onOp); err == nil {
			b.mu.Lock()
			b.rooms[room] = s
			b.mu.Unlock()
		}
	}
	for _, room := range leave {
		b.mu.Lock()
		s := b.rooms[room]
		delete(b.rooms, room)
		b.mu.Unlock()
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
	_ = b.send(b.subject("counts"), data)
}

// fullState encodes all of this node's counts.
func (b *Broker) fullState() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	entries := make([]countEntry, 0, len(b.local))
	for k, n := range b.local {
		entries = append(entries, countEntry{k.kind, k.key, uint32(n)})
	}
	return encodeCounts(b.node, b.instance, b.seq, true, entries)
}

// onCounts applies another node's count changes (or full state).
func (b *Broker) onCounts(msg *nats.Msg) { b.applyCounts(msg.Data) }

func (b *Broker) applyCounts(data []byte) {
	r := reader{b: data}
	from, kind := r.u16(), r.u8()
	if r.err != nil || kind != kindCounts || from == b.node {
		return
	}
	instance, seq, full := r.u64(), r.u64(), r.u8() == 1
	n := r.count()
	entries := make([]countEntry, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		entries = append(entries, countEntry{server.CountKind(r.u8()), r.str(), r.u32()})
	}
	if r.err != nil {
		return
	}
	b.mu.Lock()
	p := b.peerLocked(from, instance)
	gap := !full && (!p.synced || seq != p.seq+1) && !p.syncing
	if gap {
		p.syncing = true
	}
	again := false
	switch {
	case full:
		// The full state replaces what was known, then the batches that arrived
		// before it but were made after it go on top (counts are absolute).
		for k, c := range p.counts {
			b.addRemoteLocked(k, -c)
		}
		p.counts = map[countKey]int{}
		b.applyEntriesLocked(p, entries)
		p.seq = seq
		slices.SortFunc(p.early, func(a, b countBatch) int { return cmp.Compare(a.seq, b.seq) })
		for _, e := range p.early {
			if e.seq > p.seq {
				b.applyEntriesLocked(p, e.entries)
				p.seq = e.seq
			}
		}
		again = p.lost
		p.early, p.lost = nil, false
		p.synced, p.syncing = !again, again
	default:
		b.applyEntriesLocked(p, entries)
		if p.syncing {
			if len(p.early) < maxEarly {
				p.early = append(p.early, countBatch{seq, entries})
			} else {
				p.lost = true
			}
		}
		if seq > p.seq {
			p.seq = seq
		}
	}
	b.mu.Unlock()
	if gap || again {
		b.requestSync(from)
	}
}

// applyEntriesLocked sets p's counts from entries. b.mu is held.
func (b *Broker) applyEntriesLocked(p *peer, entries []countEntry) {
	for _, e := range entries {
		k := countKey{e.kind, e.key}
		b.addRemoteLocked(k, int(e.n)-p.counts[k])
		if e.n == 0 {
			delete(p.counts, k)
		} else {
			p.counts[k] = int(e.n)
		}
	}
}

// addRemoteLocked adds delta to the other nodes' sum for k, forgetting it at 0. b.mu is
// held.
func (b *Broker) addRemoteLocked(k countKey, delta int) {
	if b.remote[k] += delta; b.remote[k] <= 0 {
		delete(b.remote, k)
	}
}

// peerLocked returns the peer for node id, starting afresh if it restarted (a new
// instance). b.mu is held.
func (b *Broker) peerLocked(id uint16, instance uint64) *peer {
	p := b.peers[id]
	if p != nil && p.instance != instance {
		b.dropPeerLocked(id)
		p = nil
	}
	if p == nil {
		p = &peer{instance: instance, counts: map[countKey]int{}}
		b.peers[id] = p
	}
	p.seen = time.Now()
	return p
}

// dropPeerLocked forgets a node and its counts. b.mu is held.
func (b *Broker) dropPeerLocked(id uint16) {
	p := b.peers[id]
	if p == nil {
		return
	}
	for k, c := range p.counts {
		b.addRemoteLocked(k, -c)
	}
	delete(b.peers, id)
}

// requestSync asks node id for its full counts.
func (b *Broker) requestSync(id uint16) {
	go func() {
		msg, err := b.nc.Request(b.subject("sync", strconv.Itoa(int(id))), nil, 2*time.Second)
		if err == nil {
			b.applyCounts(msg.Data)
			return
		}
		b.mu.Lock()
		if p := b.peers[id]; p != nil {
			p.syncing = false // asked again at its next heartbeat
			p.early, p.lost = nil, false
		}
		b.mu.Unlock()
	}()
}

// onSync answers a request for this node's full counts.
func (b *Broker) onSync(msg *nats.Msg) {
	if msg.Reply != "" {
		_ = msg.Respond(b.fullState())
	}
}

// heartbeatLoop says this node is alive and forgets nodes that stopped saying so.
func (b *Broker) heartbeatLoop() {
	defer b.done.Done()
	t := time.NewTicker(b.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.heartbeat()
			b.expire(time.Now())
		}
	}
}

func (b *Broker) heartbeat() {
	w := writer{}
	w.u16(b.node)
	w.u8(kindHeartbeat)
	w.u64(b.instance)
	_ = b.send(b.subject("hb"), w.b)
}

// onHeartbeat notes a node alive, and asks a node it did not know for its counts.
func (b *Broker) onHeartbeat(msg *nats.Msg) {
	r := reader{b: msg.Data}
	from, _, instance := r.u16(), r.u8(), r.u64()
	if r.err != nil || from == b.node {
		return
	}
	b.mu.Lock()
	p := b.peerLocked(from, instance)
	ask := !p.synced && !p.syncing
	if ask {
		p.syncing = true
	}
	b.mu.Unlock()
	if ask {
		b.requestSync(from)
	}
}

// expire forgets nodes silent for NodeTimeout.
func (b *Broker) expire(now time.Time) {
	if !b.Available() {
		return // we hear nobody because we are cut off, not because they died
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, p := range b.peers {
		if now.Sub(p.seen) > b.opts.NodeTimeout {
			b.log.Warn("cluster: node silent, forgetting its connections", "node", id, "silent", now.Sub(p.seen).Round(time.Millisecond))
			b.dropPeerLocked(id)
		}
	}
}

// resync runs after a NATS reconnect: it sends this node's full state and asks every
// known node for theirs.
func (b *Broker) resync() {
	_ = b.send(b.subject("counts"), b.fullState())
	b.mu.Lock()
	ids := make([]uint16, 0, len(b.peers))
	now := time.Now()
	for id, p := range b.peers {
		ids = append(ids, id)
		p.synced, p.syncing = false, true
		p.seen = now // the outage was ours: each has NodeTimeout from now to be heard
	}
	b.mu.Unlock()
	for _, id := range ids {
		b.requestSync(id)
	}
	b.heartbeat()
}

// Query implements server.Broker: it publishes q to every node and gathers the answers
// of the live nodes it knows until all have answered or ctx (at most 2 s) ends.
func (b *Broker) Query(ctx context.Context, q *server.ClusterQuery) ([]*server.ClusterAnswer, int, error) {
	if !b.Available() {
		return nil, 0, server.ErrClusterUnavailable
	}
	b.mu.Lock()
	want := len(b.peers)
	b.mu.Unlock()
	if want == 0 {
		return nil, 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body, err := json.Marshal(queryMsg{From: b.node, Query: q})
	if err != nil {
		return nil, 0, err
	}
	inbox := b.nc.NewRespInbox()
	ch := make(chan *nats.Msg, want+4)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, 0, server.ErrClusterUnavailable
	}
	defer sub.Unsubscribe()
	if err := b.nc.PublishRequest(b.subject("query"), inbox, body); err != nil {
		return nil, 0, server.ErrClusterUnavailable
	}
	b.sentMsgs.Add(1)
	b.sentBytes.Add(uint64(len(body)))
	var out []*server.ClusterAnswer
	seen := map[uint16]bool{}
	for len(seen) < want {
		select {
		case <-ctx.Done():
			return out, want - len(seen), nil
		case msg := <-ch:
			var a server.ClusterAnswer
			if json.Unmarshal(msg.Data, &a) == nil && !seen[a.Node] {
				seen[a.Node] = true
				out = append(out, &a)
			}
		}
	}
	return out, 0, nil
}

// queryMsg is a query on the wire (presence and stats are not hot paths: JSON).
type queryMsg struct {
	From  uint16               `json:"from"`
	Query *server.ClusterQuery `json:"query"`
}

// onQuery answers another node's query.
func (b *Broker) onQuery(msg *nats.Msg) {
	var q queryMsg
	if json.Unmarshal(msg.Data, &q) != nil || q.From == b.node || msg.Reply == "" || q.Query == nil {
		return
	}
	data, err := json.Marshal(b.srv.AnswerCluster(q.Query))
	if err == nil {
		_ = msg.Respond(data)
	}
}

// Stats is what the broker sent, for metrics.
type Stats struct {
	// Nodes counts the live nodes this one knows, itself included; Synced the others
	// whose full state it has received since it (re)connected.
	Nodes, Synced       int
	SentMsgs, SentBytes uint64
	// StoredMsgs and StoredBytes are the QoS1 messages and markers published to
	// JetStream; JSRequests the other JetStream requests (UserStreams.Traffic).
	StoredMsgs, StoredBytes, JSRequests uint64
	Connected                           bool
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	n, synced := len(b.peers)+1, 0
	for _, p := range b.peers {
		if p.synced {
			synced++
		}
	}
	b.mu.Unlock()
	st := Stats{Nodes: n, Synced: synced, SentMsgs: b.sentMsgs.Load(), SentBytes: b.sentBytes.Load(), Connected: b.Available()}
	if b.streams != nil {
		st.StoredMsgs, st.StoredBytes, st.JSRequests = b.streams.Traffic()
	}
	return st
}
