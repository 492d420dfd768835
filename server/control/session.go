package control

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// closeLinger bounds how long a closing session keeps trying to write its last frames
// (the CLOSE) to a service that does not read.
const closeLinger = time.Second

// errStop ends a session's frame loop after the session started closing.
var errStop = errors.New("control: session closing")

// session is one control connection. Two goroutines serve it: serve reads and handles
// the service's frames in order (requests run inline, so a slow operation delays only
// this service), and writeLoop drains the outbound queue to the socket. Other
// goroutines (the gateway's worker pool, timers) only queue frames with offer, which
// never blocks.
type session struct {
	p  *Port
	nc net.Conn
	id uint64
	// source is the remote address's key in the AUTH throttle (hasSource false for
	// a connection that is not TCP/IP); host is its string form, or the remote
	// address's.
	source    netip.Addr
	hasSource bool
	host      string
	// log is replaced once, by the reader, when AUTH names the service; other
	// goroutines log through it too, hence the atomic pointer.
	log atomic.Pointer[slog.Logger]

	// authed is set, under p.mu, once AUTH succeeded.
	authed atomic.Bool

	// Outbound queue, guarded by omu. queued counts the bytes in queue plus those the
	// writer is writing; fullSince is when offer first found the queue full since the
	// writer last drained it.
	omu       sync.Mutex
	queue     [][]byte
	queued    int
	fullSince time.Time
	closing   bool
	closeBy   time.Time
	wake      chan struct{} // frames queued, or closing
	space     chan struct{} // the writer drained a batch
	done      chan struct{} // closed once the writer closed the socket

	// Uplinks waiting for this service's REPLY, guarded by pmu; pclosed once the
	// session took them over for failover.
	pmu     sync.Mutex
	pending map[uint64]*pending
	pclosed bool

	// Subscriptions, guarded by p.router.mu.
	routes   map[string]struct{}
	prefixes map[string]struct{}
	events   bool
	acks     bool // subscribed to ack events (router.mu)
}

func newSession(p *Port, nc net.Conn) *session {
	id := p.nextSession.Add(1)
	remote := nc.RemoteAddr().String()
	s := &session{
		p:       p,
		nc:      nc,
		id:      id,
		wake:    make(chan struct{}, 1),
		space:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[uint64]*pending),
		host:    remote,
	}
	if s.source, s.hasSource = sourceKey(nc.RemoteAddr()); s.hasSource {
		s.host = s.source.String()
	}
	s.log.Store(p.log.With("session", id, "remote", remote))
	return s
}

// logger returns the session's logger.
func (s *session) logger() *slog.Logger { return s.log.Load() }

// signal wakes the goroutine waiting on ch, if any, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// refusal is why a connection is closed before it may authenticate.
type refusal struct {
	code   protocol.CloseCode
	reason string
	metric string // tether_control_rejected_total's reason label
}

// lockedOutRefusal refuses a source locked out for failed AUTHs until until.
func lockedOutRefusal(until time.Time) *refusal {
	wait := time.Until(until).Round(time.Millisecond)
	return &refusal{protocol.CloseRateLimited, fmt.Sprintf("too many failed AUTHs from this address; retry in %s", wait), "auth_locked_out"}
}

// refuse counts r and closes the session with its code.
func (s *session) refuse(r *refusal) {
	s.p.m.rejected(r.metric)
	s.close(r.code, r.reason, true)
}

// serve is the session's reading goroutine: the AUTH handshake, then every frame in
// order until the connection ends. A non-nil refuse closes the connection at once.
func (s *session) serve(refuse *refusal) {
	defer s.p.wg.Done()
	if refuse != nil {
		s.refuse(refuse)
		return
	}
	rest, ok := s.handshake()
	if !ok {
		return
	}
	dec := protocol.Decoder{MaxFrame: s.p.opts.MaxFrame}
	if err := dec.Decode(rest, s.handleFrame); err != nil {
		s.decodeFailed(err)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := s.nc.Read(buf)
		if n > 0 {
			s.p.m.bytesIn.Add(n)
			if derr := dec.Decode(buf[:n], s.handleFrame); derr != nil {
				s.decodeFailed(derr)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logger().Debug("control connection read failed", "err", err)
			}
			s.close(protocol.CloseNormal, "", false)
			return
		}
	}
}

