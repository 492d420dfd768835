package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/backoff"
	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// Service is a connection to a gateway's control port that may survive reconnects
// (Options.Reconnect). Create it with Dial and release it with Close. All methods are
// safe for concurrent use.
type Service struct {
	addr string
	opts Options
	log  *slog.Logger

	seq     atomic.Uint32
	session atomic.Uint64
	sem     chan struct{} // OnUplink slots

	mu    sync.Mutex
	cur   *conn         // nil while reconnecting
	ready chan struct{} // closed when cur is set; replaced when it is lost
	// subs is what to subscribe to again after a reconnect.
	routes, prefixes map[string]struct{}
	events           bool
	acks             bool // subscribed to ack events (mu)
	closed           bool
	err              error // why the Service ended

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	stop   <-chan struct{} // ctx.Done()
	done   chan struct{}   // closed when the Service has ended
	wg     sync.WaitGroup
}

// Dial connects to the control port at addr (host:port), authenticates with
// opts.Secret and returns the Service. It fails with a *CloseError when the gateway
// refuses the secret, or with the dial error; nothing is left running then. ctx bounds
// this first attempt only.
func Dial(ctx context.Context, addr string, opts Options) (*Service, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{
		addr:     addr,
		opts:     o,
		log:      o.Logger.With("component", "tether-service"),
		sem:      make(chan struct{}, o.MaxConcurrentUplinks),
		ready:    make(chan struct{}),
		routes:   make(map[string]struct{}),
		prefixes: make(map[string]struct{}),
		done:     make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.stop = s.ctx.Done()
	c, err := s.connect(ctx)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.setConn(c)
	s.wg.Add(1)
	go s.run(c, s.opts.now())
	return s, nil
}

// connect dials, starts the read loop and authenticates.
func (s *Service) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	nc, err := s.opts.Dialer(ctx, s.addr)
	if err != nil {
		return nil, fmt.Errorf("service: cannot connect to %s: %w", s.addr, err)
	}
	c := newConn(s, nc)
	s.wg.Add(1)
	go c.readLoop()
	var res wire.AuthResult
	if err := s.roundTrip(ctx, c, wire.OpAuth, &wire.Auth{Secret: s.opts.Secret, Name: s.opts.Name}, nil, &res); err != nil {
		c.close()
		<-c.done
		var ce *CloseError
		if errors.As(err, &ce) {
			return nil, ce
		}
		if errors.Is(err, errAbandoned) {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("service: cannot authenticate to %s: %w", s.addr, err)
	}
	c.maxFrame = res.MaxFrame
	s.session.Store(res.Session)
	s.log.Debug("connected", "addr", s.addr, "session", res.Session)
	return c, nil
}

// setConn publishes c as the current connection.
func (s *Service) setConn(c *conn) {
	s.mu.Lock()
	s.cur = c
	close(s.ready)
	s.mu.Unlock()
}

// run supervises the connection c, up since since: when it ends, it reconnects
// (Options.Reconnect) or ends the Service.
//
// The waits follow internal/backoff's schedule, shared with package client: full
// jitter over a counter of consecutive failed attempts, where a connection lost
// within Options.StableAfter of its AUTH result counts as failed like a failed dial,
// and only a connection that lived StableAfter resets the counter. A terminal code
// (3500–3999), on the connection or in answer to a reconnect's AUTH, ends the
// Service with its *CloseError.
func (s *Service) run(c *conn, since time.Time) {
	defer s.wg.Done()
	sched := backoff.Schedule{
		Policy:      backoff.Policy{Min: s.opts.BackoffMin, Max: s.opts.BackoffMax, Rand: s.opts.randN},
		StableAfter: s.opts.StableAfter,
	}
	for {
		select {
		case <-c.done:
		case <-s.stop:
			c.close()
			<-c.done
			s.end(ErrClosed)
			return
		}
		lived := s.opts.now().Sub(since)
		err := c.failure()
		s.mu.Lock()
		s.cur = nil
		s.ready = make(chan struct{})
		s.mu.Unlock()
		var ce *CloseError
		if !s.opts.Reconnect || (errors.As(err, &ce) && ce.Terminal()) {
			s.end(err)
			return
		}
		s.log.Warn("control connection lost; reconnecting", "err", err, "lived", lived)
		if c, since, err = s.reconnect(&sched, lived); c == nil {
			s.end(err)
			return
		}
	}
}

// reconnect dials with backoff until it succeeds (and has subscribed again),
// returning the connection and when it was set up; or until the Service is closed
// (ErrClosed) or a reconnect is refused with a terminal code (its *CloseError).
// lived is how long the lost connection had been up.
func (s *Service) reconnect(sched *backoff.Schedule, lived time.Duration) (*conn, time.Time, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	e := backoff.Ending{Authenticated: true, Lived: lived}
	for {
		wait := sched.Next(e)
		e = backoff.Ending{} // from now on, failed attempts
		if f := s.opts.onWait; f != nil {
			f(wait, sched.Failures())
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.stop:
			return nil, time.Time{}, ErrClosed
		}
		c, err := s.connect(s.ctx)
		var ce *CloseError
		if errors.As(err, &ce) && ce.Terminal() {
			s.log.Warn("reconnect refused with a terminal code", "err", err)
			return nil, time.Time{}, err
		}
		if err == nil {
			if err = s.resubscribe(c); err != nil {
				c.close()
				<-c.done
			}
		}
		if err != nil {
			s.log.Warn("reconnect failed", "failures", sched.Failures(), "err", err)
			continue
		}
		// Taken before setConn publishes c: a test that sees c may then move the clock.
		since := s.opts.now()
		s.setConn(c)
		s.log.Info("control connection re-established", "session", s.session.Load())
		return c, since, nil
	}
}

// resubscribe subscribes c to everything the Service was subscribed to.
func (s *Service) resubscribe(c *conn) error {
	s.mu.Lock()
	sub := wire.Subscription{Events: s.events, Acks: s.acks}
	for k := range s.routes {
		sub.Routes = append(sub.Routes, k)
	}
	for k := range s.prefixes {
		sub.Prefixes = append(sub.Prefixes, k)
	}
	s.mu.Unlock()
	if len(sub.Routes) == 0 && len(sub.Prefixes) == 0 && !sub.Events && !sub.Acks {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.RequestTimeout)
	defer cancel()
	var res wire.SubscribeResult
	return s.roundTrip(ctx, c, wire.OpSubscribe, &sub, nil, &res)
}

// end records why the Service ended and releases Done.
func (s *Service) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
}

