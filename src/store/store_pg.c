/* store_pg.c - the PostgreSQL backend (libpq, blocking calls on the
 * caller's thread). Each connection runs with synchronous_commit=on, so a
 * COMMIT returns only once the WAL is flushed; shared statements are
 * prepared on first use per connection ('?' rewritten to $n); parameters go
 * as text except blobs (binary); results come back as text and are parsed
 * by column type. The player flush streams rows with COPY into a temporary
 * table and merges them with one INSERT .. ON CONFLICT (DECISIONS.md: ~50x
 * a commit per row). */
#include "store_int.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"

/* Type oids (server/catalog/pg_type_d.h, stable across versions). */
#define PG_BOOLOID 16
#define PG_BYTEAOID 17
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701
#define PG_NUMERICOID 1700

#define PG_CONNECT_TIMEOUT_S "3"
#define PG_MIGRATE_LOCK_KEY "73011" /* advisory lock key serializing migrators */
#define PG_COPY_CHUNK (256 * 1024)
#define PG_MAX_PARAMS 8
#define PG_MAX_COLS 8

typedef struct pg_conn {
    store_conn base; /* first: the wrappers see a store_conn */
    PGconn *pg;
    bool is_prepared[STORE_SQL_N];
} pg_conn;

static void pg_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* NOTICEs ("already exists, skipping") are expected noise */
}

/* Records the error and classifies it: lost connections, shutdowns,
 * serialization failures and "too many connections" are transient (DOWN);
 * unique violations are EXISTS; the rest is DB. */
static int pg_fail(pg_conn *c, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = PQerrorMessage(c->pg);
    snprintf(c->base.err, sizeof c->base.err, "postgres %s: %s", what, msg);
    size_t n = strlen(c->base.err);
    while (n > 0 && (c->base.err[n - 1] == '\n' || c->base.err[n - 1] == ' '))
        c->base.err[--n] = '\0';
    if (PQstatus(c->pg) == CONNECTION_BAD || !state) {
        c->base.is_broken = PQstatus(c->pg) == CONNECTION_BAD;
        return STORE_ERR_DOWN;
    }
    if (strcmp(state, "23505") == 0)
        return STORE_ERR_EXISTS;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "53300") == 0)
        return STORE_ERR_DOWN;
    return STORE_ERR_DB;
}

/* Runs a statement without parameters; clears the result. */
static int pg_simple(pg_conn *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? STORE_OK : pg_fail(c, res, what);
    PQclear(res);
    return rc;
}

