/* app.js - Tessera's browser client: a login form, then a canvas view of
 * the world around the player, driven by tessera.js. Plain JS, no build.
 *
 * Items lie on the ground (drawn by kind); E (or a click on an item)
 * picks up the nearest one within reach; the inventory panel lists the
 * 32 slots, a click on one drops it; Enter opens the chat box.
 *
 * For tests and debugging, window.tessera = {client, lastState, welcome,
 * inventory, chat, results} is kept current (lastState is the last
 * "state" event of the client; chat and results the recent lines and
 * pickup/drop outcomes, newest last). */
import { TesseraClient, KIND_NPC, KIND_ITEM, INV_SLOTS, itemName } from "./tessera.js";

const $ = (id) => document.getElementById(id);
const canvas = $("view");
const ctx = canvas.getContext("2d");
const form = $("login");
const loginError = $("login-error");
const loginButton = $("login-button");
const statusbar = $("statusbar");
const help = $("help");

const client = new TesseraClient({ baseUrl: location.origin });
const app = { client, lastState: null, welcome: null, inventory: null, chat: [], results: [] };
window.tessera = app;

const COLORS = {
  background: "#10141c",
  outside: "#07090d",
  cellLine: "rgba(150, 170, 200, 0.10)",
  shardBorder: "rgba(255, 255, 255, 0.35)",
  worldBorder: "rgba(255, 209, 102, 0.6)",
  aoi: "rgba(255, 209, 102, 0.35)",
  obstacle: "#4c566a",
  obstacleEdge: "#6b7894",
  npc: "#e07a5f",
  player: "#5fa8e0",
  self: "#ffd166",
  selfEdge: "#ffffff",
  name: "#e5e9f0",
  item: "#c0c8d8",
};
/* Item kinds drawn in their own colour (unknown kinds in COLORS.item). */
const ITEM_COLORS = {
  1: "#e63946",
  2: "#ffd166",
  3: "#4cc9f0",
  4: "#b5179e",
  5: "#f1e3c8",
  6: "#adb5bd",
  7: "#9c6644",
  8: "#80ed99",
};
const REACH = 16; // units beyond the entity radius (the server's pickup reach)
const shardColor = (i, alpha) => `hsla(${(i * 137.5 + 200) % 360}, 65%, 55%, ${alpha})`;

/* ---------------- interpolation ---------------- */
// id -> {kind, name, px, py (previous), cx, cy (current)}
let view = new Map();
let lastStateAt = 0;
let tickMs = 50;
const SNAP_DISTANCE = 20; // units: larger jumps are drawn without sliding

function alphaNow(t) {
  return Math.max(0, Math.min(1, (t - lastStateAt) / tickMs));
}

function onState(s) {
  app.lastState = s;
  const t = performance.now();
  const a = alphaNow(t);
  const next = new Map();
  for (const e of s.entities.values()) {
    const old = s.reset ? null : view.get(e.id);
    let px = e.x;
    let py = e.y;
    if (old) {
      // Start the new segment where the entity is drawn right now.
      const ix = old.px + (old.cx - old.px) * a;
      const iy = old.py + (old.cy - old.py) * a;
      if (Math.hypot(e.x - ix, e.y - iy) < SNAP_DISTANCE) {
        px = ix;
        py = iy;
      }
    }
    next.set(e.id, {
      id: e.id,
      kind: e.kind,
      name: e.name,
      itemKind: e.itemKind,
      quantity: e.quantity,
      px,
      py,
      cx: e.x,
      cy: e.y,
    });
  }
  view = next;
  lastStateAt = t;
}

/* ---------------- rendering ---------------- */
let cssW = 0;
let cssH = 0;
function resize() {
  const dpr = window.devicePixelRatio || 1;
  cssW = window.innerWidth;
  cssH = window.innerHeight;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
}
window.addEventListener("resize", resize);
resize();

