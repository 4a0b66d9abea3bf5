/* sim_replay.c - `tessera replay`: rebuilds one cell from its newest valid
 * snapshot plus the tick log and checks, tick by tick, that the state hash
 * equals the one the live shard recorded. Failover rests on this.
 *
 * The replay world is a real sim_shard that holds only the cell's entities
 * and never runs sim_shard_step: the engine feeds it the logged records
 * and calls the very function the live tick calls (sim_move: wandering,
 * movement, collision), so there is one implementation of them.
 * Per tick record (format and timing in sim_log.c): the records before
 * STEP (arrivals, leaves, SETs, inputs), then the CONTACT bodies as ghosts
 * for the step only, the step, the records after it, and the HASH check.
 *
 * Nothing is loaded silently: a snapshot failing its checksum is refused
 * by the store and the previous one used (and said so); a tick log record
 * failing its checksum, malformed, out of sequence (a hole) or naming an
 * entity the replay does not hold stops the replay with exit status 1. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_log.h"
#include "sim_log.h"
#include "store.h"

#define EVENTS_PAGE 4096

typedef struct replay {
    sim_shard *w; /* the one-cell world */
    sim_replay_report *out;
    const spatial_cellmap *cells;
    uint32_t cell;
    int64_t run_base;
    int64_t last_tick;  /* store tick of the last state: the snapshot, then each record */
    uint32_t *contacts; /* slots of this tick's CONTACT ghosts */
    uint32_t n_contacts, contacts_cap;
    sim_member *mem;
    uint32_t mem_cap;
} replay;

