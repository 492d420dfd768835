// One WebSocket connection: a connection attempt until AUTH_OK, then the
// authenticated session until it ends. A Conn is never reused; each
// reconnect makes a new one. Everything runs on the event loop: frames are
// handled in the WebSocket's message callback, the heartbeat by one timer.

import {
  AuthOK,
  CloseCode,
  DEFAULT_MAX_FRAME,
  Decoder,
  decodeAuthOK,
  decodeCodeReason,
  decodeGoAway,
  decodePush,
  encodeAck,
  encodeClose,
  encodeEmpty,
  encodeHello,
  Flag,
  Frame,
  FrameError,
  Hello,
  MAX_FRAME_LIMIT,
  Op,
  opName,
  PRE_AUTH_MAX_FRAME,
} from "./codec.js";
import {
  CloseError,
  DisconnectedError,
  FrameTooLargeError,
  HandshakeTimeoutError,
  HeartbeatTimeoutError,
  ServerError,
} from "./errors.js";

/** SUBPROTOCOL is the WebSocket subprotocol the SDK offers. */
export const SUBPROTOCOL = "tether.v1";

/** The part of the WebSocket API the SDK uses; the browser's, Node's (undici) and the `ws` package's all fit. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** WebSocketConstructor is `WebSocket`, or a compatible class passed in ClientOptions.WebSocket. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const OPEN = 1;

/** Ending says why a connection ended and what the client does next. */
export interface ConnEnding {
  err: Error;
  terminal: boolean;
  goAway: boolean;
  retryAfterMs: number;
}

/** Host is what a Conn needs from its Client. */
export interface Host {
  now(): number;
  nextSeq(): number;
  /** attach is called synchronously on AUTH_OK; it returns false if the client is closing. */
  attach(cn: Conn): boolean;
  /** unready makes new requests wait for the next connection (GOAWAY). */
  unready(cn: Conn): void;
  /** onPush delivers a fresh push and advances the cursor. */
  deliverPush(cn: Conn, msgId: number, channel: string, payload: Uint8Array, flags: number): void;
  /** isFresh reports whether a push is not a duplicate (PROTOCOL.md §11). */
  isFresh(cn: Conn, channel: string, msgId: number): boolean;
  /** setCursor applies AUTH_OK to the resume cursor. */
  setCursor(epoch: number, lastId: number): void;
  /** dropRoom removes a room whose rejoin was refused. */
  dropRoom(room: string, err: Error): void;
  report(err: unknown): void;
}

/** Call is a request waiting for its answer. */
interface Call {
  resolve(f: { op: number; body: Uint8Array }): void;
  reject(err: Error): void;
  timer?: ReturnType<typeof setTimeout>;
  room?: string; // a rejoin SUBSCRIBE, which nobody awaits
}

export class Conn {
  readonly ws: WebSocketLike;
  private readonly dec = new Decoder(DEFAULT_MAX_FRAME); // §4: a client accepts 64 KiB before AUTH_OK
  auth: AuthOK | null = null;
  authAt = 0;
  private hbMs = 0;
  private maxFrame = PRE_AUTH_MAX_FRAME;
  private readonly pending = new Map<number, Call>();
  private lastSent = 0;
  private lastRecv = 0;
  private lastPing = -1;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private goaway: CloseError | null = null;
  private goawayAt = 0;
  /** draining is set by GOAWAY: no new requests on this connection. */
  draining = false;
  /** roomHigh is the highest msg_id delivered per room on this connection. */
  readonly roomHigh = new Map<string, number>();
  private done = false;
  private wsClosed = false;

  private handshakeResolve!: (cn: Conn) => void;
  private handshakeReject!: (err: Error) => void;
  /** handshake settles at AUTH_OK (after attach) or with why the attempt failed. */
  readonly handshake: Promise<Conn>;
  private endResolve!: (e: ConnEnding) => void;
  /** ended resolves once, when the authenticated connection is over. */
  readonly ended: Promise<ConnEnding>;

