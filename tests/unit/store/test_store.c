/* Tests for src/store/store.c: round trips, load order, garbage, replace
 * semantics, group commit, kill -9, damaged and foreign files, schema
 * versions, the size bound and a full or read-only disk. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* ---- helpers ---- */

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/ward-store-XXXXXX";
    char *d = mkdtemp(tmpl);
    ASSERT(d);
    return strdup(d);
}

static void tmpdir_free(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static struct store *open_mode(const char *dir, enum store_mode mode, uint64_t max_size,
                               enum store_on_damage dmg, char *err, size_t errlen)
{
    struct store_config cfg = {.mode = mode, .dir = dir, .max_size = max_size, .on_damage = dmg};
    return store_open(&cfg, err, errlen);
}

static struct store *open_ok(const char *dir)
{
    char err[512] = "";
    struct store *st = open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    if (!st)
        TEST_FAIL_("store_open(%s): %s", dir, err);
    return st;
}

/* A load recorded as text, one line per callback. */
struct rec {
    char *text;
    size_t len, cap;
    int stop_at; /* the callback number that returns -1, 0: none */
    int calls;
};

static int rec_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rec_add(struct rec *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ASSERT(n > 0 && (size_t)n < sizeof(line));
    if (r->len + (size_t)n + 2 > r->cap) {
        r->cap = (r->len + (size_t)n + 2) * 2;
        r->text = realloc(r->text, r->cap);
        ASSERT(r->text);
    }
    memcpy(r->text + r->len, line, (size_t)n);
    r->len += (size_t)n;
    r->text[r->len++] = '\n';
    r->text[r->len] = 0;
    return ++r->calls == r->stop_at ? -1 : 0;
}

#define S(x) ((x) ? (x) : "-")

static int rec_msg(void *ctx, const struct store_msg *m)
{
    char pl[64] = "", pr[64] = "";
    memcpy(pl, m->payload ? (const char *)m->payload : "",
           m->payload_len < 63 ? m->payload_len : 63);
    memcpy(pr, m->props ? (const char *)m->props : "", m->props_len < 63 ? m->props_len : 63);
    return rec_add(ctx, "msg %llu %s [%s]%u q%u r%d x%llu o=%s p=%s%s", (unsigned long long)m->id,
                   m->topic, pl, m->payload_len, m->qos, m->retain,
                   (unsigned long long)m->expire_at, S(m->origin), m->props ? "" : "NULL", pr);
}

static int rec_session(void *ctx, const struct store_session *s)
{
    return rec_add(ctx, "session %s %s %s %s %s e%u x%llu p%u b%d w%llu d%u", s->id, S(s->owner),
                   S(s->username), S(s->cert_cn), S(s->cert_ou), s->expiry_s,
                   (unsigned long long)s->expire_at, s->protocol, s->bridge,
                   (unsigned long long)s->will_msg_id, s->will_delay_s);
}

static int rec_sub(void *ctx, const char *sid, const struct store_sub *sub)
{
    return rec_add(ctx, "sub %s %s o%u i%u", sid, sub->filter, sub->options, sub->sub_id);
}

static int rec_delivery(void *ctx, const char *sid, const struct store_delivery *d)
{
    char ids[256] = "";
    size_t n = 0;
    for (int i = 0; i < d->nsub; i++)
        n += (size_t)snprintf(ids + n, sizeof(ids) - n, ",%u", d->sub_ids[i]);
    return rec_add(ctx, "delivery %s m%llu s%llu q%u r%d p%u st%u ids%s", sid,
                   (unsigned long long)d->msg_id, (unsigned long long)d->seq, d->qos, d->retain,
                   d->pid, d->state, ids);
}

static int rec_rel(void *ctx, const char *sid, uint16_t pid)
{
    return rec_add(ctx, "rel %s %u", sid, pid);
}

static int rec_retained(void *ctx, const char *topic, uint64_t msg_id)
{
    return rec_add(ctx, "retained %s %llu", topic, (unsigned long long)msg_id);
}

static int rec_bridge(void *ctx, const char *bridge, uint64_t seq, uint64_t msg_id)
{
    return rec_add(ctx, "bridge %s %llu %llu", bridge, (unsigned long long)seq,
                   (unsigned long long)msg_id);
}

static const struct store_load_fns rec_fns = {rec_msg, rec_session,  rec_sub,   rec_delivery,
                                              rec_rel, rec_retained, rec_bridge};

/* Opens DIR, loads it into a text, closes. */
static char *load_text(const char *dir)
{
    struct store *st = open_ok(dir);
    struct rec r = {0};
    char err[256] = "";
    if (store_load(st, &rec_fns, &r, err, sizeof(err)) != 0)
        TEST_FAIL_("store_load: %s", err);
    store_close(st);
    return r.text ? r.text : strdup("");
}

static void put_msg(struct store *st, uint64_t id, const char *topic, const char *payload)
{
    struct store_msg m = {.id = id,
                          .topic = topic,
                          .payload = (const uint8_t *)payload,
                          .payload_len = (uint32_t)strlen(payload),
                          .qos = 1};
    store_msg_put(st, &m);
}

/* The commit hook, recorded; waits are bounded in time. */
struct hooked {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t ticket;
    uint64_t calls, failed;
    bool ordered; /* tickets never went backwards */
    bool hold;    /* the hook waits while set: the store thread is busy */
    bool holding; /* it is waiting now */
};

static void hook_fn(void *ctx, uint64_t ticket, bool ok)
{
    struct hooked *h = ctx;
    pthread_mutex_lock(&h->lock);
    if (ticket < h->ticket)
        h->ordered = false;
    h->ticket = ticket;
    h->calls++;
    h->failed += !ok;
    pthread_cond_broadcast(&h->cond);
    while (h->hold) {
        h->holding = true;
        pthread_cond_broadcast(&h->cond);
        pthread_cond_wait(&h->cond, &h->lock);
    }
    h->holding = false;
    pthread_mutex_unlock(&h->lock);
}

static void hooked_init(struct hooked *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->ordered = true;
}

/* Waits (at most 20 s) for the hook to report `ticket`. */
static void wait_ticket(struct hooked *h, uint64_t ticket)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&h->lock);
    while (h->ticket < ticket)
        if (pthread_cond_timedwait(&h->cond, &h->lock, &until) == ETIMEDOUT)
            TEST_FAIL_("no commit hook for ticket %llu (last %llu)", (unsigned long long)ticket,
                       (unsigned long long)h->ticket);
    pthread_mutex_unlock(&h->lock);
}

