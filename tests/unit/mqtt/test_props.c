#include "mqtt/wire.h"
#include "test.h"

static int decode(const uint8_t *b, size_t n, enum mqtt_type t, bool will, bool from_client,
                  struct mqtt_props *out)
{
    struct rd r = {b, b + n};
    return props_decode(&r, t, will, from_client, out);
}

TEST(where_allowed)
{
    struct mqtt_props p;
    static const uint8_t delay[] = {5, 0x18, 0, 0, 0, 9};
    ASSERT_EQ(decode(delay, sizeof(delay), MQTT_CONNECT, true, true, &p), 0);
    ASSERT_EQ(p.will_delay, 9);
    /* Section 2.2.2.2: not valid for the packet, or unknown: malformed. */
    ASSERT_EQ(decode(delay, sizeof(delay), MQTT_CONNECT, false, true, &p), MQTT_RC_MALFORMED);
    static const uint8_t unknown[] = {2, 0x7F, 0};
    ASSERT_EQ(decode(unknown, sizeof(unknown), MQTT_CONNECT, false, true, &p), MQTT_RC_MALFORMED);
    static const uint8_t twice[] = {4, 0x01, 1, 0x01, 1};
    ASSERT_EQ(decode(twice, sizeof(twice), MQTT_PUBLISH, false, true, &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t rmax0[] = {3, 0x21, 0, 0};
    ASSERT_EQ(decode(rmax0, sizeof(rmax0), MQTT_CONNECT, false, true, &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t mps0[] = {5, 0x27, 0, 0, 0, 0};
    ASSERT_EQ(decode(mps0, sizeof(mps0), MQTT_CONNECT, false, true, &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t rpi2[] = {2, 0x17, 2};
    ASSERT_EQ(decode(rpi2, sizeof(rpi2), MQTT_CONNECT, false, true, &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t users[] = {14, 0x26, 0, 1, 'a', 0, 1, 'b', 0x26, 0, 1, 'a', 0, 1, 'c'};
    ASSERT_EQ(decode(users, sizeof(users), MQTT_PUBLISH, false, true, &p), 0);
    ASSERT_EQ(p.user_count, 2);
    static const uint8_t short_str[] = {4, 0x03, 0, 5, 'x'};
    ASSERT_EQ(decode(short_str, sizeof(short_str), MQTT_PUBLISH, false, true, &p),
              MQTT_RC_MALFORMED);
}

TEST(encode_roundtrip_order_preserved)
{
    struct mqtt_props in;
    memset(&in, 0, sizeof(in));
    in.present = MQTT_HAS(MQTT_PROP_REASON_STRING) | MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    in.reason_string = (struct mqtt_str){(const uint8_t *)"why", 3};
    in.session_expiry = 7;
    static const uint8_t user[] = {0x26, 0, 1, 'z', 0, 0, 0x26, 0, 1, 'a', 0, 0};
    in.user_raw = (struct mqtt_bin){user, sizeof(user)};
    uint8_t out[64];
    struct wr w = {out};
    props_write(&w, &in);
    ASSERT_EQ((size_t)(w.p - out), 1 + props_size(&in));
    struct mqtt_props o;
    ASSERT_EQ(decode(out, (size_t)(w.p - out), MQTT_DISCONNECT, false, true, &o), 0);
    ASSERT_EQ(o.session_expiry, 7);
    ASSERT_EQ(o.reason_string.len, 3);
    size_t pos = 0;
    struct mqtt_str k, v;
    ASSERT(mqtt_props_next_user(&o, &pos, &k, &v));
    ASSERT_EQ(k.p[0], 'z');
    ASSERT(mqtt_props_next_user(&o, &pos, &k, &v));
    ASSERT_EQ(k.p[0], 'a');
    ASSERT(!mqtt_props_next_user(&o, &pos, &k, &v));
}

int main(void)
{
    RUN(where_allowed);
    RUN(encode_roundtrip_order_preserved);
    TEST_DONE();
}
