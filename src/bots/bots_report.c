/* bots_report.c - what a run tells: the progress line while it runs, the
 * human summary at the end and the JSON file with every figure.
 *
 * Derived figures (WORKLOADS.md terms):
 *   updates/s per client   STATE messages received in the window / window
 *   bytes/s per client     bytes read from the socket in the window / window
 *   entity updates/s       enters + deltas applied by all bots / window
 *   ack latency            send of seq k -> first STATE with ack_seq >= k
 *   server CPU per client-tick = server CPU s / (clients x window x tick_hz)
 *   sustained              every client >= 95% of tick_hz STATEs/s and
 *                          ack latency p99 <= 100 ms */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bots_int.h"

#define SUSTAINED_P99_US 100000u

static const char *workload_name(bots_workload w)
{
    switch (w) {
    case BOTS_W1:
        return "w1";
    case BOTS_W2:
        return "w2";
    case BOTS_W3:
        return "w3";
    case BOTS_W6:
        return "w6";
    }
    return "?";
}

double bots_window_seconds(const bots_stats *s)
{
    return s->window_s > 0 ? s->window_s : 0;
}

static double tick_hz(const bots_stats *s)
{
    return s->tick_hz ? s->tick_hz : 20;
}

bool bots_is_sustained(const bots_stats *s)
{
    return s->n_clients > 0 && s->window_s > 0 && s->n_below_rate == 0 &&
           s->rate_min >= 0.95 * tick_hz(s) && s->lat.n > 0 &&
           bots_hist_percentile(&s->lat, 99) <= SUSTAINED_P99_US;
}

void bots_progress_print(const bots_opts *o, const bots_progress *p, double elapsed_s,
                         double states_per_s)
{
    char p99[32];
    if (p->p99_us)
        snprintf(p99, sizeof p99, "%.1f ms", (double)p->p99_us / 1000.0);
    else
        snprintf(p99, sizeof p99, "-");
    bool is_tty = isatty(2);
    fprintf(stderr,
            "%s[bots %s] %6.1f s  in world %u/%u  failed %u  states/s %.0f  p99 %s  errors %" PRIu64
            "%s",
            is_tty ? "\r" : "", workload_name(o->workload), elapsed_s, p->n_connected, o->n_clients,
            p->n_failed, states_per_s, p99, p->errors, is_tty ? "\033[K" : "\n");
    fflush(stderr);
}

/* Per-run derived numbers, shared by the summary and the JSON. */
typedef struct derived {
    double w;                  /* window, s */
    double upd_mean, bps_mean; /* per client */
    double ent_per_s;
    double connect_span_s, connects_per_s, logins_per_s;
    double srv_cpu_s, srv_cpu_pct, srv_us_per_client_tick;
    double bots_cpu_pct;
} derived;

static void derive(const bots_opts *o, const bots_stats *s, derived *d)
{
    memset(d, 0, sizeof *d);
    d->w = bots_window_seconds(s);
    double n = s->n_clients ? s->n_clients : 1;
    if (d->w > 0) {
        d->upd_mean = (double)s->states / (n * d->w);
        d->bps_mean = (double)s->bytes / (n * d->w);
        d->ent_per_s = (double)s->entity_updates / d->w;
        d->bots_cpu_pct = 100.0 * s->bots_cpu_s / d->w;
    }
    uint64_t last = o->use_login ? s->last_login_ns : s->last_upgrade_ns;
    if (last > s->first_connect_ns) {
        double span = (double)(last - s->first_connect_ns) / 1e9;
        d->connect_span_s = span;
        d->connects_per_s = (double)s->n_upgrades / span;
        d->logins_per_s = (double)(o->use_login ? s->n_logins : s->n_upgrades) / span;
    }
    if (s->srv_start.is_ok && s->srv_end.is_ok && d->w > 0) {
        d->srv_cpu_s = s->srv_end.cpu_s - s->srv_start.cpu_s;
        d->srv_cpu_pct = 100.0 * d->srv_cpu_s / d->w;
        double ticks = d->w * tick_hz(s);
        d->srv_us_per_client_tick = d->srv_cpu_s * 1e6 / (n * ticks);
    }
}

/* (RSS at the window's end - RSS before the first connection) / clients,
 * bytes: what each connection costs the server (W2). */
