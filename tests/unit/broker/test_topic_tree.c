#include <time.h>

#include "broker/topic_tree.h"
#include "mqtt/mqtt.h"
#include "test.h"

/* Owners are just distinct addresses. */
static int owners[8];
#define O(i) ((void *)&owners[i])

struct hits {
    void *owner[64];
    uint8_t opts[64];
    uint32_t ids[64];
    const char *group[64];
    int n;
};

static void collect(void *ctx, const struct subtree_sub *s)
{
    struct hits *h = ctx;
    h->owner[h->n] = s->owner;
    h->opts[h->n] = s->options;
    h->ids[h->n] = s->sub_id;
    h->group[h->n] = s->group;
    h->n++;
}

static struct hits match(struct subtree *t, const char *topic)
{
    struct hits h = {.n = 0};
    subtree_match(t, (const uint8_t *)topic, strlen(topic), collect, NULL, &h);
    return h;
}

static int add(struct subtree *t, const char *f, void *owner, uint8_t opts, uint32_t id)
{
    return subtree_add(t, (const uint8_t *)f, strlen(f), owner, opts, id);
}

static int del(struct subtree *t, const char *f, void *owner)
{
    return subtree_remove(t, (const uint8_t *)f, strlen(f), owner);
}

TEST(exact_plus_hash)
{
    struct subtree *t = subtree_new();
    ASSERT_EQ(add(t, "a/b/c", O(0), 0, 0), 1);
    ASSERT_EQ(add(t, "a/+/c", O(1), 1, 0), 1);
    ASSERT_EQ(add(t, "a/#", O(2), 2, 0), 1);
    ASSERT_EQ(add(t, "#", O(3), 0, 0), 1);
    ASSERT_EQ(add(t, "+/+/+", O(4), 0, 0), 1);
    ASSERT_EQ(subtree_count(t), 5);
    ASSERT_EQ(match(t, "a/b/c").n, 5);
    ASSERT_EQ(match(t, "a/x/c").n, 4);
    ASSERT_EQ(match(t, "a").n, 2);     /* a/# matches its parent; # */
    ASSERT_EQ(match(t, "b/x/y").n, 2); /* #, +/+/+ */
    ASSERT_EQ(match(t, "a/b/c/d").n, 2);
    ASSERT_EQ(match(t, "/").n, 1);    /* "#" only: two empty levels */
    ASSERT_EQ(match(t, "a//c").n, 4); /* '+' matches an empty level */
    subtree_free(t);
}

TEST(dollar_topics)
{
    struct subtree *t = subtree_new();
    add(t, "#", O(0), 0, 0);
    add(t, "+/broker/uptime", O(1), 0, 0);
    add(t, "$SYS/#", O(2), 0, 0);
    add(t, "$SYS/+/uptime", O(3), 0, 0);
    struct hits h = match(t, "$SYS/broker/uptime"); /* MQTT-4.7.2-1 */
    ASSERT_EQ(h.n, 2);
    ASSERT(h.owner[0] != O(0) && h.owner[1] != O(0));
    ASSERT_EQ(match(t, "x/broker/uptime").n, 2);
    subtree_free(t);
}

TEST(replace_and_remove)
{
    struct subtree *t = subtree_new();
    ASSERT_EQ(add(t, "a/b", O(0), 0, 7), 1);
    ASSERT_EQ(add(t, "a/b", O(0), 2, 9), 0); /* MQTT-3.8.4-3: replaced */
    struct hits h = match(t, "a/b");
    ASSERT_EQ(h.n, 1);
    ASSERT_EQ(h.opts[0], 2);
    ASSERT_EQ(h.ids[0], 9);
    ASSERT_EQ(del(t, "a/b", O(1)), 0); /* not that owner's */
    ASSERT_EQ(del(t, "a/c", O(0)), 0); /* no such filter */
    ASSERT_EQ(del(t, "a/b", O(0)), 1);
    ASSERT_EQ(del(t, "a/b", O(0)), 0);
    ASSERT_EQ(subtree_count(t), 0);
    ASSERT_EQ(match(t, "a/b").n, 0);
    subtree_free(t);
}

