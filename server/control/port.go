package control

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/fdreserve"
	"github.com/tether-gw/tether/internal/loglimit"
	"github.com/tether-gw/tether/internal/netutil"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// Port is a gateway's control port: the listener backend services connect to, and the
// server.Handler that hands the gateway's uplink messages and connection events to
// them. Create it with New, pass it as server.Options.Handler, then call Start with the
// server. Its methods are safe for concurrent use.
type Port struct {
	server.NopHandler

	// exhausted is set while the accept loop, the only goroutine that touches it, is out
	// of descriptors (accept_linux.go).
	exhausted bool

	opts      Options
	log       *slog.Logger
	secretSum [sha256.Size]byte
	m         *portMetrics
	router    router

	srv atomic.Pointer[server.Server]

	nextSession atomic.Uint64
	nextUplink  atomic.Uint64
	pendingN    atomic.Int64
	uplinksN    atomic.Uint64

	throttle  *authThrottle
	authLog   *loglimit.Limiter // failed AUTHs
	acceptLog *loglimit.Limiter // accept errors

	mu       sync.Mutex
	ln       net.Listener
	started  bool
	closed   bool
	sessions map[*session]struct{}
	authed   int
	// unauth lists the sessions that have not authenticated yet, oldest first.
	unauth []*session

	quit chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// Log rate limits: failed AUTHs and accept errors are logged at most this many times per
// interval, then summarised (the metrics count every one).
const (
	defaultLogInterval = 10 * time.Second
	authLogBurst       = 5
	acceptLogBurst     = 3
)

// Accept back-off: after an accept error (EMFILE, ENFILE, ENOBUFS...) the loop waits
// acceptBackoffMin, doubling up to acceptBackoffMax while the errors last, as net/http
// does; descriptors freed elsewhere then let it accept again.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

var _ server.Handler = (*Port)(nil)

// New validates opts and returns a control port; it opens no socket until Start.
//
// A control connection is trusted with every connection of the gateway, so the port
// listens on loopback by default and demands a shared secret (compared in constant
// time, at least MinSecretLen bytes off loopback) before anything else.
// Unauthenticated connections may send one frame of at most protocol.PreAuthMaxFrame
// bytes within Options.AuthTimeout, and are capped apart from services
// (Options.MaxUnauthenticated, Options.MaxServices); failed AUTHs lock their source
// out (Options.MaxAuthFailures). See the package doc's Security section.
func New(opts Options) (*Port, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Port{
		opts:      o,
		log:       o.Logger.With("component", "control"),
		secretSum: sha256.Sum256([]byte(o.Secret)),
		sessions:  make(map[*session]struct{}),
		throttle:  newAuthThrottle(o.MaxAuthFailures, o.AuthLockout, o.AuthLockoutMax),
		quit:      make(chan struct{}),
	}
	p.authLog = loglimit.New(p.log, loglimit.Options{Burst: authLogBurst, Interval: o.logInterval,
		Summary: "more control AUTH failures, not logged one by one (see tether_control_auth_failures_total)"})
	errLevel := slog.LevelError
	p.acceptLog = loglimit.New(p.log, loglimit.Options{Burst: acceptLogBurst, Interval: o.logInterval, Level: &errLevel,
		Summary: "more control accept errors, not logged one by one (see tether_control_accept_errors_total)"})
	p.router.init()
	p.m = newPortMetrics(p)
	return p, nil
}

// Start listens on Options.Addr and serves control connections in the background,
// using srv for every operation. It returns once the listener is open, so Addr is valid
// when it returns. srv must be the server this Port is the Handler of.
func (p *Port) Start(srv *server.Server) error {
	if srv == nil {
		return errors.New("control: Start needs the server")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.started:
		return ErrStarted
	}
	if p.opts.Insecure && !netutil.IsLoopback(p.opts.Addr) {
		return fmt.Errorf("%w: %s", ErrInsecureAddr, p.opts.Addr)
	}
	ln, err := net.Listen("tcp", p.opts.Addr)
	if err != nil {
		return fmt.Errorf("control: cannot listen on %s: %w", p.opts.Addr, err)
	}
	fdreserve.Hold() // the spare the accept loop refuses with when out of descriptors
	p.srv.Store(srv)
	p.router.announce = srv.AnnounceCount // under router.mu only once services connect
	p.ln = ln
	p.started = true
	p.wg.Add(1)
	go p.acceptLoop(ln)
	if p.opts.Insecure {
		p.log.Warn("control port accepts ANY secret (insecure development mode)", "addr", ln.Addr().String())
	} else {
		p.log.Info("control port listening", "addr", ln.Addr().String())
	}
	return nil
}

// Addr returns the control listener's address, or nil before Start.
func (p *Port) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Close stops the listener and closes every control connection with CLOSE GOING_AWAY;
// uplinks waiting for a reply are answered ERROR NO_ROUTE. It waits for the port's
// goroutines to end, at most about a second for services that stopped reading, and
// writes the pending summaries of the rate-limited log lines. Closing twice is a no-op.
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	close(p.quit)
	if p.ln != nil {
		p.ln.Close()
	}
	ss := make([]*session, 0, len(p.sessions))
	for s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.close(protocol.CloseGoingAway, "control port closing", true)
	}
	p.wg.Wait()
	// Write the last summaries of the rate-limited lines, so their counts are not lost.
	p.authLog.Close()
	p.acceptLog.Close()
	return nil
}

