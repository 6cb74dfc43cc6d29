/* The client against a scripted fake server on loopback: the server side
 * decodes with the codec and answers as each test says, so every branch of
 * the client (refusals, QoS flows, messages that arrive while waiting for an
 * ack, server DISCONNECT, garbage, silence, TLS and its failures) is reached
 * deterministically. The TLS server's certificates are made at run time
 * with the openssl CLI. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "pki_fixture.h"
#include "scratch.h"
#include "test.h"
#include "tls/tls.h"

static char dir[] = "/tmp/ward-client-XXXXXX";

typedef void (*script_fn)(int fd);

static size_t have; /* server input held; one server thread at a time */

struct server {
    int lfd;
    uint16_t port;
    script_fn script;
    struct tls_server *tls; /* NULL: plain TCP */
    pthread_t th;
};

/* The server side's TLS transport while a TLS script runs (one at a time). */
static void *srv_tls;

/* Runs the server's TLS handshake on a non-blocking socket. */
static bool srv_handshake(int fd)
{
    for (;;) {
        ssize_t r = tls_transport_ops.handshake(srv_tls);
        if (r == 1)
            return true;
        if (r == TRANSPORT_ERROR)
            return false;
        struct pollfd p = {.fd = fd, .events = r == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN};
        if (poll(&p, 1, 10000) != 1)
            return false;
    }
}

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (s->tls) {
        fcntl(fd, F_SETFL, O_NONBLOCK);
        srv_tls = tls_transport_new(s->tls, fd, "client");
        if (srv_handshake(fd))
            s->script(fd);
        tls_transport_ops.destroy(srv_tls);
        srv_tls = NULL;
    } else {
        s->script(fd);
    }
    close(fd);
    return NULL;
}

static ssize_t srv_io(int fd, void *b, size_t n, bool out)
{
    if (!srv_tls)
        return out ? write(fd, b, n) : read(fd, b, n);
    for (;;) {
        ssize_t r =
            out ? tls_transport_ops.write(srv_tls, b, n) : tls_transport_ops.read(srv_tls, b, n);
        if (r > 0)
            return r;
        if (r != TRANSPORT_WANT_READ && r != TRANSPORT_WANT_WRITE)
            return 0;
        struct pollfd p = {.fd = fd, .events = r == TRANSPORT_WANT_WRITE ? POLLOUT : POLLIN};
        if (poll(&p, 1, 10000) != 1)
            return 0;
    }
}

static void server_start_tls(struct server *s, script_fn fn, struct tls_server *tls)
{
    have = 0;
    s->tls = tls;
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

static void server_start(struct server *s, script_fn fn)
{
    server_start_tls(s, fn, NULL);
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
            ASSERT_EQ(mqtt_decode(codec, pkt, used, p, &used), 0);
            if (p->type == MQTT_CONNECT)
                codec->version = p->u.connect.version;
            return p->type;
        }
        if (rc != MQTT_INCOMPLETE)
            return -1;
        ssize_t n = srv_io(fd, buf + have, sizeof(buf) - have, false);
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
    ASSERT_EQ(srv_io(fd, out, n, true), (ssize_t)n);
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

/* Checks every CONNECT field the client sets, answers with a server keep
 * alive, then sends what a client never expects. */
static void script_connect_fields(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_CONNECT);
    const struct mqtt_connect *ck = &p.u.connect;
    ASSERT_EQ(ck->version, MQTT_V5);
    ASSERT(!ck->clean_start);
    ASSERT_EQ(ck->keep_alive, 100);
    ASSERT(ck->client_id.len == 2 && memcmp(ck->client_id.p, "me", 2) == 0);
    ASSERT(ck->has_username && ck->username.len == 4 && memcmp(ck->username.p, "user", 4) == 0);
    ASSERT(ck->has_password && ck->password.len == 2 && memcmp(ck->password.p, "pw", 2) == 0);
    ASSERT(ck->will_flag && ck->will_qos == 1 && ck->will_retain);
    ASSERT(ck->will_topic.len == 4 && memcmp(ck->will_topic.p, "bye/", 4) == 0);
    ASSERT(ck->will_payload.len == 3 && memcmp(ck->will_payload.p, "off", 3) == 0);
    ASSERT(ck->props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY));
    ASSERT_EQ(ck->props.session_expiry, 3600);
    ASSERT_EQ(ck->props.user_count, 1);
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.session_present = true;
    a.u.connack.props.present = MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE);
    a.u.connack.props.server_keep_alive = 20;
    send_packet(fd, &c, &a);
    /* QoS 0 with properties: no acknowledgement. */
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBLISH);
    ASSERT_EQ(p.u.publish.qos, 0);
    ASSERT_EQ(p.u.publish.props.message_expiry, 60);
    /* Unasked: a PINGRESP (ignored), a message, then a CONNACK (an error). */
    struct mqtt_packet r = {.type = MQTT_PINGRESP};
    send_packet(fd, &c, &r);
    struct mqtt_packet m = {.type = MQTT_PUBLISH};
    m.u.publish.topic = (struct mqtt_str){(const uint8_t *)"in", 2};
    m.u.publish.payload = (struct mqtt_bin){(const uint8_t *)"x", 1};
    send_packet(fd, &c, &m);
    send_packet(fd, &c, &a);
    read_packet(fd, &c, &p); /* until the client goes */
}

