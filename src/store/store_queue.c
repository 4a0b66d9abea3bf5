/* store_queue.c - the store thread: the only writer of batched state.
 *
 * Two inputs, both filled from any thread without blocking on the
 * database:
 *  - the dirty set: the latest state per account (a dense array plus an
 *    open-addressing index), at most max_dirty_players accounts. Each
 *    flush copies it, writes the copy in ONE transaction, and only then
 *    removes the entries not updated meanwhile (per-entry sequence
 *    numbers), so a failed flush loses nothing and retries next interval;
 *  - the reliable ring: actions with a token and a completion queue (cq).
 *    The thread takes everything queued and applies it in one group
 *    transaction; completions are posted only after COMMIT returned. An
 *    action whose statement fails is isolated (the batch is re-run with a
 *    savepoint per action) so one bad action cannot sink the others.
 *    queue_capacity bounds actions from submit until their completion is
 *    polled, so memory is bounded even if the database is gone.
 *
 * Database down: lost connections and lock timeouts are transient; the
 * thread keeps the batch, retries with exponential backoff (20 ms up to
 * retry_max_ms), reconnects by itself, and fails an action with
 * STORE_ERR_TIMEOUT once reliable_timeout_ms passed since its submit. Any
 * other failure of the group COMMIT fails the whole batch at once, with
 * the database's reason.
 *
 * Locks: mu (ring, completion queues, flush requests) and dmu (the dirty
 * set) are never held together, nor across a database call. */
#include "store_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core_hash.h"
#include "core_log.h"
#include "core_time.h"

#define RETRY_MIN_MS 20
#define MS 1000000ull

typedef struct qitem {
    store_action a;       /* a.data points into owned */
    void *owned;          /* copy of the caller's data; freed on completion */
    uint32_t cq;          /* < STORE_MAX_CQ */
    uint64_t token;       /* the submitter's value */
    uint64_t deadline_ns; /* CLOCK_MONOTONIC; nondecreasing along the ring */
} qitem;

typedef struct cqueue {
    store_completion *items; /* ring of cap */
    size_t head, n, cap;
    int efd; /* eventfd, -1 until someone asks for it */
} cqueue;

struct store_queue {
    store *s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* the store thread sleeps on it */
    pthread_cond_t flushed; /* store_flush callers sleep on it */
    qitem *ring;            /* queue_capacity slots */
    size_t ring_head, ring_n;
    size_t outstanding; /* submitted and not yet polled; <= queue_capacity */
    cqueue cq[STORE_MAX_CQ];
    bool is_stopping;
    uint64_t flush_asked, flush_done; /* request generations */
    int flush_rc;                     /* result of the flush that served flush_done */

    pthread_mutex_t dmu;
    store_player *dirty; /* n_dirty dense entries */
    uint64_t *dirty_seq; /* seq of the last update of each entry */
    size_t n_dirty;
    int32_t *index; /* dense position or -1; power-of-two size >= 2 * max */
    size_t index_cap;
    uint64_t seq; /* last sequence handed out */

    /* The store thread's own. */
    store_conn *conn;       /* NULL or broken while the database is away */
    qitem *batch;           /* taken from the ring, oldest first */
    store_completion *done; /* outcome per batch entry */
    size_t n_batch;
    store_player *flushbuf; /* max_dirty_players */
    uint32_t backoff_ms;    /* 0 while healthy */
    uint64_t next_retry_ns; /* no database work before this */
    bool is_down, had_conn;
    char last_err[256];
};

/* ---- the dirty set (dmu held) ---- */

static size_t dirty_hash(const store_queue *q, int64_t id)
{
    return (size_t)core_fnv1a(CORE_FNV_OFFSET, &id, sizeof id) & (q->index_cap - 1);
}

static int32_t dirty_find(const store_queue *q, int64_t id)
{
    for (size_t i = dirty_hash(q, id);; i = (i + 1) & (q->index_cap - 1)) {
        int32_t d = q->index[i];
        if (d < 0 || q->dirty[d].account_id == id)
            return d;
    }
}

