/* ward bench: its command line (scenarios, ranges, refusals) and its two
 * report formats. */
#include "app/bench.h"
#include "app/cli_fixture.h"
#include "mqtt/mqtt.h"
#include "tls/tls.h"
#include "test.h"

static struct bench_opts o;
static struct tls_client_config tc;

static int bench_main(int argc, char **argv)
{
    return bench_parse(argc, argv, &o, &tc);
}

#define PARSE(...) cli_run(bench_main, CLI_ARGS("bench", __VA_ARGS__))

#define REFUSED(want, call) CLI_REFUSED(2, want, call, #call)

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
    REFUSED("ward bench: unknown scenario ''", cli_run(bench_main, CLI_ARGS("bench")));
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
    ASSERT_STR_EQ(t, "p2p: 120 connections made in 0.00 s and held for 2.0 s\n"
                     "  1 attempts refused or dropped while connecting (tried again)\n");
    free(t);
    ASSERT_EQ(PARSE("storm", "-n", "4", "--hold", "0", "--keepalive", "5"), 0);
    struct bench_report st = {.connects = 4,
                              .connect_s = 0.5,
                              .reconnect_s = 1.25,
                              .refused = 3,
                              .p50_ms = 1,
                              .p99_ms = 2,
                              .max_ms = 3,
                              .pings = 8,
                              .pongs = 7,
                              .pings_missing = 1,
                              .last_refusal = "closed by the broker before its CONNACK"};
    t = print_report(&st);
    ASSERT_STR_EQ(t, "p2p: 4 connections made in 0.50 s and held for 0.0 s\n"
                     "  dropped at once and reconnected in 1.250 s, 3 attempts refused\n"
                     "  CONNACK latency p50 1.000 ms  p99 2.000 ms  max 3.000 ms\n"
                     "  pings every 5 s: 8 sent, 7 answered, 0 late (> 1000 ms), 1 missing\n"
                     "  the last refusal: closed by the broker before its CONNACK\n");
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
    ASSERT(strstr(t, "\"procs\": 1, \"sources\": 0, \"keepalive_s\": 0, \"connect_s\": 0.000, "
                     "\"pings\": 0, \"pongs\": 0, \"pings_late\": 0, \"pings_missing\": 0, "
                     "\"conns_missing\": 0, "
                     "\"reconnect_s\": 0.000, \"refused\": 0, \"last_refusal\": \"\", "));
    ASSERT(strstr(t, "\"error\": \"say \\\"no\\\"\\\\\\u000a\\u0009\"}\n"));
    ASSERT_EQ(strchr(t, '\n') - t, (long)strlen(t) - 1); /* one line */
    free(t);
}

TEST(ws_option)
{
    ASSERT_EQ(PARSE("p2p"), 0);
    ASSERT(o.ws_path == NULL);
    ASSERT_EQ(PARSE("fanin", "--ws", "/mqtt"), 0);
    ASSERT_STR_EQ(o.ws_path, "/mqtt");
    REFUSED("ward bench: --ws: 'mqtt' is not a path (/mqtt)", PARSE("p2p", "--ws", "mqtt"));
    REFUSED("ward bench: --ws: '/a b' is not a path", PARSE("p2p", "--ws", "/a b"));
    REFUSED("ward bench: --ws: '/a\r\nX: y' is not a path", PARSE("p2p", "--ws", "/a\r\nX: y"));
    REFUSED("ward bench: --ws: missing argument PATH", PARSE("p2p", "--ws"));
}

