/* store_cache.c - a bounded LRU of player records (account, player row,
 * inventory) keyed by account id, with a second index by username so a
 * whole login can be served from memory. One mutex; every operation is
 * O(1) expected.
 *
 * Staleness: a loader that missed reads the database without the lock, so
 * a write can land between its read and its fill. Every write to an
 * account bumps a generation stripe (account id mod STRIPES); the loader
 * samples the stripe before reading and its fill is dropped if the stripe
 * moved. A collision only costs a missed fill, never a stale one.
 * The cache assumes this process is the only writer of the accounts it
 * serves (one session per account); with several writers, disable it.
 *
 * Size: an entry keeps the player row inline and the rest out of line,
 * allocated only when present: the account (username and password hash,
 * ~240 bytes) for password logins, the inventory's used slots only. A
 * full cache of token-authenticated players is ~100 bytes an entry, not
 * the ~720 of every field inline. */
#include "store_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core_hash.h"
#include "core_log.h"

#define STRIPES 4096
#define NIL (-1)

typedef struct inv_slot {
    int32_t slot, item_kind, quantity;
} inv_slot;

typedef struct entry {
    int64_t account_id; /* 0 = free */
    bool has_player, is_player_absent, has_inventory;
    uint8_t n_inv;              /* used inventory slots: inv[0, n_inv) */
    store_account *account;     /* owned; non-NULL = has the account (indexed by name) */
    inv_slot *inv;              /* owned, n_inv entries; NULL when n_inv == 0 */
    store_player player;        /* valid with has_player && !is_player_absent */
    uint64_t name_hash;         /* valid with account */
    int32_t prev, next;         /* LRU list, head = most recent */
    int32_t id_next, name_next; /* bucket chains */
} entry;

_Static_assert(STORE_INV_SLOTS <= UINT8_MAX, "n_inv is a u8");

/* Frees what entry x owns. */
static void entry_clear(entry *x)
{
    free(x->account);
    free(x->inv);
    x->account = NULL;
    x->inv = NULL;
    x->n_inv = 0;
}

struct store_cache {
    pthread_mutex_t mu;
    entry *e;
    size_t cap, n;
    int32_t head, tail, free_list; /* free entries chained through next */
    int32_t *by_id, *by_name;      /* n_buckets heads */
    size_t n_buckets;              /* power of two >= 2 * cap */
    uint32_t gen[STRIPES];
};

static size_t id_bucket(const store_cache *c, int64_t id)
{
    return (size_t)core_fnv1a(CORE_FNV_OFFSET, &id, sizeof id) & (c->n_buckets - 1);
}

static uint64_t name_hash(const char *name)
{
    return core_fnv1a(CORE_FNV_OFFSET, name, strlen(name));
}

static uint32_t *stripe(store_cache *c, int64_t id)
{
    return &c->gen[(uint64_t)id % STRIPES];
}

store_cache *store_cache_create(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    if (capacity > INT32_MAX / 4)
        core_die("store: cache capacity %zu too large", capacity);
    store_cache *c = calloc(1, sizeof *c);
    if (!c)
        core_die("out of memory");
    pthread_mutex_init(&c->mu, NULL);
    c->cap = capacity;
    c->n_buckets = 16;
    while (c->n_buckets < capacity * 2)
        c->n_buckets *= 2;
    c->e = calloc(capacity, sizeof *c->e);
    c->by_id = malloc(c->n_buckets * sizeof *c->by_id);
    c->by_name = malloc(c->n_buckets * sizeof *c->by_name);
    if (!c->e || !c->by_id || !c->by_name)
        core_die("out of memory");
    for (size_t i = 0; i < c->n_buckets; i++)
        c->by_id[i] = c->by_name[i] = NIL;
    for (size_t i = 0; i < capacity; i++)
        c->e[i].next = i + 1 < capacity ? (int32_t)(i + 1) : NIL;
    c->free_list = 0;
    c->head = c->tail = NIL;
    return c;
}

