/* `ward bench`: pub/sub throughput and latency with loss, duplicate and
 * order checks, and connection rate. The engine is bench_run.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "commands.h"
#include "mqtt/mqtt.h"
#include "opts.h"
#include "tls/tls.h"

static const struct {
    const char *name;
    enum bench_mode mode;
} scenarios[] = {{"p2p", BENCH_P2P},       {"pubsub", BENCH_P2P}, {"fanin", BENCH_FANIN},
                 {"fanout", BENCH_FANOUT}, {"conn", BENCH_CONN},  {"idle", BENCH_IDLE}};

/* What the command line fills in. */
struct bench_cli {
    struct bench_opts o;
    unsigned n; /* publishers, subscribers or clients */
    struct tls_client_config tls;
};

static const struct opt_choice versions[] = {
    {"3.1.1", MQTT_V311}, {"311", MQTT_V311}, {"5", MQTT_V5}, {NULL, 0}};

/* see bench.h */
int bench_parse_delay(const char *s, uint64_t *ns)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"", 1e6}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
    char *end;
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return -1; /* no sign, no spaces, no "inf" */
    double v = strtod(s, &end);
    if (end == s || strspn(s, "0123456789.") != (size_t)(end - s))
        return -1; /* plain decimals only: no exponent, no hex */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        double d = v * units[i].ns;
        if (!(d >= 0 && d <= 60e9))
            return -1;
        *ns = (uint64_t)(d + 0.5);
        return 0;
    }
    return -1;
}

static int ack_delay(struct opts *p, void *ctx, const char *const *a)
{
    struct bench_cli *cli = ctx;
    if (bench_parse_delay(a[0], &cli->o.ack_delay_ns) < 0)
        return opts_fail(p, "'%s' is not a delay from 0 to 60s (us, ms or s)", a[0]);
    return 0;
}

#define AT(m)       OPT_AT(struct bench_cli, m)
#define RANGE(a, b) .lo = a, .hi = b
#define REAL(a, b)  .dlo = a, .dhi = b

static const struct opt table[] = {
    {"host", 'h', OPT_STRING, "HOST", AT(o.host), .help = "the broker (default localhost)"},
    {"port", 'p', OPT_UINT, "PORT", AT(o.port), RANGE(1, 65535), .help = "its port (default 1883)"},
    {NULL, 'n', OPT_UINT, "N", AT(n), RANGE(1, 50000),
     .help = "publishers/subscribers/clients (default 10)"},
    {NULL, 'q', OPT_UINT, "QOS", AT(o.qos), RANGE(0, 1), .help = "0 or 1 (default 0)"},
    {NULL, 's', OPT_UINT, "BYTES", AT(o.size), RANGE(20, 65536),
     .help = "payload size (default 64; at least 20)"},
    {NULL, 'r', OPT_DOUBLE, "RATE", AT(o.rate), REAL(0, 1e7),
     .help =
         "messages/s per publisher (default 0: as fast as the\nQoS 1 window or the socket allows)"},
    {NULL, 'd', OPT_DOUBLE, "SECONDS", AT(o.duration_s), REAL(0.1, 3600),
     .help = "publish for this long (default 5)"},
    {NULL, 'c', OPT_UINT, "COUNT", AT(o.count), RANGE(1, 1000000000),
     .help = "or this many messages per publisher"},
    {NULL, 'w', OPT_UINT, "WINDOW", AT(o.window), RANGE(1, 65535),
     .help = "QoS 1 messages in flight per publisher (default 64)"},
    {NULL, 't', OPT_UINT, "THREADS", AT(o.threads), RANGE(1, 64),
     .help = "generator threads (default 2)"},
    {NULL, 'V', OPT_CHOICE, "VERSION", AT(o.version), .choices = versions,
     .help = "3.1.1 (default) or 5"},
    {"json", 0, OPT_SET, NULL, AT(o.json), .help = "one JSON object instead of the table"},
    {"hold", 0, OPT_DOUBLE, "SECONDS", AT(o.hold_s), REAL(0, 3600),
     .help = "idle: how long to keep the connections (default 5)"},
    {"sub-port", 0, OPT_UINT, "PORT", AT(o.sub_port), RANGE(1, 65535),
     .help = "subscribers connect to this port of the same host\n(measuring a bridge between two "
             "brokers)"},
    {"ack-delay", 0, OPT_CALL, "DELAY", .call = ack_delay, .nargs = 1,
     .help = "subscribers hold each PUBACK this long (10ms, 500us,\n0.1s; default 0), "
             "reading on: a consumer with\nthat round trip"},
    {"persistent", 0, OPT_SET, NULL, AT(o.persistent),
     .help = "publishers and subscribers keep their sessions\n(clean session false; MQTT 5: "
             "session expiry 1 h)\non topics of this run's own: a broker with\npersistence stores "
             "every QoS 1 message"},
    {"ws", 0, OPT_STRING, "PATH", AT(o.ws_path),
     .help = "MQTT over WebSocket: upgrade on PATH (/mqtt) first;\nwith the TLS options, "
             "wss"},
    {"help", 0, OPT_HELP, .help = "this help"},
    {.kind = OPT_SECTION, .help = "TLS (on with --cafile or --cert):"},
    {"cafile", 0, OPT_STRING, "F", AT(tls.cafile), .help = "trust these CAs"},
    {"cert", 0, OPT_STRING, "F", AT(tls.certfile), .help = "client certificate (mTLS)"},
    {"key", 0, OPT_STRING, "F", AT(tls.keyfile), .help = "its private key"},
    {"insecure", 0, OPT_SET, NULL, AT(tls.insecure), .help = "skip the host name check"},
    {"resume", 0, OPT_SET, NULL, AT(tls.resume),
     .help = "offer the last TLS session again (resumed handshakes)"},
};

