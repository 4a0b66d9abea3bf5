/* core_config.c - configuration keys as a table (name, type, offset, help),
 * so parsing, printing and --help share one description of every key. */
#include "core_config.h"

#include "core_log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { T_INT, T_U64, T_DOUBLE, T_STR };

typedef struct key_desc {
    const char *name;
    int type;
    size_t offset;
    size_t size; /* for strings */
    const char *help;
} key_desc;

#define K_INT(n, h)                                                                                \
    {                                                                                              \
#n, T_INT, offsetof(core_config, n), 0, h                                                  \
    }
#define K_U64(n, h)                                                                                \
    {                                                                                              \
#n, T_U64, offsetof(core_config, n), 0, h                                                  \
    }
#define K_DBL(n, h)                                                                                \
    {                                                                                              \
#n, T_DOUBLE, offsetof(core_config, n), 0, h                                               \
    }
#define K_STR(n, h)                                                                                \
    {                                                                                              \
#n, T_STR, offsetof(core_config, n), sizeof(((core_config *)0)->n), h                      \
    }

static const key_desc keys[] = {
    K_STR(bind_addr, "listen address"),
    K_INT(port, "listen port (0 = any free port)"),
    K_STR(web_root, "folder served as the browser client"),
    K_INT(max_conns, "stop accepting at this many open connections"),
    K_INT(max_conns_per_addr, "open connections allowed per source address"),
    K_INT(max_message_bytes, "largest WebSocket message accepted (bytes)"),
    K_INT(send_buffer_bytes, "per-connection reliable send queue cap (bytes)"),
    K_INT(ping_interval_s, "ping a connection idle this long (s)"),
    K_INT(ping_timeout_s, "drop a connection silent this long (s)"),
    K_INT(handshake_timeout_s, "a request head must arrive within (s)"),
    K_INT(close_timeout_s, "a peer must answer our close within (s)"),
    K_INT(msgs_per_s, "per-connection message rate limit (messages/s)"),
    K_INT(msgs_burst, "per-connection message burst allowance"),
    K_STR(data_dir, "folder for local state (SQLite file, generated secret)"),
    K_STR(store_url, "store: empty = SQLite in data_dir, or postgres://..."),
    K_STR(jwt_secret, "HS256 signing secret (empty: generated once into data_dir)"),
    K_INT(token_ttl_s, "lifetime of issued access tokens (s)"),
    K_INT(resume_grace_s, "a dropped session keeps its entity this long (s)"),
    K_STR(jwt_keys_dir, "folder of <kid>.pem provider public keys, RSA or EC P-256 (empty = none)"),
    K_STR(jwt_issuer, "iss required of provider (RS256/ES256) tokens"),
    K_STR(jwt_audience, "aud required of provider (RS256/ES256) tokens"),
    K_INT(jwt_skew_s, "clock skew tolerated on token exp/nbf/iat (s, 0..300)"),
    K_INT(refresh_ttl_s, "lifetime of refresh tokens (s)"),
    K_INT(login_fail_per_account, "failed logins of one account per window before 429"),
    K_INT(login_fail_per_addr, "failed logins from one address per window before 429"),
    K_INT(login_fail_window_s, "window of the failed-login limits (s)"),
    K_INT(world_w, "world width (units)"),
    K_INT(world_h, "world height (units)"),
    K_INT(cell_size, "region cell side (units)"),
    K_INT(shards, "shard threads (0 = number of cores)"),
    K_INT(tick_hz, "simulation ticks per second"),
    K_INT(keepalive_s, "a client with no news gets an empty STATE this often (s, 1..9)"),
    K_INT(npcs, "wandering NPCs in the world"),
    K_U64(seed, "world seed"),
    K_STR(map_file, "static obstacle map file (empty = none)"),
    K_STR(items_file, "items seeded into a world that never had any (empty = none)"),
    K_DBL(player_speed, "player speed (units/s)"),
    K_DBL(npc_speed, "NPC speed (units/s)"),
    K_DBL(entity_radius, "collision radius of an entity (units)"),
    K_INT(snapshot_interval_s, "cell snapshot period (s); 0 disables snapshots and the tick log"),
    K_DBL(aoi_radius, "area-of-interest radius (units)"),
    K_INT(aoi_max_entities, "most entities one client is sent"),
    K_INT(aoi_max_bytes,
          "bytes per client per tick: records + STATE + framing; enters beyond it wait"),
    K_INT(max_inputs_per_tick, "inputs per client per tick before rejection"),
    K_STR(log_level, "debug, info, warn or error"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static void default_web_root(char *dst, size_t cap)
{
    /* Prefer ./web (running from the source tree), else the tree the
     * binary was built from. */
    if (access("web/index.html", R_OK) == 0) {
        snprintf(dst, cap, "web");
        return;
    }
#ifdef TESSERA_SOURCE_DIR
    snprintf(dst, cap, "%s/web", TESSERA_SOURCE_DIR);
#else
    snprintf(dst, cap, "web");
#endif
}

/* maps/NAME from the working directory, else from the source tree. */
static void default_content(char *dst, size_t cap, const char *name)
{
    char rel[64];
    snprintf(rel, sizeof rel, "maps/%s", name);
    if (access(rel, R_OK) == 0) {
        snprintf(dst, cap, "%s", rel);
        return;
    }
#ifdef TESSERA_SOURCE_DIR
    snprintf(dst, cap, "%s/maps/%s", TESSERA_SOURCE_DIR, name);
#else
    dst[0] = 0;
#endif
}

static void default_map(char *dst, size_t cap)
{
    default_content(dst, cap, "default.map");
}

void core_config_defaults(core_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->bind_addr, sizeof c->bind_addr, "127.0.0.1");
    c->port = 8080;
    default_web_root(c->web_root, sizeof c->web_root);
    c->max_conns = 19000;
    c->max_conns_per_addr = 19000;
    c->max_message_bytes = 16384;
    c->send_buffer_bytes = 65536;
    c->ping_interval_s = 15;
    c->ping_timeout_s = 30;
    c->handshake_timeout_s = 10;
    c->close_timeout_s = 5;
    c->msgs_per_s = 60;
    c->msgs_burst = 120;
    c->token_ttl_s = 900;
    snprintf(c->jwt_issuer, sizeof c->jwt_issuer, "tessera");
    snprintf(c->jwt_audience, sizeof c->jwt_audience, "tessera");
    c->jwt_skew_s = 30;
    c->refresh_ttl_s = 30 * 86400;
    c->login_fail_per_account = 5;
    c->login_fail_per_addr = 20;
    c->login_fail_window_s = 60;
    c->resume_grace_s = 30;
    snprintf(c->data_dir, sizeof c->data_dir, "data");
    c->world_w = 2048;
    c->world_h = 2048;
    c->cell_size = 256;
    c->shards = 0;
    c->tick_hz = 20;
    c->keepalive_s = 5;
    c->npcs = 300;
    c->seed = 1;
    default_map(c->map_file, sizeof c->map_file);
    default_content(c->items_file, sizeof c->items_file, "default.items");
    c->player_speed = 50.0;
    c->npc_speed = 20.0;
    c->entity_radius = 4.0;
    c->snapshot_interval_s = 10;
    c->aoi_radius = 100.0;
    c->aoi_max_entities = 128;
    c->aoi_max_bytes = 384;
    c->max_inputs_per_tick = 4;
    snprintf(c->log_level, sizeof c->log_level, "info");
}

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* Normalises a key: lower case, dashes to underscores. */
static void norm_key(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        dst[i] = src[i] == '-' ? '_' : (char)tolower((unsigned char)src[i]);
    dst[i] = 0;
}

static const key_desc *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

int core_config_set(core_config *c, const char *key, const char *value, char *err, size_t err_len)
{
    char k[64];
    norm_key(k, sizeof k, key, strlen(key));
    const key_desc *d = find_key(k);
    if (!d) {
        errf(err, err_len, "unknown configuration key '%s'", key);
        return -1;
    }
    char *base = (char *)c + d->offset;
    char *end = NULL;
    errno = 0;
    switch (d->type) {
    case T_INT: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < -2147483647L || v > 2147483647L) {
            errf(err, err_len, "%s: '%s' is not an integer", k, value);
            return -1;
        }
        *(int *)base = (int)v;
        break;
    }
    case T_U64: {
        if (value[0] == '-') {
            errf(err, err_len, "%s: '%s' is not an unsigned integer", k, value);
            return -1;
        }
        unsigned long long v = strtoull(value, &end, 0);
        if (errno || end == value || *end) {
            errf(err, err_len, "%s: '%s' is not an unsigned integer", k, value);
            return -1;
        }
        *(uint64_t *)base = v;
        break;
    }
    case T_DOUBLE: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            errf(err, err_len, "%s: '%s' is not a number", k, value);
            return -1;
        }
        memcpy(base, &v, sizeof v); /* the field at this offset is a double */
        break;
    }
    case T_STR:
        if (strlen(value) >= d->size) {
            errf(err, err_len, "%s: value longer than %zu bytes", k, d->size - 1);
            return -1;
        }
        snprintf(base, d->size, "%s", value);
        break;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

