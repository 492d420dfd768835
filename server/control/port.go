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

	mu       sync.Mutex
	ln       net.Listener
	started  bool
	closed   bool
	sessions map[*session]struct{}
	authed   int

	wg sync.WaitGroup
}

var _ server.Handler = (*Port)(nil)

// New validates opts and returns a control port; it opens no socket until Start.
//
// A control connection is trusted with every connection of the gateway, so the port
// listens on loopback by default and demands a shared secret (compared in constant
// time) before anything else. Unauthenticated connections may send one frame of at
// most protocol.PreAuthMaxFrame bytes within Options.AuthTimeout; Options.MaxServices
// caps how many connections exist at all.
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
	}
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
	p.srv.Store(srv)
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
// goroutines to end, at most about a second for services that stopped reading.
// Closing twice is a no-op.
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	ss := make([]*session, 0, len(p.sessions))
	for s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.close(protocol.CodeGoingAway, "control port closing", true)
	}
	p.wg.Wait()
	return nil
}

// acceptLoop accepts control connections until the listener closes. Control
// connections are few (a handful per backend service), so each gets a reading and a
// writing goroutine; the client port's event loop is not worth its complexity here.
func (p *Port) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if !closed {
				p.log.Error("control listener failed", "err", err)
			}
			return
		}
		p.m.connsTotal.Inc()
		s := newSession(p, nc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			return
		}
		full := len(p.sessions) >= p.opts.MaxServices
		p.sessions[s] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go s.writeLoop()
		go s.serve(full)
	}
}

// removeSession forgets a closed session.
func (p *Port) removeSession(s *session, wasAuthed bool) {
	p.mu.Lock()
	delete(p.sessions, s)
	if wasAuthed {
		p.authed--
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
