/* bus_inproc.c - in-process backend: each endpoint has a mutex-protected
 * inbox buffer of `u32 len, bytes` records. bus_recv swaps the inbox with
 * the endpoint's read buffer, so a receiver takes a whole tick's messages
 * with one lock. Senders batch per tick (one message per shard->gateway
 * pair per tick), so the lock is taken a few times per tick, not per
 * entity. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus_int.h"
#include "core_log.h"

#define INBOX_CAP_BYTES (64u << 20)
#define INBOX_KEEP_BYTES (256u << 10) /* buffer capacity kept after a spike */

typedef struct inbox {
    pthread_mutex_t mu;
    core_buf queued;  /* guarded by mu */
    size_t n_queued;  /* guarded by mu */
    core_buf reading; /* owned by the receiving thread */
    int efd;          /* -1 until bus_notify_fd */
} inbox;

typedef struct inproc {
    inbox eps[BUS_N_ENDPOINTS];
} inproc;

static int inproc_open(void **state)
{
    inproc *s = calloc(1, sizeof *s);
    if (!s)
        core_die("out of memory");
    for (int i = 0; i < BUS_N_ENDPOINTS; i++) {
        pthread_mutex_init(&s->eps[i].mu, NULL);
        s->eps[i].efd = -1;
    }
    *state = s;
    return 0;
}

static void inproc_close(void *state)
{
    inproc *s = state;
    for (int i = 0; i < BUS_N_ENDPOINTS; i++) {
        pthread_mutex_destroy(&s->eps[i].mu);
        core_buf_free(&s->eps[i].queued);
        core_buf_free(&s->eps[i].reading);
        if (s->eps[i].efd >= 0)
            close(s->eps[i].efd);
    }
    free(s);
}

static int inproc_send(void *state, uint32_t dst, const void *msg, size_t len)
{
    inproc *s = state;
    inbox *ib = &s->eps[dst];
    if (len > UINT32_MAX)
        return BUS_ERR_FULL;
    pthread_mutex_lock(&ib->mu);
    if (ib->queued.len + len + 4 > INBOX_CAP_BYTES) {
        pthread_mutex_unlock(&ib->mu);
        return BUS_ERR_FULL;
    }
    int was_empty = ib->queued.len == 0;
    uint32_t n = (uint32_t)len;
    core_buf_append(&ib->queued, &n, 4);
    core_buf_append(&ib->queued, msg, len);
    ib->n_queued++;
    int efd = ib->efd;
    pthread_mutex_unlock(&ib->mu);
    if (was_empty && efd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(efd, &one, sizeof one);
        (void)w;
    }
    return BUS_OK;
}

static int inproc_recv(void *state, uint32_t ep, bus_batch *out)
{
    inproc *s = state;
    inbox *ib = &s->eps[ep];
    core_buf_reset_trim(&ib->reading, INBOX_KEEP_BYTES);
    pthread_mutex_lock(&ib->mu);
    core_buf tmp = ib->queued;
    ib->queued = ib->reading;
    ib->reading = tmp;
    out->n_msgs = ib->n_queued;
    ib->n_queued = 0;
    pthread_mutex_unlock(&ib->mu);
    out->data = ib->reading.data;
    out->len = ib->reading.len;
    return BUS_OK;
}

static int inproc_notify_fd(void *state, uint32_t ep)
{
    inproc *s = state;
    inbox *ib = &s->eps[ep];
    pthread_mutex_lock(&ib->mu);
    if (ib->efd < 0) {
        ib->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (ib->efd >= 0 && ib->queued.len > 0) {
            uint64_t one = 1;
            ssize_t w = write(ib->efd, &one, sizeof one);
            (void)w;
        }
    }
    int fd = ib->efd;
    pthread_mutex_unlock(&ib->mu);
    return fd;
}

const bus_ops bus_inproc_ops = {
    .name = "inproc",
    .open = inproc_open,
    .close = inproc_close,
    .send = inproc_send,
    .recv = inproc_recv,
    .notify_fd = inproc_notify_fd,
};
