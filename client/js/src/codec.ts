// The binary codec of docs/PROTOCOL.md §2–§6: frame layout, limits, opcodes,
// flags, codes, and the bodies of every client-port frame. It has no state
// except in Decoder, the streaming frame reassembler.

/** VERSION is the protocol version this SDK speaks (PROTOCOL.md §12). */
export const VERSION = 1;
/** HEADER_SIZE is the 4-byte length prefix plus the 8-byte fixed header (§3). */
export const HEADER_SIZE = 12;
/** PRE_AUTH_MAX_FRAME is the server's limit on `length` before AUTH_OK (§4). */
export const PRE_AUTH_MAX_FRAME = 4096;
/** DEFAULT_MAX_FRAME is the default negotiated `max_frame`, and what a client accepts before AUTH_OK (§4). */
export const DEFAULT_MAX_FRAME = 65536;
/** MAX_FRAME_LIMIT is the ceiling no `length` ever exceeds (§4). */
export const MAX_FRAME_LIMIT = 16 * 1024 * 1024;
/** MAX_STRING_LEN is the longest `str` field in bytes (§2). */
export const MAX_STRING_LEN = 65535;

/** Op holds the client-port opcodes (PROTOCOL.md §5). */
export const Op = {
  HELLO: 0x01,
  AUTH_OK: 0x02,
  AUTH_FAIL: 0x03,
  PING: 0x04,
  PONG: 0x05,
  SEND: 0x06,
  SEND_REPLY: 0x07,
  PUSH: 0x08,
  ACK: 0x09,
  SUBSCRIBE: 0x0a,
  UNSUBSCRIBE: 0x0b,
  OK: 0x0c,
  GOAWAY: 0x0d,
  CLOSE: 0x0e,
  ERROR: 0x0f,
  REFRESH: 0x10,
  REFRESH_OK: 0x11,
} as const;

/** opName returns an opcode's name, e.g. "GOAWAY", or "0x10" for one this SDK does not know. */
export function opName(op: number): string {
  for (const [k, v] of Object.entries(Op)) if (v === op) return k;
  return "0x" + op.toString(16).padStart(2, "0");
}

/** Flag holds the frame flag bits (PROTOCOL.md §3). */
export const Flag = {
  ACK_REQUESTED: 0x01,
  NO_REPLY: 0x02,
  DUP: 0x04,
} as const;

/** CloseCode holds the connection-ending codes of PROTOCOL.md §7 (AUTH_FAIL, GOAWAY, CLOSE). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 3000,
  HEARTBEAT_TIMEOUT: 3001,
  SLOW_CONSUMER: 3002,
  SERVER_BUSY: 3003,
  INTERNAL_ERROR: 3004,
  RATE_LIMITED: 3005,
  SERVER_FULL: 3006,
  AUTH_TIMEOUT: 3007,
  SESSION_EXPIRED: 3008,
  INVALID_TOKEN: 3500,
  TOKEN_EXPIRED: 3501,
  KICKED: 3502,
  REPLACED: 3503,
  PROTOCOL_ERROR: 3504,
  FRAME_TOO_LARGE: 3505,
  UNSUPPORTED_VERSION: 3506,
  FORBIDDEN: 3507,
} as const;

/** ErrorCode holds the request-failure codes of ERROR frames (PROTOCOL.md §7). */
export const ErrorCode = {
  BAD_REQUEST: 4000,
  NO_ROUTE: 4001,
  BUSY: 4002,
  TIMEOUT: 4003,
  DENIED: 4004,
  TOO_MANY_ROOMS: 4005,
  UNKNOWN_OPCODE: 4006,
  INTERNAL: 4007,
  NOT_FOUND: 4008,
  UNAVAILABLE: 4009,
  TOKEN_REJECTED: 4010,
} as const;

/** codeName returns the name of a close or error code, e.g. "REPLACED", or "CODE_4242" for an unknown one. */
export function codeName(code: number): string {
  for (const [k, v] of Object.entries(CloseCode)) if (v === code) return k;
  for (const [k, v] of Object.entries(ErrorCode)) if (v === code) return k;
  return "CODE_" + code;
}

/**
 * isTerminal reports whether a code in AUTH_FAIL, GOAWAY or CLOSE forbids
 * reconnecting: 3500–3999 (PROTOCOL.md §7). Every other code, known or not,
 * means reconnect with backoff.
 */
