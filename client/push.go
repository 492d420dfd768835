package client

import (
	"bytes"
	"errors"

	"github.com/tether-gw/tether/protocol"
)

// Push is a message the server pushed to this client.
type Push struct {
	// MsgID is the message's id in its sequence, or 0 for a push that is not
	// sequenced (never deduplicated, never resumed).
	MsgID uint64
	// Channel is "" for a push addressed to the user or connection, or the
	// room it was published to.
	Channel string
	// Payload is the message. It is a copy owned by the receiver.
	Payload []byte
	// AckRequested reports that the server asked for an acknowledgement
	// (QoS1: at-least-once). The client sends the ACK itself, right after
	// OnPush returns or the push is queued on the Pushes channel; the
	// application has nothing to do.
	AckRequested bool
	// Redelivered reports that the server had sent this message to the
	// device before (FlagDup): the application may have seen it already,
	// for example before a restart that lost the resume cursor. Copies this
	// client already delivered are dropped, never handed over again.
	Redelivered bool
}

// errClosing aborts a push delivery blocked on a full channel when the client
// is closed.
var errClosing = errors.New("client: closing")

// onPush delivers a PUSH unless it is a duplicate, then acknowledges it if
// the server asked (PROTOCOL.md §11: duplicates are acknowledged too).
func (cn *conn) onPush(f protocol.Frame) error {
	var m protocol.Push
	if err := m.Decode(f.Body); err != nil {
		return err
	}
	qos1 := f.Flags.Has(protocol.FlagAckRequested)
	if cn.fresh(m.Channel, m.MsgID) {
		p := Push{MsgID: m.MsgID, Channel: m.Channel, Payload: bytes.Clone(m.Payload),
			AckRequested: qos1, Redelivered: f.Flags.Has(protocol.FlagDup)}
		if !cn.c.deliver(p) {
			return errClosing
		}
		cn.advance(m.Channel, m.MsgID)
	} else {
		cn.c.log.Debug("dropping duplicate push", "msg_id", m.MsgID, "channel", m.Channel, "flags", f.Flags.String())
	}
	if qos1 && m.MsgID != 0 {
		return cn.writeMsg(&protocol.Ack{MsgID: m.MsgID}, 0, 0)
	}
	return nil
}

// fresh reports whether a push with id on channel is not a duplicate: ids
// must grow per channel. The user's channel ("") is checked against the
// resume cursor, which survives reconnects; a room's against the highest id
// seen on this connection only, because room sequences carry no epoch and a
// reconnect may reach a node (or a restarted one) whose numbering differs.
func (cn *conn) fresh(channel string, id uint64) bool {
	if id == 0 {
		return true
	}
	if channel != "" {
		return id > cn.roomHigh[channel]
	}
	cn.c.cmu.Lock()
	defer cn.c.cmu.Unlock()
	return id > cn.c.cursorLastID
}

// advance records id as delivered on channel.
func (cn *conn) advance(channel string, id uint64) {
	if id == 0 {
		return
	}
	if channel != "" {
		cn.roomHigh[channel] = id
		return
	}
	cn.c.cmu.Lock()
	cn.c.cursorLastID = id
	cn.c.cmu.Unlock()
}

// deliver hands p to the application; it reports false if the client was
// closed while the Pushes channel was full.
func (c *Client) deliver(p Push) bool {
	if c.opts.OnPush != nil {
		c.opts.OnPush(p)
		return true
	}
	select {
	case c.pushes <- p:
		return true
	case <-c.ctx.Done():
		return false
	}
}
