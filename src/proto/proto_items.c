/* proto_items.c - items, inventory and chat on the wire: the client
 * records (docs/protocol.md sections 5 and 6), the item descriptor of a
 * STATE enter (section 7), and the bus messages around them.
 *
 * Client -> server (body sizes are exact):
 *   PICKUP    0x03  u32 req, u32 entity_id                       (8 bytes)
 *   DROP      0x04  u32 req, u8 slot                             (5 bytes)
 *   CHAT      0x05  text                                         (1..200 bytes)
 * Server -> client:
 *   INVENTORY 0x86  u8 n_slots, u8 n, n x (u8 slot, u8 item_kind, u16 qty)
 *   CHAT      0x87  u32 from, u8 name_len, name, u8 text_len, text
 *   RESULT    0x88  u32 req, u8 action, u16 code, u32 entity_id, u8 slot,
 *                   u8 item_kind, u16 qty, u8 reason_len, reason
 * Item descriptor (the ENTER name field when kind is 2): u8 item_kind,
 * u16 quantity.
 * Bus:
 *   RECORDS      u16 type, u32 count, count x (u32 session, u32 entity,
 *                u32 gseq, u8 kind, u16 len, body)
 *   ITEMS_LOADED u16 type, u32 cell, i32 status, u32 count,
 *                count x (i64 db_id, f32 x, f32 y, u8 kind, u16 qty)
 *   INV_LOADED   u16 type, u32 tick, u32 session, i32 status, INVENTORY body
 *   ITEM_TAKE    u16 type, u32 tick, u16 requester, u32 session,
 *                i64 account, u32 item_entity, u8 slot, u32 req
 *   ITEM_DONE    u16 type, u32 tick, u32 session, RESULT body
 *   CHAT         u16 type, u32 tick, f32 x, f32 y, server CHAT body
 * Readers take a core_rd positioned after the type and return -1 on any
 * short or inconsistent body; they never trust a length. */
#include <math.h>
#include <string.h>

#include "proto.h"

/* ---- validation ---- */

bool proto_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

proto_err proto_chat_check(const uint8_t *text, size_t len)
{
    if (len == 0 || len > PROTO_CHAT_MAX || !proto_utf8_valid(text, len))
        return PROTO_ERR_BAD_TEXT;
    for (size_t i = 0; i < len; i++)
        if (text[i] < 0x20 || text[i] == 0x7F) /* no newlines or escapes in a chat line */
            return PROTO_ERR_BAD_TEXT;
    return PROTO_ERR_NONE;
}

proto_err proto_pickup_decode(proto_pickup *out, const uint8_t *body, size_t len)
{
    if (len != 8)
        return PROTO_ERR_MALFORMED;
    core_rd r = core_rd_init(body, len);
    out->req = core_rd_u32(&r);
    out->entity_id = core_rd_u32(&r);
    return PROTO_ERR_NONE;
}

proto_err proto_drop_decode(proto_drop *out, const uint8_t *body, size_t len)
{
    if (len != 5)
        return PROTO_ERR_MALFORMED;
    core_rd r = core_rd_init(body, len);
    out->req = core_rd_u32(&r);
    out->slot = core_rd_u8(&r);
    return PROTO_ERR_NONE;
}

void proto_write_pickup(core_buf *b, const proto_pickup *p)
{
    proto_record_begin(b, PROTO_C_PICKUP, 8);
    core_buf_u32(b, p->req);
    core_buf_u32(b, p->entity_id);
}

void proto_write_drop(core_buf *b, const proto_drop *d)
{
    proto_record_begin(b, PROTO_C_DROP, 5);
    core_buf_u32(b, d->req);
    core_buf_u8(b, d->slot);
}

void proto_write_chat_req(core_buf *b, const char *text, size_t len)
{
    proto_record_begin(b, PROTO_C_CHAT, len);
    core_buf_append(b, text, len);
}

/* ---- INVENTORY ---- */

static size_t inventory_used(const proto_inventory *inv)
{
    size_t n = 0;
    for (int i = 0; i < PROTO_INV_SLOTS; i++)
        n += inv->slots[i].item_kind != 0;
    return n;
}

