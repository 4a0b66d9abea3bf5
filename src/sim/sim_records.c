/* sim_records.c - the PICKUP, DROP and CHAT records of players, in order
 * with their inputs.
 *
 * The gateway numbers records and inputs of a session with one gateway
 * sequence (gseq) and sends records in RECORDS bus messages. Here they
 * join the shard's command queue next to inputs (sim_cmd.rec_kind != 0,
 * the body in s->rec_arena for this tick); sim_input.c sorts and holds
 * them with the inputs, so a record is applied exactly once, after every
 * input and record sent before it, also across a handoff. A held record's
 * body waits in its client's `held` buffer (u32 gseq, u8 kind, u16 len,
 * body), which travels in the handoff (sim_items_write_client). A record
 * for a session handed to another shard is forwarded with its gseq. */
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"

/* A record body in this tick's arena (empty bodies leave it unallocated). */
static const uint8_t *arena_at(const sim_shard *s, uint32_t off)
{
    return s->rec_arena.data ? s->rec_arena.data + off : (const uint8_t *)"";
}

static void forward_record(sim_shard *s, int to, const proto_bus_record *rec)
{
    size_t at;
    core_buf_reset(&s->msg);
    proto_bus_records_begin(&s->msg, &at);
    proto_bus_records_add(&s->msg, at, rec);
    bus_send(s->bus, BUS_EP_SHARD(to), s->msg.data, s->msg.len);
}

void sim_records_collect(sim_shard *s, core_rd *r, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        proto_bus_record rec;
        if (proto_bus_record_read(r, &rec) != 0)
            return;
        uint32_t ci = core_idmap_get(&s->sessions, rec.session_id);
        if (ci == CORE_IDMAP_NONE) {
            int to = sim_forward_lookup(s, rec.session_id);
            if (to >= 0)
                forward_record(s, to, &rec); /* handed off: it keeps its gseq */
            else
                sim_count_reject(s, PROTO_ERR_NOT_IN_WORLD);
            continue;
        }
        if (s->n_cmds == s->cmds_cap) {
            s->cmds_cap = s->cmds_cap ? s->cmds_cap * 2 : 1024;
            s->cmds = realloc(s->cmds, s->cmds_cap * sizeof *s->cmds);
            if (!s->cmds)
                core_die("out of memory");
        }
        s->cmds[s->n_cmds++] = (sim_cmd){.entity_id = s->id[s->clients[ci].slot],
                                         .client = ci,
                                         .session_id = rec.session_id,
                                         .gseq = rec.gseq,
                                         .rec_kind = rec.kind,
                                         .rec_len = rec.len,
                                         .rec_off = (uint32_t)s->rec_arena.len};
        core_buf_append(&s->rec_arena, rec.body, rec.len);
    }
}

void sim_records_hold(sim_shard *s, sim_client *c, const sim_cmd *cmd)
{
    /* with nothing pending no held body is referred to: start afresh, so
     * the buffer never grows past the pending window */
    sim_client_more *m = sim_client_more_get(c);
    if (m->n_pending == 0)
        core_buf_reset(&m->held);
    core_buf_u32(&m->held, cmd->gseq);
    core_buf_u8(&m->held, cmd->rec_kind);
    core_buf_u16(&m->held, cmd->rec_len);
    core_buf_append(&m->held, arena_at(s, cmd->rec_off), cmd->rec_len);
}

/* Validates again (the bus is not the gateway) and applies one record. */
static void dispatch(sim_shard *s, uint32_t ci, uint8_t kind, const uint8_t *body, size_t len)
{
    proto_err e = PROTO_ERR_NONE;
    switch (kind) {
    case PROTO_C_PICKUP: {
        proto_pickup p;
        e = proto_pickup_decode(&p, body, len);
        if (e == PROTO_ERR_NONE)
            sim_items_pickup(s, ci, &p);
        break;
    }
    case PROTO_C_DROP: {
        proto_drop d;
        e = proto_drop_decode(&d, body, len);
        if (e == PROTO_ERR_NONE)
            sim_items_drop(s, ci, &d);
        break;
    }
    case PROTO_C_CHAT:
        e = proto_chat_check(body, len);
        if (e == PROTO_ERR_NONE)
            sim_chat_say(s, ci, body, len);
        break;
    default:
        e = PROTO_ERR_UNKNOWN_KIND;
    }
    if (e != PROTO_ERR_NONE)
        sim_client_reject(s, ci, e, proto_err_name(e));
}

void sim_records_apply_held(sim_shard *s, uint32_t ci, uint32_t gseq)
{
    sim_client *c = &s->clients[ci];
    const core_buf *held = c->more ? &c->more->held : NULL;
    core_rd r =
        core_rd_init(held && held->len ? held->data : (const uint8_t *)"", held ? held->len : 0);
    while (core_rd_left(&r) > 0) {
        uint32_t g = core_rd_u32(&r);
        uint8_t kind = core_rd_u8(&r);
        uint16_t len = core_rd_u16(&r);
        const uint8_t *body = core_rd_bytes(&r, len);
        if (!core_rd_ok(&r))
            break;
        if (g == gseq) {
            /* the body may move if dispatch appends to held: copy it */
            uint8_t copy[PROTO_CHAT_MAX];
            size_t n = len < sizeof copy ? len : sizeof copy;
            memcpy(copy, body, n);
            dispatch(s, ci, kind, copy, n);
            return;
        }
    }
    core_log(CORE_LOG_WARN, "sim", NULL, "shard %u: held record %u of session %u lost", s->index,
             gseq, c->session_id);
}

void sim_records_apply_cmd(sim_shard *s, const sim_cmd *cmd)
{
    dispatch(s, cmd->client, cmd->rec_kind, arena_at(s, cmd->rec_off), cmd->rec_len);
}
