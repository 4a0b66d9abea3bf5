/* test_login.c - the account registry and the asynchronous login service:
 * create on first login, password checks, input rules, the eventfd path,
 * racing first logins, back-pressure and shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_auth.h"

static const char SECRET[] = "0123456789abcdef0123456789abcdef";

typedef struct fixture {
    gw_auth *auth;
    gw_login *login;
} fixture;

static int setup_n(void **state, int n_threads, int queue_cap)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(gw_auth_create(&f->auth, SECRET, strlen(SECRET), 3600), 0);
    assert_int_equal(gw_login_create(&f->login, f->auth, n_threads, queue_cap), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_n(state, 2, 16);
}

static int setup_tiny(void **state)
{
    return setup_n(state, 1, 1);
}

static int teardown(void **state)
{
    fixture *f = *state;
    gw_login_destroy(f->login);
    gw_auth_destroy(f->auth);
    free(f);
    return 0;
}

/* The token in a successful result verifies and names the same account. */
static void assert_token_matches(gw_auth *a, const gw_login_result *r)
{
    gw_claims c;
    const char *why = NULL;
    assert_int_equal(gw_auth_verify(a, r->token, strlen(r->token), &c, &why), GW_AUTH_OK);
    assert_int_equal(c.account_id, r->account_id);
    assert_string_equal(c.username, r->username);
}

/* Collects `want` results through the eventfd, like the gateway's loop. */
static void wait_results(gw_login *l, gw_login_result *out, size_t want)
{
    size_t got = 0;
    for (int spins = 0; got < want; spins++) {
        assert_true(spins < 200); /* 200 x 100 ms: far beyond any argon2id run */
        struct pollfd p = {.fd = gw_login_fd(l), .events = POLLIN};
        int n = poll(&p, 1, 100);
        assert_true(n >= 0);
        if (n == 1)
            got += gw_login_poll(l, out + got, want - got);
    }
}

static void test_first_login_creates_account(void **state)
{
    fixture *f = *state;
    gw_login_result r;
    assert_int_equal(gw_login_run(f->login, "ada", "correct horse", &r), GW_AUTH_OK);
    assert_int_equal(r.status, GW_AUTH_OK);
    assert_int_equal(r.account_id, 1);
    assert_string_equal(r.username, "ada");
    assert_token_matches(f->auth, &r);

    assert_int_equal(gw_login_run(f->login, "bob", "battery staple", &r), GW_AUTH_OK);
    assert_int_equal(r.account_id, 2);
}

static void test_second_login_same_password_same_id(void **state)
{
    fixture *f = *state;
    gw_login_result r1, r2;
    assert_int_equal(gw_login_run(f->login, "ada", "correct horse", &r1), GW_AUTH_OK);
    assert_int_equal(gw_login_run(f->login, "ada", "correct horse", &r2), GW_AUTH_OK);
    assert_int_equal(r1.account_id, r2.account_id);
    assert_token_matches(f->auth, &r2);
    assert_string_not_equal(r1.token, r2.token);
}

static void test_wrong_password_rejected(void **state)
{
    fixture *f = *state;
    gw_login_result r;
    assert_int_equal(gw_login_run(f->login, "ada", "correct horse", &r), GW_AUTH_OK);
    assert_int_equal(gw_login_run(f->login, "ada", "correct horsf", &r), GW_AUTH_E_CREDENTIALS);
    assert_int_equal(r.status, GW_AUTH_E_CREDENTIALS);
    assert_int_equal(r.account_id, 0);
    assert_string_equal(r.token, "");
    /* Usernames are case-sensitive: "Ada" is another account. */
    assert_int_equal(gw_login_run(f->login, "Ada", "correct horsf", &r), GW_AUTH_OK);
    assert_int_equal(r.account_id, 2);
}

static void test_invalid_input_rejected_at_submit(void **state)
{
    fixture *f = *state;
    char long_pw[130];
    memset(long_pw, 'p', sizeof long_pw - 1);
    long_pw[129] = '\0'; /* 129 bytes */
    const char *bad_names[] = {
        "ab", "abcdefghijklmnopqrstuvwxy", "a b", "ad@", "\xc3\xa9tienne", "", NULL};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        assert_int_equal(gw_login_submit(f->login, i, bad_names[i], "secret1"), GW_AUTH_E_USERNAME);
    assert_int_equal(gw_login_submit(f->login, 1, "ada", "12345"), GW_AUTH_E_PASSWORD);
    assert_int_equal(gw_login_submit(f->login, 1, "ada", ""), GW_AUTH_E_PASSWORD);
    assert_int_equal(gw_login_submit(f->login, 1, "ada", NULL), GW_AUTH_E_PASSWORD);
    assert_int_equal(gw_login_submit(f->login, 1, "ada", long_pw), GW_AUTH_E_PASSWORD);
    gw_login_result r;
    assert_int_equal(gw_login_run(f->login, "ab", "secret1", &r), GW_AUTH_E_USERNAME);
    assert_int_equal(gw_login_run(f->login, "ada", long_pw, &r), GW_AUTH_E_PASSWORD);

    /* Nothing was queued: no result ever shows up. */
    struct pollfd p = {.fd = gw_login_fd(f->login), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 50), 0);
    gw_login_result out[1];
    assert_int_equal(gw_login_poll(f->login, out, 1), 0);

    /* The edges of the rules are accepted. */
    long_pw[128] = '\0';
    assert_int_equal(gw_login_run(f->login, "abcdefghijklmnopqrstuvwx", long_pw, &r), GW_AUTH_OK);
    assert_int_equal(gw_login_run(f->login, "A-_", "123456", &r), GW_AUTH_OK);
    assert_token_matches(f->auth, &r);
}

