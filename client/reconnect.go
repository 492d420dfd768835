package client

import (
	"errors"
	"time"

	"github.com/tether-gw/tether/internal/backoff"
	"github.com/tether-gw/tether/protocol"
)

// run is the client's one goroutine: it serves the current connection and,
// when it ends, sleeps and reconnects until Close, a terminal code, or a lost
// connection with reconnecting disabled.
//
// The waits follow internal/backoff's schedule (PROTOCOL.md §13): full jitter
// over a counter of consecutive failed attempts, where an attempt fails if it
// does not reach AUTH_OK or if its connection ends, whatever the code, within
// Options.StableAfter of AUTH_OK. Only a connection that lived StableAfter
// resets the counter, so a server, or a second login on the same device id,
// that keeps closing fresh connections is redialled ever more slowly. After a
// GOAWAY the wait is its retry-after (the longer of it and the backoff when
// the connection counts as failed).
func (c *Client) run(cn *conn) {
	sched := backoff.Schedule{
		Policy:      backoff.Policy{Min: c.opts.BackoffMin, Max: c.opts.BackoffMax, Rand: c.opts.randN},
		StableAfter: c.opts.StableAfter,
	}
	for {
		end := cn.serve()
		lived := c.opts.now().Sub(c.upSince)
		c.unready(cn, true)
		cn.failPending()
		if c.ctx.Err() != nil {
			c.finish(nil)
			return
		}
		c.log.Info("disconnected", "conn", cn.auth.ConnID, "err", end.err, "lived", lived)
		if end.terminal || c.opts.NoReconnect {
			c.finish(end.err)
			return
		}
		e := backoff.Ending{Authenticated: true, Lived: lived, GoAway: end.goaway, RetryAfter: end.retryAfter}
		for {
			wait := sched.Next(e)
			if f := c.opts.onWait; f != nil {
				f(wait, sched.Failures())
			}
			c.setState(StateReconnecting, end.err)
			if !c.sleep(wait) {
				c.finish(nil)
				return
			}
			c.setState(StateConnecting, nil)
			next, err := c.connect(c.ctx)
			if err == nil {
				cn = next
				break
			}
			if c.ctx.Err() != nil {
				c.finish(nil)
				return
			}
			c.log.Info("reconnect failed", "failures", sched.Failures(), "err", err)
			end = endingOf(err)
			if end.terminal {
				c.finish(err)
				return
			}
			e = backoff.Ending{GoAway: end.goaway, RetryAfter: end.retryAfter}
		}
		if !c.attach(cn) {
			c.finish(nil)
			return
		}
	}
}

// ending says why a connection (or an attempt) ended and what to do next.
type ending struct {
	err        error
	terminal   bool          // do not reconnect
	goaway     bool          // wait retryAfter instead of the backoff
	retryAfter time.Duration // remaining GOAWAY wait
}

// endingOf classifies a failed connection attempt.
func endingOf(err error) ending {
	var ce *CloseError
	if errors.As(err, &ce) {
		e := ending{err: err, terminal: ce.Terminal()}
		if ce.RetryAfter > 0 || ce.Op == protocol.OpGoAway {
			e.goaway, e.retryAfter = true, ce.RetryAfter
		}
		return e
	}
	return ending{err: err}
}

// sleep waits d on the client's timer; it reports false if the client was
// closed meanwhile.
func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	select {
	case <-c.timer.C:
		return true
	case <-c.ctx.Done():
		c.timer.Stop()
		return false
	}
}
