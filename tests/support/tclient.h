/* tclient.h - test client for end-to-end tests against a real
 * `tessera serve` process: start and stop the server, raw and convenience
 * HTTP, login, an RFC 6455 WebSocket client that can also send malformed
 * frames, and a game-protocol pump (WELCOME, STATE, PONG, ERROR) built on
 * proto.h. Used by tests/integration, the simulation tests and the load
 * generator's tests.
 *
 * Model: blocking loopback sockets with poll() timeouts, no threads, one
 * caller. Every function that waits takes a timeout in milliseconds and
 * never waits longer. Functions return 0 (or a documented non-negative
 * value) on success and -1 on failure; nothing aborts on a peer's
 * misbehaviour, so tests can assert on it. Handles are caller-owned
 * structs (ts_server, ts_ws, ts_game) with an explicit close/free. Every
 * pointer parameter is borrowed unless stated otherwise.
 *
 * A test program's main() should look like:
 *
 *     int main(void) {
 *         ts_watchdog(90);                     // kills servers, exits on hang
 *         int failed = cmocka_run_group_tests(tests, setup, teardown);
 *         failed += g_server_bad;              // set by teardown, see below
 *         ts_finish(failed);                   // kills leftovers, shows logs
 *         return failed;
 *     }
 *
 * where the teardown sets g_server_bad = ts_server_stop_checked(&srv) != 0
 * (cmocka 1.1 does not count a failed group teardown as a failure).
 *
 * Servers are never left running: ts_watchdog's SIGALRM handler, an atexit
 * handler and PR_SET_PDEATHSIG in the child all kill them. */
#ifndef TCLIENT_H
#define TCLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core_buf.h"
#include "proto.h"

#define TS_TIMEOUT_MS 5000 /* default I/O timeout of the convenience calls */
#define TS_TOKEN_MAX 1024  /* room for a login token, NUL included */

/* ------------------------------------------------------------------ */
/* Process control                                                     */
/* ------------------------------------------------------------------ */

/* Arms alarm(seconds) with a handler that SIGKILLs every server started
 * by this process, prints a message and _exits with status 3. Also
 * installs the atexit cleanup and ignores SIGPIPE. Call first in main. */
void ts_watchdog(unsigned seconds);

/* Kills servers still running, prints the logs of every server started
 * when failed != 0 (or TESSERA_KEEP_LOGS is set, which also keeps the
 * files), then removes the log files. Call last in main. */
void ts_finish(int failed);

typedef struct ts_server {
    pid_t pid;          /* > 0 while running; 0 when stopped */
    int port;           /* loopback port the server listens on */
    char log_path[128]; /* the server's stderr, kept until ts_finish */
} ts_server;

/* Starts "$TESSERA_BIN serve --port P --log-level warn <extra_args>" on a
 * free loopback port, with a fresh temporary --data-dir (removed by
 * ts_finish) unless extra_args names one, its stderr going to a temporary log file, and waits
 * up to 10 s for GET /healthz to answer 200. extra_args is a
 * NULL-terminated array of separate argv words (NULL for none). Retries
 * with another port if the process exits during start-up. Returns 0, or
 * -1 (printed with the log's tail; no process left running). */
int ts_server_start(ts_server *s, const char *const extra_args[]);

/* Waits up to timeout_ms for GET /readyz to answer 200. Returns 0 or -1. */
int ts_server_wait_ready(const ts_server *s, int timeout_ms);

/* True if the server process has not exited (reaps it if it has; then
 * *status_out, if not NULL, gets the status as ts_server_stop returns). */
bool ts_server_alive(ts_server *s, int *status_out);

/* SIGTERM, waits up to 5 s, then SIGKILL. Returns the exit status: the
 * exit code, or 128 + signal number if it died of a signal (137 after our
 * SIGKILL). Returns -1 if it was not running. */
int ts_server_stop(ts_server *s);

/* For teardowns: ts_server_stop, then returns 0 if the server was still
 * running and exited with status 0 (a clean SIGTERM shutdown), else -1
 * with the reason printed, so a crash during the tests or a failure at
 * shutdown (a sanitizer report, say) fails the test program. */
int ts_server_stop_checked(ts_server *s);

/* Writes the server's log to stderr (at most the last max_bytes). */
void ts_server_dump_log(const ts_server *s, size_t max_bytes);

