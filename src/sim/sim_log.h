/* sim_log.h - private to src/sim: the per-cell tick log and cell snapshots.
 *
 * A cell's evolution is reproducible from logged data alone: its newest
 * snapshot (every entity's full state) plus, for every tick since, the tick
 * log record the live shard wrote (arrivals, leaves, applied inputs, outside
 * bodies in collision range, and the state hash at the end of the tick).
 * The formats are documented above their codecs: the tick log in
 * sim_log.c, the snapshot in sim_snapshot.c.
 *
 * Used by the live capture (sim_log.c), the snapshot writer and the shared
 * codecs (sim_snapshot.c), the replay engine (sim_replay.c) and the fuzz
 * driver (fuzz/fuzz_snapshot.c). */
#ifndef SIM_LOG_H
#define SIM_LOG_H
#include <stdbool.h>
#include <stdint.h>

#include "core_buf.h"
#include "sim_int.h"

#define SIM_LOG_EVENT_KIND 1001 /* events.kind of a tick-log record */
#define SIM_LOG_VERSION 1
#define SIM_LOG_CQ_BASE 32         /* shard i polls store completion queue 32 + i */
#define SIM_SNAP_MAGIC 0x504e5354u /* "TSNP" as a little-endian u32 */
#define SIM_SNAP_VERSION 1
#define SIM_SNAP_MAX_ENTITIES (1u << 20)

/* One entity's full state as logged: what a replay needs to simulate it.
 * Players carry nothing of their session or account. */
typedef struct sim_ent_rec {
    uint32_t id;          /* != 0 */
    uint8_t kind;         /* PROTO_KIND_* */
    float x, y;           /* units, finite */
    float dir_x, dir_y;   /* heading, finite */
    float speed;          /* units per second, finite */
    uint32_t wander_tick; /* NPCs: tick of the next heading change */
    char name[PROTO_NAME_MAX + 1];
} sim_ent_rec;

/* Tick-log record types (the u8 that starts each record). */
enum {
    SIM_TL_ARRIVE = 1, /* an entity enters the cell: ENTITY */
    SIM_TL_SET,        /* an entity's state changed outside the logged commands: ENTITY */
    SIM_TL_LEAVE,      /* an entity leaves the cell: u32 id */
    SIM_TL_INPUT,      /* an applied input: u32 id, f32 dir_x, f32 dir_y */
    SIM_TL_STEP,       /* the movement step (wander, integrate, collide) runs here */
    SIM_TL_CONTACT,    /* a body outside the cell within collision range: u32 id, f32 x, y */
    SIM_TL_HASH,       /* end of the tick: u32 n_entities, u64 hash (last record) */
    SIM_TL_N
};

typedef struct sim_tl_rec {
    uint8_t type;    /* SIM_TL_* */
    sim_ent_rec ent; /* ARRIVE, SET */
    uint32_t id;     /* LEAVE, INPUT, CONTACT */
    float a, b;      /* INPUT: dir_x, dir_y; CONTACT: x, y */
    uint32_t n;      /* HASH: entities in the cell */
    uint64_t hash;   /* HASH */
} sim_tl_rec;

/* Reads one tick-log payload record by record. */
typedef struct sim_tl_reader {
    core_rd r;
    bool seen_step, seen_hash;
} sim_tl_reader;

/* Reads the header (*out_prev_tick: the store tick of the cell's previous
 * record in the same run, 0 for a run's first). Returns 0, or -1 with the
 * reason in err. */
int sim_tl_open(sim_tl_reader *rd, int64_t *out_prev_tick, const void *p, size_t len, char *err,
                size_t err_len);
/* Returns 1 with the next record in *out, 0 after the HASH record at the
 * very end, or -1 with the reason in err (truncated, unknown type, a
 * record out of place, a non-finite number, bytes after HASH). */
int sim_tl_next(sim_tl_reader *rd, sim_tl_rec *out, char *err, size_t err_len);
/* A whole payload: 0 if it decodes cleanly, else -1 with err. */
int sim_tl_validate(const void *p, size_t len, char *err, size_t err_len);

/* A decoded snapshot. */
typedef struct sim_snap {
    uint32_t cell;
    uint32_t tick;    /* the shard's tick */
    int64_t run_base; /* store tick = run_base + tick (see sim_log.c) */
    uint64_t seed;    /* world seed */
    uint64_t map_sum; /* sim_map_checksum of the obstacles */
    uint32_t world_w, world_h;
    uint16_t cell_size, tick_hz;
    float entity_radius;
    int64_t seq_hint; /* every tick-log event after tick has a larger seq */
    uint64_t hash;    /* sim_cell_hash at the end of tick */
    uint32_t n;
    sim_ent_rec *ents; /* n, ascending id; owned (sim_snap_free) */
} sim_snap;

