/* test_sim.c - shards in-process over the real bus: determinism,
 * authoritative movement, input validation, area of interest against a
 * brute-force distance check (and exact positions), the interest budget,
 * handoff across a shard border with no input lost or applied twice, and
 * STATEs only when there is news (a keepalive every keepalive_s). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core_rng.h"
#include "sim_harness.h"

static void run_scripted(harness *h, uint64_t seed, int ticks, uint64_t *hashes, uint32_t sort)
{
    h_init(h, 2, 200, seed);
    h->sort_every = sort;
    h_start(h);
    core_rng rng;
    core_rng_seed(&rng, 99);
    h_sess *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = h_join(h, "p", 100.0f + 80.0f * (float)i, 200.0f + 50.0f * (float)i);
    for (int t = 0; t < ticks; t++) {
        for (int i = 0; i < 10; i++) {
            float a = core_rng_unit(&rng) * 6.283f;
            if (p[i]->entity_id)
                h_input(h, p[i], cosf(a), sinf(a));
        }
        assert_int_equal(h_step(h), 0);
        if (t % 50 == 49)
            hashes[t / 50] = h_hash(h);
    }
}

static void test_determinism(void **state)
{
    (void)state;
    harness a, b, c, d;
    uint64_t ha[4], hb[4], hc[4], hd[4];
    run_scripted(&a, 7, 200, ha, 0);
    run_scripted(&b, 7, 200, hb, 0);
    run_scripted(&c, 8, 200, hc, 0);
    run_scripted(&d, 7, 200, hd, 3); /* slots renumbered every 3 ticks */
    for (int i = 0; i < 4; i++) {
        assert_true(ha[i] == hb[i]);
        assert_true(ha[i] == hd[i]); /* memory order never shows */
    }
    /* the hash must see the state: another seed gives another world */
    assert_true(ha[3] != hc[3]);
    h_free(&a);
    h_free(&b);
    h_free(&c);
    h_free(&d);
}

static void test_authoritative_speed(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 1, 0, 1);
    h_start(&h);
    h_sess *s = h_join(&h, "runner", 300.0f, 300.0f);
    assert_int_equal(h_step(&h), 0);
    assert_true(s->entity_id != 0);
    sim_entity_info e[4];
    assert_int_equal(h_entities(&h, e, 4), 1);
    float x0 = e[0].x, y0 = e[0].y;
    /* a speed hack: ten full-speed inputs in one tick; only 4 are taken and
     * the rest rejected, and speed stays the server's */
    for (int i = 0; i < 10; i++)
        h_input(&h, s, 1.0f, 0.0f);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(s->view.ack_seq, 4);
    assert_true(s->n_errors >= 1);
    assert_int_equal(s->last_error, PROTO_ERR_TOO_MANY_INPUTS);
    for (int t = 0; t < 19; t++)
        assert_int_equal(h_step(&h), 0);
    h_entities(&h, e, 4);
    /* 20 ticks at 50 units/s = 50 units, in x only */
    assert_float_equal(e[0].x - x0, 50.0f, 0.01f);
    assert_float_equal(e[0].y - y0, 0.0f, 0.001f);
    /* the client's view agrees with the server to the quantum */
    int k = proto_view_find(&s->view, s->entity_id);
    assert_true(k >= 0);
    assert_float_equal((float)s->view.slots[k].x_q / 16.0f, e[0].x, 0.0625f);
    /* half a stick: half speed */
    h_input(&h, s, 0.0f, 0.5f);
    for (int t = 0; t < 20; t++)
        assert_int_equal(h_step(&h), 0);
    h_entities(&h, e, 4);
    assert_float_equal(e[0].y - y0, 25.0f, 0.01f);
    h_free(&h);
}

