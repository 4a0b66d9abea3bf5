/* tessera.js - the Tessera client library (protocol version 1).
 *
 * An ES module with no dependencies and no build step: the documented way
 * for a game's own front end to talk to a Tessera gateway. It implements
 * docs/protocol.md: login over HTTP, the WebSocket session, record framing,
 * WELCOME / STATE / PONG / ERROR decoding, the STATE slot table, INPUT and
 * PING encoding, and automatic reconnection. Works in browsers and in
 * Node >= 20 (pass `WebSocket` in the options where there is no global).
 *
 * Usage:
 *
 *   import { TesseraClient } from "./tessera.js";
 *   const c = new TesseraClient({ baseUrl: "http://localhost:8080" });
 *   await c.login("ada", "correct horse");  // throws Error(reason) on refusal
 *   c.on("welcome", (w) => ...);            // see below
 *   c.on("state", (s) => draw(s.entities, s.self));
 *   c.connect();
 *   c.setHeading(1, 0);                     // walk right; (0, 0) stops
 *
 * new TesseraClient(options)
 *   baseUrl       "http(s)://host:port" (default: the page's origin). The
 *                 login is POSTed to baseUrl + "/api/login" and the socket
 *                 opened at ws(s)://same-host/ws?token=TOKEN.
 *   autoReconnect default true.
 *   WebSocket     WebSocket constructor (default globalThis.WebSocket).
 *   fetch         fetch function (default globalThis.fetch).
 *
 * Methods
 *   login(username, password) -> Promise<{token, accountId, username,
 *       expiresIn}>. Keeps the refresh token it returns (the password only
 *       from a server without refresh tokens) for automatic renewal: the
 *       access token is refreshed at 80% of its lifetime and when a
 *       reconnect is refused.
 *   refresh() -> Promise<{token, expiresIn}>  POST /api/refresh now.
 *   logout() -> Promise  closes and revokes both tokens (POST /api/logout).
 *       Rejects with an Error whose message is the server's `reason`
 *       (err.status = HTTP status, err.code = the `error` field).
 *   setToken(token)   use a token obtained elsewhere (no automatic re-login).
 *   connect()         opens the session (needs a token); no-op if open.
 *   close()           closes with 1000 and stops reconnecting.
 *   setHeading(dx, dy) desired heading, clamped to length 1; (0, 0) stops.
 *       While connected, an INPUT is sent every tick (tick_hz from WELCOME)
 *       while the heading is non-zero, plus one stop INPUT when it becomes
 *       zero. Sequence numbers keep counting across reconnects, so a
 *       resumed session (the SESSION record's token is presented as
 *       &resume=) continues its sequence with nothing applied twice.
 *   ping() -> nonce   sends a PING; the answer arrives as a "pong" event.
 *   pickup(entityId) -> req  asks to pick up an item within reach.
 *   drop(slot) -> req        asks to drop an inventory slot at your feet.
 *       Each request gets exactly one "result" event with its req.
 *   say(text) -> bool        a chat line (1..200 bytes of UTF-8, no control
 *       characters; RangeError otherwise); heard by players within the
 *       area-of-interest radius, you included ("chat" event).
 *   on(name, fn) -> unsubscribe function;  off(name, fn).
 *
 * Read-only properties
 *   welcome    the last decoded WELCOME (see "welcome" below) or null
 *   lastState  the last "state" event payload or null
 *   status     "idle" | "connecting" | "open" | "reconnecting" | "closed"
 *   stats      {rttMs, ackLatencyMs, statesReceived, bytesReceived,
 *               inputsSent, pingsSent, reconnects, anomalies, protocolErrors}
 *
 * Events (fn receives one argument)
 *   "welcome" {version, entityId, tick, tickHz, worldW, worldH, cellSize,
 *              nShards, aoiRadius, entityRadius, playerSpeed, cellsX, cellsY,
 *              owners: Uint8Array (index cy*cellsX+cx),
 *              obstacles: [{x, y, r}]}
 *   "state"   {tick, ackSeq, flags, reset, shard, entities: Map(id -> {id,
 *              kind, x, y, xq, yq, name, slot}), self: entity or null,
 *              enters, leaves, updates, ackLatencyMs, receivedAt}
 *              Emitted after each STATE has been applied to the slot table.
 *              Positions are kept as quantized integers (xq = x * 16, exact)
 *              and exposed as float units (x = xq / 16). The entities Map and
 *              its objects are fresh for each event (safe to keep).
 *              Items (kind 2) also carry itemKind and quantity; their name is
 *              the item kind's display name (ITEM_NAMES).
 *   "inventory" {slots}  32 entries {itemKind, quantity, name} or null;
 *              sent on entering the world and after every change; also in
 *              the `inventory` property.
 *   "result"  {req, action (1 pickup, 2 drop), ok, code, name, entityId,
 *              slot, itemKind, quantity, reason}  the outcome of pickup()
 *              or drop(); ok only once the change is committed.
 *   "chat"    {from, name, text}  a chat line said near you.
 *   "error"   {code, name, reason}  an ERROR record (the connection stays).
 *   "pong"    {nonce, tick, rtt}    rtt in milliseconds.
 *   "status"  {status, code, reason, attempt, delayMs}  status is one of
 *              "connecting", "open", "closed", "reconnecting"; code/reason
 *              are the WebSocket close's (1006 when the socket failed).
 *   "anomaly" {message}  the server sent something the spec says it should
 *              not, but that can be tolerated (e.g. a leave of an empty
 *              slot); counted in stats.anomalies.
 *   "protocolError" {message}  an undecodable message; the client closes
 *              with 4002 and reconnects.
 *
 * Reconnection: after an unexpected close the client waits 0.5 s, doubling
 * up to 8 s (with +-20% jitter), and opens a new session with the same
 * token. A browser cannot see why an upgrade failed (e.g. 401 for an
 * expired token), so after 2 consecutive closes before the socket opened
 * it logs in again with the remembered credentials first. A refused login
 * (400/401) stops reconnecting (status "closed"). The backoff resets after
 * a session that ran for 5 s past its WELCOME. A session silent for 10 s
 * (the server sends a STATE at least every 5 s, every tick while
 * something near moves) is treated as dead and replaced.
 */

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = "tessera.v1";
export const POS_SCALE = 16;
export const MAX_SLOTS = 1024;
export const NAME_MAX = 32;

