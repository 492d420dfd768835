package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/panjf2000/ants/v2"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/timingwheel"
)

// Server is a tether gateway. Create it with New, start it with Start, stop it with
// Shutdown (graceful) or Close. Its methods are safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	hbTimeout time.Duration // 1.5 x heartbeat

	ctx    context.Context
	cancel context.CancelFunc

	wheel   *timingwheel.Wheel[Conn]
	pool    *ants.Pool
	hub     *hub
	rooms   *rooms
	limits  *limits
	metrics *serverMetrics

	mu      sync.Mutex
	started bool
	// lns are the client listeners, one per configured transport (listeners.go).
	lns     []*listener
	admin   *http.Server
	adminLn net.Listener
	// transportOpen counts open connections by transport (tether_transport_connections).
	transportOpen [numTransports]atomic.Int64
	// handshakes runs TLS handshakes (tlslink.go); nil without a TLS listener.
	handshakes *handshakePool
	// broker carries what crosses nodes (broker.go); nil on a single node. nodeID is
	// its NodeID, in bits 40-52 of this node's connection ids.
	broker Broker
	nodeID uint16
	// qstore keeps the users' QoS1 streams in a cluster (qosstore.go); nil on a single
	// node, where the hub keeps them. pending and acks serve it.
	qstore  QoSStore
	pending pendingLive
	acks    ackWriter
	// logins are this node's recent logins, for the device policy across nodes
	// (logins.go).
	logins recentLogins
	// metricWriters add other components' metrics to /metrics.
	metricWriters []func(io.Writer)
	draining      atomic.Bool
	closed        atomic.Bool
	nextID        atomic.Uint64
	// backlogBytes counts bytes queued for backlogged connections, bounded by
	// Options.MaxTotalOutbound.
	backlogBytes atomic.Int64
}

// New validates opts and builds a server; it opens no socket until Start.
//
// netpoll is configured process-wide by the first New in a process (its read buffer
// size); later servers share that setting.
func New(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	configureNetpoll(&o)
	s := &Server{
		opts:      o,
		log:       o.Logger,
		hbTimeout: o.Heartbeat * 3 / 2,
		hub:       newHub(),
		rooms:     newRooms(),
		limits:    newLimits(&o),
		broker:    o.Broker,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wheel = timingwheel.New[Conn](timingwheel.Options{Tick: o.Tick, Now: o.clock})
	pool, err := ants.NewPool(o.Workers,
		ants.WithNonblocking(true),
		ants.WithPanicHandler(func(p any) { s.log.Error("worker panicked", "panic", fmt.Sprint(p)) }),
		ants.WithLogger(antsLogger{s.log}),
	)
	if err != nil {
		return nil, fmt.Errorf("server: cannot create worker pool: %w", err)
	}
	s.pool = pool
	s.metrics = newServerMetrics(s)
	if _, insecure := o.Authenticator.(InsecureAuthenticator); insecure {
		s.log.Warn("INSECURE AUTHENTICATOR ENABLED: every token is accepted as its own user id; never use this in production")
	}
	return s, nil
}

var netpollOnce sync.Once

// configureNetpoll applies the process-wide netpoll settings once.
func configureNetpoll(o *Options) {
	netpollOnce.Do(func() {
		netpoll.LinkBufferCap = o.ReadBufferSize
		_ = netpoll.Configure(netpoll.Config{BufferSize: o.ReadBufferSize})
		netpollLogger.Store(o.Logger)
		netpoll.SetLoggerOutput(&netpollLog{})
	})
}

// Start opens the client and admin listeners and begins serving in the background. It
// returns once both are listening, so Addr is valid when it returns.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server: already started")
	}
	if s.closed.Load() {
		return ErrServerClosed
	}
	// netpoll opens its pollers (an epoll and an eventfd each) lazily, on the first
	// connection; if descriptors have run out by then its poll manager is left empty and
	// every later connection panics inside netpoll. Open them now, while Start can still
	// have them.
	netpoll.Initialize()
	lns := s.opts.listenerSpecs()
	closeAll := func() {
		for _, l := range lns {
			if l.ln != nil {
				l.ln.Close()
			}
		}
	}
	for _, l := range lns {
		l.s = s
		if err := l.listen(); err != nil {
			closeAll()
			return err
		}
	}
	if s.opts.AdminAddr != "-" {
		if err := s.startAdmin(); err != nil {
			closeAll()
			return err
		}
	}
	if s.broker != nil {
		if err := s.broker.Start(s); err != nil {
			closeAll()
			return fmt.Errorf("server: cluster broker: %w", err)
		}
		if s.nodeID = s.broker.NodeID(); s.nodeID > MaxNodeID {
			closeAll()
			return fmt.Errorf("server: cluster node id %d above %d", s.nodeID, MaxNodeID)
		}
		if qb, ok := s.broker.(QoSBroker); ok {
			s.qstore = qb.QoSStore()
		}
		if s.qstore != nil {
			s.pending.size = s.opts.ResumeBuffer
			s.acks.pending = map[ackKey]ackPos{}
			s.acks.wake = make(chan struct{}, 1)
			go s.runAckWriter()
		}
	}
	s.lns = lns
	s.handshakes = newHandshakePool(s)
	if s.opts.clock == nil {
		s.wheel.Start(s.onExpire)
	}
	go s.runSweeper()
	if s.handshakes != nil && s.opts.TLSIdleAfter > 0 {
		go s.runTLSIdle()
	}
	for _, l := range lns {
		go func() {
			if err := l.el.Serve(l.ln); err != nil && !s.draining.Load() {
				s.log.Error("listener stopped", "transport", l.kind.String(), "err", err)
			}
		}()
	}
	s.started = true
	attrs := []any{"admin", s.AdminAddr(), "heartbeat", s.opts.Heartbeat, "auth_timeout", s.opts.AuthTimeout, "device_policy", s.opts.DevicePolicy.String()}
	for _, l := range lns {
		attrs = append(attrs, l.kind.String(), l.ln.Addr().String())
		if l.proxy {
			attrs = append(attrs, l.kind.String()+"_proxy_protocol", true)
		}
	}
	s.log.Info("tether gateway listening", attrs...)
	return nil
}

