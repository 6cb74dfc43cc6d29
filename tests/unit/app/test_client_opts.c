/* ward pub / ward sub command lines: mosquitto-compatible options land in
 * the client configuration; each bad command line is refused with status 2
 * and a message naming what is wrong. */
#include "app/cli_fixture.h"
#include "app/client_opts.h"
#include "test.h"

static struct client_opts o;

/* `ward pub args...` and `ward sub args...`: the status, with what went to
 * stdout and stderr in out_text and err_text. */
static int pub_main(int argc, char **argv)
{
    return client_opts_parse(&o, TOOL_PUB, argc, argv);
}

static int sub_main(int argc, char **argv)
{
    return client_opts_parse(&o, TOOL_SUB, argc, argv);
}

#define PUB(...) cli_run(pub_main, CLI_ARGS("pub", __VA_ARGS__))
#define SUB(...) cli_run(sub_main, CLI_ARGS("sub", __VA_ARGS__))

#define REFUSED(want, call) CLI_REFUSED(EXIT_USAGE, want, call, #call)

TEST(pub_defaults)
{
    ASSERT_EQ(PUB("-t", "a/b", "-m", "hi"), 0);
    ASSERT_STR_EQ(err_text, "");
    ASSERT_STR_EQ(o.cc.host, "localhost");
    ASSERT_EQ(o.cc.port, 1883);
    ASSERT_EQ(o.cc.version, MQTT_V5);
    ASSERT_EQ(o.cc.keepalive, 60);
    ASSERT(o.cc.clean_start);
    ASSERT(!o.cc.has_session_expiry);
    ASSERT_EQ(o.qos, 0);
    ASSERT_EQ(o.ntopics, 1);
    ASSERT_STR_EQ(o.topics[0], "a/b");
    ASSERT_EQ(o.source, SRC_MESSAGE);
    ASSERT_STR_EQ(o.message, "hi");
    ASSERT(strncmp(o.cc.client_id, "ward-pub-", 9) == 0);
    ASSERT(!o.use_tls);
}

TEST(pub_every_option)
{
    ASSERT_EQ(PUB("-h", "::1", "-p", "8883", "-t", "t", "-f", "/tmp/x", "-q", "2", "-i", "me", "-u",
                  "user", "-P", "pw", "-V", "mqttv311", "-c", "-k", "0", "-r", "-W", "5", "-d",
                  "--will-topic", "w", "--will-payload", "bye", "--will-qos", "1", "--will-retain",
                  "--cafile", "ca.pem", "--key", "k.pem", "--cert", "c.pem", "--key-password", "kp",
                  "--tls-version", "1.3", "--ciphers", "C", "--servername", "sni", "--alpn", "mqtt",
                  "--insecure"),
              0);
    ASSERT_STR_EQ(o.cc.host, "::1");
    ASSERT_EQ(o.cc.port, 8883);
    ASSERT_EQ(o.source, SRC_FILE);
    ASSERT_STR_EQ(o.message, "/tmp/x");
    ASSERT_EQ(o.qos, 2);
    ASSERT_STR_EQ(o.cc.client_id, "me");
    ASSERT_STR_EQ(o.cc.username, "user");
    ASSERT_STR_EQ(o.cc.password, "pw");
    ASSERT_EQ(o.cc.version, MQTT_V311);
    ASSERT(!o.cc.clean_start);
    ASSERT(!o.cc.has_session_expiry); /* 3.1.1 has none */
    ASSERT_EQ(o.cc.keepalive, 0);
    ASSERT(o.retain);
    ASSERT_EQ(o.timeout_s, 5);
    ASSERT(o.cc.debug);
    ASSERT_STR_EQ(o.cc.will_topic, "w");
    ASSERT_EQ(o.cc.will_len, 3);
    ASSERT_MEM_EQ(o.cc.will_payload, "bye", 3);
    ASSERT_EQ(o.cc.will_qos, 1);
    ASSERT(o.cc.will_retain);
    ASSERT(o.use_tls); /* --cafile turns TLS on */
    ASSERT_STR_EQ(o.tls.cafile, "ca.pem");
    ASSERT_STR_EQ(o.tls.certfile, "c.pem");
    ASSERT_STR_EQ(o.tls.keyfile, "k.pem");
    ASSERT_STR_EQ(o.tls.key_password, "kp");
    ASSERT_STR_EQ(o.tls.min_version, "1.3");
    ASSERT_STR_EQ(o.tls.ciphers, "C");
    ASSERT_STR_EQ(o.tls.servername, "sni");
    ASSERT_STR_EQ(o.tls.alpn, "mqtt");
    ASSERT(o.tls.insecure);
}