  constructor(
    private readonly host: Host,
    Ctor: WebSocketConstructor,
    url: string,
    hello: Hello,
    handshakeTimeoutMs: number,
  ) {
    this.handshake = new Promise((res, rej) => {
      this.handshakeResolve = res;
      this.handshakeReject = rej;
    });
    this.ended = new Promise((res) => (this.endResolve = res));
    this.ws = new Ctor(url, SUBPROTOCOL);
    this.ws.binaryType = "arraybuffer";
    this.schedule(handshakeTimeoutMs, () =>
      this.fail({ err: new HandshakeTimeoutError(`tether: handshake timed out after ${handshakeTimeoutMs} ms (${url})`), terminal: false, goAway: false, retryAfterMs: 0 }),
    );
    this.ws.onopen = () => {
      try {
        const f = encodeHello(hello, host.nextSeq());
        this.checkSize(f); // §6.1: the whole HELLO fits the 4096-byte pre-authentication limit
        this.write(f);
      } catch (err) {
        this.fail({ err: err as Error, terminal: true, goAway: false, retryAfterMs: 0 });
      }
    };
    this.ws.onmessage = (ev) => this.onMessage(ev.data);
    this.ws.onerror = () => {}; // a close event follows with the code
    this.ws.onclose = (ev) => {
      this.wsClosed = true;
      this.onSocketClosed(ev.code, ev.reason);
    };
  }

  // ---- reading

