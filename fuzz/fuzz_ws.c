/* fuzz_ws.c - libFuzzer driver for gw_ws_parse, used the way a connection
 * uses it: the first input byte seeds the chunk sizes, the rest arrives in
 * chunks appended to a connection buffer; after each call the consumed
 * bytes are dropped, and a failure ends the connection. Also checks the
 * parser's promises: consumed never exceeds what was given, every event
 * consumes bytes, messages respect max_message and control payloads 125
 * bytes, text messages are UTF-8, close codes are valid.
 *
 * Each input is run twice: with the gateway's limit (16384) and with a
 * small one, because libFuzzer rarely grows inputs past 16 KiB, and the
 * limit logic would otherwise go untested. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_ws.h"

#define MAX_MSG 16384
#define SMALL_MSG 100

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void check_event(const gw_ws_event *ev, const core_buf *conn, size_t used,
                        size_t max_message)
{
    CHECK(used > 0);
    switch (ev->type) {
    case GW_WS_EV_MESSAGE: {
        CHECK(ev->len <= max_message);
        CHECK(ev->opcode == GW_WS_OP_TEXT || ev->opcode == GW_WS_OP_BINARY);
        uint32_t st = 0;
        if (ev->opcode == GW_WS_OP_TEXT)
            CHECK(gw_ws_utf8_step(&st, ev->data, ev->len) && st == 0);
        break;
    }
    case GW_WS_EV_PING:
    case GW_WS_EV_PONG:
        CHECK(ev->len <= 125);
        CHECK(ev->data >= conn->data && ev->data + ev->len <= conn->data + used);
        break;
    case GW_WS_EV_CLOSE:
        CHECK(ev->close_code == GW_WS_CLOSE_NO_STATUS || gw_ws_close_code_valid(ev->close_code));
        CHECK(ev->len <= 123);
        break;
    default:
        abort();
    }
    /* Touch every byte so ASan catches a stale or out-of-range pointer. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < ev->len; i++)
        sink ^= ev->data[i];
    (void)sink;
}

/* One connection's life over data[0..size), read in chunks of 1..max_chunk
 * bytes drawn from rng. */
static void run_connection(const uint8_t *data, size_t size, size_t max_message, uint32_t rng,
                           unsigned max_chunk)
{
    gw_ws_parser p;
    gw_ws_parser_init(&p, max_message);
    core_buf conn;
    core_buf_init(&conn);
    size_t off = 0;
    bool failed = false;
    while (off < size && !failed) {
        rng = rng * 1103515245u + 12345u;
        size_t chunk = 1 + (rng >> 16) % max_chunk;
        if (chunk > size - off)
            chunk = size - off;
        core_buf_append(&conn, data + off, chunk);
        off += chunk;
        for (;;) {
            gw_ws_event ev;
            size_t used = 0;
            int rc = gw_ws_parse(&p, conn.data, conn.len, &used, &ev);
            CHECK(rc >= -1 && rc <= 1);
            CHECK(used <= conn.len);
            if (rc < 0) {
                CHECK(ev.close_code == GW_WS_CLOSE_PROTOCOL ||
                      ev.close_code == GW_WS_CLOSE_BAD_DATA ||
                      ev.close_code == GW_WS_CLOSE_TOO_BIG);
                CHECK(ev.reason != NULL);
                failed = true;
                break;
            }
            if (rc == 1)
                check_event(&ev, &conn, used, max_message);
            core_buf_consume(&conn, used);
            if (rc == 0)
                break;
        }
        /* Only a partial frame is ever left over: at most its 14-byte header
         * and a payload that fits the limit (or 125 for control frames). */
        CHECK(failed || conn.len < 14 + (max_message > 125 ? max_message : 125));
    }
    core_buf_free(&conn);
    gw_ws_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t rng = data[0] * 2654435761u + 1;
    unsigned max_chunk = 1 + (data[0] & 0x3F) * 4; /* 1..253 bytes per read */
    run_connection(data + 1, size - 1, MAX_MSG, rng, max_chunk);
    run_connection(data + 1, size - 1, SMALL_MSG, rng, max_chunk);
    return 0;
}
