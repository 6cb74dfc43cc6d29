/* `ward bench`: pub/sub throughput and latency with loss, duplicate and
 * order checks, and connection rate. The engine is bench_run.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_stats.h"
#include "commands.h"
#include "mqtt/mqtt.h"
#include "opts.h"
#include "tls/tls.h"

static const struct {
    const char *name;
    enum bench_mode mode;
} scenarios[] = {{"p2p", BENCH_P2P},       {"pubsub", BENCH_P2P}, {"fanin", BENCH_FANIN},
                 {"fanout", BENCH_FANOUT}, {"conn", BENCH_CONN},  {"idle", BENCH_IDLE},
                 {"storm", BENCH_STORM}};

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

/* One dotted IPv4 address in host order. */
static int parse_ipv4(const char *s, uint32_t *a)
{
    struct in_addr in;
    if (inet_pton(AF_INET, s, &in) != 1)
        return -1;
    *a = ntohl(in.s_addr);
    return 0;
}

/* see bench.h */
int bench_parse_source(const char *s, uint32_t *first, uint32_t *count)
{
    if (!s || !*s)
        return -1;
    if (strspn(s, "0123456789") == strlen(s)) {
        if (strlen(s) > 3 || atoi(s) < 1 || atoi(s) > 254)
            return -1;
        *first = 0x7f000002u;
        *count = (uint32_t)atoi(s);
        return 0;
    }
    char lo[16], hi[16];
    const char *dash = strchr(s, '-');
    size_t n = dash ? (size_t)(dash - s) : strlen(s);
    if (n >= sizeof(lo) || (dash && strlen(dash + 1) >= sizeof(hi)))
        return -1;
    memcpy(lo, s, n);
    lo[n] = '\0';
    snprintf(hi, sizeof(hi), "%s", dash ? dash + 1 : lo);
    uint32_t a, b;
    if (parse_ipv4(lo, &a) < 0 || parse_ipv4(hi, &b) < 0 || b < a || b - a >= 65536)
        return -1;
    *first = a;
    *count = b - a + 1;
    return 0;
}

