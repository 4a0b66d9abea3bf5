/* test_bots.c - the load generator: its latency histogram (percentiles
 * land in the right bucket, buckets tile the value range), its token
 * minter (tokens verify with the server's own verifier, gw_auth_verify),
 * and an end-to-end W1 run of 50 bots against a real `tessera serve`
 * started with the same --jwt-secret, checked through the JSON report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bots.h"
#include "bots_int.h"
#include "core_rng.h"
#include "core_time.h"
#include "gw_auth.h"
#include "tclient.h"

#define SECRET "bots-test-secret-0123456789abcdef"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every value falls in a bucket whose bounds hold it, and a bucket is at
 * most 1/512 of its lower bound wide above 1 ms (1 us below). */
static void test_hist_buckets_tile_the_range(void **state)
{
    (void)state;
    core_rng r;
    core_rng_seed(&r, 7);
    for (int i = 0; i < 200000; i++) {
        uint64_t v = i < 5000 ? (uint64_t)i : ((uint64_t)core_rng_u32(&r) << (i % 6));
        size_t k = bots_hist_index(v);
        assert_true(k < BOTS_HIST_N);
        uint64_t lo = bots_hist_bucket_lo(k), hi = bots_hist_bucket_hi(k);
        assert_true(lo <= v && v <= hi);
        if (v < BOTS_HIST_SUB)
            assert_int_equal(lo, hi);
        else
            assert_true((hi - lo + 1) * 512 <= lo);
        if (k + 1 < BOTS_HIST_N)
            assert_int_equal(bots_hist_bucket_lo(k + 1), hi + 1);
    }
}

/* A percentile is the top of the bucket holding the exact percentile
 * (exact for values below 1024 us), never past the exact max. */