static int pg_connect(store_conn **out, const char *conninfo, char *err, size_t err_len)
{
    *out = NULL;
    pg_conn *c = calloc(1, sizeof *c);
    if (!c)
        core_die("out of memory");
    /* Parameters before dbname are defaults that the url may override. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {PG_CONNECT_TIMEOUT_S, "tessera", conninfo, NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg)
        core_die("out of memory");
    int rc = STORE_OK;
    if (PQstatus(c->pg) != CONNECTION_OK) {
        snprintf(err, err_len, "postgres connect: %s", PQerrorMessage(c->pg));
        rc = STORE_ERR_DOWN;
        goto fail;
    }
    PQsetNoticeProcessor(c->pg, pg_quiet, NULL);
    rc = pg_simple(c, "SET synchronous_commit = on", "setup");
    if (rc != STORE_OK) {
        snprintf(err, err_len, "%s", c->base.err);
        goto fail;
    }
    *out = &c->base;
    return STORE_OK;
fail:
    PQfinish(c->pg);
    free(c);
    size_t n = strlen(err);
    while (n > 0 && err[n - 1] == '\n')
        err[--n] = '\0';
    return rc;
}

static void pg_disconnect(store_conn *bc)
{
    pg_conn *c = (pg_conn *)bc;
    if (!c)
        return;
    PQfinish(c->pg);
    free(c);
}

static int pg_exec(store_conn *bc, const char *script)
{
    return pg_simple((pg_conn *)bc, script, "exec");
}

static int pg_begin(store_conn *bc, bool is_exclusive)
{
    pg_conn *c = (pg_conn *)bc;
    int rc = pg_simple(c, "BEGIN", "begin");
    if (rc == STORE_OK && is_exclusive)
        rc = pg_simple(c, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK_KEY ")", "lock");
    if (rc == STORE_OK) {
        bc->in_txn = true;
    } else if (PQstatus(c->pg) == CONNECTION_OK) {
        char why[sizeof c->base.err];
        memcpy(why, c->base.err, sizeof why);
        pg_simple(c, "ROLLBACK", "rollback");
        memcpy(c->base.err, why, sizeof why);
    }
    return rc;
}

static int pg_commit(store_conn *bc)
{
    bc->in_txn = false;
    return pg_simple((pg_conn *)bc, "COMMIT", "commit");
}

static int pg_rollback(store_conn *bc)
{
    bc->in_txn = false;
    return pg_simple((pg_conn *)bc, "ROLLBACK", "rollback");
}

/* Rewrites '?' placeholders as $1, $2, ... (the shared SQL has no '?'
 * inside literals). */
static void pg_placeholders(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    int n = 0;
    for (; *in && o + 8 < cap; in++) {
        if (*in == '?')
            o += (size_t)snprintf(out + o, cap - o, "$%d", ++n);
        else
            out[o++] = *in;
    }
    if (*in)
        core_die("store: statement too long for the placeholder rewrite");
    out[o] = '\0';
}

static int pg_prepare(pg_conn *c, int stmt)
{
    if (c->is_prepared[stmt])
        return STORE_OK;
    char sql[2048], name[16];
    pg_placeholders(store_sql[stmt], sql, sizeof sql);
    snprintf(name, sizeof name, "s%d", stmt);
    PGresult *res = PQprepare(c->pg, name, sql, 0, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? STORE_OK : pg_fail(c, res, "prepare");
    PQclear(res);
    if (rc == STORE_OK)
        c->is_prepared[stmt] = true;
    return rc;
}

/* Fills one result column; *owned receives an allocation to free after
 * the row callback (unescaped bytea). */
static void pg_col(PGresult *res, int row, int col, store_val *v, unsigned char **owned)
{
    memset(v, 0, sizeof *v);
    *owned = NULL;
    if (PQgetisnull(res, row, col))
        return;
    const char *txt = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case PG_INT8OID:
    case PG_INT4OID:
    case PG_INT2OID:
    case PG_NUMERICOID:
        v->type = STORE_V_INT;
        v->i = strtoll(txt, NULL, 10);
        v->d = (double)v->i;
        break;
    case PG_BOOLOID:
        v->type = STORE_V_INT;
        v->i = txt[0] == 't';
        break;
    case PG_FLOAT4OID:
    case PG_FLOAT8OID:
        v->type = STORE_V_REAL;
        v->d = strtod(txt, NULL);
        v->i = (int64_t)v->d;
        break;
    case PG_BYTEAOID: {
        size_t n = 0;
        *owned = PQunescapeBytea((const unsigned char *)txt, &n);
        if (!*owned)
            core_die("out of memory");
        v->type = STORE_V_BLOB;
        v->b = *owned;
        v->len = n;
        break;
    }
    default:
        v->type = STORE_V_TEXT;
        v->s = txt;
    }
}

static int pg_query(store_conn *bc, int stmt, const store_val *params, int n_params,
                    store_row_fn fn, void *ctx, int64_t *out_changes)
{
    pg_conn *c = (pg_conn *)bc;
    if (out_changes)
        *out_changes = 0;
    if (n_params > PG_MAX_PARAMS)
        core_die("store: statement %d has %d parameters", stmt, n_params);
    int rc = pg_prepare(c, stmt);
    if (rc != STORE_OK)
        return rc;
    char text[PG_MAX_PARAMS][32], name[16];
    const char *vals[PG_MAX_PARAMS];
    int lens[PG_MAX_PARAMS], fmts[PG_MAX_PARAMS];
    for (int i = 0; i < n_params; i++) {
        lens[i] = 0;
        fmts[i] = 0;
        switch (params[i].type) {
        case STORE_V_INT:
            snprintf(text[i], sizeof text[i], "%lld", (long long)params[i].i);
            vals[i] = text[i];
            break;
        case STORE_V_REAL:
            snprintf(text[i], sizeof text[i], "%.17g", params[i].d);
            vals[i] = text[i];
            break;
        case STORE_V_TEXT:
            vals[i] = params[i].s;
            break;
        case STORE_V_BLOB:
            vals[i] = params[i].len ? params[i].b : "";
            lens[i] = (int)params[i].len;
            fmts[i] = 1;
            break;
        default:
            vals[i] = NULL;
        }
    }
    snprintf(name, sizeof name, "s%d", stmt);
    PGresult *res = PQexecPrepared(c->pg, name, n_params, vals, lens, fmts, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rc = pg_fail(c, res, "query");
        PQclear(res);
        return rc;
    }
    int n_rows = PQntuples(res), n_cols = PQnfields(res);
    if (n_cols > PG_MAX_COLS)
        core_die("store: statement %d returns %d columns", stmt, n_cols);
    for (int r = 0; r < n_rows && fn; r++) {
        store_val cols[PG_MAX_COLS];
        unsigned char *owned[PG_MAX_COLS];
        for (int i = 0; i < n_cols; i++)
            pg_col(res, r, i, &cols[i], &owned[i]);
        int stop = fn(ctx, cols, n_cols);
        for (int i = 0; i < n_cols; i++)
            PQfreemem(owned[i]);
        if (stop)
            break;
    }
    if (out_changes)
        *out_changes = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return STORE_OK;
}

static const char pg_stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS players_stage (account_id BIGINT, x DOUBLE PRECISION, "
    "y DOUBLE PRECISION, hp INTEGER, version BIGINT, last_seen BIGINT) ON COMMIT DELETE ROWS";
static const char pg_merge_sql[] =
    "INSERT INTO players (account_id, x, y, hp, version, last_seen) "
    "SELECT account_id, x, y, hp, version, last_seen FROM players_stage "
    "ON CONFLICT (account_id) DO UPDATE SET x = excluded.x, y = excluded.y, hp = excluded.hp, "
    "version = excluded.version, last_seen = excluded.last_seen "
    "WHERE players.version <= excluded.version";

/* COPY text rows into the per-session temporary table (emptied at each
 * commit), then one set-based upsert. Inside the caller's transaction. */
static int pg_players_upsert(store_conn *bc, const store_player *p, size_t n)
{
    pg_conn *c = (pg_conn *)bc;
    int rc = pg_simple(c, pg_stage_sql, "stage");
    if (rc != STORE_OK)
        return rc;
    PGresult *res = PQexec(c->pg, "COPY players_stage FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        rc = pg_fail(c, res, "copy");
        PQclear(res);
        return rc;
    }
    PQclear(res);
    char *buf = malloc(PG_COPY_CHUNK);
    if (!buf)
        core_die("out of memory");
    size_t used = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        used += (size_t)snprintf(buf + used, PG_COPY_CHUNK - used,
                                 "%lld\t%.17g\t%.17g\t%d\t%lld\t%lld\n", (long long)p[i].account_id,
                                 p[i].x, p[i].y, (int)p[i].hp, (long long)p[i].version,
                                 (long long)p[i].last_seen_s);
        /* A row is under 160 bytes: keep 256 free so the next one fits. */
        if (used > PG_COPY_CHUNK - 256 || i + 1 == n) {
            ok = PQputCopyData(c->pg, buf, (int)used) == 1;
            used = 0;
        }
    }
    free(buf);
    if (PQputCopyEnd(c->pg, ok ? NULL : "client aborted the copy") != 1)
        ok = false;
    rc = STORE_OK;
    while ((res = PQgetResult(c->pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == STORE_OK)
            rc = pg_fail(c, res, "copy");
        PQclear(res);
    }
    if (rc == STORE_OK && !ok)
        rc = pg_fail(c, NULL, "copy");
    if (rc != STORE_OK)
        return rc;
    return pg_simple(c, pg_merge_sql, "merge");
}

const store_ops store_pg_ops = {
    .name = "postgres",
    .sql_serial_pk = "BIGSERIAL PRIMARY KEY",
    .sql_blob = "BYTEA",
    .sql_real = "DOUBLE PRECISION",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec = pg_exec,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .query = pg_query,
    .players_upsert = pg_players_upsert,
};
