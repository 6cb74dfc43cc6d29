/* The store alone, without a broker: how many operations per second it
 * commits, in how many commits, in each durable mode.
 *
 * Build (after the usual cmake build, which makes the two libraries):
 *   cc -O2 -Isrc bench/store_bench.c build/libward_store.a build/libward_core.a \
 *      -lsqlite3 -lpthread -o build/store_bench
 * Run: build/store_bench [SECONDS per case, 3] [DIR, a fresh folder under /tmp]
 *      [MODE: process or fsync, both if absent]
 * or:  build/store_bench restart [RETAINED, 1000000] [QUEUED, 100000]
 *      stores that many retained messages and queued deliveries (100 offline
 *      sessions), closes, and times the open (which checks the file) and the
 *      load a restart does.
 *
 * Two cases per mode:
 * - flood: one thread appends a QoS 1 message's life as fast as it can (the
 *   message, its delivery to a session, and once "acknowledged" the delivery's
 *   and the message's deletes: four operations), waiting only when more than
 *   64k operations are pending. It measures what the store thread can apply.
 * - acked: 4 publisher threads, each with a window of 64 messages in flight;
 *   a window's messages are "acknowledged" (deleted) only once the commit
 *   hook reported the barrier taken after them, as the broker does before it
 *   sends PUBACK. It measures messages/s when every one waits for its commit.
 * - queue: as acked, but nothing is acknowledged: the subscribers are
 *   offline, their queues and the file grow, and checkpoints get bigger (their
 *   cost shows in the slowest commit).
 * - single: as acked with a window of one message: every message waits for
 *   its own commit, or shares it with the other 3 publishers' (the commit
 *   rate, and in FSYNC mode the fdatasync rate, at its ceiling).
 * Prints ops/s, messages/s, commits/s, messages per commit, syncs/s (FSYNC:
 * one fdatasync per commit; check with strace -c -f -e fdatasync) and the
 * slowest commit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t committed;
    uint64_t failed;
};

static void hook(void *ctx, uint64_t ticket, bool ok)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->committed = ticket;
    w->failed += !ok;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void wait_for(struct waiter *w, uint64_t ticket)
{
    pthread_mutex_lock(&w->lock);
    while (w->committed < ticket)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench {
    struct store *st;
    struct waiter w;
    double until;
    int window;
    bool keep; /* nothing acknowledged */
    uint64_t msgs[8];
};

static const uint8_t payload[64] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";

static void put_one(struct store *st, const char *session, uint64_t id)
{
    struct store_msg m = {.id = id,
                          .topic = "bench/topic/1",
                          .payload = payload,
                          .payload_len = sizeof(payload),
                          .qos = 1,
                          .origin = "bench"};
    store_msg_put(st, &m);
    uint32_t sub_id = 1;
    struct store_delivery d = {.msg_id = id, .seq = id, .qos = 1, .sub_ids = &sub_id, .nsub = 1};
    store_delivery_put(st, session, &d);
}

static void ack_one(struct store *st, const char *session, uint64_t id)
{
    store_delivery_del(st, session, id);
    store_msg_del(st, id);
}

static void run_flood(struct bench *b)
{
    uint64_t prev = 0;
    while (now_s() < b->until) {
        for (int i = 0; i < 1024; i++) {
            uint64_t id = store_next_id(b->st);
            put_one(b->st, "flood", id);
            if (prev)
                ack_one(b->st, "flood", prev);
            prev = id;
            b->msgs[0]++;
        }
        struct store_stats s;
        store_get_stats(b->st, &s);
        if (s.pending_ops > 65536)
            wait_for(&b->w, store_barrier(b->st));
    }
}

struct pub {
    struct bench *b;
    int n;
};

static void *run_pub(void *arg)
{
    struct pub *p = arg;
    char session[32];
    snprintf(session, sizeof(session), "sub-%d", p->n);
    uint64_t ids[1024], prev[1024];
    int nprev = 0;
    while (now_s() < p->b->until) {
        for (int i = 0; i < p->b->window; i++) {
            ids[i] = store_next_id(p->b->st);
            put_one(p->b->st, session, ids[i]);
        }
        /* The previous window was delivered and acknowledged meanwhile. */
        for (int i = 0; i < nprev && !p->b->keep; i++)
            ack_one(p->b->st, session, prev[i]);
        wait_for(&p->b->w, store_barrier(p->b->st));
        memcpy(prev, ids, sizeof(uint64_t) * (size_t)p->b->window);
        nprev = p->b->window;
        p->b->msgs[p->n] += (uint64_t)p->b->window;
    }
    return NULL;
}