TEST(sources)
{
    static const struct {
        const char *flag;
        enum pub_source src;
    } cases[] = {{"-l", SRC_LINES}, {"-s", SRC_STDIN}, {"-n", SRC_EMPTY}};
    for (size_t i = 0; i < 3; i++) {
        ASSERT_EQ(PUB("-t", "t", cases[i].flag), 0);
        ASSERT_EQ(o.source, cases[i].src);
        ASSERT(o.message == NULL);
    }
    ASSERT_EQ(PUB("-t", "t", "--message", "m"), 0);
    ASSERT_EQ(o.source, SRC_MESSAGE);
    ASSERT_EQ(PUB("-t", "t", "--file=f"), 0);
    ASSERT_EQ(o.source, SRC_FILE);
}

TEST(persistent_v5_session_is_kept)
{
    ASSERT_EQ(SUB("-t", "t", "-c", "-i", "id"), 0);
    ASSERT(o.cc.has_session_expiry);
    ASSERT(o.cc.session_expiry == 0xFFFFFFFFu);
    ASSERT_EQ(SUB("-t", "t", "-c", "-i", "id", "-x", "30"), 0);
    ASSERT_EQ(o.cc.session_expiry, 30);
    ASSERT_EQ(SUB("-t", "t", "-x", "4294967295"), 0);
    ASSERT(o.cc.has_session_expiry && o.cc.session_expiry == 4294967295u);
}

TEST(sub_options)
{
    ASSERT_EQ(SUB("-t", "a/#", "-t", "b/+", "-C", "3", "-v", "-R", "--no-local", "-q1", "--tls"),
              0);
    ASSERT_EQ(o.ntopics, 2);
    ASSERT_STR_EQ(o.topics[1], "b/+");
    ASSERT_EQ(o.count, 3);
    ASSERT(o.verbose && o.no_retained && o.no_local);
    ASSERT_EQ(o.qos, 1);
    ASSERT(o.use_tls);
    ASSERT(strncmp(o.cc.client_id, "ward-sub-", 9) == 0);
}

/* The wire form of user properties: 0x26, key, value (MQTT-3.1.2.3.7). */
TEST(user_properties)
{
    static const uint8_t both[] = {0x26, 0, 1, 'a', 0, 2, 'b', 'c', 0x26, 0, 1, 'k', 0, 0};
    ASSERT_EQ(PUB("-t", "t", "-n", "-D", "PUBLISH", "user-property", "a", "bc", "--user-property",
                  "k", "", "-D", "connect", "user-property", "x", "y"),
              0);
    ASSERT_EQ(o.publish_props_len, sizeof(both));
    ASSERT_MEM_EQ(o.publish_props, both, sizeof(both));
    ASSERT_EQ(o.connect_props_len, 7);
    ASSERT_MEM_EQ(o.connect_props, "\x26\0\1x\0\1y", 7);
    ASSERT_EQ(o.cc.connect_user_props.len, 7);
    /* sub: --user-property goes on the CONNECT */
    ASSERT_EQ(SUB("-t", "t", "--user-property", "a", "bc"), 0);
    ASSERT_EQ(o.connect_props_len, 8);
    ASSERT_EQ(o.publish_props_len, 0);
}

TEST(too_many_user_properties)
{
    static char big[3000];
    memset(big, 'v', sizeof(big) - 1);
    ASSERT_EQ(PUB("-t", "t", "-n", "--user-property", "k", big), 0);
    REFUSED("ward pub: --user-property: too many user properties",
            PUB("-t", "t", "-n", "--user-property", "k", big, "--user-property", "k", big));
}

