/* The bridge end to end, with the test playing both brokers: the "local
 * broker" is the other end of the bridge's socketpair, the "upstream" a
 * loopback listening socket; both decode and answer with the codec. Each
 * test builds its own struct cfg_bridge by hand.
 *
 * Every wait is bounded: packets are read with poll() and a timeout, and
 * the status counters (updated on the bridge's thread) are polled for a
 * few seconds at most. Where a test must show that something has NOT
 * happened yet, it makes the bridge send a marker that would come after
 * it on the same connection (an unmapped message it acknowledges at once,
 * or a QoS 0 message it forwards at once) instead of waiting for silence. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "mqtt/mqtt.h"
#include "test.h"

#define WAIT_MS 3000 /* the longest any single wait may take */

/* ---- a scripted MQTT peer ---------------------------------------------------- */

struct peer {
    int fd;
    struct mqtt_codec codec;
    size_t have;
    uint8_t in[1 << 17];
    uint8_t pkt[1 << 17]; /* the last packet read: its views point here */
};

static struct peer *peer_new(int fd)
{
    struct peer *p = calloc(1, sizeof(*p));
    ASSERT(p);
    p->fd = fd;
    p->codec = (struct mqtt_codec){.version = 0, .is_server = true};
    return p;
}

static void peer_free(struct peer *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reads one packet within timeout_ms. Returns its type; 0 if the
 * connection closed or nothing came in time; -1 if it was malformed. */
static int peer_read_within(struct peer *p, struct mqtt_packet *out, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t used = 0;
        int rc = mqtt_decode(&p->codec, p->in, p->have, out, &used);
        if (rc == 0) {
            memcpy(p->pkt, p->in, used);
            memmove(p->in, p->in + used, p->have - used);
            p->have -= used;
            ASSERT_EQ(mqtt_decode(&p->codec, p->pkt, used, out, &used), 0);
            if (out->type == MQTT_CONNECT)
                p->codec.version = out->u.connect.version;
            return out->type;
        }
        if (rc != MQTT_INCOMPLETE)
            return -1;
        uint64_t now = now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            return 0;
        ssize_t n = read(p->fd, p->in + p->have, sizeof(p->in) - p->have);
        if (n <= 0)
            return 0;
        p->have += (size_t)n;
    }
}

/* The next packet, which must be of type t. */
static struct mqtt_packet expect_(struct peer *p, int t, int line)
{
    struct mqtt_packet pk;
    int got = peer_read_within(p, &pk, WAIT_MS);
    if (got != t) {
        fprintf(stderr, "test_bridge.c:%d: expected %s, got %s\n", line,
                mqtt_type_name((enum mqtt_type)t),
                got > 0    ? mqtt_type_name((enum mqtt_type)got)
                : got == 0 ? "nothing (closed or timed out)"
                           : "a malformed packet");
        TEST_FAIL_("unexpected packet");
    }
    return pk;
}
#define expect(p, t) expect_((p), (t), __LINE__)

/* The connection ends (EOF) within WAIT_MS, with nothing before it. */
static void expect_eof(struct peer *p)
{
    struct mqtt_packet pk;
    uint64_t start = now_ms();
    ASSERT_EQ(peer_read_within(p, &pk, WAIT_MS), 0);
    ASSERT(now_ms() - start < WAIT_MS); /* closed, not timed out */
}

static void peer_send(struct peer *p, const struct mqtt_packet *pk)
{
    uint8_t out[4096];
    size_t n = mqtt_encode(&p->codec, pk, out, sizeof(out));
    ASSERT(n > 0);
    ASSERT_EQ(write(p->fd, out, n), (ssize_t)n);
}

static void send_ack(struct peer *p, enum mqtt_type t, uint16_t pid, uint8_t reason)
{
    struct mqtt_packet pk = {.type = t, .flags = t == MQTT_PUBREL ? 2 : 0};
    pk.u.ack.packet_id = pid;
    pk.u.ack.reason = reason;
    peer_send(p, &pk);
}

/* A PUBLISH; sub_id > 0 adds a subscription identifier (what the local
 * broker gives each forward rule's messages). */
static void send_pub(struct peer *p, const char *topic, const char *payload, uint8_t qos,
                     uint16_t pid, uint32_t sub_id, bool dup)
{
    struct mqtt_packet pk = {.type = MQTT_PUBLISH};
    struct mqtt_publish *pub = &pk.u.publish;
    pub->topic = (struct mqtt_str){(const uint8_t *)topic, (uint16_t)strlen(topic)};
    pub->payload = (struct mqtt_bin){(const uint8_t *)payload, (uint32_t)strlen(payload)};
    pub->qos = qos;
    pub->dup = dup;
    pub->packet_id = qos ? pid : 0;
    if (sub_id && p->codec.version == MQTT_V5) {
        pub->props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
        pub->props.sub_ids[0] = sub_id;
        pub->props.sub_id_count = 1;
    }
    peer_send(p, &pk);
}