TEST(remove_owner)
{
    struct subtree *t = subtree_new();
    add(t, "a/#", O(0), 0, 0);
    add(t, "b/+", O(0), 0, 0);
    add(t, "$share/g/c", O(0), 0, 0);
    add(t, "a/#", O(1), 0, 0);
    ASSERT_EQ(subtree_remove_owner(t, O(0)), 3);
    ASSERT_EQ(subtree_count(t), 1);
    ASSERT_EQ(match(t, "a/x").n, 1);
    ASSERT_EQ(match(t, "c").n, 0);
    ASSERT_EQ(subtree_remove_owner(t, O(0)), 0);
    subtree_free(t);
}

TEST(shared_round_robin)
{
    struct subtree *t = subtree_new();
    add(t, "$share/g/jobs/+", O(0), 1, 0);
    add(t, "$share/g/jobs/+", O(1), 1, 0);
    add(t, "$share/g/jobs/+", O(2), 1, 0);
    add(t, "$share/other/jobs/+", O(3), 1, 0);
    add(t, "jobs/+", O(4), 0, 0);
    int per[5] = {0};
    for (int i = 0; i < 30; i++) {
        struct hits h = match(t, "jobs/x");
        ASSERT_EQ(h.n, 3); /* one of g, the one of "other", the plain one */
        for (int k = 0; k < h.n; k++)
            per[(int *)h.owner[k] - owners]++;
    }
    ASSERT_EQ(per[0], 10);
    ASSERT_EQ(per[1], 10);
    ASSERT_EQ(per[2], 10);
    ASSERT_EQ(per[3], 30);
    ASSERT_EQ(per[4], 30);
    /* The plain filter is reported without a group, shared ones with. */
    struct hits h = match(t, "jobs/y");
    int grouped = 0;
    for (int k = 0; k < h.n; k++)
        grouped += h.group[k] != NULL;
    ASSERT_EQ(grouped, 2);
    ASSERT_EQ(del(t, "$share/g/jobs/+", O(1)), 1);
    ASSERT_EQ(del(t, "$share/g/jobs/+", O(1)), 0);
    subtree_free(t);
}

static bool only_two(void *ctx, void *owner)
{
    (void)ctx;
    return owner == O(2);
}

TEST(shared_prefers_eligible)
{
    struct subtree *t = subtree_new();
    add(t, "$share/g/t", O(0), 0, 0);
    add(t, "$share/g/t", O(1), 0, 0);
    add(t, "$share/g/t", O(2), 0, 0);
    for (int i = 0; i < 6; i++) {
        struct hits h = {.n = 0};
        subtree_match(t, (const uint8_t *)"t", 1, collect, only_two, &h);
        ASSERT_EQ(h.n, 1);
        ASSERT(h.owner[0] == O(2));
    }
    subtree_free(t);
}

static void count_each(void *ctx, const struct subtree_sub *s)
{
    (void)s;
    ++*(int *)ctx;
}

TEST(each_and_deep_levels)
{
    struct subtree *t = subtree_new();
    char f[1024] = "";
    for (int i = 0; i < 200; i++)
        strcat(f, i ? "/l" : "l");
    ASSERT_EQ(add(t, f, O(0), 0, 0), 1);
    ASSERT_EQ(match(t, f).n, 1);
    add(t, "x", O(1), 0, 0);
    add(t, "$share/g/x", O(2), 0, 0);
    int n = 0;
    subtree_each(t, count_each, &n);
    ASSERT_EQ(n, 3);
    subtree_free(t);
}

struct seen {
    uint64_t plain, shared; /* bit i: filter i matched, unshared / via its group */
};

static int big_owners[64];

static void note(void *ctx, const struct subtree_sub *s)
{
    struct seen *w = ctx;
    size_t i = (size_t)((int *)s->owner - big_owners);
    if (s->group)
        w->shared |= 1ull << (i - 32);
    else
        w->plain |= 1ull << i;
}

/* The tree is an index, not a matcher, but it must answer exactly what the
 * reference matcher answers: the same levels ("a//b", "/a", "a/"), the same
 * '$' rule (MQTT-4.7.2-1), '#' matching its parent (MQTT-4.7.1-2). Every
 * filter is in one tree, plain and shared, so wildcard and literal
 * children of one node are exercised together. */
