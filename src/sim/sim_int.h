/* sim_int.h - a shard's private state, shared by the sim_*.c files.
 *
 * Entities live in slot-indexed structure-of-arrays (hot movement data
 * together: x, y, dir_x, dir_y), found from their global id through an id
 * map. Ghosts (read-only copies of a neighbour's border entities) occupy
 * slots too, flagged SIM_F_GHOST, so the area of interest and collision
 * see across shard borders without special cases. Player-only data lives
 * in a client record (sim_client) referenced by client[slot]. */
#ifndef SIM_INT_H
#define SIM_INT_H
#include <stdbool.h>

#include "core_buf.h"
#include "core_idmap.h"
#include "core_rng.h"
#include "sim.h"

#define SIM_NONE UINT32_MAX
#define SIM_PENDING_MAX 32    /* out-of-order inputs held per client */
#define SIM_GAP_TICKS 10      /* a gseq gap older than this is skipped */
#define SIM_FORWARD_TICKS 200 /* forwarding entries live this long (10 s) */
#define SIM_ERRORS_PER_S 4
#define SIM_SORT_TICKS 32   /* slots re-sorted by place this often (1.6 s) ... */
#define SIM_CROWD_REFRESH 2 /* a crowded view is chosen anew every other tick */
#define SIM_SORT_MIN 8192   /* ... on shards with at least this many slots */

enum {
    SIM_F_ALIVE = 1,
    SIM_F_GHOST = 2, /* owned by ghost_src; never simulated here */
};

typedef struct sim_pending {
    uint32_t gseq, seq;
    float dir_x, dir_y;
    uint8_t rec_kind; /* 0: an INPUT; else a PICKUP/DROP/CHAT whose body is in held */
} sim_pending;

/* An item lying in the world (entities of kind PROTO_KIND_ITEM). */
typedef struct sim_item {
    int64_t db_id;    /* world_items row; 0 for ghosts */
    uint16_t qty;     /* quantity, >= 1 */
    uint8_t kind;     /* item kind, >= 1 */
    bool is_reserved; /* a take is being committed: nobody else may take it */
} sim_item;

/* One inventory slot as the shard knows it (item_kind 0: empty). */
typedef struct sim_inv_slot {
    uint16_t qty;
    uint8_t kind;
    bool is_reserved; /* a take into it or a drop from it is being committed */
} sim_inv_slot;

enum { SIM_INV_NONE = 0, SIM_INV_LOADING, SIM_INV_LOADED };

#define SIM_NAME_INLINE 15 /* name bytes a label holds itself */
#define SIM_NAME_FAR 0xFF  /* label name.len of a longer name (in s->far_names) */

/* An entity's label, 16 bytes a slot. kind[slot] tells which member
 * holds: an item's sim_item (its ENTER name field is the descriptor made
 * from it), else the entity's name. Only players have names and most are
 * short: up to SIM_NAME_INLINE bytes stay inline; a longer one (up to
 * PROTO_NAME_MAX) is in s->far_names, found by entity id, and len is
 * SIM_NAME_FAR. Read and written through sim_name_get / sim_name_set /
 * sim_label_item (sim_ecs.c) only. */
typedef union sim_label {
    sim_item item; /* kind PROTO_KIND_ITEM */
    struct {
        uint8_t len;                /* <= SIM_NAME_INLINE, or SIM_NAME_FAR */
        char text[SIM_NAME_INLINE]; /* len bytes, no NUL */
    } name;                         /* every other kind */
} sim_label;
_Static_assert(sizeof(sim_label) == 16, "sim_label: 16 bytes a slot");

/* The part of a client that is at rest for a quiet player: reliable
 * records waiting for the tick's frame, inputs that arrived out of order
 * with their held records, an inventory, the chat bucket. Allocated on
 * first use (sim_client_more) and freed at the end of the tick once all of
 * it is at rest again (sim_client_rest): an idle connection costs a
 * pointer, not these 64 bytes. */
