/* main.c - the tessera command: wires modules together, nothing else.
 *   tessera serve [flags]   gateway + shards + store in one process
 *   tessera --help | --version */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bots.h"
#include "bus.h"
#include "core_config.h"
#include "core_log.h"
#include "core_metrics.h"
#include "core_secret.h"
#include "gw.h"
#include "sim.h"
#include "spatial.h"
#include "store.h"

static gw *g_gw; /* for the signal handler only; gw_stop is async-signal-safe */

static void on_signal(int sig)
{
    (void)sig;
    if (g_gw)
        gw_stop(g_gw);
}

static void usage(FILE *f)
{
    core_buf b;
    core_buf_init(&b);
    core_config_help(&b);
    fprintf(f,
            "tessera %s - a sharded real-time game backend\n\n"
            "usage:\n"
            "  tessera serve [flags]     run gateway, shards and store in one process\n"
            "  tessera bots [flags]      the load generator (tessera bots --help)\n"
            "  tessera replay --cell C|all [--until-tick T] [serve flags]\n"
            "                            rebuild cells from snapshot + event log, verify hashes\n"
            "  tessera migrate up|status [--store-url URL] [--data-dir DIR]\n"
            "                            apply or show schema migrations\n"
            "  tessera --help            this text\n"
            "  tessera --version         print the version\n\n"
            "serve flags (also TESSERA_<KEY> environment variables and a config file,\n"
            "lowest precedence first: file < environment < flags):\n"
            "  --config FILE             read `key = value` lines from FILE\n"
            "  --print-config            print the effective configuration and exit\n"
            "%.*s",
            TESSERA_VERSION, (int)b.len, (const char *)b.data);
    core_buf_free(&b);
}

/* Opens the configured store: store_url, or SQLite in data_dir. */
static int open_store(store **out, const core_config *cfg)
{
    char url[CORE_CONFIG_STR + 32];
    if (cfg->store_url[0])
        snprintf(url, sizeof url, "%s", cfg->store_url);
    else
        snprintf(url, sizeof url, "sqlite:%s/tessera.db", cfg->data_dir);
    int rc = store_open(out, url, NULL);
    if (rc != STORE_OK)
        fprintf(stderr, "tessera: cannot open the store: %s\n", store_errmsg(NULL));
    return rc;
}

static int cmd_migrate(int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "up") != 0 && strcmp(argv[0], "status") != 0)) {
        fprintf(stderr, "usage: tessera migrate up|status [--store-url URL] [--data-dir DIR]\n");
        return 2;
    }
    core_config cfg;
    core_config_defaults(&cfg);
    char err[512];
    if (core_config_load(&cfg, argc - 1, argv + 1, NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "tessera migrate: %s\n", err);
        return 2;
    }
    store *st = NULL;
    if (open_store(&st, &cfg) != STORE_OK)
        return 1;
    int rc = 0, cur = 0, latest = 0;
    if (strcmp(argv[0], "up") == 0) {
        int applied = 0;
        if (store_migrate_up(st, &applied) != STORE_OK) {
            fprintf(stderr, "tessera migrate: %s\n", store_errmsg(st));
            rc = 1;
        } else {
            printf("applied %d migration(s)\n", applied);
        }
    }
    if (rc == 0 && store_migrate_status(st, &cur, &latest) == STORE_OK)
        printf("%s schema version %d of %d%s\n", store_backend(st), cur, latest,
               cur == latest ? " (up to date)" : " (run: tessera migrate up)");
    else if (rc == 0) {
        fprintf(stderr, "tessera migrate: %s\n", store_errmsg(st));
        rc = 1;
    }
    store_close(st);
    return rc;
}

typedef struct serve_ctx {
    sim_runner *runner;
} serve_ctx;

static int hook_ready(void *ctx, char *why, size_t cap)
{
    serve_ctx *sc = ctx;
    return sc->runner ? sim_runner_ready(sc->runner, why, cap) : 0;
}

static uint32_t hook_tick(void *ctx)
{
    serve_ctx *sc = ctx;
    return sc->runner ? sim_runner_tick(sc->runner) : 0;
}