TEST(ws_request_and_response)
{
    char req[256];
    size_t n = bench_ws_request(req, sizeof(req), "127.0.0.1", "/mqtt");
    ASSERT_EQ(n, strlen(req));
    ASSERT(strncmp(req, "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n", 37) == 0);
    ASSERT(strstr(req, "\r\nSec-WebSocket-Key: d2FyZCBiZW5jaCBrZXkhIQ==\r\n"));
    ASSERT(strstr(req, "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"));
    ASSERT_EQ(bench_ws_request(req, 40, "127.0.0.1", "/mqtt"), 0); /* does not fit */

    const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82";
    size_t head = 0, len = sizeof(ok) - 1;
    ASSERT_EQ(bench_ws_response((const uint8_t *)ok, len, &head), 1);
    ASSERT_EQ(head, len - 1);            /* the frame after the head is not part of it */
    for (size_t i = 0; i < len - 1; i++) /* every prefix: not complete yet */
        ASSERT_EQ(bench_ws_response((const uint8_t *)ok, i, &head), 0);
    const char *bad[] = {"HTTP/1.1 400 Bad Request\r\n\r\n", "HTTP/1.1 1010\r\n\r\n",
                         "HTTP/1.0 101 x\r\n\r\n", "SSH-2.0-x\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(bench_ws_response((const uint8_t *)bad[i], strlen(bad[i]), &head), -1);
    static uint8_t endless[5000];
    memcpy(endless, "HTTP/1.1 101 ", 13);
    memset(endless + 13, 'a', sizeof(endless) - 13);
    ASSERT_EQ(bench_ws_response(endless, sizeof(endless), &head), -1); /* over 4 KiB */
}

/* Checks one client frame against RFC 6455 5.2 and unmasks its payload. */
static size_t unframe(const uint8_t *f, size_t len, uint8_t *out)
{
    ASSERT_EQ(f[0], 0x82);
    ASSERT(f[1] & 0x80);
    size_t n = f[1] & 0x7f, h = 2;
    if (n == 126) {
        n = (size_t)f[2] << 8 | f[3];
        h = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | f[2 + i];
        h = 10;
    }
    ASSERT_EQ(len, h + 4 + n);
    for (size_t i = 0; i < n; i++)
        out[i] = f[h + 4 + i] ^ f[h + i % 4];
    return n;
}

TEST(ws_frames_are_masked)
{
    static uint8_t payload[70000], frame[70000 + BENCH_WS_HEAD], back[70000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    static const size_t sizes[] = {0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        size_t len = bench_ws_frame(frame, payload, n, 0xa1b2c3d4u + (uint32_t)k);
        ASSERT_EQ(len, n + 6 + (n >= 126 ? 2 : 0) + (n >= 65536 ? 6 : 0));
        ASSERT_EQ(unframe(frame, len, back), n);
        ASSERT(n == 0 || memcmp(back, payload, n) == 0);
        if (n >= 8) /* masked: the bytes on the wire differ */
            ASSERT(memcmp(frame + len - n, payload, n) != 0);
    }
}

/* A server frame (unmasked) of op with payload p[0..n) at out. */
static size_t server_frame(uint8_t *out, uint8_t op, const void *p, size_t n)
{
    size_t h = 2;
    out[0] = 0x80 | op;
    if (n < 126) {
        out[1] = (uint8_t)n;
    } else if (n < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(n >> 8);
        out[3] = (uint8_t)n;
        h = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    memcpy(out + h, p, n);
    return h + n;
}

TEST(ws_deframe_in_any_pieces)
{
    /* Data frames of every header size with a ping and a pong between
     * them, delivered in pieces of every size from 1 byte up: the payload
     * bytes come out in order and the control frames are dropped. */
    static uint8_t stream[80000], want[80000], buf[80000];
    size_t len = 0, wlen = 0;
    static const size_t sizes[] = {3, 0, 200, 70000, 1};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t p[70000];
        for (size_t i = 0; i < sizes[k]; i++)
            p[i] = (uint8_t)(k * 31 + i);
        len += server_frame(stream + len, 2, p, sizes[k]);
        memcpy(want + wlen, p, sizes[k]);
        wlen += sizes[k];
        len += server_frame(stream + len, k % 2 ? 9 : 10, "ctl", 3);
    }
    static const size_t pieces[] = {1, 2, 3, 5, 9, 13, 127, 4096, 80000};
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        struct bench_ws_in s = {0};
        size_t got = 0;
        for (size_t off = 0; off < len; off += pieces[k]) {
            size_t n = len - off < pieces[k] ? len - off : pieces[k];
            memcpy(buf + got, stream + off, n);
            long r = bench_ws_deframe(&s, buf + got, n);
            ASSERT(r >= 0 && (size_t)r <= n);
            got += (size_t)r;
        }
        ASSERT_EQ(got, wlen);
        ASSERT(memcmp(buf, want, wlen) == 0);
        ASSERT(s.rem == 0 && s.hlen == 0);
    }
}

TEST(ws_deframe_refusals)
{
    uint8_t f[32];
    struct bench_ws_in s = {0};
    size_t n = server_frame(f, 8, "\x03\xe8", 2); /* close 1000 */
    ASSERT_EQ(bench_ws_deframe(&s, f, n), -1);
    s = (struct bench_ws_in){0};
    n = server_frame(f, 2, "ab", 2);
    f[1] |= 0x80; /* a masked server frame */
    ASSERT_EQ(bench_ws_deframe(&s, f, n), -1);
    s = (struct bench_ws_in){0};
    n = server_frame(f, 2, "ab", 2);
    f[0] |= 0x40; /* RSV1 without an extension */
    ASSERT_EQ(bench_ws_deframe(&s, f, n), -1);
    s = (struct bench_ws_in){0};
    n = server_frame(f, 2, "ab", 2);
    ASSERT_EQ(bench_ws_deframe(&s, f, n), 2);
    ASSERT(memcmp(f, "ab", 2) == 0);
}

TEST(scale_options)
{
    uint32_t first = 7, count = 7;
    ASSERT_EQ(bench_parse_source("127.0.0.2-127.0.0.40", &first, &count), 0);
    ASSERT(first == 0x7f000002u && count == 39);
    ASSERT_EQ(bench_parse_source("127.0.0.9", &first, &count), 0);
    ASSERT(first == 0x7f000009u && count == 1);
    ASSERT_EQ(bench_parse_source("127.0.0.255-127.0.1.0", &first, &count), 0);
    ASSERT(first == 0x7f0000ffu && count == 2);
    ASSERT_EQ(bench_parse_source("3", &first, &count), 0);
    ASSERT(first == 0x7f000002u && count == 3);
    ASSERT_EQ(bench_parse_source("10.0.0.0-10.0.255.255", &first, &count), 0);
    ASSERT_EQ(count, 65536);
    static const char *const bad[] = {"",           "0",
                                      "255",        "-1",
                                      "1.2.3",      "127.0.0.2-",
                                      "-127.0.0.2", "127.0.0.3-127.0.0.2",
                                      "::1",        "10.0.0.0-10.1.0.0",
                                      "127.0.0.1 ", "0003x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        first = count = 7;
        ASSERT_EQ(bench_parse_source(bad[i], &first, &count), -1);
        ASSERT(first == 7 && count == 7);
    }
    ASSERT_EQ(PARSE("storm", "-n", "9", "--procs", "3", "--keepalive", "30", "--source",
                    "127.0.0.2-127.0.0.3", "--hold", "0", "--connect-rate", "500"),
              0);
    ASSERT(o.mode == BENCH_STORM && o.clients == 9 && o.procs == 3 && o.keepalive_s == 30);
    ASSERT(o.src_first == 0x7f000002u && o.src_count == 2 && o.ctl_fd == -1 && o.hold_s == 0);
    ASSERT(o.connect_rate == 500);
    ASSERT_EQ(PARSE("idle"), 0);
    ASSERT(o.procs == 0 && o.keepalive_s == 0 && o.src_count == 0 && o.ctl_fd == -1);
    REFUSED("ward bench: --procs: only for idle, storm and conn", PARSE("p2p", "--procs", "2"));
    REFUSED("ward bench: --procs: more processes (3) than connections (2)",
            PARSE("idle", "-n", "2", "--procs", "3"));
    REFUSED("ward bench: --keepalive: '0' is not a number from 1 to 65535",
            PARSE("idle", "--keepalive", "0"));
    REFUSED("ward bench: --source: 'x' is not an IPv4 address, a range A-B of at most 65536 or a "
            "count from 1 to 254",
            PARSE("idle", "--source", "x"));
}

int main(void)
{
    RUN(defaults_per_scenario);
    RUN(every_option);
    RUN(refused);
    RUN(ack_delay);
    RUN(table_report);
    RUN(json_report_escapes_the_error);
    RUN(ws_option);
    RUN(ws_request_and_response);
    RUN(ws_frames_are_masked);
    RUN(ws_deframe_in_any_pieces);
    RUN(ws_deframe_refusals);
    RUN(scale_options);
    free(err_text);
    TEST_DONE();
}
