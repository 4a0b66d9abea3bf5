/* gw_http.c - strict HTTP/1.1 request-head parser and response writer.
 *
 * Grammar accepted (RFC 9112, narrowed to what the gateway serves):
 *
 *   head         = request-line *( header-line ) CRLF
 *   request-line = method SP target SP "HTTP/1." ( "0" / "1" ) CRLF
 *   method       = 1*16tchar
 *   target       = "/" *( %x21-7E except "#" )      ; origin-form only
 *   header-line  = tchar-name ":" OWS value OWS CRLF
 *   value        = *( VCHAR / obs-text / SP / HTAB )
 *
 * Every line ends in CRLF; a bare CR or LF, any other control byte, a
 * header line starting with whitespace (obs-fold) or whitespace before the
 * colon is a 400. The parser keeps no state between calls: the caller
 * passes the whole buffered prefix each time, and the head is only parsed
 * once its CRLFCRLF is within the first GW_HTTP_MAX_HEAD bytes. So the
 * result for a prefix is either INCOMPLETE or the result for the whole
 * input (fuzz/fuzz_http.c checks this).
 *
 * Divisions: character classes; head parsing; lookups and query
 * parameters; responses. */
#include "gw_http.h"

#include <stdio.h>
#include <string.h>

#define GW_HTTP_MAX_METHOD 16

/* ---- character classes ------------------------------------------------ */

/* RFC 9110 tchar: "!#$%&'*+-.^_`|~" DIGIT ALPHA. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Bytes allowed in a header value: VCHAR, obs-text, SP, HTAB. */
static bool is_value_char(unsigned char c)
{
    return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool ieq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* ---- head parsing ----------------------------------------------------- */

/* Offset just past the CRLFCRLF ending the head within buf[0..len), or 0. */
static size_t find_head_end(const char *buf, size_t len)
{
    const char *p = buf;
    const char *end = buf + len;
    while (end - p >= 4) {
        const char *lf = memchr(p + 3, '\n', (size_t)(end - (p + 3)));
        if (!lf)
            return 0;
        if (lf[-1] == '\r' && lf[-2] == '\n' && lf[-3] == '\r')
            return (size_t)(lf + 1 - buf);
        p = lf - 2;
    }
    return 0;
}

/* Parses "HTTP/x.y"; returns 0 with *minor set, or a GW_HTTP_E_*. */
static int parse_version(const char *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.')
        return GW_HTTP_E_BAD;
    if (s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9')
        return GW_HTTP_E_BAD;
    if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
        return GW_HTTP_E_VERSION;
    *minor = s[7] - '0';
    return 0;
}

static int parse_request_line(gw_http_req *req, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i > GW_HTTP_MAX_METHOD || i == n || s[i] != ' ')
        return GW_HTTP_E_BAD;
    req->method = s;
    req->method_len = i;

    size_t t = ++i;
    while (i < n && s[i] != ' ') {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return GW_HTTP_E_BAD;
        i++;
    }
    if (i == t || s[t] != '/' || i == n)
        return GW_HTTP_E_BAD;
    const char *target = s + t;
    size_t target_len = i - t;
    const char *q = memchr(target, '?', target_len);
    req->path = target;
    req->path_len = q ? (size_t)(q - target) : target_len;
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? target_len - req->path_len - 1 : 0;

    i++; /* the SP before the version */
    return parse_version(s + i, n - i, &req->minor_version);
}

/* Strict Content-Length: 1*DIGIT. Values over GW_HTTP_MAX_BODY saturate
 * (no overflow) and are reported as 413 by the caller. */
static int parse_content_length(const char *s, size_t n, long *out)
{
    if (n == 0)
        return GW_HTTP_E_BAD;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return GW_HTTP_E_BAD;
        if (v <= GW_HTTP_MAX_BODY)
            v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_header_line(gw_http_req *req, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    /* Also rejects obs-fold (leading SP/HTAB) and "Name : value". */
    if (i == 0 || i == n || s[i] != ':')
        return GW_HTTP_E_BAD;
    size_t name_len = i++;
    while (i < n && is_ows((unsigned char)s[i]))
        i++;
    size_t v = i;
    for (; i < n; i++)
        if (!is_value_char((unsigned char)s[i]))
            return GW_HTTP_E_BAD;
    size_t v_end = n;
    while (v_end > v && is_ows((unsigned char)s[v_end - 1]))
        v_end--;

    if (req->n_headers == GW_HTTP_MAX_HEADERS)
        return GW_HTTP_E_TOO_LARGE;
    gw_http_header *h = &req->headers[req->n_headers++];
    h->name = s;
    h->name_len = name_len;
    h->value = s + v;
    h->value_len = v_end - v;
    return 0;
}

/* Header checks that need the whole set: framing and connection reuse. */
static int check_headers(gw_http_req *req)
{
    bool has_close = false, has_keep_alive = false, has_host = false;
    for (size_t i = 0; i < req->n_headers; i++) {
        const gw_http_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, "Content-Length", 14)) {
            /* Duplicates are refused even when equal: a proxy in front of us
             * might pick the other one (request smuggling). */
            if (req->content_length >= 0)
                return GW_HTTP_E_BAD;
            if (parse_content_length(h->value, h->value_len, &req->content_length) < 0)
                return GW_HTTP_E_BAD;
        } else if (ieq(h->name, h->name_len, "Host", 4)) {
            if (has_host)
                return GW_HTTP_E_BAD; /* RFC 9112 3.2: more than one Host is a 400 */
            has_host = true;
        } else if (ieq(h->name, h->name_len, "Connection", 10)) {
            has_close |= gw_http_has_token(h, "close");
            has_keep_alive |= gw_http_has_token(h, "keep-alive");
        }
    }
    if (gw_http_find(req, "Transfer-Encoding"))
        return GW_HTTP_E_NOT_IMPL;
    if (req->content_length > GW_HTTP_MAX_BODY)
        return GW_HTTP_E_BODY_TOO_LARGE;
    req->keep_alive = req->minor_version == 1 ? !has_close : (has_keep_alive && !has_close);
    return 0;
}

