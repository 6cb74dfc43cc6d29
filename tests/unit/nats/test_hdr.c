/* src/nats/hdr.c: header blocks of HPUB/HMSG. */
#include <stdbool.h>

#include "nats/nats.h"
#include "page_end.h"
#include "test.h"

#define SV_EQ(v, lit) (v.len == strlen(lit) && memcmp(v.p, lit, v.len) == 0)

static bool hv(const char *h)
{
    return nats_hdr_valid((const uint8_t *)h, strlen(h));
}

static int hs(const char *h)
{
    return nats_hdr_status((const uint8_t *)h, strlen(h));
}

TEST(valid)
{
    ASSERT(hv("NATS/1.0\r\n\r\n"));
    ASSERT(hv("NATS/1.0\r\nA: b\r\n\r\n"));
    ASSERT(hv("NATS/1.0\r\nA:b\r\nNats-Msg-Id: 42\r\nX-Empty:\r\n\r\n"));
    ASSERT(hv("NATS/1.0 503\r\n\r\n"));
    ASSERT(hv("NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n"));
    ASSERT(hv("NATS/1.0\r\nA: b\tc : d\r\n\r\n")); /* a value may hold tabs and colons */
    ASSERT(hv("NATS/1.0\r\nA: b\r\nA: c\r\n\r\n"));

    ASSERT(!hv(""));
    ASSERT(!hv("NATS/1.0"));
    ASSERT(!hv("NATS/1.0\r\n"));      /* no empty line */
    ASSERT(!hv("NATS/1.0\r\n\r\nx")); /* bytes after the block */
    ASSERT(!hv("NATS/1.0\r\n\r\n\r\n"));
    ASSERT(!hv("NATS/2.0\r\n\r\n"));
    ASSERT(!hv("nats/1.0\r\n\r\n"));
    ASSERT(!hv("HTTP/1.1\r\n\r\n"));
    ASSERT(!hv("NATS/1.0x\r\n\r\n"));
    ASSERT(!hv("NATS/1.0 50\r\n\r\n"));
    ASSERT(!hv("NATS/1.0 5030\r\n\r\n"));
    ASSERT(!hv("NATS/1.0 abc\r\n\r\n"));
    ASSERT(!hv("NATS/1.0\nA: b\r\n\r\n")); /* bare newlines */
    ASSERT(!hv("NATS/1.0\r\nA: b\n\r\n"));
    ASSERT(!hv("NATS/1.0\r\nA: b\rc\r\n\r\n")); /* a bare CR in a value */
    ASSERT(!hv("NATS/1.0\r\nno colon\r\n\r\n"));
    ASSERT(!hv("NATS/1.0\r\n: no name\r\n\r\n"));
    ASSERT(!hv("NATS/1.0\r\nA b: c\r\n\r\n"));
    ASSERT(!hv("NATS/1.0\r\nA: \x01\r\n\r\n"));
    ASSERT(!nats_hdr_valid(NULL, 0));
}

TEST(status)
{
    ASSERT_EQ(hs("NATS/1.0\r\n\r\n"), 0);
    ASSERT_EQ(hs("NATS/1.0 503\r\n\r\n"), 503);
    ASSERT_EQ(hs("NATS/1.0   404 No Messages\r\n\r\n"), 404);
    ASSERT_EQ(hs("NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\n\r\n"), 100);
    ASSERT_EQ(hs("NATS/1.0 abc\r\n\r\n"), 0);
    ASSERT_EQ(hs("NATS/1.0 5031\r\n\r\n"), 0);
    ASSERT_EQ(hs("garbage"), 0);
    ASSERT_EQ(hs(""), 0);
    ASSERT_EQ(nats_hdr_status(NULL, 0), 0);
}

TEST(iterate)
{
    const char *h = "NATS/1.0 503 x\r\nA: b\r\nLong-Name:   spaced value  \r\nEmpty:\r\n"
                    "C:d:e\r\n\r\n";
    struct nats_hdr_iter it;
    struct nats_str n, v;
    nats_hdr_iter_init(&it, (const uint8_t *)h, strlen(h));
    ASSERT(nats_hdr_next(&it, &n, &v));
    ASSERT(SV_EQ(n, "A") && SV_EQ(v, "b"));
    ASSERT(nats_hdr_next(&it, &n, &v));
    ASSERT(SV_EQ(n, "Long-Name") && SV_EQ(v, "spaced value"));
    ASSERT(nats_hdr_next(&it, &n, &v));
    ASSERT(SV_EQ(n, "Empty") && v.len == 0);
    ASSERT(nats_hdr_next(&it, &n, &v));
    ASSERT(SV_EQ(n, "C") && SV_EQ(v, "d:e"));
    ASSERT(!nats_hdr_next(&it, &n, &v));
    ASSERT(!nats_hdr_next(&it, &n, &v));

    /* Nothing after the empty line, nothing from an empty block. */
    const char *tail = "NATS/1.0\r\n\r\nX: y\r\n";
    nats_hdr_iter_init(&it, (const uint8_t *)tail, strlen(tail));
    ASSERT(!nats_hdr_next(&it, &n, &v));
    nats_hdr_iter_init(&it, NULL, 0);
    ASSERT(!nats_hdr_next(&it, &n, &v));
    nats_hdr_iter_init(&it, (const uint8_t *)"NATS/1.0", 8);
    ASSERT(!nats_hdr_next(&it, &n, &v));

    /* A broken block (not checked with nats_hdr_valid) is walked safely:
     * lines without a name are skipped, a last line without its end is read. */
    const char *broken = "NATS/1.0\r\nnocolon\r\n: x\r\nA: 1\nB: 2";
    nats_hdr_iter_init(&it, (const uint8_t *)broken, strlen(broken));
    ASSERT(nats_hdr_next(&it, &n, &v));
    ASSERT(SV_EQ(n, "A") && SV_EQ(v, "1"));
    ASSERT(nats_hdr_next(&it, &n, &v));
    ASSERT(SV_EQ(n, "B") && SV_EQ(v, "2"));
    ASSERT(!nats_hdr_next(&it, &n, &v));
}

