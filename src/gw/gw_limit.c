/* gw_limit.c - failed-login limits, per account (username) and per source
 * address (docs/protocol.md section 9): N failures within a window that
 * starts at the first failure, then 429 until the window ends.
 *
 * Memory is fixed: GW_LIMIT_BUCKETS buckets of GW_LIMIT_WAYS entries,
 * accounts and addresses in one table (the key says which). A bucket is
 * chosen by SipHash-2-4 with a random per-process key, so an attacker
 * cannot fill the bucket of someone else's account to evict its count;
 * when a bucket is full the entry whose window started first goes (it is
 * the nearest to clearing anyway).
 *
 * IPv6 addresses count per /64: one host usually holds a whole /64, and
 * counting single addresses there would limit nothing. Gateway thread. */
#include "gw_acct.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core_log.h"

#define GW_LIMIT_WAYS 8
#define GW_LIMIT_BUCKETS 2048 /* power of two: 16384 entries, 384 KiB */

typedef struct limit_entry {
    uint64_t key;      /* SipHash of kind + name or address; 0 = free */
    uint64_t start_ms; /* first failure of the current window */
    uint32_t count;    /* failures in the window */
} limit_entry;

struct gw_limit {
    limit_entry *e; /* GW_LIMIT_BUCKETS * GW_LIMIT_WAYS */
    uint32_t per_account, per_addr;
    uint64_t window_ms;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

gw_limit *gw_limit_create(int per_account, int per_addr, int window_s)
{
    gw_limit *l = calloc(1, sizeof *l);
    if (l == NULL)
        core_die("gw_limit: out of memory");
    l->e = calloc((size_t)GW_LIMIT_BUCKETS * GW_LIMIT_WAYS, sizeof *l->e);
    if (l->e == NULL)
        core_die("gw_limit: out of memory");
    l->per_account = (uint32_t)(per_account > 0 ? per_account : 1);
    l->per_addr = (uint32_t)(per_addr > 0 ? per_addr : 1);
    l->window_ms = (uint64_t)(window_s > 0 ? window_s : 1) * 1000;
    randombytes_buf(l->hash_key, sizeof l->hash_key);
    return l;
}

void gw_limit_destroy(gw_limit *l)
{
    if (l == NULL)
        return;
    free(l->e);
    free(l);
}

/* kind 'u' + username, or 'a' + the address (IPv6 cut to its /64). */
static uint64_t key_of(const gw_limit *l, char kind, const void *data, size_t n)
{
    uint8_t buf[1 + 32];
    buf[0] = (uint8_t)kind;
    memcpy(buf + 1, data, n);
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, buf, 1 + n, l->hash_key);
    uint64_t k;
    memcpy(&k, h, sizeof k);
    return k ? k : 1; /* 0 marks a free entry */
}

static uint64_t addr_key(const gw_limit *l, const uint8_t addr[16])
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t a[16];
    memcpy(a, addr, 16);
    if (memcmp(a, v4_mapped, sizeof v4_mapped) != 0)
        memset(a + 8, 0, 8);
    return key_of(l, 'a', a, 16);
}

static uint64_t user_key(const gw_limit *l, const char *username)
{
    size_t n = strnlen(username, 32);
    return key_of(l, 'u', username, n);
}

/* The entry of key, or NULL; with create, a fresh or evicted one. */
static limit_entry *find(gw_limit *l, uint64_t key, uint64_t now_ms, bool create)
{
    limit_entry *b = &l->e[(size_t)(key & (GW_LIMIT_BUCKETS - 1)) * GW_LIMIT_WAYS];
    for (int i = 0; i < GW_LIMIT_WAYS; i++)
        if (b[i].key == key)
            return &b[i];
    if (!create)
        return NULL;
    limit_entry *victim = NULL;
    for (int i = 0; i < GW_LIMIT_WAYS && victim == NULL; i++)
        if (b[i].key == 0 || now_ms - b[i].start_ms >= l->window_ms)
            victim = &b[i]; /* free, or its window is over */
    if (victim == NULL) {
        victim = &b[0];
        for (int i = 1; i < GW_LIMIT_WAYS; i++)
            if (b[i].start_ms < victim->start_ms)
                victim = &b[i];
    }
    *victim = (limit_entry){.key = key, .start_ms = now_ms, .count = 0};
    return victim;
}

/* Seconds until e's window ends when it is over limit, else 0. */
static int over(const gw_limit *l, const limit_entry *e, uint32_t limit, uint64_t now_ms)
{
    if (e == NULL || e->count < limit || now_ms - e->start_ms >= l->window_ms)
        return 0;
    uint64_t left_ms = e->start_ms + l->window_ms - now_ms;
    return (int)((left_ms + 999) / 1000);
}

gw_limit_by gw_limit_check(gw_limit *l, uint64_t now_ms, const uint8_t addr[16],
                           const char *username, int *retry_after_s)
{
    int s = over(l, find(l, user_key(l, username), now_ms, false), l->per_account, now_ms);
    if (s > 0) {
        *retry_after_s = s;
        return GW_LIMIT_ACCOUNT;
    }
    s = over(l, find(l, addr_key(l, addr), now_ms, false), l->per_addr, now_ms);
    if (s > 0) {
        *retry_after_s = s;
        return GW_LIMIT_ADDRESS;
    }
    return GW_LIMIT_NONE;
}

static void count(gw_limit *l, uint64_t key, uint64_t now_ms)
{
    limit_entry *e = find(l, key, now_ms, true);
    if (now_ms - e->start_ms >= l->window_ms) { /* a new window */
        e->start_ms = now_ms;
        e->count = 0;
    }
    if (e->count < UINT32_MAX)
        e->count++;
}

void gw_limit_fail(gw_limit *l, uint64_t now_ms, const uint8_t addr[16], const char *username)
{
    count(l, user_key(l, username), now_ms);
    count(l, addr_key(l, addr), now_ms);
}
