/* test_ws.c - gw_ws: RFC 6455 examples, every failure with its close code,
 * arbitrary-chunk feeding, reassembly, close frames, UTF-8, header
 * encoding and the handshake key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_ws.h"

#define MAX_MSG 16384
#define MAX_EVENTS 16

static const uint8_t k_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one masked client frame; byte 0 is given whole (FIN, RSV,
 * opcode), the length is encoded minimally. */
static void put_frame(core_buf *b, uint8_t b0, const void *payload, size_t n)
{
    core_buf_u8(b, b0);
    if (n < 126) {
        core_buf_u8(b, (uint8_t)(0x80 | n));
    } else if (n <= 0xFFFF) {
        core_buf_u8(b, 0x80 | 126);
        core_buf_u8(b, (uint8_t)(n >> 8));
        core_buf_u8(b, (uint8_t)n);
    } else {
        core_buf_u8(b, 0x80 | 127);
        for (int i = 7; i >= 0; i--)
            core_buf_u8(b, (uint8_t)((uint64_t)n >> (8 * i)));
    }
    core_buf_append(b, k_key, 4);
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++)
        core_buf_u8(b, p[i] ^ k_key[i & 3]);
}

/* One event as seen by a connection, with its payload copied out. */
typedef struct seen {
    gw_ws_ev_type type;
    uint8_t opcode;
    uint16_t close_code;
    uint8_t data[MAX_MSG];
    size_t len;
} seen;

typedef struct run {
    seen ev[MAX_EVENTS];
    int n_ev;
    int failed_code; /* close code of a -1, else 0 */
} run;

/* Feeds in[0..n) like a connection: appends chunks of 1..max_chunk bytes
 * (max_chunk 0: all at once; rng picks sizes), parses until it needs more,
 * drops consumed bytes. Stops at the first failure. */
static void feed(run *r, const uint8_t *in, size_t n, size_t max_chunk, unsigned seed)
{
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    core_buf conn;
    core_buf_init(&conn);
    memset(r, 0, sizeof(*r));
    srand(seed);
    size_t off = 0;
    while (off < n) {
        size_t chunk = max_chunk ? 1 + (size_t)rand() % max_chunk : n;
        if (chunk > n - off)
            chunk = n - off;
        core_buf_append(&conn, in + off, chunk);
        off += chunk;
        for (;;) {
            gw_ws_event ev;
            size_t used = 0;
            int rc = gw_ws_parse(&p, conn.data, conn.len, &used, &ev);
            assert_true(used <= conn.len);
            if (rc < 0) {
                r->failed_code = ev.close_code;
                assert_non_null(ev.reason);
                goto done;
            }
            if (rc == 1) {
                assert_true(r->n_ev < MAX_EVENTS);
                seen *s = &r->ev[r->n_ev++];
                s->type = ev.type;
                s->opcode = ev.opcode;
                s->close_code = ev.close_code;
                s->len = ev.len;
                assert_true(ev.len <= MAX_MSG);
                if (ev.len)
                    memcpy(s->data, ev.data, ev.len);
            }
            core_buf_consume(&conn, used);
            if (rc == 0)
                break;
        }
    }
done:
    core_buf_free(&conn);
    gw_ws_parser_free(&p);
}

/* Feeds whole, byte by byte and in random chunks; all must agree. */
static void feed_all_ways(run *r, const core_buf *in)
{
    static run other;
    feed(r, in->data, in->len, 0, 0);
    for (unsigned mode = 0; mode < 6; mode++) {
        feed(&other, in->data, in->len, mode == 0 ? 1 : 1 + mode * 7, mode);
        assert_int_equal(other.n_ev, r->n_ev);
        assert_int_equal(other.failed_code, r->failed_code);
        for (int i = 0; i < r->n_ev; i++) {
            assert_int_equal(other.ev[i].type, r->ev[i].type);
            assert_int_equal(other.ev[i].len, r->ev[i].len);
            assert_memory_equal(other.ev[i].data, r->ev[i].data, r->ev[i].len);
        }
    }
}

static int fails_with(const core_buf *in)
{
    static run r;
    feed_all_ways(&r, in);
    return r.failed_code;
}

