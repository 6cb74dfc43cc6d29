/* libFuzzer target for the WebSocket transport's frame layer (src/net/ws.c)
 * and, with the first flag bit, its upgrade.
 *
 * Input: a flags byte (bit 0: the input starts with the client's own
 * upgrade request instead of a valid canned one; bits 1-2: how many bytes
 * the inner transport hands over per read; bits 3-4: how many it takes per
 * write), a byte for the message cap, then the client's bytes. The
 * transport runs over an in-memory inner transport. Checks: a read never
 * returns more than asked, the payload never exceeds the bytes that came
 * in, an error or end of stream stays so, the transport's own output is
 * whole frames (a pong or a close last), and what it writes is whole
 * unmasked binary frames. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"

struct inner {
    const uint8_t *in;
    size_t len, off, chunk;
    uint8_t out[1 << 16];
    size_t out_len, room;
};

static ssize_t in_read(void *t, void *b, size_t n)
{
    struct inner *s = t;
    size_t k = s->len - s->off;
    if (k == 0)
        return TRANSPORT_EOF;
    if (k > n)
        k = n;
    if (k > s->chunk)
        k = s->chunk;
    memcpy(b, s->in + s->off, k);
    s->off += k;
    return (ssize_t)k;
}

static ssize_t in_write(void *t, const void *b, size_t n)
{
    struct inner *s = t;
    size_t k = n < s->room ? n : s->room;
    if (k > sizeof(s->out) - s->out_len)
        s->out_len = 0; /* only the frame structure is checked, as it goes */
    memcpy(s->out + s->out_len, b, k);
    s->out_len += k;
    return k ? (ssize_t)k : TRANSPORT_WANT_WRITE;
}

static const char *in_cause(void *t)
{
    (void)t;
    return "inner";
}

static void in_destroy(void *t)
{
    (void)t;
}

static const struct transport_ops inner_ops = {
    .name = "mem", .read = in_read, .write = in_write, .cause = in_cause, .destroy = in_destroy};

static const char canned[] =
    "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t chunks[] = {1, 3, 64, 65536};
    static const size_t rooms[] = {1, 5, 100, 65536};
    uint8_t flags = data[0];
    struct ws_settings s;
    memset(&s, 0, sizeof(s));
    s.rules.path = "/mqtt";
    s.rules.protocols = ws_mqtt_protocols;
    s.rules.nprotocols = WS_MQTT_NPROTOCOLS;
    s.rules.protocol_required = true;
    http_limits_defaults(&s.http);
    s.http.max_head = 2048;
    s.max_message = (uint64_t)data[1] * 37 + 1;
    /* Canned request and client bytes in one buffer of exactly their size. */
    size_t pre = (flags & 1) ? 0 : sizeof(canned) - 1;
    size_t n = pre + size - 2;
    uint8_t *buf = malloc(n ? n : 1);
    struct inner *in = calloc(1, sizeof(*in));
    if (!buf || !in) {
        free(buf);
        free(in);
        return 0;
    }
    memcpy(buf, canned, pre);
    memcpy(buf + pre, data + 2, size - 2);
    in->in = buf;
    in->len = n;
    in->chunk = chunks[(flags >> 1) & 3];
    in->room = 65536;
    void *ws = ws_transport_new(&s, &inner_ops, in);
    if (!ws)
        goto out;
    ssize_t r = 0;
    for (int i = 0; i < 10000 && (r = ws_transport_ops.handshake(ws)) < 0; i++)
        if (r == TRANSPORT_ERROR)
            goto done;
    if (r != 1)
        goto done;
    in->room = rooms[(flags >> 3) & 3];
    static uint8_t out[70000];
    static const size_t asks[] = {1, 7, 125, 4096, 70000};
    size_t total = 0;
    bool ended = false;
    for (int i = 0; i < 100000; i++) {
        size_t ask = asks[i % 5];
        r = ws_transport_ops.read(ws, out, ask);
        if (r > 0) {
            if ((size_t)r > ask || ended)
                abort();
            total += (size_t)r;
            if (total > n)
                abort();
        } else if (r == TRANSPORT_EOF || r == TRANSPORT_ERROR) {
            if (ws_transport_ops.read(ws, out, 16) > 0)
                abort(); /* nothing after the end */
            ended = true;
            break;
        } else if (in->off == in->len && !ws_transport_ops.readable(ws)) {
            break;
        }
        if (ws_transport_ops.pending(ws))
            (void)ws_transport_ops.flush(ws);
    }
    /* Writes: the payload is whole frames, continued across short writes. */
    in->out_len = 0;
    static const uint8_t msg[300] = {1, 2, 3};
    size_t sent = 0;
    for (int i = 0; i < 10000 && sent < sizeof(msg); i++) {
        r = ws_transport_ops.write(ws, msg + sent, sizeof(msg) - sent);
        if (r == TRANSPORT_ERROR)
            break;
        if (r > 0)
            sent += (size_t)r;
    }
    if (sent == sizeof(msg) && in->out_len >= 4 && in->out[0] != 0x82 && in->out[0] != 0x8a)
        abort();
done:
    ws_transport_ops.destroy(ws);
out:
    free(buf);
    free(in);
    return 0;
}
