/* see store.h
 *
 * Threads: the callers append operations to `pending` under `lock`; the store
 * thread swaps `pending` with its own empty `work` batch (so appending never
 * waits for the disk), applies `work` in one transaction and reports the
 * commit. An operation is a fixed-size record whose strings and blobs live in
 * the batch's arena, so an append is two amortized O(1) copies. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/vec.h"

/* The schema this ward writes; docs/persistence.md describes every version. */
#define SCHEMA_VERSION 1
/* PRAGMA application_id: "ward" in ASCII, so a foreign database is told apart. */
#define APP_ID 0x77617264
/* Appends beyond this many arena bytes waiting for the disk make store_full()
 * true: the disk is slower than the publishers, and memory is bounded too. */
#define PENDING_MAX_BYTES (UINT64_C(64) << 20)
/* WAL pages (4 KiB) after which a checkpoint copies them into the database.
 * Checkpoints run on their own thread and connection, so a commit never waits
 * for one (measured: inline, a 32 MiB checkpoint held a commit for 60 to 170
 * ms); before the start and at close they run inline. */
#define WAL_CHECKPOINT_PAGES 4096
/* The most frames the store thread copies itself to let the WAL restart. */
#define WAL_CATCH_UP_PAGES (WAL_CHECKPOINT_PAGES / 8)
/* A WAL this long is checkpointed inline whatever it costs: the background
 * checkpoints do not keep up, and the file must stay bounded. */
#define WAL_MAX_PAGES (WAL_CHECKPOINT_PAGES * 4)
/* The WAL is truncated back to this after a checkpoint that emptied it. */
#define WAL_SIZE_LIMIT (64LL << 20)
/* A batch's memory above this is given back after its commit. */
#define BATCH_KEEP_BYTES (4u << 20)
#define NULL_LEN         UINT32_MAX

enum op_kind {
    OP_MSG_PUT,
    OP_MSG_DEL,
    OP_SESSION_PUT,
    OP_SESSION_DEL,
    OP_SUB_PUT,
    OP_SUB_DEL,
    OP_DELIVERY_PUT,
    OP_DELIVERY_DEL,
    OP_REL_PUT,
    OP_REL_DEL,
    OP_RETAINED_PUT,
    OP_RETAINED_DEL,
    OP_BRIDGE_PUT,
    OP_BRIDGE_DEL,
    OP__COUNT
};

#define OP_NSTR 5
#define OP_NSQL 4

/* One operation. Small integers in b[], others in u32[]/u64[], strings and
 * blobs as (offset, length) in the batch arena; NULL_LEN: SQL NULL. Which
 * slot holds which column is said by the op's spec (params, below). */
struct op {
    uint8_t kind;
    bool fresh; /* a put of a row that did not exist before (the caller's word) */
    uint8_t b[3];
    uint32_t u32[2];
    uint64_t u64[2];
    uint32_t off[OP_NSTR], len[OP_NSTR];
};

struct batch {
    struct op *ops;
    size_t nops, capops;
    uint8_t *arena;
    size_t alen, acap;
};

/* The statements of an operation kind, all bound with the same parameters.
 * params is a list of slot names, one per `?`: T<i> text s[i], B<i> blob
 * s[i], Q<i> u64[i], W<i> u32[i], Y<i> b[i]. */
struct op_spec {
    const char *sql[OP_NSQL];
    const char *params;
};

static const struct op_spec specs[OP__COUNT] = {
    [OP_MSG_PUT] = {{"INSERT OR REPLACE INTO msgs(id,topic,payload,qos,retain,expire_at,origin,"
                     "props) VALUES(?,?,?,?,?,?,?,?)"},
                    "Q0T0B1Y0Y1Q1T2B3"},
    [OP_MSG_DEL] = {{"DELETE FROM msgs WHERE id=?"}, "Q0"},
    [OP_SESSION_PUT] = {{"INSERT OR REPLACE INTO sessions(id,owner,username,cert_cn,cert_ou,"
                         "expiry_s,expire_at,protocol,bridge,will_msg_id,will_delay_s) "
                         "VALUES(?,?,?,?,?,?,?,?,?,?,?)"},
                        "T0T1T2T3T4W0Q0Y0Y1Q1W1"},
    [OP_SESSION_DEL] = {{"DELETE FROM sessions WHERE id=?", "DELETE FROM subs WHERE session_id=?",
                         "DELETE FROM deliveries WHERE session_id=?",
                         "DELETE FROM rels WHERE session_id=?"},
                        "T0"},
    [OP_SUB_PUT] = {{"INSERT OR REPLACE INTO subs(session_id,filter,options,sub_id) "
                     "VALUES(?,?,?,?)"},
                    "T0T1Y0W0"},
    [OP_SUB_DEL] = {{"DELETE FROM subs WHERE session_id=? AND filter=?"}, "T0T1"},
    [OP_DELIVERY_PUT] = {{"INSERT OR REPLACE INTO deliveries(session_id,msg_id,seq,qos,retain,"
                          "pid,state,sub_ids) VALUES(?,?,?,?,?,?,?,?)"},
                         "T0Q0Q1Y0Y1W0Y2B1"},
    [OP_DELIVERY_DEL] = {{"DELETE FROM deliveries WHERE session_id=? AND msg_id=?"}, "T0Q0"},
    [OP_REL_PUT] = {{"INSERT OR REPLACE INTO rels(session_id,pid) VALUES(?,?)"}, "T0W0"},
    [OP_REL_DEL] = {{"DELETE FROM rels WHERE session_id=? AND pid=?"}, "T0W0"},
    [OP_RETAINED_PUT] = {{"INSERT OR REPLACE INTO retained(topic,msg_id) VALUES(?,?)"}, "T0Q0"},
    [OP_RETAINED_DEL] = {{"DELETE FROM retained WHERE topic=?"}, "T0"},
    [OP_BRIDGE_PUT] = {{"INSERT OR REPLACE INTO bridge_queue(bridge,seq,msg_id) VALUES(?,?,?)"},
                       "T0Q0Q1"},
    [OP_BRIDGE_DEL] = {{"DELETE FROM bridge_queue WHERE bridge=? AND seq=?"}, "T0Q0"},
};

/* Version 0 is version 1 without the bridge queue (and without user_version
 * set); migrations[v] takes a store from version v to v + 1. */
static const char *const migrations[SCHEMA_VERSION] = {
    "CREATE TABLE bridge_queue(bridge TEXT NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT "
    "NULL, PRIMARY KEY(bridge, seq)) WITHOUT ROWID;",
};

/* The whole schema of version 1, for a new file. */
static const char schema_v1[] =
    "CREATE TABLE msgs(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB, qos INTEGER, "
    "retain INTEGER, expire_at INTEGER, origin TEXT, props BLOB);"
    "CREATE TABLE sessions(id TEXT PRIMARY KEY, owner TEXT, username TEXT, cert_cn TEXT, "
    "cert_ou TEXT, expiry_s INTEGER, expire_at INTEGER, protocol INTEGER, bridge INTEGER, "
    "will_msg_id INTEGER, will_delay_s INTEGER) WITHOUT ROWID;"
    "CREATE TABLE subs(session_id TEXT NOT NULL, filter TEXT NOT NULL, options INTEGER, sub_id "
    "INTEGER, PRIMARY KEY(session_id, filter)) WITHOUT ROWID;"
    "CREATE TABLE deliveries(session_id TEXT NOT NULL, msg_id INTEGER NOT NULL, seq INTEGER, qos "
    "INTEGER, retain INTEGER, pid INTEGER, state INTEGER, sub_ids BLOB, "
    "PRIMARY KEY(session_id, msg_id)) WITHOUT ROWID;"
    "CREATE TABLE rels(session_id TEXT NOT NULL, pid INTEGER NOT NULL, "
    "PRIMARY KEY(session_id, pid)) WITHOUT ROWID;"
    "CREATE TABLE retained(topic TEXT PRIMARY KEY, msg_id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE bridge_queue(bridge TEXT NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT "
    "NULL, PRIMARY KEY(bridge, seq)) WITHOUT ROWID;"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;";