/* ------------------------------------------------------------------ */
/* Sockets and HTTP                                                    */
/* ------------------------------------------------------------------ */

/* Connected blocking TCP socket to 127.0.0.1:port, or -1. Bounded by
 * timeout_ms. */
int ts_tcp_connect(int port, int timeout_ms);

/* Sends all of buf, waiting at most timeout_ms for socket space. Returns 0,
 * or -1 on error or timeout (never raises SIGPIPE). */
int ts_send_all(int fd, const void *buf, size_t len, int timeout_ms);

/* Waits up to timeout_ms for the peer to close: returns 0 on EOF or reset
 * (bytes received meanwhile are discarded), -1 on timeout or error. */
int ts_wait_eof(int fd, int timeout_ms);

/* Filled by every call below, even on failure (then status 0 and head
 * and body ""), and freed with ts_http_resp_free. */
typedef struct ts_http_resp {
    int status; /* status code, 0 if no complete response head */
    char *head; /* response head incl. CRLFCRLF, NUL-terminated; owned */
    char *body; /* body, NUL-terminated (binary safe with body_len); owned */
    size_t body_len;
    bool is_closed; /* the server closed the connection after it */
} ts_http_resp;

void ts_http_resp_free(ts_http_resp *r); /* zeroes it; freeing twice is fine */

/* Copies header name's value (case-insensitive, trimmed) into out.
 * Returns its length, or -1 if absent (out is then ""). */
int ts_http_header(const ts_http_resp *r, const char *name, char *out, size_t cap);

/* Reads one response from fd: the head, then Content-Length bytes of body
 * (or until EOF when there is no Content-Length; none for 1xx, 204, 304).
 * Bytes after the response are discarded. Returns 0 with *out filled, or
 * -1 if no complete head arrived within timeout_ms (out->status is 0 and
 * out->is_closed says whether the peer closed). */
int ts_http_read(int fd, int timeout_ms, ts_http_resp *out);

/* Opens a connection, sends req[0..len) as is (hostile requests welcome),
 * reads one response and closes. Returns 0 or -1 as ts_http_read; a send
 * failure is ignored when the server still answers (it may refuse early). */
int ts_http_raw(int port, const void *req, size_t len, int timeout_ms, ts_http_resp *out);

/* Well-formed request: "METHOD path HTTP/1.1", Host, Connection: close,
 * the extra header lines in headers (each ending "\r\n", or NULL) and a
 * Content-Length when body is not NULL. Returns the status (> 0), or -1. */
int ts_http_request(int port, const char *method, const char *path, const char *headers,
                    const char *body, ts_http_resp *out);

/* POST /api/login. On 200 copies the token into token_out (cap bytes).
 * Returns the HTTP status (200 on success; 200 without a token string in
 * the JSON becomes -1), or -1 on I/O failure. */
int ts_login(int port, const char *username, const char *password, char *token_out, size_t cap);

/* A valid username unique within this test process: prefix (letters,
 * digits, _ or -; cut to fit) + pid + counter, at most 24 characters. */
