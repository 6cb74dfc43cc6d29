/* `ward bench`: pub/sub throughput and latency with loss, duplicate and
 * order checks, and connection rate. The engine is bench_run.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "commands.h"
#include "mqtt/mqtt.h"
#include "tls/tls.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ward bench SCENARIO [options]\n"
                 "scenarios:\n"
                 "  p2p      N publishers, N subscribers, each pair on its own topic\n"
                 "  fanin    N publishers, one subscriber on a wildcard\n"
                 "  fanout   one publisher, N subscribers on its topic\n"
                 "  conn     connects per second: CONNECT, CONNACK, DISCONNECT, again\n"
                 "  idle     -n connections, connected then held for --hold seconds\n"
                 "options:\n"
                 "  -h HOST, -p PORT    the broker (default localhost:1883)\n"
                 "  -n N                publishers/subscribers/clients (default 10)\n"
                 "  -q QOS              0 or 1 (default 0)\n"
                 "  -s BYTES            payload size (default 64; at least 20)\n"
                 "  -r RATE             messages/s per publisher (default 0: as fast as the\n"
                 "                      QoS 1 window or the socket allows)\n"
                 "  -d SECONDS          publish for this long (default 5)\n"
                 "  -c COUNT            or this many messages per publisher\n"
                 "  -w WINDOW           QoS 1 messages in flight per publisher (default 64)\n"
                 "  -t THREADS          generator threads (default 2)\n"
                 "  -V VERSION          3.1.1 (default) or 5\n"
                 "  --json              one JSON object instead of the table\n"
                 "  --cafile F          TLS, trusting these CAs; --cert F --key F for mTLS;\n"
                 "                      --insecure skips the host name check\n"
                 "  --resume            offer the last TLS session again (resumed handshakes)\n"
                 "  --hold SECONDS      idle: how long to keep the connections (default 5)\n"
                 "  --sub-port PORT     subscribers connect to this port of the same host\n"
                 "                      (measuring a bridge between two brokers)\n"
                 "exit status: 0 run complete (QoS 1: nothing lost, duplicated or out of order),\n"
                 "1 the run failed or QoS 1 guarantees were broken, 2 usage error.\n");
}

static const struct {
    const char *name;
    enum bench_mode mode;
} scenarios[] = {{"p2p", BENCH_P2P},       {"pubsub", BENCH_P2P}, {"fanin", BENCH_FANIN},
                 {"fanout", BENCH_FANOUT}, {"conn", BENCH_CONN},  {"idle", BENCH_IDLE}};

static int num(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "ward bench: %s: '%s' is out of range (%g to %g)\n", flag, s, lo, hi);
        return 2;
    }
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, struct bench_opts *o, unsigned *n,
                 struct tls_client_config *tls)
{
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'J'},           {"help", no_argument, NULL, 'H'},
        {"cafile", required_argument, NULL, 'A'},   {"cert", required_argument, NULL, 'E'},
        {"key", required_argument, NULL, 'K'},      {"insecure", no_argument, NULL, 'I'},
        {"resume", no_argument, NULL, 'R'},         {"hold", required_argument, NULL, 'O'},
        {"sub-port", required_argument, NULL, 'S'}, {NULL, 0, NULL, 0}};
    double v;
    int ch, rc = 0;
    optind = 2;
    while (rc == 0 && (ch = getopt_long(argc, argv, "h:p:n:q:s:r:d:c:w:t:V:", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            rc = num("-p", optarg, 1, 65535, &v);
            o->port = (uint16_t)v;
            break;
        case 'S':
            rc = num("--sub-port", optarg, 1, 65535, &v);
            o->sub_port = (uint16_t)v;
            break;
        case 'n':
            rc = num("-n", optarg, 1, 50000, &v);
            *n = (unsigned)v;
            break;
        case 'q':
            rc = num("-q", optarg, 0, 1, &v);
            o->qos = (uint8_t)v;
            break;
        case 's':
            rc = num("-s", optarg, 20, 65536, &v);
            o->size = (size_t)v;
            break;
        case 'r':
            rc = num("-r", optarg, 0, 1e7, &o->rate);
            break;
        case 'd':
            rc = num("-d", optarg, 0.1, 3600, &o->duration_s);
            break;
        case 'c':
            rc = num("-c", optarg, 1, 1e9, &v);
            o->count = (uint64_t)v;
            break;
        case 'w':
            rc = num("-w", optarg, 1, 65535, &v);
            o->window = (unsigned)v;
            break;
        case 't':
            rc = num("-t", optarg, 1, 64, &v);
            o->threads = (unsigned)v;
            break;
        case 'V':
            if (strcmp(optarg, "5") == 0)
                o->version = MQTT_V5;
            else if (strcmp(optarg, "3.1.1") == 0 || strcmp(optarg, "311") == 0)
                o->version = MQTT_V311;
            else
                rc = 2;
            break;
        case 'J':
            o->json = true;
            break;
        case 'A':
            tls->cafile = optarg;
            break;
        case 'E':
            tls->certfile = optarg;
            break;
        case 'K':
            tls->keyfile = optarg;
            break;
        case 'I':
            tls->insecure = true;
            break;
        case 'R':
            tls->resume = true;
            break;
        case 'O':
            rc = num("--hold", optarg, 0, 3600, &o->hold_s);
            break;
        case 'H':
            usage(stdout);
            return -1;
        default:
            rc = 2;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "ward bench: unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
    return rc;
}

static void print(const struct bench_opts *o, const struct bench_report *r, const char *name)
{
    if (o->json) {
        printf("{\"scenario\": \"%s\", \"qos\": %u, \"size\": %zu, \"pubs\": %u, \"subs\": %u, "
               "\"clients\": %u, \"elapsed_s\": %.3f, \"rate\": %.1f, \"sent\": %llu, "
               "\"received\": %llu, \"expected\": %llu, \"lost\": %llu, \"duplicates\": %llu, "
               "\"out_of_order\": %llu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
               "\"connects\": %llu, \"connect_errors\": %llu, \"error\": \"%s\"}\n",
               name, o->qos, o->size, o->pubs, o->subs, o->clients, r->elapsed_s, r->msgs_per_s,
               (unsigned long long)r->sent, (unsigned long long)r->received,
               (unsigned long long)r->expected, (unsigned long long)r->lost,
               (unsigned long long)r->duplicates, (unsigned long long)r->out_of_order, r->p50_ms,
               r->p99_ms, r->max_ms, (unsigned long long)r->connects,
               (unsigned long long)r->connect_errors, r->error);
        return;
    }
    if (o->mode == BENCH_IDLE) {
        printf("%s: %llu connections made and held for %.1f s\n", name,
               (unsigned long long)r->connects, o->hold_s);
        return;
    }
    if (o->mode == BENCH_CONN) {
        printf("%s: %u clients, %.2f s: %llu connects (%.0f/s), %llu errors\n", name, o->clients,
               r->elapsed_s, (unsigned long long)r->connects, r->msgs_per_s,
               (unsigned long long)r->connect_errors);
        return;
    }
    printf("%s qos %u, %u pub / %u sub, %zu B: %.0f msg/s delivered over %.2f s\n"
           "  sent %llu  received %llu  expected %llu  lost %llu  duplicates %llu  "
           "out of order %llu\n"
           "  latency p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
           name, o->qos, o->pubs, o->subs, o->size, r->msgs_per_s, r->elapsed_s,
           (unsigned long long)r->sent, (unsigned long long)r->received,
           (unsigned long long)r->expected, (unsigned long long)r->lost,
           (unsigned long long)r->duplicates, (unsigned long long)r->out_of_order, r->p50_ms,
           r->p99_ms, r->max_ms);
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct bench_opts o = {.host = "localhost",
                           .port = 1883,
                           .size = 64,
                           .duration_s = 5,
                           .threads = 2,
                           .window = 64,
                           .version = MQTT_V311};
    size_t i;
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (strcmp(argv[1], scenarios[i].name) == 0)
            break;
    if (i == sizeof(scenarios) / sizeof(scenarios[0])) {
        fprintf(stderr, "ward bench: unknown scenario '%s' (p2p, fanin, fanout, conn)\n", argv[1]);
        return 2;
    }
    o.mode = scenarios[i].mode;
    unsigned n = 10;
    struct tls_client_config tc = {0};
    o.hold_s = 5;
    int rc = parse(argc, argv, &o, &n, &tc);
    if (rc == 0 && (tc.cafile || tc.certfile)) {
        char err[512];
        if (!(o.tls = tls_client_new(&tc, err, sizeof(err)))) {
            fprintf(stderr, "ward bench: %s\n", err);
            return 1;
        }
    }
    if (rc) {
        if (rc > 0)
            fprintf(stderr, "(ward bench --help lists the options)\n");
        return rc < 0 ? 0 : rc;
    }
    o.pubs = o.mode == BENCH_FANOUT ? 1 : n;
    o.subs = o.mode == BENCH_FANIN ? 1 : n;
    o.clients = n;
    if (o.mode == BENCH_CONN || o.mode == BENCH_IDLE)
        o.pubs = o.subs = 0;
    struct bench_report r;
    rc = bench_run(&o, &r);
    tls_client_free(o.tls);
    print(&o, &r, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "ward bench: %s\n", r.error);
        return 1;
    }
    if (o.qos == 1 && (r.lost || r.duplicates || r.out_of_order)) {
        fprintf(stderr,
                "ward bench: QoS 1 broken: %llu lost, %llu duplicated, %llu out of "
                "order\n",
                (unsigned long long)r.lost, (unsigned long long)r.duplicates,
                (unsigned long long)r.out_of_order);
        return 1;
    }
    return 0;
}
