/* sim_move.c - movement systems: NPC wandering, integration, clamping to
 * the world, pushing out of static obstacles, and circle collision between
 * entities. Owned entities only; ghosts are moved by their owner.
 *
 * Everything here is a function of each entity's own state, the tick, the
 * world seed and the bodies within collision range (positions after
 * integration), never of slot order or of the shard's RNG: the replay of a
 * single cell (sim_replay.c) runs this very code on a world that holds
 * only that cell and its logged outside contacts, and must land on the
 * same bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core_hash.h"
#include "core_log.h"
#include "core_simd.h"
#include "sim_int.h"

#define COL_NEIGH_MAX 64 /* neighbours examined per entity per tick */
#define COL_REACH 1.01f  /* candidate margin over the contact distance (collide_block) */

/* New heading every 1-4 s, a quarter of the time standing still, drawn
 * from a hash of (world seed, entity id, tick) so no RNG state is needed
 * to replay it. For an owned NPC whose wander_tick has come; sim_move
 * calls it on its way through the slots (one pass fewer over a million
 * slots than a system of its own). */
static void npc_wander(sim_shard *s, uint32_t i)
{
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    uint64_t k = s->cfg->seed ^ (((uint64_t)s->id[i] << 32) | s->tick);
    uint64_t h1 = core_splitmix64(&k), h2 = core_splitmix64(&k);
    float a = (float)(uint32_t)(h1 >> 40) * (1.0f / 16777216.0f) * 6.2831853f;
    bool stand = (h2 & 3) == 0;
    s->dir_x[i] = stand ? 0.0f : cosf(a);
    s->dir_y[i] = stand ? 0.0f : sinf(a);
    s->wander_tick[i] = s->tick + hz + (uint32_t)(((h2 >> 32) * (uint64_t)(3 * hz)) >> 32);
}

static inline void clamp_world(const sim_shard *s, float *x, float *y)
{
    float r = (float)s->cfg->entity_radius;
    float w = (float)s->cells->world_w, h = (float)s->cells->world_h;
    if (!(*x >= r)) /* also NaN */
        *x = r;
    if (*x > w - r)
        *x = w - r;
    if (!(*y >= r))
        *y = r;
    if (*y > h - r)
        *y = h - r;
}

void sim_clamp_world(const sim_shard *s, float *x, float *y)
{
    clamp_world(s, x, y);
}

void sim_push_out_of_obstacles(sim_shard *s, float *x, float *y)
{
    clamp_world(s, x, y);
    if (!s->obs_list)
        return;
    int bx = (int)(*x / s->obs_bucket), by = (int)(*y / s->obs_bucket);
    if (bx < 0 || by < 0 || bx >= (int)s->obs_nx || by >= (int)s->obs_ny)
        return;
    size_t b = (size_t)by * s->obs_nx + (size_t)bx;
    float er = (float)s->cfg->entity_radius;
    for (uint32_t k = s->obs_start[b]; k < s->obs_start[b + 1]; k++) {
        const proto_obstacle *o = &s->map->obstacles[s->obs_list[k]];
        float dx = *x - o->x, dy = *y - o->y;
        float min = o->r + er;
        float d2 = dx * dx + dy * dy;
        if (d2 >= min * min)
            continue;
        float d = sqrtf(d2);
        if (d < 1e-4f) {
            dx = 1.0f;
            dy = 0.0f;
            d = 1.0f;
        }
        *x = o->x + dx / d * min;
        *y = o->y + dy / d * min;
    }
    clamp_world(s, x, y);
}

static void *grow_array(void *p, size_t n, size_t size)
{
    p = realloc(p, n * size);
    if (!p)
        core_die("out of memory");
    return p;
}

/* ---- collision broad phase ----
 * Hand-written because it is the hot loop of the simulation (M1: a million
 * bodies per tick). Every tick the bodies (alive entities other than items,
 * ghosts included) are counting-sorted by square bucket into one set of
 * arrays (x, y, slot: structure of arrays, so a run of bodies is a run
 * of floats the compiler can test several at a time), so the neighbours of
 * a body are a few short contiguous runs of memory instead of linked lists
 * threaded through the slot arrays. Buckets are at least twice the contact
 * distance, so a query touches at most 2 x 2 of them; they grow with the
 * world so that there is about one bucket per body (the bucket array is
 * cleared every tick). */
#define BODY_PROBE 8 /* bodies tested at once (collide_probe); arrays padded by this */

typedef struct broad {
    uint32_t nx, ny;
    float inv; /* 1 / bucket side */
} broad;