export function isTerminal(code: number): boolean {
  return code >= 3500 && code <= 3999;
}

/** Resume holds the values of AUTH_OK's `resume` field (§6.2). */
export const Resume = {
  NONE: 0,
  RECOVERED: 1,
  NOT_RECOVERED: 2,
} as const;

/**
 * FrameError is a framing or body error found while decoding what the server
 * sent; `code` is the CLOSE code the client answers it with (§3, §6, §12).
 */
export class FrameError extends Error {
  /** code is PROTOCOL_ERROR, FRAME_TOO_LARGE or UNSUPPORTED_VERSION. */
  readonly code: number;
  constructor(code: number, message: string) {
    super("tether: " + message);
    this.name = "FrameError";
    this.code = code;
  }
}

/** Frame is one decoded frame. `body` is a view into the decoder's buffer, valid only during the callback. */
export interface Frame {
  version: number;
  op: number;
  flags: number;
  seq: number;
  body: Uint8Array;
}

const encoder = new TextEncoder();
// fatal: reject invalid UTF-8 (§2); ignoreBOM: keep a leading U+FEFF, text is not altered.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Writer builds one frame: header reserved up front, length patched at the end (§16). */
class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private n = HEADER_SIZE;

  constructor(size: number) {
    this.buf = new Uint8Array(Math.max(size, HEADER_SIZE));
    this.view = new DataView(this.buf.buffer);
  }

  private grow(extra: number): void {
    if (this.n + extra <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.n + extra));
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }

  u16(v: number): this {
    this.grow(2);
    this.view.setUint16(this.n, v);
    this.n += 2;
    return this;
  }

  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError("tether: u64 field out of range: " + v);
    this.grow(8);
    this.view.setUint32(this.n, Math.floor(v / 2 ** 32));
    this.view.setUint32(this.n + 4, v >>> 0);
    this.n += 8;
    return this;
  }

  str(s: string): this {
    const b = encoder.encode(s);
    if (b.length > MAX_STRING_LEN) throw new RangeError(`tether: string field of ${b.length} bytes exceeds 65535`);
    this.u16(b.length);
    return this.bytes(b);
  }

  bytes(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
    return this;
  }

  finish(op: number, seq: number, flags: number): Uint8Array {
    this.view.setUint32(0, this.n - 4);
    this.buf[4] = VERSION;
    this.buf[5] = op;
    this.buf[6] = flags;
    this.buf[7] = 0;
    this.view.setUint32(8, seq >>> 0);
    // An exact-size buffer: every WebSocket implementation sends all of it.
    return this.n === this.buf.length ? this.buf : this.buf.slice(0, this.n);
  }
}

/** Reader parses a body field by field; running past the end is a malformed body (§6). */
class Reader {
  private n = 0;
  private readonly view: DataView;
  constructor(private readonly b: Uint8Array, private readonly what: string) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  remaining(): number {
    return this.b.length - this.n;
  }

  private need(k: number): void {
    if (this.n + k > this.b.length) throw new FrameError(CloseCode.PROTOCOL_ERROR, `malformed ${this.what} body: too short`);
  }

  u8(): number {
    this.need(1);
    return this.b[this.n++];
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.n);
    this.n += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.n);
    this.n += 4;
    return v;
  }

  // u64 returns a number: every u64 of the protocol is below 2^53 (§2); a
  // larger one is a server bug and the body is treated as malformed.
  u64(): number {
    this.need(8);
    const hi = this.view.getUint32(this.n);
    const lo = this.view.getUint32(this.n + 4);
    this.n += 8;
    if (hi >= 0x200000) throw new FrameError(CloseCode.PROTOCOL_ERROR, `malformed ${this.what} body: u64 above 2^53`);
    return hi * 2 ** 32 + lo;
  }

  str(): string {
    const len = this.u16();
    this.need(len);
    const s = this.b.subarray(this.n, this.n + len);
    this.n += len;
    try {
      return utf8.decode(s);
    } catch {
      throw new FrameError(CloseCode.PROTOCOL_ERROR, `malformed ${this.what} body: invalid UTF-8`);
    }
  }

  /** rest copies every remaining byte, so the caller may keep it. */
  rest(): Uint8Array {
    const r = this.b.slice(this.n);
    this.n = this.b.length;
    return r;
  }
}

