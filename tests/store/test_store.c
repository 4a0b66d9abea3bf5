/* test_store.c - the synchronous store API, the same cases on SQLite and
 * on PostgreSQL: migrations, accounts, player round trips, the read cache,
 * items by cell, snapshots and the event log with their checksums, and
 * fault injection at the wrappers. The store thread is in
 * test_store_queue.c. */
#include "store_fixture.h"

#include <math.h>

static void test_migrations_up_and_status_are_idempotent(void **state)
{
    fx *f = *state;
    assert_int_equal(store_open(&f->s, f->url, f->m), STORE_OK);
    int cur = -1, latest = -1, applied = -1;
    assert_int_equal(store_migrate_status(f->s, &cur, &latest), STORE_OK);
    assert_int_equal(cur, 0);
    assert_true(latest >= 1);
    assert_int_equal(store_migrate_up(f->s, &applied), STORE_OK);
    assert_int_equal(applied, latest);
    assert_int_equal(store_migrate_status(f->s, &cur, &latest), STORE_OK);
    assert_int_equal(cur, latest);
    assert_int_equal(store_migrate_up(f->s, &applied), STORE_OK);
    assert_int_equal(applied, 0);
    /* Another handle (another process, in effect) sees the same version. */
    store *o = fx_open_fresh(f);
    assert_int_equal(store_migrate_up(o, &applied), STORE_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(store_migrate_status(o, &cur, &latest), STORE_OK);
    assert_int_equal(cur, latest);
    store_close(o);
}

static void test_account_username_is_unique(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t id = 0, id2 = 0;
    assert_int_equal(store_account_create(s, &id, "alice", "$argon2id$v=19$h1"), STORE_OK);
    assert_true(id > 0);
    assert_int_equal(store_account_create(s, &id2, "alice", "$argon2id$v=19$h2"), STORE_ERR_EXISTS);
    assert_true(strlen(store_errmsg(s)) > 0);
    assert_int_equal(store_account_create(s, &id2, "bob", "h"), STORE_OK);
    assert_true(id2 > id);
    store_account a;
    assert_int_equal(store_account_find(s, &a, "alice"), STORE_OK);
    assert_int_equal(a.id, id);
    assert_string_equal(a.pw_hash, "$argon2id$v=19$h1");
    assert_true(a.created_s > 1700000000);
    assert_int_equal(store_account_find(s, &a, "carol"), STORE_ERR_NOTFOUND);
    char long_name[STORE_USERNAME_MAX + 1];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(store_account_create(s, &id2, long_name, "h"), STORE_ERR_ARG);
    assert_int_equal(store_account_create(s, &id2, "", "h"), STORE_ERR_ARG);
}

static void test_player_save_load_round_trip(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    store_player p = {
        .account_id = 42, .x = 12.5, .y = -3.25, .hp = 80, .version = 3, .last_seen_s = 1700000123};
    store_player got;
    assert_int_equal(store_player_load(s, &got, 42), STORE_ERR_NOTFOUND);
    assert_int_equal(store_player_save(s, &p), STORE_OK);
    store *o = fx_open_fresh(f); /* no cache: the row itself */
    assert_int_equal(store_player_load(o, &got, 42), STORE_OK);
    assert_int_equal(got.account_id, 42);
    assert_true(got.x == 12.5 && got.y == -3.25);
    assert_int_equal(got.hp, 80);
    assert_int_equal(got.version, 3);
    assert_int_equal(got.last_seen_s, 1700000123);
    /* Exact doubles survive (PostgreSQL goes through text). */
    p.x = 0.1 + 0.2;
    p.y = 1e-300;
    p.version = 4;
    assert_int_equal(store_player_save(s, &p), STORE_OK);
    assert_int_equal(store_player_load(o, &got, 42), STORE_OK);
    assert_true(got.x == p.x && got.y == p.y);
    /* A lower version never replaces a stored row. */
    store_player old = p;
    old.version = 2;
    old.x = 999;
    assert_int_equal(store_player_save(s, &old), STORE_OK);
    assert_int_equal(store_player_load(o, &got, 42), STORE_OK);
    assert_int_equal(got.version, 4);
    assert_true(got.x == p.x);
    p.x = NAN;
    assert_int_equal(store_player_save(s, &p), STORE_ERR_ARG);
    assert_int_equal(store_player_load(s, &got, 0), STORE_ERR_ARG);
    store_close(o);
}

/* A whole login (account, player, inventory) served by the cache does not
 * touch the database: it still works with the database "down". */
static void test_cached_login_does_not_touch_database(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t id;
    assert_int_equal(store_account_create(s, &id, "dave", "hash"), STORE_OK);
    store_player p = {.account_id = id, .x = 1, .y = 2, .hp = 100, .version = 1};
    assert_int_equal(store_player_save(s, &p), STORE_OK);
    store_account a;
    store_player got;
    store_inventory inv;
    assert_int_equal(store_account_find(s, &a, "dave"), STORE_OK);
    assert_int_equal(store_player_load(s, &got, id), STORE_OK);
    assert_int_equal(store_inventory_load(s, &inv, id), STORE_OK);
    uint64_t misses = fx_counter(f, "tessera_store_cache_misses_total");
    uint64_t hits = fx_counter(f, "tessera_store_cache_hits_total");
    assert_int_equal(misses, 3);
    assert_int_equal(store_fault_set(s, STORE_OP_ANY, STORE_FAULT_DOWN, 1), STORE_OK);
    assert_int_equal(store_account_find(s, &a, "dave"), STORE_OK);
    assert_int_equal(a.id, id);
    assert_int_equal(store_player_load(s, &got, id), STORE_OK);
    assert_true(got.x == 1 && got.y == 2);
    assert_int_equal(store_inventory_load(s, &inv, id), STORE_OK);
    assert_int_equal(inv.n, 0);
    assert_int_equal(fx_counter(f, "tessera_store_cache_hits_total"), hits + 3);
    assert_int_equal(fx_counter(f, "tessera_store_cache_misses_total"), misses);
    /* An uncached account does reach the (down) database. */
    assert_int_equal(store_account_find(s, &a, "erin"), STORE_ERR_DOWN);
    assert_non_null(strstr(store_errmsg(s), "unreachable"));
    assert_int_equal(store_fault_set(s, STORE_OP_ANY, STORE_FAULT_NONE, 0), STORE_OK);
    assert_int_equal(store_account_find(s, &a, "erin"), STORE_ERR_NOTFOUND);
    /* A save updates the cached copy. */
    p.x = 7;
    p.version = 2;
    assert_int_equal(store_player_save(s, &p), STORE_OK);
    assert_int_equal(store_player_load(s, &got, id), STORE_OK);
    assert_true(got.x == 7);
}

static void test_items_are_loaded_by_cell(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        store_item it = {
            .cell = i % 2 ? 11 : 10, .x = i, .y = -i, .item_kind = 100 + i, .quantity = i + 1};
        assert_int_equal(store_item_create(s, &ids[i], &it), STORE_OK);
    }
    store_item *items;
    size_t n;
    assert_int_equal(store_items_by_cell(s, &items, &n, 10), STORE_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(items[i].id, ids[2 * i]);
        assert_int_equal(items[i].cell, 10);
        assert_int_equal(items[i].item_kind, 100 + 2 * (int)i);
        assert_true(items[i].x == 2.0 * (double)i);
    }
    free(items);
    assert_int_equal(store_items_by_cell(s, &items, &n, 99), STORE_OK);
    assert_int_equal(n, 0);
    free(items);
    store_item bad = {.cell = 1, .quantity = 0};
    int64_t id;
    assert_int_equal(store_item_create(s, &id, &bad), STORE_ERR_ARG);
}

