// The chat page: the TypeScript SDK (served from client/js/dist under /sdk/) over
// WebSocket to tetherd, the chat service's routes over SEND, its events as QoS1 pushes.
//
// What the page keeps in localStorage, per user: a stable device id (QoS1 redelivery
// keys on it), the resume cursor, and the conversations with the messages it has.
// After a reload it draws them at once and connects with the saved cursor: the gateway
// resends only what came meanwhile ("recovered"), and messages are keyed by
// (conversation, seq), so nothing shows twice. A resume that is "not recovered", or a
// first load, asks the service for history (chat.history) instead.
import { Client, Resume } from "/sdk/index.js";

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const user = params.get("user");

if (!user) {
  $("#login").hidden = false;
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    location.search = "?user=" + encodeURIComponent(new FormData(e.target).get("user"));
  });
} else {
  start().catch((err) => {
    document.body.textContent = "cannot start: " + err;
  });
}

// ---- state ----

const key = "tether-chat:" + user;
let state = load();
let active = null; // id of the conversation shown
let client;
const decoder = new TextDecoder();
// Test and debugging hooks: what happened, in order.
window.chatLog = [];
const log = (e) => window.chatLog.push(e);

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(key));
    if (s && s.convs) return s;
  } catch {}
  return { device: "web-" + Math.random().toString(36).slice(2, 10), cursor: { epoch: 0, lastId: 0 }, synced: false, convs: {} };
}

function save() {
  // The SDK advances its cursor when onPush returns; onPush saves the push's id itself.
  const c = client?.cursor;
  if (c && (c.epoch !== state.cursor.epoch || c.lastId >= state.cursor.lastId)) state.cursor = c;
  localStorage.setItem(key, JSON.stringify(state));
}

/** conv returns the local record of conversation c (an object from the service), creating it. */
function conv(c) {
  let r = state.convs[c.id];
  if (!r) r = state.convs[c.id] = { conv: c, messages: {}, receipts: {}, more: false };
  else r.conv = { ...r.conv, ...c };
  return r;
}

/** putMessage stores m once per (conv, seq); a recalled copy always wins. */
function putMessage(m) {
  const r = state.convs[m.conv];
  if (!r) return;
  const old = r.messages[m.seq];
  if (old && old.recalled) return;
  r.messages[m.seq] = m;
  r.conv.last_seq = Math.max(r.conv.last_seq || 0, m.seq);
  if (m.client_id && r.pending) delete r.pending[m.client_id];
}

function recallMessage(convId, seq, by) {
  const r = state.convs[convId];
  if (!r) return;
  const old = r.messages[seq] || { conv: convId, seq, from: by, type: "text", sent_ms: 0 };
  r.messages[seq] = { ...old, text: undefined, media: undefined, recalled: true };
}

function mergePage(p) {
  const r = conv(p.conv);
  for (const m of p.messages) putMessage(m);
  for (const [u, rc] of Object.entries(p.receipts || {})) mergeReceipt(r, u, rc);
  r.more = p.more;
}

function mergeReceipt(r, u, rc) {
  const cur = r.receipts[u] || { delivered: 0, read: 0 };
  r.receipts[u] = { delivered: Math.max(cur.delivered, rc.delivered || 0, rc.read || 0), read: Math.max(cur.read, rc.read || 0) };
}

// ---- the connection ----

async function start() {
  const cfg = await (await fetch("/config.json")).json();
  window.chatConfig = cfg;
  $("#app").hidden = false;
  $("#me").textContent = user;
  client = new Client({
    url: cfg.ws_url,
    token: user, // tetherd -dev: the token is the user id; production: a JWT from your backend
    deviceId: state.device,
    resumeEpoch: state.cursor.epoch,
    resumeLastId: state.cursor.lastId,
    onPush,
    onStateChange,
    onError: (err) => log({ type: "error", message: String(err) }),
  });
  window.chatClient = client;
  bindUI();
  render();
  await client.connect();
}