static int source(struct opts *p, void *ctx, const char *const *a)
{
    struct bench_cli *cli = ctx;
    if (bench_parse_source(a[0], &cli->o.src_first, &cli->o.src_count) < 0)
        return opts_fail(p,
                         "'%s' is not an IPv4 address, a range A-B of at most "
                         "65536 or a count from 1 to 254",
                         a[0]);
    return 0;
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
     .help = "idle: how long to keep the connections (default 5);\nstorm: how long before "
             "dropping them"},
    {"keepalive", 0, OPT_UINT, "SECONDS", AT(o.keepalive_s), RANGE(1, 65535),
     .help = "idle, storm: keep alive in CONNECT and a PINGREQ\nthat often on every "
             "connection; answers checked\n(default: none sent, keep alive 120)"},
    {"source", 0, OPT_CALL, "ADDRS", .call = source, .nargs = 1,
     .help = "bind the connections to these IPv4 addresses in\nturn: A.B.C.D, A.B.C.D-A.B.C.D "
             "or a count N\n(127.0.0.2 to 127.0.0.N+1), past one address's\nephemeral ports"},
    {"connect-rate", 0, OPT_DOUBLE, "N", AT(o.connect_rate), REAL(0, 1e6),
     .help = "idle, storm: open N connections a second at first\n(default 0: all at once)"},
    {"procs", 0, OPT_UINT, "N", AT(o.procs), RANGE(1, 64),
     .help = "idle, storm, conn: N generator processes sharing\n-n (each with its own "
             "descriptor limit); one report"},
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
             "  storm    -n connections, held --hold seconds, then all dropped at\n"
             "           once (no DISCONNECT) and reconnected at once: time to\n"
             "           reconnect all, refusals, CONNACK latency\n"
             "options:\n",
    .footer = "exit status: 0 run complete (QoS 1: nothing lost, duplicated or out of order),\n"
              "1 the run failed, QoS 1 guarantees were broken or a PINGREQ went unanswered\n"
              "(--keepalive), 2 usage error.\n",
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
                                  .hold_s = 5,
                                  .ctl_fd = -1},
                            .n = 10};
    size_t i = 0;
    while (argc > 1 && i < sizeof(scenarios) / sizeof(scenarios[0]) &&
           strcmp(argv[1], scenarios[i].name) != 0)
        i++;
    if (argc < 2 || i == sizeof(scenarios) / sizeof(scenarios[0]))
        return opts_fail(&cli_opts,
                         "unknown scenario '%s' (p2p, fanin, fanout, conn, idle or storm)",
                         argc < 2 ? "" : argv[1]);
    cli.o.mode = scenarios[i].mode;
    int rc = opts_parse(&cli_opts, &cli, argc, argv, 2, NULL);
    if (rc)
        return rc;
    if (cli.o.ws_path && (cli.o.ws_path[0] != '/' || strpbrk(cli.o.ws_path, " \r\n")))
        return opts_fail(&cli_opts, "--ws: '%s' is not a path (/mqtt)", cli.o.ws_path);
    bool many = cli.o.mode == BENCH_CONN || cli.o.mode == BENCH_IDLE || cli.o.mode == BENCH_STORM;
    if (cli.o.procs > 1 && !many)
        return opts_fail(&cli_opts, "--procs: only for idle, storm and conn");
    if (cli.o.procs > cli.n)
        return opts_fail(&cli_opts, "--procs: more processes (%u) than connections (%u)",
                         cli.o.procs, cli.n);
    cli.o.pubs = cli.o.mode == BENCH_FANOUT ? 1 : cli.n;
    cli.o.subs = cli.o.mode == BENCH_FANIN ? 1 : cli.n;
    cli.o.clients = cli.n;
    if (many)
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
            "\"persistent\": %s, \"connects\": %llu, \"connect_errors\": %llu, ",
            name, o->qos, o->size, o->pubs, o->subs, o->clients, r->elapsed_s, r->msgs_per_s,
            (unsigned long long)r->sent, (unsigned long long)r->received,
            (unsigned long long)r->expected, (unsigned long long)r->lost,
            (unsigned long long)r->duplicates, (unsigned long long)r->out_of_order, r->p50_ms,
            r->p99_ms, r->max_ms, (unsigned long long)r->acked, (unsigned long long)r->acked_lost,
            (double)o->ack_delay_ns / 1e6, o->persistent ? "true" : "false",
            (unsigned long long)r->connects, (unsigned long long)r->connect_errors);
    fprintf(out,
            "\"procs\": %u, \"sources\": %u, \"keepalive_s\": %u, \"connect_s\": %.3f, "
            "\"pings\": %llu, \"pongs\": %llu, \"pings_late\": %llu, \"pings_missing\": %llu, "
            "\"conns_missing\": %llu, "
            "\"reconnect_s\": %.3f, \"refused\": %llu, \"last_refusal\": ",
            o->procs ? o->procs : 1, o->src_count, o->keepalive_s, r->connect_s,
            (unsigned long long)r->pings, (unsigned long long)r->pongs,
            (unsigned long long)r->pings_late, (unsigned long long)r->pings_missing,
            (unsigned long long)r->conns_missing, r->reconnect_s, (unsigned long long)r->refused);
    json_string(out, r->last_refusal);
    fprintf(out, ", \"error\": ");
    json_string(out, r->error);
    fprintf(out, "}\n");
}

