package protocol

// DefaultHeartbeatMs is the heartbeat interval, in milliseconds, that a server
// announces in AUTH_OK unless configured otherwise (25 s), and the one a client
// assumes if AUTH_OK carries 0. The timeouts derived from it (the server closes
// a connection silent for 1.5 × heartbeat; a client gives up on a server silent
// for 2 × heartbeat) are stated in docs/PROTOCOL.md section 9 and applied by
// the server and client packages.
const DefaultHeartbeatMs = 25000
