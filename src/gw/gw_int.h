/* gw_int.h - the gateway's private parts, shared by gw_server.c (loop,
 * listener, timers, bus), gw_conn.c (connections, send path, WebSocket
 * sessions) and gw_routes.c (HTTP routes, login, the upgrade).
 *
 * Everything here belongs to the gateway thread (the one in gw_run), except
 * gw.stop_fd, which gw_stop writes from any thread or a signal handler.
 *
 * Connection lifetime: a gw_conn is a record of g->conns, indexed by the
 * slot of its id, and is found through its id (never a stored pointer
 * outside the table). gw_conn_close() closes the fd at once, marks the
 * record DEAD (so later lookups and stale epoll events miss), and parks
 * it on a reap list emptied at the end of the loop round, so a caller up
 * the stack may still read the record (check c->state == GW_CONN_DEAD
 * after any call that can close); only the reap frees its buffers and
 * gives the slot back, so a record is never reused within a round. */
#ifndef GW_INT_H
#define GW_INT_H
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "core_buf.h"
#include "core_config.h"
#include "core_idmap.h"
#include "core_metrics.h"
#include "core_rng.h"
#include "gw.h"
#include "gw_auth.h"
#include "gw_http.h"
#include "gw_ws.h"
#include "proto.h"
#include "spatial.h"

/* Session/connection ids: (generation << GW_SLOT_BITS) | slot. The
 * generation starts at 1 so an id is never 0, and wraps within 12 bits. */
#define GW_SLOT_BITS 20
#define GW_SLOT_MASK ((1u << GW_SLOT_BITS) - 1)
#define GW_GEN_MAX ((1u << (32 - GW_SLOT_BITS)) - 1)

#define GW_SWEEP_MS 250   /* timer period: heartbeats, deadlines */
#define GW_TRIM_SWEEPS 40 /* every 10 s: free heap pages go back to the system */
#define GW_HTTP_IN_CAP (GW_HTTP_MAX_HEAD + GW_HTTP_MAX_BODY) /* HTTP input bound, bytes */
#define GW_WS_FRAME_OVERHEAD 14      /* largest client frame header (8-byte length + mask) */
#define GW_EXTRA_MAX_AGE_MS 100      /* gateway records wait at most this long (sweep fallback) */
#define GW_ERRORS_PER_S 4            /* ERROR records sent per second per connection */
#define GW_DROPS_TOTAL_MAX 1000      /* rate-limited records before the connection is closed */
#define GW_ABUSE_MS 2000             /* 3x the rate for this long closes the connection */
#define GW_HTTP_OUT_MAX (256 * 1024) /* unread HTTP answers above this pause request handling */

typedef enum gw_conn_state {
    GW_CONN_HTTP = 0,   /* reading request heads */
    GW_CONN_LOGIN_WAIT, /* a login is with the workers; input not read */
    GW_CONN_WS,         /* an open WebSocket session */
    GW_CONN_CLOSING,    /* our close frame is queued; waiting for the peer's or a flush */
    GW_CONN_DEAD,       /* fd closed; on the reap list */
} gw_conn_state;

/* What an upgrade carries from its request to the 101 (the player record
 * is loaded in between); freed when the session starts. */
typedef struct gw_upgrade {
    char username[33];
    char accept[29];                          /* Sec-WebSocket-Accept */
    bool is_sub;                              /* the upgrade named our subprotocol: echo it */
    bool has_resume;                          /* the upgrade carried ?resume= */
    uint8_t resume[PROTO_RESUME_TOKEN_BYTES]; /* ... its token */
} gw_upgrade;

/* A connection's buffers and WebSocket parser, allocated while any of
 * them holds something: an idle session points at g->io_none, the empty
 * one, which is never written (gw_conn_io before any write). */
typedef struct gw_io {
    core_buf in;             /* unparsed input; bound GW_HTTP_IN_CAP or max WS frame */
    core_buf out;            /* committed bytes (HTTP, control and reliable WS frames) */
    core_buf pend;           /* latest unsent STATE payload (records, no WS header) */
    core_buf extra;          /* gateway-made records (PONG, ERROR) riding on the next message */
    uint64_t extra_since_ms; /* when extra became non-empty */
    gw_ws_parser ws;         /* valid when the connection's is_ws_init */
} gw_io;

/* A connection's message rate limit while it is in use: the token bucket
 * and the 1 s windows of drops and ERRORs. A connection at rest (bucket
 * full, windows over: gw_conn_sweep checks) holds none, which behaves
 * exactly like a fresh one. */
