/* fuzz_http.c - libFuzzer driver for gw_http_parse. Parses the input whole,
 * then as a connection would see it arrive in two pieces (split at
 * data[0] % size), and checks what the parser promises: pointers stay in
 * the buffer, a prefix gives INCOMPLETE or the same answer as the whole
 * input, and the lookups never read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_http.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_req(const gw_http_req *req, const char *buf, size_t len)
{
    CHECK(req->head_len >= 4 && req->head_len <= len && req->head_len <= GW_HTTP_MAX_HEAD);
    CHECK(inside(req->method, req->method_len, buf, req->head_len));
    CHECK(inside(req->path, req->path_len, buf, req->head_len));
    CHECK(req->path_len > 0 && req->path[0] == '/');
    CHECK(!req->query || inside(req->query, req->query_len, buf, req->head_len));
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->n_headers <= GW_HTTP_MAX_HEADERS);
    CHECK(req->content_length >= -1 && req->content_length <= GW_HTTP_MAX_BODY);
    for (size_t i = 0; i < req->n_headers; i++) {
        const gw_http_header *h = &req->headers[i];
        CHECK(inside(h->name, h->name_len, buf, req->head_len));
        CHECK(inside(h->value, h->value_len, buf, req->head_len));
    }
    char out[64];
    int n = gw_http_query_param(req, "token", out, sizeof(out));
    CHECK(n >= -2 && n < (int)sizeof(out));
    if (n >= 0)
        CHECK(strlen(out) == (size_t)n);
    (void)gw_http_has_token(gw_http_find(req, "connection"), "upgrade");
    (void)gw_http_method_is(req, "GET");
    (void)gw_http_path_is(req, "/ws");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_http_req req;
    /* A heap copy of exactly size bytes, so ASan sees any overread. */
    char *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);

    int whole = gw_http_parse(&req, buf, size);
    CHECK(whole == GW_HTTP_OK || whole == GW_HTTP_INCOMPLETE || whole == GW_HTTP_E_BAD ||
          whole == GW_HTTP_E_TOO_LARGE || whole == GW_HTTP_E_VERSION ||
          whole == GW_HTTP_E_NOT_IMPL || whole == GW_HTTP_E_BODY_TOO_LARGE);
    CHECK(whole != GW_HTTP_INCOMPLETE || size < GW_HTTP_MAX_HEAD);
    size_t head_len = req.head_len;
    if (whole == GW_HTTP_OK)
        check_req(&req, buf, size);

    if (size > 0) {
        /* The first piece, as its own allocation, then the whole. */
        size_t split = data[0] % size;
        char *part = malloc(split ? split : 1);
        memcpy(part, buf, split);
        int first = gw_http_parse(&req, part, split);
        CHECK(first == GW_HTTP_INCOMPLETE || first == whole);
        if (first == GW_HTTP_OK) {
            check_req(&req, part, split);
            CHECK(req.head_len == head_len);
        }
        free(part);
        CHECK(gw_http_parse(&req, buf, size) == whole);
    }
    free(buf);
    return 0;
}
