/* src/http/http.c: the request parser (whole requests, every prefix "need
 * more", pipelining, the target forms, versions, bodies), its refusals
 * (line endings, obs-fold, control bytes, header names, Content-Length and
 * Transfer-Encoding, every limit with 414 against 431), the helpers
 * (headers, tokens, form and percent decoding) and the response writers.
 * Every input is parsed where it ends at a page boundary. */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "page_end.h"
#include "test.h"

static struct page_end pe;
static struct http_request rq;
static int st;
static const char *why;

/* Parses n bytes placed to end at the page boundary (or in a heap block of
 * exactly n bytes when longer than a page). */
static enum http_parse_status parse_n(const void *s, size_t n, const struct http_limits *lim)
{
    if (n <= pe.page)
        return http_parse(page_end_put(&pe, s, n), n, lim, &rq, &st, &why);
    uint8_t *copy = malloc(n);
    ASSERT(copy != NULL);
    memcpy(copy, s, n);
    enum http_parse_status r = http_parse(copy, n, lim, &rq, &st, &why);
    /* The views point into copy: keep it for the test's checks. */
    static uint8_t *last;
    free(last);
    last = copy;
    return r;
}

static enum http_parse_status parse(const char *s)
{
    return parse_n(s, strlen(s), NULL);
}

/* The request is refused with this status and a reason. */
static void expect_refused(const char *s, int status)
{
    ASSERT_EQ(parse(s), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, status);
    ASSERT(why != NULL && why[0] != '\0');
}

#define SLICE_IS(sl, str)                                                                          \
    do {                                                                                           \
        if (!http_slice_eq((sl), (str)))                                                           \
            TEST_FAIL_("%s is \"%.*s\", not \"%s\"", #sl, (int)(sl).len, (sl).p ? (sl).p : "",     \
                       (str));                                                                     \
    } while (0)

TEST(defaults)
{
    struct http_limits l;
    http_limits_defaults(&l);
    ASSERT_EQ(l.max_head, 8192);
    ASSERT_EQ(l.max_headers, 32);
    ASSERT_EQ(l.max_body, 0);
}

static const char simple[] = "GET /api/v4/clients?_page=2&_limit=10 HTTP/1.1\r\n"
                             "Host: localhost:8081\r\n"
                             "User-Agent:curl/8.5  \r\n"
                             "Accept: \t*/*\t\r\n"
                             "X-Empty:\r\n"
                             "\r\n";

TEST(simple_get)
{
    ASSERT_EQ(parse(simple), HTTP_PARSE_DONE);
    SLICE_IS(rq.method, "GET");
    SLICE_IS(rq.target, "/api/v4/clients?_page=2&_limit=10");
    SLICE_IS(rq.path, "/api/v4/clients");
    SLICE_IS(rq.query, "_page=2&_limit=10");
    ASSERT_EQ(rq.minor, 1);
    ASSERT_EQ(rq.nheaders, 4);
    SLICE_IS(rq.headers[0].name, "Host");
    SLICE_IS(rq.headers[0].value, "localhost:8081");
    SLICE_IS(rq.headers[1].value, "curl/8.5");
    SLICE_IS(rq.headers[2].value, "*/*");
    SLICE_IS(rq.headers[3].name, "X-Empty");
    ASSERT_EQ(rq.headers[3].value.len, 0);
    ASSERT(rq.keep_alive);
    ASSERT_EQ(rq.body_len, 0);
    ASSERT_EQ(rq.consumed, strlen(simple));
    ASSERT(rq.path.p >= (const char *)pe.map && rq.path.p < (const char *)pe.end);
}

