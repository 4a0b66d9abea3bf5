/* test_sim.c - shards in-process over the real bus: determinism,
 * authoritative movement, input validation, area of interest against a
 * brute-force distance check, the interest budget, and handoff across a
 * shard border with no input lost or applied twice. */
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
        const sim_entity_info *self = NULL;
        for (size_t k = 0; k < n; k++)
            if (all[k].id == s->entity_id)
                self = &all[k];
        if (!self)
            continue; /* in transit between shards this instant */
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
    long checks = 0;
    for (int t = 0; t < 120; t++) {
        for (int i = 0; i < 40; i++) {
            if (t % 20 == 0) {
                float a = core_rng_unit(&rng) * 6.283f;
                h_input(&h, p[i], cosf(a), sinf(a));
            }
        }
        assert_int_equal(h_step(&h), 0);
        if (t >= 2)
            checks += check_aoi(&h, tol);
        for (int i = 0; i < 40; i++) {
            assert_int_equal(p[i]->frames_this_tick, 1); /* one frame per client per tick */
            assert_int_equal(p[i]->self_leaves, 0);
        }
    }
    print_message("aoi checks: %ld\n", checks);
    assert_true(checks > 100000);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),      cmocka_unit_test(test_authoritative_speed),
        cmocka_unit_test(test_input_validation), cmocka_unit_test(test_aoi_brute_force),
        cmocka_unit_test(test_aoi_budget),       cmocka_unit_test(test_handoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
