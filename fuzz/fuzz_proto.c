/* fuzz_proto.c - every client-protocol decoder on arbitrary bytes: record
 * framing, INPUT validation, WELCOME, and STATE applied to a slot table
 * (as a client would, message after message), plus the gateway-facing
 * bus readers (JOIN, LEAVE, INPUTS, ROUTE, FRAMES). */
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static proto_view view;
    if (!view.slots)
        proto_view_init(&view, 1024);

    proto_records it;
    proto_records_init(&it, data, size);
    uint8_t kind;
    const uint8_t *body;
    size_t len;
    while (proto_records_next(&it, &kind, &body, &len) == 1) {
        proto_input in;
        proto_welcome w;
        switch (kind) {
        case PROTO_C_INPUT:
            proto_input_decode(&in, body, len);
            break;
        case PROTO_S_WELCOME:
            proto_welcome_decode(&w, body, len);
            break;
        case PROTO_S_STATE:
            if (proto_view_apply(&view, body, len) != 0) {
                proto_view_free(&view);
                proto_view_init(&view, 1024);
            }
            break;
        default:
            break;
        }
    }

    core_rd r = core_rd_init(data, size);
    switch (proto_bus_type(&r)) {
    case PROTO_BUS_JOIN: {
        proto_join j;
        proto_bus_join_read(&r, &j);
        break;
    }
    case PROTO_BUS_LEAVE: {
        proto_leave l;
        proto_bus_leave_read(&r, &l);
        break;
    }
    case PROTO_BUS_INPUTS: {
        uint32_t n = core_rd_u32(&r);
        proto_bus_input in;
        for (uint32_t i = 0; i < n && proto_bus_input_read(&r, &in) == 0; i++) {
        }
        break;
    }
    case PROTO_BUS_ROUTE: {
        proto_route rt;
        proto_bus_route_read(&r, &rt);
        break;
    }
    case PROTO_BUS_FRAMES: {
        uint32_t tick, count;
        uint16_t shard;
        proto_frame f;
        if (proto_bus_frames_header(&r, &tick, &shard, &count) == 0)
            for (uint32_t i = 0; i < count && proto_bus_frame_read(&r, &f) == 0; i++) {
            }
        break;
    }
    default:
        break;
    }
    return 0;
}
