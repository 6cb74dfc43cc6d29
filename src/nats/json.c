/* The JSON of CONNECT (read) and INFO (written).
 *
 * Reading follows what nats-server's encoding/json does with a CONNECT:
 * keys match case-insensitively, the last duplicate wins, null leaves a field
 * as it was, unknown fields are skipped (but must be well-formed JSON), a
 * value of the wrong type or bytes after the object are an error. Bounded:
 * nesting depth, and every string field's size (too long is an error). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "nats/nats.h"

#define MAX_DEPTH 32

struct rd {
    const uint8_t *p, *end;
    char *err;
    size_t errlen;
};

static bool fail(struct rd *r, const char *why)
{
    if (r->errlen)
        snprintf(r->err, r->errlen, "%s", why);
    return false;
}

static void skip_ws(struct rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool eat(struct rd *r, char c)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == (uint8_t)c) {
        r->p++;
        return true;
    }
    return false;
}

static bool literal(struct rd *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* A decoded string goes to dst[0..cap) NUL-terminated; with dst NULL it is
 * only checked. */
struct strbuf {
    char *dst;
    size_t cap, len;
    bool overflow;
};

static void sb_put(struct strbuf *b, const void *s, size_t n)
{
    if (b->dst && !b->overflow && n < b->cap - b->len) {
        memcpy(b->dst + b->len, s, n);
        b->len += n;
        b->dst[b->len] = '\0';
    } else if (b->dst) {
        b->overflow = true;
    }
}

static void sb_cp(struct strbuf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    }
    sb_put(b, u, n);
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* \uXXXX, with a following low surrogate when it is a high one. A lone
 * surrogate becomes U+FFFD, as Go decodes it. r->p is past the 'u'. */
static bool unicode_escape(struct rd *r, struct strbuf *b)
{
    if (r->end - r->p < 4 || hex4(r->p) < 0)
        return fail(r, "bad \\u escape");
    uint32_t cp = (uint32_t)hex4(r->p);
    r->p += 4;
    if (cp >= 0xd800 && cp < 0xdc00 && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
        int lo = hex4(r->p + 2);
        if (lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
            r->p += 6;
        }
    }
    if (cp >= 0xd800 && cp < 0xe000)
        cp = 0xfffd;
    if (cp == 0)
        return fail(r, "NUL in a string"); /* it would cut our C string short */
    sb_cp(b, cp);
    return true;
}

static bool escape(struct rd *r, struct strbuf *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (r->p == r->end)
        return fail(r, "unterminated string");
    uint8_t c = *r->p++;
    if (c == 'u')
        return unicode_escape(r, b);
    const char *k = c ? strchr(from, c) : NULL;
    if (!k)
        return fail(r, "bad escape in a string");
    sb_put(b, &to[k - from], 1);
    return true;
}

/* Bytes of a UTF-8 sequence at p (1 to 4), 0 when invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    if (p[0] < 0xc2 || p[0] > 0xf4 || len > n)
        return 0;
    uint32_t cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A string at r->p (the opening quote). Invalid UTF-8 becomes U+FFFD, as
 * Go decodes it; raw control characters are an error. */
static bool string(struct rd *r, struct strbuf *b)
{
    skip_ws(r);
    if (r->p == r->end || *r->p != '"')
        return fail(r, "expected a string");
    r->p++;
    while (r->p < r->end) {
        uint8_t c = *r->p;
        if (c == '"') {
            r->p++;
            return true;
        }
        if (c < 0x20)
            return fail(r, "control character in a string");
        if (c == '\\') {
            r->p++;
            if (!escape(r, b))
                return false;
            continue;
        }
        size_t n = utf8_seq(r->p, (size_t)(r->end - r->p));
        if (n == 0) {
            sb_cp(b, 0xfffd);
            n = 1;
        } else {
            sb_put(b, r->p, n);
        }
        r->p += n;
    }
    return fail(r, "unterminated string");
}

static bool digits(struct rd *r)
{
    const uint8_t *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > s;
}

/* A JSON number; *integral tells whether it has neither fraction nor
 * exponent (what Go accepts for an int field). */
static bool number(struct rd *r, bool *integral)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0')
        r->p++;
    else if (!digits(r))
        return fail(r, "bad number");
    *integral = true;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        *integral = false;
        if (!digits(r))
            return fail(r, "bad number");
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        *integral = false;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!digits(r))
            return fail(r, "bad number");
    }
    return true;
}

static bool skip_value(struct rd *r, int depth);

/* An object or array being skipped: its members checked, not kept. */
static bool skip_container(struct rd *r, int depth, char close)
{
    if (depth >= MAX_DEPTH)
        return fail(r, "nesting too deep");
    r->p++;
    if (eat(r, close))
        return true;
    do {
        struct strbuf none = {0};
        if (close == '}' && (!string(r, &none) || !eat(r, ':')))
            return fail(r, "bad object member");
        if (!skip_value(r, depth + 1))
            return false;
    } while (eat(r, ','));
    return eat(r, close) ? true : fail(r, "bad object or array");
}

