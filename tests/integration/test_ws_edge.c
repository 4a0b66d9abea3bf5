/* test_ws_edge.c - the WebSocket gateway's answers to bad input, against a
 * real `tessera serve` (docs/protocol.md sections 3, 4, 5 and 10):
 * refused upgrades, RFC 6455 violations and their close codes, and
 * game-level rejections that leave the connection open.
 *
 * One server for the file. Every connection logs in a fresh account, so
 * no test depends on how the server treats two sessions of one account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tclient.h"

/* Known so that tests can forge tokens the server must refuse. */
#define JWT_SECRET "integration-test-secret-0123456789abcdef"

static ts_server g_srv;

static int group_setup(void **state)
{
    (void)state;
    const char *args[] = {"--shards",     "2",        "--npcs", "0",
                          "--map-file",   "", /* no obstacle stops a walker */
                          "--jwt-secret", JWT_SECRET, NULL};
    return ts_server_start(&g_srv, args);
}

/* cmocka 1.1 does not count a failed group teardown, so main does. */
static bool g_server_bad;

static int group_teardown(void **state)
{
    (void)state;
    g_server_bad = ts_server_stop_checked(&g_srv) != 0;
    return g_server_bad ? -1 : 0;
}

/* Logs in a fresh account; the token goes to token (TS_TOKEN_MAX). */
static void fresh_token(char *token)
{
    char name[32];
    ts_unique_name("wse", name, sizeof name);
    int st = ts_login(g_srv.port, name, "password1", token, TS_TOKEN_MAX);
    if (st != 200)
        fail_msg("login %s: status %d", name, st);
}

/* Opens an upgraded connection for a fresh account. */
static void open_ws(ts_ws *ws)
{
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    int st = ts_ws_connect(ws, g_srv.port, token, NULL);
    if (st != 101)
        fail_msg("upgrade: status %d", st);
}

/* Opens a connection and waits for WELCOME and a first STATE. */
static void join(ts_ws *ws, ts_game *g)
{
    char name[32];
    ts_unique_name("wsg", name, sizeof name);
    ts_game_init(g);
    if (ts_game_join(g_srv.port, name, ws, g, 3000) != 0)
        fail_msg("join %s failed", name);
}

/* Reads until the close and checks its code; then the server must also
 * end the TCP connection. */
static void expect_close(ts_ws *ws, int want, const char *what)
{
    char reason[128];
    int code = ts_ws_expect_close(ws, 3000, NULL, reason, sizeof reason);
    if (code != want)
        print_error("%s: want close %d, got %d (reason \"%s\"%s)\n", what, want, code, reason,
                    code == -1 ? ", timed out" : "");
    assert_int_equal(code, want);
    if (code != TS_WS_NO_CLOSE)
        assert_int_equal(ts_wait_eof(ws->fd, 3000), 0);
    ts_ws_close(ws);
}

/* A well-formed PING record, used as the payload of framing tests. */
static const uint8_t ping_rec[6] = {0x02, 4, 1, 2, 3, 4};

/* ---- refused upgrades ---- */

static void upgrade_without_token_is_401(void **state)
{
    (void)state;
    ts_ws ws;
    ts_http_resp r;
    ts_ws_opts o = {0};
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, &r), 401);
    ts_http_resp_free(&r);
}

static void upgrade_with_bad_token_is_401(void **state)
{
    (void)state;
    ts_ws ws;
    ts_ws_opts o = {.token = "abc.def.ghi"};
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 401);
    o.token = "not-a-jwt";
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 401);
    /* A real token with its signature altered. */
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    size_t n = strlen(token);
    token[n - 2] = token[n - 2] == 'A' ? 'B' : 'A';
    o.token = token;
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 401);
    o.token = NULL;
    o.bearer = token;
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 401);
}

/* base64url without padding. */
static void b64url(const uint8_t *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = 0;
}

/* header.payload.signature, signed with HMAC(md, secret); md NULL leaves
 * the signature empty (alg "none"). */
