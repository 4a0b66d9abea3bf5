/* sim_items.c - items lying in the world and players' inventories.
 *
 * Divisions: state and metrics; lazy cell loading; inventories; pickup
 * and drop (player side, owner side, store completions, outcomes);
 * handoff of a client's inventory; bus messages.
 *
 * Items are entities of kind PROTO_KIND_ITEM owned by the shard owning
 * their cell; they never move, so they are never handed off, and reach
 * neighbours as ghosts like any border entity. A cell's items are loaded
 * the first time a player (owned or ghost) comes within aoi_radius of it:
 * the loader thread reads them and posts ITEMS_LOADED; a failed load is
 * asked again after CELL_RETRY_S.
 *
 * A pickup or drop is committed durably before anyone sees it:
 *  - player side (the shard owning the player): checks, then reserves a
 *    free inventory slot (pickup) or the dropped slot (drop);
 *  - owner side (the shard owning the item's cell; the same shard for a
 *    drop): reserves the item (nobody else can take it), submits
 *    ITEM_TAKE / ITEM_PUT to the store (completion queue = shard index);
 *  - on the completion, only after the commit: the item leaves the world
 *    (pickup) or appears (drop) for everyone, and the outcome goes to the
 *    player's shard (ITEM_DONE, forwarded along the handoff trail), which
 *    updates the inventory and sends RESULT and INVENTORY. A failure
 *    (queue full, database down, conflict) clears the reservations and
 *    changes nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"
#include "store.h"

#define SIM_REACH_UNITS 16.0f /* pickup reach beyond the entity radius */
#define CELL_RETRY_S 2        /* a failed cell or inventory load is retried after */
#define INV_LOAD_TIMEOUT_S 10 /* a load whose answer got lost is asked again */
#define COMPLETIONS_PER_POLL 64

enum { CELL_UNLOADED = 0, CELL_LOADING, CELL_LOADED };

/* A pickup or drop waiting for its store completion (owner side). */
typedef struct item_action {
    uint64_t token;       /* store completion token */
    uint8_t action;       /* PROTO_ACT_* */
    uint16_t requester;   /* shard of the player */
    uint32_t session_id;  /* the player */
    uint32_t req;         /* the client's request id */
    uint32_t item_entity; /* pickup: the reserved item */
    uint8_t slot;         /* inventory slot */
    float x, y;           /* drop: where the item will lie */
} item_action;

struct sim_items {
    sim_loader *loader;
    uint32_t n_cells;
    uint8_t *cell_state;  /* CELL_* per cell (only our cells are used) */
    uint32_t *cell_retry; /* UNLOADED: tick before which the cell is not asked again */
    core_idmap by_db;     /* world_items id -> slot of our item entity */
    item_action *acts;    /* waiting for their completion, unordered */
    uint32_t n_acts, acts_cap;
    uint64_t next_token;
    core_counter *m_done[2][PROTO_ERR_COUNT]; /* [pickup, drop][outcome] */
    core_counter *m_cells_loaded;
    core_counter *m_chat_lines;
};

/* ---- state and metrics ---- */

void sim_shard_set_loader(sim_shard *s, sim_loader *l, core_metrics *m)
{
    if (s->items)
        return;
    struct sim_items *it = calloc(1, sizeof *it);
    if (!it)
        core_die("out of memory");
    it->loader = l;
    it->n_cells = (uint32_t)s->cells->cells_x * s->cells->cells_y;
    it->cell_state = calloc(it->n_cells, 1);
    it->cell_retry = calloc(it->n_cells, sizeof *it->cell_retry);
    if (!it->cell_state || !it->cell_retry)
        core_die("out of memory");
    core_idmap_init(&it->by_db);
    char labels[96];
    for (int a = 0; a < 2; a++)
        for (int e = 0; e < PROTO_ERR_COUNT; e++) {
            if ((e != PROTO_ERR_NONE && e < PROTO_ERR_NOT_AN_ITEM) || e == PROTO_ERR_BAD_TEXT ||
                e == PROTO_ERR_CHAT_RATE_LIMITED)
                continue;
            snprintf(labels, sizeof labels, "action=\"%s\",result=\"%s\"", a ? "drop" : "pickup",
                     e ? proto_err_name((proto_err)e) : "ok");
            it->m_done[a][e] = core_metrics_counter(
                m, "tessera_item_actions_total", "Pickups and drops finished, by outcome", labels);
        }
    it->m_cells_loaded = core_metrics_counter(m, "tessera_item_cells_loaded_total",
                                              "Cells whose items were loaded", NULL);
    it->m_chat_lines = core_metrics_counter(m, "tessera_chat_lines_total", "Chat lines said", NULL);
    s->items = it;
}