// Close sends CLOSE, closes the connection and waits until nothing of the Service is
// running, including OnUplink callbacks in progress (which therefore must not call
// Close). Requests in flight fail with ErrDisconnected or ErrClosed. Close is
// idempotent and returns nil.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Done returns a channel closed when the Service has ended: after Close, after the
// connection was lost without Options.Reconnect, or after a terminal close code.
func (s *Service) Done() <-chan struct{} { return s.done }

// Err returns why the Service ended (ErrClosed after Close, a *CloseError, or a
// disconnection), or nil while it runs.
func (s *Service) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Session returns the gateway's id of the current (or last) control connection.
func (s *Service) Session() uint64 { return s.session.Load() }

// current returns the current connection, waiting for one while reconnecting.
func (s *Service) current(ctx context.Context) (*conn, error) {
	for {
		s.mu.Lock()
		c, ready, closed, err := s.cur, s.ready, s.closed, s.err
		s.mu.Unlock()
		if closed {
			if err != nil && !errors.Is(err, ErrClosed) {
				return nil, fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return nil, ErrClosed
		}
		if c != nil {
			return c, nil
		}
		select {
		case <-ready:
		case <-s.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no connection: %w", ErrDisconnected, ctx.Err())
		}
	}
}

// request sends a request on the current connection and decodes its result into out.
func (s *Service) request(ctx context.Context, op protocol.Opcode, hdr any, payload []byte, out any) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	c, err := s.current(rctx)
	if err != nil {
		return err
	}
	err = s.roundTrip(rctx, c, op, hdr, payload, out)
	if errors.Is(err, errAbandoned) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s", ErrTimeout, wire.OpName(op))
	}
	return err
}

// roundTrip sends a request on c and decodes the RESULT into out, or returns the FAIL
// as *Error; errAbandoned when ctx ended first.
func (s *Service) roundTrip(ctx context.Context, c *conn, op protocol.Opcode, hdr any, payload []byte, out any) error {
	seq := s.nextSeq()
	frame, err := wire.AppendFrame(nil, op, seq, hdr, payload)
	if err != nil {
		return err
	}
	f, err := c.roundTrip(ctx.Done(), seq, frame)
	if err != nil {
		return err
	}
	return decodeAnswer(f, out)
}

// decodeAnswer decodes RESULT into out, or returns FAIL as *Error.
func decodeAnswer(f protocol.Frame, out any) error {
	switch f.Op {
	case wire.OpResult:
		if out == nil {
			return nil
		}
		if _, err := wire.DecodeBody(f.Body, out); err != nil {
			return fmt.Errorf("service: cannot decode the gateway's result: %w", err)
		}
		return nil
	case wire.OpFail:
		var fl wire.Fail
		if _, err := wire.DecodeBody(f.Body, &fl); err != nil {
			return fmt.Errorf("service: cannot decode the gateway's FAIL: %w", err)
		}
		return &Error{Code: fl.Code, Message: fl.Message, Offline: fl.Offline, Delivered: fl.Delivered}
	case protocol.OpPong:
		return nil
	}
	return fmt.Errorf("service: unexpected answer %s", wire.OpName(f.Op))
}

// nextSeq returns a request seq, never 0 (which the gateway's own frames use).
func (s *Service) nextSeq() uint32 {
	for {
		if n := s.seq.Add(1); n != 0 {
			return n
		}
	}
}
