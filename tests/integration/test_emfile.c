/* test_emfile.c - file-descriptor discipline: a server whose process runs
 * out of descriptors (accept() fails with EMFILE) stops accepting instead
 * of spinning, keeps serving the connections it has, and resumes when
 * descriptors come back. The server is started with a soft limit of 64
 * open files so the test needs only a hundred sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tclient.h"

#define N_SOCKS 100

/* utime + stime of pid in seconds. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void test_emfile_pauses_and_recovers(void **state)
{
    (void)state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    ts_server srv;
    static const char *const args[] = {"--npcs",     "0", "--shards", "1",
                                       "--map-file", "",  NULL}; /* no obstacle stops the walker */
    int rc = ts_server_start(&srv, args);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, 0);

    /* one session that must keep working throughout */
    char name[32];
    ts_unique_name("fd", name, sizeof name);
    ts_ws ws;
    ts_game g;
    ts_game_init(&g);
    assert_int_equal(ts_game_join(srv.port, name, &ws, &g, 5000), 0);
    /* it walks, so it is due a STATE every tick (idle, one every 5 s) */
    assert_int_equal(ts_game_walk(&ws, &g, 1), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, 1, 2000), 0);

    int socks[N_SOCKS];
    for (int i = 0; i < N_SOCKS; i++)
        socks[i] = ts_tcp_connect(srv.port, 2000); /* the kernel completes them all */
    ts_sleep_ms(500);
    double c0 = cpu_s(srv.pid);
    uint32_t states0 = g.n_states;
    ts_game_pump(&ws, &g, 2000, NULL, NULL);
    double used = cpu_s(srv.pid) - c0;
    print_message("server CPU at the descriptor limit: %.3f s in 2 s; %u states meanwhile\n", used,
                  g.n_states - states0);
    /* not spinning on accept(): well under a fifth of a core */
    assert_true(used >= 0 && used < 0.4);
    /* the session already in was served all along */
    assert_true(g.n_states - states0 >= 30);
    assert_true(ts_server_alive(&srv, NULL));

    /* descriptors come back: accepting resumes */
    for (int i = 0; i < N_SOCKS; i++)
        if (socks[i] >= 0)
            close(socks[i]);
    ts_sleep_ms(500);
    ts_http_resp r = {0};
    assert_int_equal(ts_http_request(srv.port, "GET", "/healthz", NULL, NULL, &r), 200);
    ts_http_resp_free(&r);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
}

int main(void)
{
    ts_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emfile_pauses_and_recovers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ts_finish(failed);
    return failed;
}
