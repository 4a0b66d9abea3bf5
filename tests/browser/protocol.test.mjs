/* protocol.test.mjs - unit test of web/tessera.js in Node (no server, no
 * browser): decoding per docs/protocol.md against the independent encoder
 * in wire.mjs, the slot table, INPUT/PING encoding, and the client's
 * session logic (inputs, acks, pings, reconnect, re-login) over a fake
 * WebSocket. Prints `N passed, N failed` last; exits 1 on any failure. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import path from "node:path";
import * as W from "./wire.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const T = await import(path.join(here, "../../web/tessera.js"));

let passed = 0;
let failed = 0;
async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${(e && e.stack) || e}`);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const WELCOME = {
  entityId: 42,
  tick: 100,
  tickHz: 20,
  worldW: 2048,
  worldH: 1024,
  cellSize: 256,
  nShards: 2,
  aoiRadius: 100,
  entityRadius: 4,
  playerSpeed: 50,
  cellsX: 8,
  cellsY: 4,
  owners: Array.from({ length: 32 }, (_, i) => (i % 8 < 4 ? 0 : 1)),
  obstacles: [
    { x: 10.5, y: 20.25, r: 3 },
    { x: 500, y: 600, r: 12.5 },
  ],
};
const welcomeMsg = () => W.record(0x81, W.welcomeBody(WELCOME));

/* ---------------- decoding ---------------- */

await test("varint: values, 10-byte limit, truncation", () => {
  for (const v of [0, 1, 127, 128, 300, 16383, 16384, 2 ** 32 - 1, 2 ** 35 + 7]) {
    const b = new W.Writer().varint(v).toUint8Array();
    const r = new T.Reader(b);
    assert.equal(r.varint(), v);
    assert.equal(r.remaining, 0);
  }
  const eleven = new Uint8Array(11).fill(0x80);
  assert.throws(() => new T.Reader(eleven).varint(), T.ProtocolError);
  assert.throws(() => new T.Reader(Uint8Array.of(0x80, 0x80)).varint(), T.ProtocolError);
});

await test("records: several per message, lengths honoured", () => {
  const msg = W.concat(
    W.record(0x84, W.errorBody(6, "stale")),
    W.record(0x99, new Array(200).fill(7)), // unknown kind, 2-byte length
    W.record(0x83, W.pongBody(5, 9))
  );
  const recs = T.decodeRecords(msg.buffer);
  assert.deepEqual(
    recs.map((r) => [r.kind, r.body.length]),
    [
      [0x84, 8],
      [0x99, 200],
      [0x83, 8],
    ]
  );
});

await test("records: truncated body or length is a protocol error", () => {
  const good = W.record(0x83, W.pongBody(1, 2));
  assert.throws(() => T.decodeRecords(good.subarray(0, good.length - 1)), T.ProtocolError);
  assert.throws(() => T.decodeRecords(Uint8Array.of(0x83, 0x80)), T.ProtocolError);
  assert.throws(() => T.decodeRecords(Uint8Array.of(0x83)), T.ProtocolError);
});

await test("WELCOME decodes every field", () => {
  const w = T.decodeWelcome(W.welcomeBody(WELCOME).toUint8Array());
  for (const k of ["entityId", "tick", "tickHz", "worldW", "worldH", "cellSize", "nShards",
    "aoiRadius", "entityRadius", "playerSpeed", "cellsX", "cellsY"])
    assert.equal(w[k], WELCOME[k], k);
  assert.equal(w.version, 1);
  assert.deepEqual([...w.owners], WELCOME.owners);
  assert.deepEqual(w.obstacles, WELCOME.obstacles);
});

await test("WELCOME: trailing bytes, truncation and version 2 are refused", () => {
  const b = W.welcomeBody(WELCOME).toUint8Array();
  assert.throws(() => T.decodeWelcome(W.concat(b, Uint8Array.of(0))), T.ProtocolError);
  assert.throws(() => T.decodeWelcome(b.subarray(0, b.length - 1)), T.ProtocolError);
  assert.throws(() => T.decodeWelcome(W.welcomeBody({ ...WELCOME, version: 2 }).toUint8Array()),
    T.ProtocolError);
});

