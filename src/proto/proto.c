/* proto.c - client record codec: framing, INPUT/PING/PONG/ERROR, WELCOME,
 * and the STATE decoder (proto_view). The STATE encoder lives with the
 * shard's AOI diff (sim_aoi.c) because it is driven by it; the format is
 * documented in proto.h's banner and docs/protocol.md section 7. */
#include "proto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"

static const char *const err_names[PROTO_ERR_COUNT] = {
    [PROTO_ERR_NONE] = "none",
    [PROTO_ERR_UNKNOWN_KIND] = "unknown_kind",
    [PROTO_ERR_MALFORMED] = "malformed",
    [PROTO_ERR_NOT_FINITE] = "not_finite",
    [PROTO_ERR_OUT_OF_RANGE] = "out_of_range",
    [PROTO_ERR_TOO_MANY_INPUTS] = "too_many_inputs",
    [PROTO_ERR_STALE_SEQ] = "stale_seq",
    [PROTO_ERR_RATE_LIMITED] = "rate_limited",
    [PROTO_ERR_NOT_IN_WORLD] = "not_in_world",
    [PROTO_ERR_NOT_AN_ITEM] = "not_an_item",
    [PROTO_ERR_OUT_OF_REACH] = "out_of_reach",
    [PROTO_ERR_BAD_SLOT] = "bad_slot",
    [PROTO_ERR_BAD_TEXT] = "bad_text",
    [PROTO_ERR_CHAT_RATE_LIMITED] = "chat_rate_limited",
    [PROTO_ERR_ITEM_GONE] = "item_gone",
    [PROTO_ERR_INVENTORY_FULL] = "inventory_full",
    [PROTO_ERR_STORE_UNAVAILABLE] = "store_unavailable",
    [PROTO_ERR_CONFLICT] = "conflict",
};

const char *proto_err_name(proto_err e)
{
    if ((unsigned)e >= PROTO_ERR_COUNT)
        return "unknown";
    return err_names[e];
}

void proto_records_init(proto_records *it, const void *msg, size_t len)
{
    it->rd = core_rd_init(msg, len);
}

int proto_records_next(proto_records *it, uint8_t *kind, const uint8_t **body, size_t *body_len)
{
    if (it->rd.err)
        return -1;
    if (core_rd_left(&it->rd) == 0)
        return 0;
    *kind = core_rd_u8(&it->rd);
    uint64_t n = core_rd_varint(&it->rd);
    if (!core_rd_ok(&it->rd) || n > core_rd_left(&it->rd)) {
        it->rd.err = true;
        return -1;
    }
    *body = core_rd_bytes(&it->rd, (size_t)n);
    *body_len = (size_t)n;
    return 1;
}

void proto_record_begin(core_buf *b, uint8_t kind, size_t body_len)
{
    core_buf_u8(b, kind);
    core_buf_varint(b, body_len);
}

proto_err proto_input_decode(proto_input *out, const uint8_t *body, size_t len)
{
    if (len != 12)
        return PROTO_ERR_MALFORMED;
    core_rd r = core_rd_init(body, len);
    out->seq = core_rd_u32(&r);
    out->dir_x = core_rd_f32(&r);
    out->dir_y = core_rd_f32(&r);
    if (!isfinite(out->dir_x) || !isfinite(out->dir_y))
        return PROTO_ERR_NOT_FINITE;
    /* 1.001 squared, so a client normalising in float never trips it. */
    if (out->dir_x * out->dir_x + out->dir_y * out->dir_y > 1.002001f)
        return PROTO_ERR_OUT_OF_RANGE;
    return PROTO_ERR_NONE;
}

void proto_write_input(core_buf *b, const proto_input *in)
{
    proto_record_begin(b, PROTO_C_INPUT, 12);
    core_buf_u32(b, in->seq);
    core_buf_f32(b, in->dir_x);
    core_buf_f32(b, in->dir_y);
}

void proto_write_ping(core_buf *b, uint32_t nonce)
{
    proto_record_begin(b, PROTO_C_PING, 4);
    core_buf_u32(b, nonce);
}

void proto_write_pong(core_buf *b, uint32_t nonce, uint32_t tick)
{
    proto_record_begin(b, PROTO_S_PONG, 8);
    core_buf_u32(b, nonce);
    core_buf_u32(b, tick);
}

void proto_write_error(core_buf *b, proto_err code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > 255)
        n = 255;
    proto_record_begin(b, PROTO_S_ERROR, 3 + n);
    core_buf_u16(b, (uint16_t)code);
    core_buf_u8(b, (uint8_t)n);
    core_buf_append(b, reason, n);
}

/* ---- WELCOME ---- */

#define WELCOME_FIXED 39 /* bytes before owners */

void proto_write_welcome(core_buf *b, const proto_welcome *w, const proto_obstacle *obstacles)
{
    size_t n_cells = (size_t)w->cells_x * w->cells_y;
    size_t len = WELCOME_FIXED + n_cells + 2 + (size_t)w->n_obstacles * 12;
    proto_record_begin(b, PROTO_S_WELCOME, len);
    size_t start = b->len;
    core_buf_u16(b, w->version);
    core_buf_u32(b, w->entity_id);
    core_buf_u32(b, w->tick);
    core_buf_u16(b, w->tick_hz);
    core_buf_u32(b, w->world_w);
    core_buf_u32(b, w->world_h);
    core_buf_u16(b, w->cell_size);
    core_buf_u8(b, w->n_shards);
    core_buf_f32(b, w->aoi_radius);
    core_buf_f32(b, w->entity_radius);
    core_buf_f32(b, w->player_speed);
    core_buf_u16(b, w->cells_x);
    core_buf_u16(b, w->cells_y);
    /* fixed part: 2+4+4+2+4+4+2+1+4+4+4+2+2 = 39; keep the constant honest */
    core_buf_append(b, w->owners, n_cells);
    core_buf_u16(b, w->n_obstacles);
    for (uint16_t i = 0; i < w->n_obstacles; i++) {
        core_buf_f32(b, obstacles[i].x);
        core_buf_f32(b, obstacles[i].y);
        core_buf_f32(b, obstacles[i].r);
    }
    if (b->len - start != len)
        core_die("welcome length mismatch: %zu != %zu", b->len - start, len);
}

