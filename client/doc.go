// Package client is the Go SDK for tether's client port: it dials a gateway,
// authenticates with HELLO, keeps the connection alive with heartbeats,
// reconnects with backoff, resumes the user's message sequence, rejoins rooms,
// matches requests to replies and delivers server pushes. Tests, the bench
// tool and Go applications use it; docs/PROTOCOL.md is the contract it
// implements.
//
// # Goroutines and timers
//
// A Client runs one goroutine for its whole life, started by Dial and ended by
// Close or by a terminal close code. It reads the current connection, and
// between connections it sleeps out the backoff and dials again. Heartbeats
// need no goroutine and no ticker of their own: the read goroutine sets the
// socket's read deadline to the next heartbeat event (a PING due, or the
// server declared dead) and handles it when Read times out. Apart from each
// request's own timeout, the only timer is the one the read goroutine sleeps
// on between reconnects. A token refresh (Options.TokenFunc on a connection
// whose token expires, PROTOCOL.md §6.12) is scheduled the same way, by read
// deadline; the refresh itself, which calls TokenFunc and may block, runs on a
// short-lived goroutine of its own, at most one per connection at a time, and
// hands its result back to the read goroutine.
//
// Every method of Client is safe for concurrent use. Writes are made by the
// calling goroutine under a per-connection mutex, each with a deadline
// (Options.WriteTimeout); a write that fails or times out closes the
// connection, since a partial frame leaves the stream unusable.
//
// Where the callbacks run:
//
//	callback        goroutine                               may block?
//	OnStateChange   Dial's caller during Dial, then the     no: nothing is read meanwhile
//	                read goroutine
//	OnPush          read goroutine, one push at a time      no: see below
//
// A callback must not call Close, which waits for the read goroutine running
// the callback (use go c.Close()), nor wait for Send, Subscribe, Unsubscribe
// or Ping, whose answers that same goroutine would have to read: they would
// time out. Start a goroutine for such work.
//
// # Pushes and back-pressure
//
// Pushes reach the application either through Options.OnPush, called
// synchronously on the read goroutine, or, when OnPush is nil, through the
// channel returned by Pushes, which buffers Options.PushBuffer pushes (1024 by
// default). When the channel is full the read goroutine blocks until the
// application receives: nothing more is read from the socket, so the TCP
// window fills and the server's own slow-consumer limits apply. A slow OnPush
// has the same effect. While blocked the client neither answers nor sends
// PINGs, so an application that stalls for longer than 1.5 × the heartbeat
// interval gets disconnected by the server (and reconnects).
//
// QoS1 pushes (FlagAckRequested) are acknowledged by the client itself, right
// after OnPush returns or the push is queued on the channel. Sequenced pushes
// (msg_id != 0) whose id is not above the last one delivered on their channel
// are dropped as duplicates (still acknowledged), following PROTOCOL.md §11.
// The server redelivers what the device did not acknowledge, on a reconnect
// (with or without a resume cursor: set Options.DeviceID so it can tell this
// device's connections apart) and after its ack timeout on a live
// connection; such pushes carry FlagDup, which Push.Redelivered reports when
// this client had not delivered the message already.
//
// # Reconnecting
//
// After Dial has succeeded, a lost connection is re-established by the read
// goroutine unless Options.NoReconnect is set, following PROTOCOL.md §13:
//
//	connection ended by                      client action
//	CLOSE, AUTH_FAIL or GOAWAY, 3500–3999    stop: StateClosed with the *CloseError,
//	(e.g. 3503 REPLACED, 3502 KICKED)        which requests then wrap in ErrClosed
//	GOAWAY with another code                 drain, then wait its retry-after
//	any other code (3002 SLOW_CONSUMER,      reconnect after the backoff, resume
//	3000, 1000 not asked for), or no code    the cursor, rejoin the rooms
//
// The backoff is full jitter: after n consecutive failed attempts the client
// waits a random duration in [0, min(BackoffMax, BackoffMin·2ⁿ)]. An attempt
// fails when it does not reach AUTH_OK, and also when its connection ends,
// whatever the code, within Options.StableAfter (10 s) of AUTH_OK; only a
// connection that lived that long starts the count over. So a server, or a
// second login on the same device id, that keeps closing fresh connections is
// redialled ever more slowly, not at full speed. A GOAWAY's retry-after
// replaces the backoff; if the connection it ended counts as failed, the client
// waits the longer of the two.
//
// AUTH_OK and AUTH_FAIL are taken as the answer to the one HELLO whatever
// their seq (servers before the seq echo sent 0).
//
// # What it trades away
//
// Simplicity over footprint: a goroutine, a read buffer and a timer per
// Client are fine for devices and for load tests of some thousands of clients,
// not for a million clients in one process. Every reply and push payload is
// copied out of the read buffer so the application may keep it. Requests are
// not retried across reconnects: a request whose connection drops fails with
// ErrDisconnected and its outcome is unknown, as PROTOCOL.md §10 says;
// requests made while the client is reconnecting wait for the next connection
// (bounded by their context and Options.RequestTimeout).
package client