/* ---- RFC 6455 examples ------------------------------------------------ */

static void rfc_masked_hello_is_a_text_message(void **state)
{
    (void)state;
    uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    for (size_t n = 0; n < sizeof(f); n++) {
        assert_int_equal(gw_ws_parse(&p, f, n, &used, &ev), 0);
        assert_int_equal(used, 0);
    }
    assert_int_equal(gw_ws_parse(&p, f, sizeof(f), &used, &ev), 1);
    assert_int_equal(used, sizeof(f));
    assert_int_equal(ev.type, GW_WS_EV_MESSAGE);
    assert_int_equal(ev.opcode, GW_WS_OP_TEXT);
    assert_ptr_equal(ev.data, f + 6); /* zero-copy, unmasked in place */
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    gw_ws_parser_free(&p);
}

static void rfc_fragmented_hello_is_reassembled(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x01, "Hel", 3);
    put_frame(&b, 0x89, "ping", 4); /* a control frame between fragments */
    put_frame(&b, 0x80, "lo", 2);
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.failed_code, 0);
    assert_int_equal(r.n_ev, 2);
    assert_int_equal(r.ev[0].type, GW_WS_EV_PING);
    assert_memory_equal(r.ev[0].data, "ping", 4);
    assert_int_equal(r.ev[1].type, GW_WS_EV_MESSAGE);
    assert_int_equal(r.ev[1].opcode, GW_WS_OP_TEXT);
    assert_int_equal(r.ev[1].len, 5);
    assert_memory_equal(r.ev[1].data, "Hello", 5);
    core_buf_free(&b);
}

static void first_fragment_is_absorbed_with_consumed_bytes(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x02, "ab", 2);
    size_t first = b.len;
    put_frame(&b, 0x80, "c", 1);
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parse(&p, b.data, first + 1, &used, &ev), 0);
    assert_int_equal(used, first);
    assert_int_equal(p.frag_opcode, GW_WS_OP_BINARY);
    assert_int_equal(gw_ws_parse(&p, b.data + first, b.len - first, &used, &ev), 1);
    assert_int_equal(ev.type, GW_WS_EV_MESSAGE);
    assert_int_equal(ev.opcode, GW_WS_OP_BINARY);
    assert_ptr_equal(ev.data, p.frag.data);
    assert_memory_equal(ev.data, "abc", 3);
    assert_int_equal(p.frag_opcode, 0);
    gw_ws_parser_free(&p);
    core_buf_free(&b);
}

static void rfc_ping_and_pong_deliver_payload(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x89, "Hello", 5);
    put_frame(&b, 0x8A, "Hello", 5);
    put_frame(&b, 0x89, "", 0);
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.n_ev, 3);
    assert_int_equal(r.ev[0].type, GW_WS_EV_PING);
    assert_int_equal(r.ev[0].len, 5);
    assert_memory_equal(r.ev[0].data, "Hello", 5);
    assert_int_equal(r.ev[1].type, GW_WS_EV_PONG);
    assert_memory_equal(r.ev[1].data, "Hello", 5);
    assert_int_equal(r.ev[2].type, GW_WS_EV_PING);
    assert_int_equal(r.ev[2].len, 0);
    core_buf_free(&b);
}

static void extended_lengths_parse(void **state)
{
    (void)state;
    static uint8_t payload[MAX_MSG];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    size_t sizes[] = {0, 125, 126, 256, 16383, MAX_MSG};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, 0x82, payload, sizes[s]);
        static run r;
        feed_all_ways(&r, &b);
        assert_int_equal(r.failed_code, 0);
        assert_int_equal(r.n_ev, 1);
        assert_int_equal(r.ev[0].len, sizes[s]);
        assert_memory_equal(r.ev[0].data, payload, sizes[s]);
        core_buf_free(&b);
    }
}