static void test_snapshot_bad_checksum_falls_back_to_previous(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    uint8_t a[300], b[5000];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)(i * 7);
    assert_int_equal(store_snapshot_write(s, 7, 100, a, sizeof a), STORE_OK);
    assert_int_equal(store_snapshot_write(s, 7, 200, b, sizeof b), STORE_OK);
    assert_int_equal(store_snapshot_write(s, 8, 300, b, 10), STORE_OK);
    int64_t tick;
    uint8_t *data;
    size_t len;
    int refused;
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 7), STORE_OK);
    assert_int_equal(tick, 200);
    assert_int_equal(refused, 0);
    assert_int_equal(len, sizeof b);
    assert_memory_equal(data, b, sizeof b);
    free(data);
    /* Corrupt the newest: it is refused and the previous one returned. */
    fx_exec_raw(f, "UPDATE cell_snapshots SET checksum = CASE WHEN checksum > 0 THEN "
                   "checksum - 1 ELSE checksum + 1 END WHERE cell = 7 AND tick = 200");
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 7), STORE_OK);
    assert_int_equal(tick, 100);
    assert_int_equal(refused, 1);
    assert_int_equal(len, sizeof a);
    assert_memory_equal(data, a, sizeof a);
    free(data);
    assert_int_equal(fx_counter(f, "tessera_store_checksum_failures_total"), 1);
    /* All corrupt: refused with a clear error, nothing returned. */
    fx_exec_raw(f, "UPDATE cell_snapshots SET tick = 101 WHERE cell = 7 AND tick = 100");
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 7),
                     STORE_ERR_CHECKSUM);
    assert_null(data);
    assert_int_equal(refused, 2);
    assert_non_null(strstr(store_errmsg(s), "checksum mismatch"));
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 9),
                     STORE_ERR_NOTFOUND);
    /* An empty snapshot is valid. */
    assert_int_equal(store_snapshot_write(s, 9, 1, NULL, 0), STORE_OK);
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 9), STORE_OK);
    assert_int_equal(len, 0);
    free(data);
}

