/* PROXY protocol header parser and CIDR ranges (src/net/proxy.c). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/proxy.h"
#include "test.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static struct proxy_result parse_str(const char *s)
{
    return proxy_parse((const uint8_t *)s, strlen(s));
}

/* Every strict prefix of a valid header is "incomplete", never an error. */
static void prefixes_incomplete(const uint8_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(proxy_parse(h, i).status, PROXY_INCOMPLETE);
}

static void check_addr(const struct proxy_addr *a, int fam, const char *host, uint16_t port)
{
    uint8_t want[16] = {0};
    ASSERT_EQ(a->family, fam);
    ASSERT_EQ(inet_pton(fam, host, want), 1);
    ASSERT_MEM_EQ(a->addr, want, fam == AF_INET ? 4 : 16);
    ASSERT_EQ(a->port, port);
}

TEST(v1_tcp4)
{
    const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 8883\r\n";
    char in[128];
    snprintf(in, sizeof(in), "%s\x16\x03\x01", h); /* a ClientHello follows */
    struct proxy_result r = parse_str(in);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.version, 1);
    ASSERT_EQ(r.consumed, strlen(h));
    ASSERT(!r.local);
    check_addr(&r.src, AF_INET, "192.0.2.7", 51000);
    check_addr(&r.dst, AF_INET, "198.51.100.1", 8883);
    char name[64];
    proxy_addr_format(&r.src, name, sizeof(name));
    ASSERT_STR_EQ(name, "192.0.2.7:51000");
    prefixes_incomplete((const uint8_t *)h, strlen(h));
}

TEST(v1_tcp6)
{
    const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
    struct proxy_result r = parse_str(h);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.consumed, strlen(h));
    check_addr(&r.src, AF_INET6, "2001:db8::1", 65535);
    check_addr(&r.dst, AF_INET6, "2001:db8::2", 0);
    char name[64];
    proxy_addr_format(&r.src, name, sizeof(name));
    ASSERT_STR_EQ(name, "[2001:db8::1]:65535");
}

TEST(v1_unknown)
{
    struct proxy_result r = parse_str("PROXY UNKNOWN\r\nrest");
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.consumed, 15u);
    ASSERT(r.local);
    /* Whatever follows UNKNOWN up to the CRLF is ignored (spec 2.1). */
    r = parse_str("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT(r.local);
}

TEST(v1_errors)
{
    static const char *const bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n",      /* a field missing */
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80 9\r\n", /* one too many */
        "PROXY TCP4 192.0.2.7  198.51.100.1 51000 80\r\n",  /* two spaces */
        "PROXY TCP4 2001:db8::1 198.51.100.1 51000 80\r\n", /* family mismatch */
        "PROXY TCP6 192.0.2.7 2001:db8::2 1 2\r\n",         /* family mismatch */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 80\r\n",   /* port range */
        "PROXY TCP4 192.0.2.7 198.51.100.1 080 80\r\n",     /* leading zero */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 80\r\n",      /* sign */
        "PROXY UDP4 192.0.2.7 198.51.100.1 1 80\r\n",       /* protocol */
        "PROXY TCP4 192.0.2.300 198.51.100.1 1 80\r\n",     /* octet */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 80\n",         /* LF alone */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 80\rX",        /* CR alone */
        "PROXY UNKNOWNX\r\n",                               /* not UNKNOWN */
        "proxy TCP4 192.0.2.7 198.51.100.1 1 80\r\n",       /* case */
        "PROXZ",                                            /* garbage prefix */
        "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",     /* MQTT CONNECT */
        "GET / HTTP/1.1\r\n\r\n",                           /* HTTP */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proxy_result r = parse_str(bad[i]);
        if (r.status != PROXY_ERROR)
            TEST_FAIL_("case %zu (%s) not refused", i, bad[i]);
        ASSERT(r.error != NULL);
    }
    /* A TLS record start (0x16) is not a header either. */
    uint8_t tls[] = {0x16, 0x03, 0x01, 0x00, 0x10};
    ASSERT_EQ(proxy_parse(tls, sizeof(tls)).status, PROXY_ERROR);
}

TEST(v1_oversize)
{
    char h[200];
    memset(h, 'A', sizeof(h));
    memcpy(h, "PROXY UNKNOWN ", 14);
    /* 107 bytes with no CRLF: longer than any valid v1 header. */
    ASSERT_EQ(proxy_parse((uint8_t *)h, 106).status, PROXY_INCOMPLETE);
    ASSERT_EQ(proxy_parse((uint8_t *)h, 107).status, PROXY_ERROR);
    ASSERT_EQ(proxy_parse((uint8_t *)h, sizeof(h)).status, PROXY_ERROR);
    /* Exactly 107 with the CRLF at the end is the largest valid one. */
    h[105] = '\r';
    h[106] = '\n';
    struct proxy_result r = proxy_parse((uint8_t *)h, 107);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.consumed, 107u);
}

