/* The WebSocket transport over the TCP transport on a socketpair: the
 * upgrade (answers and refusals), frames in pieces, several in one read,
 * fragmentation, masks, text/unmasked/oversize refusals with their close
 * codes, ping/pong, the close handshake; and, over a transport that takes
 * a few bytes at a time, a frame partly written and continued. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/tcp.h"
#include "net/ws.h"
#include "page_end.h"
#include "test.h"

#define KEY_LINE "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
/* RFC 6455 section 1.3's example key and its answer. */
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char *const mqtt_req =
    "GET /mqtt HTTP/1.1\r\n"
    "Host: broker.example:8083\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n" KEY_LINE "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n"
    "\r\n";

struct pair {
    int peer; /* the test's end: the client */
    struct tcp_transport tcp;
    struct ws_settings s;
    void *ws;
};

static void settings(struct ws_settings *s, uint64_t max_message)
{
    memset(s, 0, sizeof(*s));
    s->rules.path = "/mqtt";
    s->rules.protocols = ws_mqtt_protocols;
    s->rules.nprotocols = WS_MQTT_NPROTOCOLS;
    s->rules.protocol_required = true;
    http_limits_defaults(&s->http);
    s->max_message = max_message;
}

static void pair_open(struct pair *p, uint64_t max_message)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p->peer = sv[0];
    p->tcp.fd = sv[1];
    p->tcp.err = 0;
    settings(&p->s, max_message);
    p->ws = ws_transport_new(&p->s, &tcp_transport_ops, &p->tcp);
    ASSERT(p->ws != NULL);
}

static void pair_close(struct pair *p)
{
    ws_transport_ops.destroy(p->ws);
    close(p->peer);
    close(p->tcp.fd);
}

static void put(struct pair *p, const void *b, size_t n)
{
    ASSERT_EQ(write(p->peer, b, n), (ssize_t)n);
}

/* Everything the server side wrote so far. */
static size_t take(struct pair *p, uint8_t *out, size_t cap)
{
    ssize_t n = read(p->peer, out, cap);
    return n < 0 ? 0 : (size_t)n;
}

/* A client frame: masked unless told, with a fixed mask. */
static size_t frame(uint8_t *out, bool fin, uint8_t op, const void *payload, size_t len,
                    bool masked)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (masked ? mask[i % 4] : 0));
    return n + len;
}

static void upgraded(struct pair *p)
{
    put(p, mqtt_req, strlen(mqtt_req));
    ASSERT_EQ(ws_transport_ops.handshake(p->ws), 1);
    uint8_t ans[1024];
    size_t n = take(p, ans, sizeof(ans) - 1);
    ans[n] = 0;
    ASSERT(strstr((char *)ans, "HTTP/1.1 101 ") == (char *)ans);
}

/* The close frame the server sent: its code. */
static unsigned close_code(const uint8_t *b, size_t n)
{
    ASSERT(n >= 4);
    ASSERT_EQ(b[0], 0x88);
    return (unsigned)(b[2] << 8 | b[3]);
}

static void flush_own(struct pair *p)
{
    if (ws_transport_ops.pending(p->ws))
        ASSERT_EQ(ws_transport_ops.flush(p->ws), 1);
}

TEST(upgrade_in_pieces)
{
    struct pair p;
    pair_open(&p, 1024);
    size_t len = strlen(mqtt_req);
    for (size_t i = 0; i + 1 < len; i += 7) {
        size_t k = len - 1 - i < 7 ? len - 1 - i : 7;
        put(&p, mqtt_req + i, k);
        ASSERT_EQ(ws_transport_ops.handshake(p.ws), TRANSPORT_WANT_READ);
    }
    put(&p, mqtt_req + len - 1, 1);
    ASSERT_EQ(ws_transport_ops.handshake(p.ws), 1);
    char ans[1024];
    size_t n = take(&p, (uint8_t *)ans, sizeof(ans) - 1);
    ans[n] = 0;
    ASSERT(strstr(ans, "HTTP/1.1 101 ") == ans);
    ASSERT(strstr(ans, "Sec-WebSocket-Accept: " ACCEPT "\r\n"));
    ASSERT(strstr(ans, "Sec-WebSocket-Protocol: mqtt\r\n"));
    ASSERT_EQ(ws_transport_status(p.ws), 101);
    ASSERT_STR_EQ(ws_transport_protocol(p.ws), "mqtt");
    ASSERT_STR_EQ(ws_transport_path(p.ws), "/mqtt");
    ASSERT(ws_transport_forwarded(p.ws) == NULL);
    pair_close(&p);
}