#if defined(__SSE2__)
/* Four consecutive slots as the per-tick passes see them (sim_move's
 * integration and count, broad_finish's scatter): lane masks (all ones or
 * zeros) and positions. The scalar loops after each vector loop are the
 * definition; the lanes give the same bits. */
typedef struct lanes4 {
    __m128i owned; /* alive, not a ghost */
    __m128i body;  /* alive, not an item (is_body) */
    __m128i kind;
    __m128 x, y;
} lanes4;

static inline lanes4 lanes_load(const sim_shard *s, uint32_t i)
{
    __m128i fl = core_bytes4(s->flags + i);
    const __m128i alive = _mm_set1_epi32(SIM_F_ALIVE);
    lanes4 l;
    l.kind = core_bytes4(s->kind + i);
    l.owned = _mm_cmpeq_epi32(_mm_and_si128(fl, _mm_set1_epi32(SIM_F_ALIVE | SIM_F_GHOST)), alive);
    l.body = _mm_andnot_si128(_mm_cmpeq_epi32(l.kind, _mm_set1_epi32(PROTO_KIND_ITEM)),
                              _mm_cmpeq_epi32(_mm_and_si128(fl, alive), alive));
    l.x = _mm_loadu_ps(s->x + i);
    l.y = _mm_loadu_ps(s->y + i);
    return l;
}

/* The collision bucket of each body lane (bucket_of); returns the mask of
 * body lanes (bit t for lane t). */
static inline int lanes_buckets(const lanes4 *l, const broad *b, uint32_t bucket[4])
{
    int m = _mm_movemask_ps(_mm_castsi128_ps(l->body));
    if (!m)
        return 0;
    const __m128 inv = _mm_set1_ps(b->inv);
    __m128i bx = core_cell4(l->x, inv, _mm_set1_ps((float)(b->nx - 1)));
    __m128i by = core_cell4(l->y, inv, _mm_set1_ps((float)(b->ny - 1)));
    _mm_storeu_si128((__m128i *)bucket, core_muladd4(by, b->nx, bx));
    return m;
}
#endif

static inline uint32_t bcoord(float v, float inv, uint32_t n)
{
    float f = v * inv;
    if (!(f >= 0.0f)) /* also NaN */
        return 0;
    if (f >= (float)(n - 1))
        return n - 1;
    return (uint32_t)f;
}

/* Picks the bucket size for this tick and clears the bucket counts. */
static broad broad_prepare(sim_shard *s, float contact)
{
    float w = (float)s->cells->world_w, h = (float)s->cells->world_h;
    uint32_t want = s->n_owned + s->n_ghosts;
    if (want < 64)
        want = 64;
    float side = sqrtf(w * h / (float)want);
    if (side < 2.0f * COL_REACH * contact)
        side = 2.0f * COL_REACH * contact;
    broad b = {.nx = (uint32_t)(w / side) + 1, .ny = (uint32_t)(h / side) + 1, .inv = 1.0f / side};
    size_t nb = (size_t)b.nx * b.ny;
    if (nb + 1 > s->buckets_cap) {
        s->buckets_cap = nb + 1;
        s->bucket_start = grow_array(s->bucket_start, s->buckets_cap, sizeof *s->bucket_start);
    }
    memset(s->bucket_start, 0, (nb + 1) * sizeof *s->bucket_start);
    return b;
}

static inline bool is_body(const sim_shard *s, uint32_t i)
{
    return (s->flags[i] & SIM_F_ALIVE) && s->kind[i] != PROTO_KIND_ITEM; /* items block nobody */
}

static inline uint32_t bucket_of(const broad *b, float x, float y)
{
    return bcoord(y, b->inv, b->ny) * b->nx + bcoord(x, b->inv, b->nx);
}

static void bodies_reserve(sim_shard *s, uint32_t n)
{
    if (s->body_x && n <= s->bodies_cap)
        return;
    s->bodies_cap = n + n / 2;
    size_t cap = (size_t)s->bodies_cap + BODY_PROBE;
    s->body_x = grow_array(s->body_x, cap, sizeof *s->body_x);
    s->body_y = grow_array(s->body_y, cap, sizeof *s->body_y);
    s->body_slot = grow_array(s->body_slot, cap, sizeof *s->body_slot);
}

/* Body k is the entity in slot i. */
static inline void body_put(sim_shard *s, uint32_t k, uint32_t i)
{
    s->body_x[k] = s->x[i];
    s->body_y[k] = s->y[i];
    s->body_slot[k] = i | ((s->flags[i] & SIM_F_GHOST) ? BODY_GHOST : 0);
}

