/* bots_int.h - internals of the load generator, shared by its files and
 * its tests:
 *   bots_hist.c   latency histogram, run statistics, /proc sampling;
 *   bots_token.c  HS256 token minting, base64, the WebSocket accept key;
 *   bots_conn.c   one bot's connection: connect, login, upgrade, frames;
 *   bots_loop.c   the epoll loop of one process: schedule, workloads;
 *   bots_cli.c    flags, --print-server-args, worker processes, merge;
 *   bots_report.c the human summary and the JSON file.
 *
 * A process runs opts.n_local bots with global ids [first_bot,
 * first_bot + n_local) out of n_clients; all processes share t0_ns, so
 * ramp slots and the measured window line up across workers. */
#ifndef BOTS_INT_H
#define BOTS_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core_buf.h"
#include "core_rng.h"
#include "proto.h"

/* ---- latency histogram (HDR-style, log-linear, 1 us resolution) ----
 * Values below BOTS_HIST_SUB microseconds have a bucket each; above, every
 * power of two is split into BOTS_HIST_HALF buckets, so a bucket is at
 * most 1/512 of its value wide (0.2%). Values past the top are clamped. */
#define BOTS_HIST_SUB 1024u
#define BOTS_HIST_HALF 512u
#define BOTS_HIST_MAX_SHIFT 27u /* top bucket ends near 2^37 us = 38 h */
#define BOTS_HIST_N (BOTS_HIST_SUB + BOTS_HIST_MAX_SHIFT * BOTS_HIST_HALF)

#define W3_FREE_S 10.0 /* W3: seconds of W1 behaviour after the ramp */

typedef struct bots_hist {
    uint64_t counts[BOTS_HIST_N];
    uint64_t n;      /* samples */
    uint64_t sum_us; /* for the mean */
    uint64_t min_us; /* exact; UINT64_MAX when n == 0 */
    uint64_t max_us; /* exact */
} bots_hist;

void bots_hist_init(bots_hist *h);
void bots_hist_add(bots_hist *h, uint64_t us);
void bots_hist_merge(bots_hist *dst, const bots_hist *src);
size_t bots_hist_index(uint64_t us);
uint64_t bots_hist_bucket_lo(size_t i); /* smallest value of bucket i */
uint64_t bots_hist_bucket_hi(size_t i); /* largest value of bucket i */
/* Value at percentile p (0..100): the largest value of the bucket that
 * holds the sample of rank ceil(p/100 * n), capped at the exact max; 0
 * when empty. */
uint64_t bots_hist_percentile(const bots_hist *h, double p);

/* ---- HS256 tokens (bots_token.c) ---- */
#define BOTS_TOKEN_MAX 512
/* Mints a token with the claims the server's login issues: sub = decimal
 * account_id, name, iss = aud = "tessera", iat = now_s, exp = now_s +
 * ttl_s, jti = 16 random bytes in hex. Returns its length, or -1 if cap
 * is too small or the name does not fit. */
int bots_token_mint(char *out, size_t cap, const void *secret, size_t secret_len,
                    uint32_t account_id, const char *name, int64_t now_s, int ttl_s);
/* Standard base64 with padding of n bytes into out (NUL-terminated);
 * returns the length. cap must be >= 4 * ((n + 2) / 3) + 1. */
size_t bots_base64(char *out, size_t cap, const uint8_t *in, size_t n);
/* Sec-WebSocket-Accept for a key (28 characters + NUL into out[29]). */
void bots_ws_accept(char out[29], const char *key);

/* ---- options ---- */
typedef enum bots_workload { BOTS_W1, BOTS_W2, BOTS_W3, BOTS_W6 } bots_workload;

typedef struct bots_opts {
    bots_workload workload;
    uint32_t n_clients;          /* all processes together */
    double ramp_s;               /* connects spread over this */
    double settle_s;             /* after the ramp, before the window */
    double duration_s;           /* the measured window */
    double connect_timeout_s;    /* connect + login + upgrade + WELCOME */
    char host[64];               /* as given, for reports */
    struct sockaddr_storage dst; /* loopback target */
    socklen_t dst_len;
    int server_pid;       /* 0 = none */
    char json_path[256];  /* "" = no JSON */
    uint64_t seed;        /* headings, phases, names */
    int procs;            /* worker processes */
    uint32_t src_first;   /* first source IPv4 address (host order), 0 = none */
    uint32_t n_src;       /* source addresses, 0 = let the kernel choose */
    uint32_t view_slots;  /* slot table size per bot */
    bool use_login;       /* POST /api/login instead of minting */
    char jwt_secret[256]; /* HS256 secret when minting */
    char name_prefix[12]; /* usernames are prefix + "-" + global id */
    char password[64];    /* for --login */
    int input_hz;         /* inputs per second per bot (W1, W3) */
    bool is_quiet;        /* no progress line */
    /* per process, set by bots_cli.c */
    uint32_t first_bot; /* global id of local bot 0 */
    uint32_t n_local;   /* bots in this process */
    uint64_t t0_ns;     /* CLOCK_MONOTONIC start shared by all workers */
    bool is_sampler;    /* this process samples the server's /proc */
    int progress_fd;    /* worker: pipe to the parent, -1 = print itself */
} bots_opts;

