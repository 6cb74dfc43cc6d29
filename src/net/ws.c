/* WebSocket as a transport: the upgrade, then frames carrying a byte
 * stream, encoded and decoded here (not with libwslay: measured in
 * docs/ARCHITECTURE.md). Contracts in ws.h. */
#include "net/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"

#define WS_SCRATCH     65536 /* raw bytes taken from the inner transport at once */
#define WS_COALESCE    16384 /* payload bytes copied to go in one write with their header */
#define WS_HS_CHUNK    4096
#define WS_READ_ROUNDS 8   /* inner reads per read call at most */
#define WS_CTL_MAX     125 /* a control frame's payload (RFC 6455 5.5) */
/* Room for a pong and a close (2-byte header each), with a second pong
 * queued behind a first one that is partly written. */
#define WS_CTLOUT (3 * (2 + WS_CTL_MAX))

/* RFC 6455 opcodes and close codes. */
enum {
    OP_CONT = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xa,
};
#define IS_CONTROL(op)        (((op)&0x8) != 0)
#define CLOSE_PROTOCOL_ERROR  1002
#define CLOSE_UNSUPPORTED     1003
#define CLOSE_MESSAGE_TOO_BIG 1009

const char *const ws_mqtt_protocols[WS_MQTT_NPROTOCOLS] = {"mqtt", "mqttv3.1", "mqttv3.1.1",
                                                           "mqttv5"};

enum ws_state {
    WS_UPGRADE, /* reading the request, writing the answer */
    WS_OPEN,
    WS_CLOSED, /* a close was received or queued: no more data either way */
};

struct ws {
    const struct ws_settings *s;
    const struct transport_ops *iops;
    void *in;
    enum ws_state state;

    /* the upgrade */
    struct buf hs;    /* the request; after it, frame bytes the client sent early */
    struct buf hsout; /* the answer, until written */
    int status;
    const char *why;
    const char *protocol;
    char detail[128]; /* ws_upgrade.detail: what a refused client offered */
    char path[96];
    char fwd[64];
    bool has_fwd;

    /* input */
    uint8_t hdr[14]; /* a frame header being gathered */
    size_t hdr_len;
    uint8_t mask[4];
    unsigned mask_pos;   /* where in the mask the next payload byte is */
    bool in_frame;       /* a frame's header was seen, its payload is not all in */
    uint8_t op;          /* the current frame's opcode */
    uint64_t frame_left; /* payload of the current frame still to come */
    bool msg_open;       /* a fragmented message waits for its final frame */
    uint64_t msg_len;    /* payload of the current message so far */
    uint8_t ctl[WS_CTL_MAX];
    size_t ctl_len;
    bool eof; /* the peer's close frame, or its end of stream: report EOF */

    /* output */
    uint64_t tx_left; /* payload of the current data frame still to write */
    uint8_t stash[14];
    size_t stash_len; /* header bytes held back to go with the first payload */
    uint8_t ctlout[WS_CTLOUT];
    size_t ctlout_len, ctlout_off;
    bool close_queued;
    char cause[320];
};

/* ---- control output ---- */

/* Queues a control frame (written by hand: two header bytes, unmasked).
 * A pong that finds no room is dropped (a peer pinging faster than it
 * reads gets answers to some pings only, which RFC 6455 allows); the close
 * always has room and is the last frame. */
static void queue_ctl(struct ws *w, uint8_t op, const uint8_t *p, size_t len)
{
    if (w->close_queued)
        return;
    if (w->ctlout_off == w->ctlout_len)
        w->ctlout_off = w->ctlout_len = 0;
    size_t need = 2 + len;
    size_t room = sizeof(w->ctlout) - w->ctlout_len;
    if (op == OP_PONG && room < need + 2 + WS_CTL_MAX)
        return;
    if (room < need) /* cannot happen for a close: see WS_CTLOUT */
        return;
    uint8_t *o = w->ctlout + w->ctlout_len;
    o[0] = (uint8_t)(0x80 | op);
    o[1] = (uint8_t)len;
    if (len)
        memcpy(o + 2, p, len);
    w->ctlout_len += need;
    if (op == OP_CLOSE)
        w->close_queued = true;
}