static void dirty_index(store_queue *q, int32_t d)
{
    size_t i = dirty_hash(q, q->dirty[d].account_id);
    while (q->index[i] >= 0)
        i = (i + 1) & (q->index_cap - 1);
    q->index[i] = d;
}

bool store_queue_dirty_get(store_queue *q, int64_t account_id, store_player *out)
{
    pthread_mutex_lock(&q->dmu);
    int32_t d = dirty_find(q, account_id);
    if (d >= 0)
        *out = q->dirty[d];
    pthread_mutex_unlock(&q->dmu);
    return d >= 0;
}

int store_submit_player(store *s, const store_player *p)
{
    if (!p || p->account_id <= 0 || !isfinite(p->x) || !isfinite(p->y)) {
        store__set_err(s, "invalid argument: player id must be > 0 and the position finite");
        return STORE_ERR_ARG;
    }
    store_queue *q = s->queue;
    if (!q) {
        store__set_err(s, "store thread not started");
        return STORE_ERR_CLOSED;
    }
    if (atomic_load(&s->is_failed)) {
        store__set_err(s, "%s", s->fail_reason);
        return STORE_ERR_FSYNC;
    }
    pthread_mutex_lock(&q->dmu);
    int32_t d = dirty_find(q, p->account_id);
    bool is_full = d < 0 && q->n_dirty == s->opts.max_dirty_players;
    if (!is_full) {
        if (d < 0) {
            d = (int32_t)q->n_dirty++;
            q->dirty[d] = *p;
            dirty_index(q, d);
        }
        q->dirty[d] = *p; /* latest wins */
        q->dirty_seq[d] = ++q->seq;
    }
    size_t n = q->n_dirty;
    pthread_mutex_unlock(&q->dmu);
    if (is_full) {
        core_counter_add(s->met.refused, 1);
        store__set_err(s, "player state refused: %zu accounts already wait for the database", n);
        return STORE_ERR_FULL;
    }
    core_gauge_set(s->met.dirty_players, (double)n);
    if (s->cache)
        store_cache_note_player(s->cache, p);
    return STORE_OK;
}

size_t store_dirty_count(store *s)
{
    if (!s->queue)
        return 0;
    pthread_mutex_lock(&s->queue->dmu);
    size_t n = s->queue->n_dirty;
    pthread_mutex_unlock(&s->queue->dmu);
    return n;
}

/* ---- submit and completions ---- */

static const char *action_check(const store_action *a)
{
    if (!a || a->kind < STORE_ACT_INV_SET || a->kind > STORE_ACT_SNAPSHOT)
        return "unknown action kind";
    bool has_slot = a->kind <= STORE_ACT_ITEM_PUT;
    if (has_slot && (a->account_id <= 0 || a->slot < 0 || a->slot >= STORE_INV_SLOTS))
        return "account id must be > 0 and the slot in 0..31";
    if (a->kind == STORE_ACT_INV_SET && (a->quantity < 0 || a->item_kind < 0))
        return "quantity and item kind must be >= 0";
    if (a->kind == STORE_ACT_ITEM_TAKE && a->item_id <= 0)
        return "item id must be > 0";
    if (a->kind == STORE_ACT_ITEM_PUT && (!isfinite(a->x) || !isfinite(a->y)))
        return "position must be finite";
    if (a->kind >= STORE_ACT_EVENT && ((!a->data && a->len) || a->len > (64u << 20)))
        return "data missing or over 64 MiB";
    return NULL;
}

