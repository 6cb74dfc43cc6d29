#include "mqtt/mqtt.h"
#include "page_end.h"
#include "test.h"

static const struct mqtt_codec srv0 = {0, true, 0};
static const struct mqtt_codec srv4 = {MQTT_V311, true, 0};
static const struct mqtt_codec srv5 = {MQTT_V5, true, 0};
static const struct mqtt_codec cli4 = {MQTT_V311, false, 0};
static const struct mqtt_codec cli5 = {MQTT_V5, false, 0};

static int dec(const struct mqtt_codec *c, const void *b, size_t n, struct mqtt_packet *p)
{
    size_t used = 0;
    int rc = mqtt_decode(c, b, n, p, &used);
    if (rc == 0 && used != n)
        TEST_FAIL_("decoded %zu of %zu bytes", used, n);
    return rc;
}

#define S(lit)   ((struct mqtt_str){(const uint8_t *)(lit), (uint16_t)(sizeof(lit) - 1)})
#define BIN(lit) ((struct mqtt_bin){(const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1)})

TEST(connect_311_spec_bytes)
{
    /* CONNECT, MQTT level 4, clean session, keep alive 60, id "ab". */
    static const uint8_t b[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'a', 'b'};
    struct mqtt_packet p;
    ASSERT_EQ(dec(&srv0, b, sizeof(b), &p), 0);
    ASSERT_EQ(p.type, MQTT_CONNECT);
    ASSERT_EQ(p.u.connect.version, MQTT_V311);
    ASSERT(p.u.connect.clean_start);
    ASSERT_EQ(p.u.connect.keep_alive, 60);
    ASSERT_EQ(p.u.connect.client_id.len, 2);
    uint8_t out[64];
    struct mqtt_codec c4 = srv4;
    ASSERT_EQ(mqtt_encode(&c4, &p, out, sizeof(out)), sizeof(b));
    ASSERT_MEM_EQ(out, b, sizeof(b));
    /* every strict prefix is incomplete */
    for (size_t i = 0; i < sizeof(b); i++)
        ASSERT_EQ(dec(&srv0, b, i, &p), MQTT_INCOMPLETE);
}

TEST(connect_v5_roundtrip_with_will_and_props)
{
    uint8_t user[64];
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &p.u.connect;
    c->version = MQTT_V5;
    c->clean_start = true;
    c->keep_alive = 30;
    c->client_id = S("dev-1");
    c->props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) | MQTT_HAS(MQTT_PROP_RECEIVE_MAX) |
                       MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX);
    c->props.session_expiry = 3600;
    c->props.receive_max = 10;
    c->props.topic_alias_max = 5;
    c->will_flag = true;
    c->will_qos = 1;
    c->will_retain = true;
    c->will_topic = S("dev/1/status");
    c->will_payload = BIN("offline");
    c->will_props.present = MQTT_HAS(MQTT_PROP_WILL_DELAY) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
    c->will_props.will_delay = 5;
    c->will_props.content_type = S("text/plain");
    /* one user property in wire form */
    size_t n = 0;
    user[n++] = 0x26;
    user[n++] = 0;
    user[n++] = 1;
    user[n++] = 'k';
    user[n++] = 0;
    user[n++] = 1;
    user[n++] = 'v';
    c->will_props.user_raw = (struct mqtt_bin){user, (uint32_t)n};
    c->has_username = true;
    c->username = S("alice");
    c->has_password = true;
    c->password = BIN("secret");
    uint8_t out[256];
    size_t len = mqtt_encode(&srv5, &p, out, sizeof(out));
    ASSERT(len > 0);
    ASSERT_EQ(len, mqtt_encoded_size(&srv5, &p));
    ASSERT_EQ(mqtt_encode(&srv5, &p, out, len - 1), 0); /* too small */
    struct mqtt_packet q;
    ASSERT_EQ(dec(&srv0, out, len, &q), 0);
    ASSERT_EQ(q.u.connect.version, MQTT_V5);
    ASSERT_EQ(q.u.connect.props.session_expiry, 3600);
    ASSERT_EQ(q.u.connect.props.receive_max, 10);
    ASSERT(q.u.connect.will_flag && q.u.connect.will_retain);
    ASSERT_EQ(q.u.connect.will_qos, 1);
    ASSERT_EQ(q.u.connect.will_props.will_delay, 5);
    ASSERT_EQ(q.u.connect.will_props.user_count, 1);
    size_t pos = 0;
    struct mqtt_str k, v;
    ASSERT(mqtt_props_next_user(&q.u.connect.will_props, &pos, &k, &v));
    ASSERT_EQ(k.len, 1);
    ASSERT_EQ(v.p[0], 'v');
    ASSERT(!mqtt_props_next_user(&q.u.connect.will_props, &pos, &k, &v));
    uint8_t copy[16];
    ASSERT_EQ(mqtt_props_copy_user(&q.u.connect.will_props, copy, sizeof(copy)), n);
    ASSERT_MEM_EQ(copy, user, n);
    ASSERT_EQ(q.u.connect.password.len, 6);
    ASSERT_MEM_EQ(q.u.connect.username.p, "alice", 5);
}