static void queue_close(struct ws *w, unsigned code, const char *reason)
{
    uint8_t p[WS_CTL_MAX];
    size_t n = 0;
    if (code) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
        size_t r = reason ? strlen(reason) : 0;
        if (r > sizeof(p) - 2)
            r = sizeof(p) - 2;
        if (r)
            memcpy(p + 2, reason, r);
        n += r;
    }
    queue_ctl(w, OP_CLOSE, p, n);
}

/* Writes queued control frames; 1 when none is left. */
static ssize_t write_ctl(struct ws *w)
{
    while (w->ctlout_off < w->ctlout_len) {
        ssize_t r = w->iops->write(w->in, w->ctlout + w->ctlout_off, w->ctlout_len - w->ctlout_off);
        if (r <= 0) {
            if (r == TRANSPORT_ERROR)
                snprintf(w->cause, sizeof(w->cause), "%s", w->iops->cause(w->in));
            return r == 0 ? TRANSPORT_WANT_WRITE : r;
        }
        w->ctlout_off += (size_t)r;
    }
    w->ctlout_off = w->ctlout_len = 0;
    return 1;
}

/* Ends the connection with a close frame: its code and reason to the peer,
 * the cause for net's log line. */
static ssize_t refuse(struct ws *w, unsigned code, const char *why)
{
    queue_close(w, code, why);
    w->state = WS_CLOSED;
    snprintf(w->cause, sizeof(w->cause), "WebSocket: %s (close %u)", why, code);
    return TRANSPORT_ERROR;
}

/* ---- input ---- */

/* A frame's header is in: is it allowed? 0, or an error code to return. */
static ssize_t frame_start(struct ws *w, bool fin, uint8_t rsv, uint8_t op, bool masked,
                           uint64_t len)
{
    if (rsv)
        return refuse(w, CLOSE_PROTOCOL_ERROR, "reserved bits set, no extension agreed");
    if (!masked)
        return refuse(w, CLOSE_PROTOCOL_ERROR, "client frame not masked");
    switch (op) {
    case OP_TEXT:
        return refuse(w, CLOSE_UNSUPPORTED, "text frame: only binary frames are served");
    case OP_CONT:
        if (!w->msg_open)
            return refuse(w, CLOSE_PROTOCOL_ERROR, "continuation frame without a message");
        break;
    case OP_BINARY:
        if (w->msg_open)
            return refuse(w, CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
        break;
    case OP_CLOSE:
    case OP_PING:
    case OP_PONG:
        if (len > WS_CTL_MAX || !fin)
            return refuse(w, CLOSE_PROTOCOL_ERROR, "control frame fragmented or too long");
        w->ctl_len = 0;
        w->op = op;
        w->frame_left = len;
        return 0;
    default:
        return refuse(w, CLOSE_PROTOCOL_ERROR, "unknown opcode");
    }
    if (len > w->s->max_message - w->msg_len) {
        char why[96];
        snprintf(why, sizeof(why), "message larger than %llu bytes",
                 (unsigned long long)w->s->max_message);
        return refuse(w, CLOSE_MESSAGE_TOO_BIG, why);
    }
    w->msg_len += len;
    w->msg_open = !fin;
    w->op = op;
    w->frame_left = len;
    return 0;
}

/* Header bytes a frame needs, judged from the first ones (2 at least). */
static size_t header_need(const uint8_t *h, size_t have)
{
    if (have < 2)
        return 2;
    uint8_t l = h[1] & 0x7f;
    return 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* The whole header is in w->hdr. */
static ssize_t header_done(struct ws *w)
{
    const uint8_t *h = w->hdr;
    uint64_t len = h[1] & 0x7f;
    size_t at = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
        if (len < 126)
            return refuse(w, CLOSE_PROTOCOL_ERROR, "frame length not minimally encoded");
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63)
            return refuse(w, CLOSE_PROTOCOL_ERROR, "frame length over 2^63");
        if (len < 65536)
            return refuse(w, CLOSE_PROTOCOL_ERROR, "frame length not minimally encoded");
    }
    bool masked = (h[1] & 0x80) != 0;
    if (masked)
        memcpy(w->mask, h + at, 4);
    w->mask_pos = 0;
    return frame_start(w, (h[0] & 0x80) != 0, (h[0] >> 4) & 7, h[0] & 0x0f, masked, len);
}

