/* gw_refresh.c - the login workers' jobs for refresh tokens (issue on
 * login, exchange on /api/refresh, revoke on /api/logout) and for the
 * entry of an external provider's account (its subject mapped to an
 * account of ours, created on first entry). The store calls block,
 * which is why these run on the workers and never on the gateway thread.
 *
 * A refresh token is 32 random bytes in base64url (gw_auth_refresh_new);
 * the store keeps only its SHA-256. Each exchange uses the token up and
 * hands out a new one (rotation); a used token presented again revokes
 * every refresh token of the account (store_refresh_take). */
#include "gw_auth_int.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core_log.h"
#include "core_time.h"

int gw_refresh_issue(store *st, int ttl_s, uint32_t account_id, const char *username,
                     gw_login_result *res)
{
    res->refresh[0] = '\0';
    if (st == NULL)
        return 0;
    uint8_t hash[STORE_REFRESH_HASH_BYTES];
    char tok[GW_AUTH_REFRESH_LEN + 1];
    gw_auth_refresh_new(tok, hash);
    int rc = store_refresh_put(st, account_id, username, hash, core_wall_s() + ttl_s);
    if (rc != STORE_OK) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "account %u: storing a refresh token failed: %s",
                 account_id, store_errmsg(st));
        sodium_memzero(tok, sizeof tok);
        return -1;
    }
    memcpy(res->refresh, tok, sizeof tok);
    sodium_memzero(tok, sizeof tok);
    return 0;
}

void gw_refresh_do(store *st, gw_auth *a, int ttl_s, const char *rt, gw_login_result *res)
{
    res->status = GW_AUTH_E_CREDENTIALS;
    uint8_t hash[STORE_REFRESH_HASH_BYTES];
    if (st == NULL || gw_auth_refresh_hash(rt, hash) != 0)
        return;
    int64_t id = 0;
    char name[STORE_USERNAME_MAX];
    int rc = store_refresh_take(st, &id, name, hash, core_wall_s());
    if (rc == STORE_ERR_NOTFOUND)
        return;
    if (rc == STORE_ERR_CONFLICT) {
        /* Logged: an operator wants to see token theft (or a client that
         * replays its old token, which looks the same). */
        core_log(CORE_LOG_WARN, "gw", NULL, "account %lld: %s", (long long)id, store_errmsg(st));
        res->account_id = id > 0 && id <= UINT32_MAX ? (uint32_t)id : 0;
        res->status = GW_AUTH_E_REUSED;
        return;
    }
    if (rc != STORE_OK || id <= 0 || id > UINT32_MAX) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "refresh: store failed: %s", store_errmsg(st));
        res->status = GW_AUTH_E_STORE;
        return;
    }
    res->account_id = (uint32_t)id;
    snprintf(res->username, sizeof res->username, "%.*s", (int)sizeof res->username - 1, name);
    if (gw_auth_issue(a, res->account_id, name, res->token, sizeof res->token) != 0) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "refresh: account %lld has an invalid name",
                 (long long)id);
        res->status = GW_AUTH_E_CREDENTIALS;
        return;
    }
    /* The old token is used up already: if storing the new one fails the
     * client gets a 503 and must log in again. Rare (the store answered a
     * moment ago), and logged. */
    if (gw_refresh_issue(st, ttl_s, res->account_id, name, res) != 0) {
        res->token[0] = '\0';
        res->status = GW_AUTH_E_STORE;
        return;
    }
    res->status = GW_AUTH_OK;
}

void gw_logout_do(store *st, const gw_claims *access, const char *rt, gw_login_result *res)
{
    res->status = GW_AUTH_OK;
    if (access != NULL) {
        res->has_revoke = true;
        res->revoke = *access;
        res->account_id = access->account_id;
    }
    uint8_t hash[STORE_REFRESH_HASH_BYTES];
    if (st == NULL || rt == NULL || rt[0] == '\0' || gw_auth_refresh_hash(rt, hash) != 0)
        return; /* nothing (valid) to revoke: logging out is idempotent */
    int rc = store_refresh_revoke(st, access ? access->account_id : 0, hash);
    if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "logout: store failed: %s", store_errmsg(st));
        res->status = GW_AUTH_E_STORE;
    }
}

void gw_external_enter(store *st, const gw_auth *a, uint32_t subject, const char *username,
                       gw_login_result *res)
{
    if (st == NULL)
        return; /* tests without a store: the subject stands in for the id */
    char sub[16];
    snprintf(sub, sizeof sub, "%u", subject);
    int64_t id = 0;
    int rc = store_account_external(st, &id, a->ext_issuer, sub, username, GW_EXTERNAL_PW_HASH);
    if (rc == STORE_ERR_CONFLICT) {
        core_log(CORE_LOG_WARN, "gw", NULL, "external token of %s refused: %s", sub,
                 store_errmsg(st));
        res->status = GW_AUTH_E_ACCOUNT;
    } else if (rc != STORE_OK || id <= 0 || id > UINT32_MAX) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "external account %s: %s", sub, store_errmsg(st));
        res->status = GW_AUTH_E_STORE;
    } else {
        res->account_id = (uint32_t)id;
    }
}