static size_t v2_header(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *body, size_t n)
{
    memcpy(out, SIG, 12);
    out[12] = (uint8_t)(0x20 | cmd);
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    if (n)
        memcpy(out + 16, body, n);
    return 16 + n;
}

TEST(v2_proxy_inet)
{
    uint8_t body[12 + 7] = {192, 0, 2, 7, 198, 51, 100, 1, 0xC7, 0x38, 0x22, 0xB3};
    /* A TLV after the addresses (PP2_TYPE_NOOP, 4 bytes) is skipped. */
    static const uint8_t tlv[7] = {0x04, 0x00, 0x04, 'a', 'b', 'c', 'd'};
    memcpy(body + 12, tlv, sizeof(tlv));
    uint8_t h[64];
    size_t n = v2_header(h, 1, 0x11, body, sizeof(body));
    struct proxy_result r = proxy_parse(h, n);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.version, 2);
    ASSERT_EQ(r.consumed, n);
    ASSERT(!r.local);
    check_addr(&r.src, AF_INET, "192.0.2.7", 51000);
    check_addr(&r.dst, AF_INET, "198.51.100.1", 8883);
    prefixes_incomplete(h, n);
}

TEST(v2_proxy_inet6)
{
    uint8_t body[36] = {0};
    ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::7", body), 1);
    ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1", body + 16), 1);
    body[32] = 0x12, body[33] = 0x34, body[34] = 0x22, body[35] = 0xB3;
    uint8_t h[64];
    size_t n = v2_header(h, 1, 0x21, body, sizeof(body));
    struct proxy_result r = proxy_parse(h, n);
    ASSERT_EQ(r.status, PROXY_DONE);
    check_addr(&r.src, AF_INET6, "2001:db8::7", 0x1234);
    check_addr(&r.dst, AF_INET6, "2001:db8::1", 8883);
}

TEST(v2_local_and_unspec)
{
    uint8_t h[64];
    size_t n = v2_header(h, 0, 0x00, NULL, 0);
    struct proxy_result r = proxy_parse(h, n);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.consumed, 16u);
    ASSERT(r.local);
    /* LOCAL with an address block: the block is skipped, not used. */
    uint8_t body[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2};
    n = v2_header(h, 0, 0x11, body, sizeof(body));
    r = proxy_parse(h, n);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT_EQ(r.consumed, 28u);
    ASSERT(r.local);
    /* PROXY with AF_UNSPEC: nothing to use, keep the socket's address. */
    n = v2_header(h, 1, 0x00, NULL, 0);
    r = proxy_parse(h, n);
    ASSERT_EQ(r.status, PROXY_DONE);
    ASSERT(r.local);
}

TEST(v2_errors)
{
    uint8_t body[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2};
    uint8_t h[64];
    size_t n = v2_header(h, 1, 0x11, body, sizeof(body));
    h[12] = 0x11; /* version 1 in a v2 header */
    ASSERT_EQ(proxy_parse(h, n).status, PROXY_ERROR);
    n = v2_header(h, 2, 0x11, body, sizeof(body)); /* command 2 */
    ASSERT_EQ(proxy_parse(h, n).status, PROXY_ERROR);
    n = v2_header(h, 1, 0x41, body, sizeof(body)); /* family 4 */
    ASSERT_EQ(proxy_parse(h, n).status, PROXY_ERROR);
    n = v2_header(h, 1, 0x12, body, sizeof(body)); /* UDP */
    ASSERT_EQ(proxy_parse(h, n).status, PROXY_ERROR);
    n = v2_header(h, 1, 0x11, body, 8); /* too short for IPv4 */
    ASSERT_EQ(proxy_parse(h, n).status, PROXY_ERROR);
    n = v2_header(h, 1, 0x21, body, 12); /* too short for IPv6 */
    ASSERT_EQ(proxy_parse(h, n).status, PROXY_ERROR);
    /* A broken signature is refused as soon as the first wrong byte. */
    uint8_t sig[12];
    memcpy(sig, SIG, 12);
    sig[6] = 'X';
    ASSERT_EQ(proxy_parse(sig, 6).status, PROXY_INCOMPLETE);
    ASSERT_EQ(proxy_parse(sig, 7).status, PROXY_ERROR);
}

TEST(v2_oversize_and_truncated)
{
    /* Declared length beyond PROXY_MAX_LEN: refused from the 16 bytes of
     * the fixed part, without waiting for the rest. */
    uint8_t h[16];
    memcpy(h, SIG, 12);
    h[12] = 0x21, h[13] = 0x11, h[14] = 0xFF, h[15] = 0xFF;
    struct proxy_result r = proxy_parse(h, sizeof(h));
    ASSERT_EQ(r.status, PROXY_ERROR);
    h[14] = (PROXY_MAX_LEN - 16) >> 8, h[15] = (PROXY_MAX_LEN - 16) & 0xFF;
    ASSERT_EQ(proxy_parse(h, sizeof(h)).status, PROXY_INCOMPLETE);
    uint16_t over = PROXY_MAX_LEN - 16 + 1;
    h[14] = (uint8_t)(over >> 8), h[15] = (uint8_t)over;
    ASSERT_EQ(proxy_parse(h, sizeof(h)).status, PROXY_ERROR);
}