function onStateChange(s) {
  const el = $("#conn");
  el.textContent = s;
  el.className = "state " + s;
  if (s !== "connected") return;
  const auth = client.lastAuth;
  log({ type: "auth", resume: auth.resume, epoch: auth.epoch, lastId: auth.lastId });
  save();
  if (!state.synced || auth.resume === Resume.NOT_RECOVERED) sync();
}

/** sync fetches every conversation's newest page: first load, or pushes were lost. */
async function sync() {
  try {
    const reply = await request("chat.history", { limit: 50 });
    for (const p of reply.conversations || []) mergePage(p);
    state.synced = true;
    log({ type: "synced", conversations: (reply.conversations || []).length });
    save();
    render();
  } catch (err) {
    log({ type: "error", message: "history: " + err });
  }
}

async function request(route, body) {
  const reply = await client.send(route, JSON.stringify(body));
  return JSON.parse(decoder.decode(reply) || "{}");
}

function onPush(p) {
  let ev;
  try {
    ev = JSON.parse(decoder.decode(p.payload));
  } catch {
    return;
  }
  log({ type: "push", msgId: p.msgId, event: ev.type, seq: ev.seq ?? ev.message?.seq, redelivered: p.redelivered });
  switch (ev.type) {
    case "message":
      conv(ev.conversation);
      putMessage(ev.message);
      break;
    case "recall":
      recallMessage(ev.conv, ev.seq, ev.user);
      break;
    case "receipt": {
      const r = state.convs[ev.conv];
      if (r) mergeReceipt(r, ev.user, ev.kind === "read" ? { read: ev.seq } : { delivered: ev.seq });
      break;
    }
    case "conversation":
      if (!ev.conversation.members.includes(user)) {
        delete state.convs[ev.conversation.id];
        if (active === ev.conversation.id) active = null;
      } else conv(ev.conversation);
      break;
    case "typing":
      showTyping(ev);
      return;
  }
  // Saved before onPush returns, i.e. before the SDK acknowledges the push: a reload
  // never loses a message the gateway considers delivered.
  if (p.channel === "" && p.msgId > 0) state.cursor = { epoch: client.cursor.epoch, lastId: p.msgId };
  save();
  render();
}

let typingTimer;
function showTyping(ev) {
  if (ev.conv !== active || ev.user === user) return;
  $("#typing").textContent = ev.user + " is typing…";
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => ($("#typing").textContent = ""), 3000);
}

// ---- actions ----

async function send(body) {
  if (!active) return;
  const r = state.convs[active];
  const clientId = Math.random().toString(36).slice(2);
  r.pending = r.pending || {};
  r.pending[clientId] = { ...body, conv: active, from: user, client_id: clientId, sent_ms: Date.now() };
  render();
  try {
    const reply = await request("chat.send", { conv: active, ...body, client_id: clientId });
    putMessage(reply.message);
  } catch (err) {
    delete r.pending[clientId];
    log({ type: "error", message: "send: " + err });
    alert("not sent: " + err.message);
  }
  save();
  render();
}

async function recall(m) {
  try {
    const reply = await request("chat.recall", { conv: m.conv, seq: m.seq });
    recallMessage(m.conv, m.seq, user);
    putMessage(reply.message);
  } catch (err) {
    alert("cannot recall: " + err.message);
  }
  save();
  render();
}

async function groupsOp(body) {
  try {
    const reply = await request("chat.groups", body);
    conv(reply.conv);
    active = reply.conv.id;
    save();
    render();
    if (body.op !== "create") loadOlder(true);
  } catch (err) {
    alert(body.op + ": " + err.message);
  }
}

async function loadOlder(fresh) {
  const r = state.convs[active];
  if (!r) return;
  const seqs = Object.keys(r.messages).map(Number);
  const before = fresh || seqs.length === 0 ? 0 : Math.min(...seqs);
  try {
    const reply = await request("chat.history", { conv: active, before, limit: 30 });
    mergePage(reply.page);
    if (!fresh) r.more = reply.page.more;
  } catch (err) {
    log({ type: "error", message: "older: " + err });
  }
  save();
  render();
}

