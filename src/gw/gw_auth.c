/* gw_auth.c - access tokens (JWTs through a hardened libjwt wrapper),
 * their verification pipeline and issuing, and refresh token material.
 * Provider keys (RS256/ES256) live in gw_auth_keys.c, the revocation set
 * in gw_auth_revoke.c.
 *
 * Divisions: strict base64url; the header; the HS256 signature; claims;
 * the verification pipeline; lifecycle and issuing; refresh tokens.
 *
 * Why the wrapper: libjwt 1.10.2 trusts the token's own "alg" header (it
 * verifies an HS384/HS512 token with an HS256 key, and accepts alg=none
 * when given a NULL key) and checks no claim at all (DECISIONS.md, "Auth").
 * So gw_auth_verify runs, in this order, and libjwt only ever sees a token
 * that already passed steps 1-4:
 *   1. length (0 < len <= GW_AUTH_TOKEN_MAX) and shape: exactly three
 *      non-empty segments of the base64url alphabet, no padding;
 *   2. the header, decoded and parsed here: a JSON object, no duplicate
 *      keys, "alg" one of HS256/RS256/ES256, "kid" (if any) a short
 *      string of [A-Za-z0-9._-], no "crit";
 *   3. the key, chosen by kid and never by alg: no kid or kid "local" is
 *      our HS256 secret; any other kid must name a loaded provider key
 *      ("unknown kid"), and the header's alg must be the one that key's
 *      type allows (an HS256 token naming an RSA key is the classic
 *      key-confusion attack: "algorithm not allowed");
 *   4. the signature. HS256: a 43-character segment that decodes
 *      canonically to 32 bytes, HMAC-SHA256 over "header.payload" with
 *      OpenSSL, compared with CRYPTO_memcmp. The installed libjwt
 *      (Debian 1.10.2-1+deb12u1) does compare in constant time
 *      (jwt_strcmp, an XOR loop over the base64 text; checked in its
 *      disassembly), but that rests on a distribution patch, so this check
 *      is the authoritative one. RS256/ES256: EVP_DigestVerify with the
 *      provider key (gw_auth_keys.c);
 *   5. HS256: jwt_decode with the key (never NULL): libjwt verifies a
 *      second time and parses the claims. RS256/ES256: the payload is
 *      decoded here (strict base64url, jansson rejecting duplicate keys);
 *      libjwt is not used for them, it would only repeat step 4;
 *   6. the claims, checked with explicit types: exp required, exp/nbf/iat
 *      against the wall clock with the configured skew, iss and aud
 *      ("tessera" for ours, the configured pair for external tokens; aud
 *      a string or an array), sub, name;
 *   7. the revocation set (logout): "token revoked".
 *
 * Thread safety: the secret and policy are immutable after set-up; the
 * key set and the revocation set have their own locks (gw_auth_int.h);
 * libjwt, jansson and OpenSSL 3 keep no shared mutable state for these
 * calls, so any number of threads may issue and verify at once. */
#include "gw_auth_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "core_log.h"
#include "core_time.h"

#define GW_AUTH_SECRET_RANDOM 32 /* bytes generated when no secret is given */
#define GW_AUTH_SIG_B64_LEN 43   /* base64url of a 32-byte HMAC-SHA256, unpadded */
#define GW_AUTH_HEADER_MAX 512   /* decoded header bytes; ours is 41 */

/* Same rule as gw_login.c's username check (3..24 of [A-Za-z0-9_-]); the
 * login tests verify the tokens that login issues, which pins the two. */
static bool auth_username_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= 24)
            return false;
    }
    return n >= 3;
}

/* ---- strict base64url (RFC 7515 section 2: no padding, no whitespace) ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes in[0..n) into out (cap bytes). Rejects characters outside the
 * alphabet, a length of 1 mod 4 and non-zero trailing bits, so every byte
 * string has exactly one accepted encoding (no malleable signatures).
 * Returns the decoded length or -1. */
long gw_auth_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (n % 4 == 1)
        return -1;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero in the canonical encoding */
        return -1;
    assert(o == need);
    return (long)o;
}

static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* ---- the header ---- */