TEST(every_prefix_needs_more)
{
    const char *reqs[] = {
        simple,
        "\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        "POST /api/v4/mqtt/publish HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    };
    struct http_limits l;
    http_limits_defaults(&l);
    l.max_body = 16;
    for (size_t r = 0; r < sizeof(reqs) / sizeof(*reqs); r++) {
        size_t n = strlen(reqs[r]);
        for (size_t i = 0; i < n; i++)
            if (parse_n(reqs[r], i, &l) != HTTP_PARSE_AGAIN)
                TEST_FAIL_("request %zu cut at %zu: %d (%d %s)", r, i, (int)rq.consumed, st,
                           why ? why : "");
        ASSERT_EQ(parse_n(reqs[r], n, &l), HTTP_PARSE_DONE);
        ASSERT_EQ(rq.consumed, n);
    }
}

TEST(target_forms)
{
    ASSERT_EQ(parse("GET / HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/");
    ASSERT_EQ(rq.query.len, 0);
    ASSERT_EQ(parse("GET /a?b?c HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/a");
    SLICE_IS(rq.query, "b?c");
    ASSERT_EQ(parse("GET /a? HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/a");
    ASSERT_EQ(rq.query.len, 0);
    /* Absolute-form (RFC 9112 3.2.2). */
    ASSERT_EQ(parse("GET HTTP://host:1/x/y?q=1 HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/x/y");
    SLICE_IS(rq.query, "q=1");
    ASSERT_EQ(parse("GET https://host HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/");
    ASSERT_EQ(parse("GET http://host?q HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/");
    SLICE_IS(rq.query, "q");
    ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "*");
    expect_refused("GET http:// HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET http:///x HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET ftp://h/x HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET x HTTP/1.1\r\n\r\n", 400);
    expect_refused("CONNECT host:443 HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET  / HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET /a b HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET /\x7f HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
    ASSERT_EQ(parse_n("GET /\0 HTTP/1.1\r\n\r\n", 19, NULL), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 400);
}

TEST(methods)
{
    ASSERT_EQ(parse("DELETE /x HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.method, "DELETE");
    /* Methods are case-sensitive tokens: "get" is a method the router does
     * not know, not a syntax error. */
    ASSERT_EQ(parse("get / HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.method, "get");
    expect_refused("G@T / HTTP/1.1\r\n\r\n", 400);
    expect_refused(" GET / HTTP/1.1\r\n\r\n", 400);
    expect_refused("/ HTTP/1.1\r\n\r\n", 400);
    expect_refused("GET\t/ HTTP/1.1\r\n\r\n", 400);
    expect_refused("\x16\x03\x01\x02\x00\x01", 400); /* a TLS ClientHello on a plain port */
}

TEST(versions)
{
    ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.minor, 0);
    ASSERT(!rq.keep_alive);
    ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT(rq.keep_alive);
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT(!rq.keep_alive);
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT(!rq.keep_alive);
    ASSERT_EQ(parse("GET / HTTP/1.9\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.minor, 1);
    expect_refused("GET / HTTP/2.0\r\n\r\n", 505);
    expect_refused("GET / HTTP/0.9\r\n\r\n", 505);
    expect_refused("GET / http/1.1\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.10\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1 \r\n\r\n", 400);
    expect_refused("GET / HTTP/11\r\n\r\n", 400);
    expect_refused("GET /\r\n\r\n", 400); /* HTTP/0.9 */
}

TEST(bodies)
{
    struct http_limits l;
    http_limits_defaults(&l);
    l.max_body = 5;
    const char *post = "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    ASSERT_EQ(parse_n(post, strlen(post), &l), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.body_len, 5);
    ASSERT_MEM_EQ(rq.body, "hello", 5);
    ASSERT_EQ(rq.consumed, strlen(post));
    /* The head is complete, the body is not yet. */
    ASSERT_EQ(parse_n(post, strlen(post) - 1, &l), HTTP_PARSE_AGAIN);
    /* Over max_body: refused as soon as the head says so, before any body. */
    l.max_body = 4;
    const char *head = "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
    ASSERT_EQ(parse_n(head, strlen(head), &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 413);
    /* The default takes no body at all, but Content-Length: 0 is none. */
    expect_refused("POST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 413);
    ASSERT_EQ(parse("POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.body_len, 0);
    expect_refused("POST /p HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n", 413);
}

TEST(content_length_rules)
{
    struct http_limits l;
    http_limits_defaults(&l);
    l.max_body = 100;
    const char *same[] = {
        "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: 3 , 3,3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: 003\r\n\r\nabc",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
        ASSERT_EQ(parse_n(same[i], strlen(same[i]), &l), HTTP_PARSE_DONE);
        ASSERT_EQ(rq.body_len, 3);
    }
    const char *bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nContent-Length: 3,\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: ,3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: 3 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999999\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (parse_n(bad[i], strlen(bad[i]), &l) != HTTP_PARSE_ERROR || st != 400)
            TEST_FAIL_("case %zu: not refused with 400 (status %d)", i, st);
    }
}

TEST(transfer_encoding)
{
    expect_refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
    expect_refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
                   400);
    expect_refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
                   400);
}

TEST(hosts)
{
    ASSERT_EQ(parse("GET / HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE); /* tolerated */
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n", 400);
}

TEST(pipelined)
{
    const char *two = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
                      "POST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                      "GET /thr";
    struct http_limits l;
    http_limits_defaults(&l);
    l.max_body = 2;
    size_t n = strlen(two), off = 0;
    uint8_t *p = page_end_put(&pe, two, n);
    ASSERT_EQ(http_parse(p, n, &l, &rq, &st, &why), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/one");
    off += rq.consumed;
    ASSERT_EQ(http_parse(p + off, n - off, &l, &rq, &st, &why), HTTP_PARSE_DONE);
    SLICE_IS(rq.path, "/two");
    ASSERT_MEM_EQ(rq.body, "hi", 2);
    off += rq.consumed;
    ASSERT_EQ(http_parse(p + off, n - off, &l, &rq, &st, &why), HTTP_PARSE_AGAIN);
    /* The next request's bytes never make the first one longer. */
    ASSERT_EQ(http_parse(p, n, &l, &rq, &st, &why), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.consumed, strlen("GET /one HTTP/1.1\r\nHost: h\r\n\r\n"));
}

TEST(line_endings)
{
    /* Bare LF is refused everywhere, never taken as a line end. */
    expect_refused("GET / HTTP/1.1\n\n", 400);
    expect_refused("GET / HTTP/1.1\nHost: x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: x\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: x\r\n\n", 400);
    expect_refused("\nGET / HTTP/1.1\r\n\r\n", 400);
    /* A bare CR too. */
    expect_refused("GET / HTTP/1.1\r\nHost: x\ry: z\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\rX\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\n\rX", 400);
    /* Empty lines before the request line are skipped and consumed. */
    ASSERT_EQ(parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.consumed, 22);
    ASSERT_EQ(parse("\r"), HTTP_PARSE_AGAIN);
    ASSERT_EQ(parse("\r\n"), HTTP_PARSE_AGAIN);
}

TEST(obs_fold_refused)
{
    expect_refused("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n", 400);
    /* Whitespace before the first header (RFC 9112 2.2). */
    expect_refused("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);
}

TEST(control_bytes_refused)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nX-A: a\001b\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: \x1b[31m\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        expect_refused(bad[i], 400);
    const char nul_value[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
    ASSERT_EQ(parse_n(nul_value, sizeof(nul_value) - 1, NULL), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 400);
    const char nul_name[] = "GET / HTTP/1.1\r\nX\0A: b\r\n\r\n";
    ASSERT_EQ(parse_n(nul_name, sizeof(nul_name) - 1, NULL), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 400);
    /* HTAB inside a value and obs-text (8-bit bytes) are field content. */
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-A: a\tb \xc3\xa9\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.headers[0].value, "a\tb \xc3\xa9");
}

TEST(header_names_are_tokens)
{
    expect_refused("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nName : x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nName\t: x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\n: x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nNa(me): x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nNo-colon\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nN\xc3\xa9: x\r\n\r\n", 400);
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n"), HTTP_PARSE_DONE);
    SLICE_IS(rq.headers[0].name, "X!#$%&'*+-.^_`|~9");
}

/* A request with n headers "X-N: v". */
static char *many_headers(unsigned n)
{
    size_t cap = 64 + (size_t)n * 16;
    char *s = malloc(cap);
    ASSERT(s != NULL);
    size_t o = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\n");
    for (unsigned i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "X-%u: v\r\n", i);
    snprintf(s + o, cap - o, "\r\n");
    return s;
}

TEST(header_count_limit)
{
    struct http_limits l;
    http_limits_defaults(&l);
    l.max_headers = 3;
    char *s = many_headers(3);
    ASSERT_EQ(parse_n(s, strlen(s), &l), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.nheaders, 3);
    free(s);
    s = many_headers(4);
    ASSERT_EQ(parse_n(s, strlen(s), &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    free(s);
    /* The default, 32. */
    s = many_headers(32);
    ASSERT_EQ(parse(s), HTTP_PARSE_DONE);
    free(s);
    s = many_headers(33);
    ASSERT_EQ(parse(s), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    free(s);
    /* A configured count above the ceiling is held to HTTP_MAX_HEADERS. */
    l.max_headers = 1000;
    l.max_head = 1 << 20;
    s = many_headers(HTTP_MAX_HEADERS);
    ASSERT_EQ(parse_n(s, strlen(s), &l), HTTP_PARSE_DONE);
    free(s);
    s = many_headers(10000);
    ASSERT_EQ(parse_n(s, strlen(s), &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    free(s);
    l.max_headers = 0;
    ASSERT_EQ(parse_n("GET / HTTP/1.1\r\n\r\n", 18, &l), HTTP_PARSE_DONE);
    ASSERT_EQ(parse_n("GET / HTTP/1.1\r\nA: b\r\n\r\n", 24, &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
}

/* A request of exactly `total` bytes: "GET " target " HTTP/1.1\r\n" and a
 * header padding it out, then the blank line. */
static char *sized(size_t target_len, size_t total)
{
    char *s = malloc(total + 1);
    ASSERT(s != NULL);
    size_t o = 0;
    memcpy(s, "GET /", 5);
    o = 5;
    memset(s + o, 'a', target_len - 1);
    o += target_len - 1;
    memcpy(s + o, " HTTP/1.1\r\nX: ", 14);
    o += 14;
    ASSERT(total >= o + 4);
    memset(s + o, 'b', total - o - 4);
    memcpy(s + total - 4, "\r\n\r\n", 4);
    s[total] = '\0';
    return s;
}

TEST(head_size_limit)
{
    struct http_limits l;
    http_limits_defaults(&l);
    l.max_head = 256;
    /* Exactly max_head bytes is a whole head; one more is too large. */
    char *s = sized(10, 256);
    ASSERT_EQ(parse_n(s, 256, &l), HTTP_PARSE_DONE);
    ASSERT_EQ(rq.consumed, 256);
    free(s);
    s = sized(10, 257);
    ASSERT_EQ(parse_n(s, 257, &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    /* Short of max_head, still waiting: the limit is not hit yet. */
    ASSERT_EQ(parse_n(s, 255, &l), HTTP_PARSE_AGAIN);
    ASSERT_EQ(parse_n(s, 256, &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    free(s);
    /* A target that runs past max_head: 414. */
    s = sized(300, 400);
    ASSERT_EQ(parse_n(s, 400, &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 414);
    ASSERT_EQ(parse_n(s, 256, &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 414);
    ASSERT_EQ(parse_n(s, 255, &l), HTTP_PARSE_AGAIN);
    free(s);
    /* A long target that ends inside the limit, with headers running over: 431. */
    s = sized(200, 400);
    ASSERT_EQ(parse_n(s, 400, &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    free(s);
    /* A method, or the empty lines before it, running over: 431. */
    char m[300];
    memset(m, 'G', sizeof(m));
    ASSERT_EQ(parse_n(m, sizeof(m), &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    for (size_t i = 0; i < sizeof(m); i += 2)
        memcpy(m + i, "\r\n", 2);
    ASSERT_EQ(parse_n(m, sizeof(m), &l), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    /* The default max_head, 8192, with a long target and a long header. */
    s = sized(9000, 9100);
    ASSERT_EQ(parse_n(s, 9100, NULL), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 414);
    free(s);
    s = sized(100, 9100);
    ASSERT_EQ(parse_n(s, 9100, NULL), HTTP_PARSE_ERROR);
    ASSERT_EQ(st, 431);
    free(s);
    s = sized(100, 8192);
    ASSERT_EQ(parse_n(s, 8192, NULL), HTTP_PARSE_DONE);
    free(s);
}

TEST(header_lookup)
{
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nupgrade: WebSocket\r\n"
                    "X-List: a\r\nx-list: ,, b ,c,\r\n\r\n"),
              HTTP_PARSE_DONE);
    const struct http_header *h = http_header(&rq, "UPGRADE");
    ASSERT(h != NULL);
    SLICE_IS(h->value, "WebSocket");
    h = http_header(&rq, "x-list");
    ASSERT(h != NULL);
    SLICE_IS(h->value, "a");
    ASSERT(http_header(&rq, "X-Lis") == NULL);
    ASSERT(http_header(&rq, "Host") == NULL);
    ASSERT(http_header_has_token(&rq, "connection", "upgrade"));
    ASSERT(http_header_has_token(&rq, "Connection", "Keep-Alive"));
    ASSERT(!http_header_has_token(&rq, "Connection", "close"));
    ASSERT(!http_header_has_token(&rq, "Connection", "upgrad"));
    ASSERT(!http_header_has_token(&rq, "Connection", "keep-alive, upgrade"));
    ASSERT(http_header_has_token(&rq, "upgrade", "websocket"));
    ASSERT(http_header_has_token(&rq, "X-List", "a"));
    ASSERT(http_header_has_token(&rq, "X-List", "b"));
    ASSERT(http_header_has_token(&rq, "X-List", "c"));
    ASSERT(!http_header_has_token(&rq, "X-List", ""));
    ASSERT(!http_header_has_token(&rq, "Missing", "a"));
}

TEST(slice_eq)
{
    struct http_slice s = {"abc", 3};
    ASSERT(http_slice_eq(s, "abc"));
    ASSERT(!http_slice_eq(s, "ABC"));
    ASSERT(!http_slice_eq(s, "ab"));
    ASSERT(!http_slice_eq(s, "abcd"));
    struct http_slice e = {NULL, 0};
    ASSERT(http_slice_eq(e, ""));
    ASSERT(!http_slice_eq(e, "a"));
}

static struct http_slice sl(const char *s)
{
    return (struct http_slice){s, strlen(s)};
}

TEST(form_get)
{
    char out[16];
    struct http_slice f = sl("a=1&b=x+y%21&c&d=&k%65y=v&a=2&&e=%zz&n=%00&long=0123456789abcdef");
    ASSERT(http_form_get(f, "a", out, sizeof(out)));
    ASSERT_STR_EQ(out, "1"); /* the first one */
    ASSERT(http_form_get(f, "b", out, sizeof(out)));
    ASSERT_STR_EQ(out, "x y!");
    ASSERT(http_form_get(f, "c", out, sizeof(out)));
    ASSERT_STR_EQ(out, "");
    ASSERT(http_form_get(f, "d", out, sizeof(out)));
    ASSERT_STR_EQ(out, "");
    ASSERT(http_form_get(f, "key", out, sizeof(out))); /* the name is decoded too */
    ASSERT_STR_EQ(out, "v");
    ASSERT(!http_form_get(f, "k", out, sizeof(out)));
    ASSERT(!http_form_get(f, "missing", out, sizeof(out)));
    ASSERT(!http_form_get(f, "e", out, sizeof(out)));    /* bad %XX */
    ASSERT(!http_form_get(f, "n", out, sizeof(out)));    /* a decoded NUL */
    ASSERT(!http_form_get(f, "long", out, sizeof(out))); /* 16 bytes do not fit with the NUL */
    char big[17];
    ASSERT(http_form_get(f, "long", big, sizeof(big)));
    ASSERT_STR_EQ(big, "0123456789abcdef");
    ASSERT(!http_form_get(sl(""), "a", out, sizeof(out)));
    ASSERT(!http_form_get(sl("=v"), "", out, sizeof(out)));
    ASSERT(!http_form_get(sl("a=%4"), "a", out, sizeof(out)));
    ASSERT(!http_form_get(sl("a=%"), "a", out, sizeof(out)));
    ASSERT(!http_form_get(sl("a=1"), "a", out, 0));
    ASSERT(http_form_get(sl("a+b=1"), "a b", out, sizeof(out)));
    ASSERT(http_form_get(sl("x=%C3%A9"), "x", out, sizeof(out)));
    ASSERT_STR_EQ(out, "\xc3\xa9");
}

TEST(percent_decode)
{
    char out[8];
    ASSERT(http_percent_decode(sl("/a%20b+"), out, sizeof(out)));
    ASSERT_STR_EQ(out, "/a b+"); /* '+' is a plus in a path */
    ASSERT(http_percent_decode(sl("%2f%2F"), out, sizeof(out)));
    ASSERT_STR_EQ(out, "//");
    ASSERT(http_percent_decode(sl(""), out, 1));
    ASSERT_STR_EQ(out, "");
    ASSERT(http_percent_decode(sl("1234567"), out, sizeof(out)));
    ASSERT(!http_percent_decode(sl("12345678"), out, sizeof(out)));
    ASSERT(!http_percent_decode(sl("%"), out, sizeof(out)));
    ASSERT(!http_percent_decode(sl("a%4"), out, sizeof(out)));
    ASSERT(!http_percent_decode(sl("%g0"), out, sizeof(out)));
    ASSERT(!http_percent_decode(sl("%00"), out, sizeof(out)));
    ASSERT(!http_percent_decode((struct http_slice){"a\0b", 3}, out, sizeof(out)));
    ASSERT(!http_percent_decode(sl("a"), out, 0));
    /* The cut is at the end of the input, not past it. */
    uint8_t *p = page_end_put(&pe, "ab%4", 4);
    ASSERT(!http_percent_decode((struct http_slice){(const char *)p, 4}, out, sizeof(out)));
    p = page_end_put(&pe, "ab%41", 5);
    ASSERT(http_percent_decode((struct http_slice){(const char *)p, 5}, out, sizeof(out)));
    ASSERT_STR_EQ(out, "abA");
}

TEST(reasons)
{
    ASSERT_STR_EQ(http_reason(200), "OK");
    ASSERT_STR_EQ(http_reason(101), "Switching Protocols");
    ASSERT_STR_EQ(http_reason(404), "Not Found");
    ASSERT_STR_EQ(http_reason(414), "URI Too Long");
    ASSERT_STR_EQ(http_reason(426), "Upgrade Required");
    ASSERT_STR_EQ(http_reason(431), "Request Header Fields Too Large");
    ASSERT_STR_EQ(http_reason(503), "Service Unavailable");
    ASSERT_STR_EQ(http_reason(0), "Unknown");
    ASSERT_STR_EQ(http_reason(299), "Unknown");
}

static const char *text(struct buf *b)
{
    static char s[1024];
    size_t n = buf_len(b) < sizeof(s) - 1 ? buf_len(b) : sizeof(s) - 1;
    memcpy(s, buf_head(b), n);
    s[n] = '\0';
    return s;
}

TEST(response_head)
{
    struct buf b;
    buf_init(&b, 0);
    ASSERT(ward_ok(http_response_head(&b, 200, "application/json", 12, NULL, true)));
    ASSERT_STR_EQ(
        text(&b),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n");
    buf_reset(&b);
    ASSERT(ward_ok(http_response_head(&b, 404, NULL, 0, "X-A: 1\r\nX-B: 2\r\n", false)));
    ASSERT_STR_EQ(text(&b), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n"
                            "X-A: 1\r\nX-B: 2\r\n\r\n");
    /* 1xx and 204 carry no Content-Length (RFC 9110 8.6). */
    buf_reset(&b);
    ASSERT(ward_ok(http_response_head(&b, 101, NULL, 0, "Upgrade: websocket\r\n", true)));
    ASSERT_STR_EQ(text(&b), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    buf_reset(&b);
    ASSERT(ward_ok(http_response_head(&b, 204, NULL, 0, "", true)));
    ASSERT_STR_EQ(text(&b), "HTTP/1.1 204 No Content\r\n\r\n");
    /* Refused, leaving the buffer as it was. */
    buf_reset(&b);
    ASSERT(ward_ok(buf_append(&b, "x", 1)));
    ASSERT_EQ(http_response_head(&b, 204, NULL, 1, NULL, true).err, WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 99, NULL, 0, NULL, true).err, WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 600, NULL, 0, NULL, true).err, WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 200, "text/plain\r\nX-Evil: 1", 0, NULL, true).err,
              WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 200, NULL, 0, "X-A: 1", true).err, WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 200, NULL, 0, "X-A: 1\r\n\r\nbody", true).err,
              WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 200, NULL, 0, "X-A: 1\nX-B: 2\r\n", true).err,
              WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 200, NULL, 0, "X A: 1\r\n", true).err, WARD_ERR_INVALID);
    ASSERT_EQ(http_response_head(&b, 200, NULL, 0, "X-A: \x01\r\n", true).err, WARD_ERR_INVALID);
    ASSERT_STR_EQ(text(&b), "x");
    buf_free(&b);
    /* Out of room: nothing half-written stays. */
    buf_init(&b, 40);
    ASSERT(ward_ok(buf_append(&b, "x", 1)));
    ASSERT_EQ(http_response_head(&b, 200, "application/json", 1, NULL, true).err, WARD_ERR_LIMIT);
    ASSERT_STR_EQ(text(&b), "x");
    buf_free(&b);
}

TEST(response_text)
{
    struct buf b;
    buf_init(&b, 0);
    ASSERT(ward_ok(http_response_text(&b, 404, NULL, true)));
    ASSERT_STR_EQ(text(&b), "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            "Content-Length: 10\r\n\r\nNot Found\n");
    buf_reset(&b);
    ASSERT(ward_ok(http_response_text(&b, 400, "malformed method", false)));
    ASSERT_STR_EQ(text(&b),
                  "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 17\r\nConnection: close\r\n\r\nmalformed method\n");
    buf_reset(&b);
    ASSERT_EQ(http_response_text(&b, 204, NULL, true).err, WARD_ERR_INVALID);
    ASSERT_EQ(http_response_text(&b, 101, NULL, true).err, WARD_ERR_INVALID);
    ASSERT_EQ(buf_len(&b), 0);
    buf_free(&b);
    buf_init(&b, 90);
    ASSERT_EQ(
        http_response_text(&b, 400, "a reason long enough not to fit in the room left", true).err,
        WARD_ERR_LIMIT);
    ASSERT_EQ(buf_len(&b), 0);
    buf_free(&b);
}

int main(void)
{
    page_end_open(&pe);
    RUN(defaults);
    RUN(simple_get);
    RUN(every_prefix_needs_more);
    RUN(target_forms);
    RUN(methods);
    RUN(versions);
    RUN(bodies);
    RUN(content_length_rules);
    RUN(transfer_encoding);
    RUN(hosts);
    RUN(pipelined);
    RUN(line_endings);
    RUN(obs_fold_refused);
    RUN(control_bytes_refused);
    RUN(header_names_are_tokens);
    RUN(header_count_limit);
    RUN(head_size_limit);
    RUN(header_lookup);
    RUN(slice_eq);
    RUN(form_get);
    RUN(percent_decode);
    RUN(reasons);
    RUN(response_head);
    RUN(response_text);
    page_end_close(&pe);
    TEST_DONE();
}