static void frames_of_64k_use_both_length_forms(void **state)
{
    (void)state;
    static uint8_t payload[65536];
    gw_ws_parser p;
    gw_ws_parser_init(&p, sizeof(payload));
    for (size_t n = 65535; n <= 65536; n++) {
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, 0x82, payload, n);
        assert_int_equal(b.data[1] & 0x7F, n == 65535 ? 126 : 127);
        gw_ws_event ev;
        size_t used;
        assert_int_equal(gw_ws_parse(&p, b.data, b.len - 1, &used, &ev), 0);
        assert_int_equal(gw_ws_parse(&p, b.data, b.len, &used, &ev), 1);
        assert_int_equal(used, b.len);
        assert_int_equal(ev.len, n);
        assert_memory_equal(ev.data, payload, n);
        core_buf_free(&b);
    }
    gw_ws_parser_free(&p);
}

static void random_stream_of_frames_agrees_in_any_chunking(void **state)
{
    (void)state;
    static uint8_t payload[3000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)('a' + i % 26);
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x82, payload, 300);
    put_frame(&b, 0x01, payload, 10);
    put_frame(&b, 0x00, payload, 2000);
    put_frame(&b, 0x8A, payload, 125);
    put_frame(&b, 0x80, payload, 3000);
    put_frame(&b, 0x81, payload, 1);
    put_frame(&b, 0x88,
              "\x03\xe8"
              "bye",
              5);
    put_frame(&b, 0x82, payload, 5); /* after close: ignored */
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.failed_code, 0);
    assert_int_equal(r.n_ev, 5);
    assert_int_equal(r.ev[0].len, 300);
    assert_int_equal(r.ev[1].type, GW_WS_EV_PONG);
    assert_int_equal(r.ev[2].len, 5010);
    assert_int_equal(r.ev[2].opcode, GW_WS_OP_TEXT);
    assert_memory_equal(r.ev[2].data + 10, payload, 2000);
    assert_int_equal(r.ev[3].len, 1);
    assert_int_equal(r.ev[4].type, GW_WS_EV_CLOSE);
    assert_int_equal(r.ev[4].close_code, 1000);
    assert_memory_equal(r.ev[4].data, "bye", 3);
    core_buf_free(&b);
}

/* ---- protocol failures (1002) ----------------------------------------- */

static void unmasked_frame_is_1002(void **state)
{
    (void)state;
    uint8_t f[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    /* Fails on the second byte, before the payload. */
    assert_int_equal(gw_ws_parse(&p, f, 2, &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_PROTOCOL);
    assert_non_null(ev.reason);
    gw_ws_parser_free(&p);
}

static void rsv_bits_are_1002(void **state)
{
    (void)state;
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, 0x82 | rsv, "x", 1);
        assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
        core_buf_free(&b);
    }
}

static void unknown_opcodes_are_1002(void **state)
{
    (void)state;
    uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(ops); i++) {
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, 0x80 | ops[i], "x", 1);
        assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
        core_buf_free(&b);
    }
}

static void control_frame_over_125_is_1002(void **state)
{
    (void)state;
    static uint8_t big[126];
    uint8_t ops[] = {0x88, 0x89, 0x8A};
    for (size_t i = 0; i < sizeof(ops); i++) {
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, ops[i], big, 126);
        assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
        core_buf_free(&b);
    }
}

static void fragmented_control_frame_is_1002(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x09, "x", 1);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
    core_buf_free(&b);
}

static void continuation_without_start_is_1002(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x80, "x", 1);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
    core_buf_reset(&b);
    put_frame(&b, 0x82, "x", 1); /* a complete message closes nothing open */
    put_frame(&b, 0x00, "x", 1);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
    core_buf_free(&b);
}

static void new_message_inside_fragmented_is_1002(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x02, "x", 1);
    put_frame(&b, 0x82, "y", 1);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
    core_buf_reset(&b);
    put_frame(&b, 0x01, "x", 1);
    put_frame(&b, 0x01, "y", 1);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
    core_buf_free(&b);
}

