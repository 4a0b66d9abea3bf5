/* core_metrics.h - a Prometheus metrics registry.
 *
 * Registration (any thread, takes a mutex) returns a handle that stays
 * valid until core_metrics_destroy; updates through handles are lock-free
 * relaxed atomics and may come from any thread. Registering the same name
 * and labels twice returns the same handle. labels is the inside of the
 * braces, e.g. "shard=\"0\"", or NULL/"" for none. */
#ifndef CORE_METRICS_H
#define CORE_METRICS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core_buf.h"

typedef struct core_metrics core_metrics;

typedef struct core_counter {
    _Atomic uint64_t v;
} core_counter;

typedef struct core_gauge {
    _Atomic uint64_t bits; /* a double's bit pattern */
} core_gauge;

#define CORE_HIST_MAX_BOUNDS 24
typedef struct core_histogram {
    size_t n_bounds;
    double bounds[CORE_HIST_MAX_BOUNDS];               /* ascending upper bounds */
    _Atomic uint64_t counts[CORE_HIST_MAX_BOUNDS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_bits;                         /* double bit pattern, CAS-updated */
} core_histogram;

core_metrics *core_metrics_create(void);
void core_metrics_destroy(core_metrics *m); /* NULL is a no-op */

core_counter *core_metrics_counter(core_metrics *m, const char *name, const char *help,
                                   const char *labels);
core_gauge *core_metrics_gauge(core_metrics *m, const char *name, const char *help,
                               const char *labels);
/* bounds: n_bounds (<= CORE_HIST_MAX_BOUNDS) ascending upper bounds. */
core_histogram *core_metrics_histogram(core_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t n_bounds);

static inline void core_counter_add(core_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}
static inline uint64_t core_counter_get(core_counter *c)
{
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}
void core_gauge_set(core_gauge *g, double v);
void core_gauge_add(core_gauge *g, double delta);
double core_gauge_get(core_gauge *g);
void core_histogram_observe(core_histogram *h, double v);
/* Total observations so far. */
uint64_t core_histogram_count(core_histogram *h);

/* Appends the Prometheus text exposition (version 0.0.4) to out. */
void core_metrics_render(core_metrics *m, core_buf *out);
#endif
