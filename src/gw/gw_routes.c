/* gw_routes.c - the gateway's HTTP side: one request at a time from a
 * connection's input (keep-alive and pipelining), and its routes:
 *   GET  /ws          the WebSocket upgrade (checks in the order of
 *                     docs/protocol.md section 3), then JOIN
 *   POST /api/login   JSON body -> the asynchronous login service
 *   GET  /healthz, /readyz, /metrics
 *   GET  other paths  static files under cfg.web_root
 * Other methods on these answer 405 with Allow. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_log.h"
#include "gw_acct.h"
#include "gw_int.h"

#define STATIC_MAX_BYTES (4u << 20) /* largest static file served */
#define TEXT_PLAIN "text/plain; charset=utf-8"
#define APP_JSON "application/json"

/* ---- responses ---- */

/* Queues a response to the current request. close: end the connection
 * after it (else the request's keep-alive decides). HEAD answers carry
 * the headers of the GET answer without its body. */
static void respond(gw *g, gw_conn *c, int status, const char *ctype, const void *body, size_t blen,
                    const char *extra, bool close)
{
    bool keep = c->is_keep_alive && !close;
    gw_http_respond(&gw_conn_io(g, c)->out, status, ctype, body, blen, keep, extra);
    if (c->is_head)
        c->io->out.len -= blen;
    core_counter_add(gw_http_counter(g, status), 1);
    if (!keep) {
        c->is_close_after_flush = true;
        c->deadline_ms = g->now_ms + (uint64_t)g->cfg.close_timeout_s * 1000;
    }
    gw_conn_touch(g, c);
}

static void respond_text(gw *g, gw_conn *c, int status, const char *text, bool close)
{
    respond(g, c, status, TEXT_PLAIN, text, strlen(text), NULL, close);
}

/* Answers with obj serialised; takes ownership of obj. */
static void respond_json(gw *g, gw_conn *c, int status, json_t *obj, const char *extra, bool close)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        core_die("out of memory");
    respond(g, c, status, APP_JSON, s, strlen(s), extra, close);
    free(s);
}

static void respond_error(gw *g, gw_conn *c, int status, const char *error, const char *reason,
                          bool close)
{
    respond_json(g, c, status, json_pack("{s:s, s:s}", "error", error, "reason", reason), NULL,
                 close);
}

void gw_routes_json(gw *g, gw_conn *c, int status, json_t *obj, const char *extra)
{
    respond_json(g, c, status, obj, extra, false);
}

void gw_routes_error(gw *g, gw_conn *c, int status, const char *error, const char *reason)
{
    respond_error(g, c, status, error, reason, false);
}

/* ---- static files ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes the path and refuses anything that could leave the web
 * root or reach a hidden file: NUL, backslash, a segment starting with '.'
 * (which covers '..'). Returns 0 with out filled, or -1. */
static int static_path(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(p[i + 1]) : -1, lo = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || ch == '\\' || o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    if (o == 0 || out[0] != '/')
        return -1;
    for (size_t i = 0; i + 1 < o; i++)
        if (out[i] == '/' && out[i + 1] == '.')
            return -1;
    if (out[o - 1] == '/') {
        static const char index[] = "index.html";
        if (o + sizeof index > cap)
            return -1;
        memcpy(out + o, index, sizeof index);
    }
    return 0;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".json", "application/json"},
        {".ico", "image/x-icon"},
        {".txt", TEXT_PLAIN},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static void serve_static(gw *g, gw_conn *c, const gw_http_req *req)
{
    char rel[1024], full[PATH_MAX];
    if (static_path(req->path, req->path_len, rel, sizeof rel) != 0) {
        respond_text(g, c, 404, "not found\n", false);
        return;
    }
    int n = snprintf(full, sizeof full, "%s%s", g->cfg.web_root, rel);
    if (n < 0 || (size_t)n >= sizeof full) {
        respond_text(g, c, 404, "not found\n", false);
        return;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > STATIC_MAX_BYTES) {
        if (fd >= 0)
            close(fd);
        respond_text(g, c, 404, "not found\n", false);
        return;
    }
    core_buf *b = &g->tmp;
    core_buf_reset(b);
    size_t want = (size_t)st.st_size;
    uint8_t *dst = core_buf_reserve(b, want);
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, dst + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != want) {
        respond_text(g, c, 500, "read error\n", false);
        return;
    }
    respond(g, c, 200, content_type(rel), b->data, got,
            "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n", false);
}

/* ---- login ---- */

