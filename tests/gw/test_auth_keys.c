/* test_auth_keys.c - gw_auth with token providers' public keys: RS256 and
 * ES256 tokens selected by kid, the algorithm pinned by the key's type,
 * the attack table of issue 3 for provider tokens (alg none, HS384/HS512,
 * HS256 signed with the RSA public key with and without a kid naming it,
 * unknown kid, claims, tampering, malformed base64, size), key rotation,
 * bad key files, revocation (incl. ECDSA's second signature form) and the
 * refresh token helpers. Keys are made at test time (ts_jwt.h) in a
 * temporary folder; tokens are signed with OpenSSL directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "gw_auth.h"
#include "ts_jwt.h"

static const char SECRET[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes */
static const char ISS[] = "https://idp.example";
static const char AUD[] = "tessera-game";

/* Keys made once for the whole file (RSA generation is slow). */
static EVP_PKEY *g_rsa1, *g_rsa2, *g_ec1;
static char g_dir[64];

typedef struct fx {
    gw_auth *a;
} fx;

static void write_key(EVP_PKEY *k, const char *kid)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.pem", g_dir, kid);
    ts_jwt_write_pub_pem(k, path);
}

static void remove_key(const char *kid)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.pem", g_dir, kid);
    unlink(path);
}

static int group_setup(void **state)
{
    (void)state;
    g_rsa1 = ts_jwt_rsa(2048);
    g_rsa2 = ts_jwt_rsa(2048);
    g_ec1 = ts_jwt_p256();
    snprintf(g_dir, sizeof g_dir, "/tmp/tessera-keys-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_rsa1);
    EVP_PKEY_free(g_rsa2);
    EVP_PKEY_free(g_ec1);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    write_key(g_rsa1, "rsa1");
    write_key(g_rsa2, "rsa2");
    write_key(g_ec1, "ec1");
    remove_key("rsa3");
    assert_int_equal(gw_auth_create(&f->a, SECRET, strlen(SECRET), 900), 0);
    assert_int_equal(gw_auth_set_policy(f->a, ISS, AUD, 30), 0);
    char err[256] = "";
    if (gw_auth_keys_load_dir(f->a, g_dir, err, sizeof err) != 3)
        fail_msg("load_dir: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    gw_auth_destroy(f->a);
    free(f);
    return 0;
}

/* A provider payload, valid unless changed: extra is spliced in, and the
 * named fields replace the defaults when not NULL. */
typedef struct spec {
    const char *iss, *aud, *extra;
    long exp;
    bool no_exp;
} spec;

static const char *payload(const spec *s)
{
    static char buf[8192];
    long now = (long)time(NULL);
    int n =
        snprintf(buf, sizeof buf, "{\"sub\":\"3000000001\",\"name\":\"ext_ada\",\"iat\":%ld,", now);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "\"iss\":\"%s\",\"aud\":\"%s\"",
                  s && s->iss ? s->iss : ISS, s && s->aud ? s->aud : AUD);
    if (!(s && s->no_exp))
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"exp\":%ld",
                      s && s->exp ? s->exp : now + 300);
    if (s && s->extra)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",%s", s->extra);
    snprintf(buf + n, sizeof buf - (size_t)n, "}");
    return buf;
}

