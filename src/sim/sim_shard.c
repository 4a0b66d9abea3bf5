/* sim_shard.c - shard lifecycle and the tick:
 *   1. drain the inbox (ghosts, handoffs, joins, leaves, inputs)
 *   2. apply inputs in (entity id, gseq, seq) order
 *   3. NPC wandering, movement, collision, re-index
 *   4. area of interest and a frame per client with news (or due a
 *      keepalive), one FRAMES message per gateway with clients here, even
 *      when it carries no frame (it tells the gateway the tick is done)
 *   5. handoffs of entities that left our cells, then ghosts to neighbours */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_hash.h"
#include "core_log.h"
#include "core_time.h"
#include "sim_int.h"

int sim_shard_create(sim_shard **out, const core_config *cfg, const spatial_cellmap *cells,
                     const sim_map *map, uint16_t index, bus *b, core_metrics *m)
{
    *out = NULL;
    if (index >= cells->n_shards || index >= BUS_MAX_SHARDS)
        return -1;
    sim_shard *s = calloc(1, sizeof *s);
    if (!s)
        core_die("out of memory");
    s->cfg = cfg;
    s->cells = cells;
    s->map = map;
    s->bus = b;
    s->metrics = m;
    s->index = index;
    s->dt = 1.0f / (float)cfg->tick_hz;
    s->aoi_r2 = (float)(cfg->aoi_radius * cfg->aoi_radius);
    double vmax = cfg->player_speed > cfg->npc_speed ? cfg->player_speed : cfg->npc_speed;
    s->aoi_slack = (float)(2.0 * vmax / cfg->tick_hz) + 1.0f;
    core_idmap_init(&s->ids);
    core_idmap_init(&s->far_ids);
    core_idmap_init(&s->sessions);
    core_idmap_init(&s->forward);
    core_rng_seed(&s->rng, cfg->seed * 1000003ull + index);
    s->aoi_grid = spatial_grid_create((float)cells->world_w, (float)cells->world_h,
                                      (float)cfg->aoi_radius / 2.0f, 64);
    s->sort_min = SIM_SORT_MIN;
    s->sort_every = SIM_SORT_TICKS;
    s->crowd_every = SIM_CROWD_REFRESH;
    sim_obstacles_index(s);
    /* squares of side aoi_radius, coarser in a huge world (at most 512
     * across): any side >= aoi_radius works, a client's area touching at
     * most 3 x 3 of them */
    double chg_side = cfg->aoi_radius;
    if (chg_side < (double)cells->world_w / 512.0)
        chg_side = (double)cells->world_w / 512.0;
    if (chg_side < (double)cells->world_h / 512.0)
        chg_side = (double)cells->world_h / 512.0;
    s->chg_inv = (float)(1.0 / chg_side);
    s->chg_nx = (uint32_t)((float)cells->world_w * s->chg_inv) + 1;
    s->chg_ny = (uint32_t)((float)cells->world_h * s->chg_inv) + 1;
    s->chg_tick = calloc((size_t)s->chg_nx * s->chg_ny, sizeof *s->chg_tick);
    if (!s->chg_tick)
        core_die("out of memory");

    char labels[32];
    snprintf(labels, sizeof labels, "shard=\"%u\"", index);
    static const double tick_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025,   0.05,   0.1,   0.25};
    s->m_tick = core_metrics_histogram(m, "tessera_tick_seconds", "Time to run one tick", labels,
                                       tick_bounds, 11);
    s->m_entities =
        core_metrics_gauge(m, "tessera_shard_entities", "Entities owned by a shard", labels);
    s->m_ghosts =
        core_metrics_gauge(m, "tessera_shard_ghosts", "Ghost entities held by a shard", labels);
    s->m_clients =
        core_metrics_gauge(m, "tessera_shard_players", "Players owned by a shard", labels);
    s->m_handoffs_out = core_metrics_counter(m, "tessera_handoffs_out_total",
                                             "Entities handed to another shard", labels);
    s->m_handoffs_in = core_metrics_counter(m, "tessera_handoffs_in_total",
                                            "Entities adopted from another shard", labels);
    s->m_aoi_capped = core_metrics_counter(
        m, "tessera_aoi_capped_total", "Client-ticks whose interest set hit the budget", labels);
    s->m_aoi_recollect = core_metrics_counter(
        m, "tessera_aoi_recollect_total",
        "Crowded client-ticks whose narrowed search found too few and searched the whole radius",
        labels);
    s->m_states_sent = core_metrics_counter(m, "tessera_states_sent_total",
                                            "STATE records sent to clients", labels);
    s->m_states_skipped =
        core_metrics_counter(m, "tessera_states_skipped_total",
                             "Client-ticks with nothing to tell: no STATE sent", labels);
    s->m_aoi_quiet = core_metrics_counter(
        m, "tessera_aoi_quiet_total",
        "Client-ticks whose area of interest saw no change: no AOI pass", labels);
    s->m_inputs_applied =
        core_metrics_counter(m, "tessera_inputs_applied_total", "Inputs applied by shards", NULL);
    s->m_store_refused = core_metrics_counter(
        m, "tessera_player_saves_refused_total",
        "Player state saves refused by a full store queue (retried next tick)", NULL);
    s->m_inputs_duplicate = core_metrics_counter(
        m, "tessera_inputs_duplicate_total",
        "Inputs dropped because their gateway sequence was already applied", NULL);
    s->m_inputs_skipped =
        core_metrics_counter(m, "tessera_inputs_skipped_total",
                             "Inputs never received: gateway sequence gaps given up on", NULL);
    for (int e = 1; e < PROTO_ERR_COUNT; e++) {
        char l[64];
        snprintf(l, sizeof l, "reason=\"%s\"", proto_err_name((proto_err)e));
        s->m_rejects[e] = core_metrics_counter(m, "tessera_inputs_rejected_total",
                                               "Client messages rejected, by reason", l);
    }
    s->m_rejects[0] = s->m_rejects[1];
    *out = s;
    return 0;
}