static bool skip_value(struct rd *r, int depth)
{
    struct strbuf none = {0};
    bool integral;
    skip_ws(r);
    if (r->p == r->end)
        return fail(r, "value expected");
    switch (*r->p) {
    case '{':
        return skip_container(r, depth, '}');
    case '[':
        return skip_container(r, depth, ']');
    case '"':
        return string(r, &none);
    case 't':
        return literal(r, "true") || fail(r, "bad literal");
    case 'f':
        return literal(r, "false") || fail(r, "bad literal");
    case 'n':
        return literal(r, "null") || fail(r, "bad literal");
    default:
        return number(r, &integral);
    }
}

enum ftype { F_BOOL, F_INT, F_STR };

struct field {
    const char *key;
    enum ftype type;
    size_t off, cap; /* where in struct nats_connect; cap for strings */
    ptrdiff_t has;   /* offset of its has_ flag, -1 for none */
};

#define B(k, m)                                                                                    \
    {                                                                                              \
        k, F_BOOL, offsetof(struct nats_connect, m), 0, -1                                         \
    }
#define S(k, m)                                                                                    \
    {                                                                                              \
        k, F_STR, offsetof(struct nats_connect, m), sizeof(((struct nats_connect *)0)->m), -1      \
    }
#define SH(k, m, h)                                                                                \
    {                                                                                              \
        k, F_STR, offsetof(struct nats_connect, m), sizeof(((struct nats_connect *)0)->m),         \
            (ptrdiff_t)offsetof(struct nats_connect, h)                                            \
    }

static const struct field fields[] = {
    B("verbose", verbose),
    B("pedantic", pedantic),
    B("tls_required", tls_required),
    B("echo", echo),
    B("headers", headers),
    B("no_responders", no_responders),
    {"protocol", F_INT, offsetof(struct nats_connect, protocol), 0, -1},
    S("name", name),
    S("lang", lang),
    S("version", version),
    SH("user", user, has_user),
    SH("pass", pass, has_pass),
    SH("auth_token", auth_token, has_token),
    SH("nkey", nkey, has_nkey),
    SH("sig", sig, has_sig),
    SH("jwt", jwt, has_jwt),
};

static bool key_is(const char *key, const char *name)
{
    for (; *key && *name; key++, name++) {
        char a = *key >= 'A' && *key <= 'Z' ? (char)(*key - 'A' + 'a') : *key;
        if (a != *name)
            return false;
    }
    return *key == *name;
}

static const struct field *find_field(const char *key)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (key_is(key, fields[i].key))
            return &fields[i];
    return NULL;
}

static bool read_int(struct rd *r, int *out)
{
    const uint8_t *s = r->p;
    bool integral;
    if (!number(r, &integral))
        return false;
    if (!integral)
        return fail(r, "protocol: not an integer");
    bool neg = *s == '-';
    long long v = 0;
    for (const uint8_t *q = s + neg; q < r->p; q++) {
        v = v * 10 + (*q - '0');
        if (v > 2147483647LL)
            return fail(r, "protocol: out of range");
    }
    *out = (int)(neg ? -v : v);
    return true;
}

