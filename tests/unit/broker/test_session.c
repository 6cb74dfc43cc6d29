#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/internal.h"
#include "core/clock.h"
#include "store/store.h"
#include "test.h"

static struct broker *mkbroker(void)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct broker *b = broker_new(&cfg);
    ASSERT(b);
    return b;
}

TEST(table_find_new_end)
{
    struct broker *b = mkbroker();
    ASSERT(session_find(b, "a") == NULL);
    struct session *a = session_new(b, "a");
    struct session *c = session_new(b, "c");
    ASSERT(session_find(b, "a") == a);
    ASSERT(session_find(b, "c") == c);
    ASSERT_EQ(b->nsessions, 2);
    session_offline_add(b, a);
    session_offline_add(b, a); /* idempotent */
    session_offline_add(b, c);
    ASSERT(b->offline == c);
    session_offline_remove(b, a);
    session_offline_remove(b, a);
    ASSERT(b->offline == c && c->onext == NULL);
    session_end(b, a);
    ASSERT(session_find(b, "a") == NULL);
    ASSERT_EQ(b->nsessions, 1);
    broker_free(b);
}

/* Anonymous sessions share one empty owner instead of an allocation each;
 * a named owner is a copy of its own. Ending either frees what it owns
 * (ASan reports a leak or a bad free otherwise). */
TEST(owner_anonymous_shared_named_copied)
{
    struct broker *b = mkbroker();
    struct session *a = session_new(b, "a"), *c = session_new(b, "c"), *n = session_new(b, "n");
    ASSERT(a->owner == NULL); /* not decided yet */
    ASSERT(session_set_owner(a, ""));
    ASSERT(session_set_owner(c, ""));
    ASSERT_STR_EQ(a->owner, "");
    ASSERT(a->owner == c->owner);
    char name[] = "user:alice";
    ASSERT(session_set_owner(n, name));
    name[0] = 'X'; /* a copy: the caller's buffer may change */
    ASSERT_STR_EQ(n->owner, "user:alice");
    ASSERT(session_set_owner(n, "")); /* the copy is freed */
    ASSERT(n->owner == a->owner);
    ASSERT(session_set_owner(a, "user:bob"));
    ASSERT_STR_EQ(a->owner, "user:bob");
    ASSERT_STR_EQ(c->owner, ""); /* the shared one is untouched */
    session_free_owner(a);
    ASSERT(a->owner == NULL);
    session_end(b, a);
    session_end(b, c);
    broker_free(b);
}

/* A session's queue and in-flight list keep the broker's counts; popping
 * or taking what is not there changes nothing; ending a session takes
 * what it still held off them. */
TEST(session_lists_keep_the_broker_counts)
{
    struct broker *b = mkbroker();
    struct session *s = session_new(b, "counted");
    for (uint16_t i = 1; i <= 3; i++) {
        struct delivery *d = calloc(1, sizeof(*d));
        d->pid = i;
        d->m = msg_new((const uint8_t *)"t", 1, NULL, 0, 1, false, NULL, "o", 0);
        session_queue_add(b, s, d);
    }
    ASSERT_EQ(b->st.queued, 3);
    ASSERT_EQ(b->st.inflight, 0);
    struct delivery *d = session_queue_pop(b, s);
    ASSERT(d && d->pid == 1);
    session_inflight_add(b, s, d);
    ASSERT_EQ(b->st.queued, 2);
    ASSERT_EQ(b->st.inflight, 1);
    ASSERT(session_inflight_take(b, s, 9) == NULL); /* not in flight */
    ASSERT_EQ(b->st.inflight, 1);
    d = session_inflight_take(b, s, 1);
    ASSERT(d && d->pid == 1);
    ASSERT_EQ(b->st.inflight, 0);
    delivery_free(d);
    struct session *e = session_new(b, "empty");
    ASSERT(session_queue_pop(b, e) == NULL);
    ASSERT_EQ(b->st.queued, 2);
    session_end(b, s);
    ASSERT_EQ(b->st.queued, 0);
    broker_free(b);
}

/* subs and sub_opts grow together on one capacity: past several growths
 * every filter still has its own options byte. */