static char *signed_by(const char *alg, const char *kid, EVP_PKEY *k, const spec *s)
{
    char h[128];
    if (kid)
        snprintf(h, sizeof h, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(h, sizeof h, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return ts_jwt_sign(h, payload(s), NULL, NULL, 0, k);
}

static void expect(gw_auth *a, const char *tok, int status, const char *reason)
{
    gw_claims c;
    const char *why = NULL;
    int rc = gw_auth_verify(a, tok, strlen(tok), &c, &why);
    if (rc != status || (reason && (why == NULL || strcmp(why, reason) != 0)))
        fail_msg("token %.60s...: got %d (%s), want %d (%s)", tok, rc, why ? why : "no reason",
                 status, reason ? reason : "none");
}

/* Verifies tok (which it frees) and checks status and reason. */
static void expect_free(gw_auth *a, char *tok, int status, const char *reason)
{
    expect(a, tok, status, reason);
    free(tok);
}

static void test_rs256_and_es256_with_their_kids_accepted(void **state)
{
    fx *f = *state;
    const char *kids[] = {"rsa1", "rsa2", "ec1"};
    EVP_PKEY *keys[] = {g_rsa1, g_rsa2, g_ec1};
    const char *algs[] = {"RS256", "RS256", "ES256"};
    for (int i = 0; i < 3; i++) {
        char *t = signed_by(algs[i], kids[i], keys[i], NULL);
        gw_claims c;
        const char *why = NULL;
        if (gw_auth_verify(f->a, t, strlen(t), &c, &why) != GW_AUTH_OK)
            fail_msg("%s: %s", kids[i], why);
        assert_int_equal(c.account_id, 3000000001u);
        assert_string_equal(c.username, "ext_ada");
        assert_true(c.is_external);
        free(t);
    }
    assert_int_equal(gw_auth_key_count(f->a), 3);
}

static void test_our_tokens_keep_their_own_issuer(void **state)
{
    fx *f = *state;
    char tok[1024];
    assert_int_equal(gw_auth_issue(f->a, 7, "ada", tok, sizeof tok), 0);
    gw_claims c;
    assert_int_equal(gw_auth_verify(f->a, tok, strlen(tok), &c, NULL), GW_AUTH_OK);
    assert_false(c.is_external);
    /* A provider token claiming to be ours (iss "tessera") is not. */
    spec s = {.iss = "tessera", .aud = "tessera"};
    expect_free(f->a, signed_by("RS256", "rsa1", g_rsa1, &s), GW_AUTH_E_INVALID, "bad issuer");
    /* kid "local" is ours: an RS256 token cannot use it. */
    expect_free(f->a, signed_by("RS256", "local", g_rsa1, NULL), GW_AUTH_E_INVALID,
                "algorithm not allowed");
}

static void test_alg_confusion_hs256_with_rsa_public_key_rejected(void **state)
{
    fx *f = *state;
    char *pem = ts_jwt_pub_pem(g_rsa1);
    /* With a kid naming the RSA key: the key pins RS256. */
    char *t = ts_jwt_sign("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", payload(NULL), EVP_sha256(), pem,
                          strlen(pem), NULL);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "algorithm not allowed");
    /* Without a kid: our HS256 secret, which the PEM is not. */
    t = ts_jwt_sign("{\"alg\":\"HS256\"}", payload(NULL), EVP_sha256(), pem, strlen(pem), NULL);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "bad signature");
    free(pem);
}

static void test_alg_none_and_hmac_variants_with_kid_rejected(void **state)
{
    fx *f = *state;
    char *t =
        ts_jwt_sign("{\"alg\":\"none\",\"kid\":\"rsa1\"}", payload(NULL), NULL, NULL, 0, NULL);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "algorithm not allowed");
    t = ts_jwt_sign("{\"alg\":\"HS384\",\"kid\":\"rsa1\"}", payload(NULL), EVP_sha384(), SECRET,
                    strlen(SECRET), NULL);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "algorithm not allowed");
    t = ts_jwt_sign("{\"alg\":\"HS512\",\"kid\":\"ec1\"}", payload(NULL), EVP_sha512(), SECRET,
                    strlen(SECRET), NULL);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "algorithm not allowed");
    t = ts_jwt_sign("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", payload(NULL), NULL, NULL, 0, g_rsa1);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "algorithm not allowed");
}

static void test_alg_must_match_the_key_type(void **state)
{
    fx *f = *state;
    /* RS256 naming an EC key and ES256 naming an RSA key. */
    expect_free(f->a, signed_by("RS256", "ec1", g_rsa1, NULL), GW_AUTH_E_INVALID,
                "algorithm not allowed");
    expect_free(f->a, signed_by("ES256", "rsa1", g_ec1, NULL), GW_AUTH_E_INVALID,
                "algorithm not allowed");
    /* A provider algorithm without a kid falls to our key: HS256 only. */
    expect_free(f->a, signed_by("RS256", NULL, g_rsa1, NULL), GW_AUTH_E_INVALID,
                "algorithm not allowed");
    /* Signed by the other RSA key than the kid names. */
    expect_free(f->a, signed_by("RS256", "rsa1", g_rsa2, NULL), GW_AUTH_E_INVALID, "bad signature");
}

