/* test_auth_flow.c - accounts and sessions against a real `tessera serve`
 * (docs/protocol.md sections 2, 3 and 9): a token provider's RS256 token
 * (public key in --jwt-keys-dir, made at test time) lets a client into
 * the world; refresh tokens rotate, and a re-used one revokes the
 * account's refresh tokens; logout kills the access token for new
 * upgrades and the refresh token; failed logins are limited per account
 * (429 with Retry-After, another account unaffected) and per address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tclient.h"
#include "ts_jwt.h"

#define ISSUER "https://idp.test"

static ts_server g_srv;
static bool g_server_bad;
static EVP_PKEY *g_provider; /* the provider's signing key; kid "prov1" */
static char g_keys_dir[64];

static int group_setup(void **state)
{
    (void)state;
    g_provider = ts_jwt_rsa(2048);
    snprintf(g_keys_dir, sizeof g_keys_dir, "/tmp/tessera-flow-keys-XXXXXX");
    if (!mkdtemp(g_keys_dir))
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/prov1.pem", g_keys_dir);
    ts_jwt_write_pub_pem(g_provider, path);
    const char *args[] = {"--npcs",       "0",    "--shards", "1", "--jwt-keys-dir", g_keys_dir,
                          "--jwt-issuer", ISSUER, NULL};
    return ts_server_start(&g_srv, args);
}

static int group_teardown(void **state)
{
    (void)state;
    g_server_bad = ts_server_stop_checked(&g_srv) != 0;
    EVP_PKEY_free(g_provider);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_keys_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_keys_dir);
    return g_server_bad ? -1 : 0;
}

/* ---- helpers ---- */

/* POSTs body to path with optional extra header lines; returns the status
 * and the parsed JSON body in *out_json (caller decrefs; NULL if none). */
static int post(const char *path, const char *headers, const char *body, json_t **out_json,
                ts_http_resp *out_resp)
{
    ts_http_resp r;
    char hdr[2048];
    snprintf(hdr, sizeof hdr, "Content-Type: application/json\r\n%s", headers ? headers : "");
    int st = ts_http_request(g_srv.port, "POST", path, hdr, body, &r);
    if (out_json) {
        json_error_t jerr;
        *out_json = r.body_len ? json_loadb(r.body, r.body_len, 0, &jerr) : NULL;
    }
    if (out_resp)
        *out_resp = r;
    else
        ts_http_resp_free(&r);
    return st;
}

static const char *jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

/* Logs in; copies the access and refresh tokens. Returns the status. */
static int login(const char *user, const char *pass, char *tok, size_t tcap, char *rt, size_t rcap)
{
    char body[256];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", user, pass);
    json_t *j = NULL;
    int st = post("/api/login", NULL, body, &j, NULL);
    if (st == 200) {
        snprintf(tok, tcap, "%s", jstr(j, "token"));
        snprintf(rt, rcap, "%s", jstr(j, "refresh_token"));
    }
    json_decref(j);
    return st;
}

/* POST /api/refresh; on 200 copies the new pair. *reason gets the error
 * reason (static copy) otherwise. */
static int refresh(const char *rt, char *tok, size_t tcap, char *new_rt, size_t rcap,
                   const char **reason)
{
    static char why[256];
    char body[128];
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", rt);
    json_t *j = NULL;
    int st = post("/api/refresh", NULL, body, &j, NULL);
    if (st == 200) {
        snprintf(tok, tcap, "%s", jstr(j, "token"));
        snprintf(new_rt, rcap, "%s", jstr(j, "refresh_token"));
    }
    snprintf(why, sizeof why, "%s", jstr(j, "reason"));
    if (reason)
        *reason = why;
    json_decref(j);
    return st;
}

/* Opens the WebSocket with token: 101 (after WELCOME) or the refusal's
 * status with its reason in why. */
static int enter(const char *token, char *why, size_t why_cap)
{
    ts_ws ws;
    ts_http_resp refusal = {0};
    ts_ws_opts o = {.bearer = token};
    int st = ts_ws_open(&ws, g_srv.port, &o, &refusal);
    if (why_cap)
        why[0] = '\0';
    if (st == 101) {
        ts_game g;
        ts_game_init(&g);
        if (ts_game_wait_welcome(&ws, &g, 5000) != 0)
            st = -2;
        ts_game_free(&g);
        ts_ws_close(&ws);
    } else if (refusal.body) {
        json_error_t jerr;
        json_t *j = json_loadb(refusal.body, refusal.body_len, 0, &jerr);
        snprintf(why, why_cap, "%s", jstr(j, "reason"));
        json_decref(j);
    }
    ts_http_resp_free(&refusal);
    return st;
}

static char *provider_token(const char *kid, const char *sub, const char *name, EVP_PKEY *k)
{
    char h[96], p[512];
    long now = (long)time(NULL);
    snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    snprintf(p, sizeof p,
             "{\"sub\":\"%s\",\"name\":\"%s\",\"iss\":\"" ISSUER "\",\"aud\":\"tessera\","
             "\"iat\":%ld,\"exp\":%ld}",
             sub, name, now, now + 300);
    return ts_jwt_sign(h, p, NULL, NULL, 0, k);
}

