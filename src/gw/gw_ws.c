/* gw_ws.c - RFC 6455 server-side framing.
 *
 * Frame layout (RFC 6455 5.2), all multi-byte integers big-endian:
 *
 *   byte 0: FIN(1) RSV1(1) RSV2(1) RSV3(1) opcode(4)
 *   byte 1: MASK(1) len7(7)
 *   len7 == 126: 2 more bytes of length (must be >= 126)
 *   len7 == 127: 8 more bytes of length (must be > 65535, top bit clear)
 *   MASK == 1: 4 bytes of masking key (always, from a client)
 *   payload: length bytes, XORed with key[i % 4]
 *
 * The decoder keeps no partial-frame state: a frame is checked header
 * first, as far as the bytes in hand allow (so a bad or oversized frame
 * fails before its payload arrives), and is only unmasked and consumed
 * once all of it is buffered. Unfragmented messages are delivered in place;
 * fragments are validated as they arrive and collected in p->frag.
 *
 * Divisions: UTF-8; close codes; the decoder; encoding; the handshake key. */
#include "gw_ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#define WS_MAX_CONTROL 125 /* RFC 6455 5.5 */
#define WS_MAX_CLOSE_REASON 123

/* ---- UTF-8 ------------------------------------------------------------ */

/* State layout when not at a boundary: bits 0-1 hold the continuation bytes
 * still expected (1-3), bits 8-15 and 16-23 the smallest and largest value
 * allowed for the next byte. The narrowed ranges after E0, ED, F0 and F4
 * are what exclude overlongs, surrogates and code points over U+10FFFF
 * (RFC 3629 section 4). */
static uint32_t utf8_state(uint32_t need, uint32_t lo, uint32_t hi)
{
    return need | lo << 8 | hi << 16;
}

bool gw_ws_utf8_step(uint32_t *state, const uint8_t *s, size_t n)
{
    uint32_t st = *state;
    size_t i = 0;
    while (i < n) {
        if (st == 0) {
            /* Fast path over ASCII, 8 bytes at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            uint8_t c = s[i++];
            if (c < 0x80)
                continue;
            if (c >= 0xC2 && c <= 0xDF)
                st = utf8_state(1, 0x80, 0xBF);
            else if (c == 0xE0)
                st = utf8_state(2, 0xA0, 0xBF);
            else if (c == 0xED)
                st = utf8_state(2, 0x80, 0x9F);
            else if (c >= 0xE1 && c <= 0xEF)
                st = utf8_state(2, 0x80, 0xBF);
            else if (c == 0xF0)
                st = utf8_state(3, 0x90, 0xBF);
            else if (c >= 0xF1 && c <= 0xF3)
                st = utf8_state(3, 0x80, 0xBF);
            else if (c == 0xF4)
                st = utf8_state(3, 0x80, 0x8F);
            else
                return false; /* 80-C1 (stray or overlong lead), F5-FF */
        } else {
            uint8_t c = s[i++];
            if (c < ((st >> 8) & 0xFF) || c > ((st >> 16) & 0xFF))
                return false;
            uint32_t need = (st & 3) - 1;
            st = need ? utf8_state(need, 0x80, 0xBF) : 0;
        }
    }
    *state = st;
    return true;
}

/* ---- close codes ------------------------------------------------------ */

bool gw_ws_close_code_valid(uint16_t code)
{
    /* 1004, 1005, 1006 and 1015 are reserved and never sent; 1012-1014 are
     * registered with IANA (service restart, try again later, bad gateway). */
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

/* ---- the decoder ------------------------------------------------------ */

void gw_ws_parser_init(gw_ws_parser *p, size_t max_message)
{
    p->max_message = max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)max_message;
    core_buf_init(&p->frag);
    p->frag_opcode = 0;
    p->utf8_state = 0;
    p->closed = false;
}

void gw_ws_parser_free(gw_ws_parser *p)
{
    core_buf_free(&p->frag);
    p->frag_opcode = 0;
    p->utf8_state = 0;
}

static int fail(gw_ws_event *ev, uint16_t code, const char *reason)
{
    ev->type = GW_WS_EV_NONE;
    ev->close_code = code;
    ev->reason = reason;
    return -1;
}

