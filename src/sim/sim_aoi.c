/* sim_aoi.c - area of interest and STATE encoding.
 *
 * For each client, every tick: collect the entities within aoi_radius from
 * the grid (ghosts included), keep the nearest aoi_max_entities (ties by
 * entity id, so the choice is deterministic), diff against the client's
 * slot table (what it was last sent), and encode leaves, enters (nearest
 * first, within the aoi_max_bytes budget) and position deltas as one
 * STATE record (format: docs/protocol.md section 7).
 *
 * Positions a client has are not stored per client: every client that
 * has an entity in view got every move of it up to the last tick, so all
 * of them hold the same position for it, kept once per entity
 * (pub_x/pub_y, updated by sim_aoi_publish after the tick's STATEs).
 * The exceptions are handled where they arise: a new slot starts
 * unpublished (NaN: any watcher gets the absolute position), a view that
 * arrives with a handoff is marked stale (every position goes whole once),
 * and a client that missed ticks (detached, a dropped STATE) gets a RESET.
 *
 * Most clients of a quiet world have nothing new most ticks, so the pass
 * itself is skipped when it cannot find anything: the world is divided
 * into squares of side aoi_radius, each stamped with the last tick in
 * which an entity in it appeared, vanished or moved (at all: any move may
 * cross the radius); a client whose 3 x 3 squares around it are older
 * than its last pass, which entered everything it selected, would get no
 * leave, enter or delta, and gets only what it is owed (an ack, records,
 * the keepalive).
 *
 * The client's queued reliable records (WELCOME, ERROR) travel in the
 * same frame as its STATE, so a client gets at most one WebSocket message
 * per tick. A tick with nothing to tell the client (no leave, enter or
 * move, no record, the same ack) sends nothing, but for a keepalive STATE
 * every keepalive_s seconds (5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "core_log.h"
#include "sim_int.h"

/* Bytes around a STATE body on the wire, counted in the client's budget:
 * the WebSocket frame header (4 at these sizes) and the record's kind and
 * length (3). */
#define FRAME_OVERHEAD 7

/* lrintf is a library call unless errno is given up for all of libm
 * (-fno-math-errno); on x86-64 it is this one instruction (rounding to
 * nearest even, as the default mode), written out: a call per entity per
 * client was 1-2% of W3's crowd. */
static inline int32_t quant(float v)
{
#if defined(__SSE2__) && defined(__x86_64__)
    return (int32_t)_mm_cvtss_si64(_mm_set_ss(v * (float)PROTO_POS_SCALE));
#else
    return (int32_t)lrintf(v * (float)PROTO_POS_SCALE);
#endif
}

/* A candidate's place in the order "nearest first, ties by entity id"
 * as one integer: the bits of a non-negative float order as the float
 * does, so comparing keys is comparing (distance squared, id). The
 * client's own entity has key 0 and comes first (ids start at 1). */
static inline uint64_t cand_key(float d2, uint32_t id)
{
    uint32_t bits;
    memcpy(&bits, &d2, sizeof bits);
    return (uint64_t)bits << 32 | id;
}

static inline float key_d2(uint64_t key)
{
    uint32_t bits = (uint32_t)(key >> 32);
    float d2;
    memcpy(&d2, &bits, sizeof d2);
    return d2;
}

void sim_cand_reserve(sim_shard *s, size_t n)
{
    if (n <= s->cand_cap)
        return;
    size_t cap = s->cand_cap ? s->cand_cap : 256;
    while (cap < n)
        cap *= 2;
    s->cand = realloc(s->cand, cap * sizeof *s->cand);
    s->cand_in = realloc(s->cand_in, cap * sizeof *s->cand_in);
    if (!s->cand || !s->cand_in)
        core_die("out of memory");
    s->cand_cap = cap;
}

static void ensure_enters(sim_shard *s)
{
    if (s->aoi_enters)
        return;
    size_t max = (size_t)s->cfg->aoi_max_entities;
    s->aoi_enters = malloc(max * sizeof *s->aoi_enters);
    s->aoi_enter_slots = malloc(max * sizeof *s->aoi_enter_slots);
    if (!s->aoi_enters || !s->aoi_enter_slots)
        core_die("out of memory");
}