static void forge_token(char *out, const char *header, const char *payload, const char *secret,
                        const EVP_MD *md)
{
    char h[512], pl[1024];
    b64url((const uint8_t *)header, strlen(header), h);
    b64url((const uint8_t *)payload, strlen(payload), pl);
    int n = snprintf(out, TS_TOKEN_MAX, "%s.%s.", h, pl);
    if (md) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        HMAC(md, secret, (int)strlen(secret), (const uint8_t *)out, (size_t)n - 1, mac, &mac_len);
        b64url(mac, mac_len, out + n);
    }
}

static void forged_tokens_are_401(void **state)
{
    (void)state;
    /* A real account, whose id and name the forged claims reuse. */
    char name[32], body[128];
    ts_unique_name("forge", name, sizeof name);
    snprintf(body, sizeof body, "{\"username\": \"%s\", \"password\": \"password1\"}", name);
    ts_http_resp r;
    assert_int_equal(ts_http_request(g_srv.port, "POST", "/api/login",
                                     "Content-Type: application/json\r\n", body, &r),
                     200);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    json_int_t account = json_integer_value(json_object_get(j, "account_id"));
    json_decref(j);
    ts_http_resp_free(&r);
    assert_true(account > 0);

    long now = (long)time(NULL);
    const char *hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[512], token[TS_TOKEN_MAX];
    ts_ws ws;
    ts_ws_opts o = {.token = token};
#define CLAIMS(iss, aud, iat, exp)                                                                 \
    snprintf(payload, sizeof payload,                                                              \
             "{\"sub\":\"%lld\",\"name\":\"%s\",\"iss\":\"%s\",\"aud\":\"%s\","                    \
             "\"iat\":%ld,\"exp\":%ld}",                                                           \
             (long long)account, name, iss, aud, (long)(iat), (long)(exp))

    /* Control: our forging is right, so the refusals below are meaningful. */
    CLAIMS("tessera", "tessera", now, now + 600);
    forge_token(token, hs256, payload, JWT_SECRET, EVP_sha256());
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 101);
    ts_ws_close(&ws);

    struct {
        const char *what;
        const char *header;
        const char *secret;
        const EVP_MD *md;
        long iat, exp;
        const char *iss, *aud;
        const char *body_says; /* NULL: any reason */
    } cases[] = {
        {"expired", hs256, JWT_SECRET, EVP_sha256(), now - 7200, now - 3600, "tessera", "tessera",
         "expired"},
        {"other secret", hs256, "another-secret-0123456789abcdef012345", EVP_sha256(), now,
         now + 600, "tessera", "tessera", NULL},
        {"alg none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", JWT_SECRET, NULL, now, now + 600,
         "tessera", "tessera", NULL},
        {"alg HS512", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", JWT_SECRET, EVP_sha512(), now,
         now + 600, "tessera", "tessera", NULL},
        {"wrong issuer", hs256, JWT_SECRET, EVP_sha256(), now, now + 600, "evil", "tessera", NULL},
        {"wrong audience", hs256, JWT_SECRET, EVP_sha256(), now, now + 600, "tessera", "evil",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CLAIMS(cases[i].iss, cases[i].aud, cases[i].iat, cases[i].exp);
        forge_token(token, cases[i].header, payload, cases[i].secret, cases[i].md);
        int st = ts_ws_open(&ws, g_srv.port, &o, &r);
        if (st != 401)
            print_error("token %s: want 401, got %d\n", cases[i].what, st);
        assert_int_equal(st, 401);
        if (cases[i].body_says && !strstr(r.body, cases[i].body_says))
            fail_msg("token %s: body \"%s\" does not say %s", cases[i].what, r.body,
                     cases[i].body_says);
        ts_http_resp_free(&r);
    }
    /* No exp claim at all. */
    snprintf(payload, sizeof payload,
             "{\"sub\":\"%lld\",\"name\":\"%s\",\"iss\":\"tessera\",\"aud\":\"tessera\","
             "\"iat\":%ld}",
             (long long)account, name, now);
    forge_token(token, hs256, payload, JWT_SECRET, EVP_sha256());
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 401);
#undef CLAIMS
}