/* After every slot was counted: bucket offsets, then the bodies in place. */
static void broad_finish(sim_shard *s, const broad *b, uint32_t n)
{
    size_t nb = (size_t)b->nx * b->ny;
    uint32_t *start = s->bucket_start;
    uint32_t sum = 0;
    for (size_t k = 0; k < nb; k++) { /* inclusive: start[k] = end of bucket k */
        sum += start[k];
        start[k] = sum;
    }
    start[nb] = sum;
    s->n_bodies = n;
    bodies_reserve(s, n);
    /* the probe reads up to BODY_PROBE - 1 bodies past a run's end (and
     * masks them off): keep the padding initialised */
    for (uint32_t k = n; k < n + BODY_PROBE; k++)
        s->body_x[k] = s->body_y[k] = 0.0f;
    /* afterwards start[k] = beginning of k; x, y have not changed since
     * they were counted */
    uint32_t i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= s->n_used; i += 4) {
        lanes4 l = lanes_load(s, i);
        uint32_t bucket[4];
        int m = lanes_buckets(&l, b, bucket);
        if (m == 15) { /* four bodies (nearly always): no loop over the mask */
            body_put(s, --start[bucket[0]], i);
            body_put(s, --start[bucket[1]], i + 1);
            body_put(s, --start[bucket[2]], i + 2);
            body_put(s, --start[bucket[3]], i + 3);
            continue;
        }
        for (; m; m &= m - 1) {
            uint32_t t = (uint32_t)__builtin_ctz((unsigned)m);
            body_put(s, --start[bucket[t]], i + t);
        }
    }
#endif
    for (; i < s->n_used; i++)
        if (is_body(s, i))
            body_put(s, --start[bucket_of(b, s->x[i], s->y[i])], i);
}

/* Bit t set when body lo + t (t < BODY_PROBE, lo + t < hi) lies within
 * sqrt(min2) of (mx, my). Fixed width and without branches: a run is
 * typically 0-4 bodies long, and a loop over exactly those mispredicts its
 * exit on nearly every body. GCC 12 does not vectorize the plain loop
 * (it unrolls it into scalar compares), hence the SSE2 version, which
 * tests a second four only when the run is longer than four (M1: a run of
 * two buckets holds about two bodies); the loop is the definition and the
 * fallback elsewhere. */
static inline uint32_t collide_probe(const sim_shard *s, uint32_t lo, uint32_t hi, float mx,
                                     float my, float min2)
{
    const float *bx = s->body_x + lo, *by = s->body_y + lo;
    uint32_t hit = 0, len = hi - lo;
#if defined(__SSE2__)
    const __m128 vx = _mm_set1_ps(mx), vy = _mm_set1_ps(my), vm = _mm_set1_ps(min2);
    for (uint32_t t = 0; t < BODY_PROBE; t += 4) {
        __m128 dx = _mm_sub_ps(vx, _mm_loadu_ps(bx + t)), dy = _mm_sub_ps(vy, _mm_loadu_ps(by + t));
        __m128 d2 = _mm_add_ps(_mm_mul_ps(dx, dx), _mm_mul_ps(dy, dy));
        hit |= (uint32_t)_mm_movemask_ps(_mm_cmplt_ps(d2, vm)) << t;
        if (len <= t + 4)
            break;
    }
#else
    for (uint32_t t = 0; t < BODY_PROBE; t++) {
        float dx = mx - bx[t], dy = my - by[t];
        hit |= (uint32_t)(dx * dx + dy * dy < min2) << t;
    }
#endif
    return len >= BODY_PROBE ? hit : hit & ((1u << len) - 1u);
}

/* The entity id of body j: from the slot, not copied into the bodies, as
 * only bodies in contact (M1: 15%) need it. */
static inline uint32_t body_id(const sim_shard *s, uint32_t j)
{
    return s->id[s->body_slot[j] & ~BODY_GHOST];
}

/* Appends body j to the m in-range neighbours of the body in slot i (in
 * scan order; collide_near_sort orders them); returns the new count. */
static inline size_t collide_near_add(sim_shard *s, size_t m, uint32_t i, uint32_t j)
{
    if (m == s->col_near_cap) {
        s->col_near_cap = s->col_near_cap ? s->col_near_cap * 2 : 64;
        s->col_near = grow_array(s->col_near, s->col_near_cap, sizeof *s->col_near);
    }
    s->col_near[m] = j;
    if (s->log)
        sim_log_contact(s, i, s->body_slot[j] & ~BODY_GHOST, s->body_x[j], s->body_y[j]);
    return m + 1;
}