void store_cache_destroy(store_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    for (size_t i = 0; i < c->cap; i++)
        entry_clear(&c->e[i]);
    free(c->e);
    free(c->by_id);
    free(c->by_name);
    free(c);
}

static void lru_unlink(store_cache *c, int32_t i)
{
    entry *x = &c->e[i];
    if (x->prev != NIL)
        c->e[x->prev].next = x->next;
    else
        c->head = x->next;
    if (x->next != NIL)
        c->e[x->next].prev = x->prev;
    else
        c->tail = x->prev;
}

static void lru_push_front(store_cache *c, int32_t i)
{
    entry *x = &c->e[i];
    x->prev = NIL;
    x->next = c->head;
    if (c->head != NIL)
        c->e[c->head].prev = i;
    c->head = i;
    if (c->tail == NIL)
        c->tail = i;
}

static void touch(store_cache *c, int32_t i)
{
    if (c->head == i)
        return;
    lru_unlink(c, i);
    lru_push_front(c, i);
}

/* Removes entry i from a bucket chain linked through the field at off. */
static void chain_remove(store_cache *c, int32_t *head, int32_t i, size_t off)
{
    for (int32_t *p = head; *p != NIL; p = (int32_t *)((char *)&c->e[*p] + off)) {
        if (*p == i) {
            *p = *(int32_t *)((char *)&c->e[i] + off);
            return;
        }
    }
    core_die("store cache: entry %d missing from its chain", (int)i);
}

static void name_unlink(store_cache *c, int32_t i)
{
    entry *x = &c->e[i];
    if (!x->account)
        return;
    chain_remove(c, &c->by_name[x->name_hash & (c->n_buckets - 1)], i, offsetof(entry, name_next));
    free(x->account);
    x->account = NULL;
}

static int32_t find_id(const store_cache *c, int64_t id)
{
    for (int32_t i = c->by_id[id_bucket(c, id)]; i != NIL; i = c->e[i].id_next)
        if (c->e[i].account_id == id)
            return i;
    return NIL;
}

static int32_t find_name(const store_cache *c, const char *name)
{
    uint64_t h = name_hash(name);
    for (int32_t i = c->by_name[h & (c->n_buckets - 1)]; i != NIL; i = c->e[i].name_next)
        if (c->e[i].name_hash == h && strcmp(c->e[i].account->username, name) == 0)
            return i;
    return NIL;
}

/* The entry of id, created (evicting the least recent) if absent. */
static int32_t get_or_add(store_cache *c, int64_t id)
{
    int32_t i = find_id(c, id);
    if (i != NIL) {
        touch(c, i);
        return i;
    }
    if (c->free_list == NIL) {
        i = c->tail;
        lru_unlink(c, i);
        name_unlink(c, i);
        chain_remove(c, &c->by_id[id_bucket(c, c->e[i].account_id)], i, offsetof(entry, id_next));
        c->n--;
    } else {
        i = c->free_list;
        c->free_list = c->e[i].next;
    }
    entry *x = &c->e[i];
    entry_clear(x);
    memset(x, 0, sizeof *x);
    x->account_id = id;
    size_t b = id_bucket(c, id);
    x->id_next = c->by_id[b];
    c->by_id[b] = i;
    lru_push_front(c, i);
    c->n++;
    return i;
}

uint32_t store_cache_gen(store_cache *c, int64_t account_id)
{
    pthread_mutex_lock(&c->mu);
    uint32_t g = *stripe(c, account_id);
    pthread_mutex_unlock(&c->mu);
    return g;
}

bool store_cache_get_account(store_cache *c, const char *username, store_account *out)
{
    pthread_mutex_lock(&c->mu);
    int32_t i = find_name(c, username);
    if (i != NIL) {
        *out = *c->e[i].account;
        touch(c, i);
    }
    pthread_mutex_unlock(&c->mu);
    return i != NIL;
}