/* True if buf[0..len) holds an LF not preceded by CR. */
static bool has_bare_lf(const char *buf, size_t len)
{
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++)
        if (p == buf || p[-1] != '\r')
            return true;
    return false;
}

int gw_http_parse(gw_http_req *req, const char *buf, size_t len)
{
    size_t scan = len < GW_HTTP_MAX_HEAD ? len : GW_HTTP_MAX_HEAD;
    size_t head_len = find_head_end(buf, scan);
    /* A bare-LF client would never send CRLFCRLF: refuse it now rather
     * than at the size limit. Checked first, over the same bytes whatever
     * else is wrong, so a prefix and the whole input agree. */
    if (has_bare_lf(buf, head_len ? head_len : scan))
        return GW_HTTP_E_BAD;
    if (head_len == 0)
        return len >= GW_HTTP_MAX_HEAD ? GW_HTTP_E_TOO_LARGE : GW_HTTP_INCOMPLETE;

    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    req->head_len = head_len;

    /* Walk the lines; the last one is the empty line before the body. */
    const char *p = buf;
    const char *end = buf + head_len - 2;
    bool first = true;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end + 2 - p));
        /* Every LF must follow a CR, and no CR or other control byte may
         * appear inside a line (a lone CR would be a line break to some
         * peers). The value checks below catch CR; the target and method
         * checks catch it on the request line. */
        if (lf == p || lf[-1] != '\r')
            return GW_HTTP_E_BAD;
        size_t n = (size_t)(lf - 1 - p);
        int rc = first ? parse_request_line(req, p, n) : parse_header_line(req, p, n);
        if (rc < 0)
            return rc;
        first = false;
        p = lf + 1;
    }
    if (first)
        return GW_HTTP_E_BAD; /* "\r\n\r\n" alone: no request line */
    int rc = check_headers(req);
    return rc < 0 ? rc : GW_HTTP_OK;
}

/* ---- lookups and query parameters ------------------------------------- */

const gw_http_header *gw_http_find(const gw_http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name, n))
            return &req->headers[i];
    return NULL;
}

bool gw_http_has_token(const gw_http_header *h, const char *token)
{
    if (!h)
        return false;
    size_t tlen = strlen(token);
    const char *p = h->value;
    const char *end = h->value + h->value_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *s = p;
        while (s < e && is_ows((unsigned char)*s))
            s++;
        const char *t = e;
        while (t > s && is_ows((unsigned char)t[-1]))
            t--;
        if (ieq(s, (size_t)(t - s), token, tlen))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool gw_http_method_is(const gw_http_req *req, const char *method)
{
    /* Methods are case-sensitive (RFC 9110 9.1). */
    size_t n = strlen(method);
    return req->method_len == n && memcmp(req->method, method, n) == 0;
}

bool gw_http_path_is(const gw_http_req *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes including the NUL). */
static int percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (n - i < 3)
                return -2;
            int hi = hex_val(s[i + 1]), lo = hex_val(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -2;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -2;
        out[o++] = c;
    }
    if (cap == 0)
        return -2;
    out[o] = '\0';
    return (int)o;
}

int gw_http_query_param(const gw_http_req *req, const char *name, char *out, size_t cap)
{
    if (!req->query)
        return -1;
    size_t name_len = strlen(name);
    const char *p = req->query;
    const char *end = req->query + req->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *k_end = eq ? eq : e;
        /* Names are compared undecoded: ours are plain ASCII ("token"). */
        if ((size_t)(k_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : e;
            return percent_decode(v, (size_t)(e - v), out, cap);
        }
        p = amp ? amp + 1 : end;
    }
    return -1;
}

/* ---- responses -------------------------------------------------------- */

const char *gw_http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void gw_http_respond(core_buf *out, int status, const char *content_type, const void *body,
                     size_t body_len, bool keep_alive, const char *extra_headers)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, gw_http_reason(status));
    core_buf_append(out, line, (size_t)n);
    if (content_type) {
        core_buf_append(out, "Content-Type: ", 14);
        core_buf_append(out, content_type, strlen(content_type));
        core_buf_append(out, "\r\n", 2);
    }
    n = snprintf(line, sizeof(line), "Content-Length: %zu\r\nConnection: %s\r\n", body_len,
                 keep_alive ? "keep-alive" : "close");
    core_buf_append(out, line, (size_t)n);
    if (extra_headers)
        core_buf_append(out, extra_headers, strlen(extra_headers));
    core_buf_append(out, "\r\n", 2);
    core_buf_append(out, body, body_len);
}
