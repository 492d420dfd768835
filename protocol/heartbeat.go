package protocol

import "time"

// Connection timing defaults and rules from docs/PROTOCOL.md, kept here so
// the server and client apply the same numbers.
const (
	// DefaultHeartbeatMs is the heartbeat interval a server announces in
	// AUTH_OK unless configured otherwise (25 s).
	DefaultHeartbeatMs = 25000

	// DefaultAuthTimeoutMs is how long a server waits for HELLO after
	// accepting a connection before CLOSE AuthTimeout (10 s).
	DefaultAuthTimeoutMs = 10000
)

// ServerIdleTimeout returns how long a server lets a connection stay silent
// before closing it with CodeHeartbeatTimeout: 1.5 × the announced
// heartbeat. Any inbound frame, not only PING, resets the silence.
func ServerIdleTimeout(heartbeatMs uint32) time.Duration {
	return time.Duration(heartbeatMs) * time.Millisecond * 3 / 2
}

// ClientDeadTimeout returns how long a client may receive nothing at all
// before it treats the connection as dead and reconnects: 2 × the announced
// heartbeat. A client probes with PING after one heartbeat of silence, so a
// live server always answers within this time.
func ClientDeadTimeout(heartbeatMs uint32) time.Duration {
	return time.Duration(heartbeatMs) * time.Millisecond * 2
}
