/* test_store_refresh.c - refresh tokens (put, take once, theft detection
 * on re-use, revoke one, revoke an account, expiry, the per-account cap)
 * and external accounts (store_account_external), the same cases on SQLite
 * and on PostgreSQL (store_fixture.h). */
#include "store_fixture.h"

#include <pthread.h>

/* A distinct hash per (account, n). */
static void hash_of(uint8_t h[STORE_REFRESH_HASH_BYTES], int64_t account, int n)
{
    for (int i = 0; i < STORE_REFRESH_HASH_BYTES; i++)
        h[i] = (uint8_t)(account * 31 + n * 7 + i);
}

static void test_refresh_take_is_use_once(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    uint8_t h[STORE_REFRESH_HASH_BYTES];
    hash_of(h, 5, 1);
    int64_t now = core_wall_s(), id = -1;
    char name[STORE_USERNAME_MAX];
    assert_int_equal(store_refresh_put(s, 5, "ada", h, now + 600), STORE_OK);
    assert_int_equal(store_refresh_take(s, &id, name, h, now), STORE_OK);
    assert_int_equal(id, 5);
    assert_string_equal(name, "ada");
    /* The same token again: theft. Every token of the account dies. */
    uint8_t h2[STORE_REFRESH_HASH_BYTES];
    hash_of(h2, 5, 2);
    assert_int_equal(store_refresh_put(s, 5, "ada", h2, now + 600), STORE_OK);
    assert_int_equal(store_refresh_take(s, &id, name, h, now), STORE_ERR_CONFLICT);
    assert_int_equal(id, 5);
    assert_non_null(strstr(store_errmsg(s), "revoked"));
    assert_int_equal(store_refresh_take(s, &id, name, h2, now), STORE_ERR_NOTFOUND);
    assert_int_equal(id, 0);
}

static void test_refresh_unknown_and_expired_are_notfound(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    uint8_t h[STORE_REFRESH_HASH_BYTES];
    int64_t now = core_wall_s(), id;
    char name[STORE_USERNAME_MAX];
    hash_of(h, 6, 1);
    assert_int_equal(store_refresh_take(s, &id, name, h, now), STORE_ERR_NOTFOUND);
    assert_int_equal(store_refresh_put(s, 6, "bob", h, now + 10), STORE_OK);
    assert_int_equal(store_refresh_take(s, &id, name, h, now + 11), STORE_ERR_NOTFOUND);
    /* Expired tokens are not used up by the attempt: no theft alarm. */
    assert_int_equal(store_refresh_take(s, &id, name, h, now + 11), STORE_ERR_NOTFOUND);
    assert_int_equal(store_refresh_take(s, &id, name, h, now), STORE_OK);
}

