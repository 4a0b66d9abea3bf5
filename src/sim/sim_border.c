/* sim_border.c - what crosses shard borders: handoffs (an entity moves to
 * the shard that owns the cell it walked into) and ghosts (read-only
 * copies of border entities sent to neighbours every tick).
 *
 * Handoff at the end of tick T: the old owner sends the entity's full
 * state (for a player: session, last input seq, gateway sequence, held
 * inputs and the client's slot table) to the new owner and keeps the
 * entity as a ghost of the new owner, so watchers on its side never see
 * it vanish. It remembers the session for SIM_FORWARD_TICKS and forwards
 * inputs and leaves that still reach it. The new owner adopts the entity
 * when it drains its inbox at T+1 (turning its ghost copy into the owned
 * entity in the same slot), sends the gateway a ROUTE, and the client's
 * next frame comes from it: no gap, no duplicate.
 *
 *   HANDOFF u16 type, u32 tick, u16 src, u32 count, count x ENTITY
 *   ENTITY  u32 id, u8 kind, f32 x, y, dir_x, dir_y, speed, u32 wander_tick,
 *           u8 name_len, name, u8 has_client, [CLIENT]
 *   CLIENT  u32 session, u16 gw, u32 account, u32 last_seq, u32 next_gseq,
 *           u8 n_pending, n x (u32 gseq, u32 seq, f32 dx, f32 dy),
 *           u16 n_known, n x (u16 view slot, u32 id),
 *           u8 detached, u32 detach_tick,
 *           ITEMS (inventory, chat bucket, held records: sim_items.c)
 *   GHOSTS  u16 type, u32 tick, u16 src, u32 count,
 *           count x (u32 id, u8 kind, f32 x, f32 y, u8 name_len, name) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"
#include "sim_log.h"

/* ---- forwarding table ---- */

int sim_forward_lookup(sim_shard *s, uint32_t session_id)
{
    uint32_t i = core_idmap_get(&s->forward, session_id);
    return i == CORE_IDMAP_NONE ? -1 : s->fwd[i].shard;
}

static void forward_del_at(sim_shard *s, uint32_t i)
{
    core_idmap_del(&s->forward, s->fwd[i].session_id);
    s->fwd[i] = s->fwd[--s->n_fwd];
    if (i < s->n_fwd)
        core_idmap_put(&s->forward, s->fwd[i].session_id, i);
}

void sim_forward_add(sim_shard *s, uint32_t session_id, uint16_t shard)
{
    uint32_t i = core_idmap_get(&s->forward, session_id);
    if (i == CORE_IDMAP_NONE) {
        if (s->n_fwd == s->fwd_cap) {
            s->fwd_cap = s->fwd_cap ? s->fwd_cap * 2 : 64;
            s->fwd = realloc(s->fwd, s->fwd_cap * sizeof *s->fwd);
            if (!s->fwd)
                core_die("out of memory");
        }
        i = s->n_fwd++;
        core_idmap_put(&s->forward, session_id, i);
    }
    s->fwd[i] = (sim_forward){session_id, shard, s->tick + SIM_FORWARD_TICKS};
}

void sim_forward_expire(sim_shard *s)
{
    for (uint32_t i = 0; i < s->n_fwd;) {
        if ((int32_t)(s->tick - s->fwd[i].expire_tick) >= 0)
            forward_del_at(s, i);
        else
            i++;
    }
}

/* ---- handoff ---- */

static void write_entity(sim_shard *s, core_buf *b, uint32_t e)
{
    sim_ent_write(b, s, e); /* the same ENTITY encoding snapshots use */
    uint32_t ci = s->client[e];
    core_buf_u8(b, ci != SIM_NONE);
    if (ci == SIM_NONE)
        return;
    sim_client *c = &s->clients[ci];
    core_buf_u32(b, c->session_id);
    core_buf_u16(b, c->gw_id);
    core_buf_u32(b, c->account_id);
    core_buf_u32(b, c->last_seq);
    core_buf_u32(b, c->next_gseq);
    uint32_t n_pending = sim_client_n_pending(c);
    core_buf_u8(b, (uint8_t)n_pending);
    for (uint32_t i = 0; i < n_pending; i++) {
        const sim_pending *p = &c->more->pending[i];
        core_buf_u32(b, p->gseq);
        core_buf_u32(b, p->seq);
        core_buf_f32(b, p->dir_x);
        core_buf_f32(b, p->dir_y);
    }
    core_buf_u16(b, c->n_known);
    for (uint16_t k = 0; k < c->slot_hi; k++) {
        if (!c->known_id[k])
            continue;
        core_buf_u16(b, k);
        core_buf_u32(b, c->known_id[k]);
    }
    core_buf_u8(b, c->detached);
    core_buf_u32(b, c->detach_tick);
    sim_items_write_client(s, b, c);
}

