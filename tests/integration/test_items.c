/* test_items.c - items, inventory and chat against a real `tessera serve`
 * with its own data folder (SQLite):
 *  - a client picks up items and gets confirmations; the server is killed
 *    with SIGKILL and restarted: every confirmed item is in the inventory
 *    and gone from the ground, and nothing exists twice;
 *  - two clients chat: each line reaches both, in order, and bad text is
 *    refused with ERROR bad_text.
 * Client records are encoded by hand from docs/protocol.md; server records
 * are decoded with proto.h. */
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

#include "pg_server.h"
#include "tclient.h"

static char data_dir[64];
static char data_arg[80];
static char items_path[96];
static char items_arg[120];
static char store_arg[300]; /* "" for SQLite in data_dir, else --store-url=... */

/* ---- records the pump does not keep ---- */

typedef struct extra {
    proto_inventory inv;
    int n_inv;
    proto_result results[32];
    int n_results;
    proto_chat chats[32];
    int n_chats;
    int n_bad;
} extra;

static void on_record(void *ctx, uint8_t kind, const uint8_t *body, size_t len)
{
    extra *x = ctx;
    if (kind == PROTO_S_INVENTORY) {
        x->n_bad += proto_inventory_decode(&x->inv, body, len) != 0;
        x->n_inv++;
    } else if (kind == PROTO_S_RESULT && x->n_results < 32) {
        x->n_bad += proto_result_decode(&x->results[x->n_results++], body, len) != 0;
    } else if (kind == PROTO_S_CHAT && x->n_chats < 32) {
        x->n_bad += proto_chat_decode(&x->chats[x->n_chats++], body, len) != 0;
    }
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

static int send_chat(ts_ws *ws, const char *text)
{
    uint8_t m[256];
    size_t n = strlen(text);
    m[0] = PROTO_C_CHAT;
    m[1] = (uint8_t)n; /* < 128: a one-byte varint */
    memcpy(m + 2, text, n);
    return ts_ws_send_binary(ws, m, n + 2);
}

static const char *const *server_args(const char *items, const char *const *more)
{
    static const char *args[24];
    int n = 0;
    const char *base[] = {"--npcs", "0",         "--map-file", "",       "--world-w",
                          "1024",   "--world-h", "1024",       data_arg, items};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        args[n++] = base[i];
    if (store_arg[0])
        args[n++] = store_arg;
    for (int i = 0; more && more[i]; i++)
        args[n++] = more[i];
    args[n] = NULL;
    return args;
}

static void join(ts_server *srv, const char *name, ts_ws *ws, ts_game *g, extra *x)
{
    ts_game_init(g);
    memset(x, 0, sizeof *x);
    g->on_record = on_record;
    g->ctx = x;
    assert_int_equal(ts_game_join(srv->port, name, ws, g, 5000), 0);
}

static void self_pos(const ts_game *g, double *x, double *y)
{
    int k = proto_view_find(&g->view, g->entity_id);
    assert_true(k >= 0);
    *x = g->view.slots[k].x_q / 16.0;
    *y = g->view.slots[k].y_q / 16.0;
}

static int count_items(const ts_game *g, uint32_t *ids, uint8_t *kinds)
{
    int n = 0;
    for (uint32_t i = 0; i < g->view.n_slots; i++) {
        const proto_view_entity *e = &g->view.slots[i];
        if (!e->entity_id || e->kind != PROTO_KIND_ITEM)
            continue;
        if (ids)
            ids[n] = e->entity_id;
        if (kinds)
            kinds[n] = e->item_kind;
        n++;
    }
    return n;
}

static bool five_items_and_inv(const ts_game *g, void *ctx)
{
    const extra *x = ctx;
    return x->n_inv > 0 && count_items(g, NULL, NULL) >= 5;
}

static bool has_inv(const ts_game *g, void *ctx)
{
    (void)g;
    return ((const extra *)ctx)->n_inv > 0;
}

static bool n_results(const ts_game *g, void *ctx)
{
    (void)g;
    const extra *x = ctx;
    return x->n_results >= 3;
}

static void test_confirmed_pickups_survive_kill(void **state)
{
    (void)state;
    ts_server srv;
    char name[32];
    ts_unique_name("item", name, sizeof name);
    ts_ws ws;
    ts_game g;
    extra x;

    /* 1. a world without items: learn where the player stands */
    assert_int_equal(ts_server_start(&srv, server_args("--items-file=", NULL)), 0);
    join(&srv, name, &ws, &g, &x);
    double px, py;
    self_pos(&g, &px, &py);
    assert_int_equal(ts_game_pump(&ws, &g, 3000, has_inv, &x), 0); /* sent on entering */
    assert_int_equal(x.inv.slots[0].item_kind, 0);
    ts_ws_send_close(&ws, 1000, "bye");
    ts_ws_expect_close(&ws, 2000, NULL, NULL, 0);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);

    /* 2. seed five items of kinds 1..5 within reach of that spot */
    FILE *f = fopen(items_path, "w");
    assert_non_null(f);
    for (int i = 0; i < 5; i++)
        fprintf(f, "item %d %.1f %.1f %d\n", i + 1, fmin(fmax(px + 4.0 * (i - 2), 1), 1020),
                fmin(fmax(py + 6.0, 1), 1020), 10 + i);
    fclose(f);
    assert_int_equal(ts_server_start(&srv, server_args(items_arg, NULL)), 0);
    join(&srv, name, &ws, &g, &x);
    assert_int_equal(ts_game_pump(&ws, &g, 5000, five_items_and_inv, &x), 0);
    uint32_t ids[8];
    uint8_t kinds[8];
    assert_int_equal(count_items(&g, ids, kinds), 5);

    /* 3. three pickups confirmed, two more sent as the server dies */
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(send_pickup(&ws, i + 1, ids[i]), 0);
    assert_int_equal(ts_game_pump(&ws, &g, 5000, n_results, &x), 0);
    bool confirmed[256] = {false};
    for (int i = 0; i < x.n_results; i++) {
        assert_int_equal(x.results[i].code, PROTO_ERR_NONE);
        confirmed[x.results[i].item_kind] = true;
    }
    send_pickup(&ws, 4, ids[3]);
    send_pickup(&ws, 5, ids[4]);
    kill(srv.pid, SIGKILL);
    int st;
    waitpid(srv.pid, &st, 0);
    srv.pid = 0;
    assert_int_equal(x.n_bad, 0);
    ts_ws_close(&ws);
    ts_game_free(&g);

    /* 4. back: confirmed ones carried, none on the ground, none twice */
    assert_int_equal(ts_server_start(&srv, server_args(items_arg, NULL)), 0);
    join(&srv, name, &ws, &g, &x);
    assert_int_equal(ts_game_pump(&ws, &g, 3000, five_items_and_inv, &x), 1); /* not all back */
    assert_true(x.n_inv > 0);
    int carried = 0, lying = count_items(&g, ids, kinds);
    bool held[256] = {false};
    for (int s = 0; s < PROTO_INV_SLOTS; s++)
        if (x.inv.slots[s].item_kind) {
            held[x.inv.slots[s].item_kind] = true;
            assert_int_equal(x.inv.slots[s].quantity, 10 + x.inv.slots[s].item_kind - 1);
            carried++;
        }
    for (int k = 1; k <= 5; k++)
        if (confirmed[k])
            assert_true(held[k]);
    for (int i = 0; i < lying; i++)
        assert_false(held[kinds[i]]);
    print_message("carried %d, lying %d, confirmed before the kill 3\n", carried, lying);
    assert_int_equal(carried + lying, 5);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
}

