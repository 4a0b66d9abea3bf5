/* pg_server.c - a private PostgreSQL server per test process (see
 * pg_server.h). Children are started with fork + exec; between the two
 * only async-signal-safe calls are made, since the test may already run
 * threads (a store thread during a restart). */
#include "pg_server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TS_PG_MAX 4          /* servers alive at once in one process */
#define TS_PG_START_MS 30000 /* time for the server to accept connections */

struct ts_pg {
    char bin[256];  /* folder of initdb and postgres */
    char dir[256];  /* temporary folder: data/, log, socket */
    char data[300]; /* dir/data */
    char log[300];  /* dir/server.log */
    int port;
    pid_t pid; /* the postmaster, 0 when stopped */
    uid_t uid; /* runs as; -1 when not switching user */
    gid_t gid;
};

static ts_pg *registry[TS_PG_MAX];
static int atexit_armed;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int find_bin(char *out, size_t cap)
{
    const char *env = getenv("TS_PG_BIN");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    for (int v = 17; v >= 12; v--) {
        snprintf(out, cap, "/usr/lib/postgresql/%d/bin", v);
        char probe[300];
        snprintf(probe, sizeof probe, "%s/postgres", out);
        if (access(probe, X_OK) == 0)
            return 0;
    }
    if (access("/usr/bin/initdb", X_OK) == 0 && access("/usr/bin/postgres", X_OK) == 0) {
        snprintf(out, cap, "/usr/bin");
        return 0;
    }
    return -1;
}

int ts_pg_available(void)
{
    char b[256];
    return find_bin(b, sizeof b) == 0;
}

static void print_log_tail(const ts_pg *pg)
{
    FILE *f = fopen(pg->log, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n > 3000 ? n - 3000 : 0, SEEK_SET);
    char buf[3001];
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = '\0';
    fclose(f);
    fprintf(stderr, "---- postgres log (%s) ----\n%s\n----\n", pg->log, buf);
}

/* fork + exec argv as pg's user, output appended to the log. In the child
 * only async-signal-safe calls. */
static pid_t spawn(const ts_pg *pg, char *const argv[], int is_server)
{
    int fd = open(pg->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (pg->uid != (uid_t)-1 && fchown(fd, pg->uid, pg->gid) != 0) {
        close(fd);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        if (pg->uid != (uid_t)-1 &&
            (setgroups(0, NULL) != 0 || setgid(pg->gid) != 0 || setuid(pg->uid) != 0))
            _exit(126);
        /* Set after the user switch, which clears it: the server dies with
         * the test (SIGQUIT is PostgreSQL's immediate shutdown). */
        if (is_server)
            prctl(PR_SET_PDEATHSIG, SIGQUIT);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    return pid;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void conninfo(const ts_pg *pg, const char *db, char *out, size_t cap)
{
    snprintf(out, cap, "postgresql://tessera@127.0.0.1:%d/%s?connect_timeout=2", pg->port, db);
}

static int launch(ts_pg *pg)
{
    char exe[300], port[16], sock[300];
    snprintf(exe, sizeof exe, "%s/postgres", pg->bin);
    snprintf(port, sizeof port, "%d", pg->port);
    snprintf(sock, sizeof sock, "unix_socket_directories=%s", pg->dir);
    char *argv[] = {exe,
                    "-D",
                    pg->data,
                    "-p",
                    port,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    sock,
                    "-c",
                    "max_wal_size=2GB",
                    "-c",
                    "max_connections=60",
                    NULL};
    pg->pid = spawn(pg, argv, 1);
    if (pg->pid < 0) {
        pg->pid = 0;
        return -1;
    }
    char url[200];
    conninfo(pg, "postgres", url, sizeof url);
    uint64_t deadline = now_ms() + TS_PG_START_MS;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pg->pid, &status, WNOHANG) == pg->pid) {
            fprintf(stderr, "pg_server: postgres exited during start (status %d)\n", status);
            pg->pid = 0;
            print_log_tail(pg);
            return -1;
        }
        if (PQping(url) == PQPING_OK)
            return 0;
        sleep_ms(50);
    }
    fprintf(stderr, "pg_server: postgres not ready after %d ms\n", TS_PG_START_MS);
    print_log_tail(pg);
    return -1;
}