void sim_handoffs_send(sim_shard *s)
{
    size_t count_at[BUS_MAX_SHARDS];
    uint32_t counts[BUS_MAX_SHARDS] = {0};
    if (s->cells->n_shards == 1)
        return; /* everything is ours */
    for (uint32_t e = 0; e < s->n_used; e++) {
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        int owner = spatial_cellmap_owner(s->cells, s->x[e], s->y[e]);
        if (owner == s->index)
            continue;
        core_buf *b = &s->out[owner];
        if (counts[owner] == 0) {
            core_buf_reset(b);
            core_buf_u16(b, PROTO_BUS_HANDOFF);
            core_buf_u32(b, s->tick);
            core_buf_u16(b, s->index);
            count_at[owner] = b->len;
            core_buf_u32(b, 0);
        }
        counts[owner]++;
        write_entity(s, b, e);
        /* keep it as a ghost of the new owner until its ghosts arrive */
        s->flags[e] |= SIM_F_GHOST;
        s->ghost_src[e] = (uint8_t)owner;
        s->ghost_stamp[e] = s->tick + 1;
        s->n_owned--;
        s->n_ghosts++;
        s->stats.handoffs_out++;
        core_counter_add(s->m_handoffs_out, 1);
        uint32_t ci = s->client[e];
        if (ci != SIM_NONE) {
            sim_client *c = &s->clients[ci];
            core_log_ids ids = {.session = c->session_id, .entity = s->id[e], .shard = s->index};
            core_log(CORE_LOG_DEBUG, "sim", &ids, "handoff to shard %d", owner);
            sim_forward_add(s, c->session_id, (uint16_t)owner);
            s->client[e] = SIM_NONE;
            sim_client_release(s, ci);
        }
    }
    for (int sh = 0; sh < s->cells->n_shards; sh++) {
        if (!counts[sh])
            continue;
        core_buf_put_u32_at(&s->out[sh], count_at[sh], counts[sh]);
        if (bus_send(s->bus, BUS_EP_SHARD(sh), s->out[sh].data, s->out[sh].len) != BUS_OK)
            core_log(CORE_LOG_ERROR, "sim", NULL, "handoff to shard %d could not be sent", sh);
    }
}

static int read_client(sim_shard *s, core_rd *r, uint32_t slot)
{
    uint32_t session = core_rd_u32(r);
    uint16_t gw = core_rd_u16(r);
    uint32_t account = core_rd_u32(r);
    uint32_t last_seq = core_rd_u32(r);
    uint32_t next_gseq = core_rd_u32(r);
    uint8_t n_pending = core_rd_u8(r);
    if (!core_rd_ok(r) || n_pending > SIM_PENDING_MAX || gw >= BUS_MAX_GWS || session == 0)
        return -1;
    uint32_t ci = sim_client_alloc(s);
    sim_client *c = &s->clients[ci];
    c->session_id = session;
    c->gw_id = gw;
    c->account_id = account;
    c->last_seq = last_seq;
    c->next_gseq = next_gseq;
    c->slot = slot;
    c->welcomed = true;
    c->err_refill_tick = s->tick;
    c->sent_seq = last_seq;
    for (uint32_t i = 0; i < n_pending; i++) {
        sim_client_more *m = sim_client_pending_reserve(c);
        sim_pending *p = &m->pending[m->n_pending++];
        p->gseq = core_rd_u32(r);
        p->seq = core_rd_u32(r);
        p->dir_x = core_rd_f32(r);
        p->dir_y = core_rd_f32(r);
        p->rec_kind = 0;
    }
    /* Our copies of these entities may stand elsewhere than the sender's
     * did: the first STATE from here sends every position whole. */
    c->is_view_stale = true;
    uint16_t n_known = core_rd_u16(r);
    for (uint16_t i = 0; i < n_known && core_rd_ok(r); i++) {
        uint16_t k = core_rd_u16(r);
        uint32_t id = core_rd_u32(r);
        if (k >= s->cfg->aoi_max_entities || !id)
            continue;
        sim_client_view_reserve(s, c, k);
        if (c->known_id[k])
            continue;
        c->known_id[k] = id;
        c->n_known++;
        if (k >= c->slot_hi)
            c->slot_hi = (uint16_t)(k + 1);
    }
    c->detached = core_rd_u8(r) != 0;
    c->detach_tick = core_rd_u32(r);
    sim_items_read_client(s, r, c); /* a short block fails core_rd_ok below */
    s->client[slot] = ci;
    core_idmap_put(&s->sessions, session, ci);
    /* it came back before the forwarding entry expired */
    uint32_t fi = core_idmap_get(&s->forward, session);
    if (fi != CORE_IDMAP_NONE)
        forward_del_at(s, fi);
    core_buf_reset(&s->msg);
    proto_route rt = {session, s->id[slot], s->index};
    proto_bus_route_write(&s->msg, &rt);
    bus_send(s->bus, BUS_EP_GW(gw), s->msg.data, s->msg.len);
    return core_rd_ok(r) ? 0 : -1;
}

