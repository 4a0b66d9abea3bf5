/* sim_map.c - static obstacle map files and the obstacle bucket index. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"

#define MAP_MAX_OBSTACLES 65535

int sim_map_load(sim_map *m, const char *path, char *err, size_t err_len)
{
    memset(m, 0, sizeof *m);
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot open map %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char word[32];
        float x, y, r;
        char extra;
        if (sscanf(line, " %31s", word) != 1)
            continue;
        if (strcmp(word, "circle") != 0 ||
            sscanf(line, " circle %f %f %f %c", &x, &y, &r, &extra) != 3 || !isfinite(x) ||
            !isfinite(y) || !isfinite(r) || r <= 0 || r > 1000) {
            snprintf(err, err_len, "%s:%d: expected `circle X Y R` with 0 < R <= 1000", path,
                     lineno);
            fclose(f);
            sim_map_free(m);
            return -1;
        }
        if (m->n_obstacles == MAP_MAX_OBSTACLES) {
            snprintf(err, err_len, "%s:%d: more than %d obstacles", path, lineno,
                     MAP_MAX_OBSTACLES);
            fclose(f);
            sim_map_free(m);
            return -1;
        }
        if (m->n_obstacles == cap) {
            cap = cap ? cap * 2 : 64;
            proto_obstacle *p = realloc(m->obstacles, cap * sizeof *p);
            if (!p)
                core_die("out of memory");
            m->obstacles = p;
        }
        m->obstacles[m->n_obstacles++] = (proto_obstacle){x, y, r};
    }
    fclose(f);
    return 0;
}

void sim_map_free(sim_map *m)
{
    free(m->obstacles);
    m->obstacles = NULL;
    m->n_obstacles = 0;
}

/* Buckets each obstacle into every coarse bucket its circle (grown by the
 * entity radius) touches, as a CSR list: obs_start[b]..obs_start[b+1]. */
int sim_obstacles_index(sim_shard *s)
{
    const sim_map *map = s->map;
    float bucket = 64.0f;
    s->obs_bucket = bucket;
    s->obs_nx = (uint32_t)(s->cells->world_w / bucket) + 1;
    s->obs_ny = (uint32_t)(s->cells->world_h / bucket) + 1;
    size_t nb = (size_t)s->obs_nx * s->obs_ny;
    s->obs_start = calloc(nb + 1, sizeof *s->obs_start);
    if (!s->obs_start)
        core_die("out of memory");
    float er = (float)s->cfg->entity_radius;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t *fill = NULL;
        if (pass == 1) {
            for (size_t b = 0; b < nb; b++)
                s->obs_start[b + 1] += s->obs_start[b];
            s->obs_list = malloc((s->obs_start[nb] + 1) * sizeof *s->obs_list);
            fill = calloc(nb, sizeof *fill);
            if (!s->obs_list || !fill)
                core_die("out of memory");
        }
        for (uint16_t i = 0; i < (map ? map->n_obstacles : 0); i++) {
            const proto_obstacle *o = &map->obstacles[i];
            float rr = o->r + er;
            int x0 = (int)floorf((o->x - rr) / bucket), x1 = (int)floorf((o->x + rr) / bucket);
            int y0 = (int)floorf((o->y - rr) / bucket), y1 = (int)floorf((o->y + rr) / bucket);
            for (int by = y0 < 0 ? 0 : y0; by <= y1 && by < (int)s->obs_ny; by++)
                for (int bx = x0 < 0 ? 0 : x0; bx <= x1 && bx < (int)s->obs_nx; bx++) {
                    size_t b = (size_t)by * s->obs_nx + (size_t)bx;
                    if (pass == 0)
                        s->obs_start[b + 1]++;
                    else
                        s->obs_list[s->obs_start[b] + fill[b]++] = i;
                }
        }
        free(fill);
    }
    if (s->obs_start[nb] == 0) { /* no obstacles: movement skips the lookup */
        free(s->obs_list);
        s->obs_list = NULL;
    }
    return 0;
}