static void inventory_body(core_buf *b, const proto_inventory *inv)
{
    core_buf_u8(b, PROTO_INV_SLOTS);
    core_buf_u8(b, (uint8_t)inventory_used(inv));
    for (int i = 0; i < PROTO_INV_SLOTS; i++) {
        if (!inv->slots[i].item_kind)
            continue;
        core_buf_u8(b, (uint8_t)i);
        core_buf_u8(b, inv->slots[i].item_kind);
        core_buf_u16(b, inv->slots[i].quantity);
    }
}

void proto_write_inventory(core_buf *b, const proto_inventory *inv)
{
    proto_record_begin(b, PROTO_S_INVENTORY, 2 + 4 * inventory_used(inv));
    inventory_body(b, inv);
}

/* Reads an INVENTORY body from r (which may continue after it). */
static int inventory_read(core_rd *r, proto_inventory *out)
{
    memset(out, 0, sizeof *out);
    uint8_t n_slots = core_rd_u8(r), n = core_rd_u8(r);
    if (!core_rd_ok(r) || n_slots != PROTO_INV_SLOTS || n > n_slots)
        return -1;
    int last = -1;
    for (uint8_t i = 0; i < n; i++) {
        uint8_t slot = core_rd_u8(r), kind = core_rd_u8(r);
        uint16_t qty = core_rd_u16(r);
        if (!core_rd_ok(r) || slot >= n_slots || (int)slot <= last || !kind || !qty)
            return -1;
        last = slot;
        out->slots[slot].item_kind = kind;
        out->slots[slot].quantity = qty;
    }
    return core_rd_ok(r) ? 0 : -1;
}

int proto_inventory_decode(proto_inventory *out, const uint8_t *body, size_t len)
{
    core_rd r = core_rd_init(body, len);
    if (inventory_read(&r, out) != 0 || core_rd_left(&r) != 0)
        return -1;
    return 0;
}

/* ---- CHAT ---- */

static size_t chat_body_len(const proto_chat *c)
{
    return 4 + 1 + strnlen(c->name, PROTO_NAME_MAX) + 1 + c->text_len;
}

static void chat_body(core_buf *b, const proto_chat *c)
{
    size_t nl = strnlen(c->name, PROTO_NAME_MAX);
    core_buf_u32(b, c->entity_id);
    core_buf_u8(b, (uint8_t)nl);
    core_buf_append(b, c->name, nl);
    core_buf_u8(b, c->text_len);
    core_buf_append(b, c->text, c->text_len);
}

void proto_write_chat(core_buf *b, const proto_chat *c)
{
    proto_record_begin(b, PROTO_S_CHAT, chat_body_len(c));
    chat_body(b, c);
}

static int chat_read(core_rd *r, proto_chat *out)
{
    memset(out, 0, sizeof *out);
    out->entity_id = core_rd_u32(r);
    uint8_t nl = core_rd_u8(r);
    const uint8_t *name = core_rd_bytes(r, nl);
    uint8_t tl = core_rd_u8(r);
    const uint8_t *text = core_rd_bytes(r, tl);
    if (!core_rd_ok(r) || nl > PROTO_NAME_MAX || proto_chat_check(text, tl) != PROTO_ERR_NONE ||
        !proto_utf8_valid(name, nl))
        return -1;
    memcpy(out->name, name, nl);
    memcpy(out->text, text, tl);
    out->text_len = tl;
    return 0;
}

int proto_chat_decode(proto_chat *out, const uint8_t *body, size_t len)
{
    core_rd r = core_rd_init(body, len);
    if (chat_read(&r, out) != 0 || core_rd_left(&r) != 0)
        return -1;
    return 0;
}

/* ---- RESULT ---- */

static void result_body(core_buf *b, const proto_result *res)
{
    size_t rl = strnlen(res->reason, PROTO_REASON_MAX);
    core_buf_u32(b, res->req);
    core_buf_u8(b, res->action);
    core_buf_u16(b, res->code);
    core_buf_u32(b, res->entity_id);
    core_buf_u8(b, res->slot);
    core_buf_u8(b, res->item_kind);
    core_buf_u16(b, res->quantity);
    core_buf_u8(b, (uint8_t)rl);
    core_buf_append(b, res->reason, rl);
}