// handshake reads the first frame, which must be an AUTH with the right secret, within
// Options.AuthTimeout. It returns the bytes read past that frame. Frames before AUTH
// are parsed one at a time with the pre-authentication limit, so an unauthenticated
// peer cannot make the port buffer more than protocol.PreAuthMaxFrame.
func (s *session) handshake() (rest []byte, ok bool) {
	p := s.p
	_ = s.nc.SetReadDeadline(time.Now().Add(p.opts.AuthTimeout))
	buf := make([]byte, 0, 2*(protocol.PreAuthMaxFrame+protocol.LengthSize))
	for {
		f, n, err := protocol.Parse(buf, protocol.PreAuthMaxFrame)
		if err != nil {
			p.m.authFailed("protocol_error")
			s.close(protocol.CloseCodeFor(err), err.Error(), true)
			return nil, false
		}
		if n > 0 {
			if !s.authenticate(f) {
				return nil, false
			}
			_ = s.nc.SetReadDeadline(time.Time{})
			return buf[n:], true
		}
		m, err := s.nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		p.m.bytesIn.Add(m)
		if err != nil && m == 0 {
			if s.isClosing() {
				return nil, false
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.m.authFailed("timeout")
				s.close(protocol.CloseAuthTimeout, "no AUTH in time", true)
			} else {
				s.close(protocol.CloseNormal, "", false)
			}
			return nil, false
		}
	}
}

// authenticate checks the first frame and answers it.
func (s *session) authenticate(f protocol.Frame) bool {
	p := s.p
	p.m.frameIn(f.Op)
	if f.Op != OpAuth {
		p.m.authFailed("no_auth")
		s.close(protocol.CloseProtocolError, "AUTH must be the first frame", true)
		return false
	}
	var a wire.Auth
	if _, err := codec.DecodeBody(f.Body, &a); err != nil {
		p.m.authFailed("malformed")
		s.close(protocol.CloseProtocolError, "malformed AUTH: "+err.Error(), true)
		return false
	}
	now := time.Now()
	if s.hasSource {
		// A connection accepted before its source was locked out must not get its
		// guess checked either.
		if until, locked := p.throttle.lockedOut(s.source, now); locked {
			s.refuse(lockedOutRefusal(until))
			return false
		}
	}
	switch {
	case a.Secret == "" && !p.opts.Insecure:
		s.secretFailed(now, "missing_secret", "missing secret")
		return false
	case !p.checkSecret(a.Secret):
		s.secretFailed(now, "bad_secret", "invalid secret")
		return false
	}
	if s.hasSource {
		p.throttle.succeeded(s.source)
	}
	name := a.Name
	if len(name) > 128 {
		name = name[:128]
	}
	p.mu.Lock()
	if !p.takeUnauthLocked(s) || p.closed {
		// Evicted to make room for a newer connection, or the port is closing:
		// whoever did that closes the session.
		p.mu.Unlock()
		return false
	}
	if p.authed >= p.opts.MaxServices {
		p.mu.Unlock()
		p.m.rejected("too_many_services")
		s.close(protocol.CloseServerFull, "too many control connections", true)
		return false
	}
	s.authed.Store(true)
	p.authed++
	p.mu.Unlock()
	s.log.Store(s.logger().With("service", name))
	s.logger().Info("service connected")
	s.result(f.Op, f.Seq, &wire.AuthResult{
		Session:         s.id,
		MaxFrame:        p.opts.MaxFrame,
		ClientMaxFrame:  p.srv.Load().MaxFrame(),
		UplinkTimeoutMs: p.opts.UplinkTimeout.Milliseconds(),
	})
	return true
}

// secretFailed refuses an AUTH with a wrong or missing secret: it counts the failure
// against the source (which may lock the source out) and logs it, rate-limited.
func (s *session) secretFailed(now time.Time, metric, reason string) {
	p := s.p
	p.m.authFailed(metric)
	var lockout time.Duration
	if s.hasSource {
		lockout = p.throttle.failed(s.source, now)
	}
	if p.authLog.Allow(metric) {
		if lockout > 0 {
			s.logger().Warn("control AUTH failed; locking the source out", "why", reason, "lockout", lockout.String())
		} else {
			s.logger().Warn("control AUTH failed", "why", reason)
		}
	}
	s.close(protocol.CloseInvalidToken, reason, true)
}

// decodeFailed closes the session after a framing error (or errStop).
func (s *session) decodeFailed(err error) {
	if errors.Is(err, errStop) {
		return
	}
	code := protocol.CloseCodeFor(err)
	s.logger().Info("closing control connection on a framing error", "err", err)
	s.close(code, err.Error(), true)
}