/* Failed commits so far (the hook writes on the store thread). */
static uint64_t hooked_failed(struct hooked *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t n = h->failed;
    pthread_mutex_unlock(&h->lock);
    return n;
}

static struct store *start_hooked(const char *dir, struct hooked *h)
{
    struct store *st = open_ok(dir);
    hooked_init(h);
    store_set_commit_hook(st, hook_fn, h);
    char err[256];
    struct store_load_fns none = {0};
    ASSERT_EQ(store_load(st, &none, NULL, err, sizeof(err)), 0);
    ASSERT_EQ(store_start(st), 0);
    return st;
}

static void sync_store(struct store *st, struct hooked *h)
{
    wait_ticket(h, store_barrier(st));
}

static bool contains(const char *text, const char *line)
{
    return strstr(text, line) != NULL;
}

static int sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void db_path(char *out, size_t len, const char *dir)
{
    snprintf(out, len, "%s/ward.db", dir);
}

/* How many files in DIR start with PREFIX. */
static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    ASSERT(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* ---- round trips and semantics ---- */

/* Fills a store with one row of every kind (and a few more). */
static void fill_every_kind(struct store *st)
{
    static const uint8_t props[] = {'P', 0, 'Q'};
    struct store_msg m = {.id = 7,
                          .topic = "a/b",
                          .payload = (const uint8_t *)"hello",
                          .payload_len = 5,
                          .qos = 2,
                          .retain = true,
                          .expire_at = 1700000000123ull,
                          .origin = "nats",
                          .props = props,
                          .props_len = 1};
    store_msg_put(st, &m);
    struct store_msg empty = {.id = 8, .topic = "e", .qos = 1};
    store_msg_put(st, &empty);
    struct store_session s = {.id = "dev1",
                              .owner = "cn:dev1",
                              .username = "u",
                              .cert_cn = "dev1",
                              .cert_ou = "fleet",
                              .expiry_s = 3600,
                              .expire_at = 1800000000000ull,
                              .protocol = 5,
                              .bridge = true,
                              .will_msg_id = 8,
                              .will_delay_s = 30};
    store_session_put(st, &s);
    struct store_session bare = {.id = "dev2", .protocol = 4};
    store_session_put(st, &bare);
    struct store_sub sub = {.filter = "$share/g/x/#", .options = 0x16, .sub_id = 42};
    store_sub_put(st, "dev1", &sub);
    uint32_t ids[3] = {1, 70000, 0xffffffffu};
    struct store_delivery d = {.msg_id = 7,
                               .seq = 3,
                               .qos = 2,
                               .retain = true,
                               .pid = 65535,
                               .state = 2,
                               .sub_ids = ids,
                               .nsub = 3};
    store_delivery_put(st, "dev1", &d);
    store_rel_put(st, "dev1", 9);
    store_retained_put(st, "a/b", 7);
    store_bridge_put(st, "up", 5, 7);
}

static const char *every_kind_text =
    "msg 7 a/b [hello]5 q2 r1 x1700000000123 o=nats p=P\n"
    "msg 8 e []0 q1 r0 x0 o=- p=NULL\n"
    "session dev1 cn:dev1 u dev1 fleet e3600 x1800000000000 p5 b1 w8 d30\n"
    "session dev2 - - - - e0 x0 p4 b0 w0 d0\n"
    "sub dev1 $share/g/x/# o22 i42\n"
    "delivery dev1 m7 s3 q2 r1 p65535 st2 ids,1,70000,4294967295\n"
    "rel dev1 9\n"
    "retained a/b 7\n"
    "bridge up 5 7\n";

TEST(round_trip_every_kind)
{
    char *dir = tmpdir_new();
    struct store *st = open_ok(dir);
    fill_every_kind(st);
    store_close(st); /* not started: close commits what is pending */
    char *text = load_text(dir);
    ASSERT_STR_EQ(text, every_kind_text);
    free(text);
    /* And again through the store thread. */
    struct hooked h;
    st = start_hooked(dir, &h);
    store_session_del(st, "dev1");
    store_session_del(st, "dev2");
    store_retained_del(st, "a/b");
    store_bridge_del(st, "up", 5);
    store_close(st);
    text = load_text(dir);
    ASSERT_STR_EQ(text, ""); /* and the messages went as garbage */
    free(text);
    st = start_hooked(dir, &h);
    fill_every_kind(st);
    sync_store(st, &h);
    ASSERT_EQ(hooked_failed(&h), 0);
    store_close(st);
    text = load_text(dir);
    ASSERT_STR_EQ(text, every_kind_text);
    free(text);
    tmpdir_free(dir);
}

TEST(load_order)
{
    char *dir = tmpdir_new();
    struct store *st = open_ok(dir);
    /* Written in the opposite order to the load's. */
    store_bridge_put(st, "b2", 1, 3);
    store_bridge_put(st, "b1", 9, 2);
    store_bridge_put(st, "b1", 4, 1);
    store_retained_put(st, "t", 1);
    store_rel_put(st, "s1", 2);
    for (uint64_t i = 3; i >= 1; i--) {
        struct store_delivery d = {.msg_id = i, .seq = 100 - i, .qos = 1};
        store_delivery_put(st, "s1", &d);
    }
    struct store_sub sub = {.filter = "f"};
    store_sub_put(st, "s1", &sub);
    struct store_session s = {.id = "s1"};
    store_session_put(st, &s);
    for (uint64_t i = 3; i >= 1; i--)
        put_msg(st, i, "t", "x");
    store_close(st);
    char *text = load_text(dir);
    ASSERT_STR_EQ(text, "msg 1 t [x]1 q1 r0 x0 o=- p=NULL\n"
                        "msg 2 t [x]1 q1 r0 x0 o=- p=NULL\n"
                        "msg 3 t [x]1 q1 r0 x0 o=- p=NULL\n"
                        "session s1 - - - - e0 x0 p0 b0 w0 d0\n"
                        "sub s1 f o0 i0\n"
                        "delivery s1 m3 s97 q1 r0 p0 st0 ids\n"
                        "delivery s1 m2 s98 q1 r0 p0 st0 ids\n"
                        "delivery s1 m1 s99 q1 r0 p0 st0 ids\n"
                        "rel s1 2\n"
                        "retained t 1\n"
                        "bridge b1 4 1\n"
                        "bridge b1 9 2\n"
                        "bridge b2 1 3\n");
    free(text);
    tmpdir_free(dir);
}

TEST(load_callback_stops_and_null_callbacks_skip)
{
    char *dir = tmpdir_new();
    struct store *st = open_ok(dir);
    fill_every_kind(st);
    store_close(st);
    st = open_ok(dir);
    struct rec r = {.stop_at = 3};
    char err[256] = "";
    ASSERT_EQ(store_load(st, &rec_fns, &r, err, sizeof(err)), -1);
    ASSERT(strstr(err, "stopped by the broker at a session row"));
    free(r.text);
    store_close(st);
    st = open_ok(dir);
    struct store_load_fns only = {.retained = rec_retained};
    struct rec r2 = {0};
    ASSERT_EQ(store_load(st, &only, &r2, err, sizeof(err)), 0);
    ASSERT_STR_EQ(r2.text, "retained a/b 7\n");
    free(r2.text);
    /* Loading after the start is refused. */
    ASSERT_EQ(store_start(st), 0);
    ASSERT_EQ(store_load(st, &only, &r2, err, sizeof(err)), -1);
    ASSERT_NE(store_start(st), 0);
    store_close(st);
    tmpdir_free(dir);
}

TEST(garbage_messages_deleted)
{
    char *dir = tmpdir_new();
    struct store *st = open_ok(dir);
    for (uint64_t i = 1; i <= 6; i++)
        put_msg(st, i, "t", "x");
    struct store_delivery d = {.msg_id = 1, .seq = 1, .qos = 1};
    store_delivery_put(st, "s", &d);
    store_retained_put(st, "t", 2);
    store_bridge_put(st, "b", 1, 3);
    struct store_session s = {.id = "s", .will_msg_id = 4};
    store_session_put(st, &s);
    /* 5 and 6: nothing refers to them. */
    store_close(st);
    char path[512];
    db_path(path, sizeof(path), dir);
    ASSERT_EQ(sql_int(path, "SELECT count(*) FROM msgs"), 6);
    char *text = load_text(dir);
    ASSERT(contains(text, "msg 4 "));
    ASSERT(!contains(text, "msg 5 ") && !contains(text, "msg 6 "));
    free(text);
    ASSERT_EQ(sql_int(path, "SELECT count(*) FROM msgs"), 4);
    ASSERT_EQ(sql_int(path, "SELECT max(id) FROM msgs"), 4);
    /* Ids continue after the highest stored, garbage included. */
    st = open_ok(dir);
    char err[256];
    struct store_load_fns none = {0};
    ASSERT_EQ(store_load(st, &none, NULL, err, sizeof(err)), 0);
    ASSERT_EQ(store_next_id(st), 5);
    ASSERT_EQ(store_next_id(st), 6);
    store_close(st);
    tmpdir_free(dir);
}

TEST(next_id_continues_after_load)
{
    char *dir = tmpdir_new();
    struct store *st = open_ok(dir);
    ASSERT_EQ(store_next_id(st), 1);
    put_msg(st, 1000, "t", "x");
    store_retained_put(st, "t", 1000);
    store_close(st);
    st = open_ok(dir);
    char err[256];
    struct store_load_fns none = {0};
    ASSERT_EQ(store_load(st, &none, NULL, err, sizeof(err)), 0);
    ASSERT_EQ(store_next_id(st), 1001);
    store_close(st);
    tmpdir_free(dir);
}

TEST(replace_semantics)
{
    char *dir = tmpdir_new();
    struct store *st = open_ok(dir);
    put_msg(st, 1, "t", "old");
    put_msg(st, 1, "t", "new");
    struct store_session s = {.id = "s", .expiry_s = 1};
    store_session_put(st, &s);
    s.expiry_s = 2;
    s.owner = "me";
    store_session_put(st, &s);
    struct store_sub sub = {.filter = "a/+", .options = 1, .sub_id = 1};
    store_sub_put(st, "s", &sub);
    sub.options = 2;
    sub.sub_id = 2;
    store_sub_put(st, "s", &sub);
    struct store_sub other = {.filter = "b", .options = 1};
    store_sub_put(st, "s", &other);
    store_sub_del(st, "s", "b");
    struct store_delivery d = {.msg_id = 1, .seq = 1, .qos = 1};
    store_delivery_put(st, "s", &d);
    d.pid = 5;
    d.state = 1;
    store_delivery_put(st, "s", &d);
    store_rel_put(st, "s", 3);
    store_rel_put(st, "s", 3);
    store_rel_put(st, "s", 4);
    store_rel_del(st, "s", 4);
    store_retained_put(st, "t", 1);
    store_retained_put(st, "t", 1);
    store_bridge_put(st, "b", 1, 1);
    store_bridge_put(st, "b", 2, 1);
    store_bridge_del(st, "b", 1);
    store_delivery_del(st, "s", 99); /* absent: no effect */
    store_close(st);
    char *text = load_text(dir);
    ASSERT_STR_EQ(text, "msg 1 t [new]3 q1 r0 x0 o=- p=NULL\n"
                        "session s me - - - e2 x0 p0 b0 w0 d0\n"
                        "sub s a/+ o2 i2\n"
                        "delivery s m1 s1 q1 r0 p5 st1 ids\n"
                        "rel s 3\n"
                        "retained t 1\n"
                        "bridge b 2 1\n");
    free(text);
    /* A session's delete takes its subs, deliveries and rels with it. */
    st = open_ok(dir);
    store_session_del(st, "s");
    store_delivery_del(st, "x", 1);
    store_close(st);
    text = load_text(dir);
    ASSERT_STR_EQ(text, "msg 1 t [new]3 q1 r0 x0 o=- p=NULL\n"
                        "retained t 1\n"
                        "bridge b 2 1\n");
    free(text);
    tmpdir_free(dir);
}

/* A message and delivery put and deleted again within one commit (a
 * subscriber acknowledged before the commit) are not written; nor are the
 * deletes of rows the caller says are fresh, while the deletes of older
 * rows are; a put after a delete in the same batch stays. */
TEST(moot_puts_not_written)
{
    char *dir = tmpdir_new();
    struct hooked h;
    struct store *st = start_hooked(dir, &h);
    struct store_session s = {.id = "s", .expiry_s = 1};
    put_msg(st, 7, "old", "x");
    struct store_delivery d7 = {.msg_id = 7, .seq = 1, .qos = 1};
    store_delivery_put(st, "s", &d7);
    sync_store(st, &h); /* msg 7 and its delivery are older than the batch below */
    /* Keep the store thread in the hook of one more commit, so everything
     * below lands in one batch. */
    pthread_mutex_lock(&h.lock);
    h.hold = true;
    pthread_mutex_unlock(&h.lock);
    uint64_t busy = store_barrier(st);
    pthread_mutex_lock(&h.lock);
    while (!h.holding || h.ticket < busy)
        pthread_cond_wait(&h.cond, &h.lock);
    pthread_mutex_unlock(&h.lock);
    store_session_put(st, &s);
    struct store_msg m1 = {.id = 1,
                           .topic = "t",
                           .payload = (const uint8_t *)"a",
                           .payload_len = 1,
                           .qos = 1,
                           .fresh = true};
    store_msg_put(st, &m1);
    struct store_delivery d = {.msg_id = 1, .seq = 2, .qos = 1, .fresh = true};
    store_delivery_put(st, "s", &d);
    d.pid = 3;
    d.state = 1;
    d.fresh = false;
    store_delivery_put(st, "s", &d);
    store_delivery_del(st, "s", 1); /* fresh rows: the deletes are moot too */
    store_msg_del(st, 1);
    put_msg(st, 2, "t", "b");
    struct store_delivery d2 = {.msg_id = 2, .seq = 3, .qos = 1, .fresh = true};
    store_delivery_put(st, "s", &d2);
    store_delivery_del(st, "s", 2);
    d2.fresh = false;
    store_delivery_put(st, "s", &d2); /* after its delete: stays */
    store_delivery_del(st, "s", 7);   /* a row from an earlier commit: deleted */
    store_msg_del(st, 7);
    pthread_mutex_lock(&h.lock);
    h.hold = false;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    sync_store(st, &h);
    struct store_stats stats;
    store_get_stats(st, &stats);
    /* Puts: msg 1, two of (s, 1), the first of (s, 2); deletes of fresh
     * rows: (s, 1), msg 1, (s, 2). Msg 7 and (s, 7) are older: deleted. */
    ASSERT_EQ(stats.cancelled, 7u);
    store_close(st);
    char *text = load_text(dir);
    ASSERT_STR_EQ(text, "msg 2 t [b]1 q1 r0 x0 o=- p=NULL\n"
                        "session s - - - - e1 x0 p0 b0 w0 d0\n"
                        "delivery s m2 s3 q1 r0 p0 st0 ids\n");
    free(text);
    tmpdir_free(dir);
}

/* ---- group commit ---- */

struct writer {
    struct store *st;
    int base, n;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char topic[32];
    for (int i = 0; i < w->n; i++) {
        uint64_t id = (uint64_t)(w->base + i);
        snprintf(topic, sizeof(topic), "t/%d", w->base + i);
        put_msg(w->st, id, topic, "payload");
        struct store_delivery d = {.msg_id = id, .seq = id, .qos = 1};
        store_delivery_put(w->st, "s", &d);
    }
    return NULL;
}

TEST(group_commit_two_threads)
{
    char *dir = tmpdir_new();
    struct hooked h;
    struct store *st = start_hooked(dir, &h);
    /* A barrier with nothing pending still gets its hook call. */
    uint64_t t0 = store_barrier(st);
    wait_ticket(&h, t0);
    struct writer w[2] = {{st, 1, 20000}, {st, 100001, 20000}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    uint64_t t = store_barrier(st);
    ASSERT(t > t0);
    wait_ticket(&h, t);
    pthread_mutex_lock(&h.lock);
    ASSERT(h.ordered);
    pthread_mutex_unlock(&h.lock);
    ASSERT_EQ(hooked_failed(&h), 0);
    struct store_stats s;
    store_get_stats(st, &s);
    ASSERT_EQ(s.ops, 80000);
    ASSERT(s.commits < s.ops);
    ASSERT(s.commits >= 1);
    ASSERT_EQ(s.syncs, 0); /* not FSYNC mode */
    ASSERT_EQ(s.pending_ops, 0);
    ASSERT(s.bytes > 0);
    ASSERT(s.max_commit_us >= s.last_commit_us);
    printf("group commit: %llu ops in %llu commits\n", (unsigned long long)s.ops,
           (unsigned long long)s.commits);
    store_close(st);
    char path[512];
    db_path(path, sizeof(path), dir);
    ASSERT_EQ(sql_int(path, "SELECT count(*) FROM deliveries"), 40000);
    ASSERT_EQ(sql_int(path, "SELECT count(*) FROM msgs"), 40000);
    tmpdir_free(dir);
}

TEST(fsync_mode_counts_syncs)
{
    char *dir = tmpdir_new();
    char err[256];
    struct store *st = open_mode(dir, STORE_FSYNC, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    ASSERT(st);
    struct hooked h;
    hooked_init(&h);
    store_set_commit_hook(st, hook_fn, &h);
    ASSERT_EQ(store_start(st), 0);
    for (int i = 1; i <= 5; i++) {
        put_msg(st, (uint64_t)i, "t", "x");
        sync_store(st, &h);
    }
    struct store_stats s;
    store_get_stats(st, &s);
    ASSERT_EQ(s.commits, 5);
    ASSERT_EQ(s.syncs, 5);
    store_close(st);
    char path[512];
    db_path(path, sizeof(path), dir);
    /* The header says WAL: bytes 18 and 19 are 2 (docs/persistence.md). */
    uint8_t hdr[20];
    int fd = open(path, O_RDONLY);
    ASSERT(fd >= 0);
    ASSERT_EQ(read(fd, hdr, sizeof(hdr)), (long)sizeof(hdr));
    close(fd);
    ASSERT_EQ(hdr[18], 2);
    ASSERT_EQ(hdr[19], 2);
    tmpdir_free(dir);
}

/* 48 MiB through the store with every message deleted soon after: the
 * checkpoints (in the background, then a short catch-up) let the WAL start
 * again from its beginning, so its file stays well under what went through. */
TEST(wal_restarts_under_load)
{
    char *dir = tmpdir_new();
    struct hooked h;
    struct store *st = start_hooked(dir, &h);
    static uint8_t payload[32768];
    char wal[512];
    snprintf(wal, sizeof(wal), "%s/ward.db-wal", dir);
    for (uint64_t i = 1; i <= 1536; i++) {
        struct store_msg m = {
            .id = i, .topic = "w", .payload = payload, .payload_len = sizeof(payload)};
        store_msg_put(st, &m);
        store_retained_put(st, "w", i);
        if (i > 1)
            store_msg_del(st, i - 1);
        if (i % 8 == 0)
            sync_store(st, &h);
    }
    sync_store(st, &h);
    struct stat sb;
    ASSERT_EQ(stat(wal, &sb), 0);
    printf("wal after 48 MiB: %lld bytes\n", (long long)sb.st_size);
    ASSERT(sb.st_size < (32 << 20));
    ASSERT_EQ(hooked_failed(&h), 0);
    store_close(st);
    ASSERT(stat(wal, &sb) != 0); /* the last close checkpoints and removes it */
    char *text = load_text(dir);
    ASSERT(contains(text, "retained w 1536\n"));
    free(text);
    tmpdir_free(dir);
}

/* ---- kill -9 ---- */

/* The child: appends rows, tells the parent (through the pipe) the highest
 * row whose commit the hook reported, keeps appending and SIGKILLs itself in
 * the middle of commits. */
static void crash_child(const char *dir, int fd, int first, int rounds)
{
    struct hooked h;
    struct store *st = start_hooked(dir, &h);
    char topic[32];
    int row = first;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 50; i++, row++) {
            snprintf(topic, sizeof(topic), "k/%d", row);
            put_msg(st, (uint64_t)row, topic, "v");
            store_retained_put(st, topic, (uint64_t)row);
        }
        wait_ticket(&h, store_barrier(st));
        int confirmed = row - 1;
        if (write(fd, &confirmed, sizeof(confirmed)) != sizeof(confirmed))
            _exit(3);
    }
    /* Unconfirmed appends in flight while the process dies. */
    for (int i = 0; i < 5000; i++, row++) {
        snprintf(topic, sizeof(topic), "k/%d", row);
        put_msg(st, (uint64_t)row, topic, "v");
        store_retained_put(st, topic, (uint64_t)row);
        if (i == 2500)
            (void)!store_barrier(st);
    }
    raise(SIGKILL);
    _exit(4);
}

TEST(kill_9_keeps_committed_rows)
{
    char *dir = tmpdir_new();
    char path[512];
    db_path(path, sizeof(path), dir);
    int first = 1;
    for (int round = 0; round < 3; round++) {
        int p[2];
        ASSERT_EQ(pipe(p), 0);
        fflush(stdout);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(dir, p[1], first, 20);
        }
        close(p[1]);
        int confirmed = 0, v;
        while (read(p[0], &v, sizeof(v)) == sizeof(v))
            confirmed = v;
        close(p[0]);
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        ASSERT_EQ(confirmed, first + 20 * 50 - 1);
        char *text = load_text(dir);
        char line[64];
        for (int i = 1; i <= confirmed; i++) {
            snprintf(line, sizeof(line), "retained k/%d %d\n", i, i);
            if (!contains(text, line))
                TEST_FAIL_("round %d: committed row %d lost", round, i);
        }
        free(text);
        /* Rows are whole: a retained entry never outlives its message. */
        ASSERT_EQ(sql_int(path, "SELECT count(*) FROM retained WHERE msg_id NOT IN "
                                "(SELECT id FROM msgs)"),
                  0);
        first = (int)sql_int(path, "SELECT max(id) FROM msgs") + 1;
        ASSERT(first > confirmed);
    }
    tmpdir_free(dir);
}

