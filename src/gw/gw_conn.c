/* gw_conn.c - gateway connections: the slot table, reading, the send path
 * and WebSocket sessions.
 *
 * Divisions: table and lifetime; the send path; WebSocket sessions
 * (upgrade, records, rate limit, close handshake); reading; the sweep.
 *
 * The send path. Each connection has three output buffers:
 *   out   committed bytes, written in order: HTTP answers, control frames,
 *         reliable WebSocket messages (capped by send_buffer_bytes);
 *   pend  the latest unsent STATE payload: each newer one replaces it
 *         (latest wins), so a slow reader never builds a backlog of state;
 *   extra records the gateway makes itself (PONG, ERROR). They ride in the
 *         next message a shard sends (protocol: at most one message per
 *         client per tick, possibly several records), or go alone when the
 *         shard's next tick brought no STATE for the client (an idle
 *         client gets one every keepalive_s: gw_conn_extras_tick), and at the
 *         latest after GW_EXTRA_MAX_AGE_MS (the sweep).
 * A flush is one sendmsg of [out][ws header, pend, extra]. If the write
 * reaches into the pending message, its unwritten rest moves to out (a
 * started frame must finish); if it does not, the pending message stays
 * replaceable. A buffer that drains is freed, not kept for reuse: most
 * sessions are quiet most of the time, and a malloc per message costs
 * little next to the sendmsg. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core_log.h"
#include "gw_int.h"

/* ---- table and lifetime ---- */

/* An idle session costs its record: keep it in budget. */
_Static_assert(sizeof(gw_conn) <= 88, "gw_conn grew past 88 bytes");

gw_io *gw_conn_io(gw *g, gw_conn *c)
{
    if (c->io != &g->io_none)
        return c->io;
    gw_io *io = calloc(1, sizeof *io); /* zero: empty buffers */
    if (!io)
        core_die("out of memory");
    if (c->is_ws_init)
        gw_ws_parser_init(&io->ws, (size_t)g->cfg.max_message_bytes);
    c->io = io;
    return io;
}

/* Frees c's drained buffers, and its io once nothing is left in it and
 * the parser is between messages (a fresh one would behave the same).
 * Never while a caller up the stack holds pointers into c->io. */
static void io_trim(gw *g, gw_conn *c)
{
    gw_io *io = c->io;
    if (io == &g->io_none)
        return;
    if (io->in.len == 0)
        core_buf_free(&io->in);
    if (io->out.len == 0)
        core_buf_free(&io->out);
    if (io->pend.len == 0)
        core_buf_free(&io->pend);
    if (io->extra.len == 0)
        core_buf_free(&io->extra);
    if (io->in.cap || io->out.cap || io->pend.cap || io->extra.cap)
        return;
    if (c->is_ws_init) {
        const gw_ws_parser *p = &io->ws;
        if (p->frag.cap || p->frag_opcode || p->utf8_state || p->closed)
            return;
    }
    free(io);
    c->io = &g->io_none;
}

static core_log_ids log_ids(const gw_conn *c)
{
    core_log_ids ids = {.conn = c->id, .shard = -1};
    if (c->is_ws_init) {
        ids.session = c->id;
        ids.entity = c->entity_id;
        ids.shard = c->route_shard;
    }
    return ids;
}

static core_counter *close_counter(gw *g, uint16_t code)
{
    size_t n = sizeof g->close_codes / sizeof g->close_codes[0];
    for (size_t i = 0; i < n; i++) {
        if (g->close_codes[i] == code)
            return g->c_closes[i];
        if (g->close_codes[i] == 0) {
            /* The last entry is "other", so peer-chosen codes cannot grow
             * the label set without bound. */
            char labels[32];
            if (i == n - 1)
                snprintf(labels, sizeof labels, "code=\"other\"");
            else
                snprintf(labels, sizeof labels, "code=\"%u\"", (unsigned)code);
            g->c_closes[i] = core_metrics_counter(
                g->m, "tessera_ws_closes_total", "WebSocket sessions ended, by close code", labels);
            g->close_codes[i] = i == n - 1 ? 0xffff : code;
            return g->c_closes[i];
        }
    }
    return g->c_closes[n - 1];
}

