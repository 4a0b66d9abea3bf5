/* fuzz_ws.c - libFuzzer driver for gw_ws_parse, used the way a connection
 * uses it: the first input byte seeds the chunk sizes, the rest arrives in
 * chunks appended to a connection buffer; after each call the consumed
 * bytes are dropped, and a failure ends the connection. Also checks the
 * parser's promises: consumed never exceeds what was given, every event
 * consumes bytes, messages respect max_message and control payloads 125
 * bytes, text messages are UTF-8, close codes are valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_ws.h"

#define MAX_MSG 16384

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void check_event(const gw_ws_event *ev, const core_buf *conn, size_t used)
{
    CHECK(used > 0);
    switch (ev->type) {
    case GW_WS_EV_MESSAGE: {
        CHECK(ev->len <= MAX_MSG);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t rng = data[0] * 2654435761u + 1;
    unsigned max_chunk = 1 + (data[0] & 0x3F) * 4; /* 1..253 bytes per read */
    data++;
    size--;

    gw_ws_parser p;
    gw_ws_parser_init(&p, MAX_MSG);
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
                check_event(&ev, &conn, used);
            core_buf_consume(&conn, used);
            if (rc == 0)
                break;
        }
        /* A connection never buffers more than one frame's worth. */
        CHECK(conn.len <= MAX_MSG + 14 + max_chunk);
    }
    core_buf_free(&conn);
    gw_ws_parser_free(&p);
    return 0;
}