static bool str_is(struct mqtt_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#define ASSERT_MQTT_STR(s, want)                                                                   \
    do {                                                                                           \
        struct mqtt_str s__ = (s);                                                                 \
        if (!str_is(s__, (want)))                                                                  \
            TEST_FAIL_("%s == \"%s\": got \"%.*s\"", #s, (want), (int)s__.len,                     \
                       (const char *)s__.p);                                                       \
    } while (0)

/* A PUBLISH read from a peer, which must have this topic, payload, QoS. */
static struct mqtt_packet expect_pub_(struct peer *p, const char *topic, const char *payload,
                                      uint8_t qos, int line)
{
    struct mqtt_packet pk = expect_(p, MQTT_PUBLISH, line);
    if (!str_is(pk.u.publish.topic, topic) || pk.u.publish.qos != qos ||
        pk.u.publish.payload.len != strlen(payload) ||
        memcmp(pk.u.publish.payload.p, payload, strlen(payload)) != 0)
        TEST_FAIL_("line %d: expected PUBLISH '%s' '%s' QoS %u, got '%.*s' '%.*s' QoS %u", line,
                   topic, payload, qos, (int)pk.u.publish.topic.len,
                   (const char *)pk.u.publish.topic.p, (int)pk.u.publish.payload.len,
                   (const char *)pk.u.publish.payload.p, pk.u.publish.qos);
    return pk;
}
#define expect_pub(p, t, pl, q) expect_pub_((p), (t), (pl), (q), __LINE__)

/* ---- the upstream's listening socket ----------------------------------------- */

/* A loopback socket bound to a free port; listening only if listen_now. */
static int upstream_socket(uint16_t *port, bool listen_now)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listen_now)
        ASSERT_EQ(listen(fd, 8), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* The bridge's next connection, within timeout_ms. */
static struct peer *upstream_accept(int lfd, int timeout_ms)
{
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    if (poll(&pf, 1, timeout_ms) != 1)
        TEST_FAIL_("the bridge did not connect upstream within %d ms", timeout_ms);
    int fd = accept(lfd, NULL, NULL);
    ASSERT(fd >= 0);
    return peer_new(fd);
}

/* ---- a bridge with both sides ------------------------------------------------ */

struct fx {
    struct cfg_bridge cfg;
    struct cfg_bridge_topic fwd[4], sub[4];
    char server[64];
    int lfd; /* the upstream's listening socket */
    uint16_t port;
    struct bridge *b;
    struct peer *local, *up;
    uint16_t local_receive_max;   /* in the local CONNACK; 0: none */
    bool reattach;                /* give the bridge a way to reattach locally */
    uint16_t connect_receive_max; /* the bridge's, in its local CONNECT */
};

/* The test's end of the socketpair handed out by reattach(). Atomic: the
 * bridge thread stores it, the test thread polls for it. */
static _Atomic int g_reattach_peer = -1;

static int reattach(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    g_reattach_peer = sv[0];
    return sv[1];
}

/* Forward rules (local filter -> remote target):
 *   1: fwd/#  -> remote/#  QoS 1
 *   2: fwd2/# -> remote2/# QoS 2
 *   3: fwd0/# -> remote0/# QoS 0 (markers)
 * Subscription rules (remote filter -> local target):
 *   cmd/#    -> in/#
 * Unmapped: anything else. */
static void fx_init(struct fx *f, uint32_t proto_ver)
{
    memset(f, 0, sizeof(*f));
    f->lfd = upstream_socket(&f->port, true);
    snprintf(f->server, sizeof(f->server), "mqtt-tcp://127.0.0.1:%u", f->port);
    f->fwd[0] = (struct cfg_bridge_topic){
        .remote_topic = "remote/#", .local_topic = "fwd/#", .qos = 1, .retain = -1};
    f->fwd[1] = (struct cfg_bridge_topic){
        .remote_topic = "remote2/#", .local_topic = "fwd2/#", .qos = 2, .retain = -1};
    f->fwd[2] = (struct cfg_bridge_topic){
        .remote_topic = "remote0/#", .local_topic = "fwd0/#", .qos = 0, .retain = -1};
    f->sub[0] = (struct cfg_bridge_topic){.remote_topic = "cmd/#",
                                          .local_topic = "in/#",
                                          .qos = 2,
                                          .retain = -1,
                                          .retain_as_published = true};
    f->cfg = (struct cfg_bridge){.name = "edge",
                                 .enable = true,
                                 .server = f->server,
                                 .proto_ver = proto_ver,
                                 .clientid = "edge-1",
                                 .keepalive_s = 60,
                                 .clean_start = true,
                                 .username = "user",
                                 .password = "pass",
                                 .backoff_max_ms = 1000,
                                 .max_send_queue_len = 64,
                                 .max_inflight = 8,
                                 .try_private = true,
                                 .connect_timeout_ms = 2000,
                                 .ssl = {.enable = false, .verify = true},
                                 .forwards = f->fwd,
                                 .nforwards = 3,
                                 .subscriptions = f->sub,
                                 .nsubscriptions = 1};
}

/* Creates and starts the bridge, and answers its local side: CONNECT, one
 * SUBSCRIBE per forward rule, CONNACK, SUBACKs. */
static void fx_start(struct fx *f)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0); /* the bridge's end */
    char err[256] = "";
    f->b = bridge_new(&f->cfg, sv[1], err, sizeof(err));
    if (!f->b)
        TEST_FAIL_("bridge_new: %s", err);
    f->local = peer_new(sv[0]);
    if (f->reattach)
        bridge_set_reattach(f->b, reattach, NULL);
    ASSERT_EQ(bridge_start(f->b), 0);

    struct mqtt_packet p = expect(f->local, MQTT_CONNECT);
    ASSERT_EQ(p.u.connect.version, MQTT_V5);
    ASSERT(!p.u.connect.bridge);
    /* The same stored session every time: it holds the send queue. */
    ASSERT(!p.u.connect.clean_start);
    ASSERT(p.u.connect.props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY));
    ASSERT(p.u.connect.props.session_expiry >= 3600);
    ASSERT(p.u.connect.props.present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX));
    f->connect_receive_max = p.u.connect.props.receive_max;
    char id[64];
    snprintf(id, sizeof(id), "$bridge/%s", f->cfg.name);
    ASSERT_MQTT_STR(p.u.connect.client_id, id);
    for (size_t i = 0; i < f->cfg.nforwards; i++) {
        p = expect(f->local, MQTT_SUBSCRIBE);
        const struct mqtt_subscribe *s = &p.u.subscribe;
        ASSERT_EQ(s->packet_id, i + 1);
        ASSERT(s->props.present & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID));
        ASSERT_EQ(s->props.sub_id_count, 1);
        ASSERT_EQ(s->props.sub_ids[0], i + 1);
        ASSERT_EQ(s->count, 1);
        size_t pos = 0;
        struct mqtt_subscription e;
        ASSERT(mqtt_subscribe_next(s, &pos, &e));
        ASSERT_MQTT_STR(e.filter, f->fwd[i].local_topic);
        /* Retain Handling 1: a resumed session's rules get no retained again. */
        ASSERT_EQ(e.options, 2 | MQTT_SUBOPT_NO_LOCAL | MQTT_SUBOPT_RAP | 0x10);
        ASSERT(!mqtt_subscribe_next(s, &pos, &e));
    }
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    if (f->local_receive_max) {
        a.u.connack.props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
        a.u.connack.props.receive_max = f->local_receive_max;
    }
    peer_send(f->local, &a);
    for (size_t i = 0; i < f->cfg.nforwards; i++) {
        static const uint8_t granted[] = {2};
        struct mqtt_packet sa = {.type = MQTT_SUBACK};
        sa.u.suback.packet_id = (uint16_t)(i + 1);
        sa.u.suback.reasons = (struct mqtt_bin){granted, 1};
        peer_send(f->local, &sa);
    }
}

/* Accepts the bridge's upstream connection and checks its CONNECT. */
static struct mqtt_packet fx_accept(struct fx *f, int timeout_ms)
{
    peer_free(f->up);
    f->up = upstream_accept(f->lfd, timeout_ms);
    struct mqtt_packet p = expect(f->up, MQTT_CONNECT);
    const struct mqtt_connect *c = &p.u.connect;
    ASSERT_EQ(c->version, f->cfg.proto_ver);
    ASSERT_MQTT_STR(c->client_id, f->cfg.clientid);
    ASSERT_EQ(c->keep_alive, f->cfg.keepalive_s);
    ASSERT_EQ(c->clean_start, f->cfg.clean_start);
    ASSERT(c->has_username && c->has_password);
    ASSERT_MQTT_STR(c->username, f->cfg.username);
    ASSERT_EQ(c->password.len, strlen(f->cfg.password));
    ASSERT_MEM_EQ(c->password.p, f->cfg.password, c->password.len);
    ASSERT(!c->will_flag);
    if (c->version == MQTT_V5) {
        /* The bridge bounds what the upstream may have in flight to it. */
        ASSERT(c->props.present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX));
        ASSERT(c->props.receive_max > 0);
    }
    return p;
}

/* Answers CONNACK, then reads and answers the SUBSCRIBE for the
 * subscription rules. */
static void fx_connack_props(struct fx *f, bool present, const struct mqtt_props *props)
{
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.session_present = present;
    if (props)
        a.u.connack.props = *props;
    peer_send(f->up, &a);
    if (!f->cfg.nsubscriptions)
        return;
    struct mqtt_packet p = expect(f->up, MQTT_SUBSCRIBE);
    const struct mqtt_subscribe *s = &p.u.subscribe;
    ASSERT_EQ(s->count, f->cfg.nsubscriptions);
    size_t pos = 0;
    struct mqtt_subscription e;
    for (size_t i = 0; i < f->cfg.nsubscriptions; i++) {
        const struct cfg_bridge_topic *r = &f->sub[i];
        ASSERT(mqtt_subscribe_next(s, &pos, &e));
        ASSERT_MQTT_STR(e.filter, r->remote_topic);
        uint8_t want = (uint8_t)r->qos;
        if (f->cfg.proto_ver == MQTT_V5)
            want |=
                (uint8_t)(MQTT_SUBOPT_NO_LOCAL | (r->retain_as_published ? MQTT_SUBOPT_RAP : 0) |
                          (r->retain_handling << 4));
        ASSERT_EQ(e.options, want);
    }
    uint8_t granted[4] = {2, 2, 2, 2};
    struct mqtt_packet sa = {.type = MQTT_SUBACK};
    sa.u.suback.packet_id = s->packet_id;
    sa.u.suback.reasons = (struct mqtt_bin){granted, (uint32_t)f->cfg.nsubscriptions};
    peer_send(f->up, &sa);
}

static void fx_connack(struct fx *f, bool present)
{
    fx_connack_props(f, present, NULL);
}

static void fx_connect(struct fx *f)
{
    fx_accept(f, WAIT_MS);
    fx_connack(f, false);
}

/* With reattach, the local side leaves while the link is down: DISCONNECT
 * (normal), then the connection ends. */
static void fx_local_leaves(struct fx *f)
{
    struct mqtt_packet p = expect(f->local, MQTT_DISCONNECT);
    ASSERT_EQ(p.u.disconnect.reason, 0);
    expect_eof(f->local);
}

/* ... and comes back on a new socket once the link is up: CONNECT resuming
 * the session (no SUBSCRIBE), answered with CONNACK. */
static void fx_local_back(struct fx *f, bool present)
{
    struct pollfd pf;
    for (int i = 0; i < 150 && g_reattach_peer < 0; i++)
        poll(&pf, 0, 20);
    ASSERT(g_reattach_peer >= 0);
    peer_free(f->local);
    f->local = peer_new(g_reattach_peer);
    g_reattach_peer = -1;
    struct mqtt_packet p = expect(f->local, MQTT_CONNECT);
    ASSERT(!p.u.connect.clean_start);
    ASSERT_MQTT_STR(p.u.connect.client_id, "$bridge/edge");
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.session_present = present;
    peer_send(f->local, &a);
}

