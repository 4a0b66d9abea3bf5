/* store_int.h - the backend table behind store.h, the handle, and the
 * internal pieces shared by store.c (wrappers), store_rec.c (records over
 * SQL), store_queue.c (the store thread), store_cache.c and
 * store_migrate.c.
 *
 * A backend is a small SQL executor: connect, exec a script, run one of
 * the shared statements (store_sql, '?' placeholders) with typed
 * parameters and a row callback, transactions, and one bulk op, the player
 * upsert, where the backends differ most (SQLite: prepared upserts;
 * PostgreSQL: COPY into a temporary table + one INSERT .. ON CONFLICT).
 * Backend calls return STORE_OK or STORE_ERR_{NOTFOUND,EXISTS,DB,DOWN} with
 * the text in conn->err. Only the wrappers in store.c call the table. */
#ifndef STORE_INT_H
#define STORE_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store.h"

/* Statements shared by both backends (store_rec.c holds the SQL). */
enum {
    STORE_SQL_ACCOUNT_CREATE,
    STORE_SQL_ACCOUNT_FIND,
    STORE_SQL_PLAYER_LOAD,
    STORE_SQL_PLAYER_UPSERT,
    STORE_SQL_INV_LOAD,
    STORE_SQL_INV_SET,
    STORE_SQL_INV_DELETE,
    STORE_SQL_ITEM_TAKE_INV,
    STORE_SQL_ITEM_TAKE_MARK,
    STORE_SQL_ITEM_INSERT,
    STORE_SQL_ITEMS_BY_CELL,
    STORE_SQL_SNAP_WRITE,
    STORE_SQL_SNAP_TICKS,
    STORE_SQL_SNAP_READ,
    STORE_SQL_EVENT_APPEND,
    STORE_SQL_EVENTS_READ,
    STORE_SQL_MIG_VERSION,
    STORE_SQL_MIG_RECORD,
    STORE_SQL_ITEMS_COUNT,
    /* refresh tokens and external accounts (store_refresh.c) */
    STORE_SQL_REFRESH_PUT,
    STORE_SQL_REFRESH_PRUNE,
    STORE_SQL_REFRESH_USE,
    STORE_SQL_REFRESH_PEEK,
    STORE_SQL_REFRESH_REVOKE_ACCOUNT,
    STORE_SQL_REFRESH_REVOKE_ONE,
    STORE_SQL_EXTERNAL_FIND,
    STORE_SQL_EXTERNAL_INSERT,
    STORE_SQL_N
};
extern const char *const store_sql[STORE_SQL_N];

enum { STORE_V_NULL, STORE_V_INT, STORE_V_REAL, STORE_V_TEXT, STORE_V_BLOB };
typedef struct store_val {
    int type;
    int64_t i;
    double d;
    const char *s; /* TEXT: NUL-terminated */
    const void *b; /* BLOB */
    size_t len;    /* BLOB bytes */
} store_val;
#define SV_INT(v) ((store_val){.type = STORE_V_INT, .i = (v)})
#define SV_REAL(v) ((store_val){.type = STORE_V_REAL, .d = (v)})
#define SV_TEXT(v) ((store_val){.type = STORE_V_TEXT, .s = (v)})
#define SV_BLOB(p, n) ((store_val){.type = STORE_V_BLOB, .b = (p), .len = (n)})

/* Called per result row; cols valid only during the call. Nonzero stops. */
typedef int (*store_row_fn)(void *ctx, const store_val *cols, int n_cols);

/* The common head of every backend connection. */
typedef struct store_conn {
    char err[256];  /* text of the last failure */
    bool is_broken; /* lost: reconnect before the next use */
    bool in_txn;    /* between begin and commit/rollback */
} store_conn;

typedef struct store_ops {
    const char *name;
    /* Type names for migrations: "{SERIAL}", "{BLOB}", "{REAL}". */
    const char *sql_serial_pk, *sql_blob, *sql_real;
    /* target: a file path or a libpq conninfo. On failure *out is NULL and
     * err holds the reason. */
    int (*connect)(store_conn **out, const char *target, char *err, size_t err_len);
    void (*disconnect)(store_conn *c);
    int (*exec)(store_conn *c, const char *script); /* no parameters, no rows */
    /* is_exclusive: serialize with other migrators (PostgreSQL advisory
     * lock; SQLite always takes the write lock: BEGIN IMMEDIATE). */
    int (*begin)(store_conn *c, bool is_exclusive);
    int (*commit)(store_conn *c);
    int (*rollback)(store_conn *c);
    /* Runs store_sql[stmt]. *out_changes (may be NULL): rows changed. */
    int (*query)(store_conn *c, int stmt, const store_val *params, int n_params, store_row_fn fn,
                 void *ctx, int64_t *out_changes);
    /* Upserts n player rows inside the caller's transaction; a row with a
     * lower version than the stored one is skipped. */
    int (*players_upsert)(store_conn *c, const store_player *p, size_t n);
} store_ops;

extern const store_ops store_sqlite_ops;
extern const store_ops store_pg_ops;

/* ---- the player-record cache (store_cache.c); its own mutex ---- */
typedef struct store_cache store_cache;
store_cache *store_cache_create(size_t capacity); /* NULL when capacity is 0 */
void store_cache_destroy(store_cache *c);
/* A loader reads gen before going to the database and hands it to put:
 * the put is dropped if the account changed meanwhile (no stale fill). */
