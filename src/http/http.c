/* The HTTP/1.1 request parser and response writer (see http.h).
 *
 * Strict where leniency lets two parsers disagree about where a request
 * ends (RFC 9112 section 11.2, request smuggling): every line ends with
 * CRLF (a bare LF or a bare CR is refused with 400, never taken as a line
 * end), obs-fold is refused, whitespace before a header's colon is
 * refused, header names are tokens, values hold no control bytes, a
 * Transfer-Encoding is never guessed at, and Content-Length values that
 * disagree are refused. Empty lines before the request line are skipped
 * (RFC 9112 section 2.2), counted in max_head. A missing Host is accepted:
 * nothing here routes by host. */
#include "http/http.h"

#include <stdio.h>
#include <string.h>

void http_limits_defaults(struct http_limits *l)
{
    l->max_head = 8192;
    l->max_headers = 32;
    l->max_body = 0;
}

/* Byte classes, one table lookup per byte in the scanning loops. Built
 * from the grammar's own definitions at compile time. */
#define C_TCHAR 1 /* RFC 9110 section 5.6.2 */
#define C_FIELD 2 /* a field value byte (5.5): VCHAR, obs-text, SP, HTAB */
#define C_VCHAR 4 /* a request-target byte: visible ASCII */
#define IS_ALNUM(c)                                                                                \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9'))
#define IS_TSYM(c)                                                                                 \
    ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||           \
     (c) == '`' || (c) == '|' || (c) == '~')
#define CLASS(c)                                                                                   \
    ((IS_ALNUM(c) || IS_TSYM(c) ? C_TCHAR : 0) |                                                   \
     ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f) ? C_FIELD : 0) |                                 \
     ((c) > 0x20 && (c) < 0x7f ? C_VCHAR : 0))
#define ROW(b)                                                                                     \
    CLASS(b), CLASS(b + 1), CLASS(b + 2), CLASS(b + 3), CLASS(b + 4), CLASS(b + 5), CLASS(b + 6),  \
        CLASS(b + 7), CLASS(b + 8), CLASS(b + 9), CLASS(b + 10), CLASS(b + 11), CLASS(b + 12),     \
        CLASS(b + 13), CLASS(b + 14), CLASS(b + 15)
static const uint8_t byte_class[256] = {
    ROW(0x00), ROW(0x10), ROW(0x20), ROW(0x30), ROW(0x40), ROW(0x50), ROW(0x60), ROW(0x70),
    ROW(0x80), ROW(0x90), ROW(0xa0), ROW(0xb0), ROW(0xc0), ROW(0xd0), ROW(0xe0), ROW(0xf0),
};

static bool is_tchar(uint8_t c)
{
    return byte_class[c] & C_TCHAR;
}

static bool is_field_byte(uint8_t c)
{
    return byte_class[c] & C_FIELD;
}

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static bool ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
            return false;
    return true;
}

/* Where the scan is, and what running out of bytes means there. */
struct scan {
    const uint8_t *p;
    size_t n;    /* the bytes that may hold the head: min(len, max_head) */
    bool capped; /* n is max_head: more bytes cannot complete the head */
    int *status;
    const char **why;
};

static enum http_parse_status refuse(struct scan *s, int status, const char *why)
{
    *s->status = status;
    *s->why = why;
    return HTTP_PARSE_ERROR;
}

/* The head did not end within what we have: wait, or refuse it as too
 * large when more bytes could not help. */
static enum http_parse_status run_out(struct scan *s, int status, const char *why)
{
    return s->capped ? refuse(s, status, why) : HTTP_PARSE_AGAIN;
}

/* Where the run of bytes of class `cls` from i ends. */
static size_t scan_class(const struct scan *s, size_t i, uint8_t cls)
{
    const uint8_t *p = s->p;
    size_t n = s->n;
    while (i < n && (byte_class[p[i]] & cls))
        i++;
    return i;
}