typedef struct gw_rate {
    float tokens;             /* records allowed now */
    uint32_t drops_window;    /* dropped in the current 1 s window */
    uint32_t errors_window;   /* ERROR records sent in the current 1 s window */
    uint64_t tokens_ms;       /* last refill */
    uint64_t drops_window_ms; /* start of that window */
    uint64_t abuse_since_ms;  /* start of a run of windows at >= 3x the rate; 0 = none */
    uint64_t errors_window_ms;
} gw_rate;

/* One connection. An idle WebSocket session costs this record (104 bytes
 * in one array, no allocation of its own) and nothing else: its buffers
 * and parser (io) are freed as soon as they drain, and what only the
 * upgrade needs lives in `up` until the session starts. */
typedef struct gw_conn {
    int fd;
    uint32_t id;         /* (gen << 20) | slot; also the WebSocket session id; 0 = unused record */
    uint32_t ev_mask;    /* epoll events currently registered */
    uint8_t state;       /* gw_conn_state */
    bool is_touched : 1; /* on g->touched for the end-of-round write */
    bool is_flush_extra : 1;       /* next flush sends extra even without a STATE */
    bool is_extra_waiting : 1;     /* on g->extra_wait: extra waits for its shard's tick */
    bool is_close_after_flush : 1; /* close the fd as soon as out drains */
    bool is_ws_init : 1;           /* ws parser initialised (needs freeing) */
    bool is_joined : 1;            /* JOIN sent and LEAVE not yet */
    bool is_pinged : 1;            /* a heartbeat ping went out since the last frame */
    bool is_welcomed : 1;          /* a shard frame (WELCOME first) has been queued */
    bool is_head : 1;              /* current request is HEAD (respond without body) */
    bool is_keep_alive : 1;        /* current request keeps the connection */
    bool is_upgrade_wait : 1;      /* LOGIN_WAIT for the player load of an upgrade */
    bool needs_reset : 1;          /* a STATE was dropped: deltas wait for a RESET STATE */
    uint16_t route_shard;          /* shard that owns the session's entity */
    uint16_t close_code;           /* the code that ended the session (logs, metrics) */
    uint8_t addr[16];              /* peer address (IPv4 as v4-mapped IPv6), per-address cap key */
    uint32_t entity_id;            /* 0 until ROUTE tells us */

    gw_io *io;      /* owned, or &g->io_none (all empty: never written) */
    gw_upgrade *up; /* while an upgrade waits for its player record, else NULL */
    /* One or the other by state (the sweep reads each in its own):
     * HTTP, LOGIN_WAIT and CLOSING have a deadline, an open session
     * (WS) the time of its last frame. */
    union {
        uint64_t deadline_ms; /* HTTP head/body deadline or close deadline; 0 = none */
        uint64_t last_rx_ms;  /* WS: last received WebSocket frame (or the upgrade) */
    };

    uint32_t gseq; /* gateway sequence of the last input forwarded (1, 2, ... no gaps) */
    uint32_t account_id;

    uint32_t drops_total; /* records dropped by the rate limit, ever */
    uint32_t next_dead;   /* reap list: slot + 1 of the next record, 0 = the end */
    gw_rate *rate;        /* owned; NULL at rest (a full bucket) */
} gw_conn;

/* Per-address connection counts: open addressing, linear probing,
 * backward-shift deletion. */
typedef struct gw_addr_slot {
    uint8_t key[16];
    uint32_t count; /* 0 = empty */
} gw_addr_slot;

struct gw {
    core_config cfg; /* copy */
    uint16_t gw_id;
    uint32_t bus_ep; /* BUS_EP_GW(gw_id) */
    bus *b;
    const spatial_cellmap *cells;
    core_metrics *m;
    gw_hooks hooks;
    gw_auth *auth;
    gw_login *login;
    struct gw_acct *acct; /* gw_acct.c: login limits, provider key reloads */
    core_rng rng;         /* spawn points */

    int ep_fd, listen_fd, timer_fd, stop_fd, bus_fd, login_fd;
    int port;
    bool is_listening;    /* listener in epoll */
    bool is_emfile;       /* paused by EMFILE/ENFILE: retry on the sweep */
    bool is_emfile_retry; /* the sweep is retrying after EMFILE: pause again quietly */
    bool is_stopping;
    uint64_t now_ms;   /* cached at the top of each round */
    uint32_t n_sweeps; /* timer rounds so far */

