/* sim_move.c - movement systems: NPC wandering, integration, clamping to
 * the world, pushing out of static obstacles, and circle collision between
 * entities. Owned entities only; ghosts are moved by their owner.
 *
 * Everything here is a function of each entity's own state, the tick, the
 * world seed and the bodies within collision range (positions after
 * integration), never of slot order or of the shard's RNG: the replay of a
 * single cell (sim_replay.c) runs this very code on a world that holds
 * only that cell and its logged outside contacts, and must land on the
 * same bits. */
#include <math.h>
#include <stdlib.h>

#include "core_hash.h"
#include "core_log.h"
#include "sim_int.h"

#define COL_NEIGH_MAX 64 /* neighbours examined per entity per tick */

/* New heading every 1-4 s, a quarter of the time standing still, drawn
 * from a hash of (world seed, entity id, tick) so no RNG state is needed
 * to replay it. */
void sim_npc_wander(sim_shard *s)
{
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    for (uint32_t i = 0; i < s->n_used; i++) {
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE ||
            s->kind[i] != PROTO_KIND_NPC)
            continue;
        if (s->tick < s->wander_tick[i])
            continue;
        uint64_t k = s->cfg->seed ^ (((uint64_t)s->id[i] << 32) | s->tick);
        uint64_t h1 = core_splitmix64(&k), h2 = core_splitmix64(&k);
        float a = (float)(uint32_t)(h1 >> 40) * (1.0f / 16777216.0f) * 6.2831853f;
        bool stand = (h2 & 3) == 0;
        s->dir_x[i] = stand ? 0.0f : cosf(a);
        s->dir_y[i] = stand ? 0.0f : sinf(a);
        s->wander_tick[i] = s->tick + hz + (uint32_t)(((h2 >> 32) * (uint64_t)(3 * hz)) >> 32);
    }
}

static inline void clamp_world(const sim_shard *s, float *x, float *y)
{
    float r = (float)s->cfg->entity_radius;
    float w = (float)s->cells->world_w, h = (float)s->cells->world_h;
    if (!(*x >= r)) /* also NaN */
        *x = r;
    if (*x > w - r)
        *x = w - r;
    if (!(*y >= r))
        *y = r;
    if (*y > h - r)
        *y = h - r;
}

void sim_clamp_world(const sim_shard *s, float *x, float *y)
{
    clamp_world(s, x, y);
}

void sim_push_out_of_obstacles(sim_shard *s, float *x, float *y)
{
    clamp_world(s, x, y);
    if (!s->obs_list)
        return;
    int bx = (int)(*x / s->obs_bucket), by = (int)(*y / s->obs_bucket);
    if (bx < 0 || by < 0 || bx >= (int)s->obs_nx || by >= (int)s->obs_ny)
        return;
    size_t b = (size_t)by * s->obs_nx + (size_t)bx;
    float er = (float)s->cfg->entity_radius;
    for (uint32_t k = s->obs_start[b]; k < s->obs_start[b + 1]; k++) {
        const proto_obstacle *o = &s->map->obstacles[s->obs_list[k]];
        float dx = *x - o->x, dy = *y - o->y;
        float min = o->r + er;
        float d2 = dx * dx + dy * dy;
        if (d2 >= min * min)
            continue;
        float d = sqrtf(d2);
        if (d < 1e-4f) {
            dx = 1.0f;
            dy = 0.0f;
            d = 1.0f;
        }
        *x = o->x + dx / d * min;
        *y = o->y + dy / d * min;
    }
    clamp_world(s, x, y);
}

static void *grow_array(void *p, size_t n, size_t size)
{
    p = realloc(p, n * size);
    if (!p)
        core_die("out of memory");
    return p;
}

/* The displacement that pushes owned entity i out of every body within two
 * radii, from positions as they stand after integration: nothing moves
 * until every displacement is known (a Jacobi step), so the result does
 * not depend on which entity was processed first. In-range neighbours are
 * summed in ascending id order (the first COL_NEIGH_MAX of them), so the
 * float sum depends only on which bodies are in range and where. */
