/* gw_login.c - the account registry and the asynchronous login service.
 *
 * Divisions: input rules and passwords; the account registry (in memory,
 * behind account_find / account_create so the store module can replace
 * it); one login (the race-free create-or-check); the worker pool, its
 * bounded request queue and the result ring signalled through an eventfd.
 *
 * Threads: gw_login_submit / gw_login_poll / gw_login_fd run on the
 * gateway thread; workers run login_do; gw_login_run runs login_do on its
 * caller. One mutex (mu) guards the queues and counters; another (reg_mu)
 * the registry. argon2id never runs under either lock.
 *
 * Password hashing lives here rather than in gw_auth.c: gw_auth.h exports
 * no password API and this file is its only user, so it stays static. */
#include "gw_auth.h"
#include "gw_auth_int.h"
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

#include "core_hash.h"
#include "core_log.h"

#define GW_LOGIN_NAME_MIN 3
#define GW_LOGIN_NAME_MAX 24
#define GW_LOGIN_PASS_MIN 6
#define GW_LOGIN_PASS_MAX 128

/* argon2id cost: 2 passes over 19 MiB, one lane - the OWASP Password
 * Storage Cheat Sheet's minimum for argon2id (m=19456 KiB, t=2, p=1).
 * Measured on the 2-vCPU target: ~15.5 ms per hash and ~15.5 ms per
 * verify, one core each, so 2 workers give ~120 logins/s. Verification
 * reads the cost from the stored string, so raising these later keeps old
 * hashes valid. */
/* Password logins waiting at most: ~2 s of argon2id on two workers. The
 * queue itself is larger, for the cheap jobs (a token holder's player
 * load, refresh, logout): a login storm with tokens must not be turned
 * away because of the hash work's limit. */
#define GW_LOGIN_PW_QUEUE 256
#define GW_LOGIN_PWHASH_OPSLIMIT 2ull
#define GW_LOGIN_PWHASH_MEMLIMIT (19u * 1024u * 1024u)

/* ---- input rules and passwords ---- */

/* Same rule as gw_auth.c's auth_username_valid; keep them in step. */
static bool login_username_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= GW_LOGIN_NAME_MAX)
            return false;
    }
    return n >= GW_LOGIN_NAME_MIN;
}

/* Password length in bytes, or -1 when outside 6..128 (reads at most 129). */
static int login_password_len(const char *p)
{
    size_t n = strnlen(p, GW_LOGIN_PASS_MAX + 1);
    return n < GW_LOGIN_PASS_MIN || n > GW_LOGIN_PASS_MAX ? -1 : (int)n;
}

static int login_check_input(const char *username, const char *password)
{
    if (username == NULL || !login_username_valid(username))
        return GW_AUTH_E_USERNAME;
    if (password == NULL || login_password_len(password) < 0)
        return GW_AUTH_E_PASSWORD;
    return GW_AUTH_OK;
}

