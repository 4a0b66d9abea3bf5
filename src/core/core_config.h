/* core_config.h - the effective configuration of a Tessera process.
 *
 * Sources, lowest precedence first: built-in defaults, a config file
 * (--config FILE or TESSERA_CONFIG; `key = value` lines, # comments), then
 * TESSERA_<KEY> environment variables, then command-line flags
 * (--key=value or --key value; dashes and underscores are the same). */
#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "core_buf.h"

#define CORE_CONFIG_STR 256

typedef struct core_config {
    /* network */
    char bind_addr[64];             /* listen address, default 127.0.0.1 */
    int port;                       /* listen port, default 8080; 0 = any free port */
    char web_root[CORE_CONFIG_STR]; /* folder of the browser client */
    int max_conns;                  /* accept stops at this many open connections */
    int max_conns_per_addr;         /* per source address */
    int max_message_bytes;          /* largest WebSocket message accepted */
    int send_buffer_bytes;          /* per-connection reliable send queue cap */
    int ping_interval_s;            /* idle time before the server pings */
    int ping_timeout_s;             /* idle time after which a connection is dropped */
    int handshake_timeout_s;        /* a request head must complete within this */
    int close_timeout_s;            /* a peer must answer our close within this */
    int msgs_per_s;                 /* per-connection message rate (token bucket) */
    int msgs_burst;                 /* token bucket depth */
    /* persistence */
    char data_dir[CORE_CONFIG_STR];  /* local state: SQLite file, generated secret */
    char store_url[CORE_CONFIG_STR]; /* "" = SQLite in data_dir; postgres://... */
    /* auth */
    char jwt_secret[CORE_CONFIG_STR];   /* HS256 secret; empty = data_dir/jwt.secret */
    int token_ttl_s;                    /* lifetime of issued tokens */
    int resume_grace_s;                 /* a dropped session keeps its entity this long (s) */
    char jwt_keys_dir[CORE_CONFIG_STR]; /* <kid>.pem provider public keys; empty = none */
    char jwt_issuer[CORE_CONFIG_STR];   /* iss required of provider tokens */
    char jwt_audience[CORE_CONFIG_STR]; /* aud required of provider tokens */
    int jwt_skew_s;                     /* clock skew tolerated on exp/nbf/iat (s), 0..300 */
    int refresh_ttl_s;                  /* lifetime of refresh tokens (s) */
    int login_fail_per_account;         /* failed logins per account per window */
    int login_fail_per_addr;            /* failed logins per address per window */
    int login_fail_window_s;            /* the window of both (s) */
    /* world */
    int world_w;                      /* world width in units */
    int world_h;                      /* world height in units */
    int cell_size;                    /* region cell side in units */
    int shards;                       /* shard threads; 0 = number of cores */
    int tick_hz;                      /* simulation rate */
    int keepalive_s;                  /* a quiet client gets a STATE this often (s) */
    int npcs;                         /* wandering NPCs in the whole world */
    uint64_t seed;                    /* world seed (NPC spawns, wandering) */
    char map_file[CORE_CONFIG_STR];   /* static obstacles; empty = none */
    char items_file[CORE_CONFIG_STR]; /* items seeded into an empty world; empty = none */
    double player_speed;              /* units per second */
    double npc_speed;                 /* units per second */
    double entity_radius;             /* collision radius in units */
    int snapshot_interval_s;          /* cell snapshot period; 0 = no snapshots, no tick log */
    /* area of interest */
    double aoi_radius;       /* units */
    int aoi_max_entities;    /* per client known-set cap */
    int aoi_max_bytes;       /* per client bytes per tick: the whole frame (enters wait) */
    int max_inputs_per_tick; /* more inputs than this in one tick are rejected */
    /* operations */
    char log_level[16]; /* debug|info|warn|error */
} core_config;

void core_config_defaults(core_config *c);

/* Applies file, environment and argv (argv[0..argc) are flags only).
 * Unknown keys and bad values are errors: returns 0, or -1 with a message
 * in err. Flags that are not config keys (listed in passthrough, a
 * NULL-terminated array like {"print-config", NULL}) are skipped and
 * reported through *passthrough_seen as a bit mask by index. */
int core_config_load(core_config *c, int argc, char **argv, const char *const *passthrough,
                     unsigned *passthrough_seen, char *err, size_t err_len);

/* Sets one key from a string. Returns 0 or -1 (err filled). */
int core_config_set(core_config *c, const char *key, const char *value, char *err, size_t err_len);

/* Appends `key = value` lines for every key, then checks nothing. */
void core_config_print(const core_config *c, core_buf *out);
/* Appends `  --key  help (default)` lines for --help. */
void core_config_help(core_buf *out);
/* Cross-field checks (sizes, ranges). Returns 0 or -1 with err. */
int core_config_validate(const core_config *c, char *err, size_t err_len);
#endif
