// The errors the SDK reports. Each is a class: test with instanceof.

import { CloseCode, codeName, ErrorCode, isTerminal } from "./codec.js";

/** TetherError is the base class of every error this SDK raises. */
export class TetherError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * How a connection ended: the frame or transport event that carried the code.
 * "AUTH_FAIL", "CLOSE" and "GOAWAY" are tether frames from the server;
 * "WEBSOCKET" is a WebSocket close code without a tether CLOSE before it;
 * "LOCAL" is a CLOSE the client sent itself because the server broke the protocol.
 */
export type CloseSource = "AUTH_FAIL" | "CLOSE" | "GOAWAY" | "WEBSOCKET" | "LOCAL";

const descriptions: Record<number, string> = {
  [CloseCode.NORMAL]: "connection closed",
  [CloseCode.GOING_AWAY]: "server going away",
  [CloseCode.HEARTBEAT_TIMEOUT]: "heartbeat timeout",
  [CloseCode.SLOW_CONSUMER]: "client too slow",
  [CloseCode.SERVER_BUSY]: "server busy",
  [CloseCode.INTERNAL_ERROR]: "server error",
  [CloseCode.RATE_LIMITED]: "rate limited",
  [CloseCode.SERVER_FULL]: "server full",
  [CloseCode.AUTH_TIMEOUT]: "authentication timed out",
  [CloseCode.INVALID_TOKEN]: "invalid credentials",
  [CloseCode.TOKEN_EXPIRED]: "credentials expired",
  [CloseCode.KICKED]: "removed by the server",
  [CloseCode.REPLACED]: "signed in elsewhere",
  [CloseCode.PROTOCOL_ERROR]: "protocol error",
  [CloseCode.FRAME_TOO_LARGE]: "frame too large",
  [CloseCode.UNSUPPORTED_VERSION]: "unsupported protocol version",
  [CloseCode.FORBIDDEN]: "forbidden",
};

/**
 * describeCode returns a short text an application may show for a close code,
 * e.g. "signed in elsewhere" for 3503 REPLACED.
 */
export function describeCode(code: number): string {
  return descriptions[code] ?? (isTerminal(code) ? "connection refused" : "connection lost");
}

/**
 * CloseError is a connection ended with a code, by the server's AUTH_FAIL,
 * CLOSE or GOAWAY, by a WebSocket close code, or by the client's own CLOSE
 * after a frame it could not accept. `terminal` (3500–3999) means the client
 * stopped and will not reconnect until the application calls connect again.
 */
export class CloseError extends TetherError {
  readonly source: CloseSource;
  readonly code: number;
  /** reason is the server's detail, for logs. */
  readonly reason: string;
  /** retryAfterMs is the wait a GOAWAY asked for; 0 otherwise. */
  readonly retryAfterMs: number;
  /**
   * terminal reports that the client stopped: the code is in 3500–3999
   * (PROTOCOL.md §7). The one exception is a LOCAL close for a malformed or
   * oversized server frame: the server is at fault, so the client reconnects
   * with backoff (§6) although it sent PROTOCOL_ERROR or FRAME_TOO_LARGE.
   */
  readonly terminal: boolean;

  constructor(source: CloseSource, code: number, reason: string, retryAfterMs = 0, terminal = isTerminal(code)) {
    super(`tether: ${source === "LOCAL" ? "sent CLOSE" : source} ${codeName(code)} (${code}): ${reason || describeCode(code)}`);
    this.source = source;
    this.code = code;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
    this.terminal = terminal;
  }

  /** codeName is the code's name, e.g. "REPLACED". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** description is text for the user, e.g. "signed in elsewhere" (see describeCode). */
  get description(): string {
    return describeCode(this.code);
  }
}

/**
 * ServerError is an ERROR frame answering a request: the request failed and
 * the connection stays open. A code outside 4000–4999 is reported as 4007
 * INTERNAL (PROTOCOL.md §6.11), with the code received in `receivedCode`.
 */
export class ServerError extends TetherError {
  readonly code: number;
  readonly receivedCode: number;
  readonly serverMessage: string;

  constructor(code: number, message: string) {
    const c = code >= 4000 && code <= 4999 ? code : ErrorCode.INTERNAL;
    super(`tether: server error ${codeName(c)} (${c}): ${message}`);
    this.code = c;
    this.receivedCode = code;
    this.serverMessage = message;
  }

  /** codeName is the code's name, e.g. "NO_ROUTE". */
  get codeName(): string {
    return codeName(this.code);
  }
}

/** TimeoutError: a request got no answer within its timeout (or no connection came up in time). */
export class TimeoutError extends TetherError {}

/**
 * DisconnectedError: the connection a request was sent on ended before its
 * answer came (the outcome is unknown), or a fire-and-forget send found no
 * connection.
 */
export class DisconnectedError extends TetherError {}

/** ClosedError: the client is closed, by close() or by a terminal code (then in `cause`). */
export class ClosedError extends TetherError {
  readonly cause: unknown;
  constructor(message: string, cause?: unknown) {
    super(message);
    this.cause = cause;
  }
}

/** HandshakeTimeoutError: neither AUTH_OK nor AUTH_FAIL came within handshakeTimeoutMs. */
export class HandshakeTimeoutError extends TetherError {}

/** HeartbeatTimeoutError: the server sent nothing for 2 × heartbeat; the client reconnects. */
export class HeartbeatTimeoutError extends TetherError {}

/** FrameTooLargeError: a request would exceed the server's max_frame; nothing was sent. */
export class FrameTooLargeError extends TetherError {}
