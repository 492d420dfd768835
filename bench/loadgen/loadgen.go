package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/bench/kit"
	"github.com/tether-gw/tether/bench/msg"
	"github.com/tether-gw/tether/protocol"
)

// Config configures a load child. The zero value keeps the defaults in each field's
// doc.
type Config struct {
	// Addr is the server's client port (for Transport). Required.
	Addr string
	// Transport is how the connections reach Addr. Default kit.TransportTCP.
	Transport kit.Transport
	// CAFile is the PEM certificate the server's must chain to, for tls and wss.
	// Default none, which needs Insecure.
	CAFile string
	// Insecure skips verifying the server's certificate, for tls and wss.
	Insecure bool
	// WSPath is the WebSocket endpoint's path, for ws and wss. Default kit.WSPath.
	WSPath string
	// N is how many connections to open. Required.
	N int
	// Src is the local address every connection is made from, so that loaders use
	// disjoint ephemeral port ranges. Default 127.0.0.1.
	Src string
	// ID numbers this child; user ids are User(UserPrefix, ID, i). Default 0.
	ID int
	// UserPrefix starts every user id (the token, which the servers under test
	// accept as the user id). Default "u".
	UserPrefix string
	// DeviceID is the HELLO's device id. Default "bench".
	DeviceID string
	// ClientVersion is the HELLO's client version. Default none.
	ClientVersion string
	// Rate caps new connections per second; 0 means as fast as Concurrency allows.
	Rate float64
	// Concurrency caps handshakes (dial to AUTH_OK) in progress at once, so a burst
	// cannot overflow the server's accept queue. Default 256.
	Concurrency int
	// Bare says the server echoes bytes instead of speaking the protocol: a HELLO,
	// PING or SEND coming back counts as AUTH_OK, PONG or SEND_REPLY.
	Bare bool
	// Pings, when set, makes a connection "ready" once it has had that many PONGs;
	// the child sends a "ready" event when all N are. Default 0: no ready event.
	Pings int
	// PingInterval is the time between a connection's PINGs. Default: the heartbeat
	// announced in AUTH_OK, as a real client does (25s for a bare server).
	PingInterval time.Duration
	// HandshakeTimeout bounds dial, HELLO and AUTH_OK. Default 30s.
	HandshakeTimeout time.Duration
	// MaxLifetime ends the child even if its stdin stays open. Default 15m.
	MaxLifetime time.Duration
}

func (c Config) withDefaults() Config {
	if c.Src == "" {
		c.Src = "127.0.0.1"
	}
	c.Transport = c.Transport.Or()
	if c.WSPath == "" {
		c.WSPath = kit.WSPath
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "u"
	}
	if c.DeviceID == "" {
		c.DeviceID = "bench"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 15 * time.Minute
	}
	return c
}

// User returns the user id (and token) of connection i of load child id.
func User(prefix string, id, i int) string { return fmt.Sprintf("%s%d-%d", prefix, id, i) }

// histShards spreads latency recording over several histograms so that thousands
// of connection goroutines do not queue on one mutex.
const histShards = 8

// loader is one load child (see the package doc for its goroutines).
type loader struct {
	cfg   Config
	dial  *kit.TransportDialer
	ew    *msg.Writer
	conns []*lconn
	sem   chan struct{}
	wg    sync.WaitGroup
	start time.Time

	hb        atomic.Int64 // heartbeat from the first AUTH_OK, ns
	firstDial atomic.Int64
	lastAuth  atomic.Int64
	done      atomic.Int64 // initial attempts finished

	dialed, authed, failed, open, lost, ready               atomic.Int64
	pongs, sent, replies, errors, skipped                   atomic.Int64
	pushes, dups, appDups, reconnects, notRecovered, subOKs atomic.Int64
	lat                                                     [histShards]*msg.Hist
	connectLat, reconnectLat, handshakeLat                  *msg.Hist
	fmu                                                     sync.Mutex
	failures, errCodes                                      map[string]int64
	bmu                                                     sync.Mutex
	bcasts                                                  map[uint64]*msg.BcastStat
	echoPayload                                             atomic.Pointer[[]byte]
	work                                                    sync.Mutex // serialises pacers' start/stop
	echoStop, churnStop                                     context.CancelFunc
	pacers                                                  sync.WaitGroup
}