// handleFrame handles one frame from an authenticated service. It runs on the reading
// goroutine; f.Body is valid only until it returns.
func (s *session) handleFrame(f protocol.Frame) error {
	if s.isClosing() {
		return errStop
	}
	s.p.m.frameIn(f.Op)
	switch f.Op {
	case protocol.OpPing:
		s.send(protocol.AppendEmpty(nil, protocol.OpPong, f.Seq))
		return nil
	case protocol.OpPong:
		return nil
	case protocol.OpClose:
		var c protocol.Close
		_ = c.Decode(f.Body)
		s.logger().Debug("service closed the connection", "code", c.Code, "reason", c.Reason)
		s.close(protocol.CloseNormal, "", false)
		return errStop
	case OpReply:
		s.handleReply(f)
		return nil
	case OpAuth:
		s.failed(f.Op, f.Seq, badRequest("already authenticated"))
		return nil
	}
	if !wire.IsRequest(f.Op) {
		s.failed(f.Op, f.Seq, fail(protocol.ErrorUnknownOpcode, "unknown opcode "+wire.OpName(f.Op)))
		return nil
	}
	// A service that does not read its results must not make the port queue
	// without bound: stop reading its requests until the writer catches up.
	if !s.waitForSpace() {
		return errStop
	}
	res, err := s.do(f)
	if err != nil {
		s.failed(f.Op, f.Seq, err)
		return nil
	}
	s.result(f.Op, f.Seq, res)
	return nil
}

// result answers request op with RESULT carrying res.
func (s *session) result(op protocol.Opcode, seq uint32, res any) {
	s.p.m.request(op)
	frame, err := codec.AppendFrame(nil, OpResult, seq, res, nil)
	if err != nil {
		s.logger().Error("cannot encode a result", "op", wire.OpName(op), "err", err)
		s.failed(op, seq, fail(protocol.ErrorInternal, "result too large"))
		return
	}
	s.send(frame)
}

// failed answers request op with FAIL.
func (s *session) failed(op protocol.Opcode, seq uint32, f *Failure) {
	s.p.m.request(op)
	s.p.m.failed(f.Code)
	frame, err := codec.AppendFrame(nil, OpFail, seq, f.Fail(), nil)
	if err != nil {
		s.logger().Error("cannot encode a FAIL", "err", err)
		return
	}
	s.send(frame)
}

func (s *session) isClosing() bool {
	s.omu.Lock()
	defer s.omu.Unlock()
	return s.closing
}

// send queues a frame that answers the service (RESULT, FAIL, PONG). It is never
// refused for size: the reader waits for space before each request instead, so the
// queue exceeds its budget by at most one answer.
func (s *session) send(frame []byte) bool {
	s.omu.Lock()
	if s.closing {
		s.omu.Unlock()
		return false
	}
	s.enqueueLocked(frame)
	s.omu.Unlock()
	signal(s.wake)
	return true
}

// enqueueLocked appends frame to the write queue and counts its bytes; omu is held.
func (s *session) enqueueLocked(frame []byte) {
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	s.p.m.queuedBytes.Add(int64(len(frame)))
}

// offer queues a frame the gateway sends on its own (UPLINK, EVENT) unless the queue
// is over budget; it never blocks. A queue that has stayed full for longer than
// Options.WriteTimeout closes the session as a slow consumer. A frame larger than the
// whole budget still goes through an empty queue.
func (s *session) offer(frame []byte) bool {
	s.omu.Lock()
	if s.closing {
		s.omu.Unlock()
		return false
	}
	if s.queued > 0 && s.queued+len(frame) > s.p.opts.MaxQueueBytes {
		now := time.Now()
		if s.fullSince.IsZero() {
			s.fullSince = now
		}
		stalled := now.Sub(s.fullSince) > s.p.opts.WriteTimeout
		s.omu.Unlock()
		if stalled {
			s.slow("queue full for longer than the write timeout")
		}
		return false
	}
	s.enqueueLocked(frame)
	s.omu.Unlock()
	signal(s.wake)
	return true
}

