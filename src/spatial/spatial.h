/* spatial.h - where things are: the cell map (which shard owns which
 * region cell) and the spatial hash grid a shard uses for neighbour
 * queries.
 *
 * The cell map is the single source of truth for ownership. In `tessera
 * serve` it is built once and then only read (any thread); every change
 * bumps epoch. The grid belongs to one shard thread. */
#ifndef SPATIAL_H
#define SPATIAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- cell map ---- */
typedef struct spatial_cellmap {
    uint32_t world_w, world_h; /* units */
    uint16_t cell_size;        /* units per cell side */
    uint16_t cells_x, cells_y; /* ceil(world / cell_size) */
    uint8_t n_shards;
    uint64_t epoch; /* bumped on every ownership change */
    uint8_t *owner; /* cells_x * cells_y shard indexes, row-major by y */
} spatial_cellmap;

/* Splits the world into contiguous vertical strips of cell columns, one
 * per shard (shard i owns columns [i*cx/S, (i+1)*cx/S)). Returns 0 or -1
 * on bad sizes. */
int spatial_cellmap_init(spatial_cellmap *m, uint32_t world_w, uint32_t world_h, uint16_t cell_size,
                         uint8_t n_shards);
void spatial_cellmap_free(spatial_cellmap *m);

/* Cell index of a point; points outside the world are clamped in. */
static inline uint32_t spatial_cellmap_cell(const spatial_cellmap *m, float x, float y)
{
    /* total over all floats: NaN and out-of-range values clamp in before
     * the conversion, so the cast can never overflow */
    float fx = x / (float)m->cell_size, fy = y / (float)m->cell_size;
    int cx = fx >= 0.0f ? (fx < (float)m->cells_x ? (int)fx : m->cells_x - 1) : 0;
    int cy = fy >= 0.0f ? (fy < (float)m->cells_y ? (int)fy : m->cells_y - 1) : 0;
    return (uint32_t)cy * m->cells_x + (uint32_t)cx;
}

static inline int spatial_cellmap_owner(const spatial_cellmap *m, float x, float y)
{
    return m->owner[spatial_cellmap_cell(m, x, y)];
}

/* ---- spatial hash grid ----
 * A uniform grid of square buckets over a rectangle. Items are small
 * integer handles (the shard's entity slots). Each bucket is a singly
 * linked list threaded through per-item arrays, so insert, remove and move
 * are O(1) and memory is two u32 per item plus one u32 per bucket. */
typedef struct spatial_grid spatial_grid;

/* Covers [0,w) x [0,h) with buckets of side bucket; max_items is the
 * largest handle + 1 (grows on demand). */
spatial_grid *spatial_grid_create(float w, float h, float bucket, uint32_t max_items);
void spatial_grid_destroy(spatial_grid *g); /* NULL is a no-op */

void spatial_grid_insert(spatial_grid *g, uint32_t item, float x, float y);
void spatial_grid_remove(spatial_grid *g, uint32_t item);
/* Moves item to (x, y); cheap when it stays in its bucket. */
void spatial_grid_move(spatial_grid *g, uint32_t item, float x, float y);

/* Whether item is in the grid. */
bool spatial_grid_contains(const spatial_grid *g, uint32_t item);

/* Renumbers the items: item order[k] becomes item k for k < n; items not
 * in order are dropped. Cheaper than removing and inserting all. */
void spatial_grid_renumber(spatial_grid *g, const uint32_t *order, uint32_t n);

/* Calls fn(ctx, item) for every item in the buckets that intersect the
 * square [x-r, x+r] x [y-r, y+r]. The caller filters by exact distance.
 * fn must not modify the grid. */
typedef void (*spatial_visit_fn)(void *ctx, uint32_t item);
void spatial_grid_query(const spatial_grid *g, float x, float y, float r, spatial_visit_fn fn,
                        void *ctx);

/* Appends to out (capacity cap) the items in buckets intersecting the
 * square; returns how many there were (may exceed cap: then only cap were
 * written). Faster than the callback form in the hot AOI path. */
size_t spatial_grid_collect(const spatial_grid *g, float x, float y, float r, uint32_t *out,
                            size_t cap);
#endif