TEST(refused)
{
    REFUSED("ward pub: unknown option '--bogus'", PUB("-t", "t", "-n", "--bogus"));
    REFUSED("ward pub: unknown option '-C'", PUB("-t", "t", "-n", "-C", "1"));
    REFUSED("ward sub: unknown option '-m'", SUB("-t", "t", "-m", "x"));
    REFUSED("ward sub: unknown option '--retain'", SUB("-t", "t", "--retain"));
    REFUSED("ward pub: -q: missing argument QOS", PUB("-t", "t", "-n", "-q"));
    REFUSED("ward pub: -t: missing argument TOPIC", PUB("-n", "-t"));
    REFUSED("ward pub: -q: '3' is not a number from 0 to 2", PUB("-t", "t", "-n", "-q", "3"));
    REFUSED("ward pub: -q: 'one' is not a number", PUB("-t", "t", "-n", "-q", "one"));
    REFUSED("ward pub: -p: '0' is not a number from 1 to 65535", PUB("-t", "t", "-n", "-p", "0"));
    REFUSED("ward pub: --port: '65536' is not a number from 1 to 65535",
            PUB("-t", "t", "-n", "--port", "65536"));
    REFUSED("ward pub: -k: '-1' is not a number", PUB("-t", "t", "-n", "-k", "-1"));
    REFUSED("ward pub: -x: '4294967296' is not a number from 0 to 4294967295",
            PUB("-t", "t", "-n", "-x", "4294967296"));
    REFUSED("ward sub: -W: '0' is not a number from 1 to 86400", SUB("-t", "t", "-W", "0"));
    REFUSED("ward sub: -C: '0' is not a number", SUB("-t", "t", "-C", "0"));
    REFUSED("ward pub: --will-qos: '3' is not a number", PUB("-t", "t", "-n", "--will-qos", "3"));
    REFUSED("ward sub: -V: '7' is not one of 5, mqttv5, 3.1.1", SUB("-t", "t", "-V", "7"));
    REFUSED("ward pub: -n: give only one of -m, -f, -l, -s, -n", PUB("-t", "t", "-m", "1", "-n"));
    REFUSED("ward pub: -t: one topic only", PUB("-t", "a", "-t", "b", "-n"));
    REFUSED("ward pub: a topic is required (-t)", PUB("-m", "x"));
    REFUSED("ward sub: a topic is required (-t)", SUB("-v"));
    REFUSED("ward pub: a message is required", PUB("-t", "x"));
    REFUSED("ward pub: unexpected argument 'extra'", PUB("-t", "t", "-n", "extra"));
    REFUSED("ward pub: -c needs a client id (-i)", PUB("-t", "t", "-n", "-c", "-i", ""));
    REFUSED("ward pub: -D: missing arguments CMD user-property KEY VALUE",
            PUB("-t", "t", "-n", "-D", "CONNECT", "user-property", "k"));
    REFUSED("ward pub: -D: 'user-prop': only user-property is supported",
            PUB("-t", "t", "-n", "-D", "CONNECT", "user-prop", "k", "v"));
    REFUSED("ward sub: -D: 'PUBLISH': only CONNECT is supported",
            SUB("-t", "t", "-D", "PUBLISH", "user-property", "k", "v"));
    REFUSED("ward pub: --will-retain: takes no argument", PUB("-t", "t", "-n", "--will-retain=1"));
}

TEST(help)
{
    ASSERT_EQ(PUB("--help"), -1);
    ASSERT(strstr(out_text, "usage: ward pub"));
    ASSERT(strstr(out_text, "  -m, --message MSG"));
    ASSERT(!strstr(out_text, "--no-local"));
    ASSERT_EQ(SUB("--help"), -1);
    ASSERT(strstr(out_text, "      --no-local"));
    ASSERT(strstr(out_text, "  -C, --count COUNT"));
    ASSERT(!strstr(out_text, "--message"));
}

int main(void)
{
    RUN(pub_defaults);
    RUN(pub_every_option);
    RUN(sources);
    RUN(persistent_v5_session_is_kept);
    RUN(sub_options);
    RUN(user_properties);
    RUN(too_many_user_properties);
    RUN(refused);
    RUN(help);
    free(err_text);
    TEST_DONE();
}
