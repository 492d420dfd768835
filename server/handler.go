package server

import (
	"sync/atomic"

	"github.com/tether-gw/tether/protocol"
)

// Handler receives a gateway's connection events and uplink messages.
//
// Call order per connection: OnConnect once, after AUTH_OK was sent; then OnMessage and
// OnSubscribe/OnUnsubscribe one at a time in the order the client sent the frames; then
// OnDisconnect once, after the connection closed, and only if OnConnect was called.
// OnDisconnect may run while a deferred reply is still outstanding.
//
// Goroutines: every method runs on the server's worker pool, never on the I/O path, so
// a slow handler delays only its own connection's later requests. Calls for different
// connections run concurrently. A method should still not block for long: a connection
// with Options.MaxInflight requests waiting is answered ERROR ErrorBusy, and a full pool
// answers ErrorBusy for every connection. A panic in a method is recovered, logged and
// answered with ERROR ErrorInternal (or ignored for OnConnect/OnDisconnect).
//
// Embed NopHandler to implement only the methods you need.
type Handler interface {
	// OnConnect is called when c has authenticated.
	OnConnect(c *Conn)
	// OnMessage handles an uplink SEND. It returns the SEND_REPLY payload, an error
	// (a *ReplyError picks the ERROR code, anything else is ErrorInternal), or
	// ErrDeferReply to answer later with m.Reply or m.Fail from any goroutine. The
	// reply is dropped when the client asked for none (m.NoReply).
	OnMessage(m *Message) ([]byte, error)
	// OnSubscribe authorizes c joining room through a client SUBSCRIBE; a non-nil error
	// refuses it (a *ReplyError picks the code, anything else is ErrorDenied).
	OnSubscribe(c *Conn, room string) error
	// OnUnsubscribe is told that c left room through a client UNSUBSCRIBE.
	OnUnsubscribe(c *Conn, room string)
	// OnDisconnect is called once after c closed, with the close code.
	OnDisconnect(c *Conn, code protocol.CloseCode)
}

// NopHandler is a Handler that accepts everything and does nothing: SENDs get an empty
// SEND_REPLY and every SUBSCRIBE is allowed. Embed it to override only some methods.
type NopHandler struct{}

// OnConnect does nothing.
func (NopHandler) OnConnect(*Conn) {}

// OnMessage replies with an empty payload.
func (NopHandler) OnMessage(*Message) ([]byte, error) { return nil, nil }

// OnSubscribe allows the subscription.
func (NopHandler) OnSubscribe(*Conn, string) error { return nil }

// OnUnsubscribe does nothing.
func (NopHandler) OnUnsubscribe(*Conn, string) {}

// OnDisconnect does nothing.
func (NopHandler) OnDisconnect(*Conn, protocol.CloseCode) {}

var _ Handler = NopHandler{}

// Message is one uplink SEND from a client.
type Message struct {
	// Conn is the connection that sent it.
	Conn *Conn
	// Seq is the client's sequence number; the reply carries it back.
	Seq uint32
	// Route is the route the client addressed, e.g. "chat.send".
	Route string
	// Payload is the message body. It is the handler's to keep: it was copied out of
	// the connection's read buffer.
	Payload []byte
	// NoReply is true when the client set FlagNoReply: no answer is sent.
	NoReply bool

	answered atomic.Bool
}

// Reply answers the message with SEND_REPLY carrying payload. It may be called from any
// goroutine, once; a second answer returns ErrAlreadyReplied. It returns ErrConnClosed
// when the connection has gone, and ErrPayloadTooLarge (after answering ERROR Internal)
// when the reply would exceed Options.MaxFrame.
func (m *Message) Reply(payload []byte) error {
	frame, err := m.answer(payload)
	return m.send(frame, err)
}

// Fail answers the message with ERROR code and msg. Like Reply it answers once.
func (m *Message) Fail(code protocol.ErrorCode, msg string) error {
	frame, err := m.failFrame(code, msg)
	return m.send(frame, err)
}

// send writes an answer frame built by answer or failFrame.
func (m *Message) send(frame []byte, err error) error {
	if frame != nil {
		if werr := m.Conn.write(frame); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// answer marks m answered, frees its in-flight slot (before the reply is written, so a
// client that keeps exactly MaxInflight requests outstanding is never refused), and
// returns the SEND_REPLY frame, or nil when the client asked for none.
func (m *Message) answer(payload []byte) ([]byte, error) {
	if !m.answered.CompareAndSwap(false, true) {
		return nil, ErrAlreadyReplied
	}
	m.Conn.inflightDone()
	if m.NoReply {
		return nil, nil
	}
	frame, err := m.Conn.srv.fitFrame((&protocol.SendReply{Payload: payload}).AppendFrame(make([]byte, 0, protocol.Overhead+len(payload)), m.Seq, 0))
	if err != nil {
		// The client still gets an answer to its seq.
		return m.Conn.errorFrame(m.Seq, protocol.ErrorInternal, "reply too large"), err
	}
	m.Conn.srv.metrics.framesOut(protocol.OpSendReply, len(frame))
	return frame, nil
}

// failFrame is answer for an ERROR.
func (m *Message) failFrame(code protocol.ErrorCode, msg string) ([]byte, error) {
	if !m.answered.CompareAndSwap(false, true) {
		return nil, ErrAlreadyReplied
	}
	m.Conn.inflightDone()
	if m.NoReply {
		return nil, nil
	}
	return m.Conn.errorFrame(m.Seq, code, msg), nil
}

// AckHandler is implemented by a Handler that wants to know when a connection's QoS1
// acknowledgement advances (the control port: "ack" events, which services use as
// delivery receipts). OnAck runs on the read path once the ACK was applied, with
// msgID the connection's new cumulative acknowledgement; it must not block.
type AckHandler interface {
	OnAck(c *Conn, msgID uint64)
}
