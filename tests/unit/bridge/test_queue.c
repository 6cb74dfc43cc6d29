/* The bridge's send queue: bounded push, order, the `next` pointer through
 * sends and removals anywhere, in-flight counting, what a reconnect does to
 * messages in flight, and which properties a queued copy keeps. */
#include "bridge/queue.h"
#include "test.h"

static struct bq_msg *msg(const char *topic)
{
    struct bq_msg *m = bq_msg_new(topic, strlen(topic), (const uint8_t *)"pl", 2, NULL, 1, false);
    ASSERT(m);
    return m;
}

/* The queue's links agree with each other and with count. */
static void check_links(const struct bq *q)
{
    uint32_t n = 0, inflight = 0;
    bool seen_next = false; /* next NULL: all in flight */
    const struct bq_msg *prev = NULL;
    for (const struct bq_msg *m = q->head; m; m = m->next) {
        ASSERT(m->prev == prev);
        if (m == q->next)
            seen_next = true;
        if (!seen_next) /* before next: in flight */
            ASSERT(m->state != BQ_QUEUED);
        else
            ASSERT_EQ(m->state, BQ_QUEUED);
        inflight += m->state != BQ_QUEUED;
        prev = m;
        n++;
    }
    ASSERT(q->tail == prev);
    ASSERT(seen_next || q->next == NULL);
    ASSERT_EQ(n, q->count);
    ASSERT_EQ(inflight, q->inflight);
}

TEST(push_order_and_limit)
{
    struct bq q;
    bq_init(&q, 3);
    ASSERT(bq_peek_unsent(&q) == NULL);
    struct bq_msg *a = msg("a"), *b = msg("b"), *c = msg("c"), *d = msg("d");
    ASSERT_EQ(bq_push(&q, a), 0);
    ASSERT_EQ(bq_push(&q, b), 0);
    ASSERT_EQ(bq_push(&q, c), 0);
    ASSERT_EQ(bq_push(&q, d), -1); /* full: d is still ours */
    ASSERT_EQ(q.count, 3);
    check_links(&q);
    ASSERT(q.head == a && q.tail == c && bq_peek_unsent(&q) == a);
    ASSERT(a->next == b && b->next == c && c->next == NULL);
    /* Removing one makes room again. */
    bq_remove(&q, b);
    ASSERT_EQ(bq_push(&q, d), 0);
    ASSERT(a->next == c && c->next == d);
    check_links(&q);
    bq_clear(&q);
    ASSERT_EQ(q.count, 0);
    ASSERT(q.head == NULL && q.tail == NULL && q.next == NULL);
}

TEST(no_limit)
{
    struct bq q;
    bq_init(&q, 0);
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(bq_push(&q, msg("t")), 0);
    ASSERT_EQ(q.count, 1000);
    check_links(&q);
    bq_clear(&q);
    ASSERT_EQ(q.count, 0);
}

TEST(mark_sent_find_and_inflight)
{
    struct bq q;
    bq_init(&q, 0);
    struct bq_msg *a = msg("a"), *b = msg("b"), *c = msg("c");
    bq_push(&q, a);
    bq_push(&q, b);
    bq_push(&q, c);
    bq_mark_sent(&q, bq_peek_unsent(&q), 10);
    ASSERT(bq_peek_unsent(&q) == b);
    bq_mark_sent(&q, bq_peek_unsent(&q), 11);
    ASSERT(bq_peek_unsent(&q) == c);
    ASSERT_EQ(q.inflight, 2);
    ASSERT_EQ(a->state, BQ_SENT);
    ASSERT_EQ(a->pid, 10);
    check_links(&q);
    ASSERT(bq_find(&q, 10) == a);
    ASSERT(bq_find(&q, 11) == b);
    ASSERT(bq_find(&q, 12) == NULL);
    /* A message not sent is not found, whatever its stale pid says. */
    c->pid = 13;
    ASSERT(bq_find(&q, 13) == NULL);
    ASSERT(bq_find(&q, 0) == NULL);
    /* PUBREL state is still in flight and still found. */
    a->state = BQ_PUBREL;
    ASSERT(bq_find(&q, 10) == a);
    /* All sent: next is NULL, and a push makes the new one next. */
    bq_mark_sent(&q, c, 12);
    ASSERT(bq_peek_unsent(&q) == NULL);
    ASSERT_EQ(q.inflight, 3);
    struct bq_msg *d = msg("d");
    bq_push(&q, d);
    ASSERT(bq_peek_unsent(&q) == d);
    check_links(&q);
    bq_clear(&q);
    ASSERT_EQ(q.inflight, 0);
}