function draw(t) {
  ctx.fillStyle = COLORS.background;
  ctx.fillRect(0, 0, cssW, cssH);
  const w = app.welcome;
  if (!w) {
    drawIdle(t);
    return;
  }
  const a = alphaNow(t);
  const pos = (v) => [v.px + (v.cx - v.px) * a, v.py + (v.cy - v.py) * a];
  const selfView = view.get(w.entityId);
  const [camX, camY] = selfView ? pos(selfView) : [w.worldW / 2, w.worldH / 2];
  // The AOI circle fills about 80% of the smaller side (status bar excluded).
  const usableH = cssH - 28;
  const scale = Math.min(cssW, usableH) / (2 * w.aoiRadius * 1.25);
  const ox = cssW / 2 - camX * scale;
  const oy = usableH / 2 - camY * scale;
  const sx = (x) => ox + x * scale;
  const sy = (y) => oy + y * scale;
  screenToWorld = (px, py) => [(px - ox) / scale, (py - oy) / scale];

  // Outside the world.
  ctx.fillStyle = COLORS.outside;
  ctx.fillRect(0, 0, cssW, cssH);
  ctx.fillStyle = COLORS.background;
  ctx.fillRect(sx(0), sy(0), w.worldW * scale, w.worldH * scale);

  // Region cells tinted by owning shard, cell lines, shard borders.
  const cs = w.cellSize;
  const x0 = Math.max(0, Math.floor((camX - cssW / 2 / scale) / cs));
  const x1 = Math.min(w.cellsX - 1, Math.floor((camX + cssW / 2 / scale) / cs));
  const y0 = Math.max(0, Math.floor((camY - usableH / 2 / scale) / cs));
  const y1 = Math.min(w.cellsY - 1, Math.floor((camY + cssH / scale) / cs));
  const owner = (cx, cy) => w.owners[cy * w.cellsX + cx];
  for (let cy = y0; cy <= y1; cy++) {
    for (let cx = x0; cx <= x1; cx++) {
      ctx.fillStyle = shardColor(owner(cx, cy), 0.07);
      ctx.fillRect(sx(cx * cs), sy(cy * cs), cs * scale, cs * scale);
    }
  }
  ctx.lineWidth = 1;
  ctx.strokeStyle = COLORS.cellLine;
  ctx.beginPath();
  for (let cx = x0; cx <= x1 + 1; cx++) {
    ctx.moveTo(sx(cx * cs), sy(y0 * cs));
    ctx.lineTo(sx(cx * cs), sy((y1 + 1) * cs));
  }
  for (let cy = y0; cy <= y1 + 1; cy++) {
    ctx.moveTo(sx(x0 * cs), sy(cy * cs));
    ctx.lineTo(sx((x1 + 1) * cs), sy(cy * cs));
  }
  ctx.stroke();
  ctx.lineWidth = 2;
  ctx.strokeStyle = COLORS.shardBorder;
  ctx.setLineDash([8, 6]);
  ctx.beginPath();
  for (let cy = y0; cy <= y1; cy++) {
    for (let cx = x0; cx <= x1; cx++) {
      if (cx + 1 < w.cellsX && owner(cx, cy) !== owner(cx + 1, cy)) {
        ctx.moveTo(sx((cx + 1) * cs), sy(cy * cs));
        ctx.lineTo(sx((cx + 1) * cs), sy((cy + 1) * cs));
      }
      if (cy + 1 < w.cellsY && owner(cx, cy) !== owner(cx, cy + 1)) {
        ctx.moveTo(sx(cx * cs), sy((cy + 1) * cs));
        ctx.lineTo(sx((cx + 1) * cs), sy((cy + 1) * cs));
      }
    }
  }
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = COLORS.worldBorder;
  ctx.strokeRect(sx(0), sy(0), w.worldW * scale, w.worldH * scale);

  // Shard labels at the centre of visible cells.
  ctx.font = "11px ui-monospace, monospace";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  for (let cy = y0; cy <= y1; cy++) {
    for (let cx = x0; cx <= x1; cx++) {
      ctx.fillStyle = shardColor(owner(cx, cy), 0.5);
      ctx.fillText(`cell ${cx},${cy} · shard ${owner(cx, cy)}`, sx(cx * cs) + 6, sy(cy * cs) + 6);
    }
  }

  // Obstacles.
  const viewR = Math.hypot(cssW, cssH) / scale;
  ctx.lineWidth = 2;
  for (const o of w.obstacles) {
    if (Math.abs(o.x - camX) > viewR + o.r || Math.abs(o.y - camY) > viewR + o.r) continue;
    ctx.beginPath();
    ctx.arc(sx(o.x), sy(o.y), o.r * scale, 0, Math.PI * 2);
    ctx.fillStyle = COLORS.obstacle;
    ctx.fill();
    ctx.strokeStyle = COLORS.obstacleEdge;
    ctx.stroke();
  }

  // Area of interest.
  ctx.beginPath();
  ctx.arc(sx(camX), sy(camY), w.aoiRadius * scale, 0, Math.PI * 2);
  ctx.fillStyle = "rgba(255, 209, 102, 0.03)";
  ctx.fill();
  ctx.setLineDash([4, 6]);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = COLORS.aoi;
  ctx.stroke();
  ctx.setLineDash([]);

  // Entities: NPCs first, then players, then self on top.
  const r = w.entityRadius * scale;
  const order = [...view.values()].sort(
    (p, q) => rank(p, w.entityId) - rank(q, w.entityId)
  );
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  for (const v of order) {
    const [x, y] = pos(v);
    const px = sx(x);
    const py = sy(y);
    if (px < -50 || py < -50 || px > cssW + 50 || py > cssH + 50) continue;
    const isSelf = v.id === w.entityId;
    ctx.beginPath();
    if (v.kind === KIND_ITEM) {
      drawItem(v, px, py, r);
      continue;
    }
    if (v.kind === KIND_NPC) {
      ctx.arc(px, py, r * 0.7, 0, Math.PI * 2);
      ctx.fillStyle = COLORS.npc;
      ctx.fill();
      continue;
    }
    ctx.arc(px, py, r, 0, Math.PI * 2);
    ctx.fillStyle = isSelf ? COLORS.self : COLORS.player;
    ctx.fill();
    if (isSelf) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = COLORS.selfEdge;
      ctx.stroke();
      const [hx, hy] = client.heading;
      if (hx || hy) {
        ctx.beginPath();
        ctx.moveTo(px, py);
        ctx.lineTo(px + hx * r * 2, py + hy * r * 2);
        ctx.stroke();
      }
    }
    ctx.font = isSelf ? "bold 13px system-ui, sans-serif" : "12px system-ui, sans-serif";
    ctx.fillStyle = isSelf ? COLORS.self : COLORS.name;
    ctx.fillText(v.name || `#${v.id}`, px, py - r - 4);
  }

  drawMinimap(w, camX, camY);

  if (client.status !== "open") {
    ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
    ctx.fillRect(0, 0, cssW, cssH);
    ctx.font = "bold 20px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = COLORS.self;
    ctx.fillText(statusText(), cssW / 2, usableH / 2 - 60);
  }
}