/* Pumps until the client holds `want` RESULT records or timeout_ms. */
static int wait_results(ts_ws *ws, ts_game *g, extra *x, int want, int timeout_ms)
{
    uint64_t t0 = ts_now_ms();
    while (x->n_results < want && ts_now_ms() - t0 < (uint64_t)timeout_ms)
        if (ts_game_pump(ws, g, 100, NULL, NULL) < 0)
            return -1;
    return x->n_results >= want ? 0 : -1;
}

/* On PostgreSQL: a confirmed pickup; the database goes down and a pickup
 * is refused with a reason while the item stays on the ground; it comes
 * back and the same pickup succeeds; kill -9: both confirmed items are
 * carried after the restart. */
static void test_pickups_postgres_down_and_kill(void **state)
{
    (void)state;
    if (!ts_pg_available()) {
        print_message("PostgreSQL binaries missing: scripts/install-deps.sh test installs them\n");
        fail();
    }
    ts_pg *pg = ts_pg_start();
    assert_non_null(pg);
    char url[256];
    assert_int_equal(ts_pg_createdb(pg, "tessera_items", url, sizeof url), 0);
    snprintf(store_arg, sizeof store_arg, "--store-url=%s", url);

    ts_server srv;
    char name[32];
    ts_unique_name("pgitem", name, sizeof name);
    ts_ws ws;
    ts_game g;
    extra x;
    assert_int_equal(ts_server_start(&srv, server_args("--items-file=", NULL)), 0);
    join(&srv, name, &ws, &g, &x);
    double px, py;
    self_pos(&g, &px, &py);
    ts_ws_send_close(&ws, 1000, "bye");
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
    FILE *f = fopen(items_path, "w");
    assert_non_null(f);
    for (int i = 0; i < 5; i++)
        fprintf(f, "item %d %.1f %.1f %d\n", i + 1, fmin(fmax(px + 4.0 * (i - 2), 1), 1020),
                fmin(fmax(py + 6.0, 1), 1020), 10 + i);
    fclose(f);
    assert_int_equal(ts_server_start(&srv, server_args(items_arg, NULL)), 0);
    join(&srv, name, &ws, &g, &x);
    assert_int_equal(ts_game_pump(&ws, &g, 5000, five_items_and_inv, &x), 0);
    uint32_t ids[8];
    uint8_t kinds[8];
    assert_int_equal(count_items(&g, ids, kinds), 5);

    assert_int_equal(send_pickup(&ws, 1, ids[0]), 0);
    assert_int_equal(wait_results(&ws, &g, &x, 1, 5000), 0);
    assert_int_equal(x.results[0].code, PROTO_ERR_NONE);

    assert_int_equal(ts_pg_stop(pg), 0);
    assert_int_equal(send_pickup(&ws, 2, ids[1]), 0);
    assert_int_equal(wait_results(&ws, &g, &x, 2, 15000), 0);
    print_message("pickup with the database down: code %u \"%s\"\n", x.results[1].code,
                  x.results[1].reason);
    assert_true(x.results[1].code != PROTO_ERR_NONE);
    assert_true(x.results[1].reason[0] != 0);
    ts_game_pump(&ws, &g, 300, NULL, NULL);
    assert_int_equal(count_items(&g, NULL, NULL), 4); /* still on the ground */

    assert_int_equal(ts_pg_restart(pg), 0);
    int tries = 0;
    do {
        tries++;
        assert_int_equal(send_pickup(&ws, 2 + (uint32_t)tries, ids[1]), 0);
        assert_int_equal(wait_results(&ws, &g, &x, 2 + tries, 15000), 0);
    } while (x.results[1 + tries].code != PROTO_ERR_NONE && tries < 5);
    print_message("pickup after the database returned: ok after %d tries\n", tries);
    assert_int_equal(x.results[1 + tries].code, PROTO_ERR_NONE);

    kill(srv.pid, SIGKILL);
    int st;
    waitpid(srv.pid, &st, 0);
    srv.pid = 0;
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_start(&srv, server_args(items_arg, NULL)), 0);
    join(&srv, name, &ws, &g, &x);
    assert_int_equal(ts_game_pump(&ws, &g, 3000, has_inv, &x), 0);
    ts_game_pump(&ws, &g, 500, NULL, NULL);
    bool held[256] = {false};
    for (int s = 0; s < PROTO_INV_SLOTS; s++)
        held[x.inv.slots[s].item_kind] = true;
    assert_true(held[kinds[0]] && held[kinds[1]]);
    assert_int_equal(count_items(&g, NULL, NULL), 3);
    ts_ws_close(&ws);
    ts_game_free(&g);
    assert_int_equal(ts_server_stop(&srv), 0);
    store_arg[0] = 0;
    ts_pg_destroy(pg);
}

