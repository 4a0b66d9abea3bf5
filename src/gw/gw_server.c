/* gw_server.c - the gateway's event loop.
 *
 * Divisions: metrics; per-address counts; the listener and accept
 * discipline; bus I/O (FRAMES, ROUTE in; JOIN/LEAVE/INPUTS out); the
 * loop (gw_run) and the timer sweep; create/destroy/stop.
 *
 * One loop round: epoll_wait; handle every event (accepts, reads, bus
 * batches, login results, the sweep); then send this round's INPUTS
 * batches (one bus message per shard), write every touched connection
 * once, and free the connections closed during the round. All client
 * writes happen in that end-of-round pass, so a tick's frames and any
 * control frames for a client leave in one syscall. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core_log.h"
#include "core_time.h"
#include "gw_acct.h"
#include "gw_int.h"

/* epoll data of the non-connection fds; connection events carry the
 * connection id (< 2^32). */
enum {
    TAG_LISTEN = 1,
    TAG_TIMER,
    TAG_STOP,
    TAG_BUS,
    TAG_LOGIN,
};
#define TAG(k) ((1ull << 32) | (uint64_t)(k))
#define MAX_EVENTS 1024
/* Jobs the login workers may hold (password logins are limited further,
 * see gw_login.c): a storm of 4,096 token holders upgrading at once is
 * queued, not refused. Ring memory is touched only as far as it is used. */
#define GW_LOGIN_QUEUE 4096

/* ---- metrics ---- */

static void metrics_register(gw *g)
{
    core_metrics *m = g->m;
    g->g_conns = core_metrics_gauge(m, "tessera_connections", "Open client sockets", NULL);
    g->g_sessions = core_metrics_gauge(m, "tessera_ws_sessions", "Open WebSocket sessions", NULL);
    g->c_accepted = core_metrics_counter(m, "tessera_connections_accepted_total",
                                         "Client sockets accepted", NULL);
    g->c_accept_paused =
        core_metrics_counter(m, "tessera_accept_paused_total",
                             "Times accepting stopped at the connection cap or the fd limit", NULL);
    g->c_msgs_in = core_metrics_counter(m, "tessera_ws_messages_in_total",
                                        "WebSocket data messages received", NULL);
    g->c_msgs_out = core_metrics_counter(m, "tessera_ws_messages_out_total",
                                         "WebSocket data messages sent", NULL);
    g->c_bytes_in =
        core_metrics_counter(m, "tessera_bytes_in_total", "Bytes read from client sockets", NULL);
    g->c_bytes_out =
        core_metrics_counter(m, "tessera_bytes_out_total", "Bytes written to client sockets", NULL);
    g->c_state_replaced =
        core_metrics_counter(m, "tessera_state_frames_replaced_total",
                             "Unsent STATE messages replaced by a newer one (latest wins)", NULL);
    g->c_frames_unknown = core_metrics_counter(m, "tessera_gw_frames_unknown_session_total",
                                               "Shard frames for sessions no longer open", NULL);
    for (int e = 1; e < PROTO_ERR_COUNT; e++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", proto_err_name((proto_err)e));
        g->c_rejected[e] = core_metrics_counter(m, "tessera_inputs_rejected_total",
                                                "Client records refused, by reason", labels);
    }
    /* Register the common codes so the series exist from the start. */
    static const int codes[] = {200, 101, 400, 404};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        gw_http_counter(g, codes[i]);
}

core_counter *gw_http_counter(gw *g, int status)
{
    if (status < 100 || status >= 600)
        status = 500;
    if (!g->c_http[status]) {
        char labels[32];
        snprintf(labels, sizeof labels, "code=\"%d\"", status);
        g->c_http[status] = core_metrics_counter(g->m, "tessera_http_requests_total",
                                                 "HTTP responses by status code", labels);
    }
    return g->c_http[status];
}

/* ---- per-address connection counts ---- */

