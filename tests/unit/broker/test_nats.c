/* src/broker/nats.c: the NATS client protocol on a live loopback listener
 * (INFO, CONNECT, PUB/HPUB, SUB/UNSUB, queue groups, echo, no responders,
 * PINGs), and the one message space with MQTT clients on the same broker. */
#include <poll.h>

#include "auth/auth.h"
#include "auth/nats_users.h"
#include "broker_rig.h"

struct nrig {
    struct rig r;
    uint16_t nats_port;
};

static void nrig_start_auth(struct nrig *n, const struct broker_nats_opts *o_in, struct auth *a)
{
    struct broker_config cfg;
    broker_config_defaults(&cfg);
    struct rig *r = &n->r;
    r->b = broker_new(&cfg);
    ASSERT(r->b);
    if (a)
        broker_set_auth(r->b, a);
    struct net_config nc = {
        .workers = 1, .max_connections = 100, .max_input = 1 << 16, .max_output = 1 << 20};
    r->s = net_server_new(&nc, broker_net_handler(), r->b);
    ASSERT(r->s);
    char err[256];
    ASSERT_EQ(net_server_listen(r->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    struct net_listen_opts lo = {.greeting = broker_nats_greeting};
    ASSERT_EQ(net_server_listen_opts(r->s, "tcp://127.0.0.1:0", NULL, &lo, err, sizeof(err)), 0);
    struct broker_nats_opts o;
    broker_nats_opts_defaults(&o);
    if (o_in)
        o = *o_in;
    ASSERT_EQ(broker_set_listener_nats(r->b, 1, &o, err, sizeof(err)), 0);
    r->port = net_server_port(r->s, 0);
    n->nats_port = net_server_port(r->s, 1);
    ASSERT_EQ(broker_start(r->b), 0);
    ASSERT_EQ(net_server_start(r->s), 0);
}

static void nrig_start(struct nrig *n, const struct broker_nats_opts *o)
{
    nrig_start_auth(n, o, NULL);
}

static void send_str(int fd, const char *s)
{
    ASSERT_EQ(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* A connected NATS client: INFO read, CONNECT sent, a PING answered (so the
 * CONNECT was handled). */
static int nats_dial(struct nrig *n, const char *connect_json)
{
    int fd = dial(n->nats_port);
    char line[4096];
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strncmp(line, "INFO {", 6) == 0);
    char buf[1024];
    snprintf(buf, sizeof(buf), "CONNECT %s\r\nPING\r\n", connect_json);
    send_str(fd, buf);
    read_crlf_line(fd, line, sizeof(line));
    if (strcmp(line, "PONG") != 0)
        TEST_FAIL_("expected PONG, got '%s'", line);
    return fd;
}

/* Sync: a PING answered means everything sent before was handled. */
#define sync_fd(fd) sync_at(fd, __LINE__)
static void sync_at(int fd, int at)
{
    char line[256];
    send_str(fd, "PING\r\n");
    read_crlf_line(fd, line, sizeof(line));
    if (strcmp(line, "PONG") != 0)
        TEST_FAIL_("line %d: expected PONG, got '%s'", at, line);
}

/* Whether anything arrives within ms (nothing should). */
static bool quiet(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

TEST(info_first)
{
    struct nrig n;
    nrig_start(&n, NULL);
    int fd = dial(n.nats_port);
    char line[4096];
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strncmp(line, "INFO {", 6) == 0);
    ASSERT(strstr(line, "\"headers\":true"));
    ASSERT(strstr(line, "\"max_payload\":1048576"));
    ASSERT(strstr(line, "\"proto\":1"));
    ASSERT(strstr(line, "\"client_id\":"));
    ASSERT(strstr(line, "\"client_ip\":\"127.0.0.1\""));
    ASSERT(!strstr(line, "\"auth_required\":true"));
    ASSERT(!strstr(line, "nonce"));
    send_str(fd, "CONNECT {\"verbose\":true}\r\n");
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "+OK") == 0);
    send_str(fd, "ping\r\n"); /* operation names are case-insensitive */
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "PONG") == 0);
    close(fd);
    rig_stop(&n.r);
}