/* Expects CRLF at *i. */
static enum http_parse_status crlf(struct scan *s, size_t *i, int too_long, const char *why)
{
    if (*i >= s->n)
        return run_out(s, too_long, why);
    if (s->p[*i] == '\n')
        return refuse(s, 400, "bare LF line ending");
    if (s->p[*i] != '\r')
        return refuse(s, 400, "malformed request line");
    if (*i + 1 >= s->n)
        return run_out(s, too_long, why);
    if (s->p[*i + 1] != '\n')
        return refuse(s, 400, "bare CR in request");
    *i += 2;
    return HTTP_PARSE_DONE;
}

/* "HTTP/" DIGIT "." DIGIT (RFC 9112 section 2.3), case-sensitive. */
static enum http_parse_status version(struct scan *s, size_t *i, struct http_request *rq)
{
    static const char want[] = "HTTP/1.1";
    for (size_t k = 0; k < 8; k++) {
        if (*i + k >= s->n)
            return run_out(s, 431, "request line too long");
        uint8_t c = s->p[*i + k];
        bool ok = k == 5 || k == 7 ? (c >= '0' && c <= '9') : c == (uint8_t)want[k];
        if (!ok)
            return refuse(s, 400, "malformed HTTP version");
    }
    if (s->p[*i + 5] != '1')
        return refuse(s, 505, "only HTTP/1.x is served");
    /* A later 1.x speaks at least 1.1 (RFC 9110 section 6.2). */
    rq->minor = s->p[*i + 7] == '0' ? 0 : 1;
    *i += 8;
    return crlf(s, i, 431, "request line too long");
}

static enum http_parse_status request_line(struct scan *s, size_t *i, struct http_request *rq)
{
    /* RFC 9112 section 2.2: empty lines before the request line are skipped. */
    while (*i + 1 < s->n && s->p[*i] == '\r' && s->p[*i + 1] == '\n')
        *i += 2;
    if (*i + 1 == s->n && s->p[*i] == '\r')
        return run_out(s, 431, "request line too long");
    size_t start = *i;
    *i = scan_class(s, *i, C_TCHAR);
    if (*i >= s->n)
        return run_out(s, 431, "request line too long");
    if (s->p[*i] != ' ' || *i == start)
        return refuse(s, 400, "malformed method");
    rq->method = (struct http_slice){(const char *)s->p + start, *i - start};
    start = ++*i;
    *i = scan_class(s, *i, C_VCHAR);
    if (*i >= s->n)
        return run_out(s, 414, "request target too long");
    if (s->p[*i] != ' ' || *i == start)
        return refuse(s, 400, "malformed request target");
    rq->target = (struct http_slice){(const char *)s->p + start, *i - start};
    ++*i;
    return version(s, i, rq);
}

/* One field line at *i, or the blank line ending the head (*end set). */
static enum http_parse_status field_line(struct scan *s, size_t *i, struct http_request *rq,
                                         unsigned max_headers, bool *end)
{
    static const char *const big = "request head too large";
    if (*i >= s->n)
        return run_out(s, 431, big);
    uint8_t c = s->p[*i];
    if (c == '\r' || c == '\n') {
        *end = true;
        return crlf(s, i, 431, big);
    }
    if (is_ows(c)) /* RFC 9112 section 5.2: obs-fold is refused */
        return refuse(s, 400, "folded header line");
    if (rq->nheaders >= max_headers)
        return refuse(s, 431, "too many header fields");
    size_t start = *i;
    *i = scan_class(s, *i, C_TCHAR);
    if (*i >= s->n)
        return run_out(s, 431, big);
    /* RFC 9112 section 5.1: no whitespace before the colon. */
    if (s->p[*i] != ':' || *i == start)
        return refuse(s, 400, "malformed header name");
    struct http_header *h = &rq->headers[rq->nheaders];
    h->name = (struct http_slice){(const char *)s->p + start, *i - start};
    ++*i;
    while (*i < s->n && is_ows(s->p[*i]))
        (*i)++;
    start = *i;
    *i = scan_class(s, *i, C_FIELD);
    if (*i < s->n && s->p[*i] != '\r' && s->p[*i] != '\n')
        return refuse(s, 400, "control byte in a header value");
    size_t stop = *i;
    while (stop > start && is_ows(s->p[stop - 1]))
        stop--;
    h->value = (struct http_slice){(const char *)s->p + start, stop - start};
    enum http_parse_status st = crlf(s, i, 431, big);
    if (st == HTTP_PARSE_DONE)
        rq->nheaders++;
    return st;
}