/* Hashes into out (argon2id, encoded with its parameters and salt). */
static void password_hash(char out[crypto_pwhash_STRBYTES], const char *pw, size_t n)
{
    /* Fails only when the 19 MiB work area cannot be allocated. */
    if (crypto_pwhash_str_alg(out, pw, n, GW_LOGIN_PWHASH_OPSLIMIT, GW_LOGIN_PWHASH_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        core_die("gw_login: argon2id hashing failed (out of memory)");
}

static bool password_verify(const char hash[crypto_pwhash_STRBYTES], const char *pw, size_t n)
{
    return crypto_pwhash_str_verify(hash, pw, n) == 0;
}

/* ---- account registry (in memory; the store module replaces it) ---- */

typedef struct account {
    struct account *next;                 /* hash chain */
    uint32_t account_id;                  /* >= 1, allocated in order */
    char username[GW_LOGIN_NAME_MAX + 1]; /* valid username, NUL-terminated */
    char hash[crypto_pwhash_STRBYTES];    /* argon2id encoded string */
} account;

typedef struct registry {
    pthread_mutex_t mu;
    account **buckets; /* n_buckets chains */
    size_t n_buckets;  /* power of two */
    size_t n_accounts; /* grows buckets past 3/4 load */
    uint32_t next_id;  /* next account id; starts at 1 */
} registry;

static size_t registry_slot(const registry *r, const char *username)
{
    return (size_t)core_fnv1a(CORE_FNV_OFFSET, username, strlen(username)) & (r->n_buckets - 1);
}

static void registry_init(registry *r)
{
    pthread_mutex_init(&r->mu, NULL);
    r->n_buckets = 64;
    r->buckets = calloc(r->n_buckets, sizeof *r->buckets);
    if (r->buckets == NULL)
        core_die("gw_login: out of memory");
    r->n_accounts = 0;
    r->next_id = 1;
}

static void registry_free(registry *r)
{
    for (size_t i = 0; i < r->n_buckets; i++) {
        for (account *a = r->buckets[i], *next; a != NULL; a = next) {
            next = a->next;
            sodium_memzero(a, sizeof *a);
            free(a);
        }
    }
    free(r->buckets);
    pthread_mutex_destroy(&r->mu);
}

/* Copies the account into *out and returns true when it exists. Caller
 * holds r->mu. The copy lets the caller verify after unlocking. */
static bool account_find(registry *r, const char *username, account *out)
{
    for (account *a = r->buckets[registry_slot(r, username)]; a != NULL; a = a->next) {
        if (strcmp(a->username, username) == 0) {
            *out = *a;
            out->next = NULL;
            return true;
        }
    }
    return false;
}

/* Adds a new account (the caller checked it is absent) and returns its id.
 * Caller holds r->mu. */
static uint32_t account_create(registry *r, const char *username, const char *hash)
{
    if (r->next_id == 0)
        core_die("gw_login: account ids exhausted");
    if (r->n_accounts + 1 > r->n_buckets / 4 * 3) {
        size_t nb = r->n_buckets * 2;
        account **b = calloc(nb, sizeof *b);
        if (b == NULL)
            core_die("gw_login: out of memory");
        account **old = r->buckets;
        size_t old_n = r->n_buckets;
        r->buckets = b;
        r->n_buckets = nb;
        for (size_t i = 0; i < old_n; i++) {
            for (account *a = old[i], *next; a != NULL; a = next) {
                next = a->next;
                size_t s = registry_slot(r, a->username);
                a->next = b[s];
                b[s] = a;
            }
        }
        free(old);
    }
    account *a = calloc(1, sizeof *a);
    if (a == NULL)
        core_die("gw_login: out of memory");
    a->account_id = r->next_id++;
    snprintf(a->username, sizeof a->username, "%s", username);
    memcpy(a->hash, hash, sizeof a->hash);
    size_t s = registry_slot(r, username);
    a->next = r->buckets[s];
    r->buckets[s] = a;
    r->n_accounts++;
    return a->account_id;
}

/* ---- the service ---- */

typedef struct login_req {
    uint64_t cookie;
    int kind;            /* GW_JOB_* */
    uint32_t account_id; /* GW_JOB_LOAD */
    char username[GW_LOGIN_NAME_MAX + 1];
    char password[GW_LOGIN_PASS_MAX + 1];  /* wiped once used or dropped */
    char refresh[GW_AUTH_REFRESH_LEN + 1]; /* GW_JOB_REFRESH / LOGOUT; "" = none */
    bool is_external;                      /* GW_JOB_LOAD of a provider's account */
    bool has_access;                       /* GW_JOB_LOGOUT: access holds the bearer */
    gw_claims access;
} login_req;

struct gw_login {
    gw_auth *auth;     /* borrowed; outlives the service */
    registry reg;      /* accounts when there is no store (tests) */
    store *st;         /* borrowed; NULL = the in-memory registry */
    int refresh_ttl_s; /* lifetime of issued refresh tokens, > 0 */

    pthread_mutex_t mu;       /* guards everything below except efd and threads */
    pthread_cond_t cv;        /* signalled when a request is queued or on stop */
    login_req *queue;         /* ring of queue_cap requests */
    size_t queue_cap;         /* >= 1 */
    size_t q_head, q_len;     /* oldest request; count */
    gw_login_result *results; /* ring of res_cap results */
    size_t res_cap;           /* queue_cap + n_threads: enough for every accepted login */
    size_t r_head, r_len;
    size_t n_running; /* requests taken by workers, result not yet pushed */
    size_t n_pw;      /* password logins in the queue (<= GW_LOGIN_PW_QUEUE) */
    bool is_stopping;

    int efd; /* eventfd, readable while results wait */
    pthread_t *threads;
    int n_threads;
};

/* Looks an account up in the store. Returns true with *out filled; false
 * with res->status left as GW_AUTH_E_CREDENTIALS when it does not exist,
 * or set to GW_AUTH_E_STORE when the store failed. */
static bool store_find(gw_login *l, const char *username, account *out, gw_login_result *res)
{
    store_account sa;
    int rc = store_account_find(l->st, &sa, username);
    if (rc == STORE_ERR_NOTFOUND)
        return false;
    if (rc != STORE_OK || sa.id <= 0 || sa.id > UINT32_MAX ||
        strlen(sa.pw_hash) >= sizeof out->hash) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "login: account lookup failed: %s",
                 store_strerror(rc));
        res->status = GW_AUTH_E_STORE;
        return false;
    }
    memset(out, 0, sizeof *out);
    out->account_id = (uint32_t)sa.id;
    snprintf(out->username, sizeof out->username, "%.*s", (int)(sizeof out->username - 1),
             sa.username);
    memcpy(out->hash, sa.pw_hash, strlen(sa.pw_hash) + 1);
    sodium_memzero(&sa, sizeof sa);
    return true;
}