/* dst = src XOR the mask, from where the frame's payload is: a word at a
 * time (libwslay's decoder does it a byte at a time, which cost a fifth
 * of the broker's CPU under load; see docs/ARCHITECTURE.md). */
static void unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], unsigned *pos)
{
    size_t i = 0;
    unsigned p = *pos;
    for (; i < n && p; i++, p = (p + 1) & 3)
        dst[i] = src[i] ^ key[p];
    if (n - i >= 8) {
        uint8_t k8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
        uint64_t k;
        memcpy(&k, k8, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t v;
            memcpy(&v, src + i, 8);
            v ^= k;
            memcpy(dst + i, &v, 8);
        }
    }
    for (; i < n; i++, p = (p + 1) & 3)
        dst[i] = src[i] ^ key[p];
    *pos = p;
}

/* A control frame is all in. 1: it was a close (stop reading). */
static ssize_t control_end(struct ws *w)
{
    if (w->op == OP_PING) {
        queue_ctl(w, OP_PONG, w->ctl, w->ctl_len);
        return 0;
    }
    if (w->op != OP_CLOSE)
        return 0; /* an unsolicited pong: nothing to do */
    if (w->ctl_len == 1)
        return refuse(w, CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload");
    unsigned code = w->ctl_len >= 2 ? (unsigned)(w->ctl[0] << 8 | w->ctl[1]) : 0;
    queue_close(w, code, NULL); /* the peer's code echoed, as RFC 6455 5.5.1 suggests */
    w->state = WS_CLOSED;
    w->eof = true;
    snprintf(w->cause, sizeof(w->cause), "WebSocket close %u from the peer", code);
    return 1;
}

/* Runs n raw bytes through the frame decoder, appending payload to out at
 * *got (the caller leaves room for n more bytes: payload is never more
 * than the bytes it came in). Payload is unmasked straight from the raw
 * bytes into out: one copy. 0, 1 after a close, or TRANSPORT_ERROR. */
static ssize_t feed(struct ws *w, const uint8_t *src, size_t n, uint8_t *out, size_t *got)
{
    size_t i = 0;
    for (;;) {
        if (!w->in_frame) {
            size_t need = header_need(w->hdr, w->hdr_len);
            while (w->hdr_len < need && i < n) {
                w->hdr[w->hdr_len++] = src[i++];
                need = header_need(w->hdr, w->hdr_len);
            }
            if (w->hdr_len < need)
                return 0;
            w->hdr_len = 0;
            ssize_t e = header_done(w);
            if (e)
                return e;
            w->in_frame = true;
        }
        size_t k = n - i < w->frame_left ? n - i : (size_t)w->frame_left;
        if (IS_CONTROL(w->op)) {
            unmask(w->ctl + w->ctl_len, src + i, k, w->mask, &w->mask_pos);
            w->ctl_len += k;
        } else {
            unmask(out + *got, src + i, k, w->mask, &w->mask_pos);
            *got += k;
        }
        i += k;
        w->frame_left -= k;
        if (w->frame_left)
            return 0; /* all of src is used */
        w->in_frame = false;
        if (IS_CONTROL(w->op)) {
            ssize_t c = control_end(w);
            if (c)
                return c;
        } else if (!w->msg_open) {
            w->msg_len = 0;
        }
    }
}

static ssize_t ws_read(void *t, void *buf, size_t len)
{
    struct ws *w = t;
    if (w->state == WS_UPGRADE)
        return TRANSPORT_WANT_READ;
    if (w->eof)
        return TRANSPORT_EOF;
    if (w->state == WS_CLOSED)
        return TRANSPORT_ERROR;
    static __thread uint8_t scratch[WS_SCRATCH];
    size_t got = 0;
    ssize_t last = TRANSPORT_WANT_READ;
    /* Bounded like net's own read loop: a peer streaming control frames
     * (no payload, so `got` stays 0) must not keep the worker here. */
    for (int rounds = 0; got < len && rounds < WS_READ_ROUNDS; rounds++) {
        size_t room = len - got < sizeof(scratch) ? len - got : sizeof(scratch);
        const uint8_t *src = scratch;
        size_t n;
        bool early = buf_len(&w->hs) > 0; /* frames sent right behind the request */
        if (early) {
            src = buf_head(&w->hs);
            n = buf_len(&w->hs) < room ? buf_len(&w->hs) : room;
        } else {
            ssize_t r = w->iops->read(w->in, scratch, room);
            if (r == TRANSPORT_EOF) {
                w->eof = true; /* reported next time, after the payload */
                snprintf(w->cause, sizeof(w->cause), "peer closed without a WebSocket close");
                break;
            }
            if (r == TRANSPORT_ERROR) {
                snprintf(w->cause, sizeof(w->cause), "%s", w->iops->cause(w->in));
                return TRANSPORT_ERROR;
            }
            if (r < 0) {
                last = r;
                break;
            }
            n = (size_t)r;
        }
        ssize_t f = feed(w, src, n, buf, &got);
        if (early)
            buf_consume(&w->hs, n);
        if (f < 0)
            return f; /* the connection ends: its payload so far does not matter */
        if (f > 0)
            break; /* a close: what came before it is delivered first */
        if (!early && n < room)
            break; /* the inner transport has nothing more just now */
    }
    if (got)
        return (ssize_t)got;
    return w->eof ? TRANSPORT_EOF : last;
}

static bool ws_readable(void *t)
{
    struct ws *w = t;
    return w->state != WS_UPGRADE && (w->eof || buf_len(&w->hs) > 0);
}

/* ---- output ---- */

/* A new frame's header, for len payload bytes, into the stash. */
static void frame_header(struct ws *w, uint64_t len)
{
    uint8_t *h = w->stash;
    h[0] = 0x80 | OP_BINARY;
    if (len < 126) {
        h[1] = (uint8_t)len;
        w->stash_len = 2;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        w->stash_len = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        w->stash_len = 10;
    }
    w->tx_left = len;
}

/* Payload bytes of the current frame written (> 0), or a WANT/ERROR code.
 * The header goes in the same write as the first payload bytes (one TCP
 * segment, one TLS record for a small message, instead of two). */
static ssize_t write_payload(struct ws *w, const uint8_t *p, size_t n)
{
    if (!w->stash_len) {
        ssize_t r = w->iops->write(w->in, p, n);
        return r == 0 ? TRANSPORT_WANT_WRITE : r;
    }
    /* The same thread always serves the same connection, so a retry after
     * a short write hands TLS the same bytes (at least as many). */
    static __thread uint8_t joined[sizeof(w->stash) + WS_COALESCE];
    size_t take = n < WS_COALESCE ? n : WS_COALESCE;
    memcpy(joined, w->stash, w->stash_len);
    memcpy(joined + w->stash_len, p, take);
    ssize_t r = w->iops->write(w->in, joined, w->stash_len + take);
    if (r <= 0)
        return r == 0 ? TRANSPORT_WANT_WRITE : r;
    if ((size_t)r <= w->stash_len) { /* only some of the header went */
        memmove(w->stash, w->stash + r, w->stash_len - (size_t)r);
        w->stash_len -= (size_t)r;
        return TRANSPORT_WANT_WRITE;
    }
    r -= (ssize_t)w->stash_len;
    w->stash_len = 0;
    return r;
}

static ssize_t ws_write(void *t, const void *buf, size_t len)
{
    struct ws *w = t;
    if (w->state == WS_UPGRADE)
        return TRANSPORT_WANT_READ; /* nothing goes out before the 101 */
    if (!w->tx_left && w->ctlout_len) {
        ssize_t r = write_ctl(w);
        if (r != 1)
            return r;
    }
    if (w->close_queued) {
        if (!w->cause[0])
            snprintf(w->cause, sizeof(w->cause), "WebSocket closed");
        return TRANSPORT_ERROR;
    }
    if (!w->tx_left)
        frame_header(w, len);
    ssize_t r = write_payload(w, buf, len < w->tx_left ? len : (size_t)w->tx_left);
    if (r > 0)
        w->tx_left -= (uint64_t)r;
    else if (r == TRANSPORT_ERROR)
        snprintf(w->cause, sizeof(w->cause), "%s", w->iops->cause(w->in));
    return r;
}

static bool ws_pending(void *t)
{
    struct ws *w = t;
    return w->ctlout_off < w->ctlout_len;
}

static ssize_t ws_flush(void *t)
{
    struct ws *w = t;
    /* net calls this with its queue empty: a data frame still unfinished
     * then lost its bytes (net dropped its queue on an error), and nothing
     * more can be framed on this stream. */
    if (w->tx_left) {
        w->ctlout_off = w->ctlout_len = 0;
        return 1;
    }
    return write_ctl(w);
}

/* ---- the upgrade ---- */

/* nats-server's same_origin: the Origin's host[:port] is the Host header. */
static bool same_origin(const struct http_request *rq)
{
    const struct http_header *o = http_header(rq, "Origin");
    const struct http_header *h = http_header(rq, "Host");
    if (!o)
        return true; /* not a browser: nothing to compare */
    if (!h)
        return false;
    const char *p = o->value.p, *end = o->value.p + o->value.len;
    const char *sep = NULL;
    for (const char *q = p; q + 2 < end; q++)
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            sep = q + 3;
            break;
        }
    if (!sep)
        return false;
    size_t n = (size_t)(end - sep);
    if (n && sep[n - 1] == '/')
        n--;
    return n == h->value.len && strncasecmp(sep, h->value.p, n) == 0;
}

