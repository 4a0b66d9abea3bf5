/* bots_cli.c - `tessera bots`: flags, the loopback-only target check,
 * --print-server-args, and the worker processes of a large run.
 *
 * With --procs K > 1 the parent forks K workers that split the N bots in
 * contiguous id ranges and share one start time. Each worker sends
 * progress records and, at its end, its whole bots_stats through a pipe
 * (same binary, so the struct travels as bytes); the parent prints the
 * combined progress, samples the server's /proc at the window's edges,
 * and merges the statistics. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bots.h"
#include "bots_int.h"
#include "core_time.h"

#define BOTS_PER_PROC_MAX 19000u /* open-file limit 20,000 per process */
#define BOTS_PER_PROC_AUTO 18000u
#define BOTS_PORTS_PER_ADDR 16000u /* of ~28k ephemeral ports, leaving room for TIME_WAIT */
#define W1_AREA_PER_PLAYER 785.0   /* WORKLOADS.md: L = sqrt(N * 785) */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tessera bots [flags]\n"
        "Load generator speaking the public protocol (docs/protocol.md); loopback only.\n\n"
        "  --workload w1|w2|w3|w6   W1 moving crowd (default), W2 idle, W3 hotspot, W6 login "
        "storm\n"
        "  --clients N              bots (default 100)\n"
        "  --ramp S                 spread connects over S seconds (default 10; W6 0)\n"
        "  --settle S               wait after the ramp before measuring (default 1; W6 0;\n"
        "                           W3: its free phase plus the walk to the centre)\n"
        "  --duration S             measured window (default 30; W6: limit, 60)\n"
        "  --target HOST:PORT       server (default 127.0.0.1:8080; 127.0.0.0/8, ::1, localhost)\n"
        "  --server-pid PID         sample the server's CPU time and RSS from /proc\n"
        "  --json FILE              write every figure as JSON\n"
        "  --seed N                 headings and names (default 1)\n"
        "  --procs K                worker processes (default: N / 18000, rounded up)\n"
        "  --source-addrs A[-B]     bind to 127.0.0.x source addresses (e.g. 127.0.0.1-127.0.0.8)\n"
        "  --jwt-secret S           mint HS256 tokens for a server run with the same secret\n"
        "  --login                  POST /api/login per bot (argon2id: ~15 ms of server CPU each)\n"
        "  --password P             password for --login (default \"bots-password\")\n"
        "  --name-prefix P          usernames are P-<id> (default \"bot\")\n"
        "  --view-slots N           slot table size per bot (default 256)\n"
        "  --input-hz N             inputs per second per bot (default 20)\n"
        "  --connect-timeout S      connect+auth+WELCOME limit per bot (default 15; W6: duration)\n"
        "  --quiet                  no progress line\n"
        "  --print-server-args      print the `tessera serve` flags the workload needs and exit\n"
        "Default auth: --jwt-secret when given, else --login.\n");
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 0;
}

/* Accepts HOST:PORT, [V6]:PORT; only loopback hosts. */
static int parse_target(bots_opts *o, const char *v)
{
    char host[64];
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof host) {
        fprintf(stderr, "tessera bots: --target must be HOST:PORT, got '%s'\n", v);
        return -1;
    }
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = 0;
    double port;
    if (parse_num(colon + 1, 1, 65535, &port) != 0) {
        fprintf(stderr, "tessera bots: bad port in --target '%s'\n", v);
        return -1;
    }
    char *h = host;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        h[hl - 1] = 0;
        h++;
    }
    memset(&o->dst, 0, sizeof o->dst);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&o->dst;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&o->dst;
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
            goto refuse;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        o->dst_len = sizeof *a4;
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
            goto refuse;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        o->dst_len = sizeof *a6;
    } else {
        goto refuse;
    }
    snprintf(o->host, sizeof o->host, "%s", v);
    return 0;
