/* proto.h - Tessera's wire formats: the client protocol (what travels in
 * WebSocket binary messages, docs/protocol.md) and the internal messages
 * between gateway and shards over the bus. Both are little-endian and
 * built from core_buf's checked primitives; decoders never trust lengths.
 *
 * Client protocol framing: a WebSocket binary message holds one or more
 * records, each `kind:u8, len:varint, body[len]`. A decoder skips records
 * whose kind it does not know, so new kinds never break old clients. */
#ifndef PROTO_H
#define PROTO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_buf.h"

#define PROTO_VERSION 1
#define PROTO_SUBPROTOCOL "tessera.v1"
#define PROTO_POS_SCALE 16 /* positions travel as round(units * 16) */
#define PROTO_NAME_MAX 32  /* bytes of a display name */

/* ---- client -> server record kinds ---- */
enum {
    PROTO_C_INPUT = 0x01, /* u32 seq, f32 dir_x, f32 dir_y */
    PROTO_C_PING = 0x02,  /* u32 nonce */
};

/* ---- server -> client record kinds ---- */
enum {
    PROTO_S_WELCOME = 0x81,
    PROTO_S_STATE = 0x82,
    PROTO_S_PONG = 0x83,    /* u32 nonce, u32 tick */
    PROTO_S_ERROR = 0x84,   /* u16 code, u8 len, reason */
    PROTO_S_SESSION = 0x85, /* u8 resume_token[16], u16 grace_s */
};

#define PROTO_RESUME_TOKEN_BYTES 16

/* Error codes carried by PROTO_S_ERROR and counted by reason in metrics. */
typedef enum proto_err {
    PROTO_ERR_NONE = 0,
    PROTO_ERR_UNKNOWN_KIND = 1,    /* record kind not known */
    PROTO_ERR_MALFORMED = 2,       /* record body of the wrong size or shape */
    PROTO_ERR_NOT_FINITE = 3,      /* NaN or infinity in a number */
    PROTO_ERR_OUT_OF_RANGE = 4,    /* heading longer than 1 */
    PROTO_ERR_TOO_MANY_INPUTS = 5, /* more inputs in one tick than allowed */
    PROTO_ERR_STALE_SEQ = 6,       /* input sequence not above the last accepted */
    PROTO_ERR_RATE_LIMITED = 7,    /* message rate above the token bucket */
    PROTO_ERR_NOT_IN_WORLD = 8,    /* input before the player entered the world */
    /* items and chat (proto_items.c): 9..13 refuse a bad request (ERROR
     * and, for PICKUP/DROP, a RESULT); 14..17 are outcomes (RESULT only) */
    PROTO_ERR_NOT_AN_ITEM = 9,        /* PICKUP of an entity that is not an item near you */
    PROTO_ERR_OUT_OF_REACH = 10,      /* PICKUP of an item farther than the reach */
    PROTO_ERR_BAD_SLOT = 11,          /* DROP of a slot out of range, empty or busy */
    PROTO_ERR_BAD_TEXT = 12,          /* CHAT empty, over 200 bytes, not UTF-8, control chars */
    PROTO_ERR_CHAT_RATE_LIMITED = 13, /* CHAT above the per-player chat rate */
    PROTO_ERR_ITEM_GONE = 14,         /* the item was taken (or is being taken) by someone */
    PROTO_ERR_INVENTORY_FULL = 15,    /* no free inventory slot */
    PROTO_ERR_STORE_UNAVAILABLE = 16, /* not committed: queue full, database down, not loaded */
    PROTO_ERR_CONFLICT = 17,          /* the store refused: the stored state differed */
    PROTO_ERR_COUNT
} proto_err;

/* Stable snake_case name of an error code, for metrics labels and logs. */
const char *proto_err_name(proto_err e);

/* Entity kinds in STATE enter records. */
enum { PROTO_KIND_PLAYER = 0, PROTO_KIND_NPC = 1, PROTO_KIND_ITEM = 2 };

typedef struct proto_input {
    uint32_t seq;
    float dir_x, dir_y; /* desired heading, |dir| <= 1 */
} proto_input;

/* Iterates the records of one client message. Returns 1 with the next
 * record in *kind / *body / *body_len, 0 at a clean end, or -1 when the
 * framing is broken (truncated length or body). */