struct store {
    char *dir, *path;
    enum store_mode mode;
    enum store_on_damage on_damage;
    uint64_t max_size;
    int lock_fd; /* flock on DIR/ward.db.lock: one ward per directory */
    sqlite3 *db;
    sqlite3_stmt *stmts[OP__COUNT][OP_NSQL];
    sqlite3_stmt *page_count, *freelist_count;
    uint64_t page_size;

    pthread_t thread;
    bool started;
    /* The checkpointer: its own thread and connection. */
    sqlite3 *ckdb;
    pthread_t ckthread;
    bool ckstarted;
    pthread_mutex_t cklock;
    pthread_cond_t ckwake;
    /* Under cklock: */
    bool ckwant, ckstop, ckbusy;
    int ckdone;      /* WAL frames the last round had copied, in WAL generation ckgen */
    uint64_t ckgen;  /* the generation of ckdone */
    uint64_t walgen; /* counts the restarts of the WAL (written by the store thread) */
    int last_pages;  /* the store thread's own: the WAL's length after the last commit */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* Under lock: */
    struct batch pending;
    uint64_t next_ticket; /* the commit the pending batch will be */
    uint64_t committed;   /* the last commit the thread finished */
    bool force;           /* a barrier wants a commit even with nothing pending */
    bool stop;
    bool lost;         /* an append failed (no memory): the next commit reports !ok */
    bool full_pending; /* __atomic */
    store_commit_fn hook;
    void *hook_ctx;
    struct store_stats stats;

    /* The store thread's own: */
    struct batch work;
    /* The store thread's: which of work's ops a later delete makes moot. */
    bool *skip;
    size_t capskip;
    uint32_t *slots;
    size_t capslots;
    uint64_t cancelled; /* puts not written for that (store thread; copied to stats) */
    int logged_err;     /* the cause of the last failure logged, 0: none */

