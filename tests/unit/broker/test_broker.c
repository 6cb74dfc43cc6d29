/* The broker behind a real net server on loopback, driven with packets the
 * codec encodes (and a few raw byte strings the codec would refuse to make):
 * the protocol handlers end to end with their v5 reason codes and 3.1.1
 * return codes, QoS flows both ways, retained messages, wills, session
 * expiry, keep alive, authentication and ACLs, $SYS, slow consumers,
 * certificate identities and revocation on a TLS listener, shutdown.
 *
 * Nothing sleeps: a test that needs time to pass (keep alive, will delay,
 * session expiry) waits for the packet or the close that proves it, with a
 * deadline far above the time needed. "Nothing was delivered" is shown by a
 * PINGREQ whose PINGRESP is the next packet: the broker answers a
 * connection's packets in order. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/passwd.h"
#include "broker/broker.h"
#include "mqtt/mqtt.h"
#include "net/net.h"
#include "pki_fixture.h"
#include "scratch.h"
#include "test.h"
#include "tls/tls.h"

/* Generous: a loaded machine shared by many builds still answers in time. */
#define WAIT_MS 8000

static char dir[] = "/tmp/ward-broker-XXXXXX";

struct rig {
    struct broker *b;
    struct net_server *s;
    uint16_t port;
};

static void rig_open(struct rig *r, const struct broker_config *cfg, struct auth *a,
                     size_t max_output)
{
    r->b = broker_new(cfg);
    ASSERT(r->b);
    if (a)
        broker_set_auth(r->b, a);
    struct net_config nc = {.workers = 1,
                            .max_connections = 100,
                            .max_input = 8192,
                            .max_output = max_output,
                            .slow_consumer_timeout_ms = 300};
    r->s = net_server_new(&nc, broker_net_handler(), r->b);
    char err[256];
    ASSERT_EQ(net_server_listen(r->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    r->port = net_server_port(r->s, 0);
}

static void rig_go(struct rig *r)
{
    ASSERT_EQ(broker_start(r->b), 0);
    ASSERT_EQ(net_server_start(r->s), 0);
}

static struct broker_config small_config(void)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    cfg.max_packet_size = 4096;
    return cfg;
}

static void rig_start_cfg(struct rig *r, const struct broker_config *cfg, struct auth *a)
{
    rig_open(r, cfg, a, 1 << 20);
    rig_go(r);
}

static void rig_start(struct rig *r, struct auth *a)
{
    struct broker_config cfg = small_config();
    rig_start_cfg(r, &cfg, a);
}

static void rig_stop(struct rig *r)
{
    broker_shutdown(r->b);
    net_server_stop(r->s);
    net_server_join(r->s);
    net_server_free(r->s);
    broker_free(r->b);
}

struct conn {
    int fd;
    void *tls; /* a TLS client transport over fd (non-blocking), or NULL */
    struct mqtt_codec codec;
    uint8_t buf[65536], pkt[65536];
    size_t have;
};

static int tcp_to(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void conn_open(struct conn *c, uint16_t port, uint8_t version)
{
    c->fd = tcp_to(port);
    c->tls = NULL;
    c->codec = (struct mqtt_codec){.version = version, .is_server = false};
    c->have = 0;
}

static void conn_close(struct conn *c)
{
    if (c->tls)
        tls_transport_ops.destroy(c->tls);
    c->tls = NULL;
    close(c->fd);
}

/* Waits for the socket; false at the deadline. */
static bool wait_for(int fd, short ev, int ms)
{
    struct pollfd pf = {.fd = fd, .events = ev};
    return poll(&pf, 1, ms) == 1;
}

static void send_raw(struct conn *c, const void *data, size_t n)
{
    if (!c->tls) {
        ASSERT_EQ(write(c->fd, data, n), (ssize_t)n);
        return;
    }
    const uint8_t *p = data;
    while (n) {
        ssize_t w = tls_transport_ops.write(c->tls, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        ASSERT(w == TRANSPORT_WANT_READ || w == TRANSPORT_WANT_WRITE);
        ASSERT(wait_for(c->fd, w == TRANSPORT_WANT_READ ? POLLIN : POLLOUT, WAIT_MS));
    }
}

static void put(struct conn *c, const struct mqtt_packet *p)
{
    uint8_t out[8192];
    size_t n = mqtt_encode(&c->codec, p, out, sizeof(out));
    ASSERT(n > 0);
    send_raw(c, out, n);
}

/* Reads what is there: > 0 bytes, 0 closed, -1 nothing within ms. */
static ssize_t recv_some(struct conn *c, int ms)
{
    size_t room = sizeof(c->buf) - c->have;
    ASSERT(room > 0);
    if (!c->tls) {
        if (!wait_for(c->fd, POLLIN, ms))
            return -1;
        ssize_t n = read(c->fd, c->buf + c->have, room);
        return n < 0 ? 0 : n; /* a reset is a close too */
    }
    for (;;) {
        ssize_t n = tls_transport_ops.read(c->tls, c->buf + c->have, room);
        if (n > 0 || n == TRANSPORT_EOF || n == TRANSPORT_ERROR)
            return n > 0 ? n : 0;
        if (!wait_for(c->fd, n == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, ms))
            return -1;
    }
}

/* The next packet's type within ms, 0 if the server closed, -1 on timeout. */
static int get_within(struct conn *c, struct mqtt_packet *p, int ms)
{
    for (;;) {
        size_t used;
        int rc = mqtt_decode(&c->codec, c->buf, c->have, p, &used);
        if (rc == 0) {
            memcpy(c->pkt, c->buf, used);
            memmove(c->buf, c->buf + used, c->have - used);
            c->have -= used;
            ASSERT_EQ(mqtt_decode(&c->codec, c->pkt, used, p, &used), 0);
            return p->type;
        }
        ASSERT_EQ(rc, MQTT_INCOMPLETE);
        ssize_t n = recv_some(c, ms);
        if (n <= 0)
            return (int)n;
        c->have += (size_t)n;
    }
}

static int get(struct conn *c, struct mqtt_packet *p)
{
    return get_within(c, p, WAIT_MS);
}

/* The next packet, which must be of type t. */
static void expect(struct conn *c, struct mqtt_packet *p, int t)
{
    int got = get(c, p);
    if (got != t)
        TEST_FAIL_("expected packet type %d, got %d (0 closed, -1 timeout)", t, got);
}

/* The server sends DISCONNECT with `reason` (v5) and closes. */
static void expect_kicked(struct conn *c, uint8_t reason)
{
    struct mqtt_packet a;
    expect(c, &a, MQTT_DISCONNECT);
    ASSERT_EQ(a.u.disconnect.reason, reason);
    ASSERT_EQ(get(c, &a), 0);
}

/* The server closes without another packet. */
static void expect_closed(struct conn *c)
{
    struct mqtt_packet a;
    ASSERT_EQ(get(c, &a), 0);
}

/* Nothing is waiting for the client: the PINGRESP comes first. */
static void expect_nothing(struct conn *c)
{
    struct mqtt_packet p = {.type = MQTT_PINGREQ}, a;
    put(c, &p);
    expect(c, &a, MQTT_PINGRESP);
}

static struct mqtt_str str(const char *s)
{
    return (struct mqtt_str){(const uint8_t *)s, (uint16_t)strlen(s)};
}

static struct mqtt_packet connect_packet(const char *id, uint8_t version)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    p.u.connect.protocol_name = str("MQTT");
    p.u.connect.version = version;
    p.u.connect.clean_start = true;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id = str(id);
    return p;
}

/* Sends p and returns the CONNACK's reason; the whole CONNACK in *ack. */
static uint8_t connect_with(struct conn *c, const struct mqtt_packet *p, struct mqtt_packet *ack)
{
    put(c, p);
    expect(c, ack, MQTT_CONNACK);
    return ack->u.connack.reason;
}

static uint8_t connect_as(struct conn *c, const char *id, const char *user, const char *pw)
{
    struct mqtt_packet p = connect_packet(id, c->codec.version), a;
    if (user) {
        p.u.connect.has_username = true;
        p.u.connect.username = str(user);
    }
    if (pw) {
        p.u.connect.has_password = true;
        p.u.connect.password = (struct mqtt_bin){(const uint8_t *)pw, strlen(pw)};
    }
    return connect_with(c, &p, &a);
}

/* Opens and connects (clean start, no will): CONNACK must be 0. */
static void join(struct conn *c, uint16_t port, uint8_t version, const char *id)
{
    conn_open(c, port, version);
    ASSERT_EQ(connect_as(c, id, NULL, NULL), 0);
}

/* One filter; returns its SUBACK code. */
static uint8_t subscribe(struct conn *c, const char *filter, uint8_t opts, uint32_t sub_id)
{
    static uint16_t pid;
    struct mqtt_subscription s = {.filter = str(filter), .options = opts};
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2}, a;
    p.u.subscribe.packet_id = ++pid ? pid : ++pid;
    p.u.subscribe.count = 1;
    p.u.subscribe.subs = &s;
    if (sub_id) {
        p.u.subscribe.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
        p.u.subscribe.props.sub_ids[0] = sub_id;
        p.u.subscribe.props.sub_id_count = 1;
    }
    put(c, &p);
    expect(c, &a, MQTT_SUBACK);
    ASSERT_EQ(a.u.suback.packet_id, p.u.subscribe.packet_id);
    ASSERT_EQ(a.u.suback.reasons.len, 1);
    return a.u.suback.reasons.p[0];
}

static struct mqtt_packet publish_packet(const char *topic, const char *payload, uint8_t qos,
                                         bool retain, uint16_t pid)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = str(topic);
    p.u.publish.payload = (struct mqtt_bin){(const uint8_t *)payload, strlen(payload)};
    p.u.publish.qos = qos;
    p.u.publish.retain = retain;
    p.u.publish.packet_id = qos ? pid : 0;
    return p;
}

