/* test_items.c - items, inventories and chat in shards run in-process
 * over the real bus, with a real SQLite store and the item loader: lazy
 * cell loading, pickup in and out of reach, one winner for an item taken
 * twice at once, drop, a failed commit that changes nothing, pickup of an
 * item across a shard border, and chat delivered within the radius only,
 * in order, across a border, rate-limited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <unistd.h>

#include "sim_harness.h"
#include "store.h"

/* ---- what each session received besides STATE ---- */

#define MAX_SEEN 32
typedef struct seen {
    proto_inventory inv;
    int n_inv;
    proto_result results[MAX_SEEN];
    int n_results;
    proto_chat chats[MAX_SEEN];
    int n_chats;
    int n_bad; /* records that failed to decode */
} seen;

static seen g_seen[H_MAX_SESS];

static void on_record(harness *h, h_sess *s, uint8_t kind, const uint8_t *body, size_t len)
{
    seen *v = &g_seen[s - h->sess];
    if (kind == PROTO_S_INVENTORY) {
        v->n_bad += proto_inventory_decode(&v->inv, body, len) != 0;
        v->n_inv++;
    } else if (kind == PROTO_S_RESULT && v->n_results < MAX_SEEN) {
        v->n_bad += proto_result_decode(&v->results[v->n_results++], body, len) != 0;
    } else if (kind == PROTO_S_CHAT && v->n_chats < MAX_SEEN) {
        v->n_bad += proto_chat_decode(&v->chats[v->n_chats++], body, len) != 0;
    }
}

/* ---- a world: harness + SQLite store + loader ---- */

typedef struct world {
    harness h;
    store *st;
    sim_loader *loader;
    char dir[64];
} world;

static void w_open(world *w, int n_shards)
{
    memset(g_seen, 0, sizeof g_seen);
    h_init(&w->h, n_shards, 0, 1);
    /* no event log here: its own group commits would race the faults these
     * tests inject into "the next commit" (tests/sim/test_replay.c covers
     * the log) */
    w->h.cfg.snapshot_interval_s = 0;
    snprintf(w->dir, sizeof w->dir, "/tmp/tessera-items-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/t.db", w->dir);
    assert_int_equal(store_open(&w->st, url, NULL), STORE_OK);
    int applied;
    assert_int_equal(store_migrate_up(w->st, &applied), STORE_OK);
    assert_int_equal(store_start(w->st), STORE_OK);
    assert_int_equal(sim_loader_create(&w->loader, w->st, w->h.b), 0);
    h_start(&w->h);
    for (int i = 0; i < n_shards; i++) {
        sim_shard_set_store(w->h.shards[i], w->st);
        sim_shard_set_loader(w->h.shards[i], w->loader, w->h.m);
    }
    w->h.on_record = on_record;
}

static void w_close(world *w)
{
    sim_loader_destroy(w->loader);
    h_free(&w->h);
    store_close(w->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    assert_int_equal(system(cmd), 0);
}

static int64_t w_item(world *w, int kind, int qty, float x, float y)
{
    store_item it = {.cell = spatial_cellmap_cell(&w->h.cells, x, y),
                     .x = x,
                     .y = y,
                     .item_kind = kind,
                     .quantity = qty};
    int64_t id;
    assert_int_equal(store_item_create(w->st, &id, &it), STORE_OK);
    return id;
}

/* Steps until cond holds (the store and loader are other threads). */
static bool w_until(world *w, bool (*cond)(world *w, void *ctx), void *ctx, int max_ticks)
{
    for (int i = 0; i < max_ticks; i++) {
        assert_int_equal(h_step(&w->h), 0);
        if (cond(w, ctx))
            return true;
        usleep(2000);
    }
    return false;
}

static void w_steps(world *w, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(h_step(&w->h), 0);
        usleep(2000);
    }
}

static seen *seen_of(world *w, h_sess *s)
{
    return &g_seen[s - w->h.sess];
}

/* An item entity in s's view (the first with item_kind if kind != 0). */
static uint32_t view_item(const h_sess *s, int kind)
{
    for (uint32_t i = 0; i < s->view.n_slots; i++) {
        const proto_view_entity *e = &s->view.slots[i];
        if (e->entity_id && e->kind == PROTO_KIND_ITEM && (!kind || e->item_kind == kind))
            return e->entity_id;
    }
    return 0;
}

static bool has_item_and_inv(world *w, void *ctx)
{
    h_sess *s = ctx;
    return view_item(s, 0) && seen_of(w, s)->n_inv > 0;
}