/* Smallest possible enter: view slot, id, kind, position, empty label. */
#define ENTER_MIN (1 + 4 + 1 + 8 + 1)

/* Quickselect: afterwards e[0..k) are the k first in key order
 * (unordered). */
static void select_first(sim_cand *e, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        sim_cand t = e[mid];
        e[mid] = e[hi - 1];
        e[hi - 1] = t;
        uint64_t pk = t.key;
        size_t store = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (e[i].key < pk) {
                sim_cand u = e[i];
                e[i] = e[store];
                e[store++] = u;
            }
        t = e[store];
        e[store] = e[hi - 1];
        e[hi - 1] = t;
        if (store == k || store + 1 == k)
            return;
        if (store > k)
            hi = store;
        else
            lo = store + 1;
    }
}

static int enter_cmp(const void *a, const void *b)
{
    uint64_t x = ((const sim_cand *)a)->key, y = ((const sim_cand *)b)->key;
    return x < y ? -1 : x > y;
}

static core_buf *frames_for(sim_shard *s, uint16_t gw)
{
    core_buf *f = &s->frames[gw];
    if (f->len == 0)
        proto_bus_frames_begin(f, s->tick, s->index, &s->frames_count_at[gw]);
    return f;
}

void sim_aoi_clear_client(sim_shard *s, sim_client *c)
{
    (void)s;
    if (c->known_id)
        memset(c->known_id, 0, (size_t)c->known_cap * sizeof *c->known_id);
    c->n_known = 0;
    c->slot_hi = 0;
    c->is_view_stale = false; /* an empty view has no stale positions */
}

void sim_aoi_publish(sim_shard *s)
{
    for (uint32_t e = 0; e < s->n_used; e++) {
        if (!(s->flags[e] & SIM_F_ALIVE))
            continue;
        s->pub_x[e] = s->x[e];
        s->pub_y[e] = s->y[e];
    }
}

/* ---- where the world changed ---- */

static inline uint32_t chg_col(const sim_shard *s, float x)
{
    float f = x * s->chg_inv;
    if (!(f > 0.0f)) /* also NaN */
        return 0;
    uint32_t i = (uint32_t)f;
    return i < s->chg_nx ? i : s->chg_nx - 1;
}

static inline uint32_t chg_row(const sim_shard *s, float y)
{
    float f = y * s->chg_inv;
    if (!(f > 0.0f))
        return 0;
    uint32_t i = (uint32_t)f;
    return i < s->chg_ny ? i : s->chg_ny - 1;
}

static inline void chg_mark(sim_shard *s, float x, float y)
{
    s->chg_tick[(size_t)chg_row(s, y) * s->chg_nx + chg_col(s, x)] = s->tick;
}

void sim_aoi_mark_changes(sim_shard *s)
{
    for (uint32_t e = 0; e < s->n_used; e++) {
        if (!(s->flags[e] & SIM_F_ALIVE))
            continue;
        /* exact comparison: any move may change who is within the radius;
         * NaN (never published) is unequal to everything */
        if (s->x[e] == s->pub_x[e] && s->y[e] == s->pub_y[e])
            continue;
        chg_mark(s, s->x[e], s->y[e]);
        if (!isnan(s->pub_x[e]))
            chg_mark(s, s->pub_x[e], s->pub_y[e]);
    }
}

void sim_aoi_mark_gone(sim_shard *s, uint32_t slot)
{
    chg_mark(s, s->x[slot], s->y[slot]);
    if (!isnan(s->pub_x[slot]))
        chg_mark(s, s->pub_x[slot], s->pub_y[slot]);
}

bool sim_aoi_near_change(const sim_shard *s, uint32_t slot)
{
    float x = s->x[slot], y = s->y[slot];
    if (!(x == s->pub_x[slot] && y == s->pub_y[slot])) /* moved since, or new (NaN) */
        return true;
    uint32_t t = s->chg_tick[(size_t)chg_row(s, y) * s->chg_nx + chg_col(s, x)];
    return (int32_t)(t - (s->tick - 1)) >= 0;
}