    uint64_t next_id; /* __atomic */
    bool full_disk;   /* __atomic */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void batch_free(struct batch *b)
{
    free(b->ops);
    free(b->arena);
}

/* ---- appending (any thread) ---- */

/* The bytes an append needs in the arena for a string (with its NUL) or blob. */
static size_t str_need(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static void put_bytes(struct batch *b, struct op *o, int i, const void *p, size_t len)
{
    if (!p) {
        o->off[i] = 0;
        o->len[i] = NULL_LEN;
        return;
    }
    o->off[i] = (uint32_t)b->alen;
    o->len[i] = (uint32_t)len;
    if (len)
        memcpy(b->arena + b->alen, p, len);
    b->alen += len;
}

static void put_str(struct batch *b, struct op *o, int i, const char *s)
{
    if (!s) {
        put_bytes(b, o, i, NULL, 0);
        return;
    }
    size_t n = strlen(s);
    put_bytes(b, o, i, s, n + 1);
    o->len[i] = (uint32_t)n; /* the NUL is there, not counted */
}

/* Locks, and makes room for one op and `bytes` of arena. On failure the lock
 * is released, the loss is recorded for the next commit and NULL returned. */
static struct op *append_begin(struct store *st, enum op_kind kind, size_t bytes)
{
    pthread_mutex_lock(&st->lock);
    struct batch *b = &st->pending;
    /* Offsets are 32-bit: a batch never holds more than 4 GiB; SQLite takes
     * lengths as int. MQTT's largest packet is 256 MiB. */
    if (bytes > INT32_MAX || bytes >= NULL_LEN - b->alen ||
        !ward_ok(VEC_RESERVE(b->ops, b->capops, b->nops + 1)) ||
        !ward_ok(VEC_RESERVE(b->arena, b->acap, b->alen + bytes))) {
        bool first = !st->lost;
        st->lost = true;
        st->stats.failures++;
        pthread_mutex_unlock(&st->lock);
        if (first)
            log_error("store: an operation was dropped (out of memory); the next commit reports "
                      "a failure");
        return NULL;
    }
    struct op *o = &b->ops[b->nops];
    memset(o, 0, sizeof(*o));
    o->kind = (uint8_t)kind;
    return o;
}

static void append_end(struct store *st)
{
    struct batch *b = &st->pending;
    b->nops++;
    st->stats.pending_ops = b->nops;
    if (b->alen > PENDING_MAX_BYTES)
        __atomic_store_n(&st->full_pending, true, __ATOMIC_RELAXED);
    if (b->nops == 1)
        pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->lock);
}

/* see store.h */
void store_msg_put(struct store *st, const struct store_msg *m)
{
    size_t need = str_need(m->topic) + str_need(m->origin) + m->payload_len + m->props_len;
    struct op *o = append_begin(st, OP_MSG_PUT, need);
    if (!o)
        return;
    struct batch *b = &st->pending;
    o->u64[0] = m->id;
    o->u64[1] = m->expire_at;
    o->b[0] = m->qos;
    o->b[1] = m->retain;
    o->fresh = m->fresh;
    put_str(b, o, 0, m->topic ? m->topic : "");
    put_bytes(b, o, 1, m->payload ? m->payload : (const uint8_t *)"", m->payload_len);
    put_str(b, o, 2, m->origin);
    put_bytes(b, o, 3, m->props, m->props_len);
    append_end(st);
}

/* see store.h */
void store_msg_del(struct store *st, uint64_t msg_id)
{
    struct op *o = append_begin(st, OP_MSG_DEL, 0);
    if (!o)
        return;
    o->u64[0] = msg_id;
    append_end(st);
}

/* see store.h */
void store_session_put(struct store *st, const struct store_session *s)
{
    size_t need = str_need(s->id) + str_need(s->owner) + str_need(s->username) +
                  str_need(s->cert_cn) + str_need(s->cert_ou);
    struct op *o = append_begin(st, OP_SESSION_PUT, need);
    if (!o)
        return;
    struct batch *b = &st->pending;
    put_str(b, o, 0, s->id ? s->id : "");
    put_str(b, o, 1, s->owner);
    put_str(b, o, 2, s->username);
    put_str(b, o, 3, s->cert_cn);
    put_str(b, o, 4, s->cert_ou);
    o->u32[0] = s->expiry_s;
    o->u32[1] = s->will_delay_s;
    o->u64[0] = s->expire_at;
    o->u64[1] = s->will_msg_id;
    o->b[0] = s->protocol;
    o->b[1] = s->bridge;
    append_end(st);
}

/* One or two strings and up to two numbers: most operations are keyed so. */
static void append_keyed(struct store *st, enum op_kind kind, const char *s0, const char *s1,
                         uint64_t q0, uint64_t q1)
{
    struct op *o = append_begin(st, kind, str_need(s0) + str_need(s1));
    if (!o)
        return;
    put_str(&st->pending, o, 0, s0 ? s0 : "");
    put_str(&st->pending, o, 1, s1);
    o->u64[0] = q0;
    o->u64[1] = q1;
    o->u32[0] = (uint32_t)q0;
    append_end(st);
}

/* see store.h */
void store_session_del(struct store *st, const char *id)
{
    append_keyed(st, OP_SESSION_DEL, id, NULL, 0, 0);
}

/* see store.h */
void store_sub_put(struct store *st, const char *session_id, const struct store_sub *sub)
{
    struct op *o = append_begin(st, OP_SUB_PUT, str_need(session_id) + str_need(sub->filter));
    if (!o)
        return;
    put_str(&st->pending, o, 0, session_id ? session_id : "");
    put_str(&st->pending, o, 1, sub->filter ? sub->filter : "");
    o->b[0] = sub->options;
    o->u32[0] = sub->sub_id;
    append_end(st);
}

/* see store.h */
void store_sub_del(struct store *st, const char *session_id, const char *filter)
{
    append_keyed(st, OP_SUB_DEL, session_id, filter ? filter : "", 0, 0);
}

/* see store.h */
void store_delivery_put(struct store *st, const char *session_id, const struct store_delivery *d)
{
    size_t nsub = d->sub_ids ? d->nsub : 0;
    struct op *o = append_begin(st, OP_DELIVERY_PUT, str_need(session_id) + 4 * nsub);
    if (!o)
        return;
    struct batch *b = &st->pending;
    put_str(b, o, 0, session_id ? session_id : "");
    /* Little-endian, so the file reads the same on any machine. */
    uint8_t ids[4 * 255];
    for (size_t i = 0; i < nsub; i++)
        for (int k = 0; k < 4; k++)
            ids[4 * i + (size_t)k] = (uint8_t)(d->sub_ids[i] >> (8 * k));
    put_bytes(b, o, 1, nsub ? ids : NULL, 4 * nsub);
    o->u64[0] = d->msg_id;
    o->u64[1] = d->seq;
    o->b[0] = d->qos;
    o->b[1] = d->retain;
    o->b[2] = d->state;
    o->u32[0] = d->pid;
    o->fresh = d->fresh;
    append_end(st);
}

/* see store.h */
void store_delivery_del(struct store *st, const char *session_id, uint64_t msg_id)
{
    append_keyed(st, OP_DELIVERY_DEL, session_id, NULL, msg_id, 0);
}

/* see store.h */
void store_rel_put(struct store *st, const char *session_id, uint16_t pid)
{
    append_keyed(st, OP_REL_PUT, session_id, NULL, pid, 0);
}

/* see store.h */
void store_rel_del(struct store *st, const char *session_id, uint16_t pid)
{
    append_keyed(st, OP_REL_DEL, session_id, NULL, pid, 0);
}

/* see store.h */
void store_retained_put(struct store *st, const char *topic, uint64_t msg_id)
{
    append_keyed(st, OP_RETAINED_PUT, topic, NULL, msg_id, 0);
}

/* see store.h */
void store_retained_del(struct store *st, const char *topic)
{
    append_keyed(st, OP_RETAINED_DEL, topic, NULL, 0, 0);
}

/* see store.h */
void store_bridge_put(struct store *st, const char *bridge, uint64_t seq, uint64_t msg_id)
{
    append_keyed(st, OP_BRIDGE_PUT, bridge, NULL, seq, msg_id);
}

/* see store.h */
void store_bridge_del(struct store *st, const char *bridge, uint64_t seq)
{
    append_keyed(st, OP_BRIDGE_DEL, bridge, NULL, seq, 0);
}

/* see store.h */
uint64_t store_next_id(struct store *st)
{
    return __atomic_fetch_add(&st->next_id, 1, __ATOMIC_RELAXED);
}

/* see store.h */
void store_set_commit_hook(struct store *st, store_commit_fn fn, void *ctx)
{
    pthread_mutex_lock(&st->lock);
    st->hook = fn;
    st->hook_ctx = ctx;
    pthread_mutex_unlock(&st->lock);
}

/* see store.h */
uint64_t store_barrier(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    uint64_t ticket = st->next_ticket;
    if (st->pending.nops == 0 && !st->force) {
        if (st->committed + 1 < st->next_ticket) {
            /* Everything is in the batch being committed: its hook is coming. */
            ticket = st->next_ticket - 1;
        } else {
            /* All committed already: an empty commit makes the hook call the
             * caller waits for. */
            st->force = true;
            pthread_cond_signal(&st->wake);
        }
    }
    pthread_mutex_unlock(&st->lock);
    return ticket;
}

/* see store.h */
bool store_full(const struct store *st)
{
    return __atomic_load_n(&st->full_disk, __ATOMIC_RELAXED) ||
           __atomic_load_n(&st->full_pending, __ATOMIC_RELAXED);
}

/* see store.h */
void store_get_stats(const struct store *st, struct store_stats *out)
{
    struct store *w = (struct store *)st; /* the mutex changes, the store does not */
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}

/* ---- applying (the store thread, or store_close before a start) ---- */

static int bind_op(sqlite3_stmt *s, const struct op *o, const uint8_t *arena, const char *params)
{
    int rc = SQLITE_OK;
    for (int i = 1; params[0] && rc == SQLITE_OK; params += 2, i++) {
        int k = params[1] - '0';
        switch (params[0]) {
        case 'T':
        case 'B':
            if (o->len[k] == NULL_LEN)
                rc = sqlite3_bind_null(s, i);
            else if (params[0] == 'T')
                rc = sqlite3_bind_text(s, i, (const char *)arena + o->off[k], (int)o->len[k],
                                       SQLITE_STATIC);
            else
                rc = sqlite3_bind_blob(s, i, arena + o->off[k], (int)o->len[k], SQLITE_STATIC);
            break;
        case 'Q':
            rc = sqlite3_bind_int64(s, i, (sqlite3_int64)o->u64[k]);
            break;
        case 'W':
            rc = sqlite3_bind_int64(s, i, o->u32[k]);
            break;
        case 'Y':
            rc = sqlite3_bind_int(s, i, o->b[k]);
            break;
        default:
            rc = SQLITE_MISUSE;
            break;
        }
    }
    return rc;
}

static int apply_op(struct store *st, const struct op *o, const uint8_t *arena)
{
    const struct op_spec *spec = &specs[o->kind];
    for (int j = 0; j < OP_NSQL && spec->sql[j]; j++) {
        sqlite3_stmt *s = st->stmts[o->kind][j];
        int rc = bind_op(s, o, arena, spec->params);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE && rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* A failure is logged once per cause, and its end once. */
static void note_result(struct store *st, int rc, const char *what)
{
    if (rc == SQLITE_OK) {
        if (st->logged_err)
            log_notice("store: commits to %s succeed again", st->path);
        st->logged_err = 0;
        return;
    }
    if (rc == st->logged_err)
        return;
    st->logged_err = rc;
    const char *msg = sqlite3_errmsg(st->db), *str = sqlite3_errstr(rc);
    log_error("store: %s failed on %s: %s%s%s%s; the operations of this commit are lost and "
              "reported so",
              what, st->path, str, strcmp(msg, str) ? " (" : "", strcmp(msg, str) ? msg : "",
              strcmp(msg, str) ? ")" : "");
}

/* The row a message or delivery op is about: its kind's family, message
 * id and (deliveries) session. Other ops have none (false). */
static bool op_key(const struct op *o, const uint8_t *arena, uint8_t *family, uint64_t *id,
                   const uint8_t **sess, uint32_t *slen)
{
    switch (o->kind) {
    case OP_MSG_PUT:
    case OP_MSG_DEL:
        *family = 0, *id = o->u64[0], *sess = NULL, *slen = 0;
        return true;
    case OP_DELIVERY_PUT:
    case OP_DELIVERY_DEL:
        *family = 1, *id = o->u64[0], *sess = arena + o->off[0], *slen = o->len[0];
        return true;
    default:
        return false;
    }
}

static uint64_t key_hash(uint8_t family, uint64_t id, const uint8_t *sess, uint32_t slen)
{
    uint64_t h = hash_fnv1a_seeded(&id, sizeof(id), family + 1u);
    return slen ? hash_fnv1a_seeded(sess, slen, h) : h;
}

/* Group commit's other gain: a message or delivery put and deleted within
 * one batch (a subscriber acknowledged it before the commit) need not be
 * written at all. Walking back from the end, a put whose row a later op of
 * the batch deletes is marked skip; the delete itself stays, since the row
 * may be older than the batch. Returns false if there was no memory (then
 * nothing is skipped). */
static bool mark_moot(struct store *st, const struct batch *b)
{
    size_t nslots = 16;
    while (nslots < 2 * b->nops)
        nslots *= 2;
    if (!ward_ok(VEC_RESERVE_EXACT(st->skip, st->capskip, b->nops)) ||
        !ward_ok(VEC_RESERVE_EXACT(st->slots, st->capslots, nslots)))
        return false;
    memset(st->skip, 0, b->nops * sizeof(*st->skip));
    memset(st->slots, 0xff, nslots * sizeof(*st->slots)); /* UINT32_MAX: empty */
    for (size_t i = b->nops; i-- > 0;) {
        const struct op *o = &b->ops[i];
        uint8_t fam = 0;
        uint64_t id = 0;
        const uint8_t *sess = NULL;
        uint32_t slen = 0;
        if (!op_key(o, b->arena, &fam, &id, &sess, &slen))
            continue;
        bool del = o->kind == OP_MSG_DEL || o->kind == OP_DELIVERY_DEL;
        size_t at = key_hash(fam, id, sess, slen) & (nslots - 1);
        for (;; at = (at + 1) & (nslots - 1)) {
            uint32_t j = st->slots[at];
            if (j == UINT32_MAX) {
                if (del) /* the first delete seen from the end: later ones need it */
                    st->slots[at] = (uint32_t)i;
                break;
            }
            const struct op *d = &b->ops[j];
            uint8_t f2 = 0;
            uint64_t id2 = 0;
            const uint8_t *s2 = NULL;
            uint32_t l2 = 0;
            op_key(d, b->arena, &f2, &id2, &s2, &l2);
            if (f2 == fam && id2 == id && l2 == slen && (!slen || memcmp(s2, sess, slen) == 0)) {
                if (!del)
                    st->skip[i] = true;
                break;
            }
        }
    }
    return true;
}

/* Then the deletes: a row whose first op in the batch is a fresh put did
 * not exist before it, and every put of it ahead of a delete is skipped,
 * so none of its deletes has anything to delete. Runs after mark_moot, on
 * the table it sized. */
static void mark_fresh_deletes(struct store *st, const struct batch *b)
{
    size_t nslots = 16;
    while (nslots < 2 * b->nops)
        nslots *= 2;
    memset(st->slots, 0xff, nslots * sizeof(*st->slots));
    for (size_t i = 0; i < b->nops; i++) {
        const struct op *o = &b->ops[i];
        uint8_t fam = 0;
        uint64_t id = 0;
        const uint8_t *sess = NULL;
        uint32_t slen = 0;
        if (!op_key(o, b->arena, &fam, &id, &sess, &slen))
            continue;
        size_t at = key_hash(fam, id, sess, slen) & (nslots - 1);
        for (;; at = (at + 1) & (nslots - 1)) {
            uint32_t j = st->slots[at];
            if (j == UINT32_MAX) {
                st->slots[at] = (uint32_t)i; /* the key's first op in the batch */
                break;
            }
            const struct op *first = &b->ops[j];
            uint8_t f2 = 0;
            uint64_t id2 = 0;
            const uint8_t *s2 = NULL;
            uint32_t l2 = 0;
            op_key(first, b->arena, &f2, &id2, &s2, &l2);
            if (f2 == fam && id2 == id && l2 == slen && (!slen || memcmp(s2, sess, slen) == 0)) {
                bool del = o->kind == OP_MSG_DEL || o->kind == OP_DELIVERY_DEL;
                bool fresh_put =
                    (first->kind == OP_MSG_PUT || first->kind == OP_DELIVERY_PUT) && first->fresh;
                if (del && fresh_put)
                    st->skip[i] = true;
                break;
            }
        }
    }
}

static int apply_batch(struct store *st, const struct batch *b)
{
    bool moot = b->nops > 1 && mark_moot(st, b);
    if (moot)
        mark_fresh_deletes(st, b);
    int rc = sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL);
    const char *what = "BEGIN";
    for (size_t i = 0; i < b->nops && rc == SQLITE_OK; i++) {
        if (moot && st->skip[i]) {
            st->cancelled++;
            continue;
        }
        rc = apply_op(st, &b->ops[i], b->arena);
        what = "a write";
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        what = "COMMIT";
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(st->db)) {
        int rb = sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (rb != SQLITE_OK)
            log_error("store: ROLLBACK failed on %s: %s", st->path, sqlite3_errstr(rb));
    }
    note_result(st, rc, what);
    return rc;
}

static int64_t pragma_int(sqlite3_stmt *s)
{
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return v;
}

/* Bytes in use: the database's pages minus its free ones, plus the WAL. A
 * file that grew once and emptied again does not stay "full". */
static uint64_t used_bytes(struct store *st)
{
    int64_t pages = pragma_int(st->page_count), freel = pragma_int(st->freelist_count);
    uint64_t used = pages > freel && freel >= 0 ? (uint64_t)(pages - freel) * st->page_size : 0;
    char wal[4096];
    struct stat sb;
    if (snprintf(wal, sizeof(wal), "%s-wal", st->path) < (int)sizeof(wal) && stat(wal, &sb) == 0)
        used += (uint64_t)sb.st_size;
    return used;
}

/* Applies a batch and reports it; `lost`: an append of it was dropped. */
static void commit_batch(struct store *st, struct batch *b, uint64_t ticket, bool lost)
{
    uint64_t t0 = now_us();
    int rc = b->nops ? apply_batch(st, b) : SQLITE_OK;
    uint64_t took = now_us() - t0;
    uint64_t bytes = b->nops ? used_bytes(st) : 0;
    bool ok = rc == SQLITE_OK && !lost;

    pthread_mutex_lock(&st->lock);
    st->committed = ticket;
    if (b->nops) {
        st->stats.commits++;
        st->stats.ops += b->nops;
        st->stats.syncs += st->mode == STORE_FSYNC && rc == SQLITE_OK;
        st->stats.failures += rc != SQLITE_OK;
        st->stats.bytes = bytes;
        st->stats.cancelled = st->cancelled;
        st->stats.last_commit_us = took;
        if (took > st->stats.max_commit_us)
            st->stats.max_commit_us = took;
        __atomic_store_n(&st->full_disk, bytes > st->max_size, __ATOMIC_RELAXED);
    }
    store_commit_fn hook = st->hook;
    void *ctx = st->hook_ctx;
    pthread_mutex_unlock(&st->lock);
    if (hook)
        hook(ctx, ticket, ok);
    b->nops = 0;
    b->alen = 0;
    /* A burst's batch is not kept for ever: both batches would stay that big. */
    if (b->acap > BATCH_KEEP_BYTES || b->capops * sizeof(struct op) > BATCH_KEEP_BYTES) {
        batch_free(b);
        memset(b, 0, sizeof(*b));
    }
}

/* Takes the pending batch (lock held); returns its ticket. */
static uint64_t take_pending(struct store *st, bool *lost)
{
    struct batch t = st->work;
    st->work = st->pending;
    st->pending = t;
    st->force = false;
    __atomic_store_n(&st->full_pending, false, __ATOMIC_RELAXED);
    st->stats.pending_ops = 0;
    *lost = st->lost;
    st->lost = false;
    return st->next_ticket++;
}

static void *store_main(void *arg)
{
    struct store *st = arg;
    /* Signals are for the broker's threads. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->stop && st->pending.nops == 0 && !st->force && !st->lost)
            pthread_cond_wait(&st->wake, &st->lock);
        if (st->pending.nops == 0 && !st->force && !st->lost)
            break; /* stopping, nothing left */
        bool lost;
        uint64_t ticket = take_pending(st, &lost);
        pthread_mutex_unlock(&st->lock);
        commit_batch(st, &st->work, ticket, lost);
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- checkpoints ---- */

static const char *sync_pragma(const struct store *st)
{
    return st->mode == STORE_FSYNC ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
}

/* PASSIVE: copies what no reader needs and never waits for anyone. Returns
 * the frames copied (the WAL's first frames), -1 on failure. */
static int checkpoint(struct store *st, sqlite3 *db, const char *how, int *logged)
{
    int nlog = 0, ndone = 0;
    uint64_t t0 = now_us();
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ndone);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != *logged)
        log_warn("store: a checkpoint of %s failed: %s", st->path, sqlite3_errstr(rc));
    if (rc == SQLITE_OK)
        log_debug("store: %s checkpoint of %s: %d of %d WAL pages copied in %llu us", how, st->path,
                  ndone, nlog, (unsigned long long)(now_us() - t0));
    *logged = rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : rc;
    return rc == SQLITE_OK ? ndone : -1;
}

/* SQLite calls this on the writer after each commit, with the WAL's length
 * in pages; it replaces SQLite's own automatic checkpoint.
 *
 * The WAL only starts again from its beginning (instead of growing) when a
 * write transaction begins while every frame is already copied. The
 * checkpointer copies the bulk in the background while commits go on, so it
 * is always a little behind; once a round of it has ended, the few frames
 * written meanwhile are copied here, inline (at most WAL_CATCH_UP_PAGES), and
 * the next transaction restarts the WAL. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct store *st = arg;
    bool restarted = pages < st->last_pages;
    st->last_pages = pages;
    if (!st->ckstarted) {
        int logged = 0;
        if (pages >= WAL_CHECKPOINT_PAGES)
            (void)!checkpoint(st, db, "inline", &logged);
        return SQLITE_OK;
    }
    if (!restarted && pages < WAL_CHECKPOINT_PAGES)
        return SQLITE_OK;
    bool catch_up = false;
    pthread_mutex_lock(&st->cklock);
    st->walgen += restarted;
    if (pages >= WAL_CHECKPOINT_PAGES && !st->ckbusy && !st->ckwant) {
        catch_up = (st->ckgen == st->walgen && st->ckdone > 0 &&
                    pages - st->ckdone <= WAL_CATCH_UP_PAGES) ||
                   pages >= WAL_MAX_PAGES;
        st->ckdone = 0;
        st->ckwant = !catch_up;
        if (st->ckwant)
            pthread_cond_signal(&st->ckwake);
    }
    pthread_mutex_unlock(&st->cklock);
    if (catch_up) {
        int logged = 0;
        (void)!checkpoint(st, db, "catch-up", &logged);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    struct store *st = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    int logged = 0;
    pthread_mutex_lock(&st->cklock);
    for (;;) {
        while (!st->ckwant && !st->ckstop)
            pthread_cond_wait(&st->ckwake, &st->cklock);
        if (st->ckstop)
            break;
        st->ckwant = false;
        st->ckbusy = true;
        uint64_t gen = st->walgen;
        pthread_mutex_unlock(&st->cklock);
        int done = checkpoint(st, st->ckdb, "background", &logged);
        pthread_mutex_lock(&st->cklock);
        st->ckbusy = false;
        st->ckdone = done;
        st->ckgen = gen;
    }
    pthread_mutex_unlock(&st->cklock);
    return NULL;
}

static void ckpt_stop(struct store *st)
{
    if (st->ckstarted) {
        pthread_mutex_lock(&st->cklock);
        st->ckstop = true;
        pthread_cond_signal(&st->ckwake);
        pthread_mutex_unlock(&st->cklock);
        pthread_join(st->ckthread, NULL);
        st->ckstarted = false;
    }
    if (st->ckdb)
        sqlite3_close(st->ckdb);
    st->ckdb = NULL;
}

static int ckpt_start(struct store *st)
{
    int rc =
        sqlite3_open_v2(st->path, &st->ckdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->ckdb, sync_pragma(st), NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        log_error("store: cannot open %s for checkpoints: %s", st->path, sqlite3_errstr(rc));
        ckpt_stop(st);
        return -1;
    }
    if (pthread_create(&st->ckthread, NULL, ckpt_main, st) != 0) {
        log_error("store: cannot start the checkpoint thread: %s", strerror(errno));
        ckpt_stop(st);
        return -1;
    }
    st->ckstarted = true;
    return 0;
}

/* see store.h */
int store_start(struct store *st)
{
    if (st->started || ckpt_start(st) != 0)
        return -1;
    if (pthread_create(&st->thread, NULL, store_main, st) != 0) {
        log_error("store: cannot start the store thread: %s", strerror(errno));
        ckpt_stop(st);
        return -1;
    }
    st->started = true;
    return 0;
}

/* ---- opening ---- */

static void finalize_all(struct store *st)
{
    for (int k = 0; k < OP__COUNT; k++)
        for (int j = 0; j < OP_NSQL; j++) {
            sqlite3_finalize(st->stmts[k][j]);
            st->stmts[k][j] = NULL;
        }
    sqlite3_finalize(st->page_count);
    sqlite3_finalize(st->freelist_count);
    st->page_count = st->freelist_count = NULL;
}

static void close_db(struct store *st)
{
    finalize_all(st);
    if (st->db) {
        int rc = sqlite3_close(st->db);
        if (rc != SQLITE_OK)
            log_error("store: closing %s: %s", st->path, sqlite3_errstr(rc));
    }
    st->db = NULL;
}

/* see store.h */
void store_close(struct store *st)
{
    if (!st)
        return;
    if (st->started) {
        pthread_mutex_lock(&st->lock);
        st->stop = true;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL);
        ckpt_stop(st);
    } else if (st->db && (st->pending.nops || st->lost)) {
        bool lost;
        uint64_t ticket = take_pending(st, &lost);
        commit_batch(st, &st->work, ticket, lost);
    }
    close_db(st);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    batch_free(&st->pending);
    batch_free(&st->work);
    free(st->skip);
    free(st->slots);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->cklock);
    pthread_cond_destroy(&st->ckwake);
    free(st->dir);
    free(st->path);
    free(st);
}

