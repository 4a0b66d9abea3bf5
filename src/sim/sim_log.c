/* sim_log.c - the per-cell tick log: everything a replay of one cell needs,
 * captured while the live shard ticks, as one store event (kind
 * SIM_LOG_EVENT_KIND) per active cell per tick, group-committed by the
 * store thread. Divisions: the record codec (format below), the capture
 * hooks the tick calls, and the end of the tick (cell moves, hashes,
 * submit, snapshots, completions).
 *
 *   TICKLOG  u8 version (1), i64 prev_tick, records..., HASH
 *   record   u8 type, then
 *     ARRIVE  1  ENTITY                      the entity enters the cell
 *     SET     2  ENTITY                      its state changed outside the
 *                                            logged commands (a detach
 *                                            stopping a player, say)
 *     LEAVE   3  u32 id                      the entity leaves the cell
 *     INPUT   4  u32 id, f32 dir_x, dir_y    an input the shard applied
 *     STEP    5                              the movement step runs here
 *     CONTACT 6  u32 id, f32 x, f32 y        after STEP: a body outside the
 *                                            cell within collision range,
 *                                            at its post-integration place
 *     HASH    7  u32 n, u64 hash             the cell at the end of the
 *                                            tick (sim_cell_hash); last
 *   ENTITY is sim_snapshot.c's. Little-endian; floats as bit patterns.
 *
 * prev_tick is the store tick of the cell's previous record in the same
 * server run (0 for a run's first), so a replay finds holes: a record the
 * store refused (queue full) or failed still advances the chain, and the
 * cell is snapshotted again at once so later replays start past the hole.
 *
 * When things take effect, in record order with STEP at its place:
 *  - before STEP: entities that entered at the drain (joins, handoff
 *    adoptions, spawned NPCs: ARRIVE with the state they start the tick
 *    with), players that quit at the drain (LEAVE), SETs, then the inputs
 *    in application order;
 *  - STEP: NPC wandering, integration, obstacles, the Jacobi collision
 *    step against the cell's members and the CONTACT bodies that follow;
 *  - after STEP: entities that crossed out of the cell (LEAVE) or into it
 *    (ARRIVE with the post-tick state), were handed to another shard or
 *    dropped later in the tick (LEAVE).
 * An entity's cell during a tick is the one it was logged in at the start
 * (cell_of): one that crosses stays in its old cell for the step and
 * joins the new one at the end of the tick. Entities outside every cell of
 * this shard (owned for an instant before a handoff) are in no cell's log
 * and appear only as CONTACTs.
 *
 * Store ticks: the store keys snapshots by (cell, tick) and takes the
 * highest tick as the latest, but a shard's ticks restart at 1 with the
 * process. Records and snapshots therefore carry store tick = run_base +
 * shard tick, with run_base = (wall clock s + 2) * tick_hz taken when the
 * log starts: it exceeds every store tick of an earlier run as long as the
 * wall clock does not step back. Replays report shard ticks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "core_time.h"
#include "sim_log.h"
#include "store.h"

/* ---- record codec ---- */

static int tl_err(char *err, size_t err_len, const char *why)
{
    snprintf(err, err_len, "malformed tick log record: %s", why);
    return -1;
}

int sim_tl_open(sim_tl_reader *rd, int64_t *out_prev_tick, const void *p, size_t len, char *err,
                size_t err_len)
{
    memset(rd, 0, sizeof *rd);
    rd->r = core_rd_init(p, len);
    uint8_t version = core_rd_u8(&rd->r);
    int64_t prev = (int64_t)core_rd_u64(&rd->r);
    if (!core_rd_ok(&rd->r))
        return tl_err(err, err_len, "truncated header");
    if (version != SIM_LOG_VERSION)
        return tl_err(err, err_len, "unknown version");
    if (prev < 0)
        return tl_err(err, err_len, "negative previous tick");
    *out_prev_tick = prev;
    return 0;
}

