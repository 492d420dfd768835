package server

import (
	"net"

	"github.com/cloudwego/netpoll"

	"github.com/tether-gw/tether/internal/fdreserve"
	"github.com/tether-gw/tether/protocol"
)

// While the process is out of file descriptors, accept(2) fails with EMFILE or ENFILE
// and the kernel keeps completing handshakes into the listen backlog: the clients wait
// for an answer to HELLO that never comes. The process's spare descriptor
// (internal/fdreserve) answers them instead: each waiting client is accepted on the
// spare's slot, sent CLOSE SERVER_FULL (a reconnect code, so its backoff starts) and
// closed. The listener stays readable (netpoll polls it level-triggered), so every
// waiting client is answered in turn. Every accept goes through fdreserve's lock, so the
// control port's accept loop cannot take the slot a refusal has just freed. Without a
// spare the error goes to netpoll, which pauses accepting and retries with back-off
// (logging.go).

// reserveListener is the client listener whose accepts go through fdreserve. Accept runs
// on netpoll's poller goroutine, or on its retry goroutine while polling is paused, so
// at most one at a time.
type reserveListener struct {
	netpoll.Listener
	s    *Server
	full []byte // CLOSE SERVER_FULL, encoded once
}

// reserveFD wraps a client listener so that it refuses with SERVER_FULL while out of
// descriptors. Only raw TCP can carry the CLOSE before a handshake; the other
// transports' clients see the connection closed.
func (s *Server) reserveFD(ln netpoll.Listener, kind Transport) netpoll.Listener {
	fdreserve.Hold()
	var full []byte
	if kind == TransportTCP {
		full = protocol.AppendClose(nil, protocol.CloseServerFull, "server out of file descriptors")
	}
	return &reserveListener{Listener: ln, s: s, full: full}
}

// Accept implements net.Listener: it accepts as netpoll's listener does (under
// fdreserve's lock), and on EMFILE or ENFILE refuses one waiting client with the spare,
// returning no connection and no error (netpoll's "nothing to accept") so the poller
// comes back for the next.
func (l *reserveListener) Accept() (c net.Conn, err error) {
	fdreserve.Guard(func() { c, err = l.Listener.Accept() })
	if err == nil || !fdreserve.IsOutOfFD(err) {
		return c, err
	}
	answered, ok := fdreserve.Refuse(l.Fd(), l.full)
	if answered {
		fdExhausted.Add(1)
		l.s.metrics.refusedCounter("fd_exhausted").Inc()
		if fdLimiter().Allow("refused") {
			logFor().Warn("out of file descriptors: refusing new clients with SERVER_FULL; raise the open-files limit or spread load over more processes")
		}
	}
	if ok {
		return nil, nil
	}
	return nil, err
}