static void test_input_validation(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 1, 0, 1);
    h_start(&h);
    h_sess *s = h_join(&h, "cheat", 300.0f, 300.0f);
    assert_int_equal(h_step(&h), 0);
    /* NaN and over-long headings are refused by the shard too */
    h_input(&h, s, NAN, 0.0f);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(s->last_error, PROTO_ERR_NOT_FINITE);
    assert_int_equal(s->view.ack_seq, 0);
    h_input(&h, s, 3.0f, 0.0f);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(s->last_error, PROTO_ERR_OUT_OF_RANGE);
    /* a replayed (old) sequence number is refused */
    s->seq = 10;
    h_input(&h, s, 1.0f, 0.0f); /* seq 11 */
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(s->view.ack_seq, 11);
    s->seq = 4;
    h_input(&h, s, -1.0f, 0.0f); /* seq 5: stale */
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(s->last_error, PROTO_ERR_STALE_SEQ);
    assert_int_equal(s->view.ack_seq, 11);
    sim_entity_info e[2];
    h_entities(&h, e, 2);
    float x = e[0].x;
    assert_int_equal(h_step(&h), 0);
    h_entities(&h, e, 2);
    assert_true(e[0].x > x); /* still walking +x: the stale input was not applied */
    h_free(&h);
}

/* The entity with this id among n, or NULL. */
static const sim_entity_info *find_entity(const sim_entity_info *all, size_t n, uint32_t id)
{
    for (size_t k = 0; k < n; k++)
        if (all[k].id == id)
            return &all[k];
    return NULL;
}

/* Every entity within radius - tol must be in the view, none beyond
 * radius + tol, where tol is one tick of motion. Returns checks made. */
static long check_aoi(harness *h, float tol)
{
    static sim_entity_info all[4096];
    size_t n = h_entities(h, all, 4096);
    float r = (float)h->cfg.aoi_radius;
    long checks = 0;
    for (int i = 0; i < h->n_sess; i++) {
        h_sess *s = &h->sess[i];
        const sim_entity_info *self = find_entity(all, n, s->entity_id);
        if (!self || s->is_gone)
            continue; /* in transit between shards this instant, or left */
        for (size_t k = 0; k < n; k++) {
            float dx = all[k].x - self->x, dy = all[k].y - self->y;
            float d = sqrtf(dx * dx + dy * dy);
            int slot = proto_view_find(&s->view, all[k].id);
            if (d <= r - tol) {
                if (slot < 0)
                    fail_msg("session %d misses entity %u at distance %.2f", i, all[k].id, d);
                float ex = (float)s->view.slots[slot].x_q / 16.0f;
                float ey = (float)s->view.slots[slot].y_q / 16.0f;
                assert_true(fabsf(ex - all[k].x) <= tol && fabsf(ey - all[k].y) <= tol);
                checks++;
            } else if (d > r + tol) {
                if (slot >= 0)
                    fail_msg("session %d sees entity %u at distance %.2f", i, all[k].id, d);
                checks++;
            }
        }
    }
    return checks;
}

/* A client's view holds exactly the quantized position of every entity
 * its own shard owns: deltas are taken against what it was sent, never
 * approximately. Ghosts (a neighbour's entities) lag and are skipped. */
static long check_views_exact(harness *h)
{
    static sim_entity_info own[4096];
    long checks = 0;
    for (int sh = 0; sh < h->n_shards; sh++) {
        size_t n = sim_shard_entities(h->shards[sh], own, 4096);
        for (int i = 0; i < h->n_sess; i++) {
            h_sess *s = &h->sess[i];
            if (!find_entity(own, n, s->entity_id) || s->route != sh)
                continue;
            for (size_t k = 0; k < n; k++) {
                int slot = proto_view_find(&s->view, own[k].id);
                if (slot < 0)
                    continue;
                int32_t qx = (int32_t)lrintf(own[k].x * 16.0f);
                int32_t qy = (int32_t)lrintf(own[k].y * 16.0f);
                if (s->view.slots[slot].x_q != qx || s->view.slots[slot].y_q != qy)
                    fail_msg("session %d has entity %u at (%d, %d), it is at (%d, %d)", i,
                             own[k].id, s->view.slots[slot].x_q, s->view.slots[slot].y_q, qx, qy);
                checks++;
            }
        }
    }
    return checks;
}