function apply(table, s) {
  return table.apply(T.parseState(W.stateBody(s).toUint8Array()));
}

await test("STATE: enters, small deltas, absolute escape, leaves", () => {
  const t = new T.SlotTable();
  let a = apply(t, {
    tick: 1, ackSeq: 0, flags: 1, shard: 1,
    enters: [
      { slot: 0, id: 42, kind: 0, xq: 1600, yq: 3200, name: "ada" },
      { slot: 3, id: 7, kind: 1, xq: -5, yq: 2 ** 31 - 1, name: "" },
      { slot: 200, id: 9, kind: 0, xq: 0, yq: 0, name: "zoë" },
    ],
  });
  assert.deepEqual(a, []);
  let m = t.snapshot();
  assert.equal(m.size, 3);
  assert.deepEqual(m.get(42), { id: 42, kind: 0, x: 100, y: 200, xq: 1600, yq: 3200, name: "ada", slot: 0 });
  assert.equal(m.get(9).name, "zoë");
  assert.equal(m.get(7).yq, 2 ** 31 - 1);
  a = apply(t, {
    tick: 2, ackSeq: 3,
    deltas: new Map([
      [0, [127, -127]],
      [3, { abs: [-100000, 5] }],
      [200, [-1, 1]],
    ]),
  });
  assert.deepEqual(a, []);
  m = t.snapshot();
  assert.equal(m.get(42).xq, 1727);
  assert.equal(m.get(42).yq, 3073);
  assert.equal(m.get(42).x, 1727 / 16);
  assert.deepEqual([m.get(7).xq, m.get(7).yq], [-100000, 5]);
  assert.deepEqual([m.get(9).xq, m.get(9).yq], [-1, 1]);
  // leave + reuse of the slot in the same message, then a delta next tick
  a = apply(t, {
    tick: 3, leaves: [3],
    enters: [{ slot: 3, id: 8, kind: 1, xq: 10, yq: 10, name: "" }],
  });
  assert.deepEqual(a, []);
  m = t.snapshot();
  assert.equal(m.has(7), false);
  assert.equal(m.get(8).slot, 3);
  a = apply(t, { tick: 4, deltas: new Map([[3, [1, 1]]]) });
  assert.equal(t.snapshot().get(8).xq, 11);
});

await test("STATE: RESET clears the table before applying", () => {
  const t = new T.SlotTable();
  apply(t, { tick: 1, enters: [{ slot: 5, id: 1, kind: 1, xq: 0, yq: 0 }] });
  apply(t, { tick: 2, flags: 1, enters: [{ slot: 0, id: 42, kind: 0, xq: 0, yq: 0, name: "a" }] });
  const m = t.snapshot();
  assert.deepEqual([...m.keys()], [42]);
  assert.equal(t.count, 1);
});

await test("STATE: an empty update (no leaves, enters, bits) is valid", () => {
  const s = T.parseState(W.stateBody({ tick: 9, ackSeq: 4, shard: 1 }).toUint8Array());
  assert.deepEqual([s.tick, s.ackSeq, s.shard, s.leaves.length, s.enters.length, s.deltas.length],
    [9, 4, 1, 0, 0, 0]);
});

await test("STATE: bitmap longer than needed and bit order (LSB first)", () => {
  const t = new T.SlotTable();
  apply(t, {
    tick: 1,
    enters: [8, 9, 15, 1023].map((s) => ({ slot: s, id: 100 + s, kind: 1, xq: 0, yq: 0 })),
  });
  // n_bits 1024 with bits 9 and 1023 set
  const body = W.stateBody({ tick: 2, nBits: 1024, deltas: new Map([[9, [2, 3]], [1023, [-4, 5]]]) });
  const s = T.parseState(body.toUint8Array());
  assert.deepEqual(s.deltas.map((d) => d.slot), [9, 1023]);
  t.apply(s);
  const m = t.snapshot();
  assert.deepEqual([m.get(109).xq, m.get(109).yq, m.get(1123).xq, m.get(1123).yq, m.get(108).xq],
    [2, 3, -4, 5, 0]);
});