// ---- Encoders for the frames a client sends (§6). Each returns a fresh buffer.

/** Hello is the body of HELLO (§6.1). */
export interface Hello {
  token: string;
  deviceId: string;
  platform: string;
  clientVersion: string;
  resumeEpoch: number;
  resumeLastId: number;
}

/** encodeHello returns a HELLO frame. */
export function encodeHello(h: Hello, seq: number): Uint8Array {
  return new Writer(64 + h.token.length * 3)
    .str(h.token)
    .str(h.deviceId)
    .str(h.platform)
    .str(h.clientVersion)
    .u64(h.resumeEpoch)
    .u64(h.resumeLastId)
    .finish(Op.HELLO, seq, 0);
}

/** encodeEmpty returns a frame with an empty body (PING, PONG). */
export function encodeEmpty(op: number, seq: number): Uint8Array {
  return new Writer(HEADER_SIZE).finish(op, seq, 0);
}

/** encodeSend returns a SEND frame; flags may hold Flag.NO_REPLY. */
export function encodeSend(route: string, payload: Uint8Array, seq: number, flags = 0): Uint8Array {
  return new Writer(HEADER_SIZE + 2 + route.length * 3 + payload.length).str(route).bytes(payload).finish(Op.SEND, seq, flags);
}

/** encodeAck returns an ACK frame acknowledging every QoS1 push up to msgId (§6.7). */
export function encodeAck(msgId: number, seq: number): Uint8Array {
  return new Writer(HEADER_SIZE + 8).u64(msgId).finish(Op.ACK, seq, 0);
}

/** encodeSubscribe returns a SUBSCRIBE or UNSUBSCRIBE frame (op selects which). */
export function encodeSubscribe(op: number, room: string, seq: number): Uint8Array {
  return new Writer(HEADER_SIZE + 2 + room.length * 3).str(room).finish(op, seq, 0);
}

/** encodeRefresh returns a REFRESH frame carrying a fresh token (§6.12). */
export function encodeRefresh(token: string, seq: number): Uint8Array {
  return new Writer(HEADER_SIZE + 2 + token.length * 3).str(token).finish(Op.REFRESH, seq, 0);
}

/** encodeClose returns a CLOSE frame (§6.10). */
export function encodeClose(code: number, reason: string, seq = 0): Uint8Array {
  return new Writer(HEADER_SIZE + 4 + reason.length * 3).u16(code).str(reason).finish(Op.CLOSE, seq, 0);
}

// ---- Decoders for the bodies a server sends (§6).

/** AuthOK is the body of AUTH_OK (§6.2). */
export interface AuthOK {
  connId: number;
  heartbeatMs: number;
  maxFrame: number;
  serverTimeMs: number;
  resume: number;
  epoch: number;
  lastId: number;
  userId: string;
  /** tokenExpiresMs is when the token expires (Unix ms, server clock), 0 if it does not: the optional trailing field of §6.2. */
  tokenExpiresMs: number;
}

/** decodeAuthOK parses an AUTH_OK body; bytes after the last field are ignored (§6). */
export function decodeAuthOK(body: Uint8Array): AuthOK {
  const r = new Reader(body, "AUTH_OK");
  return {
    connId: r.u64(),
    heartbeatMs: r.u32(),
    maxFrame: r.u32(),
    serverTimeMs: r.u64(),
    resume: r.u8(),
    epoch: r.u64(),
    lastId: r.u64(),
    userId: r.str(),
    tokenExpiresMs: r.remaining() >= 8 ? r.u64() : 0,
  };
}

/** decodeRefreshOK parses a REFRESH_OK body (§6.13): the new token's expiry in Unix ms, 0 for none. */
export function decodeRefreshOK(body: Uint8Array): number {
  return new Reader(body, "REFRESH_OK").u64();
}

/** CodeReason is the body of AUTH_FAIL and CLOSE (`code`, `reason`), and of ERROR (`code`, `message`). */
export interface CodeReason {
  code: number;
  reason: string;
}

/** decodeCodeReason parses an AUTH_FAIL, CLOSE or ERROR body. */
export function decodeCodeReason(body: Uint8Array, what: string): CodeReason {
  const r = new Reader(body, what);
  return { code: r.u16(), reason: r.str() };
}

