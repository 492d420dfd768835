// The Client: one logical connection to a tether gateway that survives
// reconnects (PROTOCOL.md §13), with requests, rooms, pushes and the resume
// cursor kept across connections.

import { Schedule } from "./backoff.js";
import { AuthOK, decodeRefreshOK, encodeEmpty, encodeRefresh, encodeSend, encodeSubscribe, Flag, Op } from "./codec.js";
import { Conn, ConnEnding, Host, WebSocketConstructor } from "./conn.js";
import { ClosedError, CloseError, DisconnectedError, TetherError, TimeoutError } from "./errors.js";

/**
 * State is a client's connection state. A client starts "connecting",
 * alternates between "connected" and "reconnecting"/"connecting" while it
 * reconnects, and ends "closed" (close(), a terminal code, or a failed first
 * connect); connect() starts a closed client again.
 */
export type State = "connecting" | "connected" | "reconnecting" | "closed";

/** Push is a message the server pushed to this client. */
export interface Push {
  /** msgId is the message's id in its sequence, or 0 for a push that is not sequenced. */
  msgId: number;
  /** channel is "" for a push addressed to the user or connection, or the room it was published to. */
  channel: string;
  /** payload is the message; a copy the application may keep. */
  payload: Uint8Array;
  /** ackRequested reports a QoS1 push; the client sends the ACK itself after onPush returns. */
  ackRequested: boolean;
  /**
   * redelivered reports that the server had sent this message to the device
   * before (DUP) and this client had not delivered it (it may have been seen
   * before a restart). Copies this client already delivered are dropped.
   */
  redelivered: boolean;
}

/** Token is a credential, or a function returning one, called before every connection attempt. */
export type Token = string | (() => string | Promise<string>);

/** ClientOptions configures a Client. Every field but url has a default, given in its doc. */
export interface ClientOptions {
  /** url is the gateway's WebSocket endpoint, e.g. "wss://gw.example.com/ws". */
  url: string;
  /**
   * token is sent in HELLO. A function is called before every attempt (the
   * first one and each reconnect), so an expiring token can be refreshed; if
   * it throws, that attempt fails (the first connect rejects with the error,
   * a reconnect backs off). Default "".
   *
   * When the server announces the token's expiry (AUTH_OK token_expires_ms)
   * and token is a function, the client also calls it on the live connection
   * once 80% of the token's lifetime has passed and sends the result in a
   * REFRESH, so the connection outlives the token (§6.12); after a failure it
   * retries every quarter of the time left (at least 200 ms apart) until the
   * expiry. If no refresh succeeds the server closes the connection with
   * 3008 SESSION_EXPIRED and the client reconnects, calling token again.
   */
  token?: Token;
  /** noRefresh turns off the refresh on a live connection described at token. Default false. */
  noRefresh?: boolean;
  /**
   * deviceId identifies the device or installation; the server's multi-device
   * policy keys on it, and so does QoS1 redelivery (§11). Keep it stable
   * (e.g. in localStorage). Default "": each connection stands alone.
   */
  deviceId?: string;
  /** platform names the client platform. Default "web". */
  platform?: string;
  /** clientVersion is the application's version, for the server's logs and policy. Default "". */
  clientVersion?: string;
  /**
   * resumeEpoch and resumeLastId seed the resume cursor of the first HELLO,
   * for an application that saved client.cursor before it last exited.
   * Default 0, 0: no resume requested.
   */
  resumeEpoch?: number;
  resumeLastId?: number;
  /**
   * WebSocket is the WebSocket class to use. Default globalThis.WebSocket
   * (browsers; Node 22+, or Node 20 with --experimental-websocket). Node users
   * may pass another one, e.g. the `ws` package's.
   */
  WebSocket?: WebSocketConstructor;
  /** handshakeTimeoutMs bounds the WebSocket connect plus the wait for AUTH_OK or AUTH_FAIL. Default 10000. */
  handshakeTimeoutMs?: number;
  /**
   * requestTimeoutMs bounds send, subscribe, unsubscribe and ping, including
   * the wait for a connection while reconnecting; a per-call timeoutMs wins.
   * Default 10000.
   */
  requestTimeoutMs?: number;
  /**
   * noReconnect disables reconnecting: once the first connection ends, the
   * client is closed. Default false.
   */
  noReconnect?: boolean;
  /**
   * backoffMinMs is the base of the full-jitter backoff: after n consecutive
   * failed attempts the client waits a random time in [0, min(backoffMaxMs,
   * backoffMinMs·2ⁿ)]. Default 250 (the Go SDK's default).
   */
  backoffMinMs?: number;
  /** backoffMaxMs caps the backoff. Default 30000. */
  backoffMaxMs?: number;
  /**
   * stableAfterMs is how long a connection must stay authenticated for the
   * backoff to start over; a connection that ends sooner, whatever the code,
   * counts as a failed attempt (§13). Default 10000.
   */
  stableAfterMs?: number;
  /**
   * onPush receives every push, in order, synchronously; the QoS1 ACK is
   * sent when it returns. An exception it throws goes to onError and the push
   * still counts as delivered.
   */
  onPush?: (p: Push) => void;
  /**
   * onStateChange is told of every state transition, with the error that
   * caused it: for "reconnecting", why the connection ended (a CloseError for
   * CLOSE, GOAWAY or a WebSocket code); for "closed", the terminal CloseError
   * (e.g. 3503 REPLACED: err.description is "signed in elsewhere"), or
   * undefined after close().
   */
  onStateChange?: (state: State, err?: Error) => void;
  /** onError receives what is not any request's failure: exceptions from callbacks, a refused room rejoin, unsolicited ERRORs, protocol oddities. Default: console.warn. */
  onError?: (err: unknown) => void;
  /** random is the backoff's jitter source, uniform in [0, 1). Default Math.random; tests pin it. */
  random?: () => number;
}

