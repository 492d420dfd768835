// Token refresh on a live connection (PROTOCOL.md §6.12) against a real
// tetherd verifying 2-second HS256 tokens: the SDK refreshes through its
// token function so the connection outlives its tokens, and without refresh
// the gateway ends the connection with 3008 SESSION_EXPIRED and the SDK
// reconnects with a fresh token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Client, CloseError } from "../dist/index.js";
import { Tetherd, until } from "./harness.mjs";

const secret = "js-refresh-test-secret-32-bytes!!";
let gw;
const clients = [];

before(async () => {
  gw = await Tetherd.start(["-no-dev", "-auth", "jwt", "-heartbeat", "2s"], {}, { TETHER_JWT_SECRET: secret, TETHER_CONTROL_SECRET: "js-refresh-test-control-secret-32b" });
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gw?.stop();
});

const b64url = (s) => Buffer.from(s).toString("base64url");

// mint returns an HS256 JWT for sub expiring ttl seconds from now.
function mint(sub, ttl) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" })) + "." + b64url(JSON.stringify({ sub, iat: now, exp: now + ttl }));
  return head + "." + createHmac("sha256", secret).update(head).digest("base64url");
}

function open(user, extra = {}) {
  const rec = { states: [], errors: [], tokens: 0 };
  const c = new Client({
    url: gw.url,
    token: () => {
      rec.tokens++;
      return mint(user, 2);
    },
    backoffMinMs: 1,
    stableAfterMs: 1,
    onStateChange: (s, err) => rec.states.push({ s, err, connId: c.connId }),
    onError: (err) => rec.errors.push(err),
    ...extra,
  });
  clients.push(c);
  return Object.assign(rec, { c });
}

test("refresh: the connection outlives several 2-second tokens without reconnecting", async () => {
  const rec = open("refresh-user");
  const { c } = rec;
  await c.connect();
  const id = c.connId;
  const firstExp = c.lastAuth.tokenExpiresMs;
  assert.ok(firstExp > 0, "AUTH_OK carries token_expires_ms");
  await until(() => c.refreshes >= 3 && Date.now() > firstExp + 500, "three refreshes, past the first token's expiry", 30000);
  assert.equal(c.connId, id);
  assert.equal(c.attempts, 1);
  assert.equal(c.state, "connected");
  assert.ok((await c.ping()) >= 0);
  assert.ok(rec.tokens >= 4, "the token function gave every refreshed token");
});

test("no refresh: SESSION_EXPIRED at the token's expiry, then a reconnect with a fresh token", async () => {
  const rec = open("expiry-user", { noRefresh: true });
  const { c } = rec;
  await c.connect();
  const id = c.connId;
  await until(() => c.state === "connected" && c.connId !== id, "a new connection after the expiry", 30000);
  const ended = rec.states.find((t) => t.s === "reconnecting");
  assert.ok(ended?.err instanceof CloseError, String(ended?.err));
  assert.equal(ended.err.code, 3008);
  assert.equal(ended.err.terminal, false);
  assert.ok(rec.tokens >= 2, "a fresh token for the reconnect");
});