static void test_unknown_and_bad_kid_rejected(void **state)
{
    fx *f = *state;
    expect_free(f->a, signed_by("RS256", "rsa9", g_rsa1, NULL), GW_AUTH_E_INVALID, "unknown kid");
    expect_free(f->a, signed_by("RS256", "../rsa1", g_rsa1, NULL), GW_AUTH_E_INVALID, "bad kid");
    expect_free(f->a, signed_by("RS256", "", g_rsa1, NULL), GW_AUTH_E_INVALID, "bad kid");
    char *t = ts_jwt_sign("{\"alg\":\"RS256\",\"kid\":7}", payload(NULL), NULL, NULL, 0, g_rsa1);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "bad kid");
}

static void test_provider_claims_checked(void **state)
{
    fx *f = *state;
    long now = (long)time(NULL);
    spec s = {.no_exp = true};
    expect_free(f->a, signed_by("ES256", "ec1", g_ec1, &s), GW_AUTH_E_INVALID, "missing exp");
    s = (spec){.exp = now - 31 - 5};
    expect_free(f->a, signed_by("RS256", "rsa1", g_rsa1, &s), GW_AUTH_E_EXPIRED, "expired");
    char nbf[48];
    snprintf(nbf, sizeof nbf, "\"nbf\":%ld", now + 120);
    s = (spec){.extra = nbf};
    expect_free(f->a, signed_by("RS256", "rsa1", g_rsa1, &s), GW_AUTH_E_INVALID, "not yet valid");
    s = (spec){.iss = "https://evil.example"};
    expect_free(f->a, signed_by("ES256", "ec1", g_ec1, &s), GW_AUTH_E_INVALID, "bad issuer");
    s = (spec){.aud = "tessera"};
    expect_free(f->a, signed_by("ES256", "ec1", g_ec1, &s), GW_AUTH_E_INVALID, "bad audience");
    /* Duplicate claims are refused outright (no "last one wins"). */
    s = (spec){.extra = "\"sub\":\"1\""};
    expect_free(f->a, signed_by("RS256", "rsa1", g_rsa1, &s), GW_AUTH_E_INVALID, "bad claims");
    char *t = ts_jwt_sign("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "[1]", NULL, NULL, 0, g_rsa1);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "bad claims");
}

static void test_skew_is_configurable_and_bounded(void **state)
{
    fx *f = *state;
    spec s = {.exp = (long)time(NULL) - 10};
    char *t = signed_by("RS256", "rsa1", g_rsa1, &s);
    expect(f->a, t, GW_AUTH_OK, NULL);
    assert_int_equal(gw_auth_set_policy(f->a, ISS, AUD, 0), 0);
    expect(f->a, t, GW_AUTH_E_EXPIRED, "expired");
    free(t);
    assert_int_equal(gw_auth_set_policy(f->a, ISS, AUD, GW_AUTH_SKEW_MAX_S + 1), -1);
    assert_int_equal(gw_auth_set_policy(f->a, "", AUD, 30), -1);
}

/* Flips one character of segment seg (0..2) at offset off. */
static void flip(char *tok, int seg, size_t off)
{
    char *p = tok;
    for (int i = 0; i < seg; i++)
        p = strchr(p, '.') + 1;
    p[off] = p[off] == 'A' ? 'B' : 'A';
}

static void test_tampering_rejected(void **state)
{
    fx *f = *state;
    EVP_PKEY *keys[] = {g_rsa1, g_ec1};
    const char *algs[] = {"RS256", "ES256"}, *kids[] = {"rsa1", "ec1"};
    for (int i = 0; i < 2; i++) {
        char *t = signed_by(algs[i], kids[i], keys[i], NULL);
        flip(t, 1, 5);
        expect_free(f->a, t, GW_AUTH_E_INVALID, "bad signature");
        t = signed_by(algs[i], kids[i], keys[i], NULL);
        flip(t, 2, 7);
        expect_free(f->a, t, GW_AUTH_E_INVALID, "bad signature");
        /* Truncated and extended signatures: wrong length. */
        t = signed_by(algs[i], kids[i], keys[i], NULL);
        t[strlen(t) - 4] = '\0';
        expect_free(f->a, t, GW_AUTH_E_INVALID, "bad signature");
        t = signed_by(algs[i], kids[i], keys[i], NULL);
        char *longer = malloc(strlen(t) + 8);
        snprintf(longer, strlen(t) + 8, "%sAAAA", t);
        expect_free(f->a, longer, GW_AUTH_E_INVALID, "bad signature");
        free(t);
    }
}

static void test_malformed_base64_and_size_rejected(void **state)
{
    fx *f = *state;
    char *t = signed_by("RS256", "rsa1", g_rsa1, NULL);
    char *sig = strrchr(t, '.') + 1;
    sig[3] = '+'; /* base64, not base64url */
    expect_free(f->a, t, GW_AUTH_E_INVALID, "bad base64url");
    /* ES256: 64 bytes are 86 characters whose last carries 2 spare bits. */
    t = signed_by("ES256", "ec1", g_ec1, NULL);
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(t);
    t[n - 1] = alpha[(strchr(alpha, t[n - 1]) - alpha) | 1];
    expect_free(f->a, t, GW_AUTH_E_INVALID, "bad signature");
    /* Over 8 KiB: refused before any parsing. */
    static char pad[7000];
    int pn = snprintf(pad, sizeof pad, "\"pad\":\"");
    memset(pad + pn, 'x', sizeof pad - (size_t)pn - 2);
    pad[sizeof pad - 2] = '"';
    pad[sizeof pad - 1] = '\0';
    spec s = {.extra = pad};
    t = signed_by("RS256", "rsa1", g_rsa1, &s);
    assert_true(strlen(t) > GW_AUTH_TOKEN_MAX);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "token too long");
}

