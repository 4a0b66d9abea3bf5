/* test_store_queue.c - the store thread, the same cases on SQLite and on
 * PostgreSQL: one-transaction flushes, coalescing, completions only after
 * commit, back-pressure, injected commit failures, the database going away
 * and coming back, and kill -9 in the middle of the writes. */
#include "store_fixture.h"

#include <signal.h>
#include <sys/wait.h>

static store_opts quick_opts(void)
{
    store_opts o;
    store_opts_default(&o);
    o.flush_interval_ms = 200;
    o.reliable_timeout_ms = 1000;
    o.retry_max_ms = 200;
    return o;
}

static store_player player(int64_t id, int64_t version)
{
    return (store_player){.account_id = id,
                          .x = (double)id * 0.5 + (double)version,
                          .y = -(double)id,
                          .hp = (int32_t)(id % 100),
                          .version = version,
                          .last_seen_s = 1700000000 + version};
}

static void test_flush_of_10k_players_is_one_transaction(void **state)
{
    fx *f = *state;
    store_opts o = quick_opts();
    o.flush_interval_ms = 60000; /* only the explicit flush below */
    o.max_dirty_players = 20000;
    store *s = fx_open(f, &o);
    assert_int_equal(store_start(s), STORE_OK);
    for (int64_t id = 1; id <= 10000; id++) {
        store_player p = player(id, 1);
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
    }
    assert_int_equal(store_dirty_count(s), 10000);
    assert_int_equal(store_flush(s, 30000), STORE_OK);
    assert_int_equal(store_dirty_count(s), 0);
    assert_int_equal(fx_counter(f, "tessera_store_flushes_total"), 1);
    assert_int_equal(fx_counter(f, "tessera_store_rows_flushed_total"), 10000);
    store *r = fx_open_fresh(f);
    for (int64_t id = 1; id <= 10000; id++) {
        store_player got, want = player(id, 1);
        assert_int_equal(store_player_load(r, &got, id), STORE_OK);
        assert_true(got.x == want.x && got.y == want.y);
        assert_int_equal(got.hp, want.hp);
        assert_int_equal(got.version, 1);
        assert_int_equal(got.last_seen_s, want.last_seen_s);
    }
    store_close(r);
}

static void test_player_states_coalesce_latest_wins(void **state)
{
    fx *f = *state;
    store_opts o = quick_opts();
    o.flush_interval_ms = 60000;
    store *s = fx_open(f, &o);
    assert_int_equal(store_start(s), STORE_OK);
    for (int64_t v = 1; v <= 100; v++) {
        store_player p = player(5, v);
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
        p = player(6, v);
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
    }
    assert_int_equal(store_dirty_count(s), 2);
    /* Before the flush, a load sees the pending state, not the database. */
    store_player got;
    assert_int_equal(store_player_load(s, &got, 5), STORE_OK);
    assert_int_equal(got.version, 100);
    assert_int_equal(store_flush(s, 10000), STORE_OK);
    assert_int_equal(fx_counter(f, "tessera_store_rows_flushed_total"), 2);
    store *r = fx_open_fresh(f);
    assert_int_equal(store_player_load(r, &got, 5), STORE_OK);
    assert_int_equal(got.version, 100);
    assert_true(got.x == player(5, 100).x);
    store_close(r);
}