  private onMessage(data: unknown): void {
    if (this.done) return;
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      // Tether frames travel as binary messages only.
      this.protocolFailure(new FrameError(CloseCode.PROTOCOL_ERROR, "text WebSocket message from server"));
      return;
    }
    try {
      this.dec.push(bytes, (f) => this.onFrame(f));
    } catch (err) {
      if (err instanceof FrameError) this.protocolFailure(err);
      else this.fail({ err: err as Error, terminal: false, goAway: false, retryAfterMs: 0 });
      return;
    }
    // Measured after delivery: time spent in the application's callbacks is not the server's silence.
    this.lastRecv = this.host.now();
    if (this.goaway) this.checkDrained();
  }

  // onFrame returns false to stop decoding once the connection has ended.
  private onFrame(f: Frame): boolean {
    if (this.done) return false;
    if (!this.auth) this.onHandshakeFrame(f);
    else this.onSessionFrame(f);
    return !this.done;
  }

  private onHandshakeFrame(f: Frame): void {
    switch (f.op) {
      case Op.PING:
        this.write(encodeEmpty(Op.PONG, f.seq));
        return;
      case Op.AUTH_OK: // whatever its seq: there is one HELLO
        this.onAuthOK(decodeAuthOK(f.body));
        return;
      case Op.AUTH_FAIL:
      case Op.CLOSE: {
        const m = decodeCodeReason(f.body, opName(f.op));
        this.fail(endingOf(new CloseError(f.op === Op.CLOSE ? "CLOSE" : "AUTH_FAIL", m.code, m.reason)));
        return;
      }
      case Op.GOAWAY: {
        const m = decodeGoAway(f.body);
        this.fail(endingOf(new CloseError("GOAWAY", m.code, m.reason, m.retryAfterMs)));
        return;
      }
    }
    // Anything else before AUTH_OK is ignored (§5: unknown opcodes are ignored).
  }

  private onAuthOK(m: AuthOK): void {
    this.auth = m;
    const now = this.host.now();
    this.authAt = now;
    this.lastRecv = now;
    this.hbMs = m.heartbeatMs > 0 ? m.heartbeatMs : 25000;
    this.maxFrame = Math.min(m.maxFrame > 0 ? m.maxFrame : DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT);
    this.dec.maxFrame = this.maxFrame; // frames the server sends are bounded by the same limit
    this.host.setCursor(m.epoch, m.lastId); // §11 resume rule 1
    this.cancelTimer();
    if (!this.host.attach(this)) {
      this.closeWith(CloseCode.NORMAL, "client closed");
      return;
    }
    this.handshakeResolve(this);
    this.tick();
  }

  private onSessionFrame(f: Frame): void {
    switch (f.op) {
      case Op.PING:
        this.write(encodeEmpty(Op.PONG, f.seq));
        return;
      case Op.PONG:
      case Op.OK:
      case Op.SEND_REPLY:
      case Op.REFRESH_OK:
        this.complete(f.seq, f.op, f.body, null);
        return;
      case Op.ERROR: {
        const m = decodeCodeReason(f.body, "ERROR");
        const se = new ServerError(m.code, m.reason);
        if (!this.complete(f.seq, f.op, f.body, se)) this.host.report(se);
        return;
      }
      case Op.PUSH:
        this.onPush(f);
        return;
      case Op.GOAWAY: {
        const m = decodeGoAway(f.body);
        const ce = new CloseError("GOAWAY", m.code, m.reason, m.retryAfterMs);
        if (ce.terminal) {
          this.finish({ err: ce, terminal: true, goAway: false, retryAfterMs: 0 });
          return;
        }
        this.goaway = ce;
        this.goawayAt = this.host.now() + m.retryAfterMs;
        this.draining = true;
        this.host.unready(this);
        this.checkDrained();
        if (!this.done) this.tick();
        return;
      }
      case Op.CLOSE: {
        const m = decodeCodeReason(f.body, "CLOSE");
        this.finish(endingOf(new CloseError("CLOSE", m.code, m.reason)));
        return;
      }
    }
    // §8: a client ignores opcodes it does not know, and a stray AUTH_OK.
  }

  private onPush(f: Frame): void {
    const m = decodePush(f.body);
    const qos1 = (f.flags & Flag.ACK_REQUESTED) !== 0;
    if (this.host.isFresh(this, m.channel, m.msgId)) {
      this.host.deliverPush(this, m.msgId, m.channel, m.payload, f.flags);
    }
    // §11: a dropped duplicate is acknowledged too.
    if (qos1 && m.msgId !== 0 && !this.done) this.write(encodeAck(m.msgId, 0));
  }

  // ---- heartbeat and GOAWAY clocks (§9, §6.9)

  // tick ends the connection when the server has been silent for 2 ×
  // heartbeat or a GOAWAY drain is over, sends a PING when one is due, and
  // sets the timer for the next event. A PING is due when nothing was sent
  // for a heartbeat interval, and also when nothing was received for one and
  // no PING is outstanding (so a quiet server is told apart from a dead one).
  private tick(): void {
    if (this.done) return;
    const now = this.host.now();
    if (this.goaway && now >= this.goawayAt) {
      this.finish(this.goAwayEnding());
      return;
    }
    if (now - this.lastRecv >= 2 * this.hbMs) {
      this.finish({ err: new HeartbeatTimeoutError("tether: server silent for 2 × heartbeat"), terminal: false, goAway: false, retryAfterMs: 0 });
      return;
    }
    if (!this.goaway && now >= this.pingAt()) {
      try {
        this.write(encodeEmpty(Op.PING, this.host.nextSeq()));
      } catch (err) {
        // The socket is closing; its close event may not have come yet.
        this.finish({ err: err as Error, terminal: false, goAway: false, retryAfterMs: 0 });
        return;
      }
      this.lastPing = now;
    }
    if (this.done) return;
    let at = this.lastRecv + 2 * this.hbMs;
    at = Math.min(at, this.goaway ? this.goawayAt : this.pingAt());
    this.schedule(Math.max(1, at - now), () => this.tick());
  }

  private pingAt(): number {
    let at = this.lastSent + this.hbMs;
    if (this.lastPing <= this.lastRecv) at = Math.min(at, this.lastRecv + this.hbMs);
    return at;
  }

  private schedule(ms: number, f: () => void): void {
    this.cancelTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      f();
    }, ms);
  }

  private cancelTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private checkDrained(): void {
    if (this.goaway && this.pending.size === 0) this.finish(this.goAwayEnding());
  }

  private goAwayEnding(): ConnEnding {
    return { err: this.goaway!, terminal: false, goAway: true, retryAfterMs: Math.max(0, this.goawayAt - this.host.now()) };
  }

  // ---- requests

  /**
   * request sends the frame built for a fresh seq and resolves with the
   * answer (SEND_REPLY, OK, REFRESH_OK or PONG), or rejects with a ServerError, a
   * TimeoutError (via the caller's timer), or DisconnectedError.
   */
  request(build: (seq: number) => Uint8Array, timeoutMs: number, onTimeout: () => Error, room?: string): Promise<{ op: number; body: Uint8Array }> {
    return new Promise((resolve, reject) => {
      if (this.done || this.draining) {
        reject(new DisconnectedError("tether: disconnected"));
        return;
      }
      let seq = this.host.nextSeq();
      while (this.pending.has(seq)) seq = this.host.nextSeq(); // 2³² requests later, one is still waiting
      let frame: Uint8Array;
      try {
        frame = build(seq);
        this.checkSize(frame);
      } catch (err) {
        reject(err);
        return;
      }
      const call: Call = { resolve, reject, room };
      if (timeoutMs > 0 && room === undefined) {
        call.timer = setTimeout(() => {
          if (this.pending.get(seq) === call) this.pending.delete(seq);
          reject(onTimeout());
          if (this.goaway) this.checkDrained();
        }, timeoutMs);
      }
      this.pending.set(seq, call);
      try {
        this.write(frame);
      } catch (err) {
        this.pending.delete(seq);
        if (call.timer) clearTimeout(call.timer);
        reject(err);
      }
    });
  }

  private complete(seq: number, op: number, body: Uint8Array, err: Error | null): boolean {
    const call = this.pending.get(seq);
    if (!call) return false;
    this.pending.delete(seq);
    if (call.timer) clearTimeout(call.timer);
    if (call.room !== undefined) {
      if (err) this.host.dropRoom(call.room, err);
      return true;
    }
    if (err) call.reject(err);
    else call.resolve({ op, body: body.slice() });
    return true;
  }

  /** checkSize throws FrameTooLargeError for a frame above max_frame (§4). */
  checkSize(frame: Uint8Array): void {
    if (frame.length - 4 > this.maxFrame) {
      throw new FrameTooLargeError(`tether: ${opName(frame[5])} frame of ${frame.length - 4} bytes exceeds the server's max_frame of ${this.maxFrame}`);
    }
  }

  /** write sends one whole frame as one binary message. */
  write(frame: Uint8Array): void {
    if (this.done || this.ws.readyState !== OPEN) throw new DisconnectedError("tether: disconnected");
    this.ws.send(frame);
    this.lastSent = this.host.now();
  }

  // ---- ending

  private onSocketClosed(code: number, reason: string): void {
    if (this.done) return;
    if (this.goaway) {
      this.finish(this.goAwayEnding());
      return;
    }
    // No tether CLOSE came first: classify the WebSocket code like a tether
    // code (§7), except the codes that only say the socket is gone.
    if (code === 1005 || code === 1006 || code === 0 || code === undefined) {
      this.fail({ err: new DisconnectedError(`tether: connection lost (WebSocket ${code})`), terminal: false, goAway: false, retryAfterMs: 0 });
      return;
    }
    this.fail(endingOf(new CloseError("WEBSOCKET", code, reason)));
  }

  // protocolFailure answers a frame the client cannot accept with CLOSE
  // (§3, §6). A malformed or oversized frame is the server's fault: reconnect
  // with backoff (§6). A version the client does not speak: stop (§12).
  private protocolFailure(err: FrameError): void {
    this.host.report(err);
    const terminal = err.code === CloseCode.UNSUPPORTED_VERSION;
    const ce = new CloseError("LOCAL", err.code, err.message, 0, terminal);
    this.closeWith(err.code, err.message.slice(0, 120));
    this.fail({ err: ce, terminal, goAway: false, retryAfterMs: 0 });
  }

  /** fail ends the attempt or the session, whichever this connection is in. */
  private fail(e: ConnEnding): void {
    if (this.auth) this.finish(e);
    else if (!this.done) {
      this.done = true;
      this.cancelTimer();
      this.closeSocket();
      this.handshakeReject(e.err);
    }
  }

  /** finish ends the authenticated connection once: requests fail, the socket is closed. */
  finish(e: ConnEnding): void {
    if (this.done) return;
    if (!this.auth) {
      this.fail(e);
      return;
    }
    this.done = true;
    this.cancelTimer();
    this.closeSocket();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const call of pending) {
      if (call.timer) clearTimeout(call.timer);
      if (call.room === undefined) call.reject(new DisconnectedError("tether: connection ended before the answer: " + e.err.message));
    }
    this.endResolve(e);
  }

  /** closeWith sends CLOSE (if the socket is open) and closes the socket. */
  closeWith(code: number, reason: string): void {
    if (!this.done && this.ws.readyState === OPEN) {
      try {
        this.ws.send(encodeClose(code, reason));
      } catch {
        // the socket is going anyway
      }
    }
    // §1.2: the WebSocket close code is the tether code (browsers accept 1000 and 3000–4999).
    this.closeSocket(code === 1000 || (code >= 3000 && code <= 4999) ? code : undefined);
  }

  private closeSocket(code?: number): void {
    if (this.wsClosed) return;
    try {
      if (code !== undefined) this.ws.close(code);
      else this.ws.close();
    } catch {
      // already closing
    }
  }

  /** abort ends the connection at once, from close() (CLOSE 1000 is sent first when possible). */
  abort(err: Error): void {
    this.closeWith(CloseCode.NORMAL, "client closed");
    this.fail({ err, terminal: true, goAway: false, retryAfterMs: 0 });
  }
}

/** endingOf classifies a CloseError by its code (§7, §13). */
function endingOf(ce: CloseError): ConnEnding {
  const goAway = ce.source === "GOAWAY" && !ce.terminal;
  return { err: ce, terminal: ce.terminal, goAway, retryAfterMs: goAway ? ce.retryAfterMs : 0 };
}

