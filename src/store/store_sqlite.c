/* store_sqlite.c - the SQLite backend: one sqlite3 handle per connection,
 * WAL journal with synchronous=FULL (a commit is on disk before it returns:
 * the group commits confirm to clients), a busy timeout, and the shared
 * statements prepared once per connection. */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"

#define SQLITE_BUSY_TIMEOUT_MS 5000

typedef struct sq_conn {
    store_conn base; /* first: the wrappers see a store_conn */
    sqlite3 *db;
    sqlite3_stmt *stmt[STORE_SQL_N]; /* prepared on first use */
} sq_conn;

/* Maps a SQLite result code to a store code and records the text. Busy and
 * locked are transient (another writer holds the lock past the timeout);
 * constraint violations on a unique key are EXISTS. */
static int sq_fail(sq_conn *c, int rc, const char *what)
{
    snprintf(c->base.err, sizeof c->base.err, "sqlite %s: %s (%d)", what, sqlite3_errmsg(c->db),
             rc);
    int primary = rc & 0xff;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return STORE_ERR_EXISTS;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_CANTOPEN)
        return STORE_ERR_DOWN;
    /* the kernel refused an fsync: what is on disk is unknown */
    if (rc == SQLITE_IOERR_FSYNC || rc == SQLITE_IOERR_DIR_FSYNC)
        return STORE_ERR_FSYNC;
    return STORE_ERR_DB;
}

static int sq_connect(store_conn **out, const char *path, char *err, size_t err_len)
{
    *out = NULL;
    sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        core_die("out of memory");
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "sqlite open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, SQLITE_BUSY_TIMEOUT_MS);
    /* WAL lets the login path read while the store thread writes; FULL
     * syncs the WAL on every commit, which is what "confirmed" rests on.
     * A page cache of 256 KiB per connection, not SQLite's 2 MiB: the
     * working set (a tick's upserts, one player's rows) is small, and a
     * miss is a read from the OS page cache. */
    char *msg = NULL;
    rc = sqlite3_exec(c->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-256;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "sqlite setup %s: %s", path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        goto fail;
    }
    *out = &c->base;
    return STORE_OK;
fail:
    sqlite3_close(c->db);
    free(c);
    return (rc & 0xff) == SQLITE_BUSY ? STORE_ERR_DOWN : STORE_ERR_DB;
}

static void sq_disconnect(store_conn *bc)
{
    sq_conn *c = (sq_conn *)bc;
    if (!c)
        return;
    for (int i = 0; i < STORE_SQL_N; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

static int sq_exec(store_conn *bc, const char *script)
{
    sq_conn *c = (sq_conn *)bc;
    int rc = sqlite3_exec(c->db, script, NULL, NULL, NULL);
    return rc == SQLITE_OK ? STORE_OK : sq_fail(c, rc, "exec");
}

static int sq_begin(store_conn *bc, bool is_exclusive)
{
    (void)is_exclusive; /* BEGIN IMMEDIATE already excludes other writers */
    int rc = sq_exec(bc, "BEGIN IMMEDIATE");
    if (rc == STORE_OK)
        bc->in_txn = true;
    return rc;
}

static int sq_commit(store_conn *bc)
{
    int rc = sq_exec(bc, "COMMIT");
    if (rc == STORE_OK)
        bc->in_txn = false;
    return rc;
}

static int sq_rollback(store_conn *bc)
{
    sq_conn *c = (sq_conn *)bc;
    bc->in_txn = false;
    if (sqlite3_get_autocommit(c->db))
        return STORE_OK; /* SQLite already rolled back (e.g. after IOERR) */
    return sq_exec(bc, "ROLLBACK");
}

static int sq_bind(sq_conn *c, sqlite3_stmt *st, const store_val *p, int n)
{
    for (int i = 0; i < n; i++) {
        int rc;
        switch (p[i].type) {
        case STORE_V_INT:
            rc = sqlite3_bind_int64(st, i + 1, p[i].i);
            break;
        case STORE_V_REAL:
            rc = sqlite3_bind_double(st, i + 1, p[i].d);
            break;
        case STORE_V_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p[i].s, -1, SQLITE_STATIC);
            break;
        case STORE_V_BLOB:
            /* A zero-length blob must still be a blob, not NULL. */
            rc = sqlite3_bind_blob64(st, i + 1, p[i].len ? p[i].b : "", p[i].len, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, i + 1);
        }
        if (rc != SQLITE_OK)
            return sq_fail(c, rc, "bind");
    }
    return STORE_OK;
}

static int sq_prepare(sq_conn *c, int stmt, sqlite3_stmt **out)
{
    if (!c->stmt[stmt]) {
        int rc = sqlite3_prepare_v3(c->db, store_sql[stmt], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmt[stmt], NULL);
        if (rc != SQLITE_OK)
            return sq_fail(c, rc, "prepare");
    }
    *out = c->stmt[stmt];
    return STORE_OK;
}

#define SQ_MAX_COLS 8

static int sq_query(store_conn *bc, int stmt, const store_val *params, int n_params,
                    store_row_fn fn, void *ctx, int64_t *out_changes)
{
    sq_conn *c = (sq_conn *)bc;
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(c, stmt, &st);
    if (rc != STORE_OK)
        return rc;
    rc = sq_bind(c, st, params, n_params);
    bool stopped = false;
    while (rc == STORE_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = sq_fail(c, src, "step");
            break;
        }
        if (stopped || !fn)
            continue; /* run to completion so RETURNING statements finish */
        store_val cols[SQ_MAX_COLS];
        int n = sqlite3_column_count(st);
        if (n > SQ_MAX_COLS)
            core_die("store: statement %d returns %d columns", stmt, n);
        for (int i = 0; i < n; i++) {
            memset(&cols[i], 0, sizeof cols[i]);
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER:
                cols[i].type = STORE_V_INT;
                cols[i].i = sqlite3_column_int64(st, i);
                cols[i].d = (double)cols[i].i;
                break;
            case SQLITE_FLOAT:
                cols[i].type = STORE_V_REAL;
                cols[i].d = sqlite3_column_double(st, i);
                cols[i].i = (int64_t)cols[i].d;
                break;
            case SQLITE_TEXT:
                cols[i].type = STORE_V_TEXT;
                cols[i].s = (const char *)sqlite3_column_text(st, i);
                break;
            case SQLITE_BLOB:
                cols[i].type = STORE_V_BLOB;
                cols[i].b = sqlite3_column_blob(st, i);
                cols[i].len = (size_t)sqlite3_column_bytes(st, i);
                break;
            default:
                cols[i].type = STORE_V_NULL;
            }
        }
        stopped = fn(ctx, cols, n) != 0;
    }
    if (out_changes)
        *out_changes = rc == STORE_OK ? sqlite3_changes64(c->db) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* One prepared upsert per row inside the caller's transaction: SQLite has
 * no client/server round trip, so this is the fast path (DECISIONS.md). */
static int sq_players_upsert(store_conn *bc, const store_player *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        store_val v[6] = {SV_INT(p[i].account_id), SV_REAL(p[i].x),      SV_REAL(p[i].y),
                          SV_INT(p[i].hp),         SV_INT(p[i].version), SV_INT(p[i].last_seen_s)};
        int rc = sq_query(bc, STORE_SQL_PLAYER_UPSERT, v, 6, NULL, NULL, NULL);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

const store_ops store_sqlite_ops = {
    .name = "sqlite",
    .sql_serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT",
    .sql_blob = "BLOB",
    .sql_real = "REAL",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .exec = sq_exec,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .query = sq_query,
    .players_upsert = sq_players_upsert,
};
