/* core_simd.h - the few SSE2 helpers of the per-tick passes over a million
 * slots (sim_move.c). SSE2 is part of every x86-64;
 * elsewhere the callers use their scalar loops, which define the results:
 * every helper here gives the same bits as the scalar code it replaces. */
#ifndef CORE_SIMD_H
#define CORE_SIMD_H
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>

/* p[0..3] as four 32-bit lanes. */
static inline __m128i core_bytes4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    __m128i z = _mm_setzero_si128();
    return _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128((int)v), z), z);
}

/* m ? a : b, lane by lane (m all ones or all zeros per lane). */
static inline __m128 core_select4(__m128 m, __m128 a, __m128 b)
{
    return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
}

/* Grid coordinate of four values, as the scalar "f = v * inv; NaN or
 * negative -> 0; f >= n - 1 -> n - 1; else (uint32_t)f" (n < 2^24).
 * maxps returns its second operand when the first is NaN. */
static inline __m128i core_cell4(__m128 v, __m128 inv, __m128 last /* (float)(n - 1) */)
{
    __m128 f = _mm_max_ps(_mm_mul_ps(v, inv), _mm_setzero_ps());
    return _mm_cvttps_epi32(_mm_min_ps(f, last));
}

/* a * k + c, lane by lane, modulo 2^32 (SSE2 has no 32-bit multiply). */
static inline __m128i core_muladd4(__m128i a, uint32_t k, __m128i c)
{
    __m128i vk = _mm_set1_epi32((int)k);
    __m128i even = _mm_mul_epu32(a, vk), odd = _mm_mul_epu32(_mm_srli_epi64(a, 32), vk);
    __m128i lo = _mm_unpacklo_epi32(_mm_shuffle_epi32(even, _MM_SHUFFLE(0, 0, 2, 0)),
                                    _mm_shuffle_epi32(odd, _MM_SHUFFLE(0, 0, 2, 0)));
    return _mm_add_epi32(lo, c);
}
#endif
#endif
