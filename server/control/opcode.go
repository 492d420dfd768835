package control

import "github.com/tether-gw/tether/internal/wire"

// Control-port opcodes, re-exported from package internal/wire (which holds the codec,
// so that services need not link the gateway). See wire for each one's direction and
// body.
const (
	OpAuth        = wire.OpAuth
	OpResult      = wire.OpResult
	OpFail        = wire.OpFail
	OpPush        = wire.OpPush
	OpKick        = wire.OpKick
	OpJoin        = wire.OpJoin
	OpLeave       = wire.OpLeave
	OpPresence    = wire.OpPresence
	OpStats       = wire.OpStats
	OpSubscribe   = wire.OpSubscribe
	OpUnsubscribe = wire.OpUnsubscribe
	OpUplink      = wire.OpUplink
	OpReply       = wire.OpReply
	OpEvent       = wire.OpEvent
)
