/* gw_acct.h - the gateway's account-session side, private to src/gw:
 * token provider set-up (gw_acct.c), /api/refresh and /api/logout
 * (gw_acct.c), and the failed-login limits (gw_limit.c). Gateway thread
 * only, like everything reached through struct gw. */
#ifndef GW_ACCT_H
#define GW_ACCT_H
#include <jansson.h>

#include "gw_int.h"

/* ---- gw_limit.c: failed logins per account and per address ----
 * A fixed table of (key, window start, count), keyed by SipHash with a
 * per-process random key; bounded memory, the oldest entry of a bucket
 * evicted when it is full. */
typedef struct gw_limit gw_limit;
typedef enum { GW_LIMIT_NONE = 0, GW_LIMIT_ACCOUNT, GW_LIMIT_ADDRESS } gw_limit_by;
/* per_account, per_addr: failures allowed per window_s. Never fails. */
gw_limit *gw_limit_create(int per_account, int per_addr, int window_s);
void gw_limit_destroy(gw_limit *l); /* NULL is a no-op */
/* Is a login of username from addr refused now? Returns GW_LIMIT_NONE,
 * or what is over its limit with *retry_after_s (>= 1) until it clears. */
gw_limit_by gw_limit_check(gw_limit *l, uint64_t now_ms, const uint8_t addr[16],
                           const char *username, int *retry_after_s);
/* Counts one failed login (wrong password) against both. */
void gw_limit_fail(gw_limit *l, uint64_t now_ms, const uint8_t addr[16], const char *username);

/* ---- gw_acct.c ---- */
/* Applies cfg's token settings to g->auth and g->login (issuer, audience,
 * skew, provider keys, refresh lifetime) and creates the login limits.
 * Returns 0 or -1 (logged: a bad key folder stops the server). */
int gw_acct_setup(gw *g);
void gw_acct_teardown(gw *g);
/* Timer: reloads the provider keys when their folder changed. */
void gw_acct_sweep(gw *g);
/* POST /api/login, before queueing: true when refused (429 answered). */
bool gw_acct_login_limited(gw *g, gw_conn *c, const char *username);
/* A login answered 401 (wrong password): counts it. */
void gw_acct_login_failed(gw *g, gw_conn *c, const char *username);
/* The 200 body of a login or refresh (new JSON object). */
json_t *gw_acct_token_body(gw *g, const gw_login_result *r);
void gw_acct_refresh(gw *g, gw_conn *c, const uint8_t *body, size_t blen);
void gw_acct_logout(gw *g, gw_conn *c, const gw_http_req *req, const uint8_t *body, size_t blen);
/* Answers a finished GW_JOB_REFRESH or GW_JOB_LOGOUT (c back in HTTP). */
void gw_acct_answer(gw *g, gw_conn *c, const gw_login_result *r);

/* ---- gw_routes.c ---- */
/* Queues a JSON answer (takes ownership of obj); extra: header lines. */
void gw_routes_json(gw *g, gw_conn *c, int status, json_t *obj, const char *extra);
void gw_routes_error(gw *g, gw_conn *c, int status, const char *error, const char *reason);
#endif
