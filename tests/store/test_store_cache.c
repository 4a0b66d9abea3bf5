/* test_store_cache.c - the player-record LRU on its own (no database):
 * hits by id and by username, eviction of the least recently used, the
 * version rule for noted states, and fills dropped when the account
 * changed while the loader was reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store_int.h"

static store_account account(int64_t id)
{
    store_account a = {.id = id, .created_s = 1};
    snprintf(a.username, sizeof a.username, "user%lld", (long long)id);
    snprintf(a.pw_hash, sizeof a.pw_hash, "hash%lld", (long long)id);
    return a;
}

static void put_record(store_cache *c, int64_t id)
{
    store_account a = account(id);
    store_player p = {.account_id = id, .x = (double)id, .version = 1};
    store_inventory inv = {.n = 1};
    inv.slots[0].slot = 3;
    inv.slots[0].item_kind = (int32_t)id;
    store_cache_put_account(c, store_cache_gen(c, id), &a);
    store_cache_put_player(c, store_cache_gen(c, id), id, &p);
    store_cache_put_inventory(c, store_cache_gen(c, id), id, &inv);
}

static void test_hits_by_id_and_username(void **state)
{
    (void)state;
    store_cache *c = store_cache_create(8);
    put_record(c, 5);
    store_account a;
    store_player p;
    store_inventory inv;
    assert_true(store_cache_get_account(c, "user5", &a));
    assert_int_equal(a.id, 5);
    assert_string_equal(a.pw_hash, "hash5");
    assert_int_equal(store_cache_get_player(c, 5, &p), 1);
    assert_true(p.x == 5);
    assert_true(store_cache_get_inventory(c, 5, &inv));
    assert_int_equal(inv.slots[0].item_kind, 5);
    assert_false(store_cache_get_account(c, "user6", &a));
    assert_int_equal(store_cache_get_player(c, 6, &p), 0);
    /* Known to have no player row: a negative hit. */
    store_cache_put_player(c, store_cache_gen(c, 6), 6, NULL);
    assert_int_equal(store_cache_get_player(c, 6, &p), -1);
    assert_null(store_cache_create(0)); /* capacity 0 disables the cache */
    store_cache_destroy(c);
}

static void test_least_recently_used_is_evicted(void **state)
{
    (void)state;
    store_cache *c = store_cache_create(4);
    for (int64_t id = 1; id <= 4; id++)
        put_record(c, id);
    store_player p;
    assert_int_equal(store_cache_get_player(c, 1, &p), 1); /* 1 is now the most recent */
    put_record(c, 5);                                      /* evicts 2 */
    assert_int_equal(store_cache_count(c), 4);
    store_account a;
    assert_int_equal(store_cache_get_player(c, 2, &p), 0);
    assert_false(store_cache_get_account(c, "user2", &a));
    for (int64_t id = 1; id <= 5; id++) {
        if (id == 2)
            continue;
        assert_int_equal(store_cache_get_player(c, id, &p), 1);
        char name[32];
        snprintf(name, sizeof name, "user%lld", (long long)id);
        assert_true(store_cache_get_account(c, name, &a));
    }
    /* Many more than capacity: still bounded and consistent. */
    for (int64_t id = 100; id < 1100; id++)
        put_record(c, id);
    assert_int_equal(store_cache_count(c), 4);
    for (int64_t id = 1096; id < 1100; id++)
        assert_int_equal(store_cache_get_player(c, id, &p), 1);
    store_cache_destroy(c);
}

static void test_noted_state_never_goes_back_a_version(void **state)
{
    (void)state;
    store_cache *c = store_cache_create(4);
    put_record(c, 7);
    store_player p = {.account_id = 7, .x = 70, .version = 3};
    store_cache_note_player(c, &p);
    store_player got;
    assert_int_equal(store_cache_get_player(c, 7, &got), 1);
    assert_true(got.x == 70);
    p.version = 2;
    p.x = -1;
    store_cache_note_player(c, &p);
    assert_int_equal(store_cache_get_player(c, 7, &got), 1);
    assert_true(got.x == 70);
    /* Noting an uncached account does not insert it. */
    p.account_id = 8;
    store_cache_note_player(c, &p);
    assert_int_equal(store_cache_get_player(c, 8, &got), 0);
    store_cache_destroy(c);
}

static void test_fill_is_dropped_if_account_changed_meanwhile(void **state)
{
    (void)state;
    store_cache *c = store_cache_create(4);
    uint32_t gen = store_cache_gen(c, 9); /* the loader starts reading */
    store_player newer = {.account_id = 9, .x = 2, .version = 2};
    store_cache_note_player(c, &newer); /* a write lands meanwhile */
    store_player stale = {.account_id = 9, .x = 1, .version = 1};
    store_cache_put_player(c, gen, 9, &stale); /* the loader's fill */
    store_player got;
    assert_int_equal(store_cache_get_player(c, 9, &got), 0);
    store_inventory inv = {.n = 0};
    gen = store_cache_gen(c, 9);
    store_cache_drop_inventory(c, 9);
    store_cache_put_inventory(c, gen, 9, &inv);
    assert_false(store_cache_get_inventory(c, 9, &inv));
    /* Without a write in between, the fill lands. */
    gen = store_cache_gen(c, 9);
    store_cache_put_inventory(c, gen, 9, &inv);
    assert_true(store_cache_get_inventory(c, 9, &inv));
    store_cache_drop_inventory(c, 9);
    assert_false(store_cache_get_inventory(c, 9, &inv));
    store_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_by_id_and_username),
        cmocka_unit_test(test_least_recently_used_is_evicted),
        cmocka_unit_test(test_noted_state_never_goes_back_a_version),
        cmocka_unit_test(test_fill_is_dropped_if_account_changed_meanwhile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
