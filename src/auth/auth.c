/* see auth.h */
#include "auth/auth.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "mqtt/mqtt.h"

/* Failures from one address beyond FAIL_BURST within FAIL_WINDOW_MS block
 * that address for FAIL_BLOCK_MS: its CONNECTs are refused before any
 * password is hashed, so a flood cannot turn the slow hash against us. */
#define FAIL_SLOTS     1024
#define FAIL_BURST     5
#define FAIL_WINDOW_MS 10000
#define FAIL_BLOCK_MS  10000

/* The rules in force: immutable once published, shared by reference. */
struct rules {
    atomic_uint refs;
    struct auth_settings s;
    bool has_passwd, has_acl;
    struct passwd_db db;
    struct acl acl;
};

struct fail_slot {
    char host[64];
    uint32_t count;
    uint32_t pending; /* checks from there on the hashing pool */
    uint64_t window_start, blocked_until;
};

/* One password check waiting for, or on, a hashing thread: its own copies
 * of what it needs, user name then password in `data` (wiped when freed). */
struct job {
    struct job *next;
    struct rules *r; /* the rules current when the check was asked for */
    auth_done_fn done;
    void *ctx;
    bool (*check)(const void *arg, const uint8_t *secret, size_t len); /* auth_request.check */
    const void *check_arg;
    char host[64];
    size_t ulen, plen;
    uint8_t data[];
};

/* The hashing threads and their queue. */
struct pool {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    struct job *head, *tail;
    uint32_t pending; /* queued or being answered */
    uint32_t max_pending, want_threads;
    pthread_t *threads;
    unsigned nthreads;
    bool started, stop;
    uint64_t busy_logged_ms, busy_unlogged; /* the rate-limited log of refusals */
};

struct auth {
    pthread_mutex_t lock; /* guards `cur` and the failure table */
    struct rules *cur;
    struct fail_slot fails[FAIL_SLOTS];
    atomic_uint_fast64_t counters[AUTH_NCAUSES];
    atomic_uint_fast64_t hashes_pool, hashes_caller;
    struct pool pool;
};

/* Set on the hashing threads: a hash counts as on_pool there. */
static __thread bool tl_hash_thread;

static void rules_put(struct rules *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    passwd_db_free(&r->db);
    acl_free(&r->acl);
    free(r);
}

static struct rules *rules_get(struct auth *a)
{
    pthread_mutex_lock(&a->lock);
    struct rules *r = a->cur;
    atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&a->lock);
    return r;
}

static struct rules *rules_new(const struct auth_settings *s)
{
    struct rules *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->s = *s;
    r->s.password_file = r->s.acl_file = NULL; /* not kept: paths are the caller's */
    passwd_db_init(&r->db);
    return r;
}

struct auth *auth_new(void)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->pool.lock, NULL);
    pthread_cond_init(&a->pool.wake, NULL);
    a->pool.max_pending = AUTH_DEFAULT_MAX_PENDING;
    a->pool.want_threads = AUTH_DEFAULT_HASH_THREADS;
    struct auth_settings open = {.allow_anonymous = true, .no_match_allow = true};
    if (!(a->cur = rules_new(&open))) {
        free(a);
        return NULL;
    }
    return a;
}

static void job_free(struct job *j)
{
    rules_put(j->r);
    OPENSSL_cleanse(j->data, j->ulen + j->plen);
    free(j);
}

/* Stops the hashing threads (each finishes the check in hand) and answers
 * the checks that never ran, so every caller hears back exactly once. */