static struct opts cli_opts = {
    .prog = "ward bench",
    .table = table,
    .n = sizeof(table) / sizeof(table[0]),
    .usage = "usage: ward bench SCENARIO [options]\n"
             "scenarios:\n"
             "  p2p      N publishers, N subscribers, each pair on its own topic\n"
             "  fanin    N publishers, one subscriber on a wildcard\n"
             "  fanout   one publisher, N subscribers on its topic\n"
             "  conn     connects per second: CONNECT, CONNACK, DISCONNECT, again\n"
             "  idle     -n connections, connected then held for --hold seconds\n"
             "options:\n",
    .footer = "exit status: 0 run complete (QoS 1: nothing lost, duplicated or out of order),\n"
              "1 the run failed or QoS 1 guarantees were broken, 2 usage error.\n",
};

/* see bench.h */
int bench_parse(int argc, char **argv, struct bench_opts *o, struct tls_client_config *tls)
{
    struct bench_cli cli = {.o = {.host = "localhost",
                                  .port = 1883,
                                  .size = 64,
                                  .duration_s = 5,
                                  .threads = 2,
                                  .window = 64,
                                  .version = MQTT_V311,
                                  .hold_s = 5},
                            .n = 10};
    size_t i = 0;
    while (argc > 1 && i < sizeof(scenarios) / sizeof(scenarios[0]) &&
           strcmp(argv[1], scenarios[i].name) != 0)
        i++;
    if (argc < 2 || i == sizeof(scenarios) / sizeof(scenarios[0]))
        return opts_fail(&cli_opts, "unknown scenario '%s' (p2p, fanin, fanout, conn or idle)",
                         argc < 2 ? "" : argv[1]);
    cli.o.mode = scenarios[i].mode;
    int rc = opts_parse(&cli_opts, &cli, argc, argv, 2, NULL);
    if (rc)
        return rc;
    if (cli.o.ws_path && (cli.o.ws_path[0] != '/' || strpbrk(cli.o.ws_path, " \r\n")))
        return opts_fail(&cli_opts, "--ws: '%s' is not a path (/mqtt)", cli.o.ws_path);
    cli.o.pubs = cli.o.mode == BENCH_FANOUT ? 1 : cli.n;
    cli.o.subs = cli.o.mode == BENCH_FANIN ? 1 : cli.n;
    cli.o.clients = cli.n;
    if (cli.o.mode == BENCH_CONN || cli.o.mode == BENCH_IDLE)
        cli.o.pubs = cli.o.subs = 0;
    *o = cli.o;
    *tls = cli.tls;
    return 0;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_json(FILE *out, const struct bench_opts *o, const struct bench_report *r,
                       const char *name)
{
    fprintf(out,
            "{\"scenario\": \"%s\", \"qos\": %u, \"size\": %zu, \"pubs\": %u, \"subs\": %u, "
            "\"clients\": %u, \"elapsed_s\": %.3f, \"rate\": %.1f, \"sent\": %llu, "
            "\"received\": %llu, \"expected\": %llu, \"lost\": %llu, \"duplicates\": %llu, "
            "\"out_of_order\": %llu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
            "\"acked\": %llu, \"acked_lost\": %llu, \"ack_delay_ms\": %.3f, "
            "\"persistent\": %s, \"connects\": %llu, \"connect_errors\": %llu, \"error\": ",
            name, o->qos, o->size, o->pubs, o->subs, o->clients, r->elapsed_s, r->msgs_per_s,
            (unsigned long long)r->sent, (unsigned long long)r->received,
            (unsigned long long)r->expected, (unsigned long long)r->lost,
            (unsigned long long)r->duplicates, (unsigned long long)r->out_of_order, r->p50_ms,
            r->p99_ms, r->max_ms, (unsigned long long)r->acked, (unsigned long long)r->acked_lost,
            (double)o->ack_delay_ns / 1e6, o->persistent ? "true" : "false",
            (unsigned long long)r->connects, (unsigned long long)r->connect_errors);
    json_string(out, r->error);
    fprintf(out, "}\n");
}

/* see bench.h */
void bench_print(FILE *out, const struct bench_opts *o, const struct bench_report *r,
                 const char *name)
{
    if (o->json)
        return print_json(out, o, r, name);
    if (o->mode == BENCH_IDLE) {
        fprintf(out, "%s: %llu connections made and held for %.1f s\n", name,
                (unsigned long long)r->connects, o->hold_s);
        return;
    }
    if (o->mode == BENCH_CONN) {
        fprintf(out, "%s: %u clients, %.2f s: %llu connects (%.0f/s), %llu errors\n", name,
                o->clients, r->elapsed_s, (unsigned long long)r->connects, r->msgs_per_s,
                (unsigned long long)r->connect_errors);
        return;
    }
    fprintf(out,
            "%s qos %u, %u pub / %u sub, %zu B: %.0f msg/s delivered over %.2f s\n"
            "  sent %llu  received %llu  expected %llu  lost %llu  duplicates %llu  "
            "out of order %llu\n"
            "  latency p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
            name, o->qos, o->pubs, o->subs, o->size, r->msgs_per_s, r->elapsed_s,
            (unsigned long long)r->sent, (unsigned long long)r->received,
            (unsigned long long)r->expected, (unsigned long long)r->lost,
            (unsigned long long)r->duplicates, (unsigned long long)r->out_of_order, r->p50_ms,
            r->p99_ms, r->max_ms);
    if (o->qos == 1)
        fprintf(out, "  acknowledged to publishers %llu  of those never delivered %llu\n",
                (unsigned long long)r->acked, (unsigned long long)r->acked_lost);
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        opts_help(&cli_opts, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--help-markdown") == 0) {
        opts_markdown(&cli_opts, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--help-man") == 0) {
        opts_man(&cli_opts, stdout);
        return 0;
    }
    struct bench_opts o;
    struct tls_client_config tc;
    int rc = bench_parse(argc, argv, &o, &tc);
    if (rc)
        return rc == OPTS_HELP ? 0 : rc;
    if (tc.cafile || tc.certfile) {
        char err[512];
        if (!(o.tls = tls_client_new(&tc, err, sizeof(err)))) {
            fprintf(stderr, "ward bench: %s\n", err);
            return 1;
        }
    }
    struct bench_report r;
    rc = bench_run(&o, &r);
    tls_client_free(o.tls);
    bench_print(stdout, &o, &r, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "ward bench: %s\n", r.error);
        return 1;
    }
    if (o.qos == 1 && (r.lost || r.duplicates || r.out_of_order || r.acked_lost)) {
        fprintf(stderr,
                "ward bench: QoS 1 broken: %llu lost (%llu of them acknowledged), %llu "
                "duplicated, %llu out of order\n",
                (unsigned long long)r.lost, (unsigned long long)r.acked_lost,
                (unsigned long long)r.duplicates, (unsigned long long)r.out_of_order);
        return 1;
    }
    return 0;
}