/* Four messages, the first two in flight (pids 1, 2), c and d queued. */
static void four(struct bq *q, struct bq_msg **m)
{
    bq_init(q, 0);
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        m[i] = msg(names[i]);
        ASSERT_EQ(bq_push(q, m[i]), 0);
    }
    bq_mark_sent(q, m[0], 1);
    bq_mark_sent(q, m[1], 2);
    check_links(q);
}

TEST(remove_anywhere)
{
    struct bq q;
    struct bq_msg *m[4];
    /* The head, in flight. */
    four(&q, m);
    bq_remove(&q, m[0]);
    ASSERT(q.head == m[1] && m[1]->prev == NULL);
    ASSERT_EQ(q.inflight, 1);
    ASSERT(bq_peek_unsent(&q) == m[2]);
    check_links(&q);
    bq_clear(&q);
    /* In flight in the middle (acked out of order). */
    four(&q, m);
    bq_remove(&q, m[1]);
    ASSERT(m[0]->next == m[2] && m[2]->prev == m[0]);
    ASSERT_EQ(q.inflight, 1);
    ASSERT(bq_find(&q, 2) == NULL && bq_find(&q, 1) == m[0]);
    check_links(&q);
    bq_clear(&q);
    /* The next one to send. */
    four(&q, m);
    bq_remove(&q, m[2]);
    ASSERT(bq_peek_unsent(&q) == m[3]);
    ASSERT_EQ(q.inflight, 2);
    check_links(&q);
    bq_clear(&q);
    /* The tail, queued. */
    four(&q, m);
    bq_remove(&q, m[3]);
    ASSERT(q.tail == m[2] && m[2]->next == NULL);
    ASSERT(bq_peek_unsent(&q) == m[2]);
    check_links(&q);
    /* The last unsent one: next becomes NULL, and a push restores it. */
    bq_remove(&q, m[2]);
    ASSERT(bq_peek_unsent(&q) == NULL);
    ASSERT(q.tail == m[1]);
    struct bq_msg *e = msg("e");
    bq_push(&q, e);
    ASSERT(bq_peek_unsent(&q) == e && m[1]->next == e && e->prev == m[1]);
    check_links(&q);
    /* Down to nothing. */
    bq_remove(&q, m[0]);
    bq_remove(&q, e);
    bq_remove(&q, m[1]);
    ASSERT(q.head == NULL && q.tail == NULL && q.next == NULL);
    ASSERT_EQ(q.count, 0);
    ASSERT_EQ(q.inflight, 0);
}

TEST(requeue)
{
    struct bq q;
    struct bq_msg *m[4];
    four(&q, m);
    m[1]->state = BQ_PUBREL;
    bq_mark_resend(&q);
    bq_requeue(&q);
    /* Everything is to be sent again, as new, from the head. */
    ASSERT_EQ(q.inflight, 0);
    ASSERT(bq_peek_unsent(&q) == m[0]);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(m[i]->state, BQ_QUEUED);
        ASSERT(!m[i]->sent_before);
    }
    ASSERT(bq_find(&q, 1) == NULL);
    check_links(&q);
    /* And they go out again in the same order. */
    for (int i = 0; i < 4; i++) {
        ASSERT(bq_peek_unsent(&q) == m[i]);
        bq_mark_sent(&q, m[i], (uint16_t)(100 + i));
    }
    ASSERT_EQ(q.inflight, 4);
    ASSERT(bq_find(&q, 103) == m[3]);
    check_links(&q);
    bq_clear(&q);
    /* An empty queue and one with nothing in flight are left alone. */
    bq_init(&q, 0);
    bq_requeue(&q);
    ASSERT(q.next == NULL && q.inflight == 0);
    struct bq_msg *a = msg("a");
    bq_push(&q, a);
    bq_requeue(&q);
    ASSERT(bq_peek_unsent(&q) == a);
    bq_clear(&q);
}

TEST(mark_resend)
{
    struct bq q;
    struct bq_msg *m[4];
    four(&q, m);
    m[1]->state = BQ_PUBREL;
    bq_mark_resend(&q);
    /* In flight: marked, state and pid kept (resumed session). */
    ASSERT(m[0]->sent_before && m[1]->sent_before);
    ASSERT_EQ(m[0]->state, BQ_SENT);
    ASSERT_EQ(m[1]->state, BQ_PUBREL);
    ASSERT(bq_find(&q, 1) == m[0] && bq_find(&q, 2) == m[1]);
    ASSERT_EQ(q.inflight, 2);
    /* Never sent: not marked. */
    ASSERT(!m[2]->sent_before && !m[3]->sent_before);
    ASSERT(bq_peek_unsent(&q) == m[2]);
    check_links(&q);
    bq_clear(&q);
}

