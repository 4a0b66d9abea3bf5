/* gw_session.c - one session per account, and resuming after a dropped
 * connection.
 *
 * A joined WebSocket session is registered under its account. When the
 * connection drops, the gateway does not make the player leave: it sends
 * DETACH, and the shard keeps the entity (standing still) for
 * resume_grace_s. The gateway remembers the detached session; the client
 * was given its resume token (a SESSION record, renewed on every
 * (re)entry, so each token is used once).
 *
 * A resume token is not stored: it is a keyed BLAKE2b of the session id
 * and the account id under a random per-process key (resume_token_of), 16
 * bytes nobody without the key can make. Session ids carry the slot's
 * generation, which changes with every use of the slot, so each entry
 * gets a token of its own; two sessions share a token only if they share
 * the account and the session id, i.e. after one slot served 4,095 other
 * connections in between, and a token only counts while its own session
 * waits to be resumed.
 *
 * When a connection of an account enters the world:
 *  - the account has a live session: that older connection is closed with
 *    4001 "replaced by a newer session" and the new one takes over its
 *    entity (ATTACH, input sequence numbers restart: a new client);
 *  - the account has a detached session: the new connection takes it over
 *    (ATTACH); with that session's resume token, input sequence numbers
 *    continue (the same client reconnecting), else they restart;
 *  - otherwise: JOIN, a new entity where the player last stood.
 * The JWT proves the account in every case; the token only says "the same
 * client", which keeps its input sequence. A shard that no longer has the
 * session (grace passed) turns the ATTACH into a JOIN. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core_log.h"
#include "gw_int.h"

static void resume_token_of(const gw *g, uint32_t session_id, uint32_t account_id,
                            uint8_t out[PROTO_RESUME_TOKEN_BYTES])
{
    _Static_assert(PROTO_RESUME_TOKEN_BYTES >= crypto_generichash_BYTES_MIN &&
                       PROTO_RESUME_TOKEN_BYTES <= crypto_generichash_BYTES_MAX,
                   "resume token: a BLAKE2b output length");
    uint8_t msg[8];
    memcpy(msg, &session_id, 4);
    memcpy(msg + 4, &account_id, 4);
    crypto_generichash(out, PROTO_RESUME_TOKEN_BYTES, msg, sizeof msg, g->resume_key,
                       sizeof g->resume_key);
}

void gw_session_init(gw *g)
{
    _Static_assert(sizeof g->resume_key == crypto_generichash_KEYBYTES, "resume key: BLAKE2b's");
    if (sodium_init() < 0)
        core_die("gw_session: sodium_init failed");
    randombytes_buf(g->resume_key, sizeof g->resume_key);
}

static void detached_del_at(gw *g, uint32_t i)
{
    core_idmap_del(&g->detached_by_account, g->detached[i].account_id);
    g->detached[i] = g->detached[--g->n_detached];
    if (i < g->n_detached)
        core_idmap_put(&g->detached_by_account, g->detached[i].account_id, i);
}

static void detached_add(gw *g, const gw_detached *d)
{
    uint32_t i = core_idmap_get(&g->detached_by_account, d->account_id);
    if (i == CORE_IDMAP_NONE) {
        if (g->n_detached == g->detached_cap) {
            g->detached_cap = g->detached_cap ? g->detached_cap * 2 : 64;
            g->detached = realloc(g->detached, g->detached_cap * sizeof *g->detached);
            if (!g->detached)
                core_die("out of memory");
        }
        i = g->n_detached++;
        core_idmap_put(&g->detached_by_account, d->account_id, i);
    }
    g->detached[i] = *d;
}

static proto_join join_of(gw *g, gw_conn *c, const char *username, const float *spawn)
{
    const spatial_cellmap *cm = g->cells;
    float x = core_rng_unit(&g->rng) * (float)cm->world_w;
    float y = core_rng_unit(&g->rng) * (float)cm->world_h;
    if (spawn && spawn[0] >= 0 && spawn[1] >= 0 && spawn[0] <= (float)cm->world_w &&
        spawn[1] <= (float)cm->world_h) {
        /* where the player stood when it was last saved */
        x = spawn[0];
        y = spawn[1];
    }
    proto_join j = {
        .session_id = c->id, .gw_id = g->gw_id, .account_id = c->account_id, .x = x, .y = y};
    snprintf(j.name, sizeof j.name, "%s", username);
    return j;
}