static int load_file(core_config *c, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        errf(err, err_len, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            errf(err, err_len, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = 0;
            v++;
        }
        char sub[512];
        if (core_config_set(c, k, v, sub, sizeof sub) != 0) {
            errf(err, err_len, "%s:%d: %s", path, lineno, sub);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

int core_config_load(core_config *c, int argc, char **argv, const char *const *passthrough,
                     unsigned *passthrough_seen, char *err, size_t err_len)
{
    if (passthrough_seen)
        *passthrough_seen = 0;
    /* 1. the config file, named by flag or environment */
    const char *file = getenv("TESSERA_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
    }
    if (file && *file && load_file(c, file, err, err_len) != 0)
        return -1;
    /* 2. environment */
    for (size_t i = 0; i < N_KEYS; i++) {
        char env[96] = "TESSERA_";
        size_t n = strlen(env);
        for (const char *p = keys[i].name; *p && n + 1 < sizeof env; p++)
            env[n++] = (char)toupper((unsigned char)*p);
        env[n] = 0;
        const char *v = getenv(env);
        if (v && core_config_set(c, keys[i].name, v, err, err_len) != 0)
            return -1;
    }
    /* 3. flags */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            errf(err, err_len, "unexpected argument '%s'", a);
            return -1;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        char k[64];
        norm_key(k, sizeof k, a, eq ? (size_t)(eq - a) : strlen(a));
        if (strcmp(k, "config") == 0) {
            if (!eq)
                i++;
            continue;
        }
        int pt = -1;
        for (int j = 0; passthrough && passthrough[j]; j++) {
            char pk[64];
            norm_key(pk, sizeof pk, passthrough[j], strlen(passthrough[j]));
            if (strcmp(pk, k) == 0)
                pt = j;
        }
        if (pt >= 0) {
            if (passthrough_seen)
                *passthrough_seen |= 1u << pt;
            continue;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            errf(err, err_len, "flag --%s needs a value", a);
            return -1;
        }
        if (core_config_set(c, k, v, err, err_len) != 0)
            return -1;
    }
    return core_config_validate(c, err, err_len);
}

int core_config_validate(const core_config *c, char *err, size_t err_len)
{
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            errf(err, err_len, __VA_ARGS__);                                                       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
    CHECK(c->port >= 0 && c->port <= 65535, "port must be 0..65535");
    CHECK(c->max_conns >= 1 && c->max_conns <= 19900, "max_conns must be 1..19900");
    CHECK(c->max_conns_per_addr >= 1, "max_conns_per_addr must be >= 1");
    CHECK(c->max_message_bytes >= 125 && c->max_message_bytes <= (1 << 24),
          "max_message_bytes must be 125..16777216");
    CHECK(c->send_buffer_bytes >= 4096, "send_buffer_bytes must be >= 4096");
    CHECK(c->ping_interval_s >= 1 && c->ping_timeout_s > c->ping_interval_s,
          "need ping_interval_s >= 1 and ping_timeout_s > ping_interval_s");
    CHECK(c->handshake_timeout_s >= 1 && c->close_timeout_s >= 1, "timeouts must be >= 1 s");
    CHECK(c->msgs_per_s >= 1 && c->msgs_burst >= 1, "rate limits must be >= 1");
    CHECK(c->token_ttl_s >= 10, "token_ttl_s must be >= 10");
    CHECK(c->resume_grace_s >= 1 && c->resume_grace_s <= 3600, "resume_grace_s must be 1..3600");
    CHECK(c->jwt_skew_s >= 0 && c->jwt_skew_s <= 300, "jwt_skew_s must be 0..300");
    CHECK(c->jwt_issuer[0] && strlen(c->jwt_issuer) < 128 && c->jwt_audience[0] &&
              strlen(c->jwt_audience) < 128,
          "jwt_issuer and jwt_audience must be 1..127 bytes");
    CHECK(c->refresh_ttl_s >= 60, "refresh_ttl_s must be >= 60");
    CHECK(c->login_fail_per_account >= 1 && c->login_fail_per_addr >= 1 &&
              c->login_fail_window_s >= 1 && c->login_fail_window_s <= 86400,
          "login_fail_per_account/_per_addr must be >= 1 and login_fail_window_s 1..86400");
    CHECK(c->snapshot_interval_s >= 0 && c->snapshot_interval_s <= 86400,
          "snapshot_interval_s must be 0..86400");
    CHECK(c->cell_size >= 32 && c->cell_size <= 4096, "cell_size must be 32..4096");
    CHECK(c->world_w >= c->cell_size && c->world_h >= c->cell_size,
          "world must be at least one cell");
    CHECK(c->world_w <= 1 << 20 && c->world_h <= 1 << 20, "world side must be <= 1048576");
    CHECK((c->world_w / c->cell_size) * (c->world_h / c->cell_size) <= 65536,
          "too many cells (max 65536)");
    CHECK(c->shards >= 0 && c->shards <= 64, "shards must be 0..64");
    CHECK(c->tick_hz >= 1 && c->tick_hz <= 120, "tick_hz must be 1..120");
    /* clients (web/tessera.js, bots) give up after 10 s without a message */
    CHECK(c->keepalive_s >= 1 && c->keepalive_s <= 9, "keepalive_s must be 1..9");
    CHECK(c->npcs >= 0 && c->npcs <= 2000000, "npcs must be 0..2000000");
    CHECK(c->player_speed > 0 && c->player_speed < 1000, "player_speed must be in (0, 1000)");
    CHECK(c->npc_speed >= 0 && c->npc_speed < 1000, "npc_speed must be in [0, 1000)");
    CHECK(c->entity_radius > 0 && c->entity_radius < 64, "entity_radius must be in (0, 64)");
    CHECK(c->aoi_radius >= 10 && c->aoi_radius <= c->cell_size, "aoi_radius must be 10..cell_size");
    CHECK(c->aoi_max_entities >= 1 && c->aoi_max_entities <= 1024,
          "aoi_max_entities must be 1..1024");
    CHECK(c->aoi_max_bytes >= 64 && c->aoi_max_bytes <= 65536, "aoi_max_bytes must be 64..65536");
    CHECK(c->max_inputs_per_tick >= 1, "max_inputs_per_tick must be >= 1");
    CHECK(core_log_level_ok(c->log_level), "log_level must be debug, info, warn or error");
#undef CHECK
    return 0;
}

void core_config_print(const core_config *c, core_buf *out)
{
    char line[512];
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *base = (const char *)c + keys[i].offset;
        int n = 0;
        switch (keys[i].type) {
        case T_INT:
            n = snprintf(line, sizeof line, "%s = %d\n", keys[i].name, *(const int *)base);
            break;
        case T_U64:
            n = snprintf(line, sizeof line, "%s = %llu\n", keys[i].name,
                         (unsigned long long)*(const uint64_t *)base);
            break;
        case T_DOUBLE: {
            double v;
            memcpy(&v, base, sizeof v);
            n = snprintf(line, sizeof line, "%s = %g\n", keys[i].name, v);
        } break;
        case T_STR:
            if ((strcmp(keys[i].name, "jwt_secret") == 0 ||
                 (strcmp(keys[i].name, "store_url") == 0 && strchr(base, '@'))) &&
                base[0])
                n = snprintf(line, sizeof line, "%s = \"<set, hidden>\"\n", keys[i].name);
            else
                n = snprintf(line, sizeof line, "%s = \"%s\"\n", keys[i].name, base);
            break;
        }
        core_buf_append(out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
}

void core_config_help(core_buf *out)
{
    core_config d;
    core_config_defaults(&d);
    char line[512];
    for (size_t i = 0; i < N_KEYS; i++) {
        char flag[64];
        size_t j = 0;
        for (const char *p = keys[i].name; *p && j + 1 < sizeof flag; p++)
            flag[j++] = *p == '_' ? '-' : *p;
        flag[j] = 0;
        const char *base = (const char *)&d + keys[i].offset;
        char def[300];
        switch (keys[i].type) {
        case T_INT:
            snprintf(def, sizeof def, "%d", *(const int *)base);
            break;
        case T_U64:
            snprintf(def, sizeof def, "%llu", (unsigned long long)*(const uint64_t *)base);
            break;
        case T_DOUBLE: {
            double v;
            memcpy(&v, base, sizeof v);
            snprintf(def, sizeof def, "%g", v);
        } break;
        default:
            snprintf(def, sizeof def, "\"%s\"", base);
        }
        int n = snprintf(line, sizeof line, "  --%-22s %s (default %s)\n", flag, keys[i].help, def);
        core_buf_append(out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
}