int sim_tl_next(sim_tl_reader *rd, sim_tl_rec *out, char *err, size_t err_len)
{
    core_rd *r = &rd->r;
    if (rd->seen_hash)
        return core_rd_left(r) ? tl_err(err, err_len, "bytes after HASH") : 0;
    if (!core_rd_left(r))
        return tl_err(err, err_len, "no HASH at the end");
    memset(out, 0, sizeof *out);
    out->type = core_rd_u8(r);
    switch (out->type) {
    case SIM_TL_ARRIVE:
    case SIM_TL_SET:
        if (sim_ent_read(r, &out->ent) != 0)
            return tl_err(err, err_len, "bad entity");
        return 1;
    case SIM_TL_LEAVE:
        out->id = core_rd_u32(r);
        break;
    case SIM_TL_INPUT:
        out->id = core_rd_u32(r);
        out->a = core_rd_f32(r);
        out->b = core_rd_f32(r);
        if (core_rd_ok(r) && !(out->a * out->a + out->b * out->b <= 1.01f))
            return tl_err(err, err_len, "input heading not finite or longer than 1");
        break;
    case SIM_TL_STEP:
        if (rd->seen_step)
            return tl_err(err, err_len, "two STEP records");
        rd->seen_step = true;
        return 1;
    case SIM_TL_CONTACT:
        if (!rd->seen_step)
            return tl_err(err, err_len, "CONTACT before STEP");
        out->id = core_rd_u32(r);
        out->a = core_rd_f32(r);
        out->b = core_rd_f32(r);
        if (core_rd_ok(r) && !(isfinite(out->a) && isfinite(out->b)))
            return tl_err(err, err_len, "contact position not finite");
        break;
    case SIM_TL_HASH:
        if (!rd->seen_step)
            return tl_err(err, err_len, "HASH before STEP");
        out->n = core_rd_u32(r);
        out->hash = core_rd_u64(r);
        rd->seen_hash = true;
        return core_rd_ok(r) ? 1 : tl_err(err, err_len, "truncated record");
    default:
        return tl_err(err, err_len, "unknown record type");
    }
    if (!core_rd_ok(r))
        return tl_err(err, err_len, "truncated record");
    if (!out->id)
        return tl_err(err, err_len, "entity id 0");
    return 1;
}

int sim_tl_validate(const void *p, size_t len, char *err, size_t err_len)
{
    sim_tl_reader rd;
    int64_t prev;
    if (sim_tl_open(&rd, &prev, p, len, err, err_len) != 0)
        return -1;
    sim_tl_rec rec;
    int rc;
    while ((rc = sim_tl_next(&rd, &rec, err, err_len)) == 1) {
    }
    return rc;
}

/* ---- capture state ---- */

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        core_die("out of memory");
    return p;
}

/* Makes room for slots [0, need): sized by the slots in use (s->n_used)
 * plus a quarter, not by the shard's capacity, whose doubling slack would
 * be touched here by the initialisation. A slot at or past l->cap is not
 * in the log yet (sim_log_release, sim_log_contact check). */
static void log_grow(struct sim_log *l, uint32_t need)
{
    if (l->cap >= need)
        return;
    uint32_t cap = need + need / 4;
    if (cap < 64)
        cap = 64;
    l->cell_of = xrealloc(l->cell_of, cap * sizeof *l->cell_of);
    l->shadow = xrealloc(l->shadow, cap * sizeof *l->shadow);
    for (uint32_t i = l->cap; i < cap; i++)
        l->cell_of[i] = SIM_NONE;
    l->cap = cap;
}

static struct sim_log *log_create(sim_shard *s)
{
    struct sim_log *l = calloc(1, sizeof *l);
    if (!l)
        core_die("out of memory");
    l->n_cells = (uint32_t)s->cells->cells_x * s->cells->cells_y;
    l->cells = calloc(l->n_cells, sizeof *l->cells);
    l->active = calloc(l->n_cells, sizeof *l->active);
    if (!l->cells || !l->active)
        core_die("out of memory");
    l->cq = SIM_LOG_CQ_BASE + s->index;
    l->period = (uint32_t)s->cfg->snapshot_interval_s * (uint32_t)s->cfg->tick_hz;
    l->run_base = (core_wall_s() + 2) * (int64_t)s->cfg->tick_hz;
    l->map_sum = sim_map_checksum(s->map);
    char labels[32];
    snprintf(labels, sizeof labels, "shard=\"%u\"", s->index);
    l->m_records =
        core_metrics_counter(s->metrics, "tessera_cell_log_records_total",
                             "Tick-log records submitted (one per active cell per tick)", labels);
    l->m_bytes = core_metrics_counter(s->metrics, "tessera_cell_log_bytes_total",
                                      "Bytes of tick-log records submitted", labels);
    l->m_snapshots = core_metrics_counter(s->metrics, "tessera_cell_snapshots_total",
                                          "Cell snapshots submitted", labels);
    l->m_refused = core_metrics_counter(
        s->metrics, "tessera_cell_log_refused_total",
        "Tick-log records or snapshots the store queue refused (cell re-snapshotted)", labels);
    l->m_failed = core_metrics_counter(
        s->metrics, "tessera_cell_log_failed_total",
        "Tick-log records or snapshots the store failed to commit (cell re-snapshotted)", labels);
    return l;
}