void sim_handoff_recv(sim_shard *s, core_rd *r)
{
    core_rd_u32(r); /* tick */
    uint16_t src = core_rd_u16(r);
    uint32_t count = core_rd_u32(r);
    for (uint32_t i = 0; i < count && core_rd_ok(r); i++) {
        uint32_t id = core_rd_u32(r);
        uint8_t kind = core_rd_u8(r);
        float x = core_rd_f32(r), y = core_rd_f32(r);
        float dx = core_rd_f32(r), dy = core_rd_f32(r), speed = core_rd_f32(r);
        uint32_t wander = core_rd_u32(r);
        uint8_t nl = core_rd_u8(r);
        const uint8_t *name = core_rd_bytes(r, nl);
        uint8_t has_client = core_rd_u8(r);
        if (!core_rd_ok(r) || !id || nl > PROTO_NAME_MAX || !isfinite(x) || !isfinite(y)) {
            core_log(CORE_LOG_ERROR, "sim", NULL, "malformed handoff from shard %u", src);
            return;
        }
        uint32_t slot = core_idmap_get(&s->ids, id);
        if (slot != CORE_IDMAP_NONE && !(s->flags[slot] & SIM_F_GHOST)) {
            core_log(CORE_LOG_ERROR, "sim", NULL, "handoff of entity %u that we own", id);
            return;
        }
        if (slot == CORE_IDMAP_NONE) {
            slot = sim_slot_alloc(s);
            s->id[slot] = id;
            core_idmap_put(&s->ids, id, slot);
        } else {
            s->n_ghosts--;
        }
        s->flags[slot] = SIM_F_ALIVE;
        /* an item keeps what its ghost had (a new one, the descriptor
         * every new slot had); anything else takes the name */
        if (kind != PROTO_KIND_ITEM)
            sim_name_set(s, slot, (const char *)name, nl);
        else if (s->kind[slot] != PROTO_KIND_ITEM)
            sim_label_item(s, slot, (sim_item){.qty = 1, .kind = 1});
        s->kind[slot] = kind;
        sim_clamp_world(s, &x, &y);
        if (!isfinite(dx) || !isfinite(dy) || dx * dx + dy * dy > 1.002001f)
            dx = dy = 0.0f;
        if (!(speed >= 0.0f && speed <= 1000.0f))
            speed = (float)s->cfg->player_speed;
        s->x[slot] = x;
        s->y[slot] = y;
        s->dir_x[slot] = dx;
        s->dir_y[slot] = dy;
        s->speed[slot] = speed;
        s->wander_tick[slot] = wander;
        s->client[slot] = SIM_NONE;
        sim_entity_place(s, slot);
        s->n_owned++;
        s->stats.handoffs_in++;
        core_counter_add(s->m_handoffs_in, 1);
        if (has_client && read_client(s, r, slot) != 0) {
            core_log(CORE_LOG_ERROR, "sim", NULL, "malformed handoff client from shard %u", src);
            return;
        }
    }
}

/* ---- ghosts ---- */

/* Per region cell: 1 when the cell and its eight neighbours are ours, so
 * no entity in it is within the AOI radius (<= cell_size) of another
 * shard's cell and the per-entity border test can be skipped. Recomputed
 * when the cell map's epoch changes. */
static const uint8_t *cells_inner(sim_shard *s)
{
    const spatial_cellmap *cm = s->cells;
    if (s->cell_inner && s->cell_inner_epoch == cm->epoch + 1)
        return s->cell_inner;
    size_t n = (size_t)cm->cells_x * cm->cells_y;
    uint8_t *in = realloc(s->cell_inner, n);
    if (!in)
        core_die("out of memory");
    for (int cy = 0; cy < cm->cells_y; cy++)
        for (int cx = 0; cx < cm->cells_x; cx++) {
            bool ours = true;
            for (int j = -1; j <= 1 && ours; j++)
                for (int i = -1; i <= 1 && ours; i++) {
                    int x = cx + i, y = cy + j;
                    if (x >= 0 && y >= 0 && x < cm->cells_x && y < cm->cells_y)
                        ours = cm->owner[(size_t)y * cm->cells_x + (size_t)x] == s->index;
                }
            in[(size_t)cy * cm->cells_x + (size_t)cx] = ours;
        }
    s->cell_inner = in;
    s->cell_inner_epoch = cm->epoch + 1;
    return in;
}