static int fail(replay *rp, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(replay *rp, int rc, const char *fmt, ...)
{
    int n = snprintf(rp->out->msg, sizeof rp->out->msg, "cell %u: ", rp->cell);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rp->out->msg + n, sizeof rp->out->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static int cmp_member(const void *a, const void *b)
{
    const sim_member *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The cell's members in id order (every owned entity of the world). */
static size_t members(replay *rp)
{
    sim_shard *w = rp->w;
    if (rp->mem_cap < w->n_owned + 1) {
        rp->mem_cap = (w->n_owned + 1) * 2;
        rp->mem = realloc(rp->mem, rp->mem_cap * sizeof *rp->mem);
        if (!rp->mem)
            core_die("out of memory");
    }
    size_t n = 0;
    for (uint32_t e = 0; e < w->n_used; e++)
        if ((w->flags[e] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE)
            rp->mem[n++] = (sim_member){w->id[e], e};
    qsort(rp->mem, n, sizeof *rp->mem, cmp_member);
    return n;
}

static uint32_t owned_slot(replay *rp, uint32_t id)
{
    uint32_t slot = core_idmap_get(&rp->w->ids, id);
    if (slot == CORE_IDMAP_NONE || (rp->w->flags[slot] & SIM_F_GHOST))
        return SIM_NONE;
    return slot;
}

static bool in_world(const replay *rp, const sim_ent_rec *e)
{
    return e->x >= 0.0f && e->y >= 0.0f && e->x <= (float)rp->cells->world_w &&
           e->y <= (float)rp->cells->world_h;
}

static void drop_contacts(replay *rp)
{
    for (uint32_t i = 0; i < rp->n_contacts; i++) {
        sim_slot_release(rp->w, rp->contacts[i]);
        rp->w->n_ghosts--;
    }
    rp->n_contacts = 0;
}

static int add_contact(replay *rp, const sim_tl_rec *r, uint32_t tick)
{
    sim_shard *w = rp->w;
    uint32_t slot = core_idmap_get(&w->ids, r->id);
    if (slot != CORE_IDMAP_NONE) {
        if (w->flags[slot] & SIM_F_GHOST)
            return 0; /* listed twice */
        return fail(rp, 1, "tick %u: CONTACT with entity %u, which is in the cell", tick, r->id);
    }
    if (rp->n_contacts == rp->contacts_cap) {
        rp->contacts_cap = rp->contacts_cap ? rp->contacts_cap * 2 : 64;
        rp->contacts = realloc(rp->contacts, rp->contacts_cap * sizeof *rp->contacts);
        if (!rp->contacts)
            core_die("out of memory");
    }
    slot = sim_slot_alloc(w);
    w->id[slot] = r->id;
    core_idmap_put(&w->ids, r->id, slot);
    w->flags[slot] = SIM_F_ALIVE | SIM_F_GHOST;
    w->x[slot] = r->a;
    w->y[slot] = r->b;
    sim_entity_place(w, slot);
    w->n_ghosts++;
    rp->contacts[rp->n_contacts++] = slot;
    rp->out->n_contact++;
    return 0;
}

/* Applies one ARRIVE, SET, LEAVE or INPUT. */
static int apply(replay *rp, const sim_tl_rec *r, uint32_t tick)
{
    sim_shard *w = rp->w;
    switch (r->type) {
    case SIM_TL_ARRIVE:
        if (core_idmap_get(&w->ids, r->ent.id) != CORE_IDMAP_NONE)
            return fail(rp, 1, "tick %u: ARRIVE of entity %u, already in the cell", tick,
                        r->ent.id);
        if (!in_world(rp, &r->ent))
            return fail(rp, 1, "tick %u: ARRIVE of entity %u outside the world", tick, r->ent.id);
        sim_ent_restore(w, &r->ent);
        rp->out->n_arrive++;
        return 0;
    case SIM_TL_SET: {
        uint32_t slot = owned_slot(rp, r->ent.id);
        if (slot == SIM_NONE || !in_world(rp, &r->ent))
            return fail(rp, 1, "tick %u: SET of entity %u, not in the cell", tick, r->ent.id);
        sim_ent_overwrite(w, slot, &r->ent);
        rp->out->n_set++;
        return 0;
    }
    case SIM_TL_LEAVE: {
        uint32_t slot = owned_slot(rp, r->id);
        if (slot == SIM_NONE)
            return fail(rp, 1, "tick %u: LEAVE of entity %u, not in the cell", tick, r->id);
        sim_slot_release(w, slot);
        w->n_owned--;
        rp->out->n_leave++;
        return 0;
    }
    case SIM_TL_INPUT: {
        uint32_t slot = owned_slot(rp, r->id);
        if (slot == SIM_NONE)
            return fail(rp, 1, "tick %u: INPUT for entity %u, not in the cell", tick, r->id);
        w->dir_x[slot] = r->a;
        w->dir_y[slot] = r->b;
        rp->out->n_input++;
        return 0;
    }
    default:
        return fail(rp, 1, "tick %u: record type %u out of place", tick, r->type);
    }
}

/* The hash check at the end of a tick (or of the snapshot). */
static int check_hash(replay *rp, uint32_t tick, uint64_t want, uint32_t want_n, const char *what)
{
    size_t n = members(rp);
    for (size_t i = 0; i < n; i++) {
        uint32_t e = rp->mem[i].slot;
        if (spatial_cellmap_cell(rp->cells, rp->w->x[e], rp->w->y[e]) != rp->cell)
            return fail(rp, 1,
                        "tick %u: entity %u ends the tick at (%.3f, %.3f), outside the cell "
                        "(the live shard moved it out)",
                        tick, rp->mem[i].id, (double)rp->w->x[e], (double)rp->w->y[e]);
    }
    uint64_t h = sim_cell_hash(rp->w, rp->mem, n);
    rp->out->hash = h;
    rp->out->n_entities = (uint32_t)n;
    rp->out->last_tick = tick;
    if (h != want || n != want_n)
        return fail(rp, 1,
                    "tick %u: replayed state hash 0x%016llx (%zu entities) differs from %s "
                    "0x%016llx (%u entities)",
                    tick, (unsigned long long)h, n, what, (unsigned long long)want, want_n);
    return 0;
}

/* Replays one tick-log record. */
static int replay_tick(replay *rp, const store_event *ev)
{
    sim_shard *w = rp->w;
    uint32_t tick = (uint32_t)(ev->tick - rp->run_base);
    char err[160];
    sim_tl_reader rd;
    int64_t prev;
    if (sim_tl_open(&rd, &prev, ev->payload, ev->len, err, sizeof err) != 0)
        return fail(rp, 1, "tick %u: log record %lld refused: %s", tick, (long long)ev->seq, err);
    if (prev == 0)
        return fail(rp, 1,
                    "tick %u: the log restarts here (a later server run) and no snapshot of "
                    "that run is readable",
                    tick);
    if (prev != rp->last_tick)
        return fail(rp, 1,
                    "tick %u: hole in the log: the record follows tick %lld, but the last one "
                    "replayed is tick %lld (a record refused or lost)",
                    tick, (long long)(prev - rp->run_base),
                    (long long)(rp->last_tick - rp->run_base));
    if (ev->tick != rp->last_tick + 1 && w->n_owned)
        return fail(rp, 1, "tick %u: the cell was not empty, yet ticks %lld..%u have no record",
                    tick, (long long)(rp->last_tick - rp->run_base + 1), tick - 1);
    w->tick = tick;
    sim_tl_rec r;
    int rc, phase = 0; /* 0 before STEP, 1 contacts, 2 after the step */
    while ((rc = sim_tl_next(&rd, &r, err, sizeof err)) == 1) {
        if (phase == 1 && r.type != SIM_TL_CONTACT) {
            sim_move(w);
            drop_contacts(rp);
            phase = 2;
        }
        if (r.type == SIM_TL_STEP) {
            phase = 1;
        } else if (r.type == SIM_TL_CONTACT) {
            if (phase != 1)
                return fail(rp, 1, "tick %u: CONTACT out of place", tick);
            if (add_contact(rp, &r, tick) != 0)
                return 1;
        } else if (r.type == SIM_TL_HASH) {
            if (check_hash(rp, tick, r.hash, r.n, "the live shard's") != 0)
                return 1;
        } else if (apply(rp, &r, tick) != 0) {
            return 1;
        }
    }
    if (rc < 0)
        return fail(rp, 1, "tick %u: log record %lld refused: %s", tick, (long long)ev->seq, err);
    rp->last_tick = ev->tick;
    rp->out->n_ticks++;
    return 0;
}

/* Refuses a snapshot of another world: the replay would be meaningless. */
static int check_world(replay *rp, const sim_snap *sn, const core_config *cfg, const sim_map *map)
{
    const char *what = NULL;
    if (sn->cell != rp->cell)
        what = "cell";
    else if (sn->seed != cfg->seed)
        what = "world seed (--seed)";
    else if (sn->world_w != (uint32_t)cfg->world_w || sn->world_h != (uint32_t)cfg->world_h)
        what = "world size (--world-w, --world-h)";
    else if (sn->cell_size != (uint16_t)cfg->cell_size)
        what = "cell size (--cell-size)";
    else if (sn->tick_hz != (uint16_t)cfg->tick_hz)
        what = "tick rate (--tick-hz)";
    else if (sn->entity_radius != (float)cfg->entity_radius)
        what = "entity radius (--entity-radius)";
    else if (sn->map_sum != sim_map_checksum(map))
        what = "obstacle map (--map-file)";
    if (!what)
        return 0;
    return fail(rp, 2, "the snapshot at tick %u was taken with another %s than this replay's",
                sn->tick, what);
}

static int load_snapshot(replay *rp, store *st, const core_config *cfg, const sim_map *map,
                         uint32_t until_tick, int64_t *out_seq)
{
    int64_t stick = 0;
    uint8_t *data = NULL;
    size_t len = 0;
    int refused = 0;
    int rc = store_snapshot_read_latest(st, &stick, &data, &len, &refused, rp->cell);
    rp->out->n_refused = refused;
    if (rc == STORE_ERR_NOTFOUND) {
        rp->out->is_never_active = true;
        return fail(rp, 1, "no snapshot in the store (the cell was never active)");
    }
    if (rc == STORE_ERR_CHECKSUM)
        return fail(rp, 1, "every snapshot refused: %s", store_errmsg(st));
    if (rc != STORE_OK)
        return fail(rp, 2, "cannot read snapshots: %s", store_errmsg(st));
    sim_snap sn;
    char err[160];
    if (sim_snap_decode(&sn, data, len, err, sizeof err) != 0) {
        free(data);
        return fail(rp, 1, "snapshot at store tick %lld refused: %s", (long long)stick, err);
    }
    free(data);
    rc = check_world(rp, &sn, cfg, map);
    if (rc == 0 && sn.run_base + sn.tick != stick)
        rc = fail(rp, 1, "snapshot at store tick %lld refused: it says tick %lld", (long long)stick,
                  (long long)(sn.run_base + sn.tick));
    if (rc == 0 && until_tick && until_tick < sn.tick)
        rc = fail(rp, 2, "--until-tick %u is before the newest valid snapshot (tick %u)",
                  until_tick, sn.tick);
    for (uint32_t i = 0; rc == 0 && i < sn.n; i++) {
        if (!in_world(rp, &sn.ents[i]) ||
            spatial_cellmap_cell(rp->cells, sn.ents[i].x, sn.ents[i].y) != rp->cell)
            rc = fail(rp, 1, "snapshot at tick %u refused: entity %u is outside the cell", sn.tick,
                      sn.ents[i].id);
        else
            sim_ent_restore(rp->w, &sn.ents[i]);
    }
    if (rc == 0) {
        rp->run_base = sn.run_base;
        rp->last_tick = stick;
        rp->out->snapshot_tick = sn.tick;
        rp->w->tick = sn.tick;
        *out_seq = sn.seq_hint;
        rc = check_hash(rp, sn.tick, sn.hash, sn.n, "the snapshot's recorded");
    }
    sim_snap_free(&sn);
    return rc;
}

int sim_replay_cell(store *st, const core_config *cfg, const sim_map *map, uint32_t cell,
                    uint32_t until_tick, sim_replay_report *out)
{
    memset(out, 0, sizeof *out);
    out->cell = cell;
    out->snapshot_tick = -1;
    replay rp = {.out = out, .cell = cell};
    spatial_cellmap cells;
    if (spatial_cellmap_init(&cells, (uint32_t)cfg->world_w, (uint32_t)cfg->world_h,
                             (uint16_t)cfg->cell_size, 1) != 0)
        return fail(&rp, 2, "bad world or cell size");
    rp.cells = &cells;
    if (cell >= (uint32_t)cells.cells_x * cells.cells_y) {
        spatial_cellmap_free(&cells);
        return fail(&rp, 2, "no such cell (the world has %u)",
                    (uint32_t)cells.cells_x * cells.cells_y);
    }
    core_metrics *m = core_metrics_create();
    bus *b = NULL;
    int rc = 2;
    if (bus_create(&b, "inproc", m) != BUS_OK ||
        sim_shard_create(&rp.w, cfg, &cells, map, 0, b, m) != 0) {
        rc = fail(&rp, 2, "cannot create the replay world");
        goto done;
    }
    int64_t after_seq = 0;
    rc = load_snapshot(&rp, st, cfg, map, until_tick, &after_seq);
    bool is_end = rc != 0;
    while (!is_end) {
        store_event *ev = NULL;
        size_t n = 0;
        int src = store_events_read(st, &ev, &n, cell, after_seq, EVENTS_PAGE);
        if (src != STORE_OK) {
            rc = fail(&rp, src == STORE_ERR_CHECKSUM ? 1 : 2,
                      "tick log refused after tick %u: %s; the cell cannot be verified past it",
                      out->last_tick, store_errmsg(st));
            break;
        }
        for (size_t i = 0; i < n && !is_end; i++) {
            after_seq = ev[i].seq;
            if (ev[i].kind != SIM_LOG_EVENT_KIND || ev[i].tick <= rp.last_tick)
                continue; /* other events; records the snapshot already holds */
            if (until_tick && ev[i].tick - rp.run_base > (int64_t)until_tick) {
                is_end = true;
                break;
            }
            if (replay_tick(&rp, &ev[i]) != 0) {
                rc = 1;
                is_end = true;
            }
        }
        store_events_free(ev, n);
        if (n < EVENTS_PAGE)
            is_end = true;
    }
    if (rc == 0)
        snprintf(out->msg, sizeof out->msg,
                 "cell %u: snapshot tick %lld (%d refused%s), replayed %u ticks to tick %u, "
                 "%u entities, hash 0x%016llx matches the live shard",
                 cell, (long long)out->snapshot_tick, out->n_refused,
                 out->n_refused ? ": checksum mismatch, fell back to an older snapshot" : "",
                 out->n_ticks, out->last_tick, out->n_entities, (unsigned long long)out->hash);
done:
    free(rp.contacts);
    free(rp.mem);
    sim_shard_destroy(rp.w);
    bus_destroy(b);
    core_metrics_destroy(m);
    spatial_cellmap_free(&cells);
    return rc;
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tessera replay --cell C|all [--until-tick T] [--store-url URL | --data-dir "
               "DIR]\n"
               "                      [serve's world flags: --world-w, --seed, --map-file, ...]\n"
               "Rebuilds a cell from its newest valid snapshot plus the tick log and checks the\n"
               "state hash against the live shard's at every tick. Exit 0: all matched; 1: a\n"
               "mismatch, a refused record or no snapshot; 2: usage or setup error.\n");
}

/* Takes --cell and --until-tick out of argv (they are not config keys). */
static int take_flags(int *argc, char **argv, long *cell, long *until)
{
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        long *dst = NULL;
        const char *v = NULL;
        if (!strncmp(a, "--cell=", 7) || !strncmp(a, "--until-tick=", 13)) {
            dst = a[2] == 'c' ? cell : until;
            v = strchr(a, '=') + 1;
        } else if (!strcmp(a, "--cell") || !strcmp(a, "--until-tick")) {
            if (i + 1 >= *argc)
                return -1;
            dst = a[2] == 'c' ? cell : until;
            v = argv[++i];
        }
        if (!dst) {
            argv[n++] = argv[i];
            continue;
        }
        char *end;
        if (dst == cell && !strcmp(v, "all")) {
            *cell = -2;
            continue;
        }
        *dst = strtol(v, &end, 10);
        if (!*v || *end || *dst < 0 || *dst > UINT32_MAX)
            return -1;
    }
    *argc = n;
    return 0;
}

int sim_replay_main(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    long cell = -1, until = 0;
    if (take_flags(&argc, argv, &cell, &until) != 0 || cell == -1) {
        usage(stderr);
        return 2;
    }
    core_config cfg;
    core_config_defaults(&cfg);
    char err[512];
    if (core_config_load(&cfg, argc, argv, NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "tessera replay: %s\n", err);
        return 2;
    }
    core_log_set_level(core_log_level_parse(cfg.log_level));
    char url[CORE_CONFIG_STR + 32];
    if (cfg.store_url[0]) {
        snprintf(url, sizeof url, "%s", cfg.store_url);
    } else {
        snprintf(url, sizeof url, "%s/tessera.db", cfg.data_dir);
        if (access(url, R_OK) != 0) {
            fprintf(stderr, "tessera replay: no store at %s (pass --data-dir or --store-url)\n",
                    url);
            return 2;
        }
        snprintf(url, sizeof url, "sqlite:%s/tessera.db", cfg.data_dir);
    }
    sim_map map;
    if (sim_map_load(&map, cfg.map_file, err, sizeof err) != 0) {
        fprintf(stderr, "tessera replay: %s\n", err);
        return 2;
    }
    store *st = NULL;
    if (store_open(&st, url, NULL) != STORE_OK) {
        fprintf(stderr, "tessera replay: cannot open the store: %s\n", store_errmsg(NULL));
        sim_map_free(&map);
        return 2;
    }
    uint32_t n_cells = (uint32_t)((cfg.world_w + cfg.cell_size - 1) / cfg.cell_size) *
                       (uint32_t)((cfg.world_h + cfg.cell_size - 1) / cfg.cell_size);
    uint32_t first = cell >= 0 ? (uint32_t)cell : 0, last = cell >= 0 ? first + 1 : n_cells;
    int worst = 0, n_done = 0;
    sim_replay_report rep;
    for (uint32_t c = first; c < last; c++) {
        int rc = sim_replay_cell(st, &cfg, &map, c, (uint32_t)until, &rep);
        if (cell < 0 && rep.is_never_active)
            continue; /* --cell all: cells never active have nothing to check */
        n_done++;
        fprintf(rc ? stderr : stdout, "%s\n", rep.msg);
        if (rc > worst)
            worst = rc;
    }
    if (cell < 0 && !n_done)
        fprintf(stderr, "tessera replay: no cell has a snapshot\n");
    store_close(st);
    sim_map_free(&map);
    return cell < 0 && !n_done ? 1 : worst;
}
