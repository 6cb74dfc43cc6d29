/* ward bench: its command line (scenarios, ranges, refusals) and its two
 * report formats. */
#include <stdarg.h>

#include "app/bench.h"
#include "app/capture.h"
#include "mqtt/mqtt.h"
#include "tls/tls.h"
#include "test.h"

static struct bench_opts o;
static struct tls_client_config tc;
static char *err_text;

static int parse(const char *first, ...)
{
    static char *argv[40];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    argv[argc++] = "bench";
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ASSERT(argc < 40);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    struct capture c;
    free(err_text);
    capture_begin(&c, stderr);
    int rc = bench_parse(argc, argv, &o, &tc);
    err_text = capture_end(&c);
    return rc;
}

#define PARSE(...) parse(__VA_ARGS__, (const char *)NULL)

#define REFUSED(want, call)                                                                        \
    do {                                                                                           \
        int rc__ = (call);                                                                         \
        if (rc__ != 2 || !strstr(err_text, want) || !strstr(err_text, "--help"))                   \
            TEST_FAIL_("%s: status %d, stderr \"%s\", wanted \"%s\"", #call, rc__, err_text,       \
                       want);                                                                      \
    } while (0)

TEST(defaults_per_scenario)
{
    ASSERT_EQ(PARSE("p2p"), 0);
    ASSERT_STR_EQ(err_text, "");
    ASSERT_EQ(o.mode, BENCH_P2P);
    ASSERT_STR_EQ(o.host, "localhost");
    ASSERT_EQ(o.port, 1883);
    ASSERT_EQ(o.pubs, 10);
    ASSERT_EQ(o.subs, 10);
    ASSERT_EQ(o.size, 64);
    ASSERT(o.duration_s == 5);
    ASSERT_EQ(o.threads, 2);
    ASSERT_EQ(o.window, 64);
    ASSERT_EQ(o.version, MQTT_V311);
    ASSERT(o.hold_s == 5);
    ASSERT_EQ(o.ack_delay_ns, 0);
    ASSERT(o.tls == NULL && tc.cafile == NULL);
    ASSERT_EQ(PARSE("pubsub", "-n", "3"), 0);
    ASSERT_EQ(o.mode, BENCH_P2P);
    ASSERT_EQ(PARSE("fanin", "-n", "3"), 0);
    ASSERT(o.pubs == 3 && o.subs == 1);
    ASSERT_EQ(PARSE("fanout", "-n", "3"), 0);
    ASSERT(o.pubs == 1 && o.subs == 3);
    ASSERT_EQ(PARSE("conn", "-n", "3"), 0);
    ASSERT(o.pubs == 0 && o.subs == 0 && o.clients == 3);
    ASSERT_EQ(PARSE("idle", "-n", "7", "--hold", "0.5"), 0);
    ASSERT(o.mode == BENCH_IDLE && o.clients == 7 && o.hold_s == 0.5);
}

TEST(every_option)
{
    ASSERT_EQ(PARSE("p2p", "-h", "127.0.0.1", "-p", "1884", "--sub-port", "1885", "-n", "2", "-q",
                    "1", "-s", "20", "-r", "2.5", "-d", "0.1", "-c", "1000000000", "-w", "1", "-t",
                    "64", "-V", "5", "--json", "--cafile", "ca", "--cert", "c", "--key", "k",
                    "--insecure", "--resume", "--ack-delay", "10ms"),
              0);
    ASSERT_STR_EQ(o.host, "127.0.0.1");
    ASSERT_EQ(o.port, 1884);
    ASSERT_EQ(o.sub_port, 1885);
    ASSERT_EQ(o.pubs, 2);
    ASSERT_EQ(o.qos, 1);
    ASSERT_EQ(o.size, 20);
    ASSERT(o.rate == 2.5);
    ASSERT(o.duration_s == 0.1);
    ASSERT_EQ(o.count, 1000000000);
    ASSERT_EQ(o.window, 1);
    ASSERT_EQ(o.threads, 64);
    ASSERT_EQ(o.version, MQTT_V5);
    ASSERT(o.json);
    ASSERT_STR_EQ(tc.cafile, "ca");
    ASSERT_STR_EQ(tc.certfile, "c");
    ASSERT_STR_EQ(tc.keyfile, "k");
    ASSERT(tc.insecure && tc.resume);
    ASSERT_EQ(o.ack_delay_ns, 10000000);
    ASSERT_EQ(PARSE("p2p", "-V", "311"), 0);
    ASSERT_EQ(o.version, MQTT_V311);
}

TEST(refused)
{
    REFUSED("ward bench: unknown scenario 'nosuch'", PARSE("nosuch"));
    REFUSED("ward bench: unknown scenario ''", parse(NULL));
    REFUSED("ward bench: -q: '2' is not a number from 0 to 1", PARSE("p2p", "-q", "2"));
    REFUSED("ward bench: -s: '5' is not a number from 20 to 65536", PARSE("p2p", "-s", "5"));
    REFUSED("ward bench: -s: '65537' is not a number", PARSE("p2p", "-s", "65537"));
    REFUSED("ward bench: -n: '0' is not a number from 1 to 50000", PARSE("p2p", "-n", "0"));
    REFUSED("ward bench: -n: '2.5' is not a number", PARSE("p2p", "-n", "2.5"));
    REFUSED("ward bench: -p: 'http' is not a number", PARSE("p2p", "-p", "http"));
    REFUSED("ward bench: -d: '0.05' is not a number from 0.1 to 3600", PARSE("p2p", "-d", "0.05"));
    REFUSED("ward bench: -r: '-1' is not a number", PARSE("p2p", "-r", "-1"));
    REFUSED("ward bench: --hold: '3601' is not a number", PARSE("idle", "--hold", "3601"));
    REFUSED("ward bench: -V: '4' is not one of 3.1.1, 311, 5", PARSE("p2p", "-V", "4"));
    REFUSED("ward bench: -c: missing argument COUNT", PARSE("p2p", "-c"));
    REFUSED("ward bench: unexpected argument 'extra'", PARSE("p2p", "extra"));
    REFUSED("ward bench: unknown option '--jsn'", PARSE("p2p", "--jsn"));
}

