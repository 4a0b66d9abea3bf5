/* browser.test.mjs - end-to-end test of the web client in Debian's chromium,
 * driven by playwright-core (never downloads a browser).
 *
 *   node tests/browser/browser.test.mjs http://127.0.0.1:PORT
 *
 * Environment: CHROMIUM (default /usr/bin/chromium), TESSERA_SCREENSHOT
 * (default build/browser-screenshot.png under the repo), EXPECT_SHARDS
 * (checked against WELCOME's n_shards when set), TEST_TIMEOUT_MS (60000).
 * Prints one line per check and `N passed, N failed` last; exits 1 on any
 * failure or when the whole run exceeds the time limit. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const baseUrl = (process.argv[2] || process.env.TESSERA_URL || "").replace(/\/+$/, "");
if (!baseUrl) {
  console.error("usage: node browser.test.mjs http://127.0.0.1:PORT");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOT = path.resolve(repo, process.env.TESSERA_SCREENSHOT || "build/browser-screenshot.png");
const EXPECT_SHARDS = process.env.EXPECT_SHARDS ? Number(process.env.EXPECT_SHARDS) : null;
const LIMIT_MS = Number(process.env.TEST_TIMEOUT_MS || 60000);
const HOLD_MS = 1500;

const started = Date.now();
let passed = 0;
let failed = 0;
let context = null;
let userDataDir = null;

function ok(name, detail = "") {
  passed++;
  console.log(`ok   ${name}${detail ? ` (${detail})` : ""}`);
}
function fail(name, detail) {
  failed++;
  console.log(`FAIL ${name}: ${detail}`);
}
function check(name, cond, detail) {
  if (cond) ok(name, detail);
  else fail(name, detail);
  return cond;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

async function cleanup() {
  if (context) {
    const c = context;
    context = null;
    await Promise.race([c.close().catch(() => {}), sleep(5000)]);
  }
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
}

const watchdog = setTimeout(async () => {
  fail("time limit", `the test did not finish within ${LIMIT_MS / 1000} s`);
  console.log(`${passed} passed, ${failed} failed`);
  await cleanup();
  process.exit(1);
}, LIMIT_MS);

const DIRECTIONS = [
  [["d"], 1, 0],
  [["s"], 0, 1],
  [["a"], -1, 0],
  [["w"], 0, -1],
  [["d", "s"], Math.SQRT1_2, Math.SQRT1_2],
  [["a", "s"], -Math.SQRT1_2, Math.SQRT1_2],
  [["a", "w"], -Math.SQRT1_2, -Math.SQRT1_2],
  [["d", "w"], Math.SQRT1_2, -Math.SQRT1_2],
];

/* How far one can walk from (x, y) along (dx, dy), up to max units, before
 * entering an obstacle (inflated by the entity radius) or leaving the world.
 * Touching an obstacle one is walking away from does not count. */
function freeDistance(w, x, y, dx, dy, max) {
  const m = w.entityRadius + 1;
  const step = 0.5;
  const near = w.obstacles.filter((o) => Math.hypot(o.x - x, o.y - y) < max + o.r + m + 1);
  for (let d = step; d <= max; d += step) {
    const px = x + dx * d;
    const py = y + dy * d;
    if (px < m || py < m || px > w.worldW - m || py > w.worldH - m) return d - step;
    for (const o of near) {
      const now = Math.hypot(o.x - px, o.y - py);
      if (now >= o.r + m) continue;
      const before = Math.hypot(o.x - (px - dx * step), o.y - (py - dy * step));
      if (now < before) return d - step; // walking into it
    }
  }
  return max;
}

/* Picks keys whose straight path of `dist` units from (x, y) is clear:
 * `prefer` (a key list joined) if it is clear, else the first clear of the
 * 8 directions, else the one with the longest clear path. Returns {keys,
 * dx, dy, free} or null. */
function clearDirection(w, x, y, dist, prefer = null) {
  let best = null;
  for (const [keys, dx, dy] of DIRECTIONS) {
    const free = freeDistance(w, x, y, dx, dy, dist);
    const cand = { keys, dx, dy, free, id: keys.join("+") };
    if (free >= dist && cand.id === prefer) return cand;
    if (!best || free > best.free + 1e-9) best = cand;
  }
  return best && best.free > 0 ? best : null;
}

