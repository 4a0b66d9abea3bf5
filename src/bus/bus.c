/* bus.c - wrappers over the backend table: argument checks and metrics. */
#include "bus_int.h"

#include <stdlib.h>
#include <string.h>

#include "core_log.h"

struct bus {
    const bus_ops *ops;
    void *state;
    core_counter *msgs_sent;
    core_counter *bytes_sent;
    core_counter *send_full;
};

static const bus_ops *const backends[] = {&bus_inproc_ops};

int bus_create(bus **out, const char *backend, core_metrics *m)
{
    *out = NULL;
    const bus_ops *ops = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, backend) == 0)
            ops = backends[i];
    if (!ops)
        return BUS_ERR_BACKEND;
    bus *b = calloc(1, sizeof *b);
    if (!b)
        core_die("out of memory");
    b->ops = ops;
    if (ops->open(&b->state) != 0) {
        free(b);
        return BUS_ERR_BACKEND;
    }
    static core_counter dummy[3];
    if (m) {
        b->msgs_sent =
            core_metrics_counter(m, "tessera_bus_messages_total", "Messages sent on the bus", NULL);
        b->bytes_sent =
            core_metrics_counter(m, "tessera_bus_bytes_total", "Bytes sent on the bus", NULL);
        b->send_full = core_metrics_counter(m, "tessera_bus_send_full_total",
                                            "Bus sends refused because an inbox was full", NULL);
    } else {
        b->msgs_sent = &dummy[0];
        b->bytes_sent = &dummy[1];
        b->send_full = &dummy[2];
    }
    *out = b;
    return BUS_OK;
}

void bus_destroy(bus *b)
{
    if (!b)
        return;
    b->ops->close(b->state);
    free(b);
}

int bus_send(bus *b, uint32_t dst, const void *msg, size_t len)
{
    if (dst >= BUS_N_ENDPOINTS)
        return BUS_ERR_ENDPOINT;
    int rc = b->ops->send(b->state, dst, msg, len);
    if (rc == BUS_OK) {
        core_counter_add(b->msgs_sent, 1);
        core_counter_add(b->bytes_sent, len);
    } else if (rc == BUS_ERR_FULL) {
        core_counter_add(b->send_full, 1);
    }
    return rc;
}

int bus_recv(bus *b, uint32_t ep, bus_batch *out)
{
    memset(out, 0, sizeof *out);
    if (ep >= BUS_N_ENDPOINTS)
        return BUS_ERR_ENDPOINT;
    return b->ops->recv(b->state, ep, out);
}

int bus_notify_fd(bus *b, uint32_t ep)
{
    if (ep >= BUS_N_ENDPOINTS)
        return -1;
    return b->ops->notify_fd(b->state, ep);
}

int bus_iter_next(bus_iter *it, const uint8_t **msg, size_t *len)
{
    if (it->end - it->p < 4)
        return 0;
    uint32_t n;
    memcpy(&n, it->p, 4);
    if ((size_t)(it->end - it->p - 4) < n)
        core_die("bus batch corrupted");
    *msg = it->p + 4;
    *len = n;
    it->p += 4 + n;
    return 1;
}
