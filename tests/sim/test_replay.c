/* test_replay.c - snapshot + tick log = the live shard's state, the
 * property failover rests on. Two shards in-process over the real bus log
 * into a real SQLite store while NPCs and crowds of players walk across the
 * shard border and across cell borders inside a shard, colliding; then
 * every cell is rebuilt from its latest snapshot and from an earlier one
 * and must land on the live hash. A corrupted snapshot is refused and the
 * previous one used; a corrupted log record stops the replay with a
 * checksum message, a missing one with a hole message; the decoders
 * refuse every truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

#include "core_log.h"
#include "core_rng.h"
#include "sim_harness.h"
#include "sim_log.h"
#include "store.h"

#define TICKS 300
#define N_CELLS 16 /* 1024 x 1024 in cells of 256 */

typedef struct live {
    char dir[64]; /* the pristine store of the run */
    harness h;    /* config and map (shards destroyed) */
    uint64_t hash[N_CELLS];
    uint32_t n[N_CELLS];
    uint64_t handoffs;
} live;

static live g;

/* Each test works on its own copy of the run's database. */
static char g_dir[64];

static void sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

/* Crowds: walkers shuttling across the shard border (x = 512), across a
 * cell border inside shard 0 (x = 256), and a knot converging on the
 * corner of four cells; each turns every 20 ticks. */
static void run_live(void)
{
    harness *h = &g.h;
    h_init(h, 2, 150, 11);
    h->cfg.snapshot_interval_s = 1;
    h->cfg.npc_speed = 40;
    h_start(h);
    snprintf(g.dir, sizeof g.dir, "/tmp/tessera-replay-XXXXXX");
    assert_non_null(mkdtemp(g.dir));
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/tessera.db", g.dir);
    store_opts o;
    store_opts_default(&o);
    o.queue_capacity = 1 << 16; /* the test ticks far faster than 20 Hz */
    store *st = NULL;
    assert_int_equal(store_open_opts(&st, url, &o, NULL), STORE_OK);
    int applied = 0;
    assert_int_equal(store_migrate_up(st, &applied), STORE_OK);
    assert_int_equal(store_start(st), STORE_OK);
    for (int i = 0; i < h->n_shards; i++)
        sim_shard_set_store(h->shards[i], st);

    core_rng rng;
    core_rng_seed(&rng, 42);
    h_sess *p[48];
    int n = 0;
    for (int i = 0; i < 16; i++, n++)
        p[n] = h_join(h, "border", 490.0f + (float)(i % 4) * 9.0f, 280.0f + (float)(i / 4) * 9.0f);
    for (int i = 0; i < 16; i++, n++)
        p[n] = h_join(h, "cell", 240.0f + (float)(i % 4) * 9.0f, 680.0f + (float)(i / 4) * 9.0f);
    for (int i = 0; i < 16; i++, n++)
        p[n] = h_join(h, "knot", 470.0f + core_rng_unit(&rng) * 80.0f,
                      730.0f + core_rng_unit(&rng) * 80.0f);
    bool gone[48] = {false};
    for (int t = 0; t < TICKS; t++) {
        if (t == 110 || t == 130) {
            /* a dropped connection stops its player (a SET record), a
             * quit removes it at the drain (LEAVE), a late join arrives */
            int i = t == 110 ? 1 : 17;
            proto_leave l = {p[i]->session_id, p[i]->entity_id};
            core_buf b;
            core_buf_init(&b);
            if (t == 110)
                proto_bus_detach_write(&b, &l);
            else
                proto_bus_leave_write(&b, &l);
            bus_send(h->b, BUS_EP_SHARD(p[i]->route), b.data, b.len);
            core_buf_free(&b);
            gone[i] = true;
            h_join(h, "late", 300.0f + (float)t, 500.0f);
        }
        for (int i = 0; i < n; i++) {
            if (gone[i] || !p[i]->entity_id || t % 20 != i % 20)
                continue;
            float dx, dy;
            if (i < 32) { /* shuttle in x, some drift in y */
                dx = ((t / 20 + i) % 2) ? 1.0f : -1.0f;
                dy = (core_rng_unit(&rng) - 0.5f) * 0.5f;
            } else { /* toward the corner (512, 768) */
                sim_entity_info e[512];
                size_t k = h_entities(h, e, 512);
                dx = dy = 0;
                for (size_t j = 0; j < k; j++)
                    if (e[j].id == p[i]->entity_id) {
                        dx = 512.0f - e[j].x;
                        dy = 768.0f - e[j].y;
                    }
                float d = sqrtf(dx * dx + dy * dy);
                dx = d > 1 ? dx / d : 0;
                dy = d > 1 ? dy / d : 0;
            }
            float len = sqrtf(dx * dx + dy * dy);
            if (len > 1) {
                dx /= len;
                dy /= len;
            }
            h_input(h, p[i], dx, dy);
        }
        assert_int_equal(h_step(h), 0);
    }
    for (uint32_t c = 0; c < N_CELLS; c++)
        g.hash[c] = sim_shard_cell_hash(h->shards[h->cells.owner[c]], c, &g.n[c]);
    for (int i = 0; i < h->n_shards; i++) {
        sim_stats s;
        sim_shard_stats(h->shards[i], &s);
        g.handoffs += s.handoffs_out;
    }
    store_close(st); /* commits everything still queued */
    for (int i = 0; i < h->n_shards; i++) {
        sim_shard_destroy(h->shards[i]);
        h->shards[i] = NULL;
    }
}

