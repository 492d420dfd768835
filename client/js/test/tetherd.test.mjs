// The SDK against a real tetherd built from this repository, over its
// WebSocket transport (-ws-addr, path /ws, subprotocol tether.v1), with
// tetherctl pushing and kicking over the control port.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, CloseError, ServerError, TimeoutError, Resume } from "../dist/index.js";
import { Tetherd, startEchoService, until } from "./harness.mjs";

const txt = (b) => new TextDecoder().decode(b);
let gw, echo;
const clients = [];

// heartbeat 1s: a client that did not PING would be closed after 1.5 s of silence.
before(async () => {
  gw = await Tetherd.start(["-heartbeat", "1s"]);
  echo = await startEchoService(gw);
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  echo?.close();
  await gw?.stop();
});

function open(user, extra = {}) {
  const rec = { pushes: [], states: [], errors: [] };
  const c = new Client({
    url: gw.url,
    token: user,
    deviceId: user + "-dev",
    onPush: (p) => rec.pushes.push(p),
    onStateChange: (s, err) => rec.states.push({ s, err, at: performance.now(), connId: c.connId }),
    onError: (err) => rec.errors.push(err),
    ...extra,
  });
  clients.push(c);
  return Object.assign(rec, { c });
}

test("connect: HELLO/AUTH_OK over WebSocket, heartbeats keep an idle connection open", async () => {
  const { c } = open("auth-user");
  await c.connect();
  assert.equal(c.state, "connected");
  assert.equal(c.userId, "auth-user");
  assert.ok(c.connId > 0);
  assert.equal(c.lastAuth.heartbeatMs, 1000);
  assert.equal(c.lastAuth.resume, Resume.NONE);
  const id = c.connId;
  // Idle for well over 1.5 × heartbeat: the SDK's PINGs keep the session, and a ping round-trips.
  const t0 = Date.now();
  await until(() => Date.now() - t0 > 3500 && c.state === "connected", "3.5 s connected");
  assert.equal(c.connId, id);
  assert.ok((await c.ping()) >= 0);
});

test("send: replies matched by seq, typed ERROR codes, timeout, NO_REPLY", async () => {
  const { c } = open("send-user");
  await c.connect();
  const replies = await Promise.all(["a", "bb", "ccc"].map((p) => c.send("echo", p)));
  assert.deepEqual(replies.map(txt), ["a", "bb", "ccc"]);
  await assert.rejects(c.send("nowhere", "x"), (e) => e instanceof ServerError && e.code === 4001 && e.codeName === "NO_ROUTE");
  const t0 = performance.now();
  await assert.rejects(c.send("slow", "x", { timeoutMs: 300 }), TimeoutError);
  assert.ok(performance.now() - t0 >= 290);
  assert.equal(txt(await c.send("echo", "still fine")), "still fine");
  c.sendNoReply("echo", "fire and forget");
  await until(() => echo.noReply.includes("fire and forget"), "the NO_REPLY uplink at the service");
  assert.equal(txt(await c.send("echo", "after")), "after");
});

test("rooms: join, push from tetherctl, leave", async () => {
  const r = open("room-user");
  await r.c.connect();
  await r.c.subscribe("lobby-1");
  assert.equal(await gw.roomSize("lobby-1"), 1);
  await gw.ctl("push", "-room", "lobby-1", "game starts");
  await until(() => r.pushes.length === 1, "room push");
  assert.deepEqual([r.pushes[0].channel, txt(r.pushes[0].payload), r.pushes[0].msgId], ["lobby-1", "game starts", 0]);
  await r.c.unsubscribe("lobby-1");
  assert.equal(await gw.roomSize("lobby-1"), 0);
});

test("a kick with a reconnect code: the client reconnects and rejoins its rooms", async () => {
  const r = open("rejoin-user");
  await r.c.connect();
  await r.c.subscribe("rejoin-room");
  const first = r.c.connId;
  await gw.ctl("kick", "-user", "rejoin-user", "-code", "3000", "-reason", "rebalance");
  const lost = await until(() => r.states.find((x) => x.s === "reconnecting"), "reconnecting");
  assert.ok(lost.err instanceof CloseError && lost.err.code === 3000 && !lost.err.terminal, String(lost.err));
  await until(() => r.c.state === "connected" && r.c.connId !== first, "reconnected");
  await until(async () => (await gw.roomSize("rejoin-room")) === 1, "room rejoined");
  await gw.ctl("push", "-room", "rejoin-room", "after");
  await until(() => r.pushes.some((p) => txt(p.payload) === "after"), "push after rejoin");
});