static void publish(struct conn *c, const char *topic, const char *payload, uint8_t qos,
                    bool retain, uint16_t pid)
{
    struct mqtt_packet p = publish_packet(topic, payload, qos, retain, pid);
    put(c, &p);
}

static void ack(struct conn *c, enum mqtt_type t, uint16_t pid, uint8_t reason)
{
    struct mqtt_packet p = {.type = t, .flags = t == MQTT_PUBREL ? 2 : 0};
    p.u.ack.packet_id = pid;
    p.u.ack.reason = reason;
    put(c, &p);
}

/* The next packet is an acknowledgement of type t for pid; returns its reason. */
static uint8_t expect_ack(struct conn *c, enum mqtt_type t, uint16_t pid)
{
    struct mqtt_packet a;
    expect(c, &a, t);
    ASSERT_EQ(a.u.ack.packet_id, pid);
    return a.u.ack.reason;
}

/* The next packet is a PUBLISH on topic with payload; returns it in *p. */
static void expect_msg(struct conn *c, struct mqtt_packet *p, const char *topic,
                       const char *payload)
{
    expect(c, p, MQTT_PUBLISH);
    if (p->u.publish.topic.len != strlen(topic) ||
        memcmp(p->u.publish.topic.p, topic, strlen(topic)) != 0)
        TEST_FAIL_("PUBLISH on '%.*s', expected '%s'", (int)p->u.publish.topic.len,
                   p->u.publish.topic.p, topic);
    ASSERT_EQ(p->u.publish.payload.len, strlen(payload));
    ASSERT_MEM_EQ(p->u.publish.payload.p, payload, strlen(payload));
}

TEST(connect_subscribe_publish_loop)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn c;
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "", NULL, NULL), 0);
    struct mqtt_subscription s = {{(const uint8_t *)"loop/#", 6}, 1};
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2}, a;
    p.u.subscribe.packet_id = 5;
    p.u.subscribe.count = 1;
    p.u.subscribe.subs = &s;
    put(&c, &p);
    ASSERT_EQ(get(&c, &a), MQTT_SUBACK);
    ASSERT_EQ(a.u.suback.packet_id, 5);
    ASSERT_EQ(a.u.suback.reasons.p[0], 1);
    struct mqtt_packet pub = {.type = MQTT_PUBLISH};
    pub.u.publish.topic = (struct mqtt_str){(const uint8_t *)"loop/x", 6};
    pub.u.publish.payload = (struct mqtt_bin){(const uint8_t *)"hi", 2};
    pub.u.publish.qos = 1;
    pub.u.publish.packet_id = 9;
    put(&c, &pub);
    /* PUBACK and the delivery, in either order. */
    bool acked = false, delivered = false;
    for (int i = 0; i < 2; i++) {
        int t = get(&c, &a);
        if (t == MQTT_PUBACK) {
            ASSERT_EQ(a.u.ack.packet_id, 9);
            acked = true;
        } else {
            ASSERT_EQ(t, MQTT_PUBLISH);
            ASSERT_MEM_EQ(a.u.publish.payload.p, "hi", 2);
            delivered = true;
        }
    }
    ASSERT(acked && delivered);
    conn_close(&c);
    rig_stop(&r);
}

TEST(malformed_gets_reason_and_others_unaffected)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn bad, good;
    conn_open(&bad, r.port, MQTT_V5);
    conn_open(&good, r.port, MQTT_V311);
    ASSERT_EQ(connect_as(&bad, "bad", NULL, NULL), 0);
    ASSERT_EQ(connect_as(&good, "good", NULL, NULL), 0);
    ASSERT_EQ(write(bad.fd,
                    "\x36\x06\x00\x01"
                    "a\x00\x01\x00",
                    8),
              8); /* QoS 3 */
    struct mqtt_packet a;
    ASSERT_EQ(get(&bad, &a), MQTT_DISCONNECT);
    ASSERT_EQ(a.u.disconnect.reason, MQTT_RC_MALFORMED);
    ASSERT_EQ(get(&bad, &a), 0);
    struct mqtt_packet ping = {.type = MQTT_PINGREQ};
    put(&good, &ping);
    ASSERT_EQ(get(&good, &a), MQTT_PINGRESP);
    /* Too large for max_packet_size: 0x95 from the fixed header alone. */
    struct conn big;
    conn_open(&big, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&big, "big", NULL, NULL), 0);
    ASSERT_EQ(write(big.fd, "\x30\xff\x7f", 3), 3);
    ASSERT_EQ(get(&big, &a), MQTT_DISCONNECT);
    ASSERT_EQ(a.u.disconnect.reason, MQTT_RC_PACKET_TOO_LARGE);
    close(bad.fd);
    close(good.fd);
    close(big.fd);
    rig_stop(&r);
}

TEST(auth_refuses_and_shutdown_says_so)
{
    struct auth *au = auth_new();
    struct auth_settings set = {.allow_anonymous = false, .no_match_allow = true};
    char err[256];
    ASSERT_EQ(auth_configure(au, &set, err, sizeof(err)), 0);
    struct rig r;
    rig_start(&r, au);
    struct conn c;
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "anon", NULL, NULL), MQTT_RC_NOT_AUTHORIZED);
    close(c.fd);
    conn_open(&c, r.port, MQTT_V311);
    ASSERT_EQ(connect_as(&c, "anon", NULL, NULL), MQTT_RC311_NOT_AUTHORIZED);
    close(c.fd);
    /* Anonymous allowed on this listener alone. */
    broker_set_listener_anonymous(r.b, 0, 1);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "anon", NULL, NULL), 0);
    broker_shutdown(r.b);
    struct mqtt_packet a;
    ASSERT_EQ(get(&c, &a), MQTT_DISCONNECT);
    ASSERT_EQ(a.u.disconnect.reason, MQTT_RC_SERVER_SHUTTING_DOWN);
    conn_close(&c);
    rig_stop(&r);
    auth_free(au);
}

TEST(reconfigure_limits)
{
    struct rig r;
    rig_start(&r, NULL);
    struct broker_config n;
    broker_config_defaults(&n);
    n.max_packet_size = 1 << 20; /* above the start value: capped */
    n.max_keepalive = 10;
    broker_reconfigure(r.b, &n);
    struct conn c;
    conn_open(&c, r.port, MQTT_V5);
    struct mqtt_packet p = {.type = MQTT_CONNECT}, a;
    p.u.connect.protocol_name = (struct mqtt_str){(const uint8_t *)"MQTT", 4};
    p.u.connect.version = MQTT_V5;
    p.u.connect.clean_start = true;
    p.u.connect.keep_alive = 300;
    put(&c, &p);
    ASSERT_EQ(get(&c, &a), MQTT_CONNACK);
    ASSERT_EQ(a.u.connack.props.server_keep_alive, 10);
    ASSERT_EQ(a.u.connack.props.max_packet_size, 4096);
    conn_close(&c);
    rig_stop(&r);
}

/* CONNECTs refused before a session exists, each with its v5 reason or
 * 3.1.1 return code, and first packets that are not a CONNECT. */
