/* test_world.c - the world as real clients meet it, through `tessera
 * serve` and WebSockets: authoritative speed; area of interest checked
 * against a brute-force distance check over the server's own positions
 * (each client's self position in its STATE is exactly the server's);
 * players walking across the shard border are handed off with no input
 * lost or applied twice and stay visible to watchers on both sides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_rng.h"
#include "tclient.h"

#define N_CLIENTS 16
#define MAX_TICKS 400

static ts_server srv;

/* One client's record of what it saw at each tick. */
typedef struct tick_rec {
    uint32_t tick;
    int32_t x_q, y_q; /* its own position */
    uint32_t n_seen;
    uint32_t seen[N_CLIENTS * 2]; /* player entity ids in its view */
    uint8_t shard;
} tick_rec;

typedef struct client {
    ts_ws ws;
    ts_game g;
    uint32_t seq;
    float dx, dy;
    tick_rec *hist; /* MAX_TICKS */
    uint32_t n_hist;
    uint32_t self_missing; /* STATEs in which the client's own entity was absent */
    uint32_t shard_changes;
} client;

static double metric(const char *name)
{
    ts_http_resp r = {0};
    double total = 0;
    if (ts_http_request(srv.port, "GET", "/metrics", NULL, NULL, &r) != 200) {
        ts_http_resp_free(&r);
        return -1;
    }
    size_t nl = strlen(name);
    for (char *line = r.body; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next = 0;
        if (strncmp(line, name, nl) == 0 && (line[nl] == ' ' || line[nl] == '{')) {
            char *sp = strrchr(line, ' ');
            if (sp)
                total += strtod(sp + 1, NULL);
        }
        line = next ? next + 1 : NULL;
    }
    ts_http_resp_free(&r);
    return total;
}

static bool state_advanced(const ts_game *g, void *ctx)
{
    return g->n_states > *(uint32_t *)ctx;
}

/* Pumps one client until one more STATE arrived (or timeout) and records
 * what it saw. */
static int pump_one(client *c, int timeout_ms)
{
    uint32_t before = c->g.n_states;
    int rc = ts_game_pump(&c->ws, &c->g, timeout_ms, state_advanced, &before);
    if (rc != 0 || c->g.n_states == before)
        return rc;
    int self = proto_view_find(&c->g.view, c->g.entity_id);
    if (self < 0) {
        c->self_missing++;
        return 0;
    }
    if (c->n_hist == MAX_TICKS)
        return 0;
    tick_rec *t = &c->hist[c->n_hist++];
    t->tick = c->g.view.tick;
    t->x_q = c->g.view.slots[self].x_q;
    t->y_q = c->g.view.slots[self].y_q;
    t->shard = c->g.view.shard;
    if (c->n_hist > 1 && c->hist[c->n_hist - 2].shard != t->shard)
        c->shard_changes++;
    t->n_seen = 0;
    for (uint32_t k = 0; k < c->g.view.n_slots; k++) {
        const proto_view_entity *e = &c->g.view.slots[k];
        if (e->entity_id && e->kind == PROTO_KIND_PLAYER && t->n_seen < N_CLIENTS * 2)
            t->seen[t->n_seen++] = e->entity_id;
    }
    return 0;
}

static const tick_rec *at_tick(const client *c, uint32_t tick)
{
    for (uint32_t i = 0; i < c->n_hist; i++)
        if (c->hist[i].tick == tick)
            return &c->hist[i];
    return NULL;
}

static bool saw(const tick_rec *t, uint32_t id)
{
    for (uint32_t i = 0; i < t->n_seen; i++)
        if (t->seen[i] == id)
            return true;
    return false;
}

static int setup(void **state)
{
    (void)state;
    /* two shards split at x = 256; small enough that everyone meets */
    static const char *const args[] = {
        "--world-w",       "512", "--world-h",  "256", "--shards", "2", "--npcs", "0",
        "--entity-radius", "0.5", "--map-file", "",    NULL};
    if (ts_server_start(&srv, args) != 0)
        return -1;
    return ts_server_wait_ready(&srv, 5000);
}

static int teardown(void **state)
{
    (void)state;
    return ts_server_stop_checked(&srv);
}

static void test_authoritative_speed(void **state)
{
    (void)state;
    client c = {0};
    char name[32];
    ts_unique_name("speed", name, sizeof name);
    ts_game_init(&c.g);
    assert_int_equal(ts_game_join(srv.port, name, &c.ws, &c.g, 5000), 0);
    int self = proto_view_find(&c.g.view, c.g.entity_id);
    assert_true(self >= 0);
    /* walk away from the nearer x edge */
    float x = (float)c.g.view.slots[self].x_q / 16.0f;
    float dir = x < 256.0f ? 1.0f : -1.0f;
    assert_int_equal(ts_send_input(&c.ws, 1, dir, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&c.ws, &c.g, 1, 2000), 0);
    ts_game_wait_states(&c.ws, &c.g, c.g.n_states + 1, 1000);
    self = proto_view_find(&c.g.view, c.g.entity_id);
    int32_t x0 = c.g.view.slots[self].x_q, y0 = c.g.view.slots[self].y_q;
    uint32_t t0 = c.g.view.tick;
    assert_int_equal(ts_game_wait_states(&c.ws, &c.g, c.g.n_states + 40, 5000), 0);
    self = proto_view_find(&c.g.view, c.g.entity_id);
    int32_t x1 = c.g.view.slots[self].x_q, y1 = c.g.view.slots[self].y_q;
    uint32_t ticks = c.g.view.tick - t0;
    /* 50 units/s at 20 Hz: 2.5 units (40/16) per tick, whatever the client
     * would like; y does not change */
    double per_tick = fabs((double)(x1 - x0)) / 16.0 / ticks;
    print_message("moved %.3f units per tick over %u ticks\n", per_tick, ticks);
    assert_true(fabs(per_tick - 2.5) < 0.01);
    assert_int_equal(y1, y0);
    ts_ws_close(&c.ws);
    ts_game_free(&c.g);
}