static void non_minimal_lengths_are_1002(void **state)
{
    (void)state;
    /* 16-bit form for 125 bytes; 64-bit form for 65535 bytes. */
    uint8_t f16[] = {0x82, 0x80 | 126, 0x00, 125, 1, 2, 3, 4};
    uint8_t f64[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4};
    gw_ws_parser p;
    gw_ws_event ev;
    size_t used;
    gw_ws_parser_init(&p, 1u << 20);
    assert_int_equal(gw_ws_parse(&p, f16, sizeof(f16), &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_PROTOCOL);
    assert_int_equal(gw_ws_parse(&p, f64, sizeof(f64), &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_PROTOCOL);
    gw_ws_parser_free(&p);
}

static void length_with_top_bit_is_1002(void **state)
{
    (void)state;
    uint8_t f[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    gw_ws_parser p;
    gw_ws_parser_init(&p, SIZE_MAX);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parse(&p, f, sizeof(f), &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_PROTOCOL);
    gw_ws_parser_free(&p);
}

/* ---- size limit (1009) ------------------------------------------------ */

static void oversize_frame_fails_from_its_header(void **state)
{
    (void)state;
    uint8_t f16[] = {0x82, 0x80 | 126, 0x40, 0x01}; /* 16385 */
    uint8_t f64[] = {0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0};
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parse(&p, f16, 3, &used, &ev), 0);
    assert_int_equal(gw_ws_parse(&p, f16, sizeof(f16), &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_TOO_BIG);
    assert_int_equal(gw_ws_parse(&p, f64, sizeof(f64), &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_TOO_BIG);
    gw_ws_parser_free(&p);
}

static void oversize_reassembly_fails_from_the_last_header(void **state)
{
    (void)state;
    static uint8_t payload[MAX_MSG];
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x02, payload, 10000);
    put_frame(&b, 0x00, payload, 6384); /* exactly MAX_MSG so far */
    size_t ok_len = b.len;
    put_frame(&b, 0x80, payload, 1);
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    /* Everything but the last frame's payload and key: already fails. */
    assert_int_equal(gw_ws_parse(&p, b.data, ok_len + 2, &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_TOO_BIG);
    gw_ws_parser_free(&p);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_TOO_BIG);
    core_buf_free(&b);
}

static void message_at_limit_is_accepted(void **state)
{
    (void)state;
    static uint8_t payload[MAX_MSG];
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x02, payload, 10000);
    put_frame(&b, 0x80, payload, MAX_MSG - 10000);
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.failed_code, 0);
    assert_int_equal(r.n_ev, 1);
    assert_int_equal(r.ev[0].len, MAX_MSG);
    core_buf_free(&b);
}

/* ---- UTF-8 (1007) ----------------------------------------------------- */

static void invalid_utf8_text_is_1007(void **state)
{
    (void)state;
    const char *bad[] = {
        "\xc0\xaf",                                     /* overlong '/' */
        "\xe0\x80\xaf",                                 /* overlong */
        "\xf0\x80\x80\xaf",                             /* overlong */
        "\xed\xa0\x80",                                 /* surrogate U+D800 */
        "\xf4\x90\x80\x80",                             /* U+110000 */
        "\xf5\x80\x80\x80",  "\xff", "\x80", "abc\xce", /* truncated at the end */
        "\xce\xbaX\xe1\x80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, 0x81, bad[i], strlen(bad[i]));
        assert_int_equal(fails_with(&b), GW_WS_CLOSE_BAD_DATA);
        core_buf_free(&b);
    }
}

static void utf8_split_across_fragments_is_valid(void **state)
{
    (void)state;
    const char *s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf4\x8f\xbf\xbf";
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x01, s, 1);
    put_frame(&b, 0x00, s + 1, 3);
    put_frame(&b, 0x00, "", 0);
    put_frame(&b, 0x80, s + 4, strlen(s) - 4);
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.failed_code, 0);
    assert_int_equal(r.n_ev, 1);
    assert_int_equal(r.ev[0].len, strlen(s));
    assert_memory_equal(r.ev[0].data, s, strlen(s));
    core_buf_free(&b);
}

static void invalid_utf8_fails_at_the_first_bad_fragment(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x01, "ok", 2);
    put_frame(&b, 0x00, "\xed\xbf\xbf", 3); /* surrogate: fails here */
    size_t bad_end = b.len;
    put_frame(&b, 0x80, "fine", 4);
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parse(&p, b.data, bad_end, &used, &ev), -1);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_BAD_DATA);
    gw_ws_parser_free(&p);

    /* Incomplete sequence at the final fragment. */
    core_buf_reset(&b);
    put_frame(&b, 0x01, "ok\xe2\x82", 4);
    put_frame(&b, 0x80, "", 0);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_BAD_DATA);
    core_buf_free(&b);
}

