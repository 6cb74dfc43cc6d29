/* libFuzzer target for the HTTP/1.1 request parser and the WebSocket
 * upgrade check (src/http/http.c, ws_upgrade.c).
 *
 * The first byte picks the limits (two bits each for max_head, max_headers
 * and max_body, so small limits are hit often); the rest is what a peer
 * sent, copied into a block of exactly its length so ASan catches a read
 * past it. Checks: a refusal has a status of the documented set and a
 * reason; "need more" only while within the limits; a whole request lies
 * within the input, its views too, and parses the same from its own bytes
 * alone, one byte short of it being "need more"; a refusal on a prefix
 * stays a refusal on the whole; pipelined requests follow each other by
 * `consumed`. What parses is run through the helpers and the upgrade check,
 * and their answers are written. */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static const size_t heads[] = {8192, 64, 256, 1024};
static const unsigned counts[] = {32, 0, 3, 1000};
static const size_t bodies[] = {0, 16, 1024, 1 << 20};

static void check_slice(struct http_slice s, const uint8_t *p, size_t n)
{
    if (s.len == 0)
        return;
    /* "/" for an absolute-form target without a path is a constant. */
    if (s.len == 1 && s.p[0] == '/' && ((const uint8_t *)s.p < p || (const uint8_t *)s.p >= p + n))
        return;
    if ((const uint8_t *)s.p < p || (const uint8_t *)s.p + s.len > p + n)
        abort();
}

static void exercise(const struct http_request *rq)
{
    char out[64];
    (void)http_form_get(rq->query, "_page", out, sizeof(out));
    (void)http_percent_decode(rq->path, out, sizeof(out));
    (void)http_header(rq, "host");
    (void)http_header_has_token(rq, "connection", "upgrade");
    static const char *const protos[] = {"mqtt", "mqttv3.1", "mqttv3.1.1", "mqttv5"};
    static const char *const origins[] = {"https://console.example"};
    struct ws_upgrade_rules r = {
        .path = "/mqtt",
        .protocols = protos,
        .nprotocols = 4,
        .protocol_required = true,
        .origins = origins,
        .norigins = 1,
    };
    struct ws_upgrade u;
    bool ok = ws_upgrade_check(rq, &r, &u);
    if (ok != (u.status == 101) || (!ok && !u.why) || strlen(u.detail) >= sizeof(u.detail))
        abort();
    if (ok && (!u.protocol || strlen(u.accept) != 28))
        abort();
    struct buf b;
    buf_init(&b, 0);
    if (!ward_ok(ws_upgrade_response(&b, &u)))
        abort();
    buf_free(&b);
}

static bool status_known(int st)
{
    return st == 400 || st == 413 || st == 414 || st == 431 || st == 501 || st == 505;
}

/* One parse at p[0..n) with its checks; returns the status. */
static enum http_parse_status one(const uint8_t *p, size_t n, const struct http_limits *l,
                                  struct http_request *rq)
{
    int st;
    const char *why;
    enum http_parse_status r = http_parse(p, n, l, rq, &st, &why);
    switch (r) {
    case HTTP_PARSE_ERROR:
        if (!status_known(st) || !why || !why[0])
            abort();
        break;
    case HTTP_PARSE_AGAIN:
        if (n >= l->max_head + l->max_body)
            abort();
        break;
    case HTTP_PARSE_DONE:
        if (rq->consumed == 0 || rq->consumed > n || rq->body_len > l->max_body ||
            rq->nheaders > l->max_headers || rq->nheaders > HTTP_MAX_HEADERS ||
            (rq->minor != 0 && rq->minor != 1) || rq->method.len == 0 || rq->target.len == 0)
            abort();
        check_slice(rq->method, p, n);
        check_slice(rq->target, p, n);
        check_slice(rq->path, p, n);
        check_slice(rq->query, p, n);
        for (unsigned k = 0; k < rq->nheaders; k++) {
            check_slice(rq->headers[k].name, p, n);
            check_slice(rq->headers[k].value, p, n);
            if (rq->headers[k].name.len == 0)
                abort();
        }
        if (rq->body_len && (rq->body < p || rq->body + rq->body_len != p + rq->consumed))
            abort();
        break;
    default:
        abort();
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct http_limits l = {
        .max_head = heads[data[0] & 3],
        .max_headers = counts[(data[0] >> 2) & 3],
        .max_body = bodies[(data[0] >> 4) & 3],
    };
    size--;
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, size);
    static struct http_request rq, again;
    enum http_parse_status r = one(p, size, &l, &rq);
    if (r == HTTP_PARSE_DONE) {
        size_t c = rq.consumed;
        exercise(&rq);
        /* Its own bytes alone: the same request; one short: need more. */
        uint8_t *q = malloc(c);
        if (!q)
            abort();
        memcpy(q, p, c);
        if (one(q, c, &l, &again) != HTTP_PARSE_DONE || again.consumed != c ||
            again.nheaders != rq.nheaders || again.body_len != rq.body_len)
            abort();
        if (one(q, c - 1, &l, &again) != HTTP_PARSE_AGAIN)
            abort();
        free(q);
        /* Then the pipelined ones after it. */
        size_t off = c;
        for (int i = 0; i < 8 && off < size; i++) {
            if (one(p + off, size - off, &l, &again) != HTTP_PARSE_DONE)
                break;
            exercise(&again);
            off += again.consumed;
        }
    }
    /* Half of the input: a refusal there stays one, need more is never
     * followed by "need more" beyond the limits (checked in one()). */
    enum http_parse_status h = one(p, size / 2, &l, &again);
    if (h == HTTP_PARSE_ERROR && r != HTTP_PARSE_ERROR)
        abort();
    if (h == HTTP_PARSE_DONE && (r != HTTP_PARSE_DONE || again.consumed != rq.consumed))
        abort();
    free(p);
    return 0;
}
