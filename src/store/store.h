/* store.h - persistence: accounts, players, inventory, world items, cell
 * snapshots and the event log, on SQLite (default) or PostgreSQL.
 *
 * Two ways in:
 *  - synchronous calls (tests, tools, login workers): any thread, serialized
 *    on one connection; player/account/inventory reads go through an LRU
 *    cache and the pending dirty states first, so a cached login never
 *    touches the database;
 *  - the store thread (store_start): shards submit dirty player states
 *    (coalesced per account, flushed every flush_interval_ms in ONE
 *    transaction) and reliable actions (group-committed as they come, in
 *    one transaction per batch). Submits never block: a full queue is an
 *    immediate STORE_ERR_FULL. An action's outcome arrives on its
 *    completion queue (cq, a small integer like a bus endpoint) only after
 *    its transaction committed, or as an error with a reason.
 *
 * Every call returns 0 or a negative STORE_ERR_*; detail of the calling
 * thread's last failure on s is in store_errmsg(s). Pointer arguments are
 * borrowed. Fault injection (store_fault_set) is always compiled in. */
#ifndef STORE_H
#define STORE_H
#include <stddef.h>
#include <stdint.h>

#include "core_metrics.h"

enum {
    STORE_OK = 0,
    STORE_ERR_ARG = -1,      /* bad argument (the wrapper's checks) */
    STORE_ERR_URL = -2,      /* unknown url scheme */
    STORE_ERR_NOTFOUND = -3, /* no such row */
    STORE_ERR_EXISTS = -4,   /* unique key taken (username) */
    STORE_ERR_CONFLICT = -5, /* an action's precondition failed (item gone, slot used) */
    STORE_ERR_CHECKSUM = -6, /* a stored record failed its checksum: refused */
    STORE_ERR_FULL = -7,     /* queue or dirty set full: refused, nothing queued */
    STORE_ERR_DB = -8,       /* the database failed the statement or the commit */
    STORE_ERR_DOWN = -9,     /* database unreachable (connection lost, locked) */
    STORE_ERR_TIMEOUT = -10, /* reliable action not committed within reliable_timeout_ms */
    STORE_ERR_CLOSED = -11,  /* store thread not running or shutting down */
    STORE_ERR_FSYNC = -12,   /* a write's durability is unknown (failed fsync): the store
                              * has stopped acknowledging writes until it is restarted */
};

#define STORE_USERNAME_MAX 64 /* bytes, NUL included */
#define STORE_PWHASH_MAX 160  /* bytes, NUL included (argon2id encoded) */
#define STORE_INV_SLOTS 32    /* inventory slots 0..31 */
#define STORE_MAX_CQ 64       /* completion queues 0..63 */

typedef struct store store;

typedef struct store_opts {
    size_t queue_capacity;        /* reliable actions submitted and not yet polled */
    size_t max_dirty_players;     /* distinct accounts with an unflushed state */
    size_t cache_capacity;        /* player records in the LRU; 0 disables it */
    uint32_t flush_interval_ms;   /* dirty player flush period */
    uint32_t reliable_timeout_ms; /* an action not committed by then fails */
    uint32_t retry_max_ms;        /* reconnect backoff cap (starts at 20 ms) */
    uint32_t prune_interval_ms;   /* retention pass period; 0 = never prune */
    uint32_t keep_snapshots;      /* newest snapshots kept per cell (>= 1); older
                                   * ones, and events before the oldest kept, go */
} store_opts;

typedef struct store_account {
    int64_t id; /* > 0 */
    char username[STORE_USERNAME_MAX];
    char pw_hash[STORE_PWHASH_MAX];
    int64_t created_s; /* Unix seconds */
} store_account;

typedef struct store_player {
    int64_t account_id; /* > 0 */
    double x, y;        /* world units, finite */
    int32_t hp;
    int64_t version;     /* caller's counter: a stored row is never replaced by a lower one */
    int64_t last_seen_s; /* Unix seconds */
} store_player;

typedef struct store_inventory {
    size_t n; /* used entries, ascending slot */
    struct {
        int32_t slot, item_kind, quantity;
    } slots[STORE_INV_SLOTS];
} store_inventory;

typedef struct store_item {
    int64_t id, cell;
    double x, y;
    int32_t item_kind, quantity;
} store_item;

typedef struct store_event {
    int64_t seq; /* assigned by the database, increasing */
    int64_t tick, cell, entity;
    int32_t kind;
    uint8_t *payload; /* owned by the array from store_events_read */
    size_t len;
} store_event;

