/* proto_bus.c - internal bus messages between gateway and shards.
 *
 *   JOIN    u16 type, u32 session, u16 gw, u32 account, f32 x, f32 y,
 *           u8 name_len, name
 *   LEAVE   u16 type, u32 session, u32 entity
 *   INPUTS  u16 type, u32 count, count x (u32 session, u32 entity, u32 gseq,
 *           u32 seq, f32 dir_x, f32 dir_y)
 *   ROUTE   u16 type, u32 session, u32 entity, u16 shard
 *   DETACH  u16 type, u32 session, u32 entity
 *   ATTACH  u16 type, u32 old_session, u8 keep_seq, then a JOIN body
 *   FRAMES  u16 type, u32 tick, u16 shard, u32 count,
 *           count x (u32 session, u8 flags, u32 len, payload)
 * Readers take a core_rd positioned after the type and report -1 on any
 * short or inconsistent body. */
#include <string.h>

#include "proto.h"

void proto_bus_join_write(core_buf *b, const proto_join *j)
{
    size_t nl = strnlen(j->name, PROTO_NAME_MAX);
    core_buf_u16(b, PROTO_BUS_JOIN);
    core_buf_u32(b, j->session_id);
    core_buf_u16(b, j->gw_id);
    core_buf_u32(b, j->account_id);
    core_buf_f32(b, j->x);
    core_buf_f32(b, j->y);
    core_buf_u8(b, (uint8_t)nl);
    core_buf_append(b, j->name, nl);
}

int proto_bus_join_read(core_rd *r, proto_join *j)
{
    memset(j, 0, sizeof *j);
    j->session_id = core_rd_u32(r);
    j->gw_id = core_rd_u16(r);
    j->account_id = core_rd_u32(r);
    j->x = core_rd_f32(r);
    j->y = core_rd_f32(r);
    uint8_t nl = core_rd_u8(r);
    const uint8_t *name = core_rd_bytes(r, nl);
    if (!core_rd_ok(r) || nl > PROTO_NAME_MAX)
        return -1;
    memcpy(j->name, name, nl);
    return 0;
}

void proto_bus_leave_write(core_buf *b, const proto_leave *l)
{
    core_buf_u16(b, PROTO_BUS_LEAVE);
    core_buf_u32(b, l->session_id);
    core_buf_u32(b, l->entity_id);
}

int proto_bus_leave_read(core_rd *r, proto_leave *l)
{
    l->session_id = core_rd_u32(r);
    l->entity_id = core_rd_u32(r);
    return core_rd_ok(r) ? 0 : -1;
}

void proto_bus_inputs_begin(core_buf *b, size_t *count_at)
{
    core_buf_u16(b, PROTO_BUS_INPUTS);
    *count_at = b->len;
    core_buf_u32(b, 0);
}

void proto_bus_inputs_add(core_buf *b, size_t count_at, const proto_bus_input *in)
{
    core_buf_u32(b, in->session_id);
    core_buf_u32(b, in->entity_id);
    core_buf_u32(b, in->gseq);
    core_buf_u32(b, in->in.seq);
    core_buf_f32(b, in->in.dir_x);
    core_buf_f32(b, in->in.dir_y);
    core_buf_put_u32_at(b, count_at, core_buf_get_u32_at(b, count_at) + 1);
}

int proto_bus_input_read(core_rd *r, proto_bus_input *in)
{
    in->session_id = core_rd_u32(r);
    in->entity_id = core_rd_u32(r);
    in->gseq = core_rd_u32(r);
    in->in.seq = core_rd_u32(r);
    in->in.dir_x = core_rd_f32(r);
    in->in.dir_y = core_rd_f32(r);
    return core_rd_ok(r) ? 0 : -1;
}

void proto_bus_route_write(core_buf *b, const proto_route *rt)
{
    core_buf_u16(b, PROTO_BUS_ROUTE);
    core_buf_u32(b, rt->session_id);
    core_buf_u32(b, rt->entity_id);
    core_buf_u16(b, rt->shard);
}

int proto_bus_route_read(core_rd *r, proto_route *rt)
{
    rt->session_id = core_rd_u32(r);
    rt->entity_id = core_rd_u32(r);
    rt->shard = core_rd_u16(r);
    return core_rd_ok(r) ? 0 : -1;
}

void proto_bus_frames_begin(core_buf *b, uint32_t tick, uint16_t shard, size_t *count_at)
{
    core_buf_u16(b, PROTO_BUS_FRAMES);
    core_buf_u32(b, tick);
    core_buf_u16(b, shard);
    *count_at = b->len;
    core_buf_u32(b, 0);
}

size_t proto_bus_frames_item_begin(core_buf *b, size_t count_at, uint32_t session_id, uint8_t flags)
{
    core_buf_put_u32_at(b, count_at, core_buf_get_u32_at(b, count_at) + 1);
    core_buf_u32(b, session_id);
    core_buf_u8(b, flags);
    size_t len_at = b->len;
    core_buf_u32(b, 0);
    return len_at;
}

void proto_bus_frames_item_end(core_buf *b, size_t len_at)
{
    core_buf_put_u32_at(b, len_at, (uint32_t)(b->len - len_at - 4));
}

int proto_bus_frames_header(core_rd *r, uint32_t *tick, uint16_t *shard, uint32_t *count)
{
    *tick = core_rd_u32(r);
    *shard = core_rd_u16(r);
    *count = core_rd_u32(r);
    return core_rd_ok(r) ? 0 : -1;
}

int proto_bus_frame_read(core_rd *r, proto_frame *f)
{
    f->session_id = core_rd_u32(r);
    f->flags = core_rd_u8(r);
    f->len = core_rd_u32(r);
    f->payload = core_rd_bytes(r, f->len);
    return core_rd_ok(r) ? 0 : -1;
}

void proto_bus_detach_write(core_buf *b, const proto_leave *d)
{
    core_buf_u16(b, PROTO_BUS_DETACH);
    core_buf_u32(b, d->session_id);
    core_buf_u32(b, d->entity_id);
}

void proto_bus_attach_write(core_buf *b, const proto_attach *a)
{
    core_buf_u16(b, PROTO_BUS_ATTACH);
    core_buf_u32(b, a->old_session_id);
    core_buf_u8(b, a->keep_seq);
    /* a JOIN body without its type */
    size_t at = b->len;
    proto_bus_join_write(b, &a->join);
    memmove(b->data + at, b->data + at + 2, b->len - at - 2);
    b->len -= 2;
}

int proto_bus_attach_read(core_rd *r, proto_attach *a)
{
    a->old_session_id = core_rd_u32(r);
    a->keep_seq = core_rd_u8(r);
    if (!core_rd_ok(r) || a->keep_seq > 1)
        return -1;
    return proto_bus_join_read(r, &a->join);
}

void proto_write_session(core_buf *b, const uint8_t token[PROTO_RESUME_TOKEN_BYTES],
                         uint16_t grace_s)
{
    proto_record_begin(b, PROTO_S_SESSION, PROTO_RESUME_TOKEN_BYTES + 2);
    core_buf_append(b, token, PROTO_RESUME_TOKEN_BYTES);
    core_buf_u16(b, grace_s);
}