// acceptLoop accepts control connections until the listener closes. Control
// connections are few (a handful per backend service), so each gets a reading and a
// writing goroutine; the client port's event loop is not worth its complexity here.
// An accept error other than the listener closing (typically EMFILE or ENFILE: out of
// descriptors) is counted, logged (rate-limited) and retried after a back-off, so the
// port serves again once descriptors free up.
func (p *Port) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	var delay time.Duration
	for {
		nc, err := p.accept(ln) // accept_linux.go: through the descriptor reserve when out
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.isClosed() {
				return
			}
			delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
			p.m.acceptErrors.Inc()
			if p.acceptLog.Allow("accept_error") {
				p.log.Error("control port cannot accept; retrying", "err", err, "retry_in", delay.String())
			}
			select {
			case <-time.After(delay):
			case <-p.quit:
				return
			}
			continue
		}
		delay = 0
		if nc == nil {
			continue // refused while out of descriptors, or descriptors are back
		}
		p.m.connsTotal.Inc()
		p.admit(nc)
	}
}

// admit starts serving a new connection: it refuses a source that is locked out for
// failed AUTHs, and makes room among the unauthenticated connections if they are at
// their cap (Options.MaxUnauthenticated).
func (p *Port) admit(nc net.Conn) {
	s := newSession(p, nc)
	var refuse *refusal
	if s.hasSource {
		if until, locked := p.throttle.lockedOut(s.source, time.Now()); locked {
			refuse = lockedOutRefusal(until)
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		nc.Close()
		return
	}
	var victim *session
	if refuse == nil {
		if len(p.unauth) >= p.opts.MaxUnauthenticated {
			victim = p.evictUnauthLocked()
		}
		p.unauth = append(p.unauth, s)
	}
	p.sessions[s] = struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	if victim != nil {
		p.m.rejected("too_many_unauthenticated")
		victim.close(protocol.CloseServerFull, "too many unauthenticated control connections", true)
	}
	go s.writeLoop()
	go s.serve(refuse)
}

// evictUnauthLocked takes one session out of p.unauth to make room and returns it: the
// oldest of the source address with the most unauthenticated sessions (the list is
// short, Options.MaxUnauthenticated). p.mu is held.
func (p *Port) evictUnauthLocked() *session {
	if len(p.unauth) == 0 {
		return nil // MaxUnauthenticated 0 is replaced by the default; kept for safety
	}
	counts := make(map[string]int, 8)
	top := p.unauth[0].host
	for _, s := range p.unauth {
		counts[s.host]++
		if counts[s.host] > counts[top] {
			top = s.host
		}
	}
	best := 0
	for i, s := range p.unauth {
		if s.host == top {
			best = i
			break
		}
	}
	v := p.unauth[best]
	p.unauth = append(p.unauth[:best], p.unauth[best+1:]...)
	return v
}

// takeUnauthLocked removes s from the unauthenticated sessions and reports whether it
// was there (false once it was evicted). p.mu is held.
func (p *Port) takeUnauthLocked(s *session) bool {
	for i, u := range p.unauth {
		if u == s {
			p.unauth = append(p.unauth[:i], p.unauth[i+1:]...)
			return true
		}
	}
	return false
}

func (p *Port) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// removeSession forgets a closed session.
func (p *Port) removeSession(s *session, wasAuthed bool) {
	p.mu.Lock()
	delete(p.sessions, s)
	if wasAuthed {
		p.authed--
	} else {
		p.takeUnauthLocked(s)
	}
	p.mu.Unlock()
}

// checkSecret reports whether secret is the configured one, in time independent of
// where they differ and of their lengths.
func (p *Port) checkSecret(secret string) bool {
	if p.opts.Insecure {
		return true
	}
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], p.secretSum[:]) == 1
}

// services returns the number of authenticated control connections.
func (p *Port) services() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authed
}