TEST(subscriptions_and_options_grow_together)
{
    struct broker *b = mkbroker();
    struct session *s = session_new(b, "grows");
    char f[32];
    for (int i = 0; i < 100; i++) {
        snprintf(f, sizeof(f), "g/%d", i);
        ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)f, strlen(f), (uint8_t)(i % 3), 0), 1);
    }
    ASSERT_EQ(s->nsubs, 100);
    ASSERT(s->capsubs >= 100);
    for (int i = 0; i < 100; i++) {
        snprintf(f, sizeof(f), "g/%d", i);
        ASSERT_STR_EQ(s->subs[i], f);
        ASSERT_EQ(s->sub_opts[i], i % 3);
    }
    session_end(b, s);
    broker_free(b);
}

TEST(many_sessions_hash)
{
    struct broker *b = mkbroker();
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        ASSERT(session_new(b, id));
    }
    snprintf(id, sizeof(id), "dev-%d", 12345);
    ASSERT(session_find(b, id));
    ASSERT_STR_EQ(session_find(b, id)->id, id);
    ASSERT(session_find(b, "dev-20000") == NULL);
    broker_free(b);
}

TEST(packet_ids)
{
    struct broker *b = mkbroker();
    struct session *s = session_new(b, "p");
    ASSERT_EQ(session_pid_take(s), 1);
    ASSERT_EQ(session_pid_take(s), 2);
    session_pid_release(s, 1);
    /* Ids go on upwards and wrap past 65535 to 1, skipping those in use
     * (MQTT-2.2.1-3: an id in use is not reused); 0 is never an id. */
    uint16_t last = 0;
    for (int i = 0; i < 65533; i++) /* 3 .. 65535 */
        last = session_pid_take(s);
    ASSERT_EQ(last, 65535);
    ASSERT_EQ(session_pid_take(s), 1); /* wrapped around to the released id */
    ASSERT_EQ(session_pid_take(s), 0); /* all 65535 in use: exhausted */
    session_pid_release(s, 40000);
    ASSERT_EQ(session_pid_take(s), 40000);
    broker_free(b);
}

TEST(delivery_lists)
{
    struct broker *b = mkbroker();
    struct delivery_list l = {0};
    for (uint16_t i = 1; i <= 3; i++) {
        struct delivery *d = calloc(1, sizeof(*d));
        d->pid = i;
        d->m = msg_new((const uint8_t *)"t", 1, NULL, 0, 1, false, NULL, "o", 0);
        delivery_append(&l, d);
    }
    ASSERT_EQ(l.count, 3);
    ASSERT(delivery_find(&l, 2) && !delivery_find(&l, 9));
    struct delivery *d = delivery_take(&l, 3); /* the tail */
    ASSERT(d && d->pid == 3 && l.tail->pid == 2);
    delivery_free(d);
    ASSERT(delivery_take(&l, 3) == NULL);
    d = delivery_pop(&l);
    ASSERT(d && d->pid == 1);
    delivery_free(d);
    d = delivery_pop(&l);
    delivery_free(d);
    ASSERT(delivery_pop(&l) == NULL && l.count == 0 && !l.head && !l.tail);
    broker_free(b);
}

TEST(inbound_qos2_ids)
{
    struct broker *b = mkbroker();
    struct session *s = session_new(b, "q");
    ASSERT(!session_rel_has(s, 5));
    for (uint16_t i = 1; i <= 100; i++)
        ASSERT_EQ(session_rel_add(s, i), 0);
    ASSERT(session_rel_has(s, 50));
    ASSERT(session_rel_remove(s, 50));
    ASSERT(!session_rel_remove(s, 50));
    ASSERT(!session_rel_has(s, 50));
    ASSERT_EQ(s->nrel, 99);
    broker_free(b);
}

TEST(identity)
{
    struct broker *b = mkbroker();
    struct session *s = session_new(b, "ident");
    s->username = strdup("alice");
    struct acl_identity id;
    session_identity(s, &id);
    ASSERT_STR_EQ(id.client_id, "ident");
    ASSERT_STR_EQ(id.username, "alice");
    ASSERT(id.cert_cn == NULL);
    /* Without auth everything is allowed. */
    ASSERT(session_allowed(b, s, ACL_PUBLISH, "x", 1));
    broker_free(b);
}

