/* test_bus.c - the in-process bus: order, batching, notification, caps,
 * and many senders on many threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"

static void test_order_and_batch(void **state)
{
    (void)state;
    bus *b;
    assert_int_equal(bus_create(&b, "nope", NULL), BUS_ERR_BACKEND);
    assert_int_equal(bus_create(&b, "inproc", NULL), BUS_OK);
    int fd = bus_notify_fd(b, BUS_EP_GW(0));
    assert_true(fd >= 0);
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0);
    for (uint32_t i = 0; i < 100; i++)
        assert_int_equal(bus_send(b, BUS_EP_GW(0), &i, sizeof i), BUS_OK);
    assert_int_equal(poll(&p, 1, 0), 1);
    uint64_t v;
    assert_int_equal(read(fd, &v, 8), 8);
    bus_batch bt;
    assert_int_equal(bus_recv(b, BUS_EP_GW(0), &bt), BUS_OK);
    assert_int_equal(bt.n_msgs, 100);
    bus_iter it = bus_iter_init(&bt);
    const uint8_t *msg;
    size_t len;
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(bus_iter_next(&it, &msg, &len), 1);
        assert_int_equal(len, 4);
        uint32_t got;
        memcpy(&got, msg, 4);
        assert_int_equal(got, i);
    }
    assert_int_equal(bus_iter_next(&it, &msg, &len), 0);
    assert_int_equal(bus_recv(b, BUS_EP_GW(0), &bt), BUS_OK);
    assert_int_equal(bt.n_msgs, 0);
    assert_int_equal(bus_send(b, BUS_N_ENDPOINTS, "x", 1), BUS_ERR_ENDPOINT);
    bus_destroy(b);
}

static void test_inbox_cap(void **state)
{
    (void)state;
    bus *b;
    assert_int_equal(bus_create(&b, "inproc", NULL), BUS_OK);
    size_t big = 4u << 20;
    char *blob = calloc(1, big);
    int sent = 0;
    while (bus_send(b, BUS_EP_SHARD(1), blob, big) == BUS_OK)
        sent++;
    assert_int_equal(sent, 15); /* 64 MiB cap, headers included */
    bus_batch bt;
    bus_recv(b, BUS_EP_SHARD(1), &bt);
    assert_int_equal(bus_send(b, BUS_EP_SHARD(1), blob, big), BUS_OK);
    free(blob);
    bus_destroy(b);
}

typedef struct sender {
    bus *b;
    uint32_t who;
} sender;

static void *send_many(void *arg)
{
    sender *s = arg;
    for (uint32_t i = 0; i < 20000; i++) {
        uint32_t m[2] = {s->who, i};
        bus_send(s->b, BUS_EP_SHARD(0), m, sizeof m);
    }
    return NULL;
}

static void test_threads_keep_per_sender_order(void **state)
{
    (void)state;
    bus *b;
    assert_int_equal(bus_create(&b, "inproc", NULL), BUS_OK);
    pthread_t t[4];
    sender s[4];
    for (uint32_t i = 0; i < 4; i++) {
        s[i] = (sender){b, i};
        pthread_create(&t[i], NULL, send_many, &s[i]);
    }
    uint32_t next[4] = {0};
    uint32_t total = 0;
    while (total < 80000) {
        bus_batch bt;
        bus_recv(b, BUS_EP_SHARD(0), &bt);
        bus_iter it = bus_iter_init(&bt);
        const uint8_t *msg;
        size_t len;
        while (bus_iter_next(&it, &msg, &len)) {
            uint32_t m[2];
            memcpy(m, msg, 8);
            assert_int_equal(m[1], next[m[0]]);
            next[m[0]]++;
            total++;
        }
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    bus_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_batch),
        cmocka_unit_test(test_inbox_cap),
        cmocka_unit_test(test_threads_keep_per_sender_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