static uint32_t addr_hash(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

/* Returns the slot holding key, or the empty slot where it would go. */
static uint32_t addr_find(const gw *g, const uint8_t key[16])
{
    uint32_t mask = g->n_addrs - 1, i = addr_hash(key) & mask;
    while (g->addrs[i].count && memcmp(g->addrs[i].key, key, 16) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Counts one more connection from key; returns false (nothing counted) if
 * the address is at its cap. */
static bool addr_acquire(gw *g, const uint8_t key[16])
{
    uint32_t i = addr_find(g, key);
    if (g->addrs[i].count >= (uint32_t)g->cfg.max_conns_per_addr)
        return false;
    if (!g->addrs[i].count)
        memcpy(g->addrs[i].key, key, 16);
    g->addrs[i].count++;
    return true;
}

void gw_addr_release(gw *g, const uint8_t key[16])
{
    uint32_t mask = g->n_addrs - 1, i = addr_find(g, key);
    if (!g->addrs[i].count)
        core_die("gw: releasing an address that holds no connection");
    if (--g->addrs[i].count)
        return;
    /* Backward-shift deletion keeps probe chains unbroken. */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!g->addrs[j].count)
            break;
        uint32_t home = addr_hash(g->addrs[j].key) & mask;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            g->addrs[i] = g->addrs[j];
            g->addrs[j].count = 0;
            i = j;
        }
    }
}

/* ---- listener ---- */

static int listener_open(gw *g)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a;
    memset(&a, 0, sizeof a);
    socklen_t alen;
    int family;
    if (inet_pton(AF_INET, g->cfg.bind_addr, &a.in4.sin_addr) == 1) {
        family = AF_INET;
        a.in4.sin_family = AF_INET;
        a.in4.sin_port = htons((uint16_t)g->cfg.port);
        alen = sizeof a.in4;
    } else if (inet_pton(AF_INET6, g->cfg.bind_addr, &a.in6.sin6_addr) == 1) {
        family = AF_INET6;
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons((uint16_t)g->cfg.port);
        alen = sizeof a.in6;
    } else {
        CORE_ERROR("gw", "bind_addr %s is not a numeric IPv4 or IPv6 address", g->cfg.bind_addr);
        return -1;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        CORE_ERROR("gw", "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, &a.sa, alen) != 0 || listen(fd, 4096) != 0) {
        CORE_ERROR("gw", "listen on %s:%d: %s", g->cfg.bind_addr, g->cfg.port, strerror(errno));
        close(fd);
        return -1;
    }
    alen = sizeof a;
    if (getsockname(fd, &a.sa, &alen) != 0) {
        close(fd);
        return -1;
    }
    g->port = ntohs(family == AF_INET ? a.in4.sin_port : a.in6.sin6_port);
    g->listen_fd = fd;
    return 0;
}

static void listener_pause(gw *g)
{
    if (!g->is_listening)
        return;
    epoll_ctl(g->ep_fd, EPOLL_CTL_DEL, g->listen_fd, NULL);
    g->is_listening = false;
    if (g->is_emfile && g->is_emfile_retry)
        return; /* still out of descriptors: counted and logged once */
    core_counter_add(g->c_accept_paused, 1);
    CORE_INFO("gw", "accept paused: %u connections open%s", g->n_conns,
              g->is_emfile ? " (out of file descriptors)" : "");
}

void gw_listener_resume(gw *g)
{
    if (g->is_listening || g->is_stopping || g->n_conns >= (uint32_t)g->cfg.max_conns ||
        g->n_free == 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG(TAG_LISTEN)};
    if (epoll_ctl(g->ep_fd, EPOLL_CTL_ADD, g->listen_fd, &ev) != 0)
        core_die("gw: epoll_ctl listener: %s", strerror(errno));
    g->is_listening = true;
    g->is_emfile = false;
}

static void addr_key(const struct sockaddr_storage *ss, uint8_t key[16], char *str, size_t cap)
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a->sin_addr, 4);
        inet_ntop(AF_INET, &a->sin_addr, str, (socklen_t)cap);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        memcpy(key, &a->sin6_addr, 16);
        inet_ntop(AF_INET6, &a->sin6_addr, str, (socklen_t)cap);
    }
}

static void on_accept(gw *g)
{
    for (;;) {
        /* n_free: slots of connections closed this round come back at
         * the reap, so at the cap a close frees a slot a round later */
        if (g->n_conns >= (uint32_t)g->cfg.max_conns || g->n_free == 0) {
            listener_pause(g);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays in the backlog; try again
                 * when one of ours closes or on the next sweep. */
                g->is_emfile = true;
                listener_pause(g);
                return;
            }
            CORE_WARN("gw", "accept: %s", strerror(errno));
            return;
        }
        core_counter_add(g->c_accepted, 1);
        g->is_emfile_retry = false;
        uint8_t key[16];
        char str[48] = "";
        addr_key(&ss, key, str, sizeof str);
        if (!addr_acquire(g, key)) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            core_counter_add(gw_http_counter(g, 503), 1);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gw_conn_new(g, fd, key, str);
    }
}

