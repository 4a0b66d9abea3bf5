/* store_migrate.c - versioned schema migrations, the same schema on both
 * backends. Each migration is one SQL script written once; the backend's
 * type names replace {SERIAL} (auto-increment primary key), {BLOB} and
 * {REAL}. Applied versions are rows of schema_migrations. All pending
 * migrations run in one transaction taken with the migrators' exclusive
 * lock, so two processes starting at once cannot both apply one.
 *
 * Never edit a released migration: append a new one. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "core_time.h"

typedef struct migration {
    int version; /* 1, 2, ... without gaps */
    const char *name;
    const char *sql;
} migration;

static const migration migrations[] = {
    {1, "initial schema",
     "CREATE TABLE accounts (id {SERIAL}, username TEXT NOT NULL UNIQUE, "
     "  pw_hash TEXT NOT NULL, created BIGINT NOT NULL);\n"
     /* No foreign keys to accounts: a flush batch must never be poisoned by
      * one row, and only the store module writes these tables. */
     "CREATE TABLE players (account_id BIGINT PRIMARY KEY, x {REAL} NOT NULL, "
     "  y {REAL} NOT NULL, hp INTEGER NOT NULL, version BIGINT NOT NULL, "
     "  last_seen BIGINT NOT NULL);\n"
     "CREATE TABLE inventory (account_id BIGINT NOT NULL, slot INTEGER NOT NULL, "
     "  item_kind INTEGER NOT NULL, quantity INTEGER NOT NULL, "
     "  PRIMARY KEY (account_id, slot));\n"
     "CREATE TABLE world_items (id {SERIAL}, cell BIGINT NOT NULL, x {REAL} NOT NULL, "
     "  y {REAL} NOT NULL, item_kind INTEGER NOT NULL, quantity INTEGER NOT NULL, "
     "  taken_by BIGINT);\n"
     "CREATE INDEX world_items_cell ON world_items (cell) WHERE taken_by IS NULL;\n"
     "CREATE TABLE cell_snapshots (cell BIGINT NOT NULL, tick BIGINT NOT NULL, "
     "  checksum BIGINT NOT NULL, data {BLOB} NOT NULL, written BIGINT NOT NULL, "
     "  PRIMARY KEY (cell, tick));\n"
     "CREATE TABLE events (seq {SERIAL}, tick BIGINT NOT NULL, cell BIGINT NOT NULL, "
     "  entity BIGINT NOT NULL, kind INTEGER NOT NULL, payload {BLOB} NOT NULL, "
     "  checksum BIGINT NOT NULL);\n"
     "CREATE INDEX events_cell_seq ON events (cell, seq);\n"},
    /* Refresh tokens, stored as the hex SHA-256 of the token text (the
     * token itself never reaches the database). used: when it was
     * exchanged (0 = not yet); revoked: 1 after logout or theft.
     * External accounts: a token provider's (issuer, subject) -> the
     * account (an accounts row with an unusable password) made for it on
     * first entry; our ids stay ours, whatever the provider's are. */
    {2, "refresh tokens and external accounts",
     "CREATE TABLE refresh_tokens (hash TEXT PRIMARY KEY, account_id BIGINT NOT NULL, "
     "  username TEXT NOT NULL, expires BIGINT NOT NULL, used BIGINT NOT NULL, "
     "  revoked INTEGER NOT NULL);\n"
     "CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);\n"
     "CREATE TABLE external_accounts (issuer TEXT NOT NULL, subject TEXT NOT NULL, "
     "  account_id BIGINT NOT NULL UNIQUE, created BIGINT NOT NULL, "
     "  PRIMARY KEY (issuer, subject));\n"},
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL, applied BIGINT NOT NULL)";

int store_migrate_latest(void)
{
    return N_MIGRATIONS;
}

/* Expands the {NAME} type placeholders into a malloc'd script. */
static char *expand(const store_ops *o, const char *sql)
{
    const struct {
        const char *key, *val;
    } subst[] = {{"{SERIAL}", o->sql_serial_pk}, {"{BLOB}", o->sql_blob}, {"{REAL}", o->sql_real}};
    size_t cap = strlen(sql) * 2 + 256, n = 0;
    char *out = malloc(cap);
    if (!out)
        core_die("out of memory");
    while (*sql) {
        bool done = false;
        for (size_t i = 0; i < sizeof subst / sizeof subst[0] && !done; i++) {
            size_t kl = strlen(subst[i].key), vl = strlen(subst[i].val);
            if (strncmp(sql, subst[i].key, kl) != 0)
                continue;
            if (n + vl + 1 > cap)
                core_die("store: migration expansion overflow");
            memcpy(out + n, subst[i].val, vl);
            n += vl;
            sql += kl;
            done = true;
        }
        if (done)
            continue;
        if (n + 2 > cap)
            core_die("store: migration expansion overflow");
        out[n++] = *sql++;
    }
    out[n] = '\0';
    return out;
}

static int row_version(void *ctx, const store_val *c, int n)
{
    (void)n;
    *(int *)ctx = (int)c[0].i;
    return 1;
}

int store_migrate_current(const store_ops *o, store_conn *c, int *out_current)
{
    *out_current = 0;
    int rc = o->query(c, STORE_SQL_MIG_VERSION, NULL, 0, row_version, out_current, NULL);
    /* A database never migrated has no table yet: version 0. A lost
     * connection stays an error. */
    if (rc == STORE_ERR_DB) {
        *out_current = 0;
        return STORE_OK;
    }
    return rc;
}

int store_migrate_run(const store_ops *o, store_conn *c, int *out_applied)
{
    *out_applied = 0;
    int rc = o->begin(c, true);
    if (rc != STORE_OK)
        return rc;
    rc = o->exec(c, create_table_sql);
    int current = 0;
    if (rc == STORE_OK)
        rc = o->query(c, STORE_SQL_MIG_VERSION, NULL, 0, row_version, &current, NULL);
    if (rc == STORE_OK && current > N_MIGRATIONS) {
        snprintf(c->err, sizeof c->err,
                 "database schema is at version %d, newer than this build knows (%d)", current,
                 N_MIGRATIONS);
        rc = STORE_ERR_DB;
    }
    int applied = 0;
    for (int i = current; rc == STORE_OK && i < N_MIGRATIONS; i++) {
        char *sql = expand(o, migrations[i].sql);
        rc = o->exec(c, sql);
        free(sql);
        store_val v[3] = {SV_INT(migrations[i].version), SV_TEXT(migrations[i].name),
                          SV_INT(core_wall_s())};
        if (rc == STORE_OK)
            rc = o->query(c, STORE_SQL_MIG_RECORD, v, 3, NULL, NULL, NULL);
        if (rc != STORE_OK) {
            char why[sizeof c->err + 96];
            snprintf(why, sizeof why, "migration %d (%s): %s", migrations[i].version,
                     migrations[i].name, c->err);
            memcpy(c->err, why, sizeof c->err - 1);
            c->err[sizeof c->err - 1] = '\0';
        }
        applied++;
    }
    if (rc == STORE_OK)
        rc = o->commit(c);
    if (rc != STORE_OK) {
        char why[sizeof c->err];
        memcpy(why, c->err, sizeof why);
        o->rollback(c);
        memcpy(c->err, why, sizeof why);
        return rc;
    }
    if (applied)
        CORE_INFO("store", "migrated %s schema from version %d to %d", o->name, current,
                  N_MIGRATIONS);
    *out_applied = applied;
    return STORE_OK;
}
