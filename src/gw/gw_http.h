/* gw_http.h - strict, bounded HTTP/1.1 request-head parser and response
 * writer: only what the gateway serves (the WebSocket upgrade, login,
 * metrics, health, static files). Security-critical: fuzzed
 * (fuzz/fuzz_http.c). Pure functions, any thread. */
#ifndef GW_HTTP_H
#define GW_HTTP_H
#include <stdbool.h>
#include <stddef.h>

#include "core_buf.h"

#define GW_HTTP_MAX_HEAD 8192 /* bytes of request line + headers + CRLFCRLF */
#define GW_HTTP_MAX_HEADERS 64
#define GW_HTTP_MAX_BODY 4096 /* largest request body accepted */

enum {
    GW_HTTP_OK = 1,                  /* a complete head was parsed */
    GW_HTTP_INCOMPLETE = 0,          /* need more bytes (and len < GW_HTTP_MAX_HEAD) */
    GW_HTTP_E_BAD = -400,            /* malformed: answer 400 and close */
    GW_HTTP_E_TOO_LARGE = -431,      /* head over GW_HTTP_MAX_HEAD or too many headers */
    GW_HTTP_E_VERSION = -505,        /* not HTTP/1.0 or HTTP/1.1 */
    GW_HTTP_E_NOT_IMPL = -501,       /* Transfer-Encoding (chunked bodies) not supported */
    GW_HTTP_E_BODY_TOO_LARGE = -413, /* Content-Length over GW_HTTP_MAX_BODY */
};

typedef struct gw_http_header {
    const char *name; /* points into the parsed buffer; not NUL-terminated */
    size_t name_len;
    const char *value; /* leading/trailing whitespace trimmed */
    size_t value_len;
} gw_http_header;

typedef struct gw_http_req {
    const char *method; /* e.g. "GET"; points into the buffer */
    size_t method_len;
    const char *path; /* target up to '?' (origin-form, starts with '/') */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    int minor_version; /* 0 or 1 */
    gw_http_header headers[GW_HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len;     /* bytes of the head including the final CRLFCRLF */
    long content_length; /* -1 when absent */
    bool keep_alive;     /* per version default and Connection header */
} gw_http_req;

/* Parses the request head at the start of buf[0..len). Returns GW_HTTP_OK,
 * GW_HTTP_INCOMPLETE, or a GW_HTTP_E_* (whose negation is the status code
 * to answer). On OK every pointer in req points into buf. Rejects: bare LF
 * line endings, control characters, obs-fold, header names with
 * non-token characters, duplicate Content-Length, a target not starting
 * with '/', methods over 16 bytes. */
int gw_http_parse(gw_http_req *req, const char *buf, size_t len);

/* Case-insensitive header lookup; NULL if absent. */
const gw_http_header *gw_http_find(const gw_http_req *req, const char *name);
/* True if the header's comma-separated list holds token (case-insensitive),
 * e.g. Connection: keep-alive, Upgrade. */
bool gw_http_has_token(const gw_http_header *h, const char *token);
bool gw_http_method_is(const gw_http_req *req, const char *method);
bool gw_http_path_is(const gw_http_req *req, const char *path);

/* Finds query parameter name and percent-decodes it into out (NUL-
 * terminated). Returns its length, -1 if absent, -2 if it does not fit or
 * is badly encoded. */
int gw_http_query_param(const gw_http_req *req, const char *name, char *out, size_t cap);

/* Standard reason phrase ("Not Found"); "Unknown" for others. */
const char *gw_http_reason(int status);

/* Appends a complete response: status line, Content-Type (if non-NULL),
 * Content-Length, Connection: keep-alive|close, extra_headers (each line
 * ending in \r\n, or NULL), blank line, body. */
void gw_http_respond(core_buf *out, int status, const char *content_type, const void *body,
                     size_t body_len, bool keep_alive, const char *extra_headers);
#endif
