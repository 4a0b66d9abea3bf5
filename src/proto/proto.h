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
    uint8_t item_kind; /* kind 2 (item): from the descriptor in the name field */
    uint16_t quantity;
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
    PROTO_BUS_RESYNC = 11, /* gw -> shard: u32 session; a STATE was dropped: send a RESET */
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

/* ---- items, inventory and chat (proto_items.c) ----
 * Client records (docs/protocol.md section 5), server records (section 6),
 * the item descriptor in STATE enters (section 7), and the bus messages
 * that carry them between gateway, shards and the item loader. */
enum {
    PROTO_C_PICKUP = 0x03, /* u32 req, u32 entity_id */
    PROTO_C_DROP = 0x04,   /* u32 req, u8 slot */
    PROTO_C_CHAT = 0x05,   /* text (UTF-8, 1..PROTO_CHAT_MAX bytes) */
};
enum {
    PROTO_S_INVENTORY = 0x86, /* u8 n_slots, u8 n, n x (u8 slot, u8 item_kind, u16 quantity) */
    PROTO_S_CHAT = 0x87,      /* u32 from, u8 name_len, name, u8 text_len, text */
    PROTO_S_RESULT = 0x88,    /* outcome of one PICKUP or DROP, see proto_result */
};
#define PROTO_INV_SLOTS 32    /* inventory slots 0..31 */
#define PROTO_CHAT_MAX 200    /* bytes of chat text */
#define PROTO_ITEM_DESC_LEN 3 /* an item's "name" in ENTER: u8 item_kind, u16 quantity */
enum { PROTO_ACT_PICKUP = 1, PROTO_ACT_DROP = 2 };

/* True for the client record kinds the gateway forwards to the shard. */
static inline bool proto_is_item_record(uint8_t kind)
{
    return kind == PROTO_C_PICKUP || kind == PROTO_C_DROP || kind == PROTO_C_CHAT;
}

typedef struct proto_pickup {
    uint32_t req;       /* client's request id, echoed in RESULT */
    uint32_t entity_id; /* the item */
} proto_pickup;
typedef struct proto_drop {
    uint32_t req;
    uint8_t slot; /* the shard refuses >= PROTO_INV_SLOTS */
} proto_drop;

/* Stateless checks of client records: PROTO_ERR_NONE, MALFORMED (wrong
 * size) or BAD_TEXT (chat: empty, too long, not UTF-8, or C0/DEL control
 * characters). An entity id 0 or a slot out of range decode: the shard
 * refuses them with a RESULT, which a malformed body cannot get. */
proto_err proto_pickup_decode(proto_pickup *out, const uint8_t *body, size_t len);
proto_err proto_drop_decode(proto_drop *out, const uint8_t *body, size_t len);
proto_err proto_chat_check(const uint8_t *text, size_t len);
/* Strict UTF-8: no overlong forms, surrogates or code points > U+10FFFF. */
bool proto_utf8_valid(const uint8_t *s, size_t len);

void proto_write_pickup(core_buf *b, const proto_pickup *p);
void proto_write_drop(core_buf *b, const proto_drop *d);
void proto_write_chat_req(core_buf *b, const char *text, size_t len);

/* Inventory: slot-indexed; item_kind 0 = empty slot. */
typedef struct proto_inventory {
    struct {
        uint8_t item_kind;
        uint16_t quantity;
    } slots[PROTO_INV_SLOTS];
} proto_inventory;
void proto_write_inventory(core_buf *b, const proto_inventory *inv);
/* Returns 0, or -1 if malformed (size, slot order or range, empty entry). */
int proto_inventory_decode(proto_inventory *out, const uint8_t *body, size_t len);

typedef struct proto_chat {
    uint32_t entity_id; /* the speaker */
    char name[PROTO_NAME_MAX + 1];
    uint8_t text_len;
    char text[PROTO_CHAT_MAX + 1]; /* NUL-terminated copy */
} proto_chat;
void proto_write_chat(core_buf *b, const proto_chat *c);
int proto_chat_decode(proto_chat *out, const uint8_t *body, size_t len);

/* RESULT: u32 req, u8 action, u16 code (0 = done), u32 entity_id (pickup:
 * the item; drop: the item created, 0 on failure), u8 slot, u8 item_kind,
 * u16 quantity, u8 reason_len, reason. */
#define PROTO_REASON_MAX 96
typedef struct proto_result {
    uint32_t req;
    uint8_t action; /* PROTO_ACT_* */
    uint16_t code;  /* PROTO_ERR_NONE or the failure */
    uint32_t entity_id;
    uint8_t slot;
    uint8_t item_kind;
    uint16_t quantity;
    char reason[PROTO_REASON_MAX + 1];
} proto_result;
void proto_write_result(core_buf *b, const proto_result *r);
int proto_result_decode(proto_result *out, const uint8_t *body, size_t len);

