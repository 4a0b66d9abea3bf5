/* store_rec.c - the records over SQL, written once for both backends: the
 * shared statements, row decoding, checksums of snapshots and events, and
 * the reliable actions applied inside the store thread's transaction.
 * Callers (store.c, store_queue.c) hold the connection and count metrics.
 *
 * Checksums: FNV-1a 64 (core_hash.h) over the little-endian fields and the
 * bytes, stored as BIGINT (the same 64 bits, signed):
 *   snapshot: cell i64, tick i64, data
 *   event:    tick i64, cell i64, entity i64, kind i32, payload */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_hash.h"
#include "core_log.h"
#include "core_time.h"

/* Portable SQL: both SQLite >= 3.35 and PostgreSQL >= 9.5 accept it. */
const char *const store_sql[STORE_SQL_N] = {
    [STORE_SQL_ACCOUNT_CREATE] =
        "INSERT INTO accounts (username, pw_hash, created) VALUES (?, ?, ?) RETURNING id",
    [STORE_SQL_ACCOUNT_FIND] =
        "SELECT id, username, pw_hash, created FROM accounts WHERE username = ?",
    [STORE_SQL_PLAYER_LOAD] =
        "SELECT account_id, x, y, hp, version, last_seen FROM players WHERE account_id = ?",
    [STORE_SQL_PLAYER_UPSERT] =
        "INSERT INTO players (account_id, x, y, hp, version, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (account_id) DO UPDATE SET x = excluded.x, y = excluded.y, "
        "hp = excluded.hp, version = excluded.version, last_seen = excluded.last_seen "
        "WHERE players.version <= excluded.version",
    [STORE_SQL_INV_LOAD] =
        "SELECT slot, item_kind, quantity FROM inventory WHERE account_id = ? ORDER BY slot",
    [STORE_SQL_INV_SET] =
        "INSERT INTO inventory (account_id, slot, item_kind, quantity) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (account_id, slot) DO UPDATE SET item_kind = excluded.item_kind, "
        "quantity = excluded.quantity",
    [STORE_SQL_INV_DELETE] = "DELETE FROM inventory WHERE account_id = ? AND slot = ? "
                             "RETURNING item_kind, quantity",
    /* Inserts only if the item still lies in the world and the slot is
     * free; the casts give PostgreSQL the parameter types. */
    [STORE_SQL_ITEM_TAKE_INV] =
        "INSERT INTO inventory (account_id, slot, item_kind, quantity) "
        "SELECT CAST(? AS BIGINT), CAST(? AS INTEGER), item_kind, quantity FROM world_items "
        "WHERE id = ? AND taken_by IS NULL ON CONFLICT (account_id, slot) DO NOTHING "
        "RETURNING item_kind, quantity",
    [STORE_SQL_ITEM_TAKE_MARK] =
        "UPDATE world_items SET taken_by = ? WHERE id = ? AND taken_by IS NULL",
    [STORE_SQL_ITEM_INSERT] = "INSERT INTO world_items (cell, x, y, item_kind, quantity) "
                              "VALUES (?, ?, ?, ?, ?) RETURNING id",
    [STORE_SQL_ITEMS_BY_CELL] = "SELECT id, cell, x, y, item_kind, quantity FROM world_items "
                                "WHERE cell = ? AND taken_by IS NULL ORDER BY id",
    [STORE_SQL_SNAP_WRITE] =
        "INSERT INTO cell_snapshots (cell, tick, checksum, data, written) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (cell, tick) DO UPDATE SET checksum = excluded.checksum, "
        "data = excluded.data, written = excluded.written",
    [STORE_SQL_SNAP_TICKS] =
        "SELECT tick FROM cell_snapshots WHERE cell = ? ORDER BY tick DESC LIMIT 16",
    [STORE_SQL_SNAP_READ] =
        "SELECT tick, checksum, data FROM cell_snapshots WHERE cell = ? AND tick = ?",
    [STORE_SQL_EVENT_APPEND] = "INSERT INTO events (tick, cell, entity, kind, payload, checksum) "
                               "VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
    [STORE_SQL_EVENTS_READ] = "SELECT seq, tick, cell, entity, kind, payload, checksum FROM events "
                              "WHERE cell = ? AND seq > ? ORDER BY seq LIMIT ?",
    [STORE_SQL_MIG_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    /* every row ever, taken ones too: seeding only an empty world */
    [STORE_SQL_ITEMS_COUNT] = "SELECT COUNT(*) FROM world_items",
    [STORE_SQL_MIG_RECORD] =
        "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
    [STORE_SQL_REFRESH_PUT] = "INSERT INTO refresh_tokens (hash, account_id, username, expires, "
                              "used, revoked) VALUES (?, ?, ?, ?, 0, 0)",
    /* Keeps an account's newest STORE_REFRESH_PER_ACCOUNT (32) tokens, and
     * used ones until they expire (a used one coming back is a theft). */
    [STORE_SQL_REFRESH_PRUNE] =
        "DELETE FROM refresh_tokens WHERE account_id = ? AND (expires < ? OR hash NOT IN "
        "(SELECT hash FROM refresh_tokens WHERE account_id = ? ORDER BY expires DESC LIMIT 32))",
    [STORE_SQL_REFRESH_USE] =
        "UPDATE refresh_tokens SET used = ? WHERE hash = ? AND used = 0 AND revoked = 0 "
        "AND expires >= ? RETURNING account_id, username",
    [STORE_SQL_REFRESH_PEEK] =
        "SELECT account_id, used, revoked, expires FROM refresh_tokens WHERE hash = ?",
    [STORE_SQL_REFRESH_REVOKE_ACCOUNT] =
        "UPDATE refresh_tokens SET revoked = 1 WHERE account_id = ? AND revoked = 0",
    [STORE_SQL_REFRESH_REVOKE_ONE] =
        "UPDATE refresh_tokens SET revoked = 1 WHERE hash = ? "
        "AND revoked = 0 AND (account_id = ? OR CAST(? AS BIGINT) = 0)",
    [STORE_SQL_EXTERNAL_FIND] =
        "SELECT account_id FROM external_accounts WHERE issuer = ? AND subject = ?",
    [STORE_SQL_EXTERNAL_INSERT] = "INSERT INTO external_accounts (issuer, subject, account_id, "
                                  "created) VALUES (?, ?, ?, ?)",
};

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t store_snapshot_checksum(int64_t cell, int64_t tick, const void *data, size_t len)
{
    uint8_t head[16];
    put_le(head, (uint64_t)cell, 8);
    put_le(head + 8, (uint64_t)tick, 8);
    return core_fnv1a(core_fnv1a(CORE_FNV_OFFSET, head, sizeof head), data, len);
}

uint64_t store_event_checksum(const store_event *ev)
{
    uint8_t head[28];
    put_le(head, (uint64_t)ev->tick, 8);
    put_le(head + 8, (uint64_t)ev->cell, 8);
    put_le(head + 16, (uint64_t)ev->entity, 8);
    put_le(head + 24, (uint32_t)ev->kind, 4);
    return core_fnv1a(core_fnv1a(CORE_FNV_OFFSET, head, sizeof head), ev->payload, ev->len);
}

/* ---- row decoders ---- */

static int row_int(void *ctx, const store_val *c, int n)
{
    (void)n;
    *(int64_t *)ctx = c[0].i;
    return 1;
}

static void copy_text(char *dst, size_t cap, const store_val *v)
{
    snprintf(dst, cap, "%s", v->type == STORE_V_TEXT && v->s ? v->s : "");
}

static int row_account(void *ctx, const store_val *c, int n)
{
    (void)n;
    store_account *a = ctx;
    a->id = c[0].i;
    copy_text(a->username, sizeof a->username, &c[1]);
    copy_text(a->pw_hash, sizeof a->pw_hash, &c[2]);
    a->created_s = c[3].i;
    return 1;
}

static int row_player(void *ctx, const store_val *c, int n)
{
    (void)n;
    store_player *p = ctx;
    p->account_id = c[0].i;
    p->x = c[1].d;
    p->y = c[2].d;
    p->hp = (int32_t)c[3].i;
    p->version = c[4].i;
    p->last_seen_s = c[5].i;
    return 1;
}

static int row_inventory(void *ctx, const store_val *c, int n)
{
    (void)n;
    store_inventory *inv = ctx;
    if (inv->n == STORE_INV_SLOTS)
        return 1; /* slots are checked on write; more rows cannot exist */
    inv->slots[inv->n].slot = (int32_t)c[0].i;
    inv->slots[inv->n].item_kind = (int32_t)c[1].i;
    inv->slots[inv->n].quantity = (int32_t)c[2].i;
    inv->n++;
    return 0;
}

typedef struct vec {
    void *items;
    size_t n, cap, size;
} vec;

static void *vec_push(vec *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->items = realloc(v->items, v->cap * v->size);
        if (!v->items)
            core_die("out of memory");
    }
    void *slot = (char *)v->items + v->n++ * v->size;
    memset(slot, 0, v->size);
    return slot;
}