void gw_login_use_store(gw_login *l, store *st)
{
    l->st = st;
}

/* The whole login of one (valid) username/password pair: check the
 * password of an existing account, or create it. Any thread. */
static void login_do(gw_login *l, const char *username, const char *password, gw_login_result *res)
{
    size_t pw_n = strlen(password);
    account acc;
    bool found;
    res->status = GW_AUTH_E_CREDENTIALS;
    res->account_id = 0;
    res->token[0] = '\0';
    snprintf(res->username, sizeof res->username, "%s", username);

    if (l->st) {
        found = store_find(l, username, &acc, res);
        if (!found && res->status == GW_AUTH_E_CREDENTIALS) {
            char hash[crypto_pwhash_STRBYTES];
            password_hash(hash, password, pw_n); /* slow: no lock held */
            int64_t id = 0;
            int rc = store_account_create(l->st, &id, username, hash);
            if (rc == STORE_OK && id > 0 && id <= UINT32_MAX) {
                acc.account_id = (uint32_t)id;
                res->status = GW_AUTH_OK;
            } else if (rc == STORE_ERR_EXISTS) {
                /* created by a concurrent first login: check against it */
                found = store_find(l, username, &acc, res);
            } else {
                res->status = GW_AUTH_E_STORE;
            }
            sodium_memzero(hash, sizeof hash);
        }
    } else {
        pthread_mutex_lock(&l->reg.mu);
        found = account_find(&l->reg, username, &acc);
        pthread_mutex_unlock(&l->reg.mu);

        if (!found) {
            char hash[crypto_pwhash_STRBYTES];
            password_hash(hash, password, pw_n); /* slow: outside the lock */
            /* Look again: another worker may have created the account while
             * we hashed. Then exactly one account exists and this login is
             * checked against the winner's password like any later login. */
            pthread_mutex_lock(&l->reg.mu);
            found = account_find(&l->reg, username, &acc);
            if (!found) {
                acc.account_id = account_create(&l->reg, username, hash);
                res->status = GW_AUTH_OK;
            }
            pthread_mutex_unlock(&l->reg.mu);
        }
    }
    if (found && password_verify(acc.hash, password, pw_n))
        res->status = GW_AUTH_OK;
    if (res->status == GW_AUTH_OK) {
        res->account_id = acc.account_id;
        if (gw_auth_issue(l->auth, acc.account_id, username, res->token, sizeof res->token) != 0)
            core_die("gw_login: token does not fit gw_login_result.token");
        if (gw_refresh_issue(l->st, l->refresh_ttl_s, acc.account_id, username, res) != 0) {
            res->token[0] = '\0';
            res->status = GW_AUTH_E_STORE;
        }
    }
    sodium_memzero(&acc, sizeof acc);
}

/* Loads the player record for a session entering the world. */
static void load_do(gw_login *l, const login_req *req, gw_login_result *res)
{
    uint32_t account_id = req->account_id;
    res->account_id = account_id;
    res->status = GW_AUTH_OK;
    if (!l->st)
        return;
    if (req->is_external) { /* account_id is the provider's subject */
        gw_external_enter(l->st, l->auth, account_id, req->username, res);
        if (res->status != GW_AUTH_OK)
            return;
        account_id = res->account_id;
    }
    store_player p;
    int rc = store_player_load(l->st, &p, account_id);
    if (rc == STORE_OK) {
        res->has_player = true;
        res->x = (float)p.x;
        res->y = (float)p.y;
    } else if (rc != STORE_ERR_NOTFOUND) {
        core_log(CORE_LOG_ERROR, "gw", NULL, "player %u: load failed: %s", account_id,
                 store_strerror(rc));
        res->status = GW_AUTH_E_STORE;
    }
}