void proto_write_result(core_buf *b, const proto_result *res)
{
    proto_record_begin(b, PROTO_S_RESULT, 16 + strnlen(res->reason, PROTO_REASON_MAX));
    result_body(b, res);
}

static int result_read(core_rd *r, proto_result *out)
{
    memset(out, 0, sizeof *out);
    out->req = core_rd_u32(r);
    out->action = core_rd_u8(r);
    out->code = core_rd_u16(r);
    out->entity_id = core_rd_u32(r);
    out->slot = core_rd_u8(r);
    out->item_kind = core_rd_u8(r);
    out->quantity = core_rd_u16(r);
    uint8_t rl = core_rd_u8(r);
    const uint8_t *reason = core_rd_bytes(r, rl);
    if (!core_rd_ok(r) || rl > PROTO_REASON_MAX || out->slot >= PROTO_INV_SLOTS ||
        (out->action != PROTO_ACT_PICKUP && out->action != PROTO_ACT_DROP) ||
        out->code >= PROTO_ERR_COUNT || !proto_utf8_valid(reason, rl))
        return -1;
    memcpy(out->reason, reason, rl);
    return 0;
}

int proto_result_decode(proto_result *out, const uint8_t *body, size_t len)
{
    core_rd r = core_rd_init(body, len);
    if (result_read(&r, out) != 0 || core_rd_left(&r) != 0)
        return -1;
    return 0;
}

/* ---- item descriptor ---- */

void proto_item_desc_write(uint8_t out[PROTO_ITEM_DESC_LEN], uint8_t item_kind, uint16_t qty)
{
    out[0] = item_kind;
    out[1] = (uint8_t)qty;
    out[2] = (uint8_t)(qty >> 8);
}

int proto_item_desc_read(const uint8_t *name, size_t len, uint8_t *item_kind, uint16_t *qty)
{
    if (len != PROTO_ITEM_DESC_LEN || name[0] == 0)
        return -1;
    *item_kind = name[0];
    *qty = (uint16_t)(name[1] | (name[2] << 8));
    return 0;
}

/* ---- bus: RECORDS ---- */

void proto_bus_records_begin(core_buf *b, size_t *count_at)
{
    core_buf_u16(b, PROTO_BUS_RECORDS);
    *count_at = b->len;
    core_buf_u32(b, 0);
}

void proto_bus_records_add(core_buf *b, size_t count_at, const proto_bus_record *rec)
{
    core_buf_u32(b, rec->session_id);
    core_buf_u32(b, rec->entity_id);
    core_buf_u32(b, rec->gseq);
    core_buf_u8(b, rec->kind);
    core_buf_u16(b, rec->len);
    core_buf_append(b, rec->body, rec->len);
    core_buf_put_u32_at(b, count_at, core_buf_get_u32_at(b, count_at) + 1);
}

int proto_bus_record_read(core_rd *r, proto_bus_record *rec)
{
    rec->session_id = core_rd_u32(r);
    rec->entity_id = core_rd_u32(r);
    rec->gseq = core_rd_u32(r);
    rec->kind = core_rd_u8(r);
    rec->len = core_rd_u16(r);
    rec->body = core_rd_bytes(r, rec->len);
    if (!core_rd_ok(r) || !proto_is_item_record(rec->kind) || rec->len > PROTO_CHAT_MAX)
        return -1;
    return 0;
}

/* ---- bus: ITEMS_LOADED ---- */

void proto_bus_items_loaded_begin(core_buf *b, uint32_t cell, int32_t status, size_t *count_at)
{
    core_buf_u16(b, PROTO_BUS_ITEMS_LOADED);
    core_buf_u32(b, cell);
    core_buf_i32(b, status);
    *count_at = b->len;
    core_buf_u32(b, 0);
}

void proto_bus_items_loaded_add(core_buf *b, size_t count_at, const proto_loaded_item *it)
{
    core_buf_u64(b, (uint64_t)it->db_id);
    core_buf_f32(b, it->x);
    core_buf_f32(b, it->y);
    core_buf_u8(b, it->item_kind);
    core_buf_u16(b, it->quantity);
    core_buf_put_u32_at(b, count_at, core_buf_get_u32_at(b, count_at) + 1);
}

