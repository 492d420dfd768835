// White-box client tests over a scripted WebSocket (fakews.mjs): the test
// plays the server frame by frame, for what a real tetherd does not do on
// demand (a duplicate push, a malformed frame, silence, frames cut anywhere).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, CloseError, codec, HeartbeatTimeoutError, Schedule, ServerError, TimeoutError } from "../dist/index.js";
import { FakeNetwork, authOK, codeFrame, frame, goAway, push } from "./fakews.mjs";

const { Op, Flag } = codec;
const txt = (b) => new TextDecoder().decode(b);

function newClient(net, extra = {}) {
  const pushes = [];
  const states = [];
  const errors = [];
  const c = new Client({
    url: "ws://fake/ws",
    token: "alice",
    deviceId: "d1",
    WebSocket: net.WebSocket,
    backoffMinMs: 1,
    backoffMaxMs: 1,
    random: () => 0,
    onPush: (p) => pushes.push(p),
    onStateChange: (s, err) => states.push([s, err]),
    onError: (err) => errors.push(err),
    ...extra,
  });
  return { c, pushes, states, errors };
}

const u64At = (b, off) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(off));

function helloCursor(f) {
  // HELLO: four strs then resume_epoch, resume_last_id.
  let off = 0;
  for (let i = 0; i < 4; i++) off += 2 + ((f.body[off] << 8) | f.body[off + 1]);
  return [u64At(f.body, off), u64At(f.body, off + 8)];
}

test("Schedule: full jitter bounds, short sessions fail, stable sessions reset, GOAWAY replaces the backoff", () => {
  const top = new Schedule(250, 30000, 10000, () => 0.999999);
  assert.equal(top.ceiling(0), 250);
  assert.equal(top.ceiling(3), 2000);
  assert.equal(top.ceiling(20), 30000);
  assert.equal(top.next({ authenticated: false }), 500); // 1 failure: [0, 500]
  assert.equal(top.next({ authenticated: true, livedMs: 9999 }), 1000); // shorter than stableAfter: failed
  assert.equal(top.failures, 2);
  assert.equal(top.next({ authenticated: true, livedMs: 10000 }), 250); // stable: count starts over
  assert.equal(top.failures, 0);
  assert.equal(top.next({ authenticated: true, livedMs: 60000, goAway: true, retryAfterMs: 1234 }), 1234);
  assert.equal(top.next({ authenticated: true, livedMs: 10, goAway: true, retryAfterMs: 100 }), 500); // failed: the longer
  const bottom = new Schedule(250, 30000, 10000, () => 0);
  assert.equal(bottom.next({ authenticated: false }), 0);
  for (let i = 0; i < 200; i++) bottom.next({ authenticated: false });
  assert.equal(bottom.ceiling(bottom.failures), 30000);
});

test("frames cut anywhere and coalesced in one message are all handled, in order", async () => {
  const net = new FakeNetwork();
  const { c, pushes } = newClient(net);
  const p = c.connect();
  const s = await net.until(() => net.sockets[0], "socket");
  s.open();
  const hello = await net.until(() => s.sent.find((f) => f.op === Op.HELLO), "HELLO");
  // AUTH_OK and two pushes in one message, then a third push cut in three.
  s.deliver(new Uint8Array([...authOK(hello.seq), ...push(0, "", "a"), ...push(0, "r", "b")]));
  await p;
  const third = push(0, "", "ccc");
  s.deliver(third.subarray(0, 3));
  s.deliver(third.subarray(3, 15));
  s.deliver(third.subarray(15));
  await net.until(() => pushes.length === 3, "3 pushes");
  assert.deepEqual(pushes.map((x) => [x.channel, txt(x.payload)]), [["", "a"], ["r", "b"], ["", "ccc"]]);
  await c.close();
  assert.equal(c.state, "closed");
  const last = s.sent.at(-1);
  assert.equal(last.op, Op.CLOSE);
  assert.equal((last.body[0] << 8) | last.body[1], 1000);
});