TEST(agrees_with_mqtt_topic_match)
{
    static const char *const filters[] = {
        "#",   "+",   "+/+",   "+/x",   "$SYS/#", "$SYS/+", "$SYS/x", "$SYS", "a",
        "a/#", "a/+", "a/b",   "a//b",  "a/+/b",  "/a",     "/#",     "+/a",  "a/",
        "/",   "+/#", "a/+/#", "a/b/#", "//",     "+/+/+",  "$x/#",   "/+",   "+/",
    };
    static const char *const topics[] = {
        "$SYS/x", "$SYS",  "$SYS/", "$x/x", "a",     "a/",  "a/b", "a//b", "/a",    "/",
        "//",     "a/b/c", "x",     "b/x",  "a/x/b", "/a/", "a//", "$",    "/$SYS", "a/b/",
    };
    size_t nf = sizeof(filters) / sizeof(filters[0]);
    ASSERT(nf <= 32);
    struct subtree *t = subtree_new();
    for (size_t i = 0; i < nf; i++) {
        char shared[64];
        snprintf(shared, sizeof(shared), "$share/g%zu/%s", i, filters[i]);
        ASSERT_EQ(add(t, filters[i], &big_owners[i], 0, 0), 1);
        ASSERT_EQ(add(t, shared, &big_owners[32 + i], 0, 0), 1);
    }
    size_t hits = 0, misses = 0;
    for (size_t k = 0; k < sizeof(topics) / sizeof(topics[0]); k++) {
        const uint8_t *tp = (const uint8_t *)topics[k];
        struct seen w = {0, 0};
        subtree_match(t, tp, strlen(topics[k]), note, NULL, &w);
        for (size_t i = 0; i < nf; i++) {
            bool want = mqtt_topic_match((const uint8_t *)filters[i], strlen(filters[i]), tp,
                                         strlen(topics[k]));
            bool got = (w.plain >> i) & 1, got_shared = (w.shared >> i) & 1;
            if (got != want || got_shared != want)
                TEST_FAIL_("filter '%s' topic '%s': matcher %d, tree %d, shared %d", filters[i],
                           topics[k], want, got, got_shared);
            hits += want;
            misses += !want;
        }
    }
    /* The table has both answers, and some known ones. */
    ASSERT(hits > 40 && misses > 40);
    struct seen w = {0, 0};
    subtree_match(t, (const uint8_t *)"$SYS/x", 6, note, NULL, &w);
    ASSERT_EQ(w.plain & 1, 0);        /* "#" does not reach $SYS */
    ASSERT_EQ((w.plain >> 3) & 1, 0); /* nor does "+/x" */
    ASSERT_EQ((w.plain >> 4) & 1, 1); /* "$SYS/#" does */
    w = (struct seen){0, 0};
    subtree_match(t, (const uint8_t *)"a", 1, note, NULL, &w);
    ASSERT_EQ((w.plain >> 9) & 1, 1); /* "a/#" matches "a" */
    subtree_free(t);
}

TEST(malformed_share_refused)
{
    struct subtree *t = subtree_new();
    static const char *const bad[] = {"$share/",    "$share/g",  "$share//t",
                                      "$share/+/t", "$share/g/", "$share/g/$share/h/t"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(add(t, bad[i], O(0), 0, 0), -1);
        ASSERT_EQ(del(t, bad[i], O(0)), 0);
    }
    ASSERT_EQ(subtree_count(t), 0);
    /* Never indexed as a literal filter either. */
    ASSERT_EQ(match(t, "$share/g").n, 0);
    ASSERT_EQ(add(t, "$share/g/t", O(1), 0, 0), 1);
    struct hits h = match(t, "t");
    ASSERT_EQ(h.n, 1);
    ASSERT_STR_EQ(h.group[0], "g");
    subtree_free(t);
}

/* Owners for the wide-level cases: one address each. */
#define WIDE_MAX 100000
static char wide_owner[WIDE_MAX];

static int addf(struct subtree *t, const char *pre, size_t i, const char *post, void *owner)
{
    char f[64];
    int n = snprintf(f, sizeof(f), "%s%zu%s", pre, i, post);
    return subtree_add(t, (const uint8_t *)f, (size_t)n, owner, 1, 0);
}

