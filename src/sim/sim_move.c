/* sim_move.c - movement systems: NPC wandering, integration, clamping to
 * the world, pushing out of static obstacles, and circle collision between
 * entities. Owned entities only; ghosts are moved by their owner. */
#include <math.h>

#include "sim_int.h"

#define COL_NEIGH_MAX 64 /* neighbours examined per entity per tick */

void sim_npc_wander(sim_shard *s)
{
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    for (uint32_t i = 0; i < s->n_used; i++) {
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE ||
            s->kind[i] != PROTO_KIND_NPC)
            continue;
        if (s->tick < s->wander_tick[i])
            continue;
        /* new heading every 1-4 s; a quarter of the time stand still */
        float a = core_rng_unit(&s->rng) * 6.2831853f;
        bool stand = core_rng_below(&s->rng, 4) == 0;
        s->dir_x[i] = stand ? 0.0f : cosf(a);
        s->dir_y[i] = stand ? 0.0f : sinf(a);
        s->wander_tick[i] = s->tick + hz + core_rng_below(&s->rng, 3 * hz);
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

static void collide(sim_shard *s, uint32_t i)
{
    float r = (float)s->cfg->entity_radius;
    float min = 2.0f * r;
    uint32_t neigh[COL_NEIGH_MAX];
    size_t n = spatial_grid_collect(s->col_grid, s->x[i], s->y[i], min, neigh, COL_NEIGH_MAX);
    if (n > COL_NEIGH_MAX)
        n = COL_NEIGH_MAX;
    for (size_t k = 0; k < n; k++) {
        uint32_t o = neigh[k];
        if (o == i || !(s->flags[o] & SIM_F_ALIVE))
            continue;
        float dx = s->x[i] - s->x[o], dy = s->y[i] - s->y[o];
        float d2 = dx * dx + dy * dy;
        if (d2 >= min * min)
            continue;
        float d = sqrtf(d2);
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
        s->x[i] += dx / d * push;
        s->y[i] += dy / d * push;
    }
}

void sim_move(sim_shard *s)
{
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
    for (uint32_t i = 0; i < s->n_used; i++) {
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) != SIM_F_ALIVE)
            continue;
        float ox = s->x[i], oy = s->y[i];
        collide(s, i);
        if (s->x[i] != ox || s->y[i] != oy) {
            float x = s->x[i], y = s->y[i];
            clamp_world(s, &x, &y);
            sim_push_out_of_obstacles(s, &x, &y);
            s->x[i] = x;
            s->y[i] = y;
            spatial_grid_move(s->col_grid, i, x, y);
        }
    }
    for (uint32_t i = 0; i < s->n_used; i++)
        if ((s->flags[i] & (SIM_F_ALIVE | SIM_F_GHOST)) == SIM_F_ALIVE)
            spatial_grid_move(s->aoi_grid, i, s->x[i], s->y[i]);
}