/** RequestOptions bound one request. */
export interface RequestOptions {
  /** timeoutMs replaces ClientOptions.requestTimeoutMs for this call. */
  timeoutMs?: number;
}

/** Cursor is a resume position (§11): the epoch of the user's sequence and the highest msg_id received in it. */
export interface Cursor {
  epoch: number;
  lastId: number;
}

type Required2<T> = { [K in keyof T]-?: T[K] };
type Resolved = Required2<Omit<ClientOptions, "WebSocket" | "onPush" | "onStateChange" | "token">> &
  Pick<ClientOptions, "onPush" | "onStateChange" | "token">;

const encoder = new TextEncoder();

/** Payload is what send accepts: bytes, or a string sent as UTF-8. */
export type Payload = Uint8Array | ArrayBuffer | string;

function bytesOf(p: Payload | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  if (typeof p === "string") return encoder.encode(p);
  return p instanceof ArrayBuffer ? new Uint8Array(p) : p;
}

function now(): number {
  return performance.now();
}

/**
 * Client is a connection to a tether gateway that survives reconnects.
 * Create it with `new Client(options)` and start it with connect(), or use
 * the connect(options) function; release it with close().
 */
export class Client {
  private readonly o: Resolved;
  private readonly Ctor: WebSocketConstructor;
  private seq = 0;
  private _state: State = "closed";
  private cur: Conn | null = null;
  private attempt: Conn | null = null;
  private readonly waiters = new Set<() => void>();
  private readonly roomSet = new Set<string>();
  private _auth: AuthOK | null = null;
  private upSince = 0;
  private endErr: Error | undefined;
  private running: Promise<void> | null = null;
  private closing = false;
  private sleepTimer: ReturnType<typeof setTimeout> | null = null;
  private wake: (() => void) | null = null;
  private cursorEpoch: number;
  private cursorLastId: number;
  /** attempts counts connection attempts (for tests and logs). */
  attempts = 0;
  /** refreshes counts tokens the server accepted in REFRESH_OK (for tests and logs). */
  refreshes = 0;
  // The current connection's token refresh (§6.12): its timer, and when the
  // token expires (performance.now() ms, 0 for never).
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private expiresAt = 0;