static void test_aoi_brute_force(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 2, 300, 3);
    h.cfg.aoi_max_entities = 1024;
    h.cfg.aoi_max_bytes = 65536;
    h.cfg.entity_radius = 0.25;
    h_start(&h);
    core_rng rng;
    core_rng_seed(&rng, 5);
    h_sess *p[40];
    for (int i = 0; i < 40; i++)
        p[i] = h_join(&h, "w", 50.0f + core_rng_unit(&rng) * 924.0f,
                      50.0f + core_rng_unit(&rng) * 924.0f);
    assert_int_equal(h_step(&h), 0);
    float tol = (float)h.cfg.player_speed / (float)h.cfg.tick_hz + 0.5f;
    long checks = 0, exact = 0;
    for (int t = 0; t < 120; t++) {
        for (int i = 0; i < 40; i++) {
            if (t % 20 == 0) {
                float a = core_rng_unit(&rng) * 6.283f;
                h_input(&h, p[i], cosf(a), sinf(a));
            }
        }
        assert_int_equal(h_step(&h), 0);
        if (t >= 2) {
            checks += check_aoi(&h, tol);
            exact += check_views_exact(&h);
        }
        for (int i = 0; i < 40; i++) {
            assert_true(p[i]->frames_this_tick <= 1); /* at most one frame per client per tick */
            assert_int_equal(p[i]->self_leaves, 0);
        }
    }
    print_message("aoi checks: %ld, exact positions: %ld\n", checks, exact);
    assert_true(checks > 100000);
    assert_true(exact > 10000);
    h_free(&h);
}

static void test_aoi_budget(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 1, 0, 1);
    h.cfg.aoi_max_entities = 8;
    h_start(&h);
    h_sess *s[30];
    for (int i = 0; i < 30; i++) /* a crowd on a line, 5 units apart */
        s[i] = h_join(&h, "c", 200.0f + 5.0f * (float)i, 300.0f);
    for (int t = 0; t < 3; t++)
        assert_int_equal(h_step(&h), 0);
    /* the first in the line sees itself and its 7 nearest neighbours */
    int seen = 0;
    for (uint32_t k = 0; k < s[0]->view.n_slots; k++)
        if (s[0]->view.slots[k].entity_id)
            seen++;
    assert_int_equal(seen, 8);
    for (int i = 0; i < 8; i++)
        assert_true(proto_view_find(&s[0]->view, s[i]->entity_id) >= 0);
    assert_true(proto_view_find(&s[0]->view, s[8]->entity_id) < 0);
    h_free(&h);
}

/* The k nearest entities to session `me` (itself first), as the shard
 * orders them: distance squared in float, ties by entity id. */
static int nearest_ids(const sim_entity_info *all, size_t n, uint32_t me, int k, uint32_t *out)
{
    const sim_entity_info *self = find_entity(all, n, me);
    assert_non_null(self);
    float px = self->x, py = self->y;
    int got = 0;
    out[got++] = me;
    bool *used = calloc(n, sizeof *used);
    while (got < k) {
        long best = -1;
        float bd = 0;
        for (size_t i = 0; i < n; i++) {
            if (used[i] || all[i].id == me)
                continue;
            float dx = all[i].x - px, dy = all[i].y - py;
            float d2 = dx * dx + dy * dy;
            if (best < 0 || d2 < bd || (d2 == bd && all[i].id < all[best].id)) {
                best = (long)i;
                bd = d2;
            }
        }
        if (best < 0)
            break;
        used[best] = true;
        out[got++] = all[best].id;
    }
    free(used);
    return got;
}