static void upgrade_with_bearer_header_is_accepted(void **state)
{
    (void)state;
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    ts_ws ws;
    ts_ws_opts o = {.bearer = token};
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 101);
    ts_ws_close(&ws);
}

static void upgrade_with_wrong_version_is_426(void **state)
{
    (void)state;
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    ts_ws ws;
    ts_http_resp r;
    ts_ws_opts o = {.token = token, .version = "8"};
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, &r), 426);
    char v[64];
    assert_true(ts_http_header(&r, "Sec-WebSocket-Version", v, sizeof v) > 0);
    assert_string_equal(v, "13");
    ts_http_resp_free(&r);
}

static void upgrade_with_bad_key_is_400(void **state)
{
    (void)state;
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    ts_ws ws;
    ts_ws_opts o = {.token = token, .key = "abc"};
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 400);
    o.key = "dGhlIHNhbXBsZSBub25jZQ"; /* 22 chars: not 16 bytes of base64 */
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 400);
}

static void upgrade_with_unsupported_subprotocol_is_400(void **state)
{
    (void)state;
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    ts_ws ws;
    ts_ws_opts o = {.token = token, .protocol = "chat"};
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 400);
    /* A list that includes ours is accepted, and ours is echoed. */
    o.protocol = "chat, tessera.v1";
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 101);
    assert_string_equal(ws.protocol, "tessera.v1");
    ts_ws_close(&ws);
    /* None offered: version 1 assumed, and none echoed (RFC 6455 4.2.2). */
    o.protocol = "";
    assert_int_equal(ts_ws_open(&ws, g_srv.port, &o, NULL), 101);
    assert_string_equal(ws.protocol, "");
    ts_ws_close(&ws);
}

/* ---- a good upgrade ---- */

static uint8_t g_first_kind;
static void note_first(void *ctx, uint8_t kind, const uint8_t *body, size_t len)
{
    (void)ctx;
    (void)body;
    (void)len;
    if (g_first_kind == 0)
        g_first_kind = kind;
}

static void good_upgrade_gets_welcome_then_state(void **state)
{
    (void)state;
    char token[TS_TOKEN_MAX];
    fresh_token(token);
    ts_ws ws;
    assert_int_equal(ts_ws_connect(&ws, g_srv.port, token, NULL), 101);
    assert_string_equal(ws.protocol, "tessera.v1");
    ts_game g;
    ts_game_init(&g);
    g_first_kind = 0;
    g.on_record = note_first;
    /* the first STATE rides with WELCOME; an idle client's next is the
     * keepalive, within keepalive_s (5 s) */
    assert_int_equal(ts_game_wait_states(&ws, &g, 2, 7000), 0);
    assert_int_equal(g_first_kind, PROTO_S_WELCOME);
    assert_true(g.has_welcome);
    assert_int_equal(g.welcome.version, 1);
    assert_int_equal(g.welcome.tick_hz, 20);
    assert_int_equal(g.welcome.n_shards, 2);
    assert_true(g.entity_id != 0);
    assert_int_equal(g.n_bad, 0);
    assert_int_equal(g.n_errors, 0);
    assert_int_equal(ws.n_masked_rx, 0);
    /* Our own entity is always in the slot table. */
    assert_true(proto_view_find(&g.view, g.entity_id) >= 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

/* ---- RFC 6455 violations: each closes with its code ---- */

static void unmasked_frame_closes_1002(void **state)
{
    (void)state;
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_BINARY, ping_rec, sizeof ping_rec, false);
    expect_close(&ws, 1002, "unmasked frame");
}

static void rsv_bit_closes_1002(void **state)
{
    (void)state;
    for (uint8_t rsv = 1; rsv <= 4; rsv <<= 1) {
        ts_ws ws;
        open_ws(&ws);
        ts_ws_send_frame(&ws, true, rsv, TS_WS_BINARY, ping_rec, sizeof ping_rec, true);
        expect_close(&ws, 1002, "RSV bit");
    }
}

static void unknown_opcode_closes_1002(void **state)
{
    (void)state;
    static const uint8_t ops[] = {0x3, 0xB};
    for (size_t i = 0; i < sizeof ops; i++) {
        ts_ws ws;
        open_ws(&ws);
        ts_ws_send_frame(&ws, true, 0, ops[i], ping_rec, sizeof ping_rec, true);
        expect_close(&ws, 1002, "unknown opcode");
    }
}

static void ping_over_125_bytes_closes_1002(void **state)
{
    (void)state;
    uint8_t big[126];
    memset(big, 'p', sizeof big);
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_PING, big, sizeof big, true);
    expect_close(&ws, 1002, "ping of 126 bytes");
}