/* path and query from the target: origin-form, absolute-form (RFC 9112
 * section 3.2.2: a server must accept it) or "*". */
static bool split_target(struct http_request *rq)
{
    const char *t = rq->target.p;
    size_t n = rq->target.len, i = 0;
    if (n == 1 && t[0] == '*') {
        rq->path = rq->target;
        return true;
    }
    if (t[0] != '/') {
        size_t skip = n >= 7 && ieq(t, 7, "http://", 7)    ? 7
                      : n >= 8 && ieq(t, 8, "https://", 8) ? 8
                                                           : 0;
        if (!skip)
            return false;
        i = skip;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        if (i == skip)
            return false; /* no authority */
    }
    size_t q = i;
    while (q < n && t[q] != '?')
        q++;
    if (q == i)
        rq->path = (struct http_slice){"/", 1};
    else
        rq->path = (struct http_slice){t + i, q - i};
    if (q < n)
        rq->query = (struct http_slice){t + q + 1, n - q - 1};
    return true;
}

/* Every Content-Length field, each a list of equal values (RFC 9112
 * section 6.3), must agree. Returns 0, or the status to refuse with. */
static int content_length(const struct http_request *rq, bool *have, uint64_t *out)
{
    *have = false;
    for (unsigned k = 0; k < rq->nheaders; k++) {
        const struct http_header *h = &rq->headers[k];
        if (!ieq(h->name.p, h->name.len, "content-length", 14))
            continue;
        const char *v = h->value.p;
        size_t n = h->value.len, i = 0;
        do {
            while (i < n && is_ows((uint8_t)v[i]))
                i++;
            size_t start = i;
            uint64_t x = 0;
            for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
                if (x > (UINT64_MAX - 9) / 10)
                    return 400; /* overflow */
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            if (i == start)
                return 400;
            while (i < n && is_ows((uint8_t)v[i]))
                i++;
            if (i < n && v[i] != ',')
                return 400;
            if (*have && x != *out)
                return 400;
            *have = true;
            *out = x;
        } while (i++ < n);
    }
    return 0;
}

/* What the head says beyond its syntax: target form, body framing,
 * persistence. */
static enum http_parse_status semantics(struct scan *s, struct http_request *rq, size_t max_body)
{
    if (!split_target(rq))
        return refuse(s, 400, "malformed request target");
    unsigned hosts = 0;
    bool te = false;
    for (unsigned k = 0; k < rq->nheaders; k++) {
        const struct http_slice *n = &rq->headers[k].name;
        hosts += ieq(n->p, n->len, "host", 4);
        te |= ieq(n->p, n->len, "transfer-encoding", 17);
    }
    /* RFC 9112 section 3.2: more than one Host is refused. */
    if (hosts > 1)
        return refuse(s, 400, "more than one Host header");
    bool have = false;
    uint64_t cl = 0;
    if (content_length(rq, &have, &cl))
        return refuse(s, 400, "malformed or conflicting Content-Length");
    /* RFC 9112 section 6.1: both together may be smuggling. */
    if (te && have)
        return refuse(s, 400, "both Transfer-Encoding and Content-Length");
    if (te)
        return refuse(s, 501, "Transfer-Encoding is not supported");
    if (cl > max_body)
        return refuse(s, 413, "request body too large");
    rq->body_len = (size_t)cl;
    if (rq->minor == 0)
        rq->keep_alive = http_header_has_token(rq, "connection", "keep-alive") &&
                         !http_header_has_token(rq, "connection", "close");
    else
        rq->keep_alive = !http_header_has_token(rq, "connection", "close");
    return HTTP_PARSE_DONE;
}

