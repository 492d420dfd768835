package server

import (
	"errors"
	"sync/atomic"

	"github.com/tether-gw/tether/internal/wsproto"
	"github.com/tether-gw/tether/protocol"
)

// The WebSocket layer (see transport.go for the seam), on the reactor like everything
// else: the upgrade request is buffered in link.pre until its head is whole (bounded by
// wsproto's 8 KiB head limit and the handshake deadline, so a slowloris upgrade holds a
// few bytes and then goes), answered, and from then on RFC 6455 frames are decoded in
// place as they arrive, holding only a partial header or control frame between reads.
// The payload of binary messages is the tether stream, passed up piece by piece: a
// message may hold several tether frames and a frame may span messages. Outgoing, each
// write is one binary message: a header in front of the frames, which a broadcast shares
// among all members. Text messages are refused (1003); a WebSocket ping is answered with
// a pong, and pings and pongs count as liveness like any tether frame. A close is
// answered (or started) with a close frame carrying the tether close code itself (1000,
// or 3000-3999: the range RFC 6455 registers for libraries and applications, and a
// reconnect or terminal code exactly as in a CLOSE frame), after the CLOSE frame; a
// WebSocket-level violation closes with the RFC's own code (1002, 1003, 1007, 1009).

// wsLayer is a WebSocket connection's state.
type wsLayer struct {
	// up is set once the upgrade response is written, under rmu and wmu.
	up  bool
	dec wsproto.Decoder
	// wsCode, when not 0, is the WebSocket close code to send instead of the
	// connection's close code (a WebSocket-level violation).
	wsCode atomic.Uint32
}

// readWS handles bytes above TLS on a WebSocket connection. rmu is held.
func (k *link) readWS(c *Conn, p []byte) {
	w := k.ws
	if !w.up {
		if p = k.upgrade(c, p); len(p) == 0 {
			return
		}
	}
	err := w.dec.Feed(p, func(b []byte) error {
		c.onBytes(b)
		if c.closing() {
			return errStopDecoding
		}
		return nil
	}, func(op wsproto.OpCode, payload []byte) error {
		c.alive()
		switch op {
		case wsproto.OpPing:
			_ = c.writeTransport(wsproto.AppendPong(nil, payload))
		case wsproto.OpClose:
			c.closeSilently(protocol.CloseNormal, "client closed")
			return errStopDecoding
		}
		return nil
	})
	var ce *wsproto.CloseError
	if errors.As(err, &ce) {
		c.srv.metrics.protocolErrors.Inc()
		w.wsCode.Store(uint32(ce.Code))
		c.closeSilently(protocol.CloseProtocolError, "websocket: "+ce.Reason)
	}
}

// upgrade answers the upgrade request once its head is whole and returns the bytes that
// followed it, nil while it is incomplete or when it was refused. rmu is held.
func (k *link) upgrade(c *Conn, p []byte) []byte {
	s := c.srv
	buf := p
	if k.pre != nil {
		k.pre = append(k.pre, p...)
		buf = k.pre
	}
	n, resp, _, err := wsproto.Upgrade(buf, &s.opts.wsUpgrade)
	if n == 0 && err == nil {
		if k.pre == nil {
			k.pre = append(make([]byte, 0, 2*len(p)), p...)
		}
		return nil
	}
	if err != nil {
		s.metrics.handshake(k.kind, "refused")
		s.log.Debug("websocket upgrade refused", "conn", c.id, "transport", k.kind.String(), "remote", c.remoteAddr().String(), "err", err)
		_ = c.writeTransport(resp)
		c.closeSilently(protocol.CloseProtocolError, "websocket upgrade refused")
		return nil
	}
	rest := buf[n:]
	if k.pre != nil {
		rest = append([]byte(nil), rest...)
		k.pre = nil
	}
	if c.writeTransport(resp) != nil {
		return nil
	}
	c.wmu.Lock()
	k.ws.up = true
	c.wmu.Unlock()
	s.metrics.handshake(k.kind, "ok")
	k.established(c)
	return rest
}

// closeFrame is the WebSocket close frame that ends the connection: the tether close
// code, or the WebSocket code of the violation that closed it.
func (w *wsLayer) closeFrame(c *Conn) []byte {
	code := c.closeCode()
	if ws := w.wsCode.Load(); ws != 0 {
		return wsproto.AppendClose(nil, uint16(ws), "")
	}
	if code == 0 {
		code = protocol.CloseNormal
	}
	return wsproto.AppendClose(nil, uint16(code), code.String())
}

// wsFrame puts frames in one binary WebSocket message.
func wsFrame(frames [][]byte) [][]byte {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	out := make([][]byte, 0, len(frames)+1)
	out = append(out, wsproto.AppendHeader(make([]byte, 0, wsproto.MaxHeaderLen), wsproto.OpBinary, true, n))
	return append(out, frames...)
}
