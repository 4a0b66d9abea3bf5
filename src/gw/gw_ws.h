/* gw_ws.h - RFC 6455 server-side framing: an incremental frame decoder
 * with message reassembly and every check the RFC requires of a server,
 * and frame header encoding. Security-critical: fuzzed (fuzz/fuzz_ws.c).
 * One gw_ws_parser per connection; no I/O here. */
#ifndef GW_WS_H
#define GW_WS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_buf.h"

enum {
    GW_WS_OP_CONT = 0x0,
    GW_WS_OP_TEXT = 0x1,
    GW_WS_OP_BINARY = 0x2,
    GW_WS_OP_CLOSE = 0x8,
    GW_WS_OP_PING = 0x9,
    GW_WS_OP_PONG = 0xA,
};

enum {
    GW_WS_CLOSE_NORMAL = 1000,
    GW_WS_CLOSE_GOING_AWAY = 1001,
    GW_WS_CLOSE_PROTOCOL = 1002,
    GW_WS_CLOSE_UNSUPPORTED = 1003,
    GW_WS_CLOSE_NO_STATUS = 1005, /* never sent: a close frame without a code */
    GW_WS_CLOSE_BAD_DATA = 1007,
    GW_WS_CLOSE_POLICY = 1008,
    GW_WS_CLOSE_TOO_BIG = 1009,
    GW_WS_CLOSE_INTERNAL = 1011,
    GW_WS_CLOSE_REPLACED = 4001,  /* Tessera: a newer session of the account took over */
    GW_WS_CLOSE_MALFORMED = 4002, /* Tessera: broken record framing */
    GW_WS_CLOSE_HEARTBEAT = 4008, /* Tessera: heartbeat timeout */
};

typedef enum gw_ws_ev_type {
    GW_WS_EV_NONE = 0,
    GW_WS_EV_MESSAGE, /* a complete text or binary message (reassembled) */
    GW_WS_EV_PING,
    GW_WS_EV_PONG,
    GW_WS_EV_CLOSE, /* a valid close frame; close_code 1005 if it had none */
} gw_ws_ev_type;

typedef struct gw_ws_event {
    gw_ws_ev_type type;
    uint8_t opcode;      /* TEXT or BINARY for MESSAGE */
    const uint8_t *data; /* payload (unmasked); valid until the next call */
    size_t len;
    uint16_t close_code; /* CLOSE: the peer's code; error: the code to send */
    const char *reason;  /* error: static text for our close frame */
} gw_ws_event;

typedef struct gw_ws_parser {
    core_buf frag;        /* data of a fragmented message in progress */
    uint32_t max_message; /* largest reassembled message, bytes */
    uint32_t utf8_state;  /* incremental UTF-8 validator state for text */
    uint8_t frag_opcode;  /* TEXT/BINARY while a fragmented message is open, else 0 */
    bool closed;          /* a close frame was received; nothing more is parsed */
} gw_ws_parser;

void gw_ws_parser_init(gw_ws_parser *p, size_t max_message);
void gw_ws_parser_free(gw_ws_parser *p);

/* Decodes from buf[0..len) (masked client frames; unmasks in place).
 * Returns:
 *   1: an event in *ev; *consumed bytes must be dropped by the caller after
 *      handling it (ev->data may point into buf or into p->frag);
 *   0: need more bytes; *consumed may be > 0 (a fragment was absorbed);
 *  -1: protocol failure; ev->close_code (1002, 1007, 1009) and ev->reason
 *      say what to send; the connection must be closed.
 * Oversized frames fail as soon as their header is seen, without waiting
 * for the payload. */
int gw_ws_parse(gw_ws_parser *p, uint8_t *buf, size_t len, size_t *consumed, gw_ws_event *ev);

/* True if the close code may appear on the wire (RFC 6455 7.4). */
bool gw_ws_close_code_valid(uint16_t code);
/* Incremental UTF-8 check: returns false as soon as the bytes cannot be
 * valid; *state is 0 at a character boundary. */
bool gw_ws_utf8_step(uint32_t *state, const uint8_t *s, size_t n);

/* Writes a server frame header (FIN set, unmasked) for a payload of len
 * bytes into out (at least 10 bytes). Returns the header length. */
size_t gw_ws_frame_header(uint8_t *out, uint8_t opcode, size_t len);
/* Appends a whole close frame with code and reason (truncated to fit 125). */
void gw_ws_write_close(core_buf *out, uint16_t code, const char *reason);

/* Computes Sec-WebSocket-Accept for a client key; out receives 28 chars +
 * NUL. Returns 0, or -1 if the key is not 24 base64 chars decoding to 16
 * bytes. */
int gw_ws_accept_key(const char *key, size_t key_len, char out[29]);
#endif