static void test_inventory_change_confirmed_only_after_commit(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t item;
    store_item it = {.cell = 3, .x = 1, .y = 2, .item_kind = 77, .quantity = 5};
    assert_int_equal(store_item_create(s, &item, &it), STORE_OK);
    assert_int_equal(store_start(s), STORE_OK);
    /* The commit is held 300 ms: no completion may show up before it. */
    assert_int_equal(store_fault_set(s, STORE_OP_COMMIT, STORE_FAULT_SLOW, 1), STORE_OK);
    store_action take = {.kind = STORE_ACT_ITEM_TAKE, .account_id = 9, .slot = 4, .item_id = item};
    assert_int_equal(store_submit(s, 2, 1001, &take), STORE_OK);
    store_completion c;
    assert_int_equal(fx_wait_completion(s, 2, &c, 150), -1);
    assert_int_equal(fx_wait_completion(s, 2, &c, 5000), 0);
    assert_int_equal(c.token, 1001);
    assert_int_equal(c.status, STORE_OK);
    assert_int_equal(c.id, item);
    assert_int_equal(c.item_kind, 77);
    assert_int_equal(c.quantity, 5);
    /* Confirmed means stored: another connection sees it. */
    store *r = fx_open_fresh(f);
    store_inventory inv;
    assert_int_equal(store_inventory_load(r, &inv, 9), STORE_OK);
    assert_int_equal(inv.n, 1);
    assert_int_equal(inv.slots[0].slot, 4);
    assert_int_equal(inv.slots[0].item_kind, 77);
    store_item *items;
    size_t n;
    assert_int_equal(store_items_by_cell(r, &items, &n, 3), STORE_OK);
    assert_int_equal(n, 0);
    free(items);
    /* Taking it again is a conflict with a reason, nothing changes. */
    take.slot = 5;
    assert_int_equal(store_submit(s, 2, 1002, &take), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 2, &c, 5000), 0);
    assert_int_equal(c.status, STORE_ERR_CONFLICT);
    assert_non_null(strstr(c.reason, "gone"));
    /* Put it back down: a new world item; then a plain slot change. */
    store_action put = {
        .kind = STORE_ACT_ITEM_PUT, .account_id = 9, .slot = 4, .cell = 3, .x = 8, .y = 9};
    store_action set = {
        .kind = STORE_ACT_INV_SET, .account_id = 9, .slot = 0, .item_kind = 5, .quantity = 2};
    assert_int_equal(store_submit(s, 2, 1003, &put), STORE_OK);
    assert_int_equal(store_submit(s, 2, 1004, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 2, &c, 5000), 0);
    assert_int_equal(c.token, 1003);
    assert_int_equal(c.status, STORE_OK);
    assert_true(c.id > item);
    assert_int_equal(fx_wait_completion(s, 2, &c, 5000), 0);
    assert_int_equal(c.token, 1004);
    assert_int_equal(c.status, STORE_OK);
    assert_int_equal(store_inventory_load(r, &inv, 9), STORE_OK);
    assert_int_equal(inv.n, 1);
    assert_int_equal(inv.slots[0].slot, 0);
    assert_int_equal(inv.slots[0].quantity, 2);
    /* The store's own cached inventory was dropped on commit. */
    assert_int_equal(store_inventory_load(s, &inv, 9), STORE_OK);
    assert_int_equal(inv.n, 1);
    assert_int_equal(store_items_by_cell(r, &items, &n, 3), STORE_OK);
    assert_int_equal(n, 1);
    assert_true(items[0].x == 8);
    free(items);
    store_close(r);
}

static void test_queue_full_is_an_immediate_error(void **state)
{
    fx *f = *state;
    store_opts o = quick_opts();
    o.queue_capacity = 4;
    o.max_dirty_players = 3;
    store *s = fx_open(f, &o);
    assert_int_equal(store_start(s), STORE_OK);
    store_action ev = {.kind = STORE_ACT_EVENT, .cell = 1, .tick = 1, .data = "abc", .len = 3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_submit(s, 0, (uint64_t)i, &ev), STORE_OK);
    uint64_t t0 = core_now_ms();
    assert_int_equal(store_submit(s, 0, 99, &ev), STORE_ERR_FULL);
    assert_true(core_now_ms() - t0 < 50);
    assert_non_null(strstr(store_errmsg(s), "full"));
    store_completion c[8];
    size_t got = 0;
    while (got < 4) {
        assert_int_equal(fx_wait_completion(s, 0, &c[got], 5000), 0);
        assert_int_equal(c[got].status, STORE_OK);
        assert_int_equal(c[got].token, got); /* in submit order */
        got++;
    }
    assert_int_equal(store_submit(s, 0, 100, &ev), STORE_OK); /* room again */
    assert_int_equal(fx_wait_completion(s, 0, &c[0], 5000), 0);
    /* The dirty set: a new account is refused, a known one coalesces. */
    for (int64_t id = 1; id <= 3; id++) {
        store_player p = player(id, 1);
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
    }
    store_player p4 = player(4, 1), p1 = player(1, 2);
    assert_int_equal(store_submit_player(s, &p4), STORE_ERR_FULL);
    assert_int_equal(store_submit_player(s, &p1), STORE_OK);
    assert_true(fx_counter(f, "tessera_store_refused_total") == 2);
    assert_int_equal(store_submit(s, STORE_MAX_CQ, 1, &ev), STORE_ERR_ARG);
}

