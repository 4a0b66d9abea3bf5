/* sim_snapshot.c - cell snapshots: the entity record shared with the tick
 * log, the cell state hash, the snapshot codec and its schedule, and the
 * helpers a replay uses to put logged entities into a shard.
 *
 * All integers little-endian, floats IEEE-754 binary32 bit patterns:
 *
 *   ENTITY    u32 id (!= 0), u8 kind (PROTO_KIND_*: player, NPC, item), f32 x, y, dir_x, dir_y,
 *             speed, u32 wander_tick, u8 name_len (<= 32), name (no NUL)
 *   SNAPSHOT  u32 magic "TSNP", u8 version (1), u32 cell, u32 tick (the
 *             shard's), i64 run_base (store tick = run_base + tick), u64
 *             world seed, u64 map checksum, u32 world_w, u32 world_h,
 *             u16 cell_size, u16 tick_hz, f32 entity_radius, i64 seq_hint,
 *             u64 cell hash, u32 n, n x ENTITY in strictly ascending id
 *
 * The store row carries (cell, store tick, checksum over both and the
 * bytes); the decoder here rejects anything that is not exactly one
 * well-formed snapshot. seq_hint is the highest event seq of the cell's
 * tick log known committed when the snapshot was taken: every later
 * record has a larger seq, so a replay reads the log from there.
 *
 * Schedule: a cell is snapshotted at the end of the tick of its first
 * record (so a replay can start anywhere in its history), then every
 * snapshot_interval_s, staggered across cells by a hash of the cell index
 * so the store sees a steady trickle rather than a burst; and at once
 * after a hole in its log (a record the store refused or failed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_hash.h"
#include "core_log.h"
#include "sim_log.h"
#include "store.h"

#define ENT_MIN_BYTES 30 /* an ENTITY with an empty name */

void sim_ent_write(core_buf *b, const sim_shard *s, uint32_t e)
{
    char name[PROTO_NAME_MAX + 1];
    size_t nl = sim_name_get(s, e, name);
    core_buf_u32(b, s->id[e]);
    core_buf_u8(b, s->kind[e]);
    core_buf_f32(b, s->x[e]);
    core_buf_f32(b, s->y[e]);
    core_buf_f32(b, s->dir_x[e]);
    core_buf_f32(b, s->dir_y[e]);
    core_buf_f32(b, s->speed[e]);
    core_buf_u32(b, s->wander_tick[e]);
    core_buf_u8(b, (uint8_t)nl);
    core_buf_append(b, name, nl);
}

int sim_ent_read(core_rd *r, sim_ent_rec *out)
{
    memset(out, 0, sizeof *out);
    out->id = core_rd_u32(r);
    out->kind = core_rd_u8(r);
    out->x = core_rd_f32(r);
    out->y = core_rd_f32(r);
    out->dir_x = core_rd_f32(r);
    out->dir_y = core_rd_f32(r);
    out->speed = core_rd_f32(r);
    out->wander_tick = core_rd_u32(r);
    uint8_t nl = core_rd_u8(r);
    if (!core_rd_ok(r) || nl > PROTO_NAME_MAX)
        return -1;
    const uint8_t *name = core_rd_bytes(r, nl);
    if (!name || memchr(name, 0, nl))
        return -1;
    memcpy(out->name, name, nl);
    /* the live shard only ever holds finite, validated values */
    if (!out->id || out->kind > PROTO_KIND_ITEM || !isfinite(out->x) || !isfinite(out->y) ||
        !isfinite(out->dir_x) || !isfinite(out->dir_y) ||
        out->dir_x * out->dir_x + out->dir_y * out->dir_y > 1.01f ||
        !(out->speed >= 0.0f && out->speed <= 10000.0f))
        return -1;
    return 0;
}

