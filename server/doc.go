// Package server is tether's embeddable gateway: it holds many long-lived client TCP
// connections on a netpoll event loop, authenticates them, keeps their heartbeats on a
// timing wheel, runs business handlers on a bounded worker pool, and pushes to
// connections, users, rooms or everyone.
//
// # Goroutines and costs
//
// No goroutine, time.Timer or ticker exists per connection. netpoll's poller goroutines
// read sockets into per-connection buffers and run the read callback on a shared
// goroutine pool; one timing-wheel goroutine expires auth and heartbeat deadlines; an
// ants pool runs authentication and Handler calls. Writes are non-blocking writev calls
// on the socket made by whichever goroutine pushes; only a connection whose socket
// buffer is full gets a flusher goroutine, for as long as it stays backlogged, and is
// closed as a slow consumer once its queued bytes pass Options.MaxOutboundBytes or the
// backlog does not drain within Options.WriteTimeout.
//
// # What it trades away
//
// netpoll tuning is process-wide: New sets netpoll's link-buffer node size
// (Options.ReadBufferSize) for every netpoll user in the process. A broadcast is
// encoded once and the same bytes are written to every member, so per-recipient
// fields (a user's QoS1 message id) cannot appear in room broadcasts.
//
// # Close codes
//
// Every connection the server closes gets a CLOSE (or AUTH_FAIL) frame with a code
// from the protocol package first when the socket can take it: reconnect codes
// (3000-3499) for conditions that pass, terminal codes (3500-3999) for kicks, bad
// tokens and protocol violations.
package server