    /* slot -> connection record, n_slots entries (calloc'd: the pages of
     * slots never used are never touched); id 0 = unused */
    gw_conn *conns;
    gw_io io_none;  /* the io of every connection with nothing buffered; all zero, never written */
    uint32_t *gens; /* slot -> current generation (1..GW_GEN_MAX) */
    /* Free slots, a FIFO ring: a slot is reused as late as possible, so a
     * stale id (a late shard frame, a login result) almost never meets
     * the same slot with a wrapped generation. */
    uint32_t *free_slots; /* ring of n_slots entries */
    uint32_t free_head, n_free;
    uint32_t n_slots, hi_slot;      /* hi_slot: one past the highest slot ever used */
    uint32_t n_conns;               /* open sockets */
    uint32_t n_sessions;            /* joined WebSocket sessions */
    core_idmap live_by_account;     /* account id -> conn id of its joined session */
    core_idmap detached_by_account; /* account id -> index into detached */
    struct gw_detached *detached;   /* sessions waiting to be resumed */
    uint8_t resume_key[32];         /* resume tokens are keyed hashes under it (gw_session.c) */
    uint32_t n_detached, detached_cap;

    gw_addr_slot *addrs; /* per-address counts, n_addrs (power of two) */
    uint32_t n_addrs;

    uint32_t *touched; /* ids to write at the end of the round */
    uint32_t n_touched, cap_touched;
    /* ids whose gateway-made records wait for the next tick of their shard
     * (gw_conn_extra_begin); entries may be stale (closed, already sent) */
    uint32_t *extra_wait;
    uint32_t n_extra_wait, cap_extra_wait;
    uint32_t dead; /* reap list: slot + 1 of its first record, 0 = empty */

    core_buf inputs[BUS_MAX_SHARDS]; /* this round's INPUTS batch per shard */
    size_t inputs_count_at[BUS_MAX_SHARDS];
    uint64_t inputs_used; /* bitmask of shards with a batch this round */

    uint8_t *scratch; /* read buffer, scratch_cap bytes */
    size_t scratch_cap;
    core_buf tmp; /* bus message / response building */
    char token_buf[GW_AUTH_TOKEN_MAX + 2];
    gw_login_result results[16];

    /* metrics */
    core_gauge *g_conns, *g_sessions;
    core_counter *c_accepted, *c_accept_paused, *c_msgs_in, *c_msgs_out, *c_bytes_in, *c_bytes_out,
        *c_state_replaced, *c_frames_unknown;
    core_counter *c_http[600]; /* by status code, registered on first use */
    core_counter *c_rejected[PROTO_ERR_COUNT];
    core_counter *c_closes[16]; /* by close code, see gw_close_counter */
    uint16_t close_codes[16];
};

/* ---- gw_server.c ---- */
void gw_listener_resume(gw *g);
void gw_addr_release(gw *g, const uint8_t key[16]);
/* Sends a bus message to shard; logs failures. Returns 0 or -1. */
int gw_bus_send_shard(gw *g, uint16_t shard, const core_buf *msg);
/* Adds one input to this round's batch for shard. */
void gw_inputs_add(gw *g, uint16_t shard, const proto_bus_input *in);
core_counter *gw_http_counter(gw *g, int status);

/* ---- gw_conn.c ---- */
gw_conn *gw_conn_new(gw *g, int fd, const uint8_t addr[16], const char *addr_str);
/* The printable form of a connection's address key (for logs). */
void gw_addr_format(const uint8_t addr[16], char *out, size_t cap);
gw_conn *gw_conn_find(gw *g, uint32_t id);
/* The open connection in slot (< n_slots), or NULL (unused or closed). */
static inline gw_conn *gw_conn_at(gw *g, uint32_t slot)
{
    gw_conn *c = &g->conns[slot];
    return c->id && c->state != GW_CONN_DEAD ? c : NULL;
}
/* c's io, allocated (buffers empty, parser fresh) if c had none: call
 * before writing to any of c->io's fields. */
gw_io *gw_conn_io(gw *g, gw_conn *c);
/* Recomputes the epoll interest (EPOLLIN unless waiting or full, EPOLLOUT
 * while out is non-empty). */
