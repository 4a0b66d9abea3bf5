/* bench_sim.c - simulation core benchmark (no network).
 *
 *   bench_sim [--entities N] [--players P] [--ticks T] [--world SIDE]
 *             [--shards S] [--radius R] [--store URL] [--snapshot-interval-s N]
 *             [--hotspot H] [--sort-every T]
 *
 * Builds a world of SIDE x SIDE units with N wandering NPCs and P players
 * (joined through the bus like real sessions, walking in random headings),
 * steps every shard T ticks back to back on this thread, and prints the
 * per-tick time per shard (median, mean, p99, max), entity updates per
 * second, a hash of the world's state at the end and one of every frame
 * sent to the gateway (a change meant only to be faster must leave both
 * as they were). --sort-every T re-sorts the slots
 * by place every T ticks instead of the shard's default (the renumbering
 * ticks are the p99 and max).
 * With P = 0 it is the simulation core (M1: movement, re-index, collision);
 * with players it includes the area-of-interest diff and STATE encoding.
 * With --store (e.g. sqlite:/tmp/b/t.db) the shards also write the per-cell
 * tick log and snapshots through a started store, as serve does.
 * With --hotspot H the players start within H units of the world's centre
 * and mill there as W3's bots do (an input every tick: a random heading
 * for a second at a time, pulled towards the centre): the crowd's
 * area-of-interest cost without the network (one shard: with --shards
 * above 1 the players stand still). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "core_config.h"
#include "core_hash.h"
#include "core_log.h"
#include "core_rng.h"
#include "core_time.h"
#include "proto.h"
#include "sim.h"
#include "spatial.h"
#include "store.h"

/* CPU time of this thread: the tick's own cost even when the core is shared */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Resident set size of this process in bytes (/proc/self/statm). */
static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * 4096;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int entities = 2000, players = 0, ticks = 200, world = 2048, shards = 1;
    double radius = 100;
    const char *store_url = NULL;
    int snapshot_s = 10, sort_every = 0; /* 0: the shard's default */
    double hotspot = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--entities"))
            entities = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--players"))
            players = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ticks"))
            ticks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--world"))
            world = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shards"))
            shards = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--radius"))
            radius = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--store"))
            store_url = argv[i + 1];
        else if (!strcmp(argv[i], "--hotspot"))
            hotspot = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--snapshot-interval-s"))
            snapshot_s = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sort-every"))
            sort_every = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    core_log_set_level(CORE_LOG_WARN);
    core_config cfg;
    core_config_defaults(&cfg);
    cfg.world_w = cfg.world_h = world;
    cfg.npcs = entities;
    cfg.npc_speed = 50;
    cfg.aoi_radius = radius;
    cfg.map_file[0] = 0;
    int cell = 256;
    while ((world / cell) * (world / cell) > 65536)
        cell *= 2;
    cfg.cell_size = cell;
    cfg.snapshot_interval_s = snapshot_s;
    store *st = NULL;
    if (store_url) {
        store_opts o;
        store_opts_default(&o);
        o.queue_capacity = 1u << 20; /* ticks run back to back, far above 20 Hz */
        int applied = 0;
        if (store_open_opts(&st, store_url, &o, NULL) != STORE_OK ||
            store_migrate_up(st, &applied) != STORE_OK || store_start(st) != STORE_OK) {
            fprintf(stderr, "bench_sim: store: %s\n", store_errmsg(st));
            return 1;
        }
    }
    long rss0 = rss_bytes();
    core_metrics *m = core_metrics_create();
    bus *b;
    bus_create(&b, "inproc", m);
    spatial_cellmap cells;
    spatial_cellmap_init(&cells, (uint32_t)world, (uint32_t)world, (uint16_t)cell, (uint8_t)shards);
    sim_map map = {0};
    sim_shard *sh[64];
    for (int i = 0; i < shards; i++) {
        sim_shard_create(&sh[i], &cfg, &cells, &map, (uint16_t)i, b, m);
        if (sort_every > 0)
            sim_shard_set_sort(sh[i], 8192, (uint32_t)sort_every);
        sim_shard_set_store(sh[i], st);
        sim_shard_spawn_npcs(sh[i]);
    }
    core_rng rng;
    core_rng_seed(&rng, 3);
    core_buf msg;
    core_buf_init(&msg);
    const float centre = (float)world / 2;
    for (int p = 0; p < players; p++) {
        proto_join j = {.session_id = (1u << 20) | (uint32_t)(p + 1),
                        .gw_id = 0,
                        .account_id = (uint32_t)p + 1,
                        .x = core_rng_unit(&rng) * (float)world,
                        .y = core_rng_unit(&rng) * (float)world};
        if (hotspot > 0) { /* uniform in the disk */
            float a = core_rng_unit(&rng) * 6.2831853f;
            float d = (float)hotspot * sqrtf(core_rng_unit(&rng));
            j.x = centre + d * cosf(a);
            j.y = centre + d * sinf(a);
        }
        snprintf(j.name, sizeof j.name, "bot%d", p);
        core_buf_reset(&msg);
        proto_bus_join_write(&msg, &j);
        bus_send(b, BUS_EP_SHARD(spatial_cellmap_owner(&cells, j.x, j.y)), msg.data, msg.len);
    }
    uint64_t *dur = calloc((size_t)ticks * (size_t)shards, sizeof *dur);
    uint64_t *cpu = calloc((size_t)ticks * (size_t)shards, sizeof *cpu);
    uint64_t frame_bytes = 0, frames = 0;
    float *head = calloc((size_t)players * 2 + 2, sizeof *head);
    float *pos = calloc((size_t)players * 2 + 2, sizeof *pos);
    sim_entity_info *info = calloc((size_t)(players + entities) + 1, sizeof *info);
    uint64_t frames_hash = CORE_FNV_OFFSET; /* what the clients would have been sent */
    for (int t = 1; t <= ticks; t++) {
        if (hotspot > 0 && shards == 1) { /* W3's milling: the inputs of this tick */
            size_t ne = sim_shard_entities(sh[0], info, (size_t)(players + entities) + 1);
            for (size_t k = 0; k < ne; k++)
                if (info[k].session_id) {
                    uint32_t p = (info[k].session_id & ((1u << 20) - 1)) - 1;
                    pos[2 * p] = info[k].x;
                    pos[2 * p + 1] = info[k].y;
                }
            core_buf_reset(&msg);
            size_t at;
            proto_bus_inputs_begin(&msg, &at);
            for (int p = 0; p < players; p++) {
                float *h = &head[2 * p];
                float vx = centre - pos[2 * p], vy = centre - pos[2 * p + 1];
                float d = sqrtf(vx * vx + vy * vy);
                if (d > (float)hotspot) {
                    h[0] = vx / d;
                    h[1] = vy / d;
                } else if ((t + p) % 20 == 1) {
                    float a = core_rng_unit(&rng) * 6.2831853f;
                    float rx = cosf(a) + vx / (float)hotspot, ry = sinf(a) + vy / (float)hotspot;
                    float n = sqrtf(rx * rx + ry * ry);
                    h[0] = n > 1.0f ? rx / n : rx;
                    h[1] = n > 1.0f ? ry / n : ry;
                }
                proto_bus_input in = {.session_id = (1u << 20) | (uint32_t)(p + 1),
                                      .gseq = (uint32_t)t,
                                      .in = {.seq = (uint32_t)t, .dir_x = h[0], .dir_y = h[1]}};
                proto_bus_inputs_add(&msg, at, &in);
            }
            bus_send(b, BUS_EP_SHARD(0), msg.data, msg.len);
        }
        for (int i = 0; i < shards; i++) {
            uint64_t t0 = core_now_ns(), c0 = thread_cpu_ns();
            sim_shard_step(sh[i], (uint32_t)t);
            dur[(size_t)(t - 1) * (size_t)shards + (size_t)i] = core_now_ns() - t0;
            cpu[(size_t)(t - 1) * (size_t)shards + (size_t)i] = thread_cpu_ns() - c0;
        }
        bus_batch bt;
        bus_recv(b, BUS_EP_GW(0), &bt); /* frames for the clients: counted, dropped */
        frame_bytes += bt.len;
        frames += bt.n_msgs;
        frames_hash = core_fnv1a(frames_hash, bt.data, bt.len);
    }
    long rss1 = rss_bytes();
    /* the world's state after the run, so that a change meant to be only
     * faster can be checked to land on the same bits */
    uint64_t state = CORE_FNV_OFFSET;
    for (int i = 0; i < shards; i++) {
        uint64_t h = sim_shard_hash(sh[i]);
        state = core_fnv1a(state, &h, sizeof h);
    }
    size_t n = (size_t)ticks * (size_t)shards;
    qsort(dur, n, sizeof *dur, cmp_u64);
    qsort(cpu, n, sizeof *cpu, cmp_u64);
    double mean = 0;
    for (size_t k = 0; k < n; k++)
        mean += (double)dur[k] / 1e6 / (double)n;
    double med = (double)dur[n / 2] / 1e6, p99 = (double)dur[n * 99 / 100] / 1e6,
           mx = (double)dur[n - 1] / 1e6;
    double per_s = (double)(entities + players) / (med / 1e3 * shards);
    printf("{\"bench\":\"sim\",\"entities\":%d,\"players\":%d,\"shards\":%d,\"world\":%d,"
           "\"ticks\":%d,\"tick_cpu_ms_median\":%.3f,\"tick_ms_median\":%.3f,\"tick_ms_mean\":%.3f,"
           "\"tick_ms_p99\":%.3f,"
           "\"tick_ms_max\":%.3f,"
           "\"entity_updates_per_s_per_core\":%.0f,\"bytes_per_entity\":%.0f,\"bus_bytes_to_"
           "gateway_per_tick\":%.0f,\"state_hash\":\"%016llx\",\"frames_hash\":\"%016llx\"}\n",
           entities, players, shards, world, ticks, (double)cpu[n / 2] / 1e6, med, mean, p99, mx,
           per_s, (double)(rss1 - rss0) / (entities + players), (double)frame_bytes / ticks,
           (unsigned long long)state, (unsigned long long)frames_hash);
    (void)frames;
    store_close(st);
    for (int i = 0; i < shards; i++)
        sim_shard_destroy(sh[i]);
    free(dur);
    free(cpu);
    free(head);
    free(pos);
    free(info);
    core_buf_free(&msg);
    bus_destroy(b);
    spatial_cellmap_free(&cells);
    core_metrics_destroy(m);
    return 0;
}
