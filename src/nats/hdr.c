/* NATS message headers (HPUB/HMSG): "NATS/1.0[ <code>[ <description>]]\r\n",
 * then "Name: value\r\n" lines, then an empty line. The format nats.go
 * writes and reads (an HTTP-like block with its own version line). */
#include <stdio.h>
#include <string.h>

#include "nats/nats.h"

#define VERSION     "NATS/1.0"
#define VERSION_LEN 8

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* A name is a token: printable, no ':' and no space (it ends at the colon). */
static bool name_ok(const uint8_t *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] == 0x7f || p[i] == ':')
            return false;
    return true;
}

/* A value or description: anything but a line break (a tab is fine). */
static bool text_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return false;
    return true;
}

/* The line at h[pos..len) without its "\r\n"; false when there is no
 * complete line. */
static bool crlf_line(const uint8_t *h, size_t len, size_t pos, size_t *end)
{
    for (size_t i = pos; i + 1 < len; i++) {
        if (h[i] == '\r' && h[i + 1] == '\n') {
            *end = i;
            return true;
        }
        if (h[i] == '\r' || h[i] == '\n')
            return false; /* a bare CR or LF inside a line */
    }
    return false;
}

/* The status code of a first line "NATS/1.0 503 No Responders": three
 * digits after the version and blanks; 0 when there is none. -1: the line
 * is not a version line at all. */
static int status_of(const uint8_t *line, size_t n)
{
    if (n < VERSION_LEN || memcmp(line, VERSION, VERSION_LEN) != 0)
        return -1;
    size_t i = VERSION_LEN;
    if (i == n)
        return 0;
    if (!is_blank(line[i]))
        return -1;
    while (i < n && is_blank(line[i]))
        i++;
    if (i == n)
        return 0;
    if (n - i < 3 || (n - i > 3 && !is_blank(line[i + 3])))
        return -1;
    int code = 0;
    for (size_t k = i; k < i + 3; k++) {
        if (line[k] < '0' || line[k] > '9')
            return -1;
        code = code * 10 + (line[k] - '0');
    }
    return text_ok(line + i, n - i) ? code : -1;
}

/* see nats.h */
bool nats_hdr_valid(const uint8_t *h, size_t len)
{
    size_t end;
    if (!h || !crlf_line(h, len, 0, &end) || status_of(h, end) < 0)
        return false;
    size_t pos = end + 2;
    for (;;) {
        if (!crlf_line(h, len, pos, &end))
            return false;
        if (end == pos)
            return end + 2 == len; /* the empty line ends the block, and the bytes */
        const uint8_t *colon = memchr(h + pos, ':', end - pos);
        if (!colon || !name_ok(h + pos, (size_t)(colon - h) - pos))
            return false;
        if (!text_ok(colon + 1, (size_t)(h + end - colon) - 1))
            return false;
        pos = end + 2;
    }
}

/* see nats.h */
int nats_hdr_status(const uint8_t *h, size_t len)
{
    size_t end;
    if (!h || !crlf_line(h, len, 0, &end))
        return 0;
    int code = status_of(h, end);
    return code > 0 ? code : 0;
}

/* see nats.h */
void nats_hdr_iter_init(struct nats_hdr_iter *it, const uint8_t *h, size_t len)
{
    it->p = h;
    it->end = h ? h + len : h;
    /* Past the version line; a block without one yields nothing. */
    const uint8_t *nl = h && len ? memchr(h, '\n', len) : NULL;
    it->p = nl ? nl + 1 : it->end;
}

static struct nats_str trim(const uint8_t *p, const uint8_t *e)
{
    while (p < e && is_blank(*p))
        p++;
    while (e > p && is_blank(e[-1]))
        e--;
    return (struct nats_str){p, (size_t)(e - p)};
}

/* see nats.h */
bool nats_hdr_next(struct nats_hdr_iter *it, struct nats_str *name, struct nats_str *value)
{
    while (it->p < it->end) {
        const uint8_t *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
        const uint8_t *line = it->p, *e = nl ? nl : it->end;
        it->p = nl ? nl + 1 : it->end;
        if (e > line && e[-1] == '\r')
            e--;
        if (e == line) {
            it->p = it->end; /* the empty line: the block is over */
            return false;
        }
        const uint8_t *colon = memchr(line, ':', (size_t)(e - line));
        if (!colon || colon == line)
            continue; /* not a header line: skipped, as a reader of a broken block would */
        *name = (struct nats_str){line, (size_t)(colon - line)};
        *value = trim(colon + 1, e);
        return true;
    }
    return false;
}

struct wr {
    uint8_t *p;
    size_t cap, len;
    bool bad;
};

static void wr(struct wr *w, const void *s, size_t n)
{
    if (w->bad || n > w->cap - w->len) {
        w->bad = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* see nats.h */
/* see nats.h */
bool nats_hdr_pair_ok(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    return name_ok(name, nlen) && text_ok(value, vlen);
}

size_t nats_hdr_build(uint8_t *buf, size_t cap, int code, const char *desc,
                      const struct nats_str *names, const struct nats_str *values, size_t n)
{
    struct wr w = {buf, cap, 0, false};
    char first[32];
    if (code != 0 && (code < 100 || code > 999))
        return 0;
    if (desc && !text_ok((const uint8_t *)desc, strlen(desc)))
        return 0;
    snprintf(first, sizeof first, code ? VERSION " %d" : VERSION, code);
    wr(&w, first, strlen(first));
    if (code && desc && *desc) {
        wr(&w, " ", 1);
        wr(&w, desc, strlen(desc));
    }
    wr(&w, "\r\n", 2);
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(names[i].p, names[i].len) || !text_ok(values[i].p, values[i].len))
            return 0;
        wr(&w, names[i].p, names[i].len);
        wr(&w, ": ", 2);
        wr(&w, values[i].p, values[i].len);
        wr(&w, "\r\n", 2);
    }
    wr(&w, "\r\n", 2);
    return w.bad ? 0 : w.len;
}
