/* ward pub against a broker in this process, on loopback: what a
 * subscriber receives for each source of the message (-m, -n, -f, -l, -s),
 * QoS, retain and user properties, over TCP and TLS; and each failure with
 * its status and message (nothing listening, an unreadable file, a broker
 * that refuses the message or the connection, a certificate from an unknown
 * CA or for another name, a bad command line). Every wait for a message
 * is client_next with a deadline, so a message that never comes fails the
 * test instead of hanging it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "app/cli_fixture.h"
#include "app/client_opts.h"
#include "app/commands.h"
#include "auth/auth.h"
#include "broker/broker.h"
#include "core/log.h"
#include "net/net.h"
#include "net_fixture.h"
#include "pki_fixture.h"
#include "scratch.h"
#include "tls/tls.h"
#include "test.h"

#define WAIT_MS 5000

/* A broker behind a net server on 127.0.0.1, on a port of its own. */
struct live {
    struct broker *b;
    struct net_server *s;
    char port[8];
    char tls_port[8]; /* with a tls_server: MQTT over TLS here */
};

static void live_start_tls(struct live *l, const struct broker_config *bc, struct auth *a,
                           struct tls_server *tls)
{
    char err[256];
    l->b = broker_new(bc);
    ASSERT(l->b);
    if (a)
        broker_set_auth(l->b, a);
    struct net_config nc = {
        .workers = 1, .max_connections = 64, .max_input = 1 << 20, .max_output = 1 << 20};
    l->s = net_server_new(&nc, broker_net_handler(), l->b);
    ASSERT(l->s);
    ASSERT_EQ(net_server_listen(l->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    snprintf(l->port, sizeof(l->port), "%u", net_server_port(l->s, 0));
    if (tls) {
        ASSERT_EQ(net_server_listen_tls(l->s, "tls://127.0.0.1:0", tls, err, sizeof(err)), 0);
        snprintf(l->tls_port, sizeof(l->tls_port), "%u", net_server_port(l->s, 1));
    }
    ASSERT_EQ(broker_start(l->b), 0);
    ASSERT_EQ(net_server_start(l->s), 0);
}

static void live_start(struct live *l, const struct broker_config *bc, struct auth *a)
{
    live_start_tls(l, bc, a, NULL);
}

static void live_stop(struct live *l)
{
    broker_shutdown(l->b);
    net_server_stop(l->s);
    net_server_join(l->s);
    broker_free(l->b);
    net_server_free(l->s);
}

static struct live main_broker;

/* `ward pub -h 127.0.0.1 -p PORT args...` against main_broker. */
#define PUB(...)                                                                                   \
    cli_run(cmd_pub, CLI_ARGS("pub", "-h", "127.0.0.1", "-p", main_broker.port, __VA_ARGS__))

/* An MQTT 5 client of l subscribed to filter at QoS 2. */
static struct client *watch(struct live *l, const char *filter)
{
    struct client_config cc = {.host = "127.0.0.1",
                               .port = (uint16_t)atoi(l->port),
                               .version = MQTT_V5,
                               .client_id = "",
                               .keepalive = 60,
                               .clean_start = true,
                               .timeout_ms = WAIT_MS};
    struct client_result res;
    struct client *c = client_connect(&cc, &res);
    if (!c)
        TEST_FAIL_("the watcher cannot connect: %s", res.error);
    uint8_t code;
    ASSERT_EQ(client_subscribe(c, &filter, 1, 2, 0, &code), 0);
    ASSERT_EQ(code, 2);
    return c;
}

static void unwatch(struct client *c)
{
    client_disconnect(c, 0);
    client_free(c);
}

/* The next message c receives: on topic, payload[0..len), at qos. */
static struct client_message expect_msg(struct client *c, const char *topic, const void *payload,
                                        size_t len, uint8_t qos)
{
    struct client_message m;
    int r = client_next(c, &m, WAIT_MS);
    if (r != 1)
        TEST_FAIL_("no message on '%s' (%d: %s)", topic, r, client_error(c));
    if (m.topic.len != strlen(topic) || memcmp(m.topic.p, topic, m.topic.len) != 0)
        TEST_FAIL_("topic '%.*s', wanted '%s'", (int)m.topic.len, m.topic.p, topic);
    ASSERT_EQ(m.payload.len, len);
    ASSERT(len == 0 || memcmp(m.payload.p, payload, len) == 0);
    ASSERT_EQ(m.qos, qos);
    return m;
}

#define EXPECT_TEXT(c, topic, text, qos) expect_msg((c), (topic), (text), strlen(text), (qos))

/* Standard input from now on: text. */
static void feed_stdin(const char *text)
{
    scratch_write("stdin", text);
    ASSERT(freopen(scratch_path("stdin"), "r", stdin));
}

/* ward pub succeeded, quietly. */
#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc__ = (call);                                                                         \
        if (rc__ != 0 || *out_text || *err_text)                                                   \
            TEST_FAIL_("%s: status %d, stdout \"%s\", stderr \"%s\"", #call, rc__, out_text,       \
                       err_text);                                                                  \
    } while (0)

TEST(message_at_each_qos)
{
    struct client *w = watch(&main_broker, "m/#");
    OK(PUB("-t", "m/zero", "-m", "hello"));
    EXPECT_TEXT(w, "m/zero", "hello", 0);
    OK(PUB("-t", "m/one", "-m", "hello 1", "-q", "1"));
    EXPECT_TEXT(w, "m/one", "hello 1", 1);
    OK(PUB("-t", "m/two", "-q", "2", "--message", "hello 2"));
    EXPECT_TEXT(w, "m/two", "hello 2", 2);
    OK(PUB("-t", "m/v311", "-V", "mqttv311", "-q", "2", "-m", "old"));
    EXPECT_TEXT(w, "m/v311", "old", 2);
    OK(PUB("-t", "m/empty", "-n", "-q", "1"));
    expect_msg(w, "m/empty", "", 0, 1);
    unwatch(w);
}

TEST(retained_and_user_properties)
{
    OK(PUB("-t", "r/kept", "-m", "for later", "-r", "-q", "1"));
    /* A subscriber that comes afterwards gets it, marked retained. */
    struct client *w = watch(&main_broker, "r/#");
    struct client_message m = EXPECT_TEXT(w, "r/kept", "for later", 1);
    ASSERT(m.retain);
    OK(PUB("-t", "r/props", "-m", "p", "--user-property", "k1", "v1", "-D", "publish",
           "user-property", "k2", "v2"));
    m = EXPECT_TEXT(w, "r/props", "p", 0);
    ASSERT(!m.retain);
    /* The two pairs, in order. */
    static const char *const want[][2] = {{"k1", "v1"}, {"k2", "v2"}};
    ASSERT_EQ(m.props.user_count, 2);
    size_t pos = 0;
    for (size_t i = 0; i < 2; i++) {
        struct mqtt_str k, v;
        ASSERT(mqtt_props_next_user(&m.props, &pos, &k, &v));
        ASSERT(k.len == 2 && memcmp(k.p, want[i][0], 2) == 0);
        ASSERT(v.len == 2 && memcmp(v.p, want[i][1], 2) == 0);
    }
    /* An empty retained message clears what was kept. */
    OK(PUB("-t", "r/kept", "-n", "-r", "-q", "1"));
    expect_msg(w, "r/kept", "", 0, 1);
    unwatch(w);
    w = watch(&main_broker, "r/kept");
    OK(PUB("-t", "r/kept", "-m", "marker"));
    EXPECT_TEXT(w, "r/kept", "marker", 0); /* nothing retained came before it */
    unwatch(w);
}

TEST(file_as_one_message)
{
    /* 100 kB of every byte value, NULs and newlines too, arrive unchanged. */
    static uint8_t data[100000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + i / 256);
    FILE *f = fopen(scratch_path("payload.bin"), "wb");
    ASSERT(f);
    ASSERT_EQ(fwrite(data, 1, sizeof(data), f), sizeof(data));
    ASSERT_EQ(fclose(f), 0);
    struct client *w = watch(&main_broker, "f/#");
    OK(PUB("-t", "f/bin", "-q", "1", "-f", scratch_path("payload.bin")));
    expect_msg(w, "f/bin", data, sizeof(data), 1);
    scratch_write("empty.txt", "");
    OK(PUB("-t", "f/empty", "--file", scratch_path("empty.txt")));
    expect_msg(w, "f/empty", "", 0, 0);
    unwatch(w);
}

TEST(standard_input_whole_or_by_line)
{
    struct client *w = watch(&main_broker, "in/#");
    feed_stdin("first\nsecond\n\nno end");
    OK(PUB("-t", "in/lines", "-l", "-q", "1"));
    /* One message per line, in order, without its line end; an empty line
     * is an empty message. */
    EXPECT_TEXT(w, "in/lines", "first", 1);
    EXPECT_TEXT(w, "in/lines", "second", 1);
    EXPECT_TEXT(w, "in/lines", "", 1);
    EXPECT_TEXT(w, "in/lines", "no end", 1);
    feed_stdin("");
    OK(PUB("-t", "in/none", "-l")); /* no lines: nothing sent */
    feed_stdin("all\nof it\n");
    OK(PUB("-t", "in/whole", "-s"));
    EXPECT_TEXT(w, "in/whole", "all\nof it\n", 0); /* in/none sent nothing before it */
    feed_stdin("");
    OK(PUB("-t", "in/whole", "-s"));
    EXPECT_TEXT(w, "in/whole", "", 0);
    unwatch(w);
}

TEST(file_that_cannot_be_read)
{
    struct client *w = watch(&main_broker, "bad/#");
    ASSERT_EQ(PUB("-t", "bad/file", "-f", "/nonexistent/payload"), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, "ward pub: /nonexistent/payload: No such file or directory\n");
    /* A directory opens but cannot be read. */
    ASSERT_EQ(PUB("-t", "bad/file", "-f", "/"), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, "ward pub: /: Is a directory\n");
    OK(PUB("-t", "bad/marker", "-m", "m"));
    EXPECT_TEXT(w, "bad/marker", "m", 0); /* neither sent anything */
    unwatch(w);
}

TEST(nothing_listening)
{
    char port[8], want[128];
    snprintf(port, sizeof(port), "%u", closed_port());
    ASSERT_EQ(
        cli_run(cmd_pub, CLI_ARGS("pub", "-h", "127.0.0.1", "-p", port, "-t", "t", "-m", "x")),
        EXIT_REFUSED);
    snprintf(want, sizeof(want),
             "ward pub: 127.0.0.1:%s: cannot connect to 127.0.0.1 port %s: Connection refused\n",
             port, port);
    ASSERT_STR_EQ(err_text, want);
    ASSERT_STR_EQ(out_text, "");
}

TEST(broker_refuses_the_message)
{
    /* Anonymous clients may connect, but no ACL rule allows any publish. */
    struct auth *a = auth_new();
    ASSERT(a);
    char err[256];
    struct auth_settings set = {.allow_anonymous = true, .no_match_allow = false};
    ASSERT_EQ(auth_configure(a, &set, err, sizeof(err)), 0);
    struct broker_config bc;
    broker_config_defaults(&bc);
    bc.retain_available = false;
    struct live l;
    live_start(&l, &bc, a);
#define PUB_TO(...)                                                                                \
    cli_run(cmd_pub, CLI_ARGS("pub", "-h", "127.0.0.1", "-p", l.port, "-t", "t", __VA_ARGS__))
    /* MQTT 5 QoS 1 and 2: the PUBACK / PUBREC says why. */
    ASSERT_EQ(PUB_TO("-m", "x", "-q", "1"), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, "ward pub: the broker refused the message: not authorized (0x87)\n");
    ASSERT_EQ(PUB_TO("-m", "x", "-q", "2"), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, "ward pub: the broker refused the message: not authorized (0x87)\n");
    /* -l stops at the first refusal. */
    feed_stdin("one\ntwo\n");
    ASSERT_EQ(PUB_TO("-l", "-q", "1"), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, "ward pub: the broker refused the message: not authorized (0x87)\n");
    /* QoS 0 and MQTT 3.1.1 have no way to say it: the message goes nowhere. */
    OK(PUB_TO("-m", "x"));
    OK(PUB_TO("-m", "x", "-q", "1", "-V", "311"));
    /* A retained message where retain is not available closes the
     * connection (MQTT-3.2.2-14): reported, status 1. */
    ASSERT_EQ(PUB_TO("-m", "x", "-q", "1", "-r"), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, "ward pub: the server disconnected: retain not supported (0x9a)\n");
#undef PUB_TO
    live_stop(&l);
    auth_free(a);
}

TEST(broker_refuses_the_connection)
{
    struct auth *a = auth_new();
    ASSERT(a);
    char err[256];
    struct auth_settings set = {.allow_anonymous = false, .no_match_allow = true};
    ASSERT_EQ(auth_configure(a, &set, err, sizeof(err)), 0);
    struct broker_config bc;
    broker_config_defaults(&bc);
    struct live l;
    live_start(&l, &bc, a);
    ASSERT_EQ(
        cli_run(cmd_pub, CLI_ARGS("pub", "-h", "127.0.0.1", "-p", l.port, "-t", "t", "-m", "x")),
        EXIT_REFUSED);
    char want[96];
    snprintf(want, sizeof(want),
             "ward pub: 127.0.0.1:%s: connection refused: not authorized (0x87)\n", l.port);
    ASSERT_STR_EQ(err_text, want);
    live_stop(&l);
    auth_free(a);
}

TEST(over_tls)
{
    char err[256];
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .verify = TLS_VERIFY_NONE};
    struct tls_server *t = tls_server_new(&sc, err, sizeof(err));
    if (!t)
        TEST_FAIL_("tls_server_new: %s", err);
    struct broker_config bc;
    broker_config_defaults(&bc);
    struct live l;
    live_start_tls(&l, &bc, NULL, t);
    struct client *w = watch(&l, "s/#");
#define PUB_TLS(...)                                                                               \
    cli_run(cmd_pub, CLI_ARGS("pub", "-h", "127.0.0.1", "-p", l.tls_port, "-t", "s/x", __VA_ARGS__))
    /* --cafile turns TLS on and trusts the test CA. */
    OK(PUB_TLS("-m", "sealed", "-q", "1", "--cafile", scratch_path("ca.crt")));
    EXPECT_TEXT(w, "s/x", "sealed", 1);
    /* Each refusal is status 1, naming the broker and the cause. */
    char want[200];
    static const char unknown_ca[] =
        "TLS handshake failed: unknown CA (unable to get local issuer certificate)";
    snprintf(want, sizeof(want), "ward pub: 127.0.0.1:%s: %s\n", l.tls_port, unknown_ca);
    ASSERT_EQ(PUB_TLS("-m", "x", "--cafile", scratch_path("other-ca.crt")), EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, want);
    ASSERT_EQ(PUB_TLS("-m", "x", "--tls"), EXIT_REFUSED); /* the system's CAs */
    ASSERT_STR_EQ(err_text, want);
    /* Plain MQTT to a TLS listener: the listener drops it, which the
     * client sees as a close or, with its CONNECT unread there, a reset. */
    ASSERT_EQ(PUB_TLS("-m", "x"), EXIT_REFUSED);
    snprintf(want, sizeof(want), "ward pub: 127.0.0.1:%s: ", l.tls_port);
    const char *cause = err_text + strlen(want);
    if (strncmp(err_text, want, strlen(want)) != 0 ||
        (strcmp(cause, "the server closed the connection\n") != 0 &&
         strcmp(cause, "connection lost: Connection reset by peer\n") != 0))
        TEST_FAIL_("stderr \"%s\"", err_text);
    /* The certificate must name the server asked for, unless --insecure. */
    snprintf(want, sizeof(want),
             "ward pub: 127.0.0.1:%s: TLS handshake failed: bad certificate (the certificate "
             "does not name 'elsewhere.example')\n",
             l.tls_port);
    ASSERT_EQ(
        PUB_TLS("-m", "x", "--cafile", scratch_path("ca.crt"), "--servername", "elsewhere.example"),
        EXIT_REFUSED);
    ASSERT_STR_EQ(err_text, want);
    ASSERT_EQ(PUB_TLS("-m", "unchecked name", "--cafile", scratch_path("ca.crt"), "--servername",
                      "elsewhere.example", "--insecure"),
              0);
    ASSERT_STR_EQ(err_text, "ward pub: --insecure: the server's host name is not checked (its "
                            "certificate chain still is)\n");
    EXPECT_TEXT(w, "s/x", "unchecked name", 0); /* and none of the refused ones came */
#undef PUB_TLS
    unwatch(w);
    live_stop(&l);
    tls_server_free(t);
}