static void binary_is_not_utf8_checked(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x82, "\xff\xc0", 2);
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.failed_code, 0);
    assert_int_equal(r.n_ev, 1);
    core_buf_free(&b);
}

static void utf8_step_is_incremental(void **state)
{
    (void)state;
    const uint8_t s[] = "a\xf0\x9f\x98\x80z";
    uint32_t st = 0;
    for (size_t i = 0; i < sizeof(s) - 1; i++) {
        assert_true(gw_ws_utf8_step(&st, s + i, 1));
        assert_true((st == 0) == (i == 0 || i >= 4));
    }
    st = 0;
    assert_true(gw_ws_utf8_step(&st, (const uint8_t *)"\xef\xbf\xbf", 3)); /* U+FFFF */
    assert_int_equal(st, 0);
}

/* ---- close frames ----------------------------------------------------- */

static void close_frames_parse(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x88, "", 0);
    static run r;
    feed_all_ways(&r, &b);
    assert_int_equal(r.n_ev, 1);
    assert_int_equal(r.ev[0].type, GW_WS_EV_CLOSE);
    assert_int_equal(r.ev[0].close_code, GW_WS_CLOSE_NO_STATUS);

    core_buf_reset(&b);
    put_frame(&b, 0x88,
              "\x0f\xa0"
              "caf\xc3\xa9",
              7); /* 4000 */
    feed_all_ways(&r, &b);
    assert_int_equal(r.n_ev, 1);
    assert_int_equal(r.ev[0].close_code, 4000);
    assert_int_equal(r.ev[0].len, 5);
    assert_memory_equal(r.ev[0].data, "caf\xc3\xa9", 5);
    core_buf_free(&b);
}

static void bytes_after_close_are_ignored(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x88, "\x03\xe9", 2);
    size_t close_len = b.len;
    core_buf_append(&b, "\x00\xff garbage", 10);
    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
    gw_ws_event ev;
    size_t used;
    assert_int_equal(gw_ws_parse(&p, b.data, b.len, &used, &ev), 1);
    assert_int_equal(used, close_len);
    assert_int_equal(ev.close_code, GW_WS_CLOSE_GOING_AWAY);
    assert_true(p.closed);
    assert_int_equal(gw_ws_parse(&p, b.data + used, b.len - used, &used, &ev), 0);
    assert_int_equal(used, 10);
    gw_ws_parser_free(&p);
    core_buf_free(&b);
}

static void close_payload_of_one_byte_is_1002(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x88, "\x03", 1);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
    core_buf_free(&b);
}

static void invalid_close_codes_are_1002(void **state)
{
    (void)state;
    uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t pl[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        core_buf b;
        core_buf_init(&b);
        put_frame(&b, 0x88, pl, 2);
        assert_int_equal(fails_with(&b), GW_WS_CLOSE_PROTOCOL);
        core_buf_free(&b);
    }
}

static void close_reason_must_be_utf8(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    put_frame(&b, 0x88, "\x03\xe8\xc3", 3);
    assert_int_equal(fails_with(&b), GW_WS_CLOSE_BAD_DATA);
    core_buf_free(&b);
}

static void close_code_validity(void **state)
{
    (void)state;
    uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                       1011, 1012, 1013, 1014, 3000, 4002, 4999};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(gw_ws_close_code_valid(good[i]));
    uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 2999, 5000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(gw_ws_close_code_valid(bad[i]));
}

/* ---- encoding --------------------------------------------------------- */

