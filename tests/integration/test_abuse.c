/* test_abuse.c - hostile clients get their documented answer while
 * everyone else keeps playing: slowloris (hundreds of sockets trickling a
 * request head) is cut at the handshake deadline while a normal client
 * still gets in at once; a WebSocket ping flood is rate limited like any
 * message and, sustained, closed with 1008; cheats through the real
 * gateway (headings longer than 1, a burst of inputs after a stall,
 * replayed and old sequence numbers, a pickup naming another player's
 * entity or one that does not exist, a drop of a slot the player does not
 * hold) are answered with their ERROR, counted by reason in /metrics and
 * never applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
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

/* Sum of tessera_inputs_rejected_total over shards for one reason. */
static double rejected(const char *reason)
{
    ts_http_resp r = {0};
    double total = 0;
    char label[64];
    snprintf(label, sizeof label, "reason=\"%s\"", reason);
    if (ts_http_request(srv.port, "GET", "/metrics", NULL, NULL, &r) != 200) {
        ts_http_resp_free(&r);
        return -1;
    }
    for (char *line = r.body; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next = 0;
        if (strncmp(line, "tessera_inputs_rejected_total{", 30) == 0 && strstr(line, label)) {
            char *sp = strrchr(line, ' ');
            if (sp)
                total += strtod(sp + 1, NULL);
        }
        line = next ? next + 1 : NULL;
    }
    ts_http_resp_free(&r);
    return total;
}

static bool has_inventory(const ts_game *g, void *ctx)
{
    (void)g;
    return *(const bool *)ctx;
}

static void note_inventory(void *ctx, uint8_t kind, const uint8_t *body, size_t len)
{
    (void)body;
    (void)len;
    if (kind == PROTO_S_INVENTORY)
        *(bool *)ctx = true;
}

static void self_pos(const ts_game *g, int32_t *x, int32_t *y)
{
    int k = proto_view_find(&g->view, g->entity_id);
    assert_true(k >= 0);
    *x = g->view.slots[k].x_q;
    *y = g->view.slots[k].y_q;
}

static int send_pickup(ts_ws *ws, uint32_t req, uint32_t entity)
{
    uint8_t m[10] = {PROTO_C_PICKUP, 8};
    for (int i = 0; i < 4; i++) {
        m[2 + i] = (uint8_t)(req >> (8 * i));
        m[6 + i] = (uint8_t)(entity >> (8 * i));
    }
    return ts_ws_send_binary(ws, m, sizeof m);
}

static int send_drop(ts_ws *ws, uint32_t req, uint8_t slot)
{
    uint8_t m[7] = {
        PROTO_C_DROP,         5,   (uint8_t)req, (uint8_t)(req >> 8), (uint8_t)(req >> 16),
        (uint8_t)(req >> 24), slot};
    return ts_ws_send_binary(ws, m, sizeof m);
}