static int row_item(void *ctx, const store_val *c, int n)
{
    (void)n;
    store_item *it = vec_push(ctx);
    it->id = c[0].i;
    it->cell = c[1].i;
    it->x = c[2].d;
    it->y = c[3].d;
    it->item_kind = (int32_t)c[4].i;
    it->quantity = (int32_t)c[5].i;
    return 0;
}

/* ---- synchronous records ---- */

int store_rec_account_create(const store_ops *o, store_conn *c, int64_t *out_id,
                             const char *username, const char *pw_hash)
{
    store_val v[3] = {SV_TEXT(username), SV_TEXT(pw_hash), SV_INT(core_wall_s())};
    return o->query(c, STORE_SQL_ACCOUNT_CREATE, v, 3, row_int, out_id, NULL);
}

int store_rec_account_find(const store_ops *o, store_conn *c, store_account *out,
                           const char *username)
{
    store_val v[1] = {SV_TEXT(username)};
    int rc = o->query(c, STORE_SQL_ACCOUNT_FIND, v, 1, row_account, out, NULL);
    return rc == STORE_OK && out->id == 0 ? STORE_ERR_NOTFOUND : rc;
}

int store_rec_player_load(const store_ops *o, store_conn *c, store_player *out, int64_t id)
{
    store_val v[1] = {SV_INT(id)};
    int rc = o->query(c, STORE_SQL_PLAYER_LOAD, v, 1, row_player, out, NULL);
    return rc == STORE_OK && out->account_id == 0 ? STORE_ERR_NOTFOUND : rc;
}