await test("STATE: slot >= 1024, truncation and trailing bytes are refused", () => {
  const bad = [
    W.stateBody({ tick: 1, leaves: [1024] }),
    W.stateBody({ tick: 1, enters: [{ slot: 5000, id: 1, kind: 1, xq: 0, yq: 0 }] }),
    W.stateBody({ tick: 1, nBits: 1025, deltas: new Map([[1024, [1, 1]]]) }),
  ];
  for (const b of bad) assert.throws(() => T.parseState(b.toUint8Array()), T.ProtocolError);
  const ok = W.stateBody({ tick: 1, enters: [{ slot: 1, id: 1, kind: 0, xq: 0, yq: 0, name: "bob" }],
    deltas: new Map() }).toUint8Array();
  for (let n = 0; n < ok.length; n++)
    assert.throws(() => T.parseState(ok.subarray(0, n)), T.ProtocolError, `cut at ${n}`);
  assert.throws(() => T.parseState(W.concat(ok, Uint8Array.of(0))), T.ProtocolError);
  // name_len over 32
  const long = W.stateBody({ tick: 1, enters: [{ slot: 1, id: 1, kind: 0, xq: 0, yq: 0, name: "x".repeat(33) }] });
  assert.throws(() => T.parseState(long.toUint8Array()), T.ProtocolError);
});

await test("STATE: tolerated deviations are reported as anomalies", () => {
  const t = new T.SlotTable();
  assert.deepEqual(apply(t, { tick: 1, leaves: [4] }), ["leave of empty slot 4"]);
  const a = apply(t, { tick: 2, deltas: new Map([[6, [1, 1]]]) });
  assert.deepEqual(a, ["delta for empty slot 6"]);
});

await test("INPUT and PING encoding", () => {
  const b = new Uint8Array(T.encodeInput(7, 0.6, -0.8));
  assert.equal(b.length, 14);
  const dv = new DataView(b.buffer);
  assert.deepEqual([b[0], b[1], dv.getUint32(2, true)], [1, 12, 7]);
  assert.equal(dv.getFloat32(6, true), Math.fround(0.6));
  assert.equal(dv.getFloat32(10, true), Math.fround(-0.8));
  const p = new Uint8Array(T.encodePing(0xdeadbeef));
  assert.deepEqual([...p], [2, 4, 0xef, 0xbe, 0xad, 0xde]);
});

await test("clampHeading: length <= 1 (f32 within the 1.001 tolerance); NaN -> 0", () => {
  for (const [x, y] of [[3, 4], [1, 1], [0.70710678, 0.70710679], [-1e9, 1], [1, 0]]) {
    const [a, b] = T.clampHeading(x, y);
    assert.ok(Math.hypot(a, b) <= 1 + 1e-12, `${x},${y}`);
    assert.ok(Math.hypot(Math.fround(a), Math.fround(b)) <= 1 + 1e-6, `${x},${y} f32`);
  }
  assert.deepEqual(T.clampHeading(0.3, 0.4), [0.3, 0.4]);
  assert.deepEqual(T.clampHeading(NaN, Infinity), [0, 0]);
});

/* ---------------- client session over a fake WebSocket ---------------- */

