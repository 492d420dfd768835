// The chat example in a real browser: headless Chromium (Debian's, driven by
// playwright-core) opens the page as alice and as bob against a real tetherd -dev
// and the chat service on an SQLite store. A group message appears on both pages; the
// recipient's read shows as a read receipt to the sender; a recall removes the
// message on the other page; an image message renders its thumbnail; a page closed
// while messages (and a recall) arrive resumes without duplicates and without the
// recalled message; a reload resumes without duplicates; a page whose resume is "not
// recovered" fetches history and still shows each message once. Screenshots go to
// examples/chat/screenshots/ with CHAT_SCREENSHOTS=1. A missing Chromium fails the
// test; it never skips.
//
// It reuses client/js's test harness (tetherd from this repository) and its
// node_modules (playwright-core) and dist (the SDK the page loads): run it after
// `cd client/js && npm ci && npm run build`, as examples/chat/test/run.sh does.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Tetherd, until, repoRoot } from "../../../client/js/test/harness.mjs";

const { chromium } = createRequire(new URL("../../../client/js/package.json", import.meta.url))("playwright-core");
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const run = promisify(execFile);

const tmp = mkdtempSync(path.join(os.tmpdir(), "tether-chat-"));
// CHAT_SCREENSHOTS=1 writes the README's screenshots into examples/chat/screenshots/;
// otherwise they go to the temporary directory, so a test run leaves the tree clean.
const shots = process.env.CHAT_SCREENSHOTS ? fileURLToPath(new URL("../screenshots/", import.meta.url)) : path.join(tmp, "screenshots");
let gw, chat, browser;
after(async () => {
  await browser?.close();
  chat?.kill("SIGKILL");
  await gw?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** startChat builds and starts the example against gw, on an SQLite store. */
async function startChat(gw) {
  await run("go", ["build", "-o", path.join(tmp, "chat"), "./examples/chat"], { cwd: repoRoot, maxBuffer: 1 << 24 });
  // Port 0 and the address the service prints: no window for another process to take
  // a port chosen in advance.
  const proc = spawn(path.join(tmp, "chat"), [
    "-control", `127.0.0.1:${gw.controlPort}`, "-ws-url", gw.url, "-http", "127.0.0.1:0",
    "-db", path.join(tmp, "chat.db"), "-sdk", path.join(repoRoot, "client/js/dist"), "-log-level", "warn",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d) => (stdout += d));
  proc.stderr.on("data", (d) => (stderr += d));
  proc.stderrText = () => stderr;
  let dead = false;
  proc.once("exit", () => (dead = true));
  const origin = await until(() => {
    if (dead) throw new Error("chat exited: " + stderr);
    const m = /serving the page on (http:\/\/[0-9.:]+)\//.exec(stdout);
    return m && m[1];
  }, "the chat service to serve its page", 60000);
  proc.origin = origin;
  return proc;
}

test("chat in the browser: group message, read receipt, recall, image, resume and reload without duplicates", async () => {
  const pages = [];
  try {
    await scenario(pages);
  } catch (err) {
    // Everything each page logged, and the service's and tetherd's complaints.
    const logs = await Promise.all(pages.filter((p) => !p.isClosed()).map(async (p) => `${p.user}: ${JSON.stringify(await p.evaluate(() => window.chatLog))}`));
    err.message += `\npage logs:\n${logs.join("\n")}\nchat stderr: ${chat?.stderrText()}\ntetherd stderr: ${gw?.stderr}`;
    throw err;
  }
});

async function scenario(pages) {
  assert.ok(existsSync(chromiumPath), `Chromium not found at ${chromiumPath}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  gw = await Tetherd.start();
  chat = await startChat(gw);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const errors = [];
  const open = async (ctx, user, init) => {
    const page = await ctx.newPage();
    if (init) await page.addInitScript(init);
    await page.setViewportSize({ width: 1000, height: 640 });
    page.on("pageerror", (err) => errors.push(`${user}: ${err}`));
    await page.goto(`${chat.origin}/?user=${user}`);
    page.user = user;
    pages.push(page);
    return page;
  };
  const chatLog = (page) => page.evaluate(() => window.chatLog ?? []);
  const wait = async (page, what, fn, arg) => {
    try {
      return await until(() => page.evaluate(fn, arg), `${page.user}: ${what}`, 20000);
    } catch (err) {
      throw new Error(`${err.message}; log: ${JSON.stringify(await chatLog(page))}; page errors: ${errors}`);
    }
  };
  // texts returns the text messages shown, in order.
  const texts = (page) => page.$$eval("#messages .msg .body", (els) => els.map((e) => e.textContent));
  const logged = (page, type) => wait(page, type, (t) => window.chatLog?.some((e) => e.type === t), type);

  const aliceCtx = await browser.newContext();
  const bobCtx = await browser.newContext();
  const alice = await open(aliceCtx, "alice");
  let bob = await open(bobCtx, "bob");
  await logged(alice, "synced");
  await logged(bob, "synced");

  // alice creates a group with bob: the service puts both in its room (JOIN by user).
  await alice.fill("#new-group [name=name]", "team");
  await alice.fill("#new-group [name=members]", "bob");
  await alice.click("#new-group button");
  const group = await wait(bob, "the group in bob's list", () => document.querySelector('#convs li[data-conv^="g:"]')?.dataset.conv);
  await until(async () => (await gw.roomSize(group)) === 2, "both in the group's room", 20000);

  // A group message appears on both pages; bob's page shows it, so alice gets "read".
  await alice.fill("#compose [name=text]", "hello team");
  await alice.click("#compose button");
  await wait(bob, "the group message", () => [...document.querySelectorAll("#messages .body")].some((e) => e.textContent === "hello team"));
  await wait(alice, "read receipt", () => document.querySelector("#messages .msg.mine .status")?.dataset.status === "read");

  // An image message renders its thumbnail (loaded: it has a natural width).
  await alice.click("#send-sample");
  const thumb = await wait(bob, "the image thumbnail", () => {
    const img = document.querySelector('#messages .msg[data-type="image"] img.thumb');
    return img && img.complete && img.naturalWidth > 0 && img.getAttribute("src");
  });
  assert.equal(thumb, "/samples/sunset-thumb.png");

  // A recall removes the message on the other page.
  await alice.fill("#compose [name=text]", "oops, wrong chat");
  await alice.click("#compose button");
  await wait(bob, "the message to recall", () => [...document.querySelectorAll("#messages .body")].some((e) => e.textContent === "oops, wrong chat"));
  await alice.click("#messages .msg.mine:last-of-type button.recall");
  await wait(bob, "the recall", () => ![...document.querySelectorAll("#messages .body")].some((e) => e.textContent === "oops, wrong chat") && document.querySelectorAll("#messages .msg.recalled").length === 1);
  await bob.screenshot({ path: path.join(shots, "bob-group.png") });

  // bob goes offline; alice sends two messages and recalls the second; bob comes back
  // on the same device with its cursor: resumed, each message once, the recalled one gone.
  const before = (await chatLog(bob)).filter((e) => e.type === "push").map((e) => e.msgId);
  await bob.close();
  await until(async () => (await gw.roomSize(group)) === 1, "bob gone from the room", 20000);
  await alice.fill("#compose [name=text]", "while you were away");
  await alice.click("#compose button");
  await alice.fill("#compose [name=text]", "never mind this");
  await alice.click("#compose button");
  await wait(alice, "alice's second message", () => [...document.querySelectorAll("#messages .msg.mine[data-seq] .body")].some((e) => e.textContent === "never mind this"));
  await alice.click("#messages .msg.mine:last-of-type button.recall");
  await wait(alice, "alice's recall", () => document.querySelectorAll("#messages .msg.recalled").length === 2);
  bob = await open(bobCtx, "bob");
  await wait(bob, "the missed message", () => [...document.querySelectorAll("#messages .body")].some((e) => e.textContent === "while you were away"));
  await wait(bob, "the missed recall", () => document.querySelectorAll("#messages .msg.recalled").length === 2);
  const resumed = await chatLog(bob);
  assert.deepEqual(resumed.filter((e) => e.type === "auth").map((e) => e.resume), [1], "resume recovered");
  const again = resumed.filter((e) => e.type === "push" && before.includes(e.msgId));
  assert.deepEqual(again, [], "no push seen before the page closed is handed over again");
  assert.deepEqual(await texts(bob), ["hello team", "while you were away"]);
  await until(async () => (await gw.roomSize(group)) === 2, "bob back in the room (the online event)", 20000);

  // A reload resumes with nothing to resend and shows each message once.
  await bob.reload();
  await wait(bob, "connected after reload", () => window.chatLog?.some((e) => e.type === "auth"));
  await wait(bob, "messages after reload", () => document.querySelectorAll("#messages .msg").length === 5);
  const reloaded = await chatLog(bob);
  assert.deepEqual(reloaded.filter((e) => e.type === "auth").map((e) => e.resume), [1]);
  assert.deepEqual(reloaded.filter((e) => e.type === "push" && e.event === "message"), [], "no message pushed again after a reload");
  assert.deepEqual(await texts(bob), ["hello team", "while you were away"]);
  assert.equal(await bob.locator('#messages .msg[data-type="image"]').count(), 1);

  // Away past what the gateway can resume (here: a cursor of another epoch, as after
  // the resume window): "not recovered", so the page fetches history; still once each.
  await bob.close();
  await until(async () => (await gw.roomSize(group)) === 1, "bob gone again", 20000);
  await alice.fill("#compose [name=text]", "sent during the gap");
  await alice.click("#compose button");
  await wait(alice, "the gap message stored", () => [...document.querySelectorAll("#messages .msg.mine[data-seq] .body")].some((e) => e.textContent === "sent during the gap"));
  bob = await open(bobCtx, "bob", () => {
    const k = "tether-chat:bob";
    const s = JSON.parse(localStorage.getItem(k));
    s.cursor.epoch += 1000;
    localStorage.setItem(k, JSON.stringify(s));
  });
  await logged(bob, "synced");
  const gap = await chatLog(bob);
  assert.deepEqual(gap.filter((e) => e.type === "auth").map((e) => e.resume), [2], "resume not recovered");
  await wait(bob, "the gap message from history", () => [...document.querySelectorAll("#messages .body")].some((e) => e.textContent === "sent during the gap"));
  assert.deepEqual(await texts(bob), ["hello team", "while you were away", "sent during the gap"]);
  assert.equal(await bob.locator("#messages .msg.recalled").count(), 2);

  // One-to-one: bob writes to alice.
  await bob.fill("#new-dm [name=user]", "alice");
  await bob.click("#new-dm button");
  await bob.fill("#compose [name=text]", "hi alice, just you and me");
  await bob.click("#compose button");
  await wait(alice, "the direct message in alice's list", () => !!document.querySelector('#convs li[data-conv="dm:alice|bob"]'));
  await alice.click('#convs li[data-conv="dm:alice|bob"]');
  await wait(alice, "the direct message", () => [...document.querySelectorAll("#messages .body")].some((e) => e.textContent === "hi alice, just you and me"));
  await wait(bob, "bob's message read", () => document.querySelector("#messages .msg.mine .status")?.dataset.status === "read");
  await alice.click(`#convs li[data-conv="${group}"]`);
  await alice.screenshot({ path: path.join(shots, "alice-group.png") });
  await bob.screenshot({ path: path.join(shots, "bob-direct.png") });

  assert.deepEqual(errors, []);
  assert.deepEqual((await chatLog(alice)).filter((e) => e.type === "error"), []);
  assert.deepEqual((await chatLog(bob)).filter((e) => e.type === "error"), []);
}

mkdirSync(shots, { recursive: true });
