/* libFuzzer target for the NATS codec (src/nats/).
 *
 * The first input byte picks the mode: which side parses, tiny limits or
 * the defaults, and whether the rest is a command stream or goes straight to
 * the CONNECT JSON reader, the header walker or the subject mapping. A stream
 * is parsed command by command as a connection's buffer is, and every command
 * is checked: the parser answers the same for the command's exact bytes and
 * "need more" for one byte fewer; its views lie inside the input; what it
 * carries (JSON, headers, subjects) goes through the other readers, and the
 * lines we write from it (MSG heads, -ERR) read back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nats/nats.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void in_buf(struct nats_str s, const uint8_t *p, size_t n)
{
    check(s.len == 0 || (s.p >= p && s.p + s.len <= p + n));
}

static void connect_json(const uint8_t *p, size_t n)
{
    struct nats_connect c;
    char err[64];
    if (nats_connect_parse(p, n, &c, err, sizeof err) == 0) {
        /* Every string is terminated inside its field. */
        check(memchr(c.name, 0, sizeof c.name) && memchr(c.jwt, 0, sizeof c.jwt));
        check(memchr(c.pass, 0, sizeof c.pass) && memchr(c.user, 0, sizeof c.user));
    } else {
        check(memchr(err, 0, sizeof err) && err[0] != '\0');
    }
}

static void headers(const uint8_t *p, size_t n)
{
    struct nats_hdr_iter it;
    struct nats_str names[64], values[64];
    size_t count = 0;
    bool valid = nats_hdr_valid(p, n);
    int status = nats_hdr_status(p, n);
    check(status >= 0 && status <= 999);
    nats_hdr_iter_init(&it, p, n);
    while (nats_hdr_next(&it, &names[count], &values[count])) {
        in_buf(names[count], p, n);
        in_buf(values[count], p, n);
        check(names[count].len > 0);
        if (++count == 64)
            break;
    }
    if (!valid || count == 64)
        return;
    /* A valid block rebuilt from its pairs is valid and walks the same. */
    static uint8_t out[1 << 16];
    size_t m = nats_hdr_build(out, sizeof out, status, NULL, names, values, count);
    if (m == 0)
        return; /* a value with edge blanks trimmed is fine; too big is too */
    check(nats_hdr_valid(out, m) && nats_hdr_status(out, m) == status);
}

/* A subject that maps comes back unchanged, in both directions. */
static void mapping(const uint8_t *p, size_t n, bool filter)
{
    static char a[1 << 17], b[1 << 17];
    int m = nats_to_mqtt(p, n, filter, a, sizeof a);
    if (m >= 0) {
        int k = mqtt_to_nats((const uint8_t *)a, (size_t)m, filter, b, sizeof b);
        check(k == (int)n && memcmp(b, p, n) == 0);
    }
    m = mqtt_to_nats(p, n, filter, a, sizeof a);
    if (m >= 0) {
        check(nats_subject_valid((const uint8_t *)a, (size_t)m, filter));
        int k = nats_to_mqtt((const uint8_t *)a, (size_t)m, filter, b, sizeof b);
        check(k == (int)n && memcmp(b, p, n) == 0);
    }
    if (nats_subject_valid(p, n, false))
        check(nats_subject_match(p, n, p, n));
}

/* The lines we write about a command read back as what they say. */
static void lines(const struct nats_cmd *c)
{
    static char buf[1 << 14];
    struct nats_str sid = c->sid.len ? c->sid : (struct nats_str){(const uint8_t *)"1", 1};
    if (!nats_subject_valid(c->subject.p, c->subject.len, false))
        return;
    size_t n = nats_err_perm(buf, sizeof buf, true, c->subject.p, c->subject.len, NULL, 0);
    check(n > 0 && memchr(buf, '\n', n) == buf + n - 1);
    n = nats_msg_head(buf, sizeof buf - 4, (const char *)c->subject.p, c->subject.len,
                      (const char *)sid.p, sid.len, NULL, 0, 0, 2);
    if (n == 0)
        return;
    memcpy(buf + n, "ab\r\n", 4);
    struct nats_cmd back;
    size_t used;
    enum nats_err e;
    struct nats_limits big = {1u << 16, 1u << 20};
    check(nats_parse(&big, false, (const uint8_t *)buf, n + 4, &back, &used, &e) == 1);
    check(used == n + 4 && back.op == NATS_OP_MSG && back.subject.len == c->subject.len);
}

static void command(const struct nats_cmd *c, const uint8_t *p, size_t n)
{
    in_buf(c->subject, p, n);
    in_buf(c->reply, p, n);
    in_buf(c->queue, p, n);
    in_buf(c->sid, p, n);
    in_buf(c->headers, p, n);
    in_buf(c->payload, p, n);
    in_buf(c->arg, p, n);
    switch (c->op) {
    case NATS_OP_CONNECT:
    case NATS_OP_INFO:
        connect_json(c->arg.p, c->arg.len);
        break;
    case NATS_OP_HPUB:
    case NATS_OP_HMSG:
        headers(c->headers.p, c->headers.len);
        /* fall through */
    case NATS_OP_PUB:
    case NATS_OP_MSG:
    case NATS_OP_SUB:
        mapping(c->subject.p, c->subject.len, c->op == NATS_OP_SUB);
        lines(c);
        break;
    default:
        break;
    }
}

static void stream(const struct nats_limits *lim, bool server, const uint8_t *p, size_t left)
{
    for (int guard = 0; guard < 100000 && left > 0; guard++) {
        struct nats_cmd c, again;
        size_t used = 0, used2 = 0;
        enum nats_err err = NATS_ERR_NONE, err2;
        int rc = nats_parse(lim, server, p, left, &c, &used, &err);
        if (rc == -1) {
            check(err != NATS_ERR_NONE && used == 0);
            /* A prefix is either still incomplete or the same error. */
            int rc2 = nats_parse(lim, server, p, left / 2, &again, &used2, &err2);
            check(rc2 == 0 || (rc2 == -1 && err2 == err));
            return;
        }
        if (rc == 0) {
            check(used == 0);
            return;
        }
        check(rc == 1 && used > 0 && used <= left && err == NATS_ERR_NONE);
        /* The command's own bytes suffice; one fewer is "need more". */
        check(nats_parse(lim, server, p, used, &again, &used2, &err2) == 1 && used2 == used);
        check(nats_parse(lim, server, p, used - 1, &again, &used2, &err2) == 0);
        command(&c, p, used);
        p += used;
        left -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    struct nats_limits tiny = {32, 64};
    switch ((mode >> 2) & 3) {
    case 0:
        stream((mode & 2) ? &tiny : NULL, (mode & 1) != 0, p, n);
        break;
    case 1:
        connect_json(p, n);
        break;
    case 2:
        headers(p, n);
        break;
    default:
        mapping(p, n, (mode & 1) != 0);
        break;
    }
    return 0;
}
