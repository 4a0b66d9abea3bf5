/* store_refresh.c - refresh tokens and the accounts of external token
 * providers, over the shared statements (store_rec.c) on the synchronous
 * connection (store__sync: mutex, reconnect, faults, metrics).
 *
 * A refresh token is kept as the hex SHA-256 of its text; the row says
 * whose it is, until when, whether it has been exchanged (used) and
 * whether it was revoked. Exchanging is one UPDATE .. WHERE used = 0
 * RETURNING, atomic on both backends: of two calls racing with one token
 * exactly one gets the account. A token presented again after its use is
 * taken for a stolen copy (RFC 6819 5.2.2.3, "refresh token rotation"):
 * every token of the account is revoked, the thief's and the owner's. */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#include "core_time.h"

typedef struct refresh_args {
    int64_t account_id, expires, now;
    const char *username;
    char hex[2 * STORE_REFRESH_HASH_BYTES + 1];
    int64_t *out_id;
    char *out_username;
    int64_t changes;
} refresh_args;

static void to_hex(char out[2 * STORE_REFRESH_HASH_BYTES + 1],
                   const uint8_t hash[STORE_REFRESH_HASH_BYTES])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < STORE_REFRESH_HASH_BYTES; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[2 * STORE_REFRESH_HASH_BYTES] = '\0';
}

static int arg_err(store *s, const char *what)
{
    store__set_err(s, "invalid argument: %s", what);
    return STORE_ERR_ARG;
}

/* ---- external accounts ---- */

static int row_first_int(void *ctx, const store_val *c, int n)
{
    (void)n;
    *(int64_t *)ctx = c[0].i;
    return 1;
}

typedef struct ext_args {
    const char *issuer, *subject, *username, *pw_hash;
    int64_t *out_id;
} ext_args;

/* The mapping of (issuer, subject), or 0. */
static int ext_find(const store_ops *o, store_conn *c, const ext_args *a, int64_t *id)
{
    store_val v[2] = {SV_TEXT(a->issuer), SV_TEXT(a->subject)};
    *id = 0;
    return o->query(c, STORE_SQL_EXTERNAL_FIND, v, 2, row_first_int, id, NULL);
}

static int do_account_external(store *s, store_conn *c, void *ctx)
{
    ext_args *a = ctx;
    const store_ops *o = s->ops;
    int rc = ext_find(o, c, a, a->out_id);
    if (rc != STORE_OK || *a->out_id != 0)
        return rc; /* every entry after the first */
    /* First entry: the account and its mapping together. A concurrent
     * first entry of the same subject makes one of the inserts fail with
     * EXISTS (the second waits on the unique index); it then finds the
     * winner's mapping. */
    rc = store__begin(s, c, false);
    if (rc != STORE_OK)
        return rc;
    int64_t id = 0;
    store_val va[3] = {SV_TEXT(a->username), SV_TEXT(a->pw_hash), SV_INT(core_wall_s())};
    rc = o->query(c, STORE_SQL_ACCOUNT_CREATE, va, 3, row_first_int, &id, NULL);
    if (rc == STORE_OK) {
        store_val vm[4] = {SV_TEXT(a->issuer), SV_TEXT(a->subject), SV_INT(id),
                           SV_INT(core_wall_s())};
        rc = o->query(c, STORE_SQL_EXTERNAL_INSERT, vm, 4, NULL, NULL, NULL);
    }
    if (rc == STORE_OK)
        rc = store__commit(s, c);
    if (rc == STORE_OK) {
        *a->out_id = id;
        return STORE_OK;
    }
    store__rollback(s, c);
    if (rc != STORE_ERR_EXISTS)
        return rc;
    rc = ext_find(o, c, a, a->out_id);
    if (rc != STORE_OK || *a->out_id != 0)
        return rc;
    snprintf(c->err, sizeof c->err, "username '%s' belongs to another account", a->username);
    return STORE_ERR_CONFLICT;
}

int store_account_external(store *s, int64_t *out_id, const char *issuer, const char *subject,
                           const char *username, const char *pw_hash)
{
    *out_id = 0;
    if (!issuer || !*issuer || strlen(issuer) >= STORE_SUBJECT_MAX || !subject || !*subject ||
        strlen(subject) >= STORE_SUBJECT_MAX || !username || !*username ||
        strlen(username) >= STORE_USERNAME_MAX || !pw_hash || !*pw_hash ||
        strlen(pw_hash) >= STORE_PWHASH_MAX)
        return arg_err(s, "issuer, subject, username and password hash non-empty and short");
    ext_args a = {.issuer = issuer,
                  .subject = subject,
                  .username = username,
                  .pw_hash = pw_hash,
                  .out_id = out_id};
    return store__sync(s, STORE_OP_ACCOUNT_CREATE, false, do_account_external, &a);
}

/* ---- refresh tokens ---- */

static int do_refresh_put(store *s, store_conn *c, void *ctx)
{
    refresh_args *a = ctx;
    const store_ops *o = s->ops;
    store_val v[4] = {SV_TEXT(a->hex), SV_INT(a->account_id), SV_TEXT(a->username),
                      SV_INT(a->expires)};
    int rc = o->query(c, STORE_SQL_REFRESH_PUT, v, 4, NULL, NULL, NULL);
    if (rc != STORE_OK)
        return rc;
    /* Pruning after the insert: the new token is the newest, so it stays.
     * A failed prune leaves extra rows, nothing wrong: not an error. */
    store_val p[3] = {SV_INT(a->account_id), SV_INT(core_wall_s()), SV_INT(a->account_id)};
    if (o->query(c, STORE_SQL_REFRESH_PRUNE, p, 3, NULL, NULL, NULL) == STORE_ERR_DOWN)
        return STORE_ERR_DOWN;
    return STORE_OK;
}

