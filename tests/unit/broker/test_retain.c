#include "broker/msg.h"
#include "broker/retain.h"
#include "test.h"

static struct msg *mk_at(const char *topic, const char *payload, uint64_t now)
{
    return msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)payload,
                   (uint32_t)strlen(payload), 0, true, NULL, "o", now);
}

/* retain_set's result; the store keeps its own reference. */
static int set(struct retain_store *s, const char *topic, const char *payload)
{
    struct msg *m = mk_at(topic, payload, 0);
    ASSERT(m != NULL);
    int r = retain_set(s, m);
    msg_unref(m);
    return r;
}

static void put(struct retain_store *s, const char *topic, const char *payload)
{
    ASSERT_EQ(set(s, topic, payload), RETAIN_OK);
}

/* A message with a Message Expiry Interval, received at `now`. */
static void put_expiring(struct retain_store *s, const char *topic, uint32_t secs, uint64_t now)
{
    struct mqtt_props p;
    memset(&p, 0, sizeof(p));
    p.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    p.message_expiry = secs;
    struct msg *m = msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)"x",
                            1, 0, true, &p, "o", now);
    ASSERT_EQ(retain_set(s, m), RETAIN_OK);
    msg_unref(m);
}

struct found {
    char topics[16][32];
    char payloads[16][32];
    int n;
};

static void collect(void *ctx, struct msg *m)
{
    struct found *f = ctx;
    if (f->n < 16) {
        snprintf(f->topics[f->n], 32, "%s", m->topic);
        snprintf(f->payloads[f->n], 32, "%.*s", (int)m->payload_len, m->payload);
    }
    f->n++;
}

static struct found match(struct retain_store *s, const char *filter, uint64_t now)
{
    struct found f = {.n = 0};
    retain_match(s, (const uint8_t *)filter, strlen(filter), now, collect, &f);
    return f;
}

static int nmatch(struct retain_store *s, const char *filter)
{
    return match(s, filter, 0).n;
}

static bool has(const struct found *f, const char *topic)
{
    for (int i = 0; i < f->n && i < 16; i++)
        if (strcmp(f->topics[i], topic) == 0)
            return true;
    return false;
}

TEST(set_replace_clear)
{
    struct retain_store *s = retain_new(0, 0);
    put(s, "a/b", "one");
    put(s, "a/b", "two");
    ASSERT_EQ(retain_count(s), 1);
    ASSERT_EQ(retain_bytes(s), 3 + 3);
    struct found f = match(s, "a/b", 0);
    ASSERT_EQ(f.n, 1);
    ASSERT_STR_EQ(f.payloads[0], "two");
    ASSERT_EQ(nmatch(s, "a"), 0); /* an inner level holds nothing of its own */
    put(s, "a/b", "");            /* MQTT-3.3.1-10: an empty payload clears */
    ASSERT_EQ(retain_count(s), 0);
    ASSERT_EQ(retain_bytes(s), 0);
    ASSERT_EQ(nmatch(s, "a/b"), 0);
    ASSERT_EQ(nmatch(s, "#"), 0);
    put(s, "never/set", ""); /* clearing nothing is fine */
    put(s, "a", "");         /* nor is clearing an inner level that was pruned */
    ASSERT_EQ(retain_count(s), 0);
    retain_free(s);
}

TEST(inner_and_leaf_levels)
{
    struct retain_store *s = retain_new(0, 0);
    put(s, "a", "1");
    put(s, "a/b", "2");
    put(s, "a/b/c", "3");
    put(s, "a/b", ""); /* clearing an inner level keeps what is below it */
    ASSERT_EQ(retain_count(s), 2);
    ASSERT_EQ(nmatch(s, "a/b/c"), 1);
    ASSERT_EQ(nmatch(s, "a"), 1);
    ASSERT_EQ(nmatch(s, "a/#"), 2);
    put(s, "a/b/c", "");
    put(s, "a", "");
    ASSERT_EQ(nmatch(s, "#"), 0);
    put(s, "a/b", "again"); /* pruned nodes are made again */
    ASSERT_EQ(nmatch(s, "a/+"), 1);
    retain_free(s);
}