async function hold(page, keys, ms) {
  for (const k of keys) await page.keyboard.down(k);
  const t0 = Date.now();
  await sleep(ms);
  for (const k of keys) await page.keyboard.up(k);
  return Date.now() - t0;
}

async function main() {
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tessera-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 800 },
    timeout: 20000,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10000);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") pageErrors.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on("requestfailed", (r) => {
    if (!r.url().includes("/ws")) pageErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  console.log(`chromium ${context.browser()?.version() ?? ""} ${CHROMIUM}, server ${baseUrl}`);

  // 1. The page and its login form.
  const resp = await page.goto(baseUrl + "/", { waitUntil: "load" });
  check("page loads", resp && resp.status() === 200, `HTTP ${resp && resp.status()}`);
  await page.waitForSelector("#login", { state: "visible" });
  const hasApi = await page.waitForFunction(() => !!window.tessera && !!window.tessera.client).then(() => true, () => false);
  check("app module loaded (window.tessera)", hasApi, "");

  // 2. A refused login shows the server's reason in the form. The account
  // is created first over HTTP, then the form is sent a wrong password.
  const username = `web_${process.pid % 100000}_${Math.floor(Math.random() * 1e4)}`;
  const password = "browser-test-pw";
  const created = await fetch(baseUrl + "/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  }).then((r) => r.status, (e) => String(e));
  const wrong = await fetch(baseUrl + "/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: password + "x" }),
  }).then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }), () => ({}));
  await page.fill("#username", username);
  await page.fill("#password", password + "x");
  await page.click("#login-button");
  const shown = await page
    .waitForFunction(() => document.getElementById("login-error").textContent, null, { timeout: 10000 })
    .then((h) => h.jsonValue(), () => "");
  const formStill = await page.isVisible("#login");
  check("a refused login shows the server's reason", created === 200 && wrong.status === 401 && formStill &&
    shown === (wrong.body && wrong.body.reason),
    `account created: HTTP ${created}; wrong password: HTTP ${wrong.status}, form says "${shown}"`);

  // 3. Log in through the form.
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("#login-button");
  const loggedIn = await page
    .waitForSelector("#login", { state: "hidden", timeout: 10000 })
    .then(() => true, async () => `form still shown: ${await page.textContent("#login-error")}`);
  if (!check("login through the form", loggedIn === true, loggedIn === true ? username : loggedIn)) return;

  // 4. WELCOME and the first state.
  const gotWelcome = await page
    .waitForFunction(() => !!window.tessera.welcome, null, { timeout: 10000 })
    .then(() => true, () => false);
  const status = await page.evaluate(() => window.tessera.client.status);
  if (!check("WELCOME received", gotWelcome, `client status ${status}`)) return;
  const w = await page.evaluate(() => {
    const w = window.tessera.welcome;
    return { ...w, owners: [...w.owners], obstacles: w.obstacles };
  });
  check(
    "WELCOME fields are sane",
    w.version === 1 && w.tickHz > 0 && w.worldW > 0 && w.worldH > 0 && w.cellSize > 0 &&
      w.cellsX * w.cellsY === w.owners.length && w.cellsX * w.cellSize >= w.worldW &&
      w.cellsY * w.cellSize >= w.worldH && w.owners.every((o) => o < w.nShards) &&
      w.aoiRadius > 0 && w.playerSpeed > 0 && (EXPECT_SHARDS === null || w.nShards === EXPECT_SHARDS),
    `entity ${w.entityId}, world ${w.worldW}x${w.worldH}, ${w.cellsX}x${w.cellsY} cells of ${w.cellSize}, ` +
      `${w.nShards} shards, ${w.obstacles.length} obstacles, aoi ${w.aoiRadius}, speed ${w.playerSpeed}, ${w.tickHz} Hz`
  );
  const gotState = await page
    .waitForFunction(() => window.tessera.lastState && window.tessera.lastState.self, null, { timeout: 5000 })
    .then(() => true, () => false);
  if (!check("first STATE holds self", gotState, "")) return;
  const first = await page.evaluate(() => {
    const s = window.tessera.lastState;
    return { tick: s.tick, self: s.self, n: s.entities.size, shard: s.shard };
  });
  check(
    "self is a named player inside the world",
    first.self.kind === 0 && first.self.name === username && first.self.x >= 0 && first.self.y >= 0 &&
      first.self.x < w.worldW && first.self.y < w.worldH && first.shard < w.nShards,
    `${first.self.name} at (${first.self.x.toFixed(2)}, ${first.self.y.toFixed(2)}), shard ${first.shard}, ${first.n} entities`
  );
  // Ticks advance at about tick_hz. A STATE comes every tick while
  // something in view moves, else a keepalive every 5 s (keepalive_s), so
  // the last STATE's tick may lag the server's by up to 5 * tick_hz.
  const t0 = await page.evaluate(() => window.tessera.lastState.tick);
  await sleep(6000);
  const t1 = await page.evaluate(() => window.tessera.lastState.tick);
  const expectTicks = (w.tickHz * 6000) / 1000;
  check("STATE ticks advance at tick_hz (a STATE at least every 5 s)",
    t1 - t0 >= expectTicks - w.tickHz * 5.4 && t1 - t0 <= expectTicks + w.tickHz * 5.4,
    `${t1 - t0} ticks in 6 s`);

  // 5. Movement: hold a key (or two, for a diagonal) along a clear path.
  const before = await page.evaluate(() => window.tessera.lastState.self);
  const dir = clearDirection(w, before.x, before.y, (w.playerSpeed * HOLD_MS * 1.4) / 1000);
  const holdMs = dir ? Math.min(HOLD_MS, (dir.free / 1.4 / w.playerSpeed) * 1000) : 0;
  if (!dir || holdMs < 500) {
    fail("movement", `no clear path from (${before.x}, ${before.y}): longest ${dir ? dir.free : 0} units`);
  } else {
    const heldMs = await hold(page, dir.keys, holdMs);
    await sleep(400); // the stop INPUT is applied and the next STATEs arrive
    const after = await page.evaluate(() => window.tessera.lastState.self);
    const along = (after.x - before.x) * dir.dx + (after.y - before.y) * dir.dy;
    const across = Math.abs((after.x - before.x) * dir.dy - (after.y - before.y) * dir.dx);
    const want = (w.playerSpeed * heldMs) / 1000;
    check(
      `holding '${dir.id}' moves self the right way`,
      along >= want * 0.6 && along <= want * 1.3 && across <= Math.max(2, want * 0.1),
      `moved ${along.toFixed(2)} along, ${across.toFixed(2)} across in ${heldMs} ms from ` +
        `(${before.x.toFixed(1)}, ${before.y.toFixed(1)}); expected about ${want.toFixed(1)} at ${w.playerSpeed} u/s`
    );
    await sleep(300);
    const still = await page.evaluate(() => window.tessera.lastState.self);
    check("self stops when the key is released",
      Math.hypot(still.x - after.x, still.y - after.y) < 0.5,
      `drift ${Math.hypot(still.x - after.x, still.y - after.y).toFixed(3)} in 0.3 s`);
    const ack = await page.evaluate(() => ({
      ackSeq: window.tessera.lastState.ackSeq,
      sent: window.tessera.client.stats.inputsSent,
      latency: window.tessera.client.stats.ackLatencyMs,
    }));
    check("inputs are acknowledged", ack.ackSeq > 0 && ack.ackSeq <= ack.sent && ack.latency !== null &&
      ack.latency < 1000, `ack_seq ${ack.ackSeq} of ${ack.sent} sent, ack latency ${ack.latency?.toFixed(0)} ms`);
  }

  // 6. At least one NPC in view. NPCs are spread over the whole world, so
  // with few of them the area of interest may be empty at first: wait a
  // little, then walk along clear paths (up to ~12 s) until one shows up.
  const npcsInView = () =>
    page.evaluate(() => [...window.tessera.lastState.entities.values()].filter((e) => e.kind === 1).length);
  let npc = await page
    .waitForFunction(
      () => [...window.tessera.lastState.entities.values()].filter((e) => e.kind === 1).length,
      null,
      { timeout: 2000, polling: 100 }
    )
    .then((h) => h.jsonValue(), () => 0);
  let walked = 0;
  let lastDir = null;
  const searchUntil = Date.now() + 12000;
  while (!npc && Date.now() < searchUntil) {
    const me = await page.evaluate(() => window.tessera.lastState.self);
    const d = clearDirection(w, me.x, me.y, w.playerSpeed * 1.2, lastDir);
    if (!d) break;
    lastDir = d.id;
    for (const k of d.keys) await page.keyboard.down(k);
    const until = Date.now() + Math.min(1000, (d.free / w.playerSpeed) * 1000);
    while (!npc && Date.now() < until) {
      await sleep(100);
      npc = await npcsInView();
    }
    for (const k of d.keys) await page.keyboard.up(k);
    walked++;
  }
  // The canvas is drawn (not blank), with the NPC just seen in view.
  const px = await page.evaluate(() => {
    const c = document.getElementById("view");
    const ctx = c.getContext("2d");
    const img = ctx.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    let nonBg = 0;
    let samples = 0;
    const bg = [img[0], img[1], img[2]];
    let self = 0;
    for (let y = 0; y < c.height; y += 3) {
      for (let x = 0; x < c.width; x += 3) {
        const i = (y * c.width + x) * 4;
        samples++;
        colours.add((img[i] << 16) | (img[i + 1] << 8) | img[i + 2]);
        if (Math.abs(img[i] - bg[0]) + Math.abs(img[i + 1] - bg[1]) + Math.abs(img[i + 2] - bg[2]) > 12) nonBg++;
        if (img[i] === 0xff && img[i + 1] === 0xd1 && img[i + 2] === 0x66) self++; // self colour
      }
    }
    return { w: c.width, h: c.height, colours: colours.size, nonBg, samples, self };
  });
  check("canvas is not blank", px.w > 0 && px.colours >= 8 && px.nonBg > px.samples * 0.005 && px.self > 0,
    `${px.w}x${px.h}, ${px.colours} colours, ${((100 * px.nonBg) / px.samples).toFixed(1)}% drawn, ${px.self} self-coloured samples`);

  // Screenshot.
  fs.mkdirSync(path.dirname(SHOT), { recursive: true });
  await page.screenshot({ path: SHOT });
  check("screenshot saved", fs.existsSync(SHOT) && fs.statSync(SHOT).size > 1000, SHOT);

  if (walked) await sleep(300);
  const counts = await page.evaluate(() => {
    const s = window.tessera.lastState;
    const v = [...s.entities.values()];
    const self = s.self;
    const far = v.filter((e) => Math.hypot(e.x - self.x, e.y - self.y) > window.tessera.welcome.aoiRadius + 1);
    return { npcs: v.filter((e) => e.kind === 1).length, players: v.filter((e) => e.kind === 0).length, far: far.length };
  });
  check("at least one NPC in view", npc > 0,
    `${npc} NPCs seen${walked ? ` after ${walked} walks` : ""}; now ${counts.npcs} NPCs, ${counts.players} players`);
  check("entities in view are within the AOI radius", counts.far === 0, `${counts.far} beyond aoi_radius`);

  // 7. The status bar and ping.
  const rtt = await page
    .waitForFunction(() => window.tessera.client.stats.rttMs, null, { timeout: 5000 })
    .then((h) => h.jsonValue(), () => null);
  check("ping RTT measured", rtt !== null && rtt >= 0 && rtt < 1000, `${rtt?.toFixed(1)} ms`);
  await sleep(250);
  const bar = await page.evaluate(() => ({
    conn: document.getElementById("st-conn").textContent,
    tick: document.getElementById("st-tick").textContent,
    shard: document.getElementById("st-shard").textContent,
    count: document.getElementById("st-count").textContent,
    rtt: document.getElementById("st-rtt").textContent,
    ack: document.getElementById("st-ack").textContent,
    visible: !document.getElementById("statusbar").hidden,
  }));
  check("status bar shows the session", bar.visible && bar.conn === "open" && /^\d+$/.test(bar.tick) &&
    /^\d+$/.test(bar.shard) && /^\d+$/.test(bar.count) && /ms$/.test(bar.rtt),
    `${bar.conn} tick ${bar.tick} shard ${bar.shard} in view ${bar.count} ping ${bar.rtt} ack ${bar.ack}`);

  // 7b. Items, inventory and chat (sections 5-7): walk to an item, pick it
  // up with E, see it in the inventory panel, drop it with a click on its
  // slot, and chat through the chat box.
  await itemsAndChat(page, w, username);

  // 8. Automatic reconnect after the connection drops.
  const oldEntity = w.entityId;
  await page.evaluate(() => {
    window.__statuses = [];
    window.tessera.client.on("status", (s) => window.__statuses.push(s.status));
    window.tessera.client._ws.close(4000, "test drop"); // as if the network failed
  });
  const back = await page
    .waitForFunction(
      () => window.__statuses.includes("reconnecting") && window.tessera.client.status === "open" &&
        window.tessera.welcome && window.tessera.lastState && window.tessera.lastState.self &&
        window.tessera.lastState.receivedAt > performance.now() - 500,
      null,
      { timeout: 10000 }
    )
    .then(() => true, () => false);
  const rs = await page.evaluate(() => ({
    statuses: window.__statuses.join(" > "),
    entity: window.tessera.welcome && window.tessera.welcome.entityId,
    self: window.tessera.lastState && window.tessera.lastState.self,
  }));
  check("reconnects automatically after a drop", back && rs.self && rs.self.name === username,
    `${rs.statuses}; entity ${oldEntity} -> ${rs.entity}`);

  // 9. After the token is refused twice (a browser only sees a close before
  // open), the client logs in again by itself and gets back in.
  const relogin = await page.evaluate(async () => {
    const c = window.tessera.client;
    const statuses = [];
    const off = c.on("status", (s) => statuses.push(s.relogin ? `${s.status}(relogin)` : s.status));
    const oldToken = c.token;
    c.token = "not-a-valid-token";
    c._ws.close(4000, "test drop");
    const t0 = performance.now();
    while (performance.now() - t0 < 12000) {
      await new Promise((r) => setTimeout(r, 100));
      if (c.status === "open" && c.token !== "not-a-valid-token" && c.lastState &&
          c.lastState.receivedAt > performance.now() - 300) break;
    }
    off();
    return { statuses: statuses.join(" > "), status: c.status, newToken: c.token !== oldToken &&
      c.token !== "not-a-valid-token", ms: Math.round(performance.now() - t0) };
  });
  check("re-logs in when the token is refused", relogin.status === "open" && relogin.newToken &&
    relogin.statuses.includes("(relogin)"), `${relogin.statuses} in ${relogin.ms} ms`);

  // The reconnected session takes the entity back (section 3) and accepts
  // the client's inputs, whose sequence keeps counting across connections.
  if (relogin.status === "open") {
    const b2 = await page.evaluate(() => ({ self: window.tessera.lastState.self, sent: window.tessera.client.stats.inputsSent }));
    const d2 = clearDirection(w, b2.self.x, b2.self.y, 30);
    if (d2) await hold(page, d2.keys, Math.min(400, (d2.free / w.playerSpeed) * 700));
    await sleep(300);
    const a2 = await page.evaluate(() => ({ self: window.tessera.lastState.self, ackSeq: window.tessera.lastState.ackSeq,
      sent: window.tessera.client.stats.inputsSent }));
    const moved = Math.hypot(a2.self.x - b2.self.x, a2.self.y - b2.self.y);
    check("the reconnected session accepts inputs, sequence continuing", !!d2 &&
      a2.ackSeq >= 1 && a2.ackSeq <= a2.sent && a2.sent > b2.sent && moved > 5,
      `ack_seq ${a2.ackSeq} after ${a2.sent} inputs in all, moved ${moved.toFixed(2)}`);
  }

  // 10. The server answers a refused INPUT with an ERROR record and keeps
  // the session (section 5): out of range, then NaN.
  const errs = await page.evaluate(async () => {
    const c = window.tessera.client;
    const got = [];
    const off = c.on("error", (e) => got.push(e));
    const send = (seq, dx, dy) => {
      const b = new DataView(new ArrayBuffer(14));
      b.setUint8(0, 1);
      b.setUint8(1, 12);
      b.setUint32(2, seq, true);
      b.setFloat32(6, dx, true);
      b.setFloat32(10, dy, true);
      c._ws.send(b.buffer);
    };
    send(0x7fffff00, 2, 0);
    send(0x7fffff01, NaN, 0);
    const t0 = performance.now();
    while (got.length < 2 && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 50));
    off();
    return { got, status: c.status, protocol: c._ws && c._ws.protocol };
  });
  const codes = errs.got.map((e) => `${e.code}:${e.name}`).join(", ");
  check("refused INPUTs come back as ERROR records", codes === "4:out_of_range, 3:not_finite" &&
    errs.status === "open", `${codes || "no ERROR"}; session ${errs.status}`);
  check("server echoes the subprotocol", errs.protocol === "tessera.v1", `"${errs.protocol}"`);

  // 11. Nothing went wrong on the way.
  const st = await page.evaluate(() => window.tessera.client.stats);
  check("no protocol errors or anomalies", st.protocolErrors === 0 && st.anomalies === 0,
    `${st.statesReceived} states, ${st.bytesReceived} bytes, ${st.anomalies} anomalies, ${st.protocolErrors} protocol errors`);
  // Expected noise from the deliberate failures (wrong password, refused
  // token, refused inputs).
  const expected = [
    /Failed to load resource: the server responded with a status of 401/,
    /WebSocket connection to .*token=not-a-valid-token/,
    /tessera: server error [34] /,
  ];
  const unexpectedErrors = pageErrors.filter((e) => !expected.some((re) => re.test(e)));
  check("no page errors or console warnings", unexpectedErrors.length === 0,
    unexpectedErrors.slice(0, 5).join(" | ") || "none");
}