/* The whole world in the top-right corner: cells tinted by shard, shard
 * borders, obstacles, and where the player is. The static part is drawn
 * once per WELCOME. */
const MINIMAP = 180;
let minimap = null; // {canvas, welcome}
function buildMinimap(w) {
  const c = document.createElement("canvas");
  const k = MINIMAP / Math.max(w.worldW, w.worldH);
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.ceil(w.worldW * k * dpr);
  c.height = Math.ceil(w.worldH * k * dpr);
  const g = c.getContext("2d");
  g.scale(dpr, dpr);
  const cs = w.cellSize * k;
  for (let cy = 0; cy < w.cellsY; cy++) {
    for (let cx = 0; cx < w.cellsX; cx++) {
      g.fillStyle = shardColor(w.owners[cy * w.cellsX + cx], 0.3);
      g.fillRect(cx * cs, cy * cs, cs, cs);
    }
  }
  g.strokeStyle = "rgba(255, 255, 255, 0.7)";
  g.lineWidth = 1;
  g.beginPath();
  for (let cy = 0; cy < w.cellsY; cy++) {
    for (let cx = 0; cx < w.cellsX; cx++) {
      const o = w.owners[cy * w.cellsX + cx];
      if (cx + 1 < w.cellsX && o !== w.owners[cy * w.cellsX + cx + 1]) {
        g.moveTo((cx + 1) * cs, cy * cs);
        g.lineTo((cx + 1) * cs, (cy + 1) * cs);
      }
      if (cy + 1 < w.cellsY && o !== w.owners[(cy + 1) * w.cellsX + cx]) {
        g.moveTo(cx * cs, (cy + 1) * cs);
        g.lineTo((cx + 1) * cs, (cy + 1) * cs);
      }
    }
  }
  g.stroke();
  g.fillStyle = "rgba(200, 210, 230, 0.55)";
  for (const o of w.obstacles) {
    g.beginPath();
    g.arc(o.x * k, o.y * k, Math.max(0.8, o.r * k), 0, Math.PI * 2);
    g.fill();
  }
  return { canvas: c, welcome: w, k, w: w.worldW * k, h: w.worldH * k };
}

