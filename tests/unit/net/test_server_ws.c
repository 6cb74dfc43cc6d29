/* src/net/server.c with WebSocket listeners: the upgrade as a phase before
 * on_open, a greeting as the first frame after the 101, echo through
 * frames, a pong while the handler sends nothing, the close handshake both
 * ways, refusals and timeouts counted, X-Forwarded-For from a trusted
 * proxy only, and wss (WebSocket over TLS). The PKI is made at run time
 * with the openssl CLI (scratch.h): nothing secret is committed. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "net/net.h"
#include "net/tcp.h"
#include "net_fixture.h"
#include "pki_fixture.h"
#include "scratch.h"
#include "test.h"
#include "tls/tls.h"

static char dir[] = "/tmp/ward-net-ws-XXXXXX";
static char err[1024];

static _Atomic int opens, closes;
static _Atomic bool seen_tls;
static char seen_peer[64];
static pthread_mutex_t peer_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t greeting(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap)
{
    (void)ctx, (void)c;
    return (size_t)snprintf((char *)buf, cap, "INFO {}\r\n");
}

static void *on_open(void *ctx, struct net_conn *c)
{
    (void)ctx;
    pthread_mutex_lock(&peer_lock);
    snprintf(seen_peer, sizeof(seen_peer), "%s", net_conn_peer(c));
    pthread_mutex_unlock(&peer_lock);
    atomic_store(&seen_tls, net_conn_tls_server(c) != NULL);
    if (net_conn_send(c, "hello\n", 6) < 0)
        return NULL;
    atomic_fetch_add(&opens, 1);
    return c;
}

/* Echoes whole lines; "bye\n" makes the server close. */
static size_t on_data(void *user, const uint8_t *d, size_t n)
{
    const uint8_t *nl = memchr(d, '\n', n);
    if (!nl)
        return 0;
    size_t len = (size_t)(nl - d) + 1;
    if (len == 4 && memcmp(d, "bye\n", 4) == 0)
        net_conn_close(user, "bye");
    else
        ASSERT_EQ(net_conn_send(user, d, len), 0);
    return len;
}

static void on_close(void *user, const char *why)
{
    (void)user, (void)why;
    atomic_fetch_add(&closes, 1);
}

static const struct net_handler handler = {
    .on_open = on_open, .on_data = on_data, .on_close = on_close};

static void reset(void)
{
    atomic_store(&opens, 0);
    atomic_store(&closes, 0);
    atomic_store(&seen_tls, false);
    seen_peer[0] = '\0';
}

static struct net_server *server(void)
{
    struct net_config cfg = {.workers = 2, .max_input = 1 << 20, .max_output = 1 << 20};
    return net_server_new(&cfg, &handler, NULL);
}

static void stop(struct net_server *s)
{
    net_server_stop(s);
    net_server_join(s);
    net_server_free(s);
}

static bool wait_for(_Atomic int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++)
        usleep(10000);
    return atomic_load(v) >= want;
}

static uint64_t stat(struct net_server *s, enum net_stat st)
{
    uint64_t v[NET_NSTATS];
    ASSERT(net_server_listener_stats(s, 0, v));
    return v[st];
}

/* The client's side: a blocking socket (five-second reads, net_fixture.h)
 * through the TCP or the TLS client transport. */
struct client {
    int fd;
    struct tcp_transport tcp;
    const struct transport_ops *ops;
    void *t;
};

static void client_plain(struct client *c, uint16_t port)
{
    c->fd = dial(port);
    c->tcp.fd = c->fd;
    c->ops = &tcp_transport_ops;
    c->t = &c->tcp;
}

static void client_tls(struct client *c, struct tls_client *tc, uint16_t port)
{
    c->fd = dial(port);
    c->ops = &tls_transport_ops;
    c->t = tls_client_transport_new(tc, c->fd, "localhost");
    ASSERT(c->t);
    ssize_t r = 0;
    for (int i = 0; i < 100 && r != 1 && r != TRANSPORT_ERROR; i++)
        r = tls_transport_ops.handshake(c->t);
    if (r != 1)
        TEST_FAIL_("client handshake: %s", tls_transport_ops.cause(c->t));
}

static void client_close(struct client *c)
{
    if (c->ops == &tls_transport_ops)
        tls_transport_ops.destroy(c->t);
    close(c->fd);
}

static void put(struct client *c, const void *b, size_t n)
{
    size_t done = 0;
    for (int i = 0; i < 100 && done < n; i++) {
        ssize_t r = c->ops->write(c->t, (const char *)b + done, n - done);
        if (r > 0)
            done += (size_t)r;
    }
    ASSERT_EQ(done, n);
}