/* see http.h */
enum http_parse_status http_parse(const uint8_t *data, size_t len, const struct http_limits *lim,
                                  struct http_request *rq, int *status, const char **why)
{
    struct http_limits def;
    if (!lim) {
        http_limits_defaults(&def);
        lim = &def;
    }
    unsigned max_headers =
        lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers : HTTP_MAX_HEADERS;
    memset(rq, 0, sizeof(*rq));
    *status = 0;
    *why = NULL;
    struct scan s = {
        .p = data,
        .n = len < lim->max_head ? len : lim->max_head,
        .capped = len >= lim->max_head,
        .status = status,
        .why = why,
    };
    size_t i = 0;
    enum http_parse_status st = request_line(&s, &i, rq);
    bool end = false;
    while (st == HTTP_PARSE_DONE && !end)
        st = field_line(&s, &i, rq, max_headers, &end);
    if (st != HTTP_PARSE_DONE)
        return st;
    st = semantics(&s, rq, lim->max_body);
    if (st != HTTP_PARSE_DONE)
        return st;
    if (len - i < rq->body_len)
        return HTTP_PARSE_AGAIN;
    rq->body = data + i;
    rq->consumed = i + rq->body_len;
    return HTTP_PARSE_DONE;
}

/* see http.h */
const struct http_header *http_header(const struct http_request *rq, const char *name)
{
    size_t n = strlen(name);
    for (unsigned k = 0; k < rq->nheaders; k++)
        if (ieq(rq->headers[k].name.p, rq->headers[k].name.len, name, n))
            return &rq->headers[k];
    return NULL;
}

/* see http.h */
bool http_header_has_token(const struct http_request *rq, const char *name, const char *token)
{
    size_t nlen = strlen(name), tlen = strlen(token);
    for (unsigned k = 0; k < rq->nheaders; k++) {
        const struct http_header *h = &rq->headers[k];
        if (!ieq(h->name.p, h->name.len, name, nlen))
            continue;
        const char *v = h->value.p;
        size_t n = h->value.len, i = 0;
        while (i < n) {
            while (i < n && (is_ows((uint8_t)v[i]) || v[i] == ','))
                i++;
            size_t start = i;
            while (i < n && v[i] != ',')
                i++;
            size_t stop = i;
            while (stop > start && is_ows((uint8_t)v[stop - 1]))
                stop--;
            if (stop > start && ieq(v + start, stop - start, token, tlen))
                return true;
        }
    }
    return false;
}

