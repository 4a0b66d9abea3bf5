/* gw_acct.c - the gateway's account sessions beyond the password login:
 * token provider set-up and key reloads, the failed-login limits (429),
 * POST /api/refresh and POST /api/logout (docs/protocol.md section 2).
 *
 * Divisions: set-up and the timer; login limits; token answers; refresh;
 * logout; answers from the workers.
 *
 * Store work (refresh token exchange and revocation) runs on the login
 * workers (gw_refresh.c); this file only parses, queues and answers, on
 * the gateway thread. The access token of a logout is revoked when the
 * worker reports the refresh token revoked, so a 503 changes nothing and
 * the client can simply retry. */
#include "gw_acct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core_log.h"

#define GW_ACCT_KEYS_CHECK_MS 5000 /* how often the key folder's mtime is looked at */
#define NO_STORE "Cache-Control: no-store\r\n"

typedef struct gw_acct {
    gw_limit *limit;
    core_counter *c_limited_account, *c_limited_addr; /* tessera_login_limited_total */
    core_counter *c_refresh_reused;                   /* theft detections */
    struct timespec keys_mtime;                       /* of cfg.jwt_keys_dir at the last load */
    uint64_t keys_checked_ms;                         /* last look at it */
} gw_acct;

/* ---- set-up and the timer ---- */

static int keys_load(gw *g, bool is_reload)
{
    char err[512];
    struct stat st;
    if (stat(g->cfg.jwt_keys_dir, &st) == 0)
        g->acct->keys_mtime = st.st_mtim;
    int n = gw_auth_keys_load_dir(g->auth, g->cfg.jwt_keys_dir, err, sizeof err);
    if (n < 0) {
        CORE_ERROR("gw", "%s%s", err, is_reload ? " (keeping the previous keys)" : "");
        return -1;
    }
    CORE_INFO("gw", "%s %d token provider key(s) from %s", is_reload ? "reloaded" : "loaded", n,
              g->cfg.jwt_keys_dir);
    return 0;
}

int gw_acct_setup(gw *g)
{
    gw_acct *a = calloc(1, sizeof *a);
    if (a == NULL)
        core_die("out of memory");
    g->acct = a;
    const core_config *cfg = &g->cfg;
    if (gw_auth_set_policy(g->auth, cfg->jwt_issuer, cfg->jwt_audience, cfg->jwt_skew_s) != 0) {
        CORE_ERROR("gw", "bad jwt_issuer, jwt_audience or jwt_skew_s");
        return -1;
    }
    if (cfg->jwt_keys_dir[0] && keys_load(g, false) != 0)
        return -1;
    gw_login_set_refresh_ttl(g->login, cfg->refresh_ttl_s);
    a->limit = gw_limit_create(cfg->login_fail_per_account, cfg->login_fail_per_addr,
                               cfg->login_fail_window_s);
    static const char name[] = "tessera_login_limited_total";
    static const char help[] = "Logins refused with 429 after too many failures, by key";
    a->c_limited_account = core_metrics_counter(g->m, name, help, "by=\"account\"");
    a->c_limited_addr = core_metrics_counter(g->m, name, help, "by=\"address\"");
    a->c_refresh_reused = core_metrics_counter(
        g->m, "tessera_refresh_reused_total",
        "Used refresh tokens presented again (all of the account revoked)", NULL);
    return 0;
}

void gw_acct_teardown(gw *g)
{
    if (g->acct == NULL)
        return;
    gw_limit_destroy(g->acct->limit);
    free(g->acct);
    g->acct = NULL;
}

void gw_acct_sweep(gw *g)
{
    gw_acct *a = g->acct;
    if (!g->cfg.jwt_keys_dir[0] || g->now_ms - a->keys_checked_ms < GW_ACCT_KEYS_CHECK_MS)
        return;
    a->keys_checked_ms = g->now_ms;
    /* One stat per period on the gateway thread; files are read only when
     * the folder changed (a key added, removed or renamed into place). */
    struct stat st;
    if (stat(g->cfg.jwt_keys_dir, &st) != 0 ||
        (st.st_mtim.tv_sec == a->keys_mtime.tv_sec && st.st_mtim.tv_nsec == a->keys_mtime.tv_nsec))
        return;
    keys_load(g, true);
}

/* ---- login limits ---- */

bool gw_acct_login_limited(gw *g, gw_conn *c, const char *username)
{
    int retry_s = 0;
    gw_limit_by by = gw_limit_check(g->acct->limit, g->now_ms, c->addr, username, &retry_s);
    if (by == GW_LIMIT_NONE)
        return false;
    core_counter_add(by == GW_LIMIT_ACCOUNT ? g->acct->c_limited_account : g->acct->c_limited_addr,
                     1);
    char reason[96], extra[48];
    snprintf(reason, sizeof reason, "too many failed logins; retry in %d s", retry_s);
    snprintf(extra, sizeof extra, "Retry-After: %d\r\n", retry_s);
    gw_routes_json(g, c, 429, json_pack("{s:s, s:s}", "error", "rate_limited", "reason", reason),
                   extra);
    return true;
}

void gw_acct_login_failed(gw *g, gw_conn *c, const char *username)
{
    gw_limit_fail(g->acct->limit, g->now_ms, c->addr, username);
}

/* ---- token answers ---- */

json_t *gw_acct_token_body(gw *g, const gw_login_result *r)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:s}", "token", r->token, "token_type", "Bearer",
                          "expires_in", g->cfg.token_ttl_s, "account_id", (json_int_t)r->account_id,
                          "username", r->username);
    if (o == NULL)
        core_die("out of memory");
    if (r->refresh[0]) {
        json_object_set_new(o, "refresh_token", json_string(r->refresh));
        json_object_set_new(o, "refresh_expires_in", json_integer(g->cfg.refresh_ttl_s));
    }
    return o;
}