export const KIND_PLAYER = 0;
export const KIND_NPC = 1;
export const KIND_ITEM = 2;

export const C_INPUT = 0x01;
export const C_PING = 0x02;
export const S_WELCOME = 0x81;
export const S_STATE = 0x82;
export const S_PONG = 0x83;
export const S_ERROR = 0x84;
export const S_SESSION = 0x85;
export const C_PICKUP = 0x03;
export const C_DROP = 0x04;
export const C_CHAT = 0x05;
export const S_INVENTORY = 0x86;
export const S_CHAT = 0x87;
export const S_RESULT = 0x88;
export const INV_SLOTS = 32;
export const CHAT_MAX = 200; // bytes of UTF-8
export const ACT_PICKUP = 1;
export const ACT_DROP = 2;

/** Display names of item kinds (the server only knows numbers). */
export const ITEM_NAMES = {
  1: "apple",
  2: "coin",
  3: "gem",
  4: "potion",
  5: "scroll",
  6: "key",
  7: "mushroom",
  8: "feather",
};
export const itemName = (kind) => ITEM_NAMES[kind] || `item ${kind}`;

export const STATE_RESET = 0x01;

export const ERROR_NAMES = {
  1: "unknown_kind",
  2: "malformed",
  3: "not_finite",
  4: "out_of_range",
  5: "too_many_inputs",
  6: "stale_seq",
  7: "rate_limited",
  8: "not_in_world",
  9: "not_an_item",
  10: "out_of_reach",
  11: "bad_slot",
  12: "bad_text",
  13: "chat_rate_limited",
  14: "item_gone",
  15: "inventory_full",
  16: "store_unavailable",
  17: "conflict",
};

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 8000;
const OPEN_TIMEOUT_MS = 10000;
const SILENCE_TIMEOUT_MS = 10000;
const FAILS_BEFORE_RELOGIN = 2;
const GOOD_SESSION_MS = 5000;
const MAX_PENDING_ACKS = 512;
const MAX_BUFFERED_BYTES = 64 * 1024;

const now = () =>
  typeof performance !== "undefined" && performance.now ? performance.now() : Date.now();

/* ------------------------------------------------------------------ */
/* Decoding                                                            */
/* ------------------------------------------------------------------ */