void sim_items_destroy(sim_shard *s)
{
    struct sim_items *it = s->items;
    if (!it)
        return;
    free(it->cell_state);
    free(it->cell_retry);
    core_idmap_free(&it->by_db);
    free(it->acts);
    free(it);
    s->items = NULL;
}

size_t sim_entity_label(const sim_shard *s, uint32_t e, uint8_t out[PROTO_NAME_MAX])
{
    if (s->kind[e] == PROTO_KIND_ITEM) {
        proto_item_desc_write(out, s->label[e].item.kind, s->label[e].item.qty);
        return PROTO_ITEM_DESC_LEN;
    }
    char name[PROTO_NAME_MAX + 1];
    size_t nl = sim_name_get(s, e, name);
    memcpy(out, name, nl);
    return nl;
}

void sim_items_ghost_label(sim_shard *s, uint32_t slot, const uint8_t *label, size_t len)
{
    sim_item g = {0};
    if (proto_item_desc_read(label, len, &g.kind, &g.qty) != 0 || !g.qty) {
        g.kind = 1; /* a descriptor clients accept, whatever a peer sent */
        g.qty = 1;
    }
    sim_label_item(s, slot, g);
}

/* ---- lazy cell loading ---- */

/* Asks for the cells of ours within aoi_radius of (x, y) that never loaded. */
static void activate_near(sim_shard *s, float x, float y)
{
    struct sim_items *it = s->items;
    const spatial_cellmap *cm = s->cells;
    float r = (float)s->cfg->aoi_radius;
    /* the AOI square around (x, y) lies in the cells of these nine points,
     * since aoi_radius <= cell_size (as for ghosts) */
    for (int j = -1; j <= 1; j++)
        for (int i = -1; i <= 1; i++) {
            uint32_t cell = spatial_cellmap_cell(cm, x + (float)i * r, y + (float)j * r);
            if (cm->owner[cell] != s->index || it->cell_state[cell] != CELL_UNLOADED ||
                (int32_t)(s->tick - it->cell_retry[cell]) < 0)
                continue;
            if (sim_loader_cell(it->loader, s->index, cell) == 0)
                it->cell_state[cell] = CELL_LOADING;
            else
                it->cell_retry[cell] = s->tick + (uint32_t)s->cfg->tick_hz;
        }
}

static uint32_t spawn_item(sim_shard *s, const proto_loaded_item *li)
{
    float x = li->x, y = li->y;
    sim_clamp_world(s, &x, &y);
    if (spatial_cellmap_owner(s->cells, x, y) != s->index) {
        core_log(CORE_LOG_WARN, "sim", NULL, "shard %u: item %lld lies outside our cells", s->index,
                 (long long)li->db_id);
        return SIM_NONE;
    }
    if ((uint64_t)li->db_id > UINT32_MAX - 1) {
        core_log(CORE_LOG_WARN, "sim", NULL, "item id %lld too large", (long long)li->db_id);
        return SIM_NONE;
    }
    uint32_t slot = sim_slot_alloc(s);
    uint32_t id = sim_entity_new_id(s);
    s->id[slot] = id;
    core_idmap_put(&s->ids, id, slot);
    s->x[slot] = x;
    s->y[slot] = y;
    s->kind[slot] = PROTO_KIND_ITEM;
    sim_label_item(s, slot, (sim_item){li->db_id, li->quantity, li->item_kind, false});
    sim_entity_place(s, slot);
    s->n_owned++;
    core_idmap_put(&s->items->by_db, (uint32_t)li->db_id, slot);
    return slot;
}

void sim_items_renumber(sim_shard *s, const uint32_t *newof, uint32_t old_used)
{
    if (s->items)
        core_idmap_remap(&s->items->by_db, newof, old_used);
}

static void remove_item(sim_shard *s, uint32_t slot)
{
    core_idmap_del(&s->items->by_db, (uint32_t)s->label[slot].item.db_id);
    sim_slot_release(s, slot);
    s->n_owned--;
}

