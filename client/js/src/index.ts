/**
 * @tether-gw/client: the TypeScript SDK for tether's client port over
 * WebSocket, for browsers and Node. It follows docs/PROTOCOL.md: HELLO and
 * AUTH_OK, heartbeats at the announced interval, reconnect with full-jitter
 * backoff honouring GOAWAY and terminal codes, rooms rejoined, requests
 * matched by seq with a timeout, pushes by callback, QoS1 with the resume
 * cursor, duplicate drop and auto-ACK.
 *
 * Everything runs on the event loop: a Client holds one WebSocket and one
 * heartbeat timer at a time (plus a timer per request awaiting its answer,
 * and the backoff timer between connections). Frames are handled in the
 * WebSocket's message callback, so onPush and onStateChange run there,
 * synchronously and in order; they may call any method, including close().
 * No runtime dependencies.
 *
 * Reconnecting (PROTOCOL.md §13): a connection ended by a code in
 * 3500–3999 (AUTH_FAIL, CLOSE, GOAWAY or the WebSocket close code) stops the
 * client; GOAWAY with another code drains and waits its retry_after; any
 * other ending reconnects after a full-jitter backoff, counting a session
 * shorter than stableAfterMs as a failed attempt, then sends the resume
 * cursor and rejoins the rooms.
 *
 * @packageDocumentation
 */
export { Client, connect } from "./client.js";
export type { ClientOptions, Cursor, Payload, Push, RequestOptions, State, Token } from "./client.js";
export { SUBPROTOCOL } from "./conn.js";
export type { WebSocketConstructor, WebSocketLike } from "./conn.js";
export {
  ClosedError,
  CloseError,
  describeCode,
  DisconnectedError,
  FrameTooLargeError,
  HandshakeTimeoutError,
  HeartbeatTimeoutError,
  ServerError,
  TetherError,
  TimeoutError,
} from "./errors.js";
export type { CloseSource } from "./errors.js";
export { Schedule } from "./backoff.js";
export type { Ending } from "./backoff.js";
export * as codec from "./codec.js";
export { CloseCode, ErrorCode, Resume, codeName, isTerminal } from "./codec.js";
export type { AuthOK } from "./codec.js";
