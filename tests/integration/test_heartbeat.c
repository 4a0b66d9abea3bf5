/* test_heartbeat.c - idle connections (docs/protocol.md section 9, "idle
 * connection"): the server pings a silent client after ping_interval_s and
 * drops one that has sent no frame for ping_timeout_s (close 4008). Any
 * frame counts as activity, so a client that answers pings, or one that
 * sends data but never pongs, stays.
 *
 * Also the close handshake: a peer that never answers our close frame is
 * dropped after close_timeout_s.
 *
 * Server: --ping-interval-s 1 --ping-timeout-s 3 --close-timeout-s 1. The
 * three heartbeat clients run side by side over the same 5 s to keep the
 * file short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "tclient.h"

static ts_server g_srv;

static int group_setup(void **state)
{
    (void)state;
    const char *args[] = {"--ping-interval-s",
                          "1",
                          "--ping-timeout-s",
                          "3",
                          "--close-timeout-s",
                          "1",
                          "--shards",
                          "2",
                          "--npcs",
                          "0",
                          NULL};
    return ts_server_start(&g_srv, args);
}

/* cmocka 1.1 does not count a failed group teardown, so main does. */
static bool g_server_bad;

static int group_teardown(void **state)
{
    (void)state;
    g_server_bad = ts_server_stop_checked(&g_srv) != 0;
    return g_server_bad ? -1 : 0;
}

static void join(const char *prefix, ts_ws *ws, ts_game *g)
{
    char name[32];
    ts_unique_name(prefix, name, sizeof name);
    ts_game_init(g);
    if (ts_game_join(g_srv.port, name, ws, g, 3000) != 0)
        fail_msg("join %s failed", name);
}

static void idle_clients_are_pinged_and_silent_ones_dropped(void **state)
{
    (void)state;
    ts_ws ponger, silent, talker;
    ts_game gp, gs, gt;
    /* silent: answers nothing, sends nothing after the handshake. */
    join("silent", &silent, &gs);
    uint64_t t_silent = ts_now_ms(); /* its last frame was... none: the upgrade */
    silent.auto_pong = false;
    /* ponger: answers the server's pings (auto_pong), sends nothing else. */
    join("ponger", &ponger, &gp);
    /* talker: sends an INPUT every 500 ms, never answers pings. */
    join("talker", &talker, &gt);
    talker.auto_pong = false;

    uint32_t gp_states0 = gp.n_states, gt_states0 = gt.n_states;
    uint64_t t0 = ts_now_ms();
    uint64_t next_input = t0;
    uint32_t seq = 0;
    uint64_t silent_closed_at = 0;
    while (ts_now_ms() - t0 < 5000) {
        if (ts_now_ms() >= next_input) {
            assert_int_equal(ts_send_input(&talker, ++seq, 0.0f, 0.0f), 0);
            next_input += 500;
        }
        ts_game_pump(&ponger, &gp, 10, NULL, NULL);
        ts_game_pump(&talker, &gt, 10, NULL, NULL);
        if (!silent_closed_at && ts_game_pump(&silent, &gs, 10, NULL, NULL) < 0)
            silent_closed_at = ts_now_ms();
        assert_false(gp.is_closed);
        assert_false(gt.is_closed);
    }

    /* The answering client stayed, was pinged, and kept getting STATE
     * (20 per second; allow for scheduling). */
    fprintf(stderr, "ponger: %u pings, %u states in 5 s; talker: %u pings, %u states\n",
            ponger.n_pings_rx, gp.n_states - gp_states0, talker.n_pings_rx,
            gt.n_states - gt_states0);
    assert_true(ponger.n_pings_rx >= 1);
    assert_true(gp.n_states - gp_states0 >= 70);
    assert_true(gt.n_states - gt_states0 >= 70);
    assert_true(gt.view.ack_seq >= seq - 1);

    /* The silent client was pinged, then dropped: ~3 s after its upgrade,
     * certainly within ping_timeout + 1.5 s. */
    if (!silent_closed_at)
        fail_msg("silent client still connected after %llu ms",
                 (unsigned long long)(ts_now_ms() - t_silent));
    uint64_t after = silent_closed_at - t_silent;
    fprintf(stderr, "silent client: %u pings, closed %d after %llu ms\n", silent.n_pings_rx,
            gs.close_code, (unsigned long long)after);
    assert_true(silent.n_pings_rx >= 1);
    assert_true(gs.close_code == 4008 || gs.close_code == TS_WS_NO_CLOSE);
    assert_true(after >= 2500);
    assert_true(after <= 4500);

    ts_game_free(&gp);
    ts_game_free(&gs);
    ts_game_free(&gt);
    ts_ws_close(&ponger);
    ts_ws_close(&silent);
    ts_ws_close(&talker);
}

static void peer_that_never_answers_close_is_dropped(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join("mute", &ws, &g);
    ws.auto_pong = false;
    /* A text message makes the server close (1003); we read its close
     * frame but never answer it. */
    assert_int_equal(ts_ws_send_frame(&ws, true, 0, TS_WS_TEXT, "x", 1, true), 0);
    uint64_t deadline = ts_now_ms() + 2000;
    bool got_close = false;
    while (!got_close && ts_now_ms() < deadline) {
        bool fin;
        uint8_t op;
        const uint8_t *p;
        size_t n;
        if (ts_ws_recv_frame(&ws, 200, &fin, &op, &p, &n) != 0) {
            assert_false(ws.is_eof);
            continue;
        }
        got_close = op == TS_WS_CLOSE;
    }
    assert_true(got_close);
    uint64_t t0 = ts_now_ms();
    assert_int_equal(ts_wait_eof(ws.fd, 4000), 0);
    uint64_t took = ts_now_ms() - t0;
    fprintf(stderr, "unanswered close: dropped after %llu ms\n", (unsigned long long)took);
    assert_true(took <= 2500);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void server_healthy_after_heartbeat_drops(void **state)
{
    (void)state;
    /* After the heartbeat test, the server is still healthy. */
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/healthz", NULL, NULL, NULL), 200);
    assert_true(ts_server_alive(&g_srv, NULL));
}

int main(void)
{
    ts_watchdog(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_clients_are_pinged_and_silent_ones_dropped),
        cmocka_unit_test(peer_that_never_answers_close_is_dropped),
        cmocka_unit_test(server_healthy_after_heartbeat_drops),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    failed += g_server_bad;
    ts_finish(failed);
    return failed;
}
