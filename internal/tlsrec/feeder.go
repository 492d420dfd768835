package tlsrec

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// MaxHandshakeBytes bounds what a Feeder buffers waiting for the handshake to read it, so
// a client cannot make the server hold more than this per handshake.
const MaxHandshakeBytes = 64 << 10

// Feeder is the net.Conn crypto/tls runs its handshake over. The reactor feeds it the
// bytes it reads; Read (on the handshake goroutine) blocks until bytes are fed, and never
// returns bytes past the end of the TLS record it is in, so crypto/tls never consumes
// bytes that follow the handshake (Handshake hands those back). Feed and Close may be
// called from any goroutine; Read and Write are crypto/tls's (the handshake goroutine).
type Feeder struct {
	write         func([]byte) error
	local, remote net.Addr

	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte // fed bytes not yet read are buf[off:]
	off    int
	recEnd int // bytes of the current record Read may still return; 0 at a record start
	state  uint8

	// cap is what the handshake goroutine learns for Handshake (only it touches it).
	cap capture
}

// Feeder states: open, then either closed (Close) or done (Handshake took the leftover).
const (
	feederOpen uint8 = iota
	feederClosed
	feederDone
)

// NewFeeder returns a Feeder whose Write sends handshake bytes with write (called on the
// handshake goroutine; it must not retain the slice) and whose LocalAddr and RemoteAddr
// return local and remote.
func NewFeeder(write func([]byte) error, local, remote net.Addr) *Feeder {
	f := &Feeder{write: write, local: local, remote: remote}
	f.cond.L = &f.mu
	return f
}

// Feed copies p for the handshake to read. It returns ErrHandshakeTooLarge if more than
// MaxHandshakeBytes would be buffered, net.ErrClosed after Close, and ErrHandshakeDone
// (without taking p) once Handshake has returned: p then goes to Session.Open, after the
// leftover bytes Handshake returned.
func (f *Feeder) Feed(p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.state {
	case feederClosed:
		return net.ErrClosed
	case feederDone:
		return ErrHandshakeDone
	}
	if len(f.buf)-f.off+len(p) > MaxHandshakeBytes {
		return ErrHandshakeTooLarge
	}
	if f.off > 0 {
		f.buf = f.buf[:copy(f.buf, f.buf[f.off:])]
		f.off = 0
	}
	f.buf = append(f.buf, p...)
	f.cond.Signal()
	return nil
}

// Close makes a blocked or later Read return net.ErrClosed (the handshake deadline
// passed or the connection closed) and later Feed and Write calls fail. It is idempotent
// and always returns nil; after Handshake has returned it does nothing.
func (f *Feeder) Close() error {
	f.mu.Lock()
	if f.state == feederOpen {
		f.state = feederClosed
		f.buf = nil
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	return nil
}

// Read blocks until a record header has been fed, then returns fed bytes of that record
// only. It returns net.ErrClosed after Close.
func (f *Feeder) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.state != feederOpen {
			return 0, net.ErrClosed
		}
		avail := f.buf[f.off:]
		if f.recEnd == 0 && len(avail) >= recordHeaderLen {
			f.recEnd = recordHeaderLen + int(binary.BigEndian.Uint16(avail[3:]))
		}
		if f.recEnd > 0 && len(avail) > 0 {
			n := copy(p, avail[:min(len(avail), f.recEnd)])
			f.cap.sawInput(avail[:n])
			f.off += n
			f.recEnd -= n
			return n, nil
		}
		f.cond.Wait()
	}
}

// Write records p for Handshake and sends it with the write function NewFeeder got.
func (f *Feeder) Write(p []byte) (int, error) {
	f.mu.Lock()
	st := f.state
	f.mu.Unlock()
	if st != feederOpen {
		return 0, net.ErrClosed
	}
	f.cap.sawOutput(p)
	if err := f.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish ends feeding: later Feed calls return ErrHandshakeDone. It returns the bytes fed
// but not read (nil if none).
func (f *Feeder) finish() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rest []byte
	if f.state != feederOpen {
		return nil
	}
	if f.off < len(f.buf) {
		rest = append([]byte(nil), f.buf[f.off:]...) // not the whole buffer
	}
	f.state = feederDone
	f.buf, f.off = nil, 0
	return rest
}

// LocalAddr returns the local address NewFeeder got.
func (f *Feeder) LocalAddr() net.Addr { return f.local }

// RemoteAddr returns the remote address NewFeeder got.
func (f *Feeder) RemoteAddr() net.Addr { return f.remote }

// SetDeadline does nothing: the caller bounds the handshake by calling Close.
func (f *Feeder) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing (see SetDeadline).
func (f *Feeder) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing (see SetDeadline).
func (f *Feeder) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*Feeder)(nil)
