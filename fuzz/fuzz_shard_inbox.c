/* fuzz_shard_inbox.c - arbitrary bus messages into a live shard's inbox
 * (JOIN, LEAVE, INPUTS, HANDOFF, GHOSTS and garbage), then a tick, the
 * shard renumbering its slots every other tick. The shard must reject
 * what is malformed and never crash or corrupt itself.
 * Input: a sequence of `u16 len, bytes[len]` messages. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "core_config.h"
#include "core_log.h"
#include "sim.h"
#include "spatial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static core_config cfg;
static spatial_cellmap cells;
static sim_map map;
static bus *b;
static core_metrics *m;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!b) {
        core_log_set_level(CORE_LOG_ERROR + 1);
        core_config_defaults(&cfg);
        cfg.world_w = cfg.world_h = 512;
        cfg.npcs = 20;
        m = core_metrics_create();
        bus_create(&b, "inproc", m);
        spatial_cellmap_init(&cells, 512, 512, 256, 2);
    }
    sim_shard *s;
    if (sim_shard_create(&s, &cfg, &cells, &map, 0, b, m) != 0)
        abort();
    sim_shard_set_sort(s, 0, 2); /* slot renumbering under fire too */
    sim_shard_spawn_npcs(s);
    size_t off = 0;
    uint32_t tick = 1;
    while (off + 2 <= size) {
        size_t n = (size_t)data[off] | ((size_t)data[off + 1] << 8);
        off += 2;
        if (n > size - off)
            n = size - off;
        bus_send(b, BUS_EP_SHARD(0), data + off, n);
        off += n;
        if (tick < 4)
            sim_shard_step(s, tick++);
    }
    sim_shard_step(s, tick);
    /* drain what the shard sent elsewhere so the next run starts clean */
    bus_batch bt;
    for (uint32_t ep = 0; ep < BUS_N_ENDPOINTS; ep++)
        bus_recv(b, ep, &bt);
    sim_shard_destroy(s);
    return 0;
}