/* Stops the postmaster with sig and waits up to timeout_ms, then kills. */
static void halt(ts_pg *pg, int sig, int timeout_ms)
{
    if (pg->pid <= 0)
        return;
    kill(pg->pid, sig);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (waitpid(pg->pid, NULL, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pg->pid, SIGKILL);
            waitpid(pg->pid, NULL, 0);
            break;
        }
        sleep_ms(20);
    }
    pg->pid = 0;
}

static void remove_dir(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void cleanup_all(void)
{
    for (int i = 0; i < TS_PG_MAX; i++)
        if (registry[i])
            ts_pg_destroy(registry[i]);
}

/* Async-signal-safe: kill, fork/exec rm, write, _exit. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "pg_server: watchdog expired, stopping PostgreSQL\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    for (int i = 0; i < TS_PG_MAX; i++) {
        if (!registry[i])
            continue;
        if (registry[i]->pid > 0) {
            kill(registry[i]->pid, SIGQUIT);
            waitpid(registry[i]->pid, NULL, 0);
        }
        remove_dir(registry[i]->dir);
    }
    _exit(3);
}

void ts_pg_watchdog(unsigned seconds)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

ts_pg *ts_pg_start(void)
{
    ts_pg *pg = calloc(1, sizeof *pg);
    if (!pg)
        return NULL;
    pg->uid = (uid_t)-1;
    if (find_bin(pg->bin, sizeof pg->bin) != 0) {
        fprintf(stderr, "pg_server: PostgreSQL binaries not found "
                        "(scripts/install-deps.sh test installs them)\n");
        free(pg);
        return NULL;
    }
    snprintf(pg->dir, sizeof pg->dir, "/tmp/tessera-pg-XXXXXX");
    if (!mkdtemp(pg->dir)) {
        free(pg);
        return NULL;
    }
    int slot = -1;
    for (int i = 0; i < TS_PG_MAX && slot < 0; i++)
        if (!registry[i])
            slot = i;
    if (slot < 0) {
        fprintf(stderr, "pg_server: more than %d servers\n", TS_PG_MAX);
        rmdir(pg->dir);
        free(pg);
        return NULL;
    }
    registry[slot] = pg;
    if (!atexit_armed) {
        atexit(cleanup_all);
        atexit_armed = 1;
    }
    snprintf(pg->data, sizeof pg->data, "%s/data", pg->dir);
    snprintf(pg->log, sizeof pg->log, "%s/server.log", pg->dir);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_server: running as root needs the user postgres\n");
            goto fail;
        }
        pg->uid = pw->pw_uid;
        pg->gid = pw->pw_gid;
    }
    char exe[300];
    snprintf(exe, sizeof exe, "%s/initdb", pg->bin);
    char *argv[] = {exe,  "-D",   pg->data,      "-U", "tessera", "--auth=trust",
                    "-E", "UTF8", "--no-locale", "-N", NULL};
    pid_t pid = spawn(pg, argv, 0);
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pg_server: initdb failed (status %d)\n", status);
        print_log_tail(pg);
        goto fail;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        pg->port = free_port();
        if (pg->port > 0 && launch(pg) == 0)
            return pg;
    }
fail:
    ts_pg_destroy(pg);
    return NULL;
}

int ts_pg_stop(ts_pg *pg)
{
    halt(pg, SIGINT, 10000);
    return 0;
}

int ts_pg_restart(ts_pg *pg)
{
    if (pg->pid > 0)
        return 0;
    return launch(pg);
}

int ts_pg_createdb(ts_pg *pg, const char *name, char *url, size_t cap)
{
    char admin[200], sql[128];
    conninfo(pg, "postgres", admin, sizeof admin);
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pg_server: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "pg_server: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    conninfo(pg, name, url, cap);
    return ok ? 0 : -1;
}

void ts_pg_destroy(ts_pg *pg)
{
    if (!pg)
        return;
    halt(pg, SIGINT, 10000);
    remove_dir(pg->dir);
    for (int i = 0; i < TS_PG_MAX; i++)
        if (registry[i] == pg)
            registry[i] = NULL;
    free(pg);
}
