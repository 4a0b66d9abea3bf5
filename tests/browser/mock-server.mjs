/* mock-server.mjs - a tiny stand-in for `tessera serve`, for working on
 * the web client without the C server: serves web/, /healthz, /api/login
 * (any valid name/password), and /ws with WELCOME and STATEs (each tick
 * with news, else one every 5 s) for a toy world (NPCs wander, players move
 * by INPUT, AOI radius 100, two shards split at x = world_w / 2). Written from docs/protocol.md.
 * Not a conformance reference: the real server is.
 *
 *   node tests/browser/mock-server.mjs [--port 8080] [--npcs 200] [--web-root DIR]
 */
import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as W from "./wire.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf("--" + name);
  return i >= 0 ? args[i + 1] : def;
};
const PORT = Number(arg("port", 8080));
const WEB_ROOT = path.resolve(arg("web-root", path.join(here, "../../web")));
const N_NPCS = Number(arg("npcs", 200));

const WORLD = 2048, CELL = 256, CELLS = WORLD / CELL, HZ = 20, AOI = 100;
const KEEPALIVE_S = 5; // the server's default keepalive_s
const SPEED = 50, NPC_SPEED = 20, RADIUS = 4;
const owners = Array.from({ length: CELLS * CELLS }, (_, i) => ((i % CELLS) < CELLS / 2 ? 0 : 1));
const obstacles = [];
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
for (let i = 0; i < 150; i++) obstacles.push({ x: rnd() * WORLD, y: rnd() * WORLD, r: 6 + rnd() * 18 });

let nextId = 1, tick = 0;
const entities = new Map(); // id -> {id, kind, x, y, hx, hy, name}
for (let i = 0; i < N_NPCS; i++) {
  const id = nextId++;
  const a = rnd() * Math.PI * 2;
  entities.set(id, { id, kind: 1, x: rnd() * WORLD, y: rnd() * WORLD, hx: Math.cos(a), hy: Math.sin(a), name: "" });
}
const q = (v) => Math.round(v * 16);
const blocked = (x, y) =>
  x < RADIUS || y < RADIUS || x > WORLD - RADIUS || y > WORLD - RADIUS ||
  obstacles.some((o) => Math.hypot(o.x - x, o.y - y) < o.r + RADIUS);

const sessions = new Set();
function frame(opcode, payload) {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n])
    : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
      : (() => { const b = Buffer.alloc(10); b[0] = 0x80 | opcode; b[1] = 127; b.writeBigUInt64BE(BigInt(n), 2); return b; })();
  return Buffer.concat([head, Buffer.from(payload)]);
}

function onInput(s, body) {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.length !== 12) return s.errors.push([2, "malformed"]);
  const seq = dv.getUint32(0, true), dx = dv.getFloat32(4, true), dy = dv.getFloat32(8, true);
  if (!s.welcomed) return s.errors.push([8, "not in world"]);
  if (!Number.isFinite(dx) || !Number.isFinite(dy)) return s.errors.push([3, "not finite"]);
  if (Math.hypot(dx, dy) > 1.001) return s.errors.push([4, "out of range"]);
  if (seq <= s.ack) return s.errors.push([6, "stale seq"]);
  const e = entities.get(s.entityId);
  e.hx = dx; e.hy = dy; s.ack = seq;
}

function parseFrames(s, sock) {
  while (s.buf.length >= 2) {
    const b = s.buf;
    const op = b[0] & 15;
    let len = b[1] & 127, off = 2;
    if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); off = 10; }
    if (b.length < off + 4 + len) return;
    const mask = b.subarray(off, off + 4);
    const data = Buffer.from(b.subarray(off + 4, off + 4 + len));
    for (let i = 0; i < len; i++) data[i] ^= mask[i & 3];
    s.buf = b.subarray(off + 4 + len);
    if (op === 8) { sock.end(frame(8, data.subarray(0, 2))); sessions.delete(s); return; }
    if (op === 9) { sock.write(frame(10, data)); continue; }
    if (op !== 2) continue;
    let p = 0;
    while (p < data.length) {
      const kind = data[p++];
      let blen = 0, shift = 0, c;
      do { c = data[p++]; blen |= (c & 127) << shift; shift += 7; } while (c & 128);
      const body = data.subarray(p, p + blen);
      p += blen;
      if (kind === 1) onInput(s, body);
      else if (kind === 2) s.out.push(W.record(0x83, W.pongBody(body.readUInt32LE(0), tick)));
      else s.errors.push([1, "unknown kind"]);
    }
  }
}

