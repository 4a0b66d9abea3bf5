/* gw_auth.h - authentication for the gateway:
 *  - tokens: libjwt wrapped so that the algorithm is pinned per key, exp is
 *    required, nbf/iss/aud are checked with a bounded clock skew, and a
 *    NULL key is never passed (DECISIONS.md lists libjwt 1.10's pitfalls);
 *  - passwords: argon2id via libsodium (crypto_pwhash_str);
 *  - accounts: an in-memory registry (the store module replaces it with
 *    persistence), created on first login;
 *  - an asynchronous login service: argon2id takes tens of milliseconds,
 *    so logins run on worker threads and finish through an eventfd that the
 *    gateway's epoll loop watches. */
#ifndef GW_AUTH_H
#define GW_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_AUTH_TOKEN_MAX 8192 /* longer tokens are rejected unparsed */
#define GW_AUTH_ISSUER "tessera"
#define GW_AUTH_AUDIENCE "tessera"
#define GW_AUTH_SKEW_S 30 /* clock skew tolerated on exp/nbf/iat */

enum {
    GW_AUTH_OK = 0,
    GW_AUTH_E_INVALID = -1,     /* token malformed, bad signature, wrong alg, claims */
    GW_AUTH_E_EXPIRED = -2,     /* exp in the past (beyond skew) */
    GW_AUTH_E_CREDENTIALS = -3, /* wrong password */
    GW_AUTH_E_USERNAME = -4,    /* username not 3..24 of [A-Za-z0-9_-] */
    GW_AUTH_E_PASSWORD = -5,    /* password not 6..128 bytes */
    GW_AUTH_E_BUSY = -6,        /* login queue full */
    GW_AUTH_E_STORE = -7,       /* the account store failed: try again later */
};

typedef struct gw_auth gw_auth;

typedef struct gw_claims {
    uint32_t account_id;
    char username[33];
    int64_t exp; /* unix seconds */
} gw_claims;

/* secret: HS256 key bytes (borrowed, copied); secret_len >= 32 recommended;
 * when secret_len == 0 a random 32-byte secret is generated. ttl_s:
 * lifetime of issued tokens. */
int gw_auth_create(gw_auth **out, const void *secret, size_t secret_len, int ttl_s);
void gw_auth_destroy(gw_auth *a); /* NULL is a no-op */

/* Issues a token for an account into out (NUL-terminated). Returns 0 or
 * -1 if cap is too small. Thread-safe. */
int gw_auth_issue(gw_auth *a, uint32_t account_id, const char *username, char *out, size_t cap);

/* Verifies token[0..len). Returns GW_AUTH_OK with *claims filled, or
 * GW_AUTH_E_INVALID / GW_AUTH_E_EXPIRED with *reason a static string
 * ("bad signature", "missing exp", "algorithm not allowed", ...).
 * Thread-safe; ~5 us. */
int gw_auth_verify(gw_auth *a, const char *token, size_t len, gw_claims *claims,
                   const char **reason);

/* ---- accounts + asynchronous login ---- */
typedef struct gw_login gw_login;

enum { GW_JOB_LOGIN = 0, GW_JOB_LOAD = 1 };

typedef struct gw_login_result {
    uint64_t cookie;     /* the caller's value from gw_login_submit */
    int kind;            /* GW_JOB_LOGIN or GW_JOB_LOAD */
    int status;          /* GW_AUTH_OK or a GW_AUTH_E_* code */
    uint32_t account_id; /* on success */
    char username[33];
    char token[1024]; /* on success: a fresh access token */
    /* GW_JOB_LOAD: the player's stored state (has_player false for a new
     * player or when there is no store) */
    bool has_player;
    float x, y;
} gw_login_result;

/* Starts n_threads workers (>= 1). queue_cap bounds pending logins.
 * Accounts live in memory until gw_login_use_store. */
int gw_login_create(gw_login **out, gw_auth *auth, int n_threads, int queue_cap);
/* Keeps accounts in the store (borrowed; outlives l) from now on. Call
 * before the first submit. */
struct store;
void gw_login_use_store(gw_login *l, struct store *st);
void gw_login_destroy(gw_login *l); /* joins workers; NULL is a no-op */

/* Queues a login (create the account on first use, else check the
 * password). Returns 0, GW_AUTH_E_USERNAME / GW_AUTH_E_PASSWORD at once
 * for invalid input (nothing queued), or GW_AUTH_E_BUSY. The result
 * arrives through gw_login_poll. Gateway thread. */
int gw_login_submit(gw_login *l, uint64_t cookie, const char *username, const char *password);

/* Queues a load of the player record of account_id (from the store's
 * cache when it is there), for a WebSocket session about to enter the
 * world; the result (kind GW_JOB_LOAD) comes through gw_login_poll.
 * Returns 0 or GW_AUTH_E_BUSY. Gateway thread. */
int gw_login_submit_load(gw_login *l, uint64_t cookie, uint32_t account_id);

/* An eventfd readable when results are waiting. */
int gw_login_fd(gw_login *l);
/* Drains the eventfd and copies up to max results; returns how many. */
size_t gw_login_poll(gw_login *l, gw_login_result *out, size_t max);

/* Synchronous variant for tests and tools (runs argon2id on the caller). */
int gw_login_run(gw_login *l, const char *username, const char *password, gw_login_result *out);
#endif