/* ---- statistics of a run (one process, or merged) ---- */
#define BOTS_MAX_CODES 16 /* distinct HTTP statuses / close codes kept */

typedef struct bots_code_count {
    uint32_t code;
    uint64_t count;
} bots_code_count;

typedef struct bots_server_sample {
    bool is_ok;
    double cpu_s;    /* utime + stime */
    uint64_t rss_kb; /* VmRSS */
} bots_server_sample;

typedef struct bots_stats {
    uint32_t n_clients;     /* bots run */
    uint32_t n_connected;   /* reached WELCOME */
    uint32_t n_at_end;      /* still in the world at the window's end */
    uint64_t n_logins;      /* logins answered 200 (--login) */
    uint64_t n_upgrades;    /* 101 answers */
    uint64_t n_login_retry; /* 503 busy answers retried */
    /* times relative to t0, ns; first/last over all bots */
    uint64_t first_connect_ns, last_login_ns, last_upgrade_ns, last_welcome_ns;
    /* errors by kind */
    uint64_t err_connect, err_timeout, err_decode, err_io;
    bots_code_count err_http[BOTS_MAX_CODES];  /* status -> count */
    bots_code_count err_close[BOTS_MAX_CODES]; /* close code -> count */
    uint64_t err_records[PROTO_ERR_COUNT];     /* ERROR records by code */
    /* the measured window */
    double window_s;
    uint64_t states, bytes, entity_updates, inputs_sent;
    double rate_min;       /* lowest STATEs/s of one client */
    double bytes_min;      /* lowest bytes/s of one client */
    uint32_t n_below_rate; /* clients under 19 STATEs/s */
    uint16_t tick_hz;      /* from WELCOME; 0 if none */
    uint32_t view_max;     /* most entities one bot saw at once (W3 density) */
    uint64_t view_sum;     /* entities seen at the window's end, summed over bots */
    double bots_cpu_s;     /* this process's (all workers') CPU in the window */
    bots_server_sample srv_start, srv_end;
    bots_server_sample srv_before; /* before the first connection (RSS growth) */
    bots_hist lat;                 /* acknowledged input latency, us */
    bots_hist lag;                 /* how late inputs left against their schedule, us */
} bots_stats;

void bots_stats_init(bots_stats *s);
void bots_stats_merge(bots_stats *dst, const bots_stats *src);
void bots_code_add(bots_code_count *tab, uint32_t code, uint64_t n);
uint64_t bots_stats_errors(const bots_stats *s);

/* Reads utime+stime and VmRSS of pid. Returns 0 or -1. */
int bots_server_sample_read(int pid, bots_server_sample *out);
double bots_self_cpu_s(void); /* this process, getrusage */

/* ---- progress (worker -> parent through a pipe, or printed) ---- */
typedef struct bots_progress {
    uint32_t n_connected; /* in the world now */
    uint32_t n_failed;    /* bots that gave up */
    uint64_t states;      /* STATEs received since the run started */
    uint64_t errors;
    uint64_t p99_us; /* over the last interval */
} bots_progress;

/* Worker -> parent messages on the pipe: a u32 type, then the struct. */
enum { BOTS_MSG_PROGRESS = 1, BOTS_MSG_STATS = 2 };

/* Runs this process's bots (opts->n_local of them) until the window and
 * the close grace end, filling *st. Returns 0, or -1 if nothing could be
 * set up (no epoll, no memory is an abort). bots_loop.c. */
int bots_run(const bots_opts *o, bots_stats *st);

/* Summary on f, and the JSON file when o->json_path is set (returns -1
 * if it cannot be written). bots_report.c. */
void bots_report_print(const bots_opts *o, const bots_stats *s, FILE *f);
int bots_report_json(const bots_opts *o, const bots_stats *s);
bool bots_is_sustained(const bots_stats *s);
/* One progress line on stderr (\r-rewritten on a tty). */
void bots_progress_print(const bots_opts *o, const bots_progress *p, double elapsed_s,
                         double states_per_s);
double bots_window_seconds(const bots_stats *s);