/* Reads n bytes; fewer if the peer closed or the deadline passed. */
static size_t get(struct client *c, void *b, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 100 && got < n; i++) {
        ssize_t r = c->ops->read(c->t, (char *)b + got, n - got);
        if (r == TRANSPORT_EOF || r == TRANSPORT_ERROR)
            break;
        if (r > 0)
            got += (size_t)r;
    }
    return got;
}

/* Whether the server closes (anything before that, such as a refusal's
 * body, is skipped); false at the read deadline. */
static bool at_eof(struct client *c)
{
    char b[256];
    for (int i = 0; i < 100; i++) {
        ssize_t r = c->ops->read(c->t, b, sizeof(b));
        if (r == TRANSPORT_EOF || r == TRANSPORT_ERROR)
            return true;
        if (r < 0)
            return false; /* the deadline passed */
    }
    return false;
}

/* Sends an upgrade request; returns the answer's status. */
static int upgrade(struct client *c, const char *path, const char *extra)
{
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, extra);
    ASSERT(n > 0 && (size_t)n < sizeof(req));
    put(c, req, (size_t)n);
    char head[2048];
    size_t len = 0;
    while (len + 1 < sizeof(head) && get(c, head + len, 1) == 1) {
        len++;
        if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[len] = '\0';
    int status = 0;
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
        TEST_FAIL_("no status line: '%s'", head);
    return status;
}

static void send_frame(struct client *c, uint8_t op, const void *p, size_t n)
{
    uint8_t f[256];
    ASSERT(n <= 125);
    static const uint8_t key[4] = {9, 8, 7, 6};
    f[0] = (uint8_t)(0x80 | op);
    f[1] = (uint8_t)(0x80 | n);
    memcpy(f + 2, key, 4);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = ((const uint8_t *)p)[i] ^ key[i % 4];
    put(c, f, 6 + n);
}

/* One server frame (unmasked, payload at most cap): its opcode, or -1. */
static int recv_frame(struct client *c, char *p, size_t cap, size_t *len)
{
    uint8_t h[10];
    if (get(c, h, 2) != 2)
        return -1;
    ASSERT_EQ(h[1] & 0x80, 0);
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        ASSERT_EQ(get(c, h + 2, 2), 2);
        n = (size_t)h[2] << 8 | h[3];
    }
    ASSERT(n < cap);
    ASSERT_EQ(get(c, p, n), n);
    p[n] = '\0';
    *len = n;
    return h[0];
}

static void expect_frame(struct client *c, int op, const char *payload, size_t n)
{
    char p[1024];
    size_t len = 0;
    int got = recv_frame(c, p, sizeof(p), &len);
    if (got != op || len != n || memcmp(p, payload, n) != 0)
        TEST_FAIL_("frame 0x%x '%.*s', wanted 0x%x '%.*s'", got, (int)len, p, op, (int)n, payload);
}

/* Binary frames until their payloads, joined, are `want` (how the bytes
 * are cut into frames is the sender's business). */
static void expect_stream(struct client *c, const char *want)
{
    char got[1024], p[1024];
    size_t n = 0, len = 0, w = strlen(want);
    while (n < w) {
        int op = recv_frame(c, p, sizeof(p), &len);
        if (op != 0x82 || n + len > w)
            TEST_FAIL_("frame 0x%x '%.*s' after '%.*s'", op, (int)len, p, (int)n, got);
        memcpy(got + n, p, len);
        n += len;
    }
    ASSERT_MEM_EQ(got, want, w);
}

TEST(greeting_echo_ping_close)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats+ws://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    struct client c;
    client_plain(&c, net_server_port(s, 0));
    /* Nothing, not even the greeting, before the 101: NATS takes any path. */
    ASSERT_EQ(upgrade(&c, "/any/path", ""), 101);
    expect_stream(&c, "INFO {}\r\nhello\n"); /* the greeting first */
    ASSERT(wait_for(&opens, 1));
    ASSERT(!atomic_load(&seen_tls));
    /* A line split across two frames comes back in one. */
    send_frame(&c, 2, "pi", 2);
    send_frame(&c, 2, "ng\n", 3);
    expect_frame(&c, 0x82, "ping\n", 5);
    /* A ping is answered while the handler sends nothing. */
    send_frame(&c, 9, "are you there", 13);
    expect_frame(&c, 0x8a, "are you there", 13);
    /* A close is answered with its code, then the end. */
    send_frame(&c, 8, "\x03\xe9", 2);
    expect_frame(&c, 0x88, "\x03\xe9", 2);
    ASSERT(at_eof(&c));
    ASSERT(wait_for(&closes, 1));
    ASSERT_EQ(stat(s, NET_ST_WS_UPGRADES), 1);
    ASSERT_EQ(stat(s, NET_ST_WS_REFUSED), 0);
    client_close(&c);
    stop(s);
}