function drawMinimap(w, camX, camY) {
  if (!minimap || minimap.welcome !== w) minimap = buildMinimap(w);
  const m = minimap;
  const x0 = cssW - m.w - 12;
  const y0 = 12;
  ctx.fillStyle = "rgba(8, 10, 16, 0.75)";
  ctx.fillRect(x0 - 4, y0 - 4, m.w + 8, m.h + 8);
  ctx.drawImage(m.canvas, x0, y0, m.w, m.h);
  ctx.strokeStyle = "rgba(255, 209, 102, 0.6)";
  ctx.lineWidth = 1;
  ctx.strokeRect(x0, y0, m.w, m.h);
  ctx.beginPath();
  ctx.arc(x0 + camX * m.k, y0 + camY * m.k, Math.max(3, w.aoiRadius * m.k), 0, Math.PI * 2);
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(x0 + camX * m.k, y0 + camY * m.k, 2.5, 0, Math.PI * 2);
  ctx.fillStyle = COLORS.self;
  ctx.fill();
}

function rank(v, selfId) {
  if (v.id === selfId) return 2;
  if (v.kind === KIND_ITEM) return -1;
  return v.kind === KIND_NPC ? 0 : 1;
}

/* An item: a diamond in its kind's colour, its name and quantity below. */
function drawItem(v, px, py, r) {
  const d = Math.max(4, r * 0.8);
  ctx.moveTo(px, py - d);
  ctx.lineTo(px + d, py);
  ctx.lineTo(px, py + d);
  ctx.lineTo(px - d, py);
  ctx.closePath();
  ctx.fillStyle = ITEM_COLORS[v.itemKind] || COLORS.item;
  ctx.fill();
  ctx.lineWidth = 1;
  ctx.strokeStyle = "rgba(0, 0, 0, 0.6)";
  ctx.stroke();
  if (nearestItem() === v) {
    ctx.beginPath();
    ctx.arc(px, py, d + 4, 0, Math.PI * 2);
    ctx.strokeStyle = COLORS.self;
    ctx.stroke();
  }
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = COLORS.name;
  ctx.textBaseline = "top";
  ctx.fillText(v.quantity > 1 ? `${v.name} x${v.quantity}` : v.name, px, py + d + 2);
  ctx.textBaseline = "bottom";
}

/* ---------------- items, inventory, chat ---------------- */
let screenToWorld = null; // set by draw(): canvas CSS pixels -> world units
const invSlots = $("inv-slots");
const invNote = $("inv-note");
const chatBox = $("chat");
const chatLog = $("chat-log");
const chatInput = $("chat-input");
const CHAT_LINES = 50;

/* The item within reach nearest the player, or null. */
function nearestItem() {
  const w = app.welcome;
  const self = w && view.get(w.entityId);
  if (!self) return null;
  let best = null;
  let bestD = REACH + w.entityRadius;
  for (const v of view.values()) {
    if (v.kind !== KIND_ITEM) continue;
    const d = Math.hypot(v.cx - self.cx, v.cy - self.cy);
    if (d <= bestD) {
      best = v;
      bestD = d;
    }
  }
  return best;
}

function pickUp(v) {
  if (!v) {
    invNote.textContent = "nothing within reach";
    return;
  }
  if (client.pickup(v.id) != null) invNote.textContent = `picking up ${v.name}...`;
}

canvas.addEventListener("click", (ev) => {
  if (!screenToWorld || !app.welcome) return;
  const [x, y] = screenToWorld(ev.clientX, ev.clientY);
  let hit = null;
  let hitD = 12;
  for (const v of view.values()) {
    const d = Math.hypot(v.cx - x, v.cy - y);
    if (v.kind === KIND_ITEM && d < hitD) {
      hit = v;
      hitD = d;
    }
  }
  if (hit) pickUp(hit);
});

