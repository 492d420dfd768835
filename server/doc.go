// Package server is tether's embeddable gateway: it holds many long-lived client
// connections (raw TCP, TLS, WebSocket and WebSocket over TLS, optionally behind a PROXY
// protocol balancer: see transport.go for the seam between the session and its
// transport) on netpoll event loops, authenticates them, keeps their heartbeats on a
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
// # Goroutine table
//
//	goroutine                      runs                                          may block on
//	netpoll poller (per epoll fd)  accept; peer hang-up: onClosed                 nothing of ours but the locks below
//	netpoll runner pool            onConnect, onRequest (read path, inbound.go),  locks below (onAck: user.mu);
//	                               including onAck (inflight.go);                 never the network
//	                               onClosed when the server closed meanwhile
//	timing-wheel ticker            Wheel.Advance once per Options.Tick            the wheel mutex
//	timing-wheel dispatcher        onExpire: auth, heartbeat, GOAWAY-grace and    locks below (closeWith;
//	                               final-frame deadlines (Conn.timer), and the    onAckTimeout: user.mu)
//	                               QoS1 ack timer (window.timer, a second timer
//	                               of the connection): onAckTimeout; the token
//	                               deadline (tokenLife.timer, a third):
//	                               onTokenExpired (refresh.go)
//	ants worker pool               authenticate (handshake.go), refresh          the Authenticator and Handler;
//	                               (refresh.go); a connection's
//	                               drain task (dispatch.go): Handler calls        in a cluster the QoSStore's
//	                                                                              Resume (before user.mu)
//	flusher, one per backlogged    flushBacklog (outbound.go)                     netpoll's writer, up to WriteTimeout
//	connection, while backlogged
//	sweeper                        sweep (stream.go), every ResumeWindow/4;       user and shard locks; the
//	                               in a cluster touchStreams (qosstore.go)        QoSStore (no lock held)
//	QoSStore live feed (cluster)   ApplyQoS, fill (qosstore.go): the broker's     user.mu; the QoSStore's Since
//	                               delivery goroutine                             (no lock held)
//	ack writer (cluster), and its  runAckWriter (qosstore.go)                     the QoSStore's Ack (no lock held)
//	ackWriters workers
//	callers of Push* (cluster)     pushStoredMany: QoSStore.AppendMany            the QoSStore (no lock held)
//	one-off closer                 closeSilently or Connection.Close after a      locks below (onClosed)
//	                               write found the peer gone or passed a budget
//	                               (outbound.go): its caller may hold locks
//	                               onClosed takes (wmu; qmu in failQueued)
//	TLS handshake, one per TLS     tlsrec.Handshake and the hand-over             the Feeder (bytes from the reactor),
//	connection whose ClientHello   (tlslink.go), then the connections queued      a CPU slot; link.rmu and wmu
//	is whole, at most              behind it; it returns when the handshake
//	Options.MaxTLSHandshakes       ends (Options.HandshakeTimeout bounds it)
//	one-off drain                  drain, when the pool refuses a connection's    the Handler
//	                               connect/disconnect notifications (dispatch.go)
//	callers                        Push*, Kick*, Join, GoAway, Shutdown           locks below; never the network
//	                                                                              but a QoS1 push in a cluster
//
// onClosed (netpoll's close callback) runs wherever netpoll runs it: on a poller for a
// hang-up, in the goroutine that called Connection.Close when no read callback is
// running, or at the end of the read callback otherwise. So closeWith, which calls
// Close, must not be called with a lock onClosed takes (every lock below except
// user.mu); the read path may call it, as netpoll defers the callback until it returns.
//
// # Lock order
//
// A lock may be taken while holding only locks above it in this table (nats-server's
// locksordering.txt is the model). Comments elsewhere point here.
//
//	0 link.rmu          a connection's transport read side (transport.go): held by the
//	                    read path across the layers and Conn.onBytes, and by the TLS
//	                    handshake goroutine across the hand-over to the record layer;
//	                    everything the read path takes is taken under it. onClosed
//	                    never takes it, so closeWith may be called under it
//	1 user.mu           a user's stream (stream.go, inflight.go): QoS1 ids, resume buffer,
//	                    device records, every connection's in-flight window (Conn.qos).
//	                    Held across join + AUTH_OK + replay (handshake.go), a QoS1 fan-out
//	                    (pushQoS1), an ACK (onAck, read path), an ack timeout (onAckTimeout,
//	                    wheel dispatcher) and a sweep of the entry; under it are taken the
//	                    user shard lock (userConns, addUser, sweep), Conn.wmu (the writes
//	                    of all of these) and the wheel's mutex (the ack timer). closeWith
//	                    may be called under it: onClosed never takes it.
//	2 userShard.mu      hub user index (hub.go): user.conns, user.left; the phase change
//	                    to phaseAuthed happens under it (hub.addUser)
//	3 roomShard.mu      room index (room.go)
//	4 Conn.rmu          a connection's room list
//	5 room.mu           a room's member set
//	6 Conn.qmu          a connection's pool-task queue (dispatch.go); failQueued writes
//	                    ERROR BUSY under it
//	7 Conn.wmu          a connection's writes (outbound.go): held across the write(2) (the
//	                    flusher releases it across netpoll's writer); the final-frame
//	                    grace is armed under it (wheel's mutex)
//	8 Server.mu         listeners, admin server, metric writers (server.go, admin.go):
//	                    Start holds it while it sets up the listeners (closing the client
//	                    listener on failure) and starts the wheel
//	9 fdreserve's mutex the process's spare descriptor (internal/fdreserve): held across
//	                    every accept of the client and control listeners and across a
//	                    refusal; nothing is taken under it (the refusal is logged after)
//	10 leaves           no lock of ours is taken under them: a TLS handshake's Feeder
//	                    mutex (internal/tlsrec: Feed under rmu; released before its
//	                    Write calls Conn.writeTransport), connShard.mu (hub.go), the
//	                    wheel's mutexes, limits.mu and each sourceSet.mu (limits.go,
//	                    flapping.go: never nested; admit releases the set lock before it
//	                    takes limits.mu), the loglimit.Limiter mutexes (they call the
//	                    logger), pendingLive.mu and ackWriter.mu (qosstore.go)
//
// A QoSStore call (network) is never made with any of these locks held.
//
// The state word (Conn.st, state.go) is atomic and needs no lock; the flags documented
// as set under wmu are read under wmu.
//
// # Netpoll callback order
//
// The raw-descriptor writes (sock_unix.go, called under Conn.wmu) are safe only because
// of the order in which netpoll (v0.7, eventloop.go, "The Connection Callback Sequence
// Diagram") calls back for a connection: OnPrepare, then OnConnect, then OnRequest calls
// that never overlap (OnDisconnect may run beside them on a peer hang-up), then the close
// callbacks, newest first. onConnect registers onClosed, so it runs before netpoll's own
// close callback (added when the connection was set up) closes the descriptor; onClosed
// marks writes done and takes Conn.wmu, so no write is in flight or starts after it, and
// a write never reaches a descriptor number the kernel has handed to a new socket.
// TestNetpollCallbackOrder fails if a netpoll upgrade changes that order.
//
// # Platforms
//
// The package builds where netpoll does: Linux, macOS and FreeBSD (sock_unix.go holds
// the raw socket writes for every unix).
//
// # What it trades away
//
// netpoll tuning is process-wide: New sets netpoll's link-buffer node size
// (Options.ReadBufferSize) for every netpoll user in the process. A broadcast is
// encoded once and the same bytes are written to every member, so per-recipient
// fields (a user's QoS1 message id) cannot appear in room broadcasts.
//
// TLS runs on the reactor by keeping crypto/tls to the handshake and doing the record
// layer itself (internal/tlsrec): AEAD cipher suites only, no TLS 1.2 renegotiation, no
// 0-RTT, no post-handshake client authentication; TLS 1.2 session resumption reads the
// master secret from crypto/tls's session encoding, which its tests pin. A WebSocket
// connection's outgoing messages are never compressed, even with permessage-deflate.
//
// # Close codes
//
// Every connection the server closes gets a CLOSE (or AUTH_FAIL) frame with a code
// from the protocol package first when the socket can take it: reconnect codes
// (3000-3499) for conditions that pass, terminal codes (3500-3999) for kicks, bad
// tokens, protocol violations and replaced logins. The frame goes after whatever was
// already written, never inside a frame: a backlogged connection's queued frames are
// dropped and the CLOSE waits behind the bytes already handed to the socket, for up to
// a second (finalGrace) before the socket is closed without it. A client that closes
// (CLOSE from the client, EOF) gets no answer. Over WebSocket the CLOSE is followed by a
// close frame with the same code, over TLS by close_notify; a connection whose transport
// is not established yet (TLS handshake, upgrade, PROXY header) is closed without one.
package server
