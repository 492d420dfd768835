package server

import "github.com/tether-gw/tether/protocol"

// connState is a connection's state word: its phase, its flags and, once it is closing,
// the code it is closed with, in one atomic value (Conn.st). Every question "is it
// authenticated / pushable / going away / closing / closed" is one load of it, and every
// change is one of the named transitions below, each a compare-and-swap, so no two flags
// can disagree. A connection only moves forward: phases advance, flags are never
// cleared, and the close code is recorded exactly once, by the first markClosing.
//
//	bits 0-1   phase: phaseNew, phaseAuthenticating, phaseAuthed
//	bit  2     stReady      AUTH_OK (and any resume replay) is written: pushes may go out
//	bit  3     stGoingAway  GOAWAY was sent: the timer holds the grace deadline
//	bit  4     stClosing    close started; the code is recorded in bits 16-31
//	bit  5     stWritesDone no frame may be written or queued any more: checked under
//	                        wmu; set under it, or by onClosed, which then takes it
//	bit  6     stClosed     netpoll's close callback ran (onClosed)
//	bit  7     stAdmitted   counted against its source's per-IP limit (limits.admit),
//	                        so onClosed releases it; at accept, or once a PROXY
//	                        header named the client (proxylink.go)
//	bits 16-31 the close code (0 until stClosing)
type connState uint32

const (
	phaseNew            connState = 0 // accepted, no HELLO yet
	phaseAuthenticating connState = 1 // HELLO received, Authenticator running
	phaseAuthed         connState = 2 // joined the hub; AUTH_OK is being or was sent
	phaseMask           connState = 3

	stReady      connState = 1 << 2
	stGoingAway  connState = 1 << 3
	stClosing    connState = 1 << 4
	stWritesDone connState = 1 << 5
	stClosed     connState = 1 << 6
	stAdmitted   connState = 1 << 7

	codeShift = 16
)

func (s connState) phase() connState { return s & phaseMask }

// code returns the recorded close code (0 while not closing).
func (s connState) code() protocol.CloseCode { return protocol.CloseCode(s >> codeShift) }

// pushable reports whether a push may be written: AUTH_OK is out and no close started.
func (s connState) pushable() bool {
	return s&(phaseMask|stReady|stClosing|stClosed) == phaseAuthed|stReady
}

// state loads the connection's state word.
func (c *Conn) state() connState { return connState(c.st.Load()) }

// pushable is the one answer to "may a push be written to this connection": AUTH_OK
// (and any resume replay) was written and no close has started. Every push path asks
// it; writeFramesLocked still refuses a connection whose close began meanwhile.
func (c *Conn) pushable() bool { return c.state().pushable() }

// pushErr is nil when the connection is pushable, else why not: ErrConnClosed once a
// close started, ErrNotReady before AUTH_OK is out.
func (c *Conn) pushErr() error {
	st := c.state()
	switch {
	case st.pushable():
		return nil
	case st&stClosing != 0:
		return ErrConnClosed
	}
	return ErrNotReady
}

// closing reports whether a close started (a code is recorded).
func (c *Conn) closing() bool { return c.state()&stClosing != 0 }

// closeCode returns the code the connection is being or was closed with, 0 while open.
func (c *Conn) closeCode() protocol.CloseCode { return c.state().code() }

// cas moves the state word from old to new.
func (c *Conn) cas(old, new connState) bool { return c.st.CompareAndSwap(uint32(old), uint32(new)) }

// setFlag sets flag and returns the state before.
func (c *Conn) setFlag(flag connState) connState { return connState(c.st.Or(uint32(flag))) }

// beginAuth moves a new connection to phaseAuthenticating; false if it is not new or a
// close started.
func (c *Conn) beginAuth() bool { return c.advancePhase(phaseNew, phaseAuthenticating) }

// markAuthed moves an authenticating connection to phaseAuthed; false if a close
// started first. hub.addUser calls it under the user shard lock (see doc.go).
func (c *Conn) markAuthed() bool { return c.advancePhase(phaseAuthenticating, phaseAuthed) }

// advancePhase moves the phase from from to to; false if the phase is not from or a
// close started.
func (c *Conn) advancePhase(from, to connState) bool {
	for {
		s := c.state()
		if s.phase() != from || s&(stClosing|stClosed) != 0 {
			return false
		}
		if c.cas(s, s&^phaseMask|to) {
			return true
		}
	}
}

// markReady lets pushes through; writeFirst sets it under wmu with AUTH_OK's write.
func (c *Conn) markReady() { c.setFlag(stReady) }

// markGoingAway records that GOAWAY was sent.
func (c *Conn) markGoingAway() { c.setFlag(stGoingAway) }

// markClosing starts the close with code. Only the first call succeeds, so the code is
// recorded exactly once; later callers learn the connection is closing already.
func (c *Conn) markClosing(code protocol.CloseCode) bool {
	for {
		s := c.state()
		if s&stClosing != 0 {
			return false
		}
		if c.cas(s, s|stClosing|connState(code)<<codeShift) {
			return true
		}
	}
}

// markClosed records that the close callback ran and returns the state before; a close
// the server did not start (the peer left) is recorded as CloseNormal. ok is false if it
// already ran.
func (c *Conn) markClosed() (prev connState, ok bool) {
	for {
		s := c.state()
		if s&stClosed != 0 {
			return s, false
		}
		n := s | stClosed | stWritesDone
		if s&stClosing == 0 {
			n |= stClosing | connState(protocol.CloseNormal)<<codeShift
		}
		if c.cas(s, n) {
			return s, true
		}
	}
}

// markWritesDone stops every later write; wmu is held.
func (c *Conn) markWritesDone() { c.setFlag(stWritesDone) }

// writesDone reports whether writes stopped; read under wmu.
func (c *Conn) writesDone() bool { return c.state()&stWritesDone != 0 }