test("a kick with a terminal code: no reconnect, the code is surfaced", async () => {
  const r = open("kick-user");
  await r.c.connect();
  await gw.ctl("kick", "-user", "kick-user", "-reason", "bye");
  await until(() => r.c.state === "closed", "closed");
  const err = r.c.closeReason;
  assert.ok(err instanceof CloseError);
  assert.deepEqual([err.source, err.code, err.codeName, err.terminal], ["CLOSE", 3502, "KICKED", true]);
  assert.equal(r.states.at(-1).err, err);
  assert.equal(r.c.attempts, 1);
  await assert.rejects(r.c.send("echo", "x"), (e) => e.name === "ClosedError");
});

test("a second login on the same device replaces the first: 3503, 'signed in elsewhere', no reconnect", async () => {
  const a = open("twin", { deviceId: "same-device" });
  await a.c.connect();
  const b = open("twin", { deviceId: "same-device" });
  await b.c.connect();
  await until(() => a.c.state === "closed", "first closed");
  assert.equal(a.c.closeReason.code, 3503);
  assert.equal(a.c.closeReason.description, "signed in elsewhere");
  assert.equal(a.c.attempts, 1);
  assert.equal(b.c.state, "connected");
});

test("QoS1: acked, resumed after a reconnect with the cursor, no loss and no duplicate; token function called per connect", async () => {
  let tokenCalls = 0;
  let gate = null; // while set, the token function waits: the client stays offline
  const r = open("qos-user", {
    token: async () => {
      tokenCalls++;
      if (gate) await gate.promise;
      return "qos-user";
    },
  });
  await r.c.connect();
  assert.equal(tokenCalls, 1);
  await gw.ctl("push", "-user", "qos-user", "-qos1", "m1");
  await until(() => r.pushes.length === 1, "m1");
  const epoch = r.c.cursor.epoch;
  assert.equal(r.c.cursor.lastId, r.pushes[0].msgId);
  assert.ok(r.pushes[0].ackRequested);

  let release;
  gate = { promise: new Promise((res) => (release = res)) };
  await gw.ctl("kick", "-user", "qos-user", "-code", "3002");
  await until(() => tokenCalls === 2, "reconnect attempt waiting for its token");
  await until(async () => JSON.parse(await gw.ctl("presence", "-user", "qos-user")).users["qos-user"].length === 0, "user offline");
  // Offline: kept for resume.
  await gw.ctl("push", "-user", "qos-user", "-qos1", "m2");
  await gw.ctl("push", "-user", "qos-user", "-qos1", "m3");
  gate = null;
  release();
  await until(() => r.pushes.length >= 3, "m2 and m3 after the reconnect");
  assert.equal(r.c.lastAuth.resume, Resume.RECOVERED);
  assert.equal(r.c.lastAuth.epoch, epoch);
  // A push while connected again, then make sure nothing else arrives before it.
  await gw.ctl("push", "-user", "qos-user", "-qos1", "m4");
  await until(() => r.pushes.length >= 4, "m4");
  assert.deepEqual(r.pushes.map((p) => txt(p.payload)), ["m1", "m2", "m3", "m4"]);
  const ids = r.pushes.map((p) => p.msgId);
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
  assert.equal(new Set(ids).size, 4);
  assert.equal(tokenCalls, 2);
  assert.deepEqual(r.c.cursor, { epoch, lastId: ids[3] });
});

test("GOAWAY on drain: the client waits retry_after, then reconnects to the next node", async () => {
  const a = await Tetherd.start(["-drain-spread", "1500ms", "-drain-timeout", "10s"]);
  let b;
  try {
    const r = open("drain-user", { url: a.url });
    await r.c.connect();
    await r.c.subscribe("drain-room");
    await a.drain();
    const away = r.states.find((x) => x.s === "reconnecting");
    assert.ok(away && away.err instanceof CloseError && away.err.source === "GOAWAY" && away.err.code === 3000, String(away?.err));
    const retry = away.err.retryAfterMs;
    // The next node comes up on the same address.
    b = await Tetherd.start([], { tcpPort: a.tcpPort, wsPort: a.wsPort, controlPort: a.controlPort });
    await until(() => r.c.state === "connected" && r.c.attempts >= 2, "reconnected to the next node", 20000);
    const next = r.states.find((x) => x.s === "connecting" && x.at > away.at);
    assert.ok(next.at - away.at >= retry - 5, `reconnected ${next.at - away.at} ms after GOAWAY, retry_after ${retry}`);
    await until(async () => (await b.roomSize("drain-room")) === 1, "room rejoined on the next node");
  } finally {
    await a.stop();
    await b?.stop();
  }
});