int proto_welcome_decode(proto_welcome *w, const uint8_t *body, size_t len)
{
    core_rd r = core_rd_init(body, len);
    w->version = core_rd_u16(&r);
    w->entity_id = core_rd_u32(&r);
    w->tick = core_rd_u32(&r);
    w->tick_hz = core_rd_u16(&r);
    w->world_w = core_rd_u32(&r);
    w->world_h = core_rd_u32(&r);
    w->cell_size = core_rd_u16(&r);
    w->n_shards = core_rd_u8(&r);
    w->aoi_radius = core_rd_f32(&r);
    w->entity_radius = core_rd_f32(&r);
    w->player_speed = core_rd_f32(&r);
    w->cells_x = core_rd_u16(&r);
    w->cells_y = core_rd_u16(&r);
    w->owners = core_rd_bytes(&r, (size_t)w->cells_x * w->cells_y);
    w->n_obstacles = core_rd_u16(&r);
    w->obstacles = core_rd_bytes(&r, (size_t)w->n_obstacles * 12);
    if (!core_rd_ok(&r) || core_rd_left(&r) != 0)
        return -1;
    return 0;
}

/* ---- STATE decoder ---- */

void proto_view_init(proto_view *v, uint32_t n_slots)
{
    memset(v, 0, sizeof *v);
    v->n_slots = n_slots;
    v->slots = calloc(n_slots, sizeof *v->slots);
    if (!v->slots)
        core_die("out of memory");
}

void proto_view_free(proto_view *v)
{
    free(v->slots);
    memset(v, 0, sizeof *v);
}

int proto_view_find(const proto_view *v, uint32_t entity_id)
{
    for (uint32_t i = 0; i < v->n_slots; i++)
        if (v->slots[i].entity_id == entity_id)
            return (int)i;
    return -1;
}

int proto_view_apply(proto_view *v, const uint8_t *body, size_t len)
{
    core_rd r = core_rd_init(body, len);
    v->tick = core_rd_u32(&r);
    v->ack_seq = core_rd_u32(&r);
    v->flags = core_rd_u8(&r);
    v->shard = core_rd_u8(&r);
    if (!core_rd_ok(&r))
        return -1;
    if ((v->flags & PROTO_STATE_RESET) && v->slots)
        memset(v->slots, 0, v->n_slots * sizeof *v->slots);
    v->last_enters = v->last_leaves = v->last_updates = 0;

    uint64_t n_leave = core_rd_varint(&r);
    for (uint64_t i = 0; i < n_leave && core_rd_ok(&r); i++) {
        uint64_t s = core_rd_varint(&r);
        if (s >= v->n_slots || !v->slots[s].entity_id)
            return -1;
        memset(&v->slots[s], 0, sizeof v->slots[s]);
        v->last_leaves++;
    }
    uint64_t n_enter = core_rd_varint(&r);
    for (uint64_t i = 0; i < n_enter && core_rd_ok(&r); i++) {
        uint64_t s = core_rd_varint(&r);
        proto_view_entity e = {0};
        e.entity_id = core_rd_u32(&r);
        e.kind = core_rd_u8(&r);
        e.x_q = core_rd_i32(&r);
        e.y_q = core_rd_i32(&r);
        uint8_t nl = core_rd_u8(&r);
        const uint8_t *name = core_rd_bytes(&r, nl);
        if (!core_rd_ok(&r) || s >= v->n_slots || nl > PROTO_NAME_MAX || e.entity_id == 0 ||
            v->slots[s].entity_id)
            return -1;
        memcpy(e.name, name, nl);
        /* kind 2: the name field is the item descriptor */
        if (e.kind == PROTO_KIND_ITEM &&
            proto_item_desc_read(name, nl, &e.item_kind, &e.quantity) != 0)
            return -1;
        v->slots[s] = e;
        v->last_enters++;
    }
    uint64_t n_bits = core_rd_varint(&r);
    if (!core_rd_ok(&r) || n_bits > v->n_slots)
        return -1;
    const uint8_t *mask = core_rd_bytes(&r, (size_t)((n_bits + 7) / 8));
    for (uint64_t s = 0; s < n_bits && core_rd_ok(&r); s++) {
        if (!(mask[s / 8] & (1u << (s % 8))))
            continue;
        if (!v->slots[s].entity_id)
            return -1;
        int8_t dx = (int8_t)core_rd_u8(&r);
        if (dx == -128) {
            v->slots[s].x_q = core_rd_i32(&r);
            v->slots[s].y_q = core_rd_i32(&r);
        } else {
            int8_t dy = (int8_t)core_rd_u8(&r);
            /* wrapping arithmetic: a hostile server cannot cause UB */
            v->slots[s].x_q = (int32_t)((uint32_t)v->slots[s].x_q + (uint32_t)(int32_t)dx);
            v->slots[s].y_q = (int32_t)((uint32_t)v->slots[s].y_q + (uint32_t)(int32_t)dy);
        }
        v->last_updates++;
    }
    if (!core_rd_ok(&r) || core_rd_left(&r) != 0)
        return -1;
    return 0;
}