test("QoS1: duplicates and redeliveries (DUP) are dropped but acknowledged; the cursor goes into the next HELLO", async () => {
  const net = new FakeNetwork();
  const { c, pushes } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0, { epoch: 7, lastId: 3 });
  await p;
  assert.deepEqual(c.cursor, { epoch: 7, lastId: 3 });
  s.deliver(push(3, "", "old", Flag.ACK_REQUESTED)); // at the cursor: a duplicate
  s.deliver(push(4, "", "m4", Flag.ACK_REQUESTED));
  s.deliver(push(4, "", "m4 again", Flag.ACK_REQUESTED | Flag.DUP));
  s.deliver(push(5, "", "m5", Flag.ACK_REQUESTED | Flag.DUP)); // DUP but new to this client
  s.deliver(push(0, "room", "q0", 0));
  s.deliver(push(0, "room", "q0 again", 0)); // msg_id 0: never deduplicated
  const acks = () => s.sent.filter((f) => f.op === Op.ACK).map((f) => u64At(f.body, 0));
  await net.until(() => acks().length === 4, "4 ACKs");
  assert.deepEqual(acks(), [3, 4, 4, 5]);
  assert.ok(s.sent.filter((f) => f.op === Op.ACK).every((f) => f.seq === 0));
  assert.deepEqual(pushes.map((x) => [x.msgId, txt(x.payload), x.redelivered, x.ackRequested]), [
    [4, "m4", false, true],
    [5, "m5", true, true],
    [0, "q0", false, false],
    [0, "q0 again", false, false],
  ]);
  assert.deepEqual(c.cursor, { epoch: 7, lastId: 5 });
  // A reconnect code: the next HELLO carries the cursor.
  s.serverClose(3000, "going away");
  const s2 = await net.until(() => net.sockets[1], "reconnect");
  s2.open();
  const hello = await net.until(() => s2.sent.find((f) => f.op === Op.HELLO), "HELLO 2");
  assert.deepEqual(helloCursor(hello), [7, 5]);
  await c.close();
});

test("rooms are rejoined first on every new connection; a refused rejoin drops the room", async () => {
  const net = new FakeNetwork();
  const { c, errors } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  for (const room of ["r1", "r2"]) {
    const sub = c.subscribe(room);
    const f = await net.until(() => s.sent.find((x) => x.op === Op.SUBSCRIBE && txt(x.body.subarray(2)) === room), "SUBSCRIBE " + room);
    s.deliver(frame(Op.OK, f.seq));
    await sub;
  }
  assert.deepEqual(c.rooms, ["r1", "r2"]);
  s.deliver(codeFrame(Op.CLOSE, 3002, "slow"));
  const s2 = await net.accept(1);
  const subs = await net.until(() => {
    const l = s2.sent.filter((x) => x.op === Op.SUBSCRIBE);
    return l.length === 2 && l;
  }, "rejoins");
  assert.deepEqual(s2.sent.map((x) => x.op), [Op.HELLO, Op.SUBSCRIBE, Op.SUBSCRIBE]);
  s2.deliver(frame(Op.OK, subs[0].seq));
  s2.deliver(codeFrame(Op.ERROR, 4004, "denied", subs[1].seq));
  await net.until(() => c.rooms.length === 1, "room dropped");
  assert.deepEqual(c.rooms, [txt(subs[0].body.subarray(2))]);
  assert.ok(errors.some((e) => /cannot rejoin/.test(e.message)));
  await c.close();
});

test("heartbeat: PING after heartbeat_ms of quiet, reconnect after 2 × heartbeat of silence", async () => {
  const net = new FakeNetwork();
  const { c, states } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0, { heartbeatMs: 100 });
  await p;
  const ping = await net.until(() => s.sent.find((f) => f.op === Op.PING), "PING");
  s.deliver(frame(Op.PONG, ping.seq)); // alive: the silence starts over
  const pings = () => s.sent.filter((f) => f.op === Op.PING).length;
  await net.until(() => pings() >= 2, "second PING");
  // Now the server is silent: after 2 × 100 ms the client gives up and reconnects.
  await net.until(() => net.sockets[1], "reconnect after silence");
  assert.equal(s.closedByClient !== null, true);
  assert.ok(states.some(([st, err]) => st === "reconnecting" && err instanceof HeartbeatTimeoutError));
  await c.close();
});

test("a malformed server frame is answered CLOSE PROTOCOL_ERROR and the client reconnects (§6)", async () => {
  const net = new FakeNetwork();
  const { c, states } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  s.deliver(frame(Op.PUSH, 0, [0, 0, 0])); // too short for msg_id
  await net.until(() => net.sockets[1], "reconnect");
  const close = s.sent.find((f) => f.op === Op.CLOSE);
  assert.ok(close);
  assert.equal((close.body[0] << 8) | close.body[1], 3504);
  assert.equal(s.closedByClient, 3504); // the WebSocket close code is the tether code (§1.2)
  const [, err] = states.find(([st]) => st === "reconnecting");
  assert.ok(err instanceof CloseError && err.source === "LOCAL" && err.code === 3504 && !err.terminal);
  await c.close();
});