/* The answer to a refused upgrade: its status, and the transport's error. */
static void refused(const char *req, int status, const char *why, bool same_origin,
                    const char *const *origins, size_t norigins)
{
    struct pair p;
    pair_open(&p, 1024);
    p.s.same_origin = same_origin;
    p.s.rules.origins = origins;
    p.s.rules.norigins = norigins;
    put(&p, req, strlen(req));
    ASSERT_EQ(ws_transport_ops.handshake(p.ws), TRANSPORT_ERROR);
    ASSERT_EQ(ws_transport_status(p.ws), status);
    char ans[2048], line[32];
    size_t n = take(&p, (uint8_t *)ans, sizeof(ans) - 1);
    ans[n] = 0;
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    if (strstr(ans, line) != ans)
        TEST_FAIL_("expected %d, got: %s", status, ans);
    if (why && !strstr(ws_transport_ops.cause(p.ws), why))
        TEST_FAIL_("cause \"%s\" lacks \"%s\"", ws_transport_ops.cause(p.ws), why);
    pair_close(&p);
}

TEST(upgrade_refusals)
{
    char req[2048];
    const char *head = "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY_LINE
                       "Sec-WebSocket-Version: 13\r\n";
    snprintf(req, sizeof(req), "GET /other HTTP/1.1\r\n%sSec-WebSocket-Protocol: mqtt\r\n\r\n",
             head);
    refused(req, 404, "404", false, NULL, 0);
    snprintf(req, sizeof(req), "GET /mqtt HTTP/1.1\r\n%s\r\n", head); /* no subprotocol */
    refused(req, 400, "400", false, NULL, 0);
    snprintf(req, sizeof(req), "GET /mqtt HTTP/1.1\r\n%sSec-WebSocket-Protocol: stomp\r\n\r\n",
             head);
    refused(req, 400, NULL, false, NULL, 0);
    snprintf(req, sizeof(req), "POST /mqtt HTTP/1.1\r\n%sSec-WebSocket-Protocol: mqtt\r\n\r\n",
             head);
    refused(req, 405, NULL, false, NULL, 0);
    refused("GET /mqtt HTTP/1.1\r\nHost: h\r\n\r\n", 400, NULL, false, NULL, 0);
    refused(
        "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY_LINE
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        426, NULL, false, NULL, 0);
    refused("garbage\r\n\r\n", 400, NULL, false, NULL, 0);
    /* Origin: the allow-list, and same_origin. */
    static const char *const allowed[] = {"https://app.example"};
    snprintf(req, sizeof(req),
             "GET /mqtt HTTP/1.1\r\n%sSec-WebSocket-Protocol: mqtt\r\nOrigin: https://evil.example"
             "\r\n\r\n",
             head);
    refused(req, 403, NULL, false, allowed, 1);
    refused(req, 403, "Origin", true, NULL, 0);
}

