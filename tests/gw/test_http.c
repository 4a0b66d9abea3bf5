/* test_http.c - gw_http: request-head parsing, every rejection with its
 * status, incremental feeding, lookups, query parameters, responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_http.h"

static int parse(gw_http_req *req, const char *s)
{
    return gw_http_parse(req, s, strlen(s));
}

static int parse_status(const char *s)
{
    gw_http_req req;
    return parse(&req, s);
}

static void assert_span(const char *p, size_t n, const char *want)
{
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

static const char k_upgrade[] = "GET /ws?token=abc.def&x=1 HTTP/1.1\r\n"
                                "Host: localhost:8080\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: keep-alive, Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n"
                                "\r\n";

static void get_upgrade_parses(void **state)
{
    (void)state;
    gw_http_req req;
    assert_int_equal(parse(&req, k_upgrade), GW_HTTP_OK);
    assert_int_equal(req.head_len, strlen(k_upgrade));
    assert_span(req.method, req.method_len, "GET");
    assert_span(req.path, req.path_len, "/ws");
    assert_span(req.query, req.query_len, "token=abc.def&x=1");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.n_headers, 5);
    assert_span(req.headers[0].name, req.headers[0].name_len, "Host");
    assert_span(req.headers[0].value, req.headers[0].value_len, "localhost:8080");
    assert_int_equal(req.content_length, -1);
    assert_true(req.keep_alive);
    assert_true(gw_http_method_is(&req, "GET"));
    assert_false(gw_http_method_is(&req, "get"));
    assert_true(gw_http_path_is(&req, "/ws"));
    assert_false(gw_http_path_is(&req, "/w"));
}

static void post_with_body_parses(void **state)
{
    (void)state;
    const char *s = "POST /login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                    "Content-Length: 27\r\n\r\n{\"username\":\"a\",\"pw\":\"b\"}";
    gw_http_req req;
    assert_int_equal(parse(&req, s), GW_HTTP_OK);
    assert_span(req.method, req.method_len, "POST");
    assert_null(req.query);
    assert_int_equal(req.content_length, 27);
    assert_int_equal(req.head_len, strstr(s, "\r\n\r\n") + 4 - s);
}

static void content_length_at_limit_accepted(void **state)
{
    (void)state;
    gw_http_req req;
    assert_int_equal(parse(&req, "POST / HTTP/1.1\r\nContent-Length: 4096\r\n\r\n"), GW_HTTP_OK);
    assert_int_equal(req.content_length, 4096);
    assert_int_equal(parse(&req, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), GW_HTTP_OK);
    assert_int_equal(req.content_length, 0);
}

static void whitespace_trimmed_from_values(void **state)
{
    (void)state;
    gw_http_req req;
    assert_int_equal(parse(&req, "GET / HTTP/1.1\r\nX-A: \t v a \t\r\nX-B:\r\n\r\n"), GW_HTTP_OK);
    assert_span(req.headers[0].value, req.headers[0].value_len, "v a");
    assert_int_equal(req.headers[1].value_len, 0);
}

static void byte_by_byte_is_incomplete_until_crlfcrlf(void **state)
{
    (void)state;
    size_t n = strlen(k_upgrade);
    gw_http_req req;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(gw_http_parse(&req, k_upgrade, i), GW_HTTP_INCOMPLETE);
    assert_int_equal(gw_http_parse(&req, k_upgrade, n), GW_HTTP_OK);
    assert_int_equal(req.n_headers, 5);
}

static void bytes_after_head_ignored(void **state)
{
    (void)state;
    char s[512];
    snprintf(s, sizeof(s), "%sGET / HTTP/1.1\r\n", k_upgrade);
    gw_http_req req;
    assert_int_equal(parse(&req, s), GW_HTTP_OK);
    assert_int_equal(req.head_len, strlen(k_upgrade));
}

static void head_of_8k_is_431(void **state)
{
    (void)state;
    char *s = malloc(GW_HTTP_MAX_HEAD + 16);
    strcpy(s, "GET / HTTP/1.1\r\nX-Pad: ");
    size_t n = strlen(s);
    memset(s + n, 'a', GW_HTTP_MAX_HEAD + 16 - n);
    gw_http_req req;
    assert_int_equal(gw_http_parse(&req, s, GW_HTTP_MAX_HEAD - 1), GW_HTTP_INCOMPLETE);
    assert_int_equal(gw_http_parse(&req, s, GW_HTTP_MAX_HEAD), GW_HTTP_E_TOO_LARGE);
    assert_int_equal(gw_http_parse(&req, s, GW_HTTP_MAX_HEAD + 16), GW_HTTP_E_TOO_LARGE);
    free(s);
}

static void head_of_exactly_8k_accepted(void **state)
{
    (void)state;
    char *s = malloc(GW_HTTP_MAX_HEAD + 1);
    strcpy(s, "GET / HTTP/1.1\r\nX-Pad: ");
    size_t n = strlen(s);
    memset(s + n, 'a', GW_HTTP_MAX_HEAD - n - 4);
    memcpy(s + GW_HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
    gw_http_req req;
    assert_int_equal(gw_http_parse(&req, s, GW_HTTP_MAX_HEAD), GW_HTTP_OK);
    assert_int_equal(req.head_len, GW_HTTP_MAX_HEAD);
    free(s);
}

static void too_many_headers_is_431(void **state)
{
    (void)state;
    char s[4096];
    size_t n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < GW_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "X-%d: v\r\n", i);
    strcpy(s + n, "\r\n");
    gw_http_req req;
    assert_int_equal(parse(&req, s), GW_HTTP_OK);
    assert_int_equal(req.n_headers, GW_HTTP_MAX_HEADERS);
    strcpy(s + n, "X-last: v\r\n\r\n");
    assert_int_equal(parse(&req, s), GW_HTTP_E_TOO_LARGE);
}

static void bare_lf_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET / HTTP/1.1\nHost: a\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\n\r\n"), GW_HTTP_E_BAD);
    /* Refused before any CRLFCRLF, so a bare-LF client is not left waiting. */
    assert_int_equal(parse_status("GET / HTTP/1.1\n\n"), GW_HTTP_E_BAD);
}