static void collide_disp(sim_shard *s, uint32_t i, float *out_x, float *out_y)
{
    float min = 2.0f * (float)s->cfg->entity_radius;
    if (s->kind[i] == PROTO_KIND_ITEM) { /* items lie still and block nobody */
        *out_x = *out_y = 0.0f;
        return;
    }
    size_t n =
        spatial_grid_collect(s->col_grid, s->x[i], s->y[i], min, s->col_cand, s->col_cand_cap);
    if (n > s->col_cand_cap) {
        /* never truncate: a replay's grid holds other bodies, and a cut
         * made in bucket order would drop different neighbours */
        s->col_cand_cap = n * 2;
        s->col_cand = grow_array(s->col_cand, s->col_cand_cap, sizeof *s->col_cand);
        n = spatial_grid_collect(s->col_grid, s->x[i], s->y[i], min, s->col_cand, s->col_cand_cap);
    }
    if (n > s->col_near_cap) {
        s->col_near_cap = n * 2;
        s->col_near = grow_array(s->col_near, s->col_near_cap, sizeof *s->col_near);
    }
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t o = s->col_cand[k];
        if (o == i || !(s->flags[o] & SIM_F_ALIVE) || s->kind[o] == PROTO_KIND_ITEM)
            continue;
        float dx = s->x[i] - s->x[o], dy = s->y[i] - s->y[o];
        if (dx * dx + dy * dy >= min * min)
            continue;
        /* insertion by id: typically a handful of neighbours */
        uint64_t key = ((uint64_t)s->id[o] << 32) | o;
        size_t at = m++;
        for (; at > 0 && s->col_near[at - 1] > key; at--)
            s->col_near[at] = s->col_near[at - 1];
        s->col_near[at] = key;
        if (s->log)
            sim_log_contact(s, i, o);
    }
    if (m > COL_NEIGH_MAX)
        m = COL_NEIGH_MAX;
    float sx = 0.0f, sy = 0.0f;
    for (size_t k = 0; k < m; k++) {
        uint32_t o = (uint32_t)s->col_near[k];
        float dx = s->x[i] - s->x[o], dy = s->y[i] - s->y[o];
        float d = sqrtf(dx * dx + dy * dy);
        if (d < 1e-4f) {
            /* coincident: separate along a direction fixed by the ids */
            float a = (float)((s->id[i] ^ s->id[o]) % 628) * 0.01f;
            dx = cosf(a);
            dy = sinf(a);
            d = 1.0f;
            if (s->id[i] < s->id[o]) {
                dx = -dx;
                dy = -dy;
            }
        }
        float push = (min - (d < min ? d : min)) * 0.5f;
        sx += dx / d * push;
        sy += dy / d * push;
    }
    *out_x = sx;
    *out_y = sy;
}

void sim_move(sim_shard *s)
{
    if (s->log)
        sim_log_step(s);
    float dt = s->dt;
    for (uint32_t i = 0; i < s->n_used; i++) {
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        if (s->dir_x[i] == 0.0f && s->dir_y[i] == 0.0f)
            continue;
        float x = s->x[i] + s->dir_x[i] * s->speed[i] * dt;
        float y = s->y[i] + s->dir_y[i] * s->speed[i] * dt;
        clamp_world(s, &x, &y);
        sim_push_out_of_obstacles(s, &x, &y);
        s->x[i] = x;
        s->y[i] = y;
        spatial_grid_move(s->col_grid, i, x, y);
    }
    if (s->col_cap < s->n_used) {
        s->col_cap = s->cap;
        s->col_dx = grow_array(s->col_dx, s->col_cap, sizeof *s->col_dx);
        s->col_dy = grow_array(s->col_dy, s->col_cap, sizeof *s->col_dy);
    }
    for (uint32_t i = 0; i < s->n_used; i++)
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE)
            collide_disp(s, i, &s->col_dx[i], &s->col_dy[i]);
    for (uint32_t i = 0; i < s->n_used; i++) {
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        float x = s->x[i] + s->col_dx[i], y = s->y[i] + s->col_dy[i];
        if (x == s->x[i] && y == s->y[i])
            continue;
        clamp_world(s, &x, &y);
        sim_push_out_of_obstacles(s, &x, &y);
        s->x[i] = x;
        s->y[i] = y;
        spatial_grid_move(s->col_grid, i, x, y);
    }
    for (uint32_t i = 0; i < s->n_used; i++)
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE)
            spatial_grid_move(s->aoi_grid, i, s->x[i], s->y[i]);
}