/* Sends one record as the gateway does: the next gseq, to the route. */
static void send_record(world *w, h_sess *s, uint8_t kind, const void *body, size_t len)
{
    core_buf b;
    core_buf_init(&b);
    size_t at;
    proto_bus_records_begin(&b, &at);
    proto_bus_record rec = {s->session_id, s->entity_id, ++s->gseq, kind, (uint16_t)len, body};
    proto_bus_records_add(&b, at, &rec);
    bus_send(w->h.b, BUS_EP_SHARD(s->route), b.data, b.len);
    core_buf_free(&b);
}

static void send_pickup(world *w, h_sess *s, uint32_t req, uint32_t entity)
{
    uint8_t body[8];
    for (int i = 0; i < 4; i++) {
        body[i] = (uint8_t)(req >> (8 * i));
        body[4 + i] = (uint8_t)(entity >> (8 * i));
    }
    send_record(w, s, PROTO_C_PICKUP, body, sizeof body);
}

static void send_drop(world *w, h_sess *s, uint32_t req, uint8_t slot)
{
    uint8_t body[5] = {(uint8_t)req, (uint8_t)(req >> 8), (uint8_t)(req >> 16),
                       (uint8_t)(req >> 24), slot};
    send_record(w, s, PROTO_C_DROP, body, sizeof body);
}

static void send_chat(world *w, h_sess *s, const char *text)
{
    send_record(w, s, PROTO_C_CHAT, text, strlen(text));
}

static const proto_result *result_of(world *w, h_sess *s, uint32_t req)
{
    seen *v = seen_of(w, s);
    for (int i = 0; i < v->n_results; i++)
        if (v->results[i].req == req)
            return &v->results[i];
    return NULL;
}

typedef struct want {
    h_sess *s;
    uint32_t req;
} want;

static bool has_result(world *w, void *ctx)
{
    want *q = ctx;
    return result_of(w, q->s, q->req) != NULL;
}

static const proto_result *wait_result(world *w, h_sess *s, uint32_t req)
{
    want q = {s, req};
    assert_true(w_until(w, has_result, &q, 1500));
    return result_of(w, s, req);
}

static bool joined(world *w, void *ctx)
{
    (void)w;
    h_sess *s = ctx;
    return s->entity_id != 0;
}

/* ---- tests ---- */

static void test_pickup_and_drop(void **state)
{
    (void)state;
    world w;
    w_open(&w, 1);
    w_item(&w, 3, 2, 100.0f, 100.0f);
    h_sess *a = h_join(&w.h, "ada", 110.0f, 100.0f);
    assert_true(w_until(&w, has_item_and_inv, a, 1000)); /* the cell loaded lazily */
    uint32_t item = view_item(a, 3);
    assert_int_equal(seen_of(&w, a)->inv.slots[0].item_kind, 0);

    send_pickup(&w, a, 1, item);
    const proto_result *r = wait_result(&w, a, 1);
    assert_int_equal(r->code, PROTO_ERR_NONE);
    assert_int_equal(r->action, PROTO_ACT_PICKUP);
    assert_int_equal(r->entity_id, item);
    assert_int_equal(r->item_kind, 3);
    assert_int_equal(r->quantity, 2);
    w_steps(&w, 2);
    seen *v = seen_of(&w, a);
    assert_int_equal(v->inv.slots[r->slot].item_kind, 3);
    assert_int_equal(v->inv.slots[r->slot].quantity, 2);
    assert_int_equal(view_item(a, 0), 0); /* gone from the ground */
    /* committed before it was confirmed */
    store_inventory inv;
    assert_int_equal(store_inventory_load(w.st, &inv, 1), STORE_OK);
    assert_int_equal(inv.n, 1);
    assert_int_equal(inv.slots[0].item_kind, 3);

    send_drop(&w, a, 2, r->slot);
    const proto_result *d = wait_result(&w, a, 2);
    assert_int_equal(d->code, PROTO_ERR_NONE);
    assert_int_equal(d->action, PROTO_ACT_DROP);
    assert_int_not_equal(d->entity_id, 0);
    w_steps(&w, 2);
    assert_int_equal(view_item(a, 3), d->entity_id); /* at the player's feet */
    assert_int_equal(seen_of(&w, a)->inv.slots[0].item_kind, 0);
    assert_int_equal(store_inventory_load(w.st, &inv, 1), STORE_OK);
    assert_int_equal(inv.n, 0);
    assert_int_equal(seen_of(&w, a)->n_bad, 0);
    w_close(&w);
}