int store_submit(store *s, uint32_t cq, uint64_t token, const store_action *a)
{
    const char *bad = cq >= STORE_MAX_CQ ? "completion queue out of range" : action_check(a);
    if (bad) {
        store__set_err(s, "invalid action: %s", bad);
        return STORE_ERR_ARG;
    }
    store_queue *q = s->queue;
    if (!q) {
        store__set_err(s, "store thread not started");
        return STORE_ERR_CLOSED;
    }
    if (atomic_load(&s->is_failed)) {
        store__set_err(s, "%s", s->fail_reason);
        return STORE_ERR_FSYNC;
    }
    qitem it = {.a = *a, .cq = cq, .token = token};
    if (a->kind >= STORE_ACT_EVENT) {
        it.owned = malloc(a->len ? a->len : 1);
        if (!it.owned)
            core_die("out of memory");
        if (a->len)
            memcpy(it.owned, a->data, a->len);
        it.a.data = it.owned;
    } else {
        it.a.data = NULL;
        it.a.len = 0;
    }
    it.deadline_ns = core_now_ns() + (uint64_t)s->opts.reliable_timeout_ms * MS;
    int rc = STORE_OK;
    pthread_mutex_lock(&q->mu);
    if (q->is_stopping) {
        rc = STORE_ERR_CLOSED;
    } else if (q->outstanding >= s->opts.queue_capacity) {
        rc = STORE_ERR_FULL;
    } else {
        q->ring[(q->ring_head + q->ring_n) % s->opts.queue_capacity] = it;
        q->ring_n++;
        q->outstanding++;
        core_gauge_set(s->met.queue_depth, (double)q->outstanding);
        pthread_cond_signal(&q->wake);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc != STORE_OK) {
        free(it.owned);
        if (rc == STORE_ERR_FULL) {
            core_counter_add(s->met.refused, 1);
            store__set_err(s, "action refused: the store queue is full (%zu outstanding)",
                           s->opts.queue_capacity);
        } else {
            store__set_err(s, "action refused: the store is closing");
        }
    }
    return rc;
}

int store_completions_fd(store *s, uint32_t cq)
{
    store_queue *q = s->queue;
    if (!q || cq >= STORE_MAX_CQ)
        return -1;
    pthread_mutex_lock(&q->mu);
    cqueue *x = &q->cq[cq];
    if (x->efd < 0) {
        x->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (x->efd < 0)
            core_die("eventfd: %s", strerror(errno));
        if (x->n > 0 && write(x->efd, &(uint64_t){1}, 8) < 0) {
        }
    }
    int fd = x->efd;
    pthread_mutex_unlock(&q->mu);
    return fd;
}

size_t store_completions_poll(store *s, uint32_t cq, store_completion *out, size_t max)
{
    store_queue *q = s->queue;
    if (!q || cq >= STORE_MAX_CQ)
        return 0;
    pthread_mutex_lock(&q->mu);
    cqueue *x = &q->cq[cq];
    size_t k = x->n < max ? x->n : max;
    for (size_t i = 0; i < k; i++)
        out[i] = x->items[(x->head + i) % x->cap];
    if (k) {
        x->head = (x->head + k) % x->cap;
        x->n -= k;
        if (x->n == 0)
            x->head = 0; /* touch no more of the ring than is ever in use */
        q->outstanding -= k;
        core_gauge_set(s->met.queue_depth, (double)q->outstanding);
    }
    pthread_mutex_unlock(&q->mu);
    return k;
}

/* mu held. Never fails: completions are bounded by queue_capacity. */
static void cq_push(cqueue *x, const store_completion *c)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        store_completion *items = malloc(cap * sizeof *items);
        if (!items)
            core_die("out of memory");
        for (size_t i = 0; i < x->n; i++)
            items[i] = x->items[(x->head + i) % x->cap];
        free(x->items);
        x->items = items;
        x->head = 0;
        x->cap = cap;
    }
    x->items[(x->head + x->n) % x->cap] = *c;
    x->n++;
}

/* ---- the store thread ---- */

static void note_down(store_queue *q, const char *why)
{
    snprintf(q->last_err, sizeof q->last_err, "%s", why);
    q->backoff_ms = q->backoff_ms ? q->backoff_ms * 2 : RETRY_MIN_MS;
    if (q->backoff_ms > q->s->opts.retry_max_ms)
        q->backoff_ms = q->s->opts.retry_max_ms;
    q->next_retry_ns = core_now_ns() + (uint64_t)q->backoff_ms * MS;
    if (!q->is_down)
        CORE_WARN("store", "database unreachable, retrying: %s", why);
    q->is_down = true;
}

