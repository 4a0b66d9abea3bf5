/* wire.mjs - a small, independent encoder of Tessera's server-to-client
 * records (docs/protocol.md), for the client library's unit test and the
 * mock server. Written from the spec, not from web/tessera.js. */

export class Writer {
  constructor() {
    this.bytes = [];
  }
  u8(v) {
    this.bytes.push(v & 0xff);
    return this;
  }
  i8(v) {
    return this.u8(v < 0 ? v + 256 : v);
  }
  u16(v) {
    return this.u8(v).u8(v >>> 8);
  }
  u32(v) {
    v >>>= 0;
    return this.u8(v).u8(v >>> 8).u8(v >>> 16).u8(v >>> 24);
  }
  i32(v) {
    return this.u32(v | 0);
  }
  f32(v) {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.u8(dv.getUint8(i));
    return this;
  }
  varint(v) {
    // v: Number (may exceed 2^32) or BigInt
    let x = BigInt(v);
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x) b |= 0x80;
      this.u8(b);
    } while (x);
    return this;
  }
  raw(arr) {
    for (const b of arr) this.u8(b);
    return this;
  }
  str(s) {
    const b = new TextEncoder().encode(s);
    this.u8(b.length);
    return this.raw(b);
  }
  get length() {
    return this.bytes.length;
  }
  toUint8Array() {
    return Uint8Array.from(this.bytes);
  }
}

/** kind:u8 len:varint body */
export function record(kind, body) {
  const b = body instanceof Writer ? body.toUint8Array() : Uint8Array.from(body);
  return new Writer().u8(kind).varint(b.length).raw(b).toUint8Array();
}

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function welcomeBody(w) {
  const b = new Writer()
    .u16(w.version ?? 1)
    .u32(w.entityId)
    .u32(w.tick ?? 0)
    .u16(w.tickHz ?? 20)
    .u32(w.worldW)
    .u32(w.worldH)
    .u16(w.cellSize)
    .u8(w.nShards)
    .f32(w.aoiRadius)
    .f32(w.entityRadius)
    .f32(w.playerSpeed)
    .u16(w.cellsX)
    .u16(w.cellsY)
    .raw(w.owners)
    .u16(w.obstacles.length);
  for (const o of w.obstacles) b.f32(o.x).f32(o.y).f32(o.r);
  return b;
}

/** s: {tick, ackSeq, flags, shard, leaves: [slot], enters: [{slot, id, kind,
 *  xq, yq, name}], deltas: Map(slot -> [dx, dy] | {abs: [x, y]}), nBits?} */
export function stateBody(s) {
  const b = new Writer().u32(s.tick).u32(s.ackSeq ?? 0).u8(s.flags ?? 0).u8(s.shard ?? 0);
  b.varint(s.leaves?.length ?? 0);
  for (const l of s.leaves ?? []) b.varint(l);
  b.varint(s.enters?.length ?? 0);
  for (const e of s.enters ?? []) {
    b.varint(e.slot).u32(e.id).u8(e.kind).i32(e.xq).i32(e.yq);
    // an item (kind 2) carries its descriptor in the name field
    if (e.item) b.u8(3).u8(e.item[0]).u16(e.item[1]);
    else b.str(e.name ?? "");
  }
  const deltas = s.deltas ?? new Map();
  const slots = [...deltas.keys()].sort((x, y) => x - y);
  const nBits = s.nBits ?? (slots.length ? slots[slots.length - 1] + 1 : 0);
  b.varint(nBits);
  const bitmap = new Uint8Array(Math.ceil(nBits / 8));
  for (const sl of slots) bitmap[sl >> 3] |= 1 << (sl & 7);
  b.raw(bitmap);
  for (const sl of slots) {
    const d = deltas.get(sl);
    if (d.abs) b.i8(-128).i32(d.abs[0]).i32(d.abs[1]);
    else b.i8(d[0]).i8(d[1]);
  }
  return b;
}

export function pongBody(nonce, tick) {
  return new Writer().u32(nonce).u32(tick);
}

export function errorBody(code, reason) {
  const r = new TextEncoder().encode(reason);
  return new Writer().u16(code).u8(r.length).raw(r);
}

/* INVENTORY: entries [[slot, kind, qty], ...] as given (any order). */
export function inventoryBody(entries, nSlots = 32) {
  const b = new Writer().u8(nSlots).u8(entries.length);
  for (const [slot, kind, qty] of entries) b.u8(slot).u8(kind).u16(qty);
  return b;
}

export function chatBody(from, name, text) {
  return new Writer().u32(from).str(name).str(text);
}

export function resultBody(r) {
  const reason = new TextEncoder().encode(r.reason ?? "");
  return new Writer().u32(r.req).u8(r.action).u16(r.code ?? 0).u32(r.entityId ?? 0).u8(r.slot ?? 0)
    .u8(r.itemKind ?? 0).u16(r.quantity ?? 0).u8(reason.length).raw(reason);
}