/* The answer to a refused login, whether refused at submit or by a worker. */
static void login_error(gw *g, gw_conn *c, int status)
{
    switch (status) {
    case GW_AUTH_E_CREDENTIALS:
        respond_error(g, c, 401, "invalid_credentials", "wrong password", false);
        break;
    case GW_AUTH_E_USERNAME:
        respond_error(g, c, 400, "bad_request",
                      "username must be 3 to 24 characters from A-Z a-z 0-9 _ -", false);
        break;
    case GW_AUTH_E_PASSWORD:
        respond_error(g, c, 400, "bad_request", "password must be 6 to 128 bytes", false);
        break;
    case GW_AUTH_E_BUSY:
        respond_error(g, c, 503, "busy", "too many logins in progress; retry later", false);
        break;
    case GW_AUTH_E_STORE:
        respond_error(g, c, 503, "unavailable", "account store unavailable; retry later", false);
        break;
    default:
        respond_error(g, c, 500, "internal", "login failed", false);
        break;
    }
}

static void login_submit(gw *g, gw_conn *c, const uint8_t *body, size_t blen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, blen, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        respond_error(g, c, 400, "bad_request", "body is not a JSON object", false);
        return;
    }
    json_t *u = json_object_get(root, "username"), *p = json_object_get(root, "password");
    if (!json_is_string(u) || !json_is_string(p)) {
        json_decref(root);
        respond_error(g, c, 400, "bad_request", "username and password must be strings", false);
        return;
    }
    const char *user = json_string_value(u), *pass = json_string_value(p);
    if (strlen(user) != json_string_length(u) || strlen(pass) != json_string_length(p)) {
        json_decref(root);
        respond_error(g, c, 400, "bad_request", "NUL in username or password", false);
        return;
    }
    if (gw_acct_login_limited(g, c, user)) {
        json_decref(root);
        return;
    }
    int rc = gw_login_submit(g->login, (uint64_t)c->id, user, pass);
    json_decref(root);
    if (rc != GW_AUTH_OK) {
        login_error(g, c, rc);
        return;
    }
    /* Input stays unread until the answer (EPOLLIN off), so pipelined
     * requests are answered in order. */
    c->state = GW_CONN_LOGIN_WAIT;
    c->deadline_ms = 0;
    gw_conn_update_events(g, c);
}

static void upgrade_done(gw *g, gw_conn *c, const gw_login_result *r);

enum { GW_JOB_ANSWER_ELSEWHERE = 1 }; /* no GW_AUTH_* status is positive */

void gw_routes_login_done(gw *g, const gw_login_result *r)
{
    /* The cookie is the connection id: a result for a connection that has
     * closed (or whose slot was reused) finds nothing. */
    gw_conn *c = r->cookie >> 32 ? NULL : gw_conn_find(g, (uint32_t)r->cookie);
    if (!c || c->state != GW_CONN_LOGIN_WAIT)
        return;
    if (r->kind == GW_JOB_LOAD) {
        if (c->is_upgrade_wait)
            upgrade_done(g, c, r);
        return;
    }
    c->state = GW_CONN_HTTP;
    /* GW_JOB_REFRESH and GW_JOB_LOGOUT are answered by gw_acct.c. */
    switch (r->kind == GW_JOB_LOGIN ? r->status : GW_JOB_ANSWER_ELSEWHERE) {
    case GW_JOB_ANSWER_ELSEWHERE:
        gw_acct_answer(g, c, r);
        break;
    case GW_AUTH_OK:
        respond_json(g, c, 200, gw_acct_token_body(g, r), "Cache-Control: no-store\r\n", false);
        break;
    case GW_AUTH_E_CREDENTIALS:
        gw_acct_login_failed(g, c, r->username);
        login_error(g, c, r->status);
        break;
    default:
        login_error(g, c, r->status);
        break;
    }
    c->deadline_ms = g->now_ms + (uint64_t)g->cfg.handshake_timeout_s * 1000;
    gw_conn_process_buffered(g, c);
}

/* ---- the WebSocket upgrade ---- */

static void auth_refuse(gw *g, gw_conn *c, const char *reason)
{
    char labels[96];
    size_t o = (size_t)snprintf(labels, sizeof labels, "reason=\"");
    for (const char *s = reason; *s && o + 3 < sizeof labels; s++)
        labels[o++] = (*s == '"' || *s == '\\' || *s == '\n') ? '_' : *s;
    labels[o++] = '"';
    labels[o] = '\0';
    core_counter_add(core_metrics_counter(g->m, "tessera_auth_failures_total",
                                          "WebSocket upgrades refused for the token, by reason",
                                          labels),
                     1);
    respond_error(g, c, 401, "unauthorized", reason, true);
}

