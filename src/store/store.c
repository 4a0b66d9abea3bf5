/* store.c - the wrappers: every call into a backend goes through here for
 * argument checks, metrics and fault injection. Divisions:
 *   1. open/close, errors, metrics
 *   2. fault injection
 *   3. the synchronous calls (one mutex-guarded connection, reconnected on
 *      demand; reads go through the pending states and the cache first)
 *   4. wrappers used by the store thread and migrations */
#include "store_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core_log.h"
#include "core_time.h"

#define STORE_DEFAULT_PATH "./data/tessera.db"
#define STORE_DATA_MAX (64u << 20) /* bytes of one snapshot or event payload */

/* ---- 1. open/close, errors, metrics ---- */

/* Detail of the last failure per thread, tagged with the handle it is
 * about: the synchronous calls run on many threads at once. */
static _Thread_local struct {
    const store *owner;
    char msg[256];
} tl_err;

void store__set_err(store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tl_err.owner = s;
    vsnprintf(tl_err.msg, sizeof tl_err.msg, fmt, ap);
    va_end(ap);
}

const char *store_errmsg(store *s)
{
    return tl_err.owner == s ? tl_err.msg : "";
}

const char *store_strerror(int rc)
{
    switch (rc) {
    case STORE_OK:
        return "ok";
    case STORE_ERR_ARG:
        return "invalid argument";
    case STORE_ERR_URL:
        return "unknown store url";
    case STORE_ERR_NOTFOUND:
        return "not found";
    case STORE_ERR_EXISTS:
        return "already exists";
    case STORE_ERR_CONFLICT:
        return "conflict";
    case STORE_ERR_CHECKSUM:
        return "checksum mismatch";
    case STORE_ERR_FULL:
        return "store queue full";
    case STORE_ERR_DB:
        return "database error";
    case STORE_ERR_DOWN:
        return "database unreachable";
    case STORE_ERR_TIMEOUT:
        return "not committed in time";
    case STORE_ERR_CLOSED:
        return "store closed";
    case STORE_ERR_FSYNC:
        return "storage durability failure (fsync); writes are no longer acknowledged";
    default:
        return "unknown store error";
    }
}

const char *store_backend(store *s)
{
    return s->ops->name;
}

void store_opts_default(store_opts *o)
{
    *o = (store_opts){.queue_capacity = 4096,
                      .max_dirty_players = 65536,
                      .cache_capacity = 8192,
                      .flush_interval_ms = 1000,
                      .reliable_timeout_ms = 5000,
                      .retry_max_ms = 1000,
                      .prune_interval_ms = 60000,
                      .keep_snapshots = 3};
}

