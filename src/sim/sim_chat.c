/* sim_chat.c - chat lines: a player's CHAT record reaches every player
 * within aoi_radius of the speaker's position at the tick it was said,
 * speaker included, reliably and in order.
 *
 * The speaker's shard puts a CHAT record in the reliable records of its
 * own players within the radius (they go out in this tick's frame) and
 * sends the line (PROTO_BUS_CHAT, with the speaker's position) to every
 * other shard owning a cell within the radius; each delivers to its own
 * players within the radius of that position when it drains its inbox.
 * Lines of one speaker keep their order: they are applied in gseq order
 * and the bus keeps the order per sender and receiver.
 *
 * Rate: a token bucket per player (CHAT_BURST lines, refilled at
 * CHAT_PER_S), carried in handoffs; a line over it is refused with ERROR
 * chat_rate_limited. */
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"

#define CHAT_BURST 5.0f /* lines a player may say at once */
#define CHAT_PER_S 1.0f /* lines per second after the burst */

/* Appends the line to every player we own within aoi_radius of (x, y). */
static void deliver(sim_shard *s, float x, float y, const proto_chat *line)
{
    float r = (float)s->cfg->aoi_radius;
    size_t n = sim_index_collect(s, x, y, r, s->cand, s->cand_cap);
    if (n > s->cand_cap) {
        sim_cand_reserve(s, n);
        n = sim_index_collect(s, x, y, r, s->cand, s->cand_cap);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t e = s->cand[i];
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE || s->client[e] == SIM_NONE)
            continue;
        float dx = s->x[e] - x, dy = s->y[e] - y;
        if (dx * dx + dy * dy > s->aoi_r2)
            continue;
        proto_write_chat(sim_client_reliable(&s->clients[s->client[e]]), line);
    }
}

bool sim_chat_is_full(const sim_shard *s, const sim_client_more *m)
{
    /* the refill sim_chat_say would make now, to the same float */
    float hz = (float)s->cfg->tick_hz;
    return m->chat_tokens < 0.0f ||
           m->chat_tokens + (float)(s->tick - m->chat_tick) * CHAT_PER_S / hz >= CHAT_BURST;
}

void sim_chat_say(sim_shard *s, uint32_t ci, const uint8_t *text, size_t len)
{
    sim_client *c = &s->clients[ci];
    sim_client_more *m = sim_client_more_get(c);
    float hz = (float)s->cfg->tick_hz;
    if (m->chat_tokens < 0.0f) { /* first line: a full bucket */
        m->chat_tokens = CHAT_BURST;
        m->chat_tick = s->tick;
    }
    m->chat_tokens += (float)(s->tick - m->chat_tick) * CHAT_PER_S / hz;
    if (m->chat_tokens > CHAT_BURST)
        m->chat_tokens = CHAT_BURST;
    m->chat_tick = s->tick;
    if (m->chat_tokens < 1.0f) {
        sim_client_reject(s, ci, PROTO_ERR_CHAT_RATE_LIMITED, "chat rate limit: wait a moment");
        return;
    }
    m->chat_tokens -= 1.0f;

    uint32_t e = c->slot;
    proto_chat line = {.entity_id = s->id[e], .text_len = (uint8_t)len};
    sim_name_get(s, e, line.name);
    memcpy(line.text, text, len);
    float x = s->x[e], y = s->y[e];
    deliver(s, x, y, &line);
    sim_items_count_chat(s);

    /* every other shard owning a cell within the radius (nine points, as
     * for ghosts: aoi_radius <= cell_size) */
    const spatial_cellmap *cm = s->cells;
    float r = (float)s->cfg->aoi_radius;
    uint64_t sent = 1ull << s->index;
    for (int j = -1; j <= 1; j++)
        for (int i = -1; i <= 1; i++) {
            int o = spatial_cellmap_owner(cm, x + (float)i * r, y + (float)j * r);
            if (sent & (1ull << o))
                continue;
            sent |= 1ull << o;
            core_buf_reset(&s->msg);
            proto_bus_chat_write(&s->msg, s->tick, x, y, &line);
            bus_send(s->bus, BUS_EP_SHARD(o), s->msg.data, s->msg.len);
        }
}

void sim_chat_relay_recv(sim_shard *s, core_rd *r)
{
    uint32_t tick;
    float x, y;
    proto_chat line;
    if (proto_bus_chat_read(r, &tick, &x, &y, &line) != 0)
        return;
    deliver(s, x, y, &line);
}
