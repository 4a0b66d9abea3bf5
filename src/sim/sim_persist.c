/* sim_persist.c - players' state to the store. The shard never waits for
 * the database: it hands states to the store's coalescing queue (latest
 * wins per account), which flushes them in one transaction per flush
 * interval on the store thread. A state the queue refuses (full) stays
 * dirty and is offered again next tick. */
#include <math.h>

#include "core_time.h"
#include "sim_int.h"
#include "store.h"

void sim_shard_set_store(sim_shard *s, struct store *st)
{
    s->st = st;
}

void sim_persist_client(sim_shard *s, sim_client *c)
{
    if (!s->st || c->slot == SIM_NONE || c->account_id == 0)
        return;
    float x = s->x[c->slot], y = s->y[c->slot];
    if (x == c->saved_x && y == c->saved_y)
        return;
    store_player p = {
        .account_id = c->account_id,
        .x = x,
        .y = y,
        .hp = 100,
        .version = s->tick, /* ticks only grow: an older state never wins */
        .last_seen_s = core_wall_s(),
    };
    if (store_submit_player(s->st, &p) == STORE_OK) {
        c->saved_x = x;
        c->saved_y = y;
    } else {
        core_counter_add(s->m_store_refused, 1);
    }
}

void sim_persist_players(sim_shard *s)
{
    if (!s->st)
        return;
    for (uint32_t ci = 0; ci < s->n_clients_used; ci++)
        if (s->clients[ci].session_id)
            sim_persist_client(s, &s->clients[ci]);
}
