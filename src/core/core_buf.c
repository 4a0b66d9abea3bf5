/* core_buf.c - growable byte buffer. */
#include "core_buf.h"

#include <stdlib.h>

#include "core_log.h"

void core_buf_init(core_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void core_buf_free(core_buf *b)
{
    free(b->data);
    core_buf_init(b);
}

uint8_t *core_buf_reserve(core_buf *b, size_t extra)
{
    if (b->cap - b->len < extra) {
        if (extra > UINT32_MAX - b->len)
            core_die("buffer of %u bytes cannot grow by %zu", (unsigned)b->len, extra);
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < extra)
            cap *= 2;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            core_die("out of memory growing a buffer to %zu bytes", cap);
        b->data = p;
        b->cap = (uint32_t)cap;
    }
    return b->data + b->len;
}

void core_buf_append(core_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(core_buf_reserve(b, n), p, n);
    b->len += n;
}

void core_buf_consume(core_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