static void fx_end(struct fx *f)
{
    bridge_stop(f->b);
    bridge_free(f->b);
    peer_free(f->local);
    peer_free(f->up);
    close(f->lfd);
}

static struct bridge_status status(struct fx *f)
{
    struct bridge_status st;
    bridge_status(f->b, &st);
    return st;
}

/* Waits (bounded) until the bridge's counters say what cond says. */
#define WAIT_STATUS(f, st, cond)                                                                   \
    do {                                                                                           \
        uint64_t until__ = now_ms() + WAIT_MS;                                                     \
        for (;;) {                                                                                 \
            st = status(f);                                                                        \
            if (cond)                                                                              \
                break;                                                                             \
            if (now_ms() > until__)                                                                \
                TEST_FAIL_("status never reached: %s", #cond);                                     \
            usleep(5000);                                                                          \
        }                                                                                          \
    } while (0)

/* ---- bridge_check ------------------------------------------------------------ */

static struct cfg_bridge check_cfg(struct cfg_bridge_topic *fwd, struct cfg_bridge_topic *sub)
{
    *fwd = (struct cfg_bridge_topic){.remote_topic = "r/#", .local_topic = "l/#", .retain = -1};
    *sub = (struct cfg_bridge_topic){.remote_topic = "c/+", .local_topic = "in/+", .retain = -1};
    return (struct cfg_bridge){.name = "chk",
                               .enable = true,
                               .server = "mqtt-tcp://127.0.0.1:1883",
                               .proto_ver = 5,
                               .keepalive_s = 60,
                               .clean_start = true,
                               .backoff_max_ms = 1000,
                               .max_send_queue_len = 8,
                               .max_inflight = 4,
                               .connect_timeout_ms = 2000,
                               .ssl = {.verify = true},
                               .forwards = fwd,
                               .nforwards = 1,
                               .subscriptions = sub,
                               .nsubscriptions = 1};
}

TEST(check_accepts_a_good_block)
{
    struct cfg_bridge_topic fwd, sub;
    struct cfg_bridge c = check_cfg(&fwd, &sub);
    char err[512] = "";
    ASSERT_EQ(bridge_check(&c, err, sizeof(err)), 0);
    c.proto_ver = 4;
    ASSERT_EQ(bridge_check(&c, err, sizeof(err)), 0);
    static const char *const servers[] = {"tcp://localhost:1883", "mqtt://[::1]:1883",
                                          "127.0.0.1:1883", NULL};
    for (int i = 0; servers[i]; i++) {
        c.server = (char *)servers[i];
        if (bridge_check(&c, err, sizeof(err)) != 0)
            TEST_FAIL_("%s refused: %s", servers[i], err);
    }
    /* A forward with only remote_topic keeps the topic. */
    fwd.local_topic = NULL;
    ASSERT_EQ(bridge_check(&c, err, sizeof(err)), 0);
}

TEST(check_refusals)
{
    struct cfg_bridge_topic fwd, sub;
    struct cfg_bridge c;
    char err[512];
#define REFUSED(field_change, needle)                                                              \
    do {                                                                                           \
        c = check_cfg(&fwd, &sub);                                                                 \
        field_change;                                                                              \
        err[0] = '\0';                                                                             \
        ASSERT_EQ(bridge_check(&c, err, sizeof(err)), -1);                                         \
        if (!strstr(err, (needle)))                                                                \
            TEST_FAIL_("error \"%s\" does not say \"%s\"", err, (needle));                         \
        ASSERT(strncmp(err, "bridges.mqtt.chk", 16) == 0);                                         \
    } while (0)
    REFUSED(c.server = NULL, "server is required");
    REFUSED(c.name = "chk/a", "may not be empty or hold");
    REFUSED(c.name = "chk+", "may not be empty or hold");
    REFUSED(c.name = "chk#", "may not be empty or hold");
    REFUSED(c.server = "http://127.0.0.1:1883", "'http' is not");
    REFUSED(c.server = "ws://127.0.0.1:8083", "'ws' is not");
    REFUSED(c.server = "mqtt-tcp://127.0.0.1", "bridges.mqtt.chk.server");
    REFUSED(c.server = "mqtt-tcp://127.0.0.1:99999", "bad port");
    REFUSED(c.server = "mqtt-tcp://[::1:1883", "bridges.mqtt.chk.server");
    REFUSED(fwd.local_topic = "l/#/x", "forwards[0]");
    REFUSED((fwd.local_topic = "l/+", fwd.remote_topic = "r/#"), "forwards[0]");
    REFUSED((fwd.local_topic = NULL, fwd.remote_topic = "r+"), "forwards[0]");
    REFUSED(sub.remote_topic = "c/#/d", "subscription[0]");
    REFUSED(sub.remote_topic = "c/x", "subscription[0]");
    REFUSED(sub.local_topic = "in/+/+", "subscription[0]");
    REFUSED(c.proto_ver = 3, "proto_ver: 3 is not 4 or 5");
    REFUSED(c.proto_ver = 6, "proto_ver");
    REFUSED(c.proto_ver = 0, "proto_ver");
    /* TLS files that cannot be read. */
    REFUSED((c.server = "mqtts://127.0.0.1:8883", c.ssl.enable = true,
             c.ssl.cacertfile = "/nonexistent/ca.pem"),
            "bridges.mqtt.chk.ssl");
    REFUSED((c.ssl.enable = true, c.ssl.cacertfile = "/nonexistent/ca.pem"), "ssl");
    REFUSED((c.server = "tls+mqtt-tcp://127.0.0.1:8883", c.ssl.certfile = "/nonexistent/c.pem",
             c.ssl.keyfile = "/nonexistent/k.pem"),
            "ssl");
    /* A directory is not a certificate either. */
    REFUSED((c.server = "mqtts://127.0.0.1:8883", c.ssl.cacertfile = "/"), "ssl");
#undef REFUSED
}

TEST(new_refuses_a_bad_block_and_closes_its_fd)
{
    struct cfg_bridge_topic fwd, sub;
    struct cfg_bridge c = check_cfg(&fwd, &sub);
    c.server = "gopher://127.0.0.1:70";
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char err[512] = "";
    ASSERT(bridge_new(&c, sv[1], err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "gopher"));
    /* The fd was the bridge's: it is closed, the other end sees EOF. */
    struct pollfd pf = {.fd = sv[0], .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, WAIT_MS), 1);
    char x;
    ASSERT_EQ(read(sv[0], &x, 1), 0);
    close(sv[0]);
}

/* ---- message flows ----------------------------------------------------------- */

TEST(forward_qos1)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.connected);
    ASSERT_STR_EQ(st.name, "edge");
    ASSERT_STR_EQ(st.server, f.server);
    ASSERT_EQ(st.connects, 1);
    ASSERT_STR_EQ(st.last_error, "");
    /* Sent upstream under the mapped topic, and acknowledged here only
     * once the upstream acknowledged it (the marker, unmapped and
     * acknowledged at once, shows nothing came before). */
    send_pub(f.local, "fwd/a/b", "one", 1, 100, 1, false);
    struct mqtt_packet p = expect_pub(f.up, "remote/a/b", "one", 1);
    ASSERT(!p.u.publish.dup);
    ASSERT(!p.u.publish.retain);
    uint16_t pid = p.u.publish.packet_id;
    ASSERT_NE(pid, 0);
    WAIT_STATUS(&f, st, st.queued == 1);
    ASSERT_EQ(st.sent, 0);
    send_pub(f.local, "elsewhere/m", "m", 1, 99, 0, false);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 99);
    /* The upstream's PUBACK settles it, here too. */
    send_ack(f.up, MQTT_PUBACK, pid, 0);
    p = expect(f.local, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 100);
    ASSERT_EQ(p.u.ack.reason, 0);
    WAIT_STATUS(&f, st, st.queued == 0 && st.sent == 1);
    /* A local QoS 0 message on a QoS 1 rule goes at the rule's QoS; a QoS 1
     * message on the QoS 0 rule goes at QoS 0. Retain is as published. */
    send_pub(f.local, "fwd/q0", "two", 0, 0, 1, false);
    p = expect_pub(f.up, "remote/q0", "two", 1);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    send_pub(f.local, "fwd0/x", "three", 1, 101, 3, false);
    p = expect(f.local, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 101);
    expect_pub(f.up, "remote0/x", "three", 0);
    WAIT_STATUS(&f, st, st.sent == 3 && st.queued == 0);
    ASSERT_EQ(st.dropped, 1); /* the marker */
    fx_end(&f);
}

