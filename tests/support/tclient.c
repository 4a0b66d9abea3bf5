/* tclient.c - test client, part 1: clock and randomness, server
 * processes (registry, watchdog, start/stop), sockets and HTTP. The
 * WebSocket client is in tclient_ws.c, the game protocol in
 * tclient_game.c; their shared helpers in tclient_int.h. */
#include "tclient.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tclient_int.h"

/* ================================================================== */
/* 1. Clock and randomness                                             */
/* ================================================================== */

uint64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Milliseconds left until deadline_ms, never negative. */
int ts__ms_left(uint64_t deadline_ms)
{
    uint64_t now = ts_now_ms();
    return now >= deadline_ms ? 0 : (int)(deadline_ms - now);
}

static uint64_t g_rng; /* xorshift64 state; seeded from getrandom on first use */

static uint64_t rng_next(void)
{
    if (g_rng == 0) {
        if (getrandom(&g_rng, sizeof g_rng, 0) != (ssize_t)sizeof g_rng || g_rng == 0)
            g_rng = ts_now_ms() * 2654435761u + (uint64_t)getpid();
    }
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

void ts__rng_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next() >> 24);
}

/* ================================================================== */
/* 2. Server processes                                                 */
/* ================================================================== */

#define TS_MAX_SERVERS 32

/* Read by the signal handler: pids only, as sig_atomic_t. */
static volatile sig_atomic_t g_pids[TS_MAX_SERVERS];
static char g_logs[TS_MAX_SERVERS][128]; /* log of every server started */
static int g_n_servers;
static char g_data_dirs[TS_MAX_SERVERS][64]; /* data folders made for servers */
static int g_n_data_dirs;
static bool g_atexit_done;

static void on_alarm(int sig);

static void kill_all_now(void)
{
    for (int i = 0; i < TS_MAX_SERVERS; i++) {
        pid_t pid = (pid_t)g_pids[i];
        if (pid > 0)
            kill(pid, SIGKILL);
    }
}

static void on_exit_cleanup(void)
{
    for (int i = 0; i < TS_MAX_SERVERS; i++) {
        pid_t pid = (pid_t)g_pids[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            g_pids[i] = 0;
        }
    }
}

static void install_cleanup(void)
{
    if (!g_atexit_done) {
        atexit(on_exit_cleanup);
        signal(SIGPIPE, SIG_IGN);
        g_atexit_done = true;
    }
}

void ts_watchdog(unsigned seconds)
{
    install_cleanup();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL); /* ctest's timeout: still kill the servers */
    sigaction(SIGINT, &sa, NULL);
    alarm(seconds);
}

static void reg_remove(pid_t pid)
{
    for (int i = 0; i < TS_MAX_SERVERS; i++)
        if (g_pids[i] == pid)
            g_pids[i] = 0;
}

static void dump_file(const char *path, size_t max_bytes)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size > max_bytes)
        lseek(fd, st.st_size - (off_t)max_bytes, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        ssize_t w = write(2, buf, (size_t)n);
        (void)w;
    }
    close(fd);
}

/* Async-signal-safe: kill, write, and dump_file's open/read/write. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "\n*** tclient watchdog: test timed out or killed; "
                              "killing servers. Their logs:\n";
    kill_all_now();
    ssize_t w = write(2, msg, sizeof msg - 1);
    for (int i = 0; i < g_n_servers; i++) {
        w = write(2, g_logs[i], strlen(g_logs[i]));
        w = write(2, ":\n", 2);
        dump_file(g_logs[i], 16 * 1024);
    }
    (void)w;
    _exit(3);
}

void ts_server_dump_log(const ts_server *s, size_t max_bytes)
{
    fprintf(stderr, "---- server log %s (port %d) ----\n", s->log_path, s->port);
    fflush(stderr);
    dump_file(s->log_path, max_bytes);
    fprintf(stderr, "---- end of server log ----\n");
}

/* Removes a data folder made by server_spawn (files only one level deep). */
static void remove_data_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

