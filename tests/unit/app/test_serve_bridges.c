/* The bridges of `ward serve` (app/serve_bridges.c) between two brokers in
 * this process: a bridge started from the configuration attaches to the
 * local broker and carries messages both ways; its state is published
 * under $SYS/broker/bridge/NAME/; draining waits for what the upstream has
 * not acknowledged (and gives up at its deadline), but not for a bridge
 * whose link is down; stopped bridges stay readable. Also the checks of a
 * bad bridge block, a start that fails half-way, and an empty or NULL set.
 *
 * Every wait is for an event with a deadline: a message through a client
 * (client_next), a packet on the scripted upstream's socket (poll). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "app/capture.h"
#include "app/serve_bridges.h"
#include "bridge/bridge.h"
#include "broker/broker.h"
#include "client/client.h"
#include "core/clock.h"
#include "core/log.h"
#include "mqtt/mqtt.h"
#include "net/net.h"
#include "net_fixture.h"
#include "test.h"

#define WAIT_MS 5000

/* ---- brokers and clients ------------------------------------------------ */

struct live {
    struct broker *b;
    struct net_server *s;
    uint16_t port;
};

static void live_start(struct live *l, uint32_t sys_interval_s)
{
    char err[256];
    struct broker_config bc;
    broker_config_defaults(&bc);
    bc.sys_interval_s = sys_interval_s;
    l->b = broker_new(&bc);
    ASSERT(l->b);
    struct net_config nc = {
        .workers = 1, .max_connections = 64, .max_input = 1 << 20, .max_output = 1 << 20};
    l->s = net_server_new(&nc, broker_net_handler(), l->b);
    ASSERT(l->s);
    ASSERT_EQ(net_server_listen(l->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    l->port = net_server_port(l->s, 0);
    ASSERT_EQ(broker_start(l->b), 0);
    ASSERT_EQ(net_server_start(l->s), 0);
}

/* Stops l with its bridges in the order `ward serve` does: the bridges
 * stop before the broker, and are freed after it (it publishes their
 * status until then). */
static void live_stop(struct live *l, struct serve_bridges *sb)
{
    net_server_stop_accepting(l->s);
    broker_shutdown(l->b);
    serve_bridges_stop(sb);
    net_server_stop(l->s);
    net_server_join(l->s);
    broker_stop(l->b);
    net_server_free(l->s);
    broker_free(l->b);
    serve_bridges_free(sb);
}

static struct client *client_of(struct live *l)
{
    struct client_config cc = {.host = "127.0.0.1",
                               .port = l->port,
                               .version = MQTT_V5,
                               .client_id = "",
                               .keepalive = 60,
                               .clean_start = true,
                               .timeout_ms = WAIT_MS};
    struct client_result res;
    struct client *c = client_connect(&cc, &res);
    if (!c)
        TEST_FAIL_("cannot connect to port %u: %s", l->port, res.error);
    return c;
}

static struct client *watch(struct live *l, const char *filter)
{
    struct client *c = client_of(l);
    uint8_t code;
    ASSERT_EQ(client_subscribe(c, &filter, 1, 1, 0, &code), 0);
    ASSERT(code <= 1);
    return c;
}

static void client_end(struct client *c)
{
    client_disconnect(c, 0);
    client_free(c);
}

static void publish(struct client *c, const char *topic, const char *text, bool retain)
{
    uint8_t reason;
    ASSERT_EQ(client_publish(c, topic, text, strlen(text), 1, retain, NULL, &reason), 0);
    ASSERT(reason < 0x80);
}

/* Reads c's messages until one on topic with payload text comes (others
 * are passed over: $SYS values are published again every interval). */
static void expect_msg(struct client *c, const char *topic, const char *text)
{
    uint64_t end = clock_mono_ms() + WAIT_MS;
    for (;;) {
        uint64_t now = clock_mono_ms();
        struct client_message m;
        if (now >= end || client_next(c, &m, (int)(end - now)) != 1)
            TEST_FAIL_("no message '%s' on '%s' (%s)", text, topic, client_error(c));
        if (m.topic.len == strlen(topic) && memcmp(m.topic.p, topic, m.topic.len) == 0 &&
            m.payload.len == strlen(text) && memcmp(m.payload.p, text, m.payload.len) == 0)
            return;
    }
}

/* ---- bridge blocks ------------------------------------------------------- */

struct block {
    struct cfg_bridge c;
    struct cfg_bridge_topic fwd, sub;
    char server[64];
};

/* A bridge NAME to 127.0.0.1:port: local fwd/# goes up as remote/#,
 * upstream cmd/# comes down as in/#, both at QoS 1. */
static void block_init(struct block *k, const char *name, uint16_t port)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->server, sizeof(k->server), "mqtt-tcp://127.0.0.1:%u", port);
    k->fwd = (struct cfg_bridge_topic){
        .remote_topic = "remote/#", .local_topic = "fwd/#", .qos = 1, .retain = -1};
    k->sub = (struct cfg_bridge_topic){
        .remote_topic = "cmd/#", .local_topic = "in/#", .qos = 1, .retain = -1};
    k->c = (struct cfg_bridge){.name = (char *)name,
                               .enable = true,
                               .server = k->server,
                               .proto_ver = 5,
                               .clientid = (char *)name,
                               .keepalive_s = 60,
                               .clean_start = true,
                               .backoff_max_ms = 1000,
                               .max_send_queue_len = 64,
                               .max_inflight = 8,
                               .connect_timeout_ms = 2000,
                               .ssl = {.verify = true},
                               .forwards = &k->fwd,
                               .nforwards = 1,
                               .subscriptions = &k->sub,
                               .nsubscriptions = 1};
}

