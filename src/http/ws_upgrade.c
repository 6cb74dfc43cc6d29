/* The WebSocket opening handshake, server side (see http.h; RFC 6455
 * sections 4.2.1 and 4.2.2).
 *
 * A request without Origin passes an Origin allow-list: only browsers send
 * Origin, and the list is there to stop other sites' pages from using a
 * visitor's browser (cross-site WebSocket hijacking); a native client could
 * send any Origin it liked, so asking it for one proves nothing. */
#include "http/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/base64.h"

/* RFC 6455 section 1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool refuse(struct ws_upgrade *u, int status, const char *why)
{
    u->status = status;
    u->why = why;
    return false;
}

/* The fields named `name`: how many, and the first. */
static unsigned count(const struct http_request *rq, const char *name,
                      const struct http_header **first)
{
    unsigned n = 0;
    *first = NULL;
    for (unsigned k = 0; k < rq->nheaders; k++) {
        const struct http_header *h = &rq->headers[k];
        if (h->name.len != strlen(name) || strncasecmp(h->name.p, name, h->name.len) != 0)
            continue;
        if (!n++)
            *first = h;
    }
    return n;
}

/* RFC 6455 4.2.1 item 5: the base64 of 16 bytes, so 24 characters of the
 * standard alphabet ending in "==". */