TEST(connect_refusals)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn c;
    struct mqtt_packet p, a;

    /* Enhanced authentication is not offered: 0x8C. */
    conn_open(&c, r.port, MQTT_V5);
    p = connect_packet("scram", MQTT_V5);
    p.u.connect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD);
    p.u.connect.props.auth_method = str("SCRAM-SHA-1");
    ASSERT_EQ(connect_with(&c, &p, &a), MQTT_RC_BAD_AUTH_METHOD);
    expect_closed(&c);
    conn_close(&c);

    /* MQTT-3.1.3-8: 3.1.1, empty id without clean session: 0x02. */
    conn_open(&c, r.port, MQTT_V311);
    p = connect_packet("", MQTT_V311);
    p.u.connect.clean_start = false;
    ASSERT_EQ(connect_with(&c, &p, &a), MQTT_RC311_IDENTIFIER_REJECTED);
    expect_closed(&c);
    conn_close(&c);

    /* A client id longer than 255 bytes. */
    char longid[300];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, longid, NULL, NULL), MQTT_RC_CLIENT_ID_NOT_VALID);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V311);
    ASSERT_EQ(connect_as(&c, longid, NULL, NULL), MQTT_RC311_IDENTIFIER_REJECTED);
    conn_close(&c);

    /* "$bridge/" ids belong to the broker's own bridges. */
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "$bridge/up", NULL, NULL), MQTT_RC_CLIENT_ID_NOT_VALID);
    conn_close(&c);

    /* MQTT-3.1.2-2: an unknown protocol level is answered in 3.1.1 form. */
    conn_open(&c, r.port, MQTT_V311);
    p = connect_packet("v6", 6);
    ASSERT_EQ(connect_with(&c, &p, &a), MQTT_RC311_BAD_PROTOCOL_VERSION);
    expect_closed(&c);
    conn_close(&c);

    /* A v5 CONNECT carrying a property CONNECT may not have (Topic Alias):
     * refused with the decoder's reason, in v5 form. */
    conn_open(&c, r.port, MQTT_V5);
    send_raw(&c,
             "\x10\x10\x00\x04MQTT\x05\x02\x00\x1e"
             "\x03\x23\x00\x01\x00\x00",
             18);
    expect(&c, &a, MQTT_CONNACK);
    ASSERT(a.u.connack.reason >= 0x80);
    expect_closed(&c);
    conn_close(&c);

    /* Anything else first: closed without an answer. */
    conn_open(&c, r.port, MQTT_V5);
    send_raw(&c, "\xc0\x00", 2);
    expect_closed(&c);
    conn_close(&c);

    /* And a CONNECT after CONNECT is a protocol error. */
    join(&c, r.port, MQTT_V5, "twice");
    p = connect_packet("twice", MQTT_V5);
    put(&c, &p);
    expect(&c, &a, MQTT_DISCONNECT);
    ASSERT(a.u.disconnect.reason >= 0x80);
    conn_close(&c);
    rig_stop(&r);
}

/* A broker configured below the protocol's maximum says so in CONNACK and
 * enforces it: QoS, retain, topic levels, keep alive; wills included. */
TEST(limits_announced_and_enforced)
{
    struct broker_config cfg = small_config();
    cfg.max_qos = 1;
    cfg.retain_available = false;
    cfg.max_topic_levels = 3;
    cfg.max_keepalive = 60;
    struct rig r;
    rig_start_cfg(&r, &cfg, NULL);
    struct conn c, d;
    struct mqtt_packet p, a;

    conn_open(&c, r.port, MQTT_V5);
    p = connect_packet("", MQTT_V5);
    p.u.connect.keep_alive = 0; /* the server's keep alive replaces it */
    p.u.connect.props.present =
        MQTT_HAS(MQTT_PROP_RECEIVE_MAX) | MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE) |
        MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX) | MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO);
    p.u.connect.props.receive_max = 5;
    p.u.connect.props.max_packet_size = 2000;
    p.u.connect.props.topic_alias_max = 2;
    p.u.connect.props.request_problem_info = 0;
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    const struct mqtt_props *pr = &a.u.connack.props;
    ASSERT(pr->present & MQTT_HAS(MQTT_PROP_MAX_QOS));
    ASSERT_EQ(pr->max_qos, 1);
    ASSERT(pr->present & MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE));
    ASSERT_EQ(pr->retain_available, 0);
    ASSERT(pr->present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE));
    ASSERT_EQ(pr->server_keep_alive, 60);
    ASSERT(pr->present & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID));
    ASSERT(pr->assigned_client_id.len > 5);
    ASSERT_MEM_EQ(pr->assigned_client_id.p, "ward-", 5);
    /* QoS 2 asked, QoS 1 granted; a filter deeper than 3 levels refused. */
    ASSERT_EQ(subscribe(&c, "l/#", 2, 0), 1);
    ASSERT_EQ(subscribe(&c, "a/b/c/d", 0, 0), MQTT_RC_TOPIC_FILTER_INVALID);
    publish(&c, "l/x", "ok", 1, false, 1);
    bool acked = false, got = false;
    for (int i = 0; i < 2; i++) {
        ASSERT(get(&c, &a) > 0);
        if (a.type == MQTT_PUBACK)
            acked = true;
        else if (a.type == MQTT_PUBLISH && a.u.publish.qos == 1)
            got = true;
    }
    ASSERT(acked && got);
    /* MQTT-3.2.2-14: RETAIN where it is not available. */
    publish(&c, "l/x", "r", 0, true, 0);
    expect_kicked(&c, MQTT_RC_RETAIN_NOT_SUPPORTED);
    conn_close(&c);
    /* MQTT-3.2.2-11: a QoS above the maximum. */
    join(&c, r.port, MQTT_V5, "q2");
    publish(&c, "l/x", "q", 2, false, 1);
    expect_kicked(&c, MQTT_RC_QOS_NOT_SUPPORTED);
    conn_close(&c);
    /* A topic deeper than allowed. */
    join(&c, r.port, MQTT_V5, "deep");
    publish(&c, "a/b/c/d", "q", 0, false, 0);
    expect_kicked(&c, MQTT_RC_TOPIC_NAME_INVALID);
    conn_close(&c);

    /* Wills are held to the same limits, before the session is used. */
    const struct {
        const char *topic;
        uint8_t qos;
        bool retain;
        uint8_t rc5;
    } wills[] = {
        {"a/b/c/d", 0, false, MQTT_RC_TOPIC_NAME_INVALID},
        {"w", 2, false, MQTT_RC_QOS_NOT_SUPPORTED},
        {"w", 0, true, MQTT_RC_RETAIN_NOT_SUPPORTED},
    };
    for (size_t i = 0; i < sizeof(wills) / sizeof(wills[0]); i++) {
        conn_open(&d, r.port, MQTT_V5);
        p = connect_packet("willer", MQTT_V5);
        p.u.connect.will_flag = true;
        p.u.connect.will_topic = str(wills[i].topic);
        p.u.connect.will_qos = wills[i].qos;
        p.u.connect.will_retain = wills[i].retain;
        ASSERT_EQ(connect_with(&d, &p, &a), wills[i].rc5);
        expect_closed(&d);
        conn_close(&d);
    }
    /* 3.1.1 has no code for it: "server unavailable". */
    conn_open(&d, r.port, MQTT_V311);
    p = connect_packet("willer", MQTT_V311);
    p.u.connect.will_flag = true;
    p.u.connect.will_topic = str("w");
    p.u.connect.will_qos = 2;
    ASSERT_EQ(connect_with(&d, &p, &a), MQTT_RC311_SERVER_UNAVAILABLE);
    conn_close(&d);
    rig_stop(&r);
}

/* Topic aliases from the client (MQTT-3.3.2-7..12). */
TEST(topic_aliases)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn sub, c;
    struct mqtt_packet p, a;
    join(&sub, r.port, MQTT_V5, "alias-sub");
    ASSERT_EQ(subscribe(&sub, "al/#", 0, 0), 0);
    join(&c, r.port, MQTT_V5, "alias-pub");
    p = publish_packet("al/one", "1", 0, false, 0);
    p.u.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.u.publish.props.topic_alias = 3;
    put(&c, &p);
    expect_msg(&sub, &a, "al/one", "1");
    p = publish_packet("", "2", 0, false, 0); /* the alias alone */
    p.u.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.u.publish.props.topic_alias = 3;
    put(&c, &p);
    expect_msg(&sub, &a, "al/one", "2");
    p = publish_packet("al/two", "3", 0, false, 0); /* the alias now names another topic */
    p.u.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.u.publish.props.topic_alias = 3;
    put(&c, &p);
    expect_msg(&sub, &a, "al/two", "3");
    /* An alias never set. */
    p = publish_packet("", "4", 0, false, 0);
    p.u.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.u.publish.props.topic_alias = 4;
    put(&c, &p);
    expect_kicked(&c, MQTT_RC_PROTOCOL_ERROR);
    conn_close(&c);
    /* Above the Topic Alias Maximum we announced (10). */
    join(&c, r.port, MQTT_V5, "alias-pub");
    p = publish_packet("al/x", "5", 0, false, 0);
    p.u.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
    p.u.publish.props.topic_alias = 11;
    put(&c, &p);
    expect_kicked(&c, MQTT_RC_TOPIC_ALIAS_INVALID);
    conn_close(&c);
    expect_nothing(&sub);
    conn_close(&sub);
    rig_stop(&r);
}

/* QoS 2 from a client: PUBREC, a resend not delivered twice, PUBREL and
 * PUBCOMP, unknown ids, and the Receive Maximum we announced. */