static int group_setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    run_live();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_free(&g.h);
    sh("rm -rf %s", g.dir);
    return 0;
}

static int copy_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/tessera-replay-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    sh("cp %s/tessera.db* %s/", g.dir, g_dir);
    return 0;
}

static int copy_teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", g_dir);
    return 0;
}

static store *open_copy(void)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/tessera.db", g_dir);
    store *st = NULL;
    assert_int_equal(store_open(&st, url, NULL), STORE_OK);
    return st;
}

static sqlite3 *open_sql(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/tessera.db", g_dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static void sql(sqlite3 *db, const char *q)
{
    char *err = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", q, err);
}

/* Flips one byte in the middle of a blob column of the row selected by
 * where (a whole SQL condition). Returns the row's tick. */
static int64_t corrupt(sqlite3 *db, const char *table, const char *col, const char *where)
{
    char q[512];
    snprintf(q, sizeof q, "SELECT rowid, tick, %s FROM %s WHERE %s", col, table, where);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t rowid = sqlite3_column_int64(st, 0), tick = sqlite3_column_int64(st, 1);
    int len = sqlite3_column_bytes(st, 2);
    assert_true(len > 8);
    uint8_t *data = malloc((size_t)len);
    memcpy(data, sqlite3_column_blob(st, 2), (size_t)len);
    sqlite3_finalize(st);
    data[len / 2] ^= 0x40;
    snprintf(q, sizeof q, "UPDATE %s SET %s = ? WHERE rowid = ?", table, col);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, data, len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, rowid);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    free(data);
    return tick;
}

/* Replays every cell; returns how many were checked. */
static int replay_all(store *st, sim_replay_report *sum, uint32_t min_ticks)
{
    int checked = 0;
    memset(sum, 0, sizeof *sum);
    for (uint32_t c = 0; c < N_CELLS; c++) {
        sim_replay_report r;
        int rc = sim_replay_cell(st, &g.h.cfg, &g.h.map, c, 0, &r);
        if (r.is_never_active) {
            assert_int_equal(g.n[c], 0);
            continue;
        }
        if (rc != 0)
            fail_msg("%s", r.msg);
        print_message("%s\n", r.msg);
        assert_non_null(strstr(r.msg, "matches the live shard"));
        assert_true(r.hash == g.hash[c]);
        assert_int_equal(r.n_entities, g.n[c]);
        if (g.n[c])
            assert_int_equal(r.last_tick, TICKS);
        assert_true(r.n_ticks >= min_ticks || r.last_tick - (uint32_t)r.snapshot_tick < min_ticks);
        sum->n_ticks += r.n_ticks;
        sum->n_arrive += r.n_arrive;
        sum->n_leave += r.n_leave;
        sum->n_input += r.n_input;
        sum->n_contact += r.n_contact;
        sum->n_set += r.n_set;
        checked++;
    }
    return checked;
}

static void test_replay_every_cell_from_latest_snapshot(void **state)
{
    (void)state;
    assert_true(g.handoffs >= 10); /* walkers crossed the shard border */
    store *st = open_copy();
    sim_replay_report sum;
    assert_int_equal(replay_all(st, &sum, 0), N_CELLS);
    /* the run exercised every kind of record */
    assert_true(sum.n_arrive > 20 && sum.n_leave > 20);
    assert_true(sum.n_input > 20 && sum.n_contact > 10);
    store_close(st);
}

