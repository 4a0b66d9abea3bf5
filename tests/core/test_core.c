/* test_core.c - buffers and varints, the id map, config precedence and
 * validation, metrics rendering, the deterministic RNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "core_buf.h"
#include "core_config.h"
#include "core_idmap.h"
#include "core_metrics.h"
#include "core_rng.h"
#include "core_secret.h"
#include <sys/stat.h>

static void test_varint_round_trip(void **state)
{
    (void)state;
    static const uint64_t vals[] = {0, 1, 127, 128, 255, 16383, 16384, 1u << 31, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        core_buf b;
        core_buf_init(&b);
        core_buf_varint(&b, vals[i]);
        assert_int_equal(b.len, core_varint_len(vals[i]));
        core_rd r = core_rd_init(b.data, b.len);
        assert_true(core_rd_varint(&r) == vals[i]);
        assert_true(core_rd_ok(&r));
        assert_int_equal(core_rd_left(&r), 0);
        core_buf_free(&b);
    }
}

static void test_reader_never_overreads(void **state)
{
    (void)state;
    uint8_t three[3] = {1, 2, 3};
    core_rd r = core_rd_init(three, 3);
    assert_int_equal(core_rd_u32(&r), 0);
    assert_false(core_rd_ok(&r));
    /* sticky: later reads fail too */
    core_rd r2 = core_rd_init(three, 3);
    core_rd_u16(&r2);
    core_rd_u16(&r2);
    assert_false(core_rd_ok(&r2));
    assert_int_equal(core_rd_u8(&r2), 0);
    /* an unterminated or overlong varint is an error */
    uint8_t bad[11];
    memset(bad, 0xff, sizeof bad);
    core_rd r3 = core_rd_init(bad, sizeof bad);
    core_rd_varint(&r3);
    assert_false(core_rd_ok(&r3));
    uint8_t over[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    core_rd r4 = core_rd_init(over, sizeof over);
    core_rd_varint(&r4);
    assert_false(core_rd_ok(&r4));
}

static void test_buf_le_and_consume(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    core_buf_u16(&b, 0x1234);
    core_buf_u32(&b, 0xdeadbeef);
    core_buf_f32(&b, 1.5f);
    assert_int_equal(b.data[0], 0x34);
    assert_int_equal(b.data[2], 0xef);
    core_buf_consume(&b, 2);
    core_rd r = core_rd_init(b.data, b.len);
    assert_true(core_rd_u32(&r) == 0xdeadbeef);
    assert_true(core_rd_f32(&r) == 1.5f);
    core_buf_free(&b);
}

static void test_idmap_against_reference(void **state)
{
    (void)state;
    core_idmap m;
    core_idmap_init(&m);
    enum { N = 20000 };
    uint32_t *ref = calloc(N + 1, sizeof *ref);
    core_rng rng;
    core_rng_seed(&rng, 42);
    for (int step = 0; step < 200000; step++) {
        uint32_t k = 1 + core_rng_below(&rng, N);
        switch (core_rng_below(&rng, 3)) {
        case 0:
            core_idmap_put(&m, k, step);
            ref[k] = (uint32_t)step + 1;
            break;
        case 1:
            assert_int_equal(core_idmap_del(&m, k), ref[k] != 0);
            ref[k] = 0;
            break;
        default:
            assert_int_equal(core_idmap_get(&m, k), ref[k] ? ref[k] - 1 : CORE_IDMAP_NONE);
        }
    }
    size_t live = 0;
    for (uint32_t k = 1; k <= N; k++) {
        live += ref[k] != 0;
        assert_int_equal(core_idmap_get(&m, k), ref[k] ? ref[k] - 1 : CORE_IDMAP_NONE);
    }
    assert_int_equal(m.n, live);
    /* remap: values below 200000 shift by one, odd ones are left alone
     * (NONE), values at or above the bound are out of the table's reach */
    uint32_t *to = malloc(200000 * sizeof *to);
    for (uint32_t v = 0; v < 200000; v++)
        to[v] = (v & 1) ? CORE_IDMAP_NONE : v + 7;
    core_idmap_remap(&m, to, 150000);
    for (uint32_t k = 1; k <= N; k++) {
        if (!ref[k]) {
            assert_int_equal(core_idmap_get(&m, k), CORE_IDMAP_NONE);
            continue;
        }
        uint32_t v = ref[k] - 1;
        uint32_t want = (v < 150000 && !(v & 1)) ? v + 7 : v;
        assert_int_equal(core_idmap_get(&m, k), want);
    }
    free(to);
    free(ref);
    core_idmap_free(&m);
}