void ts_unique_name(const char *prefix, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* WebSocket client                                                    */
/* ------------------------------------------------------------------ */

enum {
    TS_WS_CONT = 0x0,
    TS_WS_TEXT = 0x1,
    TS_WS_BINARY = 0x2,
    TS_WS_CLOSE = 0x8,
    TS_WS_PING = 0x9,
    TS_WS_PONG = 0xA,
};

#define TS_WS_NO_CLOSE 1006 /* ts_ws_expect_close: EOF or reset without a close frame */

typedef struct ts_ws {
    int fd;              /* -1 when closed */
    core_buf in;         /* received bytes; frames start at in_pos */
    size_t in_pos;       /* bytes of `in` already handed out and done with */
    size_t consume;      /* size of the last returned frame, skipped next call */
    core_buf msg;        /* reassembly of a fragmented server message */
    uint8_t msg_opcode;  /* opcode of the message being reassembled, 0 if none */
    bool msg_done;       /* msg holds a message already returned; reset next call */
    int send_timeout_ms; /* longest wait for socket space per send (default TS_TIMEOUT_MS) */
    bool auto_pong;      /* answer server pings inside recv calls (default true) */
    bool is_eof;         /* the peer closed or reset the connection */
    bool is_reset;       /* ... with a reset (ECONNRESET) */
    bool close_sent;     /* we sent a close frame */
    bool close_received;
    uint32_t n_pings_rx;  /* ping frames received from the server */
    uint32_t n_masked_rx; /* server frames that were masked (a server bug) */
    char protocol[64];    /* Sec-WebSocket-Protocol of the 101, "" if none */
} ts_ws;

/* Handshake options; zero-initialise and set what you need. */
typedef struct ts_ws_opts {
    const char *token;         /* sent as ?token=..., NULL for none */
    const char *bearer;        /* sent as Authorization: Bearer ..., NULL for none */
    const char *key;           /* Sec-WebSocket-Key; NULL = random 16 bytes */
    const char *version;       /* Sec-WebSocket-Version; NULL = "13", "" = omit */
    const char *protocol;      /* Sec-WebSocket-Protocol; NULL = "tessera.v1", "" = omit */
    const char *extra_headers; /* extra lines, each ending "\r\n", or NULL */
    const char *path;          /* default "/ws" */
    int rcvbuf_bytes;          /* SO_RCVBUF set before connecting; 0 = system default */
    int timeout_ms;            /* default TS_TIMEOUT_MS */
} ts_ws_opts;

/* Opens a connection and performs the handshake. Returns 101 with ws open
 * (the 101 checked: Upgrade, Connection, Sec-WebSocket-Accept), the HTTP
 * status of a refusal (ws closed; the answer in *refusal when not NULL,
 * which the caller frees), or -1 on I/O failure or a bad 101 (printed). */
int ts_ws_open(ts_ws *ws, int port, const ts_ws_opts *o, ts_http_resp *refusal);

/* ts_ws_open with a token and extra header lines, defaults otherwise. */
int ts_ws_connect(ts_ws *ws, int port, const char *token, const char *extra_headers);

/* Closes the socket without a close handshake and frees buffers. Safe on
 * a closed or zeroed ws. */
void ts_ws_close(ts_ws *ws);

/* Sends one frame exactly as described: fin, rsv (3 bits, 0..7), opcode
 * (any 4-bit value), payload, masked with a random key when masked. The
 * length uses the minimal encoding. Returns 0 or -1. */
int ts_ws_send_frame(ts_ws *ws, bool fin, uint8_t rsv, uint8_t opcode, const void *payload,
                     size_t len, bool masked);
/* Sends bytes as they are (hand-made frames). Returns 0 or -1. */
int ts_ws_send_raw(ts_ws *ws, const void *bytes, size_t len);
/* A masked, final binary frame. Returns 0 or -1. */
int ts_ws_send_binary(ts_ws *ws, const void *payload, size_t len);
/* A masked close frame with code (0 = no payload) and reason (or NULL). */
int ts_ws_send_close(ts_ws *ws, uint16_t code, const char *reason);

/* Receives one frame (of any opcode; server frames are expected unmasked,
 * a masked one is unmasked and counted in n_masked_rx). *payload borrows
 * from ws and stays valid until the next receive call on ws. Answers a
 * ping with a pong when auto_pong (the ping is still returned). fin may
 * be NULL. Returns 0, or -1 on timeout (is_eof false) or EOF/reset
 * (is_eof true). */
int ts_ws_recv_frame(ts_ws *ws, int timeout_ms, bool *fin, uint8_t *opcode, const uint8_t **payload,
                     size_t *len);

/* Receives one whole message: data frames are reassembled, pings and
 * pongs are consumed (pings answered when auto_pong), a close frame is
 * returned as opcode TS_WS_CLOSE with its payload. Same return and
 * lifetime rules as ts_ws_recv_frame. */
int ts_ws_recv_msg(ts_ws *ws, int timeout_ms, uint8_t *opcode, const uint8_t **payload,
                   size_t *len);

/* Reads and discards frames until a close frame arrives or the connection
 * ends. Returns the close code (1005 if the frame had no payload), 1006
 * (TS_WS_NO_CLOSE) on EOF or reset without a close frame, or -1 on
 * timeout. The reason goes to reason_out (NUL-terminated) when not NULL.
 * If we had not sent a close, the code is echoed back (RFC 6455 5.5.1). */
int ts_ws_expect_close(ts_ws *ws, int timeout_ms, int *code_out, char *reason_out,
                       size_t reason_cap);

/* ------------------------------------------------------------------ */
/* Game protocol                                                       */
/* ------------------------------------------------------------------ */

/* Records: INPUT and PING, each in its own binary message. */
int ts_send_input(ts_ws *ws, uint32_t seq, float dx, float dy);
int ts_send_ping_record(ts_ws *ws, uint32_t nonce);

#define TS_GAME_MAX_ERRORS 64
#define TS_GAME_MAX_PONGS 256

typedef struct ts_game_error {
    uint16_t code; /* PROTO_ERR_* */
    char reason[256];
} ts_game_error;

/* One client's view of the game, fed by ts_game_pump. */
typedef struct ts_game {
    proto_view view; /* slot table; view.ack_seq, view.tick of the last STATE */
    bool has_welcome;
    proto_welcome welcome; /* owners/obstacles point into the copies below */
    uint8_t *owners;       /* owned copy, cells_x * cells_y */
    uint8_t *obstacles;    /* owned copy, n_obstacles * 12 bytes */
    uint32_t entity_id;    /* from WELCOME, 0 before */
    uint32_t n_messages;   /* binary messages received */
    uint32_t n_states;     /* STATE records applied */
    uint32_t n_bad;        /* broken framing, bad WELCOME/STATE, text messages */
    uint32_t n_errors;     /* ERROR records received (all, even past the array) */
    ts_game_error errors[TS_GAME_MAX_ERRORS]; /* the first TS_GAME_MAX_ERRORS */
    uint32_t n_pongs;                         /* PONG records received */
    uint32_t pong_nonces[TS_GAME_MAX_PONGS];  /* ring, index n % TS_GAME_MAX_PONGS */
    uint32_t pong_tick;                       /* tick of the last PONG */
    bool is_closed;                           /* a close frame or EOF was seen */
    int close_code;                           /* its code (1006 for EOF without close frame) */
    char close_reason[128];
    /* Optional hook, called for every record (known kinds too) before
     * the pump's own handling. */
    void (*on_record)(void *ctx, uint8_t kind, const uint8_t *body, size_t len);
    void *ctx;
} ts_game;

void ts_game_init(ts_game *g);
void ts_game_free(ts_game *g);

/* True once at least one ERROR with this code has been received. */
bool ts_game_has_error(const ts_game *g, uint16_t code);
/* True if a PONG with this nonce is among the last TS_GAME_MAX_PONGS. */
bool ts_game_has_pong(const ts_game *g, uint32_t nonce);

/* Reads messages for up to timeout_ms and applies them to g. If done is
 * not NULL it is checked after each message (and first), and the pump
 * returns as soon as it holds. Returns 0 when done held (or, with done
 * NULL, when the time ran out), 1 on timeout with done not holding, -1
 * once the connection is closed (g->is_closed, g->close_code). */
int ts_game_pump(ts_ws *ws, ts_game *g, int timeout_ms, bool (*done)(const ts_game *g, void *ctx),
                 void *ctx);

/* Pump until a condition, with the same return values as ts_game_pump. */
int ts_game_wait_welcome(ts_ws *ws, ts_game *g, int timeout_ms);
int ts_game_wait_states(ts_ws *ws, ts_game *g, uint32_t n_states, int timeout_ms);
int ts_game_wait_ack(ts_ws *ws, ts_game *g, uint32_t seq, int timeout_ms);
int ts_game_wait_error(ts_ws *ws, ts_game *g, uint16_t code, int timeout_ms);
int ts_game_wait_pong(ts_ws *ws, ts_game *g, uint32_t nonce, int timeout_ms);

/* Logs in as username (password "password1"), opens the WebSocket into
 * ws and waits for WELCOME and one STATE, fed into g, which the caller
 * has set up with ts_game_init (and frees with ts_game_free, whatever the
 * result). Returns 0, or -1 (ws closed). */
int ts_game_join(int port, const char *username, ts_ws *ws, ts_game *g, int timeout_ms);

/* Sends INPUT seq heading along x towards the farther world edge, so the
 * player keeps moving (and gets a STATE every tick: an idle client gets
 * one every 5 s) for at least world_w / 2 / player_speed seconds. Needs
 * the WELCOME and the client's own entity in view. Returns 0 or -1. */
int ts_game_walk(ts_ws *ws, ts_game *g, uint32_t seq);

/* ------------------------------------------------------------------ */
/* Misc                                                                */
/* ------------------------------------------------------------------ */

uint64_t ts_now_ms(void); /* CLOCK_MONOTONIC milliseconds */
void ts_sleep_ms(int ms);
#endif
