/* gw_auth.h - authentication for the gateway:
 *  - tokens: libjwt wrapped so that the algorithm is pinned per key, exp is
 *    required, nbf/iss/aud are checked with a bounded clock skew, and a
 *    NULL key is never passed (DECISIONS.md lists libjwt 1.10's pitfalls);
 *    our own tokens are HS256 (kid "local"); external providers' RS256 and
 *    ES256 tokens verify against public keys selected by kid, the algorithm
 *    pinned by the key's type; a revocation set refuses logged-out tokens;
 *  - refresh tokens: opaque, rotated on use, stored hashed (gw_login);
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
#define GW_AUTH_SKEW_S 30 /* default clock skew tolerated on exp/nbf/iat */
#define GW_AUTH_SKEW_MAX_S 300
#define GW_AUTH_KID_LOCAL "local" /* the kid of our own HS256 tokens */
#define GW_AUTH_KID_MAX 64        /* bytes of a kid, [A-Za-z0-9._-] */
#define GW_AUTH_CLAIM_MAX 128     /* bytes of the configured external iss/aud */
#define GW_AUTH_REFRESH_LEN 43    /* base64url of 32 random bytes */

enum {
    GW_AUTH_OK = 0,
    GW_AUTH_E_INVALID = -1,     /* token malformed, bad signature, wrong alg, claims */
    GW_AUTH_E_EXPIRED = -2,     /* exp in the past (beyond skew) */
    GW_AUTH_E_CREDENTIALS = -3, /* wrong password */
    GW_AUTH_E_USERNAME = -4,    /* username not 3..24 of [A-Za-z0-9_-] */
    GW_AUTH_E_PASSWORD = -5,    /* password not 6..128 bytes */
    GW_AUTH_E_BUSY = -6,        /* login queue full */
    GW_AUTH_E_STORE = -7,       /* the account store failed: try again later */
    GW_AUTH_E_REUSED = -8,      /* a used refresh token came back: all revoked */
    GW_AUTH_E_ACCOUNT = -9,     /* external token names an account that conflicts */
};

typedef struct gw_auth gw_auth;

typedef struct gw_claims {
    uint32_t account_id;
    char username[33];
    int64_t exp;          /* unix seconds */
    bool is_external;     /* a provider's token: account_id is its subject (sub) */
    uint8_t token_id[16]; /* SHA-256 of the payload segment, cut: the revocation key */
} gw_claims;

/* secret: HS256 key bytes (borrowed, copied); secret_len >= 32 recommended;
 * when secret_len == 0 a random 32-byte secret is generated. ttl_s:
 * lifetime of issued tokens. */
int gw_auth_create(gw_auth **out, const void *secret, size_t secret_len, int ttl_s);
void gw_auth_destroy(gw_auth *a); /* NULL is a no-op */

/* Checks for external tokens: iss and aud must equal issuer / audience
 * (copied; NULL keeps "tessera"); skew_s (0..GW_AUTH_SKEW_MAX_S) applies
 * to every token. Returns 0 or -1 (bad value). Call before sharing a. */
int gw_auth_set_policy(gw_auth *a, const char *issuer, const char *audience, int skew_s);

/* Replaces the provider keys with the <kid>.pem public keys in dir: RSA
 * (>= 2048 bits) -> RS256 only, EC P-256 -> ES256 only; other files are
 * ignored. All or nothing: on any bad key file the old set stays and -1
 * is returned with err filled. Returns the number of keys. Thread-safe
 * (verifications in flight finish with the set they started with). */
int gw_auth_keys_load_dir(gw_auth *a, const char *dir, char *err, size_t err_len);
/* Adds one public key (PEM text, borrowed) under kid, replacing a key of
 * that kid. Returns 0 or -1 with err. Thread-safe. For tools and tests. */
int gw_auth_key_add_pem(gw_auth *a, const char *kid, const void *pem, size_t pem_len, char *err,
                        size_t err_len);
size_t gw_auth_key_count(gw_auth *a);

/* Revokes a verified token until its exp (then it is refused anyway).
 * The set is bounded; when full, the entry nearest its expiry in the same
 * bucket is dropped. Thread-safe. */