// Addr returns the raw TCP listener's address, or nil before Start or when it is
// disabled; ListenerAddr gives the others.
func (s *Server) Addr() net.Addr { return s.ListenerAddr(TransportTCP) }

// closeListeners stops accepting on every client listener.
func (s *Server) closeListeners() {
	s.mu.Lock()
	lns := s.lns
	s.mu.Unlock()
	for _, l := range lns {
		_ = l.ln.Close()
	}
}

// AdminAddr returns the admin listener's address as host:port, or "" when disabled or
// not started.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// refuse sends CLOSE with code and closes a socket that was not admitted.
func (s *Server) refuse(c *Conn, code protocol.CloseCode, reason string) {
	s.metrics.refusedCounter(reason).Inc()
	c.closeWith(code, reason)
}

// deadline returns the wheel time d from now. It reads the wheel's precise clock, not
// its coarse Clock (which lags by up to a tick), so a deadline fires no earlier than d
// and, with the driver advancing once a tick, at most one tick after it.
func (s *Server) deadline(d time.Duration) int64 { return s.wheel.Now() + int64(d) }

// onExpire closes connections whose auth, heartbeat, GOAWAY-grace, final-frame or
// token deadline passed. It runs on the wheel's dispatcher goroutine.
func (s *Server) onExpire(batch []*timingwheel.Timer[Conn]) {
	for _, t := range batch {
		c := t.Owner()
		if t != &c.timer {
			if l := c.life.Load(); l != nil && t == &l.timer {
				s.onTokenExpired(c) // refresh.go
				continue
			}
			s.onAckTimeout(c) // the QoS1 ack timer (inflight.go)
			continue
		}
		st := c.state()
		switch {
		case st&stClosed != 0:
		case st&stClosing != 0:
			// Its last frame did not get out within finalGrace.
			_ = c.nc.Close()
		case st.phase() != phaseAuthed:
			if c.link != nil && c.link.handshakeExpired(c) {
				continue // transport.go: closed, with nothing on the wire
			}
			c.closeWith(protocol.CloseAuthTimeout, "authentication deadline passed")
		case st&stGoingAway != 0:
			c.closeWith(protocol.CloseGoingAway, "did not leave after GOAWAY")
		default:
			c.closeWith(protocol.CloseHeartbeatTimeout, "no frame within 1.5 heartbeat intervals")
		}
	}
}

// Conn returns the live connection with id, or nil.
func (s *Server) Conn(id uint64) *Conn { return s.hub.conn(id) }