gw_conn *gw_conn_new(gw *g, int fd, const uint8_t addr[16], const char *addr_str)
{
    if (g->n_free == 0)
        core_die("gw: no free connection slot with %u open", g->n_conns);
    uint32_t slot = g->free_slots[g->free_head];
    g->free_head = (g->free_head + 1) % g->n_slots;
    g->n_free--;
    gw_conn *c = &g->conns[slot];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->id = (g->gens[slot] << GW_SLOT_BITS) | slot;
    c->state = GW_CONN_HTTP;
    memcpy(c->addr, addr, 16);
    c->io = &g->io_none;
    c->deadline_ms = g->now_ms + (uint64_t)g->cfg.handshake_timeout_s * 1000;
    if (slot + 1 > g->hi_slot)
        g->hi_slot = slot + 1;
    g->n_conns++;
    core_gauge_set(g->g_conns, g->n_conns);
    c->ev_mask = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id};
    if (epoll_ctl(g->ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        core_die("gw: epoll_ctl add connection: %s", strerror(errno));
    core_log_ids ids = log_ids(c);
    core_log(CORE_LOG_DEBUG, "gw", &ids, "connection from %s", addr_str);
    return c;
}

void gw_addr_format(const uint8_t addr[16], char *out, size_t cap)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, v4_mapped, sizeof v4_mapped) == 0)
        inet_ntop(AF_INET, addr + 12, out, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, addr, out, (socklen_t)cap);
}

gw_conn *gw_conn_find(gw *g, uint32_t id)
{
    uint32_t slot = id & GW_SLOT_MASK;
    if (slot >= g->n_slots)
        return NULL;
    gw_conn *c = &g->conns[slot];
    return c->id == id && c->state != GW_CONN_DEAD ? c : NULL;
}

