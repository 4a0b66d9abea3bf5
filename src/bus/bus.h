/* bus.h - message bus between Tessera roles (gateway, shards, director).
 *
 * Endpoints are small integers named by role: BUS_EP_SHARD(i), BUS_EP_GW(g).
 * A message is an opaque byte string (proto.h formats) delivered to one
 * endpoint, in order per (sender, receiver) pair. Backends are chosen by
 * name: "inproc" (rings inside one process, for `tessera serve` and tests);
 * "nats" comes with the cluster roles. Every call goes through these
 * wrappers, which count messages and bytes and are where tests inject
 * faults.
 *
 * Threads: bus_send may be called from any thread. bus_recv for one
 * endpoint must be called by one thread at a time (its owner). */
#ifndef BUS_H
#define BUS_H
#include <stddef.h>
#include <stdint.h>

#include "core_buf.h"
#include "core_metrics.h"

#define BUS_MAX_SHARDS 64
#define BUS_MAX_GWS 16
#define BUS_EP_SHARD(i) ((uint32_t)(i))
#define BUS_EP_GW(g) ((uint32_t)(BUS_MAX_SHARDS + (g)))
#define BUS_N_ENDPOINTS (BUS_MAX_SHARDS + BUS_MAX_GWS)

enum { BUS_OK = 0, BUS_ERR_BACKEND = -1, BUS_ERR_ENDPOINT = -2, BUS_ERR_FULL = -3 };

typedef struct bus bus;

/* One batch of received messages: `u32 len, bytes[len]` repeated in data.
 * Owned by the bus; valid until the next bus_recv on the same endpoint. */
typedef struct bus_batch {
    const uint8_t *data;
    size_t len;
    size_t n_msgs;
} bus_batch;

/* Creates a bus with the named backend. m may be NULL. Returns 0 or
 * BUS_ERR_BACKEND (unknown name). */
int bus_create(bus **out, const char *backend, core_metrics *m);
void bus_destroy(bus *b); /* NULL is a no-op */

/* Copies msg to endpoint dst's inbox. Returns 0, BUS_ERR_ENDPOINT for an
 * id out of range, or BUS_ERR_FULL if the inbox holds more than its cap
 * (64 MiB) of undelivered bytes; the message is then not queued. */
int bus_send(bus *b, uint32_t dst, const void *msg, size_t len);

/* Takes everything queued for endpoint ep. Never blocks. */
int bus_recv(bus *b, uint32_t ep, bus_batch *out);

/* Iterates a batch: returns 1 with the next message, 0 at the end. */
typedef struct bus_iter {
    const uint8_t *p, *end;
} bus_iter;
static inline bus_iter bus_iter_init(const bus_batch *bt)
{
    bus_iter it = {bt->data, bt->data ? bt->data + bt->len : bt->data};
    return it;
}
int bus_iter_next(bus_iter *it, const uint8_t **msg, size_t *len);

/* An eventfd that becomes readable when ep's inbox goes from empty to
 * non-empty; the reader drains it (read 8 bytes) before bus_recv. Created
 * on first call. Returns the fd or -1. */
int bus_notify_fd(bus *b, uint32_t ep);
#endif