void gw_session_enter(gw *g, gw_conn *c, const char *username, const float *spawn,
                      const uint8_t *resume)
{
    proto_join j = join_of(g, c, username, spawn);
    proto_attach a = {.join = j};
    bool attach = false;
    const char *how = "joined";

    uint32_t live = core_idmap_get(&g->live_by_account, c->account_id);
    gw_conn *old = live != CORE_IDMAP_NONE ? gw_conn_find(g, live) : NULL;
    if (old && old != c && old->is_joined) {
        /* a second login: the older connection goes, its entity stays ours */
        a.old_session_id = old->id;
        a.keep_seq = 0;
        c->route_shard = old->route_shard;
        c->entity_id = old->entity_id;
        old->is_joined = false; /* no LEAVE or DETACH: the entity is taken over */
        g->n_sessions--;
        core_idmap_del(&g->live_by_account, c->account_id);
        gw_conn_ws_close(g, old, GW_WS_CLOSE_REPLACED, "replaced by a newer session", true);
        attach = true;
        how = "took over the live session";
    } else {
        uint32_t i = core_idmap_get(&g->detached_by_account, c->account_id);
        if (i != CORE_IDMAP_NONE) {
            gw_detached *d = &g->detached[i];
            a.old_session_id = d->session_id;
            uint8_t token[PROTO_RESUME_TOKEN_BYTES];
            resume_token_of(g, d->session_id, d->account_id, token);
            a.keep_seq = resume && sodium_memcmp(resume, token, sizeof token) == 0;
            c->route_shard = d->route_shard;
            c->entity_id = d->entity_id;
            detached_del_at(g, i);
            attach = true;
            how = a.keep_seq ? "resumed" : "took over the detached session";
        }
    }

    core_buf_reset(&g->tmp);
    if (attach) {
        proto_bus_attach_write(&g->tmp, &a);
    } else {
        c->route_shard = (uint16_t)spatial_cellmap_owner(g->cells, j.x, j.y);
        proto_bus_join_write(&g->tmp, &j);
    }
    core_log_ids ids = {.conn = c->id, .session = c->id, .shard = -1};
    if (gw_bus_send_shard(g, c->route_shard, &g->tmp) != 0) {
        core_log(CORE_LOG_ERROR, "gw", &ids, "JOIN could not be sent");
        gw_conn_ws_close(g, c, GW_WS_CLOSE_INTERNAL, "internal error", false);
        return;
    }
    c->is_joined = true;
    g->n_sessions++;
    core_gauge_set(g->g_sessions, g->n_sessions);
    char addr[48];
    gw_addr_format(c->addr, addr, sizeof addr);
    core_log(CORE_LOG_INFO, "gw", &ids, "session opened (%s): account=%u name=%s addr=%s", how,
             c->account_id, username, addr);
    gw_session_opened(g, c);
}

void gw_session_opened(gw *g, gw_conn *c)
{
    core_idmap_put(&g->live_by_account, c->account_id, c->id);
    uint8_t token[PROTO_RESUME_TOKEN_BYTES];
    resume_token_of(g, c->id, c->account_id, token);
    gw_conn_extra_begin(g, c);
    proto_write_session(&c->io->extra, token, (uint16_t)g->cfg.resume_grace_s);
}

void gw_session_closed(gw *g, gw_conn *c)
{
    if (core_idmap_get(&g->live_by_account, c->account_id) == c->id)
        core_idmap_del(&g->live_by_account, c->account_id);
    proto_leave l = {.session_id = c->id, .entity_id = c->entity_id};
    core_buf_reset(&g->tmp);
    if (g->is_stopping) {
        proto_bus_leave_write(&g->tmp, &l);
    } else {
        proto_bus_detach_write(&g->tmp, &l);
        gw_detached d = {.account_id = c->account_id,
                         .session_id = c->id,
                         .route_shard = c->route_shard,
                         .entity_id = c->entity_id,
                         .expiry_ms = g->now_ms + (uint64_t)g->cfg.resume_grace_s * 1000};
        detached_add(g, &d);
    }
    gw_bus_send_shard(g, c->route_shard, &g->tmp);
}

void gw_session_sweep(gw *g)
{
    for (uint32_t i = 0; i < g->n_detached;) {
        if (g->now_ms >= g->detached[i].expiry_ms)
            detached_del_at(g, i);
        else
            i++;
    }
}

void gw_session_free(gw *g)
{
    core_idmap_free(&g->live_by_account);
    core_idmap_free(&g->detached_by_account);
    free(g->detached);
    g->detached = NULL;
    g->n_detached = g->detached_cap = 0;
}
