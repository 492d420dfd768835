package server

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/tether-gw/tether/protocol"
)

// The handshake: HELLO arrives on the read path, which moves the connection to
// phaseAuthenticating and submits authenticate to the pool. authenticate asks the
// Authenticator, then takes over the connection's timer from the auth deadline: if the
// deadline already fired, the auth timeout wins and the result is dropped. Otherwise the
// connection joins the hub (applying the multi-device policy), gets its heartbeat
// deadline, queues OnConnect ahead of any request, and is sent AUTH_OK.

// startAuth submits the HELLO, which arrived with seq, to the pool. AUTH_OK and
// AUTH_FAIL echo seq.
func (c *Conn) startAuth(h *protocol.Hello, seq uint32) {
	hello := *h
	err := c.srv.pool.Submit(func() { c.authenticate(&hello, seq) })
	if err != nil {
		c.srv.metrics.poolRejected.Inc()
		c.failAuth(seq, protocol.CloseServerBusy, "server busy")
	}
}

// authenticate runs on the pool.
func (c *Conn) authenticate(h *protocol.Hello, seq uint32) {
	s := c.srv
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.AuthTimeout)
	id, err := s.opts.Authenticator.Authenticate(ctx, AuthRequest{
		Token:         h.Token,
		DeviceID:      h.DeviceID,
		Platform:      h.Platform,
		ClientVersion: h.ClientVersion,
		RemoteAddr:    c.remoteAddr(),
		Transport:     c.Transport(),
		TLS:           c.tlsInfo(),
	})
	cancel()
	if err == nil && id.UserID == "" {
		err = &AuthError{Code: protocol.CloseInvalidToken, Reason: "token names no user"}
	}
	if err == nil && !(utf8.ValidString(id.UserID) && utf8.ValidString(id.DeviceID) && utf8.ValidString(id.Platform)) {
		// AUTH_OK could not carry it (PROTOCOL.md §2: every str is UTF-8).
		err = &AuthError{Code: protocol.CloseInvalidToken, Reason: "identity is not valid UTF-8"}
	}
	if err != nil {
		code, reason := authFailure(err)
		s.authFailed(c, code, err) // flapping.go: rate-limited log line, strike against the source
		c.failAuth(seq, code, reason)
		return
	}
	who := &identity{
		userID:        id.UserID,
		deviceID:      h.DeviceID,
		platform:      h.Platform,
		clientVersion: h.ClientVersion,
		tokenHash:     hashToken(h.Token),
	}
	if !id.ExpiresAt.IsZero() {
		who.expiresAt = id.ExpiresAt.UnixNano()
	}
	if id.DeviceID != "" {
		who.deviceID = id.DeviceID
	}
	if id.Platform != "" {
		who.platform = id.Platform
	}
	c.who.Store(who)

	// In a cluster the store decides the resume, before the user lock (qosstore.go).
	var stored StoredResume
	var storeErr error
	if s.qstore != nil {
		s.pending.begin(who.userID)
		ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
		stored, storeErr = s.qstore.Resume(ctx, who.userID, who.deviceID, h.ResumeEpoch, h.ResumeLastID)
		cancel()
	}
	gap := false
	defer func() {
		if s.qstore == nil {
			return
		}
		if over := s.pending.end(who.userID); over || gap {
			go s.fill(who.userID)
		}
	}()

	if !s.wheel.Cancel(&c.timer) {
		return // the auth deadline fired first and is closing the connection
	}
	// Under the user's lock: join, AUTH_OK and the resume replay happen with no QoS1
	// push in between (see stream.go).
	u := s.lockUser(who.userID, true)
	defer u.mu.Unlock()
	victims, ok := s.hub.addUser(c, u)
	if !ok {
		return // closed while authenticating
	}
	// Every displaced connection is told why: a client that gets only EOF would take it
	// for a network fault and reconnect, and two app instances sharing a device id would
	// then replace each other in a loop. REPLACED is terminal, so the loop stops.
	for _, v := range victims {
		v.c.closeWith(protocol.CloseReplaced, v.reason)
	}
	// The user's connections on other nodes of a cluster meet the same policy there.
	s.announceLogin(c, who)
	s.wheel.Schedule(&c.timer, s.deadline(s.hbTimeout))
	c.armExpiry(who.expiresAt) // refresh.go
	// OnConnect goes first in the request queue, held until AUTH_OK is out so the
	// handler can push from it; requests the client pipelines queue behind it.
	c.holdQueue(poolTask{kind: taskConnect})

	var resume protocol.ResumeResult
	var start uint64
	if s.qstore != nil {
		pend, _ := s.pending.peek(who.userID)
		resume, start, gap = s.resumeStoredLocked(u, c, stored, storeErr, pend, h.ResumeEpoch, h.ResumeLastID)
	} else {
		resume, start = s.resumeLocked(u, c, h.ResumeEpoch, h.ResumeLastID)
	}
	ok2 := protocol.AuthOK{
		ConnID:       c.id,
		HeartbeatMs:  uint32(s.opts.Heartbeat / time.Millisecond),
		MaxFrame:     uint32(s.opts.MaxFrame),
		ServerTimeMs: time.Now().UnixMilli(),
		Resume:       resume,
		Epoch:        u.epoch,
		LastID:       start,
		UserID:       who.userID,
		// The token's expiry, which a REFRESH must beat (PROTOCOL.md §6.2).
		TokenExpiresMs: unixMs(who.expiresAt),
	}
	frame, err := ok2.AppendFrame(nil, seq, 0)
	if err != nil {
		c.closeWith(protocol.CloseInternal, "cannot encode AUTH_OK")
		c.releaseQueue() // OnConnect and OnDisconnect still run
		return
	}
	// Pushes reach the connection only from here on, and never ahead of AUTH_OK: the
	// resume replay (what the device has not acknowledged, within the in-flight window)
	// goes out in the same write.
	frames := [][]byte{frame}
	if start < u.lastID {
		w := c.inflightLocked(u, start)
		frames = s.pumpLocked(u, c, w, frames)
		s.settleLocked(u, c, w) // nothing was for this connection
		s.metrics.resumeReplayed.Add(len(frames) - 1)
	}
	if c.writeFirst(frames) == nil {
		s.metrics.framesOut(protocol.OpAuthOK, len(frame))
		s.countPushes(frames[1:])
	}
	c.releaseQueue()
	s.metrics.authOK.Inc()
}

// failAuth sends AUTH_FAIL answering the HELLO's seq and closes with code.
func (c *Conn) failAuth(seq uint32, code protocol.CloseCode, reason string) {
	c.srv.metrics.authFailed(code)
	frame, err := (&protocol.AuthFail{Code: code, Reason: protocol.CleanText(reason)}).AppendFrame(nil, seq, 0)
	if err != nil {
		frame = nil
	}
	c.closeAfter(code, reason, frame)
}
