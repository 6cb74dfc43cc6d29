/* src/net/server.c, the parts a NATS listener needs: the greeting written
 * before anything else (plain listeners) or in plaintext before the TLS
 * handshake (TLS listeners), whose first-byte plaintext check still works
 * after it; tls_handshake_first; a greeting that overruns its buffer; a
 * proxy_protocol listener greeting untrusted peers at once; the connection
 * tag; and the per-listener bound on unread input. The PKI is made at run
 * time with the openssl CLI (scratch.h): nothing secret is committed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/log.h"
#include "net/internal.h"
#include "net/net.h"
#include "net_fixture.h"
#include "pki_fixture.h"
#include "scratch.h"
#include "test.h"
#include "tls/tls.h"

static char dir[] = "/tmp/ward-net-greeting-XXXXXX";
static char err[1024];

static _Atomic int opens, closes, greetings;
static _Atomic int seen_greeted = -1;
static _Atomic uint64_t seen_tag;
static _Atomic bool seen_tls_in_greeting;
static _Atomic size_t greeting_len; /* what the hook returns; 0: its INFO line */
static _Atomic bool big_greeting;   /* a whole NET_GREETING_MAX of pattern */
/* Whether the connection held its pre-open part (handshake gate entry,
 * idle deadline) in the greeting hook and in on_open: -1 not seen. */
static _Atomic int seen_pre_greeting = -1, seen_pre_open = -1;

/* An INFO-like line naming the connection's tag, which the hook sets. */
static size_t greeting(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap)
{
    (void)ctx;
    int n = atomic_fetch_add(&greetings, 1) + 1;
    net_conn_set_tag(c, (uint64_t)n);
    atomic_store(&seen_pre_greeting, c->pre != NULL);
    atomic_store(&seen_tls_in_greeting, net_conn_tls_server(c) != NULL);
    if (atomic_load(&big_greeting)) {
        for (size_t i = 0; i < cap; i++)
            buf[i] = (uint8_t)('A' + i % 26);
        return cap;
    }
    size_t want = atomic_load(&greeting_len);
    if (want)
        return want; /* a hook that overruns (cap + 1), or says nothing (never set: 0) */
    int len = snprintf((char *)buf, cap, "INFO {\"client_id\":%d}\r\n", n);
    return (size_t)len;
}

static size_t no_greeting(void *ctx, struct net_conn *c, uint8_t *buf, size_t cap)
{
    (void)ctx, (void)c, (void)buf, (void)cap;
    return 0;
}

static void *on_open(void *ctx, struct net_conn *c)
{
    (void)ctx;
    atomic_store(&seen_greeted, net_conn_greeted(c));
    atomic_store(&seen_tag, net_conn_tag(c));
    atomic_store(&seen_pre_open, c->pre != NULL);
    /* What on_open sends comes after the greeting. */
    if (net_conn_send(c, "hello\n", 6) < 0)
        return NULL;
    atomic_fetch_add(&opens, 1);
    return c;
}

/* Echoes whole lines; keeps a partial one (so unread input builds up). */
static size_t on_data(void *user, const uint8_t *d, size_t n)
{
    const uint8_t *nl = memchr(d, '\n', n);
    if (!nl)
        return 0;
    size_t len = (size_t)(nl - d) + 1;
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
    atomic_store(&greetings, 0);
    atomic_store(&seen_greeted, -1);
    atomic_store(&seen_tag, 0);
    atomic_store(&greeting_len, 0);
    atomic_store(&big_greeting, false);
    atomic_store(&seen_pre_greeting, -1);
    atomic_store(&seen_pre_open, -1);
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

static struct tls_server *tls_srv(void)
{
    struct tls_server_config sc = {.certfile = scratch_path("srv.crt"),
                                   .keyfile = scratch_path("srv.key"),
                                   .cafile = scratch_path("ca.crt"),
                                   .verify = TLS_VERIFY_NONE};
    struct tls_server *t = tls_server_new(&sc, err, sizeof(err));
    if (!t)
        TEST_FAIL_("tls_server_new: %s", err);
    return t;
}

/* Reads one line (up to '\n') byte by byte, so nothing after it is taken
 * from the socket (the TLS handshake that follows must find its bytes). */
static size_t read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && read_n(fd, buf + n, 1) == 1)
        if (buf[n++] == '\n')
            break;
    buf[n] = '\0';
    return n;
}