void gw_conn_update_events(gw *g, gw_conn *c);
/* Schedules one write at the end of the round. */
void gw_conn_touch(gw *g, gw_conn *c);
/* One sendmsg of out + the pending message. Arms EPOLLOUT on a partial
 * write. May close c (check state). */
void gw_conn_flush(gw *g, gw_conn *c);
void gw_conn_on_readable(gw *g, gw_conn *c);
/* Processes buffered input (after a login answer). */
void gw_conn_process_buffered(gw *g, gw_conn *c);
/* Shard frames (latest-wins STATE / reliable). */
void gw_conn_frame(gw *g, gw_conn *c, const proto_frame *f);
/* Call before appending a record to c->extra: stamps extra_since_ms and
 * puts c on g->extra_wait when extra was empty. */
void gw_conn_extra_begin(gw *g, gw_conn *c);
/* Shard `shard` finished a tick (its FRAMES message was handled): waiting
 * gateway records of its sessions that got no STATE to ride on go alone
 * now. A shard sends no STATE to an idle client for up to a second, so
 * PONGs and ERRORs cannot wait for one. */
void gw_conn_extras_tick(gw *g, uint16_t shard);
/* Queues a close frame and enters CLOSING. wait_peer: keep reading for
 * the peer's close until close_timeout_s; else close once flushed. */
void gw_conn_ws_close(gw *g, gw_conn *c, uint16_t code, const char *reason, bool wait_peer);
/* Closes the socket now (sends LEAVE for a joined session). */
void gw_conn_close(gw *g, gw_conn *c);
/* Opens the WebSocket session of c (the 101 is already queued) and sends
 * JOIN: at *spawn (x, y) when the player has a stored position, else at a
 * random point. resume: the ?resume= token of the upgrade, or NULL.
 * Returns 0, or -1 (c is closing). */
int gw_conn_ws_start(gw *g, gw_conn *c, const gw_claims *claims, const float *spawn,
                     const uint8_t *resume);
/* Heartbeats and deadlines for one connection. */
void gw_conn_sweep(gw *g, gw_conn *c);
/* Frees connections closed during this round. */
void gw_conn_reap(gw *g);
/* Frees a connection that is still open (gw_destroy). */
void gw_conn_free(gw *g, gw_conn *c);
/* Sends LEAVE for a joined session (idempotent). */
void gw_conn_leave(gw *g, gw_conn *c);
/* gw_acct.c: the Authorization: Bearer token into g->token_buf: its length,
 * 0 when there is no Authorization header, -1 when it is malformed. */
int gw_bearer_token(gw *g, const gw_http_req *req);

/* gw_session.c: one session per account; resume after a dropped connection */
typedef struct gw_detached {
    uint32_t account_id;
    uint32_t session_id;  /* the session id the shard knows the entity by */
    uint16_t route_shard; /* where its entity is */
    uint32_t entity_id;
    uint64_t expiry_ms;
} gw_detached;
/* Makes the key resume tokens are derived with (gw_create). */
void gw_session_init(gw *g);
/* Enters c's player into the world: takes over the account's live or
 * detached session (ATTACH: same entity; input sequence numbers continue
 * when c presented that session's resume token, resume), else JOIN at
 * spawn. */
void gw_session_enter(gw *g, gw_conn *c, const char *username, const float *spawn,
                      const uint8_t *resume);
/* After JOIN/ATTACH: registers the live session and sends the client a
 * fresh resume token (SESSION record). */
void gw_session_opened(gw *g, gw_conn *c);
/* The joined session of c ended: DETACH (kept for the grace) or, when the
 * gateway stops, LEAVE. */
void gw_session_closed(gw *g, gw_conn *c);
/* Forgets detached sessions whose grace has passed. Timer. */
void gw_session_sweep(gw *g);
void gw_session_free(gw *g);

/* ---- gw_records.c ---- */
/* Checks a PICKUP/DROP/CHAT record and forwards it to c's shard with the
 * next gseq. Returns PROTO_ERR_NONE, or the reason to reject it with. */
proto_err gw_records_forward(gw *g, gw_conn *c, uint8_t kind, const uint8_t *body, size_t len);

/* ---- gw_routes.c ---- */
/* Handles request heads in buf[0..len) while c is in HTTP state; may
 * upgrade c to WS. Returns the bytes consumed. May close c. */
size_t gw_routes_process(gw *g, gw_conn *c, uint8_t *buf, size_t len);
/* Answers a finished login. */
void gw_routes_login_done(gw *g, const gw_login_result *r);
#endif
