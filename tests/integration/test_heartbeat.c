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
                          "--map-file", /* no obstacles: a walker is never stopped */
                          "",
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

    /* The answering client stayed, was pinged, and kept getting STATE:
     * nothing moves, so the idle ponger gets the keepalive (one every 5 s,
     * and a leave or two), the talker that and one per acknowledged input
     * (two a second); a tick with nothing to tell sends nothing. */
    uint32_t n_gp = gp.n_states - gp_states0, n_gt = gt.n_states - gt_states0;
    fprintf(stderr, "ponger: %u pings, %u states in 5 s; talker: %u pings, %u states\n",
            ponger.n_pings_rx, n_gp, talker.n_pings_rx, n_gt);
    assert_true(ponger.n_pings_rx >= 1);
    assert_true(n_gp >= 1 && n_gp <= 5);
    assert_true(n_gt >= 9 && n_gt <= 25);
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

/* A tick with nothing to tell an idle client sends it nothing, but for a
 * keepalive STATE every keepalive_s (5 s); a walking client gets every tick; and what an
 * idle client asks for (an input's ack, a PONG) still comes within about a
 * tick, not with the next keepalive. */
static void idle_client_gets_keepalives_and_prompt_answers(void **state)
{
    (void)state;
    ts_ws idle, walker;
    ts_game gi, gw;
    join("idle", &idle, &gi);
    join("walker", &walker, &gw);
    assert_int_equal(ts_game_walk(&walker, &gw, 1), 0);
    assert_int_equal(ts_game_wait_ack(&walker, &gw, 1, 2000), 0);

    uint32_t si = gi.n_states, sw = gw.n_states;
    uint64_t t0 = ts_now_ms();
    while (ts_now_ms() - t0 < 6000) {
        ts_game_pump(&idle, &gi, 5, NULL, NULL);
        ts_game_pump(&walker, &gw, 5, NULL, NULL);
    }
    uint32_t ni = gi.n_states - si, nw = gw.n_states - sw;
    fprintf(stderr, "in 6 s: idle %u STATEs, walker %u\n", ni, nw);
    assert_true(ni >= 1 && ni <= 4); /* one or two keepalives (5 s), a leave */
    assert_true(nw >= 100);          /* 20 a second, less scheduling */

    uint64_t ack_sum = 0, ack_max = 0, pong_sum = 0, pong_max = 0;
    for (uint32_t k = 1; k <= 5; k++) {
        uint64_t t = ts_now_ms();
        assert_int_equal(ts_send_input(&idle, k, 0.0f, 0.0f), 0);
        assert_int_equal(ts_game_wait_ack(&idle, &gi, k, 2000), 0);
        uint64_t dt = ts_now_ms() - t;
        ack_sum += dt;
        ack_max = dt > ack_max ? dt : ack_max;
        t = ts_now_ms();
        assert_int_equal(ts_send_ping_record(&idle, 1000 + k), 0);
        assert_int_equal(ts_game_wait_pong(&idle, &gi, 1000 + k, 2000), 0);
        dt = ts_now_ms() - t;
        pong_sum += dt;
        pong_max = dt > pong_max ? dt : pong_max;
        ts_sleep_ms(130); /* land at different points of the tick and the second */
    }
    fprintf(stderr, "idle client: ack after %llu ms mean (max %llu), PONG %llu ms (max %llu)\n",
            (unsigned long long)(ack_sum / 5), (unsigned long long)ack_max,
            (unsigned long long)(pong_sum / 5), (unsigned long long)pong_max);
    /* a tick is 50 ms; the keepalive would be up to 5000 */
    assert_true(ack_sum / 5 < 100 && ack_max < 250);
    assert_true(pong_sum / 5 < 100 && pong_max < 250);
    assert_int_equal(gi.n_errors, 0);

    ts_game_free(&gi);
    ts_game_free(&gw);
    ts_ws_close(&idle);
    ts_ws_close(&walker);
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
        cmocka_unit_test(idle_client_gets_keepalives_and_prompt_answers),
        cmocka_unit_test(peer_that_never_answers_close_is_dropped),
        cmocka_unit_test(server_healthy_after_heartbeat_drops),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    failed += g_server_bad;
    ts_finish(failed);
    return failed;
}