static void fragmented_ping_closes_1002(void **state)
{
    (void)state;
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, false, 0, TS_WS_PING, "ab", 2, true);
    expect_close(&ws, 1002, "fragmented ping");
}

static void continuation_without_start_closes_1002(void **state)
{
    (void)state;
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_CONT, ping_rec, sizeof ping_rec, true);
    expect_close(&ws, 1002, "continuation without start");
}

static void new_message_inside_fragmented_closes_1002(void **state)
{
    (void)state;
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, false, 0, TS_WS_BINARY, ping_rec, 3, true);
    ts_ws_send_frame(&ws, true, 0, TS_WS_BINARY, ping_rec, sizeof ping_rec, true);
    expect_close(&ws, 1002, "new data frame inside a fragmented message");
}

static void non_minimal_length_closes_1002(void **state)
{
    (void)state;
    /* 6 bytes announced with the 16-bit extended length. */
    uint8_t f[4 + 4 + 6] = {0x82, 0x80 | 126, 0, 6, 0, 0, 0, 0};
    memcpy(f + 8, ping_rec, 6); /* zero mask: payload as is */
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_raw(&ws, f, sizeof f);
    expect_close(&ws, 1002, "non-minimal length");
}

static void length_with_top_bit_closes_1002(void **state)
{
    (void)state;
    /* 64-bit length with the most significant bit set (RFC 6455 5.2). */
    uint8_t f[2 + 8 + 4] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0};
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_raw(&ws, f, sizeof f);
    expect_close(&ws, 1002, "64-bit length with top bit set");
}

static void huge_announced_length_closes_1009_at_once(void **state)
{
    (void)state;
    /* 1 GiB announced; no payload follows: the header alone must do. */
    uint8_t f[2 + 8 + 4] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4};
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_raw(&ws, f, sizeof f);
    expect_close(&ws, 1009, "1 GiB frame header");
}

static void text_message_closes_1003(void **state)
{
    (void)state;
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_TEXT, "hello", 5, true);
    expect_close(&ws, 1003, "text message");
}

static void invalid_utf8_text_closes_1007(void **state)
{
    (void)state;
    static const uint8_t bad[] = {'h', 'i', 0xC3, 0x28, 'x'};
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_TEXT, bad, sizeof bad, true);
    expect_close(&ws, 1007, "invalid UTF-8 text");
}

static void message_over_16k_closes_1009(void **state)
{
    (void)state;
    static uint8_t big[16385];
    memset(big, 0, sizeof big);
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_BINARY, big, sizeof big, true);
    expect_close(&ws, 1009, "message of 16385 bytes");
}

static void fragmented_message_over_16k_closes_1009(void **state)
{
    (void)state;
    static uint8_t chunk[1000];
    memset(chunk, 0, sizeof chunk);
    ts_ws ws;
    open_ws(&ws);
    /* 20 x 1000 bytes; the server must give up at 16 KiB, so later sends
     * may fail. */
    ts_ws_send_frame(&ws, false, 0, TS_WS_BINARY, chunk, sizeof chunk, true);
    for (int i = 1; i < 20; i++)
        ts_ws_send_frame(&ws, i == 19, 0, TS_WS_CONT, chunk, sizeof chunk, true);
    expect_close(&ws, 1009, "fragmented message of 20000 bytes");
}

