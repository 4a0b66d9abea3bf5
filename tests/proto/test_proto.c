/* test_proto.c - client record framing, INPUT validation, WELCOME and
 * STATE decoding (hand-built bodies, including hostile ones), and the
 * internal bus messages' round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "proto.h"

static void test_records(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    proto_input in = {7, 0.6f, -0.8f};
    proto_write_input(&b, &in);
    proto_write_ping(&b, 99);
    proto_record_begin(&b, 0x7f, 3); /* a kind nobody knows, skippable */
    core_buf_append(&b, "abc", 3);
    proto_records it;
    proto_records_init(&it, b.data, b.len);
    uint8_t kind;
    const uint8_t *body;
    size_t len;
    assert_int_equal(proto_records_next(&it, &kind, &body, &len), 1);
    assert_int_equal(kind, PROTO_C_INPUT);
    proto_input out;
    assert_int_equal(proto_input_decode(&out, body, len), PROTO_ERR_NONE);
    assert_int_equal(out.seq, 7);
    assert_true(out.dir_x == 0.6f && out.dir_y == -0.8f);
    assert_int_equal(proto_records_next(&it, &kind, &body, &len), 1);
    assert_int_equal(kind, PROTO_C_PING);
    assert_int_equal(proto_records_next(&it, &kind, &body, &len), 1);
    assert_int_equal(kind, 0x7f);
    assert_int_equal(len, 3);
    assert_int_equal(proto_records_next(&it, &kind, &body, &len), 0);
    /* truncated body: broken framing */
    proto_records_init(&it, b.data, b.len - 1);
    int rc;
    while ((rc = proto_records_next(&it, &kind, &body, &len)) == 1) {
    }
    assert_int_equal(rc, -1);
    /* a length beyond the message */
    uint8_t evil[] = {0x01, 0xff, 0xff, 0xff, 0x0f};
    proto_records_init(&it, evil, sizeof evil);
    assert_int_equal(proto_records_next(&it, &kind, &body, &len), -1);
    core_buf_free(&b);
}