static void test_hist_percentiles_exact_within_bucket(void **state)
{
    (void)state;
    enum { N = 50001 };
    uint64_t *v = malloc(N * sizeof *v);
    bots_hist *h = malloc(sizeof *h);
    assert_non_null(v);
    assert_non_null(h);
    bots_hist_init(h);
    core_rng r;
    core_rng_seed(&r, 42);
    for (int i = 0; i < N; i++) {
        /* log-uniform-ish latencies from 1 us to ~4 s */
        v[i] = (uint64_t)1 << core_rng_below(&r, 22);
        v[i] += core_rng_below(&r, (uint32_t)v[i]);
        bots_hist_add(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    static const double ps[] = {1, 10, 50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        size_t rank = (size_t)((ps[i] / 100.0) * N + 0.999999);
        uint64_t exact = v[(rank ? rank : 1) - 1];
        uint64_t got = bots_hist_percentile(h, ps[i]);
        size_t k = bots_hist_index(exact);
        assert_true(got >= bots_hist_bucket_lo(k));
        assert_true(got <= bots_hist_bucket_hi(k));
    }
    assert_int_equal(bots_hist_percentile(h, 100), v[N - 1]);
    assert_int_equal(h->min_us, v[0]);

    /* Small values are exact, and merging is adding. */
    bots_hist *a = malloc(sizeof *a);
    assert_non_null(a);
    bots_hist_init(a);
    for (uint64_t x = 1; x <= 100; x++)
        bots_hist_add(a, x);
    assert_int_equal(bots_hist_percentile(a, 50), 50);
    assert_int_equal(bots_hist_percentile(a, 99), 99);
    bots_hist_merge(a, h);
    assert_int_equal(a->n, N + 100);
    assert_int_equal(a->min_us, 1);
    free(a);
    free(h);
    free(v);
}

static void test_token_verifies_with_server_verifier(void **state)
{
    (void)state;
    gw_auth *good, *other;
    assert_int_equal(gw_auth_create(&good, SECRET, strlen(SECRET), 3600), 0);
    assert_int_equal(gw_auth_create(&other, "another-secret-0123456789abcdef", 31, 3600), 0);
    for (uint32_t i = 0; i < 50; i++) {
        char tok[BOTS_TOKEN_MAX], name[32];
        snprintf(name, sizeof name, "bot-%u", i);
        int n = bots_token_mint(tok, sizeof tok, SECRET, strlen(SECRET), 1000000u + i, name,
                                core_wall_s(), 3600);
        assert_true(n > 0);
        gw_claims c;
        const char *why = NULL;
        int rc = gw_auth_verify(good, tok, (size_t)n, &c, &why);
        if (rc != GW_AUTH_OK)
            fail_msg("token refused: %s (%s)", why ? why : "?", tok);
        assert_int_equal(c.account_id, 1000000u + i);
        assert_string_equal(c.username, name);
        assert_true(c.exp > core_wall_s() + 3000);
        assert_int_equal(gw_auth_verify(other, tok, (size_t)n, &c, &why), GW_AUTH_E_INVALID);
    }
    /* An expired token is refused as expired. */
    char tok[BOTS_TOKEN_MAX];
    int n = bots_token_mint(tok, sizeof tok, SECRET, strlen(SECRET), 7, "old-bot",
                            core_wall_s() - 7200, 3600);
    gw_claims c;
    assert_int_equal(gw_auth_verify(good, tok, (size_t)n, &c, NULL), GW_AUTH_E_EXPIRED);
    /* Names the server would refuse are refused here. */
    assert_int_equal(bots_token_mint(tok, sizeof tok, SECRET, strlen(SECRET), 1, "a b", 0, 60), -1);
    gw_auth_destroy(good);
    gw_auth_destroy(other);
}

static double jnum(json_t *root, const char *obj, const char *key)
{
    json_t *o = obj ? json_object_get(root, obj) : root;
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("JSON has no number %s.%s", obj ? obj : "", key);
    return json_number_value(v);
}

static ts_server g_srv;
static bool g_server_bad;

static void test_w1_end_to_end(void **state)
{
    (void)state;
    const char *args[] = {"--jwt-secret", SECRET,      "--npcs", "0",
                          "--map-file=",  "--shards",  "1",      "--world-w",
                          "256",          "--world-h", "256",    NULL};
    assert_int_equal(ts_server_start(&g_srv, args), 0);
    char target[32], pid[16], json_path[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", g_srv.port);
    snprintf(pid, sizeof pid, "%d", (int)g_srv.pid);
    snprintf(json_path, sizeof json_path, "/tmp/tessera-bots-test-%d.json", (int)getpid());
    char *argv[] = {"--workload", "w1",       "--clients",    "50",         "--ramp",
                    "1",          "--settle", "0.5",          "--duration", "5",
                    "--target",   target,     "--jwt-secret", SECRET,       "--server-pid",
                    pid,          "--json",   json_path,      "--quiet",    NULL};
    uint64_t t0 = core_now_ms();
    assert_int_equal(bots_main((int)(sizeof argv / sizeof argv[0]) - 1, argv), 0);
    assert_true(core_now_ms() - t0 < 15000); /* the run ends by itself */

    json_error_t jerr;
    json_t *root = json_load_file(json_path, 0, &jerr);
    if (!root)
        fail_msg("cannot read %s: %s", json_path, jerr.text);
    assert_int_equal((int)jnum(root, NULL, "connected"), 50);
    assert_int_equal((int)jnum(root, NULL, "in_world_at_end"), 50);
    assert_true(jnum(root, "updates_per_client_s", "min") >= 18.0);
    assert_true(jnum(root, "ack_latency_ms", "p99") < 200.0);
    assert_true(jnum(root, "ack_latency_ms", "samples") > 50 * 5 * 15);
    assert_true(jnum(root, NULL, "entity_updates_per_s") > 0);
    assert_int_equal((int)jnum(root, "errors", "total"), 0);
    assert_true(jnum(root, "server", "cpu_pct") >= 0);
    assert_true(json_is_true(json_object_get(root, "sustained")));
    json_decref(root);
    unlink(json_path);
    g_server_bad = ts_server_stop_checked(&g_srv) != 0;
}

static void test_refuses_non_loopback_target(void **state)
{
    (void)state;
    char *argv[] = {"--target", "192.0.2.1:8080", "--jwt-secret", SECRET, NULL};
    assert_int_equal(bots_main(4, argv), 2);
    char *argv6[] = {"--target", "[2001:db8::1]:8080", NULL};
    assert_int_equal(bots_main(2, argv6), 2);
}

int main(void)
{
    ts_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets_tile_the_range),
        cmocka_unit_test(test_hist_percentiles_exact_within_bucket),
        cmocka_unit_test(test_token_verifies_with_server_verifier),
        cmocka_unit_test(test_refuses_non_loopback_target),
        cmocka_unit_test(test_w1_end_to_end),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed += g_server_bad;
    ts_finish(failed);
    return failed;
}
