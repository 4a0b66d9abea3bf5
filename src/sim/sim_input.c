/* sim_input.c - the command queue: joins, leaves and inputs from the
 * gateway, applied in a deterministic order (entity id, then gateway
 * sequence, then client sequence) with the shard's stateful validation:
 * sequence replay, inputs per tick, and re-checked values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"

static void send_route(sim_shard *s, const sim_client *c)
{
    core_buf_reset(&s->msg);
    proto_route rt = {c->session_id, s->id[c->slot], s->index};
    proto_bus_route_write(&s->msg, &rt);
    bus_send(s->bus, BUS_EP_GW(c->gw_id), s->msg.data, s->msg.len);
}

static void write_welcome(sim_shard *s, sim_client *c)
{
    const spatial_cellmap *m = s->cells;
    proto_welcome w = {
        .version = PROTO_VERSION,
        .entity_id = s->id[c->slot],
        .tick = s->tick,
        .tick_hz = (uint16_t)s->cfg->tick_hz,
        .world_w = m->world_w,
        .world_h = m->world_h,
        .cell_size = m->cell_size,
        .n_shards = m->n_shards,
        .aoi_radius = (float)s->cfg->aoi_radius,
        .entity_radius = (float)s->cfg->entity_radius,
        .player_speed = (float)s->cfg->player_speed,
        .cells_x = m->cells_x,
        .cells_y = m->cells_y,
        .owners = m->owner,
        .n_obstacles = s->map ? s->map->n_obstacles : 0,
    };
    proto_write_welcome(sim_client_reliable(c), &w, s->map ? s->map->obstacles : NULL);
    c->welcomed = true;
}

void sim_join(sim_shard *s, const proto_join *j)
{
    if (j->session_id == 0 || core_idmap_get(&s->sessions, j->session_id) != CORE_IDMAP_NONE)
        return;
    if (j->gw_id >= BUS_MAX_GWS)
        return;
    uint32_t slot = sim_slot_alloc(s);
    uint32_t id = sim_entity_new_id(s);
    s->id[slot] = id;
    core_idmap_put(&s->ids, id, slot);
    float x = j->x, y = j->y;
    sim_push_out_of_obstacles(s, &x, &y); /* clamps into the world first */
    s->x[slot] = x;
    s->y[slot] = y;
    s->kind[slot] = PROTO_KIND_PLAYER;
    s->speed[slot] = (float)s->cfg->player_speed;
    sim_name_set(s, slot, j->name, strnlen(j->name, PROTO_NAME_MAX));
    sim_entity_place(s, slot);
    s->n_owned++;

    uint32_t ci = sim_client_alloc(s);
    sim_client *c = &s->clients[ci];
    c->session_id = j->session_id;
    c->gw_id = j->gw_id;
    c->account_id = j->account_id;
    c->slot = slot;
    c->err_refill_tick = s->tick;
    s->client[slot] = ci;
    core_idmap_put(&s->sessions, j->session_id, ci);
    write_welcome(s, c);
    sim_items_join(s, ci);
    send_route(s, c);
    core_log_ids ids = {.session = j->session_id, .entity = id, .shard = s->index};
    char name[PROTO_NAME_MAX + 1];
    sim_name_get(s, slot, name);
    core_log(CORE_LOG_INFO, "sim", &ids, "player %s entered at (%.1f, %.1f)", name, x, y);
}

/* Removes a client and its entity. */
static void drop_client(sim_shard *s, uint32_t ci)
{
    sim_client *c = &s->clients[ci];
    uint32_t slot = c->slot;
    sim_persist_client(s, c); /* where it stood when it left */
    if (slot != SIM_NONE) {
        sim_slot_release(s, slot);
        s->n_owned--;
    }
    sim_client_release(s, ci);
}

/* Passes a session message on to the shard the session was handed to. */
static bool forward_session_msg(sim_shard *s, uint32_t session_id)
{
    int to = sim_forward_lookup(s, session_id);
    if (to < 0)
        return false;
    bus_send(s->bus, BUS_EP_SHARD(to), s->msg.data, s->msg.len);
    return true;
}

