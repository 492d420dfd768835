// The SDK in a real browser: headless Chromium (Debian's, driven by
// playwright-core) loads a page served from loopback that imports the built
// SDK, connects to a real tetherd over WebSocket, joins a room, gets a push
// from tetherctl, survives a server-side kick with a reconnect code, and gets
// a second push. A missing Chromium fails this test; it never skips.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Tetherd, until } from "./harness.mjs";

const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const dist = fileURLToPath(new URL("../dist/", import.meta.url));

const page = `<!doctype html>
<meta charset="utf-8">
<title>tether SDK browser test</title>
<script type="module">
import { Client } from "/dist/index.js";
const q = new URLSearchParams(location.search);
window.events = [];
const log = (e) => window.events.push(e);
const c = new Client({
  url: q.get("ws"),
  token: q.get("user"),
  deviceId: "browser-device",
  onPush: (p) => log({ type: "push", channel: p.channel, text: new TextDecoder().decode(p.payload) }),
  onStateChange: (s, err) => log({ type: "state", s, code: err && err.code, source: err && err.source }),
  onError: (err) => log({ type: "error", message: String(err) }),
});
window.client = c;
c.connect()
  .then(() => c.subscribe(q.get("room")))
  .then(() => log({ type: "joined", connId: c.connId }))
  .catch((err) => log({ type: "failed", message: String(err) }));
</script>`;

function serve() {
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(page);
      return;
    }
    const file = path.join(dist, path.normalize(url.pathname.replace(/^\/dist\//, "")));
    if (!url.pathname.startsWith("/dist/") || !file.startsWith(dist) || !existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve(srv)));
}

let gw, srv, browser;
after(async () => {
  await browser?.close();
  srv?.close();
  await gw?.stop();
});

test("browser: connect, join a room, push, kick with a reconnect code, rejoin, second push", async () => {
  assert.ok(existsSync(chromiumPath), `Chromium not found at ${chromiumPath}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  gw = await Tetherd.start();
  srv = await serve();
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const tab = await browser.newPage();
  const consoleErrors = [];
  tab.on("pageerror", (err) => consoleErrors.push(String(err)));
  const events = () => tab.evaluate(() => window.events ?? []);
  const wait = async (pred, what) => {
    try {
      return await until(async () => (await events()).filter(pred).length > 0 && (await events()).filter(pred), what, 20000);
    } catch (err) {
      throw new Error(`${err.message}; page events: ${JSON.stringify(await events())}; page errors: ${consoleErrors}`);
    }
  };
  const origin = `http://127.0.0.1:${srv.address().port}`;
  await tab.goto(`${origin}/?ws=${encodeURIComponent(gw.url)}&user=web-user&room=web-room`);
  await wait((e) => e.type === "joined", "joined");
  assert.equal(await gw.roomSize("web-room"), 1);

  await gw.ctl("push", "-room", "web-room", "first");
  await wait((e) => e.type === "push" && e.text === "first", "first push");

  await gw.ctl("kick", "-user", "web-user", "-code", "3000", "-reason", "rebalance");
  await wait((e) => e.type === "state" && e.s === "reconnecting" && e.code === 3000, "reconnecting with 3000");
  const connected = await wait((e) => e.type === "state" && e.s === "connected", "connected");
  await until(async () => (await events()).filter((e) => e.type === "state" && e.s === "connected").length === 2, "reconnected", 20000);
  assert.ok(connected.length >= 1);
  await until(async () => (await gw.roomSize("web-room")) === 1, "room rejoined by the browser", 20000);

  await gw.ctl("push", "-room", "web-room", "second");
  await wait((e) => e.type === "push" && e.text === "second", "second push");
  const all = await events();
  assert.deepEqual(all.filter((e) => e.type === "push").map((e) => [e.channel, e.text]), [["web-room", "first"], ["web-room", "second"]]);
  assert.deepEqual(consoleErrors, []);
  assert.equal(await tab.evaluate(() => window.client.state), "connected");
  await tab.evaluate(() => window.client.close());
});