/* A SUBACK with fewer codes than filters, after a stray one. */
static void script_suback_short(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_SUBSCRIBE);
    struct mqtt_packet a = {.type = MQTT_SUBACK};
    a.u.suback.packet_id = (uint16_t)(p.u.subscribe.packet_id + 1000); /* stray: dropped */
    a.u.suback.reasons = (struct mqtt_bin){(const uint8_t *)"\x00", 1};
    send_packet(fd, &c, &a);
    a.u.suback.packet_id = p.u.subscribe.packet_id;
    send_packet(fd, &c, &a);
    read_packet(fd, &c, &p);
}

/* QoS 2 refused at PUBREC (v5): no PUBREL follows. Messages arrive while
 * the client waits, and are left unread. */
static void script_pubrec_refused(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBLISH);
    uint16_t pid = p.u.publish.packet_id;
    struct mqtt_packet m = {.type = MQTT_PUBLISH};
    m.u.publish.topic = (struct mqtt_str){(const uint8_t *)"held", 4};
    m.u.publish.payload = (struct mqtt_bin){(const uint8_t *)"1", 1};
    send_packet(fd, &c, &m);
    m.u.publish.payload = (struct mqtt_bin){(const uint8_t *)"2", 1};
    send_packet(fd, &c, &m);
    struct mqtt_packet a = {.type = MQTT_PUBREC};
    a.u.ack.packet_id = pid;
    a.u.ack.reason = MQTT_RC_NOT_AUTHORIZED;
    send_packet(fd, &c, &a);
    /* The next thing the client sends is its DISCONNECT, not a PUBREL. */
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_DISCONNECT);
}

/* Accepts, then closes: the client sees the end. */
static void script_close_after_connack(int fd)
{
    struct mqtt_codec c = server_codec();
    connack(fd, &c, 0);
}

/* Says nothing at all (a TLS client waits for a ServerHello in vain). */
static void script_mute(int fd)
{
    char b[512];
    while (read(fd, b, sizeof(b)) > 0)
        ;
}

/* Over TLS: CONNECT, a QoS 1 PUBLISH, DISCONNECT. */
static void script_tls(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_PUBLISH);
    struct mqtt_packet a = {.type = MQTT_PUBACK};
    a.u.ack.packet_id = p.u.publish.packet_id;
    send_packet(fd, &c, &a);
    ASSERT_EQ(read_packet(fd, &c, &p), MQTT_DISCONNECT);
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