static void note_up(store_queue *q)
{
    if (q->is_down)
        CORE_INFO("store", "database reachable again");
    q->is_down = false;
    q->backoff_ms = 0;
    q->next_retry_ns = 0;
}

/* A usable connection, reconnecting if allowed (backoff) or forced. */
static int ensure_conn(store_queue *q, bool is_forced)
{
    if (q->conn && !q->conn->is_broken)
        return STORE_OK;
    if (!is_forced && core_now_ns() < q->next_retry_ns)
        return STORE_ERR_DOWN;
    store *s = q->s;
    if (q->conn)
        s->ops->disconnect(q->conn);
    char err[256] = "";
    int rc = store__connect(s, &q->conn, err, sizeof err);
    if (rc != STORE_OK) {
        note_down(q, err);
        return rc;
    }
    if (q->had_conn)
        core_counter_add(s->met.reconnects, 1);
    q->had_conn = true;
    return STORE_OK;
}

/* Completes the first k batch entries (done[] filled) and drops them. */
static void finish(store_queue *q, size_t k)
{
    store *s = q->s;
    bool touched[STORE_MAX_CQ] = {false};
    size_t n_ok = 0;
    for (size_t i = 0; i < k; i++) {
        const store_action *a = &q->batch[i].a;
        if (q->done[i].status == STORE_OK) {
            n_ok++;
            if (s->cache && a->kind <= STORE_ACT_ITEM_PUT)
                store_cache_drop_inventory(s->cache, a->account_id);
        }
    }
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < k; i++) {
        cq_push(&q->cq[q->batch[i].cq], &q->done[i]);
        touched[q->batch[i].cq] = true;
    }
    for (uint32_t c = 0; c < STORE_MAX_CQ; c++)
        if (touched[c] && q->cq[c].efd >= 0 && write(q->cq[c].efd, &(uint64_t){1}, 8) < 0) {
            /* The counter cannot overflow in practice; the reader drains it. */
        }
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < k; i++)
        free(q->batch[i].owned);
    memmove(q->batch, q->batch + k, (q->n_batch - k) * sizeof *q->batch);
    q->n_batch -= k;
    core_counter_add(s->met.actions_committed, n_ok);
    core_counter_add(s->met.actions_failed, k - n_ok);
}

static void set_done(store_queue *q, size_t i, int status, const char *reason)
{
    store_completion *d = &q->done[i];
    memset(d, 0, sizeof *d);
    d->token = q->batch[i].token;
    d->kind = q->batch[i].a.kind;
    d->status = status;
    if (reason) { /* truncated to fit: the reason is for humans */
        size_t n = strnlen(reason, sizeof d->reason - 1);
        memcpy(d->reason, reason, n);
        d->reason[n] = '\0';
    }
}

enum { GC_OK, GC_DOWN, GC_ITEM, GC_COMMIT, GC_FSYNC };

/* One group transaction over the whole batch. isolate: a savepoint per
 * action, so a failing action is rolled back alone and reported. */
static int group_commit(store_queue *q, bool isolate)
{
    store *s = q->s;
    store_conn *c = q->conn;
    int rc = store__begin(s, c, false);
    for (size_t i = 0; rc == STORE_OK && i < q->n_batch; i++) {
        set_done(q, i, STORE_OK, NULL);
        if (isolate && (rc = store__exec(s, c, "SAVEPOINT store_isolate")) != STORE_OK)
            break;
        int arc = store__apply(s, c, &q->batch[i].a, &q->done[i]);
        if (arc == STORE_ERR_CONFLICT) {
            q->done[i].status = arc;
            snprintf(q->done[i].reason, sizeof q->done[i].reason, "%.159s", c->err);
        } else if (arc != STORE_OK && (!isolate || arc == STORE_ERR_DOWN)) {
            rc = arc;
            break;
        } else if (arc != STORE_OK) {
            set_done(q, i, arc, c->err);
            rc = store__exec(s, c, "ROLLBACK TO SAVEPOINT store_isolate");
        }
        if (isolate && rc == STORE_OK)
            rc = store__exec(s, c, "RELEASE SAVEPOINT store_isolate");
    }
    if (rc != STORE_OK) {
        store__rollback(s, c);
        core_counter_add(s->met.commit_failures, 1);
        return rc == STORE_ERR_DOWN || c->is_broken ? GC_DOWN : GC_ITEM;
    }
    rc = store__commit(s, c);
    if (rc != STORE_OK) {
        store__rollback(s, c);
        core_counter_add(s->met.commit_failures, 1);
        if (rc == STORE_ERR_FSYNC)
            return GC_FSYNC;
        return rc == STORE_ERR_DOWN ? GC_DOWN : GC_COMMIT;
    }
    return GC_OK;
}