TEST(wildcards_and_dollar)
{
    struct retain_store *s = retain_new(0, 0);
    put(s, "sport/tennis/p1", "1");
    put(s, "sport/tennis", "2");
    put(s, "sport/golf/p1", "3");
    put(s, "$SYS/x", "4");
    put(s, "/lead", "5");
    put(s, "$app/y", "6");
    struct found f = match(s, "sport/+/p1", 0);
    ASSERT_EQ(f.n, 2);
    ASSERT(has(&f, "sport/tennis/p1") && has(&f, "sport/golf/p1"));
    f = match(s, "sport/tennis/#", 0);
    ASSERT_EQ(f.n, 2); /* includes the parent level (MQTT-4.7.1-2) */
    ASSERT(has(&f, "sport/tennis") && has(&f, "sport/tennis/p1"));
    f = match(s, "#", 0);
    ASSERT_EQ(f.n, 4); /* not the '$' topics (MQTT-4.7.2-1) */
    ASSERT(!has(&f, "$SYS/x") && !has(&f, "$app/y"));
    ASSERT_EQ(nmatch(s, "+/x"), 0);
    ASSERT_EQ(nmatch(s, "+/#"), 4);
    ASSERT_EQ(nmatch(s, "$SYS/#"), 1);
    ASSERT_EQ(nmatch(s, "$SYS/+"), 1);
    ASSERT_EQ(nmatch(s, "$app/y"), 1);
    ASSERT_EQ(nmatch(s, "+/lead"), 1);
    ASSERT_EQ(nmatch(s, "sport/+"), 1);
    ASSERT_EQ(nmatch(s, "sport/+/+"), 2);
    ASSERT_EQ(nmatch(s, "sport/+/+/+"), 0);
    ASSERT_EQ(nmatch(s, "sport"), 0);
    ASSERT_EQ(nmatch(s, "sport/tennis/p1/#"), 1);
    ASSERT_EQ(nmatch(s, "nothing/here"), 0);
    ASSERT_EQ(nmatch(s, "sport/tennis/p"), 0); /* levels compare whole */
    retain_free(s);
}

TEST(empty_levels_are_levels)
{
    struct retain_store *s = retain_new(0, 0);
    put(s, "a//b", "1");
    put(s, "a/b", "2");
    put(s, "/a", "3");
    put(s, "a/", "4");
    put(s, "/", "5");
    ASSERT_EQ(retain_count(s), 5);
    struct found f = match(s, "a//b", 0);
    ASSERT_EQ(f.n, 1);
    ASSERT_STR_EQ(f.payloads[0], "1");
    f = match(s, "a/+/b", 0);
    ASSERT_EQ(f.n, 1);
    ASSERT_STR_EQ(f.topics[0], "a//b");
    f = match(s, "a/+", 0);
    ASSERT_EQ(f.n, 2);
    ASSERT(has(&f, "a/b") && has(&f, "a/"));
    f = match(s, "a/", 0);
    ASSERT_EQ(f.n, 1);
    ASSERT_STR_EQ(f.payloads[0], "4");
    ASSERT_EQ(nmatch(s, "a"), 0);
    ASSERT_EQ(nmatch(s, "+/a"), 1);
    ASSERT_EQ(nmatch(s, "+/+"), 4); /* "a/b", "/a", "a/", "/" */
    ASSERT_EQ(nmatch(s, "/#"), 2);
    ASSERT_EQ(nmatch(s, "/"), 1);
    ASSERT_EQ(nmatch(s, "+"), 0);
    put(s, "a//b", "");
    ASSERT_EQ(nmatch(s, "a/+/b"), 0);
    ASSERT_EQ(nmatch(s, "a/+"), 2); /* its sibling "a/" is untouched */
    retain_free(s);
}

TEST(expired_are_dropped)
{
    struct retain_store *s = retain_new(0, 0);
    put_expiring(s, "e", 2, 1000);
    put_expiring(s, "d/e", 2, 1000);
    put(s, "d/f", "kept");
    ASSERT_EQ(match(s, "e", 2999).n, 1);
    ASSERT_EQ(match(s, "e", 3000).n, 0); /* MQTT-3.3.2-5 */
    ASSERT_EQ(retain_count(s), 2);
    struct found f = match(s, "#", 3000); /* met through a wildcard too */
    ASSERT_EQ(f.n, 1);
    ASSERT_STR_EQ(f.topics[0], "d/f");
    ASSERT_EQ(retain_count(s), 1);
    ASSERT_EQ(retain_bytes(s), 3 + 4);
    ASSERT_EQ(match(s, "d/+", 3000).n, 1);
    retain_free(s);
}