/* mkdir -p of path's parent folder. */
static int make_parent(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(dir, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void register_metrics(store *s, core_metrics *m)
{
    static core_counter dummy_c[12];
    static core_gauge dummy_g[3];
    static core_histogram dummy_h = {.n_bounds = 0};
    if (!m) {
        /* Updates to the shared dummies race harmlessly (relaxed atomics). */
        core_counter **cs[] = {&s->met.rows_flushed,     &s->met.flushes,
                               &s->met.commit_failures,  &s->met.actions_committed,
                               &s->met.actions_failed,   &s->met.refused,
                               &s->met.cache_hits,       &s->met.cache_misses,
                               &s->met.reconnects,       &s->met.errors,
                               &s->met.checksum_failures};
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
            *cs[i] = &dummy_c[i];
        s->met.queue_depth = &dummy_g[0];
        s->met.dirty_players = &dummy_g[1];
        s->met.failed = &dummy_g[2];
        s->met.flush_s = &dummy_h;
        return;
    }
    char l[64];
    snprintf(l, sizeof l, "backend=\"%s\"", s->ops->name);
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10};
    s->met.flush_s = core_metrics_histogram(m, "tessera_store_flush_seconds",
                                            "Duration of one dirty-player flush transaction", l,
                                            bounds, sizeof bounds / sizeof bounds[0]);
#define C(field, name, help) s->met.field = core_metrics_counter(m, name, help, l)
    C(rows_flushed, "tessera_store_rows_flushed_total", "Player rows written by flushes");
    C(flushes, "tessera_store_flushes_total", "Committed player flush transactions");
    C(commit_failures, "tessera_store_commit_failures_total",
      "Store-thread transactions that failed (flush or group commit)");
    C(actions_committed, "tessera_store_actions_committed_total",
      "Reliable actions confirmed after commit");
    C(actions_failed, "tessera_store_actions_failed_total",
      "Reliable actions completed with an error");
    C(refused, "tessera_store_refused_total", "Submits refused because a queue was full");
    C(cache_hits, "tessera_store_cache_hits_total", "Player-record reads served from memory");
    C(cache_misses, "tessera_store_cache_misses_total", "Player-record reads from the database");
    C(reconnects, "tessera_store_reconnects_total", "Database reconnections");
    C(errors, "tessera_store_errors_total", "Failed store calls");
    C(checksum_failures, "tessera_store_checksum_failures_total",
      "Snapshots or events refused for a bad checksum");
#undef C
    s->met.queue_depth = core_metrics_gauge(m, "tessera_store_queue_depth",
                                            "Reliable actions submitted and not yet polled", l);
    s->met.dirty_players = core_metrics_gauge(m, "tessera_store_dirty_players",
                                              "Player states waiting for a flush", l);
    s->met.failed = core_metrics_gauge(
        m, "tessera_store_failed",
        "1 when a failed fsync stopped the store acknowledging writes (restart needed)", l);
}

void store__fail(store *s, const char *why)
{
    int expected = 0;
    if (atomic_load(&s->is_failed))
        return;
    snprintf(s->fail_reason, sizeof s->fail_reason, "%.170s; restart needed", why);
    if (!atomic_compare_exchange_strong(&s->is_failed, &expected, 1))
        return;
    core_gauge_set(s->met.failed, 1);
    CORE_ERROR("store", "durability failure, no more writes are acknowledged: %s", s->fail_reason);
}

int store_is_failed(store *s)
{
    return atomic_load(&s->is_failed);
}

int store_open_opts(store **out, const char *url, const store_opts *o, core_metrics *m)
{
    *out = NULL;
    const store_ops *ops = &store_sqlite_ops;
    const char *target = url && *url ? url : STORE_DEFAULT_PATH;
    if (strncmp(target, "postgres://", 11) == 0 || strncmp(target, "postgresql://", 13) == 0) {
        ops = &store_pg_ops;
    } else if (strncmp(target, "sqlite://", 9) == 0) {
        target += 9;
    } else if (strncmp(target, "sqlite:", 7) == 0) {
        target += 7;
    } else if (strstr(target, "://")) {
        store__set_err(NULL, "unknown store url scheme in %s", target);
        return STORE_ERR_URL;
    }
    if (!*target || strlen(target) >= sizeof((store *)0)->target) {
        store__set_err(NULL, "store url empty or too long");
        return STORE_ERR_URL;
    }
    store *s = calloc(1, sizeof *s);
    if (!s)
        core_die("out of memory");
    s->ops = ops;
    if (o)
        s->opts = *o;
    else
        store_opts_default(&s->opts);
    if (s->opts.queue_capacity == 0 || s->opts.max_dirty_players == 0 ||
        s->opts.flush_interval_ms == 0 || s->opts.reliable_timeout_ms == 0) {
        free(s);
        store__set_err(NULL, "store options: capacities and intervals must be > 0");
        return STORE_ERR_ARG;
    }
    if (s->opts.retry_max_ms == 0)
        s->opts.retry_max_ms = 1000;
    snprintf(s->target, sizeof s->target, "%s", target);
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_mutex_init(&s->fault_mu, NULL);
    register_metrics(s, m);
    s->cache = store_cache_create(s->opts.cache_capacity);
    if (ops == &store_sqlite_ops && make_parent(target) != 0) {
        store__set_err(s, "cannot create the folder of %s: %s", target, strerror(errno));
        store_close(s);
        store__set_err(NULL, "cannot create the folder of %s", target);
        return STORE_ERR_DB;
    }
    char err[256] = "";
    int rc = ops->connect(&s->sync_conn, s->target, err, sizeof err);
    if (rc != STORE_OK) {
        store_close(s);
        store__set_err(NULL, "%s", err);
        return rc;
    }
    *out = s;
    return STORE_OK;
}

int store_open(store **out, const char *url, core_metrics *m)
{
    return store_open_opts(out, url, NULL, m);
}

void store_close(store *s)
{
    if (!s)
        return;
    store_queue_destroy(s->queue);
    if (s->sync_conn)
        s->ops->disconnect(s->sync_conn);
    store_cache_destroy(s->cache);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_mutex_destroy(&s->fault_mu);
    free(s);
}

/* ---- 2. fault injection ---- */

int store_fault_set(store *s, int op, int kind, uint32_t nth)
{
    if (!s || op < STORE_OP_ANY || op >= STORE_OP_N || kind < STORE_FAULT_NONE ||
        kind > STORE_FAULT_DOWN || (kind != STORE_FAULT_NONE && nth == 0))
        return STORE_ERR_ARG;
    pthread_mutex_lock(&s->fault_mu);
    for (int i = 0; i < STORE_OP_N; i++) {
        if (op != STORE_OP_ANY && op != i)
            continue;
        s->faults[i] = (store_fault){.kind = kind, .countdown = nth - (kind != STORE_FAULT_NONE)};
    }
    int armed = 0;
    for (int i = 0; i < STORE_OP_N; i++)
        armed += s->faults[i].kind != STORE_FAULT_NONE;
    atomic_store(&s->n_faults, armed);
    pthread_mutex_unlock(&s->fault_mu);
    return STORE_OK;
}

int store__fault_take(store *s, int op)
{
    if (atomic_load_explicit(&s->n_faults, memory_order_relaxed) == 0)
        return STORE_FAULT_NONE; /* the cheap check on every call */
    int fire = STORE_FAULT_NONE;
    pthread_mutex_lock(&s->fault_mu);
    store_fault *f = &s->faults[op];
    if (f->kind != STORE_FAULT_NONE) {
        if (f->countdown > 0) {
            f->countdown--;
        } else {
            fire = f->kind;
            if (f->kind != STORE_FAULT_DOWN) { /* one shot; DOWN stays */
                f->kind = STORE_FAULT_NONE;
                atomic_fetch_sub(&s->n_faults, 1);
            }
        }
    }
    pthread_mutex_unlock(&s->fault_mu);
    if (fire == STORE_FAULT_SLOW)
        core_sleep_until_ns(core_now_ns() + STORE_FAULT_SLOW_MS * 1000000ull);
    return fire;
}

/* Applies a pre-call fault; returns nonzero (with c->err set) if the call
 * must not reach the database. *post receives FSYNC for after the call. */
static int fault_pre(store *s, int op, store_conn *c, int *post)
{
    int kind = store__fault_take(s, op);
    *post = kind == STORE_FAULT_FSYNC;
    if (kind == STORE_FAULT_FAIL) {
        snprintf(c->err, sizeof c->err, "injected failure (op %d)", op);
        return STORE_ERR_DB;
    }
    if (kind == STORE_FAULT_DOWN) {
        snprintf(c->err, sizeof c->err, "injected: database unreachable (op %d)", op);
        return STORE_ERR_DOWN;
    }
    return STORE_OK;
}

static int fault_post(store_conn *c, int post, int rc)
{
    if (!post || rc != STORE_OK)
        return rc;
    snprintf(c->err, sizeof c->err, "injected: fsync failed after the call; durability unknown");
    return STORE_ERR_FSYNC;
}

/* ---- 3. the synchronous calls ---- */

typedef int (*sync_fn)(store *s, store_conn *c, void *ctx);

/* Runs fn on the sync connection under its mutex. A lost connection is
 * replaced first; a read that finds it lost is retried once on a fresh
 * one (after a server restart the first use is what notices). */
static int sync_call(store *s, int op, bool is_read, sync_fn fn, void *ctx)
{
    if (!is_read && atomic_load(&s->is_failed)) {
        store__set_err(s, "%s", s->fail_reason);
        return STORE_ERR_FSYNC;
    }
    pthread_mutex_lock(&s->sync_mu);
    int rc = STORE_OK;
    char err[256] = "";
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->sync_conn || s->sync_conn->is_broken) {
            if (s->sync_conn)
                s->ops->disconnect(s->sync_conn);
            s->sync_conn = NULL;
            rc = store__connect(s, &s->sync_conn, err, sizeof err);
            if (rc != STORE_OK)
                break;
            core_counter_add(s->met.reconnects, 1);
        }
        store_conn *c = s->sync_conn;
        int post;
        rc = fault_pre(s, op, c, &post);
        if (rc == STORE_OK)
            rc = fault_post(c, post, fn(s, c, ctx));
        if (rc != STORE_OK)
            snprintf(err, sizeof err, "%s", c->err);
        if (rc == STORE_ERR_DOWN)
            c->is_broken = true;
        if (rc != STORE_ERR_DOWN || !is_read)
            break;
    }
    pthread_mutex_unlock(&s->sync_mu);
    if (rc == STORE_ERR_FSYNC)
        store__fail(s, err);
    if (rc != STORE_OK) {
        store__set_err(s, "%s", err);
        if (rc != STORE_ERR_NOTFOUND)
            core_counter_add(s->met.errors, 1);
        if (rc == STORE_ERR_CHECKSUM)
            core_counter_add(s->met.checksum_failures, 1);
    }
    return rc;
}