refuse:
    fprintf(stderr,
            "tessera bots: refusing target '%s': only loopback targets (127.0.0.0/8, ::1, "
            "localhost) are allowed; this machine must not send load elsewhere\n",
            v);
    return -1;
}

static int parse_src(bots_opts *o, const char *v)
{
    char a[32] = "", b[32] = "";
    const char *dash = strchr(v, '-');
    size_t n = dash ? (size_t)(dash - v) : strlen(v);
    if (n >= sizeof a || (dash && strlen(dash + 1) >= sizeof b))
        goto bad;
    memcpy(a, v, n);
    snprintf(b, sizeof b, "%s", dash ? dash + 1 : a);
    struct in_addr ia, ib;
    if (inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1)
        goto bad;
    uint32_t lo = ntohl(ia.s_addr), hi = ntohl(ib.s_addr);
    if (lo > hi || (lo >> 24) != 127 || (hi >> 24) != 127 || hi - lo >= 65536)
        goto bad;
    o->src_first = lo;
    o->n_src = hi - lo + 1;
    return 0;
bad:
    fprintf(stderr, "tessera bots: --source-addrs wants 127.x.y.z[-127.x.y.z], got '%s'\n", v);
    return -1;
}

/* Parses argv into o. Returns 0, 1 for --help, -1 on a usage error. */
static int parse_args(bots_opts *o, int argc, char **argv, bool *print_args)
{
    memset(o, 0, sizeof *o);
    o->n_clients = 100;
    o->ramp_s = o->settle_s = o->duration_s = o->connect_timeout_s = -1;
    o->seed = 1;
    o->view_slots = 256;
    o->input_hz = 20;
    o->progress_fd = -1;
    snprintf(o->name_prefix, sizeof o->name_prefix, "bot");
    snprintf(o->password, sizeof o->password, "bots-password");
    bool has_login = false;
    if (parse_target(o, "127.0.0.1:8080") != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        char key[64];
        const char *a = argv[i], *v = NULL;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "tessera bots: unexpected argument '%s'\n", a);
            return -1;
        }
        const char *eq = strchr(a, '=');
        size_t kl = eq ? (size_t)(eq - a) : strlen(a);
        snprintf(key, sizeof key, "%.*s", (int)(kl < sizeof key ? kl : sizeof key - 1), a);
        if (strcmp(key, "--help") == 0)
            return 1;
        if (strcmp(key, "--login") == 0) {
            has_login = true;
            continue;
        }
        if (strcmp(key, "--quiet") == 0) {
            o->is_quiet = true;
            continue;
        }
        if (strcmp(key, "--print-server-args") == 0) {
            *print_args = true;
            continue;
        }
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            fprintf(stderr, "tessera bots: %s needs a value\n", key);
            return -1;
        }
        double d = 0;
        int bad = 0;
        if (strcmp(key, "--workload") == 0) {
            static const char *const names[] = {"w1", "w2", "w3", "w6"};
            static const bots_workload ws[] = {BOTS_W1, BOTS_W2, BOTS_W3, BOTS_W6};
            bad = 1;
            for (int k = 0; k < 4; k++)
                if (strcasecmp(v, names[k]) == 0) {
                    o->workload = ws[k];
                    bad = 0;
                }
        } else if (strcmp(key, "--clients") == 0) {
            bad = parse_num(v, 1, 1000000, &d);
            o->n_clients = (uint32_t)d;
        } else if (strcmp(key, "--ramp") == 0) {
            bad = parse_num(v, 0, 3600, &o->ramp_s);
        } else if (strcmp(key, "--settle") == 0) {
            bad = parse_num(v, 0, 600, &o->settle_s);
        } else if (strcmp(key, "--duration") == 0) {
            bad = parse_num(v, 0.1, 3600, &o->duration_s);
        } else if (strcmp(key, "--connect-timeout") == 0) {
            bad = parse_num(v, 0.1, 3600, &o->connect_timeout_s);
        } else if (strcmp(key, "--target") == 0) {
            if (parse_target(o, v) != 0)
                return -1;
        } else if (strcmp(key, "--server-pid") == 0) {
            bad = parse_num(v, 1, 1 << 30, &d);
            o->server_pid = (int)d;
        } else if (strcmp(key, "--json") == 0) {
            bad = strlen(v) >= sizeof o->json_path;
            snprintf(o->json_path, sizeof o->json_path, "%s", v);
        } else if (strcmp(key, "--seed") == 0) {
            o->seed = strtoull(v, NULL, 10);
        } else if (strcmp(key, "--procs") == 0) {
            bad = parse_num(v, 1, 64, &d);
            o->procs = (int)d;
        } else if (strcmp(key, "--source-addrs") == 0) {
            if (parse_src(o, v) != 0)
                return -1;
        } else if (strcmp(key, "--jwt-secret") == 0) {
            bad = !*v || strlen(v) >= sizeof o->jwt_secret;
            snprintf(o->jwt_secret, sizeof o->jwt_secret, "%s", v);
        } else if (strcmp(key, "--password") == 0) {
            bad = strlen(v) < 6 || strlen(v) >= sizeof o->password || strpbrk(v, "\"\\") != NULL;
            snprintf(o->password, sizeof o->password, "%s", v);
        } else if (strcmp(key, "--name-prefix") == 0) {
            bad = !*v || strlen(v) >= sizeof o->name_prefix ||
                  strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                      strlen(v);
            snprintf(o->name_prefix, sizeof o->name_prefix, "%s", v);
        } else if (strcmp(key, "--view-slots") == 0) {
            bad = parse_num(v, 8, 1024, &d);
            o->view_slots = (uint32_t)d;
        } else if (strcmp(key, "--input-hz") == 0) {
            bad = parse_num(v, 1, 60, &d);
            o->input_hz = (int)d;
        } else {
            fprintf(stderr, "tessera bots: unknown flag '%s' (try --help)\n", key);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "tessera bots: bad value '%s' for %s\n", v, key);
            return -1;
        }
    }
    bool is_w6 = o->workload == BOTS_W6;
    if (o->ramp_s < 0)
        o->ramp_s = is_w6 ? 0 : 10;
    if (o->settle_s < 0 && o->workload == BOTS_W3) {
        /* W3 measures the milling: its free phase and the walk to the
         * centre (half the world's diagonal at 50 units/s) come first */
        double side = sqrt((double)o->n_clients * W1_AREA_PER_PLAYER);
        o->settle_s = ceil(W3_FREE_S + side * 0.7072 / 50.0 + 3.0);
    }
    if (o->settle_s < 0)
        o->settle_s = is_w6 ? 0 : 1;
    if (o->duration_s < 0)
        o->duration_s = is_w6 ? 60 : 30;
    if (o->connect_timeout_s < 0)
        o->connect_timeout_s = is_w6 ? o->duration_s : 15;
    o->use_login = has_login || !o->jwt_secret[0];
    if (o->procs == 0)
        o->procs = (int)((o->n_clients + BOTS_PER_PROC_AUTO - 1) / BOTS_PER_PROC_AUTO);
    if ((o->n_clients + (uint32_t)o->procs - 1) / (uint32_t)o->procs > BOTS_PER_PROC_MAX) {
        fprintf(stderr, "tessera bots: at most %u bots per process; use --procs %u or more\n",
                BOTS_PER_PROC_MAX, (o->n_clients + BOTS_PER_PROC_MAX - 1) / BOTS_PER_PROC_MAX);
        return -1;
    }
    /* Enough source addresses for the ephemeral ports (a login uses a
     * second connection), unless chosen or the target is IPv6. */
    uint32_t conns = o->n_clients * (o->use_login ? 2u : 1u);
    if (o->n_src == 0 && o->dst.ss_family == AF_INET && conns > BOTS_PORTS_PER_ADDR) {
        o->src_first = 0x7f000001u;
        o->n_src = (conns + BOTS_PORTS_PER_ADDR - 1) / BOTS_PORTS_PER_ADDR;
    }
    if (o->n_src && o->dst.ss_family != AF_INET) {
        fprintf(stderr, "tessera bots: --source-addrs needs an IPv4 target\n");
        return -1;
    }
    return 0;
}