static void test_config_precedence(void **state)
{
    (void)state;
    char path[] = "/tmp/tessera-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# a comment\nport = 9000\nnpcs = 5\naoi_radius = 80\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("TESSERA_NPCS", "7", 1);
    core_config c;
    core_config_defaults(&c);
    char err[256];
    char *argv[] = {"--config", path, "--aoi-radius=90", "--print-config"};
    static const char *const pass[] = {"print-config", NULL};
    unsigned seen = 0;
    assert_int_equal(core_config_load(&c, 4, argv, pass, &seen, err, sizeof err), 0);
    assert_int_equal(c.port, 9000);    /* file */
    assert_int_equal(c.npcs, 7);       /* environment beats file */
    assert_true(c.aoi_radius == 90.0); /* flag beats file */
    assert_int_equal(seen, 1);
    unsetenv("TESSERA_NPCS");
    unlink(path);
}

static void test_config_errors(void **state)
{
    (void)state;
    core_config c;
    char err[256];
    core_config_defaults(&c);
    char *a1[] = {"--no-such-key=1"};
    assert_int_equal(core_config_load(&c, 1, a1, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown"));
    core_config_defaults(&c);
    char *a2[] = {"--port", "abc"};
    assert_int_equal(core_config_load(&c, 2, a2, NULL, NULL, err, sizeof err), -1);
    core_config_defaults(&c);
    char *a3[] = {"--port", "70000"};
    assert_int_equal(core_config_load(&c, 2, a3, NULL, NULL, err, sizeof err), -1);
    core_config_defaults(&c);
    char *a4[] = {"--aoi-radius", "nan"};
    assert_int_equal(core_config_load(&c, 2, a4, NULL, NULL, err, sizeof err), -1);
    core_config_defaults(&c);
    char *a5[] = {"--tick-hz"};
    assert_int_equal(core_config_load(&c, 1, a5, NULL, NULL, err, sizeof err), -1);
}

static void test_metrics_render(void **state)
{
    (void)state;
    core_metrics *m = core_metrics_create();
    core_counter *c = core_metrics_counter(m, "t_total", "help text", "reason=\"a\"");
    core_counter_add(c, 3);
    assert_ptr_equal(c, core_metrics_counter(m, "t_total", "help text", "reason=\"a\""));
    core_gauge_set(core_metrics_gauge(m, "t_gauge", "g", NULL), 2.5);
    double bounds[] = {0.1, 1.0};
    core_histogram *h = core_metrics_histogram(m, "t_hist", "h", "shard=\"0\"", bounds, 2);
    core_histogram_observe(h, 0.05);
    core_histogram_observe(h, 0.5);
    core_histogram_observe(h, 5.0);
    core_buf out;
    core_buf_init(&out);
    core_metrics_render(m, &out);
    core_buf_u8(&out, 0);
    const char *t = (const char *)out.data;
    assert_non_null(strstr(t, "# TYPE t_total counter\nt_total{reason=\"a\"} 3\n"));
    assert_non_null(strstr(t, "t_gauge 2.5\n"));
    assert_non_null(strstr(t, "t_hist_bucket{shard=\"0\",le=\"0.1\"} 1\n"));
    assert_non_null(strstr(t, "t_hist_bucket{shard=\"0\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "t_hist_count{shard=\"0\"} 3\n"));
    core_buf_free(&out);
    core_metrics_destroy(m);
}

static void test_rng_deterministic(void **state)
{
    (void)state;
    core_rng a, b;
    core_rng_seed(&a, 5);
    core_rng_seed(&b, 5);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(core_rng_u32(&a), core_rng_u32(&b));
    for (int i = 0; i < 1000; i++) {
        float f = core_rng_unit(&a);
        assert_true(f >= 0.0f && f < 1.0f);
        assert_true(core_rng_below(&a, 7) < 7);
    }
}

static void test_secret_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/tessera-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], a[65], b[65], err[256];
    snprintf(path, sizeof path, "%s/sub/jwt.secret", dir);
    assert_int_equal(core_secret_load_or_create(path, 32, a, sizeof a, err, sizeof err), 0);
    assert_int_equal(strlen(a), 64);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* the same secret on the next start */
    assert_int_equal(core_secret_load_or_create(path, 32, b, sizeof b, err, sizeof err), 0);
    assert_string_equal(a, b);
    /* a world-readable secret is refused */
    chmod(path, 0644);
    assert_int_equal(core_secret_load_or_create(path, 32, b, sizeof b, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    /* so is a damaged one */
    chmod(path, 0600);
    FILE *f = fopen(path, "w");
    fputs("not hex\n", f);
    fclose(f);
    assert_int_equal(core_secret_load_or_create(path, 32, b, sizeof b, err, sizeof err), -1);
    unlink(path);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_round_trip),  cmocka_unit_test(test_reader_never_overreads),
        cmocka_unit_test(test_buf_le_and_consume), cmocka_unit_test(test_idmap_against_reference),
        cmocka_unit_test(test_config_precedence),  cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_metrics_render),     cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