TEST(expired_in_deep_subtree)
{
    /* Every node under "x" goes while "#" walks it: the walk must not use
     * a node it freed. */
    struct retain_store *s = retain_new(0, 0);
    put_expiring(s, "x/1/a/b", 1, 0);
    put_expiring(s, "x/1/a", 1, 0);
    put_expiring(s, "x/2", 1, 0);
    put_expiring(s, "x/3/c", 1, 0);
    put_expiring(s, "x", 1, 0);
    ASSERT_EQ(match(s, "x/#", 5000).n, 0);
    ASSERT_EQ(retain_count(s), 0);
    uint64_t v = retain_visits(s);
    ASSERT_EQ(match(s, "#", 5000).n, 0);
    ASSERT_EQ(retain_visits(s) - v, 1); /* nothing left: the root alone */
    retain_free(s);
}

TEST(message_limit)
{
    struct retain_store *s = retain_new(3, 0);
    put(s, "t/1", "a");
    put(s, "t/2", "a");
    put(s, "t/3", "a");
    ASSERT_EQ(set(s, "t/4", "a"), RETAIN_FULL);
    ASSERT_EQ(set(s, "t/5/deeper", "a"), RETAIN_FULL);
    ASSERT_EQ(retain_count(s), 3);
    ASSERT_EQ(nmatch(s, "t/4"), 0);
    ASSERT_EQ(nmatch(s, "#"), 3);
    put(s, "t/2", "replaced"); /* a replacement is not one more */
    ASSERT_EQ(match(s, "t/2", 0).payloads[0][0], 'r');
    put(s, "t/1", ""); /* clearing makes room */
    put(s, "t/4", "a");
    ASSERT_EQ(set(s, "t/6", "a"), RETAIN_FULL);
    ASSERT_EQ(nmatch(s, "t/+"), 3);
    retain_free(s);
}

TEST(byte_limit)
{
    /* "t/1" + "abcd" is 7 bytes. */
    struct retain_store *s = retain_new(0, 16);
    put(s, "t/1", "abcd");
    put(s, "t/2", "abcd");
    ASSERT_EQ(retain_bytes(s), 14);
    ASSERT_EQ(set(s, "t/3", "a"), RETAIN_FULL); /* 18 > 16 */
    ASSERT_EQ(retain_count(s), 2);
    put(s, "t/2", "abcdef"); /* a replacement within the limit: 16 */
    ASSERT_EQ(retain_bytes(s), 16);
    ASSERT_STR_EQ(match(s, "t/2", 0).payloads[0], "abcdef");
    put(s, "t/2", "ab"); /* a smaller one */
    ASSERT_EQ(retain_bytes(s), 12);
    /* A replacement that does not fit removes the old message: it is no
     * longer the latest for its topic. */
    ASSERT_EQ(set(s, "t/2", "abcdefghij"), RETAIN_FULL);
    ASSERT_EQ(nmatch(s, "t/2"), 0);
    ASSERT_EQ(retain_count(s), 1);
    ASSERT_EQ(retain_bytes(s), 7);
    put(s, "t/3", "abcdef"); /* exactly 16 fits */
    ASSERT_EQ(retain_bytes(s), 16);
    ASSERT_EQ(set(s, "t/3", "abcdefg"), RETAIN_FULL); /* one byte over */
    retain_free(s);
}

TEST(properties_count_as_bytes)
{
    struct retain_store *s = retain_new(0, 20);
    struct mqtt_props p;
    memset(&p, 0, sizeof(p));
    p.present = MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
    p.content_type = (struct mqtt_str){(const uint8_t *)"text/plain", 10};
    struct msg *m =
        msg_new((const uint8_t *)"t", 1, (const uint8_t *)"12345", 5, 0, true, &p, "o", 0);
    ASSERT_EQ(retain_set(s, m), RETAIN_OK);
    ASSERT_EQ(retain_bytes(s), 1 + 5 + 10);
    msg_unref(m);
    ASSERT_EQ(set(s, "u", "12345"), RETAIN_FULL); /* 16 + 6 > 20 */
    retain_free(s);
}

TEST(sys_is_not_limited)
{
    struct retain_store *s = retain_new(1, 0);
    put(s, "$SYS/broker/uptime", "1");
    put(s, "$SYS/broker/version", "ward");
    put(s, "a", "1"); /* $SYS does not take the one place */
    ASSERT_EQ(set(s, "b", "1"), RETAIN_FULL);
    ASSERT_EQ(set(s, "$SYSTEM", "1"), RETAIN_FULL); /* only the $SYS level itself */
    put(s, "$SYS/more", "1");                       /* still stored when full */
    ASSERT_EQ(retain_count(s), 4);
    retain_free(s);
}

