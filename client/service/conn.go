package service

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// errStop ends a read loop after the gateway's CLOSE.
var errStop = errors.New("service: stop")

// conn is one control connection of a Service. Its reading goroutine (readLoop)
// delivers answers to waiting requests, uplinks to OnUplink and events to OnEvent.
type conn struct {
	s        *Service
	nc       net.Conn
	maxFrame int // the gateway's limit, from the AUTH result

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	waiters map[uint32]chan protocol.Frame
	err     error // why the connection ended, set before done is closed
	done    chan struct{}
}

func newConn(s *Service, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, maxFrame: protocol.PreAuthMaxFrame, waiters: make(map[uint32]chan protocol.Frame), done: make(chan struct{})}
}

// write sends one frame with a deadline; a failed write drops the connection.
func (c *conn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	if _, err := c.nc.Write(frame); err != nil {
		c.nc.Close()
		return fmt.Errorf("%w: %v", ErrDisconnected, err)
	}
	return nil
}

// readLoop reads frames until the connection ends, then fails the waiting requests.
func (c *conn) readLoop() {
	defer c.s.wg.Done()
	dec := protocol.Decoder{MaxFrame: c.s.opts.MaxFrame}
	buf := make([]byte, 64<<10)
	var err error
	for err == nil {
		var n int
		n, err = c.nc.Read(buf)
		if n > 0 {
			if derr := dec.Decode(buf[:n], c.handle); derr != nil {
				err = derr
				if !errors.Is(derr, errStop) {
					// The gateway broke the framing: say so before dropping it.
					cl, _ := (&protocol.Close{Code: protocol.CloseCodeFor(derr), Reason: derr.Error()}).AppendFrame(nil, 0, 0)
					_ = c.write(cl)
				}
			}
		}
	}
	c.nc.Close()
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", ErrDisconnected, err)
	}
	c.waiters = nil
	c.mu.Unlock()
	close(c.done)
}

// handle handles one frame from the gateway on the reading goroutine.
func (c *conn) handle(f protocol.Frame) error {
	switch f.Op {
	case wire.OpResult, wire.OpFail, protocol.OpPong:
		c.mu.Lock()
		ch := c.waiters[f.Seq]
		delete(c.waiters, f.Seq)
		c.mu.Unlock()
		if ch != nil {
			ch <- f.Clone()
		}
	case protocol.OpPing:
		_ = c.write(protocol.AppendEmpty(nil, protocol.OpPong, f.Seq))
	case wire.OpUplink:
		c.uplink(f)
	case wire.OpEvent:
		var ev wire.Event
		if _, err := wire.DecodeBody(f.Body, &ev); err != nil {
			c.s.log.Warn("malformed EVENT from the gateway", "err", err)
			return nil
		}
		if c.s.opts.OnEvent != nil {
			c.s.opts.OnEvent(ev)
		}
	case protocol.OpClose:
		var cl protocol.Close
		_ = cl.Decode(f.Body)
		c.mu.Lock()
		c.err = &CloseError{Code: cl.Code, Reason: cl.Reason}
		c.mu.Unlock()
		return errStop
	default:
		// Opcodes of a later revision are ignored.
	}
	return nil
}

// uplink hands an UPLINK to OnUplink on a goroutine of its own, waiting for a free
// slot first (which back-pressures the gateway).
func (c *conn) uplink(f protocol.Frame) {
	s := c.s
	var hdr wire.Uplink
	payload, err := wire.DecodeBody(f.Body, &hdr)
	if err != nil {
		s.log.Warn("malformed UPLINK from the gateway", "err", err)
		return
	}
	u := &Uplink{Uplink: hdr, Payload: append([]byte(nil), payload...), c: c}
	if s.opts.OnUplink == nil {
		_ = u.Fail(protocol.ErrorNoRoute, "service has no uplink handler")
		return
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.stop:
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		s.opts.OnUplink(u)
	}()
}

// roundTrip sends a request frame with seq and waits for its answer.
func (c *conn) roundTrip(done <-chan struct{}, seq uint32, frame []byte) (protocol.Frame, error) {
	if len(frame)-protocol.LengthSize > c.maxFrame {
		return protocol.Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(frame)-protocol.LengthSize, c.maxFrame)
	}
	ch := make(chan protocol.Frame, 1)
	c.mu.Lock()
	if c.waiters == nil {
		err := c.err
		c.mu.Unlock()
		return protocol.Frame{}, err
	}
	c.waiters[seq] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.waiters, seq)
		c.mu.Unlock()
	}
	if err := c.write(frame); err != nil {
		forget()
		return protocol.Frame{}, err
	}
	select {
	case f := <-ch:
		return f, nil
	case <-c.done:
		select { // the answer may have come just before the end
		case f := <-ch:
			return f, nil
		default:
		}
		return protocol.Frame{}, c.failure()
	case <-done:
		forget()
		return protocol.Frame{}, errAbandoned
	}
}

// errAbandoned reports that the caller's deadline passed; the caller maps it.
var errAbandoned = errors.New("service: abandoned")

// failure returns why the connection ended.
func (c *conn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ce *CloseError
	if errors.As(c.err, &ce) {
		return fmt.Errorf("%w: %w", ErrDisconnected, c.err)
	}
	return c.err
}

// close sends CLOSE NORMAL and closes the socket; the read loop then ends.
func (c *conn) close() {
	cl, _ := (&protocol.Close{Code: protocol.CloseNormal}).AppendFrame(nil, 0, 0)
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.nc.Write(cl)
	c.wmu.Unlock()
	c.nc.Close()
}
