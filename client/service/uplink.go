package service

import (
	"sync/atomic"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
)

// Event is a connection event: Type is "online" (wire.EventOnline) when a client
// authenticated, "offline" (wire.EventOffline) when it closed, with its close Code and
// that code's name as Reason, and "ack" (wire.EventAck, after Subscribe with Acks)
// when its QoS1 acknowledgement advanced to MsgID (a delivery receipt).
type Event = wire.Event

// Uplink is a client's message routed to this service. Answer it once with Reply or
// Fail, from any goroutine, unless NoReply is set.
type Uplink struct {
	// Uplink holds the gateway's id of the message (ID), the sending connection
	// (Conn, User, Device, Platform), the Route and NoReply.
	wire.Uplink
	// Payload is the client's payload, owned by the receiver.
	Payload []byte

	c        *conn
	answered atomic.Bool
}

// Reply answers the uplink: the client gets SEND_REPLY with payload. It returns
// ErrAlreadyReplied on a second answer, ErrDisconnected when the connection the uplink
// came on is gone (the gateway has re-dispatched it), and ErrTooLarge for a reply
// above the control max frame (a reply above the client's max frame reaches the
// client as ERROR INTERNAL). With NoReply it does nothing and returns nil.
func (u *Uplink) Reply(payload []byte) error { return u.answer(0, "", payload) }

// Fail answers the uplink with an error: the client gets ERROR code (from the
// 4000–4999 range; other codes reach it as 4007 INTERNAL) and msg.
func (u *Uplink) Fail(code protocol.ErrorCode, msg string) error { return u.answer(code, msg, nil) }

func (u *Uplink) answer(code protocol.ErrorCode, msg string, payload []byte) error {
	if !u.answered.CompareAndSwap(false, true) {
		return ErrAlreadyReplied
	}
	if u.NoReply {
		return nil
	}
	select {
	case <-u.c.done:
		return ErrDisconnected
	default:
	}
	frame, err := wire.AppendFrame(nil, wire.OpReply, 0, &wire.Reply{ID: u.ID, Code: code, Message: msg}, payload)
	if err != nil {
		return err
	}
	if len(frame)-protocol.LengthSize > u.c.maxFrame {
		return ErrTooLarge
	}
	return u.c.write(frame)
}