int proto_bus_items_loaded_header(core_rd *r, uint32_t *cell, int32_t *status, uint32_t *count)
{
    *cell = core_rd_u32(r);
    *status = core_rd_i32(r);
    *count = core_rd_u32(r);
    return core_rd_ok(r) ? 0 : -1;
}

int proto_bus_loaded_item_read(core_rd *r, proto_loaded_item *it)
{
    it->db_id = (int64_t)core_rd_u64(r);
    it->x = core_rd_f32(r);
    it->y = core_rd_f32(r);
    it->item_kind = core_rd_u8(r);
    it->quantity = core_rd_u16(r);
    if (!core_rd_ok(r) || it->db_id <= 0 || !isfinite(it->x) || !isfinite(it->y) ||
        !it->item_kind || !it->quantity)
        return -1;
    return 0;
}

/* ---- bus: INV_LOADED ---- */

void proto_bus_inv_loaded_write(core_buf *b, uint32_t tick, uint32_t session_id, int32_t status,
                                const proto_inventory *inv)
{
    core_buf_u16(b, PROTO_BUS_INV_LOADED);
    core_buf_u32(b, tick);
    core_buf_u32(b, session_id);
    core_buf_i32(b, status);
    inventory_body(b, inv);
}

int proto_bus_inv_loaded_read(core_rd *r, uint32_t *tick, uint32_t *session_id, int32_t *status,
                              proto_inventory *inv)
{
    *tick = core_rd_u32(r);
    *session_id = core_rd_u32(r);
    *status = core_rd_i32(r);
    if (!core_rd_ok(r) || inventory_read(r, inv) != 0)
        return -1;
    return 0;
}

/* ---- bus: ITEM_TAKE, ITEM_DONE, CHAT ---- */

void proto_bus_item_take_write(core_buf *b, const proto_item_take *t)
{
    core_buf_u16(b, PROTO_BUS_ITEM_TAKE);
    core_buf_u32(b, t->tick);
    core_buf_u16(b, t->requester);
    core_buf_u32(b, t->session_id);
    core_buf_u64(b, (uint64_t)t->account_id);
    core_buf_u32(b, t->item_entity);
    core_buf_u8(b, t->slot);
    core_buf_u32(b, t->req);
}

int proto_bus_item_take_read(core_rd *r, proto_item_take *t)
{
    t->tick = core_rd_u32(r);
    t->requester = core_rd_u16(r);
    t->session_id = core_rd_u32(r);
    t->account_id = (int64_t)core_rd_u64(r);
    t->item_entity = core_rd_u32(r);
    t->slot = core_rd_u8(r);
    t->req = core_rd_u32(r);
    if (!core_rd_ok(r) || t->slot >= PROTO_INV_SLOTS || !t->session_id)
        return -1;
    return 0;
}

void proto_bus_item_done_write(core_buf *b, uint32_t tick, uint32_t session_id,
                               const proto_result *res)
{
    core_buf_u16(b, PROTO_BUS_ITEM_DONE);
    core_buf_u32(b, tick);
    core_buf_u32(b, session_id);
    result_body(b, res);
}

int proto_bus_item_done_read(core_rd *r, uint32_t *tick, uint32_t *session_id, proto_result *res)
{
    *tick = core_rd_u32(r);
    *session_id = core_rd_u32(r);
    if (!core_rd_ok(r) || result_read(r, res) != 0)
        return -1;
    return 0;
}

void proto_bus_chat_write(core_buf *b, uint32_t tick, float x, float y, const proto_chat *c)
{
    core_buf_u16(b, PROTO_BUS_CHAT);
    core_buf_u32(b, tick);
    core_buf_f32(b, x);
    core_buf_f32(b, y);
    chat_body(b, c);
}

int proto_bus_chat_read(core_rd *r, uint32_t *tick, float *x, float *y, proto_chat *c)
{
    *tick = core_rd_u32(r);
    *x = core_rd_f32(r);
    *y = core_rd_f32(r);
    if (!core_rd_ok(r) || !isfinite(*x) || !isfinite(*y) || chat_read(r, c) != 0)
        return -1;
    return 0;
}