TEST(subscriptions_listed_and_removed_alone)
{
    struct broker *b = mkbroker();
    struct session *big = session_new(b, "big");
    struct session *s = session_new(b, "s");
    char f[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(f, sizeof(f), "big/%d", i);
        ASSERT_EQ(session_subscribe(b, big, (const uint8_t *)f, strlen(f), 1, 0), 1);
    }
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"a/+", 3, 1, 0), 1);
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"a/+", 3, 2, 7), 0); /* replaced */
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"$share/g/a/#", 12, 0, 0), 1);
    ASSERT_EQ(session_subscribe(b, s, (const uint8_t *)"x", 1, 0, 0), 1);
    ASSERT_EQ(s->nsubs, 3);
    ASSERT_EQ(session_unsubscribe(b, s, (const uint8_t *)"x", 1), 1);
    ASSERT_EQ(session_unsubscribe(b, s, (const uint8_t *)"x", 1), 0);
    ASSERT_EQ(session_unsubscribe(b, s, (const uint8_t *)"nope", 4), 0);
    ASSERT_EQ(s->nsubs, 2);
    ASSERT_EQ(subtree_count(b->subs), 5002);
    /* Ending a session costs its own subscriptions, not the tree's. */
    uint64_t before = subtree_visits(b->subs);
    session_end(b, s);
    ASSERT_EQ(subtree_visits(b->subs) - before, 2);
    ASSERT_EQ(subtree_count(b->subs), 5000);
    before = subtree_visits(b->subs);
    session_end(b, big);
    ASSERT_EQ(subtree_visits(b->subs) - before, 5000);
    ASSERT_EQ(subtree_count(b->subs), 0);
    broker_free(b);
}

/* ---- the deadline heap ---------------------------------------------------- */

/* Every parent due no later than its children, every position recorded. */
static void check_heap(const struct broker *b)
{
    const struct session_heap *h = &b->deadlines;
    for (size_t i = 0; i < h->n; i++) {
        ASSERT_EQ(h->v[i]->heap_pos, i + 1);
        ASSERT(h->v[i]->offline_listed);
        if (i > 0)
            ASSERT(h->v[(i - 1) / 2]->deadline <= h->v[i]->deadline);
    }
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

static struct session *offline_with(struct broker *b, const char *id, uint64_t expire_at)
{
    struct session *s = session_new(b, id);
    ASSERT(s);
    s->expiry_s = 60;
    s->expire_at = expire_at;
    session_offline_add(b, s);
    return s;
}

TEST(heap_gives_sessions_in_deadline_order)
{
    struct broker *b = mkbroker();
    char id[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "s-%d", i);
        offline_with(b, id, 1000 + rnd() % 500); /* many equal keys too */
    }
    check_heap(b);
    ASSERT_EQ(b->deadlines.n, 2000);
    ASSERT(session_deadline_due(b, 999) == NULL);
    uint64_t last = 0;
    struct session *s;
    size_t popped = 0;
    while ((s = session_deadline_due(b, UINT64_MAX))) {
        ASSERT(s->deadline >= last);
        last = s->deadline;
        session_end(b, s);
        popped++;
    }
    ASSERT_EQ(popped, 2000);
    ASSERT_EQ(b->deadlines.n, 0);
    broker_free(b);
}

TEST(removal_from_the_middle)
{
    struct broker *b = mkbroker();
    struct session *all[300];
    char id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "m-%d", i);
        all[i] = offline_with(b, id, 5000 + rnd() % 100000);
    }
    /* Back online, ended, taken out twice: each leaves from wherever it is. */
    for (int i = 0; i < 300; i += 3) {
        session_offline_remove(b, all[i]);
        session_offline_remove(b, all[i]);
        ASSERT_EQ(all[i]->heap_pos, 0);
        check_heap(b);
    }
    for (int i = 1; i < 300; i += 3) {
        session_end(b, all[i]);
        check_heap(b);
    }
    ASSERT_EQ(b->deadlines.n, 100);
    ASSERT_EQ(b->noffline, 100);
    /* Offline again: filed again. */
    session_offline_add(b, all[0]);
    ASSERT(all[0]->heap_pos != 0);
    ASSERT_EQ(b->deadlines.n, 101);
    check_heap(b);
    broker_free(b);
}