/* see http.h */
bool http_slice_eq(struct http_slice s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && (n == 0 || memcmp(s.p, str, n) == 0);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)lower((uint8_t)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The byte at in[*i], decoding %XX (and '+' as a space when plus is set);
 * -1 when malformed or a NUL. */
static int decode_byte(const char *in, size_t n, size_t *i, bool plus)
{
    char c = in[*i];
    if (c == '%') {
        if (n - *i < 3)
            return -1;
        int hi = hexval(in[*i + 1]), lo = hexval(in[*i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        *i += 3;
        int v = hi * 16 + lo;
        return v ? v : -1;
    }
    (*i)++;
    if (c == '\0')
        return -1;
    return plus && c == '+' ? ' ' : (uint8_t)c;
}

static bool decode(const char *in, size_t n, char *out, size_t cap, bool plus)
{
    if (cap == 0)
        return false;
    size_t o = 0, i = 0;
    while (i < n) {
        int c = decode_byte(in, n, &i, plus);
        if (c < 0 || o + 1 >= cap)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* see http.h */
bool http_percent_decode(struct http_slice in, char *out, size_t cap)
{
    return decode(in.p, in.len, out, cap, false);
}

/* Whether the encoded name in[0..n) decodes to exactly key. */
static bool name_is(const char *in, size_t n, const char *key)
{
    size_t i = 0, k = 0;
    while (i < n) {
        int c = decode_byte(in, n, &i, true);
        if (c < 0 || key[k] == '\0' || (uint8_t)key[k] != c)
            return false;
        k++;
    }
    return key[k] == '\0';
}

/* see http.h */
bool http_form_get(struct http_slice form, const char *key, char *out, size_t cap)
{
    const char *f = form.p;
    size_t n = form.len, i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && f[i] != '&')
            i++;
        size_t eq = start;
        while (eq < i && f[eq] != '=')
            eq++;
        if (eq > start && name_is(f + start, eq - start, key)) {
            size_t vstart = eq < i ? eq + 1 : i;
            return decode(f + vstart, i - vstart, out, cap, true);
        }
        i++;
    }
    return false;
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

/* see http.h */
const char *http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* Header text we write must not end a line early or carry control bytes:
 * a value that reached here from a peer or a config file cannot inject a
 * header or a second response. */
static bool safe_value(const char *s)
{
    for (; *s; s++)
        if (!is_field_byte((uint8_t)*s))
            return false;
    return true;
}

/* Each line "Name: value\r\n", nothing else. */
static bool safe_extra(const char *s)
{
    while (*s) {
        const char *colon = s;
        while (is_tchar((uint8_t)*colon))
            colon++;
        if (colon == s || *colon != ':')
            return false;
        const char *e = colon + 1;
        while (*e && is_field_byte((uint8_t)*e))
            e++;
        if (e[0] != '\r' || e[1] != '\n')
            return false;
        s = e + 2;
    }
    return true;
}

/* RFC 9110 sections 6.4.1 and 8.6: these carry no content and no
 * Content-Length. */
static bool bodiless(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static struct ward_result put_str(struct buf *out, const char *s)
{
    return buf_append(out, s, strlen(s));
}

static struct ward_result write_head(struct buf *out, int status, const char *content_type,
                                     size_t content_length, const char *extra, bool keep_alive)
{
    char line[96];
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http_reason(status));
    GUARD(put_str(out, line));
    if (content_type) {
        GUARD(put_str(out, "Content-Type: "));
        GUARD(put_str(out, content_type));
        GUARD(put_str(out, "\r\n"));
    }
    if (!bodiless(status)) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", content_length);
        GUARD(put_str(out, line));
    }
    if (!keep_alive)
        GUARD(put_str(out, "Connection: close\r\n"));
    if (extra)
        GUARD(put_str(out, extra));
    return put_str(out, "\r\n");
}

/* see http.h; on failure out holds what it held before. */
struct ward_result http_response_head(struct buf *out, int status, const char *content_type,
                                      size_t content_length, const char *extra, bool keep_alive)
{
    ENSURE(status >= 100 && status <= 599, WARD_ERR_INVALID);
    ENSURE(!bodiless(status) || content_length == 0, WARD_ERR_INVALID);
    ENSURE(!content_type || safe_value(content_type), WARD_ERR_INVALID);
    ENSURE(!extra || safe_extra(extra), WARD_ERR_INVALID);
    size_t before = buf_len(out);
    struct ward_result r = write_head(out, status, content_type, content_length, extra, keep_alive);
    if (!ward_ok(r))
        out->wpos = out->rpos + before; /* compaction keeps the bytes, moves rpos */
    return r;
}

/* see http.h */
struct ward_result http_response_text(struct buf *out, int status, const char *why, bool keep_alive)
{
    ENSURE(!bodiless(status), WARD_ERR_INVALID);
    const char *body = why ? why : http_reason(status);
    size_t n = strlen(body);
    size_t before = buf_len(out);
    struct ward_result r =
        http_response_head(out, status, "text/plain; charset=utf-8", n + 1, NULL, keep_alive);
    if (ward_ok(r))
        r = buf_append(out, body, n);
    if (ward_ok(r))
        r = buf_append(out, "\n", 1);
    if (!ward_ok(r))
        out->wpos = out->rpos + before;
    return r;
}