static bool view_is(const h_sess *s, const uint32_t *ids, int n)
{
    int seen = 0;
    for (uint32_t k = 0; k < s->view.n_slots; k++)
        if (s->view.slots[k].entity_id)
            seen++;
    if (seen != n)
        return false;
    for (int i = 0; i < n; i++)
        if (proto_view_find(&s->view, ids[i]) < 0)
            return false;
    return true;
}

/* A milling crowd, far more players than aoi_max_entities within the
 * radius: every view holds exactly the nearest (ties by id) although the
 * shard narrows its search to where last tick's nearest can be; with the
 * choice made every other tick, a view is the nearest of this tick or of
 * the last one, and this tick's at least every other tick. */
static void test_aoi_crowd(void **state)
{
    (void)state;
    enum { N = 90, K = 12 };
    for (int every = 1; every <= 2; every++) {
        harness h;
        h_init(&h, 1, 0, 11);
        h.cfg.aoi_max_entities = K;
        h.cfg.aoi_max_bytes = 65536;
        h.cfg.entity_radius = 0.25;
        h_start(&h);
        sim_shard_set_crowd_refresh(h.shards[0], (uint32_t)every);
        core_rng rng;
        core_rng_seed(&rng, 17);
        h_sess *p[N];
        for (int i = 0; i < N; i++) {
            float a = core_rng_unit(&rng) * 6.2831853f, d = 12.0f * sqrtf(core_rng_unit(&rng));
            p[i] = h_join(&h, "c", 500.0f + d * cosf(a), 500.0f + d * sinf(a));
        }
        assert_int_equal(h_step(&h), 0);
        static sim_entity_info all[N + 1];
        static uint32_t prev[N][K], now[N][K];
        int prev_n[N] = {0}, now_n[N], exact[N] = {0};
        int ticks = 0;
        for (int t = 0; t < 60; t++) {
            for (int i = 0; i < N; i++) { /* mill: a random heading, pulled to the centre */
                const proto_view_entity *me = NULL;
                int k = proto_view_find(&p[i]->view, p[i]->entity_id);
                if (k >= 0)
                    me = &p[i]->view.slots[k];
                float vx = me ? 500.0f - (float)me->x_q / 16.0f : 0,
                      vy = me ? 500.0f - (float)me->y_q / 16.0f : 0;
                float a = core_rng_unit(&rng) * 6.2831853f;
                float dx = cosf(a) + vx / 12.0f, dy = sinf(a) + vy / 12.0f, n = hypotf(dx, dy);
                h_input(&h, p[i], n > 1 ? dx / n : dx, n > 1 ? dy / n : dy);
            }
            assert_int_equal(h_step(&h), 0);
            size_t n = sim_shard_entities(h.shards[0], all, N + 1);
            assert_int_equal(n, N);
            for (int i = 0; i < N; i++) {
                now_n[i] = nearest_ids(all, n, p[i]->entity_id, K, now[i]);
                if (t >= 2) {
                    bool is_now = view_is(p[i], now[i], now_n[i]);
                    if (every == 1 && !is_now)
                        fail_msg("tick %d: session %d's view is not its %d nearest", t, i, K);
                    if (!is_now && !view_is(p[i], prev[i], prev_n[i]))
                        fail_msg("tick %d: session %d's view is neither this tick's nearest nor "
                                 "the last's",
                                 t, i);
                    exact[i] += is_now;
                }
                memcpy(prev[i], now[i], sizeof now[i]);
                prev_n[i] = now_n[i];
            }
            if (t >= 2)
                ticks++;
        }
        for (int i = 0; i < N; i++)
            assert_true(exact[i] >= ticks / every);
        h_free(&h);
    }
}

