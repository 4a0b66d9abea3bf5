/* spatial_grid.c - uniform hash grid with intrusive bucket lists.
 *
 * Layout: head[bucket] is the first item of the bucket (or NONE); next[item]
 * and prev[item] thread the list; where[item] is the item's bucket (NONE
 * when not inserted). Doubly linked so remove and move are O(1). Buckets
 * are row-major; coordinates outside the rectangle clamp to the edge
 * buckets so nothing is ever lost. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "spatial.h"

#define NONE UINT32_MAX

struct spatial_grid {
    float inv_bucket;              /* 1 / bucket side */
    uint32_t nx, ny;               /* buckets across and down */
    uint32_t *head;                /* nx * ny */
    uint32_t *next, *prev, *where; /* per item, cap entries */
    uint32_t cap;
};

static void grow_items(spatial_grid *g, uint32_t need)
{
    uint32_t ncap = g->cap ? g->cap : 1024;
    while (ncap < need)
        ncap *= 2;
    g->next = realloc(g->next, ncap * sizeof *g->next);
    g->prev = realloc(g->prev, ncap * sizeof *g->prev);
    g->where = realloc(g->where, ncap * sizeof *g->where);
    if (!g->next || !g->prev || !g->where)
        core_die("out of memory");
    for (uint32_t i = g->cap; i < ncap; i++)
        g->where[i] = NONE;
    g->cap = ncap;
}

spatial_grid *spatial_grid_create(float w, float h, float bucket, uint32_t max_items)
{
    spatial_grid *g = calloc(1, sizeof *g);
    if (!g)
        core_die("out of memory");
    g->inv_bucket = 1.0f / bucket;
    g->nx = (uint32_t)(w / bucket) + 1;
    g->ny = (uint32_t)(h / bucket) + 1;
    g->head = malloc((size_t)g->nx * g->ny * sizeof *g->head);
    if (!g->head)
        core_die("out of memory");
    memset(g->head, 0xff, (size_t)g->nx * g->ny * sizeof *g->head);
    grow_items(g, max_items ? max_items : 1);
    return g;
}

void spatial_grid_destroy(spatial_grid *g)
{
    if (!g)
        return;
    free(g->head);
    free(g->next);
    free(g->prev);
    free(g->where);
    free(g);
}

static inline uint32_t clampi(int v, uint32_t n)
{
    if (v < 0)
        return 0;
    if ((uint32_t)v >= n)
        return n - 1;
    return (uint32_t)v;
}

/* Bucket coordinate of v: NaN and out-of-range values clamp to the edge
 * before the float-to-int conversion (which would overflow otherwise). */
static inline uint32_t coord(float v, float inv, uint32_t n)
{
    float f = v * inv;
    if (!(f >= 0.0f))
        return 0;
    if (f >= (float)n)
        return n - 1;
    return clampi((int)f, n);
}

static inline uint32_t bucket_of(const spatial_grid *g, float x, float y)
{
    return coord(y, g->inv_bucket, g->ny) * g->nx + coord(x, g->inv_bucket, g->nx);
}

static void link(spatial_grid *g, uint32_t item, uint32_t b)
{
    uint32_t h = g->head[b];
    g->next[item] = h;
    g->prev[item] = NONE;
    if (h != NONE)
        g->prev[h] = item;
    g->head[b] = item;
    g->where[item] = b;
}

static void unlink_item(spatial_grid *g, uint32_t item)
{
    uint32_t b = g->where[item];
    uint32_t n = g->next[item], p = g->prev[item];
    if (p != NONE)
        g->next[p] = n;
    else
        g->head[b] = n;
    if (n != NONE)
        g->prev[n] = p;
    g->where[item] = NONE;
}

void spatial_grid_insert(spatial_grid *g, uint32_t item, float x, float y)
{
    if (item >= g->cap)
        grow_items(g, item + 1);
    if (g->where[item] != NONE)
        unlink_item(g, item);
    link(g, item, bucket_of(g, x, y));
}

void spatial_grid_remove(spatial_grid *g, uint32_t item)
{
    if (item < g->cap && g->where[item] != NONE)
        unlink_item(g, item);
}

bool spatial_grid_contains(const spatial_grid *g, uint32_t item)
{
    return item < g->cap && g->where[item] != NONE;
}

void spatial_grid_move(spatial_grid *g, uint32_t item, float x, float y)
{
    uint32_t b = bucket_of(g, x, y);
    if (item < g->cap && g->where[item] == b)
        return;
    spatial_grid_insert(g, item, x, y);
}

void spatial_grid_renumber(spatial_grid *g, const uint32_t *order, uint32_t n)
{
    if (n > g->cap)
        grow_items(g, n);
    /* The lists are rebuilt rather than mapped: it needs no new arrays
     * (next, about to be rewritten, holds the new where meanwhile), and
     * fresh memory is page faults (M1: a million items). Lists come out
     * in ascending item order; nothing depends on the order in a bucket. */
    uint32_t *tmp = g->next;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t o = order[k];
        tmp[k] = o < g->cap ? g->where[o] : NONE;
    }
    memcpy(g->where, tmp, (size_t)n * sizeof *tmp);
    for (uint32_t k = n; k < g->cap; k++)
        g->where[k] = NONE;
    memset(g->head, 0xff, (size_t)g->nx * g->ny * sizeof *g->head);
    for (uint32_t k = n; k-- > 0;)
        if (g->where[k] != NONE)
            link(g, k, g->where[k]);
}

static void range(const spatial_grid *g, float x, float y, float r, uint32_t *x0, uint32_t *x1,
                  uint32_t *y0, uint32_t *y1)
{
    *x0 = coord(x - r, g->inv_bucket, g->nx);
    *x1 = coord(x + r, g->inv_bucket, g->nx);
    *y0 = coord(y - r, g->inv_bucket, g->ny);
    *y1 = coord(y + r, g->inv_bucket, g->ny);
}

void spatial_grid_query(const spatial_grid *g, float x, float y, float r, spatial_visit_fn fn,
                        void *ctx)
{
    uint32_t x0, x1, y0, y1;
    range(g, x, y, r, &x0, &x1, &y0, &y1);
    for (uint32_t by = y0; by <= y1; by++)
        for (uint32_t bx = x0; bx <= x1; bx++)
            for (uint32_t it = g->head[by * g->nx + bx]; it != NONE; it = g->next[it])
                fn(ctx, it);
}

size_t spatial_grid_collect(const spatial_grid *g, float x, float y, float r, uint32_t *out,
                            size_t cap)
{
    uint32_t x0, x1, y0, y1;
    range(g, x, y, r, &x0, &x1, &y0, &y1);
    size_t n = 0;
    for (uint32_t by = y0; by <= y1; by++)
        for (uint32_t bx = x0; bx <= x1; bx++)
            for (uint32_t it = g->head[by * g->nx + bx]; it != NONE; it = g->next[it]) {
                if (n < cap)
                    out[n] = it;
                n++;
            }
    return n;
}
