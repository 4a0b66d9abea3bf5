/* bots_loop.c - the epoll loop of one load-generator process: starts the
 * bots along the ramp, sends their inputs on a fixed schedule, opens and
 * closes the measured window, and ends every bot's connection.
 *
 * Timeline (t0 shared by all worker processes):
 *   [t0, t0 + ramp)            bot gid connects at t0 + ramp * gid / N
 *   [.. + settle)              everyone settles in
 *   [win_start, win_end)       the measured window (--duration)
 *   [win_end, + close grace)   close handshakes, then the process returns
 * W6 has no ramp or settle: the window starts at t0 and ends once every
 * bot is in the world or has failed (or at --duration).
 *
 * Input schedule: bot gid sends in each period (1 / input_hz) at offset
 * period * gid / N (rounded down to a 2 ms slot), so sends are spread
 * evenly over the period across all processes; the loop walks a cursor
 * over the bots in id order. When the
 * loop falls more than a period behind (an overloaded load generator) it
 * skips ahead rather than bursting, and the lateness is recorded in the
 * `lag` histogram so such runs can be recognised. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "bots_int.h"
#include "core_time.h"

#define LOOP_MAX_EVENTS 1024
#define LOOP_HOUSEKEEP_NS 100000000ull    /* deadline scan every 100 ms */
#define LOOP_CLOSE_GRACE_NS 3000000000ull /* for close handshakes at the end */
#define LOOP_CONNECTS_PER_TURN 1000       /* keeps the loop responsive in a storm */
/* Sends are grouped into 2 ms slots: waking for every single send cost
 * more in context switches than the sends themselves (perf, 1000 bots). */
#define LOOP_SEND_SLOT_NS 5000000ull
#define W3_RADIUS 50.0f /* W3: mill within this of the centre */

typedef struct loop {
    bots_env *e;
    bot *bots;
    uint32_t n;
    core_rng game; /* headings: deterministic from --seed */
    uint64_t period_ns;
    uint64_t period_start_ns; /* start of the current input period */
    uint32_t cursor;          /* next bot to send in this period */
    uint32_t next_connect;    /* next bot to start */
    uint64_t ramp_ns;
    bool has_window, is_closing;
    uint64_t close_deadline_ns;
    double cpu_start_s;
    uint64_t last_progress_ns, progress_states;
} loop;

static uint64_t connect_at(const loop *l, uint32_t i)
{
    const bots_opts *o = l->e->o;
    uint64_t gid = o->first_bot + i;
    return o->t0_ns + (uint64_t)((double)l->ramp_ns * (double)gid / (double)o->n_clients);
}

static uint64_t send_at(const loop *l, uint32_t i)
{
    const bots_opts *o = l->e->o;
    uint64_t gid = o->first_bot + i;
    uint64_t off = (uint64_t)((double)l->period_ns * (double)gid / (double)o->n_clients);
    return l->period_start_ns + off / LOOP_SEND_SLOT_NS * LOOP_SEND_SLOT_NS;
}

static void random_heading(core_rng *r, float *dx, float *dy)
{
    float a = core_rng_unit(r) * 6.2831853f;
    *dx = cosf(a);
    *dy = sinf(a);
}

/* W3 after its free phase: head for the centre, then mill within
 * W3_RADIUS of it (a random heading pulled towards the centre). */
static void w3_heading(loop *l, bot *b, bool is_new_heading)
{
    bots_env *e = l->e;
    float x, y;
    if (!e->world_w || !bot_own_position(b, &x, &y))
        return;
    float cx = (float)e->world_w / 2, cy = (float)e->world_h / 2;
    float vx = cx - x, vy = cy - y;
    float d = sqrtf(vx * vx + vy * vy);
    if (d > W3_RADIUS) {
        b->dir_x = vx / d;
        b->dir_y = vy / d;
        return;
    }
    if (!is_new_heading)
        return;
    float rx, ry;
    random_heading(&l->game, &rx, &ry);
    rx += vx / W3_RADIUS;
    ry += vy / W3_RADIUS;
    float n = sqrtf(rx * rx + ry * ry);
    if (n > 1.0f) {
        rx /= n;
        ry /= n;
    }
    b->dir_x = rx;
    b->dir_y = ry;
}

static void send_one(loop *l, bot *b)
{
    bots_env *e = l->e;
    if (b->state != BOT_IN_WORLD)
        return;
    bool is_new = b->heading_left == 0;
    if (is_new) {
        random_heading(&l->game, &b->dir_x, &b->dir_y);
        b->heading_left = (uint32_t)e->o->input_hz;
    }
    b->heading_left--;
    if (e->o->workload == BOTS_W3 &&
        e->now_ns >= e->o->t0_ns + l->ramp_ns + (uint64_t)(W3_FREE_S * 1e9))
        w3_heading(l, b, is_new);
    bot_send_input(e, b, b->dir_x, b->dir_y);
}