void gw_conn_update_events(gw *g, gw_conn *c)
{
    if (c->state == GW_CONN_DEAD)
        return;
    uint32_t want = 0;
    /* No reading while a login is out, after a final answer, or while a
     * pipelining client leaves a backlog of HTTP answers unread. */
    bool http_full = c->state == GW_CONN_HTTP && c->io->out.len > GW_HTTP_OUT_MAX;
    if (c->state != GW_CONN_LOGIN_WAIT && !c->is_close_after_flush && !http_full)
        want |= EPOLLIN;
    /* A pending STATE the socket could not take waits for EPOLLOUT too
     * (unless a newer one replaces it first). */
    if (c->io->out.len > 0 || c->io->pend.len > 0)
        want |= EPOLLOUT;
    if (want == c->ev_mask)
        return;
    struct epoll_event ev = {.events = want, .data.u64 = c->id};
    if (epoll_ctl(g->ep_fd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        core_die("gw: epoll_ctl mod: %s", strerror(errno));
    c->ev_mask = want;
}

void gw_conn_touch(gw *g, gw_conn *c)
{
    if (c->is_touched || c->state == GW_CONN_DEAD)
        return;
    if (g->n_touched == g->cap_touched) {
        g->cap_touched *= 2;
        g->touched = realloc(g->touched, g->cap_touched * sizeof *g->touched);
        if (!g->touched)
            core_die("out of memory");
    }
    g->touched[g->n_touched++] = c->id;
    c->is_touched = true;
}

void gw_conn_leave(gw *g, gw_conn *c)
{
    if (!c->is_joined)
        return;
    c->is_joined = false;
    g->n_sessions--;
    core_gauge_set(g->g_sessions, g->n_sessions);
    gw_session_closed(g, c);
}

void gw_conn_close(gw *g, gw_conn *c)
{
    if (c->state == GW_CONN_DEAD)
        return;
    core_log_ids ids = log_ids(c);
    if (c->state == GW_CONN_WS) {
        /* Ended without a close handshake (reset, EOF, write error). */
        c->close_code = 1006;
        core_counter_add(close_counter(g, 1006), 1);
        core_log(CORE_LOG_INFO, "gw", &ids, "session closed: code=1006 reason=\"connection lost\"");
    }
    gw_conn_leave(g, c);
    /* Closing with unread input makes the kernel send RST, which can
     * discard our last bytes (a close frame, an error answer) in flight. */
    for (int i = 0; i < 4; i++)
        if (recv(c->fd, g->scratch, g->scratch_cap, MSG_DONTWAIT) <= 0)
            break;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    gw_addr_release(g, c->addr);
    uint32_t slot = c->id & GW_SLOT_MASK;
    g->gens[slot] = g->gens[slot] >= GW_GEN_MAX ? 1 : g->gens[slot] + 1;
    g->n_conns--; /* the slot goes back to the free ring at the reap */
    core_gauge_set(g->g_conns, g->n_conns);
    c->state = GW_CONN_DEAD;
    c->next_dead = g->dead;
    g->dead = (c->id & GW_SLOT_MASK) + 1;
    core_log(CORE_LOG_DEBUG, "gw", &ids, "connection closed");
    gw_listener_resume(g);
}

static void conn_free_bufs(gw *g, gw_conn *c)
{
    if (c->io != &g->io_none) {
        core_buf_free(&c->io->in);
        core_buf_free(&c->io->out);
        core_buf_free(&c->io->pend);
        core_buf_free(&c->io->extra);
        if (c->is_ws_init)
            gw_ws_parser_free(&c->io->ws);
        free(c->io);
    }
    free(c->up);
    free(c->rate);
}

void gw_conn_reap(gw *g)
{
    if (!g->dead)
        return;
    while (g->dead) {
        gw_conn *c = &g->conns[g->dead - 1];
        g->dead = c->next_dead;
        conn_free_bufs(g, c);
        uint32_t slot = c->id & GW_SLOT_MASK;
        memset(c, 0, sizeof *c);
        g->free_slots[(g->free_head + g->n_free) % g->n_slots] = slot;
        g->n_free++;
    }
    gw_listener_resume(g); /* it waits for free slots as well as for n_conns */
}

void gw_conn_free(gw *g, gw_conn *c)
{
    gw_conn_close(g, c);
    gw_conn_reap(g);
}

/* ---- the send path ---- */

static void after_drain(gw *g, gw_conn *c)
{
    if (c->io->out.len == 0 && c->is_close_after_flush) {
        gw_conn_close(g, c);
        return;
    }
    if (c->state == GW_CONN_HTTP && c->io->in.len > 0 && c->io->out.len <= GW_HTTP_OUT_MAX &&
        !(c->ev_mask & EPOLLIN)) {
        gw_conn_process_buffered(g, c); /* requests held back by the backlog */
        return;
    }
    io_trim(g, c); /* idle connections hold no buffer */
    gw_conn_update_events(g, c);
}

/* Appends bytes [skip, end) of the segments to out. */
static void append_rest(core_buf *out, const struct iovec *iov, int n, size_t skip)
{
    for (int i = 0; i < n; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        core_buf_append(out, (const uint8_t *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
    }
}

void gw_conn_flush(gw *g, gw_conn *c)
{
    if (c->state == GW_CONN_DEAD)
        return;
    if (c->io == &g->io_none) {
        after_drain(g, c); /* nothing to send */
        return;
    }
    bool has_msg = c->io->pend.len > 0 || (c->is_flush_extra && c->io->extra.len > 0);
    struct iovec iov[4];
    int n = 0;
    if (c->io->out.len)
        iov[n++] = (struct iovec){c->io->out.data, c->io->out.len};
    uint8_t hdr[10];
    int msg_first = n;
    if (has_msg) {
        size_t plen = c->io->extra.len + c->io->pend.len;
        iov[n++] = (struct iovec){hdr, gw_ws_frame_header(hdr, GW_WS_OP_BINARY, plen)};
        /* The shard's records first: a client reads WELCOME/STATE before
         * the PONGs and ERRORs that ride along. */
        if (c->io->pend.len)
            iov[n++] = (struct iovec){c->io->pend.data, c->io->pend.len};
        if (c->io->extra.len)
            iov[n++] = (struct iovec){c->io->extra.data, c->io->extra.len};
    }
    if (n == 0) {
        after_drain(g, c);
        return;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            gw_conn_close(g, c);
            return;
        }
        w = 0;
    }
    core_counter_add(g->c_bytes_out, (uint64_t)w);
    size_t wrote = (size_t)w;
    size_t from_out = wrote < c->io->out.len ? wrote : c->io->out.len;
    core_buf_consume(&c->io->out, from_out);
    wrote -= from_out;
    if (has_msg && wrote > 0) {
        /* The message has started on the wire: it is committed now. */
        append_rest(&c->io->out, iov + msg_first, n - msg_first, wrote);
        core_buf_free(&c->io->extra);
        core_buf_free(&c->io->pend);
        c->is_flush_extra = false;
        core_counter_add(g->c_msgs_out, 1);
    }
    after_drain(g, c);
}

/* Appends a control frame (ping, pong) to out. */
static void send_control(gw *g, gw_conn *c, uint8_t opcode, const void *payload, size_t len)
{
    if (c->io->out.len + len + 2 > (size_t)g->cfg.send_buffer_bytes) {
        /* A peer that pings without reading the pongs. */
        gw_conn_ws_close(g, c, GW_WS_CLOSE_POLICY, "send buffer overflow", true);
        return;
    }
    uint8_t h[10];
    gw_io *io = gw_conn_io(g, c);
    core_buf_append(&io->out, h, gw_ws_frame_header(h, opcode, len));
    core_buf_append(&io->out, payload, len);
    gw_conn_touch(g, c);
}

void gw_conn_extra_begin(gw *g, gw_conn *c)
{
    gw_io *io = gw_conn_io(g, c);
    if (io->extra.len)
        return;
    io->extra_since_ms = g->now_ms;
    if (c->is_extra_waiting)
        return;
    if (g->n_extra_wait == g->cap_extra_wait) {
        g->cap_extra_wait = g->cap_extra_wait ? g->cap_extra_wait * 2 : 64;
        g->extra_wait = realloc(g->extra_wait, g->cap_extra_wait * sizeof *g->extra_wait);
        if (!g->extra_wait)
            core_die("out of memory");
    }
    g->extra_wait[g->n_extra_wait++] = c->id;
    c->is_extra_waiting = true;
}

void gw_conn_extras_tick(gw *g, uint16_t shard)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < g->n_extra_wait; i++) {
        gw_conn *c = gw_conn_find(g, g->extra_wait[i]);
        if (!c)
            continue;
        if (c->io->extra.len && c->state == GW_CONN_WS &&
            (c->route_shard != shard || !c->is_welcomed)) {
            /* another shard's session, or WELCOME (the first message) is
             * not out yet: wait on */
            g->extra_wait[keep++] = c->id;
            continue;
        }
        c->is_extra_waiting = false;
        if (c->io->extra.len && c->state == GW_CONN_WS && !c->io->pend.len) {
            /* no STATE this tick to ride on */
            c->is_flush_extra = true;
            gw_conn_touch(g, c);
        }
    }
    g->n_extra_wait = keep;
}

/* Room check for gateway-made records; closes on overflow. */
static bool extra_room(gw *g, gw_conn *c, size_t n)
{
    if (c->io->out.len + c->io->extra.len + n > (size_t)g->cfg.send_buffer_bytes) {
        gw_conn_ws_close(g, c, GW_WS_CLOSE_POLICY, "send buffer overflow", true);
        return false;
    }
    gw_conn_extra_begin(g, c);
    return true;
}

/* Flags byte of the STATE record in a shard payload, or -1 if it has none
 * (or is malformed: the shard never sends that). */
static int state_flags(const uint8_t *p, size_t len)
{
    proto_records it;
    proto_records_init(&it, p, len);
    uint8_t kind;
    const uint8_t *body;
    size_t blen;
    while (proto_records_next(&it, &kind, &body, &blen) == 1)
        if (kind == PROTO_S_STATE && blen > 9)
            return body[8];
    return -1;
}

/* Appends every record of p but the STATE to out. */
static void copy_without_state(core_buf *out, const uint8_t *p, size_t len)
{
    proto_records it;
    proto_records_init(&it, p, len);
    uint8_t kind;
    const uint8_t *body;
    size_t blen;
    while (proto_records_next(&it, &kind, &body, &blen) == 1) {
        if (kind == PROTO_S_STATE)
            continue;
        proto_record_begin(out, kind, blen);
        core_buf_append(out, body, blen);
    }
}

/* Asks the shard for a RESET STATE (a full resend). */
static void request_resync(gw *g, gw_conn *c)
{
    core_buf_reset(&g->tmp);
    core_buf_u16(&g->tmp, PROTO_BUS_RESYNC);
    core_buf_u32(&g->tmp, c->id);
    gw_bus_send_shard(g, c->route_shard, &g->tmp);
}

/* One tick's payload from the shard. STATEs are deltas against the
 * previous one, so "latest wins" cannot just replace an unsent STATE: the
 * client would miss its leaves, enters and moves. Superseding an unsent
 * STATE therefore drops it and asks the shard for a RESET STATE; until one
 * arrives, STATE records are dropped (reliable records still go out). A
 * RESET STATE is self-contained, so it may always replace. */
void gw_conn_frame(gw *g, gw_conn *c, const proto_frame *f)
{
    (void)gw_conn_io(g, c); /* trimmed at the flush if nothing stays */
    c->is_welcomed = true;
    int fl = state_flags(f->payload, f->len);
    bool is_reset = fl >= 0 && (fl & PROTO_STATE_RESET);
    if (c->io->pend.len) {
        core_counter_add(g->c_state_replaced, 1);
        core_buf_reset(&c->io->pend);
        if (!is_reset && !c->needs_reset) {
            c->needs_reset = true;
            request_resync(g, c);
        }
    }
    bool drop_state = false;
    if (c->needs_reset && fl >= 0) {
        if (is_reset)
            c->needs_reset = false;
        else
            drop_state = true;
    }
    const uint8_t *payload = f->payload;
    size_t len = f->len;
    if (drop_state) {
        core_buf_reset(&g->tmp);
        copy_without_state(&g->tmp, f->payload, f->len);
        payload = g->tmp.data;
        len = g->tmp.len;
    }
    if (f->flags & PROTO_FRAME_RELIABLE) {
        size_t plen = c->io->extra.len + len;
        if (plen == 0)
            return;
        if (c->io->out.len + plen + 10 > (size_t)g->cfg.send_buffer_bytes) {
            gw_conn_ws_close(g, c, GW_WS_CLOSE_POLICY, "send buffer overflow", true);
            return;
        }
        uint8_t h[10];
        core_buf_append(&c->io->out, h, gw_ws_frame_header(h, GW_WS_OP_BINARY, plen));
        core_buf_append(&c->io->out, payload, len);
        core_buf_append(&c->io->out, c->io->extra.data, c->io->extra.len);
        core_buf_free(&c->io->extra);
        core_counter_add(g->c_msgs_out, 1);
    } else {
        if (drop_state)
            return;
        core_buf_append(&c->io->pend, payload, len);
    }
    gw_conn_touch(g, c);
}

/* ---- WebSocket sessions ---- */

void gw_conn_ws_close(gw *g, gw_conn *c, uint16_t code, const char *reason, bool wait_peer)
{
    if (c->state == GW_CONN_CLOSING) {
        if (!wait_peer) {
            c->is_close_after_flush = true;
            gw_conn_touch(g, c);
        }
        return;
    }
    if (c->state != GW_CONN_WS)
        return;
    (void)gw_conn_io(g, c);
    c->close_code = code;
    /* Records the gateway owes the client (the ERRORs that explain this
     * close, PONGs) go out before the close frame; stale state does not. */
    if (c->io->extra.len) {
        uint8_t h[10];
        core_buf_append(&c->io->out, h, gw_ws_frame_header(h, GW_WS_OP_BINARY, c->io->extra.len));
        core_buf_append(&c->io->out, c->io->extra.data, c->io->extra.len);
        core_counter_add(g->c_msgs_out, 1);
    }
    core_buf_free(&c->io->pend);
    core_buf_free(&c->io->extra);
    gw_ws_write_close(&c->io->out, code, reason);
    core_counter_add(close_counter(g, code), 1);
    core_log_ids ids = log_ids(c);
    core_log(CORE_LOG_INFO, "gw", &ids, "session closed: code=%u reason=\"%s\"", (unsigned)code,
             reason ? reason : "");
    gw_conn_leave(g, c);
    c->state = GW_CONN_CLOSING;
    c->deadline_ms = g->now_ms + (uint64_t)g->cfg.close_timeout_s * 1000;
    if (!wait_peer)
        c->is_close_after_flush = true;
    gw_conn_touch(g, c);
    gw_conn_update_events(g, c);
}

int gw_conn_ws_start(gw *g, gw_conn *c, const gw_claims *claims, const float *spawn,
                     const uint8_t *resume)
{
    gw_ws_parser_init(&gw_conn_io(g, c)->ws, (size_t)g->cfg.max_message_bytes);
    c->is_ws_init = true;
    c->state = GW_CONN_WS;
    c->deadline_ms = 0;
    c->last_rx_ms = g->now_ms;
    c->account_id = claims->account_id;

    gw_session_enter(g, c, claims->username, spawn, resume);
    return c->state == GW_CONN_WS ? 0 : -1;
}

/* c's rate state, made fresh (a full bucket, no window) if at rest. */
static gw_rate *rate_get(gw *g, gw_conn *c)
{
    if (!c->rate) {
        c->rate = calloc(1, sizeof *c->rate);
        if (!c->rate)
            core_die("out of memory");
        c->rate->tokens = (float)g->cfg.msgs_burst;
        c->rate->tokens_ms = g->now_ms;
    }
    return c->rate;
}

/* The bucket refilled to now (capped at the burst). */
static double rate_tokens(const gw *g, const gw_rate *r)
{
    double tokens = r->tokens + (double)(g->now_ms - r->tokens_ms) * g->cfg.msgs_per_s / 1000.0;
    return tokens > g->cfg.msgs_burst ? g->cfg.msgs_burst : tokens;
}

/* Frees c's rate state when a fresh one would behave the same: the
 * bucket is full again, the ERROR window is over, and the drop window
 * can no longer count as hot (see rate_take). */
static void rate_rest(gw *g, gw_conn *c)
{
    const gw_rate *r = c->rate;
    uint32_t hot = 2u * (uint32_t)g->cfg.msgs_per_s;
    if (r && rate_tokens(g, r) >= g->cfg.msgs_burst && g->now_ms - r->errors_window_ms >= 1000 &&
        (r->drops_window <= hot || g->now_ms - r->drops_window_ms >= 2000)) {
        free(c->rate);
        c->rate = NULL;
    }
}

/* Queues an ERROR record (at most GW_ERRORS_PER_S a second; every
 * rejection is counted). */
static void reject(gw *g, gw_conn *c, proto_err e)
{
    core_counter_add(g->c_rejected[e], 1);
    gw_rate *r = rate_get(g, c);
    if (g->now_ms - r->errors_window_ms >= 1000) {
        r->errors_window_ms = g->now_ms;
        r->errors_window = 0;
    }
    if (r->errors_window >= GW_ERRORS_PER_S)
        return;
    const char *name = proto_err_name(e);
    if (!extra_room(g, c, strlen(name) + 8))
        return;
    r->errors_window++;
    proto_write_error(&c->io->extra, e, name);
}

/* Takes one token for a record. Returns false if the record must be
 * dropped (c may then be closing). */
static bool rate_take(gw *g, gw_conn *c)
{
    gw_rate *r = rate_get(g, c);
    r->tokens = (float)rate_tokens(g, r);
    r->tokens_ms = g->now_ms;
    if (r->tokens >= 1.0f) {
        r->tokens -= 1.0f;
        return true;
    }
    /* Sustained abuse (protocol: "3x the rate for 2 s"): a 1 s window is
     * hot when its drops exceed 2x the rate, i.e. records arrived at 3x
     * the rate or more; a run of hot windows lasting GW_ABUSE_MS closes
     * the connection. A single burst heats one window and is forgiven. */
    uint32_t hot = 2u * (uint32_t)g->cfg.msgs_per_s;
    c->drops_total++;
    if (g->now_ms - r->drops_window_ms >= 1000) {
        bool was_hot = r->drops_window > hot && g->now_ms - r->drops_window_ms < 2000;
        if (!was_hot)
            r->abuse_since_ms = 0;
        r->drops_window_ms = g->now_ms;
        r->drops_window = 0;
    }
    r->drops_window++;
    if (r->drops_window == hot + 1 && r->abuse_since_ms == 0)
        r->abuse_since_ms = r->drops_window_ms;
    reject(g, c, PROTO_ERR_RATE_LIMITED);
    bool abused =
        r->drops_window > hot && r->abuse_since_ms && g->now_ms - r->abuse_since_ms >= GW_ABUSE_MS;
    if (c->state == GW_CONN_WS && (c->drops_total >= GW_DROPS_TOTAL_MAX || abused))
        gw_conn_ws_close(g, c, GW_WS_CLOSE_POLICY, "rate limit exceeded", true);
    return false;
}

static void on_records(gw *g, gw_conn *c, const uint8_t *msg, size_t len)
{
    proto_records it;
    proto_records_init(&it, msg, len);
    uint8_t kind;
    const uint8_t *body;
    size_t blen;
    int rc = 0;
    while (c->state == GW_CONN_WS && (rc = proto_records_next(&it, &kind, &body, &blen)) == 1) {
        if (!rate_take(g, c))
            continue;
        if (kind == PROTO_C_INPUT) {
            proto_bus_input bi = {.session_id = c->id, .entity_id = c->entity_id};
            proto_err e = proto_input_decode(&bi.in, body, blen);
            if (e != PROTO_ERR_NONE) {
                reject(g, c, e);
                continue;
            }
            bi.gseq = ++c->gseq; /* only forwarded inputs are numbered: no gaps */
            gw_inputs_add(g, c->route_shard, &bi);
        } else if (kind == PROTO_C_PING) {
            if (blen != 4) {
                reject(g, c, PROTO_ERR_MALFORMED);
                continue;
            }
            core_rd r = core_rd_init(body, blen);
            uint32_t nonce = core_rd_u32(&r);
            uint32_t tick = g->hooks.current_tick ? g->hooks.current_tick(g->hooks.ctx) : 0;
            if (extra_room(g, c, 10))
                proto_write_pong(&c->io->extra, nonce, tick);
        } else if (proto_is_item_record(kind)) {
            proto_err e = gw_records_forward(g, c, kind, body, blen); /* PICKUP, DROP, CHAT */
            if (e != PROTO_ERR_NONE)
                reject(g, c, e);
        } else {
            reject(g, c, PROTO_ERR_UNKNOWN_KIND);
        }
    }
    if (c->state == GW_CONN_WS && rc < 0)
        gw_conn_ws_close(g, c, GW_WS_CLOSE_MALFORMED, "malformed message", true);
}

static void on_ws_event(gw *g, gw_conn *c, const gw_ws_event *ev)
{
    switch (ev->type) {
    case GW_WS_EV_MESSAGE:
        if (c->state != GW_CONN_WS)
            return; /* after our close: discarded */
        core_counter_add(g->c_msgs_in, 1);
        if (ev->opcode != GW_WS_OP_BINARY)
            gw_conn_ws_close(g, c, GW_WS_CLOSE_UNSUPPORTED, "binary frames only", true);
        else
            on_records(g, c, ev->data, ev->len);
        break;
    case GW_WS_EV_PING:
        /* pings cost a pong write each: they share the token bucket, so a
         * ping flood is dropped and, sustained, closed like any other */
        if (c->state == GW_CONN_WS && rate_take(g, c))
            send_control(g, c, GW_WS_OP_PONG, ev->data, ev->len);
        break;
    case GW_WS_EV_PONG:
        break;
    case GW_WS_EV_CLOSE:
        if (c->state == GW_CONN_CLOSING) {
            /* The answer to our close: the handshake is complete. */
            c->is_close_after_flush = true;
            gw_conn_touch(g, c);
        } else {
            uint16_t code =
                ev->close_code == GW_WS_CLOSE_NO_STATUS ? GW_WS_CLOSE_NORMAL : ev->close_code;
            gw_conn_ws_close(g, c, code, code == GW_WS_CLOSE_NORMAL ? "normal" : "", false);
        }
        break;
    default:
        break;
    }
}

static size_t ws_process(gw *g, gw_conn *c, uint8_t *buf, size_t len)
{
    (void)gw_conn_io(g, c); /* the parser's state */
    size_t off = 0;
    while (off < len && (c->state == GW_CONN_WS || c->state == GW_CONN_CLOSING) &&
           !c->is_close_after_flush) {
        size_t used = 0;
        gw_ws_event ev = {0};
        int rc = gw_ws_parse(&c->io->ws, buf + off, len - off, &used, &ev);
        if (rc < 0) {
            if (c->state == GW_CONN_WS)
                gw_conn_ws_close(g, c, ev.close_code, ev.reason, false);
            else
                c->is_close_after_flush = true;
            gw_conn_touch(g, c);
            return len;
        }
        if (used > 0 && c->state == GW_CONN_WS) {
            c->last_rx_ms = g->now_ms; /* any frame (or fragment) is activity; */
            c->is_pinged = false;      /* CLOSING keeps its deadline instead */
        }
        if (rc == 1)
            on_ws_event(g, c, &ev);
        off += used;
        if (c->state == GW_CONN_DEAD)
            return len;
        if (rc == 0 && used == 0)
            break;
    }
    if (c->is_close_after_flush)
        return len; /* nothing after a close matters */
    return off;
}

/* ---- reading ---- */

static size_t process(gw *g, gw_conn *c, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len && c->state == GW_CONN_HTTP && !c->is_close_after_flush &&
           c->io->out.len <= GW_HTTP_OUT_MAX) {
        size_t used = gw_routes_process(g, c, buf + off, len - off);
        if (used == 0)
            break; /* an incomplete request */
        off += used;
    }
    if (c->state == GW_CONN_DEAD || c->is_close_after_flush)
        return len;
    if (off < len && (c->state == GW_CONN_WS || c->state == GW_CONN_CLOSING))
        off += ws_process(g, c, buf + off, len - off);
    return off;
}

