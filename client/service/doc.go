// Package service is the Go SDK for tether's control port: a backend service dials the
// gateway's control port with the shared secret, pushes to users, connections, rooms or
// everyone, kicks, manages rooms, asks for presence and stats, and subscribes to routes
// to receive (and answer) the clients' uplink messages and to connection events.
// docs/PROTOCOL.md §15 is the contract it implements; tetherctl and the benchmarks use
// it.
//
// # Requests
//
// Every operation is a request answered by the gateway with a result or a *Error (a
// FAIL frame: the connection stays open). Requests may be made from many goroutines at
// once; each waits for its own answer, bounded by its context and
// Options.RequestTimeout. The gateway handles one service connection's requests in
// order; open several Services for parallelism.
//
// # Goroutines and callbacks
//
// A Service runs one goroutine that reads the connection (and, with Options.Reconnect,
// re-establishes it), plus one goroutine per uplink being handled:
//
//	callback   goroutine                        may block?
//	OnUplink   its own, at most                 yes: it holds one of
//	           Options.MaxConcurrentUplinks     MaxConcurrentUplinks slots; when all
//	                                            are busy, reading stops
//	OnEvent    the reading goroutine, in order  no: nothing is read meanwhile
//
// OnEvent must not wait for a request's answer, which the same goroutine reads.
// Close waits for running OnUplink callbacks to return, so they must not call Close.
//
// # Reconnecting
//
// With Options.Reconnect, a lost connection is re-established with jittered exponential
// backoff, and the routes, prefixes and events subscribed so far are subscribed again.
// A connection lost within Options.StableAfter (10 s) of its AUTH result counts as a
// failed attempt, so the backoff keeps growing against a gateway that accepts and at
// once drops the service; only a connection that lived that long starts it over.
// Requests made meanwhile wait for the new connection (within their timeout). A request
// whose connection drops before its answer fails with ErrDisconnected: its outcome is
// unknown. Uplinks received on a lost connection can no longer be answered (the gateway
// re-dispatches them to another subscriber). The gateway closing with a terminal code
// (3500–3999, e.g. a wrong secret), on the connection or in answer to a reconnect's
// AUTH, ends the Service; Err returns the *CloseError.
package service