test("a terminal CLOSE stops the client and surfaces the code: 3503 is 'signed in elsewhere'", async () => {
  const net = new FakeNetwork();
  const { c, states } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  s.deliver(codeFrame(Op.CLOSE, 3503, "replaced"));
  await net.until(() => c.state === "closed", "closed");
  const [, err] = states.at(-1);
  assert.ok(err instanceof CloseError);
  assert.deepEqual([err.code, err.codeName, err.terminal, err.description, err.reason], [3503, "REPLACED", true, "signed in elsewhere", "replaced"]);
  assert.equal(c.closeReason, err);
  assert.equal(c.attempts, 1);
  assert.equal(net.sockets.length, 1);
  await assert.rejects(c.send("echo", "x"), (e) => e.name === "ClosedError" && e.cause === err);
  // The application may reconnect when the user asks.
  const again = c.connect();
  await net.accept(1);
  await again;
  assert.equal(c.state, "connected");
  await c.close();
});

test("a WebSocket close code without a tether CLOSE is classified like a tether code", async () => {
  const net = new FakeNetwork();
  const { c, states } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  s.serverClose(1002, "protocol error"); // WebSocket-level error: reconnect
  const s2 = await net.accept(1);
  await net.until(() => c.state === "connected" && c.attempts === 2, "reconnected");
  s2.serverClose(3502, "kicked"); // terminal
  await net.until(() => c.state === "closed", "closed");
  const [, err] = states.at(-1);
  assert.ok(err instanceof CloseError && err.source === "WEBSOCKET" && err.code === 3502);
});

test("GOAWAY: pending requests finish, new ones wait, the next attempt waits retry_after", async () => {
  const net = new FakeNetwork();
  const { c } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  const first = c.send("echo", "1");
  const f1 = await net.until(() => s.sent.find((f) => f.op === Op.SEND), "SEND 1");
  s.deliver(goAway(3000, 300, "drain"));
  const t0 = performance.now();
  const second = c.send("echo", "2"); // must not go on the draining connection
  s.deliver(frame(Op.SEND_REPLY, f1.seq, [...new TextEncoder().encode("r1")]));
  assert.equal(txt(await first), "r1");
  const s2 = await net.until(() => net.sockets[1], "reconnect");
  const waited = performance.now() - t0;
  assert.ok(waited >= 290, `reconnected after ${waited} ms, before retry_after 300`);
  assert.equal(s.sent.filter((f) => f.op === Op.SEND).length, 1);
  s2.open();
  const hello = await net.until(() => s2.sent.find((f) => f.op === Op.HELLO), "HELLO");
  s2.deliver(authOK(hello.seq));
  const f2 = await net.until(() => s2.sent.find((f) => f.op === Op.SEND), "SEND 2");
  s2.deliver(frame(Op.SEND_REPLY, f2.seq, [...new TextEncoder().encode("r2")]));
  assert.equal(txt(await second), "r2");
  await c.close();
});

test("requests: ERROR codes become ServerError (outside 4000–4999: INTERNAL), timeouts TimeoutError, late replies ignored", async () => {
  const net = new FakeNetwork();
  const { c, errors } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  const a = c.send("nope", "x");
  let f = await net.until(() => s.sent.filter((x) => x.op === Op.SEND)[0], "SEND a");
  s.deliver(codeFrame(Op.ERROR, 4001, "no route", f.seq));
  await assert.rejects(a, (e) => e instanceof ServerError && e.code === 4001 && e.codeName === "NO_ROUTE");
  const b = c.send("odd", "x");
  f = await net.until(() => s.sent.filter((x) => x.op === Op.SEND)[1], "SEND b");
  s.deliver(codeFrame(Op.ERROR, 3502, "odd", f.seq)); // an ERROR never ends the connection
  await assert.rejects(b, (e) => e instanceof ServerError && e.code === 4007 && e.receivedCode === 3502);
  const t = c.send("slow", "x", { timeoutMs: 50 });
  f = await net.until(() => s.sent.filter((x) => x.op === Op.SEND)[2], "SEND t");
  await assert.rejects(t, TimeoutError);
  s.deliver(frame(Op.SEND_REPLY, f.seq, [1])); // late: nobody waits, nothing breaks
  assert.equal(c.state, "connected");
  // A request too large for max_frame is refused before anything is sent.
  await assert.rejects(c.send("big", new Uint8Array(70000)), (e) => e.name === "FrameTooLargeError");
  assert.equal(s.sent.filter((x) => x.op === Op.SEND).length, 3);
  assert.equal(errors.length, 0);
  await c.close();
});