let lastTyping = 0;
function bindUI() {
  $("#compose").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = e.target.elements.text;
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ type: "text", text });
  });
  $("#compose").elements.text.addEventListener("input", () => {
    if (!active || Date.now() - lastTyping < 2000 || client.state !== "connected") return;
    lastTyping = Date.now();
    client.sendNoReply("chat.typing", JSON.stringify({ conv: active }));
  });
  $("#send-sample").addEventListener("click", () => {
    const s = window.chatConfig.samples[0];
    send({ type: s.type, media: s.media });
  });
  $("#send-media").addEventListener("click", () => {
    const f = $("#compose").elements;
    const num = (v) => (v ? Number(v) : undefined);
    send({
      type: f.type.value,
      media: {
        url: f.url.value, mime: f.mime.value || "application/octet-stream", name: f.name.value || undefined,
        size: num(f.size.value), duration_ms: f.duration.value ? Number(f.duration.value) * 1000 : undefined,
        width: num(f.width.value), height: num(f.height.value), thumb_url: f.thumb.value || undefined,
      },
    });
  });
  const form = (sel, fn) =>
    $(sel).addEventListener("submit", (e) => {
      e.preventDefault();
      const d = Object.fromEntries(new FormData(e.target));
      e.target.reset();
      fn(d);
    });
  form("#new-dm", (d) => groupsOp({ op: "dm", user: d.user.trim() }));
  form("#new-group", (d) =>
    groupsOp({ op: "create", name: d.name, members: d.members.split(",").map((s) => s.trim()).filter(Boolean) }),
  );
  form("#join-group", (d) => groupsOp({ op: "join", conv: d.conv.trim() }));
  $("#leave").addEventListener("click", () => {
    const id = active;
    active = null;
    request("chat.groups", { op: "leave", conv: id }).catch((err) => alert("leave: " + err.message));
  });
  $("#older").addEventListener("click", () => loadOlder(false));
  document.addEventListener("visibilitychange", render);
  setInterval(render, 15000); // recall buttons disappear when the window passes
}

// ---- rendering ----

function title(c) {
  if (c.kind === "group") return c.name;
  return c.members.find((m) => m !== user) || user;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
}

function sortedMessages(r) {
  return Object.values(r.messages).sort((a, b) => a.seq - b.seq);
}

function unread(r) {
  const read = r.receipts[user]?.read || 0;
  return sortedMessages(r).filter((m) => m.seq > read && m.from !== user && !m.recalled).length;
}

function render() {
  const list = $("#convs");
  list.replaceChildren();
  const convs = Object.values(state.convs).sort((a, b) => lastActivity(b) - lastActivity(a));
  if (!active && convs.length) active = convs[0].conv.id;
  for (const r of convs) {
    const n = r.conv.id === active ? 0 : unread(r);
    list.append(
      el("li", { "data-conv": r.conv.id, class: r.conv.id === active ? "active" : "", onclick: () => ((active = r.conv.id), render()) },
        el("span", {}, (r.conv.kind === "group" ? "# " : "@ ") + title(r.conv)),
        n ? el("span", { class: "unread" }, String(n)) : undefined),
    );
  }
  const r = active && state.convs[active];
  $("#compose").hidden = !r;
  $("#leave").hidden = !r || r.conv.kind !== "group";
  $("#older").hidden = !r || !r.more;
  $("#conv-name").textContent = r ? title(r.conv) : "Pick or start a conversation";
  $("#conv-info").textContent = r ? (r.conv.kind === "group" ? `${r.conv.id} · ${r.conv.members.join(", ")}` : "direct message") : "";
  const box = $("#messages");
  box.replaceChildren();
  if (!r) return;
  for (const m of sortedMessages(r)) box.append(renderMessage(r, m));
  for (const p of Object.values(r.pending || {})) box.append(renderMessage(r, p, true));
  box.scrollTop = box.scrollHeight;
  markRead(r);
}