typedef struct proto_records {
    core_rd rd;
} proto_records;
void proto_records_init(proto_records *it, const void *msg, size_t len);
int proto_records_next(proto_records *it, uint8_t *kind, const uint8_t **body, size_t *body_len);

/* Decodes and validates an INPUT body: returns PROTO_ERR_NONE or the
 * reason (MALFORMED, NOT_FINITE, OUT_OF_RANGE). Stateless checks only;
 * sequence and per-tick checks are the shard's. */
proto_err proto_input_decode(proto_input *out, const uint8_t *body, size_t len);

/* Appends one record header (kind + varint length). */
void proto_record_begin(core_buf *b, uint8_t kind, size_t body_len);

void proto_write_input(core_buf *b, const proto_input *in);
void proto_write_ping(core_buf *b, uint32_t nonce);
void proto_write_pong(core_buf *b, uint32_t nonce, uint32_t tick);
void proto_write_error(core_buf *b, proto_err code, const char *reason);

/* WELCOME body, see docs/protocol.md. Decoded by clients and tests. */
typedef struct proto_obstacle {
    float x, y, r;
} proto_obstacle;

typedef struct proto_welcome {
    uint16_t version;
    uint32_t entity_id;
    uint32_t tick;
    uint16_t tick_hz;
    uint32_t world_w, world_h;
    uint16_t cell_size;
    uint8_t n_shards;
    float aoi_radius;
    float entity_radius;
    float player_speed;
    uint16_t cells_x, cells_y;
    const uint8_t *owners; /* cells_x * cells_y shard indexes, row-major by y */
    uint16_t n_obstacles;
    const uint8_t *obstacles; /* n_obstacles * 12 bytes: f32 x, y, r */
} proto_welcome;

void proto_write_welcome(core_buf *b, const proto_welcome *w, const proto_obstacle *obstacles);
/* Returns 0, or -1 if the body is malformed. Pointers borrow from body. */
int proto_welcome_decode(proto_welcome *out, const uint8_t *body, size_t len);

/* ---- STATE: the per-tick update, see docs/protocol.md ----
 * Encoding is driven by the shard's AOI diff; decoding (proto_state_*) is
 * used by the test client and bots, which keep the same slot table as a
 * real client. */
#define PROTO_STATE_RESET 0x01 /* flags: client drops all slots first */

typedef struct proto_view_entity {
    uint32_t entity_id; /* 0 = free slot */
    uint8_t kind;
    int32_t x_q, y_q; /* position in 1/16 units */
    char name[PROTO_NAME_MAX + 1];
} proto_view_entity;

/* A client's picture of the world, slot-indexed as the server sends it. */
typedef struct proto_view {
    uint32_t tick;
    uint32_t ack_seq;
    uint8_t flags;
    uint8_t shard;
    uint32_t n_slots; /* capacity of slots */
    proto_view_entity *slots;
    /* counters of the last applied message */
    uint32_t last_enters, last_leaves, last_updates;
} proto_view;

void proto_view_init(proto_view *v, uint32_t n_slots);
void proto_view_free(proto_view *v);
/* Applies one STATE body. Returns 0, or -1 on a malformed body or a slot
 * out of range (the view may then be partly updated). */
int proto_view_apply(proto_view *v, const uint8_t *body, size_t len);
/* Slot of entity_id, or -1. Linear; for tests and tools. */
int proto_view_find(const proto_view *v, uint32_t entity_id);

/* ---- internal messages over the bus (gateway <-> shard <-> shard) ----
 * A bus message is `type:u16` then a type-specific body; several items of
 * one type are batched in one message where noted. */
enum {
    PROTO_BUS_JOIN = 1,    /* gw -> shard: a session enters the world */
    PROTO_BUS_LEAVE = 2,   /* gw -> shard: a session left */
    PROTO_BUS_INPUTS = 3,  /* gw -> shard, shard -> shard: batch of inputs */
    PROTO_BUS_FRAMES = 4,  /* shard -> gw: per-session payloads of one tick */
    PROTO_BUS_ROUTE = 5,   /* shard -> gw: session now owned by shard */
    PROTO_BUS_HANDOFF = 6, /* shard -> shard: an entity changes owner */
    PROTO_BUS_GHOSTS = 7,  /* shard -> shard: border entities of one tick */
    PROTO_BUS_REJECTS = 8, /* reserved */
    PROTO_BUS_DETACH = 9,  /* gw -> shard: connection lost; keep the entity for the grace */
    PROTO_BUS_ATTACH = 10, /* gw -> shard: a new connection takes over a session */
};

