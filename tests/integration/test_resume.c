/* test_resume.c - sessions survive a dropped connection: within the grace
 * period a reconnect with the resume token gets the same entity, a full
 * state resend (RESET), and its input sequence continuing with nothing
 * applied twice; a second login of the same account closes the older
 * connection with 4001 and takes the entity over; after the grace a
 * dropped player is saved and removed from the world. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "tclient.h"

static ts_server srv;

/* Captures the SESSION record's resume token and the STATE flags. */
typedef struct sess_ctx {
    uint8_t token[PROTO_RESUME_TOKEN_BYTES];
    int has_token;
    int saw_reset;
} sess_ctx;

static void on_record(void *ctx, uint8_t kind, const uint8_t *body, size_t len)
{
    sess_ctx *sc = ctx;
    if (kind == PROTO_S_SESSION && len == PROTO_RESUME_TOKEN_BYTES + 2) {
        memcpy(sc->token, body, PROTO_RESUME_TOKEN_BYTES);
        sc->has_token = 1;
    } else if (kind == PROTO_S_STATE && len > 8 && (body[8] & PROTO_STATE_RESET)) {
        sc->saw_reset = 1;
    }
}

static bool has_token(const ts_game *g, void *ctx)
{
    (void)g;
    return ((sess_ctx *)ctx)->has_token;
}

static int open_game(const char *name, const char *resume_hex, ts_ws *ws, ts_game *g, sess_ctx *sc)
{
    char token[TS_TOKEN_MAX];
    if (ts_login(srv.port, name, "password1", token, sizeof token) != 200)
        return -1;
    char path[80];
    snprintf(path, sizeof path, "/ws%s%s", resume_hex ? "?resume=" : "",
             resume_hex ? resume_hex : "");
    memset(sc, 0, sizeof *sc);
    ts_game_init(g);
    g->on_record = on_record;
    g->ctx = sc;
    ts_ws_opts o = {.bearer = token, .path = path};
    int st = ts_ws_open(ws, srv.port, &o, NULL);
    if (st != 101) {
        print_message("upgrade answered %d\n", st);
        return -1;
    }
    if (ts_game_wait_welcome(ws, g, 5000) != 0) {
        print_message("no WELCOME (closed %d %s)\n", g->close_code, g->close_reason);
        return -1;
    }
    if (ts_game_pump(ws, g, 3000, has_token, sc) != 0) {
        print_message("no SESSION record\n");
        return -1;
    }
    return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static int setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--npcs", "0", "--resume-grace-s", "3", NULL};
    return ts_server_start(&srv, args);
}

static int teardown(void **state)
{
    (void)state;
    return ts_server_stop_checked(&srv);
}

static void test_resume_same_entity_seq_continues(void **state)
{
    (void)state;
    char name[32];
    ts_unique_name("res", name, sizeof name);
    ts_ws ws;
    ts_game g;
    sess_ctx sc;
    assert_int_equal(open_game(name, NULL, &ws, &g, &sc), 0);
    uint32_t entity = g.entity_id;
    for (uint32_t seq = 1; seq <= 5; seq++) {
        assert_int_equal(ts_send_input(&ws, seq, 1.0f, 0.0f), 0);
        assert_int_equal(ts_game_wait_ack(&ws, &g, seq, 2000), 0);
    }
    char tok[2 * PROTO_RESUME_TOKEN_BYTES + 1];
    hex(sc.token, PROTO_RESUME_TOKEN_BYTES, tok);
    /* the connection drops: no close handshake */
    ts_ws_close(&ws);
    ts_game_free(&g);
    ts_sleep_ms(500);

    ts_game g2;
    sess_ctx sc2;
    assert_int_equal(open_game(name, tok, &ws, &g2, &sc2), 0);
    assert_int_equal(g2.entity_id, entity); /* the same entity */
    assert_true(sc2.saw_reset || g2.view.flags & PROTO_STATE_RESET);
    assert_int_equal(g2.view.ack_seq, 5); /* the sequence continues */
    assert_true(memcmp(sc.token, sc2.token, PROTO_RESUME_TOKEN_BYTES) != 0); /* rotated */
    /* a replayed input is not applied twice */
    assert_int_equal(ts_send_input(&ws, 5, -1.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_error(&ws, &g2, PROTO_ERR_STALE_SEQ, 2000), 0);
    assert_int_equal(ts_send_input(&ws, 6, 0.0f, 1.0f), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g2, 6, 2000), 0);
    ts_ws_close(&ws);
    ts_game_free(&g2);
}

static void test_second_login_replaces_first(void **state)
{
    (void)state;
    char name[32];
    ts_unique_name("two", name, sizeof name);
    ts_ws a, b;
    ts_game ga, gb;
    sess_ctx sa, sb;
    assert_int_equal(open_game(name, NULL, &a, &ga, &sa), 0);
    assert_int_equal(open_game(name, NULL, &b, &gb, &sb), 0);
    int code = 0;
    char reason[128];
    assert_int_equal(ts_ws_expect_close(&a, 3000, &code, reason, sizeof reason), 4001);
    print_message("older connection closed: %d %s\n", code, reason);
    assert_int_equal(gb.entity_id, ga.entity_id); /* the entity is taken over */
    /* a new client: its own sequence starts at 1 */
    assert_int_equal(ts_send_input(&b, 1, 1.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&b, &gb, 1, 2000), 0);
    ts_ws_close(&a);
    ts_ws_close(&b);
    ts_game_free(&ga);
    ts_game_free(&gb);
}

static void test_grace_expires(void **state)
{
    (void)state;
    char n1[32];
    ts_unique_name("gone", n1, sizeof n1);
    ts_ws a;
    ts_game ga;
    sess_ctx sa;
    assert_int_equal(open_game(n1, NULL, &a, &ga, &sa), 0);
    uint32_t entity = ga.entity_id;
    ts_ws_close(&a);
    ts_game_free(&ga);
    /* within the grace it is still in the world: a takeover finds it */
    ts_sleep_ms(1000);
    ts_game g2;
    sess_ctx s2;
    ts_ws a2;
    assert_int_equal(open_game(n1, NULL, &a2, &g2, &s2), 0);
    assert_int_equal(g2.entity_id, entity);
    ts_ws_close(&a2);
    ts_game_free(&g2);
    /* after the grace (3 s) a new session gets a new entity */
    ts_sleep_ms(4000);
    assert_int_equal(open_game(n1, NULL, &a2, &g2, &s2), 0);
    assert_true(g2.entity_id != entity);
    ts_ws_close(&a2);
    ts_game_free(&g2);
}

int main(void)
{
    ts_watchdog(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_same_entity_seq_continues),
        cmocka_unit_test(test_second_login_replaces_first),
        cmocka_unit_test(test_grace_expires),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ts_finish(failed);
    return failed;
}