static void on_items_loaded(sim_shard *s, core_rd *r)
{
    struct sim_items *it = s->items;
    uint32_t cell, count;
    int32_t status;
    if (proto_bus_items_loaded_header(r, &cell, &status, &count) != 0 || cell >= it->n_cells ||
        s->cells->owner[cell] != s->index || it->cell_state[cell] != CELL_LOADING)
        return;
    if (status != STORE_OK) {
        it->cell_state[cell] = CELL_UNLOADED;
        it->cell_retry[cell] = s->tick + CELL_RETRY_S * (uint32_t)s->cfg->tick_hz;
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        proto_loaded_item li;
        if (proto_bus_loaded_item_read(r, &li) != 0)
            break;
        /* a drop committed while the load ran may be in both */
        if ((uint64_t)li.db_id <= UINT32_MAX - 1 &&
            core_idmap_get(&it->by_db, (uint32_t)li.db_id) != CORE_IDMAP_NONE)
            continue;
        spawn_item(s, &li);
    }
    it->cell_state[cell] = CELL_LOADED;
    core_counter_add(it->m_cells_loaded, 1);
}

/* ---- inventories ---- */

/* c's inventory, NULL when it carries nothing (most players, most of the
 * time). */
static sim_inv_slot *inv_of(const sim_client *c)
{
    return c->more ? c->more->inv : NULL;
}

/* Slot i of c's inventory; a shared empty slot (read only) when c carries
 * nothing. */
static const sim_inv_slot *inv_peek(const sim_client *c, int i)
{
    static const sim_inv_slot empty;
    const sim_inv_slot *inv = inv_of(c);
    return inv ? &inv[i] : &empty;
}

/* Slot i, allocating the inventory on first use. */
static sim_inv_slot *inv_slot(sim_client *c, int i)
{
    sim_client_more *m = sim_client_more_get(c);
    if (!m->inv) {
        m->inv = calloc(PROTO_INV_SLOTS, sizeof *m->inv);
        if (!m->inv)
            core_die("out of memory");
    }
    return &m->inv[i];
}

/* Frees an inventory with nothing in it and nothing reserved. */
static void inv_trim(sim_client *c)
{
    sim_inv_slot *inv = inv_of(c);
    if (!inv)
        return;
    for (int i = 0; i < PROTO_INV_SLOTS; i++)
        if (inv[i].kind || inv[i].is_reserved)
            return;
    free(inv);
    c->more->inv = NULL;
}

static void write_inventory(sim_client *c)
{
    proto_inventory pi;
    memset(&pi, 0, sizeof pi);
    for (int i = 0; i < PROTO_INV_SLOTS; i++) {
        pi.slots[i].item_kind = inv_peek(c, i)->kind;
        pi.slots[i].quantity = inv_peek(c, i)->qty;
    }
    proto_write_inventory(sim_client_reliable(c), &pi);
}

void sim_items_join(sim_shard *s, uint32_t ci)
{
    sim_client *c = &s->clients[ci];
    c->inv_state = SIM_INV_NONE;
    c->inv_retry_tick = s->tick; /* (the chat bucket, in c->more, starts full) */
}

void sim_items_attach(sim_shard *s, uint32_t ci, uint32_t old_session)
{
    sim_client *c = &s->clients[ci];
    c->prev_session_id = old_session;
    if (c->inv_state == SIM_INV_LOADED)
        write_inventory(c);
    else /* an answer addressed to the old session is not awaited */
        c->inv_state = SIM_INV_NONE, c->inv_retry_tick = s->tick;
}

/* The client of session, also under the id it had before a resume. */
static uint32_t client_of(const sim_shard *s, uint32_t session)
{
    uint32_t ci = core_idmap_get(&s->sessions, session);
    if (ci != CORE_IDMAP_NONE || !session)
        return ci;
    for (uint32_t i = 0; i < s->n_clients_used; i++) /* rare: only after a resume */
        if (s->clients[i].session_id && s->clients[i].prev_session_id == session)
            return i;
    return CORE_IDMAP_NONE;
}