/* ---- bus ---- */

int gw_bus_send_shard(gw *g, uint16_t shard, const core_buf *msg)
{
    int rc = bus_send(g->b, BUS_EP_SHARD(shard), msg->data, msg->len);
    if (rc != BUS_OK) {
        CORE_WARN("gw", "bus send to shard %u failed (%d)", (unsigned)shard, rc);
        return -1;
    }
    return 0;
}

void gw_inputs_add(gw *g, uint16_t shard, const proto_bus_input *in)
{
    if (shard >= BUS_MAX_SHARDS)
        return;
    core_buf *b = &g->inputs[shard];
    if (!(g->inputs_used & (1ull << shard))) {
        core_buf_reset(b);
        proto_bus_inputs_begin(b, &g->inputs_count_at[shard]);
        g->inputs_used |= 1ull << shard;
    }
    proto_bus_inputs_add(b, g->inputs_count_at[shard], in);
}

static void inputs_flush(gw *g)
{
    while (g->inputs_used) {
        int s = __builtin_ctzll(g->inputs_used);
        g->inputs_used &= g->inputs_used - 1;
        gw_bus_send_shard(g, (uint16_t)s, &g->inputs[s]);
    }
}

static void bus_frames(gw *g, core_rd *r)
{
    uint32_t tick, count;
    uint16_t shard;
    if (proto_bus_frames_header(r, &tick, &shard, &count) != 0) {
        CORE_WARN("gw", "malformed FRAMES message");
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        proto_frame f;
        if (proto_bus_frame_read(r, &f) != 0) {
            CORE_WARN("gw", "malformed FRAMES item %u of %u", i, count);
            return;
        }
        gw_conn *c = gw_conn_find(g, f.session_id);
        if (!c || c->state != GW_CONN_WS) {
            core_counter_add(g->c_frames_unknown, 1);
            continue;
        }
        gw_conn_frame(g, c, &f);
    }
    gw_conn_extras_tick(g, shard);
}

static void bus_route(gw *g, core_rd *r)
{
    proto_route rt;
    if (proto_bus_route_read(r, &rt) != 0) {
        CORE_WARN("gw", "malformed ROUTE message");
        return;
    }
    gw_conn *c = gw_conn_find(g, rt.session_id);
    if (!c || !c->is_joined || rt.shard >= BUS_MAX_SHARDS)
        return;
    c->route_shard = rt.shard;
    c->entity_id = rt.entity_id;
}

static void on_bus(gw *g)
{
    uint64_t n;
    ssize_t rd = read(g->bus_fd, &n, sizeof n);
    (void)rd;
    bus_batch bt;
    if (bus_recv(g->b, g->bus_ep, &bt) != BUS_OK)
        return;
    bus_iter it = bus_iter_init(&bt);
    const uint8_t *msg;
    size_t len;
    while (bus_iter_next(&it, &msg, &len)) {
        core_rd r = core_rd_init(msg, len);
        uint16_t type = proto_bus_type(&r);
        if (!core_rd_ok(&r))
            continue;
        switch (type) {
        case PROTO_BUS_FRAMES:
            bus_frames(g, &r);
            break;
        case PROTO_BUS_ROUTE:
            bus_route(g, &r);
            break;
        default:
            CORE_DEBUG("gw", "ignoring bus message type %u", (unsigned)type);
            break;
        }
    }
}

static void on_login(gw *g)
{
    size_t n;
    do {
        n = gw_login_poll(g->login, g->results, sizeof g->results / sizeof g->results[0]);
        for (size_t i = 0; i < n; i++)
            gw_routes_login_done(g, &g->results[i]);
    } while (n == sizeof g->results / sizeof g->results[0]);
}

/* ---- the loop ---- */

static void on_timer(gw *g)
{
    uint64_t n;
    ssize_t rd = read(g->timer_fd, &n, sizeof n);
    (void)rd;
    if (g->is_emfile) {
        /* After EMFILE the accept may fail again at once; retrying here
         * every GW_SWEEP_MS is the only polling, never a busy loop. */
        g->is_emfile_retry = true;
        gw_listener_resume(g);
    }
    gw_session_sweep(g);
    gw_acct_sweep(g);
    for (uint32_t s = 0; s < g->hi_slot; s++) {
        gw_conn *c = gw_conn_at(g, s);
        if (c)
            gw_conn_sweep(g, c);
    }
    /* Connections come and go in bursts, and the heap holes they leave
     * stay resident: give whole free pages back (every arena; under a
     * millisecond at 20k sessions, measured). */
    if (++g->n_sweeps % GW_TRIM_SWEEPS == 0)
        malloc_trim(0);
}

