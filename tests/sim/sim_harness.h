/* sim_harness.h - drives shards in-process over the real inproc bus, with
 * the test playing the gateway: joins, inputs (with gateway sequence
 * numbers, routed like the gateway routes them), and decoding of every
 * frame into a proto_view per session. Header-only for the sim tests. */
#ifndef SIM_HARNESS_H
#define SIM_HARNESS_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "core_config.h"
#include "core_metrics.h"
#include "proto.h"
#include "sim.h"
#include "spatial.h"

#define H_MAX_SESS 256

typedef struct h_sess {
    uint32_t session_id;
    uint32_t entity_id;
    uint16_t route; /* shard the gateway sends inputs to */
    uint32_t gseq;  /* last gateway sequence sent */
    uint32_t seq;   /* last client seq sent */
    proto_view view;
    uint32_t frames_this_tick;
    uint32_t frames_total;
    uint32_t self_leaves; /* times the client's own entity left its view */
    uint32_t n_errors;
    uint16_t last_error;
    bool is_gone; /* h_leave sent */
} h_sess;

typedef struct harness {
    core_config cfg;
    core_metrics *m;
    bus *b;
    spatial_cellmap cells;
    sim_map map;
    int n_shards;
    sim_shard *shards[8];
    h_sess sess[H_MAX_SESS];
    int n_sess;
    uint32_t tick;
    /* shards re-sort their slots every sort_every ticks (0: never); on by
     * default so every sim test also runs across renumberings */
    uint32_t sort_every;
    uint32_t n_frames_msgs; /* FRAMES messages received (one per shard per tick) */
    /* Optional: called for every record of every frame (after the
     * harness's own handling of WELCOME, STATE and ERROR). */
    void (*on_record)(struct harness *h, h_sess *s, uint8_t kind, const uint8_t *body, size_t len);
} harness;

static inline void h_init(harness *h, int n_shards, int npcs, uint64_t seed)
{
    memset(h, 0, sizeof *h);
    core_config_defaults(&h->cfg);
    h->cfg.map_file[0] = 0;
    h->cfg.npcs = npcs;
    h->cfg.seed = seed;
    h->cfg.world_w = 1024;
    h->cfg.world_h = 1024;
    h->cfg.shards = n_shards;
    h->m = core_metrics_create();
    if (bus_create(&h->b, "inproc", h->m) != 0)
        abort();
    spatial_cellmap_init(&h->cells, 1024, 1024, 256, (uint8_t)n_shards);
    h->n_shards = n_shards;
    h->sort_every = 7;
}

/* Creates shards (after cfg tweaks). */
static inline void h_start(harness *h)
{
    for (int i = 0; i < h->n_shards; i++) {
        if (sim_shard_create(&h->shards[i], &h->cfg, &h->cells, &h->map, (uint16_t)i, h->b, h->m) !=
            0)
            abort();
        sim_shard_set_sort(h->shards[i], 0, h->sort_every);
        sim_shard_spawn_npcs(h->shards[i]);
    }
}

static inline void h_free(harness *h)
{
    for (int i = 0; i < h->n_shards; i++)
        sim_shard_destroy(h->shards[i]);
    for (int i = 0; i < h->n_sess; i++)
        proto_view_free(&h->sess[i].view);
    bus_destroy(h->b);
    spatial_cellmap_free(&h->cells);
    core_metrics_destroy(h->m);
}

static inline h_sess *h_find(harness *h, uint32_t session_id)
{
    for (int i = 0; i < h->n_sess; i++)
        if (h->sess[i].session_id == session_id)
            return &h->sess[i];
    return NULL;
}

static inline h_sess *h_join(harness *h, const char *name, float x, float y)
{
    h_sess *s = &h->sess[h->n_sess++];
    memset(s, 0, sizeof *s);
    s->session_id = (1u << 20) | (uint32_t)h->n_sess;
    s->route = (uint16_t)spatial_cellmap_owner(&h->cells, x, y);
    proto_view_init(&s->view, 1024);
    proto_join j = {
        .session_id = s->session_id, .gw_id = 0, .account_id = (uint32_t)h->n_sess, .x = x, .y = y};
    snprintf(j.name, sizeof j.name, "%s", name);
    core_buf b;
    core_buf_init(&b);
    proto_bus_join_write(&b, &j);
    bus_send(h->b, BUS_EP_SHARD(s->route), b.data, b.len);
    core_buf_free(&b);
    return s;
}

/* The session ends (a LEAVE to the shard that owns it). */
static inline void h_leave(harness *h, h_sess *s)
{
    core_buf b;
    core_buf_init(&b);
    proto_leave l = {s->session_id, s->entity_id};
    proto_bus_leave_write(&b, &l);
    bus_send(h->b, BUS_EP_SHARD(s->route), b.data, b.len);
    core_buf_free(&b);
    s->is_gone = true;
}

