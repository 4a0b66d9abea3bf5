/* test_index.c - a shard's spatial index (sim_index_collect: the collision
 * step's bodies plus aoi_grid) against a brute-force search of every slot,
 * right after a tick and after the changes that reach a shard between two
 * movement steps: entities placed, removed, moved outside the step, items,
 * an item that becomes a body. Two shards (ghosts), players and NPCs, and
 * renumberings every 7 ticks (the harness's default). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core_rng.h"
#include "sim_harness.h"
#include "sim_int.h"

typedef struct index_check {
    uint32_t *got;
    uint8_t *seen;
    size_t cap;
    long queries, found, exact_queries;
} index_check;

/* Every alive slot within r of (x, y), as the index gives it and as a
 * search of every slot finds it: the same set, each once. */
static void check_query(sim_shard *s, index_check *ic, float x, float y, float r)
{
    size_t need = (size_t)s->n_used + 64;
    if (need > ic->cap) {
        ic->cap = need * 2;
        ic->got = realloc(ic->got, ic->cap * sizeof *ic->got);
        ic->seen = realloc(ic->seen, ic->cap);
        assert_non_null(ic->got);
        assert_non_null(ic->seen);
    }
    memset(ic->seen, 0, ic->cap);
    ic->exact_queries += s->is_index_exact;
    size_t n = sim_index_collect(s, x, y, r, ic->got, ic->cap);
    assert_true(n <= ic->cap);
    const float r2 = r * r;
    long in = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t e = ic->got[k];
        assert_true(e < s->n_used);
        assert_int_equal(ic->seen[e], 0); /* no entity twice */
        ic->seen[e] = 1;
    }
    for (uint32_t e = 0; e < s->n_used; e++) {
        if (!(s->flags[e] & SIM_F_ALIVE))
            continue;
        float dx = s->x[e] - x, dy = s->y[e] - y;
        if (dx * dx + dy * dy > r2)
            continue;
        if (!ic->seen[e])
            fail_msg("entity %u (slot %u) at (%.3f, %.3f) is within %.1f of (%.3f, %.3f) but "
                     "not in the index",
                     s->id[e], e, (double)s->x[e], (double)s->y[e], (double)r, (double)x,
                     (double)y);
        in++;
    }
    ic->queries++;
    ic->found += in;
}

/* The crowd placed at the start: where collision pushes hardest. */
#define CROWD_X 300.0f
#define CROWD_Y 300.0f

static void check_queries(harness *h, index_check *ic, core_rng *rng, int n)
{
    for (int sh = 0; sh < h->n_shards; sh++)
        for (int q = 0; q < n; q++) {
            if (q % 2) /* anywhere */
                check_query(h->shards[sh], ic, core_rng_unit(rng) * 1024.0f,
                            core_rng_unit(rng) * 1024.0f, 5.0f + core_rng_unit(rng) * 145.0f);
            else /* the bounds cutting through the crowd */
                check_query(h->shards[sh], ic, CROWD_X - 60.0f + core_rng_unit(rng) * 120.0f,
                            CROWD_Y - 60.0f + core_rng_unit(rng) * 120.0f,
                            2.0f + core_rng_unit(rng) * 60.0f);
        }
}

/* A random point of the world that shard s owns. */
static void owned_point(sim_shard *s, core_rng *rng, float *x, float *y)
{
    do {
        *x = 8.0f + core_rng_unit(rng) * 1008.0f;
        *y = 8.0f + core_rng_unit(rng) * 1008.0f;
    } while (spatial_cellmap_owner(s->cells, *x, *y) != s->index);
}