void sim_shard_destroy(sim_shard *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->x);
    free(s->y);
    free(s->dir_x);
    free(s->dir_y);
    free(s->speed);
    free(s->kind);
    free(s->flags);
    free(s->ghost_src);
    free(s->ghost_stamp);
    free(s->client);
    free(s->pub_x);
    free(s->pub_y);
    free(s->chg_tick);
    free(s->wander_tick);
    free(s->label);
    free(s->far_names);
    free(s->far_free);
    core_idmap_free(&s->far_ids);
    sim_items_destroy(s);
    core_buf_free(&s->rec_arena);
    free(s->free_slots);
    free(s->aoi_mark);
    free(s->body_x);
    free(s->body_y);
    free(s->body_slot);
    free(s->bucket_start);
    free(s->recent);
    free(s->cell_inner);
    free(s->col_near);
    sim_log_destroy(s);
    core_idmap_free(&s->ids);
    core_idmap_free(&s->sessions);
    core_idmap_free(&s->forward);
    spatial_grid_destroy(s->aoi_grid);
    free(s->obs_start);
    free(s->obs_list);
    for (uint32_t i = 0; i < s->n_clients_used; i++) {
        sim_client_more *m = s->clients[i].more;
        if (m) {
            core_buf_free(&m->reliable);
            core_buf_free(&m->held);
            free(m->pending);
            free(m->inv);
            free(m);
        }
        free(s->clients[i].known_id);
    }
    free(s->clients);
    free(s->free_clients);
    free(s->fwd);
    free(s->cmds);
    free(s->cand);
    free(s->cand_in);
    core_buf_free(&s->scratch);
    core_buf_free(&s->scratch_deltas);
    free(s->aoi_enters);
    free(s->aoi_enter_slots);
    core_buf_free(&s->deferred);
    core_buf_free(&s->deferred_next);
    core_buf_free(&s->msg);
    for (int i = 0; i < BUS_MAX_GWS; i++)
        core_buf_free(&s->frames[i]);
    for (int i = 0; i < BUS_MAX_SHARDS; i++)
        core_buf_free(&s->out[i]);
    free(s);
}

void sim_shard_spawn_npcs(sim_shard *s)
{
    core_rng rng;
    core_rng_seed(&rng, s->cfg->seed);
    float w = (float)s->cells->world_w, h = (float)s->cells->world_h;
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    for (int i = 0; i < s->cfg->npcs; i++) {
        float x = core_rng_unit(&rng) * w, y = core_rng_unit(&rng) * h;
        uint32_t first_turn = core_rng_below(&rng, 3 * hz);
        if (spatial_cellmap_owner(s->cells, x, y) != s->index)
            continue;
        sim_push_out_of_obstacles(s, &x, &y);
        uint32_t slot = sim_slot_alloc(s);
        uint32_t id = sim_entity_new_id(s);
        s->id[slot] = id;
        core_idmap_put(&s->ids, id, slot);
        s->x[slot] = x;
        s->y[slot] = y;
        s->kind[slot] = PROTO_KIND_NPC;
        s->speed[slot] = (float)s->cfg->npc_speed;
        s->wander_tick[slot] = first_turn;
        sim_entity_place(s, slot);
        s->n_owned++;
    }
    /* a big world starts with its slots in place order, as the tick would
     * sort them (sim_shard_step), rather than sorting a random order in
     * its first tick */
    if (s->sort_every && s->n_used > 0 && s->n_used >= s->sort_min) {
        sim_slots_sort(s);
        s->sorted_tick = s->tick;
        s->sorted_used = s->n_used;
    }
}

