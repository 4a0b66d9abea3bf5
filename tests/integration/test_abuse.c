/* test_abuse.c - hostile clients get their documented answer while
 * everyone else keeps playing: slowloris (hundreds of sockets trickling a
 * request head) is cut at the handshake deadline while a normal client
 * still gets in at once; a WebSocket ping flood is rate limited like any
 * message and, sustained, closed with 1008. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tclient.h"

#define N_SLOW 200

static ts_server srv;

static int setup(void **state)
{
    (void)state;
    static const char *const args[] = {
        "--npcs", "0", "--handshake-timeout-s", "2", "--msgs-per-s", "20", "--msgs-burst",
        "20",     NULL};
    return ts_server_start(&srv, args);
}

static int teardown(void **state)
{
    (void)state;
    return ts_server_stop_checked(&srv);
}

static void test_slowloris(void **state)
{
    (void)state;
    static int fds[N_SLOW];
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (int i = 0; i < N_SLOW; i++) {
        fds[i] = ts_tcp_connect(srv.port, 2000);
        assert_true(fds[i] >= 0);
        assert_int_equal(ts_send_all(fds[i], head, sizeof head - 1, 1000), 0);
    }
    /* trickle a byte per socket every 300 ms: never a complete head */
    uint64_t t0 = ts_now_ms();
    int normal_ms = -1;
    while (ts_now_ms() - t0 < 1200) {
        for (int i = 0; i < N_SLOW; i++)
            if (fds[i] >= 0 && ts_send_all(fds[i], "a", 1, 100) != 0) {
                close(fds[i]);
                fds[i] = -1;
            }
        if (normal_ms < 0) {
            uint64_t a = ts_now_ms();
            ts_http_resp r = {0};
            assert_int_equal(ts_http_request(srv.port, "GET", "/healthz", NULL, NULL, &r), 200);
            ts_http_resp_free(&r);
            normal_ms = (int)(ts_now_ms() - a);
        }
        ts_sleep_ms(300);
    }
    print_message("a normal client got in in %d ms among %d slow sockets\n", normal_ms, N_SLOW);
    assert_true(normal_ms >= 0 && normal_ms < 1000);
    /* the deadline (2 s after connecting) closes every slow socket */
    int closed = 0;
    for (int i = 0; i < N_SLOW; i++) {
        if (fds[i] < 0 || ts_wait_eof(fds[i], 3000) == 0)
            closed++;
        if (fds[i] >= 0)
            close(fds[i]);
    }
    print_message("%d of %d slow sockets closed by the server\n", closed, N_SLOW);
    assert_int_equal(closed, N_SLOW);
}

static void test_ping_flood(void **state)
{
    (void)state;
    char name[32];
    ts_unique_name("pinger", name, sizeof name);
    ts_ws ws;
    ts_game g;
    ts_game_init(&g);
    assert_int_equal(ts_game_join(srv.port, name, &ws, &g, 5000), 0);
    /* a burst of 200 pings: about the bucket's depth is answered */
    for (int i = 0; i < 200; i++)
        assert_int_equal(ts_ws_send_frame(&ws, true, 0, TS_WS_PING, "p", 1, true), 0);
    int pongs = 0;
    uint64_t t0 = ts_now_ms();
    while (ts_now_ms() - t0 < 1500) {
        bool fin;
        uint8_t op;
        const uint8_t *p;
        size_t len;
        if (ts_ws_recv_frame(&ws, 200, &fin, &op, &p, &len) != 0) {
            if (ws.is_eof)
                break;
            continue;
        }
        if (op == TS_WS_PONG)
            pongs++;
    }
    print_message("200 pings, %d pongs\n", pongs);
    assert_true(pongs >= 15 && pongs <= 60);
    assert_false(ws.is_eof); /* one burst is forgiven */
    /* a sustained flood (10x the rate) is closed with 1008 */
    int code = 0;
    t0 = ts_now_ms();
    while (ts_now_ms() - t0 < 6000 && !ws.is_eof) {
        for (int i = 0; i < 10; i++)
            if (ts_ws_send_frame(&ws, true, 0, TS_WS_PING, "p", 1, true) != 0)
                break;
        bool fin;
        uint8_t op;
        const uint8_t *p;
        size_t len;
        while (ts_ws_recv_frame(&ws, 0, &fin, &op, &p, &len) == 0)
            if (op == TS_WS_CLOSE) {
                code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
                goto closed;
            }
        ts_sleep_ms(50);
    }
closed:
    print_message("sustained ping flood closed with %d after %llu ms\n", code,
                  (unsigned long long)(ts_now_ms() - t0));
    assert_int_equal(code, 1008);
    ts_ws_close(&ws);
    ts_game_free(&g);
}

int main(void)
{
    ts_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_ping_flood),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ts_finish(failed);
    return failed;
}