/* A configuration holding the n blocks' bridges (copied). */
static struct ward_config config_of(struct cfg_bridge *all, const struct block *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        all[i] = k[i].c;
    return (struct ward_config){.bridges = all, .nbridges = n};
}

/* ---- tests --------------------------------------------------------------- */

TEST(no_bridges_and_null)
{
    size_t n = 7;
    ASSERT(serve_bridges_list(NULL, &n) == NULL);
    ASSERT_EQ(n, 0);
    serve_bridges_reload(NULL);
    serve_bridges_stop(NULL);
    serve_bridges_free(NULL);
    struct live l;
    live_start(&l, 0);
    ASSERT(serve_bridges_drain(NULL, l.b, 0));
    struct ward_config none = {0};
    ASSERT_EQ(serve_bridges_check(&none), 0);
    struct serve_bridges *sb = serve_bridges_start(&none, l.s, l.b);
    ASSERT(sb); /* an empty set, not a failure */
    n = 7;
    serve_bridges_list(sb, &n);
    ASSERT_EQ(n, 0);
    ASSERT(serve_bridges_drain(sb, l.b, 0));
    serve_bridges_reload(sb);
    live_stop(&l, sb);
}

TEST(check_names_every_bad_block)
{
    struct block k[4];
    struct cfg_bridge all[4];
    block_init(&k[0], "good", 1883);
    block_init(&k[1], "badurl", 1883);
    k[1].c.server = "http://127.0.0.1:80";
    block_init(&k[2], "badver", 1883);
    k[2].c.proto_ver = 3;
    block_init(&k[3], "off", 1883); /* disabled: not checked */
    k[3].c.server = "gopher://127.0.0.1:70";
    k[3].c.enable = false;
    struct ward_config cfg = config_of(all, k, 1);
    struct capture e;
    capture_begin(&e, stderr);
    int rc = serve_bridges_check(&cfg);
    char *text = capture_end(&e);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(text, "");
    free(text);
    cfg = config_of(all, k, 4);
    capture_begin(&e, stderr);
    rc = serve_bridges_check(&cfg);
    text = capture_end(&e);
    ASSERT_EQ(rc, -1);
    /* One line per bad block, each naming its block; none for the others. */
    if (strncmp(text, "ward: bridges.mqtt.badurl", 25) != 0 ||
        !strstr(text, "\nward: bridges.mqtt.badver") || !strstr(text, "'http' is not") ||
        !strstr(text, "proto_ver: 3 is not 4 or 5"))
        TEST_FAIL_("stderr \"%s\"", text);
    ASSERT(!strstr(text, "good") && !strstr(text, "off"));
    ASSERT_EQ(text[strlen(text) - 1], '\n');
    size_t lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    ASSERT_EQ(lines, 2);
    free(text);
}

TEST(start_fails_half_way_and_frees_what_started)
{
    struct live l;
    live_start(&l, 0);
    struct block k[2];
    struct cfg_bridge all[2];
    block_init(&k[0], "first", closed_port());
    block_init(&k[1], "second", 1883);
    k[1].c.server = "gopher://127.0.0.1:70"; /* what bridge_new refuses */
    struct ward_config cfg = config_of(all, k, 2);
    struct capture e;
    capture_begin(&e, stderr);
    struct serve_bridges *sb = serve_bridges_start(&cfg, l.s, l.b);
    char *text = capture_end(&e);
    ASSERT(sb == NULL);
    if (strncmp(text, "ward serve: bridges.mqtt.second", 31) != 0 || !strstr(text, "gopher"))
        TEST_FAIL_("stderr \"%s\"", text);
    free(text);
    live_stop(&l, NULL); /* "first" was stopped and freed: ASan finds a leak otherwise */
}

