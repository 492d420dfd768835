// A scripted WebSocket for white-box client tests: the test plays the server.
// Each FakeSocket records the frames the client sent (decoded) and lets the
// test deliver binary messages, cut anywhere, and close events.
import { codec } from "../dist/index.js";

export function frame(op, seq, body = [], flags = 0) {
  const b = new Uint8Array(12 + body.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, 8 + body.length);
  b.set([1, op, flags, 0], 4);
  v.setUint32(8, seq);
  b.set(body, 12);
  return b;
}

const enc = new TextEncoder();
function str(s) {
  const b = enc.encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}
function u64(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return [...b];
}
function u32(n) {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

export function authOK(seq, { connId = 1, heartbeatMs = 25000, maxFrame = 65536, resume = 0, epoch = 1, lastId = 0, userId = "u1" } = {}) {
  return frame(codec.Op.AUTH_OK, seq, [...u64(connId), ...u32(heartbeatMs), ...u32(maxFrame), ...u64(0), resume, ...u64(epoch), ...u64(lastId), ...str(userId)]);
}
export function push(msgId, channel, payload, flags = 0) {
  return frame(codec.Op.PUSH, 0, [...u64(msgId), ...str(channel), ...enc.encode(payload)], flags);
}
export function codeFrame(op, code, reason, seq = 0) {
  return frame(op, seq, [code >> 8, code & 0xff, ...str(reason)]);
}
export function goAway(code, retryAfterMs, reason) {
  return frame(codec.Op.GOAWAY, 0, [code >> 8, code & 0xff, ...u32(retryAfterMs), ...str(reason)]);
}

export class FakeNetwork {
  constructor() {
    this.sockets = [];
    this.waiters = [];
    const net = this;
    this.WebSocket = class FakeSocket {
      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.protocol = "";
        this.binaryType = "blob";
        this.onopen = this.onmessage = this.onclose = this.onerror = null;
        this.sent = []; // decoded frames: {op, flags, seq, body}
        this.closedByClient = null;
        this.dec = new codec.Decoder(codec.MAX_FRAME_LIMIT);
        net.sockets.push(this);
        for (const w of net.waiters.splice(0)) w();
      }
      send(data) {
        if (this.readyState !== 1) throw new Error("send on a socket that is not open");
        this.dec.push(new Uint8Array(data), (f) => {
          this.sent.push({ op: f.op, flags: f.flags, seq: f.seq, body: f.body.slice() });
        });
        for (const w of net.waiters.splice(0)) w();
      }
      close(code = 1005, reason = "") {
        if (this.readyState >= 2) return;
        this.closedByClient = code;
        this.readyState = 3;
        queueMicrotask(() => this.onclose?.({ code, reason }));
      }
      // ---- server side
      open() {
        this.readyState = 1;
        this.protocol = "tether.v1";
        this.onopen?.({});
      }
      deliver(bytes) {
        const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        this.onmessage?.({ data: ab });
      }
      serverClose(code, reason = "") {
        this.readyState = 3;
        this.onclose?.({ code, reason });
      }
    };
  }

  // until polls cond (a function of the network) after every socket event, with a deadline.
  async until(cond, what, ms = 5000) {
    const end = Date.now() + ms;
    for (;;) {
      const v = cond();
      if (v) return v;
      if (Date.now() > end) throw new Error("timed out waiting for " + what);
      await new Promise((r) => {
        this.waiters.push(r);
        setTimeout(r, 20);
      });
    }
  }

  // accept opens the n-th socket and answers its HELLO with AUTH_OK; it returns the socket.
  async accept(n, auth = {}) {
    const s = await this.until(() => this.sockets[n], `socket ${n}`);
    s.open();
    const hello = await this.until(() => s.sent.find((f) => f.op === codec.Op.HELLO), "HELLO");
    s.deliver(authOK(hello.seq, auth));
    return s;
  }
}