static void test_input_validation(void **state)
{
    (void)state;
    proto_input out;
    uint8_t body[12];
    core_buf b;
    core_buf_init(&b);
    struct {
        float x, y;
        proto_err want;
    } cases[] = {
        {1.0f, 0.0f, PROTO_ERR_NONE},
        {0.0f, 0.0f, PROTO_ERR_NONE},
        {0.7071f, 0.7071f, PROTO_ERR_NONE},
        {1.0005f, 0.0f, PROTO_ERR_NONE},
        {1.01f, 0.0f, PROTO_ERR_OUT_OF_RANGE},
        {1.0f, 1.0f, PROTO_ERR_OUT_OF_RANGE},
        {NAN, 0.0f, PROTO_ERR_NOT_FINITE},
        {0.0f, INFINITY, PROTO_ERR_NOT_FINITE},
        {-INFINITY, 0.0f, PROTO_ERR_NOT_FINITE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        core_buf_reset(&b);
        core_buf_u32(&b, 1);
        core_buf_f32(&b, cases[i].x);
        core_buf_f32(&b, cases[i].y);
        memcpy(body, b.data, 12);
        assert_int_equal(proto_input_decode(&out, body, 12), cases[i].want);
    }
    assert_int_equal(proto_input_decode(&out, body, 11), PROTO_ERR_MALFORMED);
    assert_int_equal(proto_input_decode(&out, body, 0), PROTO_ERR_MALFORMED);
    assert_string_equal(proto_err_name(PROTO_ERR_STALE_SEQ), "stale_seq");
    assert_string_equal(proto_err_name((proto_err)999), "unknown");
    core_buf_free(&b);
}

static void test_welcome_round_trip(void **state)
{
    (void)state;
    uint8_t owners[6] = {0, 0, 1, 0, 1, 1};
    proto_obstacle obs[2] = {{10, 20, 5}, {30, 40, 6.5f}};
    proto_welcome w = {.version = 1,
                       .entity_id = 77,
                       .tick = 1234,
                       .tick_hz = 20,
                       .world_w = 768,
                       .world_h = 512,
                       .cell_size = 256,
                       .n_shards = 2,
                       .aoi_radius = 100,
                       .entity_radius = 4,
                       .player_speed = 50,
                       .cells_x = 3,
                       .cells_y = 2,
                       .owners = owners,
                       .n_obstacles = 2};
    core_buf b;
    core_buf_init(&b);
    proto_write_welcome(&b, &w, obs);
    proto_records it;
    proto_records_init(&it, b.data, b.len);
    uint8_t kind;
    const uint8_t *body;
    size_t len;
    assert_int_equal(proto_records_next(&it, &kind, &body, &len), 1);
    assert_int_equal(kind, PROTO_S_WELCOME);
    proto_welcome d;
    assert_int_equal(proto_welcome_decode(&d, body, len), 0);
    assert_int_equal(d.entity_id, 77);
    assert_int_equal(d.tick, 1234);
    assert_int_equal(d.cells_x, 3);
    assert_memory_equal(d.owners, owners, 6);
    assert_int_equal(d.n_obstacles, 2);
    core_rd r = core_rd_init(d.obstacles, 24);
    core_rd_f32(&r);
    core_rd_f32(&r);
    core_rd_f32(&r);
    assert_true(core_rd_f32(&r) == 30.0f);
    /* one byte short or long is refused */
    assert_int_equal(proto_welcome_decode(&d, body, len - 1), -1);
    core_buf_free(&b);
}

/* STATE body builder for tests. */
static void state_head(core_buf *b, uint32_t tick, uint32_t ack, uint8_t flags)
{
    core_buf_u32(b, tick);
    core_buf_u32(b, ack);
    core_buf_u8(b, flags);
    core_buf_u8(b, 0);
}

static void enter(core_buf *b, uint32_t slot, uint32_t id, int32_t x, int32_t y, const char *n)
{
    core_buf_varint(b, slot);
    core_buf_u32(b, id);
    core_buf_u8(b, PROTO_KIND_PLAYER);
    core_buf_i32(b, x);
    core_buf_i32(b, y);
    core_buf_u8(b, (uint8_t)strlen(n));
    core_buf_append(b, n, strlen(n));
}

static void test_view_apply(void **state)
{
    (void)state;
    proto_view v;
    proto_view_init(&v, 16);
    core_buf b;
    core_buf_init(&b);
    /* tick 1: two enters */
    state_head(&b, 1, 0, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 2);
    enter(&b, 0, 100, 160, 320, "ada");
    enter(&b, 3, 200, -16, 0, "");
    core_buf_varint(&b, 0);
    assert_int_equal(proto_view_apply(&v, b.data, b.len), 0);
    assert_int_equal(proto_view_find(&v, 200), 3);
    assert_string_equal(v.slots[0].name, "ada");
    /* tick 2: slot 0 moves by (+5,-3); slot 3 jumps (absolute) */
    core_buf_reset(&b);
    state_head(&b, 2, 9, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 4);
    core_buf_u8(&b, 0x09); /* bits 0 and 3 */
    core_buf_u8(&b, 5);
    core_buf_u8(&b, (uint8_t)-3);
    core_buf_u8(&b, 0x80);
    core_buf_i32(&b, 100000);
    core_buf_i32(&b, -5);
    assert_int_equal(proto_view_apply(&v, b.data, b.len), 0);
    assert_int_equal(v.ack_seq, 9);
    assert_int_equal(v.slots[0].x_q, 165);
    assert_int_equal(v.slots[0].y_q, 317);
    assert_int_equal(v.slots[3].x_q, 100000);
    assert_int_equal(v.last_updates, 2);
    /* tick 3: slot 0 leaves */
    core_buf_reset(&b);
    state_head(&b, 3, 9, 0);
    core_buf_varint(&b, 1);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 0);
    assert_int_equal(proto_view_apply(&v, b.data, b.len), 0);
    assert_int_equal(proto_view_find(&v, 100), -1);
    /* hostile: a delta for an empty slot, a leave of an empty slot, a slot
     * out of range, trailing bytes */
    core_buf_reset(&b);
    state_head(&b, 4, 9, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 1);
    core_buf_u8(&b, 1);
    core_buf_u8(&b, 1);
    core_buf_u8(&b, 1);
    assert_int_equal(proto_view_apply(&v, b.data, b.len), -1);
    core_buf_reset(&b);
    state_head(&b, 4, 9, 0);
    core_buf_varint(&b, 1);
    core_buf_varint(&b, 0);
    assert_int_equal(proto_view_apply(&v, b.data, b.len), -1);
    core_buf_reset(&b);
    state_head(&b, 4, 9, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 1);
    enter(&b, 99, 5, 0, 0, "");
    core_buf_varint(&b, 0);
    assert_int_equal(proto_view_apply(&v, b.data, b.len), -1);
    /* RESET clears everything */
    core_buf_reset(&b);
    state_head(&b, 5, 9, PROTO_STATE_RESET);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 0);
    core_buf_varint(&b, 0);
    core_buf_u8(&b, 0); /* trailing garbage */
    assert_int_equal(proto_view_apply(&v, b.data, b.len), -1);
    b.len--;
    assert_int_equal(proto_view_apply(&v, b.data, b.len), 0);
    assert_int_equal(proto_view_find(&v, 200), -1);
    core_buf_free(&b);
    proto_view_free(&v);
}

