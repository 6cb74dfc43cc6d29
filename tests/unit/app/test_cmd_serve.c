/* ward serve's command line: every bad option is refused with status 2 and
 * a message naming it, before anything starts; --help comes from the table. */
#include "app/cli_fixture.h"
#include "app/commands.h"
#include "test.h"

#define RUN_SERVE(...) cli_run(cmd_serve, CLI_ARGS("serve", __VA_ARGS__))

#define REFUSED(want, ...) CLI_REFUSED(2, want, RUN_SERVE(__VA_ARGS__), #__VA_ARGS__)

TEST(refused)
{
    REFUSED("ward serve: unknown option '--bogus'", "--bogus");
    REFUSED("ward serve: unknown option '-x'", "-x");
    REFUSED("ward serve: -l: missing argument URL", "-l");
    REFUSED("ward serve: --workers: '0' is not a number from 1 to 256", "--workers", "0");
    REFUSED("ward serve: --workers: '257' is not a number", "--workers", "257");
    REFUSED("ward serve: --workers: 'two' is not a number", "--workers=two");
    REFUSED("ward serve: --max-packet-size: '63' is not a number from 64 to 268435460",
            "--max-packet-size", "63");
    REFUSED("ward serve: --max-connections: '0' is not a number", "--max-connections", "0");
    REFUSED("ward serve: --max-inflight: '65536' is not a number", "--max-inflight", "65536");
    REFUSED("ward serve: --max-queued: '-5' is not a number", "--max-queued", "-5");
    REFUSED("ward serve: --max-keepalive: '0' is not a number", "--max-keepalive", "0");
    REFUSED("ward serve: --topic-alias-max: '65536' is not a number", "--topic-alias-max", "65536");
    REFUSED("ward serve: --sys-interval: '86401' is not a number", "--sys-interval", "86401");
    REFUSED("ward serve: --verify-depth: '101' is not a number from 0 to 100", "--verify-depth",
            "101");
    REFUSED("ward serve: --log-level: unknown level 'loud'", "--log-level", "loud");
    REFUSED("ward serve: --client-cert: 'maybe' is not one of none, optional, required",
            "--client-cert", "maybe");
    REFUSED("ward serve: --allow-anonymous: 'yes' is not one of true, false", "--allow-anonymous",
            "yes");
    REFUSED("ward serve: --sni: HOST,CERTFILE,KEYFILE", "--sni", "host,cert");
    REFUSED("ward serve: --peer-cert-as-username: 'uid': cn, dn, san_dns",
            "--peer-cert-as-username", "uid");
    REFUSED("ward serve: --peer-cert-as-clientid: 'x'", "--peer-cert-as-clientid", "x");
    REFUSED("ward serve: unexpected argument 'extra'", "extra");
    REFUSED("ward serve: -l: at most 16 listeners", "-l", "a", "-l", "a", "-l", "a", "-l", "a",
            "-l", "a", "-l", "a", "-l", "a", "-l", "a", "-l", "a", "-l", "a", "-l", "a", "-l", "a",
            "-l", "a", "-l", "a", "-l", "a", "-l", "a", "-l", "a");
    ASSERT_STR_EQ(out_text, "");
}

/* A listener that cannot be set up: status 1 and why, before anything
 * starts. */
#define FAILS(want, ...)                                                                           \
    do {                                                                                           \
        int rc__ = RUN_SERVE(__VA_ARGS__);                                                         \
        if (rc__ != 1 || !strstr(err_text, want))                                                  \
            TEST_FAIL_("%s: status %d, stderr \"%s\", wanted \"%s\"", #__VA_ARGS__, rc__,          \
                       err_text, want);                                                            \
    } while (0)

TEST(websocket_urls)
{
    FAILS("tcp://127.0.0.1:0/mqtt: only WebSocket listeners serve a path", "-l",
          "tcp://127.0.0.1:0/mqtt");
    FAILS("wss://127.0.0.1:0/mqtt: a TLS listener needs certfile and keyfile", "-l",
          "wss://127.0.0.1:0/mqtt");
    FAILS("nats+wss://127.0.0.1:0: a TLS listener needs certfile and keyfile", "-l",
          "nats+wss://127.0.0.1:0");
    FAILS("ws://127.0.0.1:0mqtt: bad port '0mqtt'", "-l", "ws://127.0.0.1:0mqtt");
    FAILS("WebSocket path '/a b'", "-l", "ws://127.0.0.1:0/a b");
    FAILS("WebSocket path '/a#b'", "-l", "ws://127.0.0.1:0/a#b");
    FAILS("wss://127.0.0.1:0: /nonexistent/cert.pem: cannot read", "-l", "ws://127.0.0.1:0", "-l",
          "wss://127.0.0.1:0", "--certfile", "/nonexistent/cert.pem", "--keyfile",
          "/nonexistent/key.pem");
    ASSERT_STR_EQ(out_text, "");
}

TEST(help)
{
    ASSERT_EQ(RUN_SERVE("--help"), 0);
    ASSERT(strncmp(out_text, "usage: ward serve ", 18) == 0);
    ASSERT(strstr(out_text, "\n  -c, --config FILE "));
    ASSERT(strstr(out_text, "\n      --peer-cert-as-clientid F\n"));
    ASSERT(strstr(out_text, "\nTLS (for -l tls://HOST:PORT and mtls://HOST:PORT):\n"));
    ASSERT(strstr(out_text, "SIGHUP re-reads"));
    ASSERT(strstr(out_text, "ws://HOST:PORT/PATH wss://HOST:PORT/PATH"));
    ASSERT(strstr(out_text, "nats+ws:// nats+wss://"));
    ASSERT_STR_EQ(err_text, "");
    ASSERT_EQ(RUN_SERVE("-h"), 0);
    ASSERT(strncmp(out_text, "usage: ward serve ", 18) == 0);
}

int main(void)
{
    RUN(refused);
    RUN(websocket_urls);
    RUN(help);
    free(out_text);
    free(err_text);
    TEST_DONE();
}