static void flush_touched(gw *g)
{
    /* A flush may close its connection, or (an HTTP client whose backlog
     * drained) answer held-back requests and touch it again: the list can
     * grow while walked, so it is indexed afresh each time. */
    for (uint32_t i = 0; i < g->n_touched; i++) {
        gw_conn *c = gw_conn_find(g, g->touched[i]);
        if (!c)
            continue;
        c->is_touched = false;
        gw_conn_flush(g, c);
    }
    g->n_touched = 0;
}

static void shutdown_all(gw *g)
{
    for (uint32_t s = 0; s < g->hi_slot; s++) {
        gw_conn *c = gw_conn_at(g, s);
        if (!c)
            continue;
        if (c->state == GW_CONN_WS)
            gw_conn_ws_close(g, c, GW_WS_CLOSE_GOING_AWAY, "server shutting down", false);
        if (c->state != GW_CONN_DEAD)
            gw_conn_flush(g, c);
        if (c->state != GW_CONN_DEAD)
            gw_conn_close(g, c);
    }
    inputs_flush(g);
    g->n_touched = 0;
    gw_conn_reap(g);
}

/* Under load, events trickle in one at a time (at 2,000 players a client
 * input arrives every 25 us) and waking for each costs a context switch
 * and an epoll_wait. A round therefore starts at most every GW_ROUND_NS:
 * each handles a batch of events, and no answer waits longer than that. */
#define GW_ROUND_NS 1000000ull

int gw_run(gw *g)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t round_ns = 0;
    while (!g->is_stopping) {
        if (round_ns && core_now_ns() - round_ns < GW_ROUND_NS)
            core_sleep_until_ns(round_ns + GW_ROUND_NS);
        int n = epoll_wait(g->ep_fd, evs, MAX_EVENTS, -1);
        round_ns = core_now_ns();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            core_die("gw: epoll_wait: %s", strerror(errno));
        }
        g->now_ms = core_now_ms();
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG(TAG_LISTEN)) {
                on_accept(g);
            } else if (tag == TAG(TAG_TIMER)) {
                on_timer(g);
            } else if (tag == TAG(TAG_STOP)) {
                g->is_stopping = true;
            } else if (tag == TAG(TAG_BUS)) {
                on_bus(g);
            } else if (tag == TAG(TAG_LOGIN)) {
                on_login(g);
            } else {
                /* A stale event for a connection closed earlier in this
                 * round misses here thanks to the generation in the id. */
                gw_conn *c = gw_conn_find(g, (uint32_t)tag);
                if (!c)
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    gw_conn_on_readable(g, c);
                if (c->state != GW_CONN_DEAD && (evs[i].events & EPOLLOUT))
                    gw_conn_touch(g, c);
            }
        }
        inputs_flush(g);
        flush_touched(g);
        gw_conn_reap(g);
    }
    CORE_INFO("gw", "stopping: closing %u connections", g->n_conns);
    g->is_stopping = true; /* sessions leave now instead of waiting to resume */
    shutdown_all(g);
    return 0;
}

void gw_stop(gw *g)
{
    uint64_t one = 1;
    ssize_t w = write(g->stop_fd, &one, sizeof one); /* async-signal-safe */
    (void)w;
}

void gw_set_store(gw *g, struct store *st)
{
    gw_login_use_store(g->login, st);
}

int gw_port(const gw *g)
{
    return g->port;
}

/* ---- create / destroy ---- */