/* Orders the m neighbours by entity id. Ids are looked up only here: a
 * body in contact typically has one neighbour, and an id is a read from
 * the slot arrays (out of body order). */
static void collide_near_sort(sim_shard *s, size_t m)
{
    if (m < 2)
        return;
    uint64_t *near = s->col_near;
    for (size_t q = 0; q < m; q++)
        near[q] |= (uint64_t)body_id(s, (uint32_t)near[q]) << 32;
    for (size_t q = 1; q < m; q++) { /* insertion: typically a handful */
        uint64_t key = near[q];
        size_t at = q;
        for (; at > 0 && near[at - 1] > key; at--)
            near[at] = near[at - 1];
        near[at] = key;
    }
}

/* Adds to (*sx, *sy) the push of body j on body k at (mx, my), j within
 * the contact distance min. */
static inline void collide_push(const sim_shard *s, uint32_t k, uint32_t j, float mx, float my,
                                float min, float *sx, float *sy)
{
    float dx = mx - s->body_x[j], dy = my - s->body_y[j];
    float d = sqrtf(dx * dx + dy * dy);
    if (d < 1e-4f) {
        /* coincident: separate along a direction fixed by the ids */
        uint32_t me_id = body_id(s, k), o_id = body_id(s, j);
        float a = (float)((me_id ^ o_id) % 628) * 0.01f;
        dx = cosf(a);
        dy = sinf(a);
        d = 1.0f;
        if (me_id < o_id) {
            dx = -dx;
            dy = -dy;
        }
    }
    float push = (min - (d < min ? d : min)) * 0.5f;
    *sx += dx / d * push;
    *sy += dy / d * push;
}

/* The Jacobi step: every displacement is computed from the positions
 * after integration, which collide_find and collide_resolve read from the
 * bodies, never from the slots; so the slot can take its new position at
 * once (each owned body is displaced at most once). */
static inline void collide_apply(sim_shard *s, uint32_t i, float mx, float my, float sx, float sy)
{
    if (sx == 0.0f && sy == 0.0f)
        return;
    float x = mx + sx, y = my + sy;
    if (x == mx && y == my)
        return;
    clamp_world(s, &x, &y);
    if (s->obs_list)
        sim_push_out_of_obstacles(s, &x, &y);
    s->x[i] = x;
    s->y[i] = y;
    /* how far from its copy, for sim_index_collect */
    float dx = fabsf(x - mx), dy = fabsf(y - my), d = dx > dy ? dx : dy;
    if (d > s->col_slack)
        s->col_slack = d;
}

/* A body found in contact by collide_find, for collide_resolve. */
typedef struct col_hit {
    uint32_t k;        /* body index */
    uint32_t lo0, lo1; /* the block's runs start here (fast path) */
    uint32_t hits;     /* bit t: body lo0 + t in range, bit BODY_PROBE + t: lo1 + t;
                          COL_SCAN: a run is longer than BODY_PROBE */
} col_hit;
#define COL_SCAN UINT32_MAX
#define COL_CHUNK 1024 /* bodies probed before the hits among them are resolved */

/* The 2 x 2 block of buckets around the body at index k: the square of
 * half side COL_REACH * min lies within columns x0, x0 + 1 and rows y0,
 * y0 + 1 (buckets are at least 2 * COL_REACH * min wide); scanning that
 * fixed block (two contiguous runs) mispredicts less than trimming it.
 * The 1% beyond the contact distance keeps a body a rounding error away
 * from a bucket edge in the candidates whatever the bucket size (which
 * depends on the world: a replay's differs), so the exact test alone
 * decides. Rows as [lo, hi) runs of bodies; row 1 empty when the block
 * has one row. */
static inline void collide_block(const sim_shard *s, const broad *b, float mx, float my, float min,
                                 uint32_t run[4])
{
    const float reach = COL_REACH * min;
    uint32_t x0 = bcoord(mx - reach, b->inv, b->nx), y0 = bcoord(my - reach, b->inv, b->ny);
    uint32_t x2 = x0 + 2 <= b->nx ? x0 + 2 : b->nx, y1 = y0 + 1 < b->ny ? y0 + 1 : y0;
    run[0] = s->bucket_start[y0 * b->nx + x0];
    run[1] = s->bucket_start[y0 * b->nx + x2];
    run[2] = s->bucket_start[y1 * b->nx + x0];
    run[3] = s->bucket_start[y1 * b->nx + x2];
    if (y1 == y0)
        run[2] = run[3];
}

