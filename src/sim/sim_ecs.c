/* sim_ecs.c - entity slots, ids and client records of a shard. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"

#define GROW(arr, ncap)                                                                            \
    do {                                                                                           \
        void *p_ = realloc((arr), (size_t)(ncap) * sizeof *(arr));                                 \
        if (!p_)                                                                                   \
            core_die("out of memory");                                                             \
        (arr) = p_;                                                                                \
    } while (0)

static void grow_slots(sim_shard *s)
{
    uint32_t ncap = s->cap ? s->cap * 2 : 64;
    GROW(s->id, ncap);
    GROW(s->x, ncap);
    GROW(s->y, ncap);
    GROW(s->dir_x, ncap);
    GROW(s->dir_y, ncap);
    GROW(s->speed, ncap);
    GROW(s->kind, ncap);
    GROW(s->flags, ncap);
    GROW(s->ghost_src, ncap);
    GROW(s->ghost_stamp, ncap);
    GROW(s->client, ncap);
    GROW(s->pub_x, ncap);
    GROW(s->pub_y, ncap);
    GROW(s->wander_tick, ncap);
    GROW(s->label, ncap);
    GROW(s->free_slots, ncap);
    GROW(s->aoi_mark, ncap);
    /* Slots past n_used are not initialised (sim_slot_alloc does it when
     * it hands one out; nothing reads them before): the doubling's slack
     * costs address space, not memory. */
    s->cap = ncap;
}

/* Releases the long name of entity id, if it has one. */
static void far_drop(sim_shard *s, uint32_t id)
{
    if (s->far_ids.n == 0)
        return;
    uint32_t fi = core_idmap_get(&s->far_ids, id);
    if (fi == CORE_IDMAP_NONE)
        return;
    core_idmap_del(&s->far_ids, id);
    s->far_free[s->n_far_free++] = fi;
}

size_t sim_name_get(const sim_shard *s, uint32_t slot, char out[PROTO_NAME_MAX + 1])
{
    const sim_label *l = &s->label[slot];
    size_t n = 0;
    if (s->kind[slot] == PROTO_KIND_ITEM) {
        /* an item's label is its sim_item */
    } else if (l->name.len <= SIM_NAME_INLINE) {
        n = l->name.len;
        memcpy(out, l->name.text, n);
    } else {
        uint32_t fi = core_idmap_get(&s->far_ids, s->id[slot]);
        if (fi == CORE_IDMAP_NONE)
            core_die("entity %u: long name missing", s->id[slot]);
        n = strlen(s->far_names[fi]);
        memcpy(out, s->far_names[fi], n);
    }
    out[n] = 0;
    return n;
}

void sim_name_set(sim_shard *s, uint32_t slot, const char *name, size_t len)
{
    if (len > PROTO_NAME_MAX)
        core_die("name of %zu bytes", len);
    len = len ? strnlen(name, len) : 0; /* as C strings: a NUL ends the name */
    sim_label *l = &s->label[slot];
    uint32_t id = s->id[slot];
    if (len <= SIM_NAME_INLINE) {
        far_drop(s, id);
        l->name.len = (uint8_t)len;
        memcpy(l->name.text, name, len);
        return;
    }
    if (!id)
        core_die("long name for an entity without an id");
    uint32_t fi = core_idmap_get(&s->far_ids, id);
    if (fi == CORE_IDMAP_NONE) {
        if (s->n_far_free > 0) {
            fi = s->far_free[--s->n_far_free];
        } else {
            if (s->n_far_used == s->far_cap) {
                uint32_t ncap = s->far_cap ? s->far_cap * 2 : 16;
                GROW(s->far_names, ncap);
                GROW(s->far_free, ncap);
                s->far_cap = ncap;
            }
            fi = s->n_far_used++;
        }
        core_idmap_put(&s->far_ids, id, fi);
    }
    memcpy(s->far_names[fi], name, len);
    s->far_names[fi][len] = 0;
    l->name.len = SIM_NAME_FAR;
}

void sim_label_item(sim_shard *s, uint32_t slot, sim_item it)
{
    far_drop(s, s->id[slot]);
    s->label[slot].item = it;
}

