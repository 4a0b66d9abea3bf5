/* sim.h - a simulation shard: owns the entities in its region cells and
 * steps them on a fixed tick. Each tick: drain the bus inbox (joins,
 * leaves, inputs, handoffs, ghosts), apply inputs in a deterministic order
 * (entity id, then sequence), move, collide, compute each client's area of
 * interest and send each client a frame when it has news (and a keepalive
 * every keepalive_s), hand entities that left the
 * shard's cells to their new owner, and send ghosts of border entities to
 * neighbouring shards.
 *
 * Threads: a shard is touched only by the thread that steps it. The runner
 * starts one thread per shard on a shared CLOCK_MONOTONIC schedule, so all
 * shards run the same tick numbers. */
#ifndef SIM_H
#define SIM_H
#include <stdbool.h>
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

/* ---- items lying in the world (sim_items.c, sim_loader.c, sim_content.c) ----
 * The loader is one thread per process that runs the store's synchronous
 * reads for the shards (a cell's items, a player's inventory) and posts
 * the results to the shard's inbox, so a shard never waits for the
 * database. */
typedef struct sim_loader sim_loader;
/* st and b are borrowed and must outlive the loader. Returns 0 or -1. */
int sim_loader_create(sim_loader **out, struct store *st, bus *b);
/* Stops and joins the thread; queued requests are dropped. NULL: no-op. */
void sim_loader_destroy(sim_loader *l);
/* Enables items, inventories and pickups on s: cells load their items
 * through l when a player first comes near, and pickups and drops are
 * committed through the store set by sim_shard_set_store (needed too).
 * Call before the first step; l and m are borrowed. */
void sim_shard_set_loader(sim_shard *s, sim_loader *l, core_metrics *m);

/* Reads a content file of items (lines `item KIND X Y QTY`, '#' comments;
 * KIND 1..255, QTY 1..65535; items outside the world are left out) and, when the
 * store holds no world item at all, creates them (each in the cell of its
 * position). *out_n: items created (0 when the table was not empty).
 * path "" or NULL creates nothing. Returns 0, or -1 with a message
 * (file:line: reason, or the store's error) in err. Before shards run. */
int sim_items_seed(struct store *st, const spatial_cellmap *cells, const char *path, int *out_n,
                   char *err, size_t err_len);

/* Spawns this shard's share of cfg->npcs: the whole world's NPC positions
 * come from cfg->seed, and each shard keeps those in its cells, so the
 * world is the same whatever the shard count. */
void sim_shard_spawn_npcs(sim_shard *s);

/* Runs tick number `tick` (strictly increasing between calls). */
void sim_shard_step(sim_shard *s, uint32_t tick);
/* Slots are re-sorted by place every every_ticks ticks once a shard has
 * min_slots of them (defaults 32 and 8192; every_ticks 0: never). Only
 * memory order changes: tests turn it on for small worlds to prove it. */
void sim_shard_set_sort(sim_shard *s, uint32_t min_slots, uint32_t every_ticks);
/* A client in a crowd (more than aoi_max_entities within the radius) has
 * its nearest entities chosen anew every `every` ticks (default 2; 1:
 * every tick); in between its view keeps what it has (less what died or
 * left the radius) and gets every move as always. */
void sim_shard_set_crowd_refresh(sim_shard *s, uint32_t every);

/* FNV-1a over (id, kind, x, y, heading, last input seq) of every owned
 * entity in id order: equal for equal states. */
uint64_t sim_shard_hash(const sim_shard *s);

/* The hash the tick log records for a cell (FNV-1a over id, kind, x, y,
 * heading of the owned entities standing in cell, ascending id), computed
 * from the shard's state now; *out_n (may be NULL) gets their count. */
uint64_t sim_shard_cell_hash(const sim_shard *s, uint32_t cell, uint32_t *out_n);

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
    uint64_t states_sent, states_skipped; /* STATEs sent; empty ones not sent */
    uint64_t aoi_quiet; /* client-ticks whose AOI pass was skipped (a quiet area) */
} sim_stats;
void sim_shard_stats(const sim_shard *s, sim_stats *out);

/* ---- replay: a cell from its snapshot and tick log (sim_replay.c) ---- */
typedef struct sim_replay_report {
    uint32_t cell;
    int64_t snapshot_tick; /* shard tick of the snapshot used; -1 if none */
    bool is_never_active;  /* no snapshot at all: the cell never had entities */
    int n_refused;         /* newer snapshots refused for a bad checksum */
    uint32_t n_ticks;      /* tick-log records replayed */
    uint32_t last_tick;    /* shard tick the replay reached */
    uint64_t hash;         /* the cell's state hash there */
    uint32_t n_entities;   /* entities in the cell there */
    uint32_t n_arrive, n_leave, n_input, n_contact, n_set; /* records applied */
    char msg[1024]; /* the one-line verdict, or why it failed */
} sim_replay_report;

/* Rebuilds cell from its newest valid snapshot in st plus the tick log up
 * to until_tick (shard tick; 0: the end of the log), checking the state
 * hash against the live shard's after every logged tick. cfg and map must
 * be the server's (world, cell size, seed, radius, tick rate, obstacles:
 * checked against the snapshot). st needs no store thread. Returns 0 when
 * every hash matched, 1 when a hash differs or a record or every snapshot
 * is refused (the reason in out->msg), 2 when it could not run (no such
 * cell, a different world, a store error). Any thread; borrows all. */
struct store;
int sim_replay_cell(struct store *st, const core_config *cfg, const sim_map *map, uint32_t cell,
                    uint32_t until_tick, sim_replay_report *out);

/* `tessera replay --cell C|all [--until-tick T] [serve's flags]`: opens
 * the store as serve does (--store-url, or SQLite in --data-dir), prints
 * one line per cell and returns the exit status (0 all matched, 1 a
 * mismatch or a refused record, 2 a usage or setup error). */
int sim_replay_main(int argc, char **argv);

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