static void test_replay_every_cell_from_earlier_snapshot(void **state)
{
    (void)state;
    /* keep only each cell's snapshots of its first 100 ticks */
    sqlite3 *db = open_sql();
    sql(db, "DELETE FROM cell_snapshots WHERE tick > (SELECT MIN(tick) FROM cell_snapshots s "
            "WHERE s.cell = cell_snapshots.cell) + 100");
    sqlite3_close(db);
    store *st = open_copy();
    sim_replay_report sum;
    assert_int_equal(replay_all(st, &sum, 190), N_CELLS);
    assert_true(sum.n_ticks > 16 * 190);
    assert_true(sum.n_set >= 1); /* the detached player stopped */
    /* --until-tick stops early, still checked at every tick on the way */
    for (uint32_t c = 0; c < N_CELLS; c++) {
        sim_replay_report r;
        int rc = sim_replay_cell(st, &g.h.cfg, &g.h.map, c, 200, &r);
        if (r.is_never_active)
            continue;
        if (rc != 0)
            fail_msg("%s", r.msg);
        assert_true(r.last_tick <= 200 && r.last_tick >= (uint32_t)r.snapshot_tick);
    }
    store_close(st);
}

static void test_hole_in_the_log_is_refused(void **state)
{
    (void)state;
    /* a record lost after the newest snapshot of the busiest cell */
    uint32_t c = 0;
    for (uint32_t k = 1; k < N_CELLS; k++)
        if (g.n[k] > g.n[c])
            c = k;
    char q[512];
    snprintf(q, sizeof q,
             "DELETE FROM events WHERE seq = (SELECT seq FROM events WHERE cell = %u AND kind = "
             "%d AND tick > (SELECT MAX(tick) FROM cell_snapshots WHERE cell = %u) ORDER BY seq "
             "LIMIT 1 OFFSET 1)",
             c, SIM_LOG_EVENT_KIND, c);
    sqlite3 *db = open_sql();
    sql(db, q);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);
    store *st = open_copy();
    sim_replay_report r;
    int rc = sim_replay_cell(st, &g.h.cfg, &g.h.map, c, 0, &r);
    print_message("%s\n", r.msg);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(r.msg, "hole in the log"));
    store_close(st);
}

static uint32_t busiest_cell(void)
{
    uint32_t best = 0;
    for (uint32_t c = 1; c < N_CELLS; c++)
        if (g.n[c] > g.n[best])
            best = c;
    return best;
}

static void test_corrupt_snapshot_falls_back(void **state)
{
    (void)state;
    uint32_t c = busiest_cell();
    char where[128];
    snprintf(where, sizeof where,
             "cell = %u AND tick = (SELECT MAX(tick) FROM cell_snapshots WHERE cell = %u)", c, c);
    sqlite3 *db = open_sql();
    corrupt(db, "cell_snapshots", "data", where);
    sqlite3_close(db);
    store *st = open_copy();
    sim_replay_report r;
    int rc = sim_replay_cell(st, &g.h.cfg, &g.h.map, c, 0, &r);
    print_message("%s\n", r.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(r.n_refused, 1);
    assert_non_null(strstr(r.msg, "1 refused: checksum mismatch"));
    assert_true(r.hash == g.hash[c]);
    assert_int_equal(r.last_tick, TICKS);
    assert_true(r.n_ticks >= 20); /* from the snapshot before: a period back at least */
    store_close(st);
}

static void test_corrupt_log_record_is_refused(void **state)
{
    (void)state;
    uint32_t c = busiest_cell();
    char where[256];
    snprintf(where, sizeof where,
             "cell = %u AND kind = %d AND tick > (SELECT MAX(tick) FROM cell_snapshots WHERE "
             "cell = %u) ORDER BY seq LIMIT 1",
             c, SIM_LOG_EVENT_KIND, c);
    sqlite3 *db = open_sql();
    corrupt(db, "events", "payload", where);
    sqlite3_close(db);
    store *st = open_copy();
    sim_replay_report r;
    int rc = sim_replay_cell(st, &g.h.cfg, &g.h.map, c, 0, &r);
    print_message("%s\n", r.msg);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(r.msg, "checksum mismatch"));
    assert_null(strstr(r.msg, "matches"));
    store_close(st);

    /* the command says the same, with exit status 1; a sound cell is 0 */
    char cell_arg[16], good_arg[16], dir_arg[96];
    snprintf(cell_arg, sizeof cell_arg, "%u", c);
    uint32_t good = (c + 1) % N_CELLS;
    while (!g.n[good])
        good = (good + 1) % N_CELLS;
    snprintf(good_arg, sizeof good_arg, "%u", good);
    snprintf(dir_arg, sizeof dir_arg, "--data-dir=%s", g_dir);
    char *argv[] = {"--cell",    cell_arg,      dir_arg,  "--world-w", "1024",
                    "--world-h", "1024",        "--seed", "11",        "--map-file",
                    "",          "--log-level", "error",  NULL};
    assert_int_equal(sim_replay_main(13, argv), 1);
    char *argv2[] = {"--cell",    good_arg,      dir_arg,  "--world-w", "1024",
                     "--world-h", "1024",        "--seed", "11",        "--map-file",
                     "",          "--log-level", "error",  NULL};
    assert_int_equal(sim_replay_main(13, argv2), 0);
    /* another world is refused, not replayed */
    char *argv3[] = {"--cell",    good_arg,      dir_arg,  "--world-w", "1024",
                     "--world-h", "1024",        "--seed", "12",        "--map-file",
                     "",          "--log-level", "error",  NULL};
    assert_int_equal(sim_replay_main(13, argv3), 2);
}