/* The nearest item in view: {id, x, y, itemKind, d} or null. */
async function nearestItemInView(page) {
  return page.evaluate(() => {
    const s = window.tessera.lastState;
    let best = null;
    for (const e of s.entities.values()) {
      if (e.kind !== 2) continue;
      const d = Math.hypot(e.x - s.self.x, e.y - s.self.y);
      if (!best || d < best.d) best = { id: e.id, x: e.x, y: e.y, itemKind: e.itemKind, d };
    }
    return best;
  });
}

async function itemsAndChat(page, w, username) {
  const inv0 = await page
    .waitForFunction(() => window.tessera.inventory, null, { timeout: 5000 })
    .then((h) => h.jsonValue(), () => null);
  check("inventory arrives on entering the world", Array.isArray(inv0) && inv0.length === 32,
    inv0 ? `${inv0.filter(Boolean).length} items carried` : "no INVENTORY");
  const panel = await page.evaluate(() => ({
    visible: !document.getElementById("inventory").hidden,
    slots: document.querySelectorAll("#inv-slots .slot").length,
  }));
  check("inventory panel shows 32 slots", panel.visible && panel.slots === 32, `${panel.slots} slots`);

  // Find an item: look around until one is in view (the default world
  // has a few hundred), then steer to it.
  let item = await nearestItemInView(page);
  let lastDir = null;
  const searchUntil = Date.now() + 30000; // generous: a loaded machine slows the browser
  while (!item && Date.now() < searchUntil) {
    const me = await page.evaluate(() => window.tessera.lastState.self);
    const d = clearDirection(w, me.x, me.y, w.playerSpeed * 1.5, lastDir);
    if (!d) break;
    lastDir = d.id;
    for (const k of d.keys) await page.keyboard.down(k);
    const until = Date.now() + 1500;
    while (!item && Date.now() < until) {
      await sleep(100);
      item = await nearestItemInView(page);
    }
    for (const k of d.keys) await page.keyboard.up(k);
  }
  if (!check("an item lies in view", !!item, item ? `kind ${item.itemKind} at ${item.d.toFixed(1)} units` : "none found")) return;
  const reach = 16 + w.entityRadius;
  const steerUntil = Date.now() + 10000;
  let near = item;
  while (near && near.d > reach - 4 && Date.now() < steerUntil) {
    await page.evaluate(({ x, y }) => {
      const s = window.tessera.lastState.self;
      const dx = x - s.x;
      const dy = y - s.y;
      const l = Math.hypot(dx, dy) || 1;
      window.tessera.client.setHeading(dx / l, dy / l);
    }, near);
    await sleep(60);
    near = (await nearestItemInView(page)) || near;
  }
  await page.evaluate(() => window.tessera.client.setHeading(0, 0));
  await sleep(200);
  near = await nearestItemInView(page);
  if (!check("walked within reach of an item", near && near.d <= reach, near ? `${near.d.toFixed(1)} units` : "lost it")) return;

  // E picks up the nearest item within reach; it leaves the ground only
  // once committed, and the inventory shows it.
  const nResults = await page.evaluate(() => window.tessera.results.length);
  await page.keyboard.press("e");
  const picked = await page
    .waitForFunction((n) => window.tessera.results.length > n && window.tessera.results[window.tessera.results.length - 1],
      nResults, { timeout: 8000 })
    .then((h) => h.jsonValue(), () => null);
  if (!check("E picks the item up (RESULT ok)", picked && picked.ok && picked.action === 1 && picked.entityId === near.id,
    picked ? `${picked.name} ${picked.reason} slot ${picked.slot} kind ${picked.itemKind}` : "no RESULT")) return;
  await sleep(300);
  const after = await page.evaluate((id) => ({
    inv: window.tessera.inventory,
    onGround: window.tessera.lastState.entities.has(id),
    button: (document.querySelector(`#inv-slots .slot[data-slot="${window.tessera.results.at(-1).slot}"]`) || {}).textContent,
  }), near.id);
  const slot = after.inv && after.inv[picked.slot];
  check("the item is in the inventory and gone from the ground",
    slot && slot.itemKind === picked.itemKind && !after.onGround && after.button && after.button.length > 0,
    `slot ${picked.slot}: ${slot ? slot.name : "empty"}, panel "${after.button}", on ground ${after.onGround}`);

  // A click on the slot drops it at the player's feet.
  await page.click(`#inv-slots .slot[data-slot="${picked.slot}"]`);
  const dropped = await page
    .waitForFunction((n) => window.tessera.results.length > n + 1 && window.tessera.results.at(-1), nResults,
      { timeout: 8000 })
    .then((h) => h.jsonValue(), () => null);
  check("a click on the slot drops it (RESULT ok)", dropped && dropped.ok && dropped.action === 2,
    dropped ? `${dropped.name} ${dropped.reason} new entity ${dropped.entityId}` : "no RESULT");
  await sleep(300);
  const back = await page.evaluate((id) => ({
    inv: window.tessera.inventory.filter(Boolean).length,
    onGround: !!id && window.tessera.lastState.entities.has(id),
  }), dropped && dropped.entityId);
  check("the dropped item lies on the ground again", back.onGround && back.inv === inv0.filter(Boolean).length,
    `on ground ${back.onGround}, ${back.inv} items carried`);

  // Chat: Enter opens the box, Enter sends; the line comes back to us.
  const text = `hello from ${username}`;
  await page.keyboard.press("Enter");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
  const heard = await page
    .waitForFunction((t) => window.tessera.chat.find((c) => c.text === t), text, { timeout: 5000 })
    .then((h) => h.jsonValue(), () => null);
  const shown = await page.evaluate(() => document.getElementById("chat-log").textContent);
  check("a chat line is echoed and shown", heard && heard.name === username && shown.includes(text),
    heard ? `"${heard.name}: ${heard.text}"` : "not heard");
}

try {
  await main();
} catch (e) {
  fail("unexpected exception", (e && e.stack) || e);
}
await cleanup();
clearTimeout(watchdog);
console.log(`browser test took ${elapsed()}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