TEST(connect_fields_and_unexpected_packets)
{
    struct server s;
    server_start(&s, script_connect_fields);
    struct client_config cfg = config(s.port, MQTT_V5);
    cfg.client_id = "me";
    cfg.clean_start = false;
    cfg.keepalive = 100;
    cfg.username = "user";
    cfg.password = "pw";
    cfg.will_topic = "bye/";
    cfg.will_payload = (const uint8_t *)"off";
    cfg.will_len = 3;
    cfg.will_qos = 1;
    cfg.will_retain = true;
    cfg.has_session_expiry = true;
    cfg.session_expiry = 3600;
    static const uint8_t user[] = "\x26\x00\x01k\x00\x01v";
    cfg.connect_user_props = (struct mqtt_bin){user, 7};
    cfg.debug = true; /* packets logged to stderr */
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    if (!c)
        TEST_FAIL_("client_connect: %s", res.error);
    ASSERT_EQ(res.status, 0);
    ASSERT(res.session_present);
    struct mqtt_props pr = {.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY), .message_expiry = 60};
    uint8_t reason = 0xff;
    ASSERT_EQ(client_publish(c, "t", "0", 1, 0, false, &pr, &reason), 0);
    ASSERT_EQ(reason, 0);
    struct client_message m;
    ASSERT_EQ(client_next(c, &m, -1), 1); /* the PINGRESP went by unseen */
    ASSERT_MEM_EQ(m.topic.p, "in", 2);
    ASSERT_EQ(client_next(c, &m, 2000), -1);
    ASSERT(strstr(client_error(c), "unexpected CONNACK from the server"));
    client_free(c);
    server_join(&s);
}

TEST(suback_with_too_few_codes)
{
    struct server s;
    server_start(&s, script_suback_short);
    struct client_config cfg = config(s.port, MQTT_V5);
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    const char *filters[] = {"a", "b"};
    uint8_t codes[2];
    ASSERT_EQ(client_subscribe(c, filters, 2, 0, 0, codes), -1);
    ASSERT(strstr(client_error(c), "SUBACK has 1 codes for 2 filters"));
    struct client_message m;
    ASSERT_EQ(client_next(c, &m, 0), 0); /* nothing more, and no waiting */
    client_free(c);
    server_join(&s);
}

TEST(pubrec_refusal_ends_qos2)
{
    struct server s;
    server_start(&s, script_pubrec_refused);
    struct client_config cfg = config(s.port, MQTT_V5);
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    uint8_t reason = 0;
    ASSERT_EQ(client_publish(c, "t", "q", 1, 2, false, NULL, &reason), 0);
    ASSERT_EQ(reason, MQTT_RC_NOT_AUTHORIZED);
    struct client_message m;
    ASSERT_EQ(client_next(c, &m, 0), 1); /* kept while waiting */
    ASSERT_MEM_EQ(m.payload.p, "1", 1);
    client_disconnect(c, 0);
    client_disconnect(c, 0); /* once only */
    client_free(c);          /* "2" still held: freed with the client */
    server_join(&s);
}

TEST(server_goes_away)
{
    struct server s;
    server_start(&s, script_close_after_connack);
    struct client_config cfg = config(s.port, MQTT_V311);
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    struct client_message m;
    server_join(&s);
    ASSERT_EQ(client_next(c, &m, 2000), -1);
    ASSERT(strstr(client_error(c), "the server closed the connection"));
    /* Sending to a closed connection fails once the peer's reset is in. */
    uint8_t reason;
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = client_publish(c, "t", "x", 1, 0, false, NULL, &reason);
    ASSERT_EQ(rc, -1);
    ASSERT(strstr(client_error(c), "connection lost while sending"));
    client_free(c);
}

/* A tls_server for 127.0.0.1 and localhost, and a client trusting its CA. */
static struct tls_server *tls_server_for_tests(void)
{
    char err[512];
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .verify = TLS_VERIFY_NONE};
    struct tls_server *t = tls_server_new(&sc, err, sizeof(err));
    if (!t)
        TEST_FAIL_("tls_server_new: %s", err);
    return t;
}

static struct tls_client *tls_client_for_tests(const char *servername)
{
    char err[512];
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt"), .servername = servername};
    struct tls_client *t = tls_client_new(&cc, err, sizeof(err));
    if (!t)
        TEST_FAIL_("tls_client_new: %s", err);
    return t;
}