static void on_inv_loaded(sim_shard *s, core_rd *r)
{
    uint32_t tick, session;
    int32_t status;
    proto_inventory pi;
    if (proto_bus_inv_loaded_read(r, &tick, &session, &status, &pi) != 0)
        return;
    uint32_t ci = core_idmap_get(&s->sessions, session);
    if (ci == CORE_IDMAP_NONE) {
        int to = sim_forward_lookup(s, session);
        if (to >= 0) { /* stamped now: the new owner applies it after the handoff */
            core_buf_reset(&s->msg);
            proto_bus_inv_loaded_write(&s->msg, s->tick, session, status, &pi);
            bus_send(s->bus, BUS_EP_SHARD(to), s->msg.data, s->msg.len);
        }
        return;
    }
    sim_client *c = &s->clients[ci];
    if (c->inv_state != SIM_INV_LOADING)
        return;
    if (status != STORE_OK) {
        c->inv_state = SIM_INV_NONE;
        c->inv_retry_tick = s->tick + CELL_RETRY_S * (uint32_t)s->cfg->tick_hz;
        return;
    }
    for (int i = 0; i < PROTO_INV_SLOTS; i++)
        if (inv_of(c) || pi.slots[i].item_kind)
            *inv_slot(c, i) = (sim_inv_slot){pi.slots[i].quantity, pi.slots[i].item_kind, false};
    inv_trim(c);
    c->inv_state = SIM_INV_LOADED;
    write_inventory(c);
}

static void inventories_tick(sim_shard *s)
{
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    for (uint32_t ci = 0; ci < s->n_clients_used; ci++) {
        sim_client *c = &s->clients[ci];
        if (!c->session_id || c->inv_state == SIM_INV_LOADED ||
            (int32_t)(s->tick - c->inv_retry_tick) < 0)
            continue;
        if (c->account_id == 0 || !s->st) {
            /* nothing to load and nowhere to commit: an empty inventory
             * whose pickups are refused (store_unavailable) */
            c->inv_state = SIM_INV_LOADED;
            write_inventory(c);
            continue;
        }
        /* NONE: ask; LOADING past its deadline: the answer was lost */
        if (sim_loader_inventory(s->items->loader, s->index, c->session_id, c->account_id) == 0) {
            c->inv_state = SIM_INV_LOADING;
            c->inv_retry_tick = s->tick + INV_LOAD_TIMEOUT_S * hz;
        } else {
            c->inv_retry_tick = s->tick + hz;
        }
    }
}

/* ---- pickup and drop: outcomes ---- */

static void count_done(sim_shard *s, const proto_result *res)
{
    if (!s->items || res->code >= PROTO_ERR_COUNT)
        return;
    core_counter *ctr = s->items->m_done[res->action == PROTO_ACT_DROP][res->code];
    if (ctr)
        core_counter_add(ctr, 1);
}

/* Player side: the outcome reaches the player's current shard. */
static void apply_done(sim_shard *s, uint32_t session, const proto_result *res)
{
    uint32_t ci = client_of(s, session);
    if (ci == CORE_IDMAP_NONE) {
        int to = sim_forward_lookup(s, session);
        if (to >= 0) {
            core_buf_reset(&s->msg);
            proto_bus_item_done_write(&s->msg, s->tick, session, res);
            bus_send(s->bus, BUS_EP_SHARD(to), s->msg.data, s->msg.len);
        }
        return; /* a player who left: the store has it all */
    }
    sim_client *c = &s->clients[ci];
    sim_inv_slot *slot = inv_slot(c, res->slot);
    slot->is_reserved = false;
    bool ok = res->code == PROTO_ERR_NONE;
    if (ok && res->action == PROTO_ACT_PICKUP)
        *slot = (sim_inv_slot){res->quantity, res->item_kind, false};
    else if (ok)
        *slot = (sim_inv_slot){0};
    inv_trim(c);
    count_done(s, res);
    proto_write_result(sim_client_reliable(c), res);
    if (ok)
        write_inventory(c);
}

/* Owner side: sends the outcome to the player's shard. */
static void send_done(sim_shard *s, uint16_t requester, uint32_t session, const proto_result *res)
{
    if (requester == s->index) {
        apply_done(s, session, res);
        return;
    }
    core_buf_reset(&s->msg);
    proto_bus_item_done_write(&s->msg, s->tick, session, res);
    bus_send(s->bus, BUS_EP_SHARD(requester), s->msg.data, s->msg.len);
}

static void set_reason(proto_result *res, proto_err code, const char *reason)
{
    res->code = (uint16_t)code;
    snprintf(res->reason, sizeof res->reason, "%s", reason);
}

/* A request refused before reaching the store: RESULT (and ERROR when the
 * request itself was invalid). */
