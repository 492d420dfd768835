// Codec tests against docs/PROTOCOL.md itself: every worked frame of §14 is
// parsed out of the document (its "One line:" hex), encoded or decoded by the
// SDK and compared byte for byte or field by field, so the SDK cannot drift
// from the spec. The framing vectors of §17 check the decoder classifies the
// same bytes the same way the server does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { codec } from "../dist/index.js";

const spec = readFileSync(fileURLToPath(new URL("../../../docs/PROTOCOL.md", import.meta.url)), "utf8");

function hex(s) {
  const clean = s.replace(/[^0-9a-fA-F]/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}
function toHex(b) {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
}

// The worked frames: "<!-- frame: name -->" ... "One line: `hex`".
const frames = new Map();
for (const m of spec.matchAll(/<!-- frame: (\w+) -->[\s\S]*?One line: `([0-9a-f ]+)`/g)) frames.set(m[1], hex(m[2]));

test("PROTOCOL.md §14 has the worked frames this test knows", () => {
  for (const name of ["hello", "auth_ok", "auth_fail", "ping", "pong", "send", "send_reply", "push", "ack", "subscribe", "ok", "unsubscribe", "error", "goaway", "close_kicked", "close_version", "auth_ok_expiry", "refresh", "refresh_ok", "error_refresh", "close_expired"]) {
    assert.ok(frames.has(name), `worked frame ${name} missing from PROTOCOL.md`);
  }
});

// decodeOne runs the streaming decoder over b and returns its one frame.
function decodeOne(b) {
  const out = [];
  new codec.Decoder().push(b, (f) => {
    out.push({ ...f, body: f.body.slice() });
  });
  assert.equal(out.length, 1);
  return out[0];
}

test("encoders produce the client's worked frames byte for byte", () => {
  const f = (name, got) => assert.equal(toHex(got), toHex(frames.get(name)), name);
  f("hello", codec.encodeHello({ token: "tk1", deviceId: "d1", platform: "ios", clientVersion: "1.0", resumeEpoch: 0, resumeLastId: 0 }, 1));
  f("ping", codec.encodeEmpty(codec.Op.PING, 2));
  f("pong", codec.encodeEmpty(codec.Op.PONG, 2));
  f("send", codec.encodeSend("echo", new TextEncoder().encode("hi"), 3));
  f("ack", codec.encodeAck(8, 4));
  f("subscribe", codec.encodeSubscribe(codec.Op.SUBSCRIBE, "r1", 5));
  f("unsubscribe", codec.encodeSubscribe(codec.Op.UNSUBSCRIBE, "r1", 6));
  f("close_kicked", codec.encodeClose(3502, "kicked"));
  f("close_version", codec.encodeClose(3506, ""));
  f("refresh", codec.encodeRefresh("tk2", 8));
});

test("decoders read the server's worked frames field by field", () => {
  const txt = (b) => new TextDecoder().decode(b);
  let fr = decodeOne(frames.get("auth_ok"));
  assert.equal(fr.op, codec.Op.AUTH_OK);
  assert.equal(fr.seq, 1);
  assert.deepEqual(codec.decodeAuthOK(fr.body), {
    connId: 42, heartbeatMs: 25000, maxFrame: 65536, serverTimeMs: 1700000000000, resume: 0, epoch: 1, lastId: 7, userId: "u1", tokenExpiresMs: 0,
  });
  // The optional trailing token_expires_ms (§6.2, §14.12), and REFRESH's answers (§14.13–15).
  fr = decodeOne(frames.get("auth_ok_expiry"));
  assert.equal(codec.decodeAuthOK(fr.body).tokenExpiresMs, 1700000600000);
  fr = decodeOne(frames.get("refresh_ok"));
  assert.deepEqual([fr.op, fr.seq, codec.decodeRefreshOK(fr.body)], [codec.Op.REFRESH_OK, 8, 1700003600000]);
  fr = decodeOne(frames.get("error_refresh"));
  assert.deepEqual(codec.decodeCodeReason(fr.body, "ERROR"), { code: 4010, reason: "expired" });
  assert.equal(codec.codeName(4010), "TOKEN_REJECTED");
  fr = decodeOne(frames.get("close_expired"));
  const ce = codec.decodeCodeReason(fr.body, "CLOSE");
  assert.deepEqual([ce.code, codec.codeName(ce.code), codec.isTerminal(ce.code)], [3008, "SESSION_EXPIRED", false]);
  fr = decodeOne(frames.get("auth_fail"));
  assert.equal(fr.op, codec.Op.AUTH_FAIL);
  assert.deepEqual(codec.decodeCodeReason(fr.body, "AUTH_FAIL"), { code: 3501, reason: "expired" });
  fr = decodeOne(frames.get("send_reply"));
  assert.deepEqual([fr.op, fr.seq, txt(fr.body)], [codec.Op.SEND_REPLY, 3, "hi"]);
  fr = decodeOne(frames.get("push"));
  assert.deepEqual([fr.op, fr.seq, fr.flags], [codec.Op.PUSH, 0, codec.Flag.ACK_REQUESTED]);
  const p = codec.decodePush(fr.body);
  assert.deepEqual([p.msgId, p.channel, txt(p.payload)], [8, "", "yo"]);
  fr = decodeOne(frames.get("ok"));
  assert.deepEqual([fr.op, fr.seq, fr.body.length], [codec.Op.OK, 5, 0]);
  fr = decodeOne(frames.get("error"));
  assert.equal(fr.seq, 7);
  assert.deepEqual(codec.decodeCodeReason(fr.body, "ERROR"), { code: 4001, reason: "no route" });
  fr = decodeOne(frames.get("goaway"));
  assert.deepEqual(codec.decodeGoAway(fr.body), { code: 3000, retryAfterMs: 5000, reason: "drain" });
  fr = decodeOne(frames.get("close_kicked"));
  assert.deepEqual(codec.decodeCodeReason(fr.body, "CLOSE"), { code: 3502, reason: "kicked" });
  fr = decodeOne(frames.get("close_version"));
  assert.deepEqual(codec.decodeCodeReason(fr.body, "CLOSE"), { code: 3506, reason: "" });
});

test("the streaming decoder yields the same frames at every split point and byte by byte", () => {
  // The whole worked session, back to back, as one stream.
  const names = [...frames.keys()];
  const total = names.reduce((n, k) => n + frames.get(k).length, 0);
  const stream = new Uint8Array(total);
  let off = 0;
  for (const k of names) {
    stream.set(frames.get(k), off);
    off += frames.get(k).length;
  }
  const want = names.map((k) => toHex(frames.get(k)));
  const run = (chunks) => {
    const got = [];
    const d = new codec.Decoder();
    for (const c of chunks) {
      d.push(c, (f) => {
        const b = new Uint8Array(12 + f.body.length);
        new DataView(b.buffer).setUint32(0, 8 + f.body.length);
        b.set([f.version, f.op, f.flags, 0], 4);
        new DataView(b.buffer).setUint32(8, f.seq);
        b.set(f.body, 12);
        got.push(toHex(b));
      });
    }
    return got;
  };
  assert.deepEqual(run([stream]), want, "one chunk");
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(run([stream.subarray(0, cut), stream.subarray(cut)]), want, `split at ${cut}`);
  }
  assert.deepEqual(run([...stream].map((b) => Uint8Array.of(b))), want, "byte by byte");
});