static void test_failed_commit_reports_error_then_retry_succeeds(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    assert_int_equal(store_start(s), STORE_OK);
    assert_int_equal(store_fault_set(s, STORE_OP_COMMIT, STORE_FAULT_FAIL, 1), STORE_OK);
    store_action set = {
        .kind = STORE_ACT_INV_SET, .account_id = 3, .slot = 1, .item_kind = 8, .quantity = 1};
    store_completion c;
    assert_int_equal(store_submit(s, 1, 7, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 1, &c, 5000), 0);
    assert_int_equal(c.status, STORE_ERR_DB);
    assert_non_null(strstr(c.reason, "injected"));
    store *r = fx_open_fresh(f);
    store_inventory inv;
    assert_int_equal(store_inventory_load(r, &inv, 3), STORE_OK);
    assert_int_equal(inv.n, 0); /* rolled back: nothing half-done */
    assert_int_equal(store_submit(s, 1, 8, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 1, &c, 5000), 0);
    assert_int_equal(c.status, STORE_OK);
    assert_int_equal(store_inventory_load(r, &inv, 3), STORE_OK);
    assert_int_equal(inv.n, 1);
    /* A failed fsync is never a confirmation, and never retried blindly:
     * the store stops acknowledging writes, logs and raises the alert. */
    assert_int_equal(store_fault_set(s, STORE_OP_COMMIT, STORE_FAULT_FSYNC, 1), STORE_OK);
    assert_int_equal(store_submit(s, 1, 9, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 1, &c, 5000), 0);
    assert_int_equal(c.status, STORE_ERR_FSYNC);
    assert_non_null(strstr(c.reason, "fsync"));
    assert_true(fx_counter(f, "tessera_store_commit_failures_total") >= 2);
    assert_true(store_is_failed(s));
    assert_int_equal(store_submit(s, 1, 10, &set), STORE_ERR_FSYNC);
    assert_non_null(strstr(store_errmsg(s), "restart needed"));
    store_player p = {.account_id = 3, .x = 1, .y = 2, .hp = 100, .version = 1};
    assert_int_equal(store_submit_player(s, &p), STORE_ERR_FSYNC);
    core_buf mt;
    core_buf_init(&mt);
    core_metrics_render(f->m, &mt);
    core_buf_u8(&mt, 0);
    assert_non_null(strstr((const char *)mt.data, "tessera_store_failed{"));
    assert_non_null(strstr((const char *)mt.data, "} 1\n"));
    core_buf_free(&mt);
    store_close(r);
}

/* An action the database rejects fails alone: the rest of its group
 * transaction still commits (savepoint per action on the retry). */
static void test_bad_action_is_isolated_from_its_batch(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    if (f->is_pg)
        fx_exec_raw(f, "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                       "IF NEW.item_kind = 666 THEN RAISE EXCEPTION 'poisoned row'; END IF; "
                       "RETURN NEW; END $$ LANGUAGE plpgsql; "
                       "CREATE TRIGGER poison BEFORE INSERT ON inventory FOR EACH ROW "
                       "EXECUTE FUNCTION poison();");
    else
        fx_exec_raw(f, "CREATE TRIGGER poison BEFORE INSERT ON inventory "
                       "WHEN NEW.item_kind = 666 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;");
    assert_int_equal(store_start(s), STORE_OK);
    /* Hold the thread on a first action so the next three form one batch. */
    assert_int_equal(store_fault_set(s, STORE_OP_APPLY, STORE_FAULT_SLOW, 1), STORE_OK);
    store_action a = {.kind = STORE_ACT_INV_SET, .account_id = 4, .item_kind = 1, .quantity = 1};
    for (int i = 0; i < 4; i++) {
        a.slot = i;
        a.item_kind = i == 2 ? 666 : 1;
        assert_int_equal(store_submit(s, 0, (uint64_t)i, &a), STORE_OK);
    }
    store_completion c;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx_wait_completion(s, 0, &c, 5000), 0);
        assert_int_equal(c.token, i);
        if (i == 2) {
            assert_int_equal(c.status, STORE_ERR_DB);
            assert_non_null(strstr(c.reason, "poisoned row"));
        } else {
            assert_int_equal(c.status, STORE_OK);
        }
    }
    store *r = fx_open_fresh(f);
    store_inventory inv;
    assert_int_equal(store_inventory_load(r, &inv, 4), STORE_OK);
    assert_int_equal(inv.n, 3);
    assert_int_equal(inv.slots[2].slot, 3);
    store_close(r);
}