typedef struct proto_join {
    uint32_t session_id;
    uint16_t gw_id;
    uint32_t account_id;
    float x, y;
    char name[PROTO_NAME_MAX + 1];
} proto_join;

typedef struct proto_leave {
    uint32_t session_id;
    uint32_t entity_id; /* 0 if the gateway never learned it */
} proto_leave;

typedef struct proto_bus_input {
    uint32_t session_id;
    uint32_t entity_id; /* 0 until the gateway learned it from a ROUTE */
    /* Gateway sequence: 1, 2, 3... per session with no gaps, assigned by
     * the gateway to every input it forwards (0 = unsequenced). Lets the
     * owning shard restore order across a handoff, when some inputs reach
     * it forwarded by the old owner and later ones directly. */
    uint32_t gseq;
    proto_input in;
} proto_bus_input;

typedef struct proto_route {
    uint32_t session_id;
    uint32_t entity_id;
    uint16_t shard;
} proto_route;

void proto_bus_join_write(core_buf *b, const proto_join *j);
int proto_bus_join_read(core_rd *r, proto_join *j);
void proto_bus_leave_write(core_buf *b, const proto_leave *l);
int proto_bus_leave_read(core_rd *r, proto_leave *l);
/* INPUTS: u16 type, u32 count, then count items. */
void proto_bus_inputs_begin(core_buf *b, size_t *count_at);
void proto_bus_inputs_add(core_buf *b, size_t count_at, const proto_bus_input *in);
int proto_bus_input_read(core_rd *r, proto_bus_input *in);
void proto_bus_route_write(core_buf *b, const proto_route *rt);
int proto_bus_route_read(core_rd *r, proto_route *rt);

/* FRAMES: u16 type, u32 tick, u16 shard, u32 count, then count items of
 * `u32 session_id, u8 flags, u32 len, payload[len]`, payload being the
 * complete WebSocket message body (records) for that session. */
#define PROTO_FRAME_RELIABLE 0x01 /* holds a record that must not be dropped */
typedef struct proto_frame {
    uint32_t session_id;
    uint8_t flags;
    uint32_t len;
    const uint8_t *payload; /* borrowed from the bus message */
} proto_frame;
void proto_bus_frames_begin(core_buf *b, uint32_t tick, uint16_t shard, size_t *count_at);
/* Appends the item header and returns where the payload length must be
 * patched once written (see proto_bus_frames_end_item). */
size_t proto_bus_frames_item_begin(core_buf *b, size_t count_at, uint32_t session_id,
                                   uint8_t flags);
void proto_bus_frames_item_end(core_buf *b, size_t len_at);
int proto_bus_frames_header(core_rd *r, uint32_t *tick, uint16_t *shard, uint32_t *count);
int proto_bus_frame_read(core_rd *r, proto_frame *f);

/* DETACH: u16 type, u32 session, u32 entity. The body is a LEAVE's. */
void proto_bus_detach_write(core_buf *b, const proto_leave *d);

/* ATTACH: u16 type, u32 old_session, u8 keep_seq, then a JOIN body (the
 * new session, its gateway, account, and where to spawn should the old
 * session be gone). keep_seq: input sequence numbers continue (resume);
 * otherwise they restart (a new client took over). */
typedef struct proto_attach {
    uint32_t old_session_id;
    uint8_t keep_seq;
    proto_join join;
} proto_attach;
void proto_bus_attach_write(core_buf *b, const proto_attach *a);
int proto_bus_attach_read(core_rd *r, proto_attach *a);

void proto_write_session(core_buf *b, const uint8_t token[PROTO_RESUME_TOKEN_BYTES],
                         uint16_t grace_s);

/* Reads a message's type (u16). */
static inline uint16_t proto_bus_type(core_rd *r)
{
    return core_rd_u16(r);
}
#endif