static void test_handoff(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 2, 0, 1);
    h.cfg.entity_radius = 0.25;
    h_start(&h);
    /* border at x = 512 */
    h_sess *walker = h_join(&h, "walker", 495.0f, 300.0f);
    h_sess *w0 = h_join(&h, "west", 470.0f, 340.0f);
    h_sess *w1 = h_join(&h, "east", 560.0f, 340.0f);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(walker->route, 0);
    int sent = 0, raced = 0;
    uint16_t last_route = walker->route;
    for (int t = 0; t < 40; t++) {
        if (walker->route != last_route && !raced) {
            /* the gateway learned the new route: one input still reaches the
             * old owner (in flight), the next goes to the new one */
            h_input_to(&h, walker, last_route, 1.0f, 0.0f);
            h_input(&h, walker, 1.0f, 0.0f);
            sent += 2;
            raced = 1;
        } else {
            h_input(&h, walker, 1.0f, 0.0f);
            sent++;
        }
        last_route = walker->route;
        assert_int_equal(h_step(&h), 0);
        assert_int_equal(walker->frames_this_tick, 1);
        assert_int_equal(walker->self_leaves, 0);
        /* the watchers see the walker whenever it is within the radius */
        const proto_view_entity *me =
            &walker->view.slots[proto_view_find(&walker->view, walker->entity_id)];
        float wx = (float)me->x_q / 16.0f, wy = (float)me->y_q / 16.0f;
        float d0 = hypotf(wx - 470.0f, wy - 340.0f), d1 = hypotf(wx - 560.0f, wy - 340.0f);
        if (d0 <= 97.0f)
            assert_true(proto_view_find(&w0->view, walker->entity_id) >= 0);
        if (d1 <= 97.0f)
            assert_true(proto_view_find(&w1->view, walker->entity_id) >= 0);
        if (d0 > 103.0f)
            assert_true(proto_view_find(&w0->view, walker->entity_id) < 0);
    }
    assert_true(raced);
    assert_int_equal(walker->route, 1);
    for (int t = 0; t < 3; t++)
        assert_int_equal(h_step(&h), 0);
    sim_stats st0, st1;
    sim_shard_stats(h.shards[0], &st0);
    sim_shard_stats(h.shards[1], &st1);
    assert_int_equal(st0.handoffs_out, 1);
    assert_int_equal(st1.handoffs_in, 1);
    assert_int_equal(st0.inputs_applied + st1.inputs_applied, (uint64_t)sent);
    assert_int_equal(st0.inputs_duplicate + st1.inputs_duplicate, 0);
    assert_int_equal(st0.inputs_skipped + st1.inputs_skipped, 0);
    assert_int_equal(walker->view.ack_seq, (uint32_t)sent);
    sim_entity_info e[8];
    size_t n = sim_shard_entities(h.shards[1], e, 8);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].id == walker->entity_id) {
            found = 1;
            assert_true(e[i].x > 512.0f);
            assert_int_equal(e[i].last_seq, (uint32_t)sent);
        }
    assert_true(found);
    h_free(&h);
}

/* One shard: every view holds exactly the entities within the radius
 * (the shard's float test), at their exact quantized positions. */
static long check_views_complete(harness *h)
{
    static sim_entity_info all[4096];
    size_t n = sim_shard_entities(h->shards[0], all, 4096);
    float r2 = (float)(h->cfg.aoi_radius * h->cfg.aoi_radius);
    long checks = 0;
    for (int i = 0; i < h->n_sess; i++) {
        h_sess *s = &h->sess[i];
        const sim_entity_info *self = find_entity(all, n, s->entity_id);
        if (s->is_gone || !self)
            continue;
        uint32_t want = 0;
        for (size_t k = 0; k < n; k++) {
            float dx = all[k].x - self->x, dy = all[k].y - self->y;
            bool is_in = &all[k] == self || dx * dx + dy * dy <= r2;
            int slot = proto_view_find(&s->view, all[k].id);
            if (is_in != (slot >= 0))
                fail_msg("tick %u: session %d %s entity %u at distance %.4f", h->tick, i,
                         is_in ? "misses" : "still has", all[k].id, sqrtf(dx * dx + dy * dy));
            if (!is_in)
                continue;
            want++;
            int32_t qx = (int32_t)lrintf(all[k].x * 16.0f), qy = (int32_t)lrintf(all[k].y * 16.0f);
            if (s->view.slots[slot].x_q != qx || s->view.slots[slot].y_q != qy)
                fail_msg("tick %u: session %d has entity %u at (%d, %d), it is at (%d, %d)",
                         h->tick, i, all[k].id, s->view.slots[slot].x_q, s->view.slots[slot].y_q,
                         qx, qy);
            checks++;
        }
        uint32_t have = 0;
        for (uint32_t k = 0; k < s->view.n_slots; k++)
            have += s->view.slots[k].entity_id != 0;
        assert_int_equal(have, want);
    }
    return checks;
}