/* ---- tests ---- */

static void provider_rs256_token_enters_the_world(void **state)
{
    (void)state;
    char why[128];
    char *t = provider_token("prov1", "3000000001", "ext_ada", g_provider);
    assert_int_equal(enter(t, why, sizeof why), 101);
    /* Again: the account row exists now; the same entry works. */
    assert_int_equal(enter(t, why, sizeof why), 101);
    free(t);
    /* No password login reaches a provider's account. */
    char tok[TS_TOKEN_MAX], rt[64];
    assert_int_equal(login("ext_ada", "password1", tok, sizeof tok, rt, sizeof rt), 401);
}

static void provider_token_refusals(void **state)
{
    (void)state;
    char why[128];
    EVP_PKEY *other = ts_jwt_rsa(2048);
    char *t = provider_token("prov2", "3000000002", "ext_bob", other);
    assert_int_equal(enter(t, why, sizeof why), 401);
    assert_string_equal(why, "unknown kid");
    free(t);
    t = provider_token("prov1", "3000000002", "ext_bob", other);
    assert_int_equal(enter(t, why, sizeof why), 401);
    assert_string_equal(why, "bad signature");
    free(t);
    EVP_PKEY_free(other);
    /* HS256 signed with the provider's public key, naming its kid. */
    char *pem = ts_jwt_pub_pem(g_provider);
    long now = (long)time(NULL);
    char p[256];
    snprintf(p, sizeof p,
             "{\"sub\":\"3000000003\",\"name\":\"ext_eve\",\"iss\":\"" ISSUER "\","
             "\"aud\":\"tessera\",\"exp\":%ld}",
             now + 300);
    t = ts_jwt_sign("{\"alg\":\"HS256\",\"kid\":\"prov1\"}", p, EVP_sha256(), pem, strlen(pem),
                    NULL);
    assert_int_equal(enter(t, why, sizeof why), 401);
    assert_string_equal(why, "algorithm not allowed");
    free(t);
    free(pem);
    /* A provider naming a local account's name under another id. */
    char name[32], tok[TS_TOKEN_MAX], rt[64];
    ts_unique_name("loc", name, sizeof name);
    assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    t = provider_token("prov1", "3000000004", name, g_provider);
    assert_int_equal(enter(t, why, sizeof why), 401);
    assert_string_equal(why, "account conflict");
    free(t);
}

static void refresh_rotates_and_the_new_token_enters(void **state)
{
    (void)state;
    char name[32], tok[TS_TOKEN_MAX], rt[64], tok2[TS_TOKEN_MAX], rt2[64], tok3[TS_TOKEN_MAX],
        rt3[64], why[128];
    ts_unique_name("rot", name, sizeof name);
    assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    assert_int_equal(strlen(rt), 43);
    assert_int_equal(refresh(rt, tok2, sizeof tok2, rt2, sizeof rt2, NULL), 200);
    assert_int_equal(strlen(rt2), 43);
    assert_string_not_equal(rt, rt2);
    assert_string_not_equal(tok, tok2);
    assert_int_equal(enter(tok2, why, sizeof why), 101);
    assert_int_equal(refresh(rt2, tok3, sizeof tok3, rt3, sizeof rt3, NULL), 200);
    assert_int_equal(enter(tok3, why, sizeof why), 101);
    /* Garbage is a 401 at once; a missing field a 400. */
    const char *reason;
    assert_int_equal(refresh("nope", tok3, sizeof tok3, rt3, sizeof rt3, &reason), 401);
    assert_int_equal(post("/api/refresh", NULL, "{}", NULL, NULL), 400);
}

static void reused_refresh_token_revokes_the_account(void **state)
{
    (void)state;
    char name[32], tok[TS_TOKEN_MAX], rt[64], tok2[TS_TOKEN_MAX], rt2[64], x[TS_TOKEN_MAX], y[64];
    const char *reason;
    ts_unique_name("theft", name, sizeof name);
    assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    assert_int_equal(refresh(rt, tok2, sizeof tok2, rt2, sizeof rt2, NULL), 200);
    /* The old one again: a thief's copy (or a replay). */
    assert_int_equal(refresh(rt, x, sizeof x, y, sizeof y, &reason), 401);
    assert_non_null(strstr(reason, "already used"));
    /* ... and the legitimate newer one is dead too. */
    assert_int_equal(refresh(rt2, x, sizeof x, y, sizeof y, &reason), 401);
    assert_non_null(strstr(reason, "revoked"));
    /* A fresh login starts a new family. */
    assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    assert_int_equal(refresh(rt, x, sizeof x, y, sizeof y, NULL), 200);
}