static void run_inputs(loop *l)
{
    bots_env *e = l->e;
    for (;;) {
        if (l->cursor == l->n) {
            l->cursor = 0;
            l->period_start_ns += l->period_ns;
            if (e->now_ns > l->period_start_ns + l->period_ns)
                l->period_start_ns = e->now_ns; /* more than a period behind: skip */
        }
        uint64_t due = send_at(l, l->cursor);
        if (due > e->now_ns)
            return;
        bot *b = &l->bots[l->cursor++];
        if (b->state == BOT_IN_WORLD) {
            if (e->in_window)
                bots_hist_add(&e->st->lag, (e->now_ns - due) / 1000u);
            send_one(l, b);
        }
    }
}

static void window_open(loop *l)
{
    bots_env *e = l->e;
    e->in_window = true;
    l->has_window = true;
    l->cpu_start_s = bots_self_cpu_s();
    if (e->o->is_sampler && e->o->server_pid > 0)
        bots_server_sample_read(e->o->server_pid, &e->st->srv_start);
}

/* Ends the window: per-client figures, CPU, then close handshakes. */
static void window_close(loop *l)
{
    bots_env *e = l->e;
    bots_stats *st = e->st;
    e->in_window = false;
    st->bots_cpu_s = bots_self_cpu_s() - l->cpu_start_s;
    if (e->o->is_sampler && e->o->server_pid > 0)
        bots_server_sample_read(e->o->server_pid, &st->srv_end);
    double w = (double)(e->now_ns - e->win_start_ns) / 1e9;
    st->window_s = w;
    double hz = st->tick_hz ? st->tick_hz : 20;
    for (uint32_t i = 0; i < l->n; i++) {
        const bot *b = &l->bots[i];
        double rate = w > 0 ? b->win_states / w : 0, bps = w > 0 ? (double)b->win_bytes / w : 0;
        if (st->rate_min < 0 || rate < st->rate_min)
            st->rate_min = rate;
        if (st->bytes_min < 0 || bps < st->bytes_min)
            st->bytes_min = bps;
        if (rate < hz * 0.95)
            st->n_below_rate++;
        if (b->state == BOT_IN_WORLD) {
            st->n_at_end++;
            st->view_sum += b->n_view;
        }
    }
    l->is_closing = true;
    l->close_deadline_ns = e->now_ns + LOOP_CLOSE_GRACE_NS;
    for (uint32_t i = 0; i < l->n; i++)
        bot_close(e, &l->bots[i]);
}

static void progress(loop *l)
{
    bots_env *e = l->e;
    bots_progress p = {.n_connected = e->n_in_world,
                       .n_failed = e->n_failed,
                       .states = e->states_total,
                       .errors = bots_stats_errors(e->st),
                       .p99_us = bots_hist_percentile(e->lat_interval, 99)};
    bots_hist_init(e->lat_interval);
    if (e->o->progress_fd >= 0) {
        uint8_t msg[4 + sizeof p];
        uint32_t type = BOTS_MSG_PROGRESS;
        memcpy(msg, &type, 4);
        memcpy(msg + 4, &p, sizeof p);
        ssize_t w = write(e->o->progress_fd, msg, sizeof msg); /* < PIPE_BUF: atomic */
        (void)w;
        return;
    }
    if (e->o->is_quiet)
        return;
    double dt = (double)(e->now_ns - l->last_progress_ns) / 1e9;
    bots_progress_print(e->o, &p, (double)(e->now_ns - e->o->t0_ns) / 1e9,
                        dt > 0 ? (double)(p.states - l->progress_states) / dt : 0);
    l->progress_states = p.states;
}

static bool all_settled(const loop *l)
{
    const bots_env *e = l->e;
    return l->next_connect == l->n && e->st->n_connected + e->n_failed >= l->n;
}