/* Skipping the AOI pass of clients in quiet areas changes nothing: NPCs
 * wander through crowds of idle players, players start and stop walking,
 * join and leave, and every view stays exactly right every tick. */
static void run_quiet_areas(int n_shards)
{
    harness h;
    h_init(&h, n_shards, 4, 11);
    h.cfg.aoi_max_entities = 1024;
    h.cfg.aoi_max_bytes = 65536;
    h.cfg.entity_radius = 0.25;
    h_start(&h);
    core_rng rng;
    core_rng_seed(&rng, 12);
    float tol = (float)h.cfg.player_speed / (float)h.cfg.tick_hz + 0.5f;
    h_sess *p[80];
    bool walking[80] = {false};
    int np = 0;
    for (; np < 50; np++)
        p[np] = h_join(&h, "q", 20.0f + core_rng_unit(&rng) * 984.0f,
                       20.0f + core_rng_unit(&rng) * 984.0f);
    long checks = 0;
    for (int t = 0; t < 600; t++) {
        if (t % 4 == 0) { /* a walker stops, or (less often) someone sets off */
            int i = (int)core_rng_below(&rng, (uint32_t)np);
            float a = core_rng_unit(&rng) * 6.283f;
            bool go = !walking[i] && core_rng_below(&rng, 8) == 0;
            if (!p[i]->is_gone && p[i]->entity_id && (walking[i] || go)) {
                h_input(&h, p[i], go ? cosf(a) : 0.0f, go ? sinf(a) : 0.0f);
                walking[i] = go;
            }
        }
        if (t % 40 == 20 && np < 80)
            p[np++] = h_join(&h, "late", 20.0f + core_rng_unit(&rng) * 984.0f,
                             20.0f + core_rng_unit(&rng) * 984.0f);
        if (t % 50 == 45) {
            h_sess *s = p[core_rng_below(&rng, (uint32_t)np)];
            if (!s->is_gone && s->entity_id)
                h_leave(&h, s);
        }
        assert_int_equal(h_step(&h), 0);
        /* with two shards, ghosts lag a tick (a newcomer next door too):
         * within a tick of motion, exact for own entities only */
        if (t >= 2 && n_shards == 1)
            checks += check_views_complete(&h);
        else if (t >= 2 && t % 40 != 20)
            checks += check_aoi(&h, tol) + check_views_exact(&h);
    }
    sim_stats st = {0};
    for (int i = 0; i < n_shards; i++) {
        sim_stats one;
        sim_shard_stats(h.shards[i], &one);
        st.aoi_quiet += one.aoi_quiet;
        st.states_sent += one.states_sent;
        st.states_skipped += one.states_skipped;
    }
    print_message("%d shard(s): view checks %ld; AOI passes skipped %" PRIu64 " of %" PRIu64 "\n",
                  n_shards, checks, st.aoi_quiet, st.states_sent + st.states_skipped);
    assert_true(checks > 10000);
    assert_true(st.aoi_quiet > (st.states_sent + st.states_skipped) / 4); /* it does skip */
    h_free(&h);
}

static void test_quiet_areas_match_full_aoi(void **state)
{
    (void)state;
    run_quiet_areas(1);
    run_quiet_areas(2); /* across a shard border, with ghosts and handoffs */
}

/* A STATE goes out when there is news (a leave, enter or move in view, a
 * record, a new ack); otherwise only a keepalive every keepalive_s. */