int store__sync(store *s, int op, bool is_read, store_sync_fn fn, void *ctx)
{
    return sync_call(s, op, is_read, fn, ctx);
}

static int arg_err(store *s, const char *what)
{
    store__set_err(s, "invalid argument: %s", what);
    return STORE_ERR_ARG;
}

static bool text_ok(const char *t, size_t cap)
{
    return t && *t && strlen(t) < cap;
}

typedef struct args {
    const char *name, *hash;
    int64_t id, cell, tick, after;
    int64_t *out_id;
    const void *data;
    size_t len, max;
    void *out, *out2, *out3, *out4;
    const void *in;
} args;

static int do_account_create(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_account_create(s->ops, c, a->out_id, a->name, a->hash);
}

int store_account_create(store *s, int64_t *out_id, const char *username, const char *pw_hash)
{
    *out_id = 0;
    if (!text_ok(username, STORE_USERNAME_MAX) || !text_ok(pw_hash, STORE_PWHASH_MAX))
        return arg_err(s, "username or password hash empty or too long");
    args a = {.name = username, .hash = pw_hash, .out_id = out_id};
    return sync_call(s, STORE_OP_ACCOUNT_CREATE, false, do_account_create, &a);
}

static int do_account_find(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_account_find(s->ops, c, a->out, a->name);
}