/* Tick of a HANDOFF or GHOSTS message (the u32 after the type). */
static uint32_t msg_tick(const uint8_t *msg, size_t len)
{
    core_rd r = core_rd_init(msg, len);
    core_rd_u16(&r);
    return core_rd_u32(&r);
}

static void handle_msg(sim_shard *s, const uint8_t *msg, size_t len)
{
    core_rd r = core_rd_init(msg, len);
    uint16_t type = proto_bus_type(&r);
    /* item outcomes and inventories forwarded after a handoff wait for it */
    if ((type == PROTO_BUS_HANDOFF || type == PROTO_BUS_GHOSTS || type == PROTO_BUS_ITEM_DONE ||
         type == PROTO_BUS_INV_LOADED) &&
        (int32_t)(msg_tick(msg, len) - s->tick) >= 0) {
        uint32_t n = (uint32_t)len;
        core_buf_append(&s->deferred_next, &n, 4);
        core_buf_append(&s->deferred_next, msg, len);
        return;
    }
    switch (type) {
    case PROTO_BUS_JOIN: {
        proto_join j;
        if (proto_bus_join_read(&r, &j) == 0)
            sim_join(s, &j);
        break;
    }
    case PROTO_BUS_LEAVE: {
        proto_leave l;
        if (proto_bus_leave_read(&r, &l) == 0)
            sim_leave(s, &l);
        break;
    }
    case PROTO_BUS_RESYNC: {
        uint32_t session = core_rd_u32(&r);
        if (core_rd_ok(&r))
            sim_resync(s, session);
        break;
    }
    case PROTO_BUS_DETACH: {
        proto_leave d;
        if (proto_bus_leave_read(&r, &d) == 0)
            sim_detach(s, &d);
        break;
    }
    case PROTO_BUS_ATTACH: {
        proto_attach a;
        if (proto_bus_attach_read(&r, &a) == 0)
            sim_attach(s, &a);
        break;
    }
    case PROTO_BUS_INPUTS: {
        uint32_t count = core_rd_u32(&r);
        if (core_rd_ok(&r))
            sim_inputs_collect(s, &r, count);
        break;
    }
    case PROTO_BUS_HANDOFF:
        sim_handoff_recv(s, &r);
        break;
    case PROTO_BUS_GHOSTS:
        sim_ghosts_recv(s, &r);
        break;
    default:
        if (sim_items_handle_msg(s, type, &r))
            break;
        core_log(CORE_LOG_WARN, "sim", NULL, "shard %u: unknown bus message type %u", s->index,
                 type);
    }
}

static void drain_inbox(sim_shard *s)
{
    /* what was deferred last tick goes first, in arrival order */
    core_buf tmp = s->deferred;
    s->deferred = s->deferred_next;
    s->deferred_next = tmp;
    core_buf_reset(&s->deferred_next);
    bus_batch dt = {s->deferred.data, s->deferred.len, 0};
    bus_iter it = bus_iter_init(&dt);
    const uint8_t *msg;
    size_t len;
    while (bus_iter_next(&it, &msg, &len))
        handle_msg(s, msg, len);
    core_buf_reset(&s->deferred);

    bus_batch bt;
    if (bus_recv(s->bus, BUS_EP_SHARD(s->index), &bt) != BUS_OK)
        return;
    it = bus_iter_init(&bt);
    while (bus_iter_next(&it, &msg, &len))
        handle_msg(s, msg, len);
}

/* Drops ghosts their owner stopped sending. */
static void sweep_ghosts(sim_shard *s)
{
    for (uint32_t e = 0; e < s->n_used; e++) {
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != (SIM_F_ALIVE | SIM_F_GHOST))
            continue;
        if ((int32_t)(s->ghost_stamp[e] - s->ghost_tick[s->ghost_src[e]]) < 0) {
            sim_slot_release(s, e);
            s->n_ghosts--;
        }
    }
}

static void send_frames(sim_shard *s)
{
    for (int g = 0; g < BUS_MAX_GWS; g++) {
        core_buf *f = &s->frames[g];
        if (!f->len)
            continue;
        if (bus_send(s->bus, BUS_EP_GW(g), f->data, f->len) != BUS_OK)
            core_log(CORE_LOG_WARN, "sim", NULL, "shard %u: frames to gateway %d dropped", s->index,
                     g);
        core_buf_reset_trim(f, 256u << 10); /* a burst of joins or RESETs is not kept */
    }
}

void sim_shard_set_sort(sim_shard *s, uint32_t min_slots, uint32_t every_ticks)
{
    s->sort_min = min_slots;
    s->sort_every = every_ticks;
}

void sim_shard_set_crowd_refresh(sim_shard *s, uint32_t every)
{
    s->crowd_every = every ? every : 1;
}

