package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/timingwheel"
)

// Token expiry and REFRESH (PROTOCOL.md §6.12). A connection whose Authenticator gave an
// expiry holds a tokenLife, whose wheel timer is due at the expiry plus
// Options.TokenGrace; when it fires the connection is closed with CloseSessionExpired.
// A REFRESH is decoded on the read path and checked on the pool like a HELLO: if the
// Authenticator accepts its token for the same user, the identity is replaced by a copy
// carrying the new token's hash and expiry, the timer is moved (or cancelled when the
// new token does not expire), and REFRESH_OK answers. One REFRESH per connection is
// checked at a time; another that arrives meanwhile is answered ERROR BUSY. A refused
// REFRESH is answered ERROR and changes nothing: the old expiry stands.

// tokenLife is the expiry state of a connection, allocated when it first has an expiry
// or sends REFRESH, so that a connection whose token never expires costs nothing.
type tokenLife struct {
	// timer is due at the expiry plus TokenGrace, in wheel time; not pending while the
	// token does not expire.
	timer timingwheel.Timer[Conn]
	// checking is set while a REFRESH of the connection is on the pool.
	checking atomic.Bool
}

// errBadToken answers a REFRESH whose token is empty or longer than a HELLO could carry.
var errBadToken = errors.New("server: REFRESH token empty or longer than protocol.MaxRefreshToken")

// lifeOf returns c's tokenLife, allocating it on first use. Any goroutine may call it.
func (c *Conn) lifeOf() *tokenLife {
	if l := c.life.Load(); l != nil {
		return l
	}
	l := &tokenLife{}
	l.timer.SetOwner(c)
	if c.life.CompareAndSwap(nil, l) {
		return l
	}
	return c.life.Load()
}

// armExpiry points c's expiry timer at expiresAt (Unix nanoseconds) plus TokenGrace, or
// cancels it when expiresAt is 0. The wheel runs on a monotonic clock, so the wall-clock
// expiry becomes "that long from now".
func (c *Conn) armExpiry(expiresAt int64) {
	s := c.srv
	if expiresAt == 0 {
		if l := c.life.Load(); l != nil {
			s.wheel.Cancel(&l.timer)
		}
		return
	}
	l := c.lifeOf()
	left := max(time.Duration(expiresAt-s.wallNow()), 0)
	s.wheel.Schedule(&l.timer, s.deadline(left+s.opts.TokenGrace))
	if c.state()&stClosed != 0 {
		// onClosed ran before the Schedule and cancelled nothing: do it here, so a
		// closed connection is not kept until its token would have expired.
		s.wheel.Cancel(&l.timer)
	}
}

// wallNow is the wall clock in Unix nanoseconds (Options.wall in tests).
func (s *Server) wallNow() int64 {
	if s.opts.wall != nil {
		return s.opts.wall()
	}
	return time.Now().UnixNano()
}

// onTokenExpired runs on the wheel's dispatcher when c's token deadline passes.
func (s *Server) onTokenExpired(c *Conn) {
	st := c.state()
	if st.phase() != phaseAuthed || st&stClosing != 0 {
		return
	}
	c.closeWith(protocol.CloseSessionExpired, "token expired")
}

// startRefresh handles a decoded REFRESH on the read path: it hands the token to the
// pool, or answers BUSY while another REFRESH of c is being checked.
func (rd *readPass) startRefresh(token string, seq uint32) {
	c := rd.c
	s := c.srv
	l := c.lifeOf()
	busy := func(msg string) {
		s.metrics.refreshed("busy")
		rd.reply(protocol.OpError, func(dst []byte) []byte {
			b, _ := (&protocol.Error{Code: protocol.ErrorBusy, Message: msg}).AppendFrame(dst, seq, 0)
			return b
		})
	}
	if !l.checking.CompareAndSwap(false, true) {
		busy("a REFRESH is already being checked")
		return
	}
	if err := s.pool.Submit(func() { c.refresh(l, token, seq) }); err != nil {
		l.checking.Store(false)
		s.metrics.poolRejected.Inc()
		busy("server busy")
	}
}

// refresh runs on the pool: it checks token with the Authenticator and answers the
// REFRESH that carried it with seq.
func (c *Conn) refresh(l *tokenLife, token string, seq uint32) {
	s := c.srv
	old := c.ident()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.AuthTimeout)
	id, err := s.opts.Authenticator.Authenticate(ctx, AuthRequest{
		Token:         token,
		DeviceID:      old.deviceID,
		Platform:      old.platform,
		ClientVersion: old.clientVersion,
		RemoteAddr:    c.remoteAddr(),
		Transport:     c.Transport(),
		TLS:           c.tlsInfo(),
	})
	cancel()
	var frame []byte
	switch {
	case err != nil:
		code, reason := authFailure(err)
		if code == protocol.CloseAuthTimeout {
			s.metrics.refreshed("timeout")
			frame = c.errorFrame(seq, protocol.ErrorTimeout, reason)
			break
		}
		s.metrics.refreshed("rejected")
		s.log.Debug("refresh refused", "conn", c.id, "user", old.userID, "code", code.String(), "err", err)
		frame = c.errorFrame(seq, protocol.ErrorTokenRejected, reason)
	case id.UserID != old.userID:
		s.metrics.refreshed("other_user")
		frame = c.errorFrame(seq, protocol.ErrorDenied, "token names another user")
	default:
		who := *old
		who.tokenHash = hashToken(token)
		who.expiresAt = 0
		if !id.ExpiresAt.IsZero() {
			who.expiresAt = id.ExpiresAt.UnixNano()
		}
		c.who.Store(&who)
		c.armExpiry(who.expiresAt)
		s.metrics.refreshed("ok")
		frame, _ = (&protocol.RefreshOK{TokenExpiresMs: unixMs(who.expiresAt)}).AppendFrame(nil, seq, 0)
		s.metrics.framesOut(protocol.OpRefreshOK, len(frame))
	}
	// Cleared before the answer goes out, so that a client may send its next REFRESH
	// as soon as it reads this one's.
	l.checking.Store(false)
	_ = c.write(frame)
}

// unixMs converts Unix nanoseconds to the Unix milliseconds of the wire, keeping 0 as
// "no expiry" (an expiry within the first millisecond of 1970 would round to it).
func unixMs(ns int64) int64 {
	if ns == 0 {
		return 0
	}
	return max(ns/int64(time.Millisecond), 1)
}
