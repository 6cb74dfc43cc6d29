/* Routing through offline sessions: what route_publish decides (who gets a
 * message, at which QoS, with which identifiers, queue bounds) is visible in
 * the sessions' queues without any network. */
#include "broker/internal.h"
#include "test.h"

static struct broker *mkbroker(uint32_t max_queued)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    cfg.max_queued = max_queued;
    struct broker *b = broker_new(&cfg);
    ASSERT(b);
    return b;
}

static void sub(struct broker *b, struct session *s, const char *f, uint8_t opts, uint32_t id)
{
    ASSERT(session_subscribe(b, s, (const uint8_t *)f, strlen(f), opts, id) >= 0);
}

static struct msg *mk(const char *topic, uint8_t qos, bool retain)
{
    return msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)"p", 1, qos,
                   retain, NULL, "o", 0);
}

static void publish(struct broker *b, const char *topic, uint8_t qos, bool retain,
                    struct session *from)
{
    struct msg *m = mk(topic, qos, retain);
    route_publish(b, m, from);
    msg_unref(m);
}

TEST(overlap_merged_max_qos_all_ids)
{
    struct broker *b = mkbroker(100);
    struct session *s = session_new(b, "s");
    sub(b, s, "a/#", 1, 11);
    sub(b, s, "a/+", 2, 22);
    sub(b, s, "a/b", 0, 0);
    publish(b, "a/b", 2, false, NULL);
    ASSERT_EQ(s->queue.count, 1); /* one copy (MQTT-3.3.4-2) */
    struct delivery *d = s->queue.head;
    ASSERT_EQ(d->qos, 2);
    ASSERT_EQ(d->nsub, 2);
    ASSERT((d->sub_ids[0] == 11 && d->sub_ids[1] == 22) ||
           (d->sub_ids[0] == 22 && d->sub_ids[1] == 11));
    broker_free(b);
}

TEST(qos_downgrade_and_qos0_not_queued)
{
    struct broker *b = mkbroker(100);
    struct session *s = session_new(b, "s");
    sub(b, s, "t", 1, 0);
    publish(b, "t", 2, false, NULL);
    ASSERT_EQ(s->queue.count, 1);
    ASSERT_EQ(s->queue.head->qos, 1); /* MQTT-3.8.4-8 */
    publish(b, "t", 0, false, NULL);  /* QoS 0 to an offline session: dropped */
    ASSERT_EQ(s->queue.count, 1);
    struct session *z = session_new(b, "z");
    sub(b, z, "t", 0, 0);
    publish(b, "t", 1, false, NULL); /* delivered at QoS 0: not queued */
    ASSERT_EQ(z->queue.count, 0);
    broker_free(b);
}

TEST(no_local_and_retain_as_published)
{
    struct broker *b = mkbroker(100);
    struct session *me = session_new(b, "me"), *rap = session_new(b, "rap");
    struct session *plain = session_new(b, "plain");
    sub(b, me, "x", 1 | MQTT_SUBOPT_NO_LOCAL, 0);
    sub(b, rap, "x", 1 | MQTT_SUBOPT_RAP, 0);
    sub(b, plain, "x", 1, 0);
    publish(b, "x", 1, true, me);
    ASSERT_EQ(me->queue.count, 0); /* MQTT-3.8.3-3 */
    ASSERT_EQ(rap->queue.count, 1);
    ASSERT(rap->queue.head->retain); /* MQTT-3.3.1-13 */
    ASSERT_EQ(plain->queue.count, 1);
    ASSERT(!plain->queue.head->retain); /* MQTT-3.3.1-12 */
    broker_free(b);
}

TEST(queue_bound_counts_drops)
{
    struct broker *b = mkbroker(3);
    struct session *s = session_new(b, "s");
    sub(b, s, "q", 1, 0);
    for (int i = 0; i < 10; i++)
        publish(b, "q", 1, false, NULL);
    ASSERT_EQ(s->queue.count, 3);
    ASSERT_EQ(b->st.dropped, 7);
    broker_free(b);
}

TEST(expired_not_queued)
{
    struct broker *b = mkbroker(10);
    struct session *s = session_new(b, "s");
    sub(b, s, "e", 1, 0);
    struct mqtt_props p;
    memset(&p, 0, sizeof(p));
    p.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    p.message_expiry = 1;
    struct msg *m = msg_new((const uint8_t *)"e", 1, NULL, 0, 1, false, &p, "o", 0);
    route_publish(b, m, NULL); /* created at time 0, long expired now */
    msg_unref(m);
    ASSERT_EQ(s->queue.count, 0);
    broker_free(b);
}

TEST(shared_group_one_member_each)
{
    struct broker *b = mkbroker(100);
    struct session *m1 = session_new(b, "m1"), *m2 = session_new(b, "m2");
    sub(b, m1, "$share/g/j", 1, 0);
    sub(b, m2, "$share/g/j", 1, 0);
    for (int i = 0; i < 10; i++)
        publish(b, "j", 1, false, NULL);
    ASSERT_EQ(m1->queue.count + m2->queue.count, 10);
    ASSERT(m1->queue.count > 0 && m2->queue.count > 0);
    broker_free(b);
}

TEST(internal_retained)
{
    struct broker *b = mkbroker(10);
    struct msg *m = mk("$SYS/x", 0, true);
    route_internal(b, m);
    msg_unref(m);
    ASSERT_EQ(retain_count(b->retained), 1);
    broker_free(b);
}

int main(void)
{
    RUN(overlap_merged_max_qos_all_ids);
    RUN(qos_downgrade_and_qos0_not_queued);
    RUN(no_local_and_retain_as_published);
    RUN(queue_bound_counts_drops);
    RUN(expired_not_queued);
    RUN(shared_group_one_member_each);
    RUN(internal_retained);
    TEST_DONE();
}