/* True if nothing appeared, vanished or moved within the square of side
 * 2 * aoi_radius around (px, py) at or after tick since. Then a full AOI
 * pass of a client whose last pass (at since) left nothing out would find
 * no leave, enter or delta. */
static bool area_quiet(const sim_shard *s, float px, float py, uint32_t since)
{
    const float r = (float)s->cfg->aoi_radius;
    uint32_t x0 = chg_col(s, px - r), x1 = chg_col(s, px + r);
    uint32_t y0 = chg_row(s, py - r), y1 = chg_row(s, py + r);
    for (uint32_t y = y0; y <= y1; y++)
        for (uint32_t x = x0; x <= x1; x++)
            if ((int32_t)(s->chg_tick[(size_t)y * s->chg_nx + x] - since) >= 0)
                return false;
    return true;
}

/* Quantized published position of slot sl; false if never published. */
static inline bool pub_q(const sim_shard *s, uint32_t sl, int32_t *qx, int32_t *qy)
{
    if (isnan(s->pub_x[sl]))
        return false;
    *qx = quant(s->pub_x[sl]);
    *qy = quant(s->pub_y[sl]);
    return true;
}

/* Appends the client's frame (its reliable records, then the STATE in
 * s->scratch) to its gateway's FRAMES message. */
static void frame_out(sim_shard *s, sim_client *c)
{
    core_buf *f = frames_for(s, c->gw_id);
    core_buf *b = &s->scratch;
    c->sent_seq = c->last_seq;
    s->stats.states_sent++;
    uint32_t n_rel = sim_client_reliable_len(c);
    uint8_t flags = n_rel ? PROTO_FRAME_RELIABLE : 0;
    size_t len_at =
        proto_bus_frames_item_begin(f, s->frames_count_at[c->gw_id], c->session_id, flags);
    if (c->more) {
        core_buf_append(f, c->more->reliable.data, n_rel);
        core_buf_free(&c->more->reliable); /* rare (WELCOME, ERROR, items): no capacity kept */
    }
    proto_record_begin(f, PROTO_S_STATE, b->len);
    core_buf_append(f, b->data, b->len);
    proto_bus_frames_item_end(f, len_at);
}

static inline bool keepalive_due(const sim_shard *s, uint32_t ci)
{
    uint32_t period = (uint32_t)(s->cfg->tick_hz * s->cfg->keepalive_s); /* ticks */
    return s->tick % period == ci % period;
}

/* A client whose area is quiet: no AOI pass, only what it is owed (an
 * ack, records, the keepalive) in a STATE with no leave, enter or delta,
 * which is what the pass would have found. */
static void quiet_client(sim_shard *s, uint32_t ci)
{
    sim_client *c = &s->clients[ci];
    core_buf *b = &s->scratch;
    s->stats.aoi_quiet++;
    (void)frames_for(s, c->gw_id); /* the gateway hears from us every tick */
    if (sim_client_reliable_len(c) == 0 && c->last_seq == c->sent_seq && !keepalive_due(s, ci)) {
        s->stats.states_skipped++;
        return;
    }
    core_buf_reset(b);
    core_buf_u32(b, s->tick);
    core_buf_u32(b, c->last_seq);
    core_buf_u8(b, 0);
    core_buf_u8(b, (uint8_t)s->index);
    core_buf_varint(b, 0); /* leaves */
    core_buf_varint(b, 0); /* enters */
    core_buf_varint(b, 0); /* update bits */
    frame_out(s, c);
}

/* Entities alive within sqrt(reach2) of (px, py) into s->cand_in (the
 * client's own with key 0); returns how many. */
static size_t aoi_collect(sim_shard *s, uint32_t self, float px, float py, float reach2)
{
    float r = sqrtf(reach2);
    size_t n = sim_index_collect(s, px, py, r, s->cand, s->cand_cap);
    if (n > s->cand_cap) {
        sim_cand_reserve(s, n);
        n = sim_index_collect(s, px, py, r, s->cand, s->cand_cap);
    }
    /* Without a branch on "within reach": in a crowd about half of what
     * the buckets hold is, at random (a mispredicted branch per candidate
     * was a third of this loop). Each candidate is written and kept by
     * advancing the count (cand_in holds as many entries as cand). */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t e = s->cand[i];
        float dx = s->x[e] - px, dy = s->y[e] - py;
        float d2 = dx * dx + dy * dy;
        s->cand_in[m] = (sim_cand){e == self ? 0 : cand_key(d2, s->id[e]), e}; /* self first */
        m += (size_t)((s->flags[e] & SIM_F_ALIVE) && d2 <= reach2);
    }
    return m;
}

