/* core_rng.h - deterministic pseudo-random numbers (xoshiro128**, seeded
 * with splitmix64). Same seed, same sequence, on every platform: the
 * simulation's determinism rests on it. Not for secrets. */
#ifndef CORE_RNG_H
#define CORE_RNG_H
#include <stdint.h>

typedef struct core_rng {
    uint32_t s[4];
} core_rng;

static inline uint64_t core_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void core_rng_seed(core_rng *r, uint64_t seed)
{
    uint64_t a = core_splitmix64(&seed), b = core_splitmix64(&seed);
    r->s[0] = (uint32_t)a;
    r->s[1] = (uint32_t)(a >> 32);
    r->s[2] = (uint32_t)b;
    r->s[3] = (uint32_t)(b >> 32) | 1u;
}

static inline uint32_t core_rotl32(uint32_t x, int k)
{
    return (x << k) | (x >> (32 - k));
}

static inline uint32_t core_rng_u32(core_rng *r)
{
    uint32_t *s = r->s;
    uint32_t result = core_rotl32(s[1] * 5, 7) * 9;
    uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = core_rotl32(s[3], 11);
    return result;
}

/* Uniform float in [0, 1). */
static inline float core_rng_unit(core_rng *r)
{
    return (float)(core_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

/* Uniform integer in [0, n), n > 0. */
static inline uint32_t core_rng_below(core_rng *r, uint32_t n)
{
    return (uint32_t)(((uint64_t)core_rng_u32(r) * n) >> 32);
}
#endif
