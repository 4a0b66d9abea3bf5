/* test_http_edge.c - the gateway's HTTP answers, good and hostile
 * requests, against a real `tessera serve` (docs/protocol.md sections 2,
 * 9 and 11). One server for the whole file, with a 1 s handshake timeout
 * so the slow-head test is quick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tclient.h"

static ts_server g_srv;

static int group_setup(void **state)
{
    (void)state;
    static char web_root[512];
    const char *src = getenv("TESSERA_SOURCE_DIR");
    snprintf(web_root, sizeof web_root, "%s/web", src ? src : ".");
    const char *args[] = {
        "--handshake-timeout-s", "1", "--shards", "2", "--npcs", "0", "--web-root", web_root, NULL};
    return ts_server_start(&g_srv, args);
}

/* cmocka 1.1 does not count a failed group teardown, so main does. */
static bool g_server_bad;

static int group_teardown(void **state)
{
    (void)state;
    g_server_bad = ts_server_stop_checked(&g_srv) != 0;
    return g_server_bad ? -1 : 0;
}

/* Sends req as is on a fresh connection; returns the status (0 if none). */
static int raw_status(const char *req, ts_http_resp *out)
{
    ts_http_resp local;
    ts_http_resp *r = out ? out : &local;
    ts_http_raw(g_srv.port, req, strlen(req), 3000, r);
    int st = r->status;
    if (!out)
        ts_http_resp_free(&local);
    return st;
}

/* Sends req, expects status want and then the connection closed. */
static void expect_status_and_close(const char *req, int want)
{
    int fd = ts_tcp_connect(g_srv.port, 2000);
    assert_true(fd >= 0);
    (void)ts_send_all(fd, req, strlen(req), 2000);
    ts_http_resp r;
    ts_http_read(fd, 3000, &r);
    if (r.status != want)
        print_error("request %.60s...: want %d, got %d\n", req, want, r.status);
    assert_int_equal(r.status, want);
    if (!r.is_closed)
        assert_int_equal(ts_wait_eof(fd, 2000), 0);
    ts_http_resp_free(&r);
    close(fd);
}

static void healthz_is_200_ok(void **state)
{
    (void)state;
    ts_http_resp r;
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/healthz", NULL, NULL, &r), 200);
    assert_true(strncmp(r.body, "ok", 2) == 0);
    ts_http_resp_free(&r);
}

static void readyz_is_200_ready_once_shards_tick(void **state)
{
    (void)state;
    assert_int_equal(ts_server_wait_ready(&g_srv, 5000), 0);
    ts_http_resp r;
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/readyz", NULL, NULL, &r), 200);
    assert_true(strncmp(r.body, "ready", 5) == 0);
    ts_http_resp_free(&r);
}

static void metrics_is_prometheus_text(void **state)
{
    (void)state;
    ts_http_resp r;
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/metrics", NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "tessera_connections"));
    char ct[128];
    assert_true(ts_http_header(&r, "Content-Type", ct, sizeof ct) > 0);
    assert_non_null(strstr(ct, "text/plain"));
    ts_http_resp_free(&r);
}

static void root_serves_index_html(void **state)
{
    (void)state;
    char path[512];
    const char *src = getenv("TESSERA_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/web/index.html", src ? src : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s is missing", path);
    static char want[1 << 20];
    size_t n = fread(want, 1, sizeof want, f);
    fclose(f);

    ts_http_resp r;
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/", NULL, NULL, &r), 200);
    assert_int_equal(r.body_len, n);
    assert_memory_equal(r.body, want, n);
    char ct[128];
    assert_true(ts_http_header(&r, "Content-Type", ct, sizeof ct) > 0);
    assert_non_null(strstr(ct, "text/html"));
    ts_http_resp_free(&r);
}

static void missing_file_is_404(void **state)
{
    (void)state;
    assert_int_equal(
        ts_http_request(g_srv.port, "GET", "/no-such-file-7f3a.html", NULL, NULL, NULL), 404);
}

static void path_traversal_is_refused(void **state)
{
    (void)state;
    static const char *const targets[] = {
        "/../etc/passwd",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/../../../../etc/passwd",
        "/./../etc/passwd",
        "/..\\..\\..\\etc\\passwd",
        "//etc/passwd",
        "/%00../etc/passwd",
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char req[512];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 targets[i]);
        ts_http_resp r;
        int st = raw_status(req, &r);
        if (!(st == 400 || st == 404))
            print_error("GET %s: want 400 or 404, got %d\n", targets[i], st);
        assert_true(st == 400 || st == 404);
        assert_null(strstr(r.body, "root:"));
        ts_http_resp_free(&r);
    }
}

