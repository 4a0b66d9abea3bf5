/* bots_http.c - the HTTP part of a bot's life: POST /api/login on its own
 * connection (Connection: close; a 503 busy answer is retried after a
 * random 100-600 ms, as docs/protocol.md asks), and the WebSocket upgrade
 * at /ws?token=... with subprotocol tessera.v1, whose 101 answer is
 * checked (Sec-WebSocket-Accept, the echoed subprotocol). Bytes that
 * arrive with the 101 stay in b->in for the frame parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "bots_int.h"

#define BOT_HEAD_MAX 16384 /* largest HTTP answer head */

void bot_username(const bots_env *e, const bot *b, char *out, size_t cap)
{
    snprintf(out, cap, "%s-%u", e->o->name_prefix, b->gid);
}

int bot_http_send_login(bots_env *e, bot *b)
{
    char name[40], body[256], req[768];
    bot_username(e, b, name, sizeof name);
    int bn = snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", name,
                      e->o->password);
    int n = snprintf(req, sizeof req,
                     "POST /api/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     e->o->host, bn, body);
    return bot_write(e, b, req, (size_t)n);
}

int bot_http_send_upgrade(bots_env *e, bot *b)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = core_rng_u32(&e->rng);
        memcpy(raw + i, &r, 4);
    }
    char key[32];
    bots_base64(key, sizeof key, raw, sizeof raw);
    bots_ws_accept(b->hs->accept, key);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                     b->hs->token, e->o->host, key, PROTO_SUBPROTOCOL);
    if (n < 0 || (size_t)n >= sizeof req) {
        bot_decode_fail(e, b, "token too long for the upgrade request");
        return -1;
    }
    return bot_write(e, b, req, (size_t)n);
}

/* Value of header name in an answer head, copied into out. */
static bool head_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) != 0 || line[nl] != ':')
            continue;
        const char *v = line + nl + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        const char *end = strstr(v, "\r\n");
        size_t n = end ? (size_t)(end - v) : strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n >= cap)
            n = cap - 1;
        memcpy(out, v, n);
        out[n] = 0;
        return true;
    }
    return false;
}

static int http_status(const char *head)
{
    int st = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &st) != 1)
        return 0;
    return st;
}

/* The bytes of b->in hold an answer head (NUL-terminated copy in head,
 * head_len bytes incl. CRLFCRLF)? Returns 1, 0 if incomplete, -1 if too
 * long. */
static int take_head(bot *b, char *head, size_t cap, size_t *head_len)
{
    const uint8_t *d = b->in.data;
    for (size_t i = 3; i < b->in.len; i++) {
        if (d[i] == '\n' && d[i - 1] == '\r' && d[i - 2] == '\n' && d[i - 3] == '\r') {
            if (i + 1 >= cap)
                return -1;
            memcpy(head, d, i + 1);
            head[i + 1] = 0;
            *head_len = i + 1;
            return 1;
        }
    }
    return b->in.len > BOT_HEAD_MAX ? -1 : 0;
}

/* Counts a refused request; the first refusal of each status is shown
 * once with the answer's body, which says why. */
static void http_refused(bots_env *e, bot *b, int status, size_t head_len, const char *what)
{
    if (status > 0) {
        bool is_first = true;
        for (int i = 0; i < BOTS_MAX_CODES; i++)
            if (e->st->err_http[i].count && e->st->err_http[i].code == (uint32_t)status)
                is_first = false;
        bots_code_add(e->st->err_http, (uint32_t)status, 1);
        if (is_first) {
            char why[160];
            size_t n = b->in.len > head_len ? b->in.len - head_len : 0;
            if (n >= sizeof why)
                n = sizeof why - 1;
            for (size_t i = 0; i < n; i++) {
                char c = (char)b->in.data[head_len + i];
                why[i] = c >= 32 && c < 127 ? c : ' ';
            }
            why[n] = 0;
            fprintf(stderr, "tessera bots: %s refused with HTTP %d: %s\n", what, status, why);
        }
        bot_fail(e, b);
    } else {
        bot_decode_fail(e, b, "answer without an HTTP status line");
    }
}

int bot_http_on_login(bots_env *e, bot *b, bool is_eof)
{
    char head[BOT_HEAD_MAX + 1];
    size_t hl;
    int r = take_head(b, head, sizeof head, &hl);
    if (r <= 0) {
        if (r < 0 || is_eof) {
            if (r < 0) {
                bot_decode_fail(e, b, "login answer head too long");
            } else {
                e->st->err_io++;
                bot_fail(e, b);
            }
            return -1;
        }
        return 0;
    }
    char cl[32];
    size_t body_len = head_value(head, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
    if (b->in.len < hl + body_len) {
        if (is_eof) {
            e->st->err_io++;
            bot_fail(e, b);
            return -1;
        }
        return 0;
    }
    int status = http_status(head);
    if (status == 503) {
        bot_close_fd(e, b);
        /* The login queue is full: retry after a random 100-600 ms. */
        e->st->n_login_retry++;
        b->state = BOT_LOGIN_BACKOFF;
        b->deadline_ns = e->now_ns + (100 + core_rng_below(&e->rng, 500)) * 1000000ull;
        return -1;
    }
    if (status != 200) {
        http_refused(e, b, status, hl, "login");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)b->in.data + hl, body_len, 0, &jerr);
    const char *tok = json_string_value(json_object_get(root, "token"));
    if (!tok || strlen(tok) >= sizeof b->hs->token) {
        json_decref(root);
        bot_decode_fail(e, b, "login answer without a token");
        return -1;
    }
    snprintf(b->hs->token, sizeof b->hs->token, "%s", tok);
    json_decref(root);
    bot_close_fd(e, b);
    e->st->n_logins++;
    e->st->last_login_ns = e->now_ns - e->o->t0_ns;
    bot_start_ws(e, b);
    return -1; /* the old connection's buffers are gone */
}

int bot_http_on_upgrade(bots_env *e, bot *b)
{
    char head[BOT_HEAD_MAX + 1];
    size_t hl;
    int r = take_head(b, head, sizeof head, &hl);
    if (r < 0) {
        bot_decode_fail(e, b, "upgrade answer head too long");
        return -1;
    }
    if (r == 0)
        return 0;
    int status = http_status(head);
    if (status != 101) {
        http_refused(e, b, status, hl, "upgrade");
        return -1;
    }
    char acc[64], proto[64];
    if (!head_value(head, "Sec-WebSocket-Accept", acc, sizeof acc) ||
        strcmp(acc, b->hs->accept) != 0 ||
        !head_value(head, "Sec-WebSocket-Protocol", proto, sizeof proto) ||
        strcmp(proto, PROTO_SUBPROTOCOL) != 0) {
        bot_decode_fail(e, b, "bad 101: Sec-WebSocket-Accept or subprotocol");
        return -1;
    }
    core_buf_consume(&b->in, hl);
    b->state = BOT_WS_OPEN;
    e->st->n_upgrades++;
    e->st->last_upgrade_ns = e->now_ns - e->o->t0_ns;
    return 0;
}
