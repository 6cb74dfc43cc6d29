/* The client against a scripted fake server on loopback: the server side
 * decodes with the codec and answers as each test says, so every branch of
 * the client (refusals, QoS flows, messages that arrive while waiting for an
 * ack, server DISCONNECT, garbage, silence) is reached deterministically. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "test.h"

typedef void (*script_fn)(int fd);

static size_t have; /* server input held; one server thread at a time */

struct server {
    int lfd;
    uint16_t port;
    script_fn script;
    pthread_t th;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0) {
        s->script(fd);
        close(fd);
    }
    return NULL;
}

static void server_start(struct server *s, script_fn fn)
{
    have = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(s->lfd >= 0);
    ASSERT_EQ(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ASSERT_EQ(listen(s->lfd, 4), 0);
    getsockname(s->lfd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    s->script = fn;
    pthread_create(&s->th, NULL, serve, s);
}

static void server_join(struct server *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* Reads one whole packet (server side). Returns its type, 0 on close. */
static uint8_t buf[65536], pkt[65536];
static int read_packet(int fd, struct mqtt_codec *codec, struct mqtt_packet *p)
{
    size_t used;
    for (;;) {
        int rc = mqtt_decode(codec, buf, have, p, &used);
        if (rc == 0) {
            memcpy(pkt, buf, used); /* p views stay valid in pkt */
            memmove(buf, buf + used, have - used);
            have -= used;
            mqtt_decode(codec, pkt, used, p, &used);
            if (p->type == MQTT_CONNECT)
                codec->version = p->u.connect.version;
            return p->type;
        }
        if (rc != MQTT_INCOMPLETE)
            return -1;
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
}

static void send_packet(int fd, const struct mqtt_codec *codec, const struct mqtt_packet *p)
{
    uint8_t out[4096];
    size_t n = mqtt_encode(codec, p, out, sizeof(out));
    ASSERT(n > 0);
    ASSERT_EQ(write(fd, out, n), (ssize_t)n);
}

static struct mqtt_codec server_codec(void)
{
    return (struct mqtt_codec){.version = 0, .is_server = true};
}

static void connack(int fd, struct mqtt_codec *c, uint8_t rc)
{
    struct mqtt_packet p;
    ASSERT_EQ(read_packet(fd, c, &p), MQTT_CONNECT);
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.reason = rc;
    if (c->version == MQTT_V5 && rc == 0) {
        a.u.connack.props.present = MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID);
        a.u.connack.props.assigned_client_id = (struct mqtt_str){(const uint8_t *)"given", 5};
    }
    send_packet(fd, c, &a);
}

static struct client_config config(uint16_t port, uint8_t version)
{
    return (struct client_config){.host = "127.0.0.1",
                                  .port = port,
                                  .version = version,
                                  .client_id = "",
                                  .keepalive = 0,
                                  .clean_start = true,
                                  .timeout_ms = 2000};
}

/* ---- scripts ---- */

static void script_refuse(int fd)
{
    struct mqtt_codec c = server_codec();
    connack(fd, &c, MQTT_RC_NOT_AUTHORIZED);
}

static void script_qos_flows(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p, a;
    connack(fd, &c, 0);
    /* QoS 1: a message of our own arrives before the PUBACK. */
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBLISH);
    uint16_t pid = p.u.publish.packet_id;
    struct mqtt_packet m = {.type = MQTT_PUBLISH};
    m.u.publish.topic = (struct mqtt_str){(const uint8_t *)"early", 5};
    m.u.publish.payload = (struct mqtt_bin){(const uint8_t *)"e", 1};
    send_packet(fd, &c, &m);
    a = (struct mqtt_packet){.type = MQTT_PUBACK};
    a.u.ack.packet_id = pid;
    send_packet(fd, &c, &a);
    /* QoS 2: PUBREC, then PUBREL/PUBCOMP. */
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBLISH);
    pid = p.u.publish.packet_id;
    a = (struct mqtt_packet){.type = MQTT_PUBREC};
    a.u.ack.packet_id = pid;
    send_packet(fd, &c, &a);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBREL);
    ASSERT_EQ(p.u.ack.packet_id, pid);
    a.type = MQTT_PUBCOMP;
    send_packet(fd, &c, &a);
    /* QoS 2 to the client, sent twice before PUBREL: handed out once. */
    m.u.publish.topic = (struct mqtt_str){(const uint8_t *)"q2", 2};
    m.u.publish.qos = 2;
    m.u.publish.packet_id = 77;
    send_packet(fd, &c, &m);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBREC);
    m.u.publish.dup = true;
    send_packet(fd, &c, &m);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBREC);
    a = (struct mqtt_packet){.type = MQTT_PUBREL, .flags = 2};
    a.u.ack.packet_id = 77;
    send_packet(fd, &c, &a);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBCOMP);
    m.u.publish.topic = (struct mqtt_str){(const uint8_t *)"last", 4};
    m.u.publish.qos = 0;
    m.u.publish.dup = false; /* MQTT-3.3.1-2: DUP is 0 on every QoS 0 message */
    m.u.publish.packet_id = 0;
    send_packet(fd, &c, &m);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_DISCONNECT);
}

static void script_suback(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_SUBSCRIBE);
    ASSERT_EQ(p.u.subscribe.count, 2);
    struct mqtt_packet a = {.type = MQTT_SUBACK};
    a.u.suback.packet_id = p.u.subscribe.packet_id;
    a.u.suback.reasons = (struct mqtt_bin){(const uint8_t *)"\x01\x87", 2};
    send_packet(fd, &c, &a);
    /* Then the server ends the session with a reason. */
    struct mqtt_packet d = {.type = MQTT_DISCONNECT};
    d.u.disconnect.reason = MQTT_RC_SESSION_TAKEN_OVER;
    send_packet(fd, &c, &d);
}