/* ---- one bot's connection (bots_conn.c) ---- */
typedef enum bot_state {
    BOT_IDLE = 0,      /* not started */
    BOT_LOGIN_CONNECT, /* TCP connect for /api/login */
    BOT_LOGIN_WAIT,    /* request sent, reading the answer */
    BOT_LOGIN_BACKOFF, /* 503 busy: waiting to retry */
    BOT_WS_CONNECT,    /* TCP connect for /ws */
    BOT_WS_HANDSHAKE,  /* upgrade sent, reading the 101 */
    BOT_WS_OPEN,       /* upgraded, waiting for WELCOME */
    BOT_IN_WORLD,      /* WELCOME received */
    BOT_CLOSING,       /* our close frame sent */
    BOT_DONE,          /* closed cleanly at the end */
    BOT_FAILED,        /* gave up; error counted */
} bot_state;

#define BOT_RING 128 /* unacknowledged inputs tracked per bot (6.4 s at 20 Hz) */

/* Handshake scratch of a bot, freed once it is in the world. */
typedef struct bot_hs {
    char token[1024];    /* access token, "" until known */
    char accept[29];     /* expected Sec-WebSocket-Accept */
    uint64_t give_up_ns; /* connect + login + upgrade + WELCOME deadline */
} bot_hs;

typedef struct bot {
    int fd;          /* -1 when none */
    uint8_t state;   /* bot_state */
    bool want_out;   /* EPOLLOUT registered */
    bool close_seen; /* the server's close frame arrived */
    bool is_frag;    /* a fragmented message is being reassembled in frag */
    uint32_t gid;    /* global id, 0..n_clients-1 */
    uint32_t entity_id;
    uint64_t deadline_ns; /* of the current state; 0 = none */
    uint64_t last_rx_ns;  /* last bytes received */
    bot_hs *hs;           /* owned; NULL once in the world */
    core_buf in;          /* received bytes not yet parsed */
    core_buf out;         /* bytes the socket did not take yet */
    core_buf frag;        /* a fragmented message being reassembled */
    proto_view view;      /* allocated at WELCOME */
    int own_slot;         /* cached view slot of entity_id, -1 unknown */
    /* input and acknowledgement */
    uint32_t seq;               /* last INPUT seq sent */
    uint32_t acked;             /* highest ack_seq seen */
    uint32_t sent_us[BOT_RING]; /* send time of seq s at [s % BOT_RING], us since t0 */
    bool sent_in_window[BOT_RING];
    float dir_x, dir_y;    /* current heading */
    uint32_t heading_left; /* inputs until a new heading */
    uint32_t n_view;       /* filled slots of view */
    /* window counters */
    uint32_t win_states;
    uint64_t win_bytes;
} bot;

/* The environment a connection works in: one per process. */
typedef struct bots_env {
    const bots_opts *o;
    bots_stats *st;
    int epfd;
    core_rng rng;    /* masks, keys, headings */
    uint64_t now_ns; /* refreshed by the loop */
    uint64_t win_start_ns, win_end_ns;
    bool in_window;
    uint32_t n_in_world, n_failed;
    uint64_t states_total;
    bots_hist *lat_interval; /* reset at every progress line */
    uint32_t world_w, world_h;
    uint8_t rbuf[65536]; /* shared receive buffer */
} bots_env;

void bot_start(bots_env *e, bot *b); /* IDLE -> first connect */
void bot_on_event(bots_env *e, bot *b, uint32_t events);
void bot_check_deadline(bots_env *e, bot *b); /* timeouts and backoff */
int bot_send_input(bots_env *e, bot *b, float dx, float dy);
void bot_close(bots_env *e, bot *b);                         /* starts the close handshake */
void bot_fail(bots_env *e, bot *b);                          /* closes the socket, FAILED */
void bot_decode_fail(bots_env *e, bot *b, const char *what); /* counted; first few shown */
void bot_release(bot *b);                                    /* frees buffers and the socket */
bool bot_own_position(bot *b, float *x, float *y);

/* Shared by bots_conn.c and bots_http.c. Functions returning int give 0,
 * or -1 once the bot has ended (its buffers freed: do not touch them). */
int bot_open_socket(bots_env *e, bot *b, bot_state next);    /* connect, EPOLLOUT */
void bot_close_fd(bots_env *e, bot *b);                      /* socket and buffers */
int bot_write(bots_env *e, bot *b, const void *p, size_t n); /* queues the rest */
void bot_start_ws(bots_env *e, bot *b);                      /* connect for /ws */
void bot_username(const bots_env *e, const bot *b, char *out, size_t cap);
int bot_http_send_login(bots_env *e, bot *b);
int bot_http_send_upgrade(bots_env *e, bot *b);
/* Answer bytes are in b->in; returns 0 while incomplete or once upgraded
 * (state BOT_WS_OPEN), -1 when the bot moved on or ended. */
int bot_http_on_login(bots_env *e, bot *b, bool is_eof);
int bot_http_on_upgrade(bots_env *e, bot *b);
#endif
