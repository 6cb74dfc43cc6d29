/* ward bench's load generator (app/bench_run.c) on small bounded runs
 * against a broker in this process: every scenario's report adds up (what
 * was sent, received, acknowledged, connected, pinged), over TCP, WebSocket
 * and TLS, with the pacing options; and a run that cannot go on stops with
 * the cause in the report (nothing listening, a refused WebSocket upgrade,
 * an unknown CA, a broker that refuses connections or closes them). The
 * options come from bench_parse, as `ward bench` makes them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "app/bench.h"
#include "app/cli_fixture.h"
#include "broker/broker.h"
#include "core/log.h"
#include "mqtt/mqtt.h"
#include "net/net.h"
#include "net_fixture.h"
#include "pki_fixture.h"
#include "scratch.h"
#include "tls/tls.h"
#include "test.h"

/* A broker behind a net server on 127.0.0.1, on a port of its own. */
struct live {
    struct broker *b;
    struct net_server *s;
    char port[8];
    char ws_port[8];   /* MQTT over WebSocket on /mqtt */
    char tcp2_port[8]; /* a second plain listener */
    char tls_port[8];  /* MQTT over TLS */
};

/* The brokers' TLS listeners' certificate (the test PKI's srv.crt). */
static struct tls_server *tls;

static void live_start(struct live *l, uint32_t max_sessions, uint32_t max_connections)
{
    char err[256];
    struct broker_config bc;
    broker_config_defaults(&bc);
    if (max_sessions)
        bc.max_sessions = max_sessions;
    l->b = broker_new(&bc);
    ASSERT(l->b);
    struct net_config nc = {.workers = 1,
                            .max_connections = max_connections,
                            .max_input = 1 << 20,
                            .max_output = 1 << 20};
    l->s = net_server_new(&nc, broker_net_handler(), l->b);
    ASSERT(l->s);
    ASSERT_EQ(net_server_listen(l->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen(l->s, "ws://127.0.0.1:0/mqtt", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen(l->s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    snprintf(l->port, sizeof(l->port), "%u", net_server_port(l->s, 0));
    snprintf(l->ws_port, sizeof(l->ws_port), "%u", net_server_port(l->s, 1));
    snprintf(l->tcp2_port, sizeof(l->tcp2_port), "%u", net_server_port(l->s, 2));
    ASSERT_EQ(net_server_listen_tls(l->s, "tls://127.0.0.1:0", tls, err, sizeof(err)), 0);
    snprintf(l->tls_port, sizeof(l->tls_port), "%u", net_server_port(l->s, 3));
    ASSERT_EQ(broker_start(l->b), 0);
    ASSERT_EQ(net_server_start(l->s), 0);
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
static struct bench_opts o;
static struct tls_client_config tc;
static struct bench_report r;
static int parent_fd = -1; /* when >= 0: the run is a --procs child talking on it */

static int parse_main(int argc, char **argv)
{
    return bench_parse(argc, argv, &o, &tc);
}

/* Parses `ward bench SCENARIO -h 127.0.0.1 -p PORT -t 1 args...` and runs
 * it (with a TLS client context made from the TLS options, if any, as
 * cmd_bench makes it); returns bench_run's result, with what it printed in
 * out_text. */
#define BENCH(port, scenario, ...)                                                                 \
    bench(CLI_ARGS("bench", scenario, "-h", "127.0.0.1", "-p", (port), "-t", "1", __VA_ARGS__))

static int bench(const char *const *args)
{
    if (cli_run(parse_main, args) != 0)
        TEST_FAIL_("bench_parse refused the options: %s", err_text);
    if (parent_fd >= 0)
        o.ctl_fd = parent_fd;
    char err[256];
    if (tc.cafile && !(o.tls = tls_client_new(&tc, err, sizeof(err))))
        TEST_FAIL_("tls_client_new: %s", err);
    struct capture c;
    capture_begin(&c, stdout);
    int rc = bench_run(&o, &r);
    free(out_text);
    out_text = capture_end(&c);
    tls_client_free(o.tls);
    return rc;
}

/* A run that went well: no error, nothing lost, duplicated or reordered. */
static void assert_clean(int rc)
{
    if (rc != 0 || r.error[0])
        TEST_FAIL_("the run failed (%d): %s", rc, r.error);
    ASSERT_EQ(r.lost, 0);
    ASSERT_EQ(r.duplicates, 0);
    ASSERT_EQ(r.out_of_order, 0);
    ASSERT(r.elapsed_s > 0);
}

TEST(p2p_qos1_counts_add_up)
{
    assert_clean(BENCH(main_broker.port, "p2p", "-n", "2", "-c", "25", "-q", "1", "-d", "0.1"));
    ASSERT_EQ(r.sent, 50); /* -c is per publisher */
    ASSERT_EQ(r.expected, 50);
    ASSERT_EQ(r.received, 50);
    ASSERT_EQ(r.acked, 50);
    ASSERT_EQ(r.acked_lost, 0);
    ASSERT(r.msgs_per_s > 0);
    ASSERT(r.p50_ms > 0 && r.p50_ms <= r.p99_ms && r.p99_ms <= r.max_ms);
    ASSERT_STR_EQ(out_text, ""); /* the report is the caller's to print */
}

TEST(fanout_and_fanin)
{
    assert_clean(BENCH(main_broker.port, "fanout", "-n", "3", "-c", "10", "-d", "0.1"));
    ASSERT_EQ(r.sent, 10);
    ASSERT_EQ(r.expected, 30); /* every subscriber gets every message */
    ASSERT_EQ(r.received, 30);
    ASSERT_EQ(r.acked, 0); /* QoS 0 */
    assert_clean(BENCH(main_broker.port, "fanin", "-n", "3", "-c", "10", "-q", "1", "-d", "0.1"));
    ASSERT_EQ(r.sent, 30);
    ASSERT_EQ(r.received, 30);
    ASSERT_EQ(r.acked, 30);
}

TEST(mqtt5_with_large_messages)
{
    assert_clean(BENCH(main_broker.port, "p2p", "-n", "1", "-c", "20", "-q", "1", "-V", "5", "-s",
                       "65536", "-d", "0.1"));
    ASSERT_EQ(r.received, 20);
    ASSERT_EQ(r.acked, 20);
}

TEST(connection_scenarios)
{
    assert_clean(BENCH(main_broker.port, "conn", "-n", "2", "-d", "0.2"));
    ASSERT(r.connects > 0);
    ASSERT_EQ(r.connect_errors, 0);
    ASSERT(r.msgs_per_s > 0);
    ASSERT_EQ(r.sent, 0);
    /* idle: all connected (said on stdout, for whoever measures the
     * broker then), held, and done. */
    assert_clean(BENCH(main_broker.port, "idle", "-n", "4", "--hold", "0"));
    ASSERT_STR_EQ(out_text, "connected 4\n");
    ASSERT_EQ(r.connects, 4);
    ASSERT_EQ(r.connect_errors, 0);
    ASSERT(r.connect_s > 0);
    /* storm: all dropped at once and connected again. */
    assert_clean(BENCH(main_broker.port, "storm", "-n", "4", "--hold", "0"));
    ASSERT_STR_EQ(out_text, "connected 4\n");
    ASSERT_EQ(r.refused, 0);
    ASSERT(r.reconnect_s > 0);
    ASSERT_STR_EQ(r.last_refusal, "");
}

TEST(transports_and_pacing)
{
    /* MQTT over WebSocket, messages larger than one frame. */
    assert_clean(BENCH(main_broker.ws_port, "p2p", "-n", "2", "-c", "10", "-q", "1", "-s", "65536",
                       "--ws", "/mqtt"));
    ASSERT_EQ(r.received, 20);
    ASSERT_EQ(r.acked, 20);
    /* Subscribers on another listener than the publishers. */
    assert_clean(BENCH(main_broker.port, "fanout", "-n", "2", "-c", "10", "--sub-port",
                       main_broker.tcp2_port));
    ASSERT_EQ(r.received, 20);
    /* Subscribers that hold each PUBACK a while still get everything. */
    assert_clean(
        BENCH(main_broker.port, "fanin", "-n", "2", "-c", "10", "-q", "1", "--ack-delay", "2ms"));
    ASSERT_EQ(r.received, 20);
    ASSERT_EQ(r.acked, 20);
    /* Connections opened at a pace, from other loopback addresses. */
    assert_clean(BENCH(main_broker.port, "idle", "-n", "4", "--hold", "0", "--connect-rate", "200",
                       "--source", "2"));
    ASSERT_STR_EQ(out_text, "connected 4\n");
    ASSERT_EQ(r.connects, 4);
}

TEST(over_tls)
{
    const char *ca = scratch_path("ca.crt");
    assert_clean(
        BENCH(main_broker.tls_port, "p2p", "-n", "2", "-c", "10", "-q", "1", "--cafile", ca));
    ASSERT_EQ(r.received, 20);
    assert_clean(
        BENCH(main_broker.tls_port, "storm", "-n", "3", "--hold", "0", "--cafile", ca, "--resume"));
    ASSERT_STR_EQ(out_text, "connected 3\n");
    ASSERT(r.reconnect_s > 0);
    /* A CA that did not sign the broker's certificate ends the run. */
    static const char unknown_ca[] =
        "TLS handshake failed: unknown CA (unable to get local issuer certificate)";
    const char *other = scratch_path("other-ca.crt");
    ASSERT_EQ(BENCH(main_broker.tls_port, "p2p", "-n", "1", "-c", "1", "--cafile", other), -1);
    ASSERT_STR_EQ(r.error, unknown_ca);
    ASSERT_EQ(r.sent, 0);
    /* conn counts each refused attempt and tries again; when none
     * succeeded, it says why. */
    ASSERT_EQ(BENCH(main_broker.tls_port, "conn", "-n", "1", "-d", "0.1", "--cafile", other), -1);
    ASSERT_STR_EQ(r.error, unknown_ca);
    ASSERT(r.connects == 0 && r.connect_errors >= 1);
}

TEST(child_waits_for_its_parent)
{
    /* A process of --procs tells its parent when all its connections are
     * up, and goes on at the parent's word. The word is written before the
     * run here, so the child finds it at once. */
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    parent_fd = sv[1];
    char c = BENCH_CTL_GO;
    ASSERT_EQ(write(sv[0], &c, 1), 1);
    assert_clean(BENCH(main_broker.port, "idle", "-n", "3", "--hold", "0"));
    ASSERT_STR_EQ(out_text, ""); /* told the parent, not stdout */
    ASSERT_EQ(read(sv[0], &c, 1), 1);
    ASSERT_EQ(c, BENCH_CTL_CONNECTED);
    ASSERT_EQ(r.connects, 3);
    /* Any other word ends the run. */
    c = 'X';
    ASSERT_EQ(write(sv[0], &c, 1), 1);
    ASSERT_EQ(BENCH(main_broker.port, "storm", "-n", "2", "--hold", "0"), -1);
    ASSERT_STR_EQ(r.error, "no word from the parent process");
    ASSERT_EQ(read(sv[0], &c, 1), 1);
    ASSERT_EQ(c, BENCH_CTL_CONNECTED);
    parent_fd = -1;
    close(sv[0]);
    close(sv[1]);
}

TEST(idle_keepalive_pings)
{
    /* Held 1.5 s with a ping every second: each connection pings once,
     * and the broker answers every ping. */
    assert_clean(BENCH(main_broker.port, "idle", "-n", "2", "--hold", "1.5", "--keepalive", "1"));
    ASSERT(r.pings >= 2);
    ASSERT_EQ(r.pongs, r.pings);
    ASSERT_EQ(r.pings_missing, 0);
    ASSERT_EQ(r.conns_missing, 0);
    ASSERT(r.p50_ms > 0); /* the ping round trips */
}

TEST(websocket_refused)
{
    /* A path the listener does not serve: the upgrade is refused. */
    ASSERT_EQ(BENCH(main_broker.ws_port, "p2p", "-n", "1", "-c", "1", "--ws", "/other"), -1);
    ASSERT_STR_EQ(r.error, "the broker refused the WebSocket upgrade: HTTP/1.1 404 Not Found");
    ASSERT_EQ(r.sent, 0);
    /* Plain MQTT to a WebSocket listener is not an HTTP request. */
    ASSERT_EQ(BENCH(main_broker.ws_port, "p2p", "-n", "1", "-c", "1"), -1);
    if (!strstr(r.error, " connection was closed by the broker"))
        TEST_FAIL_("error \"%s\"", r.error);
}

TEST(nothing_listening)
{
    char port[8], want[96];
    snprintf(port, sizeof(port), "%u", closed_port());
    ASSERT_EQ(BENCH(port, "p2p", "-n", "1", "-c", "1"), -1);
    snprintf(want, sizeof(want), "cannot connect to 127.0.0.1 port %s: Connection refused", port);
    ASSERT_STR_EQ(r.error, want);
    ASSERT_EQ(r.sent, 0);
}

TEST(broker_refuses_connections)
{
    /* One session at most: the second client of p2p is refused, which
     * ends a run of publishers and subscribers. */
    struct live l;
    live_start(&l, 1, 0);
    ASSERT_EQ(BENCH(l.port, "p2p", "-n", "1", "-c", "1"), -1);
    ASSERT_STR_EQ(r.error, "the broker refused the connection: server unavailable (0x03)");
    ASSERT_EQ(BENCH(l.port, "p2p", "-n", "1", "-c", "1", "-V", "5"), -1);
    ASSERT_STR_EQ(r.error, "the broker refused the connection: quota exceeded (0x97)");
    /* idle tries a refused client again, as a client would, but not for
     * ever. */
    ASSERT_EQ(BENCH(l.port, "idle", "-n", "2", "--hold", "0"), -1);
    char want[200];
    snprintf(want, sizeof(want),
             "a client was refused %u times (the broker refused the connection: server "
             "unavailable (0x03))",
             BENCH_STORM_ATTEMPTS);
    ASSERT_STR_EQ(r.error, want);
    ASSERT_EQ(r.connect_errors, BENCH_STORM_ATTEMPTS);
    ASSERT_STR_EQ(r.last_refusal, "the broker refused the connection: server unavailable (0x03)");
    live_stop(&l);
}

TEST(broker_closes_connections)
{
    /* One connection at most: the second is accepted and closed at once. */
    struct live l;
    live_start(&l, 0, 1);
    ASSERT_EQ(BENCH(l.port, "p2p", "-n", "1", "-c", "1"), -1);
    if (!strstr(r.error, " connection was closed by the broker"))
        TEST_FAIL_("error \"%s\"", r.error);
    live_stop(&l);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    /* As cmd_bench does before bench_run: a connection the broker closed
     * is an error in the report, not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/ward-unit-bench-XXXXXX";
    scratch_open(dir);
    pki_fixture_ca();
    pki_fixture_csr("srv", "/CN=localhost");
    pki_fixture_sign("srv",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
    scratch_sh("openssl req -x509 " PKI_EC " -keyout other-ca.key -out other-ca.crt -days 2 "
               "-subj /CN=OtherCA");
    char err[256];
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .verify = TLS_VERIFY_NONE};
    if (!(tls = tls_server_new(&sc, err, sizeof(err))))
        TEST_FAIL_("tls_server_new: %s", err);
    live_start(&main_broker, 0, 0);
    RUN(p2p_qos1_counts_add_up);
    RUN(fanout_and_fanin);
    RUN(mqtt5_with_large_messages);
    RUN(connection_scenarios);
    RUN(transports_and_pacing);
    RUN(over_tls);
    RUN(child_waits_for_its_parent);
    RUN(idle_keepalive_pings);
    RUN(websocket_refused);
    RUN(nothing_listening);
    RUN(broker_refuses_connections);
    RUN(broker_closes_connections);
    live_stop(&main_broker);
    tls_server_free(tls);
    free(out_text);
    free(err_text);
    SCRATCH_DONE();
}