/* Parks c until the worker's answer (input unread meanwhile, so pipelined
 * requests are answered in order), like a login. */
static void wait_worker(gw *g, gw_conn *c)
{
    c->state = GW_CONN_LOGIN_WAIT;
    c->deadline_ms = 0;
    gw_conn_update_events(g, c);
}

/* body as a JSON object (an empty body is an empty object); NULL after
 * answering 400. */
static json_t *body_object(gw *g, gw_conn *c, const uint8_t *body, size_t blen)
{
    json_error_t jerr;
    json_t *root = blen ? json_loadb((const char *)body, blen, 0, &jerr) : json_object();
    if (!root || !json_is_object(root)) {
        json_decref(root);
        gw_routes_error(g, c, 400, "bad_request", "body is not a JSON object");
        return NULL;
    }
    return root;
}

/* The "refresh_token" string of root: NULL when absent; *bad when it is
 * there but not a plain string. */
static const char *refresh_field(json_t *root, bool *bad)
{
    json_t *v = json_object_get(root, "refresh_token");
    *bad =
        v != NULL && (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v));
    return v && !*bad ? json_string_value(v) : NULL;
}

/* ---- refresh ---- */

void gw_acct_refresh(gw *g, gw_conn *c, const uint8_t *body, size_t blen)
{
    json_t *root = body_object(g, c, body, blen);
    if (root == NULL)
        return;
    bool bad;
    const char *rt = refresh_field(root, &bad);
    if (rt == NULL) {
        json_decref(root);
        gw_routes_error(g, c, 400, "bad_request", "refresh_token must be a string");
        return;
    }
    int rc = gw_login_submit_refresh(g->login, c->id, rt);
    json_decref(root);
    if (rc == GW_AUTH_OK)
        wait_worker(g, c);
    else if (rc == GW_AUTH_E_CREDENTIALS)
        gw_routes_error(g, c, 401, "invalid_grant", "refresh token unknown, expired or revoked");
    else
        gw_routes_error(g, c, 503, "busy", "too many logins in progress; retry later");
}

/* ---- logout ---- */

/* The Authorization: Bearer token into g->token_buf: its length, 0 when
 * there is no Authorization header, -1 when it is malformed. */
int gw_bearer_token(gw *g, const gw_http_req *req)
{
    const gw_http_header *h = gw_http_find(req, "Authorization");
    if (!h)
        return 0;
    if (h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
        return -1;
    const char *t = h->value + 7;
    size_t len = h->value_len - 7;
    while (len && *t == ' ') {
        t++;
        len--;
    }
    if (len == 0 || len > GW_AUTH_TOKEN_MAX)
        return -1;
    memcpy(g->token_buf, t, len);
    g->token_buf[len] = '\0';
    return (int)len;
}

void gw_acct_logout(gw *g, gw_conn *c, const gw_http_req *req, const uint8_t *body, size_t blen)
{
    gw_claims claims;
    bool has_access = false;
    int tlen = gw_bearer_token(g, req);
    if (tlen < 0) {
        gw_routes_error(g, c, 401, "unauthorized", "malformed token");
        return;
    }
    if (tlen > 0) {
        const char *why = NULL;
        if (gw_auth_verify(g->auth, g->token_buf, (size_t)tlen, &claims, &why) != GW_AUTH_OK) {
            gw_routes_error(g, c, 401, "unauthorized", why ? why : "invalid token");
            return;
        }
        has_access = true;
    }
    json_t *root = body_object(g, c, body, blen);
    if (root == NULL)
        return;
    bool bad;
    const char *rt = refresh_field(root, &bad);
    if (bad || (!has_access && rt == NULL)) {
        json_decref(root);
        gw_routes_error(g, c, 400, "bad_request",
                        bad ? "refresh_token must be a string"
                            : "send Authorization: Bearer <access token> and/or a refresh_token");
        return;
    }
    if (rt == NULL) { /* nothing in the store: revoke now */
        json_decref(root);
        gw_auth_revoke(g->auth, &claims);
        gw_routes_json(g, c, 200, json_pack("{s:s}", "status", "logged_out"), NULL);
        return;
    }
    int rc = gw_login_submit_logout(g->login, c->id, has_access ? &claims : NULL, rt);
    json_decref(root);
    if (rc == GW_AUTH_OK)
        wait_worker(g, c);
    else
        gw_routes_error(g, c, 503, "busy", "too many logins in progress; retry later");
}

/* ---- answers from the workers ---- */

void gw_acct_answer(gw *g, gw_conn *c, const gw_login_result *r)
{
    if (r->status == GW_AUTH_E_STORE) {
        gw_routes_error(g, c, 503, "unavailable", "account store unavailable; retry later");
        return;
    }
    if (r->kind == GW_JOB_LOGOUT) {
        if (r->has_revoke)
            gw_auth_revoke(g->auth, &r->revoke);
        gw_routes_json(g, c, 200, json_pack("{s:s}", "status", "logged_out"), NULL);
        return;
    }
    switch (r->status) {
    case GW_AUTH_OK:
        gw_routes_json(g, c, 200, gw_acct_token_body(g, r), NO_STORE);
        break;
    case GW_AUTH_E_REUSED:
        core_counter_add(g->acct->c_refresh_reused, 1);
        gw_routes_error(g, c, 401, "invalid_grant",
                        "refresh token already used: all sessions of the account are revoked; "
                        "log in again");
        break;
    case GW_AUTH_E_CREDENTIALS:
        gw_routes_error(g, c, 401, "invalid_grant", "refresh token unknown, expired or revoked");
        break;
    default:
        gw_routes_error(g, c, 500, "internal", "refresh failed");
        break;
    }
}