static void bare_cr_and_controls_are_400(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET /a\x01 HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    gw_http_req req;
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(gw_http_parse(&req, nul, sizeof(nul) - 1), GW_HTTP_E_BAD);
    /* obs-text is allowed in values */
    assert_int_equal(parse(&req, "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"), GW_HTTP_OK);
}

static void bad_header_name_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nName : v\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\n: v\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nNa(me: v\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), GW_HTTP_E_BAD);
}

static void obs_fold_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), GW_HTTP_E_BAD);
}

static void duplicate_content_length_is_400(void **state)
{
    (void)state;
    assert_int_equal(
        parse_status("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
        GW_HTTP_E_BAD);
    assert_int_equal(
        parse_status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        GW_HTTP_E_BAD);
}

static void malformed_content_length_is_400(void **state)
{
    (void)state;
    const char *bad[] = {"", "+5", "-1", "5 5", "5,5", "0x10", "1e3", "5a"};
    char s[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad[i]);
        assert_int_equal(parse_status(s), GW_HTTP_E_BAD);
    }
}

static void content_length_over_4096_is_413(void **state)
{
    (void)state;
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n"),
                     GW_HTTP_E_BODY_TOO_LARGE);
    /* Far beyond any integer type: saturates, never overflows. */
    assert_int_equal(
        parse_status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999999\r\n\r\n"),
        GW_HTTP_E_BODY_TOO_LARGE);
}