static bool kid_valid(const char *s, size_t n)
{
    if (n == 0 || n > GW_AUTH_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return s[0] != '.'; /* kids name files: no hidden ones, no ".." */
}

/* Step 2: the header must be a JSON object naming an algorithm we know,
 * optionally a kid, and nothing we would be expected to understand
 * ("crit"). kid gets "" when absent. */
static int verify_header(const char *b64, size_t n, gw_alg *alg_out, char kid[GW_AUTH_KID_MAX + 1],
                         const char **reason)
{
    unsigned char buf[GW_AUTH_HEADER_MAX];
    long len = gw_auth_b64url_decode(b64, n, buf, sizeof buf);
    if (len < 0) {
        *reason = n / 4 * 3 > sizeof buf ? "header too long" : "bad base64url";
        return GW_AUTH_E_INVALID;
    }
    json_error_t jerr;
    json_t *h = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = GW_AUTH_E_INVALID;
    if (h == NULL || !json_is_object(h)) {
        *reason = "bad header";
        goto out;
    }
    json_t *alg = json_object_get(h, "alg");
    if (alg == NULL) {
        *reason = "missing alg";
        goto out;
    }
    /* Exact, case-sensitive names; the length check refuses "HS256\0x". */
    static const struct {
        const char *name;
        gw_alg alg;
    } algs[] = {{"HS256", GW_ALG_HS256}, {"RS256", GW_ALG_RS256}, {"ES256", GW_ALG_ES256}};
    *alg_out = GW_ALG_NONE;
    for (size_t i = 0; json_is_string(alg) && i < sizeof algs / sizeof algs[0]; i++)
        if (json_string_length(alg) == 5 && strcmp(json_string_value(alg), algs[i].name) == 0)
            *alg_out = algs[i].alg;
    if (*alg_out == GW_ALG_NONE) {
        *reason = "algorithm not allowed";
        goto out;
    }
    if (json_object_get(h, "crit") != NULL) {
        *reason = "unsupported header";
        goto out;
    }
    kid[0] = '\0';
    json_t *k = json_object_get(h, "kid");
    if (k != NULL) {
        if (!json_is_string(k) || !kid_valid(json_string_value(k), json_string_length(k)) ||
            strlen(json_string_value(k)) != json_string_length(k)) {
            *reason = "bad kid";
            goto out;
        }
        memcpy(kid, json_string_value(k), json_string_length(k) + 1);
    }
    rc = GW_AUTH_OK;
out:
    json_decref(h);
    return rc;
}

/* ---- the HS256 signature ---- */

/* Step 4 for HS256: HMAC-SHA256 over signing_input, compared in constant
 * time. */
static int verify_hmac(const gw_auth *a, const char *signing_input, size_t n, const char *sig_b64,
                       size_t sig_n, const char **reason)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[32];
    unsigned int want_len = 0;
    if (sig_n != GW_AUTH_SIG_B64_LEN ||
        gw_auth_b64url_decode(sig_b64, sig_n, got, sizeof got) != (long)sizeof got) {
        *reason = "bad signature";
        return GW_AUTH_E_INVALID;
    }
    if (HMAC(EVP_sha256(), a->secret, (int)a->secret_len, (const unsigned char *)signing_input, n,
             want, &want_len) == NULL)
        core_die("gw_auth: HMAC-SHA256 failed");
    assert(want_len == sizeof got);
    if (CRYPTO_memcmp(want, got, sizeof got) != 0) {
        *reason = "bad signature";
        return GW_AUTH_E_INVALID;
    }
    return GW_AUTH_OK;
}

/* ---- claims ---- */

/* An integer claim (a NumericDate): true when present and a JSON integer.
 * Non-integer dates are refused; we only accept what we issue. */
