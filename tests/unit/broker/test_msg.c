#include "broker/msg.h"
#include "test.h"

static struct msg *plain(const char *topic, const char *payload)
{
    return msg_new((const uint8_t *)topic, (uint16_t)strlen(topic), (const uint8_t *)payload,
                   (uint32_t)strlen(payload), 1, false, NULL, "origin", 1000);
}

TEST(new_copies_and_terminates)
{
    char topic[] = "a/b", payload[] = "hello";
    struct msg *m = plain(topic, payload);
    topic[0] = 'X'; /* the message owns its copy */
    payload[0] = 'X';
    ASSERT_STR_EQ(m->topic, "a/b");
    ASSERT_EQ(m->topic_len, 3);
    ASSERT_MEM_EQ(m->payload, "hello", 5);
    ASSERT_STR_EQ(m->origin, "origin");
    ASSERT_EQ(m->qos, 1);
    ASSERT(!m->has_expiry);
    ASSERT(!msg_expired(m, 1u << 30));
    msg_unref(m);
}

TEST(refcount)
{
    struct msg *m = plain("t", "");
    ASSERT_EQ(m->refs, 1);
    ASSERT(msg_ref(m) == m);
    ASSERT_EQ(m->refs, 2);
    msg_unref(m);
    ASSERT_EQ(m->refs, 1);
    msg_unref(m); /* freed: ASan reports a leak or double free otherwise */
}

TEST(from_publish_with_properties)
{
    static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
    struct mqtt_publish p = {0};
    p.qos = 2;
    p.retain = true;
    p.payload = (struct mqtt_bin){(const uint8_t *)"data", 4};
    p.props.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE) |
                      MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA) |
                      MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT);
    p.props.message_expiry = 10;
    p.props.payload_format = 1;
    p.props.content_type = (struct mqtt_str){(const uint8_t *)"text/plain", 10};
    p.props.response_topic = (struct mqtt_str){(const uint8_t *)"reply", 5};
    p.props.correlation_data = (struct mqtt_bin){(const uint8_t *)"\x00\x01", 2};
    /* A decoded packet carries its raw property block; msg copies the user
     * properties from it. */
    static const uint8_t raw[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
    p.props.raw = (struct mqtt_bin){raw, sizeof(raw)};
    p.props.user_count = 1;
    struct msg *m = msg_from_publish(&p, (const uint8_t *)"x/y", 3, "pub", 5000);
    ASSERT(m);
    ASSERT_STR_EQ(m->topic, "x/y");
    ASSERT(m->has_expiry);
    ASSERT(!msg_expired(m, 14999));
    ASSERT(msg_expired(m, 15000));
    /* Remaining lifetime rounds up (MQTT-3.3.2-6). */
    ASSERT_EQ(msg_expiry_left(m, 5000), 10);
    ASSERT_EQ(msg_expiry_left(m, 9001), 6);
    ASSERT_EQ(msg_expiry_left(m, 20000), 0);
    struct mqtt_props out;
    memset(&out, 0, sizeof(out));
    msg_fill_props(m, 8000, &out);
    ASSERT(out.present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY));
    ASSERT_EQ(out.message_expiry, 7);
    ASSERT_EQ(out.payload_format, 1);
    ASSERT_EQ(out.content_type.len, 10);
    ASSERT_MEM_EQ(out.response_topic.p, "reply", 5);
    ASSERT_EQ(out.correlation_data.len, 2);
    ASSERT_EQ(out.user_raw.len, sizeof(user));
    ASSERT_MEM_EQ(out.user_raw.p, user, sizeof(user));
    msg_unref(m);
}

TEST(no_properties_fill_nothing)
{
    struct msg *m = plain("t", "p");
    struct mqtt_props out;
    memset(&out, 0, sizeof(out));
    msg_fill_props(m, 0, &out);
    ASSERT_EQ(out.present, 0);
    ASSERT_EQ(out.user_raw.len, 0);
    msg_unref(m);
}

TEST(large_payload)
{
    size_t n = 1u << 20;
    uint8_t *big = malloc(n);
    memset(big, 'z', n);
    struct msg *m = msg_new((const uint8_t *)"big", 3, big, (uint32_t)n, 0, true, NULL, "o", 0);
    free(big);
    ASSERT(m);
    ASSERT_EQ(m->payload_len, n);
    ASSERT_EQ(m->payload[n - 1], 'z');
    msg_unref(m);
}

int main(void)
{
    RUN(new_copies_and_terminates);
    RUN(refcount);
    RUN(from_publish_with_properties);
    RUN(no_properties_fill_nothing);
    RUN(large_payload);
    TEST_DONE();
}