class FakeWS {
  static all = [];
  constructor(url, protocol) {
    this.url = url;
    this.requested = protocol;
    this.protocol = "";
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWS.all.push(this);
  }
  send(data) {
    this.sent.push(new Uint8Array(data));
  }
  close(code, reason) {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }
  // test side
  open() {
    this.readyState = 1;
    this.protocol = "tessera.v1";
    this.onopen && this.onopen({});
  }
  recv(bytes) {
    const copy = bytes.slice();
    this.onmessage && this.onmessage({ data: copy.buffer });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
}

function fakeFetch(log, answer = () => [200, { token: "tok" + log.length, username: "ada", account_id: 3, expires_in: 3600 }]) {
  return async (url, init) => {
    log.push({ url, init, body: JSON.parse(init.body) });
    const [status, body] = answer(log.length);
    return { ok: status >= 200 && status < 300, status, json: async () => body };
  };
}

function newClient(fetchLog, answer) {
  FakeWS.all = [];
  return new T.TesseraClient({
    baseUrl: "http://example.test:8080/",
    WebSocket: FakeWS,
    fetch: fakeFetch(fetchLog, answer),
  });
}

await test("login: POSTs JSON, stores the token; refusal throws the reason", async () => {
  const log = [];
  const c = newClient(log);
  const r = await c.login("ada", "secret1");
  assert.equal(log[0].url, "http://example.test:8080/api/login");
  assert.equal(log[0].init.method, "POST");
  assert.deepEqual(log[0].body, { username: "ada", password: "secret1" });
  assert.equal(r.token, "tok1");
  assert.equal(c.token, "tok1");
  const c2 = newClient([], () => [401, { error: "invalid_credentials", reason: "wrong password" }]);
  await assert.rejects(c2.login("ada", "nope"), (e) => e.message === "wrong password" && e.status === 401);
});

await test("session: URL, subprotocol, welcome, state, inputs, acks, stop input", async () => {
  const c = newClient([]);
  await c.login("ada", "secret1");
  const events = { status: [], welcome: [], state: [], error: [], pong: [] };
  for (const k of Object.keys(events)) c.on(k, (e) => events[k].push(e));
  c.connect();
  const ws = FakeWS.all[0];
  assert.equal(ws.url, "ws://example.test:8080/ws?token=tok1");
  assert.equal(ws.requested, "tessera.v1");
  assert.equal(ws.binaryType, "arraybuffer");
  ws.open();
  c.setHeading(3, 4); // clamped to 0.6, 0.8
  ws.recv(welcomeMsg());
  assert.equal(events.welcome.length, 1);
  assert.equal(events.welcome[0].entityId, 42);
  ws.recv(W.concat(
    W.record(0x99, [1, 2, 3]), // unknown kind: skipped
    W.record(0x82, W.stateBody({ tick: 101, ackSeq: 0, flags: 1, shard: 1,
      enters: [{ slot: 0, id: 42, kind: 0, xq: 160, yq: 320, name: "ada" },
        { slot: 1, id: 5, kind: 1, xq: 0, yq: 0, name: "" }] }))
  ));
  assert.equal(events.state.length, 1);
  let s = events.state[0];
  assert.equal(s.self.x, 10);
  assert.equal(s.self.y, 20);
  assert.equal(s.entities.size, 2);
  assert.equal(s.shard, 1);
  assert.equal(c.lastState, s);
  await sleep(130); // 2 ticks at 20 Hz
  const inputs = ws.sent.filter((b) => b[0] === 1);
  assert.ok(inputs.length >= 2, `inputs sent: ${inputs.length}`);
  const dv = (b) => new DataView(b.buffer);
  inputs.forEach((b, i) => {
    assert.equal(b.length, 14);
    assert.equal(dv(b).getUint32(2, true), i + 1);
    assert.equal(dv(b).getFloat32(6, true), Math.fround(0.6));
    assert.equal(dv(b).getFloat32(10, true), Math.fround(0.8));
  });
  // ack of seq 2 -> ack latency measured
  ws.recv(W.record(0x82, W.stateBody({ tick: 102, ackSeq: 2, shard: 1, deltas: new Map([[0, [10, -3]]]) })));
  s = events.state[1];
  assert.equal(s.ackSeq, 2);
  assert.equal(s.self.xq, 170);
  assert.ok(c.stats.ackLatencyMs >= 0 && c.stats.ackLatencyMs < 1000, String(c.stats.ackLatencyMs));
  // the first state's entities are untouched (fresh objects per event)
  assert.equal(events.state[0].self.xq, 160);
  // stop: exactly one zero input, then silence
  c.setHeading(0, 0);
  await sleep(200);
  const after = ws.sent.filter((b) => b[0] === 1);
  const last = after[after.length - 1];
  assert.equal(dv(last).getFloat32(6, true), 0);
  assert.equal(dv(last).getFloat32(10, true), 0);
  assert.equal(after.filter((b) => dv(b).getFloat32(6, true) === 0).length, 1);
  // ping / pong
  const nonce = c.ping();
  const p = ws.sent[ws.sent.length - 1];
  assert.deepEqual([p[0], p[1], dv(p).getUint32(2, true)], [2, 4, nonce]);
  ws.recv(W.record(0x83, W.pongBody(nonce, 500)));
  assert.equal(events.pong.length, 1);
  assert.equal(events.pong[0].tick, 500);
  // ERROR record
  ws.recv(W.record(0x84, W.errorBody(6, "seq 3 not above 9")));
  assert.deepEqual(events.error[0], { code: 6, name: "stale_seq", reason: "seq 3 not above 9" });
  assert.equal(c.stats.anomalies, 0);
  assert.equal(c.stats.protocolErrors, 0);
  c.close();
  assert.deepEqual(ws.closedWith, [1000, "normal"]);
  assert.equal(events.status[events.status.length - 1].status, "closed");
});

await test("session: no INPUT before WELCOME; seq keeps counting across connections", async () => {
  const c = newClient([]);
  await c.login("ada", "secret1");
  c.connect();
  let ws = FakeWS.all[0];
  ws.open();
  c.setHeading(1, 0);
  await sleep(120);
  assert.equal(ws.sent.length, 0);
  ws.recv(welcomeMsg());
  await sleep(120);
  assert.ok(ws.sent.length >= 1);
  const lastSeq = new DataView(ws.sent[ws.sent.length - 1].buffer).getUint32(2, true);
  ws.serverClose(1001, "server shutting down");
  await sleep(700); // first backoff 0.5 s +- 20%
  assert.equal(FakeWS.all.length, 2);
  ws = FakeWS.all[1];
  assert.equal(ws.url, "ws://example.test:8080/ws?token=tok1"); // token reused
  ws.open();
  ws.recv(welcomeMsg());
  await sleep(80);
  assert.ok(new DataView(ws.sent[0].buffer).getUint32(2, true) > lastSeq);
  c.close();
});

await test("session: the resume token of the last SESSION record is used to reconnect", async () => {
  const c = newClient([]);
  await c.login("ada", "secret1");
  c.connect();
  let ws = FakeWS.all[0];
  ws.open();
  const token = new Uint8Array(18);
  for (let i = 0; i < 16; i++) token[i] = 0xa0 + i;
  token[16] = 30;
  ws.recv(W.concat(welcomeMsg(), W.record(0x85, token)));
  await sleep(50);
  assert.equal(c.resumeToken, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  assert.equal(c.resumeGraceS, 30);
  ws.serverClose(1006, "");
  await sleep(700);
  ws = FakeWS.all[1];
  assert.equal(ws.url, "ws://example.test:8080/ws?token=tok1&resume=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  // a SESSION body of the wrong size is a protocol error
  ws.open();
  ws.recv(W.concat(welcomeMsg(), W.record(0x85, new Uint8Array(17))));
  await sleep(50);
  assert.equal(c.stats.protocolErrors, 1);
  c.close();
});

await test("refresh: reconnects use the refresh token, not the password; logout revokes", async () => {
  const log = [];
  const c = newClient(log, (n) => [200, { token: "tok" + n, username: "ada", account_id: 3,
    expires_in: 900, refresh_token: "rt" + n }]);
  await c.login("ada", "secret1");
  assert.equal(c.refreshToken, "rt1");
  c.connect();
  // two closes before open: the client renews its token by refresh
  FakeWS.all[0].serverClose(1006, "");
  await sleep(700);
  FakeWS.all[1].serverClose(1006, "");
  await sleep(1400);
  const refreshes = log.filter((e) => e.url.endsWith("/api/refresh"));
  assert.equal(refreshes.length, 1);
  assert.deepEqual(refreshes[0].body, { refresh_token: "rt1" });
  assert.equal(log.filter((e) => e.url.endsWith("/api/login")).length, 1);
  assert.equal(c.token, "tok2");
  assert.equal(c.refreshToken, "rt2");
  await c.logout();
  const out = log[log.length - 1];
  assert.ok(out.url.endsWith("/api/logout"));
  assert.equal(out.init.headers.Authorization, "Bearer tok2");
  assert.deepEqual(out.body, { refresh_token: "rt2" });
  assert.equal(c.token, null);
});

await test("reconnect: backoff, re-login after 2 failures before open", async () => {
  const log = [];
  const c = newClient(log);
  await c.login("ada", "secret1");
  const statuses = [];
  c.on("status", (s) => statuses.push(s));
  c.connect();
  FakeWS.all[0].serverClose(1006); // fails before open
  const r1 = statuses.find((s) => s.status === "reconnecting");
  assert.ok(r1.delayMs >= 400 && r1.delayMs <= 600, String(r1.delayMs));
  assert.equal(r1.relogin, false);
  await sleep(r1.delayMs + 50);
  assert.equal(FakeWS.all.length, 2);
  FakeWS.all[1].serverClose(1006);
  const r2 = statuses.filter((s) => s.status === "reconnecting")[1];
  assert.ok(r2.delayMs >= 800 && r2.delayMs <= 1200, String(r2.delayMs));
  assert.equal(r2.relogin, true);
  await sleep(r2.delayMs + 80);
  assert.equal(log.length, 2, "logged in again");
  assert.equal(FakeWS.all.length, 3);
  assert.equal(FakeWS.all[2].url, "ws://example.test:8080/ws?token=tok2");
  FakeWS.all[2].open();
  assert.equal(c.status, "open");
  c.close();
});

await test("reconnect: a refused re-login stops reconnecting", async () => {
  const log = [];
  const c = newClient(log, (n) =>
    n === 1 ? [200, { token: "tok1", username: "ada" }] : [401, { error: "invalid_credentials", reason: "wrong password" }]);
  await c.login("ada", "secret1");
  const statuses = [];
  c.on("status", (s) => statuses.push(s));
  c.connect();
  FakeWS.all[0].serverClose(1006);
  await sleep(650);
  FakeWS.all[1].serverClose(1006);
  await sleep(1300);
  const last = statuses[statuses.length - 1];
  assert.equal(last.status, "closed");
  assert.match(last.reason, /wrong password/);
  assert.equal(FakeWS.all.length, 2);
});

await test("protocol error: malformed message closes with 4002 and reconnects", async () => {
  const c = newClient([]);
  await c.login("ada", "secret1");
  const errs = [];
  c.on("protocolError", (e) => errs.push(e));
  c.connect();
  const ws = FakeWS.all[0];
  ws.open();
  ws.recv(welcomeMsg());
  ws.recv(Uint8Array.of(0x82, 0x05, 1, 2)); // truncated record
  assert.equal(errs.length, 1);
  assert.equal(ws.closedWith[0], 4002);
  assert.equal(c.status, "reconnecting");
  // STATE before WELCOME is a protocol error too
  await sleep(700);
  const ws2 = FakeWS.all[1];
  ws2.open();
  ws2.recv(W.record(0x82, W.stateBody({ tick: 1 })));
  assert.equal(errs.length, 2);
  c.close();
});

await test("STATE: an item enter carries its descriptor, not a name", () => {
  const t = new T.SlotTable();
  assert.deepEqual(apply(t, {
    tick: 1,
    enters: [{ slot: 4, id: 130, kind: 2, xq: 16, yq: 32, item: [2, 300] }],
  }), []);
  const e = t.snapshot().get(130);
  assert.equal(e.kind, T.KIND_ITEM);
  assert.equal(e.itemKind, 2);
  assert.equal(e.quantity, 300);
  assert.equal(e.name, "coin");
  // a descriptor of the wrong size, or of kind 0, is a corrupt stream
  const bad = W.stateBody({ tick: 1, enters: [{ slot: 0, id: 5, kind: 2, xq: 0, yq: 0, name: "ab" }] });
  assert.throws(() => T.parseState(bad.toUint8Array()), T.ProtocolError);
  const zero = W.stateBody({ tick: 1, enters: [{ slot: 0, id: 5, kind: 2, xq: 0, yq: 0, item: [0, 1] }] });
  assert.throws(() => T.parseState(zero.toUint8Array()), T.ProtocolError);
});

await test("INVENTORY decodes slots; disorder, empties and wrong sizes are refused", () => {
  const inv = T.decodeInventory(W.inventoryBody([[0, 1, 3], [7, 8, 65535]]).toUint8Array());
  assert.equal(inv.length, 32);
  assert.deepEqual(inv[0], { itemKind: 1, quantity: 3, name: "apple" });
  assert.equal(inv[7].quantity, 65535);
  assert.equal(inv.filter(Boolean).length, 2);
  assert.deepEqual(T.decodeInventory(W.inventoryBody([]).toUint8Array()).filter(Boolean), []);
  for (const b of [
    W.inventoryBody([[7, 1, 1], [0, 1, 1]]), // not ascending
    W.inventoryBody([[1, 0, 1]]), // empty entry
    W.inventoryBody([[32, 1, 1]]), // slot out of range
    W.inventoryBody([], 16), // not 32 slots
    W.inventoryBody([[0, 1, 1]]).u8(0), // trailing byte
  ])
    assert.throws(() => T.decodeInventory(b.toUint8Array()), T.ProtocolError);
});

await test("CHAT and RESULT decode; invalid UTF-8 and bad fields are refused", () => {
  assert.deepEqual(T.decodeChat(W.chatBody(42, "zoë", "hi ✓").toUint8Array()), { from: 42, name: "zoë", text: "hi ✓" });
  const badUtf8 = new W.Writer().u32(1).u8(0).u8(1).u8(0xff);
  assert.throws(() => T.decodeChat(badUtf8.toUint8Array()), T.ProtocolError);
  assert.throws(() => T.decodeChat(W.chatBody(1, "a", "").toUint8Array()), T.ProtocolError);
  const r = T.decodeResult(W.resultBody({ req: 9, action: 1, entityId: 130, slot: 2, itemKind: 3, quantity: 1 }).toUint8Array());
  assert.equal(r.ok, true);
  assert.equal(r.name, "ok");
  assert.equal(r.slot, 2);
  const f = T.decodeResult(W.resultBody({ req: 10, action: 2, code: 16, slot: 1, reason: "database down" }).toUint8Array());
  assert.equal(f.ok, false);
  assert.equal(f.name, "store_unavailable");
  assert.equal(f.reason, "database down");
  assert.throws(() => T.decodeResult(W.resultBody({ req: 1, action: 3 }).toUint8Array()), T.ProtocolError);
  assert.throws(() => T.decodeResult(W.resultBody({ req: 1, action: 1, slot: 32 }).toUint8Array()), T.ProtocolError);
});

await test("PICKUP, DROP and CHAT encode per section 5", () => {
  assert.deepEqual([...new Uint8Array(T.encodePickup(7, 0x01020304))], [3, 8, 7, 0, 0, 0, 4, 3, 2, 1]);
  assert.deepEqual([...new Uint8Array(T.encodeDrop(7, 31))], [4, 5, 7, 0, 0, 0, 31]);
  assert.throws(() => T.encodeDrop(1, 32), RangeError);
  assert.deepEqual([...new Uint8Array(T.encodeChat("hé"))], [5, 3, 0x68, 0xc3, 0xa9]);
  const long = new Uint8Array(T.encodeChat("x".repeat(200)));
  assert.deepEqual([...long.slice(0, 3)], [5, 0xc8, 0x01]); // varint 200
  assert.equal(long.length, 203);
  assert.throws(() => T.encodeChat(""), RangeError);
  assert.throws(() => T.encodeChat("x".repeat(201)), RangeError);
  assert.throws(() => T.encodeChat("a\nb"), RangeError);
});

await test("client: pickup/drop/say send records; inventory, result and chat events", async () => {
  const c = newClient([]);
  await c.login("ada", "secret1");
  const got = { inventory: [], result: [], chat: [] };
  for (const k of Object.keys(got)) c.on(k, (e) => got[k].push(e));
  c.connect();
  const ws = FakeWS.all[FakeWS.all.length - 1];
  ws.open();
  ws.recv(welcomeMsg());
  assert.equal(c.pickup(130), 1);
  assert.equal(c.drop(0), 2);
  assert.equal(c.say("hello"), true);
  const sent = ws.sent.map((m) => new Uint8Array(m)[0]);
  assert.deepEqual(sent.slice(-3), [3, 4, 5]);
  ws.recv(W.concat(
    W.record(0x86, W.inventoryBody([[0, 2, 5]])),
    W.record(0x88, W.resultBody({ req: 1, action: 1, entityId: 130, itemKind: 2, quantity: 5 })),
    W.record(0x87, W.chatBody(42, "ada", "hello")),
  ));
  assert.equal(got.inventory.length, 1);
  assert.equal(c.inventory[0].name, "coin");
  assert.equal(got.result[0].req, 1);
  assert.equal(got.chat[0].text, "hello");
  c.close();
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