/* How an attempt to open the file ended. */
enum open_result { OPENED, DAMAGED, FAILED };

/* One integer from a statement such as "PRAGMA user_version"; the SQLite
 * result code, SQLITE_OK when *out was set. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_EMPTY;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

static bool is_damage(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

/* quick_check: every page reachable and well formed (what a truncated file,
 * a page of garbage or a torn write breaks), without the index-content
 * comparison of integrity_check. Returns 0, or 1 with the first complaint. */
static int check_pages(sqlite3 *db, char *cause, size_t len)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        if (r && strcmp(r, "ok") == 0) {
            rc = SQLITE_OK;
        } else {
            /* One line in the log: SQLite's answer has newlines. */
            snprintf(cause, len, "integrity check: %s", r ? r : "(no answer)");
            for (char *c = cause; *c; c++)
                if (*c == '\n')
                    *c = ' ';
        }
        if (rc != SQLITE_OK) {
            sqlite3_finalize(s);
            return 1;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) {
        snprintf(cause, len, "%s", sqlite3_errstr(rc));
        return 1;
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen, const char *path)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        set_err(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

static bool has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *s = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) == SQLITE_OK)
        found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

/* Reads the file's version; refuses a newer or a foreign file. *empty: no
 * table at all (a new file). */
static int read_schema(struct store *st, int64_t *version, bool *empty, char *err, size_t errlen)
{
    int64_t app = 0, tables = 0;
    int rc = query_int(st->db, "PRAGMA user_version", version);
    if (rc == SQLITE_OK)
        rc = query_int(st->db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = query_int(st->db, "SELECT count(*) FROM sqlite_master", &tables);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", st->path, sqlite3_errstr(rc));
        return rc;
    }
    *empty = tables == 0;
    /* A version-0 file has no application_id yet, but has ward's tables. */
    if ((app != 0 && app != APP_ID) ||
        (!*empty && (!has_table(st->db, "msgs") || !has_table(st->db, "sessions")))) {
        set_err(err, errlen, "%s is an SQLite database but not ward's; refusing to touch it",
                st->path);
        return SQLITE_ERROR;
    }
    if (*version > SCHEMA_VERSION) {
        set_err(err, errlen,
                "%s was written by a newer ward (schema %lld, this ward knows up to %d); "
                "refusing to open it",
                st->path, (long long)*version, SCHEMA_VERSION);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

/* Brings the schema to SCHEMA_VERSION, in one transaction: creates it in an
 * empty file, migrates an older one in place. */
static int settle_schema(struct store *st, char *err, size_t errlen)
{
    int64_t version = 0;
    bool empty = false;
    int rc = read_schema(st, &version, &empty, err, errlen);
    if (rc != SQLITE_OK || version == SCHEMA_VERSION)
        return rc;
    char sql[256];
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d; PRAGMA application_id=%d", SCHEMA_VERSION,
             APP_ID);
    rc = exec(st->db, "BEGIN IMMEDIATE", err, errlen, st->path);
    if (rc == SQLITE_OK && empty)
        rc = exec(st->db, schema_v1, err, errlen, st->path);
    for (int64_t v = version; rc == SQLITE_OK && !empty && v < SCHEMA_VERSION; v++)
        rc = exec(st->db, migrations[v], err, errlen, st->path);
    if (rc == SQLITE_OK)
        rc = exec(st->db, sql, err, errlen, st->path);
    if (rc == SQLITE_OK)
        rc = exec(st->db, "COMMIT", err, errlen, st->path);
    if (rc != SQLITE_OK) {
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (!empty)
        log_notice("store: migrated %s from schema %lld to %d", st->path, (long long)version,
                   SCHEMA_VERSION);
    return SQLITE_OK;
}

static int set_pragmas(struct store *st, char *err, size_t errlen)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "%s; PRAGMA journal_size_limit=%lld; PRAGMA cache_size=-16384; "
             "PRAGMA temp_store=MEMORY",
             sync_pragma(st), WAL_SIZE_LIMIT);
    int rc = exec(st->db, sql, err, errlen, st->path);
    if (rc == SQLITE_OK)
        sqlite3_wal_hook(st->db, wal_hook, st);
    return rc;
}