void sim_log_destroy(sim_shard *s)
{
    struct sim_log *l = s->log;
    if (!l)
        return;
    for (uint32_t c = 0; c < l->n_cells; c++) {
        core_buf_free(&l->cells[c].buf);
        free(l->cells[c].mem);
    }
    free(l->cells);
    free(l->active);
    free(l->cell_of);
    free(l->shadow);
    free(l->contacts);
    core_buf_free(&l->enc);
    free(l);
    s->log = NULL;
}

/* The buffer for a record in cell, putting the cell on the active list and
 * writing its STEP first once the movement step has begun. */
static core_buf *cell_rec(sim_shard *s, uint32_t cell)
{
    struct sim_log *l = s->log;
    sim_log_cell *c = &l->cells[cell];
    if (!c->is_active) {
        c->is_active = true;
        l->active[l->n_active++] = cell;
    }
    if (l->after_step && !c->has_step) {
        core_buf_u8(&c->buf, SIM_TL_STEP);
        c->has_step = true;
    }
    return &c->buf;
}

static void member_add(sim_log_cell *c, uint32_t id, uint32_t slot)
{
    if (c->n_mem == c->mem_cap) {
        c->mem_cap = c->mem_cap ? c->mem_cap * 2 : 16;
        c->mem = xrealloc(c->mem, c->mem_cap * sizeof *c->mem);
    }
    uint32_t lo = 0, hi = c->n_mem;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->mem[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(c->mem + lo + 1, c->mem + lo, (c->n_mem - lo) * sizeof *c->mem);
    c->mem[lo] = (sim_member){id, slot};
    c->n_mem++;
}

static void member_del(sim_log_cell *c, uint32_t id)
{
    for (uint32_t i = 0; i < c->n_mem; i++)
        if (c->mem[i].id == id) {
            memmove(c->mem + i, c->mem + i + 1, (c->n_mem - i - 1) * sizeof *c->mem);
            c->n_mem--;
            return;
        }
    core_die("sim_log: entity %u is not a member of its cell", id);
}

/* The state a SET would carry, as bits (so -0.0 and 0.0 differ, as in the
 * hash). */
static void shadow_take(const sim_shard *s, uint32_t e, uint32_t out[7])
{
    memcpy(&out[0], &s->x[e], 4);
    memcpy(&out[1], &s->y[e], 4);
    memcpy(&out[2], &s->dir_x[e], 4);
    memcpy(&out[3], &s->dir_y[e], 4);
    memcpy(&out[4], &s->speed[e], 4);
    out[5] = s->wander_tick[e];
    out[6] = s->kind[e];
}

static void rec_entity(sim_shard *s, uint32_t cell, uint8_t type, uint32_t e)
{
    core_buf *b = cell_rec(s, cell);
    core_buf_u8(b, type);
    sim_ent_write(b, s, e);
}

static void arrive(sim_shard *s, uint32_t cell, uint32_t e)
{
    struct sim_log *l = s->log;
    rec_entity(s, cell, SIM_TL_ARRIVE, e);
    member_add(&l->cells[cell], s->id[e], e);
    l->cell_of[e] = cell;
    shadow_take(s, e, l->shadow[e]);
}

static void leave(sim_shard *s, uint32_t e)
{
    struct sim_log *l = s->log;
    uint32_t cell = l->cell_of[e];
    core_buf *b = cell_rec(s, cell);
    core_buf_u8(b, SIM_TL_LEAVE);
    core_buf_u32(b, s->id[e]);
    member_del(&l->cells[cell], s->id[e]);
    l->cell_of[e] = SIM_NONE;
}

/* Our cell at e's position, or SIM_NONE if another shard owns it. */
static uint32_t own_cell(const sim_shard *s, uint32_t e)
{
    uint32_t cell = spatial_cellmap_cell(s->cells, s->x[e], s->y[e]);
    return s->cells->owner[cell] == s->index ? cell : SIM_NONE;
}

static void poll_completions(sim_shard *s)
{
    struct sim_log *l = s->log;
    store_completion done[64];
    size_t n;
    do {
        n = store_completions_poll(s->st, l->cq, done, 64);
        for (size_t i = 0; i < n; i++) {
            int kind = (int)(done[i].token >> 56);
            uint32_t cell = (uint32_t)(done[i].token >> 32) & 0xffffffu;
            if (cell >= l->n_cells)
                continue;
            sim_log_cell *c = &l->cells[cell];
            if (done[i].status == STORE_OK) {
                if (kind == STORE_ACT_EVENT && done[i].id > c->seq_hint)
                    c->seq_hint = done[i].id;
                continue;
            }
            /* a hole in the log (or a lost snapshot): snapshot again */
            c->need_snapshot = true;
            core_counter_add(l->m_failed, 1);
            CORE_WARN("sim", "shard %u: %s of cell %u at tick %u not stored: %s", s->index,
                      kind == STORE_ACT_EVENT ? "tick log record" : "snapshot", cell,
                      (uint32_t)done[i].token, done[i].reason);
        }
    } while (n == 64);
}

/* ---- hooks ---- */

void sim_log_tick_begin(sim_shard *s)
{
    struct sim_log *l = s->log;
    if (!l) {
        if (!s->st || s->cfg->snapshot_interval_s <= 0 ||
            s->index >= STORE_MAX_CQ - SIM_LOG_CQ_BASE)
            return;
        l = s->log = log_create(s);
    }
    poll_completions(s);
    log_grow(l, s->n_used);
    uint32_t now[7];
    for (uint32_t e = 0; e < s->n_used; e++) {
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        if (l->cell_of[e] == SIM_NONE) {
            uint32_t cell = own_cell(s, e);
            if (cell != SIM_NONE)
                arrive(s, cell, e);
            continue;
        }
        shadow_take(s, e, now);
        if (memcmp(now, l->shadow[e], sizeof now) != 0) {
            rec_entity(s, l->cell_of[e], SIM_TL_SET, e);
            memcpy(l->shadow[e], now, sizeof now);
        }
    }
}

void sim_log_renumber(sim_shard *s, const uint32_t *newof, uint32_t old_used)
{
    struct sim_log *l = s->log;
    log_grow(l, old_used); /* a slot may move to any new index below old_used */
    uint32_t n = old_used;
    uint32_t *cell_of = xrealloc(NULL, l->cap * sizeof *cell_of);
    uint32_t(*shadow)[7] = xrealloc(NULL, l->cap * sizeof *shadow);
    for (uint32_t i = 0; i < l->cap; i++)
        cell_of[i] = SIM_NONE;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = newof[i];
        if (k == SIM_NONE)
            continue;
        cell_of[k] = l->cell_of[i];
        memcpy(shadow[k], l->shadow[i], sizeof shadow[k]);
    }
    free(l->cell_of);
    free(l->shadow);
    l->cell_of = cell_of;
    l->shadow = shadow;
    /* (the contact set is keyed by slot but lives one tick: renumberings
     * come between ticks) */
    for (uint32_t c = 0; c < l->n_cells; c++)
        for (uint32_t j = 0; j < l->cells[c].n_mem; j++) {
            sim_member *m = &l->cells[c].mem[j];
            if (m->slot < old_used)
                m->slot = newof[m->slot];
        }
}