static bool claim_int(json_t *claims, const char *name, json_int_t *out)
{
    json_t *v = json_object_get(claims, name);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

/* A string claim without embedded NULs, or NULL. */
static const char *claim_str(json_t *claims, const char *name)
{
    json_t *v = json_object_get(claims, name);
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

/* want as a string, or an array holding the string want. */
static bool audience_ok(json_t *claims, const char *want)
{
    json_t *aud = json_object_get(claims, "aud");
    if (json_is_array(aud)) {
        size_t i;
        json_t *e;
        json_array_foreach(aud, i, e)
        {
            if (json_is_string(e) && json_string_length(e) == strlen(want) &&
                strcmp(json_string_value(e), want) == 0)
                return true;
        }
        return false;
    }
    const char *s = claim_str(claims, "aud");
    return s != NULL && strcmp(s, want) == 0;
}

/* sub: canonical decimal (no sign, no leading zero) in 1..UINT32_MAX. */
static bool parse_sub(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10 || s[0] == '0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Step 6. claims: the payload object; now: wall-clock seconds; iss/aud:
 * what the token's key requires. */
static int check_claims(const gw_auth *a, json_t *claims, int64_t now, const char *want_iss,
                        const char *want_aud, gw_claims *out, const char **reason)
{
    json_int_t exp, nbf, iat;
    if (!claim_int(claims, "exp", &exp)) {
        *reason = "missing exp";
        return GW_AUTH_E_INVALID;
    }
    /* Written as now - skew rather than exp + skew: exp is attacker-sized
     * (any int64), and the subtraction cannot overflow. */
    if (exp < now - a->skew_s) {
        *reason = "expired";
        return GW_AUTH_E_EXPIRED;
    }
    if (json_object_get(claims, "nbf") != NULL &&
        (!claim_int(claims, "nbf", &nbf) || nbf > now + a->skew_s)) {
        *reason = "not yet valid";
        return GW_AUTH_E_INVALID;
    }
    if (json_object_get(claims, "iat") != NULL &&
        (!claim_int(claims, "iat", &iat) || iat > now + a->skew_s)) {
        *reason = "issued in the future";
        return GW_AUTH_E_INVALID;
    }
    const char *iss = claim_str(claims, "iss");
    if (iss == NULL || strcmp(iss, want_iss) != 0) {
        *reason = "bad issuer";
        return GW_AUTH_E_INVALID;
    }
    if (!audience_ok(claims, want_aud)) {
        *reason = "bad audience";
        return GW_AUTH_E_INVALID;
    }
    if (json_object_get(claims, "sub") == NULL) {
        *reason = "missing sub";
        return GW_AUTH_E_INVALID;
    }
    const char *sub = claim_str(claims, "sub");
    uint32_t id;
    if (sub == NULL || !parse_sub(sub, &id)) {
        *reason = "bad sub";
        return GW_AUTH_E_INVALID;
    }
    const char *name = claim_str(claims, "name");
    if (name == NULL || !auth_username_valid(name)) {
        *reason = "bad name";
        return GW_AUTH_E_INVALID;
    }
    out->account_id = id;
    snprintf(out->username, sizeof out->username, "%s", name);
    out->exp = (int64_t)exp;
    return GW_AUTH_OK;
}

/* Steps 5-6 for HS256. libjwt's typed getters cannot tell "absent" from
 * "wrong type" reliably (jwt_get_grant_int on a string returns 0 with
 * errno unset), so the claims are read back as JSON and checked with
 * explicit types. */
static int claims_hs256(const gw_auth *a, const char *token, size_t len, int64_t now,
                        gw_claims *out, const char **reason)
{
    /* libjwt wants a NUL-terminated string. */
    char buf[GW_AUTH_TOKEN_MAX + 1];
    memcpy(buf, token, len);
    buf[len] = '\0';
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, buf, a->secret, (int)a->secret_len) != 0 || jwt == NULL) {
        *reason = "bad claims"; /* payload not a JSON object, or libjwt disagrees */
        return GW_AUTH_E_INVALID;
    }
    int rc = GW_AUTH_E_INVALID;
    char *js = NULL;
    json_t *claims = NULL;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) { /* belt and braces for step 2 */
        *reason = "algorithm not allowed";
        goto out;
    }
    js = jwt_get_grants_json(jwt, NULL);
    claims = js ? json_loads(js, 0, NULL) : NULL;
    if (!json_is_object(claims)) {
        *reason = "bad claims";
        goto out;
    }
    rc = check_claims(a, claims, now, GW_AUTH_ISSUER, GW_AUTH_AUDIENCE, out, reason);
out:
    json_decref(claims);
    free(js);
    jwt_free(jwt);
    return rc;
}

/* Steps 5-6 for provider tokens: the payload segment, decoded here. */
static int claims_external(const gw_auth *a, const char *p, size_t n, int64_t now, gw_claims *out,
                           const char **reason)
{
    unsigned char buf[GW_AUTH_TOKEN_MAX];
    long len = gw_auth_b64url_decode(p, n, buf, sizeof buf);
    if (len < 0) {
        *reason = "bad base64url";
        return GW_AUTH_E_INVALID;
    }
    json_error_t jerr;
    json_t *claims = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;
    if (!json_is_object(claims)) {
        *reason = "bad claims";
        rc = GW_AUTH_E_INVALID;
    } else {
        rc = check_claims(a, claims, now, a->ext_issuer, a->ext_audience, out, reason);
    }
    json_decref(claims);
    return rc;
}

/* ---- the verification pipeline ---- */

