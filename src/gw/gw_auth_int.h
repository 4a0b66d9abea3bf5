/* gw_auth_int.h - the private parts of gw_auth, shared by gw_auth.c (the
 * verification pipeline, issuing, HS256), gw_auth_keys.c (provider public
 * keys: loading, kid lookup, RS256/ES256 signatures) and gw_auth_revoke.c
 * (the bounded revocation set).
 *
 * Threads: a gw_auth is shared by the gateway thread and the login
 * workers. Everything set at create/set_policy is read-only afterwards;
 * the key set pointer and the revocation table are the only mutable
 * parts, each behind its own mutex. */
#ifndef GW_AUTH_INT_H
#define GW_AUTH_INT_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "gw_auth.h"

#define GW_AUTH_SECRET_MAX 1024 /* bytes; HMAC keys longer than this are pointless */

/* Algorithms we know; a key allows exactly one of them. */
typedef enum gw_alg { GW_ALG_NONE = 0, GW_ALG_HS256, GW_ALG_RS256, GW_ALG_ES256 } gw_alg;

typedef struct gw_key {
    char kid[GW_AUTH_KID_MAX + 1]; /* from the file name, [A-Za-z0-9._-] */
    gw_alg alg;                    /* RS256 for RSA keys, ES256 for P-256 keys */
    EVP_PKEY *pkey;                /* the public key; owned */
    size_t sig_len;                /* exact signature bytes: modulus size or 64 */
} gw_key;

/* An immutable set of keys. Replaced as a whole (load_dir, add_pem);
 * verifications hold a reference, so a replaced set lives until the last
 * one in flight drops it. */
typedef struct gw_keyset {
    int refs;      /* guarded by gw_auth.keys_mu; the auth's own pointer counts one */
    size_t n_keys; /* entries in keys */
    gw_key keys[]; /* sorted by nothing; few keys, linear lookup */
} gw_keyset;

/* Revocation entry: a token id until its exp. Empty when exp == 0. */
typedef struct gw_revoked {
    uint8_t id[16];
    int64_t exp; /* unix seconds; 0 = free */
} gw_revoked;

#define GW_REVOKE_WAYS 8       /* entries per bucket */
#define GW_REVOKE_BUCKETS 4096 /* power of two: 32768 entries, 768 KiB */

struct gw_auth {
    unsigned char secret[GW_AUTH_SECRET_MAX]; /* HS256 key, secret_len bytes used */
    size_t secret_len;                        /* 1..GW_AUTH_SECRET_MAX */
    int ttl_s;                                /* lifetime of issued tokens, > 0 */
    int skew_s;                               /* 0..GW_AUTH_SKEW_MAX_S */
    char ext_issuer[GW_AUTH_CLAIM_MAX];       /* iss required of external tokens */
    char ext_audience[GW_AUTH_CLAIM_MAX];     /* aud required of external tokens */

    pthread_mutex_t keys_mu; /* guards keys and every keyset's refs */
    gw_keyset *keys;         /* never NULL after create (maybe 0 keys) */

    pthread_mutex_t rev_mu;   /* guards revoked */
    gw_revoked *revoked;      /* GW_REVOKE_BUCKETS * GW_REVOKE_WAYS entries */
    uint8_t rev_hash_key[16]; /* SipHash key: buckets cannot be aimed at */
    uint64_t rev_evicted;     /* live entries dropped for room, ever */
};

/* ---- gw_auth.c ---- */
/* Strict base64url (no padding, canonical trailing bits). Returns the
 * decoded length or -1. */
long gw_auth_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* ---- gw_auth_keys.c ---- */
gw_keyset *gw_keyset_empty(void);
/* Drops one reference (frees at zero). Caller holds keys_mu. */
void gw_keyset_unref_locked(gw_keyset *ks);
/* Takes a reference to the current set; release with gw_keys_release. */
gw_keyset *gw_keys_acquire(gw_auth *a);
void gw_keys_release(gw_auth *a, gw_keyset *ks);
const gw_key *gw_keyset_find(const gw_keyset *ks, const char *kid);
/* Verifies sig_b64 (the third segment) over signing_input with k.
 * Returns GW_AUTH_OK, or GW_AUTH_E_INVALID with *reason. */
int gw_key_verify(const gw_key *k, const char *signing_input, size_t n, const char *sig_b64,
                  size_t sig_n, const char **reason);

/* ---- gw_auth_revoke.c ---- */
void gw_revoke_init(gw_auth *a);
void gw_revoke_free(gw_auth *a);
bool gw_revoke_has(gw_auth *a, const uint8_t id[16], int64_t now);

/* ---- gw_refresh.c: the login workers' refresh-token jobs ----
 * st may be NULL (no store: no refresh tokens). Worker threads. */
struct store;
#define GW_EXTERNAL_PW_HASH "!external" /* never a valid argon2id string */
/* A new refresh token of the account into res->refresh, stored hashed.
 * Returns 0, or -1 when the store failed (logged). */
int gw_refresh_issue(struct store *st, int ttl_s, uint32_t account_id, const char *username,
                     gw_login_result *res);
/* Exchanges refresh token rt for a new access and refresh token. */
void gw_refresh_do(struct store *st, gw_auth *a, int ttl_s, const char *rt, gw_login_result *res);
/* Revokes rt (if not empty) for access's account (NULL: any account). */
void gw_logout_do(struct store *st, const gw_claims *access, const char *rt, gw_login_result *res);
/* The account of a provider's subject (created on first entry) into
 * res->account_id; GW_AUTH_E_ACCOUNT when its name is another account's. */
void gw_external_enter(struct store *st, const gw_auth *a, uint32_t subject, const char *username,
                       gw_login_result *res);
#endif