TEST(pub_sub_wildcards_unsub_max)
{
    struct nrig n;
    nrig_start(&n, NULL);
    int sub = nats_dial(&n, "{\"verbose\":false}");
    int pub = nats_dial(&n, "{\"verbose\":false}");
    send_str(sub, "SUB foo.* 1\r\nSUB a.> 2\r\nSUB foo.bar 3\r\n");
    sync_fd(sub);
    send_str(pub, "PUB foo.bar 5\r\nhello\r\nPUB a 1\r\nx\r\nPUB a.b.c 2\r\nhi\r\n");
    sync_fd(pub);
    char line[512], body[16];
    /* foo.bar reaches both of its subscriptions (NATS never merges). */
    int seen1 = 0, seen3 = 0;
    for (int i = 0; i < 2; i++) {
        read_crlf_line(sub, line, sizeof(line));
        seen1 += strcmp(line, "MSG foo.bar 1 5") == 0;
        seen3 += strcmp(line, "MSG foo.bar 3 5") == 0;
        ASSERT_EQ(read_n(sub, body, 7), 7u);
        ASSERT(memcmp(body, "hello\r\n", 7) == 0);
    }
    ASSERT_EQ(seen1, 1);
    ASSERT_EQ(seen3, 1);
    /* "a" is not under "a.>"; "a.b.c" is. */
    read_crlf_line(sub, line, sizeof(line));
    ASSERT(strcmp(line, "MSG a.b.c 2 2") == 0);
    read_crlf_line(sub, line, sizeof(line));
    ASSERT(strcmp(line, "hi") == 0);
    /* UNSUB with a maximum counts from the SUB: one came, two more. */
    send_str(sub, "UNSUB 2 3 \r\n");
    sync_fd(sub);
    send_str(pub, "PUB a.x 1\r\n1\r\nPUB a.x 1\r\n2\r\nPUB a.x 1\r\n3\r\n");
    sync_fd(pub);
    for (int i = 1; i <= 2; i++) {
        read_crlf_line(sub, line, sizeof(line));
        ASSERT(strcmp(line, "MSG a.x 2 1") == 0);
        read_crlf_line(sub, line, sizeof(line));
    }
    sync_fd(sub);
    ASSERT(quiet(sub, 50));
    pthread_mutex_lock(&n.r.b->lock);
    ASSERT_EQ(subtree_count(n.r.b->subs), 2u);
    pthread_mutex_unlock(&n.r.b->lock);
    close(sub);
    close(pub);
    rig_stop(&n.r);
}

TEST(queue_groups_share)
{
    struct nrig n;
    nrig_start(&n, NULL);
    int q1 = nats_dial(&n, "{\"verbose\":false}"), q2 = nats_dial(&n, "{\"verbose\":false}"),
        all = nats_dial(&n, "{\"verbose\":false}");
    send_str(q1, "SUB jobs workers 1\r\n");
    send_str(q2, "SUB jobs workers 1\r\n");
    send_str(all, "SUB jobs 9\r\n");
    sync_fd(q1);
    sync_fd(q2);
    sync_fd(all);
    int pub = nats_dial(&n, "{\"verbose\":false}");
    for (int i = 0; i < 10; i++)
        send_str(pub, "PUB jobs 1\r\nj\r\n");
    sync_fd(pub);
    char line[256];
    for (int i = 0; i < 10; i++) {
        read_crlf_line(all, line, sizeof(line));
        ASSERT(strcmp(line, "MSG jobs 9 1") == 0);
        read_crlf_line(all, line, sizeof(line));
    }
    /* Each message went to exactly one member of the group. */
    int got = 0;
    for (int fd = 0; fd < 2; fd++) {
        int s = fd ? q2 : q1;
        send_str(s, "PING\r\n");
        for (;;) {
            read_crlf_line(s, line, sizeof(line));
            if (strcmp(line, "PONG") == 0)
                break;
            ASSERT(strcmp(line, "MSG jobs 1 1") == 0);
            read_crlf_line(s, line, sizeof(line));
            got++;
        }
    }
    ASSERT_EQ(got, 10);
    close(q1), close(q2), close(all), close(pub);
    rig_stop(&n.r);
}