void sim_detach(sim_shard *s, const proto_leave *d)
{
    uint32_t ci = core_idmap_get(&s->sessions, d->session_id);
    if (ci == CORE_IDMAP_NONE) {
        core_buf_reset(&s->msg);
        proto_bus_detach_write(&s->msg, d);
        forward_session_msg(s, d->session_id);
        return;
    }
    sim_client *c = &s->clients[ci];
    c->detached = true;
    c->detach_tick = s->tick;
    /* it stands still while nobody steers it */
    s->dir_x[c->slot] = s->dir_y[c->slot] = 0.0f;
    sim_client_pending_clear(c);
    if (c->more)
        core_buf_free(&c->more->reliable);
    core_log_ids ids = {.session = d->session_id, .entity = s->id[c->slot], .shard = s->index};
    char name[PROTO_NAME_MAX + 1];
    sim_name_get(s, c->slot, name);
    core_log(CORE_LOG_INFO, "sim", &ids, "player %s detached (waits %d s)", name,
             s->cfg->resume_grace_s);
}

void sim_attach(sim_shard *s, const proto_attach *a)
{
    uint32_t ci = core_idmap_get(&s->sessions, a->old_session_id);
    if (ci == CORE_IDMAP_NONE) {
        core_buf_reset(&s->msg);
        proto_bus_attach_write(&s->msg, a);
        if (!forward_session_msg(s, a->old_session_id))
            sim_join(s, &a->join); /* the old session is gone: enter afresh */
        return;
    }
    if (a->join.gw_id >= BUS_MAX_GWS || a->join.session_id == 0 ||
        core_idmap_get(&s->sessions, a->join.session_id) != CORE_IDMAP_NONE)
        return;
    sim_client *c = &s->clients[ci];
    core_idmap_del(&s->sessions, a->old_session_id);
    c->session_id = a->join.session_id;
    core_idmap_put(&s->sessions, c->session_id, ci);
    c->gw_id = a->join.gw_id;
    c->detached = false;
    c->next_gseq = 1; /* the new connection numbers its inputs afresh */
    sim_client_pending_clear(c);
    if (!a->keep_seq)
        c->last_seq = 0; /* a new client: its own sequence space */
    c->reset = true;     /* a full state resend */
    if (c->more)
        core_buf_reset(&c->more->reliable);
    write_welcome(s, c);
    sim_items_attach(s, ci, a->old_session_id);
    send_route(s, c);
    core_log_ids ids = {.session = c->session_id, .entity = s->id[c->slot], .shard = s->index};
    char name[PROTO_NAME_MAX + 1];
    sim_name_get(s, c->slot, name);
    core_log(CORE_LOG_INFO, "sim", &ids, "player %s resumed (was session %u, %s)", name,
             a->old_session_id, a->keep_seq ? "same client" : "new client");
}

void sim_leave(sim_shard *s, const proto_leave *l)
{
    uint32_t ci = core_idmap_get(&s->sessions, l->session_id);
    if (ci != CORE_IDMAP_NONE) {
        core_log_ids ids = {.session = l->session_id, .shard = s->index};
        core_log(CORE_LOG_INFO, "sim", &ids, "player left");
        drop_client(s, ci);
        return;
    }
    core_buf_reset(&s->msg);
    proto_bus_leave_write(&s->msg, l);
    forward_session_msg(s, l->session_id);
}

void sim_resync(sim_shard *s, uint32_t session_id)
{
    uint32_t ci = core_idmap_get(&s->sessions, session_id);
    if (ci != CORE_IDMAP_NONE) {
        s->clients[ci].reset = true;
        return;
    }
    core_buf_reset(&s->msg);
    core_buf_u16(&s->msg, PROTO_BUS_RESYNC);
    core_buf_u32(&s->msg, session_id);
    forward_session_msg(s, session_id);
}