int store_rec_inventory_load(const store_ops *o, store_conn *c, store_inventory *out, int64_t id)
{
    store_val v[1] = {SV_INT(id)};
    return o->query(c, STORE_SQL_INV_LOAD, v, 1, row_inventory, out, NULL);
}

int store_rec_item_create(const store_ops *o, store_conn *c, int64_t *out_id, const store_item *it)
{
    store_val v[5] = {SV_INT(it->cell), SV_REAL(it->x), SV_REAL(it->y), SV_INT(it->item_kind),
                      SV_INT(it->quantity)};
    return o->query(c, STORE_SQL_ITEM_INSERT, v, 5, row_int, out_id, NULL);
}

int store_rec_items_count(const store_ops *o, store_conn *c, int64_t *out_n)
{
    *out_n = 0;
    return o->query(c, STORE_SQL_ITEMS_COUNT, NULL, 0, row_int, out_n, NULL);
}

int store_rec_items_by_cell(const store_ops *o, store_conn *c, store_item **out, size_t *out_n,
                            int64_t cell)
{
    vec v = {.size = sizeof(store_item)};
    store_val p[1] = {SV_INT(cell)};
    int rc = o->query(c, STORE_SQL_ITEMS_BY_CELL, p, 1, row_item, &v, NULL);
    if (rc != STORE_OK) {
        free(v.items);
        return rc;
    }
    *out = v.items;
    *out_n = v.n;
    return STORE_OK;
}

int store_rec_snapshot_write(const store_ops *o, store_conn *c, int64_t cell, int64_t tick,
                             const void *data, size_t len)
{
    uint64_t sum = store_snapshot_checksum(cell, tick, data, len);
    store_val v[5] = {SV_INT(cell), SV_INT(tick), SV_INT((int64_t)sum), SV_BLOB(data, len),
                      SV_INT(core_wall_s())};
    return o->query(c, STORE_SQL_SNAP_WRITE, v, 5, NULL, NULL, NULL);
}

static int row_tick(void *ctx, const store_val *c, int n)
{
    (void)n;
    *(int64_t *)vec_push(ctx) = c[0].i;
    return 0;
}

typedef struct snap_row {
    bool found;
    int64_t tick, sum;
    uint8_t *data;
    size_t len;
} snap_row;

static int row_snap(void *ctx, const store_val *c, int n)
{
    (void)n;
    snap_row *r = ctx;
    r->found = true;
    r->tick = c[0].i;
    r->sum = c[1].i;
    r->len = c[2].type == STORE_V_BLOB ? c[2].len : 0;
    r->data = malloc(r->len ? r->len : 1);
    if (!r->data)
        core_die("out of memory");
    if (r->len)
        memcpy(r->data, c[2].b, r->len);
    return 1;
}

/* Tries the newest snapshots first; one failing its checksum is refused
 * with a log line and the one before it is tried. The message of the last
 * refusal stays in c->err for the caller. */