void ts_finish(int failed)
{
    on_exit_cleanup();
    bool keep = getenv("TESSERA_KEEP_LOGS") != NULL;
    for (int i = 0; i < g_n_servers; i++) {
        if (failed || keep) {
            fprintf(stderr, "---- server log %s ----\n", g_logs[i]);
            fflush(stderr);
            dump_file(g_logs[i], 64 * 1024);
            fprintf(stderr, "---- end of server log ----\n");
        }
        if (!keep)
            unlink(g_logs[i]);
    }
    for (int i = 0; i < g_n_data_dirs; i++)
        if (!keep)
            remove_data_dir(g_data_dirs[i]);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int status_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

bool ts_server_alive(ts_server *s, int *status_out)
{
    if (s->pid <= 0)
        return false;
    int ws;
    pid_t r = waitpid(s->pid, &ws, WNOHANG);
    if (r == 0)
        return true;
    if (status_out)
        *status_out = r == s->pid ? status_of(ws) : -1;
    reg_remove(s->pid);
    s->pid = 0;
    return false;
}

static int http_get_status(int port, const char *path, int timeout_ms)
{
    char req[256];
    int n =
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
    ts_http_resp r;
    int status = -1;
    if (ts_http_raw(port, req, (size_t)n, timeout_ms, &r) == 0)
        status = r.status;
    ts_http_resp_free(&r);
    return status;
}

/* One attempt: spawn on a fresh port and wait for /healthz. Returns 0,
 * -1 if the process exited (worth retrying), -2 on a hard failure. */
static int server_spawn(ts_server *s, const char *bin, const char *const extra_args[])
{
    s->port = free_port();
    if (s->port <= 0)
        return -2;
    snprintf(s->log_path, sizeof s->log_path, "/tmp/tessera-it-XXXXXX");
    int log_fd = mkstemp(s->log_path);
    if (log_fd < 0)
        return -2;
    if (g_n_servers < TS_MAX_SERVERS)
        snprintf(g_logs[g_n_servers++], sizeof g_logs[0], "%s", s->log_path);

    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", s->port);
    const char *argv[64];
    int argc = 0;
    argv[argc++] = bin;
    argv[argc++] = "serve";
    argv[argc++] = "--port";
    argv[argc++] = port_str;
    argv[argc++] = "--log-level";
    argv[argc++] = "warn";
    bool has_data_dir = false;
    for (int i = 0; extra_args && extra_args[i] && argc < 61; i++) {
        has_data_dir |= strncmp(extra_args[i], "--data-dir", 10) == 0;
        argv[argc++] = extra_args[i];
    }
    /* each server gets its own state (SQLite file, secret) unless the test
     * names a folder, e.g. to restart a server on the same data */
    char data_dir[64] = "";
    if (!has_data_dir) {
        snprintf(data_dir, sizeof data_dir, "/tmp/tessera-it-data-XXXXXX");
        if (!mkdtemp(data_dir)) {
            close(log_fd);
            return -2;
        }
        if (g_n_data_dirs < TS_MAX_SERVERS)
            snprintf(g_data_dirs[g_n_data_dirs++], sizeof g_data_dirs[0], "%s", data_dir);
        argv[argc++] = "--data-dir";
        argv[argc++] = data_dir;
    }
    argv[argc] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(log_fd);
        return -2;
    }
    if (pid == 0) {
        /* Die with the test process whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        execv(bin, (char *const *)argv);
        dprintf(2, "tclient: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(log_fd);
    s->pid = pid;
    for (int i = 0; i < TS_MAX_SERVERS; i++) {
        if (g_pids[i] == 0) {
            g_pids[i] = pid;
            break;
        }
    }

    uint64_t deadline = ts_now_ms() + 10000;
    while (ts_now_ms() < deadline) {
        if (!ts_server_alive(s, NULL))
            return -1;
        if (http_get_status(s->port, "/healthz", 1000) == 200)
            return 0;
        ts_sleep_ms(50);
    }
    fprintf(stderr, "tclient: server on port %d: /healthz not 200 within 10 s\n", s->port);
    ts_server_stop(s);
    return -2;
}

int ts_server_start(ts_server *s, const char *const extra_args[])
{
    install_cleanup();
    memset(s, 0, sizeof *s);
    const char *bin = getenv("TESSERA_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "tclient: TESSERA_BIN is not set\n");
        return -1;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        int r = server_spawn(s, bin, extra_args);
        if (r == 0)
            return 0;
        fprintf(stderr, "tclient: server failed to start (attempt %d)\n", attempt + 1);
        ts_server_dump_log(s, 4096);
        if (r == -2)
            break;
    }
    s->pid = 0;
    return -1;
}

int ts_server_wait_ready(const ts_server *s, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    do {
        if (http_get_status(s->port, "/readyz", 1000) == 200)
            return 0;
        ts_sleep_ms(50);
    } while (ts_now_ms() < deadline);
    return -1;
}

int ts_server_stop(ts_server *s)
{
    if (s->pid <= 0)
        return -1;
    pid_t pid = s->pid;
    int wstatus = 0;
    kill(pid, SIGTERM);
    uint64_t deadline = ts_now_ms() + 5000;
    pid_t r = 0;
    while ((r = waitpid(pid, &wstatus, WNOHANG)) == 0 && ts_now_ms() < deadline)
        ts_sleep_ms(10);
    if (r == 0) {
        fprintf(stderr, "tclient: server pid %d ignored SIGTERM for 5 s; SIGKILL\n", (int)pid);
        kill(pid, SIGKILL);
        r = waitpid(pid, &wstatus, 0);
    }
    reg_remove(pid);
    s->pid = 0;
    return r == pid ? status_of(wstatus) : -1;
}

int ts_server_stop_checked(ts_server *s)
{
    int died = -1;
    bool alive = ts_server_alive(s, &died);
    int port = s->port;
    if (!alive) {
        fprintf(stderr, "tclient: server on port %d died during the tests (status %d)\n", port,
                died);
        return -1;
    }
    int st = ts_server_stop(s);
    if (st != 0) {
        fprintf(stderr, "tclient: server on port %d exited with status %d on SIGTERM\n", port, st);
        return -1;
    }
    return 0;
}

/* ================================================================== */
/* 3. Sockets and HTTP                                                 */
/* ================================================================== */

int ts_tcp_connect(int port, int timeout_ms)
{
    return ts__tcp_connect_rcvbuf(port, timeout_ms, 0);
}

int ts__tcp_connect_rcvbuf(int port, int timeout_ms, int rcvbuf_bytes)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* Before connect, so the window scale and first window reflect it. */
    if (rcvbuf_bytes > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, timeout_ms) != 1)
            goto fail;
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)
            goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail:
    close(fd);
    return -1;
}