uint32_t sim_slot_alloc(sim_shard *s)
{
    uint32_t slot;
    if (s->n_free > 0) {
        slot = s->free_slots[--s->n_free];
    } else {
        if (s->n_used == s->cap)
            grow_slots(s);
        slot = s->n_used++;
    }
    s->id[slot] = 0;
    s->x[slot] = s->y[slot] = 0;
    s->dir_x[slot] = s->dir_y[slot] = 0;
    s->speed[slot] = 0;
    s->kind[slot] = PROTO_KIND_NPC;
    s->flags[slot] = SIM_F_ALIVE;
    s->aoi_mark[slot] = 0;
    s->ghost_src[slot] = 0;
    s->ghost_stamp[slot] = 0;
    s->client[slot] = SIM_NONE;
    s->pub_x[slot] = s->pub_y[slot] = NAN; /* not published: news to every watcher */
    s->wander_tick[slot] = 0;
    s->label[slot].name.len = 0;
    return slot;
}

void sim_slot_release(sim_shard *s, uint32_t slot)
{
    if (s->log)
        sim_log_release(s, slot); /* before its id and flags go */
    if (s->id[slot]) {
        core_idmap_del(&s->ids, s->id[slot]);
        far_drop(s, s->id[slot]);
    }
    sim_aoi_mark_gone(s, slot);
    sim_entity_unplace(s, slot);
    s->flags[slot] = 0;
    s->id[slot] = 0;
    s->client[slot] = SIM_NONE;
    s->free_slots[s->n_free++] = slot;
}

/* Writes arr[order[0]], arr[order[1]], ... (n elements of size bytes)
 * into out, which holds at least cap elements (NULL: a new array). */
static void *gather(const void *arr, size_t size, const uint32_t *order, uint32_t n, void *out,
                    uint32_t cap)
{
    if (!out && !(out = malloc((size_t)cap * size)))
        core_die("out of memory");
    uint8_t *o = out;
    const uint8_t *in = arr;
    if (size == 4)
        for (uint32_t k = 0; k < n; k++)
            memcpy(o + (size_t)k * 4, in + (size_t)order[k] * 4, 4);
    else if (size == 1)
        for (uint32_t k = 0; k < n; k++)
            o[k] = in[order[k]];
    else
        for (uint32_t k = 0; k < n; k++)
            memcpy(o + (size_t)k * size, in + (size_t)order[k] * size, size);
    return out;
}

/* The block p (gathered into a larger one) cut to cap elements of size
 * bytes, so the pages of the tail go back (bytes per entity). */
static void *shrink(void *p, size_t size, uint32_t cap)
{
    void *q = realloc(p, (size_t)cap * size);
    if (!q)
        core_die("out of memory");
    return q;
}

/* Permutes every slot array by order. Each array is gathered into the
 * memory of the one gathered before it (largest elements first, so it
 * always fits), so a renumbering allocates one array, not fifteen: fresh
 * memory is page faults (M1: 80 MB of new pages made the renumbering tick
 * cost 150-270 ms); each block is then cut to its array's size. */
static void gather_slots(sim_shard *s, const uint32_t *order, uint32_t n)
{
    void *spare = NULL;
#define GATHER(f)                                                                                  \
    do {                                                                                           \
        void *old_ = s->f;                                                                         \
        s->f = shrink(gather(old_, sizeof *s->f, order, n, spare, s->cap), sizeof *s->f, s->cap);  \
        spare = old_;                                                                              \
    } while (0)
    _Static_assert(sizeof *s->label >= 4, "gather_slots: largest elements first");
    GATHER(label);
    GATHER(id);
    GATHER(x);
    GATHER(y);
    GATHER(dir_x);
    GATHER(dir_y);
    GATHER(speed);
    GATHER(ghost_stamp);
    GATHER(client);
    GATHER(pub_x);
    GATHER(pub_y);
    GATHER(wander_tick);
    GATHER(kind);
    GATHER(flags);
    GATHER(ghost_src);
#undef GATHER
    free(spare);
}

