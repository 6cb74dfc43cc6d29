/* TEMPORARY stand-in for src/http/ws_upgrade.c (the http helper's), so the
 * WebSocket transport links and runs before that file lands. Deleted when
 * the http branch is merged with it. */
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "http/http.h"

static bool slice_ieq(struct http_slice s, const char *str)
{
    return s.len == strlen(str) && strncasecmp(s.p, str, s.len) == 0;
}

bool ws_upgrade_check(const struct http_request *rq, const struct ws_upgrade_rules *r,
                      struct ws_upgrade *u)
{
    memset(u, 0, sizeof(*u));
    u->status = 400;
    if (!http_slice_eq(rq->method, "GET")) {
        u->status = 405;
        u->why = "method not allowed";
        return false;
    }
    if (!http_header_has_token(rq, "Upgrade", "websocket") ||
        !http_header_has_token(rq, "Connection", "upgrade")) {
        u->why = "not a WebSocket upgrade";
        return false;
    }
    const struct http_header *v = http_header(rq, "Sec-WebSocket-Version");
    if (!v || !slice_ieq(v->value, "13")) {
        u->status = 426;
        u->why = "WebSocket version 13 required";
        return false;
    }
    const struct http_header *k = http_header(rq, "Sec-WebSocket-Key");
    uint8_t raw[32];
    if (!k || k->value.len != 24 ||
        base64_decode(k->value.p, k->value.len, raw, sizeof(raw)) != 16) {
        u->why = "bad Sec-WebSocket-Key";
        return false;
    }
    if (r->path && *r->path && !http_slice_eq(rq->path, r->path)) {
        u->status = 404;
        u->why = "path not served";
        return false;
    }
    if (r->origins) {
        const struct http_header *o = http_header(rq, "Origin");
        bool ok = false;
        for (size_t i = 0; o && i < r->norigins; i++)
            ok |= slice_ieq(o->value, r->origins[i]);
        if (!ok) {
            u->status = 403;
            u->why = "Origin not allowed";
            return false;
        }
    }
    if (r->protocols) {
        for (size_t i = 0; i < r->nprotocols && !u->protocol; i++)
            if (http_header_has_token(rq, "Sec-WebSocket-Protocol", r->protocols[i]))
                u->protocol = r->protocols[i];
        if (!u->protocol && r->protocol_required) {
            u->why = "no supported subprotocol offered (mqtt, mqttv3.1, mqttv3.1.1, mqttv5)";
            return false;
        }
    }
    char in[64];
    memcpy(in, k->value.p, 24);
    memcpy(in + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    uint8_t sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)in, 60, sha);
    base64_encode(sha, sizeof(sha), u->accept);
    u->status = 101;
    return true;
}

struct ward_result ws_upgrade_response(struct buf *out, const struct ws_upgrade *u)
{
    if (u->status != 101)
        return http_response_text(out, u->status, u->why, false);
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    struct ward_result r = buf_append(out, head, sizeof(head) - 1);
    if (ward_ok(r))
        r = buf_append(out, u->accept, strlen(u->accept));
    if (ward_ok(r) && u->protocol) {
        r = buf_append(out, "\r\nSec-WebSocket-Protocol: ", 26);
        if (ward_ok(r))
            r = buf_append(out, u->protocol, strlen(u->protocol));
    }
    if (ward_ok(r))
        r = buf_append(out, "\r\n\r\n", 4);
    return r;
}