/* XORs n bytes with the 4-byte key, 8 bytes at a time where possible. */
static void unmask(uint8_t *d, size_t n, const uint8_t key[4])
{
    uint8_t k8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    uint64_t k;
    memcpy(&k, k8, 8);
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        w ^= k;
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++)
        d[i] ^= key[i & 3];
}

/* What a frame header says, once enough of it is buffered. */
typedef struct ws_frame {
    bool fin;
    uint8_t opcode;
    uint64_t payload_len; /* bytes */
    size_t header_len;    /* 2..14 */
    const uint8_t *key;   /* 4 bytes in the buffer */
} ws_frame;

static bool is_control(uint8_t opcode)
{
    return opcode & 0x8;
}

/* Checks the header at b[0..n). Returns 1 with *f filled when the header
 * is complete and acceptable, 0 if more bytes are needed, -1 on failure
 * (ev filled). Every check runs as soon as its bytes are present. */
static int read_header(const gw_ws_parser *p, const uint8_t *b, size_t n, ws_frame *f,
                       gw_ws_event *ev)
{
    if (n < 1)
        return 0;
    f->fin = b[0] & 0x80;
    f->opcode = b[0] & 0x0F;
    if (b[0] & 0x70)
        return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: reserved bits set");
    switch (f->opcode) {
    case GW_WS_OP_CONT:
        if (!p->frag_opcode)
            return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: continuation without a start");
        break;
    case GW_WS_OP_TEXT:
    case GW_WS_OP_BINARY:
        if (p->frag_opcode)
            return fail(ev, GW_WS_CLOSE_PROTOCOL,
                        "protocol error: new message inside a fragmented one");
        break;
    case GW_WS_OP_CLOSE:
    case GW_WS_OP_PING:
    case GW_WS_OP_PONG:
        if (!f->fin)
            return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: fragmented control frame");
        break;
    default:
        return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: unknown opcode");
    }
    if (n < 2)
        return 0;
    if (!(b[1] & 0x80))
        return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: unmasked frame");
    uint8_t len7 = b[1] & 0x7F;
    if (is_control(f->opcode) && len7 > WS_MAX_CONTROL)
        return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: control frame over 125 bytes");

    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (n < 2 + ext)
        return 0;
    uint64_t len = len7;
    if (ext) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = len << 8 | b[2 + i];
        if (len >> 63)
            return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: 64-bit length top bit set");
        if (len < (ext == 2 ? 126u : 65536u))
            return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: non-minimal length");
    }
    /* A continuation adds to what is already collected. p->frag.len is
     * <= max_message here, so the subtraction cannot wrap. */
    if (!is_control(f->opcode)) {
        size_t have = f->opcode == GW_WS_OP_CONT ? p->frag.len : 0;
        if (len > p->max_message - have)
            return fail(ev, GW_WS_CLOSE_TOO_BIG, "message too big");
    }
    f->payload_len = len;
    f->header_len = 2 + ext + 4;
    if (n < f->header_len)
        return 0;
    f->key = b + 2 + ext;
    return 1;
}

/* Handles a complete, unmasked close frame payload. */
static int on_close(gw_ws_parser *p, uint8_t *d, size_t n, gw_ws_event *ev)
{
    if (n == 1)
        return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: close payload of 1 byte");
    uint16_t code = GW_WS_CLOSE_NO_STATUS;
    if (n >= 2) {
        code = (uint16_t)(d[0] << 8 | d[1]);
        if (!gw_ws_close_code_valid(code))
            return fail(ev, GW_WS_CLOSE_PROTOCOL, "protocol error: invalid close code");
        uint32_t st = 0;
        if (!gw_ws_utf8_step(&st, d + 2, n - 2) || st != 0)
            return fail(ev, GW_WS_CLOSE_BAD_DATA, "invalid utf-8");
    }
    p->closed = true;
    ev->type = GW_WS_EV_CLOSE;
    ev->close_code = code;
    ev->data = n >= 2 ? d + 2 : d; /* the reason, if any */
    ev->len = n >= 2 ? n - 2 : 0;
    return 1;
}