static void test_cheats(void **state)
{
    (void)state;
    char na[32], nb[32];
    ts_unique_name("cheat", na, sizeof na);
    ts_unique_name("victim", nb, sizeof nb);
    ts_ws a, b;
    ts_game ga, gb;
    ts_game_init(&ga);
    ts_game_init(&gb);
    bool inv = false;
    ga.on_record = note_inventory;
    ga.ctx = &inv;
    assert_int_equal(ts_game_join(srv.port, na, &a, &ga, 5000), 0);
    assert_int_equal(ts_game_join(srv.port, nb, &b, &gb, 5000), 0);
    assert_int_equal(ts_game_pump(&a, &ga, 5000, has_inventory, &inv), 0);
    const char *reasons[] = {"out_of_range",    "not_finite",  "stale_seq",
                             "too_many_inputs", "not_an_item", "bad_slot"};
    double before[6];
    for (int i = 0; i < 6; i++)
        before[i] = rejected(reasons[i]);
    int32_t x0, y0, x1, y1;
    self_pos(&ga, &x0, &y0);

    /* a heading longer than 1 and a NaN heading: refused, nothing moves */
    assert_int_equal(ts_send_input(&a, 1, 3.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_error(&a, &ga, PROTO_ERR_OUT_OF_RANGE, 2000), 0);
    assert_int_equal(ts_send_input(&a, 2, NAN, 0.0f), 0);
    assert_int_equal(ts_game_wait_error(&a, &ga, PROTO_ERR_NOT_FINITE, 2000), 0);
    /* an idle client gets a keepalive STATE only every 5 s, but a move
     * would be news every tick: 300 ms (6 ticks) without one */
    ts_game_pump(&a, &ga, 300, NULL, NULL);
    self_pos(&ga, &x1, &y1);
    assert_int_equal(x1, x0);
    assert_int_equal(y1, y0);
    assert_int_equal(ga.view.ack_seq, 0);

    /* a valid stop, then the same and an older sequence number again */
    assert_int_equal(ts_send_input(&a, 5, 0.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&a, &ga, 5, 2000), 0);
    assert_int_equal(ts_send_input(&a, 5, 1.0f, 0.0f), 0);
    assert_int_equal(ts_send_input(&a, 4, 1.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_error(&a, &ga, PROTO_ERR_STALE_SEQ, 2000), 0);
    ts_game_pump(&a, &ga, 300, NULL, NULL); /* a move would come within a tick */
    self_pos(&ga, &x1, &y1);
    assert_int_equal(x1, x0); /* the replayed "move right" never applied */
    assert_int_equal(ga.view.ack_seq, 5);

    /* a burst after a stall: ten inputs in one message, the server
     * applies at most its per-tick allowance and moves at 2.5 units/tick */
    uint8_t burst[10 * 14];
    size_t n = 0;
    for (uint32_t k = 0; k < 10; k++) {
        float dir = (float)x0 / 16.0f < 512.0f ? 1.0f : -1.0f;
        uint32_t seq = 6 + k, fx;
        memcpy(&fx, &dir, 4);
        uint8_t rec[14] = {PROTO_C_INPUT, 12}; /* u32 seq, f32 x, f32 y = 0 */
        for (int i = 0; i < 4; i++) {
            rec[2 + i] = (uint8_t)(seq >> (8 * i));
            rec[6 + i] = (uint8_t)(fx >> (8 * i));
        }
        memcpy(burst + n, rec, 14);
        n += 14;
    }
    uint32_t t0 = ga.view.tick;
    assert_int_equal(ts_ws_send_binary(&a, burst, n), 0);
    assert_int_equal(ts_game_wait_error(&a, &ga, PROTO_ERR_TOO_MANY_INPUTS, 2000), 0);
    assert_int_equal(ts_game_wait_states(&a, &ga, ga.n_states + 3, 2000), 0);
    self_pos(&ga, &x1, &y1);
    uint32_t ticks = ga.view.tick - t0;
    double moved = fabs((double)(x1 - x0)) / 16.0;
    print_message("burst of 10 inputs: moved %.2f units in %u ticks\n", moved, ticks);
    assert_true(moved <= 2.5 * ticks + 0.1);

    /* a pickup naming another player's entity, and one naming nothing; a
     * drop from a slot the player does not hold. The burst may have spent
     * this second's ERROR notices (4 a second): wait for the next. */
    ts_game_pump(&a, &ga, 1100, NULL, NULL);
    assert_true(gb.entity_id != 0);
    assert_int_equal(send_pickup(&a, 1, gb.entity_id), 0);
    assert_int_equal(ts_game_wait_error(&a, &ga, PROTO_ERR_NOT_AN_ITEM, 2000), 0);
    uint32_t before_na = ga.n_errors;
    assert_int_equal(send_pickup(&a, 2, 0x7fffffc0u), 0);
    assert_int_equal(send_drop(&a, 3, 7), 0);
    assert_int_equal(ts_game_wait_error(&a, &ga, PROTO_ERR_BAD_SLOT, 2000), 0);
    assert_true(ga.n_errors >= before_na + 2);
    assert_false(ga.is_closed);
    assert_false(gb.is_closed);

    /* every refusal counted by its reason */
    double want[6] = {1, 1, 2, 1, 2, 1};
    for (int i = 0; i < 6; i++) {
        double now = rejected(reasons[i]);
        print_message("rejected{%s}: %.0f -> %.0f\n", reasons[i], before[i], now);
        assert_true(now - before[i] >= want[i]);
    }
    ts_ws_close(&a);
    ts_ws_close(&b);
    ts_game_free(&ga);
    ts_game_free(&gb);
}

int main(void)
{
    ts_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_ping_flood),
        cmocka_unit_test(test_cheats),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ts_finish(failed);
    return failed;
}