TEST(connect_errors)
{
    struct mqtt_packet p;
    /* unknown level with a valid name: unsupported version, level reported */
    static const uint8_t lvl[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, lvl, sizeof(lvl), &p), MQTT_RC_UNSUPPORTED_VERSION);
    ASSERT_EQ(p.u.connect.version, 6);
    static const uint8_t name[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, name, sizeof(name), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t reserved[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, reserved, sizeof(reserved), &p), MQTT_RC_MALFORMED);
    static const uint8_t willqos[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0A, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, willqos, sizeof(willqos), &p), MQTT_RC_MALFORMED);
    static const uint8_t pwonly[] = {0x10, 16, 0,  4, 'M', 'Q', 'T', 'T', 4,
                                     0x42, 0,  60, 0, 0,   0,   2,   'p', 'w'};
    ASSERT_EQ(dec(&srv0, pwonly, sizeof(pwonly), &p), MQTT_RC_MALFORMED);
    static const uint8_t trailing[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0, 9};
    ASSERT_EQ(dec(&srv0, trailing, sizeof(trailing), &p), MQTT_RC_MALFORMED);
    static const uint8_t nul_id[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 0};
    ASSERT_EQ(dec(&srv0, nul_id, sizeof(nul_id), &p), MQTT_RC_MALFORMED);
    /* a second CONNECT, and anything else first */
    static const uint8_t ok[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv4, ok, sizeof(ok), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t ping[] = {0xC0, 0};
    ASSERT_EQ(dec(&srv0, ping, sizeof(ping), &p), MQTT_RC_PROTOCOL_ERROR);
}

