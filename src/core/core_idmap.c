/* core_idmap.c - see core_idmap.h. */
#include "core_idmap.h"

#include <stdlib.h>

#include "core_hash.h"
#include "core_log.h"

void core_idmap_init(core_idmap *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->n = 0;
}

void core_idmap_free(core_idmap *m)
{
    free(m->keys);
    free(m->vals);
    core_idmap_init(m);
}

static void grow(core_idmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint32_t *ok = m->keys, *ov = m->vals;
    size_t ocap = m->cap;
    m->keys = calloc(ncap, sizeof *m->keys);
    m->vals = calloc(ncap, sizeof *m->vals);
    if (!m->keys || !m->vals)
        core_die("out of memory");
    m->cap = ncap;
    m->n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (ok[i])
            core_idmap_put(m, ok[i], ov[i]);
    free(ok);
    free(ov);
}

void core_idmap_put(core_idmap *m, uint32_t key, uint32_t val)
{
    if (key == 0)
        core_die("core_idmap: key 0");
    if ((m->n + 1) * 4 > m->cap * 3)
        grow(m);
    size_t mask = m->cap - 1;
    for (size_t i = core_mix32(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return;
        }
        if (m->keys[i] == 0) {
            m->keys[i] = key;
            m->vals[i] = val;
            m->n++;
            return;
        }
    }
}

uint32_t core_idmap_get(const core_idmap *m, uint32_t key)
{
    if (m->cap == 0 || key == 0)
        return CORE_IDMAP_NONE;
    size_t mask = m->cap - 1;
    for (size_t i = core_mix32(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] == 0)
            return CORE_IDMAP_NONE;
    }
}

int core_idmap_del(core_idmap *m, uint32_t key)
{
    if (m->cap == 0 || key == 0)
        return 0;
    size_t mask = m->cap - 1;
    size_t i = core_mix32(key) & mask;
    while (m->keys[i] != key) {
        if (m->keys[i] == 0)
            return 0;
        i = (i + 1) & mask;
    }
    /* Backward-shift: pull later entries of the cluster into the hole when
     * their home position is not between the hole and themselves. */
    size_t j = i;
    for (;;) {
        m->keys[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (m->keys[j] == 0) {
                m->n--;
                return 1;
            }
            size_t home = core_mix32(m->keys[j]) & mask;
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                continue;
            break;
        }
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
}

void core_idmap_remap(core_idmap *m, const uint32_t *to, uint32_t n)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] && m->vals[i] < n && to[m->vals[i]] != CORE_IDMAP_NONE)
            m->vals[i] = to[m->vals[i]];
}