/* ---- damaged, foreign and versioned files ---- */

/* A store of a few hundred pages. */
static void make_big_store(const char *dir)
{
    struct store *st = open_ok(dir);
    char payload[600];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = 0;
    char topic[32];
    for (int i = 1; i <= 1500; i++) {
        snprintf(topic, sizeof(topic), "big/%d", i);
        put_msg(st, (uint64_t)i, topic, payload);
        store_retained_put(st, topic, (uint64_t)i);
    }
    store_close(st);
}

/* Opens a damaged DIR: refused with STORE_DAMAGE_REFUSE (the file left as
 * it was), then moved aside by default and a working empty store made. */
static void expect_damaged(const char *dir)
{
    char path[512], err[512] = "";
    db_path(path, sizeof(path), dir);
    struct stat before, after;
    ASSERT_EQ(stat(path, &before), 0);
    struct store *st = open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_REFUSE, err, sizeof(err));
    ASSERT(st == NULL);
    ASSERT(strstr(err, "is damaged"));
    ASSERT(strstr(err, "refusing"));
    ASSERT(strstr(err, path));
    ASSERT_EQ(stat(path, &after), 0);
    ASSERT_EQ(after.st_size, before.st_size);
    ASSERT_EQ(count_files(dir, "ward.db.damaged-"), 0);

    st = open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    if (!st)
        TEST_FAIL_("open after damage: %s", err);
    ASSERT(count_files(dir, "ward.db.damaged-") >= 1);
    put_msg(st, 1, "fresh", "x");
    store_retained_put(st, "fresh", 1);
    store_close(st);
    char *text = load_text(dir);
    ASSERT_STR_EQ(text, "msg 1 fresh [x]1 q1 r0 x0 o=- p=NULL\nretained fresh 1\n");
    free(text);
}