function upgrade(req, sock) {
  const url = new URL(req.url, "http://x");
  const token = url.searchParams.get("token") || "";
  const name = token.startsWith("mock.") ? token.slice(5) : null;
  if (url.pathname !== "/ws" || !name) {
    sock.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\nConnection: close\r\n\r\ninvalid token");
    return;
  }
  const accept = crypto.createHash("sha1")
    .update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: tessera.v1\r\n\r\n`);
  const id = nextId++;
  let x, y;
  do { x = WORLD / 2 - 200 + rnd() * 400; y = WORLD / 2 - 200 + rnd() * 400; } while (blocked(x, y));
  entities.set(id, { id, kind: 0, x, y, hx: 0, hy: 0, name });
  const s = { sock, entityId: id, buf: Buffer.alloc(0), out: [], errors: [], ack: 0, sentAck: 0, welcomed: true,
    slots: new Array(1024).fill(null), sent: new Map(), reset: true };
  sessions.add(s);
  sock.write(frame(2, W.record(0x81, W.welcomeBody({
    entityId: id, tick, tickHz: HZ, worldW: WORLD, worldH: WORLD, cellSize: CELL, nShards: 2,
    aoiRadius: AOI, entityRadius: RADIUS, playerSpeed: SPEED, cellsX: CELLS, cellsY: CELLS,
    owners, obstacles,
  }))));
  sock.on("data", (d) => { s.buf = Buffer.concat([s.buf, d]); parseFrames(s, sock); });
  const bye = () => { sessions.delete(s); entities.delete(id); };
  sock.on("close", bye);
  sock.on("error", bye);
}

function step() {
  tick++;
  for (const e of entities.values()) {
    const sp = e.kind ? NPC_SPEED : SPEED;
    if (e.kind && rnd() < 0.02) { const a = rnd() * Math.PI * 2; e.hx = Math.cos(a); e.hy = Math.sin(a); }
    const nx = e.x + e.hx * sp / HZ, ny = e.y + e.hy * sp / HZ;
    if (!blocked(nx, ny)) { e.x = nx; e.y = ny; } else if (e.kind) { e.hx = -e.hx; e.hy = -e.hy; }
  }
  for (const s of sessions) {
    const me = entities.get(s.entityId);
    const near = [...entities.values()]
      .map((e) => [e, Math.hypot(e.x - me.x, e.y - me.y)])
      .filter(([, d]) => d <= AOI).sort((a, b) => a[1] - b[1]).slice(0, 128).map(([e]) => e);
    const want = new Set(near.map((e) => e.id));
    const st = { tick, ackSeq: s.ack, flags: s.reset ? 1 : 0, shard: me.x < WORLD / 2 ? 0 : 1,
      leaves: [], enters: [], deltas: new Map() };
    if (s.reset) { s.slots.fill(null); s.sent.clear(); s.reset = false; }
    for (const [eid, slot] of s.sent) {
      if (!want.has(eid)) { st.leaves.push(slot); s.slots[slot] = null; s.sent.delete(eid); }
    }
    for (const e of near) {
      const slot = s.sent.get(e.id);
      if (slot === undefined) {
        const free = s.slots.indexOf(null);
        s.slots[free] = { id: e.id, xq: q(e.x), yq: q(e.y) };
        s.sent.set(e.id, free);
        st.enters.push({ slot: free, id: e.id, kind: e.kind, xq: q(e.x), yq: q(e.y), name: e.name });
      } else {
        const v = s.slots[slot], dx = q(e.x) - v.xq, dy = q(e.y) - v.yq;
        if (dx || dy) {
          st.deltas.set(slot, Math.abs(dx) <= 127 && Math.abs(dy) <= 127 ? [dx, dy] : { abs: [q(e.x), q(e.y)] });
          v.xq = q(e.x); v.yq = q(e.y);
        }
      }
    }
    const recs = s.errors.splice(0, 4).map(([c, r]) => W.record(0x84, W.errorBody(c, r)));
    s.errors.length = 0;
    recs.push(...s.out.splice(0));
    // Like the server: a STATE with nothing to tell is skipped, but for a
    // keepalive every KEEPALIVE_S seconds.
    const news = recs.length || st.flags || st.leaves.length || st.enters.length ||
      st.deltas.size || s.ack !== s.sentAck;
    if (!news && tick % (HZ * KEEPALIVE_S) !== s.entityId % (HZ * KEEPALIVE_S)) continue;
    s.sentAck = s.ack;
    recs.push(W.record(0x82, W.stateBody(st)));
    s.sock.write(frame(2, W.concat(...recs)));
  }
}
setInterval(step, 1000 / HZ);

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png" };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/healthz") return res.end("ok");
  if (url.pathname === "/api/login" && req.method === "POST") {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      let j;
      try { j = JSON.parse(body); } catch { j = null; }
      res.setHeader("Content-Type", "application/json");
      if (!j || !/^[A-Za-z0-9_-]{3,24}$/.test(j.username || "") || (j.password || "").length < 6) {
        res.statusCode = 400;
        return res.end(JSON.stringify({ error: "bad_request", reason: "invalid username or password" }));
      }
      res.end(JSON.stringify({ token: "mock." + j.username, token_type: "Bearer", expires_in: 3600, account_id: 1, username: j.username }));
    });
    return;
  }
  const rel = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
  const file = path.join(WEB_ROOT, path.normalize(rel));
  if (!file.startsWith(WEB_ROOT) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.statusCode = 404;
    return res.end("not found");
  }
  res.setHeader("Content-Type", TYPES[path.extname(file)] || "application/octet-stream");
  res.end(fs.readFileSync(file));
});
server.on("upgrade", upgrade);
server.listen(PORT, "127.0.0.1", () => console.log(`mock tessera on http://127.0.0.1:${PORT}`));
process.on("SIGTERM", () => process.exit(0));