// Load runs a load child: it opens cfg.N connections to cfg.Addr, authenticates each,
// keeps them alive with PINGs and carries out the commands (msg.Command) read from
// in, answering with events (msg.Event) on out, until in closes, "quit" arrives or
// cfg.MaxLifetime passes.
func Load(cfg Config, in io.Reader, out io.Writer) error {
	cfg = cfg.withDefaults()
	if cfg.Addr == "" || cfg.N <= 0 {
		return errors.New("loadgen: need an address and a positive connection count")
	}
	src, err := netip.ParseAddr(cfg.Src)
	if err != nil {
		return fmt.Errorf("loadgen: bad source address: %w", err)
	}
	dial, err := kit.ClientTransport{Transport: cfg.Transport, CAFile: cfg.CAFile, Insecure: cfg.Insecure, WSPath: cfg.WSPath}.
		NewDialer(kit.Dialer(src, cfg.HandshakeTimeout))
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	kit.FileLimit()
	l := &loader{
		cfg:          cfg,
		dial:         dial,
		ew:           msg.NewWriter(out),
		sem:          make(chan struct{}, cfg.Concurrency),
		connectLat:   msg.NewHist(),
		reconnectLat: msg.NewHist(),
		handshakeLat: msg.NewHist(),
		failures:     map[string]int64{},
		errCodes:     map[string]int64{},
		bcasts:       map[uint64]*msg.BcastStat{},
	}
	for i := range l.lat {
		l.lat[i] = msg.NewHist()
	}
	l.conns = make([]*lconn, cfg.N)
	for i := range l.conns {
		l.conns[i] = &lconn{l: l, i: i, user: User(cfg.UserPrefix, cfg.ID, i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxLifetime)
	defer cancel()

	cmds := msg.ReadCommands(in, l.ew)
	l.start = time.Now()
	l.ew.Send(msg.Event{Kind: "started", PID: os.Getpid()})
	go l.reportProgress(ctx)
	l.pacers.Add(1)
	go l.keepalive(ctx)
	go l.dialAll(ctx)
	for {
		select {
		case <-ctx.Done():
			l.shutdown(cancel)
			return nil
		case c, ok := <-cmds:
			if !ok || c.Op == "quit" {
				l.shutdown(cancel)
				return nil
			}
			if err := l.command(ctx, c); err != nil {
				l.ew.Errorf("%s: %v", c.Op, err)
			}
		}
	}
}

// shutdown closes every connection and waits for their goroutines.
func (l *loader) shutdown(cancel context.CancelFunc) {
	cancel()
	for _, c := range l.conns {
		c.closeConn()
	}
	l.wg.Wait()
	l.pacers.Wait()
}

// command carries out one command.
func (l *loader) command(ctx context.Context, c msg.Command) error {
	switch c.Op {
	case "report":
		l.ew.Send(msg.Event{Kind: "report", Stats: l.stats(true, c.Users)})
	case "reset":
		l.reset()
		l.ew.Send(msg.Event{Kind: "reset"})
	case "echo":
		l.startEcho(ctx, c.Rate, c.Size)
	case "pipeline":
		l.startPipeline(c.Conns, c.Window, c.Size)
	case "stop":
		l.stopWork()
		l.ew.Send(msg.Event{Kind: "stopped", Stats: l.stats(true, false)})
	case "subscribe":
		return l.subscribe(ctx, c.Room)
	case "churn":
		l.startChurn(ctx, c.Rate)
	default:
		return fmt.Errorf("unknown command")
	}
	return nil
}

// dialAll starts the initial connections at the configured rate and concurrency.
func (l *loader) dialAll(ctx context.Context) {
	kit.Launch(ctx, len(l.conns), l.cfg.Rate, l.sem, func(i int) {
		l.wg.Add(1)
		go l.conns[i].run(ctx)
	})
}

// initialDone marks one initial connection attempt finished, and says so when it is
// the last.
func (l *loader) initialDone() {
	<-l.sem
	if l.done.Add(1) == int64(l.cfg.N) {
		l.ew.Send(msg.Event{Kind: "connected", Stats: l.stats(false, false)})
	}
}

func (l *loader) fail(reason string) {
	l.fmu.Lock()
	l.failures[reason]++
	l.fmu.Unlock()
}

func (l *loader) reportProgress(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.ew.Send(msg.Event{Kind: "progress", Stats: l.stats(false, false)})
		}
	}
}