uint64_t sim_cell_hash(const sim_shard *s, const sim_member *m, size_t n)
{
    uint64_t h = CORE_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        uint32_t e = m[i].slot;
        h = core_fnv1a(h, &s->id[e], 4);
        h = core_fnv1a(h, &s->kind[e], 1);
        h = core_fnv1a(h, &s->x[e], 4);
        h = core_fnv1a(h, &s->y[e], 4);
        h = core_fnv1a(h, &s->dir_x[e], 4);
        h = core_fnv1a(h, &s->dir_y[e], 4);
    }
    return h;
}

uint64_t sim_map_checksum(const sim_map *map)
{
    uint64_t h = CORE_FNV_OFFSET;
    for (uint32_t i = 0; map && i < map->n_obstacles; i++) {
        const proto_obstacle *o = &map->obstacles[i];
        h = core_fnv1a(h, &o->x, 4);
        h = core_fnv1a(h, &o->y, 4);
        h = core_fnv1a(h, &o->r, 4);
    }
    return h;
}

static int cmp_member(const void *a, const void *b)
{
    const sim_member *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

uint64_t sim_shard_cell_hash(const sim_shard *s, uint32_t cell, uint32_t *out_n)
{
    sim_member *m = malloc((s->n_owned + 1) * sizeof *m);
    if (!m)
        core_die("out of memory");
    size_t n = 0;
    for (uint32_t e = 0; e < s->n_used && n < s->n_owned; e++)
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE &&
            spatial_cellmap_cell(s->cells, s->x[e], s->y[e]) == cell)
            m[n++] = (sim_member){s->id[e], e};
    qsort(m, n, sizeof *m, cmp_member);
    uint64_t h = sim_cell_hash(s, m, n);
    free(m);
    if (out_n)
        *out_n = (uint32_t)n;
    return h;
}

/* ---- snapshot codec ---- */

void sim_snap_encode(core_buf *out, const sim_shard *s, uint32_t cell, const sim_member *m,
                     size_t n, uint64_t hash, int64_t seq_hint, int64_t run_base, uint64_t map_sum)
{
    core_buf_u32(out, SIM_SNAP_MAGIC);
    core_buf_u8(out, SIM_SNAP_VERSION);
    core_buf_u32(out, cell);
    core_buf_u32(out, s->tick);
    core_buf_u64(out, (uint64_t)run_base);
    core_buf_u64(out, s->cfg->seed);
    core_buf_u64(out, map_sum);
    core_buf_u32(out, s->cells->world_w);
    core_buf_u32(out, s->cells->world_h);
    core_buf_u16(out, s->cells->cell_size);
    core_buf_u16(out, (uint16_t)s->cfg->tick_hz);
    core_buf_f32(out, (float)s->cfg->entity_radius);
    core_buf_u64(out, (uint64_t)seq_hint);
    core_buf_u64(out, hash);
    core_buf_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        sim_ent_write(out, s, m[i].slot);
}

static int snap_fail(sim_snap *out, char *err, size_t err_len, const char *why)
{
    snprintf(err, err_len, "malformed snapshot: %s", why);
    sim_snap_free(out);
    return -1;
}