static bool read_field(struct rd *r, const struct field *f, struct nats_connect *out)
{
    uint8_t *base = (uint8_t *)out;
    skip_ws(r);
    if (literal(r, "null"))
        return true; /* as Go: the field keeps its value */
    switch (f->type) {
    case F_BOOL:
        if (literal(r, "true")) {
            *(bool *)(base + f->off) = true;
            return true;
        }
        if (literal(r, "false")) {
            *(bool *)(base + f->off) = false;
            return true;
        }
        break;
    case F_INT:
        if (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')))
            return read_int(r, (int *)(base + f->off));
        break;
    case F_STR:
        if (r->p < r->end && *r->p == '"') {
            struct strbuf b = {(char *)base + f->off, f->cap, 0, false};
            b.dst[0] = '\0';
            if (!string(r, &b))
                return false;
            if (b.overflow)
                return fail(r, "a string field is too long");
            if (f->has >= 0)
                *(bool *)(base + f->has) = true;
            return true;
        }
        break;
    default:
        break;
    }
    return fail(r, "a field has the wrong type");
}

static bool member(struct rd *r, struct nats_connect *out)
{
    char key[32];
    struct strbuf kb = {key, sizeof key, 0, false};
    key[0] = '\0';
    if (!string(r, &kb))
        return false;
    if (!eat(r, ':'))
        return fail(r, "':' expected");
    const struct field *f = kb.overflow ? NULL : find_field(key);
    return f ? read_field(r, f, out) : skip_value(r, 1);
}

/* see nats.h */
int nats_connect_parse(const uint8_t *json, size_t len, struct nats_connect *out, char *err,
                       size_t errlen)
{
    if (!json)
        len = 0;
    struct rd r = {json, json ? json + len : json, err, errlen};
    /* nats-server's defaults for a field the client leaves out. */
    *out = (struct nats_connect){.verbose = true, .pedantic = true, .echo = true};
    if (errlen)
        err[0] = '\0';
    if (!eat(&r, '{'))
        return fail(&r, "not a JSON object"), -1;
    if (!eat(&r, '}')) {
        do {
            skip_ws(&r);
            if (!member(&r, out))
                return -1;
        } while (eat(&r, ','));
        if (!eat(&r, '}'))
            return fail(&r, "',' or '}' expected"), -1;
    }
    skip_ws(&r);
    if (r.p != r.end)
        return fail(&r, "bytes after the object"), -1;
    return 0;
}

/* ---- INFO --------------------------------------------------------------- */

struct wr {
    char *p;
    size_t cap, len;
    bool full;
};

static void put(struct wr *w, const char *s, size_t n)
{
    if (w->full || n >= w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void puts_(struct wr *w, const char *s)
{
    put(w, s, strlen(s));
}

/* A JSON string as Go's encoding/json writes it: <, > and & as \u00XX too,
 * U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD. */
static void put_jstr(struct wr *w, const char *s)
{
    const uint8_t *p = (const uint8_t *)(s ? s : "");
    size_t n = strlen((const char *)p);
    char tmp[8];
    put(w, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t seq = utf8_seq(p + i, n - i);
        if (c == '"' || c == '\\') {
            tmp[0] = '\\', tmp[1] = (char)c;
            put(w, tmp, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            tmp[0] = '\\', tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            put(w, tmp, 2);
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            put(w, tmp, 6);
        } else if (seq == 0) {
            puts_(w, "\\ufffd");
            seq = 1;
        } else if (seq == 3 && c == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] & 0xfe) == 0xa8) {
            puts_(w, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
        } else {
            put(w, (const char *)p + i, seq);
        }
        i += seq ? seq : 1;
    }
    put(w, "\"", 1);
}

static void put_key(struct wr *w, const char *key)
{
    if (w->len > 0 && w->p[w->len - 1] != '{')
        put(w, ",", 1);
    put(w, "\"", 1);
    puts_(w, key);
    put(w, "\":", 2);
}

static void put_num(struct wr *w, const char *key, unsigned long long v)
{
    char tmp[24];
    put_key(w, key);
    snprintf(tmp, sizeof tmp, "%llu", v);
    puts_(w, tmp);
}

static void put_bool(struct wr *w, const char *key, bool v, bool omit_false)
{
    if (omit_false && !v)
        return;
    put_key(w, key);
    puts_(w, v ? "true" : "false");
}

/* see nats.h */
size_t nats_info_encode(const struct nats_info *i, char *buf, size_t cap)
{
    struct wr w = {buf, cap, 0, cap == 0};
    /* nats-server's Info struct order; "go" and "git_commit" are its own. */
    puts_(&w, "INFO {");
    put_key(&w, "server_id"), put_jstr(&w, i->server_id);
    put_key(&w, "server_name"), put_jstr(&w, i->server_name);
    put_key(&w, "version"), put_jstr(&w, i->version);
    put_num(&w, "proto", (unsigned long long)(i->proto < 0 ? 0 : i->proto));
    put_key(&w, "host"), put_jstr(&w, i->host);
    put_num(&w, "port", i->port);
    put_bool(&w, "headers", i->headers, false);
    put_bool(&w, "auth_required", i->auth_required, true);
    put_bool(&w, "tls_required", i->tls_required, true);
    put_bool(&w, "tls_verify", i->tls_verify, true);
    put_bool(&w, "tls_available", i->tls_available, true);
    put_num(&w, "max_payload", i->max_payload);
    if (i->client_id)
        put_num(&w, "client_id", i->client_id);
    if (i->client_ip && *i->client_ip)
        put_key(&w, "client_ip"), put_jstr(&w, i->client_ip);
    if (i->nonce && *i->nonce)
        put_key(&w, "nonce"), put_jstr(&w, i->nonce);
    if (i->nconnect_urls > 0) {
        put_key(&w, "connect_urls");
        put(&w, "[", 1);
        for (size_t k = 0; k < i->nconnect_urls; k++) {
            if (k)
                put(&w, ",", 1);
            put_jstr(&w, i->connect_urls[k]);
        }
        put(&w, "]", 1);
    }
    put_bool(&w, "ldm", i->ldm, true);
    /* nats-server puts a space before the line end. */
    puts_(&w, "} \r\n");
    if (w.full)
        return 0;
    w.p[w.len] = '\0';
    return w.len;
}