/* The item descriptor travels in the ENTER name field of kind 2. */
void proto_item_desc_write(uint8_t out[PROTO_ITEM_DESC_LEN], uint8_t item_kind, uint16_t qty);
/* Returns 0, or -1 unless len is PROTO_ITEM_DESC_LEN and the kind nonzero. */
int proto_item_desc_read(const uint8_t *name, size_t len, uint8_t *item_kind, uint16_t *qty);

/* Bus messages (formats in proto_items.c's banner). Types 16..21. */
enum {
    PROTO_BUS_RECORDS = 16,      /* gw -> shard, shard -> shard: PICKUP/DROP/CHAT with gseq */
    PROTO_BUS_ITEMS_LOADED = 17, /* loader -> shard: the items lying in one cell */
    PROTO_BUS_INV_LOADED = 18,   /* loader -> shard (-> shard): a session's inventory */
    PROTO_BUS_ITEM_TAKE = 19,    /* shard -> shard: take an item you own for my player */
    PROTO_BUS_ITEM_DONE = 20,    /* shard -> shard: outcome of a take or drop */
    PROTO_BUS_CHAT = 21,         /* shard -> shard: a chat line said near your cells */
};

typedef struct proto_bus_record {
    uint32_t session_id, entity_id, gseq; /* as in proto_bus_input */
    uint8_t kind;                         /* PROTO_C_PICKUP / DROP / CHAT */
    uint16_t len;
    const uint8_t *body; /* borrowed */
} proto_bus_record;
/* RECORDS: u16 type, u32 count, count x (u32 session, u32 entity, u32 gseq,
 * u8 kind, u16 len, body). */
void proto_bus_records_begin(core_buf *b, size_t *count_at);
void proto_bus_records_add(core_buf *b, size_t count_at, const proto_bus_record *rec);
int proto_bus_record_read(core_rd *r, proto_bus_record *rec);

typedef struct proto_loaded_item {
    int64_t db_id;
    float x, y;
    uint8_t item_kind;
    uint16_t quantity;
} proto_loaded_item;
/* ITEMS_LOADED: u16 type, u32 cell, i32 status (0 or a STORE_ERR_*),
 * u32 count, count x (i64 db_id, f32 x, f32 y, u8 kind, u16 qty). */
void proto_bus_items_loaded_begin(core_buf *b, uint32_t cell, int32_t status, size_t *count_at);
void proto_bus_items_loaded_add(core_buf *b, size_t count_at, const proto_loaded_item *it);
int proto_bus_items_loaded_header(core_rd *r, uint32_t *cell, int32_t *status, uint32_t *count);
int proto_bus_loaded_item_read(core_rd *r, proto_loaded_item *it);

/* INV_LOADED: u16 type, u32 tick, u32 session, i32 status, then an
 * INVENTORY body. The tick (0 from the loader) lets a forwarding shard
 * stamp it, so it is deferred like a HANDOFF. */
void proto_bus_inv_loaded_write(core_buf *b, uint32_t tick, uint32_t session_id, int32_t status,
                                const proto_inventory *inv);
int proto_bus_inv_loaded_read(core_rd *r, uint32_t *tick, uint32_t *session_id, int32_t *status,
                              proto_inventory *inv);

typedef struct proto_item_take {
    uint32_t tick;
    uint16_t requester; /* shard of the player */
    uint32_t session_id;
    int64_t account_id;
    uint32_t item_entity;
    uint8_t slot;
    uint32_t req;
} proto_item_take;
void proto_bus_item_take_write(core_buf *b, const proto_item_take *t);
int proto_bus_item_take_read(core_rd *r, proto_item_take *t);

/* ITEM_DONE: u16 type, u32 tick, u32 session, then a RESULT body. */
void proto_bus_item_done_write(core_buf *b, uint32_t tick, uint32_t session_id,
                               const proto_result *res);
int proto_bus_item_done_read(core_rd *r, uint32_t *tick, uint32_t *session_id, proto_result *res);

/* CHAT: u16 type, u32 tick, f32 x, f32 y, then a server CHAT body. */
void proto_bus_chat_write(core_buf *b, uint32_t tick, float x, float y, const proto_chat *c);
int proto_bus_chat_read(core_rd *r, uint32_t *tick, float *x, float *y, proto_chat *c);

/* Reads a message's type (u16). */
static inline uint16_t proto_bus_type(core_rd *r)
{
    return core_rd_u16(r);
}
#endif