static void test_key_rotation(void **state)
{
    fx *f = *state;
    char *t1 = signed_by("RS256", "rsa1", g_rsa1, NULL);
    char *t2 = signed_by("RS256", "rsa2", g_rsa2, NULL);
    expect(f->a, t1, GW_AUTH_OK, NULL);
    expect(f->a, t2, GW_AUTH_OK, NULL);
    /* rsa1 retired, rsa3 published (the same key pair as rsa2, new kid). */
    remove_key("rsa1");
    write_key(g_rsa2, "rsa3");
    char err[256];
    assert_int_equal(gw_auth_keys_load_dir(f->a, g_dir, err, sizeof err), 3);
    expect(f->a, t1, GW_AUTH_E_INVALID, "unknown kid");
    expect(f->a, t2, GW_AUTH_OK, NULL);
    expect_free(f->a, signed_by("RS256", "rsa3", g_rsa2, NULL), GW_AUTH_OK, NULL);
    free(t1);
    free(t2);
}

static void test_bad_key_files_keep_the_old_set(void **state)
{
    fx *f = *state;
    char err[256] = "", path[128];
    snprintf(path, sizeof path, "%s/junk.pem", g_dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", fp);
    fclose(fp);
    assert_int_equal(gw_auth_keys_load_dir(f->a, g_dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "junk.pem"));
    unlink(path);
    expect_free(f->a, signed_by("RS256", "rsa1", g_rsa1, NULL), GW_AUTH_OK, NULL);
    /* Weak or unsupported keys and the reserved kid are refused. */
    EVP_PKEY *small = ts_jwt_rsa(1024), *p384 = EVP_EC_gen("P-384");
    char *pem = ts_jwt_pub_pem(small);
    assert_int_equal(gw_auth_key_add_pem(f->a, "small", pem, strlen(pem), err, sizeof err), -1);
    assert_non_null(strstr(err, "bits"));
    assert_int_equal(gw_auth_key_add_pem(f->a, "local", pem, strlen(pem), err, sizeof err), -1);
    free(pem);
    pem = ts_jwt_pub_pem(p384);
    assert_int_equal(gw_auth_key_add_pem(f->a, "p384", pem, strlen(pem), err, sizeof err), -1);
    assert_non_null(strstr(err, "P-256"));
    free(pem);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p384);
    assert_int_equal(gw_auth_keys_load_dir(f->a, "/nonexistent-dir", err, sizeof err), -1);
    assert_int_equal(gw_auth_key_count(f->a), 3);
    /* A key added by PEM text verifies like a loaded one. */
    pem = ts_jwt_pub_pem(g_ec1);
    assert_int_equal(gw_auth_key_add_pem(f->a, "ec2", pem, strlen(pem), err, sizeof err), 0);
    free(pem);
    expect_free(f->a, signed_by("ES256", "ec2", g_ec1, NULL), GW_AUTH_OK, NULL);
}