int ts_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const uint8_t *p = buf;
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int left = ts__ms_left(deadline);
            if (left == 0 || poll(&pf, 1, left) <= 0)
                return -1;
            if (pf.revents & (POLLERR | POLLHUP))
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Reads what is available into acc, waiting up to timeout_ms for the
 * first byte. Returns bytes read (> 0), 0 on timeout, -1 on EOF or reset. */
ssize_t ts__read_some(int fd, core_buf *acc, int timeout_ms, bool *is_reset)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int r;
    do {
        r = poll(&pf, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    uint8_t *dst = core_buf_reserve(acc, 65536);
    ssize_t n;
    do {
        n = recv(fd, dst, 65536, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        acc->len += (size_t)n;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0; /* spurious wakeup; the caller loops on its deadline */
    if (n < 0 && is_reset)
        *is_reset = errno == ECONNRESET;
    return -1;
}

int ts_wait_eof(int fd, int timeout_ms)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    core_buf b;
    core_buf_init(&b);
    int ret = -1;
    for (;;) {
        int left = ts__ms_left(deadline);
        if (left == 0)
            break;
        ssize_t n = ts__read_some(fd, &b, left, NULL);
        if (n < 0) {
            ret = 0;
            break;
        }
        b.len = 0;
    }
    core_buf_free(&b);
    return ret;
}

void ts_http_resp_free(ts_http_resp *r)
{
    if (!r)
        return;
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static const char *find_head_end(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return (const char *)p + i + 4;
    return NULL;
}

static int header_in(const char *head, const char *name, char *out, size_t cap)
{
    if (cap)
        out[0] = 0;
    size_t nlen = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line) {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol || eol == line)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t vl = (size_t)(e - v);
            if (cap) {
                size_t c = vl < cap - 1 ? vl : cap - 1;
                memcpy(out, v, c);
                out[c] = 0;
            }
            return (int)vl;
        }
        line = eol;
    }
    return -1;
}

int ts_http_header(const ts_http_resp *r, const char *name, char *out, size_t cap)
{
    if (!r->head) {
        if (cap)
            out[0] = 0;
        return -1;
    }
    return header_in(r->head, name, out, cap);
}

/* Reads one response from fd, accumulating in acc (which may already hold
 * bytes). On success *used says how many bytes of acc the response took;
 * the rest is left for the caller (the start of a WebSocket stream). */
/* No response: status 0 and empty strings, so callers may use head and
 * body without NULL checks. */
static void resp_empty(ts_http_resp *out, bool is_closed)
{
    memset(out, 0, sizeof *out);
    out->head = calloc(1, 1);
    out->body = calloc(1, 1);
    out->is_closed = is_closed;
}