TEST(qos2_inbound)
{
    struct broker_config cfg = small_config();
    cfg.receive_max = 2;
    struct rig r;
    rig_start_cfg(&r, &cfg, NULL);
    struct conn sub, c;
    struct mqtt_packet a;
    join(&sub, r.port, MQTT_V5, "q2-sub");
    ASSERT_EQ(subscribe(&sub, "q/#", 0, 0), 0);
    join(&c, r.port, MQTT_V5, "q2-pub");
    publish(&c, "q/1", "one", 2, false, 1);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBREC, 1), 0);
    expect_msg(&sub, &a, "q/1", "one");
    struct mqtt_packet again = publish_packet("q/1", "one", 2, false, 1);
    again.u.publish.dup = true;
    put(&c, &again);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBREC, 1), 0);
    expect_nothing(&sub); /* not delivered twice */
    ack(&c, MQTT_PUBREL, 1, 0);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBCOMP, 1), 0);
    ack(&c, MQTT_PUBREL, 1, 0); /* released already */
    ASSERT_EQ(expect_ack(&c, MQTT_PUBCOMP, 1), MQTT_RC_PACKET_ID_NOT_FOUND);
    /* Two awaiting PUBREL fill the window of 2; a third is one too many. */
    publish(&c, "q/2", "two", 2, false, 2);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBREC, 2), 0);
    publish(&c, "q/3", "three", 2, false, 3);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBREC, 3), 0);
    publish(&c, "q/4", "four", 2, false, 4);
    expect_kicked(&c, MQTT_RC_RECEIVE_MAX_EXCEEDED);
    conn_close(&c);
    expect_msg(&sub, &a, "q/2", "two");
    expect_msg(&sub, &a, "q/3", "three");
    expect_nothing(&sub);
    conn_close(&sub);
    rig_stop(&r);
}

/* QoS 1 and 2 towards a client: its Receive Maximum of 1 holds the second
 * message back until the first is acknowledged; PUBREC, PUBREL, PUBCOMP;
 * a PUBREC with a failure code ends the exchange; unknown ids. */
TEST(qos_outbound)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn sub, pub;
    struct mqtt_packet p, a;
    conn_open(&sub, r.port, MQTT_V5);
    p = connect_packet("out-sub", MQTT_V5);
    p.u.connect.props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
    p.u.connect.props.receive_max = 1;
    ASSERT_EQ(connect_with(&sub, &p, &a), 0);
    ASSERT_EQ(subscribe(&sub, "o/#", 2, 0), 2);
    join(&pub, r.port, MQTT_V311, "out-pub");
    publish(&pub, "o/1", "a", 1, false, 1);
    expect_ack(&pub, MQTT_PUBACK, 1);
    publish(&pub, "o/2", "b", 1, false, 2);
    expect_ack(&pub, MQTT_PUBACK, 2);
    expect_msg(&sub, &a, "o/1", "a");
    ASSERT_EQ(a.u.publish.qos, 1);
    uint16_t first = a.u.publish.packet_id;
    expect_nothing(&sub);                               /* o/2 waits for the window */
    ack(&sub, MQTT_PUBACK, (uint16_t)(first + 100), 0); /* unknown: ignored */
    expect_nothing(&sub);
    ack(&sub, MQTT_PUBACK, first, 0);
    expect_msg(&sub, &a, "o/2", "b");
    ack(&sub, MQTT_PUBACK, a.u.publish.packet_id, 0);

    /* QoS 2 out. */
    publish(&pub, "o/3", "c", 2, false, 3);
    expect_ack(&pub, MQTT_PUBREC, 3);
    ack(&pub, MQTT_PUBREL, 3, 0);
    expect_ack(&pub, MQTT_PUBCOMP, 3);
    expect_msg(&sub, &a, "o/3", "c");
    ASSERT_EQ(a.u.publish.qos, 2);
    uint16_t q2 = a.u.publish.packet_id;
    ack(&sub, MQTT_PUBCOMP, q2, 0); /* before PUBREC: not the right step, ignored */
    ack(&sub, MQTT_PUBREC, q2, 0);
    ASSERT_EQ(expect_ack(&sub, MQTT_PUBREL, q2), 0);
    ack(&sub, MQTT_PUBCOMP, q2, 0);
    ack(&sub, MQTT_PUBREC, (uint16_t)(q2 + 100), 0); /* unknown */
    ASSERT_EQ(expect_ack(&sub, MQTT_PUBREL, (uint16_t)(q2 + 100)), MQTT_RC_PACKET_ID_NOT_FOUND);

    /* MQTT 5 4.3.3: a PUBREC >= 0x80 ends the exchange: no PUBREL, and the
     * window is free for the next message. */
    publish(&pub, "o/4", "d", 2, false, 4);
    expect_ack(&pub, MQTT_PUBREC, 4);
    ack(&pub, MQTT_PUBREL, 4, 0);
    expect_ack(&pub, MQTT_PUBCOMP, 4);
    expect_msg(&sub, &a, "o/4", "d");
    ack(&sub, MQTT_PUBREC, a.u.publish.packet_id, MQTT_RC_UNSPECIFIED);
    publish(&pub, "o/5", "e", 1, false, 5);
    expect_ack(&pub, MQTT_PUBACK, 5);
    expect_msg(&sub, &a, "o/5", "e");
    ack(&sub, MQTT_PUBACK, a.u.publish.packet_id, 0);
    expect_nothing(&sub);
    conn_close(&sub);
    conn_close(&pub);
    rig_stop(&r);
}

/* Retained messages on SUBSCRIBE per Retain Handling (MQTT 5 3.8.3.1),
 * with RETAIN set and the subscription identifier; none for shared
 * subscriptions. */
TEST(retained_on_subscribe)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn pub, sub;
    struct mqtt_packet a;
    join(&pub, r.port, MQTT_V5, "ret-pub");
    publish(&pub, "r/a", "kept", 1, true, 1);
    expect_ack(&pub, MQTT_PUBACK, 1);
    join(&sub, r.port, MQTT_V5, "ret-sub");
    ASSERT_EQ(subscribe(&sub, "r/#", 1, 7), 1);
    expect_msg(&sub, &a, "r/a", "kept");
    ASSERT(a.u.publish.retain); /* MQTT-3.3.1-9 */
    ASSERT_EQ(a.u.publish.qos, 1);
    ASSERT_EQ(a.u.publish.props.sub_id_count, 1);
    ASSERT_EQ(a.u.publish.props.sub_ids[0], 7);
    ack(&sub, MQTT_PUBACK, a.u.publish.packet_id, 0);
    /* Retain Handling 1: only for a new subscription. */
    ASSERT_EQ(subscribe(&sub, "r/#", 0x10 | 1, 0), 1);
    expect_nothing(&sub);
    ASSERT_EQ(subscribe(&sub, "r/a", 0x10 | 0, 0), 0);
    expect_msg(&sub, &a, "r/a", "kept");
    ASSERT_EQ(a.u.publish.qos, 0);
    /* Retain Handling 2: never. */
    ASSERT_EQ(subscribe(&sub, "r/+", 0x20 | 0, 0), 0);
    expect_nothing(&sub);
    /* Shared subscriptions get none. */
    ASSERT_EQ(subscribe(&sub, "$share/g/r/#", 0, 0), 0);
    expect_nothing(&sub);
    conn_close(&sub);
    conn_close(&pub);
    rig_stop(&r);
}

TEST(unsubscribe_codes)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn c;
    struct mqtt_packet a;
    join(&c, r.port, MQTT_V5, "unsub");
    ASSERT_EQ(subscribe(&c, "u/a", 0, 0), 0);
    struct mqtt_str f[] = {str("u/a"), str("u/none")};
    struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE, .flags = 2};
    p.u.unsubscribe.packet_id = 42;
    p.u.unsubscribe.count = 2;
    p.u.unsubscribe.filters = f;
    put(&c, &p);
    expect(&c, &a, MQTT_UNSUBACK);
    ASSERT_EQ(a.u.suback.packet_id, 42);
    ASSERT_EQ(a.u.suback.reasons.len, 2);
    ASSERT_EQ(a.u.suback.reasons.p[0], MQTT_RC_SUCCESS);
    ASSERT_EQ(a.u.suback.reasons.p[1], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
    publish(&c, "u/a", "x", 0, false, 0);
    expect_nothing(&c); /* no longer subscribed */
    conn_close(&c);
    rig_stop(&r);
}

