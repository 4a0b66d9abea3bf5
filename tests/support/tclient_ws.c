/* tclient_ws.c - test client, part 2: an RFC 6455 client that can also
 * send any malformed frame (see tclient.h). */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tclient.h"
#include "tclient_int.h"

/* ================================================================== */
/* 4. WebSocket client                                                 */
/* ================================================================== */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_FRAME (64u << 20) /* longer server frames are treated as garbage */

static void ws_accept_for(const char *key, char out[64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char cat[256];
    int n = snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    EVP_Digest(cat, (size_t)n, md, &md_len, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

static void url_encode(core_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            core_buf_u8(b, c);
        } else {
            core_buf_u8(b, '%');
            core_buf_u8(b, (uint8_t)hex[c >> 4]);
            core_buf_u8(b, (uint8_t)hex[c & 15]);
        }
    }
}

static bool has_token_ci(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == tl && strncasecmp(p, tok, tl) == 0)
            return true;
        p = e;
    }
    return false;
}

void ts__ws_zero(ts_ws *ws)
{
    memset(ws, 0, sizeof *ws);
    ws->fd = -1;
    ws->auto_pong = true;
    ws->send_timeout_ms = TS_TIMEOUT_MS;
    core_buf_init(&ws->in);
    core_buf_init(&ws->msg);
}

int ts_ws_open(ts_ws *ws, int port, const ts_ws_opts *o, ts_http_resp *refusal)
{
    static const ts_ws_opts defaults;
    if (!o)
        o = &defaults;
    ts__ws_zero(ws);
    if (refusal)
        memset(refusal, 0, sizeof *refusal);
    int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : TS_TIMEOUT_MS;

    char key[64];
    if (o->key) {
        snprintf(key, sizeof key, "%s", o->key);
    } else {
        uint8_t raw[16];
        ts__rng_bytes(raw, sizeof raw);
        EVP_EncodeBlock((unsigned char *)key, raw, (int)sizeof raw);
    }

    core_buf b;
    core_buf_init(&b);
    char line[512];
    int n = snprintf(line, sizeof line, "GET %s", o->path ? o->path : "/ws");
    core_buf_append(&b, line, (size_t)n);
    if (o->token) {
        core_buf_append(&b, "?token=", 7);
        url_encode(&b, o->token);
    }
    n = snprintf(line, sizeof line,
                 " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n",
                 port, key);
    core_buf_append(&b, line, (size_t)n);
    const char *version = o->version ? o->version : "13";
    if (*version) {
        n = snprintf(line, sizeof line, "Sec-WebSocket-Version: %s\r\n", version);
        core_buf_append(&b, line, (size_t)n);
    }
    const char *proto = o->protocol ? o->protocol : PROTO_SUBPROTOCOL;
    if (*proto) {
        n = snprintf(line, sizeof line, "Sec-WebSocket-Protocol: %s\r\n", proto);
        core_buf_append(&b, line, (size_t)n);
    }
    if (o->bearer) {
        core_buf_append(&b, "Authorization: Bearer ", 22);
        core_buf_append(&b, o->bearer, strlen(o->bearer));
        core_buf_append(&b, "\r\n", 2);
    }
    if (o->extra_headers)
        core_buf_append(&b, o->extra_headers, strlen(o->extra_headers));
    core_buf_append(&b, "\r\n", 2);

    ts_http_resp resp;
    memset(&resp, 0, sizeof resp);
    int ret = -1;
    int fd = ts__tcp_connect_rcvbuf(port, timeout_ms, o->rcvbuf_bytes);
    if (fd < 0)
        goto done;
    (void)ts_send_all(fd, b.data, b.len, timeout_ms);
    size_t used = 0;
    if (ts__http_read_acc(fd, timeout_ms, &ws->in, &resp, &used) != 0) {
        fprintf(stderr, "tclient: ws handshake on port %d: no answer\n", port);
        close(fd);
        goto done;
    }
    if (resp.status != 101) {
        ret = resp.status;
        close(fd);
        goto done;
    }
    char v[256], want[64];
    ws_accept_for(key, want);
    if (ts_http_header(&resp, "Upgrade", v, sizeof v) < 0 || !has_token_ci(v, "websocket") ||
        ts_http_header(&resp, "Connection", v, sizeof v) < 0 || !has_token_ci(v, "upgrade") ||
        ts_http_header(&resp, "Sec-WebSocket-Accept", v, sizeof v) < 0 || strcmp(v, want) != 0) {
        fprintf(stderr, "tclient: bad 101 answer:\n%s", resp.head);
        close(fd);
        goto done;
    }
    ts_http_header(&resp, "Sec-WebSocket-Protocol", ws->protocol, sizeof ws->protocol);
    core_buf_consume(&ws->in, used); /* keep frames that came with the 101 */
    ws->fd = fd;
    ret = 101;
done:
    core_buf_free(&b);
    if (ret != 101) {
        core_buf_free(&ws->in);
        core_buf_free(&ws->msg);
        ts__ws_zero(ws);
    }
    if (refusal && ret != 101) {
        if (!resp.head) { /* never connected: same shape as a failed read */
            resp.head = calloc(1, 1);
            resp.body = calloc(1, 1);
        }
        *refusal = resp;
    } else
        ts_http_resp_free(&resp);
    return ret;
}