TEST(forward_window_is_max_inflight)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.max_inflight = 2;
    fx_start(&f);
    fx_connect(&f);
    /* Three QoS 1 messages, then a QoS 0 marker that goes out at once: only
     * two of the three may come before it. */
    send_pub(f.local, "fwd/1", "m1", 1, 1, 1, false);
    send_pub(f.local, "fwd/2", "m2", 1, 2, 1, false);
    send_pub(f.local, "fwd/3", "m3", 1, 3, 1, false);
    send_pub(f.local, "fwd0/marker", "mk", 0, 0, 3, false);
    uint16_t p1 = expect_pub(f.up, "remote/1", "m1", 1).u.publish.packet_id;
    uint16_t p2 = expect_pub(f.up, "remote/2", "m2", 1).u.publish.packet_id;
    ASSERT_NE(p1, p2);
    expect_pub(f.up, "remote0/marker", "mk", 0);
    /* An ack opens the window for the third, in order. */
    send_ack(f.up, MQTT_PUBACK, p1, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 1);
    uint16_t p3 = expect_pub(f.up, "remote/3", "m3", 1).u.publish.packet_id;
    ASSERT_NE(p3, p2);
    send_ack(f.up, MQTT_PUBACK, p2, 0);
    send_ack(f.up, MQTT_PUBACK, p3, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 2);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 3);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 4 && st.queued == 0);
    fx_end(&f);
}

TEST(forward_refused_upstream_is_dropped)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.local, "fwd/no", "x", 1, 5, 1, false);
    uint16_t pid = expect_pub(f.up, "remote/no", "x", 1).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBACK, pid, MQTT_RC_NOT_AUTHORIZED);
    /* Given up: settled here too, so the broker does not keep it. */
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 5);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.dropped == 1 && st.queued == 0);
    ASSERT_EQ(st.sent, 0);
    /* A local message no forward rule maps is acknowledged and dropped. */
    send_pub(f.local, "elsewhere/x", "y", 1, 6, 0, false);
    struct mqtt_packet p = expect(f.local, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 6);
    WAIT_STATUS(&f, st, st.dropped == 2);
    fx_end(&f);
}

TEST(subscription_qos1_acked_after_local)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.up, "cmd/lamp/on", "1", 1, 5, 0, false);
    /* A message no subscription rule maps is acknowledged at once: its
     * PUBACK must come first, before the mapped one is acknowledged. */
    send_pub(f.up, "other/x", "lost", 1, 6, 0, false);
    struct mqtt_packet p = expect_pub(f.local, "in/lamp/on", "1", 1);
    uint16_t lpid = p.u.publish.packet_id;
    ASSERT_NE(lpid, 0);
    p = expect(f.up, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 6);
    /* Now the local broker takes it, and only then does the upstream get
     * its PUBACK. */
    send_ack(f.local, MQTT_PUBACK, lpid, 0);
    p = expect(f.up, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 5);
    ASSERT_EQ(p.u.ack.reason, 0);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.received == 1 && st.dropped == 1);
    /* QoS 0 from the upstream is published here at QoS 0. */
    send_pub(f.up, "cmd/zero", "z", 0, 0, 0, false);
    expect_pub(f.local, "in/zero", "z", 0);
    WAIT_STATUS(&f, st, st.received == 2);
    fx_end(&f);
}

TEST(qos2_both_ways)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    /* Here -> upstream, QoS 2 both ways: the flow is passed through under
     * the local packet id. PUBLISH up; its PUBREC makes the PUBREC here;
     * the PUBREL from here goes up; the upstream's PUBCOMP comes back. */
    send_pub(f.local, "fwd2/t", "q2", 2, 40, 2, false);
    struct mqtt_packet p = expect_pub(f.up, "remote2/t", "q2", 2);
    ASSERT_EQ(p.u.publish.packet_id, 40);
    send_pub(f.local, "elsewhere/m", "m", 1, 41, 0, false); /* marker: first */
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 41);
    send_ack(f.up, MQTT_PUBREC, 40, 0);
    p = expect(f.local, MQTT_PUBREC);
    ASSERT_EQ(p.u.ack.packet_id, 40);
    ASSERT_EQ(p.u.ack.reason, 0);
    /* No PUBREL upstream before the local one: the QoS 0 marker is next. */
    send_pub(f.local, "fwd0/m", "m", 0, 0, 3, false);
    expect_pub(f.up, "remote0/m", "m", 0);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.queued == 1); /* still, until PUBCOMP */
    ASSERT_EQ(st.sent, 1);               /* the marker */
    send_ack(f.local, MQTT_PUBREL, 40, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBREL).u.ack.packet_id, 40);
    send_ack(f.up, MQTT_PUBCOMP, 40, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBCOMP).u.ack.packet_id, 40);
    WAIT_STATUS(&f, st, st.queued == 0 && st.sent == 2);

    /* Upstream -> here: the PUBREC upstream waits for the local PUBREC. */
    send_pub(f.up, "cmd/door", "open", 2, 9, 0, false);
    send_pub(f.up, "unmapped", "m", 1, 10, 0, false); /* marker */
    p = expect_pub(f.local, "in/door", "open", 2);
    uint16_t lpid = p.u.publish.packet_id;
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 10);
    /* A resend before the local broker accepted it: no second copy here,
     * no PUBREC yet (the marker after it shows). */
    send_pub(f.up, "cmd/door", "open", 2, 9, 0, true);
    send_pub(f.up, "unmapped", "m", 1, 11, 0, false);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 11);
    send_ack(f.local, MQTT_PUBREC, lpid, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBREL).u.ack.packet_id, lpid);
    p = expect(f.up, MQTT_PUBREC);
    ASSERT_EQ(p.u.ack.packet_id, 9);
    ASSERT_EQ(p.u.ack.reason, 0);
    /* A resend now gets PUBREC again, still no second copy here. */
    send_pub(f.up, "cmd/door", "open", 2, 9, 0, true);
    ASSERT_EQ(expect(f.up, MQTT_PUBREC).u.ack.packet_id, 9);
    send_ack(f.up, MQTT_PUBREL, 9, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBCOMP).u.ack.packet_id, 9);
    send_ack(f.local, MQTT_PUBCOMP, lpid, 0);
    WAIT_STATUS(&f, st, st.received == 1);
    /* The packet id is free again: a new message with it is a new message. */
    send_pub(f.up, "cmd/door", "closed", 2, 9, 0, false);
    p = expect_pub(f.local, "in/door", "closed", 2);
    send_ack(f.local, MQTT_PUBREC, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBREC).u.ack.packet_id, 9);
    fx_end(&f);
}

/* ---- reconnects -------------------------------------------------------------- */

/* One QoS 1 message in flight upstream (unacknowledged) and one acked;
 * then the upstream closes. Returns the in-flight message's packet id. */
static uint16_t one_in_flight_then_close(struct fx *f)
{
    send_pub(f->local, "fwd/acked", "a", 1, 1, 1, false);
    uint16_t pid = expect_pub(f->up, "remote/acked", "a", 1).u.publish.packet_id;
    send_ack(f->up, MQTT_PUBACK, pid, 0);
    ASSERT_EQ(expect(f->local, MQTT_PUBACK).u.ack.packet_id, 1);
    struct bridge_status st;
    WAIT_STATUS(f, st, st.sent == 1);
    send_pub(f->local, "fwd/pending", "p", 1, 2, 1, false);
    pid = expect_pub(f->up, "remote/pending", "p", 1).u.publish.packet_id;
    close(f->up->fd);
    f->up->fd = -1;
    return pid;
}

TEST(reconnect_after_close_resends_as_new)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    one_in_flight_then_close(&f);
    uint64_t closed = now_ms();
    struct bridge_status st;
    WAIT_STATUS(&f, st, !st.connected);
    ASSERT(strstr(st.last_error, "closed"));
    ASSERT_EQ(st.queued, 1);
    /* The first wait of the backoff is 0.5 to 1 s. */
    fx_accept(&f, WAIT_MS);
    uint64_t waited = now_ms() - closed;
    if (waited < 450 || waited > 1500)
        TEST_FAIL_("reconnected after %llu ms, expected 500-1000", (unsigned long long)waited);
    /* Clean start: the message goes again as new (no DUP); the acked one
     * does not go again. */
    fx_connack(&f, false);
    struct mqtt_packet p = expect_pub(f.up, "remote/pending", "p", 1);
    ASSERT(!p.u.publish.dup);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 2);
    WAIT_STATUS(&f, st, st.connected && st.connects == 2 && st.sent == 2 && st.queued == 0);
    ASSERT_STR_EQ(st.last_error, "");
    /* The link works as before. */
    send_pub(f.local, "fwd/after", "n", 1, 3, 1, false);
    p = expect_pub(f.up, "remote/after", "n", 1);
    ASSERT(!p.u.publish.dup);
    fx_end(&f);
}