/* Every strict prefix of a valid record is refused by its decoder, and so
 * is any unknown record type. Also writes the fuzz seed corpus when
 * TESSERA_WRITE_CORPUS names a folder. */
static void test_decoders_refuse_truncation(void **state)
{
    (void)state;
    sqlite3 *db = open_sql();
    sqlite3_stmt *st;
    const char *corpus = getenv("TESSERA_WRITE_CORPUS");
    const char *q[2] = {"SELECT data FROM cell_snapshots ORDER BY length(data) DESC LIMIT 3",
                        "SELECT payload FROM events ORDER BY length(payload) DESC LIMIT 3"};
    int n_seen = 0;
    for (int kind = 0; kind < 2; kind++) {
        assert_int_equal(sqlite3_prepare_v2(db, q[kind], -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const uint8_t *p = sqlite3_column_blob(st, 0);
            size_t len = (size_t)sqlite3_column_bytes(st, 0);
            char err[160];
            sim_snap sn;
            int ok = kind ? sim_tl_validate(p, len, err, sizeof err)
                          : sim_snap_decode(&sn, p, len, err, sizeof err);
            assert_int_equal(ok, 0);
            if (!kind)
                sim_snap_free(&sn);
            for (size_t cut = 0; cut < len; cut++) {
                int rc = kind ? sim_tl_validate(p, cut, err, sizeof err)
                              : sim_snap_decode(&sn, p, cut, err, sizeof err);
                assert_int_equal(rc, -1);
            }
            if (corpus) { /* byte 0 picks the decoder in fuzz_snapshot.c */
                char path[256];
                snprintf(path, sizeof path, "%s/%s-%d", corpus, kind ? "ticklog" : "snapshot",
                         n_seen);
                FILE *f = fopen(path, "wb");
                assert_non_null(f);
                fputc(kind, f);
                fwrite(p, 1, len, f);
                fclose(f);
            }
            n_seen++;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    assert_int_equal(n_seen, 6);
    /* a record type nobody knows */
    uint8_t bad[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 5, 42};
    char err[160];
    assert_int_equal(sim_tl_validate(bad, sizeof bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown record type"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_every_cell_from_latest_snapshot, copy_setup,
                                        copy_teardown),
        cmocka_unit_test_setup_teardown(test_replay_every_cell_from_earlier_snapshot, copy_setup,
                                        copy_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_snapshot_falls_back, copy_setup,
                                        copy_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_log_record_is_refused, copy_setup,
                                        copy_teardown),
        cmocka_unit_test_setup_teardown(test_hole_in_the_log_is_refused, copy_setup, copy_teardown),
        cmocka_unit_test_setup_teardown(test_decoders_refuse_truncation, copy_setup, copy_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