void sim_slots_renumber(sim_shard *s, const uint32_t *order, uint32_t n)
{
    uint32_t old_used = s->n_used;
    uint32_t *newof = malloc((size_t)(old_used ? old_used : 1) * sizeof *newof);
    if (!newof)
        core_die("out of memory");
    for (uint32_t i = 0; i < old_used; i++)
        newof[i] = SIM_NONE;
    for (uint32_t k = 0; k < n; k++)
        newof[order[k]] = k;
    /* maps and lists first, while the arrays still have the old numbering */
    core_idmap_remap(&s->ids, newof, old_used);
    /* the bodies stay the index: their slots renumbered (a dropped slot
     * becomes one past the end, which sim_index_collect skips) */
    for (uint32_t k = 0; k < s->n_bodies; k++) {
        uint32_t b = s->body_slot[k], i = b & ~BODY_GHOST;
        uint32_t to = i < old_used ? newof[i] : SIM_NONE;
        s->body_slot[k] = (to == SIM_NONE ? n : to) | (b & BODY_GHOST);
    }
    uint32_t nr = 0;
    for (uint32_t q = 0; q < s->n_recent; q++) {
        uint32_t i = s->recent[q];
        if (i < old_used && newof[i] != SIM_NONE)
            s->recent[nr++] = newof[i];
    }
    s->n_recent = nr;
    s->is_index_exact = false; /* dropped slots among the bodies */
    spatial_grid_renumber(s->aoi_grid, order, n);
    sim_items_renumber(s, newof, old_used);
    if (s->log)
        sim_log_renumber(s, newof, old_used);
    gather_slots(s, order, n);
    for (uint32_t i = n; i < old_used; i++)
        s->flags[i] = 0;
    memset(s->aoi_mark, 0, (size_t)n * sizeof *s->aoi_mark);
    for (uint32_t ci = 0; ci < s->n_clients_used; ci++) {
        sim_client *c = &s->clients[ci];
        if (c->session_id && c->slot < old_used)
            c->slot = newof[c->slot];
    }
    s->n_used = n;
    s->n_free = 0;
    free(newof);
}

uint32_t sim_entity_new_id(sim_shard *s)
{
    /* 26-bit counter and the 6-bit shard index: unique in the world
     * without coordination, and deterministic. */
    uint32_t c = ++s->next_counter;
    if (c >= (1u << 26))
        core_die("shard %u ran out of entity ids", s->index);
    return (c << 6) | s->index;
}

static void recent_add(sim_shard *s, uint32_t slot)
{
    if (s->n_recent == s->recent_cap) {
        s->recent_cap = s->recent_cap ? s->recent_cap * 2 : 64;
        s->recent = realloc(s->recent, s->recent_cap * sizeof *s->recent);
        if (!s->recent)
            core_die("out of memory");
    }
    s->recent[s->n_recent++] = slot;
    s->is_index_exact = false;
}

void sim_entity_place(sim_shard *s, uint32_t slot)
{
    spatial_grid_insert(s->aoi_grid, slot, s->x[slot], s->y[slot]);
    recent_add(s, slot);
}

void sim_entity_moved(sim_shard *s, uint32_t slot)
{
    recent_add(s, slot); /* (again: an item may have become a body) */
    spatial_grid_move(s->aoi_grid, slot, s->x[slot], s->y[slot]);
}

void sim_entity_unplace(sim_shard *s, uint32_t slot)
{
    s->is_index_exact = false;
    spatial_grid_remove(s->aoi_grid, slot);
}

uint32_t sim_client_alloc(sim_shard *s)
{
    uint32_t ci;
    if (s->n_free_clients > 0) {
        ci = s->free_clients[--s->n_free_clients];
    } else {
        if (s->n_clients_used == s->clients_cap) {
            if (s->clients_cap >= UINT32_MAX / 2)
                core_die("too many clients");
            /* Records past n_clients_used stay untouched (no memset), so
             * the doubling's slack costs address space, not memory. */
            uint32_t ncap = s->clients_cap ? s->clients_cap * 2 : 64;
            GROW(s->clients, ncap);
            GROW(s->free_clients, ncap);
            s->clients_cap = ncap;
        }
        ci = s->n_clients_used++;
        memset(&s->clients[ci], 0, sizeof s->clients[ci]);
    }
    sim_client *c = &s->clients[ci];
    /* a released record keeps its view table's memory for the next one
     * (sim_client_release freed its more) */
    uint32_t *kid = c->known_id;
    uint16_t kcap = c->known_cap;
    memset(c, 0, sizeof *c);
    if (kid)
        memset(kid, 0, (size_t)kcap * sizeof *kid);
    c->known_id = kid;
    c->known_cap = kcap;
    c->next_gseq = 1;
    c->err_tokens = SIM_ERRORS_PER_S;
    c->saved_x = c->saved_y = NAN;
    s->n_clients++;
    return ci;
}