static void test_refusals(void **state)
{
    (void)state;
    world w;
    w_open(&w, 1);
    w_item(&w, 1, 1, 100.0f, 100.0f);
    h_sess *a = h_join(&w.h, "bob", 150.0f, 100.0f); /* 50 units away: seen, not reachable */
    assert_true(w_until(&w, has_item_and_inv, a, 1000));
    uint32_t item = view_item(a, 1);

    send_pickup(&w, a, 1, item);
    assert_int_equal(wait_result(&w, a, 1)->code, PROTO_ERR_OUT_OF_REACH);
    assert_int_equal(a->last_error, PROTO_ERR_OUT_OF_REACH);
    send_pickup(&w, a, 2, 12345);
    assert_int_equal(wait_result(&w, a, 2)->code, PROTO_ERR_NOT_AN_ITEM);
    send_pickup(&w, a, 3, a->entity_id); /* a player is not an item */
    assert_int_equal(wait_result(&w, a, 3)->code, PROTO_ERR_NOT_AN_ITEM);
    send_drop(&w, a, 4, 5); /* an empty slot */
    assert_int_equal(wait_result(&w, a, 4)->code, PROTO_ERR_BAD_SLOT);
    assert_int_equal(a->last_error, PROTO_ERR_BAD_SLOT);
    w_steps(&w, 2);
    assert_int_equal(view_item(a, 1), item); /* still lying there */
    w_close(&w);
}

static void test_taken_twice_one_wins(void **state)
{
    (void)state;
    world w;
    w_open(&w, 1);
    w_item(&w, 2, 7, 100.0f, 100.0f);
    h_sess *a = h_join(&w.h, "ann", 110.0f, 100.0f);
    h_sess *b = h_join(&w.h, "ben", 90.0f, 100.0f);
    assert_true(w_until(&w, has_item_and_inv, a, 1000));
    assert_true(w_until(&w, has_item_and_inv, b, 1000));
    uint32_t item = view_item(a, 2);
    send_pickup(&w, a, 1, item); /* both in the same tick */
    send_pickup(&w, b, 1, item);
    int ca = wait_result(&w, a, 1)->code, cb = wait_result(&w, b, 1)->code;
    assert_true((ca == 0 && cb == PROTO_ERR_ITEM_GONE) || (cb == 0 && ca == PROTO_ERR_ITEM_GONE));
    store_inventory ia, ib;
    assert_int_equal(store_inventory_load(w.st, &ia, 1), STORE_OK);
    assert_int_equal(store_inventory_load(w.st, &ib, 2), STORE_OK);
    assert_int_equal(ia.n + ib.n, 1);
    w_close(&w);
}

static void test_failed_commit_changes_nothing(void **state)
{
    (void)state;
    world w;
    w_open(&w, 1);
    w_item(&w, 4, 1, 100.0f, 100.0f);
    h_sess *a = h_join(&w.h, "cid", 110.0f, 100.0f);
    assert_true(w_until(&w, has_item_and_inv, a, 1000));
    uint32_t item = view_item(a, 4);
    assert_int_equal(store_fault_set(w.st, STORE_OP_COMMIT, STORE_FAULT_FAIL, 1), STORE_OK);
    send_pickup(&w, a, 1, item);
    const proto_result *r = wait_result(&w, a, 1);
    assert_int_equal(r->code, PROTO_ERR_STORE_UNAVAILABLE);
    assert_true(strlen(r->reason) > 0);
    w_steps(&w, 2);
    assert_int_equal(view_item(a, 4), item); /* restored: nothing was taken */
    assert_int_equal(seen_of(&w, a)->inv.slots[0].item_kind, 0);
    send_pickup(&w, a, 2, item); /* and it can be taken once the store works */
    assert_int_equal(wait_result(&w, a, 2)->code, PROTO_ERR_NONE);
    w_close(&w);
}

static void test_pickup_across_border(void **state)
{
    (void)state;
    world w;
    w_open(&w, 2); /* shard 0: x < 512, shard 1: x >= 512 */
    w_item(&w, 5, 1, 520.0f, 300.0f);
    h_sess *a = h_join(&w.h, "dee", 505.0f, 300.0f);
    assert_int_equal(a->route, 0);
    assert_true(w_until(&w, has_item_and_inv, a, 1000)); /* shard 1's item, as a ghost */
    uint32_t item = view_item(a, 5);
    assert_int_equal(item & 63, 1); /* owned by shard 1 */
    send_pickup(&w, a, 1, item);
    const proto_result *r = wait_result(&w, a, 1);
    assert_int_equal(r->code, PROTO_ERR_NONE);
    assert_int_equal(r->item_kind, 5);
    w_steps(&w, 3);
    assert_int_equal(view_item(a, 5), 0);
    assert_int_equal(seen_of(&w, a)->inv.slots[r->slot].item_kind, 5);
    w_close(&w);
}