TEST(reconnect_resumed_session_resends_with_dup)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.clean_start = false;
    f.cfg.nsubscriptions = 0;
    fx_start(&f);
    struct mqtt_packet c = fx_accept(&f, WAIT_MS);
    /* A v5 session that outlives the link. */
    ASSERT(c.u.connect.props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY));
    ASSERT(c.u.connect.props.session_expiry > 0);
    fx_connack(&f, false);
    uint16_t pid = one_in_flight_then_close(&f);
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, true);
    /* MQTT-3.3.1-1 / 4.4.0-1: the same packet id, DUP set. */
    struct mqtt_packet p = expect_pub(f.up, "remote/pending", "p", 1);
    ASSERT(p.u.publish.dup);
    ASSERT_EQ(p.u.publish.packet_id, pid);
    send_ack(f.up, MQTT_PUBACK, pid, 0);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 2 && st.queued == 0 && st.connects == 2);
    fx_end(&f);
}

TEST(reconnect_without_session_resends_as_new)
{
    /* clean_start false, but the server had no session. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.clean_start = false;
    fx_start(&f);
    fx_connect(&f);
    one_in_flight_then_close(&f);
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, false);
    struct mqtt_packet p = expect_pub(f.up, "remote/pending", "p", 1);
    ASSERT(!p.u.publish.dup);
    fx_end(&f);
}

TEST(reconnect_resumed_qos2_resends_pubrel)
{
    /* A QoS 2 message whose PUBREC came: on a resumed session the PUBREL
     * goes again, not the PUBLISH. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.clean_start = false;
    f.cfg.nsubscriptions = 0;
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.local, "fwd2/x", "two", 2, 1, 2, false);
    uint16_t pid = expect_pub(f.up, "remote2/x", "two", 2).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBREC, pid, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBREC).u.ack.packet_id, 1);
    send_ack(f.local, MQTT_PUBREL, 1, 0);
    expect(f.up, MQTT_PUBREL);
    close(f.up->fd);
    f.up->fd = -1;
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, true);
    ASSERT_EQ(expect(f.up, MQTT_PUBREL).u.ack.packet_id, pid);
    send_ack(f.up, MQTT_PUBCOMP, pid, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBCOMP).u.ack.packet_id, 1);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 1 && st.queued == 0);
    fx_end(&f);
}

TEST(queue_full_refused_with_0x97)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    /* The upstream's port is bound but not listening: every attempt fails. */
    close(f.lfd);
    f.lfd = upstream_socket(&f.port, false);
    snprintf(f.server, sizeof(f.server), "mqtt-tcp://127.0.0.1:%u", f.port);
    f.cfg.max_send_queue_len = 2;
    f.cfg.nsubscriptions = 0;
    fx_start(&f);
    /* The bridge asks the broker for no more than its queue holds. */
    ASSERT_EQ(f.connect_receive_max, 2);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.last_error[0] != '\0');
    ASSERT(!st.connected);
    ASSERT_EQ(st.connects, 0);
    /* A broker that sends more anyway: the excess is refused at once, what
     * the queue holds is acknowledged when the upstream took it. */
    send_pub(f.local, "fwd/1", "a", 1, 1, 1, false);
    send_pub(f.local, "fwd/2", "b", 1, 2, 1, false);
    send_pub(f.local, "fwd/3", "c", 1, 3, 1, false);
    send_pub(f.local, "fwd2/4", "d", 2, 4, 2, false);
    send_pub(f.local, "fwd0/5", "e", 0, 0, 3, false); /* QoS 0 while down */
    struct mqtt_packet p = expect(f.local, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 3);
    ASSERT_EQ(p.u.ack.reason, MQTT_RC_QUOTA_EXCEEDED);
    p = expect(f.local, MQTT_PUBREC);
    ASSERT_EQ(p.u.ack.packet_id, 4);
    ASSERT_EQ(p.u.ack.reason, MQTT_RC_QUOTA_EXCEEDED);
    WAIT_STATUS(&f, st, st.dropped == 3 && st.queued == 2);
    ASSERT_EQ(st.sent, 0);
    /* The upstream comes up: what was queued goes out in order. */
    ASSERT_EQ(listen(f.lfd, 8), 0);
    fx_accept(&f, 2 * WAIT_MS);
    fx_connack(&f, false);
    uint16_t a = expect_pub(f.up, "remote/1", "a", 1).u.publish.packet_id;
    uint16_t b = expect_pub(f.up, "remote/2", "b", 1).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBACK, a, 0);
    send_ack(f.up, MQTT_PUBACK, b, 0);
    p = expect(f.local, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 1);
    ASSERT_EQ(p.u.ack.reason, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 2);
    WAIT_STATUS(&f, st, st.sent == 2 && st.queued == 0 && st.connected);
    ASSERT_EQ(st.dropped, 3);
    fx_end(&f);
}

/* ---- MQTT 3.1.1 upstream ------------------------------------------------------ */

TEST(v311_bridge_flag)
{
    struct fx f;
    fx_init(&f, MQTT_V311);
    fx_start(&f);
    struct mqtt_packet c = fx_accept(&f, WAIT_MS);
    ASSERT(c.u.connect.bridge); /* level 0x84 */
    ASSERT_EQ(c.u.connect.version, MQTT_V311);
    fx_connack(&f, false); /* 3.1.1 SUBSCRIBE options: QoS only */
    send_pub(f.local, "fwd/v4", "x", 1, 1, 1, false);
    uint16_t pid = expect_pub(f.up, "remote/v4", "x", 1).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBACK, pid, 0);
    expect(f.local, MQTT_PUBACK);
    send_pub(f.up, "cmd/v4", "y", 1, 3, 0, false);
    uint16_t lpid = expect_pub(f.local, "in/v4", "y", 1).u.publish.packet_id;
    send_ack(f.local, MQTT_PUBACK, lpid, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 3);
    fx_end(&f);
}

TEST(v311_without_try_private)
{
    struct fx f;
    fx_init(&f, MQTT_V311);
    f.cfg.try_private = false;
    fx_start(&f);
    struct mqtt_packet c = fx_accept(&f, WAIT_MS);
    ASSERT(!c.u.connect.bridge);
    fx_connack(&f, false);
    fx_end(&f);
}

TEST(v311_bridge_flag_refused_retries_without)
{
    /* A server that answers level 0x84 with "unacceptable protocol
     * version": the bridge tries again at once, without the flag. */
    struct fx f;
    fx_init(&f, MQTT_V311);
    fx_start(&f);
    struct mqtt_packet c = fx_accept(&f, WAIT_MS);
    ASSERT(c.u.connect.bridge);
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.reason = MQTT_RC311_BAD_PROTOCOL_VERSION;
    peer_send(f.up, &a);
    uint64_t refused = now_ms();
    c = fx_accept(&f, WAIT_MS);
    ASSERT(now_ms() - refused < 450); /* no backoff */
    ASSERT(!c.u.connect.bridge);
    fx_connack(&f, false);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.connected && st.connects == 1);
    fx_end(&f);
}

TEST(upstream_refusal_backs_off)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_accept(&f, WAIT_MS);
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.reason = MQTT_RC_NOT_AUTHORIZED;
    peer_send(f.up, &a);
    uint64_t refused = now_ms();
    struct bridge_status st;
    WAIT_STATUS(&f, st, strstr(st.last_error, "refused") != NULL);
    ASSERT(!st.connected);
    ASSERT_EQ(st.connects, 0);
    fx_accept(&f, WAIT_MS);
    uint64_t waited = now_ms() - refused;
    if (waited < 450 || waited > 1500)
        TEST_FAIL_("retried after %llu ms, expected 500-1000", (unsigned long long)waited);
    fx_connack(&f, false);
    WAIT_STATUS(&f, st, st.connected && st.connects == 1);
    fx_end(&f);
}