function renderInventory(slots) {
  invSlots.textContent = "";
  for (let i = 0; i < INV_SLOTS; i++) {
    const s = slots ? slots[i] : null;
    const b = document.createElement("button");
    b.type = "button";
    b.className = "slot" + (s ? " full" : "");
    b.dataset.slot = String(i);
    if (s) {
      b.style.setProperty("--item", ITEM_COLORS[s.itemKind] || COLORS.item);
      b.textContent = s.quantity > 1 ? `${s.name} x${s.quantity}` : s.name;
      b.title = `drop ${s.name}`;
      b.addEventListener("click", () => {
        if (client.drop(i) != null) invNote.textContent = `dropping ${s.name}...`;
        b.blur();
      });
    } else {
      b.disabled = true;
    }
    invSlots.appendChild(b);
  }
}

function addChatLine(line, cls) {
  app.chat.push(line);
  if (app.chat.length > CHAT_LINES) app.chat.shift();
  const div = document.createElement("div");
  div.className = "line" + (cls ? " " + cls : "");
  if (line.name) {
    const who = document.createElement("b");
    who.textContent = line.name + ": ";
    div.appendChild(who);
  }
  div.appendChild(document.createTextNode(line.text));
  chatLog.appendChild(div);
  while (chatLog.childElementCount > CHAT_LINES) chatLog.firstElementChild.remove();
  chatLog.scrollTop = chatLog.scrollHeight;
}

client.on("inventory", (e) => {
  app.inventory = e.slots;
  renderInventory(e.slots);
});
client.on("chat", (c) => addChatLine(c));
client.on("result", (r) => {
  app.results.push(r);
  if (app.results.length > 50) app.results.shift();
  const what = r.itemKind ? itemName(r.itemKind) : "item";
  const verb = r.action === 1 ? "picked up" : "dropped";
  invNote.textContent = r.ok ? `${verb} ${what}` : `${r.name}: ${r.reason}`;
});

chatInput.addEventListener("keydown", (ev) => {
  ev.stopPropagation(); // typing is not walking
  if (ev.key === "Escape") {
    chatInput.value = "";
    chatInput.blur();
  } else if (ev.key === "Enter") {
    ev.preventDefault();
    const text = chatInput.value.trim();
    chatInput.value = "";
    chatInput.blur();
    if (!text) return;
    try {
      client.say(text);
    } catch (e) {
      addChatLine({ text: e.message }, "error");
    }
  }
});

function drawIdle(t) {
  // A slowly drifting grid behind the login form.
  const step = 48;
  const off = (t / 80) % step;
  ctx.strokeStyle = "rgba(150, 170, 200, 0.07)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let x = -step + off; x < cssW; x += step) {
    ctx.moveTo(x, 0);
    ctx.lineTo(x, cssH);
  }
  for (let y = -step + off; y < cssH; y += step) {
    ctx.moveTo(0, y);
    ctx.lineTo(cssW, y);
  }
  ctx.stroke();
  if (client.status === "connecting" || client.status === "reconnecting") {
    ctx.font = "bold 18px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = COLORS.self;
    ctx.fillText(statusText(), cssW / 2, cssH / 2);
  }
}