/* Sends one input as the gateway would, to shard `to`, with the given
 * gateway and client sequence numbers (tests of ordering choose them). */
static inline void h_input_seq(harness *h, h_sess *s, int to, uint32_t gseq, uint32_t seq, float dx,
                               float dy)
{
    core_buf b;
    core_buf_init(&b);
    size_t at;
    proto_bus_inputs_begin(&b, &at);
    proto_bus_input in = {s->session_id, s->entity_id, gseq, {seq, dx, dy}};
    proto_bus_inputs_add(&b, at, &in);
    bus_send(h->b, BUS_EP_SHARD(to), b.data, b.len);
    core_buf_free(&b);
}

/* Sends the session's next input to shard `to` (use s->route). */
static inline void h_input_to(harness *h, h_sess *s, int to, float dx, float dy)
{
    uint32_t gseq = ++s->gseq, seq = ++s->seq;
    h_input_seq(h, s, to, gseq, seq, dx, dy);
}

static inline void h_input(harness *h, h_sess *s, float dx, float dy)
{
    h_input_to(h, s, s->route, dx, dy);
}

/* Reads everything addressed to the gateway: ROUTEs and FRAMES. */
static inline int h_drain_gw(harness *h)
{
    for (int i = 0; i < h->n_sess; i++)
        h->sess[i].frames_this_tick = 0;
    bus_batch bt;
    bus_recv(h->b, BUS_EP_GW(0), &bt);
    bus_iter it = bus_iter_init(&bt);
    const uint8_t *msg;
    size_t len;
    while (bus_iter_next(&it, &msg, &len)) {
        core_rd r = core_rd_init(msg, len);
        uint16_t type = proto_bus_type(&r);
        if (type == PROTO_BUS_ROUTE) {
            proto_route rt;
            if (proto_bus_route_read(&r, &rt) != 0)
                return -1;
            h_sess *s = h_find(h, rt.session_id);
            if (!s)
                return -1;
            s->route = rt.shard;
            s->entity_id = rt.entity_id;
            continue;
        }
        if (type != PROTO_BUS_FRAMES)
            return -1;
        uint32_t tick, count;
        uint16_t shard;
        if (proto_bus_frames_header(&r, &tick, &shard, &count) != 0)
            return -1;
        h->n_frames_msgs++;
        for (uint32_t i = 0; i < count; i++) {
            proto_frame f;
            if (proto_bus_frame_read(&r, &f) != 0)
                return -1;
            h_sess *s = h_find(h, f.session_id);
            if (!s)
                return -1;
            s->frames_this_tick++;
            s->frames_total++;
            proto_records it2;
            proto_records_init(&it2, f.payload, f.len);
            uint8_t kind;
            const uint8_t *body;
            size_t blen;
            int rc;
            while ((rc = proto_records_next(&it2, &kind, &body, &blen)) == 1) {
                if (kind == PROTO_S_WELCOME) {
                    proto_welcome w;
                    if (proto_welcome_decode(&w, body, blen) != 0)
                        return -1;
                    s->entity_id = w.entity_id;
                } else if (kind == PROTO_S_STATE) {
                    int had_self = s->entity_id && proto_view_find(&s->view, s->entity_id) >= 0;
                    if (proto_view_apply(&s->view, body, blen) != 0)
                        return -1;
                    if (had_self && proto_view_find(&s->view, s->entity_id) < 0)
                        s->self_leaves++;
                } else if (kind == PROTO_S_ERROR) {
                    s->n_errors++;
                    s->last_error = (uint16_t)(body[0] | (body[1] << 8));
                }
                if (h->on_record)
                    h->on_record(h, s, kind, body, blen);
            }
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* One tick of every shard, in index order, then the gateway drain. */
static inline int h_step(harness *h)
{
    h->tick++;
    for (int i = 0; i < h->n_shards; i++)
        sim_shard_step(h->shards[i], h->tick);
    return h_drain_gw(h);
}

/* All owned entities of all shards. */
static inline size_t h_entities(harness *h, sim_entity_info *out, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < h->n_shards; i++) {
        size_t k = sim_shard_entities(h->shards[i], out + n, cap - n);
        n += k < cap - n ? k : cap - n;
    }
    return n;
}

static inline uint64_t h_hash(harness *h)
{
    uint64_t x = 0;
    for (int i = 0; i < h->n_shards; i++)
        x = x * 31 + sim_shard_hash(h->shards[i]);
    return x;
}
#endif