TEST(damaged_truncated)
{
    char *dir = tmpdir_new();
    make_big_store(dir);
    char path[512];
    db_path(path, sizeof(path), dir);
    struct stat sb;
    ASSERT_EQ(stat(path, &sb), 0);
    ASSERT(sb.st_size > 200 * 4096);
    ASSERT_EQ(truncate(path, sb.st_size / 2 + 100), 0);
    expect_damaged(dir);
    tmpdir_free(dir);
}

TEST(damaged_garbage_file)
{
    char *dir = tmpdir_new();
    char path[512];
    db_path(path, sizeof(path), dir);
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    uint32_t x = 12345;
    for (int i = 0; i < 8192; i++) {
        x = x * 1103515245u + 12345u;
        fputc((int)(x >> 16) & 0xff, f);
    }
    fclose(f);
    expect_damaged(dir);
    tmpdir_free(dir);
}

TEST(damaged_page_in_the_middle)
{
    char *dir = tmpdir_new();
    make_big_store(dir);
    char path[512];
    db_path(path, sizeof(path), dir);
    int fd = open(path, O_WRONLY);
    ASSERT(fd >= 0);
    uint8_t page[4096];
    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(i * 7 + 3);
    ASSERT_EQ(pwrite(fd, page, sizeof(page), 100 * 4096), (long)sizeof(page));
    close(fd);
    expect_damaged(dir);
    tmpdir_free(dir);
}