/* Whether the peer closed (EOF or reset) within the read deadline. */
static bool closed_by_peer(int fd)
{
    char b[256];
    for (int i = 0; i < 100; i++) {
        ssize_t r = read(fd, b, sizeof(b));
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false; /* the deadline passed */
    }
    return false;
}

static bool wait_for(_Atomic int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++)
        usleep(10000);
    return atomic_load(v) >= want;
}

/* A TLS client over fd (blocking): handshake, then one line each way. */
static void *tls_client_over(struct tls_client *tc, int fd)
{
    void *t = tls_client_transport_new(tc, fd, "localhost");
    ASSERT(t);
    ssize_t r = 0;
    for (int i = 0; i < 100 && r != 1 && r != TRANSPORT_ERROR; i++)
        r = tls_transport_ops.handshake(t);
    if (r != 1)
        TEST_FAIL_("client handshake: %s", tls_transport_ops.cause(t));
    return t;
}

static size_t tls_read_n(void *t, char *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 100 && got < n; i++) {
        ssize_t r = tls_transport_ops.read(t, buf + got, n - got);
        if (r == TRANSPORT_EOF || r == TRANSPORT_ERROR)
            break;
        if (r > 0)
            got += (size_t)r;
    }
    return got;
}

TEST(plain_greeting_goes_first)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    for (int k = 1; k <= 3; k++) {
        int fd = dial(net_server_port(s, 0));
        char line[128], want[64];
        ASSERT(read_line(fd, line, sizeof(line)) > 0);
        snprintf(want, sizeof(want), "INFO {\"client_id\":%d}\r\n", k);
        ASSERT_STR_EQ(line, want);
        ASSERT(read_line(fd, line, sizeof(line)) > 0);
        ASSERT_STR_EQ(line, "hello\n");
        ASSERT_EQ(write(fd, "ping\n", 5), 5);
        ASSERT(read_line(fd, line, sizeof(line)) > 0);
        ASSERT_STR_EQ(line, "ping\n");
        ASSERT_EQ(atomic_load(&seen_greeted), 1);
        ASSERT_EQ(atomic_load(&seen_tag), (uint64_t)k);
        ASSERT(!atomic_load(&seen_tls_in_greeting));
        /* A plain connection never has a pre-open part. */
        ASSERT_EQ(atomic_load(&seen_pre_greeting), 0);
        ASSERT_EQ(atomic_load(&seen_pre_open), 0);
        close(fd);
    }
    ASSERT(wait_for(&closes, 3));
    stop(s);
}

/* A hook that says nothing: nothing is sent, and the connection is not
 * "greeted". Without a hook the tag stays 0. */
TEST(empty_and_absent_greeting)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = no_greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    for (unsigned i = 0; i < 2; i++) {
        int fd = dial(net_server_port(s, i));
        char line[64];
        ASSERT(read_line(fd, line, sizeof(line)) > 0);
        ASSERT_STR_EQ(line, "hello\n");
        ASSERT_EQ(atomic_load(&seen_greeted), 0);
        ASSERT_EQ(atomic_load(&seen_tag), 0);
        close(fd);
    }
    stop(s);
}

/* A hook returning more than cap: the connection is closed unopened. */
TEST(overlong_greeting_closes)
{
    reset();
    atomic_store(&greeting_len, NET_GREETING_MAX + 1);
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    int fd = dial(net_server_port(s, 0));
    ASSERT(closed_by_peer(fd));
    close(fd);
    ASSERT(wait_for(&greetings, 1));
    ASSERT_EQ(atomic_load(&opens), 0);
    ASSERT_EQ(net_server_conn_count(s), 0);
    stop(s);
}

/* TLS: the greeting in plaintext, then the client's handshake, then
 * everything inside TLS. */
TEST(tls_greeting_before_handshake)
{
    reset();
    struct tls_server *t = tls_srv();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats+tls://127.0.0.1:0", t, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
    struct tls_client *tc = tls_client_new(&cc, err, sizeof(err));
    ASSERT(tc);
    int fd = dial(net_server_port(s, 0));
    char line[128];
    ASSERT(read_line(fd, line, sizeof(line)) > 0);
    ASSERT_STR_EQ(line, "INFO {\"client_id\":1}\r\n");
    ASSERT(atomic_load(&seen_tls_in_greeting));
    ASSERT_EQ(atomic_load(&opens), 0); /* opened only after the handshake */
    void *ct = tls_client_over(tc, fd);
    char buf[16];
    ASSERT_EQ(tls_read_n(ct, buf, 6), 6);
    ASSERT_MEM_EQ(buf, "hello\n", 6);
    ASSERT_EQ(tls_transport_ops.write(ct, "ping\n", 5), 5);
    ASSERT_EQ(tls_read_n(ct, buf, 5), 5);
    ASSERT_MEM_EQ(buf, "ping\n", 5);
    ASSERT_EQ(atomic_load(&seen_greeted), 1);
    ASSERT_EQ(atomic_load(&seen_tag), 1);
    /* A TLS connection has its pre-open part until the handshake is over,
     * and no longer once it is open (ASan finds it if it is not freed). */
    ASSERT_EQ(atomic_load(&seen_pre_greeting), 1);
    ASSERT_EQ(atomic_load(&seen_pre_open), 0);
    tls_transport_ops.destroy(ct);
    close(fd);
    stop(s);
    tls_client_free(tc);
    tls_server_free(t);
}