TEST(msg_copies_topic_and_payload)
{
    char topic[] = "t/1";
    uint8_t payload[] = {0, 1, 2, 0xff};
    struct bq_msg *m = bq_msg_new(topic, 3, payload, sizeof(payload), NULL, 2, true);
    ASSERT(m);
    topic[0] = 'x';
    payload[0] = 9;
    ASSERT_STR_EQ(m->topic, "t/1"); /* NUL-terminated copy */
    ASSERT_EQ(m->topic_len, 3);
    ASSERT_EQ(m->payload_len, 4);
    ASSERT_MEM_EQ(m->payload, "\0\1\2\xff", 4);
    ASSERT_EQ(m->qos, 2);
    ASSERT(m->retain);
    ASSERT_EQ(m->props.present, 0);
    ASSERT_EQ(m->props.user_raw.len, 0);
    ASSERT_EQ(m->state, BQ_QUEUED);
    ASSERT(!m->sent_before);
    bq_msg_free(m);
    /* An empty payload (and a NULL pointer for it) is fine. */
    m = bq_msg_new("e", 1, NULL, 0, NULL, 0, false);
    ASSERT(m);
    ASSERT_EQ(m->payload_len, 0);
    bq_msg_free(m);
    /* A topic longer than MQTT allows is refused. */
    char *big = calloc(1, 65536);
    ASSERT(big);
    memset(big, 'a', 65536);
    ASSERT(bq_msg_new(big, 65536, NULL, 0, NULL, 1, false) == NULL);
    m = bq_msg_new(big, 65535, NULL, 0, NULL, 1, false);
    ASSERT(m);
    ASSERT_EQ(m->topic_len, 65535);
    ASSERT_EQ(strlen(m->topic), 65535);
    bq_msg_free(m);
    free(big);
}

/* A decoded PUBLISH (server to client, so subscription ids may be there)
 * with every property a bridge passes on and two it must not. */
static uint8_t wire[512];
static void decoded_publish(struct mqtt_packet *out)
{
    static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 2, 'v', '1', 0x26, 0, 2, 'k', '2', 0, 0};
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    struct mqtt_publish *pub = &p.u.publish;
    pub->qos = 1;
    pub->packet_id = 7;
    pub->topic = (struct mqtt_str){(const uint8_t *)"a/b", 3};
    pub->payload = (struct mqtt_bin){(const uint8_t *)"hello", 5};
    struct mqtt_props *pr = &pub->props;
    pr->present = MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) |
                  MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) |
                  MQTT_HAS(MQTT_PROP_CORRELATION_DATA) | MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID) |
                  MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    pr->payload_format = 1;
    pr->message_expiry = 3600;
    pr->content_type = (struct mqtt_str){(const uint8_t *)"text/plain", 10};
    pr->response_topic = (struct mqtt_str){(const uint8_t *)"reply/here", 10};
    pr->correlation_data = (struct mqtt_bin){(const uint8_t *)"\0c\1", 3};
    pr->sub_ids[0] = 5;
    pr->sub_ids[1] = 9;
    pr->sub_id_count = 2;
    pr->topic_alias = 3;
    pr->user_raw = (struct mqtt_bin){user, sizeof(user)};
    struct mqtt_codec enc = {MQTT_V5, true, 0}, dec = {MQTT_V5, false, 0};
    size_t n = mqtt_encode(&enc, &p, wire, sizeof(wire)), used = 0;
    ASSERT(n > 0);
    ASSERT_EQ(mqtt_decode(&dec, wire, n, out, &used), 0);
    ASSERT_EQ(used, n);
    ASSERT_EQ(out->u.publish.props.user_count, 2);
    ASSERT_EQ(out->u.publish.props.sub_id_count, 2);
    ASSERT_EQ(out->u.publish.props.topic_alias, 3);
}