int gw_auth_verify(gw_auth *a, const char *token, size_t len, gw_claims *claims,
                   const char **reason)
{
    const char *dummy;
    if (reason == NULL)
        reason = &dummy;
    *reason = NULL;
    assert(a != NULL && claims != NULL);
    memset(claims, 0, sizeof *claims);
    if (token == NULL || len == 0) {
        *reason = "empty token";
        return GW_AUTH_E_INVALID;
    }
    if (len > GW_AUTH_TOKEN_MAX) {
        *reason = "token too long";
        return GW_AUTH_E_INVALID;
    }

    /* Step 1: shape. dots[] are the offsets of the two separators. */
    size_t dots[2], n_dots = 0;
    bool charset_ok = true;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (n_dots < 2)
                dots[n_dots] = i;
            n_dots++;
        } else if (b64url_value((unsigned char)token[i]) < 0) {
            charset_ok = false;
        }
    }
    if (n_dots != 2) {
        *reason = "malformed token";
        return GW_AUTH_E_INVALID;
    }
    if (!charset_ok) {
        *reason = "bad base64url";
        return GW_AUTH_E_INVALID;
    }
    if (dots[0] == 0 || dots[1] == dots[0] + 1) {
        *reason = "malformed token";
        return GW_AUTH_E_INVALID;
    }

    gw_alg alg;
    char kid[GW_AUTH_KID_MAX + 1];
    int rc = verify_header(token, dots[0], &alg, kid, reason); /* step 2 */
    if (rc != GW_AUTH_OK)
        return rc;
    /* The payload's encoding is checked even though the signature covers
     * it, so that libjwt's more lenient decoder never sees anything odd. */
    size_t p_off = dots[0] + 1, p_n = dots[1] - p_off;
    if (p_n % 4 == 1) {
        *reason = "bad base64url";
        return GW_AUTH_E_INVALID;
    }
    const char *sig = token + dots[1] + 1;
    size_t sig_n = len - dots[1] - 1;
    int64_t now = core_wall_s();

    if (kid[0] == '\0' || strcmp(kid, GW_AUTH_KID_LOCAL) == 0) { /* step 3: ours */
        if (alg != GW_ALG_HS256) {
            *reason = "algorithm not allowed";
            return GW_AUTH_E_INVALID;
        }
        rc = verify_hmac(a, token, dots[1], sig, sig_n, reason); /* step 4 */
        if (rc == GW_AUTH_OK)
            rc = claims_hs256(a, token, len, now, claims, reason); /* steps 5-6 */
    } else {
        gw_keyset *ks = gw_keys_acquire(a);
        const gw_key *k = gw_keyset_find(ks, kid);
        if (k == NULL) {
            *reason = "unknown kid";
            rc = GW_AUTH_E_INVALID;
        } else if (k->alg != alg) { /* the key's type decides, never the token */
            *reason = "algorithm not allowed";
            rc = GW_AUTH_E_INVALID;
        } else {
            rc = gw_key_verify(k, token, dots[1], sig, sig_n, reason); /* step 4 */
        }
        gw_keys_release(a, ks);
        if (rc == GW_AUTH_OK)
            rc = claims_external(a, token + p_off, p_n, now, claims, reason);
        claims->is_external = true;
    }
    if (rc != GW_AUTH_OK)
        return rc;

    /* Step 7. The id hashes the payload, not the whole token: an ECDSA
     * signature has a second valid form (s -> n - s), so a revoked ES256
     * token could come back with a new signature but never with a new
     * payload (the base64url decoding is canonical). */
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token + p_off, p_n, md);
    memcpy(claims->token_id, md, sizeof claims->token_id);
    if (gw_revoke_has(a, claims->token_id, now)) {
        *reason = "token revoked";
        return GW_AUTH_E_INVALID;
    }
    return GW_AUTH_OK;
}

/* ---- lifecycle and issuing ---- */

int gw_auth_create(gw_auth **out, const void *secret, size_t secret_len, int ttl_s)
{
    *out = NULL;
    if (ttl_s <= 0 || secret_len > GW_AUTH_SECRET_MAX || (secret_len > 0 && secret == NULL))
        return -1;
    /* Idempotent and thread-safe once the first call has returned. */
    if (sodium_init() < 0)
        core_die("gw_auth: sodium_init failed");
    gw_auth *a = calloc(1, sizeof *a);
    if (a == NULL)
        core_die("gw_auth: out of memory");
    if (secret_len == 0) {
        randombytes_buf(a->secret, GW_AUTH_SECRET_RANDOM);
        a->secret_len = GW_AUTH_SECRET_RANDOM;
    } else {
        memcpy(a->secret, secret, secret_len);
        a->secret_len = secret_len;
    }
    a->ttl_s = ttl_s;
    a->skew_s = GW_AUTH_SKEW_S;
    snprintf(a->ext_issuer, sizeof a->ext_issuer, "%s", GW_AUTH_ISSUER);
    snprintf(a->ext_audience, sizeof a->ext_audience, "%s", GW_AUTH_AUDIENCE);
    pthread_mutex_init(&a->keys_mu, NULL);
    a->keys = gw_keyset_empty();
    gw_revoke_init(a);
    *out = a;
    return 0;
}