TEST(no_deadline_no_entry)
{
    struct broker *b = mkbroker();
    /* A 3.1.1 persistent session without a will never needs attention. */
    struct session *s = session_new(b, "forever");
    s->expiry_s = SESSION_NEVER_EXPIRES;
    session_offline_add(b, s);
    ASSERT(s->offline_listed);
    ASSERT_EQ(session_next_deadline(s), 0);
    ASSERT_EQ(b->deadlines.n, 0);
    ASSERT(session_deadline_due(b, UINT64_MAX) == NULL);
    /* Online: refiling takes it nowhere, whatever its times say. */
    struct session *on = session_new(b, "online");
    on->expiry_s = 10;
    on->expire_at = 5;
    session_deadline_update(b, on);
    ASSERT_EQ(on->heap_pos, 0);
    ASSERT_EQ(b->deadlines.n, 0);
    /* An expiry never set (0) is due at once rather than never. */
    on->expire_at = 0;
    session_offline_add(b, on);
    ASSERT(session_deadline_due(b, 1) == on);
    broker_free(b);
}

TEST(will_then_expiry_at_their_times)
{
    struct broker *b = mkbroker();
    struct session *later = offline_with(b, "later", 9000);
    struct session *s = session_new(b, "w");
    s->expiry_s = 5;
    s->expire_at = 5000;
    s->will = msg_new((const uint8_t *)"t", 1, (const uint8_t *)"x", 1, 0, false, NULL, "w", 0);
    ASSERT(s->will);
    s->will_at = 1000;
    session_offline_add(b, s);
    ASSERT_EQ(s->deadline, 1000);
    ASSERT(session_deadline_due(b, 999) == NULL);
    ASSERT(session_deadline_due(b, 1000) == s);
    /* The will went out: next is its expiry. */
    msg_unref(s->will);
    s->will = NULL;
    session_deadline_update(b, s);
    ASSERT_EQ(s->deadline, 5000);
    ASSERT(session_deadline_due(b, 4999) == NULL);
    ASSERT(session_deadline_due(b, 5000) == s);
    /* An expiry moved either way moves it in the heap. */
    s->expire_at = 10000;
    session_deadline_update(b, s);
    ASSERT(session_deadline_due(b, 9000) == later);
    s->expire_at = 2000;
    session_deadline_update(b, s);
    ASSERT(session_deadline_due(b, 9000) == s);
    check_heap(b);
    /* A will pending past the expiry: the expiry comes first. */
    s->will = msg_new((const uint8_t *)"t", 1, (const uint8_t *)"x", 1, 0, false, NULL, "w", 0);
    s->will_at = 3000;
    session_deadline_update(b, s);
    ASSERT_EQ(s->deadline, 2000);
    broker_free(b);
}

/* A session the heap could not take (no memory) is found again by a walk of
 * the offline list on the next look, not lost until it reconnects. */
TEST(missed_insertion_is_refiled)
{
    struct broker *b = mkbroker();
    struct session *in = offline_with(b, "in", 800);
    struct session *s = session_new(b, "lost");
    s->expiry_s = SESSION_NEVER_EXPIRES;
    session_offline_add(b, s);
    ASSERT_EQ(s->heap_pos, 0);
    /* As a failed insertion leaves it: listed, due, not in the heap. */
    s->expiry_s = 10;
    s->expire_at = 500;
    b->deadlines.missed = true;
    ASSERT(session_deadline_due(b, 600) == s);
    ASSERT(!b->deadlines.missed);
    ASSERT_EQ(b->deadlines.n, 2);
    check_heap(b);
    session_end(b, s);
    ASSERT(session_deadline_due(b, 799) == NULL);
    ASSERT(session_deadline_due(b, 800) == in);
    broker_free(b);
}

/* The housekeeping question at 100,000 offline sessions, none due: the
 * walk broker.c made every 100 ms before, and the heap's answer now. */