int store_account_find(store *s, store_account *out, const char *username)
{
    memset(out, 0, sizeof *out);
    if (!text_ok(username, STORE_USERNAME_MAX))
        return arg_err(s, "username empty or too long");
    if (s->cache && store_cache_get_account(s->cache, username, out)) {
        core_counter_add(s->met.cache_hits, 1);
        return STORE_OK;
    }
    core_counter_add(s->met.cache_misses, 1);
    args a = {.name = username, .out = out};
    int rc = sync_call(s, STORE_OP_ACCOUNT_FIND, true, do_account_find, &a);
    /* Accounts never change once created: any generation will do. */
    if (rc == STORE_OK && s->cache)
        store_cache_put_account(s->cache, store_cache_gen(s->cache, out->id), out);
    return rc;
}

static int do_player_load(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_player_load(s->ops, c, a->out, a->id);
}

int store_player_load(store *s, store_player *out, int64_t account_id)
{
    memset(out, 0, sizeof *out);
    if (account_id <= 0)
        return arg_err(s, "account id must be > 0");
    /* A pending state is newer than anything stored. */
    if (s->queue && store_queue_dirty_get(s->queue, account_id, out)) {
        core_counter_add(s->met.cache_hits, 1);
        return STORE_OK;
    }
    int hit = s->cache ? store_cache_get_player(s->cache, account_id, out) : 0;
    if (hit) {
        core_counter_add(s->met.cache_hits, 1);
        if (hit < 0)
            store__set_err(s, "no player row for account %lld", (long long)account_id);
        return hit > 0 ? STORE_OK : STORE_ERR_NOTFOUND;
    }
    core_counter_add(s->met.cache_misses, 1);
    uint32_t gen = s->cache ? store_cache_gen(s->cache, account_id) : 0;
    args a = {.id = account_id, .out = out};
    int rc = sync_call(s, STORE_OP_PLAYER_LOAD, true, do_player_load, &a);
    if (s->cache && (rc == STORE_OK || rc == STORE_ERR_NOTFOUND))
        store_cache_put_player(s->cache, gen, account_id, rc == STORE_OK ? out : NULL);
    if (rc == STORE_ERR_NOTFOUND)
        store__set_err(s, "no player row for account %lld", (long long)account_id);
    return rc;
}

