/* test_pg.c - `tessera serve` on a real PostgreSQL (started by the test,
 * on loopback, in a temporary folder): players come back where they stood
 * after a kill -9 (at most the flush interval lost), and when the
 * database goes down mid-run the server keeps serving movement, refuses
 * what needs the database with a clear error, and recovers by itself
 * when the database returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "pg_server.h"
#include "tclient.h"

static ts_pg *pg;
static char url[256];
static char store_arg[300];

static const char *const *server_args(void)
{
    static const char *args[12];
    int n = 0;
    args[n++] = "--npcs";
    args[n++] = "0";
    args[n++] = "--map-file";
    args[n++] = "";
    args[n++] = "--world-w";
    args[n++] = "1024";
    args[n++] = "--world-h";
    args[n++] = "1024";
    args[n++] = store_arg;
    args[n] = NULL;
    return args;
}

static void self_pos(const ts_game *g, double *x, double *y)
{
    int k = proto_view_find(&g->view, g->entity_id);
    assert_true(k >= 0);
    *x = g->view.slots[k].x_q / 16.0;
    *y = g->view.slots[k].y_q / 16.0;
}

/* Starts walking toward the world centre; returns the last input seq. */
static uint32_t walk(ts_ws *ws, ts_game *g)
{
    double x, y;
    self_pos(g, &x, &y);
    double dx = 512 - x, dy = 512 - y, d = sqrt(dx * dx + dy * dy);
    if (d < 1)
        dx = 1, dy = 0, d = 1;
    uint32_t seq = g->view.ack_seq + 1;
    assert_int_equal(ts_send_input(ws, seq, (float)(dx / d), (float)(dy / d)), 0);
    assert_int_equal(ts_game_wait_ack(ws, g, seq, 2000), 0);
    return seq;
}

static void test_kill_on_postgres(void **state)
{
    (void)state;
    ts_server srv;
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    char name[32];
    ts_unique_name("pgkill", name, sizeof name);
    ts_ws ws;
    ts_game g;
    ts_game_init(&g);
    assert_int_equal(ts_game_join(srv.port, name, &ws, &g, 5000), 0);
    double x0, y0, x1, y1;
    self_pos(&g, &x0, &y0);
    walk(&ws, &g);
    ts_game_pump(&ws, &g, 2500, NULL, NULL);
    self_pos(&g, &x1, &y1);
    kill(srv.pid, SIGKILL);
    int st;
    waitpid(srv.pid, &st, 0);
    srv.pid = 0;
    ts_ws_close(&ws);
    ts_game_free(&g);

    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    ts_game_init(&g);
    assert_int_equal(ts_game_join(srv.port, name, &ws, &g, 5000), 0);
    double x2, y2;
    self_pos(&g, &x2, &y2);
    double lost = hypot(x2 - x1, y2 - y1), walked = hypot(x1 - x0, y1 - y0);
    print_message("postgres: walked %.1f, %.1f units lost to kill -9\n", walked, lost);
    assert_true(walked > 60);
    assert_true(lost <= 60.0);
    assert_true(hypot(x2 - x0, y2 - y0) <= walked + 1.0);
    char token[TS_TOKEN_MAX];
    assert_int_equal(ts_login(srv.port, name, "wrong-password", token, sizeof token), 401);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
}

static void test_database_down_and_back(void **state)
{
    (void)state;
    ts_server srv;
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    char name[32], other[32], late[32];
    ts_unique_name("pgdown", name, sizeof name);
    ts_unique_name("pgother", other, sizeof other);
    ts_unique_name("pglate", late, sizeof late);
    char token[TS_TOKEN_MAX];
    assert_int_equal(ts_login(srv.port, other, "password1", token, sizeof token), 200);
    ts_ws ws;
    ts_game g;
    ts_game_init(&g);
    assert_int_equal(ts_game_join(srv.port, name, &ws, &g, 5000), 0);
    uint32_t seq = walk(&ws, &g);

    assert_int_equal(ts_pg_stop(pg), 0);
    /* movement goes on: states keep coming and inputs are acknowledged
     * (walking towards the centre: a player stopped by the world's edge
     * gets no STATE but a keepalive, nothing having changed) */
    uint32_t states0 = g.n_states;
    assert_int_equal(ts_game_walk(&ws, &g, ++seq), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, seq, 2000), 0);
    ts_game_pump(&ws, &g, 2000, NULL, NULL);
    print_message("%u states while the database was down\n", g.n_states - states0);
    assert_true(g.n_states - states0 >= 35);
    /* what needs the database is refused with a clear error */
    ts_http_resp r = {0};
    char body[128];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"password1\"}", late);
    int status = ts_http_request(srv.port, "POST", "/api/login", NULL, body, &r);
    print_message("login while down: %d %s\n", status, r.body ? r.body : "");
    assert_int_equal(status, 503);
    assert_non_null(strstr(r.body, "unavailable"));
    ts_http_resp_free(&r);
    assert_true(ts_server_alive(&srv, NULL));

    /* the database returns: the server recovers by itself */
    assert_int_equal(ts_pg_restart(pg), 0);
    uint64_t t0 = ts_now_ms();
    int ok = 0;
    while (ts_now_ms() - t0 < 15000 && !ok) {
        ok = ts_login(srv.port, late, "password1", token, sizeof token) == 200;
        if (!ok)
            ts_game_pump(&ws, &g, 500, NULL, NULL);
    }
    print_message("logins work again after %llu ms\n", (unsigned long long)(ts_now_ms() - t0));
    assert_true(ok);
    /* and the movement made while it was down reaches it */
    double x1, y1;
    ts_game_pump(&ws, &g, 300, NULL, NULL);
    self_pos(&g, &x1, &y1);
    ts_ws_send_close(&ws, 1000, "bye");
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
    assert_int_equal(ts_server_start(&srv, server_args()), 0);
    ts_game_init(&g);
    assert_int_equal(ts_game_join(srv.port, name, &ws, &g, 5000), 0);
    double x2, y2;
    self_pos(&g, &x2, &y2);
    print_message("was at (%.1f, %.1f), back at (%.1f, %.1f)\n", x1, y1, x2, y2);
    assert_true(hypot(x2 - x1, y2 - y1) < 1.0);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
}

static int setup(void **state)
{
    (void)state;
    if (!ts_pg_available()) {
        fprintf(stderr, "PostgreSQL binaries not found (scripts/install-deps.sh test installs "
                        "them)\n");
        return -1;
    }
    pg = ts_pg_start();
    if (!pg || ts_pg_createdb(pg, "tessera_it", url, sizeof url) != 0)
        return -1;
    snprintf(store_arg, sizeof store_arg, "--store-url=%s", url);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ts_pg_destroy(pg);
    return 0;
}

int main(void)
{
    ts_watchdog(110);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_on_postgres),
        cmocka_unit_test(test_database_down_and_back),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ts_finish(failed);
    return failed;
}