function lastActivity(r) {
  const ms = sortedMessages(r);
  return ms.length ? ms[ms.length - 1].sent_ms : 0;
}

function renderMessage(r, m, pending) {
  const mine = m.from === user;
  if (m.recalled) {
    return el("li", { class: "msg recalled", "data-conv": m.conv, "data-seq": m.seq }, `${mine ? "You" : m.from} recalled a message`);
  }
  const meta = el("div", { class: "meta" }, new Date(m.sent_ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  if (mine && !pending) {
    const st = status(r, m);
    meta.append(el("span", { class: "status " + st.kind, "data-status": st.kind }, st.text));
    if (Date.now() - m.sent_ms < window.chatConfig.recall_window_ms) {
      meta.append(el("button", { class: "recall", onclick: () => recall(m) }, "Recall"));
    }
  }
  return el("li", { class: `msg ${mine ? "mine" : ""} ${pending ? "pending" : ""}`, "data-conv": m.conv, "data-seq": pending ? undefined : m.seq, "data-type": m.type },
    !mine && r.conv.kind === "group" ? el("div", { class: "from" }, m.from) : undefined,
    m.type === "text" ? el("div", { class: "body" }, m.text) : renderMedia(m),
    meta);
}

function renderMedia(m) {
  const md = m.media || {};
  const caption = [md.name, md.width && md.height ? `${md.width}×${md.height}` : "", md.duration_ms ? `${Math.round(md.duration_ms / 1000)} s` : "", md.size ? size(md.size) : ""]
    .filter(Boolean).join(" · ");
  let body;
  switch (m.type) {
    case "image": {
      const w = md.width ? Math.min(240, md.width) : undefined;
      body = el("a", { href: md.url, target: "_blank", rel: "noopener" },
        el("img", { class: "thumb", src: md.thumb_url || md.url, alt: md.name || "image", width: w, height: w && md.height ? Math.round((md.height * w) / md.width) : undefined }));
      break;
    }
    case "voice":
      body = el("audio", { controls: "", preload: "none", src: md.url });
      break;
    case "video":
      body = el("video", { controls: "", preload: "none", src: md.url, poster: md.thumb_url });
      break;
    default:
      body = el("a", { href: md.url, download: md.name || "" }, "📄 " + (md.name || md.url));
  }
  return el("div", { class: "media" }, body, el("div", { class: "caption" }, caption));
}

function size(n) {
  return n < 1024 ? n + " B" : n < 1 << 20 ? (n / 1024).toFixed(1) + " KB" : (n / (1 << 20)).toFixed(1) + " MB";
}

/** status says how far one of my messages got: sent, delivered (a device acknowledged), read. */
function status(r, m) {
  const others = r.conv.members.filter((u) => u !== user);
  const read = others.filter((u) => (r.receipts[u]?.read || 0) >= m.seq).length;
  const delivered = others.filter((u) => (r.receipts[u]?.delivered || 0) >= m.seq).length;
  if (others.length && read === others.length) return { kind: "read", text: r.conv.kind === "group" ? `read by all` : "✓✓ read" };
  if (r.conv.kind === "group" && read > 0) return { kind: "read-some", text: `read by ${read}/${others.length}` };
  if (others.length && delivered === others.length) return { kind: "delivered", text: "✓✓" };
  if (r.conv.kind === "group" && delivered > 0) return { kind: "delivered-some", text: `✓✓ ${delivered}/${others.length}` };
  return { kind: "sent", text: "✓" };
}

/** markRead tells the service I have read the shown conversation up to its newest message. */
function markRead(r) {
  if (document.visibilityState !== "visible" || !client || client.state !== "connected") return;
  const seq = r.conv.last_seq || 0;
  const mine = r.receipts[user] || { delivered: 0, read: 0 };
  if (seq <= mine.read) return;
  r.receipts[user] = { delivered: Math.max(mine.delivered, seq), read: seq };
  request("chat.read", { conv: r.conv.id, seq }).catch((err) => log({ type: "error", message: "read: " + err }));
}
