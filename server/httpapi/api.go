package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/control"
)

// API is a gateway's HTTP API for services. Create it with New, then Start it with the
// server (and its control port, if any). Its methods are safe for concurrent use.
type API struct {
	opts     Options
	log      *slog.Logger
	keySum   [sha256.Size]byte
	throttle *control.Throttle
	m        *apiMetrics
	routes   map[string][]*route // by path; one entry per method

	// Set by Start, before the listener serves; read-only afterwards.
	srv *server.Server
	ops control.Ops

	mu      sync.Mutex
	hs      *http.Server
	ln      net.Listener
	started bool
	closed  bool
	served  chan struct{} // closed when Serve returns
}

// closeGrace is how long Close lets requests in flight finish before it cuts them.
const closeGrace = 5 * time.Second

// New validates opts and returns an API; it opens no socket until Start.
//
// The API is trusted with every connection of the gateway: it listens on loopback by
// default, demands the key (compared in constant time, at least MinKeyLen bytes off
// loopback) on every route but /v1/healthz, and locks out sources that present wrong
// keys (Options.MaxAuthFailures). See the package doc's Security section.
func New(opts Options) (*API, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &API{
		opts:     o,
		log:      o.Logger.With("component", "httpapi"),
		keySum:   sha256.Sum256([]byte(o.Key)),
		throttle: control.NewThrottle(o.MaxAuthFailures, o.AuthLockout, o.AuthLockoutMax),
		m:        newAPIMetrics(),
		routes:   make(map[string][]*route),
		served:   make(chan struct{}),
	}
	for i := range routes {
		r := &routes[i]
		a.routes[r.path] = append(a.routes[r.path], r)
		a.m.route(r.name)
	}
	return a, nil
}

// Start listens on Options.Addr and serves the API in the background, running the
// operations on srv; port, the gateway's control port or nil, gives STATS its counts
// of services, routes and uplinks. It returns once the listener is open.
func (a *API) Start(srv *server.Server, port *control.Port) error {
	if srv == nil {
		return errors.New("httpapi: Start needs the server")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return ErrClosed
	case a.started:
		return ErrStarted
	}
	ln, err := net.Listen("tcp", a.opts.Addr)
	if err != nil {
		return fmt.Errorf("httpapi: cannot listen on %s: %w", a.opts.Addr, err)
	}
	a.srv, a.ops = srv, control.NewOps(srv, port)
	var protos http.Protocols
	protos.SetHTTP1(true)
	if a.opts.TLSConfig != nil {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	a.hs = &http.Server{
		Handler:           a,
		Protocols:         &protos,
		TLSConfig:         a.opts.TLSConfig.Clone(),
		ReadHeaderTimeout: a.opts.ReadTimeout / 10,
		ReadTimeout:       a.opts.ReadTimeout,
		WriteTimeout:      a.opts.WriteTimeout,
		IdleTimeout:       a.opts.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.ln, a.started = ln, true
	go a.serve(a.hs, ln)
	scheme := "http (HTTP/1.1, h2c)"
	if a.opts.TLSConfig != nil {
		scheme = "https (HTTP/2, HTTP/1.1)"
	}
	if a.opts.Insecure {
		a.log.Warn("HTTP API accepts requests WITHOUT a key (insecure development mode)", "addr", ln.Addr().String(), "scheme", scheme)
	} else {
		a.log.Info("HTTP API listening", "addr", ln.Addr().String(), "scheme", scheme)
	}
	return nil
}

// serve runs the HTTP server until Close.
func (a *API) serve(hs *http.Server, ln net.Listener) {
	defer close(a.served)
	var err error
	if hs.TLSConfig != nil {
		err = hs.ServeTLS(ln, "", "")
	} else {
		err = hs.Serve(ln)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("HTTP API stopped serving", "err", err)
	}
}

// Addr returns the listener's address, or nil before Start.
func (a *API) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// Close stops the listener, lets the requests in flight finish for up to 5 seconds and
// closes the connections. Closing twice is a no-op.
func (a *API) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	hs := a.hs
	a.mu.Unlock()
	if hs == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		hs.Close()
	}
	<-a.served
	return nil
}