/* Reliable actions. Fields used per kind:
 *  INV_SET    account_id, slot, item_kind, quantity (0 empties the slot)
 *  ITEM_TAKE  item_id -> inventory (account_id, slot); CONFLICT if the item
 *             is gone or the slot used
 *  ITEM_PUT   inventory (account_id, slot) -> a new world item at cell, x, y;
 *             CONFLICT if the slot is empty
 *  EVENT      tick, cell, entity, event_kind, data/len (payload)
 *  SNAPSHOT   cell, tick, data/len (the checksum is computed here)
 * data is copied at submit. */
enum {
    STORE_ACT_INV_SET = 1,
    STORE_ACT_ITEM_TAKE,
    STORE_ACT_ITEM_PUT,
    STORE_ACT_EVENT,
    STORE_ACT_SNAPSHOT
};
typedef struct store_action {
    int kind;
    int64_t account_id, item_id, cell, tick, entity;
    int32_t slot, item_kind, quantity, event_kind;
    double x, y;
    const void *data;
    size_t len;
} store_action;

typedef struct store_completion {
    uint64_t token;              /* the submitter's value */
    int kind;                    /* STORE_ACT_* */
    int status;                  /* STORE_OK only after commit; else an error code */
    int64_t id;                  /* TAKE: the item; PUT: the new world item; EVENT: seq */
    int32_t item_kind, quantity; /* TAKE and PUT: what moved */
    char reason[160];            /* empty on success */
} store_completion;

void store_opts_default(store_opts *o);

/* Opens url: "sqlite:PATH", a plain PATH, or NULL/"" for ./data/tessera.db
 * (the folder is created), or "postgres://..."/"postgresql://..." (libpq).
 * m may be NULL. Does not migrate (see store_migrate_up). Returns 0,
 * STORE_ERR_URL, STORE_ERR_DOWN or STORE_ERR_DB; *out NULL on failure. */
int store_open(store **out, const char *url, core_metrics *m);
int store_open_opts(store **out, const char *url, const store_opts *o, core_metrics *m);
/* Stops the store thread after a last flush of everything pending (an
 * action that cannot be committed completes with an error), then closes.
 * NULL is a no-op. No other call on s may be running or follow. */
void store_close(store *s);
/* This thread's last failure on s; store_errmsg(NULL): of store_open. */
const char *store_errmsg(store *s);
const char *store_strerror(int rc);
const char *store_backend(store *s); /* "sqlite" or "postgres" */

/* Migrations: applies the pending ones in one transaction. */
int store_migrate_up(store *s, int *out_applied);
int store_migrate_status(store *s, int *out_current, int *out_latest);

/* Synchronous calls, any thread. */
int store_account_create(store *s, int64_t *out_id, const char *username, const char *pw_hash);
int store_account_find(store *s, store_account *out, const char *username);
int store_player_load(store *s, store_player *out, int64_t account_id); /* NOTFOUND if new */
int store_player_save(store *s, const store_player *p);
int store_inventory_load(store *s, store_inventory *out, int64_t account_id);
int store_item_create(store *s, int64_t *out_id, const store_item *it); /* it->id ignored */
/* Rows of the world items table, taken ones included (0: never seeded). */
int store_items_count(store *s, int64_t *out_n);
/* Items lying in cell (not taken). *out is malloc'd, caller frees. */
int store_items_by_cell(store *s, store_item **out, size_t *out_n, int64_t cell);
int store_snapshot_write(store *s, int64_t cell, int64_t tick, const void *data, size_t len);
/* The newest snapshot of cell whose checksum verifies; newer ones that fail
 * are refused (logged, counted in *out_n_refused). *out_data is malloc'd.
 * NOTFOUND if none; CHECKSUM if all fail. */
int store_snapshot_read_latest(store *s, int64_t *out_tick, uint8_t **out_data, size_t *out_len,
                               int *out_n_refused, int64_t cell);
int store_event_append(store *s, int64_t *out_seq, const store_event *ev);
/* Events of cell with seq > after_seq, ascending, at most max. A record
 * failing its checksum fails the call (CHECKSUM). Free with store_events_free. */
int store_events_read(store *s, store_event **out, size_t *out_n, int64_t cell, int64_t after_seq,
                      size_t max);
void store_events_free(store_event *ev, size_t n);

/* Accounts of external token providers (store_refresh.c): the account of
 * (issuer, subject) into *out_id; on first entry an account named
 * username is created with pw_hash (an unusable one, so no password login
 * reaches it) and mapped, in one transaction. CONFLICT when, on first
 * entry, username is another account's. Any thread. */
#define STORE_SUBJECT_MAX 256 /* bytes of issuer and of subject, NUL included */
int store_account_external(store *s, int64_t *out_id, const char *issuer, const char *subject,
                           const char *username, const char *pw_hash);

/* Refresh tokens, by the SHA-256 of the token (the token is never
 * stored). Any thread. */