typedef struct sim_client_more {
    core_buf reliable;    /* records to send in this tick's frame (freed once sent) */
    core_buf held;        /* held records: u32 gseq, u8 kind, u16 len, body */
    sim_pending *pending; /* [pending_cap], out-of-order inputs only; NULL when none */
    sim_inv_slot *inv;    /* [PROTO_INV_SLOTS] while anything is carried or reserved, else NULL */
    uint32_t chat_tick;   /* tick of the last refill */
    float chat_tokens;    /* chat lines allowed now (token bucket); < 0: full at first use */
    uint16_t gap_ticks;   /* ticks a gseq gap has been waiting (<= SIM_GAP_TICKS + 1);
                             0 whenever n_pending is */
    uint8_t n_pending;    /* held inputs, sorted by gseq */
    uint8_t pending_cap;  /* entries pending can hold (0: not allocated) */
} sim_client_more;

/* A connected player. Kept small: a shard holds one per idle connection,
 * so everything a quiet client does not use is allocated on demand (the
 * view table's growth, sim_client_more). */
typedef struct sim_client {
    uint32_t session_id;
    uint32_t account_id;
    uint32_t slot;      /* the player's entity slot */
    uint32_t last_seq;  /* highest applied client input seq (the ack) */
    uint32_t sent_seq;  /* last_seq as of the last STATE sent */
    uint32_t next_gseq; /* next gateway sequence expected */
    uint32_t err_refill_tick;
    uint32_t detach_tick;     /* when it was detached */
    uint32_t inv_retry_tick;  /* NONE: ask the loader again at this tick */
    uint32_t prev_session_id; /* before a resume: late outcomes still find us */
    float saved_x, saved_y;   /* position last handed to the store (NaN: never) */
    /* area of interest: the slot table as the client has it. Entries are
     * entity ids (0 = free view slot); the position the client has for
     * each is the entity's pub_x/pub_y (see sim_shard), so the table
     * holds no positions. known_cap grows on demand up to
     * aoi_max_entities. */
    uint32_t aoi_tick;         /* tick of the last full AOI pass (0: none yet) */
    uint16_t inputs_this_tick; /* inputs applied this tick (max_inputs_per_tick; the
                                  gateway's rate limit keeps it far below 65,535) */
    uint16_t gw_id;
    uint16_t slot_hi; /* highest used view slot + 1 */
    uint16_t n_known;
    uint16_t known_cap;       /* entries known_id can hold */
    int8_t err_tokens;        /* ERROR notices left this second (<= SIM_ERRORS_PER_S) */
    uint8_t inv_state;        /* SIM_INV_*: pickups wait for LOADED */
    bool welcomed : 1;        /* WELCOME has been sent */
    bool reset : 1;           /* next STATE carries the RESET flag */
    bool detached : 1;        /* connection lost: no frames; dropped after the grace */
    bool is_view_stale : 1;   /* positions of the view are unknown (after a handoff):
                                 the next STATE sends every known entity's absolutely */
    bool is_view_partial : 1; /* the last AOI pass left selected entities out (the
                                 enter budget): the next must run whatever changed */
    float sel_r;              /* distance of the farthest entity the last pass kept
                                 when it had to choose (0: it did not) */
    uint32_t *known_id;       /* [known_cap] */
    sim_client_more *more;    /* NULL while all of it is at rest */
} sim_client;
/* A shard holds one per idle connection (W2): keep it in budget. */
_Static_assert(sizeof(sim_client) <= 88, "sim_client grew past 88 bytes");

/* An area-of-interest candidate: its slot and its place in the order
 * "nearest first, ties by entity id" as one integer (sim_aoi.c). */
typedef struct sim_cand {
    uint64_t key;
    uint32_t slot;
} sim_cand;

typedef struct sim_cmd {
    uint32_t entity_id;
    uint32_t client;
    uint32_t session_id; /* the client record may be gone by apply time */
    uint32_t gseq, seq;
    float dir_x, dir_y;
    uint8_t rec_kind; /* 0: an INPUT; else a record whose body is in s->rec_arena */
    uint16_t rec_len;
    uint32_t rec_off;
} sim_cmd;

typedef struct sim_forward {
    uint32_t session_id;
    uint16_t shard;
    uint32_t expire_tick;
} sim_forward;

struct sim_shard {
    const core_config *cfg;
    const spatial_cellmap *cells;
    const sim_map *map;
    bus *bus;
    struct store *st;      /* NULL: players are not persisted */
    core_metrics *metrics; /* registry the shard's metrics live in */
    uint16_t index;
    uint32_t tick;
    float dt;        /* seconds per tick */
    float aoi_r2;    /* aoi_radius squared */
    float aoi_slack; /* how much nearer two entities can come in a tick, +1 */