static size_t in_cap(const gw *g, const gw_conn *c)
{
    if (c->is_ws_init)
        return (size_t)g->cfg.max_message_bytes + GW_WS_FRAME_OVERHEAD;
    return GW_HTTP_IN_CAP;
}

void gw_conn_on_readable(gw *g, gw_conn *c)
{
    if (!(c->ev_mask & EPOLLIN)) {
        /* EPOLLERR/EPOLLHUP while we are not reading: the peer is gone. */
        gw_conn_close(g, c);
        return;
    }
    size_t cap = in_cap(g, c);
    if (c->io->in.len >= cap) {
        gw_conn_close(g, c); /* the parsers bound their input; defensive */
        return;
    }
    size_t room = cap - c->io->in.len;
    /* With nothing buffered (the usual case) read into the shared scratch
     * and keep only an incomplete tail: idle connections hold no buffer. */
    bool direct = c->io->in.len == 0;
    uint8_t *dst = direct ? g->scratch : core_buf_reserve(&gw_conn_io(g, c)->in, room);
    ssize_t n = recv(c->fd, dst, room, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        gw_conn_close(g, c);
        return;
    }
    core_counter_add(g->c_bytes_in, (uint64_t)n);
    if (direct) {
        size_t used = process(g, c, g->scratch, (size_t)n);
        if (c->state == GW_CONN_DEAD)
            return;
        if (used < (size_t)n)
            core_buf_append(&gw_conn_io(g, c)->in, g->scratch + used, (size_t)n - used);
    } else {
        c->io->in.len += (size_t)n;
        size_t used = process(g, c, c->io->in.data, c->io->in.len);
        if (c->state == GW_CONN_DEAD)
            return;
        core_buf_consume(&c->io->in, used);
    }
    io_trim(g, c);
    gw_conn_update_events(g, c);
}