static bool all_closed(const loop *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->bots[i].fd >= 0)
            return false;
    return true;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void loop_turn(loop *l, struct epoll_event *evs)
{
    bots_env *e = l->e;
    const bots_opts *o = e->o;
    e->now_ns = core_now_ns();
    if (!l->has_window && e->now_ns >= e->win_start_ns)
        window_open(l);
    bool is_w6_done = o->workload == BOTS_W6 && l->has_window && all_settled(l);
    if (e->in_window && (e->now_ns >= e->win_end_ns || is_w6_done))
        window_close(l);
    for (int k = 0; k < LOOP_CONNECTS_PER_TURN && !l->is_closing && l->next_connect < l->n &&
                    connect_at(l, l->next_connect) <= e->now_ns;
         k++)
        bot_start(e, &l->bots[l->next_connect++]);
    if (!l->is_closing && (o->workload == BOTS_W1 || o->workload == BOTS_W3))
        run_inputs(l);
    static const uint64_t never = UINT64_MAX;
    uint64_t wake = e->now_ns + LOOP_HOUSEKEEP_NS;
    if (!l->is_closing && l->next_connect < l->n)
        wake = min_u64(wake, connect_at(l, l->next_connect));
    if (!l->is_closing && (o->workload == BOTS_W1 || o->workload == BOTS_W3))
        wake = min_u64(wake, l->cursor < l->n ? send_at(l, l->cursor) : never);
    wake = min_u64(wake, l->has_window ? e->win_end_ns : e->win_start_ns);
    uint64_t wait_ns = wake > e->now_ns ? wake - e->now_ns : 0;
    struct timespec ts = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
    int n = epoll_pwait2(e->epfd, evs, LOOP_MAX_EVENTS, &ts, NULL);
    e->now_ns = core_now_ns();
    for (int i = 0; i < n; i++)
        bot_on_event(e, &l->bots[evs[i].data.u32], evs[i].events);
}

int bots_run(const bots_opts *o, bots_stats *st)
{
    bots_env *e = calloc(1, sizeof *e);
    bot *bots = calloc(o->n_local ? o->n_local : 1, sizeof *bots);
    bots_hist *interval = malloc(sizeof *interval);
    struct epoll_event *evs = calloc(LOOP_MAX_EVENTS, sizeof *evs);
    if (!e || !bots || !interval || !evs)
        abort();
    int rc = -1;
    e->o = o;
    e->st = st;
    e->lat_interval = interval;
    bots_hist_init(interval);
    st->n_clients = o->n_local;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        perror("tessera bots: epoll_create1");
        goto done;
    }
    /* Masks and keys from the kernel's generator; headings from --seed. */
    uint64_t mask_seed = 0;
    if (getrandom(&mask_seed, sizeof mask_seed, 0) != (ssize_t)sizeof mask_seed)
        mask_seed = core_now_ns();
    core_rng_seed(&e->rng, mask_seed);

    loop l = {.e = e, .bots = bots, .n = o->n_local};
    core_rng_seed(&l.game, o->seed * 1000003u + o->first_bot);
    for (uint32_t i = 0; i < l.n; i++) {
        bots[i].fd = -1;
        bots[i].gid = o->first_bot + i;
        bots[i].own_slot = -1;
    }
    l.period_ns = 1000000000ull / (uint64_t)(o->input_hz > 0 ? o->input_hz : 20);
    l.period_start_ns = o->t0_ns;
    bool is_w6 = o->workload == BOTS_W6;
    l.ramp_ns = (uint64_t)(o->ramp_s * 1e9);
    e->win_start_ns = is_w6 ? o->t0_ns : o->t0_ns + l.ramp_ns + (uint64_t)(o->settle_s * 1e9);
    e->win_end_ns = e->win_start_ns + (uint64_t)(o->duration_s * 1e9);
    l.last_progress_ns = o->t0_ns;
    uint64_t tick_ns = o->progress_fd >= 0 || isatty(2) ? 1000000000ull : 5000000000ull;

    core_sleep_until_ns(o->t0_ns);
    uint64_t next_housekeep_ns = o->t0_ns;
    for (;;) {
        loop_turn(&l, evs);
        if (e->now_ns >= next_housekeep_ns) {
            for (uint32_t i = 0; i < l.n; i++)
                bot_check_deadline(e, &bots[i]);
            next_housekeep_ns = e->now_ns + LOOP_HOUSEKEEP_NS;
        }
        if (e->now_ns - l.last_progress_ns >= tick_ns) {
            progress(&l);
            l.last_progress_ns = e->now_ns;
        }
        if (l.is_closing && (e->now_ns >= l.close_deadline_ns || all_closed(&l)))
            break;
    }
    if (o->progress_fd < 0 && !o->is_quiet && isatty(2))
        fputc('\n', stderr);
    rc = 0;
done:
    for (uint32_t i = 0; i < o->n_local; i++)
        bot_release(&bots[i]);
    if (e->epfd >= 0)
        close(e->epfd);
    free(evs);
    free(interval);
    free(bots);
    free(e);
    return rc;
}