void sim_detached_expire(sim_shard *s)
{
    uint32_t grace = (uint32_t)s->cfg->resume_grace_s * (uint32_t)s->cfg->tick_hz;
    for (uint32_t ci = 0; ci < s->n_clients_used; ci++) {
        sim_client *c = &s->clients[ci];
        if (!c->session_id || !c->detached || s->tick - c->detach_tick < grace)
            continue;
        core_log_ids ids = {.session = c->session_id, .entity = s->id[c->slot], .shard = s->index};
        char name[PROTO_NAME_MAX + 1];
        sim_name_get(s, c->slot, name);
        core_log(CORE_LOG_INFO, "sim", &ids, "player %s left (not resumed)", name);
        drop_client(s, ci);
    }
}

void sim_inputs_collect(sim_shard *s, core_rd *r, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        proto_bus_input in;
        if (proto_bus_input_read(r, &in) != 0)
            return;
        uint32_t ci = core_idmap_get(&s->sessions, in.session_id);
        if (ci == CORE_IDMAP_NONE) {
            int to = sim_forward_lookup(s, in.session_id);
            if (to >= 0) {
                /* handed off: pass it on, it keeps its gseq */
                size_t at;
                core_buf_reset(&s->msg);
                proto_bus_inputs_begin(&s->msg, &at);
                proto_bus_inputs_add(&s->msg, at, &in);
                bus_send(s->bus, BUS_EP_SHARD(to), s->msg.data, s->msg.len);
            } else {
                sim_count_reject(s, PROTO_ERR_NOT_IN_WORLD);
            }
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
                                         .session_id = in.session_id,
                                         .gseq = in.gseq,
                                         .seq = in.in.seq,
                                         .dir_x = in.in.dir_x,
                                         .dir_y = in.in.dir_y};
    }
}

static int cmd_cmp(const void *a, const void *b)
{
    const sim_cmd *x = a, *y = b;
    if (x->entity_id != y->entity_id)
        return x->entity_id < y->entity_id ? -1 : 1;
    if (x->gseq != y->gseq)
        return x->gseq < y->gseq ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return 0;
}

static void apply_one(sim_shard *s, uint32_t ci, uint32_t seq, float dx, float dy)
{
    sim_client *c = &s->clients[ci];
    if (!isfinite(dx) || !isfinite(dy)) {
        sim_client_reject(s, ci, PROTO_ERR_NOT_FINITE, "heading is not a finite number");
        return;
    }
    if (dx * dx + dy * dy > 1.002001f) {
        sim_client_reject(s, ci, PROTO_ERR_OUT_OF_RANGE, "heading longer than 1");
        return;
    }
    if (c->inputs_this_tick < UINT16_MAX) /* saturates: never wraps to 0 */
        c->inputs_this_tick++;
    if (c->inputs_this_tick > (uint32_t)s->cfg->max_inputs_per_tick) {
        sim_client_reject(s, ci, PROTO_ERR_TOO_MANY_INPUTS, "too many inputs in one tick");
        return;
    }
    if (seq <= c->last_seq) {
        sim_client_reject(s, ci, PROTO_ERR_STALE_SEQ, "input sequence not above the last");
        return;
    }
    c->last_seq = seq;
    s->dir_x[c->slot] = dx;
    s->dir_y[c->slot] = dy;
    if (s->log)
        sim_log_input(s, c->slot, dx, dy);
    s->stats.inputs_applied++;
    core_counter_add(s->m_inputs_applied, 1);
}

static void drain_pending(sim_shard *s, uint32_t ci)
{
    sim_client *c = &s->clients[ci];
    sim_client_more *m = c->more;
    if (!m)
        return;
    /* m stays: applying a held record only appends to its buffers */
    while (m->n_pending && m->pending[0].gseq == c->next_gseq) {
        sim_pending p = m->pending[0];
        if (p.rec_kind)
            sim_records_apply_held(s, ci, p.gseq);
        else
            apply_one(s, ci, p.seq, p.dir_x, p.dir_y);
        c->next_gseq++;
        memmove(m->pending, m->pending + 1, --m->n_pending * sizeof *m->pending);
    }
    if (!m->n_pending) {
        m->gap_ticks = 0;
        if (m->pending)
            sim_client_pending_clear(c); /* a gap filled: give the memory back */
    }
}