static void frame_header_lengths(void **state)
{
    (void)state;
    uint8_t h[10];
    assert_int_equal(gw_ws_frame_header(h, GW_WS_OP_BINARY, 0), 2);
    assert_memory_equal(h, "\x82\x00", 2);
    assert_int_equal(gw_ws_frame_header(h, GW_WS_OP_TEXT, 125), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(gw_ws_frame_header(h, GW_WS_OP_BINARY, 126), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
    assert_int_equal(gw_ws_frame_header(h, GW_WS_OP_BINARY, 65535), 4);
    assert_memory_equal(h, "\x82\x7e\xff\xff", 4);
    assert_int_equal(gw_ws_frame_header(h, GW_WS_OP_BINARY, 65536), 10);
    assert_memory_equal(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

static void write_close_frames(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    gw_ws_write_close(&b, GW_WS_CLOSE_TOO_BIG, "message too big");
    assert_int_equal(b.len, 2 + 2 + 15);
    assert_memory_equal(b.data, "\x88\x11\x03\xf1message too big", b.len);

    core_buf_reset(&b);
    gw_ws_write_close(&b, GW_WS_CLOSE_NO_STATUS, "ignored");
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\x88\x00", 2);

    /* A long reason is cut to 123 bytes, never inside a UTF-8 sequence. */
    char reason[200];
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 122, "\xc3\xa9", 2);
    reason[199] = '\0';
    core_buf_reset(&b);
    gw_ws_write_close(&b, 1000, reason);
    assert_int_equal(b.data[1], 2 + 122);
    assert_int_equal(b.len, 2 + 2 + 122);
    core_buf_free(&b);
}

static void accept_key_matches_rfc_example(void **state)
{
    (void)state;
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(gw_ws_accept_key(key, strlen(key), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void accept_key_rejects_bad_keys(void **state)
{
    (void)state;
    char out[29];
    const char *bad[] = {"",
                         "dGhlIHNhbXBsZSBub25jZQ=",
                         "dGhlIHNhbXBsZSBub25jZQ===",
                         "dGhlIHNhbXBsZSBub25jZQo=",
                         "dGhlIHNhbXBsZSBub25jZ!==",
                         "dGhlIHNhbXBsZSBub25j Q==",
                         "dGhlIHNhbXBsZSBub25jZQ=A"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gw_ws_accept_key(bad[i], strlen(bad[i]), out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc_masked_hello_is_a_text_message),
        cmocka_unit_test(rfc_fragmented_hello_is_reassembled),
        cmocka_unit_test(first_fragment_is_absorbed_with_consumed_bytes),
        cmocka_unit_test(rfc_ping_and_pong_deliver_payload),
        cmocka_unit_test(extended_lengths_parse),
        cmocka_unit_test(frames_of_64k_use_both_length_forms),
        cmocka_unit_test(random_stream_of_frames_agrees_in_any_chunking),
        cmocka_unit_test(unmasked_frame_is_1002),
        cmocka_unit_test(rsv_bits_are_1002),
        cmocka_unit_test(unknown_opcodes_are_1002),
        cmocka_unit_test(control_frame_over_125_is_1002),
        cmocka_unit_test(fragmented_control_frame_is_1002),
        cmocka_unit_test(continuation_without_start_is_1002),
        cmocka_unit_test(new_message_inside_fragmented_is_1002),
        cmocka_unit_test(non_minimal_lengths_are_1002),
        cmocka_unit_test(length_with_top_bit_is_1002),
        cmocka_unit_test(oversize_frame_fails_from_its_header),
        cmocka_unit_test(oversize_reassembly_fails_from_the_last_header),
        cmocka_unit_test(message_at_limit_is_accepted),
        cmocka_unit_test(invalid_utf8_text_is_1007),
        cmocka_unit_test(utf8_split_across_fragments_is_valid),
        cmocka_unit_test(invalid_utf8_fails_at_the_first_bad_fragment),
        cmocka_unit_test(binary_is_not_utf8_checked),
        cmocka_unit_test(utf8_step_is_incremental),
        cmocka_unit_test(close_frames_parse),
        cmocka_unit_test(bytes_after_close_are_ignored),
        cmocka_unit_test(close_payload_of_one_byte_is_1002),
        cmocka_unit_test(invalid_close_codes_are_1002),
        cmocka_unit_test(close_reason_must_be_utf8),
        cmocka_unit_test(close_code_validity),
        cmocka_unit_test(frame_header_lengths),
        cmocka_unit_test(write_close_frames),
        cmocka_unit_test(accept_key_matches_rfc_example),
        cmocka_unit_test(accept_key_rejects_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
