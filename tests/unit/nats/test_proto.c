/* src/nats/proto.c: framing, limits, errors, and the server's own lines.
 * The -ERR lines and the accept/refuse decisions below are what a running
 * nats-server 2.9.10 answered to the same bytes (probed over loopback). */
#include <stdbool.h>

#include "nats/nats.h"
#include "page_end.h"
#include "test.h"

static const struct nats_limits lim = {4096, 1u << 20};

#define SV_EQ(v, lit) (v.len == strlen(lit) && memcmp(v.p, lit, v.len) == 0)

static int parse_n(bool server, const void *s, size_t n, struct nats_cmd *c, size_t *used,
                   enum nats_err *e)
{
    return nats_parse(&lim, server, (const uint8_t *)s, n, c, used, e);
}

static int parse(bool server, const char *s, struct nats_cmd *c, size_t *used, enum nats_err *e)
{
    return parse_n(server, s, strlen(s), c, used, e);
}

/* One whole command: it parses, and consumes every byte. */
static struct nats_cmd one(bool server, const char *s)
{
    struct nats_cmd c;
    size_t used = 0;
    enum nats_err e;
    int rc = parse(server, s, &c, &used, &e);
    if (rc != 1)
        TEST_FAIL_("\"%s\": rc %d, err %d", s, rc, e);
    ASSERT_EQ(used, strlen(s));
    ASSERT_EQ(e, NATS_ERR_NONE);
    return c;
}

static enum nats_err refused(bool server, const char *s)
{
    struct nats_cmd c;
    size_t used = 99;
    enum nats_err e = NATS_ERR_NONE;
    int rc = parse(server, s, &c, &used, &e);
    if (rc != -1)
        TEST_FAIL_("\"%s\": rc %d, expected an error", s, rc);
    ASSERT_EQ(used, 0);
    return e;
}

static void needs_more(bool server, const char *s)
{
    struct nats_cmd c;
    size_t used = 99;
    enum nats_err e = NATS_ERR_PARSER;
    int rc = parse(server, s, &c, &used, &e);
    if (rc != 0)
        TEST_FAIL_("\"%s\": rc %d (err %d), expected 0", s, rc, e);
    ASSERT_EQ(used, 0);
}