static void print_server_args(const bots_opts *o)
{
    /* W1 density for every workload (W3 starts as W1; W2 and W6 only need
     * room); at least one 256-unit cell. */
    int side = (int)ceil(sqrt((double)o->n_clients * W1_AREA_PER_PLAYER));
    if (side < 256)
        side = 256;
    uint32_t max_conns = o->n_clients + 100 > 19900 ? 19900 : o->n_clients + 100;
    printf("--world-w %d --world-h %d --npcs 0 --map-file= --shards 1 --max-conns %u", side, side,
           max_conns);
    if (!o->use_login)
        printf(" --jwt-secret %s", o->jwt_secret);
    printf("\n");
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Reads exactly n bytes (blocking). Returns 0, or -1 on EOF or error. */
static int read_full(int fd, void *p, size_t n)
{
    uint8_t *d = p;
    while (n > 0) {
        ssize_t r = read(fd, d, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

static void write_full(int fd, const void *p, size_t n)
{
    const uint8_t *d = p;
    while (n > 0) {
        ssize_t w = write(fd, d, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        d += w;
        n -= (size_t)w;
    }
}

static int worker_main(bots_opts *o, int wfd)
{
    bots_stats *st = malloc(sizeof *st);
    if (!st)
        abort();
    bots_stats_init(st);
    o->progress_fd = wfd;
    o->is_sampler = false;
    int rc = bots_run(o, st);
    uint32_t type = BOTS_MSG_STATS;
    write_full(wfd, &type, 4);
    write_full(wfd, st, sizeof *st);
    free(st);
    return rc == 0 ? 0 : 1;
}

/* Parent of K workers: progress, server samples, merge. Returns 0 when
 * every worker reported, else -1. */
static int run_workers(bots_opts *o, bots_stats *total)
{
    int k = o->procs;
    pid_t pids[64] = {0};
    struct pollfd pfd[64];
    bots_progress last[64];
    bool done[64] = {false};
    memset(last, 0, sizeof last);
    fflush(NULL);
    for (int i = 0; i < k; i++) {
        int p[2];
        if (pipe(p) != 0) {
            perror("tessera bots: pipe");
            return -1;
        }
        uint32_t per = o->n_clients / (uint32_t)k, extra = o->n_clients % (uint32_t)k;
        uint32_t first = per * (uint32_t)i + ((uint32_t)i < extra ? (uint32_t)i : extra);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            for (int j = 0; j < i; j++)
                close(pfd[j].fd);
            o->first_bot = first;
            o->n_local = per + ((uint32_t)i < extra ? 1 : 0);
            _exit(worker_main(o, p[1]));
        }
        close(p[1]);
        if (pid < 0) {
            perror("tessera bots: fork");
            close(p[0]);
            return -1;
        }
        pids[i] = pid;
        pfd[i] = (struct pollfd){.fd = p[0], .events = POLLIN};
    }
    bool is_w6 = o->workload == BOTS_W6;
    uint64_t win_start = is_w6 ? o->t0_ns : o->t0_ns + (uint64_t)((o->ramp_s + o->settle_s) * 1e9);
    uint64_t win_end = win_start + (uint64_t)(o->duration_s * 1e9);
    bool has_start = false, has_end = false;
    uint64_t last_print = o->t0_ns, prev_states = 0;
    uint64_t tick_ns = isatty(2) ? 1000000000ull : 5000000000ull;
    int n_done = 0, rc = 0;
    while (n_done < k) {
        uint64_t now = core_now_ns();
        if (o->server_pid > 0 && !has_start && now >= win_start) {
            bots_server_sample_read(o->server_pid, &total->srv_start);
            has_start = true;
        }
        if (o->server_pid > 0 && !has_end && now >= win_end && !is_w6) {
            bots_server_sample_read(o->server_pid, &total->srv_end);
            has_end = true;
        }
        if (!o->is_quiet && now - last_print >= tick_ns) {
            bots_progress sum = {0};
            for (int i = 0; i < k; i++) {
                sum.n_connected += last[i].n_connected;
                sum.n_failed += last[i].n_failed;
                sum.states += last[i].states;
                sum.errors += last[i].errors;
                if (last[i].p99_us > sum.p99_us)
                    sum.p99_us = last[i].p99_us; /* the worst worker's p99 */
            }
            double dt = (double)(now - last_print) / 1e9;
            bots_progress_print(o, &sum, (double)(now - o->t0_ns) / 1e9,
                                (double)(sum.states - prev_states) / dt);
            prev_states = sum.states;
            last_print = now;
        }
        if (poll(pfd, (nfds_t)k, 100) <= 0)
            continue;
        for (int i = 0; i < k; i++) {
            if (done[i] || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            uint32_t type = 0;
            int r = read_full(pfd[i].fd, &type, 4);
            if (r == 0 && type == BOTS_MSG_PROGRESS)
                r = read_full(pfd[i].fd, &last[i], sizeof last[i]);
            else if (r == 0 && type == BOTS_MSG_STATS) {
                bots_stats *st = malloc(sizeof *st);
                if (!st)
                    abort();
                r = read_full(pfd[i].fd, st, sizeof *st);
                if (r == 0)
                    bots_stats_merge(total, st);
                free(st);
                if (r == 0) {
                    done[i] = true;
                    n_done++;
                    pfd[i].fd = -pfd[i].fd - 1; /* poll ignores negative fds */
                }
            } else {
                r = -1;
            }
            if (r != 0) {
                fprintf(stderr, "tessera bots: worker %d ended without a report\n", i);
                done[i] = true;
                n_done++;
                rc = -1;
            }
        }
    }
    if (o->server_pid > 0 && !has_end)
        bots_server_sample_read(o->server_pid, &total->srv_end);
    if (!o->is_quiet && isatty(2))
        fputc('\n', stderr);
    for (int i = 0; i < k; i++) {
        close(pfd[i].fd < 0 ? -pfd[i].fd - 1 : pfd[i].fd);
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
    }
    return rc;
}

int bots_main(int argc, char **argv)
{
    bots_opts o;
    bool print_args = false;
    int pr = parse_args(&o, argc, argv, &print_args);
    if (pr > 0) {
        usage(stdout);
        return 0;
    }
    if (pr < 0) {
        fprintf(stderr, "(tessera bots --help lists the flags)\n");
        return 2;
    }
    if (print_args) {
        print_server_args(&o);
        return 0;
    }
    raise_fd_limit();
    bots_server_sample before = {0}; /* the server as we found it: RSS growth from here */
    if (o.server_pid > 0) {
        if (bots_server_sample_read(o.server_pid, &before) != 0) {
            fprintf(stderr, "tessera bots: cannot read /proc/%d (--server-pid)\n", o.server_pid);
            return 2;
        }
    }
    bots_stats *st = malloc(sizeof *st);
    if (!st)
        abort();
    bots_stats_init(st);
    /* A little lead so forked workers start on the same schedule. */
    o.t0_ns = core_now_ns() + (o.procs > 1 ? 200000000ull : 10000000ull);
    int rc;
    if (o.procs == 1) {
        o.first_bot = 0;
        o.n_local = o.n_clients;
        o.is_sampler = true;
        rc = bots_run(&o, st);
    } else {
        rc = run_workers(&o, st);
    }
    st->srv_before = before;
    bots_report_print(&o, st, stdout);
    fflush(stdout);
    if (bots_report_json(&o, st) != 0)
        rc = -1;
    if (st->n_connected == 0)
        rc = -1;
    free(st);
    return rc == 0 ? 0 : 1;
}