static void logout_revokes_access_and_refresh(void **state)
{
    (void)state;
    char name[32], tok[TS_TOKEN_MAX], rt[64], other[TS_TOKEN_MAX], ort[64], x[TS_TOKEN_MAX], y[64],
        why[128];
    ts_unique_name("bye", name, sizeof name);
    assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    assert_int_equal(login(name, "password1", other, sizeof other, ort, sizeof ort), 200);
    assert_int_equal(enter(tok, why, sizeof why), 101);
    char hdr[TS_TOKEN_MAX + 32], body[128];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", rt);
    json_t *j = NULL;
    assert_int_equal(post("/api/logout", hdr, body, &j, NULL), 200);
    assert_string_equal(jstr(j, "status"), "logged_out");
    json_decref(j);
    assert_int_equal(enter(tok, why, sizeof why), 401);
    assert_string_equal(why, "token revoked");
    assert_int_equal(refresh(rt, x, sizeof x, y, sizeof y, NULL), 401);
    /* The other session of the account lives on. */
    assert_int_equal(enter(other, why, sizeof why), 101);
    assert_int_equal(refresh(ort, x, sizeof x, y, sizeof y, NULL), 200);
    /* Logging out twice is fine; a revoked bearer is a 401. */
    assert_int_equal(post("/api/logout", NULL, body, NULL, NULL), 200);
    assert_int_equal(post("/api/logout", hdr, "{}", NULL, NULL), 401);
    assert_int_equal(post("/api/logout", NULL, "{}", NULL, NULL), 400);
}

static int metric(const char *series)
{
    ts_http_resp r;
    if (ts_http_request(g_srv.port, "GET", "/metrics", NULL, NULL, &r) != 200)
        return -1;
    const char *p = strstr(r.body, series);
    int v = p ? atoi(p + strlen(series) + 1) : 0;
    ts_http_resp_free(&r);
    return v;
}

static void failed_logins_limited_per_account(void **state)
{
    (void)state;
    char a[32], b[32], tok[TS_TOKEN_MAX], rt[64];
    ts_unique_name("lima", a, sizeof a);
    ts_unique_name("limb", b, sizeof b);
    assert_int_equal(login(a, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    for (int i = 0; i < 5; i++)
        assert_int_equal(login(a, "wrong-pass", tok, sizeof tok, rt, sizeof rt), 401);
    ts_http_resp r;
    json_t *j = NULL;
    assert_int_equal(
        post("/api/login", NULL, "{\"username\":\"x\",\"password\":\"y\"}", NULL, NULL), 400);
    char body[128];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"wrong-pass\"}", a);
    assert_int_equal(post("/api/login", NULL, body, &j, &r), 429);
    assert_string_equal(jstr(j, "error"), "rate_limited");
    assert_non_null(strstr(jstr(j, "reason"), "too many failed logins; retry in "));
    char ra[16];
    assert_true(ts_http_header(&r, "Retry-After", ra, sizeof ra) > 0);
    assert_in_range(atoi(ra), 1, 60);
    json_decref(j);
    ts_http_resp_free(&r);
    /* The right password is refused too while the window lasts ... */
    assert_int_equal(login(a, "password1", tok, sizeof tok, rt, sizeof rt), 429);
    /* ... but another account is not affected, nor are successes counted. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(login(b, "password1", tok, sizeof tok, rt, sizeof rt), 200);
    assert_true(metric("tessera_login_limited_total{by=\"account\"}") >= 2);
}

/* Runs last: it exhausts the address's allowance for the whole server. */
static void failed_logins_limited_per_address(void **state)
{
    (void)state;
    char name[32], tok[TS_TOKEN_MAX], rt[64];
    int st = 0, n_failed = 0;
    /* 4 failures per account stay under the account limit; the address
     * allows 20 per window (5 were spent by the account test). */
    for (int acct = 0; acct < 8 && st != 429; acct++) {
        ts_unique_name("addr", name, sizeof name);
        assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 200);
        for (int i = 0; i < 4 && st != 429; i++) {
            st = login(name, "wrong-pass", tok, sizeof tok, rt, sizeof rt);
            n_failed += st == 401;
        }
    }
    assert_int_equal(st, 429);
    assert_in_range(n_failed, 1, 20);
    ts_unique_name("fresh", name, sizeof name);
    assert_int_equal(login(name, "password1", tok, sizeof tok, rt, sizeof rt), 429);
    assert_true(metric("tessera_login_limited_total{by=\"address\"}") >= 2);
}

int main(void)
{
    ts_watchdog(100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(provider_rs256_token_enters_the_world),
        cmocka_unit_test(provider_token_refusals),
        cmocka_unit_test(refresh_rotates_and_the_new_token_enters),
        cmocka_unit_test(reused_refresh_token_revokes_the_account),
        cmocka_unit_test(logout_revokes_access_and_refresh),
        cmocka_unit_test(failed_logins_limited_per_account),
        cmocka_unit_test(failed_logins_limited_per_address),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    failed += g_server_bad;
    ts_finish(failed);
    return failed;
}
