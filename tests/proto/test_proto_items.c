/* test_proto_items.c - the items/inventory/chat codecs: strict UTF-8, the
 * client records' size checks, INVENTORY / CHAT / RESULT round trips and
 * refusals, the item descriptor, and the bus messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "proto.h"

static void test_utf8_and_chat_text(void **state)
{
    (void)state;
    const char *good[] = {"hello", "w\xc3\xb6rld", "\xe2\x9c\x93", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(proto_chat_check((const uint8_t *)good[i], strlen(good[i])),
                         PROTO_ERR_NONE);
    const char *bad[] = {"\xff",
                         "\xc0\xaf" /* overlong */,
                         "\xed\xa0\x80" /* surrogate */,
                         "\xf4\x90\x80\x80" /* > U+10FFFF */,
                         "\xe2\x9c" /* truncated */,
                         "a\nb",
                         "\x7f"};
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(proto_chat_check((const uint8_t *)bad[i], strlen(bad[i])),
                         PROTO_ERR_BAD_TEXT);
    uint8_t long_text[PROTO_CHAT_MAX + 1];
    memset(long_text, 'x', sizeof long_text);
    assert_int_equal(proto_chat_check(long_text, PROTO_CHAT_MAX), PROTO_ERR_NONE);
    assert_int_equal(proto_chat_check(long_text, PROTO_CHAT_MAX + 1), PROTO_ERR_BAD_TEXT);
    assert_int_equal(proto_chat_check(long_text, 0), PROTO_ERR_BAD_TEXT);
}

static void test_client_records(void **state)
{
    (void)state;
    uint8_t b[8] = {1, 0, 0, 0, 0x40, 0, 0, 0};
    proto_pickup p;
    assert_int_equal(proto_pickup_decode(&p, b, 8), PROTO_ERR_NONE);
    assert_int_equal(p.req, 1);
    assert_int_equal(p.entity_id, 64);
    assert_int_equal(proto_pickup_decode(&p, b, 7), PROTO_ERR_MALFORMED);
    proto_drop d;
    assert_int_equal(proto_drop_decode(&d, b, 5), PROTO_ERR_NONE);
    assert_int_equal(d.slot, 0x40); /* out of range: the shard refuses it with a RESULT */
    assert_int_equal(proto_drop_decode(&d, b, 6), PROTO_ERR_MALFORMED);
}

static void test_server_records_round_trip(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    proto_inventory inv = {0}, inv2;
    inv.slots[0].item_kind = 2, inv.slots[0].quantity = 50;
    inv.slots[31].item_kind = 8, inv.slots[31].quantity = 1;
    proto_write_inventory(&b, &inv);
    assert_int_equal(b.data[0], PROTO_S_INVENTORY);
    assert_int_equal(b.data[1], 2 + 8);
    assert_int_equal(proto_inventory_decode(&inv2, b.data + 2, b.len - 2), 0);
    assert_memory_equal(&inv, &inv2, sizeof inv);
    b.data[2 + 2] = 31; /* entries out of order */
    assert_int_equal(proto_inventory_decode(&inv2, b.data + 2, b.len - 2), -1);

    core_buf_reset(&b);
    proto_chat c = {.entity_id = 65, .name = "ada", .text_len = 2, .text = "hi"}, c2;
    proto_write_chat(&b, &c);
    assert_int_equal(proto_chat_decode(&c2, b.data + 2, b.len - 2), 0);
    assert_string_equal(c2.text, "hi");
    assert_string_equal(c2.name, "ada");
    assert_int_equal(proto_chat_decode(&c2, b.data + 2, b.len - 3), -1);

    core_buf_reset(&b);
    proto_result r = {.req = 9,
                      .action = PROTO_ACT_DROP,
                      .code = PROTO_ERR_STORE_UNAVAILABLE,
                      .slot = 3,
                      .item_kind = 1,
                      .quantity = 2,
                      .reason = "database down"},
                 r2;
    proto_write_result(&b, &r);
    assert_int_equal(proto_result_decode(&r2, b.data + 2, b.len - 2), 0);
    assert_true(r2.req == 9 && r2.action == PROTO_ACT_DROP && r2.code == r.code && r2.slot == 3 &&
                r2.item_kind == 1 && r2.quantity == 2);
    assert_string_equal(r2.reason, "database down");
    b.data[2 + 4] = 3; /* no such action */
    assert_int_equal(proto_result_decode(&r2, b.data + 2, b.len - 2), -1);

    uint8_t desc[PROTO_ITEM_DESC_LEN];
    uint8_t k;
    uint16_t q;
    proto_item_desc_write(desc, 7, 300);
    assert_int_equal(proto_item_desc_read(desc, 3, &k, &q), 0);
    assert_int_equal(k, 7);
    assert_int_equal(q, 300);
    desc[0] = 0;
    assert_int_equal(proto_item_desc_read(desc, 3, &k, &q), -1);
    core_buf_free(&b);
}

static void test_bus_messages(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    size_t at;
    proto_bus_records_begin(&b, &at);
    proto_bus_record rec = {7, 64, 3, PROTO_C_CHAT, 5, (const uint8_t *)"hello"}, rec2;
    proto_bus_records_add(&b, at, &rec);
    core_rd r = core_rd_init(b.data, b.len);
    assert_int_equal(proto_bus_type(&r), PROTO_BUS_RECORDS);
    assert_int_equal(core_rd_u32(&r), 1);
    assert_int_equal(proto_bus_record_read(&r, &rec2), 0);
    assert_int_equal(rec2.gseq, 3);
    assert_memory_equal(rec2.body, "hello", 5);

    core_buf_reset(&b);
    proto_result res = {.req = 1, .action = PROTO_ACT_PICKUP, .entity_id = 64, .slot = 2}, res2;
    proto_bus_item_done_write(&b, 100, 7, &res);
    r = core_rd_init(b.data, b.len);
    assert_int_equal(proto_bus_type(&r), PROTO_BUS_ITEM_DONE);
    uint32_t tick, session;
    assert_int_equal(proto_bus_item_done_read(&r, &tick, &session, &res2), 0);
    assert_int_equal(tick, 100);
    assert_int_equal(res2.slot, 2);

    core_buf_reset(&b);
    proto_chat c = {.entity_id = 1, .name = "a", .text_len = 1, .text = "x"}, c2;
    proto_bus_chat_write(&b, 5, 1.5f, 2.5f, &c);
    r = core_rd_init(b.data, b.len);
    proto_bus_type(&r);
    float x, y;
    assert_int_equal(proto_bus_chat_read(&r, &tick, &x, &y, &c2), 0);
    assert_true(x == 1.5f && y == 2.5f);
    core_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_and_chat_text),
        cmocka_unit_test(test_client_records),
        cmocka_unit_test(test_server_records_round_trip),
        cmocka_unit_test(test_bus_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