static void transfer_encoding_is_501(void **state)
{
    (void)state;
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                     GW_HTTP_E_NOT_IMPL);
    assert_int_equal(
        parse_status("POST / HTTP/1.1\r\nContent-Length: 3\r\ntransfer-encoding: gzip\r\n\r\n"),
        GW_HTTP_E_NOT_IMPL);
}

static void bad_version_is_505(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET / HTTP/2.0\r\n\r\n"), GW_HTTP_E_VERSION);
    assert_int_equal(parse_status("GET / HTTP/1.2\r\n\r\n"), GW_HTTP_E_VERSION);
    assert_int_equal(parse_status("GET / HTTP/0.9\r\n\r\n"), GW_HTTP_E_VERSION);
    /* not a version at all */
    assert_int_equal(parse_status("GET / HTTP/1.1x\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / http/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET /\r\n\r\n"), GW_HTTP_E_BAD);
}

static void bad_request_line_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET * HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET http://a/ HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET  / HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET / x HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("GET /#frag HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status(" GET / HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n\r\n"), GW_HTTP_E_BAD);
    assert_int_equal(parse_status("ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n"), GW_HTTP_OK);
}

static void duplicate_host_is_400(void **state)
{
    (void)state;
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), GW_HTTP_E_BAD);
}