static double rss_growth_per_client(const bots_stats *s)
{
    return ((double)s->srv_end.rss_kb - (double)s->srv_before.rss_kb) * 1024.0 / s->n_clients;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

void bots_report_print(const bots_opts *o, const bots_stats *s, FILE *f)
{
    derived d;
    derive(o, s, &d);
    const bots_hist *h = &s->lat;
    fprintf(f, "tessera bots: %s, %u clients (%s auth, %d process%s), window %.1f s\n",
            workload_name(o->workload), s->n_clients, o->use_login ? "login" : "jwt", o->procs,
            o->procs > 1 ? "es" : "", d.w);
    fprintf(f, "  in world       %u reached, %u at the window's end\n", s->n_connected,
            s->n_at_end);
    fprintf(f, "  updates/s      mean %.2f  min %.2f per client (%u below %.0f)\n", d.upd_mean,
            s->rate_min < 0 ? 0 : s->rate_min, s->n_below_rate, 0.95 * tick_hz(s));
    fprintf(f, "  bytes/s        mean %.0f  min %.0f per client\n", d.bps_mean,
            s->bytes_min < 0 ? 0 : s->bytes_min);
    fprintf(f, "  ack latency    p50 %.1f  p90 %.1f  p99 %.1f  max %.1f ms (%" PRIu64 " samples)\n",
            ms(bots_hist_percentile(h, 50)), ms(bots_hist_percentile(h, 90)),
            ms(bots_hist_percentile(h, 99)), ms(h->max_us), h->n);
    fprintf(f, "  entity updates %.0f /s delivered; entities in view: mean %.1f, max %u\n",
            d.ent_per_s, s->n_at_end ? (double)s->view_sum / s->n_at_end : 0.0, s->view_max);
    fprintf(f, "  wire bytes     %.2f per entity update (every byte read, framing included)\n",
            s->entity_updates ? (double)s->bytes / (double)s->entity_updates : 0.0);
    fprintf(f, "  connects       %.0f /s, logins %.0f /s, all in world after %.2f s\n",
            d.connects_per_s, d.logins_per_s,
            s->n_connected == s->n_clients ? (double)s->last_welcome_ns / 1e9 : -1.0);
    if (s->srv_start.is_ok && s->srv_end.is_ok)
        fprintf(f,
                "  server         CPU %.1f%% of a core, %.2f us per client-tick, RSS %" PRIu64
                " -> %" PRIu64 " KiB\n",
                d.srv_cpu_pct, d.srv_us_per_client_tick, s->srv_start.rss_kb, s->srv_end.rss_kb);
    if (s->srv_before.is_ok && s->srv_end.is_ok && s->n_clients)
        fprintf(f, "  RSS growth     %" PRIu64 " -> %" PRIu64 " KiB: %.0f B per connection\n",
                s->srv_before.rss_kb, s->srv_end.rss_kb, rss_growth_per_client(s));
    fprintf(f, "  bots           CPU %.1f%% of a core, input send lag p99 %.1f ms\n",
            d.bots_cpu_pct, ms(bots_hist_percentile(&s->lag, 99)));
    fprintf(f,
            "  errors         %" PRIu64 " (connect %" PRIu64 ", timeout %" PRIu64
            ", decode %" PRIu64 ", io %" PRIu64 ")",
            bots_stats_errors(s), s->err_connect, s->err_timeout, s->err_decode, s->err_io);
    for (int i = 0; i < BOTS_MAX_CODES && s->err_http[i].count; i++)
        fprintf(f, " http %u x%" PRIu64, s->err_http[i].code, s->err_http[i].count);
    for (int i = 0; i < BOTS_MAX_CODES && s->err_close[i].count; i++)
        fprintf(f, " close %u x%" PRIu64, s->err_close[i].code, s->err_close[i].count);
    for (int i = 0; i < PROTO_ERR_COUNT; i++)
        if (s->err_records[i])
            fprintf(f, " %s x%" PRIu64, i ? proto_err_name((proto_err)i) : "unknown_error",
                    s->err_records[i]);
    fprintf(f, "\n");
    if (o->workload == BOTS_W1 || o->workload == BOTS_W3)
        fprintf(f, "  sustained      %s\n", bots_is_sustained(s) ? "yes" : "no");
}

static json_t *codes_json(const bots_code_count *tab)
{
    json_t *o = json_object();
    for (int i = 0; i < BOTS_MAX_CODES && tab[i].count; i++) {
        char k[16];
        snprintf(k, sizeof k, "%u", tab[i].code);
        json_object_set_new(o, k, json_integer((json_int_t)tab[i].count));
    }
    return o;
}

static void set_real(json_t *o, const char *k, double v)
{
    json_object_set_new(o, k, json_real(v));
}

static void set_int(json_t *o, const char *k, uint64_t v)
{
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

int bots_report_json(const bots_opts *o, const bots_stats *s)
{
    if (!o->json_path[0])
        return 0;
    derived d;
    derive(o, s, &d);
    json_t *root = json_object();
    json_object_set_new(root, "workload", json_string(workload_name(o->workload)));
    set_int(root, "clients", o->n_clients);
    set_int(root, "procs", (uint64_t)o->procs);
    json_object_set_new(root, "auth", json_string(o->use_login ? "login" : "jwt"));
    json_object_set_new(root, "target", json_string(o->host));
    set_real(root, "ramp_s", o->ramp_s);
    set_real(root, "duration_s", o->duration_s);
    set_real(root, "window_s", d.w);
    set_int(root, "tick_hz", (uint64_t)tick_hz(s));
    set_int(root, "connected", s->n_connected);
    set_int(root, "in_world_at_end", s->n_at_end);

    json_t *u = json_object();
    set_real(u, "mean", d.upd_mean);
    set_real(u, "min", s->rate_min < 0 ? 0 : s->rate_min);
    set_int(u, "clients_below_sustained", s->n_below_rate);
    json_object_set_new(root, "updates_per_client_s", u);
    json_t *b = json_object();
    set_real(b, "mean", d.bps_mean);
    set_real(b, "min", s->bytes_min < 0 ? 0 : s->bytes_min);
    json_object_set_new(root, "bytes_per_client_s", b);

    json_t *l = json_object();
    set_real(l, "p50", ms(bots_hist_percentile(&s->lat, 50)));
    set_real(l, "p90", ms(bots_hist_percentile(&s->lat, 90)));
    set_real(l, "p99", ms(bots_hist_percentile(&s->lat, 99)));
    set_real(l, "max", ms(s->lat.max_us));
    set_real(l, "mean", s->lat.n ? ms(s->lat.sum_us / s->lat.n) : 0);
    set_int(l, "samples", s->lat.n);
    json_object_set_new(root, "ack_latency_ms", l);

    set_real(root, "entity_updates_per_s", d.ent_per_s);
    set_real(root, "bytes_per_entity_update",
             s->entity_updates ? (double)s->bytes / (double)s->entity_updates : 0.0);
    json_t *vw = json_object();
    set_real(vw, "mean_at_end", s->n_at_end ? (double)s->view_sum / s->n_at_end : 0.0);
    set_int(vw, "max", s->view_max);
    json_object_set_new(root, "entities_in_view", vw);
    set_int(root, "inputs_sent", s->inputs_sent);
    set_int(root, "states", s->states);
    set_real(root, "connects_per_s", d.connects_per_s);
    set_real(root, "logins_per_s", d.logins_per_s);
    set_int(root, "logins", o->use_login ? s->n_logins : s->n_upgrades);
    set_int(root, "login_retries", s->n_login_retry);
    if (s->n_connected == s->n_clients && s->n_clients > 0)
        set_real(root, "time_to_all_in_world_s", (double)s->last_welcome_ns / 1e9);
    else
        json_object_set_new(root, "time_to_all_in_world_s", json_null());

    json_t *er = json_object();
    set_int(er, "total", bots_stats_errors(s));
    set_int(er, "connect", s->err_connect);
    set_int(er, "timeout", s->err_timeout);
    set_int(er, "decode", s->err_decode);
    set_int(er, "io", s->err_io);
    json_object_set_new(er, "http_status", codes_json(s->err_http));
    json_object_set_new(er, "close_code", codes_json(s->err_close));
    json_t *rec = json_object();
    for (int i = 0; i < PROTO_ERR_COUNT; i++)
        if (s->err_records[i])
            set_int(rec, i ? proto_err_name((proto_err)i) : "unknown", s->err_records[i]);
    json_object_set_new(er, "error_records", rec);
    json_object_set_new(root, "errors", er);

    json_t *sv = json_object();
    set_int(sv, "pid", (uint64_t)(o->server_pid > 0 ? o->server_pid : 0));
    if (s->srv_start.is_ok && s->srv_end.is_ok) {
        set_real(sv, "cpu_s", d.srv_cpu_s);
        set_real(sv, "cpu_pct", d.srv_cpu_pct);
        set_real(sv, "cpu_us_per_client_tick", d.srv_us_per_client_tick);
        set_int(sv, "rss_kb_start", s->srv_start.rss_kb);
        set_int(sv, "rss_kb_end", s->srv_end.rss_kb);
        set_real(sv, "rss_kb_per_client",
                 s->n_clients ? (double)s->srv_end.rss_kb / s->n_clients : 0);
    }
    if (s->srv_before.is_ok && s->srv_end.is_ok && s->n_clients) {
        set_int(sv, "rss_kb_before_clients", s->srv_before.rss_kb);
        set_real(sv, "rss_growth_bytes_per_client", rss_growth_per_client(s));
    }
    json_object_set_new(root, "server", sv);

    json_t *bt = json_object();
    set_real(bt, "cpu_s", s->bots_cpu_s);
    set_real(bt, "cpu_pct", d.bots_cpu_pct);
    set_real(bt, "send_lag_p99_ms", ms(bots_hist_percentile(&s->lag, 99)));
    set_real(bt, "send_lag_max_ms", ms(s->lag.max_us));
    json_object_set_new(root, "bots", bt);
    json_object_set_new(root, "sustained", json_boolean(bots_is_sustained(s)));

    int rc = json_dump_file(root, o->json_path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0)
        fprintf(stderr, "tessera bots: cannot write %s\n", o->json_path);
    return rc == 0 ? 0 : -1;
}