TEST(build)
{
    uint8_t buf[256];
    struct nats_str names[] = {{(const uint8_t *)"Nats-Msg-Id", 11}, {(const uint8_t *)"A", 1}};
    struct nats_str values[] = {{(const uint8_t *)"42", 2}, {(const uint8_t *)"b c", 3}};
    size_t n = nats_hdr_build(buf, sizeof buf, 0, NULL, names, values, 2);
    const char *want = "NATS/1.0\r\nNats-Msg-Id: 42\r\nA: b c\r\n\r\n";
    ASSERT_EQ(n, strlen(want));
    ASSERT_MEM_EQ(buf, want, n);
    ASSERT(nats_hdr_valid(buf, n));

    n = nats_hdr_build(buf, sizeof buf, 503, NULL, NULL, NULL, 0);
    ASSERT_EQ(n, strlen("NATS/1.0 503\r\n\r\n"));
    ASSERT_MEM_EQ(buf, "NATS/1.0 503\r\n\r\n", n);
    ASSERT_EQ(nats_hdr_status(buf, n), 503);

    n = nats_hdr_build(buf, sizeof buf, 408, "Request Timeout", names, values, 1);
    want = "NATS/1.0 408 Request Timeout\r\nNats-Msg-Id: 42\r\n\r\n";
    ASSERT_EQ(n, strlen(want));
    ASSERT_MEM_EQ(buf, want, n);
    ASSERT_EQ(nats_hdr_status(buf, n), 408);

    /* The round trip through the iterator. */
    n = nats_hdr_build(buf, sizeof buf, 0, NULL, names, values, 2);
    struct nats_hdr_iter it;
    struct nats_str k, v;
    nats_hdr_iter_init(&it, buf, n);
    for (size_t i = 0; i < 2; i++) {
        ASSERT(nats_hdr_next(&it, &k, &v));
        ASSERT(k.len == names[i].len && memcmp(k.p, names[i].p, k.len) == 0);
        ASSERT(v.len == values[i].len && memcmp(v.p, values[i].p, v.len) == 0);
    }
    ASSERT(!nats_hdr_next(&it, &k, &v));

    /* Too small, at every size. */
    n = nats_hdr_build(buf, sizeof buf, 0, NULL, names, values, 2);
    for (size_t cap = 0; cap < n; cap++)
        ASSERT_EQ(nats_hdr_build(buf, cap, 0, NULL, names, values, 2), 0);
    ASSERT_EQ(nats_hdr_build(buf, n, 0, NULL, names, values, 2), n);
}

TEST(build_refuses)
{
    uint8_t buf[256];
    const char *bad_names[] = {"", "A:B", "A B", "A\r", "A\n", "A\t", "\x7f"};
    const char *bad_values[] = {"a\r\nInjected: 1", "a\n", "a\r", "\x01"};
    struct nats_str okv = {(const uint8_t *)"v", 1}, okn = {(const uint8_t *)"N", 1};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        struct nats_str nm = {(const uint8_t *)bad_names[i], strlen(bad_names[i])};
        ASSERT_EQ(nats_hdr_build(buf, sizeof buf, 0, NULL, &nm, &okv, 1), 0);
    }
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        struct nats_str val = {(const uint8_t *)bad_values[i], strlen(bad_values[i])};
        ASSERT_EQ(nats_hdr_build(buf, sizeof buf, 0, NULL, &okn, &val, 1), 0);
    }
    ASSERT_EQ(nats_hdr_build(buf, sizeof buf, 503, "No\r\nResponders", NULL, NULL, 0), 0);
    ASSERT_EQ(nats_hdr_build(buf, sizeof buf, 99, NULL, NULL, NULL, 0), 0);
    ASSERT_EQ(nats_hdr_build(buf, sizeof buf, 1000, NULL, NULL, NULL, 0), 0);
    ASSERT_EQ(nats_hdr_build(buf, sizeof buf, -1, NULL, NULL, NULL, 0), 0);
}

TEST(page_boundary)
{
    struct page_end pe;
    page_end_open(&pe);
    const char *h = "NATS/1.0 503 x\r\nA: b\r\nC:  d \r\n\r\n";
    size_t len = strlen(h);
    for (size_t k = 0; k <= len; k++) {
        const uint8_t *p = page_end_put(&pe, h, k);
        ASSERT_EQ(nats_hdr_valid(p, k), k == len);
        ASSERT_EQ(nats_hdr_status(p, k), k >= 16 ? 503 : 0);
        struct nats_hdr_iter it;
        struct nats_str n, v;
        nats_hdr_iter_init(&it, p, k);
        int count = 0;
        while (nats_hdr_next(&it, &n, &v))
            ASSERT(++count <= 2);
    }
    page_end_close(&pe);
}

int main(void)
{
    RUN(valid);
    RUN(status);
    RUN(iterate);
    RUN(build);
    RUN(build_refuses);
    RUN(page_boundary);
    TEST_DONE();
}