TEST(stop_disconnects_upstream)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    struct bridge_status st;
    bridge_status(f.b, &st);
    ASSERT(st.connected);
    bridge_stop(f.b);
    struct mqtt_packet p = expect(f.up, MQTT_DISCONNECT);
    ASSERT_EQ(p.u.disconnect.reason, 0);
    expect_eof(f.up);
    expect_eof(f.local);
    bridge_status(f.b, &st); /* a stopped bridge is not connected */
    ASSERT(!st.connected);
    fx_end(&f);
}

TEST(refusal_then_close_keeps_the_reason)
{
    /* A server refusing CONNECT sends CONNACK and closes at once
     * (MQTT-3.2.2-7). The refusal is what the bridge reports, even when
     * the close arrives with it. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_accept(&f, WAIT_MS);
    /* Corked, the CONNACK waits and close() sends it with the FIN in one
     * segment: the bridge always reads both together. */
    int one = 1;
    ASSERT_EQ(setsockopt(f.up->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)), 0);
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.reason = MQTT_RC_BAD_USERNAME_OR_PASSWORD;
    peer_send(f.up, &a);
    close(f.up->fd);
    f.up->fd = -1;
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.last_error[0] != '\0');
    if (!strstr(st.last_error, "refused"))
        TEST_FAIL_("last_error \"%s\" does not give the CONNACK refusal", st.last_error);
    fx_end(&f);
}

TEST(qos2_from_an_old_connection_does_not_ack_a_new_message)
{
    /* A QoS 2 message from the upstream is still waiting for the local
     * broker when the link drops; the new connection (clean start) reuses
     * its packet id for another message. The local PUBREC for the old one
     * must not acknowledge the new one upstream. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.up, "cmd/old", "o", 2, 9, 0, false);
    uint16_t old_pid = expect_pub(f.local, "in/old", "o", 2).u.publish.packet_id;
    close(f.up->fd);
    f.up->fd = -1;
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, false);
    send_pub(f.up, "cmd/new", "n", 2, 9, 0, false);
    uint16_t new_pid = expect_pub(f.local, "in/new", "n", 2).u.publish.packet_id;
    ASSERT_NE(old_pid, new_pid);
    send_ack(f.local, MQTT_PUBREC, old_pid, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBREL).u.ack.packet_id, old_pid);
    /* The marker's PUBACK must be the first thing the upstream gets. */
    send_pub(f.up, "unmapped", "m", 1, 20, 0, false);
    struct mqtt_packet p = expect(f.up, MQTT_PUBACK);
    ASSERT_EQ(p.u.ack.packet_id, 20);
    /* Then the new one's own PUBREC. */
    send_ack(f.local, MQTT_PUBREC, new_pid, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBREC).u.ack.packet_id, 9);
    fx_end(&f);
}

TEST(local_receive_maximum_bounds_messages_in_flight_here)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.local_receive_max = 1;
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.up, "cmd/1", "a", 1, 1, 0, false);
    send_pub(f.up, "cmd/2", "b", 1, 2, 0, false);
    send_pub(f.up, "cmd/0", "z", 0, 0, 0, false); /* QoS 0: outside the window */
    uint16_t l1 = expect_pub(f.local, "in/1", "a", 1).u.publish.packet_id;
    expect_pub(f.local, "in/0", "z", 0);
    send_ack(f.local, MQTT_PUBACK, l1, 0);
    uint16_t l2 = expect_pub(f.local, "in/2", "b", 1).u.publish.packet_id;
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 1);
    send_ack(f.local, MQTT_PUBACK, l2, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 2);
    fx_end(&f);
}

TEST(upstream_connack_limits)
{
    /* Receive Maximum 1 (below max_inflight), Maximum Packet Size 100. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_accept(&f, WAIT_MS);
    struct mqtt_props pr = {.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX) |
                                       MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE),
                            .receive_max = 1,
                            .max_packet_size = 100};
    fx_connack_props(&f, false, &pr);
    static char big[201];
    memset(big, 'B', 200);
    send_pub(f.local, "fwd/big", big, 1, 1, 1, false); /* too large: dropped */
    send_pub(f.local, "fwd/1", "a", 1, 2, 1, false);
    send_pub(f.local, "fwd/2", "b", 1, 3, 1, false);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 1); /* given up: settled */
    send_pub(f.local, "fwd0/marker", "mk", 0, 0, 3, false);
    uint16_t p1 = expect_pub(f.up, "remote/1", "a", 1).u.publish.packet_id;
    expect_pub(f.up, "remote0/marker", "mk", 0);
    send_ack(f.up, MQTT_PUBACK, p1, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 2);
    uint16_t p2 = expect_pub(f.up, "remote/2", "b", 1).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBACK, p2, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 3);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 3 && st.dropped == 1 && st.queued == 0);
    fx_end(&f);
}

TEST(upstream_maximum_qos_and_retain_available)
{
    /* MQTT-3.2.2-11/-14: a server with Maximum QoS 1 and no retain gets
     * QoS 2 forwards at QoS 1 and no RETAIN; with Maximum QoS 0 a QoS 1
     * forward is sent at QoS 0 and leaves the queue at once. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_accept(&f, WAIT_MS);
    struct mqtt_props pr = {.present =
                                MQTT_HAS(MQTT_PROP_MAX_QOS) | MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE),
                            .max_qos = 1,
                            .retain_available = 0};
    fx_connack_props(&f, false, &pr);
    struct mqtt_packet pk = {.type = MQTT_PUBLISH};
    pk.u.publish = (struct mqtt_publish){.topic = {(const uint8_t *)"fwd2/r", 6},
                                         .payload = {(const uint8_t *)"x", 1},
                                         .qos = 1,
                                         .retain = true,
                                         .packet_id = 7};
    pk.u.publish.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
    pk.u.publish.props.sub_ids[0] = 2;
    pk.u.publish.props.sub_id_count = 1;
    peer_send(f.local, &pk);
    struct mqtt_packet p = expect_pub(f.up, "remote2/r", "x", 1);
    ASSERT(!p.u.publish.retain);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 7);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 1 && st.queued == 0);
    /* Again with Maximum QoS 0. */
    close(f.up->fd);
    f.up->fd = -1;
    fx_accept(&f, WAIT_MS);
    pr.max_qos = 0;
    fx_connack_props(&f, false, &pr);
    send_pub(f.local, "fwd/z", "z", 1, 8, 1, false);
    expect(f.local, MQTT_PUBACK);
    p = expect_pub(f.up, "remote/z", "z", 0);
    ASSERT_EQ(p.u.publish.packet_id, 0);
    WAIT_STATUS(&f, st, st.sent == 2 && st.queued == 0);
    fx_end(&f);
}

TEST(properties_forwarded)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
    struct mqtt_packet pk = {.type = MQTT_PUBLISH};
    struct mqtt_publish *pub = &pk.u.publish;
    pub->topic = (struct mqtt_str){(const uint8_t *)"fwd/p", 5};
    pub->payload = (struct mqtt_bin){(const uint8_t *)"{}", 2};
    pub->qos = 1;
    pub->packet_id = 1;
    pub->retain = true;
    pub->props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE) |
                         MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
    pub->props.sub_ids[0] = 1;
    pub->props.sub_id_count = 1;
    pub->props.content_type = (struct mqtt_str){(const uint8_t *)"application/json", 16};
    pub->props.message_expiry = 60;
    pub->props.user_raw = (struct mqtt_bin){user, sizeof(user)};
    peer_send(f.local, &pk);
    struct mqtt_packet p = expect_pub(f.up, "remote/p", "{}", 1);
    const struct mqtt_props *got = &p.u.publish.props;
    ASSERT(p.u.publish.retain); /* rule retain -1: as published */
    ASSERT_MQTT_STR(got->content_type, "application/json");
    ASSERT_EQ(got->message_expiry, 60);
    ASSERT_EQ(got->user_count, 1);
    ASSERT_EQ(got->sub_id_count, 0);
    ASSERT(!(got->present & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)));
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    expect(f.local, MQTT_PUBACK);
    /* And down: the upstream's properties reach the local broker. */
    pk.u.publish.topic = (struct mqtt_str){(const uint8_t *)"cmd/p", 5};
    pk.u.publish.props.present &= ~MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
    pk.u.publish.props.sub_id_count = 0;
    pk.u.publish.packet_id = 4;
    peer_send(f.up, &pk);
    p = expect_pub(f.local, "in/p", "{}", 1);
    ASSERT_MQTT_STR(p.u.publish.props.content_type, "application/json");
    ASSERT_EQ(p.u.publish.props.user_count, 1);
    ASSERT(p.u.publish.retain);
    fx_end(&f);
}