TEST(over_tls)
{
    struct tls_server *ts = tls_server_for_tests();
    struct tls_client *tc = tls_client_for_tests(NULL);
    struct server s;
    server_start_tls(&s, script_tls, ts);
    struct client_config cfg = config(s.port, MQTT_V5);
    cfg.tls = tc;
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    if (!c)
        TEST_FAIL_("client_connect: %s", res.error);
    uint8_t reason = 0xff;
    ASSERT_EQ(client_publish(c, "t", "secure", 6, 1, false, NULL, &reason), 0);
    ASSERT_EQ(reason, 0);
    client_disconnect(c, 0);
    client_free(c);
    server_join(&s);
    tls_client_free(tc);
    tls_server_free(ts);
}

TEST(tls_failures)
{
    struct tls_server *ts = tls_server_for_tests();
    /* The server's certificate does not name the host asked for. */
    struct tls_client *tc = tls_client_for_tests("wrong.test");
    struct server s;
    server_start_tls(&s, script_tls, ts);
    struct client_config cfg = config(s.port, MQTT_V5);
    cfg.tls = tc;
    struct client_result res;
    ASSERT(client_connect(&cfg, &res) == NULL);
    ASSERT_EQ(res.status, -1);
    if (!strstr(res.error, "does not name 'wrong.test'"))
        TEST_FAIL_("error: %s", res.error);
    server_join(&s);
    tls_client_free(tc);
    /* A server that never answers the ClientHello. */
    tc = tls_client_for_tests(NULL);
    server_start(&s, script_mute);
    cfg = config(s.port, MQTT_V5);
    cfg.tls = tc;
    cfg.timeout_ms = 300;
    ASSERT(client_connect(&cfg, &res) == NULL);
    ASSERT(strstr(res.error, "TLS handshake timed out"));
    server_join(&s);
    tls_client_free(tc);
    tls_server_free(ts);
}

static char long_topic_seen[64];

static void script_long_topic(int fd)
{
    struct mqtt_codec c = server_codec();
    struct mqtt_packet p;
    connack(fd, &c, 0);
    if (read_packet(fd, &c, &p) == MQTT_PUBLISH)
        snprintf(long_topic_seen, sizeof(long_topic_seen), "%.*s", (int)p.u.publish.topic.len,
                 p.u.publish.topic.p);
    read_packet(fd, &c, &p);
}

/* BUG (src/client/client.c, client_publish and client_subscribe): a topic
 * is put in a struct mqtt_str, whose len is uint16_t, as strlen(topic)
 * without a check. A topic of 65537 bytes becomes one of 1 byte ("a"):
 * the message is published on the wrong topic and client_publish returns
 * 0. It should fail ("cannot encode PUBLISH (a string longer than 65535
 * bytes?)" is already written for that case, and unreachable). Disabled
 * until fixed: run it with `unit_client_test_client long_topic_refused`. */
TEST(long_topic_refused)
{
    struct server s;
    server_start(&s, script_long_topic);
    struct client_config cfg = config(s.port, MQTT_V311);
    struct client_result res;
    struct client *c = client_connect(&cfg, &res);
    ASSERT(c);
    char *topic = malloc(65538);
    memset(topic, 'a', 65537);
    topic[65537] = '\0';
    uint8_t reason;
    int rc = client_publish(c, topic, "x", 1, 0, false, NULL, &reason);
    free(topic);
    client_free(c);
    server_join(&s);
    if (rc == 0)
        TEST_FAIL_("published a 65537-byte topic as '%s'", long_topic_seen);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* TLS writes to a closed peer: an error, not a signal */
    scratch_open(dir);
    pki_fixture_ca();
    pki_fixture_csr("srv", "/CN=localhost");
    pki_fixture_sign("srv", "subjectAltName=DNS:localhost,IP:127.0.0.1\\n");
    RUN(long_topic_refused);
    RUN(refused_connack_is_reported);
    RUN(connection_refused_names_the_host);
    RUN(qos_flows_and_held_messages);
    RUN(suback_codes_and_server_disconnect);
    RUN(ack_timeout);
    RUN(malformed_server_packet);
    RUN(keepalive_ping);
    RUN(connect_fields_and_unexpected_packets);
    RUN(suback_with_too_few_codes);
    RUN(pubrec_refusal_ends_qos2);
    RUN(server_goes_away);
    RUN(over_tls);
    RUN(tls_failures);
    SCRATCH_DONE();
}