static void test_events_append_and_read_in_order(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t seqs[6];
    for (int i = 0; i < 6; i++) {
        char payload[32];
        int n = snprintf(payload, sizeof payload, "event-%d", i);
        store_event ev = {.tick = 10 + i,
                          .cell = i % 2 ? 4 : 3,
                          .entity = 500 + i,
                          .kind = i,
                          .payload = (uint8_t *)payload,
                          .len = (size_t)n};
        assert_int_equal(store_event_append(s, &seqs[i], &ev), STORE_OK);
        if (i)
            assert_true(seqs[i] > seqs[i - 1]);
    }
    store_event *ev;
    size_t n;
    assert_int_equal(store_events_read(s, &ev, &n, 3, 0, 100), STORE_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "event-%zu", 2 * i);
        assert_int_equal(ev[i].seq, seqs[2 * i]);
        assert_int_equal(ev[i].tick, 10 + 2 * (int)i);
        assert_int_equal(ev[i].entity, 500 + 2 * (int)i);
        assert_int_equal(ev[i].len, strlen(want));
        assert_memory_equal(ev[i].payload, want, ev[i].len);
    }
    store_events_free(ev, n);
    assert_int_equal(store_events_read(s, &ev, &n, 3, seqs[2], 100), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].seq, seqs[4]);
    store_events_free(ev, n);
    assert_int_equal(store_events_read(s, &ev, &n, 4, 0, 2), STORE_OK);
    assert_int_equal(n, 2);
    store_events_free(ev, n);
    /* A corrupted record makes the read fail: a log with a hole is never
     * replayed silently. */
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE events SET entity = 9 WHERE seq = %lld", (long long)seqs[3]);
    fx_exec_raw(f, sql);
    assert_int_equal(store_events_read(s, &ev, &n, 4, 0, 100), STORE_ERR_CHECKSUM);
    assert_null(ev);
    assert_non_null(strstr(store_errmsg(s), "checksum mismatch"));
    assert_int_equal(store_events_read(s, &ev, &n, 4, seqs[3], 100), STORE_OK);
    assert_int_equal(n, 1);
    store_events_free(ev, n);
}

/* Retention: the store thread keeps each cell's newest keep_snapshots
 * snapshots and drops the log records older than the oldest kept one;
 * cells without a snapshot keep their log. */
static void test_retention_prunes_old_snapshots_and_log(void **state)
{
    fx *f = *state;
    store_opts o;
    store_opts_default(&o);
    o.prune_interval_ms = 50;
    o.flush_interval_ms = 20;
    o.keep_snapshots = 2;
    store *s = fx_open(f, &o);
    for (int t = 10; t <= 50; t += 10)
        assert_int_equal(store_snapshot_write(s, 7, t, "snap", 4), STORE_OK);
    for (int t = 5; t <= 55; t += 5) {
        store_event ev7 = {.tick = t, .cell = 7, .kind = 1, .payload = (uint8_t *)"e", .len = 1};
        store_event ev8 = {.tick = t, .cell = 8, .kind = 1, .payload = (uint8_t *)"e", .len = 1};
        int64_t seq;
        assert_int_equal(store_event_append(s, &seq, &ev7), STORE_OK);
        assert_int_equal(store_event_append(s, &seq, &ev8), STORE_OK);
    }
    assert_int_equal(store_start(s), STORE_OK);
    /* a pass runs after a flush once the period is over */
    store_player p = {.account_id = 1, .x = 1, .y = 1, .hp = 100, .version = 1};
    for (int i = 0; i < 10; i++) {
        p.version = i + 1;
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
        assert_int_equal(store_flush(s, 2000), STORE_OK);
        usleep(30000);
    }
    store_event *ev;
    size_t n;
    assert_int_equal(store_events_read(s, &ev, &n, 7, 0, 100), STORE_OK);
    assert_int_equal(n, 4); /* ticks 40, 45, 50 and 55 */
    for (size_t i = 0; i < n; i++)
        assert_true(ev[i].tick >= 40);
    store_events_free(ev, n);
    assert_int_equal(store_events_read(s, &ev, &n, 8, 0, 100), STORE_OK);
    assert_int_equal(n, 11); /* no snapshot: every record kept */
    store_events_free(ev, n);
    int64_t tick;
    uint8_t *data;
    size_t len;
    int refused;
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 7), STORE_OK);
    assert_int_equal(tick, 50);
    free(data);
    /* only the two newest remain: corrupting the newest falls back to 40,
     * and nothing older is there */
    fx_exec_raw(f, "UPDATE cell_snapshots SET checksum = checksum + 1 WHERE tick = 50");
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 7), STORE_OK);
    assert_int_equal(tick, 40);
    free(data);
    fx_exec_raw(f, "UPDATE cell_snapshots SET checksum = checksum + 1 WHERE tick = 40");
    assert_int_equal(store_snapshot_read_latest(s, &tick, &data, &len, &refused, 7),
                     STORE_ERR_CHECKSUM);
}