test("onFrame returning false stops decoding", () => {
  const d = new codec.Decoder();
  const both = new Uint8Array([...frames.get("ping"), ...frames.get("pong")]);
  let n = 0;
  d.push(both, () => {
    n++;
    return false;
  });
  assert.equal(n, 1);
});

// §17 vectors whose reaction the client's decoder must reproduce from the
// framing alone (length and version), with the limit in force at that point.
test("framing errors are classified like PROTOCOL.md §17", () => {
  const rows = new Map();
  for (const m of spec.matchAll(/^\| `(\w+)` \| (connected|authenticated) \| `([^|]+)` \| `CLOSE (\d+)` \|/gm)) {
    rows.set(m[1], { bytes: m[3], code: Number(m[4]), state: m[2] });
  }
  const cases = ["length_below_header", "length_zero", "preauth_too_large", "unsupported_version", "unsupported_version_header_only", "too_large", "unsupported_version_authed"];
  for (const name of cases) {
    const row = rows.get(name);
    assert.ok(row, `vector ${name} missing from PROTOCOL.md §17`);
    // The server's limits: 4096 before authentication, 65536 after.
    const d = new codec.Decoder(row.state === "connected" ? codec.PRE_AUTH_MAX_FRAME : codec.DEFAULT_MAX_FRAME);
    assert.throws(() => d.push(hex(row.bytes), () => assert.fail(`${name}: no frame expected`)), (err) => {
      assert.ok(err instanceof codec.FrameError, name);
      assert.equal(err.code, row.code, name);
      return true;
    });
  }
  // hello_at_limit: a frame of length exactly 4096 is accepted under the 4096 limit.
  const row = spec.match(/^\| `hello_at_limit` \| connected \| ([^|]+) \|/m);
  assert.ok(row);
  const bytes = [];
  for (const part of row[1].split("+")) {
    const m = part.trim().match(/^`([0-9a-f ]+)`(?: × (\d+))?$/);
    assert.ok(m, part);
    for (let i = 0; i < Number(m[2] ?? 1); i++) bytes.push(...hex(m[1]));
  }
  let n = 0;
  new codec.Decoder(codec.PRE_AUTH_MAX_FRAME).push(Uint8Array.from(bytes), (f) => {
    n++;
    assert.equal(f.body.length, 4096 - 8);
  });
  assert.equal(n, 1);
});

