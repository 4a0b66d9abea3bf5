/* sim_runner.c - one thread per shard on a shared fixed-rate schedule.
 * Tick k of every shard starts at t0 + k * period (CLOCK_MONOTONIC,
 * absolute sleeps, so there is no drift). A shard that wakes late runs the
 * ticks it missed back to back (world time stays exact); one more than
 * SIM_CATCH_UP_MAX ticks behind skips ahead instead, so tick numbers stay
 * aligned across shards. Skipped ticks are counted. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core_log.h"
#include "core_time.h"
#include "sim.h"

#define SIM_CATCH_UP_MAX 5

typedef struct runner_thread {
    struct sim_runner *r;
    sim_shard *shard;
    int index;
    pthread_t thread;
    _Atomic uint64_t last_tick_ns; /* when the last tick finished */
    core_counter *skipped;
} runner_thread;

struct sim_runner {
    int n;
    uint64_t t0_ns, period_ns;
    atomic_bool stop;
    _Atomic uint32_t tick;
    runner_thread *threads;
};

static void *shard_main(void *arg)
{
    runner_thread *t = arg;
    sim_runner *r = t->r;
    char name[16];
    snprintf(name, sizeof name, "shard-%d", t->index);
    pthread_setname_np(pthread_self(), name);
    uint64_t k = 1;
    while (!atomic_load(&r->stop)) {
        core_sleep_until_ns(r->t0_ns + k * r->period_ns);
        if (atomic_load(&r->stop))
            break;
        uint64_t now = core_now_ns();
        uint64_t due = (now - r->t0_ns) / r->period_ns;
        if (due > k + SIM_CATCH_UP_MAX) {
            core_counter_add(t->skipped, due - k);
            k = due;
        }
        if (t->index == 0)
            atomic_store(&r->tick, (uint32_t)k);
        sim_shard_step(t->shard, (uint32_t)k);
        atomic_store(&t->last_tick_ns, core_now_ns());
        k++;
    }
    return NULL;
}

int sim_runner_start(sim_runner **out, sim_shard **shards, int n_shards, int tick_hz,
                     core_metrics *m)
{
    sim_runner *r = calloc(1, sizeof *r);
    if (!r)
        core_die("out of memory");
    r->n = n_shards;
    r->period_ns = 1000000000ull / (uint64_t)tick_hz;
    r->t0_ns = core_now_ns();
    r->threads = calloc((size_t)n_shards, sizeof *r->threads);
    if (!r->threads)
        core_die("out of memory");
    for (int i = 0; i < n_shards; i++) {
        runner_thread *t = &r->threads[i];
        char labels[32];
        snprintf(labels, sizeof labels, "shard=\"%d\"", i);
        t->r = r;
        t->shard = shards[i];
        t->index = i;
        atomic_store(&t->last_tick_ns, r->t0_ns);
        t->skipped = core_metrics_counter(m, "tessera_ticks_skipped_total",
                                          "Ticks skipped because a shard overran", labels);
        if (pthread_create(&t->thread, NULL, shard_main, t) != 0) {
            core_log(CORE_LOG_ERROR, "sim", NULL, "cannot start shard thread %d", i);
            atomic_store(&r->stop, true);
            for (int j = 0; j < i; j++)
                pthread_join(r->threads[j].thread, NULL);
            free(r->threads);
            free(r);
            return -1;
        }
    }
    *out = r;
    return 0;
}

void sim_runner_stop(sim_runner *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    for (int i = 0; i < r->n; i++)
        pthread_join(r->threads[i].thread, NULL);
    free(r->threads);
    free(r);
}

int sim_runner_ready(sim_runner *r, char *why, size_t cap)
{
    uint64_t now = core_now_ns();
    for (int i = 0; i < r->n; i++) {
        uint64_t last = atomic_load(&r->threads[i].last_tick_ns);
        if (now - last > 4 * r->period_ns) {
            snprintf(why, cap, "shard %d has not ticked for %llu ms", i,
                     (unsigned long long)((now - last) / 1000000ull));
            return 0;
        }
    }
    return 1;
}

uint32_t sim_runner_tick(const sim_runner *r)
{
    return atomic_load(&((sim_runner *)r)->tick);
}