static void test_async_login_through_eventfd(void **state)
{
    fixture *f = *state;
    assert_int_equal(gw_login_submit(f->login, 101, "ada", "correct horse"), 0);
    assert_int_equal(gw_login_submit(f->login, 102, "bob", "battery staple"), 0);
    gw_login_result r[2];
    wait_results(f->login, r, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].status, GW_AUTH_OK);
        assert_true(r[i].cookie == 101 || r[i].cookie == 102);
        assert_string_equal(r[i].username, r[i].cookie == 101 ? "ada" : "bob");
        assert_token_matches(f->auth, &r[i]);
    }
    assert_int_not_equal(r[0].account_id, r[1].account_id);

    /* Then a wrong password, asynchronously. */
    assert_int_equal(gw_login_submit(f->login, 103, "ada", "not the one"), 0);
    wait_results(f->login, r, 1);
    assert_int_equal(r[0].cookie, 103);
    assert_int_equal(r[0].status, GW_AUTH_E_CREDENTIALS);
}

static void test_poll_smaller_than_backlog_keeps_fd_readable(void **state)
{
    fixture *f = *state;
    gw_login_result r;
    for (uint64_t i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "user%d", (int)i);
        assert_int_equal(gw_login_submit(f->login, i, name, "password"), 0);
    }
    /* Let all three finish (3 hashes on 2 workers, ~0.3 s even under ASan),
     * then take one per poll: each must leave the fd readable while results
     * remain, as an edge-triggered epoll would not fire again. */
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL);
    struct pollfd p = {.fd = gw_login_fd(f->login), .events = POLLIN};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(poll(&p, 1, 0), 1);
        assert_int_equal(gw_login_poll(f->login, &r, 1), 1);
        assert_int_equal(r.status, GW_AUTH_OK);
    }
    assert_int_equal(poll(&p, 1, 0), 0);
    assert_int_equal(gw_login_poll(f->login, &r, 1), 0);
}

typedef struct racer {
    fixture *f;
    pthread_barrier_t *go;
    const char *password;
    gw_login_result r;
} racer;

static void *race_login(void *arg)
{
    racer *x = arg;
    pthread_barrier_wait(x->go);
    gw_login_run(x->f->login, "newbie", x->password, &x->r);
    return NULL;
}