    /* entities (structure of arrays, cap slots) */
    uint32_t cap;
    uint32_t n_used;      /* slots [0, n_used) have been handed out */
    uint32_t *free_slots; /* stack of released slots */
    uint32_t n_free;
    uint32_t *id;
    float *x, *y;          /* units */
    float *dir_x, *dir_y;  /* heading, |dir| <= 1 */
    float *speed;          /* units per second at |dir| = 1 */
    uint8_t *kind;         /* PROTO_KIND_* */
    uint8_t *flags;        /* SIM_F_* */
    uint8_t *ghost_src;    /* ghosts: owning shard */
    uint32_t *ghost_stamp; /* ghosts: tick of the last update */
    uint32_t *client;      /* players: index into clients, else SIM_NONE */
    /* The position at the last tick's STATEs (sim_aoi_publish); NaN for a
     * slot that has not been through one yet. Its quantization is what
     * every client that has the entity in view was last sent: deltas are
     * taken against it, so a view table needs no positions of its own. */
    float *pub_x, *pub_y;
    uint32_t *wander_tick; /* NPCs: tick of the next heading change */
    sim_label *label;      /* items: kind, quantity, store row, reservation; else a name */
    core_idmap ids;        /* entity id -> slot */
    /* names longer than SIM_NAME_INLINE: entity id -> index into far_names
     * (keyed by id, not slot: renumberings leave them alone) */
    core_idmap far_ids;
    char (*far_names)[PROTO_NAME_MAX + 1]; /* [far_cap], NUL-terminated */
    uint32_t *far_free;                    /* [far_cap] stack of released indexes */
    uint32_t n_far_used, n_far_free, far_cap;
    uint32_t next_counter; /* entity ids: counter << 6 | shard index */
    uint32_t n_owned, n_ghosts;

    /* bucket aoi_radius / 2: items, and what was placed or moved since the
     * last movement step (the rest is found in the bodies: sim_index_collect) */
    spatial_grid *aoi_grid;
    /* Where the world changed: per square of side aoi_radius, the last
     * tick something in it appeared, vanished or moved (sim_aoi.c). A
     * client whose area saw no change since its last AOI pass is skipped. */
    uint32_t *chg_tick;
    uint32_t chg_nx, chg_ny;
    float chg_inv; /* 1 / side of the squares (>= aoi_radius) */
    /* static obstacles bucketed on a coarse grid for collision */
    uint32_t obs_nx, obs_ny;
    float obs_bucket;
    uint32_t *obs_start; /* obs_nx * obs_ny + 1 offsets into obs_list */
    uint16_t *obs_list;

    core_rng rng;

    /* clients */
    sim_client *clients;  /* clients_cap records; [0, n_clients_used) initialised */
    uint32_t clients_cap; /* records allocated (pages past n_clients_used untouched) */
    uint32_t n_clients_used;
    uint32_t *free_clients; /* stack of released indexes, clients_cap entries */
    uint32_t n_free_clients;
    uint32_t n_clients;
    core_idmap sessions; /* session id -> client index */

    /* sessions handed to another shard: forward their inputs and leaves */
    core_idmap forward; /* session id -> index into fwd */
    sim_forward *fwd;
    uint32_t n_fwd, fwd_cap;

    uint32_t ghost_tick[BUS_MAX_SHARDS]; /* last ghost batch applied per source */
    /* shard-to-shard messages of the current tick or later (the sender ran
     * ahead of us): applied at our next tick, so a handoff always takes
     * effect at a tick boundary and an entity never moves twice a tick */
    core_buf deferred; /* u32 len, bytes, repeated */
    core_buf deferred_next;