TEST(server_close_and_refusals)
{
    reset();
    struct net_server *s = server();
    ASSERT_EQ(net_server_listen(s, "ws://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    uint16_t port = net_server_port(s, 0);
    struct client c;
    client_plain(&c, port);
    ASSERT_EQ(upgrade(&c, "/mqtt", "Sec-WebSocket-Protocol: mqttv3.1.1\r\n"), 101);
    expect_frame(&c, 0x82, "hello\n", 6);
    send_frame(&c, 2, "bye\n", 4);
    expect_frame(&c, 0x88, "\x03\xe8", 2); /* the server's own close: 1000 */
    ASSERT(at_eof(&c));
    client_close(&c);
    /* Refused upgrades: answered, counted, never opened. */
    client_plain(&c, port);
    ASSERT_EQ(upgrade(&c, "/other", "Sec-WebSocket-Protocol: mqtt\r\n"), 404);
    ASSERT(at_eof(&c));
    client_close(&c);
    client_plain(&c, port);
    ASSERT_EQ(upgrade(&c, "/mqtt", ""), 400);
    ASSERT(at_eof(&c));
    client_close(&c);
    ASSERT_EQ(stat(s, NET_ST_WS_REFUSED), 2);
    ASSERT_EQ(stat(s, NET_ST_WS_UPGRADES), 1);
    ASSERT_EQ(atomic_load(&opens), 1);
    /* A text frame: close 1003. */
    client_plain(&c, port);
    ASSERT_EQ(upgrade(&c, "/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n"), 101);
    expect_frame(&c, 0x82, "hello\n", 6);
    send_frame(&c, 1, "text\n", 5);
    char p[256];
    size_t len;
    ASSERT_EQ(recv_frame(&c, p, sizeof(p), &len), 0x88);
    ASSERT(len >= 2 && (uint8_t)p[0] == 0x03 && (uint8_t)p[1] == 0xeb);
    ASSERT(at_eof(&c));
    client_close(&c);
    ASSERT(wait_for(&closes, 2));
    stop(s);
}

TEST(forwarded_for_only_from_trusted_proxies)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts trusted = {.trusted_proxies = "127.0.0.0/8"};
    ASSERT_EQ(net_server_listen_opts(s, "ws://127.0.0.1:0/ws", NULL, &trusted, err, sizeof(err)),
              0);
    struct net_listen_opts other = {.trusted_proxies = "10.0.0.0/8"};
    ASSERT_EQ(net_server_listen_opts(s, "ws://127.0.0.1:0/ws", NULL, &other, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    const char *xff =
        "Sec-WebSocket-Protocol: mqtt\r\nX-Forwarded-For: 192.0.2.1, 198.51.100.7\r\n";
    struct client c;
    client_plain(&c, net_server_port(s, 0));
    ASSERT_EQ(upgrade(&c, "/ws", xff), 101);
    expect_frame(&c, 0x82, "hello\n", 6);
    pthread_mutex_lock(&peer_lock);
    ASSERT_STR_EQ(seen_peer, "198.51.100.7");
    pthread_mutex_unlock(&peer_lock);
    client_close(&c);
    /* Some proxies add the client's port; IPv6 in brackets or not. */
    static const char *const forms[][2] = {{"192.0.2.9:4711", "192.0.2.9"},
                                           {"[2001:db8::7]:4711", "2001:db8::7"},
                                           {"2001:db8::8", "2001:db8::8"}};
    for (int i = 0; i < 3; i++) {
        char h[256];
        snprintf(h, sizeof(h), "Sec-WebSocket-Protocol: mqtt\r\nX-Forwarded-For: %s\r\n",
                 forms[i][0]);
        client_plain(&c, net_server_port(s, 0));
        ASSERT_EQ(upgrade(&c, "/ws", h), 101);
        expect_frame(&c, 0x82, "hello\n", 6);
        pthread_mutex_lock(&peer_lock);
        ASSERT_STR_EQ(seen_peer, forms[i][1]);
        pthread_mutex_unlock(&peer_lock);
        client_close(&c);
    }
    /* Not an address: the socket's peer stays. */
    client_plain(&c, net_server_port(s, 0));
    ASSERT_EQ(upgrade(&c, "/ws", "Sec-WebSocket-Protocol: mqtt\r\nX-Forwarded-For: unknown\r\n"),
              101);
    expect_frame(&c, 0x82, "hello\n", 6);
    pthread_mutex_lock(&peer_lock);
    ASSERT(strncmp(seen_peer, "127.0.0.1:", 10) == 0);
    pthread_mutex_unlock(&peer_lock);
    client_close(&c);
    client_plain(&c, net_server_port(s, 1));
    ASSERT_EQ(upgrade(&c, "/ws", xff), 101);
    expect_frame(&c, 0x82, "hello\n", 6);
    pthread_mutex_lock(&peer_lock);
    ASSERT(strncmp(seen_peer, "127.0.0.1:", 10) == 0);
    pthread_mutex_unlock(&peer_lock);
    client_close(&c);
    ASSERT(wait_for(&closes, 6));
    stop(s);
}

TEST(upgrade_timeout_and_header_limit)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts o = {.handshake_timeout_ms = 300, .ws_max_header = 1024};
    ASSERT_EQ(net_server_listen_opts(s, "ws://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    struct client c;
    client_plain(&c, net_server_port(s, 0));
    put(&c, "GET /mqtt HTTP/1.1\r\nHost: x\r\n", 29);
    ASSERT(at_eof(&c)); /* closed at the deadline, never opened */
    client_close(&c);
    ASSERT_EQ(stat(s, NET_ST_HS_TIMEOUTS), 1);
    char pad[1500];
    memset(pad, 'a', sizeof(pad) - 3);
    memcpy(pad + sizeof(pad) - 3, "\r\n", 3);
    char extra[1600];
    snprintf(extra, sizeof(extra), "X-Pad: %s", pad);
    client_plain(&c, net_server_port(s, 0));
    ASSERT_EQ(upgrade(&c, "/mqtt", extra), 431);
    client_close(&c);
    ASSERT_EQ(atomic_load(&opens), 0);
    stop(s);
}

TEST(wss)
{
    reset();
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .cafile = scratch_path("ca.crt"),
                                   .verify = TLS_VERIFY_NONE};
    struct tls_server *ts = tls_server_new(&sc, err, sizeof(err));
    if (!ts)
        TEST_FAIL_("tls_server_new: %s", err);
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
    struct tls_client *tc = tls_client_new(&cc, err, sizeof(err));
    if (!tc)
        TEST_FAIL_("tls_client_new: %s", err);
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats+wss://127.0.0.1:0/nats", ts, &o, err, sizeof(err)),
              0);
    ASSERT_EQ(net_server_listen_opts(s, "wss://127.0.0.1:0", ts, NULL, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    struct client c;
    client_tls(&c, tc, net_server_port(s, 0));
    ASSERT_EQ(upgrade(&c, "/nats", ""), 101);
    expect_stream(&c, "INFO {}\r\nhello\n");
    ASSERT(atomic_load(&seen_tls));
    send_frame(&c, 2, "over tls\n", 9);
    expect_frame(&c, 0x82, "over tls\n", 9);
    client_close(&c);
    client_tls(&c, tc, net_server_port(s, 0));
    ASSERT_EQ(upgrade(&c, "/other", ""), 404); /* a NATS listener with a path serves only it */
    client_close(&c);
    client_tls(&c, tc, net_server_port(s, 1));
    ASSERT_EQ(upgrade(&c, "/mqtt", "Sec-WebSocket-Protocol: mqttv5\r\n"), 101);
    expect_frame(&c, 0x82, "hello\n", 6);
    send_frame(&c, 2, "bye\n", 4);
    expect_frame(&c, 0x88, "\x03\xe8", 2);
    ASSERT(at_eof(&c));
    client_close(&c);
    ASSERT(wait_for(&closes, 2));
    stop(s);
    tls_client_free(tc);
    tls_server_free(ts);
}

TEST(urls)
{
    struct net_server *s = server();
    ASSERT(net_server_listen(s, "tcp://127.0.0.1:0/mqtt", err, sizeof(err)) < 0);
    ASSERT(strstr(err, "only WebSocket listeners serve a path"));
    ASSERT(net_server_listen(s, "ws://127.0.0.1:0/a b", err, sizeof(err)) < 0);
    ASSERT(strstr(err, "WebSocket path"));
    ASSERT(net_server_listen(s, "wss://127.0.0.1:0", err, sizeof(err)) < 0); /* no TLS given */
    ASSERT(strstr(err, "unsupported scheme 'wss'"));
    struct net_listen_opts o = {.ws_path = "mqtt"};
    ASSERT(net_server_listen_opts(s, "ws://127.0.0.1:0", NULL, &o, err, sizeof(err)) < 0);
    ASSERT(strstr(err, "WebSocket path 'mqtt'"));
    ASSERT_EQ(net_server_listen(s, "ws://[::1]:0/mqtt?max_connections=5", err, sizeof(err)), 0);
    net_server_free(s);
}

int main(void)
{
    if (getenv("TEST_DEBUG"))
        log_set_level(LOG_DEBUG);
    scratch_open(dir);
    pki_fixture_ca();
    pki_fixture_csr("srv", "/CN=localhost");
    pki_fixture_sign("srv",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
    RUN(greeting_echo_ping_close);
    RUN(server_close_and_refusals);
    RUN(forwarded_for_only_from_trusted_proxies);
    RUN(upgrade_timeout_and_header_limit);
    RUN(wss);
    RUN(urls);
    SCRATCH_DONE();
}