/* DISCONNECT's session expiry rule and AUTH without a method. */
TEST(disconnect_and_auth_packets)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn c;
    struct mqtt_packet p;
    /* MQTT-3.14.2-2: from 0 to non-zero is a protocol error. */
    join(&c, r.port, MQTT_V5, "exp0");
    p = (struct mqtt_packet){.type = MQTT_DISCONNECT};
    p.u.disconnect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    p.u.disconnect.props.session_expiry = 30;
    put(&c, &p);
    expect_kicked(&c, MQTT_RC_PROTOCOL_ERROR);
    conn_close(&c);
    /* From non-zero to 0 is fine: the session ends with the connection. */
    conn_open(&c, r.port, MQTT_V5);
    struct mqtt_packet ck = connect_packet("exp30", MQTT_V5), a;
    ck.u.connect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    ck.u.connect.props.session_expiry = 30;
    ASSERT_EQ(connect_with(&c, &ck, &a), 0);
    p.u.disconnect.props.session_expiry = 0;
    put(&c, &p);
    expect_closed(&c);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ck.u.connect.clean_start = false;
    ASSERT_EQ(connect_with(&c, &ck, &a), 0);
    ASSERT(!a.u.connack.session_present);
    conn_close(&c);
    /* MQTT-4.12.0-1: AUTH when CONNECT named no method. */
    join(&c, r.port, MQTT_V5, "auth-pkt");
    p = (struct mqtt_packet){.type = MQTT_AUTH};
    p.u.auth.reason = MQTT_RC_CONTINUE_AUTH;
    put(&c, &p);
    expect_kicked(&c, MQTT_RC_PROTOCOL_ERROR);
    conn_close(&c);
    /* A 3.1.1 client sending garbage is closed without a DISCONNECT. */
    join(&c, r.port, MQTT_V311, "garbage");
    send_raw(&c, "\x36\x00", 2);
    expect_closed(&c);
    conn_close(&c);
    rig_stop(&r);
}

static struct mqtt_packet will_connect(const char *id, const char *topic, uint32_t delay,
                                       uint32_t expiry)
{
    struct mqtt_packet p = connect_packet(id, MQTT_V5);
    p.u.connect.will_flag = true;
    p.u.connect.will_topic = str(topic);
    p.u.connect.will_payload = (struct mqtt_bin){(const uint8_t *)"gone", 4};
    if (delay) {
        p.u.connect.will_props.present = MQTT_HAS(MQTT_PROP_WILL_DELAY);
        p.u.connect.will_props.will_delay = delay;
    }
    if (expiry) {
        p.u.connect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
        p.u.connect.props.session_expiry = expiry;
    }
    return p;
}

static void disconnect(struct conn *c, uint8_t reason)
{
    struct mqtt_packet p = {.type = MQTT_DISCONNECT};
    p.u.disconnect.reason = reason;
    put(c, &p);
}

/* When a will goes out (MQTT-3.1.2-8..10, 3.14.4-3, MQTT 5 3.1.3.2.2). */
TEST(wills)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn w, c, d;
    struct mqtt_packet p, a;
    join(&w, r.port, MQTT_V5, "watcher");
    ASSERT_EQ(subscribe(&w, "will/#", 0, 0), 0);

    /* The connection ends without DISCONNECT: the will goes out. */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("wa", "will/a", 0, 0);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    conn_close(&c);
    expect_msg(&w, &a, "will/a", "gone");

    /* A normal DISCONNECT discards it. The server has run its close
     * handler once the socket closes, so the watcher would already have it. */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("wb", "will/b", 0, 0);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    disconnect(&c, 0);
    expect_closed(&c);
    conn_close(&c);
    expect_nothing(&w);

    /* ...unless it says "with will" (0x04). */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("wc", "will/c", 0, 0);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    disconnect(&c, MQTT_RC_DISCONNECT_WITH_WILL);
    expect_closed(&c);
    conn_close(&c);
    expect_msg(&w, &a, "will/c", "gone");

    /* Taken over by a clean start: the old connection is told (0x8E) and
     * its will goes out. */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("wd", "will/d", 0, 0);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    join(&d, r.port, MQTT_V5, "wd");
    expect_kicked(&c, MQTT_RC_SESSION_TAKEN_OVER);
    conn_close(&c);
    expect_msg(&w, &a, "will/d", "gone");
    conn_close(&d);

    /* Taken over by a connection continuing the session, with the will
     * delayed: no will (the session goes on). */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("we", "will/e", 60, 60);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    conn_open(&d, r.port, MQTT_V5);
    p = connect_packet("we", MQTT_V5);
    p.u.connect.clean_start = false;
    p.u.connect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = 60;
    ASSERT_EQ(connect_with(&d, &p, &a), 0);
    ASSERT(a.u.connack.session_present);
    expect_kicked(&c, MQTT_RC_SESSION_TAKEN_OVER);
    conn_close(&c);
    expect_nothing(&w);
    conn_close(&d); /* no will any more: nothing later either */

    /* A delayed will goes out after its delay, from housekeeping. */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("wf", "will/f", 1, 60);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    conn_close(&c);
    expect_nothing(&w); /* not at once */
    expect_msg(&w, &a, "will/f", "gone");

    /* Reconnecting within the delay cancels it. */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("wg", "will/g", 60, 60);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    p = connect_packet("wg", MQTT_V5);
    p.u.connect.clean_start = false;
    p.u.connect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = 60;
    /* Found offline, or still attached if the close is on its way (then
     * taken over): either way the session continues and its will is gone. */
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT(a.u.connack.session_present);
    disconnect(&c, 0);
    expect_closed(&c);
    conn_close(&c);
    expect_nothing(&w);
    conn_close(&w);
    rig_stop(&r);
}

/* $SYS from housekeeping, and a session expiring there. The $SYS
 * publications, one a second, are the clock: by the fourth after the
 * session with a 1 s expiry went offline, at least 2 s have passed, and
 * $SYS counts only the watcher's session. */
TEST(session_expiry_and_sys)
{
    struct broker_config cfg = small_config();
    cfg.sys_interval_s = 1;
    struct rig r;
    rig_start_cfg(&r, &cfg, NULL);
    struct conn w, c;
    struct mqtt_packet p, a;
    join(&w, r.port, MQTT_V5, "sys-watcher");
    ASSERT_EQ(subscribe(&w, "$SYS/broker/clients/total", 0, 0), 0);
    conn_open(&c, r.port, MQTT_V5);
    p = connect_packet("short", MQTT_V5);
    p.u.connect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = 1;
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT_EQ(subscribe(&c, "s/#", 1, 0), 1);
    conn_close(&c);
    for (int live = 0; live < 4;) {
        expect(&w, &a, MQTT_PUBLISH);
        live += !a.u.publish.retain; /* the one sent on SUBSCRIBE has RETAIN set */
    }
    ASSERT_EQ(a.u.publish.payload.len, 1);
    ASSERT_EQ(a.u.publish.payload.p[0], '1');
    conn_open(&c, r.port, MQTT_V5);
    p.u.connect.clean_start = false;
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT(!a.u.connack.session_present); /* expired */
    conn_close(&c);
    conn_close(&w);
    rig_stop(&r);
}

/* A 3.1.1 session without clean session outlives its connection. */
TEST(persistent_311_session)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn c, pub;
    struct mqtt_packet p, a;
    conn_open(&c, r.port, MQTT_V311);
    p = connect_packet("keeper", MQTT_V311);
    p.u.connect.clean_start = false;
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT(!a.u.connack.session_present);
    ASSERT_EQ(subscribe(&c, "k/#", 1, 0), 1);
    conn_close(&c);
    /* Queued while offline, delivered on return. */
    join(&pub, r.port, MQTT_V311, "k-pub");
    publish(&pub, "k/1", "later", 1, false, 1);
    expect_ack(&pub, MQTT_PUBACK, 1);
    conn_open(&c, r.port, MQTT_V311);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT(a.u.connack.session_present);
    expect_msg(&c, &a, "k/1", "later");
    ack(&c, MQTT_PUBACK, a.u.publish.packet_id, 0);
    conn_close(&c);
    /* A clean session ends it. */
    conn_open(&c, r.port, MQTT_V311);
    p.u.connect.clean_start = true;
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT(!a.u.connack.session_present);
    conn_close(&c);
    conn_close(&pub);
    rig_stop(&r);
}

/* No CONNECT within connect_timeout_ms; silence past 1.5 x keep alive. */
TEST(timeouts)
{
    struct broker_config cfg = small_config();
    cfg.connect_timeout_ms = 200;
    struct rig r;
    rig_start_cfg(&r, &cfg, NULL);
    struct conn c, w;
    struct mqtt_packet p, a;
    conn_open(&c, r.port, MQTT_V5);
    expect_closed(&c);
    conn_close(&c);
    join(&w, r.port, MQTT_V5, "ka-watcher");
    ASSERT_EQ(subscribe(&w, "will/ka", 0, 0), 0);
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("ka", "will/ka", 0, 0);
    p.u.connect.keep_alive = 1;
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    expect_kicked(&c, MQTT_RC_KEEP_ALIVE_TIMEOUT); /* MQTT-3.1.2-24 */
    expect_msg(&w, &a, "will/ka", "gone");
    conn_close(&c);
    conn_close(&w);
    rig_stop(&r);
}

/* A subscriber that does not read costs itself only: its output stays
 * over its bound, the publisher feeding it waits (backpressure), and after
 * the slow-consumer timeout it is disconnected and the publisher carries
 * on. */
