/* test_auth.c - gw_auth tokens: the issue/verify round trip and the table
 * of attacks from DECISIONS.md ("Auth"), each rejected for its own reason,
 * for our HS256 tokens. Malicious tokens are built by hand (base64url of
 * JSON, HMAC by OpenSSL) so the tests do not depend on what libjwt is
 * willing to produce. The provider (RS256/ES256, kid) half of issue 3's
 * table - alg confusion with the RSA public key, unknown kid, rotation -
 * is in test_auth_keys.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gw_auth.h"

static const char SECRET[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes */
static const char OTHER[] = "fedcba9876543210fedcba9876543210";
static const char HDR_HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

/* header.payload.signature with an HMAC over the first two by md and key;
 * md NULL gives an empty signature (alg none). Returns a static buffer. */
static const char *craft(const char *header, const char *payload, const EVP_MD *md, const char *key)
{
    static char tok[4096];
    size_t n = b64url((const unsigned char *)header, strlen(header), tok);
    tok[n++] = '.';
    n += b64url((const unsigned char *)payload, strlen(payload), tok + n);
    size_t signing_n = n;
    tok[n++] = '.';
    tok[n] = '\0';
    if (md != NULL) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_n = 0;
        assert_non_null(
            HMAC(md, key, (int)strlen(key), (const unsigned char *)tok, signing_n, mac, &mac_n));
        b64url(mac, mac_n, tok + n);
    }
    return tok;
}

/* A payload with every claim valid, with one claim's text replaced:
 * fields set to NULL are left out. */
typedef struct claims_spec {
    const char *sub, *name, *iss, *aud, *extra;
    long exp, iat;
    int has_exp;
} claims_spec;

static const char *payload(const claims_spec *c)
{
    static char buf[2048];
    int n = snprintf(buf, sizeof buf, "{");
    if (c->sub)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "\"sub\":%s,", c->sub);
    if (c->name)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "\"name\":%s,", c->name);
    if (c->iss)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "\"iss\":%s,", c->iss);
    if (c->aud)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "\"aud\":%s,", c->aud);
    if (c->extra)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s,", c->extra);
    if (c->has_exp)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "\"exp\":%ld,", c->exp);
    snprintf(buf + n, sizeof buf - (size_t)n, "\"iat\":%ld}", c->iat);
    return buf;
}

static claims_spec good_claims(void)
{
    long now = (long)time(NULL);
    return (claims_spec){.sub = "\"7\"",
                         .name = "\"ada\"",
                         .iss = "\"tessera\"",
                         .aud = "\"tessera\"",
                         .exp = now + 600,
                         .iat = now,
                         .has_exp = 1};
}

static int setup(void **state)
{
    gw_auth *a = NULL;
    assert_int_equal(gw_auth_create(&a, SECRET, strlen(SECRET), 3600), 0);
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    gw_auth_destroy(*state);
    return 0;
}

/* Verifies tok and checks the status and the reason. */
static void expect(gw_auth *a, const char *tok, size_t len, int status, const char *reason)
{
    gw_claims c;
    const char *why = NULL;
    int rc = gw_auth_verify(a, tok, len, &c, &why);
    if (rc != status || (reason && (why == NULL || strcmp(why, reason) != 0)))
        fail_msg("token %.80s...: got %d (%s), want %d (%s)", tok ? tok : "(null)", rc,
                 why ? why : "no reason", status, reason ? reason : "none");
}

static void expect_claims(gw_auth *a, const claims_spec *c, int status, const char *reason)
{
    const char *tok = craft(HDR_HS256, payload(c), EVP_sha256(), SECRET);
    expect(a, tok, strlen(tok), status, reason);
}

static void test_issue_verify_round_trip(void **state)
{
    gw_auth *a = *state;
    char tok[1024];
    gw_claims c;
    const char *why = "unset";
    long before = (long)time(NULL);
    assert_int_equal(gw_auth_issue(a, 42, "ada_L-1", tok, sizeof tok), 0);
    assert_int_equal(gw_auth_verify(a, tok, strlen(tok), &c, &why), GW_AUTH_OK);
    assert_int_equal(c.account_id, 42);
    assert_string_equal(c.username, "ada_L-1");
    assert_in_range(c.exp, before + 3600, (long)time(NULL) + 3600);
    /* Two tokens for the same account differ (random jti). */
    char tok2[1024];
    assert_int_equal(gw_auth_issue(a, 42, "ada_L-1", tok2, sizeof tok2), 0);
    assert_string_not_equal(tok, tok2);
}