static void refuse(sim_shard *s, uint32_t ci, proto_result *res, proto_err code, const char *reason)
{
    if (code == PROTO_ERR_NOT_AN_ITEM || code == PROTO_ERR_OUT_OF_REACH ||
        code == PROTO_ERR_BAD_SLOT)
        sim_client_reject(s, ci, code, reason);
    set_reason(res, code, reason);
    count_done(s, res);
    proto_write_result(sim_client_reliable(&s->clients[ci]), res);
}

static proto_err store_outcome(int rc)
{
    return rc == STORE_ERR_CONFLICT ? PROTO_ERR_CONFLICT : PROTO_ERR_STORE_UNAVAILABLE;
}

static item_action *action_push(struct sim_items *it)
{
    if (it->n_acts == it->acts_cap) {
        it->acts_cap = it->acts_cap ? it->acts_cap * 2 : 64;
        it->acts = realloc(it->acts, it->acts_cap * sizeof *it->acts);
        if (!it->acts)
            core_die("out of memory");
    }
    item_action *a = &it->acts[it->n_acts++];
    memset(a, 0, sizeof *a);
    a->token = ++it->next_token;
    return a;
}

/* ---- pickup ---- */

/* Owner side: reserve the item and submit the take. */
static void owner_take(sim_shard *s, const proto_item_take *t)
{
    proto_result res = {
        .req = t->req, .action = PROTO_ACT_PICKUP, .entity_id = t->item_entity, .slot = t->slot};
    uint32_t e = t->item_entity ? core_idmap_get(&s->ids, t->item_entity) : CORE_IDMAP_NONE;
    if (e == CORE_IDMAP_NONE || (s->flags[e] & SIM_F_GHOST) || s->kind[e] != PROTO_KIND_ITEM ||
        !s->items) {
        set_reason(&res, PROTO_ERR_ITEM_GONE, "the item is gone");
    } else if (s->label[e].item.is_reserved) {
        set_reason(&res, PROTO_ERR_ITEM_GONE, "someone else is taking it");
    } else if (!s->st || t->account_id <= 0) {
        set_reason(&res, PROTO_ERR_STORE_UNAVAILABLE, "no store to commit to");
    } else {
        item_action *a = action_push(s->items);
        store_action sa = {.kind = STORE_ACT_ITEM_TAKE,
                           .account_id = t->account_id,
                           .item_id = s->label[e].item.db_id,
                           .slot = t->slot};
        int rc = store_submit(s->st, s->index, a->token, &sa);
        if (rc == STORE_OK) {
            a->action = PROTO_ACT_PICKUP;
            a->requester = t->requester;
            a->session_id = t->session_id;
            a->req = t->req;
            a->item_entity = t->item_entity;
            a->slot = t->slot;
            s->label[e].item.is_reserved = true;
            return;
        }
        s->items->n_acts--;
        char why[PROTO_REASON_MAX + 1];
        snprintf(why, sizeof why, "not committed: %s", store_errmsg(s->st));
        set_reason(&res, PROTO_ERR_STORE_UNAVAILABLE, why);
    }
    send_done(s, t->requester, t->session_id, &res);
}

static int free_inv_slot(const sim_client *c)
{
    for (int i = 0; i < PROTO_INV_SLOTS; i++)
        if (!inv_peek(c, i)->kind && !inv_peek(c, i)->is_reserved)
            return i;
    return -1;
}

