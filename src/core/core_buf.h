/* core_buf.h - growable byte buffer, little-endian and LEB128 varint
 * writers, and a bounds-checked reader. Wire encodings of the protocol are
 * built from these so every codec shares one set of checked primitives.
 *
 * Writers abort on allocation failure (STYLE: allocation failure aborts).
 * Readers never read past the end: a short read sets r->err and returns 0;
 * callers check core_rd_ok() once after decoding a whole message. */
#ifndef CORE_BUF_H
#define CORE_BUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 16 bytes: buffers live in every connection and client record, and
 * none comes near 4 GiB (growing past UINT32_MAX aborts). */
typedef struct core_buf {
    uint8_t *data; /* owned; NULL when cap == 0 */
    uint32_t len;  /* bytes used */
    uint32_t cap;  /* bytes allocated */
} core_buf;

void core_buf_init(core_buf *b);
void core_buf_free(core_buf *b);
/* Ensures room for extra more bytes; returns a pointer to data + len. */
uint8_t *core_buf_reserve(core_buf *b, size_t extra);
void core_buf_append(core_buf *b, const void *p, size_t n);
/* Drops the first n bytes (n <= len). */
void core_buf_consume(core_buf *b, size_t n);
static inline void core_buf_reset(core_buf *b)
{
    b->len = 0;
}
/* Empties b, and gives its memory back when it holds more than keep_bytes
 * and the use that just ended filled less than an eighth of it: a
 * buffer reused every tick keeps its size, but not a spike's. */
static inline void core_buf_reset_trim(core_buf *b, size_t keep_bytes)
{
    if (b->cap > keep_bytes && b->len < b->cap / 8)
        core_buf_free(b);
    b->len = 0;
}

static inline void core_buf_u8(core_buf *b, uint8_t v)
{
    *core_buf_reserve(b, 1) = v;
    b->len += 1;
}
static inline void core_buf_u16(core_buf *b, uint16_t v)
{
    uint8_t *p = core_buf_reserve(b, 2);
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    b->len += 2;
}
static inline void core_buf_u32(core_buf *b, uint32_t v)
{
    uint8_t *p = core_buf_reserve(b, 4);
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    b->len += 4;
}
static inline void core_buf_u64(core_buf *b, uint64_t v)
{
    uint8_t *p = core_buf_reserve(b, 8);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    b->len += 8;
}
static inline void core_buf_i32(core_buf *b, int32_t v)
{
    core_buf_u32(b, (uint32_t)v);
}
static inline void core_buf_f32(core_buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    core_buf_u32(b, u);
}
/* Overwrites / reads a u32 already written at offset at (at + 4 <= len):
 * for counts and lengths patched once a message's items are written. */
static inline void core_buf_put_u32_at(core_buf *b, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b->data[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t core_buf_get_u32_at(const core_buf *b, size_t at)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)b->data[at + (size_t)i] << (8 * i);
    return v;
}
/* Unsigned LEB128: 7 bits per byte, low bits first, high bit = more. */
static inline void core_buf_varint(core_buf *b, uint64_t v)
{
    uint8_t *p = core_buf_reserve(b, 10);
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        p[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    b->len += n;
}
/* Number of bytes core_buf_varint(v) writes. */
static inline size_t core_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

typedef struct core_rd {
    const uint8_t *p; /* next byte */
    const uint8_t *end;
    bool err; /* set by any read past end or bad varint; sticky */
} core_rd;

static inline core_rd core_rd_init(const void *p, size_t n)
{
    core_rd r = {(const uint8_t *)p, (const uint8_t *)p + n, false};
    return r;
}
static inline size_t core_rd_left(const core_rd *r)
{
    return (size_t)(r->end - r->p);
}
static inline bool core_rd_ok(const core_rd *r)
{
    return !r->err;
}
static inline bool core_rd_need(core_rd *r, size_t n)
{
    if (r->err || core_rd_left(r) < n) {
        r->err = true;
        return false;
    }
    return true;
}
static inline uint8_t core_rd_u8(core_rd *r)
{
    if (!core_rd_need(r, 1))
        return 0;
    return *r->p++;
}
static inline uint16_t core_rd_u16(core_rd *r)
{
    if (!core_rd_need(r, 2))
        return 0;
    uint16_t v = (uint16_t)(r->p[0] | (r->p[1] << 8));
    r->p += 2;
    return v;
}
static inline uint32_t core_rd_u32(core_rd *r)
{
    if (!core_rd_need(r, 4))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}
static inline uint64_t core_rd_u64(core_rd *r)
{
    if (!core_rd_need(r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}
static inline int32_t core_rd_i32(core_rd *r)
{
    return (int32_t)core_rd_u32(r);
}
static inline float core_rd_f32(core_rd *r)
{
    uint32_t u = core_rd_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* At most 10 bytes; overlong or overflowing encodings set err. */
static inline uint64_t core_rd_varint(core_rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!core_rd_need(r, 1))
            return 0;
        uint8_t byte = *r->p++;
        if (shift == 63 && (byte & 0x7e)) {
            r->err = true;
            return 0;
        }
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->err = true;
    return 0;
}
/* Returns a pointer to n bytes and advances, or NULL (err set). */
static inline const uint8_t *core_rd_bytes(core_rd *r, size_t n)
{
    if (!core_rd_need(r, n))
        return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}
#endif
