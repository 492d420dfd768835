// Package control is tether's control port: the TCP listener trusted backend services
// connect to in order to push to users, connections, rooms or everyone, kick, manage
// room membership, query presence and stats, and receive the clients' uplink messages
// (SEND), load-balanced across service instances. docs/PROTOCOL.md §15 specifies the
// wire format; package internal/wire holds its codec (shared with the SDK) and package
// client/service is the Go SDK for services.
//
// # Wiring
//
// A Port is both the listener and the gateway's server.Handler:
//
//	ctl, err := control.New(control.Options{Secret: secret})
//	srv, err := server.New(server.Options{Authenticator: auth, Handler: ctl})
//	err = srv.Start()
//	err = ctl.Start(srv)        // listens on 127.0.0.1:7001 by default
//	defer ctl.Close()
//
// Port.WriteMetrics writes the tether_control_* metrics for the admin /metrics.
//
// Ops (NewOps) is the operations' logic on decoded requests, results and *Failure
// errors: the sessions run it, and so does any other front end (package
// server/httpapi), which therefore answers exactly as the port does.
//
// # Uplinks and events
//
// A service subscribes to routes (exact names) and prefixes ("chat."). A client's SEND
// goes to the subscribers of the exact route if there are any, else to those of the
// longest matching prefix; among them, round-robin, skipping services whose outbound
// queue is full. The service's REPLY becomes the client's SEND_REPLY (or ERROR) with the
// client's seq. The client gets ERROR NO_ROUTE (4001) when nobody subscribed, BUSY
// (4002) when every subscriber's queue is full, and TIMEOUT (4003) when no REPLY came
// within Options.UplinkTimeout. When a service connection ends, the uplinks it had not
// answered are re-dispatched once to another subscriber. Services subscribed to events
// each get every connection's online and offline EVENT.
//
// # Goroutines and back-pressure
//
// Control connections are few, so each has two goroutines: a reader, which handles the
// service's requests one at a time in order (a slow operation delays only that service),
// and a writer, which drains the connection's bounded outbound queue
// (Options.MaxQueueBytes) with a deadline per write. The gateway's worker pool only
// queues UPLINK and EVENT frames and never blocks on a service: a full queue sends
// uplinks to another subscriber and drops events (counted). A service that does not read
// is closed with SLOW_CONSUMER once a write blocks, or its queue stays full, for
// Options.WriteTimeout; while its queue is over budget, its own requests wait. One slow
// service therefore never stalls clients or other services. Pending uplinks use one
// runtime timer each (Options.UplinkTimeout).
//
// # Lock order
//
// router.mu before session.omu (subscribe checks that the session is not closing under
// the router's lock, and session.close marks it closing before it takes the router's).
// Port.mu, session.pmu, the AUTH throttle's and the log limiters' mutexes are leaves: no
// lock is taken under them, and session.close releases omu before it takes router.mu
// or Port.mu. Comments elsewhere point here.
//
// # What it trades away
//
// JSON headers (a few microseconds per frame) buy a protocol any language can speak
// without a code generator; payloads stay raw bytes. Goroutines per connection cost
// ~16 KiB of stack each, irrelevant at the scale of backend services but a reason not to
// expose this port to clients. Requests run on the reading goroutine, so a service gets
// concurrency by opening several connections.
//
// # Security
//
// The port is loopback-only by default, and every connection must present the shared
// secret (compared in constant time) in its first frame within Options.AuthTimeout;
// before that, a frame may be at most protocol.PreAuthMaxFrame bytes. Options.Insecure
// (any secret) is refused on non-loopback addresses, and so is a secret shorter than
// MinSecretLen. What an unauthenticated peer can do is bounded:
//
//   - Holding connections open: connections that have not authenticated are capped
//     (Options.MaxUnauthenticated) apart from services (Options.MaxServices), and a new
//     one beyond the cap evicts the oldest of the source holding the most, so idle or
//     flooding peers never keep a service out.
//   - Guessing the secret: failed AUTHs are counted per source (IPv4 address or IPv6
//     /64, a bounded table); from Options.MaxAuthFailures on, the source is refused
//     RATE_LIMITED before AUTH for a lock-out that doubles per failure
//     (Options.AuthLockout to Options.AuthLockoutMax). On loopback this took an
//     attacker from ~19,000 checked guesses/s to 6 in the first 2 s (about 12 an hour
//     once at the maximum); see TestMeasureGuessRate.
//   - Flooding the log: failed AUTHs and accept errors are logged a few per interval,
//     then as a count per interval; the metrics count each one.
//   - Exhausting descriptors: an accept error (EMFILE, ENFILE) is counted
//     (tether_control_accept_errors_total) and retried after a back-off of 5 ms
//     doubling to 1 s, so the port serves again once descriptors are free.
package control