void sim_shard_step(sim_shard *s, uint32_t tick)
{
    uint64_t t0 = core_now_ns();
    s->tick = tick;
    for (uint32_t ci = 0; ci < s->n_clients_used; ci++)
        s->clients[ci].inputs_this_tick = 0;

    drain_inbox(s);
    sweep_ghosts(s);
    sim_items_tick(s);     /* store completions, cells to load, inventories */
    sim_log_tick_begin(s); /* arrivals and changes from the drain */
    sim_inputs_apply(s);
    sim_move(s);

    uint64_t sent0 = s->stats.states_sent, skipped0 = s->stats.states_skipped;
    uint64_t quiet0 = s->stats.aoi_quiet;
    /* The change marks and the published positions serve the AOI passes
     * (and, through sim_aoi_near_change, players' cell loading). A shard
     * with no client skips both (M1: two passes over a million entities,
     * 7 ms): a client's passes only read marks from ticks it was here for;
     * positions published before are older, so they compare unequal to
     * anything that moved since, which marks more, never less; a ghost
     * player (the only kind a shard without clients holds) that moved
     * since asks for its cells every tick, one that did not asked at its
     * position before and asks again once a second. */
    if (s->n_clients) {
        sim_aoi_mark_changes(s);
        for (uint32_t ci = 0; ci < s->n_clients_used; ci++) {
            if (s->clients[ci].session_id && !s->clients[ci].detached)
                sim_aoi_client(s, ci);
            if (s->clients[ci].more)
                sim_client_rest(s, &s->clients[ci]);
        }
        sim_aoi_publish(s);
    }
    core_counter_add(s->m_states_sent, s->stats.states_sent - sent0);
    core_counter_add(s->m_states_skipped, s->stats.states_skipped - skipped0);
    core_counter_add(s->m_aoi_quiet, s->stats.aoi_quiet - quiet0);
    send_frames(s);

    sim_persist_players(s);
    sim_handoffs_send(s);
    sim_ghosts_send(s);
    sim_forward_expire(s);
    sim_detached_expire(s);

    sim_log_tick_end(s); /* cell moves, hashes, the tick log, snapshots */
    /* slots re-sorted by place every sort_every ticks, and at once when
     * the shard has doubled since the last time (a fresh world) */
    if (s->sort_every && s->n_used >= s->sort_min &&
        (tick - s->sorted_tick >= s->sort_every || s->n_used > 2 * s->sorted_used)) {
        sim_slots_sort(s);
        s->sorted_tick = tick;
        s->sorted_used = s->n_used;
    }

    core_gauge_set(s->m_entities, s->n_owned);
    core_gauge_set(s->m_ghosts, s->n_ghosts);
    core_gauge_set(s->m_clients, s->n_clients);
    core_histogram_observe(s->m_tick, (double)(core_now_ns() - t0) / 1e9);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t sim_shard_hash(const sim_shard *s)
{
    /* hash in id order so slot reuse history does not matter */
    uint64_t *keys = malloc((s->n_owned + 1) * sizeof *keys);
    if (!keys)
        core_die("out of memory");
    size_t n = 0;
    for (uint32_t e = 0; e < s->n_used; e++)
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE)
            keys[n++] = ((uint64_t)s->id[e] << 32) | e;
    qsort(keys, n, sizeof *keys, cmp_u64);
    uint64_t h = CORE_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        uint32_t e = (uint32_t)keys[i];
        h = core_fnv1a(h, &s->id[e], 4);
        h = core_fnv1a(h, &s->kind[e], 1);
        h = core_fnv1a(h, &s->x[e], 4);
        h = core_fnv1a(h, &s->y[e], 4);
        h = core_fnv1a(h, &s->dir_x[e], 4);
        h = core_fnv1a(h, &s->dir_y[e], 4);
        uint32_t seq = s->client[e] != SIM_NONE ? s->clients[s->client[e]].last_seq : 0;
        h = core_fnv1a(h, &seq, 4);
    }
    free(keys);
    return h;
}

size_t sim_shard_entities(const sim_shard *s, sim_entity_info *out, size_t cap)
{
    size_t n = 0;
    for (uint32_t e = 0; e < s->n_used; e++) {
        if ((s->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        if (n < cap) {
            uint32_t ci = s->client[e];
            out[n] = (sim_entity_info){s->id[e],
                                       s->kind[e],
                                       s->x[e],
                                       s->y[e],
                                       ci != SIM_NONE ? s->clients[ci].session_id : 0,
                                       ci != SIM_NONE ? s->clients[ci].last_seq : 0};
        }
        n++;
    }
    return n;
}

void sim_shard_stats(const sim_shard *s, sim_stats *out)
{
    *out = s->stats;
    out->n_owned = s->n_owned;
    out->n_ghosts = s->n_ghosts;
    out->n_clients = s->n_clients;
}