void sim_items_pickup(sim_shard *s, uint32_t ci, const proto_pickup *p)
{
    sim_client *c = &s->clients[ci];
    proto_result res = {.req = p->req, .action = PROTO_ACT_PICKUP, .entity_id = p->entity_id};
    if (c->inv_state != SIM_INV_LOADED) {
        refuse(s, ci, &res, PROTO_ERR_STORE_UNAVAILABLE, "inventory not loaded yet");
        return;
    }
    uint32_t e = p->entity_id ? core_idmap_get(&s->ids, p->entity_id) : CORE_IDMAP_NONE;
    if (e == CORE_IDMAP_NONE || s->kind[e] != PROTO_KIND_ITEM) {
        refuse(s, ci, &res, PROTO_ERR_NOT_AN_ITEM, "no such item near you");
        return;
    }
    float dx = s->x[e] - s->x[c->slot], dy = s->y[e] - s->y[c->slot];
    float reach = SIM_REACH_UNITS + (float)s->cfg->entity_radius;
    if (dx * dx + dy * dy > reach * reach) {
        refuse(s, ci, &res, PROTO_ERR_OUT_OF_REACH, "the item is out of reach");
        return;
    }
    if (!(s->flags[e] & SIM_F_GHOST) && s->label[e].item.is_reserved) {
        refuse(s, ci, &res, PROTO_ERR_ITEM_GONE, "someone else is taking it");
        return;
    }
    int slot = free_inv_slot(c);
    if (slot < 0) {
        refuse(s, ci, &res, PROTO_ERR_INVENTORY_FULL, "no free inventory slot");
        return;
    }
    if (!s->st || c->account_id == 0) {
        refuse(s, ci, &res, PROTO_ERR_STORE_UNAVAILABLE, "no store to commit to");
        return;
    }
    inv_slot(c, slot)->is_reserved = true;
    proto_item_take t = {.tick = s->tick,
                         .requester = s->index,
                         .session_id = c->session_id,
                         .account_id = c->account_id,
                         .item_entity = p->entity_id,
                         .slot = (uint8_t)slot,
                         .req = p->req};
    if (!(s->flags[e] & SIM_F_GHOST)) {
        owner_take(s, &t);
        return;
    }
    /* the item lies in a neighbour's cell: its owner commits the take */
    core_buf_reset(&s->msg);
    proto_bus_item_take_write(&s->msg, &t);
    bus_send(s->bus, BUS_EP_SHARD(s->ghost_src[e]), s->msg.data, s->msg.len);
}

/* ---- drop ---- */

void sim_items_drop(sim_shard *s, uint32_t ci, const proto_drop *d)
{
    sim_client *c = &s->clients[ci];
    proto_result res = {.req = d->req, .action = PROTO_ACT_DROP};
    if (d->slot >= PROTO_INV_SLOTS) { /* RESULT slot 0: the field holds a real slot */
        refuse(s, ci, &res, PROTO_ERR_BAD_SLOT, "no such inventory slot");
        return;
    }
    res.slot = d->slot;
    if (c->inv_state != SIM_INV_LOADED) {
        refuse(s, ci, &res, PROTO_ERR_STORE_UNAVAILABLE, "inventory not loaded yet");
        return;
    }
    const sim_inv_slot *is = inv_peek(c, d->slot);
    if (!is->kind || is->is_reserved) {
        refuse(s, ci, &res, PROTO_ERR_BAD_SLOT,
               is->kind ? "that slot is busy" : "that slot is empty");
        return;
    }
    res.item_kind = is->kind;
    res.quantity = is->qty;
    if (!s->st || !s->items || c->account_id == 0) {
        refuse(s, ci, &res, PROTO_ERR_STORE_UNAVAILABLE, "no store to commit to");
        return;
    }
    /* at the player's feet: a cell of ours, since the player stands in it */
    float x = s->x[c->slot], y = s->y[c->slot];
    item_action *a = action_push(s->items);
    store_action sa = {.kind = STORE_ACT_ITEM_PUT,
                       .account_id = c->account_id,
                       .slot = d->slot,
                       .cell = spatial_cellmap_cell(s->cells, x, y),
                       .x = x,
                       .y = y};
    int rc = store_submit(s->st, s->index, a->token, &sa);
    if (rc != STORE_OK) {
        s->items->n_acts--;
        char why[PROTO_REASON_MAX + 1];
        snprintf(why, sizeof why, "not committed: %s", store_errmsg(s->st));
        refuse(s, ci, &res, PROTO_ERR_STORE_UNAVAILABLE, why);
        return;
    }
    a->action = PROTO_ACT_DROP;
    a->requester = s->index;
    a->session_id = c->session_id;
    a->req = d->req;
    a->slot = d->slot;
    a->x = x;
    a->y = y;
    inv_slot(c, d->slot)->is_reserved = true;
}

/* ---- store completions (owner side) ---- */

