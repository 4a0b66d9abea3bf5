/* gw.h - the WebSocket gateway: its own epoll loop serving HTTP/1.1 (the
 * browser client's files, login, health, metrics) and RFC 6455 WebSocket
 * sessions; routes each session's inputs to the shard that owns its
 * entity and writes each tick's state to the clients.
 *
 * Threads: gw_run runs the loop on the calling thread; gw_stop may be
 * called from any thread or a signal handler. */
#ifndef GW_H
#define GW_H
#include <stdint.h>

#include "bus.h"
#include "core_config.h"
#include "core_metrics.h"
#include "spatial.h"

typedef struct gw gw;

typedef struct gw_hooks {
    void *ctx;
    /* Readiness for /readyz: returns 1 if ready, else 0 with why filled. */
    int (*is_ready)(void *ctx, char *why, size_t cap);
    /* Current simulation tick (for PONG). */
    uint32_t (*current_tick)(void *ctx);
} gw_hooks;

/* Binds the listening socket (cfg->bind_addr, cfg->port) and prepares the
 * loop. The cell map is borrowed and read to pick the shard that owns a
 * spawn point. Returns 0 or -1 (logged). */
int gw_create(gw **out, const core_config *cfg, uint16_t gw_id, bus *b,
              const spatial_cellmap *cells, core_metrics *m, const gw_hooks *hooks);
void gw_destroy(gw *g); /* NULL is a no-op */

/* Keeps accounts in st (borrowed; outlives g) instead of memory. Call
 * before gw_run. */
struct store;
void gw_set_store(gw *g, struct store *st);

/* The bound port (useful with port 0). */
int gw_port(const gw *g);

/* Runs until gw_stop; then closes every connection with 1001. Returns 0. */
int gw_run(gw *g);
void gw_stop(gw *g);
#endif