    /* per-cell tick log and snapshots (sim_log.c); NULL: off */
    struct sim_log *log;
    /* collision step scratch (sim_move.c), grown on demand */
    /* every body, sorted by bucket (rebuilt each tick); bodies_cap entries
     * plus padding for the collision probe */
    float *body_x, *body_y;
    uint32_t *body_slot; /* | BODY_GHOST */
    uint32_t n_bodies, bodies_cap;
    uint32_t sort_min, sort_every;     /* sim_slots_sort: slots needed, period in ticks */
    uint32_t crowd_every;              /* ticks between choices of a crowded view */
    uint32_t sorted_tick, sorted_used; /* tick and n_used of the last sort */
    uint32_t *bucket_start; /* n_buckets + 1: bodies of bucket b are [start[b], start[b+1]) */
    size_t buckets_cap;
    uint32_t col_nx, col_ny; /* the buckets of the last movement step (sim_index_collect) */
    float col_inv;           /* 1 / their side */
    float col_slack; /* the farthest a body got from its copy (collision pushes), per axis */
    /* slots placed or moved into aoi_grid since the last movement step
     * (sim_move takes the bodies among them out again) */
    uint32_t *recent;
    uint32_t n_recent, recent_cap;
    bool is_index_exact; /* nothing placed, moved or removed since the last movement step */
    uint64_t *col_near;  /* in-range neighbours of one entity: id << 32 | body index */
    size_t col_near_cap;
    /* ghosting: per region cell, 1 when it and its 8 neighbours are ours
     * (nothing in it is within the AOI radius of another shard's cell) */
    uint8_t *cell_inner;
    uint64_t cell_inner_epoch; /* cellmap epoch cell_inner was computed for, + 1 */

    /* items, inventory and chat (sim_items.c); NULL until a loader is set */
    struct sim_items *items;
    core_buf rec_arena; /* this tick's record bodies, referenced by sim_cmd */

    /* per-tick scratch */
    sim_cmd *cmds;
    uint32_t n_cmds, cmds_cap;
    uint32_t *cand;    /* grid query results: slots */
    sim_cand *cand_in; /* those within reach, with their order keys (AOI) */
    size_t cand_cap;
    /* per slot, for the AOI pass of one client (mark m, sim_aoi.c):
     * 2m + 1 when in reach and already in the client's view, 2m when in
     * reach only, anything smaller otherwise; mark < 2^31 */
    uint32_t *aoi_mark;
    uint32_t mark;
    core_buf scratch;             /* one STATE body */
    core_buf scratch_deltas;      /* its delta section, made before the enters */
    sim_cand *aoi_enters;         /* [aoi_max_entities] a pass's enter candidates */
    uint16_t *aoi_enter_slots;    /* [aoi_max_entities] the view slots they get */
    core_buf frames[BUS_MAX_GWS]; /* one FRAMES message per gateway */
    size_t frames_count_at[BUS_MAX_GWS];
    core_buf out[BUS_MAX_SHARDS]; /* HANDOFF/GHOSTS/INPUTS to other shards */
    core_buf msg;                 /* small messages */

    /* statistics */
    sim_stats stats;

    /* metrics (never NULL) */
    core_histogram *m_tick;
    core_gauge *m_entities, *m_ghosts, *m_clients;
    core_counter *m_handoffs_out, *m_handoffs_in;
    core_counter *m_rejects[PROTO_ERR_COUNT];
    core_counter *m_aoi_capped;
    core_counter *m_aoi_recollect;
    core_counter *m_states_sent, *m_states_skipped; /* added once per tick */
    core_counter *m_aoi_quiet;                      /* added once per tick */
    core_counter *m_inputs_applied;
    core_counter *m_store_refused;    /* player saves refused (store queue full) */
    core_counter *m_inputs_duplicate; /* gseq already applied: dropped */
    core_counter *m_inputs_skipped;   /* gseq gaps given up on */
};

/* sim_ecs.c */
uint32_t sim_slot_alloc(sim_shard *s);
void sim_slot_release(sim_shard *s, uint32_t slot);
/* Renumbers the entity slots: order[k] (every live slot once, n of them)
 * becomes slot k; every structure holding slots follows (id map, clients,
 * grids, items, tick log). Called between ticks. */
void sim_slots_renumber(sim_shard *s, const uint32_t *order, uint32_t n);
/* Renumbers the slots in collision-bucket order (sim_move.c): run every
 * SIM_SORT_TICKS on big shards so per-slot passes walk memory in the
 * order of space. */
void sim_slots_sort(sim_shard *s);
void sim_items_renumber(sim_shard *s, const uint32_t *newof, uint32_t old_used);
void sim_log_renumber(sim_shard *s, const uint32_t *newof, uint32_t old_used);
uint32_t sim_entity_new_id(sim_shard *s);
/* The entity's name into out (NUL-terminated); its length. "" for items. */
size_t sim_name_get(const sim_shard *s, uint32_t slot, char out[PROTO_NAME_MAX + 1]);
/* Sets the name of the entity in slot (kind other than item, id already
 * set); len <= PROTO_NAME_MAX, name need not be NUL-terminated. */