function frame(t) {
  draw(t);
  updateStatusBar(t);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

/* ---------------- status bar ---------------- */
let lastStatus = { status: "idle" };
let reconnectAt = 0;
let lastBarUpdate = 0;

function statusText() {
  const s = lastStatus;
  if (s.status === "reconnecting") {
    const left = Math.max(0, (reconnectAt - performance.now()) / 1000);
    const why = s.code ? ` (closed ${s.code}${s.reason ? ": " + s.reason : ""})` : "";
    return `reconnecting in ${left.toFixed(1)} s, attempt ${s.attempt}${why}`;
  }
  if (s.status === "closed") return `disconnected${s.reason ? ": " + s.reason : ""}`;
  return s.status;
}

const fmtMs = (v) => (v == null ? "-" : `${v.toFixed(0)} ms`);

function updateStatusBar(t) {
  if (t - lastBarUpdate < 200) return;
  lastBarUpdate = t;
  const conn = $("st-conn");
  conn.textContent = statusText();
  conn.className = "conn " + lastStatus.status;
  const s = app.lastState;
  $("st-tick").textContent = s ? s.tick : "-";
  $("st-shard").textContent = s ? s.shard : "-";
  $("st-count").textContent = s ? `${s.entities.size - (s.self ? 1 : 0)}` : "-";
  $("st-rtt").textContent = fmtMs(client.stats.rttMs);
  $("st-ack").textContent = fmtMs(client.stats.ackLatencyMs);
  $("st-pos").textContent = s && s.self ? `${s.self.x.toFixed(1)}, ${s.self.y.toFixed(1)}` : "-";
  const st = client.stats;
  const notes = [];
  if (st.reconnects) notes.push(`reconnects ${st.reconnects}`);
  if (st.anomalies) notes.push(`anomalies ${st.anomalies}`);
  if (st.protocolErrors) notes.push(`protocol errors ${st.protocolErrors}`);
  if (lastError && t - lastError.at < 5000) notes.push(`server: ${lastError.name} ${lastError.reason}`);
  $("st-notice").textContent = notes.join(" · ");
}

/* ---------------- client events ---------------- */
let lastError = null;
client.on("welcome", (w) => {
  app.welcome = w;
  tickMs = 1000 / w.tickHz;
  view = new Map();
});
client.on("state", onState);
client.on("status", (s) => {
  lastStatus = s;
  if (s.status === "reconnecting") reconnectAt = performance.now() + s.delayMs;
  if (s.status === "closed" && s.code === 4001) {
    // The stored credentials were refused: back to the login form.
    showLogin(s.reason);
  }
});
client.on("error", (e) => {
  lastError = { ...e, at: performance.now() };
  console.warn("tessera: server error", e.code, e.name, e.reason);
});
client.on("anomaly", (a) => console.warn("tessera: protocol anomaly:", a.message));
client.on("protocolError", (a) => console.error("tessera: protocol error:", a.message));

setInterval(() => {
  if (client.status === "open") client.ping();
}, 2000);

/* ---------------- login ---------------- */
function showLogin(message) {
  form.hidden = false;
  statusbar.hidden = true;
  help.hidden = true;
  $("inventory").hidden = true;
  chatBox.hidden = true;
  loginButton.disabled = false;
  loginError.textContent = message || "";
}

try {
  const saved = localStorage.getItem("tessera.username");
  if (saved) $("username").value = saved;
} catch {
  /* storage unavailable */
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  loginButton.disabled = true;
  loginError.textContent = "";
  try {
    await client.login(username, password);
  } catch (e) {
    loginButton.disabled = false;
    loginError.textContent = e.message;
    return;
  }
  try {
    localStorage.setItem("tessera.username", username);
  } catch {
    /* storage unavailable */
  }
  form.hidden = true;
  statusbar.hidden = false;
  help.hidden = false;
  $("inventory").hidden = false;
  chatBox.hidden = false;
  renderInventory(null);
  $("st-user").textContent = client.username;
  document.activeElement && document.activeElement.blur();
  client.connect();
});

/* ---------------- keyboard ---------------- */
const KEYS = {
  KeyW: [0, -1],
  ArrowUp: [0, -1],
  KeyS: [0, 1],
  ArrowDown: [0, 1],
  KeyA: [-1, 0],
  ArrowLeft: [-1, 0],
  KeyD: [1, 0],
  ArrowRight: [1, 0],
};
const held = new Set();

function updateHeading() {
  let dx = 0;
  let dy = 0;
  for (const k of held) {
    dx += KEYS[k][0];
    dy += KEYS[k][1];
  }
  dx = Math.sign(dx);
  dy = Math.sign(dy);
  const len = Math.hypot(dx, dy);
  client.setHeading(len ? dx / len : 0, len ? dy / len : 0);
}

function keyCode(ev) {
  if (KEYS[ev.code]) return ev.code;
  const k = (ev.key || "").toLowerCase();
  const byKey = { w: "KeyW", a: "KeyA", s: "KeyS", d: "KeyD" };
  return byKey[k] || (KEYS[ev.key] ? ev.key : null);
}

window.addEventListener("keydown", (ev) => {
  if (!form.hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (document.activeElement === chatInput) return;
  if (ev.key === "Enter") {
    ev.preventDefault();
    held.clear();
    updateHeading();
    chatInput.focus();
    return;
  }
  if (ev.code === "KeyE" || (ev.key || "").toLowerCase() === "e") {
    ev.preventDefault();
    if (!ev.repeat) pickUp(nearestItem());
    return;
  }
  const k = keyCode(ev);
  if (!k) return;
  ev.preventDefault();
  held.add(k);
  updateHeading();
});
window.addEventListener("keyup", (ev) => {
  const k = keyCode(ev);
  if (!k) return;
  held.delete(k);
  updateHeading();
});
window.addEventListener("blur", () => {
  held.clear();
  updateHeading();
});