TEST(command_line_refusals)
{
#define REFUSED(want, call) CLI_REFUSED(EXIT_USAGE, want, call, #call)
    REFUSED("ward pub: a topic is required (-t)", PUB("-m", "x"));
    REFUSED("ward pub: a message is required (-m, -f, -l, -s or -n)", PUB("-t", "t"));
    REFUSED("ward pub: -q: '3' is not a number from 0 to 2", PUB("-t", "t", "-m", "x", "-q", "3"));
    REFUSED("ward pub: unknown option '-C'", PUB("-t", "t", "-m", "x", "-C", "1"));
    REFUSED("ward pub: -c needs a client id (-i)", PUB("-t", "t", "-m", "x", "-c", "-i", ""));
#undef REFUSED
    /* TLS options that cannot be used: status 2 before any connection. */
    ASSERT_EQ(PUB("-t", "t", "-m", "x", "--tls", "--key", "k.pem"), EXIT_USAGE);
    ASSERT(strstr(err_text, "--key needs --cert"));
    ASSERT_EQ(PUB("-t", "t", "-m", "x", "--cafile", "/nonexistent/ca.pem"), EXIT_REFUSED);
    ASSERT(strncmp(err_text, "ward pub: ", 10) == 0 && strstr(err_text, "/nonexistent/ca.pem"));
    ASSERT_EQ(PUB("--help"), 0);
    ASSERT(strncmp(out_text, "usage: ward pub ", 16) == 0);
}

int main(void)
{
    char dir[] = "/tmp/ward-unit-pub-XXXXXX";
    scratch_open(dir);
    pki_fixture_ca();
    pki_fixture_csr("srv", "/CN=localhost");
    pki_fixture_sign("srv",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
    /* A second CA, which signed nothing the broker shows. */
    scratch_sh("openssl req -x509 " PKI_EC " -keyout other-ca.key -out other-ca.crt -days 2 "
               "-subj /CN=OtherCA");
    log_set_level(LOG_ERROR); /* the broker's lines would land in what ward pub printed */
    struct broker_config bc;
    broker_config_defaults(&bc);
    live_start(&main_broker, &bc, NULL);
    RUN(message_at_each_qos);
    RUN(retained_and_user_properties);
    RUN(file_as_one_message);
    RUN(standard_input_whole_or_by_line);
    RUN(file_that_cannot_be_read);
    RUN(nothing_listening);
    RUN(broker_refuses_the_message);
    RUN(broker_refuses_the_connection);
    RUN(over_tls);
    RUN(command_line_refusals);
    live_stop(&main_broker);
    free(out_text);
    free(err_text);
    SCRATCH_DONE();
}