static bool key_ok(struct http_slice k)
{
    if (k.len != 24 || k.p[22] != '=' || k.p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (k.p[i] == '-' || k.p[i] == '_')
            return false;
    uint8_t raw[18];
    return base64_decode(k.p, k.len, raw, sizeof(raw)) == 16;
}

/* SHA-1 of the key and the GUID, in base64 (RFC 6455 4.2.2 item 5.4). */
static bool accept_value(struct http_slice key, char out[29])
{
    char in[24 + sizeof(ws_guid)];
    memcpy(in, key.p, 24);
    memcpy(in + 24, ws_guid, sizeof(ws_guid) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(in, 24 + sizeof(ws_guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return false;
    return base64_encode(md, 20, out) == 28;
}

/* Whether the client's Sec-WebSocket-Protocol fields (each a comma list)
 * offer `proto`, compared exactly: subprotocol names are case-sensitive
 * (RFC 6455 11.3.4). */
static bool offered(const struct http_request *rq, const char *proto)
{
    size_t plen = strlen(proto);
    for (unsigned k = 0; k < rq->nheaders; k++) {
        const struct http_header *h = &rq->headers[k];
        if (h->name.len != 22 || strncasecmp(h->name.p, "sec-websocket-protocol", 22) != 0)
            continue;
        const char *v = h->value.p;
        size_t n = h->value.len, i = 0;
        while (i < n) {
            while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                i++;
            size_t start = i;
            while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
                i++;
            if (i - start == plen && memcmp(v + start, proto, plen) == 0)
                return true;
        }
    }
    return false;
}

static void append(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++)
        out[(*o)++] = s[i];
    out[*o] = '\0';
}

/* "offered: a, b" from the client's fields, cut to fit; bytes outside
 * [A-Za-z0-9._-] are left out, since the text goes to the peer and the log. */
static void describe_offer(const struct http_request *rq, char *out, size_t cap)
{
    size_t o = 0;
    append(out, cap, &o, "offered:", 8);
    bool any = false;
    for (unsigned k = 0; k < rq->nheaders; k++) {
        const struct http_header *h = &rq->headers[k];
        if (h->name.len != 22 || strncasecmp(h->name.p, "sec-websocket-protocol", 22) != 0)
            continue;
        bool sep = true; /* a separator is due before the next kept byte */
        for (size_t i = 0; i < h->value.len; i++) {
            char c = h->value.p[i];
            if (c == ',') {
                sep = true;
                continue;
            }
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                continue;
            if (sep)
                append(out, cap, &o, any ? ", " : " ", any ? 2 : 1);
            append(out, cap, &o, &c, 1);
            sep = false;
            any = true;
        }
    }
    if (!any)
        append(out, cap, &o, " none", 5);
}

static bool origin_ok(const struct http_request *rq, const struct ws_upgrade_rules *r)
{
    const struct http_header *h;
    unsigned n = count(rq, "origin", &h);
    if (!r->origins || n == 0)
        return true;
    if (n > 1)
        return false;
    for (size_t i = 0; i < r->norigins; i++) {
        size_t len = strlen(r->origins[i]);
        if (h->value.len == len && strncasecmp(h->value.p, r->origins[i], len) == 0)
            return true;
    }
    return false;
}

static bool choose_protocol(const struct http_request *rq, const struct ws_upgrade_rules *r,
                            struct ws_upgrade *u)
{
    if (!r->protocols || r->nprotocols == 0)
        return true;
    for (size_t i = 0; i < r->nprotocols; i++) {
        if (offered(rq, r->protocols[i])) {
            u->protocol = r->protocols[i];
            return true;
        }
    }
    if (!r->protocol_required)
        return true;
    describe_offer(rq, u->detail, sizeof(u->detail));
    return refuse(u, 400, "no supported subprotocol");
}

/* see http.h */
bool ws_upgrade_check(const struct http_request *rq, const struct ws_upgrade_rules *r,
                      struct ws_upgrade *u)
{
    memset(u, 0, sizeof(*u));
    const struct http_header *h;
    if (!http_slice_eq(rq->method, "GET"))
        return refuse(u, 405, "a WebSocket upgrade is a GET");
    if (rq->minor < 1)
        return refuse(u, 400, "a WebSocket upgrade needs HTTP/1.1");
    if (!http_header_has_token(rq, "upgrade", "websocket"))
        return refuse(u, 400, "not a WebSocket upgrade");
    if (!http_header_has_token(rq, "connection", "upgrade"))
        return refuse(u, 400, "Connection does not hold upgrade");
    unsigned n = count(rq, "sec-websocket-version", &h);
    if (n == 0)
        return refuse(u, 400, "no Sec-WebSocket-Version");
    if (n > 1 || !http_slice_eq(h->value, "13"))
        return refuse(u, 426, "only WebSocket version 13 is served");
    if (count(rq, "sec-websocket-key", &h) != 1 || !key_ok(h->value))
        return refuse(u, 400, "missing or malformed Sec-WebSocket-Key");
    struct http_slice key = h->value;
    if (r->path && r->path[0] && !http_slice_eq(rq->path, r->path))
        return refuse(u, 404, "no WebSocket endpoint at this path");
    if (!origin_ok(rq, r))
        return refuse(u, 403, "Origin not allowed");
    if (!choose_protocol(rq, r, u))
        return false;
    if (!accept_value(key, u->accept))
        return refuse(u, 500, "SHA-1 unavailable");
    u->status = 101;
    return true;
}

/* see http.h */
struct ward_result ws_upgrade_response(struct buf *out, const struct ws_upgrade *u)
{
    char extra[256];
    if (u->status == 101) {
        ENSURE(strlen(u->accept) == 28, WARD_ERR_INVALID);
        int n = snprintf(extra, sizeof(extra),
                         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
                         "%s\r\n%s%s%s",
                         u->accept, u->protocol ? "Sec-WebSocket-Protocol: " : "",
                         u->protocol ? u->protocol : "", u->protocol ? "\r\n" : "");
        ENSURE(n > 0 && (size_t)n < sizeof(extra), WARD_ERR_INVALID);
        return http_response_head(out, 101, NULL, 0, extra, true);
    }
    ENSURE(u->status >= 400 && u->status <= 599, WARD_ERR_INVALID);
    char body[256];
    const char *why = u->why ? u->why : http_reason(u->status);
    int n = u->detail[0] ? snprintf(body, sizeof(body), "%s (%s)\n", why, u->detail)
                         : snprintf(body, sizeof(body), "%s\n", why);
    ENSURE(n > 0, WARD_ERR_INVALID);
    size_t blen = (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1;
    const char *ver = u->status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL;
    size_t before = buf_len(out);
    struct ward_result r =
        http_response_head(out, u->status, "text/plain; charset=utf-8", blen, ver, false);
    if (ward_ok(r))
        r = buf_append(out, body, blen);
    if (!ward_ok(r))
        out->wpos = out->rpos + before;
    return r;
}