static int run_case(const char *dir, enum store_mode mode, const char *name, double secs)
{
    char err[512];
    struct store_config cfg = {.mode = mode, .dir = dir};
    struct bench b = {.window = strcmp(name, "single") == 0 ? 1 : 64,
                      .keep = strcmp(name, "queue") == 0};
    b.st = store_open(&cfg, err, sizeof(err));
    if (!b.st) {
        fprintf(stderr, "store_bench: %s\n", err);
        return -1;
    }
    pthread_mutex_init(&b.w.lock, NULL);
    pthread_cond_init(&b.w.cond, NULL);
    store_set_commit_hook(b.st, hook, &b.w);
    struct store_load_fns none = {0};
    if (store_load(b.st, &none, NULL, err, sizeof(err)) != 0 || store_start(b.st) != 0) {
        fprintf(stderr, "store_bench: %s\n", err);
        store_close(b.st);
        return -1;
    }
    double t0 = now_s();
    b.until = t0 + secs;
    int npub = strcmp(name, "flood") == 0 ? 0 : 4;
    if (npub == 0) {
        run_flood(&b);
    } else {
        pthread_t th[4];
        struct pub p[4];
        for (int i = 0; i < npub; i++) {
            p[i] = (struct pub){&b, i};
            if (pthread_create(&th[i], NULL, run_pub, &p[i]) != 0)
                return -1;
        }
        for (int i = 0; i < npub; i++)
            pthread_join(th[i], NULL);
    }
    wait_for(&b.w, store_barrier(b.st));
    double took = now_s() - t0;
    struct store_stats s;
    store_get_stats(b.st, &s);
    uint64_t msgs = 0;
    for (int i = 0; i < 8; i++)
        msgs += b.msgs[i];
    printf("| %-7s | %-6s | %10.0f | %10.0f | %9.0f | %9.1f | %8.0f | %8.1f | %llu |\n",
           mode == STORE_FSYNC ? "fsync" : "process", name, (double)s.ops / took,
           (double)msgs / took, (double)s.commits / took,
           s.commits ? (double)msgs / (double)s.commits : 0.0, (double)s.syncs / took,
           (double)s.max_commit_us / 1000.0, (unsigned long long)b.w.failed);
    store_close(b.st);
    return 0;
}

struct counts {
    uint64_t rows;
};

static int count_msg(void *ctx, const struct store_msg *m)
{
    ((struct counts *)ctx)->rows++;
    return 0;
}

static int count_delivery(void *ctx, const char *sid, const struct store_delivery *d)
{
    ((struct counts *)ctx)->rows++;
    return 0;
}

static int count_retained(void *ctx, const char *topic, uint64_t msg_id)
{
    ((struct counts *)ctx)->rows++;
    return 0;
}

static void fill(struct store *st, struct waiter *w, uint64_t retained, uint64_t queued)
{
    char topic[64], session[32];
    for (uint64_t i = 0; i < retained + queued; i++) {
        uint64_t id = store_next_id(st);
        if (i < retained) {
            snprintf(topic, sizeof(topic), "devices/%llu/config", (unsigned long long)i);
            struct store_msg m = {.id = id,
                                  .topic = topic,
                                  .payload = payload,
                                  .payload_len = sizeof(payload),
                                  .qos = 1,
                                  .retain = true};
            store_msg_put(st, &m);
            store_retained_put(st, topic, id);
        } else {
            snprintf(session, sizeof(session), "offline-%llu", (unsigned long long)(i % 100));
            put_one(st, session, id);
        }
        if (i % 4096 == 0) {
            struct store_stats s;
            store_get_stats(st, &s);
            if (s.pending_ops > 65536)
                wait_for(w, store_barrier(st));
        }
    }
    wait_for(w, store_barrier(st));
}

static int run_restart(uint64_t retained, uint64_t queued)
{
    char tmpl[] = "/tmp/ward-store-bench-XXXXXX", err[512];
    const char *dir = mkdtemp(tmpl);
    struct store_config cfg = {.mode = STORE_PROCESS, .dir = dir};
    struct store *st = dir ? store_open(&cfg, err, sizeof(err)) : NULL;
    struct store_load_fns none = {0};
    struct waiter w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    if (!st || store_load(st, &none, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_bench: %s\n", dir ? err : "mkdtemp failed");
        return 1;
    }
    store_set_commit_hook(st, hook, &w);
    if (store_start(st) != 0)
        return 1;
    double t0 = now_s();
    fill(st, &w, retained, queued);
    double wrote = now_s() - t0;
    store_close(st);
    t0 = now_s();
    st = store_open(&cfg, err, sizeof(err));
    double opened = now_s() - t0;
    struct counts c = {0};
    struct store_load_fns fns = {
        .msg = count_msg, .delivery = count_delivery, .retained = count_retained};
    if (!st || store_load(st, &fns, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_bench: %s\n", err);
        return 1;
    }
    double loaded = now_s() - t0 - opened;
    struct store_stats s;
    store_get_stats(st, &s);
    store_close(st);
    printf("%llu retained + %llu queued: written in %.1f s; file %.0f MiB; open (with "
           "quick_check) %.2f s; load %.2f s (%llu rows: messages, deliveries, retained)\n",
           (unsigned long long)retained, (unsigned long long)queued, wrote,
           (double)s.bytes / 1048576.0, opened, loaded, (unsigned long long)c.rows);
    printf("(files left in %s)\n", dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "restart") == 0)
        return run_restart(argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000,
                           argc > 3 ? strtoull(argv[3], NULL, 10) : 100000);
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    char tmpl[] = "/tmp/ward-store-bench-XXXXXX";
    const char *base = argc > 2 && argv[2][0] ? argv[2] : mkdtemp(tmpl);
    if (!base || secs <= 0) {
        fprintf(stderr, "usage: store_bench [SECONDS] [DIR]\n");
        return 2;
    }
    printf("| mode    | case   |      ops/s |     msgs/s | commits/s | msgs/commit | syncs/s | "
           "max commit ms | failed |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    static const char *cases[] = {"flood", "acked", "queue", "single"};
    static const enum store_mode modes[] = {STORE_PROCESS, STORE_FSYNC};
    int rc = 0;
    const char *only = argc > 3 ? argv[3] : NULL;
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < 4; c++) {
            if (only && strcmp(only, modes[m] == STORE_FSYNC ? "fsync" : "process") != 0)
                continue;
            char dir[512];
            snprintf(dir, sizeof(dir), "%s/%d%d", base, m, c);
            rc |= run_case(dir, modes[m], cases[c], secs);
        }
    printf("(files left in %s)\n", base);
    return rc ? 1 : 0;
}