/* A client that reads the greeting and answers in plaintext (a NATS
 * client that does not do TLS) is refused by the first-byte check. */
TEST(tls_plaintext_after_greeting_refused)
{
    reset();
    struct tls_server *t = tls_srv();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats+tls://127.0.0.1:0", t, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    int fd = dial(net_server_port(s, 0));
    char line[128];
    ASSERT(read_line(fd, line, sizeof(line)) > 0);
    ASSERT_STR_EQ(line, "INFO {\"client_id\":1}\r\n");
    ASSERT_EQ(write(fd, "CONNECT {}\r\n", 12), 12);
    ASSERT(closed_by_peer(fd));
    close(fd);
    uint64_t tst[TLS_NCAUSES];
    tls_server_counters(t, tst);
    ASSERT_EQ(tst[TLS_CAUSE_PLAINTEXT], 1);
    ASSERT_EQ(atomic_load(&opens), 0);
    stop(s);
    tls_server_free(t);
}

/* tls_handshake_first: nothing before the handshake; the layer above
 * greets from on_open (net_conn_greeted() false there). */
TEST(tls_handshake_first)
{
    reset();
    struct tls_server *t = tls_srv();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting, .tls_handshake_first = true};
    ASSERT_EQ(net_server_listen_opts(s, "nats+tls://127.0.0.1:0", t, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
    struct tls_client *tc = tls_client_new(&cc, err, sizeof(err));
    ASSERT(tc);
    int fd = dial(net_server_port(s, 0));
    /* Any plaintext byte before the ServerHello would break the handshake. */
    void *ct = tls_client_over(tc, fd);
    char buf[16];
    ASSERT_EQ(tls_read_n(ct, buf, 6), 6);
    ASSERT_MEM_EQ(buf, "hello\n", 6);
    ASSERT_EQ(atomic_load(&seen_greeted), 0);
    ASSERT_EQ(atomic_load(&greetings), 0);
    tls_transport_ops.destroy(ct);
    close(fd);
    stop(s);
    tls_client_free(tc);
    tls_server_free(t);
}

/* A proxy_protocol listener greets a peer that is not a trusted proxy at
 * once (it would otherwise wait for the peer's first byte, and the peer
 * for the greeting). */
TEST(untrusted_peer_greeted_at_once)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts o = {
        .greeting = greeting, .proxy_protocol = true, .trusted_proxies = "10.9.9.9"};
    ASSERT_EQ(net_server_listen_opts(s, "nats://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    int fd = dial(net_server_port(s, 0));
    char line[128];
    ASSERT(read_line(fd, line, sizeof(line)) > 0);
    ASSERT_STR_EQ(line, "INFO {\"client_id\":1}\r\n");
    ASSERT(read_line(fd, line, sizeof(line)) > 0);
    ASSERT_STR_EQ(line, "hello\n");
    close(fd);
    stop(s);
}

/* max_input per listener: 100 bytes without a newline overflow the NATS
 * listener's bound and close the connection; the server-wide bound (1 MiB)
 * still holds on the other listener. */
TEST(listener_max_input)
{
    reset();
    struct net_server *s = server();
    struct net_listen_opts o = {.max_input = 100};
    ASSERT_EQ(net_server_listen_opts(s, "tcp://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    char big[300], line[400];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\n';
    /* Within the bound: a partial line of 99 bytes waits, then completes. */
    int ok = dial(net_server_port(s, 0));
    ASSERT_EQ(read_line(ok, line, sizeof(line)), 6);
    ASSERT_EQ(write(ok, big, 99), 99);
    ASSERT_EQ(write(ok, "\n", 1), 1);
    ASSERT_EQ(read_line(ok, line, sizeof(line)), 100);
    int over = dial(net_server_port(s, 0));
    ASSERT_EQ(read_line(over, line, sizeof(line)), 6);
    ASSERT_EQ(write(over, big, sizeof(big)), (ssize_t)sizeof(big));
    ASSERT(closed_by_peer(over));
    int other = dial(net_server_port(s, 1));
    ASSERT_EQ(read_line(other, line, sizeof(line)), 6);
    ASSERT_EQ(write(other, big, sizeof(big)), (ssize_t)sizeof(big));
    ASSERT_EQ(read_line(other, line, sizeof(line)), sizeof(big));
    close(ok);
    close(over);
    close(other);
    stop(s);
}

/* The listening socket of port: accepted sockets inherit its send buffer. */
static int listening_fd(uint16_t port)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        int acc = 0;
        socklen_t len = sizeof(acc);
        if (getsockname(fd, (struct sockaddr *)&a, &alen) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port &&
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc)
            return fd;
    }
    return -1;
}

/* Loopback with the smallest buffers Linux allows (4608 bytes to send,
 * 2304 to receive) takes 2304 bytes of a 4096-byte greeting at first: the
 * rest waits for the peer to read, and only then the handshake starts. */
static int dial_small(struct net_server *s)
{
    int one = 1, fd = listening_fd(net_server_port(s, 0));
    ASSERT(fd >= 0);
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(net_server_port(s, 0))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ASSERT_EQ(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    return c;
}

static void read_pattern(int fd)
{
    static char got[NET_GREETING_MAX];
    ASSERT_EQ(read_n(fd, got, sizeof(got)), sizeof(got));
    for (size_t i = 0; i < sizeof(got); i++)
        if (got[i] != (char)('A' + i % 26))
            TEST_FAIL_("greeting byte %zu is '%c'", i, got[i]);
}

TEST(tls_long_greeting_short_write)
{
    reset();
    atomic_store(&big_greeting, true);
    struct tls_server *t = tls_srv();
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats+tls://127.0.0.1:0", t, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    struct tls_client_config cc = {.cafile = scratch_path("ca.crt")};
    struct tls_client *tc = tls_client_new(&cc, err, sizeof(err));
    ASSERT(tc);
    int fd = dial_small(s);
    read_pattern(fd);
    void *ct = tls_client_over(tc, fd);
    char buf[16];
    ASSERT_EQ(tls_read_n(ct, buf, 6), 6);
    ASSERT_MEM_EQ(buf, "hello\n", 6);
    ASSERT_EQ(atomic_load(&seen_greeted), 1);
    tls_transport_ops.destroy(ct);
    close(fd);
    stop(s);
    tls_client_free(tc);
    tls_server_free(t);
}

TEST(plain_long_greeting_short_write)
{
    reset();
    atomic_store(&big_greeting, true);
    struct net_server *s = server();
    struct net_listen_opts o = {.greeting = greeting};
    ASSERT_EQ(net_server_listen_opts(s, "nats://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    int fd = dial_small(s);
    read_pattern(fd);
    char line[16];
    ASSERT(read_line(fd, line, sizeof(line)) > 0);
    ASSERT_STR_EQ(line, "hello\n");
    close(fd);
    stop(s);
}

TEST(nats_schemes)
{
    struct tls_server *t = tls_srv();
    struct net_server *s = server();
    ASSERT_EQ(net_server_listen(s, "nats://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen_tls(s, "nats+tls://127.0.0.1:0", t, err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen_tls(s, "nats+mtls://127.0.0.1:0", t, err, sizeof(err)), 0);
    /* TLS schemes need a TLS server, and the reverse. */
    ASSERT_EQ(net_server_listen(s, "nats+tls://127.0.0.1:0", err, sizeof(err)), -1);
    ASSERT(strstr(err, "unsupported scheme 'nats+tls'"));
    ASSERT_EQ(net_server_listen_tls(s, "nats://127.0.0.1:0", t, err, sizeof(err)), -1);
    net_server_free(s);
    tls_server_free(t);
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
    RUN(plain_greeting_goes_first);
    RUN(empty_and_absent_greeting);
    RUN(overlong_greeting_closes);
    RUN(tls_greeting_before_handshake);
    RUN(tls_plaintext_after_greeting_refused);
    RUN(tls_handshake_first);
    RUN(untrusted_peer_greeted_at_once);
    RUN(tls_long_greeting_short_write);
    RUN(plain_long_greeting_short_write);
    RUN(listener_max_input);
    RUN(nats_schemes);
    SCRATCH_DONE();
}