/* Walks to the middle of the small chat world and stops. */
static void walk_to_middle(ts_ws *ws, ts_game *g)
{
    double x, y;
    self_pos(g, &x, &y);
    double dx = 128 - x, dy = 128 - y, d = sqrt(dx * dx + dy * dy);
    if (d < 10)
        return;
    uint32_t seq = g->view.ack_seq + 1;
    assert_int_equal(ts_send_input(ws, seq, (float)(dx / d), (float)(dy / d)), 0);
    ts_game_pump(ws, g, (int)(d / 200.0 * 1000.0), NULL, NULL);
    assert_int_equal(ts_send_input(ws, seq + 1, 0, 0), 0);
    assert_int_equal(ts_game_wait_ack(ws, g, seq + 1, 2000), 0);
}

static bool two_chats(const ts_game *g, void *ctx)
{
    (void)g;
    return ((const extra *)ctx)->n_chats >= 2;
}

static void test_chat_between_two_clients(void **state)
{
    (void)state;
    /* a small world walked across quickly: both end up within the radius */
    const char *const more[] = {"--world-w", "256", "--world-h",      "256", "--cell-size",  "256",
                                "--shards",  "1",   "--player-speed", "200", "--aoi-radius", "200",
                                NULL};
    ts_server srv;
    assert_int_equal(ts_server_start(&srv, server_args("--items-file=", more)), 0);
    char na[32], nb[32];
    ts_unique_name("chata", na, sizeof na);
    ts_unique_name("chatb", nb, sizeof nb);
    ts_ws wa, wb;
    ts_game ga, gb;
    extra xa, xb;
    join(&srv, na, &wa, &ga, &xa);
    join(&srv, nb, &wb, &gb, &xb);
    walk_to_middle(&wa, &ga);
    walk_to_middle(&wb, &gb);

    assert_int_equal(send_chat(&wa, "hello from a"), 0);
    assert_int_equal(send_chat(&wa, "second line"), 0);
    assert_int_equal(ts_game_pump(&wb, &gb, 3000, two_chats, &xb), 0);
    assert_int_equal(ts_game_pump(&wa, &ga, 3000, two_chats, &xa), 0);
    assert_string_equal(xb.chats[0].text, "hello from a");
    assert_string_equal(xb.chats[1].text, "second line");
    assert_string_equal(xb.chats[0].name, na);
    assert_int_equal(xb.chats[0].entity_id, ga.entity_id);
    assert_string_equal(xa.chats[0].text, "hello from a"); /* echoed to the speaker */

    uint8_t bad[3] = {PROTO_C_CHAT, 1, 0xff}; /* not UTF-8: refused at the gateway */
    assert_int_equal(ts_ws_send_binary(&wb, bad, sizeof bad), 0);
    assert_int_equal(ts_game_wait_error(&wb, &gb, PROTO_ERR_BAD_TEXT, 3000), 0);
    assert_int_equal(xa.n_bad + xb.n_bad, 0);
    ts_ws_close(&wa);
    ts_ws_close(&wb);
    ts_game_free(&ga);
    ts_game_free(&gb);
    assert_int_equal(ts_server_stop(&srv), 0);
}

int main(void)
{
    ts_watchdog(90);
    snprintf(data_dir, sizeof data_dir, "/tmp/tessera-items-XXXXXX");
    if (!mkdtemp(data_dir))
        return 1;
    snprintf(data_arg, sizeof data_arg, "--data-dir=%s", data_dir);
    snprintf(items_path, sizeof items_path, "%s/test.items", data_dir);
    snprintf(items_arg, sizeof items_arg, "--items-file=%s", items_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confirmed_pickups_survive_kill),
        cmocka_unit_test(test_chat_between_two_clients),
        cmocka_unit_test(test_pickups_postgres_down_and_kill),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ts_finish(failed);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        failed++;
    return failed;
}