TEST(ack_delay)
{
    static const struct {
        const char *text;
        uint64_t ns;
    } ok[] = {{"10ms", 10000000}, {"10", 10000000},        {"0", 0},
              {"500us", 500000},  {"0.1s", 100000000},     {"2.5ms", 2500000},
              {".5ms", 500000},   {"60s", 60000000000ull}, {"0us", 0}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t ns = 1;
        if (bench_parse_delay(ok[i].text, &ns) != 0 || ns != ok[i].ns)
            TEST_FAIL_("'%s': %llu ns, wanted %llu", ok[i].text, (unsigned long long)ns,
                       (unsigned long long)ok[i].ns);
    }
    static const char *const bad[] = {"",    "ms",  "-1ms", "+1ms", " 1ms", "1 ms", "1m", "1msx",
                                      "61s", "1e3", "0x10", "inf",  "nan",  "1h",   "..", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ns = 7;
        if (bench_parse_delay(bad[i], &ns) != -1 || ns != 7)
            TEST_FAIL_("'%s' accepted (%llu ns)", bad[i], (unsigned long long)ns);
    }
    ASSERT_EQ(PARSE("fanin", "--ack-delay", "250us"), 0);
    ASSERT_EQ(o.ack_delay_ns, 250000);
    ASSERT_EQ(PARSE("fanin", "--ack-delay=1s"), 0);
    ASSERT_EQ(o.ack_delay_ns, 1000000000);
    REFUSED("ward bench: --ack-delay: '-5ms' is not a delay from 0 to 60s (us, ms or s)",
            PARSE("fanin", "--ack-delay", "-5ms"));
    REFUSED("ward bench: --ack-delay: '2m' is not a delay", PARSE("fanin", "--ack-delay", "2m"));
    REFUSED("ward bench: --ack-delay: missing argument DELAY", PARSE("fanin", "--ack-delay"));
}

static char *print_report(const struct bench_report *r)
{
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    bench_print(f, &o, r, "p2p");
    fclose(f);
    return text;
}

TEST(table_report)
{
    ASSERT_EQ(PARSE("p2p", "-n", "2", "-q", "1"), 0);
    struct bench_report r = {.sent = 1000,
                             .received = 998,
                             .expected = 1000,
                             .lost = 2,
                             .duplicates = 1,
                             .out_of_order = 3,
                             .elapsed_s = 2,
                             .msgs_per_s = 499,
                             .p50_ms = 0.105,
                             .p99_ms = 1.5,
                             .max_ms = 20.5,
                             .acked = 999,
                             .acked_lost = 1};
    char *t = print_report(&r);
    ASSERT_STR_EQ(t, "p2p qos 1, 2 pub / 2 sub, 64 B: 499 msg/s delivered over 2.00 s\n"
                     "  sent 1000  received 998  expected 1000  lost 2  duplicates 1  "
                     "out of order 3\n"
                     "  latency p50 0.105 ms  p99 1.500 ms  max 20.500 ms\n"
                     "  acknowledged to publishers 999  of those never delivered 1\n");
    free(t);
    ASSERT_EQ(PARSE("p2p", "-n", "2", "-q", "0"), 0); /* no acknowledgements at QoS 0 */
    t = print_report(&r);
    ASSERT(strstr(t, "max 20.500 ms\n") && !strstr(t, "acknowledged"));
    free(t);
    ASSERT_EQ(PARSE("conn", "-n", "4"), 0);
    struct bench_report c = {
        .connects = 120, .connect_errors = 1, .elapsed_s = 1, .msgs_per_s = 120};
    t = print_report(&c);
    ASSERT_STR_EQ(t, "p2p: 4 clients, 1.00 s: 120 connects (120/s), 1 errors\n");
    free(t);
    ASSERT_EQ(PARSE("idle", "-n", "4", "--hold", "2"), 0);
    t = print_report(&c);
    ASSERT_STR_EQ(t, "p2p: 120 connections made and held for 2.0 s\n");
    free(t);
}

TEST(json_report_escapes_the_error)
{
    ASSERT_EQ(PARSE("p2p", "-n", "1", "--json"), 0);
    struct bench_report r = {.sent = 5, .received = 5, .expected = 5, .elapsed_s = 1};
    snprintf(r.error, sizeof(r.error), "say \"no\"\\\n\t");
    char *t = print_report(&r);
    ASSERT(strncmp(t, "{\"scenario\": \"p2p\", \"qos\": 0, \"size\": 64, \"pubs\": 1, ", 50) == 0);
    ASSERT(strstr(t, "\"sent\": 5, \"received\": 5, \"expected\": 5, \"lost\": 0, "));
    ASSERT(strstr(t, "\"acked\": 0, \"acked_lost\": 0, \"ack_delay_ms\": 0.000, "));
    ASSERT(strstr(t, "\"error\": \"say \\\"no\\\"\\\\\\u000a\\u0009\"}\n"));
    ASSERT_EQ(strchr(t, '\n') - t, (long)strlen(t) - 1); /* one line */
    free(t);
}

int main(void)
{
    RUN(defaults_per_scenario);
    RUN(every_option);
    RUN(refused);
    RUN(ack_delay);
    RUN(table_report);
    RUN(json_report_escapes_the_error);
    free(err_text);
    TEST_DONE();
}
