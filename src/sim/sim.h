/* sim.h - a simulation shard: owns the entities in its region cells and
 * steps them on a fixed tick. Each tick: drain the bus inbox (joins,
 * leaves, inputs, handoffs, ghosts), apply inputs in a deterministic order
 * (entity id, then sequence), move, collide, compute each client's area of
 * interest and send one frame per client, hand entities that left the
 * shard's cells to their new owner, and send ghosts of border entities to
 * neighbouring shards.
 *
 * Threads: a shard is touched only by the thread that steps it. The runner
 * starts one thread per shard on a shared CLOCK_MONOTONIC schedule, so all
 * shards run the same tick numbers. */
#ifndef SIM_H
#define SIM_H
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "core_config.h"
#include "core_metrics.h"
#include "proto.h"
#include "spatial.h"

/* Static obstacles read from a map file: lines `circle X Y R`, '#'
 * comments. Obstacles outside the world are kept (they never matter). */
typedef struct sim_map {
    proto_obstacle *obstacles; /* owned */
    uint16_t n_obstacles;
} sim_map;

/* Returns 0, or -1 with a message (file:line: reason) in err. path "" or
 * NULL gives an empty map. */
int sim_map_load(sim_map *m, const char *path, char *err, size_t err_len);
void sim_map_free(sim_map *m);

typedef struct sim_shard sim_shard;

/* Borrowed: cfg, cells, map, b and m must outlive the shard. */
int sim_shard_create(sim_shard **out, const core_config *cfg, const spatial_cellmap *cells,
                     const sim_map *map, uint16_t index, bus *b, core_metrics *m);
void sim_shard_destroy(sim_shard *s); /* NULL is a no-op */

/* Persists players through st (borrowed; outlives s): every tick the
 * states of players that moved are submitted to the store's coalescing
 * queue (flushed in one transaction per flush interval), and a player's
 * final state when it leaves. Call before the first step. */
struct store;
void sim_shard_set_store(sim_shard *s, struct store *st);

/* Spawns this shard's share of cfg->npcs: the whole world's NPC positions
 * come from cfg->seed, and each shard keeps those in its cells, so the
 * world is the same whatever the shard count. */
void sim_shard_spawn_npcs(sim_shard *s);

/* Runs tick number `tick` (strictly increasing between calls). */
void sim_shard_step(sim_shard *s, uint32_t tick);

/* FNV-1a over (id, kind, x, y, heading, last input seq) of every owned
 * entity in id order: equal for equal states. */
uint64_t sim_shard_hash(const sim_shard *s);

typedef struct sim_entity_info {
    uint32_t id;
    uint8_t kind; /* PROTO_KIND_* */
    float x, y;
    uint32_t session_id; /* 0 for NPCs */
    uint32_t last_seq;   /* players: highest applied input seq */
} sim_entity_info;

/* Copies up to cap owned entities in slot order; returns the owned count. */
size_t sim_shard_entities(const sim_shard *s, sim_entity_info *out, size_t cap);

typedef struct sim_stats {
    uint32_t n_owned, n_ghosts, n_clients;
    uint64_t handoffs_out, handoffs_in;
    uint64_t inputs_applied, inputs_duplicate, inputs_skipped;
    uint64_t inputs_rejected;
} sim_stats;
void sim_shard_stats(const sim_shard *s, sim_stats *out);

/* ---- runner: one thread per shard ---- */
typedef struct sim_runner sim_runner;

/* Starts a thread per shard. shards is borrowed and must outlive the
 * runner. Returns 0 or -1. */
int sim_runner_start(sim_runner **out, sim_shard **shards, int n_shards, int tick_hz,
                     core_metrics *m);
/* Stops and joins the threads; NULL is a no-op. */
void sim_runner_stop(sim_runner *r);
/* 1 when every shard ticked within the last 4 tick periods, else 0 with
 * the reason in why. Any thread. */
int sim_runner_ready(sim_runner *r, char *why, size_t cap);
/* The tick most recently started. Any thread. */
uint32_t sim_runner_tick(const sim_runner *r);
#endif