/* see bench.h */
void bench_print(FILE *out, const struct bench_opts *o, const struct bench_report *r,
                 const char *name)
{
    if (o->json)
        return print_json(out, o, r, name);
    if (o->mode == BENCH_IDLE || o->mode == BENCH_STORM) {
        fprintf(out, "%s: %llu connections made in %.2f s and held for %.1f s\n", name,
                (unsigned long long)r->connects, r->connect_s, o->hold_s);
        if (r->connect_errors)
            fprintf(out, "  %llu attempts refused or dropped while connecting (tried again)\n",
                    (unsigned long long)r->connect_errors);
        if (o->mode == BENCH_STORM)
            fprintf(out,
                    "  dropped at once and reconnected in %.3f s, %llu attempts refused\n"
                    "  CONNACK latency p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
                    r->reconnect_s, (unsigned long long)r->refused, r->p50_ms, r->p99_ms,
                    r->max_ms);
        if (o->keepalive_s)
            fprintf(out,
                    "  pings every %u s: %llu sent, %llu answered, %llu late (> %u ms), "
                    "%llu missing\n",
                    o->keepalive_s, (unsigned long long)r->pings, (unsigned long long)r->pongs,
                    (unsigned long long)r->pings_late, BENCH_PING_LATE_MS,
                    (unsigned long long)r->pings_missing);
        if (o->keepalive_s && o->mode == BENCH_IDLE)
            fprintf(out, "  ping round trip p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", r->p50_ms,
                    r->p99_ms, r->max_ms);
        if (r->last_refusal[0])
            fprintf(out, "  the last refusal: %s\n", r->last_refusal);
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

/* ---- --procs ---- */

static int write_full(int fd, const void *p, size_t n)
{
    for (const char *c = p; n;) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, void *p, size_t n)
{
    for (char *c = p; n;) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The child's side: its share of the connections, then its report. */
static _Noreturn void child_run(struct bench_opts *o, int fd, unsigned idx_base, unsigned n)
{
    static struct bench_hist h;
    struct bench_report r;
    o->clients = n;
    o->connect_rate /= o->procs; /* the rate is the run's */
    o->idx_base = idx_base;
    o->ctl_fd = fd;
    o->hist_out = &h;
    int rc = bench_run(o, &r);
    char tag = BENCH_CTL_REPORT;
    int ok = write_full(fd, &tag, 1) == 0 && write_full(fd, &r, sizeof(r)) == 0 &&
             write_full(fd, &h, sizeof(h)) == 0;
    _exit(ok && rc == 0 ? 0 : 1);
}

/* One child's report into the total: counts added, times the longest. */
static void add_report(struct bench_report *t, const struct bench_report *r, unsigned i)
{
    t->connects += r->connects;
    t->connect_errors += r->connect_errors;
    t->msgs_per_s += r->msgs_per_s;
    t->pings += r->pings;
    t->pongs += r->pongs;
    t->pings_late += r->pings_late;
    t->pings_missing += r->pings_missing;
    t->conns_missing += r->conns_missing;
    t->refused += r->refused;
    if (r->last_refusal[0])
        memcpy(t->last_refusal, r->last_refusal, sizeof(t->last_refusal));
    t->elapsed_s = r->elapsed_s > t->elapsed_s ? r->elapsed_s : t->elapsed_s;
    t->connect_s = r->connect_s > t->connect_s ? r->connect_s : t->connect_s;
    t->reconnect_s = r->reconnect_s > t->reconnect_s ? r->reconnect_s : t->reconnect_s;
    if (r->error[0] && !t->error[0])
        snprintf(t->error, sizeof(t->error), "process %u: %.200s", i, r->error);
}

/* Waits for one byte from every child: BENCH_CTL_CONNECTED, or the start of
 * an early report (the child failed). Returns how many connected. */
static unsigned wait_connected(const int *fds, char *first, unsigned n)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        first[i] = 0;
        if (read_full(fds[i], &first[i], 1) == 0 && first[i] == BENCH_CTL_CONNECTED)
            ok++;
    }
    return ok;
}

/* --procs N: N children share -n (each with its own descriptor limit and
 * ephemeral ports of its own --source addresses); the parent waits until
 * all are connected, starts their hold or storm together and adds up their
 * reports. Returns 0, or -1 with r->error set. */
static int run_procs(struct bench_opts *o, struct bench_report *r)
{
    unsigned n = o->procs;
    int fds[64];
    pid_t pids[64];
    char first[64];
    static struct bench_hist total, h;
    memset(r, 0, sizeof(*r));
    memset(&total, 0, sizeof(total));
    fflush(stdout);
    unsigned started = 0, base = 0;
    for (; started < n; started++) {
        unsigned share = o->clients / n + (started < o->clients % n ? 1 : 0);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            break;
        pid_t pid = fork();
        if (pid == 0) {
            for (unsigned i = 0; i < started; i++)
                close(fds[i]);
            close(sv[0]);
            child_run(o, sv[1], base, share);
        }
        close(sv[1]);
        if (pid < 0) {
            close(sv[0]);
            break;
        }
        fds[started] = sv[0];
        pids[started] = pid;
        base += share;
    }
    int rc = started == n ? 0 : -1;
    if (rc < 0)
        snprintf(r->error, sizeof(r->error), "cannot start generator process %u: %s", started,
                 strerror(errno));
    bool sync = o->mode == BENCH_IDLE || o->mode == BENCH_STORM;
    if (sync && started) {
        unsigned ok = wait_connected(fds, first, started);
        if (ok == n) {
            printf("connected %u\n", o->clients);
            fflush(stdout);
        }
        char go = BENCH_CTL_GO;
        for (unsigned i = 0; i < started; i++)
            if (first[i] == BENCH_CTL_CONNECTED)
                write_full(fds[i], &go, 1);
    }
    for (unsigned i = 0; i < started; i++) {
        char tag = 0;
        struct bench_report cr;
        bool early = sync && first[i] == BENCH_CTL_REPORT;
        if ((!early && (read_full(fds[i], &tag, 1) < 0 || tag != BENCH_CTL_REPORT)) ||
            read_full(fds[i], &cr, sizeof(cr)) < 0 || read_full(fds[i], &h, sizeof(h)) < 0) {
            if (!r->error[0])
                snprintf(r->error, sizeof(r->error), "generator process %u ended without a report",
                         i);
            rc = -1;
        } else {
            add_report(r, &cr, i);
            bench_hist_merge(&total, &h);
        }
        close(fds[i]);
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = -1;
    }
    if (rc < 0 && !r->error[0])
        snprintf(r->error, sizeof(r->error), "a generator process failed");
    r->p50_ms = bench_hist_quantile(&total, 0.50);
    r->p99_ms = bench_hist_quantile(&total, 0.99);
    r->max_ms = bench_hist_quantile(&total, 1.0 - 1e-12);
    return rc;
}

/* Each connection is a descriptor: the soft limit goes up to the hard one,
 * and a process asked for more than that is refused before it starts. */
static int check_fds(const struct bench_opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    unsigned per = o->procs > 1 ? (o->clients + o->procs - 1) / o->procs : o->clients;
    unsigned need = (o->mode == BENCH_CONN || o->mode == BENCH_IDLE || o->mode == BENCH_STORM
                         ? per
                         : o->pubs + o->subs) +
                    32;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        fprintf(stderr,
                "ward bench: %u connections per process need about %u descriptors, the limit "
                "is %llu: use --procs\n",
                per, need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    /* A broker may close a connection under a write (a shed handshake):
     * that is an error to count, not a reason to die. */
    signal(SIGPIPE, SIG_IGN);
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
    if (check_fds(&o) < 0)
        return 1;
    if (tc.cafile || tc.certfile) {
        char err[512];
        if (!(o.tls = tls_client_new(&tc, err, sizeof(err)))) {
            fprintf(stderr, "ward bench: %s\n", err);
            return 1;
        }
    }
    struct bench_report r;
    rc = o.procs > 1 ? run_procs(&o, &r) : bench_run(&o, &r);
    tls_client_free(o.tls);
    bench_print(stdout, &o, &r, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "ward bench: %s\n", r.error);
        return 1;
    }
    if (r.pings_missing) {
        fprintf(stderr,
                "ward bench: %llu PINGREQs (on %llu connections) without a PINGRESP within %u s\n",
                (unsigned long long)r.pings_missing, (unsigned long long)r.conns_missing,
                o.keepalive_s);
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