int sim_snap_decode(sim_snap *out, const void *p, size_t len, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    core_rd r = core_rd_init(p, len);
    uint32_t magic = core_rd_u32(&r);
    uint8_t version = core_rd_u8(&r);
    if (!core_rd_ok(&r) || magic != SIM_SNAP_MAGIC)
        return snap_fail(out, err, err_len, "not a cell snapshot (bad magic)");
    if (version != SIM_SNAP_VERSION)
        return snap_fail(out, err, err_len, "unknown version");
    out->cell = core_rd_u32(&r);
    out->tick = core_rd_u32(&r);
    out->run_base = (int64_t)core_rd_u64(&r);
    out->seed = core_rd_u64(&r);
    out->map_sum = core_rd_u64(&r);
    out->world_w = core_rd_u32(&r);
    out->world_h = core_rd_u32(&r);
    out->cell_size = core_rd_u16(&r);
    out->tick_hz = core_rd_u16(&r);
    out->entity_radius = core_rd_f32(&r);
    out->seq_hint = (int64_t)core_rd_u64(&r);
    out->hash = core_rd_u64(&r);
    uint32_t n = core_rd_u32(&r);
    if (!core_rd_ok(&r))
        return snap_fail(out, err, err_len, "truncated header");
    if (out->run_base < 0 || out->seq_hint < 0 || !out->tick_hz || !out->cell_size ||
        !isfinite(out->entity_radius))
        return snap_fail(out, err, err_len, "header values out of range");
    /* bound the allocation by what the bytes can hold */
    if (n > SIM_SNAP_MAX_ENTITIES || (size_t)n > core_rd_left(&r) / ENT_MIN_BYTES)
        return snap_fail(out, err, err_len, "entity count larger than the data");
    out->ents = calloc(n ? n : 1, sizeof *out->ents);
    if (!out->ents)
        core_die("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        if (sim_ent_read(&r, &out->ents[i]) != 0)
            return snap_fail(out, err, err_len, "bad entity record");
        if (i > 0 && out->ents[i].id <= out->ents[i - 1].id)
            return snap_fail(out, err, err_len, "entities not in ascending id order");
        out->n = i + 1;
    }
    if (core_rd_left(&r))
        return snap_fail(out, err, err_len, "bytes after the last entity");
    return 0;
}

void sim_snap_free(sim_snap *sn)
{
    free(sn->ents);
    sn->ents = NULL;
    sn->n = 0;
}

/* ---- schedule ---- */

void sim_snapshot_maybe(sim_shard *s, uint32_t cell, uint64_t hash)
{
    struct sim_log *l = s->log;
    sim_log_cell *c = &l->cells[cell];
    if (!c->need_snapshot && (int32_t)(s->tick - c->next_snap) < 0)
        return;
    core_buf_reset(&l->enc);
    sim_snap_encode(&l->enc, s, cell, c->mem, c->n_mem, hash, c->seq_hint, l->run_base, l->map_sum);
    store_action a = {.kind = STORE_ACT_SNAPSHOT,
                      .cell = cell,
                      .tick = l->run_base + s->tick,
                      .data = l->enc.data,
                      .len = l->enc.len};
    if (store_submit(s->st, l->cq, SIM_LOG_TOKEN(STORE_ACT_SNAPSHOT, cell, s->tick), &a) !=
        STORE_OK) {
        core_counter_add(l->m_refused, 1);
        c->need_snapshot = true; /* try again next tick */
        return;
    }
    core_counter_add(l->m_snapshots, 1);
    if (c->next_snap == 0) /* the first: stagger the cell's period */
        c->next_snap = s->tick + 1 + (uint32_t)(core_mix32(cell + 1) % l->period);
    else
        c->next_snap = s->tick + l->period;
    c->need_snapshot = false;
}

/* ---- replay helpers ---- */

void sim_ent_overwrite(sim_shard *s, uint32_t slot, const sim_ent_rec *e)
{
    /* An item keeps its label (it was never logged); one that was not an
     * item gets the descriptor every new slot had. Logged items have no
     * name. */
    if (e->kind != PROTO_KIND_ITEM)
        sim_name_set(s, slot, e->name, strnlen(e->name, PROTO_NAME_MAX));
    else if (s->kind[slot] != PROTO_KIND_ITEM)
        sim_label_item(s, slot, (sim_item){.qty = 1, .kind = 1});
    s->kind[slot] = e->kind;
    s->x[slot] = e->x;
    s->y[slot] = e->y;
    s->dir_x[slot] = e->dir_x;
    s->dir_y[slot] = e->dir_y;
    s->speed[slot] = e->speed;
    s->wander_tick[slot] = e->wander_tick;
    sim_entity_moved(s, slot);
}

uint32_t sim_ent_restore(sim_shard *s, const sim_ent_rec *e)
{
    uint32_t slot = sim_slot_alloc(s);
    s->id[slot] = e->id;
    core_idmap_put(&s->ids, e->id, slot);
    s->x[slot] = e->x;
    s->y[slot] = e->y;
    sim_entity_place(s, slot);
    sim_ent_overwrite(s, slot, e);
    s->n_owned++;
    return slot;
}