void sim_name_set(sim_shard *s, uint32_t slot, const char *name, size_t len);
/* Makes the label of slot (kind item, id set) the item it. */
void sim_label_item(sim_shard *s, uint32_t slot, sim_item it);
uint32_t sim_client_alloc(sim_shard *s);
void sim_client_release(sim_shard *s, uint32_t ci);
/* Queues an ERROR record for a client (rate-limited) and counts it. */
void sim_client_reject(sim_shard *s, uint32_t ci, proto_err code, const char *reason);
void sim_count_reject(sim_shard *s, proto_err code);
void sim_entity_place(sim_shard *s, uint32_t slot);   /* insert into the index */
void sim_entity_unplace(sim_shard *s, uint32_t slot); /* remove from the index */
/* Re-indexes slot at its position, which was set outside the movement
 * step (a ghost's update, a snapshot). */
void sim_entity_moved(sim_shard *s, uint32_t slot);

/* sim_move.c */
#define BODY_GHOST 0x80000000u /* body_slot: a ghost (collides, never moved) */
/* NPC wandering, integration, collision, re-index: the tick's movement */
void sim_move(sim_shard *s);
/* The spatial index of a shard's entities, for the area-of-interest and
 * chat queries: the collision step's bodies (sorted by bucket every tick
 * anyway) plus aoi_grid, which holds items and whatever was placed or
 * moved since that step. Writes to out (up to cap) every entity that may
 * lie within r of (x, y) (a superset: callers test the distance and
 * SIM_F_ALIVE); returns how many there are (more than cap: call again
 * with room). */
size_t sim_index_collect(const sim_shard *s, float x, float y, float r, uint32_t *out, size_t cap);
void sim_push_out_of_obstacles(sim_shard *s, float *x, float *y);
/* Clamps a position from outside the shard into the world (NaN -> 0). */
void sim_clamp_world(const sim_shard *s, float *x, float *y);
int sim_obstacles_index(sim_shard *s);

/* sim_aoi.c */
/* Makes s->cand and s->cand_in hold at least n. */
void sim_cand_reserve(sim_shard *s, size_t n);
void sim_aoi_client(sim_shard *s, uint32_t ci);
void sim_aoi_clear_client(sim_shard *s, sim_client *c);
/* Before the tick's AOI passes: marks where entities appeared or moved
 * since the last publish. */
void sim_aoi_mark_changes(sim_shard *s);
/* True if the entity in slot moved or appeared since the last tick's
 * STATEs, or something in its square did during the last tick (for work
 * that only a move can make necessary). */
bool sim_aoi_near_change(const sim_shard *s, uint32_t slot);
/* A slot is released: marks where its entity was. */
void sim_aoi_mark_gone(sim_shard *s, uint32_t slot);
/* After every client's STATE of the tick: pub_x/pub_y of every entity
 * become its current position. */
void sim_aoi_publish(sim_shard *s);
/* Makes room for view slot k (k < aoi_max_entities); new entries are 0. */
void sim_client_view_reserve(sim_shard *s, sim_client *c, uint32_t k);
/* Makes room for one more pending input (n_pending < SIM_PENDING_MAX);
 * returns c->more. */
sim_client_more *sim_client_pending_reserve(sim_client *c);
/* Drops every pending input and held record, freeing their memory. */
void sim_client_pending_clear(sim_client *c);
/* c->more, allocated (everything at rest) if it was not. */
sim_client_more *sim_client_more_get(sim_client *c);
/* The client's reliable records of this tick, to append to. */
static inline core_buf *sim_client_reliable(sim_client *c)
{
    return &sim_client_more_get(c)->reliable;
}
static inline uint32_t sim_client_reliable_len(const sim_client *c)
{
    return c->more ? c->more->reliable.len : 0;
}
static inline uint32_t sim_client_n_pending(const sim_client *c)
{
    return c->more ? c->more->n_pending : 0;
}
/* Frees c->more if all of it is at rest (end of the tick's AOI passes). */
void sim_client_rest(sim_shard *s, sim_client *c);

/* sim_border.c */
void sim_handoffs_send(sim_shard *s);
void sim_ghosts_send(sim_shard *s);
void sim_handoff_recv(sim_shard *s, core_rd *r);
void sim_ghosts_recv(sim_shard *s, core_rd *r);
int sim_forward_lookup(sim_shard *s, uint32_t session_id);
void sim_forward_add(sim_shard *s, uint32_t session_id, uint16_t shard);
void sim_forward_expire(sim_shard *s);