TEST(upgrade_head_too_large)
{
    struct pair p;
    pair_open(&p, 1024);
    p.s.http.max_head = 1024;
    char big[4096];
    int n = snprintf(big, sizeof(big), "GET /mqtt HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    memset(big + n, 'a', 2000);
    put(&p, big, (size_t)n + 2000);
    ssize_t r = TRANSPORT_WANT_READ;
    for (int i = 0; i < 8 && r == TRANSPORT_WANT_READ; i++)
        r = ws_transport_ops.handshake(p.ws);
    ASSERT_EQ(r, TRANSPORT_ERROR);
    ASSERT_EQ(ws_transport_status(p.ws), 431);
    pair_close(&p);
}

TEST(upgrade_peer_gone)
{
    struct pair p;
    pair_open(&p, 1024);
    put(&p, "GET /mq", 7);
    ASSERT_EQ(ws_transport_ops.handshake(p.ws), TRANSPORT_WANT_READ);
    shutdown(p.peer, SHUT_WR);
    ASSERT_EQ(ws_transport_ops.handshake(p.ws), TRANSPORT_ERROR);
    ASSERT_EQ(ws_transport_status(p.ws), 0);
    pair_close(&p);
}

TEST(forwarded_for_and_same_origin)
{
    struct pair p;
    pair_open(&p, 1024);
    p.s.same_origin = true;
    const char *req = "GET /mqtt HTTP/1.1\r\nHost: broker.example:8083\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n" KEY_LINE "Sec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: mqttv5\r\nOrigin: https://broker.example:8083\r\n"
                      "X-Forwarded-For: 10.9.9.9, 192.0.2.7 \r\n\r\n";
    put(&p, req, strlen(req));
    ASSERT_EQ(ws_transport_ops.handshake(p.ws), 1);
    ASSERT_STR_EQ(ws_transport_forwarded(p.ws), "192.0.2.7");
    ASSERT_STR_EQ(ws_transport_protocol(p.ws), "mqttv5");
    pair_close(&p);
}

/* Reads what the transport has until it wants more, into out. */
static size_t drain(struct pair *p, uint8_t *out, size_t cap, ssize_t *last)
{
    size_t got = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t r = ws_transport_ops.read(p->ws, out + got, cap - got);
        *last = r;
        if (r <= 0)
            return got;
        got += (size_t)r;
    }
    return got;
}

TEST(frames_in_pieces_and_together)
{
    struct pair p;
    pair_open(&p, 1 << 20);
    upgraded(&p);
    uint8_t wire[70000 * 3], out[70000 * 3], msg[70000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7);
    /* Three frames (7-bit, 16-bit and 64-bit lengths) in one write. */
    size_t n = frame(wire, true, 2, msg, 100, true);
    n += frame(wire + n, true, 2, msg + 100, 1000, true);
    n += frame(wire + n, true, 2, msg + 1100, 68900, true);
    put(&p, wire, n);
    ssize_t last;
    size_t got = drain(&p, out, sizeof(out), &last);
    ASSERT_EQ(last, TRANSPORT_WANT_READ);
    ASSERT_EQ(got, 70000);
    ASSERT_MEM_EQ(out, msg, 70000);
    /* The same byte by byte: payload comes out as it arrives. */
    n = frame(wire, true, 2, msg, 300, true);
    got = 0;
    for (size_t i = 0; i < n; i++) {
        put(&p, wire + i, 1);
        got += drain(&p, out + got, sizeof(out) - got, &last);
        ASSERT_EQ(last, TRANSPORT_WANT_READ);
    }
    ASSERT_EQ(got, 300);
    ASSERT_MEM_EQ(out, msg, 300);
    /* A read smaller than what waits: the rest comes with the next. */
    n = frame(wire, true, 2, msg, 5000, true);
    put(&p, wire, n);
    ASSERT_EQ(ws_transport_ops.read(p.ws, out, 1000), 1000); /* the header, then more */
    got = 1000;
    got += drain(&p, out + got, sizeof(out) - got, &last);
    ASSERT_EQ(got, 5000);
    ASSERT_MEM_EQ(out, msg, 5000);
    pair_close(&p);
}

/* Reads into buffers that end at a page boundary: payload never goes past
 * what was asked, however frames and reads are cut. */