TEST(slow_consumer_disconnected)
{
    struct broker_config cfg = small_config();
    struct rig r;
    rig_open(&r, &cfg, NULL, 16384);
    rig_go(&r);
    struct conn slow, pub;
    int small = 4096;
    slow.fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(r.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(connect(slow.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    slow.tls = NULL;
    slow.have = 0;
    slow.codec = (struct mqtt_codec){.version = MQTT_V5};
    ASSERT_EQ(connect_as(&slow, "slow", NULL, NULL), 0);
    ASSERT_EQ(subscribe(&slow, "flood", 0, 0), 0);
    join(&pub, r.port, MQTT_V5, "flooder");
    char payload[3001];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    /* Far more than the socket buffers and the 16 KiB bound hold. */
    for (int i = 0; i < 4000; i++)
        publish(&pub, "flood", payload, 0, false, 0);
    expect_nothing(&pub);
    /* The slow one finds, after what was sent, the end of its connection. */
    struct mqtt_packet a;
    int t, n = 0;
    while ((t = get(&slow, &a)) == MQTT_PUBLISH)
        n++;
    ASSERT_EQ(t, 0);
    ASSERT(n < 4000);
    conn_close(&slow);
    conn_close(&pub);
    rig_stop(&r);
}

static void sys_source(void *ctx, broker_sys_emit_fn emit, void *ectx)
{
    emit(ectx, "$SYS/test/answer", (const char *)ctx);
}

/* Values from outside the broker in $SYS; reconfiguring what needs a
 * restart changes nothing. */
TEST(sys_sources_and_reconfigure)
{
    struct broker_config cfg = small_config();
    struct rig r;
    rig_open(&r, &cfg, NULL, 1 << 20);
    broker_add_sys_source(r.b, sys_source, "42");
    rig_go(&r);
    struct conn c;
    struct mqtt_packet a;
    join(&c, r.port, MQTT_V5, "sys");
    /* $SYS is published at start, retained. */
    ASSERT_EQ(subscribe(&c, "$SYS/test/#", 0, 0), 0);
    expect_msg(&c, &a, "$SYS/test/answer", "42");
    ASSERT_EQ(subscribe(&c, "$SYS/broker/version", 0, 0), 0);
    expect(&c, &a, MQTT_PUBLISH);
    ASSERT(a.u.publish.payload.len > 5);
    ASSERT_MEM_EQ(a.u.publish.payload.p, "ward ", 5);
    /* Clients may not publish into $SYS: acknowledged, not delivered. */
    publish(&c, "$SYS/test/answer", "43", 1, false, 9);
    expect_ack(&c, MQTT_PUBACK, 9);
    expect_nothing(&c);
    conn_close(&c);
    struct broker_config n = cfg;
    n.max_qos = 1; /* needs a restart: ignored */
    n.max_packet_size = 1000;
    broker_reconfigure(r.b, &n);
    conn_open(&c, r.port, MQTT_V5);
    struct mqtt_packet p = connect_packet("after", MQTT_V5);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT(!(a.u.connack.props.present & MQTT_HAS(MQTT_PROP_MAX_QOS)));
    ASSERT_EQ(a.u.connack.props.max_packet_size, 1000); /* smaller: at once */
    conn_close(&c);
    rig_stop(&r);
}

static struct auth *auth_with(const struct auth_settings *set)
{
    struct auth *au = auth_new();
    char err[512];
    if (auth_configure(au, set, err, sizeof(err)) != 0)
        TEST_FAIL_("auth_configure: %s", err);
    return au;
}

/* User names and passwords: the v5 reasons and 3.1.1 codes of each
 * failure, then the rate limit on one address. */
TEST(passwords)
{
    struct passwd_db db;
    char err[256];
    passwd_db_init(&db);
    ASSERT_EQ(passwd_set(&db, "alice", "secret", 6, err, sizeof(err)), 0);
    ASSERT_EQ(passwd_save(&db, scratch_path("pw.conf"), err, sizeof(err)), 0);
    passwd_db_free(&db);
    struct auth_settings set = {
        .allow_anonymous = false, .no_match_allow = true, .password_file = scratch_path("pw.conf")};
    struct auth *au = auth_with(&set);
    struct rig r;
    rig_start(&r, au);
    broker_set_listener_password(r.b, 0, true); /* no certificates here: no effect */
    broker_set_listener_password(r.b, 0, false);
    broker_set_listener_password(r.b, 64, true); /* out of range: ignored */
    broker_set_listener_anonymous(r.b, 64, 1);
    struct conn c;
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a1", "alice", "secret"), 0);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a2", "alice", "wrong"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    expect_closed(&c);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V311);
    ASSERT_EQ(connect_as(&c, "a3", "alice", "wrong"), MQTT_RC311_BAD_USERNAME_OR_PASSWORD);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a4", "mallory", "x"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a5", NULL, NULL), MQTT_RC_NOT_AUTHORIZED);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a6", "alice", "wrong"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a7", "alice", "wrong"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    conn_close(&c);
    /* After six failures in a row from 127.0.0.1 even the right password
     * is refused for a while. */
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "a8", "alice", "secret"), MQTT_RC_CONNECTION_RATE_EXCEEDED);
    conn_close(&c);
    rig_stop(&r);
    auth_free(au);
}

/* ACL denials: the PUBACK/PUBREC reason in v5, a normal flow in 3.1.1
 * (MQTT-3.3.5-2), SUBACK 0x87/0x80, wills dropped, deny_disconnect. */
TEST(acl_denials)
{
    scratch_write("acl.conf", "rules = [\n"
                              "  {\"permit\": \"deny\", \"action\": \"publish\", \"topics\": "
                              "[\"secret/#\"]}\n"
                              "  {\"permit\": \"deny\", \"action\": \"subscribe\", \"topics\": "
                              "[\"private/#\"]}\n"
                              "]\n");
    struct auth_settings set = {
        .allow_anonymous = true, .no_match_allow = true, .acl_file = scratch_path("acl.conf")};
    struct auth *au = auth_with(&set);
    struct rig r;
    rig_start(&r, au);
    struct conn c, w, v3;
    struct mqtt_packet p, a;
    join(&w, r.port, MQTT_V5, "acl-watch");
    ASSERT_EQ(subscribe(&w, "secret/#", 0, 0), 0); /* subscribing is allowed */
    ASSERT_EQ(subscribe(&w, "private/#", 0, 0), MQTT_RC_NOT_AUTHORIZED);
    ASSERT_EQ(subscribe(&w, "$share/g/private/x", 0, 0), MQTT_RC_NOT_AUTHORIZED);
    join(&c, r.port, MQTT_V5, "acl-pub");
    publish(&c, "secret/a", "x", 0, false, 0);
    publish(&c, "secret/a", "x", 1, false, 1);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBACK, 1), MQTT_RC_NOT_AUTHORIZED);
    publish(&c, "secret/a", "x", 2, false, 2);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBREC, 2), MQTT_RC_NOT_AUTHORIZED);
    expect_nothing(&w);
    join(&v3, r.port, MQTT_V311, "acl-311");
    ASSERT_EQ(subscribe(&v3, "private/#", 0, 0), 0x80);
    publish(&v3, "secret/b", "y", 1, false, 1);
    ASSERT_EQ(expect_ack(&v3, MQTT_PUBACK, 1), 0);
    publish(&v3, "secret/b", "y", 2, false, 2);
    ASSERT_EQ(expect_ack(&v3, MQTT_PUBREC, 2), 0);
    ack(&v3, MQTT_PUBREL, 2, 0);
    ASSERT_EQ(expect_ack(&v3, MQTT_PUBCOMP, 2), 0);
    expect_nothing(&w);
    /* A will it may not publish is dropped, the connection accepted. */
    conn_open(&c, r.port, MQTT_V5);
    p = will_connect("acl-will", "secret/will", 0, 0);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    conn_close(&c);
    conn_open(&c, r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&c, "acl-will", NULL, NULL), 0); /* after the close */
    conn_close(&c);
    expect_nothing(&w);
    /* auth.deny_action = disconnect. */
    set.deny_disconnect = true;
    char err[256];
    ASSERT_EQ(auth_configure(au, &set, err, sizeof(err)), 0);
    join(&c, r.port, MQTT_V5, "acl-kick");
    publish(&c, "secret/c", "z", 1, false, 1);
    expect_kicked(&c, MQTT_RC_NOT_AUTHORIZED);
    conn_close(&c);
    conn_close(&v3);
    conn_close(&w);
    rig_stop(&r);
    auth_free(au);
}

/* A reload that forbids existing subscriptions removes them, shared ones
 * included; allowed ones stay. */