/* Probes the block (runs as collide_block's) of the body at index k and
 * fills *h; returns 1 when some other body is in range (or a run is too
 * long to probe), else 0. Without a branch on the answer: in M1 15% of
 * bodies are in contact, at random, and a branch on it mispredicts (~3 ms
 * a tick); the caller appends *h unconditionally and advances by the
 * return value. */
static inline uint32_t collide_find(const sim_shard *s, uint32_t k, const uint32_t run[4],
                                    float min, col_hit *h)
{
    const float mx = s->body_x[k], my = s->body_y[k];
    h->k = k;
    h->lo0 = run[0];
    h->lo1 = run[2];
    if (run[1] - run[0] > BODY_PROBE || run[3] - run[2] > BODY_PROBE) {
        h->hits = COL_SCAN;
        return 1;
    }
    /* the probes' hit masks, less the body itself, are the bodies in range */
    const float min2 = min * min;
    uint32_t h0 = collide_probe(s, run[0], run[1], mx, my, min2);
    uint32_t h1 = collide_probe(s, run[2], run[3], mx, my, min2);
    uint32_t o0 = k - run[0], o1 = k - run[2]; /* unsigned: huge when k is before the run */
    h0 &= ~(o0 < BODY_PROBE ? 1u << o0 : 0u);
    h1 &= ~(o1 < BODY_PROBE ? 1u << o1 : 0u);
    h->hits = h0 | h1 << BODY_PROBE;
    return h->hits != 0;
}

#if defined(__SSE2__)
/* collide_block of the bodies k .. k + 3, in lanes: run[4 * t + r] is
 * body k + t's run[r]. */
static inline void collide_block4(const sim_shard *s, const broad *b, uint32_t k, float min,
                                  uint32_t run[16])
{
    const __m128 reach = _mm_set1_ps(COL_REACH * min), inv = _mm_set1_ps(b->inv);
    __m128i x0 = core_cell4(_mm_sub_ps(_mm_loadu_ps(s->body_x + k), reach), inv,
                            _mm_set1_ps((float)(b->nx - 1)));
    __m128i y0 = core_cell4(_mm_sub_ps(_mm_loadu_ps(s->body_y + k), reach), inv,
                            _mm_set1_ps((float)(b->ny - 1)));
    /* x2 = min(x0 + 2, nx), y1 = min(y0 + 1, ny - 1) */
    const __m128i nx = _mm_set1_epi32((int32_t)b->nx), last_y = _mm_set1_epi32((int32_t)b->ny - 1);
    __m128i x2 = _mm_add_epi32(x0, _mm_set1_epi32(2)), y1 = _mm_add_epi32(y0, _mm_set1_epi32(1));
    __m128i over = _mm_cmpgt_epi32(x2, nx);
    x2 = _mm_or_si128(_mm_and_si128(over, nx), _mm_andnot_si128(over, x2));
    over = _mm_cmpgt_epi32(y1, last_y);
    y1 = _mm_or_si128(_mm_and_si128(over, last_y), _mm_andnot_si128(over, y1));
    __m128i one_row = _mm_cmpeq_epi32(y1, y0);
    __m128i r0 = core_muladd4(y0, b->nx, x0), r1 = core_muladd4(y1, b->nx, x0);
    __m128i w = _mm_sub_epi32(x2, x0);
    uint32_t at[4][4], one[4];
    _mm_storeu_si128((__m128i *)at[0], r0);
    _mm_storeu_si128((__m128i *)at[1], _mm_add_epi32(r0, w));
    _mm_storeu_si128((__m128i *)at[2], r1);
    _mm_storeu_si128((__m128i *)at[3], _mm_add_epi32(r1, w));
    _mm_storeu_si128((__m128i *)one, one_row);
    for (int t = 0; t < 4; t++) {
        run[4 * t] = s->bucket_start[at[0][t]];
        run[4 * t + 1] = s->bucket_start[at[1][t]];
        run[4 * t + 3] = s->bucket_start[at[3][t]];
        run[4 * t + 2] = one[t] ? run[4 * t + 3] : s->bucket_start[at[2][t]];
    }
}
#endif

/* The displacement that pushes the owned body h->k out of every body
 * within the contact distance, from positions as they stand after
 * integration: nothing moves until every displacement is known (a Jacobi
 * step), so the result does not depend on which entity was processed
 * first. In-range neighbours are summed in ascending id order (the first
 * COL_NEIGH_MAX of them), so the float sum depends only on which bodies
 * are in range and where. */
