/* store_fixture.h - runs one cmocka test table against SQLite and then
 * against a real PostgreSQL (tests/support/pg_server.h), each test on a
 * fresh database: a new file under a temporary folder, or a new database
 * on the process's server. Header-only for the store tests.
 *
 * PostgreSQL missing is a failure, not a skip, unless TESSERA_SKIP_PG=1. */
#ifndef STORE_FIXTURE_H
#define STORE_FIXTURE_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_metrics.h"
#include "core_time.h"
#include "pg_server.h"
#include "store.h"

typedef struct fx {
    bool is_pg;
    char url[300]; /* what store_open gets */
    char dir[128]; /* sqlite: temporary folder */
    core_metrics *m;
    store *s; /* opened by fx_open, closed by the teardown */
} fx;

static bool g_is_pg;     /* the group being run */
static ts_pg *g_pg;      /* the postgres group's server */
static int g_n_dbs;      /* databases created on it */
static bool g_pg_failed; /* the server did not start */

static inline int fx_group_sqlite(void **state)
{
    (void)state;
    g_is_pg = false;
    return 0;
}

static inline int fx_group_pg(void **state)
{
    (void)state;
    g_is_pg = true;
    g_pg = ts_pg_start();
    g_pg_failed = g_pg == NULL;
    return g_pg ? 0 : -1;
}

static inline int fx_group_pg_down(void **state)
{
    (void)state;
    ts_pg_destroy(g_pg);
    g_pg = NULL;
    return 0;
}

static inline int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->is_pg = g_is_pg;
    f->m = core_metrics_create();
    if (f->is_pg) {
        char name[32];
        snprintf(name, sizeof name, "t%d", ++g_n_dbs);
        assert_int_equal(ts_pg_createdb(g_pg, name, f->url, sizeof f->url), 0);
    } else {
        snprintf(f->dir, sizeof f->dir, "/tmp/tessera-store-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        /* A missing sub-folder: store_open creates it. */
        snprintf(f->url, sizeof f->url, "sqlite:%s/sub/tessera.db", f->dir);
    }
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    store_close(f->s);
    core_metrics_destroy(f->m);
    if (!f->is_pg) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", f->dir);
    }
    free(f);
    return 0;
}

/* Opens f->s with opts (NULL: defaults) and migrates. */
static store *fx_open(fx *f, const store_opts *o)
{
    store_close(f->s);
    f->s = NULL;
    int rc = store_open_opts(&f->s, f->url, o, f->m);
    if (rc != STORE_OK)
        fail_msg("store_open %s: %s", f->url, store_errmsg(NULL));
    int applied;
    assert_int_equal(store_migrate_up(f->s, &applied), STORE_OK);
    return f->s;
}

/* A second handle on the same database, no cache: reads what is stored. */
static store *fx_open_fresh(fx *f)
{
    store_opts o;
    store_opts_default(&o);
    o.cache_capacity = 0;
    store *s = NULL;
    assert_int_equal(store_open_opts(&s, f->url, &o, NULL), STORE_OK);
    return s;
}

/* Runs SQL on the database behind the store's back (to corrupt rows). */
static inline void fx_exec_raw(fx *f, const char *sql)
{
    if (f->is_pg) {
        PGconn *c = PQconnectdb(f->url);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
    } else {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(f->url + strlen("sqlite:"), &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        char *err = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
            fail_msg("%s: %s", sql, err);
        sqlite3_close(db);
    }
}

static inline uint64_t fx_counter(fx *f, const char *name)
{
    char l[64];
    snprintf(l, sizeof l, "backend=\"%s\"", f->is_pg ? "postgres" : "sqlite");
    return core_counter_get(core_metrics_counter(f->m, name, "", l));
}

/* Waits for one completion on cq (eventfd + poll), up to timeout_ms. */
static inline int fx_wait_completion(store *s, uint32_t cq, store_completion *out, int timeout_ms)
{
    uint64_t deadline = core_now_ms() + (uint64_t)timeout_ms;
    int fd = store_completions_fd(s, cq);
    assert_true(fd >= 0);
    for (;;) {
        if (store_completions_poll(s, cq, out, 1) == 1)
            return 0;
        uint64_t now = core_now_ms();
        if (now >= deadline)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) == 1) {
            uint64_t v;
            if (read(fd, &v, sizeof v) < 0) {
            }
        }
    }
}

/* Runs tests on SQLite, then on PostgreSQL. */
static inline int fx_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
    ts_pg_watchdog(110); /* under CTest's 120 s, so the server is stopped */
    char gname[64];
    snprintf(gname, sizeof gname, "%s/sqlite", name);
    int failed = _cmocka_run_group_tests(gname, tests, n, fx_group_sqlite, NULL);
    const char *skip = getenv("TESSERA_SKIP_PG");
    if (skip && strcmp(skip, "1") == 0) {
        fprintf(stderr, "TESSERA_SKIP_PG=1: PostgreSQL cases skipped\n");
        return failed;
    }
    if (!ts_pg_available()) {
        fprintf(stderr, "PostgreSQL not installed: run scripts/install-deps.sh test "
                        "(or TESSERA_SKIP_PG=1)\n");
        return failed + 1;
    }
    snprintf(gname, sizeof gname, "%s/postgres", name);
    failed += _cmocka_run_group_tests(gname, tests, n, fx_group_pg, fx_group_pg_down);
    return failed + g_pg_failed; /* cmocka 1.1 may not count a failed group setup */
}
#define FX_RUN(name, tests) fx_run(name, tests, sizeof(tests) / sizeof((tests)[0]))
#endif