int gw_ws_parse(gw_ws_parser *p, uint8_t *buf, size_t len, size_t *consumed, gw_ws_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    *consumed = 0;
    if (p->closed) {
        *consumed = len;
        return 0;
    }
    /* A reassembled message handed out by the previous call is done with.
     * Browsers rarely fragment, so give back a large buffer rather than
     * hold max_message bytes on every idle connection. */
    if (!p->frag_opcode) {
        if (p->frag.cap > 4096)
            core_buf_free(&p->frag);
        core_buf_reset(&p->frag);
    }

    size_t off = 0;
    for (;;) {
        ws_frame f;
        int rc = read_header(p, buf + off, len - off, &f, ev);
        if (rc <= 0)
            return rc;
        if (len - off - f.header_len < f.payload_len)
            return 0; /* checked, but the payload is not all here yet */
        uint8_t *d = buf + off + f.header_len;
        size_t n = (size_t)f.payload_len;
        unmask(d, n, f.key);
        off += f.header_len + n;
        /* Everything up to here is unmasked and must never be parsed again,
         * whatever happens below. */
        *consumed = off;

        switch (f.opcode) {
        case GW_WS_OP_CLOSE:
            return on_close(p, d, n, ev);
        case GW_WS_OP_PING:
        case GW_WS_OP_PONG:
            ev->type = f.opcode == GW_WS_OP_PING ? GW_WS_EV_PING : GW_WS_EV_PONG;
            ev->data = d;
            ev->len = n;
            return 1;
        default:
            break;
        }

        uint8_t opcode = f.opcode == GW_WS_OP_CONT ? p->frag_opcode : f.opcode;
        if (f.opcode != GW_WS_OP_CONT)
            p->utf8_state = 0;
        if (opcode == GW_WS_OP_TEXT) {
            if (!gw_ws_utf8_step(&p->utf8_state, d, n) || (f.fin && p->utf8_state != 0))
                return fail(ev, GW_WS_CLOSE_BAD_DATA, "invalid utf-8");
        }
        if (f.fin && f.opcode != GW_WS_OP_CONT) {
            ev->data = d; /* unfragmented: zero-copy */
            ev->len = n;
        } else {
            core_buf_append(&p->frag, d, n);
            if (!f.fin) {
                p->frag_opcode = opcode;
                continue; /* absorbed; look for the next frame */
            }
            ev->data = p->frag.data ? p->frag.data : d;
            ev->len = p->frag.len;
            p->frag_opcode = 0; /* frag is reset on the next call */
        }
        p->utf8_state = 0;
        ev->type = GW_WS_EV_MESSAGE;
        ev->opcode = opcode;
        return 1;
    }
}

/* ---- encoding --------------------------------------------------------- */

size_t gw_ws_frame_header(uint8_t *out, uint8_t opcode, size_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    uint64_t v = len;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(v >> (56 - 8 * i));
    return 10;
}

void gw_ws_write_close(core_buf *out, uint16_t code, const char *reason)
{
    /* 1005 means "no code": it is sent as an empty close payload. */
    if (code == GW_WS_CLOSE_NO_STATUS || code == 0) {
        uint8_t h[2];
        core_buf_append(out, h, gw_ws_frame_header(h, GW_WS_OP_CLOSE, 0));
        return;
    }
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_MAX_CLOSE_REASON) {
        rlen = WS_MAX_CLOSE_REASON;
        /* Do not cut a UTF-8 sequence: the peer would fail us with 1007. */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xC0) == 0x80)
            rlen--;
    }
    uint8_t h[10];
    core_buf_append(out, h, gw_ws_frame_header(h, GW_WS_OP_CLOSE, 2 + rlen));
    core_buf_u8(out, (uint8_t)(code >> 8));
    core_buf_u8(out, (uint8_t)code);
    core_buf_append(out, reason, rlen);
}

/* ---- the handshake key ------------------------------------------------ */

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int gw_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* 16 bytes encode as 22 base64 characters and "==". The unused low bits
     * of the 22nd character are not checked: the key is only hashed. */
    if (key_len != 24 || key[22] != '=' || key[23] != '=')
        return -1;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(key[i]))
            return -1;

    char cat[24 + sizeof(guid) - 1];
    memcpy(cat, key, 24);
    memcpy(cat + 24, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, sizeof(cat), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH); /* 28 chars + NUL */
    return 0;
}