#define STORE_REFRESH_HASH_BYTES 32
#define STORE_REFRESH_PER_ACCOUNT 32 /* newest kept per account */
/* Stores a new token of account_id valid until expires_s (Unix seconds);
 * prunes the account's expired tokens and all but its newest
 * STORE_REFRESH_PER_ACCOUNT. */
int store_refresh_put(store *s, int64_t account_id, const char *username,
                      const uint8_t hash[STORE_REFRESH_HASH_BYTES], int64_t expires_s);
/* Uses a token up, atomically (one UPDATE; of two racing calls one wins):
 *  OK        it was live: *out_account_id, out_username (STORE_USERNAME_MAX)
 *  NOTFOUND  unknown, expired or revoked
 *  CONFLICT  it had been used before: a stolen copy or a replay, so every
 *            token of the account is revoked now (*out_account_id set) */
int store_refresh_take(store *s, int64_t *out_account_id, char *out_username,
                       const uint8_t hash[STORE_REFRESH_HASH_BYTES], int64_t now_s);
/* Revokes one live token (of account_id, or of any account when 0). OK, or
 * NOTFOUND when no live token matched. */
int store_refresh_revoke(store *s, int64_t account_id,
                         const uint8_t hash[STORE_REFRESH_HASH_BYTES]);
/* Revokes every token of the account; *out_n (may be NULL) how many. */
int store_refresh_revoke_account(store *s, int64_t account_id, int64_t *out_n);

/* Starts the store thread (its own connection). Call once, after
 * store_migrate_up and before other threads use s. Completions must be
 * polled: an unpolled one still counts against queue_capacity. */
int store_start(store *s);
/* Queues p (latest wins per account). FULL if max_dirty_players distinct
 * accounts are already waiting. Any thread, never blocks. */
int store_submit_player(store *s, const store_player *p);
/* Queues a reliable action; its completion comes on cq with token: OK only
 * after its transaction committed, else an error with a reason (TIMEOUT
 * when the database stayed unreachable for reliable_timeout_ms). FULL if
 * queue_capacity actions are outstanding. Any thread, never blocks. */
int store_submit(store *s, uint32_t cq, uint64_t token, const store_action *a);
/* An eventfd readable while cq has completions (read it, then poll). */
int store_completions_fd(store *s, uint32_t cq);
/* Takes up to max completions of cq, in submit order. One thread per cq. */
size_t store_completions_poll(store *s, uint32_t cq, store_completion *out, size_t max);
/* Flushes dirty player states now and waits up to timeout_ms. Returns the
 * flush result (STORE_ERR_TIMEOUT if it did not finish in time). */
int store_flush(store *s, int timeout_ms);
/* Nonzero once a failed fsync stopped the store from acknowledging writes
 * (the reason is in store_errmsg). Retrying blindly after a failed fsync
 * can confirm data the disk never kept, so the store stays failed, logs an
 * error and sets the alert gauge tessera_store_failed until a restart. */
int store_is_failed(store *s);
size_t store_dirty_count(store *s); /* player states waiting for a flush */

/* Fault injection, for tests. op: a STORE_OP_* or STORE_OP_ANY; nth >= 1:
 *  FAIL  the nth call fails (STORE_ERR_DB, "injected") without reaching the db
 *  SLOW  the nth call first sleeps STORE_FAULT_SLOW_MS
 *  FSYNC the nth call runs, then reports STORE_ERR_DB ("fsync failed")
 *  DOWN  the nth and all later calls fail with STORE_ERR_DOWN
 * STORE_FAULT_NONE clears op (STORE_OP_ANY: all). */
enum {
    STORE_OP_CONNECT, /* connect and reconnect */
    STORE_OP_ACCOUNT_CREATE,
    STORE_OP_ACCOUNT_FIND,
    STORE_OP_PLAYER_LOAD,
    STORE_OP_PLAYER_SAVE,
    STORE_OP_INVENTORY_LOAD,
    STORE_OP_ITEMS,    /* item create, items by cell */
    STORE_OP_SNAPSHOT, /* snapshot write and read */
    STORE_OP_EVENTS,   /* event append and read */
    STORE_OP_MIGRATE,
    STORE_OP_FLUSH,   /* the store thread's player batch */
    STORE_OP_APPLY,   /* one reliable action inside the group transaction */
    STORE_OP_COMMIT,  /* the store thread's commits (flush and group) */
    STORE_OP_REFRESH, /* refresh token calls */
    STORE_OP_N,
    STORE_OP_ANY = -1
};
enum { STORE_FAULT_NONE, STORE_FAULT_FAIL, STORE_FAULT_SLOW, STORE_FAULT_FSYNC, STORE_FAULT_DOWN };
#define STORE_FAULT_SLOW_MS 300
int store_fault_set(store *s, int op, int kind, uint32_t nth);
#endif