/* sim_log.c: the per-cell tick log (see sim_log.h). Hooks called from the
 * tick; each is a no-op while s->log is NULL (no store or
 * snapshot_interval_s = 0). */
void sim_log_tick_begin(sim_shard *s); /* after the drain, before inputs */
void sim_log_tick_end(sim_shard *s);   /* last thing of the tick */
void sim_log_release(sim_shard *s, uint32_t slot);
void sim_log_input(sim_shard *s, uint32_t slot, float dir_x, float dir_y);
void sim_log_step(sim_shard *s); /* movement starts */
/* other is in range of slot, at (ox, oy) after integration */
void sim_log_contact(sim_shard *s, uint32_t slot, uint32_t other, float ox, float oy);
void sim_log_destroy(sim_shard *s);

/* sim_items.c: items in the world, inventories, pickups and drops.
 * Completion queue s->index of the store is polled here. */
void sim_items_tick(sim_shard *s); /* after the drain, before inputs */
/* Handles an items/chat bus message; false if type is not one of them. */
bool sim_items_handle_msg(sim_shard *s, uint16_t type, core_rd *r);
void sim_items_join(sim_shard *s, uint32_t ci); /* a player entered: load its inventory */
/* A new connection took the client over (resume): resend the inventory;
 * outcomes addressed to old_session still find it. */
void sim_items_attach(sim_shard *s, uint32_t ci, uint32_t old_session);
void sim_items_destroy(sim_shard *s);
void sim_items_count_chat(sim_shard *s);
/* The ENTER name field: a player's name or an item's descriptor. */
size_t sim_entity_label(const sim_shard *s, uint32_t slot, uint8_t out[PROTO_NAME_MAX]);
/* Sets an item ghost's kind and quantity from its label. */
void sim_items_ghost_label(sim_shard *s, uint32_t slot, const uint8_t *label, size_t len);
/* Inventory, chat bucket and held records in a handoff's CLIENT block. */
void sim_items_write_client(sim_shard *s, core_buf *b, const sim_client *c);
int sim_items_read_client(sim_shard *s, core_rd *r, sim_client *c);

/* sim_loader.c: queue a load; 0, or -1 when the queue is full (ask later) */
int sim_loader_cell(sim_loader *l, uint16_t shard, uint32_t cell);
int sim_loader_inventory(sim_loader *l, uint16_t shard, uint32_t session_id, int64_t account_id);

/* sim_records.c: PICKUP/DROP/CHAT records, ordered with inputs by gseq */
void sim_records_collect(sim_shard *s, core_rd *r, uint32_t count);
/* Copies a command's record body into the client's held records. */
void sim_records_hold(sim_shard *s, sim_client *c, const sim_cmd *cmd);
/* Applies a held record (the pending entry with gseq) or a command's. */
void sim_records_apply_held(sim_shard *s, uint32_t ci, uint32_t gseq);
void sim_records_apply_cmd(sim_shard *s, const sim_cmd *cmd);
void sim_items_pickup(sim_shard *s, uint32_t ci, const proto_pickup *p);
void sim_items_drop(sim_shard *s, uint32_t ci, const proto_drop *d);

/* sim_chat.c */
void sim_chat_say(sim_shard *s, uint32_t ci, const uint8_t *text, size_t len);
/* True if m's chat bucket is full by now (as good as never used). */
bool sim_chat_is_full(const sim_shard *s, const sim_client_more *m);
void sim_chat_relay_recv(sim_shard *s, core_rd *r);

/* sim_persist.c */
void sim_persist_players(sim_shard *s);
void sim_persist_client(sim_shard *s, sim_client *c);

/* sim_input.c */
void sim_inputs_collect(sim_shard *s, core_rd *r, uint32_t count);
void sim_inputs_apply(sim_shard *s);
void sim_join(sim_shard *s, const proto_join *j);
void sim_leave(sim_shard *s, const proto_leave *l);
void sim_detach(sim_shard *s, const proto_leave *d);
void sim_attach(sim_shard *s, const proto_attach *a);
void sim_detached_expire(sim_shard *s);
/* The gateway dropped a STATE of session: the next one is a RESET. */
void sim_resync(sim_shard *s, uint32_t session_id);
#endif