  constructor(options: ClientOptions) {
    const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) {
      throw new TetherError("tether: no WebSocket implementation: pass ClientOptions.WebSocket (on Node 20, or run with --experimental-websocket)");
    }
    this.Ctor = Ctor;
    const pos = (v: number | undefined, def: number, name: string): number => {
      if (v === undefined || v === 0) return def;
      if (!(v > 0)) throw new RangeError(`tether: ${name} must be positive`);
      return v;
    };
    this.o = {
      url: options.url,
      token: options.token,
      deviceId: options.deviceId ?? "",
      platform: options.platform || "web",
      clientVersion: options.clientVersion ?? "",
      resumeEpoch: options.resumeEpoch ?? 0,
      resumeLastId: options.resumeLastId ?? 0,
      handshakeTimeoutMs: pos(options.handshakeTimeoutMs, 10000, "handshakeTimeoutMs"),
      requestTimeoutMs: pos(options.requestTimeoutMs, 10000, "requestTimeoutMs"),
      noReconnect: options.noReconnect ?? false,
      noRefresh: options.noRefresh ?? false,
      backoffMinMs: pos(options.backoffMinMs, 250, "backoffMinMs"),
      backoffMaxMs: pos(options.backoffMaxMs, 30000, "backoffMaxMs"),
      stableAfterMs: pos(options.stableAfterMs, 10000, "stableAfterMs"),
      onPush: options.onPush,
      onStateChange: options.onStateChange,
      onError: options.onError ?? ((err: unknown) => console.warn(err)),
      random: options.random ?? Math.random,
    };
    if (this.o.backoffMaxMs < this.o.backoffMinMs) throw new RangeError("tether: need backoffMinMs <= backoffMaxMs");
    if (!this.o.url) throw new RangeError("tether: url is required");
    this.cursorEpoch = this.o.resumeEpoch;
    this.cursorLastId = this.o.resumeLastId;
  }

  // ---- public API

  /** state is the client's current state. */
  get state(): State {
    return this._state;
  }

  /** connId is the server's id of the current connection (from AUTH_OK), or 0 while there is none. */
  get connId(): number {
    return this.cur?.auth?.connId ?? 0;
  }

  /** userId is the user id the server authenticated, from the last AUTH_OK. */
  get userId(): string {
    return this._auth?.userId ?? "";
  }

  /**
   * lastAuth is the last AUTH_OK received, or null. After a reconnect check
   * its resume field: Resume.NOT_RECOVERED (2) means pushes were missed and
   * must be fetched some other way (§11).
   */
  get lastAuth(): AuthOK | null {
    return this._auth;
  }

  /** cursor is the resume position the next HELLO carries; an application may save it and pass it back as resumeEpoch/resumeLastId. */
  get cursor(): Cursor {
    return { epoch: this.cursorEpoch, lastId: this.cursorLastId };
  }

  /** rooms are the rooms the client is subscribed to and rejoins on every reconnect, sorted. */
  get rooms(): string[] {
    return [...this.roomSet].sort();
  }

  /** closeReason is why the client closed by itself (a terminal CloseError, or the first connect's error), or undefined. */
  get closeReason(): Error | undefined {
    return this.endErr;
  }

  /**
   * connect makes the first connection: WebSocket, HELLO, AUTH_OK. It
   * resolves once authenticated and rejects with a CloseError for AUTH_FAIL
   * (or CLOSE or GOAWAY before AUTH_OK), a HandshakeTimeoutError, or the
   * token function's error; then nothing is left running. After success the
   * client reconnects by itself until close() or a terminal code. Calling
   * connect on a client that is running returns when it is connected; on a
   * closed client (after a terminal code such as REPLACED, once the user
   * asks) it starts it again, keeping rooms and cursor.
   */
  connect(): Promise<void> {
    if (this.running && !this.closing) {
      if (this._state === "connected") return Promise.resolve();
      return this.waitConn(now() + this.o.handshakeTimeoutMs).then(() => undefined);
    }
    this.closing = false;
    this.endErr = undefined;
    return new Promise((resolve, reject) => {
      this.running = this.run(resolve, reject);
    });
  }

  /**
   * close sends CLOSE 1000 on the current connection and stops everything:
   * the connection, the heartbeat, the reconnect timer. Requests in flight
   * fail with DisconnectedError; later ones with ClosedError. It resolves
   * when the client is closed; it is idempotent.
   */
  async close(): Promise<void> {
    if (!this.running) return;
    this.closing = true;
    const err = new ClosedError("tether: client closed");
    this.cur?.abort(err);
    this.attempt?.abort(err);
    if (this.sleepTimer !== null) clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.running;
  }

  /**
   * send sends payload (bytes, or a string sent as UTF-8) to the backend
   * service named by route and resolves with the reply payload. It waits for
   * a connection if the client is reconnecting. Rejects with a ServerError
   * for an ERROR answer (err.code, e.g. 4001 NO_ROUTE), TimeoutError if no
   * answer came in time, DisconnectedError if the connection ended first
   * (the outcome is unknown), ClosedError after close(), FrameTooLargeError
   * if the frame exceeds the server's max_frame (nothing is sent).
   */
  async send(route: string, payload?: Payload, opts?: RequestOptions): Promise<Uint8Array> {
    const body = bytesOf(payload);
    const r = await this.request((seq) => encodeSend(route, body, seq), opts);
    if (r.op !== Op.SEND_REPLY) throw new TetherError(`tether: SEND ${route} answered with opcode ${r.op}`);
    return r.body;
  }

  /**
   * sendNoReply sends payload to route with NO_REPLY: the server answers
   * nothing, not even an ERROR. It does not wait for a connection: while the
   * client is not connected it throws DisconnectedError.
   */
  sendNoReply(route: string, payload?: Payload): void {
    const cn = this.usable();
    if (!cn) throw new DisconnectedError("tether: not connected");
    const frame = encodeSend(route, bytesOf(payload), this.nextSeq(), Flag.NO_REPLY);
    cn.checkSize(frame);
    cn.write(frame);
  }

  /**
   * subscribe joins room and resolves on the server's OK. From then on the
   * room is rejoined on every reconnect until unsubscribe. If the server
   * refuses (a ServerError, e.g. 4004 DENIED) or no answer comes, the room is
   * not kept, unless it was subscribed before.
   */
  async subscribe(room: string, opts?: RequestOptions): Promise<void> {
    const had = this.roomSet.has(room);
    this.roomSet.add(room);
    try {
      await this.request((seq) => encodeSubscribe(Op.SUBSCRIBE, room, seq), opts);
    } catch (err) {
      if (!had) this.roomSet.delete(room);
      throw err;
    }
  }

  /**
   * unsubscribe leaves room: it is no longer rejoined, and if the client is
   * connected it sends UNSUBSCRIBE and waits for the answer. While not
   * connected, or if the connection ends first, it resolves: membership ends
   * with the connection anyway.
   */
  async unsubscribe(room: string, opts?: RequestOptions): Promise<void> {
    this.roomSet.delete(room);
    const cn = this.usable();
    if (!cn) return;
    try {
      await this.roundTrip(cn, (seq) => encodeSubscribe(Op.UNSUBSCRIBE, room, seq), this.timeoutOf(opts));
    } catch (err) {
      if (!(err instanceof DisconnectedError)) throw err;
    }
  }

  /** ping sends a PING and resolves with the milliseconds until its PONG. Errors as for send. */
  async ping(opts?: RequestOptions): Promise<number> {
    const t0 = now();
    const deadline = t0 + this.timeoutOf(opts);
    const cn = await this.waitConn(deadline);
    const start = now();
    await this.roundTrip(cn, (seq) => encodeEmpty(Op.PING, seq), deadline - now());
    return now() - start;
  }

  // ---- requests

  private timeoutOf(opts?: RequestOptions): number {
    return opts?.timeoutMs && opts.timeoutMs > 0 ? opts.timeoutMs : this.o.requestTimeoutMs;
  }

  private async request(build: (seq: number) => Uint8Array, opts?: RequestOptions): Promise<{ op: number; body: Uint8Array }> {
    const deadline = now() + this.timeoutOf(opts);
    const cn = await this.waitConn(deadline);
    return this.roundTrip(cn, build, deadline - now());
  }

  private roundTrip(cn: Conn, build: (seq: number) => Uint8Array, ms: number) {
    const timeoutMs = Math.max(1, ms);
    return cn.request(build, timeoutMs, () => new TimeoutError(`tether: no answer within ${timeoutMs} ms`));
  }

  // usable returns the connection requests use, or null while there is none;
  // it throws ClosedError once the client is closed.
  private usable(): Conn | null {
    if (this.closing || !this.running) {
      throw new ClosedError(this.endErr ? "tether: client closed: " + this.endErr.message : "tether: client closed", this.endErr);
    }
    return this.cur && !this.cur.draining ? this.cur : null;
  }

  // waitConn resolves with the usable connection, waiting for the client to
  // reconnect if necessary, until deadline.
  private waitConn(deadline: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const check = (): boolean => {
        let cn: Conn | null;
        try {
          cn = this.usable();
        } catch (err) {
          done();
          reject(err);
          return true;
        }
        if (!cn) return false;
        done();
        resolve(cn);
        return true;
      };
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.waiters.delete(check);
      };
      if (check()) return;
      this.waiters.add(check);
      timer = setTimeout(() => {
        done();
        reject(new TimeoutError("tether: no connection before the request's deadline"));
      }, Math.max(1, deadline - now()));
    });
  }

  private notifyWaiters(): void {
    for (const w of [...this.waiters]) w();
  }

  // ---- the reconnect loop (§13)

  private async run(resolveFirst: () => void, rejectFirst: (err: unknown) => void): Promise<void> {
    const sched = new Schedule(this.o.backoffMinMs, this.o.backoffMaxMs, this.o.stableAfterMs, this.o.random);
    let first = true;
    let wait = 0;
    let cause: Error | undefined;
    for (;;) {
      if (!first) {
        this.setState("reconnecting", cause);
        await this.sleep(wait);
        if (this.closing) return this.finish(undefined);
      }
      this.setState("connecting");
      let cn: Conn;
      try {
        cn = await this.connectOnce();
      } catch (err) {
        if (this.closing) {
          if (first) rejectFirst(err);
          return this.finish(undefined);
        }
        if (first) {
          rejectFirst(err);
          return this.finish(err as Error);
        }
        cause = err as Error;
        if (err instanceof CloseError && err.terminal) return this.finish(err);
        const goAway = err instanceof CloseError && err.source === "GOAWAY";
        wait = sched.next({ authenticated: false, goAway, retryAfterMs: goAway ? (err as CloseError).retryAfterMs : 0 });
        continue;
      }
      if (first) {
        first = false;
        resolveFirst();
      }
      const end: ConnEnding = await cn.ended;
      this.stopRefresh();
      const lived = now() - this.upSince;
      if (this.cur === cn) this.cur = null;
      if (this.closing) return this.finish(undefined);
      if (end.terminal || this.o.noReconnect) return this.finish(end.err);
      cause = end.err;
      wait = sched.next({ authenticated: true, livedMs: lived, goAway: end.goAway, retryAfterMs: end.retryAfterMs });
    }
  }

  private async connectOnce(): Promise<Conn> {
    this.attempts++;
    let token = "";
    const t = this.o.token;
    if (typeof t === "function") {
      // close() must not wait for a token function that never returns.
      let stop!: () => void;
      const stopped = new Promise<void>((res) => (stop = res));
      this.wake = stop;
      try {
        token = await Promise.race([Promise.resolve().then(t), stopped.then(() => "")]);
      } catch (err) {
        throw new TetherError("tether: cannot get token: " + (err instanceof Error ? err.message : String(err)));
      } finally {
        if (this.wake === stop) this.wake = null;
      }
      if (this.closing) throw new ClosedError("tether: client closed");
    } else if (t !== undefined) {
      token = t;
    }
    const cn = new Conn(
      this.host,
      this.Ctor,
      this.o.url,
      {
        token,
        deviceId: this.o.deviceId,
        platform: this.o.platform,
        clientVersion: this.o.clientVersion,
        resumeEpoch: this.cursorEpoch,
        resumeLastId: this.cursorLastId,
      },
      this.o.handshakeTimeoutMs,
    );
    this.attempt = cn;
    try {
      return await cn.handshake;
    } finally {
      this.attempt = null;
    }
  }

  // ---- token refresh on a live connection (§6.12)

  // setExpiry records that cn's token expires at expiresMs (Unix ms on the
  // server's clock, 0 for never) and schedules the refresh at 80% of the time
  // left. Server time is compared with server time: AUTH_OK's server_time_ms
  // was the server's clock when the client attached.
  private setExpiry(cn: Conn, expiresMs: number): void {
    this.stopRefresh();
    this.expiresAt = 0;
    if (!expiresMs || !cn.auth) return;
    this.expiresAt = this.upSince + (expiresMs - cn.auth.serverTimeMs);
    if (typeof this.o.token !== "function" || this.o.noRefresh) return;
    this.refreshIn(cn, (Math.max(0, this.expiresAt - now()) * 8) / 10);
  }

  private refreshIn(cn: Conn, ms: number): void {
    this.stopRefresh();
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh(cn);
    }, Math.max(0, ms));
  }

  private stopRefresh(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  // refresh gets a token and sends it in a REFRESH on cn; the answer
  // schedules the next refresh, a failure a retry until the expiry.
  private async refresh(cn: Conn): Promise<void> {
    const t = this.o.token;
    if (typeof t !== "function") return;
    try {
      const token = await t();
      if (this.cur !== cn) return;
      const r = await this.roundTrip(cn, (seq) => encodeRefresh(token, seq), this.o.requestTimeoutMs);
      if (r.op !== Op.REFRESH_OK) throw new TetherError(`tether: REFRESH answered with opcode ${r.op}`);
      if (this.cur !== cn) return;
      this.refreshes++;
      this.setExpiry(cn, decodeRefreshOK(r.body));
    } catch (err) {
      if (this.cur !== cn) return;
      this.o.onError(new TetherError("tether: token refresh failed: " + (err instanceof Error ? err.message : String(err))));
      const left = this.expiresAt - now();
      if (left > 0) this.refreshIn(cn, Math.max(left / 4, 200));
    }
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = null;
        resolve();
      };
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = null;
        this.wake?.();
      }, ms);
    });
  }

  private finish(err: Error | undefined): void {
    this.endErr = err;
    this.cur = null;
    this.running = null;
    this.closing = false;
    this.setState("closed", err);
    this.notifyWaiters();
  }

  private setState(s: State, err?: Error): void {
    this._state = s;
    const f = this.o.onStateChange;
    if (!f) return;
    try {
      f(s, err);
    } catch (e) {
      this.o.onError(e);
    }
  }

  private nextSeq(): number {
    // 1, 2, … wrapping from 2³²−1 to 1, never 0 (§10).
    this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    return this.seq;
  }

  // host is what each Conn calls back into.
  private readonly host: Host = {
    now,
    nextSeq: () => this.nextSeq(),
    attach: (cn) => {
      if (this.closing) return false;
      this._auth = cn.auth;
      this.upSince = now();
      this.cur = cn;
      this.setExpiry(cn, cn.auth?.tokenExpiresMs ?? 0);
      // Rejoin before any request of the application reaches this connection.
      for (const room of this.roomSet) {
        cn.request((seq) => encodeSubscribe(Op.SUBSCRIBE, room, seq), 0, () => new TimeoutError(""), room).catch((err) =>
          this.o.onError(err),
        );
      }
      this.setState("connected");
      this.notifyWaiters();
      return true;
    },
    unready: (cn) => {
      if (this.cur === cn) this.notifyWaiters();
    },
    isFresh: (cn, channel, msgId) => {
      if (msgId === 0) return true;
      // The user's channel is checked against the resume cursor, which
      // survives reconnects; a room's against this connection only, since
      // room sequences carry no epoch.
      if (channel !== "") return msgId > (cn.roomHigh.get(channel) ?? 0);
      return msgId > this.cursorLastId;
    },
    deliverPush: (cn, msgId, channel, payload, flags) => {
      const p: Push = {
        msgId,
        channel,
        payload,
        ackRequested: (flags & Flag.ACK_REQUESTED) !== 0,
        redelivered: (flags & Flag.DUP) !== 0,
      };
      try {
        this.o.onPush?.(p);
      } catch (err) {
        this.o.onError(err);
      }
      if (msgId === 0) return;
      if (channel !== "") cn.roomHigh.set(channel, msgId);
      else this.cursorLastId = msgId;
    },
    setCursor: (epoch, lastId) => {
      this.cursorEpoch = epoch;
      this.cursorLastId = lastId;
    },
    dropRoom: (room, err) => {
      this.roomSet.delete(room);
      this.o.onError(new TetherError(`tether: cannot rejoin room ${room}: ${err.message}`));
    },
    report: (err) => this.o.onError(err),
  };
}

/** connect creates a Client and connects it; see Client.connect. */
export async function connect(options: ClientOptions): Promise<Client> {
  const c = new Client(options);
  await c.connect();
  return c;
}