static void test_issue_rejects_small_buffer_and_bad_input(void **state)
{
    gw_auth *a = *state;
    char tok[1024];
    assert_int_equal(gw_auth_issue(a, 1, "ada", tok, 40), -1);
    assert_int_equal(gw_auth_issue(a, 0, "ada", tok, sizeof tok), -1);
    assert_int_equal(gw_auth_issue(a, 1, "a d", tok, sizeof tok), -1);
}

static void test_random_secret_round_trip_and_isolated(void **state)
{
    gw_auth *a = *state, *r = NULL;
    char tok[1024];
    assert_int_equal(gw_auth_create(&r, NULL, 0, 60), 0);
    assert_int_equal(gw_auth_issue(r, 9, "bob", tok, sizeof tok), 0);
    expect(r, tok, strlen(tok), GW_AUTH_OK, NULL);
    expect(a, tok, strlen(tok), GW_AUTH_E_INVALID, "bad signature");
    gw_auth_destroy(r);
    gw_auth_destroy(NULL);
}

static void test_create_rejects_bad_args(void **state)
{
    (void)state;
    gw_auth *a = (gw_auth *)1;
    assert_int_equal(gw_auth_create(&a, SECRET, strlen(SECRET), 0), -1);
    assert_null(a);
    assert_int_equal(gw_auth_create(&a, NULL, 5, 60), -1);
}

static void test_crafted_valid_token_accepted(void **state)
{
    claims_spec c = good_claims();
    expect_claims(*state, &c, GW_AUTH_OK, NULL);
}

static void test_alg_none_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *t = craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload(&c), NULL, SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "algorithm not allowed");
    t = craft("{\"alg\":\"none\"}", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "algorithm not allowed");
}

static void test_alg_hs384_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *t = craft("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", payload(&c), EVP_sha384(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "algorithm not allowed");
}

static void test_alg_hs512_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *t = craft("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload(&c), EVP_sha512(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "algorithm not allowed");
}

static void test_alg_rs256_rejected(void **state)
{
    /* The key-confusion attack: an RS256 header with an HMAC signature. */
    claims_spec c = good_claims();
    const char *t = craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "algorithm not allowed");
}

static void test_alg_variants_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *hdrs[] = {"{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":[\"HS256\"]}"};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        const char *t = craft(hdrs[i], payload(&c), EVP_sha256(), SECRET);
        expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "algorithm not allowed");
    }
}

static void test_kid_local_is_ours(void **state)
{
    gw_auth *a = *state;
    char tok[1024];
    /* Issued tokens name kid "local" in their header. */
    assert_int_equal(gw_auth_issue(a, 7, "ada", tok, sizeof tok), 0);
    unsigned char hdr[256];
    size_t n = (size_t)(strchr(tok, '.') - tok);
    EVP_DecodeBlock(hdr, (const unsigned char *)tok, (int)(n / 4 * 4));
    assert_non_null(strstr((const char *)hdr, "\"kid\":\"local\""));
    claims_spec c = good_claims();
    const char *t =
        craft("{\"alg\":\"HS256\",\"kid\":\"local\"}", payload(&c), EVP_sha256(), SECRET);
    expect(a, t, strlen(t), GW_AUTH_OK, NULL);
    /* Any other kid must name a provider key; there are none here. */
    t = craft("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", payload(&c), EVP_sha256(), SECRET);
    expect(a, t, strlen(t), GW_AUTH_E_INVALID, "unknown kid");
    t = craft("{\"alg\":\"HS256\",\"kid\":\"a/b\"}", payload(&c), EVP_sha256(), SECRET);
    expect(a, t, strlen(t), GW_AUTH_E_INVALID, "bad kid");
}

static void test_header_problems_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *t = craft("{\"typ\":\"JWT\"}", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "missing alg");
    t = craft("{\"alg\":\"HS256\",\"alg\":\"none\"}", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "bad header");
    t = craft("{\"alg\":\"HS256\\u0000\"}", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "bad header");
    t = craft("[\"HS256\"]", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "bad header");
    t = craft("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", payload(&c), EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "unsupported header");
}

static void test_other_secret_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *t = craft(HDR_HS256, payload(&c), EVP_sha256(), OTHER);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "bad signature");
}

static void test_missing_exp_rejected(void **state)
{
    claims_spec c = good_claims();
    c.has_exp = 0;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "missing exp");
    c.has_exp = 0;
    c.extra = "\"exp\":\"9999999999\""; /* a string is not a NumericDate */
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "missing exp");
}

static void test_expired_beyond_skew_rejected(void **state)
{
    claims_spec c = good_claims();
    c.exp = (long)time(NULL) - GW_AUTH_SKEW_S - 5;
    expect_claims(*state, &c, GW_AUTH_E_EXPIRED, "expired");
    c.exp = -9223372036854775807L; /* no overflow at the extremes */
    expect_claims(*state, &c, GW_AUTH_E_EXPIRED, "expired");
}