static void test_refresh_revoke_one_and_account(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    uint8_t a1[STORE_REFRESH_HASH_BYTES], a2[STORE_REFRESH_HASH_BYTES],
        b1[STORE_REFRESH_HASH_BYTES];
    hash_of(a1, 7, 1);
    hash_of(a2, 7, 2);
    hash_of(b1, 8, 1);
    int64_t now = core_wall_s(), id, n = -1;
    char name[STORE_USERNAME_MAX];
    assert_int_equal(store_refresh_put(s, 7, "carol", a1, now + 600), STORE_OK);
    assert_int_equal(store_refresh_put(s, 7, "carol", a2, now + 600), STORE_OK);
    assert_int_equal(store_refresh_put(s, 8, "dave", b1, now + 600), STORE_OK);
    /* Another account's token cannot be revoked by account 7. */
    assert_int_equal(store_refresh_revoke(s, 7, b1), STORE_ERR_NOTFOUND);
    assert_int_equal(store_refresh_revoke(s, 7, a1), STORE_OK);
    assert_int_equal(store_refresh_revoke(s, 7, a1), STORE_ERR_NOTFOUND); /* already */
    assert_int_equal(store_refresh_take(s, &id, name, a1, now), STORE_ERR_NOTFOUND);
    assert_int_equal(store_refresh_revoke_account(s, 7, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_refresh_take(s, &id, name, a2, now), STORE_ERR_NOTFOUND);
    /* Account 8 untouched; 0 = any account (logout by the token alone). */
    assert_int_equal(store_refresh_revoke(s, 0, b1), STORE_OK);
    assert_int_equal(store_refresh_take(s, &id, name, b1, now), STORE_ERR_NOTFOUND);
}

static void test_refresh_keeps_newest_per_account(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    int64_t now = core_wall_s(), id;
    char name[STORE_USERNAME_MAX];
    uint8_t h[STORE_REFRESH_HASH_BYTES];
    for (int i = 0; i < STORE_REFRESH_PER_ACCOUNT + 3; i++) {
        hash_of(h, 9, i);
        assert_int_equal(store_refresh_put(s, 9, "erin", h, now + 1000 + i), STORE_OK);
    }
    hash_of(h, 9, 0); /* the oldest were pruned */
    assert_int_equal(store_refresh_take(s, &id, name, h, now), STORE_ERR_NOTFOUND);
    hash_of(h, 9, STORE_REFRESH_PER_ACCOUNT + 2);
    assert_int_equal(store_refresh_take(s, &id, name, h, now), STORE_OK);
}

typedef struct racer {
    store *s;
    const uint8_t *h;
    int rc;
} racer;

static void *race_take(void *arg)
{
    racer *r = arg;
    int64_t id;
    char name[STORE_USERNAME_MAX];
    r->rc = store_refresh_take(r->s, &id, name, r->h, core_wall_s());
    return NULL;
}

static void test_refresh_concurrent_take_one_wins(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    store *s2 = fx_open_fresh(f); /* another connection, as another process */
    uint8_t h[STORE_REFRESH_HASH_BYTES];
    hash_of(h, 10, 1);
    assert_int_equal(store_refresh_put(s, 10, "fay", h, core_wall_s() + 600), STORE_OK);
    racer r[2] = {{s, h, 1}, {s2, h, 1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_take, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    /* One OK; the loser is a re-use (CONFLICT), never a second OK. */
    assert_int_equal((r[0].rc == STORE_OK) + (r[1].rc == STORE_OK), 1);
    assert_int_equal((r[0].rc == STORE_ERR_CONFLICT) + (r[1].rc == STORE_ERR_CONFLICT), 1);
    store_close(s2);
}

static void test_refresh_fault_and_bad_args(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    uint8_t h[STORE_REFRESH_HASH_BYTES];
    hash_of(h, 11, 1);
    int64_t id;
    char name[STORE_USERNAME_MAX];
    assert_int_equal(store_fault_set(s, STORE_OP_REFRESH, STORE_FAULT_FAIL, 1), STORE_OK);
    assert_int_equal(store_refresh_put(s, 11, "gus", h, core_wall_s() + 60), STORE_ERR_DB);
    assert_int_equal(store_refresh_take(s, &id, name, h, core_wall_s()), STORE_ERR_NOTFOUND);
    assert_int_equal(store_refresh_put(s, 0, "gus", h, 1), STORE_ERR_ARG);
    assert_int_equal(store_refresh_put(s, 1, "", h, 1), STORE_ERR_ARG);
    assert_int_equal(store_refresh_revoke_account(s, 0, NULL), STORE_ERR_ARG);
}

static void test_external_account_created_once_and_mapped(void **state)
{
    fx *f = *state;
    store *s = fx_open(f, NULL);
    const char *iss = "https://idp.example";
    int64_t id = 0, again = 0, other = 0, local = 0;
    assert_int_equal(store_account_create(s, &local, "ivan", "h"), STORE_OK);
    assert_int_equal(store_account_external(s, &id, iss, "3000000000", "hana", "!external"),
                     STORE_OK);
    assert_true(id > local); /* our own id, not the provider's subject */
    assert_int_equal(store_account_external(s, &again, iss, "3000000000", "hana", "!external"),
                     STORE_OK);
    assert_int_equal(again, id);
    store_account a;
    assert_int_equal(store_account_find(s, &a, "hana"), STORE_OK);
    assert_int_equal(a.id, id);
    assert_string_equal(a.pw_hash, "!external");
    /* The same subject of another issuer is another account. */
    assert_int_equal(store_account_external(s, &other, "https://other.example", "3000000000",
                                            "hana2", "!external"),
                     STORE_OK);
    assert_true(other != id);
    /* A first entry under a name that is taken: refused, nothing mapped. */
    assert_int_equal(store_account_external(s, &other, iss, "7", "ivan", "!external"),
                     STORE_ERR_CONFLICT);
    assert_non_null(strstr(store_errmsg(s), "another account"));
    assert_int_equal(store_account_external(s, &other, iss, "7", "ivan7", "!external"), STORE_OK);
    /* Local ids go on as before. */
    int64_t next = 0;
    assert_int_equal(store_account_create(s, &next, "jon", "h"), STORE_OK);
    assert_true(next > other);
    assert_int_equal(store_account_external(s, &id, "", "1", "x", "!external"), STORE_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refresh_take_is_use_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_unknown_and_expired_are_notfound, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_revoke_one_and_account, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_keeps_newest_per_account, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_concurrent_take_one_wins, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_fault_and_bad_args, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_external_account_created_once_and_mapped, fx_setup,
                                        fx_teardown),
    };
    return FX_RUN("store_refresh", tests);
}