static void wrong_methods_are_405(void **state)
{
    (void)state;
    assert_int_equal(ts_http_request(g_srv.port, "POST", "/healthz", NULL, "", NULL), 405);
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/api/login", NULL, NULL, NULL), 405);
    assert_int_equal(ts_http_request(g_srv.port, "DELETE", "/metrics", NULL, NULL, NULL), 405);
    assert_int_equal(ts_http_request(g_srv.port, "PUT", "/readyz", NULL, "", NULL), 405);
}

static void head_over_8k_is_431(void **state)
{
    (void)state;
    /* Just over the limit and sent in one write, so the server has it all
     * before answering (no reset from unread bytes). */
    static char req[8400];
    int n = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', 8250 - (size_t)n);
    snprintf(req + 8250, sizeof req - 8250, "\r\n\r\n");
    expect_status_and_close(req, 431);
    /* Many small headers adding up past the limit too. */
    static char req2[12000];
    n = snprintf(req2, sizeof req2, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; n < 8300; i++)
        n += snprintf(req2 + n, sizeof req2 - (size_t)n, "X-H%d: %040d\r\n", i, i);
    snprintf(req2 + n, sizeof req2 - (size_t)n, "\r\n");
    int st = raw_status(req2, NULL);
    assert_int_equal(st, 431);
}

static void malformed_request_line_is_400(void **state)
{
    (void)state;
    expect_status_and_close("GARBAGE\r\n\r\n", 400);
    expect_status_and_close("GET\r\n\r\n", 400);
    expect_status_and_close("GET /healthz\r\nHost: x\r\n\r\n", 400);
    expect_status_and_close("GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    expect_status_and_close("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", 400);
    expect_status_and_close("GET /healthz HTTP/1.1\r\nNa me: x\r\n\r\n", 400);
}

static void bare_lf_is_400(void **state)
{
    (void)state;
    expect_status_and_close("GET /healthz HTTP/1.1\nHost: x\n\n", 400);
    expect_status_and_close("GET /healthz HTTP/1.1\r\nHost: x\n\r\n", 400);
}

static void http2_is_505(void **state)
{
    (void)state;
    expect_status_and_close("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505);
}

static void chunked_is_501(void **state)
{
    (void)state;
    expect_status_and_close("POST /api/login HTTP/1.1\r\nHost: x\r\n"
                            "Content-Type: application/json\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                            501);
}

/* POSTs body to /api/login; returns the status, *r filled. */
static int login_raw(const char *body, ts_http_resp *r)
{
    return ts_http_request(g_srv.port, "POST", "/api/login", "Content-Type: application/json\r\n",
                           body, r);
}

static void expect_login_error(const char *body, int want, const char *want_error)
{
    ts_http_resp r;
    int st = login_raw(body, &r);
    if (st != want)
        print_error("login %s: want %d, got %d (%s)\n", body, want, st, r.body ? r.body : "");
    assert_int_equal(st, want);
    char want_json[64];
    snprintf(want_json, sizeof want_json, "\"%s\"", want_error);
    assert_non_null(strstr(r.body, want_json));
    char ct[128];
    assert_true(ts_http_header(&r, "Content-Type", ct, sizeof ct) > 0);
    assert_non_null(strstr(ct, "application/json"));
    ts_http_resp_free(&r);
}

static void login_rejects_bad_input(void **state)
{
    (void)state;
    expect_login_error("{not json", 400, "bad_request");
    expect_login_error("", 400, "bad_request");
    expect_login_error("[1,2]", 400, "bad_request");
    expect_login_error("{\"username\": \"alice_m\"}", 400, "bad_request");
    expect_login_error("{\"password\": \"secret12\"}", 400, "bad_request");
    expect_login_error("{\"username\": \"alice_s\", \"password\": \"12345\"}", 400, "bad_request");
    expect_login_error("{\"username\": \"al\", \"password\": \"secret12\"}", 400, "bad_request");
    expect_login_error("{\"username\": \"a b c\", \"password\": \"secret12\"}", 400, "bad_request");
    expect_login_error("{\"username\": 7, \"password\": \"secret12\"}", 400, "bad_request");
}

static void login_creates_then_checks_password(void **state)
{
    (void)state;
    char name[32], body[256];
    ts_unique_name("ada", name, sizeof name);
    snprintf(body, sizeof body, "{\"username\": \"%s\", \"password\": \"correct horse\"}", name);
    ts_http_resp r;
    assert_int_equal(login_raw(body, &r), 200);
    assert_non_null(strstr(r.body, "\"token\""));
    assert_non_null(strstr(r.body, "\"Bearer\""));
    assert_non_null(strstr(r.body, "\"expires_in\""));
    assert_non_null(strstr(r.body, name));
    ts_http_resp_free(&r);

    char token[TS_TOKEN_MAX];
    assert_int_equal(ts_login(g_srv.port, name, "correct horse", token, sizeof token), 200);
    assert_true(strlen(token) > 20);
    assert_int_equal(ts_login(g_srv.port, name, "wrong horse", token, sizeof token), 401);
    snprintf(body, sizeof body, "{\"username\": \"%s\", \"password\": \"wrong horse\"}", name);
    expect_login_error(body, 401, "invalid_credentials");
}

static void login_body_over_4096_is_413(void **state)
{
    (void)state;
    static char body[5200];
    int n = snprintf(body, sizeof body, "{\"username\": \"bigbody\", \"password\": \"");
    memset(body + n, 'p', 5000);
    snprintf(body + n + 5000, sizeof body - (size_t)n - 5000, "\"}");
    size_t blen = strlen(body);

    int fd = ts_tcp_connect(g_srv.port, 2000);
    assert_true(fd >= 0);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      blen);
    assert_int_equal(ts_send_all(fd, head, (size_t)hn, 2000), 0);
    /* The server may refuse on the Content-Length alone; if it waits for
     * the body, send it. */
    ts_http_resp r;
    if (ts_http_read(fd, 700, &r) != 0 && !r.is_closed) {
        (void)ts_send_all(fd, body, blen, 2000);
        ts_http_read(fd, 3000, &r);
    }
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "too_large"));
    ts_http_resp_free(&r);
    close(fd);
}