static void on_completion(sim_shard *s, const store_completion *sc)
{
    struct sim_items *it = s->items;
    uint32_t k = 0;
    while (k < it->n_acts && it->acts[k].token != sc->token)
        k++;
    if (k == it->n_acts) {
        core_log(CORE_LOG_WARN, "sim", NULL, "shard %u: completion of unknown token %llu", s->index,
                 (unsigned long long)sc->token);
        return;
    }
    item_action a = it->acts[k];
    it->acts[k] = it->acts[--it->n_acts];
    proto_result res = {.req = a.req,
                        .action = a.action,
                        .entity_id = a.item_entity,
                        .slot = a.slot,
                        .item_kind = (uint8_t)sc->item_kind,
                        .quantity = (uint16_t)sc->quantity};
    bool ok = sc->status == STORE_OK;
    if (!ok) {
        char why[PROTO_REASON_MAX + 1];
        snprintf(why, sizeof why, "not committed: %.80s",
                 sc->reason[0] ? sc->reason : store_strerror(sc->status));
        set_reason(&res, store_outcome(sc->status), why);
    }
    if (a.action == PROTO_ACT_PICKUP) {
        uint32_t e = core_idmap_get(&s->ids, a.item_entity);
        bool ours =
            e != CORE_IDMAP_NONE && s->kind[e] == PROTO_KIND_ITEM && !(s->flags[e] & SIM_F_GHOST);
        if (ours && ok)
            remove_item(s, e); /* gone for everyone from this tick on */
        else if (ours)
            s->label[e].item.is_reserved = false;
    } else if (ok) {
        res.entity_id = 0;
        uint32_t cell = spatial_cellmap_cell(s->cells, a.x, a.y);
        proto_loaded_item li = {sc->id, a.x, a.y, res.item_kind, res.quantity};
        /* an unloaded cell gets it with its load */
        if (it->cell_state[cell] != CELL_UNLOADED && sc->id > 0 &&
            (uint64_t)sc->id <= UINT32_MAX - 1 &&
            core_idmap_get(&it->by_db, (uint32_t)sc->id) == CORE_IDMAP_NONE) {
            uint32_t slot = spawn_item(s, &li);
            if (slot != SIM_NONE)
                res.entity_id = s->id[slot];
        }
    }
    send_done(s, a.requester, a.session_id, &res);
}

void sim_items_tick(sim_shard *s)
{
    if (!s->items)
        return;
    if (s->st) {
        store_completion done[COMPLETIONS_PER_POLL];
        size_t n;
        do {
            n = store_completions_poll(s->st, s->index, done, COMPLETIONS_PER_POLL);
            for (size_t i = 0; i < n; i++)
                on_completion(s, &done[i]);
        } while (n == COMPLETIONS_PER_POLL);
    }
    /* Cells near players: a player that has not moved asked for its cells
     * before, so only movers (and newcomers) ask every tick; everyone asks
     * again once a second, for a cell whose load was refused (loader full).
     * 19,500 idle players cost a tick no 9 x 19,500 cell lookups. */
    uint32_t hz = (uint32_t)s->cfg->tick_hz;
    for (uint32_t e = 0; e < s->n_used; e++)
        if ((s->flags[e] & SIM_F_ALIVE) && s->kind[e] == PROTO_KIND_PLAYER &&
            ((s->tick + e) % hz == 0 || sim_aoi_near_change(s, e)))
            activate_near(s, s->x[e], s->y[e]);
    inventories_tick(s);
}

void sim_items_count_chat(sim_shard *s)
{
    if (s->items)
        core_counter_add(s->items->m_chat_lines, 1);
}

/* ---- handoff: the CLIENT block's tail ----
 *   u8 inv_state, 32 x (u8 kind, u16 qty, u8 reserved), f32 chat_tokens,
 *   u32 chat_tick, u32 prev_session, u8 n_held, n x (u32 gseq, u8 kind, u16 len, body) */

void sim_items_write_client(sim_shard *s, core_buf *b, const sim_client *c)
{
    (void)s;
    /* no c->more: a full bucket (-1, as never used), nothing held */
    const sim_client_more *m = c->more;
    core_buf_u8(b, c->inv_state);
    for (int i = 0; i < PROTO_INV_SLOTS; i++) {
        const sim_inv_slot *is = inv_peek(c, i);
        core_buf_u8(b, is->kind);
        core_buf_u16(b, is->qty);
        core_buf_u8(b, is->is_reserved);
    }
    core_buf_f32(b, m ? m->chat_tokens : -1.0f);
    core_buf_u32(b, m ? m->chat_tick : 0);
    core_buf_u32(b, c->prev_session_id);
    /* only the held records a pending entry still refers to */
    size_t n_at = b->len;
    uint8_t n = 0;
    core_buf_u8(b, 0);
    core_rd r =
        core_rd_init(m && m->held.len ? m->held.data : (const uint8_t *)"", m ? m->held.len : 0);
    while (core_rd_left(&r) > 0) {
        uint32_t gseq = core_rd_u32(&r);
        uint8_t kind = core_rd_u8(&r);
        uint16_t len = core_rd_u16(&r);
        const uint8_t *body = core_rd_bytes(&r, len);
        if (!core_rd_ok(&r))
            break;
        for (uint32_t p = 0; p < m->n_pending; p++) /* (m: something was held) */
            if (m->pending[p].rec_kind && m->pending[p].gseq == gseq) {
                core_buf_u32(b, gseq);
                core_buf_u8(b, kind);
                core_buf_u16(b, len);
                core_buf_append(b, body, len);
                n++;
                break;
            }
    }
    b->data[n_at] = n;
}