static void test_fault_injection_at_the_wrappers(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t id;
    assert_int_equal(store_account_create(s, &id, "frank", "h"), STORE_OK);
    store_account a;
    /* FAIL: exactly the 2nd call fails, without reaching the database. */
    assert_int_equal(store_fault_set(s, STORE_OP_EVENTS, STORE_FAULT_FAIL, 2), STORE_OK);
    store_event ev = {.tick = 1, .cell = 1, .payload = (uint8_t *)"x", .len = 1};
    int64_t seq;
    assert_int_equal(store_event_append(s, &seq, &ev), STORE_OK);
    assert_int_equal(store_event_append(s, &seq, &ev), STORE_ERR_DB);
    assert_non_null(strstr(store_errmsg(s), "injected"));
    assert_int_equal(store_event_append(s, &seq, &ev), STORE_OK);
    store_event *evs;
    size_t n;
    assert_int_equal(store_events_read(s, &evs, &n, 1, 0, 10), STORE_OK);
    assert_int_equal(n, 2);
    store_events_free(evs, n);
    /* SLOW: the call is delayed, then succeeds. */
    assert_int_equal(store_fault_set(s, STORE_OP_ACCOUNT_FIND, STORE_FAULT_SLOW, 1), STORE_OK);
    uint64_t t0 = core_now_ms();
    assert_int_equal(store_account_find(s, &a, "frank"), STORE_OK);
    assert_true(core_now_ms() - t0 >= STORE_FAULT_SLOW_MS);
    /* FSYNC: the write happened but is reported as failed. */
    assert_int_equal(store_fault_set(s, STORE_OP_ITEMS, STORE_FAULT_FSYNC, 1), STORE_OK);
    store_item it = {.cell = 5, .quantity = 1};
    assert_int_equal(store_item_create(s, &id, &it), STORE_ERR_FSYNC);
    assert_non_null(strstr(store_errmsg(s), "fsync"));
    store_item *items;
    assert_int_equal(store_items_by_cell(s, &items, &n, 5), STORE_OK);
    assert_int_equal(n, 1);
    free(items);
    /* ... and from then on writes are refused (reads still work) */
    assert_true(store_is_failed(s));
    assert_int_equal(store_item_create(s, &id, &it), STORE_ERR_FSYNC);
    assert_non_null(strstr(store_errmsg(s), "restart needed"));
    assert_int_equal(store_fault_set(s, 99, STORE_FAULT_FAIL, 1), STORE_ERR_ARG);
    assert_int_equal(store_fault_set(s, STORE_OP_EVENTS, STORE_FAULT_FAIL, 0), STORE_ERR_ARG);
}

static void test_open_rejects_unknown_urls(void **state)
{
    (void)state;
    store *s = (store *)1;
    assert_int_equal(store_open(&s, "mysql://localhost/x", NULL), STORE_ERR_URL);
    assert_null(s);
    assert_non_null(strstr(store_errmsg(NULL), "scheme"));
    assert_int_equal(store_open(&s, "sqlite:", NULL), STORE_ERR_URL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_up_and_status_are_idempotent, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_account_username_is_unique, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_player_save_load_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cached_login_does_not_touch_database, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_items_are_loaded_by_cell, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_bad_checksum_falls_back_to_previous, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_events_append_and_read_in_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_prunes_old_snapshots_and_log, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection_at_the_wrappers, fx_setup,
                                        fx_teardown),
        cmocka_unit_test(test_open_rejects_unknown_urls),
    };
    return FX_RUN("store", tests);
}
