#include <sys/socket.h>
#include <unistd.h>

#include "net/tcp.h"
#include "test.h"

static char err[256];

static void url_ok(const char *url, const char *scheme, const char *host, uint16_t port)
{
    char s[16], h[128];
    uint16_t p = 0;
    if (tcp_parse_url(url, s, sizeof(s), h, sizeof(h), &p, err, sizeof(err)) != 0)
        TEST_FAIL_("%s: %s", url, err);
    ASSERT_STR_EQ(s, scheme);
    ASSERT_STR_EQ(h, host);
    ASSERT_EQ(p, port);
}

static void url_bad(const char *url, const char *why)
{
    char s[16], h[128];
    uint16_t p;
    if (tcp_parse_url(url, s, sizeof(s), h, sizeof(h), &p, err, sizeof(err)) == 0)
        TEST_FAIL_("%s accepted", url);
    if (!strstr(err, why))
        TEST_FAIL_("%s: \"%s\" lacks \"%s\"", url, err, why);
}

TEST(urls)
{
    url_ok("tcp://127.0.0.1:1883", "tcp", "127.0.0.1", 1883);
    url_ok("tcp://[::1]:8883", "tcp", "::1", 8883);
    url_ok("mqtt-tcp://broker.example:1", "mqtt-tcp", "broker.example", 1);
    url_ok("0.0.0.0:1883", "tcp", "0.0.0.0", 1883);
    url_bad("tcp://127.0.0.1", "expected HOST:PORT");
    url_bad("tcp://127.0.0.1:99999", "bad port");
    url_bad("tcp://127.0.0.1:abc", "bad port");
    url_bad("tcp://127.0.0.1:", "bad port");
    url_bad("tcp://[::1:1883", "expected [IPv6]:PORT");
}

TEST(listen_connect_transport)
{
    uint16_t port = 0;
    int lfd = tcp_listen("127.0.0.1", 0, &port, err, sizeof(err));
    ASSERT(lfd >= 0);
    ASSERT(port != 0);
    int cfd = tcp_connect("127.0.0.1", port, 2000, err, sizeof(err));
    ASSERT(cfd >= 0);
    int sfd = -1;
    for (int i = 0; i < 200 && sfd < 0; i++) { /* the listener is non-blocking */
        sfd = accept(lfd, NULL, NULL);
        if (sfd < 0)
            usleep(5000);
    }
    ASSERT(sfd >= 0);
    char name[64];
    tcp_peer_name(sfd, name, sizeof(name));
    ASSERT(strncmp(name, "127.0.0.1:", 10) == 0);

    struct tcp_transport ct = {.fd = cfd}, st = {.fd = sfd};
    char buf[16];
    /* Nothing to read yet on a non-blocking socket: want read. */
    ASSERT_EQ(tcp_transport_ops.read(&ct, buf, sizeof(buf)), TRANSPORT_WANT_READ);
    ASSERT_EQ(tcp_transport_ops.write(&st, "ping", 4), 4);
    ssize_t n = TRANSPORT_WANT_READ;
    for (int i = 0; i < 200 && n == TRANSPORT_WANT_READ; i++) {
        n = tcp_transport_ops.read(&ct, buf, sizeof(buf));
        if (n == TRANSPORT_WANT_READ)
            usleep(5000);
    }
    ASSERT_EQ(n, 4);
    ASSERT_MEM_EQ(buf, "ping", 4);
    close(sfd);
    n = TRANSPORT_WANT_READ;
    for (int i = 0; i < 200 && n == TRANSPORT_WANT_READ; i++) {
        n = tcp_transport_ops.read(&ct, buf, sizeof(buf));
        if (n == TRANSPORT_WANT_READ)
            usleep(5000);
    }
    ASSERT_EQ(n, TRANSPORT_EOF);
    close(cfd);
    close(lfd);
}

TEST(errors_name_the_address)
{
    uint16_t port = 0;
    int lfd = tcp_listen("127.0.0.1", 0, &port, err, sizeof(err));
    ASSERT(lfd >= 0);
    /* The same port again: in use. */
    ASSERT_EQ(tcp_listen("127.0.0.1", port, NULL, err, sizeof(err)), -1);
    ASSERT(strstr(err, "127.0.0.1"));
    close(lfd);
    /* Nobody listens there now. */
    ASSERT_EQ(tcp_connect("127.0.0.1", port, 1000, err, sizeof(err)), -1);
    ASSERT(strstr(err, "cannot connect to 127.0.0.1"));
    ASSERT_EQ(tcp_connect("name.invalid", 1, 1000, err, sizeof(err)), -1);
    ASSERT(strstr(err, "cannot resolve name.invalid"));
    ASSERT_EQ(tcp_listen("256.1.1.1", 0, NULL, err, sizeof(err)), -1);
}

TEST(write_to_reset_peer_is_an_error)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    struct tcp_transport t = {.fd = sv[0]};
    ASSERT_EQ(tcp_transport_ops.write(&t, "x", 1), TRANSPORT_ERROR);
    ASSERT(strlen(tcp_transport_ops.cause(&t)) > 0);
    close(sv[0]);
}

int main(void)
{
    RUN(urls);
    RUN(listen_connect_transport);
    RUN(errors_name_the_address);
    RUN(write_to_reset_peer_is_an_error);
    TEST_DONE();
}
