/* bots_conn.c - one bot's connection, as a state machine driven by the
 * epoll loop (bots_loop.c): optional POST /api/login on its own
 * connection, then the WebSocket upgrade at /ws with subprotocol
 * tessera.v1, then RFC 6455 client framing (every frame masked with a
 * fresh random key; pings answered with pongs; the close handshake) and
 * the game records of docs/protocol.md decoded with proto.h.
 *
 * Divisions: sockets and writes; starting; game messages; WebSocket
 * frames; inputs, deadlines and closing. HTTP is in bots_http.c.
 *
 * Every error ends the bot (BOT_FAILED) and is counted once by kind; a
 * bot is never retried except for a login answered 503 busy, which the
 * protocol asks clients to retry. Handlers that may end the bot return
 * -1, after which the caller must not touch the bot's buffers. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bots_int.h"
#include "core_time.h"

#define BOT_STALL_NS (10ull * 1000000000ull)     /* in the world, silent this long: timeout */
#define BOT_CLOSE_WAIT_NS (2ull * 1000000000ull) /* for the server's close answer */
#define BOT_OUT_MAX (1u << 20)                   /* unsent bytes before giving up */
#define BOT_FRAME_MAX (1u << 20)                 /* largest server frame accepted */
#define BOT_TTL_S 3600                           /* lifetime of minted tokens */

static uint64_t now_us(const bots_env *e)
{
    return (e->now_ns - e->o->t0_ns) / 1000u;
}

static uint32_t local_index(const bots_env *e, const bot *b)
{
    return b->gid - e->o->first_bot;
}

/* ---- sockets and writes ---- */

static void set_events(bots_env *e, bot *b, uint32_t ev, int op)
{
    struct epoll_event ee = {.events = ev, .data.u32 = local_index(e, b)};
    epoll_ctl(e->epfd, op, b->fd, &ee);
}

void bot_close_fd(bots_env *e, bot *b)
{
    if (b->fd >= 0) {
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, b->fd, NULL);
        close(b->fd);
        b->fd = -1;
    }
    b->want_out = false;
    core_buf_reset(&b->in);
    core_buf_reset(&b->out);
}

void bot_release(bot *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    core_buf_free(&b->in);
    core_buf_free(&b->out);
    core_buf_free(&b->frag);
    proto_view_free(&b->view);
    free(b->hs);
    b->hs = NULL;
}

static void leave_world(bots_env *e, bot *b)
{
    if (b->state == BOT_IN_WORLD || b->state == BOT_CLOSING)
        e->n_in_world--;
}

void bot_decode_fail(bots_env *e, bot *b, const char *what)
{
    /* The first few are shown: a decode error means a bug on one side. */
    if (e->st->err_decode++ < 3)
        fprintf(stderr, "tessera bots: bot %u: %s (state %d)\n", b->gid, what, b->state);
    bot_fail(e, b);
}

void bot_fail(bots_env *e, bot *b)
{
    if (b->state == BOT_FAILED)
        return;
    leave_world(e, b);
    bot_close_fd(e, b);
    core_buf_free(&b->in);
    core_buf_free(&b->out);
    core_buf_free(&b->frag);
    free(b->hs);
    b->hs = NULL;
    b->state = BOT_FAILED;
    e->n_failed++;
}

/* Opens a non-blocking socket to the target (bound to this bot's source
 * address when several are configured) and starts connecting. */