void gw_auth_destroy(gw_auth *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->keys_mu);
    gw_keyset_unref_locked(a->keys);
    pthread_mutex_unlock(&a->keys_mu);
    pthread_mutex_destroy(&a->keys_mu);
    gw_revoke_free(a);
    sodium_memzero(a, sizeof *a);
    free(a);
}

int gw_auth_set_policy(gw_auth *a, const char *issuer, const char *audience, int skew_s)
{
    if (skew_s < 0 || skew_s > GW_AUTH_SKEW_MAX_S ||
        (issuer && (!*issuer || strlen(issuer) >= sizeof a->ext_issuer)) ||
        (audience && (!*audience || strlen(audience) >= sizeof a->ext_audience)))
        return -1;
    snprintf(a->ext_issuer, sizeof a->ext_issuer, "%s", issuer ? issuer : GW_AUTH_ISSUER);
    snprintf(a->ext_audience, sizeof a->ext_audience, "%s", audience ? audience : GW_AUTH_AUDIENCE);
    a->skew_s = skew_s;
    return 0;
}

/* Returns 0, or -1 if cap is too small. Also -1 (never a token that
 * gw_auth_verify would refuse) for account_id 0 or an invalid username. */
int gw_auth_issue(gw_auth *a, uint32_t account_id, const char *username, char *out, size_t cap)
{
    assert(a != NULL && out != NULL);
    if (cap > 0)
        out[0] = '\0';
    if (account_id == 0 || username == NULL || !auth_username_valid(username))
        return -1;
    char sub[16], jti[33];
    unsigned char rnd[16];
    snprintf(sub, sizeof sub, "%" PRIu32, account_id);
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(jti, sizeof jti, rnd, sizeof rnd);
    int64_t now = core_wall_s();

    jwt_t *jwt = NULL;
    char *tok = NULL;
    int rc = -1;
    if (jwt_new(&jwt) != 0)
        core_die("gw_auth: out of memory");
    if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant(jwt, "name", username) ||
        jwt_add_grant(jwt, "iss", GW_AUTH_ISSUER) || jwt_add_grant(jwt, "aud", GW_AUTH_AUDIENCE) ||
        jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)(now + a->ttl_s)) || jwt_add_grant(jwt, "jti", jti) ||
        jwt_add_header(jwt, "kid", GW_AUTH_KID_LOCAL) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, a->secret, (int)a->secret_len))
        core_die("gw_auth: building a token failed");
    tok = jwt_encode_str(jwt);
    if (tok == NULL)
        core_die("gw_auth: jwt_encode_str failed");
    size_t n = strlen(tok);
    if (n < cap) {
        memcpy(out, tok, n + 1);
        rc = 0;
    }
    free(tok); /* libjwt 1.10 has no jwt_free_str; it allocates with malloc */
    jwt_free(jwt);
    return rc;
}

/* ---- refresh tokens ---- */

void gw_auth_refresh_new(char out[GW_AUTH_REFRESH_LEN + 1], uint8_t hash[32])
{
    unsigned char rnd[32];
    randombytes_buf(rnd, sizeof rnd);
    size_t n = b64url_encode(rnd, sizeof rnd, out);
    assert(n == GW_AUTH_REFRESH_LEN);
    SHA256((const unsigned char *)out, n, hash);
    sodium_memzero(rnd, sizeof rnd);
}

int gw_auth_refresh_hash(const char *token, uint8_t hash[32])
{
    unsigned char raw[32];
    size_t n = strnlen(token, GW_AUTH_REFRESH_LEN + 1);
    /* Canonical 43 characters only, so one token has one hash. */
    if (n != GW_AUTH_REFRESH_LEN || gw_auth_b64url_decode(token, n, raw, sizeof raw) != 32)
        return -1;
    SHA256((const unsigned char *)token, n, hash);
    return 0;
}