static int delf(struct subtree *t, const char *pre, size_t i, const char *post, void *owner)
{
    char f[64];
    int n = snprintf(f, sizeof(f), "%s%zu%s", pre, i, post);
    return subtree_remove(t, (const uint8_t *)f, (size_t)n, owner);
}

struct one_hit {
    void *owner;
    const char *filter;
    int n;
};

static void note_one(void *ctx, const struct subtree_sub *s)
{
    struct one_hit *h = ctx;
    if (s->filter[0] != 'w' || s->filter[2] == '+' || s->filter[2] == '#')
        return; /* the wildcard subscriptions next to the plain ones */
    h->owner = s->owner;
    h->filter = s->filter;
    h->n++;
}

static struct one_hit matchf(struct subtree *t, const char *pre, size_t i, const char *post)
{
    char f[64];
    int n = snprintf(f, sizeof(f), "%s%zu%s", pre, i, post);
    struct one_hit h = {NULL, NULL, 0};
    subtree_match(t, (const uint8_t *)f, (size_t)n, note_one, NULL, &h);
    return h;
}

static void count_sub(void *ctx, const struct subtree_sub *s)
{
    (void)s;
    (*(size_t *)ctx)++;
}

static size_t each_count(struct subtree *t)
{
    size_t n = 0;
    subtree_each(t, count_sub, &n);
    return n;
}

/* Every plain child below "w" is found, whatever order siblings were added
 * and removed in (the table's probe runs survive removals), and '+' and '#'
 * stay apart from the plain children at the same level. */
TEST(wide_level_add_match_remove)
{
    enum { N = 3000 };
    struct subtree *t = subtree_new();
    ASSERT_EQ(add(t, "w/+/x", O(0), 0, 0), 1);
    ASSERT_EQ(add(t, "w/#", O(1), 0, 0), 1);
    for (size_t i = 0; i < N; i++)
        ASSERT_EQ(addf(t, "w/", i, "/x", &wide_owner[i]), 1);
    ASSERT_EQ(addf(t, "w/", 7, "/x", &wide_owner[7]), 0); /* replaced */
    ASSERT_EQ(subtree_count(t), N + 2);
    ASSERT_EQ(each_count(t), N + 2);
    for (size_t i = 0; i < N; i++) {
        struct one_hit h = matchf(t, "w/", i, "/x");
        ASSERT_EQ(h.n, 1);
        ASSERT(h.owner == &wide_owner[i]);
    }
    ASSERT_EQ(matchf(t, "w/", N, "/x").n, 0);
    ASSERT_EQ(match(t, "w/3/x").n, 3);    /* plain, '+', '#' */
    ASSERT_EQ(match(t, "w/nope/x").n, 2); /* '+', '#' */
    ASSERT_EQ(match(t, "w/+/x").n, 2);    /* a topic's "+" is a plain level: the wildcards only */
    ASSERT_EQ(delf(t, "w/", N + 1, "/x", &wide_owner[0]), 0);
    ASSERT_EQ(delf(t, "w/", 5, "/x", &wide_owner[6]), 0); /* not its owner */
    /* Remove in a scattered order, checking the rest after each step of the
     * shrink (table halves, then short array, then a single child). */
    size_t left = N;
    for (size_t k = 0; k < N; k++) {
        size_t i = (k * 7919) % N; /* 7919 is prime, N is not a multiple */
        ASSERT_EQ(delf(t, "w/", i, "/x", &wide_owner[i]), 1);
        ASSERT_EQ(matchf(t, "w/", i, "/x").n, 0);
        left--;
        if (left == N / 2 || left == 700 || left == 9 || left == 5 || left < 4) {
            size_t found = 0;
            for (size_t j = 0; j < N; j++)
                found += (size_t)matchf(t, "w/", j, "/x").n;
            ASSERT_EQ(found, left);
            ASSERT_EQ(each_count(t), left + 2);
        }
    }
    ASSERT_EQ(subtree_count(t), 2);
    ASSERT_EQ(match(t, "w/3/x").n, 2);
    /* The emptied level takes children again. */
    ASSERT_EQ(addf(t, "w/", 3, "/x", &wide_owner[3]), 1);
    ASSERT_EQ(matchf(t, "w/", 3, "/x").n, 1);
    subtree_free(t);
}