test("AUTH_FAIL on the first connect rejects with the code and leaves nothing running", async () => {
  const net = new FakeNetwork();
  const { c } = newClient(net);
  const p = c.connect();
  const s = await net.until(() => net.sockets[0], "socket");
  s.open();
  const hello = await net.until(() => s.sent.find((f) => f.op === Op.HELLO), "HELLO");
  s.deliver(codeFrame(Op.AUTH_FAIL, 3501, "expired", hello.seq));
  await assert.rejects(p, (e) => e instanceof CloseError && e.source === "AUTH_FAIL" && e.code === 3501 && e.terminal);
  assert.equal(c.state, "closed");
  assert.equal(net.sockets.length, 1);
});

test("close() does not wait for a token function that never returns, nor for a dial that never opens", async () => {
  const net = new FakeNetwork();
  const { c } = newClient(net, { token: () => new Promise(() => {}) });
  const p = c.connect();
  await c.close();
  await assert.rejects(p, (e) => e.name === "ClosedError");
  assert.equal(c.state, "closed");
  assert.equal(net.sockets.length, 0);
  const { c: c2 } = newClient(net);
  const p2 = c2.connect();
  await net.until(() => net.sockets[0], "socket");
  await c2.close(); // the socket is still CONNECTING
  await assert.rejects(p2, (e) => e.name === "ClosedError");
  assert.equal(net.sockets[0].closedByClient !== null, true);
});

test("requests made while reconnecting wait for the next connection; the token function runs per attempt", async () => {
  const net = new FakeNetwork();
  let calls = 0;
  const { c } = newClient(net, { token: () => `tok${++calls}`, backoffMinMs: 50, backoffMaxMs: 50, random: () => 0.999 });
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  s.serverClose(3003, "busy");
  await net.until(() => c.state === "reconnecting", "reconnecting");
  const pending = c.send("echo", "later");
  const s2 = await net.accept(1);
  const f = await net.until(() => s2.sent.find((x) => x.op === Op.SEND), "SEND on the new connection");
  s2.deliver(frame(Op.SEND_REPLY, f.seq, [0x6f, 0x6b]));
  assert.equal(txt(await pending), "ok");
  assert.equal(calls, 2);
  const tokenOf = (sock) => {
    const h = sock.sent.find((x) => x.op === Op.HELLO).body;
    return txt(h.subarray(2, 2 + ((h[0] << 8) | h[1])));
  };
  assert.deepEqual([tokenOf(s), tokenOf(s2)], ["tok1", "tok2"]);
  await c.close();
});

test("unknown opcodes are ignored; a server PING is answered PONG with its seq", async () => {
  const net = new FakeNetwork();
  const { c, pushes } = newClient(net);
  const p = c.connect();
  const s = await net.accept(0);
  await p;
  s.deliver(new Uint8Array([...frame(0x12, 9, [1, 2]), ...frame(0x80, 0), ...frame(0x00, 0), ...frame(Op.AUTH_OK, 0), ...frame(Op.PING, 77), ...push(0, "", "after")]));
  const pong = await net.until(() => s.sent.find((f) => f.op === Op.PONG), "PONG");
  assert.equal(pong.seq, 77);
  await net.until(() => pushes.length === 1, "push after the unknown frames");
  assert.equal(c.state, "connected");
  assert.equal(s.sent.some((f) => f.op === Op.CLOSE), false);
  await c.close();
});

test("a HELLO over the 4096-byte pre-authentication limit is not sent: the first connect rejects", async () => {
  const net = new FakeNetwork();
  const { c } = newClient(net, { token: "t".repeat(4100) });
  const p = c.connect();
  const s = await net.until(() => net.sockets[0], "socket");
  s.open();
  await assert.rejects(p, (e) => e.name === "FrameTooLargeError");
  assert.equal(s.sent.length, 0);
  assert.equal(c.state, "closed");
});