static void run_race(fixture *f, const char *pw1, const char *pw2, racer x[2])
{
    pthread_barrier_t go;
    pthread_t t[2];
    pthread_barrier_init(&go, NULL, 2);
    x[0] = (racer){.f = f, .go = &go, .password = pw1};
    x[1] = (racer){.f = f, .go = &go, .password = pw2};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_login, &x[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
}

static void test_concurrent_first_logins_same_password_one_account(void **state)
{
    fixture *f = *state;
    racer x[2];
    run_race(f, "same password", "same password", x);
    assert_int_equal(x[0].r.status, GW_AUTH_OK);
    assert_int_equal(x[1].r.status, GW_AUTH_OK);
    assert_int_equal(x[0].r.account_id, 1);
    assert_int_equal(x[1].r.account_id, 1);
    /* Exactly one account: the next new name gets id 2. */
    gw_login_result r;
    assert_int_equal(gw_login_run(f->login, "other", "password", &r), GW_AUTH_OK);
    assert_int_equal(r.account_id, 2);
}

static void test_concurrent_first_logins_different_passwords_one_wins(void **state)
{
    fixture *f = *state;
    racer x[2];
    run_race(f, "password one", "password two", x);
    int n_ok = (x[0].r.status == GW_AUTH_OK) + (x[1].r.status == GW_AUTH_OK);
    assert_int_equal(n_ok, 1);
    int w = x[0].r.status == GW_AUTH_OK ? 0 : 1;
    assert_int_equal(x[1 - w].r.status, GW_AUTH_E_CREDENTIALS);
    assert_int_equal(x[w].r.account_id, 1);
    /* The winner's password is the account's password. */
    gw_login_result r;
    assert_int_equal(gw_login_run(f->login, "newbie", x[w].password, &r), GW_AUTH_OK);
    assert_int_equal(r.account_id, 1);
    assert_int_equal(gw_login_run(f->login, "newbie", x[1 - w].password, &r),
                     GW_AUTH_E_CREDENTIALS);
}

static void test_concurrent_first_logins_through_workers(void **state)
{
    fixture *f = *state; /* 2 workers: both take one request at once */
    assert_int_equal(gw_login_submit(f->login, 1, "twin", "password"), 0);
    assert_int_equal(gw_login_submit(f->login, 2, "twin", "password"), 0);
    gw_login_result r[2];
    wait_results(f->login, r, 2);
    assert_int_equal(r[0].status, GW_AUTH_OK);
    assert_int_equal(r[1].status, GW_AUTH_OK);
    assert_int_equal(r[0].account_id, r[1].account_id);
}

static void test_busy_when_queue_full(void **state)
{
    fixture *f = *state; /* 1 worker, queue of 1 */
    /* argon2id takes tens of ms and these submits take microseconds: the
     * worker holds at most one request, the queue one more, so BUSY comes
     * by the third submit at the latest. */
    int accepted = 0, busy = 0;
    for (int i = 0; i < 3 && busy == 0; i++) {
        int rc = gw_login_submit(f->login, (uint64_t)i, "queued", "password");
        if (rc == 0)
            accepted++;
        else if (rc == GW_AUTH_E_BUSY)
            busy++;
        else
            fail_msg("unexpected status %d", rc);
    }
    assert_int_equal(busy, 1);
    assert_in_range(accepted, 1, 2);
    gw_login_result r[2];
    wait_results(f->login, r, (size_t)accepted);
    for (int i = 0; i < accepted; i++)
        assert_int_equal(r[i].status, GW_AUTH_OK);
    /* Drained: accepted again. */
    assert_int_equal(gw_login_submit(f->login, 9, "queued", "password"), 0);
    wait_results(f->login, r, 1);
    assert_int_equal(r[0].status, GW_AUTH_OK);
}

static void test_busy_when_results_not_polled(void **state)
{
    fixture *f = *state; /* 1 worker, queue of 1: at most 2 outstanding */
    gw_login_result r[2];
    assert_int_equal(gw_login_submit(f->login, 1, "slowpoke", "password"), 0);
    wait_results(f->login, r, 1);
    /* Result 2 is pushed but nobody polls it: it counts against the limit,
     * so after login 3 (queued, running or done) a fourth is refused. */
    assert_int_equal(gw_login_submit(f->login, 2, "slowpoke", "password"), 0);
    struct pollfd p = {.fd = gw_login_fd(f->login), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 20000), 1);
    assert_int_equal(gw_login_submit(f->login, 3, "slowpoke", "password"), 0);
    assert_int_equal(gw_login_submit(f->login, 4, "slowpoke", "password"), GW_AUTH_E_BUSY);
    wait_results(f->login, r, 2);
    assert_int_equal(r[0].cookie, 2);
    assert_int_equal(r[1].cookie, 3);
}

static void test_destroy_drops_pending(void **state)
{
    (void)state;
    gw_auth *a = NULL;
    gw_login *l = NULL;
    assert_int_equal(gw_auth_create(&a, SECRET, strlen(SECRET), 60), 0);
    assert_int_equal(gw_login_create(&l, a, 1, 8), 0);
    for (uint64_t i = 0; i < 8; i++)
        assert_int_equal(gw_login_submit(l, i, "pending", "password"), 0);
    gw_login_destroy(l); /* joins after at most one hash; ASan checks leaks */
    gw_login_destroy(NULL);
    gw_auth_destroy(a);
}

static void test_create_rejects_bad_args(void **state)
{
    (void)state;
    gw_auth *a = NULL;
    gw_login *l = (gw_login *)1;
    assert_int_equal(gw_auth_create(&a, SECRET, strlen(SECRET), 60), 0);
    assert_int_equal(gw_login_create(&l, a, 0, 4), -1);
    assert_null(l);
    assert_int_equal(gw_login_create(&l, a, 1, 0), -1);
    assert_int_equal(gw_login_create(&l, NULL, 1, 4), -1);
    gw_auth_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_login_creates_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_login_same_password_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input_rejected_at_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_login_through_eventfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_smaller_than_backlog_keeps_fd_readable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_logins_same_password_one_account,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_logins_different_passwords_one_wins,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_logins_through_workers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_busy_when_queue_full, setup_tiny, teardown),
        cmocka_unit_test_setup_teardown(test_busy_when_results_not_polled, setup_tiny, teardown),
        cmocka_unit_test(test_destroy_drops_pending),
        cmocka_unit_test(test_create_rejects_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