static void collide_resolve(sim_shard *s, const broad *b, const col_hit *h, float min)
{
    const uint32_t k = h->k, i = s->body_slot[k];
    const float mx = s->body_x[k], my = s->body_y[k];
    float sx = 0.0f, sy = 0.0f;
    size_t m = 0;
    if (h->hits != COL_SCAN) {
        uint32_t h0 = h->hits & ((1u << BODY_PROBE) - 1u), h1 = h->hits >> BODY_PROBE;
        if (!(h->hits & (h->hits - 1))) { /* one body in range (M1: most): no list, no order */
            uint32_t j =
                h0 ? h->lo0 + (uint32_t)__builtin_ctz(h0) : h->lo1 + (uint32_t)__builtin_ctz(h1);
            if (s->log)
                sim_log_contact(s, i, s->body_slot[j] & ~BODY_GHOST, s->body_x[j], s->body_y[j]);
            collide_push(s, k, j, mx, my, min, &sx, &sy);
            collide_apply(s, i, mx, my, sx, sy);
            return;
        }
        /* in scan order (row 0, then row 1), like the loop below */
        for (; h0; h0 &= h0 - 1)
            m = collide_near_add(s, m, i, h->lo0 + (uint32_t)__builtin_ctz(h0));
        for (; h1; h1 &= h1 - 1)
            m = collide_near_add(s, m, i, h->lo1 + (uint32_t)__builtin_ctz(h1));
    } else {
        /* a crowd (W3: hundreds in a bucket): the runs probed
         * BODY_PROBE at a time, in scan order */
        const float min2 = min * min;
        uint32_t run[4];
        collide_block(s, b, mx, my, min, run);
        for (int row = 0; row < 2; row++)
            for (uint32_t lo = run[2 * row]; lo < run[2 * row + 1]; lo += BODY_PROBE)
                for (uint32_t hm = collide_probe(s, lo, run[2 * row + 1], mx, my, min2); hm;
                     hm &= hm - 1) {
                    uint32_t j = lo + (uint32_t)__builtin_ctz(hm);
                    if (j != k)
                        m = collide_near_add(s, m, i, j);
                }
    }
    if (m == 0) /* nobody within reach */
        return;
    collide_near_sort(s, m);
    if (m > COL_NEIGH_MAX)
        m = COL_NEIGH_MAX;
    for (size_t q = 0; q < m; q++)
        collide_push(s, k, (uint32_t)s->col_near[q], mx, my, min, &sx, &sy);
    collide_apply(s, i, mx, my, sx, sy);
}

/* Every owned body against its neighbours, a chunk at a time: probe the
 * chunk (collide_find), then resolve the few in contact. */
static void collide_all(sim_shard *s, const broad *b, uint32_t n_bodies, float min)
{
    col_hit hit[COL_CHUNK];
    for (uint32_t k0 = 0; k0 < n_bodies; k0 += COL_CHUNK) {
        uint32_t k1 = n_bodies - k0 < COL_CHUNK ? n_bodies : k0 + COL_CHUNK, n = 0;
        uint32_t k = k0;
#if defined(__SSE2__)
        for (; k + 4 <= k1; k += 4) {
            uint32_t run[16];
            collide_block4(s, b, k, min, run);
            for (uint32_t t = 0; t < 4; t++)
                if (!(s->body_slot[k + t] & BODY_GHOST))
                    n += collide_find(s, k + t, run + 4 * t, min, &hit[n]);
        }
#endif
        for (; k < k1; k++)
            if (!(s->body_slot[k] & BODY_GHOST)) {
                uint32_t run[4];
                collide_block(s, b, s->body_x[k], s->body_y[k], min, run);
                n += collide_find(s, k, run, min, &hit[n]);
            }
        for (uint32_t q = 0; q < n; q++)
            collide_resolve(s, b, &hit[q], min);
    }
}

