/* gw_auth_revoke.c - the set of revoked access tokens (logout): a token
 * id (gw_claims.token_id) stays in the set until the token's exp, after
 * which verification refuses the token anyway and the entry is free.
 *
 * Bounded: GW_REVOKE_BUCKETS buckets of GW_REVOKE_WAYS entries, the bucket
 * chosen by SipHash with a per-process random key, so nobody can aim
 * logouts at one bucket. An insert takes a free or expired entry of its
 * bucket; when all are live it replaces the one that expires first (the
 * smallest window reopened). 32768 entries hold every logout of a
 * 900-second token lifetime up to ~36 logouts/s per bucket's share.
 *
 * The set is in memory and per process: a restart forgets it (access
 * tokens are short-lived; refresh tokens are revoked in the store). */
#include "gw_auth_int.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core_log.h"
#include "core_time.h"

void gw_revoke_init(gw_auth *a)
{
    pthread_mutex_init(&a->rev_mu, NULL);
    a->revoked = calloc((size_t)GW_REVOKE_BUCKETS * GW_REVOKE_WAYS, sizeof *a->revoked);
    if (a->revoked == NULL)
        core_die("gw_auth: out of memory");
    randombytes_buf(a->rev_hash_key, sizeof a->rev_hash_key);
}

void gw_revoke_free(gw_auth *a)
{
    free(a->revoked);
    a->revoked = NULL;
    pthread_mutex_destroy(&a->rev_mu);
}

static gw_revoked *bucket_of(gw_auth *a, const uint8_t id[16])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, id, 16, a->rev_hash_key);
    uint32_t b;
    memcpy(&b, h, sizeof b);
    return &a->revoked[(size_t)(b & (GW_REVOKE_BUCKETS - 1)) * GW_REVOKE_WAYS];
}

bool gw_revoke_has(gw_auth *a, const uint8_t id[16], int64_t now)
{
    bool found = false;
    pthread_mutex_lock(&a->rev_mu);
    gw_revoked *b = bucket_of(a, id);
    for (int i = 0; i < GW_REVOKE_WAYS && !found; i++)
        found = b[i].exp >= now && memcmp(b[i].id, id, 16) == 0;
    pthread_mutex_unlock(&a->rev_mu);
    return found;
}

void gw_auth_revoke(gw_auth *a, const gw_claims *claims)
{
    /* Kept past exp by the skew: verification accepts a token that long. */
    int64_t now = core_wall_s(), until = claims->exp + a->skew_s;
    if (until < now)
        return; /* refused as expired anyway */
    pthread_mutex_lock(&a->rev_mu);
    gw_revoked *b = bucket_of(a, claims->token_id), *slot = NULL;
    for (int i = 0; i < GW_REVOKE_WAYS && slot == NULL; i++)
        if (b[i].exp >= now && memcmp(b[i].id, claims->token_id, 16) == 0)
            slot = &b[i]; /* revoked twice: keep one entry */
    for (int i = 0; i < GW_REVOKE_WAYS && slot == NULL; i++)
        if (b[i].exp < now) /* free (0) or expired */
            slot = &b[i];
    if (slot == NULL) {
        slot = &b[0];
        for (int i = 1; i < GW_REVOKE_WAYS; i++)
            if (b[i].exp < slot->exp)
                slot = &b[i];
        /* Logged at the 1st, 2nd, 4th, 8th ... eviction: visible, but a
         * flood of logouts cannot flood the log. */
        uint64_t n = ++a->rev_evicted;
        if ((n & (n - 1)) == 0)
            CORE_WARN("gw",
                      "revocation set full: %llu revoked tokens forgotten before their "
                      "expiry so far",
                      (unsigned long long)n);
    }
    memcpy(slot->id, claims->token_id, 16);
    slot->exp = until;
    pthread_mutex_unlock(&a->rev_mu);
}