static void message_of_exactly_16k_is_accepted(void **state)
{
    (void)state;
    /* One record of an unknown kind filling 16384 bytes: skipped with an
     * ERROR unknown_kind, connection kept. */
    static uint8_t m[16384];
    memset(m, 0, sizeof m);
    size_t body = sizeof m - 3;
    m[0] = 0x70;
    m[1] = (uint8_t)(0x80 | (body & 0x7f));
    m[2] = (uint8_t)(body >> 7);
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    assert_int_equal(ts_ws_send_binary(&ws, m, sizeof m), 0);
    assert_int_equal(ts_game_wait_error(&ws, &g, PROTO_ERR_UNKNOWN_KIND, 2000), 0);
    assert_int_equal(ts_send_ping_record(&ws, 16384), 0);
    assert_int_equal(ts_game_wait_pong(&ws, &g, 16384, 2000), 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void close_with_one_byte_payload_closes_1002(void **state)
{
    (void)state;
    ts_ws ws;
    open_ws(&ws);
    uint8_t one = 0x03;
    ts_ws_send_frame(&ws, true, 0, TS_WS_CLOSE, &one, 1, true);
    expect_close(&ws, 1002, "close with 1-byte payload");
}

static void close_with_invalid_code_closes_1002(void **state)
{
    (void)state;
    static const uint16_t codes[] = {1005, 999, 2000, 1006, 1015, 0};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        ts_ws ws;
        open_ws(&ws);
        uint8_t p[2] = {(uint8_t)(codes[i] >> 8), (uint8_t)codes[i]};
        ts_ws_send_frame(&ws, true, 0, TS_WS_CLOSE, p, 2, true);
        char what[64];
        snprintf(what, sizeof what, "close with code %u", codes[i]);
        expect_close(&ws, 1002, what);
    }
}

static void close_with_invalid_utf8_reason_closes_1007(void **state)
{
    (void)state;
    static const uint8_t p[] = {0x03, 0xE8, 'b', 0xFF, 'e'};
    ts_ws ws;
    open_ws(&ws);
    ts_ws_send_frame(&ws, true, 0, TS_WS_CLOSE, p, sizeof p, true);
    expect_close(&ws, 1007, "close reason not UTF-8");
}

static void close_with_valid_code_is_echoed(void **state)
{
    (void)state;
    static const uint16_t codes[] = {1000, 1001, 4000};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        ts_ws ws;
        open_ws(&ws);
        assert_int_equal(ts_ws_send_close(&ws, codes[i], "bye"), 0);
        char what[64];
        snprintf(what, sizeof what, "client close %u", codes[i]);
        /* The RFC's echo: the same code back (1000 is also acceptable for
         * an application code the server does not know). */
        char reason[128];
        int code = ts_ws_expect_close(&ws, 3000, NULL, reason, sizeof reason);
        if (code != codes[i] && !(codes[i] >= 4000 && code == 1000))
            print_error("%s: want close %u echoed, got %d\n", what, codes[i], code);
        assert_true(code == codes[i] || (codes[i] >= 4000 && code == 1000));
        assert_int_equal(ts_wait_eof(ws.fd, 3000), 0);
        ts_ws_close(&ws);
    }
    /* A close without a payload is valid too: answered with a close. */
    ts_ws ws;
    open_ws(&ws);
    assert_int_equal(ts_ws_send_close(&ws, 0, NULL), 0);
    int code = ts_ws_expect_close(&ws, 3000, NULL, NULL, 0);
    assert_true(code == 1005 || code == 1000);
    ts_ws_close(&ws);
}

static void broken_record_framing_closes_4002(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[8];
        size_t len;
        const char *what;
    } cases[] = {
        {{0x01, 12, 1, 2, 3}, 5, "INPUT body truncated"},
        {{0x02, 0x80}, 2, "record length varint truncated"},
        {{0x02, 4, 1, 2, 3, 4, 0x02}, 7, "second record without length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_ws ws;
        ts_game g;
        join(&ws, &g);
        ts_ws_send_binary(&ws, cases[i].bytes, cases[i].len);
        expect_close(&ws, 4002, cases[i].what);
        ts_game_free(&g);
    }
}

/* ---- game-level rejections: ERROR record, connection kept ---- */