static void ep_add(gw *g, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    if (epoll_ctl(g->ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        core_die("gw: epoll_ctl add: %s", strerror(errno));
}

int gw_create(gw **out, const core_config *cfg, uint16_t gw_id, bus *b,
              const spatial_cellmap *cells, core_metrics *m, const gw_hooks *hooks)
{
    *out = NULL;
    if (gw_id >= BUS_MAX_GWS || cfg->max_conns < 1 || (uint32_t)cfg->max_conns > GW_SLOT_MASK)
        return -1;
    gw *g = calloc(1, sizeof *g);
    if (!g)
        core_die("out of memory");
    g->cfg = *cfg;
    g->gw_id = gw_id;
    g->bus_ep = BUS_EP_GW(gw_id);
    g->b = b;
    g->cells = cells;
    g->m = m;
    if (hooks)
        g->hooks = *hooks;
    g->ep_fd = g->listen_fd = g->timer_fd = g->stop_fd = g->bus_fd = g->login_fd = -1;
    core_rng_seed(&g->rng, core_now_ns() ^ ((uint64_t)getpid() << 32));
    metrics_register(g);
    core_buf_init(&g->tmp);
    for (int i = 0; i < BUS_MAX_SHARDS; i++)
        core_buf_init(&g->inputs[i]);

    g->n_slots = (uint32_t)cfg->max_conns;
    g->conns = calloc(g->n_slots, sizeof *g->conns);
    g->gens = calloc(g->n_slots, sizeof *g->gens);
    g->free_slots = malloc(g->n_slots * sizeof *g->free_slots);
    g->n_addrs = 1024;
    while (g->n_addrs < 2u * g->n_slots)
        g->n_addrs *= 2;
    g->addrs = calloc(g->n_addrs, sizeof *g->addrs);
    g->cap_touched = 1024;
    g->touched = malloc(g->cap_touched * sizeof *g->touched);
    size_t ws_in = (size_t)cfg->max_message_bytes + GW_WS_FRAME_OVERHEAD;
    g->scratch_cap = ws_in > GW_HTTP_IN_CAP ? ws_in : GW_HTTP_IN_CAP;
    g->scratch = malloc(g->scratch_cap);
    if (!g->conns || !g->gens || !g->free_slots || !g->addrs || !g->touched || !g->scratch)
        core_die("out of memory");
    for (uint32_t i = 0; i < g->n_slots; i++) {
        g->free_slots[i] = i;
        g->gens[i] = 1;
    }
    g->free_head = 0;
    g->n_free = g->n_slots;

    gw_session_init(g);
    size_t secret_len = strlen(cfg->jwt_secret);
    if (gw_auth_create(&g->auth, cfg->jwt_secret, secret_len, cfg->token_ttl_s) != 0) {
        CORE_ERROR("gw", "cannot create the token service");
        goto fail;
    }
    if (gw_login_create(&g->login, g->auth, 2, GW_LOGIN_QUEUE) != 0) {
        CORE_ERROR("gw", "cannot start the login workers");
        goto fail;
    }
    if (gw_acct_setup(g) != 0)
        goto fail;
    g->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    g->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    g->bus_fd = bus_notify_fd(b, g->bus_ep);
    g->login_fd = gw_login_fd(g->login);
    if (g->ep_fd < 0 || g->stop_fd < 0 || g->timer_fd < 0 || g->bus_fd < 0 || g->login_fd < 0) {
        CORE_ERROR("gw", "cannot create the loop's descriptors: %s", strerror(errno));
        goto fail;
    }
    struct itimerspec its = {.it_interval = {0, GW_SWEEP_MS * 1000000L},
                             .it_value = {0, GW_SWEEP_MS * 1000000L}};
    timerfd_settime(g->timer_fd, 0, &its, NULL);
    if (listener_open(g) != 0)
        goto fail;
    ep_add(g, g->stop_fd, TAG(TAG_STOP));
    ep_add(g, g->timer_fd, TAG(TAG_TIMER));
    ep_add(g, g->bus_fd, TAG(TAG_BUS));
    ep_add(g, g->login_fd, TAG(TAG_LOGIN));
    gw_listener_resume(g);
    g->now_ms = core_now_ms();
    CORE_INFO("gw", "gateway %u listening on %s:%d", (unsigned)gw_id, cfg->bind_addr, g->port);
    *out = g;
    return 0;
fail:
    gw_destroy(g);
    return -1;
}

void gw_destroy(gw *g)
{
    if (!g)
        return;
    for (uint32_t s = 0; s < g->hi_slot; s++)
        if (gw_conn_at(g, s))
            gw_conn_free(g, &g->conns[s]);
    gw_conn_reap(g);
    /* bus_fd and login_fd belong to the bus and the login service. */
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->timer_fd >= 0)
        close(g->timer_fd);
    if (g->stop_fd >= 0)
        close(g->stop_fd);
    if (g->ep_fd >= 0)
        close(g->ep_fd);
    gw_login_destroy(g->login);
    gw_acct_teardown(g);
    gw_auth_destroy(g->auth);
    for (int i = 0; i < BUS_MAX_SHARDS; i++)
        core_buf_free(&g->inputs[i]);
    core_buf_free(&g->tmp);
    free(g->conns);
    free(g->gens);
    free(g->free_slots);
    free(g->addrs);
    free(g->touched);
    free(g->extra_wait);
    free(g->scratch);
    gw_session_free(g);
    free(g);
}