static int prepare_all(struct store *st, char *err, size_t errlen)
{
    for (int k = 0; k < OP__COUNT; k++)
        for (int j = 0; j < OP_NSQL && specs[k].sql[j]; j++) {
            int rc = sqlite3_prepare_v3(st->db, specs[k].sql[j], -1, SQLITE_PREPARE_PERSISTENT,
                                        &st->stmts[k][j], NULL);
            if (rc != SQLITE_OK) {
                set_err(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
                return rc;
            }
        }
    int rc = sqlite3_prepare_v3(st->db, "PRAGMA page_count", -1, SQLITE_PREPARE_PERSISTENT,
                                &st->page_count, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(st->db, "PRAGMA freelist_count", -1, SQLITE_PREPARE_PERSISTENT,
                                &st->freelist_count, NULL);
    int64_t page_size = 0;
    if (rc == SQLITE_OK)
        rc = query_int(st->db, "PRAGMA page_size", &page_size);
    if (rc != SQLITE_OK)
        set_err(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
    st->page_size = page_size > 0 ? (uint64_t)page_size : 4096;
    return rc;
}

/* One attempt at opening the file. DAMAGED leaves the cause in `cause`. */
static enum open_result try_open(struct store *st, char *cause, size_t clen, char *err,
                                 size_t errlen)
{
    int rc = sqlite3_open_v2(
        st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int sys = st->db ? sqlite3_system_errno(st->db) : 0;
        set_err(err, errlen, "cannot open %s: %s%s%s", st->path, sqlite3_errstr(rc),
                sys ? ": " : "", sys ? strerror(sys) : "");
        return FAILED;
    }
    sqlite3_extended_result_codes(st->db, 1);
    int64_t schema_cookie = 0;
    /* The first read of the file: "not a database" shows here. */
    rc = query_int(st->db, "PRAGMA schema_version", &schema_cookie);
    if (is_damage(rc)) {
        snprintf(cause, clen, "%s", sqlite3_errstr(rc));
        return DAMAGED;
    }
    if (rc == SQLITE_OK && check_pages(st->db, cause, clen))
        return DAMAGED;
    if (rc == SQLITE_OK) {
        char *msg = NULL;
        rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg);
        sqlite3_free(msg);
    }
    if (is_damage(rc)) {
        snprintf(cause, clen, "%s", sqlite3_errstr(rc));
        return DAMAGED;
    }
    if (rc != SQLITE_OK) {
        int sys = sqlite3_system_errno(st->db);
        set_err(err, errlen, "cannot use %s: %s%s%s", st->path, sqlite3_errstr(rc), sys ? ": " : "",
                sys ? strerror(sys) : "");
        return FAILED;
    }
    if (settle_schema(st, err, errlen) != SQLITE_OK || set_pragmas(st, err, errlen) != SQLITE_OK ||
        prepare_all(st, err, errlen) != SQLITE_OK)
        return FAILED;
    return OPENED;
}

/* Renames path+suffix to aside+suffix when it exists. */
static int move_one(const char *path, const char *aside, const char *suffix)
{
    char from[4200], to[4200];
    if ((size_t)snprintf(from, sizeof(from), "%s%s", path, suffix) >= sizeof(from) ||
        (size_t)snprintf(to, sizeof(to), "%s%s", aside, suffix) >= sizeof(to)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (rename(from, to) == 0 || errno == ENOENT)
        return 0;
    return -1;
}

/* Moves the damaged file and its -wal/-shm aside; the new name in `aside`. */
static int move_aside(struct store *st, char *aside, size_t len, char *err, size_t errlen)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
    /* Two damaged files within a second must not overwrite each other. */
    for (int n = 0; n < 100; n++) {
        if (n == 0)
            snprintf(aside, len, "%s.damaged-%s", st->path, stamp);
        else
            snprintf(aside, len, "%s.damaged-%s.%d", st->path, stamp, n);
        if (access(aside, F_OK) != 0)
            break;
    }
    if (move_one(st->path, aside, "") != 0 || move_one(st->path, aside, "-wal") != 0 ||
        move_one(st->path, aside, "-shm") != 0) {
        set_err(err, errlen, "%s is damaged and cannot be moved aside to %s: %s", st->path, aside,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* The directory exists (made if need be), is ours alone (flock), writable. */
static int prepare_dir(struct store *st, char *err, size_t errlen)
{
    if (mkdir(st->dir, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "cannot create the store directory %s: %s", st->dir, strerror(errno));
        return -1;
    }
    char lock[4200];
    snprintf(lock, sizeof(lock), "%s.lock", st->path);
    st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0) {
        set_err(err, errlen, "cannot write in the store directory %s: %s", st->dir,
                strerror(errno));
        return -1;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        set_err(err, errlen, "%s is in use by another ward (%s is locked)", st->path, lock);
        return -1;
    }
    return 0;
}

static struct store *store_alloc(const struct store_config *cfg, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof(*st));
    size_t dlen = strlen(cfg->dir);
    if (st) {
        st->lock_fd = -1;
        st->dir = strdup(cfg->dir);
        st->path = malloc(dlen + sizeof("/ward.db"));
    }
    if (!st || !st->dir || !st->path) {
        if (st) {
            free(st->dir);
            free(st->path);
        }
        free(st);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(st->path, cfg->dir, dlen);
    memcpy(st->path + dlen, "/ward.db", sizeof("/ward.db"));
    st->mode = cfg->mode;
    st->on_damage = cfg->on_damage;
    st->max_size = cfg->max_size ? cfg->max_size : STORE_DEFAULT_MAX_SIZE;
    st->next_ticket = 1;
    st->next_id = 1;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->wake, NULL);
    pthread_mutex_init(&st->cklock, NULL);
    pthread_cond_init(&st->ckwake, NULL);
    return st;
}

/* Opens the file, moving a damaged one aside (or refusing) once. */
static int open_db(struct store *st, char *err, size_t errlen)
{
    char cause[256] = "", aside[4200];
    enum open_result r = try_open(st, cause, sizeof(cause), err, errlen);
    if (r != DAMAGED)
        return r == OPENED ? 0 : -1;
    close_db(st);
    if (st->on_damage == STORE_DAMAGE_REFUSE) {
        set_err(err, errlen,
                "%s is damaged (%s); refusing to start (on_damage = refuse): move it aside or "
                "remove it to start with an empty store",
                st->path, cause);
        return -1;
    }
    if (move_aside(st, aside, sizeof(aside), err, errlen) != 0)
        return -1;
    log_error("store: %s is damaged (%s); moved it aside to %s and started an empty store",
              st->path, cause, aside);
    r = try_open(st, cause, sizeof(cause), err, errlen);
    if (r == DAMAGED)
        set_err(err, errlen, "%s: a new file is damaged too (%s)", st->path, cause);
    return r == OPENED ? 0 : -1;
}

/* see store.h */
struct store *store_open(const struct store_config *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->dir || !cfg->dir[0] || cfg->mode == STORE_OFF || strlen(cfg->dir) > 4000) {
        set_err(err, errlen, "store: %s",
                cfg && cfg->mode == STORE_OFF ? "persistence is off"
                                              : "a directory (of at most 4000 bytes) is needed");
        return NULL;
    }
    struct store *st = store_alloc(cfg, err, errlen);
    if (!st)
        return NULL;
    if (prepare_dir(st, err, errlen) != 0 || open_db(st, err, errlen) != 0) {
        store_close(st);
        return NULL;
    }
    uint64_t bytes = used_bytes(st);
    st->stats.bytes = bytes;
    st->full_disk = bytes > st->max_size;
    return st;
}

/* ---- loading ---- */

struct loader {
    struct store *st;
    const struct store_load_fns *fns;
    void *ctx;
    char *err;
    size_t errlen;
    uint64_t *refs; /* every message id a row refers to, sorted */
    size_t nrefs, caprefs, pos;
    uint64_t *garbage; /* messages no row refers to */
    size_t ngarbage, capgarbage;
};

/* Whether a row refers to message `id`; ids come in increasing order. */
static bool referenced(struct loader *l, uint64_t id)
{
    while (l->pos < l->nrefs && l->refs[l->pos] < id)
        l->pos++;
    return l->pos < l->nrefs && l->refs[l->pos] == id;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s, i);
}

static uint64_t col_u64(sqlite3_stmt *s, int i)
{
    return (uint64_t)sqlite3_column_int64(s, i);
}

static int row_msg(struct loader *l, sqlite3_stmt *s)
{
    if (!referenced(l, col_u64(s, 0))) {
        /* Without memory it stays until the next load: harmless. */
        if (ward_ok(VEC_RESERVE(l->garbage, l->capgarbage, l->ngarbage + 1)))
            l->garbage[l->ngarbage++] = col_u64(s, 0);
        return 0;
    }
    if (!l->fns->msg)
        return 0;
    struct store_msg m = {
        .id = col_u64(s, 0),
        .topic = col_text(s, 1) ? col_text(s, 1) : "",
        .payload = sqlite3_column_blob(s, 2),
        .payload_len = (uint32_t)sqlite3_column_bytes(s, 2),
        .qos = (uint8_t)sqlite3_column_int(s, 3),
        .retain = sqlite3_column_int(s, 4) != 0,
        .expire_at = col_u64(s, 5),
        .origin = col_text(s, 6),
        .props = sqlite3_column_blob(s, 7),
        .props_len = (uint32_t)sqlite3_column_bytes(s, 7),
    };
    return l->fns->msg(l->ctx, &m);
}

static int row_session(struct loader *l, sqlite3_stmt *s)
{
    struct store_session x = {
        .id = col_text(s, 0),
        .owner = col_text(s, 1),
        .username = col_text(s, 2),
        .cert_cn = col_text(s, 3),
        .cert_ou = col_text(s, 4),
        .expiry_s = (uint32_t)sqlite3_column_int64(s, 5),
        .expire_at = col_u64(s, 6),
        .protocol = (uint8_t)sqlite3_column_int(s, 7),
        .bridge = sqlite3_column_int(s, 8) != 0,
        .will_msg_id = col_u64(s, 9),
        .will_delay_s = (uint32_t)sqlite3_column_int64(s, 10),
    };
    return l->fns->session(l->ctx, &x);
}

static int row_sub(struct loader *l, sqlite3_stmt *s)
{
    struct store_sub x = {
        .filter = col_text(s, 1),
        .options = (uint8_t)sqlite3_column_int(s, 2),
        .sub_id = (uint32_t)sqlite3_column_int64(s, 3),
    };
    return l->fns->sub(l->ctx, col_text(s, 0), &x);
}

static int row_delivery(struct loader *l, sqlite3_stmt *s)
{
    uint32_t ids[255];
    const uint8_t *p = sqlite3_column_blob(s, 7);
    size_t n = (size_t)sqlite3_column_bytes(s, 7) / 4;
    if (n > 255)
        n = 255;
    for (size_t i = 0; i < n; i++)
        ids[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                 (uint32_t)p[4 * i + 3] << 24;
    struct store_delivery d = {
        .msg_id = col_u64(s, 1),
        .seq = col_u64(s, 2),
        .qos = (uint8_t)sqlite3_column_int(s, 3),
        .retain = sqlite3_column_int(s, 4) != 0,
        .pid = (uint16_t)sqlite3_column_int(s, 5),
        .state = (uint8_t)sqlite3_column_int(s, 6),
        .sub_ids = n ? ids : NULL,
        .nsub = (uint8_t)n,
    };
    return l->fns->delivery(l->ctx, col_text(s, 0), &d);
}

static int row_rel(struct loader *l, sqlite3_stmt *s)
{
    return l->fns->rel(l->ctx, col_text(s, 0), (uint16_t)sqlite3_column_int(s, 1));
}

static int row_retained(struct loader *l, sqlite3_stmt *s)
{
    return l->fns->retained(l->ctx, col_text(s, 0), col_u64(s, 1));
}

static int row_bridge(struct loader *l, sqlite3_stmt *s)
{
    return l->fns->bridge(l->ctx, col_text(s, 0), col_u64(s, 1), col_u64(s, 2));
}

/* The load, in the order store.h promises. */
static const struct load_step {
    const char *what, *sql;
    int (*row)(struct loader *l, sqlite3_stmt *s);
    size_t fn; /* offset of the callback in store_load_fns */
} load_steps[] = {
    {"message", "SELECT id,topic,payload,qos,retain,expire_at,origin,props FROM msgs ORDER BY id",
     row_msg, offsetof(struct store_load_fns, msg)},
    {"session",
     "SELECT id,owner,username,cert_cn,cert_ou,expiry_s,expire_at,protocol,bridge,will_msg_id,"
     "will_delay_s FROM sessions ORDER BY id",
     row_session, offsetof(struct store_load_fns, session)},
    {"subscription", "SELECT session_id,filter,options,sub_id FROM subs ORDER BY session_id,filter",
     row_sub, offsetof(struct store_load_fns, sub)},
    {"delivery",
     "SELECT session_id,msg_id,seq,qos,retain,pid,state,sub_ids FROM deliveries "
     "ORDER BY session_id,seq,msg_id",
     row_delivery, offsetof(struct store_load_fns, delivery)},
    {"rel", "SELECT session_id,pid FROM rels ORDER BY session_id,pid", row_rel,
     offsetof(struct store_load_fns, rel)},
    {"retained", "SELECT topic,msg_id FROM retained ORDER BY topic", row_retained,
     offsetof(struct store_load_fns, retained)},
    {"bridge", "SELECT bridge,seq,msg_id FROM bridge_queue ORDER BY bridge,seq", row_bridge,
     offsetof(struct store_load_fns, bridge)},
};

static int load_step(struct loader *l, const struct load_step *step)
{
    void *fn;
    memcpy(&fn, (const char *)l->fns + step->fn, sizeof(fn));
    if (!fn && step->row != row_msg) /* the messages are read for the garbage too */
        return 0;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(l->st->db, step->sql, -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (step->row(l, s) != 0) {
            set_err(l->err, l->errlen, "%s: loading stopped by the broker at a %s row", l->st->path,
                    step->what);
            sqlite3_finalize(s);
            return -1;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        set_err(l->err, l->errlen, "%s: reading the %s rows: %s", l->st->path, step->what,
                sqlite3_errmsg(l->st->db));
        return -1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Messages nothing refers to are what was left when the delete of a message's
 * last reference was committed without the message's own delete (a crash
 * between the two). They are found by a merge of the sorted references with
 * the messages in id order: a NOT IN query took 3 s for 1.1M messages, this
 * a few hundred ms. */
static const char refs_sql[] =
    "SELECT msg_id FROM deliveries UNION ALL SELECT msg_id FROM retained UNION ALL "
    "SELECT msg_id FROM bridge_queue UNION ALL SELECT will_msg_id FROM sessions "
    "WHERE will_msg_id > 0";

static int collect_refs(struct loader *l)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(l->st->db, refs_sql, -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (!ward_ok(VEC_RESERVE(l->refs, l->caprefs, l->nrefs + 1)))
            rc = SQLITE_NOMEM;
        else
            l->refs[l->nrefs++] = col_u64(s, 0);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        set_err(l->err, l->errlen, "%s: reading the references to messages: %s", l->st->path,
                rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(l->st->db));
        return -1;
    }
    if (l->nrefs)
        qsort(l->refs, l->nrefs, sizeof(*l->refs), cmp_u64);
    return 0;
}

static int delete_garbage(struct loader *l)
{
    if (!l->ngarbage)
        return 0;
    sqlite3_stmt *s = NULL;
    int rc = exec(l->st->db, "BEGIN", l->err, l->errlen, l->st->path);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(l->st->db, "DELETE FROM msgs WHERE id=?", -1, &s, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < l->ngarbage; i++) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)l->garbage[i]);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(l->st->db);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_OK)
        rc = exec(l->st->db, "COMMIT", l->err, l->errlen, l->st->path);
    if (rc != SQLITE_OK) {
        set_err(l->err, l->errlen, "%s: deleting unreferenced messages: %s", l->st->path,
                sqlite3_errstr(rc));
        if (!sqlite3_get_autocommit(l->st->db))
            sqlite3_exec(l->st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    log_info("store: %zu unreferenced messages deleted from %s", l->ngarbage, l->st->path);
    return 0;
}

/* see store.h */
int store_load(struct store *st, const struct store_load_fns *fns, void *ctx, char *err,
               size_t errlen)
{
    if (st->started || !fns) {
        set_err(err, errlen, "store: load needs the functions and must come before the start");
        return -1;
    }
    int64_t max_id = 0;
    if (query_int(st->db, "SELECT coalesce(max(id),0) FROM msgs", &max_id) != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    uint64_t next = (uint64_t)max_id + 1;
    if (next > __atomic_load_n(&st->next_id, __ATOMIC_RELAXED))
        __atomic_store_n(&st->next_id, next, __ATOMIC_RELAXED);
    struct loader l = {.st = st, .fns = fns, .ctx = ctx, .err = err, .errlen = errlen};
    int rc = collect_refs(&l);
    for (size_t i = 0; rc == 0 && i < sizeof(load_steps) / sizeof(load_steps[0]); i++) {
        rc = load_step(&l, &load_steps[i]);
        if (rc == 0 && load_steps[i].row == row_msg) {
            free(l.refs); /* done with: the memory goes back before the rest loads */
            l.refs = NULL;
            rc = delete_garbage(&l);
        }
    }
    free(l.refs);
    free(l.garbage);
    return rc;
}
