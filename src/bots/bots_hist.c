/* bots_hist.c - the load generator's figures: a log-linear latency
 * histogram (HDR-style: every sample counted, none dropped, 1 us
 * resolution below 1 ms and 0.2% above), run statistics and how they
 * merge across worker processes, and sampling of a server's CPU time and
 * RSS from /proc. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bots_int.h"

/* ---- histogram ---- */

void bots_hist_init(bots_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min_us = UINT64_MAX;
}

size_t bots_hist_index(uint64_t us)
{
    if (us < BOTS_HIST_SUB)
        return (size_t)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 10 */
    unsigned shift = msb - 9u;                          /* >= 1: top keeps 10 bits */
    if (shift > BOTS_HIST_MAX_SHIFT)
        return BOTS_HIST_N - 1;
    uint64_t top = us >> shift; /* BOTS_HIST_HALF .. BOTS_HIST_SUB - 1 */
    return BOTS_HIST_SUB + (size_t)(shift - 1u) * BOTS_HIST_HALF + (size_t)(top - BOTS_HIST_HALF);
}

uint64_t bots_hist_bucket_lo(size_t i)
{
    if (i < BOTS_HIST_SUB)
        return i;
    size_t k = i - BOTS_HIST_SUB;
    unsigned shift = (unsigned)(k / BOTS_HIST_HALF) + 1u;
    return (uint64_t)(BOTS_HIST_HALF + k % BOTS_HIST_HALF) << shift;
}

uint64_t bots_hist_bucket_hi(size_t i)
{
    if (i < BOTS_HIST_SUB)
        return i;
    unsigned shift = (unsigned)((i - BOTS_HIST_SUB) / BOTS_HIST_HALF) + 1u;
    return bots_hist_bucket_lo(i) + (1ull << shift) - 1u;
}

void bots_hist_add(bots_hist *h, uint64_t us)
{
    h->counts[bots_hist_index(us)]++;
    h->n++;
    h->sum_us += us;
    if (us < h->min_us)
        h->min_us = us;
    if (us > h->max_us)
        h->max_us = us;
}

void bots_hist_merge(bots_hist *dst, const bots_hist *src)
{
    if (src->n == 0)
        return;
    for (size_t i = 0; i < BOTS_HIST_N; i++)
        dst->counts[i] += src->counts[i];
    dst->n += src->n;
    dst->sum_us += src->sum_us;
    if (src->min_us < dst->min_us)
        dst->min_us = src->min_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

uint64_t bots_hist_percentile(const bots_hist *h, double p)
{
    if (h->n == 0)
        return 0;
    if (p <= 0)
        return h->min_us;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->n)
        rank = h->n;
    uint64_t seen = 0;
    for (size_t i = 0; i < BOTS_HIST_N; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bots_hist_bucket_hi(i);
            if (v > h->max_us)
                v = h->max_us;
            if (v < h->min_us)
                v = h->min_us;
            return v;
        }
    }
    return h->max_us;
}

/* ---- run statistics ---- */

void bots_stats_init(bots_stats *s)
{
    memset(s, 0, sizeof *s);
    s->rate_min = s->bytes_min = -1; /* no client yet */
    bots_hist_init(&s->lat);
    bots_hist_init(&s->lag);
}

void bots_code_add(bots_code_count *tab, uint32_t code, uint64_t n)
{
    for (int i = 0; i < BOTS_MAX_CODES; i++) {
        if (tab[i].count == 0 || tab[i].code == code) {
            tab[i].code = code;
            tab[i].count += n;
            return;
        }
    }
    /* Table full: fold into the last row rather than lose the count. */
    tab[BOTS_MAX_CODES - 1].count += n;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static double min_rate(double a, double b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

void bots_stats_merge(bots_stats *d, const bots_stats *s)
{
    d->n_clients += s->n_clients;
    d->n_connected += s->n_connected;
    d->n_at_end += s->n_at_end;
    d->n_logins += s->n_logins;
    d->n_upgrades += s->n_upgrades;
    d->n_login_retry += s->n_login_retry;
    if (s->first_connect_ns && (!d->first_connect_ns || s->first_connect_ns < d->first_connect_ns))
        d->first_connect_ns = s->first_connect_ns;
    d->last_login_ns = max_u64(d->last_login_ns, s->last_login_ns);
    d->last_upgrade_ns = max_u64(d->last_upgrade_ns, s->last_upgrade_ns);
    d->last_welcome_ns = max_u64(d->last_welcome_ns, s->last_welcome_ns);
    d->err_connect += s->err_connect;
    d->err_timeout += s->err_timeout;
    d->err_decode += s->err_decode;
    d->err_io += s->err_io;
    for (int i = 0; i < BOTS_MAX_CODES; i++) {
        if (s->err_http[i].count)
            bots_code_add(d->err_http, s->err_http[i].code, s->err_http[i].count);
        if (s->err_close[i].count)
            bots_code_add(d->err_close, s->err_close[i].code, s->err_close[i].count);
    }
    for (int i = 0; i < PROTO_ERR_COUNT; i++)
        d->err_records[i] += s->err_records[i];
    /* Workers share one schedule, so their windows are the same length. */
    if (s->window_s > d->window_s)
        d->window_s = s->window_s;
    d->states += s->states;
    d->bytes += s->bytes;
    d->entity_updates += s->entity_updates;
    d->inputs_sent += s->inputs_sent;
    d->rate_min = min_rate(d->rate_min, s->rate_min);
    d->bytes_min = min_rate(d->bytes_min, s->bytes_min);
    d->n_below_rate += s->n_below_rate;
    if (s->view_max > d->view_max)
        d->view_max = s->view_max;
    d->view_sum += s->view_sum;
    if (!d->tick_hz)
        d->tick_hz = s->tick_hz;
    d->bots_cpu_s += s->bots_cpu_s;
    if (s->srv_start.is_ok)
        d->srv_start = s->srv_start;
    if (s->srv_end.is_ok)
        d->srv_end = s->srv_end;
    bots_hist_merge(&d->lat, &s->lat);
    bots_hist_merge(&d->lag, &s->lag);
}

uint64_t bots_stats_errors(const bots_stats *s)
{
    uint64_t n = s->err_connect + s->err_timeout + s->err_decode + s->err_io;
    for (int i = 0; i < BOTS_MAX_CODES; i++)
        n += s->err_http[i].count + s->err_close[i].count;
    for (int i = 0; i < PROTO_ERR_COUNT; i++)
        n += s->err_records[i];
    return n;
}

/* ---- /proc sampling ---- */

int bots_server_sample_read(int pid, bots_server_sample *out)
{
    memset(out, 0, sizeof *out);
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')'. utime and stime are fields 14, 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    out->cpu_s = (double)(utime + stime) / (double)(hz > 0 ? hz : 100);

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            out->rss_kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    out->is_ok = true;
    return 0;
}

double bots_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
