/* core_metrics.c - registry and Prometheus text rendering. Families keep
 * registration order; series of one family are rendered together under one
 * HELP/TYPE pair. */
#include "core_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"

enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

typedef struct series {
    struct series *next;
    char *labels;
    union {
        core_counter counter;
        core_gauge gauge;
        core_histogram hist;
    } u;
} series;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    int kind;
    series *first, *last;
} family;

struct core_metrics {
    pthread_mutex_t mu;
    family *first, *last;
};

core_metrics *core_metrics_create(void)
{
    core_metrics *m = calloc(1, sizeof *m);
    if (!m)
        core_die("out of memory");
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void core_metrics_destroy(core_metrics *m)
{
    if (!m)
        return;
    for (family *f = m->first; f;) {
        family *fn = f->next;
        for (series *s = f->first; s;) {
            series *sn = s->next;
            free(s->labels);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        core_die("out of memory");
    return d;
}

static series *lookup(core_metrics *m, const char *name, const char *help, const char *labels,
                      int kind, int *is_new)
{
    family *f;
    for (f = m->first; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            core_die("out of memory");
        f->name = xstrdup(name);
        f->help = xstrdup(help);
        f->kind = kind;
        if (m->last)
            m->last->next = f;
        else
            m->first = f;
        m->last = f;
    }
    if (f->kind != kind)
        core_die("metric %s registered with two types", name);
    const char *l = labels ? labels : "";
    for (series *s = f->first; s; s = s->next)
        if (strcmp(s->labels, l) == 0) {
            *is_new = 0;
            return s;
        }
    series *s = calloc(1, sizeof *s);
    if (!s)
        core_die("out of memory");
    s->labels = xstrdup(l);
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    *is_new = 1;
    return s;
}

core_counter *core_metrics_counter(core_metrics *m, const char *name, const char *help,
                                   const char *labels)
{
    int is_new;
    pthread_mutex_lock(&m->mu);
    series *s = lookup(m, name, help, labels, KIND_COUNTER, &is_new);
    pthread_mutex_unlock(&m->mu);
    return &s->u.counter;
}

core_gauge *core_metrics_gauge(core_metrics *m, const char *name, const char *help,
                               const char *labels)
{
    int is_new;
    pthread_mutex_lock(&m->mu);
    series *s = lookup(m, name, help, labels, KIND_GAUGE, &is_new);
    pthread_mutex_unlock(&m->mu);
    return &s->u.gauge;
}

core_histogram *core_metrics_histogram(core_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t n_bounds)
{
    if (n_bounds > CORE_HIST_MAX_BOUNDS)
        core_die("histogram %s has too many bounds", name);
    int is_new;
    pthread_mutex_lock(&m->mu);
    series *s = lookup(m, name, help, labels, KIND_HISTOGRAM, &is_new);
    if (is_new) {
        s->u.hist.n_bounds = n_bounds;
        memcpy(s->u.hist.bounds, bounds, n_bounds * sizeof *bounds);
    }
    pthread_mutex_unlock(&m->mu);
    return &s->u.hist;
}

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

void core_gauge_set(core_gauge *g, double v)
{
    atomic_store_explicit(&g->bits, double_to_bits(v), memory_order_relaxed);
}

static void atomic_double_add(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old,
                                                  double_to_bits(bits_to_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void core_gauge_add(core_gauge *g, double delta)
{
    atomic_double_add(&g->bits, delta);
}

double core_gauge_get(core_gauge *g)
{
    return bits_to_double(atomic_load_explicit(&g->bits, memory_order_relaxed));
}

void core_histogram_observe(core_histogram *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_double_add(&h->sum_bits, v);
}

uint64_t core_histogram_count(core_histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= h->n_bounds; i++)
        n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return n;
}

static void appendf(core_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void appendf(core_buf *out, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        core_buf_append(out, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void fmt_double(char *dst, size_t cap, double v)
{
    if (isinf(v))
        snprintf(dst, cap, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        snprintf(dst, cap, "NaN");
    else {
        /* shortest form that reads back to the same double */
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(dst, cap, "%.*g", prec, v);
            if (strtod(dst, NULL) == v)
                break;
        }
    }
}

void core_metrics_render(core_metrics *m, core_buf *out)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->mu);
    for (family *f = m->first; f; f = f->next) {
        appendf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, kinds[f->kind]);
        for (series *s = f->first; s; s = s->next) {
            const char *open = s->labels[0] ? "{" : "";
            const char *close = s->labels[0] ? "}" : "";
            char num[64];
            if (f->kind == KIND_COUNTER) {
                appendf(out, "%s%s%s%s %llu\n", f->name, open, s->labels, close,
                        (unsigned long long)core_counter_get(&s->u.counter));
            } else if (f->kind == KIND_GAUGE) {
                fmt_double(num, sizeof num, core_gauge_get(&s->u.gauge));
                appendf(out, "%s%s%s%s %s\n", f->name, open, s->labels, close, num);
            } else {
                core_histogram *h = &s->u.hist;
                const char *sep = s->labels[0] ? "," : "";
                uint64_t cum = 0;
                for (size_t i = 0; i <= h->n_bounds; i++) {
                    cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
                    if (i < h->n_bounds)
                        fmt_double(num, sizeof num, h->bounds[i]);
                    else
                        snprintf(num, sizeof num, "+Inf");
                    appendf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep, num,
                            (unsigned long long)cum);
                }
                fmt_double(
                    num, sizeof num,
                    bits_to_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
                appendf(out, "%s_sum%s%s%s %s\n", f->name, open, s->labels, close, num);
                appendf(out, "%s_count%s%s%s %llu\n", f->name, open, s->labels, close,
                        (unsigned long long)cum);
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
}