TEST(reads_stay_inside_the_buffer)
{
    struct pair p;
    pair_open(&p, 1 << 20);
    upgraded(&p);
    struct page_end pe;
    page_end_open(&pe);
    uint8_t wire[3000], msg[2500];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 5);
    size_t n = frame(wire, true, 2, msg, 100, true);
    n += frame(wire + n, false, 2, msg + 100, 1400, true);
    n += frame(wire + n, true, 9, "ping", 4, true);
    n += frame(wire + n, true, 0, msg + 1500, 1000, true);
    put(&p, wire, n);
    static const size_t asks[] = {1, 3, 7, 64, 125, 999};
    uint8_t got[2500];
    size_t total = 0;
    for (int i = 0; i < 10000 && total < sizeof(msg); i++) {
        size_t ask = asks[i % 6];
        ssize_t r = ws_transport_ops.read(p.ws, pe.end - ask, ask);
        if (r == TRANSPORT_WANT_READ)
            continue;
        ASSERT(r > 0 && (size_t)r <= ask);
        memcpy(got + total, pe.end - ask, (size_t)r);
        total += (size_t)r;
    }
    ASSERT_EQ(total, sizeof(msg));
    ASSERT_MEM_EQ(got, msg, sizeof(msg));
    page_end_close(&pe);
    pair_close(&p);
}

TEST(fragments_are_one_stream)
{
    struct pair p;
    pair_open(&p, 300);
    upgraded(&p);
    uint8_t wire[1024], out[1024];
    const char *a = "hello ", *b = "wide ", *c = "world";
    /* binary (not fin), a ping in between, continuation, final continuation */
    size_t n = frame(wire, false, 2, a, 6, true);
    n += frame(wire + n, true, 9, "pp", 2, true);
    n += frame(wire + n, false, 0, b, 5, true);
    n += frame(wire + n, true, 0, c, 5, true);
    put(&p, wire, n);
    ssize_t last;
    size_t got = drain(&p, out, sizeof(out), &last);
    ASSERT_EQ(got, 16);
    ASSERT_MEM_EQ(out, "hello wide world", 16);
    /* The pong waits as the transport's own output. */
    ASSERT(ws_transport_ops.pending(p.ws));
    ASSERT_EQ(ws_transport_ops.flush(p.ws), 1);
    ASSERT(!ws_transport_ops.pending(p.ws));
    uint8_t pong[16];
    ASSERT_EQ(take(&p, pong, sizeof(pong)), 4);
    ASSERT_MEM_EQ(pong, "\x8a\x02pp", 4);
    /* The cap counts a message's fragments together: 200 + 101 > 300. */
    uint8_t big[200] = {0};
    n = frame(wire, false, 2, big, 200, true);
    n += frame(wire + n, true, 0, big, 101, true);
    put(&p, wire, n);
    drain(&p, out, sizeof(out), &last);
    ASSERT_EQ(last, TRANSPORT_ERROR);
    ASSERT(strstr(ws_transport_ops.cause(p.ws), "1009"));
    flush_own(&p);
    ASSERT_EQ(close_code(wire, take(&p, wire, sizeof(wire))), 1009);
    pair_close(&p);
}

/* One bad frame after an upgrade: the close code the server answers. */
static void bad_frame(const uint8_t *wire, size_t n, unsigned code, uint64_t cap)
{
    struct pair p;
    pair_open(&p, cap);
    upgraded(&p);
    put(&p, wire, n);
    uint8_t out[512];
    ssize_t last;
    drain(&p, out, sizeof(out), &last);
    ASSERT_EQ(last, TRANSPORT_ERROR);
    char want[16];
    snprintf(want, sizeof(want), "close %u", code);
    if (!strstr(ws_transport_ops.cause(p.ws), want))
        TEST_FAIL_("cause \"%s\" lacks \"%s\"", ws_transport_ops.cause(p.ws), want);
    flush_own(&p);
    ASSERT_EQ(close_code(out, take(&p, out, sizeof(out))), code);
    /* Nothing more goes either way. */
    ASSERT_EQ(ws_transport_ops.read(p.ws, out, sizeof(out)), TRANSPORT_ERROR);
    ASSERT_EQ(ws_transport_ops.write(p.ws, "x", 1), TRANSPORT_ERROR);
    pair_close(&p);
}