void gw_auth_revoke(gw_auth *a, const gw_claims *claims);

/* A new refresh token into out (GW_AUTH_REFRESH_LEN chars + NUL) and the
 * SHA-256 of its text into hash (what the store keeps). Any thread. */
void gw_auth_refresh_new(char out[GW_AUTH_REFRESH_LEN + 1], uint8_t hash[32]);
/* Hash of a presented refresh token; -1 when it is not 43 base64url chars. */
int gw_auth_refresh_hash(const char *token, uint8_t hash[32]);

/* Issues a token for an account into out (NUL-terminated). Returns 0 or
 * -1 if cap is too small. Thread-safe. */
int gw_auth_issue(gw_auth *a, uint32_t account_id, const char *username, char *out, size_t cap);

/* Verifies token[0..len). Returns GW_AUTH_OK with *claims filled, or
 * GW_AUTH_E_INVALID / GW_AUTH_E_EXPIRED with *reason a static string
 * ("bad signature", "missing exp", "algorithm not allowed", "unknown
 * kid", "token revoked", ...). Thread-safe; ~5 us for HS256, ~30 us
 * RS256-2048, ~80 us ES256. */
int gw_auth_verify(gw_auth *a, const char *token, size_t len, gw_claims *claims,
                   const char **reason);

/* ---- accounts + asynchronous login ---- */
typedef struct gw_login gw_login;

enum { GW_JOB_LOGIN = 0, GW_JOB_LOAD = 1, GW_JOB_REFRESH = 2, GW_JOB_LOGOUT = 3 };

typedef struct gw_login_result {
    uint64_t cookie;     /* the caller's value from gw_login_submit */
    int kind;            /* GW_JOB_* */
    int status;          /* GW_AUTH_OK or a GW_AUTH_E_* code */
    uint32_t account_id; /* on success */
    char username[33];
    char token[1024]; /* on success: a fresh access token */
    /* LOGIN and REFRESH with a store: the new refresh token ("" without) */
    char refresh[GW_AUTH_REFRESH_LEN + 1];
    /* LOGOUT: the access token to revoke once the store has answered */
    bool has_revoke;
    gw_claims revoke;
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

/* Queues the entry of a token provider's user: its subject is mapped to
 * an account of ours (created on first entry, with an unusable password),
 * whose id comes back in the result's account_id, then the player load
 * as above. A name taken by another account gives GW_AUTH_E_ACCOUNT.
 * Returns 0 or GW_AUTH_E_BUSY. Gateway thread. */
int gw_login_submit_load_external(gw_login *l, uint64_t cookie, uint32_t subject,
                                  const char *username);

/* Queues a refresh: the refresh token (text as presented) is used up and
 * a new access token and refresh token come back (GW_AUTH_OK), or
 * GW_AUTH_E_CREDENTIALS (unknown, expired or revoked), GW_AUTH_E_REUSED
 * (already used: every refresh token of the account is now revoked),
 * GW_AUTH_E_STORE. Returns 0, GW_AUTH_E_CREDENTIALS at once for a token
 * of the wrong shape, or GW_AUTH_E_BUSY. Gateway thread. */
int gw_login_submit_refresh(gw_login *l, uint64_t cookie, const char *refresh);
/* Queues a logout: revokes refresh (may be NULL) when it belongs to the
 * account of access (may be NULL: then any account); the result carries
 * access back (has_revoke) for the caller to revoke once the store has
 * answered. Returns 0 or GW_AUTH_E_BUSY. Gateway thread. */
int gw_login_submit_logout(gw_login *l, uint64_t cookie, const gw_claims *access,
                           const char *refresh);
/* Lifetime of issued refresh tokens (default 30 days). Call before the
 * first submit. */
void gw_login_set_refresh_ttl(gw_login *l, int ttl_s);

/* An eventfd readable when results are waiting. */
int gw_login_fd(gw_login *l);
/* Drains the eventfd and copies up to max results; returns how many. */
size_t gw_login_poll(gw_login *l, gw_login_result *out, size_t max);

/* Synchronous variant for tests and tools (runs argon2id on the caller). */
int gw_login_run(gw_login *l, const char *username, const char *password, gw_login_result *out);
#endif
