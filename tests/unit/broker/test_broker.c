/* The broker behind a real net server on loopback, driven with packets the
 * codec encodes: the protocol handlers end to end, auth hooks, shutdown. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "broker/broker.h"
#include "mqtt/mqtt.h"
#include "net/net.h"
#include "test.h"

struct rig {
    struct broker *b;
    struct net_server *s;
    uint16_t port;
};

static void rig_start(struct rig *r, struct auth *a)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    cfg.max_packet_size = 4096;
    r->b = broker_new(&cfg);
    ASSERT(r->b);
    if (a)
        broker_set_auth(r->b, a);
    struct net_config nc = {1, 100, 8192, 1 << 20};
    r->s = net_server_new(&nc, broker_net_handler(), r->b);
    char err[256];
    ASSERT_EQ(net_server_listen(r->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    r->port = net_server_port(r->s, 0);
    ASSERT_EQ(broker_start(r->b), 0);
    ASSERT_EQ(net_server_start(r->s), 0);
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
    struct mqtt_codec codec;
    uint8_t buf[65536], pkt[65536];
    size_t have;
};

static void conn_open(struct conn *c, uint16_t port, uint8_t version)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    c->codec = (struct mqtt_codec){.version = version, .is_server = false};
    c->have = 0;
}

static void put(struct conn *c, const struct mqtt_packet *p)
{
    uint8_t out[8192];
    size_t n = mqtt_encode(&c->codec, p, out, sizeof(out));
    ASSERT(n > 0);
    ASSERT_EQ(write(c->fd, out, n), (ssize_t)n);
}

/* The next packet's type, 0 if the server closed, -1 on timeout. */
static int get(struct conn *c, struct mqtt_packet *p)
{
    for (;;) {
        size_t used;
        int rc = mqtt_decode(&c->codec, c->buf, c->have, p, &used);
        if (rc == 0) {
            memcpy(c->pkt, c->buf, used);
            memmove(c->buf, c->buf + used, c->have - used);
            c->have -= used;
            mqtt_decode(&c->codec, c->pkt, used, p, &used);
            return p->type;
        }
        ASSERT_EQ(rc, MQTT_INCOMPLETE);
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        if (poll(&pf, 1, 3000) != 1)
            return -1;
        ssize_t n = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
        if (n <= 0)
            return 0;
        c->have += (size_t)n;
    }
}

static uint8_t connect_as(struct conn *c, const char *id, const char *user, const char *pw)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    p.u.connect.protocol_name = (struct mqtt_str){(const uint8_t *)"MQTT", 4};
    p.u.connect.version = c->codec.version;
    p.u.connect.clean_start = true;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, strlen(id)};
    if (user) {
        p.u.connect.has_username = true;
        p.u.connect.username = (struct mqtt_str){(const uint8_t *)user, strlen(user)};
    }
    if (pw) {
        p.u.connect.has_password = true;
        p.u.connect.password = (struct mqtt_bin){(const uint8_t *)pw, strlen(pw)};
    }
    put(c, &p);
    struct mqtt_packet a;
    ASSERT_EQ(get(c, &a), MQTT_CONNACK);
    return a.u.connack.reason;
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
    close(c.fd);
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
    close(c.fd);
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
    close(c.fd);
    rig_stop(&r);
}

int main(void)
{
    RUN(connect_subscribe_publish_loop);
    RUN(malformed_gets_reason_and_others_unaffected);
    RUN(auth_refuses_and_shutdown_says_so);
    RUN(reconfigure_limits);
    TEST_DONE();
}