/** GoAway is the body of GOAWAY (§6.9). */
export interface GoAway {
  code: number;
  retryAfterMs: number;
  reason: string;
}

/** decodeGoAway parses a GOAWAY body. */
export function decodeGoAway(body: Uint8Array): GoAway {
  const r = new Reader(body, "GOAWAY");
  return { code: r.u16(), retryAfterMs: r.u32(), reason: r.str() };
}

/** PushBody is the body of PUSH (§6.6); payload is a copy. */
export interface PushBody {
  msgId: number;
  channel: string;
  payload: Uint8Array;
}

/** decodePush parses a PUSH body. */
export function decodePush(body: Uint8Array): PushBody {
  const r = new Reader(body, "PUSH");
  return { msgId: r.u64(), channel: r.str(), payload: r.rest() };
}

// ---- The streaming decoder (§3 "Receiving a frame, step by step").

/**
 * Decoder reassembles frames from a byte stream cut into arbitrary chunks
 * (a WebSocket message may hold several frames, and a frame may span
 * messages). Complete frames in a chunk are decoded in place; only a frame
 * that straddles chunks is copied into the decoder's buffer. `length` is
 * checked against maxFrame, and the version against VERSION, as soon as
 * their bytes arrive, before waiting for the body (§3 steps 2 and 3).
 * After a FrameError the stream cannot be resynchronised.
 */
export class Decoder {
  /** maxFrame is the largest `length` accepted; the client raises it to max_frame at AUTH_OK. */
  maxFrame: number;
  private buf = new Uint8Array(0);
  private len = 0;

  constructor(maxFrame = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
  }

  /**
   * push feeds one chunk and calls onFrame for each complete frame, in order.
   * onFrame returns false to stop: the rest of the stream is then discarded.
   * It throws a FrameError on a framing error.
   */
  push(chunk: Uint8Array, onFrame: (f: Frame) => boolean | void): void {
    let data = chunk;
    if (this.len > 0) {
      this.append(chunk);
      data = this.buf.subarray(0, this.len);
    }
    let off = 0;
    let stopped = false;
    while (!stopped) {
      const avail = data.length - off;
      if (avail < 4) break;
      const view = new DataView(data.buffer, data.byteOffset + off);
      const length = view.getUint32(0);
      if (length < 8) throw new FrameError(CloseCode.PROTOCOL_ERROR, `frame length ${length} below the 8-byte header`);
      if (length > this.maxFrame) throw new FrameError(CloseCode.FRAME_TOO_LARGE, `frame length ${length} exceeds the limit of ${this.maxFrame}`);
      if (avail < HEADER_SIZE) break;
      const version = data[off + 4];
      if (version !== VERSION) throw new FrameError(CloseCode.UNSUPPORTED_VERSION, `frame version ${version} not supported`);
      if (avail < 4 + length) break;
      const f: Frame = {
        version,
        op: data[off + 5],
        flags: data[off + 6],
        seq: view.getUint32(8),
        body: data.subarray(off + HEADER_SIZE, off + 4 + length),
      };
      off += 4 + length;
      stopped = onFrame(f) === false;
    }
    if (stopped) {
      this.reset();
      return;
    }
    this.keep(data, off);
  }

  /** reset drops any buffered partial frame. */
  reset(): void {
    this.len = 0;
    this.buf = new Uint8Array(0);
  }

  private append(chunk: Uint8Array): void {
    if (this.len + chunk.length > this.buf.length) {
      const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + chunk.length));
      b.set(this.buf.subarray(0, this.len));
      this.buf = b;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
  }

  // keep moves the unconsumed tail data[off:] to the front of the buffer.
  private keep(data: Uint8Array, off: number): void {
    const tail = data.length - off;
    if (tail === 0) {
      this.len = 0;
      if (this.buf.length > DEFAULT_MAX_FRAME) this.buf = new Uint8Array(0); // do not pin a big straddle buffer
      return;
    }
    if (data.buffer === this.buf.buffer) {
      this.buf.copyWithin(0, off, off + tail);
    } else {
      if (this.buf.length < tail) this.buf = new Uint8Array(Math.max(tail, 1024));
      this.buf.set(data.subarray(off));
    }
    this.len = tail;
  }
}