TEST(msg_copies_v5_properties)
{
    struct mqtt_packet p;
    decoded_publish(&p);
    const struct mqtt_publish *pub = &p.u.publish;
    struct bq_msg *m = bq_msg_new((const char *)pub->topic.p, pub->topic.len, pub->payload.p,
                                  pub->payload.len, &pub->props, 1, false);
    ASSERT(m);
    memset(wire, 0, sizeof(wire)); /* the copy must not view the input */
    const struct mqtt_props *c = &m->props;
    ASSERT_STR_EQ(m->topic, "a/b");
    ASSERT_MEM_EQ(m->payload, "hello", 5);
    ASSERT(c->present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT));
    ASSERT_EQ(c->payload_format, 1);
    ASSERT(c->present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY));
    ASSERT_EQ(c->message_expiry, 3600);
    ASSERT(c->present & MQTT_HAS(MQTT_PROP_CONTENT_TYPE));
    ASSERT_EQ(c->content_type.len, 10);
    ASSERT_MEM_EQ(c->content_type.p, "text/plain", 10);
    ASSERT(c->present & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC));
    ASSERT_EQ(c->response_topic.len, 10);
    ASSERT_MEM_EQ(c->response_topic.p, "reply/here", 10);
    ASSERT(c->present & MQTT_HAS(MQTT_PROP_CORRELATION_DATA));
    ASSERT_EQ(c->correlation_data.len, 3);
    ASSERT_MEM_EQ(c->correlation_data.p, "\0c\1", 3);
    /* User properties in wire form, as mqtt_props_copy_user writes them. */
    static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 2, 'v', '1', 0x26, 0, 2, 'k', '2', 0, 0};
    ASSERT_EQ(c->user_raw.len, sizeof(user));
    ASSERT_MEM_EQ(c->user_raw.p, user, sizeof(user));
    /* Not passed on: subscription ids (the broker's, for its subscriber) and
     * the topic alias (per connection). */
    ASSERT(!(c->present & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)));
    ASSERT_EQ(c->sub_id_count, 0);
    ASSERT(!(c->present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)));
    ASSERT_EQ(c->topic_alias, 0);
    /* The copy encodes to a PUBLISH that carries the same properties. */
    struct mqtt_packet out = {.type = MQTT_PUBLISH};
    out.u.publish = (struct mqtt_publish){.qos = 1,
                                          .packet_id = 1,
                                          .topic = {(const uint8_t *)m->topic, m->topic_len},
                                          .payload = {m->payload, m->payload_len},
                                          .props = m->props};
    struct mqtt_codec enc = {MQTT_V5, false, 0}, dec = {MQTT_V5, true, 0};
    uint8_t b[512];
    size_t n = mqtt_encode(&enc, &out, b, sizeof(b)), used;
    ASSERT(n > 0);
    struct mqtt_packet back;
    ASSERT_EQ(mqtt_decode(&dec, b, n, &back, &used), 0);
    const struct mqtt_props *bp = &back.u.publish.props;
    ASSERT_EQ(bp->user_count, 2);
    ASSERT_EQ(bp->message_expiry, 3600);
    ASSERT_EQ(bp->sub_id_count, 0);
    ASSERT(!(bp->present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)));
    size_t pos = 0;
    struct mqtt_str k, v;
    ASSERT(mqtt_props_next_user(bp, &pos, &k, &v));
    ASSERT_EQ(k.len, 1);
    ASSERT_MEM_EQ(v.p, "v1", 2);
    ASSERT(mqtt_props_next_user(bp, &pos, &k, &v));
    ASSERT_MEM_EQ(k.p, "k2", 2);
    ASSERT_EQ(v.len, 0);
    bq_msg_free(m);
}

TEST(msg_without_optional_props)
{
    /* Only what is present is copied; absent strings stay absent. */
    struct mqtt_props pr = {0};
    pr.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) | MQTT_HAS(MQTT_PROP_REASON_STRING);
    pr.message_expiry = 5;
    pr.reason_string = (struct mqtt_str){(const uint8_t *)"why", 3};
    pr.content_type = (struct mqtt_str){(const uint8_t *)"ignored", 7}; /* not present */
    struct bq_msg *m = bq_msg_new("t", 1, (const uint8_t *)"x", 1, &pr, 1, false);
    ASSERT(m);
    ASSERT_EQ(m->props.present, MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY));
    ASSERT_EQ(m->props.message_expiry, 5);
    ASSERT_EQ(m->props.content_type.len, 0);
    ASSERT_EQ(m->props.reason_string.len, 0);
    ASSERT_EQ(m->props.user_raw.len, 0);
    bq_msg_free(m);
}

int main(void)
{
    RUN(push_order_and_limit);
    RUN(no_limit);
    RUN(mark_sent_find_and_inflight);
    RUN(remove_anywhere);
    RUN(requeue);
    RUN(mark_resend);
    RUN(msg_copies_topic_and_payload);
    RUN(msg_copies_v5_properties);
    RUN(msg_without_optional_props);
    TEST_DONE();
}