void sim_slots_sort(sim_shard *s)
{
    bool is_fresh = s->n_bodies == 0;
    if (is_fresh) { /* no movement step since the last renumbering (a new world) */
        broad b = broad_prepare(s, 2.0f * (float)s->cfg->entity_radius);
        uint32_t n = 0;
        for (uint32_t i = 0; i < s->n_used; i++)
            if (is_body(s, i)) {
                s->bucket_start[bucket_of(&b, s->x[i], s->y[i])]++;
                n++;
            }
        broad_finish(s, &b, n);
    }
    /* this tick's bodies in bucket order, then whatever else lives
     * (items, and anything that arrived since the movement step) */
    uint32_t *order = malloc(((size_t)s->n_used + 1) * sizeof *order);
    uint8_t *taken = calloc((size_t)s->n_used + 1, 1);
    if (!order || !taken)
        core_die("out of memory");
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->n_bodies; k++) {
        uint32_t i = s->body_slot[k] & ~BODY_GHOST;
        if (i < s->n_used && (s->flags[i] & SIM_F_ALIVE) && !taken[i]) {
            taken[i] = 1;
            order[n++] = i;
        }
    }
    for (uint32_t i = 0; i < s->n_used; i++)
        if ((s->flags[i] & SIM_F_ALIVE) && !taken[i])
            order[n++] = i;
    if (is_fresh)
        s->n_bodies = 0;             /* not the index: everything is in aoi_grid */
    sim_slots_renumber(s, order, n); /* renumbers the bodies' slots */
    free(order);
    free(taken);
}

/* One pass over the slots: NPC headings, integration, and the bodies
 * counted into their collision buckets. Returns the number of bodies. */
static uint32_t integrate_count(sim_shard *s, const broad *b)
{
    const float dt = s->dt;
    const bool obstacles = s->obs_list != NULL;
    uint32_t *count = s->bucket_start;
    uint32_t n_bodies = 0, i = 0;
#if defined(__SSE2__)
    /* Four slots at a time, without a branch per slot: which NPCs turn
     * (rare) and which entities move (a quarter of NPCs stand, at random)
     * are lane masks. */
    const float r = (float)s->cfg->entity_radius;
    const __m128 vr = _mm_set1_ps(r), vdt = _mm_set1_ps(dt), zero = _mm_setzero_ps();
    const __m128 vw = _mm_set1_ps((float)s->cells->world_w - r);
    const __m128 vh = _mm_set1_ps((float)s->cells->world_h - r);
    const __m128i sign = _mm_set1_epi32(INT32_MIN);
    const __m128i tick = _mm_xor_si128(_mm_set1_epi32((int32_t)s->tick), sign);
    const __m128i npc = _mm_set1_epi32(PROTO_KIND_NPC);
    for (; i + 4 <= s->n_used; i += 4) {
        /* an NPC's turn reads its id: fetch the ids ahead (a turn is a
         * few per cent of slots, each a cache miss otherwise) */
        if ((i & 15) == 0)
            __builtin_prefetch(s->id + i + 256);
        lanes4 l = lanes_load(s, i);
        /* tick >= wander_tick, unsigned: compared with the sign bit flipped */
        __m128i wt = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s->wander_tick + i)), sign);
        __m128i due = _mm_andnot_si128(_mm_cmpgt_epi32(wt, tick),
                                       _mm_and_si128(l.owned, _mm_cmpeq_epi32(l.kind, npc)));
        for (int m = _mm_movemask_ps(_mm_castsi128_ps(due)); m; m &= m - 1)
            npc_wander(s, i + (uint32_t)__builtin_ctz((unsigned)m));
        __m128 dx = _mm_loadu_ps(s->dir_x + i), dy = _mm_loadu_ps(s->dir_y + i);
        __m128 still = _mm_and_ps(_mm_cmpeq_ps(dx, zero), _mm_cmpeq_ps(dy, zero));
        __m128 moving = _mm_andnot_ps(still, _mm_castsi128_ps(l.owned));
        int mv = _mm_movemask_ps(moving);
        if (mv) {
            __m128 sp = _mm_loadu_ps(s->speed + i);
            /* x + dir * speed * dt, clamped to [r, w - r] as clamp_world */
            __m128 nx = _mm_add_ps(l.x, _mm_mul_ps(_mm_mul_ps(dx, sp), vdt));
            __m128 ny = _mm_add_ps(l.y, _mm_mul_ps(_mm_mul_ps(dy, sp), vdt));
            nx = _mm_min_ps(_mm_max_ps(nx, vr), vw);
            ny = _mm_min_ps(_mm_max_ps(ny, vr), vh);
            l.x = core_select4(moving, nx, l.x);
            l.y = core_select4(moving, ny, l.y);
            _mm_storeu_ps(s->x + i, l.x);
            _mm_storeu_ps(s->y + i, l.y);
            if (obstacles) {
                for (int m = mv; m; m &= m - 1) {
                    uint32_t j = i + (uint32_t)__builtin_ctz((unsigned)m);
                    sim_push_out_of_obstacles(s, &s->x[j], &s->y[j]);
                }
                l.x = _mm_loadu_ps(s->x + i);
                l.y = _mm_loadu_ps(s->y + i);
            }
        }
        uint32_t bucket[4];
        int m = lanes_buckets(&l, b, bucket);
        if (m == 15) { /* four bodies (nearly always): no loop over the mask */
            count[bucket[0]]++;
            count[bucket[1]]++;
            count[bucket[2]]++;
            count[bucket[3]]++;
            n_bodies += 4;
            continue;
        }
        for (; m; m &= m - 1) {
            count[bucket[__builtin_ctz((unsigned)m)]]++;
            n_bodies++;
        }
    }