/* The last X-Forwarded-For entry (the nearest proxy's view). */
static void forwarded(struct ws *w, const struct http_request *rq)
{
    const struct http_header *x = NULL;
    for (unsigned i = 0; i < rq->nheaders; i++)
        if (rq->headers[i].name.len == 15 &&
            strncasecmp(rq->headers[i].name.p, "X-Forwarded-For", 15) == 0)
            x = &rq->headers[i];
    if (!x)
        return;
    const char *p = x->value.p, *end = p + x->value.len;
    const char *start = p;
    for (const char *q = p; q < end; q++)
        if (*q == ',')
            start = q + 1;
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= sizeof(w->fwd))
        return;
    memcpy(w->fwd, start, n);
    w->fwd[n] = '\0';
    w->has_fwd = true;
}

/* A whole request is in: the answer goes to hsout. */
static ssize_t answer(struct ws *w, const struct http_request *rq)
{
    struct ws_upgrade u;
    memset(&u, 0, sizeof(u));
    log_escape(rq->target.p, rq->target.len, w->path, sizeof(w->path));
    ws_upgrade_check(rq, &w->s->rules, &u);
    if (u.status == 101 && w->s->same_origin && !same_origin(rq)) {
        u.status = 403;
        u.why = "Origin is not the host the request was sent to";
    }
    forwarded(w, rq);
    w->status = u.status;
    w->why = u.why ? u.why : http_reason(u.status);
    w->protocol = u.protocol;
    snprintf(w->detail, sizeof(w->detail), "%s", u.detail); /* already reduced to safe bytes */
    if (!ward_ok(ws_upgrade_response(&w->hsout, &u))) {
        snprintf(w->cause, sizeof(w->cause), "out of memory for the WebSocket upgrade");
        return TRANSPORT_ERROR;
    }
    buf_consume(&w->hs, rq->consumed);
    return 0;
}