test("malformed bodies are PROTOCOL_ERROR: too short, str past the end, invalid UTF-8", () => {
  const bad = (f, b) =>
    assert.throws(() => f(Uint8Array.from(b)), (err) => err instanceof codec.FrameError && err.code === codec.CloseCode.PROTOCOL_ERROR);
  bad((b) => codec.decodeAuthOK(b), [0, 0, 0]);
  bad((b) => codec.decodePush(b), [0, 0, 0, 0, 0, 0, 0, 1, 0, 9, 0x61]);
  bad((b) => codec.decodeCodeReason(b, "CLOSE"), [0x0d, 0xae, 0, 2, 0xc3, 0x28]);
  bad((b) => codec.decodeGoAway(b), [0x0b, 0xb8, 0, 0]);
  // A u64 above 2^53 is a server bug.
  bad((b) => codec.decodePush(b), [0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0]);
  // Trailing bytes after the known fields are ignored (§6).
  assert.deepEqual(codec.decodeCodeReason(Uint8Array.from([0x0d, 0xae, 0, 1, 0x61, 0xee, 0xee]), "CLOSE"), { code: 3502, reason: "a" });
  // A leading BOM is text, not stripped.
  assert.equal(codec.decodeCodeReason(Uint8Array.from([0, 0, 0, 3, 0xef, 0xbb, 0xbf]), "CLOSE").reason, "\ufeff");
});

test("encoders refuse what the wire cannot carry", () => {
  assert.throws(() => codec.encodeSubscribe(codec.Op.SUBSCRIBE, "x".repeat(65536), 1), RangeError);
  assert.throws(() => codec.encodeAck(2 ** 53, 0), RangeError);
  // seq wraps as u32.
  assert.equal(toHex(codec.encodeEmpty(codec.Op.PING, 0xffffffff).subarray(8)), "ff ff ff ff");
});

test("code classification follows §7, including codes outside their range", () => {
  for (const [code, terminal] of [[1000, false], [3000, false], [3499, false], [3500, true], [3503, true], [3999, true], [4000, false], [0, false], [2999, false], [65535, false]]) {
    assert.equal(codec.isTerminal(code), terminal, String(code));
  }
  assert.equal(codec.codeName(3503), "REPLACED");
  assert.equal(codec.codeName(4001), "NO_ROUTE");
});