#endif
    for (; i < s->n_used; i++) {
        bool is_owned = (s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE;
        if (is_owned && s->kind[i] == PROTO_KIND_NPC && s->tick >= s->wander_tick[i])
            npc_wander(s, i);
        if (is_owned && (s->dir_x[i] != 0.0f || s->dir_y[i] != 0.0f)) {
            float x = s->x[i] + s->dir_x[i] * s->speed[i] * dt;
            float y = s->y[i] + s->dir_y[i] * s->speed[i] * dt;
            clamp_world(s, &x, &y);
            if (obstacles)
                sim_push_out_of_obstacles(s, &x, &y);
            s->x[i] = x;
            s->y[i] = y;
        }
        if (is_body(s, i)) {
            count[bucket_of(b, s->x[i], s->y[i])]++;
            n_bodies++;
        }
    }
    return n_bodies;
}

void sim_move(sim_shard *s)
{
    if (s->log)
        sim_log_step(s);
    float min = 2.0f * (float)s->cfg->entity_radius;
    broad b = broad_prepare(s, min);
    uint32_t n_bodies = integrate_count(s, &b);
    broad_finish(s, &b, n_bodies);
    s->col_nx = b.nx;
    s->col_ny = b.ny;
    s->col_inv = b.inv;
    s->col_slack = 0.0f;
    collide_all(s, &b, n_bodies, min);
    /* the bodies are the index now (sim_index_collect): those placed or
     * moved since the last step leave aoi_grid, which keeps the items */
    uint32_t n_recent = s->n_recent;
    for (uint32_t q = 0; q < n_recent; q++) {
        uint32_t i = s->recent[q];
        if (i < s->n_used && is_body(s, i))
            spatial_grid_remove(s->aoi_grid, i);
    }
    s->n_recent = 0;
    s->is_index_exact = true;
    /* a world's first steps (everything was recent): the list goes once it
     * is far larger than a step needs, not every step a shard with many
     * ghost updates fills it */
    if (s->recent_cap > 4096 && n_recent < s->recent_cap / 8) {
        free(s->recent);
        s->recent = NULL;
        s->recent_cap = 0;
    }
}

size_t sim_index_collect(const sim_shard *s, float x, float y, float r, uint32_t *out, size_t cap)
{
    size_t n = spatial_grid_collect(s->aoi_grid, x, y, r, out, cap);
    if (s->n_bodies == 0)
        return n;
    /* The bodies' buckets are those of their copies, which collision may
     * have pushed up to col_slack from where they are; the unit more
     * covers the rounding of the bounds. A body counts unless it died
     * (its slot reused or not) or moved since (then it is in aoi_grid). */
    float rr = r + s->col_slack + 1.0f;
    uint32_t x0 = bcoord(x - rr, s->col_inv, s->col_nx), x1 = bcoord(x + rr, s->col_inv, s->col_nx);
    uint32_t y0 = bcoord(y - rr, s->col_inv, s->col_ny), y1 = bcoord(y + rr, s->col_inv, s->col_ny);
    for (uint32_t by = y0; by <= y1; by++) {
        /* a row's buckets x0 .. x1 are one run of bodies */
        uint32_t lo = s->bucket_start[by * s->col_nx + x0];
        uint32_t hi = s->bucket_start[by * s->col_nx + x1 + 1];
        if (s->is_index_exact) { /* every body is alive and where its copy says */
            for (uint32_t k = lo; k < hi; k++, n++)
                if (n < cap)
                    out[n] = s->body_slot[k] & ~BODY_GHOST;
            continue;
        }
        for (uint32_t k = lo; k < hi; k++) {
            uint32_t i = s->body_slot[k] & ~BODY_GHOST;
            if (i < s->n_used && (s->flags[i] & SIM_F_ALIVE) &&
                !spatial_grid_contains(s->aoi_grid, i)) {
                if (n < cap)
                    out[n] = i;
                n++;
            }
        }
    }
    return n;
}