static void keep_alive_follows_version_and_connection(void **state)
{
    (void)state;
    gw_http_req req;
    assert_int_equal(parse(&req, "GET / HTTP/1.1\r\n\r\n"), GW_HTTP_OK);
    assert_true(req.keep_alive);
    assert_int_equal(parse(&req, "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"), GW_HTTP_OK);
    assert_false(req.keep_alive);
    assert_int_equal(parse(&req, "GET / HTTP/1.0\r\n\r\n"), GW_HTTP_OK);
    assert_int_equal(req.minor_version, 0);
    assert_false(req.keep_alive);
    assert_int_equal(parse(&req, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), GW_HTTP_OK);
    assert_true(req.keep_alive);
    assert_int_equal(parse(&req, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"),
                     GW_HTTP_OK);
    assert_false(req.keep_alive);
}

static void header_lookup_is_case_insensitive(void **state)
{
    (void)state;
    gw_http_req req;
    assert_int_equal(parse(&req, k_upgrade), GW_HTTP_OK);
    const gw_http_header *h = gw_http_find(&req, "sec-websocket-key");
    assert_non_null(h);
    assert_span(h->value, h->value_len, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_null(gw_http_find(&req, "Sec-WebSocket-Protocol"));
    assert_null(gw_http_find(&req, "Hos"));
}

static void token_lists_match_whole_tokens(void **state)
{
    (void)state;
    gw_http_req req;
    assert_int_equal(parse(&req, k_upgrade), GW_HTTP_OK);
    const gw_http_header *c = gw_http_find(&req, "Connection");
    assert_true(gw_http_has_token(c, "upgrade"));
    assert_true(gw_http_has_token(c, "Keep-Alive"));
    assert_false(gw_http_has_token(c, "keep"));
    assert_false(gw_http_has_token(c, "close"));
    assert_false(gw_http_has_token(NULL, "close"));
    assert_int_equal(parse(&req, "GET / HTTP/1.1\r\nX: ,a ,, tessera.v1\t, b,\r\n\r\n"),
                     GW_HTTP_OK);
    const gw_http_header *x = gw_http_find(&req, "x");
    assert_true(gw_http_has_token(x, "tessera.v1"));
    assert_true(gw_http_has_token(x, "a"));
    assert_true(gw_http_has_token(x, "b"));
    assert_false(gw_http_has_token(x, "tessera"));
}

static void query_params_are_percent_decoded(void **state)
{
    (void)state;
    gw_http_req req;
    char out[64];
    assert_int_equal(parse(&req, "GET /ws?a=1&token=x%2Ey%2fz%41+b&empty=&flag HTTP/1.1\r\n\r\n"),
                     GW_HTTP_OK);
    assert_int_equal(gw_http_query_param(&req, "token", out, sizeof(out)), 8);
    assert_string_equal(out, "x.y/zA+b");
    assert_int_equal(gw_http_query_param(&req, "a", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(gw_http_query_param(&req, "empty", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(gw_http_query_param(&req, "flag", out, sizeof(out)), 0);
    assert_int_equal(gw_http_query_param(&req, "missing", out, sizeof(out)), -1);
    assert_int_equal(gw_http_query_param(&req, "tok", out, sizeof(out)), -1);
}

static void query_param_errors(void **state)
{
    (void)state;
    gw_http_req req;
    char out[64];
    assert_int_equal(parse(&req, "GET /ws HTTP/1.1\r\n\r\n"), GW_HTTP_OK);
    assert_int_equal(gw_http_query_param(&req, "token", out, sizeof(out)), -1);
    assert_int_equal(parse(&req, "GET /ws?a=%4&b=%zz&c=%00&d=abcd&e=% HTTP/1.1\r\n\r\n"),
                     GW_HTTP_OK);
    assert_int_equal(gw_http_query_param(&req, "a", out, sizeof(out)), -2);
    assert_int_equal(gw_http_query_param(&req, "b", out, sizeof(out)), -2);
    assert_int_equal(gw_http_query_param(&req, "c", out, sizeof(out)), -2);
    assert_int_equal(gw_http_query_param(&req, "e", out, sizeof(out)), -2);
    assert_int_equal(gw_http_query_param(&req, "d", out, 4), -2); /* needs 5 with the NUL */
    assert_int_equal(gw_http_query_param(&req, "d", out, 5), 4);
    assert_int_equal(gw_http_query_param(&req, "d", out, 0), -2);
}

static void respond_writes_a_full_response(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    gw_http_respond(&b, 404, "text/plain", "nope", 4, true, NULL);
    const char *want = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 4\r\nConnection: keep-alive\r\n\r\nnope";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);

    core_buf_reset(&b);
    gw_http_respond(&b, 426, NULL, NULL, 0, false, "Sec-WebSocket-Version: 13\r\n");
    want = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    core_buf_free(&b);
}

static void reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(gw_http_reason(200), "OK");
    assert_string_equal(gw_http_reason(101), "Switching Protocols");
    assert_string_equal(gw_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(gw_http_reason(599), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_upgrade_parses),
        cmocka_unit_test(post_with_body_parses),
        cmocka_unit_test(content_length_at_limit_accepted),
        cmocka_unit_test(whitespace_trimmed_from_values),
        cmocka_unit_test(byte_by_byte_is_incomplete_until_crlfcrlf),
        cmocka_unit_test(bytes_after_head_ignored),
        cmocka_unit_test(head_of_8k_is_431),
        cmocka_unit_test(head_of_exactly_8k_accepted),
        cmocka_unit_test(too_many_headers_is_431),
        cmocka_unit_test(bare_lf_is_400),
        cmocka_unit_test(bare_cr_and_controls_are_400),
        cmocka_unit_test(bad_header_name_is_400),
        cmocka_unit_test(obs_fold_is_400),
        cmocka_unit_test(duplicate_content_length_is_400),
        cmocka_unit_test(malformed_content_length_is_400),
        cmocka_unit_test(content_length_over_4096_is_413),
        cmocka_unit_test(transfer_encoding_is_501),
        cmocka_unit_test(bad_version_is_505),
        cmocka_unit_test(bad_request_line_is_400),
        cmocka_unit_test(duplicate_host_is_400),
        cmocka_unit_test(keep_alive_follows_version_and_connection),
        cmocka_unit_test(header_lookup_is_case_insensitive),
        cmocka_unit_test(token_lists_match_whole_tokens),
        cmocka_unit_test(query_params_are_percent_decoded),
        cmocka_unit_test(query_param_errors),
        cmocka_unit_test(respond_writes_a_full_response),
        cmocka_unit_test(reason_phrases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