/* PostgreSQL is stopped for real; SQLite, being embedded, is made
 * unreachable by fault injection (every call, reconnects included). */
static void take_down(fx *f)
{
    if (f->is_pg)
        assert_int_equal(ts_pg_stop(g_pg), 0);
    else
        assert_int_equal(store_fault_set(f->s, STORE_OP_ANY, STORE_FAULT_DOWN, 1), STORE_OK);
}

static void bring_up(fx *f)
{
    if (f->is_pg)
        assert_int_equal(ts_pg_restart(g_pg), 0);
    else
        assert_int_equal(store_fault_set(f->s, STORE_OP_ANY, STORE_FAULT_NONE, 0), STORE_OK);
}

static void test_database_down_then_back(void **state)
{
    fx *f = *state;
    store_opts o = quick_opts();
    store *s = fx_open(f, &o);
    assert_int_equal(store_start(s), STORE_OK);
    store_action set = {
        .kind = STORE_ACT_INV_SET, .account_id = 1, .slot = 0, .item_kind = 1, .quantity = 1};
    store_completion c;
    assert_int_equal(store_submit(s, 0, 1, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 0, &c, 5000), 0);
    assert_int_equal(c.status, STORE_OK); /* confirmed before the outage */
    take_down(f);
    /* A reliable action gets an error within the bound, never success. */
    uint64_t t0 = core_now_ms();
    set.slot = 1;
    assert_int_equal(store_submit(s, 0, 2, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 0, &c, 5000), 0);
    uint64_t took = core_now_ms() - t0;
    assert_int_equal(c.token, 2);
    assert_true(c.status == STORE_ERR_TIMEOUT);
    assert_non_null(strstr(c.reason, "reliable timeout"));
    assert_true(took >= o.reliable_timeout_ms - 50 && took < o.reliable_timeout_ms + 2500);
    /* Movement keeps being accepted and is retained, not dropped. */
    for (int64_t id = 1; id <= 50; id++) {
        store_player p = player(id, 1);
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
    }
    for (int64_t id = 1; id <= 50; id++) {
        store_player p = player(id, 2);
        assert_int_equal(store_submit_player(s, &p), STORE_OK);
    }
    core_sleep_until_ns(core_now_ns() + 3 * (uint64_t)o.flush_interval_ms * 1000000ull);
    assert_int_equal(store_dirty_count(s), 50);
    bring_up(f);
    /* It reconnects by itself and flushes what it kept. */
    uint64_t deadline = core_now_ms() + 10000;
    while (store_dirty_count(s) > 0 && core_now_ms() < deadline)
        core_sleep_until_ns(core_now_ns() + 50000000ull);
    assert_int_equal(store_dirty_count(s), 0);
    assert_true(fx_counter(f, "tessera_store_reconnects_total") >= 1);
    store_account a; /* the synchronous connection recovers too */
    assert_int_equal(store_account_find(s, &a, "nobody"), STORE_ERR_NOTFOUND);
    set.slot = 2;
    assert_int_equal(store_submit(s, 0, 3, &set), STORE_OK);
    assert_int_equal(fx_wait_completion(s, 0, &c, 5000), 0);
    assert_int_equal(c.status, STORE_OK);
    store *r = fx_open_fresh(f);
    store_player got;
    for (int64_t id = 1; id <= 50; id++) {
        assert_int_equal(store_player_load(r, &got, id), STORE_OK);
        assert_int_equal(got.version, 2);
    }
    store_inventory inv;
    assert_int_equal(store_inventory_load(r, &inv, 1), STORE_OK);
    assert_int_equal(inv.n, 2); /* slots 0 and 2: the confirmed ones, not 1 */
    assert_int_equal(inv.slots[0].slot, 0);
    assert_int_equal(inv.slots[1].slot, 2);
    store_close(r);
}

/* The child takes items and moves; every confirmation and every submitted
 * version goes up the pipe as "T item\n" / "P version\n". */