TEST(acl_reload_removes_subscriptions)
{
    scratch_write("acl2.conf", "rules = []\n");
    struct auth_settings set = {
        .allow_anonymous = true, .no_match_allow = true, .acl_file = scratch_path("acl2.conf")};
    struct auth *au = auth_with(&set);
    struct rig r;
    rig_start(&r, au);
    struct conn s, pub;
    struct mqtt_packet a;
    join(&s, r.port, MQTT_V5, "reload-sub");
    ASSERT_EQ(subscribe(&s, "open/#", 0, 0), 0);
    ASSERT_EQ(subscribe(&s, "$share/grp/open/x", 0, 0), 0);
    ASSERT_EQ(subscribe(&s, "kept/#", 0, 0), 0);
    join(&pub, r.port, MQTT_V5, "reload-pub");
    publish(&pub, "open/x", "1", 0, false, 0);
    expect_msg(&s, &a, "open/x", "1");
    expect_msg(&s, &a, "open/x", "1"); /* once per subscription: shared too */
    scratch_write("acl2.conf", "rules = [{\"permit\": \"deny\", \"action\": \"subscribe\", "
                               "\"topics\": [\"open/#\"]}]\n");
    char err[256];
    ASSERT_EQ(auth_configure(au, &set, err, sizeof(err)), 0);
    broker_auth_reloaded(r.b);
    publish(&pub, "open/x", "2", 0, false, 0);
    publish(&pub, "kept/x", "3", 0, false, 0);
    expect_msg(&s, &a, "kept/x", "3");
    expect_nothing(&s);
    /* The removed subscription is gone, not merely filtered. */
    struct mqtt_str f[] = {str("open/#")};
    struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE, .flags = 2};
    p.u.unsubscribe.packet_id = 5;
    p.u.unsubscribe.count = 1;
    p.u.unsubscribe.filters = f;
    put(&s, &p);
    expect(&s, &a, MQTT_UNSUBACK);
    ASSERT_EQ(a.u.suback.reasons.p[0], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
    conn_close(&s);
    conn_close(&pub);
    rig_stop(&r);
    auth_free(au);
}

/* A 3.1.1 bridge (protocol level 0x84) does not get its own messages back. */
TEST(bridge_no_local)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn c;
    struct mqtt_packet p = connect_packet("mosq-bridge", MQTT_V311), a;
    p.u.connect.bridge = true;
    conn_open(&c, r.port, MQTT_V311);
    ASSERT_EQ(connect_with(&c, &p, &a), 0);
    ASSERT_EQ(subscribe(&c, "b/#", 0, 0), 0);
    publish(&c, "b/x", "loop", 0, false, 0);
    expect_nothing(&c);
    conn_close(&c);
    rig_stop(&r);
}

/* ---- TLS: certificate identities, revocation, $SYS per listener ---- */

/* A CA, a server certificate for 127.0.0.1, two client certificates
 * (OU=Devices, CN=dev-7 and CN=dev-8), dev-8's revocation on a CRL. */
static void make_pki(void)
{
    pki_fixture_ca();
    pki_fixture_ca_db("organizationalUnitName=optional\\ncommonName=supplied\\n");
    pki_fixture_csr("srv", "/CN=localhost");
    pki_fixture_sign("srv", "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
    scratch_sh("printf 'extendedKeyUsage=clientAuth\\n' > cli.ext");
    pki_fixture_csr("d7", "/OU=Devices/CN=dev-7");
    scratch_sh(PKI_CA " -days 2 -in d7.csr -extfile cli.ext -out d7.crt");
    pki_fixture_csr("d8", "/OU=Devices/CN=dev-8");
    scratch_sh(PKI_CA " -days 2 -in d8.csr -extfile cli.ext -out d8.crt");
    scratch_sh(PKI_CA " -gencrl -crldays 2 -out empty.crl && cp empty.crl live.crl");
    scratch_sh(PKI_CA " -revoke d8.crt && " PKI_CA " -gencrl -crldays 2 -out revoked.crl");
}

/* Opens a TLS connection with a client certificate (cert NULL: none).
 * Returns false if the handshake fails. */
static bool conn_open_tls(struct conn *c, uint16_t port, uint8_t version, const char *cert,
                          const char *key, struct tls_client **tc)
{
    char err[512];
    struct tls_client_config cc = {
        .cafile = scratch_path("ca.crt"), .certfile = cert, .keyfile = key};
    *tc = tls_client_new(&cc, err, sizeof(err));
    if (!*tc)
        TEST_FAIL_("tls_client_new: %s", err);
    c->fd = tcp_to(port);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->codec = (struct mqtt_codec){.version = version, .is_server = false};
    c->have = 0;
    c->tls = tls_client_transport_new(*tc, c->fd, "127.0.0.1");
    ASSERT(c->tls);
    for (;;) {
        ssize_t r = tls_transport_ops.handshake(c->tls);
        if (r == 1)
            return true;
        if (r == TRANSPORT_ERROR)
            return false;
        if (!wait_for(c->fd, r == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN, WAIT_MS))
            return false;
    }
}

struct tls_rig {
    struct rig r;
    struct tls_server *ts;
    struct auth *au;
    uint16_t tls_port;
};

static void tls_rig_start(struct tls_rig *t)
{
    scratch_write("tls-acl.conf",
                  "rules = [\n"
                  "  {\"permit\": \"allow\", \"cert_ou\": \"Devices\", \"action\": \"publish\",\n"
                  "   \"topics\": [\"devices/${cert_cn}/#\", \"users/${username}/#\"]}\n"
                  "  {\"permit\": \"allow\", \"action\": \"subscribe\"}\n"
                  "]\n");
    struct auth_settings set = {.allow_anonymous = false,
                                .no_match_allow = false,
                                .acl_file = scratch_path("tls-acl.conf")};
    t->au = auth_with(&set);
    char err[512];
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .cafile = scratch_path("ca.crt"),
                                   .crlfile = scratch_path("live.crl"),
                                   .verify = TLS_VERIFY_REQUIRED,
                                   .as_username = TLS_ID_CN,
                                   .as_clientid = TLS_ID_CN};
    t->ts = tls_server_new(&sc, err, sizeof(err));
    if (!t->ts)
        TEST_FAIL_("tls_server_new: %s", err);
    struct broker_config cfg = small_config();
    cfg.sys_interval_s = 1;
    rig_open(&t->r, &cfg, t->au, 1 << 20);
    ASSERT_EQ(net_server_listen_tls(t->r.s, "tls://127.0.0.1:0", t->ts, err, sizeof(err)), 0);
    t->tls_port = net_server_port(t->r.s, 1);
    broker_set_listener_anonymous(t->r.b, 0, 1); /* the plain listener, for watchers */
    broker_add_tls(t->r.b, "mtls main", t->ts);
    rig_go(&t->r);
}

static void tls_rig_stop(struct tls_rig *t)
{
    rig_stop(&t->r);
    tls_server_free(t->ts);
    auth_free(t->au);
}

/* The certificate names the client (peer_cert_as_clientid/username) and
 * the ACL sees its CN and OU; a certificate alone may be refused where a
 * password is required too. */
TEST(tls_certificate_identity)
{
    struct tls_rig t;
    tls_rig_start(&t);
    struct conn c, plain;
    struct tls_client *tc;
    ASSERT(conn_open_tls(&c, t.tls_port, MQTT_V5, scratch_path("d7.crt"), scratch_path("d7.key"),
                         &tc));
    ASSERT_EQ(connect_as(&c, "whatever", NULL, NULL), 0);
    publish(&c, "devices/dev-7/temp", "21", 1, false, 1);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBACK, 1), 0);
    publish(&c, "users/dev-7/x", "u", 1, false, 2);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBACK, 2), 0);
    publish(&c, "devices/dev-9/temp", "21", 1, false, 3);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBACK, 3), MQTT_RC_NOT_AUTHORIZED);
    /* Its session is "dev-7", whatever the CONNECT said, and it belongs to
     * the certificate: a plain client with that id may not take it over
     * (issue 11 item 2), and the device keeps its connection. */
    conn_open(&plain, t.r.port, MQTT_V5);
    ASSERT_EQ(connect_as(&plain, "dev-7", NULL, NULL), MQTT_RC_NOT_AUTHORIZED);
    conn_close(&plain);
    publish(&c, "devices/dev-7/temp", "22", 1, false, 4);
    ASSERT_EQ(expect_ack(&c, MQTT_PUBACK, 4), 0);
    conn_close(&c);
    tls_client_free(tc);
    join(&plain, t.r.port, MQTT_V5, "plain-1");
    /* Anonymous plain clients publish nowhere: no rule allows it. */
    publish(&plain, "devices/dev-7/temp", "x", 1, false, 1);
    ASSERT_EQ(expect_ack(&plain, MQTT_PUBACK, 1), MQTT_RC_NOT_AUTHORIZED);
    conn_close(&plain);
    /* A listener that wants a password as well. */
    broker_set_listener_password(t.r.b, 1, true);
    ASSERT(conn_open_tls(&c, t.tls_port, MQTT_V5, scratch_path("d7.crt"), scratch_path("d7.key"),
                         &tc));
    ASSERT_EQ(connect_as(&c, "x", NULL, NULL), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    conn_close(&c);
    tls_client_free(tc);
    broker_set_listener_password(t.r.b, 1, false);
    tls_rig_stop(&t);
}