static int cmd_serve(int argc, char **argv)
{
    /* A fixed mmap threshold: big buffers (bus batches, FRAMES after a
     * burst) are mapped and given back whole when freed. glibc's default
     * raises the threshold after such a free, and the next big buffers
     * then come from the heap, whose free space is rarely returned: RSS
     * would keep every spike. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    core_config cfg;
    core_config_defaults(&cfg);
    static const char *const passthrough[] = {"print-config", NULL};
    unsigned seen = 0;
    char err[512];
    if (core_config_load(&cfg, argc, argv, passthrough, &seen, err, sizeof err) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return 2;
    }
    if (cfg.shards == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.shards = n > 0 ? (int)(n > BUS_MAX_SHARDS ? BUS_MAX_SHARDS : n) : 1;
    }
    if (seen & 1u) {
        core_buf b;
        core_buf_init(&b);
        core_config_print(&cfg, &b);
        fwrite(b.data, 1, b.len, stdout);
        core_buf_free(&b);
        return 0;
    }
    core_log_set_level(core_log_level_parse(cfg.log_level));
    if (!cfg.jwt_secret[0]) {
        /* generated once and kept, so tokens survive a restart */
        char path[CORE_CONFIG_STR + 16];
        snprintf(path, sizeof path, "%s/jwt.secret", cfg.data_dir);
        if (core_secret_load_or_create(path, 32, cfg.jwt_secret, sizeof cfg.jwt_secret, err,
                                       sizeof err) != 0) {
            fprintf(stderr, "tessera serve: %s\n", err);
            return 1;
        }
    }

    int rc = 1;
    core_metrics *m = core_metrics_create();
    bus *b = NULL;
    spatial_cellmap cells = {0};
    sim_map map = {0};
    sim_shard *shards[BUS_MAX_SHARDS] = {0};
    serve_ctx sc = {0};
    gw *g = NULL;
    store *st = NULL;
    sim_loader *loader = NULL;

    if (open_store(&st, &cfg) != STORE_OK)
        goto done;
    int applied = 0;
    if (store_migrate_up(st, &applied) != STORE_OK) {
        fprintf(stderr, "tessera serve: migrating the store failed: %s\n", store_errmsg(st));
        goto done;
    }
    if (applied)
        CORE_INFO("main", "store: applied %d migration(s) (%s)", applied, store_backend(st));
    if (sim_map_load(&map, cfg.map_file, err, sizeof err) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        goto done;
    }
    if (bus_create(&b, "inproc", m) != BUS_OK) {
        fprintf(stderr, "tessera serve: cannot create the bus\n");
        goto done;
    }
    if (spatial_cellmap_init(&cells, (uint32_t)cfg.world_w, (uint32_t)cfg.world_h,
                             (uint16_t)cfg.cell_size, (uint8_t)cfg.shards) != 0) {
        fprintf(stderr, "tessera serve: bad world or cell size\n");
        goto done;
    }
    int n_seeded = 0;
    if (sim_items_seed(st, &cells, cfg.items_file, &n_seeded, err, sizeof err) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        goto done;
    }
    if (n_seeded)
        CORE_INFO("main", "world items: seeded %d from %s", n_seeded, cfg.items_file);
    if (sim_loader_create(&loader, st, b) != 0) {
        fprintf(stderr, "tessera serve: cannot start the item loader\n");
        goto done;
    }
    for (int i = 0; i < cfg.shards; i++) {
        if (sim_shard_create(&shards[i], &cfg, &cells, &map, (uint16_t)i, b, m) != 0) {
            fprintf(stderr, "tessera serve: cannot create shard %d\n", i);
            goto done;
        }
        sim_shard_set_store(shards[i], st);
        sim_shard_set_loader(shards[i], loader, m);
        sim_shard_spawn_npcs(shards[i]);
    }
    if (store_start(st) != STORE_OK) {
        fprintf(stderr, "tessera serve: cannot start the store thread: %s\n", store_errmsg(st));
        goto done;
    }
    gw_hooks hooks = {.ctx = &sc, .is_ready = hook_ready, .current_tick = hook_tick};
    if (gw_create(&g, &cfg, 0, b, &cells, m, &hooks) != 0)
        goto done;
    gw_set_store(g, st);
    if (sim_runner_start(&sc.runner, shards, cfg.shards, cfg.tick_hz, m) != 0)
        goto done;

    g_gw = g;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    CORE_INFO("main", "tessera %s serving http://%s:%d/ (%d shards, %d NPCs, world %dx%d)",
              TESSERA_VERSION, cfg.bind_addr, gw_port(g), cfg.shards, cfg.npcs, cfg.world_w,
              cfg.world_h);
    rc = gw_run(g);
    g_gw = NULL;
    CORE_INFO("main", "shutting down");

done:
    sim_runner_stop(sc.runner);
    sim_loader_destroy(loader); /* posts to shard inboxes: before the bus goes */
    gw_destroy(g);
    for (int i = 0; i < BUS_MAX_SHARDS; i++)
        sim_shard_destroy(shards[i]);
    bus_destroy(b);
    spatial_cellmap_free(&cells);
    sim_map_free(&map);
    store_close(st);
    core_metrics_destroy(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("tessera %s\n", TESSERA_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) {
        for (int i = 2; i < argc; i++)
            if (strcmp(argv[i], "--help") == 0) {
                usage(stdout);
                return 0;
            }
        return cmd_serve(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "replay") == 0)
        return sim_replay_main(argc - 2, argv + 2);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc - 2, argv + 2);
    if (strcmp(cmd, "bots") == 0)
        return bots_main(argc - 2, argv + 2);
    fprintf(stderr, "tessera: unknown command '%s' (try --help)\n", cmd);
    return 2;
}