TEST(disabled_bridge_is_not_started)
{
    struct live l;
    live_start(&l, 0);
    struct block k;
    struct cfg_bridge all[1];
    block_init(&k, "sleeper", closed_port());
    k.c.enable = false;
    struct ward_config cfg = config_of(all, &k, 1);
    log_set_level(LOG_NOTICE);
    struct capture e;
    capture_begin(&e, stderr);
    struct serve_bridges *sb = serve_bridges_start(&cfg, l.s, l.b);
    char *text = capture_end(&e);
    log_set_level(LOG_ERROR);
    ASSERT(sb);
    size_t n = 7;
    serve_bridges_list(sb, &n);
    ASSERT_EQ(n, 0);
    ASSERT(strstr(text, "bridge sleeper: disabled (enable = false)\n"));
    free(text);
    live_stop(&l, sb);
}

TEST(messages_both_ways_and_status_in_sys)
{
    struct live up, local;
    live_start(&up, 0);
    live_start(&local, 1);
    /* Retained upstream before the bridge exists: it comes down when the
     * bridge subscribes, which shows the bridge is up and subscribed. */
    struct client *up_pub = client_of(&up);
    publish(up_pub, "cmd/go", "from upstream", true);
    struct client *down = watch(&local, "in/#");
    struct client *up_watch = watch(&up, "remote/#");
    struct client *sys = watch(&local, "$SYS/broker/bridge/edge/#");

    struct block k;
    struct cfg_bridge all[1];
    block_init(&k, "edge", up.port);
    struct ward_config cfg = config_of(all, &k, 1);
    ASSERT_EQ(serve_bridges_check(&cfg), 0);
    struct serve_bridges *sb = serve_bridges_start(&cfg, local.s, local.b);
    ASSERT(sb);
    size_t n = 0;
    struct bridge *const *list = serve_bridges_list(sb, &n);
    ASSERT_EQ(n, 1);
    struct bridge_status st;
    bridge_status(list[0], &st);
    ASSERT_STR_EQ(st.name, "edge");
    ASSERT_STR_EQ(st.server, k.server);

    expect_msg(down, "in/go", "from upstream");
    /* The local side subscribed before it published in/go on the same
     * connection, so a local message now goes up. */
    struct client *local_pub = client_of(&local);
    publish(local_pub, "fwd/x", "to upstream", false);
    expect_msg(up_watch, "remote/x", "to upstream");
    publish(up_pub, "cmd/later", "live", false);
    expect_msg(down, "in/later", "live");

    expect_msg(sys, "$SYS/broker/bridge/edge/state", "connected");
    expect_msg(sys, "$SYS/broker/bridge/edge/server", k.server);
    expect_msg(sys, "$SYS/broker/bridge/edge/connects", "1");

    /* Nothing is left unacknowledged upstream: drained at once. */
    uint64_t t0 = clock_mono_ms();
    ASSERT(serve_bridges_drain(sb, local.b, WAIT_MS));
    ASSERT(clock_mono_ms() - t0 < 1000);
    serve_bridges_reload(sb); /* re-reads no files here; the link stays */
    publish(up_pub, "cmd/after-reload", "still", false);
    expect_msg(down, "in/after-reload", "still");
    /* The counters as $SYS tells them (a bridge counts a message once it
     * was acknowledged, which may be just after it was delivered). */
    expect_msg(sys, "$SYS/broker/bridge/edge/messages/sent", "1");
    expect_msg(sys, "$SYS/broker/bridge/edge/messages/received", "3");

    client_end(sys);
    client_end(local_pub);
    client_end(down);
    serve_bridges_stop(sb);
    bridge_status(list[0], &st); /* readable once stopped */
    ASSERT_STR_EQ(st.name, "edge");
    ASSERT_EQ(st.connects, 1);
    ASSERT(st.sent == 1 && st.received == 3); /* as $SYS last said */
    client_end(up_watch);
    client_end(up_pub);
    live_stop(&local, sb);
    live_stop(&up, NULL);
}

TEST(drain_does_not_wait_for_a_bridge_that_is_down)
{
    struct live local;
    live_start(&local, 0);
    struct block k;
    struct cfg_bridge all[1];
    block_init(&k, "down", closed_port());
    struct ward_config cfg = config_of(all, &k, 1);
    struct serve_bridges *sb = serve_bridges_start(&cfg, local.s, local.b);
    ASSERT(sb);
    struct client *c = client_of(&local);
    publish(c, "fwd/queued", "waits for the link", false);
    uint64_t t0 = clock_mono_ms();
    ASSERT(serve_bridges_drain(sb, local.b, 10000));
    ASSERT(clock_mono_ms() - t0 < 1000); /* not the 10 s deadline */
    client_end(c);
    live_stop(&local, sb);
}