TEST(zero_length_file_is_a_new_store)
{
    char *dir = tmpdir_new();
    char path[512];
    db_path(path, sizeof(path), dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    ASSERT(fd >= 0);
    close(fd);
    char *text = load_text(dir);
    ASSERT_STR_EQ(text, "");
    free(text);
    ASSERT_EQ(count_files(dir, "ward.db.damaged-"), 0);
    tmpdir_free(dir);
}

TEST(newer_schema_refused)
{
    char *dir = tmpdir_new();
    store_close(open_ok(dir));
    char path[512], err[512] = "";
    db_path(path, sizeof(path), dir);
    ASSERT_EQ(sql_exec(path, "PRAGMA user_version=7"), SQLITE_OK);
    for (int dmg = 0; dmg < 2; dmg++) {
        struct store *st =
            open_mode(dir, STORE_PROCESS, 0, (enum store_on_damage)dmg, err, sizeof(err));
        ASSERT(st == NULL);
        ASSERT(strstr(err, "written by a newer ward (schema 7, this ward knows up to 1)"));
    }
    ASSERT_EQ(count_files(dir, "ward.db.damaged-"), 0);
    ASSERT_EQ(sql_int(path, "PRAGMA user_version"), 7);
    tmpdir_free(dir);
}

TEST(foreign_database_refused)
{
    char *dir = tmpdir_new();
    char path[512], err[512] = "";
    db_path(path, sizeof(path), dir);
    ASSERT_EQ(sql_exec(path, "CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT)"), SQLITE_OK);
    struct store *st = open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    ASSERT(st == NULL);
    ASSERT(strstr(err, "not ward's"));
    ASSERT_EQ(sql_int(path, "SELECT count(*) FROM photos"), 0);
    tmpdir_free(dir);
}

/* Version 0, as defined in docs/persistence.md: version 1 without the bridge
 * queue and with user_version left at 0. */
static const char v0_sql[] =
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
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "INSERT INTO msgs VALUES(3,'cfg/x',x'6f6e',1,1,0,NULL,NULL);"
    "INSERT INTO retained VALUES('cfg/x',3);"
    "INSERT INTO sessions(id,owner,protocol) VALUES('old','cn:old',4);"
    "INSERT INTO subs VALUES('old','cfg/#',1,0);";

TEST(older_schema_migrated)
{
    char *dir = tmpdir_new();
    char path[512];
    db_path(path, sizeof(path), dir);
    ASSERT_EQ(sql_exec(path, v0_sql), SQLITE_OK);
    ASSERT_EQ(sql_int(path, "PRAGMA user_version"), 0);
    struct store *st = open_ok(dir);
    struct rec r = {0};
    char err[256];
    ASSERT_EQ(store_load(st, &rec_fns, &r, err, sizeof(err)), 0);
    ASSERT_STR_EQ(r.text, "msg 3 cfg/x [on]2 q1 r1 x0 o=- p=NULL\n"
                          "session old cn:old - - - e0 x0 p4 b0 w0 d0\n"
                          "sub old cfg/# o1 i0\n"
                          "retained cfg/x 3\n");
    free(r.text);
    store_bridge_put(st, "up", 1, 3); /* the table version 1 added */
    store_close(st);
    ASSERT_EQ(sql_int(path, "PRAGMA user_version"), 1);
    ASSERT_EQ(sql_int(path, "SELECT msg_id FROM bridge_queue WHERE bridge='up'"), 3);
    ASSERT_EQ(count_files(dir, "ward.db.damaged-"), 0);
    tmpdir_free(dir);
}

/* ---- bounds and refusals ---- */

TEST(max_size_makes_full)
{
    char *dir = tmpdir_new();
    char err[256];
    struct store *st =
        open_mode(dir, STORE_PROCESS, 256 * 1024, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    ASSERT(st);
    struct hooked h;
    hooked_init(&h);
    store_set_commit_hook(st, hook_fn, &h);
    ASSERT_EQ(store_start(st), 0);
    ASSERT(!store_full(st));
    static uint8_t payload[8192];
    uint64_t beyond = 0; /* messages put after it said full: well past the bound */
    for (uint64_t i = 1; i <= 100 && beyond < 32; i++) {
        beyond += store_full(st);
        struct store_msg m = {
            .id = i, .topic = "big", .payload = payload, .payload_len = sizeof(payload)};
        store_msg_put(st, &m);
        sync_store(st, &h);
    }
    ASSERT(store_full(st));
    struct store_stats s;
    store_get_stats(st, &s);
    ASSERT(s.bytes > 256 * 1024);
    store_close(st);
    /* Reopened, it knows it is full before any commit. */
    st = open_mode(dir, STORE_PROCESS, 256 * 1024, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    ASSERT(st);
    ASSERT(store_full(st));
    store_close(st);
    st = open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err));
    ASSERT(!store_full(st)); /* 0: the 1 GiB default */
    store_close(st);
    tmpdir_free(dir);
}

TEST(open_refusals)
{
    char err[512] = "";
    ASSERT(open_mode("/tmp", STORE_OFF, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "persistence is off"));
    ASSERT(open_mode("", STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
    ASSERT(store_open(NULL, err, sizeof(err)) == NULL);
    store_close(NULL);
    /* A directory that cannot be made: its parent is a file. */
    char *dir = tmpdir_new();
    char file[512], sub[600];
    snprintf(file, sizeof(file), "%s/plain", dir);
    close(open(file, O_WRONLY | O_CREAT, 0600));
    snprintf(sub, sizeof(sub), "%s/data", file);
    ASSERT(open_mode(sub, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "cannot create the store directory"));
    ASSERT(strstr(err, "Not a directory"));
    /* Not root: a directory without write permission (root ignores the
     * mode; the read-only file system below covers it). */
    if (geteuid() != 0) {
        char ro[600];
        snprintf(ro, sizeof(ro), "%s/ro", dir);
        ASSERT_EQ(mkdir(ro, 0500), 0);
        ASSERT(open_mode(ro, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
        ASSERT(strstr(err, "cannot write in the store directory"));
        ASSERT(strstr(err, "Permission denied"));
        rmdir(ro);
    }
    /* One ward per directory. */
    struct store *a = open_ok(dir);
    ASSERT(open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "in use by another ward"));
    store_close(a);
    store_close(open_ok(dir));
    tmpdir_free(dir);
}

/* In a child with its own mount namespace: a small tmpfs fills up (commits
 * fail and the hook is told), a full one refuses a new store, a read-only one
 * too (store_open says why). Skipped where mounting is not permitted. */
static int full_disk_child(void)
{
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return 77;
    char *dir = tmpdir_new();
    if (mount("ward-test", dir, "tmpfs", 0, "size=512k") != 0)
        return 77;
    struct hooked h;
    struct store *st = start_hooked(dir, &h);
    static uint8_t payload[16384];
    uint64_t id = 1;
    for (; id <= 200 && hooked_failed(&h) == 0; id++) {
        struct store_msg m = {
            .id = id, .topic = "fill", .payload = payload, .payload_len = sizeof(payload)};
        store_msg_put(st, &m);
        sync_store(st, &h);
    }
    ASSERT(hooked_failed(&h) > 0);
    struct store_stats s;
    store_get_stats(st, &s);
    ASSERT(s.failures > 0);
    store_close(st);
    ASSERT_EQ(umount(dir), 0);

    ASSERT_EQ(mount("ward-test", dir, "tmpfs", 0, "size=512k"), 0);
    char filler[600], err[512] = "";
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    ASSERT(fd >= 0);
    while (write(fd, payload, sizeof(payload)) > 0)
        ;
    ASSERT_EQ(errno, ENOSPC);
    close(fd);
    ASSERT(open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
    printf("disk full: %s\n", err);
    ASSERT(strstr(err, "full"));
    ASSERT_EQ(umount(dir), 0);

    ASSERT_EQ(mount("ward-test", dir, "tmpfs", 0, "size=512k"), 0);
    store_close(open_ok(dir)); /* a store to find read-only */
    ASSERT_EQ(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    ASSERT(open_mode(dir, STORE_PROCESS, 0, STORE_DAMAGE_MOVE_ASIDE, err, sizeof(err)) == NULL);
    printf("read-only: %s\n", err);
    ASSERT(strstr(err, "Read-only file system"));
    ASSERT_EQ(umount(dir), 0);
    tmpdir_free(dir);
    return 0;
}

TEST(full_and_read_only_disk)
{
    fflush(stdout);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int rc = full_disk_child();
        fflush(stdout);
        _exit(rc);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        printf("full_and_read_only_disk: skipped (no mount namespace here)\n");
    else
        ASSERT_EQ(WEXITSTATUS(status), 0);
}

int main(void)
{
    RUN(round_trip_every_kind);
    RUN(load_order);
    RUN(load_callback_stops_and_null_callbacks_skip);
    RUN(garbage_messages_deleted);
    RUN(next_id_continues_after_load);
    RUN(replace_semantics);
    RUN(moot_puts_not_written);
    RUN(group_commit_two_threads);
    RUN(fsync_mode_counts_syncs);
    RUN(wal_restarts_under_load);
    RUN(kill_9_keeps_committed_rows);
    RUN(damaged_truncated);
    RUN(damaged_garbage_file);
    RUN(damaged_page_in_the_middle);
    RUN(zero_length_file_is_a_new_store);
    RUN(newer_schema_refused);
    RUN(foreign_database_refused);
    RUN(older_schema_migrated);
    RUN(max_size_makes_full);
    RUN(open_refusals);
    RUN(full_and_read_only_disk);
    TEST_DONE();
}