TEST(refused_frames)
{
    uint8_t w[256];
    bad_frame(w, frame(w, true, 1, "text", 4, true), 1003, 1024);  /* text */
    bad_frame(w, frame(w, true, 2, "bin", 3, false), 1002, 1024);  /* unmasked */
    bad_frame(w, frame(w, true, 0, "cont", 4, true), 1002, 1024);  /* stray continuation */
    bad_frame(w, frame(w, true, 3, "op3", 3, true), 1002, 1024);   /* reserved opcode */
    bad_frame(w, frame(w, true, 2, "toolarge", 8, true), 1009, 4); /* over the cap */
    size_t n = frame(w, true, 2, "ab", 2, true);
    w[0] |= 0x40; /* RSV1: no extension was agreed */
    bad_frame(w, n, 1002, 1024);
    n = frame(w, false, 2, "ab", 2, true);
    n += frame(w + n, true, 2, "cd", 2, true); /* a new message inside a fragmented one */
    bad_frame(w, n, 1002, 1024);
    /* A ping of 126 bytes, a fragmented ping. */
    uint8_t big[126] = {0};
    bad_frame(w, frame(w, true, 9, big, 126, true), 1002, 1024);
    bad_frame(w, frame(w, false, 9, "p", 1, true), 1002, 1024);
    bad_frame(w, frame(w, true, 8, "x", 1, true), 1002, 1024); /* a 1-byte close */
    /* Lengths not in their shortest form, or past 2^63. */
    static const uint8_t long16[] = {0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4};
    bad_frame(long16, sizeof(long16), 1002, 1024);
    static const uint8_t long64[] = {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
    bad_frame(long64, sizeof(long64), 1002, 1 << 20);
    static const uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    bad_frame(huge, sizeof(huge), 1002, 1024);
    static const uint8_t big64[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    bad_frame(big64, sizeof(big64), 1009, 1 << 20); /* 4 GiB announced: refused at once */
}

TEST(close_handshake)
{
    struct pair p;
    pair_open(&p, 1024);
    upgraded(&p);
    uint8_t wire[256], out[256];
    /* Payload, then a close with 1000 in the same read: the payload first. */
    size_t n = frame(wire, true, 2, "last", 4, true);
    n += frame(wire + n, true, 8,
               "\x03\xe8"
               "bye",
               5, true);
    put(&p, wire, n);
    ASSERT_EQ(ws_transport_ops.read(p.ws, out, sizeof(out)), 4);
    ASSERT_MEM_EQ(out, "last", 4);
    ASSERT(ws_transport_ops.readable(p.ws)); /* the end waits without a socket event */
    ASSERT_EQ(ws_transport_ops.read(p.ws, out, sizeof(out)), TRANSPORT_EOF);
    flush_own(&p);
    n = take(&p, out, sizeof(out));
    ASSERT_EQ(n, 4);
    ASSERT_EQ(close_code(out, n), 1000);
    pair_close(&p);

    /* A close without a code is answered without one. */
    pair_open(&p, 1024);
    upgraded(&p);
    put(&p, wire, frame(wire, true, 8, "", 0, true));
    ASSERT_EQ(ws_transport_ops.read(p.ws, out, sizeof(out)), TRANSPORT_EOF);
    flush_own(&p);
    ASSERT_EQ(take(&p, out, sizeof(out)), 2);
    ASSERT_MEM_EQ(out, "\x88\x00", 2);
    pair_close(&p);

    /* The peer gone without a close frame: end of stream after the payload. */
    pair_open(&p, 1024);
    upgraded(&p);
    put(&p, wire, frame(wire, true, 2, "abc", 3, true));
    shutdown(p.peer, SHUT_WR);
    ssize_t last;
    ASSERT_EQ(drain(&p, out, sizeof(out), &last), 3);
    ASSERT_EQ(last, TRANSPORT_EOF);
    pair_close(&p);

    /* The server closing: a close frame with its code. */
    pair_open(&p, 1024);
    upgraded(&p);
    ws_transport_close(p.ws, 1001);
    ASSERT_EQ(close_code(out, take(&p, out, sizeof(out))), 1001);
    pair_close(&p);
}

TEST(pings_are_answered_between_frames)
{
    struct pair p;
    pair_open(&p, 1 << 20);
    upgraded(&p);
    uint8_t wire[256], out[256];
    put(&p, wire, frame(wire, true, 9, "12345", 5, true));
    ssize_t last;
    ASSERT_EQ(drain(&p, out, sizeof(out), &last), 0);
    ASSERT_EQ(last, TRANSPORT_WANT_READ);
    ASSERT(ws_transport_ops.pending(p.ws));
    /* A write goes after the pong, in its own frame. */
    ASSERT_EQ(ws_transport_ops.write(p.ws, "data", 4), 4);
    ASSERT(!ws_transport_ops.pending(p.ws));
    ASSERT_EQ(take(&p, out, sizeof(out)), 7 + 6);
    ASSERT_MEM_EQ(out,
                  "\x8a\x05"
                  "12345"
                  "\x82\x04"
                  "data",
                  13);
    /* A flood of pings while nothing is written: answers are bounded. */
    for (int i = 0; i < 50; i++)
        put(&p, wire, frame(wire, true, 9, "x", 1, true));
    ASSERT_EQ(drain(&p, out, sizeof(out), &last), 0);
    ASSERT_EQ(ws_transport_ops.flush(p.ws), 1);
    size_t n = take(&p, out, sizeof(out));
    ASSERT(n >= 3 && n <= 3 * 127);
    pair_close(&p);
}

TEST(server_frames)
{
    struct pair p;
    pair_open(&p, 1024);
    upgraded(&p);
    uint8_t big[70000], out[70100];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    /* Unmasked binary frames, lengths of each size class. */
    ASSERT_EQ(ws_transport_ops.write(p.ws, big, 125), 125);
    ASSERT_EQ(take(&p, out, sizeof(out)), 127);
    ASSERT_MEM_EQ(out, "\x82\x7d", 2);
    ASSERT_MEM_EQ(out + 2, big, 125);
    ASSERT_EQ(ws_transport_ops.write(p.ws, big, 300), 300);
    ASSERT_EQ(take(&p, out, sizeof(out)), 304);
    ASSERT_MEM_EQ(out, "\x82\x7e\x01\x2c", 4);
    pair_close(&p);
}

/* An inner transport that serves scripted input and takes at most `room`
 * bytes per write, then wants to write until unblocked; what it took is
 * kept for the test to parse. */
struct slow {
    const char *in;
    size_t in_len, in_off;
    uint8_t out[300000];
    size_t len;
    size_t room;
    bool blocked;
};

static ssize_t slow_write(void *t, const void *b, size_t n)
{
    struct slow *s = t;
    if (s->blocked)
        return TRANSPORT_WANT_WRITE;
    size_t k = n < s->room ? n : s->room;
    memcpy(s->out + s->len, b, k);
    s->len += k;
    s->blocked = k < n; /* a short write: "the socket is full" */
    return (ssize_t)k;
}

static ssize_t slow_read(void *t, void *b, size_t n)
{
    struct slow *s = t;
    size_t k = s->in_len - s->in_off < n ? s->in_len - s->in_off : n;
    if (!k)
        return TRANSPORT_WANT_READ;
    memcpy(b, s->in + s->in_off, k);
    s->in_off += k;
    return (ssize_t)k;
}

static const char *slow_cause(void *t)
{
    (void)t;
    return "slow";
}

static void slow_destroy(void *t)
{
    (void)t;
}

static const struct transport_ops slow_ops = {.name = "slow",
                                              .read = slow_read,
                                              .write = slow_write,
                                              .cause = slow_cause,
                                              .destroy = slow_destroy};

/* Writes buf as net does: the unsent rest stays at the head and is offered
 * again, with `extra` more bytes appended after the first short write. */
TEST(partly_written_frames_are_continued)
{
    static struct slow sl;
    memset(&sl, 0, sizeof(sl));
    sl.in = mqtt_req;
    sl.in_len = strlen(mqtt_req);
    sl.room = 1 << 20;
    struct ws_settings s;
    settings(&s, 1024);
    void *ws = ws_transport_new(&s, &slow_ops, &sl);
    ASSERT(ws != NULL);
    ASSERT_EQ(ws_transport_ops.handshake(ws), 1);
    sl.len = 0; /* drop the 101 */

    static uint8_t q[100000];
    for (size_t i = 0; i < sizeof(q); i++)
        q[i] = (uint8_t)(i * 13);
    size_t head = 0, tail = 40000; /* net's queue: q[head, tail) */
    sl.room = 1;                   /* the header itself is cut */
    int calls = 0;
    while (head < tail && calls++ < 100000) {
        ssize_t r = ws_transport_ops.write(ws, q + head, tail - head);
        if (r > 0) {
            head += (size_t)r;
        } else {
            ASSERT_EQ(r, TRANSPORT_WANT_WRITE);
            sl.blocked = false;
            sl.room = sl.room < 4096 ? sl.room * 3 : 4096;
            if (tail == 40000)
                tail = sizeof(q); /* more was queued meanwhile */
        }
    }
    ASSERT_EQ(head, sizeof(q));
    /* The sink holds whole unmasked binary frames whose payloads, joined,
     * are q: the first frame had 40000 bytes, the later ones the rest. */
    size_t at = 0, payload = 0, frames = 0;
    while (at < sl.len) {
        ASSERT_EQ(sl.out[at], 0x82);
        uint64_t len = sl.out[at + 1] & 0x7f;
        ASSERT_EQ(sl.out[at + 1] & 0x80, 0);
        at += 2;
        if (len == 126) {
            len = (uint64_t)sl.out[at] << 8 | sl.out[at + 1];
            at += 2;
        } else if (len == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | sl.out[at + i];
            at += 8;
        }
        if (frames == 0)
            ASSERT_EQ(len, 40000);
        ASSERT(at + len <= sl.len);
        ASSERT_MEM_EQ(sl.out + at, q + payload, len);
        payload += len;
        at += len;
        frames++;
    }
    ASSERT_EQ(payload, sizeof(q));
    ASSERT(frames >= 2);

    /* A pong found while a frame is half written waits for its end. */
    sl.len = 0;
    sl.room = 10;
    sl.blocked = false;
    ASSERT_EQ(ws_transport_ops.write(ws, q, 100), 8); /* 2 header bytes + 8 */
    uint8_t ping[16];
    size_t pn = frame(ping, true, 9, "hi", 2, true);
    sl.in = (const char *)ping;
    sl.in_len = pn;
    sl.in_off = 0;
    uint8_t out[64];
    ASSERT_EQ(ws_transport_ops.read(ws, out, sizeof(out)), TRANSPORT_WANT_READ);
    ASSERT(ws_transport_ops.pending(ws));
    sl.blocked = false;
    sl.room = 1000;
    ASSERT_EQ(ws_transport_ops.write(ws, q + 8, 92), 92);
    ASSERT_EQ(ws_transport_ops.flush(ws), 1);
    ASSERT_EQ(sl.len, 102 + 4);
    ASSERT_MEM_EQ(sl.out + 102, "\x8a\x02hi", 4);
    ws_transport_ops.destroy(ws);
}

int main(void)
{
    RUN(upgrade_in_pieces);
    RUN(upgrade_refusals);
    RUN(upgrade_head_too_large);
    RUN(upgrade_peer_gone);
    RUN(forwarded_for_and_same_origin);
    RUN(frames_in_pieces_and_together);
    RUN(reads_stay_inside_the_buffer);
    RUN(fragments_are_one_stream);
    RUN(refused_frames);
    RUN(close_handshake);
    RUN(pings_are_answered_between_frames);
    RUN(server_frames);
    RUN(partly_written_frames_are_continued);
    TEST_DONE();
}