TEST(publish_all_qos_and_flags)
{
    struct mqtt_packet p;
    static const uint8_t q0[] = {0x31, 5, 0, 1, 't', 'h', 'i'};
    ASSERT_EQ(dec(&srv4, q0, sizeof(q0), &p), 0);
    ASSERT(p.u.publish.retain);
    ASSERT_EQ(p.u.publish.payload.len, 2);
    static const uint8_t q1[] = {0x32, 5, 0, 1, 't', 0, 7};
    ASSERT_EQ(dec(&srv4, q1, sizeof(q1), &p), 0);
    ASSERT_EQ(p.u.publish.packet_id, 7);
    ASSERT_EQ(p.u.publish.payload.len, 0);
    static const uint8_t q3[] = {0x36, 5, 0, 1, 't', 0, 7};
    ASSERT_EQ(dec(&srv4, q3, sizeof(q3), &p), MQTT_RC_MALFORMED);
    static const uint8_t dup0[] = {0x38, 3, 0, 1, 't'};
    ASSERT_EQ(dec(&srv4, dup0, sizeof(dup0), &p), MQTT_RC_MALFORMED);
    static const uint8_t pid0[] = {0x32, 5, 0, 1, 't', 0, 0};
    ASSERT_EQ(dec(&srv4, pid0, sizeof(pid0), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t wild[] = {0x30, 3, 0, 1, '#'};
    ASSERT_EQ(dec(&srv4, wild, sizeof(wild), &p), MQTT_RC_TOPIC_NAME_INVALID);
    static const uint8_t empty311[] = {0x30, 2, 0, 0};
    ASSERT_EQ(dec(&srv4, empty311, sizeof(empty311), &p), MQTT_RC_TOPIC_NAME_INVALID);
    static const uint8_t empty5[] = {0x30, 3, 0, 0, 0};
    ASSERT_EQ(dec(&srv5, empty5, sizeof(empty5), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t alias5[] = {0x30, 6, 0, 0, 3, 0x23, 0, 1};
    ASSERT_EQ(dec(&srv5, alias5, sizeof(alias5), &p), 0);
    ASSERT_EQ(p.u.publish.props.topic_alias, 1);
    static const uint8_t alias0[] = {0x30, 6, 0, 0, 3, 0x23, 0, 0};
    ASSERT_EQ(dec(&srv5, alias0, sizeof(alias0), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t subid[] = {0x30, 6, 0, 1, 't', 2, 0x0B, 1};
    ASSERT_EQ(dec(&srv5, subid, sizeof(subid), &p), MQTT_RC_PROTOCOL_ERROR);
    ASSERT_EQ(dec(&cli5, subid, sizeof(subid), &p), 0); /* server to client: allowed */
    static const uint8_t badutf8[] = {0x30, 7, 0, 1, 't', 2, 0x01, 1, 0xFF};
    ASSERT_EQ(dec(&srv5, badutf8, sizeof(badutf8), &p), MQTT_RC_PAYLOAD_FORMAT_INVALID);
    static const uint8_t dupprop2[] = {0x30, 8, 0, 1, 't', 4, 0x01, 0, 0x01, 0};
    ASSERT_EQ(dec(&srv5, dupprop2, sizeof(dupprop2), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t notallowed[] = {0x30, 6, 0, 1, 't', 2, 0x24, 1};
    ASSERT_EQ(dec(&srv5, notallowed, sizeof(notallowed), &p), MQTT_RC_MALFORMED); /* 2.2.2.2 */
    static const uint8_t proplen[] = {0x30, 6, 0, 1, 't', 9, 0x01, 1};
    ASSERT_EQ(dec(&srv5, proplen, sizeof(proplen), &p), MQTT_RC_MALFORMED);
}

TEST(publish_encode_v5_props)
{
    uint32_t ids[2] = {5, 300};
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.qos = 2;
    p.u.publish.dup = true;
    p.u.publish.packet_id = 0x1234;
    p.u.publish.topic = S("a/b");
    p.u.publish.payload = BIN("hello");
    struct mqtt_props *pr = &p.u.publish.props;
    pr->present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA) |
                  MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
    pr->message_expiry = 60;
    pr->correlation_data = BIN("\x00\x01");
    pr->response_topic = S("r");
    pr->sub_ids[0] = ids[0];
    pr->sub_ids[1] = ids[1];
    pr->sub_id_count = 2;
    uint8_t out[128];
    size_t n = mqtt_encode(&cli5, &p, out, sizeof(out));
    ASSERT(n > 0);
    ASSERT_EQ(out[0], 0x3C);
    struct mqtt_packet q;
    ASSERT_EQ(dec(&cli5, out, n, &q), 0);
    ASSERT(q.u.publish.dup);
    ASSERT_EQ(q.u.publish.qos, 2);
    ASSERT_EQ(q.u.publish.packet_id, 0x1234);
    ASSERT_EQ(q.u.publish.props.sub_id_count, 2);
    ASSERT_EQ(q.u.publish.props.sub_ids[1], 300);
    ASSERT_EQ(q.u.publish.props.correlation_data.len, 2);
    ASSERT_MEM_EQ(q.u.publish.payload.p, "hello", 5);
    /* 3.1.1 drops v5 properties */
    n = mqtt_encode(&cli4, &p, out, sizeof(out));
    ASSERT_EQ(n, 2 + 2 + 3 + 2 + 5);
}

TEST(acks)
{
    struct mqtt_packet p;
    static const uint8_t puback[] = {0x40, 2, 0, 5};
    ASSERT_EQ(dec(&srv4, puback, sizeof(puback), &p), 0);
    ASSERT_EQ(p.u.ack.packet_id, 5);
    static const uint8_t pubrel_bad[] = {0x60, 2, 0, 5};
    ASSERT_EQ(dec(&srv4, pubrel_bad, sizeof(pubrel_bad), &p), MQTT_RC_MALFORMED);
    static const uint8_t pubrel[] = {0x62, 2, 0, 5};
    ASSERT_EQ(dec(&srv4, pubrel, sizeof(pubrel), &p), 0);
    static const uint8_t long311[] = {0x40, 3, 0, 5, 0};
    ASSERT_EQ(dec(&srv4, long311, sizeof(long311), &p), MQTT_RC_MALFORMED);
    static const uint8_t v5reason[] = {0x40, 3, 0, 5, 0x10};
    ASSERT_EQ(dec(&srv5, v5reason, sizeof(v5reason), &p), 0);
    ASSERT_EQ(p.u.ack.reason, 0x10);
    static const uint8_t v5bad[] = {0x70, 3, 0, 5, 0x10};
    ASSERT_EQ(dec(&srv5, v5bad, sizeof(v5bad), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t pid0[] = {0x40, 2, 0, 0};
    ASSERT_EQ(dec(&srv4, pid0, sizeof(pid0), &p), MQTT_RC_PROTOCOL_ERROR);
    /* short form encoding for success without properties */
    struct mqtt_packet a = {.type = MQTT_PUBREC};
    a.u.ack.packet_id = 9;
    uint8_t out[16];
    ASSERT_EQ(mqtt_encode(&srv5, &a, out, sizeof(out)), 4);
    a.u.ack.reason = 0x87;
    ASSERT_EQ(mqtt_encode(&srv5, &a, out, sizeof(out)), 6);
    ASSERT_EQ(out[4], 0x87);
    ASSERT_EQ(out[5], 0);
}

TEST(subscribe_rules)
{
    struct mqtt_packet p;
    static const uint8_t ok[] = {0x82, 10, 0, 1, 0, 3, 'a', '/', '#', 1, 0, 0};
    ASSERT_EQ(dec(&srv4, ok, sizeof(ok) - 2, &p), MQTT_INCOMPLETE); /* rl says 10 */
    static const uint8_t ok2[] = {0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1};
    ASSERT_EQ(dec(&srv4, ok2, sizeof(ok2), &p), 0);
    ASSERT_EQ(p.u.subscribe.count, 1);
    size_t pos = 0;
    struct mqtt_subscription s;
    ASSERT(mqtt_subscribe_next(&p.u.subscribe, &pos, &s));
    ASSERT_EQ(s.filter.len, 3);
    ASSERT_EQ(MQTT_SUBOPT_QOS(s.options), 1);
    ASSERT(!mqtt_subscribe_next(&p.u.subscribe, &pos, &s));
    static const uint8_t flags[] = {0x80, 8, 0, 1, 0, 3, 'a', '/', '#', 1};
    ASSERT_EQ(dec(&srv4, flags, sizeof(flags), &p), MQTT_RC_MALFORMED);
    static const uint8_t none[] = {0x82, 2, 0, 1};
    ASSERT_EQ(dec(&srv4, none, sizeof(none), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t badf[] = {0x82, 8, 0, 1, 0, 3, 'a', '#', 'b', 1};
    ASSERT_EQ(dec(&srv4, badf, sizeof(badf), &p), MQTT_RC_MALFORMED);
    static const uint8_t qos3[] = {0x82, 6, 0, 1, 0, 1, 'a', 3};
    ASSERT_EQ(dec(&srv4, qos3, sizeof(qos3), &p), MQTT_RC_MALFORMED);
    static const uint8_t opt311[] = {0x82, 6, 0, 1, 0, 1, 'a', 4};
    ASSERT_EQ(dec(&srv4, opt311, sizeof(opt311), &p), MQTT_RC_MALFORMED);
    static const uint8_t nl5[] = {0x82, 7, 0, 1, 0, 0, 1, 'a', 4};
    ASSERT_EQ(dec(&srv5, nl5, sizeof(nl5), &p), 0);
    static const uint8_t rh3[] = {0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30};
    ASSERT_EQ(dec(&srv5, rh3, sizeof(rh3), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t res5[] = {0x82, 7, 0, 1, 0, 0, 1, 'a', 0x40};
    ASSERT_EQ(dec(&srv5, res5, sizeof(res5), &p), MQTT_RC_MALFORMED);
    static const uint8_t sharenl[] = {0x82, 15,  0,   1,   0,   0,   9,   '$', 's',
                                      'h',  'a', 'r', 'e', '/', 'g', '/', 4};
    /* "$share/g/" (no filter after the group) is a well-formed topic filter:
     * the broker refuses that filter alone (0x8F), the codec lets it pass,
     * in both versions. A filter that is malformed as a filter still is. */
    ASSERT_EQ(dec(&srv5, sharenl, sizeof(sharenl), &p), 0);
    static const uint8_t share311[] = {0x82, 14,  0,   1,   0,   9,   '$', 's',
                                       'h',  'a', 'r', 'e', '/', 'g', '/', 0};
    ASSERT_EQ(dec(&srv4, share311, sizeof(share311), &p), 0);
    static const uint8_t sharebad[] = {0x82, 15,  0,   1,   0,   0,   9,   '$', 's',
                                       'h',  'a', 'r', 'e', '/', 'g', '+', 0};
    ASSERT_EQ(dec(&srv5, sharebad, sizeof(sharebad), &p), MQTT_RC_MALFORMED);
    static const uint8_t share_ok[] = {0x82, 16,  0,   1,   0,   0,   10,  '$', 's',
                                       'h',  'a', 'r', 'e', '/', 'g', '/', 't', 1};
    ASSERT_EQ(dec(&srv5, share_ok, sizeof(share_ok), &p), 0);
    static const uint8_t share_nl[] = {0x82, 16,  0,   1,   0,   0,   10,  '$', 's',
                                       'h',  'a', 'r', 'e', '/', 'g', '/', 't', 5};
    ASSERT_EQ(dec(&srv5, share_nl, sizeof(share_nl), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t subid0[] = {0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0};
    ASSERT_EQ(dec(&srv5, subid0, sizeof(subid0), &p), MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t unsub[] = {0xA2, 5, 0, 1, 0, 1, 'a'};
    ASSERT_EQ(dec(&srv4, unsub, sizeof(unsub), &p), 0);
    struct mqtt_str f;
    pos = 0;
    ASSERT(mqtt_unsubscribe_next(&p.u.unsubscribe, &pos, &f));
    ASSERT_EQ(f.p[0], 'a');
    static const uint8_t unsub0[] = {0xA2, 2, 0, 1};
    ASSERT_EQ(dec(&srv4, unsub0, sizeof(unsub0), &p), MQTT_RC_PROTOCOL_ERROR);
}

TEST(suback_unsuback_encode)
{
    uint8_t codes[] = {0x01, 0x80, 0x8F};
    struct mqtt_packet p = {.type = MQTT_SUBACK};
    p.u.suback.packet_id = 3;
    p.u.suback.reasons = (struct mqtt_bin){codes, 3};
    uint8_t out[32];
    size_t n = mqtt_encode(&srv4, &p, out, sizeof(out));
    static const uint8_t want4[] = {0x90, 5, 0, 3, 0x01, 0x80, 0x80};
    ASSERT_EQ(n, sizeof(want4));
    ASSERT_MEM_EQ(out, want4, n);
    n = mqtt_encode(&srv5, &p, out, sizeof(out));
    static const uint8_t want5[] = {0x90, 6, 0, 3, 0, 0x01, 0x80, 0x8F};
    ASSERT_EQ(n, sizeof(want5));
    ASSERT_MEM_EQ(out, want5, n);
    p.type = MQTT_UNSUBACK;
    n = mqtt_encode(&srv4, &p, out, sizeof(out));
    ASSERT_EQ(n, 4);
    ASSERT_EQ(out[0], 0xB0);
    struct mqtt_packet q;
    ASSERT_EQ(dec(&cli4, out, n, &q), 0);
    ASSERT_EQ(q.type, MQTT_UNSUBACK);
}

TEST(disconnect_ping_auth)
{
    struct mqtt_packet p;
    static const uint8_t d0[] = {0xE0, 0};
    ASSERT_EQ(dec(&srv5, d0, sizeof(d0), &p), 0);
    ASSERT_EQ(p.u.disconnect.reason, 0);
    static const uint8_t d4[] = {0xE0, 1, 0x04};
    ASSERT_EQ(dec(&srv5, d4, sizeof(d4), &p), 0);
    ASSERT_EQ(p.u.disconnect.reason, 4);
    ASSERT_EQ(dec(&srv4, d4, sizeof(d4), &p), MQTT_RC_MALFORMED);
    static const uint8_t ping[] = {0xC0, 1, 0};
    ASSERT_EQ(dec(&srv4, ping, sizeof(ping), &p), MQTT_RC_MALFORMED);
    static const uint8_t auth[] = {0xF0, 0};
    ASSERT_EQ(dec(&srv4, auth, sizeof(auth), &p), MQTT_RC_MALFORMED);
    ASSERT_EQ(dec(&srv5, auth, sizeof(auth), &p), 0);
    static const uint8_t connack_from_client[] = {0x20, 2, 0, 0};
    ASSERT_EQ(dec(&srv4, connack_from_client, sizeof(connack_from_client), &p),
              MQTT_RC_PROTOCOL_ERROR);
    static const uint8_t type0[] = {0x00, 0};
    ASSERT_EQ(dec(&srv4, type0, sizeof(type0), &p), MQTT_RC_MALFORMED);
    struct mqtt_packet d = {.type = MQTT_DISCONNECT};
    d.u.disconnect.reason = MQTT_RC_SESSION_TAKEN_OVER;
    uint8_t out[8];
    ASSERT_EQ(mqtt_encode(&srv5, &d, out, sizeof(out)), 4);
    ASSERT_EQ(out[2], 0x8E);
    ASSERT_EQ(mqtt_encode(&srv4, &d, out, sizeof(out)), 2);
}

TEST(connack_encode)
{
    struct mqtt_packet p = {.type = MQTT_CONNACK};
    p.u.connack.session_present = true;
    uint8_t out[64];
    ASSERT_EQ(mqtt_encode(&srv4, &p, out, sizeof(out)), 4);
    ASSERT_EQ(out[2], 1);
    p.u.connack.props.present = MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID);
    p.u.connack.props.assigned_client_id = S("ward-1");
    size_t n = mqtt_encode(&srv5, &p, out, sizeof(out));
    struct mqtt_packet q;
    ASSERT_EQ(dec(&cli5, out, n, &q), 0);
    ASSERT_EQ(q.u.connack.props.assigned_client_id.len, 6);
    static const uint8_t badflags[] = {0x20, 2, 2, 0};
    ASSERT_EQ(dec(&cli4, badflags, sizeof(badflags), &q), MQTT_RC_MALFORMED);
}

TEST(too_large_reported_early)
{
    struct mqtt_codec c = srv4;
    c.max_packet_size = 100;
    /* only the fixed header of a 1000-byte packet */
    static const uint8_t hdr[] = {0x30, 0xE8, 0x07};
    struct mqtt_packet p;
    size_t used;
    ASSERT_EQ(mqtt_decode(&c, hdr, sizeof(hdr), &p, &used), MQTT_RC_PACKET_TOO_LARGE);
    static const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    ASSERT_EQ(mqtt_decode(&srv4, five, sizeof(five), &p, &used), MQTT_RC_MALFORMED);
}

TEST(page_boundary)
{
    struct page_end pe;
    page_end_open(&pe);
    static const uint8_t pkt[] = {0x32, 7, 0, 3, 'a', '/', 'b', 0, 1};
    uint8_t *at = page_end_put(&pe, pkt, sizeof(pkt));
    struct mqtt_packet p;
    for (size_t i = 0; i <= sizeof(pkt); i++) {
        size_t used;
        int rc = mqtt_decode(&srv4, pe.end - i, i, &p, &used);
        (void)rc; /* any answer, but no read past the page */
    }
    size_t used;
    ASSERT_EQ(mqtt_decode(&srv4, at, sizeof(pkt), &p, &used), 0);
    page_end_close(&pe);
}

TEST(connect_bridge_flag)
{
    struct mqtt_packet p;
    /* Level 0x84: a 3.1.1 bridge (Mosquitto's try_private). */
    static const uint8_t b4[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 0x84, 0x02, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, b4, sizeof(b4), &p), 0);
    ASSERT_EQ(p.u.connect.version, MQTT_V311);
    ASSERT(p.u.connect.bridge);
    ASSERT(p.u.connect.clean_start);
    /* Level 0x83 with "MQIsdp": a 3.1 bridge. */
    static const uint8_t b3[] = {0x10, 14,  0,    6, 'M', 'Q', 'I', 's',
                                 'd',  'p', 0x83, 0, 0,   10,  0,   0};
    ASSERT_EQ(dec(&srv0, b3, sizeof(b3), &p), 0);
    ASSERT_EQ(p.u.connect.version, MQTT_V31);
    ASSERT(p.u.connect.bridge);
    ASSERT_EQ(p.u.connect.keep_alive, 10);
    /* Without the bit: no bridge. */
    static const uint8_t plain[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, plain, sizeof(plain), &p), 0);
    ASSERT(!p.u.connect.bridge);
    /* 0x85: 5.0 has no bridge bit; refused as an unsupported level. */
    static const uint8_t b5[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 0x85, 0x02, 0, 60, 0, 0, 0};
    ASSERT_EQ(dec(&srv0, b5, sizeof(b5), &p), MQTT_RC_UNSUPPORTED_VERSION);
    /* The bit on a level that does not exist, or with the wrong name. */
    static const uint8_t b6[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 0x86, 0x02, 0, 60, 0, 0};
    ASSERT_EQ(dec(&srv0, b6, sizeof(b6), &p), MQTT_RC_UNSUPPORTED_VERSION);
    static const uint8_t b4i[] = {0x10, 14,  0,    6, 'M', 'Q', 'I', 's',
                                  'd',  'p', 0x84, 0, 0,   10,  0,   0};
    ASSERT_EQ(dec(&srv0, b4i, sizeof(b4i), &p), MQTT_RC_UNSUPPORTED_VERSION);
}

TEST(connect_bridge_flag_encode)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    p.u.connect.version = MQTT_V311;
    p.u.connect.bridge = true;
    p.u.connect.clean_start = true;
    p.u.connect.keep_alive = 60;
    p.u.connect.client_id = S("br");
    uint8_t out[64];
    size_t n = mqtt_encode(&cli4, &p, out, sizeof(out));
    ASSERT_EQ(n, 16);
    ASSERT_EQ(n, mqtt_encoded_size(&cli4, &p));
    ASSERT_MEM_EQ(out + 2, "\0\4MQTT\x84", 7);
    struct mqtt_packet q;
    ASSERT_EQ(dec(&srv0, out, n, &q), 0);
    ASSERT_EQ(q.u.connect.version, MQTT_V311);
    ASSERT(q.u.connect.bridge);
    ASSERT_EQ(q.u.connect.client_id.len, 2);
    /* 3.1 keeps its own name and level. */
    p.u.connect.version = MQTT_V31;
    n = mqtt_encode(&cli4, &p, out, sizeof(out));
    ASSERT(n > 0);
    ASSERT_MEM_EQ(out + 2, "\0\6MQIsdp\x83", 9);
    ASSERT_EQ(dec(&srv0, out, n, &q), 0);
    ASSERT_EQ(q.u.connect.version, MQTT_V31);
    ASSERT(q.u.connect.bridge);
    /* 5.0 never writes the bit. */
    p.u.connect.version = MQTT_V5;
    n = mqtt_encode(&cli5, &p, out, sizeof(out));
    ASSERT(n > 0);
    ASSERT_EQ(out[8], MQTT_V5);
    ASSERT_EQ(dec(&srv0, out, n, &q), 0);
    ASSERT(!q.u.connect.bridge);
}

int main(void)
{
    RUN(connect_311_spec_bytes);
    RUN(connect_v5_roundtrip_with_will_and_props);
    RUN(connect_errors);
    RUN(publish_all_qos_and_flags);
    RUN(publish_encode_v5_props);
    RUN(acks);
    RUN(subscribe_rules);
    RUN(suback_unsuback_encode);
    RUN(disconnect_ping_auth);
    RUN(connack_encode);
    RUN(too_large_reported_early);
    RUN(page_boundary);
    RUN(connect_bridge_flag);
    RUN(connect_bridge_flag_encode);
    TEST_DONE();
}