/* Finds the token: ?token= first, else Authorization: Bearer. Returns its
 * length in g->token_buf, 0 if absent, -1 if malformed. */
static int find_token(gw *g, const gw_http_req *req)
{
    int n = gw_http_query_param(req, "token", g->token_buf, sizeof g->token_buf);
    if (n == -2 || n > GW_AUTH_TOKEN_MAX)
        return -1;
    if (n > 0)
        return n;
    return gw_bearer_token(g, req);
}

static void upgrade(gw *g, gw_conn *c, const gw_http_req *req)
{
    if (!gw_http_method_is(req, "GET") || req->minor_version != 1) {
        respond_text(g, c, 400, "WebSocket upgrade needs GET and HTTP/1.1\n", true);
        return;
    }
    if (!gw_http_has_token(gw_http_find(req, "Upgrade"), "websocket") ||
        !gw_http_has_token(gw_http_find(req, "Connection"), "upgrade")) {
        respond_text(g, c, 400, "expected Upgrade: websocket and Connection: Upgrade\n", true);
        return;
    }
    const gw_http_header *ver = gw_http_find(req, "Sec-WebSocket-Version");
    if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
        static const char msg[] = "unsupported WebSocket version\n";
        respond(g, c, 426, TEXT_PLAIN, msg, sizeof msg - 1, "Sec-WebSocket-Version: 13\r\n", true);
        return;
    }
    const gw_http_header *key = gw_http_find(req, "Sec-WebSocket-Key");
    char accept[29];
    if (!key || gw_ws_accept_key(key->value, key->value_len, accept) != 0) {
        respond_text(g, c, 400, "bad Sec-WebSocket-Key\n", true);
        return;
    }
    const gw_http_header *sub = gw_http_find(req, "Sec-WebSocket-Protocol");
    if (sub && !gw_http_has_token(sub, PROTO_SUBPROTOCOL)) {
        respond_text(g, c, 400, "no supported subprotocol (want " PROTO_SUBPROTOCOL ")\n", true);
        return;
    }
    int tlen = find_token(g, req);
    if (tlen <= 0) {
        auth_refuse(g, c, tlen == 0 ? "missing token" : "malformed token");
        return;
    }
    gw_claims claims;
    const char *why = NULL;
    if (gw_auth_verify(g->auth, g->token_buf, (size_t)tlen, &claims, &why) != GW_AUTH_OK) {
        auth_refuse(g, c, why ? why : "invalid token");
        return;
    }
    /* The session enters the world where the player last stood: load the
     * record on the workers (the gateway thread never waits for the
     * store), then answer 101 and send JOIN (upgrade_done). */
    c->account_id = claims.account_id;
    free(c->up);
    gw_upgrade *up = c->up = calloc(1, sizeof *c->up);
    if (!up)
        core_die("out of memory");
    snprintf(up->username, sizeof up->username, "%s", claims.username);
    memcpy(up->accept, accept, sizeof accept);
    /* ?resume=<32 hex>: the token of a dropped session of this client */
    char hex[2 * PROTO_RESUME_TOKEN_BYTES + 2];
    if (gw_http_query_param(req, "resume", hex, sizeof hex) == 2 * PROTO_RESUME_TOKEN_BYTES) {
        up->has_resume = true;
        for (int i = 0; i < PROTO_RESUME_TOKEN_BYTES; i++) {
            unsigned v;
            if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
                !isxdigit((unsigned char)hex[2 * i + 1])) {
                up->has_resume = false;
                break;
            }
            up->resume[i] = (uint8_t)v;
        }
    }
    up->is_sub = sub != NULL;
    int rc = claims.is_external ? gw_login_submit_load_external(g->login, c->id, claims.account_id,
                                                                claims.username)
                                : gw_login_submit_load(g->login, c->id, claims.account_id);
    if (rc != 0) {
        respond_error(g, c, 503, "busy", "too many sessions starting; retry later", true);
        return;
    }
    c->is_upgrade_wait = true;
    c->state = GW_CONN_LOGIN_WAIT;
    c->deadline_ms = 0;
    gw_conn_update_events(g, c); /* frames sent early wait in the kernel */
}

