/* test_spatial.c - the grid against a brute-force scan under random
 * inserts, moves, removes and renumberings; the cell map's strips and
 * clamping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core_rng.h"
#include "spatial.h"

#define N 3000

typedef struct visit {
    uint8_t *seen;
    int count;
} visit;

static void on_item(void *ctx, uint32_t item)
{
    visit *v = ctx;
    v->seen[item]++;
    v->count++;
}

static void test_grid_vs_brute_force(void **state)
{
    (void)state;
    float W = 1000, H = 700;
    spatial_grid *g = spatial_grid_create(W, H, 50, 16); /* grows past 16 */
    static float x[N], y[N];
    static uint8_t in[N];
    core_rng rng;
    core_rng_seed(&rng, 11);
    for (int step = 0; step < 20000; step++) {
        if (step % 2500 == 2499) { /* renumber: shuffle, drop some items */
            static uint32_t order[N], perm[N];
            static float nx[N], ny[N];
            static uint8_t nin[N];
            for (uint32_t k = 0; k < N; k++)
                perm[k] = k;
            for (uint32_t k = N - 1; k > 0; k--) {
                uint32_t j = core_rng_below(&rng, k + 1), t = perm[k];
                perm[k] = perm[j];
                perm[j] = t;
            }
            uint32_t n = 0;
            for (uint32_t k = 0; k < N; k++) {
                uint32_t o = perm[k];
                if (core_rng_below(&rng, 10) == 0)
                    continue; /* dropped, in the grid or not */
                order[n++] = o;
            }
            spatial_grid_renumber(g, order, n);
            memset(nin, 0, sizeof nin);
            for (uint32_t k = 0; k < n; k++) {
                nx[k] = x[order[k]];
                ny[k] = y[order[k]];
                nin[k] = in[order[k]];
            }
            memcpy(x, nx, sizeof x);
            memcpy(y, ny, sizeof y);
            memcpy(in, nin, sizeof in);
        }
        uint32_t i = core_rng_below(&rng, N);
        int op = (int)core_rng_below(&rng, 10);
        if (op < 6) {
            x[i] = core_rng_unit(&rng) * (W + 40) - 20; /* sometimes outside: clamped */
            y[i] = core_rng_unit(&rng) * (H + 40) - 20;
            if (in[i])
                spatial_grid_move(g, i, x[i], y[i]);
            else
                spatial_grid_insert(g, i, x[i], y[i]);
            in[i] = 1;
        } else if (op < 7) {
            spatial_grid_remove(g, i);
            in[i] = 0;
        } else {
            float qx = core_rng_unit(&rng) * W, qy = core_rng_unit(&rng) * H;
            float r = 10 + core_rng_unit(&rng) * 120;
            static uint8_t seen[N];
            memset(seen, 0, sizeof seen);
            visit v = {seen, 0};
            spatial_grid_query(g, qx, qy, r, on_item, &v);
            uint32_t buf[N];
            size_t n = spatial_grid_collect(g, qx, qy, r, buf, N);
            assert_int_equal((int)n, v.count);
            for (uint32_t k = 0; k < N; k++) {
                assert_true(seen[k] <= 1); /* never twice */
                if (!in[k]) {
                    assert_int_equal(seen[k], 0);
                    continue;
                }
                /* everything within the square (after clamping) is found */
                float cx = x[k] < 0 ? 0 : x[k] > W ? W : x[k];
                float cy = y[k] < 0 ? 0 : y[k] > H ? H : y[k];
                if (cx >= qx - r && cx <= qx + r && cy >= qy - r && cy <= qy + r)
                    assert_int_equal(seen[k], 1);
            }
        }
    }
    /* collect reports the true count even when the buffer is small */
    uint32_t small[2];
    size_t total = spatial_grid_collect(g, W / 2, H / 2, 2000, small, 2);
    size_t live = 0;
    for (int k = 0; k < N; k++)
        live += in[k];
    assert_int_equal(total, live);
    spatial_grid_destroy(g);
}

static void test_cellmap(void **state)
{
    (void)state;
    spatial_cellmap m;
    assert_int_equal(spatial_cellmap_init(&m, 2048, 1000, 256, 3), 0);
    assert_int_equal(m.cells_x, 8);
    assert_int_equal(m.cells_y, 4);
    /* contiguous strips, every shard owns something, owners ascend in x */
    int prev = 0, owned[3] = {0};
    for (int cx = 0; cx < 8; cx++) {
        int o = m.owner[cx];
        assert_true(o >= prev);
        prev = o;
        for (int cy = 0; cy < 4; cy++) {
            assert_int_equal(m.owner[cy * 8 + cx], o);
            owned[o]++;
        }
    }
    assert_true(owned[0] && owned[1] && owned[2]);
    assert_int_equal(spatial_cellmap_cell(&m, -5, -5), 0);
    assert_int_equal(spatial_cellmap_cell(&m, 1e9f, 1e9f), 31);
    assert_int_equal(spatial_cellmap_owner(&m, 2047, 999), 2);
    spatial_cellmap_free(&m);
    assert_int_equal(spatial_cellmap_init(&m, 100, 100, 0, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_vs_brute_force),
        cmocka_unit_test(test_cellmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
