/* spatial_cellmap.c - the cell -> shard ownership map. */
#include <stdlib.h>

#include "core_log.h"
#include "spatial.h"

int spatial_cellmap_init(spatial_cellmap *m, uint32_t world_w, uint32_t world_h, uint16_t cell_size,
                         uint8_t n_shards)
{
    if (cell_size == 0 || n_shards == 0 || world_w == 0 || world_h == 0)
        return -1;
    uint32_t cx = (world_w + cell_size - 1) / cell_size;
    uint32_t cy = (world_h + cell_size - 1) / cell_size;
    if (cx > 65535 || cy > 65535 || cx * cy > 65536)
        return -1;
    m->world_w = world_w;
    m->world_h = world_h;
    m->cell_size = cell_size;
    m->cells_x = (uint16_t)cx;
    m->cells_y = (uint16_t)cy;
    m->n_shards = n_shards;
    m->epoch = 1;
    m->owner = calloc((size_t)cx * cy, 1);
    if (!m->owner)
        core_die("out of memory");
    for (uint32_t y = 0; y < cy; y++)
        for (uint32_t x = 0; x < cx; x++)
            m->owner[y * cx + x] = (uint8_t)((uint64_t)x * n_shards / cx);
    return 0;
}

void spatial_cellmap_free(spatial_cellmap *m)
{
    free(m->owner);
    m->owner = NULL;
}
