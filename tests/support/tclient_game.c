/* tclient_game.c - test client, part 3: the game protocol (see
 * tclient.h).
 *
 * Records are encoded by hand from docs/protocol.md rather than with
 * proto.h's writers, so an encoder bug shared by server and client cannot
 * hide; WELCOME and STATE are decoded with proto.h (proto_welcome_decode,
 * proto_view_apply), whose slot-table logic the simulation tests pin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tclient.h"
#include "tclient_int.h"

/* ================================================================== */
/* 5. Game protocol                                                    */
/* ================================================================== */

static void rec_header(core_buf *b, uint8_t kind, size_t len)
{
    core_buf_u8(b, kind);
    core_buf_varint(b, len);
}

int ts_send_input(ts_ws *ws, uint32_t seq, float dx, float dy)
{
    core_buf b;
    core_buf_init(&b);
    rec_header(&b, PROTO_C_INPUT, 12);
    core_buf_u32(&b, seq);
    core_buf_f32(&b, dx);
    core_buf_f32(&b, dy);
    int r = ts_ws_send_binary(ws, b.data, b.len);
    core_buf_free(&b);
    return r;
}

int ts_send_ping_record(ts_ws *ws, uint32_t nonce)
{
    uint8_t m[6] = {PROTO_C_PING,           4,
                    (uint8_t)nonce,         (uint8_t)(nonce >> 8),
                    (uint8_t)(nonce >> 16), (uint8_t)(nonce >> 24)};
    return ts_ws_send_binary(ws, m, sizeof m);
}

void ts_game_init(ts_game *g)
{
    memset(g, 0, sizeof *g);
    proto_view_init(&g->view, 1024);
}

void ts_game_free(ts_game *g)
{
    proto_view_free(&g->view);
    free(g->owners);
    free(g->obstacles);
    memset(g, 0, sizeof *g);
}

bool ts_game_has_error(const ts_game *g, uint16_t code)
{
    uint32_t n = g->n_errors < TS_GAME_MAX_ERRORS ? g->n_errors : TS_GAME_MAX_ERRORS;
    for (uint32_t i = 0; i < n; i++)
        if (g->errors[i].code == code)
            return true;
    return false;
}

bool ts_game_has_pong(const ts_game *g, uint32_t nonce)
{
    uint32_t n = g->n_pongs < TS_GAME_MAX_PONGS ? g->n_pongs : TS_GAME_MAX_PONGS;
    for (uint32_t i = 0; i < n; i++)
        if (g->pong_nonces[i] == nonce)
            return true;
    return false;
}

static void game_welcome(ts_game *g, const uint8_t *body, size_t len)
{
    proto_welcome w;
    if (proto_welcome_decode(&w, body, len) != 0) {
        g->n_bad++;
        return;
    }
    size_t n_cells = (size_t)w.cells_x * w.cells_y;
    size_t n_obs = (size_t)w.n_obstacles * 12;
    free(g->owners);
    free(g->obstacles);
    g->owners = malloc(n_cells ? n_cells : 1);
    g->obstacles = malloc(n_obs ? n_obs : 1);
    if (n_cells)
        memcpy(g->owners, w.owners, n_cells);
    if (n_obs)
        memcpy(g->obstacles, w.obstacles, n_obs);
    w.owners = g->owners;
    w.obstacles = g->obstacles;
    g->welcome = w;
    g->entity_id = w.entity_id;
    g->has_welcome = true;
}

static void game_message(ts_game *g, const uint8_t *msg, size_t len)
{
    proto_records it;
    proto_records_init(&it, msg, len);
    uint8_t kind;
    const uint8_t *body;
    size_t blen;
    int r;
    while ((r = proto_records_next(&it, &kind, &body, &blen)) == 1) {
        if (g->on_record)
            g->on_record(g->ctx, kind, body, blen);
        core_rd rd = core_rd_init(body, blen);
        switch (kind) {
        case PROTO_S_WELCOME:
            game_welcome(g, body, blen);
            break;
        case PROTO_S_STATE:
            if (proto_view_apply(&g->view, body, blen) == 0)
                g->n_states++;
            else
                g->n_bad++;
            break;
        case PROTO_S_PONG: {
            uint32_t nonce = core_rd_u32(&rd);
            uint32_t tick = core_rd_u32(&rd);
            if (!core_rd_ok(&rd)) {
                g->n_bad++;
                break;
            }
            g->pong_nonces[g->n_pongs % TS_GAME_MAX_PONGS] = nonce;
            g->pong_tick = tick;
            g->n_pongs++;
            break;
        }
        case PROTO_S_ERROR: {
            uint16_t code = core_rd_u16(&rd);
            uint8_t rl = core_rd_u8(&rd);
            const uint8_t *reason = core_rd_bytes(&rd, rl);
            if (!core_rd_ok(&rd)) {
                g->n_bad++;
                break;
            }
            if (g->n_errors < TS_GAME_MAX_ERRORS) {
                ts_game_error *e = &g->errors[g->n_errors];
                e->code = code;
                memcpy(e->reason, reason, rl);
                e->reason[rl] = 0;
            }
            g->n_errors++;
            break;
        }
        default:
            break; /* unknown kinds are skipped (protocol.md section 4) */
        }
    }
    if (r < 0)
        g->n_bad++;
}

