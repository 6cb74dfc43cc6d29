/* Listening sockets (src/net/listener.c): settings from the URL query,
 * per-listener limits, and shedding connections when out of descriptors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "test.h"

static void *on_open(void *ctx, struct net_conn *c)
{
    (void)ctx;
    return c;
}

/* Echo. */
static size_t on_data(void *user, const uint8_t *d, size_t n)
{
    ASSERT_EQ(net_conn_send(user, d, n), 0);
    return n;
}

static void on_close(void *user, const char *why)
{
    (void)user;
    (void)why;
}

static const struct net_handler handler = {
    .on_open = on_open, .on_data = on_data, .on_close = on_close};

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        TEST_FAIL_("connect failed");
    return fd;
}

static size_t read_n(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static struct net_server *start(unsigned workers, uint32_t maxconn)
{
    struct net_config cfg = {.workers = workers,
                             .max_connections = maxconn,
                             .max_input = 1 << 20,
                             .max_output = 1 << 20};
    struct net_server *s = net_server_new(&cfg, &handler, NULL);
    char err[256];
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    return s;
}

static void stop(struct net_server *s)
{
    net_server_stop(s);
    net_server_join(s);
    net_server_free(s);
}

/* The descriptor budget: the soft limit is raised to the hard one, and
 * what is left after the descriptors in use and a margin is what may be
 * connections. */
TEST(fd_budget)
{
    struct rlimit saved;
    getrlimit(RLIMIT_NOFILE, &saved);
    struct rlimit low = {100, saved.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct net_server *s = start(1, 0);
    struct rlimit now;
    getrlimit(RLIMIT_NOFILE, &now);
    ASSERT(now.rlim_cur == saved.rlim_max ||
           (saved.rlim_max == RLIM_INFINITY && now.rlim_cur > 100));
    uint32_t b = net_server_fd_budget(s);
    ASSERT(b > 0 && b < now.rlim_cur);
    ASSERT(b + 64 >= now.rlim_cur || now.rlim_cur == RLIM_INFINITY);
    stop(s);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

/* Out of descriptors, each pending connection is accepted on the spare
 * descriptor and closed at once: the accept loop does not spin, accept()
 * fails once per connection (not once per loop turn), and the server
 * serves again when descriptors free up. */
TEST(out_of_descriptors_sheds_without_spinning)
{
    enum { N = 20 };
    struct net_server *s = start(1, 0);
    uint16_t port = net_server_port(s, 0);
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct rlimit saved;
    getrlimit(RLIMIT_NOFILE, &saved);
    /* Every descriptor below the lowest free one is in use: with that as
     * the limit, the next accept() fails with EMFILE. */
    int lowest = dup(0);
    close(lowest);
    struct rlimit low = {(rlim_t)lowest, saved.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    for (int i = 0; i < N; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ASSERT_EQ(connect(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
        char c;
        ASSERT_EQ(read(fds[i], &c, 1), 0); /* closed by the server, not left waiting */
    }
    uint64_t st[NET_NSTATS];
    ASSERT(net_server_listener_stats(s, 0, st));
    ASSERT_EQ(st[NET_ST_REFUSED_FDS], N);
    ASSERT_EQ(st[NET_ST_ACCEPTED], 0);
    ASSERT(st[NET_ST_ACCEPT_ERRORS] >= N && st[NET_ST_ACCEPT_ERRORS] <= N + 2);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    int fd = dial(port);
    char back;
    ASSERT_EQ(write(fd, "z", 1), 1);
    ASSERT_EQ(read_n(fd, &back, 1), 1);
    close(fd);
    stop(s);
}

/* Listener settings from the URL query: max_connections is per listener. */
TEST(listener_max_connections_from_url)
{
    struct net_config cfg = {
        .workers = 2, .max_connections = 0, .max_input = 1 << 20, .max_output = 1 << 20};
    struct net_server *s = net_server_new(&cfg, &handler, NULL);
    char err[256];
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0?max_connections=1", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0", err, sizeof(err)), 0);
    ASSERT_EQ(net_server_start(s), 0);
    int a = dial(net_server_port(s, 0));
    char c;
    ASSERT_EQ(write(a, "1", 1), 1);
    ASSERT_EQ(read_n(a, &c, 1), 1);
    int extra = dial(net_server_port(s, 0));
    ASSERT_EQ(read(extra, &c, 1), 0);
    /* The other listener has no limit of its own. */
    int b = dial(net_server_port(s, 1)), d = dial(net_server_port(s, 1));
    ASSERT_EQ(write(d, "2", 1), 1);
    ASSERT_EQ(read_n(d, &c, 1), 1);
    uint64_t st[NET_NSTATS];
    ASSERT(net_server_listener_stats(s, 0, st));
    ASSERT_EQ(st[NET_ST_REFUSED_LIMIT], 1);
    ASSERT_EQ(st[NET_ST_ACCEPTED], 1);
    ASSERT(!net_server_listener_stats(s, 2, st));
    close(a);
    close(extra);
    close(b);
    close(d);
    stop(s);
}

TEST(bad_listener_settings)
{
    struct net_config cfg = {
        .workers = 1, .max_connections = 0, .max_input = 1024, .max_output = 1024};
    struct net_server *s = net_server_new(&cfg, &handler, NULL);
    char err[256];
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0?max_connections=x", err, sizeof(err)), -1);
    ASSERT(strstr(err, "bad listener setting 'max_connections=x'"));
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0?colour=blue", err, sizeof(err)), -1);
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0?handshake_timeout=5y", err, sizeof(err)), -1);
    ASSERT_EQ(net_server_listen(s, "tcp://127.0.0.1:0?proxy_protocol=true", err, sizeof(err)), -1);
    ASSERT(strstr(err, "needs trusted_proxies"));
    ASSERT_EQ(net_server_listen(s,
                                "tcp://127.0.0.1:0?proxy_protocol=true&trusted_proxies=10.0.0.0/33",
                                err, sizeof(err)),
              -1);
    ASSERT(strstr(err, "10.0.0.0/33"));
    struct net_listen_opts o = {.proxy_protocol = true, .trusted_proxies = "127.0.0.1,::1/128"};
    ASSERT_EQ(net_server_listen_opts(s, "tcp://127.0.0.1:0", NULL, &o, err, sizeof(err)), 0);
    net_server_free(s);
}

int main(void)
{
    RUN(fd_budget);
    RUN(out_of_descriptors_sheds_without_spinning);
    RUN(listener_max_connections_from_url);
    RUN(bad_listener_settings);
    TEST_DONE();
}