static void pool_stop(struct auth *a)
{
    struct pool *p = &a->pool;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    for (struct job *j = p->head, *next; j; j = next) {
        next = j->next;
        j->done(j->ctx, AUTH_BUSY, false);
        job_free(j);
    }
    p->head = p->tail = NULL;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    pool_stop(a);
    pthread_mutex_destroy(&a->pool.lock);
    pthread_cond_destroy(&a->pool.wake);
    rules_put(a->cur);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* see auth.h */
int auth_configure(struct auth *a, const struct auth_settings *s, char *err, size_t errlen)
{
    struct rules *r = rules_new(s);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    err[0] = '\0';
    int rc = 0;
    if (s->password_file) {
        rc = passwd_load(&r->db, s->password_file, err, errlen);
        r->has_passwd = rc == 0;
    }
    if (rc == 0 && s->acl_file) {
        rc = acl_load(&r->acl, s->acl_file, err, errlen);
        r->has_acl = rc == 0;
    }
    if (rc < 0) {
        rules_put(r);
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    struct rules *old = a->cur;
    a->cur = r;
    pthread_mutex_unlock(&a->lock);
    rules_put(old);
    pthread_mutex_lock(&a->pool.lock);
    a->pool.max_pending = s->max_pending ? s->max_pending : AUTH_DEFAULT_MAX_PENDING;
    if (!a->pool.started)
        a->pool.want_threads = s->hash_threads ? s->hash_threads : AUTH_DEFAULT_HASH_THREADS;
    else if (s->hash_threads && s->hash_threads != a->pool.nthreads)
        log_notice("auth.hash_threads: %u hashing threads keep running until a restart",
                   a->pool.nthreads);
    pthread_mutex_unlock(&a->pool.lock);
    return 0;
}

/* The address without its port: "[::1]:5" -> "[::1]", "1.2.3.4:5" -> "1.2.3.4". */
static void host_of(const char *peer, char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer ? peer : "?");
    char *colon = strrchr(out, ':');
    if (colon && (out[0] != '[' || colon > strchr(out, ']')))
        *colon = '\0';
}

static struct fail_slot *slot_of(struct auth *a, const char *host)
{
    return &a->fails[hash_fnv1a_str(host) % FAIL_SLOTS];
}

static struct fail_slot *fail_slot(struct auth *a, const char *host)
{
    struct fail_slot *f = slot_of(a, host);
    if (strcmp(f->host, host) != 0) { /* a collision simply evicts */
        memset(f, 0, sizeof(*f));
        snprintf(f->host, sizeof(f->host), "%s", host);
    }
    return f;
}

static bool blocked(struct auth *a, const char *host, uint64_t now)
{
    pthread_mutex_lock(&a->lock);
    bool b = fail_slot(a, host)->blocked_until > now;
    pthread_mutex_unlock(&a->lock);
    return b;
}

/* Under a->lock: the slot's failures in the current window. */
static uint32_t window_count(struct fail_slot *f, uint64_t now)
{
    if (now - f->window_start > FAIL_WINDOW_MS) {
        f->window_start = now;
        f->count = 0;
    }
    return f->count;
}

static void note_failure(struct auth *a, const char *host, uint64_t now)
{
    pthread_mutex_lock(&a->lock);
    struct fail_slot *f = fail_slot(a, host);
    window_count(f, now);
    if (++f->count > FAIL_BURST)
        f->blocked_until = now + FAIL_BLOCK_MS;
    pthread_mutex_unlock(&a->lock);
}

/* A check from host may go to the hashing pool only while its failures in
 * the window plus its checks already there stay within what the limit
 * allows: each pending check may yet fail, and without this one address
 * could have max_pending guesses hashed before its first failure counted. */
static bool pending_take(struct auth *a, const char *host, uint64_t now)
{
    pthread_mutex_lock(&a->lock);
    struct fail_slot *f = fail_slot(a, host);
    bool ok = window_count(f, now) + f->pending <= FAIL_BURST;
    if (ok)
        f->pending++;
    pthread_mutex_unlock(&a->lock);
    return ok;
}

/* The check from host is decided (its failure, if any, noted). A slot taken
 * over by another address meanwhile is left alone. */
static void pending_put(struct auth *a, const char *host)
{
    pthread_mutex_lock(&a->lock);
    struct fail_slot *f = slot_of(a, host);
    if (strcmp(f->host, host) == 0 && f->pending)
        f->pending--;
    pthread_mutex_unlock(&a->lock);
}

/* Checks a user name and password against the password file: the slow
 * part, counted by the thread it ran on. */
static enum auth_cause check_password(struct auth *a, struct rules *r, const uint8_t *user,
                                      size_t ulen, const uint8_t *pw, size_t plen, bool *verified)
{
    bool hashed = false;
    enum passwd_verdict v = passwd_verify(&r->db, (const char *)user, ulen, pw, plen, &hashed);
    if (hashed)
        atomic_fetch_add(tl_hash_thread ? &a->hashes_pool : &a->hashes_caller, 1);
    *verified = v == PASSWD_OK;
    return v == PASSWD_OK ? AUTH_OK : v == PASSWD_NO_USER ? AUTH_UNKNOWN_USER : AUTH_BAD_PASSWORD;
}

/* A user name against the password file: without a password the answer is
 * at once (as cheap for a known user as for an unknown one); with one, the
 * password must be hashed (*hash). */
static enum auth_cause password_step(struct rules *r, const struct auth_request *q, bool *hash)
{
    if (q->password) {
        *hash = true;
        return AUTH_OK;
    }
    return passwd_find(&r->db, (const char *)q->username, q->username_len) ? AUTH_BAD_PASSWORD
                                                                           : AUTH_UNKNOWN_USER;
}

/* The verdict that needs no hash; *hash when the password must be checked
 * (the verdict is then that check's). */
static enum auth_cause decide(struct rules *r, const struct auth_request *q, bool *hash)
{
    *hash = false;
    if (q->check) { /* the caller's own secret: always the slow path */
        *hash = true;
        return AUTH_OK;
    }
    bool anonymous_ok =
        q->listener_anonymous >= 0 ? q->listener_anonymous == 1 : r->s.allow_anonymous;
    /* A verified certificate identity is a login of its own on mTLS; a user
     * name claimed beside it is checked if it came with a password, and
     * ignored (never trusted) if it did not. */
    if (q->cert_identity && !q->cert_and_password) {
        if (q->username && q->password && r->has_passwd)
            return password_step(r, q, hash);
        return AUTH_OK;
    }
    if (!q->username) {
        if (q->cert_identity)
            return AUTH_PASSWORD_REQUIRED;
        return anonymous_ok ? AUTH_OK : AUTH_NO_CREDENTIALS;
    }
    /* Without a password file a user name is only a label (as in
     * Mosquitto): it counts as anonymous. */
    if (!r->has_passwd)
        return anonymous_ok && !q->cert_and_password ? AUTH_OK : AUTH_NO_CREDENTIALS;
    return password_step(r, q, hash);
}

/* A verdict reached: failures count against the address. */
static void finish(struct auth *a, const char *host, enum auth_cause c)
{
    if (c == AUTH_OK)
        return;
    if (c != AUTH_RATE_LIMITED && c != AUTH_BUSY)
        note_failure(a, host, clock_mono_ms());
    atomic_fetch_add(&a->counters[c], 1);
}

/* The slow part of a check: the caller's own, or the password file. */
static enum auth_cause slow_check(struct auth *a, struct rules *r,
                                  bool (*check)(const void *, const uint8_t *, size_t),
                                  const void *arg, const uint8_t *user, size_t ulen,
                                  const uint8_t *pw, size_t plen, bool *verified)
{
    if (!check)
        return check_password(a, r, user, ulen, pw, plen, verified);
    atomic_fetch_add(tl_hash_thread ? &a->hashes_pool : &a->hashes_caller, 1);
    *verified = check(arg, pw, plen);
    return *verified ? AUTH_OK : AUTH_BAD_PASSWORD;
}

/* The part of a check that needs no hash. Returns the rules to hash with
 * (a reference the caller puts) or NULL when *c is the verdict. */
static struct rules *begin(struct auth *a, struct auth_request *q, const char *host,
                           enum auth_cause *c)
{
    q->user_verified = false;
    if (blocked(a, host, clock_mono_ms())) {
        *c = AUTH_RATE_LIMITED;
        return NULL;
    }
    bool hash;
    struct rules *r = rules_get(a);
    *c = decide(r, q, &hash);
    if (hash)
        return r;
    rules_put(r);
    return NULL;
}

/* see auth.h */
bool auth_anonymous_ok(struct auth *a, int listener_anonymous)
{
    if (listener_anonymous >= 0)
        return listener_anonymous == 1;
    struct rules *r = rules_get(a);
    bool ok = r->s.allow_anonymous;
    rules_put(r);
    return ok;
}

/* see auth.h */
enum auth_cause auth_connect(struct auth *a, struct auth_request *q)
{
    char host[64];
    host_of(q->peer, host, sizeof(host));
    enum auth_cause c;
    struct rules *r = begin(a, q, host, &c);
    if (r) {
        c = slow_check(a, r, q->check, q->check_arg, q->username, q->username_len, q->password,
                       q->password_len, &q->user_verified);
        rules_put(r);
    }
    finish(a, host, c);
    return c;
}

/* ---- the hashing pool ---------------------------------------------------- */

static void *hash_thread(void *arg)
{
    struct auth *a = arg;
    struct pool *p = &a->pool;
    tl_hash_thread = true;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop)
            break;
        struct job *j = p->head;
        if (!(p->head = j->next))
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        bool verified = false;
        enum auth_cause c = slow_check(a, j->r, j->check, j->check_arg, j->data, j->ulen,
                                       j->data + j->ulen, j->plen, &verified);
        finish(a, j->host, c);
        pending_put(a, j->host);
        j->done(j->ctx, c, verified);
        job_free(j);
        pthread_mutex_lock(&p->lock);
        p->pending--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Under the pool lock: the threads, at the first check that needs them. */
static bool pool_start(struct auth *a)
{
    struct pool *p = &a->pool;
    if (p->started)
        return p->nthreads > 0;
    p->started = true;
    p->threads = calloc(p->want_threads, sizeof(*p->threads));
    while (p->threads && p->nthreads < p->want_threads &&
           pthread_create(&p->threads[p->nthreads], NULL, hash_thread, a) == 0)
        p->nthreads++;
    /* Without a thread every check is refused (AUTH_BUSY), never hashed
     * on the caller. */
    if (p->nthreads < p->want_threads)
        log_error("auth: started %u of %u hashing threads", p->nthreads, p->want_threads);
    return p->nthreads > 0;
}

/* Under the pool lock: a refusal, logged at most once a second. */
static void note_busy(struct pool *p)
{
    uint64_t now = clock_mono_ms();
    p->busy_unlogged++;
    if (p->busy_logged_ms && now - p->busy_logged_ms < 1000)
        return;
    log_warn("auth: %" PRIu64 " CONNECT%s refused: %u password checks already pending "
             "(auth.max_pending)",
             p->busy_unlogged, p->busy_unlogged == 1 ? "" : "s", p->max_pending);
    p->busy_logged_ms = now;
    p->busy_unlogged = 0;
}

/* Queues j; false when the queue is full or there is no thread. */
static bool enqueue(struct auth *a, struct job *j)
{
    struct pool *p = &a->pool;
    pthread_mutex_lock(&p->lock);
    bool ok = !p->stop && p->pending < p->max_pending && pool_start(a);
    if (ok) {
        p->pending++;
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        pthread_cond_signal(&p->wake);
    } else {
        note_busy(p);
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

static struct job *job_new(struct rules *r, const struct auth_request *q, const char *host,
                           auth_done_fn done, void *ctx)
{
    struct job *j = malloc(sizeof(*j) + q->username_len + q->password_len);
    if (!j)
        return NULL;
    *j = (struct job){
        .r = r, .done = done, .ctx = ctx, .check = q->check, .check_arg = q->check_arg};
    snprintf(j->host, sizeof(j->host), "%s", host);
    j->ulen = q->username_len;
    j->plen = q->password_len;
    if (j->ulen)
        memcpy(j->data, q->username, j->ulen);
    if (j->plen)
        memcpy(j->data + j->ulen, q->password, j->plen);
    return j;
}

/* see auth.h */
int auth_connect_async(struct auth *a, struct auth_request *q, auth_done_fn done, void *ctx,
                       enum auth_cause *now)
{
    char host[64];
    host_of(q->peer, host, sizeof(host));
    enum auth_cause c;
    struct rules *r = begin(a, q, host, &c);
    if (r && !pending_take(a, host, clock_mono_ms())) {
        rules_put(r);
        r = NULL;
        c = AUTH_RATE_LIMITED;
    }
    if (!r) {
        finish(a, host, c);
        *now = c;
        return 1;
    }
    struct job *j = job_new(r, q, host, done, ctx);
    if (!j)
        rules_put(r);
    if (!j || !enqueue(a, j)) {
        if (j)
            job_free(j);
        pending_put(a, host);
        finish(a, host, AUTH_BUSY);
        return -1;
    }
    return 0;
}

/* see auth.h */
struct auth_hash_counts auth_hash_counts(struct auth *a)
{
    struct auth_hash_counts n = {0};
    if (!a)
        return n;
    n.on_pool = atomic_load(&a->hashes_pool);
    n.on_caller = atomic_load(&a->hashes_caller);
    n.total = n.on_pool + n.on_caller;
    return n;
}

/* see auth.h */
uint8_t auth_reason(enum auth_cause c)
{
    switch (c) {
    case AUTH_OK:
        return 0;
    case AUTH_UNKNOWN_USER:
    case AUTH_BAD_PASSWORD:
    case AUTH_PASSWORD_REQUIRED:
        return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
    case AUTH_RATE_LIMITED:
    case AUTH_BUSY:
        return MQTT_RC_CONNECTION_RATE_EXCEEDED;
    case AUTH_NO_CREDENTIALS:
    default:
        return MQTT_RC_NOT_AUTHORIZED;
    }
}

/* see auth.h */
uint8_t auth_reason311(enum auth_cause c)
{
    switch (c) {
    case AUTH_OK:
        return MQTT_RC311_ACCEPTED;
    case AUTH_UNKNOWN_USER:
    case AUTH_BAD_PASSWORD:
    case AUTH_PASSWORD_REQUIRED:
        return MQTT_RC311_BAD_USERNAME_OR_PASSWORD;
    case AUTH_BUSY:
        return MQTT_RC311_SERVER_UNAVAILABLE;
    case AUTH_NO_CREDENTIALS:
    case AUTH_RATE_LIMITED:
    default:
        return MQTT_RC311_NOT_AUTHORIZED;
    }
}

const char *auth_cause_text(enum auth_cause c)
{
    static const char *const text[AUTH_NCAUSES] = {
        "authenticated",
        "no credentials and anonymous access is off",
        "unknown user",
        "wrong password",
        "a password is required in addition to the certificate",
        "too many failed attempts from this address",
        "too many password checks pending (auth.max_pending)",
    };
    return (unsigned)c < AUTH_NCAUSES ? text[c] : "unknown";
}

/* see auth.h */
bool auth_allowed(struct auth *a, const struct acl_identity *id, enum acl_action action,
                  const char *topic, size_t len)
{
    struct rules *r = rules_get(a);
    int v = r->has_acl ? acl_check(&r->acl, id, action, topic, len) : -1;
    bool ok = v < 0 ? r->s.no_match_allow : v == 1;
    rules_put(r);
    return ok;
}

bool auth_has_rules(struct auth *a)
{
    struct rules *r = rules_get(a);
    bool has = r->has_acl || !r->s.no_match_allow;
    rules_put(r);
    return has;
}

bool auth_deny_disconnects(struct auth *a)
{
    struct rules *r = rules_get(a);
    bool d = r->s.deny_disconnect;
    rules_put(r);
    return d;
}

void auth_counters(struct auth *a, uint64_t out[AUTH_NCAUSES])
{
    for (int i = 0; i < AUTH_NCAUSES; i++)
        out[i] = atomic_load(&a->counters[i]);
}