/* Commits what is batched if the database is reachable, then fails what
 * ran out of time (everything, when closing). */
static void process_batch(store_queue *q, bool is_final)
{
    if (q->n_batch == 0)
        return;
    if (atomic_load(&q->s->is_failed)) {
        /* after a failed fsync nothing is acknowledged any more */
        for (size_t i = 0; i < q->n_batch; i++)
            set_done(q, i, STORE_ERR_FSYNC, q->s->fail_reason);
        finish(q, q->n_batch);
        return;
    }
    if ((is_final || core_now_ns() >= q->next_retry_ns) && ensure_conn(q, is_final) == STORE_OK) {
        int r = group_commit(q, false);
        if (r == GC_ITEM)
            r = group_commit(q, true);
        if (r == GC_OK) {
            note_up(q);
            finish(q, q->n_batch);
        } else if (r == GC_DOWN) {
            note_down(q, q->conn->err);
        } else if (r == GC_FSYNC) {
            /* the commit may or may not be on disk: never retry it blindly,
             * never confirm it; stop acknowledging and raise the alert */
            store__fail(q->s, q->conn->err);
            for (size_t i = 0; i < q->n_batch; i++)
                set_done(q, i, STORE_ERR_FSYNC, q->s->fail_reason);
            finish(q, q->n_batch);
            return;
        } else {
            char why[200];
            snprintf(why, sizeof why, "not committed: %.180s", q->conn->err);
            CORE_WARN("store", "group commit of %zu actions failed: %s", q->n_batch, q->conn->err);
            for (size_t i = 0; i < q->n_batch; i++)
                set_done(q, i, STORE_ERR_DB, why);
            finish(q, q->n_batch);
        }
    }
    uint64_t now = core_now_ns();
    size_t k = 0;
    while (k < q->n_batch && (is_final || q->batch[k].deadline_ns <= now))
        k++;
    if (k == 0)
        return;
    char why[200];
    snprintf(why, sizeof why, "%s: %.140s",
             is_final ? "store closing before the database came back"
                      : "not committed within the reliable timeout",
             q->last_err);
    for (size_t i = 0; i < k; i++)
        set_done(q, i, is_final ? STORE_ERR_CLOSED : STORE_ERR_TIMEOUT, why);
    finish(q, k);
}

/* Writes the dirty set in one transaction; returns the result. */
static int flush_players(store_queue *q, bool is_final)
{
    store *s = q->s;
    pthread_mutex_lock(&q->dmu);
    size_t n = q->n_dirty;
    memcpy(q->flushbuf, q->dirty, n * sizeof *q->dirty);
    uint64_t mark = q->seq;
    pthread_mutex_unlock(&q->dmu);
    if (n == 0)
        return STORE_OK;
    if (atomic_load(&s->is_failed))
        return STORE_ERR_FSYNC; /* kept in memory, never written after a failed fsync */
    int rc = ensure_conn(q, is_final);
    if (rc != STORE_OK)
        return rc;
    uint64_t t0 = core_now_ns();
    store_conn *c = q->conn;
    rc = store__begin(s, c, false);
    if (rc == STORE_OK)
        rc = store__flush_players(s, c, q->flushbuf, n);
    if (rc == STORE_OK)
        rc = store__commit(s, c);
    if (rc != STORE_OK) {
        store__rollback(s, c);
        core_counter_add(s->met.commit_failures, 1);
        if (rc == STORE_ERR_FSYNC)
            store__fail(s, c->err);
        else if (rc == STORE_ERR_DOWN)
            note_down(q, c->err);
        else
            CORE_WARN("store", "flush of %zu players failed, kept for the next: %s", n, c->err);
        return rc;
    }
    core_histogram_observe(s->met.flush_s, (double)(core_now_ns() - t0) / 1e9);
    core_counter_add(s->met.rows_flushed, n);
    core_counter_add(s->met.flushes, 1);
    note_up(q);
    pthread_mutex_lock(&q->dmu);
    size_t j = 0;
    for (size_t d = 0; d < q->n_dirty; d++) {
        if (q->dirty_seq[d] <= mark)
            continue; /* written as it is now */
        q->dirty[j] = q->dirty[d];
        q->dirty_seq[j++] = q->dirty_seq[d];
    }
    q->n_dirty = j;
    memset(q->index, 0xff, q->index_cap * sizeof *q->index);
    for (size_t d = 0; d < j; d++)
        dirty_index(q, (int32_t)d);
    pthread_mutex_unlock(&q->dmu);
    core_gauge_set(s->met.dirty_players, (double)j);
    return STORE_OK;
}