TEST(full_store_sweeps_expired)
{
    struct retain_store *s = retain_new(2, 0);
    put_expiring(s, "old/1", 1, 0);
    put(s, "keep", "1");
    struct msg *m = mk_at("new", "1", 500); /* "old/1" lives until 1000 */
    ASSERT_EQ(retain_set(s, m), RETAIN_FULL);
    msg_unref(m);
    /* Expired at 1000, but the sweep at 500 was the last one for a second. */
    m = mk_at("new", "1", 1200);
    ASSERT_EQ(retain_set(s, m), RETAIN_FULL);
    msg_unref(m);
    m = mk_at("new", "1", 1500);
    ASSERT_EQ(retain_set(s, m), RETAIN_OK);
    msg_unref(m);
    ASSERT_EQ(retain_count(s), 2);
    ASSERT_EQ(nmatch(s, "old/#"), 0);
    ASSERT_EQ(nmatch(s, "new"), 1);
    retain_free(s);
}

TEST(visits_follow_the_filter)
{
    struct retain_store *s = retain_new(0, 0);
    char t[32];
    for (int i = 0; i < 40000; i++) {
        snprintf(t, sizeof(t), "dev/%d/state", i);
        put(s, t, "on");
    }
    put(s, "other/1", "x");
    ASSERT_EQ(retain_count(s), 40001);
    uint64_t v = retain_visits(s);
    ASSERT_EQ(nmatch(s, "dev/17/state"), 1);
    uint64_t literal = retain_visits(s) - v;
    ASSERT(literal >= 3 && literal <= 5);
    v = retain_visits(s);
    ASSERT_EQ(nmatch(s, "dev/+/state"), 40000);
    uint64_t plus = retain_visits(s) - v;
    ASSERT(plus >= 40000 && plus <= 2 * 40000 + 5); /* each child and its "state" */
    v = retain_visits(s);
    ASSERT_EQ(nmatch(s, "x/#"), 0);
    ASSERT(retain_visits(s) - v <= 2);
    v = retain_visits(s);
    ASSERT_EQ(nmatch(s, "dev/17/#"), 1);
    ASSERT(retain_visits(s) - v <= 5);
    v = retain_visits(s);
    ASSERT_EQ(nmatch(s, "dev/17/nothing"), 0);
    ASSERT(retain_visits(s) - v <= 5);
    /* A thousand literal filters cost a thousand times a literal one. */
    v = retain_visits(s);
    for (int i = 0; i < 1000; i++) {
        snprintf(t, sizeof(t), "dev/%d/state", i * 37);
        ASSERT_EQ(nmatch(s, t), 1);
    }
    ASSERT(retain_visits(s) - v <= 1000 * 5);
    retain_free(s);
}

TEST(many_topics_cleared)
{
    struct retain_store *s = retain_new(0, 0);
    char t[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(t, sizeof(t), "fleet/%d/state", i);
        put(s, t, "on");
    }
    ASSERT_EQ(retain_count(s), 5000);
    ASSERT_EQ(nmatch(s, "fleet/4999/state"), 1);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(t, sizeof(t), "fleet/%d/state", i);
        put(s, t, "");
    }
    ASSERT_EQ(retain_count(s), 2500);
    ASSERT_EQ(nmatch(s, "fleet/+/state"), 2500);
    ASSERT_EQ(nmatch(s, "fleet/4998/state"), 0);
    ASSERT_EQ(nmatch(s, "fleet/4999/state"), 1);
    /* Pruned: a '+' over the level meets only the 2500 children left. */
    uint64_t v = retain_visits(s);
    ASSERT_EQ(nmatch(s, "fleet/+"), 0);
    ASSERT(retain_visits(s) - v <= 2500 + 3);
    retain_free(s); /* frees what is left: ASan checks */
}

int main(void)
{
    RUN(set_replace_clear);
    RUN(inner_and_leaf_levels);
    RUN(wildcards_and_dollar);
    RUN(empty_levels_are_levels);
    RUN(expired_are_dropped);
    RUN(expired_in_deep_subtree);
    RUN(message_limit);
    RUN(byte_limit);
    RUN(properties_count_as_bytes);
    RUN(sys_is_not_limited);
    RUN(full_store_sweeps_expired);
    RUN(visits_follow_the_filter);
    RUN(many_topics_cleared);
    TEST_DONE();
}