/* Around the short array / table boundary, every size both ways. */
TEST(small_and_table_boundary)
{
    struct subtree *t = subtree_new();
    for (size_t n = 1; n <= 40; n++) {
        for (size_t i = 0; i < n; i++)
            ASSERT_EQ(addf(t, "w/", i, "", &wide_owner[i]), 1);
        for (size_t i = 0; i < n; i++)
            ASSERT_EQ(matchf(t, "w/", i, "").n, 1);
        ASSERT_EQ(each_count(t), n);
        for (size_t i = n; i-- > 0;) { /* newest first, then the rest */
            ASSERT_EQ(delf(t, "w/", i, "", &wide_owner[i]), 1);
            for (size_t j = 0; j < i; j++)
                ASSERT_EQ(matchf(t, "w/", j, "").n, 1);
        }
        ASSERT_EQ(subtree_count(t), 0);
        ASSERT_EQ(each_count(t), 0);
    }
    subtree_free(t);
}

/* Session end across a wide level: emptied children are freed while the
 * level is walked, and none is skipped. */
TEST(wide_remove_owner)
{
    enum { N = 2000 };
    struct subtree *t = subtree_new();
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(addf(t, "w/", i, "", O(1)), 1);
        if (i % 3 == 0)
            ASSERT_EQ(addf(t, "w/", i, "", O(2)), 1);
    }
    ASSERT_EQ(subtree_remove_owner(t, O(1)), N);
    ASSERT_EQ(subtree_count(t), (N + 2) / 3);
    ASSERT_EQ(each_count(t), (N + 2) / 3);
    for (size_t i = 0; i < N; i++) {
        struct one_hit h = matchf(t, "w/", i, "");
        ASSERT_EQ(h.n, i % 3 == 0);
        if (h.n)
            ASSERT(h.owner == O(2));
    }
    ASSERT_EQ(subtree_remove_owner(t, O(2)), (N + 2) / 3);
    ASSERT_EQ(subtree_count(t), 0);
    ASSERT_EQ(each_count(t), 0);
    ASSERT_EQ(matchf(t, "w/", 0, "").n, 0);
    subtree_free(t);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Issue 17's shape: one subscription dev/ID/cmd per client. Prints timings
 * (a measure, not an assertion: this machine is shared) and checks results. */
TEST(many_devices_timing)
{
    struct subtree *t = subtree_new();
    double a = now_s();
    for (size_t i = 0; i < WIDE_MAX; i++)
        ASSERT_EQ(addf(t, "dev/", i, "/cmd", &wide_owner[i]), 1);
    double b = now_s();
    for (size_t i = 0; i < WIDE_MAX; i++) {
        char f[64];
        int n = snprintf(f, sizeof(f), "dev/%zu/cmd", i);
        struct hits h = {.n = 0};
        subtree_match(t, (const uint8_t *)f, (size_t)n, collect, NULL, &h);
        ASSERT_EQ(h.n, 1);
        ASSERT(h.owner[0] == &wide_owner[i]);
    }
    double c = now_s();
    for (size_t i = 0; i < WIDE_MAX; i++)
        ASSERT_EQ(delf(t, "dev/", i, "/cmd", &wide_owner[i]), 1);
    double d = now_s();
    ASSERT_EQ(subtree_count(t), 0);
    printf("  %d filters dev/ID/cmd: insert %.3f s, match %.3f s, remove %.3f s\n", WIDE_MAX, b - a,
           c - b, d - c);
    subtree_free(t);
}

int main(void)
{
    RUN(exact_plus_hash);
    RUN(dollar_topics);
    RUN(replace_and_remove);
    RUN(remove_owner);
    RUN(shared_round_robin);
    RUN(shared_prefers_eligible);
    RUN(each_and_deep_levels);
    RUN(agrees_with_mqtt_topic_match);
    RUN(malformed_share_refused);
    RUN(wide_level_add_match_remove);
    RUN(small_and_table_boundary);
    RUN(wide_remove_owner);
    RUN(many_devices_timing);
    TEST_DONE();
}