TEST(echo_headers_no_responders)
{
    struct nrig n;
    nrig_start(&n, NULL);
    int a =
        nats_dial(&n, "{\"verbose\":false,\"echo\":false,\"headers\":true,\"no_responders\":true}");
    int plain = nats_dial(&n, "{\"verbose\":false}");
    send_str(a, "SUB t 1\r\nSUB _INBOX.me.* 2\r\n");
    send_str(plain, "SUB t 5\r\n");
    sync_fd(a);
    sync_fd(plain);
    /* Its own message does not come back with echo off. */
    send_str(a, "HPUB t 20 22\r\nNATS/1.0\r\nK: v 1\r\n\r\nhi\r\n");
    sync_fd(a);
    char line[256];
    /* A subscriber that did not ask for headers gets them stripped. */
    read_crlf_line(plain, line, sizeof(line));
    ASSERT(strcmp(line, "MSG t 5 2") == 0);
    read_crlf_line(plain, line, sizeof(line));
    ASSERT(strcmp(line, "hi") == 0);
    ASSERT(quiet(a, 50));
    /* A request nobody hears: the 503 status on the requester's inbox. */
    send_str(a, "PUB nobody.home _INBOX.me.7 0\r\n\r\n");
    read_crlf_line(a, line, sizeof(line));
    ASSERT(strcmp(line, "HMSG _INBOX.me.7 2 16 16") == 0);
    read_crlf_line(a, line, sizeof(line));
    ASSERT(strcmp(line, "NATS/1.0 503") == 0);
    read_crlf_line(a, line, sizeof(line));
    ASSERT(strcmp(line, "") == 0);
    read_crlf_line(a, line, sizeof(line));
    ASSERT(strcmp(line, "") == 0);
    /* HPUB needs headers:true in CONNECT: nats-server closes, silently. */
    send_str(plain, "HPUB t 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    ASSERT_EQ(read(plain, line, 1), 0);
    close(a);
    close(plain);
    rig_stop(&n.r);
}

TEST(errors)
{
    struct broker_nats_opts o;
    broker_nats_opts_defaults(&o);
    o.max_subscriptions = 2;
    struct nrig n;
    nrig_start(&n, &o);
    int fd = nats_dial(&n, "{\"verbose\":false}");
    char line[256];
    send_str(fd, "SUB a..b 1\r\n");
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "-ERR 'Invalid Subject'") == 0);
    send_str(fd, "PUB a.* 0\r\n\r\n");
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "-ERR 'Invalid Publish Subject'") == 0);
    send_str(fd, "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "-ERR 'maximum subscriptions exceeded'") == 0);
    sync_fd(fd); /* still open */
    send_str(fd, "FOO bar\r\n");
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "-ERR 'Unknown Protocol Operation'") == 0);
    ASSERT_EQ(read(fd, line, 1), 0); /* closed */
    close(fd);
    rig_stop(&n.r);
}

TEST(stale_connection)
{
    struct broker_nats_opts o;
    broker_nats_opts_defaults(&o);
    o.ping_interval_ms = 100;
    o.ping_max = 1;
    struct nrig n;
    nrig_start(&n, &o);
    int fd = nats_dial(&n, "{\"verbose\":false}");
    char line[256];
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "PING") == 0);
    read_crlf_line(fd, line, sizeof(line));
    ASSERT(strcmp(line, "-ERR 'Stale Connection'") == 0);
    ASSERT_EQ(read(fd, line, 1), 0);
    close(fd);
    rig_stop(&n.r);
}