int store_rec_snapshot_read_latest(const store_ops *o, store_conn *c, int64_t *out_tick,
                                   uint8_t **out_data, size_t *out_len, int *out_n_refused,
                                   int64_t cell)
{
    vec ticks = {.size = sizeof(int64_t)};
    store_val p[2] = {SV_INT(cell), SV_INT(0)};
    int rc = o->query(c, STORE_SQL_SNAP_TICKS, p, 1, row_tick, &ticks, NULL);
    int refused = 0;
    for (size_t i = 0; rc == STORE_OK && i < ticks.n; i++) {
        snap_row r = {0};
        p[1] = SV_INT(((int64_t *)ticks.items)[i]);
        rc = o->query(c, STORE_SQL_SNAP_READ, p, 2, row_snap, &r, NULL);
        if (rc != STORE_OK || !r.found)
            continue;
        uint64_t want = store_snapshot_checksum(cell, r.tick, r.data, r.len);
        if ((int64_t)want != r.sum) {
            snprintf(c->err, sizeof c->err,
                     "snapshot of cell %lld at tick %lld refused: checksum mismatch (stored "
                     "%016llx, computed %016llx)",
                     (long long)cell, (long long)r.tick, (unsigned long long)r.sum,
                     (unsigned long long)want);
            CORE_WARN("store", "%s; trying the previous snapshot", c->err);
            refused++;
            free(r.data);
            continue;
        }
        *out_tick = r.tick;
        *out_data = r.data;
        *out_len = r.len;
        *out_n_refused = refused;
        free(ticks.items);
        return STORE_OK;
    }
    free(ticks.items);
    *out_n_refused = refused;
    if (rc != STORE_OK)
        return rc;
    if (refused)
        return STORE_ERR_CHECKSUM;
    snprintf(c->err, sizeof c->err, "no snapshot of cell %lld", (long long)cell);
    return STORE_ERR_NOTFOUND;
}

int store_rec_event_append(const store_ops *o, store_conn *c, int64_t *out_seq,
                           const store_event *ev)
{
    uint64_t sum = store_event_checksum(ev);
    store_val v[6] = {SV_INT(ev->tick),
                      SV_INT(ev->cell),
                      SV_INT(ev->entity),
                      SV_INT(ev->kind),
                      SV_BLOB(ev->payload, ev->len),
                      SV_INT((int64_t)sum)};
    return o->query(c, STORE_SQL_EVENT_APPEND, v, 6, row_int, out_seq, NULL);
}

typedef struct ev_ctx {
    vec v;
    int64_t bad_seq; /* first record failing its checksum, 0 if none */
} ev_ctx;

static int row_event(void *ctx, const store_val *c, int n)
{
    (void)n;
    ev_ctx *e = ctx;
    store_event *ev = vec_push(&e->v);
    ev->seq = c[0].i;
    ev->tick = c[1].i;
    ev->cell = c[2].i;
    ev->entity = c[3].i;
    ev->kind = (int32_t)c[4].i;
    ev->len = c[5].type == STORE_V_BLOB ? c[5].len : 0;
    ev->payload = malloc(ev->len ? ev->len : 1);
    if (!ev->payload)
        core_die("out of memory");
    if (ev->len)
        memcpy(ev->payload, c[5].b, ev->len);
    if ((int64_t)store_event_checksum(ev) != c[6].i && !e->bad_seq)
        e->bad_seq = ev->seq;
    return 0;
}

int store_rec_events_read(const store_ops *o, store_conn *c, store_event **out, size_t *out_n,
                          int64_t cell, int64_t after_seq, size_t max)
{
    ev_ctx e = {.v = {.size = sizeof(store_event)}};
    store_val p[3] = {SV_INT(cell), SV_INT(after_seq), SV_INT((int64_t)max)};
    int rc = o->query(c, STORE_SQL_EVENTS_READ, p, 3, row_event, &e, NULL);
    if (rc == STORE_OK && e.bad_seq) {
        /* A log with a hole cannot be replayed: refuse the whole read. */
        snprintf(c->err, sizeof c->err,
                 "event %lld of cell %lld refused: checksum mismatch (record corrupted)",
                 (long long)e.bad_seq, (long long)cell);
        CORE_WARN("store", "%s", c->err);
        rc = STORE_ERR_CHECKSUM;
    }
    if (rc != STORE_OK) {
        store_events_free(e.v.items, e.v.n);
        return rc;
    }
    *out = e.v.items;
    *out_n = e.v.n;
    return STORE_OK;
}

void store_events_free(store_event *ev, size_t n)
{
    for (size_t i = 0; ev && i < n; i++)
        free(ev[i].payload);
    free(ev);
}

/* ---- reliable actions (inside the store thread's transaction) ---- */

typedef struct moved {
    bool found;
    int64_t kind, qty;
} moved;