static void test_expired_within_skew_accepted(void **state)
{
    claims_spec c = good_claims();
    c.exp = (long)time(NULL) - GW_AUTH_SKEW_S / 3;
    expect_claims(*state, &c, GW_AUTH_OK, NULL);
    c.exp = 9223372036854775807L;
    expect_claims(*state, &c, GW_AUTH_OK, NULL);
}

static void test_nbf_in_future_rejected(void **state)
{
    claims_spec c = good_claims();
    char extra[64];
    snprintf(extra, sizeof extra, "\"nbf\":%ld", (long)time(NULL) + GW_AUTH_SKEW_S + 60);
    c.extra = extra;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "not yet valid");
    snprintf(extra, sizeof extra, "\"nbf\":\"0\""); /* not a NumericDate */
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "not yet valid");
    snprintf(extra, sizeof extra, "\"nbf\":%ld", (long)time(NULL) + GW_AUTH_SKEW_S / 3);
    expect_claims(*state, &c, GW_AUTH_OK, NULL);
}

static void test_iat_in_future_rejected(void **state)
{
    claims_spec c = good_claims();
    c.iat = (long)time(NULL) + GW_AUTH_SKEW_S + 60;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "issued in the future");
}

static void test_wrong_iss_rejected(void **state)
{
    claims_spec c = good_claims();
    c.iss = "\"tessera2\"";
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad issuer");
    c.iss = NULL;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad issuer");
}

static void test_wrong_aud_rejected(void **state)
{
    claims_spec c = good_claims();
    c.aud = "\"other\"";
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad audience");
    c.aud = "[\"other\",\"tessera \"]";
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad audience");
    c.aud = "7";
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad audience");
    c.aud = NULL;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad audience");
}

static void test_aud_array_accepted(void **state)
{
    claims_spec c = good_claims();
    c.aud = "[\"other\",\"tessera\"]";
    expect_claims(*state, &c, GW_AUTH_OK, NULL);
}

static void test_missing_sub_rejected(void **state)
{
    claims_spec c = good_claims();
    c.sub = NULL;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "missing sub");
}

static void test_non_numeric_sub_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *bad[] = {"\"abc\"",        "\"7a\"",          "\"\"",   "\"0\"",
                         "\"-7\"",         "\"+7\"",          "\" 7\"", "\"007\"",
                         "\"4294967296\"", "\"99999999999\"", "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.sub = bad[i];
        expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad sub");
    }
    c.sub = "\"4294967295\"";
    expect_claims(*state, &c, GW_AUTH_OK, NULL);
}

static void test_bad_name_rejected(void **state)
{
    claims_spec c = good_claims();
    const char *bad[] = {"\"ab\"", "\"a b c\"", "\"abcdefghijklmnopqrstuvwxy\"", "\"\"", "42"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.name = bad[i];
        expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad name");
    }
    c.name = NULL;
    expect_claims(*state, &c, GW_AUTH_E_INVALID, "bad name");
}

static void test_signed_non_json_payload_rejected(void **state)
{
    const char *t = craft(HDR_HS256, "not json", EVP_sha256(), SECRET);
    expect(*state, t, strlen(t), GW_AUTH_E_INVALID, "bad claims");
}

static char flip(char ch)
{
    return ch == 'A' ? 'B' : 'A';
}

static void test_tampered_payload_rejected(void **state)
{
    gw_auth *a = *state;
    char tok[1024];
    assert_int_equal(gw_auth_issue(a, 7, "ada", tok, sizeof tok), 0);
    char *p = strchr(tok, '.') + 1;
    p[4] = flip(p[4]);
    expect(a, tok, strlen(tok), GW_AUTH_E_INVALID, "bad signature");
}

static void test_tampered_signature_rejected(void **state)
{
    gw_auth *a = *state;
    char tok[1024];
    assert_int_equal(gw_auth_issue(a, 7, "ada", tok, sizeof tok), 0);
    char *s = strrchr(tok, '.') + 1;
    char orig = s[10];
    s[10] = flip(s[10]);
    expect(a, tok, strlen(tok), GW_AUTH_E_INVALID, "bad signature");
    s[10] = orig; /* restored: valid again */
    expect(a, tok, strlen(tok), GW_AUTH_OK, NULL);
    /* The last of 43 characters carries 2 unused bits: a non-canonical
     * spelling of the same MAC must not verify (no malleable tokens). */
    size_t n = strlen(s);
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t v = (size_t)(strchr(alpha, s[n - 1]) - alpha);
    s[n - 1] = alpha[v | 1];
    expect(a, tok, strlen(tok), GW_AUTH_E_INVALID, "bad signature");
    s[n - 1] = '\0'; /* truncated signature */
    expect(a, tok, strlen(tok), GW_AUTH_E_INVALID, "bad signature");
}

