/* test_replay.c - `tessera replay` against a real server's store: serve
 * with snapshots every second while players walk across cells and the
 * shard border, stop it, and every active cell must replay from its
 * snapshot and tick log to the hash the live shard recorded. Then a
 * second run of the same data folder, killed with SIGKILL mid-walk: the
 * cells replay to the last committed tick of the new run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tclient.h"

static char data_dir[64];
static char data_arg[80];
static char map_arg[300];

static const char *const *server_args(void)
{
    static const char *args[20];
    int n = 0;
    args[n++] = "--npcs";
    args[n++] = "80";
    args[n++] = "--shards";
    args[n++] = "2";
    args[n++] = "--world-w";
    args[n++] = "1024";
    args[n++] = "--world-h";
    args[n++] = "1024";
    args[n++] = "--snapshot-interval-s";
    args[n++] = "1";
    args[n++] = map_arg;
    args[n++] = data_arg;
    args[n] = NULL;
    return args;
}

/* Runs the replay of every cell; returns its exit status and counts the
 * cells that matched. Skips the test while `tessera replay` is not wired. */
static int replay_all(int *n_matched, char *out, size_t cap)
{
    const char *bin = getenv("TESSERA_BIN");
    assert_non_null(bin);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' replay --cell all %s --world-w 1024 --world-h 1024 %s --log-level error 2>&1",
             bin, data_arg, map_arg);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    if (strstr(out, "unknown command 'replay'")) {
        print_message("`tessera replay` is not wired into src/main/main.c yet\n");
        skip();
    }
    *n_matched = 0;
    for (const char *s = out; (s = strstr(s, "matches the live shard")) != NULL; s++)
        ++*n_matched;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Joins and walks toward (tx, ty) for ms milliseconds. */
static void walk(ts_server *srv, const char *prefix, float tx, float ty, int ms, ts_ws *ws,
                 ts_game *g)
{
    char name[32];
    ts_unique_name(prefix, name, sizeof name);
    ts_game_init(g);
    assert_int_equal(ts_game_join(srv->port, name, ws, g, 5000), 0);
    int k = proto_view_find(&g->view, g->entity_id);
    assert_true(k >= 0);
    float x = (float)g->view.slots[k].x_q / 16.0f, y = (float)g->view.slots[k].y_q / 16.0f;
    float dx = tx - x, dy = ty - y, d = sqrtf(dx * dx + dy * dy);
    if (d < 1)
        dx = 1, dy = 0, d = 1;
    uint32_t seq = g->view.ack_seq + 1;
    assert_int_equal(ts_send_input(ws, seq, dx / d, dy / d), 0);
    assert_int_equal(ts_game_wait_ack(ws, g, seq, 2000), 0);
    ts_game_pump(ws, g, ms, NULL, NULL);
}

static void test_replay_after_stop_and_after_kill(void **state)
{
    (void)state;
    ts_server srv;
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    ts_ws ws[3];
    ts_game g[3];
    walk(&srv, "east", 900, 500, 10, &ws[0], &g[0]);
    walk(&srv, "west", 100, 520, 10, &ws[1], &g[1]);
    walk(&srv, "north", 500, 100, 3000, &ws[2], &g[2]);
    for (int i = 0; i < 3; i++) {
        ts_ws_close(&ws[i]);
        ts_game_free(&g[i]);
    }
    assert_int_equal(ts_server_stop(&srv), 0);

    static char out[1 << 16];
    int matched = 0;
    int rc = replay_all(&matched, out, sizeof out);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_true(matched >= 8); /* 80 NPCs in 16 cells: nearly all active */

    /* a second run of the same store, killed mid-walk */
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    walk(&srv, "again", 900, 900, 2500, &ws[0], &g[0]);
    kill(srv.pid, SIGKILL);
    int st;
    waitpid(srv.pid, &st, 0);
    srv.pid = 0;
    ts_ws_close(&ws[0]);
    ts_game_free(&g[0]);
    rc = replay_all(&matched, out, sizeof out);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_true(matched >= 8);
}

int main(void)
{
    ts_watchdog(100);
    snprintf(data_dir, sizeof data_dir, "/tmp/tessera-replay-it-XXXXXX");
    if (!mkdtemp(data_dir))
        return 1;
    snprintf(data_arg, sizeof data_arg, "--data-dir=%s", data_dir);
    const char *src = getenv("TESSERA_SOURCE_DIR");
    snprintf(map_arg, sizeof map_arg, "--map-file=%s/maps/default.map", src ? src : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_after_stop_and_after_kill),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ts_finish(failed);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        failed++;
    return failed;
}