static bool player_ok(const store_player *p)
{
    return p && p->account_id > 0 && isfinite(p->x) && isfinite(p->y);
}

static int do_player_save(store *s, store_conn *c, void *ctx)
{
    const store_player *p = ((args *)ctx)->in;
    store_val v[6] = {SV_INT(p->account_id), SV_REAL(p->x),      SV_REAL(p->y),
                      SV_INT(p->hp),         SV_INT(p->version), SV_INT(p->last_seen_s)};
    return s->ops->query(c, STORE_SQL_PLAYER_UPSERT, v, 6, NULL, NULL, NULL);
}

int store_player_save(store *s, const store_player *p)
{
    if (!player_ok(p))
        return arg_err(s, "player: account id must be > 0 and the position finite");
    args a = {.in = p};
    int rc = sync_call(s, STORE_OP_PLAYER_SAVE, false, do_player_save, &a);
    if (rc == STORE_OK && s->cache)
        store_cache_note_player(s->cache, p);
    return rc;
}

static int do_inventory_load(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_inventory_load(s->ops, c, a->out, a->id);
}

int store_inventory_load(store *s, store_inventory *out, int64_t account_id)
{
    memset(out, 0, sizeof *out);
    if (account_id <= 0)
        return arg_err(s, "account id must be > 0");
    if (s->cache && store_cache_get_inventory(s->cache, account_id, out)) {
        core_counter_add(s->met.cache_hits, 1);
        return STORE_OK;
    }
    core_counter_add(s->met.cache_misses, 1);
    uint32_t gen = s->cache ? store_cache_gen(s->cache, account_id) : 0;
    args a = {.id = account_id, .out = out};
    int rc = sync_call(s, STORE_OP_INVENTORY_LOAD, true, do_inventory_load, &a);
    if (rc == STORE_OK && s->cache)
        store_cache_put_inventory(s->cache, gen, account_id, out);
    return rc;
}

static int do_item_create(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_item_create(s->ops, c, a->out_id, a->in);
}

int store_item_create(store *s, int64_t *out_id, const store_item *it)
{
    *out_id = 0;
    if (!it || !isfinite(it->x) || !isfinite(it->y) || it->quantity <= 0)
        return arg_err(s, "item: finite position and quantity > 0");
    args a = {.out_id = out_id, .in = it};
    return sync_call(s, STORE_OP_ITEMS, false, do_item_create, &a);
}

static int do_items_count(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_items_count(s->ops, c, a->out_id);
}

int store_items_count(store *s, int64_t *out_n)
{
    *out_n = 0;
    args a = {.out_id = out_n};
    return sync_call(s, STORE_OP_ITEMS, true, do_items_count, &a);
}

static int do_items_by_cell(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_items_by_cell(s->ops, c, a->out, a->out2, a->cell);
}

int store_items_by_cell(store *s, store_item **out, size_t *out_n, int64_t cell)
{
    *out = NULL;
    *out_n = 0;
    args a = {.out = out, .out2 = out_n, .cell = cell};
    return sync_call(s, STORE_OP_ITEMS, true, do_items_by_cell, &a);
}

static int do_snapshot_write(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_snapshot_write(s->ops, c, a->cell, a->tick, a->data, a->len);
}

int store_snapshot_write(store *s, int64_t cell, int64_t tick, const void *data, size_t len)
{
    if ((!data && len) || len > STORE_DATA_MAX)
        return arg_err(s, "snapshot data missing or over 64 MiB");
    args a = {.cell = cell, .tick = tick, .data = data, .len = len};
    return sync_call(s, STORE_OP_SNAPSHOT, false, do_snapshot_write, &a);
}

static int do_snapshot_read(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    int rc = store_rec_snapshot_read_latest(s->ops, c, a->out, a->out2, a->out3, a->out4, a->cell);
    if (*(int *)a->out4 > 0)
        core_counter_add(s->met.checksum_failures, (uint64_t) * (int *)a->out4);
    return rc;
}

int store_snapshot_read_latest(store *s, int64_t *out_tick, uint8_t **out_data, size_t *out_len,
                               int *out_n_refused, int64_t cell)
{
    *out_tick = 0;
    *out_data = NULL;
    *out_len = 0;
    *out_n_refused = 0;
    args a = {
        .out = out_tick, .out2 = out_data, .out3 = out_len, .out4 = out_n_refused, .cell = cell};
    return sync_call(s, STORE_OP_SNAPSHOT, true, do_snapshot_read, &a);
}

