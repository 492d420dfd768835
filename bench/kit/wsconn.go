package kit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gobwas/ws"
)

// WSSubprotocol is the WebSocket subprotocol tether speaks (docs/PROTOCOL.md): the
// bench's clients offer it and its baseline servers select it.
const WSSubprotocol = "tether.v1"

// WSPath is the default path of tetherd's WebSocket endpoint.
const WSPath = "/ws"

// wsMaxPayload bounds one incoming WebSocket frame's length before anything is read
// into it: tether frames are at most protocol.MaxFrameLimit, and a message larger
// than a few of them is not something the bench's peers send.
const wsMaxPayload = 16 << 20

// Errors of the WebSocket stream.
var (
	// ErrWSText is returned by WSConn.Read on a text message: tether travels in
	// binary messages only.
	ErrWSText = errors.New("kit: websocket text message where binary was expected")
	// ErrWSTooLarge is returned by WSConn.Read on a frame longer than wsMaxPayload.
	ErrWSTooLarge = errors.New("kit: websocket frame too large")
	// ErrWSClosed is returned by WSConn.Read once the peer's close frame arrived;
	// it wraps io.EOF, so the stream's readers see the end of the stream.
	ErrWSClosed = fmt.Errorf("kit: websocket closed by peer: %w", io.EOF)
)

// WSConn is a byte stream over a WebSocket connection, for the bench's goroutine-
// per-connection clients and baseline servers: each Write is sent as one binary
// message (masked when the WSConn is the client), and Read returns the payloads of
// incoming binary messages as one stream, so a tether frame may span messages and a
// message may hold several frames, as docs/PROTOCOL.md allows. Pings are answered
// with pongs, pongs are skipped, a close frame is answered and ends the stream.
//
// Read must be called from one goroutine at a time; Write may be called
// concurrently with Read and with itself. Deadlines and Close pass through to the
// underlying connection. It costs the bench little on purpose: a few words of
// state, and a write buffer that lives only as long as a Write.
type WSConn struct {
	net.Conn
	r      io.Reader // the connection, or a buffered reader over it
	client bool

	// Read state (the reading goroutine only): the unread length of the current
	// data frame, its mask and how far into it the mask has advanced.
	left   int64
	mask   [4]byte
	masked bool
	off    int
	hdr    [ws.MaxHeaderSize]byte
	ctrl   []byte

	wmu sync.Mutex
}

var _ net.Conn = (*WSConn)(nil)

// NewWSConn returns the stream over c, an upgraded WebSocket connection; client says
// this end is the client (and masks what it sends). br, when not nil, is a buffered
// reader over c that may hold bytes already read (what ws.Dialer.Dial returns); nil
// means c is read directly.
func NewWSConn(c net.Conn, br *bufio.Reader, client bool) *WSConn {
	w := &WSConn{Conn: c, r: c, client: client}
	if br != nil {
		w.r = br
	}
	return w
}

// Read reads payload bytes of incoming binary messages into p.
func (w *WSConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for w.left == 0 {
		if err := w.nextFrame(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > w.left {
		p = p[:w.left]
	}
	n, err := w.r.Read(p)
	if n > 0 {
		if w.masked {
			ws.Cipher(p[:n], w.mask, w.off)
		}
		w.off += n
		w.left -= int64(n)
	}
	if err == io.EOF && w.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// nextFrame reads frame headers until one starts a data frame with payload (which
// it leaves in w.left), handling control frames on the way.
func (w *WSConn) nextFrame() error {
	h, err := ws.ReadHeaderBuffer(w.r, w.hdr[:2])
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("kit: cannot read websocket frame header: %w", err)
	}
	if h.Length < 0 || h.Length > wsMaxPayload {
		return ErrWSTooLarge
	}
	switch h.OpCode {
	case ws.OpBinary, ws.OpContinuation:
		w.left, w.mask, w.masked, w.off = h.Length, h.Mask, h.Masked, 0
		return nil
	case ws.OpText:
		return ErrWSText
	}
	if !h.OpCode.IsControl() || h.Length > 125 {
		return fmt.Errorf("kit: bad websocket frame (opcode %#x, length %d)", byte(h.OpCode), h.Length)
	}
	if cap(w.ctrl) < int(h.Length) {
		w.ctrl = make([]byte, 125)
	}
	w.ctrl = w.ctrl[:h.Length]
	if _, err := io.ReadFull(w.r, w.ctrl); err != nil {
		return fmt.Errorf("kit: cannot read websocket control frame: %w", err)
	}
	if h.Masked {
		ws.Cipher(w.ctrl, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		return w.writeFrame(ws.OpPong, w.ctrl)
	case ws.OpClose:
		_ = w.writeFrame(ws.OpClose, w.ctrl) // echo the code, as RFC 6455 §5.5.1 asks
		return ErrWSClosed
	}
	return nil // a pong
}

// Write sends b as one binary message.
func (w *WSConn) Write(b []byte) (int, error) {
	if err := w.writeFrame(ws.OpBinary, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// writeFrame sends one final frame of op with payload p in one write, masked by a
// client.
func (w *WSConn) writeFrame(op ws.OpCode, p []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(p))}
	if w.client {
		h.Masked, h.Mask = true, ws.NewMask()
	}
	buf := make([]byte, 0, ws.HeaderSize(h)+len(p))
	bw := appendWriter{&buf}
	if err := ws.WriteHeader(bw, h); err != nil {
		return err
	}
	start := len(buf)
	buf = append(buf, p...)
	if h.Masked {
		ws.Cipher(buf[start:], h.Mask, 0)
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_, err := w.Conn.Write(buf)
	return err
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b *[]byte }

func (a appendWriter) Write(p []byte) (int, error) {
	*a.b = append(*a.b, p...)
	return len(p), nil
}

// WSListener wraps a listener (plain TCP, or TLS for wss) so that Accept returns
// connections that perform the server side of the WebSocket upgrade on their first
// Read or Write, in the goroutine that serves them, as crypto/tls does its
// handshake: the accept loop never waits for a client. The upgrade selects
// WSSubprotocol when offered and accepts any path.
func WSListener(ln net.Listener) net.Listener { return wsListener{ln} }

type wsListener struct{ net.Listener }

func (l wsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &wsServerConn{WSConn: NewWSConn(c, nil, false)}, nil
}

// wsServerConn upgrades on first use.
type wsServerConn struct {
	*WSConn
	once sync.Once
	err  error
}

var wsUpgrader = ws.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 256,
	Protocol:        func(p []byte) bool { return string(p) == WSSubprotocol },
}

func (c *wsServerConn) upgrade() error {
	c.once.Do(func() {
		if _, err := wsUpgrader.Upgrade(c.Conn); err != nil {
			c.err = fmt.Errorf("kit: websocket upgrade: %w", err)
		}
	})
	return c.err
}

func (c *wsServerConn) Read(p []byte) (int, error) {
	if err := c.upgrade(); err != nil {
		return 0, err
	}
	return c.WSConn.Read(p)
}

func (c *wsServerConn) Write(p []byte) (int, error) {
	if err := c.upgrade(); err != nil {
		return 0, err
	}
	return c.WSConn.Write(p)
}