static _Noreturn void kill_child(const char *url, int fd, int64_t first_item, int n_items)
{
    store_opts o = quick_opts();
    o.max_dirty_players = 10000;
    store *s = NULL;
    if (store_open_opts(&s, url, &o, NULL) != STORE_OK || store_start(s) != STORE_OK)
        _exit(2);
    for (int i = 0; i < n_items; i++) {
        store_action take = {
            .kind = STORE_ACT_ITEM_TAKE, .account_id = 1, .slot = i, .item_id = first_item + i};
        if (store_submit(s, 0, (uint64_t)(first_item + i), &take) != STORE_OK)
            _exit(3);
    }
    char line[64];
    for (int64_t v = 1;; v++) {
        /* Many dirty players make each flush long enough to be hit. */
        for (int64_t id = 1; id <= 3000; id++) {
            store_player p = player(id, v);
            if (store_submit_player(s, &p) != STORE_OK)
                _exit(4);
        }
        int n = snprintf(line, sizeof line, "P %lld\n", (long long)v);
        if (write(fd, line, (size_t)n) != n)
            _exit(5);
        store_completion c;
        while (store_completions_poll(s, 0, &c, 1) == 1) {
            n = c.status == STORE_OK ? snprintf(line, sizeof line, "T %lld\n", (long long)c.id)
                                     : snprintf(line, sizeof line, "E %d\n", c.status);
            if (write(fd, line, (size_t)n) != n)
                _exit(5);
        }
        core_sleep_until_ns(core_now_ns() + 10000000ull);
    }
}

static void test_kill_9_keeps_every_confirmed_change(void **state)
{
    fx *f = *state;
    enum { N_ITEMS = 30 };
    store *s = fx_open(f, NULL);
    int64_t first = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        int64_t id;
        store_item it = {.cell = 9, .item_kind = 200 + i, .quantity = 1};
        assert_int_equal(store_item_create(s, &id, &it), STORE_OK);
        if (i == 0)
            first = id;
        assert_int_equal(id, first + i);
    }
    store_close(f->s);
    f->s = NULL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        kill_child(f->url, fds[1], first, N_ITEMS);
    }
    close(fds[1]);
    /* Read until the flushes are well under way, then kill mid-write. */
    bool confirmed[N_ITEMS] = {false};
    int64_t versions[4096] = {0};
    uint64_t seen_ms[4096] = {0};
    int n_versions = 0, n_confirmed = 0;
    char buf[4096];
    size_t used = 0;
    uint64_t start = core_now_ms(), kill_ms = 0;
    while (!kill_ms) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        assert_true(poll(&p, 1, 5000) == 1);
        ssize_t n = read(fds[0], buf + used, sizeof buf - used - 1);
        assert_true(n > 0);
        used += (size_t)n;
        buf[used] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            long long v;
            if (sscanf(line, "T %lld", &v) == 1) {
                assert_true(v >= first && v < first + N_ITEMS);
                confirmed[v - first] = true;
                n_confirmed++;
            } else if (sscanf(line, "P %lld", &v) == 1 && n_versions < 4096) {
                versions[n_versions] = v;
                seen_ms[n_versions++] = core_now_ms();
            } else {
                fail_msg("child: %s", line);
            }
            line = nl + 1;
        }
        used = strlen(line);
        memmove(buf, line, used);
        if (n_confirmed == N_ITEMS && core_now_ms() - start > 1500) {
            kill(pid, SIGKILL);
            kill_ms = core_now_ms();
        }
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    close(fds[0]);
    s = fx_open(f, NULL);
    store_inventory inv;
    assert_int_equal(store_inventory_load(s, &inv, 1), STORE_OK);
    int found = 0;
    for (size_t i = 0; i < inv.n; i++) {
        int k = inv.slots[i].item_kind - 200;
        assert_true(k >= 0 && k < N_ITEMS);
        assert_int_equal(inv.slots[i].slot, k);
        found += confirmed[k];
    }
    assert_int_equal(found, n_confirmed);
    /* Positions: no older than a flush interval (200 ms) plus slack. */
    int64_t want = 0;
    for (int i = 0; i < n_versions; i++)
        if (seen_ms[i] + 200 + 400 <= kill_ms)
            want = versions[i];
    assert_true(want > 0);
    store_player got;
    assert_int_equal(store_player_load(s, &got, 2999), STORE_OK);
    assert_true(got.version >= want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flush_of_10k_players_is_one_transaction, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_player_states_coalesce_latest_wins, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_inventory_change_confirmed_only_after_commit, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_is_an_immediate_error, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_reports_error_then_retry_succeeds,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_action_is_isolated_from_its_batch, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_database_down_then_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_kill_9_keeps_every_confirmed_change, fx_setup,
                                        fx_teardown),
    };
    return FX_RUN("store_queue", tests);
}
