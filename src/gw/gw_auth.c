/* gw_auth.c - access tokens (HS256 JWTs through a hardened libjwt wrapper)
 * and password hashing (argon2id through libsodium).
 *
 * Divisions: strict base64url; the verification pipeline; issuing;
 * passwords.
 *
 * Why the wrapper: libjwt 1.10.2 trusts the token's own "alg" header (it
 * verifies an HS384/HS512 token with an HS256 key, and accepts alg=none
 * when given a NULL key) and checks no claim at all (DECISIONS.md, "Auth").
 * So gw_auth_verify runs, in this order, and libjwt only ever sees a token
 * that already passed steps 1-4:
 *   1. length (0 < len <= GW_AUTH_TOKEN_MAX) and shape: exactly three
 *      non-empty segments of the base64url alphabet, no padding;
 *   2. the header, decoded and parsed here: a JSON object, no duplicate
 *      keys, "alg" exactly "HS256", no "crit";
 *   3. a 43-character signature that decodes canonically to 32 bytes;
 *   4. HMAC-SHA256 over "header.payload" with OpenSSL, compared with
 *      CRYPTO_memcmp. The installed libjwt (Debian 1.10.2-1+deb12u1)
 *      does compare in constant time (jwt_strcmp, an XOR loop over the
 *      base64 text; checked in its disassembly), but that rests on a
 *      distribution patch, so this check is the authoritative one and
 *      does not depend on which libjwt build is linked;
 *   5. jwt_decode with the key (never NULL): libjwt verifies a second time
 *      and parses the claims;
 *   6. the claims, read back from libjwt as JSON and checked with explicit
 *      types: exp required, exp/nbf/iat against the wall clock with
 *      GW_AUTH_SKEW_S, iss, aud (string or array), sub, name.
 *
 * Thread safety: a gw_auth is immutable after gw_auth_create, and libjwt,
 * jansson and OpenSSL 3 keep no shared mutable state for these calls, so
 * any number of threads may issue and verify at once without a lock. */
#include "gw_auth.h"

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
#include <sodium.h>

#include "core_log.h"
#include "core_time.h"

#define GW_AUTH_SECRET_MAX 1024  /* bytes; HMAC keys longer than this are pointless */
#define GW_AUTH_SECRET_RANDOM 32 /* bytes generated when no secret is given */
#define GW_AUTH_SIG_B64_LEN 43   /* base64url of a 32-byte HMAC-SHA256, unpadded */
#define GW_AUTH_HEADER_MAX 512   /* decoded header bytes; ours is 27 */

struct gw_auth {
    unsigned char secret[GW_AUTH_SECRET_MAX]; /* HS256 key, secret_len bytes used */
    size_t secret_len;                        /* 1..GW_AUTH_SECRET_MAX */
    int ttl_s;                                /* lifetime of issued tokens, > 0 */
};

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
static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
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

/* ---- verification ---- */

/* Step 2: the header must be a JSON object naming HS256 and nothing we
 * would be expected to understand ("crit"). */
static int verify_header(const char *b64, size_t n, const char **reason)
{
    unsigned char buf[GW_AUTH_HEADER_MAX];
    long len = b64url_decode(b64, n, buf, sizeof buf);
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
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0 ||
        json_string_length(alg) != 5) {
        *reason = "algorithm not allowed";
        goto out;
    }
    if (json_object_get(h, "crit") != NULL) {
        *reason = "unsupported header";
        goto out;
    }
    rc = GW_AUTH_OK;
out:
    json_decref(h);
    return rc;
}