/* Returns 0, or -1 with the reason in err (*out then holds nothing). */
int sim_snap_decode(sim_snap *out, const void *p, size_t len, char *err, size_t err_len);
void sim_snap_free(sim_snap *sn);

/* A cell member: entity id and its slot. */
typedef struct sim_member {
    uint32_t id, slot;
} sim_member;

/* The state hash of a cell, used by the live shard and by the replay
 * alike: FNV-1a over (id, kind, x, y, dir_x, dir_y) of m[0..n), which must
 * be in ascending id order. */
uint64_t sim_cell_hash(const sim_shard *s, const sim_member *m, size_t n);
/* FNV-1a over the obstacles (x, y, r), so a replay refuses another map. */
uint64_t sim_map_checksum(const sim_map *map);

/* ENTITY codec (sim_snapshot.c). */
void sim_ent_write(core_buf *b, const sim_shard *s, uint32_t slot);
int sim_ent_read(core_rd *r, sim_ent_rec *out); /* 0 or -1 */

/* Snapshot of a cell of s at its current tick (sim_snapshot.c). */
void sim_snap_encode(core_buf *out, const sim_shard *s, uint32_t cell, const sim_member *m,
                     size_t n, uint64_t hash, int64_t seq_hint, int64_t run_base, uint64_t map_sum);
/* At the end of a tick, after cell's tick-log record: submits a snapshot
 * of it when one is due or needed. */
void sim_snapshot_maybe(sim_shard *s, uint32_t cell, uint64_t hash);
/* Store completion token of a log action: kind, cell and shard tick. */
#define SIM_LOG_TOKEN(kind, cell, tick)                                                            \
    (((uint64_t)(kind) << 56) | ((uint64_t)(cell) << 32) | (uint64_t)(uint32_t)(tick))

/* Replay helpers (sim_snapshot.c): put a logged entity into a shard as
 * owned (returns its slot), or overwrite an owned entity's state. */
uint32_t sim_ent_restore(sim_shard *s, const sim_ent_rec *e);
void sim_ent_overwrite(sim_shard *s, uint32_t slot, const sim_ent_rec *e);

/* ---- live capture state (sim_log.c) ---- */

typedef struct sim_log_cell {
    core_buf buf;    /* this tick's records so far (no header, no HASH) */
    sim_member *mem; /* entities logged in the cell, ascending id */
    uint32_t n_mem, mem_cap;
    int64_t last_tick;  /* store tick of the last record submitted; 0: none yet */
    uint32_t next_snap; /* the next scheduled snapshot tick */
    int64_t seq_hint;   /* highest committed seq of this cell's log events */
    bool has_step;      /* STEP written this tick */
    bool is_active;     /* on the active list */
    bool need_snapshot; /* snapshot at the end of this tick: first record, or a log hole */
} sim_log_cell;

struct sim_log {
    uint32_t n_cells;
    sim_log_cell *cells; /* indexed by cell; only cells this shard owns are used */
    uint32_t *active;    /* cells with members or records this tick */
    uint32_t n_active;
    uint32_t cap;          /* slots the per-slot arrays cover */
    uint32_t *cell_of;     /* per slot: the cell it is logged in, SIM_NONE if none */
    uint32_t (*shadow)[7]; /* per slot: state bits at the end of the last tick */
    /* the cell of each body's last CONTACT this tick, as entries
     * (slot + 1) << 32 | cell (0: empty) in open addressing by slot,
     * emptied when the tick changes: sized by a tick's contacts (bodies
     * near a cell border), not per slot */
    uint64_t *contacts;
    uint32_t contacts_cap, n_contacts; /* cap: a power of two, or 0 */
    uint32_t contacts_tick;            /* the tick the set is for */
    bool after_step;                   /* the movement step has started */
    uint32_t cq;                       /* store completion queue */
    uint32_t period;                   /* ticks between snapshots of a cell */
    int64_t run_base;                  /* store tick = run_base + shard tick */
    uint64_t map_sum;
    core_buf enc; /* one payload being assembled */
    core_counter *m_records, *m_bytes, *m_snapshots, *m_refused, *m_failed;
};
#endif
