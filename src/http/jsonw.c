/* A JSON writer into a buf (see jsonw.h). */
#include "http/jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct jsonw *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (!ward_ok(buf_append(w->out, p, n)))
        w->failed = true;
}

static void put_str(struct jsonw *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Everything that starts a value: the comma before it, and the checks that
 * it may stand here. At depth 0 only one value may be written, since a
 * second one would not make one JSON text. */
static bool value_begin(struct jsonw *w)
{
    if (w->failed)
        return false;
    if (w->after_key) {
        w->after_key = false;
        return true;
    }
    if (w->in_object[w->depth] || (w->depth == 0 && w->need_comma[0])) {
        w->failed = true;
        return false;
    }
    if (w->need_comma[w->depth])
        put(w, ",", 1);
    w->need_comma[w->depth] = true;
    return !w->failed;
}

void jsonw_init(struct jsonw *w, struct buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

static void container_begin(struct jsonw *w, char c, bool object)
{
    if (!value_begin(w))
        return;
    if (w->depth >= JSONW_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    put(w, &c, 1);
    w->depth++;
    w->need_comma[w->depth] = false;
    w->in_object[w->depth] = object;
}

static void container_end(struct jsonw *w, char c, bool object)
{
    if (w->failed)
        return;
    if (w->depth == 0 || w->in_object[w->depth] != object || w->after_key) {
        w->failed = true;
        return;
    }
    put(w, &c, 1);
    w->depth--;
}

void jsonw_object_begin(struct jsonw *w)
{
    container_begin(w, '{', true);
}

void jsonw_object_end(struct jsonw *w)
{
    container_end(w, '}', true);
}

void jsonw_array_begin(struct jsonw *w)
{
    container_begin(w, '[', false);
}

void jsonw_array_end(struct jsonw *w)
{
    container_end(w, ']', false);
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 if it is not
 * one, in which case *skip is the length of its maximal ill-formed prefix
 * (Unicode 15, 3.9 "U+FFFD substitution of maximal subparts"), which one
 * U+FFFD replaces. */
static size_t utf8_seq(const uint8_t *s, size_t n, size_t *skip)
{
    uint8_t c = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* beyond U+10FFFF */
    } else {
        *skip = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < len && i < n; i++) {
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            break;
    }
    if (i == len)
        return len;
    *skip = i;
    return 0;
}

/* Quotes, backslashes and control characters are escaped as JSON needs;
 * '<', '>' and '&' too, so a string can sit in an HTML page's <script>
 * without closing it. Runs of plain bytes are appended at once. */
static void write_escaped(struct jsonw *w, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(w, "\"", 1);
    size_t run = 0; /* start of the pending run of plain bytes */
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        char esc[8];
        size_t elen = 0, adv = 1;
        if (c >= 0x80) {
            size_t skip = 0, len = utf8_seq(s + i, n - i, &skip);
            if (len) {
                i += len;
                continue;
            }
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
            adv = skip;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            elen = 2;
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else {
            i++;
            continue;
        }
        put(w, s + run, i - run);
        put(w, esc, elen);
        i += adv;
        run = i;
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

void jsonw_key(struct jsonw *w, const char *key)
{
    if (w->failed)
        return;
    if (!w->in_object[w->depth] || w->after_key || !key) {
        w->failed = true;
        return;
    }
    if (w->need_comma[w->depth])
        put(w, ",", 1);
    w->need_comma[w->depth] = true;
    write_escaped(w, (const uint8_t *)key, strlen(key));
    put(w, ":", 1);
    w->after_key = true;
}

void jsonw_string_n(struct jsonw *w, const char *s, size_t n)
{
    if (!value_begin(w))
        return;
    write_escaped(w, (const uint8_t *)(s ? s : ""), s ? n : 0);
}

/* A NULL string is written as null: "no value" rather than a crash. */
void jsonw_string(struct jsonw *w, const char *s)
{
    if (!s) {
        jsonw_null(w);
        return;
    }
    jsonw_string_n(w, s, strlen(s));
}

void jsonw_u64(struct jsonw *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    if (value_begin(w))
        put(w, tmp, (size_t)n);
}

void jsonw_i64(struct jsonw *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    if (value_begin(w))
        put(w, tmp, (size_t)n);
}

/* The shortest of %.15g and %.17g that reads back as the same value, so
 * 0.1 is written "0.1" and every double still round-trips. A locale whose
 * decimal separator is ',' must not make the number invalid JSON. */
void jsonw_double(struct jsonw *w, double v)
{
    if (!isfinite(v)) {
        jsonw_null(w);
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    for (int i = 0; i < n; i++)
        if (tmp[i] == ',')
            tmp[i] = '.';
    if (value_begin(w))
        put(w, tmp, (size_t)n);
}

void jsonw_bool(struct jsonw *w, bool v)
{
    if (value_begin(w))
        put_str(w, v ? "true" : "false");
}

void jsonw_null(struct jsonw *w)
{
    if (value_begin(w))
        put_str(w, "null");
}

void jsonw_kv_string(struct jsonw *w, const char *key, const char *s)
{
    jsonw_key(w, key);
    jsonw_string(w, s);
}

void jsonw_kv_u64(struct jsonw *w, const char *key, uint64_t v)
{
    jsonw_key(w, key);
    jsonw_u64(w, v);
}

void jsonw_kv_bool(struct jsonw *w, const char *key, bool v)
{
    jsonw_key(w, key);
    jsonw_bool(w, v);
}

/* One whole value written: an empty writer is not done either. */
bool jsonw_done(const struct jsonw *w)
{
    return !w->failed && w->depth == 0 && !w->after_key && w->need_comma[0];
}