uint32_t store_cache_gen(store_cache *c, int64_t account_id);
bool store_cache_get_account(store_cache *c, const char *username, store_account *out);
/* 1 = hit with a row, 0 = miss, -1 = hit: known to have no player row. */
int store_cache_get_player(store_cache *c, int64_t account_id, store_player *out);
bool store_cache_get_inventory(store_cache *c, int64_t account_id, store_inventory *out);
void store_cache_put_account(store_cache *c, uint32_t gen, const store_account *a);
void store_cache_put_player(store_cache *c, uint32_t gen, int64_t account_id,
                            const store_player *p); /* p NULL: no row */
void store_cache_put_inventory(store_cache *c, uint32_t gen, int64_t account_id,
                               const store_inventory *inv);
/* A newer player state is known (submit, save): update if cached. */
void store_cache_note_player(store_cache *c, const store_player *p);
/* The inventory changed in the database: forget the cached copy. */
void store_cache_drop_inventory(store_cache *c, int64_t account_id);
size_t store_cache_count(store_cache *c);

/* ---- the store thread (store_queue.c) ---- */
typedef struct store_queue store_queue;
int store_queue_create(store_queue **out, store *s);
void store_queue_destroy(store_queue *q); /* final flush, join; NULL no-op */
/* A pending (not yet committed) state of account_id, if any. */
bool store_queue_dirty_get(store_queue *q, int64_t account_id, store_player *out);

/* ---- fault injection state ---- */
typedef struct store_fault {
    int kind;           /* STORE_FAULT_* */
    uint32_t countdown; /* calls left before the faulty one; 0 = this one */
} store_fault;

struct store {
    const store_ops *ops;
    store_opts opts;
    char target[512];        /* path or conninfo given to ops->connect */
    pthread_mutex_t sync_mu; /* guards sync_conn */
    store_conn *sync_conn;   /* the synchronous calls' connection; may be NULL (lost) */
    store_cache *cache;      /* NULL when disabled */
    store_queue *queue;      /* NULL until store_start */
    pthread_mutex_t fault_mu;
    atomic_int n_faults; /* armed entries: the cheap check on every call */
    store_fault faults[STORE_OP_N];
    struct {
        core_histogram *flush_s;
        core_counter *rows_flushed, *flushes, *commit_failures, *actions_committed;
        core_counter *actions_failed, *refused, *cache_hits, *cache_misses, *reconnects;
        core_counter *errors, *checksum_failures;
        core_gauge *queue_depth, *dirty_players;
        core_gauge *failed; /* 1 once a failed fsync stopped acknowledgements: alert */
    } met;
    atomic_int is_failed;  /* sticky: see store_is_failed */
    char fail_reason[200]; /* written once, before is_failed is set */
};

/* ---- wrappers used by the store thread and migrations (store.c) ----
 * Each checks faults, calls the backend, counts failures; *conn may be
 * replaced by a reconnect (NULL while the database stays unreachable). */
int store__connect(store *s, store_conn **out, char *err, size_t err_len);
int store__begin(store *s, store_conn *c, bool is_exclusive);
int store__commit(store *s, store_conn *c);
void store__rollback(store *s, store_conn *c);
int store__exec(store *s, store_conn *c, const char *sql); /* savepoints */
/* Enters the failed state (first call wins): logs, sets the alert gauge. */
void store__fail(store *s, const char *why);
int store__flush_players(store *s, store_conn *c, const store_player *p, size_t n);
/* Applies one reliable action inside an open transaction. */
int store__apply(store *s, store_conn *c, const store_action *a, store_completion *out);
/* Fault check for op; returns the kind that fires now, or NONE. */
int store__fault_take(store *s, int op);
void store__set_err(store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs fn on the synchronous connection (store.c's sync_call: the mutex,
 * reconnects, fault injection for op, error accounting). is_read: retried
 * once on a fresh connection when the old one turns out lost. */
typedef int (*store_sync_fn)(store *s, store_conn *c, void *ctx);
int store__sync(store *s, int op, bool is_read, store_sync_fn fn, void *ctx);

/* ---- records over SQL (store_rec.c), any backend, connection given ---- */
uint64_t store_snapshot_checksum(int64_t cell, int64_t tick, const void *data, size_t len);
uint64_t store_event_checksum(const store_event *ev);
int store_rec_account_create(const store_ops *o, store_conn *c, int64_t *out_id,
                             const char *username, const char *pw_hash);
int store_rec_account_find(const store_ops *o, store_conn *c, store_account *out,
                           const char *username);
int store_rec_player_load(const store_ops *o, store_conn *c, store_player *out, int64_t id);
int store_rec_inventory_load(const store_ops *o, store_conn *c, store_inventory *out, int64_t id);
int store_rec_item_create(const store_ops *o, store_conn *c, int64_t *out_id, const store_item *it);
int store_rec_items_count(const store_ops *o, store_conn *c, int64_t *out_n);
int store_rec_items_by_cell(const store_ops *o, store_conn *c, store_item **out, size_t *out_n,
                            int64_t cell);
int store_rec_snapshot_write(const store_ops *o, store_conn *c, int64_t cell, int64_t tick,
                             const void *data, size_t len);
int store_rec_snapshot_read_latest(const store_ops *o, store_conn *c, int64_t *out_tick,
                                   uint8_t **out_data, size_t *out_len, int *out_n_refused,
                                   int64_t cell);
int store_rec_event_append(const store_ops *o, store_conn *c, int64_t *out_seq,
                           const store_event *ev);
int store_rec_events_read(const store_ops *o, store_conn *c, store_event **out, size_t *out_n,
                          int64_t cell, int64_t after_seq, size_t max);
int store_rec_apply(const store_ops *o, store_conn *c, const store_action *a,
                    store_completion *out);

/* ---- migrations (store_migrate.c) ---- */
int store_migrate_run(const store_ops *o, store_conn *c, int *out_applied);
int store_migrate_current(const store_ops *o, store_conn *c, int *out_current);
int store_migrate_latest(void);
#endif
