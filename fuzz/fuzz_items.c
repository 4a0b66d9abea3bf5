/* fuzz_items.c - the items/inventory/chat decoders on arbitrary bytes:
 * client records (PICKUP, DROP, CHAT and its UTF-8 check), server records
 * (INVENTORY, CHAT, RESULT), the item descriptor, and the bus readers
 * (RECORDS, ITEMS_LOADED, INV_LOADED, ITEM_TAKE, ITEM_DONE, CHAT). Input:
 * records `kind:u8, len:varint, body`: client and server kinds go to their
 * decoders, 0x7f to the item descriptor, 0x90 + k to the bus reader of
 * type PROTO_BUS_RECORDS + k (body without the u16 type). An INVENTORY
 * that decodes is re-encoded and must give the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip_inventory(const uint8_t *body, size_t len)
{
    proto_inventory inv, again;
    if (proto_inventory_decode(&inv, body, len) != 0)
        return;
    core_buf b;
    core_buf_init(&b);
    proto_write_inventory(&b, &inv);
    proto_records it;
    proto_records_init(&it, b.data, b.len);
    uint8_t kind;
    const uint8_t *rb;
    size_t rl;
    if (proto_records_next(&it, &kind, &rb, &rl) != 1 || rl != len || memcmp(rb, body, len) != 0 ||
        proto_inventory_decode(&again, rb, rl) != 0)
        abort();
    core_buf_free(&b);
}

static void bus(uint16_t type, const uint8_t *body, size_t len)
{
    core_rd r = core_rd_init(body, len);
    switch (type) {
    case PROTO_BUS_RECORDS: {
        uint32_t n = core_rd_u32(&r);
        proto_bus_record rec;
        for (uint32_t i = 0; i < n && proto_bus_record_read(&r, &rec) == 0; i++)
            proto_chat_check(rec.body, rec.len);
        break;
    }
    case PROTO_BUS_ITEMS_LOADED: {
        uint32_t cell, count;
        int32_t status;
        proto_loaded_item it;
        if (proto_bus_items_loaded_header(&r, &cell, &status, &count) == 0)
            for (uint32_t i = 0; i < count && proto_bus_loaded_item_read(&r, &it) == 0; i++) {
            }
        break;
    }
    case PROTO_BUS_INV_LOADED: {
        uint32_t tick, session;
        int32_t status;
        proto_inventory inv;
        proto_bus_inv_loaded_read(&r, &tick, &session, &status, &inv);
        break;
    }
    case PROTO_BUS_ITEM_TAKE: {
        proto_item_take t;
        proto_bus_item_take_read(&r, &t);
        break;
    }
    case PROTO_BUS_ITEM_DONE: {
        uint32_t tick, session;
        proto_result res;
        if (proto_bus_item_done_read(&r, &tick, &session, &res) == 0 &&
            strnlen(res.reason, sizeof res.reason) > PROTO_REASON_MAX)
            abort();
        break;
    }
    case PROTO_BUS_CHAT: {
        uint32_t tick;
        float x, y;
        proto_chat c;
        if (proto_bus_chat_read(&r, &tick, &x, &y, &c) == 0 && c.text_len > PROTO_CHAT_MAX)
            abort();
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_records it;
    proto_records_init(&it, data, size);
    uint8_t kind;
    const uint8_t *body;
    size_t len;
    while (proto_records_next(&it, &kind, &body, &len) == 1) {
        proto_pickup p;
        proto_drop d;
        proto_chat c;
        proto_result res;
        uint8_t ik;
        uint16_t q;
        switch (kind) {
        case PROTO_C_PICKUP:
            proto_pickup_decode(&p, body, len);
            break;
        case PROTO_C_DROP:
            if (proto_drop_decode(&d, body, len) == PROTO_ERR_NONE && len != 5)
                abort();
            break;
        case PROTO_C_CHAT:
            if (proto_chat_check(body, len) == PROTO_ERR_NONE && !proto_utf8_valid(body, len))
                abort();
            break;
        case PROTO_S_INVENTORY:
            roundtrip_inventory(body, len);
            break;
        case PROTO_S_CHAT:
            proto_chat_decode(&c, body, len);
            break;
        case PROTO_S_RESULT:
            proto_result_decode(&res, body, len);
            break;
        case 0x7f:
            proto_item_desc_read(body, len, &ik, &q);
            break;
        default:
            if (kind >= 0x90 && kind < 0xa0)
                bus((uint16_t)(PROTO_BUS_RECORDS + (kind - 0x90)), body, len);
            break;
        }
    }
    return 0;
}