/* Retention: each cell keeps its keep_snapshots newest snapshots; log
 * records older than a cell's oldest kept snapshot can no longer be
 * replayed from anything and go too. Cells without a snapshot keep their
 * log. One statement each, on both backends (a NULL comparison keeps). */
static void prune(store_queue *q)
{
    store *s = q->s;
    if (ensure_conn(q, false) != STORE_OK)
        return;
    char sql[512];
    snprintf(sql, sizeof sql,
             "DELETE FROM cell_snapshots WHERE tick < (SELECT s2.tick FROM cell_snapshots s2 "
             "WHERE s2.cell = cell_snapshots.cell ORDER BY s2.tick DESC LIMIT 1 OFFSET %u); "
             "DELETE FROM events WHERE tick < (SELECT MIN(s3.tick) FROM cell_snapshots s3 "
             "WHERE s3.cell = events.cell)",
             s->opts.keep_snapshots > 0 ? s->opts.keep_snapshots - 1 : 0);
    uint64_t t0 = core_now_ns();
    if (s->ops->exec(q->conn, sql) != STORE_OK)
        CORE_WARN("store", "retention pass failed (retried next period): %s", q->conn->err);
    else
        CORE_DEBUG("store", "retention pass in %.1f ms", (double)(core_now_ns() - t0) / 1e6);
}

static void *store_thread(void *arg)
{
    store_queue *q = arg;
    store *s = q->s;
    uint64_t interval_ns = (uint64_t)s->opts.flush_interval_ms * MS;
    uint64_t next_flush = core_now_ns() + interval_ns;
    uint64_t prune_ns = (uint64_t)s->opts.prune_interval_ms * MS;
    uint64_t next_prune = core_now_ns() + prune_ns;
    size_t cap = s->opts.queue_capacity;
    ensure_conn(q, true);
    for (;;) {
        pthread_mutex_lock(&q->mu);
        bool stop, want_flush;
        for (;;) {
            while (q->ring_n && q->n_batch < cap) {
                q->batch[q->n_batch++] = q->ring[q->ring_head];
                q->ring_head = (q->ring_head + 1) % cap;
                q->ring_n--;
            }
            /* an empty ring starts over at its first slot: only as many
             * slots as are ever queued at once get touched (resident) */
            if (q->ring_n == 0)
                q->ring_head = 0;
            uint64_t now = core_now_ns();
            stop = q->is_stopping;
            want_flush = q->flush_asked != q->flush_done || now >= next_flush;
            bool can_commit = q->n_batch && now >= q->next_retry_ns;
            bool expiring = q->n_batch && now >= q->batch[0].deadline_ns;
            if (stop || want_flush || can_commit || expiring)
                break;
            uint64_t wake = next_flush;
            if (q->n_batch && q->next_retry_ns < wake)
                wake = q->next_retry_ns;
            if (q->n_batch && q->batch[0].deadline_ns < wake)
                wake = q->batch[0].deadline_ns;
            struct timespec ts = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
            pthread_cond_timedwait(&q->wake, &q->mu, &ts);
        }
        uint64_t asked = q->flush_asked;
        pthread_mutex_unlock(&q->mu);
        process_batch(q, stop);
        if (want_flush || stop) {
            int rc = flush_players(q, stop);
            next_flush = core_now_ns() + interval_ns;
            pthread_mutex_lock(&q->mu);
            q->flush_done = asked;
            q->flush_rc = rc;
            pthread_cond_broadcast(&q->flushed);
            pthread_mutex_unlock(&q->mu);
            if (stop && rc != STORE_OK)
                CORE_ERROR("store", "closing with %zu player states not saved: %s",
                           store_dirty_count(s), q->last_err);
            if (!stop && prune_ns && core_now_ns() >= next_prune) {
                prune(q);
                next_prune = core_now_ns() + prune_ns;
            }
        }
        if (stop)
            return NULL;
    }
}