/* ---- an upstream that does not acknowledge ------------------------------ */

/* Reads one MQTT packet a client sent on fd within WAIT_MS; returns its
 * type, or fails the test. buf keeps what came after it. */
static int read_packet(int fd, struct mqtt_codec *codec, uint8_t *buf, size_t *have,
                       struct mqtt_packet *p)
{
    uint64_t end = clock_mono_ms() + WAIT_MS;
    for (;;) {
        size_t used = 0;
        int rc = mqtt_decode(codec, buf, *have, p, &used);
        if (rc == 0) {
            int type = p->type;
            if (type == MQTT_CONNECT)
                codec->version = p->u.connect.version;
            uint16_t pid = type == MQTT_PUBLISH ? p->u.publish.packet_id : 0;
            memmove(buf, buf + used, *have - used);
            *have -= used;
            p->u.publish.packet_id = pid; /* the views into buf are gone */
            return type;
        }
        ASSERT_EQ(rc, MQTT_INCOMPLETE);
        uint64_t now = clock_mono_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (now >= end || poll(&pf, 1, (int)(end - now)) != 1)
            TEST_FAIL_("the bridge sent nothing upstream in time");
        ssize_t n = read(fd, buf + *have, 65536 - *have);
        ASSERT(n > 0);
        *have += (size_t)n;
    }
}

TEST(drain_waits_for_upstream_acknowledgements)
{
    /* A listening socket plays the upstream: it accepts the bridge, says
     * CONNACK, then holds the PUBACK of the message forwarded to it. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    ASSERT_EQ(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ASSERT_EQ(listen(lfd, 4), 0);
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);

    struct live local;
    live_start(&local, 0);
    struct block k;
    struct cfg_bridge all[1];
    block_init(&k, "slow", ntohs(a.sin_port));
    k.c.nsubscriptions = 0; /* the scripted upstream answers no SUBSCRIBE */
    struct ward_config cfg = config_of(all, &k, 1);
    struct serve_bridges *sb = serve_bridges_start(&cfg, local.s, local.b);
    ASSERT(sb);

    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, WAIT_MS), 1);
    int fd = accept(lfd, NULL, NULL);
    ASSERT(fd >= 0);
    static uint8_t buf[65536];
    size_t have = 0;
    struct mqtt_codec codec = {.is_server = true};
    struct mqtt_packet p;
    ASSERT_EQ(read_packet(fd, &codec, buf, &have, &p), MQTT_CONNECT);
    static const uint8_t connack[] = {0x20, 3, 0, 0, 0}; /* v5, success, no properties */
    ASSERT_EQ(write(fd, connack, sizeof(connack)), (ssize_t)sizeof(connack));

    /* A local QoS 1 message: the bridge forwards it and waits. */
    struct client *c = client_of(&local);
    const char *topic = "fwd/held";
    uint8_t reason;
    ASSERT_EQ(client_publish(c, topic, "m", 1, 1, false, NULL, &reason), 0);
    ASSERT_EQ(read_packet(fd, &codec, buf, &have, &p), MQTT_PUBLISH);
    uint16_t pid = p.u.publish.packet_id;

    log_set_level(LOG_WARN);
    struct capture e;
    capture_begin(&e, stderr);
    uint64_t t0 = clock_mono_ms();
    bool drained = serve_bridges_drain(sb, local.b, 200);
    uint64_t took = clock_mono_ms() - t0;
    char *text = capture_end(&e);
    log_set_level(LOG_ERROR);
    ASSERT(!drained);
    ASSERT(took >= 200 && took < 2000);
    if (!strstr(text, "shutdown: bridges still had 1 message to deliver upstream; they stay "
                      "stored"))
        TEST_FAIL_("stderr \"%s\"", text);
    free(text);

    /* The acknowledgement comes: nothing is left, well before the deadline. */
    uint8_t puback[] = {0x40, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
    ASSERT_EQ(write(fd, puback, sizeof(puback)), (ssize_t)sizeof(puback));
    t0 = clock_mono_ms();
    ASSERT(serve_bridges_drain(sb, local.b, 10000));
    ASSERT(clock_mono_ms() - t0 < 5000);

    client_end(c);
    live_stop(&local, sb);
    close(fd);
    close(lfd);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    RUN(no_bridges_and_null);
    RUN(check_names_every_bad_block);
    RUN(start_fails_half_way_and_frees_what_started);
    RUN(disabled_bridge_is_not_started);
    RUN(messages_both_ways_and_status_in_sys);
    RUN(drain_does_not_wait_for_a_bridge_that_is_down);
    RUN(drain_waits_for_upstream_acknowledgements);
    TEST_DONE();
}