/* ES256 (r, s) -> (r, n - s): the same signature, spelled differently. */
static void malleate_es256(char *tok)
{
    char *sig = strrchr(tok, '.') + 1;
    unsigned char raw[66];
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t bits = 0, o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; sig[i]; i++) {
        acc = (acc << 6) | (uint32_t)(strchr(alpha, sig[i]) - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    assert_int_equal(o, 64);
    EC_GROUP *grp = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM *s = BN_bin2bn(raw + 32, 32, NULL), *ns = BN_new();
    assert_int_equal(BN_sub(ns, EC_GROUP_get0_order(grp), s), 1);
    assert_int_equal(BN_bn2binpad(ns, raw + 32, 32), 32);
    ts_b64url(raw, 64, sig);
    BN_free(s);
    BN_free(ns);
    EC_GROUP_free(grp);
}

static void test_revoked_tokens_refused(void **state)
{
    fx *f = *state;
    char *t = signed_by("ES256", "ec1", g_ec1, NULL);
    gw_claims c;
    assert_int_equal(gw_auth_verify(f->a, t, strlen(t), &c, NULL), GW_AUTH_OK);
    gw_auth_revoke(f->a, &c);
    expect(f->a, t, GW_AUTH_E_INVALID, "token revoked");
    /* The other ECDSA form verifies, and is revoked all the same. */
    malleate_es256(t);
    expect_free(f->a, t, GW_AUTH_E_INVALID, "token revoked");
    /* Ours too; another token of the same account is not affected. */
    char tok[1024], tok2[1024];
    assert_int_equal(gw_auth_issue(f->a, 7, "ada", tok, sizeof tok), 0);
    assert_int_equal(gw_auth_issue(f->a, 7, "ada", tok2, sizeof tok2), 0);
    assert_int_equal(gw_auth_verify(f->a, tok, strlen(tok), &c, NULL), GW_AUTH_OK);
    gw_auth_revoke(f->a, &c);
    gw_auth_revoke(f->a, &c); /* twice is fine */
    expect(f->a, tok, GW_AUTH_E_INVALID, "token revoked");
    expect(f->a, tok2, GW_AUTH_OK, NULL);
}

static void test_revocation_set_is_bounded(void **state)
{
    fx *f = *state;
    /* Far more revocations than entries: memory stays fixed, the newest
     * are kept (every bucket evicts the entry nearest its expiry). */
    gw_claims c = {.exp = (long)time(NULL) + 600};
    for (uint32_t i = 0; i < 40000; i++) {
        memcpy(c.token_id, &i, sizeof i);
        c.exp++;
        gw_auth_revoke(f->a, &c);
    }
    char tok[1024];
    assert_int_equal(gw_auth_issue(f->a, 8, "bob", tok, sizeof tok), 0);
    assert_int_equal(gw_auth_verify(f->a, tok, strlen(tok), &c, NULL), GW_AUTH_OK);
    gw_auth_revoke(f->a, &c);
    expect(f->a, tok, GW_AUTH_E_INVALID, "token revoked");
}

static void test_refresh_token_shape(void **state)
{
    (void)state;
    char a[GW_AUTH_REFRESH_LEN + 1], b[GW_AUTH_REFRESH_LEN + 1];
    uint8_t ha[32], hb[32], h[32];
    gw_auth_refresh_new(a, ha);
    gw_auth_refresh_new(b, hb);
    assert_int_equal(strlen(a), GW_AUTH_REFRESH_LEN);
    assert_string_not_equal(a, b);
    assert_int_equal(gw_auth_refresh_hash(a, h), 0);
    assert_memory_equal(h, ha, 32);
    assert_memory_not_equal(ha, hb, 32);
    a[5] = '+';
    assert_int_equal(gw_auth_refresh_hash(a, h), -1);
    assert_int_equal(gw_auth_refresh_hash("short", h), -1);
    b[GW_AUTH_REFRESH_LEN - 1] = 'B'; /* 'B' has the spare bits set */
    assert_int_equal(gw_auth_refresh_hash(b, h), -1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_rs256_and_es256_with_their_kids_accepted),
        T(test_our_tokens_keep_their_own_issuer),
        T(test_alg_confusion_hs256_with_rsa_public_key_rejected),
        T(test_alg_none_and_hmac_variants_with_kid_rejected),
        T(test_alg_must_match_the_key_type),
        T(test_unknown_and_bad_kid_rejected),
        T(test_provider_claims_checked),
        T(test_skew_is_configurable_and_bounded),
        T(test_tampering_rejected),
        T(test_malformed_base64_and_size_rejected),
        T(test_key_rotation),
        T(test_bad_key_files_keep_the_old_set),
        T(test_revoked_tokens_refused),
        T(test_revocation_set_is_bounded),
        T(test_refresh_token_shape),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