int store_refresh_put(store *s, int64_t account_id, const char *username,
                      const uint8_t hash[STORE_REFRESH_HASH_BYTES], int64_t expires_s)
{
    if (account_id <= 0 || !hash || !username || !*username ||
        strlen(username) >= STORE_USERNAME_MAX)
        return arg_err(s, "refresh token: account id > 0, a hash and a username");
    refresh_args a = {.account_id = account_id, .username = username, .expires = expires_s};
    to_hex(a.hex, hash);
    return store__sync(s, STORE_OP_REFRESH, false, do_refresh_put, &a);
}

static int row_use(void *ctx, const store_val *c, int n)
{
    (void)n;
    refresh_args *a = ctx;
    *a->out_id = c[0].i;
    snprintf(a->out_username, STORE_USERNAME_MAX, "%s",
             c[1].type == STORE_V_TEXT && c[1].s ? c[1].s : "");
    return 1;
}

typedef struct peek_row {
    int64_t account_id, used, revoked, expires;
    bool found;
} peek_row;

static int row_peek(void *ctx, const store_val *c, int n)
{
    (void)n;
    peek_row *r = ctx;
    r->account_id = c[0].i;
    r->used = c[1].i;
    r->revoked = c[2].i;
    r->expires = c[3].i;
    r->found = true;
    return 1;
}

static int do_refresh_take(store *s, store_conn *c, void *ctx)
{
    refresh_args *a = ctx;
    const store_ops *o = s->ops;
    /* used holds the time of use; a token is never used at time 0. */
    store_val v[3] = {SV_INT(a->now > 0 ? a->now : 1), SV_TEXT(a->hex), SV_INT(a->now)};
    *a->out_id = 0;
    int rc = o->query(c, STORE_SQL_REFRESH_USE, v, 3, row_use, a, NULL);
    if (rc != STORE_OK || *a->out_id != 0)
        return rc;
    peek_row r = {0};
    store_val p[1] = {SV_TEXT(a->hex)};
    rc = o->query(c, STORE_SQL_REFRESH_PEEK, p, 1, row_peek, &r, NULL);
    if (rc != STORE_OK)
        return rc;
    if (!r.found || r.used == 0) {
        snprintf(c->err, sizeof c->err, "refresh token %s",
                 !r.found    ? "unknown"
                 : r.revoked ? "revoked"
                             : "expired");
        return STORE_ERR_NOTFOUND;
    }
    /* Used before: revoke the whole family, whatever else holds. */
    *a->out_id = r.account_id;
    store_val va[1] = {SV_INT(r.account_id)};
    rc = o->query(c, STORE_SQL_REFRESH_REVOKE_ACCOUNT, va, 1, NULL, NULL, NULL);
    if (rc != STORE_OK)
        return rc;
    snprintf(c->err, sizeof c->err,
             "refresh token of account %lld used twice: all its refresh tokens revoked",
             (long long)r.account_id);
    return STORE_ERR_CONFLICT;
}

int store_refresh_take(store *s, int64_t *out_account_id, char *out_username,
                       const uint8_t hash[STORE_REFRESH_HASH_BYTES], int64_t now_s)
{
    *out_account_id = 0;
    out_username[0] = '\0';
    if (!hash)
        return arg_err(s, "refresh token hash missing");
    refresh_args a = {.now = now_s, .out_id = out_account_id, .out_username = out_username};
    to_hex(a.hex, hash);
    /* Not a read: a retry after a lost connection could use the token
     * twice and trip the theft detection. */
    return store__sync(s, STORE_OP_REFRESH, false, do_refresh_take, &a);
}

static int do_refresh_revoke(store *s, store_conn *c, void *ctx)
{
    refresh_args *a = ctx;
    store_val v[3] = {SV_TEXT(a->hex), SV_INT(a->account_id), SV_INT(a->account_id)};
    int rc = s->ops->query(c, STORE_SQL_REFRESH_REVOKE_ONE, v, 3, NULL, NULL, &a->changes);
    if (rc == STORE_OK && a->changes == 0) {
        snprintf(c->err, sizeof c->err, "no live refresh token matched");
        return STORE_ERR_NOTFOUND;
    }
    return rc;
}

int store_refresh_revoke(store *s, int64_t account_id, const uint8_t hash[STORE_REFRESH_HASH_BYTES])
{
    if (account_id < 0 || !hash)
        return arg_err(s, "refresh token: account id >= 0 and a hash");
    refresh_args a = {.account_id = account_id};
    to_hex(a.hex, hash);
    return store__sync(s, STORE_OP_REFRESH, false, do_refresh_revoke, &a);
}

static int do_refresh_revoke_account(store *s, store_conn *c, void *ctx)
{
    refresh_args *a = ctx;
    store_val v[1] = {SV_INT(a->account_id)};
    return s->ops->query(c, STORE_SQL_REFRESH_REVOKE_ACCOUNT, v, 1, NULL, NULL, &a->changes);
}

int store_refresh_revoke_account(store *s, int64_t account_id, int64_t *out_n)
{
    if (out_n)
        *out_n = 0;
    if (account_id <= 0)
        return arg_err(s, "account id must be > 0");
    refresh_args a = {.account_id = account_id};
    int rc = store__sync(s, STORE_OP_REFRESH, false, do_refresh_revoke_account, &a);
    if (rc == STORE_OK && out_n)
        *out_n = a.changes;
    return rc;
}