void sim_log_release(sim_shard *s, uint32_t slot)
{
    struct sim_log *l = s->log;
    if (slot < l->cap && l->cell_of[slot] != SIM_NONE)
        leave(s, slot);
}

void sim_log_input(sim_shard *s, uint32_t slot, float dir_x, float dir_y)
{
    struct sim_log *l = s->log;
    if (slot >= l->cap || l->cell_of[slot] == SIM_NONE)
        return;
    core_buf *b = cell_rec(s, l->cell_of[slot]);
    core_buf_u8(b, SIM_TL_INPUT);
    core_buf_u32(b, s->id[slot]);
    core_buf_f32(b, dir_x);
    core_buf_f32(b, dir_y);
}

void sim_log_step(sim_shard *s)
{
    struct sim_log *l = s->log;
    l->after_step = true;
    for (uint32_t i = 0; i < l->n_active; i++)
        cell_rec(s, l->active[i]);
}

static size_t contact_home(uint32_t other, uint32_t cap)
{
    return (size_t)(((uint64_t)other * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* True if the last CONTACT of `other` this tick went to cell; else makes
 * it so (the same rule as a per-slot "last written" pair: a body
 * alternating between two cells is written each time). */
static bool contact_seen(struct sim_log *l, uint32_t tick, uint32_t other, uint32_t cell)
{
    if (l->contacts_tick != tick) {
        if (l->n_contacts)
            memset(l->contacts, 0, (size_t)l->contacts_cap * sizeof *l->contacts);
        l->n_contacts = 0;
        l->contacts_tick = tick;
    }
    if ((l->n_contacts + 1) * 2 > l->contacts_cap) { /* load <= 1/2 */
        uint32_t ncap = l->contacts_cap ? l->contacts_cap * 2 : 64;
        uint64_t *n = calloc(ncap, sizeof *n);
        if (!n)
            core_die("out of memory");
        for (uint32_t i = 0; i < l->contacts_cap; i++) {
            uint64_t k = l->contacts[i];
            if (!k)
                continue;
            size_t j = contact_home((uint32_t)(k >> 32) - 1, ncap);
            while (n[j])
                j = (j + 1) & (ncap - 1);
            n[j] = k;
        }
        free(l->contacts);
        l->contacts = n;
        l->contacts_cap = ncap;
    }
    uint64_t key = ((uint64_t)other + 1) << 32;
    size_t i = contact_home(other, l->contacts_cap);
    for (; l->contacts[i]; i = (i + 1) & (l->contacts_cap - 1)) {
        if ((l->contacts[i] & 0xFFFFFFFF00000000ull) != key)
            continue;
        if ((uint32_t)l->contacts[i] == cell)
            return true;
        l->contacts[i] = key | cell;
        return false;
    }
    l->contacts[i] = key | cell;
    l->n_contacts++;
    return false;
}

void sim_log_contact(sim_shard *s, uint32_t slot, uint32_t other, float ox, float oy)
{
    struct sim_log *l = s->log;
    log_grow(l, s->n_used);
    uint32_t cell = l->cell_of[slot];
    if (cell == SIM_NONE)
        return;
    if (!(s->flags[other] & SIM_F_GHOST) && l->cell_of[other] == cell)
        return; /* a member: the replay has it */
    if (contact_seen(l, s->tick, other, cell))
        return;
    core_buf *b = cell_rec(s, cell);
    core_buf_u8(b, SIM_TL_CONTACT);
    core_buf_u32(b, s->id[other]);
    core_buf_f32(b, ox);
    core_buf_f32(b, oy);
}

/* ---- end of the tick ---- */

static void submit_record(sim_shard *s, uint32_t cell, uint64_t hash)
{
    struct sim_log *l = s->log;
    sim_log_cell *c = &l->cells[cell];
    core_buf *e = &l->enc;
    core_buf_reset(e);
    core_buf_u8(e, SIM_LOG_VERSION);
    core_buf_u64(e, (uint64_t)c->last_tick);
    core_buf_append(e, c->buf.data, c->buf.len);
    core_buf_u8(e, SIM_TL_HASH);
    core_buf_u32(e, c->n_mem);
    core_buf_u64(e, hash);
    int64_t tick = l->run_base + s->tick;
    store_action a = {.kind = STORE_ACT_EVENT,
                      .tick = tick,
                      .cell = cell,
                      .event_kind = SIM_LOG_EVENT_KIND,
                      .data = e->data,
                      .len = e->len};
    if (c->last_tick == 0)
        c->need_snapshot = true; /* the cell's first record: replays start here */
    c->last_tick = tick;         /* even if refused: the chain must show the hole */
    if (store_submit(s->st, l->cq, SIM_LOG_TOKEN(STORE_ACT_EVENT, cell, s->tick), &a) != STORE_OK) {
        if (core_counter_get(l->m_refused) % 1000 == 0)
            CORE_WARN("sim", "shard %u: tick log record of cell %u refused: %s", s->index, cell,
                      store_errmsg(s->st));
        core_counter_add(l->m_refused, 1);
        c->need_snapshot = true;
        return;
    }
    core_counter_add(l->m_records, 1);
    core_counter_add(l->m_bytes, e->len);
}

void sim_log_tick_end(sim_shard *s)
{
    struct sim_log *l = s->log;
    if (!l)
        return;
    log_grow(l, s->n_used);
    l->after_step = true; /* whatever follows the step belongs after it */
    for (uint32_t e = 0; e < s->n_used; e++) {
        uint32_t from = l->cell_of[e];
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE) {
            if (from != SIM_NONE) /* handed off: a ghost now */
                leave(s, e);
            continue;
        }
        uint32_t to = own_cell(s, e);
        if (to != from) {
            if (from != SIM_NONE)
                leave(s, e);
            if (to != SIM_NONE)
                arrive(s, to, e);
        } else if (to != SIM_NONE) {
            shadow_take(s, e, l->shadow[e]);
        }
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < l->n_active; i++) {
        uint32_t cell = l->active[i];
        sim_log_cell *c = &l->cells[cell];
        cell_rec(s, cell); /* its STEP, if it has none yet */
        uint64_t hash = sim_cell_hash(s, c->mem, c->n_mem);
        submit_record(s, cell, hash);
        sim_snapshot_maybe(s, cell, hash);
        core_buf_reset(&c->buf);
        c->has_step = false;
        if (c->n_mem)
            l->active[kept++] = cell;
        else
            c->is_active = false;
    }
    l->n_active = kept;
    l->after_step = false;
}