/* The player record for a pending upgrade arrived. */
static void upgrade_done(gw *g, gw_conn *c, const gw_login_result *r)
{
    c->is_upgrade_wait = false;
    c->state = GW_CONN_HTTP;
    /* what the upgrade carried, from here on a local: the session keeps
     * nothing of it */
    gw_upgrade up = {0};
    if (c->up)
        up = *c->up;
    free(c->up);
    c->up = NULL;
    if (r->status == GW_AUTH_E_ACCOUNT) {
        auth_refuse(g, c, "account conflict");
        return;
    }
    if (r->status != GW_AUTH_OK) {
        respond_error(g, c, 503, "unavailable", "player store unavailable; retry later", true);
        return;
    }
    c->account_id = r->account_id; /* a provider's subject becomes our account id */
    char head[256];
    int n =
        snprintf(head, sizeof head,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                 up.accept, up.is_sub ? "Sec-WebSocket-Protocol: " PROTO_SUBPROTOCOL "\r\n" : "");
    core_buf_append(&gw_conn_io(g, c)->out, head, (size_t)n);
    core_counter_add(gw_http_counter(g, 101), 1);
    gw_conn_touch(g, c);
    gw_claims claims = {.account_id = c->account_id};
    snprintf(claims.username, sizeof claims.username, "%s", up.username);
    float spawn[2] = {r->x, r->y};
    gw_conn_ws_start(g, c, &claims, r->has_player ? spawn : NULL, up.has_resume ? up.resume : NULL);
    if (c->state == GW_CONN_WS)
        gw_conn_process_buffered(g, c); /* frames sent right after the 101 */
}

/* ---- requests ---- */

static void method_not_allowed(gw *g, gw_conn *c, const char *allow)
{
    char extra[64];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    static const char msg[] = "method not allowed\n";
    respond(g, c, 405, TEXT_PLAIN, msg, sizeof msg - 1, extra, false);
}

static void route(gw *g, gw_conn *c, const gw_http_req *req, const uint8_t *body, size_t blen)
{
    bool is_get = gw_http_method_is(req, "GET") || c->is_head;
    if (gw_http_path_is(req, "/ws")) {
        upgrade(g, c, req);
    } else if (gw_http_path_is(req, "/api/login")) {
        if (gw_http_method_is(req, "POST"))
            login_submit(g, c, body, blen);
        else
            method_not_allowed(g, c, "POST");
    } else if (gw_http_path_is(req, "/api/refresh") || gw_http_path_is(req, "/api/logout")) {
        if (!gw_http_method_is(req, "POST"))
            method_not_allowed(g, c, "POST");
        else if (gw_http_path_is(req, "/api/refresh"))
            gw_acct_refresh(g, c, body, blen);
        else
            gw_acct_logout(g, c, req, body, blen);
    } else if (!is_get) {
        method_not_allowed(g, c, "GET, HEAD");
    } else if (gw_http_path_is(req, "/healthz")) {
        respond_text(g, c, 200, "ok", false);
    } else if (gw_http_path_is(req, "/readyz")) {
        char why[128] = "not ready";
        int ready = g->hooks.is_ready ? g->hooks.is_ready(g->hooks.ctx, why, sizeof why) : 1;
        if (ready)
            respond_text(g, c, 200, "ready", false);
        else
            respond_text(g, c, 503, why, false);
    } else if (gw_http_path_is(req, "/metrics")) {
        core_buf_reset(&g->tmp);
        core_metrics_render(g->m, &g->tmp);
        respond(g, c, 200, "text/plain; version=0.0.4; charset=utf-8", g->tmp.data, g->tmp.len,
                NULL, false);
    } else {
        serve_static(g, c, req);
    }
}

size_t gw_routes_process(gw *g, gw_conn *c, uint8_t *buf, size_t len)
{
    gw_http_req req;
    int rc = gw_http_parse(&req, (const char *)buf, len);
    if (rc == GW_HTTP_INCOMPLETE)
        return 0;
    c->is_head = false;
    c->is_keep_alive = false;
    if (rc < 0) {
        int status = -rc;
        if (status == 413)
            respond_error(g, c, 413, "too_large", "request body over 4096 bytes", true);
        else
            respond_text(g, c, status, gw_http_reason(status), true);
        return len;
    }
    size_t body_len = req.content_length > 0 ? (size_t)req.content_length : 0;
    if (len - req.head_len < body_len)
        return 0; /* the body is still coming; same deadline as the head */
    c->is_head = gw_http_method_is(&req, "HEAD");
    c->is_keep_alive = req.keep_alive;
    route(g, c, &req, buf + req.head_len, body_len);
    if (c->state == GW_CONN_HTTP && !c->is_close_after_flush)
        c->deadline_ms = g->now_ms + (uint64_t)g->cfg.handshake_timeout_s * 1000;
    return req.head_len + body_len;
}