static void slow_head_is_closed_after_handshake_timeout(void **state)
{
    (void)state;
    int fd = ts_tcp_connect(g_srv.port, 2000);
    assert_true(fd >= 0);
    uint64_t t0 = ts_now_ms();
    const char *part = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(ts_send_all(fd, part, strlen(part), 1000), 0);
    /* Meanwhile another client is served at once. */
    uint64_t t1 = ts_now_ms();
    assert_int_equal(ts_http_request(g_srv.port, "GET", "/healthz", NULL, NULL, NULL), 200);
    assert_true(ts_now_ms() - t1 < 500);
    /* Keep trickling bytes that never finish the head: the deadline is for
     * the whole head, not per byte. */
    for (int i = 0; i < 4; i++) {
        ts_sleep_ms(150);
        (void)ts_send_all(fd, "X", 1, 200);
    }
    int r = ts_wait_eof(fd, 4000);
    uint64_t elapsed = ts_now_ms() - t0;
    close(fd);
    assert_int_equal(r, 0);
    if (elapsed > 2500 || elapsed < 800)
        print_error("slow head closed after %llu ms (handshake timeout 1 s)\n",
                    (unsigned long long)elapsed);
    assert_true(elapsed <= 2500);
    assert_true(elapsed >= 800);
}

static void keep_alive_serves_two_requests(void **state)
{
    (void)state;
    int fd = ts_tcp_connect(g_srv.port, 2000);
    assert_true(fd >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ts_send_all(fd, req, strlen(req), 1000), 0);
        ts_http_resp r;
        assert_int_equal(ts_http_read(fd, 2000, &r), 0);
        assert_int_equal(r.status, 200);
        assert_false(r.is_closed);
        ts_http_resp_free(&r);
    }
    /* Both requests pipelined in one write: two answers, in order. */
    char two[256];
    int n = snprintf(two, sizeof two, "%s%s", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                     "GET /nope-404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(ts_send_all(fd, two, (size_t)n, 1000), 0);
    /* ts_http_read discards what follows a response, so read both at once
     * and look at the bytes. */
    char buf[4096];
    size_t got = 0;
    uint64_t deadline = ts_now_ms() + 2000;
    while (got < sizeof buf - 1 && ts_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t k = read(fd, buf + got, sizeof buf - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = 0;
    char *first = strstr(buf, "HTTP/1.1 200");
    char *second = strstr(buf, "HTTP/1.1 404");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    close(fd);
}

int main(void)
{
    ts_watchdog(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthz_is_200_ok),
        cmocka_unit_test(readyz_is_200_ready_once_shards_tick),
        cmocka_unit_test(metrics_is_prometheus_text),
        cmocka_unit_test(root_serves_index_html),
        cmocka_unit_test(missing_file_is_404),
        cmocka_unit_test(path_traversal_is_refused),
        cmocka_unit_test(wrong_methods_are_405),
        cmocka_unit_test(head_over_8k_is_431),
        cmocka_unit_test(malformed_request_line_is_400),
        cmocka_unit_test(bare_lf_is_400),
        cmocka_unit_test(http2_is_505),
        cmocka_unit_test(chunked_is_501),
        cmocka_unit_test(login_rejects_bad_input),
        cmocka_unit_test(login_creates_then_checks_password),
        cmocka_unit_test(login_body_over_4096_is_413),
        cmocka_unit_test(slow_head_is_closed_after_handshake_timeout),
        cmocka_unit_test(keep_alive_serves_two_requests),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    failed += g_server_bad;
    ts_finish(failed);
    return failed;
}