TEST(client_ops)
{
    struct nats_cmd c = one(true, "CONNECT {\"verbose\":false}\r\n");
    ASSERT_EQ(c.op, NATS_OP_CONNECT);
    ASSERT(SV_EQ(c.arg, "{\"verbose\":false}"));

    c = one(true, "PUB foo.bar 5\r\nhello\r\n");
    ASSERT_EQ(c.op, NATS_OP_PUB);
    ASSERT(SV_EQ(c.subject, "foo.bar"));
    ASSERT_EQ(c.reply.len, 0);
    ASSERT(SV_EQ(c.payload, "hello"));
    ASSERT_EQ(c.headers.len, 0);

    c = one(true, "PUB foo INBOX.1 2\r\nhi\r\n");
    ASSERT(SV_EQ(c.subject, "foo"));
    ASSERT(SV_EQ(c.reply, "INBOX.1"));
    ASSERT(SV_EQ(c.payload, "hi"));

    c = one(true, "HPUB foo 24 26\r\nNATS/1.0\r\nA: b\r\nC: d\r\n\r\nhi\r\n");
    ASSERT_EQ(c.op, NATS_OP_HPUB);
    ASSERT(SV_EQ(c.headers, "NATS/1.0\r\nA: b\r\nC: d\r\n\r\n"));
    ASSERT(SV_EQ(c.payload, "hi"));

    c = one(true, "HPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    ASSERT(SV_EQ(c.reply, "r"));
    ASSERT_EQ(c.headers.len, 12);
    ASSERT_EQ(c.payload.len, 0);

    c = one(true, "SUB foo.* 1\r\n");
    ASSERT_EQ(c.op, NATS_OP_SUB);
    ASSERT(SV_EQ(c.subject, "foo.*"));
    ASSERT_EQ(c.queue.len, 0);
    ASSERT(SV_EQ(c.sid, "1"));

    c = one(true, "SUB foo workers 77\r\n");
    ASSERT(SV_EQ(c.queue, "workers"));
    ASSERT(SV_EQ(c.sid, "77"));

    c = one(true, "UNSUB 77\r\n");
    ASSERT_EQ(c.op, NATS_OP_UNSUB);
    ASSERT(SV_EQ(c.sid, "77"));
    ASSERT(!c.has_max);

    c = one(true, "UNSUB 77 10\r\n");
    ASSERT(c.has_max);
    ASSERT_EQ(c.max_msgs, 10);

    ASSERT_EQ(one(true, "PING\r\n").op, NATS_OP_PING);
    ASSERT_EQ(one(true, "PONG\r\n").op, NATS_OP_PONG);
}

TEST(server_ops_client_side)
{
    struct nats_cmd c = one(false, "INFO {\"server_id\":\"x\"} \r\n");
    ASSERT_EQ(c.op, NATS_OP_INFO);
    ASSERT(SV_EQ(c.arg, "{\"server_id\":\"x\"} "));

    c = one(false, "MSG foo.bar 9 5\r\nhello\r\n");
    ASSERT_EQ(c.op, NATS_OP_MSG);
    ASSERT(SV_EQ(c.subject, "foo.bar"));
    ASSERT(SV_EQ(c.sid, "9"));
    ASSERT_EQ(c.reply.len, 0);
    ASSERT(SV_EQ(c.payload, "hello"));

    c = one(false, "MSG foo 9 INBOX.x 0\r\n\r\n");
    ASSERT(SV_EQ(c.reply, "INBOX.x"));
    ASSERT_EQ(c.payload.len, 0);

    c = one(false, "HMSG foo 9 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
    ASSERT_EQ(c.op, NATS_OP_HMSG);
    ASSERT(SV_EQ(c.reply, "r"));
    ASSERT(SV_EQ(c.headers, "NATS/1.0\r\n\r\n"));
    ASSERT(SV_EQ(c.payload, "hi"));

    c = one(false, "HMSG foo 9 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    ASSERT_EQ(c.reply.len, 0);

    ASSERT_EQ(one(false, "+OK\r\n").op, NATS_OP_OK);
    c = one(false, "-ERR 'Unknown Protocol Operation'\r\n");
    ASSERT_EQ(c.op, NATS_OP_ERR);
    ASSERT(SV_EQ(c.arg, "Unknown Protocol Operation"));
    c = one(false, "-ERR 'Permissions Violation for Publish to \"a b\"'\r\n");
    ASSERT(SV_EQ(c.arg, "Permissions Violation for Publish to \"a b\""));
    c = one(false, "-ERR unquoted\r\n");
    ASSERT(SV_EQ(c.arg, "unquoted"));

    /* The client side parses the client's operations too. */
    ASSERT_EQ(one(false, "PING\r\n").op, NATS_OP_PING);

    /* A client that sends the server's operations is refused. */
    ASSERT_EQ(refused(true, "INFO {}\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "MSG a 1 1\r\nx\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "HMSG a 1 2 2\r\nxx\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "+OK\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "-ERR foo\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(false, "-ERR\r\n"), NATS_ERR_UNKNOWN_OP);
}

TEST(case_tabs_and_spaces)
{
    ASSERT_EQ(one(true, "connect {}\r\n").op, NATS_OP_CONNECT);
    ASSERT_EQ(one(true, "CoNnEcT {}\r\n").op, NATS_OP_CONNECT);
    ASSERT_EQ(one(true, "ping\r\n").op, NATS_OP_PING);
    ASSERT_EQ(one(true, "pOnG\r\n").op, NATS_OP_PONG);
    ASSERT_EQ(one(true, "sub a 1\r\n").op, NATS_OP_SUB);
    ASSERT_EQ(one(true, "unsub 1\r\n").op, NATS_OP_UNSUB);
    ASSERT_EQ(one(true, "hpub a 12 12\r\nNATS/1.0\r\n\r\n\r\n").op, NATS_OP_HPUB);
    ASSERT_EQ(one(false, "msg a 1 0\r\n\r\n").op, NATS_OP_MSG);
    ASSERT_EQ(one(false, "+ok\r\n").op, NATS_OP_OK);
    ASSERT_EQ(one(false, "info {}\r\n").op, NATS_OP_INFO);

    struct nats_cmd c = one(true, "pub a 1 \r\nx\r\n");
    ASSERT(SV_EQ(c.subject, "a"));
    c = one(true, "PUB\ta\t1\t\r\nx\r\n");
    ASSERT(SV_EQ(c.subject, "a"));
    ASSERT(SV_EQ(c.payload, "x"));
    c = one(true, "PUB  \t a \t\t r   1  \r\nx\r\n");
    ASSERT(SV_EQ(c.subject, "a"));
    ASSERT(SV_EQ(c.reply, "r"));
    c = one(true, "UNSUB 1 \r\n");
    ASSERT(SV_EQ(c.sid, "1"));
    c = one(true, "SUB\tq\tg\t5\r\n");
    ASSERT(SV_EQ(c.queue, "g"));

    /* CONNECT and INFO need no blank before their JSON; a missing one
     * leaves an empty argument (nats_connect_parse refuses it). */
    c = one(true, "CONNECT{}\r\n");
    ASSERT(SV_EQ(c.arg, "{}"));
    c = one(true, "CONNECT\r\n");
    ASSERT_EQ(c.arg.len, 0);
    c = one(true, "CONNECT   {\"a\":1} \r\n");
    ASSERT(SV_EQ(c.arg, "{\"a\":1} "));

    /* Anything after PING, PONG and +OK up to the newline is ignored. */
    ASSERT_EQ(one(true, "PINGX\r\n").op, NATS_OP_PING);
    ASSERT_EQ(one(true, "PING foo\r\n").op, NATS_OP_PING);
    ASSERT_EQ(one(true, "PONGxyz\r\n").op, NATS_OP_PONG);
    ASSERT_EQ(one(false, "+OKfoo\r\n").op, NATS_OP_OK);

    /* SUB and UNSUB split on a carriage return inside the line as well. */
    c = one(true, "SUB a\r1\r\n");
    ASSERT(SV_EQ(c.subject, "a"));
    ASSERT(SV_EQ(c.sid, "1"));
}

TEST(line_endings)
{
    /* A control line may end with a bare newline ... */
    ASSERT_EQ(one(true, "PING\n").op, NATS_OP_PING);
    ASSERT_EQ(one(true, "SUB a 1\n").op, NATS_OP_SUB);
    struct nats_cmd c = one(true, "PUB a 1\nx\r\n");
    ASSERT(SV_EQ(c.payload, "x"));
    c = one(true, "CONNECT {}\n");
    ASSERT(SV_EQ(c.arg, "{}"));
    /* ... but a payload must be followed by exactly "\r\n". */
    ASSERT_EQ(refused(true, "PUB a 1\r\nx\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "PUB a 1\r\nxx\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "PUB a 1\r\nx\rX"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "PUB a 0\r\nx"), NATS_ERR_UNKNOWN_OP);
    /* Decided as soon as the byte after the payload is there. */
    ASSERT_EQ(refused(true, "PUB a 1\r\nxy"), NATS_ERR_UNKNOWN_OP);
    needs_more(true, "PUB a 1\r\nx\r");
    needs_more(true, "PUB a 1\r\nx");
}

TEST(unknown_ops)
{
    ASSERT_EQ(refused(true, "FOO\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "X"), NATS_ERR_UNKNOWN_OP); /* at once, no newline needed */
    ASSERT_EQ(refused(true, "PX"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, " PING\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "CONN\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "PUB\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "PUBX a 1\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "UNSUB\r\n"), NATS_ERR_UNKNOWN_OP);
    ASSERT_EQ(refused(true, "SUBSCRIBE a 1\r\n"), NATS_ERR_UNKNOWN_OP);
    needs_more(true, "");
    needs_more(true, "P");
    needs_more(true, "PI");
    needs_more(true, "CONNEC");
    needs_more(true, "PUB");
    needs_more(true, "UNSUB");
    needs_more(true, "PING");
    needs_more(true, "PING\r");
    needs_more(true, "PUB ");
    needs_more(true, "PUB a 1");
    needs_more(true, "PUB a 1\r");
    needs_more(true, "PUB a 1\r\n");
    needs_more(true, "CONNECT");
    needs_more(true, "CONNECT {}");
    needs_more(false, "+O");
    needs_more(false, "-ERR 'x'");
}

TEST(bad_sizes_and_args)
{
    /* nats-server closes on these without a word: NATS_ERR_PARSER. */
    ASSERT_EQ(refused(true, "PUB a -1\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a 1x\r\nx\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a x\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a +1\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a 1234567890\r\n"), NATS_ERR_PARSER); /* ten digits */
    ASSERT_EQ(refused(true, "PUB a 0000000001\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a 9223372036854775808\r\n"), NATS_ERR_PARSER); /* 2^63 */
    ASSERT_EQ(refused(true, "PUB a 18446744073709551617\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB \r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a b c 1\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "HPUB a 2\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "HPUB a 5 2\r\n"), NATS_ERR_PARSER); /* headers > total */
    ASSERT_EQ(refused(true, "HPUB a x 2\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "HPUB a r s 1 2\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "SUB a\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "SUB a b c d\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "UNSUB 1 2 3\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(false, "MSG a 1\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(false, "MSG a 1 r x 1\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(false, "HMSG a 1 3 2\r\n"), NATS_ERR_PARSER);
    ASSERT_EQ(refused(true, "PUB a b c d e f g h 1\r\n"), NATS_ERR_PARSER);

    /* Nine digits are a size: too big a one is the payload limit. */
    ASSERT_EQ(refused(true, "PUB a 999999999\r\n"), NATS_ERR_MAX_PAYLOAD);
    struct nats_cmd c = one(true, "PUB a 000000001\r\nx\r\n");
    ASSERT(SV_EQ(c.payload, "x"));
    c = one(true, "PUB a 0\r\n\r\n");
    ASSERT_EQ(c.payload.len, 0);

    /* An UNSUB maximum that is not a size, or 0, unsubscribes at once. */
    c = one(true, "UNSUB 1 x\r\n");
    ASSERT(!c.has_max);
    c = one(true, "UNSUB 1 0\r\n");
    ASSERT(!c.has_max);
    c = one(true, "UNSUB 1 -5\r\n");
    ASSERT(!c.has_max);
    c = one(true, "UNSUB 1 999999999\r\n");
    ASSERT(c.has_max);
    ASSERT_EQ(c.max_msgs, 999999999);
}

static char *repeat(char ch, size_t n, const char *prefix, const char *suffix)
{
    size_t p = strlen(prefix), s = strlen(suffix);
    char *b = malloc(p + n + s + 1);
    ASSERT(b);
    memcpy(b, prefix, p);
    memset(b + p, ch, n);
    memcpy(b + p + n, suffix, s + 1);
    return b;
}

TEST(control_line_limit)
{
    /* nats-server measures the argument: "PUB " and "\r\n" do not count.
     * Observed with max_control_line 64: 62 bytes of subject plus " 1"
     * passed, 63 failed, and 65 bytes without a newline failed at once. */
    char *at = repeat('a', 4094, "PUB ", " 1\r\nx\r\n");
    struct nats_cmd c = one(true, at);
    ASSERT_EQ(c.subject.len, 4094);
    free(at);
    char *past = repeat('a', 4095, "PUB ", " 1\r\nx\r\n");
    ASSERT_EQ(refused(true, past), NATS_ERR_CONTROL_LINE);
    free(past);

    /* Without its newline: need more up to the limit, an error past it. */
    char *partial = repeat('a', 4096, "SUB ", "");
    needs_more(true, partial);
    free(partial);
    partial = repeat('a', 4096, "SUB ", "\r");
    needs_more(true, partial);
    free(partial);
    partial = repeat('a', 4097, "SUB ", "");
    ASSERT_EQ(refused(true, partial), NATS_ERR_CONTROL_LINE);
    free(partial);

    /* Every operation, and the bytes we would otherwise buffer for ever:
     * blanks before the argument and whatever follows PING. */
    char *conn = repeat(' ', 4097, "CONNECT {", "}\r\n");
    ASSERT_EQ(refused(true, conn), NATS_ERR_CONTROL_LINE);
    free(conn);
    char *ws = repeat(' ', 4097, "PUB", "");
    ASSERT_EQ(refused(true, ws), NATS_ERR_CONTROL_LINE);
    free(ws);
    ws = repeat('\t', 4096, "PUB", "");
    needs_more(true, ws);
    free(ws);
    char *ping = repeat('x', 4097, "PING", "");
    ASSERT_EQ(refused(true, ping), NATS_ERR_CONTROL_LINE);
    free(ping);
    ping = repeat('x', 4096, "PING", "\r\n");
    ASSERT_EQ(one(true, ping).op, NATS_OP_PING);
    free(ping);

    /* A configured limit, and the default for 0. */
    struct nats_limits small = {10, 100};
    size_t used;
    enum nats_err e;
    const char *ok = "PUB abcdefgh 1\r\nx\r\n", *bad = "PUB abcdefghi 1\r\nx\r\n";
    ASSERT_EQ(nats_parse(&small, true, (const uint8_t *)ok, strlen(ok), &c, &used, &e), 1);
    ASSERT_EQ(nats_parse(&small, true, (const uint8_t *)bad, strlen(bad), &c, &used, &e), -1);
    ASSERT_EQ(e, NATS_ERR_CONTROL_LINE);
    struct nats_limits zero = {0, 0};
    ASSERT_EQ(nats_parse(&zero, true, (const uint8_t *)bad, strlen(bad), &c, &used, &e), 1);
    ASSERT_EQ(nats_parse(NULL, true, (const uint8_t *)bad, strlen(bad), &c, &used, &e), 1);
}

TEST(payload_limit)
{
    size_t n = 1u << 20;
    char head[64];
    snprintf(head, sizeof head, "PUB a %zu\r\n", n);
    size_t hl = strlen(head);
    char *buf = malloc(hl + n + 2);
    ASSERT(buf);
    memcpy(buf, head, hl);
    memset(buf + hl, 'p', n);
    memcpy(buf + hl + n, "\r\n", 2);
    struct nats_cmd c;
    size_t used;
    enum nats_err e;
    ASSERT_EQ(parse_n(true, buf, hl + n + 2, &c, &used, &e), 1);
    ASSERT_EQ(c.payload.len, n);
    ASSERT_EQ(used, hl + n + 2);
    free(buf);

    /* One byte more: refused on the control line, before any payload. */
    ASSERT_EQ(refused(true, "PUB a 1048577\r\n"), NATS_ERR_MAX_PAYLOAD);
    ASSERT_EQ(refused(true, "HPUB a 12 1048577\r\n"), NATS_ERR_MAX_PAYLOAD);
    ASSERT_EQ(refused(false, "MSG a 1 1048577\r\n"), NATS_ERR_MAX_PAYLOAD);
    needs_more(true, "PUB a 1048576\r\n");

    struct nats_limits small = {4096, 5};
    const char *five = "PUB a 5\r\n12345\r\n", *six = "PUB a 6\r\n";
    ASSERT_EQ(nats_parse(&small, true, (const uint8_t *)five, strlen(five), &c, &used, &e), 1);
    ASSERT_EQ(nats_parse(&small, true, (const uint8_t *)six, strlen(six), &c, &used, &e), -1);
    ASSERT_EQ(e, NATS_ERR_MAX_PAYLOAD);
}

/* A stream of commands parsed the way a connection does: from a buffer
 * that grows by `step` bytes whenever the parser wants more. */
struct seen {
    enum nats_op op;
    size_t used, sublen, paylen, hdrlen;
};

static int replay(bool server, const uint8_t *s, size_t n, size_t first, size_t step,
                  struct seen *out, size_t max, enum nats_err *err)
{
    size_t off = 0, avail = first < n ? first : n, count = 0;
    *err = NATS_ERR_NONE;
    for (int guard = 0; guard < 100000; guard++) {
        struct nats_cmd c;
        size_t used;
        int rc = nats_parse(&lim, server, s + off, avail - off, &c, &used, err);
        if (rc < 0)
            return (int)count;
        if (rc == 0) {
            ASSERT_EQ(used, 0);
            if (avail == n)
                return (int)count;
            avail = avail + step < n ? avail + step : n;
            continue;
        }
        ASSERT(used > 0 && used <= avail - off);
        ASSERT(count < max);
        out[count++] = (struct seen){c.op, used, c.subject.len, c.payload.len, c.headers.len};
        off += used;
    }
    TEST_FAIL_("no progress");
}

static void split_everywhere(bool server, const char *stream, enum nats_err want_err)
{
    size_t n = strlen(stream);
    struct seen ref[64], got[64];
    enum nats_err ref_err, err;
    int nref = replay(server, (const uint8_t *)stream, n, n, 1, ref, 64, &ref_err);
    ASSERT_EQ(ref_err, want_err);
    for (size_t k = 0; k <= n; k++) {
        for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
            int ngot = replay(server, (const uint8_t *)stream, n, k, step, got, 64, &err);
            if (ngot != nref || err != ref_err)
                TEST_FAIL_("split at %zu step %zu: %d commands (err %d), want %d (err %d)", k, step,
                           ngot, err, nref, ref_err);
            for (int i = 0; i < nref; i++) {
                ASSERT_EQ(got[i].op, ref[i].op);
                ASSERT_EQ(got[i].used, ref[i].used);
                ASSERT_EQ(got[i].sublen, ref[i].sublen);
                ASSERT_EQ(got[i].paylen, ref[i].paylen);
                ASSERT_EQ(got[i].hdrlen, ref[i].hdrlen);
            }
        }
    }
}

TEST(split_input)
{
    split_everywhere(true,
                     "CONNECT {\"verbose\":false,\"headers\":true}\r\nPING\r\nsub foo.* q 1\r\n"
                     "PUB foo.bar INBOX.1 5\r\nhello\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
                     "PUB\ta\t0\t\r\n\r\nUNSUB 1 10\r\nUNSUB 1 \r\nPONG\nPINGX\r\n",
                     NATS_ERR_NONE);
    split_everywhere(false,
                     "INFO {\"a\":1} \r\n+OK\r\nMSG a 1 r 3\r\nabc\r\nHMSG a 1 12 13\r\n"
                     "NATS/1.0\r\n\r\nx\r\n-ERR 'Stale Connection'\r\nPING\r\n",
                     NATS_ERR_NONE);
    /* Errors are found at the same command however the bytes arrive. */
    split_everywhere(true, "PING\r\nPUB a 1\r\nxx\r\nPING\r\n", NATS_ERR_UNKNOWN_OP);
    split_everywhere(true, "PING\r\nPUB a 2000000\r\n", NATS_ERR_MAX_PAYLOAD);
    split_everywhere(true, "PING\r\nPUB a 1x\r\n", NATS_ERR_PARSER);
    split_everywhere(true, "PING\r\nFOO\r\n", NATS_ERR_UNKNOWN_OP);
    split_everywhere(true, "SUB a 1\r\nHPUB a 5 2\r\n", NATS_ERR_PARSER);
}

TEST(page_boundary)
{
    struct page_end pe;
    page_end_open(&pe);
    const char *cmds[] = {"PUB a 5\r\nhello\r\n", "PING\r\n",
                          "SUB a 1\r\n",          "UNSUB 1 5\r\n",
                          "CONNECT {}\r\n",       "HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        size_t n = strlen(cmds[i]);
        /* Every prefix ends at the boundary: none reads past it. */
        for (size_t k = 0; k <= n; k++) {
            const uint8_t *p = page_end_put(&pe, cmds[i], k);
            struct nats_cmd c;
            size_t used;
            enum nats_err e;
            int rc = nats_parse(&lim, true, p, k, &c, &used, &e);
            ASSERT_EQ(rc, k == n ? 1 : 0);
        }
    }
    const char *bad[] = {"PUB a 1\r\nxy", "PUB a 1x\r\n", "X", "PING\r"};
    int want[] = {-1, -1, -1, 0};
    for (size_t i = 0; i < 4; i++) {
        const uint8_t *p = page_end_put(&pe, bad[i], strlen(bad[i]));
        struct nats_cmd c;
        size_t used;
        enum nats_err e;
        ASSERT_EQ(nats_parse(&lim, true, p, strlen(bad[i]), &c, &used, &e), want[i]);
    }
    page_end_close(&pe);
}

/* What nats-server 2.9.10 sent for each error we provoked (literally). */
TEST(err_texts_as_observed)
{
    struct {
        enum nats_err e;
        const char *line;
        bool closes;
    } seen[] = {
        {NATS_ERR_UNKNOWN_OP, "-ERR 'Unknown Protocol Operation'\r\n", true},
        {NATS_ERR_CONTROL_LINE, "-ERR 'maximum control line exceeded'\r\n", true},
        {NATS_ERR_MAX_PAYLOAD, "-ERR 'Maximum Payload Violation'\r\n", true},
        {NATS_ERR_INVALID_SUBJECT, "-ERR 'Invalid Subject'\r\n", false},
        {NATS_ERR_INVALID_PUB_SUBJECT, "-ERR 'Invalid Publish Subject'\r\n", false},
        {NATS_ERR_AUTH_VIOLATION, "-ERR 'Authorization Violation'\r\n", true},
        {NATS_ERR_AUTH_TIMEOUT, "-ERR 'Authentication Timeout'\r\n", true},
        {NATS_ERR_STALE, "-ERR 'Stale Connection'\r\n", true},
        {NATS_ERR_MAX_CONNECTIONS, "-ERR 'maximum connections exceeded'\r\n", true},
        {NATS_ERR_MAX_SUBSCRIPTIONS, "-ERR 'maximum subscriptions exceeded'\r\n", false},
        {NATS_ERR_BAD_PROTOCOL, "-ERR 'invalid client protocol'\r\n", true},
        {NATS_ERR_NO_RESPONDERS_NEEDS_HEADERS, "-ERR 'no responders requires headers support'\r\n",
         true},
    };
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        char buf[128];
        size_t n = nats_err_encode(buf, sizeof buf, nats_err_text(seen[i].e));
        ASSERT_EQ(n, strlen(seen[i].line));
        ASSERT_STR_EQ(buf, seen[i].line);
        ASSERT_EQ(nats_err_closes(seen[i].e), seen[i].closes);
        ASSERT(nats_err_sent(seen[i].e));
    }
    /* From the source (not provoked here: TLS, accounts, throttling). */
    ASSERT_STR_EQ(nats_err_text(NATS_ERR_SECURE_REQUIRED), "Secure Connection - TLS Required");
    ASSERT_STR_EQ(nats_err_text(NATS_ERR_AUTH_EXPIRED), "User Authentication Expired");
    ASSERT_STR_EQ(nats_err_text(NATS_ERR_MAX_ACCOUNT_CONNECTIONS),
                  "maximum account active connections exceeded");
    /* Closed without a word: a bad argument, HPUB without headers:true. */
    ASSERT(nats_err_closes(NATS_ERR_PARSER) && !nats_err_sent(NATS_ERR_PARSER));
    ASSERT(nats_err_closes(NATS_ERR_NO_HEADERS) && !nats_err_sent(NATS_ERR_NO_HEADERS));
    ASSERT(!nats_err_sent(NATS_ERR_NONE) && !nats_err_closes(NATS_ERR_NONE));
    /* Every code has a text (empty only where documented). */
    for (int e = 1; e < NATS_ERR_COUNT; e++)
        ASSERT(e == NATS_ERR_PERMISSION || strlen(nats_err_text((enum nats_err)e)) > 0);
    ASSERT_STR_EQ(nats_err_text((enum nats_err)999), "");
    ASSERT(!nats_err_closes((enum nats_err)999));
}

TEST(err_encode)
{
    char buf[64];
    ASSERT_EQ(nats_err_encode(buf, sizeof buf, "a\r\nPING"), 0);
    ASSERT_EQ(nats_err_encode(buf, sizeof buf, "a\n"), 0);
    const char *line = "-ERR 'Stale Connection'\r\n";
    size_t n = strlen(line);
    for (size_t cap = 0; cap <= n; cap++)
        ASSERT_EQ(nats_err_encode(buf, cap, "Stale Connection"), 0);
    ASSERT_EQ(nats_err_encode(buf, n + 1, "Stale Connection"), n);
}

TEST(err_perm)
{
    char buf[256];
    /* As observed (permissions denying secret.> and q.>). */
    size_t n = nats_err_perm(buf, sizeof buf, true, (const uint8_t *)"secret.x", 8, NULL, 0);
    ASSERT_STR_EQ(buf, "-ERR 'Permissions Violation for Publish to \"secret.x\"'\r\n");
    ASSERT_EQ(n, strlen(buf));
    ASSERT(nats_err_perm(buf, sizeof buf, false, (const uint8_t *)"secret.y", 8, NULL, 0) > 0);
    ASSERT_STR_EQ(buf, "-ERR 'Permissions Violation for Subscription to \"secret.y\"'\r\n");
    ASSERT(nats_err_perm(buf, sizeof buf, false, (const uint8_t *)"q.a", 3, (const uint8_t *)"grp",
                         3) > 0);
    ASSERT_STR_EQ(
        buf, "-ERR 'Permissions Violation for Subscription to \"q.a\" using queue \"grp\"'\r\n");
    ASSERT(nats_err_perm_reply(buf, sizeof buf, (const uint8_t *)"_INBOX.x", 8) > 0);
    ASSERT_STR_EQ(buf, "-ERR 'Permissions Violation for Publish with Reply of \"_INBOX.x\"'\r\n");

    /* A peer's bytes cannot break the line or the quoting (Go's %q). */
    const uint8_t evil[] = "a\r\nPING\r\n\"'\\\x01\x7f\xff\xc3\xa9";
    ASSERT(nats_err_perm(buf, sizeof buf, true, evil, sizeof evil - 1, NULL, 0) > 0);
    ASSERT_STR_EQ(buf, "-ERR 'Permissions Violation for Publish to "
                       "\"a\\r\\nPING\\r\\n\\\"'\\\\\\x01\\x7f\\xff\xc3\xa9\"'\r\n");
    ASSERT(strchr(buf, '\n') == buf + strlen(buf) - 1);

    /* Too small a buffer, at every size. */
    n = nats_err_perm(buf, sizeof buf, true, (const uint8_t *)"x", 1, NULL, 0);
    for (size_t cap = 0; cap <= n; cap++)
        ASSERT_EQ(nats_err_perm(buf, cap, true, (const uint8_t *)"x", 1, NULL, 0), 0);
}

TEST(msg_head)
{
    char buf[128];
    size_t n = nats_msg_head(buf, sizeof buf, "foo.bar", 7, "9", 1, NULL, 0, 0, 5);
    ASSERT_STR_EQ(buf, "MSG foo.bar 9 5\r\n");
    ASSERT_EQ(n, strlen(buf));
    ASSERT(nats_msg_head(buf, sizeof buf, "foo", 3, "9", 1, "INBOX.1", 7, 0, 0) > 0);
    ASSERT_STR_EQ(buf, "MSG foo 9 INBOX.1 0\r\n");
    ASSERT(nats_msg_head(buf, sizeof buf, "foo", 3, "9", 1, NULL, 0, 12, 2) > 0);
    ASSERT_STR_EQ(buf, "HMSG foo 9 12 14\r\n");
    ASSERT(nats_msg_head(buf, sizeof buf, "foo", 3, "9", 1, "r", 1, 12, 0) > 0);
    ASSERT_STR_EQ(buf, "HMSG foo 9 r 12 12\r\n");
    n = strlen("HMSG foo 9 r 12 12\r\n");
    for (size_t cap = 0; cap <= n; cap++)
        ASSERT_EQ(nats_msg_head(buf, cap, "foo", 3, "9", 1, "r", 1, 12, 0), 0);

    /* What we write, our client side reads back. */
    char msg[128];
    n = nats_msg_head(msg, sizeof msg, "a.b", 3, "42", 2, "r.1", 3, 12, 3);
    memcpy(msg + n, "NATS/1.0\r\n\r\nxyz\r\n", 17);
    struct nats_cmd c;
    size_t used;
    enum nats_err e;
    ASSERT_EQ(parse_n(false, msg, n + 17, &c, &used, &e), 1);
    ASSERT_EQ(c.op, NATS_OP_HMSG);
    ASSERT(SV_EQ(c.subject, "a.b") && SV_EQ(c.sid, "42") && SV_EQ(c.reply, "r.1"));
    ASSERT(SV_EQ(c.payload, "xyz"));
    ASSERT_EQ(used, n + 17);
}

int main(void)
{
    RUN(client_ops);
    RUN(server_ops_client_side);
    RUN(case_tabs_and_spaces);
    RUN(line_endings);
    RUN(unknown_ops);
    RUN(bad_sizes_and_args);
    RUN(control_line_limit);
    RUN(payload_limit);
    RUN(split_input);
    RUN(page_boundary);
    RUN(err_texts_as_observed);
    RUN(err_encode);
    RUN(err_perm);
    RUN(msg_head);
    TEST_DONE();
}
