/* sim_loader.c - the item loader: one thread per process that runs the
 * store's synchronous reads for the shards and posts each result to the
 * asking shard's inbox as a bus message, so a shard never waits for the
 * database:
 *   a cell's items        -> PROTO_BUS_ITEMS_LOADED (store_items_by_cell)
 *   a player's inventory  -> PROTO_BUS_INV_LOADED   (store_inventory_load,
 *                            which a cached player answers from the LRU)
 * A failed read is posted too (status < 0, nothing else), and the shard
 * asks again later. Requests wait in a bounded ring; a full ring refuses
 * at once (the shard retries), so a dead database cannot grow memory. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"
#include "store.h"

#define LOADER_CAP 4096 /* queued requests; beyond this requests are refused */

enum { REQ_CELL = 1, REQ_INVENTORY };

typedef struct load_req {
    uint8_t type;       /* REQ_* */
    uint16_t shard;     /* who asked: the result goes to its inbox */
    uint32_t key;       /* REQ_CELL: cell index; REQ_INVENTORY: session id */
    int64_t account_id; /* REQ_INVENTORY */
} load_req;

struct sim_loader {
    store *st;
    bus *b;
    pthread_t thread;
    pthread_mutex_t mu; /* guards ring, head, n, is_stopping */
    pthread_cond_t wake;
    load_req ring[LOADER_CAP];
    size_t head, n;
    bool is_stopping;
    core_buf msg; /* the thread's message buffer */
};

static void load_cell(sim_loader *l, const load_req *q)
{
    store_item *items = NULL;
    size_t n = 0;
    int rc = store_items_by_cell(l->st, &items, &n, q->key);
    size_t at;
    core_buf_reset(&l->msg);
    proto_bus_items_loaded_begin(&l->msg, q->key, rc, &at);
    if (rc != STORE_OK) {
        core_log(CORE_LOG_WARN, "sim", NULL, "loading the items of cell %u failed: %s", q->key,
                 store_errmsg(l->st));
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const store_item *it = &items[i];
        /* the wire carries u8 kinds and u16 quantities: the content file
         * and the actions keep to that, so anything else is a foreign row */
        if (it->item_kind < 1 || it->item_kind > 255 || it->quantity < 1 || it->quantity > 65535 ||
            it->id <= 0) {
            core_log(CORE_LOG_WARN, "sim", NULL, "world item %lld skipped: kind %d quantity %d",
                     (long long)it->id, (int)it->item_kind, (int)it->quantity);
            continue;
        }
        proto_loaded_item li = {it->id, (float)it->x, (float)it->y, (uint8_t)it->item_kind,
                                (uint16_t)it->quantity};
        proto_bus_items_loaded_add(&l->msg, at, &li);
    }
    free(items);
    if (bus_send(l->b, BUS_EP_SHARD(q->shard), l->msg.data, l->msg.len) != BUS_OK)
        core_log(CORE_LOG_ERROR, "sim", NULL, "items of cell %u could not be posted", q->key);
}

static void load_inventory(sim_loader *l, const load_req *q)
{
    store_inventory inv;
    proto_inventory pi;
    memset(&pi, 0, sizeof pi);
    int rc = store_inventory_load(l->st, &inv, q->account_id);
    if (rc == STORE_OK) {
        for (size_t i = 0; i < inv.n; i++) {
            int32_t slot = inv.slots[i].slot, kind = inv.slots[i].item_kind;
            int32_t qty = inv.slots[i].quantity;
            if (slot < 0 || slot >= PROTO_INV_SLOTS || kind < 1 || kind > 255 || qty < 1)
                continue;
            pi.slots[slot].item_kind = (uint8_t)kind;
            pi.slots[slot].quantity = (uint16_t)(qty > 65535 ? 65535 : qty);
        }
    } else {
        core_log(CORE_LOG_WARN, "sim", NULL, "loading the inventory of account %lld failed: %s",
                 (long long)q->account_id, store_errmsg(l->st));
    }
    core_buf_reset(&l->msg);
    proto_bus_inv_loaded_write(&l->msg, 0, q->key, rc, &pi);
    bus_send(l->b, BUS_EP_SHARD(q->shard), l->msg.data, l->msg.len);
}

static void *loader_main(void *arg)
{
    sim_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->n && !l->is_stopping)
            pthread_cond_wait(&l->wake, &l->mu);
        if (l->is_stopping)
            break;
        load_req q = l->ring[l->head];
        l->head = (l->head + 1) % LOADER_CAP;
        l->n--;
        pthread_mutex_unlock(&l->mu);
        if (q.type == REQ_CELL)
            load_cell(l, &q);
        else
            load_inventory(l, &q);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int sim_loader_create(sim_loader **out, struct store *st, bus *b)
{
    *out = NULL;
    sim_loader *l = calloc(1, sizeof *l);
    if (!l)
        core_die("out of memory");
    l->st = st;
    l->b = b;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    core_buf_init(&l->msg);
    if (pthread_create(&l->thread, NULL, loader_main, l) != 0) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->wake);
        free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void sim_loader_destroy(sim_loader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->is_stopping = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    core_buf_free(&l->msg);
    free(l);
}

static int push(sim_loader *l, const load_req *q)
{
    int rc = -1;
    pthread_mutex_lock(&l->mu);
    if (!l->is_stopping && l->n < LOADER_CAP) {
        l->ring[(l->head + l->n) % LOADER_CAP] = *q;
        l->n++;
        pthread_cond_signal(&l->wake);
        rc = 0;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Queues the load of a cell's items for shard. Returns 0, or -1 when the
 * queue is full (ask again later). Any thread. */
int sim_loader_cell(sim_loader *l, uint16_t shard, uint32_t cell)
{
    load_req q = {.type = REQ_CELL, .shard = shard, .key = cell};
    return push(l, &q);
}

/* Queues the load of an account's inventory for a session of shard. */
int sim_loader_inventory(sim_loader *l, uint16_t shard, uint32_t session_id, int64_t account_id)
{
    load_req q = {
        .type = REQ_INVENTORY, .shard = shard, .key = session_id, .account_id = account_id};
    return push(l, &q);
}