static void test_bus_messages(void **state)
{
    (void)state;
    core_buf b;
    core_buf_init(&b);
    proto_join j = {.session_id = 5, .gw_id = 2, .account_id = 9, .x = 1.5f, .y = 2.5f};
    strcpy(j.name, "bob");
    proto_bus_join_write(&b, &j);
    core_rd r = core_rd_init(b.data, b.len);
    assert_int_equal(proto_bus_type(&r), PROTO_BUS_JOIN);
    proto_join j2;
    assert_int_equal(proto_bus_join_read(&r, &j2), 0);
    assert_string_equal(j2.name, "bob");
    assert_int_equal(j2.gw_id, 2);
    assert_true(j2.y == 2.5f);

    core_buf_reset(&b);
    size_t at;
    proto_bus_inputs_begin(&b, &at);
    for (uint32_t i = 1; i <= 3; i++) {
        proto_bus_input in = {5, 64, i, {i * 10, 0.0f, 1.0f}};
        proto_bus_inputs_add(&b, at, &in);
    }
    r = core_rd_init(b.data, b.len);
    assert_int_equal(proto_bus_type(&r), PROTO_BUS_INPUTS);
    assert_int_equal(core_rd_u32(&r), 3);
    for (uint32_t i = 1; i <= 3; i++) {
        proto_bus_input in;
        assert_int_equal(proto_bus_input_read(&r, &in), 0);
        assert_int_equal(in.gseq, i);
        assert_int_equal(in.in.seq, i * 10);
    }
    assert_int_equal(core_rd_left(&r), 0);

    core_buf_reset(&b);
    proto_bus_frames_begin(&b, 77, 1, &at);
    size_t la = proto_bus_frames_item_begin(&b, at, 5, PROTO_FRAME_RELIABLE);
    core_buf_append(&b, "hello", 5);
    proto_bus_frames_item_end(&b, la);
    la = proto_bus_frames_item_begin(&b, at, 6, 0);
    proto_bus_frames_item_end(&b, la);
    r = core_rd_init(b.data, b.len);
    assert_int_equal(proto_bus_type(&r), PROTO_BUS_FRAMES);
    uint32_t tick, count;
    uint16_t shard;
    assert_int_equal(proto_bus_frames_header(&r, &tick, &shard, &count), 0);
    assert_int_equal(tick, 77);
    assert_int_equal(count, 2);
    proto_frame f;
    assert_int_equal(proto_bus_frame_read(&r, &f), 0);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "hello", 5);
    assert_int_equal(proto_bus_frame_read(&r, &f), 0);
    assert_int_equal(f.len, 0);
    assert_int_equal(f.session_id, 6);
    /* truncated message */
    r = core_rd_init(b.data, b.len - 3);
    proto_bus_type(&r);
    proto_bus_frames_header(&r, &tick, &shard, &count);
    assert_int_equal(proto_bus_frame_read(&r, &f), 0);
    assert_int_equal(proto_bus_frame_read(&r, &f), -1);
    core_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_input_validation),
        cmocka_unit_test(test_welcome_round_trip),
        cmocka_unit_test(test_view_apply),
        cmocka_unit_test(test_bus_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