// waitForSpace blocks the reading goroutine while the queue is over budget, at most
// Options.WriteTimeout, after which the session is closed as a slow consumer. It
// returns false if the session is closing.
func (s *session) waitForSpace() bool {
	var t *time.Timer
	for {
		s.omu.Lock()
		closing, queued := s.closing, s.queued
		s.omu.Unlock()
		if closing {
			return false
		}
		if queued <= s.p.opts.MaxQueueBytes {
			return true
		}
		if t == nil {
			t = time.NewTimer(s.p.opts.WriteTimeout)
			defer t.Stop()
		}
		select {
		case <-s.space:
		case <-s.done:
			return false
		case <-t.C:
			s.slow("results not read within the write timeout")
			return false
		}
	}
}

// slow closes a service that stopped reading.
func (s *session) slow(why string) {
	s.omu.Lock()
	closing := s.closing
	s.omu.Unlock()
	if closing {
		return
	}
	s.p.m.slowClosed.Inc()
	s.logger().Warn("closing a control connection that stopped reading", "why", why)
	s.close(protocol.CloseSlowConsumer, why, true)
}

// writeLoop is the session's writing goroutine: it writes queued frames in batches
// (writev) with a deadline per batch, and closes the socket once the session is
// closing and its queue is empty, or when a write fails.
func (s *session) writeLoop() {
	defer s.p.wg.Done()
	defer close(s.done)
	defer s.nc.Close()
	var spare [][]byte
	for range s.wake {
		for {
			s.omu.Lock()
			closing := s.closing
			if len(s.queue) == 0 {
				s.omu.Unlock()
				if closing {
					return
				}
				break
			}
			// Swap the queue with the spare slice: the two backing arrays alternate
			// between the writer and the goroutines queueing frames.
			batch := s.queue
			s.queue = spare[:0]
			if !closing {
				_ = s.nc.SetWriteDeadline(time.Now().Add(s.p.opts.WriteTimeout))
			}
			s.omu.Unlock()
			size := 0
			for _, b := range batch {
				size += len(b)
			}
			bufs := net.Buffers(batch)
			_, err := bufs.WriteTo(s.nc)
			s.omu.Lock()
			s.queued -= size
			s.fullSince = time.Time{}
			s.omu.Unlock()
			s.p.m.queuedBytes.Add(-int64(size))
			s.p.m.bytesOut.Add(size)
			clear(batch)
			spare = batch[:0]
			signal(s.space)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && !closing {
					s.slow("write timed out")
				} else if !closing {
					s.logger().Debug("control connection write failed", "err", err)
				}
				s.close(protocol.CloseNormal, "", false)
				s.dropQueue()
				return
			}
		}
	}
}

// dropQueue releases frames that will never be written.
func (s *session) dropQueue() {
	s.omu.Lock()
	size := 0
	for _, b := range s.queue {
		size += len(b)
	}
	s.queue = nil
	s.queued -= size
	s.omu.Unlock()
	s.p.m.queuedBytes.Add(-int64(size))
}

// close starts closing the session: it stops routing to it, re-dispatches its pending
// uplinks, queues CLOSE (when send is set) and lets the writer flush and close the
// socket within closeLinger. Only the first call has an effect.
func (s *session) close(code protocol.CloseCode, reason string, send bool) {
	s.omu.Lock()
	if s.closing {
		s.omu.Unlock()
		return
	}
	s.closing = true
	s.closeBy = time.Now().Add(closeLinger)
	_ = s.nc.SetWriteDeadline(s.closeBy)
	if send {
		s.enqueueLocked(protocol.AppendClose(nil, code, reason))
	}
	s.omu.Unlock()
	signal(s.wake)
	// The reader may be blocked in Read: a past deadline wakes it.
	_ = s.nc.SetReadDeadline(time.Now())

	s.p.m.closed(code)
	s.p.router.removeSession(s)
	s.p.removeSession(s, s.authed.Load())
	for _, pd := range s.takeAllPending() {
		s.p.failover(pd, s)
	}
	if s.authed.Load() {
		s.logger().Info("service disconnected", "code", code, "reason", reason)
	}
}

// addPending records an uplink sent to this service; false if the session is closing.
func (s *session) addPending(pd *pending) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.pclosed {
		return false
	}
	s.pending[pd.id] = pd
	return true
}

// takePending removes and returns uplink id, or nil.
func (s *session) takePending(id uint64) *pending {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	pd := s.pending[id]
	delete(s.pending, id)
	return pd
}

// takeAllPending removes every pending uplink and refuses new ones.
func (s *session) takeAllPending() []*pending {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.pclosed = true
	ps := make([]*pending, 0, len(s.pending))
	for _, pd := range s.pending {
		ps = append(ps, pd)
	}
	s.pending = nil
	return ps
}