static void test_malformed_base64_rejected(void **state)
{
    gw_auth *a = *state;
    char tok[1024], bad[1100];
    assert_int_equal(gw_auth_issue(a, 7, "ada", tok, sizeof tok), 0);
    const char inject[] = {'*', '=', ' ', '+', '/', '\n', '\0', (char)0xc3};
    for (size_t i = 0; i < sizeof inject; i++) {
        memcpy(bad, tok, strlen(tok) + 1);
        bad[3] = inject[i]; /* in the header */
        expect(a, bad, strlen(tok), GW_AUTH_E_INVALID, "bad base64url");
    }
    size_t n = strlen(tok);
    memcpy(bad, tok, n);
    memcpy(bad + n, "==", 3); /* padding after the signature */
    expect(a, bad, n + 2, GW_AUTH_E_INVALID, "bad base64url");
    /* A header of length 1 mod 4 cannot be base64url. */
    const char *t =
        "eyJhbGciOiJIUzI1NiJ9A.eyJzdWIiOiI3In0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    expect(a, t, strlen(t), GW_AUTH_E_INVALID, "bad base64url");
}

static void test_wrong_dot_count_rejected(void **state)
{
    gw_auth *a = *state;
    char tok[1024], bad[1100];
    assert_int_equal(gw_auth_issue(a, 7, "ada", tok, sizeof tok), 0);
    const char *few = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0";
    expect(a, few, strlen(few), GW_AUTH_E_INVALID, "malformed token");
    expect(a, "abc", 3, GW_AUTH_E_INVALID, "malformed token");
    snprintf(bad, sizeof bad, "%s.", tok);
    expect(a, bad, strlen(bad), GW_AUTH_E_INVALID, "malformed token");
    snprintf(bad, sizeof bad, "%s.AAAA", tok);
    expect(a, bad, strlen(bad), GW_AUTH_E_INVALID, "malformed token");
    expect(a, "..", 2, GW_AUTH_E_INVALID, "malformed token");
    expect(a, ".a.b", 4, GW_AUTH_E_INVALID, "malformed token");
}

static void test_oversized_token_rejected(void **state)
{
    gw_auth *a = *state;
    size_t n = GW_AUTH_TOKEN_MAX + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'A', n);
    big[10] = '.';
    big[20] = '.';
    big[n] = '\0';
    expect(a, big, n, GW_AUTH_E_INVALID, "token too long");
    /* At the limit the token is parsed (and fails later, on its header). */
    expect(a, big, n - 1, GW_AUTH_E_INVALID, NULL);
    free(big);
}

static void test_empty_token_rejected(void **state)
{
    expect(*state, "", 0, GW_AUTH_E_INVALID, "empty token");
    expect(*state, NULL, 0, GW_AUTH_E_INVALID, "empty token");
}

static void test_null_reason_allowed(void **state)
{
    gw_claims c;
    assert_int_equal(gw_auth_verify(*state, "x", 1, &c, NULL), GW_AUTH_E_INVALID);
}

/* Issue and verify from several threads at once (ASan/TSan food). */
static void *hammer(void *arg)
{
    gw_auth *a = arg;
    char tok[1024];
    gw_claims c;
    const char *why;
    for (uint32_t i = 1; i <= 300; i++) {
        if (gw_auth_issue(a, i, "racer", tok, sizeof tok) != 0)
            return (void *)1;
        if (gw_auth_verify(a, tok, strlen(tok), &c, &why) != GW_AUTH_OK || c.account_id != i)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_issue_verify(void **state)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, *state), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue_verify_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_rejects_small_buffer_and_bad_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_random_secret_round_trip_and_isolated, setup,
                                        teardown),
        cmocka_unit_test(test_create_rejects_bad_args),
        cmocka_unit_test_setup_teardown(test_crafted_valid_token_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_none_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_hs384_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_hs512_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_rs256_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_variants_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kid_local_is_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_problems_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_secret_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_exp_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_beyond_skew_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_within_skew_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nbf_in_future_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iat_in_future_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_iss_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_aud_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aud_array_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_sub_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_numeric_sub_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_name_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_non_json_payload_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_payload_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_signature_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_base64_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_dot_count_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_token_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_token_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_reason_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_issue_verify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