static void test_chat_radius_order(void **state)
{
    (void)state;
    world w;
    w_open(&w, 1);
    h_sess *a = h_join(&w.h, "eve", 100.0f, 300.0f);
    h_sess *b = h_join(&w.h, "fay", 160.0f, 300.0f); /* within 100 */
    h_sess *c = h_join(&w.h, "gus", 350.0f, 300.0f); /* beyond */
    assert_true(w_until(&w, joined, c, 100));
    send_chat(&w, a, "hello");
    send_chat(&w, a, "w\xc3\xb6rld");
    send_record(&w, a, PROTO_C_CHAT, "\xff", 1); /* not UTF-8 */
    w_steps(&w, 3);
    seen *sa = seen_of(&w, a), *sb = seen_of(&w, b), *sc = seen_of(&w, c);
    assert_int_equal(sb->n_chats, 2);
    assert_string_equal(sb->chats[0].text, "hello");
    assert_string_equal(sb->chats[1].text, "w\xc3\xb6rld");
    assert_string_equal(sb->chats[0].name, "eve");
    assert_int_equal(sb->chats[0].entity_id, a->entity_id);
    assert_int_equal(sa->n_chats, 2); /* the speaker hears itself */
    assert_int_equal(sc->n_chats, 0);
    assert_int_equal(a->last_error, PROTO_ERR_BAD_TEXT);

    for (int i = 0; i < 7; i++) /* burst of 5, then refused */
        send_chat(&w, b, "spam");
    w_steps(&w, 2);
    assert_int_equal(sa->n_chats, 2 + 5);
    assert_int_equal(b->last_error, PROTO_ERR_CHAT_RATE_LIMITED);
    w_close(&w);
}

static void test_chat_across_border(void **state)
{
    (void)state;
    world w;
    w_open(&w, 2);
    h_sess *a = h_join(&w.h, "hal", 490.0f, 300.0f); /* shard 0 */
    h_sess *b = h_join(&w.h, "ivy", 540.0f, 300.0f); /* shard 1, 50 away */
    h_sess *c = h_join(&w.h, "jo", 630.0f, 300.0f);  /* shard 1, 140 away */
    assert_true(w_until(&w, joined, c, 100));
    assert_int_not_equal(a->route, b->route);
    send_chat(&w, a, "over the border");
    send_chat(&w, b, "and back");
    w_steps(&w, 3);
    seen *sa = seen_of(&w, a), *sb = seen_of(&w, b), *sc = seen_of(&w, c);
    assert_int_equal(sb->n_chats, 2);
    assert_int_equal(sa->n_chats, 2);
    assert_int_equal(sc->n_chats, 1); /* only its neighbour b's line */
    assert_string_equal(sc->chats[0].text, "and back");
    bool a_heard_b = false;
    for (int i = 0; i < sa->n_chats; i++)
        a_heard_b |= strcmp(sa->chats[i].text, "and back") == 0;
    assert_true(a_heard_b);
    w_close(&w);
}

/* The chat bucket keeps its state while it refills and is as good as new
 * once full (the client's on-demand record is freed and made again). */
static void test_chat_bucket_refills(void **state)
{
    (void)state;
    world w;
    w_open(&w, 1);
    h_sess *a = h_join(&w.h, "kim", 100.0f, 300.0f);
    h_sess *b = h_join(&w.h, "lou", 160.0f, 300.0f);
    assert_true(w_until(&w, joined, b, 100));
    seen *sa = seen_of(&w, a);
    int hz = (int)w.h.cfg.tick_hz;
    for (int i = 0; i < 7; i++) /* burst of 5, then refused */
        send_chat(&w, b, "one");
    w_steps(&w, 2);
    assert_int_equal(sa->n_chats, 5);
    assert_int_equal(b->last_error, PROTO_ERR_CHAT_RATE_LIMITED);
    b->last_error = 0;
    w_steps(&w, 2 * hz); /* two lines' worth (one a second) */
    for (int i = 0; i < 3; i++)
        send_chat(&w, b, "two");
    w_steps(&w, 2);
    assert_int_equal(sa->n_chats, 5 + 2);
    assert_int_equal(b->last_error, PROTO_ERR_CHAT_RATE_LIMITED);
    b->last_error = 0;
    w_steps(&w, 6 * hz); /* full again */
    for (int i = 0; i < 5; i++)
        send_chat(&w, b, "three");
    w_steps(&w, 2);
    assert_int_equal(sa->n_chats, 5 + 2 + 5);
    assert_int_equal(b->last_error, 0);
    w_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pickup_and_drop),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_taken_twice_one_wins),
        cmocka_unit_test(test_failed_commit_changes_nothing),
        cmocka_unit_test(test_pickup_across_border),
        cmocka_unit_test(test_chat_radius_order),
        cmocka_unit_test(test_chat_bucket_refills),
        cmocka_unit_test(test_chat_across_border),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