static ssize_t read_request(struct ws *w)
{
    static __thread struct http_request rq;
    for (;;) {
        int status = 0;
        const char *why = NULL;
        enum http_parse_status st = buf_len(&w->hs) ? http_parse(buf_head(&w->hs), buf_len(&w->hs),
                                                                 &w->s->http, &rq, &status, &why)
                                                    : HTTP_PARSE_AGAIN;
        if (st == HTTP_PARSE_DONE)
            return answer(w, &rq);
        if (st == HTTP_PARSE_ERROR) {
            w->status = status;
            w->why = why ? why : http_reason(status);
            if (!ward_ok(http_response_text(&w->hsout, status, why, false))) {
                snprintf(w->cause, sizeof(w->cause), "out of memory for the WebSocket upgrade");
                return TRANSPORT_ERROR;
            }
            return 0;
        }
        size_t room = w->hs.limit - buf_len(&w->hs);
        if (room == 0) { /* the parser should have said 431 already */
            w->status = 431;
            w->why = "request head too large";
            if (!ward_ok(http_response_text(&w->hsout, 431, w->why, false)))
                return TRANSPORT_ERROR;
            return 0;
        }
        if (room > WS_HS_CHUNK)
            room = WS_HS_CHUNK;
        if (!ward_ok(buf_reserve(&w->hs, room))) {
            snprintf(w->cause, sizeof(w->cause), "out of memory for the WebSocket upgrade");
            return TRANSPORT_ERROR;
        }
        ssize_t r = w->iops->read(w->in, buf_tail(&w->hs), room);
        if (r == TRANSPORT_EOF) {
            snprintf(w->cause, sizeof(w->cause), "peer closed during the WebSocket upgrade");
            return TRANSPORT_ERROR;
        }
        if (r == TRANSPORT_ERROR)
            snprintf(w->cause, sizeof(w->cause), "%s", w->iops->cause(w->in));
        if (r <= 0)
            return r;
        buf_commit(&w->hs, (size_t)r);
    }
}