TEST(retain_rules)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.fwd[0].retain = 0; /* never */
    f.fwd[2].retain = 1; /* always */
    f.sub[0].retain = 1;
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.local, "fwd/r", "x", 0, 0, 1, false);
    struct mqtt_packet pk = {.type = MQTT_PUBLISH};
    pk.u.publish = (struct mqtt_publish){.topic = {(const uint8_t *)"fwd/r", 5},
                                         .payload = {(const uint8_t *)"x", 1},
                                         .retain = true,
                                         .qos = 0};
    pk.u.publish.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
    pk.u.publish.props.sub_ids[0] = 1;
    pk.u.publish.props.sub_id_count = 1;
    peer_send(f.local, &pk);
    struct mqtt_packet p = expect_pub(f.up, "remote/r", "x", 1);
    ASSERT(!p.u.publish.retain);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    p = expect_pub(f.up, "remote/r", "x", 1);
    ASSERT(!p.u.publish.retain); /* retained here, but the rule says never */
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    send_pub(f.local, "fwd0/r", "y", 0, 0, 3, false);
    p = expect_pub(f.up, "remote0/r", "y", 0);
    ASSERT(p.u.publish.retain);
    send_pub(f.up, "cmd/r", "z", 0, 0, 0, false);
    p = expect_pub(f.local, "in/r", "z", 0);
    ASSERT(p.u.publish.retain);
    fx_end(&f);
}

TEST(unmapped_qos2_from_upstream_refused)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.up, "nowhere/x", "x", 2, 8, 0, false);
    struct mqtt_packet p = expect(f.up, MQTT_PUBREC);
    ASSERT_EQ(p.u.ack.packet_id, 8);
    ASSERT(p.u.ack.reason >= 0x80);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.dropped == 1);
    ASSERT_EQ(st.received, 0);
    fx_end(&f);
}

TEST(keepalive)
{
    /* keepalive 1 s: PINGREQ when idle; answered, the link stays; not
     * answered within the keep alive, the bridge gives the server up. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.keepalive_s = 1;
    fx_start(&f);
    fx_connect(&f);
    expect(f.up, MQTT_PINGREQ);
    struct mqtt_packet r = {.type = MQTT_PINGRESP};
    peer_send(f.up, &r);
    expect(f.up, MQTT_PINGREQ);
    uint64_t ping = now_ms();
    expect_eof(f.up);
    uint64_t gone = now_ms() - ping;
    if (gone < 800 || gone > 2500)
        TEST_FAIL_("gave up %llu ms after PINGREQ, expected about 1000", (unsigned long long)gone);
    struct bridge_status st;
    WAIT_STATUS(&f, st, !st.connected && strstr(st.last_error, "PINGRESP"));
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, false);
    fx_end(&f);
}

TEST(upstream_disconnect_reconnects)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    struct mqtt_packet d = {.type = MQTT_DISCONNECT};
    d.u.disconnect.reason = MQTT_RC_SERVER_SHUTTING_DOWN;
    peer_send(f.up, &d);
    expect_eof(f.up);
    struct bridge_status st;
    WAIT_STATUS(&f, st, !st.connected && strstr(st.last_error, "disconnected"));
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, false);
    WAIT_STATUS(&f, st, st.connected && st.connects == 2);
    fx_end(&f);
}

TEST(local_close_reattaches_and_resumes)
{
    /* The broker closes the bridge's local connection (its output bound):
     * the bridge gets a new socket, resumes the same session (clean start
     * 0, no new SUBSCRIBEs) and sends again, with DUP and the same packet
     * id, what the broker had not acknowledged; its PUBACK then reaches
     * the upstream. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.reattach = true;
    fx_start(&f);
    fx_local_leaves(&f);
    fx_connect(&f);
    fx_local_back(&f, true);
    send_pub(f.up, "cmd/a", "1", 1, 5, 0, false);
    uint16_t lpid = expect_pub(f.local, "in/a", "1", 1).u.publish.packet_id;
    peer_free(f.local);
    struct pollfd pf;
    for (int i = 0; i < 100 && g_reattach_peer < 0; i++)
        poll(&pf, 0, 20);
    ASSERT(g_reattach_peer >= 0);
    f.local = peer_new(g_reattach_peer);
    g_reattach_peer = -1;
    struct mqtt_packet p = expect(f.local, MQTT_CONNECT);
    ASSERT(!p.u.connect.clean_start);
    ASSERT(p.u.connect.props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY));
    ASSERT(p.u.connect.props.session_expiry > 0);
    struct mqtt_packet a = {.type = MQTT_CONNACK};
    a.u.connack.session_present = true;
    peer_send(f.local, &a);
    p = expect_pub(f.local, "in/a", "1", 1);
    ASSERT(p.u.publish.dup);
    ASSERT_EQ(p.u.publish.packet_id, lpid);
    send_ack(f.local, MQTT_PUBACK, lpid, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 5);
    /* Forwards still work on the new connection. */
    send_pub(f.local, "fwd/x", "y", 1, 9, 1, false);
    p = expect_pub(f.up, "remote/x", "y", 1);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 9);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 1 && st.received == 1);
    fx_end(&f);
}

TEST(local_close_stops_the_bridge)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    fx_start(&f);
    fx_connect(&f);
    close(f.local->fd);
    f.local->fd = -1;
    struct mqtt_packet p = expect(f.up, MQTT_DISCONNECT);
    ASSERT_EQ(p.u.disconnect.reason, 0);
    expect_eof(f.up);
    fx_end(&f);
}

TEST(forward_rule_chosen_by_subscription_id)
{
    struct fx f;
    fx_init(&f, MQTT_V5);
    /* Two rules that both match "fwd2/x": rule 1 is fwd/# -> remote/#,
     * widen it (+/# -> any/+/#) so that it overlaps rule 2. */
    f.fwd[0].local_topic = "+/#";
    f.fwd[0].remote_topic = "any/+/#";
    fx_start(&f);
    fx_connect(&f);
    /* Both subscriptions matched: the lowest identifier names the rule. */
    struct mqtt_packet pk = {.type = MQTT_PUBLISH};
    pk.u.publish = (struct mqtt_publish){.topic = {(const uint8_t *)"fwd2/x", 6},
                                         .payload = {(const uint8_t *)"v", 1},
                                         .qos = 1,
                                         .packet_id = 1};
    pk.u.publish.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
    pk.u.publish.props.sub_ids[0] = 2;
    pk.u.publish.props.sub_ids[1] = 1;
    pk.u.publish.props.sub_id_count = 2;
    peer_send(f.local, &pk);
    struct mqtt_packet p = expect_pub(f.up, "any/fwd2/x", "v", 1);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 1);
    /* Only rule 2's: QoS 2 under remote2/ (the local QoS 1 message is
     * acknowledged with PUBACK once the upstream's PUBCOMP came). */
    send_pub(f.local, "fwd2/y", "w", 1, 2, 2, false);
    p = expect_pub(f.up, "remote2/y", "w", 2);
    send_ack(f.up, MQTT_PUBREC, p.u.publish.packet_id, 0);
    expect(f.up, MQTT_PUBREL);
    send_ack(f.up, MQTT_PUBCOMP, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 2);
    /* No identifier: the first rule whose filter matches. */
    send_pub(f.local, "fwd0/z", "u", 1, 3, 0, false);
    p = expect_pub(f.up, "any/fwd0/z", "u", 1);
    send_ack(f.up, MQTT_PUBACK, p.u.publish.packet_id, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 3);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 3 && st.queued == 0);
    fx_end(&f);
}

