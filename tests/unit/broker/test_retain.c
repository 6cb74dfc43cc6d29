#include "broker/msg.h"
#include "broker/retain.h"
#include "test.h"

static struct msg *mk(const char *topic, const char *payload)
{
    return msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)payload,
                   (uint32_t)strlen(payload), 0, true, NULL, "o", 0);
}

static void put(struct retain_store *s, const char *topic, const char *payload)
{
    struct msg *m = mk(topic, payload);
    ASSERT_EQ(retain_set(s, m), 0);
    msg_unref(m); /* the store keeps its own reference */
}

struct found {
    char topics[16][32];
    char payloads[16][32];
    int n;
};

static void collect(void *ctx, struct msg *m)
{
    struct found *f = ctx;
    snprintf(f->topics[f->n], 32, "%s", m->topic);
    snprintf(f->payloads[f->n], 32, "%.*s", (int)m->payload_len, m->payload);
    f->n++;
}

static struct found match(struct retain_store *s, const char *filter, uint64_t now)
{
    struct found f = {.n = 0};
    retain_match(s, (const uint8_t *)filter, strlen(filter), now, collect, &f);
    return f;
}

static bool has(const struct found *f, const char *topic)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->topics[i], topic) == 0)
            return true;
    return false;
}

TEST(set_replace_clear)
{
    struct retain_store *s = retain_new();
    put(s, "a/b", "one");
    put(s, "a/b", "two");
    ASSERT_EQ(retain_count(s), 1);
    struct found f = match(s, "a/b", 0);
    ASSERT_EQ(f.n, 1);
    ASSERT_STR_EQ(f.payloads[0], "two");
    put(s, "a/b", ""); /* MQTT-3.3.1-10: an empty payload clears */
    ASSERT_EQ(retain_count(s), 0);
    ASSERT_EQ(match(s, "a/b", 0).n, 0);
    put(s, "never/set", ""); /* clearing nothing is fine */
    ASSERT_EQ(retain_count(s), 0);
    retain_free(s);
}

TEST(wildcards_and_dollar)
{
    struct retain_store *s = retain_new();
    put(s, "sport/tennis/p1", "1");
    put(s, "sport/tennis", "2");
    put(s, "sport/golf/p1", "3");
    put(s, "$SYS/x", "4");
    put(s, "/lead", "5");
    struct found f = match(s, "sport/+/p1", 0);
    ASSERT_EQ(f.n, 2);
    ASSERT(has(&f, "sport/tennis/p1") && has(&f, "sport/golf/p1"));
    f = match(s, "sport/tennis/#", 0);
    ASSERT_EQ(f.n, 2); /* includes the parent level (MQTT-4.7.1-2) */
    f = match(s, "#", 0);
    ASSERT_EQ(f.n, 4); /* not $SYS (MQTT-4.7.2-1) */
    ASSERT(!has(&f, "$SYS/x"));
    f = match(s, "$SYS/#", 0);
    ASSERT_EQ(f.n, 1);
    f = match(s, "+/lead", 0);
    ASSERT_EQ(f.n, 1);
    ASSERT_EQ(match(s, "nothing/here", 0).n, 0);
    retain_free(s);
}

TEST(expired_are_dropped)
{
    struct retain_store *s = retain_new();
    struct mqtt_props p;
    memset(&p, 0, sizeof(p));
    p.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    p.message_expiry = 2;
    struct msg *m =
        msg_new((const uint8_t *)"e", 1, (const uint8_t *)"x", 1, 0, true, &p, "o", 1000);
    retain_set(s, m);
    msg_unref(m);
    ASSERT_EQ(match(s, "e", 2999).n, 1);
    ASSERT_EQ(match(s, "e", 3000).n, 0);
    ASSERT_EQ(retain_count(s), 0);
    retain_free(s);
}

TEST(many_topics)
{
    struct retain_store *s = retain_new();
    char t[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(t, sizeof(t), "fleet/%d/state", i);
        put(s, t, "on");
    }
    ASSERT_EQ(retain_count(s), 5000);
    struct found f = match(s, "fleet/4999/state", 0);
    ASSERT_EQ(f.n, 1);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(t, sizeof(t), "fleet/%d/state", i);
        put(s, t, "");
    }
    ASSERT_EQ(retain_count(s), 2500);
    retain_free(s); /* frees what is left: ASan checks */
}

int main(void)
{
    RUN(set_replace_clear);
    RUN(wildcards_and_dollar);
    RUN(expired_are_dropped);
    RUN(many_topics);
    TEST_DONE();
}
