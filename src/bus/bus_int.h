/* bus_int.h - the backend table behind bus.h. */
#ifndef BUS_INT_H
#define BUS_INT_H
#include "bus.h"

typedef struct bus_ops {
    const char *name;
    int (*open)(void **state);
    void (*close)(void *state);
    int (*send)(void *state, uint32_t dst, const void *msg, size_t len);
    int (*recv)(void *state, uint32_t ep, bus_batch *out);
    int (*notify_fd)(void *state, uint32_t ep);
} bus_ops;

extern const bus_ops bus_inproc_ops;
#endif