static int do_event_append(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_event_append(s->ops, c, a->out_id, a->in);
}

int store_event_append(store *s, int64_t *out_seq, const store_event *ev)
{
    *out_seq = 0;
    if (!ev || (!ev->payload && ev->len) || ev->len > STORE_DATA_MAX)
        return arg_err(s, "event payload missing or over 64 MiB");
    args a = {.out_id = out_seq, .in = ev};
    return sync_call(s, STORE_OP_EVENTS, false, do_event_append, &a);
}

static int do_events_read(store *s, store_conn *c, void *ctx)
{
    args *a = ctx;
    return store_rec_events_read(s->ops, c, a->out, a->out2, a->cell, a->after, a->max);
}

int store_events_read(store *s, store_event **out, size_t *out_n, int64_t cell, int64_t after_seq,
                      size_t max)
{
    *out = NULL;
    *out_n = 0;
    if (max == 0 || max > INT32_MAX)
        return arg_err(s, "max must be in 1..2^31-1");
    args a = {.out = out, .out2 = out_n, .cell = cell, .after = after_seq, .max = max};
    return sync_call(s, STORE_OP_EVENTS, true, do_events_read, &a);
}

static int do_migrate_up(store *s, store_conn *c, void *ctx)
{
    return store_migrate_run(s->ops, c, ctx);
}

int store_migrate_up(store *s, int *out_applied)
{
    *out_applied = 0;
    return sync_call(s, STORE_OP_MIGRATE, false, do_migrate_up, out_applied);
}

static int do_migrate_status(store *s, store_conn *c, void *ctx)
{
    return store_migrate_current(s->ops, c, ctx);
}

int store_migrate_status(store *s, int *out_current, int *out_latest)
{
    *out_latest = store_migrate_latest();
    return sync_call(s, STORE_OP_MIGRATE, true, do_migrate_status, out_current);
}

/* ---- 4. wrappers for the store thread and migrations ---- */

int store__connect(store *s, store_conn **out, char *err, size_t err_len)
{
    *out = NULL;
    int kind = store__fault_take(s, STORE_OP_CONNECT);
    if (kind == STORE_FAULT_FAIL || kind == STORE_FAULT_DOWN) {
        snprintf(err, err_len, "injected: database unreachable (connect)");
        return STORE_ERR_DOWN;
    }
    return s->ops->connect(out, s->target, err, err_len);
}

int store__begin(store *s, store_conn *c, bool is_exclusive)
{
    return s->ops->begin(c, is_exclusive);
}

int store__commit(store *s, store_conn *c)
{
    int post;
    int rc = fault_pre(s, STORE_OP_COMMIT, c, &post);
    if (rc == STORE_OK)
        rc = fault_post(c, post, s->ops->commit(c));
    if (rc == STORE_ERR_DOWN)
        c->is_broken = true;
    return rc;
}

int store__exec(store *s, store_conn *c, const char *sql)
{
    int rc = s->ops->exec(c, sql);
    if (rc == STORE_ERR_DOWN)
        c->is_broken = true;
    return rc;
}

void store__rollback(store *s, store_conn *c)
{
    if (c->is_broken) {
        c->in_txn = false;
        return;
    }
    char why[sizeof c->err];
    memcpy(why, c->err, sizeof why); /* keep the reason that made us roll back */
    if (s->ops->rollback(c) == STORE_ERR_DOWN)
        c->is_broken = true;
    memcpy(c->err, why, sizeof why);
}

int store__flush_players(store *s, store_conn *c, const store_player *p, size_t n)
{
    int post;
    int rc = fault_pre(s, STORE_OP_FLUSH, c, &post);
    if (rc == STORE_OK)
        rc = fault_post(c, post, s->ops->players_upsert(c, p, n));
    if (rc == STORE_ERR_DOWN)
        c->is_broken = true;
    return rc;
}

int store__apply(store *s, store_conn *c, const store_action *a, store_completion *out)
{
    int post;
    int rc = fault_pre(s, STORE_OP_APPLY, c, &post);
    if (rc == STORE_OK)
        rc = fault_post(c, post, store_rec_apply(s->ops, c, a, out));
    if (rc == STORE_ERR_DOWN)
        c->is_broken = true;
    return rc;
}
