/* test_limit.c - the failed-login limits (gw_limit.c): N failures per
 * account and per address within a window that starts at the first
 * failure, then refused until the window ends (retry-after rounded up);
 * IPv6 counted per /64; successes never counted; bounded memory under a
 * flood of distinct keys. Time is passed in, so nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gw_acct.h"

static const uint8_t V4_A[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
static const uint8_t V4_B[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2};

static void test_account_limit_and_window(void **state)
{
    (void)state;
    gw_limit *l = gw_limit_create(5, 20, 60);
    int retry = 0;
    uint64_t t0 = 1000000;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(gw_limit_check(l, t0 + (uint64_t)i, V4_A, "ada", &retry), GW_LIMIT_NONE);
        gw_limit_fail(l, t0 + (uint64_t)i, V4_A, "ada");
    }
    assert_int_equal(gw_limit_check(l, t0 + 10, V4_A, "ada", &retry), GW_LIMIT_ACCOUNT);
    assert_int_equal(retry, 60);
    /* From another address too: the account is what is limited. */
    assert_int_equal(gw_limit_check(l, t0 + 30500, V4_B, "ada", &retry), GW_LIMIT_ACCOUNT);
    assert_int_equal(retry, 30); /* 29.5 s left, rounded up */
    assert_int_equal(gw_limit_check(l, t0 + 10, V4_A, "bob", &retry), GW_LIMIT_NONE);
    /* The window ends 60 s after the first failure. */
    assert_int_equal(gw_limit_check(l, t0 + 60000, V4_A, "ada", &retry), GW_LIMIT_NONE);
    gw_limit_fail(l, t0 + 60000, V4_A, "ada"); /* a new window: 1 of 5 */
    assert_int_equal(gw_limit_check(l, t0 + 60001, V4_A, "ada", &retry), GW_LIMIT_NONE);
    gw_limit_destroy(l);
    gw_limit_destroy(NULL);
}

static void test_address_limit_across_accounts(void **state)
{
    (void)state;
    gw_limit *l = gw_limit_create(5, 20, 60);
    int retry = 0;
    char name[16];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "user%d", i);
        gw_limit_fail(l, 5000, V4_A, name);
    }
    assert_int_equal(gw_limit_check(l, 5001, V4_A, "newbie", &retry), GW_LIMIT_ADDRESS);
    assert_int_equal(gw_limit_check(l, 5001, V4_B, "newbie", &retry), GW_LIMIT_NONE);
    gw_limit_destroy(l);
}

static void test_ipv6_counts_per_64(void **state)
{
    (void)state;
    gw_limit *l = gw_limit_create(100, 3, 60);
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
    int retry;
    for (int i = 0; i < 3; i++) {
        a[15] = (uint8_t)i; /* a new address in the same /64 each time */
        gw_limit_fail(l, 1, a, "ada");
    }
    a[15] = 0xee;
    assert_int_equal(gw_limit_check(l, 2, a, "bob", &retry), GW_LIMIT_ADDRESS);
    a[7] = 2; /* another /64 */
    assert_int_equal(gw_limit_check(l, 2, a, "bob", &retry), GW_LIMIT_NONE);
    gw_limit_destroy(l);
}

static void test_flood_evicts_oldest_first(void **state)
{
    (void)state;
    gw_limit *l = gw_limit_create(5, 1000000, 60);
    int retry;
    char name[24];
    for (int i = 0; i < 5; i++)
        gw_limit_fail(l, 100, V4_A, "early");
    /* 100k other names failing once (~49 per bucket of 8): the table does
     * not grow; each full bucket drops the entry whose window began
     * first, so the early count is gone ... */
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof name, "n%d", i);
        gw_limit_fail(l, 200, V4_B, name);
    }
    assert_int_equal(gw_limit_check(l, 300, V4_A, "early", &retry), GW_LIMIT_NONE);
    /* ... while a newer count is kept: the flood's entries go first. */
    for (int i = 0; i < 5; i++)
        gw_limit_fail(l, 300, V4_A, "victim");
    for (int i = 0; i < 7; i++) { /* a few more of the flood, later still */
        snprintf(name, sizeof name, "m%d", i);
        gw_limit_fail(l, 350, V4_B, name);
    }
    assert_int_equal(gw_limit_check(l, 400, V4_A, "victim", &retry), GW_LIMIT_ACCOUNT);
    gw_limit_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_limit_and_window),
        cmocka_unit_test(test_address_limit_across_accounts),
        cmocka_unit_test(test_ipv6_counts_per_64),
        cmocka_unit_test(test_flood_evicts_oldest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