static void login_signal(gw_login *l)
{
    uint64_t one = 1;
    /* EAGAIN only when the counter would overflow: it is readable anyway. */
    while (write(l->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void *login_worker(void *arg)
{
    gw_login *l = arg;
    login_req req;
    gw_login_result res;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->is_stopping && l->q_len == 0)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->is_stopping)
            break;
        login_req *slot = &l->queue[l->q_head];
        req = *slot;
        sodium_memzero(slot, sizeof *slot);
        l->q_head = (l->q_head + 1) % l->queue_cap;
        l->q_len--;
        if (l->q_len == 0) /* start over: only the slots ever in use at once get touched */
            l->q_head = 0;
        l->n_running++;
        if (req.kind == GW_JOB_LOGIN)
            l->n_pw--;
        pthread_mutex_unlock(&l->mu);

        memset(&res, 0, sizeof res);
        res.cookie = req.cookie;
        res.kind = req.kind;
        if (req.kind == GW_JOB_LOAD)
            load_do(l, &req, &res);
        else if (req.kind == GW_JOB_REFRESH)
            gw_refresh_do(l->st, l->auth, l->refresh_ttl_s, req.refresh, &res);
        else if (req.kind == GW_JOB_LOGOUT)
            gw_logout_do(l->st, req.has_access ? &req.access : NULL, req.refresh, &res);
        else
            login_do(l, req.username, req.password, &res);
        sodium_memzero(&req, sizeof req);

        pthread_mutex_lock(&l->mu);
        assert(l->r_len < l->res_cap); /* guaranteed by submit's admission */
        l->results[(l->r_head + l->r_len) % l->res_cap] = res;
        l->r_len++;
        l->n_running--;
        login_signal(l);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int gw_login_create(gw_login **out, gw_auth *auth, int n_threads, int queue_cap)
{
    *out = NULL;
    if (auth == NULL || n_threads < 1 || queue_cap < 1)
        return -1;
    if (sodium_init() < 0) /* gw_auth_create did it already; idempotent */
        core_die("gw_login: sodium_init failed");
    gw_login *l = calloc(1, sizeof *l);
    if (l == NULL)
        core_die("gw_login: out of memory");
    l->auth = auth;
    l->refresh_ttl_s = 30 * 86400;
    registry_init(&l->reg);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->queue_cap = (size_t)queue_cap;
    l->res_cap = (size_t)queue_cap + (size_t)n_threads;
    l->queue = calloc(l->queue_cap, sizeof *l->queue);
    l->results = calloc(l->res_cap, sizeof *l->results);
    l->threads = calloc((size_t)n_threads, sizeof *l->threads);
    if (l->queue == NULL || l->results == NULL || l->threads == NULL)
        core_die("gw_login: out of memory");
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) {
        CORE_ERROR("gw", "gw_login: eventfd: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < n_threads; i++) {
        int err = pthread_create(&l->threads[i], NULL, login_worker, l);
        if (err != 0) {
            CORE_ERROR("gw", "gw_login: pthread_create: %s", strerror(err));
            goto fail;
        }
        l->n_threads++;
    }
    *out = l;
    return 0;
fail:
    gw_login_destroy(l);
    return -1;
}

void gw_login_destroy(gw_login *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->is_stopping = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    /* A worker inside argon2id finishes that hash (tens of ms) first. */
    for (int i = 0; i < l->n_threads; i++)
        pthread_join(l->threads[i], NULL);
    if (l->efd >= 0)
        close(l->efd);
    sodium_memzero(l->queue, l->queue_cap * sizeof *l->queue); /* dropped passwords */
    sodium_memzero(l->results, l->res_cap * sizeof *l->results);
    free(l->queue);
    free(l->results);
    free(l->threads);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    registry_free(&l->reg);
    free(l);
}

int gw_login_submit(gw_login *l, uint64_t cookie, const char *username, const char *password)
{
    int rc = login_check_input(username, password);
    if (rc != GW_AUTH_OK)
        return rc;
    pthread_mutex_lock(&l->mu);
    /* Admit only what the result ring can hold, so a gateway that stops
     * polling gets BUSY instead of unbounded memory growth. */
    if (l->n_pw >= GW_LOGIN_PW_QUEUE || l->q_len >= l->queue_cap ||
        l->q_len + l->n_running + l->r_len >= l->res_cap) {
        pthread_mutex_unlock(&l->mu);
        return GW_AUTH_E_BUSY;
    }
    l->n_pw++;
    login_req *slot = &l->queue[(l->q_head + l->q_len) % l->queue_cap];
    slot->cookie = cookie;
    slot->kind = GW_JOB_LOGIN;
    snprintf(slot->username, sizeof slot->username, "%s", username);
    snprintf(slot->password, sizeof slot->password, "%s", password);
    l->q_len++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int gw_login_submit_load(gw_login *l, uint64_t cookie, uint32_t account_id)
{
    pthread_mutex_lock(&l->mu);
    if (l->q_len >= l->queue_cap || l->q_len + l->n_running + l->r_len >= l->res_cap) {
        pthread_mutex_unlock(&l->mu);
        return GW_AUTH_E_BUSY;
    }
    login_req *slot = &l->queue[(l->q_head + l->q_len) % l->queue_cap];
    memset(slot, 0, sizeof *slot);
    slot->cookie = cookie;
    slot->kind = GW_JOB_LOAD;
    slot->account_id = account_id;
    l->q_len++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* Takes a free request slot, or NULL when the queue or the result ring
 * is full. Caller holds l->mu. */
static login_req *queue_slot(gw_login *l)
{
    if (l->q_len >= l->queue_cap || l->q_len + l->n_running + l->r_len >= l->res_cap)
        return NULL;
    login_req *slot = &l->queue[(l->q_head + l->q_len) % l->queue_cap];
    memset(slot, 0, sizeof *slot);
    return slot;
}

static void queue_push(gw_login *l)
{
    l->q_len++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int gw_login_submit_load_external(gw_login *l, uint64_t cookie, uint32_t subject,
                                  const char *username)
{
    pthread_mutex_lock(&l->mu);
    login_req *slot = queue_slot(l);
    if (slot == NULL) {
        pthread_mutex_unlock(&l->mu);
        return GW_AUTH_E_BUSY;
    }
    slot->cookie = cookie;
    slot->kind = GW_JOB_LOAD;
    slot->account_id = subject;
    slot->is_external = true;
    snprintf(slot->username, sizeof slot->username, "%s", username);
    queue_push(l);
    return 0;
}

int gw_login_submit_refresh(gw_login *l, uint64_t cookie, const char *refresh)
{
    uint8_t hash[32];
    if (refresh == NULL || gw_auth_refresh_hash(refresh, hash) != 0)
        return GW_AUTH_E_CREDENTIALS;
    pthread_mutex_lock(&l->mu);
    login_req *slot = queue_slot(l);
    if (slot == NULL) {
        pthread_mutex_unlock(&l->mu);
        return GW_AUTH_E_BUSY;
    }
    slot->cookie = cookie;
    slot->kind = GW_JOB_REFRESH;
    snprintf(slot->refresh, sizeof slot->refresh, "%s", refresh);
    queue_push(l);
    return 0;
}

int gw_login_submit_logout(gw_login *l, uint64_t cookie, const gw_claims *access,
                           const char *refresh)
{
    pthread_mutex_lock(&l->mu);
    login_req *slot = queue_slot(l);
    if (slot == NULL) {
        pthread_mutex_unlock(&l->mu);
        return GW_AUTH_E_BUSY;
    }
    slot->cookie = cookie;
    slot->kind = GW_JOB_LOGOUT;
    if (access != NULL) {
        slot->has_access = true;
        slot->access = *access;
    }
    /* Longer or shorter text is no refresh token: nothing to revoke. */
    if (refresh != NULL && strlen(refresh) == GW_AUTH_REFRESH_LEN)
        memcpy(slot->refresh, refresh, GW_AUTH_REFRESH_LEN + 1);
    queue_push(l);
    return 0;
}

void gw_login_set_refresh_ttl(gw_login *l, int ttl_s)
{
    if (ttl_s > 0)
        l->refresh_ttl_s = ttl_s;
}

int gw_login_fd(gw_login *l)
{
    return l->efd;
}

size_t gw_login_poll(gw_login *l, gw_login_result *out, size_t max)
{
    uint64_t n;
    /* Drain first, then take results: a result pushed after the read
     * signals again, so none can be left behind unsignalled. */
    while (read(l->efd, &n, sizeof n) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&l->mu);
    size_t k = 0;
    for (; k < max && l->r_len > 0; k++) {
        gw_login_result *r = &l->results[l->r_head];
        out[k] = *r;
        sodium_memzero(r, sizeof *r);
        l->r_head = (l->r_head + 1) % l->res_cap;
        l->r_len--;
    }
    if (l->r_len == 0) /* start over: the ring's untouched pages stay unmapped */
        l->r_head = 0;
    /* More than max were waiting: keep the fd readable (epoll may be
     * edge-triggered, and we just drained the counter). */
    if (l->r_len > 0)
        login_signal(l);
    pthread_mutex_unlock(&l->mu);
    return k;
}

int gw_login_run(gw_login *l, const char *username, const char *password, gw_login_result *out)
{
    memset(out, 0, sizeof *out);
    int rc = login_check_input(username, password);
    if (rc != GW_AUTH_OK) {
        out->status = rc;
        return rc;
    }
    login_do(l, username, password, out);
    return out->status;
}
