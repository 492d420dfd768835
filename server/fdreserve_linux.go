package server

import (
	"net"
	"sync"
	"syscall"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/protocol"
)

// While the process is out of file descriptors, accept(2) fails with EMFILE or ENFILE
// and the kernel keeps completing handshakes into the listen backlog: the clients wait
// for an answer to HELLO that never comes. The reserved-descriptor trick answers them
// instead: a descriptor on /dev/null is held from Start; on EMFILE it is closed, the
// waiting client accepted with it, sent CLOSE SERVER_FULL (a reconnect code, so its
// backoff starts) and closed, and the reserve reopened. The listener stays readable
// (netpoll polls it level-triggered), so every waiting client is answered in turn.
// Without a reserve (another thread took the freed descriptor) the error goes to
// netpoll, which pauses accepting and retries with back-off (logging.go).

// reserveListener is the client listener with a reserved descriptor. Accept runs on
// netpoll's poller goroutine, or on its retry goroutine while polling is paused, so at
// most one at a time; mu guards the reserve for Close.
type reserveListener struct {
	netpoll.Listener
	s    *Server
	full []byte // CLOSE SERVER_FULL, encoded once

	mu      sync.Mutex
	reserve int // -1: none
}

// reserveFD wraps the client listener with a reserved descriptor.
func (s *Server) reserveFD(ln netpoll.Listener) netpoll.Listener {
	full := protocol.AppendClose(nil, protocol.CloseServerFull, "server out of file descriptors")
	return &reserveListener{Listener: ln, s: s, full: full, reserve: openReserve()}
}

// openReserve opens the reserved descriptor, or returns -1.
func openReserve() int {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// Accept implements net.Listener: it accepts as netpoll's listener does, and on EMFILE
// or ENFILE refuses one waiting client with the reserve, returning no connection and no
// error (netpoll's "nothing to accept") so the poller comes back for the next.
func (l *reserveListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil || !isOutOfFD(err) {
		return c, err
	}
	if l.refuseOne() {
		return nil, nil
	}
	return nil, err
}

// refuseOne accepts one waiting client on the reserve's descriptor and answers it
// SERVER_FULL. It reports false if it had no reserve to spend.
func (l *reserveListener) refuseOne() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reserve < 0 {
		if l.reserve = openReserve(); l.reserve < 0 {
			return false
		}
	}
	_ = syscall.Close(l.reserve)
	l.reserve = -1
	fd, _, err := syscall.Accept4(l.Fd(), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err == nil {
		_, _ = syscall.Write(fd, l.full)
		// Read what the client sent (its HELLO), so the close is a FIN rather than a
		// reset that could discard the CLOSE before the client reads it.
		var discard [512]byte
		_, _ = syscall.Read(fd, discard[:])
		_ = syscall.Close(fd)
		fdExhausted.Add(1)
		l.s.metrics.refusedCounter("fd_exhausted").Inc()
		if fdLimiter().Allow("refused") {
			logFor().Warn("out of file descriptors: refusing new clients with SERVER_FULL; raise the open-files limit or spread load over more processes")
		}
	}
	l.reserve = openReserve()
	return err == nil || err == syscall.EAGAIN
}

// Close closes the listener and releases the reserve.
func (l *reserveListener) Close() error {
	l.mu.Lock()
	if l.reserve >= 0 {
		_ = syscall.Close(l.reserve)
		l.reserve = -1
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// isOutOfFD reports whether err means the process or the system ran out of file
// descriptors.
func isOutOfFD(err error) bool {
	return err == syscall.EMFILE || err == syscall.ENFILE
}