void sim_client_view_reserve(sim_shard *s, sim_client *c, uint32_t k)
{
    if (k < c->known_cap)
        return;
    /* Start small, double up to 30, then grow 4 entries (16 bytes, one
     * malloc granule) at a time: a crowd of 41 costs a table of 42, one
     * of 50 a table of 50 (not 72), never aoi_max_entities. Views grow a
     * few entries a tick at most, so the extra reallocs are few. Sizes
     * are 2 mod 4 entries: 4 * cap + malloc's 8-byte header fills its
     * 16-byte chunks exactly. */
    uint32_t max = (uint32_t)s->cfg->aoi_max_entities, cap = c->known_cap;
    while (cap <= k)
        cap = cap < 6 ? 6 : cap < 30 ? cap * 2 + 2 : cap + 4;
    if (cap > max)
        cap = max;
    if (k >= cap || cap > UINT16_MAX)
        core_die("view slot %u beyond aoi_max_entities %u", k, max);
    uint32_t *p = realloc(c->known_id, cap * sizeof *p);
    if (!p)
        core_die("out of memory");
    memset(p + c->known_cap, 0, (cap - c->known_cap) * sizeof *p);
    c->known_id = p;
    c->known_cap = (uint16_t)cap;
}

sim_client_more *sim_client_more_get(sim_client *c)
{
    if (!c->more) {
        c->more = calloc(1, sizeof *c->more);
        if (!c->more)
            core_die("out of memory");
        c->more->chat_tokens = -1.0f; /* sim_chat.c fills the bucket on first use */
    }
    return c->more;
}

/* Frees c->more and everything it holds. */
static void more_free(sim_client *c)
{
    sim_client_more *m = c->more;
    if (!m)
        return;
    free(m->pending);
    core_buf_free(&m->held);
    core_buf_free(&m->reliable);
    free(m->inv);
    free(m);
    c->more = NULL;
}

void sim_client_rest(sim_shard *s, sim_client *c)
{
    sim_client_more *m = c->more;
    if (!m || m->n_pending || m->pending || m->held.cap || m->inv || m->reliable.len ||
        !sim_chat_is_full(s, m))
        return;
    more_free(c);
}

sim_client_more *sim_client_pending_reserve(sim_client *c)
{
    sim_client_more *m = sim_client_more_get(c);
    if (m->n_pending < m->pending_cap)
        return m;
    uint32_t cap = m->pending_cap ? m->pending_cap * 2u : 4u;
    if (cap > SIM_PENDING_MAX)
        cap = SIM_PENDING_MAX;
    if (m->n_pending >= cap)
        core_die("more than %d pending inputs", SIM_PENDING_MAX);
    sim_pending *p = realloc(m->pending, cap * sizeof *p);
    if (!p)
        core_die("out of memory");
    m->pending = p;
    m->pending_cap = (uint8_t)cap;
    return m;
}

void sim_client_pending_clear(sim_client *c)
{
    sim_client_more *m = c->more;
    if (!m)
        return;
    free(m->pending);
    m->pending = NULL;
    m->n_pending = m->pending_cap = 0;
    m->gap_ticks = 0;
    core_buf_free(&m->held);
}

void sim_client_release(sim_shard *s, uint32_t ci)
{
    sim_client *c = &s->clients[ci];
    if (c->session_id)
        core_idmap_del(&s->sessions, c->session_id);
    c->session_id = 0;
    c->slot = SIM_NONE;
    more_free(c);
    s->free_clients[s->n_free_clients++] = ci;
    s->n_clients--;
}

void sim_count_reject(sim_shard *s, proto_err code)
{
    if ((unsigned)code < PROTO_ERR_COUNT)
        core_counter_add(s->m_rejects[code], 1);
    s->stats.inputs_rejected++;
}

void sim_client_reject(sim_shard *s, uint32_t ci, proto_err code, const char *reason)
{
    sim_count_reject(s, code);
    sim_client *c = &s->clients[ci];
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    if (s->tick - c->err_refill_tick >= hz) {
        c->err_refill_tick = s->tick;
        c->err_tokens = SIM_ERRORS_PER_S;
    }
    if (c->err_tokens <= 0)
        return;
    c->err_tokens--;
    proto_write_error(sim_client_reliable(c), code, reason);
}