/** Thrown for a message that cannot be decoded per the spec. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Bounds-checked little-endian reader over a byte range. */
export class Reader {
  constructor(bytes, offset = 0, end = bytes.byteLength) {
    // bytes: Uint8Array (a view); offsets are relative to it.
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = offset;
    this.end = end;
  }
  get remaining() {
    return this.end - this.pos;
  }
  need(n, what) {
    if (this.end - this.pos < n)
      throw new ProtocolError(`truncated ${what} at byte ${this.pos}`);
  }
  u8(what = "u8") {
    this.need(1, what);
    return this.dv.getUint8(this.pos++);
  }
  i8(what = "i8") {
    this.need(1, what);
    return this.dv.getInt8(this.pos++);
  }
  u16(what = "u16") {
    this.need(2, what);
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what = "u32") {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(what = "i32") {
    this.need(4, what);
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(what = "f32") {
    this.need(4, what);
    const v = this.dv.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** Unsigned LEB128, at most 10 bytes; values above 2^53 are refused. */
  varint(what = "varint") {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      this.need(1, what);
      const b = this.bytes[this.pos++];
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (v > Number.MAX_SAFE_INTEGER) throw new ProtocolError(`${what} too large`);
        return v;
      }
      mul *= 128;
    }
    throw new ProtocolError(`${what} longer than 10 bytes`);
  }
  bytesView(n, what = "bytes") {
    this.need(n, what);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(n, what = "string") {
    const b = this.bytesView(n, what);
    try {
      return utf8.decode(b);
    } catch {
      throw new ProtocolError(`${what} is not valid UTF-8`);
    }
  }
  done(what) {
    if (this.pos !== this.end)
      throw new ProtocolError(`${this.end - this.pos} trailing bytes in ${what}`);
  }
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ProtocolError("message is not binary");
}

/** Splits one WebSocket message into records [{kind, body: Uint8Array}].
 *  Throws ProtocolError when the framing is broken. */
export function decodeRecords(data) {
  const bytes = toBytes(data);
  const r = new Reader(bytes);
  const out = [];
  if (bytes.byteLength === 0) throw new ProtocolError("empty message");
  while (r.remaining > 0) {
    const kind = r.u8("record kind");
    const len = r.varint("record length");
    if (len > r.remaining) throw new ProtocolError(`record 0x${kind.toString(16)} body truncated`);
    out.push({ kind, body: r.bytesView(len, "record body") });
  }
  return out;
}

/** Decodes a WELCOME body (see the "welcome" event). */
export function decodeWelcome(body) {
  const r = new Reader(body);
  const w = {};
  w.version = r.u16("version");
  w.entityId = r.u32("entity_id");
  w.tick = r.u32("tick");
  w.tickHz = r.u16("tick_hz");
  w.worldW = r.u32("world_w");
  w.worldH = r.u32("world_h");
  w.cellSize = r.u16("cell_size");
  w.nShards = r.u8("n_shards");
  w.aoiRadius = r.f32("aoi_radius");
  w.entityRadius = r.f32("entity_radius");
  w.playerSpeed = r.f32("player_speed");
  w.cellsX = r.u16("cells_x");
  w.cellsY = r.u16("cells_y");
  w.owners = r.bytesView(w.cellsX * w.cellsY, "owners").slice();
  const n = r.u16("n_obstacles");
  w.obstacles = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = r.f32("obstacle x");
    const y = r.f32("obstacle y");
    const rad = r.f32("obstacle r");
    w.obstacles[i] = { x, y, r: rad };
  }
  r.done("WELCOME");
  if (w.version !== PROTOCOL_VERSION)
    throw new ProtocolError(`unsupported protocol version ${w.version}`);
  if (w.tickHz === 0) throw new ProtocolError("tick_hz is 0");
  return w;
}

/** Parses a STATE body without applying it (so a malformed message changes
 *  nothing). Returns {tick, ackSeq, flags, shard, leaves: [slot],
 *  enters: [{slot, id, kind, xq, yq, name}], deltas: [{slot, abs, dx, dy}]}
 *  (for abs deltas dx/dy hold the absolute x_q/y_q). */
export function parseState(body) {
  const r = new Reader(body);
  const s = {
    tick: r.u32("tick"),
    ackSeq: r.u32("ack_seq"),
    flags: r.u8("flags"),
    shard: r.u8("shard"),
    leaves: [],
    enters: [],
    deltas: [],
  };
  const slot = (what) => {
    const v = r.varint(what);
    if (v >= MAX_SLOTS) throw new ProtocolError(`${what} ${v} out of range`);
    return v;
  };
  const nLeave = r.varint("n_leave");
  if (nLeave > r.remaining) throw new ProtocolError("n_leave larger than the message");
  for (let i = 0; i < nLeave; i++) s.leaves.push(slot("leave slot"));
  const nEnter = r.varint("n_enter");
  if (nEnter * 15 > r.remaining) throw new ProtocolError("n_enter larger than the message");
  for (let i = 0; i < nEnter; i++) {
    const e = { slot: slot("enter slot") };
    e.id = r.u32("entity_id");
    e.kind = r.u8("kind");
    e.xq = r.i32("x_q");
    e.yq = r.i32("y_q");
    const nameLen = r.u8("name_len");
    if (nameLen > NAME_MAX) throw new ProtocolError(`name_len ${nameLen} over ${NAME_MAX}`);
    if (e.kind === KIND_ITEM) {
      // an item's name field is its descriptor: item_kind u8, quantity u16
      if (nameLen !== 3) throw new ProtocolError(`item descriptor of ${nameLen} bytes, not 3`);
      e.itemKind = r.u8("item_kind");
      e.quantity = r.u16("quantity");
      if (e.itemKind === 0) throw new ProtocolError("item kind 0");
      e.name = itemName(e.itemKind);
    } else {
      e.name = r.string(nameLen, "name");
    }
    s.enters.push(e);
  }
  const nBits = r.varint("n_bits");
  const nBytes = Math.ceil(nBits / 8);
  const bitmap = r.bytesView(nBytes, "bitmap");
  for (let byte = 0; byte < nBytes; byte++) {
    let b = bitmap[byte];
    if (b === 0) continue;
    for (let bit = 0; bit < 8 && b; bit++, b >>= 1) {
      if ((b & 1) === 0) continue;
      const sl = byte * 8 + bit;
      if (sl >= nBits) break; // padding bits past n_bits are not slots
      if (sl >= MAX_SLOTS) throw new ProtocolError(`delta slot ${sl} out of range`);
      const first = r.i8("delta dx");
      if (first === -128) {
        const x = r.i32("absolute x_q");
        const y = r.i32("absolute y_q");
        s.deltas.push({ slot: sl, abs: true, dx: x, dy: y });
      } else {
        s.deltas.push({ slot: sl, abs: false, dx: first, dy: r.i8("delta dy") });
      }
    }
  }
  r.done("STATE");
  return s;
}

/** The client's slot table (section 7). apply() returns a list of
 *  anomaly strings (tolerated spec deviations); an empty list is normal. */
export class SlotTable {
  constructor() {
    this.slots = new Array(MAX_SLOTS).fill(null); // {id, kind, xq, yq, name}
    this.count = 0;
  }
  clear() {
    this.slots.fill(null);
    this.count = 0;
  }
  apply(s) {
    const anomalies = [];
    if (s.flags & STATE_RESET) this.clear();
    const freed = new Set();
    for (const sl of s.leaves) {
      if (!this.slots[sl]) anomalies.push(`leave of empty slot ${sl}`);
      else this.count--;
      this.slots[sl] = null;
      freed.add(sl);
    }
    const entered = new Set();
    for (const e of s.enters) {
      if (this.slots[e.slot]) {
        anomalies.push(`enter into occupied slot ${e.slot}`);
        this.count--;
      }
      if (e.kind !== KIND_PLAYER && e.kind !== KIND_NPC && e.kind !== KIND_ITEM)
        anomalies.push(`unknown entity kind ${e.kind}`);
      this.slots[e.slot] = { id: e.id, kind: e.kind, xq: e.xq, yq: e.yq, name: e.name };
      if (e.kind === KIND_ITEM) {
        this.slots[e.slot].itemKind = e.itemKind;
        this.slots[e.slot].quantity = e.quantity;
      }
      this.count++;
      entered.add(e.slot);
    }
    for (const d of s.deltas) {
      const ent = this.slots[d.slot];
      if (!ent) {
        anomalies.push(`delta for empty slot ${d.slot}`);
        continue;
      }
      if (entered.has(d.slot)) anomalies.push(`delta for slot ${d.slot} entered in the same STATE`);
      if (d.abs) {
        ent.xq = d.dx;
        ent.yq = d.dy;
      } else {
        ent.xq += d.dx;
        ent.yq += d.dy;
      }
    }
    return anomalies;
  }
  /** Fresh Map entity id -> {id, kind, x, y, xq, yq, name, slot}. */
  snapshot(anomalies) {
    const m = new Map();
    for (let sl = 0; sl < MAX_SLOTS; sl++) {
      const e = this.slots[sl];
      if (!e) continue;
      if (m.has(e.id) && anomalies) anomalies.push(`entity ${e.id} in two slots`);
      const v = {
        id: e.id,
        kind: e.kind,
        x: e.xq / POS_SCALE,
        y: e.yq / POS_SCALE,
        xq: e.xq,
        yq: e.yq,
        name: e.name,
        slot: sl,
      };
      if (e.kind === KIND_ITEM) {
        v.itemKind = e.itemKind;
        v.quantity = e.quantity;
      }
      m.set(e.id, v);
    }
    return m;
  }
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */
/* ------------------------------------------------------------------ */

/** An INPUT record: [0x01, 12, seq:u32, dx:f32, dy:f32]. */
export function encodeInput(seq, dx, dy) {
  const b = new ArrayBuffer(14);
  const dv = new DataView(b);
  dv.setUint8(0, C_INPUT);
  dv.setUint8(1, 12);
  dv.setUint32(2, seq >>> 0, true);
  dv.setFloat32(6, dx, true);
  dv.setFloat32(10, dy, true);
  return b;
}

/** A PING record: [0x02, 4, nonce:u32]. */
export function encodePing(nonce) {
  const b = new ArrayBuffer(6);
  const dv = new DataView(b);
  dv.setUint8(0, C_PING);
  dv.setUint8(1, 4);
  dv.setUint32(2, nonce >>> 0, true);
  return b;
}

/** INVENTORY: [n_slots:u8 = 32][n:u8] n x [slot:u8][item_kind:u8][quantity:u16],
 *  slots ascending, no empty entries. Returns an array of 32 entries,
 *  each {itemKind, quantity, name} or null (empty). */
export function decodeInventory(body) {
  const r = new Reader(body);
  const nSlots = r.u8("n_slots");
  const n = r.u8("n");
  if (nSlots !== INV_SLOTS) throw new ProtocolError(`inventory of ${nSlots} slots`);
  if (n > nSlots) throw new ProtocolError(`inventory with ${n} entries`);
  const slots = new Array(nSlots).fill(null);
  let last = -1;
  for (let i = 0; i < n; i++) {
    const slot = r.u8("slot");
    const itemKind = r.u8("item_kind");
    const quantity = r.u16("quantity");
    if (slot >= nSlots || slot <= last) throw new ProtocolError(`inventory slot ${slot} out of order`);
    if (itemKind === 0 || quantity === 0) throw new ProtocolError("empty inventory entry");
    slots[slot] = { itemKind, quantity, name: itemName(itemKind) };
    last = slot;
  }
  r.done("INVENTORY");
  return slots;
}

/** CHAT (server): [from:u32][name_len:u8][name][text_len:u8][text]. */
export function decodeChat(body) {
  const r = new Reader(body);
  const from = r.u32("from");
  const nl = r.u8("name_len");
  if (nl > NAME_MAX) throw new ProtocolError(`name_len ${nl} over ${NAME_MAX}`);
  const name = r.string(nl, "name");
  const tl = r.u8("text_len");
  if (tl === 0 || tl > CHAT_MAX) throw new ProtocolError(`chat text of ${tl} bytes`);
  const text = r.string(tl, "text");
  r.done("CHAT");
  return { from, name, text };
}

/** RESULT: [req:u32][action:u8][code:u16][entity_id:u32][slot:u8]
 *  [item_kind:u8][quantity:u16][reason_len:u8][reason]. */
export function decodeResult(body) {
  const r = new Reader(body);
  const res = {
    req: r.u32("req"),
    action: r.u8("action"),
    code: r.u16("code"),
    entityId: r.u32("entity_id"),
    slot: r.u8("slot"),
    itemKind: r.u8("item_kind"),
    quantity: r.u16("quantity"),
  };
  const rl = r.u8("reason_len");
  res.reason = r.string(rl, "reason");
  r.done("RESULT");
  if (res.action !== ACT_PICKUP && res.action !== ACT_DROP)
    throw new ProtocolError(`RESULT action ${res.action}`);
  if (res.slot >= INV_SLOTS) throw new ProtocolError(`RESULT slot ${res.slot}`);
  res.ok = res.code === 0;
  res.name = res.ok ? "ok" : ERROR_NAMES[res.code] || `error_${res.code}`;
  return res;
}

/** A PICKUP record: [0x03, 8, req:u32, entity_id:u32]. */
export function encodePickup(req, entityId) {
  const b = new ArrayBuffer(10);
  const dv = new DataView(b);
  dv.setUint8(0, C_PICKUP);
  dv.setUint8(1, 8);
  dv.setUint32(2, req >>> 0, true);
  dv.setUint32(6, entityId >>> 0, true);
  return b;
}

/** A DROP record: [0x04, 5, req:u32, slot:u8]. */
export function encodeDrop(req, slot) {
  if (!(slot >= 0 && slot < INV_SLOTS)) throw new RangeError(`slot ${slot} out of range`);
  const b = new ArrayBuffer(7);
  const dv = new DataView(b);
  dv.setUint8(0, C_DROP);
  dv.setUint8(1, 5);
  dv.setUint32(2, req >>> 0, true);
  dv.setUint8(6, slot);
  return b;
}

/** A CHAT record: [0x05, len varint, UTF-8 text]. Throws RangeError for
 *  text the server would refuse (empty, over 200 bytes, control chars). */
export function encodeChat(text) {
  const bytes = new TextEncoder().encode(String(text));
  if (bytes.length === 0 || bytes.length > CHAT_MAX)
    throw new RangeError(`chat text must be 1..${CHAT_MAX} bytes of UTF-8`);
  for (const b of bytes)
    if (b < 0x20 || b === 0x7f) throw new RangeError("chat text holds a control character");
  const head = bytes.length < 128 ? [C_CHAT, bytes.length] : [C_CHAT, (bytes.length & 0x7f) | 0x80, bytes.length >> 7];
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head, 0);
  out.set(bytes, head.length);
  return out.buffer;
}

/** Clamps a heading to length <= 1 (non-finite components become 0). */
export function clampHeading(dx, dy) {
  dx = Number.isFinite(dx) ? dx : 0;
  dy = Number.isFinite(dy) ? dy : 0;
  const len = Math.hypot(dx, dy);
  if (len > 1) {
    dx /= len;
    dy /= len;
  }
  // The wire carries f32; its rounding (relative 6e-8) stays far inside the
  // server's tolerance (length <= 1.001).
  return [dx, dy];
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

export class TesseraClient {
  constructor(options = {}) {
    const origin = globalThis.location && globalThis.location.origin;
    this.baseUrl = String(options.baseUrl || origin || "http://localhost:8080").replace(/\/+$/, "");
    this.autoReconnect = options.autoReconnect !== false;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._fetch = options.fetch || (globalThis.fetch && globalThis.fetch.bind(globalThis));

    this.token = null;
    this.username = null;
    this._password = null;
    this.welcome = null;
    this.lastState = null;
    this.inventory = null;
    this.status = "idle";
    this.stats = {
      rttMs: null,
      ackLatencyMs: null,
      statesReceived: 0,
      bytesReceived: 0,
      inputsSent: 0,
      pingsSent: 0,
      reconnects: 0,
      anomalies: 0,
      protocolErrors: 0,
    };

    this._handlers = new Map();
    this._table = new SlotTable();
    this._ws = null;
    this._wanted = false; // the user wants a session (connect() without close())
    this._opened = false; // the current socket reached "open"
    this._attempt = 0; // reconnect attempts since the last good session
    this._failsBeforeOpen = 0;
    this._reconnectTimer = null;
    this._inputTimer = null;
    this._watchdog = null;
    this._lastMessageAt = 0;
    this._welcomeAt = 0;
    this._heading = [0, 0];
    this._lastSent = [0, 0];
    this._seq = 0;
    this._pendingAcks = new Map(); // seq -> send time
    this._lastAck = 0;
    this._pings = new Map(); // nonce -> send time
    this._nonce = 0;
    this._gen = 0; // generation: ignores events from replaced sockets
  }

  /* ---- events ---- */
  on(name, fn) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(fn);
    return () => this.off(name, fn);
  }
  off(name, fn) {
    const s = this._handlers.get(name);
    if (s) s.delete(fn);
  }
  _emit(name, arg) {
    const s = this._handlers.get(name);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(arg);
      } catch (e) {
        // A faulty handler must not break the session.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
  _setStatus(status, extra = {}) {
    this.status = status;
    this._emit("status", { status, ...extra });
  }

  /* ---- login ---- */
  async login(username, password) {
    if (!this._fetch) throw new Error("no fetch available");
    let res;
    try {
      res = await this._fetch(this.baseUrl + "/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
    } catch (e) {
      const err = new Error("cannot reach the server: " + (e && e.message ? e.message : e));
      err.status = 0;
      err.code = "network";
      throw err;
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    if (!res.ok || !body || typeof body.token !== "string") {
      const reason =
        (body && (body.reason || body.error)) || `login failed (HTTP ${res.status})`;
      const err = new Error(reason);
      err.status = res.status;
      err.code = (body && body.error) || "http_" + res.status;
      throw err;
    }
    this._takeTokens(body, username);
    // With a refresh token the password is not kept: refresh replaces it.
    this._password = this.refreshToken ? null : password;
    return {
      token: body.token,
      accountId: body.account_id,
      username: this.username,
      expiresIn: body.expires_in,
    };
  }

  /** Stores the tokens of a login or refresh answer and schedules the next
   * refresh at 80% of the access token's lifetime, so a reconnect always
   * has a valid token. */
  _takeTokens(body, username) {
    this.token = body.token;
    this.username = body.username || username || this.username;
    if (typeof body.refresh_token === "string") this.refreshToken = body.refresh_token;
    if (this._refreshTimer) clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const life = Number(body.expires_in);
    if (this.refreshToken && life > 0) {
      this._refreshTimer = setTimeout(() => {
        this._refreshTimer = null;
        this.refresh().catch((e) => this._emit("anomaly", { message: "refresh failed: " + e.message }));
      }, life * 800);
    }
  }

  /** POST /api/refresh: a new access token and a new refresh token (the
   * old one is used up). Throws an Error with .status on failure. */
  async refresh() {
    if (!this._fetch) throw new Error("no fetch available");
    if (!this.refreshToken) throw Object.assign(new Error("no refresh token"), { status: 401 });
    const res = await this._fetch(this.baseUrl + "/api/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: this.refreshToken }),
    });
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    if (!res.ok || !body || typeof body.token !== "string") {
      if (res.status === 401) this.refreshToken = null; // used up or revoked
      const reason = (body && (body.reason || body.error)) || `refresh failed (HTTP ${res.status})`;
      throw Object.assign(new Error(reason), { status: res.status });
    }
    this._takeTokens(body);
    return { token: body.token, expiresIn: body.expires_in };
  }

  /** POST /api/logout: revokes the refresh token and the access token, and
   * closes the session. */
  async logout() {
    const token = this.token, refreshToken = this.refreshToken;
    this.close();
    if (this._refreshTimer) clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    this.token = null;
    this.refreshToken = null;
    this._password = null;
    if (!this._fetch || !token) return;
    await this._fetch(this.baseUrl + "/api/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ refresh_token: refreshToken || "" }),
    });
  }

  setToken(token) {
    this.token = token;
    this._password = null;
  }

  /* ---- session ---- */
  get wsUrl() {
    const u = new URL(this.baseUrl + "/ws");
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.search = "?token=" + encodeURIComponent(this.token || "");
    // the token of the session we had: the server gives us the same entity
    if (this.resumeToken) u.search += "&resume=" + this.resumeToken;
    return u.toString();
  }

  connect() {
    if (!this.token) throw new Error("connect() needs a token: call login() first");
    if (!this._WebSocket) throw new Error("no WebSocket implementation available");
    this._wanted = true;
    if (this._ws || this._reconnectTimer) return;
    this._attempt = 0;
    this._failsBeforeOpen = 0;
    this._open();
  }

  close() {
    this._wanted = false;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const ws = this._ws;
    this._teardown();
    if (ws) {
      try {
        ws.close(1000, "normal");
      } catch {
        /* already closed */
      }
    }
    this._setStatus("closed", { code: 1000, reason: "client closed" });
  }

  _open() {
    this._reconnectTimer = null;
    const gen = ++this._gen;
    this._opened = false;
    this.welcome = null;
    this._table.clear();
    // Input sequence numbers keep growing across connections: a resumed
    // session continues its sequence, a fresh one accepts any seq >= 1.
    this._lastAck = 0;
    this._pendingAcks.clear();
    this._pings.clear();
    this._lastSent = [0, 0];
    this._setStatus("connecting", { attempt: this._attempt });
    let ws;
    try {
      ws = new this._WebSocket(this.wsUrl, SUBPROTOCOL);
    } catch (e) {
      this._onClose(gen, 1006, String(e && e.message ? e.message : e));
      return;
    }
    this._ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      if (gen !== this._gen) return;
      this._opened = true;
      this._failsBeforeOpen = 0;
      this._lastMessageAt = now();
      this._setStatus("open", { protocol: ws.protocol });
    };
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      this._onMessage(ev.data);
    };
    ws.onerror = () => {
      /* followed by close */
    };
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._onClose(gen, ev.code, ev.reason || "");
    };
    const openedAt = now();
    this._watchdog = setInterval(() => {
      if (gen !== this._gen) return;
      const t = now();
      if (!this._opened && t - openedAt > OPEN_TIMEOUT_MS) this._drop(4000, "open timeout");
      else if (this._opened && t - this._lastMessageAt > SILENCE_TIMEOUT_MS)
        this._drop(4000, "server silent");
    }, 1000);
  }

  /** Closes the current socket ourselves and reconnects. */
  _drop(code, reason) {
    const ws = this._ws;
    const gen = this._gen;
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        /* ignore */
      }
    }
    this._onClose(gen, code === 4002 ? 4002 : 1006, reason);
  }

  _teardown() {
    this._gen++;
    clearInterval(this._inputTimer);
    clearInterval(this._watchdog);
    this._inputTimer = null;
    this._watchdog = null;
    if (this._ws) {
      this._ws.onopen = this._ws.onmessage = this._ws.onclose = this._ws.onerror = null;
    }
    this._ws = null;
  }

  _onClose(gen, code, reason) {
    if (gen !== this._gen) return;
    const wasOpen = this._opened;
    // Reset the backoff only after a session that worked for a while, so a
    // server that closes right after WELCOME is not hammered.
    const goodSession = !!this.welcome && now() - this._welcomeAt >= GOOD_SESSION_MS;
    this._teardown();
    this._opened = false;
    if (!this._wanted || !this.autoReconnect) {
      this._setStatus("closed", { code, reason, wasOpen });
      return;
    }
    if (goodSession) this._attempt = 0;
    if (!wasOpen) this._failsBeforeOpen++;
    this._scheduleReconnect(code, reason, wasOpen);
  }

  _scheduleReconnect(code, reason, wasOpen) {
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this._attempt);
    const delayMs = Math.round(base * (0.8 + 0.4 * Math.random()));
    this._attempt++;
    this.stats.reconnects++;
    const relogin =
      this._failsBeforeOpen >= FAILS_BEFORE_RELOGIN && (!!this.refreshToken || !!this._password);
    this._setStatus("reconnecting", {
      code,
      reason,
      wasOpen,
      attempt: this._attempt,
      delayMs,
      relogin,
    });
    this._reconnectTimer = setTimeout(() => this._reconnect(relogin), delayMs);
  }

  async _reconnect(relogin) {
    if (!this._wanted) return;
    if (relogin) {
      try {
        // a refresh token first; the password only when there is none
        if (this.refreshToken) await this.refresh();
        else await this.login(this.username, this._password);
        this._failsBeforeOpen = 0;
      } catch (e) {
        if (!this._wanted) return;
        if (e.status === 400 || e.status === 401) {
          this._wanted = false;
          this._reconnectTimer = null;
          this._setStatus("closed", { code: 4001, reason: "login refused: " + e.message });
          return;
        }
        this._reconnectTimer = null;
        this._scheduleReconnect(1006, "login failed: " + e.message, false);
        return;
      }
      if (!this._wanted) return;
    }
    this._open();
  }

  /* ---- incoming ---- */
  _onMessage(data) {
    this._lastMessageAt = now();
    if (typeof data === "string") {
      this._protocolError("text message from the server");
      return;
    }
    try {
      const bytes = toBytes(data);
      this.stats.bytesReceived += bytes.byteLength;
      for (const rec of decodeRecords(bytes)) {
        if (!this._ws) return; // a handler closed the session
        switch (rec.kind) {
          case S_WELCOME:
            this._onWelcome(rec.body);
            break;
          case S_STATE:
            this._onState(rec.body);
            break;
          case S_PONG:
            this._onPong(rec.body);
            break;
          case S_ERROR:
            this._onError(rec.body);
            break;
          case S_SESSION:
            this._onSession(rec.body);
            break;
          case S_INVENTORY:
            this.inventory = decodeInventory(rec.body);
            this._emit("inventory", { slots: this.inventory });
            break;
          case S_CHAT:
            this._emit("chat", decodeChat(rec.body));
            break;
          case S_RESULT:
            this._emit("result", decodeResult(rec.body));
            break;
          default:
            break; // unknown kinds are skipped (forward compatibility)
        }
      }
    } catch (e) {
      if (e instanceof ProtocolError) this._protocolError(e.message);
      else throw e;
    }
  }

  _protocolError(message) {
    this.stats.protocolErrors++;
    this._emit("protocolError", { message });
    this._drop(4002, "malformed message");
  }

  _anomaly(message) {
    this.stats.anomalies++;
    this._emit("anomaly", { message });
  }

  /** SESSION: [resume_token:16][grace_s:u16]; renewed on every entry. */
  _onSession(body) {
    if (body.byteLength !== 18) throw new ProtocolError("SESSION body is not 18 bytes");
    let hex = "";
    for (let i = 0; i < 16; i++) hex += body[i].toString(16).padStart(2, "0");
    this.resumeToken = hex;
    this.resumeGraceS = body[16] | (body[17] << 8);
    this._emit("session", { resumeToken: hex, graceS: this.resumeGraceS });
  }

  _onWelcome(body) {
    if (this.welcome) throw new ProtocolError("second WELCOME in one session");
    const w = decodeWelcome(body);
    for (let i = 0; i < w.owners.length; i++) {
      if (w.owners[i] >= w.nShards) {
        this._anomaly(`cell ${i} owned by shard ${w.owners[i]} of ${w.nShards}`);
        break;
      }
    }
    this.welcome = w;
    this._welcomeAt = now();
    clearInterval(this._inputTimer);
    const gen = this._gen;
    this._inputTimer = setInterval(() => {
      if (gen === this._gen) this._sendInputTick();
    }, 1000 / w.tickHz);
    this._emit("welcome", w);
  }

  _onState(body) {
    if (!this.welcome) throw new ProtocolError("STATE before WELCOME");
    const s = parseState(body);
    const anomalies = this._table.apply(s);
    const entities = this._table.snapshot(anomalies);
    const self = entities.get(this.welcome.entityId) || null;
    if (!self) anomalies.push("own entity not in the slot table");
    for (const a of anomalies) this._anomaly(a);

    const t = now();
    if (s.ackSeq > this._lastAck) {
      const sent = this._pendingAcks.get(s.ackSeq);
      if (sent !== undefined) this.stats.ackLatencyMs = t - sent;
      for (const k of this._pendingAcks.keys()) if (k <= s.ackSeq) this._pendingAcks.delete(k);
      this._lastAck = s.ackSeq;
    } else if (s.ackSeq < this._lastAck) {
      this._anomaly(`ack_seq went back from ${this._lastAck} to ${s.ackSeq}`);
    }
    this.stats.statesReceived++;
    const state = {
      tick: s.tick,
      ackSeq: s.ackSeq,
      flags: s.flags,
      reset: (s.flags & STATE_RESET) !== 0,
      shard: s.shard,
      entities,
      self,
      enters: s.enters.length,
      leaves: s.leaves.length,
      updates: s.deltas.length,
      ackLatencyMs: this.stats.ackLatencyMs,
      receivedAt: t,
    };
    this.lastState = state;
    this._emit("state", state);
  }

  _onPong(body) {
    const r = new Reader(body);
    const nonce = r.u32("nonce");
    const tick = r.u32("tick");
    r.done("PONG");
    const sent = this._pings.get(nonce);
    if (sent === undefined) return;
    this._pings.delete(nonce);
    const rtt = now() - sent;
    this.stats.rttMs = rtt;
    this._emit("pong", { nonce, tick, rtt });
  }

  _onError(body) {
    const r = new Reader(body);
    const code = r.u16("code");
    const len = r.u8("reason length");
    const reason = r.string(len, "reason");
    r.done("ERROR");
    this._emit("error", { code, name: ERROR_NAMES[code] || `error_${code}`, reason });
  }

  /* ---- outgoing ---- */
  _canSend() {
    const ws = this._ws;
    return !!ws && this._opened && ws.readyState === 1 && ws.bufferedAmount < MAX_BUFFERED_BYTES;
  }

  setHeading(dx, dy) {
    this._heading = clampHeading(dx, dy);
  }

  get heading() {
    return [...this._heading];
  }

  _sendInputTick() {
    if (!this.welcome || !this._canSend()) return;
    const [dx, dy] = this._heading;
    const moving = dx !== 0 || dy !== 0;
    const wasMoving = this._lastSent[0] !== 0 || this._lastSent[1] !== 0;
    if (!moving && !wasMoving) return;
    const seq = ++this._seq;
    this._ws.send(encodeInput(seq, dx, dy));
    this.stats.inputsSent++;
    this._lastSent = [dx, dy];
    this._pendingAcks.set(seq, now());
    if (this._pendingAcks.size > MAX_PENDING_ACKS) {
      this._pendingAcks.delete(this._pendingAcks.keys().next().value);
    }
  }

  /** Asks to pick up item entityId (within reach). Returns the request
   *  id echoed in the "result" event, or null when not connected. */
  pickup(entityId) {
    if (!this.welcome || !this._canSend()) return null;
    const req = (this._req = ((this._req || 0) + 1) >>> 0);
    this._ws.send(encodePickup(req, entityId));
    return req;
  }

  /** Asks to drop inventory slot (0..31) at the player's feet. */
  drop(slot) {
    if (!this.welcome || !this._canSend()) return null;
    const req = (this._req = ((this._req || 0) + 1) >>> 0);
    this._ws.send(encodeDrop(req, slot));
    return req;
  }

  /** Says a chat line (throws RangeError for text the server refuses). */
  say(text) {
    const rec = encodeChat(text);
    if (!this.welcome || !this._canSend()) return false;
    this._ws.send(rec);
    return true;
  }

  ping() {
    if (!this._canSend()) return null;
    const nonce = (this._nonce = (this._nonce + 1) >>> 0);
    this._pings.set(nonce, now());
    if (this._pings.size > 16) this._pings.delete(this._pings.keys().next().value);
    this._ws.send(encodePing(nonce));
    this.stats.pingsSent++;
    return nonce;
  }
}

export default TesseraClient;
