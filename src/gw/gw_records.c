/* gw_records.c - the gateway's part of items and chat: PICKUP, DROP and
 * CHAT records from a client are checked statelessly (size, slot range,
 * UTF-8) and forwarded to the shard that owns the player, numbered with
 * the same gateway sequence (gseq) as INPUTs, so the shard applies a
 * session's inputs and records in the order the client sent them, also
 * across a handoff (docs/protocol.md sections 5 and 10).
 *
 * Records are rare next to inputs (a player picks things up, drops them
 * and chats at human speed), so each goes out at once in its own RECORDS
 * bus message; this round's INPUTS batch for the same shard is sent just
 * before it, so the bus carries them in gseq order. */
#include "core_log.h"
#include "gw_int.h"

proto_err gw_records_forward(gw *g, gw_conn *c, uint8_t kind, const uint8_t *body, size_t len)
{
    proto_err e;
    if (kind == PROTO_C_PICKUP) {
        proto_pickup p;
        e = proto_pickup_decode(&p, body, len);
    } else if (kind == PROTO_C_DROP) {
        proto_drop d;
        e = proto_drop_decode(&d, body, len);
    } else {
        e = proto_chat_check(body, len);
    }
    if (e != PROTO_ERR_NONE)
        return e;
    uint16_t shard = c->route_shard;
    if (g->inputs_used & (1ull << shard)) {
        gw_bus_send_shard(g, shard, &g->inputs[shard]);
        g->inputs_used &= ~(1ull << shard);
    }
    proto_bus_record rec = {.session_id = c->id,
                            .entity_id = c->entity_id,
                            .gseq = ++c->gseq, /* shared with inputs: no gaps */
                            .kind = kind,
                            .len = (uint16_t)len,
                            .body = body};
    size_t at;
    core_buf_reset(&g->tmp);
    proto_bus_records_begin(&g->tmp, &at);
    proto_bus_records_add(&g->tmp, at, &rec);
    gw_bus_send_shard(g, shard, &g->tmp);
    return PROTO_ERR_NONE;
}