/* Step 4: HMAC-SHA256 over signing_input, compared in constant time. */
static int verify_signature(const gw_auth *a, const char *signing_input, size_t n,
                            const char *sig_b64, size_t sig_n, const char **reason)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[32];
    unsigned int want_len = 0;
    if (sig_n != GW_AUTH_SIG_B64_LEN ||
        b64url_decode(sig_b64, sig_n, got, sizeof got) != (long)sizeof got) {
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

/* "tessera" as a string, or an array holding the string "tessera". */
static bool audience_ok(json_t *claims)
{
    json_t *aud = json_object_get(claims, "aud");
    if (json_is_array(aud)) {
        size_t i;
        json_t *e;
        json_array_foreach(aud, i, e)
        {
            if (json_is_string(e) && json_string_length(e) == strlen(GW_AUTH_AUDIENCE) &&
                strcmp(json_string_value(e), GW_AUTH_AUDIENCE) == 0)
                return true;
        }
        return false;
    }
    const char *s = claim_str(claims, "aud");
    return s != NULL && strcmp(s, GW_AUTH_AUDIENCE) == 0;
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

/* Step 6. claims: the payload object; now: wall-clock seconds. */
static int check_claims(json_t *claims, int64_t now, gw_claims *out, const char **reason)
{
    json_int_t exp, nbf, iat;
    if (!claim_int(claims, "exp", &exp)) {
        *reason = "missing exp";
        return GW_AUTH_E_INVALID;
    }
    /* Written as now - skew rather than exp + skew: exp is attacker-sized
     * (any int64), and the subtraction cannot overflow. */
    if (exp < now - GW_AUTH_SKEW_S) {
        *reason = "expired";
        return GW_AUTH_E_EXPIRED;
    }
    if (json_object_get(claims, "nbf") != NULL &&
        (!claim_int(claims, "nbf", &nbf) || nbf > now + GW_AUTH_SKEW_S)) {
        *reason = "not yet valid";
        return GW_AUTH_E_INVALID;
    }
    if (json_object_get(claims, "iat") != NULL &&
        (!claim_int(claims, "iat", &iat) || iat > now + GW_AUTH_SKEW_S)) {
        *reason = "issued in the future";
        return GW_AUTH_E_INVALID;
    }
    const char *iss = claim_str(claims, "iss");
    if (iss == NULL || strcmp(iss, GW_AUTH_ISSUER) != 0) {
        *reason = "bad issuer";
        return GW_AUTH_E_INVALID;
    }
    if (!audience_ok(claims)) {
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

/* Step 6 on a decoded token. libjwt's typed getters cannot tell "absent"
 * from "wrong type" reliably (jwt_get_grant_int on a string returns 0 with
 * errno unset), so the claims are read back as JSON and checked with
 * explicit types. */
static int verify_claims(jwt_t *jwt, int64_t now, gw_claims *out, const char **reason)
{
    char *js = jwt_get_grants_json(jwt, NULL);
    if (js == NULL) {
        *reason = "bad claims";
        return GW_AUTH_E_INVALID;
    }
    json_t *claims = json_loads(js, 0, NULL);
    free(js);
    int rc;
    if (!json_is_object(claims)) {
        *reason = "bad claims";
        rc = GW_AUTH_E_INVALID;
    } else {
        rc = check_claims(claims, now, out, reason);
    }
    json_decref(claims);
    return rc;
}

int gw_auth_verify(gw_auth *a, const char *token, size_t len, gw_claims *claims,
                   const char **reason)
{
    const char *dummy;
    if (reason == NULL)
        reason = &dummy;
    *reason = NULL;
    assert(a != NULL && claims != NULL);
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

    int rc = verify_header(token, dots[0], reason); /* step 2 */
    if (rc != GW_AUTH_OK)
        return rc;
    /* The payload's encoding is checked even though the HMAC covers it, so
     * that libjwt's more lenient decoder never sees anything odd. */
    size_t p_off = dots[0] + 1, p_n = dots[1] - p_off;
    if (p_n % 4 == 1) {
        *reason = "bad base64url";
        return GW_AUTH_E_INVALID;
    }
    rc = verify_signature(a, token, dots[1], token + dots[1] + 1, len - dots[1] - 1,
                          reason); /* steps 3-4 */
    if (rc != GW_AUTH_OK)
        return rc;

    /* Step 5: libjwt wants a NUL-terminated string. */
    char buf[GW_AUTH_TOKEN_MAX + 1];
    memcpy(buf, token, len);
    buf[len] = '\0';
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, buf, a->secret, (int)a->secret_len) != 0 || jwt == NULL) {
        *reason = "bad claims"; /* payload not a JSON object, or libjwt disagrees */
        return GW_AUTH_E_INVALID;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) { /* belt and braces for step 2 */
        *reason = "algorithm not allowed";
        rc = GW_AUTH_E_INVALID;
    } else {
        rc = verify_claims(jwt, core_wall_s(), claims, reason);
    }
    jwt_free(jwt);
    return rc;
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
    *out = a;
    return 0;
}

void gw_auth_destroy(gw_auth *a)
{
    if (a == NULL)
        return;
    sodium_memzero(a, sizeof *a);
    free(a);
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