int store_flush(store *s, int timeout_ms)
{
    store_queue *q = s->queue;
    if (!q)
        return STORE_ERR_CLOSED;
    uint64_t deadline = core_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * MS;
    struct timespec ts = {(time_t)(deadline / 1000000000ull), (long)(deadline % 1000000000ull)};
    pthread_mutex_lock(&q->mu);
    uint64_t want = ++q->flush_asked;
    pthread_cond_signal(&q->wake);
    while (q->flush_done < want && !q->is_stopping)
        if (pthread_cond_timedwait(&q->flushed, &q->mu, &ts) == ETIMEDOUT)
            break;
    int rc = q->flush_done >= want ? q->flush_rc : STORE_ERR_TIMEOUT;
    pthread_mutex_unlock(&q->mu);
    if (rc != STORE_OK)
        store__set_err(s, "flush: %s", store_strerror(rc));
    return rc;
}

/* ---- lifecycle ---- */

static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        core_die("out of memory");
    return p;
}

int store_queue_create(store_queue **out, store *s)
{
    store_queue *q = xcalloc(1, sizeof *q);
    q->s = s;
    size_t cap = s->opts.queue_capacity, max = s->opts.max_dirty_players;
    q->ring = xcalloc(cap, sizeof *q->ring);
    q->batch = xcalloc(cap, sizeof *q->batch);
    q->done = xcalloc(cap, sizeof *q->done);
    q->dirty = xcalloc(max, sizeof *q->dirty);
    q->dirty_seq = xcalloc(max, sizeof *q->dirty_seq);
    q->flushbuf = xcalloc(max, sizeof *q->flushbuf);
    q->index_cap = 16;
    while (q->index_cap < max * 2)
        q->index_cap *= 2;
    q->index = xcalloc(q->index_cap, sizeof *q->index);
    memset(q->index, 0xff, q->index_cap * sizeof *q->index);
    for (int i = 0; i < STORE_MAX_CQ; i++)
        q->cq[i].efd = -1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->dmu, NULL);
    cond_init_monotonic(&q->wake);
    cond_init_monotonic(&q->flushed);
    if (pthread_create(&q->thread, NULL, store_thread, q) != 0)
        core_die("store: cannot start the store thread");
    *out = q;
    return STORE_OK;
}

int store_start(store *s)
{
    if (s->queue) {
        store__set_err(s, "store thread already running");
        return STORE_ERR_ARG;
    }
    return store_queue_create(&s->queue, s);
}

void store_queue_destroy(store_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->is_stopping = true;
    pthread_cond_signal(&q->wake);
    pthread_cond_broadcast(&q->flushed);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    q->s->queue = NULL;
    if (q->conn)
        q->s->ops->disconnect(q->conn);
    for (int i = 0; i < STORE_MAX_CQ; i++) {
        free(q->cq[i].items);
        if (q->cq[i].efd >= 0)
            close(q->cq[i].efd);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->dmu);
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->flushed);
    free(q->ring);
    free(q->batch);
    free(q->done);
    free(q->dirty);
    free(q->dirty_seq);
    free(q->index);
    free(q->flushbuf);
    free(q);
}
