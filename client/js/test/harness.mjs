// Test harness: a real tetherd built from this repository, started on free
// loopback ports and stopped after; tetherctl for pushes and kicks; a tiny
// control-port service for SEND replies. Every wait polls a condition with a
// deadline.
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

let binDir;
/**
 * binaries builds tetherd and tetherctl once per test process into a
 * temporary directory (go's build cache makes it quick after the first
 * time), or uses TETHER_BIN_DIR when set (the Makefile's bin/).
 */
export async function binaries() {
  if (binDir) return binDir;
  const env = process.env.TETHER_BIN_DIR;
  if (env && existsSync(path.join(env, "tetherd")) && existsSync(path.join(env, "tetherctl"))) {
    binDir = env;
    return binDir;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "tether-js-"));
  await run("go", ["build", "-o", dir + "/", "./cmd/tetherd", "./cmd/tetherctl"], { cwd: repoRoot, maxBuffer: 1 << 24 });
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  binDir = dir;
  return binDir;
}

// Every tetherd still running when the test process exits (a failed test) is killed.
const live = new Set();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** freePort returns a loopback port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** until polls cond every 20 ms until it returns a truthy value or ms pass. */
export async function until(cond, what, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Tetherd is one tetherd -dev process on loopback: client port, WebSocket
 * port (url), control port. Extra flags go after the defaults; a first
 * extra flag "-no-dev" leaves -dev out (e.g. for -auth jwt), and env adds
 * environment variables (e.g. TETHER_JWT_SECRET).
 */
export class Tetherd {
  static async start(extra = [], ports = {}, env = undefined) {
    const bin = await binaries();
    const t = new Tetherd();
    t.bin = bin;
    t.tcpPort = ports.tcpPort ?? (await freePort());
    t.wsPort = ports.wsPort ?? (await freePort());
    t.controlPort = ports.controlPort ?? (await freePort());
    t.url = `ws://127.0.0.1:${t.wsPort}/ws`;
    // extra may start with "-no-dev" for a gateway that verifies real tokens (-auth jwt).
    const dev = extra[0] === "-no-dev" ? [] : ["-dev"];
    if (extra[0] === "-no-dev") extra = extra.slice(1);
    const args = [...dev, "-addr", `127.0.0.1:${t.tcpPort}`, "-ws-addr", `127.0.0.1:${t.wsPort}`, "-control", `127.0.0.1:${t.controlPort}`, "-admin", "-", "-http-addr", "-", "-log-level", "warn"];
    t.proc = spawn(path.join(bin, "tetherd"), [...args, ...extra], { stdio: ["ignore", "ignore", "pipe"], env: env ? { ...process.env, ...env } : process.env });
    live.add(t.proc);
    t.proc.once("exit", () => live.delete(t.proc));
    t.stderr = "";
    t.proc.stderr.on("data", (d) => (t.stderr += d));
    t.exited = new Promise((r) => t.proc.once("exit", (code, sig) => r({ code, sig })));
    let dead = false;
    t.exited.then(() => (dead = true));
    await until(async () => {
      if (dead) throw new Error("tetherd exited: " + t.stderr);
      return (await canConnect(t.wsPort)) && (await canConnect(t.controlPort));
    }, "tetherd to listen");
    return t;
  }

  /** ctl runs tetherctl against this gateway's control port and returns its stdout. */
  async ctl(...args) {
    const { stdout } = await run(path.join(this.bin, "tetherctl"), ["-addr", `127.0.0.1:${this.controlPort}`, "-json", ...args]);
    return stdout;
  }

  /** roomSize asks PRESENCE for a room's member count. */
  async roomSize(room) {
    const out = JSON.parse(await this.ctl("presence", "-room", room));
    return out.rooms?.[room] ?? 0;
  }

  /** drain sends SIGTERM: GOAWAY to every client, then exit. */
  drain() {
    this.proc.kill("SIGTERM");
    return this.exited;
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGKILL");
    await this.exited;
  }
}

// ---- a control-port service (PROTOCOL.md §15) that answers route "echo"
// with the request's payload, never answers route "slow", and records the
// payloads of NO_REPLY uplinks in noReply.

function ctlFrame(op, seq, json, payload = Buffer.alloc(0)) {
  const j = Buffer.from(JSON.stringify(json));
  const b = Buffer.alloc(14 + j.length + payload.length);
  b.writeUInt32BE(10 + j.length + payload.length, 0);
  b[4] = 1;
  b[5] = op;
  b.writeUInt32BE(seq, 8);
  b.writeUInt16BE(j.length, 12);
  j.copy(b, 14);
  payload.copy(b, 14 + j.length);
  return b;
}

export async function startEchoService(t) {
  const sock = net.connect(t.controlPort, "127.0.0.1");
  await new Promise((res, rej) => {
    sock.once("connect", res);
    sock.once("error", rej);
  });
  let buf = Buffer.alloc(0);
  const results = new Map();
  const svc = { noReply: [], close: () => sock.destroy() };
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      const op = buf[5];
      const seq = buf.readUInt32BE(8);
      const jl = len >= 10 ? buf.readUInt16BE(12) : 0;
      const json = jl ? JSON.parse(buf.subarray(14, 14 + jl).toString()) : {};
      const payload = Buffer.from(buf.subarray(14 + jl, 4 + len));
      buf = buf.subarray(4 + len);
      if (op === 0x41 || op === 0x42) results.set(seq, { op, json });
      else if (op === 0x4b && json.noreply) svc.noReply.push(payload.toString());
      else if (op === 0x4b && json.route === "echo") sock.write(ctlFrame(0x4c, 0, { id: json.id }, payload));
    }
  });
  sock.write(ctlFrame(0x40, 1, { secret: "", name: "js-test" }));
  await until(() => results.get(1), "control AUTH");
  sock.write(ctlFrame(0x49, 2, { routes: ["echo", "slow"] }));
  const r = await until(() => results.get(2), "control SUBSCRIBE");
  if (r.op !== 0x41) throw new Error("SUBSCRIBE failed: " + JSON.stringify(r.json));
  return svc;
}