/* After a CRL reload the clients it revokes are disconnected with 0x87;
 * the others stay. */
TEST(tls_kick_revoked)
{
    scratch_sh("cp empty.crl live.crl");
    struct tls_rig t;
    tls_rig_start(&t);
    struct conn good, bad, plain;
    struct tls_client *tg, *tb;
    ASSERT(conn_open_tls(&good, t.tls_port, MQTT_V5, scratch_path("d7.crt"), scratch_path("d7.key"),
                         &tg));
    ASSERT_EQ(connect_as(&good, "", NULL, NULL), 0);
    ASSERT(conn_open_tls(&bad, t.tls_port, MQTT_V5, scratch_path("d8.crt"), scratch_path("d8.key"),
                         &tb));
    ASSERT_EQ(connect_as(&bad, "", NULL, NULL), 0);
    join(&plain, t.r.port, MQTT_V5, "plain"); /* no certificate: never revoked */
    ASSERT_EQ(broker_kick_revoked(t.r.b), 0);
    scratch_sh("cp revoked.crl live.crl");
    char err[512];
    ASSERT_EQ(tls_server_reload(t.ts, err, sizeof(err)), 0);
    ASSERT_EQ(broker_kick_revoked(t.r.b), 1);
    expect_kicked(&bad, MQTT_RC_NOT_AUTHORIZED);
    expect_nothing(&good);
    expect_nothing(&plain);
    /* And dev-8 cannot come back. */
    conn_close(&bad);
    tls_client_free(tb);
    ASSERT(!conn_open_tls(&bad, t.tls_port, MQTT_V5, scratch_path("d8.crt"), scratch_path("d8.key"),
                          &tb) ||
           get(&bad, &(struct mqtt_packet){0}) <= 0);
    conn_close(&bad);
    tls_client_free(tb);
    conn_close(&good);
    tls_client_free(tg);
    conn_close(&plain);
    tls_rig_stop(&t);
}

/* $SYS/broker/tls/NAME/: failures per cause, days left of the server
 * certificate, the CAs and the CRL. */
TEST(tls_sys_topics)
{
    scratch_sh("cp empty.crl live.crl");
    struct tls_rig t;
    tls_rig_start(&t);
    struct conn w, c;
    struct mqtt_packet a;
    join(&w, t.r.port, MQTT_V5, "tls-sys");
    ASSERT_EQ(subscribe(&w, "$SYS/broker/tls/mtls_main/#", 0, 0), 0);
    /* A client without a certificate fails its handshake. */
    struct tls_client *tc;
    if (conn_open_tls(&c, t.tls_port, MQTT_V5, NULL, NULL, &tc)) {
        /* TLS 1.3: the refusal comes after the client's handshake is done;
         * what it sends may already meet a closed socket. */
        tls_transport_ops.write(c.tls, "\x10\x00", 2);
        ASSERT(get(&c, &a) <= 0);
    }
    conn_close(&c);
    tls_client_free(tc);
    bool cert = false, ca = false, crl = false, counted = false;
    while (!(cert && ca && crl && counted)) {
        expect(&w, &a, MQTT_PUBLISH);
        char topic[256], value[64];
        snprintf(topic, sizeof(topic), "%.*s", (int)a.u.publish.topic.len, a.u.publish.topic.p);
        snprintf(value, sizeof(value), "%.*s", (int)a.u.publish.payload.len, a.u.publish.payload.p);
        const char *leaf = topic + strlen("$SYS/broker/tls/mtls_main/");
        if (strcmp(leaf, "cert_days_left") == 0)
            cert = atoi(value) >= 1 && atoi(value) <= 2;
        else if (strcmp(leaf, "ca_days_left") == 0)
            ca = atoi(value) >= 1 && atoi(value) <= 2;
        else if (strcmp(leaf, "crl_days_left") == 0)
            crl = atoi(value) >= 1 && atoi(value) <= 2;
        else if (strcmp(leaf, "handshake_failures/no_client_certificate") == 0)
            counted = strcmp(value, "1") == 0;
        else if (strncmp(leaf, "handshake_failures/", 19) != 0)
            TEST_FAIL_("unexpected topic %s", topic);
    }
    conn_close(&w);
    tls_rig_stop(&t);
}

/* BUG (src/broker/broker.c, take_over): after a normal DISCONNECT
 * (reason 0x00, MQTT-3.14.4-3: the will is discarded) the connection stays
 * attached to its session until net has closed it, which takes up to 2 s
 * (CLOSE_GRACE_MS) while its output drains. A new connection with the same
 * client id in that window takes the session over, and take_over()
 * publishes the will: handle_disconnect only sets normal_disconnect, and
 * take_over() does not look at it (detach() does). Reproduced here by
 * leaving output queued for the disconnecting client (it does not read).
 * Fixed: take_over() discards the will of a normal DISCONNECT. */
TEST(will_discarded_when_taken_over_after_disconnect)
{
    struct broker_config cfg = small_config();
    struct rig r;
    rig_open(&r, &cfg, NULL, 64u << 20);
    rig_go(&r);
    struct conn w, a, b, pub;
    struct mqtt_packet p, ack;
    join(&w, r.port, MQTT_V5, "watcher");
    ASSERT_EQ(subscribe(&w, "will/#", 0, 0), 0);
    conn_open(&a, r.port, MQTT_V5);
    p = will_connect("same", "will/same", 0, 0);
    ASSERT_EQ(connect_with(&a, &p, &ack), 0);
    ASSERT_EQ(subscribe(&a, "fill", 0, 0), 0);
    join(&pub, r.port, MQTT_V5, "filler");
    char payload[3001];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    for (int i = 0; i < 4000; i++) /* 12 MB: more than the socket buffers hold */
        publish(&pub, "fill", payload, 0, false, 0);
    expect_nothing(&pub);
    disconnect(&a, 0); /* normal: the will must not go out */
    join(&b, r.port, MQTT_V5, "same");
    expect_nothing(&w);
    conn_close(&a);
    conn_close(&b);
    conn_close(&pub);
    conn_close(&w);
    rig_stop(&r);
}

/* broker_shutdown: every kind of client is told (as its protocol allows)
 * and closed, broker_wait_flushed sees them gone, and a connection that
 * arrives afterwards is refused. */
TEST(shutdown_then_wait_flushed)
{
    struct rig r;
    rig_start(&r, NULL);
    struct conn v5, v3, raw, late;
    join(&v5, r.port, MQTT_V5, "five");
    join(&v3, r.port, MQTT_V311, "three");
    conn_open(&raw, r.port, MQTT_V5); /* no CONNECT yet */
    expect_nothing(&v5);              /* all three are the broker's now */
    broker_shutdown(r.b);
    expect_kicked(&v5, MQTT_RC_SERVER_SHUTTING_DOWN);
    expect_closed(&v3);
    expect_closed(&raw);
    ASSERT(broker_wait_flushed(r.b, 5000));
    conn_open(&late, r.port, MQTT_V5); /* net still accepts here: the broker refuses */
    expect_closed(&late);
    ASSERT(broker_wait_flushed(r.b, 0));
    conn_close(&v5);
    conn_close(&v3);
    conn_close(&raw);
    conn_close(&late);
    rig_stop(&r);
}

/* With an argument, only the tests whose names contain it run. */
#define RUN_IF(name)                                                                               \
    do {                                                                                           \
        if (argc < 2 || strstr(#name, argv[1]))                                                    \
            RUN(name);                                                                             \
    } while (0)

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* TLS writes to a closed peer: an error, not a signal */

    scratch_open(dir);
    RUN_IF(connect_subscribe_publish_loop);
    RUN_IF(malformed_gets_reason_and_others_unaffected);
    RUN_IF(auth_refuses_and_shutdown_says_so);
    RUN_IF(reconfigure_limits);
    RUN_IF(connect_refusals);
    RUN_IF(limits_announced_and_enforced);
    RUN_IF(topic_aliases);
    RUN_IF(qos2_inbound);
    RUN_IF(qos_outbound);
    RUN_IF(retained_on_subscribe);
    RUN_IF(unsubscribe_codes);
    RUN_IF(disconnect_and_auth_packets);
    RUN_IF(wills);
    RUN_IF(session_expiry_and_sys);
    RUN_IF(persistent_311_session);
    RUN_IF(timeouts);
    RUN_IF(slow_consumer_disconnected);
    RUN_IF(sys_sources_and_reconfigure);
    RUN_IF(passwords);
    RUN_IF(acl_denials);
    RUN_IF(acl_reload_removes_subscriptions);
    RUN_IF(bridge_no_local);
    make_pki();
    RUN_IF(tls_certificate_identity);
    RUN_IF(tls_kick_revoked);
    RUN_IF(tls_sys_topics);
    RUN_IF(will_discarded_when_taken_over_after_disconnect);
    RUN_IF(shutdown_then_wait_flushed);
    SCRATCH_DONE();
}
