/* NATS subjects: validity and matching as nats-server's sublist has them, and
 * the mapping to and from MQTT topics that nats-server's MQTT support uses
 * (server/mqtt.go), made strict: a subject that the mapping cannot give back
 * unchanged is refused rather than mapped to a topic it shares with another
 * subject. See docs/nats.md, "Subject mapping". */
#include <string.h>

#include "nats/nats.h"

/* Whitespace and control characters end a token on the wire (nats-server
 * refuses \t \n \f \r and space; we refuse every control character too, so a
 * subject is always safe to log and to put on a line). */
static bool byte_ok(uint8_t c)
{
    return c > 0x20 && c != 0x7f;
}

static bool token_is(const uint8_t *t, size_t n, char c)
{
    return n == 1 && t[0] == (uint8_t)c;
}

/* The token that starts at *pos; false after the last one. */
static bool next_token(const uint8_t *s, size_t len, size_t *pos, struct nats_str *tok)
{
    if (*pos > len)
        return false;
    const uint8_t *dot = *pos < len ? memchr(s + *pos, '.', len - *pos) : NULL;
    size_t end = dot ? (size_t)(dot - s) : len;
    *tok = (struct nats_str){s + *pos, end - *pos};
    *pos = end + 1;
    return true;
}

/* see nats.h */
bool nats_subject_valid(const uint8_t *s, size_t len, bool filter)
{
    if (len == 0)
        return false;
    size_t pos = 0;
    struct nats_str t;
    bool after_fwc = false;
    while (next_token(s, len, &pos, &t)) {
        if (t.len == 0 || after_fwc)
            return false;
        for (size_t i = 0; i < t.len; i++)
            if (!byte_ok(t.p[i]))
                return false;
        /* Inside a longer token ("a*") they are plain characters, as in
         * nats-server. */
        bool wc = token_is(t.p, t.len, '*') || token_is(t.p, t.len, '>');
        if (wc && !filter)
            return false;
        after_fwc = token_is(t.p, t.len, '>');
    }
    return true;
}

/* see nats.h */
bool nats_queue_valid(const uint8_t *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!byte_ok(s[i]))
            return false;
    return true;
}

/* see nats.h */
bool nats_subject_match(const uint8_t *filter, size_t flen, const uint8_t *subj, size_t slen)
{
    size_t fpos = 0, spos = 0;
    struct nats_str f, t;
    if (flen == 0 || slen == 0)
        return false;
    while (next_token(filter, flen, &fpos, &f)) {
        if (!next_token(subj, slen, &spos, &t))
            return false; /* the subject ran out: "a.>" does not match "a" */
        if (token_is(f.p, f.len, '>'))
            return true;
        if (token_is(f.p, f.len, '*'))
            continue;
        if (f.len != t.len || memcmp(f.p, t.p, f.len) != 0)
            return false;
    }
    return spos > slen; /* the subject has no tokens left either */
}

/* ---- MQTT <-> NATS ------------------------------------------------------ */

struct sink {
    char *p;
    size_t cap, len;
    bool full;
};

static void emit(struct sink *o, const void *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF), no
 * U+0000: what an MQTT topic must be (MQTT-1.5.4-1, -2). */
static bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c < 0xc2 || c > 0xf4 || len > n - i)
            return false;
        uint32_t cp = c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* One NATS token as an MQTT level: "/" is the empty level, "//" a '.',
 * '*' and '>' tokens the wildcards. */
static bool token_to_level(struct nats_str t, bool filter, struct sink *o)
{
    if (token_is(t.p, t.len, '/'))
        return true;
    if (token_is(t.p, t.len, '*') || token_is(t.p, t.len, '>')) {
        emit(o, t.p[0] == '*' ? "+" : "#", 1);
        return filter;
    }
    for (size_t i = 0; i < t.len; i++) {
        if (t.p[i] == '+' || t.p[i] == '#')
            return false; /* MQTT cannot carry them inside a level */
        if (t.p[i] != '/') {
            emit(o, t.p + i, 1);
            continue;
        }
        if (i + 1 == t.len || t.p[i + 1] != '/')
            return false; /* a lone '/': no MQTT topic maps to it */
        emit(o, ".", 1);
        i++;
    }
    return true;
}

/* see nats.h */
int nats_to_mqtt(const uint8_t *subj, size_t len, bool filter, char *out, size_t cap)
{
    struct sink o = {out, cap, 0, false};
    size_t pos = 0;
    struct nats_str t;
    if (!nats_subject_valid(subj, len, filter) || len > 65535 || !utf8_valid(subj, len))
        return -1;
    for (bool first = true; next_token(subj, len, &pos, &t); first = false) {
        if (!first)
            emit(&o, "/", 1);
        if (!token_to_level(t, filter, &o))
            return -1;
    }
    /* The subject "/" would be the empty topic, which MQTT does not have. */
    if (o.full || o.len == 0 || o.len > 65535)
        return -1;
    return (int)o.len;
}

/* One MQTT level as a NATS token. */
static bool level_to_token(struct nats_str l, bool last, bool filter, struct sink *o)
{
    if (l.len == 0) {
        emit(o, "/", 1);
        return true;
    }
    /* A literal "*" or ">" level would become a NATS wildcard. */
    if (token_is(l.p, l.len, '*') || token_is(l.p, l.len, '>'))
        return false;
    if (token_is(l.p, l.len, '+') || token_is(l.p, l.len, '#')) {
        emit(o, l.p[0] == '+' ? "*" : ">", 1);
        return filter && (l.p[0] == '+' || last); /* MQTT-4.7.1-2: '#' is last */
    }
    for (size_t i = 0; i < l.len; i++) {
        if (l.p[i] == '+' || l.p[i] == '#')
            return false; /* MQTT-4.7.1-2, -3: wildcards fill a level */
        emit(o, l.p[i] == '.' ? "//" : (const char *)l.p + i, l.p[i] == '.' ? 2 : 1);
    }
    return true;
}

/* see nats.h */
int mqtt_to_nats(const uint8_t *topic, size_t len, bool filter, char *out, size_t cap)
{
    struct sink o = {out, cap, 0, false};
    if (len == 0 || len > 65535 || !utf8_valid(topic, len))
        return -1;
    size_t start = 0;
    for (;;) {
        const uint8_t *slash = memchr(topic + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - topic) : len;
        struct nats_str level = {topic + start, end - start};
        if (start > 0)
            emit(&o, ".", 1);
        if (!level_to_token(level, !slash, filter, &o))
            return -1;
        if (!slash)
            break;
        start = end + 1;
    }
    if (o.full || o.len > INT32_MAX || !nats_subject_valid((uint8_t *)out, o.len, filter))
        return -1;
    return (int)o.len;
}