void gw_conn_process_buffered(gw *g, gw_conn *c)
{
    if (c->io->in.len > 0) {
        size_t used = process(g, c, c->io->in.data, c->io->in.len);
        if (c->state == GW_CONN_DEAD)
            return;
        core_buf_consume(&c->io->in, used);
        io_trim(g, c);
    }
    gw_conn_update_events(g, c);
}

/* ---- the sweep ---- */

void gw_conn_sweep(gw *g, gw_conn *c)
{
    uint64_t now = g->now_ms;
    if (c->deadline_ms && now >= c->deadline_ms &&
        (c->state == GW_CONN_HTTP || c->state == GW_CONN_CLOSING)) {
        /* HTTP: the head (or body) did not complete in time, or an answer
         * before close was not read. CLOSING: the peer did not answer. */
        gw_conn_close(g, c);
        return;
    }
    if (c->state != GW_CONN_WS)
        return;
    rate_rest(g, c);
    io_trim(g, c);
    uint64_t idle = now - c->last_rx_ms;
    if (idle >= (uint64_t)g->cfg.ping_timeout_s * 1000) {
        gw_conn_ws_close(g, c, GW_WS_CLOSE_HEARTBEAT, "heartbeat timeout", false);
        gw_conn_flush(g, c); /* best effort */
        gw_conn_close(g, c);
        return;
    }
    if (idle >= (uint64_t)g->cfg.ping_interval_s * 1000 && !c->is_pinged) {
        c->is_pinged = true;
        uint8_t payload[8];
        for (int i = 0; i < 8; i++)
            payload[i] = (uint8_t)(now >> (8 * i));
        send_control(g, c, GW_WS_OP_PING, payload, sizeof payload);
    }
    /* Gateway records go alone only after WELCOME, which must stay the
     * first message of the session. */
    if (c->io->extra.len && c->is_welcomed && now - c->io->extra_since_ms >= GW_EXTRA_MAX_AGE_MS) {
        c->is_flush_extra = true;
        gw_conn_touch(g, c);
    }
}