int ts__http_read_acc(int fd, int timeout_ms, core_buf *acc, ts_http_resp *out, size_t *used)
{
    memset(out, 0, sizeof *out);
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    const char *end = NULL;
    bool eof = false;
    while (!(end = find_head_end(acc->data ? acc->data : (const uint8_t *)"", acc->len))) {
        int left = ts__ms_left(deadline);
        if (left == 0) {
            resp_empty(out, false);
            return -1;
        }
        ssize_t n = ts__read_some(fd, acc, left, NULL);
        if (n < 0) {
            resp_empty(out, true);
            return -1;
        }
    }
    size_t head_len = (size_t)(end - (const char *)acc->data);
    out->head = malloc(head_len + 1);
    memcpy(out->head, acc->data, head_len);
    out->head[head_len] = 0;
    int minor = 0, status = 0;
    if (sscanf(out->head, "HTTP/1.%d %d", &minor, &status) != 2)
        status = 0;

    char cl_buf[32];
    long cl = -1;
    if (header_in(out->head, "Content-Length", cl_buf, sizeof cl_buf) >= 0)
        cl = strtol(cl_buf, NULL, 10);
    bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    if (no_body)
        cl = 0;
    while (cl < 0 || acc->len < head_len + (size_t)cl) {
        int left = ts__ms_left(deadline);
        if (left == 0)
            break;
        ssize_t n = ts__read_some(fd, acc, left, NULL);
        if (n < 0) {
            eof = true;
            break;
        }
    }
    size_t avail = acc->len - head_len;
    size_t body_len = cl >= 0 && (size_t)cl < avail ? (size_t)cl : avail;
    out->body = malloc(body_len + 1);
    if (body_len)
        memcpy(out->body, acc->data + head_len, body_len);
    out->body[body_len] = 0;
    out->body_len = body_len;
    out->status = status;
    out->is_closed = eof;
    *used = head_len + body_len;
    return status > 0 ? 0 : -1;
}

int ts_http_read(int fd, int timeout_ms, ts_http_resp *out)
{
    core_buf acc;
    core_buf_init(&acc);
    size_t used = 0;
    int r = ts__http_read_acc(fd, timeout_ms, &acc, out, &used);
    core_buf_free(&acc);
    return r;
}

int ts_http_raw(int port, const void *req, size_t len, int timeout_ms, ts_http_resp *out)
{
    int fd = ts_tcp_connect(port, timeout_ms);
    if (fd < 0) {
        resp_empty(out, true);
        return -1;
    }
    /* A send failure is not final: the server may answer and close before
     * reading everything (an oversized head, say). */
    (void)ts_send_all(fd, req, len, timeout_ms);
    int r = ts_http_read(fd, timeout_ms, out);
    close(fd);
    return r;
}

int ts_http_request(int port, const char *method, const char *path, const char *headers,
                    const char *body, ts_http_resp *out)
{
    ts_http_resp local;
    ts_http_resp *r = out ? out : &local;
    core_buf b;
    core_buf_init(&b);
    char line[512];
    int n =
        snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n",
                 method, path, port);
    core_buf_append(&b, line, (size_t)n);
    if (headers)
        core_buf_append(&b, headers, strlen(headers));
    if (body) {
        n = snprintf(line, sizeof line, "Content-Length: %zu\r\n", strlen(body));
        core_buf_append(&b, line, (size_t)n);
    }
    core_buf_append(&b, "\r\n", 2);
    if (body)
        core_buf_append(&b, body, strlen(body));
    int ret = ts_http_raw(port, b.data, b.len, TS_TIMEOUT_MS, r);
    core_buf_free(&b);
    int status = ret == 0 ? r->status : -1;
    if (!out)
        ts_http_resp_free(&local);
    return status;
}

int ts_login(int port, const char *username, const char *password, char *token_out, size_t cap)
{
    if (cap)
        token_out[0] = 0;
    json_t *req = json_pack("{s:s, s:s}", "username", username, "password", password);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return -1;
    ts_http_resp r;
    int status =
        ts_http_request(port, "POST", "/api/login", "Content-Type: application/json\r\n", body, &r);
    free(body);
    if (status == 200) {
        json_error_t jerr;
        json_t *j = json_loadb(r.body, r.body_len, 0, &jerr);
        const char *tok = j ? json_string_value(json_object_get(j, "token")) : NULL;
        if (tok && strlen(tok) < cap)
            snprintf(token_out, cap, "%s", tok);
        else
            status = -1;
        json_decref(j);
    }
    ts_http_resp_free(&r);
    return status;
}

void ts_unique_name(const char *prefix, char *out, size_t cap)
{
    static unsigned counter;
    char suffix[32];
    int sl = snprintf(suffix, sizeof suffix, "_%d_%u", (int)(getpid() % 100000), ++counter);
    size_t room = 24 - (size_t)sl;
    if (cap < 25)
        room = cap > (size_t)sl + 1 ? cap - (size_t)sl - 1 : 0;
    size_t k = 0;
    for (size_t i = 0; prefix[i] && k < room; i++) {
        char c = prefix[i];
        out[k++] = (isalnum((unsigned char)c) || c == '_' || c == '-') ? c : '_';
    }
    if (k == 0 && room > 0)
        out[k++] = 'u';
    snprintf(out + k, cap - k, "%s", suffix);
}