int sim_items_read_client(sim_shard *s, core_rd *r, sim_client *c)
{
    uint8_t state = core_rd_u8(r);
    c->inv_state = state <= SIM_INV_LOADED ? state : SIM_INV_NONE;
    /* a load in flight answers the old owner, which forwards it */
    c->inv_retry_tick = s->tick + INV_LOAD_TIMEOUT_S * (uint32_t)s->cfg->tick_hz;
    for (int i = 0; i < PROTO_INV_SLOTS; i++) {
        sim_inv_slot v = {.kind = core_rd_u8(r)};
        v.qty = core_rd_u16(r);
        v.is_reserved = core_rd_u8(r) != 0;
        if (inv_of(c) || v.kind || v.is_reserved)
            *inv_slot(c, i) = v;
    }
    inv_trim(c);
    float chat_tokens = core_rd_f32(r);
    if (!(chat_tokens <= 100.0f)) /* NaN too */
        chat_tokens = -1.0f;
    uint32_t chat_tick = core_rd_u32(r);
    if (chat_tokens >= 0.0f || c->more) { /* else: as never used, the default */
        sim_client_more *m = sim_client_more_get(c);
        m->chat_tokens = chat_tokens;
        m->chat_tick = chat_tick;
    }
    c->prev_session_id = core_rd_u32(r);
    uint8_t n = core_rd_u8(r);
    if (c->more)
        core_buf_reset(&c->more->held);
    for (uint8_t i = 0; i < n && core_rd_ok(r); i++) {
        uint32_t gseq = core_rd_u32(r);
        uint8_t kind = core_rd_u8(r);
        uint16_t len = core_rd_u16(r);
        const uint8_t *body = core_rd_bytes(r, len);
        if (!core_rd_ok(r) || !proto_is_item_record(kind) || len > PROTO_CHAT_MAX)
            return -1;
        sim_client_more *m = c->more;
        for (uint32_t p = 0; m && p < m->n_pending; p++)
            if (m->pending[p].gseq == gseq) {
                m->pending[p].rec_kind = kind;
                core_buf_u32(&m->held, gseq);
                core_buf_u8(&m->held, kind);
                core_buf_u16(&m->held, len);
                core_buf_append(&m->held, body, len);
                break;
            }
    }
    return core_rd_ok(r) ? 0 : -1;
}

/* ---- bus messages ---- */

bool sim_items_handle_msg(sim_shard *s, uint16_t type, core_rd *r)
{
    switch (type) {
    case PROTO_BUS_RECORDS: {
        uint32_t count = core_rd_u32(r);
        if (core_rd_ok(r))
            sim_records_collect(s, r, count);
        return true;
    }
    case PROTO_BUS_ITEMS_LOADED:
        if (s->items)
            on_items_loaded(s, r);
        return true;
    case PROTO_BUS_INV_LOADED:
        on_inv_loaded(s, r);
        return true;
    case PROTO_BUS_ITEM_TAKE: {
        proto_item_take t;
        if (proto_bus_item_take_read(r, &t) == 0 && t.requester < s->cells->n_shards)
            owner_take(s, &t);
        return true;
    }
    case PROTO_BUS_ITEM_DONE: {
        uint32_t tick, session;
        proto_result res;
        if (proto_bus_item_done_read(r, &tick, &session, &res) == 0)
            apply_done(s, session, &res);
        return true;
    }
    case PROTO_BUS_CHAT:
        sim_chat_relay_recv(s, r);
        return true;
    default:
        return false;
    }
}