// stats snapshots the counters; full adds histograms and broadcast records, users
// the per-user delivery records.
func (l *loader) stats(full, users bool) *msg.Stats {
	s := &msg.Stats{
		ID:     l.cfg.ID,
		Dialed: l.dialed.Load(), Authed: l.authed.Load(), Failed: l.failed.Load(), Open: l.open.Load(), Lost: l.lost.Load(), Ready: l.ready.Load(),
		FirstDial: l.firstDial.Load(), LastAuth: l.lastAuth.Load(),
		Pongs: l.pongs.Load(), Sent: l.sent.Load(), Replies: l.replies.Load(), Errors: l.errors.Load(), Skipped: l.skipped.Load(),
		Pushes: l.pushes.Load(), Dups: l.dups.Load(), AppDups: l.appDups.Load(),
		Reconnects: l.reconnects.Load(), NotRecovered: l.notRecovered.Load(), Subscribed: l.subOKs.Load(),
	}
	s.CPU, _ = kit.ProcCPU(os.Getpid())
	l.fmu.Lock()
	if len(l.failures) > 0 {
		s.Failures = make(map[string]int64, len(l.failures))
		for k, v := range l.failures {
			s.Failures[k] = v
		}
	}
	if len(l.errCodes) > 0 {
		s.ErrorCodes = make(map[string]int64, len(l.errCodes))
		for k, v := range l.errCodes {
			s.ErrorCodes[k] = v
		}
	}
	l.fmu.Unlock()
	if !full {
		return s
	}
	s.Lat = msg.NewHist()
	for _, h := range l.lat {
		s.Lat.Merge(h)
	}
	s.ConnectLat, s.ReconnectLat, s.HandshakeLat = msg.NewHist(), msg.NewHist(), msg.NewHist()
	s.ConnectLat.Merge(l.connectLat)
	s.ReconnectLat.Merge(l.reconnectLat)
	s.HandshakeLat.Merge(l.handshakeLat)
	l.bmu.Lock()
	if len(l.bcasts) > 0 {
		s.Bcasts = make(map[uint64]msg.BcastStat, len(l.bcasts))
		for id, b := range l.bcasts {
			s.Bcasts[id] = *b
		}
	}
	l.bmu.Unlock()
	if users {
		s.Users = make(map[string]msg.UserStat, len(l.conns))
		for _, c := range l.conns {
			s.Users[c.user] = msg.UserStat{Distinct: int(c.distinct.Load()), Max: int(c.maxK.Load())}
		}
	}
	return s
}

// reset zeroes the traffic counters and histograms (not the connection counts).
func (l *loader) reset() {
	for _, a := range []*atomic.Int64{&l.pongs, &l.sent, &l.replies, &l.errors, &l.skipped, &l.pushes, &l.dups, &l.appDups,
		&l.reconnects, &l.notRecovered, &l.subOKs} {
		a.Store(0)
	}
	for _, h := range l.lat {
		h.Reset()
	}
	l.reconnectLat.Reset()
	l.fmu.Lock()
	clear(l.errCodes)
	l.fmu.Unlock()
	l.bmu.Lock()
	clear(l.bcasts)
	l.bmu.Unlock()
}

// heartbeat is the PING interval.
func (l *loader) heartbeat() time.Duration {
	if l.cfg.PingInterval > 0 {
		return l.cfg.PingInterval
	}
	if hb := l.hb.Load(); hb > 0 {
		return time.Duration(hb)
	}
	return protocol.DefaultHeartbeatMs * time.Millisecond
}

// keepalive PINGs every authenticated connection once per heartbeat, round robin.
func (l *loader) keepalive(ctx context.Context) {
	defer l.pacers.Done()
	var buf []byte
	next := 0
	kit.Pace(ctx, func() float64 { return float64(len(l.conns)) / l.heartbeat().Seconds() }, func(int64, time.Time) {
		c := l.conns[next]
		next = (next + 1) % len(l.conns)
		if !c.authed.Load() {
			return
		}
		buf = protocol.AppendEmpty(buf[:0], protocol.OpPing, c.seq.Add(1))
		_ = c.write(buf)
	})
}

// startPacer (re)starts the pacer whose cancel function sits in slot: it stops the
// running one, then, if rate is positive, calls visit rate times per second (see
// kit.Pace) until stopped.
func (l *loader) startPacer(ctx context.Context, slot *context.CancelFunc, rate float64, visit func()) {
	l.work.Lock()
	defer l.work.Unlock()
	stopPacer(slot)
	if rate <= 0 {
		return
	}
	pctx, stop := context.WithCancel(ctx)
	*slot = stop
	l.pacers.Add(1)
	go func() {
		defer l.pacers.Done()
		kit.Pace(pctx, func() float64 { return rate }, func(int64, time.Time) { visit() })
	}()
}