static void script_silent(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    read_packet(fd, &c, &p); /* the PUBLISH, never acknowledged */
    read_packet(fd, &c, &p); /* until the client goes */
}

static void script_garbage(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    read_packet(fd, &c, &p);
    ASSERT_EQ(write(fd, "\x20\xff\xff\xff\xff\x7f", 6), 6); /* a length of 5 bytes */
}

static void script_ping(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    int pings = 0, t;
    while ((t = read_packet(fd, &c, &p)) == MQTT_PINGREQ) {
        struct mqtt_packet r = {.type = MQTT_PINGRESP};
        send_packet(fd, &c, &r);
        pings++;
    }
    ASSERT_EQ(t, MQTT_DISCONNECT);
    ASSERT(pings >= 1);
}

/* ---- tests ---- */

TEST(refused_connack_is_reported)
{
    struct server s;
    server_start(&s, script_refuse);
    struct client_config cfg = config(s.port, MQTT_V5);
    struct client_result res;
    ASSERT(client_connect(&cfg, &res) == NULL);
    ASSERT_EQ(res.status, MQTT_RC_NOT_AUTHORIZED);
    ASSERT(strstr(res.error, "not authorized (0x87)"));
    server_join(&s);
}

TEST(connection_refused_names_the_host)
{
    struct server s;
    server_start(&s, script_refuse);
    uint16_t port = s.port;
    struct client_config cfg = config(port, MQTT_V5);
    struct client_result res;
    struct client *c = client_connect(&cfg, &res); /* let the server thread finish */
    ASSERT(!c);
    server_join(&s);
    ASSERT(client_connect(&cfg, &res) == NULL);
    ASSERT_EQ(res.status, -1);
    ASSERT(strstr(res.error, "cannot connect to 127.0.0.1"));
    cfg.host = "no-such-host.invalid";
    ASSERT(client_connect(&cfg, &res) == NULL);
    ASSERT(strstr(res.error, "cannot resolve no-such-host.invalid"));
}

TEST(qos_flows_and_held_messages)
{
    struct server s;
    server_start(&s, script_qos_flows);
    struct client_config cfg = config(s.port, MQTT_V5);
    cfg.debug = getenv("DEBUG") != NULL;
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    ASSERT_STR_EQ(res.assigned_id, "given");
    uint8_t reason = 0xff;
    ASSERT_EQ(client_publish(c, "t", "1", 1, 1, false, NULL, &reason), 0);
    ASSERT_EQ(reason, 0);
    ASSERT_EQ(client_publish(c, "t", "2", 1, 2, false, NULL, &reason), 0);
    struct client_message m;
    ASSERT_EQ(client_next(c, &m, 1000), 1); /* the one that came before the PUBACK */
    ASSERT_MEM_EQ(m.topic.p, "early", 5);
    ASSERT_EQ(client_next(c, &m, 1000), 1);
    ASSERT_MEM_EQ(m.topic.p, "q2", 2);
    ASSERT_EQ(m.qos, 2);
    int r2 = client_next(c, &m, 1000);
    if (r2 != 1)
        TEST_FAIL_("client_next: %s", client_error(c));
    ASSERT_MEM_EQ(m.topic.p, "last", 4);
    client_disconnect(c, 0);
    client_free(c);
    server_join(&s);
}

TEST(suback_codes_and_server_disconnect)
{
    struct server s;
    server_start(&s, script_suback);
    struct client_config cfg = config(s.port, MQTT_V5);
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    const char *filters[] = {"a/#", "b"};
    uint8_t codes[2];
    ASSERT_EQ(client_subscribe(c, filters, 2, 1, 7, codes), 0);
    ASSERT_EQ(codes[0], 1);
    ASSERT_EQ(codes[1], 0x87);
    struct client_message m;
    ASSERT_EQ(client_next(c, &m, 2000), -1);
    ASSERT(strstr(client_error(c), "0x8e"));
    client_free(c);
    server_join(&s);
}

TEST(ack_timeout)
{
    struct server s;
    server_start(&s, script_silent);
    struct client_config cfg = config(s.port, MQTT_V311);
    cfg.timeout_ms = 300;
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    uint8_t reason;
    ASSERT_EQ(client_publish(c, "t", "x", 1, 1, false, NULL, &reason), -1);
    ASSERT(strstr(client_error(c), "timed out waiting for PUBACK"));
    client_free(c);
    server_join(&s);
}

TEST(malformed_server_packet)
{
    struct server s;
    server_start(&s, script_garbage);
    struct client_config cfg = config(s.port, MQTT_V5);
    struct client_result res;
    ASSERT(client_connect(&cfg, &res) == NULL);
    ASSERT(strstr(res.error, "malformed packet from the server"));
    server_join(&s);
}

TEST(keepalive_ping)
{
    struct server s;
    server_start(&s, script_ping);
    struct client_config cfg = config(s.port, MQTT_V311);
    cfg.keepalive = 1;
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    struct client_message m;
    ASSERT_EQ(client_next(c, &m, 1500), 0); /* a ping went out meanwhile */
    client_disconnect(c, 0);
    client_free(c);
    server_join(&s);
}

int main(void)
{
    RUN(refused_connack_is_reported);
    RUN(connection_refused_names_the_host);
    RUN(qos_flows_and_held_messages);
    RUN(suback_codes_and_server_disconnect);
    RUN(ack_timeout);
    RUN(malformed_server_packet);
    RUN(keepalive_ping);
    TEST_DONE();
}