int store_cache_get_player(store_cache *c, int64_t account_id, store_player *out)
{
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    int32_t i = find_id(c, account_id);
    if (i != NIL && c->e[i].has_player) {
        hit = c->e[i].is_player_absent ? -1 : 1;
        if (hit == 1)
            *out = c->e[i].player;
        touch(c, i);
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

bool store_cache_get_inventory(store_cache *c, int64_t account_id, store_inventory *out)
{
    pthread_mutex_lock(&c->mu);
    int32_t i = find_id(c, account_id);
    bool hit = i != NIL && c->e[i].has_inventory;
    if (hit) {
        const entry *x = &c->e[i];
        memset(out, 0, sizeof *out);
        out->n = x->n_inv;
        for (size_t k = 0; k < x->n_inv; k++) {
            out->slots[k].slot = x->inv[k].slot;
            out->slots[k].item_kind = x->inv[k].item_kind;
            out->slots[k].quantity = x->inv[k].quantity;
        }
        touch(c, i);
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void store_cache_put_account(store_cache *c, uint32_t gen, const store_account *a)
{
    pthread_mutex_lock(&c->mu);
    if (*stripe(c, a->id) == gen) {
        int32_t i = get_or_add(c, a->id);
        entry *x = &c->e[i];
        name_unlink(c, i);
        x->account = malloc(sizeof *x->account);
        if (!x->account)
            core_die("out of memory");
        *x->account = *a;
        x->name_hash = name_hash(a->username);
        size_t b = x->name_hash & (c->n_buckets - 1);
        x->name_next = c->by_name[b];
        c->by_name[b] = i;
    }
    pthread_mutex_unlock(&c->mu);
}

void store_cache_put_player(store_cache *c, uint32_t gen, int64_t account_id, const store_player *p)
{
    pthread_mutex_lock(&c->mu);
    if (*stripe(c, account_id) == gen) {
        entry *x = &c->e[get_or_add(c, account_id)];
        x->has_player = true;
        x->is_player_absent = p == NULL;
        if (p)
            x->player = *p;
    }
    pthread_mutex_unlock(&c->mu);
}

void store_cache_put_inventory(store_cache *c, uint32_t gen, int64_t account_id,
                               const store_inventory *inv)
{
    pthread_mutex_lock(&c->mu);
    if (*stripe(c, account_id) == gen) {
        entry *x = &c->e[get_or_add(c, account_id)];
        if (inv->n > STORE_INV_SLOTS)
            core_die("store cache: inventory of %zu slots", inv->n);
        free(x->inv);
        x->inv = NULL;
        x->n_inv = (uint8_t)inv->n;
        if (inv->n) {
            x->inv = malloc(inv->n * sizeof *x->inv);
            if (!x->inv)
                core_die("out of memory");
            for (size_t k = 0; k < inv->n; k++)
                x->inv[k] =
                    (inv_slot){inv->slots[k].slot, inv->slots[k].item_kind, inv->slots[k].quantity};
        }
        x->has_inventory = true;
    }
    pthread_mutex_unlock(&c->mu);
}

void store_cache_note_player(store_cache *c, const store_player *p)
{
    pthread_mutex_lock(&c->mu);
    (*stripe(c, p->account_id))++;
    int32_t i = find_id(c, p->account_id);
    /* The same rule as the database's upsert: never go back a version. */
    if (i != NIL &&
        (!c->e[i].has_player || c->e[i].is_player_absent || c->e[i].player.version <= p->version)) {
        c->e[i].has_player = true;
        c->e[i].is_player_absent = false;
        c->e[i].player = *p;
    }
    pthread_mutex_unlock(&c->mu);
}

void store_cache_drop_inventory(store_cache *c, int64_t account_id)
{
    pthread_mutex_lock(&c->mu);
    (*stripe(c, account_id))++;
    int32_t i = find_id(c, account_id);
    if (i != NIL) {
        c->e[i].has_inventory = false;
        free(c->e[i].inv);
        c->e[i].inv = NULL;
        c->e[i].n_inv = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

size_t store_cache_count(store_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}