TEST(many_sessions_cost_per_tick)
{
    struct broker *b = mkbroker();
    char id[32];
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        offline_with(b, id, 1000000 + rnd() % 3600000);
    }
    ASSERT_EQ(b->deadlines.n, N);
    check_heap(b);
    uint64_t now = 999999;
    struct timespec t0, t1, t2;
    size_t due = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int tick = 0; tick < 10; tick++)
        for (struct session *s = b->offline; s; s = s->onext)
            due += (s->will && s->will_at && now >= s->will_at) ||
                   (s->expiry_s != SESSION_NEVER_EXPIRES && now >= s->expire_at);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int tick = 0; tick < 10; tick++)
        due += session_deadline_due(b, now) != NULL;
    clock_gettime(CLOCK_MONOTONIC, &t2);
    ASSERT_EQ(due, 0);
    double walk = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 10;
    double heap = ((double)(t2.tv_sec - t1.tv_sec) * 1e9 + (double)(t2.tv_nsec - t1.tv_nsec)) / 10;
    printf("  %d offline sessions, per tick: list walk %.0f us, heap %.3f us\n", N, walk / 1000,
           heap / 1000);
    /* Half of them due: exactly those come out, earliest first. */
    size_t expect = 0;
    for (struct session *s = b->offline; s; s = s->onext)
        expect += s->expire_at <= 2800000;
    uint64_t last = 0;
    struct session *s;
    while ((s = session_deadline_due(b, 2800000))) {
        ASSERT(s->deadline >= last && s->expire_at <= 2800000);
        last = s->deadline;
        session_end(b, s);
        due++;
    }
    ASSERT_EQ(due, expect);
    ASSERT_EQ(b->deadlines.n, (size_t)N - expect);
    check_heap(b);
    broker_free(b);
}

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    char f[640]; /* a short path plus a d_name (256) */
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') {
            snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
            unlink(f);
        }
    if (d)
        closedir(d);
    rmdir(path);
}

static struct broker *open_stored(const char *dir, struct store **st)
{
    struct broker *b = mkbroker();
    struct store_config sc = {.mode = STORE_PROCESS, .dir = dir};
    char err[256];
    *st = store_open(&sc, err, sizeof(err));
    ASSERT(*st);
    broker_set_store(b, *st);
    ASSERT_EQ(broker_load(b, err, sizeof(err)), 0);
    return b;
}

/* Sessions read from the store at start are filed under their deadlines,
 * or housekeeping would never expire them nor send their wills. */
TEST(sessions_loaded_from_the_store_get_deadlines)
{
    char dir[] = "/tmp/ward-test-session-XXXXXX";
    ASSERT(mkdtemp(dir));
    struct store *st;
    struct broker *b = open_stored(dir, &st);
    struct client c;
    memset(&c, 0, sizeof(c));
    c.b = b;
    c.codec.version = MQTT_V5;
    const char *ids[] = {"expires", "forever", "will"};
    const uint32_t expiry[] = {600, SESSION_NEVER_EXPIRES, 3600};
    for (int i = 0; i < 3; i++) {
        struct session *s = session_new(b, ids[i]);
        ASSERT(s);
        s->owner = strdup("");
        s->expiry_s = expiry[i];
        if (i == 2) {
            s->will = msg_new((const uint8_t *)"w", 1, (const uint8_t *)"x", 1, 1, false, NULL,
                              "will", clock_mono_ms());
            s->will_delay_s = 30;
        }
        s->c = &c; /* online when ward stopped: its times start at the next start */
        persist_connected(b, &c, s);
    }
    store_close(st);
    broker_free(b);

    uint64_t before = clock_mono_ms();
    b = open_stored(dir, &st);
    check_heap(b);
    ASSERT_EQ(b->deadlines.n, 2);
    struct session *e = session_find(b, "expires"), *f = session_find(b, "forever");
    struct session *w = session_find(b, "will");
    ASSERT(e && f && w);
    ASSERT_EQ(f->heap_pos, 0);
    ASSERT(e->heap_pos && e->deadline >= before + 600000 && e->deadline == e->expire_at);
    ASSERT(w->heap_pos && w->will && w->deadline == w->will_at);
    ASSERT(w->will_at >= before + 30000 && w->will_at < before + 600000);
    ASSERT(session_deadline_due(b, clock_mono_ms()) == NULL);
    ASSERT(session_deadline_due(b, w->will_at) == w);
    store_close(st);
    broker_free(b);
    remove_dir(dir);
}

int main(void)
{
    RUN(table_find_new_end);
    RUN(many_sessions_hash);
    RUN(packet_ids);
    RUN(delivery_lists);
    RUN(inbound_qos2_ids);
    RUN(identity);
    RUN(subscriptions_listed_and_removed_alone);
    RUN(heap_gives_sessions_in_deadline_order);
    RUN(removal_from_the_middle);
    RUN(no_deadline_no_entry);
    RUN(will_then_expiry_at_their_times);
    RUN(missed_insertion_is_refiled);
    RUN(many_sessions_cost_per_tick);
    RUN(sessions_loaded_from_the_store_get_deadlines);
    RUN(owner_anonymous_shared_named_copied);
    RUN(session_lists_keep_the_broker_counts);
    RUN(subscriptions_and_options_grow_together);
    TEST_DONE();
}