static void test_aoi_and_handoff(void **state)
{
    (void)state;
    static client cs[N_CLIENTS];
    double applied0 = metric("tessera_inputs_applied_total");
    double handoffs0 = metric("tessera_handoffs_out_total");
    assert_true(applied0 >= 0);
    for (int i = 0; i < N_CLIENTS; i++) {
        char name[32];
        ts_unique_name("w", name, sizeof name);
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].hist = calloc(MAX_TICKS, sizeof *cs[i].hist);
        ts_game_init(&cs[i].g);
        assert_int_equal(ts_game_join(srv.port, name, &cs[i].ws, &cs[i].g, 5000), 0);
    }
    /* the first four are walkers that cross the border at x = 256; the
     * rest wander */
    core_rng rng;
    core_rng_seed(&rng, 77);
    uint64_t start = ts_now_ms(), last_input = 0;
    uint32_t sent = 0;
    while (ts_now_ms() - start < 9000) {
        uint64_t now = ts_now_ms();
        if (now - last_input >= 50) {
            last_input = now;
            for (int i = 0; i < N_CLIENTS; i++) {
                client *c = &cs[i];
                int self = proto_view_find(&c->g.view, c->g.entity_id);
                if (self < 0)
                    continue;
                float x = (float)c->g.view.slots[self].x_q / 16.0f;
                if (i < 4) {
                    /* patrol: head for the far side of the border */
                    if (c->dx == 0.0f)
                        c->dx = x < 256.0f ? 1.0f : -1.0f;
                    if ((c->dx > 0 && x > 330.0f) || (c->dx < 0 && x < 180.0f))
                        c->dx = -c->dx;
                    c->dy = 0.0f;
                } else if (core_rng_below(&rng, 20) == 0) {
                    float a = core_rng_unit(&rng) * 6.2831853f;
                    c->dx = cosf(a);
                    c->dy = sinf(a);
                }
                assert_int_equal(ts_send_input(&c->ws, ++c->seq, c->dx, c->dy), 0);
                sent++;
            }
        }
        for (int i = 0; i < N_CLIENTS; i++)
            assert_true(pump_one(&cs[i], 2) >= 0);
    }
    /* let the last inputs be acknowledged */
    for (int i = 0; i < N_CLIENTS; i++)
        assert_int_equal(ts_game_wait_ack(&cs[i].ws, &cs[i].g, cs[i].seq, 3000), 0);

    /* brute force over the server's positions, tick by tick */
    const double r = 100.0, tol = 2.5 + 0.5; /* one tick of motion, plus slack */
    long checks = 0, misses = 0, extras = 0;
    for (uint32_t h = 0; h < cs[0].n_hist; h++) {
        uint32_t tick = cs[0].hist[h].tick;
        const tick_rec *rec[N_CLIENTS];
        int ok = 1;
        for (int i = 0; i < N_CLIENTS && ok; i++)
            ok = (rec[i] = at_tick(&cs[i], tick)) != NULL;
        if (!ok)
            continue;
        for (int i = 0; i < N_CLIENTS; i++)
            for (int j = 0; j < N_CLIENTS; j++) {
                if (i == j)
                    continue;
                double dx = (rec[i]->x_q - rec[j]->x_q) / 16.0;
                double dy = (rec[i]->y_q - rec[j]->y_q) / 16.0;
                double d = sqrt(dx * dx + dy * dy);
                bool seen = saw(rec[i], cs[j].g.entity_id);
                if (d <= r - tol) {
                    checks++;
                    if (!seen) {
                        misses++;
                        print_message("tick %u: %d does not see %d at %.2f\n", tick, i, j, d);
                    }
                } else if (d > r + tol) {
                    checks++;
                    if (seen) {
                        extras++;
                        print_message("tick %u: %d sees %d at %.2f\n", tick, i, j, d);
                    }
                }
            }
    }
    print_message("aoi pair checks: %ld, sent %u inputs\n", checks, sent);
    assert_true(checks > 5000);
    assert_int_equal(misses, 0);
    assert_int_equal(extras, 0);

    int crossings = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        assert_int_equal(cs[i].self_missing, 0); /* nobody ever saw itself vanish */
        assert_int_equal(cs[i].g.n_bad, 0);
        assert_int_equal(cs[i].g.n_errors, 0);
        crossings += (int)cs[i].shard_changes;
    }
    print_message("border crossings seen by clients: %d, handoffs %.0f, applied %.0f\n", crossings,
                  metric("tessera_handoffs_out_total") - handoffs0,
                  metric("tessera_inputs_applied_total") - applied0);
    assert_true(crossings >= 4);
    /* every input applied exactly once: none lost, none doubled */
    assert_true(metric("tessera_handoffs_out_total") - handoffs0 >= crossings);
    assert_true(metric("tessera_inputs_applied_total") - applied0 == (double)sent);
    assert_true(metric("tessera_inputs_duplicate_total") == 0);
    assert_true(metric("tessera_inputs_skipped_total") == 0);
    for (int i = 0; i < N_CLIENTS; i++) {
        ts_ws_close(&cs[i].ws);
        ts_game_free(&cs[i].g);
        free(cs[i].hist);
    }
}

int main(void)
{
    ts_watchdog(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authoritative_speed),
        cmocka_unit_test(test_aoi_and_handoff),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ts_finish(failed);
    return failed;
}