TEST(server_keep_alive_overrides)
{
    /* MQTT-3.2.2-21: the CONNACK's Server Keep Alive is the one to use. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.keepalive_s = 60;
    fx_start(&f);
    fx_accept(&f, WAIT_MS);
    struct mqtt_props pr = {.present = MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE),
                            .server_keep_alive = 1};
    fx_connack_props(&f, false, &pr);
    uint64_t start = now_ms();
    expect(f.up, MQTT_PINGREQ);
    ASSERT(now_ms() - start < 2000);
    fx_end(&f);
}

TEST(qos1_copy_from_an_old_connection_does_not_ack_a_reused_id)
{
    /* Resumed session: the upstream sends QoS 1 id 5, the link drops before
     * the local broker took it, and the upstream resends it (DUP) on the
     * new connection, so the local broker gets two copies. Acking the new
     * copy acknowledges id 5 upstream; the upstream then reuses id 5 for
     * another message. The local PUBACK for the old copy must not
     * acknowledge that new message. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.clean_start = false;
    fx_start(&f);
    fx_connect(&f);
    send_pub(f.up, "cmd/a", "a", 1, 5, 0, false);
    uint16_t l1 = expect_pub(f.local, "in/a", "a", 1).u.publish.packet_id;
    close(f.up->fd);
    f.up->fd = -1;
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, true);
    send_pub(f.up, "cmd/a", "a", 1, 5, 0, true);
    uint16_t l2 = expect_pub(f.local, "in/a", "a", 1).u.publish.packet_id;
    send_ack(f.local, MQTT_PUBACK, l2, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 5);
    send_pub(f.up, "cmd/b", "b", 1, 5, 0, false);
    uint16_t l3 = expect_pub(f.local, "in/b", "b", 1).u.publish.packet_id;
    send_ack(f.local, MQTT_PUBACK, l1, 0);
    /* The marker's PUBACK must come first: nothing acknowledged "cmd/b". */
    send_pub(f.up, "unmapped", "m", 1, 30, 0, false);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 30);
    send_ack(f.local, MQTT_PUBACK, l3, 0);
    ASSERT_EQ(expect(f.up, MQTT_PUBACK).u.ack.packet_id, 5);
    fx_end(&f);
}

TEST(link_down_local_session_queues_and_resumes)
{
    /* The link is down from the start: once its SUBSCRIBEs are answered the
     * local side leaves (the broker's session queues for it); the link
     * comes up, the local side resumes, and what the broker then sends is
     * forwarded and acknowledged here after the upstream did. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    close(f.lfd);
    f.lfd = upstream_socket(&f.port, false);
    snprintf(f.server, sizeof(f.server), "mqtt-tcp://127.0.0.1:%u", f.port);
    f.cfg.nsubscriptions = 0;
    f.reattach = true;
    fx_start(&f);
    fx_local_leaves(&f);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.last_error[0] != '\0');
    ASSERT_EQ(listen(f.lfd, 8), 0);
    fx_accept(&f, 2 * WAIT_MS);
    fx_connack(&f, false);
    fx_local_back(&f, true);
    send_pub(f.local, "fwd/q", "queued", 1, 11, 1, false);
    uint16_t pid = expect_pub(f.up, "remote/q", "queued", 1).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBACK, pid, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 11);
    WAIT_STATUS(&f, st, st.sent == 1 && st.queued == 0 && st.connected);
    fx_end(&f);
}

TEST(local_resend_after_link_loss_is_not_forwarded_twice)
{
    /* A local message is in flight upstream when the link drops; the local
     * side leaves without acknowledging it. On the next link the bridge
     * sends it upstream again (its own queue); the broker's resend (DUP,
     * same packet id) on the resumed local session is the same message:
     * not forwarded again, and acknowledged when the upstream does. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.nsubscriptions = 0;
    f.reattach = true;
    fx_start(&f);
    fx_local_leaves(&f);
    fx_connect(&f);
    fx_local_back(&f, true);
    send_pub(f.local, "fwd/a", "A", 1, 21, 1, false);
    send_pub(f.local, "fwd/b", "B", 1, 22, 1, false);
    expect_pub(f.up, "remote/a", "A", 1);
    expect_pub(f.up, "remote/b", "B", 1);
    close(f.up->fd);
    f.up->fd = -1;
    fx_local_leaves(&f);
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, false); /* clean start: both go again as new */
    uint16_t a = expect_pub(f.up, "remote/a", "A", 1).u.publish.packet_id;
    uint16_t b = expect_pub(f.up, "remote/b", "B", 1).u.publish.packet_id;
    /* The upstream acknowledges "A" before the local side is back: that
     * PUBACK is owed to the broker's resend. */
    send_ack(f.up, MQTT_PUBACK, a, 0);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 1);
    fx_local_back(&f, true);
    send_pub(f.local, "fwd/a", "A", 1, 21, 1, true);
    send_pub(f.local, "fwd/b", "B", 1, 22, 1, true);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 21);
    /* Nothing else went up: the QoS 0 marker is the next thing there. */
    send_pub(f.local, "fwd0/m", "m", 0, 0, 3, false);
    expect_pub(f.up, "remote0/m", "m", 0);
    send_ack(f.up, MQTT_PUBACK, b, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 22);
    WAIT_STATUS(&f, st, st.sent == 3 && st.queued == 0);
    /* A new message that reuses an id is a new message. */
    send_pub(f.local, "fwd/c", "C", 1, 21, 1, false);
    expect_pub(f.up, "remote/c", "C", 1);
    fx_end(&f);
}

TEST(local_session_lost_nothing_owed)
{
    /* The broker lost the bridge's session (no persistence, restarted
     * side): what the bridge still holds goes upstream, but nothing is
     * acknowledged under the old packet ids. */
    struct fx f;
    fx_init(&f, MQTT_V5);
    f.cfg.nsubscriptions = 0;
    f.reattach = true;
    fx_start(&f);
    fx_local_leaves(&f);
    fx_connect(&f);
    fx_local_back(&f, true);
    send_pub(f.local, "fwd/a", "A", 1, 31, 1, false);
    uint16_t a = expect_pub(f.up, "remote/a", "A", 1).u.publish.packet_id;
    close(f.up->fd);
    f.up->fd = -1;
    fx_local_leaves(&f);
    fx_accept(&f, WAIT_MS);
    fx_connack(&f, false);
    a = expect_pub(f.up, "remote/a", "A", 1).u.publish.packet_id;
    fx_local_back(&f, false);
    for (size_t i = 0; i < f.cfg.nforwards; i++)
        expect(f.local, MQTT_SUBSCRIBE); /* a new session: the rules again */
    send_ack(f.up, MQTT_PUBACK, a, 0);
    struct bridge_status st;
    WAIT_STATUS(&f, st, st.sent == 1 && st.queued == 0);
    /* The marker's PUBACK is the first thing here: none for the old 31. */
    send_pub(f.local, "elsewhere/m", "m", 1, 40, 0, false);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 40);
    /* The broker's new message 31 is forwarded, and acknowledged here
     * after the upstream did. */
    send_pub(f.local, "fwd/n", "N", 1, 31, 1, false);
    uint16_t n = expect_pub(f.up, "remote/n", "N", 1).u.publish.packet_id;
    send_ack(f.up, MQTT_PUBACK, n, 0);
    ASSERT_EQ(expect(f.local, MQTT_PUBACK).u.ack.packet_id, 31);
    WAIT_STATUS(&f, st, st.sent == 2);
    fx_end(&f);
}

int main(void)
{
    RUN(check_accepts_a_good_block);
    RUN(check_refusals);
    RUN(new_refuses_a_bad_block_and_closes_its_fd);
    RUN(forward_qos1);
    RUN(forward_window_is_max_inflight);
    RUN(forward_refused_upstream_is_dropped);
    RUN(subscription_qos1_acked_after_local);
    RUN(qos2_both_ways);
    RUN(reconnect_after_close_resends_as_new);
    RUN(reconnect_resumed_session_resends_with_dup);
    RUN(reconnect_without_session_resends_as_new);
    RUN(reconnect_resumed_qos2_resends_pubrel);
    RUN(queue_full_refused_with_0x97);
    RUN(v311_bridge_flag);
    RUN(v311_without_try_private);
    RUN(v311_bridge_flag_refused_retries_without);
    RUN(upstream_refusal_backs_off);
    RUN(stop_disconnects_upstream);
    RUN(local_receive_maximum_bounds_messages_in_flight_here);
    RUN(upstream_connack_limits);
    RUN(upstream_maximum_qos_and_retain_available);
    RUN(properties_forwarded);
    RUN(retain_rules);
    RUN(unmapped_qos2_from_upstream_refused);
    RUN(keepalive);
    RUN(upstream_disconnect_reconnects);
    RUN(local_close_stops_the_bridge);
    RUN(local_close_reattaches_and_resumes);
    RUN(forward_rule_chosen_by_subscription_id);
    RUN(server_keep_alive_overrides);
    RUN(qos2_from_an_old_connection_does_not_ack_a_new_message);
    RUN(refusal_then_close_keeps_the_reason);
    RUN(qos1_copy_from_an_old_connection_does_not_ack_a_reused_id);
    RUN(link_down_local_session_queues_and_resumes);
    RUN(local_resend_after_link_loss_is_not_forwarded_twice);
    RUN(local_session_lost_nothing_owed);
    TEST_DONE();
}