static void test_idle_states(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 1, 0, 1);
    h_start(&h);
    const uint32_t tick_hz = (uint32_t)h.cfg.tick_hz;
    const uint32_t hz = tick_hz * (uint32_t)h.cfg.keepalive_s; /* ticks per keepalive */
    h_sess *idle = h_join(&h, "idle", 200.0f, 200.0f);
    h_sess *walker = h_join(&h, "walker", 700.0f, 200.0f); /* far out of each other's view */
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(idle->frames_this_tick, 1); /* WELCOME and the first STATE */
    assert_int_equal(walker->frames_this_tick, 1);
    h_input(&h, walker, 0.0f, 1.0f); /* walks +y: 150 units in the 3 s below */
    uint32_t f_idle = idle->frames_total, f_walker = walker->frames_total;
    uint32_t msgs = h.n_frames_msgs;
    for (uint32_t t = 0; t < 3 * hz; t++) {
        assert_int_equal(h_step(&h), 0);
        assert_int_equal(walker->frames_this_tick, 1);
        assert_true(idle->frames_this_tick <= 1);
        /* the keepalive: never more than keepalive_s without a STATE */
        assert_true(h.tick - idle->view.tick <= hz);
    }
    assert_int_equal(idle->frames_total - f_idle, 3);          /* one per keepalive_s */
    assert_int_equal(walker->frames_total - f_walker, 3 * hz); /* one a tick */
    assert_int_equal(walker->view.ack_seq, walker->seq);
    /* the gateway hears from the shard every tick, STATE or not */
    assert_int_equal(h.n_frames_msgs - msgs, 3 * hz);

    /* an input is acknowledged in the tick that applies it, even one that
     * changes nothing (a zero heading) */
    for (int k = 0; k < 3; k++) {
        while ((h.tick + 1) % hz == 0) /* not a keepalive tick: the ack alone counts */
            assert_int_equal(h_step(&h), 0);
        h_input(&h, idle, 0.0f, 0.0f);
        assert_int_equal(h_step(&h), 0);
        assert_int_equal(idle->frames_this_tick, 1);
        assert_int_equal(idle->view.ack_seq, idle->seq);
        assert_int_equal(idle->view.tick, h.tick);
    }

    /* news: the walker turns towards the idle client and walks into its
     * view; from then on the idle client gets every tick of it */
    const proto_view_entity *w =
        &walker->view.slots[proto_view_find(&walker->view, walker->entity_id)];
    float dx = 200.0f - (float)w->x_q / 16.0f, dy = 200.0f - (float)w->y_q / 16.0f;
    float d = sqrtf(dx * dx + dy * dy);
    h_input(&h, walker, dx / d, dy / d);
    uint32_t seen_at = 0;
    for (uint32_t t = 0; t < 20 * tick_hz && !seen_at; t++) {
        assert_int_equal(h_step(&h), 0);
        if (proto_view_find(&idle->view, walker->entity_id) >= 0)
            seen_at = h.tick;
    }
    assert_true(seen_at != 0);
    f_idle = idle->frames_total;
    for (uint32_t t = 0; t < tick_hz; t++)
        assert_int_equal(h_step(&h), 0);
    assert_int_equal(idle->frames_total - f_idle, tick_hz);
    sim_stats st;
    sim_shard_stats(h.shards[0], &st);
    assert_true(st.states_skipped > 0 && st.states_sent > 0);
    h_free(&h);
}

/* Names of every length reach the watchers intact: short ones live in the
 * slot's label, longer ones beside it (by entity id), through slot
 * re-sorts (every 7 ticks here), a handoff with its ghosts both ways, and
 * the reuse of a released long name by the next one. */
