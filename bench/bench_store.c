/* bench_store.c - store throughput (the issue-3 figures).
 *
 *   bench_store --backend sqlite|postgres [--players N] [--logins L] [--url URL]
 *
 * Flush: N dirty player states submitted through the store thread, then
 * one flush (ONE transaction) timed twice: first as inserts (new rows),
 * then as updates (every row newer). Prints rows/s and the submit cost.
 * Logins: L accounts (default 10,000, at most N) with a player row and 3 inventory slots; a "login"
 * is account find + player load + inventory load (no argon2id), timed once on a fresh handle (cache
 * cold: every read hits the database) and again on the same handle (cache warm). One JSON line per
 * figure on stdout.
 *
 * SQLite needs no url (a temporary file, removed at the end); PostgreSQL
 * needs --url on an empty database (scripts/bench-store.sh starts a
 * temporary server). Durability settings are the production ones
 * (synchronous=FULL, synchronous_commit=on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_log.h"
#include "core_time.h"
#include "store.h"

static double secs_since(uint64_t t0)
{
    return (double)(core_now_ns() - t0) / 1e9;
}

static void die(const char *what, store *s, int rc)
{
    fprintf(stderr, "bench_store: %s: %s (%s)\n", what, store_strerror(rc), store_errmsg(s));
    exit(1);
}

static store *open_store(const char *url, size_t players, size_t cache)
{
    store_opts o;
    store_opts_default(&o);
    o.max_dirty_players = players;
    o.cache_capacity = cache;
    o.flush_interval_ms = 3600 * 1000; /* only the timed flushes */
    o.reliable_timeout_ms = 60000;
    store *s = NULL;
    int rc = store_open_opts(&s, url, &o, NULL);
    if (rc != STORE_OK)
        die("open", NULL, rc);
    return s;
}

/* Submits n states with version v and times the flush. */
static void bench_flush(store *s, const char *backend, size_t n, int64_t v, const char *phase)
{
    uint64_t t0 = core_now_ns();
    for (size_t i = 0; i < n; i++) {
        store_player p = {.account_id = (int64_t)i + 1,
                          .x = (double)i * 0.25 + (double)v,
                          .y = (double)(i % 1000),
                          .hp = 100,
                          .version = v,
                          .last_seen_s = core_wall_s()};
        int rc = store_submit_player(s, &p);
        if (rc != STORE_OK)
            die("submit player", s, rc);
    }
    double submit_s = secs_since(t0);
    t0 = core_now_ns();
    int rc = store_flush(s, 600000);
    if (rc != STORE_OK)
        die("flush", s, rc);
    double flush_s = secs_since(t0);
    printf("{\"bench\":\"store_flush\",\"backend\":\"%s\",\"phase\":\"%s\",\"players\":%zu,"
           "\"flush_ms\":%.1f,\"rows_per_s\":%.0f,\"submit_ns_per_player\":%.0f}\n",
           backend, phase, n, flush_s * 1e3, (double)n / flush_s, submit_s * 1e9 / (double)n);
    fflush(stdout);
}

/* Creates l accounts (ids returned), each with 3 inventory slots through
 * the group commit. Player rows come from the flush bench (ids 1..N). */
static int64_t *make_accounts(store *s, size_t l)
{
    int64_t *ids = malloc(l * sizeof *ids);
    char name[64];
    uint64_t t0 = core_now_ns();
    for (size_t i = 0; i < l; i++) {
        snprintf(name, sizeof name, "bench%zu", i);
        int rc = store_account_create(s, &ids[i], name, "$argon2id$v=19$m=65536,t=2,p=1$bench");
        if (rc != STORE_OK)
            die("account create", s, rc);
    }
    double create_s = secs_since(t0);
    size_t pending = 0;
    for (size_t i = 0; i < l; i++) {
        for (int slot = 0; slot < 3; slot++) {
            store_action a = {.kind = STORE_ACT_INV_SET,
                              .account_id = ids[i],
                              .slot = slot,
                              .item_kind = slot + 1,
                              .quantity = 1};
            int rc;
            while ((rc = store_submit(s, 0, 0, &a)) == STORE_ERR_FULL) {
                store_completion c[256];
                size_t k;
                while ((k = store_completions_poll(s, 0, c, 256)) == 0)
                    usleep(1000);
                pending -= k;
            }
            if (rc != STORE_OK)
                die("submit inventory", s, rc);
            pending++;
        }
    }
    while (pending) {
        store_completion c[256];
        size_t k = store_completions_poll(s, 0, c, 256);
        for (size_t i = 0; i < k; i++)
            if (c[i].status != STORE_OK)
                die(c[i].reason, s, c[i].status);
        pending -= k;
        if (!k)
            usleep(1000);
    }
    fprintf(stderr, "bench_store: %zu accounts created at %.0f/s (autocommit each)\n", l,
            (double)l / create_s);
    return ids;
}

static void bench_logins(store *s, const char *backend, const int64_t *ids, size_t l,
                         const char *cache)
{
    char name[64];
    uint64_t t0 = core_now_ns();
    for (size_t i = 0; i < l; i++) {
        snprintf(name, sizeof name, "bench%zu", i);
        store_account a;
        store_player p;
        store_inventory inv;
        int rc = store_account_find(s, &a, name);
        if (rc == STORE_OK)
            rc = store_player_load(s, &p, a.id);
        if (rc == STORE_OK)
            rc = store_inventory_load(s, &inv, a.id);
        if (rc != STORE_OK || a.id != ids[i] || inv.n != 3)
            die("login", s, rc);
    }
    double t = secs_since(t0);
    printf("{\"bench\":\"store_login\",\"backend\":\"%s\",\"cache\":\"%s\",\"logins\":%zu,"
           "\"logins_per_s\":%.0f,\"us_per_login\":%.1f}\n",
           backend, cache, l, (double)l / t, t * 1e6 / (double)l);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *backend = "sqlite", *url = NULL;
    size_t players = 10000, logins = 10000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend"))
            backend = argv[i + 1];
        else if (!strcmp(argv[i], "--players"))
            players = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--logins"))
            logins = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_store --backend sqlite|postgres [--players N] "
                            "[--logins L] [--url URL]\n");
            return 2;
        }
    }
    core_log_set_level(CORE_LOG_WARN);
    bool is_pg = strcmp(backend, "postgres") == 0;
    char dir[64] = "", path[128];
    if (is_pg && !url) {
        fprintf(stderr,
                "bench_store: --backend postgres needs --url (see scripts/bench-store.sh)\n");
        return 2;
    }
    if (!url) {
        snprintf(dir, sizeof dir, "/tmp/tessera-bench-XXXXXX");
        if (!mkdtemp(dir))
            return 1;
        snprintf(path, sizeof path, "sqlite:%s/bench.db", dir);
        url = path;
    }
    if (logins > players)
        logins = players;
    store *s = open_store(url, players, 0);
    int applied, rc = store_migrate_up(s, &applied);
    if (rc != STORE_OK)
        die("migrate", s, rc);
    if ((rc = store_start(s)) != STORE_OK)
        die("start", s, rc);
    bench_flush(s, backend, players, 1, "insert");
    bench_flush(s, backend, players, 2, "update");
    int64_t *ids = make_accounts(s, logins);
    store_close(s);

    s = open_store(url, 16, logins); /* a fresh handle: the cache is cold */
    bench_logins(s, backend, ids, logins, "cold");
    bench_logins(s, backend, ids, logins, "warm");
    store_close(s);
    free(ids);
    if (*dir) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_store: cannot remove %s\n", dir);
    }
    return 0;
}