/* MQTT and NATS share one message space: a/b is a.b. */
TEST(mqtt_and_nats)
{
    struct nrig n;
    nrig_start(&n, NULL);
    int ns = nats_dial(&n, "{\"verbose\":false}");
    send_str(ns, "SUB x.* 1\r\n");
    sync_fd(ns);
    int m = rig_connect(&n.r, "m1", 4);
    /* SUBSCRIBE a/b QoS 0, then PUBLISH x/y "hey" */
    const uint8_t subscribe[] = {0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 0};
    ASSERT_EQ(write(m, subscribe, sizeof(subscribe)), (ssize_t)sizeof(subscribe));
    char ack[5];
    ASSERT_EQ(read_n(m, ack, 5), 5u);
    ASSERT_EQ((uint8_t)ack[0], 0x90);
    const uint8_t publish[] = {0x30, 8, 0, 3, 'x', '/', 'y', 'h', 'e', 'y'};
    ASSERT_EQ(write(m, publish, sizeof(publish)), (ssize_t)sizeof(publish));
    char line[256];
    read_crlf_line(ns, line, sizeof(line));
    ASSERT(strcmp(line, "MSG x.y 1 3") == 0);
    read_crlf_line(ns, line, sizeof(line));
    ASSERT(strcmp(line, "hey") == 0);
    send_str(ns, "PUB a.b 2\r\nyo\r\n");
    char got[9];
    ASSERT_EQ(read_n(m, got, 9), 9u);
    ASSERT(memcmp(got,
                  "\x30\x07\x00\x03"
                  "a/byo",
                  9) == 0);
    close(m);
    close(ns);
    rig_stop(&n.r);
}

/* A CONNECT behind other commands in the same read is still checked before
 * the client gets anything: a wrong password for a listed user is refused
 * even where no_auth_user lets clients without credentials in. */
TEST(connect_behind_other_commands)
{
    char hash[AUTH_BCRYPT_HASH_LEN + 1];
    ASSERT_EQ(auth_bcrypt_hash("right", 4, hash, sizeof(hash)), 0);
    struct auth_nats *users = auth_nats_new();
    ASSERT(users);
    char err[256];
    struct auth_nats_user admin = {"admin", hash, NULL}, guest = {"guest", NULL, NULL};
    ASSERT_EQ(auth_nats_add_user(users, &admin, err, sizeof(err)), 0);
    ASSERT_EQ(auth_nats_add_user(users, &guest, err, sizeof(err)), 0);
    struct broker_nats_opts o;
    broker_nats_opts_defaults(&o);
    o.users = users;
    o.no_auth_user = "guest";
    struct auth *a = auth_new();
    ASSERT(a);
    struct auth_settings as = {.allow_anonymous = true};
    ASSERT_EQ(auth_configure(a, &as, err, sizeof(err)), 0);
    struct nrig n;
    nrig_start_auth(&n, &o, a);
    char line[4096];
    for (int round = 0; round < 2; round++) {
        int fd = dial(n.nats_port);
        read_crlf_line(fd, line, sizeof(line));
        ASSERT(strncmp(line, "INFO {", 6) == 0);
        send_str(fd,
                 round ? "PING\r\nCONNECT {\"verbose\":false,\"user\":\"admin\",\"pass\":\"right\"}"
                         "\r\nPING\r\n"
                       : "PING\r\nCONNECT {\"verbose\":false,\"user\":\"admin\",\"pass\":\"wrong\"}"
                         "\r\nPING\r\n");
        read_crlf_line(fd, line, sizeof(line));
        ASSERT_STR_EQ(line, "PONG");
        read_crlf_line(fd, line, sizeof(line));
        ASSERT_STR_EQ(line, round ? "PONG" : "-ERR 'Authorization Violation'");
        close(fd);
    }
    rig_stop(&n.r);
    auth_free(a);
    auth_nats_free(users);
}

int main(void)
{
    RUN(info_first);
    RUN(pub_sub_wildcards_unsub_max);
    RUN(queue_groups_share);
    RUN(echo_headers_no_responders);
    RUN(errors);
    RUN(stale_connection);
    RUN(mqtt_and_nats);
    RUN(connect_behind_other_commands);
    TEST_DONE();
}
