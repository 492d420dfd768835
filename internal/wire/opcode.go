package wire

import (
	"fmt"

	"github.com/tether-gw/tether/protocol"
)

// Control-port opcodes. "svc→gw" frames are sent by a service, "gw→svc" frames by the
// gateway. Requests carry a seq chosen by the service; the gateway answers each with
// RESULT or FAIL echoing it. UPLINK and EVENT, which the gateway sends on its own, carry
// seq 0. PING, PONG and CLOSE of the client port (0x04, 0x05, 0x0E) are valid on the
// control port too.
const (
	OpAuth        protocol.Opcode = 0x40 // svc→gw: Auth; must be the first frame.
	OpResult      protocol.Opcode = 0x41 // gw→svc: an operation's result object; seq echoes.
	OpFail        protocol.Opcode = 0x42 // gw→svc: Fail; seq echoes; the connection stays open.
	OpPush        protocol.Opcode = 0x43 // svc→gw: Push; payload is the message. Result PushResult.
	OpKick        protocol.Opcode = 0x44 // svc→gw: Kick. Result KickResult.
	OpJoin        protocol.Opcode = 0x45 // svc→gw: Room. Result RoomResult.
	OpLeave       protocol.Opcode = 0x46 // svc→gw: Room. Result RoomResult.
	OpPresence    protocol.Opcode = 0x47 // svc→gw: Presence. Result PresenceResult.
	OpStats       protocol.Opcode = 0x48 // svc→gw: empty object. Result StatsResult.
	OpSubscribe   protocol.Opcode = 0x49 // svc→gw: Subscription. Result SubscribeResult.
	OpUnsubscribe protocol.Opcode = 0x4A // svc→gw: Subscription. Result SubscribeResult.
	OpUplink      protocol.Opcode = 0x4B // gw→svc: Uplink; payload is the client's SEND payload.
	OpReply       protocol.Opcode = 0x4C // svc→gw: Reply to an UPLINK; payload is the reply. Not answered.
	OpEvent       protocol.Opcode = 0x4D // gw→svc: Event (a client came online or went offline).
)

var opNames = map[protocol.Opcode]string{
	OpAuth:           "AUTH",
	OpResult:         "RESULT",
	OpFail:           "FAIL",
	OpPush:           "PUSH",
	OpKick:           "KICK",
	OpJoin:           "JOIN",
	OpLeave:          "LEAVE",
	OpPresence:       "PRESENCE",
	OpStats:          "STATS",
	OpSubscribe:      "SUBSCRIBE",
	OpUnsubscribe:    "UNSUBSCRIBE",
	OpUplink:         "UPLINK",
	OpReply:          "REPLY",
	OpEvent:          "EVENT",
	protocol.OpPing:  "PING",
	protocol.OpPong:  "PONG",
	protocol.OpClose: "CLOSE",
}

// OpName returns the control-port name of op ("PUSH", "PING", ...), or
// "OPCODE(0xNN)" for an opcode the control port does not define. It allocates only
// for undefined opcodes.
func OpName(op protocol.Opcode) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("OPCODE(0x%02x)", uint8(op))
}

// IsRequest reports whether op is a request a service sends and the gateway answers
// with RESULT or FAIL (AUTH, PUSH, KICK, JOIN, LEAVE, PRESENCE, STATS, SUBSCRIBE,
// UNSUBSCRIBE).
func IsRequest(op protocol.Opcode) bool {
	switch op {
	case OpAuth, OpPush, OpKick, OpJoin, OpLeave, OpPresence, OpStats, OpSubscribe, OpUnsubscribe:
		return true
	}
	return false
}
