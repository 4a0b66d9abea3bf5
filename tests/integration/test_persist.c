/* test_persist.c - players come back where they stood: accounts and
 * positions survive a clean restart exactly, and a kill -9 loses at most
 * the flush interval (1 s) of movement. SQLite in a data folder the test
 * owns, so the restarted server finds the same state. */
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

static const char *const *server_args(void)
{
    static const char *args[16];
    int n = 0;
    args[n++] = "--npcs";
    args[n++] = "0";
    args[n++] = "--map-file";
    args[n++] = "";
    args[n++] = "--world-w";
    args[n++] = "1024";
    args[n++] = "--world-h";
    args[n++] = "1024";
    args[n++] = data_arg;
    args[n] = NULL;
    return args;
}

/* Joins as name and returns its position in units. */
static void join(ts_server *srv, const char *name, ts_ws *ws, ts_game *g, double *x, double *y)
{
    ts_game_init(g);
    assert_int_equal(ts_game_join(srv->port, name, ws, g, 5000), 0);
    int k = proto_view_find(&g->view, g->entity_id);
    assert_true(k >= 0);
    *x = g->view.slots[k].x_q / 16.0;
    *y = g->view.slots[k].y_q / 16.0;
}

/* Walks toward the world centre for ms milliseconds, returns the last
 * position the server reported. */
static void walk(ts_ws *ws, ts_game *g, int ms, double *x, double *y)
{
    int k = proto_view_find(&g->view, g->entity_id);
    double px = g->view.slots[k].x_q / 16.0, py = g->view.slots[k].y_q / 16.0;
    double dx = 512 - px, dy = 512 - py, d = sqrt(dx * dx + dy * dy);
    if (d < 1)
        dx = 1, dy = 0, d = 1;
    uint32_t seq = g->view.ack_seq + 1;
    assert_int_equal(ts_send_input(ws, seq, (float)(dx / d), (float)(dy / d)), 0);
    assert_int_equal(ts_game_wait_ack(ws, g, seq, 2000), 0);
    ts_game_pump(ws, g, ms, NULL, NULL);
    k = proto_view_find(&g->view, g->entity_id);
    *x = g->view.slots[k].x_q / 16.0;
    *y = g->view.slots[k].y_q / 16.0;
}

static void test_clean_restart_keeps_position(void **state)
{
    (void)state;
    ts_server srv;
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    char name[32];
    ts_unique_name("keep", name, sizeof name);
    ts_ws ws;
    ts_game g;
    double x0, y0, x1, y1;
    join(&srv, name, &ws, &g, &x0, &y0);
    walk(&ws, &g, 1500, &x1, &y1);
    /* stop, so the position the client knows is the one that stays */
    uint32_t seq = g.view.ack_seq + 1;
    assert_int_equal(ts_send_input(&ws, seq, 0.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, seq, 2000), 0);
    ts_game_pump(&ws, &g, 200, NULL, NULL);
    int k = proto_view_find(&g.view, g.entity_id);
    x1 = g.view.slots[k].x_q / 16.0;
    y1 = g.view.slots[k].y_q / 16.0;
    assert_true(fabs(x1 - x0) + fabs(y1 - y0) > 20); /* it did move */
    ts_ws_send_close(&ws, 1000, "bye");
    ts_ws_expect_close(&ws, 2000, NULL, NULL, 0);
    ts_ws_close(&ws);
    ts_game_free(&g);
    /* the stop waits for the store's last flush */
    assert_int_equal(ts_server_stop(&srv), 0);

    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    double x2, y2;
    join(&srv, name, &ws, &g, &x2, &y2);
    print_message("left at (%.2f, %.2f), back at (%.2f, %.2f)\n", x1, y1, x2, y2);
    assert_true(fabs(x2 - x1) < 0.1 && fabs(y2 - y1) < 0.1);
    /* and the password is still checked */
    char token[TS_TOKEN_MAX];
    assert_int_equal(ts_login(srv.port, name, "not-the-password", token, sizeof token), 401);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
}

static void test_kill_loses_at_most_the_flush_interval(void **state)
{
    (void)state;
    ts_server srv;
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    char name[32];
    ts_unique_name("kill", name, sizeof name);
    ts_ws ws;
    ts_game g;
    double x0, y0, x1, y1;
    join(&srv, name, &ws, &g, &x0, &y0);
    walk(&ws, &g, 2500, &x1, &y1);
    /* kill -9 while it is still walking */
    kill(srv.pid, SIGKILL);
    int st;
    waitpid(srv.pid, &st, 0);
    srv.pid = 0;
    ts_ws_close(&ws);
    ts_game_free(&g);

    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    double x2, y2;
    join(&srv, name, &ws, &g, &x2, &y2);
    double lost = sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1));
    double walked = sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0));
    print_message("walked %.1f units, killed at (%.1f, %.1f), back at (%.1f, %.1f): %.1f "
                  "units lost\n",
                  walked, x1, y1, x2, y2, lost);
    assert_true(walked > 60);
    /* flush interval 1 s at 50 units/s, plus a tick and the pump's lag */
    assert_true(lost <= 50.0 + 10.0);
    /* it is on the path it walked, not at a random spawn */
    assert_true(sqrt((x2 - x0) * (x2 - x0) + (y2 - y0) * (y2 - y0)) <= walked + 1.0);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
}

int main(void)
{
    ts_watchdog(90);
    snprintf(data_dir, sizeof data_dir, "/tmp/tessera-persist-XXXXXX");
    if (!mkdtemp(data_dir))
        return 1;
    snprintf(data_arg, sizeof data_arg, "--data-dir=%s", data_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_restart_keeps_position),
        cmocka_unit_test(test_kill_loses_at_most_the_flush_interval),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ts_finish(failed);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        failed++;
    return failed;
}