// MaxFrame returns the largest frame the server accepts from and sends to an
// authenticated client (Options.MaxFrame after defaults), as announced in AUTH_OK. The
// control port reports it to services (client_max_frame) so they can size payloads.
func (s *Server) MaxFrame() int { return s.opts.MaxFrame }

// Stats is a snapshot of the server's counts.
type Stats struct {
	// Connections is the number of open sockets, authenticated or not.
	Connections int64
	// Authenticated is the number of authenticated connections.
	Authenticated int64
	// Users is the number of users with at least one connection.
	Users int
	// Rooms is the number of non-empty rooms.
	Rooms int
	// Draining is true once Shutdown has begun.
	Draining bool
}

// Stats returns a snapshot of the server's counts.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:   s.hub.total.Load(),
		Authenticated: s.hub.authed.Load(),
		Users:         s.hub.userCount(),
		Rooms:         s.rooms.count(),
		Draining:      s.draining.Load(),
	}
}

// Shutdown drains the server: it stops accepting, sends every authenticated client
// GOAWAY through Conn.GoAway with a retry-after spread over Options.DrainSpread and a
// grace that ends at ctx's deadline (after DrainSpread when ctx has none), closes the
// connections not yet authenticated, waits until the clients have left or ctx is done,
// closes whoever remains with CloseGoingAway, and stops the wheel, the pool and the admin
// listener. It returns ctx.Err() if the deadline cut the wait short.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return ErrServerClosed
	}
	s.closeListeners()
	n := s.goAwayAll(ctx)
	s.log.Info("draining", "connections", n, "spread", s.opts.DrainSpread)
	var waitErr error
	for s.hub.total.Load() > 0 {
		select {
		case <-ctx.Done():
			waitErr = ctx.Err()
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	s.shutdownNow()
	return waitErr
}

// Close closes every connection with CloseGoingAway at once and stops the server.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.closeListeners()
	s.shutdownNow()
	return nil
}

// shutdownNow closes remaining connections and stops the background parts.
func (s *Server) shutdownNow() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.hub.each(func(c *Conn) { c.closeWith(protocol.CloseGoingAway, "server shutting down") })
	// Wait (bounded) for close callbacks so OnDisconnect notifications are queued: first
	// while closing frames still queued get their grace, then for the sockets of those
	// that did not take theirs, closed now.
	s.waitConns(finalGrace)
	s.hub.each(func(c *Conn) { _ = c.nc.Close() })
	s.waitConns(time.Second)
	s.mu.Lock()
	lns, admin, started := s.lns, s.admin, s.started
	s.mu.Unlock()
	for _, l := range lns {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.el.Shutdown(ctx)
		cancel()
	}
	s.handshakes.stop()
	if started && s.opts.clock == nil {
		s.wheel.Stop()
	}
	s.cancel()
	_ = s.pool.ReleaseTimeout(5 * time.Second)
	if admin != nil {
		_ = admin.Close()
	}
	s.limits.close()
	if s.broker != nil {
		_ = s.broker.Close()
	}
	fdLimiter().Flush() // process-wide: flushed, not closed, as other servers may share it
	s.log.Info("tether gateway stopped")
}

// waitConns waits up to d for every connection to be gone.
func (s *Server) waitConns(d time.Duration) {
	deadline := time.Now().Add(d)
	for s.hub.total.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// goAwayAll sends every authenticated connection GOAWAY through Conn.GoAway, each with
// its own jittered retry-after within Options.DrainSpread and a grace that ends at ctx's
// deadline (or after DrainSpread when ctx has none), and closes the connections not yet
// authenticated: they have no session to move. It returns how many got GOAWAY.
func (s *Server) goAwayAll(ctx context.Context) int {
	n := 0
	spread := s.opts.DrainSpread.Milliseconds()
	grace := s.opts.DrainSpread
	if dl, ok := ctx.Deadline(); ok {
		grace = time.Until(dl)
	}
	s.hub.each(func(c *Conn) {
		retry := time.Duration(0)
		if spread > 0 {
			retry = time.Duration(fastrandn(uint64(spread)+1)) * time.Millisecond
		}
		switch err := c.GoAway(retry, grace, "server draining"); err {
		case nil:
			n++
		case ErrNotReady:
			c.closeWith(protocol.CloseGoingAway, "server draining")
		}
	})
	return n
}