static void test_names_every_length(void **state)
{
    (void)state;
    static const char *const names[] = {"abc", "fifteen-chars-x", "sixteen-chars-xy",
                                        "a-name-of-24-characters-"};
    harness h;
    h_init(&h, 2, 0, 1);
    h_start(&h);
    /* border at x = 512: the walkers start west of it and walk east */
    h_sess *watch_w = h_join(&h, "watch-west", 470.0f, 300.0f);
    h_sess *watch_e = h_join(&h, "watch-east", 560.0f, 300.0f);
    h_sess *walkers[4];
    for (int i = 0; i < 4; i++)
        walkers[i] = h_join(&h, names[i], 490.0f, 290.0f + 6.0f * (float)i);
    for (int t = 0; t < 50; t++) {
        for (int i = 0; i < 4; i++)
            h_input(&h, walkers[i], 1.0f, 0.0f);
        assert_int_equal(h_step(&h), 0);
        for (int i = 0; i < 4; i++) {
            h_sess *ws[2] = {watch_w, watch_e};
            for (int k = 0; k < 2; k++) {
                int v = proto_view_find(&ws[k]->view, walkers[i]->entity_id);
                if (v >= 0)
                    assert_string_equal(ws[k]->view.slots[v].name, names[i]);
            }
        }
    }
    assert_int_equal(walkers[3]->route, 1);
    /* the long names go, new long names take their places */
    h_leave(&h, walkers[2]);
    h_leave(&h, walkers[3]);
    assert_int_equal(h_step(&h), 0);
    h_sess *late = h_join(&h, "late-comer-with-long-name", 565.0f, 305.0f);
    h_sess *late2 = h_join(&h, "another-long-name-here", 566.0f, 295.0f);
    for (int t = 0; t < 10; t++)
        assert_int_equal(h_step(&h), 0);
    int v = proto_view_find(&watch_e->view, late->entity_id);
    assert_true(v >= 0);
    assert_string_equal(watch_e->view.slots[v].name, "late-comer-with-long-name");
    v = proto_view_find(&watch_e->view, late2->entity_id);
    assert_true(v >= 0);
    assert_string_equal(watch_e->view.slots[v].name, "another-long-name-here");
    h_free(&h);
}

/* Sends "move right" with gateway sequence gseq (and client seq = gseq). */
static void input_gseq(harness *h, h_sess *s, uint32_t gseq)
{
    h_input_seq(h, s, s->route, gseq, gseq, 1.0f, 0.0f);
}

/* Inputs that arrive out of order wait for the missing one; a gap that
 * stays open is skipped after SIM_GAP_TICKS; then in order again. */
static void test_inputs_out_of_order(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 1, 0, 1);
    h_start(&h);
    h_sess *p = h_join(&h, "pat", 300.0f, 300.0f);
    assert_int_equal(h_step(&h), 0);
    input_gseq(&h, p, 3);
    input_gseq(&h, p, 2);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(p->view.ack_seq, 0); /* 1 is missing */
    input_gseq(&h, p, 1);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(p->view.ack_seq, 3);
    input_gseq(&h, p, 5); /* 4 never comes */
    for (int t = 0; t < 30 && p->view.ack_seq != 5; t++)
        assert_int_equal(h_step(&h), 0);
    assert_int_equal(p->view.ack_seq, 5);
    input_gseq(&h, p, 6);
    assert_int_equal(h_step(&h), 0);
    assert_int_equal(p->view.ack_seq, 6);
    sim_stats st;
    sim_shard_stats(h.shards[0], &st);
    assert_int_equal(st.inputs_applied, 5);
    assert_int_equal(st.inputs_skipped, 1);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_authoritative_speed),
        cmocka_unit_test(test_input_validation),
        cmocka_unit_test(test_aoi_brute_force),
        cmocka_unit_test(test_aoi_budget),
        cmocka_unit_test(test_aoi_crowd),
        cmocka_unit_test(test_handoff),
        cmocka_unit_test(test_names_every_length),
        cmocka_unit_test(test_inputs_out_of_order),
        cmocka_unit_test(test_idle_states),
        cmocka_unit_test(test_quiet_areas_match_full_aoi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
