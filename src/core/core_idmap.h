/* core_idmap.h - open-addressing hash map from nonzero u32 keys to u32
 * values (linear probing, backward-shift deletion, no tombstones). Used to
 * find a shard slot from a global entity id and a connection from a
 * session id. One thread at a time. */
#ifndef CORE_IDMAP_H
#define CORE_IDMAP_H
#include <stddef.h>
#include <stdint.h>

#define CORE_IDMAP_NONE UINT32_MAX

typedef struct core_idmap {
    uint32_t *keys; /* 0 = empty */
    uint32_t *vals;
    size_t cap; /* power of two */
    size_t n;   /* live entries; kept <= 3 / 4 of cap (8 bytes a slot: 11-21 an entry) */
} core_idmap;

void core_idmap_init(core_idmap *m);
void core_idmap_free(core_idmap *m);
/* Inserts or replaces. key must be nonzero. */
void core_idmap_put(core_idmap *m, uint32_t key, uint32_t val);
/* Value for key, or CORE_IDMAP_NONE. */
uint32_t core_idmap_get(const core_idmap *m, uint32_t key);
/* Removes key if present; returns 1 if it was. */
int core_idmap_del(core_idmap *m, uint32_t key);
/* Rewrites every value v < n as to[v] (one pass over the table; values
 * with to[v] == CORE_IDMAP_NONE are left alone). For renumberings. */
void core_idmap_remap(core_idmap *m, const uint32_t *to, uint32_t n);
#endif