/* Sends msg, expects an ERROR with code, then checks the connection still
 * works (PING answered). */
static void expect_game_error(const void *msg, size_t len, uint16_t code, const char *what)
{
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    assert_int_equal(ts_ws_send_binary(&ws, msg, len), 0);
    int r = ts_game_wait_error(&ws, &g, code, 2000);
    if (r != 0)
        print_error("%s: no ERROR %u (closed %d code %d, errors %u first %u)\n", what, code,
                    g.is_closed, g.close_code, g.n_errors, g.n_errors ? g.errors[0].code : 0);
    assert_int_equal(r, 0);
    assert_int_equal(ts_send_ping_record(&ws, 0xC0FFEE), 0);
    assert_int_equal(ts_game_wait_pong(&ws, &g, 0xC0FFEE, 2000), 0);
    assert_false(g.is_closed);
    assert_int_equal(g.n_bad, 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void input_msg(uint8_t out[14], uint32_t seq, float dx, float dy)
{
    out[0] = PROTO_C_INPUT;
    out[1] = 12;
    memcpy(out + 2, &seq, 4); /* little-endian host (x86, arm64) */
    memcpy(out + 6, &dx, 4);
    memcpy(out + 10, &dy, 4);
}

static void unknown_record_kind_is_error_1(void **state)
{
    (void)state;
    static const uint8_t m[] = {0x7F, 3, 'a', 'b', 'c'};
    expect_game_error(m, sizeof m, PROTO_ERR_UNKNOWN_KIND, "unknown kind");
}

static void input_of_11_bytes_is_error_2(void **state)
{
    (void)state;
    uint8_t m[13] = {PROTO_C_INPUT, 11, 1, 0, 0, 0};
    expect_game_error(m, sizeof m, PROTO_ERR_MALFORMED, "INPUT of 11 bytes");
    uint8_t ping3[5] = {PROTO_C_PING, 3, 1, 2, 3};
    expect_game_error(ping3, sizeof ping3, PROTO_ERR_MALFORMED, "PING of 3 bytes");
}

static void nan_heading_is_error_3(void **state)
{
    (void)state;
    uint8_t m[14];
    input_msg(m, 1, NAN, 0.0f);
    expect_game_error(m, sizeof m, PROTO_ERR_NOT_FINITE, "NaN heading");
    input_msg(m, 1, 0.0f, INFINITY);
    expect_game_error(m, sizeof m, PROTO_ERR_NOT_FINITE, "infinite heading");
}

static void long_heading_is_error_4(void **state)
{
    (void)state;
    uint8_t m[14];
    input_msg(m, 1, 2.0f, 0.0f);
    expect_game_error(m, sizeof m, PROTO_ERR_OUT_OF_RANGE, "heading (2,0)");
    input_msg(m, 1, 0.8f, 0.8f);
    expect_game_error(m, sizeof m, PROTO_ERR_OUT_OF_RANGE, "heading (0.8,0.8)");
}

static void heading_within_tolerance_is_accepted(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    assert_int_equal(ts_send_input(&ws, 1, 1.0005f, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, 1, 2000), 0);
    assert_int_equal(ts_send_input(&ws, 2, 0.6f, 0.8f), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, 2, 2000), 0);
    assert_int_equal(g.n_errors, 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void repeated_seq_is_error_6(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    assert_int_equal(ts_send_input(&ws, 5, 0.5f, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, 5, 2000), 0);
    assert_int_equal(ts_send_input(&ws, 5, 0.0f, 0.5f), 0);
    assert_int_equal(ts_game_wait_error(&ws, &g, PROTO_ERR_STALE_SEQ, 2000), 0);
    assert_int_equal(ts_send_input(&ws, 3, 0.0f, 0.5f), 0);
    /* Rejected inputs do not move the acknowledgement (the ERRORs come
     * with STATEs, then the keepalive every 5 s). */
    assert_int_equal(ts_game_wait_states(&ws, &g, g.n_states + 2, 7000), 0);
    assert_int_equal(g.view.ack_seq, 5);
    /* Gaps are allowed. */
    assert_int_equal(ts_send_input(&ws, 9, 0.0f, 0.0f), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, 9, 2000), 0);
    assert_false(g.is_closed);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void more_than_4_inputs_in_a_tick_is_error_5(void **state)
{
    (void)state;
    uint8_t m[6 * 14];
    for (int i = 0; i < 6; i++)
        input_msg(m + 14 * i, (uint32_t)i + 1, 0.1f, 0.0f);
    expect_game_error(m, sizeof m, PROTO_ERR_TOO_MANY_INPUTS, "6 INPUTs in one message");
}

static void ping_record_gets_pong_with_nonce(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    assert_int_equal(ts_send_ping_record(&ws, 0xDEADBEEF), 0);
    assert_int_equal(ts_game_wait_pong(&ws, &g, 0xDEADBEEF, 2000), 0);
    /* The PONG carries the server's current tick. */
    uint32_t diff =
        g.pong_tick > g.view.tick ? g.pong_tick - g.view.tick : g.view.tick - g.pong_tick;
    assert_true(diff <= 20);
    /* Two PINGs in one message: both answered. */
    uint8_t two[12] = {PROTO_C_PING, 4, 1, 0, 0, 0, PROTO_C_PING, 4, 2, 0, 0, 0};
    assert_int_equal(ts_ws_send_binary(&ws, two, sizeof two), 0);
    assert_int_equal(ts_game_wait_pong(&ws, &g, 2, 2000), 0);
    assert_true(ts_game_has_pong(&g, 1));
    /* A WebSocket-level ping is answered with a pong frame. */
    assert_int_equal(ts_ws_send_frame(&ws, true, 0, TS_WS_PING, "hb", 2, true), 0);
    bool got_pong = false;
    uint64_t deadline = ts_now_ms() + 2000;
    while (!got_pong && ts_now_ms() < deadline) {
        bool fin;
        uint8_t op;
        const uint8_t *p;
        size_t n;
        if (ts_ws_recv_frame(&ws, 200, &fin, &op, &p, &n) != 0) {
            assert_false(ws.is_eof);
            continue;
        }
        got_pong = op == TS_WS_PONG && n == 2 && memcmp(p, "hb", 2) == 0;
    }
    assert_true(got_pong);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void thousand_fragments_reassemble_to_inputs(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    /* Three INPUT records (42 bytes) spread over 1,000 frames: one byte in
     * each of the first 42, then empty continuations, the last with FIN. */
    uint8_t m[42];
    for (int i = 0; i < 3; i++)
        input_msg(m + 14 * i, (uint32_t)i + 1, 0.0f, 0.3f * (float)(i + 1));
    core_buf b;
    core_buf_init(&b);
    for (int i = 0; i < 1000; i++) {
        size_t n = i < 42 ? 1 : 0;
        const uint8_t *p = i < 42 ? m + i : m;
        uint8_t op = i == 0 ? TS_WS_BINARY : TS_WS_CONT;
        bool fin = i == 999;
        /* Built by hand into one buffer so the frames go out back to back. */
        uint8_t mask[4] = {(uint8_t)i, 0x5a, 0xa5, (uint8_t)(i >> 8)};
        core_buf_u8(&b, (uint8_t)((fin ? 0x80 : 0) | op));
        core_buf_u8(&b, (uint8_t)(0x80 | n));
        core_buf_append(&b, mask, 4);
        if (n)
            core_buf_u8(&b, p[0] ^ mask[0]);
    }
    assert_int_equal(ts_ws_send_raw(&ws, b.data, b.len), 0);
    core_buf_free(&b);
    int r = ts_game_wait_ack(&ws, &g, 3, 3000);
    if (r != 0)
        print_error("fragments: ack %u, closed %d code %d, errors %u\n", g.view.ack_seq,
                    g.is_closed, g.close_code, g.n_errors);
    assert_int_equal(r, 0);
    assert_int_equal(g.n_errors, 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void control_frames_between_fragments_are_allowed(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    uint8_t m[14];
    input_msg(m, 1, 0.5f, 0.0f);
    /* RFC 6455 5.4: control frames may be injected inside a fragmented
     * message; an unsolicited pong is allowed too. */
    assert_int_equal(ts_ws_send_frame(&ws, false, 0, TS_WS_BINARY, m, 5, true), 0);
    assert_int_equal(ts_ws_send_frame(&ws, true, 0, TS_WS_PING, "mid", 3, true), 0);
    assert_int_equal(ts_ws_send_frame(&ws, true, 0, TS_WS_PONG, "x", 1, true), 0);
    assert_int_equal(ts_ws_send_frame(&ws, true, 0, TS_WS_CONT, m + 5, 9, true), 0);
    assert_int_equal(ts_game_wait_ack(&ws, &g, 1, 2000), 0);
    assert_int_equal(g.n_errors, 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
}

static void fresh_client_still_served_at_the_end(void **state)
{
    (void)state;
    ts_ws ws;
    ts_game g;
    join(&ws, &g);
    assert_int_equal(ts_game_walk(&ws, &g, 1), 0); /* a STATE every tick */
    assert_int_equal(ts_game_wait_states(&ws, &g, 10, 3000), 0);
    assert_int_equal(g.n_bad, 0);
    ts_game_free(&g);
    ts_ws_close(&ws);
    assert_true(ts_server_alive(&g_srv, NULL));
}

int main(void)
{
    ts_watchdog(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upgrade_without_token_is_401),
        cmocka_unit_test(upgrade_with_bad_token_is_401),
        cmocka_unit_test(forged_tokens_are_401),
        cmocka_unit_test(upgrade_with_bearer_header_is_accepted),
        cmocka_unit_test(upgrade_with_wrong_version_is_426),
        cmocka_unit_test(upgrade_with_bad_key_is_400),
        cmocka_unit_test(upgrade_with_unsupported_subprotocol_is_400),
        cmocka_unit_test(good_upgrade_gets_welcome_then_state),
        cmocka_unit_test(unmasked_frame_closes_1002),
        cmocka_unit_test(rsv_bit_closes_1002),
        cmocka_unit_test(unknown_opcode_closes_1002),
        cmocka_unit_test(ping_over_125_bytes_closes_1002),
        cmocka_unit_test(fragmented_ping_closes_1002),
        cmocka_unit_test(continuation_without_start_closes_1002),
        cmocka_unit_test(new_message_inside_fragmented_closes_1002),
        cmocka_unit_test(non_minimal_length_closes_1002),
        cmocka_unit_test(length_with_top_bit_closes_1002),
        cmocka_unit_test(huge_announced_length_closes_1009_at_once),
        cmocka_unit_test(text_message_closes_1003),
        cmocka_unit_test(invalid_utf8_text_closes_1007),
        cmocka_unit_test(message_over_16k_closes_1009),
        cmocka_unit_test(fragmented_message_over_16k_closes_1009),
        cmocka_unit_test(message_of_exactly_16k_is_accepted),
        cmocka_unit_test(close_with_one_byte_payload_closes_1002),
        cmocka_unit_test(close_with_invalid_code_closes_1002),
        cmocka_unit_test(close_with_invalid_utf8_reason_closes_1007),
        cmocka_unit_test(close_with_valid_code_is_echoed),
        cmocka_unit_test(broken_record_framing_closes_4002),
        cmocka_unit_test(unknown_record_kind_is_error_1),
        cmocka_unit_test(input_of_11_bytes_is_error_2),
        cmocka_unit_test(nan_heading_is_error_3),
        cmocka_unit_test(long_heading_is_error_4),
        cmocka_unit_test(heading_within_tolerance_is_accepted),
        cmocka_unit_test(repeated_seq_is_error_6),
        cmocka_unit_test(more_than_4_inputs_in_a_tick_is_error_5),
        cmocka_unit_test(ping_record_gets_pong_with_nonce),
        cmocka_unit_test(thousand_fragments_reassemble_to_inputs),
        cmocka_unit_test(control_frames_between_fragments_are_allowed),
        cmocka_unit_test(fresh_client_still_served_at_the_end),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    failed += g_server_bad;
    ts_finish(failed);
    return failed;
}