/* A random owned NPC's slot, or SIM_NONE. */
static uint32_t some_npc(sim_shard *s, core_rng *rng)
{
    for (int tries = 0; tries < 100; tries++) {
        uint32_t e = (uint32_t)(core_rng_unit(rng) * (float)s->n_used);
        if (e < s->n_used && (s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE &&
            s->kind[e] == PROTO_KIND_NPC)
            return e;
    }
    return SIM_NONE;
}

static uint32_t place_new(sim_shard *s, float x, float y, uint8_t kind)
{
    uint32_t slot = sim_slot_alloc(s);
    s->id[slot] = sim_entity_new_id(s);
    core_idmap_put(&s->ids, s->id[slot], slot);
    s->x[slot] = x;
    s->y[slot] = y;
    s->kind[slot] = kind;
    if (kind == PROTO_KIND_ITEM)
        sim_label_item(s, slot, (sim_item){.qty = 1, .kind = 1});
    else
        s->speed[slot] = (float)s->cfg->npc_speed;
    sim_entity_place(s, slot);
    s->n_owned++;
    return slot;
}

static void release(sim_shard *s, uint32_t slot)
{
    sim_slot_release(s, slot);
    s->n_owned--;
}

static void test_index_matches_brute_force(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 2, 1500, 11);
    h_start(&h);
    core_rng rng;
    core_rng_seed(&rng, 17);
    h_sess *p[30];
    for (int i = 0; i < 30; i++)
        p[i] = h_join(&h, "p", 20.0f + core_rng_unit(&rng) * 984.0f,
                      20.0f + core_rng_unit(&rng) * 984.0f);
    /* 300 NPCs in a 30 x 30 square: collision pushes them apart by
     * several units a tick for a while (the index must look that far
     * beyond the bodies' buckets) */
    sim_shard *cs = h.shards[spatial_cellmap_owner(&h.cells, CROWD_X, CROWD_Y)];
    for (int k = 0; k < 300; k++)
        place_new(cs, CROWD_X - 15.0f + core_rng_unit(&rng) * 30.0f,
                  CROWD_Y - 15.0f + core_rng_unit(&rng) * 30.0f, PROTO_KIND_NPC);
    index_check ic = {0};
    /* before any movement step: everything is in aoi_grid */
    check_queries(&h, &ic, &rng, 20);
    for (int t = 0; t < 60; t++) {
        if (t % 10 == 0)
            for (int i = 0; i < 30; i++) {
                float a = core_rng_unit(&rng) * 6.283f;
                h_input(&h, p[i], cosf(a), sinf(a));
            }
        assert_int_equal(h_step(&h), 0);
        /* as the area-of-interest passes see it (and after the renumbering
         * that ends every seventh tick) */
        check_queries(&h, &ic, &rng, 20);
        for (int sh = 0; sh < h.n_shards; sh++) {
            sim_shard *s = h.shards[sh];
            float x, y;
            /* what reaches a shard before its next movement step */
            for (int k = 0; k < 5; k++) {
                owned_point(s, &rng, &x, &y);
                place_new(s, x, y, PROTO_KIND_NPC);
                uint32_t e = some_npc(s, &rng);
                if (e != SIM_NONE)
                    release(s, e);
                e = some_npc(s, &rng);
                if (e != SIM_NONE) { /* moved outside the step, as a ghost update moves */
                    owned_point(s, &rng, &s->x[e], &s->y[e]);
                    sim_entity_moved(s, e);
                }
            }
            /* items are never bodies; one that becomes a body leaves aoi_grid
             * with the next step */
            owned_point(s, &rng, &x, &y);
            uint32_t item = place_new(s, x, y, PROTO_KIND_ITEM);
            owned_point(s, &rng, &x, &y);
            uint32_t becomes = place_new(s, x, y, PROTO_KIND_ITEM);
            check_queries(&h, &ic, &rng, 10);
            release(s, item);
            s->kind[becomes] = PROTO_KIND_NPC;
            s->speed[becomes] = (float)s->cfg->npc_speed;
            sim_entity_moved(s, becomes);
        }
        check_queries(&h, &ic, &rng, 10);
    }
    print_message("index queries: %ld (%ld right after a step), entities found: %ld\n", ic.queries,
                  ic.exact_queries, ic.found);
    assert_true(ic.exact_queries > 1000); /* the path without the checks ran */
    assert_true(ic.queries - ic.exact_queries > 1000);
    assert_true(ic.found > 100000);
    free(ic.got);
    free(ic.seen);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_matches_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