void sim_ghosts_send(sim_shard *s)
{
    const float r = (float)s->cfg->aoi_radius;
    const spatial_cellmap *cm = s->cells;
    size_t count_at[BUS_MAX_SHARDS];
    uint32_t counts[BUS_MAX_SHARDS] = {0};
    for (int sh = 0; sh < cm->n_shards; sh++) {
        core_buf *b = &s->out[sh];
        core_buf_reset(b);
        core_buf_u16(b, PROTO_BUS_GHOSTS);
        core_buf_u32(b, s->tick);
        core_buf_u16(b, s->index);
        count_at[sh] = b->len;
        core_buf_u32(b, 0);
    }
    const uint8_t *inner = cm->n_shards > 1 ? cells_inner(s) : NULL;
    for (uint32_t e = 0; e < s->n_used && inner; e++) {
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        if (inner[spatial_cellmap_cell(cm, s->x[e], s->y[e])])
            continue;
        /* every cell the AOI square around e touches contains one of these
         * nine points, since aoi_radius <= cell_size */
        uint64_t sent = 1ull << s->index;
        for (int j = -1; j <= 1; j++)
            for (int i = -1; i <= 1; i++) {
                int o = spatial_cellmap_owner(cm, s->x[e] + (float)i * r, s->y[e] + (float)j * r);
                if (sent & (1ull << o))
                    continue;
                sent |= 1ull << o;
                core_buf *b = &s->out[o];
                uint8_t label[PROTO_NAME_MAX]; /* an item's is its descriptor */
                size_t nl = sim_entity_label(s, e, label);
                core_buf_u32(b, s->id[e]);
                core_buf_u8(b, s->kind[e]);
                core_buf_f32(b, s->x[e]);
                core_buf_f32(b, s->y[e]);
                core_buf_u8(b, (uint8_t)nl);
                core_buf_append(b, label, nl);
                counts[o]++;
            }
    }
    /* every other shard hears from us every tick, even with no ghosts, so
     * it can drop ghosts that left the border */
    for (int sh = 0; sh < cm->n_shards; sh++) {
        if (sh == s->index)
            continue;
        core_buf_put_u32_at(&s->out[sh], count_at[sh], counts[sh]);
        bus_send(s->bus, BUS_EP_SHARD(sh), s->out[sh].data, s->out[sh].len);
    }
}

void sim_ghosts_recv(sim_shard *s, core_rd *r)
{
    uint32_t tick = core_rd_u32(r);
    uint16_t src = core_rd_u16(r);
    uint32_t count = core_rd_u32(r);
    if (!core_rd_ok(r) || src >= BUS_MAX_SHARDS || src == s->index)
        return;
    if ((int32_t)(tick - s->ghost_tick[src]) > 0)
        s->ghost_tick[src] = tick;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t id = core_rd_u32(r);
        uint8_t kind = core_rd_u8(r);
        float x = core_rd_f32(r), y = core_rd_f32(r);
        uint8_t nl = core_rd_u8(r);
        const uint8_t *name = core_rd_bytes(r, nl);
        if (!core_rd_ok(r) || !id || nl > PROTO_NAME_MAX || !isfinite(x) || !isfinite(y))
            return;
        uint32_t slot = core_idmap_get(&s->ids, id);
        if (slot != CORE_IDMAP_NONE && !(s->flags[slot] & SIM_F_GHOST))
            continue; /* ours now: a ghost sent before its handoff reached us */
        if (slot == CORE_IDMAP_NONE) {
            slot = sim_slot_alloc(s);
            s->id[slot] = id;
            core_idmap_put(&s->ids, id, slot);
            s->flags[slot] = SIM_F_ALIVE | SIM_F_GHOST;
            s->n_ghosts++;
        }
        if (kind == PROTO_KIND_ITEM)
            sim_items_ghost_label(s, slot, name, nl);
        else
            sim_name_set(s, slot, (const char *)name, nl);
        s->kind[slot] = kind;
        sim_clamp_world(s, &x, &y);
        s->x[slot] = x;
        s->y[slot] = y;
        s->ghost_src[slot] = (uint8_t)src;
        if ((int32_t)(tick - s->ghost_stamp[slot]) > 0)
            s->ghost_stamp[slot] = tick;
        sim_entity_moved(s, slot);
    }
}