static int row_moved(void *ctx, const store_val *c, int n)
{
    (void)n;
    moved *m = ctx;
    m->found = true;
    m->kind = c[0].i;
    m->qty = c[1].i;
    return 1;
}

/* ITEM_TAKE and ITEM_PUT run two statements; a SAVEPOINT undoes the first
 * when the second finds its precondition gone, so a CONFLICT leaves the
 * group transaction as it was. */
static int apply_take(const store_ops *o, store_conn *c, const store_action *a,
                      store_completion *out)
{
    moved m = {0};
    store_val v[3] = {SV_INT(a->account_id), SV_INT(a->slot), SV_INT(a->item_id)};
    int rc = o->query(c, STORE_SQL_ITEM_TAKE_INV, v, 3, row_moved, &m, NULL);
    if (rc != STORE_OK)
        return rc;
    if (!m.found) {
        snprintf(c->err, sizeof c->err, "item %lld is gone or slot %d is in use",
                 (long long)a->item_id, (int)a->slot);
        return STORE_ERR_CONFLICT;
    }
    int64_t changed = 0;
    store_val w[2] = {SV_INT(a->account_id), SV_INT(a->item_id)};
    rc = o->query(c, STORE_SQL_ITEM_TAKE_MARK, w, 2, NULL, NULL, &changed);
    if (rc == STORE_OK && changed != 1) {
        snprintf(c->err, sizeof c->err, "item %lld was taken meanwhile", (long long)a->item_id);
        return STORE_ERR_CONFLICT;
    }
    out->id = a->item_id;
    out->item_kind = (int32_t)m.kind;
    out->quantity = (int32_t)m.qty;
    return rc;
}

static int apply_put(const store_ops *o, store_conn *c, const store_action *a,
                     store_completion *out)
{
    moved m = {0};
    store_val v[2] = {SV_INT(a->account_id), SV_INT(a->slot)};
    int rc = o->query(c, STORE_SQL_INV_DELETE, v, 2, row_moved, &m, NULL);
    if (rc != STORE_OK)
        return rc;
    if (!m.found) {
        snprintf(c->err, sizeof c->err, "inventory slot %d is empty", (int)a->slot);
        return STORE_ERR_CONFLICT;
    }
    store_item it = {.cell = a->cell,
                     .x = a->x,
                     .y = a->y,
                     .item_kind = (int32_t)m.kind,
                     .quantity = (int32_t)m.qty};
    out->item_kind = it.item_kind;
    out->quantity = it.quantity;
    return store_rec_item_create(o, c, &out->id, &it);
}

int store_rec_apply(const store_ops *o, store_conn *c, const store_action *a, store_completion *out)
{
    switch (a->kind) {
    case STORE_ACT_INV_SET: {
        if (a->quantity == 0) {
            store_val v[2] = {SV_INT(a->account_id), SV_INT(a->slot)};
            return o->query(c, STORE_SQL_INV_DELETE, v, 2, NULL, NULL, NULL);
        }
        store_val v[4] = {SV_INT(a->account_id), SV_INT(a->slot), SV_INT(a->item_kind),
                          SV_INT(a->quantity)};
        return o->query(c, STORE_SQL_INV_SET, v, 4, NULL, NULL, NULL);
    }
    case STORE_ACT_ITEM_TAKE:
    case STORE_ACT_ITEM_PUT: {
        int rc = o->exec(c, "SAVEPOINT store_action");
        if (rc != STORE_OK)
            return rc;
        rc = a->kind == STORE_ACT_ITEM_TAKE ? apply_take(o, c, a, out) : apply_put(o, c, a, out);
        if (rc == STORE_OK)
            return o->exec(c, "RELEASE SAVEPOINT store_action");
        char why[sizeof c->err];
        memcpy(why, c->err, sizeof why);
        int rb = o->exec(c, "ROLLBACK TO SAVEPOINT store_action");
        if (rb == STORE_OK)
            rb = o->exec(c, "RELEASE SAVEPOINT store_action");
        memcpy(c->err, why, sizeof why);
        return rb == STORE_OK ? rc : rb;
    }
    case STORE_ACT_EVENT: {
        store_event ev = {.tick = a->tick,
                          .cell = a->cell,
                          .entity = a->entity,
                          .kind = a->event_kind,
                          .payload = (uint8_t *)a->data,
                          .len = a->len};
        return store_rec_event_append(o, c, &out->id, &ev);
    }
    case STORE_ACT_SNAPSHOT:
        return store_rec_snapshot_write(o, c, a->cell, a->tick, a->data, a->len);
    default:
        core_die("store: unknown action kind %d", a->kind);
    }
}