int ts_game_pump(ts_ws *ws, ts_game *g, int timeout_ms, bool (*done)(const ts_game *g, void *ctx),
                 void *ctx)
{
    uint64_t deadline = ts_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    if (done && done(g, ctx))
        return 0;
    if (g->is_closed)
        return -1;
    for (;;) {
        int left = ts__ms_left(deadline);
        uint8_t op;
        const uint8_t *p;
        size_t n;
        if (ts_ws_recv_msg(ws, left, &op, &p, &n) != 0) {
            if (ws->is_eof) {
                g->is_closed = true;
                g->close_code = TS_WS_NO_CLOSE;
                return -1;
            }
            if (ts__ms_left(deadline) > 0)
                continue;
            return done ? 1 : 0;
        }
        if (op == TS_WS_CLOSE) {
            g->is_closed = true;
            g->close_code = ts__close_code_of(p, n, g->close_reason, sizeof g->close_reason);
            if (!ws->close_sent)
                (void)ts_ws_send_close(ws, g->close_code == 1005 ? 0 : (uint16_t)g->close_code,
                                       NULL);
            return -1;
        }
        if (op == TS_WS_BINARY) {
            g->n_messages++;
            game_message(g, p, n);
        } else {
            g->n_bad++;
        }
        if (done && done(g, ctx))
            return 0;
        if (ts__ms_left(deadline) == 0)
            return done ? 1 : 0;
    }
}

static bool until_welcome(const ts_game *g, void *ctx)
{
    (void)ctx;
    return g->has_welcome;
}

static bool until_states(const ts_game *g, void *ctx)
{
    return g->n_states >= *(const uint32_t *)ctx;
}

static bool until_ack(const ts_game *g, void *ctx)
{
    return g->n_states > 0 && g->view.ack_seq >= *(const uint32_t *)ctx;
}

static bool until_error(const ts_game *g, void *ctx)
{
    return ts_game_has_error(g, *(const uint16_t *)ctx);
}

static bool until_pong(const ts_game *g, void *ctx)
{
    return ts_game_has_pong(g, *(const uint32_t *)ctx);
}

int ts_game_wait_welcome(ts_ws *ws, ts_game *g, int timeout_ms)
{
    return ts_game_pump(ws, g, timeout_ms, until_welcome, NULL);
}

int ts_game_wait_states(ts_ws *ws, ts_game *g, uint32_t n_states, int timeout_ms)
{
    return ts_game_pump(ws, g, timeout_ms, until_states, &n_states);
}

int ts_game_wait_ack(ts_ws *ws, ts_game *g, uint32_t seq, int timeout_ms)
{
    return ts_game_pump(ws, g, timeout_ms, until_ack, &seq);
}

int ts_game_wait_error(ts_ws *ws, ts_game *g, uint16_t code, int timeout_ms)
{
    return ts_game_pump(ws, g, timeout_ms, until_error, &code);
}

int ts_game_wait_pong(ts_ws *ws, ts_game *g, uint32_t nonce, int timeout_ms)
{
    return ts_game_pump(ws, g, timeout_ms, until_pong, &nonce);
}

int ts_game_join(int port, const char *username, ts_ws *ws, ts_game *g, int timeout_ms)
{
    ts__ws_zero(ws);
    char token[TS_TOKEN_MAX];
    int st = ts_login(port, username, "password1", token, sizeof token);
    if (st != 200) {
        fprintf(stderr, "tclient: login %s: status %d\n", username, st);
        return -1;
    }
    st = ts_ws_connect(ws, port, token, NULL);
    if (st != 101) {
        fprintf(stderr, "tclient: upgrade %s: status %d\n", username, st);
        return -1;
    }
    uint64_t deadline = ts_now_ms() + (uint64_t)timeout_ms;
    if (ts_game_wait_welcome(ws, g, timeout_ms) != 0 ||
        ts_game_wait_states(ws, g, 1, ts__ms_left(deadline)) != 0) {
        fprintf(stderr, "tclient: %s: no WELCOME and STATE (closed %d, code %d)\n", username,
                g->is_closed, g->close_code);
        ts_ws_close(ws);
        return -1;
    }
    return 0;
}

int ts_game_walk(ts_ws *ws, ts_game *g, uint32_t seq)
{
    int self = proto_view_find(&g->view, g->entity_id);
    if (!g->has_welcome || self < 0)
        return -1;
    float x = (float)g->view.slots[self].x_q / (float)PROTO_POS_SCALE;
    float dir = x < (float)g->welcome.world_w / 2.0f ? 1.0f : -1.0f;
    return ts_send_input(ws, seq, dir, 0.0f);
}