// stopPacer stops the pacer whose cancel function sits in slot, if one runs; the
// caller holds l.work.
func stopPacer(slot *context.CancelFunc) {
	if *slot != nil {
		(*slot)()
		*slot = nil
	}
}

// startEcho (re)starts the echo pacer at rate SENDs per second over all connections.
func (l *loader) startEcho(ctx context.Context, rate float64, size int) {
	payload := make([]byte, size)
	if rate > 0 {
		l.echoPayload.Store(&payload)
	}
	var buf []byte
	next := 0
	l.startPacer(ctx, &l.echoStop, rate, func() {
		c := l.conns[next]
		next = (next + 1) % len(l.conns)
		if !c.authed.Load() {
			l.skipped.Add(1)
			return
		}
		// The clock starts when the request is written. The pacer is not held up by
		// replies, so a slow server shows as latency, not as fewer requests; a
		// loader that falls behind its schedule shows as a throughput below the
		// target rate.
		due := time.Now()
		buf = c.appendSend(buf[:0], payload, due.UnixNano())
		if buf != nil {
			_ = c.write(buf)
		}
	})
}

// startPipeline keeps window SENDs in flight on each of the first n connections:
// every reply is answered with a new SEND from the reading goroutine.
func (l *loader) startPipeline(n, window, size int) {
	window = min(max(window, 1), ringSize-1)
	payload := make([]byte, size)
	l.echoPayload.Store(&payload)
	n = min(n, len(l.conns))
	var buf []byte
	for _, c := range l.conns[:n] {
		if !c.authed.Load() {
			continue
		}
		c.pipe.Store(true)
		buf = buf[:0]
		now := time.Now().UnixNano()
		for range window {
			buf = c.appendSend(buf, payload, now)
		}
		_ = c.write(buf)
	}
}

// stopWork stops the echo and churn pacers and pipelining, then waits up to a second
// for outstanding replies.
func (l *loader) stopWork() {
	l.work.Lock()
	stopPacer(&l.echoStop)
	stopPacer(&l.churnStop)
	l.work.Unlock()
	for _, c := range l.conns {
		c.pipe.Store(false)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var inflight int64
		for _, c := range l.conns {
			inflight += int64(c.inflight.Load())
		}
		if inflight == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscribe sends SUBSCRIBE room on every authenticated connection, paced so the
// server's worker pool is not flooded, and reports when every OK (or ERROR) is in.
func (l *loader) subscribe(ctx context.Context, room string) error {
	var buf []byte
	want := int64(0)
	before := l.subOKs.Load() + l.errors.Load()
	for i, c := range l.conns {
		if !c.authed.Load() {
			continue
		}
		var err error
		buf, err = (&protocol.Subscribe{Room: room}).AppendFrame(buf[:0], c.seq.Add(1), 0)
		if err != nil {
			return err
		}
		if c.write(buf) == nil {
			want++
		}
		if i%512 == 511 { // let the answers catch up
			for l.subOKs.Load()+l.errors.Load()-before < want-256 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
	}
	deadline := time.Now().Add(time.Minute)
	for l.subOKs.Load()+l.errors.Load()-before < want {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d subscriptions answered", l.subOKs.Load()+l.errors.Load()-before, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.ew.Send(msg.Event{Kind: "subscribed", Stats: l.stats(false, false)})
	return nil
}

// startChurn drops rate random authenticated connections per second; each
// reconnects at once, resuming its user stream.
func (l *loader) startChurn(ctx context.Context, rate float64) {
	l.startPacer(ctx, &l.churnStop, rate, func() {
		for range 8 { // a few tries to find a connection that is up
			c := l.conns[rand.IntN(len(l.conns))]
			if c.authed.Load() && c.drop() {
				return
			}
		}
	})
}

// recordBcast notes that a member got broadcast id at now (Unix ns).
func (l *loader) recordBcast(id uint64, now int64) {
	l.bmu.Lock()
	b := l.bcasts[id]
	if b == nil {
		b = &msg.BcastStat{}
		l.bcasts[id] = b
	}
	b.N++
	b.Last = max(b.Last, now)
	l.bmu.Unlock()
}