static ssize_t ws_handshake(void *t)
{
    struct ws *w = t;
    if (w->state != WS_UPGRADE)
        return 1;
    if (!w->status) {
        ssize_t r = read_request(w);
        if (r < 0)
            return r;
    }
    while (buf_len(&w->hsout)) {
        ssize_t r = w->iops->write(w->in, buf_head(&w->hsout), buf_len(&w->hsout));
        if (r <= 0) {
            if (r == TRANSPORT_ERROR)
                snprintf(w->cause, sizeof(w->cause), "%s", w->iops->cause(w->in));
            return r == 0 ? TRANSPORT_WANT_WRITE : r;
        }
        buf_consume(&w->hsout, (size_t)r);
    }
    buf_free(&w->hsout);
    if (w->status != 101) {
        w->state = WS_CLOSED;
        snprintf(w->cause, sizeof(w->cause), "WebSocket upgrade refused: %d %s%s%s%s", w->status,
                 w->why, w->detail[0] ? " (" : "", w->detail, w->detail[0] ? ")" : "");
        return TRANSPORT_ERROR;
    }
    w->state = WS_OPEN;
    if (!buf_len(&w->hs))
        buf_free(&w->hs);
    return 1;
}

static const char *ws_cause(void *t)
{
    struct ws *w = t;
    return w->cause[0] ? w->cause : w->iops->cause(w->in);
}

static void ws_destroy(void *t)
{
    struct ws *w = t;
    if (!w)
        return;
    buf_free(&w->hs);
    buf_free(&w->hsout);
    free(w);
}

const struct transport_ops ws_transport_ops = {
    .name = "ws",
    .handshake = ws_handshake,
    .read = ws_read,
    .write = ws_write,
    .cause = ws_cause,
    .destroy = ws_destroy,
    .pending = ws_pending,
    .flush = ws_flush,
    .readable = ws_readable,
};

void *ws_transport_new(const struct ws_settings *s, const struct transport_ops *inner_ops,
                       void *inner)
{
    struct ws *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->s = s;
    w->iops = inner_ops;
    w->in = inner;
    w->state = WS_UPGRADE;
    buf_init(&w->hs, s->http.max_head + WS_HS_CHUNK);
    buf_init(&w->hsout, 0);
    return w;
}

void ws_transport_close(void *t, unsigned code)
{
    struct ws *w = t;
    if (w->state != WS_OPEN || w->tx_left)
        return;
    queue_close(w, code, NULL);
    w->state = WS_CLOSED;
    (void)write_ctl(w); /* best effort: the connection is going anyway */
}

int ws_transport_status(void *t)
{
    return ((struct ws *)t)->status;
}

const char *ws_transport_path(void *t)
{
    return ((struct ws *)t)->path;
}

const char *ws_transport_forwarded(void *t)
{
    struct ws *w = t;
    return w->has_fwd ? w->fwd : NULL;
}

const char *ws_transport_protocol(void *t)
{
    return ((struct ws *)t)->protocol;
}
