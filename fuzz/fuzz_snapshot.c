/* fuzz_snapshot.c - the cell snapshot and tick-log decoders (sim_log.h) on
 * arbitrary bytes. Byte 0 picks the decoder (even: snapshot, odd: tick
 * log); the rest is the record. A record that decodes must hold what the
 * decoder promises: ascending ids, finite values, a NUL-terminated name,
 * exactly one STEP before the final HASH. Seeds in corpus/snapshot/ come
 * from a real run (TESSERA_WRITE_CORPUS=dir build/sim_test_replay). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim_log.h"

/* Always checked: the fuzz build defines NDEBUG, which would turn CHECK()
 * and with it this target's properties into nothing. */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ent(const sim_ent_rec *e)
{
    CHECK(e->id != 0 && isfinite(e->x) && isfinite(e->y) && isfinite(e->speed));
    CHECK(memchr(e->name, 0, sizeof e->name) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[160];
    if (!(data[0] & 1)) {
        sim_snap sn;
        if (sim_snap_decode(&sn, data + 1, size - 1, err, sizeof err) == 0) {
            for (uint32_t i = 0; i < sn.n; i++) {
                check_ent(&sn.ents[i]);
                CHECK(i == 0 || sn.ents[i].id > sn.ents[i - 1].id);
            }
            sim_snap_free(&sn);
        } else {
            CHECK(err[0]);
        }
        return 0;
    }
    sim_tl_reader rd;
    int64_t prev;
    if (sim_tl_open(&rd, &prev, data + 1, size - 1, err, sizeof err) != 0)
        return 0;
    CHECK(prev >= 0);
    sim_tl_rec r;
    int rc, n_step = 0, n_hash = 0;
    while ((rc = sim_tl_next(&rd, &r, err, sizeof err)) == 1) {
        CHECK(n_hash == 0);
        if (r.type == SIM_TL_ARRIVE || r.type == SIM_TL_SET)
            check_ent(&r.ent);
        n_step += r.type == SIM_TL_STEP;
        n_hash += r.type == SIM_TL_HASH;
        if (r.type == SIM_TL_CONTACT)
            CHECK(n_step == 1 && isfinite(r.a) && isfinite(r.b));
    }
    if (rc == 0)
        CHECK(n_step == 1 && n_hash == 1);
    else
        CHECK(err[0]);
    return 0;
}