/* Holds a sequenced input until every earlier gseq has been applied. */
static void hold(sim_shard *s, uint32_t ci, const sim_cmd *cmd)
{
    sim_client *c = &s->clients[ci];
    if (cmd->gseq < c->next_gseq) {
        {
            s->stats.inputs_duplicate++;
            core_counter_add(s->m_inputs_duplicate, 1);
        }
        return;
    }
    sim_client_more *m = sim_client_more_get(c);
    uint32_t k = m->n_pending;
    for (uint32_t i = 0; i < m->n_pending; i++) {
        if (m->pending[i].gseq == cmd->gseq) {
            {
                s->stats.inputs_duplicate++;
                core_counter_add(s->m_inputs_duplicate, 1);
            }
            return;
        }
        if (m->pending[i].gseq > cmd->gseq) {
            k = i;
            break;
        }
    }
    if (m->n_pending == SIM_PENDING_MAX) {
        /* a gap this long will not fill: give up on it */
        s->stats.inputs_skipped += m->pending[0].gseq - c->next_gseq;
        core_counter_add(s->m_inputs_skipped, m->pending[0].gseq - c->next_gseq);
        c->next_gseq = m->pending[0].gseq;
        m->gap_ticks = 0;
        drain_pending(s, ci);
        if (cmd->gseq < c->next_gseq) {
            {
                s->stats.inputs_duplicate++;
                core_counter_add(s->m_inputs_duplicate, 1);
            }
            return;
        }
        for (k = 0; k < m->n_pending && m->pending[k].gseq < cmd->gseq; k++) {
        }
    }
    sim_client_pending_reserve(c);
    memmove(m->pending + k + 1, m->pending + k, (m->n_pending - k) * sizeof *m->pending);
    if (cmd->rec_kind)
        sim_records_hold(s, c, cmd);
    m->pending[k] = (sim_pending){cmd->gseq, cmd->seq, cmd->dir_x, cmd->dir_y, cmd->rec_kind};
    m->n_pending++;
}

void sim_inputs_apply(sim_shard *s)
{
    if (s->n_cmds > 1)
        qsort(s->cmds, s->n_cmds, sizeof *s->cmds, cmd_cmp);
    for (uint32_t i = 0; i < s->n_cmds; i++) {
        const sim_cmd *cmd = &s->cmds[i];
        /* a LEAVE (or handoff) later in the same inbox released the client */
        if (s->clients[cmd->client].session_id != cmd->session_id)
            continue;
        if (cmd->gseq == 0) {
            if (cmd->rec_kind)
                sim_records_apply_cmd(s, cmd);
            else
                apply_one(s, cmd->client, cmd->seq, cmd->dir_x, cmd->dir_y);
            continue;
        }
        sim_client *c = &s->clients[cmd->client];
        if (cmd->gseq == c->next_gseq && sim_client_n_pending(c) == 0) {
            /* in order (the usual case): applied without being held */
            if (cmd->rec_kind)
                sim_records_apply_cmd(s, cmd);
            else
                apply_one(s, cmd->client, cmd->seq, cmd->dir_x, cmd->dir_y);
            c->next_gseq++; /* (gap_ticks is 0: nothing pending) */
            continue;
        }
        hold(s, cmd->client, cmd);
        drain_pending(s, cmd->client);
    }
    s->n_cmds = 0;
    core_buf_reset(&s->rec_arena);
    /* gaps that persist are skipped so one lost message cannot freeze a
     * player; with the in-process bus this never happens */
    for (uint32_t ci = 0; ci < s->n_clients_used; ci++) {
        sim_client *c = &s->clients[ci];
        sim_client_more *m = c->more;
        if (!c->session_id || !m || !m->n_pending)
            continue;
        if (++m->gap_ticks > SIM_GAP_TICKS) {
            s->stats.inputs_skipped += m->pending[0].gseq - c->next_gseq;
            core_counter_add(s->m_inputs_skipped, m->pending[0].gseq - c->next_gseq);
            c->next_gseq = m->pending[0].gseq;
            m->gap_ticks = 0;
            drain_pending(s, ci);
        }
    }
}