/* The header ends exactly at the end of a page that is followed by an
 * inaccessible one: the parser must not read one byte further. */
TEST(ends_at_page_boundary)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *m =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(m != MAP_FAILED);
    ASSERT_EQ(mprotect(m + page, (size_t)page, PROT_NONE), 0);
    const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 8883\r\n";
    size_t n = strlen(v1);
    uint8_t *at = m + page - n;
    memcpy(at, v1, n);
    for (size_t i = 0; i <= n; i++)
        ASSERT(proxy_parse(at + n - i, i).status <= PROXY_ERROR);
    ASSERT_EQ(proxy_parse(at, n).status, PROXY_DONE);
    /* A v1 prefix with no CRLF up to the page end: incomplete, no overread. */
    ASSERT_EQ(proxy_parse(at, n - 2).status, PROXY_INCOMPLETE);
    uint8_t body[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2};
    uint8_t h[32];
    size_t hn = v2_header(h, 1, 0x11, body, sizeof(body));
    memcpy(m + page - hn, h, hn);
    ASSERT_EQ(proxy_parse(m + page - hn, hn).status, PROXY_DONE);
    ASSERT_EQ(proxy_parse(m + page - hn, hn - 1).status, PROXY_INCOMPLETE);
    munmap(m, (size_t)page * 2);
}

TEST(first_byte)
{
    ASSERT(proxy_maybe_header('P'));
    ASSERT(proxy_maybe_header('\r'));
    ASSERT(!proxy_maybe_header(0x16)); /* TLS handshake record */
    ASSERT(!proxy_maybe_header(0x10)); /* MQTT CONNECT */
    ASSERT_EQ(proxy_parse(NULL, 0).status, PROXY_INCOMPLETE);
}

TEST(cidr)
{
    struct proxy_cidr r;
    uint8_t a4[4], a6[16];
    ASSERT_EQ(proxy_cidr_parse("10.1.2.3/8", &r), 0);
    ASSERT_EQ(r.bits, 8u);
    ASSERT_EQ(r.addr[1], 0); /* host bits cleared */
    inet_pton(AF_INET, "10.200.0.1", a4);
    ASSERT(proxy_cidr_match(&r, AF_INET, a4));
    inet_pton(AF_INET, "11.0.0.1", a4);
    ASSERT(!proxy_cidr_match(&r, AF_INET, a4));
    /* IPv4-mapped IPv6 peers match IPv4 ranges. */
    inet_pton(AF_INET6, "::ffff:10.9.9.9", a6);
    ASSERT(proxy_cidr_match(&r, AF_INET6, a6));
    ASSERT_EQ(proxy_cidr_parse("127.0.0.1", &r), 0);
    ASSERT_EQ(r.bits, 32u);
    inet_pton(AF_INET, "127.0.0.1", a4);
    ASSERT(proxy_cidr_match(&r, AF_INET, a4));
    inet_pton(AF_INET, "127.0.0.2", a4);
    ASSERT(!proxy_cidr_match(&r, AF_INET, a4));
    ASSERT_EQ(proxy_cidr_parse("192.168.4.0/23", &r), 0);
    inet_pton(AF_INET, "192.168.5.255", a4);
    ASSERT(proxy_cidr_match(&r, AF_INET, a4));
    inet_pton(AF_INET, "192.168.6.0", a4);
    ASSERT(!proxy_cidr_match(&r, AF_INET, a4));
    ASSERT_EQ(proxy_cidr_parse("2001:db8::/32", &r), 0);
    inet_pton(AF_INET6, "2001:db8:ffff::1", a6);
    ASSERT(proxy_cidr_match(&r, AF_INET6, a6));
    ASSERT(!proxy_cidr_match(&r, AF_INET, a4));
    ASSERT_EQ(proxy_cidr_parse("0.0.0.0/0", &r), 0);
    ASSERT(proxy_cidr_match(&r, AF_INET, a4));
    static const char *const bad[] = {"",
                                      "/8",
                                      "10.0.0.0/",
                                      "10.0.0.0/33",
                                      "::/129",
                                      "10.0.0.0/8x",
                                      "10.0.0/8",
                                      "host.example/8",
                                      "10.0.0.0/-1",
                                      "1.2.3.4/+8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (proxy_cidr_parse(bad[i], &r) == 0)
            TEST_FAIL_("'%s' accepted", bad[i]);
}

int main(void)
{
    RUN(v1_tcp4);
    RUN(v1_tcp6);
    RUN(v1_unknown);
    RUN(v1_errors);
    RUN(v1_oversize);
    RUN(v2_proxy_inet);
    RUN(v2_proxy_inet6);
    RUN(v2_local_and_unspec);
    RUN(v2_errors);
    RUN(v2_oversize_and_truncated);
    RUN(ends_at_page_boundary);
    RUN(first_byte);
    RUN(cidr);
    TEST_DONE();
}