int bot_open_socket(bots_env *e, bot *b, bot_state next)
{
    const bots_opts *o = e->o;
    int fd = socket(o->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->n_src > 0) {
        /* Port chosen at connect(), so each source address has its own
         * ephemeral range against the one target port. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(o->src_first + b->gid % o->n_src);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            close(fd);
            goto fail;
        }
    }
    if (connect(fd, (const struct sockaddr *)&o->dst, o->dst_len) != 0 && errno != EINPROGRESS) {
        close(fd);
        goto fail;
    }
    b->fd = fd;
    b->state = (uint8_t)next;
    b->want_out = true;
    set_events(e, b, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
fail:
    e->st->err_connect++;
    bot_fail(e, b);
    return -1;
}

/* Writes bytes in order: straight to the socket when nothing is queued,
 * the rest queued for EPOLLOUT. Returns 0, or -1 with the bot failed. */
int bot_write(bots_env *e, bot *b, const void *p, size_t n)
{
    if (b->out.len == 0) {
        ssize_t w = send(b->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            e->st->err_io++;
            bot_fail(e, b);
            return -1;
        }
        if (w < 0)
            w = 0;
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
        if (n == 0)
            return 0;
    }
    if (b->out.len + n > BOT_OUT_MAX) {
        e->st->err_io++;
        bot_fail(e, b);
        return -1;
    }
    core_buf_append(&b->out, p, n);
    if (!b->want_out) {
        b->want_out = true;
        set_events(e, b, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
    }
    return 0;
}

static int flush_out(bots_env *e, bot *b)
{
    while (b->out.len > 0) {
        ssize_t w = send(b->fd, b->out.data, b->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (w <= 0) {
            e->st->err_io++;
            bot_fail(e, b);
            return -1;
        }
        core_buf_consume(&b->out, (size_t)w);
    }
    b->want_out = false;
    set_events(e, b, EPOLLIN, EPOLL_CTL_MOD);
    return 0;
}

/* One masked client frame (RFC 6455 5.3: a fresh key per frame). */
static int ws_send(bots_env *e, bot *b, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t stack[256];
    uint8_t *f = len + 14 <= sizeof stack ? stack : malloc(len + 14);
    if (!f)
        abort();
    size_t h = 0;
    f[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        f[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key = core_rng_u32(&e->rng);
    uint8_t *mask = f + h;
    memcpy(mask, &key, 4);
    h += 4;
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        f[h + i] = src[i] ^ mask[i & 3];
    int rc = bot_write(e, b, f, h + len);
    if (f != stack)
        free(f);
    return rc;
}

void bot_start_ws(bots_env *e, bot *b)
{
    bot_open_socket(e, b, BOT_WS_CONNECT);
}

static void start_login(bots_env *e, bot *b)
{
    bot_open_socket(e, b, BOT_LOGIN_CONNECT);
}

void bot_start(bots_env *e, bot *b)
{
    const bots_opts *o = e->o;
    b->hs = calloc(1, sizeof *b->hs);
    if (!b->hs)
        abort();
    b->hs->give_up_ns = e->now_ns + (uint64_t)(o->connect_timeout_s * 1e9);
    b->deadline_ns = b->hs->give_up_ns;
    b->own_slot = -1;
    uint64_t rel = e->now_ns - o->t0_ns;
    if (!e->st->first_connect_ns || rel < e->st->first_connect_ns)
        e->st->first_connect_ns = rel ? rel : 1;
    if (o->use_login) {
        start_login(e, b);
        return;
    }
    char name[40];
    bot_username(e, b, name, sizeof name);
    if (bots_token_mint(b->hs->token, sizeof b->hs->token, o->jwt_secret, strlen(o->jwt_secret),
                        1000000u + b->gid, name, core_wall_s(), BOT_TTL_S) < 0) {
        bot_decode_fail(e, b, "cannot mint a token");
        return;
    }
    bot_start_ws(e, b);
}

/* ---- game messages ---- */

static void on_ack(bots_env *e, bot *b, uint32_t ack)
{
    if (ack > b->seq)
        ack = b->seq; /* never trust a count past what we sent */
    uint32_t from = b->acked + 1;
    if (b->seq > BOT_RING && from <= b->seq - BOT_RING)
        from = b->seq - BOT_RING + 1; /* older ones were recorded when evicted */
    uint64_t t = now_us(e);
    for (uint32_t s = from; s <= ack; s++) {
        uint32_t k = s % BOT_RING;
        if (!b->sent_in_window[k])
            continue;
        uint64_t lat = t - b->sent_us[k];
        bots_hist_add(&e->st->lat, lat);
        bots_hist_add(e->lat_interval, lat);
        b->sent_in_window[k] = false;
    }
    if (ack > b->acked)
        b->acked = ack;
}

static int on_welcome(bots_env *e, bot *b, const uint8_t *body, size_t len)
{
    proto_welcome w;
    if (b->state != BOT_WS_OPEN || proto_welcome_decode(&w, body, len) != 0)
        return -1;
    b->entity_id = w.entity_id;
    proto_view_init(&b->view, e->o->view_slots);
    if (!e->world_w) {
        e->world_w = w.world_w;
        e->world_h = w.world_h;
    }
    if (!e->st->tick_hz)
        e->st->tick_hz = w.tick_hz;
    free(b->hs);
    b->hs = NULL;
    b->state = BOT_IN_WORLD;
    b->deadline_ns = 0;
    e->n_in_world++;
    e->st->n_connected++;
    e->st->last_welcome_ns = e->now_ns - e->o->t0_ns;
    return 0;
}

static int on_message(bots_env *e, bot *b, const uint8_t *msg, size_t len)
{
    proto_records it;
    proto_records_init(&it, msg, len);
    uint8_t kind;
    const uint8_t *body;
    size_t blen;
    int r;
    while ((r = proto_records_next(&it, &kind, &body, &blen)) == 1) {
        switch (kind) {
        case PROTO_S_WELCOME:
            if (on_welcome(e, b, body, blen) != 0) {
                bot_decode_fail(e, b, "bad or unexpected WELCOME");
                return -1;
            }
            break;
        case PROTO_S_STATE:
            if (b->state != BOT_IN_WORLD && b->state != BOT_CLOSING) {
                bot_decode_fail(e, b, "STATE before WELCOME");
                return -1;
            }
            if (proto_view_apply(&b->view, body, blen) != 0) {
                bot_decode_fail(e, b, "STATE does not apply to the slot table (lost a message?)");
                return -1;
            }
            e->states_total++;
            if (b->view.flags & PROTO_STATE_RESET)
                b->n_view = 0;
            b->n_view += b->view.last_enters - b->view.last_leaves;
            if (e->in_window && b->n_view > e->st->view_max)
                e->st->view_max = b->n_view;
            if (e->in_window && b->state == BOT_IN_WORLD) {
                b->win_states++;
                e->st->states++;
                e->st->entity_updates += b->view.last_enters + b->view.last_updates;
            }
            on_ack(e, b, b->view.ack_seq);
            break;
        case PROTO_S_ERROR: {
            uint16_t code = blen >= 2 ? (uint16_t)(body[0] | body[1] << 8) : 0;
            e->st->err_records[code < PROTO_ERR_COUNT ? code : 0]++;
            break;
        }
        default: /* PONG and kinds of later versions */
            break;
        }
    }
    if (r == 0)
        return 0;
    bot_decode_fail(e, b, "broken record framing");
    return -1;
}

/* ---- WebSocket frames ---- */

static int on_close_frame(bots_env *e, bot *b, const uint8_t *p, size_t len)
{
    uint16_t code = len >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    b->close_seen = true;
    if (b->state == BOT_CLOSING) {
        /* The answer to ours: the handshake is complete. */
        leave_world(e, b);
        bot_close_fd(e, b);
        b->state = BOT_DONE;
        return -1;
    }
    /* The server closed first: echo the code (RFC 6455 5.5.1), count it. */
    uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (ws_send(e, b, 0x8, echo, code == 1005 ? 0 : 2) != 0)
        return -1;
    bots_code_add(e->st->err_close, code, 1);
    bot_fail(e, b);
    return -1;
}

/* Handles one complete frame. Returns 0, or -1 once the bot has ended. */
static int on_frame(bots_env *e, bot *b, bool fin, uint8_t op, const uint8_t *p, size_t len)
{
    switch (op) {
    case 0x9: /* ping */
        return ws_send(e, b, 0xA, p, len);
    case 0xA: /* pong */
        return 0;
    case 0x8:
        return on_close_frame(e, b, p, len);
    case 0x2:
        if (b->is_frag)
            break; /* a new message inside a fragmented one */
        if (fin)
            return on_message(e, b, p, len);
        b->is_frag = true;
        core_buf_append(&b->frag, p, len);
        return 0;
    case 0x0:
        if (!b->is_frag || b->frag.len + len > BOT_FRAME_MAX)
            break;
        core_buf_append(&b->frag, p, len);
        if (fin) {
            core_buf msg = b->frag;
            core_buf_init(&b->frag);
            b->is_frag = false;
            int rc = on_message(e, b, msg.data, msg.len);
            core_buf_free(&msg);
            return rc;
        }
        return 0;
    default: /* text, or a reserved opcode */
        break;
    }
    bot_decode_fail(e, b, "unexpected frame opcode or fragmentation");
    return -1;
}

/* Parses frames from p[0..n); *used gets the bytes of complete frames.
 * Returns 0, or -1 once the bot has ended. */
static int parse_frames(bots_env *e, bot *b, const uint8_t *p, size_t n, size_t *used)
{
    size_t off = 0;
    *used = 0;
    while (n - off >= 2) {
        const uint8_t *f = p + off;
        bool fin = f[0] & 0x80;
        uint8_t op = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if ((f[0] & 0x70) || (f[1] & 0x80)) /* reserved bits, or a masked server frame */
            goto bad;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        if (len > BOT_FRAME_MAX)
            goto bad;
        if (n - off < h + len)
            break;
        off += h + (size_t)len;
        *used = off;
        if (on_frame(e, b, fin, op, f + h, (size_t)len) != 0)
            return -1;
    }
    return 0;
bad:
    bot_decode_fail(e, b, "bad frame header (reserved bits, masked, or too long)");
    return -1;
}

/* Feeds received bytes to the frame parser, keeping a partial frame in
 * b->in. The buffer is taken out of the bot while parsing, since a
 * handler may end the bot and free its buffers. */
static void on_ws_bytes(bots_env *e, bot *b, const uint8_t *p, size_t n)
{
    size_t used;
    if (b->in.len == 0) {
        if (parse_frames(e, b, p, n, &used) == 0 && used < n)
            core_buf_append(&b->in, p + used, n - used);
        return;
    }
    core_buf_append(&b->in, p, n);
    core_buf in = b->in;
    core_buf_init(&b->in);
    int rc = parse_frames(e, b, in.data, in.len, &used);
    if (rc == 0) {
        core_buf_consume(&in, used);
        b->in = in; /* b->in was left empty by the handlers */
    } else {
        core_buf_free(&in);
    }
}

static void on_readable(bots_env *e, bot *b)
{
    ssize_t n = recv(b->fd, e->rbuf, sizeof e->rbuf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    bool is_eof = n <= 0;
    if (is_eof) {
        if (b->state == BOT_LOGIN_WAIT) {
            bot_http_on_login(e, b, true);
            return;
        }
        if (b->state == BOT_CLOSING || b->close_seen) {
            leave_world(e, b);
            bot_close_fd(e, b);
            b->state = BOT_DONE;
            return;
        }
        /* Ended without a close frame: 1006 in RFC 6455's terms. */
        if (b->state == BOT_IN_WORLD || b->state == BOT_WS_OPEN)
            bots_code_add(e->st->err_close, 1006, 1);
        else
            e->st->err_io++;
        bot_fail(e, b);
        return;
    }
    b->last_rx_ns = e->now_ns;
    if (e->in_window && b->state == BOT_IN_WORLD) {
        b->win_bytes += (uint64_t)n;
        e->st->bytes += (uint64_t)n;
    }
    switch (b->state) {
    case BOT_LOGIN_WAIT:
        core_buf_append(&b->in, e->rbuf, (size_t)n);
        bot_http_on_login(e, b, false);
        return;
    case BOT_WS_HANDSHAKE:
        core_buf_append(&b->in, e->rbuf, (size_t)n);
        if (bot_http_on_upgrade(e, b) != 0 || b->state != BOT_WS_OPEN || b->in.len == 0)
            return;
        /* Frames that came with the 101 (WELCOME often does). */
        {
            core_buf rest = b->in;
            core_buf_init(&b->in);
            on_ws_bytes(e, b, rest.data, rest.len);
            core_buf_free(&rest);
        }
        return;
    case BOT_WS_OPEN:
    case BOT_IN_WORLD:
    case BOT_CLOSING:
        on_ws_bytes(e, b, e->rbuf, (size_t)n);
        return;
    default:
        return;
    }
}

void bot_on_event(bots_env *e, bot *b, uint32_t events)
{
    if (b->fd < 0)
        return;
    if (b->state == BOT_LOGIN_CONNECT || b->state == BOT_WS_CONNECT) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
            e->st->err_connect++;
            bot_fail(e, b);
            return;
        }
        b->want_out = false;
        set_events(e, b, EPOLLIN, EPOLL_CTL_MOD);
        if (b->state == BOT_LOGIN_CONNECT) {
            b->state = BOT_LOGIN_WAIT;
            bot_http_send_login(e, b);
        } else {
            b->state = BOT_WS_HANDSHAKE;
            bot_http_send_upgrade(e, b);
        }
        return;
    }
    if ((events & EPOLLOUT) && b->out.len > 0 && flush_out(e, b) != 0)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(e, b);
}

/* ---- inputs, deadlines, closing ---- */

int bot_send_input(bots_env *e, bot *b, float dx, float dy)
{
    if (b->state != BOT_IN_WORLD)
        return -1;
    uint32_t s = ++b->seq;
    uint32_t k = s % BOT_RING;
    if (b->sent_in_window[k]) {
        /* Seq s - BOT_RING is still unacknowledged after 6.4 s: record
         * the wait so far (a lower bound) rather than lose the sample. */
        uint64_t lat = now_us(e) - b->sent_us[k];
        bots_hist_add(&e->st->lat, lat);
        bots_hist_add(e->lat_interval, lat);
    }
    b->sent_us[k] = (uint32_t)now_us(e);
    b->sent_in_window[k] = e->in_window;
    uint8_t rec[14] = {PROTO_C_INPUT, 12};
    for (int i = 0; i < 4; i++)
        rec[2 + i] = (uint8_t)(s >> (8 * i));
    memcpy(rec + 6, &dx, 4); /* little-endian hosts only, like the server */
    memcpy(rec + 10, &dy, 4);
    if (e->in_window)
        e->st->inputs_sent++;
    return ws_send(e, b, 0x2, rec, sizeof rec);
}

void bot_check_deadline(bots_env *e, bot *b)
{
    switch (b->state) {
    case BOT_LOGIN_BACKOFF:
        if (e->now_ns >= b->hs->give_up_ns) {
            e->st->err_timeout++;
            bot_fail(e, b);
        } else if (e->now_ns >= b->deadline_ns) {
            b->deadline_ns = b->hs->give_up_ns;
            start_login(e, b);
        }
        return;
    case BOT_LOGIN_CONNECT:
    case BOT_LOGIN_WAIT:
    case BOT_WS_CONNECT:
    case BOT_WS_HANDSHAKE:
    case BOT_WS_OPEN:
        if (e->now_ns >= b->deadline_ns) {
            e->st->err_timeout++;
            bot_fail(e, b);
        }
        return;
    case BOT_IN_WORLD:
        if (e->now_ns - b->last_rx_ns > BOT_STALL_NS) {
            e->st->err_timeout++;
            bot_fail(e, b);
        }
        return;
    case BOT_CLOSING:
        /* The server did not answer our close in time; the run is over,
         * so this is noted by the missing BOT_DONE, not as an error. */
        if (e->now_ns >= b->deadline_ns) {
            leave_world(e, b);
            bot_close_fd(e, b);
            b->state = BOT_DONE;
        }
        return;
    default:
        return;
    }
}

void bot_close(bots_env *e, bot *b)
{
    switch (b->state) {
    case BOT_IN_WORLD: {
        static const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'}; /* 1000 */
        if (ws_send(e, b, 0x8, bye, sizeof bye) != 0)
            return;
        b->state = BOT_CLOSING;
        b->deadline_ns = e->now_ns + BOT_CLOSE_WAIT_NS;
        return;
    }
    case BOT_LOGIN_CONNECT:
    case BOT_LOGIN_WAIT:
    case BOT_LOGIN_BACKOFF:
    case BOT_WS_CONNECT:
    case BOT_WS_HANDSHAKE:
    case BOT_WS_OPEN:
        /* Still not in the world when the run ends. */
        e->st->err_timeout++;
        bot_fail(e, b);
        return;
    default:
        return;
    }
}

bool bot_own_position(bot *b, float *x, float *y)
{
    const proto_view *v = &b->view;
    int s = b->own_slot;
    if (s < 0 || (uint32_t)s >= v->n_slots || v->slots[s].entity_id != b->entity_id) {
        s = proto_view_find(v, b->entity_id);
        b->own_slot = s;
    }
    if (s < 0)
        return false;
    *x = (float)v->slots[s].x_q / PROTO_POS_SCALE;
    *y = (float)v->slots[s].y_q / PROTO_POS_SCALE;
    return true;
}
