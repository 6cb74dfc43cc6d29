#include "broker/internal.h"
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

int main(void)
{
    RUN(table_find_new_end);
    RUN(many_sessions_hash);
    RUN(packet_ids);
    RUN(delivery_lists);
    RUN(inbound_qos2_ids);
    RUN(identity);
    RUN(subscriptions_listed_and_removed_alone);
    TEST_DONE();
}