int ts_ws_connect(ts_ws *ws, int port, const char *token, const char *extra_headers)
{
    ts_ws_opts o = {.token = token, .extra_headers = extra_headers};
    return ts_ws_open(ws, port, &o, NULL);
}

void ts_ws_close(ts_ws *ws)
{
    if (ws->fd >= 0)
        close(ws->fd);
    core_buf_free(&ws->in);
    core_buf_free(&ws->msg);
    ws->fd = -1;
    ws->in_pos = 0;
    ws->consume = 0;
    ws->msg_opcode = 0;
    ws->msg_done = false;
}

int ts_ws_send_raw(ts_ws *ws, const void *bytes, size_t len)
{
    if (ws->fd < 0)
        return -1;
    return ts_send_all(ws->fd, bytes, len, ws->send_timeout_ms);
}

int ts_ws_send_frame(ts_ws *ws, bool fin, uint8_t rsv, uint8_t opcode, const void *payload,
                     size_t len, bool masked)
{
    uint8_t stack[256];
    size_t total = 14 + len;
    uint8_t *f = total <= sizeof stack ? stack : malloc(total);
    size_t h = 0;
    f[h++] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
    uint8_t mbit = masked ? 0x80 : 0;
    if (len < 126) {
        f[h++] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        f[h++] = mbit | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    } else {
        f[h++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    const uint8_t *src = payload;
    if (masked) {
        uint8_t *mask = f + h;
        ts__rng_bytes(mask, 4);
        h += 4;
        for (size_t i = 0; i < len; i++)
            f[h + i] = src[i] ^ mask[i & 3];
    } else if (len) {
        memcpy(f + h, src, len);
    }
    int r = ts_ws_send_raw(ws, f, h + len);
    if (f != stack)
        free(f);
    return r;
}

int ts_ws_send_binary(ts_ws *ws, const void *payload, size_t len)
{
    return ts_ws_send_frame(ws, true, 0, TS_WS_BINARY, payload, len, true);
}

int ts_ws_send_close(ts_ws *ws, uint16_t code, const char *reason)
{
    uint8_t p[125];
    size_t n = 0;
    if (code) {
        p[n++] = (uint8_t)(code >> 8);
        p[n++] = (uint8_t)code;
        if (reason) {
            size_t rl = strlen(reason);
            if (rl > sizeof p - 2)
                rl = sizeof p - 2;
            memcpy(p + n, reason, rl);
            n += rl;
        }
    }
    ws->close_sent = true;
    return ts_ws_send_frame(ws, true, 0, TS_WS_CLOSE, p, n, true);
}

/* Parses one whole frame at the start of ws->in. Returns its total size,
 * 0 if incomplete, or -1 if it is garbage (length over WS_MAX_FRAME). */
static long ws_parse(ts_ws *ws, bool *fin, uint8_t *opcode, uint8_t **payload, size_t *len)
{
    const uint8_t *p = ws->in.data + ws->in_pos;
    size_t have = ws->in.len - ws->in_pos;
    if (have < 2)
        return 0;
    size_t h = 2;
    uint64_t plen = p[1] & 0x7f;
    bool masked = p[1] & 0x80;
    if (plen == 126) {
        if (have < 4)
            return 0;
        plen = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (plen == 127) {
        if (have < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | p[2 + i];
        h = 10;
    }
    if (plen > WS_MAX_FRAME)
        return -1;
    size_t mask_at = h;
    if (masked)
        h += 4;
    if (have < h + plen)
        return 0;
    uint8_t *data = ws->in.data + ws->in_pos + h;
    if (masked) {
        ws->n_masked_rx++;
        for (size_t i = 0; i < plen; i++)
            data[i] ^= p[mask_at + (i & 3)];
    }
    *fin = p[0] & 0x80;
    *opcode = p[0] & 0x0f;
    *payload = data;
    *len = (size_t)plen;
    return (long)(h + plen);
}

int ts_ws_recv_frame(ts_ws *ws, int timeout_ms, bool *fin, uint8_t *opcode, const uint8_t **payload,
                     size_t *len)
{
    /* Skip the frame returned last time; compact only now and then so a
     * buffer full of small frames is not moved once per frame. */
    ws->in_pos += ws->consume;
    ws->consume = 0;
    if (ws->in_pos == ws->in.len) {
        ws->in.len = 0;
        ws->in_pos = 0;
    } else if (ws->in_pos >= 32768) {
        core_buf_consume(&ws->in, ws->in_pos);
        ws->in_pos = 0;
    }
    uint64_t deadline = ts_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        bool f = false;
        uint8_t op = 0;
        uint8_t *data = NULL;
        size_t n = 0;
        long total = ws_parse(ws, &f, &op, &data, &n);
        if (total < 0) {
            fprintf(stderr, "tclient: garbage frame from server\n");
            ws->is_eof = true;
            return -1;
        }
        if (total > 0) {
            ws->consume = (size_t)total;
            if (op == TS_WS_PING) {
                ws->n_pings_rx++;
                if (ws->auto_pong && !ws->close_sent)
                    (void)ts_ws_send_frame(ws, true, 0, TS_WS_PONG, data, n, true);
            } else if (op == TS_WS_CLOSE) {
                ws->close_received = true;
            }
            if (fin)
                *fin = f;
            *opcode = op;
            *payload = data;
            *len = n;
            return 0;
        }
        if (ws->fd < 0 || ws->is_eof)
            return -1;
        int left = ts__ms_left(deadline);
        if (left == 0 && timeout_ms > 0)
            return -1;
        bool reset = false;
        ssize_t r = ts__read_some(ws->fd, &ws->in, left, &reset);
        if (r < 0) {
            ws->is_eof = true;
            ws->is_reset = reset;
            /* Parse what is left in the buffer before reporting EOF. */
            long t2 = ws_parse(ws, &f, &op, &data, &n);
            if (t2 <= 0)
                return -1;
            continue;
        }
        if (r == 0 && left == 0)
            return -1;
    }
}

int ts_ws_recv_msg(ts_ws *ws, int timeout_ms, uint8_t *opcode, const uint8_t **payload, size_t *len)
{
    if (ws->msg_done) {
        ws->msg.len = 0;
        ws->msg_done = false;
    }
    uint64_t deadline = ts_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        bool fin;
        uint8_t op;
        const uint8_t *p;
        size_t n;
        if (ts_ws_recv_frame(ws, ts__ms_left(deadline), &fin, &op, &p, &n) != 0)
            return -1;
        if (op == TS_WS_PING || op == TS_WS_PONG)
            continue;
        if (op == TS_WS_CLOSE ||
            ((op == TS_WS_TEXT || op == TS_WS_BINARY) && fin && ws->msg_opcode == 0)) {
            *opcode = op;
            *payload = p;
            *len = n;
            return 0;
        }
        if (op == TS_WS_TEXT || op == TS_WS_BINARY) {
            ws->msg.len = 0;
            ws->msg_opcode = op;
        } else if (op != TS_WS_CONT || ws->msg_opcode == 0) {
            fprintf(stderr, "tclient: unexpected server frame opcode %u\n", op);
            continue;
        }
        core_buf_append(&ws->msg, p, n);
        if (fin) {
            *opcode = ws->msg_opcode;
            *payload = ws->msg.data;
            *len = ws->msg.len;
            ws->msg_opcode = 0;
            ws->msg_done = true;
            return 0;
        }
    }
}

int ts__close_code_of(const uint8_t *p, size_t n, char *reason, size_t cap)
{
    if (reason && cap) {
        size_t rl = n > 2 ? n - 2 : 0;
        if (rl > cap - 1)
            rl = cap - 1;
        if (rl)
            memcpy(reason, p + 2, rl);
        reason[rl] = 0;
    }
    if (n < 2)
        return 1005;
    return (p[0] << 8) | p[1];
}

int ts_ws_expect_close(ts_ws *ws, int timeout_ms, int *code_out, char *reason_out,
                       size_t reason_cap)
{
    if (reason_out && reason_cap)
        reason_out[0] = 0;
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        bool fin;
        uint8_t op;
        const uint8_t *p;
        size_t n;
        if (ts_ws_recv_frame(ws, ts__ms_left(deadline), &fin, &op, &p, &n) != 0) {
            if (!ws->is_eof)
                return -1;
            if (code_out)
                *code_out = TS_WS_NO_CLOSE;
            return TS_WS_NO_CLOSE;
        }
        if (op != TS_WS_CLOSE)
            continue;
        int code = ts__close_code_of(p, n, reason_out, reason_cap);
        if (!ws->close_sent)
            (void)ts_ws_send_close(ws, code == 1005 ? 0 : (uint16_t)code, NULL);
        if (code_out)
            *code_out = code;
        return code;
    }
}