/* The light pass of a crowded client: its view as it is, less what died
 * or left the radius, as the candidates (all known: nothing enters). */
static size_t aoi_known(sim_shard *s, const sim_client *c, float px, float py)
{
    sim_cand_reserve(s, c->slot_hi);
    size_t m = 0;
    for (uint16_t k = 0; k < c->slot_hi; k++) {
        uint32_t id = c->known_id[k];
        if (!id)
            continue;
        uint32_t e = core_idmap_get(&s->ids, id);
        if (e == CORE_IDMAP_NONE || !(s->flags[e] & SIM_F_ALIVE))
            continue;
        float dx = s->x[e] - px, dy = s->y[e] - py;
        float d2 = dx * dx + dy * dy;
        if (d2 > s->aoi_r2)
            continue;
        s->cand_in[m] = (sim_cand){e == c->slot ? 0 : cand_key(d2, id), e};
        m++;
    }
    return m;
}

void sim_aoi_client(sim_shard *s, uint32_t ci)
{
    sim_client *c = &s->clients[ci];
    const uint32_t self = c->slot;
    const float px = s->x[self], py = s->y[self];
    if (c->aoi_tick && !c->reset && !c->is_view_stale && !c->is_view_partial &&
        area_quiet(s, px, py, c->aoi_tick)) {
        quiet_client(s, ci);
        return;
    }
    c->aoi_tick = s->tick;
    const size_t max = (size_t)s->cfg->aoi_max_entities;

    /* 1. candidates within the radius, nearest max of them kept below.
     * In a crowd (more than max within the radius) most of the work is
     * in that selection, so a capped pass remembers how far its farthest
     * kept entity was (sel_r), and the next collects only as far as those
     * same entities can be now: sel_r plus what they and the client can
     * move in a tick. If that finds at least max, the nearest max
     * are all inside it, so the choice is exactly the full pass's; if not
     * (some left, were pushed or teleported), it collects again at the
     * radius. And in a crowd the choice itself is made every crowd_every
     * ticks (the clients take turns by index); in between, a light pass
     * keeps the view (less what died or left the radius) and sends its
     * moves as always. */
    const bool was_partial = c->is_view_partial;
    const bool is_light = c->sel_r > 0.0f && s->crowd_every > 1 && !c->reset && !c->is_view_stale &&
                          (s->tick + ci) % s->crowd_every != 0;
    float reach2 = s->aoi_r2;
    size_t m;
    if (is_light) {
        m = aoi_known(s, c, px, py);
    } else {
        if (c->sel_r > 0.0f) {
            /* one tick's slack, not crowd_every's: the worst case (every
             * entity and the client racing apart for crowd_every ticks)
             * is rare, and it only costs the second collection below
             * (W3's crowd, bench_sim --hotspot 50: 16.0 -> 14.7 ms) */
            float g = c->sel_r + s->aoi_slack;
            if (g * g < reach2)
                reach2 = g * g;
        }
        m = aoi_collect(s, self, px, py, reach2);
        if (m < max && reach2 < s->aoi_r2) {
            core_counter_add(s->m_aoi_recollect, 1);
            reach2 = s->aoi_r2;
            m = aoi_collect(s, self, px, py, reach2);
        }
    }
    /* 2. the budget: nearest first */
    if (!is_light)
        c->sel_r = 0.0f;
    if (!is_light && m >= max) { /* (== max when narrowed: the full radius may hold more) */
        if (m > max)
            select_first(s->cand_in, m, max);
        if (m > max || reach2 < s->aoi_r2)
            core_counter_add(s->m_aoi_capped, 1);
        m = max;
        uint64_t far = 0;
        for (size_t i = 0; i < m; i++)
            far = s->cand_in[i].key > far ? s->cand_in[i].key : far;
        c->sel_r = sqrtf(key_d2(far));
    }
    uint32_t mark = ++s->mark;
    if (mark >= 1u << 31) { /* 2 * mark would wrap: clear stale marks */
        memset(s->aoi_mark, 0, (size_t)s->n_used * sizeof *s->aoi_mark);
        mark = s->mark = 1;
    }
    const uint32_t in_reach = 2 * mark, in_view = 2 * mark + 1;
    for (size_t i = 0; i < m; i++)
        s->aoi_mark[s->cand_in[i].slot] = in_reach;

    core_buf *b = &s->scratch;
    core_buf_reset(b);
    core_buf_u32(b, s->tick);
    core_buf_u32(b, c->last_seq);
    core_buf_u8(b, c->reset ? PROTO_STATE_RESET : 0);
    core_buf_u8(b, (uint8_t)s->index);
    const bool was_reset = c->reset;
    if (c->reset) {
        sim_aoi_clear_client(s, c);
        c->reset = false;
    }

    /* 3. leaves: view slots whose entity is gone or no longer selected */
    uint32_t view_sl[1024];
    uint16_t leaves[1024];
    size_t n_leave = 0;
    for (size_t k = 0; k < max; k++)
        view_sl[k] = SIM_NONE;
    for (uint16_t k = 0; k < c->slot_hi; k++) {
        uint32_t id = c->known_id[k];
        if (!id)
            continue;
        uint32_t sl = core_idmap_get(&s->ids, id);
        if (sl == CORE_IDMAP_NONE || s->aoi_mark[sl] < in_reach) {
            leaves[n_leave++] = k;
            c->known_id[k] = 0;
            c->n_known--;
            continue;
        }
        s->aoi_mark[sl] = in_view;
        view_sl[k] = sl;
    }
    core_buf_varint(b, n_leave);
    for (size_t i = 0; i < n_leave; i++)
        core_buf_varint(b, leaves[i]);
    while (c->slot_hi > 0 && c->known_id[c->slot_hi - 1] == 0)
        c->slot_hi--;

    /* 4. deltas for known entities whose quantized position changed since
     * the last tick (pub_x/pub_y: what every watcher was sent); after a
     * handoff, every position whole. Written aside (they follow the
     * enters on the wire) so the enters know what the budget has left:
     * entities entered this tick are not in view_sl, so the deltas do not
     * depend on them. */
    const bool stale = c->is_view_stale;
    c->is_view_stale = false;
    uint16_t hi = 0;
    for (uint16_t k = 0; k < c->slot_hi; k++) {
        uint32_t sl = view_sl[k];
        if (sl == SIM_NONE || !c->known_id[k])
            continue;
        int32_t ox, oy;
        if (stale || !pub_q(s, sl, &ox, &oy) || quant(s->x[sl]) != ox || quant(s->y[sl]) != oy)
            hi = (uint16_t)(k + 1);
    }
    core_buf *d = &s->scratch_deltas;
    core_buf_reset(d);
    core_buf_varint(d, hi);
    size_t mask_at = d->len;
    size_t mask_len = ((size_t)hi + 7) / 8;
    memset(core_buf_reserve(d, mask_len), 0, mask_len);
    d->len += mask_len;
    for (uint16_t k = 0; k < hi; k++) {
        uint32_t sl = view_sl[k];
        if (sl == SIM_NONE || !c->known_id[k])
            continue;
        int32_t qx = quant(s->x[sl]), qy = quant(s->y[sl]), ox, oy;
        bool is_rel = !stale && pub_q(s, sl, &ox, &oy); /* else the absolute position */
        /* 64-bit: positions may be far apart */
        int64_t dx = is_rel ? (int64_t)qx - ox : 0, dy = is_rel ? (int64_t)qy - oy : 0;
        if (is_rel && dx == 0 && dy == 0)
            continue;
        d->data[mask_at + k / 8] |= (uint8_t)(1u << (k % 8));
        if (is_rel && dx >= -127 && dx <= 127 && dy >= -127 && dy <= 127) {
            core_buf_u8(d, (uint8_t)(int8_t)dx);
            core_buf_u8(d, (uint8_t)(int8_t)dy);
        } else {
            core_buf_u8(d, 0x80);
            core_buf_i32(d, qx);
            core_buf_i32(d, qy);
        }
    }

    /* 5. enters: selected but not in the view, nearest first, in what the
     * per-client budget (aoi_max_bytes for the whole frame: queued
     * records, STATE header, leaves, enters, deltas) leaves after the
     * rest. Deltas are never held back (the count cap bounds them: every
     * watcher must have every move, see above); the client's own entity
     * enters whatever it costs. Whatever does not fit enters next tick. */
    ensure_enters(s);
    sim_cand *enters = s->aoi_enters; /* m <= max of them */
    size_t n_new = 0, n_new_sorted;
    for (size_t i = 0; i < m; i++)
        if (s->aoi_mark[s->cand_in[i].slot] != in_view)
            enters[n_new++] = s->cand_in[i];
    size_t budget = (size_t)s->cfg->aoi_max_bytes, n_enter = 0;
    size_t used =
        sim_client_reliable_len(c) + FRAME_OVERHEAD + b->len + d->len + core_varint_len(n_new);
    /* only the nearest few can fit (an enter is >= ENTER_MIN bytes; the
     * client's own always goes): order just those */
    size_t n_fit = (used < budget ? (budget - used) / ENTER_MIN : 0) + 1;
    if (n_fit < n_new) {
        select_first(enters, n_new, n_fit);
        n_new_sorted = n_fit;
    } else {
        n_new_sorted = n_new;
    }
    qsort(enters, n_new_sorted, sizeof *enters, enter_cmp);
    uint16_t *enter_slots = s->aoi_enter_slots;
    uint16_t free_k = 0;
    for (size_t i = 0; i < n_new_sorted; i++) {
        uint32_t e = enters[i].slot;
        uint8_t label[PROTO_NAME_MAX];
        size_t nl = sim_entity_label(s, e, label);
        while (free_k < c->slot_hi && c->known_id[free_k])
            free_k++;
        if (free_k >= max)
            break;
        sim_client_view_reserve(s, c, free_k);
        size_t cost = core_varint_len(free_k) + 4 + 1 + 8 + 1 + nl;
        if (used + cost > budget && e != self)
            break;
        used += cost;
        c->known_id[free_k] = s->id[e];
        c->n_known++;
        view_sl[free_k] = SIM_NONE; /* no delta this tick */
        enter_slots[n_enter++] = free_k;
        if (free_k >= c->slot_hi)
            c->slot_hi = (uint16_t)(free_k + 1);
        free_k++;
    }
    /* more to enter next tick, news or not (a light pass enters nothing) */
    c->is_view_partial = is_light ? was_partial : n_enter < n_new;
    core_buf_varint(b, n_enter);
    for (size_t i = 0; i < n_enter; i++) {
        uint16_t k = enter_slots[i];
        uint32_t e = core_idmap_get(&s->ids, c->known_id[k]);
        uint8_t label[PROTO_NAME_MAX]; /* a name, or an item's descriptor */
        size_t nl = sim_entity_label(s, e, label);
        core_buf_varint(b, k);
        core_buf_u32(b, s->id[e]);
        core_buf_u8(b, s->kind[e]);
        core_buf_i32(b, quant(s->x[e]));
        core_buf_i32(b, quant(s->y[e]));
        core_buf_u8(b, (uint8_t)nl);
        core_buf_append(b, label, nl);
    }

    core_buf_append(b, d->data, d->len);

    /* 6. one frame: reliable records first, then STATE. A STATE with
     * nothing to tell is skipped, but for one keepalive per keepalive_s (ticks
     * spread over the clients by index), so an idle client still sees the
     * tick and its ack; the gateway still gets this tick's FRAMES. */
    (void)frames_for(s, c->gw_id);
    bool is_empty = n_leave == 0 && n_enter == 0 && hi == 0 && sim_client_reliable_len(c) == 0 &&
                    !was_reset && c->last_seq == c->sent_seq;
    if (is_empty && !keepalive_due(s, ci)) {
        s->stats.states_skipped++;
        return;
    }
    frame_out(s, c);
}
