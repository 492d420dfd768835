package control

import (
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/tether-gw/tether/internal/fdreserve"
	"github.com/tether-gw/tether/protocol"
)

// serverFull is the answer to a service that connects while the process is out of file
// descriptors.
var serverFull = protocol.AppendClose(nil, protocol.CloseServerFull, "gateway out of file descriptors")

// accept accepts the next control connection. Normally that is the listener's own
// Accept. Once it has failed for lack of descriptors, and until a descriptor is free
// again, the loop accepts only through the process's descriptor reserve
// (internal/fdreserve): its accept4 calls then take the reserve's lock, so a retry cannot
// take the slot the client listener is refusing a client with, and each service waiting
// meanwhile is answered CLOSE SERVER_FULL on the spare instead of waiting unanswered.
//
// It returns a connection; or nil and nil when there is nothing to serve yet (call
// again); or an error: the listener's once it is closed, EMFILE or ENFILE while out of
// descriptors (the loop backs off before it calls again). Only the accept loop calls it.
func (p *Port) accept(ln net.Listener) (net.Conn, error) {
	tl, ok := ln.(*net.TCPListener)
	if !p.exhausted || !ok {
		nc, err := ln.Accept()
		if err != nil && fdreserve.IsOutOfFD(unwrapErrno(err)) {
			p.exhausted = true
		}
		return nc, err
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nc net.Conn
	var aerr error
	if err := rc.Control(func(lfd uintptr) { nc, aerr = p.acceptExhausted(int(lfd)) }); err != nil {
		return nil, err
	}
	return nc, aerr
}

// acceptExhausted accepts, or refuses, the services waiting on lfd while the process is
// out of descriptors.
func (p *Port) acceptExhausted(lfd int) (net.Conn, error) {
	for {
		fd, err := fdreserve.Accept(lfd)
		switch {
		case err == nil:
			p.exhausted = false
			return fileConn(fd)
		case err == syscall.ECONNABORTED:
			continue // the peer gave up before it was accepted, as net's Accept skips it
		case err == syscall.EAGAIN:
			// A descriptor was free (accept4 takes one before it looks for a
			// connection) and nobody is waiting: back to the listener's Accept.
			p.exhausted = false
			return nil, nil
		case !fdreserve.IsOutOfFD(err):
			return nil, os.NewSyscallError("accept4", err)
		}
		answered, ok := fdreserve.Refuse(lfd, serverFull)
		if !ok || !answered {
			return nil, os.NewSyscallError("accept4", err) // still out: back off
		}
		p.m.rejected("fd_exhausted")
	}
}

// fileConn wraps an accepted descriptor as a net.Conn. net.FileConn duplicates it, under
// the reserve's lock for the same reason as the accept; if that fails the service is
// answered SERVER_FULL on the original.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "control")
	var nc net.Conn
	var err error
	fdreserve.Guard(func() { nc, err = net.FileConn(f) })
	if err != nil {
		_, _ = syscall.Write(fd, serverFull)
	}
	_ = f.Close()
	return nc, err
}

// unwrapErrno returns the errno inside an accept error, or err.
func unwrapErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
